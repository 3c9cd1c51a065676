/* layernorm.c — layer normalization over channels (torch.nn.LayerNorm(C) on
 * NHWC, ONNX LayerNormalization axis -1, Keras LayerNormalization):
 *
 *   per row r of N = B*H*W rows of C:  mean, var (biased) over the C values
 *   out = gamma * (x - mean) / sqrt(var + eps) + beta      params gamma, beta [C]
 *   backward, with xhat = (x - mean) * inv, g = dout * gamma:
 *     din += inv * (g - mean_c(g) - xhat * mean_c(g * xhat))
 *     dgamma += sum_r dout * xhat       dbeta += sum_r dout
 * Statistics in double; eps 0 means 1e-5 (PyTorch's and ONNX's default).  */
#include <math.h>
#include <string.h>
#include "ops/op.h"

gr_layer_spec gr_layernorm(float eps) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_LAYERNORM;
    s.eps = eps;
    return s;
}

/* The mean and 1/sqrt(var + eps) of row x[0..C). */
static void row_stats(const float *x, int C, float eps, double *mean, double *inv) {
    double s = 0, v = 0;
    for (int c = 0; c < C; c++) s += x[c];
    *mean = s / C;
    for (int c = 0; c < C; c++) v += (x[c] - *mean) * (x[c] - *mean);
    *inv = 1.0 / sqrt(v / C + eps);
}

static gr_status ln_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    if (!(s->eps >= 0)) return gr_op_bad(err, s, "epsilon %g must be positive", (double)s->eps);
    if (s->eps == 0) s->eps = 1e-5f;
    *o = in[0];
    return GR_OK;
}

static int ln_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    d[0] = (gr_param_decl){"gamma", 1, {in[0].c}};
    d[1] = (gr_param_decl){"beta", 1, {in[0].c}};
    return 2;
}

static void ln_forward(const gr_op_run *r, float *out) {
    int64_t N = (int64_t)r->B * r->in[0].h * r->in[0].w;
    int C = r->in[0].c;
    const float *g = r->p[0], *be = r->p[1];
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = r->ins[0] + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double mean, inv;
        row_stats(x, C, r->s->eps, &mean, &inv);
        for (int c = 0; c < C; c++) y[c] = (float)((x[c] - mean) * inv) * g[c] + be[c];
    }
}

static void ln_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                        float *const *dp) {
    (void)out;
    int64_t N = (int64_t)r->B * r->in[0].h * r->in[0].w;
    int C = r->in[0].c;
    const float *g = r->p[0];
    float *dx = din[0], *dg = dp[0], *db = dp[1];
    for (int64_t n = 0; n < N; n++) {   /* serial: dgamma and dbeta sum over rows */
        const float *x = r->ins[0] + (size_t)n * C, *dy = dout + (size_t)n * C;
        double mean, inv, sg = 0, sgx = 0;
        row_stats(x, C, r->s->eps, &mean, &inv);
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - mean) * inv, gc = (double)dy[c] * g[c];
            sg += gc;
            sgx += gc * xh;
            if (dg) dg[c] += (float)(dy[c] * xh);
            if (db) db[c] += dy[c];
        }
        for (int c = 0; dx && c < C; c++) {
            double xh = (x[c] - mean) * inv;
            dx[(size_t)n * C + c] += (float)(inv * ((double)dy[c] * g[c] - sg / C - xh * sgx / C));
        }
    }
}

const gr_op_def gr_op_layernorm_def = {
    .name = "layer_normalization", .attrs = GR_ATTR_EPS, .shape = ln_shape, .params = ln_params,
    .forward = ln_forward, .backward = ln_backward,
};
