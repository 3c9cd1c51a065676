/* feats_f16c.c — float32 <-> float16 with F16C (vcvtps2ph / vcvtph2ps),
 * the only file of graft's own code compiled for F16C: gr_f32_to_f16 and
 * gr_f16_to_f32 (feats.c) enter it after a CPU check.  Round to nearest
 * even, as the plain-C conversion in feats.c (the same bits).            */
#include "train/feats.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx,f16c")
#endif

void gr_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        float t[8] = {0};
        uint16_t h[8];
        for (size_t k = 0; k < n - i; k++) t[k] = src[i + k];
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(_mm256_loadu_ps(t), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        for (size_t k = 0; k < n - i; k++) dst[i + k] = h[k];
    }
}

void gr_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    if (i < n) {
        uint16_t h[8] = {0};
        float t[8];
        for (size_t k = 0; k < n - i; k++) h[k] = src[i + k];
        _mm256_storeu_ps(t, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        for (size_t k = 0; k < n - i; k++) dst[i + k] = t[k];
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

bool gr_f16c(void) {
    unsigned a, b, c, d;   /* F16C: CPUID leaf 1, ECX bit 29; AVX (and the OS saving its registers) as the compiler checks it */
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

#else
void gr_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) { (void)src; (void)dst; (void)n; }
void gr_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) { (void)src; (void)dst; (void)n; }
bool gr_f16c(void) { return false; }
#endif
