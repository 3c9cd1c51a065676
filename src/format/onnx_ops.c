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
    "Identity", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Pad", NULL};
static const char *const folded_ops[] = {
    "Constant", "Shape", "Gather", "Cast", "ConstantOfShape", "Slice", "Expand", "Range", "Sub", "Mul", "Div",
    "Pow", "Equal", "Less", "Greater", "Min", "Max", "Where", "Neg", "Abs", "Floor", "Ceil", "Sqrt", NULL};

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

/* Layer name: the node's name (leading '/' dropped) or its first output,
 * its last 63 bytes, "_2", "_3"... when taken; suffix for helper layers.  */
static void layer_name(gr_onnx_b *b, onode *n, const char *suffix, char name[64]) {
    const char *s = n->name && n->name[0] ? n->name : n->n_output ? n->output[0] : "";
    if (*s == '/') s++;
    char full[300];
    if (!*s) snprintf(full, sizeof full, "node%d", b->node);
    else snprintf(full, sizeof full, "%.250s", s);
    if (suffix) snprintf(full + strlen(full), sizeof full - strlen(full), "/%s", suffix);
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

/* Appends s reading `in` (unless s.n_inputs is set); -1 with the node named. */
static int append(gr_onnx_b *b, onode *n, gr_layer_spec s, int in, const char *suffix) {
    layer_name(b, n, suffix, s.name);
    if (s.n_inputs == 0) { s.n_inputs = 1; s.inputs[0] = in; }
    gr_error e = {0};
    int id = gr_model_append(b->m, s, &e);
    if (id < 0) gr_onnx_nerr(b, e.code ? e.code : GR_ERR_SHAPE, "%s", e.msg);
    return id;
}

/* The activation input k: NULL with an error when absent or constant. */
static val *ain(gr_onnx_b *b, onode *n, size_t k) {
    val *v = gr_onnx_in(b, n, k);
    if (!v || v->kind != V_ACT) {
        gr_onnx_nerr(b, v ? GR_ERR_UNSUPPORTED : GR_ERR_FORMAT, "input %zu %s", k,
                     v ? "is a constant where graft needs an activation" : "is missing");
        return NULL;
    }
    return v;
}

/* A constant input k read as floats with exactly `count` values (count < 0: any). */
static val *cfloats(gr_onnx_b *b, onode *n, size_t k, int64_t count, const char *what) {
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
static val *set_act(gr_onnx_b *b, onode *n, size_t k, int id, const val *x, bool primary) {
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

static void shape_of(gr_onnx_b *b, int node, int *h, int *w, int *c) { gr_model_layer_shape(b->m, node, h, w, c); }

/* An activation after x may fuse into x's layer (conv, dense, add not yet activated). */
static bool can_fuse(gr_onnx_b *b, const val *x) {
    if (!x->primary || x->consumers != 1 || x->node < 0 || x->node != gr_model_num_layers(b->m) - 1) return false;
    const gr_layer_spec *s = &b->m->nodes[x->node].s;
    return (s->op == GR_OP_CONV2D || s->op == GR_OP_DENSE || s->op == GR_OP_ADD) && s->act == GR_ACT_LINEAR;
}

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
    val *g = cfloats(b, bn, 1, C, "scale"), *be = cfloats(b, bn, 2, C, "bias"), *mu = cfloats(b, bn, 3, C, "mean"),
        *var = cfloats(b, bn, 4, C, "variance");
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
        int in[2] = {H, W}, k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw};
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

/* Kernel, strides, dilations of a conv or pool (2-D). */
static gr_status window(gr_onnx_b *b, onode *n, int64_t ks[2], int64_t st[2], bool need_ks) {
    int64_t dl[2] = {1, 1};
    int c = gr_onnx_attr_ints(n, "kernel_shape", ks, 2);
    if ((need_ks && c != 2) || (c && c != 2)) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "graft maps 2-D windows only (kernel_shape has %d values)", c);
    st[0] = st[1] = 1;
    if ((c = gr_onnx_attr_ints(n, "strides", st, 2)) && c != 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "strides has %d values", c);
    if ((c = gr_onnx_attr_ints(n, "dilations", dl, 2)) && c != 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "dilations has %d values", c);
    if (dl[0] != 1 || dl[1] != 1)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "dilation %lldx%lld is not supported yet", (long long)dl[0], (long long)dl[1]);
    for (int d = 0; d < 2; d++)
        if (st[d] < 1 || st[d] > GR_MAX_WINDOW) return gr_onnx_nerr(b, GR_ERR_FORMAT, "stride %lld", (long long)st[d]);
    return GR_OK;
}

static int map_conv(gr_onnx_b *b, onode *n) {
    val *x = ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    val *wv = cfloats(b, n, 1, -1, "weights");
    if (!wv) return -1;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    int64_t g = gr_onnx_attr_i(n, "group", 1), ks[2] = {0, 0}, st[2];
    if (wv->rank != 4) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "weights of rank %d (2-D convolutions only)", wv->rank);
    int64_t OC = wv->dims[0], I = wv->dims[1], KH = wv->dims[2], KW = wv->dims[3];
    if (g < 1 || I * g != C || OC % g || OC < 1 || KH < 1 || KW < 1 || KH > GR_MAX_WINDOW || KW > GR_MAX_WINDOW)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "weights [%lld,%lld,%lld,%lld] with group %lld do not fit %d input channels",
                            (long long)OC, (long long)I, (long long)KH, (long long)KW, (long long)g, C), -1;
    if (window(b, n, ks, st, false)) return -1;
    if ((ks[0] || ks[1]) && (ks[0] != KH || ks[1] != KW))
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "kernel_shape %lldx%lld differs from the weights' %lldx%lld",
                            (long long)ks[0], (long long)ks[1], (long long)KH, (long long)KW), -1;
    val *bias = gr_onnx_in(b, n, 2) ? cfloats(b, n, 2, OC, "bias") : NULL;
    if (gr_onnx_in(b, n, 2) && !bias) return -1;
    int bn = gr_onnx_sole_consumer(b, n->output[0]);
    onode *bnn = bn >= 0 ? b->g->node[bn] : NULL;
    if (bnn && (strcmp(bnn->op_type, "BatchNormalization") || strcmp(bnn->input[0], n->output[0]))) bnn = NULL;
    gr_layer_spec s = gr_conv2d((int)OC, (int)KH, (int)KW, 1, GR_PAD_VALID, GR_ACT_LINEAR);
    s.sh = (int)st[0];
    s.sw = (int)st[1];
    s.groups = (int)g;
    s.use_bias = bias || bnn;
    if (conv_padding(b, n, &s, H, W)) return -1;
    float *scale = NULL, *shift = NULL;
    if (bnn) {
        int keep = b->node;
        b->node = bn;
        int r = bn_affine(b, bnn, (int)OC, &scale, &shift);
        b->node = keep;
        if (r) return -1;
    }
    int id = append(b, n, s, x->node, NULL);
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
    if (!set_act(b, n, 0, id, NULL, !bnn)) return -1;
    if (bnn) {
        b->done[bn] = true;
        int keep = b->node;
        b->node = bn;
        val *o = set_act(b, bnn, 0, id, NULL, true);
        b->node = keep;
        if (!o) return -1;
    }
    return 0;
}

static int map_batchnorm(gr_onnx_b *b, onode *n) {
    val *x = ain(b, n, 0);
    if (!x) return -1;
    if ((x->rank == 4 && need_nchw(b, x)) || (x->rank == 2 && x->fmap))
        return x->rank == 2 ? (gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "batch norm of a flattened map"), -1) : -1;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    float *scale, *shift;
    if (bn_affine(b, n, C, &scale, &shift)) return -1;
    free(scale);   /* only validates; the layer keeps the four statistics */
    gr_layer_spec s = gr_batchnorm(gr_onnx_attr_f(n, "epsilon", 1e-5f));
    s.momentum = gr_onnx_attr_f(n, "momentum", 0.9f);
    int id = append(b, n, s, x->node, NULL);
    if (id < 0) return -1;
    const char *kinds[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int k = 0; k < 4; k++) {
        val *v = gr_onnx_in(b, n, (size_t)k + 1);
        memcpy(gr_param_data(b->m, gr_node_param(b->m, id, kinds[k])), v->f, (size_t)C * sizeof(float));
    }
    return set_act(b, n, 0, id, x, true) ? 0 : -1;
}

/* ------------------------------------------------------------------ activations */

static int map_act(gr_onnx_b *b, onode *n, gr_act act, float alpha) {
    val *x = ain(b, n, 0);
    if (!x) return -1;
    if (can_fuse(b, x) && act != GR_ACT_LEAKY) {
        b->m->nodes[x->node].s.act = act;
        return set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    /* PyTorch exports ReLU6 as Relu + Clip(0, 6): the layer's relu becomes a relu6 */
    gr_layer_spec *prev = x->node >= 0 ? &b->m->nodes[x->node].s : NULL;
    if (act == GR_ACT_RELU6 && prev && prev->act == GR_ACT_RELU && x->primary && x->consumers == 1 &&
        x->node == gr_model_num_layers(b->m) - 1 && (prev->op == GR_OP_CONV2D || prev->op == GR_OP_DENSE ||
                                                     prev->op == GR_OP_ADD || prev->op == GR_OP_ACTIVATION)) {
        prev->act = GR_ACT_RELU6;
        return set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    int id = append(b, n, gr_activation(act, alpha), x->node, NULL);
    return id < 0 || !set_act(b, n, 0, id, x, true) ? -1 : 0;
}

static int map_clip(gr_onnx_b *b, onode *n) {
    float lo = -INFINITY, hi = INFINITY;
    for (size_t k = 1; k <= 2; k++) {
        if (!gr_onnx_in(b, n, k)) continue;
        val *v = cfloats(b, n, k, 1, k == 1 ? "min" : "max");
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
    val *x = ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    if (n->n_output > 1 && n->output[1][0] && gr_onnx_get(b, n->output[1])->consumers)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the Indices output is used"), -1;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    int64_t ks[2], st[2];
    if (window(b, n, ks, st, true)) return -1;
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
    int id = append(b, n, s, x->node, NULL);
    return id < 0 || !set_act(b, n, 0, id, NULL, true) ? -1 : 0;
}

static int map_global_pool(gr_onnx_b *b, onode *n, bool avg, bool keep4) {
    val *x = ain(b, n, 0);
    if (!x || need_nchw(b, x)) return -1;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    gr_layer_spec s = avg ? gr_global_avgpool() : gr_maxpool(H, 1);
    if (!avg) { s.kw = W; s.sw = 1; }
    int id = append(b, n, s, x->node, NULL);
    val *o = id < 0 ? NULL : set_act(b, n, 0, id, NULL, true);
    if (o && !keep4) o->rank = 2;
    return o ? 0 : -1;
}

static int map_reduce_mean(gr_onnx_b *b, onode *n) {
    int64_t axes[4];
    int na = 0;
    if (b->f->opset < 18) na = gr_onnx_attr_ints(n, "axes", axes, 4);
    else if (gr_onnx_in(b, n, 1)) {
        val *a = gr_onnx_in(b, n, 1);
        if (a->kind != V_CONST || gr_onnx_cload(b, a) || a->n > 4 || a->ct != CT_I)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "axes must be a constant"), -1;
        na = (int)a->n;
        for (int k = 0; k < na; k++) axes[k] = a->i[k];
    }
    bool hw = na == 2;
    for (int k = 0; k < na && hw; k++) hw = axes[k] == 2 || axes[k] == 3 || axes[k] == -1 || axes[k] == -2;
    if (!hw || (na == 2 && (axes[0] - axes[1]) % 4 == 0))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only a mean over height and width (axes 2, 3) is supported"), -1;
    return map_global_pool(b, n, true, gr_onnx_attr_i(n, "keepdims", 1) != 0);
}

/* ------------------------------------------------------------------ layout */

/* x as a rank-2 [N, F] value (Flatten at axis 1): a graft flatten when spatial. */
static int to_vector(gr_onnx_b *b, onode *n, val *x) {
    if (x->rank == 2) return set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    if (H == 1 && W == 1) {
        val *o = set_act(b, n, 0, x->node, x, false);
        if (o) o->rank = 2;
        return o ? 0 : -1;
    }
    int id = append(b, n, gr_flatten(), x->node, NULL);
    val *o = id < 0 ? NULL : set_act(b, n, 0, id, x, true);
    if (!o) return -1;
    static const int NHWC[4] = {0, 1, 2, 3};
    o->rank = 2;
    o->fmap = memcmp(x->perm, NHWC, sizeof NHWC) != 0;   /* ONNX's flat order differs from graft's HWC */
    o->fh = H; o->fw = W; o->fc = C;
    memcpy(o->fperm, x->perm, sizeof o->fperm);
    return 0;
}

static int map_layout(gr_onnx_b *b, onode *n, const char *op) {
    val *x = ain(b, n, 0);
    if (!x) return -1;
    int64_t d[4], t[GR_ONNX_MAX_RANK] = {0};
    int r = gr_onnx_act_dims(b, x, d), tr = -1;
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) return set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    if (!strcmp(op, "Pad")) {   /* the exporter pads by zero before an AveragePool: nothing */
        val *p = gr_onnx_in(b, n, 1);
        bool zero = p && p->kind == V_CONST && !gr_onnx_cload(b, p) && p->ct == CT_I;
        for (int64_t k = 0; zero && k < p->n; k++) zero = p->i[k] == 0;
        if (zero) return set_act(b, n, 0, x->node, x, false) ? 0 : -1;
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Pad that adds cells is not supported yet (give the padding "
                            "to the Conv or pool)"), -1;
    }
    if (!strcmp(op, "Flatten")) {
        if (gr_onnx_attr_i(n, "axis", 1) == 1) return to_vector(b, n, x);
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Flatten at axis %lld (axis 1 only)",
                            (long long)gr_onnx_attr_i(n, "axis", 1)), -1;
    }
    if (!strcmp(op, "Transpose")) {
        int64_t p[4];
        int c = gr_onnx_attr_ints(n, "perm", p, 4);
        if (c != r) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a perm of %d axes on a rank-%d tensor", c, r), -1;
        if (r == 2 && p[0] == 0 && p[1] == 1) return set_act(b, n, 0, x->node, x, false) ? 0 : -1;
        if (r != 4 || p[0] != 0) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only layout transposes of 4-D tensors that "
                                                      "keep the batch axis first are supported"), -1;
        val *o = set_act(b, n, 0, x->node, x, false);
        if (!o) return -1;
        for (int k = 0; k < 4; k++) {
            if (p[k] < 0 || p[k] > 3) return gr_onnx_nerr(b, GR_ERR_FORMAT, "bad perm"), -1;
            o->perm[k] = x->perm[p[k]];
        }
        return 0;
    }
    if (!strcmp(op, "Reshape")) {
        val *s = gr_onnx_in(b, n, 1);
        if (!s || s->kind != V_CONST || gr_onnx_cload(b, s) || s->ct != CT_I || s->n > GR_ONNX_MAX_RANK)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the target shape is not a constant at this input size"), -1;
        int64_t known = 1, neg = -1, total = r == 2 ? d[1] : d[1] * d[2] * d[3];
        tr = (int)s->n;
        int64_t t0 = tr ? (s->i[0] == 0 ? d[0] : s->i[0]) : 0;
        if (tr < 1 || (t0 != d[0] && t0 != -1 && t0 != 1))
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a reshape that changes the batch dimension"), -1;
        t[0] = d[0];
        for (int k = 1; k < tr; k++) {
            t[k] = s->i[k] == 0 && k < r ? d[k] : s->i[k];
            if (t[k] == -1) neg = k;
            else known = gr_onnx_smul(known, t[k]);
        }
        if (neg >= 0 && known > 0) t[neg] = total / known;
    } else {   /* Squeeze / Unsqueeze: the resulting dims */
        int64_t axes[4] = {0};
        int na = 0;
        if (b->f->opset < 13) na = gr_onnx_attr_ints(n, "axes", axes, 4);
        else if (gr_onnx_in(b, n, 1)) {
            val *a = gr_onnx_in(b, n, 1);
            if (a->kind != V_CONST || gr_onnx_cload(b, a) || a->ct != CT_I || a->n > 4)
                return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "axes must be a constant"), -1;
            na = (int)a->n;
            for (int k = 0; k < na; k++) axes[k] = a->i[k];
        }
        bool sq = !strcmp(op, "Squeeze");
        int orank = sq ? r : r + na;
        bool mark[8] = {0};
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + orank : axes[k];
            if (a < 0 || a >= orank) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis %lld", (long long)axes[k]), -1;
            mark[a] = true;
        }
        tr = 0;
        for (int k = 0, s = 0; k < orank; k++) {
            if (sq) { if (!(na ? mark[k] : d[k] == 1 && k > 0)) t[tr++] = d[k]; }
            else t[tr++] = mark[k] ? 1 : d[s++];
        }
    }
    /* the same dims: nothing; [1, F]: a vector; a vector to [1, F, 1, 1]: the same 1x1 map */
    if (tr == r && !memcmp(t, d, sizeof(int64_t) * (size_t)r)) return set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    if (tr == 2 && t[0] == d[0] && t[1] == (r == 2 ? d[1] : d[1] * d[2] * d[3])) return to_vector(b, n, x);
    if (r == 2 && !x->fmap && tr == 4 && t[0] == d[0] && t[1] == d[1] && t[2] == 1 && t[3] == 1) {
        val *o = set_act(b, n, 0, x->node, NULL, false);
        return o ? 0 : -1;
    }
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "this reshape of a rank-%d activation to rank %d is not supported "
                        "(graft maps flattening to [N, F] and layout-only changes)", r, tr), -1;
}

/* ------------------------------------------------------------------ dense */

static int map_dense(gr_onnx_b *b, onode *n, bool gemm) {
    val *a = ain(b, n, 0);
    if (!a) return -1;
    if (a->rank != 2) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a rank-%d input (graft maps [N, F] x [F, O]; "
                                          "batched MatMul comes with the op table)", a->rank), -1;
    val *wv = cfloats(b, n, 1, -1, "weights");
    if (!wv) return -1;
    int h, w, I;
    shape_of(b, a->node, &h, &w, &I);
    bool tb = gemm && gr_onnx_attr_i(n, "transB", 0);
    if (gemm && gr_onnx_attr_i(n, "transA", 0)) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "transA=1"), -1;
    if (wv->rank != 2 || wv->dims[tb ? 1 : 0] != I)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "weights '%.200s' are not [%s%d%s] for %d input features", wv->name,
                            tb ? "units, " : "", I, tb ? "" : ", units", I), -1;
    int64_t O = wv->dims[tb ? 0 : 1];
    float alpha = gemm ? gr_onnx_attr_f(n, "alpha", 1.0f) : 1.0f, beta = gemm ? gr_onnx_attr_f(n, "beta", 1.0f) : 1.0f;
    val *bias = NULL;
    onode *addn = NULL;
    int addk = -1;
    if (gemm && gr_onnx_in(b, n, 2)) {
        bias = cfloats(b, n, 2, -1, "bias");
        if (!bias) return -1;
    } else if (!gemm) {   /* MatMul + Add(constant) = one dense layer with a bias */
        int k = gr_onnx_sole_consumer(b, n->output[0]);
        onode *c = k >= 0 ? b->g->node[k] : NULL;
        if (c && !strcmp(c->op_type, "Add") && c->n_input == 2) {
            val *other = gr_onnx_get(b, !strcmp(c->input[0], n->output[0]) ? c->input[1] : c->input[0]);
            if (other && other->kind == V_CONST && !gr_onnx_cload(b, other) && other->ct == CT_F && other->n == O) {
                bias = other;
                addn = c;
                addk = k;
                b->done[k] = true;
            }
        }
    }
    if (bias && bias->n != O && bias->n != 1)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "bias has %lld values for %lld units", (long long)bias->n, (long long)O), -1;
    gr_layer_spec s = gr_dense((int)O, GR_ACT_LINEAR);
    s.use_bias = bias != NULL;
    int id = append(b, n, s, a->node, NULL);
    if (id < 0) return -1;
    int *row = gr_malloc((size_t)I * sizeof(int), b->err);   /* graft row p <- ONNX row row[p] */
    if (!row) return -1;
    for (int p = 0; p < I; p++) row[p] = p;
    if (a->fmap) {
        int L[4], phys[4] = {1, a->fh, a->fw, a->fc}, c[4];
        for (int k = 0; k < 4; k++) L[k] = phys[a->fperm[k]];
        for (int p = 0; p < I; p++) {
            c[0] = 0; c[1] = p / (a->fw * a->fc); c[2] = p / a->fc % a->fw; c[3] = p % a->fc;
            row[p] = (c[a->fperm[1]] * L[2] + c[a->fperm[2]]) * L[3] + c[a->fperm[3]];
        }
    }
    float *k = gr_param_data(b->m, gr_node_param(b->m, id, "kernel"));   /* [I][O] */
    for (int p = 0; p < I; p++)
        for (int64_t o = 0; o < O; o++)
            k[(size_t)p * O + o] = alpha * (tb ? wv->f[o * I + row[p]] : wv->f[(int64_t)row[p] * O + o]);
    free(row);
    if (bias) {
        float *bb = gr_param_data(b->m, gr_node_param(b->m, id, "bias"));
        for (int64_t o = 0; o < O; o++) bb[o] = beta * bias->f[bias->n == 1 ? 0 : o];
    }
    if (!set_act(b, n, 0, id, NULL, !addn)) return -1;
    val *o = gr_onnx_get(b, n->output[0]);
    o->rank = 2;
    if (addn) {
        int keep = b->node;
        b->node = addk;
        val *o2 = set_act(b, addn, 0, id, o, true);
        b->node = keep;
        if (!o2) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ joins */

/* Add / Sum / Concat of activations; more than GR_MAX_INPUTS operands are
 * chained (concat(concat(a,b,c,d), e, ...)), one operand is the operand.  */
static int map_join(gr_onnx_b *b, onode *n, const char *op) {
    bool cat = !strcmp(op, "Concat");
    if (n->n_input < 1 || n->n_input > 4096) return gr_onnx_nerr(b, GR_ERR_FORMAT, "%zu operands", n->n_input), -1;
    val *x0 = NULL;
    for (size_t k = 0; k < n->n_input; k++) {
        val *x = gr_onnx_in(b, n, k);
        if (x && x->kind == V_CONST)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of an activation and a constant ('%.200s') is not supported "
                                "yet (a bias outside Gemm/MatMul)", op, x->name), -1;
        if (!(x = ain(b, n, k))) return -1;
        if (!x0) x0 = x;
        else if (x->rank != x0->rank || memcmp(x->perm, x0->perm, sizeof x->perm) || x->fmap != x0->fmap)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "operands in different layouts"), -1;
    }
    if (x0->fmap) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of flattened maps is not supported", op), -1;
    if (cat) {
        int64_t ax = gr_onnx_attr_i(n, "axis", 1);
        if (ax < 0) ax += x0->rank;
        bool chan = x0->rank == 2 ? ax == 1 : ax >= 0 && ax < 4 && x0->perm[ax] == 3;
        if (!chan) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only concatenation over channels is supported"), -1;
    }
    if (n->n_input == 1) return set_act(b, n, 0, x0->node, x0, false) ? 0 : -1;
    int id = -1, part = 0;
    for (size_t k = 0; k < n->n_input;) {
        gr_layer_spec s;
        memset(&s, 0, sizeof s);
        s.op = cat ? GR_OP_CONCAT : GR_OP_ADD;
        if (id >= 0) s.inputs[s.n_inputs++] = id;
        while (s.n_inputs < GR_MAX_INPUTS && k < n->n_input) s.inputs[s.n_inputs++] = gr_onnx_in(b, n, k++)->node;
        char suffix[24];
        snprintf(suffix, sizeof suffix, "part%d", ++part);
        if ((id = append(b, n, s, 0, k < n->n_input ? suffix : NULL)) < 0) return -1;
    }
    return set_act(b, n, 0, id, x0, true) ? 0 : -1;
}

static int map_softmax(gr_onnx_b *b, onode *n) {
    val *x = ain(b, n, 0);
    if (!x) return -1;
    int64_t ax = gr_onnx_attr_i(n, "axis", b->f->opset < 13 ? 1 : -1);
    if (ax < 0) ax += x->rank;
    int H, W, C;
    shape_of(b, x->node, &H, &W, &C);
    bool ok = x->rank == 2 ? ax == 1 && !x->fmap
                           : (b->f->opset >= 13 ? ax >= 0 && ax < 4 && x->perm[ax] == 3 : ax == 1 && H == 1 && W == 1);
    if (!ok) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "softmax over axis %lld of a rank-%d tensor (graft: over "
                                 "channels)", (long long)ax, x->rank), -1;
    int id = append(b, n, gr_softmax(), x->node, NULL);
    return id < 0 || !set_act(b, n, 0, id, x, true) ? -1 : 0;
}

int gr_onnx_map(gr_onnx_b *b, onode *n) {
    const char *op = n->op_type;
    if (!strcmp(op, "Conv")) return map_conv(b, n);
    if (!strcmp(op, "BatchNormalization")) return map_batchnorm(b, n);
    if (!strcmp(op, "Relu")) return map_act(b, n, GR_ACT_RELU, 0);
    if (!strcmp(op, "Sigmoid")) return map_act(b, n, GR_ACT_SIGMOID, 0);
    if (!strcmp(op, "Tanh")) return map_act(b, n, GR_ACT_TANH, 0);
    if (!strcmp(op, "LeakyRelu")) return map_act(b, n, GR_ACT_LEAKY, gr_onnx_attr_f(n, "alpha", 0.01f));
    if (!strcmp(op, "Clip")) return map_clip(b, n);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) return map_pool(b, n, op[0] == 'A');
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) return map_global_pool(b, n, op[6] == 'A', true);
    if (!strcmp(op, "ReduceMean")) return map_reduce_mean(b, n);
    if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) return map_dense(b, n, op[0] == 'G');
    if (!strcmp(op, "Add") || !strcmp(op, "Sum") || !strcmp(op, "Concat")) return map_join(b, n, op);
    if (!strcmp(op, "Softmax")) return map_softmax(b, n);
    static const char *const layout[] = {"Identity", "Dropout", "Pad", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", NULL};
    for (int k = 0; layout[k]; k++) if (!strcmp(op, layout[k])) return map_layout(b, n, op);
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s on activations is not supported yet (graft folds it only over "
                        "constants: shape arithmetic)", op), -1;
}
