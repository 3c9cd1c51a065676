/* budget.c — the wall-time budget of `graft train --budget` and the
 * planner's arithmetic (see budget.h).                                     */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/budget.h"

#define BUDGET_MAX_S (7.0 * 24 * 3600)   /* a week: anything longer is a typo */

int gr_budget_parse(const char *s, double *seconds, char *msg, size_t cap) {
    if (!s || !*s) {
        snprintf(msg, cap, "--budget: empty value (expected a time such as 90s, 5m or 1.5h)");
        return -1;
    }
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || isspace((unsigned char)*s)) {
        snprintf(msg, cap, "--budget '%s': expected a number with a unit, such as 90s, 5m or 1.5h", s);
        return -1;
    }
    double mult = 1;
    if (*end == 's' || *end == 'S') mult = 1, end++;
    else if (*end == 'm' || *end == 'M') mult = 60, end++;
    else if (*end == 'h' || *end == 'H') mult = 3600, end++;
    else if (*end) {
        snprintf(msg, cap, "--budget '%s': unknown unit '%s' (use s, m or h: 90s, 5m, 1.5h)", s, end);
        return -1;
    }
    if (*end) {
        snprintf(msg, cap, "--budget '%s': unexpected '%s' after the unit (use one number and one unit: 90s, "
                 "5m, 1.5h)", s, end);
        return -1;
    }
    if (!isfinite(v) || v <= 0) {
        snprintf(msg, cap, "--budget '%s': the time must be a positive, finite number", s);
        return -1;
    }
    v *= mult;
    if (v > BUDGET_MAX_S) {
        snprintf(msg, cap, "--budget '%s': more than a week (%.0f s); give at most 168h", s, v);
        return -1;
    }
    if (v < 10) {
        snprintf(msg, cap, "--budget '%s': %.3g s is too short to probe the data and train (at least 10s)", s, v);
        return -1;
    }
    *seconds = v;
    return 0;
}

const char *gr_budget_format(double seconds, char *buf, size_t cap) {
    long t = seconds > 0 ? (long)(seconds + 0.5) : 0;
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
    return buf;
}

/* Steps of one epoch: ceil(n_train / batch) (0 for no images). */
static int64_t epoch_steps(int n_train, int batch) {
    return n_train > 0 ? ((int64_t)n_train + batch - 1) / batch : 0;
}

int gr_plan_ft_max_epochs(int n_train, int batch) {
    if (batch <= 0) batch = 32;
    int64_t steps = epoch_steps(n_train, batch);
    if (steps < 1) steps = 1;
    int64_t e = (GR_PLAN_FT_MAX_STEPS + steps - 1) / steps;
    return e > GR_PLAN_FT_MAX ? (int)e : GR_PLAN_FT_MAX;
}

static void plan_defaults(gr_plan_opts *o) {
    if (o->reserve <= 0) o->reserve = 0.02;
    if (o->ft_min_epochs <= 0) o->ft_min_epochs = 4;
    if (o->ft_good_epochs <= 0) o->ft_good_epochs = 8;
    if (o->ft_good_steps <= 0) o->ft_good_steps = GR_PLAN_GOOD_STEPS;
    if (o->batch <= 0) o->batch = 32;
    if (o->frozen_max_epochs <= 0) o->frozen_max_epochs = GR_PLAN_FROZEN_MAX;
    if (o->ft_max_epochs <= 0) o->ft_max_epochs = gr_plan_ft_max_epochs(o->n_train, o->batch);
    if (o->probe_slack <= 0) o->probe_slack = GR_PLAN_PROBE_SLACK;
}

/* Seconds for n images at ips img/s (no rate measured: never fits). */
static double secs(int n, double ips) {
    if (n <= 0) return 0;
    return ips > 0 ? n / ips : INFINITY;
}

/* Candidate c's times and epochs for `left` seconds. */
static void plan_one(gr_plan_cand *c, const gr_plan_opts *o, double left) {
    int once = c->once_passes > 0 ? c->once_passes : 1, ev = c->eval_passes > 0 ? c->eval_passes : 1;
    c->once_s = once * secs(o->n_train + o->n_val, c->feat_ips);
    c->epoch_s = secs(o->n_train, c->step_ips) + (c->val_ips > 0 ? secs(o->n_val, c->val_ips) : 0) +
                 (c->epoch_extra_s > 0 ? c->epoch_extra_s : 0);
    c->eval_s = ev * secs(o->n_test, c->eval_ips);
    double t = left - c->once_s - c->eval_s;
    c->epochs_fit = isfinite(t) && c->epoch_s > 0 && isfinite(c->epoch_s) && t > 0
                        ? (t / c->epoch_s > 1e6 ? 1000000 : (int)floor(t / c->epoch_s)) : 0;
    int lo = c->mode == GR_PLAN_FINETUNE ? o->ft_min_epochs : 1;
    int hi = c->mode == GR_PLAN_FINETUNE ? o->ft_max_epochs : o->frozen_max_epochs;
    c->epochs = c->epochs_fit >= lo ? (c->epochs_fit < hi ? c->epochs_fit : hi) : 0;
    c->chosen = false;
}

/* Is a better than b among fine-tuning candidates that fit enough epochs?
 * Across groups (bases) the better group score; within one, a candidate
 * more than `slack` below the group's best probe loses, then the deeper
 * unfreeze, the better probe, more epochs.                                  */
static bool ft_better(const gr_plan_cand *a, const gr_plan_cand *b, double slack) {
    if (a->group != b->group) return a->group_probe > b->group_probe;
    bool a_near = a->probe >= a->group_probe - slack, b_near = b->probe >= b->group_probe - slack;
    if (a_near != b_near) return a_near;
    if (a->unfreeze != b->unfreeze) return a->unfreeze < b->unfreeze;
    if (a->probe != b->probe) return a->probe > b->probe;
    return a->epochs > b->epochs;
}

/* Does fine-tuning candidate c plan enough training (budget.h)? */
static bool enough(const gr_plan_cand *c, const gr_plan_opts *o) {
    if (c->mode != GR_PLAN_FINETUNE || c->epochs <= 0) return false;
    double steps = (double)c->epochs * (double)epoch_steps(o->n_train, o->batch);
    return c->epochs >= o->ft_good_epochs || (c->epochs >= o->ft_min_epochs && steps >= o->ft_good_steps);
}

/* Each candidate's group_probe: the best probe of its group among the
 * fine-tuning candidates planning enough training.                        */
static void group_scores(gr_plan_cand *c, int n, const gr_plan_opts *o) {
    for (int i = 0; i < n; i++) {
        c[i].group_probe = -1;
        for (int j = 0; j < n; j++)
            if (c[j].group == c[i].group && enough(&c[j], o) && c[j].probe > c[i].group_probe)
                c[i].group_probe = c[j].probe;
    }
}

bool gr_plan_enough(const gr_plan_cand *c, const gr_plan_opts *opts) {
    gr_plan_opts o = *opts;
    plan_defaults(&o);
    return enough(c, &o);
}

int gr_plan_choose(gr_plan_cand *c, int n, const gr_plan_opts *opts) {
    gr_plan_opts o = *opts;
    plan_defaults(&o);
    double left = o.budget - o.spent - o.reserve * o.budget;
    for (int i = 0; i < n; i++) plan_one(&c[i], &o, left);
    int best = -1;
    group_scores(c, n, &o);
    for (int i = 0; i < n; i++)   /* fine-tuning that fits enough epochs */
        if (enough(&c[i], &o) &&
            (best < 0 || ft_better(&c[i], &c[best], o.probe_slack)))
            best = i;
    for (int i = 0; best < 0 && i < n; i++)   /* ...else the most epochs of fine-tuning */
        if (c[i].mode == GR_PLAN_FINETUNE && c[i].epochs > 0)
            best = i;
    for (int i = 0; i < n; i++)
        if (best >= 0 && !enough(&c[best], &o) && c[i].mode == GR_PLAN_FINETUNE && c[i].epochs > 0 &&
            (c[i].epochs > c[best].epochs ||
             (c[i].epochs == c[best].epochs && (c[i].probe > c[best].probe ||
                                                (c[i].probe == c[best].probe && c[i].unfreeze < c[best].unfreeze)))))
            best = i;
    for (int i = 0; best < 0 && i < n; i++)   /* ...else the best frozen candidate */
        if (c[i].mode == GR_PLAN_FROZEN && c[i].epochs > 0) {
            int b = i;
            for (int j = i + 1; j < n; j++)
                if (c[j].mode == GR_PLAN_FROZEN && c[j].epochs > 0 &&
                    (c[j].probe > c[b].probe || (c[j].probe == c[b].probe && c[j].once_s < c[b].once_s)))
                    b = j;
            best = b;
        }
    if (best >= 0) c[best].chosen = true;
    return best;
}

int64_t gr_plan_stop_iter(int64_t done, int64_t total, double pace, double left) {
    if (done >= total || !(pace > 0)) return total;
    double fit = left > 0 ? floor(left / pace) : 0;
    if (fit >= (double)(total - done)) return total;
    return done + (int64_t)fit;
}
