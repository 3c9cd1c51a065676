/* batchnorm.c — reference batch normalization over N = B*H*W rows of C
 * channels (in/out [N, C], channels contiguous).
 *
 *   xhat = (in - mean) / sqrt(var + eps)        out = gamma * xhat + beta
 *
 * gamma NULL means 1, beta NULL means 0.  Per-channel sums over the N rows
 * are done in double, channel block by channel block (CB channels on the
 * stack), in row order: deterministic whatever the thread count.           */
#include <math.h>
#include "ops/op.h"

#define BN_CB 64   /* channels per block of per-channel accumulators */

void gr_batchnorm_forward(float *out, const float *in, const float *gamma, const float *beta,
                          const float *mean, const float *var, float eps, int64_t N, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            const float inv = 1.0f / sqrtf(var[c] + eps);
            const float g = gamma ? gamma[c] : 1.0f, be = beta ? beta[c] : 0.0f;
            y[c] = g * (x[c] - mean[c]) * inv + be;
        }
    }
}

/* Inference form: mean/var are constants.
 *   din    += dout * gamma / sqrt(var + eps)
 *   dgamma += sum_n dout * xhat          dbeta += sum_n dout                */
void gr_batchnorm_backward(const float *dout, const float *in, const float *gamma,
                           const float *mean, const float *var, float eps, int64_t N, int C,
                           float *din, float *dgamma, float *dbeta) {
    if (din) {
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            const float *dy = dout + (size_t)n * C;
            float *dx = din + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                const float g = gamma ? gamma[c] : 1.0f;
                dx[c] += dy[c] * g / sqrtf(var[c] + eps);
            }
        }
    }
    if (!dgamma && !dbeta) return;
    const int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * BN_CB, nc = C - c0 < BN_CB ? C - c0 : BN_CB;
        double sg[BN_CB] = {0}, sb[BN_CB] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *dy = dout + (size_t)n * C + c0, *x = in + (size_t)n * C + c0;
            for (int j = 0; j < nc; j++) {
                sb[j] += dy[j];
                sg[j] += (double)dy[j] * ((double)x[j] - mean[c0 + j]);
            }
        }
        for (int j = 0; j < nc; j++) {
            const double inv = 1.0 / sqrt((double)var[c0 + j] + eps);
            if (dgamma) dgamma[c0 + j] += (float)(sg[j] * inv);
            if (dbeta) dbeta[c0 + j] += (float)sb[j];
        }
    }
}

/* Training form: bmean = mean over rows, bvar = biased variance (two-pass),
 * then normalize with them. */
void gr_batchnorm_forward_train(float *out, const float *in, const float *gamma,
                                const float *beta, float eps, int64_t N, int C,
                                float *bmean, float *bvar) {
    const int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * BN_CB, nc = C - c0 < BN_CB ? C - c0 : BN_CB;
        double s[BN_CB] = {0}, m[BN_CB], v[BN_CB] = {0};
        for (int64_t n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C + c0;
            for (int j = 0; j < nc; j++) s[j] += x[j];
        }
        for (int j = 0; j < nc; j++) m[j] = N > 0 ? s[j] / (double)N : 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C + c0;
            for (int j = 0; j < nc; j++) {
                const double t = x[j] - m[j];
                v[j] += t * t;
            }
        }
        for (int j = 0; j < nc; j++) {
            bmean[c0 + j] = (float)m[j];
            bvar[c0 + j] = N > 0 ? (float)(v[j] / (double)N) : 0.0f;
        }
    }
    gr_batchnorm_forward(out, in, gamma, beta, bmean, bvar, eps, N, C);
}

/* Training form backward (statistics depend on the input):
 *   dxhat = dout * gamma
 *   din  += inv / N * (N * dxhat - sum_n dxhat - xhat * sum_n dxhat * xhat)
 *   dgamma += sum_n dout * xhat      dbeta += sum_n dout
 * with inv = 1/sqrt(bvar + eps), xhat = (in - bmean) * inv.               */
void gr_batchnorm_backward_train(const float *dout, const float *in, const float *gamma,
                                 const float *bmean, const float *bvar, float eps,
                                 int64_t N, int C, float *din, float *dgamma, float *dbeta) {
    const int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * BN_CB, nc = C - c0 < BN_CB ? C - c0 : BN_CB;
        double sdy[BN_CB] = {0}, sdyx[BN_CB] = {0}, inv[BN_CB];
        for (int j = 0; j < nc; j++) inv[j] = 1.0 / sqrt((double)bvar[c0 + j] + eps);
        for (int64_t n = 0; n < N; n++) {
            const float *dy = dout + (size_t)n * C + c0, *x = in + (size_t)n * C + c0;
            for (int j = 0; j < nc; j++) {
                sdy[j] += dy[j];
                sdyx[j] += (double)dy[j] * ((double)x[j] - bmean[c0 + j]) * inv[j];
            }
        }
        for (int j = 0; j < nc; j++) {
            if (dgamma) dgamma[c0 + j] += (float)sdyx[j];
            if (dbeta) dbeta[c0 + j] += (float)sdy[j];
        }
        if (!din || N == 0) continue;
        for (int64_t n = 0; n < N; n++) {
            const float *dy = dout + (size_t)n * C + c0, *x = in + (size_t)n * C + c0;
            float *dx = din + (size_t)n * C + c0;
            for (int j = 0; j < nc; j++) {
                const double g = gamma ? gamma[c0 + j] : 1.0;
                const double xh = ((double)x[j] - bmean[c0 + j]) * inv[j];
                /* sum dxhat = g*sdy, sum dxhat*xhat = g*sdyx */
                const double t = (double)dy[j] - sdy[j] / (double)N - xh * sdyx[j] / (double)N;
                dx[j] += (float)(g * inv[j] * t);
            }
        }
    }
}

void gr_batchnorm_running_update(float *mm, float *mv, const float *bmean, const float *bvar, float momentum,
                                 int64_t N, int C) {
    double unb = N > 1 ? (double)N / (double)(N - 1) : 1.0;
    for (int c = 0; c < C; c++) {
        mm[c] = momentum * mm[c] + (1 - momentum) * bmean[c];
        mv[c] = momentum * mv[c] + (1 - momentum) * (float)(bvar[c] * unb);
    }
}

/* ---- the op: Keras BatchNormalization over channels ------------------------
 * params gamma, beta, moving_mean, moving_variance [C]; a training run keeps
 * the batch mean and variance in aux [2C] and moves the running averages.  */
static gr_status bn_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    (void)err;
    if (s->eps <= 0) s->eps = 1e-3f;
    if (s->momentum <= 0) s->momentum = 0.99f;
    *o = in[0];
    return GR_OK;
}

static int bn_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    static const char *k[] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) d[i] = (gr_param_decl){k[i], 1, {in[0].c}};
    return 4;
}

static size_t bn_aux(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B) {
    (void)s;
    (void)out;
    (void)B;
    return 2 * (size_t)in[0].c;
}

static void bn_forward(const gr_op_run *r, float *out) {
    const gr_layer_spec *s = r->s;
    int64_t rows = (int64_t)r->B * r->in[0].h * r->in[0].w;
    int C = r->in[0].c;
    if (!r->training) {
        gr_batchnorm_forward(out, r->ins[0], r->p[0], r->p[1], r->p[2], r->p[3], s->eps, rows, C);
        return;
    }
    gr_batchnorm_forward_train(out, r->ins[0], r->p[0], r->p[1], s->eps, rows, C, r->aux, r->aux + C);
    gr_batchnorm_running_update(r->p[2], r->p[3], r->aux, r->aux + C, s->momentum, rows, C);
}

static void bn_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                        float *const *dp) {
    (void)out;
    const gr_layer_spec *s = r->s;
    int64_t rows = (int64_t)r->B * r->in[0].h * r->in[0].w;
    int C = r->in[0].c;
    if (r->training)
        gr_batchnorm_backward_train(dout, r->ins[0], r->p[0], r->aux, r->aux + C, s->eps, rows, C, din[0], dp[0],
                                    dp[1]);
    else
        gr_batchnorm_backward(dout, r->ins[0], r->p[0], r->p[2], r->p[3], s->eps, rows, C, din[0], dp[0], dp[1]);
}

const gr_op_def gr_op_batchnorm_def = {
    .name = "batch_normalization", .attrs = GR_ATTR_NORM, .flags = GR_OPF_BATCH_STATS,
    .fast = GR_FAST_BATCHNORM, .shape = bn_shape, .params = bn_params, .aux_floats = bn_aux,
    .forward = bn_forward, .backward = bn_backward,
};
