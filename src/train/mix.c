/* mix.c — mixup and cutmix on a batch (gr_fit's --mixup / --cutmix), and
 * the Beta(a, a) draw they share.
 *
 * Row b is paired with row B-1-b of the same batch (the batch reversed, as
 * timm's Mixup pairs them); the batch's shuffle makes the pairs random.
 * mixup (Zhang et al. 2018): x_b <- lam x_b + (1 - lam) x_{B-1-b}.
 * cutmix (Yun et al. 2019): a box of area ~ (1 - lam) of the image, centred
 * at a uniform pixel and clipped to the image, is taken from the partner;
 * lam then becomes the part of the image left untouched.  The target of row
 * b is lam y_b + (1 - lam) y_{B-1-b} (gr_trainer_set_mix).                 */
#include <math.h>
#include <string.h>
#include "train/fit.h"

/* Gamma(a, 1) by Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a). */
static double rng_gamma(gr_rng *r, double a) {
    double boost = 1.0;
    if (a < 1.0) {
        double u = gr_rng_uniform(r);
        boost = pow(u > 0 ? u : 1e-12, 1.0 / a);
        a += 1.0;
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = gr_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = gr_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v * boost;
    }
}

double gr_rng_beta(gr_rng *r, double a, double b) {
    double x = rng_gamma(r, a), y = rng_gamma(r, b);
    return x + y > 0 ? x / (x + y) : 0.5;
}

void gr_mixup_rows(float *x, int B, size_t row, float lam) {
    for (int b = 0; b < B / 2; b++) {
        float *p = x + (size_t)b * row, *q = x + (size_t)(B - 1 - b) * row;
        for (size_t k = 0; k < row; k++) {
            float u = p[k], v = q[k];
            p[k] = lam * u + (1.0f - lam) * v;
            q[k] = lam * v + (1.0f - lam) * u;
        }
    }
}

void gr_cutmix_box(int h, int w, float lam, gr_rng *r, int *y0, int *x0, int *y1, int *x1) {
    double cut = sqrt(1.0 - (double)lam);
    int ch = (int)(h * cut), cw = (int)(w * cut);
    int cy = (int)gr_rng_below(r, (uint32_t)h), cx = (int)gr_rng_below(r, (uint32_t)w);
    *y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2;
    *x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2;
    *y1 = cy + ch / 2 > h ? h : cy + ch / 2;
    *x1 = cx + cw / 2 > w ? w : cx + cw / 2;
}

float gr_cutmix_rows(float *x, int B, int h, int w, int c, int y0, int x0, int y1, int x1) {
    size_t row = (size_t)h * w * c, span = (size_t)(x1 > x0 ? x1 - x0 : 0) * c;
    for (int b = 0; b < B / 2 && span; b++) {   /* the pair swaps its boxes */
        float *p = x + (size_t)b * row, *q = x + (size_t)(B - 1 - b) * row;
        for (int y = y0; y < y1; y++) {
            float *pr = p + ((size_t)y * w + x0) * c, *qr = q + ((size_t)y * w + x0) * c;
            for (size_t k = 0; k < span; k++) {
                float t = pr[k];
                pr[k] = qr[k], qr[k] = t;
            }
        }
    }
    double area = (double)(y1 > y0 ? y1 - y0 : 0) * (x1 > x0 ? x1 - x0 : 0);
    return (float)(1.0 - area / ((double)h * w));
}

float gr_mix_batch(float *x, int B, int h, int w, int c, const int *labels, int *labels2, float mixup,
                   float cutmix, gr_rng *r) {
    for (int b = 0; b < B; b++) labels2[b] = labels[B - 1 - b];
    bool cut = cutmix > 0 && (mixup <= 0 || gr_rng_below(r, 2));
    float lam = (float)gr_rng_beta(r, cut ? cutmix : mixup, cut ? cutmix : mixup);
    if (!cut) {
        gr_mixup_rows(x, B, (size_t)h * w * c, lam);
        return lam;
    }
    int y0, x0, y1, x1;
    gr_cutmix_box(h, w, lam, r, &y0, &x0, &y1, &x1);
    return gr_cutmix_rows(x, B, h, w, c, y0, x0, y1, x1);
}
