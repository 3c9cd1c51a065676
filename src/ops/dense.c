/* dense.c — reference fully connected layer.
 *   in [B, IN]   w [IN, OUT] (Keras kernel order)   b [OUT] or NULL   out [B, OUT]
 *   out[b,o] = b[o] + sum_i in[b,i] * w[i,o]
 * Parallel loops give each thread disjoint outputs and sum in a fixed order
 * (deterministic whatever the thread count).                               */
#include "ops/ops.h"

#define DENSE_OB 256   /* output columns per forward task */

/* Parallel over (batch row, block of output columns), so a single-sample
 * forward still uses every thread.  The i loop streams rows of w. */
void gr_dense_forward(float *out, const float *in, const float *w, const float *b,
                      int B, int IN, int OUT) {
    const int nblk = (OUT + DENSE_OB - 1) / DENSE_OB;
    const int64_t ntask = (int64_t)B * nblk;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < ntask; t++) {
        const int bi = (int)(t / nblk), o0 = (int)(t % nblk) * DENSE_OB;
        const int o1 = o0 + DENSE_OB < OUT ? o0 + DENSE_OB : OUT;
        float *orow = out + (size_t)bi * OUT;
        const float *irow = in + (size_t)bi * IN;
        for (int o = o0; o < o1; o++) orow[o] = b ? b[o] : 0.0f;
        for (int i = 0; i < IN; i++) {
            const float v = irow[i];
            const float *wr = w + (size_t)i * OUT;
            for (int o = o0; o < o1; o++) orow[o] += v * wr[o];
        }
    }
}

/* din[b,i] += sum_o dout[b,o] w[i,o]
 * dw[i,o]  += sum_b in[b,i] dout[b,o]
 * db[o]    += sum_b dout[b,o]                                               */
void gr_dense_backward(const float *dout, const float *in, const float *w,
                       int B, int IN, int OUT, float *din, float *dw, float *db) {
    if (din) {
        const int64_t n = (int64_t)B * IN;
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < n; t++) {
            const int bi = (int)(t / IN), i = (int)(t % IN);
            const float *dr = dout + (size_t)bi * OUT, *wr = w + (size_t)i * OUT;
            float acc = 0.0f;
            for (int o = 0; o < OUT; o++) acc += dr[o] * wr[o];
            din[t] += acc;
        }
    }
    if (dw) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < IN; i++) {
            float *wr = dw + (size_t)i * OUT;
            for (int bi = 0; bi < B; bi++) {
                const float v = in[(size_t)bi * IN + i];
                const float *dr = dout + (size_t)bi * OUT;
                for (int o = 0; o < OUT; o++) wr[o] += v * dr[o];
            }
        }
    }
    if (db) {
        for (int bi = 0; bi < B; bi++) {
            const float *dr = dout + (size_t)bi * OUT;
            for (int o = 0; o < OUT; o++) db[o] += dr[o];
        }
    }
}
