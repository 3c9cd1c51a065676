/* onnx_net.h — the ONNX graph builder's insides (src/format/onnx_net.c,
 * onnx_ops.c, onnx_fold.c; not public).
 *
 * The builder walks the graph's nodes in file order (ONNX graphs are
 * topologically sorted) and gives every tensor name a value:
 *   - a constant (an initializer, read lazily, or the result of folding the
 *     shape arithmetic at the chosen input size and the file's batch, or 1):
 *     int64 or float;
 *   - an activation: a graft node (NHWC), with the ONNX logical layout:
 *     rank 4 -> perm[k] = the physical NHWC axis of logical axis k (an NCHW
 *     tensor has perm {0,3,1,2}; a Transpose only changes perm); rank 2 ->
 *     [N, F] on a 1x1 node, where a Flatten of a spatial map keeps ONNX's
 *     flat order in fmap (the next Gemm/MatMul permutes its weight rows, so
 *     graft's own HWC flatten computes the same).                        */
#ifndef GRAFT_FORMAT_ONNX_NET_H
#define GRAFT_FORMAT_ONNX_NET_H
#include <stdbool.h>
#include "graph/model.h"
#include "format/onnx.h"

enum { V_NONE = 0, V_CONST, V_ACT };
enum { CT_F = 1, CT_I };

/* Folded constants larger than this are refused (checked before allocating). */
#define GR_ONNX_MAX_FOLD ((int64_t)1 << 24)

typedef struct {
    const char *name;              /* not owned (in the protobuf) */
    int kind;                      /* V_* */
    /* V_CONST */
    const Onnx__TensorProto *init; /* not read yet (f, i NULL) */
    const Onnx__TensorProto *src;  /* the tensor it was read from (gr_onnx_release) */
    int ct;                        /* CT_F / CT_I once read */
    int rank;
    int64_t dims[GR_ONNX_MAX_RANK];
    int64_t n;
    float *f;                      /* owned */
    int64_t *i;                    /* owned */
    /* V_ACT */
    int node;                      /* graft node, -1 the model input */
    int perm[4];                   /* rank 4 */
    bool fmap;                     /* rank 2 flattened from a spatial map in ONNX order: */
    int fh, fw, fc, fperm[4];      /*   the map and its perm                            */
    int consumers;                 /* nodes reading it (+1 when a graph output) */
    bool dyn;                      /* computed from the image (not shape arithmetic) */
    int xpad[4];                   /* a zero Pad (top, left, bottom, right) the Conv reading it takes over */
    bool primary;                  /* the node's own output (not an alias): an activation may fuse into it */
} gr_onnx_val;

typedef struct {
    gr_onnx_file *f;
    const Onnx__GraphProto *g;
    gr_model *m;
    gr_onnx_val *v;
    int nv, cap;
    int *hash;                     /* open addressing: value index + 1, 0 empty */
    int hcap;
    bool *done;                    /* per ONNX node: absorbed by an earlier one */
    int node;                      /* the ONNX node being built */
    bool in_nhwc;                  /* the image input is NHWC, transposed by the graph (tf2onnx) */
    int64_t batch;                 /* the batch the shape arithmetic sees: the file's fixed one, else 1 */
    gr_error *err;
} gr_onnx_b;

typedef const Onnx__NodeProto onode;

/* "PATH: node 'NAME' (OP, opset N): ..." about node b->node. */
gr_status gr_onnx_nerr(gr_onnx_b *b, gr_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The value named `name`, or NULL (an error unless quiet). */
gr_onnx_val *gr_onnx_get(gr_onnx_b *b, const char *name);
/* Input k of the current node: NULL when absent or empty (optional input). */
gr_onnx_val *gr_onnx_in(gr_onnx_b *b, onode *n, size_t k);
/* A new value for output k of the current node (kind set by the caller). */
gr_onnx_val *gr_onnx_out(gr_onnx_b *b, onode *n, size_t k);
/* Reads a lazy initializer into v->f / v->i. */
gr_status gr_onnx_cload(gr_onnx_b *b, gr_onnx_val *v);
/* Frees the values of a weight read from a tensor once its only reader has
 * copied them (read again from the tensor if ever needed).                */
void gr_onnx_release(gr_onnx_val *v);
/* Attributes (NULL / default when absent). */
const Onnx__AttributeProto *gr_onnx_attr(onode *n, const char *name);
int64_t gr_onnx_attr_i(onode *n, const char *name, int64_t def);
float gr_onnx_attr_f(onode *n, const char *name, float def);
/* Up to max ints of attribute name into out; returns the count (0 absent). */
int gr_onnx_attr_ints(onode *n, const char *name, int64_t *out, int max);
/* The index of the only node reading value `name`, or -1 (none, several, or a graph output). */
int gr_onnx_sole_consumer(gr_onnx_b *b, const char *name);

/* Logical dims of an activation value (batch 1); returns its rank.  A
 * rank-3 value is a token sequence: its node [N, H, W, C] read as the
 * physical axes [N, T = H*W, C], perm[k] the physical axis of logical k. */
int gr_onnx_act_dims(const gr_onnx_b *b, const gr_onnx_val *v, int64_t dims[4]);

/* onnx_fold.c: folds node n when it is shape arithmetic over constants (or
 * Shape of an activation).  1 = folded, 0 = not a constant node, -1 = error. */
int gr_onnx_fold(gr_onnx_b *b, onode *n);
/* onnx_ops.c: helpers of the mappers.  Appends s reading node `in` (unless
 * s.n_inputs is set), named after the node (+ "/suffix"): id or -1.        */
int gr_onnx_append(gr_onnx_b *b, onode *n, gr_layer_spec s, int in, const char *suffix);
/* Activation input k, or NULL with an error (absent, or a constant). */
gr_onnx_val *gr_onnx_ain(gr_onnx_b *b, onode *n, size_t k);
/* Constant float input k with `count` values (< 0: any), or NULL with an error. */
gr_onnx_val *gr_onnx_cfloats(gr_onnx_b *b, onode *n, size_t k, int64_t count, const char *what);
/* Output k of n as an activation on graft node id, with x's layout (NULL: NCHW). */
gr_onnx_val *gr_onnx_set_act(gr_onnx_b *b, onode *n, size_t k, int id, const gr_onnx_val *x, bool primary);
/* Per-sample shape of graft node `node`. */
void gr_onnx_shape(gr_onnx_b *b, int node, int *h, int *w, int *c);
/* onnx_layout.c: layout changes, dense layers, joins, softmax (0 or -1). */
int gr_onnx_map_layout(gr_onnx_b *b, onode *n, const char *op);
int gr_onnx_map_dense(gr_onnx_b *b, onode *n, bool gemm);
int gr_onnx_map_join(gr_onnx_b *b, onode *n, const char *op);
int gr_onnx_map_softmax(gr_onnx_b *b, onode *n);
/* onnx_elem.c: elementwise operators and the exporter's patterns (see there). */
/* Whether an activation after x may fuse into x's layer: x is the primary
 * output of the last layer (conv, dense, add; not activated yet), read by
 * exactly `consumers` inputs (those of the pattern being mapped).          */
bool gr_onnx_can_fuse(gr_onnx_b *b, const gr_onnx_val *x, int consumers);
int gr_onnx_map_gate(gr_onnx_b *b, onode *n, gr_act act);            /* Sigmoid, HardSigmoid (+ Mul: swish) */
int gr_onnx_map_arith(gr_onnx_b *b, onode *n, const char *op);       /* Add, Sub, Mul, Div */
int gr_onnx_map_layernorm(gr_onnx_b *b, onode *n);                   /* LayerNormalization */
int gr_onnx_map_ln_decomposed(gr_onnx_b *b, onode *n, int64_t axis); /* ReduceMean over channels */
/* The axes of ReduceMean n (attribute, or a constant input from opset 18):
 * their count, or -1 when not a constant.                                  */
int gr_onnx_reduce_axes(gr_onnx_b *b, onode *n, int64_t axes[4]);
/* onnx_std.c: the forms graft's exporter writes, read back as its layers:
 * 1 mapped (n and the nodes of the form done), 0 not that form, -1 error.
 * Arithmetic node n on x: Sub, Div (any per-feature chain on a flattened
 * map) -> standardize; Sub 3, HardSigmoid, Mul 6 -> relu6.  Flatten/Reshape
 * node n of map x followed by per-feature arithmetic and a Reshape back to
 * the map -> standardize on the map.                                      */
int gr_onnx_map_std_flat(gr_onnx_b *b, onode *n, gr_onnx_val *x);
int gr_onnx_map_relu6_form(gr_onnx_b *b, onode *n, gr_onnx_val *x);
int gr_onnx_map_std_map(gr_onnx_b *b, onode *n, gr_onnx_val *x);
/* onnx_attn.c: Vision Transformer tokens and attention (see there).  Slice /
 * Gather of activations, a Concat with a constant (the class token), an
 * Add of a constant of the activation's whole shape (position embedding). */
int gr_onnx_map_slice(gr_onnx_b *b, onode *n);
/* Reshape n of the NCHW map x to [N, C, 1, H*W] that starts graft's exported
 * class token: 1 mapped, 0 not that form, -1 error.                        */
int gr_onnx_map_tokens_row(gr_onnx_b *b, onode *n, gr_onnx_val *x);
/* Their helpers.  Known shapes of values the attention matcher absorbs
 * (never built as values), for the Shape nodes a symbolic batch reads them with. */
#define GR_ONNX_MAX_HINTS 96
#define GR_ONNX_HINT_RANK 6
typedef struct {
    const char *name[GR_ONNX_MAX_HINTS];
    int rank[GR_ONNX_MAX_HINTS];
    int64_t d[GR_ONNX_MAX_HINTS][GR_ONNX_HINT_RANK];
    int n;
} gr_onnx_hints;
/* gr_onnx_nerr about node k (not the current one), GR_ERR_UNSUPPORTED: -1. */
int gr_onnx_nerr_at(gr_onnx_b *b, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Value `name` as a constant, folding the later nodes that make it (a Shape
 * of a hinted value included); NULL when it is not one.                   */
gr_onnx_val *gr_onnx_ensure_const(gr_onnx_b *b, const char *name, const gr_onnx_hints *h);
/* Input k of node n as an int64 constant of at most max values: the count
 * (0 when absent), or -1.                                                  */
int gr_onnx_cints(gr_onnx_b *b, onode *n, size_t k, int64_t *out, int max, const gr_onnx_hints *h);
/* Shape node p of a hinted value folded to a constant: its output, or NULL. */
gr_onnx_val *gr_onnx_shape_of_hint(gr_onnx_b *b, onode *p, const gr_onnx_hints *h);
/* onnx_mha.c: whether x is an attention's in_proj output (the last layer,
 * a 1x1 conv of width 3*D over tokens); the whole attention from node n0,
 * the first node reading it, as one self_attention layer.  0 or -1.       */
bool gr_onnx_is_qkv(gr_onnx_b *b, const gr_onnx_val *x);
int gr_onnx_map_attention(gr_onnx_b *b, onode *n0, gr_onnx_val *qkv);
int gr_onnx_map_gather(gr_onnx_b *b, onode *n);
int gr_onnx_map_cls_concat(gr_onnx_b *b, onode *n);
int gr_onnx_map_pos_embed(gr_onnx_b *b, onode *n, gr_onnx_val *x, gr_onnx_val *k);   /* 1: not one */
/* onnx_ops.c: name = the last 63 bytes of full, made unique in the model
 * ("_2", "_3"...). */
void gr_onnx_unique_name(gr_onnx_b *b, const char *full, char name[64]);
/* onnx_ops.c: maps node n onto graft layers.  0 or -1 (error set). */
int gr_onnx_map(gr_onnx_b *b, onode *n);
/* Whether op (default domain) is one graft maps or folds / maps onto layers. */
bool gr_onnx_op_known(const char *op);
bool gr_onnx_op_mapped(const char *op);

#endif
