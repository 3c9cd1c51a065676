/* tokens.c — the token ops of a Vision Transformer.  A token sequence
 * [B, T, D] is an NHWC map [B, 1, T, D] (any [B, H, W, D] with H*W = T reads
 * as T tokens in row-major order, so a patch-embedding conv's output is
 * already its token sequence):
 *
 *   class_token         [B,H,W,D] -> [B,1,1+H*W,D]   param token [D]
 *     out[b,0] = token           out[b,1+t] = in[b,t]
 *     din[b,t] += dout[b,1+t]    dtoken += sum_b dout[b,0]
 *   position_embedding  [B,H,W,D] -> [B,H,W,D]      param embedding [H,W,D]
 *     out = in + embedding       din += dout        dembedding += sum_b dout
 *   select_token        [B,H,W,D] -> [B,1,1,D]      token index = spec.units
 *     out[b] = in[b,index]       din[b,index] += dout[b]                   */
#include <string.h>
#include "ops/op.h"

gr_layer_spec gr_class_token(void) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_CLS_TOKEN;
    return s;
}

gr_layer_spec gr_pos_embedding(void) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_POS_EMBED;
    return s;
}

gr_layer_spec gr_select_token(int index) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_TOKEN;
    s.units = index;
    return s;
}

/* ------------------------------------------------------------ class token */

static gr_status cls_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    int64_t T = (int64_t)in[0].h * in[0].w;
    if (T + 1 > ((int64_t)1 << 30))
        return gr_op_bad(err, s, "%lld tokens", (long long)T);
    *o = (gr_dims3){1, (int)(T + 1), in[0].c};
    return GR_OK;
}

static int cls_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    d[0] = (gr_param_decl){"token", 1, {in[0].c}};
    return 1;
}

static void cls_forward(const gr_op_run *r, float *out) {
    int64_t T = (int64_t)r->in[0].h * r->in[0].w, D = r->in[0].c;
    for (int64_t b = 0; b < r->B; b++) {
        float *o = out + (size_t)(b * (T + 1) * D);
        memcpy(o, r->p[0], (size_t)D * sizeof(float));
        memcpy(o + D, r->ins[0] + (size_t)(b * T * D), (size_t)(T * D) * sizeof(float));
    }
}

static void cls_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                         float *const *dp) {
    (void)out;
    int64_t T = (int64_t)r->in[0].h * r->in[0].w, D = r->in[0].c;
    for (int64_t b = 0; b < r->B; b++) {
        const float *g = dout + (size_t)(b * (T + 1) * D);
        if (dp[0])
            for (int64_t c = 0; c < D; c++) dp[0][c] += g[c];
        if (din[0]) {
            float *dx = din[0] + (size_t)(b * T * D);
            for (int64_t k = 0; k < T * D; k++) dx[k] += g[D + k];
        }
    }
}

const gr_op_def gr_op_cls_token_def = {
    .name = "class_token", .shape = cls_shape, .params = cls_params, .forward = cls_forward,
    .backward = cls_backward,
};

/* ------------------------------------------------------ position embedding */

static int pos_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    d[0] = (gr_param_decl){"embedding", 3, {in[0].h, in[0].w, in[0].c}};
    return 1;
}

static void pos_forward(const gr_op_run *r, float *out) {
    int64_t F = gr_dims3_size(r->in[0]);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < r->B; b++) {
        const float *x = r->ins[0] + (size_t)(b * F);
        float *o = out + (size_t)(b * F);
        for (int64_t k = 0; k < F; k++) o[k] = x[k] + r->p[0][k];
    }
}

static void pos_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                         float *const *dp) {
    (void)out;
    int64_t F = gr_dims3_size(r->in[0]);
    for (int64_t b = 0; b < r->B; b++) {
        const float *g = dout + (size_t)(b * F);
        for (int64_t k = 0; din[0] && k < F; k++) din[0][(size_t)(b * F + k)] += g[k];
        for (int64_t k = 0; dp[0] && k < F; k++) dp[0][k] += g[k];
    }
}

const gr_op_def gr_op_pos_embed_def = {
    .name = "position_embedding", .params = pos_params, .forward = pos_forward, .backward = pos_backward,
};

/* ------------------------------------------------------------ select token */

static gr_status sel_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    int64_t T = (int64_t)in[0].h * in[0].w;
    if (s->units < 0 || s->units >= T)
        return gr_op_bad(err, s, "token %d of %lld tokens", s->units, (long long)T);
    *o = (gr_dims3){1, 1, in[0].c};
    return GR_OK;
}

static void sel_forward(const gr_op_run *r, float *out) {
    int64_t T = (int64_t)r->in[0].h * r->in[0].w, D = r->in[0].c;
    for (int64_t b = 0; b < r->B; b++)
        memcpy(out + (size_t)(b * D), r->ins[0] + (size_t)((b * T + r->s->units) * D), (size_t)D * sizeof(float));
}

static void sel_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                         float *const *dp) {
    (void)out;
    (void)dp;
    if (!din[0]) return;
    int64_t T = (int64_t)r->in[0].h * r->in[0].w, D = r->in[0].c;
    for (int64_t b = 0; b < r->B; b++)
        for (int64_t c = 0; c < D; c++) din[0][(size_t)((b * T + r->s->units) * D + c)] += dout[b * D + c];
}

const gr_op_def gr_op_token_def = {
    .name = "select_token", .shape = sel_shape, .forward = sel_forward, .backward = sel_backward,
};
