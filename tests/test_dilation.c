/* test_dilation.c — dilated convolutions (gr_layer_spec.dh/dw) against
 * independent oracles:
 *   1. PyTorch (tests/fixtures/gen_dilation.py): F.conv2d with dilation,
 *      strides, padding and groups, its output and the float64 autograd
 *      gradients of L = sum(out * R): the reference kernels (ops/conv2d.c),
 *      the oneDNN forward (gr_model_predict) and backward
 *      (gr_backend_conv2d_backward) must match them;
 *   2. central finite differences of the same L through the reference forward;
 *   3. a small net exported by torch.onnx.export (dilated, grouped, depthwise,
 *      a residual block of dilated convs): logits and features, the trainer's
 *      gradients through it against finite differences, the model file and
 *      ONNX export round trips;
 * and the bad inputs: a negative or huge dilation in a spec, 0 and -1 in an
 * ONNX file.  Run from the repo root.                                      */
#include <stdint.h>
#include <unistd.h>
#include "backend/backend.h"
#include "check.h"
#include "check_grad.h"
#include "graph/model.h"
#include "ops/ops.h"
#include "train/train.h"

#define FX "tests/fixtures/onnx/"

typedef struct {
    const char *name;
    int B, C, H, W, OC, kh, kw, sh, sw, ph, pw, dh, dw, groups;
} dcase;

/* the cases of gen_dilation.py */
static const dcase cases[] = {
    {"plain", 2, 4, 9, 11, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1},
    {"grouped", 2, 6, 12, 10, 4, 3, 2, 2, 1, 3, 1, 2, 3, 2},
    {"depthwise", 1, 5, 10, 10, 5, 3, 3, 1, 2, 0, 4, 3, 2, 5},
};

static gr_layer_spec spec_of(const dcase *c) {
    gr_layer_spec s = gr_conv2d(c->OC, c->kh, c->kw, 1, GR_PAD_EXPLICIT, GR_ACT_LINEAR);
    s.sh = c->sh, s.sw = c->sw, s.dh = c->dh, s.dw = c->dw, s.groups = c->groups, s.use_bias = true;
    s.pad_t = s.pad_b = c->ph, s.pad_l = s.pad_r = c->pw;
    return s;
}

/* L = sum(R * conv(x)) through the reference forward, in double. */
static double loss(const float *x, const float *w, const float *b, const float *R, const gr_conv_dims *d, float *out,
                   size_t nout) {
    gr_conv2d_forward(out, x, w, b, d);
    double l = 0;
    for (size_t i = 0; i < nout; i++) l += (double)R[i] * out[i];
    return l;
}

static void run_case(const dcase *c) {
    check_fx f;
    char fname[64];
    snprintf(fname, sizeof fname, "dilconv_%s", c->name);
    if (check_fx_load(&f, "tests/fixtures/ops", fname)) {
        CHECK(0, "fixture %s missing (run tests/fixtures/gen_dilation.py)", fname);
        return;
    }
    gr_error err = {0};
    gr_model *m = gr_model_new(c->H, c->W, c->C, &err);
    CHECK(m && gr_model_append(m, spec_of(c), &err) == 0, "%s: %s", c->name, err.msg);
    if (!m || m->n_nodes != 1) { gr_model_free(m); check_fx_free(&f); return; }
    const gr_node *n = &m->nodes[0];
    size_t nin = (size_t)c->B * c->H * c->W * c->C, nout = (size_t)c->B * n->oh * n->ow * n->oc;
    size_t nw = (size_t)c->kh * c->kw * (c->C / c->groups) * c->OC, nb = (size_t)c->OC;
    float *x = check_fx_get(&f, "in", nin), *kw = check_fx_get(&f, "kernel", nw), *bias = check_fx_get(&f, "bias", nb),
          *want = check_fx_get(&f, "out", nout), *R = check_fx_get(&f, "R", nout), *gdin = check_fx_get(&f, "din", nin),
          *gdw = check_fx_get(&f, "dkernel", nw), *gdb = check_fx_get(&f, "dbias", nb);
    if (!x || !kw || !bias || !want || !R || !gdin || !gdw || !gdb) { gr_model_free(m); check_fx_free(&f); return; }
    float *w = gr_param_data(m, gr_node_param(m, 0, "kernel")), *b = gr_param_data(m, gr_node_param(m, 0, "bias"));
    memcpy(w, kw, nw * sizeof(float));
    memcpy(b, bias, nb * sizeof(float));
    m->w_version++;
    gr_conv_dims d = gr_node_conv_dims(m, 0, c->B);
    CHECK(d.DH == c->dh && d.DW == c->dw, "%s: dims carry dilation %dx%d", c->name, d.DH, d.DW);
    char what[96];

    /* forward: reference and oneDNN against PyTorch */
    float *out = check_falloc(nout), *fast = check_falloc(nout);
    gr_conv2d_forward(out, x, w, b, &d);
    snprintf(what, sizeof what, "%s reference forward", c->name);
    CHECK_CLOSE(what, out, want, nout, 1e-5, 1e-5);
    CHECK(gr_model_predict(m, x, c->B, -1, fast, &err) == GR_OK, "%s: %s", c->name, err.msg);
    snprintf(what, sizeof what, "%s oneDNN forward", c->name);
    CHECK_CLOSE(what, fast, want, nout, 1e-5, 1e-5);

    /* backward: reference and oneDNN against PyTorch */
    float *din = check_falloc(nin), *dw = check_falloc(nw), *db = check_falloc(nb);
    gr_conv2d_backward(R, x, w, &d, din, dw, db);
    snprintf(what, sizeof what, "%s reference din", c->name);
    CHECK_CLOSE(what, din, gdin, nin, 1e-4, 1e-5);
    snprintf(what, sizeof what, "%s reference dkernel", c->name);
    CHECK_CLOSE(what, dw, gdw, nw, 1e-4, 1e-5);
    snprintf(what, sizeof what, "%s reference dbias", c->name);
    CHECK_CLOSE(what, db, gdb, nb, 1e-4, 1e-5);
    gr_backend *be = gr_backend_new(m, GR_PRECISION_FP32, &err);
    CHECK(be, "%s", err.msg);
    memset(din, 0, nin * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    memset(db, 0, nb * sizeof(float));
    gr_status st = be ? gr_backend_conv2d_backward(be, 0, R, x, c->B, din, dw, db, &err) : GR_ERR_ARG;
    CHECK(st == GR_OK, "%s: oneDNN backward: %s", c->name, err.msg);
    if (st == GR_OK) {
        snprintf(what, sizeof what, "%s oneDNN din", c->name);
        CHECK_CLOSE(what, din, gdin, nin, 1e-4, 1e-5);
        snprintf(what, sizeof what, "%s oneDNN dkernel", c->name);
        CHECK_CLOSE(what, dw, gdw, nw, 1e-4, 1e-5);
        snprintf(what, sizeof what, "%s oneDNN dbias", c->name);
        CHECK_CLOSE(what, db, gdb, nb, 1e-4, 1e-5);
    }
    gr_backend_free(be);

    /* the reference backward against central differences (L is linear in x and w) */
    memset(din, 0, nin * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    gr_conv2d_backward(R, x, w, &d, din, dw, NULL);
    int bad = 0;
    for (int k = 0; k < 16; k++) {
        size_t ai = (size_t)k * 7919 % nin, aw = (size_t)k * 104729 % nw;
        float *ps[2] = {x, w};
        size_t at[2] = {ai, aw};
        float an[2] = {din[ai], dw[aw]};
        for (int q = 0; q < 2; q++) {
            float keep = ps[q][at[q]], h = 0.25f;
            ps[q][at[q]] = keep + h;
            double lp = loss(x, w, b, R, &d, out, nout);
            ps[q][at[q]] = keep - h;
            double lm = loss(x, w, b, R, &d, out, nout);
            ps[q][at[q]] = keep;
            double g = (lp - lm) / (2.0 * h);
            if (fabs(g - an[q]) > 2e-3 + 1e-3 * fabs(g)) {
                printf("  %s: %s[%zu] %g, finite difference %g\n", c->name, q ? "dw" : "din", at[q], an[q], g);
                bad++;
            }
        }
    }
    CHECK(bad == 0, "%s: %d gradients differ from finite differences", c->name, bad);
    free(out); free(fast); free(din); free(dw); free(db);
    gr_model_free(m);
    check_fx_free(&f);
}

static void test_conv_cases(void) {
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) run_case(&cases[k]);
}

/* ---- the ONNX net ---------------------------------------------------------------- */

static float *to_nhwc(const float *x, int B, int C, int H, int W) {
    float *y = malloc(sizeof(float) * (size_t)B * C * H * W);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) y[((size_t)b * H * W + i) * C + c] = x[((size_t)b * C + c) * H * W + i];
    return y;
}

static float worst_diff(const float *a, const float *b, size_t n, float *scale) {
    float w = 0;
    *scale = 1;
    for (size_t i = 0; i < n; i++) w = fmaxf(w, fabsf(a[i] - b[i])), *scale = fmaxf(*scale, fabsf(b[i]));
    return w;
}

/* dil.onnx (logits or features) against PyTorch; returns the model (caller frees) */
static gr_model *onnx_parity(bool top, const float *xn) {
    gr_error err = {0};
    int n_out = top ? 10 : 12;
    float *want = check_read_floats(top ? FX "dil.out" : FX "dil.feat", (size_t)2 * n_out);
    gr_model *m = want ? gr_onnx_load(FX "dil.onnx", 0, 0, top, &err) : NULL;
    CHECK(m, "dil.onnx: %s", want ? err.msg : "fixture missing");
    if (m) {
        int dilated = 0;
        for (int i = 0; i < m->n_nodes; i++) dilated += m->nodes[i].s.dh > 1 || m->nodes[i].s.dw > 1;
        CHECK(dilated == 5, "dil.onnx: %d dilated convs, want 5", dilated);
        float *out = calloc((size_t)2 * n_out, sizeof(float)), scale;
        CHECK(gr_model_predict(m, xn, 2, -1, out, &err) == GR_OK, "%s", err.msg);
        float w = worst_diff(out, want, (size_t)2 * n_out, &scale);
        printf("  dil.onnx (%s): max |graft - PyTorch| = %.3g (scale %.3g)\n", top ? "logits" : "features", w, scale);
        CHECK(w <= 1e-4f * scale, "dil.onnx: worst difference %g", w);
        free(out);
    }
    free(want);
    return m;
}

static void test_onnx_net(void) {
    float *x = check_read_floats(FX "dil.in", (size_t)2 * 3 * 24 * 24);
    CHECK(x, "dil.in missing");
    if (!x) return;
    float *xn = to_nhwc(x, 2, 3, 24, 24);
    gr_model_free(onnx_parity(false, xn));
    gr_model *m = onnx_parity(true, xn);
    if (!m) { free(x); free(xn); return; }
    gr_error err = {0};
    float ref[20], got[20], scale;
    CHECK(gr_model_predict(m, xn, 2, -1, ref, &err) == GR_OK, "%s", err.msg);
    char dir[] = "/tmp/graft-dil-XXXXXX", p[300];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* the model file keeps the dilation */
    snprintf(p, sizeof p, "%s/m.gft", dir);
    CHECK(gr_model_save(m, p, NULL, &err) == GR_OK, "save: %s", err.msg);
    gr_model *l = gr_model_load(p, &err);
    CHECK(l, "load: %s", err.msg);
    if (l) {
        CHECK(gr_model_predict(l, xn, 2, -1, got, &err) == GR_OK, "%s", err.msg);
        CHECK(!memcmp(got, ref, sizeof got), "the reloaded model predicts differently");
        gr_model_free(l);
    }
    unlink(p);
    /* ONNX export writes the dilations; graft reads them back */
    snprintf(p, sizeof p, "%s/m.onnx", dir);
    CHECK(gr_model_export_onnx(m, p, NULL, &err) == GR_OK, "export: %s", err.msg);
    l = gr_onnx_load(p, 0, 0, true, &err);
    CHECK(l, "re-import: %s", err.msg);
    if (l) {
        CHECK(gr_model_predict(l, xn, 2, -1, got, &err) == GR_OK, "%s", err.msg);
        float w = worst_diff(got, ref, 20, &scale);
        CHECK(w <= 1e-5f * scale, "exported and re-imported: worst difference %g", w);
        gr_model_free(l);
    }
    unlink(p);
    rmdir(dir);

    /* fine-tuning through the dilated convs: the trainer's gradients (oneDNN
     * backward) against finite differences of the cross-entropy */
    int last = m->n_nodes - 1;
    for (int q = m->nodes[last].p0; q < m->nodes[last].p0 + m->nodes[last].np; q++)
        for (size_t i = 0; i < m->params[q].count; i++) gr_param_data(m, q)[i] *= 0.1f;
    m->w_version++;
    CHECK(gr_model_append(m, gr_softmax(), &err) >= 0, "%s", err.msg);
    int labels[2] = {3, 7};
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f}), .max_batch = 2};
    gr_trainer *t = gr_trainer_new(m, 0, &o, &err);
    CHECK(t, "trainer: %s", err.msg);
    check_fd_result fr;
    if (t && check_model_fd(t, m, xn, labels, 2, 1, 2, 3e-3f, 99, &fr, &err) == 0) {
        printf("  dil.onnx fine-tuning: %d weights checked, %d off\n", fr.tried, fr.bad);
        CHECK(fr.tried >= 16 && fr.bad * 20 <= fr.tried, "%d of %d gradients differ from finite differences", fr.bad,
              fr.tried);
    } else CHECK(0, "gradients: %s", err.msg);
    gr_trainer_free(t);
    gr_model_free(m);
    free(x);
    free(xn);
}

/* ---- bad inputs ------------------------------------------------------------------ */

static void test_bad(void) {
    gr_error err = {0};
    gr_model *m = gr_model_new(8, 8, 3, &err);
    if (!m) return;
    gr_layer_spec s = gr_conv2d(4, 3, 3, 1, GR_PAD_VALID, GR_ACT_LINEAR);
    s.dh = -1;
    CHECK(gr_model_append(m, s, &err) < 0 && strstr(err.msg, "dilation -1x0 must be positive"),
          "negative dilation: %s", err.msg);
    s.dh = 70000;
    CHECK(gr_model_append(m, s, &err) < 0 && strstr(err.msg, "dilation 70000x0"), "huge dilation: %s", err.msg);
    s.dh = 4;   /* spans 9 rows of an 8-row image */
    CHECK(gr_model_append(m, s, &err) < 0 && strstr(err.msg, "too small"), "span over the image: %s", err.msg);
    s.dh = 3;   /* spans 7 rows: a 2x6 output */
    CHECK(gr_model_append(m, s, &err) == 0 && m->nodes[0].oh == 2 && m->nodes[0].ow == 6, "dilation 3: %s", err.msg);
    gr_model_free(m);
    const char *files[2] = {FX "bad_dil0.onnx", FX "bad_dilneg.onnx"}, *frag[2] = {"dilation 2x0", "dilation 2x-1"};
    for (int k = 0; k < 2; k++) {
        gr_model *b = gr_onnx_load(files[k], 0, 0, true, &err);
        CHECK(!b && err.code == GR_ERR_FORMAT && strstr(err.msg, files[k]) && strstr(err.msg, frag[k]) &&
                  strstr(err.msg, "(Conv, opset 13)"),
              "%s: %s", files[k], err.msg);
        gr_model_free(b);
    }
}

int main(void) {
    RUN(test_conv_cases);
    RUN(test_onnx_net);
    RUN(test_bad);
    return check_summary();
}
