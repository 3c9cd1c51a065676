/* fit_features.c — gr_fit's features passes.  The frozen layers
 * 0..first-1 run in inference mode, so their output for an image never
 * changes.  Without augmentation it is computed once per image ([n, F]
 * floats in memory, and on disk through the features cache) and every
 * epoch trains only the layers from `first` on.  With the flip alone (or
 * --cache-prefix) the mirrored images' outputs are cached too, and the
 * epochs augment the cached maps (fit.c, step_input).  The uncached path
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
                                  int batch, int threads, gr_feats *feat, size_t row0, const char *what,
                                  int verbose, volatile int *stop, bool flip, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    int h, w;
    gr_dataset_size(ds, &h, &w);
    size_t F = (size_t)gr_node_size(m, upto), img = (size_t)h * w * 3;
    gr_batcher_opts bo = {.batch = batch, .threads = threads, .flip_all = flip};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err->code;
    float *x = gr_malloc((size_t)batch * img * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    float *y = upto >= 0 ? gr_malloc((size_t)batch * F * sizeof(float), err) : x;   /* a batch's outputs */
    gr_status st = (x && lab && y) ? GR_OK : GR_ERR_NOMEM;
    double t0 = gr_fit_now();
    int done = 0, got = 0;
    if (verbose >= 1 && st == GR_OK) {   /* a long pass: say it started (^C is acted on between batches) */
        gr_log(GR_LOG_INFO, "%s: running the frozen base on %d images", what, n);
    }
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = upto < 0 ? GR_OK : gr_ctx_run(cx, 0, x, got, upto, y, err);
        if (st == GR_OK && upto >= 0) st = gr_outputs_check(m, upto, y, got, err);
        if (st == GR_OK) st = gr_feats_put(feat, row0 + (size_t)done, (size_t)got, y, err);
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
    if (y != x) free(y);
    free(x);
    free(lab);
    gr_batcher_free(b);
    return st;
}

/* compute_features through the disk cache: a hit skips the base.  flip:
 * the mirrored images' (their own key: gr_features_key_mirror).           */
static gr_status cached_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                                 int batch, int threads, gr_feats *feat, size_t row0, const char *what,
                                 int verbose, volatile int *stop, bool flip, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    char key[65], path[4096];
    size_t F = (size_t)gr_node_size(m, upto);
    gr_error kerr;
    uint64_t limit;   /* a bad GRAFT_CACHE_MAX is an error now, not after the features pass */
    if (upto >= 0 && !gr_features_cache_dir(path, sizeof path) && gr_features_cache_limit(&limit, &kerr) != GR_OK)
        return gr_error_set(err, kerr.code, "%s", kerr.msg);
    bool keyed = upto >= 0 && gr_features_key(cx, upto, ds, idx, n, key, &kerr) == GR_OK &&
                 (!flip || gr_features_key_mirror(key));
    gr_features_hit hit = keyed ? gr_features_load(key, (size_t)n, F, feat, row0, path, sizeof path) : GR_FEATURES_MISS;
    if (hit == GR_FEATURES_HIT || hit == GR_FEATURES_HIT_F32) {
        if (verbose) gr_log(GR_LOG_INFO, "%s: %d images, reused from the features cache (%s)", what, n, path);
        /* an entry of graft before float16: stored again as float16 (half the disk) */
        if (hit == GR_FEATURES_HIT_F32 && feat->half) gr_features_store(key, (size_t)n, F, feat, row0);
        return GR_OK;
    }
    if (hit == GR_FEATURES_DAMAGED)
        gr_warn("%s: the features cache entry is damaged (its digest or size does not match): recomputing it", path);
    if (hit == GR_FEATURES_NOMEM) return gr_error_set(err, GR_ERR_NOMEM, "%s: out of memory reading the features cache", path);
    gr_status st = compute_features(cx, upto, ds, idx, n, batch, threads, feat, row0, what, verbose, stop, flip, err);
    if (st == GR_OK && keyed) gr_features_store(key, (size_t)n, F, feat, row0);
    return st;
}

/* cached_features for all n samples, sharded when dist: each rank computes
 * its contiguous part (gr_dist_shard), then every rank gathers the rest.  */
static gr_status shared_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                                 int batch, int threads, gr_feats *feat, const char *what, int verbose,
                                 volatile int *stop, bool dist, bool flip, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    if (!dist) return cached_features(cx, upto, ds, idx, n, batch, threads, feat, 0, what, verbose, stop, flip, err);
    int lo, hi;
    gr_dist_shard(n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
    size_t F = (size_t)gr_node_size(m, upto);
    gr_status st = GR_OK;
    if (hi > lo) {
        int *sub = gr_malloc((size_t)(hi - lo) * sizeof(int), err);
        if (!sub) return GR_ERR_NOMEM;
        for (int i = lo; i < hi; i++) sub[i - lo] = idx ? idx[i] : i;
        st = cached_features(cx, upto, ds, sub, hi - lo, batch, threads, feat, (size_t)lo, what, verbose, stop,
                             flip, err);
        free(sub);
        if (st != GR_OK) {
            gr_error_prefix(err, "rank %d (samples %d..%d of %d)", gr_dist_rank(), lo, hi - 1, n);
            return st;
        }
    }
    if (feat->half) return gr_dist_gather_rows_bytes(feat->p, F * sizeof(uint16_t), n, err);
    return gr_dist_gather_rows(feat->p, F, n, err);
}

gr_status gr_fit_eval_features(gr_ctx *cx, int first, const gr_feats *feat, const int *labels, int n,
                               int batch, float *xb, float *probs, float *loss, float *acc, gr_error *err) {
    return gr_fit_eval_features_tta(cx, first, feat, NULL, labels, n, batch, xb, probs, NULL, loss, acc, err);
}

gr_status gr_fit_eval_features_tta(gr_ctx *cx, int first, const gr_feats *feat, const gr_feats *feat2,
                                   const int *labels, int n, int batch, float *xb, float *probs, float *probs2,
                                   float *loss, float *acc, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    int C = m->nodes[m->n_nodes - 1].oc;
    double l = 0;
    int64_t c = 0;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        gr_feats_get(feat, (size_t)s, (size_t)B, xb);
        gr_status st = gr_ctx_run(cx, first, xb, B, -1, probs, err);
        if (st == GR_OK) st = gr_outputs_check(m, -1, probs, B, err);
        if (st == GR_OK && feat2) {
            gr_feats_get(feat2, (size_t)s, (size_t)B, xb);
            st = gr_ctx_run(cx, first, xb, B, -1, probs2, err);
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

/* add_moments over every row of a features cache (widened a chunk at a time). */
static gr_status feats_moments(const gr_feats *f, double *sum, double *sq, gr_error *err) {
    if (!f->half) {
        add_moments(f->p, (int)f->n, f->F, sum, sq);
        return GR_OK;
    }
    size_t chunk = f->F ? (1u << 16) / f->F + 1 : 1;
    float *buf = gr_malloc(chunk * f->F * sizeof(float), err);
    if (!buf) return GR_ERR_NOMEM;
    for (size_t r = 0; r < f->n; r += chunk) {
        size_t k = f->n - r < chunk ? f->n - r : chunk;
        gr_feats_get(f, r, k, buf);
        add_moments(buf, (int)k, f->F, sum, sq);
    }
    free(buf);
    return GR_OK;
}

/* The sums of the cut's outputs and of their squares, from one pass over
 * the data without augmentation, batch by batch (dist: this rank's part,
 * then summed over the ranks); with the cache below node, from the cached
 * rows (the prefix not run again).                                        */
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
        gr_feats fb = {.p = buf, .n = (size_t)B, .F = F, .half = false};
        if (node > r->first && r->first > 0) {
            /* the cut's rows as training sees them (from the cache, else computed and rounded as
             * the cache would be), then layers first..node-1 */
            if (r->cache) {
                gr_feats_get(&r->feat, (size_t)s0, (size_t)B, r->xb);
            } else {
                gr_feats fx = {.p = r->xb, .n = (size_t)B, .F = r->F, .half = false};
                st = compute_features(r->cx, r->first - 1, r->ds, sub, B, r->o.batch, r->o.threads, &fx, 0,
                                      "statistics", 0, NULL, false, r->err);
                if (st == GR_OK && r->half && !r->augment) gr_f16_round(r->xb, (size_t)B * r->F);
            }
            if (st == GR_OK) st = gr_ctx_run(r->cx, r->first, r->xb, B, node - 1, buf, r->err);
        } else {
            st = compute_features(r->cx, node - 1, r->ds, sub, B, r->o.batch, r->o.threads, &fb, 0, "statistics", 0,
                                  NULL, false, r->err);
        }
        if (st == GR_OK && gr_fit_stop_requested(r->o.stop) && s0 + B < hi)
            st = gr_error_set(r->err, GR_ERR_INTERRUPTED, "interrupted while measuring the feature statistics");
        /* the numbers the cache would hold (float16 at the cut) */
        if (st == GR_OK && r->half && !r->augment && node == r->first) gr_f16_round(buf, (size_t)B * F);
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
static gr_status fit_standardize(gr_fit_run *r, int node, const gr_feats *feat) {
    gr_model *m = r->m;
    size_t F = (size_t)gr_node_size(m, node - 1);
    double *sum = gr_calloc(F, sizeof(double), r->err), *sq = gr_calloc(F, sizeof(double), r->err);
    gr_status st = (sum && sq) ? GR_OK : GR_ERR_NOMEM;
    if (st == GR_OK && feat) st = feats_moments(feat, sum, sq, r->err);
    else if (st == GR_OK) st = pass_moments(r, node, sum, sq);
    if (st == GR_OK) {
        float *mean = gr_param_data(m, m->nodes[node].p0), *sd = gr_param_data(m, m->nodes[node].p0 + 1);
        size_t varying = 0;
        double top = 0;   /* the largest std, for the warning below */
        for (size_t k = 0; k < F; k++) {
            double mu = sum[k] / r->n, var = sq[k] / r->n - mu * mu;
            mean[k] = (float)mu;
            sd[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
            varying += var > 1e-12;
            if (var > top * top) top = sqrt(var);
        }
        /* no feature varies: the head can only learn the class frequencies (an
         * untrained or zeroed weights file, or a preprocessing that blanks
         * the images); say so rather than train to chance accuracy quietly */
        if (F > 0 && varying == 0 && r->n > 1)
            gr_warn("the %zu features at '%s' do not vary across the %d training images (largest std %.3g): "
                    "the head cannot learn from them; are the base's weights trained, and is the preprocessing right?",
                    F, gr_model_layer_name(m, node - 1), r->n, top);
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
        if (gr_feats_alloc(&r->feat, (size_t)r->n, r->F, r->half, r->err) != GR_OK) {
            gr_error_prefix(r->err, "features cache for %d samples x %zu %s (use --no-cache)", r->n, r->F,
                            r->half ? "float16" : "floats");
            return GR_ERR_NOMEM;
        }
        st = shared_features(r->cx, r->first - 1, r->ds, r->idx, r->n, o->batch, o->threads, &r->feat,
                             "features (train)", o->verbose, o->stop, r->dist, false, r->err);
        if (st != GR_OK) return st;
        if (r->cache_aug && o->hflip) {   /* the cached prefix with the flip: the mirrors' too */
            if (gr_feats_alloc(&r->feat2, (size_t)r->n, r->F, r->half, r->err) != GR_OK) {
                gr_error_prefix(r->err, "cached prefix of %d mirrored samples x %zu %s (use --no-cache)", r->n,
                                r->F, r->half ? "float16" : "floats");
                return GR_ERR_NOMEM;
            }
            st = shared_features(r->cx, r->first - 1, r->ds, r->idx, r->n, o->batch, o->threads, &r->feat2,
                                 "features (train, mirrored)", o->verbose, o->stop, r->dist, true, r->err);
            if (st != GR_OK) return st;
        }
    } else if (!(r->xi = gr_malloc((size_t)o->batch * r->img * sizeof(float), r->err))) {
        return GR_ERR_NOMEM;
    }
    int sd = r->first;   /* the standardize layer in the trainable part, if any */
    while (sd < m->n_nodes && m->nodes[sd].s.op != GR_OP_STANDARDIZE) sd++;
    if (sd < m->n_nodes && !o->reuse_statistics && !o->resume) {
        /* from the cache when it sits at the cut; otherwise one pass over the
         * training set before the first epoch (an unfrozen base then moves
         * on, the standardization stays fixed) */
        st = fit_standardize(r, sd, sd == r->first && r->cache ? &r->feat : NULL);
        if (st != GR_OK) return st;
        if (o->verbose)
            gr_log(GR_LOG_INFO, "standardized the %lld features at '%s' with the training set's mean and std",
                   (long long)gr_node_size(m, sd - 1), gr_model_layer_name(m, sd - 1));
        fflush(stdout);   /* training starts: a line someone watching the output waits for */
    }
    if (r->n_val > 0) {   /* validation features: computed once (inference never changes them) */
        if (gr_feats_alloc(&r->vfeat, (size_t)r->n_val, r->F, r->half, r->err) != GR_OK) return GR_ERR_NOMEM;
        r->vlab = gr_malloc((size_t)r->n_val * sizeof(int), r->err);
        if (!r->vlab) return GR_ERR_NOMEM;
        for (int i = 0; i < r->n_val; i++) r->vlab[i] = gr_dataset_label(o->val, o->val_idx ? o->val_idx[i] : i);
        st = shared_features(r->cx, r->first - 1, o->val, o->val_idx, r->n_val, o->batch, o->threads, &r->vfeat,
                             "features (validation)", o->verbose, o->stop, r->dist, false, r->err);
        if (st != GR_OK) return st;
        if (o->tta_flip) {   /* the mirrored images (in the disk cache under the mirror key) */
            if (gr_feats_alloc(&r->vfeat2, (size_t)r->n_val, r->F, r->half, r->err) != GR_OK) return GR_ERR_NOMEM;
            r->probs2 = gr_malloc((size_t)o->batch * r->C * sizeof(float), r->err);
            if (!r->probs2) return GR_ERR_NOMEM;
            st = shared_features(r->cx, r->first - 1, o->val, o->val_idx, r->n_val, o->batch, o->threads,
                                 &r->vfeat2, "features (validation, mirrored)", o->verbose, o->stop, r->dist, true,
                                 r->err);
            if (st != GR_OK) return st;
        }
    }
    return GR_OK;
}
