/* lr_range.c — the learning-rate range test (--lr auto): its arithmetic
 * (the smoothed loss curve and the pick) and the sweep gr_fit runs on the
 * cached features before the first epoch.                                  */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/fit.h"

void gr_lr_range_smooth(const double *loss, int n, double *out) {
    /* an exponential moving average started at 0 and divided by (1 - 0.9^k)
     * (Adam's bias correction): the first value is the first loss itself,
     * a constant curve stays constant                                     */
    double ema = 0, decay = 1;
    for (int i = 0; i < n; i++) {
        ema = 0.9 * ema + 0.1 * loss[i];
        decay *= 0.9;
        out[i] = ema / (1 - decay);
    }
}

int gr_lr_range_pick(const double *smoothed, int n) {
    if (n < 10) return -1;   /* too few finite points to read a curve */
    int best = 0;
    for (int i = 1; i < n; i++)
        if (smoothed[i] < smoothed[best]) best = i;
    int edge = n / 20 > 3 ? n / 20 : 3;
    /* lowest at the start: the loss only rose; at the end: it was still
     * falling when the sweep stopped (the best rate may lie beyond it)      */
    if (best < edge || best >= n - edge) return -1;
    /* a flat curve: its lowest point is noise, not a rate that learns */
    if (!(smoothed[0] - smoothed[best] >= 0.05 * fabs(smoothed[0]))) return -1;
    return best;
}

/* ------------------------------------------------------------- the test */

enum { LR_STEPS = 120 };

/* The index of the lowest of v[0..n) (n >= 1). */
static int lo_index(const double *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (v[i] < v[b]) b = i;
    return b;
}

/* The curve: smoothed loss against log10(lr), 10 rows x 60 columns; the
 * scale runs from the lowest loss to the highest before it (the descent);
 * points above (the divergence) sit on the top row as '^'; the pick is 'o'. */
static void plot_curve(const double *ema_v, int done, int best_i, int lo_i) {
    double lo = ema_v[lo_i], hi = lo;
    for (int i = 0; i <= lo_i; i++) hi = fmax(hi, ema_v[i]);
    if (lo_i == 0) for (int i = 0; i < done; i++) hi = fmax(hi, ema_v[i]);
    if (hi - lo < 1e-6) hi = lo + 1e-6;
    gr_log(GR_LOG_INFO, "learning-rate range test (%d steps): smoothed loss against the learning rate", done);
    for (int r = 0; r < 10; r++) {
        double top = hi - (hi - lo) * r / 10.0, bot = hi - (hi - lo) * (r + 1) / 10.0;
        char row[61];
        for (int c = 0; c < 60; c++) {
            int i = c * (LR_STEPS - 1) / 59;
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
}

/* What the test found: the pick, or why it is inconclusive (def kept). */
static void say_pick(const double *lrs, int done, int best_i, int lo_i, float def,
                     float lr, int verbose) {
    if (verbose && best_i >= 0) gr_log(GR_LOG_INFO, "lowest loss at lr %.3g: using lr %.3g", lrs[best_i], lr);
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
}

/* The sweep: up to LR_STEPS steps at exactly their rate, on batches of the
 * cached features in one shuffled order; returns the number of finite steps. */
static int sweep(gr_fit_run *r, const int *perm, double *lrs, double *raw, double *ema_v) {
    int n = r->n, batch = r->o.batch, done = 0;
    size_t F = r->F;
    for (int i = 0; i < LR_STEPS; i++) {
        double lr = 1e-6 * pow(1e7, (double)i / (LR_STEPS - 1));
        gr_trainer_set_lr(r->t, (float)lr);
        int B = batch < n ? batch : n;
        for (int b = 0; b < B; b++) {
            int k = perm[(i * batch + b) % n];
            gr_feats_row(&r->feat, (size_t)k, r->xb + (size_t)b * F);
            r->blab[b] = r->lab[k];
        }
        float l;
        gr_status st = gr_trainer_step(r->t, r->xb, r->blab, B, &l, NULL, r->err);
        if (st != GR_OK || !isfinite(l)) break;
        lrs[i] = lr;
        raw[i] = l;
        done = i + 1;
        gr_lr_range_smooth(raw, done, ema_v);
        double lowest = ema_v[0];
        for (int k = 1; k < done; k++) lowest = fmin(lowest, ema_v[k]);
        if (ema_v[i] > 4 * lowest && i > 10) break;
    }
    return done;
}

/* The learning-rate range test: 120 steps of the run's optimizer on cached
 * features with the rate rising exponentially from 1e-6 to 10 (stopping
 * once the smoothed loss is 4x its lowest); picks a tenth of the rate with
 * the lowest smoothed loss (gr_lr_range_pick), or keeps *lr_out (the
 * default rate) and says so when the curve is inconclusive.  Restores the
 * weights and a fresh optimizer state; prints the curve.                   */
gr_status gr_lr_range_test(gr_fit_run *r, float *lr_out) {
    gr_model *m = r->m;
    float *s1, *s2;
    size_t np;
    int64_t *it;
    gr_rng *rng;
    gr_trainer_state(r->t, &s1, &s2, &np, &it, &rng);
    size_t off = m->w_count - np;
    float *keep = gr_malloc(np * sizeof(float), r->err);
    int *perm = gr_malloc((size_t)r->n * sizeof(int), r->err);
    if (!keep || !perm) { free(keep); free(perm); return GR_ERR_NOMEM; }
    memcpy(keep, m->w + off, np * sizeof(float));
    gr_fit_shuffle(perm, r->n, r->o.seed ^ 0xABCDEFULL, 0);
    double lrs[LR_STEPS], raw[LR_STEPS], ema_v[LR_STEPS];
    /* each step at exactly its rate: the run's schedule (a cosine over a
     * short run reaches 0 within the sweep), decay and warmup are off       */
    gr_optim *q = gr_trainer_optim(r->t), run_optim = *q;
    q->schedule = GR_SCHEDULE_CONSTANT;
    q->decay = 0;
    q->warmup_iters = 0;
    int done = sweep(r, perm, lrs, raw, ema_v);
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
    if (r->o.verbose && done >= 2) plot_curve(ema_v, done, best_i, lo_i);
    say_pick(lrs, done, best_i, lo_i, def, *lr_out, r->o.verbose);
    free(keep);
    free(perm);
    return GR_OK;
}
