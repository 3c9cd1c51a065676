/* test_backend_backward.c — the oneDNN conv2d backward (backend/
 * dnnl_backward.c) on the shapes fine-tuning VGG16 gives it (channel counts
 * that are multiples of 16, where it runs on the caller's NHWC tensors
 * without reorders; the 3-channel first layer; 2x2 maps as block5 at 32x32;
 * stride 2; 3x3 convs with 1024+ output pixels, where it runs Winograd),
 * against two independent oracles:
 *   - the plain-C reference gr_conv2d_backward (layers/conv2d.c), both
 *     ACCUMULATING into pre-filled buffers;
 *   - central finite differences of L = sum(dout * conv(x; w, b)) computed
 *     with the reference forward (L is linear in x, w and b, so the
 *     difference quotient is exact up to float rounding).
 * And: the same call twice gives the same bits (deterministic for a given
 * thread count), NULL outputs are skipped.
 * graft's own Winograd backward (backend/winograd.h; where oneDNN has no
 * Winograd, i.e. AVX2 CPUs): the cases with 256+ output pixels run it, both
 * tiles (F(4x4) and F(2x2)), odd map sizes, channel counts that are not
 * multiples of 8, valid padding, accumulate and overwrite; which tile ran is
 * asserted; and on VGG16-sized layers it is compared with oneDNN's backward
 * (the same layer with Winograd off, GRAFT_WINOGRAD=0's switch); on AVX-512
 * CPUs, where oneDNN has a Winograd of its own, graft's is forced
 * (gr_backend_set_own_winograd) and oneDNN's is checked by its own case.  */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "check.h"
#include "backend/winograd.h"
#include "ops/ops.h"

typedef struct {
    const char *what;
    int B, H, W, C, OC, k, stride;
    gr_padding pad;
    bool bias;
    int md, mw;   /* graft's Winograd tiles expected for din / dw where oneDNN has no Winograd (0: none) */
} bcase;

static gr_model *one_conv(const bcase *c, gr_error *err) {
    gr_model *m = gr_model_new(c->H, c->W, c->C, err);
    if (!m) return NULL;
    gr_layer_spec s = gr_conv2d(c->OC, c->k, c->k, c->stride, c->pad, GR_ACT_LINEAR);
    s.use_bias = c->bias;
    if (gr_model_append(m, s, err) < 0) { gr_model_free(m); return NULL; }
    int pk = gr_node_param(m, 0, "kernel"), pb = gr_node_param(m, 0, "bias");
    check_fill(gr_param_data(m, pk), m->params[pk].count, 11, -0.3f, 0.3f);
    if (pb >= 0) check_fill(gr_param_data(m, pb), m->params[pb].count, 12, -0.5f, 0.5f);
    return m;
}

/* L = sum(dout * conv(x; w, b)) by the reference forward, in double. */
static double loss(const float *x, const float *w, const float *b, const float *dout,
                   const gr_conv_dims *d, float *out, size_t nout) {
    gr_conv2d_forward(out, x, w, b, d);
    double l = 0;
    for (size_t i = 0; i < nout; i++) l += (double)dout[i] * out[i];
    return l;
}

/* d L / d p[at] by a central difference (p is x, w or b, changed in place). */
static double fd(float *p, size_t at, const float *x, const float *w, const float *b,
                 const float *dout, const gr_conv_dims *d, float *out, size_t nout) {
    const float h = 0.25f, keep = p[at];
    p[at] = keep + h;
    double lp = loss(x, w, b, dout, d, out, nout);
    p[at] = keep - h;
    double lm = loss(x, w, b, dout, d, out, nout);
    p[at] = keep;
    return (lp - lm) / (2.0 * h);
}

/* given: a model built by one_conv(c) to reuse (its backend cache too), or NULL. */
/* given (with its backend state given_be): the model of an earlier case. */
static void run_case(const bcase *c, gr_model *given, gr_backend *given_be) {
    gr_error err = {0};
    gr_model *m = given ? given : one_conv(c, &err);
    CHECK(m != NULL, "%s: %s", c->what, err.msg);
    if (!m) return;
    gr_backend *fp = given_be ? given_be : gr_backend_new(m, GR_PRECISION_FP32, &err);
    CHECK(fp != NULL, "%s", err.msg);
    if (!fp) return;
    if (!given_be) gr_backend_set_own_winograd(fp, true);   /* graft's kernels, also where oneDNN has Winograd */
    const gr_node *n = &m->nodes[0];
    int B = c->B;
    size_t nin = (size_t)B * c->H * c->W * c->C, nout = (size_t)B * n->oh * n->ow * n->oc;
    size_t nw = (size_t)c->k * c->k * c->C * c->OC, nb = (size_t)c->OC;
    float *x = check_falloc(nin), *dout = check_falloc(nout), *out = check_falloc(nout);
    float *din = check_falloc(nin), *dw = check_falloc(nw), *db = check_falloc(nb);
    float *rdin = check_falloc(nin), *rdw = check_falloc(nw), *rdb = check_falloc(nb);
    float *din2 = check_falloc(nin), *dw2 = check_falloc(nw), *db2 = check_falloc(nb);
    check_fill(x, nin, 1, -1, 1);
    check_fill(dout, nout, 2, -1, 1);
    float *w = gr_param_data(m, gr_node_param(m, 0, "kernel"));
    float *b = c->bias ? gr_param_data(m, gr_node_param(m, 0, "bias")) : NULL;
    gr_conv_dims d = gr_node_conv_dims(m, 0, B);

    /* 1. against the reference, both accumulating into the same pre-fill */
    check_fill(din, nin, 3, -1, 1); memcpy(rdin, din, nin * sizeof(float));
    check_fill(dw, nw, 4, -1, 1); memcpy(rdw, dw, nw * sizeof(float));
    check_fill(db, nb, 5, -1, 1); memcpy(rdb, db, nb * sizeof(float));
    gr_conv2d_backward(dout, x, w, &d, rdin, rdw, c->bias ? rdb : NULL);
    gr_status st = gr_backend_conv2d_backward(fp, 0, dout, x, B, din, dw, c->bias ? db : NULL, &err);
    CHECK(st == GR_OK, "%s: %s", c->what, err.msg);
    if (st == GR_OK) {
        CHECK_CLOSE(c->what, din, rdin, nin, 1e-4, 1e-4);
        CHECK_CLOSE(c->what, dw, rdw, nw, 1e-3, 1e-4);
        if (c->bias) CHECK_CLOSE(c->what, db, rdb, nb, 1e-3, 1e-4);
    }

    /* 2. from zero: against finite differences at a spread of entries */
    memset(din, 0, nin * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    memset(db, 0, nb * sizeof(float));
    st = gr_backend_conv2d_backward(fp, 0, dout, x, B, din, dw, c->bias ? db : NULL, &err);
    CHECK(st == GR_OK, "%s: %s", c->what, err.msg);
    int bad = 0;
    for (int k = 0; k < 12 && st == GR_OK; k++) {
        size_t ai = (size_t)k * 7919 % nin, aw = (size_t)k * 104729 % nw, ab = (size_t)k % nb;
        double gi = fd(x, ai, x, w, b, dout, &d, out, nout);
        double gw = fd(w, aw, x, w, b, dout, &d, out, nout);
        if (fabs(gi - din[ai]) > 2e-3 + 1e-3 * fabs(gi)) {
            fprintf(stderr, "  %s: din[%zu] %g, finite difference %g\n", c->what, ai, din[ai], gi);
            bad++;
        }
        if (fabs(gw - dw[aw]) > 2e-3 + 1e-3 * fabs(gw)) {
            fprintf(stderr, "  %s: dw[%zu] %g, finite difference %g\n", c->what, aw, dw[aw], gw);
            bad++;
        }
        if (c->bias) {
            double gb = fd(b, ab, x, w, b, dout, &d, out, nout);
            if (fabs(gb - db[ab]) > 2e-3 + 1e-3 * fabs(gb)) {
                fprintf(stderr, "  %s: db[%zu] %g, finite difference %g\n", c->what, ab, db[ab], gb);
                bad++;
            }
        }
    }
    CHECK(bad == 0, "%s: %d gradient entries differ from finite differences", c->what, bad);
    int md, mw;
    gr_backend_conv2d_backward_tiles(fp, 0, &md, &mw);
    if (gr_wino_avx2() && c->md >= 0)   /* (off x86 oneDNN may run its own Winograd instead) */
        CHECK(md == c->md && mw == c->mw, "%s: graft's Winograd tiles %d / %d, want %d / %d", c->what, md, mw,
              c->md, c->mw);

    /* 2b. the overwrite form: din = (not +=) */
    check_fill(rdin, nin, 6, -1, 1);
    st = gr_backend_conv2d_backward_ow(fp, 0, dout, x, B, rdin, true, NULL, NULL, &err);
    CHECK(st == GR_OK && !memcmp(din, rdin, nin * sizeof(float)), "%s: overwrite differs from accumulate into 0",
          c->what);

    /* 3. the same call again: the same bits */
    st = gr_backend_conv2d_backward(fp, 0, dout, x, B, din2, dw2, c->bias ? db2 : NULL, &err);
    CHECK(st == GR_OK && !memcmp(din, din2, nin * sizeof(float)) && !memcmp(dw, dw2, nw * sizeof(float)) &&
              !memcmp(db, db2, nb * sizeof(float)),
          "%s: a second identical call gave different bits", c->what);

    /* 4. dw only: din untouched */
    memcpy(rdin, din, nin * sizeof(float));
    st = gr_backend_conv2d_backward(fp, 0, dout, x, B, NULL, dw2, NULL, &err);
    CHECK(st == GR_OK && !memcmp(rdin, din, nin * sizeof(float)), "%s: dw-only call", c->what);

    free(x); free(dout); free(out); free(din); free(dw); free(db);
    free(rdin); free(rdw); free(rdb); free(din2); free(dw2); free(db2);
    if (!given_be) gr_backend_free(fp);
    if (!given) gr_model_free(m);
}

/* VGG16 shapes, scaled down in size (not in channel structure). */
static void test_conv_backward_vgg_shapes(void) {
    const bcase cases[] = {
        {"first layer 3->16 same", 2, 8, 8, 3, 16, 3, 1, GR_PAD_SAME, true, 0, 0},
        {"16->32 same", 3, 6, 6, 16, 32, 3, 1, GR_PAD_SAME, true, 0, 0},
        {"block5-like 2x2 64->64", 4, 2, 2, 64, 64, 3, 1, GR_PAD_SAME, true, 0, 0},
        {"32->16 stride 2 valid, no bias", 2, 7, 7, 32, 16, 3, 2, GR_PAD_VALID, false, 0, 0},
        {"1x1 48->32", 2, 5, 5, 48, 32, 1, 1, GR_PAD_VALID, true, 0, 0},
        /* 4 x 16 x 16 = 1024 output pixels: the Winograd backward (blocked layouts) */
        {"Winograd 16->32 16x16", 4, 16, 16, 16, 32, 3, 1, GR_PAD_SAME, true, 4, 4},
        /* graft's Winograd: 256+ output pixels */
        {"graft F(2x2) 2x2 maps 24->20", 64, 2, 2, 24, 20, 3, 1, GR_PAD_SAME, true, 2, 2},
        {"graft odd 7x9 maps 17->19", 6, 7, 9, 17, 19, 3, 1, GR_PAD_SAME, true, 4, 4},
        {"graft valid 11x10 20->18, no bias", 4, 11, 10, 20, 18, 3, 1, GR_PAD_VALID, false, 4, 4},
        {"graft 2x3 maps 16->40", 48, 2, 3, 16, 40, 3, 1, GR_PAD_SAME, true, 2, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], NULL, NULL);
}

/* A case on a backend of its own, kept across run_case calls: graft's
 * Winograd forced (own) or the backend's default choice; then, if B2 > 0,
 * the same case at batch B2 on the same backend (its cache rebuilt).     */
static void run_on_backend(bcase c, bool own, int B2) {
    gr_error err = {0};
    gr_model *m = one_conv(&c, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_backend *fp = gr_backend_new(m, GR_PRECISION_FP32, &err);
    CHECK(fp != NULL, "%s", err.msg);
    if (fp) {
        gr_backend_set_own_winograd(fp, own);
        run_case(&c, m, fp);
        if (B2 > 0) {
            c.B = B2;
            run_case(&c, m, fp);
        }
    }
    gr_backend_free(fp);
    gr_model_free(m);
}

/* The same Winograd-sized layer through the backend's default choice:
 * oneDNN's own Winograd where it has one (AVX-512), graft's elsewhere; the
 * gradients against both oracles, whichever served (tiles not asserted). */
static void test_conv_backward_default_winograd(void) {
    run_on_backend((bcase){"default Winograd 16->32 16x16", 4, 16, 16, 16, 32, 3, 1, GR_PAD_SAME, true, -1, -1},
                   false, 0);
}

/* Batch changes rebuild the cache: the second batch size is right too. */
static void test_conv_backward_batch_change(void) {
    run_on_backend((bcase){"batch 5 after batch 2", 2, 4, 4, 16, 16, 3, 1, GR_PAD_SAME, true, 0, 0}, true, 5);
}

/* graft's Winograd backward against oneDNN's (Winograd off) on VGG16-sized
 * layers at 32x32 batch 64 (blocks 2-5; batch cut where the layer is large),
 * within a float tolerance relative to the gradients' scale. */
static void test_winograd_vs_onednn(void) {
    const struct { const char *what; int B, H, C, OC, md, mw; } L[] = {
        {"block2_conv2 16x16 128->128", 8, 16, 128, 128, 4, 4},
        {"block3_conv2 8x8 256->256", 16, 8, 256, 256, 4, 4},
        {"block4_conv2 4x4 512->512", 64, 4, 512, 512, 4, 4},
        {"block5_conv2 2x2 512->512", 64, 2, 512, 512, 2, 2},
    };
    if (!gr_wino_avx2()) {
        printf("SKIP test_winograd_vs_onednn: no AVX2 (oneDNN may run its own Winograd)\n");
        return;
    }
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        if (UNDER_SAN && i > 0) break;   /* (slow under ASan) */
        bcase c = {L[i].what, L[i].B, L[i].H, L[i].H, L[i].C, L[i].OC, 3, 1, GR_PAD_SAME, true, L[i].md, L[i].mw};
        gr_error err = {0};
        gr_model *m = one_conv(&c, &err);
        gr_backend *g = m ? gr_backend_new(m, GR_PRECISION_FP32, &err) : NULL;
        gr_backend *d = m ? gr_backend_new(m, GR_PRECISION_FP32, &err) : NULL;
        CHECK(m && g && d, "%s: %s", c.what, err.msg);
        if (!m || !g || !d) { gr_backend_free(g); gr_backend_free(d); gr_model_free(m); continue; }
        gr_backend_set_own_winograd(g, true);   /* (AVX-512: oneDNN's own Winograd would serve instead) */
        gr_backend_set_winograd(d, false);
        size_t nin = (size_t)c.B * c.H * c.W * c.C, nout = (size_t)c.B * c.H * c.W * c.OC, nw = (size_t)9 * c.C * c.OC;
        float *x = check_falloc(nin), *dout = check_falloc(nout), *din[2], *dw[2], *db[2];
        for (int k = 0; k < 2; k++) {
            din[k] = check_falloc(nin); dw[k] = check_falloc(nw); db[k] = check_falloc((size_t)c.OC);
        }
        check_fill(x, nin, 21, 0, 2);   /* post-ReLU-like activations */
        check_fill(dout, nout, 22, -0.01f, 0.01f);
        gr_status s1 = gr_backend_conv2d_backward(g, 0, dout, x, c.B, din[0], dw[0], db[0], &err);
        gr_status s2 = gr_backend_conv2d_backward(d, 0, dout, x, c.B, din[1], dw[1], db[1], &err);
        CHECK(s1 == GR_OK && s2 == GR_OK, "%s: %s", c.what, err.msg);
        int md, mw, dd, dww;
        gr_backend_conv2d_backward_tiles(g, 0, &md, &mw);
        gr_backend_conv2d_backward_tiles(d, 0, &dd, &dww);
        CHECK(md == c.md && mw == c.mw && dd == 0 && dww == 0, "%s: tiles %d/%d (off: %d/%d)", c.what, md, mw, dd, dww);
        /* the error relative to the largest gradient of each kind */
        float *a[3] = {din[0], dw[0], db[0]}, *r[3] = {din[1], dw[1], db[1]};
        size_t cnt[3] = {nin, nw, (size_t)c.OC};
        const char *nm[3] = {"din", "dw", "db"};
        for (int k = 0; k < 3 && s1 == GR_OK && s2 == GR_OK; k++) {
            double mx = 0, err_max = 0;
            for (size_t j = 0; j < cnt[k]; j++) {
                mx = fmax(mx, fabs(r[k][j]));
                err_max = fmax(err_max, fabs((double)a[k][j] - r[k][j]));
            }
            CHECK(mx > 0 && err_max <= 2e-5 * mx, "%s: %s differs from oneDNN by %g (largest %g, %.2g relative)", c.what,
                  nm[k], err_max, mx, err_max / mx);
        }
        free(x); free(dout);
        for (int k = 0; k < 2; k++) { free(din[k]); free(dw[k]); free(db[k]); }
        gr_backend_free(g); gr_backend_free(d); gr_model_free(m);
    }
}

int main(void) {
    gr_set_threads(0);
    RUN(test_conv_backward_vgg_shapes);
    RUN(test_conv_backward_batch_change);
    RUN(test_conv_backward_default_winograd);
    RUN(test_winograd_vs_onednn);
    return check_summary();
}
