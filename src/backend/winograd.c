/* winograd.c — graft's Winograd F(2x2,3x3) / F(4x4,3x3) forward convolution
 * (winograd.h): plan, weight transform, the driver (input transform, a*a
 * GEMMs, output transform, a chunk of tiles at a time) and the plain-C
 * transforms.  The AVX2 transforms are in winograd_avx2.c, the only file of
 * graft's own code holding AVX instructions, entered after a CPU check.    */
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/winograd.h"

/* ------------------------------------------------------------ plain-C transforms */

typedef float wv;
typedef int wmask;
#define WV 1
#define WMASK(n) (n)
#define WLD(p, k) ((void)(k), *(p))
#define WST(p, k, v) ((void)(k), *(p) = (v))
#define WZERO 0.0f
#define WSET(x) (x)
#define WADD(a, b) ((a) + (b))
#define WSUB(a, b) ((a) - (b))
#define WMULC(c, v) ((c) * (v))
#define WACT(v, act, al) wino_act_c(v, act, al)
#define WT(name) name##_c

static inline float wino_act_c(float v, int act, float al) {
    switch (act) {
    case GR_WINO_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case GR_WINO_ACT_LEAKY: return v > 0.0f ? v : al * v;
    case GR_WINO_ACT_RELU6: return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    default: return v;
    }
}

#include "backend/winograd_tx.h"

void gr_wino_input_c(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                     int t_begin, int t_end) {
    if (p->m == 4) input6_c(p, in, V, tile0, nt, t_begin, t_end);
    else input4_c(p, in, V, tile0, nt, t_begin, t_end);
}

void gr_wino_output_c(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                      int tile0, int nt, int t_begin, int t_end) {
    if (p->m == 4) output6_c(p, M, bias, out, tile0, nt, t_begin, t_end);
    else output4_c(p, M, bias, out, tile0, nt, t_begin, t_end);
}

void gr_wino_gradout_c(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt, int t_begin,
                       int t_end) {
    if (p->m == 4) gradout6_c(p, dout, D, tile0, nt, t_begin, t_end);
    else gradout4_c(p, dout, D, tile0, nt, t_begin, t_end);
}

/* ------------------------------------------------------------ plan */

static int wino_act(gr_act act) {
    switch (act) {
    case GR_ACT_LINEAR: return GR_WINO_ACT_LINEAR;
    case GR_ACT_RELU: return GR_WINO_ACT_RELU;
    case GR_ACT_LEAKY: return GR_WINO_ACT_LEAKY;
    case GR_ACT_RELU6: return GR_WINO_ACT_RELU6;
    default: return -1;
    }
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int gr_wino_choose(int OH, int OW, int C, int OC, gr_act act) {
    /* with few channels the GEMMs are too thin and the transforms dominate */
    if (wino_act(act) < 0 || C < 16 || OC < 16 || OH < 2 || OW < 2) return 0;
    /* multiplies per (c, oc): a*a per tile against 9 per output cell; the
     * transforms cost about a GEMM's worth at 16 channels, ~1/8 at 128 */
    int64_t direct = 9 * (int64_t)OH * OW;
    int64_t f4 = 36 * cdiv(OH, 4) * cdiv(OW, 4), f2 = 16 * cdiv(OH, 2) * cdiv(OW, 2);
    int64_t best = f4 <= f2 ? f4 : f2;
    if (4 * best > 3 * direct) return 0;   /* < 1.33x fewer multiplies: not worth it */
    return f4 <= f2 ? 4 : 2;
}

gr_status gr_wino_plan_init(gr_wino_plan *p, int B, int H, int W, int C, int OH, int OW, int OC,
                            int pad_t, int pad_l, int m, gr_act act, float alpha, gr_error *err) {
    memset(p, 0, sizeof *p);
    if ((m != 2 && m != 4) || wino_act(act) < 0 || B <= 0 || H <= 0 || W <= 0 || C <= 0 ||
        OH <= 0 || OW <= 0 || OC <= 0)
        return gr_error_set(err, GR_ERR_ARG, "winograd: tile %d, activation %s, shape %dx%dx%dx%d -> %dx%dx%d",
                            m, gr_act_name(act), B, H, W, C, OH, OW, OC);
    int a = m + 2;
    int64_t tiles = (int64_t)B * cdiv(OH, m) * cdiv(OW, m);
    if (tiles > INT32_MAX || (int64_t)a * a * C * OC > INT32_MAX)
        return gr_error_set(err, GR_ERR_ARG, "winograd: %dx%dx%dx%d -> %d channels is too large", B,
                            H, W, C, OC);
    *p = (gr_wino_plan){.B = B, .H = H, .W = W, .C = C, .OH = OH, .OW = OW, .OC = OC,
                        .pad_t = pad_t, .pad_l = pad_l, .m = m, .a = a,
                        .th = (int)cdiv(OH, m), .tw = (int)cdiv(OW, m), .tiles = (int)tiles,
                        .act = wino_act(act), .alpha = alpha};
    /* a chunk's V and M (a*a * (C + OC) floats per tile) within ~8 MB, so
     * the GEMMs read what the input transform just wrote from the cache;
     * at least 64 tiles (GEMM rows) where there are that many */
    int64_t per_tile = (int64_t)a * a * (C + OC) * (int64_t)sizeof(float);
    int64_t chunk = ((int64_t)8 << 20) / per_tile;
    if (chunk < 64) chunk = 64;
    if (chunk > tiles) chunk = tiles;
    p->chunk = (int)chunk;
    return GR_OK;
}

size_t gr_wino_weights_floats(const gr_wino_plan *p) {
    return (size_t)p->a * p->a * p->C * p->OC;
}

size_t gr_wino_scratch_bytes(const gr_wino_plan *p) {
    return (size_t)p->a * p->a * p->chunk * ((size_t)p->C + p->OC) * sizeof(float);
}

/* ------------------------------------------------------------ weights */

void gr_wino_weights_c(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                       ptrdiff_t so, float *U, int c_begin, int c_end) {
    weights_c(p, w0, sy, sx, sc, so, U, c_begin, c_end);
}

void gr_wino_wgrad_c(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end) {
    wgrad_c(p, M, dw, c_begin, c_end);
}

/* The weight side on the OpenMP team, input channels split. */
static void weights_strided(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                            ptrdiff_t so, float *U) {
    const bool avx2 = gr_wino_avx2();
#pragma omp parallel
    {
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((int64_t)p->C * id / nth), c1 = (int)((int64_t)p->C * (id + 1) / nth);
        if (avx2) gr_wino_weights_avx2(p, w0, sy, sx, sc, so, U, c0, c1);
        else gr_wino_weights_c(p, w0, sy, sx, sc, so, U, c0, c1);
    }
}

static void wgrad_out(const gr_wino_plan *p, const float *M, float *dw) {
    const bool avx2 = gr_wino_avx2();
#pragma omp parallel
    {
        int nth = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((int64_t)p->C * id / nth), c1 = (int)((int64_t)p->C * (id + 1) / nth);
        if (avx2) gr_wino_wgrad_avx2(p, M, dw, c0, c1);
        else gr_wino_wgrad_c(p, M, dw, c0, c1);
    }
}

void gr_wino_weights(const gr_wino_plan *p, const float *w, float *U) {
    const ptrdiff_t plane = (ptrdiff_t)p->C * p->OC;
    weights_strided(p, w, 3 * plane, plane, p->OC, 1, U);
}

void gr_wino_weights_rot(const gr_wino_plan *pd, const float *w, float *U) {
    /* pd: C = the forward's OC, OC = the forward's C; w [3][3][pd->OC][pd->C]:
     * g'(ky, kx, o, c) = w[2 - ky][2 - kx][c][o] */
    const ptrdiff_t plane = (ptrdiff_t)pd->C * pd->OC;
    weights_strided(pd, w + 8 * plane, -3 * plane, -plane, 1, pd->C, U);
}

/* ------------------------------------------------------------ forward */

gr_status gr_wino_forward(const gr_wino_plan *p, const float *in, const float *U,
                          const float *bias, float *out, void *scratch, bool portable,
                          gr_error *err) {
    const int a2 = p->a * p->a, C = p->C, OC = p->OC;
    const bool avx2 = !portable && gr_wino_avx2();
    float *V = scratch;
    gr_status st = GR_OK;
    for (int tile0 = 0; tile0 < p->tiles && st == GR_OK; tile0 += p->chunk) {
        const int nt = p->tiles - tile0 < p->chunk ? p->tiles - tile0 : p->chunk;
        float *M = V + (size_t)a2 * nt * C;
#pragma omp parallel
        {
            int nth = omp_get_num_threads(), id = omp_get_thread_num();
            int t_begin = (int)((int64_t)nt * id / nth), t_end = (int)((int64_t)nt * (id + 1) / nth);
            if (avx2) gr_wino_input_avx2(p, in, V, tile0, nt, t_begin, t_end);
            else gr_wino_input_c(p, in, V, tile0, nt, t_begin, t_end);
#pragma omp barrier
            /* the a*a GEMMs M[k] [nt, OC] = V[k] [nt, C] x U[k] [C, OC], each
             * on one thread (oneDNN's sgemm runs single-threaded inside a
             * parallel region) */
#pragma omp for schedule(static)
            for (int k = 0; k < a2; k++) {
                gr_error e;
                gr_status s = gr_gemm(false, false, nt, OC, C, 1.0f, V + (size_t)k * nt * C, C,
                                      U + (size_t)k * C * OC, OC, 0.0f, M + (size_t)k * nt * OC,
                                      OC, &e);
                if (s != GR_OK) {
#pragma omp critical
                    if (st == GR_OK) {
                        st = s;
                        if (err) *err = e;
                    }
                }
            }
            if (avx2) gr_wino_output_avx2(p, M, bias, out, tile0, nt, t_begin, t_end);
            else gr_wino_output_c(p, M, bias, out, tile0, nt, t_begin, t_end);
        }
    }
    return st;
}

/* ------------------------------------------------------------ weight gradient */

size_t gr_wino_bwdw_scratch_bytes(const gr_wino_plan *p) {
    return gr_wino_scratch_bytes(p) + (size_t)p->a * p->a * p->C * p->OC * sizeof(float) +
           (size_t)p->OC * sizeof(double);
}

gr_status gr_wino_backward_weights(const gr_wino_plan *p, const float *in, const float *dout, float *dw,
                                   float *db, void *scratch, bool portable, gr_error *err) {
    const int a2 = p->a * p->a, C = p->C, OC = p->OC;
    const bool avx2 = !portable && gr_wino_avx2();
    float *V = scratch;
    float *Macc = (float *)((char *)scratch + gr_wino_scratch_bytes(p));
    double *bsum = (double *)(Macc + (size_t)a2 * C * OC);
    gr_status st = GR_OK;
    for (int tile0 = 0; tile0 < p->tiles && st == GR_OK; tile0 += p->chunk) {
        const int nt = p->tiles - tile0 < p->chunk ? p->tiles - tile0 : p->chunk;
        float *D = V + (size_t)a2 * nt * C;
        const float beta = tile0 == 0 ? 0.0f : 1.0f;
#pragma omp parallel
        {
            int nth = omp_get_num_threads(), id = omp_get_thread_num();
            int t_begin = (int)((int64_t)nt * id / nth), t_end = (int)((int64_t)nt * (id + 1) / nth);
            if (avx2) {
                gr_wino_input_avx2(p, in, V, tile0, nt, t_begin, t_end);
                gr_wino_gradout_avx2(p, dout, D, tile0, nt, t_begin, t_end);
            } else {
                gr_wino_input_c(p, in, V, tile0, nt, t_begin, t_end);
                gr_wino_gradout_c(p, dout, D, tile0, nt, t_begin, t_end);
            }
#pragma omp barrier
            /* M[k] [C, OC] (+)= V[k]^T [C, nt] x D[k] [nt, OC], each on one thread */
#pragma omp for schedule(static)
            for (int k = 0; k < a2; k++) {
                gr_error e;
                gr_status s = gr_gemm(true, false, C, OC, nt, 1.0f, V + (size_t)k * nt * C, C,
                                      D + (size_t)k * nt * OC, OC, beta, Macc + (size_t)k * C * OC, OC, &e);
                if (s != GR_OK) {
#pragma omp critical
                    if (st == GR_OK) {
                        st = s;
                        if (err) *err = e;
                    }
                }
            }
        }
    }
    if (st != GR_OK) return st;
    wgrad_out(p, Macc, dw);
    if (db) {
        const size_t rows = (size_t)p->B * p->OH * p->OW;
        for (int o = 0; o < OC; o++) bsum[o] = 0.0;
        for (size_t r = 0; r < rows; r++)
            for (int o = 0; o < OC; o++) bsum[o] += dout[r * OC + o];
        for (int o = 0; o < OC; o++) db[o] += (float)bsum[o];
    }
    return GR_OK;
}
