/* ctx.h — the execution context (graft.h: gr_ctx): what running a model
 * needs, kept apart from the model so that a model is only its graph and
 * its weights and one model can be run by several threads at once, each
 * through its own context.  A context holds
 *   - the fast path's state (backend.h: per node, oneDNN primitives and
 *     packed weights; the buffers the backward nets share),
 *   - the executor's activation buffers (exec.c),
 *   - the precision it runs at and whether the plain-C reference layers are
 *     asked for (GRAFT_REFERENCE, read once, when the context is made),
 *   - whether 3x3 convolutions may use Winograd (GRAFT_WINOGRAD=0: no,
 *     read once, when the context is made; direct convolutions round like
 *     the reference layers, Winograd to ~1e-5 relative),
 *   - which nodes a trainer updates every step (trainer.c sets it).
 * It reads the model's weights at every run: new weights are picked up
 * (packed again) by themselves; nodes added or removed drop every cache.  */
#ifndef GRAFT_CTX_H
#define GRAFT_CTX_H
#include "graph/model.h"
#include "backend/backend.h"

struct gr_workspace;

struct gr_ctx {
    const gr_model *m;
    uint64_t g_version;        /* m->g_version the caches were made for */
    bool reference;            /* plain-C layers only (GRAFT_REFERENCE at gr_ctx_new) */
    bool winograd;             /* Winograd 3x3 convolutions allowed (GRAFT_WINOGRAD != 0) */
    gr_precision precision;
    int train_from;            /* a trainer updates nodes >= train_from (-1: none) */
    gr_backend *be;            /* the fast path's state; NULL with reference */
    struct gr_workspace *ws;   /* the executor's activation buffers, grown on demand */
};

/* Brings the caches up to date with the model (after nodes were added or
 * removed, all of them are dropped).  Every run starts with it.           */
gr_status gr_ctx_sync(gr_ctx *c, gr_error *err);
/* The backend to offer nodes to, or NULL: plain-C layers only.  After
 * gr_ctx_sync.                                                             */
static inline gr_backend *gr_ctx_backend(const gr_ctx *c) { return c->reference ? NULL : c->be; }
static inline bool gr_ctx_reference(const gr_ctx *c) { return c->reference; }
static inline const gr_model *gr_ctx_model(const gr_ctx *c) { return c->m; }
/* A trainer updates nodes >= from every step (from < 0: none): the fast
 * path then picks algorithms whose weight packing is cheap there.        */
void gr_ctx_set_training(gr_ctx *c, int from);

/* Runs layers from..upto in inference mode; x is the output of layer
 * from-1 (the model input when from = 0).  out: B * size of layer upto.   */
gr_status gr_ctx_run(gr_ctx *c, int from, const float *x, int B, int upto, float *out, gr_error *err);

/* Runs one node in inference mode (fast path, else the reference layer).
 * ins[k] are the node's inputs, out its output, for a batch of B.         */
gr_status gr_node_forward_infer(gr_ctx *c, int node, const float *const *ins, float *out, int B,
                                gr_error *err);

/* exec.c: frees the executor's activation buffers (NULL is fine). */
void gr_workspace_free(struct gr_workspace *ws);

#endif
