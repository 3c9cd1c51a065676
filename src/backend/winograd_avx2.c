/* winograd_avx2.c — the Winograd transforms (winograd_tx.h) on 8 channels
 * at a time with AVX2; the only file of graft's own code compiled for AVX2
 * (the default build runs on any x86-64): gr_wino_forward enters it only
 * when gr_wino_avx2() says the CPU has AVX2.  Elsewhere (other CPUs, other
 * architectures) the plain-C transforms of winograd.c run, which round
 * identically (same operations in the same order, no FMA).              */
#include "backend/winograd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#if defined(__clang__)   /* clang ignores GCC's target pragma: the same through its attribute */
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

typedef __m256 wv;
/* a channel tail (< 8 lanes) uses masked loads and stores; full vectors
 * plain ones (masked stores are slow on AMD Zen) */
typedef struct {
    __m256i m;
    int full;
} wmask;
#define WV 8
#define WMASK(n) wino_mask(n)
#define WLD(p, k) ((k).full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (k).m))
#define WST(p, k, v)                                       \
    do {                                                   \
        if ((k).full) _mm256_storeu_ps((p), (v));          \
        else _mm256_maskstore_ps((p), (k).m, (v));         \
    } while (0)
#define WZERO _mm256_setzero_ps()
#define WSET(x) _mm256_set1_ps(x)
#define WADD(a, b) _mm256_add_ps((a), (b))
#define WSUB(a, b) _mm256_sub_ps((a), (b))
#define WMULC(c, v) _mm256_mul_ps(_mm256_set1_ps(c), (v))
#define WACT(v, act, al) wino_act_avx2(v, act, al)
#define WT(name) name##_avx2

static inline wmask wino_mask(int n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return (wmask){_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes), n == 8};
}

/* as wino_act_c lane by lane: x > 0 ? x : 0 / alpha x; relu6 then min 6 */
static inline __m256 wino_act_avx2(__m256 v, int act, __m256 al) {
    __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
    switch (act) {
    case GR_WINO_ACT_RELU: return _mm256_and_ps(v, pos);
    case GR_WINO_ACT_LEAKY: return _mm256_blendv_ps(_mm256_mul_ps(al, v), v, pos);
    case GR_WINO_ACT_RELU6: return _mm256_min_ps(_mm256_and_ps(v, pos), _mm256_set1_ps(6.0f));
    default: return v;
    }
}

#include "backend/winograd_tx.h"

void gr_wino_input_avx2(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                        int t_begin, int t_end) {
    if (p->m == 4) input6_avx2(p, in, V, tile0, nt, t_begin, t_end);
    else input4_avx2(p, in, V, tile0, nt, t_begin, t_end);
}

void gr_wino_output_avx2(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                         int tile0, int nt, int t_begin, int t_end) {
    if (p->m == 4) output6_avx2(p, M, bias, out, tile0, nt, t_begin, t_end);
    else output4_avx2(p, M, bias, out, tile0, nt, t_begin, t_end);
}

void gr_wino_gradout_avx2(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt, int t_begin,
                          int t_end) {
    if (p->m == 4) gradout6_avx2(p, dout, D, tile0, nt, t_begin, t_end);
    else gradout4_avx2(p, dout, D, tile0, nt, t_begin, t_end);
}

void gr_wino_weights_avx2(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                          ptrdiff_t so, float *U, int c_begin, int c_end) {
    weights_avx2(p, w0, sy, sx, sc, so, U, c_begin, c_end);
}

void gr_wino_wgrad_avx2(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end) {
    wgrad_avx2(p, M, dw, c_begin, c_end);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

bool gr_wino_avx2(void) { return __builtin_cpu_supports("avx2"); }

#else /* not x86: the plain-C transforms only */

void gr_wino_input_avx2(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                        int t_begin, int t_end) {
    gr_wino_input_c(p, in, V, tile0, nt, t_begin, t_end);
}

void gr_wino_output_avx2(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                         int tile0, int nt, int t_begin, int t_end) {
    gr_wino_output_c(p, M, bias, out, tile0, nt, t_begin, t_end);
}

void gr_wino_gradout_avx2(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt, int t_begin,
                          int t_end) {
    gr_wino_gradout_c(p, dout, D, tile0, nt, t_begin, t_end);
}

void gr_wino_weights_avx2(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                          ptrdiff_t so, float *U, int c_begin, int c_end) {
    gr_wino_weights_c(p, w0, sy, sx, sc, so, U, c_begin, c_end);
}

void gr_wino_wgrad_avx2(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end) {
    gr_wino_wgrad_c(p, M, dw, c_begin, c_end);
}

bool gr_wino_avx2(void) { return false; }

#endif
