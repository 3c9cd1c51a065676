/* test_probe.c — the transferability probe (src/train/probe*.c).
 *
 *   - ridge CV accuracies (every lambda of the grid, and the chosen one) and
 *     LogME against an independent numpy implementation
 *     (tests/fixtures/gen_probe.py: direct solves / slogdet, no SVD), for a
 *     primal case (F < n, a constant column) and a dual one (F > n);
 *   - sanity: features that are a noisy copy of the one-hot labels score
 *     higher than pure noise on both metrics, with and without F > n;
 *   - bad inputs: labels out of range, too few samples, bad folds;
 *   - gr_probe_cuts on a small darknet base (tests/fixtures/darknet/synth.cfg)
 *     over a generated in-memory CIFAR-like .bin: a row per distinct cut,
 *     stage fallback across a route, the pick, all-pools, and errors.   */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"

typedef struct {
    int n, F, C, folds, best;
    double acc[GR_PROBE_N_LAMBDA], logme;
    int *y;
    float *X;
} fixture;

static int load_fixture(const char *path, fixture *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[256];
    if (!fgets(line, sizeof line, fp) || fscanf(fp, "%d %d %d %d", &f->n, &f->F, &f->C, &f->folds) != 4) goto bad;
    for (int l = 0; l < GR_PROBE_N_LAMBDA; l++)
        if (fscanf(fp, "%lf", &f->acc[l]) != 1) goto bad;
    if (fscanf(fp, "%d %lf", &f->best, &f->logme) != 2) goto bad;
    f->y = malloc(sizeof(int) * (size_t)f->n);
    f->X = malloc(sizeof(float) * (size_t)f->n * (size_t)f->F);
    if (!f->y || !f->X) goto bad;
    for (int i = 0; i < f->n; i++) {
        if (fscanf(fp, "%d", &f->y[i]) != 1) goto bad;
        for (int j = 0; j < f->F; j++)
            if (fscanf(fp, "%f", &f->X[(size_t)i * f->F + j]) != 1) goto bad;
    }
    fclose(fp);
    return 0;
bad:
    fclose(fp);
    free(f->y), free(f->X);
    return -1;
}

static void check_fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/probe/%s.txt", name);
    fixture f;
    CHECK(load_fixture(path, &f) == 0, "cannot read %s", path);
    if (check_fails_) return;
    gr_error err = {0};
    double acc = 0, lam = 0, grid[GR_PROBE_N_LAMBDA], lm = 0;
    CHECK(gr_probe_ridge_cv(f.X, f.y, f.n, f.F, f.C, f.folds, &acc, &lam, grid, &err) == GR_OK, "%s", err.msg);
    float g[GR_PROBE_N_LAMBDA], want[GR_PROBE_N_LAMBDA];
    for (int l = 0; l < GR_PROBE_N_LAMBDA; l++) g[l] = (float)grid[l], want[l] = (float)f.acc[l];
    CHECK_CLOSE("ridge CV accuracy per lambda", g, want, GR_PROBE_N_LAMBDA, 1e-6, 0);
    static const double rel[GR_PROBE_N_LAMBDA] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100};
    CHECK(fabs(lam - rel[f.best]) < 1e-12 * rel[f.best], "chosen lambda %g, numpy %g", lam, rel[f.best]);
    CHECK(fabs(acc - f.acc[f.best]) < 1e-9, "acc %g, numpy %g", acc, f.acc[f.best]);
    CHECK(gr_probe_logme(f.X, f.y, f.n, f.F, f.C, &lm, &err) == GR_OK, "%s", err.msg);
    CHECK(fabs(lm - f.logme) < 1e-6 * (1 + fabs(f.logme)), "LogME %.10f, numpy %.10f (diff %.3g)", lm, f.logme,
          lm - f.logme);
    free(f.X), free(f.y);
}

static void test_ridge_logme_vs_numpy_primal(void) { check_fixture("primal"); }
static void test_ridge_logme_vs_numpy_dual(void) { check_fixture("dual"); }

/* Column j a noisy copy of one-hot column j % C (noise sd 1.5) vs pure noise. */
static void signal_vs_noise(int n, int F, int C) {
    uint64_t s = 12345;
    float *sig = malloc(sizeof(float) * (size_t)n * F), *noise = malloc(sizeof(float) * (size_t)n * F);
    int *y = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) y[i] = i % C;
    for (size_t i = 0; i < (size_t)n * F; i++) {
        /* Box-Muller from a 64-bit LCG: two N(0,1) draws */
        double u[2];
        for (int k = 0; k < 2; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        }
        double z1 = sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]), z2 = sqrt(-2 * log(u[0])) * sin(2 * M_PI * u[1]);
        int row = (int)(i / (size_t)F), col = (int)(i % (size_t)F);
        sig[i] = (float)((y[row] == col % C ? 1.0 : 0.0) + 1.5 * z1);
        noise[i] = (float)z2;
    }
    gr_error err = {0};
    double as, an, ls, ln;
    CHECK(gr_probe_ridge_cv(sig, y, n, F, C, 5, &as, NULL, NULL, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_probe_ridge_cv(noise, y, n, F, C, 5, &an, NULL, NULL, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_probe_logme(sig, y, n, F, C, &ls, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_probe_logme(noise, y, n, F, C, &ln, &err) == GR_OK, "%s", err.msg);
    CHECK(as > 0.6 && an < 0.5 && as > an + 0.3, "ridge: signal %.3f, noise %.3f (n=%d F=%d)", as, an, n, F);
    CHECK(ls > ln + 0.05, "LogME: signal %.4f, noise %.4f (n=%d F=%d)", ls, ln, n, F);
    CHECK(isfinite(ls) && isfinite(ln), "LogME not finite");
    free(sig), free(noise), free(y);
}

static void test_signal_beats_noise(void) {
    signal_vs_noise(200, 20, 4);    /* primal */
    signal_vs_noise(60, 150, 3);    /* dual */
}

static void test_bad_inputs(void) {
    float X[40];
    int y[10];
    for (int i = 0; i < 40; i++) X[i] = (float)(i * 7 % 11);
    for (int i = 0; i < 10; i++) y[i] = i % 2;
    gr_error err = {0};
    double a, l;
    y[3] = 2;
    CHECK(gr_probe_ridge_cv(X, y, 10, 4, 2, 5, &a, &l, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "label 2"),
          "label out of range: %s", err.msg);
    CHECK(gr_probe_logme(X, y, 10, 4, 2, &a, &err) == GR_ERR_ARG && strstr(err.msg, "LogME"), "%s", err.msg);
    y[3] = 1;
    CHECK(gr_probe_ridge_cv(X, y, 10, 4, 2, 11, &a, &l, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "folds"),
          "too many folds: %s", err.msg);
    CHECK(gr_probe_ridge_cv(X, y, 1, 4, 2, 5, &a, &l, NULL, &err) == GR_ERR_ARG, "n = 1");
    CHECK(gr_probe_logme(X, y, 10, 4, 1, &a, &err) == GR_ERR_ARG, "one class");
}

/* A CIFAR-10-like record: class c images are tinted by class (so the probe
 * has something to find) plus noise from the LCG state *s. */
static void tinted_record(int i, uint8_t rec[3073], void *state) {
    uint64_t *s = state;
    int c = i % 10;
    rec[0] = (unsigned char)c;
    for (int p = 0; p < 3072; p++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        int ch = p / 1024, v = (int)((*s >> 33) % 96) + ((c >> ch) & 1) * 120 + (c == 9 ? 30 : 0);
        rec[1 + p] = (unsigned char)(v > 255 ? 255 : v);
    }
}
static int write_cifar(const char *path, int n) {
    uint64_t s = 99;
    return check_write_cifar(path, n, tinted_record, &s);
}

static void test_probe_cuts_synth(void) {
    char dir[128], bin[200];
    if (check_mkdtemp(dir, sizeof dir, "probe")) { CHECK(0, "mkdtemp"); return; }
    snprintf(bin, sizeof bin, "%s/data.bin", dir);
    CHECK(write_cifar(bin, 300) == 0, "write %s", bin);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.h = 13, .w = 11, .preprocess = GR_PREP_DARKNET}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    gr_model *m = gr_darknet_load_cfg("tests/fixtures/darknet/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!ds || !m) goto out;
    CHECK(gr_model_load_weights(m, "tests/fixtures/darknet/synth.weights", NULL, &err) == GR_OK, "%s", err.msg);
    int pools[32];
    int last = gr_model_num_layers(m) - 1;
    int np = gr_probe_pool_cuts(m, last, pools, 32);
    CHECK(np >= 3 && pools[np - 1] == last, "all-pools: %d cuts", np);
    for (int k = 1; k < np; k++) CHECK(pools[k] > pools[k - 1], "all-pools ascending");
    for (int k = 0; k + 1 < np; k++) {
        gr_op op = gr_model_layer_op(m, pools[k]);
        CHECK(op == GR_OP_MAXPOOL || op == GR_OP_AVGPOOL || op == GR_OP_GLOBAL_AVGPOOL, "pool cut %d op %d", pools[k], op);
    }
    /* cuts given out of order with a duplicate; layer "12" is a route back to
     * layer 6 and "19" reads layer 18's branch from "17" (route to 0): stage fallback */
    int cuts[6] = {gr_model_find(m, "19"), gr_model_find(m, "0"), gr_model_find(m, "6"),
                   gr_model_find(m, "13"), gr_model_find(m, "0"), last};
    for (int k = 0; k < 6; k++) CHECK(cuts[k] >= 0, "cut %d not found", k);
    gr_probe_row rows[6];
    int nr = 0, ns = 0;
    gr_probe_opts o = {.samples = 100, .seed = 3, .batch = 16};
    CHECK(gr_probe_cuts(m, ds, cuts, 6, &o, rows, &nr, &ns, &err) == GR_OK, "%s", err.msg);
    CHECK(nr == 5, "rows %d (want 5 distinct cuts)", nr);
    CHECK(ns == 100, "samples %d", ns);
    for (int k = 0; k < nr; k++) {
        gr_probe_row *r = &rows[k];
        CHECK(k == 0 || r->node > rows[k - 1].node, "rows ascending");
        CHECK(r->pooled.features == r->c, "pooled features %d, c %d", r->pooled.features, r->c);
        CHECK(r->pooled.ridge_acc >= 0 && r->pooled.ridge_acc <= 1 && isfinite(r->pooled.logme),
              "cut %s: acc %g logme %g", r->name, r->pooled.ridge_acc, r->pooled.logme);
        bool spatial = r->h * r->w > 1;
        CHECK(r->pooled.form == (spatial ? GR_PROBE_GAP : GR_PROBE_VEC), "form of %s", r->name);
        CHECK((r->flat.features > 0) == spatial, "flat scored for %s: %d", r->name, r->flat.features);
        CHECK(r->fwd_ms > 0, "fwd time");
    }
    /* layer "0" (13x11x8 leaky): the tint is linearly visible: well above chance (0.1) */
    CHECK(rows[0].pooled.ridge_acc > 0.5, "cut 0 gap accuracy %.3f", rows[0].pooled.ridge_acc);
    int pick = gr_probe_pick(rows, nr);
    CHECK(pick >= 0 && pick < nr, "pick %d", pick);
    int best = -1;
    CHECK(gr_probe_best_cut(m, ds, cuts, 6, 100, 3, &best, NULL, &err) == GR_OK, "%s", err.msg);
    CHECK(best == rows[pick].node, "best_cut %d, pick %d", best, rows[pick].node);
    /* the same seed gives the same numbers */
    gr_probe_row again[6];
    CHECK(gr_probe_cuts(m, ds, cuts, 6, &o, again, &nr, NULL, &err) == GR_OK, "%s", err.msg);
    CHECK(again[2].pooled.ridge_acc == rows[2].pooled.ridge_acc && again[2].pooled.logme == rows[2].pooled.logme,
          "not deterministic");

    /* errors: a cut outside the model, too few samples, a size mismatch */
    int badcut = 999;
    CHECK(gr_probe_cuts(m, ds, &badcut, 1, &o, rows, &nr, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "999"),
          "bad cut: %s", err.msg);
    gr_probe_opts tiny = {.samples = 3};
    CHECK(gr_probe_cuts(m, ds, cuts, 1, &tiny, rows, &nr, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "too few"),
          "few samples: %s", err.msg);
    gr_dataset *ds32 = gr_dataset_open(bin, NULL, &err);
    CHECK(ds32 != NULL, "%s", err.msg);
    if (ds32)
        CHECK(gr_probe_cuts(m, ds32, cuts, 1, &o, rows, &nr, NULL, &err) == GR_ERR_SHAPE && strstr(err.msg, "32x32"),
              "size mismatch: %s", err.msg);
    gr_dataset_free(ds32);
out:
    gr_model_free(m);
    gr_dataset_free(ds);
    check_rmtree(dir);
}

int main(void) {
    RUN(test_ridge_logme_vs_numpy_primal);
    RUN(test_ridge_logme_vs_numpy_dual);
    RUN(test_signal_beats_noise);
    RUN(test_bad_inputs);
    RUN(test_probe_cuts_synth);
    return check_summary();
}
