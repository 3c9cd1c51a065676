/* trainer_impl.h — the trainer's insides, shared by trainer.c (the step)
 * and trainer_dist.c (the data-parallel step); not public.               */
#ifndef GRAFT_TRAINER_IMPL_H
#define GRAFT_TRAINER_IMPL_H
#include "exec/ctx.h"
#include "train/train.h"

struct gr_trainer {
    gr_model *m;
    gr_ctx *ctx;             /* the trainer's execution context (owned) */
    int first, n;            /* trainable layers first .. n-1 */
    gr_trainer_opts o;
    float **act, **dact;     /* per layer (index i - first) */
    float **aux;             /* per layer: the op's training state (dropout mask, batch statistics) */
    float **pre;             /* per layer: the fused activation's input, when its derivative needs it */
    size_t off0, np;         /* trainable parameter range in m->w */
    float *grad, *s1, *s2;   /* np floats each */
    int64_t it;
    gr_rng rng;
    bool reference;          /* the context runs plain-C layers only (GRAFT_REFERENCE) */
    int p_first;             /* the first layer with trainable parameters */
    /* Fused dense step (see dense_step_fused): per layer, whether its kernel
     * gradient is left to the update; per-thread tile buffers.              */
    bool *fuse;              /* per layer: a dense layer large enough to fuse */
    bool *deferred;          /* per layer: this step's kernel gradient is pending */
    float **tile;            /* tile_thr buffers of tile_cap floats */
    int tile_thr;
    size_t tile_cap;
    /* Gradient buffers with a single writer: own_din[j] = layer j's input
     * gradient buffer is written by layer j alone, which then overwrites it
     * (no zeroing, no read-add pass); no_zero[j] = buffer j is such a one. */
    bool *own_din, *no_zero;
    bool *fast_fwd;          /* per layer: this step's forward ran in the backend
                              * (pooling workspace, batch-norm batch statistics) */
    /* Data-parallel step (gr_trainer_step_dist): this rank's rows start at
     * shard_lo of a global batch of shard_total (0 = not sharded).        */
    int shard_lo, shard_total;
    /* Mixed targets (mixup/cutmix, gr_trainer_set_mix): row b's target is
     * lam * y(labels[b]) + (1 - lam) * y(mix_lab[b]); NULL = plain labels. */
    const int *mix_lab;
    float mix_lam;
    double reduce_s;         /* seconds spent in the steps' all-reduce (incl. waiting for peers) */
    int64_t reduce_steps;
};

/* Floats after the gradients in the data-parallel step's buffer. */
#define DIST_EXTRA 3

/* Forward and backward of one batch of B rows (losses divided by div).
 * fuse: large dense kernels leave their gradient to the update.           */
gr_status gr_trainer_batch_gradients(gr_trainer *t, const float *x, const int *labels, int B, int div,
                                     float *loss, int *correct, bool fuse, gr_error *err);
/* The optimizer update of a step whose gradients are in t->grad. */
gr_status gr_trainer_apply_update(gr_trainer *t, const float *x, int B, gr_error *err);
/* Whether any of g[0..n) is Inf or NaN. */
bool gr_grad_nonfinite(const float *g, size_t n);

#endif
