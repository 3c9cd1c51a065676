/* fit_features.c — gr_fit's features passes.  The frozen layers
 * 0..first-1 run in inference mode, so their output for an image never
 * changes.  Without augmentation it is computed once per image ([n, F]
 * floats in memory, and on disk through the features cache) and every
 * epoch trains only the layers from `first` on.  The uncached path
 * computes the same features batch by batch, in the same order, so both
 * give the same result.  Also: the standardize layer's statistics and the
 * validation figures on cached features.                                   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist/dist.h"
#include "train/fit.h"

/* Runs layers 0..upto on samples idx[0..n) of ds (in that order) and stores
 * their outputs in feat [n, F].  upto = -1 stores the preprocessed images.
 * stop (may be NULL) is read between batches: non-zero ends the pass with
 * GR_ERR_INTERRUPTED (a ^C during a long features pass is acted on within
 * a batch).                                                                */
static gr_status compute_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                                  int batch, int threads, float *feat, const char *what, int verbose,
                                  volatile int *stop, bool flip, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    int h, w;
    gr_dataset_size(ds, &h, &w);
    size_t F = (size_t)gr_node_size(m, upto), img = (size_t)h * w * 3;
    gr_batcher_opts bo = {.batch = batch, .threads = threads, .flip_all = flip};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err->code;
    float *x = gr_malloc((size_t)batch * img * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_status st = (x && lab) ? GR_OK : GR_ERR_NOMEM;
    double t0 = gr_fit_now();
    int done = 0, got = 0;
    if (verbose >= 1 && st == GR_OK) {   /* a long pass: say it started (^C is acted on between batches) */
        gr_log(GR_LOG_INFO, "%s: running the frozen base on %d images", what, n);
    }
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = upto < 0 ? (memcpy(feat + (size_t)done * F, x, (size_t)got * F * sizeof(float)), GR_OK)
                      : gr_ctx_run(cx, 0, x, got, upto, feat + (size_t)done * F, err);
        if (st == GR_OK && upto >= 0) st = gr_outputs_check(m, upto, feat + (size_t)done * F, got, err);
        done += got;
        if (st == GR_OK && gr_fit_stop_requested(stop) && done < n)
            st = gr_error_set(err, GR_ERR_INTERRUPTED, "interrupted during the %s pass (%d of %d images done)",
                              what, done, n);
        if (verbose >= 2)
            gr_log(GR_LOG_PROGRESS, "%s: %d/%d images, %.0f img/s, ETA %.0fs", what, done, n,
                   done / (gr_fit_now() - t0), (gr_fit_now() - t0) / done * (n - done));
    }
    if (st == GR_OK && verbose >= 1)
        gr_log(GR_LOG_INFO, "%s: %d images in %.1fs (%.0f img/s)", what, done, gr_fit_now() - t0,
               done / (gr_fit_now() - t0 + 1e-9));
    free(x);
    free(lab);
    gr_batcher_free(b);
    return st;
}

/* compute_features through the disk cache: a hit skips the base. */
static gr_status cached_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                                 int batch, int threads, float *feat, const char *what, int verbose,
                                 volatile int *stop, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    char key[65], path[4096];
    size_t F = (size_t)gr_node_size(m, upto);
    gr_error kerr;
    uint64_t limit;   /* a bad GRAFT_CACHE_MAX is an error now, not after the features pass */
    if (upto >= 0 && !gr_features_cache_dir(path, sizeof path) && gr_features_cache_limit(&limit, &kerr) != GR_OK)
        return gr_error_set(err, kerr.code, "%s", kerr.msg);
    bool keyed = upto >= 0 && gr_features_key(cx, upto, ds, idx, n, key, &kerr) == GR_OK;
    gr_features_hit hit = keyed ? gr_features_load(key, (size_t)n, F, feat, path, sizeof path) : GR_FEATURES_MISS;
    if (hit == GR_FEATURES_HIT) {
        if (verbose) gr_log(GR_LOG_INFO, "%s: %d images, reused from the features cache (%s)", what, n, path);
        return GR_OK;
    }
    if (hit == GR_FEATURES_DAMAGED)
        gr_warn("%s: the features cache entry is damaged (its digest or size does not match): recomputing it", path);
    gr_status st = compute_features(cx, upto, ds, idx, n, batch, threads, feat, what, verbose, stop, false, err);
    if (st == GR_OK && keyed) gr_features_store(key, (size_t)n, F, feat);
    return st;
}

/* cached_features for all n samples, sharded when dist: each rank computes
 * its contiguous part (gr_dist_shard), then every rank gathers the rest.  */
static gr_status shared_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                                 int batch, int threads, float *feat, const char *what, int verbose,
                                 volatile int *stop, bool dist, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    if (!dist) return cached_features(cx, upto, ds, idx, n, batch, threads, feat, what, verbose, stop, err);
    int lo, hi;
    gr_dist_shard(n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
    size_t F = (size_t)gr_node_size(m, upto);
    gr_status st = GR_OK;
    if (hi > lo) {
        int *sub = gr_malloc((size_t)(hi - lo) * sizeof(int), err);
        if (!sub) return GR_ERR_NOMEM;
        for (int i = lo; i < hi; i++) sub[i - lo] = idx ? idx[i] : i;
        st = cached_features(cx, upto, ds, sub, hi - lo, batch, threads, feat + (size_t)lo * F, what, verbose, stop,
                             err);
        free(sub);
        if (st != GR_OK) {
            gr_error_prefix(err, "rank %d (samples %d..%d of %d)", gr_dist_rank(), lo, hi - 1, n);
            return st;
        }
    }
    return gr_dist_gather_rows(feat, F, n, err);
}

gr_status gr_fit_eval_features(gr_ctx *cx, int first, const float *feat, const int *labels, int n,
                               int batch, float *probs, float *loss, float *acc, gr_error *err) {
    return gr_fit_eval_features_tta(cx, first, feat, NULL, labels, n, batch, probs, NULL, loss, acc, err);
}

gr_status gr_fit_eval_features_tta(gr_ctx *cx, int first, const float *feat, const float *feat2,
                                   const int *labels, int n, int batch, float *probs, float *probs2, float *loss,
                                   float *acc, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    size_t F = (size_t)gr_node_size(m, first - 1);
    int C = m->nodes[m->n_nodes - 1].oc;
    double l = 0;
    int64_t c = 0;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        gr_status st = gr_ctx_run(cx, first, feat + (size_t)s * F, B, -1, probs, err);
        if (st == GR_OK) st = gr_outputs_check(m, -1, probs, B, err);
        if (st == GR_OK && feat2) {
            st = gr_ctx_run(cx, first, feat2 + (size_t)s * F, B, -1, probs2, err);
            if (st == GR_OK) st = gr_outputs_check(m, -1, probs2, B, err);
            for (size_t k = 0; st == GR_OK && k < (size_t)B * C; k++) probs[k] = 0.5f * (probs[k] + probs2[k]);
        }
        if (st != GR_OK) return st;
        int c1;
        l += gr_cross_entropy(probs, labels + s, B, C, 0, &c1, NULL);
        c += c1;
    }
    *loss = (float)(l / n);
    *acc = (float)c / (float)n;
    return GR_OK;
}

static void add_moments(const float *rows, int n, size_t F, double *sum, double *sq) {
    for (int i = 0; i < n; i++) {
        const float *r = rows + (size_t)i * F;
        for (size_t k = 0; k < F; k++) { sum[k] += r[k]; sq[k] += (double)r[k] * r[k]; }
    }
}

/* The sums of the cut's outputs and of their squares, from one pass over
 * the data without augmentation, batch by batch (dist: this rank's part,
 * then summed over the ranks).                                             */
static gr_status pass_moments(gr_fit_run *r, int node, double *sum, double *sq) {
    size_t F = (size_t)gr_node_size(r->m, node - 1);
    int chunk = r->o.batch, lo = 0, hi = r->n;
    if (r->dist) gr_dist_shard(r->n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
    float *buf = gr_malloc((size_t)chunk * F * sizeof(float), r->err);
    int *sub = gr_malloc((size_t)chunk * sizeof(int), r->err);
    gr_status st = (buf && sub) ? GR_OK : GR_ERR_NOMEM;
    for (int s0 = lo; st == GR_OK && s0 < hi; s0 += chunk) {
        int B = hi - s0 < chunk ? hi - s0 : chunk;
        for (int b = 0; b < B; b++) sub[b] = r->idx ? r->idx[s0 + b] : s0 + b;
        st = compute_features(r->cx, node - 1, r->ds, sub, B, r->o.batch, r->o.threads, buf, "statistics", 0, NULL,
                              false, r->err);
        if (st == GR_OK && gr_fit_stop_requested(r->o.stop) && s0 + B < hi)
            st = gr_error_set(r->err, GR_ERR_INTERRUPTED, "interrupted while measuring the feature statistics");
        if (st == GR_OK) add_moments(buf, B, F, sum, sq);
    }
    free(sub);
    free(buf);
    if (st == GR_OK && r->dist) {   /* the sums of every rank's part */
        st = gr_dist_sum_f64(sum, F, r->err);
        if (st == GR_OK) st = gr_dist_sum_f64(sq, F, r->err);
    }
    return st;
}

/* Measures per-feature mean and standard deviation of the cut's output on
 * the training set (from feat, the cache, when it sits at the cut; else one
 * pass without augmentation) and stores them in the standardize layer
 * `node`.  A feature that never changes gets std 1 (it is only centred).  */
static gr_status fit_standardize(gr_fit_run *r, int node, const float *feat) {
    gr_model *m = r->m;
    size_t F = (size_t)gr_node_size(m, node - 1);
    double *sum = gr_calloc(F, sizeof(double), r->err), *sq = gr_calloc(F, sizeof(double), r->err);
    gr_status st = (sum && sq) ? GR_OK : GR_ERR_NOMEM;
    if (st == GR_OK && feat) add_moments(feat, r->n, F, sum, sq);
    else if (st == GR_OK) st = pass_moments(r, node, sum, sq);
    if (st == GR_OK) {
        float *mean = gr_param_data(m, m->nodes[node].p0), *sd = gr_param_data(m, m->nodes[node].p0 + 1);
        for (size_t k = 0; k < F; k++) {
            double mu = sum[k] / r->n, var = sq[k] / r->n - mu * mu;
            mean[k] = (float)mu;
            sd[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
        }
        m->w_version++;
    }
    free(sum);
    free(sq);
    return st;
}

gr_status gr_fit_features(gr_fit_run *r) {
    gr_model *m = r->m;
    gr_fit_opts *o = &r->o;
    gr_status st;
    if (r->cache) {
        r->feat = gr_malloc((size_t)r->n * r->F * sizeof(float), r->err);
        if (!r->feat) {
            gr_error_prefix(r->err, "features cache for %d samples x %zu floats (use --no-cache)", r->n, r->F);
            return GR_ERR_NOMEM;
        }
        st = shared_features(r->cx, r->first - 1, r->ds, r->idx, r->n, o->batch, o->threads, r->feat,
                             "features (train)", o->verbose, o->stop, r->dist, r->err);
        if (st != GR_OK) return st;
    } else if (!(r->xi = gr_malloc((size_t)o->batch * r->img * sizeof(float), r->err))) {
        return GR_ERR_NOMEM;
    }
    int sd = r->first;   /* the standardize layer in the trainable part, if any */
    while (sd < m->n_nodes && m->nodes[sd].s.op != GR_OP_STANDARDIZE) sd++;
    if (sd < m->n_nodes && !o->reuse_statistics && !o->resume) {
        /* from the cache when it sits at the cut; otherwise one pass over the
         * training set before the first epoch (an unfrozen base then moves
         * on, the standardization stays fixed) */
        st = fit_standardize(r, sd, sd == r->first ? r->feat : NULL);
        if (st != GR_OK) return st;
        if (o->verbose)
            gr_log(GR_LOG_INFO, "standardized the %lld features at '%s' with the training set's mean and std",
                   (long long)gr_node_size(m, sd - 1), gr_model_layer_name(m, sd - 1));
        fflush(stdout);   /* training starts: a line someone watching the output waits for */
    }
    if (r->n_val > 0) {   /* validation features: computed once (inference never changes them) */
        r->vfeat = gr_malloc((size_t)r->n_val * r->F * sizeof(float), r->err);
        r->vlab = gr_malloc((size_t)r->n_val * sizeof(int), r->err);
        if (!r->vfeat || !r->vlab) return GR_ERR_NOMEM;
        for (int i = 0; i < r->n_val; i++) r->vlab[i] = gr_dataset_label(o->val, o->val_idx ? o->val_idx[i] : i);
        st = shared_features(r->cx, r->first - 1, o->val, o->val_idx, r->n_val, o->batch, o->threads, r->vfeat,
                             "features (validation)", o->verbose, o->stop, r->dist, r->err);
        if (st != GR_OK) return st;
        if (o->tta_flip) {   /* the mirrored images (not in the disk cache: its key is the images') */
            r->vfeat2 = gr_malloc((size_t)r->n_val * r->F * sizeof(float), r->err);
            r->probs2 = gr_malloc((size_t)o->batch * r->C * sizeof(float), r->err);
            if (!r->vfeat2 || !r->probs2) return GR_ERR_NOMEM;
            st = compute_features(r->cx, r->first - 1, o->val, o->val_idx, r->n_val, o->batch, o->threads,
                                  r->vfeat2, "features (validation, mirrored)", o->verbose, o->stop, true, r->err);
            if (st != GR_OK) return st;
        }
    }
    return GR_OK;
}
