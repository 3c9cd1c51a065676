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
#include "backend/backend.h"
#include "ops/attention.h"
#include "train/trainer_impl.h"

/* A dense kernel of at least this many weights is updated by the fused
 * path: below it the gradient buffer stays in cache and fusing gains nothing. */
#define FUSE_MIN_WEIGHTS ((int64_t)1 << 18)
/* A tile of the fused path covers whole kernel rows, about this many weights
 * (256 KB: the tile's gradient stays in the core's L2 while it is applied). */
#define FUSE_TILE_WEIGHTS 65536

static int64_t node_out(const gr_model *m, int i) { return gr_node_size(m, i); }

void gr_trainer_free(gr_trainer *t) {
    if (!t) return;
    gr_ctx_free(t->ctx);
    int k = t->n - t->first;
    for (int j = 0; j < k; j++) {
        if (t->act) free(t->act[j]);
        if (t->dact) free(t->dact[j]);
        if (t->aux) free(t->aux[j]);
        if (t->pre) free(t->pre[j]);
    }
    free(t->act); free(t->dact); free(t->aux); free(t->pre);
    free(t->grad); free(t->s1); free(t->s2);
    if (t->tile)
        for (int j = 0; j < t->tile_thr; j++) free(t->tile[j]);
    free(t->tile); free(t->fuse); free(t->deferred);
    free(t->own_din); free(t->no_zero); free(t->fast_fwd);
    free(t);
}

/* The trainer's arguments: the layers from `first` on must be trainable
 * alone, the model must end in softmax, the options must make sense.     */
static gr_status check_args(const gr_model *m, int first, const gr_trainer_opts *o, gr_error *err) {
    if (first < 0 || first >= m->n_nodes)
        return gr_error_set(err, GR_ERR_ARG, "trainer: first trainable layer %d of %d", first, m->n_nodes);
    if (o->max_batch <= 0)
        return gr_error_set(err, GR_ERR_ARG, "trainer: batch size %d must be positive", o->max_batch);
    if (!(o->optim.lr > 0) || o->optim.decay < 0 || o->optim.momentum < 0 || o->optim.momentum >= 1)
        return gr_error_set(err, GR_ERR_ARG, "optimizer: lr %g must be > 0, decay %g >= 0, momentum %g in [0, 1)",
                            o->optim.lr, o->optim.decay, o->optim.momentum);
    if (o->label_smoothing < 0 || o->label_smoothing >= 1)
        return gr_error_set(err, GR_ERR_ARG, "label smoothing %g must be in [0, 1)", o->label_smoothing);
    const gr_node *last = &m->nodes[m->n_nodes - 1];
    if (!(last->s.op == GR_OP_SOFTMAX || (last->s.op == GR_OP_DENSE && last->s.act == GR_ACT_SOFTMAX) ||
          (last->s.op == GR_OP_ACTIVATION && last->s.act == GR_ACT_SOFTMAX)))
        return gr_error_set(err, GR_ERR_ARG,
                            "the model's last layer '%s' must end in softmax for categorical cross-entropy",
                            last->s.name);
    for (int i = first; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] < first - 1)
                return gr_error_set(err, GR_ERR_UNSUPPORTED,
                                    "trainable layer '%s' reads layer '%s', below the first trainable layer's input",
                                    m->nodes[i].s.name, gr_model_layer_name(m, m->nodes[i].in[k]));
    return GR_OK;
}

gr_trainer *gr_trainer_new(gr_model *m, int first, const gr_trainer_opts *o, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (check_args(m, first, o, err) != GR_OK) return NULL;
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
    t->aux = gr_calloc((size_t)k, sizeof(float *), err);
    t->pre = gr_calloc((size_t)k, sizeof(float *), err);
    if (!t->act || !t->dact || !t->aux || !t->pre) goto fail;
    size_t B = (size_t)o->max_batch;
    for (int i = first; i < t->n; i++) {
        size_t sz = B * (size_t)node_out(m, i);
        int j = i - first;
        if (!(t->act[j] = gr_malloc(sz * sizeof(float), err))) goto fail;
        if (!(t->dact[j] = gr_malloc(sz * sizeof(float), err))) goto fail;
        const float *none[GR_MAX_INPUTS] = {NULL};
        gr_op_run r = gr_node_run(m, i, o->max_batch, none);
        size_t na = gr_op_aux_floats(r.s, r.in, &r.out, o->max_batch), npre = gr_op_pre_floats(r.s, &r.out, o->max_batch);
        if (na && !(t->aux[j] = gr_calloc(na, sizeof(float), err))) goto fail;
        if (npre && !(t->pre[j] = gr_calloc(npre, sizeof(float), err))) goto fail;
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

static bool softmax_last(const gr_node *n) {
    return n->s.op == GR_OP_SOFTMAX || n->s.act == GR_ACT_SOFTMAX;
}

/* The op-table view of trainable node i for a batch of B. */
static gr_op_run run_of(gr_trainer *t, int i, const float *x, int B) {
    const gr_node *n = &t->m->nodes[i];
    const float *ins[GR_MAX_INPUTS];
    for (int k = 0; k < n->n_in; k++) ins[k] = input_of(t, i, k, x);
    gr_op_run r = gr_node_run(t->m, i, B, ins);
    /* batch statistics only when asked (else frozen statistics, Keras' training=False) */
    r.training = !(gr_op_get(n->s.op)->flags & GR_OPF_BATCH_STATS) || t->o.bn_train;
    r.aux = t->aux[i - t->first];
    r.pre = t->pre[i - t->first];
    r.rng = &t->rng;
    r.shard_lo = t->shard_lo;
    r.shard_total = t->shard_total;
    return r;
}

/* The backend's training forward of node i, when its op has one: GR_OK
 * when it ran, GR_ERR_UNSUPPORTED when the plain-C op must run instead, else
 * the backend's failure (oneDNN, out of memory), which the step returns.
 * Dense: one GEMM (+ bias), then the activation; conv: the fused
 * primitive; pools and batch norm (batch statistics) keep what their
 * backward needs (t->fast_fwd).                                            */
static gr_status forward_fast(gr_trainer *t, int i, const gr_op_run *r, float *out, gr_error *err) {
    gr_backend *fp = fast(t);
    const gr_node *n = &t->m->nodes[i];
    int j = i - t->first, B = r->B;
    gr_status st;
    switch (gr_op_get(n->s.op)->fast) {
    case GR_FAST_DENSE:
        st = gr_gemm(false, false, B, n->oc, n->ic, 1.0f, r->ins[0], n->ic, r->p[0], n->oc, 0.0f, out, n->oc, err);
        if (st != GR_OK) return st;
        if (r->p[1])
            for (int b = 0; b < B; b++)
                for (int o = 0; o < n->oc; o++) out[(size_t)b * n->oc + o] += r->p[1][o];
        gr_op_act_forward(r, out);
        return GR_OK;
    case GR_FAST_CONV:
        /* the fused post-op does not keep the activation's input, which the
         * backward of swish / hardswish / gelu needs: the plain-C op keeps it */
        if (r->pre && gr_act_needs_input(n->s.act)) return GR_ERR_UNSUPPORTED;
        return gr_backend_forward(fp, i, r->ins, out, B, err);
    case GR_FAST_BATCHNORM:
        if (!r->training) return GR_ERR_UNSUPPORTED;
        st = gr_backend_batchnorm_forward_train(fp, i, r->ins[0], out, B, r->aux, r->aux + n->oc, err);
        t->fast_fwd[j] = st == GR_OK;
        if (t->fast_fwd[j])
            gr_batchnorm_running_update(r->p[2], r->p[3], r->aux, r->aux + n->oc, n->s.momentum,
                                        (int64_t)B * n->oh * n->ow, n->oc);
        return st;
    case GR_FAST_POOL:
        st = gr_backend_pool_forward_train(fp, i, r->ins[0], out, B, err);
        t->fast_fwd[j] = st == GR_OK;
        return st;
    case GR_FAST_ATTN:   /* its state in aux for the backward, as the reference keeps it */
        return r->aux ? gr_attention_run(r, out, r->aux, gr_gemm, err) : GR_ERR_UNSUPPORTED;
    default: return GR_ERR_UNSUPPORTED;
    }
}

/* Forward of layer i in training mode: the op's forward, as inference runs it. */
static gr_status forward(gr_trainer *t, int i, const float *x, int B, gr_error *err) {
    gr_op_run r = run_of(t, i, x, B);
    float *out = t->act[i - t->first];
    gr_status st = t->reference ? GR_ERR_UNSUPPORTED : forward_fast(t, i, &r, out, err);
    if (st != GR_ERR_UNSUPPORTED) return st;
    gr_op_forward(&r, out);
    return GR_OK;
}

/* The backend's backward of node i, when its op has one: GR_OK when it ran,
 * GR_ERR_UNSUPPORTED when the plain-C op must (no such path, or the forward
 * was not the backend's), else the backend's failure.
 * *ow: din is this layer's alone and still to be overwritten (the backend
 * paths overwrite it; a dense one accumulates, so it is zeroed first).    */
static gr_status backward_fast(gr_trainer *t, int i, const gr_op_run *r, float *dy, float *din, bool *ow,
                               bool logits, bool fuse, gr_error *err) {
    gr_backend *fp = fast(t);
    gr_model *m = t->m;
    const gr_node *n = &m->nodes[i];
    gr_fast_kind fk = gr_op_get(n->s.op)->fast;
    int j = i - t->first, B = r->B;
    if (fk == GR_FAST_DENSE || fk == GR_FAST_CONV) {
        int pk = gr_node_param(m, i, "kernel"), pb = gr_node_param(m, i, "bias");
        if (*ow && fk == GR_FAST_DENSE) {
            memset(din, 0, (size_t)B * (size_t)gr_dims3_size(r->in[0]) * sizeof(float));
            *ow = false;
        }
        /* a fused layer's kernel gradient is computed tile by tile as it is applied */
        bool defer = fuse && t->fuse[j];
        gr_status st = fk == GR_FAST_DENSE
                           ? gr_backend_dense_backward(fp, i, dy, r->ins[0], B, din, defer ? NULL : pgrad(t, pk),
                                                       pgrad(t, pb), err)
                           : gr_backend_conv2d_backward_ow(fp, i, dy, r->ins[0], B, din, *ow, pgrad(t, pk),
                                                           pgrad(t, pb), err);
        if (st == GR_OK) t->deferred[j] = defer;
        /* the plain-C layer accumulates into a kernel gradient that was not zeroed */
        else if (st == GR_ERR_UNSUPPORTED && defer) memset(pgrad(t, pk), 0, m->params[pk].count * sizeof(float));
        return st;
    }
    if (fk == GR_FAST_ATTN && r->aux) {
        float *dp[GR_OP_MAX_PARAMS] = {NULL};
        for (int k = 0; k < n->np && k < GR_OP_MAX_PARAMS; k++) dp[k] = pgrad(t, n->p0 + k);
        if (din && *ow) {
            memset(din, 0, (size_t)B * (size_t)gr_dims3_size(r->in[0]) * sizeof(float));
            *ow = false;
        }
        return gr_attention_grad(r, dy, din, dp, gr_gemm, err);
    }
    if (!din) return GR_ERR_UNSUPPORTED;
    if (fk == GR_FAST_POOL)
        return t->fast_fwd[j] ? gr_backend_pool_backward(fp, i, dy, r->ins[0], B, din, *ow, err) : GR_ERR_UNSUPPORTED;
    if (fk == GR_FAST_BATCHNORM && (!t->o.bn_train || t->fast_fwd[j]))
        return gr_backend_batchnorm_backward(fp, i, dy, r->ins[0], B, t->o.bn_train ? r->aux : NULL,
                                             t->o.bn_train ? r->aux + n->oc : NULL, din, *ow, pgrad(t, n->p0),
                                             pgrad(t, n->p0 + 1), err);
    if (fk == GR_FAST_ACT && n->s.act != GR_ACT_SOFTMAX && !logits)
        return gr_backend_act_backward(fp, i, dy, r->ins[0], B, din, *ow, err);
    return GR_ERR_UNSUPPORTED;
}

/* Backward of layer i: dact[i] holds dL/d(output) (or dL/d(logits) for the
 * final softmax, see `logits`).                                             */
static gr_status backward(gr_trainer *t, int i, const float *x, int B, bool logits, bool fuse, gr_error *err) {
    gr_model *m = t->m;
    const gr_node *n = &m->nodes[i];
    const gr_op_def *def = gr_op_get(n->s.op);
    int j = i - t->first;
    float *dy = t->dact[j];
    const float *y = t->act[j];
    gr_op_run r = run_of(t, i, x, B);
    float *din = grad_of(t, i, 0);
    gr_op_act_backward(&r, y, dy);   /* the fused activation (a last softmax: dy is dL/dlogits) */
    bool ow = din && t->own_din[j];
    gr_status st = t->reference ? GR_ERR_UNSUPPORTED : backward_fast(t, i, &r, dy, din, &ow, logits, fuse, err);
    if (st != GR_ERR_UNSUPPORTED) return st;
    size_t isz = (size_t)B * (size_t)gr_dims3_size(r.in[0]);
    if (ow) memset(din, 0, isz * sizeof(float));
    if (logits && !(def->flags & GR_OPF_FUSED_ACT)) {   /* a last softmax layer: dy is dL/dlogits */
        if (din)
            for (size_t k = 0; k < isz; k++) din[k] += dy[k];
        return GR_OK;
    }
    float *dins[GR_MAX_INPUTS], *dp[GR_OP_MAX_PARAMS] = {NULL};
    for (int k = 0; k < n->n_in; k++) dins[k] = grad_of(t, i, k);
    for (int k = 0; k < n->np && k < GR_OP_MAX_PARAMS; k++) dp[k] = pgrad(t, n->p0 + k);
    def->backward(&r, y, dy, dins, dp);
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
bool gr_grad_nonfinite(const float *g, size_t n) {
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
gr_status gr_trainer_batch_gradients(gr_trainer *t, const float *x, const int *labels, int B, int div,
                                     float *loss, int *correct, bool fuse, gr_error *err) {
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
    const int *l2 = t->mix_lab;
    float lam = l2 ? t->mix_lam : 1.0f;
    if (l2)
        for (int b = 0; b < B; b++)
            if (l2[b] < 0 || l2[b] >= C)
                return gr_error_set(err, GR_ERR_ARG, "label %d out of range for %d classes", l2[b], C);
    int c1 = 0;
    double l = gr_cross_entropy(p, labels, B, C, t->o.label_smoothing, &c1, NULL);
    if (l2) {   /* lam CE(labels) + (1 - lam) CE(labels2); correct: the heavier label */
        int c2 = 0;
        l = lam * l + (1.0 - lam) * gr_cross_entropy(p, l2, B, C, t->o.label_smoothing, &c2, NULL);
        if (lam < 0.5f) c1 = c2;
    }
    l /= div;
    if (loss) *loss = (float)l;
    if (correct) *correct = c1;
    if (!isfinite(l) && !t->shard_total) {   /* sharded: checked on the sums of all ranks */
        /* weights as loaded that are not finite (a damaged weights file) are
         * the cause, not the rate: the frozen ones never change, the others
         * only after the first step */
        int upto = t->it == 0 ? m->n_params : m->nodes[t->first].p0;
        for (int q = 0; q < upto; q++)
            if (gr_grad_nonfinite(m->w + m->params[q].offset, m->params[q].count))
                return gr_error_set(err, GR_ERR_NUMERIC,
                                    "the loss became %g at iteration %lld: the weights '%s' hold NaN or "
                                    "infinite values (a damaged weights file?)",
                                    l, (long long)t->it, m->params[q].name);
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "the loss became %g at iteration %lld: lower the learning rate (now %g)",
                            l, (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    }
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
            if (l2) yc = lam * yc + (1.0f - lam) * ((c == l2[b] ? 1.0f - ls : 0.0f) + ls / C);
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
        bad = gr_grad_nonfinite(t->grad + done, lo - done);
        done = hi;
    }
    if (bad || gr_grad_nonfinite(t->grad + done, t->np - done))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "a non-finite gradient at iteration %lld: lower the learning rate (now %g)",
                            (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    return GR_OK;
}

gr_status gr_trainer_gradients(gr_trainer *t, const float *x, const int *labels, int B,
                               float *loss, int *correct, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return gr_trainer_batch_gradients(t, x, labels, B, B, loss, correct, false, err);
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
            if (gr_grad_nonfinite(g, cnt)) {
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

gr_status gr_trainer_step(gr_trainer *t, const float *x, const int *labels, int B, float *loss,
                          int *correct, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_status st = gr_trainer_batch_gradients(t, x, labels, B, B, loss, correct, true, err);
    if (st != GR_OK) return st;
    return gr_trainer_apply_update(t, x, B, err);
}

/* The update of a step whose gradients are in t->grad (and, for deferred
 * fused kernels, still to be computed from the batch x of B rows).        */
gr_status gr_trainer_apply_update(gr_trainer *t, const float *x, int B, gr_error *err) {
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

void gr_trainer_set_mix(gr_trainer *t, const int *labels2, float lam) {
    t->mix_lab = labels2;
    t->mix_lam = lam;
}

gr_optim *gr_trainer_optim(gr_trainer *t) { return &t->o.optim; }
