/* onnx_ops.c — ONNX operators as graft layers (NHWC), weights re-laid out
 * once: Conv OIHW -> HWIO (groups, depthwise), Gemm/MatMul [O,I]/[I,O] ->
 * [I,O] (rows permuted after a Flatten of a spatial map: ONNX flattens CHW,
 * graft HWC).  BatchNormalization after a Conv is folded into its kernel and
 * bias; Relu/Clip(0,6) after a Conv/Gemm/Add fuse into it; Dropout,
 * Identity, and Transpose/Flatten/Reshape/Squeeze/Unsqueeze that only
 * change the layout make no layer.                                         */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;
static const int NCHW[4] = {0, 3, 1, 2};

static const char *const mapped_ops[] = {
    "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Gemm", "MatMul", "Add", "Sum", "Softmax", "Dropout",
    "Identity", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Pad", "HardSigmoid",
    "HardSwish", "Mul", "Div", "Sub", "LayerNormalization", "Erf", "Pow", "Sqrt", "Slice", "Gather", NULL};
static const char *const folded_ops[] = {
    "Constant", "Shape", "Gather", "Cast", "ConstantOfShape", "Slice", "Expand", "Range", "Sub", "Mul", "Div",
    "Pow", "Equal", "Less", "Greater", "Min", "Max", "Where", "Neg", "Abs", "Floor", "Ceil", "Sqrt", "Mod", NULL};

bool gr_onnx_op_mapped(const char *op) {
    for (int k = 0; mapped_ops[k]; k++) if (!strcmp(op, mapped_ops[k])) return true;
    return false;
}

bool gr_onnx_op_known(const char *op) {
    if (gr_onnx_op_mapped(op)) return true;
    for (int k = 0; folded_ops[k]; k++) if (!strcmp(op, folded_ops[k])) return true;
    return false;
}

/* ------------------------------------------------------------------ helpers */

/* name = the last 63 bytes of full, "_2", "_3"... appended when the model
 * has a layer of that name. */
void gr_onnx_unique_name(gr_onnx_b *b, const char *full, char name[64]) {
    size_t L = strlen(full);
    const char *tail = L < 64 ? full : full + L - 63;
    memcpy(name, tail, strlen(tail) + 1);
    char base[64];
    memcpy(base, name, 64);
    for (int r = 2; gr_model_find(b->m, name) >= 0; r++) {
        char suf[16];
        int ls = snprintf(suf, sizeof suf, "_%d", r);
        snprintf(name, 64, "%.*s%s", 63 - ls, base, suf);
    }
}

/* Layer name: the node's name (leading '/' dropped) or its first output,
 * its last 63 bytes, "_2", "_3"... when taken; suffix for helper layers.  */
static void layer_name(gr_onnx_b *b, onode *n, const char *suffix, char name[64]) {
    const char *s = n->name && n->name[0] ? n->name : n->n_output ? n->output[0] : "";
    if (*s == '/') s++;
    char full[300];
    if (!*s) snprintf(full, sizeof full, "node%d", b->node);
    else snprintf(full, sizeof full, "%.250s", s);
    if (suffix) snprintf(full + strlen(full), sizeof full - strlen(full), "/%s", suffix);
    gr_onnx_unique_name(b, full, name);
}

/* Appends s reading `in` (unless s.n_inputs is set); -1 with the node named. */
int gr_onnx_append(gr_onnx_b *b, onode *n, gr_layer_spec s, int in, const char *suffix) {
    layer_name(b, n, suffix, s.name);
    if (s.n_inputs == 0) { s.n_inputs = 1; s.inputs[0] = in; }
    gr_error e = {0};
    int id = gr_model_append(b->m, s, &e);
    if (id < 0) gr_onnx_nerr(b, e.code ? e.code : GR_ERR_SHAPE, "%s", e.msg);
    return id;
}

/* The activation input k: NULL with an error when absent or constant. */
val *gr_onnx_ain(gr_onnx_b *b, onode *n, size_t k) {
    val *v = gr_onnx_in(b, n, k);
    if (!v || v->kind != V_ACT) {
        gr_onnx_nerr(b, v ? GR_ERR_UNSUPPORTED : GR_ERR_FORMAT, "input %zu %s", k,
                     v ? "is a constant where graft needs an activation" : "is missing");
        return NULL;
    }
    return v;
}

/* A constant input k read as floats with exactly `count` values (count < 0: any). */
val *gr_onnx_cfloats(gr_onnx_b *b, onode *n, size_t k, int64_t count, const char *what) {
    val *v = gr_onnx_in(b, n, k);
    if (!v || v->kind != V_CONST) {
        gr_onnx_nerr(b, v ? GR_ERR_UNSUPPORTED : GR_ERR_FORMAT, "%s (input %zu) %s", what, k,
                     v ? "is computed from the image (graft needs a constant)" : "is missing");
        return NULL;
    }
    if (gr_onnx_cload(b, v)) return NULL;
    if (v->ct != CT_F) { gr_onnx_nerr(b, GR_ERR_FORMAT, "%s '%.200s' is not a float tensor", what, v->name); return NULL; }
    if (count >= 0 && v->n != count) {
        gr_onnx_nerr(b, GR_ERR_SHAPE, "%s '%.200s' has %lld values, not %lld", what, v->name, (long long)v->n,
                     (long long)count);
        return NULL;
    }
    return v;
}

/* Output k of n as an activation on node `id` with x's layout (x NULL: rank 4 NCHW). */
val *gr_onnx_set_act(gr_onnx_b *b, onode *n, size_t k, int id, const val *x, bool primary) {
    val *o = gr_onnx_out(b, n, k);
    if (!o) return NULL;
    o->kind = V_ACT;
    o->node = id;
    o->primary = primary;
    if (x) {
        o->rank = x->rank;
        memcpy(o->perm, x->perm, sizeof o->perm);
        o->fmap = x->fmap;
        o->fh = x->fh; o->fw = x->fw; o->fc = x->fc;
        memcpy(o->fperm, x->fperm, sizeof o->fperm);
    } else {
        o->rank = 4;
        memcpy(o->perm, NCHW, sizeof o->perm);
    }
    return o;
}

static bool is_nchw(const val *x) { return x->rank == 4 && !memcmp(x->perm, NCHW, sizeof NCHW); }

static int need_nchw(gr_onnx_b *b, const val *x) {
    if (is_nchw(x)) return 0;
    gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the input '%.200s' is %s (graft needs an NCHW image tensor here)", x->name,
                 x->rank == 4 ? "transposed" : "not 4-D");
    return -1;
}

void gr_onnx_shape(gr_onnx_b *b, int node, int *h, int *w, int *c) { gr_model_layer_shape(b->m, node, h, w, c); }

static bool can_fuse(gr_onnx_b *b, const val *x) { return gr_onnx_can_fuse(b, x, 1); }

/* ------------------------------------------------------------------ conv, BN */

/* BN node k's per-channel scale and shift (gamma / sqrt(var + eps), beta - mean * scale). */
static int bn_affine(gr_onnx_b *b, onode *bn, int C, float **scale, float **shift) {
    if (gr_onnx_attr_i(bn, "training_mode", 0)) {
        gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "training_mode=1 (export the model in eval mode)");
        return -1;
    }
    for (size_t k = 1; k < bn->n_output; k++)
        if (bn->output[k][0] && gr_onnx_get(b, bn->output[k]) && gr_onnx_get(b, bn->output[k])->consumers) {
            gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the running statistics outputs are used (training graph)");
            return -1;
        }
    val *g = gr_onnx_cfloats(b, bn, 1, C, "scale"), *be = gr_onnx_cfloats(b, bn, 2, C, "bias"), *mu = gr_onnx_cfloats(b, bn, 3, C, "mean"),
        *var = gr_onnx_cfloats(b, bn, 4, C, "variance");
    if (!g || !be || !mu || !var) return -1;
    float eps = gr_onnx_attr_f(bn, "epsilon", 1e-5f);
    *scale = gr_malloc((size_t)C * 2 * sizeof(float), b->err);
    if (!*scale) return -1;
    *shift = *scale + C;
    for (int c = 0; c < C; c++) {
        (*scale)[c] = g->f[c] / sqrtf(var->f[c] + eps);
        (*shift)[c] = be->f[c] - mu->f[c] * (*scale)[c];
    }
    return 0;
}

static gr_status conv_padding(gr_onnx_b *b, onode *n, gr_layer_spec *s, int H, int W) {
    const Onnx__AttributeProto *ap = gr_onnx_attr(n, "auto_pad");
    char mode[16] = "NOTSET";
    if (ap && ap->has_s) snprintf(mode, sizeof mode, "%.*s", (int)ap->s.len, (const char *)ap->s.data);
    int64_t p[4] = {0, 0, 0, 0};
    if (!strcmp(mode, "VALID")) { s->padding = GR_PAD_VALID; return GR_OK; }
    if (!strcmp(mode, "SAME_UPPER") || !strcmp(mode, "SAME_LOWER")) {
        int in[2] = {H, W}, st[2] = {s->sh, s->sw};
        int64_t k[2] = {(int64_t)(s->kh - 1) * (s->dh > 1 ? s->dh : 1) + 1,   /* the dilated span */
                        (int64_t)(s->kw - 1) * (s->dw > 1 ? s->dw : 1) + 1};
        for (int d = 0; d < 2; d++) {
            int64_t out = (in[d] + st[d] - 1) / st[d], tot = (out - 1) * st[d] + k[d] - in[d];
            if (tot < 0) tot = 0;
            p[d] = mode[5] == 'U' ? tot / 2 : tot - tot / 2;
            p[d + 2] = tot - p[d];
        }
    } else if (!strcmp(mode, "NOTSET")) {
        int c = gr_onnx_attr_ints(n, "pads", p, 4);
        if (c != 0 && c != 4) return gr_onnx_nerr(b, GR_ERR_FORMAT, "pads has %d values (4 for 2-D)", c);
    } else return gr_onnx_nerr(b, GR_ERR_FORMAT, "auto_pad '%s'", mode);
    for (int d = 0; d < 4; d++)
        if (p[d] < 0 || p[d] > GR_MAX_WINDOW) return gr_onnx_nerr(b, GR_ERR_FORMAT, "padding %lld", (long long)p[d]);
    s->padding = GR_PAD_EXPLICIT;
    s->pad_t = (int)p[0]; s->pad_l = (int)p[1]; s->pad_b = (int)p[2]; s->pad_r = (int)p[3];
    return GR_OK;
}

/* Kernel, strides, dilations of a conv or pool (2-D); dl NULL: dilation 1 only (pools). */
static gr_status window(gr_onnx_b *b, onode *n, int64_t ks[2], int64_t st[2], int64_t *dl_out, bool need_ks) {
    int64_t dl[2] = {1, 1};
    int c = gr_onnx_attr_ints(n, "kernel_shape", ks, 2);
    if ((need_ks && c != 2) || (c && c != 2)) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "graft maps 2-D windows only (kernel_shape has %d values)", c);
    st[0] = st[1] = 1;
    if ((c = gr_onnx_attr_ints(n, "strides", st, 2)) && c != 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "strides has %d values", c);
    if ((c = gr_onnx_attr_ints(n, "dilations", dl, 2)) && c != 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "dilations has %d values", c);
    for (int d = 0; d < 2; d++)
        if (dl[d] < 1 || dl[d] > GR_MAX_WINDOW)
            return gr_onnx_nerr(b, GR_ERR_FORMAT, "dilation %lldx%lld (each must be 1 or more)", (long long)dl[0],
                                (long long)dl[1]);
    if (!dl_out && (dl[0] != 1 || dl[1] != 1))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a pool with dilation %lldx%lld is not supported (convolutions "
                            "only)", (long long)dl[0], (long long)dl[1]);
    if (dl_out) dl_out[0] = dl[0], dl_out[1] = dl[1];
    for (int d = 0; d < 2; d++)
        if (st[d] < 1 || st[d] > GR_MAX_WINDOW) return gr_onnx_nerr(b, GR_ERR_FORMAT, "stride %lld", (long long)st[d]);
    return GR_OK;
}

static int map_conv(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    val *wv = gr_onnx_cfloats(b, n, 1, -1, "weights");
    if (!wv) return -1;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    int64_t g = gr_onnx_attr_i(n, "group", 1), ks[2] = {0, 0}, st[2], dl[2];
    if (wv->rank != 4) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "weights of rank %d (2-D convolutions only)", wv->rank);
    int64_t OC = wv->dims[0], I = wv->dims[1], KH = wv->dims[2], KW = wv->dims[3];
    if (g < 1 || I * g != C || OC % g || OC < 1 || KH < 1 || KW < 1 || KH > GR_MAX_WINDOW || KW > GR_MAX_WINDOW)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "weights [%lld,%lld,%lld,%lld] with group %lld do not fit %d input channels",
                            (long long)OC, (long long)I, (long long)KH, (long long)KW, (long long)g, C), -1;
    if (window(b, n, ks, st, dl, false)) return -1;
    if ((ks[0] || ks[1]) && (ks[0] != KH || ks[1] != KW))
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "kernel_shape %lldx%lld differs from the weights' %lldx%lld",
                            (long long)ks[0], (long long)ks[1], (long long)KH, (long long)KW), -1;
    val *bias = gr_onnx_in(b, n, 2) ? gr_onnx_cfloats(b, n, 2, OC, "bias") : NULL;
    if (gr_onnx_in(b, n, 2) && !bias) return -1;
    int bn = gr_onnx_sole_consumer(b, n->output[0]);
    onode *bnn = bn >= 0 ? b->g->node[bn] : NULL;
    if (bnn && (strcmp(bnn->op_type, "BatchNormalization") || strcmp(bnn->input[0], n->output[0]))) bnn = NULL;
    gr_layer_spec s = gr_conv2d((int)OC, (int)KH, (int)KW, 1, GR_PAD_VALID, GR_ACT_LINEAR);
    s.sh = (int)st[0];
    s.sw = (int)st[1];
    s.dh = (int)dl[0];
    s.dw = (int)dl[1];
    s.groups = (int)g;
    s.use_bias = bias || bnn;
    if (conv_padding(b, n, &s, H, W)) return -1;
    if (x->xpad[0] || x->xpad[1] || x->xpad[2] || x->xpad[3]) {   /* a Pad before it */
        if (s.padding != GR_PAD_EXPLICIT) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Pad before a Conv with auto_pad"), -1;
        s.pad_t += x->xpad[0]; s.pad_l += x->xpad[1]; s.pad_b += x->xpad[2]; s.pad_r += x->xpad[3];
    }
    float *scale = NULL, *shift = NULL;
    if (bnn) {
        int keep = b->node;
        b->node = bn;
        int r = bn_affine(b, bnn, (int)OC, &scale, &shift);
        b->node = keep;
        if (r) return -1;
    }
    int id = gr_onnx_append(b, n, s, x->node, NULL);
    if (id < 0) { free(scale); return -1; }
    float *k = gr_param_data(b->m, gr_node_param(b->m, id, "kernel"));   /* [KH][KW][I][OC] */
    for (int64_t o = 0; o < OC; o++)                                     /* from [OC][I][KH][KW] */
        for (int64_t i = 0; i < I; i++)
            for (int64_t y = 0; y < KH; y++)
                for (int64_t xx = 0; xx < KW; xx++)
                    k[((y * KW + xx) * I + i) * OC + o] = wv->f[((o * I + i) * KH + y) * KW + xx] * (scale ? scale[o] : 1.0f);
    if (s.use_bias) {
        float *bb = gr_param_data(b->m, gr_node_param(b->m, id, "bias"));
        for (int64_t o = 0; o < OC; o++) {
            float b0 = bias ? bias->f[o] : 0.0f;
            bb[o] = scale ? b0 * scale[o] + shift[o] : b0;
        }
    }
    free(scale);
    gr_onnx_release(wv);
    if (!gr_onnx_set_act(b, n, 0, id, NULL, !bnn)) return -1;
    if (bnn) {
        b->done[bn] = true;
        int keep = b->node;
        b->node = bn;
        val *o = gr_onnx_set_act(b, bnn, 0, id, NULL, true);
        b->node = keep;
        if (!o) return -1;
    }
    return 0;
}

static int map_batchnorm(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    if ((x->rank == 4 && need_nchw(b, x)) || (x->rank == 2 && x->fmap))
        return x->rank == 2 ? (gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "batch norm of a flattened map"), -1) : -1;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    float *scale, *shift;
    if (bn_affine(b, n, C, &scale, &shift)) return -1;
    free(scale);   /* only validates; the layer keeps the four statistics */
    gr_layer_spec s = gr_batchnorm(gr_onnx_attr_f(n, "epsilon", 1e-5f));
    s.momentum = gr_onnx_attr_f(n, "momentum", 0.9f);
    int id = gr_onnx_append(b, n, s, x->node, NULL);
    if (id < 0) return -1;
    const char *kinds[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int k = 0; k < 4; k++) {
        val *v = gr_onnx_in(b, n, (size_t)k + 1);
        memcpy(gr_param_data(b->m, gr_node_param(b->m, id, kinds[k])), v->f, (size_t)C * sizeof(float));
    }
    return gr_onnx_set_act(b, n, 0, id, x, true) ? 0 : -1;
}

/* ------------------------------------------------------------------ activations */

static int map_act(gr_onnx_b *b, onode *n, gr_act act, float alpha) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    if (can_fuse(b, x) && act != GR_ACT_LEAKY) {
        b->m->nodes[x->node].s.act = act;
        return gr_onnx_set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    /* PyTorch exports ReLU6 as Relu + Clip(0, 6): the layer's relu becomes a relu6 */
    gr_layer_spec *prev = x->node >= 0 ? &b->m->nodes[x->node].s : NULL;
    if (act == GR_ACT_RELU6 && prev && prev->act == GR_ACT_RELU && x->primary && x->consumers == 1 &&
        x->node == gr_model_num_layers(b->m) - 1 && (prev->op == GR_OP_CONV2D || prev->op == GR_OP_DENSE ||
                                                     prev->op == GR_OP_ADD || prev->op == GR_OP_ACTIVATION)) {
        prev->act = GR_ACT_RELU6;
        return gr_onnx_set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    int id = gr_onnx_append(b, n, gr_activation(act, alpha), x->node, NULL);
    return id < 0 || !gr_onnx_set_act(b, n, 0, id, x, true) ? -1 : 0;
}

static int map_clip(gr_onnx_b *b, onode *n) {
    float lo = -INFINITY, hi = INFINITY;
    for (size_t k = 1; k <= 2; k++) {
        if (!gr_onnx_in(b, n, k)) continue;
        val *v = gr_onnx_cfloats(b, n, k, 1, k == 1 ? "min" : "max");
        if (!v) return -1;
        *(k == 1 ? &lo : &hi) = v->f[0];
    }
    if (lo == 0 && hi == 6) return map_act(b, n, GR_ACT_RELU6, 0);
    if (lo == 0 && isinf(hi)) return map_act(b, n, GR_ACT_RELU, 0);
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Clip(%g, %g) is not supported (Clip(0, 6) = ReLU6 and Clip(0) = ReLU are)",
                        (double)lo, (double)hi), -1;
}

/* ------------------------------------------------------------------ pools */

static int map_pool(gr_onnx_b *b, onode *n, bool avg) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    if (n->n_output > 1 && n->output[1][0] && gr_onnx_get(b, n->output[1])->consumers)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the Indices output is used"), -1;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    int64_t ks[2], st[2];
    if (window(b, n, ks, st, NULL, true)) return -1;
    if (ks[0] < 1 || ks[1] < 1 || ks[0] > GR_MAX_WINDOW || ks[1] > GR_MAX_WINDOW)
        return gr_onnx_nerr(b, GR_ERR_FORMAT, "kernel %lldx%lld", (long long)ks[0], (long long)ks[1]), -1;
    gr_layer_spec s = avg ? gr_avgpool((int)ks[0], (int)st[0]) : gr_maxpool((int)ks[0], (int)st[0]);
    s.kw = (int)ks[1];
    s.sw = (int)st[1];
    if (conv_padding(b, n, &s, H, W)) return -1;
    bool padded = s.padding == GR_PAD_EXPLICIT && (s.pad_t || s.pad_l || s.pad_b || s.pad_r);
    if (avg && padded && gr_onnx_attr_i(n, "count_include_pad", 0))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "count_include_pad=1 with padding is not supported (graft's average "
                            "ignores padded cells)"), -1;
    if (gr_onnx_attr_i(n, "ceil_mode", 0) && s.padding == GR_PAD_EXPLICIT) {
        int in[2] = {H, W}, k[2] = {s.kh, s.kw}, sd[2] = {s.sh, s.sw}, p0[2] = {s.pad_t, s.pad_l}, p1[2] = {s.pad_b, s.pad_r};
        int out[2];
        for (int d = 0; d < 2; d++) {
            int span = in[d] + p0[d] + p1[d] - k[d];
            out[d] = span < 0 ? 0 : (span + sd[d] - 1) / sd[d] + 1;
            if (out[d] > 0 && (out[d] - 1) * sd[d] >= in[d] + p0[d]) out[d]--;   /* the last window starts inside */
        }
        s.out_h = out[0];
        s.out_w = out[1];
    }
    int id = gr_onnx_append(b, n, s, x->node, NULL);
    return id < 0 || !gr_onnx_set_act(b, n, 0, id, NULL, true) ? -1 : 0;
}

static int map_global_pool(gr_onnx_b *b, onode *n, bool avg, bool keep4) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    gr_layer_spec s = avg ? gr_global_avgpool() : gr_maxpool(H, 1);
    if (!avg) { s.kw = W; s.sw = 1; }
    int id = gr_onnx_append(b, n, s, x->node, NULL);
    val *o = id < 0 ? NULL : gr_onnx_set_act(b, n, 0, id, NULL, true);
    if (o && !keep4) o->rank = 2;
    return o ? 0 : -1;
}

static int map_reduce_mean(gr_onnx_b *b, onode *n) {
    int64_t axes[4];
    int na = gr_onnx_reduce_axes(b, n, axes);
    if (na < 0) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "axes must be a constant"), -1;
    if (na == 1) return gr_onnx_map_ln_decomposed(b, n, axes[0]);   /* over channels: a layer norm */
    bool hw = na == 2;
    for (int k = 0; k < na && hw; k++) hw = axes[k] == 2 || axes[k] == 3 || axes[k] == -1 || axes[k] == -2;
    if (!hw || (na == 2 && (axes[0] - axes[1]) % 4 == 0))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only a mean over height and width (axes 2, 3) is supported"), -1;
    return map_global_pool(b, n, true, gr_onnx_attr_i(n, "keepdims", 1) != 0);
}

int gr_onnx_map(gr_onnx_b *b, onode *n) {
    const char *op = n->op_type;
    if (!strcmp(op, "Conv")) return map_conv(b, n);
    if (!strcmp(op, "BatchNormalization")) return map_batchnorm(b, n);
    if (!strcmp(op, "Relu")) return map_act(b, n, GR_ACT_RELU, 0);
    if (!strcmp(op, "Sigmoid")) return gr_onnx_map_gate(b, n, GR_ACT_SIGMOID);
    if (!strcmp(op, "HardSigmoid")) return gr_onnx_map_gate(b, n, GR_ACT_HARDSIGMOID);
    if (!strcmp(op, "HardSwish")) return map_act(b, n, GR_ACT_HARDSWISH, 0);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
        return gr_onnx_map_arith(b, n, op);
    if (!strcmp(op, "LayerNormalization")) return gr_onnx_map_layernorm(b, n);
    if (!strcmp(op, "Erf") || !strcmp(op, "Pow") || !strcmp(op, "Sqrt"))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s on activations is supported only inside the patterns of GELU "
                            "(x * 0.5 * (1 + Erf(x / sqrt 2))) and layer norm (ReduceMean, Sub, Pow, ReduceMean, Add, "
                            "Sqrt, Div)", op), -1;
    if (!strcmp(op, "Tanh")) return map_act(b, n, GR_ACT_TANH, 0);
    if (!strcmp(op, "LeakyRelu")) return map_act(b, n, GR_ACT_LEAKY, gr_onnx_attr_f(n, "alpha", 0.01f));
    if (!strcmp(op, "Clip")) return map_clip(b, n);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) return map_pool(b, n, op[0] == 'A');
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) return map_global_pool(b, n, op[6] == 'A', true);
    if (!strcmp(op, "ReduceMean")) return map_reduce_mean(b, n);
    if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) return gr_onnx_map_dense(b, n, op[0] == 'G');
    if (!strcmp(op, "Sum") || !strcmp(op, "Concat")) return gr_onnx_map_join(b, n, op);
    if (!strcmp(op, "Softmax")) return gr_onnx_map_softmax(b, n);
    if (!strcmp(op, "Slice")) return gr_onnx_map_slice(b, n);
    if (!strcmp(op, "Gather")) return gr_onnx_map_gather(b, n);
    static const char *const layout[] = {"Identity", "Dropout", "Pad", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", NULL};
    for (int k = 0; layout[k]; k++) if (!strcmp(op, layout[k])) return gr_onnx_map_layout(b, n, op);
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s on activations is not supported yet (graft folds it only over "
                        "constants: shape arithmetic)", op), -1;
}
