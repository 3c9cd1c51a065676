/* test_winograd.c — graft's Winograd convolution (backend/winograd.h)
 * against two oracles: the plain-C reference conv (ops/ops.h, what the
 * fast path must agree with) and a double-precision direct sum written
 * here (the exact answer, to state the rounding error).
 *
 * Error measure: |got - exact| / S at each output, S = |bias| + sum over
 * the 3x3xC taps of |x * w| — the scale a float sum of those products is
 * rounded at (a plain float direct conv stays below ~1e-6 of it).
 * Measured here (CHECK_VERBOSE=1; random inputs and weights, and
 * VGG16-like layers: ReLU'd inputs, He-scaled weights, 64..512 channels):
 * F(2x2,3x3) <= 1.5e-7, F(4x4,3x3) <= 2.9e-6 (the reference conv itself:
 * ~1e-7); the tolerances below (1e-6, 2e-5) are ~7x those.  The whole
 * VGG16 base (13 convs, ReLU, pools) through the fast path: 2.0e-6 of the
 * output's largest value from the reference path (the direct oneDNN path:
 * 2.3e-6); tolerance 2e-5.
 *
 * Shapes: odd H/W, outputs that are not whole tiles, C and OC not
 * multiples of 8 (the AVX2 channel tail), valid and same padding, batch 1
 * and 64, bias and the fusable activations; AVX2 and plain-C transforms give
 * the same bits; GRAFT_WINOGRAD=0 turns it off.                          */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "backend/backend.h"
#include "backend/winograd.h"
#include "ops/ops.h"

typedef struct {
    int B, H, W, C, OC, pad;   /* pad 1: same (OH = H), 0: valid (OH = H - 2) */
} shape;

/* exact[o] and scale[o] (S above) in double, then the float activation */
static void conv_exact(const shape *s, const float *x, const float *w, const float *b, double *exact,
                       double *scale) {
    int OH = s->H + 2 * s->pad - 2, OW = s->W + 2 * s->pad - 2;
    for (int n = 0; n < s->B; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int o = 0; o < s->OC; o++) {
                    double sum = b ? b[o] : 0, sc = b ? fabs(b[o]) : 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy + ky - s->pad, ix = ox + kx - s->pad;
                            if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                            const float *xp = x + (((size_t)n * s->H + iy) * s->W + ix) * s->C;
                            const float *wp = w + (size_t)(ky * 3 + kx) * s->C * s->OC + o;
                            for (int c = 0; c < s->C; c++) {
                                double p = (double)xp[c] * wp[(size_t)c * s->OC];
                                sum += p;
                                sc += fabs(p);
                            }
                        }
                    size_t i = (((size_t)n * OH + oy) * OW + ox) * s->OC + o;
                    exact[i] = sum;
                    scale[i] = sc;
                }
}

/* Runs graft's Winograd on s with tile m; out must hold the output. */
static gr_status run_wino(const shape *s, int m, gr_act act, float alpha, const float *x,
                          const float *w, const float *b, float *out, bool portable) {
    gr_error err = {0};
    gr_wino_plan p;
    int OH = s->H + 2 * s->pad - 2, OW = s->W + 2 * s->pad - 2;
    gr_status st = gr_wino_plan_init(&p, s->B, s->H, s->W, s->C, OH, OW, s->OC, s->pad, s->pad, m,
                                     act, alpha, &err);
    CHECK(st == GR_OK, "plan: %s", err.msg);
    if (st) return st;
    float *U = check_falloc(gr_wino_weights_floats(&p));
    float *scratch = check_falloc(gr_wino_scratch_bytes(&p) / sizeof(float) + 1);
    gr_wino_weights(&p, w, U);
    st = gr_wino_forward(&p, x, U, b, out, scratch, portable, &err);
    CHECK(st == GR_OK, "forward: %s", err.msg);
    free(U);
    free(scratch);
    return st;
}

/* max |got - exact| / S over the outputs (linear activation) */
static double rel_err(const float *got, const double *exact, const double *scale, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - exact[i]) / (scale[i] > 0 ? scale[i] : 1);
        if (!(e <= worst)) worst = e;   /* NaN wins */
    }
    return worst;
}

/* One shape, both tiles, both transform sets: against the exact sums and
 * the reference conv, and AVX2 == plain C bit for bit. */
static void check_shape(const shape *s, uint64_t seed, float xa, float wa, double *worst4,
                        double *worst2) {
    int OH = s->H + 2 * s->pad - 2, OW = s->W + 2 * s->pad - 2;
    size_t nx = (size_t)s->B * s->H * s->W * s->C, nw = (size_t)9 * s->C * s->OC;
    size_t ny = (size_t)s->B * OH * OW * s->OC;
    check_xs r = {seed};
    float *x = check_xs_fill(&r, nx, xa), *w = check_xs_fill(&r, nw, wa), *b = check_xs_fill(&r, (size_t)s->OC, 1.0f);
    double *exact = malloc(ny * sizeof *exact), *scale = malloc(ny * sizeof *scale);
    float *ref = check_falloc(ny), *got = check_falloc(ny), *got_c = check_falloc(ny);
    if (!exact || !scale) { fprintf(stderr, "out of memory\n"); exit(2); }
    conv_exact(s, x, w, b, exact, scale);
    gr_conv_dims d = {s->B, s->H, s->W, s->C, OH, OW, s->OC, 3, 3, 1, 1, s->pad, s->pad, 1, 1, 1};
    gr_conv2d_forward(ref, x, w, b, &d);
    double ref_err = rel_err(ref, exact, scale, ny);
    for (int m = 2; m <= 4; m += 2) {
        if (run_wino(s, m, GR_ACT_LINEAR, 0, x, w, b, got_c, true)) break;
        double e = rel_err(got_c, exact, scale, ny);
        double tol = m == 4 ? 2e-5 : 1e-6;
        CHECK(e <= tol, "F(%d,3) %dx%dx%dx%d -> %d pad %d: error %.3g of the products' scale > %.0e "
              "(reference conv: %.3g)", m, s->B, s->H, s->W, s->C, s->OC, s->pad, e, tol, ref_err);
        double *wst = m == 4 ? worst4 : worst2;
        if (e > *wst) *wst = e;
        /* and against the reference layer itself, as the fast path is used */
        size_t bad = 0;
        for (size_t i = 0; i < ny; i++)
            bad += !(fabs((double)got_c[i] - ref[i]) <= 2 * tol * scale[i] + 1e-30);
        CHECK(bad == 0, "F(%d,3): %zu outputs off the reference conv", m, bad);
        if (gr_wino_avx2()) {
            run_wino(s, m, GR_ACT_LINEAR, 0, x, w, b, got, false);
            CHECK(!memcmp(got, got_c, ny * sizeof *got), "F(%d,3) %dx%dx%dx%d -> %d: AVX2 and plain-C "
                  "transforms differ", m, s->B, s->H, s->W, s->C, s->OC);
        }
    }
    free(x); free(w); free(b); free(exact); free(scale); free(ref); free(got); free(got_c);
}

static void test_shapes(void) {
    static const shape shapes[] = {
        {1, 7, 9, 19, 21, 1},     /* odd H/W, partial tiles, channel tails */
        {1, 5, 5, 16, 16, 0},     /* valid padding: 3x3 output */
        {2, 11, 6, 24, 13, 1},
        {1, 4, 4, 3, 8, 1},       /* fewer channels than a vector */
        {3, 2, 2, 33, 17, 1},     /* outputs smaller than a tile */
        {1, 13, 13, 8, 40, 0},
        {64, 8, 8, 16, 24, 1},    /* batch 64: several chunks of tiles */
        {64, 3, 5, 17, 9, 1},
    };
    double w4 = 0, w2 = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
        check_shape(&shapes[k], 11 + k, 1.0f, 0.3f, &w4, &w2);
    if (getenv("CHECK_VERBOSE")) fprintf(stderr, "  random shapes: F(4,3) %.3g, F(2,3) %.3g\n", w4, w2);
}

/* VGG16-like layers: ReLU'd (non-negative) inputs of a few units, He-scaled
 * weights, 64 .. 512 channels; the measured error is what the README states. */
static void test_vgg_magnitudes(void) {
    static const shape shapes[] = {{2, 16, 16, 64, 64, 1}, {2, 8, 8, 256, 256, 1}, {2, 4, 4, 512, 512, 1}};
    int n = UNDER_SAN ? 1 : 3;
    double w4 = 0, w2 = 0;
    for (int k = 0; k < n; k++) {
        const shape *s = &shapes[k];
        int OH = s->H, OW = s->W;
        size_t nx = (size_t)s->B * s->H * s->W * s->C, nw = (size_t)9 * s->C * s->OC;
        size_t ny = (size_t)s->B * OH * OW * s->OC;
        check_xs r = {100 + (uint64_t)k};
        float *x = check_xs_fill(&r, nx, 1.0f);
        for (size_t i = 0; i < nx; i++) x[i] = x[i] > 0 ? 4.0f * x[i] : 0.0f;
        float *w = check_xs_fill(&r, nw, sqrtf(6.0f / (9.0f * s->C)));
        float *b = check_xs_fill(&r, (size_t)s->OC, 0.1f);
        double *exact = malloc(ny * sizeof *exact), *scale = malloc(ny * sizeof *scale);
        float *got = check_falloc(ny);
        if (!exact || !scale) { fprintf(stderr, "out of memory\n"); exit(2); }
        conv_exact(s, x, w, b, exact, scale);
        for (int m = 2; m <= 4; m += 2) {
            if (run_wino(s, m, GR_ACT_LINEAR, 0, x, w, b, got, false)) break;
            double e = rel_err(got, exact, scale, ny), tol = m == 4 ? 2e-5 : 1e-6;
            CHECK(e <= tol, "F(%d,3) %d -> %d channels: error %.3g > %.0e", m, s->C, s->OC, e, tol);
            double *wst = m == 4 ? &w4 : &w2;
            if (e > *wst) *wst = e;
        }
        free(x); free(w); free(b); free(exact); free(scale); free(got);
    }
    if (getenv("CHECK_VERBOSE")) fprintf(stderr, "  VGG16-like layers: F(4,3) %.3g, F(2,3) %.3g\n", w4, w2);
}

/* bias + relu / leaky / relu6 fused, against the reference conv then gr_act_forward */
static void test_activations(void) {
    shape s = {2, 9, 7, 20, 12, 1};
    size_t nx = (size_t)s.B * s.H * s.W * s.C, nw = (size_t)9 * s.C * s.OC, ny = (size_t)s.B * s.H * s.W * s.OC;
    check_xs r = {7};
    float *x = check_xs_fill(&r, nx, 2.0f), *w = check_xs_fill(&r, nw, 0.5f), *b = check_xs_fill(&r, (size_t)s.OC, 1.0f);
    float *lin = check_falloc(ny), *want = check_falloc(ny), *got = check_falloc(ny);
    gr_conv_dims d = {s.B, s.H, s.W, s.C, s.H, s.W, s.OC, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    gr_conv2d_forward(lin, x, w, b, &d);
    const gr_act acts[] = {GR_ACT_RELU, GR_ACT_LEAKY, GR_ACT_RELU6, GR_ACT_LINEAR};
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
        gr_act_forward(want, lin, ny, acts[k], 0.1f);
        for (int portable = 0; portable <= 1; portable++) {
            if (run_wino(&s, 4, acts[k], 0.1f, x, w, b, got, portable)) return;
            CHECK_CLOSE(gr_act_name(acts[k]), got, want, ny, 2e-4, 1e-4);
        }
    }
    /* an activation that cannot be fused is refused, as are tiny layers */
    CHECK(gr_wino_choose(32, 32, 64, 64, GR_ACT_SIGMOID) == 0, "sigmoid accepted");
    CHECK(gr_wino_choose(32, 32, 3, 64, GR_ACT_RELU) == 0, "3 input channels accepted");
    CHECK(gr_wino_choose(32, 32, 64, 64, GR_ACT_RELU) == 4, "32x32x64: F(4,3) expected");
    CHECK(gr_wino_choose(2, 2, 512, 512, GR_ACT_RELU) == 2, "2x2x512: F(2,3) expected");
    CHECK(gr_wino_choose(1, 1, 512, 512, GR_ACT_RELU) == 0, "1x1 output accepted");
    gr_wino_plan p;
    gr_error err = {0};
    CHECK(gr_wino_plan_init(&p, 1, 4, 4, 8, 4, 4, 8, 1, 1, 3, GR_ACT_RELU, 0, &err) == GR_ERR_ARG &&
          strstr(err.msg, "tile 3"), "tile 3: %s", err.msg);
    free(x); free(w); free(b); free(lin); free(want); free(got);
}

/* The whole VGG16 base through the executor's fast chains (Winograd on
 * every conv but the first where the CPU lacks oneDNN's) against the
 * reference layers, and GRAFT_WINOGRAD=0 switching it off. */
static void test_vgg16_model(void) {
    gr_error err = {0};
    int S = 32, B = UNDER_SAN ? 1 : 2;   /* 32x32: VGG16's smallest input */
    gr_model *m = gr_vgg16(S, S, false, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_model_init_params(m, 0, 3);
    for (int p = 0; p < m->n_params; p++)
        if (!strcmp(m->params[p].kind, "bias")) check_fill(gr_param_data(m, p), m->params[p].count, 9 + p, 0, 0.2f);
    size_t nin = (size_t)B * S * S * 3, nout = (size_t)B * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *want = check_falloc(nout), *got = check_falloc(nout), *direct = check_falloc(nout);
    check_fill(x, nin, 4, -120.0f, 130.0f);   /* caffe-preprocessed pixel range */
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_status st = gr_model_predict(m, x, B, -1, want, &err);
    unsetenv("GRAFT_REFERENCE");
    CHECK(st == GR_OK, "reference: %s", err.msg);
    st = gr_model_predict(m, x, B, -1, got, &err);
    CHECK(st == GR_OK, "fast: %s", err.msg);
    setenv("GRAFT_WINOGRAD", "0", 1);
    gr_status st2 = gr_model_predict(m, x, B, -1, direct, &err);
    unsetenv("GRAFT_WINOGRAD");
    CHECK(st2 == GR_OK, "GRAFT_WINOGRAD=0: %s", err.msg);
    if (st || st2) goto done;
    double big = 0, dw = 0, dd = 0;
    size_t nz = 0;
    for (size_t i = 0; i < nout; i++) {
        if (fabs(want[i]) > big) big = fabs(want[i]);
        nz += want[i] != 0;
    }
    for (size_t i = 0; i < nout; i++) {
        if (fabs(got[i] - want[i]) > dw) dw = fabs(got[i] - want[i]);
        if (fabs(direct[i] - want[i]) > dd) dd = fabs(direct[i] - want[i]);
    }
    CHECK(nz > nout / 4, "only %zu of %zu outputs are non-zero", nz, nout);
    CHECK(dw <= 2e-5 * big, "Winograd path vs reference: max |diff| %.3g = %.3g of the largest output %.3g",
          dw, dw / big, big);
    CHECK(dd <= 2e-5 * big, "direct path vs reference: max |diff| %.3g of the largest output %.3g", dd, big);
    /* Winograd did run (it rounds differently from the direct path) */
    CHECK(memcmp(got, direct, nout * sizeof *got) != 0, "GRAFT_WINOGRAD=0 changed nothing");
    if (getenv("CHECK_VERBOSE"))
        fprintf(stderr, "  VGG16 %dx%d: Winograd %.3g, direct %.3g of the largest output %.3g\n", S, S,
                dw / big, dd / big, big);
done:
    free(x); free(want); free(got); free(direct);
    gr_model_free(m);
}

/* The backward's pieces, AVX2 against plain C bit for bit: the weight
 * transform (straight and rotated strides), the dout transform, Gt M G
 * (both tiles, channel counts with a tail).  (The gradients themselves:
 * tests/test_backend_backward.c, against finite differences, the reference
 * backward and oneDNN's.) */
static void test_backward_pieces(void) {
    if (!gr_wino_avx2()) {
        printf("SKIP test_backward_pieces: no AVX2\n");
        return;
    }
    for (int m = 2; m <= 4; m += 2) {
        const int C = 19, OC = 13, B = 3, H = 7, W = 6;
        gr_wino_plan p;
        gr_error err;
        CHECK(gr_wino_plan_init(&p, B, H, W, C, H, W, OC, 1, 1, m, GR_ACT_LINEAR, 0, &err) == GR_OK, "plan");
        size_t nu = gr_wino_weights_floats(&p), nw = (size_t)9 * C * OC, nd = (size_t)p.a * p.a * p.tiles * OC;
        size_t nout = (size_t)B * H * W * OC;
        float *w = check_falloc(nw), *u1 = check_falloc(nu), *u2 = check_falloc(nu), *dout = check_falloc(nout);
        float *d1 = check_falloc(nd), *d2 = check_falloc(nd), *dw1 = check_falloc(nw), *dw2 = check_falloc(nw);
        check_fill(w, nw, 31, -1, 1);
        check_fill(dout, nout, 32, -1, 1);
        ptrdiff_t plane = (ptrdiff_t)C * OC;
        gr_wino_weights_c(&p, w, 3 * plane, plane, OC, 1, u1, 0, C);
        gr_wino_weights_avx2(&p, w, 3 * plane, plane, OC, 1, u2, 0, C);
        CHECK(!memcmp(u1, u2, nu * sizeof(float)), "F(%d): weights AVX2 != plain C", m);
        gr_wino_weights_c(&p, w + 8 * plane, -3 * plane, -plane, 1, OC, u1, 0, C);   /* rotated, strided */
        gr_wino_weights_avx2(&p, w + 8 * plane, -3 * plane, -plane, 1, OC, u2, 0, C);
        CHECK(!memcmp(u1, u2, nu * sizeof(float)), "F(%d): strided weights AVX2 != plain C", m);
        gr_wino_gradout_c(&p, dout, d1, 0, p.tiles, 0, p.tiles);
        gr_wino_gradout_avx2(&p, dout, d2, 0, p.tiles, 0, p.tiles);
        CHECK(!memcmp(d1, d2, nd * sizeof(float)), "F(%d): dout transform AVX2 != plain C", m);
        check_fill(u1, (size_t)p.a * p.a * C * OC, 33, -1, 1);   /* an M */
        check_fill(dw1, nw, 34, -1, 1);
        memcpy(dw2, dw1, nw * sizeof(float));
        gr_wino_wgrad_c(&p, u1, dw1, 0, C);
        gr_wino_wgrad_avx2(&p, u1, dw2, 0, C);
        CHECK(!memcmp(dw1, dw2, nw * sizeof(float)), "F(%d): Gt M G AVX2 != plain C", m);
        free(w); free(u1); free(u2); free(dout); free(d1); free(d2); free(dw1); free(dw2);
    }
}

int main(void) {
    RUN(test_shapes);
    RUN(test_vgg_magnitudes);
    RUN(test_activations);
    RUN(test_vgg16_model);
    RUN(test_backward_pieces);
    return check_summary();
}
