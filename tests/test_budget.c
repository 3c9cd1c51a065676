/* test_budget.c — `graft train --budget`'s arithmetic (src/train/budget.c)
 * and gr_fit's time_limit.
 *
 *   - gr_budget_parse: the s/m/h forms and a bare number (seconds); each bad
 *     value refused with a message naming it (empty, no number, unknown or
 *     doubled unit, zero, negative, infinite, NaN, under 10 s, over a week);
 *   - gr_plan_choose against hand-computed plans: the times and epochs of
 *     every candidate (left = budget - spent - 2% of the budget; epochs =
 *     floor((left - once - eval) / epoch)), the caps, and the pick in each
 *     regime (fine-tuning fitting 8 epochs: best probe, then deeper; fitting
 *     4: the most epochs; none: the best frozen head; nothing: -1);
 *   - gr_plan_stop_iter by hand;
 *   - gr_fit with a time limit already passed: the run ends after half an
 *     epoch (the first batch at or past half), with the weights trained so
 *     far and no epoch logged; a generous limit changes nothing (bit-identical
 *     to no limit).  No timing is asserted: only what a passed or a
 *     never-reached deadline implies.                                      */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "graft.h"
#include "format/safetensors.h"
#include "train/budget.h"

static void test_parse(void) {
    static const struct { const char *s; double v; } good[] = {
        {"90s", 90}, {"5m", 300}, {"1.5h", 5400}, {"45", 45}, {"2M", 120}, {"0.25h", 900}, {"10s", 10}, {"168h", 604800}};
    char msg[256];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        double v = -1;
        int rc = gr_budget_parse(good[i].s, &v, msg, sizeof msg);
        CHECK(rc == 0 && v == good[i].v, "'%s': rc %d, %g s (want %g): %s", good[i].s, rc, v, good[i].v, rc ? msg : "");
    }
    static const struct { const char *s, *want; } bad[] = {
        {"", "empty"}, {"m", "expected a number"}, {" 5m", "expected a number"}, {"5x", "unknown unit 'x'"},
        {"5mm", "unexpected 'm'"}, {"2m30s", "unexpected '30s'"}, {"0", "positive"}, {"-5m", "positive"},
        {"1e400", "positive"}, {"nan", "positive"}, {"9s", "too short"}, {"169h", "more than a week"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v = 123;
        msg[0] = 0;
        int rc = gr_budget_parse(bad[i].s, &v, msg, sizeof msg);
        CHECK(rc == -1 && v == 123 && strstr(msg, bad[i].want) && strstr(msg, "--budget"),
              "'%s': rc %d, message '%s' (want '%s')", bad[i].s, rc, msg, bad[i].want);
    }
    char b[32];
    CHECK(!strcmp(gr_budget_format(45, b, sizeof b), "45s"), "%s", b);
    CHECK(!strcmp(gr_budget_format(270, b, sizeof b), "4m30s"), "%s", b);
    CHECK(!strcmp(gr_budget_format(3720, b, sizeof b), "1h02m"), "%s", b);
}

/* 1000 training images, 500 test; 60 s already spent.  A: frozen (features
 * 100 img/s -> 10 s once; head 10000 img/s -> 0.1 s/epoch; eval 100 img/s ->
 * 5 s); B: fine-tuning from node 20 at 50 img/s (20 s/epoch); C: from node
 * 10 at 20 img/s (50 s/epoch); D: another size, probe 0.75, from 20 at
 * 25 img/s (40 s/epoch).                                                  */
static int cands(gr_plan_cand *c, bool with_d) {
    memset(c, 0, 4 * sizeof *c);
    for (int i = 0; i < 4; i++) {
        c[i].probe = 0.7, c[i].feat_ips = 100, c[i].eval_ips = 100, c[i].cut = 30, c[i].size = 64;
        c[i].mode = GR_PLAN_FINETUNE;
    }
    c[0].mode = GR_PLAN_FROZEN, c[0].unfreeze = -1, c[0].step_ips = 10000;
    c[1].unfreeze = 20, c[1].step_ips = 50;
    c[2].unfreeze = 10, c[2].step_ips = 20;
    c[3].unfreeze = 20, c[3].step_ips = 25, c[3].probe = 0.75, c[3].size = 96;
    return with_d ? 4 : 3;
}

static void test_choose(void) {
    gr_plan_cand c[4];
    gr_plan_opts o = {.budget = 600, .spent = 60, .n_train = 1000, .n_test = 500};
    /* left = 600 - 60 - 12 = 528; minus once 10 and eval 5: 513 */
    int n = cands(c, false), pick = gr_plan_choose(c, n, &o);
    CHECK(c[0].once_s == 10 && c[0].eval_s == 5 && fabs(c[0].epoch_s - 0.1) < 1e-12 && c[1].epoch_s == 20 &&
          c[2].epoch_s == 50, "times: once %g eval %g epochs %g %g %g", c[0].once_s, c[0].eval_s, c[0].epoch_s,
          c[1].epoch_s, c[2].epoch_s);
    CHECK(c[0].epochs_fit == 5130 && c[0].epochs == GR_PLAN_FROZEN_MAX, "frozen: fit %d (513 / 0.1), epochs %d",
          c[0].epochs_fit, c[0].epochs);
    CHECK(c[1].epochs_fit == 25 && c[1].epochs == 25 && c[2].epochs_fit == 10 && c[2].epochs == 10,
          "fine-tuning: fit %d/%d, epochs %d/%d (want 25, 10)", c[1].epochs_fit, c[2].epochs_fit, c[1].epochs,
          c[2].epochs);
    CHECK(pick == 2 && c[2].chosen && !c[1].chosen && !c[0].chosen, "both fit 8 epochs, same probe: the deeper "
          "unfreeze (C) wins; got %d", pick);
    /* D has the better probe score and fits 12 epochs: it wins */
    n = cands(c, true);
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 3 && c[3].epochs == 12, "the better probe among those fitting 8: D (12 epochs); got %d (%d)", pick,
          c[3].epochs);
    /* D within the slack (0.04) of the group's best: the deeper unfreeze (C) wins again */
    c[3].probe = 0.73;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 2 && c[2].group_probe == 0.73, "D 0.03 better, within the slack: C (deeper); got %d (group %g)",
          pick, c[2].group_probe);
    o.probe_slack = 0.02;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 3, "slack 0.02: D's 0.03 counts; got %d", pick);
    o.probe_slack = 0;
    /* another base (group 1) whose only candidate fits 8 with a better probe: it wins over the deeper C */
    c[3].group = 1;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 3 && c[3].group_probe == 0.73 && c[2].group_probe == 0.7, "group 1 better: D; got %d", pick);
    c[3].probe = 0.69;   /* ...and loses with a worse one, however few its epochs matter */
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 2, "group 1 worse: C; got %d", pick);
    c[3].group = 0, c[3].probe = 0.75;
    /* 300 s: left 234, 219 after once/eval: B 10 epochs, C 4, D 5: B (the only one fitting 8) */
    o.budget = 300;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 1 && c[1].epochs == 10 && c[2].epochs == 4 && c[3].epochs == 5, "300 s: B; got %d (B %d C %d D %d)",
          pick, c[1].epochs, c[2].epochs, c[3].epochs);
    /* 200 s: left 136, 121: B 6, C 2 (< 4: not feasible), D 3 (not feasible): B, the most epochs */
    o.budget = 200;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 1 && c[1].epochs == 6 && c[2].epochs == 0 && c[2].epochs_fit == 2 && c[3].epochs == 0,
          "200 s: B with 6; got %d (B %d C %d/%d D %d)", pick, c[1].epochs, c[2].epochs, c[2].epochs_fit, c[3].epochs);
    /* 120 s: left 57.6, 42.6: no fine-tuning fits 4; the frozen head: 426 -> 40 */
    o.budget = 120;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 0 && c[0].epochs == GR_PLAN_FROZEN_MAX && c[0].epochs_fit == 426, "120 s: frozen; got %d (fit %d)",
          pick, c[0].epochs_fit);
    /* of two frozen candidates the better probe; the caps move with the options */
    c[1].mode = GR_PLAN_FROZEN, c[1].probe = 0.8, c[1].step_ips = 10000;
    o.frozen_max_epochs = 300;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 1 && c[1].epochs == 300, "frozen, better probe: 1 (300 epochs); got %d (%d)", pick, c[1].epochs);
    /* the per-epoch extra (the checkpoint) counts */
    n = cands(c, false);
    o = (gr_plan_opts){.budget = 600, .spent = 60, .n_train = 1000, .n_test = 500};
    c[1].epoch_extra_s = 0.52;   /* 513 / 20.52 = 25.0 -> 25; 0.53: 24.98 -> 24 */
    c[2].epoch_extra_s = 1.5;
    gr_plan_choose(c, n, &o);
    CHECK(c[1].epochs == 25 && c[2].epochs == 9 && fabs(c[2].epoch_s - 51.5) < 1e-12, "extra: %d %d (%g)", c[1].epochs,
          c[2].epochs, c[2].epoch_s);
    /* the cached prefix's pass over the images and their mirrors, each
     * epoch's validation, the test twice (--tta flip): 900 trained, 100
     * validated; B: prefix 200 img/s -> 2 * 1000 / 200 = 10 s once; steps
     * 60 img/s -> 15 s + 100 / 50 = 2 s validation per epoch; eval 2 * 500 /
     * 100 = 10 s: floor((528 - 10 - 10) / 17) = 29 */
    n = cands(c, false);
    o = (gr_plan_opts){.budget = 600, .spent = 60, .n_train = 900, .n_val = 100, .n_test = 500};
    c[1].once_passes = 2, c[1].feat_ips = 200, c[1].step_ips = 60, c[1].val_ips = 50, c[1].eval_passes = 2;
    gr_plan_choose(c, n, &o);
    CHECK(c[1].once_s == 10 && c[1].epoch_s == 17 && c[1].eval_s == 10 && c[1].epochs_fit == 29,
          "cached: once %g epoch %g eval %g fit %d (want 10 17 10 29)", c[1].once_s, c[1].epoch_s, c[1].eval_s,
          c[1].epochs_fit);
    /* enough training by steps: 45,000 images, batch 32 -> 1,407 steps an
     * epoch; left 528, once 1 s (45,000 img/s), eval 5 s: 522 s.  B: 100 s an
     * epoch (450 img/s) -> 5 epochs = 7,035 steps >= 6,000: enough; C: 120 s
     * (375 img/s) -> 4 epochs = 5,628 steps: not.  B wins although C trains
     * deeper; with 5,000 steps enough, C (deeper) wins.                    */
    n = cands(c, false);
    o = (gr_plan_opts){.budget = 600, .spent = 60, .n_train = 45000, .n_test = 500};
    for (int i = 0; i < n; i++) c[i].feat_ips = 45000;
    c[1].step_ips = 450, c[2].step_ips = 375;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 1 && c[1].epochs == 5 && c[2].epochs == 4, "steps: B (5 epochs); got %d (B %d, C %d)", pick,
          c[1].epochs, c[2].epochs);
    o.ft_good_steps = 5000;
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 2, "5,000 steps enough: C; got %d", pick);
    o.ft_good_steps = 0, o.batch = 64;   /* 704 steps an epoch: 5 epochs = 3,520, not enough: the most epochs, B */
    pick = gr_plan_choose(c, n, &o);
    CHECK(pick == 1 && c[1].group_probe < 0, "batch 64: B by its epochs; got %d (group %g)", pick, c[1].group_probe);
    /* nothing fits: the features pass alone is longer than the budget */
    n = cands(c, true);
    for (int i = 0; i < n; i++) c[i].feat_ips = 1;
    CHECK(gr_plan_choose(c, n, &o) == -1, "nothing fits: -1");
    for (int i = 0; i < n; i++) CHECK(c[i].epochs == 0 && !c[i].chosen, "cand %d: %d epochs", i, c[i].epochs);
    /* a rate never measured (0) never fits */
    n = cands(c, false);
    c[0].step_ips = 0, c[1].step_ips = 0, c[2].step_ips = 0;
    CHECK(gr_plan_choose(c, n, &o) == -1, "no rates: -1");
}

/* The fine-tuning cap: 100 epochs, or the epochs of 20,000 steps where
 * they are more; by hand: 2,000 images at batch 32 = 63 steps an epoch ->
 * ceil(20000 / 63) = 318; 3,000 -> 94 -> 213; 45,000 -> 1,407 -> 15, so
 * 100; batch 0 is 32; 20,000 images at batch 100 = 200 steps -> 100.  And
 * the plan applies it: a candidate fitting 500 epochs of 2,000 images
 * plans 318 (with the cap left at 0 in the options).                      */
static void test_ft_cap(void) {
    static const struct { int n, batch, want; } k[] = {
        {2000, 32, 318}, {3000, 32, 213}, {45000, 32, 100}, {2000, 0, 318}, {20000, 100, 100}, {160, 32, 4000}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        int got = gr_plan_ft_max_epochs(k[i].n, k[i].batch);
        CHECK(got == k[i].want, "%d images at batch %d: cap %d (want %d)", k[i].n, k[i].batch, got, k[i].want);
    }
    gr_plan_cand c[1];
    memset(c, 0, sizeof c);
    /* left = 1000 - 0 - 20 = 980; once 2,000 / 1000 = 2 s; eval 0; 1 s an epoch (2,000 / 2,000) -> 978 fit */
    c[0].probe = 0.7, c[0].feat_ips = 1000, c[0].eval_ips = 1000, c[0].step_ips = 2000, c[0].cut = 30;
    c[0].size = 64, c[0].mode = GR_PLAN_FINETUNE, c[0].unfreeze = 20;
    gr_plan_opts o = {.budget = 1000, .n_train = 2000, .n_test = 0};
    int pick = gr_plan_choose(c, 1, &o);
    CHECK(pick == 0 && c[0].epochs_fit == 978 && c[0].epochs == 318, "plan: pick %d, fit %d, epochs %d (want 978, 318)",
          pick, c[0].epochs_fit, c[0].epochs);
}

static void test_stop_iter(void) {
    CHECK(gr_plan_stop_iter(100, 500, 0.5, 100) == 300, "100 + 100/0.5");
    CHECK(gr_plan_stop_iter(100, 500, 0.5, 1e9) == 500, "ample time: the total");
    CHECK(gr_plan_stop_iter(100, 500, 0.5, -3) == 100, "past the deadline: now");
    CHECK(gr_plan_stop_iter(100, 500, 0, 10) == 500, "no pace: the total");
    CHECK(gr_plan_stop_iter(500, 500, 0.5, 10) == 500, "done");
    CHECK(gr_plan_stop_iter(0, 40, 0.3, 1.0) == 3, "floor(1/0.3) = 3");
}

/* ------------------------------------------------------ gr_fit time_limit */

static void record(int i, uint8_t rec[3073], void *user) {
    gr_rng *r = user;
    int k = i % 10;
    rec[0] = (uint8_t)k;
    for (int p = 0; p < 3072; p++) rec[1 + p] = (uint8_t)(40 * k + 60 * (p / 1024 == k % 3) + (gr_rng_next(r) & 31));
}

static gr_model *tiny(const char *cfg, gr_error *e) {
    gr_model *m = gr_darknet_load_cfg(cfg, 32, 32, e);
    if (!m) return NULL;
    int c = gr_model_num_layers(m) - 1;
    gr_model_freeze_upto(m, c);
    if (gr_stack(m, e, gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK) { gr_model_free(m); return NULL; }
    gr_model_init_params(m, c + 1, 3);
    return m;
}

static void test_fit_time_limit(void) {
    char dir[512], bin[600], cfg[600];
    if (check_mkdtemp(dir, sizeof dir, "budget")) { CHECK(0, "mkdtemp"); return; }
    snprintf(bin, sizeof bin, "%s/t.bin", dir);
    snprintf(cfg, sizeof cfg, "%s/t.cfg", dir);
    gr_rng r;
    gr_rng_seed(&r, 9);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL, "cfg");
    if (!f) return;
    fprintf(f, "[net]\nheight=32\nwidth=32\nchannels=3\n\n[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\n"
               "activation=leaky\n\n[maxpool]\nsize=4\nstride=4\n");
    fclose(f);
    CHECK(check_write_cifar(bin, 64, record, &r) == 0, "bin");
    gr_error e = {0};
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET}, &e);
    gr_model *m0 = ds ? tiny(cfg, &e) : NULL, *m1 = ds ? tiny(cfg, &e) : NULL, *m2 = ds ? tiny(cfg, &e) : NULL;
    CHECK(ds && m0 && m1 && m2, "setup: %s", e.msg);
    if (!ds || !m0 || !m1 || !m2) goto out;
    gr_epoch_log h0[3], h1[3], h2[3];
    memset(h1, 0, sizeof h1);
    /* batch 8: 8 batches per epoch; a limit already passed (1 ns) stops the
     * first epoch at batch 4 (half), logging no epoch */
    gr_fit_opts o = {.epochs = 3, .batch = 8, .seed = 2, .history = h0};
    CHECK(gr_fit(m0, ds, NULL, 0, &o, &e) == GR_OK, "fit: %s", e.msg);
    o.history = h1;
    o.time_limit = 1e-9;
    for (int i = 0; i < 3; i++) h1[i].epoch = -1;
    CHECK(gr_fit(m1, ds, NULL, 0, &o, &e) == GR_OK, "fit, limit passed: %s", e.msg);
    CHECK(h1[0].epoch == -1, "no epoch logged: %d", h1[0].epoch);
    size_t nw = m1->w_count;
    int changed = 0, same_as_full = 1;
    gr_model *init = tiny(cfg, &e);
    for (size_t k = 0; init && k < nw; k++) {
        changed |= m1->w[k] != init->w[k];
        same_as_full &= m1->w[k] == m0->w[k];
    }
    CHECK(init && changed && !same_as_full, "half an epoch trained: changed %d, equal to 3 epochs %d", changed,
          same_as_full);
    gr_model_free(init);
    /* a limit never reached: the same run as without one, bit for bit */
    o.history = h2;
    o.time_limit = 1e6;
    CHECK(gr_fit(m2, ds, NULL, 0, &o, &e) == GR_OK, "fit, ample limit: %s", e.msg);
    CHECK(!memcmp(m2->w, m0->w, m0->w_count * sizeof(float)) && h2[2].epoch == 3 && h2[2].loss == h0[2].loss,
          "an ample limit changes nothing (3 epochs, same weights)");
    /* ...but with time_limit_epochs the run grows to them (history: its first 3) */
    gr_model *m3 = tiny(cfg, &e);
    gr_epoch_log h3[4];
    memset(h3, 0, sizeof h3);
    h3[3].epoch = -7;
    o.history = h3;
    o.time_limit_epochs = 5;
    int64_t it = 0;
    char ck[700];
    snprintf(ck, sizeof ck, "%s/c.ckpt", dir);
    o.checkpoint = ck;
    CHECK(m3 && gr_fit(m3, ds, NULL, 0, &o, &e) == GR_OK, "fit, growing: %s", e.msg);
    CHECK(h3[2].epoch == 3 && h3[3].epoch == -7, "history: the first 3 epochs only (%d, %d)", h3[2].epoch, h3[3].epoch);
    /* the checkpoint of the last epoch: epoch 5 */
    gr_model *ckm = gr_model_load(ck, &e);
    CHECK(ckm != NULL, "checkpoint: %s", e.msg);
    gr_st_file *sf = gr_st_open(ck, &e);
    const char *tr = sf ? gr_st_meta(sf, "graft.training") : NULL;
    CHECK(tr && strstr(tr, "\"epoch\": 5,"), "the run grew to 5 epochs (checkpoint: %.60s)", tr ? tr : "none");
    gr_st_close(sf);
    (void)it;
    gr_model_free(ckm);
    gr_model_free(m3);
out:
    gr_model_free(m0);
    gr_model_free(m1);
    gr_model_free(m2);
    gr_dataset_free(ds);
    check_rmtree(dir);
}

int main(void) {
    RUN(test_parse);
    RUN(test_choose);
    RUN(test_ft_cap);
    RUN(test_stop_iter);
    RUN(test_fit_time_limit);
    return check_summary();
}
