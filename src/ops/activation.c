/* activation.c — reference elementwise activations and softmax.
 *
 *   linear  y = x                      relu    y = max(x, 0)
 *   leaky   y = x > 0 ? x : alpha*x    relu6   y = min(max(x, 0), 6)
 *   sigmoid y = 1 / (1 + e^-x)         tanh    y = tanh(x)
 * Derivatives at the kinks take the "off" side (relu'(0) = 0, leaky'(0) =
 * alpha, relu6'(0) = relu6'(6) = 0), as PyTorch does.
 * GR_ACT_SOFTMAX is not elementwise (use gr_softmax_*): here it copies.    */
#include <math.h>
#include "ops/ops.h"

static float sigmoidf_(float x) {
    /* stable on both tails */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

void gr_act_forward(float *out, const float *in, size_t n, gr_act act, float alpha) {
    switch (act) {
    case GR_ACT_RELU:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0.0f;
        break;
    case GR_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : alpha * in[i];
        break;
    case GR_ACT_RELU6:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? (in[i] < 6 ? in[i] : 6.0f) : 0.0f;
        break;
    case GR_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) out[i] = sigmoidf_(in[i]);
        break;
    case GR_ACT_TANH:
        for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
        break;
    default: /* LINEAR (and SOFTMAX, which is not elementwise) */
        if (out != in)
            for (size_t i = 0; i < n; i++) out[i] = in[i];
        break;
    }
}

/* din += dout * f'(x); relu/leaky/relu6 read `in`, sigmoid/tanh read `out`. */
void gr_act_backward(const float *dout, const float *in, const float *out, size_t n,
                     gr_act act, float alpha, float *din) {
    if (!din) return;
    switch (act) {
    case GR_ACT_RELU:
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : 0.0f;
        break;
    case GR_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : alpha * dout[i];
        break;
    case GR_ACT_RELU6:
        for (size_t i = 0; i < n; i++) din[i] += (in[i] > 0 && in[i] < 6) ? dout[i] : 0.0f;
        break;
    case GR_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
        break;
    case GR_ACT_TANH:
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    default:
        for (size_t i = 0; i < n; i++) din[i] += dout[i];
        break;
    }
}

/* out[r,:] = exp(in[r,:] - max) / sum exp(in[r,:] - max); sum in double. */
void gr_softmax_forward(float *out, const float *in, int64_t N, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *x = in + (size_t)r * C;
        float *y = out + (size_t)r * C;
        float mx = -INFINITY;
        for (int c = 0; c < C; c++) if (x[c] > mx) mx = x[c];
        double s = 0;
        for (int c = 0; c < C; c++) { y[c] = expf(x[c] - mx); s += y[c]; }
        const float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

/* din[r,c] += out[r,c] * (dout[r,c] - sum_k dout[r,k] out[r,k]) */
void gr_softmax_backward(const float *dout, const float *out, int64_t N, int C, float *din) {
    if (!din) return;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *dy = dout + (size_t)r * C, *y = out + (size_t)r * C;
        float *dx = din + (size_t)r * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)dy[c] * y[c];
        for (int c = 0; c < C; c++) dx[c] += y[c] * (float)(dy[c] - s);
    }
}
