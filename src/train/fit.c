/* fit.c — the training loop (Keras `fit`): epochs of shuffled batches, the
 * features cache for a frozen base, validation, the CSV log, progress
 * lines, checkpoints and resume; and `evaluate`.
 *
 * The features cache: the frozen layers 0..first-1 run in inference mode,
 * so their output for an image never changes.  Without augmentation it is
 * computed once per image ([n, F] floats in memory) and every epoch trains
 * only the layers from `first` on.  The uncached path computes the same
 * features batch by batch, in the same order, so both give the same
 * result.                                                                   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json.h>
#include "dist/dist.h"
#include "exec/ctx.h"
#include "format/safetensors.h"
#include "train/train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* First trainable layer: the one after the frozen prefix. */
static int first_trainable(const gr_model *m) {
    int f = 0;
    while (f < m->n_nodes && m->nodes[f].frozen) f++;
    return f;
}

/* Runs layers 0..upto on samples idx[0..n) of ds (in that order) and stores
 * their outputs in feat [n, F].  upto = -1 stores the preprocessed images.
 * stop (may be NULL) is read between batches: non-zero ends the pass with
 * GR_ERR_INTERRUPTED (a ^C during a long features pass is acted on within
 * a batch).                                                                */
static gr_status compute_features(gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx,
                                  int n, int batch, int threads, float *feat, const char *what,
                                  int verbose, volatile int *stop, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    int h, w;
    gr_dataset_size(ds, &h, &w);
    size_t F = (size_t)gr_node_size(m, upto), img = (size_t)h * w * 3;
    gr_batcher_opts bo = {.batch = batch, .threads = threads};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err ? err->code : GR_ERR_ARG;
    float *x = gr_malloc((size_t)batch * img * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_status st = (x && lab) ? GR_OK : GR_ERR_NOMEM;
    double t0 = now_s();
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
        if (st == GR_OK && stop && *stop && done < n)
            st = gr_error_set(err, GR_ERR_INTERRUPTED, "interrupted during the %s pass (%d of %d images done)",
                              what, done, n);
        if (verbose >= 2)
            gr_log(GR_LOG_PROGRESS, "%s: %d/%d images, %.0f img/s, ETA %.0fs", what, done, n,
                   done / (now_s() - t0), (now_s() - t0) / done * (n - done));
    }
    if (st == GR_OK && verbose >= 1)
        gr_log(GR_LOG_INFO, "%s: %d images in %.1fs (%.0f img/s)", what, done, now_s() - t0,
               done / (now_s() - t0 + 1e-9));
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
    bool keyed = upto >= 0 && gr_features_key(cx, upto, ds, idx, n, key, &kerr) == GR_OK;
    gr_features_hit hit = keyed ? gr_features_load(key, (size_t)n, F, feat, path, sizeof path) : GR_FEATURES_MISS;
    if (hit == GR_FEATURES_HIT) {
        if (verbose) gr_log(GR_LOG_INFO, "%s: %d images, reused from the features cache (%s)", what, n, path);
        return GR_OK;
    }
    if (hit == GR_FEATURES_DAMAGED)
        gr_warn("%s: the features cache entry is damaged (its digest or size does not match): recomputing it", path);
    gr_status st = compute_features(cx, upto, ds, idx, n, batch, threads, feat, what, verbose, stop, err);
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

/* Mean loss and accuracy of layers first.. on cached features. */
static gr_status eval_features(gr_ctx *cx, int first, const float *feat, const int *labels, int n,
                               int batch, float *probs, float *loss, float *acc, gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    size_t F = (size_t)gr_node_size(m, first - 1);
    int C = m->nodes[m->n_nodes - 1].oc;
    double l = 0;
    int64_t c = 0;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        gr_status st = gr_ctx_run(cx, first, feat + (size_t)s * F, B, -1, probs, err);
        if (st == GR_OK) st = gr_outputs_check(m, -1, probs, B, err);
        if (st != GR_OK) return st;
        int c1;
        l += gr_cross_entropy(probs, labels + s, B, C, 0, &c1, NULL);
        c += c1;
    }
    *loss = (float)(l / n);
    *acc = (float)c / (float)n;
    return GR_OK;
}

/* The index of the lowest of v[0..n) (n >= 1). */
static int lo_index(const double *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (v[i] < v[b]) b = i;
    return b;
}

static void shuffle(int *perm, int n, uint64_t seed, int epoch) {
    gr_rng r;
    gr_rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gr_rng_below(&r, (uint32_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

static void progress(int verbose, int epoch, int epochs, int step, int steps, double t0,
                     double loss, double acc) {
    if (verbose < 2 || !gr_log_enabled()) return;
    double el = now_s() - t0, eta = step ? el / step * (steps - step) : 0;
    int bar = steps ? 30 * step / steps : 30;
    char b[31];
    for (int i = 0; i < 30; i++) b[i] = i < bar ? '=' : (i == bar ? '>' : '.');
    b[30] = 0;
    gr_log(GR_LOG_PROGRESS, "Epoch %d/%d %d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f", epoch,
           epochs, step, steps, b, eta, loss, acc);
}

/* Measures per-feature mean and standard deviation of the cut's output on
 * the training set (from the cache, or one pass without augmentation) and
 * stores them in the standardize layer `node`.  A feature that never
 * changes gets std 1 (it is only centred).                                 */
static gr_status fit_standardize(gr_model *m, gr_ctx *cx, int node, const float *feat, const gr_dataset *ds,
                                 const int *idx, int n, int batch, int threads, volatile int *stop,
                                 bool dist, gr_error *err) {
    size_t F = (size_t)gr_node_size(m, node - 1);
    double *sum = gr_calloc(F, sizeof(double), err), *sq = gr_calloc(F, sizeof(double), err);
    float *buf = NULL;
    gr_status st = (sum && sq) ? GR_OK : GR_ERR_NOMEM;
    if (st == GR_OK && feat) {
        for (int i = 0; i < n; i++) {
            const float *r = feat + (size_t)i * F;
            for (size_t k = 0; k < F; k++) { sum[k] += r[k]; sq[k] += (double)r[k] * r[k]; }
        }
    } else if (st == GR_OK) {   /* one pass over the data, batch by batch (dist: this rank's part) */
        int chunk = batch, lo = 0, hi = n;
        if (dist) gr_dist_shard(n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
        buf = gr_malloc((size_t)chunk * F * sizeof(float), err);
        int *sub = gr_malloc((size_t)chunk * sizeof(int), err);
        if (!buf || !sub) st = GR_ERR_NOMEM;
        for (int s0 = lo; st == GR_OK && s0 < hi; s0 += chunk) {
            int B = hi - s0 < chunk ? hi - s0 : chunk;
            for (int b = 0; b < B; b++) sub[b] = idx ? idx[s0 + b] : s0 + b;
            st = compute_features(cx, node - 1, ds, sub, B, batch, threads, buf, "statistics", 0, NULL, err);
            if (st == GR_OK && stop && *stop && s0 + B < hi)
                st = gr_error_set(err, GR_ERR_INTERRUPTED, "interrupted while measuring the feature statistics");
            for (int i = 0; st == GR_OK && i < B; i++) {
                const float *r = buf + (size_t)i * F;
                for (size_t k = 0; k < F; k++) { sum[k] += r[k]; sq[k] += (double)r[k] * r[k]; }
            }
        }
        free(sub);
        if (st == GR_OK && dist) {   /* the sums of every rank's part */
            st = gr_dist_sum_f64(sum, F, err);
            if (st == GR_OK) st = gr_dist_sum_f64(sq, F, err);
        }
    }
    if (st == GR_OK) {
        float *mean = gr_param_data(m, m->nodes[node].p0), *sd = gr_param_data(m, m->nodes[node].p0 + 1);
        for (size_t k = 0; k < F; k++) {
            double mu = sum[k] / n, var = sq[k] / n - mu * mu;
            mean[k] = (float)mu;
            sd[k] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
        }
        m->w_version++;
    }
    free(sum); free(sq); free(buf);
    return st;
}

/* The learning-rate range test: 120 steps of the run's optimizer on cached
 * features with the rate rising exponentially from 1e-6 to 10 (stopping
 * once the smoothed loss is 4x its lowest); picks a tenth of the rate with
 * the lowest smoothed loss (gr_lr_range_pick), or keeps *lr_out (the
 * default rate) and says so when the curve is inconclusive.  Restores the
 * weights and a fresh optimizer state; prints the curve.                   */
static gr_status lr_range_test(gr_model *m, gr_trainer *t, const float *feat, const int *lab, int n,
                               int batch, size_t F, float *xb, int *blab, uint64_t seed, int verbose,
                               float *lr_out, gr_error *err) {
    enum { STEPS = 120 };
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(t, &s1, &s2, &np, &it, &rng);
    size_t off = m->w_count - np;
    float *keep = gr_malloc(np * sizeof(float), err);
    int *perm = gr_malloc((size_t)n * sizeof(int), err);
    if (!keep || !perm) { free(keep); free(perm); return GR_ERR_NOMEM; }
    memcpy(keep, m->w + off, np * sizeof(float));
    shuffle(perm, n, seed ^ 0xABCDEFULL, 0);
    double lrs[STEPS], raw[STEPS], ema_v[STEPS];
    int done = 0;
    /* each step at exactly its rate: the run's schedule (a cosine over a
     * short run reaches 0 within the sweep), decay and warmup are off       */
    gr_optim *q = gr_trainer_optim(t), run_optim = *q;
    q->schedule = GR_SCHEDULE_CONSTANT;
    q->decay = 0;
    q->warmup_iters = 0;
    gr_status st = GR_OK;
    for (int i = 0; i < STEPS; i++) {
        double lr = 1e-6 * pow(1e7, (double)i / (STEPS - 1));
        gr_trainer_set_lr(t, (float)lr);
        int B = batch < n ? batch : n;
        for (int b = 0; b < B; b++) {
            int k = perm[(i * batch + b) % n];
            memcpy(xb + (size_t)b * F, feat + (size_t)k * F, F * sizeof(float));
            blab[b] = lab[k];
        }
        float l;
        st = gr_trainer_step(t, xb, blab, B, &l, NULL, err);
        if (st != GR_OK || !isfinite(l)) { st = GR_OK; break; }
        lrs[i] = lr;
        raw[i] = l;
        done = i + 1;
        gr_lr_range_smooth(raw, done, ema_v);
        double lowest = ema_v[0];
        for (int k = 1; k < done; k++) lowest = fmin(lowest, ema_v[k]);
        if (ema_v[i] > 4 * lowest && i > 10) break;
    }
    /* restore the schedule, the weights and a fresh optimizer state */
    *q = run_optim;
    memcpy(m->w + off, keep, np * sizeof(float));
    memset(s1, 0, np * sizeof(float));
    if (s2) memset(s2, 0, np * sizeof(float));
    *it = 0;
    m->w_version++;
    int best_i = gr_lr_range_pick(ema_v, done);
    float def = *lr_out;
    if (best_i >= 0) *lr_out = (float)(lrs[best_i] / 10);
    int lo_i = done > 0 ? lo_index(ema_v, done) : 0;
    if (!verbose || done < 2) goto say;
    /* the curve: smoothed loss against log10(lr), 10 rows x 60 columns; the
     * scale runs from the lowest loss to the highest before it (the descent);
     * points above (the divergence) sit on the top row as '^'               */
    double lo = ema_v[lo_i], hi = lo;
    for (int i = 0; i <= lo_i; i++) hi = fmax(hi, ema_v[i]);
    if (lo_i == 0) for (int i = 0; i < done; i++) hi = fmax(hi, ema_v[i]);
    if (hi - lo < 1e-6) hi = lo + 1e-6;
    gr_log(GR_LOG_INFO, "learning-rate range test (%d steps): smoothed loss against the learning rate", done);
    for (int r = 0; r < 10; r++) {
        double top = hi - (hi - lo) * r / 10.0, bot = hi - (hi - lo) * (r + 1) / 10.0;
        char row[61];
        for (int c = 0; c < 60; c++) {
            int i = c * (STEPS - 1) / 59;
            char ch = ' ';
            if (i < done && r == 0 && ema_v[i] > hi) ch = '^';
            else if (i < done && ema_v[i] <= top && (ema_v[i] > bot || r == 9)) ch = i == best_i ? 'o' : '*';
            row[c] = ch;
        }
        row[60] = 0;
        gr_log(GR_LOG_INFO, "%8.3f |%s", top, row);
    }
    gr_log(GR_LOG_INFO, "         +%.*s", 60, "------------------------------------------------------------");
    gr_log(GR_LOG_INFO, "          1e-6%*s1e-3%*s1e+1", 22, "", 26, "");
say:
    if (verbose && best_i >= 0) gr_log(GR_LOG_INFO, "lowest loss at lr %.3g: using lr %.3g", lrs[best_i], *lr_out);
    else if (done == 0)
        gr_warn("--lr auto: the range test is inconclusive (the loss was not finite from the first step): "
                "using the default lr %g", def);
    else if (best_i < 0) {
        int edge = done / 20 > 3 ? done / 20 : 3;
        const char *why = done < 10 ? "too few finite steps"
                        : lo_i >= done - edge ? "still falling at the end of the sweep"
                        : lo_i < edge ? "at the start of the sweep: the loss only rose"
                        : "less than 5% below where it started";
        gr_warn("--lr auto: the range test is inconclusive (lowest loss at lr %.3g, %s): using the default lr %g",
                lrs[lo_i], why, def);
    }
    free(keep);
    free(perm);
    return st;
}

/* What a checkpoint keeps of the run besides the trainer: the base rate in
 * use (--lr auto picks it once) and, mid-epoch, the epoch's sums so far
 * (zero at an epoch's end).                                                */
typedef struct {
    float lr;
    double loss_sum;   /* sum over the epoch's samples so far of the loss */
    int64_t correct;
    int seen;
} run_state;

/* Checkpoint: the model + optimizer state + iteration + RNG + epoch, and
 * the run's settings (checked on resume).                                  */
static gr_status save_checkpoint(gr_model *m, gr_trainer *t, const char *path, int epoch, int step,
                                 const run_state *rs, const char *config, gr_error *err) {
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(t, &s1, &s2, &np, &it, &rng);
    int64_t shape[1] = {(int64_t)np};
    gr_st_entry e[2] = {{"__optimizer__/s1", "F32", 1, shape, s1}, {"__optimizer__/s2", "F32", 1, shape, s2}};
    char json[4096];
    int len = snprintf(json, sizeof json,
             "{\"epoch\": %d, \"step\": %d, \"iterations\": %lld, \"lr\": %.9g, \"epoch_loss_sum\": %.17g, "
             "\"epoch_correct\": %lld, \"epoch_seen\": %d, \"rng\": [\"%016llx\", "
             "\"%016llx\", \"%016llx\", \"%016llx\"], \"config\": %s}",
             epoch, step, (long long)*it, (double)rs->lr, rs->loss_sum, (long long)rs->correct, rs->seen,
             (unsigned long long)rng->s[0], (unsigned long long)rng->s[1],
             (unsigned long long)rng->s[2], (unsigned long long)rng->s[3], config ? config : "{}");
    if (len < 0 || (size_t)len >= sizeof json)
        return gr_error_set(err, GR_ERR_ARG, "%s: the run's settings are too long for a checkpoint", path);
    return gr_model_save_ex(m, path, json, e, s2 ? 2 : 1, err);
}

/* A setting's value for a message: numbers with %g (a float stored as
 * 0.0099999997764825821 reads 0.01), strings as they are (no JSON escapes). */
static const char *json_plain(json_object *v, char *buf, size_t cap) {
    if (!v) snprintf(buf, cap, "(none)");
    else if (json_object_is_type(v, json_type_double)) snprintf(buf, cap, "%g", (double)(float)json_object_get_double(v));
    else if (json_object_is_type(v, json_type_string)) snprintf(buf, cap, "%s", json_object_get_string(v));
    else snprintf(buf, cap, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    return buf;
}

/* Restores the trainer's state from a checkpoint; *epoch = epochs done. */
static gr_status load_checkpoint(gr_trainer *t, const char *path, const char *config, int *epoch,
                                 int *step, run_state *rs, gr_error *err) {
    gr_st_file *sf = gr_st_open(path, err);
    if (!sf) return err ? err->code : GR_ERR_IO;
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(t, &s1, &s2, &np, &it, &rng);
    gr_status st = GR_OK;
    const char *tr = gr_st_meta(sf, "graft.training");
    json_object *root = tr ? json_tokener_parse(tr) : NULL, *v, *cfg;
    int i1 = gr_st_find(sf, "__optimizer__/s1"), i2 = gr_st_find(sf, "__optimizer__/s2");
    if (!root || !json_object_object_get_ex(root, "epoch", &v) || i1 < 0) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a graft checkpoint (no optimizer state)", path);
        goto out;
    }
    *epoch = json_object_get_int(v);
    *step = json_object_object_get_ex(root, "step", &v) ? json_object_get_int(v) : 0;
    if (*epoch < 0 || *step < 0) {   /* from the file: checked before they index anything */
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: the checkpoint's %s %d is negative", path,
                          *epoch < 0 ? "epoch" : "step", *epoch < 0 ? *epoch : *step);
        goto out;
    }
    if (config && json_object_object_get_ex(root, "config", &cfg)) {
        json_object *want = json_tokener_parse(config);
        if (want) {
            json_object_object_foreach(want, key, val) {
                json_object *had;
                /* the run may be extended (Keras' initial_epoch) and write
                 * elsewhere; settings an older checkpoint did not record
                 * are not compared                                          */
                if (!strcmp(key, "epochs") || !strcmp(key, "out") || !strcmp(key, "log") ||
                    !strcmp(key, "checkpoint") || !strcmp(key, "no_cache") ||
                    !json_object_object_get_ex(cfg, key, &had))
                    continue;
                if (!json_object_equal(had, val)) {
                    char a[1024], b[1024];
                    st = gr_error_set(err, GR_ERR_ARG,
                                      "--resume %s: the checkpoint was made with %s = %s, this run has %s", path, key,
                                      json_plain(had, a, sizeof a), json_plain(val, b, sizeof b));
                    break;
                }
            }
            json_object_put(want);
            if (st != GR_OK) goto out;
        }
    }
    if (gr_st_count(sf, i1) != (int64_t)np || (s2 && (i2 < 0 || gr_st_count(sf, i2) != (int64_t)np))) {
        st = gr_error_set(err, GR_ERR_SHAPE, "%s: its optimizer state does not fit this model/optimizer", path);
        goto out;
    }
    if ((st = gr_st_read_f32(sf, i1, s1, (int64_t)np, err)) != GR_OK) goto out;
    if (s2 && (st = gr_st_read_f32(sf, i2, s2, (int64_t)np, err)) != GR_OK) goto out;
    if (json_object_object_get_ex(root, "iterations", &v)) *it = json_object_get_int64(v);
    /* the base rate in use (--lr auto picks it once, before the first epoch) */
    if (json_object_object_get_ex(root, "lr", &v) && json_object_get_double(v) > 0) {
        rs->lr = (float)json_object_get_double(v);
        gr_trainer_set_lr(t, rs->lr);
    }
    if (json_object_object_get_ex(root, "epoch_loss_sum", &v)) rs->loss_sum = json_object_get_double(v);
    if (json_object_object_get_ex(root, "epoch_correct", &v)) rs->correct = json_object_get_int64(v);
    if (json_object_object_get_ex(root, "epoch_seen", &v)) rs->seen = json_object_get_int(v);
    if (*it < 0 || rs->correct < 0 || rs->seen < 0 || rs->correct > rs->seen) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: the checkpoint's iterations / epoch_correct / epoch_seen "
                          "(%lld / %lld / %d) are not counts", path, (long long)*it, (long long)rs->correct, rs->seen);
        goto out;
    }
    if (json_object_object_get_ex(root, "rng", &v) && json_object_array_length(v) == 4)
        for (int k = 0; k < 4; k++)
            rng->s[k] = strtoull(json_object_get_string(json_object_array_get_idx(v, (size_t)k)), NULL, 16);
out:
    if (root) json_object_put(root);
    gr_st_close(sf);
    return st;
}

/* The number of classes: the last layer must output a vector [B, C]. */
static gr_status class_count(const gr_model *m, int *C, gr_error *err) {
    if (m->n_nodes == 0) return gr_error_set(err, GR_ERR_ARG, "the model has no layers");
    const gr_node *l = &m->nodes[m->n_nodes - 1];
    if (l->oh * l->ow != 1)
        return gr_error_set(err, GR_ERR_SHAPE,
                            "the model's last layer '%s' outputs %dx%dx%d, not a vector of class scores "
                            "(end the head with flatten or gap and a dense layer)",
                            l->s.name, l->oh, l->ow, l->oc);
    *C = l->oc;
    return GR_OK;
}

gr_status gr_fit(gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_fit_opts *opt,
                 gr_error *err) {
    gr_fit_opts o = *opt;
    if (o.epochs <= 0) o.epochs = 20;
    if (o.batch <= 0) o.batch = 32;
    if (o.threads <= 0) o.threads = 2;
    if (o.optim.lr == 0)
        o.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .decay = 1e-6f, .momentum = 0.9f, .nesterov = true});
    if (!idx) n = gr_dataset_count(ds);
    if (n <= 0) return gr_error_set(err, GR_ERR_ARG, "no training samples");
    int C;
    gr_status cs = class_count(m, &C, err);
    if (cs != GR_OK) return cs;
    if (C < 2)
        return gr_error_set(err, GR_ERR_ARG, "the model's last layer '%s' has %d output: a classifier needs at least "
                            "2 classes (with one, the loss is 0 and the accuracy 1.0 whatever it learns)",
                            m->nodes[m->n_nodes - 1].s.name, C);
    int first = first_trainable(m);
    if (first >= m->n_nodes)
        return gr_error_set(err, GR_ERR_ARG, "every layer is frozen: nothing to train");
    if (gr_dataset_num_classes(ds) > C)
        return gr_error_set(err, GR_ERR_SHAPE,
                            "the data has %d classes but the model's last layer '%s' has %d outputs",
                            gr_dataset_num_classes(ds), m->nodes[m->n_nodes - 1].s.name, C);
    int h, w;
    gr_dataset_size(ds, &h, &w);
    if (h != m->in_h || w != m->in_w)
        return gr_error_set(err, GR_ERR_SHAPE, "the data's images are %dx%d but the model takes %dx%d",
                            h, w, m->in_h, m->in_w);
    if (o.val) {   /* validation labels index the model's outputs too */
        int vh, vw;
        gr_dataset_size(o.val, &vh, &vw);
        if (gr_dataset_num_classes(o.val) > C)
            return gr_error_set(err, GR_ERR_SHAPE, "the validation data has %d classes but the model has %d outputs",
                                gr_dataset_num_classes(o.val), C);
        if (vh != h || vw != w)
            return gr_error_set(err, GR_ERR_SHAPE, "the validation images are %dx%d but the model takes %dx%d",
                                vh, vw, h, w);
    }
    bool augment = o.pad > 0 || o.hflip;
    bool cache = !o.no_cache && !augment;
    if (o.lr_auto && !cache)
        return gr_error_set(err, GR_ERR_ARG, "--lr auto needs the features cache (no augmentation, no --no-cache)");
    int steps = (n + o.batch - 1) / o.batch;
    /* Data parallel (MPI): every rank runs this same loop on the same
     * permutation; a rank takes its part of each global batch (gr_dist_shard:
     * the first B % N ranks one row more) and one all-reduce per step sums the
     * gradients.  Rank 0 alone reports, writes the log and checkpoints.     */
    bool dist = o.distributed && gr_dist_active();
    int rank = dist ? gr_dist_rank() : 0, ranks = dist ? gr_dist_size() : 1;
    if (dist && o.batch < ranks)
        return gr_error_set(err, GR_ERR_ARG, "--batch %d is the global batch: it must be at least the number of ranks (%d)",
                            o.batch, ranks);
    if (rank > 0) { o.verbose = 0; o.log_csv = NULL; o.checkpoint = NULL; }
    o.optim.epoch_iters = steps;
    o.optim.total_iters = (int64_t)steps * o.epochs;
    o.optim.warmup_iters = (int64_t)(o.warmup_epochs * steps);
    if (o.patience > 0) o.keep_best = true;
    gr_trainer_opts to = {.optim = o.optim, .max_batch = o.batch, .seed = o.seed,
                          .label_smoothing = o.label_smoothing, .bn_train = o.bn_train,
                          .head_first = o.head_first, .base_lr_mult = o.base_lr_mult};
    gr_trainer *t = gr_trainer_new(m, first, &to, err);
    if (!t) return err ? err->code : GR_ERR_ARG;
    gr_ctx *cx = gr_trainer_ctx(t);   /* the base, the features and evaluation run through the trainer's */

    size_t F = (size_t)gr_node_size(m, first - 1), img = (size_t)h * w * 3;
    int n_val = o.val ? (o.val_idx ? o.n_val : gr_dataset_count(o.val)) : 0;
    float *feat = NULL, *vfeat = NULL, *xb = NULL, *xi = NULL, *probs = NULL, *best_w = NULL;
    int *lab = NULL, *vlab = NULL, *perm = NULL, *order = NULL, *blab = NULL;
    FILE *log = NULL;
    gr_batcher *bt = NULL;
    gr_status st = GR_OK;
    int start_epoch = 0, start_step = 0, best_epoch = 0;
    run_state rs = {0};   /* from a checkpoint: the partial epoch's sums */
    double best_score = -1e300;
    size_t np = 0, off = 0;
    {
        float *s1, *s2;
        int64_t *itp;
        gr_rng *rng;
        gr_trainer_state(t, &s1, &s2, &np, &itp, &rng);
        off = m->w_count - np;
    }
    if (!(xb = gr_malloc((size_t)o.batch * F * sizeof(float), err)) ||
        !(lab = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(perm = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(order = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(blab = gr_malloc((size_t)o.batch * sizeof(int), err)) ||
        !(probs = gr_malloc((size_t)o.batch * C * sizeof(float), err)) ||
        (o.keep_best && !(best_w = gr_malloc((np ? np : 1) * sizeof(float), err)))) {
        st = GR_ERR_NOMEM;
        goto done;
    }
    if (o.resume) {
        rs.lr = o.optim.lr;
        st = load_checkpoint(t, o.resume, o.config_json, &start_epoch, &start_step, &rs, err);
        o.optim.lr = rs.lr;
        if (st != GR_OK) goto done;
        if (start_step > steps) {
            st = gr_error_set(err, GR_ERR_ARG, "--resume %s: the checkpoint is at batch %d of an epoch, this run's "
                              "epochs have %d batches", o.resume, start_step, steps);
            goto done;
        }
        /* after an epoch's last batch, start_step == steps: the epoch loop
         * below runs no batch and only closes that epoch (log, validation) */
        if (o.verbose) gr_log(GR_LOG_INFO, "resuming from %s: epoch %d, batch %d", o.resume, start_epoch + 1, start_step);
    }
    for (int i = 0; i < n; i++) lab[i] = gr_dataset_label(ds, idx ? idx[i] : i);
    if (o.verbose)
        gr_log(GR_LOG_INFO, "Training %d layers from '%s' on %d samples (%lld trainable parameters); the frozen part "
               "ends at '%s'; features cache: %s",
               m->n_nodes - first, m->nodes[first].s.name, n,
               (long long)gr_model_param_count(m, true), gr_model_layer_name(m, first - 1),
               cache ? "on" : (augment ? "off (augmentation)" : "off (--no-cache)"));
    if (o.verbose && dist) {
        int lo, hi;
        gr_dist_shard(o.batch, 0, ranks, &lo, &hi);
        gr_log(GR_LOG_INFO, "data parallel: %d ranks (MPI), global batch %d = %d%s per rank, %d threads on rank 0",
               ranks, o.batch, hi - lo, o.batch % ranks ? " or one less" : "", gr_get_threads());
    }
    if (o.verbose) {
        static const char *sched[] = {"constant", "inverse-time", "step", "cosine"};
        const gr_optim *q = &o.optim;
        int sk = q->schedule >= 0 && q->schedule < 4 ? (int)q->schedule : 0;
        if (sk == GR_SCHEDULE_CONSTANT && q->decay > 0) sk = GR_SCHEDULE_INVERSE_TIME;
        const char *kind = q->kind == GR_OPTIM_SGD ? "sgd" : q->kind == GR_OPTIM_ADAM ? "adam" : "adamw";
        char detail[64] = "", mom[64] = "";
        if (sk == GR_SCHEDULE_INVERSE_TIME) snprintf(detail, sizeof detail, " (decay %g per batch)", q->decay);
        if (sk == GR_SCHEDULE_COSINE) snprintf(detail, sizeof detail, " (to 0 over %d epochs)", o.epochs);
        if (q->kind == GR_OPTIM_SGD)
            snprintf(mom, sizeof mom, ", momentum %g%s", q->momentum, q->nesterov ? " nesterov" : "");
        gr_log(GR_LOG_INFO, "optimizer: %s, lr %g%s, schedule %s%s%s", kind, q->lr,
               o.lr_auto && !o.resume ? " (before --lr auto)" : "", sched[sk], detail, mom);
    }
    if (cache) {
        feat = gr_malloc((size_t)n * F * sizeof(float), err);
        if (!feat) {
            gr_error_prefix(err, "features cache for %d samples x %zu floats (use --no-cache)", n, F);
            st = GR_ERR_NOMEM;
            goto done;
        }
        st = shared_features(cx, first - 1, ds, idx, n, o.batch, o.threads, feat, "features (train)",
                             o.verbose, o.stop, dist, err);
        if (st != GR_OK) goto done;
    } else if (!(xi = gr_malloc((size_t)o.batch * img * sizeof(float), err))) {
        st = GR_ERR_NOMEM;
        goto done;
    }
    int sd = first;   /* the standardize layer in the trainable part, if any */
    while (sd < m->n_nodes && m->nodes[sd].s.op != GR_OP_STANDARDIZE) sd++;
    if (sd < m->n_nodes && !o.reuse_statistics && !o.resume) {
        /* from the cache when it sits at the cut; otherwise one pass over the
         * training set before the first epoch (an unfrozen base then moves
         * on, the standardization stays fixed) */
        st = fit_standardize(m, cx, sd, sd == first ? feat : NULL, ds, idx, n, o.batch, o.threads, o.stop, dist, err);
        if (st != GR_OK) goto done;
        if (o.verbose) gr_log(GR_LOG_INFO, "standardized the %lld features at '%s' with the training set's mean and std",
                              (long long)gr_node_size(m, sd - 1), gr_model_layer_name(m, sd - 1));
        fflush(stdout);   /* training starts: a line someone watching the output waits for */
    }
    if (n_val > 0) {   /* validation features: computed once (inference never changes them) */
        vfeat = gr_malloc((size_t)n_val * F * sizeof(float), err);
        vlab = gr_malloc((size_t)n_val * sizeof(int), err);
        if (!vfeat || !vlab) { st = GR_ERR_NOMEM; goto done; }
        for (int i = 0; i < n_val; i++) vlab[i] = gr_dataset_label(o.val, o.val_idx ? o.val_idx[i] : i);
        st = shared_features(cx, first - 1, o.val, o.val_idx, n_val, o.batch, o.threads, vfeat,
                             "features (validation)", o.verbose, o.stop, dist, err);
        if (st != GR_OK) goto done;
    }
    if (o.lr_auto && !o.resume) {
        float lr = o.optim.lr;   /* the default, kept when the test is inconclusive */
        st = lr_range_test(m, t, feat, lab, n, o.batch, F, xb, blab, o.seed, o.verbose, &lr, err);
        if (st == GR_OK && dist) st = gr_dist_bcast(&lr, sizeof lr, 0, err);   /* rank 0's pick for all */
        if (st != GR_OK) goto done;
        o.optim.lr = lr;
        gr_trainer_set_lr(t, lr);
    }
    if (o.log_csv) {
        log = fopen(o.log_csv, o.resume ? "a" : "w");
        if (!log) {
            st = gr_error_set(err, GR_ERR_IO, "%s: cannot write the log", o.log_csv);
            goto done;
        }
        if (!o.resume) fprintf(log, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    }
    int last_epoch = start_epoch;   /* the last epoch run to its end */
    double ema = 0, ema_best = 1e300;
    int64_t since_best = 0, step_count = 0;
    bool warned = false;
    for (int ep = start_epoch; ep < o.epochs && st == GR_OK; ep++) {
        double t0 = now_s();
        shuffle(perm, n, o.seed, ep);
        for (int i = 0; i < n; i++) order[i] = idx ? idx[perm[i]] : perm[i];
        int s0 = ep == start_epoch ? start_step : 0;   /* a mid-epoch checkpoint resumes here */
        if (!cache && s0 < steps) {
            gr_batcher_opts bo = {.batch = o.batch, .seed = o.seed + 7919u * (uint64_t)ep,
                                  .pad = o.pad, .hflip = o.hflip, .threads = o.threads};
            const int *list = order + (size_t)s0 * o.batch;
            int len = n - s0 * o.batch;
            if (dist) {   /* this rank's rows of each step, in order (perm is no longer needed) */
                len = 0;
                for (int s = s0; s < steps; s++) {
                    int B = n - s * o.batch < o.batch ? n - s * o.batch : o.batch, lo, hi;
                    gr_dist_shard(B, rank, ranks, &lo, &hi);
                    for (int b = lo; b < hi; b++) perm[len++] = order[s * o.batch + b];
                }
                list = perm;
                int lo, hi;
                gr_dist_shard(o.batch, rank, ranks, &lo, &hi);
                bo.batch = hi - lo;   /* a full step's rows here; the last step may have fewer */
            }
            bt = len > 0 ? gr_batcher_new(ds, list, len, &bo, err) : NULL;
            if (len > 0 && !bt) { st = err ? err->code : GR_ERR_ARG; break; }
        }
        double lsum = 0;
        int64_t csum = 0;
        int seen = 0;
        if (s0 > 0) { lsum = rs.loss_sum; csum = rs.correct; seen = rs.seen; }   /* the epoch's earlier batches */
        for (int s = s0; s < steps && st == GR_OK; s++) {
            int B = n - s * o.batch < o.batch ? n - s * o.batch : o.batch;
            int lo = 0, hi = B;   /* this rank's rows of the step's B */
            if (dist) gr_dist_shard(B, rank, ranks, &lo, &hi);
            if (cache) {
                for (int b = lo; b < hi; b++) {
                    int k = perm[s * o.batch + b];
                    memcpy(xb + (size_t)(b - lo) * F, feat + (size_t)k * F, F * sizeof(float));
                    blab[b - lo] = lab[k];
                }
            } else if (hi > lo) {
                int got = 0;
                st = gr_batcher_next(bt, xi, blab, &got, err);
                if (st != GR_OK) break;
                if (got != hi - lo) { st = gr_error_set(err, GR_ERR_ARG, "batcher gave %d of %d samples", got, hi - lo); break; }
                st = first > 0 ? gr_ctx_run(cx, 0, xi, got, first - 1, xb, err)
                               : (memcpy(xb, xi, (size_t)got * F * sizeof(float)), GR_OK);
                if (st == GR_OK && first > 0) st = gr_outputs_check(m, first - 1, xb, got, err);
                if (st != GR_OK) break;
            }
            float l;
            int c, stop_now = o.stop && *o.stop;
            st = dist ? gr_trainer_step_dist(t, xb, blab, hi - lo, lo, B, &l, &c, &stop_now, err)
                      : gr_trainer_step(t, xb, blab, B, &l, &c, err);
            if (st != GR_OK) break;
            lsum += (double)l * B;
            csum += c;
            seen += B;
            /* divergence guard: the smoothed loss rising for several hundred steps */
            ema = step_count++ ? 0.99 * ema + 0.01 * l : l;
            if (ema < ema_best) { ema_best = ema; since_best = 0; }
            else if (++since_best >= 500 && ema > 1.25 * ema_best && !warned) {
                gr_warn("the training loss has risen for %lld steps (smoothed %.3f -> %.3f): the learning "
                        "rate %g looks too high for these features; try --lr %g or --lr auto",
                        (long long)since_best, ema_best, ema, gr_optim_lr(&o.optim, gr_trainer_iterations(t)),
                        o.optim.lr / 10);
                warned = true;
            }
            progress(o.verbose, ep + 1, o.epochs, s + 1, steps, t0, lsum / seen, (double)csum / seen);
            if (stop_now) {   /* (dist: a stop on any rank stops every rank at this step) */
                run_state now = {o.optim.lr, lsum, csum, seen};
                if (o.checkpoint && save_checkpoint(m, t, o.checkpoint, ep, s + 1, &now, o.config_json, err) != GR_OK) {
                    st = err ? err->code : GR_ERR_IO;
                    break;
                }
                st = gr_error_set(err, GR_ERR_INTERRUPTED, "interrupted in epoch %d after batch %d/%d%s%s",
                                  ep + 1, s + 1, steps, o.checkpoint ? "; checkpoint written to " : "",
                                  o.checkpoint ? o.checkpoint : "");
                break;
            }
        }
        gr_batcher_free(bt);
        bt = NULL;
        if (st != GR_OK) break;
        gr_epoch_log e = {.epoch = ep + 1, .loss = (float)(lsum / seen), .accuracy = (float)csum / seen,
                          .val_loss = NAN, .val_accuracy = NAN,
                          .lr = gr_optim_lr(&o.optim, gr_trainer_iterations(t))};
        if (n_val > 0) {
            st = eval_features(cx, first, vfeat, vlab, n_val, o.batch, probs, &e.val_loss,
                               &e.val_accuracy, err);
            /* dist: rank 0's figures decide (best epoch, early stopping) on every rank, so
             * that ranks with other thread counts cannot take different branches */
            if (st == GR_OK && dist) {
                float v[2] = {e.val_loss, e.val_accuracy};
                st = gr_dist_bcast(v, sizeof v, 0, err);
                e.val_loss = v[0];
                e.val_accuracy = v[1];
            }
            if (st != GR_OK) break;
        }
        e.seconds = now_s() - t0;
        if (o.verbose) {
            char val[80] = "";
            if (n_val > 0) snprintf(val, sizeof val, " - val_loss: %.4f - val_accuracy: %.4f", e.val_loss, e.val_accuracy);
            gr_log(GR_LOG_INFO, "Epoch %d/%d - %d/%d - %.1fs - loss: %.4f - accuracy: %.4f%s - lr: %.6g", ep + 1,
                   o.epochs, steps, steps, e.seconds, e.loss, e.accuracy, val, e.lr);
        }
        if (log) {
            fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,%.3f\n", e.epoch, e.loss, e.accuracy, e.val_loss,
                    e.val_accuracy, e.lr, e.seconds);
            fflush(log);
        }
        if (o.history) o.history[ep] = e;
        last_epoch = ep + 1;
        if (o.on_epoch) o.on_epoch(&e, o.on_epoch_ctx);
        double score = n_val > 0 ? (o.monitor_loss ? -e.val_loss : e.val_accuracy) : -e.loss;
        if (score > best_score) {
            best_score = score;
            best_epoch = ep + 1;
            if (best_w) memcpy(best_w, m->w + off, np * sizeof(float));
        }
        if (o.checkpoint) st = save_checkpoint(m, t, o.checkpoint, ep + 1, 0, &(run_state){.lr = o.optim.lr}, o.config_json, err);
        if (st == GR_OK && o.patience > 0 && ep + 1 - best_epoch >= o.patience) {
            if (o.verbose) gr_log(GR_LOG_INFO, "early stopping: no improvement for %d epochs", o.patience);
            break;
        }
    }
    if (dist && o.verbose) {
        int64_t rsteps;
        size_t rfloats;
        double rs_s = gr_trainer_reduce_seconds(t, &rsteps, &rfloats);
        if (rsteps > 0)
            gr_log(GR_LOG_INFO, "all-reduce: %.3f ms per step (%lld steps of %zu floats = %.2f MB; rank 0, waiting included)",
                   1e3 * rs_s / (double)rsteps, (long long)rsteps, rfloats, rfloats * 4e-6);
    }
    const char *metric = n_val > 0 ? (o.monitor_loss ? "val_loss" : "val_accuracy") : "loss";
    bool neg = n_val == 0 || o.monitor_loss;
    if (st == GR_OK && best_epoch > 0 && o.verbose) {
        /* the model that is kept: the best epoch's weights, or the last epoch's */
        char kept[160];
        if (o.keep_best || best_epoch == last_epoch) snprintf(kept, sizeof kept, ": the model has its weights");
        else snprintf(kept, sizeof kept, "; the model has the last epoch's (%d) weights (--keep best keeps the best)",
                      last_epoch);
        gr_log(GR_LOG_INFO, "best epoch: %d (%s %.4f%s)%s", best_epoch, metric, neg ? -best_score : best_score,
               start_epoch > 0 ? ", among the epochs run since --resume" : "", kept);
    }
    if (st == GR_OK && best_w && best_epoch > 0) {
        memcpy(m->w + off, best_w, np * sizeof(float));
        m->w_version++;
    }
done:
    if (log) fclose(log);
    gr_batcher_free(bt);
    gr_trainer_free(t);
    free(feat); free(vfeat); free(xb); free(xi); free(probs); free(best_w);
    free(lab); free(vlab); free(perm); free(order); free(blab);
    return st;
}

gr_status gr_evaluate(const gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                      gr_eval_result *res, gr_error *err) {
    memset(res, 0, sizeof *res);
    if (!idx) n = gr_dataset_count(ds);
    if (batch <= 0) batch = 32;
    int C, h, w;
    gr_status cs = class_count(m, &C, err);
    if (cs != GR_OK) return cs;
    gr_dataset_size(ds, &h, &w);
    if (h != m->in_h || w != m->in_w)
        return gr_error_set(err, GR_ERR_SHAPE, "the data's images are %dx%d but the model takes %dx%d",
                            h, w, m->in_h, m->in_w);
    if (gr_dataset_num_classes(ds) > C)
        return gr_error_set(err, GR_ERR_SHAPE, "the data has %d classes but the model has %d outputs",
                            gr_dataset_num_classes(ds), C);
    gr_batcher_opts bo = {.batch = batch, .threads = 2};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err ? err->code : GR_ERR_ARG;
    float *x = gr_malloc((size_t)batch * h * w * 3 * sizeof(float), err);
    float *p = gr_malloc((size_t)batch * C * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_ctx *cx = gr_ctx_new(m, err);
    res->confusion = gr_calloc((size_t)C * C, sizeof(int64_t), err);
    res->label = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int), err);
    res->pred = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int), err);
    res->prob = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(float), err);
    res->n_classes = C;
    gr_status st = (x && p && lab && cx && res->confusion && res->label && res->pred && res->prob) ? GR_OK : GR_ERR_NOMEM;
    double l = 0;
    int64_t c1 = 0, c5 = 0;
    int done = 0, got = 0;
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = gr_ctx_predict(cx, x, got, -1, p, err);
        if (st != GR_OK) break;
        int a, a5;
        l += gr_cross_entropy(p, lab, got, C, 0, &a, &a5);
        c1 += a;
        c5 += a5;
        for (int i = 0; i < got && done + i < n; i++) {
            int best = 0;
            for (int k = 1; k < C; k++)
                if (p[(size_t)i * C + k] > p[(size_t)i * C + best]) best = k;
            res->confusion[(size_t)lab[i] * C + best]++;
            res->label[done + i] = lab[i];
            res->pred[done + i] = best;
            res->prob[done + i] = p[(size_t)i * C + best];
        }
        done += got;
    }
    gr_batcher_free(b);
    gr_ctx_free(cx);
    free(x); free(p); free(lab);
    if (st != GR_OK) { gr_eval_result_free(res); return st; }
    res->n = done;
    res->loss = done ? l / done : NAN;
    res->accuracy = done ? (double)c1 / done : NAN;
    res->top5 = done ? (double)c5 / done : NAN;
    return GR_OK;
}

void gr_eval_result_free(gr_eval_result *res) {
    free(res->confusion);
    free(res->label);
    free(res->pred);
    free(res->prob);
    res->confusion = NULL;
    res->label = res->pred = NULL;
    res->prob = NULL;
}
