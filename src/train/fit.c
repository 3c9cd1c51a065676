/* fit.c — the training loop (Keras `fit`) as phases over one run
 * (gr_fit_run, fit.h): check the arguments, set up the trainer and the
 * buffers, resume from a checkpoint, say what runs, compute the features
 * (fit_features.c), pick the rate (--lr auto, lr_range.c), open the CSV
 * log, run the epochs (batches; then validation, the log, the best epoch,
 * the checkpoint, early stopping) and finish; and `evaluate`.
 *
 * Data parallel (MPI): every rank runs this same loop on the same
 * permutation; a rank takes its part of each global batch (gr_dist_shard:
 * the first B % N ranks one row more) and one all-reduce per step sums the
 * gradients.  Rank 0 alone reports, writes the log and checkpoints.        */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "data/dataset.h"
#include "dist/dist.h"
#include "train/budget.h"
#include "train/fit.h"

double gr_fit_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void gr_fit_shuffle(int *perm, int n, uint64_t seed, int epoch) {
    gr_rng r;
    gr_rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gr_rng_below(&r, (uint32_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* First trainable layer: the one after the frozen prefix. */
static int first_trainable(const gr_model *m) {
    int f = 0;
    while (f < m->n_nodes && m->nodes[f].frozen) f++;
    return f;
}

static void progress(int verbose, int epoch, int epochs, int step, int steps, double t0,
                     double loss, double acc) {
    if (verbose < 2 || !gr_log_enabled()) return;
    double el = gr_fit_now() - t0, eta = step ? el / step * (steps - step) : 0;
    int bar = steps ? 30 * step / steps : 30;
    char b[31];
    for (int i = 0; i < 30; i++) b[i] = i < bar ? '=' : (i == bar ? '>' : '.');
    b[30] = 0;
    gr_log(GR_LOG_PROGRESS, "Epoch %d/%d %d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f", epoch,
           epochs, step, steps, b, eta, loss, acc);
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

/* ------------------------------------------------------- before the epochs */

static void fit_defaults(gr_fit_opts *o) {
    if (o->epochs <= 0) o->epochs = 20;
    if (o->batch <= 0) o->batch = 32;
    if (o->threads <= 0) o->threads = 2;
    if (o->optim.lr == 0)
        o->optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .decay = 1e-6f, .momentum = 0.9f, .nesterov = true});
}

/* The model is a classifier with something to train; the data fits it. */
static gr_status check_model_data(gr_fit_run *r) {
    gr_model *m = r->m;
    gr_error *err = r->err;
    gr_status st = class_count(m, &r->C, err);
    if (st != GR_OK) return st;
    const char *last = m->nodes[m->n_nodes - 1].s.name;
    if (r->C < 2)
        return gr_error_set(err, GR_ERR_ARG, "the model's last layer '%s' has %d output: a classifier needs at least "
                            "2 classes (with one, the loss is 0 and the accuracy 1.0 whatever it learns)", last, r->C);
    r->first = first_trainable(m);
    if (r->first >= m->n_nodes) return gr_error_set(err, GR_ERR_ARG, "every layer is frozen: nothing to train");
    if (gr_dataset_num_classes(r->ds) > r->C)
        return gr_error_set(err, GR_ERR_SHAPE, "the data has %d classes but the model's last layer '%s' has %d outputs",
                            gr_dataset_num_classes(r->ds), last, r->C);
    gr_dataset_size(r->ds, &r->h, &r->w);
    if (r->h != m->in_h || r->w != m->in_w)
        return gr_error_set(err, GR_ERR_SHAPE, "the data's images are %dx%d but the model takes %dx%d",
                            r->h, r->w, m->in_h, m->in_w);
    const gr_dataset *val = r->o.val;
    if (val) {   /* validation labels index the model's outputs too */
        int vh, vw;
        gr_dataset_size(val, &vh, &vw);
        if (gr_dataset_num_classes(val) > r->C)
            return gr_error_set(err, GR_ERR_SHAPE, "the validation data has %d classes but the model has %d outputs",
                                gr_dataset_num_classes(val), r->C);
        if (vh != r->h || vw != r->w)
            return gr_error_set(err, GR_ERR_SHAPE, "the validation images are %dx%d but the model takes %dx%d",
                                vh, vw, r->h, r->w);
    }
    return GR_OK;
}

double gr_prefix_cache_bytes(int n, size_t F, bool half, bool mirrors) {
    return (double)n * (double)F * (half ? 2 : 4) * (mirrors ? 2 : 1);
}

bool gr_prefix_cache_fits(double bytes) { return bytes <= 0.5 * (double)gr_memory_budget(); }

int gr_features_env_fp32(void) {
    const char *fp = getenv("GRAFT_FEATURES_PRECISION");
    if (!fp || !*fp || !strcmp(fp, "fp16")) return 0;
    return strcmp(fp, "fp32") ? -1 : 1;
}

/* The cached prefix: whether augmentation runs on the cached maps.  The
 * flip alone is exact (a flipped sample reads its mirror's features: what
 * the frozen part computes on the flipped image, rounded as the cache
 * rounds), so it keeps the cache by default; the pad-and-crop becomes a
 * translation of the map by whole cells, which is not what the frozen
 * part computes on a shifted image, so only with cache_prefix.  Either
 * falls back to running the frozen part on every batch when the cache
 * would take more than half of the memory budget.                        */
static gr_status prefix_cache_check(gr_fit_run *r) {
    const gr_fit_opts *o = &r->o;
    bool other = o->rrc_scale > 0 || o->mixup > 0 || o->cutmix > 0;
    if (o->cache_prefix && (other || o->no_cache || r->first == 0))
        return gr_error_set(r->err, GR_ERR_ARG, "--cache-prefix mirrors and translates the frozen part's cached "
                            "output: %s", r->first == 0 ? "nothing is frozen (no prefix to cache)"
                            : o->no_cache ? "it does not go with --no-cache"
                            : "it does not go with --random-resized-crop, --mixup or --cutmix (they change the "
                              "images in ways a cached map cannot follow)");
    r->cache_aug = r->augment && !other && !o->no_cache && r->first > 0 && (o->pad == 0 || o->cache_prefix);
    r->cache = !o->no_cache && (!r->augment || r->cache_aug);
    if (!r->cache_aug) return GR_OK;
    const gr_node *cut = &r->m->nodes[r->first - 1];
    r->mh = cut->oh, r->mw = cut->ow, r->mc = cut->oc;
    if (o->pad > 0 && r->h > 0) {   /* the crop's reach in cells, at least one */
        long c = lround((double)o->pad * r->mh / r->h);
        r->cell_pad = c < 1 ? 1 : (int)c;
        if (r->mh * r->mw == 1) r->cell_pad = 0;   /* a vector: nothing to translate */
    }
    size_t F = (size_t)gr_node_size(r->m, r->first - 1);
    double bytes = gr_prefix_cache_bytes(r->n, F, r->half, o->hflip);
    uint64_t budget = gr_memory_budget();
    char sz[32], bz[32];
    gr_size_text((uint64_t)bytes, sz, sizeof sz);
    gr_size_text(budget, bz, sizeof bz);
    if (!gr_prefix_cache_fits(bytes)) {
        gr_warn("the cached prefix (%d samples x %zu %s%s) would take %s, more than half of the memory budget "
                "(%s; GRAFT_MAX_MEMORY): the frozen part runs on every batch instead", r->n, F,
                r->half ? "float16" : "float32", o->hflip ? ", and their mirrors" : "", sz, bz);
        r->cache_aug = r->cache = false;
    }
    return GR_OK;
}

/* The arguments, and what they make of the run: cache, steps, ranks. */
static gr_status fit_check(gr_fit_run *r) {
    gr_fit_opts *o = &r->o;
    if (r->n <= 0) return gr_error_set(r->err, GR_ERR_ARG, "no training samples");
    gr_status st = check_model_data(r);
    if (st != GR_OK) return st;
    /* frozen weights that are not finite (a damaged weights file, warned about
     * at load) make every feature meaningless, and the fast path's ReLU can
     * turn NaN into 0: a head would train on nothing without a word */
    const gr_model *m = r->m;
    for (int q = 0; q < m->n_params && m->params[q].node < r->first; q++)
        for (size_t k = 0; k < m->params[q].count; k++)
            if (!isfinite(m->w[m->params[q].offset + k]))
                return gr_error_set(r->err, GR_ERR_NUMERIC,
                                    "the frozen weights '%s' hold NaN or infinite values (a damaged weights "
                                    "file?): features computed from them mean nothing", m->params[q].name);
    if (!(o->rrc_scale >= 0 && o->rrc_scale <= 1) || !(o->mixup >= 0) || !(o->cutmix >= 0) ||
        !(o->ema >= 0 && o->ema < 1))
        return gr_error_set(r->err, GR_ERR_ARG, "random-resized-crop scale %g must be in [0, 1], mixup %g and "
                            "cutmix %g >= 0, ema %g in [0, 1)", o->rrc_scale, o->mixup, o->cutmix, o->ema);
    r->augment = o->pad > 0 || o->hflip || o->rrc_scale > 0 || o->mixup > 0 || o->cutmix > 0;
    int env_fp32 = gr_features_env_fp32();
    if (env_fp32 < 0)
        return gr_error_set(r->err, GR_ERR_ARG, "GRAFT_FEATURES_PRECISION='%s': give fp16 (the default) or fp32",
                            getenv("GRAFT_FEATURES_PRECISION"));
    r->half = !o->features_fp32 && !env_fp32 && r->first > 0;
    st = prefix_cache_check(r);
    if (st != GR_OK) return st;
    /* the features at the cut in float16 (feats.h) unless asked for float32;
     * float32 when the "features" are the images themselves (nothing frozen) */
    if (o->lr_auto && !r->cache)
        return gr_error_set(r->err, GR_ERR_ARG, "--lr auto needs the features cache (no augmentation, no --no-cache)");
    r->steps = (r->n + o->batch - 1) / o->batch;
    r->dist = o->distributed && gr_dist_active();
    if (r->dist) r->deadline = 0;   /* (ranks would see other clocks: the time limit is one process's) */
    r->rank = r->dist ? gr_dist_rank() : 0;
    r->ranks = r->dist ? gr_dist_size() : 1;
    if (r->dist && o->batch < r->ranks)
        return gr_error_set(r->err, GR_ERR_ARG,
                            "--batch %d is the global batch: it must be at least the number of ranks (%d)",
                            o->batch, r->ranks);
    if (r->rank > 0) { o->verbose = 0; o->log_csv = NULL; o->checkpoint = NULL; }
    return GR_OK;
}

/* The trainer (the schedule's lengths known) and the run's buffers. */
static gr_status fit_setup(gr_fit_run *r) {
    gr_fit_opts *o = &r->o;
    gr_model *m = r->m;
    gr_error *err = r->err;
    o->optim.epoch_iters = r->steps;
    o->optim.total_iters = (int64_t)r->steps * o->epochs;
    o->optim.warmup_iters = (int64_t)(o->warmup_epochs * r->steps);
    if (o->patience > 0) o->keep_best = true;
    gr_trainer_opts to = {.optim = o->optim, .max_batch = o->batch, .seed = o->seed,
                          .label_smoothing = o->label_smoothing, .bn_train = o->bn_train,
                          .head_first = o->head_first, .base_lr_mult = o->base_lr_mult};
    r->t = gr_trainer_new(m, r->first, &to, err);
    if (!r->t) return err->code;
    r->cx = gr_trainer_ctx(r->t);
    r->F = (size_t)gr_node_size(m, r->first - 1);
    r->img = (size_t)r->h * r->w * 3;
    r->n_val = o->val ? (o->val_idx ? o->n_val : gr_dataset_count(o->val)) : 0;
    float *s1, *s2;
    int64_t *itp;
    gr_rng *rng;
    gr_trainer_state(r->t, &s1, &s2, &r->np, &itp, &rng);
    r->off = m->w_count - r->np;
    size_t n = (size_t)r->n, batch = (size_t)o->batch;
    if (!(r->xb = gr_malloc(batch * r->F * sizeof(float), err)) ||
        !(r->lab = gr_malloc(n * sizeof(int), err)) ||
        !(r->perm = gr_malloc(n * sizeof(int), err)) ||
        !(r->order = gr_malloc(n * sizeof(int), err)) ||
        !(r->blab = gr_malloc(batch * sizeof(int), err)) ||
        !(r->probs = gr_malloc(batch * r->C * sizeof(float), err)) ||
        (o->keep_best && !(r->best_w = gr_malloc((r->np ? r->np : 1) * sizeof(float), err))) ||
        ((o->mixup > 0 || o->cutmix > 0) && !(r->blab2 = gr_malloc(batch * sizeof(int), err))) ||
        (r->cache_aug && !(r->xrow = gr_malloc(r->F * sizeof(float), err))) ||
        (o->ema > 0 && !(r->ema_w = gr_malloc((r->np ? r->np : 1) * sizeof(float), err))))
        return GR_ERR_NOMEM;
    return GR_OK;
}

/* --resume: the trainer's state, the position and the rate from the checkpoint. */
static gr_status fit_resume(gr_fit_run *r) {
    gr_fit_opts *o = &r->o;
    r->rs.lr = o->optim.lr;
    gr_status st = gr_checkpoint_load(r->t, o->resume, o->config_json, &r->start_epoch, &r->start_step, &r->rs,
                                      r->ema_w, r->err);
    o->optim.lr = r->rs.lr;
    if (st != GR_OK) return st;
    if (r->start_step > r->steps)
        return gr_error_set(r->err, GR_ERR_ARG, "--resume %s: the checkpoint is at batch %d of an epoch, this run's "
                            "epochs have %d batches", o->resume, r->start_step, r->steps);
    /* after an epoch's last batch, start_step == steps: the epoch loop
     * below runs no batch and only closes that epoch (log, validation) */
    if (o->verbose)
        gr_log(GR_LOG_INFO, "resuming from %s: epoch %d, batch %d", o->resume, r->start_epoch + 1, r->start_step);
    return GR_OK;
}

/* "optimizer: sgd, lr 0.01, schedule cosine (to 0 over 20 epochs), ..." */
static void say_optimizer(const gr_fit_run *r) {
    const gr_fit_opts *o = &r->o;
    const gr_optim *q = &o->optim;
    gr_schedule sk = (unsigned)q->schedule <= GR_SCHEDULE_COSINE ? q->schedule : GR_SCHEDULE_CONSTANT;
    if (sk == GR_SCHEDULE_CONSTANT && q->decay > 0) sk = GR_SCHEDULE_INVERSE_TIME;
    char detail[64] = "", mom[64] = "";
    if (sk == GR_SCHEDULE_INVERSE_TIME) snprintf(detail, sizeof detail, " (decay %g per batch)", q->decay);
    if (sk == GR_SCHEDULE_COSINE) snprintf(detail, sizeof detail, " (to 0 over %d epochs)", o->epochs);
    if (q->kind == GR_OPTIM_SGD)
        snprintf(mom, sizeof mom, ", momentum %g%s", q->momentum, q->nesterov ? " nesterov" : "");
    gr_log(GR_LOG_INFO, "optimizer: %s, lr %g%s, schedule %s%s%s", gr_optim_kind_name(q->kind), q->lr,
           o->lr_auto && !o->resume ? " (before --lr auto)" : "", gr_schedule_name(sk), detail, mom);
}

/* What runs: the layers trained, the data, the cache, the ranks, the optimizer. */
static void fit_announce(const gr_fit_run *r) {
    const gr_fit_opts *o = &r->o;
    const gr_model *m = r->m;
    if (!o->verbose) return;
    gr_log(GR_LOG_INFO, "Training %d layers from '%s' on %d samples (%lld trainable parameters); the frozen part "
           "ends at '%s'; features cache: %s",
           m->n_nodes - r->first, m->nodes[r->first].s.name, r->n,
           (long long)gr_model_param_count(m, true), gr_model_layer_name(m, r->first - 1),
           r->cache_aug ? "on, augmented on the cached maps (the cached prefix)" : r->cache ? "on"
           : (r->augment ? "off (augmentation)" : "off (--no-cache)"));
    if (r->cache_aug) {
        char sz[32];
        gr_size_text((uint64_t)r->n * r->F * (r->half ? 2 : 4) * (o->hflip ? 2 : 1), sz, sizeof sz);
        char crop[160] = "";
        if (o->pad > 0)
            snprintf(crop, sizeof crop, "; the crop (pad %d px) as a translation of the %dx%d map by up to %d cell%s "
                     "(an approximation)", o->pad, r->mh, r->mw, r->cell_pad, r->cell_pad == 1 ? "" : "s");
        gr_log(GR_LOG_INFO, "cached prefix: '%s' output for %d samples%s, %s in memory (%s)%s%s",
               gr_model_layer_name(m, r->first - 1), r->n, o->hflip ? " and their mirrors" : "", sz,
               r->half ? "float16" : "float32", o->hflip ? "; a flipped sample reads its mirror's (exact)" : "", crop);
    }
    if (r->dist) {
        int lo, hi;
        gr_dist_shard(o->batch, 0, r->ranks, &lo, &hi);
        gr_log(GR_LOG_INFO, "data parallel: %d ranks (MPI), global batch %d = %d%s per rank, %d threads on rank 0",
               r->ranks, o->batch, hi - lo, o->batch % r->ranks ? " or one less" : "", gr_get_threads());
    }
    say_optimizer(r);
}

/* --lr auto: the range test's rate (rank 0's pick for all ranks). */
static gr_status fit_lr_auto(gr_fit_run *r) {
    float lr = r->o.optim.lr;   /* the default, kept when the test is inconclusive */
    gr_status st = gr_lr_range_test(r, &lr);
    if (st == GR_OK && r->dist) st = gr_dist_bcast(&lr, sizeof lr, 0, r->err);
    if (st != GR_OK) return st;
    r->o.optim.lr = lr;
    gr_trainer_set_lr(r->t, lr);
    return GR_OK;
}

static gr_status fit_open_log(gr_fit_run *r) {
    const gr_fit_opts *o = &r->o;
    r->log = fopen(o->log_csv, o->resume ? "a" : "w");
    if (!r->log) return gr_error_set(r->err, GR_ERR_IO, "%s: cannot write the log", o->log_csv);
    if (!o->resume) fprintf(r->log, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    return GR_OK;
}

/* ------------------------------------------------------------- one epoch */

/* Without the cache: the batcher over this epoch's images from batch s0 on
 * (dist: this rank's rows of each step, in order).                        */
static gr_status epoch_batcher(gr_fit_run *r, int ep, int s0) {
    const gr_fit_opts *o = &r->o;
    gr_batcher_opts bo = {.batch = o->batch, .seed = o->seed + 7919u * (uint64_t)ep,
                          .pad = o->pad, .hflip = o->hflip, .rrc_scale = o->rrc_scale, .threads = o->threads};
    const int *list = r->order + (size_t)s0 * o->batch;
    int n = r->n, len = n - s0 * o->batch;
    if (r->dist) {   /* (perm is no longer needed this epoch: it holds the list) */
        len = 0;
        for (int s = s0; s < r->steps; s++) {
            int B = n - s * o->batch < o->batch ? n - s * o->batch : o->batch, lo, hi;
            gr_dist_shard(B, r->rank, r->ranks, &lo, &hi);
            for (int b = lo; b < hi; b++) r->perm[len++] = r->order[s * o->batch + b];
        }
        list = r->perm;
        int lo, hi;
        gr_dist_shard(o->batch, r->rank, r->ranks, &lo, &hi);
        bo.batch = hi - lo;   /* a full step's rows here; the last step may have fewer */
    }
    r->bt = len > 0 ? gr_batcher_new(r->ds, list, len, &bo, r->err) : NULL;
    return len > 0 && !r->bt ? r->err->code : GR_OK;
}

/* dst = src [h][w][c] translated: dst(y, x) = src(y + dy, x + dx), zero
 * where that falls outside the map. */
static void shift_map(const float *src, float *dst, int h, int w, int c, int dy, int dx) {
    for (int y = 0; y < h; y++) {
        float *o = dst + (size_t)y * w * c;
        int sy = y + dy;
        if (sy < 0 || sy >= h) {
            memset(o, 0, (size_t)w * c * sizeof(float));
            continue;
        }
        for (int x = 0; x < w; x++) {
            int sx = x + dx;
            if (sx < 0 || sx >= w) memset(o + (size_t)x * c, 0, (size_t)c * sizeof(float));
            else memcpy(o + (size_t)x * c, src + ((size_t)sy * w + sx) * c, (size_t)c * sizeof(float));
        }
    }
}

/* The cached prefix: sample k's input at the cut in epoch ep, augmented on
 * the cached map with the draws the batcher makes for its image (the same
 * seed, gr_augment_draw): its mirror's row when flipped; with the crop, the
 * map translated by the image offset scaled to cells (offset o - pad in
 * [-pad, pad] pixels -> round((o - pad) * cell_pad / pad) cells, half away
 * from zero; a flipped image's horizontal offset mirrored, as the batcher
 * crops after the flip).                                                 */
static void prefix_row(gr_fit_run *r, int ep, int k, float *dst) {
    const gr_fit_opts *o = &r->o;
    int i = r->idx ? r->idx[k] : k, oy, ox;
    bool flip;
    gr_augment_draw(o->seed + 7919u * (uint64_t)ep, 0, i, o->pad, o->hflip, &oy, &ox, &flip);
    const gr_feats *f = flip ? &r->feat2 : &r->feat;
    int dy = 0, dx = 0;
    if (r->cell_pad > 0) {
        dy = (int)lround((double)(oy - o->pad) * r->cell_pad / o->pad);
        dx = (int)lround((double)(ox - o->pad) * r->cell_pad / o->pad);
        if (flip) dx = -dx;
    }
    if (dy == 0 && dx == 0) {
        gr_feats_row(f, (size_t)k, dst);
        return;
    }
    gr_feats_row(f, (size_t)k, r->xrow);
    shift_map(r->xrow, dst, r->mh, r->mw, r->mc, dy, dx);
}

/* Step s's input at the cut for rows [lo, hi) of its batch: xb, blab (and
 * with mixup/cutmix the images mixed, the trainer's mixed targets set).  */
static gr_status step_input(gr_fit_run *r, int ep, int s, int lo, int hi) {
    size_t F = r->F;
    if (r->cache) {
        for (int b = lo; b < hi; b++) {
            int k = r->perm[s * r->o.batch + b];
            float *dst = r->xb + (size_t)(b - lo) * F;
            if (r->cache_aug) prefix_row(r, ep, k, dst);
            else gr_feats_row(&r->feat, (size_t)k, dst);
            r->blab[b - lo] = r->lab[k];
        }
        return GR_OK;
    }
    if (hi <= lo) return GR_OK;
    int got = 0;
    gr_status st = gr_batcher_next(r->bt, r->xi, r->blab, &got, r->err);
    if (st != GR_OK) return st;
    if (got != hi - lo) return gr_error_set(r->err, GR_ERR_ARG, "batcher gave %d of %d samples", got, hi - lo);
    if (r->blab2) {   /* mixup / cutmix: lam and the box from (seed, epoch, step) alone */
        gr_rng rng;
        gr_rng_seed(&rng, (r->o.seed * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)ep << 32) ^ (uint64_t)s ^ 0x6d1c5ULL);
        float lam = gr_mix_batch(r->xi, got, r->h, r->w, 3, r->blab, r->blab2, r->o.mixup, r->o.cutmix, &rng);
        gr_trainer_set_mix(r->t, r->blab2, lam);
    }
    st = r->first > 0 ? gr_ctx_run(r->cx, 0, r->xi, got, r->first - 1, r->xb, r->err)
                      : (memcpy(r->xb, r->xi, (size_t)got * F * sizeof(float)), GR_OK);
    if (st == GR_OK && r->first > 0) st = gr_outputs_check(r->m, r->first - 1, r->xb, got, r->err);
    /* the same numbers as the cache holds: rounded to float16 where it would be */
    if (st == GR_OK && r->half && !r->augment) gr_f16_round(r->xb, (size_t)got * F);
    return st;
}

/* Divergence guard: the smoothed loss rising for several hundred steps. */
static void divergence_guard(gr_fit_run *r, float l) {
    r->ema = r->step_count++ ? 0.99 * r->ema + 0.01 * l : l;
    if (r->ema < r->ema_best) {
        r->ema_best = r->ema;
        r->since_best = 0;
    } else if (++r->since_best >= 500 && r->ema > 1.25 * r->ema_best && !r->warned) {
        gr_warn("the training loss has risen for %lld steps (smoothed %.3f -> %.3f): the learning "
                "rate %g looks too high for these features; try --lr %g or --lr auto",
                (long long)r->since_best, r->ema_best, r->ema, gr_optim_lr(&r->o.optim, gr_trainer_iterations(r->t)),
                r->o.optim.lr / 10);
        r->warned = true;
    }
}

/* A stop request after batch s: the checkpoint, then GR_ERR_INTERRUPTED. */
static gr_status interrupted(gr_fit_run *r, int ep, int s, const gr_run_state *sums) {
    const gr_fit_opts *o = &r->o;
    gr_run_state now = {o->optim.lr, sums->loss_sum, sums->correct, sums->seen};
    if (o->checkpoint &&
        gr_checkpoint_save(r->m, r->t, o->checkpoint, ep, s + 1, &now, o->config_json, r->ema_w, r->err) != GR_OK)
        return r->err->code;
    return gr_error_set(r->err, GR_ERR_INTERRUPTED, "interrupted in epoch %d after batch %d/%d%s%s", ep + 1, s + 1,
                        r->steps, o->checkpoint ? "; checkpoint written to " : "", o->checkpoint ? o->checkpoint : "");
}

/* The caches of the trained layers after their weights changed outside the trainer. */
static void weights_changed(gr_fit_run *r) {
    gr_model *m = r->m;
    if (m->w_tail_from != r->first) {
        m->w_tail_from = r->first;
        m->w_version++;
    }
    m->w_tail_version++;
}

/* --ema after update k (k = iterations done): e <- d e + (1 - d) w with
 * d = min(ema, (1 + k) / (10 + k)) (TensorFlow's ExponentialMovingAverage
 * with num_updates), over the trained parameters (fixed statistics never
 * move, so they are left as they are).                                   */
static void ema_update(gr_fit_run *r) {
    const gr_model *m = r->m;
    double k = (double)gr_trainer_iterations(r->t), d = (1.0 + k) / (10.0 + k);
    float a = (float)(d < r->o.ema ? d : r->o.ema), b = 1.0f - a;
    for (int p = m->nodes[r->first].p0; p < m->n_params; p++) {
        const gr_param *q = &m->params[p];
        if (gr_param_is_statistic(q->kind)) continue;
        float *e = r->ema_w + (q->offset - r->off);
        const float *w = m->w + q->offset;
        size_t n = q->count;
#pragma omp parallel for simd schedule(static) if (parallel: n > 262144)
        for (size_t i = 0; i < n; i++) e[i] = a * e[i] + b * w[i];
    }
}

/* --ema: exchanges the model's trained weights and their moving average. */
static void ema_swap(gr_fit_run *r) {
    const gr_model *m = r->m;
    for (int p = m->nodes[r->first].p0; p < m->n_params; p++) {
        const gr_param *q = &m->params[p];
        if (gr_param_is_statistic(q->kind)) continue;
        float *e = r->ema_w + (q->offset - r->off), *w = m->w + q->offset;
        for (size_t i = 0; i < q->count; i++) {
            float t = e[i];
            e[i] = w[i], w[i] = t;
        }
    }
    weights_changed(r);
}

/* Batches s0.. of epoch ep; sums: the epoch's loss sum, correct, seen. */
static gr_status epoch_steps(gr_fit_run *r, int ep, int s0, double t0, gr_run_state *sums) {
    const gr_fit_opts *o = &r->o;
    for (int s = s0; s < r->steps; s++) {
        int B = r->n - s * o->batch < o->batch ? r->n - s * o->batch : o->batch;
        int lo = 0, hi = B;   /* this rank's rows of the step's B */
        if (r->dist) gr_dist_shard(B, r->rank, r->ranks, &lo, &hi);
        gr_status st = step_input(r, ep, s, lo, hi);
        if (st != GR_OK) return st;
        float l;
        int c, stop_now = gr_fit_stop_requested(o->stop);
        st = r->dist ? gr_trainer_step_dist(r->t, r->xb, r->blab, hi - lo, lo, B, &l, &c, &stop_now, r->err)
                     : gr_trainer_step(r->t, r->xb, r->blab, B, &l, &c, r->err);
        if (st != GR_OK) return st;
        if (r->ema_w) ema_update(r);
        sums->loss_sum += (double)l * B;
        sums->correct += c;
        sums->seen += B;
        divergence_guard(r, l);
        progress(o->verbose, ep + 1, o->epochs, s + 1, r->steps, t0, sums->loss_sum / sums->seen,
                 (double)sums->correct / sums->seen);
        /* (dist: a stop on any rank stops every rank at this step) */
        if (stop_now) return interrupted(r, ep, s, sums);
        if (r->stop_iter > 0 && gr_trainer_iterations(r->t) >= r->stop_iter) return GR_OK;   /* the time limit's end */
        /* time_limit reached: stop (once the run has trained at least half an epoch) */
        if (r->deadline > 0 && s + 1 < r->steps && (r->epochs_run > 0 || ep > 0 || 2 * (s + 1) >= r->steps) &&
            gr_fit_now() > r->deadline) {
            if (o->verbose)
                gr_log(GR_LOG_INFO, "time limit: reached in epoch %d after batch %d/%d: the run ends with the "
                       "weights it has", ep + 1, s + 1, r->steps);
            r->out_of_time = true;
            return GR_OK;
        }
    }
    return GR_OK;
}

/* time_limit: after an epoch, the batch the run can end at, at the pace
 * of the last epochs (the run's first epoch, which warms up, left out once
 * there are others): earlier than planned when batches run slower than
 * measured, later (up to time_limit_epochs) when faster; the schedule is
 * re-spanned to end there.                                                 */
static void fit_adapt(gr_fit_run *r, int ep, double epoch_s, int batches) {
    if (batches <= 0) return;
    r->pace[r->epochs_run % 3] = epoch_s / batches;
    r->epochs_run++;
    if (!(r->deadline > 0) || r->out_of_time) return;
    /* the median of the last three epochs' (one slow epoch moves nothing) */
    int k = r->epochs_run < 3 ? r->epochs_run : 3, skip = r->epochs_run > 1 && r->epochs_run <= 3;
    double v[3];
    int nv = 0;
    for (int i = skip; i < k; i++) v[nv++] = r->pace[i];
    double pace = nv == 1 ? v[0] : nv == 2 ? 0.5 * (v[0] + v[1])
                : fmax(fmin(v[0], v[1]), fmin(fmax(v[0], v[1]), v[2]));
    int64_t done = gr_trainer_iterations(r->t), end = r->stop_iter > 0 ? r->stop_iter : (int64_t)r->steps * r->o.epochs;
    int max_epochs = r->o.time_limit_epochs > r->epochs0 ? r->o.time_limit_epochs : r->epochs0;
    int64_t cap = (int64_t)r->steps * max_epochs;
    int64_t fit = gr_plan_stop_iter(done, cap, pace, r->deadline - gr_fit_now());
    if (fit == end) return;
    int epochs = fit <= done ? ep + 1 : (int)((fit + r->steps - 1) / r->steps);
    /* said the first time, and when the end moves by more than a quarter since said */
    bool say = r->said_end == 0 || fit <= done || 4 * llabs(fit - r->said_end) > r->said_end;
    if (say) r->said_end = fit;
    if (r->o.verbose && say) {
        int b = (int)(fit - (int64_t)(epochs - 1) * r->steps);
        if (fit <= done)
            gr_log(GR_LOG_INFO, "time limit: epochs take %.1fs: the run ends now, after epoch %d", pace * r->steps,
                   ep + 1);
        else if (b < r->steps)
            gr_log(GR_LOG_INFO, "time limit: epochs take %.1fs: the run ends in epoch %d at batch %d/%d (planned: %d "
                   "epochs; the schedule ends there)", pace * r->steps, epochs, b, r->steps, r->epochs0);
        else
            gr_log(GR_LOG_INFO, "time limit: epochs take %.1fs: the run ends after epoch %d (planned: %d; the "
                   "schedule ends there)", pace * r->steps, epochs, r->epochs0);
    }
    r->o.epochs = epochs;
    r->stop_iter = fit > done ? fit : done;
    r->o.optim.total_iters = r->stop_iter;
    gr_trainer_optim(r->t)->total_iters = r->stop_iter;
}

/* The validation figures of the epoch (dist: rank 0's figures decide the
 * best epoch and early stopping on every rank, so that ranks with other
 * thread counts cannot take different branches).                         */
static gr_status epoch_validation(gr_fit_run *r, gr_epoch_log *e) {
    gr_status st = gr_fit_eval_features_tta(r->cx, r->first, &r->vfeat, r->vfeat2.p ? &r->vfeat2 : NULL, r->vlab,
                                            r->n_val, r->o.batch, r->xb, r->probs, r->probs2, &e->val_loss,
                                            &e->val_accuracy, r->err);
    if (st == GR_OK && r->dist) {
        float v[2] = {e->val_loss, e->val_accuracy};
        st = gr_dist_bcast(v, sizeof v, 0, r->err);
        e->val_loss = v[0];
        e->val_accuracy = v[1];
    }
    return st;
}

/* The epoch's end: validation, the epoch line, the CSV row, the history,
 * on_epoch, the best epoch, the checkpoint; *early: stop (patience).     */
static gr_status epoch_end(gr_fit_run *r, int ep, double t0, const gr_run_state *sums, bool *early) {
    const gr_fit_opts *o = &r->o;
    gr_epoch_log e = {.epoch = ep + 1, .loss = (float)(sums->loss_sum / sums->seen),
                      .accuracy = (float)sums->correct / sums->seen, .val_loss = NAN, .val_accuracy = NAN,
                      .lr = gr_optim_lr(&o->optim, gr_trainer_iterations(r->t))};
    if (r->ema_w) ema_swap(r);   /* validation and the best epoch's weights: the moving average */
    gr_status st = r->n_val > 0 ? epoch_validation(r, &e) : GR_OK;
    if (st != GR_OK) return st;
    e.seconds = gr_fit_now() - t0;
    if (o->verbose) {
        char val[80] = "";
        if (r->n_val > 0)
            snprintf(val, sizeof val, " - val_loss: %.4f - val_accuracy: %.4f", e.val_loss, e.val_accuracy);
        gr_log(GR_LOG_INFO, "Epoch %d/%d - %d/%d - %.1fs - loss: %.4f - accuracy: %.4f%s - lr: %.6g", ep + 1,
               o->epochs, r->steps, r->steps, e.seconds, e.loss, e.accuracy, val, e.lr);
    }
    if (r->log) {
        fprintf(r->log, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,%.3f\n", e.epoch, e.loss, e.accuracy, e.val_loss,
                e.val_accuracy, e.lr, e.seconds);
        fflush(r->log);
    }
    if (o->history && ep < r->epochs0) o->history[ep] = e;   /* (a run grown by time_limit: its first epochs) */
    r->last_epoch = ep + 1;
    if (o->on_epoch) o->on_epoch(&e, o->on_epoch_ctx);
    double score = r->n_val > 0 ? (o->monitor_loss ? -e.val_loss : e.val_accuracy) : -e.loss;
    if (score > r->best_score) {
        r->best_score = score;
        r->best_epoch = ep + 1;
        if (r->best_w) memcpy(r->best_w, r->m->w + r->off, r->np * sizeof(float));
    }
    if (r->ema_w) ema_swap(r);   /* training goes on from the weights themselves */
    if (o->checkpoint)
        st = gr_checkpoint_save(r->m, r->t, o->checkpoint, ep + 1, 0, &(gr_run_state){.lr = o->optim.lr},
                                o->config_json, r->ema_w, r->err);
    if (st == GR_OK && o->patience > 0 && ep + 1 - r->best_epoch >= o->patience) {
        if (o->verbose) gr_log(GR_LOG_INFO, "early stopping: no improvement for %d epochs", o->patience);
        *early = true;
    }
    return st;
}

static gr_status fit_epoch(gr_fit_run *r, int ep, bool *early) {
    double t0 = gr_fit_now();
    gr_fit_shuffle(r->perm, r->n, r->o.seed, ep);
    for (int i = 0; i < r->n; i++) r->order[i] = r->idx ? r->idx[r->perm[i]] : r->perm[i];
    int s0 = ep == r->start_epoch ? r->start_step : 0;   /* a mid-epoch checkpoint resumes here */
    gr_status st = !r->cache && s0 < r->steps ? epoch_batcher(r, ep, s0) : GR_OK;
    if (st != GR_OK) return st;
    gr_run_state sums = {0};
    if (s0 > 0) sums = r->rs;   /* the epoch's earlier batches */
    st = epoch_steps(r, ep, s0, t0, &sums);
    gr_batcher_free(r->bt);
    r->bt = NULL;
    if (st != GR_OK || r->out_of_time) return st;
    st = epoch_end(r, ep, t0, &sums, early);
    if (st == GR_OK && s0 == 0) fit_adapt(r, ep, gr_fit_now() - t0, sums.seen > 0 ? (sums.seen + r->o.batch - 1) / r->o.batch : 0);
    return st;
}

/* -------------------------------------------------------- after the epochs */

/* The all-reduce's cost (dist), the best epoch, its weights (keep_best). */
static void fit_finish(gr_fit_run *r, gr_status st) {
    const gr_fit_opts *o = &r->o;
    if (r->dist && o->verbose) {
        int64_t rsteps;
        size_t rfloats;
        double rs_s = gr_trainer_reduce_seconds(r->t, &rsteps, &rfloats);
        if (rsteps > 0)
            gr_log(GR_LOG_INFO, "all-reduce: %.3f ms per step (%lld steps of %zu floats = %.2f MB; rank 0, waiting included)",
                   1e3 * rs_s / (double)rsteps, (long long)rsteps, rfloats, rfloats * 4e-6);
    }
    const char *metric = r->n_val > 0 ? (o->monitor_loss ? "val_loss" : "val_accuracy") : "loss";
    bool neg = r->n_val == 0 || o->monitor_loss;
    if (st == GR_OK && r->best_epoch > 0 && o->verbose) {
        /* the model that is kept: the best epoch's weights, or the last epoch's */
        char kept[160];
        if (o->keep_best || r->best_epoch == r->last_epoch) snprintf(kept, sizeof kept, ": the model has its weights");
        else snprintf(kept, sizeof kept, "; the model has the last epoch's (%d) weights (--keep best keeps the best)",
                      r->last_epoch);
        gr_log(GR_LOG_INFO, "best epoch: %d (%s %.4f%s)%s", r->best_epoch, metric,
               neg ? -r->best_score : r->best_score,
               r->start_epoch > 0 ? ", among the epochs run since --resume" : "", kept);
    }
    if (st == GR_OK && r->best_w && r->best_epoch > 0) {
        memcpy(r->m->w + r->off, r->best_w, r->np * sizeof(float));
        r->m->w_version++;
    } else if (st == GR_OK && r->ema_w) {   /* the model is the moving average */
        ema_swap(r);
        r->m->w_version++;
    }
}

static void fit_free(gr_fit_run *r) {
    if (r->log) fclose(r->log);
    gr_batcher_free(r->bt);
    gr_trainer_free(r->t);
    gr_feats_free(&r->feat); gr_feats_free(&r->vfeat); free(r->xb); free(r->xi); free(r->probs); free(r->best_w);
    gr_feats_free(&r->vfeat2); gr_feats_free(&r->feat2); free(r->xrow); free(r->probs2); free(r->ema_w); free(r->blab2);
    free(r->lab); free(r->vlab); free(r->perm); free(r->order); free(r->blab);
}

gr_status gr_fit(gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_fit_opts *opt,
                 gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_fit_run r = {.m = m, .ds = ds, .idx = idx, .n = idx ? n : gr_dataset_count(ds), .o = *opt, .err = err,
                    .best_score = -1e300, .ema_best = 1e300};
    fit_defaults(&r.o);
    if (r.o.time_limit > 0) r.deadline = gr_fit_now() + r.o.time_limit;
    r.epochs0 = r.o.epochs;
    gr_status st = fit_check(&r);
    if (st != GR_OK) return st;
    unsigned fp_mode = gr_fp_flush_enter();   /* subnormals at full speed (core/fpmode.c) */
    st = fit_setup(&r);
    if (st == GR_OK && r.o.resume) st = fit_resume(&r);
    if (st == GR_OK) {
        for (int i = 0; i < r.n; i++) r.lab[i] = gr_dataset_label(ds, idx ? idx[i] : i);
        fit_announce(&r);
        st = gr_fit_features(&r);
    }
    if (st == GR_OK && r.o.lr_auto && !r.o.resume) st = fit_lr_auto(&r);
    if (st == GR_OK && r.ema_w && !r.o.resume)   /* the average starts at the weights training starts from */
        memcpy(r.ema_w, m->w + r.off, r.np * sizeof(float));
    if (st == GR_OK && r.o.log_csv) st = fit_open_log(&r);
    if (st == GR_OK) {
        r.last_epoch = r.start_epoch;   /* the last epoch run to its end */
        bool early = false;
        for (int ep = r.start_epoch; ep < r.o.epochs && st == GR_OK && !early && !r.out_of_time; ep++)
            st = fit_epoch(&r, ep, &early);
        fit_finish(&r, st);
    }
    fit_free(&r);
    gr_fp_flush_leave(fp_mode);
    return st;
}

/* ---------------------------------------------------------------- evaluate */

gr_status gr_evaluate(const gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                      gr_eval_result *res, gr_error *err) {
    return gr_evaluate_progress(m, ds, idx, n, batch, NULL, res, err);
}

gr_status gr_evaluate_progress(const gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                               const char *label, gr_eval_result *res, gr_error *err) {
    return gr_evaluate_ex(m, ds, idx, n, &(gr_eval_opts){.batch = batch, .label = label}, res, err);
}

/* Mirrors B images [h][w][3] left-right in place. */
static void mirror_batch(float *x, int B, int h, int w) {
    for (int r = 0; r < B * h; r++) {
        float *row = x + (size_t)r * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                float t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c], row[3 * b + c] = t;
            }
    }
}

gr_status gr_evaluate_ex(const gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_eval_opts *o,
                         gr_eval_result *res, gr_error *err) {
    int batch = o ? o->batch : 0;
    const char *label = o ? o->label : NULL;
    bool tta = o && o->tta_flip;
    gr_error local;
    if (!err) err = &local;
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
    if (!b) return err->code;
    float *x = gr_malloc((size_t)batch * h * w * 3 * sizeof(float), err);
    float *p = gr_malloc((size_t)batch * C * sizeof(float), err);
    float *p2 = tta ? gr_malloc((size_t)batch * C * sizeof(float), err) : NULL;
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_ctx *cx = gr_ctx_new(m, err);
    res->confusion = gr_calloc((size_t)C * C, sizeof(int64_t), err);
    res->label = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int), err);
    res->pred = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int), err);
    res->prob = gr_malloc((size_t)(n > 0 ? n : 1) * sizeof(float), err);
    res->n_classes = C;
    gr_status st = (x && p && lab && cx && res->confusion && res->label && res->pred && res->prob && (p2 || !tta))
                       ? GR_OK : GR_ERR_NOMEM;
    double l = 0;
    int64_t c1 = 0, c5 = 0;
    int done = 0, got = 0;
    double t0 = gr_fit_now();
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = gr_ctx_predict(cx, x, got, -1, p, err);
        if (st == GR_OK && tta) {   /* the mirrored images' probabilities, averaged in */
            mirror_batch(x, got, h, w);
            st = gr_ctx_predict(cx, x, got, -1, p2, err);
            for (size_t k = 0; st == GR_OK && k < (size_t)got * C; k++) p[k] = 0.5f * (p[k] + p2[k]);
        }
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
        if (label) {
            double el = gr_fit_now() - t0 + 1e-9;
            gr_log(GR_LOG_PROGRESS, "%s: %d/%d images, %.0f img/s, ETA %.0fs", label, done, n, done / el,
                   el / done * (n - done));
        }
    }
    if (st == GR_OK && label)
        gr_log(GR_LOG_NOTE, "%s: %d images in %.1fs (%.0f img/s)", label, done, gr_fit_now() - t0,
               done / (gr_fit_now() - t0 + 1e-9));
    gr_batcher_free(b);
    gr_ctx_free(cx);
    free(x); free(p); free(p2); free(lab);
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
