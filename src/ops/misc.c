/* misc.c — reference dropout, add, channel concat and standardize. */
#include <string.h>
#include "ops/op.h"

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

/* ---- the ops ------------------------------------------------------------------*/
static void copy_fwd(const gr_op_run *r, float *out) {
    memcpy(out, r->ins[0], (size_t)((int64_t)r->B * gr_dims3_size(r->in[0])) * sizeof(float));
}
static void pass_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                     float *const *dp) {
    (void)out;
    (void)dp;
    if (!din[0]) return;
    int64_t n = (int64_t)r->B * gr_dims3_size(r->in[0]);
    for (int64_t k = 0; k < n; k++) din[0][k] += dout[k];
}

/* flatten: [B, H, W, C] -> [B, H*W*C], channels_last order (a copy) */
static gr_status flatten_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)s;
    (void)n_in;
    (void)err;
    *o = (gr_dims3){1, 1, in[0].h * in[0].w * in[0].c};
    return GR_OK;
}
const gr_op_def gr_op_flatten_def = {
    .name = "flatten", .shape = flatten_shape, .forward = copy_fwd, .backward = pass_bwd,
};

/* dropout: the identity in inference; in training a mask (aux) of 0 or
 * 1/(1-rate) drawn from the trainer's generator, one uniform per value (a
 * shard draws the other rows' values too, so every rank's mask agrees).  */
static gr_status dropout_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    if (!(s->rate >= 0 && s->rate < 1)) return gr_op_bad(err, s, "rate %g must be in [0, 1)", (double)s->rate);
    *o = in[0];
    return GR_OK;
}
static size_t dropout_aux(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B) {
    (void)s;
    (void)out;
    return (size_t)B * (size_t)gr_dims3_size(in[0]);
}
static void dropout_fwd(const gr_op_run *r, float *out) {
    if (!r->training) {
        copy_fwd(r, out);
        return;
    }
    float *mask = r->aux;
    int B = r->B;
    int64_t per = gr_dims3_size(r->in[0]), isz = (int64_t)B * per;
    float keep = 1.0f - r->s->rate, scale = keep > 0 ? 1.0f / keep : 0.0f;
    for (int64_t k = 0; r->shard_total && k < (int64_t)r->shard_lo * per; k++) gr_rng_uniform(r->rng);
    for (int64_t k = 0; k < isz; k++) mask[k] = gr_rng_uniform(r->rng) < keep ? scale : 0.0f;
    for (int64_t k = 0; r->shard_total && k < (int64_t)(r->shard_total - r->shard_lo - B) * per; k++)
        gr_rng_uniform(r->rng);
    gr_dropout_forward(out, r->ins[0], mask, (size_t)isz);
}
static void dropout_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                        float *const *dp) {
    (void)out;
    (void)dp;
    gr_dropout_backward(dout, r->aux, (size_t)((int64_t)r->B * gr_dims3_size(r->in[0])), din[0]);
}
const gr_op_def gr_op_dropout_def = {
    .name = "dropout", .attrs = GR_ATTR_RATE, .flags = GR_OPF_RNG, .shape = dropout_shape,
    .aux_floats = dropout_aux, .forward = dropout_fwd, .backward = dropout_bwd,
};

/* add (darknet shortcut, ResNet add; fused activation) and concat over channels */
static gr_status merge_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    *o = in[0];
    if (s->op == GR_OP_CONCAT) o->c = 0;
    for (int k = 0; k < n_in; k++) {
        if (in[k].h != in[0].h || in[k].w != in[0].w || (s->op == GR_OP_ADD && in[k].c != in[0].c))
            return gr_op_bad(err, s, "inputs differ in shape (input %d is %dx%d)", k, in[k].h, in[k].w);
        if (s->op == GR_OP_CONCAT) o->c += in[k].c;
    }
    return GR_OK;
}
static void add_fwd(const gr_op_run *r, float *out) {
    gr_add_forward(out, r->ins, r->n_in, (size_t)((int64_t)r->B * gr_dims3_size(r->out)));
}
static void add_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                    float *const *dp) {
    (void)out;
    (void)dp;
    gr_add_backward(dout, r->n_in, (size_t)((int64_t)r->B * gr_dims3_size(r->out)), din);
}
static void concat_fwd(const gr_op_run *r, float *out) {
    int cs[GR_MAX_INPUTS];
    for (int k = 0; k < r->n_in; k++) cs[k] = r->in[k].c;
    gr_concat_forward(out, r->ins, cs, r->n_in, (int64_t)r->B * r->out.h * r->out.w);
}
static void concat_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                       float *const *dp) {
    (void)out;
    (void)dp;
    int cs[GR_MAX_INPUTS];
    for (int k = 0; k < r->n_in; k++) cs[k] = r->in[k].c;
    gr_concat_backward(dout, cs, r->n_in, (int64_t)r->B * r->out.h * r->out.w, din);
}
const gr_op_def gr_op_add_def = {
    .name = "add", .flags = GR_OPF_FUSED_ACT, .shape = merge_shape, .forward = add_fwd, .backward = add_bwd,
};
const gr_op_def gr_op_concat_def = {
    .name = "concatenate", .shape = merge_shape, .forward = concat_fwd, .backward = concat_bwd,
};

/* standardize: fixed (x - mean) / std per feature, params mean and std [H*W*C] */
static int std_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    d[0] = (gr_param_decl){"mean", 1, {gr_dims3_size(in[0])}};
    d[1] = (gr_param_decl){"std", 1, {gr_dims3_size(in[0])}};
    return 2;
}
static void std_fwd(const gr_op_run *r, float *out) {
    gr_standardize_forward(out, r->ins[0], r->p[0], r->p[1], r->B, (int)gr_dims3_size(r->in[0]));
}
static void std_bwd(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                    float *const *dp) {
    (void)out;
    (void)dp;
    gr_standardize_backward(dout, r->p[1], r->B, (int)gr_dims3_size(r->in[0]), din[0]);
}
const gr_op_def gr_op_standardize_def = {
    .name = "standardize", .params = std_params, .forward = std_fwd, .backward = std_bwd,
};
