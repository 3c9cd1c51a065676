/* table.c — the op table (one line per op kind) and what every op shares:
 * its fused activation, the training state sizes, the shape-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "ops/op.h"

extern const gr_op_def gr_op_conv2d_def, gr_op_dense_def, gr_op_batchnorm_def, gr_op_activation_def,
    gr_op_softmax_def, gr_op_maxpool_def, gr_op_avgpool_def, gr_op_gap_def, gr_op_flatten_def,
    gr_op_dropout_def, gr_op_add_def, gr_op_concat_def, gr_op_standardize_def, gr_op_mul_def,
    gr_op_layernorm_def, gr_op_cls_token_def, gr_op_pos_embed_def, gr_op_attention_def, gr_op_token_def;

static const gr_op_def *const table[GR_OP__COUNT] = {
    [GR_OP_CONV2D] = &gr_op_conv2d_def,
    [GR_OP_BATCHNORM] = &gr_op_batchnorm_def,
    [GR_OP_ACTIVATION] = &gr_op_activation_def,
    [GR_OP_MAXPOOL] = &gr_op_maxpool_def,
    [GR_OP_AVGPOOL] = &gr_op_avgpool_def,
    [GR_OP_GLOBAL_AVGPOOL] = &gr_op_gap_def,
    [GR_OP_FLATTEN] = &gr_op_flatten_def,
    [GR_OP_DENSE] = &gr_op_dense_def,
    [GR_OP_DROPOUT] = &gr_op_dropout_def,
    [GR_OP_SOFTMAX] = &gr_op_softmax_def,
    [GR_OP_ADD] = &gr_op_add_def,
    [GR_OP_CONCAT] = &gr_op_concat_def,
    [GR_OP_STANDARDIZE] = &gr_op_standardize_def,
    [GR_OP_MUL] = &gr_op_mul_def,
    [GR_OP_LAYERNORM] = &gr_op_layernorm_def,
    [GR_OP_CLS_TOKEN] = &gr_op_cls_token_def,
    [GR_OP_POS_EMBED] = &gr_op_pos_embed_def,
    [GR_OP_ATTENTION] = &gr_op_attention_def,
    [GR_OP_TOKEN] = &gr_op_token_def,
};

const gr_op_def *gr_op_get(gr_op op) { return (unsigned)op < GR_OP__COUNT ? table[op] : NULL; }

const char *gr_op_name(gr_op op) {
    if (op == GR_OP_INPUT) return "input";
    const gr_op_def *d = gr_op_get(op);
    return d ? d->name : "?";
}

gr_op gr_op_parse(const char *name) {
    for (int k = 0; k < GR_OP__COUNT; k++)
        if (table[k] && !strcmp(name, table[k]->name)) return (gr_op)k;
    return GR_OP__COUNT;
}

gr_status gr_op_bad(gr_error *err, const gr_layer_spec *s, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gr_error_set(err, GR_ERR_SHAPE, "layer '%s' (%s): %s", s->name, gr_op_name(s->op), what);
}

static bool has_fused_act(const gr_layer_spec *s) {
    const gr_op_def *d = gr_op_get(s->op);
    return d && (d->flags & GR_OPF_FUSED_ACT) && s->act != GR_ACT_LINEAR;
}

void gr_op_act_forward(const gr_op_run *r, float *out) {
    const gr_layer_spec *s = r->s;
    if (!has_fused_act(s)) return;
    size_t n = (size_t)((int64_t)r->B * gr_dims3_size(r->out));
    if (s->act == GR_ACT_SOFTMAX) {
        gr_softmax_forward(out, out, (int64_t)r->B * r->out.h * r->out.w, r->out.c);
        return;
    }
    if (r->pre && gr_act_needs_input(s->act)) memcpy(r->pre, out, n * sizeof(float));
    gr_act_forward(out, out, n, s->act, s->alpha);
}

void gr_op_act_backward(const gr_op_run *r, const float *out, float *dout) {
    const gr_layer_spec *s = r->s;
    if (!has_fused_act(s) || s->act == GR_ACT_SOFTMAX) return;
    size_t n = (size_t)((int64_t)r->B * gr_dims3_size(r->out));
    gr_act_grad_inplace(dout, r->pre, out, n, s->act, s->alpha);
}

void gr_op_forward(const gr_op_run *r, float *out) {
    gr_op_get(r->s->op)->forward(r, out);
    gr_op_act_forward(r, out);
}

size_t gr_op_aux_floats(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B) {
    const gr_op_def *d = gr_op_get(s->op);
    return d && d->aux_floats ? d->aux_floats(s, in, out, B) : 0;
}

size_t gr_op_pre_floats(const gr_layer_spec *s, const gr_dims3 *out, int B) {
    return has_fused_act(s) && gr_act_needs_input(s->act) ? (size_t)B * (size_t)gr_dims3_size(*out) : 0;
}

int gr_op_out_dim(int in, int k, int s, gr_padding pad, int *pt, int *pb, int forced) {
    if (pad == GR_PAD_SAME) {
        int out = (in + s - 1) / s;
        int64_t t64 = (int64_t)(out - 1) * s + k - in;
        int total = t64 > GR_MAX_WINDOW ? GR_MAX_WINDOW : (int)t64;
        if (total < 0) total = 0;
        *pt = total / 2;
        *pb = total - *pt;
        return out;
    }
    if (pad == GR_PAD_VALID) *pt = *pb = 0;
    if (forced > 0) return forced;
    int span = in + *pt + *pb - k;
    return span < 0 ? 0 : span / s + 1;
}
