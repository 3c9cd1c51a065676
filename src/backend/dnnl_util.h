/* dnnl_util.h — the small machinery the oneDNN backend files share (not
 * public): a "net" is an engine, a stream, a list of primitives to run in
 * order with their arguments, and every oneDNN object and buffer it owns.
 *
 * Buffers: slot 0 is the scratchpad (one buffer for all the net's
 * primitives, user scratchpad mode, so nothing is allocated per call);
 * slots 1.. are arenas for intermediate activations.  Memories bound to a
 * slot get their data handle in dn_net_finalize, once every size is known.
 * User memories (the caller's NHWC tensors, the model's weights) are
 * created with no handle and re-pointed before each run.                  */
#ifndef GRAFT_DNNL_UTIL_H
#define GRAFT_DNNL_UTIL_H
#include <oneapi/dnnl/dnnl.h>
#include "backend/backend.h"

#define DN_MAX_ARGS 10
#define DN_MAX_BUFS 8   /* the scratchpad and 7 arenas (a chain's live activations) */

typedef struct {
    dnnl_primitive_t prim;    /* NULL for a step graft runs itself (run) */
    int nargs;
    dnnl_exec_arg_t args[DN_MAX_ARGS];
    unsigned need;        /* run only when (need & mask) != 0 (see dn_net_run) */
    /* graft's own step (Winograd, winograd.h): run(ctx, args) once the
     * stream is idle; its memories' handles are read at run time */
    gr_status (*run)(void *ctx, const dnnl_exec_arg_t *args, int nargs, gr_error *err);
    void *ctx;
} dn_step;

typedef struct {
    dnnl_memory_t mem;
    int buf;              /* slot index */
} dn_bound;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dn_step *steps;
    int n_steps, cap_steps;
    dnnl_memory_t *mems;          /* owned memories (destroyed in dn_net_free) */
    int n_mems, cap_mems;
    dnnl_primitive_t *prims;      /* owned primitives not in steps (weight reorders) */
    int n_prims, cap_prims;
    dn_bound *bound;
    int n_bound, cap_bound;
    size_t buf_size[DN_MAX_BUFS];
    void *buf[DN_MAX_BUFS];
    bool lent;                    /* slots not allocated: the backend's shared ones are bound (dn_net_bind_lent) */
} dn_net;

/* One node's cache (be->fast[node], see backend.h). */
typedef struct gr_fast {
    struct dn_chain *chain;   /* the executor's chain starting at this node */
    struct dn_chain *single;  /* this node alone (gr_backend_forward) */
    struct dn_dense *dense;   /* dense forward */
    struct dn_bwd *bwd;       /* conv or dense backward */
    struct dn_tl *tl;         /* pooling / batch norm in training (dnnl_train_layers.c) */
    /* the last chain from this node oneDNN could not build (GR_ERR_UNSUPPORTED):
     * last + 1 (0: none), batch, precision; not tried again, the executor
     * goes on to shorter chains at once                                     */
    int fail_last1, fail_B;
    gr_precision fail_prec;
} gr_fast;

/* One user's fast-path state for one model (backend.h). */
struct gr_backend {
    const gr_model *m;
    int n_nodes;              /* m->n_nodes when made: fast[] covers these */
    gr_fast **fast;           /* per node, NULL until used */
    gr_precision precision;
    int train_from;           /* nodes >= train_from are updated every step (-1: none) */
    bool winograd;            /* Winograd convolutions allowed (GRAFT_WINOGRAD, exec/ctx.h) */
    bool own_winograd;        /* backward: graft's Winograd even where oneDNN has one (tests) */
    /* Buffers shared by the nodes' backward nets (they run one at a time):
     * oneDNN's scratchpad and the blocked copies of a layer's tensors, each
     * sized for the largest layer rather than summed over layers (Winograd
     * backward on VGG16 at batch 64: ~100 MB of scratchpad per layer).      */
    void *bwd_buf[DN_MAX_BUFS];
    size_t bwd_buf_size[DN_MAX_BUFS];
    /* the self_attention nodes' state (q, k, v, scores, context), sized for the largest */
    float *att_buf;
    size_t att_buf_n;
    /* graft's Winograd backward (dnnl_backward.c): its scratch, likewise shared */
    void *wino_buf;
    size_t wino_buf_size;
};

/* be->fast[node], created on first use; NULL (err set) when out of memory
 * or when node is not one of the model's nodes the backend was made for.  */
gr_fast *dn_fast_of(gr_backend *be, int node, gr_error *err);
/* Whether a trainer updates node every step. */
static inline bool dn_training(const gr_backend *be, int node) {
    return be->train_from >= 0 && node >= be->train_from;
}

/* Converts a oneDNN status: unimplemented / invalid_arguments ->
 * GR_ERR_UNSUPPORTED, out of
 * memory -> GR_ERR_NOMEM, else GR_ERR_BACKEND, with a message naming what. */
gr_status dn_fail(gr_error *err, dnnl_status_t st, const char *what, const char *layer);
#define DN_TRY(call, what, layer)                                            \
    do {                                                                     \
        dnnl_status_t dn_st_ = (call);                                       \
        if (dn_st_ != dnnl_success) return dn_fail(err, dn_st_, what, layer); \
    } while (0)

gr_status dn_net_init(dn_net *net, gr_error *err);
void dn_net_free(dn_net *net);

/* A memory owned by the net: handle = a pointer, DNNL_MEMORY_NONE (set
 * later) or DNNL_MEMORY_ALLOCATE (oneDNN allocates it). */
dnnl_memory_t dn_mem(dn_net *net, const dnnl_memory_desc_t *md, void *handle, gr_error *err);
/* A memory placed in buffer slot buf (>= 1) at finalize. */
dnnl_memory_t dn_mem_slot(dn_net *net, const dnnl_memory_desc_t *md, int buf, gr_error *err);

/* Creates the primitive of pd and appends it as a step (adds the scratchpad
 * argument).  args: n pairs.  The caller still owns pd.                    */
gr_status dn_add_step(dn_net *net, const_dnnl_primitive_desc_t pd, unsigned need, int n,
                      const dnnl_exec_arg_t *args, const char *layer, gr_error *err);
/* Appends graft's own step run(ctx, args) (args: n pairs), with a
 * scratch buffer of scratch_bytes in the net's scratchpad slot (passed as
 * DNNL_ARG_SCRATCHPAD) when scratch_bytes > 0.  ctx stays the caller's.   */
gr_status dn_add_custom_step(dn_net *net,
                             gr_status (*run)(void *ctx, const dnnl_exec_arg_t *args, int nargs,
                                              gr_error *err),
                             void *ctx, unsigned need, int n, const dnnl_exec_arg_t *args,
                             size_t scratch_bytes, gr_error *err);
/* A primitive desc from an op desc with the user scratchpad mode and an
 * optional forward hint (what: the op, for the error message).             */
gr_status dn_make_pd(dnnl_primitive_desc_t *pd, const void *desc, dnnl_engine_t eng,
                     const_dnnl_primitive_desc_t hint, const char *what, const char *layer,
                     gr_error *err);
/* Appends a reorder src -> dst (dst += src when accumulate). */
gr_status dn_add_reorder(dn_net *net, dnnl_memory_t src, dnnl_memory_t dst, int accumulate,
                         unsigned need, const char *layer, gr_error *err);
/* Makes a reorder primitive that is not a step (run with dn_exec_prim). */
gr_status dn_make_reorder(dn_net *net, dnnl_memory_t src, dnnl_memory_t dst,
                          dnnl_primitive_t *out, const char *layer, gr_error *err);
gr_status dn_exec_reorder(dn_net *net, dnnl_primitive_t r, dnnl_memory_t src, dnnl_memory_t dst,
                          gr_error *err);

/* Allocates the slot buffers and binds the memories placed in them. */
gr_status dn_net_finalize(dn_net *net, gr_error *err);
/* For a lent net: points its slots (scratchpad included) at the backend's
 * shared buffers be->bwd_buf, grown to the net's need.  Before each run.  */
gr_status dn_net_bind_lent(dn_net *net, gr_backend *be, gr_error *err);
/* Runs the steps whose need matches mask (all: ~0u), then waits. */
gr_status dn_net_run(dn_net *net, unsigned mask, gr_error *err);

/* Memory descriptors.  Activations are logical {B, C, H, W}. */
dnnl_memory_desc_t dn_md_nhwc(int B, int C, int H, int W, dnnl_data_type_t dt);
dnnl_memory_desc_t dn_md_any4(int B, int C, int H, int W, dnnl_data_type_t dt);
dnnl_memory_desc_t dn_md_plain4(int B, int C, int H, int W, dnnl_data_type_t dt);   /* NCHW */
/* Conv weights in graft's HWIO order: [KH][KW][C/groups][OC], f32. */
dnnl_memory_desc_t dn_md_hwio(int KH, int KW, int ICg, int OC, int groups);
dnnl_memory_desc_t dn_md_weights_any(int KH, int KW, int ICg, int OC, int groups,
                                     dnnl_data_type_t dt);
dnnl_memory_desc_t dn_md_1d(int n);   /* f32 [n] */
dnnl_memory_desc_t dn_md_2d(int rows, int cols, dnnl_format_tag_t tag, dnnl_data_type_t dt);

/* Maps a fused activation to a oneDNN eltwise (alg, alpha, beta).  Returns
 * 0 for linear (nothing to do), 1 when mapped, -1 when unsupported.       */
int dn_act_eltwise(gr_act act, float alpha, dnnl_alg_kind_t *alg, float *a, float *b);

/* Output padding for a conv/pool so that oneDNN's size rule gives exactly
 * `out`: returns the bottom/right padding (may be < 0).                     */
int dn_pad_end(int in, int k, int s, int pad_begin, int pad_end, int out);

/* True when the CPU runs bf16 convolutions natively (avx512_core_bf16+). */
int dn_bf16_native(void);

void dn_set(dnnl_memory_t mem, const void *p);

/* The per-kind caches (dnnl_chain.c, dnnl_dense.c, dnnl_backward.c). */
void dn_chain_free(struct dn_chain *c);
int dn_chain_last(const struct dn_chain *c);   /* the chain's last node (tests) */
void dn_dense_free(struct dn_dense *d);
void dn_bwd_free(struct dn_bwd *b);
void dn_tl_free(struct dn_tl *t);
gr_status dn_dense_forward(gr_backend *be, int node, const float *in, float *out, int B,
                           gr_error *err);

#endif
