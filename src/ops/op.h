/* op.h — the op table: everything graft knows about an op kind, in one
 * entry (gr_op_def) defined next to the op's reference kernels.
 *
 *   name       the op's name in model files and summaries ("conv2d")
 *   attrs      the layer-spec fields the model file saves for it (GR_ATTR_*)
 *   shape      the shape rule: resolves the spec's defaults, checks it, and
 *              gives the output shape from the input shapes (per sample)
 *   params     the parameters it owns (kind and shape, in storage order)
 *   forward    the plain-C reference forward (inference or training mode)
 *   backward   the plain-C reference backward (ACCUMULATES into gradients)
 *   fast       which fast-path family of the backend may run it (GR_FAST_*):
 *              the executor and the trainer try it first and fall back to
 *              the reference on GR_ERR_UNSUPPORTED
 * Inference (exec.c) and training (trainer.c) run the same forward through
 * gr_op_forward.  Adding an op: one file under src/ops/ with its kernels
 * and its gr_op_def, one line in table.c, the GR_OP_ value in graft.h.    */
#ifndef GRAFT_OP_H
#define GRAFT_OP_H
#include <stdbool.h>
#include "core/core.h"
#include "ops/ops.h"

#define GR_MAX_INPUTS 4
#define GR_OP_MAX_PARAMS 4
/* The largest kernel/stride/pad/pool size a spec may hold (sizes read from files). */
#define GR_MAX_WINDOW 65536

/* A per-sample shape [h, w, c] (flat tensors: 1, 1, n). */
typedef struct { int h, w, c; } gr_dims3;

/* A parameter an op owns: "<layer>/<kind>" in the model. */
typedef struct {
    const char *kind;
    int ndim;
    int64_t shape[4];
} gr_param_decl;

/* Layer-spec fields the model file saves (besides name, op, inputs and the
 * generic ones written when set: units, window, groups, activation, alpha). */
enum {
    GR_ATTR_BIAS = 1u << 0,   /* "use_bias" */
    GR_ATTR_ACT = 1u << 1,    /* "activation", even when linear */
    GR_ATTR_NORM = 1u << 2,   /* "epsilon" and "momentum" */
    GR_ATTR_RATE = 1u << 3,   /* "rate" */
    GR_ATTR_EPS = 1u << 4     /* "epsilon" alone */
};

/* Op flags. */
enum {
    GR_OPF_FUSED_ACT = 1u << 0,  /* spec.act is applied to the output (conv, dense, add) */
    GR_OPF_BATCH_STATS = 1u << 1,/* training mode uses batch statistics, only when the
                                  * trainer is asked to (gr_trainer_opts.bn_train) */
    GR_OPF_RNG = 1u << 2         /* a training forward draws one uniform per input value */
};

/* The backend family that has a fast path for the op (see backend.h). */
typedef enum {
    GR_FAST_NONE = 0,
    GR_FAST_CONV,       /* gr_backend_forward (+ fused act), conv2d backward */
    GR_FAST_DENSE,      /* gr_backend_forward, one GEMM in training, dense backward */
    GR_FAST_BATCHNORM,  /* chains; training forward and backward */
    GR_FAST_POOL,       /* chains; training forward and backward */
    GR_FAST_ACT,        /* chains; activation backward */
    GR_FAST_ATTN        /* self-attention through gr_gemm (ops/attention.h) */
} gr_fast_kind;

/* One run of a node, as its op sees it. */
typedef struct {
    const gr_layer_spec *s;        /* the spec, defaults resolved */
    int B;                         /* batch */
    int n_in;
    gr_dims3 in[GR_MAX_INPUTS];    /* per-sample shape of each input */
    gr_dims3 out;                  /* per-sample output shape */
    const float *ins[GR_MAX_INPUTS];
    float *p[GR_OP_MAX_PARAMS];    /* the node's parameters, in declaration order (NULL: absent) */
    bool training;                 /* training-mode forward (batch statistics, dropout) */
    float *aux;                    /* training: the op's state kept for backward (aux_floats) */
    float *pre;                    /* training: the fused activation's input, when kept (NULL: not) */
    gr_rng *rng;                   /* GR_OPF_RNG: the trainer's generator */
    int shard_lo, shard_total;     /* GR_OPF_RNG: this batch is rows shard_lo.. of shard_total (0: all) */
} gr_op_run;

typedef struct {
    const char *name;
    unsigned attrs;                /* GR_ATTR_* */
    unsigned flags;                /* GR_OPF_* */
    gr_fast_kind fast;
    /* NULL: the output has the shape of input 0. */
    gr_status (*shape)(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *out, gr_error *err);
    /* Fills d (at most GR_OP_MAX_PARAMS) and returns the count; NULL: none. */
    int (*params)(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d);
    /* Floats of r->aux a training run needs for a batch of B; NULL: none. */
    size_t (*aux_floats)(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B);
    void (*forward)(const gr_op_run *r, float *out);
    /* din[k] (NULL: not needed) += dL/din[k]; dp[k] (NULL: not needed) += dL/dp[k].
     * out is the forward's output, dout dL/dout (the fused activation's
     * gradient already applied, see gr_op_act_backward).                    */
    void (*backward)(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                     float *const *dp);
} gr_op_def;

/* The entry of op, or NULL (GR_OP_INPUT, out of range). */
const gr_op_def *gr_op_get(gr_op op);
/* The op named name, or GR_OP__COUNT. */
gr_op gr_op_parse(const char *name);

/* The whole reference forward: the op, then its fused activation. */
void gr_op_forward(const gr_op_run *r, float *out);
/* The fused activation of r's op applied to out in place (keeps its input
 * in r->pre when the derivative needs it and r->pre is given).           */
void gr_op_act_forward(const gr_op_run *r, float *out);
/* dout <- dout * act'(.) in place, for the fused activation (softmax: only
 * as the last layer, where dout is already dL/dlogits: nothing to do).   */
void gr_op_act_backward(const gr_op_run *r, const float *out, float *dout);
/* Floats of r->aux and r->pre a training run of B needs. */
size_t gr_op_aux_floats(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B);
size_t gr_op_pre_floats(const gr_layer_spec *s, const gr_dims3 *out, int B);

/* A shape error "layer 'NAME' (OP): <detail>" (GR_ERR_SHAPE). */
gr_status gr_op_bad(gr_error *err, const gr_layer_spec *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Whether act's derivative needs its input (not computable from its output). */
bool gr_act_needs_input(gr_act act);
/* dy <- dy * act'(x) in place, from the output y (or the input x when
 * gr_act_needs_input).                                                     */
void gr_act_grad_inplace(float *dy, const float *x, const float *y, size_t n, gr_act act, float alpha);

/* One spatial dimension of a conv or pool: the output size, the pads of a
 * 'same' / 'valid' padding resolved into *pt, *pb (explicit: kept); forced
 * > 0 imposes the output size.  k, s and pads are at most GR_MAX_WINDOW (checked
 * by the model), so nothing overflows.                                    */
int gr_op_out_dim(int in, int k, int s, gr_padding pad, int *pt, int *pb, int forced);

/* Per-sample size. */
static inline int64_t gr_dims3_size(gr_dims3 d) { return (int64_t)d.h * d.w * d.c; }

#endif
