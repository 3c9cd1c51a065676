/* trainer.c — forward (training mode), backward and an optimizer step over
 * the trainable tail of a model: layers first .. n-1.  Its input is the
 * output of layer first-1 (the cut), so a frozen base never runs here.
 *
 * Memory: one activation and one gradient buffer per trainable layer, sized
 * for max_batch, allocated once; the parameter gradients and optimizer
 * state cover only the trainable suffix of the one parameter allocation
 * (parameters are stored in layer order, so it is one contiguous range).  */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backend/backend.h"
#include "dist/dist.h"
#include "exec/ctx.h"
#include "train/train.h"

struct gr_trainer {
    gr_model *m;
    gr_ctx *ctx;             /* the trainer's execution context (owned) */
    int first, n;            /* trainable layers first .. n-1 */
    gr_trainer_opts o;
    float **act, **dact;     /* per layer (index i - first) */
    float **mask;            /* dropout masks */
    float **bmean, **bvar;   /* batch-norm batch statistics (training form) */
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
    double reduce_s;         /* seconds spent in the steps' all-reduce (incl. waiting for peers) */
    int64_t reduce_steps;
};

/* A dense kernel of at least this many weights is updated by the fused
 * path: below it the gradient buffer stays in cache and fusing gains nothing. */
#define FUSE_MIN_WEIGHTS ((int64_t)1 << 18)
/* A tile of the fused path covers whole kernel rows, about this many weights
 * (256 KB: the tile's gradient stays in the core's L2 while it is applied). */
#define FUSE_TILE_WEIGHTS 65536
/* Floats after the gradients in the data-parallel step's buffer. */
#define DIST_EXTRA 3

static int64_t node_out(const gr_model *m, int i) { return gr_node_size(m, i); }

void gr_trainer_free(gr_trainer *t) {
    if (!t) return;
    gr_ctx_free(t->ctx);
    int k = t->n - t->first;
    for (int j = 0; j < k; j++) {
        if (t->act) free(t->act[j]);
        if (t->dact) free(t->dact[j]);
        if (t->mask) free(t->mask[j]);
        if (t->bmean) free(t->bmean[j]);
        if (t->bvar) free(t->bvar[j]);
    }
    free(t->act); free(t->dact); free(t->mask); free(t->bmean); free(t->bvar);
    free(t->grad); free(t->s1); free(t->s2);
    if (t->tile)
        for (int j = 0; j < t->tile_thr; j++) free(t->tile[j]);
    free(t->tile); free(t->fuse); free(t->deferred);
    free(t->own_din); free(t->no_zero); free(t->fast_fwd);
    free(t);
}

gr_trainer *gr_trainer_new(gr_model *m, int first, const gr_trainer_opts *o, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (first < 0 || first >= m->n_nodes) {
        gr_error_set(err, GR_ERR_ARG, "trainer: first trainable layer %d of %d", first, m->n_nodes);
        return NULL;
    }
    if (o->max_batch <= 0) {
        gr_error_set(err, GR_ERR_ARG, "trainer: batch size %d must be positive", o->max_batch);
        return NULL;
    }
    if (!(o->optim.lr > 0) || o->optim.decay < 0 || o->optim.momentum < 0 || o->optim.momentum >= 1) {
        gr_error_set(err, GR_ERR_ARG, "optimizer: lr %g must be > 0, decay %g >= 0, momentum %g in [0, 1)",
                     o->optim.lr, o->optim.decay, o->optim.momentum);
        return NULL;
    }
    if (o->label_smoothing < 0 || o->label_smoothing >= 1) {
        gr_error_set(err, GR_ERR_ARG, "label smoothing %g must be in [0, 1)", o->label_smoothing);
        return NULL;
    }
    const gr_node *last = &m->nodes[m->n_nodes - 1];
    if (!(last->s.op == GR_OP_SOFTMAX || (last->s.op == GR_OP_DENSE && last->s.act == GR_ACT_SOFTMAX) ||
          (last->s.op == GR_OP_ACTIVATION && last->s.act == GR_ACT_SOFTMAX))) {
        gr_error_set(err, GR_ERR_ARG,
                     "the model's last layer '%s' must end in softmax for categorical cross-entropy",
                     last->s.name);
        return NULL;
    }
    for (int i = first; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] < first - 1) {
                gr_error_set(err, GR_ERR_UNSUPPORTED,
                             "trainable layer '%s' reads layer '%s', below the first trainable layer's input",
                             m->nodes[i].s.name, gr_model_layer_name(m, m->nodes[i].in[k]));
                return NULL;
            }
    gr_trainer *t = gr_calloc(1, sizeof *t, err);
    if (!t) return NULL;
    t->m = m; t->first = first; t->n = m->n_nodes; t->o = *o;
    gr_rng_seed(&t->rng, o->seed ^ 0x5eedULL);
    if (!(t->ctx = gr_ctx_new(m, err))) goto fail;
    gr_ctx_set_training(t->ctx, first);   /* layers first.. change every step */
    t->reference = gr_ctx_reference(t->ctx);
    int k = t->n - first;
    t->act = gr_calloc((size_t)k, sizeof(float *), err);
    t->dact = gr_calloc((size_t)k, sizeof(float *), err);
    t->mask = gr_calloc((size_t)k, sizeof(float *), err);
    t->bmean = gr_calloc((size_t)k, sizeof(float *), err);
    t->bvar = gr_calloc((size_t)k, sizeof(float *), err);
    if (!t->act || !t->dact || !t->mask || !t->bmean || !t->bvar) goto fail;
    size_t B = (size_t)o->max_batch;
    for (int i = first; i < t->n; i++) {
        size_t sz = B * (size_t)node_out(m, i);
        int j = i - first;
        if (!(t->act[j] = gr_malloc(sz * sizeof(float), err))) goto fail;
        if (!(t->dact[j] = gr_malloc(sz * sizeof(float), err))) goto fail;
        if (m->nodes[i].s.op == GR_OP_DROPOUT && !(t->mask[j] = gr_malloc(sz * sizeof(float), err)))
            goto fail;
        if (m->nodes[i].s.op == GR_OP_BATCHNORM) {
            if (!(t->bmean[j] = gr_calloc((size_t)m->nodes[i].oc, sizeof(float), err))) goto fail;
            if (!(t->bvar[j] = gr_calloc((size_t)m->nodes[i].oc, sizeof(float), err))) goto fail;
        }
        m->nodes[i].frozen = false;
    }
    for (int i = 0; i < first; i++) m->nodes[i].frozen = true;
    t->p_first = t->n;
    for (int i = first; i < t->n && t->p_first == t->n; i++)
        for (int p = m->nodes[i].p0; p < m->nodes[i].p0 + m->nodes[i].np; p++) {
            if (!gr_param_is_statistic(m->params[p].kind)) {
                t->p_first = i;
                break;
            }
        }
    int p0 = m->nodes[first].p0;
    t->off0 = p0 < m->n_params ? m->params[p0].offset : m->w_count;
    t->np = m->w_count - t->off0;
    /* + DIST_EXTRA floats: the data-parallel step reduces its loss sum, correct
     * count and stop flag in the same buffer as the gradients */
    if (!(t->grad = gr_calloc(t->np + DIST_EXTRA, sizeof(float), err))) goto fail;
    if (!(t->s1 = gr_calloc(t->np, sizeof(float), err))) goto fail;
    if (o->optim.kind != GR_OPTIM_SGD && !(t->s2 = gr_calloc(t->np, sizeof(float), err))) goto fail;
    if (!(t->fuse = gr_calloc((size_t)k, sizeof(bool), err))) goto fail;
    if (!(t->deferred = gr_calloc((size_t)k, sizeof(bool), err))) goto fail;
    for (int i = t->p_first; i < t->n && !t->reference; i++) {
        const gr_node *n = &m->nodes[i];
        int pk = gr_node_param(m, i, "kernel");
        if (n->s.op != GR_OP_DENSE || pk < 0 || m->params[pk].count < (size_t)FUSE_MIN_WEIGHTS) continue;
        t->fuse[i - first] = true;
        size_t out = (size_t)n->oc, rows = out >= FUSE_TILE_WEIGHTS ? 1 : FUSE_TILE_WEIGHTS / out;
        if (rows * out > t->tile_cap) t->tile_cap = rows * out;
    }
    if (!(t->own_din = gr_calloc((size_t)k, sizeof(bool), err))) goto fail;
    if (!(t->no_zero = gr_calloc((size_t)k, sizeof(bool), err))) goto fail;
    if (!(t->fast_fwd = gr_calloc((size_t)k, sizeof(bool), err))) goto fail;
    /* a buffer read by exactly one input slot of one layer, which has one input */
    for (int p = t->p_first; p < t->n - 1 && !t->reference; p++) {
        int uses = 0, user = -1;
        for (int i = p + 1; i < t->n; i++)
            for (int q = 0; q < m->nodes[i].n_in; q++)
                if (m->nodes[i].in[q] == p) uses++, user = i;
        if (uses == 1 && m->nodes[user].n_in == 1) {
            t->own_din[user - first] = true;
            t->no_zero[p - first] = true;
        }
    }
    if (t->tile_cap > 0) {
        t->tile_thr = omp_get_max_threads();
        if (!(t->tile = gr_calloc((size_t)t->tile_thr, sizeof(float *), err))) goto fail;
        for (int j = 0; j < t->tile_thr; j++)
            if (!(t->tile[j] = gr_malloc(t->tile_cap * sizeof(float), err))) goto fail;
    }
    return t;
fail:
    gr_trainer_free(t);
    return NULL;
}

int64_t gr_trainer_iterations(const gr_trainer *t) { return t->it; }

gr_ctx *gr_trainer_ctx(gr_trainer *t) { return t->ctx; }

/* The fast path to offer layers to, or NULL (plain-C layers only). */
static gr_backend *fast(const gr_trainer *t) { return gr_ctx_backend(t->ctx); }

static const float *input_of(const gr_trainer *t, int i, int k, const float *x) {
    int j = t->m->nodes[i].in[k];
    return j == t->first - 1 ? x : t->act[j - t->first];
}

/* The gradient buffer of node i's k-th input, or NULL when nothing needs it:
 * below p_first no layer has trainable parameters (e.g. the standardize and
 * flatten layers in front of the head), so no gradient flows there.       */
static float *grad_of(gr_trainer *t, int i, int k) {
    int j = t->m->nodes[i].in[k];
    return j < t->p_first ? NULL : t->dact[j - t->first];
}

static float *pgrad(gr_trainer *t, int p) { return p < 0 ? NULL : t->grad + (t->m->params[p].offset - t->off0); }
static float *pdata(gr_trainer *t, int p) { return p < 0 ? NULL : gr_param_data(t->m, p); }

static bool softmax_last(const gr_node *n) {
    return n->s.op == GR_OP_SOFTMAX || n->s.act == GR_ACT_SOFTMAX;
}

/* Forward of layer i in training mode.  The fast path serves the layers it
 * has; GR_ERR_UNSUPPORTED from it means the plain-C layer runs instead, any
 * other failure (oneDNN, out of memory) is returned.                       */
static gr_status forward(gr_trainer *t, int i, const float *x, int B, gr_error *err) {
    gr_model *m = t->m;
    gr_node *n = &m->nodes[i];
    const gr_layer_spec *s = &n->s;
    float *out = t->act[i - t->first];
    const float *in = input_of(t, i, 0, x);
    int64_t osz = (int64_t)B * node_out(m, i), isz = (int64_t)B * n->ih * n->iw * n->ic;
    int64_t rows = (int64_t)B * n->oh * n->ow;
    gr_backend *fp = fast(t);
    gr_status st;
    if (s->op == GR_OP_DENSE && fp) {
        /* out = in W (+ b) by the one GEMM entry; the activation follows below */
        int pb = gr_node_param(m, i, "bias");
        st = gr_gemm(false, false, B, n->oc, n->ic, 1.0f, in, n->ic, pdata(t, gr_node_param(m, i, "kernel")),
                     n->oc, 0.0f, out, n->oc, err);
        if (st != GR_OK) return st;
        if (pb >= 0) {
            const float *bias = pdata(t, pb);
            for (int b = 0; b < B; b++)
                for (int o = 0; o < n->oc; o++) out[(size_t)b * n->oc + o] += bias[o];
        }
        goto activation;
    }
    if (s->op == GR_OP_CONV2D && fp) {
        /* the fast path computes the layer with its fused activation */
        st = gr_backend_forward(fp, i, &in, out, B, err);
        if (st != GR_ERR_UNSUPPORTED) return st;
    }
    switch (s->op) {
    case GR_OP_CONV2D: {
        gr_conv_dims d = gr_node_conv_dims(m, i, B);
        gr_conv2d_forward(out, in, pdata(t, gr_node_param(m, i, "kernel")),
                          pdata(t, gr_node_param(m, i, "bias")), &d);
        break;
    }
    case GR_OP_DENSE:
        gr_dense_forward(out, in, pdata(t, gr_node_param(m, i, "kernel")),
                         pdata(t, gr_node_param(m, i, "bias")), B, n->ic, n->oc);
        break;
    case GR_OP_BATCHNORM: {
        float *g = gr_param_data(m, n->p0), *be = gr_param_data(m, n->p0 + 1);
        float *mm = gr_param_data(m, n->p0 + 2), *mv = gr_param_data(m, n->p0 + 3);
        if (t->o.bn_train) {
            int j = i - t->first;
            st = fp ? gr_backend_batchnorm_forward_train(fp, i, in, out, B, t->bmean[j], t->bvar[j], err)
                    : GR_ERR_UNSUPPORTED;
            if (st != GR_OK && st != GR_ERR_UNSUPPORTED) return st;
            t->fast_fwd[j] = st == GR_OK;
            if (!t->fast_fwd[j])
                gr_batchnorm_forward_train(out, in, g, be, s->eps, rows, n->oc, t->bmean[j], t->bvar[j]);
            double unb = rows > 1 ? (double)rows / (double)(rows - 1) : 1.0;
            for (int c = 0; c < n->oc; c++) {
                mm[c] = s->momentum * mm[c] + (1 - s->momentum) * t->bmean[j][c];
                mv[c] = s->momentum * mv[c] + (1 - s->momentum) * (float)(t->bvar[j][c] * unb);
            }
        } else {
            gr_batchnorm_forward(out, in, g, be, mm, mv, s->eps, rows, n->oc);
        }
        return GR_OK;
    }
    case GR_OP_ACTIVATION:
        if (s->act == GR_ACT_SOFTMAX) gr_softmax_forward(out, in, rows, n->oc);
        else gr_act_forward(out, in, (size_t)osz, s->act, s->alpha);
        return GR_OK;
    case GR_OP_MAXPOOL:
    case GR_OP_AVGPOOL: {
        int j = i - t->first;
        st = fp ? gr_backend_pool_forward_train(fp, i, in, out, B, err) : GR_ERR_UNSUPPORTED;
        if (st != GR_OK && st != GR_ERR_UNSUPPORTED) return st;
        t->fast_fwd[j] = st == GR_OK;
        if (t->fast_fwd[j]) return GR_OK;
        gr_pool_dims d = gr_node_pool_dims(m, i, B);
        if (s->op == GR_OP_MAXPOOL) gr_maxpool_forward(out, in, &d);
        else gr_avgpool_forward(out, in, &d);
        return GR_OK;
    }
    case GR_OP_GLOBAL_AVGPOOL: gr_gap_forward(out, in, B, n->ih * n->iw, n->ic); return GR_OK;
    case GR_OP_SOFTMAX: gr_softmax_forward(out, in, rows, n->oc); return GR_OK;
    case GR_OP_DROPOUT: {
        float *mask = t->mask[i - t->first];
        float keep = 1.0f - s->rate, scale = keep > 0 ? 1.0f / keep : 0.0f;
        int64_t per = isz / (B > 0 ? B : 1);   /* sharded: the draws of the global batch's other rows are skipped */
        for (int64_t k = 0; t->shard_total && k < (int64_t)t->shard_lo * per; k++) gr_rng_uniform(&t->rng);
        for (int64_t k = 0; k < isz; k++) mask[k] = gr_rng_uniform(&t->rng) < keep ? scale : 0.0f;
        for (int64_t k = 0; t->shard_total && k < (int64_t)(t->shard_total - t->shard_lo - B) * per; k++)
            gr_rng_uniform(&t->rng);
        gr_dropout_forward(out, in, mask, (size_t)isz);
        return GR_OK;
    }
    case GR_OP_ADD: {
        const float *ins[GR_MAX_INPUTS];
        for (int k = 0; k < n->n_in; k++) ins[k] = input_of(t, i, k, x);
        gr_add_forward(out, ins, n->n_in, (size_t)osz);
        break;
    }
    case GR_OP_CONCAT: {
        const float *ins[GR_MAX_INPUTS];
        int cs[GR_MAX_INPUTS];
        for (int k = 0; k < n->n_in; k++) {
            ins[k] = input_of(t, i, k, x);
            cs[k] = (int)(gr_node_size(m, n->in[k]) / (n->oh * n->ow));
        }
        gr_concat_forward(out, ins, cs, n->n_in, rows);
        return GR_OK;
    }
    case GR_OP_STANDARDIZE:
        gr_standardize_forward(out, in, gr_param_data(m, n->p0), gr_param_data(m, n->p0 + 1), B,
                               (int)(isz / B));
        return GR_OK;
    case GR_OP_FLATTEN:
    default:
        memcpy(out, in, (size_t)isz * sizeof(float));
        return GR_OK;
    }
activation:   /* fused activation of conv / dense / add */
    if (s->act == GR_ACT_SOFTMAX) gr_softmax_forward(out, out, rows, n->oc);
    else if (s->act != GR_ACT_LINEAR) gr_act_forward(out, out, (size_t)osz, s->act, s->alpha);
    return GR_OK;
}

/* dy <- dy * act'(.) computed from the activation's output y (in place). */
static void fused_act_backward(float *dy, const float *y, size_t n, gr_act act, float alpha) {
    switch (act) {
    case GR_ACT_RELU:   /* the common case, over whole conv activations: elementwise, split over threads */
#pragma omp parallel for simd schedule(static) if (parallel: n > 262144)
        for (size_t k = 0; k < n; k++) dy[k] = y[k] > 0 ? dy[k] : 0.0f;
        break;
    case GR_ACT_LEAKY: for (size_t k = 0; k < n; k++) if (!(y[k] > 0)) dy[k] *= alpha; break;
    case GR_ACT_RELU6: for (size_t k = 0; k < n; k++) if (!(y[k] > 0 && y[k] < 6)) dy[k] = 0; break;
    case GR_ACT_SIGMOID: for (size_t k = 0; k < n; k++) dy[k] *= y[k] * (1 - y[k]); break;
    case GR_ACT_TANH: for (size_t k = 0; k < n; k++) dy[k] *= 1 - y[k] * y[k]; break;
    default: break;
    }
}

/* The fast path's part of the backward of layer i (see backward), din
 * overwritten when ow: GR_OK when it did the layer, GR_ERR_UNSUPPORTED when
 * the plain-C layer must (it lacks the layer, or the forward was not its),
 * else the failure.                                                        */
static gr_status backward_fast(gr_trainer *t, int i, const float *x, int B, bool logits, bool fuse, bool ow,
                               gr_error *err) {
    gr_backend *fp = fast(t);
    if (!fp) return GR_ERR_UNSUPPORTED;
    const gr_model *m = t->m;
    const gr_node *n = &m->nodes[i];
    const gr_layer_spec *s = &n->s;
    int j = i - t->first;
    float *dy = t->dact[j], *din = grad_of(t, i, 0);
    const float *in = input_of(t, i, 0, x);
    if (s->op == GR_OP_DENSE || s->op == GR_OP_CONV2D) {
        int pk = gr_node_param(m, i, "kernel"), pb = gr_node_param(m, i, "bias");
        /* a fused layer's kernel gradient is computed tile by tile as it is applied */
        bool defer = fuse && t->fuse[j];
        gr_status st = s->op == GR_OP_DENSE
                           ? gr_backend_dense_backward(fp, i, dy, in, B, din, defer ? NULL : pgrad(t, pk),
                                                       pgrad(t, pb), err)
                           : gr_backend_conv2d_backward_ow(fp, i, dy, in, B, din, ow, pgrad(t, pk),
                                                           pgrad(t, pb), err);
        if (st == GR_OK) t->deferred[j] = defer;
        /* the plain-C layer accumulates into a kernel gradient that was not zeroed */
        else if (st == GR_ERR_UNSUPPORTED && defer) memset(pgrad(t, pk), 0, m->params[pk].count * sizeof(float));
        return st;
    }
    if ((s->op == GR_OP_MAXPOOL || s->op == GR_OP_AVGPOOL) && din && t->fast_fwd[j])
        return gr_backend_pool_backward(fp, i, dy, in, B, din, ow, err);
    if (s->op == GR_OP_BATCHNORM && din && (!t->o.bn_train || t->fast_fwd[j]))
        return gr_backend_batchnorm_backward(fp, i, dy, in, B, t->o.bn_train ? t->bmean[j] : NULL,
                                             t->o.bn_train ? t->bvar[j] : NULL, din, ow, pgrad(t, n->p0),
                                             pgrad(t, n->p0 + 1), err);
    if (s->op == GR_OP_ACTIVATION && s->act != GR_ACT_SOFTMAX && !logits && din)
        return gr_backend_act_backward(fp, i, dy, in, B, din, ow, err);
    return GR_ERR_UNSUPPORTED;
}

/* Backward of layer i: dact[i] holds dL/d(output) (or dL/d(logits) for the
 * final softmax, see `logits`).                                             */
static gr_status backward(gr_trainer *t, int i, const float *x, int B, bool logits, bool fuse, gr_error *err) {
    gr_model *m = t->m;
    gr_node *n = &m->nodes[i];
    const gr_layer_spec *s = &n->s;
    int j = i - t->first;
    float *dy = t->dact[j];
    const float *y = t->act[j];
    const float *in = input_of(t, i, 0, x);
    float *din = grad_of(t, i, 0);
    int64_t osz = (int64_t)B * node_out(m, i), isz = (int64_t)B * n->ih * n->iw * n->ic;
    int64_t rows = (int64_t)B * n->oh * n->ow;
    if (s->op == GR_OP_CONV2D || s->op == GR_OP_DENSE || s->op == GR_OP_ADD) {
        if (s->act == GR_ACT_SOFTMAX) {
            if (!logits) gr_softmax_backward(dy, y, rows, n->oc, dy);  /* not reached: softmax is last */
        } else {
            fused_act_backward(dy, y, (size_t)osz, s->act, s->alpha);
        }
    }
    /* din is this layer's alone: overwritten by the backend paths below, else
     * zeroed here for the accumulating ones */
    bool ow = din && t->own_din[j];
    if (ow && s->op == GR_OP_DENSE) {
        memset(din, 0, (size_t)isz * sizeof(float));
        ow = false;
    }
    gr_status st = backward_fast(t, i, x, B, logits, fuse, ow, err);
    if (st != GR_ERR_UNSUPPORTED) return st;
    if (ow) memset(din, 0, (size_t)isz * sizeof(float));
    switch (s->op) {
    case GR_OP_CONV2D: {
        gr_conv_dims d = gr_node_conv_dims(m, i, B);
        int pk = gr_node_param(m, i, "kernel"), pb = gr_node_param(m, i, "bias");
        gr_conv2d_backward(dy, in, pdata(t, pk), &d, din, pgrad(t, pk), pgrad(t, pb));
        break;
    }
    case GR_OP_DENSE: {
        int pk = gr_node_param(m, i, "kernel"), pb = gr_node_param(m, i, "bias");
        gr_dense_backward(dy, in, pdata(t, pk), B, n->ic, n->oc, din, pgrad(t, pk), pgrad(t, pb));
        break;
    }
    case GR_OP_BATCHNORM: {
        float *g = gr_param_data(m, n->p0);
        float *dg = pgrad(t, n->p0), *db = pgrad(t, n->p0 + 1);
        if (t->o.bn_train)
            gr_batchnorm_backward_train(dy, in, g, t->bmean[j], t->bvar[j], s->eps, rows, n->oc,
                                        din, dg, db);
        else
            gr_batchnorm_backward(dy, in, g, gr_param_data(m, n->p0 + 2), gr_param_data(m, n->p0 + 3),
                                  s->eps, rows, n->oc, din, dg, db);
        break;
    }
    case GR_OP_ACTIVATION:
    case GR_OP_SOFTMAX:
        if (!din) break;
        if (logits) {
            for (int64_t k = 0; k < osz; k++) din[k] += dy[k];
        } else if (s->op == GR_OP_SOFTMAX || s->act == GR_ACT_SOFTMAX) {
            gr_softmax_backward(dy, y, rows, n->oc, din);
        } else {
            gr_act_backward(dy, in, y, (size_t)osz, s->act, s->alpha, din);
        }
        break;
    case GR_OP_MAXPOOL: {
        gr_pool_dims d = gr_node_pool_dims(m, i, B);
        if (din) gr_maxpool_backward(dy, in, &d, din);
        break;
    }
    case GR_OP_AVGPOOL: {
        gr_pool_dims d = gr_node_pool_dims(m, i, B);
        if (din) gr_avgpool_backward(dy, &d, din);
        break;
    }
    case GR_OP_GLOBAL_AVGPOOL:
        if (din) gr_gap_backward(dy, B, n->ih * n->iw, n->ic, din);
        break;
    case GR_OP_DROPOUT:
        if (din) gr_dropout_backward(dy, t->mask[j], (size_t)isz, din);
        break;
    case GR_OP_ADD: {
        float *dins[GR_MAX_INPUTS];
        for (int k = 0; k < n->n_in; k++) dins[k] = grad_of(t, i, k);
        gr_add_backward(dy, n->n_in, (size_t)osz, dins);
        break;
    }
    case GR_OP_CONCAT: {
        float *dins[GR_MAX_INPUTS];
        int cs[GR_MAX_INPUTS];
        for (int k = 0; k < n->n_in; k++) {
            dins[k] = grad_of(t, i, k);
            cs[k] = (int)(gr_node_size(m, n->in[k]) / (n->oh * n->ow));
        }
        gr_concat_backward(dy, cs, n->n_in, rows, dins);
        break;
    }
    case GR_OP_STANDARDIZE:
        if (din) gr_standardize_backward(dy, gr_param_data(m, n->p0 + 1), B, (int)(isz / B), din);
        break;
    case GR_OP_FLATTEN:
    default:
        if (din)
            for (int64_t k = 0; k < isz; k++) din[k] += dy[k];
        break;
    }
    return GR_OK;
}

/* The parameter range [lo, hi) of m->w that node i's kernel covers, relative to
 * the trainer's gradient buffer.                                           */
static void kernel_range(const gr_trainer *t, int i, size_t *lo, size_t *hi) {
    const gr_param *q = &t->m->params[gr_node_param(t->m, i, "kernel")];
    *lo = q->offset - t->off0;
    *hi = *lo + q->count;
}

/* Whether any of g[0..n) is Inf or NaN: an exponent of all ones, tested on
 * the bits so that the loop vectorizes; split over threads when large.     */
static bool any_nonfinite(const float *g, size_t n) {
    uint32_t bad = 0;
#pragma omp parallel for simd schedule(static) reduction(| : bad) if (parallel: n > 262144)
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &g[k], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad != 0;
}

/* Forward and backward of one batch.  fuse: large dense kernels leave their
 * gradient to dense_step_fused (t->deferred marks them); their part of
 * t->grad is then neither zeroed nor filled.                              */
static gr_status gradients(gr_trainer *t, const float *x, const int *labels, int B, int div, float *loss,
                           int *correct, bool fuse, gr_error *err) {
    gr_model *m = t->m;
    if (B <= 0 || B > t->o.max_batch)
        return gr_error_set(err, GR_ERR_ARG, "trainer: batch %d (max %d)", B, t->o.max_batch);
    int last = t->n - 1;
    int C = m->nodes[last].oc;
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= C)
            return gr_error_set(err, GR_ERR_ARG, "label %d out of range for %d classes", labels[b], C);
    for (int i = t->first; i < t->n; i++) {
        gr_status st = forward(t, i, x, B, err);
        if (st != GR_OK) return st;
    }
    const float *p = t->act[last - t->first];
    int c1 = 0;
    double l = gr_cross_entropy(p, labels, B, C, t->o.label_smoothing, &c1, NULL) / div;
    if (loss) *loss = (float)l;
    if (correct) *correct = c1;
    if (!isfinite(l) && !t->shard_total)   /* sharded: checked on the sums of all ranks */
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "the loss became %g at iteration %lld: lower the learning rate (now %g)",
                            l, (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    /* zero gradients (the ranges of fused kernels are never read) */
    for (int i = t->p_first; i < t->n; i++)
        if (!t->no_zero[i - t->first])
            memset(t->dact[i - t->first], 0, (size_t)B * (size_t)node_out(m, i) * sizeof(float));
    size_t done = 0;
    for (int i = t->first; i < t->n; i++) {
        t->deferred[i - t->first] = false;
        if (!fuse || !t->fuse[i - t->first]) continue;
        size_t lo, hi;
        kernel_range(t, i, &lo, &hi);
        memset(t->grad + done, 0, (lo - done) * sizeof(float));
        done = hi;
    }
    memset(t->grad + done, 0, (t->np - done) * sizeof(float));
    /* dL/dlogits of softmax + cross-entropy: (p - y) / div (the global batch) */
    float *d = t->dact[last - t->first];
    float ls = t->o.label_smoothing;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float yc = (c == labels[b] ? 1.0f - ls : 0.0f) + ls / C;
            d[(size_t)b * C + c] = (p[(size_t)b * C + c] - yc) / (float)div;
        }
    for (int i = last; i >= t->p_first; i--) {
        gr_status st = backward(t, i, x, B, i == last && softmax_last(&m->nodes[i]), fuse, err);
        if (st != GR_OK) return st;
    }
    /* every gradient computed so far must be finite (fused kernels: checked per tile) */
    if (t->shard_total) return GR_OK;   /* sharded: checked after the all-reduce */
    done = 0;
    bool bad = false;
    for (int i = t->first; i < t->n && !bad; i++) {
        if (!t->deferred[i - t->first]) continue;
        size_t lo, hi;
        kernel_range(t, i, &lo, &hi);
        bad = any_nonfinite(t->grad + done, lo - done);
        done = hi;
    }
    if (bad || any_nonfinite(t->grad + done, t->np - done))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "a non-finite gradient at iteration %lld: lower the learning rate (now %g)",
                            (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    return GR_OK;
}

gr_status gr_trainer_gradients(gr_trainer *t, const float *x, const int *labels, int B,
                               float *loss, int *correct, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return gradients(t, x, labels, B, B, loss, correct, false, err);
}

float *gr_trainer_grad(gr_trainer *t, size_t *offset, size_t *count) {
    *offset = t->off0;
    *count = t->np;
    return t->grad;
}

/* The rate multiplier of parameter q: base layers may learn slower. */
static float lr_mult(const gr_trainer *t, const gr_param *q) {
    return (t->o.head_first > 0 && q->node < t->o.head_first && t->o.base_lr_mult > 0) ? t->o.base_lr_mult
                                                                                        : 1.0f;
}

/* The kernel gradient of dense layer i (W [IN, OUT], dW = in^T dy over the
 * batch) computed a tile of whole rows at a time into a per-thread buffer
 * and applied at once: the gradient never goes to memory, which halves the
 * memory traffic of a step of a large head (W, the optimizer state and the
 * gradient are megabytes; the batch is 32 rows).  Tiles are fixed by the
 * layer's shape, so the result does not depend on the thread count.  A tile
 * with a non-finite gradient is not applied, but tiles before it were: the
 * step then fails with the weights part-updated (fit stops on it).         */
static gr_status dense_step_fused(gr_trainer *t, int i, const float *x, int B, gr_error *err) {
    gr_model *m = t->m;
    const gr_node *n = &m->nodes[i];
    const gr_param *q = &m->params[gr_node_param(m, i, "kernel")];
    int IN = n->ic * n->ih * n->iw, OUT = n->oc;
    int rows = OUT >= FUSE_TILE_WEIGHTS ? 1 : FUSE_TILE_WEIGHTS / OUT;
    int tiles = (IN + rows - 1) / rows;
    const float *in = input_of(t, i, 0, x), *dy = t->dact[i - t->first];
    float *w = m->w + q->offset;
    size_t k0 = q->offset - t->off0;
    float mult = lr_mult(t, q);
    int bad = 0, failed = 0, nthr = t->tile_thr < tiles ? t->tile_thr : tiles;
#pragma omp parallel num_threads(nthr) reduction(| : bad, failed)
    {
        float *g = t->tile[omp_get_thread_num()];
#pragma omp for schedule(static)
        for (int tl = 0; tl < tiles; tl++) {
            int r0 = tl * rows, nr = IN - r0 < rows ? IN - r0 : rows;
            size_t off = (size_t)r0 * (size_t)OUT, cnt = (size_t)nr * (size_t)OUT;
            gr_error e;
            if (gr_gemm(true, false, nr, OUT, B, 1.0f, in + r0, IN, dy, OUT, 0.0f, g, OUT, &e) != GR_OK) {
                failed = 1;
                continue;
            }
            if (any_nonfinite(g, cnt)) {
                bad = 1;
                continue;
            }
            gr_optim_update(&t->o.optim, t->it, mult, w + off, g, t->s1 + k0 + off,
                            t->s2 ? t->s2 + k0 + off : NULL, cnt);
        }
    }
    if (failed)
        return gr_error_set(err, GR_ERR_BACKEND, "sgemm for the gradient of layer '%s' failed", n->s.name);
    if (bad)
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "a non-finite gradient at iteration %lld (layer '%s'): lower the learning rate (now %g)",
                            (long long)t->it, n->s.name, gr_optim_lr(&t->o.optim, t->it));
    return GR_OK;
}

static gr_status apply_update(gr_trainer *t, const float *x, int B, gr_error *err);

gr_status gr_trainer_step(gr_trainer *t, const float *x, const int *labels, int B, float *loss,
                          int *correct, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_status st = gradients(t, x, labels, B, B, loss, correct, true, err);
    if (st != GR_OK) return st;
    return apply_update(t, x, B, err);
}

/* The update of a step whose gradients are in t->grad (and, for deferred
 * fused kernels, still to be computed from the batch x of B rows).        */
static gr_status apply_update(gr_trainer *t, const float *x, int B, gr_error *err) {
    gr_status st = GR_OK;
    /* per parameter: fixed statistics never move; fused kernels update themselves */
    const gr_model *m = t->m;
    for (int p = m->nodes[t->first].p0; p < m->n_params; p++) {
        const gr_param *q = &m->params[p];
        if (gr_param_is_statistic(q->kind)) continue;
        if (t->deferred[q->node - t->first] && p == gr_node_param(m, q->node, "kernel")) continue;
        size_t k = q->offset - t->off0;
        gr_optim_update(&t->o.optim, t->it, lr_mult(t, q), t->m->w + q->offset, t->grad + k, t->s1 + k,
                        t->s2 ? t->s2 + k : NULL, q->count);
    }
    for (int i = t->first; i < t->n && st == GR_OK; i++)
        if (t->deferred[i - t->first]) st = dense_step_fused(t, i, x, B, err);
    t->it++;
    /* only layers from `first` on changed: caches of the frozen part stay packed */
    if (t->m->w_tail_from != t->first) {
        t->m->w_tail_from = t->first;
        t->m->w_version++;
    }
    t->m->w_tail_version++;
    return st;
}

void gr_trainer_state(gr_trainer *t, float **s1, float **s2, size_t *n, int64_t **it, gr_rng **rng) {
    *s1 = t->s1;
    *s2 = t->s2;
    *n = t->np;
    *it = &t->it;
    *rng = &t->rng;
}

void gr_trainer_set_lr(gr_trainer *t, float lr) { t->o.optim.lr = lr; }

gr_optim *gr_trainer_optim(gr_trainer *t) { return &t->o.optim; }
/* Data-parallel step: the gradients of this rank's rows, scaled for the
 * global batch ((p - y) / total), the batch's loss sum, correct count and
 * flag after them in one buffer, summed over the ranks by one all-reduce;
 * then every rank applies the same update (the fused dense path is off:
 * the whole gradient must exist before the reduction).  Non-finite values
 * are checked on the sums, so every rank fails alike.                     */
gr_status gr_trainer_step_dist(gr_trainer *t, const float *x, const int *labels, int B, int lo, int total,
                               float *loss, int *correct, int *flag, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (total <= 0 || B < 0 || lo < 0 || lo + B > total)
        return gr_error_set(err, GR_ERR_ARG, "trainer: rows [%d, %d) of a global batch of %d", lo, lo + B, total);
    t->shard_lo = lo;
    t->shard_total = total;
    gr_status st = GR_OK;
    float l = 0;
    int c = 0;
    if (B > 0) {
        st = gradients(t, x, labels, B, total, &l, &c, false, err);
    } else {   /* no rows here: a zero gradient, and the dropout draws of the other rows */
        for (int i = t->first; i < t->n; i++) t->deferred[i - t->first] = false;
        memset(t->grad, 0, t->np * sizeof(float));
        for (int i = t->first; i < t->n; i++)
            if (t->m->nodes[i].s.op == GR_OP_DROPOUT)
                for (int64_t k = 0; k < (int64_t)total * node_out(t->m, i); k++) gr_rng_uniform(&t->rng);
    }
    t->shard_lo = t->shard_total = 0;
    if (st != GR_OK) return st;   /* (a local failure: the caller ends the job) */
    float *g = t->grad;
    g[t->np] = l;            /* this rank's loss sum / total */
    g[t->np + 1] = (float)c;
    g[t->np + 2] = (float)(flag ? *flag : 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = gr_dist_sum_f32(g, t->np + DIST_EXTRA, err)) != GR_OK) return st;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    t->reduce_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    t->reduce_steps++;
    if (loss) *loss = g[t->np];
    if (correct) *correct = (int)lrintf(g[t->np + 1]);
    if (flag) *flag = (int)lrintf(g[t->np + 2]);
    if (!isfinite(g[t->np]))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "the loss became %g at iteration %lld: lower the learning rate (now %g)",
                            (double)g[t->np], (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    if (any_nonfinite(g, t->np))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "a non-finite gradient at iteration %lld: lower the learning rate (now %g)",
                            (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    return apply_update(t, x, B, err);
}

double gr_trainer_reduce_seconds(const gr_trainer *t, int64_t *steps, size_t *floats) {
    if (steps) *steps = t->reduce_steps;
    if (floats) *floats = t->np + DIST_EXTRA;
    return t->reduce_s;
}
