/* tflite.c — reading TFLite flatbuffers (see tflite.h).
 *
 * Flatbuffer layout in brief: the file starts with a uint32 offset to the
 * root table (bytes 4..8 may hold the identifier "TFL3").  A table at t
 * starts with an int32 soffset: its vtable is at t - soffset; the vtable is
 * uint16 [vtable bytes, table bytes, field offset 0, 1, ...] (offset 0 =
 * field absent, value = default).  Tables, vectors and strings are referred
 * to by a uint32 offset relative to where the offset is stored; a vector is
 * a uint32 length followed by its elements (tables: uint32 offsets, each
 * relative to its own slot).  Every access below goes through fb_* helpers
 * that check the position against the file size: the first failure is kept
 * in the reader (c->bad) with what was being read, and reported once.     */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph/model.h"
#include "format/tflite.h"

typedef struct {
    const uint8_t *b;
    size_t n;
    int bad;
    char what[160];          /* what failed first */
} fb;

/* True when [p, p + k) lies in the buffer; else marks the reader bad. */
static int fb_ok(fb *c, uint64_t p, uint64_t k, const char *what) {
    if (c->bad) return 0;
    if (p > c->n || k > c->n - p) {
        c->bad = 1;
        snprintf(c->what, sizeof c->what, "%s at byte %llu (+%llu) is past the end (%zu bytes)",
                 what, (unsigned long long)p, (unsigned long long)k, c->n);
        return 0;
    }
    return 1;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Position of field i of table t, or 0 when absent (or on error). */
static uint64_t fb_field(fb *c, uint64_t t, int i, const char *what) {
    if (!fb_ok(c, t, 4, what)) return 0;
    int64_t vt = (int64_t)t - (int32_t)rd32(c->b + t);
    if (vt < 0 || !fb_ok(c, (uint64_t)vt, 4, what)) {
        if (!c->bad) { c->bad = 1; snprintf(c->what, sizeof c->what, "%s: vtable offset out of range", what); }
        return 0;
    }
    uint16_t vsz = rd16(c->b + vt), tsz = rd16(c->b + vt + 2);
    if (vsz < 4 || !fb_ok(c, (uint64_t)vt, vsz, what) || !fb_ok(c, t, tsz, what)) return 0;
    if (4 + 2 * (uint64_t)i + 2 > vsz) return 0;
    uint16_t off = rd16(c->b + vt + 4 + 2 * i);
    if (!off) return 0;
    if (off >= tsz) {
        c->bad = 1;
        snprintf(c->what, sizeof c->what, "%s: field %d lies outside its table", what, i);
        return 0;
    }
    return t + off;
}

static int64_t fb_int(fb *c, uint64_t t, int i, int bytes, int sign, int64_t def, const char *what) {
    uint64_t p = fb_field(c, t, i, what);
    if (!p || !fb_ok(c, p, (uint64_t)bytes, what)) return def;
    const uint8_t *q = c->b + p;
    switch (bytes) {
    case 1: return sign ? (int64_t)(int8_t)q[0] : (int64_t)q[0];
    case 2: return sign ? (int64_t)(int16_t)rd16(q) : (int64_t)rd16(q);
    default: return sign ? (int64_t)(int32_t)rd32(q) : (int64_t)rd32(q);
    }
}

static float fb_float(fb *c, uint64_t t, int i, float def, const char *what) {
    uint64_t p = fb_field(c, t, i, what);
    if (!p || !fb_ok(c, p, 4, what)) return def;
    float f;
    memcpy(&f, c->b + p, 4);
    return f;
}

/* Target of the uint32 offset stored at p (0 on error). */
static uint64_t fb_deref(fb *c, uint64_t p, const char *what) {
    if (!fb_ok(c, p, 4, what)) return 0;
    uint64_t t = p + rd32(c->b + p);
    return fb_ok(c, t, 4, what) ? t : 0;
}

/* Table / vector / string referenced by field i (0 when absent). */
static uint64_t fb_ref(fb *c, uint64_t t, int i, const char *what) {
    uint64_t p = fb_field(c, t, i, what);
    return p ? fb_deref(c, p, what) : 0;
}

/* Vector in field i: *n elements of elem bytes each; returns the position of
 * the first element (0 when absent or on error). */
static uint64_t fb_vec(fb *c, uint64_t t, int i, size_t elem, uint32_t *n, const char *what) {
    *n = 0;
    uint64_t v = fb_ref(c, t, i, what);
    if (!v) return 0;
    uint32_t len = rd32(c->b + v);
    if (!fb_ok(c, v + 4, (uint64_t)len * elem, what)) return 0;
    *n = len;
    return v + 4;
}

/* Table k of a vector of tables starting at p. */
static uint64_t fb_vec_table(fb *c, uint64_t p, uint32_t k, const char *what) {
    return fb_deref(c, p + 4 * (uint64_t)k, what);
}

/* A copy of the string in field i ("" when absent), or NULL on error. */
static char *fb_string(fb *c, uint64_t t, int i, const char *what, gr_error *err) {
    uint32_t n;
    uint64_t p = fb_vec(c, t, i, 1, &n, what);
    if (c->bad) return NULL;
    char *s = gr_malloc((size_t)n + 1, err);
    if (!s) return NULL;
    if (n) memcpy(s, c->b + p, n);
    s[n] = 0;
    return s;
}

/* int32 vector field -> owned array (NULL, *n = 0 when absent). */
static int32_t *fb_i32s(fb *c, uint64_t t, int i, int *n, const char *what, gr_error *err) {
    uint32_t len;
    uint64_t p = fb_vec(c, t, i, 4, &len, what);
    *n = 0;
    if (!p || !len) return NULL;
    int32_t *a = gr_malloc((size_t)len * sizeof *a, err);
    if (!a) return NULL;
    for (uint32_t k = 0; k < len; k++) a[k] = (int32_t)rd32(c->b + p + 4 * k);
    *n = (int)len;
    return a;
}

/* ------------------------------------------------------------- op names */

static const char *const op_names[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC",
    "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE",
    "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS",
    "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
    "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
    "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM",
    "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN",
    "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
    "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD",
    "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "UNPACK", "REDUCE_MIN",
    "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS",
    "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK",
    "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
    "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL"};

const char *gr_tfl_op_name(int code, char *buf, size_t cap) {
    if (code >= 0 && code < (int)(sizeof op_names / sizeof op_names[0])) return op_names[code];
    snprintf(buf, cap, "builtin operator %d", code);
    return buf;
}

/* ------------------------------------------------------------ the model */

void gr_tfl_close(gr_tfl_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].name);
        free(m->tensors[i].scale);
        free(m->tensors[i].zero_point);
    }
    for (int i = 0; i < m->n_ops; i++) {
        free(m->ops[i].custom);
        free(m->ops[i].inputs);
        free(m->ops[i].outputs);
    }
    free(m->tensors);
    free(m->ops);
    free(m->buffers);
    free(m->inputs);
    free(m->outputs);
    free(m->bytes);
    free(m->path);
    free(m);
}

int64_t gr_tfl_tensor_count(const gr_tfl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = t->shape[i] > 0 ? t->shape[i] : 0;
        if (d && n > GR_TFL_MAX_ELEMS / d) return GR_TFL_MAX_ELEMS + 1;   /* no overflow: read_tensor refuses it */
        n *= d;
    }
    return n;
}

static gr_status read_tensor(fb *c, uint64_t t, gr_tfl_tensor *out, gr_error *err) {
    int n = 0;
    int32_t *shape = fb_i32s(c, t, 0, &n, "tensor shape", err);
    if (n > 8) {
        free(shape);
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "a tensor of rank %d (at most 8)", n);
    }
    out->ndim = n;
    for (int k = 0; k < n; k++) {
        if (shape[k] < 0) {
            int v = (int)shape[k];
            free(shape);
            return gr_error_set(err, GR_ERR_FORMAT, "a tensor with a negative dimension %d", v);
        }
        out->shape[k] = shape[k];
    }
    free(shape);
    if (gr_tfl_tensor_count(out) > GR_TFL_MAX_ELEMS)
        return gr_error_set(err, GR_ERR_FORMAT, "a tensor shape with more than 2^40 elements");
    out->type = (int)fb_int(c, t, 1, 1, 1, 0, "tensor type");
    out->buffer = (uint32_t)fb_int(c, t, 2, 4, 0, 0, "tensor buffer");
    if (!(out->name = fb_string(c, t, 3, "tensor name", err))) return c->bad ? GR_ERR_FORMAT : GR_ERR_NOMEM;
    uint64_t q = fb_ref(c, t, 4, "tensor quantization");
    if (q) {
        uint32_t ns, nz;
        uint64_t ps = fb_vec(c, q, 2, 4, &ns, "quantization scale");
        uint64_t pz = fb_vec(c, q, 3, 8, &nz, "quantization zero_point");
        out->qdim = (int)fb_int(c, q, 6, 4, 1, 0, "quantized_dimension");
        if (ns) {
            if (!(out->scale = gr_malloc((size_t)ns * sizeof(float), err))) return GR_ERR_NOMEM;
            memcpy(out->scale, c->b + ps, (size_t)ns * 4);
            out->n_scale = (int)ns;
        }
        if (nz) {
            if (!(out->zero_point = gr_malloc((size_t)nz * sizeof(int64_t), err))) return GR_ERR_NOMEM;
            for (uint32_t k = 0; k < nz; k++) {
                uint64_t v = (uint64_t)rd32(c->b + pz + 8 * k) | (uint64_t)rd32(c->b + pz + 8 * k + 4) << 32;
                out->zero_point[k] = (int64_t)v;
            }
            out->n_zp = (int)nz;
        }
    }
    return c->bad ? GR_ERR_FORMAT : GR_OK;
}

/* Builtin options: each kind's fields (schema.fbs), defaults otherwise. */
static void read_options(fb *c, uint64_t o, int code, gr_tfl_options *p) {
    memset(p, 0, sizeof *p);
    p->stride_w = p->stride_h = p->dilation_w = p->dilation_h = p->depth_multiplier = 1;
    p->beta = 1;
    p->type = (int)fb_int(c, o, 3, 1, 0, 0, "builtin_options_type");
    uint64_t t = fb_ref(c, o, 4, "builtin_options");
    if (!t) return;
    switch (code) {
    case GR_TFL_CONV_2D:          /* Conv2DOptions */
        p->padding = (int)fb_int(c, t, 0, 1, 1, 0, "Conv2DOptions");
        p->stride_w = (int)fb_int(c, t, 1, 4, 1, 0, "Conv2DOptions");
        p->stride_h = (int)fb_int(c, t, 2, 4, 1, 0, "Conv2DOptions");
        p->act = (int)fb_int(c, t, 3, 1, 1, 0, "Conv2DOptions");
        p->dilation_w = (int)fb_int(c, t, 4, 4, 1, 1, "Conv2DOptions");
        p->dilation_h = (int)fb_int(c, t, 5, 4, 1, 1, "Conv2DOptions");
        break;
    case GR_TFL_DEPTHWISE_CONV_2D:  /* DepthwiseConv2DOptions */
        p->padding = (int)fb_int(c, t, 0, 1, 1, 0, "DepthwiseConv2DOptions");
        p->stride_w = (int)fb_int(c, t, 1, 4, 1, 0, "DepthwiseConv2DOptions");
        p->stride_h = (int)fb_int(c, t, 2, 4, 1, 0, "DepthwiseConv2DOptions");
        p->depth_multiplier = (int)fb_int(c, t, 3, 4, 1, 0, "DepthwiseConv2DOptions");
        p->act = (int)fb_int(c, t, 4, 1, 1, 0, "DepthwiseConv2DOptions");
        p->dilation_w = (int)fb_int(c, t, 5, 4, 1, 1, "DepthwiseConv2DOptions");
        p->dilation_h = (int)fb_int(c, t, 6, 4, 1, 1, "DepthwiseConv2DOptions");
        break;
    case GR_TFL_AVERAGE_POOL_2D:
    case GR_TFL_MAX_POOL_2D:      /* Pool2DOptions */
        p->padding = (int)fb_int(c, t, 0, 1, 1, 0, "Pool2DOptions");
        p->stride_w = (int)fb_int(c, t, 1, 4, 1, 0, "Pool2DOptions");
        p->stride_h = (int)fb_int(c, t, 2, 4, 1, 0, "Pool2DOptions");
        p->filter_w = (int)fb_int(c, t, 3, 4, 1, 0, "Pool2DOptions");
        p->filter_h = (int)fb_int(c, t, 4, 4, 1, 0, "Pool2DOptions");
        p->act = (int)fb_int(c, t, 5, 1, 1, 0, "Pool2DOptions");
        break;
    case GR_TFL_ADD:              /* AddOptions */
        p->act = (int)fb_int(c, t, 0, 1, 1, 0, "AddOptions");
        break;
    case GR_TFL_FULLY_CONNECTED:  /* FullyConnectedOptions */
        p->act = (int)fb_int(c, t, 0, 1, 1, 0, "FullyConnectedOptions");
        p->weights_format = (int)fb_int(c, t, 1, 1, 1, 0, "FullyConnectedOptions");
        p->keep_num_dims = (int)fb_int(c, t, 2, 1, 0, 0, "FullyConnectedOptions");
        break;
    case GR_TFL_SOFTMAX:          /* SoftmaxOptions */
        p->beta = fb_float(c, t, 0, 1, "SoftmaxOptions");
        break;
    case GR_TFL_MEAN:             /* ReducerOptions */
        p->keep_dims = (int)fb_int(c, t, 0, 1, 0, 0, "ReducerOptions");
        break;
    default: break;
    }
}

static gr_status parse(fb *c, gr_tfl_model *m, gr_error *err) {
    if (c->n < 8) return gr_error_set(err, GR_ERR_FORMAT, "too short for a flatbuffer (%zu bytes)", c->n);
    uint64_t root = fb_deref(c, 0, "root table");
    if (c->bad) return gr_error_set(err, GR_ERR_FORMAT, "not a TFLite flatbuffer: %s", c->what);
    if (memcmp(c->b + 4, "TFL3", 4))
        return gr_error_set(err, GR_ERR_FORMAT, "not a TFLite model (no \"TFL3\" identifier at byte 4)");
    m->version = (uint32_t)fb_int(c, root, 0, 4, 0, 0, "model version");
    if (!c->bad && m->version != 3)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "TFLite schema version %u (graft reads 3)", m->version);

    /* operator codes: builtin_code (field 3) or, in older files, the int8
     * deprecated_builtin_code (field 0); the larger of the two is the real one */
    uint32_t n_codes, n_sg, n_buf;
    uint64_t pc = fb_vec(c, root, 1, 4, &n_codes, "operator_codes");
    int *codes = NULL;
    char **customs = NULL;
    gr_status st = GR_OK;
    if (n_codes) {
        codes = gr_calloc(n_codes, sizeof *codes, err);
        customs = gr_calloc(n_codes, sizeof *customs, err);
        if (!codes || !customs) { st = GR_ERR_NOMEM; goto done; }
    }
    for (uint32_t k = 0; k < n_codes && !c->bad; k++) {
        uint64_t t = fb_vec_table(c, pc, k, "operator code");
        int dep = (int)fb_int(c, t, 0, 1, 1, 0, "deprecated_builtin_code");
        int bc = (int)fb_int(c, t, 3, 4, 1, 0, "builtin_code");
        codes[k] = bc > dep ? bc : dep;
        if (codes[k] == GR_TFL_CUSTOM && !(customs[k] = fb_string(c, t, 1, "custom_code", err))) {
            st = c->bad ? GR_ERR_FORMAT : GR_ERR_NOMEM;
            goto done;
        }
    }
    /* buffers */
    uint64_t pb = fb_vec(c, root, 4, 4, &n_buf, "buffers");
    if (n_buf && !(m->buffers = gr_calloc(n_buf, sizeof *m->buffers, err))) { st = GR_ERR_NOMEM; goto done; }
    m->n_buffers = (int)n_buf;
    for (uint32_t k = 0; k < n_buf && !c->bad; k++) {
        uint64_t t = fb_vec_table(c, pb, k, "buffer");
        uint32_t len;
        uint64_t p = fb_vec(c, t, 0, 1, &len, "buffer data");
        m->buffers[k].data = len ? c->b + p : NULL;
        m->buffers[k].size = len;
    }
    /* subgraph 0 */
    uint64_t ps = fb_vec(c, root, 2, 4, &n_sg, "subgraphs");
    if (c->bad) { st = GR_ERR_FORMAT; goto done; }
    if (n_sg == 0) { st = gr_error_set(err, GR_ERR_FORMAT, "the model has no subgraph"); goto done; }
    uint64_t sg = fb_vec_table(c, ps, 0, "subgraph");
    uint32_t n_t, n_o;
    uint64_t pt = fb_vec(c, sg, 0, 4, &n_t, "tensors");
    if (n_t && !(m->tensors = gr_calloc(n_t, sizeof *m->tensors, err))) { st = GR_ERR_NOMEM; goto done; }
    m->n_tensors = (int)n_t;
    for (uint32_t k = 0; k < n_t && !c->bad; k++) {
        st = read_tensor(c, fb_vec_table(c, pt, k, "tensor"), &m->tensors[k], err);
        if (st && !c->bad) { gr_error_prefix(err, "tensor %u", k); goto done; }
        if (!c->bad && m->tensors[k].buffer >= n_buf) {
            st = gr_error_set(err, GR_ERR_FORMAT, "tensor %u ('%s') refers to buffer %u of %u", k,
                              m->tensors[k].name, m->tensors[k].buffer, n_buf);
            goto done;
        }
    }
    m->inputs = fb_i32s(c, sg, 1, &m->n_inputs, "subgraph inputs", err);
    m->outputs = fb_i32s(c, sg, 2, &m->n_outputs, "subgraph outputs", err);
    uint64_t po = fb_vec(c, sg, 3, 4, &n_o, "operators");
    if (n_o && !(m->ops = gr_calloc(n_o, sizeof *m->ops, err))) { st = GR_ERR_NOMEM; goto done; }
    m->n_ops = (int)n_o;
    for (uint32_t k = 0; k < n_o && !c->bad; k++) {
        gr_tfl_op *op = &m->ops[k];
        uint64_t t = fb_vec_table(c, po, k, "operator");
        uint32_t idx = (uint32_t)fb_int(c, t, 0, 4, 0, 0, "opcode_index");
        if (!c->bad && idx >= n_codes) {
            st = gr_error_set(err, GR_ERR_FORMAT, "operator %u has opcode_index %u of %u", k, idx, n_codes);
            goto done;
        }
        if (c->bad) break;
        op->code = codes[idx];
        if (customs[idx] && !(op->custom = gr_strdup(customs[idx], err))) { st = GR_ERR_NOMEM; goto done; }
        op->inputs = fb_i32s(c, t, 1, &op->n_in, "operator inputs", err);
        op->outputs = fb_i32s(c, t, 2, &op->n_out, "operator outputs", err);
        read_options(c, t, op->code, &op->opt);
        for (int j = 0; j < op->n_in + op->n_out && !c->bad; j++) {
            int32_t v = j < op->n_in ? op->inputs[j] : op->outputs[j - op->n_in];
            if (v < -1 || v >= (int32_t)n_t || (v == -1 && j >= op->n_in)) {
                st = gr_error_set(err, GR_ERR_FORMAT, "operator %u refers to tensor %d of %u", k, (int)v, n_t);
                goto done;
            }
        }
    }
    for (int j = 0; j < m->n_inputs + m->n_outputs && !c->bad; j++) {
        int32_t v = j < m->n_inputs ? m->inputs[j] : m->outputs[j - m->n_inputs];
        if (v < 0 || v >= (int32_t)n_t) {
            st = gr_error_set(err, GR_ERR_FORMAT, "the subgraph's %s refer to tensor %d of %u",
                              j < m->n_inputs ? "inputs" : "outputs", (int)v, n_t);
            goto done;
        }
    }
    if (c->bad) st = GR_ERR_FORMAT;
done:
    for (uint32_t k = 0; customs && k < n_codes; k++) free(customs[k]);
    free(customs);
    free(codes);
    if (c->bad) return gr_error_set(err, GR_ERR_FORMAT, "corrupt flatbuffer: %s", c->what);
    return st;
}

gr_tfl_model *gr_tfl_open(const char *path, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    memset(err, 0, sizeof *err);
    gr_tfl_model *m = gr_calloc(1, sizeof *m, err);
    if (!m) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        free(m);
        return NULL;
    }
    long sz = -1;
    if (!fseek(f, 0, SEEK_END)) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET)) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot get the file size: %s", path, strerror(errno));
        fclose(f);
        free(m);
        return NULL;
    }
    m->len = (size_t)sz;
    m->bytes = gr_malloc(m->len ? m->len : 1, err);
    m->path = gr_strdup(path, err);
    if (!m->bytes || !m->path || fread(m->bytes, 1, m->len, f) != m->len) {
        if (m->bytes && m->path) gr_error_set(err, GR_ERR_IO, "%s: read error", path);
        fclose(f);
        gr_tfl_close(m);
        return NULL;
    }
    fclose(f);
    fb c = {.b = m->bytes, .n = m->len};
    if (parse(&c, m, err) != GR_OK) {
        if (err->code == GR_OK) gr_error_set(err, GR_ERR_FORMAT, "cannot read the model");
        gr_error_prefix(err, "%s", path);
        gr_tfl_close(m);
        return NULL;
    }
    return m;
}

gr_status gr_tfl_tensor_floats(const gr_tfl_model *m, int ti, float *out, int64_t n, gr_error *err) {
    const gr_tfl_tensor *t = &m->tensors[ti];
    const gr_tfl_buffer *b = &m->buffers[t->buffer];
    int esz = t->type == GR_TFL_FLOAT32 || t->type == GR_TFL_INT32 ? 4
              : t->type == GR_TFL_UINT8 || t->type == GR_TFL_INT8 ? 1 : 0;
    if (!esz)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: tensor '%s' has type %d (graft reads float32, "
                            "uint8, int8, int32 weights)", m->path, t->name, t->type);
    if (gr_tfl_tensor_count(t) != n || !b->data || b->size != (size_t)n * (size_t)esz)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: tensor '%s': %lld values expected, its buffer holds %zu bytes",
                            m->path, t->name, (long long)n, b->size);
    if (t->type == GR_TFL_FLOAT32) {
        memcpy(out, b->data, (size_t)n * 4);
        return GR_OK;
    }
    /* quantized: per tensor (1 scale) or per axis qdim (shape[qdim] scales) */
    int64_t inner = 1, nch = 1;
    if (t->n_scale > 1) {
        if (t->qdim < 0 || t->qdim >= t->ndim || t->shape[t->qdim] != t->n_scale)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: tensor '%s': %d scales for quantized dimension %d",
                                m->path, t->name, t->n_scale, t->qdim);
        nch = t->n_scale;
        for (int k = t->qdim + 1; k < t->ndim; k++) inner *= t->shape[k];
    }
    if (t->n_scale < 1 || (t->n_zp != 0 && t->n_zp != 1 && t->n_zp != t->n_scale))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: quantized tensor '%s' has %d scales and %d zero points",
                            m->path, t->name, t->n_scale, t->n_zp);
    for (int64_t i = 0; i < n; i++) {
        int64_t ch = (i / inner) % nch;
        double q = t->type == GR_TFL_UINT8 ? (double)b->data[i]
                   : t->type == GR_TFL_INT8 ? (double)(int8_t)b->data[i]
                   : (double)(int32_t)rd32(b->data + 4 * i);
        double zp = t->n_zp == 0 ? 0 : (double)t->zero_point[t->n_zp == 1 ? 0 : ch];
        out[i] = (float)((q - zp) * (double)t->scale[ch]);
    }
    return GR_OK;
}
