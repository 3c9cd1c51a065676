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
#include "ops/ops.h"

/* Clamp the window [o*S-P, o*S-P+K) to [0, n): writes lo/hi (hi exclusive). */
static void win_range(int o, int S, int P, int K, int n, int *lo, int *hi) {
    int a = o * S - P, b = a + K;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

void gr_maxpool_forward(float *out, const float *in, const gr_pool_dims *d) {
    const int64_t rows = (int64_t)d->B * d->OH;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int bi = (int)(r / d->OH), oy = (int)(r % d->OH);
        int y0, y1;
        win_range(oy, d->SH, d->PT, d->KH, d->H, &y0, &y1);
        for (int ox = 0; ox < d->OW; ox++) {
            int x0, x1;
            win_range(ox, d->SW, d->PL, d->KW, d->W, &x0, &x1);
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
            int y0, y1;
            win_range(oy, d->SH, d->PT, d->KH, d->H, &y0, &y1);
            for (int ox = 0; ox < d->OW; ox++) {
                int x0, x1;
                win_range(ox, d->SW, d->PL, d->KW, d->W, &x0, &x1);
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
        int y0, y1;
        win_range(oy, d->SH, d->PT, d->KH, d->H, &y0, &y1);
        for (int ox = 0; ox < d->OW; ox++) {
            int x0, x1;
            win_range(ox, d->SW, d->PL, d->KW, d->W, &x0, &x1);
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
            int y0, y1;
            win_range(oy, d->SH, d->PT, d->KH, d->H, &y0, &y1);
            for (int ox = 0; ox < d->OW; ox++) {
                int x0, x1;
                win_range(ox, d->SW, d->PL, d->KW, d->W, &x0, &x1);
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
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < B; bi++) {
        float *o = out + (size_t)bi * C;
        for (int c0 = 0; c0 < C; c0 += 64) {
            const int nc = C - c0 < 64 ? C - c0 : 64;
            double s[64] = {0};
            for (int p = 0; p < HW; p++) {
                const float *x = in + ((size_t)bi * HW + p) * C + c0;
                for (int j = 0; j < nc; j++) s[j] += x[j];
            }
            for (int j = 0; j < nc; j++) o[c0 + j] = HW > 0 ? (float)(s[j] / HW) : 0.0f;
        }
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
