/* feats.c — the in-memory features cache (feats.h) and the plain-C
 * float16 conversions (round to nearest even, subnormals kept).          */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "train/feats.h"

static uint16_t f16_of(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;               /* NaN */
    if (ax >= 0x47800000u) return sign | 0x7c00u;              /* >= 65536: infinity */
    if (ax < 0x38800000u) {                                    /* below 2^-14: subnormal (m * 2^-24) */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);      /* exact product; nearest even */
    }
    uint32_t r = ax - 0x38000000u;                             /* exponent 127 -> 15 bias */
    r += 0xfffu + ((r >> 13) & 1u);                            /* 23 -> 10 mantissa bits, nearest even */
    return sign | (uint16_t)(r >> 13);                         /* a carry into 31 is infinity */
}

static float f32_of(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    x = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void gr_f32_to_f16_c(const float *src, uint16_t *dst, size_t n);
void gr_f16_to_f32_c(const uint16_t *src, float *dst, size_t n);
void gr_f32_to_f16_c(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f16_of(src[i]);
}
void gr_f16_to_f32_c(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_of(src[i]);
}

void gr_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    if (gr_f16c()) gr_f32_to_f16_f16c(src, dst, n);
    else gr_f32_to_f16_c(src, dst, n);
}

void gr_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    if (gr_f16c()) gr_f16_to_f32_f16c(src, dst, n);
    else gr_f16_to_f32_c(src, dst, n);
}

void gr_f16_round(float *x, size_t n) {
    if (gr_absmax_f32(x, n) > GR_F16_MAX) return;
    uint16_t h[512];
    for (size_t i = 0; i < n; i += 512) {
        size_t k = n - i < 512 ? n - i : 512;
        gr_f32_to_f16(x + i, h, k);
        gr_f16_to_f32(h, x + i, k);
    }
}

float gr_absmax_f32(const float *src, size_t n) {
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(src[i]);
        mx = a > mx ? a : mx;
    }
    return mx;
}

gr_status gr_feats_alloc(gr_feats *f, size_t n, size_t F, bool half, gr_error *err) {
    memset(f, 0, sizeof *f);
    size_t es = half ? sizeof(uint16_t) : sizeof(float);
    if (F && n > SIZE_MAX / F / es)
        return gr_error_set(err, GR_ERR_NOMEM, "features cache: %zu x %zu values do not fit in memory", n, F);
    f->p = gr_malloc(n * F * es > 0 ? n * F * es : 1, err);
    if (!f->p) return GR_ERR_NOMEM;
    f->n = n;
    f->F = F;
    f->half = half;
    return GR_OK;
}

void gr_feats_free(gr_feats *f) {
    free(f->p);
    memset(f, 0, sizeof *f);
}

size_t gr_feats_bytes(const gr_feats *f) { return f->n * f->F * (f->half ? sizeof(uint16_t) : sizeof(float)); }

void gr_feats_get(const gr_feats *f, size_t row0, size_t rows, float *dst) {
    if (f->half) gr_f16_to_f32((const uint16_t *)f->p + row0 * f->F, dst, rows * f->F);
    else memcpy(dst, (const float *)f->p + row0 * f->F, rows * f->F * sizeof(float));
}

gr_status gr_feats_widen(gr_feats *f, gr_error *err) {
    if (!f->half) return GR_OK;
    size_t bytes = f->n * f->F * sizeof(float);
    float *w = gr_malloc(bytes > 0 ? bytes : 1, err);
    if (!w) return gr_error_prefix(err, "features cache: widening to float32");
    gr_f16_to_f32(f->p, w, f->n * f->F);
    free(f->p);
    f->p = w;
    f->half = false;
    return GR_OK;
}

gr_status gr_feats_put(gr_feats *f, size_t row0, size_t rows, const float *src, gr_error *err) {
    size_t cnt = rows * f->F;
    if (f->half && gr_absmax_f32(src, cnt) > GR_F16_MAX) {
        gr_status st = gr_feats_widen(f, err);
        if (st != GR_OK) return st;
        gr_log(GR_LOG_NOTE, "features cache: a feature's magnitude exceeds float16's range (65504): "
               "keeping the cache in float32 for this run");
    }
    if (f->half) gr_f32_to_f16(src, (uint16_t *)f->p + row0 * f->F, cnt);
    else memcpy((float *)f->p + row0 * f->F, src, cnt * sizeof(float));
    return GR_OK;
}
