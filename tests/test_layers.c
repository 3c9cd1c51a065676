/* test_layers.c — the plain-C reference layers (src/ops/) against three
 * independent oracles:
 *   1. central finite differences of L = sum(out * R) (R random), for every
 *      backward: input AND parameter gradients, each checked to ACCUMULATE
 *      (grad buffers start at GBASE, the test subtracts it);
 *   2. PyTorch fixtures tests/fixtures/layers/<case>.bin (made by
 *      tests/fixtures/gen_layers.py; format described there);
 *   3. hand-computed conv2d and darknet-style odd-size maxpool.
 * Also: results independent of the OpenMP thread count (bitwise).
 * Run from the repo root (the fixtures path is relative).  CHECK_VERBOSE=1
 * prints the worst difference of every comparison.                          */
#include <stdint.h>
#include <omp.h>
#include "check.h"
#include "ops/ops.h"

#define GBASE 0.5f   /* initial value of every gradient buffer */

/* ---- small helpers --------------------------------------------------------- */
/* grad - GBASE into a fresh array (what the backward added) */
static float *added(const float *g, size_t n) {
    float *p = check_filled(n, 0);
    for (size_t i = 0; i < n; i++) p[i] = g[i] - GBASE;
    return p;
}

/* ---- the layer under finite-difference test --------------------------------- */
typedef enum { K_CONV, K_DENSE, K_BN, K_BNT, K_ACT, K_SOFTMAX, K_MAX, K_AVG, K_GAP,
               K_DROP, K_ADD, K_CONCAT, K_STD } kind;
typedef struct {
    kind k;
    gr_conv_dims cd;
    gr_pool_dims pd;
    int B, IN, OUT, C, HW;
    int64_t N;
    float eps, alpha;
    gr_act act;
    float *in, *in2, *w, *b, *gamma, *beta, *mean, *var, *mask, *std;
    float bmean[64], bvar[64];
    int cs[2];
    size_t nin, nout;
    float *out, *R;
} layer;

static void lforward(layer *t) {
    switch (t->k) {
    case K_CONV: gr_conv2d_forward(t->out, t->in, t->w, t->b, &t->cd); break;
    case K_DENSE: gr_dense_forward(t->out, t->in, t->w, t->b, t->B, t->IN, t->OUT); break;
    case K_BN:
        gr_batchnorm_forward(t->out, t->in, t->gamma, t->beta, t->mean, t->var, t->eps, t->N, t->C);
        break;
    case K_BNT:
        gr_batchnorm_forward_train(t->out, t->in, t->gamma, t->beta, t->eps, t->N, t->C,
                                   t->bmean, t->bvar);
        break;
    case K_ACT: gr_act_forward(t->out, t->in, t->nin, t->act, t->alpha); break;
    case K_SOFTMAX: gr_softmax_forward(t->out, t->in, t->N, t->C); break;
    case K_MAX: gr_maxpool_forward(t->out, t->in, &t->pd); break;
    case K_AVG: gr_avgpool_forward(t->out, t->in, &t->pd); break;
    case K_GAP: gr_gap_forward(t->out, t->in, t->B, t->HW, t->C); break;
    case K_DROP: gr_dropout_forward(t->out, t->in, t->mask, t->nin); break;
    case K_ADD: {
        const float *ins[2] = {t->in, t->in2};
        gr_add_forward(t->out, ins, 2, t->nin);
        break;
    }
    case K_CONCAT: {
        const float *ins[2] = {t->in, t->in2};
        gr_concat_forward(t->out, ins, t->cs, 2, t->N);
        break;
    }
    case K_STD: gr_standardize_forward(t->out, t->in, t->mean, t->std, t->N, t->C); break;
    }
}

static double lloss(layer *t) {
    lforward(t);
    double s = 0;
    for (size_t i = 0; i < t->nout; i++) s += (double)t->out[i] * t->R[i];
    return s;
}

/* Compares got (what backward added) with central differences of the loss
 * with respect to x[0..n). */
static void fd_check(layer *t, const char *what, float *x, size_t n, const float *got,
                     float h, double atol, double rtol) {
    float *num = check_filled(n, 0);
    for (size_t i = 0; i < n; i++) {
        const float x0 = x[i];
        x[i] = x0 + h;
        const double lp = lloss(t);
        x[i] = x0 - h;
        const double lm = lloss(t);
        x[i] = x0;
        /* the step actually taken in float */
        num[i] = (float)((lp - lm) / ((double)(x0 + h) - (double)(x0 - h)));
    }
    CHECK_CLOSE(what, got, num, n, atol, rtol);
    free(num);
    lforward(t);   /* restore outputs / batch statistics of the unperturbed input */
}

static void lalloc(layer *t, check_xs *r) {
    t->out = check_filled(t->nout, 0);
    t->R = check_xs_fill(r, t->nout, 1.0f);
}
static void lfree(layer *t) {
    free(t->in); free(t->in2); free(t->w); free(t->b); free(t->gamma); free(t->beta);
    free(t->mean); free(t->var); free(t->mask); free(t->std); free(t->out); free(t->R);
}

/* ---- 1. finite differences ---------------------------------------------------- */
static void fd_conv(int B, int H, int W, int C, int OC, int K, int S, int PT, int PB,
                    int PL, int PR, int groups, int bias, uint64_t seed) {
    check_xs r = {seed};
    layer t = {0};
    t.k = K_CONV;
    gr_conv_dims d = {B, H, W, C, (H + PT + PB - K) / S + 1, (W + PL + PR - K) / S + 1, OC,
                      K, K, S, S, PT, PL, groups, 1, 1};
    t.cd = d;
    t.nin = (size_t)B * H * W * C;
    const size_t nw = (size_t)K * K * (C / groups) * OC;
    t.nout = (size_t)B * d.OH * d.OW * OC;
    t.in = check_xs_fill(&r, t.nin, 1.0f);
    t.w = check_xs_fill(&r, nw, 0.5f);
    t.b = bias ? check_xs_fill(&r, OC, 1.0f) : NULL;
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(t.nin, GBASE), *dw = check_filled(nw, GBASE), *db = check_filled(OC, GBASE);
    gr_conv2d_backward(t.R, t.in, t.w, &t.cd, din, dw, bias ? db : NULL);
    float *a = added(din, t.nin);
    fd_check(&t, "conv din", t.in, t.nin, a, 1e-2f, 1e-3, 1e-3);
    free(a);
    a = added(dw, nw);
    fd_check(&t, "conv dw", t.w, nw, a, 1e-2f, 1e-3, 1e-3);
    free(a);
    if (bias) {
        a = added(db, OC);
        fd_check(&t, "conv db", t.b, OC, a, 1e-2f, 1e-3, 1e-3);
        free(a);
    } else {
        for (int o = 0; o < OC; o++) CHECK(db[o] == GBASE, "db touched though NULL passed");
    }
    /* NULL grads are skipped; a dw-only call adds the same dw again */
    gr_conv2d_backward(t.R, t.in, t.w, &t.cd, NULL, NULL, NULL);
    float *dw2 = check_filled(nw, GBASE);
    gr_conv2d_backward(t.R, t.in, t.w, &t.cd, NULL, dw2, NULL);
    CHECK_CLOSE("conv dw-only call", dw2, dw, nw, 0, 0);
    free(dw2); free(din); free(dw); free(db);
    lfree(&t);
}

static void test_fd_conv_same(void) { fd_conv(2, 4, 5, 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 11); }
static void test_fd_conv_stride2_asym(void) { fd_conv(1, 6, 5, 2, 3, 3, 2, 0, 1, 1, 1, 1, 1, 12); }
static void test_fd_conv_depthwise(void) { fd_conv(2, 4, 4, 3, 6, 3, 1, 1, 1, 1, 1, 3, 1, 13); }
static void test_fd_conv_groups_nobias(void) { fd_conv(1, 5, 4, 4, 6, 2, 2, 1, 0, 0, 1, 2, 0, 14); }

static void test_fd_dense(void) {
    check_xs r = {21};
    layer t = {0};
    t.k = K_DENSE; t.B = 3; t.IN = 6; t.OUT = 5;
    t.nin = 18; t.nout = 15;
    t.in = check_xs_fill(&r, t.nin, 1.0f); t.w = check_xs_fill(&r, 30, 0.5f); t.b = check_xs_fill(&r, 5, 1.0f);
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(18, GBASE), *dw = check_filled(30, GBASE), *db = check_filled(5, GBASE);
    gr_dense_backward(t.R, t.in, t.w, 3, 6, 5, din, dw, db);
    float *a = added(din, 18); fd_check(&t, "dense din", t.in, 18, a, 1e-2f, 1e-3, 1e-3); free(a);
    a = added(dw, 30); fd_check(&t, "dense dw", t.w, 30, a, 1e-2f, 1e-3, 1e-3); free(a);
    a = added(db, 5); fd_check(&t, "dense db", t.b, 5, a, 1e-2f, 1e-3, 1e-3); free(a);
    gr_dense_backward(t.R, t.in, t.w, 3, 6, 5, NULL, NULL, NULL);
    free(din); free(dw); free(db);
    lfree(&t);
}

static void fd_bn(int train, int with_affine) {
    check_xs r = {31 + (uint64_t)train};
    layer t = {0};
    t.k = train ? K_BNT : K_BN; t.N = 12; t.C = 3; t.eps = 1e-3f;
    t.nin = t.nout = 36;
    t.in = check_xs_fill(&r, t.nin, 2.0f);
    t.gamma = with_affine ? check_xs_fill(&r, 3, 1.5f) : NULL;
    t.beta = with_affine ? check_xs_fill(&r, 3, 1.0f) : NULL;
    t.mean = check_xs_fill(&r, 3, 0.5f);
    t.var = check_filled(3, 0);
    for (int c = 0; c < 3; c++) t.var[c] = 0.5f + check_xs_u(&r);
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(36, GBASE), *dg = check_filled(3, GBASE), *dbt = check_filled(3, GBASE);
    if (train)
        gr_batchnorm_backward_train(t.R, t.in, t.gamma, t.bmean, t.bvar, t.eps, t.N, t.C,
                                    din, dg, dbt);
    else
        gr_batchnorm_backward(t.R, t.in, t.gamma, t.mean, t.var, t.eps, t.N, t.C, din, dg, dbt);
    float *a = added(din, 36);
    fd_check(&t, "bn din", t.in, 36, a, 1e-2f, 2e-3, 2e-3);
    free(a);
    if (with_affine) {
        a = added(dg, 3); fd_check(&t, "bn dgamma", t.gamma, 3, a, 1e-2f, 1e-3, 1e-3); free(a);
        a = added(dbt, 3); fd_check(&t, "bn dbeta", t.beta, 3, a, 1e-2f, 1e-3, 1e-3); free(a);
    }
    if (train) {   /* batch statistics written: mean and biased variance */
        for (int c = 0; c < 3; c++) {
            double m = 0, v = 0;
            for (int n = 0; n < 12; n++) m += t.in[n * 3 + c];
            m /= 12;
            for (int n = 0; n < 12; n++) v += (t.in[n * 3 + c] - m) * (t.in[n * 3 + c] - m);
            v /= 12;
            CHECK(fabs(t.bmean[c] - m) < 1e-5 && fabs(t.bvar[c] - v) < 1e-5,
                  "channel %d: bmean %g want %g, bvar %g want %g", c, t.bmean[c], m, t.bvar[c], v);
        }
    }
    free(din); free(dg); free(dbt);
    lfree(&t);
}
static void test_fd_batchnorm_eval(void) { fd_bn(0, 1); fd_bn(0, 0); }
static void test_fd_batchnorm_train(void) { fd_bn(1, 1); fd_bn(1, 0); }

/* values in [-8, 8] at least 0.05 away from the kinks 0 and 6 */
static float *fill_off_kinks(check_xs *r, size_t n) {
    float *p = check_xs_fill(r, n, 8.0f);
    for (size_t i = 0; i < n; i++) {
        if (fabsf(p[i]) < 0.05f) p[i] += p[i] < 0 ? -0.1f : 0.1f;
        if (fabsf(p[i] - 6.0f) < 0.05f) p[i] += 0.1f;
    }
    return p;
}

static void test_fd_activations(void) {
    const gr_act acts[] = {GR_ACT_LINEAR, GR_ACT_RELU, GR_ACT_LEAKY, GR_ACT_RELU6,
                           GR_ACT_SIGMOID, GR_ACT_TANH};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        check_xs r = {41 + k};
        layer t = {0};
        t.k = K_ACT; t.act = acts[k]; t.alpha = 0.1f;
        t.nin = t.nout = 40;
        t.in = fill_off_kinks(&r, 40);
        if (acts[k] == GR_ACT_SIGMOID || acts[k] == GR_ACT_TANH)
            for (int i = 0; i < 40; i++) t.in[i] *= 0.4f;   /* keep the slope non-tiny */
        lalloc(&t, &r);
        lforward(&t);
        float *din = check_filled(40, GBASE);
        gr_act_backward(t.R, t.in, t.out, 40, t.act, t.alpha, din);
        float *a = added(din, 40);
        char what[64];
        snprintf(what, sizeof what, "act %d din", (int)acts[k]);
        fd_check(&t, what, t.in, 40, a, 1e-2f, 1e-3, 1e-3);
        free(a); free(din);
        lfree(&t);
    }
    /* spot values: relu6 clamps, leaky scales, sigmoid(0) = 0.5 */
    const float x[4] = {-2, 0, 3, 7};
    float y[4];
    gr_act_forward(y, x, 4, GR_ACT_RELU6, 0);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 3 && y[3] == 6, "relu6 %g %g %g %g", y[0], y[1], y[2], y[3]);
    gr_act_forward(y, x, 4, GR_ACT_LEAKY, 0.1f);
    CHECK(fabsf(y[0] + 0.2f) < 1e-7f && y[2] == 3, "leaky %g %g", y[0], y[2]);
    gr_act_forward(y, x, 4, GR_ACT_SIGMOID, 0);
    CHECK(y[1] == 0.5f, "sigmoid(0) %g", y[1]);
}

static void test_fd_softmax(void) {
    check_xs r = {51};
    layer t = {0};
    t.k = K_SOFTMAX; t.N = 3; t.C = 7;
    t.nin = t.nout = 21;
    t.in = check_xs_fill(&r, 21, 3.0f);
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(21, GBASE);
    gr_softmax_backward(t.R, t.out, t.N, t.C, din);
    float *a = added(din, 21);
    fd_check(&t, "softmax din", t.in, 21, a, 1e-2f, 1e-3, 1e-3);
    free(a); free(din);
    for (int n = 0; n < 3; n++) {   /* rows sum to 1 */
        double s = 0;
        for (int c = 0; c < 7; c++) s += t.out[n * 7 + c];
        CHECK(fabs(s - 1) < 1e-6, "row %d sums to %g", n, s);
    }
    lfree(&t);
}

/* a permutation of distinct values 0.1 apart: no ties, no flip within +-h */
static float *fill_distinct(check_xs *r, size_t n) {
    float *p = check_filled(n, 0);
    for (size_t i = 0; i < n; i++) p[i] = 0.1f * (float)i - 0.05f * (float)n;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(check_xs_u(r) * (float)i);
        if (j >= i) j = i - 1;
        float tmp = p[i - 1]; p[i - 1] = p[j]; p[j] = tmp;
    }
    return p;
}

static void fd_pool(kind k, int B, int H, int W, int C, int K, int S, int PT, int PB, int PL,
                    int PR, uint64_t seed) {
    check_xs r = {seed};
    layer t = {0};
    t.k = k;
    gr_pool_dims d = {B, H, W, C, (H + PT + PB - K) / S + 1, (W + PL + PR - K) / S + 1,
                      K, K, S, S, PT, PL};
    t.pd = d;
    t.nin = (size_t)B * H * W * C;
    t.nout = (size_t)B * d.OH * d.OW * C;
    t.in = fill_distinct(&r, t.nin);
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(t.nin, GBASE);
    if (k == K_MAX) gr_maxpool_backward(t.R, t.in, &t.pd, din);
    else gr_avgpool_backward(t.R, &t.pd, din);
    float *a = added(din, t.nin);
    fd_check(&t, k == K_MAX ? "maxpool din" : "avgpool din", t.in, t.nin, a, 1e-2f, 1e-3, 1e-3);
    free(a); free(din);
    lfree(&t);
}
static void test_fd_maxpool(void) {
    fd_pool(K_MAX, 2, 5, 5, 2, 2, 2, 0, 1, 0, 1, 61);   /* darknet odd size */
    fd_pool(K_MAX, 1, 6, 6, 3, 3, 2, 1, 1, 1, 1, 62);
    fd_pool(K_MAX, 1, 4, 4, 2, 2, 1, 0, 1, 0, 1, 63);   /* darknet size 2 stride 1 */
}
static void test_fd_avgpool(void) {
    fd_pool(K_AVG, 2, 5, 5, 2, 3, 1, 1, 1, 1, 1, 64);   /* 'same' with padding */
    fd_pool(K_AVG, 1, 6, 5, 3, 3, 2, 0, 1, 1, 1, 65);
    fd_pool(K_AVG, 1, 4, 4, 2, 2, 2, 0, 0, 0, 0, 66);
}

static void test_fd_gap(void) {
    check_xs r = {71};
    layer t = {0};
    t.k = K_GAP; t.B = 2; t.HW = 6; t.C = 3;
    t.nin = 36; t.nout = 6;
    t.in = check_xs_fill(&r, 36, 1.0f);
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(36, GBASE);
    gr_gap_backward(t.R, 2, 6, 3, din);
    float *a = added(din, 36);
    fd_check(&t, "gap din", t.in, 36, a, 1e-2f, 1e-3, 1e-3);
    free(a); free(din);
    lfree(&t);
}

static void test_fd_dropout(void) {
    check_xs r = {81};
    layer t = {0};
    t.k = K_DROP; t.nin = t.nout = 30;
    t.in = check_xs_fill(&r, 30, 1.0f);
    t.mask = check_filled(30, 0);
    for (int i = 0; i < 30; i++) t.mask[i] = check_xs_u(&r) < 0.3f ? 0.0f : 1.0f / 0.7f;
    lalloc(&t, &r);
    lforward(&t);
    float *din = check_filled(30, GBASE);
    gr_dropout_backward(t.R, t.mask, 30, din);
    float *a = added(din, 30);
    fd_check(&t, "dropout din", t.in, 30, a, 1e-2f, 1e-3, 1e-3);
    free(a); free(din);
    lfree(&t);
}

static void test_fd_add(void) {
    check_xs r = {91};
    layer t = {0};
    t.k = K_ADD; t.nin = t.nout = 20;
    t.in = check_xs_fill(&r, 20, 1.0f); t.in2 = check_xs_fill(&r, 20, 1.0f);
    lalloc(&t, &r);
    lforward(&t);
    float *d1 = check_filled(20, GBASE), *d2 = check_filled(20, GBASE);
    float *const dins[2] = {d1, d2};
    gr_add_backward(t.R, 2, 20, dins);
    float *a = added(d1, 20); fd_check(&t, "add din0", t.in, 20, a, 1e-2f, 1e-3, 1e-3); free(a);
    a = added(d2, 20); fd_check(&t, "add din1", t.in2, 20, a, 1e-2f, 1e-3, 1e-3); free(a);
    float *const dnull[2] = {NULL, d2};
    gr_add_backward(t.R, 2, 20, dnull);   /* NULL entry skipped */
    free(d1); free(d2);
    lfree(&t);
}

static void test_fd_concat(void) {
    check_xs r = {101};
    layer t = {0};
    t.k = K_CONCAT; t.N = 6; t.cs[0] = 2; t.cs[1] = 3;
    t.nin = 12; t.nout = 30;
    t.in = check_xs_fill(&r, 12, 1.0f); t.in2 = check_xs_fill(&r, 18, 1.0f);
    lalloc(&t, &r);
    lforward(&t);
    CHECK(t.out[0] == t.in[0] && t.out[2] == t.in2[0] && t.out[5] == t.in[2],
          "concat layout wrong");
    float *d1 = check_filled(12, GBASE), *d2 = check_filled(18, GBASE);
    float *const dins[2] = {d1, d2};
    gr_concat_backward(t.R, t.cs, 2, t.N, dins);
    float *a = added(d1, 12); fd_check(&t, "concat din0", t.in, 12, a, 1e-2f, 1e-3, 1e-3); free(a);
    a = added(d2, 18); fd_check(&t, "concat din1", t.in2, 18, a, 1e-2f, 1e-3, 1e-3); free(a);
    float *const dnull[2] = {d1, NULL};
    gr_concat_backward(t.R, t.cs, 2, t.N, dnull);
    free(d1); free(d2);
    lfree(&t);
}

static void test_fd_standardize(void) {
    check_xs r = {111};
    layer t = {0};
    t.k = K_STD; t.N = 5; t.C = 4;
    t.nin = t.nout = 20;
    t.in = check_xs_fill(&r, 20, 3.0f); t.mean = check_xs_fill(&r, 4, 1.0f);
    t.std = check_filled(4, 0);
    for (int f = 0; f < 4; f++) t.std[f] = 0.3f + 2 * check_xs_u(&r);
    lalloc(&t, &r);
    lforward(&t);
    CHECK(fabsf(t.out[5] - (t.in[5] - t.mean[1]) / t.std[1]) < 1e-6f, "standardize value");
    float *din = check_filled(20, GBASE);
    gr_standardize_backward(t.R, t.std, 5, 4, din);
    float *a = added(din, 20);
    fd_check(&t, "standardize din", t.in, 20, a, 1e-2f, 1e-3, 1e-3);
    free(a); free(din);
    lfree(&t);
}

/* ---- 2. PyTorch fixtures ----------------------------------------------------- */
#define FX_DIR "tests/fixtures/layers"

#define PT_ATOL 1e-5
#define PT_RTOL 1e-4

static void pt_conv(const char *name, int B, int H, int W, int C, int OC, int K, int S, int PT,
                    int PB, int PL, int PR, int groups) {
    check_fx f;
    if (check_fx_load(&f, FX_DIR, name)) return;
    gr_conv_dims d = {B, H, W, C, (H + PT + PB - K) / S + 1, (W + PL + PR - K) / S + 1, OC,
                      K, K, S, S, PT, PL, groups, 1, 1};
    const size_t nin = (size_t)B * H * W * C, nw = (size_t)K * K * (C / groups) * OC;
    const size_t nout = (size_t)B * d.OH * d.OW * OC;
    float *in = check_fx_get(&f, "in", nin), *w = check_fx_get(&f, "w", nw), *b = check_fx_get(&f, "b", OC);
    float *want = check_fx_get(&f, "out", nout), *R = check_fx_get(&f, "R", nout);
    float *wdin = check_fx_get(&f, "din", nin), *wdw = check_fx_get(&f, "dw", nw), *wdb = check_fx_get(&f, "db", OC);
    if (in && w && b && want && R && wdin && wdw && wdb) {
        float *out = check_filled(nout, 0), *din = check_filled(nin, 0), *dw = check_filled(nw, 0), *db = check_filled(OC, 0);
        gr_conv2d_forward(out, in, w, b, &d);
        gr_conv2d_backward(R, in, w, &d, din, dw, db);
        char what[96];
        snprintf(what, sizeof what, "%s out", name); CHECK_CLOSE(what, out, want, nout, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s din", name); CHECK_CLOSE(what, din, wdin, nin, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s dw", name); CHECK_CLOSE(what, dw, wdw, nw, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s db", name); CHECK_CLOSE(what, db, wdb, OC, PT_ATOL, PT_RTOL);
        free(out); free(din); free(dw); free(db);
    }
    check_fx_free(&f);
}
static void test_torch_conv(void) {
    pt_conv("conv_same", 2, 5, 6, 3, 4, 3, 1, 1, 1, 1, 1, 1);
    pt_conv("conv_s2", 1, 8, 6, 4, 5, 3, 2, 0, 1, 0, 1, 1);
    pt_conv("conv_dw", 2, 5, 5, 4, 8, 3, 1, 1, 1, 1, 1, 4);
    pt_conv("conv_g2", 1, 6, 5, 4, 6, 2, 2, 1, 0, 0, 1, 2);
}

static void test_torch_dense(void) {
    check_fx f;
    if (check_fx_load(&f, FX_DIR, "dense")) return;
    float *in = check_fx_get(&f, "in", 21), *w = check_fx_get(&f, "w", 35), *b = check_fx_get(&f, "b", 5);
    float *want = check_fx_get(&f, "out", 15), *R = check_fx_get(&f, "R", 15);
    float *wdin = check_fx_get(&f, "din", 21), *wdw = check_fx_get(&f, "dw", 35), *wdb = check_fx_get(&f, "db", 5);
    if (in && w && b && want && R && wdin && wdw && wdb) {
        float out[15], din[21] = {0}, dw[35] = {0}, db[5] = {0};
        gr_dense_forward(out, in, w, b, 3, 7, 5);
        gr_dense_backward(R, in, w, 3, 7, 5, din, dw, db);
        CHECK_CLOSE("dense out", out, want, 15, PT_ATOL, PT_RTOL);
        CHECK_CLOSE("dense din", din, wdin, 21, PT_ATOL, PT_RTOL);
        CHECK_CLOSE("dense dw", dw, wdw, 35, PT_ATOL, PT_RTOL);
        CHECK_CLOSE("dense db", db, wdb, 5, PT_ATOL, PT_RTOL);
    }
    check_fx_free(&f);
}

static void pt_bn(int train) {
    check_fx f;
    const char *name = train ? "bn_train" : "bn_eval";
    if (check_fx_load(&f, FX_DIR, name)) return;
    enum { N = 24, C = 5, NC = N * C };
    const float eps = 1e-3f;
    float *in = check_fx_get(&f, "in", NC), *g = check_fx_get(&f, "gamma", C), *be = check_fx_get(&f, "beta", C);
    float *want = check_fx_get(&f, "out", NC), *R = check_fx_get(&f, "R", NC), *wdin = check_fx_get(&f, "din", NC);
    float *wdg = check_fx_get(&f, "dgamma", C), *wdb = check_fx_get(&f, "dbeta", C);
    float *m = check_fx_get(&f, train ? "bmean" : "mean", C), *v = check_fx_get(&f, train ? "bvar" : "var", C);
    if (in && g && be && want && R && wdin && wdg && wdb && m && v) {
        float out[NC], din[NC] = {0}, dg[C] = {0}, db[C] = {0}, bm[C], bv[C];
        if (train) {
            gr_batchnorm_forward_train(out, in, g, be, eps, N, C, bm, bv);
            gr_batchnorm_backward_train(R, in, g, bm, bv, eps, N, C, din, dg, db);
            CHECK_CLOSE("bn_train bmean", bm, m, C, PT_ATOL, PT_RTOL);
            CHECK_CLOSE("bn_train bvar", bv, v, C, PT_ATOL, PT_RTOL);
        } else {
            gr_batchnorm_forward(out, in, g, be, m, v, eps, N, C);
            gr_batchnorm_backward(R, in, g, m, v, eps, N, C, din, dg, db);
        }
        char what[64];
        snprintf(what, sizeof what, "%s out", name); CHECK_CLOSE(what, out, want, NC, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s din", name); CHECK_CLOSE(what, din, wdin, NC, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s dgamma", name); CHECK_CLOSE(what, dg, wdg, C, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s dbeta", name); CHECK_CLOSE(what, db, wdb, C, PT_ATOL, PT_RTOL);
    }
    check_fx_free(&f);
}
static void test_torch_batchnorm(void) { pt_bn(0); pt_bn(1); }

static void pt_pool(const char *name, int is_max, int B, int H, int W, int C, int K, int S,
                    int PT, int PB, int PL, int PR) {
    check_fx f;
    if (check_fx_load(&f, FX_DIR, name)) return;
    gr_pool_dims d = {B, H, W, C, (H + PT + PB - K) / S + 1, (W + PL + PR - K) / S + 1,
                      K, K, S, S, PT, PL};
    const size_t nin = (size_t)B * H * W * C, nout = (size_t)B * d.OH * d.OW * C;
    float *in = check_fx_get(&f, "in", nin), *want = check_fx_get(&f, "out", nout);
    float *R = check_fx_get(&f, "R", nout), *wdin = check_fx_get(&f, "din", nin);
    if (in && want && R && wdin) {
        float *out = check_filled(nout, 0), *din = check_filled(nin, 0);
        if (is_max) {
            gr_maxpool_forward(out, in, &d);
            gr_maxpool_backward(R, in, &d, din);
        } else {
            gr_avgpool_forward(out, in, &d);
            gr_avgpool_backward(R, &d, din);
        }
        char what[96];
        snprintf(what, sizeof what, "%s out", name); CHECK_CLOSE(what, out, want, nout, PT_ATOL, PT_RTOL);
        snprintf(what, sizeof what, "%s din", name); CHECK_CLOSE(what, din, wdin, nin, PT_ATOL, PT_RTOL);
        free(out); free(din);
    }
    check_fx_free(&f);
}
static void test_torch_pool(void) {
    pt_pool("maxpool_ceil", 1, 1, 5, 5, 3, 2, 2, 0, 1, 0, 1);   /* darknet size 2 stride 2, 5x5 -> 3x3 */
    pt_pool("maxpool_s1", 1, 1, 5, 5, 3, 2, 1, 0, 1, 0, 1);     /* darknet size 2 stride 1 */
    pt_pool("maxpool_p1", 1, 2, 6, 6, 2, 3, 2, 1, 1, 1, 1);
    pt_pool("avgpool_same", 0, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1);
    pt_pool("avgpool_s2", 0, 1, 6, 6, 2, 3, 2, 0, 1, 0, 1);
}

static void test_torch_softmax_leaky(void) {
    check_fx f;
    if (!check_fx_load(&f, FX_DIR, "softmax")) {
        float *in = check_fx_get(&f, "in", 40), *want = check_fx_get(&f, "out", 40);
        float *R = check_fx_get(&f, "R", 40), *wdin = check_fx_get(&f, "din", 40);
        if (in && want && R && wdin) {
            float out[40], din[40] = {0};
            gr_softmax_forward(out, in, 4, 10);
            gr_softmax_backward(R, out, 4, 10, din);
            CHECK_CLOSE("softmax out", out, want, 40, PT_ATOL, PT_RTOL);
            CHECK_CLOSE("softmax din", din, wdin, 40, PT_ATOL, PT_RTOL);
        }
        check_fx_free(&f);
    }
    if (!check_fx_load(&f, FX_DIR, "leaky")) {
        float *in = check_fx_get(&f, "in", 60), *want = check_fx_get(&f, "out", 60);
        float *R = check_fx_get(&f, "R", 60), *wdin = check_fx_get(&f, "din", 60);
        if (in && want && R && wdin) {
            float out[60], din[60] = {0};
            gr_act_forward(out, in, 60, GR_ACT_LEAKY, 0.1f);
            gr_act_backward(R, in, out, 60, GR_ACT_LEAKY, 0.1f, din);
            CHECK_CLOSE("leaky out", out, want, 60, PT_ATOL, PT_RTOL);
            CHECK_CLOSE("leaky din", din, wdin, 60, PT_ATOL, PT_RTOL);
        }
        check_fx_free(&f);
    }
}

/* ---- 3. hand-computed --------------------------------------------------------- */
static void test_hand_conv(void) {
    /* in 3x3 (1 channel) = 1..9 row-major, kernel 2x2 = [[1,2],[3,4]], bias 0.5,
     * stride 1, no padding -> 2x2:
     *   1*1+2*2+4*3+5*4+.5 = 37.5   2+6+15+24+.5 = 47.5
     *   4+10+21+32+.5      = 67.5   5+12+24+36+.5 = 77.5
     * backward with dout = 1 everywhere:
     *   din = [[1,3,2],[4,10,6],[3,7,4]]  (sum of the kernel taps that touch)
     *   dw  = [[1+2+4+5, 2+3+5+6],[4+5+7+8, 5+6+8+9]] = [[12,16],[24,28]], db = 4 */
    const float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b[1] = {0.5f};
    gr_conv_dims d = {1, 3, 3, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 1, 1, 1};
    float out[4], dout[4] = {1, 1, 1, 1}, din[9] = {0}, dw[4] = {0}, db[1] = {0};
    gr_conv2d_forward(out, in, w, b, &d);
    const float want[4] = {37.5f, 47.5f, 67.5f, 77.5f};
    CHECK_CLOSE("hand conv out", out, want, 4, 0, 0);
    gr_conv2d_backward(dout, in, w, &d, din, dw, db);
    const float wdin[9] = {1, 3, 2, 4, 10, 6, 3, 7, 4}, wdw[4] = {12, 16, 24, 28}, wdb[1] = {4};
    CHECK_CLOSE("hand conv din", din, wdin, 9, 0, 0);
    CHECK_CLOSE("hand conv dw", dw, wdw, 4, 0, 0);
    CHECK_CLOSE("hand conv db", db, wdb, 1, 0, 0);

    /* same input, 2 output channels (second kernel = [[0,0],[0,-1]]), stride 2,
     * padding 1 on top/left ('same'-like): out 2x2x2, windows start at -1:
     *   (0,0) taps in[-1..0][-1..0] -> only in[0][0]=1 at kernel (1,1)
     *   (0,1) -> in[0][1]=2 (k 1,0), in[0][2]=3 (k 1,1)
     *   (1,0) -> in[1][0]=4 (k 0,1), in[2][0]=7 (k 1,1)
     *   (1,1) -> in[1][1]=5,in[1][2]=6,in[2][1]=8,in[2][2]=9 (k 00,01,10,11)
     * ch0 (kernel 1,2,3,4): 4, 2*3+3*4=18, 4*2+7*4=36, 5+12+24+36=77
     * ch1 (kernel 0,0,0,-1): -1, -3, -7, -9                                   */
    const float w2[8] = {1, 0, 2, 0, 3, 0, 4, -1};   /* HWIO [2,2,1,2] */
    gr_conv_dims d2 = {1, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1};
    float out2[8];
    gr_conv2d_forward(out2, in, w2, NULL, &d2);
    const float want2[8] = {4, -1, 18, -3, 36, -7, 77, -9};
    CHECK_CLOSE("hand conv stride2 pad", out2, want2, 8, 0, 0);
}

static void test_hand_maxpool_darknet(void) {
    /* darknet maxpool size 2 stride 2 on 3x3 -> 2x2 (out = (3 + 1 - 2)/2 + 1):
     * the right column / bottom row windows hang off the image and must
     * ignore the missing cells (not treat them as 0):
     *   in = [[1, 5, 2], [3, 4, 9], [-8, -1, -6]]
     *   out = [[max(1,5,3,4)=5, max(2,9)=9], [max(-8,-1)=-1, -6]]
     * backward dout = [1,2,3,4] lands on 5, 9, -1, -6.                        */
    const float in[9] = {1, 5, 2, 3, 4, 9, -8, -1, -6};
    gr_pool_dims d = {1, 3, 3, 1, 2, 2, 2, 2, 2, 2, 0, 0};
    float out[4], din[9] = {0};
    const float dout[4] = {1, 2, 3, 4};
    gr_maxpool_forward(out, in, &d);
    const float want[4] = {5, 9, -1, -6};
    CHECK_CLOSE("hand maxpool out", out, want, 4, 0, 0);
    gr_maxpool_backward(dout, in, &d, din);
    const float wdin[9] = {0, 1, 0, 0, 0, 2, 0, 3, 4};
    CHECK_CLOSE("hand maxpool din", din, wdin, 9, 0, 0);
    /* ties go to the first cell in window order */
    const float tie[4] = {7, 7, 7, 7};
    float o1[1], g1[4] = {0};
    gr_pool_dims d1 = {1, 2, 2, 1, 1, 1, 2, 2, 2, 2, 0, 0};
    gr_maxpool_forward(o1, tie, &d1);
    gr_maxpool_backward(dout, tie, &d1, g1);
    CHECK(o1[0] == 7 && g1[0] == 1 && g1[1] == 0 && g1[2] == 0 && g1[3] == 0,
          "tie routed to %g %g %g %g", g1[0], g1[1], g1[2], g1[3]);
    /* avg pool 'same' 3x3 stride 1 on the same image: the corner averages
     * only its 4 inside cells: (1+5+3+4)/4 = 3.25 */
    gr_pool_dims da = {1, 3, 3, 1, 3, 3, 3, 3, 1, 1, 1, 1};
    float oa[9];
    gr_avgpool_forward(oa, in, &da);
    CHECK(fabsf(oa[0] - 3.25f) < 1e-6f && fabsf(oa[4] - 1.0f) < 1e-6f,
          "avg corner %g centre %g (want 3.25, 1)", oa[0], oa[4]);
}

/* ---- thread-count independence (bitwise) ------------------------------------- */
static void run_conv_dense(int nthreads, float *out, float *din, float *dw, float *db,
                           float *dout_d, float *ddw, const float *in, const float *w,
                           const float *b, const float *R, const gr_conv_dims *d,
                           size_t nin, size_t nw, int OC, const float *dR, const float *dwt) {
    omp_set_num_threads(nthreads);
    gr_conv2d_forward(out, in, w, b, d);
    memset(din, 0, nin * sizeof *din);
    memset(dw, 0, nw * sizeof *dw);
    memset(db, 0, OC * sizeof *db);
    gr_conv2d_backward(R, in, w, d, din, dw, db);
    /* dense [B=3, IN=40, OUT=300] on the same input prefix */
    gr_dense_forward(dout_d, in, dwt, NULL, 3, 40, 300);
    memset(ddw, 0, 40 * 300 * sizeof *ddw);
    gr_dense_backward(dR, in, dwt, 3, 40, 300, NULL, ddw, NULL);
}
static void test_thread_independence(void) {
    check_xs r = {121};
    gr_conv_dims d = {2, 9, 8, 20, 5, 4, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1};
    const size_t nin = 2 * 9 * 8 * 20, nw = 9 * 20 * 24, nout = 2 * 5 * 4 * 24;
    float *in = check_xs_fill(&r, nin, 1), *w = check_xs_fill(&r, nw, 1), *b = check_xs_fill(&r, 24, 1), *R = check_xs_fill(&r, nout, 1);
    float *dR = check_xs_fill(&r, 900, 1), *dwt = check_xs_fill(&r, 12000, 1);
    float *o[2], *di[2], *dw[2], *db[2], *od[2], *ddw[2];
    for (int k = 0; k < 2; k++) {
        o[k] = check_filled(nout, 0); di[k] = check_filled(nin, 0); dw[k] = check_filled(nw, 0);
        db[k] = check_filled(24, 0); od[k] = check_filled(900, 0); ddw[k] = check_filled(12000, 0);
        run_conv_dense(k ? 3 : 1, o[k], di[k], dw[k], db[k], od[k], ddw[k], in, w, b, R, &d,
                       nin, nw, 24, dR, dwt);
    }
    omp_set_num_threads(omp_get_num_procs());
    CHECK(!memcmp(o[0], o[1], nout * 4), "conv forward differs with thread count");
    CHECK(!memcmp(di[0], di[1], nin * 4), "conv din differs with thread count");
    CHECK(!memcmp(dw[0], dw[1], nw * 4), "conv dw differs with thread count");
    CHECK(!memcmp(db[0], db[1], 24 * 4), "conv db differs with thread count");
    CHECK(!memcmp(od[0], od[1], 900 * 4), "dense forward differs with thread count");
    CHECK(!memcmp(ddw[0], ddw[1], 12000 * 4), "dense dw differs with thread count");
    for (int k = 0; k < 2; k++) {
        free(o[k]); free(di[k]); free(dw[k]); free(db[k]); free(od[k]); free(ddw[k]);
    }
    free(in); free(w); free(b); free(R); free(dR); free(dwt);
}

int main(void) {
    RUN(test_fd_conv_same);
    RUN(test_fd_conv_stride2_asym);
    RUN(test_fd_conv_depthwise);
    RUN(test_fd_conv_groups_nobias);
    RUN(test_fd_dense);
    RUN(test_fd_batchnorm_eval);
    RUN(test_fd_batchnorm_train);
    RUN(test_fd_activations);
    RUN(test_fd_softmax);
    RUN(test_fd_maxpool);
    RUN(test_fd_avgpool);
    RUN(test_fd_gap);
    RUN(test_fd_dropout);
    RUN(test_fd_add);
    RUN(test_fd_concat);
    RUN(test_fd_standardize);
    RUN(test_torch_conv);
    RUN(test_torch_dense);
    RUN(test_torch_batchnorm);
    RUN(test_torch_pool);
    RUN(test_torch_softmax_leaky);
    RUN(test_hand_conv);
    RUN(test_hand_maxpool_darknet);
    RUN(test_thread_independence);
    return check_summary();
}
