/* feats.h — the in-memory features cache of gr_fit: [n, F] rows of the
 * frozen base's outputs, kept as IEEE float16 by default (half the memory
 * of float32; rows are widened to float32 a batch at a time when the head
 * trains) or as float32 (GRAFT_FEATURES_PRECISION=fp32, gr_fit_opts
 * .features_fp32).
 *
 * Why float16 and not bfloat16: both halve the memory; float16 keeps 11
 * significant bits (relative rounding <= 2^-11 = 4.9e-4) where bfloat16
 * keeps 8 (<= 2^-8 = 3.9e-3), so a feature with a large mean and a small
 * spread (what standardization then magnifies) keeps 8x more of its
 * spread; and the conversion is one instruction each way where the CPU has
 * F16C (every x86-64 since 2012; a plain-C conversion with the same
 * rounding elsewhere).  Its range (|x| <= 65504) is float16's limit: a
 * cache that meets a larger value is widened to float32 for the rest of
 * the run (gr_feats_put says so), never stored as infinity.               */
#ifndef GRAFT_TRAIN_FEATS_H
#define GRAFT_TRAIN_FEATS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

typedef struct {
    void *p;       /* n * F elements: uint16_t (half) or float */
    size_t n, F;
    bool half;
} gr_feats;

/* The largest magnitude float16 holds (finite). */
#define GR_F16_MAX 65504.0f

/* Allocates n rows of F (half or float32); what = "features cache ..." for
 * the out-of-memory message. */
gr_status gr_feats_alloc(gr_feats *f, size_t n, size_t F, bool half, gr_error *err);
void gr_feats_free(gr_feats *f);
size_t gr_feats_bytes(const gr_feats *f);   /* n * F * element size */
/* float32 rows [row0, row0 + rows) into dst [rows, F]. */
void gr_feats_get(const gr_feats *f, size_t row0, size_t rows, float *dst);
/* Row `row` (one) into dst [F]. */
static inline void gr_feats_row(const gr_feats *f, size_t row, float *dst) { gr_feats_get(f, row, 1, dst); }
/* Stores src [rows, F] at row0.  A half cache meeting a value beyond
 * float16's range is first widened to float32 (gr_feats_widen: every row
 * kept exactly); GR_ERR_NOMEM only if that allocation fails.              */
gr_status gr_feats_put(gr_feats *f, size_t row0, size_t rows, const float *src, gr_error *err);
/* A half cache becomes float32 (the values unchanged). */
gr_status gr_feats_widen(gr_feats *f, gr_error *err);

/* The conversions (round to nearest even; F16C where the CPU has it). */
void gr_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void gr_f16_to_f32(const uint16_t *src, float *dst, size_t n);
/* x[0..n) rounded to float16 and back, in place (left as it is when a
 * value is beyond float16's range, as the cache would keep it). */
void gr_f16_round(float *x, size_t n);
/* Largest |x| of src[0..n) (0 for n = 0; NaN-free input). */
float gr_absmax_f32(const float *src, size_t n);
/* Internal (feats.c / feats_f16c.c). */
bool gr_f16c(void);
void gr_f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n);
void gr_f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n);

#endif
