/* pool.c — reference max / average / global-average pooling (NHWC).
 *
 *   in [B, H, W, C]   out [B, OH, OW, C]
 *   window of out[b,oy,ox,c]: rows oy*SH-PT .. +KH-1, cols ox*SW-PL .. +KW-1
 * Cells outside the image are ignored: max never picks them (darknet's
 * maxpool with its odd-size padding; Keras 'same'), avg neither sums nor
 * counts them (TF/Keras 'same').  A window with no cell inside the image
 * (only possible with over-large padding) yields 0 and no gradient.
 * Max ties and backward go to the FIRST maximal cell in (ky, kx) order.
 * Backward scatters into din; it runs parallel over images only (each
 * thread owns whole images), so it is race-free and deterministic.        */
#include "ops/op.h"

/* Clamp the window [o*S-P, o*S-P+K) to [0, n): writes lo/hi (hi exclusive). */
static void win_range(int o, int S, int P, int K, int n, int *lo, int *hi) {
    int a = o * S - P, b = a + K;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* The input rows [y0, y1) and columns [x0, x1) output (oy, ox) pools over. */
typedef struct { int y0, y1, x0, x1; } pool_win;
static pool_win window_at(const gr_pool_dims *d, int oy, int ox) {
    pool_win w;
    win_range(oy, d->SH, d->PT, d->KH, d->H, &w.y0, &w.y1);
    win_range(ox, d->SW, d->PL, d->KW, d->W, &w.x0, &w.x1);
    return w;
}

void gr_maxpool_forward(float *out, const float *in, const gr_pool_dims *d) {
    const int64_t rows = (int64_t)d->B * d->OH;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int bi = (int)(r / d->OH), oy = (int)(r % d->OH);
        for (int ox = 0; ox < d->OW; ox++) {
            const pool_win wd = window_at(d, oy, ox);
            const int y0 = wd.y0, y1 = wd.y1, x0 = wd.x0, x1 = wd.x1;
            float *o = out + ((size_t)r * d->OW + ox) * d->C;
            for (int c = 0; c < d->C; c++) {
                int first = 1;
                float m = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        const float v = in[(((size_t)bi * d->H + iy) * d->W + ix) * d->C + c];
                        if (first || v > m) { m = v; first = 0; }
                    }
                o[c] = m;
            }
        }
    }
}

void gr_maxpool_backward(const float *dout, const float *in, const gr_pool_dims *d,
                         float *din) {
    if (!din) return;
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < d->B; bi++) {
        const float *img = in + (size_t)bi * d->H * d->W * d->C;
        float *dimg = din + (size_t)bi * d->H * d->W * d->C;
        for (int oy = 0; oy < d->OH; oy++) {
            for (int ox = 0; ox < d->OW; ox++) {
                const pool_win wd = window_at(d, oy, ox);
                const int y0 = wd.y0, y1 = wd.y1, x0 = wd.x0, x1 = wd.x1;
                const float *g = dout + (((size_t)bi * d->OH + oy) * d->OW + ox) * d->C;
                for (int c = 0; c < d->C; c++) {
                    size_t best = 0;
                    int first = 1;
                    float m = 0.0f;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            const size_t at = ((size_t)iy * d->W + ix) * d->C + c;
                            if (first || img[at] > m) { m = img[at]; best = at; first = 0; }
                        }
                    if (!first) dimg[best] += g[c];
                }
            }
        }
    }
}

void gr_avgpool_forward(float *out, const float *in, const gr_pool_dims *d) {
    const int64_t rows = (int64_t)d->B * d->OH;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int bi = (int)(r / d->OH), oy = (int)(r % d->OH);
        for (int ox = 0; ox < d->OW; ox++) {
            const pool_win wd = window_at(d, oy, ox);
            const int y0 = wd.y0, y1 = wd.y1, x0 = wd.x0, x1 = wd.x1;
            float *o = out + ((size_t)r * d->OW + ox) * d->C;
            for (int c = 0; c < d->C; c++) o[c] = 0.0f;
            const int cnt = (y1 > y0 && x1 > x0) ? (y1 - y0) * (x1 - x0) : 0;
            if (!cnt) continue;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    const float *p = in + (((size_t)bi * d->H + iy) * d->W + ix) * d->C;
                    for (int c = 0; c < d->C; c++) o[c] += p[c];
                }
            const float inv = 1.0f / (float)cnt;
            for (int c = 0; c < d->C; c++) o[c] *= inv;
        }
    }
}

void gr_avgpool_backward(const float *dout, const gr_pool_dims *d, float *din) {
    if (!din) return;
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < d->B; bi++) {
        for (int oy = 0; oy < d->OH; oy++) {
            for (int ox = 0; ox < d->OW; ox++) {
                const pool_win wd = window_at(d, oy, ox);
                const int y0 = wd.y0, y1 = wd.y1, x0 = wd.x0, x1 = wd.x1;
                const int cnt = (y1 > y0 && x1 > x0) ? (y1 - y0) * (x1 - x0) : 0;
                if (!cnt) continue;
                const float inv = 1.0f / (float)cnt;
                const float *g = dout + (((size_t)bi * d->OH + oy) * d->OW + ox) * d->C;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float *p = din + (((size_t)bi * d->H + iy) * d->W + ix) * d->C;
                        for (int c = 0; c < d->C; c++) p[c] += g[c] * inv;
                    }
            }
        }
    }
}

/* out[b,c] = mean over the HW rows of in[b,:,c] (summed in double). */
void gr_gap_forward(float *out, const float *in, int B, int HW, int C) {
    /* parallel over (image, block of 64 channels): a batch of 1 keeps both
     * cores busy; each output sums its pixels in order (the same bits)     */
    const int nblk = (C + 63) / 64;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < (int64_t)B * nblk; t++) {
        const int bi = (int)(t / nblk), c0 = (int)(t % nblk) * 64;
        float *o = out + (size_t)bi * C;
        const int nc = C - c0 < 64 ? C - c0 : 64;
        double s[64] = {0};
        for (int p = 0; p < HW; p++) {
            const float *x = in + ((size_t)bi * HW + p) * C + c0;
            for (int j = 0; j < nc; j++) s[j] += x[j];
        }
        for (int j = 0; j < nc; j++) o[c0 + j] = HW > 0 ? (float)(s[j] / HW) : 0.0f;
    }
}

/* din[b,p,c] += dout[b,c] / HW */
void gr_gap_backward(const float *dout, int B, int HW, int C, float *din) {
    if (!din || HW <= 0) return;
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < B; bi++)
        for (int p = 0; p < HW; p++) {
            float *x = din + ((size_t)bi * HW + p) * C;
            const float *g = dout + (size_t)bi * C;
            for (int c = 0; c < C; c++) x[c] += g[c] * inv;
        }
}

/* ---- the ops: max / average pooling (window, stride, padding; darknet's
 * forced output size) and global average pooling ------------------------- */
static gr_status pool_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    int H = in[0].h, W = in[0].w;
    if (s->kh <= 0 || s->kw <= 0) return gr_op_bad(err, s, "pool size %dx%d must be positive", s->kh, s->kw);
    if (s->sh <= 0) s->sh = s->kh;
    if (s->sw <= 0) s->sw = s->kw;
    o->h = gr_op_out_dim(H, s->kh, s->sh, s->padding, &s->pad_t, &s->pad_b, s->out_h);
    o->w = gr_op_out_dim(W, s->kw, s->sw, s->padding, &s->pad_l, &s->pad_r, s->out_w);
    o->c = in[0].c;
    if (o->h <= 0 || o->w <= 0)
        return gr_op_bad(err, s, "a %dx%d input is too small for a %d-wide pool", H, W, s->kh);
    return GR_OK;
}

static gr_pool_dims pool_dims(const gr_op_run *r) {
    const gr_layer_spec *s = r->s;
    gr_pool_dims d = {r->B, r->in[0].h, r->in[0].w, r->in[0].c, r->out.h, r->out.w, s->kh, s->kw,
                      s->sh, s->sw, s->pad_t, s->pad_l};
    return d;
}

static void maxpool_fwd(const gr_op_run *r, float *out) {
    gr_pool_dims d = pool_dims(r);
    gr_maxpool_forward(out, r->ins[0], &d);
}
static void maxpool_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                        float *const *dp) {
    (void)out;
    (void)dp;
    gr_pool_dims d = pool_dims(r);
    gr_maxpool_backward(dout, r->ins[0], &d, din[0]);
}
static void avgpool_fwd(const gr_op_run *r, float *out) {
    gr_pool_dims d = pool_dims(r);
    gr_avgpool_forward(out, r->ins[0], &d);
}
static void avgpool_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                        float *const *dp) {
    (void)out;
    (void)dp;
    gr_pool_dims d = pool_dims(r);
    gr_avgpool_backward(dout, &d, din[0]);
}

static gr_status gap_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)s;
    (void)n_in;
    (void)err;
    *o = (gr_dims3){1, 1, in[0].c};
    return GR_OK;
}
static void gap_fwd(const gr_op_run *r, float *out) {
    gr_gap_forward(out, r->ins[0], r->B, r->in[0].h * r->in[0].w, r->in[0].c);
}
static void gap_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                    float *const *dp) {
    (void)out;
    (void)dp;
    gr_gap_backward(dout, r->B, r->in[0].h * r->in[0].w, r->in[0].c, din[0]);
}

const gr_op_def gr_op_maxpool_def = {
    .name = "max_pooling2d", .fast = GR_FAST_POOL, .shape = pool_shape, .forward = maxpool_fwd,
    .backward = maxpool_bwd,
};
const gr_op_def gr_op_avgpool_def = {
    .name = "average_pooling2d", .fast = GR_FAST_POOL, .shape = pool_shape, .forward = avgpool_fwd,
    .backward = avgpool_bwd,
};
const gr_op_def gr_op_gap_def = {
    .name = "global_average_pooling2d", .shape = gap_shape, .forward = gap_fwd, .backward = gap_bwd,
};
