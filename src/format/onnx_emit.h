/* onnx_emit.h — building an ONNX ModelProto as protobuf-c structures (the
 * code generated from Debian's onnx.proto), for the exporter
 * (onnx_export.c).  Everything an export allocates hangs from one list in
 * the builder and is freed at once (oxe_free); on the first failure the
 * builder records the error and every later call returns NULL / does
 * nothing, so callers check once, at the end (e->failed).                 */
#ifndef GRAFT_FORMAT_ONNX_EMIT_H
#define GRAFT_FORMAT_ONNX_EMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "format/onnx.h"
#include "graph/model.h"

/* Every allocation of an export hangs from one list, freed at the end. */
typedef union oxe_block {
    union oxe_block *next;
    max_align_t align;
} oxe_block;

/* A node's output as the ONNX graph holds it. */
typedef struct {
    const char *name;
    int rank;            /* 4: [N, C, H, W]; 2: [N, F] */
    int h, w, c;         /* graft's per-sample shape (flat: 1, 1, F) */
    bool perm;           /* rank 2 holding a flattened HxWxC map in CHW order */
    int ph, pw, pc;      /* perm: that map's shape */
    const char *src4d;   /* perm: the NCHW map it is the plain Flatten of (or NULL) */
} oxe_val;

/* The builder: the model being exported, the graph's nodes and initializers. */
typedef struct {
    const gr_model *m;
    int opset;
    gr_error *err;
    bool failed;         /* an error is set */
    oxe_block *blocks;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    oxe_val *vals;       /* [n_nodes + 1]: vals[0] the input, vals[i + 1] node i */
    int layer;           /* the node being exported (messages) */
    int serial;          /* for unique intermediate names */
} oxe;

/* Frees everything the builder allocated (the nodes, initializers, values). */
void oxe_free(oxe *e);

/* n zeroed bytes owned by the builder; NULL (error set) when out of memory. */
void *oxe_alloc(oxe *e, size_t n);
/* A formatted string owned by the builder. */
char *oxe_strf(oxe *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records GR_ERR_... "layer 'NAME' (OP) cannot be exported to ONNX: <what>"
 * for the current layer (once); returns the status.                       */
gr_status oxe_fail(oxe *e, gr_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A fresh intermediate tensor name of the current layer ("<layer>/tK"). */
const char *oxe_tmp(oxe *e);
/* Appends the node op(in[0..n_in)) -> out (names owned by the builder or
 * static); NULL on failure, also when an input or out is NULL.           */
Onnx__NodeProto *oxe_node(oxe *e, const char *op, int n_in, const char *const *in, const char *out);
/* Attributes of n (n NULL: nothing). */
void oxe_attr_i(oxe *e, Onnx__NodeProto *n, const char *name, int64_t i);
void oxe_attr_f(oxe *e, Onnx__NodeProto *n, const char *name, float f);
void oxe_attr_ints(oxe *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int k);
/* An initializer named name: count float32 (or int64) values copied from
 * data, raw little-endian, of dims[0..ndim) (ndim 0: a scalar).  Returns
 * its name.                                                                */
const char *oxe_init(oxe *e, const char *name, bool i64, const void *data, int64_t count, int ndim,
                     const int64_t *dims);
/* A float32 scalar constant (one per value). */
const char *oxe_scalar(oxe *e, float v);
/* An int64 vector constant [k]. */
const char *oxe_ints(oxe *e, const int64_t *v, int k);
/* A float32 constant "<layer>/<kind>" of the current layer. */
const char *oxe_param(oxe *e, const char *kind, const float *data, int64_t count, int ndim, const int64_t *dims);
/* One node of one or two inputs; its output is dst, or a fresh name when dst
 * is NULL.  Returns the output's name (NULL on failure).                  */
const char *oxe_op1(oxe *e, const char *op, const char *x, const char *dst);
const char *oxe_op2(oxe *e, const char *op, const char *a, const char *b, const char *dst);
/* A float32 tensor's ValueInfo of dims[0..ndim); dim 0 named sym0 when not NULL. */
Onnx__ValueInfoProto *oxe_value_info(oxe *e, const char *name, int ndim, const int64_t *dims, const char *sym0);

#endif
