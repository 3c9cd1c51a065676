/* dense.c — reference fully connected layer.
 *   in [B, IN]   w [IN, OUT] (Keras kernel order)   b [OUT] or NULL   out [B, OUT]
 *   out[b,o] = b[o] + sum_i in[b,i] * w[i,o]
 * Parallel loops give each thread disjoint outputs and sum in a fixed order
 * (deterministic whatever the thread count).                               */
#include "ops/op.h"

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

/* ---- the op: Keras Dense on a flat input (fused activation) -------------- */
static gr_status dense_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    if (in[0].h != 1 || in[0].w != 1)
        return gr_op_bad(err, s, "needs a flat input but gets %dx%dx%d: put flatten or global average pooling before it",
                         in[0].h, in[0].w, in[0].c);
    if (s->units <= 0) return gr_op_bad(err, s, "units %d must be positive", s->units);
    *o = (gr_dims3){1, 1, s->units};
    return GR_OK;
}

static int dense_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    d[0] = (gr_param_decl){"kernel", 2, {in[0].c, s->units}};
    d[1] = (gr_param_decl){"bias", 1, {s->units}};
    return s->use_bias ? 2 : 1;
}

static void dense_fwd(const gr_op_run *r, float *out) {
    gr_dense_forward(out, r->ins[0], r->p[0], r->p[1], r->B, r->in[0].c, r->out.c);
}

static void dense_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                      float *const *dp) {
    (void)out;
    gr_dense_backward(dout, r->ins[0], r->p[0], r->B, r->in[0].c, r->out.c, din[0], dp[0], dp[1]);
}

const gr_op_def gr_op_dense_def = {
    .name = "dense", .attrs = GR_ATTR_BIAS, .flags = GR_OPF_FUSED_ACT, .fast = GR_FAST_DENSE,
    .shape = dense_shape, .params = dense_params, .forward = dense_fwd, .backward = dense_bwd,
};
