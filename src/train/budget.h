/* budget.h — `graft train --budget`: the wall-time budget and the planner's
 * arithmetic (budget.c).  The CLI measures (a probe of the data per base and
 * input size, the throughput of each way to train) and fills one
 * gr_plan_cand per way; gr_plan_choose turns the measurements and the time
 * left into epochs per candidate and picks one.  Pure arithmetic: no clock,
 * no model, so that tests can check it against hand-computed cases.        */
#ifndef GRAFT_TRAIN_BUDGET_H
#define GRAFT_TRAIN_BUDGET_H
#include <stdbool.h>
#include <stdint.h>
#include "core/core.h"

/* Parses a budget: a positive number followed by s, m or h ("90s", "5m",
 * "1.5h"; a bare number is seconds, as timeout(1) takes it).  *seconds.
 * 0 ok; -1 with a message in msg (cap bytes) naming what is wrong.        */
int gr_budget_parse(const char *s, double *seconds, char *msg, size_t cap);
/* "1h02m", "4m30s", "45s" into buf. */
const char *gr_budget_format(double seconds, char *buf, size_t cap);

typedef enum { GR_PLAN_FROZEN = 0, GR_PLAN_FINETUNE = 1 } gr_plan_mode;
/* The default caps on epochs: a head on cached features gains nothing
 * past ~40; fine-tuning stops at 100 epochs or, on small data, at 20,000
 * steps (what trains is the steps: capped at 100 epochs, 15-minute plans on
 * 2,000-3,000 images ended at 60-79% of their budget).                     */
#define GR_PLAN_FROZEN_MAX 40
#define GR_PLAN_FT_MAX 100
#define GR_PLAN_FT_MAX_STEPS 20000
/* The fine-tuning cap for n_train images at batch (0 = 32): the larger of
 * GR_PLAN_FT_MAX epochs and the epochs of GR_PLAN_FT_MAX_STEPS steps.      */
int gr_plan_ft_max_epochs(int n_train, int batch);
/* The rate of a fine-tuning plan (the base at 0.1x of it). */
#define GR_PLAN_FT_LR 0.005f
/* ...and from this many training images, the hand-tuned recipes' 0.01 */
#define GR_PLAN_FT_LR_LARGE 5000

/* One way to spend the budget, as measured, and the planner's verdict. */
typedef struct {
    /* filled by the caller */
    int base;                /* index in the caller's list of bases */
    int size;                /* input side (square) */
    int cut, unfreeze;       /* node indices; unfreeze: first trained base node (fine-tuning), else -1 */
    char cut_name[64], unfreeze_name[64];
    gr_plan_mode mode;
    double probe;            /* the probe's ridge accuracy at this base, size and cut (0..1) */
    double feat_ips;         /* img/s of one pass of the frozen part (frozen: to the cut, the features pass;
                              * fine-tuning: to the unfreeze point, the standardization's pass) */
    double step_ips;         /* img/s of training: the head on cached features, or the fine-tuning step */
    double eval_ips;         /* img/s of the whole model's inference (--test, once at the end) */
    double epoch_extra_s;    /* seconds added to each epoch (its checkpoint) */
    int group;               /* the base: candidates of one group compare by how deep they train */
    int once_passes;         /* passes of the once part over the images (0 = 1; 2: the cached prefix and
                              * its mirrors) */
    double val_ips;          /* img/s of each epoch's validation (0: not counted) */
    int eval_passes;         /* passes of the final evaluation (0 = 1; 2: --tta flip) */
    bool cached;             /* the frozen prefix is cached (for the caller's labels) */
    /* filled by gr_plan_choose */
    double once_s;           /* seconds spent once: the features / statistics pass, validation features */
    double epoch_s;          /* seconds per epoch */
    double eval_s;           /* seconds of the final evaluation */
    int epochs_fit;          /* epochs that fit the time left (may be <= 0) */
    int epochs;              /* epochs planned (epochs_fit capped); 0 = not feasible */
    double group_probe;      /* the best probe score of its group's feasible fine-tuning candidates */
    bool chosen;
} gr_plan_cand;

typedef struct {
    double budget;           /* seconds, the whole budget */
    double spent;            /* seconds already spent (probing, measuring) */
    int n_train, n_val, n_test;
    double reserve;          /* fraction of the budget kept back for what is not modelled (0 = 0.02) */
    int ft_min_epochs;       /* fine-tuning needs at least this many epochs (0 = 4) */
    int ft_good_epochs;      /* ...and prefers candidates that fit this many (0 = 8), */
    int ft_good_steps;       /* or at least ft_min epochs of this many steps (0 = GR_PLAN_GOOD_STEPS) */
    int batch;               /* the steps' batch (0 = 32) */
    int frozen_max_epochs;   /* cap for a frozen head on cached features (0 = GR_PLAN_FROZEN_MAX) */
    int ft_max_epochs;       /* cap for fine-tuning (0 = gr_plan_ft_max_epochs(n_train, batch)) */
    double probe_slack;      /* within a group, a deeper unfreeze wins over a probe score up to this
                              * much better (0 = GR_PLAN_PROBE_SLACK) */
} gr_plan_opts;
/* The issue-19 levers on CIFAR-10 (MobileNet v2, 3 epochs): training from
 * block 10 instead of 13 gave +3.3 points, 128 px instead of 96 +1.0 (its
 * probe score ~0.03 higher): depth counts for more than a small probe gap. */
#define GR_PLAN_PROBE_SLACK 0.04
/* Enough training is 8 epochs, or (large sets) 6,000 steps: on CIFAR-10
 * (45,000 images, 1,407 steps an epoch) MobileNet v2 at 96 px gave 89.78%
 * after 7 epochs and 89.77% after 10, and 128 px after 6 epochs beat both. */
#define GR_PLAN_GOOD_STEPS 6000

/* Fills each candidate's times and epochs and picks one:
 *   time left  = budget - spent - reserve * budget
 *   once_s     = once_passes * (n_train + n_val) / feat_ips,
 *   epoch_s    = n_train / step_ips + n_val / val_ips + epoch_extra_s,
 *   eval_s     = eval_passes * n_test / eval_ips,
 *   epochs_fit = floor((time left - once_s - eval_s) / epoch_s);
 * a frozen candidate is feasible with >= 1 epoch (planned: at most
 * frozen_max), a fine-tuning one with >= ft_min (at most ft_max).
 * Enough training: ft_good epochs, or ft_min epochs of at least ft_good_steps
 * steps (epochs x ceil(n_train / batch)).
 * The pick: among fine-tuning candidates that fit enough training, the group
 * (base) with the best probe score; in it, among those within probe_slack
 * of its best score, the deeper unfreeze (then the better probe, then more
 * epochs); else among those fitting ft_min, the most epochs; else the
 * frozen candidate with the best probe score (then the shorter once_s).
 * Returns its index (and sets its chosen), or -1 when none is feasible.   */
int gr_plan_choose(gr_plan_cand *c, int n, const gr_plan_opts *o);
/* Does fine-tuning candidate c (epochs planned) plan enough training under
 * o (defaults applied as gr_plan_choose applies them)?                     */
bool gr_plan_enough(const gr_plan_cand *c, const gr_plan_opts *o);

/* The run's pace: after `done` batches of a plan of `total`, a batch takes
 * `pace` seconds (validation and epoch ends included) and `left` seconds
 * remain: the batch the run can end at (done..total).                      */
int64_t gr_plan_stop_iter(int64_t done, int64_t total, double pace, double left);

#endif
