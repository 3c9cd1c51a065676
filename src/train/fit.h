/* fit.h — gr_fit's pieces (internal): the run every phase works on, the
 * features passes (fit_features.c), checkpoints (checkpoint.c) and the
 * learning-rate range test (lr_range.c).                                   */
#ifndef GRAFT_TRAIN_FIT_H
#define GRAFT_TRAIN_FIT_H
#include <stdio.h>
#include "exec/ctx.h"
#include "train/feats.h"
#include "train/train.h"

/* What a checkpoint keeps of the run besides the trainer: the base rate in
 * use (--lr auto picks it once) and, mid-epoch, the epoch's sums so far
 * (zero at an epoch's end).                                                */
typedef struct {
    float lr;
    double loss_sum;   /* sum over the epoch's samples so far of the loss */
    int64_t correct;
    int seen;
} gr_run_state;

/* One gr_fit call: its inputs, settings (defaults filled in), buffers and
 * the state carried from epoch to epoch.                                   */
typedef struct {
    gr_model *m;
    const gr_dataset *ds;
    const int *idx;          /* the training samples (NULL = all n) */
    int n;
    gr_fit_opts o;           /* the caller's options with the defaults filled in */
    gr_error *err;
    int C, first, h, w, steps, n_val;
    bool augment, cache, dist;
    /* the cached prefix: augmentation done on the cached maps (the flip
     * alone, or pad with cache_prefix); cell_pad: the crop's reach in
     * cells of the cut's map (0 = no translation); mh, mw, mc: the map   */
    bool cache_aug;
    int cell_pad, mh, mw, mc;
    gr_feats feat2;          /* cache_aug with hflip: the mirrored images' features [n, F] */
    float *xrow;             /* cache_aug: one row before its translation */
    int rank, ranks;
    gr_trainer *t;
    gr_ctx *cx;              /* the trainer's context: the base, the features and evaluation run through it */
    size_t F, img;           /* floats per cut output / per input image */
    size_t np, off;          /* trainable parameters: m->w[off .. off+np) */
    gr_feats feat, vfeat;    /* cached features: training [n, F], validation [n_val, F] */
    bool half;               /* features at the cut kept as float16 (feats.h) */
    gr_feats vfeat2;         /* tta_flip: the validation images' mirrors' features */
    float *probs2;           /* tta_flip: their probabilities */
    float *ema_w;            /* ema: the moving average of m->w[off .. off+np) */
    int *blab2;              /* mixup/cutmix: each row's partner label */
    float *xb, *xi, *probs, *best_w;
    int *lab, *vlab, *perm, *order, *blab;
    FILE *log;
    gr_batcher *bt;          /* without the cache: this epoch's images */
    int start_epoch, start_step, best_epoch, last_epoch;
    gr_run_state rs;         /* from a checkpoint: the partial epoch's sums */
    double best_score;
    /* divergence guard: the smoothed loss and how long since its lowest */
    double ema, ema_best;
    int64_t since_best, step_count;
    bool warned;
    /* time_limit: the deadline (gr_fit_now's clock, 0 = none), the epochs
     * run to their end in this call and their seconds; out of time */
    double deadline, pace[3];   /* pace: seconds per batch of the last 3 epochs (a ring) */
    int epochs_run, epochs0;    /* epochs0: the epochs asked for */
    int64_t stop_iter;       /* > 0: the run ends after this iteration (time_limit) */
    int64_t said_end;        /* the end the last "time limit" line gave */
    bool out_of_time;
} gr_fit_run;

double gr_fit_now(void);   /* monotonic seconds */
/* The cached prefix's size: n samples x F values, 2 bytes each in float16
 * (else 4), twice with the mirrors; and whether gr_fit keeps it (at most
 * half of the memory budget; beyond, the frozen part runs every batch).  */
double gr_prefix_cache_bytes(int n, size_t F, bool half, bool mirrors);
bool gr_prefix_cache_fits(double bytes);
/* GRAFT_FEATURES_PRECISION: 1 = fp32, 0 = fp16 or unset (the default),
 * -1 = anything else (gr_fit refuses it).                                  */
int gr_features_env_fp32(void);
/* perm = a permutation of 0..n-1 drawn from (seed, epoch). */
void gr_fit_shuffle(int *perm, int n, uint64_t seed, int epoch);
/* opts->stop, set by another thread (the CLI's signal thread) or a signal
 * handler: read atomically (a plain read of it would be a data race). */
static inline bool gr_fit_stop_requested(volatile int *stop) {
    return stop && __atomic_load_n(stop, __ATOMIC_RELAXED) != 0;
}

/* fit_features.c.  The features phase: the training features (cache) or
 * the image buffer, the standardize layer's statistics, the validation
 * features.                                                                */
gr_status gr_fit_features(gr_fit_run *r);
/* Mean loss and accuracy of layers first.. on cached features (widened
 * a batch at a time into xb [batch, F]); feat2 (may be NULL): the same
 * samples' features of the mirrored images, whose probabilities are
 * averaged with feat's (test-time flip; probs2: a second [batch, C] buffer). */
gr_status gr_fit_eval_features(gr_ctx *cx, int first, const gr_feats *feat, const int *labels, int n,
                               int batch, float *xb, float *probs, float *loss, float *acc, gr_error *err);
gr_status gr_fit_eval_features_tta(gr_ctx *cx, int first, const gr_feats *feat, const gr_feats *feat2,
                                   const int *labels, int n, int batch, float *xb, float *probs, float *probs2,
                                   float *loss, float *acc, gr_error *err);

/* mix.c: mixup and cutmix on a batch x [B][h][w][c] whose labels are
 * labels[0..B): pairs row b with row B-1-b (labels2[b] = labels[B-1-b]),
 * draws lam ~ Beta(alpha, alpha), mixes (cutmix when only cutmix > 0; both
 * > 0: either, with probability 1/2) and returns the weight of labels.
 * gr_mixup_rows / gr_cutmix_box / gr_cutmix_rows are its steps (cutmix's
 * box [y0, y1) x [x0, x1), its return the part of each image kept).      */
double gr_rng_beta(gr_rng *r, double a, double b);
void gr_mixup_rows(float *x, int B, size_t row, float lam);
void gr_cutmix_box(int h, int w, float lam, gr_rng *r, int *y0, int *x0, int *y1, int *x1);
float gr_cutmix_rows(float *x, int B, int h, int w, int c, int y0, int x0, int y1, int x1);
float gr_mix_batch(float *x, int B, int h, int w, int c, const int *labels, int *labels2, float mixup,
                   float cutmix, gr_rng *r);

/* checkpoint.c.  Save: the model + optimizer state + iteration + RNG +
 * epoch/step, rs and the run's settings (config, a JSON object or NULL).
 * Load: restores the trainer and rs; *epoch = epochs done, *step = batches
 * done of the next; the settings must equal config's (but epochs, out, log,
 * checkpoint, no_cache).                                                   */
gr_status gr_checkpoint_save(gr_model *m, gr_trainer *t, const char *path, int epoch, int step,
                             const gr_run_state *rs, const char *config, const float *ema, gr_error *err);
gr_status gr_checkpoint_load(gr_trainer *t, const char *path, const char *config, int *epoch, int *step,
                             gr_run_state *rs, float *ema, gr_error *err);

/* lr_range.c: the learning-rate range test on the cached features (see
 * there); *lr_out in: the default rate, out: the pick.                     */
gr_status gr_lr_range_test(gr_fit_run *r, float *lr_out);

#endif
