/* misc.c — reference dropout, add, channel concat and standardize. */
#include "ops/ops.h"

/* ---- dropout: out = in * mask (mask is 0 or 1/(1-rate), made by the caller) */
void gr_dropout_forward(float *out, const float *in, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] * mask[i];
}

void gr_dropout_backward(const float *dout, const float *mask, size_t n, float *din) {
    if (!din) return;
    for (size_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}

/* ---- add: out = ins[0] + ... + ins[k-1], each n values (summed in order) */
void gr_add_forward(float *out, const float *const *ins, int k, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int j = 0; j < k; j++) s += ins[j][i];
        out[i] = s;
    }
}

/* every input receives dout; NULL entries of dins are skipped */
void gr_add_backward(const float *dout, int k, size_t n, float *const *dins) {
    for (int j = 0; j < k; j++) {
        if (!dins[j]) continue;
        for (size_t i = 0; i < n; i++) dins[j][i] += dout[i];
    }
}

/* ---- concat over the last axis: ins[j] [R, cs[j]] -> out [R, sum cs] */
void gr_concat_forward(float *out, const float *const *ins, const int *cs, int k, int64_t R) {
    int ct = 0;
    for (int j = 0; j < k; j++) ct += cs[j];
    for (int64_t r = 0; r < R; r++) {
        float *o = out + (size_t)r * ct;
        for (int j = 0; j < k; j++) {
            const float *x = ins[j] + (size_t)r * cs[j];
            for (int c = 0; c < cs[j]; c++) o[c] = x[c];
            o += cs[j];
        }
    }
}

/* dins[j][r, c] += dout[r, off_j + c]; NULL entries are skipped */
void gr_concat_backward(const float *dout, const int *cs, int k, int64_t R,
                        float *const *dins) {
    int ct = 0;
    for (int j = 0; j < k; j++) ct += cs[j];
    for (int64_t r = 0; r < R; r++) {
        const float *g = dout + (size_t)r * ct;
        for (int j = 0; j < k; j++) {
            if (dins[j]) {
                float *x = dins[j] + (size_t)r * cs[j];
                for (int c = 0; c < cs[j]; c++) x[c] += g[c];
            }
            g += cs[j];
        }
    }
}

/* ---- standardize: out[n,f] = (in[n,f] - mean[f]) / std[f] */
void gr_standardize_forward(float *out, const float *in, const float *mean, const float *std,
                            int64_t N, int F) {
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < F; f++)
            out[(size_t)n * F + f] = (in[(size_t)n * F + f] - mean[f]) / std[f];
}

void gr_standardize_backward(const float *dout, const float *std, int64_t N, int F,
                             float *din) {
    if (!din) return;
    for (int64_t n = 0; n < N; n++)
        for (int f = 0; f < F; f++)
            din[(size_t)n * F + f] += dout[(size_t)n * F + f] / std[f];
}
