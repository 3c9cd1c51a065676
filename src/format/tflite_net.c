/* tflite_net.c — a TFLite model (io/tflite.c) as a graft model, in float.
 *
 * The graph is built first; its weights form a named-tensor table (node
 * name, kind, the file's tensor, stored shape and layout) that the binder
 * (bind.h) loads at the end, dequantized once, (q - zero_point) * scale
 * (per tensor or per channel), by the table's read callback; activations run in float32, so the quantization of activations
 * is dropped (QUANTIZE / DEQUANTIZE are identities).  Operator mapping:
 *   CONV_2D            conv2d, kernel OHWI -> HWIO, bias (int32: its own
 *                      scale, or input_scale * weight_scale when absent),
 *                      fused NONE / RELU / RELU6; groups = C / kernel's I
 *   DEPTHWISE_CONV_2D  conv2d with groups = C, kernel [1,kh,kw,C*mult] ->
 *                      [kh,kw,1,C*mult] (the same bytes)
 *   ADD                add of two activations (+ fused activation)
 *   AVERAGE_POOL_2D    global average pool when VALID and the window is the
 *                      file's whole input (so other input sizes work), else
 *                      an average pool; MAX_POOL_2D a max pool ('SAME' =
 *                      GR_PAD_SAME; TFLite's average ignores padded cells too)
 *   MEAN (over H, W)   global average pool
 *   RESHAPE / SQUEEZE  to a vector: nothing on a 1x1 map, else flatten
 *                      (TFLite's row-major NHWC = graft's channels_last)
 *   FULLY_CONNECTED    flatten (if spatial) + dense, kernel [O,I] -> [I,O]
 *   SOFTMAX (beta 1), RELU, RELU6, LOGISTIC, CONCATENATION (channels)
 * Anything else is GR_ERR_UNSUPPORTED naming the operator.
 *
 * Layer names: the op's output tensor name up to its first ';' (the
 * converter joins fused names with ';'), e.g. "MobilenetV2/Conv/Relu6";
 * names of 64 bytes or more keep their last 63 bytes; a repeated name gets
 * "_2", "_3", ...; an empty one is "op<k>".
 *
 * Input: these models take uint8 pixels with scale 1/128, zero point 128,
 * i.e. x = (q - 128) / 128.  The model gets GR_PREP_TF (x / 127.5 - 1):
 * the two differ by at most 1/128 per value (0 at q = 0, -0.0078 at 255). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph/model.h"
#include "format/bind.h"
#include "format/tflite.h"

/* Where a weight of the table comes from (by gr_wtensor.idx). */
typedef struct {
    int t;                   /* the file's tensor */
    int in_t, w_t;           /* an int32 bias without a scale: input and weights tensors, else -1 */
} tfl_src;

typedef struct {
    const gr_tfl_model *f;
    tfl_src *src;
    int n, cap;
} tfl_impl;

typedef struct {
    gr_tfl_model *f;
    gr_model *m;
    int *node_of;            /* tensor -> graft node (-1 input, -2 none) */
    bool native;             /* built at the file's input size: check shapes */
    gr_error *err;
    int op;                  /* the op being built */
    gr_wfile *wf;            /* the weights, as a named-tensor table bound at the end */
    tfl_impl *im;
} tb;

/* Error about op b->op: "PATH: operator K (NAME, output 'T'): ..." */
static gr_status op_error(tb *b, gr_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static gr_status op_error(tb *b, gr_status code, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const gr_tfl_op *op = &b->f->ops[b->op];
    const char *out = op->n_out ? b->f->tensors[op->outputs[0]].name : "";
    char nb[40];
    return gr_error_set(b->err, code, "%s: operator %d (%s%s%s, output '%.200s'): %s", b->f->path, b->op,
                        gr_tfl_op_name(op->code, nb, sizeof nb), op->custom ? " " : "",
                        op->custom ? op->custom : "", out, what);
}

static gr_status map_act(tb *b, int a, gr_act *out) {
    switch (a) {
    case GR_TFL_ACT_NONE: *out = GR_ACT_LINEAR; return GR_OK;
    case GR_TFL_ACT_RELU: *out = GR_ACT_RELU; return GR_OK;
    case GR_TFL_ACT_RELU6: *out = GR_ACT_RELU6; return GR_OK;
    case GR_TFL_ACT_TANH: *out = GR_ACT_TANH; return GR_OK;
    default: return op_error(b, GR_ERR_UNSUPPORTED, "fused activation %d is not supported (NONE, RELU, RELU6, TANH)", a);
    }
}

/* The layer name for op k's output (see the top of the file). */
static void layer_name(tb *b, int k, char name[64]) {
    const gr_tfl_op *op = &b->f->ops[k];
    const char *s = op->n_out ? b->f->tensors[op->outputs[0]].name : "";
    size_t n = strcspn(s, ";");
    if (n == 0) snprintf(name, 64, "op%d", k);
    else if (n < 64) snprintf(name, 64, "%.*s", (int)n, s);
    else snprintf(name, 64, "%.*s", 63, s + n - 63);
    char base[64];
    memcpy(base, name, 64);
    for (int r = 2; gr_model_find(b->m, name) >= 0; r++) {
        char suf[16];
        int ls = snprintf(suf, sizeof suf, "_%d", r);
        snprintf(name, 64, "%.*s%s", 63 - ls, base, suf);
    }
}

/* The node holding activation tensor t, or < -1 with an error. */
static int act_input(tb *b, int t) {
    if (t < 0 || b->node_of[t] == -2) {
        op_error(b, GR_ERR_UNSUPPORTED, "input tensor %d ('%.200s') is neither the model input nor an earlier "
                 "operator's output (constant operands are not supported here)", t, t >= 0 ? b->f->tensors[t].name : "");
        return -2;
    }
    return b->node_of[t];
}

/* Appends s reading node `in`, named after op b->op (suffix for helper nodes). */
static int append(tb *b, gr_layer_spec s, int in, const char *suffix) {
    char name[64];
    layer_name(b, b->op, name);
    if (suffix) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s/%s", (int)(62 - strlen(suffix)), name, suffix);
        memcpy(name, tmp, 64);
    }
    snprintf(s.name, sizeof s.name, "%s", name);
    if (s.n_inputs == 0) { s.n_inputs = 1; s.inputs[0] = in; }
    int id = gr_model_append(b->m, s, b->err);
    if (id < 0) {
        char msg[sizeof b->err->msg];
        snprintf(msg, sizeof msg, "%s", b->err->msg);   /* b->err is never NULL (gr_tflite_load_sized) */
        op_error(b, b->err->code, "%s", msg);
    }
    return id;
}

/* Reads a weight: dequantized (gr_tfl_tensor_floats), or an int32 bias
 * without a scale as q * input_scale * weight_scale (per channel).       */
static gr_status tfl_read(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err) {
    const tfl_impl *im = wf->impl;
    const tfl_src *s = &im->src[t->idx];
    if (s->in_t < 0) return gr_tfl_tensor_floats(im->f, s->t, out, count, err);
    const gr_tfl_tensor *ti = &im->f->tensors[s->in_t], *tw = &im->f->tensors[s->w_t];
    const gr_tfl_buffer *buf = &im->f->buffers[im->f->tensors[s->t].buffer];
    for (int64_t o = 0; o < count; o++) {
        int32_t q;
        memcpy(&q, buf->data + 4 * o, 4);
        out[o] = (float)((double)q * ti->scale[0] * tw->scale[tw->n_scale == count ? o : 0]);
    }
    return GR_OK;
}

static void tfl_close(gr_wfile *wf) {
    tfl_impl *im = wf->impl;
    if (im) free(im->src);
    free(im);
    wf->impl = NULL;
}

/* Adds file tensor t as param `kind` of node id to the table: stored shape
 * fs[nd], graft shape the param's; in_t/w_t for an unscaled int32 bias.   */
static gr_status add_weight(tb *b, int id, const char *kind, int t, const int64_t *fs, int nd,
                            gr_wt_layout layout, int in_t, int w_t) {
    tfl_impl *im = b->im;
    const gr_param *q = &b->m->params[gr_node_param(b->m, id, kind)];
    if (im->n == im->cap) {
        int cap = im->cap ? 2 * im->cap : 64;
        tfl_src *p = gr_realloc(im->src, (size_t)cap * sizeof *p, b->err);
        if (!p) return GR_ERR_NOMEM;
        im->src = p;
        im->cap = cap;
    }
    const char *name = b->m->nodes[id].s.name;
    gr_wlayer *l = gr_wfile_find_layer(b->wf, name);
    if (!l && !(l = gr_wfile_add_layer(b->wf, name, b->err))) return GR_ERR_NOMEM;
    gr_wtensor *w = gr_wlayer_add_tensor(l, b->f->tensors[t].name, b->err);
    if (!w) return GR_ERR_NOMEM;
    im->src[im->n] = (tfl_src){t, in_t, w_t};
    w->idx = im->n++;
    snprintf(w->kind, sizeof w->kind, "%s", kind);
    snprintf(w->dtype, sizeof w->dtype, "%s", b->f->tensors[t].type == GR_TFL_FLOAT32 ? "F32" : "Q");
    w->ndim = q->ndim;
    for (int d = 0; d < q->ndim; d++) w->shape[d] = q->shape[d];
    for (int d = 0; d < nd; d++) w->fshape[d] = fs[d];
    w->layout = layout;
    const gr_tfl_buffer *buf = &b->f->buffers[b->f->tensors[t].buffer];
    w->offset = buf->data ? (int64_t)(buf->data - b->f->bytes) : -1;
    return GR_OK;
}

/* The kernel of node id: file tensor t, which must exist and hold values. */
static gr_status add_kernel(tb *b, int id, int t, const int64_t *fs, int nd, gr_wt_layout layout) {
    if (t < 0 || t >= b->f->n_tensors) return op_error(b, GR_ERR_FORMAT, "a weight operand is missing");
    if (gr_tfl_tensor_count(&b->f->tensors[t]) <= 0)
        return op_error(b, GR_ERR_FORMAT, "weight tensor '%s' is empty", b->f->tensors[t].name);
    return add_weight(b, id, "kernel", t, fs, nd, layout, -1, -1);
}

/* Bias of a conv / dense: int32 without a scale uses input_scale * weight_scale. */
static gr_status add_bias(tb *b, int id, int bt, int in_t, int w_t, int OC) {
    gr_tfl_tensor *t = &b->f->tensors[bt];
    int64_t fs[1] = {OC};
    if (gr_tfl_tensor_count(t) != OC)
        return op_error(b, GR_ERR_FORMAT, "bias '%s' has %lld values for %d outputs", t->name,
                        (long long)gr_tfl_tensor_count(t), OC);
    if (t->type == GR_TFL_INT32 && t->n_scale == 0) {
        const gr_tfl_tensor *ti = &b->f->tensors[in_t], *tw = &b->f->tensors[w_t];
        const gr_tfl_buffer *buf = &b->f->buffers[t->buffer];
        if (ti->n_scale < 1 || tw->n_scale < 1 || buf->size != (size_t)OC * 4)
            return op_error(b, GR_ERR_FORMAT, "int32 bias '%s' has no scale and neither can be derived", t->name);
        return add_weight(b, id, "bias", bt, fs, 1, GR_WT_ASIS, in_t, w_t);
    }
    return add_weight(b, id, "bias", bt, fs, 1, GR_WT_ASIS, -1, -1);
}

static int build_conv(tb *b, const gr_tfl_op *op, bool depthwise) {
    const gr_tfl_options *o = &op->opt;
    if (op->n_in < 2) { op_error(b, GR_ERR_FORMAT, "needs an input and weights"); return -2; }
    int in = act_input(b, op->inputs[0]);
    if (in < -1) return -2;
    if (o->dilation_w != 1 || o->dilation_h != 1) {
        op_error(b, GR_ERR_UNSUPPORTED, "dilation %dx%d is not supported", o->dilation_h, o->dilation_w);
        return -2;
    }
    if (o->stride_w < 1 || o->stride_h < 1 || o->stride_w != o->stride_h) {
        op_error(b, GR_ERR_UNSUPPORTED, "stride %dx%d is not supported (equal positive strides only)",
                 o->stride_h, o->stride_w);
        return -2;
    }
    if (o->padding != GR_TFL_PAD_SAME && o->padding != GR_TFL_PAD_VALID) {
        op_error(b, GR_ERR_FORMAT, "padding %d is neither SAME nor VALID", o->padding);
        return -2;
    }
    gr_act act = GR_ACT_LINEAR;
    if (map_act(b, o->act, &act)) return -2;
    const gr_tfl_tensor *wt = &b->f->tensors[op->inputs[1]];
    int H, W, C;
    gr_model_layer_shape(b->m, in, &H, &W, &C);
    if (wt->ndim != 4) { op_error(b, GR_ERR_FORMAT, "weights '%s' are not 4-D", wt->name); return -2; }
    int OC = wt->shape[depthwise ? 3 : 0], KH = wt->shape[1], KW = wt->shape[2], I = wt->shape[depthwise ? 0 : 3];
    int groups = 1;
    if (depthwise) {
        if (I != 1 || OC != (int64_t)C * o->depth_multiplier) {   /* the multiplier is the file's: no int overflow */
            op_error(b, GR_ERR_SHAPE, "depthwise weights [%d,%d,%d,%d] do not fit %d channels x multiplier %d",
                     I, KH, KW, OC, C, o->depth_multiplier);
            return -2;
        }
        groups = C;
    } else {
        if (I <= 0 || C % I || OC % (C / I)) {
            op_error(b, GR_ERR_SHAPE, "weights [%d,%d,%d,%d] do not fit %d input channels", OC, KH, KW, I, C);
            return -2;
        }
        groups = C / I;
    }
    gr_layer_spec s = gr_conv2d(OC, KH, KW, o->stride_h, o->padding == GR_TFL_PAD_SAME ? GR_PAD_SAME : GR_PAD_VALID, act);
    s.groups = groups;
    s.use_bias = op->n_in > 2 && op->inputs[2] >= 0;
    int id = append(b, s, in, NULL);
    if (id < 0) return -2;
    /* graft's kernel is [KH][KW][I][OC]: depthwise [1][KH][KW][OC] is the
     * same bytes, a conv's [OC][KH][KW][I] is transposed by the binder     */
    int64_t fs[4] = {depthwise ? I : OC, KH, KW, depthwise ? OC : I};
    if (add_kernel(b, id, op->inputs[1], fs, 4, depthwise ? GR_WT_ASIS : GR_WT_OHWI)) return -2;
    if (s.use_bias && add_bias(b, id, op->inputs[2], op->inputs[0], op->inputs[1], OC)) return -2;
    return id;
}

/* A standalone activation node after `in` (suffix "act" when fused). */
static int act_node(tb *b, int in, gr_act a, const char *suffix) {
    if (a == GR_ACT_LINEAR) return in;
    return append(b, gr_activation(a, 0), in, suffix);
}

static int build_pool(tb *b, const gr_tfl_op *op, bool avg) {
    const gr_tfl_options *o = &op->opt;
    int in = act_input(b, op->inputs[0]);
    if (in < -1) return -2;
    gr_act act = GR_ACT_LINEAR;
    if (map_act(b, o->act, &act)) return -2;
    const gr_tfl_tensor *ti = &b->f->tensors[op->inputs[0]];
    int id;
    if (avg && o->padding == GR_TFL_PAD_VALID && ti->ndim == 4 && o->filter_h == ti->shape[1] &&
        o->filter_w == ti->shape[2]) {
        id = append(b, gr_global_avgpool(), in, NULL);
    } else {
        if (o->filter_h < 1 || o->filter_w < 1 || o->stride_h < 1 || o->stride_w < 1) {
            op_error(b, GR_ERR_FORMAT, "pool window %dx%d, stride %dx%d", o->filter_h, o->filter_w,
                     o->stride_h, o->stride_w);
            return -2;
        }
        gr_layer_spec s = avg ? gr_avgpool(o->filter_h, o->stride_h) : gr_maxpool(o->filter_h, o->stride_h);
        s.kw = o->filter_w;
        s.sw = o->stride_w;
        s.padding = o->padding == GR_TFL_PAD_SAME ? GR_PAD_SAME : GR_PAD_VALID;
        id = append(b, s, in, NULL);
    }
    return id < 0 ? -2 : act_node(b, id, act, "act");
}

/* Flattens `in` when spatial; a 1x1 map is already a vector (no node). */
static int as_vector(tb *b, int in, const char *suffix) {
    int h, w, c;
    gr_model_layer_shape(b->m, in, &h, &w, &c);
    if (h == 1 && w == 1) return in;
    int id = append(b, gr_flatten(), in, suffix);
    return id < 0 ? -2 : id;
}

static int build_dense(tb *b, const gr_tfl_op *op) {
    if (op->n_in < 2) { op_error(b, GR_ERR_FORMAT, "needs an input and weights"); return -2; }
    if (op->opt.weights_format != 0) {
        op_error(b, GR_ERR_UNSUPPORTED, "weights format %d is not supported (DEFAULT only)", op->opt.weights_format);
        return -2;
    }
    gr_act act = GR_ACT_LINEAR;
    if (map_act(b, op->opt.act, &act)) return -2;
    int in = act_input(b, op->inputs[0]);
    if (in < -1) return -2;
    in = as_vector(b, in, "flatten");
    if (in < -1) return -2;
    int h, w, I;
    gr_model_layer_shape(b->m, in, &h, &w, &I);
    const gr_tfl_tensor *wt = &b->f->tensors[op->inputs[1]];
    if (wt->ndim != 2 || wt->shape[1] != I) {
        op_error(b, GR_ERR_SHAPE, "weights '%s' are not [units, %d]", wt->name, I);
        return -2;
    }
    int O = wt->shape[0];
    gr_layer_spec s = gr_dense(O, act);
    s.use_bias = op->n_in > 2 && op->inputs[2] >= 0;
    int id = append(b, s, in, NULL);
    if (id < 0) return -2;
    int64_t fs[2] = {O, I};   /* [O][I] -> graft's [I][O] */
    if (add_kernel(b, id, op->inputs[1], fs, 2, GR_WT_OUT_IN)) return -2;
    if (s.use_bias && add_bias(b, id, op->inputs[2], op->inputs[0], op->inputs[1], O)) return -2;
    return id;
}

/* MEAN over axes {1, 2} (either order, negative allowed) = global average. */
static int build_mean(tb *b, const gr_tfl_op *op) {
    int in = act_input(b, op->inputs[0]);
    if (in < -1) return -2;
    bool ok = op->n_in == 2 && op->inputs[1] >= 0;
    if (ok) {
        const gr_tfl_tensor *ax = &b->f->tensors[op->inputs[1]];
        const gr_tfl_buffer *buf = &b->f->buffers[ax->buffer];
        ok = ax->type == GR_TFL_INT32 && buf->size == 8;
        if (ok) {
            int32_t a[2];
            memcpy(a, buf->data, 8);
            for (int k = 0; k < 2; k++) if (a[k] < 0) a[k] += 4;
            ok = (a[0] == 1 && a[1] == 2) || (a[0] == 2 && a[1] == 1);
        }
    }
    if (!ok) { op_error(b, GR_ERR_UNSUPPORTED, "only a mean over height and width (axes 1, 2) is supported"); return -2; }
    int id = append(b, gr_global_avgpool(), in, NULL);
    return id < 0 ? -2 : id;
}

/* RESHAPE / SQUEEZE: to a [1, N] / [N] vector, or a no-op on the same shape. */
static int build_reshape(tb *b, const gr_tfl_op *op) {
    int in = act_input(b, op->inputs[0]);
    if (in < -1) return -2;
    const gr_tfl_tensor *to = &b->f->tensors[op->outputs[0]], *ti = &b->f->tensors[op->inputs[0]];
    int64_t last = to->ndim ? to->shape[to->ndim - 1] : 1, lead = 1;
    for (int k = 0; k + 1 < to->ndim; k++) lead *= to->shape[k];
    bool same = to->ndim == ti->ndim && !memcmp(to->shape, ti->shape, sizeof(int32_t) * (size_t)to->ndim);
    if (same) return in;
    if (lead != 1 || last != gr_tfl_tensor_count(ti)) {
        op_error(b, GR_ERR_UNSUPPORTED, "only reshapes to a flat vector are supported (to rank %d, last dimension %lld)",
                 to->ndim, (long long)last);
        return -2;
    }
    return as_vector(b, in, NULL);
}

static int build_op(tb *b, const gr_tfl_op *op) {
    gr_layer_spec s;
    int in;
    switch (op->code) {
    case GR_TFL_CONV_2D: return build_conv(b, op, false);
    case GR_TFL_DEPTHWISE_CONV_2D: return build_conv(b, op, true);
    case GR_TFL_AVERAGE_POOL_2D: return build_pool(b, op, true);
    case GR_TFL_MAX_POOL_2D: return build_pool(b, op, false);
    case GR_TFL_FULLY_CONNECTED: return build_dense(b, op);
    case GR_TFL_MEAN: return build_mean(b, op);
    case GR_TFL_RESHAPE:
    case GR_TFL_SQUEEZE: return build_reshape(b, op);
    case GR_TFL_QUANTIZE:
    case GR_TFL_DEQUANTIZE: return act_input(b, op->inputs[0]);   /* identity in float */
    case GR_TFL_ADD:
    case GR_TFL_CONCATENATION: {
        memset(&s, 0, sizeof s);
        s.op = op->code == GR_TFL_ADD ? GR_OP_ADD : GR_OP_CONCAT;
        if (op->n_in < 2 || op->n_in > GR_MAX_INPUTS) {
            op_error(b, GR_ERR_UNSUPPORTED, "%d operands (2..%d supported)", op->n_in, GR_MAX_INPUTS);
            return -2;
        }
        if (op->code == GR_TFL_CONCATENATION) {
            int axis = 0;   /* ConcatenationOptions are not read: check the output shape instead */
            const gr_tfl_tensor *to = &b->f->tensors[op->outputs[0]], *t0 = &b->f->tensors[op->inputs[0]];
            axis = to->ndim == 4 && t0->ndim == 4 && to->shape[1] == t0->shape[1] && to->shape[2] == t0->shape[2];
            if (!axis) { op_error(b, GR_ERR_UNSUPPORTED, "only channel concatenation of 4-D tensors is supported"); return -2; }
        }
        for (int k = 0; k < op->n_in; k++) {
            if ((s.inputs[k] = act_input(b, op->inputs[k])) < -1) return -2;
        }
        s.n_inputs = op->n_in;
        gr_act act = GR_ACT_LINEAR;
        if (op->code == GR_TFL_ADD && map_act(b, op->opt.act, &act)) return -2;
        s.act = act;
        int id = append(b, s, 0, NULL);
        return id < 0 ? -2 : id;
    }
    case GR_TFL_SOFTMAX: {
        if (op->opt.beta != 1.0f) {
            op_error(b, GR_ERR_UNSUPPORTED, "softmax beta %g is not supported (1 only)", op->opt.beta);
            return -2;
        }
        if ((in = act_input(b, op->inputs[0])) < -1) return -2;
        int id = append(b, gr_softmax(), in, NULL);
        return id < 0 ? -2 : id;
    }
    case GR_TFL_RELU:
    case GR_TFL_RELU6:
    case GR_TFL_LOGISTIC: {
        if ((in = act_input(b, op->inputs[0])) < -1) return -2;
        gr_act a = op->code == GR_TFL_RELU ? GR_ACT_RELU : op->code == GR_TFL_RELU6 ? GR_ACT_RELU6 : GR_ACT_SIGMOID;
        int id = append(b, gr_activation(a, 0), in, NULL);
        return id < 0 ? -2 : id;
    }
    default:
        op_error(b, GR_ERR_UNSUPPORTED, "this operator is not supported by graft (supported: CONV_2D, "
                 "DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, RESHAPE, SQUEEZE, "
                 "FULLY_CONNECTED, SOFTMAX, RELU, RELU6, LOGISTIC, CONCATENATION, QUANTIZE, DEQUANTIZE)");
        return -2;
    }
}

/* At the file's input size, node `id` must have op's output tensor shape. */
static gr_status check_shape(tb *b, const gr_tfl_op *op, int id) {
    if (!b->native || op->n_out < 1) return GR_OK;
    const gr_tfl_tensor *t = &b->f->tensors[op->outputs[0]];
    int h, w, c;
    gr_model_layer_shape(b->m, id, &h, &w, &c);
    int64_t want = gr_tfl_tensor_count(t) / (t->ndim && t->shape[0] ? t->shape[0] : 1);
    if ((int64_t)h * w * c != want || (t->ndim == 4 && (t->shape[1] != h || t->shape[2] != w || t->shape[3] != c)))
        return op_error(b, GR_ERR_SHAPE, "graft computes %dx%dx%d, the file says %lld values", h, w, c, (long long)want);
    return GR_OK;
}

gr_model *gr_tflite_load_sized(const char *path, int h, int w, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!path) { gr_error_set(err, GR_ERR_ARG, "tflite: no path given"); return NULL; }
    if (h < 0 || w < 0 || (h > 0) != (w > 0)) {
        gr_error_set(err, GR_ERR_ARG, "%s: input size %dx%d: give both or neither", path, h, w);
        return NULL;
    }
    tb b;
    memset(&b, 0, sizeof b);
    b.err = err;
    if (!(b.f = gr_tfl_open(path, err))) return NULL;
    gr_tfl_model *f = b.f;
    if (!(b.wf = gr_wfile_new(path, err)) || !(b.im = gr_calloc(1, sizeof *b.im, err))) goto fail;
    b.im->f = f;
    b.wf->impl = b.im;
    b.wf->read = tfl_read;
    b.wf->close_impl = tfl_close;
    snprintf(b.wf->format, sizeof b.wf->format, "TFLite flatbuffer version %u", f->version);
    if (f->n_inputs != 1 || f->n_outputs != 1) {
        gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: %d inputs and %d outputs (graft needs one of each)", path,
                     f->n_inputs, f->n_outputs);
        goto fail;
    }
    const gr_tfl_tensor *ti = &f->tensors[f->inputs[0]];
    if (ti->ndim != 4 || ti->shape[0] > 1 || ti->shape[1] < 1 || ti->shape[2] < 1 || ti->shape[3] < 1) {
        char sh[128] = "";
        for (int k = 0, o = 0; k < ti->ndim && o < 100; k++) o += snprintf(sh + o, sizeof sh - (size_t)o, "%s%d", k ? "," : "", (int)ti->shape[k]);
        gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: input '%s' has shape [%s] (graft needs an image [1,H,W,C])",
                     path, ti->name, sh);
        goto fail;
    }
    if (!h) { h = ti->shape[1]; w = ti->shape[2]; }
    b.native = h == ti->shape[1] && w == ti->shape[2];
    if (!(b.m = gr_model_new(h, w, ti->shape[3], err))) {
        gr_error_prefix(err, "%s", path);   /* e.g. an absurd input size */
        goto fail;
    }
    if (!(b.node_of = gr_malloc((size_t)f->n_tensors * sizeof(int), err))) goto fail;
    for (int k = 0; k < f->n_tensors; k++) b.node_of[k] = -2;
    b.node_of[f->inputs[0]] = -1;
    for (int k = 0; k < f->n_ops; k++) {
        const gr_tfl_op *op = &f->ops[k];
        b.op = k;
        if (op->n_out != 1 || op->n_in < 1) {
            op_error(&b, GR_ERR_UNSUPPORTED, "%d inputs and %d outputs (graft maps operators with inputs and one output)",
                     op->n_in, op->n_out);
            goto fail;
        }
        /* -1 marks an absent optional operand (a bias); the data input and the
         * weights are never optional: checked before any of them is indexed */
        if (op->inputs[0] < 0 || (op->n_in > 1 && op->inputs[1] < 0)) {
            op_error(&b, GR_ERR_FORMAT, "operand %d is absent", op->inputs[0] < 0 ? 0 : 1);
            goto fail;
        }
        int id = build_op(&b, op);
        if (id < -1 || (id >= 0 && check_shape(&b, op, id))) goto fail;
        b.node_of[op->outputs[0]] = id;
    }
    int last = b.node_of[f->outputs[0]];
    if (gr_model_num_layers(b.m) == 0 || last != gr_model_num_layers(b.m) - 1) {
        gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: the model output '%s' is not the last operator's (%d)", path,
                     f->tensors[f->outputs[0]].name, last);
        goto fail;
    }
    gr_bind_opts bo = {.partial = false, .by_order = false};   /* the weights, once the graph is whole */
    if (gr_bind(b.m, b.wf, &bo, NULL, err)) goto fail;
    gr_model_set_preprocess(b.m, GR_PREP_TF);
    free(b.node_of);
    gr_wfile_close(b.wf);
    gr_tfl_close(f);
    return b.m;
fail:
    if (err->code == GR_OK) gr_error_set(err, GR_ERR_FORMAT, "%s: cannot build the TFLite model", path);
    free(b.node_of);
    gr_wfile_close(b.wf);
    gr_model_free(b.m);
    gr_tfl_close(f);
    return NULL;
}

gr_model *gr_tflite_load(const char *path, gr_error *err) { return gr_tflite_load_sized(path, 0, 0, err); }
