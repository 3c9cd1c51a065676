/* test_fpmode.c — subnormal floats flushed while graft computes
 * (src/core/fpmode.c), by hand:
 *
 *   - before: a subnormal (1e-39) survives x * 1, and 1e-30 * 1e-9 gives one;
 *   - gr_fp_flush_enter: on the calling thread and on every thread of an
 *     OpenMP team (more threads than the pool had: new threads inherit it),
 *     the subnormal input reads as 0 (DAZ) and the subnormal result is 0
 *     (FTZ); normal arithmetic is untouched (1e-30 * 1e-8 = 1e-38 exactly
 *     as a float);
 *   - gr_fp_flush_leave restores the caller's mode on every thread;
 *   - gr_fit flushes during its run (checked from its on_epoch callback,
 *     on the caller's thread and the team's) and leaves the caller's mode
 *     as it found it.
 * On an architecture without a flush mode (not x86, not AArch64) the checks
 * are skipped with a message.                                              */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "check.h"
#include "graft.h"
#include "core/core.h"

/* 1: the calling thread flushes both ways (by arithmetic, not by the flag); 0: neither; -1: mixed */
static int flushes(void) {
    volatile float sub = 1e-39f, one = 1.0f, a = 1e-30f, b = 1e-9f;
    int daz = (float)(sub * one) == 0.0f, ftz = (float)(a * b) == 0.0f;
    return daz && ftz ? 1 : !daz && !ftz ? 0 : -1;
}

/* threads of a team of n whose arithmetic gives want (and whose flag agrees) */
static int team_agree(int n, int want) {
    int agree = 0;
#pragma omp parallel num_threads(n) reduction(+ : agree)
    agree += flushes() == want && gr_fp_flushing() == (want == 1);
    return agree;
}

static void test_enter_leave(void) {
    int n = omp_get_max_threads() + 1;   /* one thread more than the pool: created while flushing */
    CHECK(flushes() == 0 && !gr_fp_flushing(), "before: the process should start without flushing (got %d)", flushes());
    CHECK(team_agree(n, 0) == n, "before: %d of %d threads keep subnormals", team_agree(n, 0), n);
    unsigned saved = gr_fp_flush_enter();
    CHECK(flushes() == 1 && gr_fp_flushing(), "entered: the calling thread flushes (got %d)", flushes());
    CHECK(team_agree(n, 1) == n, "entered: %d of %d threads flush", team_agree(n, 1), n);
    volatile float a = 1e-30f, b = 1e-8f;
    CHECK((float)(a * b) == 1e-38f, "entered: normal results are untouched (%g)", (double)(a * b));
    gr_fp_flush_leave(saved);
    CHECK(flushes() == 0 && !gr_fp_flushing(), "left: the calling thread keeps subnormals again (got %d)", flushes());
    CHECK(team_agree(n, 0) == n, "left: %d of %d threads keep subnormals", team_agree(n, 0), n);
}

typedef struct { int epochs, caller_ok, team_ok, team_n; } seen;
static void on_epoch(const gr_epoch_log *e, void *ctx) {
    (void)e;
    seen *s = ctx;
    s->epochs++;
    s->caller_ok += flushes() == 1;
    s->team_n = omp_get_max_threads();
    s->team_ok += team_agree(s->team_n, 1) == s->team_n;
}

/* CIFAR-10 record i: label i % 2 (of 10 classes), bright or dark with a little structure */
static void record(int i, uint8_t rec[3073], void *ctx) {
    (void)ctx;
    rec[0] = (uint8_t)(i % 2);
    for (int k = 0; k < 3072; k++) rec[1 + k] = (uint8_t)((i % 2 ? 150 : 60) + (k * 7 + i * 3) % 50);
}

static void test_fit_flushes(void) {
    char dir[256], bin[300];
    if (check_mkdtemp(dir, sizeof dir, "fpmode")) { CHECK(0, "cannot make a directory in /tmp"); return; }
    snprintf(bin, sizeof bin, "%s/train.bin", dir);
    gr_error e = {0};
    gr_dataset *ds = check_write_cifar(bin, 64, record, NULL) ? NULL : gr_dataset_open(bin, NULL, &e);
    gr_model *m = ds ? gr_model_new(32, 32, 3, &e) : NULL;
    if (m && gr_stack(m, &e, gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK) { gr_model_free(m); m = NULL; }
    CHECK(m != NULL, "setup: %s", e.msg);
    if (m) {
        gr_model_init_params(m, 0, 1);
        seen s = {0};
        gr_fit_opts o = {.epochs = 2, .batch = 16, .seed = 1, .no_cache = true, .on_epoch = on_epoch, .on_epoch_ctx = &s,
                         .optim = gr_sgd((gr_sgd_opts){.lr = 0.001f, .momentum = 0.9f})};
        gr_status st = gr_fit(m, ds, NULL, 0, &o, &e);
        CHECK(st == GR_OK, "fit: %s", e.msg);
        CHECK(s.epochs == 2 && s.caller_ok == 2 && s.team_ok == 2,
              "during gr_fit: %d epochs, the caller flushed in %d, the team of %d in %d", s.epochs, s.caller_ok,
              s.team_n, s.team_ok);
        CHECK(flushes() == 0 && !gr_fp_flushing(), "after gr_fit: the caller's mode is back (got %d)", flushes());
        gr_model_free(m);
    }
    gr_dataset_free(ds);
    check_rmtree(dir);
}

int main(void) {
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    RUN(test_enter_leave);
    RUN(test_fit_flushes);
#else
    printf("SKIP test_fpmode: no flush-to-zero mode known on this architecture\n");
#endif
    return check_summary();
}
