/* onnx_export.c — a graft model written as one ONNX file (gr_model_export_onnx).
 *
 * The messages are built as protobuf-c structures (the code generated at
 * build time from Debian's onnx.proto, see the Makefile) and packed by
 * protobuf-c; the bytes go through gr_outfile (temp file, fsync, rename), so
 * an error leaves no file.
 *
 * Layout.  The graph takes the preprocessed image as NCHW float32 [N, C, H, W]
 * (torchvision's convention; N symbolic unless opts.batch) and every spatial
 * tensor inside it is NCHW: conv kernels go from graft's HWIO to OIHW, per-
 * feature constants of a spatial map from HWC to CHW.  A flat tensor is
 * [N, F].  graft's flatten is channels_last (HWC order); the ONNX Flatten of
 * an NCHW map gives CHW order.  Rather than a Transpose before each Flatten,
 * the flattened value is marked "permuted" and its consumers absorb the
 * permutation once in their constants: a dense layer's kernel rows, the
 * per-feature constants of batchnorm and standardize, nothing for an
 * elementwise activation or dropout.  Any other consumer (or the output)
 * gets the HWC order back (Transpose + Flatten).
 *
 * Every op of the op table maps to standard operators of opsets 11..18
 * (layer normalization as the ReduceMean/Sub/Pow/Sqrt/Div form PyTorch
 * exports; ReLU6, HardSwish, GELU and SiLU as elementwise formulas that
 * every runtime has, avoiding what OpenCV 4.6 and OpenVINO misread, see the
 * comments at each).  A fused activation becomes its own operator.  Dropout is left out (inference).
 * Preprocessing and class names are recorded in metadata_props (README
 * "Export to ONNX" lists the keys).  The protobuf-c builder is onnx_emit.c. */
#include <json.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/outfile.h"
#include "format/onnx_emit.h"

/* ------------------------------------------------------ layout helpers */

/* CHW position of the value at HWC position i of an h x w x c map. */
static int64_t chw_of(int64_t i, int h, int w, int c) {
    int64_t ch = i % c, px = i / c;
    return ch * h * w + px;
}

/* The value x with graft's HWC feature order (no permutation left): its
 * NCHW map (the value reshaped to [N, C, H, W] when it is not the plain
 * Flatten of one) transposed to NHWC and flattened.                        */
static const char *oxe_unperm(oxe *e, const oxe_val *x) {
    if (!x->perm) return x->name;
    const char *map = x->src4d;
    if (!map) {
        int64_t shape[4] = {0, x->pc, x->ph, x->pw};
        map = oxe_op2(e, "Reshape", x->name, oxe_ints(e, shape, 4), NULL);
    }
    static const int64_t to_nhwc[4] = {0, 2, 3, 1};
    const char *t = oxe_op1(e, "Transpose", map, NULL);
    oxe_attr_ints(e, t ? e->nodes[e->n_nodes - 1] : NULL, "perm", to_nhwc, 4);
    const char *f = oxe_op1(e, "Flatten", t, NULL);
    if (f) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 1);
    return f;
}

/* x as [N, F] (a 4-D x must be 1x1 spatially, as graft checked). */
static const char *oxe_as2(oxe *e, const oxe_val *x) {
    if (x->rank == 2) return oxe_unperm(e, x);
    const char *f = oxe_op1(e, "Flatten", x->name, NULL);
    if (f) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 1);
    return f;
}

/* x as [N, C, H, W] ([N, F] becomes [N, F, 1, 1]). */
static const char *oxe_as4(oxe *e, const oxe_val *x) {
    if (x->rank == 4) return x->name;
    const char *f = oxe_unperm(e, x);
    int64_t shape[4] = {0, -1, 1, 1};
    return oxe_op2(e, "Reshape", f, oxe_ints(e, shape, 4), NULL);
}

/* Per-feature constants p[h*w*c] (HWC order) as a flat ONNX value x takes
 * them: [F], in CHW order when x is permuted.  out has F floats; returns
 * the rank (1) and writes dims.                                            */
static int oxe_feature_layout(const oxe_val *x, const float *p, float *out, int64_t *dims) {
    int h = x->perm ? x->ph : x->h, w = x->perm ? x->pw : x->w, c = x->perm ? x->pc : x->c;
    int64_t n = (int64_t)h * w * c;
    for (int64_t i = 0; i < n; i++) out[x->perm ? chw_of(i, h, w, c) : i] = p[i];
    dims[0] = n;
    return 1;
}

/* -------------------------------------------------------- activations */

/* clamp(alpha * x + beta, 0, 1).  relu6 and the hard activations go through
 * HardSigmoid, not Clip: opset 11 moved Clip's bounds to inputs, which
 * OpenCV 4.6's importer refuses (it takes Clip with attributes only).     */
static const char *oxe_hardsig(oxe *e, const char *x, float alpha, float beta, const char *dst) {
    const char *o = oxe_op1(e, "HardSigmoid", x, dst);
    Onnx__NodeProto *n = o ? e->nodes[e->n_nodes - 1] : NULL;
    oxe_attr_f(e, n, "alpha", alpha);
    oxe_attr_f(e, n, "beta", beta);
    return o;
}

/* Softmax over graft's channels: axis 1 of [N, F] or [N, C, H, W]; before
 * opset 13 Softmax flattens from its axis on, so a map goes through NHWC. */
static const char *oxe_softmax(oxe *e, const char *x, int rank, const char *dst) {
    if (rank == 2 || e->opset >= 13) {
        const char *o = oxe_op1(e, "Softmax", x, dst);
        if (o) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 1);
        return o;
    }
    static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    const char *t = oxe_op1(e, "Transpose", x, NULL);
    oxe_attr_ints(e, t ? e->nodes[e->n_nodes - 1] : NULL, "perm", to_nhwc, 4);
    const char *s = oxe_op1(e, "Softmax", t, NULL);
    if (s) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 3);
    const char *o = oxe_op1(e, "Transpose", s, dst);
    oxe_attr_ints(e, o ? e->nodes[e->n_nodes - 1] : NULL, "perm", to_nchw, 4);
    return o;
}

/* dst = act(x) (a fresh name when dst is NULL). */
static const char *oxe_act(oxe *e, const char *x, gr_act act, float alpha, int rank, const char *dst) {
    switch (act) {
    case GR_ACT_LINEAR: return dst ? oxe_op1(e, "Identity", x, dst) : x;
    case GR_ACT_RELU: return oxe_op1(e, "Relu", x, dst);
    case GR_ACT_LEAKY: {
        const char *o = oxe_op1(e, "LeakyRelu", x, dst);
        if (o) oxe_attr_f(e, e->nodes[e->n_nodes - 1], "alpha", alpha);
        return o;
    }
    case GR_ACT_RELU6:         /* 6 * clamp((x - 3) / 6 + 1/2, 0, 1): OpenVINO (2026.4) reads a HardSigmoid
                                * beta of 0 as its default 0.5, so beta stays 0.5 */
        return oxe_op2(e, "Mul", oxe_hardsig(e, oxe_op2(e, "Sub", x, oxe_scalar(e, 3.0f), NULL), 1.0f / 6, 0.5f, NULL),
                   oxe_scalar(e, 6.0f), dst);
    case GR_ACT_SIGMOID: return oxe_op1(e, "Sigmoid", x, dst);
    case GR_ACT_TANH: return oxe_op1(e, "Tanh", x, dst);
    case GR_ACT_SOFTMAX: return oxe_softmax(e, x, rank, dst);
    case GR_ACT_SWISH: return oxe_op2(e, "Mul", x, oxe_op1(e, "Sigmoid", x, NULL), dst);
    case GR_ACT_HARDSIGMOID:   /* relu6(x + 3) / 6 = clamp(x / 6 + 1/2, 0, 1) */
        return oxe_hardsig(e, x, 1.0f / 6, 0.5f, dst);
    case GR_ACT_HARDSWISH:     /* x * relu6(x + 3) / 6 (HardSwish is opset 14) */
        return oxe_op2(e, "Mul", x, oxe_hardsig(e, x, 1.0f / 6, 0.5f, NULL), dst);
    case GR_ACT_GELU: {        /* x * 0.5 * (1 + erf(x / sqrt 2)) */
        const char *r = oxe_op1(e, "Erf", oxe_op2(e, "Div", x, oxe_scalar(e, (float)M_SQRT2), NULL), NULL);
        const char *h = oxe_op2(e, "Mul", x, oxe_op2(e, "Add", r, oxe_scalar(e, 1.0f), NULL), NULL);
        return oxe_op2(e, "Mul", h, oxe_scalar(e, 0.5f), dst);
    }
    default: break;
    }
    oxe_fail(e, GR_ERR_UNSUPPORTED, "activation %s has no ONNX form", gr_act_name(act));
    return NULL;
}

/* ---------------------------------------------------------------- ops */

/* The pad at the end of a spatial axis so that ONNX's floor((in + pb + pe -
 * k) / s) + 1 gives graft's out; -1 when no pad >= 0 does.               */
static int end_pad(int in, int k, int s, int pb, int out) {
    int pe = (out - 1) * s + k - in - pb;
    if (pe < 0) pe = 0;
    return (in + pb + pe - k) / s + 1 == out ? pe : -1;
}

static const char *oxe_conv(oxe *e, int i, const oxe_val *x, const char *dst) {
    const gr_model *m = e->m;
    const gr_node *n = &m->nodes[i];
    gr_conv_dims d = gr_node_conv_dims(m, i, 1);
    int DH = d.DH > 1 ? d.DH : 1, DW = d.DW > 1 ? d.DW : 1;
    int pb = end_pad(d.H, (d.KH - 1) * DH + 1, d.SH, d.PT, d.OH), pr = end_pad(d.W, (d.KW - 1) * DW + 1, d.SW, d.PL, d.OW);
    if (pb < 0 || pr < 0) {
        oxe_fail(e, GR_ERR_UNSUPPORTED, "its output %dx%d is not what ONNX's padding rule gives", d.OH, d.OW);
        return NULL;
    }
    int Cg = d.C / d.groups;
    int64_t count = (int64_t)d.KH * d.KW * Cg * d.OC;
    float *w = malloc((size_t)count * sizeof *w);
    if (!w) {
        oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    const float *hwio = gr_param_cdata(m, gr_node_param(m, i, "kernel"));
    for (int ky = 0; ky < d.KH; ky++)   /* HWIO -> OIHW */
        for (int kx = 0; kx < d.KW; kx++)
            for (int ci = 0; ci < Cg; ci++)
                for (int o = 0; o < d.OC; o++)
                    w[(((size_t)o * Cg + ci) * d.KH + ky) * d.KW + kx] = hwio[(((size_t)ky * d.KW + kx) * Cg + ci) * d.OC + o];
    int64_t wd[4] = {d.OC, Cg, d.KH, d.KW};
    const char *in[3] = {oxe_as4(e, x), oxe_param(e, "kernel", w, count, 4, wd), NULL};
    free(w);
    int bi = n->s.use_bias ? gr_node_param(m, i, "bias") : -1;
    if (bi >= 0) {
        int64_t bd[1] = {d.OC};
        in[2] = oxe_param(e, "bias", gr_param_cdata(m, bi), d.OC, 1, bd);
    }
    const char *pre = n->s.act == GR_ACT_LINEAR ? dst : oxe_tmp(e);
    Onnx__NodeProto *c = oxe_node(e, "Conv", bi >= 0 ? 3 : 2, in, pre);
    int64_t ks[2] = {d.KH, d.KW}, st[2] = {d.SH, d.SW}, pads[4] = {d.PT, d.PL, pb, pr}, dil[2] = {DH, DW};
    oxe_attr_ints(e, c, "kernel_shape", ks, 2);
    oxe_attr_ints(e, c, "strides", st, 2);
    oxe_attr_ints(e, c, "pads", pads, 4);
    oxe_attr_ints(e, c, "dilations", dil, 2);
    oxe_attr_i(e, c, "group", d.groups);
    if (!c) return NULL;
    return n->s.act == GR_ACT_LINEAR ? pre : oxe_act(e, pre, n->s.act, n->s.alpha, 4, dst);
}

/* Whether node i's output reaches, through elementwise layers, the second
 * input of a multiply of a map (a squeeze-and-excitation scale).          */
static bool feeds_scale(const gr_model *m, int i, int depth) {
    for (int k = i + 1; k < m->n_nodes && depth < 8; k++) {
        const gr_node *n = &m->nodes[k];
        if (n->s.op == GR_OP_MUL && n->n_in == 2 && n->in[1] == i && (n->oh > 1 || n->ow > 1)) return true;
        bool elementwise = n->s.op == GR_OP_DROPOUT || (n->s.op == GR_OP_ACTIVATION && n->s.act != GR_ACT_SOFTMAX);
        if (elementwise && n->in[0] == i && feeds_scale(m, k, depth + 1)) return true;
    }
    return false;
}

/* A dense layer: Gemm on [N, F]; on a [N, C, 1, 1] value that scales a map
 * (rank 4), a 1x1 Conv keeping it 4-D, as PyTorch's SE blocks export (OpenCV
 * 4.6 multiplies a map only by a scale that stayed 4-D).                  */
static const char *oxe_dense(oxe *e, int i, const oxe_val *x, int rank, const char *dst) {
    const gr_model *m = e->m;
    const gr_node *n = &m->nodes[i];
    int IN = n->ic, OUT = n->oc;
    float *bt = malloc((size_t)IN * OUT * sizeof *bt), *bias = calloc((size_t)OUT, sizeof *bias);
    if (!bt || !bias) {
        free(bt), free(bias);
        oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    /* Gemm(x, B, C, transB=1) with B [OUT, IN] (torch's Linear layout); a
     * permuted x takes the kernel rows in its CHW order.                   */
    const float *k = gr_param_cdata(m, gr_node_param(m, i, "kernel"));
    bool perm = x->rank == 2 && x->perm;
    for (int r = 0; r < IN; r++) {
        int64_t j = perm ? chw_of(r, x->ph, x->pw, x->pc) : r;
        for (int o = 0; o < OUT; o++) bt[(size_t)o * IN + j] = k[(size_t)r * OUT + o];
    }
    int bi = n->s.use_bias ? gr_node_param(m, i, "bias") : -1;
    if (bi >= 0) memcpy(bias, gr_param_cdata(m, bi), (size_t)OUT * sizeof *bias);
    int64_t wd[4] = {OUT, IN, 1, 1}, bd[1] = {OUT};
    const char *in[3] = {rank == 4 ? x->name : perm ? x->name : oxe_as2(e, x),
                         oxe_param(e, "kernel", bt, (int64_t)IN * OUT, rank == 4 ? 4 : 2, wd),
                         oxe_param(e, "bias", bias, OUT, 1, bd)};
    free(bt), free(bias);
    const char *pre = n->s.act == GR_ACT_LINEAR ? dst : oxe_tmp(e);
    Onnx__NodeProto *g = oxe_node(e, rank == 4 ? "Conv" : "Gemm", 3, in, pre);
    if (rank == 4) {
        int64_t ones[2] = {1, 1};
        oxe_attr_ints(e, g, "kernel_shape", ones, 2);
    } else {
        oxe_attr_i(e, g, "transB", 1);
    }
    if (!g) return NULL;
    return n->s.act == GR_ACT_LINEAR ? pre : oxe_act(e, pre, n->s.act, n->s.alpha, rank, dst);
}

static const char *oxe_pool(oxe *e, int i, const oxe_val *x, const char *dst) {
    const gr_node *n = &e->m->nodes[i];
    gr_pool_dims d = gr_node_pool_dims(e->m, i, 1);
    int pb = end_pad(d.H, d.KH, d.SH, d.PT, d.OH), pr = end_pad(d.W, d.KW, d.SW, d.PL, d.OW);
    if (pb < 0 || pr < 0) {
        oxe_fail(e, GR_ERR_UNSUPPORTED, "its output %dx%d is not what ONNX's padding rule gives", d.OH, d.OW);
        return NULL;
    }
    if (d.PT >= d.KH || d.PL >= d.KW || pb >= d.KH || pr >= d.KW) {
        oxe_fail(e, GR_ERR_UNSUPPORTED, "a pad of %d,%d,%d,%d is not smaller than its %dx%d window", d.PT, d.PL, pb,
                pr, d.KH, d.KW);
        return NULL;
    }
    const char *o = oxe_op1(e, n->s.op == GR_OP_MAXPOOL ? "MaxPool" : "AveragePool", oxe_as4(e, x), dst);
    Onnx__NodeProto *p = o ? e->nodes[e->n_nodes - 1] : NULL;
    int64_t ks[2] = {d.KH, d.KW}, st[2] = {d.SH, d.SW}, pads[4] = {d.PT, d.PL, pb, pr};
    oxe_attr_ints(e, p, "kernel_shape", ks, 2);
    oxe_attr_ints(e, p, "strides", st, 2);
    oxe_attr_ints(e, p, "pads", pads, 4);
    if (n->s.op == GR_OP_AVGPOOL) oxe_attr_i(e, p, "count_include_pad", 0);   /* graft ignores outside cells */
    return o;
}

/* y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis, as
 * PyTorch exports LayerNorm before opset 17 (ReduceMean, Sub, Pow, ReduceMean,
 * Add, Sqrt, Div, Mul, Add): the pattern runtimes fuse back into one layer
 * (OpenCV 4.6 has no LayerNormalization).  gamma, beta: [C] (NULL: up to the
 * Div).                                                                    */
static const char *oxe_layernorm(oxe *e, const char *x, const char *gamma, const char *beta, float eps,
                                const char *dst) {
    int64_t axes[1] = {-1};
    const char *axes_in = e->opset >= 18 ? oxe_ints(e, axes, 1) : NULL;   /* opset 18: axes is an input */
    const char *mean = NULL, *d = NULL, *var = NULL;
    for (int k = 0; k < 2; k++) {
        if (k) d = oxe_op2(e, "Sub", x, mean, NULL);
        const char *in[2] = {k ? oxe_op2(e, "Pow", d, oxe_scalar(e, 2.0f), NULL) : x, axes_in};
        const char *out = oxe_tmp(e);
        Onnx__NodeProto *n = oxe_node(e, "ReduceMean", axes_in ? 2 : 1, in, out);
        if (!axes_in) oxe_attr_ints(e, n, "axes", axes, 1);
        oxe_attr_i(e, n, "keepdims", 1);
        if (!n) return NULL;
        *(k ? &var : &mean) = out;
    }
    const char *sd = oxe_op1(e, "Sqrt", oxe_op2(e, "Add", var, oxe_scalar(e, eps), NULL), NULL);
    if (!gamma) return oxe_op2(e, "Div", d, sd, dst);   /* the caller applies gamma and beta */
    const char *y = oxe_op2(e, "Mul", oxe_op2(e, "Div", d, sd, NULL), gamma, NULL);
    return oxe_op2(e, "Add", y, beta, dst);
}

/* ------------------------------------------------------------ tokens */

/* A token sequence [N, T, D] is graft's map [N, h, w, D] (T = h*w, row
 * major), so in the graph it is the NCHW map [N, D, h, w]: per-token dense
 * layers stay 1x1 Convs, layer norm the map's, and every runtime keeps the
 * 4-D tensors it handles best (OpenCV 4.6 loses a 3-D tensor's axes).    */

/* x as [N, C, 1, h*w] (a Reshape when h > 1). */
static const char *oxe_tokens_row(oxe *e, const oxe_val *x) {
    if (x->h == 1) return x->name;
    int64_t shape[4] = {0, x->c, 1, (int64_t)x->h * x->w};
    return oxe_op2(e, "Reshape", x->name, oxe_ints(e, shape, 4), NULL);
}

/* class_token: Concat(token [N, D, 1, 1], x [N, D, 1, T], axis 3).  The
 * token is made [N, D, 1, 1] for any batch as a depthwise 1x1 Conv with
 * zero weights and the token as bias, of x's first column (no Shape/Expand:
 * OpenCV 4.6 cannot broadcast a constant over the batch in a Concat).     */
static const char *oxe_cls_token(oxe *e, int i, const oxe_val *x, const char *dst) {
    const gr_model *m = e->m;
    int D = x->c;
    const char *row = oxe_tokens_row(e, x);
    int64_t z[1] = {0}, one[1] = {1}, ax[1] = {3};
    const char *sin[4] = {row, oxe_ints(e, z, 1), oxe_ints(e, one, 1), oxe_ints(e, ax, 1)};
    const char *first = oxe_tmp(e);
    oxe_node(e, "Slice", 4, sin, first);
    float *w = calloc((size_t)D, sizeof *w);
    if (!w) {
        oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int64_t wd[4] = {D, 1, 1, 1}, bd[1] = {D};
    const char *cin[3] = {first, oxe_param(e, "zero", w, D, 4, wd),
                          oxe_param(e, "token", gr_param_cdata(m, gr_node_param(m, i, "token")), D, 1, bd)};
    free(w);
    const char *tok = oxe_tmp(e);
    Onnx__NodeProto *c = oxe_node(e, "Conv", 3, cin, tok);
    int64_t ks[2] = {1, 1};
    oxe_attr_ints(e, c, "kernel_shape", ks, 2);
    oxe_attr_i(e, c, "group", D);
    const char *in[2] = {tok, row};
    Onnx__NodeProto *cat = oxe_node(e, "Concat", 2, in, dst);
    oxe_attr_i(e, cat, "axis", 3);
    return cat ? dst : NULL;
}

/* position_embedding: x + E, E [1, D, h, w] (graft's [h, w, D] in CHW order). */
static const char *oxe_pos_embed(oxe *e, int i, const oxe_val *x, const char *dst) {
    const gr_model *m = e->m;
    int64_t n = (int64_t)x->h * x->w * x->c;
    const float *p = gr_param_cdata(m, gr_node_param(m, i, "embedding"));
    float *c = malloc((size_t)n * sizeof *c);
    if (!c) {
        oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int64_t k = 0; k < n; k++) c[chw_of(k, x->h, x->w, x->c)] = p[k];
    int64_t dims[4] = {1, x->c, x->h, x->w};
    const char *emb = oxe_param(e, "embedding", c, n, 4, dims);
    free(c);
    return oxe_op2(e, "Add", x->name, emb, dst);
}

/* select_token `index`: Slice [index, index + 1) of the tokens' axis: [N, D, 1, 1]. */
static const char *oxe_select(oxe *e, int index, const oxe_val *x, const char *dst) {
    int64_t st[1] = {index}, en[1] = {index + 1}, ax[1] = {3};
    const char *in[4] = {oxe_tokens_row(e, x), oxe_ints(e, st, 1), oxe_ints(e, en, 1), oxe_ints(e, ax, 1)};
    Onnx__NodeProto *n = oxe_node(e, "Slice", 4, in, dst);
    return n ? dst : NULL;
}

/* A 1x1 Conv of x [N, I, 1, T] with graft's kernel k [I][O] and bias b [O]. */
static const char *oxe_conv1x1(oxe *e, const char *x, const char *kind, const float *k, const float *b, int I, int O,
                               const char *dst) {
    float *w = malloc((size_t)I * O * sizeof *w);
    if (!w) {
        oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int o = 0; o < O; o++)
        for (int c = 0; c < I; c++) w[(size_t)o * I + c] = k[(size_t)c * O + o];
    int64_t wd[4] = {O, I, 1, 1}, bd[1] = {O};
    char kn[48], bn[48];
    snprintf(kn, sizeof kn, "%s_kernel", kind);
    snprintf(bn, sizeof bn, "%s_bias", kind);
    const char *in[3] = {x, oxe_param(e, kn, w, (int64_t)I * O, 4, wd), oxe_param(e, bn, b, O, 1, bd)};
    free(w);
    const char *out = dst ? dst : oxe_tmp(e);
    Onnx__NodeProto *c = oxe_node(e, "Conv", 3, in, out);
    int64_t ks[2] = {1, 1};
    oxe_attr_ints(e, c, "kernel_shape", ks, 2);
    return c ? out : NULL;
}

static const char *oxe_transpose(oxe *e, const char *x, const int64_t perm[4]) {
    const char *t = oxe_op1(e, "Transpose", x, NULL);
    oxe_attr_ints(e, t ? e->nodes[e->n_nodes - 1] : NULL, "perm", perm, 4);
    return t;
}

/* self_attention on x [N, D, 1, T]: in_proj (1x1 Conv, D -> 3D), q, k, v
 * the channel thirds, each [N, H, E, T] (channel h*E + e: PyTorch's head
 * split); S = (q^T * scale) k [N, H, T, T]; softmax over the keys (the last
 * axis, also before opset 13); ctx = (S v^T)^T [N, H, E, T] -> [N, D, 1, T];
 * out_proj (1x1 Conv).  The form graft's import reads back (onnx_mha.c).  */
static const char *oxe_attention(oxe *e, int i, const oxe_val *x, const char *dst) {
    const gr_model *m = e->m;
    const gr_node *n = &m->nodes[i];
    int D = x->c, H = n->s.groups > 0 ? n->s.groups : 1, E = D / H;
    int64_t T = (int64_t)x->h * x->w;
    float scale = n->s.alpha > 0 ? n->s.alpha : (float)(1.0 / sqrt((double)E));
    const char *row = oxe_tokens_row(e, x);
    const char *qkv = oxe_conv1x1(e, row, "in", gr_param_cdata(m, gr_node_param(m, i, "in_kernel")),
                                  gr_param_cdata(m, gr_node_param(m, i, "in_bias")), D, 3 * D, NULL);
    static const int64_t swap[4] = {0, 1, 3, 2};
    int64_t heads[4] = {-1, H, E, T}, ax[1] = {1};
    const char *part[3];
    for (int j = 0; j < 3; j++) {
        int64_t st[1] = {(int64_t)j * D}, en[1] = {(int64_t)(j + 1) * D};
        const char *in[4] = {qkv, oxe_ints(e, st, 1), oxe_ints(e, en, 1), oxe_ints(e, ax, 1)};
        const char *sl = oxe_tmp(e);
        oxe_node(e, "Slice", 4, in, sl);
        part[j] = oxe_op2(e, "Reshape", sl, oxe_ints(e, heads, 4), NULL);
    }
    const char *q = oxe_op2(e, "Mul", oxe_transpose(e, part[0], swap), oxe_scalar(e, scale), NULL);
    const char *sc = oxe_op2(e, "MatMul", q, part[1], NULL);
    const char *p = oxe_op1(e, "Softmax", sc, NULL);
    if (p) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 3);
    const char *ctx = oxe_transpose(e, oxe_op2(e, "MatMul", p, oxe_transpose(e, part[2], swap), NULL), swap);
    int64_t back[4] = {-1, D, 1, T};
    const char *merged = oxe_op2(e, "Reshape", ctx, oxe_ints(e, back, 4), NULL);
    const char *o = oxe_conv1x1(e, merged, "out", gr_param_cdata(m, gr_node_param(m, i, "out_kernel")),
                                gr_param_cdata(m, gr_node_param(m, i, "out_bias")), D, D, x->h == 1 ? dst : NULL);
    if (x->h == 1 || !o) return o;
    int64_t shape[4] = {0, D, x->h, x->w};
    return oxe_op2(e, "Reshape", o, oxe_ints(e, shape, 4), dst);
}

/* Exports node i into vals[i + 1]; dst: its output name. */
static void oxe_layer(oxe *e, int i, const char *dst) {
    const gr_model *m = e->m;
    const gr_node *n = &m->nodes[i];
    e->layer = i;
    const oxe_val *x = &e->vals[n->in[0] + 1];
    oxe_val *y = &e->vals[i + 1];
    *y = (oxe_val){.name = NULL, .rank = x->rank, .h = n->oh, .w = n->ow, .c = n->oc};
    switch (n->s.op) {
    case GR_OP_CONV2D:
        y->rank = 4;
        y->name = oxe_conv(e, i, x, dst);
        break;
    case GR_OP_DENSE:
        y->rank = x->rank == 4 && feeds_scale(m, i, 0) ? 4 : 2;
        y->name = oxe_dense(e, i, x, y->rank, dst);
        break;
    case GR_OP_MAXPOOL:
    case GR_OP_AVGPOOL:
        y->rank = 4;
        y->name = oxe_pool(e, i, x, dst);
        break;
    case GR_OP_GLOBAL_AVGPOOL:   /* [N, C, 1, 1], flattened where a consumer needs [N, C] */
        y->rank = 4;
        y->name = oxe_op1(e, "GlobalAveragePool", oxe_as4(e, x), dst);
        break;
    case GR_OP_FLATTEN:
        if (x->rank == 2) {   /* already flat: nothing to do */
            *y = *x;
            y->name = x->name;
            break;
        }
        y->rank = 2;
        if ((y->name = oxe_op1(e, "Flatten", x->name, dst))) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 1);
        if (n->ih * n->iw > 1)   /* CHW order: the consumers absorb it */
            y->perm = true, y->ph = n->ih, y->pw = n->iw, y->pc = n->ic, y->src4d = x->name;
        break;
    case GR_OP_DROPOUT:
        *y = *x;   /* the identity in inference */
        break;
    case GR_OP_ACTIVATION:
        if (n->s.act == GR_ACT_SOFTMAX) {
            const char *v = x->rank == 2 ? oxe_unperm(e, x) : x->name;
            y->name = oxe_softmax(e, v, x->rank, dst);
        } else {   /* elementwise: a permuted value stays permuted */
            *y = *x;
            y->name = oxe_act(e, x->name, n->s.act, n->s.alpha, x->rank, dst);
            y->src4d = NULL;
        }
        break;
    case GR_OP_SOFTMAX:
        y->name = oxe_softmax(e, x->rank == 2 ? oxe_unperm(e, x) : x->name, x->rank, dst);
        break;
    case GR_OP_BATCHNORM:
    case GR_OP_STANDARDIZE: {
        int64_t F = n->s.op == GR_OP_BATCHNORM ? n->ic : (int64_t)n->ih * n->iw * n->ic;
        bool perm = x->rank == 2 && x->perm;
        float *buf = malloc((size_t)F * 4 * sizeof *buf);
        if (!buf) {
            oxe_fail(e, GR_ERR_NOMEM, "out of memory");
            break;
        }
        static const char *bn_kinds[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
        static const char *st_kinds[2] = {"mean", "std"};
        int np = n->s.op == GR_OP_BATCHNORM ? 4 : 2;
        const char *pn[4];
        for (int k = 0; k < np; k++) {
            const char *kind = np == 4 ? bn_kinds[k] : st_kinds[k];
            const float *p = gr_param_cdata(m, gr_node_param(m, i, kind));
            int64_t dims[3];
            int nd;
            if (np == 4) {   /* per channel: [C] for BatchNormalization (a permuted flat: per feature) */
                oxe_val v = *x;
                if (!perm) v.rank = 2, v.perm = false, v.h = v.w = 1, v.c = (int)F;
                nd = oxe_feature_layout(&v, p, buf + k * F, dims);
            } else {   /* a map's constants in its flattened CHW order */
                oxe_val v = *x;
                if (x->rank == 4) v.rank = 2, v.perm = true, v.ph = x->h, v.pw = x->w, v.pc = x->c;
                nd = oxe_feature_layout(&v, p, buf + k * F, dims);
            }
            pn[k] = oxe_param(e, kind, buf + k * F, F, nd, dims);
        }
        free(buf);
        *y = *x;   /* same shape, same layout */
        y->src4d = NULL;
        if (np == 4) {
            const char *in[5] = {x->name, pn[0], pn[1], pn[2], pn[3]};
            const char *out = dst;
            Onnx__NodeProto *b = oxe_node(e, "BatchNormalization", 5, in, out);
            oxe_attr_f(e, b, "epsilon", n->s.eps);
            y->name = b ? out : NULL;
        } else if (x->rank == 2) {
            y->name = oxe_op2(e, "Div", oxe_op2(e, "Sub", x->name, pn[0], NULL), pn[1], dst);
        } else {
            /* a map: on its flattened [N, C*H*W] values with [C*H*W] constants and back,
             * since OpenCV 4.6 folds a [C, H, W] constant after a conv into the conv as
             * if it were per channel (and refuses [1, C, H, W])                      */
            const char *f = oxe_op1(e, "Flatten", x->name, NULL);
            if (f) oxe_attr_i(e, e->nodes[e->n_nodes - 1], "axis", 1);
            const char *v = oxe_op2(e, "Div", oxe_op2(e, "Sub", f, pn[0], NULL), pn[1], NULL);
            int64_t shape[4] = {0, x->c, x->h, x->w};
            y->name = oxe_op2(e, "Reshape", v, oxe_ints(e, shape, 4), dst);
        }
        break;
    }
    case GR_OP_LAYERNORM: {
        int C = n->ic;
        const float *g = gr_param_cdata(m, gr_node_param(m, i, "gamma"));
        const float *b = gr_param_cdata(m, gr_node_param(m, i, "beta"));
        if (x->rank == 2) {
            int64_t dims[1] = {C};
            const char *gn = oxe_param(e, "gamma", g, C, 1, dims), *bn = oxe_param(e, "beta", b, C, 1, dims);
            y->name = oxe_layernorm(e, oxe_unperm(e, x), gn, bn, n->s.eps, dst);
            break;
        }
        /* a map (ConvNeXt's blocks, a ViT's tokens): normalized over its channels in
         * NHWC (as torchvision's ConvNeXt exports), gamma and beta applied back in
         * NCHW as [C, 1, 1] constants (OpenCV 4.6 broadcasts a constant over axis 1
         * only); gr_onnx_map_ln_decomposed reads the form back as one layer norm */
        static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
        int64_t cdims[3] = {C, 1, 1};
        const char *gc = oxe_param(e, "gamma", g, C, 3, cdims), *bc = oxe_param(e, "beta", b, C, 3, cdims);
        const char *t = oxe_op1(e, "Transpose", x->name, NULL);
        oxe_attr_ints(e, t ? e->nodes[e->n_nodes - 1] : NULL, "perm", to_nhwc, 4);
        const char *l = oxe_layernorm(e, t, NULL, NULL, n->s.eps, NULL);
        const char *back = oxe_op1(e, "Transpose", l, NULL);
        oxe_attr_ints(e, back ? e->nodes[e->n_nodes - 1] : NULL, "perm", to_nchw, 4);
        y->name = oxe_op2(e, "Add", oxe_op2(e, "Mul", back, gc, NULL), bc, dst);
        break;
    }
    case GR_OP_CLS_TOKEN:
    case GR_OP_POS_EMBED:
    case GR_OP_ATTENTION:
    case GR_OP_TOKEN: {
        if (x->rank != 4) {
            oxe_fail(e, GR_ERR_UNSUPPORTED, "its input is not a token map");
            break;
        }
        y->rank = 4;
        y->name = n->s.op == GR_OP_CLS_TOKEN ? oxe_cls_token(e, i, x, dst)
                  : n->s.op == GR_OP_POS_EMBED ? oxe_pos_embed(e, i, x, dst)
                  : n->s.op == GR_OP_ATTENTION ? oxe_attention(e, i, x, dst)
                                               : oxe_select(e, n->s.units, x, dst);
        break;
    }
    case GR_OP_ADD:
    case GR_OP_CONCAT:
    case GR_OP_MUL: {
        bool all4 = true;
        for (int k = 0; k < n->n_in; k++) all4 = all4 && e->vals[n->in[k] + 1].rank == 4;
        /* mul's second input [N, C] scales a map: it becomes [N, C, 1, 1] */
        if (n->s.op == GR_OP_MUL && e->vals[n->in[0] + 1].rank == 4) all4 = true;
        const char *in[GR_MAX_INPUTS];
        for (int k = 0; k < n->n_in; k++) {
            const oxe_val *v = &e->vals[n->in[k] + 1];
            in[k] = all4 ? oxe_as4(e, v) : oxe_as2(e, v);
        }
        y->rank = all4 ? 4 : 2;
        y->perm = false;
        bool act = n->s.op == GR_OP_ADD && n->s.act != GR_ACT_LINEAR;
        const char *out = act ? oxe_tmp(e) : dst;
        if (n->s.op == GR_OP_CONCAT) {
            Onnx__NodeProto *c = oxe_node(e, "Concat", n->n_in, in, out);
            oxe_attr_i(e, c, "axis", 1);
            y->name = c ? out : NULL;
        } else {
            const char *acc = in[0];
            for (int k = 1; k < n->n_in; k++)
                acc = oxe_op2(e, n->s.op == GR_OP_MUL ? "Mul" : "Add", acc, in[k], k == n->n_in - 1 ? out : NULL);
            y->name = n->n_in > 1 ? acc : oxe_op1(e, "Identity", acc, out);
        }
        if (act && y->name) y->name = oxe_act(e, y->name, n->s.act, n->s.alpha, y->rank, dst);
        break;
    }
    default:
        oxe_fail(e, GR_ERR_UNSUPPORTED, "no ONNX form for this op");
        return;
    }
    if (!y->name && !e->failed) oxe_fail(e, GR_ERR_NOMEM, "out of memory");
}

/* ------------------------------------------------------- the model */

/* The metadata_props: graft's version, the input layout and recipe (the
 * normalization as numbers: x = (pixel / scale - mean) / std per channel, in
 * the channel order given), class names as a JSON array.                  */
static int oxe_metadata(oxe *e, Onnx__StringStringEntryProto ***out) {
    const gr_model *m = e->m;
    gr_recipe r = gr_model_recipe(m);
    gr_norm n = gr_norm_resolved(&r.norm);
    char f[7][32];   /* the numbers as the shortest text that reads back to the same float */
    gr_float_short(n.scale, f[0]);
    for (int c = 0; c < 3; c++) gr_float_short(n.mean[c], f[1 + c]), gr_float_short(n.std[c], f[4 + c]);
    char crop[32];
    snprintf(crop, sizeof crop, "%g", (double)(r.crop > 0 ? r.crop : 1.0f));
    const char *kv[][2] = {
        {"producer", "graft " GRAFT_VERSION},
        {"graft.input_layout", "NCHW"},
        {"graft.input_size", oxe_strf(e, "%dx%d", m->in_h, m->in_w)},
        {"graft.input_channels", oxe_strf(e, "%d", m->in_c)},
        {"graft.channel_order", n.bgr ? "BGR" : "RGB"},
        {"graft.preprocess", gr_preprocess_name(gr_norm_preset_of(&n))},
        {"graft.pixel_scale", oxe_strf(e, "%s", f[0])},
        {"graft.mean", oxe_strf(e, "%s,%s,%s", f[1], f[2], f[3])},
        {"graft.std", oxe_strf(e, "%s,%s,%s", f[4], f[5], f[6])},
        {"graft.resize", gr_resize_mode_name(r.resize)},
        {"graft.interpolation", gr_interp_name(r.interp)},
        {"graft.crop_fraction", oxe_strf(e, "%s", crop)},
        {"graft.output", NULL},
        {"class_names", NULL},
    };
    int nkv = (int)(sizeof kv / sizeof kv[0]);
    const gr_node *last = &m->nodes[m->n_nodes - 1];
    bool probs = last->s.op == GR_OP_SOFTMAX || (last->s.op == GR_OP_ACTIVATION && last->s.act == GR_ACT_SOFTMAX) ||
                 (last->s.op == GR_OP_DENSE && last->s.act == GR_ACT_SOFTMAX);
    kv[nkv - 2][1] = probs ? "probabilities" : "scores";
    if (m->n_classes > 0 && m->class_names) {
        json_object *a = json_object_new_array();
        for (int c = 0; a && c < m->n_classes; c++) json_object_array_add(a, json_object_new_string(m->class_names[c]));
        const char *s = a ? json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                          : NULL;
        kv[nkv - 1][1] = s ? oxe_strf(e, "%s", s) : NULL;
        json_object_put(a);
        if (!s) return -1;
    } else {
        nkv--;
    }
    Onnx__StringStringEntryProto **v = oxe_alloc(e, (size_t)nkv * sizeof *v);
    if (!v) return -1;
    for (int k = 0; k < nkv; k++) {
        if (!kv[k][1] || !(v[k] = oxe_alloc(e, sizeof *v[k]))) return -1;
        *v[k] = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        v[k]->key = (char *)kv[k][0], v[k]->value = (char *)kv[k][1];
    }
    *out = v;
    return nkv;
}

static gr_status oxe_build(oxe *e, const gr_onnx_export_opts *o, const char *path, uint8_t **bytes, size_t *len) {
    const gr_model *m = e->m;
    e->vals = calloc((size_t)m->n_nodes + 1, sizeof *e->vals);
    if (!e->vals) return gr_error_set(e->err, GR_ERR_NOMEM, "%s: out of memory", path);
    e->vals[0] = (oxe_val){.name = "input", .rank = 4, .h = m->in_h, .w = m->in_w, .c = m->in_c};
    for (int i = 0; i < m->n_nodes && !e->failed; i++) {
        const char *nm = m->nodes[i].s.name;   /* a layer's output tensor: its name */
        oxe_layer(e, i, i == m->n_nodes - 1 ? "output"
                       : strcmp(nm, "input") && strcmp(nm, "output") ? nm : oxe_strf(e, "%s/y", nm));
    }
    if (e->failed) return e->err->code;
    /* the output: graft's order (a permuted flat value is put back), named "output" */
    e->layer = m->n_nodes - 1;
    oxe_val *last = &e->vals[m->n_nodes];
    bool flat4 = last->rank == 4 && last->h == 1 && last->w == 1;   /* [N, C, 1, 1] -> [N, C] */
    if ((last->perm || flat4) && !strcmp(last->name, "output")) {
        /* the last node wrote "output": it becomes an inner tensor */
        Onnx__NodeProto *p = e->nodes[e->n_nodes - 1];
        char *inner = oxe_strf(e, "output/inner");
        if (!inner || strcmp(p->output[0], "output")) return oxe_fail(e, GR_ERR_NOMEM, "out of memory");
        p->output[0] = inner;
        last->name = inner;
        if (last->src4d && !strcmp(last->src4d, "output")) last->src4d = inner;
    }
    if (last->perm) {
        last->name = oxe_op1(e, "Identity", oxe_unperm(e, last), "output");
        last->perm = false;
    } else if (flat4) {
        last->name = oxe_op1(e, "Flatten", last->name, "output");
        oxe_attr_i(e, last->name ? e->nodes[e->n_nodes - 1] : NULL, "axis", 1);
        last->rank = 2;
    } else if (last->name && strcmp(last->name, "output")) {
        last->name = oxe_op1(e, "Identity", last->name, "output");
    }
    const char *sym = o->batch > 0 ? NULL : "N";
    int64_t in_dims[4] = {o->batch, m->in_c, m->in_h, m->in_w};
    int64_t out_dims[4] = {o->batch, last->rank == 4 ? last->c : (int64_t)last->h * last->w * last->c, last->h, last->w};
    Onnx__ValueInfoProto *vin = oxe_value_info(e, "input", 4, in_dims, sym);
    Onnx__ValueInfoProto *vout = oxe_value_info(e, "output", last->rank, out_dims, sym);
    Onnx__OperatorSetIdProto *ops = oxe_alloc(e, sizeof *ops);
    Onnx__GraphProto *g = oxe_alloc(e, sizeof *g);
    Onnx__ValueInfoProto **gi = oxe_alloc(e, sizeof *gi), **go = oxe_alloc(e, sizeof *go);
    Onnx__StringStringEntryProto **md = NULL;
    int nmd = oxe_metadata(e, &md);
    if (e->failed || !vin || !vout || !ops || !g || !gi || !go || nmd < 0 || !last->name) {
        if (!e->failed) gr_error_set(e->err, GR_ERR_NOMEM, "%s: out of memory", path);
        return e->err->code ? e->err->code : GR_ERR_NOMEM;
    }
    *ops = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    ops->domain = "", ops->has_version = 1, ops->version = e->opset;
    gi[0] = vin, go[0] = vout;
    *g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    g->name = "graft";
    g->n_node = e->n_nodes, g->node = e->nodes;
    g->n_initializer = e->n_inits, g->initializer = e->inits;
    g->n_input = 1, g->input = gi;
    g->n_output = 1, g->output = go;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    /* the IR version of the ONNX release that introduced the opset */
    mp.has_ir_version = 1, mp.ir_version = e->opset <= 11 ? 6 : e->opset <= 14 ? 7 : 8;
    mp.n_opset_import = 1, mp.opset_import = &ops;
    mp.producer_name = "graft", mp.producer_version = GRAFT_VERSION;
    mp.graph = g;
    mp.n_metadata_props = (size_t)nmd, mp.metadata_props = md;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    if (n >= ((size_t)1 << 31))
        return gr_error_set(e->err, GR_ERR_UNSUPPORTED,
                            "%s: the model needs %zu bytes, more than the 2 GiB one ONNX (protobuf) file holds", path, n);
    if (!(*bytes = malloc(n ? n : 1))) return gr_error_set(e->err, GR_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n);
    *len = onnx__model_proto__pack(&mp, *bytes);
    return GR_OK;
}

gr_status gr_model_export_onnx(const gr_model *m, const char *path, const gr_onnx_export_opts *opts, gr_error *err) {
    gr_onnx_export_opts o = opts ? *opts : (gr_onnx_export_opts){0};
    if (!o.opset) o.opset = GR_ONNX_EXPORT_OPSET;
    if (!m || !path) return gr_error_set(err, GR_ERR_ARG, "gr_model_export_onnx: no model or no path");
    if (o.opset < GR_ONNX_OPSET_MIN || o.opset > GR_ONNX_OPSET_MAX)
        return gr_error_set(err, GR_ERR_ARG, "%s: ONNX opset %d is not supported (%d..%d)", path, o.opset,
                            GR_ONNX_OPSET_MIN, GR_ONNX_OPSET_MAX);
    if (o.batch < 0) return gr_error_set(err, GR_ERR_ARG, "%s: batch %d must be positive (0: dynamic)", path, o.batch);
    if (m->n_nodes < 1) return gr_error_set(err, GR_ERR_ARG, "%s: the model has no layers to export", path);
    oxe e = {.m = m, .opset = o.opset, .err = err};
    uint8_t *bytes = NULL;
    size_t len = 0;
    gr_status st = oxe_build(&e, &o, path, &bytes, &len);
    oxe_free(&e);
    if (st != GR_OK) return st;
    gr_outfile f;
    st = gr_outfile_open(&f, path, err);
    if (st == GR_OK) st = gr_outfile_write(&f, bytes, len, err);
    if (st == GR_OK) st = gr_outfile_commit(&f, err);
    else gr_outfile_abort(&f);
    free(bytes);
    return st;
}
