/* test_vit.c — Vision Transformers: the token ops (class_token,
 * position_embedding, select_token, self_attention) and torchvision's
 * VisionTransformer imported from ONNX, against independent oracles:
 *   1. PyTorch: tests/fixtures/gen_onnx_vit.py exports a small random
 *      VisionTransformer (torchvision's class) at opsets 13 and 17 (and 17
 *      with a symbolic batch) with its
 *      logits and pre-logits features: graft's within 1e-4 of the largest
 *      value, through the fast path and through the plain-C reference;
 *   2. central finite differences of every new op's backward (the table's
 *      reference, and the attention's oneDNN path), and of the trainer's
 *      gradients through the whole imported ViT, every weight trainable;
 *   3. malformed attention patterns fail at load naming node, op, opset.
 * Run from the repo root.                                                  */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "check_grad.h"
#include "backend/backend.h"
#include "graph/model.h"
#include "ops/attention.h"
#include "train/train.h"

#define FX "tests/fixtures/onnx/"
#define GBASE 0.5f

static check_xs rng = {0x9e3779b97f4a7c15ULL};

/* NCHW [B,C,H,W] -> NHWC */
static float *to_nhwc(const float *x, int B, int C, int H, int W) {
    float *y = check_filled((size_t)B * C * H * W, 0);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) y[((size_t)b * H * W + i) * C + c] = x[((size_t)b * C + c) * H * W + i];
    return y;
}

/* ------------------------------------------------------------ PyTorch parity */

static double parity(const char *path, bool top, int n_out) {
    float *x = check_read_floats(FX "vit.in", (size_t)2 * 3 * 32 * 32);
    float *want = check_read_floats(top ? FX "vit.out" : FX "vit.feat", (size_t)2 * n_out);
    CHECK(x && want, "fixtures vit.* missing (run tests/fixtures/gen_onnx_vit.py)");
    double worst = -1;
    gr_error err = {0};
    gr_model *m = x && want ? gr_onnx_load(path, 0, 0, top, &err) : NULL;
    CHECK(m, "%s: %s", path, err.msg);
    if (m) {
        int h, w, c;
        gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &h, &w, &c);
        CHECK(h * w * c == n_out, "%s: output %dx%dx%d, want %d", path, h, w, c, n_out);
        float *xn = to_nhwc(x, 2, 3, 32, 32), *out = check_filled((size_t)2 * n_out, 0);
        if (h * w * c == n_out) {
            CHECK(gr_model_predict(m, xn, 2, -1, out, &err) == GR_OK, "%s", err.msg);
            float scale = 1;
            worst = 0;
            for (int i = 0; i < 2 * n_out; i++) scale = fmaxf(scale, fabsf(want[i]));
            for (int i = 0; i < 2 * n_out; i++) worst = fmax(worst, fabsf(out[i] - want[i]));
            printf("  %s (%s%s): max |graft - PyTorch| = %.3g (largest %.3g)\n", path, top ? "logits" : "features",
                   getenv("GRAFT_REFERENCE") ? ", reference" : "", worst, scale);
            CHECK(worst <= 1e-4 * scale, "%s: worst difference %g", path, worst);
        }
        free(xn);
        free(out);
        gr_model_free(m);
    }
    free(x);
    free(want);
    return worst;
}

static void test_parity(void) {
    parity(FX "vit.onnx", true, 10);
    parity(FX "vit.onnx", false, 32);
    parity(FX "vit_17.onnx", true, 10);
    parity(FX "vit_17.onnx", false, 32);
    parity(FX "vit_dyn.onnx", true, 10);   /* a symbolic batch: the head split from Shape nodes */
    parity(FX "vit_dyn.onnx", false, 32);
    /* torch 2.x's forms (gen_onnx_vit2.py): TorchScript exporter, opset 17;
     * dynamo exporter, opset 18, a symbolic batch                          */
    parity(FX "vit_t2.onnx", true, 10);
    parity(FX "vit_t2.onnx", false, 32);
    parity(FX "vit_t2d.onnx", true, 10);
    parity(FX "vit_t2d.onnx", false, 32);
}

/* the plain-C reference (the op table's kernels) against PyTorch too */
static void test_parity_reference(void) {
    setenv("GRAFT_REFERENCE", "1", 1);
    parity(FX "vit.onnx", true, 10);
    parity(FX "vit_17.onnx", false, 32);
    parity(FX "vit_t2d.onnx", true, 10);
    unsetenv("GRAFT_REFERENCE");
}

/* the layers the import makes: one self_attention per encoder layer with
 * its heads, the class token, the position embedding, the token selection */
static void test_structure(void) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(FX "vit.onnx", 0, 0, false, &err);
    CHECK(m, "%s", err.msg);
    if (!m) return;
    int att = 0, cls = 0, pos = 0, sel = 0, n = gr_model_num_layers(m);
    for (int i = 0; i < n; i++) {
        const gr_layer_spec *s = &m->nodes[i].s;
        if (s->op == GR_OP_ATTENTION) {
            att++;
            CHECK(s->groups == 4 && fabsf(s->alpha - 1 / sqrtf(8)) < 1e-6f, "%s: %d heads, scale %g", s->name, s->groups,
                  (double)s->alpha);
        }
        cls += s->op == GR_OP_CLS_TOKEN;
        pos += s->op == GR_OP_POS_EMBED;
        sel += s->op == GR_OP_TOKEN;
    }
    CHECK(att == 2 && cls == 1 && pos == 1 && sel == 1, "%d attention, %d class token, %d position, %d select", att, cls,
          pos, sel);
    CHECK(gr_model_find(m, "encoder/layers/encoder_layer_1/self_attention") >= 0, "attention layer not named after "
          "its module");
    CHECK(gr_model_layer_op(m, n - 1) == GR_OP_TOKEN, "the default cut is not the class token (pre-logits)");
    int h, w, c;
    gr_model_layer_shape(m, 0, &h, &w, &c);
    CHECK(h == 4 && w == 4 && c == 32, "patch embedding %dx%dx%d", h, w, c);
    /* a .gft round trip keeps heads, scale, token index and the weights */
    char path[] = "/tmp/graft_vit_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK(gr_model_save(m, path, NULL, &err) == GR_OK, "save: %s", err.msg);
    gr_model *m2 = gr_model_load(path, &err);
    CHECK(m2, "load: %s", err.msg);
    if (m2) {
        float *x = check_xs_fill(&rng, (size_t)32 * 32 * 3, 1.0f), o1[32], o2[32];
        CHECK(gr_model_predict(m, x, 1, -1, o1, &err) == GR_OK && gr_model_predict(m2, x, 1, -1, o2, &err) == GR_OK,
              "%s", err.msg);
        CHECK(!memcmp(o1, o2, sizeof o1), "the reloaded ViT predicts differently");
        free(x);
        gr_model_free(m2);
    }
    unlink(path);
    gr_model_free(m);
}

/* ------------------------------------------------------------ op gradients */

typedef struct {
    gr_layer_spec s;
    gr_op_run r;
    float *out, *R;
    size_t nout;
    bool fast;   /* the attention's oneDNN path instead of the table's reference */
} opcase;

static void oc_init(opcase *c, gr_layer_spec s, int B, gr_dims3 in, const float *x, float *const *p) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->r.s = &c->s;
    c->r.B = B;
    c->r.n_in = 1;
    c->r.in[0] = in;
    c->r.ins[0] = x;
    gr_error e;
    const gr_op_def *d = gr_op_get(s.op);
    c->r.out = in;
    CHECK(d && (!d->shape || d->shape(&c->s, &in, 1, &c->r.out, &e) == GR_OK), "shape rule refused the case");
    for (int k = 0; p && k < GR_OP_MAX_PARAMS; k++) c->r.p[k] = p[k];
    c->nout = (size_t)B * (size_t)gr_dims3_size(c->r.out);
    c->out = check_filled(c->nout, 0);
    c->R = check_xs_fill(&rng, c->nout, 1.0f);
    size_t na = gr_op_aux_floats(&c->s, &in, &c->r.out, B);
    c->r.aux = na ? check_filled(na, 0) : NULL;
    c->r.training = true;
}
static void oc_free(opcase *c) { free(c->out); free(c->R); free(c->r.aux); }

static void oc_forward(opcase *c) {
    gr_error e = {0};
    if (c->fast) CHECK(gr_attention_run(&c->r, c->out, c->r.aux, gr_gemm, &e) == GR_OK, "%s", e.msg);
    else gr_op_forward(&c->r, c->out);
}

static double oc_loss(opcase *c) {
    oc_forward(c);
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->out[i] * c->R[i];
    return s;
}

static void oc_backward(opcase *c, float *const *din, float *const *dp) {
    oc_forward(c);
    gr_error e = {0};
    if (c->fast) CHECK(gr_attention_grad(&c->r, c->R, din[0], dp, gr_gemm, &e) == GR_OK, "%s", e.msg);
    else gr_op_get(c->s.op)->backward(&c->r, c->out, c->R, din, dp);
}

/* what the backward added to g (it started at GBASE) against central differences in x */
static void fd_check(opcase *c, const char *what, float *x, size_t n, const float *g) {
    float *num = check_filled(n, 0), *got = check_filled(n, 0);
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        const float x0 = x[i];
        x[i] = x0 + h;
        const double lp = oc_loss(c);
        x[i] = x0 - h;
        const double lm = oc_loss(c);
        x[i] = x0;
        num[i] = (float)((lp - lm) / ((double)(x0 + h) - (double)(x0 - h)));
        got[i] = g[i] - GBASE;
    }
    CHECK_CLOSE(what, got, num, n, 3e-3, 3e-3);
    free(num);
    free(got);
}

static void test_token_ops_fd(void) {
    gr_dims3 in = {2, 3, 4};
    size_t nx = 2 * 24;
    /* class token */
    {
        float *x = check_xs_fill(&rng, nx, 1.0f), *tok = check_xs_fill(&rng, 4, 1.0f);
        float *gx = check_filled(nx, GBASE), *gt = check_filled(4, GBASE);
        float *p[GR_OP_MAX_PARAMS] = {tok}, *din[1] = {gx}, *dp[GR_OP_MAX_PARAMS] = {gt};
        opcase c;
        oc_init(&c, gr_class_token(), 2, in, x, p);
        CHECK(c.r.out.h == 1 && c.r.out.w == 7 && c.r.out.c == 4, "class token output %dx%dx%d", c.r.out.h, c.r.out.w,
              c.r.out.c);
        oc_forward(&c);
        CHECK(c.out[0] == tok[0] && c.out[4] == x[0] && c.out[28 + 3] == tok[3] && c.out[28 + 4] == x[24],
              "class token forward");
        oc_backward(&c, din, dp);
        fd_check(&c, "class_token din", x, nx, gx);
        fd_check(&c, "class_token dtoken", tok, 4, gt);
        oc_free(&c);
        free(x); free(tok); free(gx); free(gt);
    }
    /* position embedding */
    {
        float *x = check_xs_fill(&rng, nx, 1.0f), *emb = check_xs_fill(&rng, 24, 1.0f);
        float *gx = check_filled(nx, GBASE), *ge = check_filled(24, GBASE);
        float *p[GR_OP_MAX_PARAMS] = {emb}, *din[1] = {gx}, *dp[GR_OP_MAX_PARAMS] = {ge};
        opcase c;
        oc_init(&c, gr_pos_embedding(), 2, in, x, p);
        oc_forward(&c);
        CHECK(c.out[30] == x[30] + emb[6], "position embedding forward");
        oc_backward(&c, din, dp);
        fd_check(&c, "position_embedding din", x, nx, gx);
        fd_check(&c, "position_embedding dembedding", emb, 24, ge);
        oc_free(&c);
        free(x); free(emb); free(gx); free(ge);
    }
    /* select token 4 of the 6 */
    {
        float *x = check_xs_fill(&rng, nx, 1.0f), *gx = check_filled(nx, GBASE);
        float *din[1] = {gx}, *dp[GR_OP_MAX_PARAMS] = {NULL};
        opcase c;
        oc_init(&c, gr_select_token(4), 2, in, x, NULL);
        oc_forward(&c);
        CHECK(c.nout == 8 && c.out[1] == x[17] && c.out[4 + 2] == x[24 + 18], "select_token forward");
        oc_backward(&c, din, dp);
        fd_check(&c, "select_token din", x, nx, gx);
        oc_free(&c);
        free(x); free(gx);
    }
    /* bad specs */
    gr_error e = {0};
    gr_layer_spec s = gr_select_token(6);
    gr_dims3 o;
    CHECK(gr_op_get(GR_OP_TOKEN)->shape(&s, &in, 1, &o, &e) == GR_ERR_SHAPE && strstr(e.msg, "token 6 of 6"),
          "select_token past the end: %s", e.msg);
    s = gr_attention(3);
    CHECK(gr_op_get(GR_OP_ATTENTION)->shape(&s, &in, 1, &o, &e) == GR_ERR_SHAPE && strstr(e.msg, "3 heads do not divide"),
          "3 heads of 4 channels: %s", e.msg);
    CHECK(gr_op_parse("self_attention") == GR_OP_ATTENTION && gr_op_parse("class_token") == GR_OP_CLS_TOKEN &&
              gr_op_parse("position_embedding") == GR_OP_POS_EMBED && gr_op_parse("select_token") == GR_OP_TOKEN,
          "op names do not round-trip");
}

/* a hand-computed attention: one head, two tokens of width 1, identity
 * projections: out_t = sum_j softmax_j(x_t x_j) x_j                        */
static void test_attention_by_hand(void) {
    float x[2] = {1.0f, 2.0f}, wi[3] = {1, 1, 1}, bi[3] = {0, 0, 0}, wo[1] = {1}, bo[1] = {0};
    float *p[GR_OP_MAX_PARAMS] = {wi, bi, wo, bo};
    opcase c;
    oc_init(&c, gr_attention(1), 1, (gr_dims3){1, 2, 1}, x, p);
    oc_forward(&c);
    double e11 = exp(1.0), e12 = exp(2.0), e22 = exp(4.0);
    double want0 = (e11 * 1 + e12 * 2) / (e11 + e12), want1 = (e12 * 1 + e22 * 2) / (e12 + e22);
    CHECK(fabs(c.out[0] - want0) < 1e-6 && fabs(c.out[1] - want1) < 1e-6, "attention by hand: %g %g, want %g %g",
          (double)c.out[0], (double)c.out[1], want0, want1);
    oc_free(&c);
}

static void attention_fd(bool fast) {
    const int B = 2, D = 8, heads = 2;
    gr_dims3 in = {1, 5, D};
    size_t nx = (size_t)B * 5 * D;
    float *x = check_xs_fill(&rng, nx, 1.0f);
    size_t np[4] = {(size_t)D * 3 * D, 3 * (size_t)D, (size_t)D * D, (size_t)D};
    float *p[GR_OP_MAX_PARAMS], *g[GR_OP_MAX_PARAMS], *gx = check_filled(nx, GBASE);
    for (int k = 0; k < 4; k++) { p[k] = check_xs_fill(&rng, np[k], 0.6f); g[k] = check_filled(np[k], GBASE); }
    opcase c;
    gr_layer_spec s = gr_attention(heads);
    s.alpha = fast ? 0.0f : 0.4f;   /* the default 1/sqrt(head width), and a scale of its own */
    oc_init(&c, s, B, in, x, p);
    c.fast = fast;
    float *din[1] = {gx};
    oc_backward(&c, din, g);
    const char *kinds[4] = {"in_kernel", "in_bias", "out_kernel", "out_bias"};
    char what[80];
    snprintf(what, sizeof what, "attention%s din", fast ? " (oneDNN)" : "");
    fd_check(&c, what, x, nx, gx);
    for (int k = 0; k < 4; k++) {
        snprintf(what, sizeof what, "attention%s d%s", fast ? " (oneDNN)" : "", kinds[k]);
        fd_check(&c, what, p[k], np[k], g[k]);
    }
    /* the reference and the oneDNN path compute the same forward */
    float *o2 = check_filled(c.nout, 0);
    gr_error e = {0};
    oc_forward(&c);
    CHECK(gr_attention_run(&c.r, o2, c.r.aux, gr_gemm, &e) == GR_OK, "%s", e.msg);
    CHECK_CLOSE("attention reference vs oneDNN", o2, c.out, c.nout, 1e-5, 1e-5);
    free(o2);
    oc_free(&c);
    for (int k = 0; k < 4; k++) { free(p[k]); free(g[k]); }
    free(x);
    free(gx);
}

static void test_attention_fd(void) {
    attention_fd(false);
    attention_fd(true);
}

/* ------------------------------------------------------------ whole model */

/* The trainer's gradient of the mean cross-entropy through the imported
 * ViT, every weight trainable (a softmax on the logits), against central
 * finite differences at one sampled weight of every parameter.           */
static void test_finetune_gradients(void) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(FX "vit.onnx", 0, 0, true, &err);
    CHECK(m, "%s", err.msg);
    if (!m) return;
    CHECK(gr_model_append(m, gr_softmax(), &err) >= 0, "%s", err.msg);
    float *x = check_read_floats(FX "vit.in", (size_t)2 * 3 * 32 * 32), *xn = x ? to_nhwc(x, 2, 3, 32, 32) : NULL;
    int labels[2] = {3, 7};
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f}), .max_batch = 2};
    gr_trainer *t = xn ? gr_trainer_new(m, 0, &o, &err) : NULL;
    CHECK(t, "trainer: %s", err.msg);
    check_fd_result fr;
    if (t && check_model_fd(t, m, xn, labels, 2, 1, 1, 3e-4f, 777, &fr, &err) == 0) {
        printf("  vit.onnx: %d weights, worst |analytic - finite difference| = %.3g, %d off\n", fr.tried, fr.worst,
               fr.bad);
        CHECK(fr.tried >= 30 && fr.bad * 20 <= fr.tried, "%d of %d gradients differ from finite differences", fr.bad,
              fr.tried);
    } else CHECK(0, "gradients: %s", err.msg);
    gr_trainer_free(t);
    gr_model_free(m);
    free(x);
    free(xn);
}

/* ------------------------------------------------------------ errors */

static void expect_error_opset(const char *path, const char *opset, const char *f1, const char *f2) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(path, 0, 0, true, &err);
    CHECK(!m, "%s loaded", path);
    gr_model_free(m);
    CHECK(err.code == GR_ERR_UNSUPPORTED, "%s: code %d (%s)", path, err.code, err.msg);
    CHECK(strstr(err.msg, path) && strstr(err.msg, opset), "%s: file or opset not named: %s", path, err.msg);
    CHECK(strstr(err.msg, f1), "%s: '%s' not in: %s", path, f1, err.msg);
    CHECK(strstr(err.msg, f2), "%s: '%s' not in: %s", path, f2, err.msg);
}

static void expect_error(const char *path, const char *f1, const char *f2) {
    expect_error_opset(path, "opset 13", f1, f2);
}

static void test_malformed(void) {
    expect_error_opset(FX "bad_vit_t2d_softmax.onnx", "opset 18", "(Softmax", "softmax over axis 2");
    expect_error_opset(FX "bad_vit_t2d_pick.onnx", "opset 18", "(Gather", "picks q a second time");
    expect_error(FX "bad_vit_softmax.onnx", "'/encoder/layers/encoder_layer_0/self_attention/Softmax' (Softmax",
                 "softmax over axis 1");
    expect_error(FX "bad_vit_heads.onnx", "'/encoder/layers/encoder_layer_0/self_attention/Reshape' (Reshape",
                 "must divide the width");
}

int main(void) {
    RUN(test_parity);
    RUN(test_parity_reference);
    RUN(test_structure);
    RUN(test_token_ops_fd);
    RUN(test_attention_by_hand);
    RUN(test_attention_fd);
    RUN(test_finetune_gradients);
    RUN(test_malformed);
    return check_summary();
}
