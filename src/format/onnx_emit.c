/* onnx_emit.c — the ONNX builder of onnx_emit.h: nodes, attributes,
 * initializers and value infos as protobuf-c structures, all allocations
 * on one list. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_emit.h"

void *oxe_alloc(oxe *e, size_t n) {
    if (e->failed) return NULL;
    oxe_block *b = calloc(1, sizeof(oxe_block) + n);
    if (!b) {
        gr_error_set(e->err, GR_ERR_NOMEM, "out of memory while exporting to ONNX (%zu bytes)", n);
        e->failed = true;
        return NULL;
    }
    b->next = e->blocks;
    e->blocks = b;
    return b + 1;
}

char *oxe_strf(oxe *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? oxe_alloc(e, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

gr_status oxe_fail(oxe *e, gr_status code, const char *fmt, ...) {
    if (e->failed) return e->err ? e->err->code : code;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const gr_node *n = &e->m->nodes[e->layer];
    e->failed = true;
    return gr_error_set(e->err, code, "layer '%s' (%s) cannot be exported to ONNX: %s", n->s.name,
                        gr_op_name(n->s.op), what);
}

/* Room for one more node / initializer. */
static bool oxe_nomem(oxe *e) {
    e->failed = true;
    gr_error_set(e->err, GR_ERR_NOMEM, "out of memory while exporting to ONNX");
    return false;
}
static bool oxe_grow_nodes(oxe *e) {
    if (e->failed) return false;
    if (e->n_nodes < e->cap_nodes) return true;
    size_t nc = e->cap_nodes ? 2 * e->cap_nodes : 64;
    Onnx__NodeProto **a = realloc(e->nodes, nc * sizeof *a);
    if (!a) return oxe_nomem(e);
    e->nodes = a, e->cap_nodes = nc;
    return true;
}
static bool oxe_grow_inits(oxe *e) {
    if (e->failed) return false;
    if (e->n_inits < e->cap_inits) return true;
    size_t nc = e->cap_inits ? 2 * e->cap_inits : 64;
    Onnx__TensorProto **a = realloc(e->inits, nc * sizeof *a);
    if (!a) return oxe_nomem(e);
    e->inits = a, e->cap_inits = nc;
    return true;
}

/* A fresh intermediate tensor name of the current layer. */
const char *oxe_tmp(oxe *e) {
    return oxe_strf(e, "%s/t%d", e->m->nodes[e->layer].s.name, e->serial++);
}

/* Appends a node op_type(in...) -> out; NULL on failure (error set). */
Onnx__NodeProto *oxe_node(oxe *e, const char *op, int n_in, const char *const *in, const char *out) {
    Onnx__NodeProto *n = oxe_alloc(e, sizeof *n);
    char **ins = oxe_alloc(e, (size_t)(n_in ? n_in : 1) * sizeof *ins);
    char **outs = oxe_alloc(e, sizeof *outs);
    if (!n || !ins || !outs || !out || !oxe_grow_nodes(e)) return NULL;
    for (int k = 0; k < n_in; k++) {
        if (!in[k]) return NULL;
        ins[k] = (char *)in[k];
    }
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    outs[0] = (char *)out;
    n->n_input = (size_t)n_in;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->op_type = (char *)op;
    n->name = oxe_strf(e, "%s/%s_%d", e->m->nodes[e->layer].s.name, op, e->serial++);
    if (!n->name) return NULL;
    e->nodes[e->n_nodes++] = n;
    return n;
}

/* Adds an attribute to n (NULL n: nothing). */
static Onnx__AttributeProto *oxe_attr(oxe *e, Onnx__NodeProto *n, const char *name) {
    if (!n) return NULL;
    Onnx__AttributeProto *a = oxe_alloc(e, sizeof *a);
    Onnx__AttributeProto **v = oxe_alloc(e, (n->n_attribute + 1) * sizeof *v);
    if (!a || !v) return NULL;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = (char *)name;
    if (n->n_attribute) memcpy(v, n->attribute, n->n_attribute * sizeof *v);
    v[n->n_attribute++] = a;
    n->attribute = v;
    return a;
}
void oxe_attr_i(oxe *e, Onnx__NodeProto *n, const char *name, int64_t i) {
    Onnx__AttributeProto *a = oxe_attr(e, n, name);
    if (!a) return;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1, a->i = i;
}
void oxe_attr_f(oxe *e, Onnx__NodeProto *n, const char *name, float f) {
    Onnx__AttributeProto *a = oxe_attr(e, n, name);
    if (!a) return;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1, a->f = f;
}
void oxe_attr_ints(oxe *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int k) {
    Onnx__AttributeProto *a = oxe_attr(e, n, name);
    int64_t *d = oxe_alloc(e, (size_t)k * sizeof *d);
    if (!a || !d) return;
    memcpy(d, v, (size_t)k * sizeof *d);
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)k, a->ints = d;
}

/* An initializer (float32 or int64, raw little-endian data) of the given
 * dims; returns its name, data is copied.  ndim 0: a scalar.              */
const char *oxe_init(oxe *e, const char *name, bool i64, const void *data, int64_t count, int ndim,
                           const int64_t *dims) {
    Onnx__TensorProto *t = oxe_alloc(e, sizeof *t);
    int64_t *d = oxe_alloc(e, (size_t)(ndim ? ndim : 1) * sizeof *d);
    size_t bytes = (size_t)count * (i64 ? 8 : 4);
    uint8_t *raw = oxe_alloc(e, bytes ? bytes : 1);
    if (!t || !d || !raw || !name || !oxe_grow_inits(e)) return NULL;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d);
    memcpy(raw, data, bytes);   /* x86-64 and every target graft builds on: little-endian */
    t->n_dims = (size_t)ndim, t->dims = d;
    t->has_data_type = 1;
    t->data_type = i64 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = (char *)name;
    t->has_raw_data = 1, t->raw_data.len = bytes, t->raw_data.data = raw;
    e->inits[e->n_inits++] = t;
    return name;
}

/* A float scalar constant (shared by value). */
const char *oxe_scalar(oxe *e, float v) {
    char name[64];
    snprintf(name, sizeof name, "const/%.9g", (double)v);
    for (size_t k = 0; k < e->n_inits; k++)
        if (!strcmp(e->inits[k]->name, name)) return e->inits[k]->name;
    return oxe_init(e, oxe_strf(e, "%s", name), false, &v, 1, 0, NULL);
}

/* An int64 vector constant. */
const char *oxe_ints(oxe *e, const int64_t *v, int k) {
    int64_t dims[1] = {k};
    return oxe_init(e, oxe_tmp(e), true, v, k, 1, dims);
}

/* A float constant of the current layer's parameter kind, shaped dims. */
const char *oxe_param(oxe *e, const char *kind, const float *data, int64_t count, int ndim,
                            const int64_t *dims) {
    return oxe_init(e, oxe_strf(e, "%s/%s", e->m->nodes[e->layer].s.name, kind), false, data, count, ndim, dims);
}

/* One node with 1 or 2 inputs, out = a fresh name (or dst). */
const char *oxe_op1(oxe *e, const char *op, const char *x, const char *dst) {
    const char *out = dst ? dst : oxe_tmp(e);
    return oxe_node(e, op, 1, &x, out) ? out : NULL;
}
const char *oxe_op2(oxe *e, const char *op, const char *a, const char *b, const char *dst) {
    const char *out = dst ? dst : oxe_tmp(e);
    const char *in[2] = {a, b};
    return oxe_node(e, op, 2, in, out) ? out : NULL;
}

Onnx__ValueInfoProto *oxe_value_info(oxe *e, const char *name, int ndim, const int64_t *dims,
                                           const char *sym0) {
    Onnx__ValueInfoProto *v = oxe_alloc(e, sizeof *v);
    Onnx__TypeProto *t = oxe_alloc(e, sizeof *t);
    Onnx__TypeProto__Tensor *tt = oxe_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = oxe_alloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = oxe_alloc(e, (size_t)ndim * sizeof *dv);
    if (!v || !t || !tt || !sh || !dv) return NULL;
    for (int k = 0; k < ndim; k++) {
        if (!(dv[k] = oxe_alloc(e, sizeof *dv[k]))) return NULL;
        *dv[k] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (k == 0 && sym0) {
            dv[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dv[k]->dim_param = (char *)sym0;
        } else {
            dv[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dv[k]->dim_value = dims[k];
        }
    }
    *sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    sh->n_dim = (size_t)ndim, sh->dim = dv;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1, tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, tt->shape = sh;
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, t->tensor_type = tt;
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = (char *)name, v->type = t;
    return v;
}

void oxe_free(oxe *e) {
    free(e->vals);
    free(e->nodes);
    free(e->inits);
    while (e->blocks) {
        oxe_block *b = e->blocks;
        e->blocks = b->next;
        free(b);
    }
    e->vals = NULL, e->nodes = NULL, e->inits = NULL;
}
