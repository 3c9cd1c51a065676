/* test_fit.c — gr_fit / gr_evaluate / gr_model_save+load end to end, on a
 * tiny CIFAR-like .bin written here (class k = a colour and a dark stripe at
 * rows 4k..4k+2, plus noise) and a tiny darknet base (conv+bn+leaky+maxpool
 * x2, random weights) with a flatten + dense:10:softmax head.
 *
 *   - the features cache and the uncached path give bit-identical weights
 *   - the same seed twice: identical; another seed: different
 *   - the head learns the pattern (train and held-out accuracy >> 10%)
 *   - gr_evaluate's loss / accuracy / confusion against a per-image oracle
 *     (gr_dataset_get + gr_model_predict, argmax and clipped cross-entropy here)
 *   - save -> load gives identical predictions, classes, frozen prefix
 *   - the file read by an independent 10-line numpy safetensors reader
 *     (tests/fixtures/gen_cli.py stcheck): names, shapes, bits
 *   - bad inputs: more classes than outputs, wrong image size, all frozen,
 *     a truncated model file, a non-model safetensors file             */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/safetensors.h"
#include "train/fit.h"

static char dir[256];
static char bin_train[300], bin_test[300], cfg_path[300];

enum { N_TRAIN = 300, N_TEST = 100, EPOCHS = 6 };

static const uint8_t colours[10][3] = {{220, 40, 40},  {40, 220, 40},   {40, 40, 220},   {220, 220, 40},
                                       {220, 40, 220}, {40, 220, 220},  {230, 230, 230}, {30, 30, 30},
                                       {220, 130, 40}, {130, 40, 220}};

/* CIFAR-10 record i: label i % 10, the class pattern plus N(0, 24) noise. */
static void pattern_record(int i, uint8_t rec[3073], void *rng) {
    int k = i % 10;
    rec[0] = (uint8_t)k;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                float v = colours[k][c];
                if (y >= 4 * k && y < 4 * k + 3) v *= 0.5f;
                v += 24.0f * gr_rng_normal(rng);
                rec[1 + c * 1024 + y * 32 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
}
static int write_bin(const char *path, int n, uint64_t seed) {
    gr_rng r;
    gr_rng_seed(&r, seed);
    return check_write_cifar(path, n, pattern_record, &r);
}

static int setup(void) {
    if (check_mkdtemp(dir, sizeof dir, "fit")) return -1;
    snprintf(bin_train, sizeof bin_train, "%s/train.bin", dir);
    snprintf(bin_test, sizeof bin_test, "%s/test.bin", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tiny.cfg", dir);
    return write_bin(bin_train, N_TRAIN, 1) || write_bin(bin_test, N_TEST, 2) || check_write_tiny_cfg(cfg_path) ? -1 : 0;
}

static void teardown(void) { check_rmtree(dir); }

static gr_dataset *open_bin(const char *path) {
    gr_error e = {0};
    gr_dataset *ds = gr_dataset_open(path, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET}, &e);
    if (!ds) fprintf(stderr, "  open %s: %s\n", path, e.msg);
    return ds;
}

/* The tiny base (random weights, seed 0), frozen, + flatten + dense:10:softmax
 * initialized from head_seed.  Returns the model; *cut = last frozen node.  */
static gr_model *build(uint64_t head_seed, int *cut) {
    gr_error e = {0};
    gr_model *m = gr_darknet_load_cfg(cfg_path, 32, 32, &e);
    if (!m) { fprintf(stderr, "  cfg: %s\n", e.msg); return NULL; }
    int c = gr_model_num_layers(m) - 1;
    gr_model_freeze_upto(m, c);
    gr_model_set_preprocess(m, GR_PREP_DARKNET);
    if (gr_stack(m, &e, gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK) {
        fprintf(stderr, "  head: %s\n", e.msg);
        gr_model_free(m);
        return NULL;
    }
    gr_model_init_params(m, c + 1, head_seed);
    if (cut) *cut = c;
    return m;
}

/* Trains a fresh model; returns it (caller frees) or NULL. */
static gr_model *train(const gr_dataset *ds, uint64_t seed, bool no_cache, int epochs, gr_epoch_log *hist) {
    gr_model *m = build(7, NULL);
    if (!m) return NULL;
    gr_error e = {0};
    gr_fit_opts o = {.epochs = epochs, .batch = 32, .seed = seed, .no_cache = no_cache, .history = hist,
                     .optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .decay = 1e-6f, .momentum = 0.9f, .nesterov = true})};
    if (gr_fit(m, ds, NULL, 0, &o, &e) != GR_OK) {
        fprintf(stderr, "  fit: %s\n", e.msg);
        gr_model_free(m);
        return NULL;
    }
    return m;
}

/* Trainable parameters: a view of the model's one allocation past the frozen part. */
static const float *head_w(gr_model *m, size_t *count) {
    int p0 = 0;
    while (p0 < m->n_params && m->nodes[m->params[p0].node].frozen) p0++;
    *count = m->w_count - m->params[p0].offset;
    return m->w + m->params[p0].offset;
}

static gr_dataset *train_ds, *test_ds;
static gr_model *trained;            /* seed 5, EPOCHS epochs: shared by the tests below */
static gr_epoch_log hist[EPOCHS];    /* its history */

static void test_cache_equals_recompute(void) {
    gr_model *a = train(train_ds, 3, false, 2, NULL), *b = train(train_ds, 3, true, 2, NULL);
    CHECK(a && b, "fit failed");
    if (a && b) {
        size_t na, nb;
        const float *wa = head_w(a, &na), *wb = head_w(b, &nb);
        CHECK(na == nb && na == 1024 * 10 + 10, "head sizes %zu %zu", na, nb);
        size_t diff = 0;
        for (size_t i = 0; i < na && na == nb; i++) diff += memcmp(&wa[i], &wb[i], sizeof(float)) != 0;
        CHECK(diff == 0, "cached and uncached head weights differ in %zu of %zu values", diff, na);
        if (diff) CHECK_CLOSE("cached vs uncached", wa, wb, na, 1e-5, 1e-4);
        /* the frozen base is untouched by both */
        gr_model *fresh = build(7, NULL);
        size_t nbase = (size_t)(wa - a->w);
        CHECK(fresh && nbase > 0 && !memcmp(fresh->w, a->w, nbase * sizeof(float)) &&
                  !memcmp(fresh->w, b->w, nbase * sizeof(float)),
              "the frozen base's weights changed during training");
        gr_model_free(fresh);
    }
    gr_model_free(a);
    gr_model_free(b);
}

static void test_seed_determinism(void) {
    gr_model *a = train(train_ds, 11, false, 2, NULL), *b = train(train_ds, 11, false, 2, NULL),
             *c = train(train_ds, 12, false, 2, NULL);
    CHECK(a && b && c, "fit failed");
    if (a && b && c) {
        size_t n;
        const float *wa = head_w(a, &n), *wb = head_w(b, &n), *wc = head_w(c, &n);
        CHECK(!memcmp(wa, wb, n * sizeof(float)), "the same seed gave different weights");
        size_t diff = 0;
        double maxd = 0;
        for (size_t i = 0; i < n; i++) {
            diff += wa[i] != wc[i];
            double d = fabs((double)wa[i] - wc[i]);
            if (d > maxd) maxd = d;
        }
        CHECK(diff > n / 2 && maxd > 1e-4, "seeds 11 and 12 gave nearly the same weights (%zu of %zu differ, max %g)",
              diff, n, maxd);
    }
    gr_model_free(a);
    gr_model_free(b);
    gr_model_free(c);
}

/* The library prints nothing by itself: with no log callback a verbose fit
 * writes not a byte to stdout or stderr; with one, the epoch lines arrive as
 * GR_LOG_INFO and the progress bar as GR_LOG_PROGRESS.                    */
typedef struct { int info, progress, epoch_lines; char first_epoch[256]; } log_seen;
static void collect_log(void *user, gr_log_level level, const char *msg) {
    log_seen *s = user;
    if (level == GR_LOG_PROGRESS) s->progress++;
    if (level != GR_LOG_INFO) return;
    s->info++;
    if (!strncmp(msg, "Epoch ", 6) && s->epoch_lines++ == 0) snprintf(s->first_epoch, sizeof s->first_epoch, "%s", msg);
}

static void test_log_callback(void) {
    gr_fit_opts o = {.epochs = 2, .batch = 32, .seed = 1, .verbose = 2,
                     .optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .momentum = 0.9f})};
    char path[] = "/tmp/graft_test_log_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), errfd = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    gr_error e = {0};
    gr_model *m = build(7, NULL);
    gr_status st = m ? gr_fit(m, train_ds, NULL, 0, &o, &e) : GR_ERR_ARG;
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(errfd, 2);
    close(out);
    close(errfd);
    struct stat sb;
    CHECK(st == GR_OK, "fit: %s", e.msg);
    CHECK(fstat(fd, &sb) == 0 && sb.st_size == 0, "the library printed %lld bytes with no log callback",
          (long long)sb.st_size);
    close(fd);
    unlink(path);
    gr_model_free(m);

    log_seen seen = {0};
    gr_set_log(collect_log, &seen);
    m = build(7, NULL);
    st = m ? gr_fit(m, train_ds, NULL, 0, &o, &e) : GR_ERR_ARG;
    gr_set_log(NULL, NULL);
    CHECK(st == GR_OK, "fit: %s", e.msg);
    CHECK(seen.epoch_lines == 2 && !strncmp(seen.first_epoch, "Epoch 1/2 - ", 12) && strstr(seen.first_epoch, "loss: "),
          "epoch lines %d, first '%s'", seen.epoch_lines, seen.first_epoch);
    CHECK(seen.progress > 0 && seen.info > 2, "progress %d, info %d", seen.progress, seen.info);
    gr_model_free(m);
}

static void test_learns_pattern(void) {
    gr_model *m = trained;
    CHECK(m != NULL, "fit failed");
    if (!m) return;
    for (int e = 0; e < EPOCHS; e++) {
        CHECK(hist[e].epoch == e + 1 && isfinite(hist[e].loss) && isnan(hist[e].val_loss) && hist[e].seconds >= 0,
              "history[%d]: epoch %d loss %g val_loss %g", e, hist[e].epoch, hist[e].loss, hist[e].val_loss);
        /* Keras legacy decay: lr / (1 + decay * iterations), 10 batches per epoch */
        float want_lr = 0.01f / (1.0f + 1e-6f * 10.0f * (float)(e + 1));
        CHECK(fabsf(hist[e].lr - want_lr) < 1e-9f, "epoch %d lr %.9g want %.9g", e + 1, hist[e].lr, want_lr);
    }
    CHECK(hist[EPOCHS - 1].loss < hist[0].loss, "loss did not fall: %g -> %g", hist[0].loss, hist[EPOCHS - 1].loss);
    CHECK(hist[EPOCHS - 1].accuracy > 0.8f, "train accuracy after %d epochs %.3f (chance 0.1)", EPOCHS,
          hist[EPOCHS - 1].accuracy);
    gr_eval_result r;
    gr_error e = {0};
    CHECK(gr_evaluate(m, test_ds, NULL, 0, 32, &r, &e) == GR_OK, "%s", e.msg);
    if (getenv("CHECK_VERBOSE")) fprintf(stderr, "  train acc %.3f loss %.3f -> %.3f, held-out acc %.3f\n", hist[EPOCHS - 1].accuracy, hist[0].loss, hist[EPOCHS - 1].loss, r.accuracy);
    CHECK(r.accuracy > 0.8, "held-out accuracy %.3f (chance 0.1)", r.accuracy);
    gr_eval_result_free(&r);
}

typedef struct { int progress, bad, notes; char last[256], note[256]; } eval_seen;
static void collect_eval_log(void *user, gr_log_level level, const char *msg) {
    eval_seen *s = user;
    if (level == GR_LOG_PROGRESS) {
        int done, n, rate, eta, end = 0;
        s->progress++;
        if (sscanf(msg, "eval: %d/%d images, %d img/s, ETA %ds%n", &done, &n, &rate, &eta, &end) != 4 ||
            msg[end] || n != 100)
            s->bad++;
        snprintf(s->last, sizeof s->last, "%s", msg);
    } else if (level == GR_LOG_NOTE) {
        s->notes++;
        snprintf(s->note, sizeof s->note, "%s", msg);
    }
}

/* Oracle: every test image through gr_dataset_get + gr_model_predict one at a time. */
static void test_evaluate_against_oracle(void) {
    gr_model *m = trained;
    CHECK(m != NULL, "fit failed");
    if (!m) return;
    gr_eval_result r;
    gr_error e = {0};
    /* batch 7 leaves a short last batch (100 = 14 * 7 + 2) */
    CHECK(gr_evaluate(m, test_ds, NULL, 0, 7, &r, &e) == GR_OK, "%s", e.msg);
    if (!r.confusion) { gr_model_free(m); return; }
    CHECK(r.n == N_TEST && r.n_classes == 10, "n %d classes %d", r.n, r.n_classes);
    int64_t sum = 0, diag = 0;
    for (int i = 0; i < 100; i++) sum += r.confusion[i];
    for (int k = 0; k < 10; k++) diag += r.confusion[k * 10 + k];
    CHECK(sum == N_TEST, "confusion sums to %lld, want %d", (long long)sum, N_TEST);
    CHECK(fabs(r.accuracy - (double)diag / N_TEST) < 1e-12, "accuracy %g, diagonal share %g", r.accuracy,
          (double)diag / N_TEST);
    int64_t conf[100] = {0};
    int correct = 0, top5 = 0;
    double loss = 0;
    float x[32 * 32 * 3], p[10];
    for (int i = 0; i < N_TEST; i++) {
        int y = gr_dataset_label(test_ds, i);
        if (gr_dataset_get(test_ds, i, x, &e) != GR_OK || gr_model_predict(m, x, 1, -1, p, &e) != GR_OK) {
            CHECK(0, "sample %d: %s", i, e.msg);
            break;
        }
        int best = 0, rank = 0;
        for (int k = 1; k < 10; k++)
            if (p[k] > p[best]) best = k;
        for (int k = 0; k < 10; k++) rank += p[k] > p[y];
        conf[y * 10 + best]++;
        correct += best == y;
        top5 += rank < 5;
        double q = p[y] < 1e-7 ? 1e-7 : p[y] > 1 - 1e-7 ? 1 - 1e-7 : p[y];
        loss -= log(q);
    }
    int conf_diff = 0;
    for (int i = 0; i < 100; i++) conf_diff += conf[i] != r.confusion[i];
    /* batch 1 vs batch 7 may differ in the last bits; a tie-flip would show here */
    CHECK(conf_diff == 0, "confusion differs from the per-image oracle in %d cells", conf_diff);
    CHECK(fabs(r.accuracy - (double)correct / N_TEST) < 1e-12, "accuracy %g oracle %g", r.accuracy,
          (double)correct / N_TEST);
    CHECK(fabs(r.top5 - (double)top5 / N_TEST) < 1e-12, "top5 %g oracle %g", r.top5, (double)top5 / N_TEST);
    CHECK(fabs(r.loss - loss / N_TEST) < 1e-4 * (1 + loss / N_TEST), "loss %.7g oracle %.7g", r.loss, loss / N_TEST);

    /* gr_evaluate_progress: the same result; a progress line per batch
     * (100 = 14 * 7 + 2: 15 batches) with the rate and ETA, one closing note */
    eval_seen seen = {0};
    gr_eval_result r2;
    gr_set_log(collect_eval_log, &seen);
    gr_status st = gr_evaluate_progress(m, test_ds, NULL, 0, 7, "eval", &r2, &e);
    gr_set_log(NULL, NULL);
    CHECK(st == GR_OK, "%s", e.msg);
    if (st == GR_OK) {
        CHECK(!memcmp(r2.confusion, r.confusion, 100 * sizeof(int64_t)) && r2.loss == r.loss && r2.n == r.n,
              "gr_evaluate_progress differs from gr_evaluate");
        CHECK(seen.progress == 15 && seen.bad == 0 && !strncmp(seen.last, "eval: 100/100 images, ", 22),
              "progress lines %d (%d not 'eval: N/100 images, R img/s, ETA Ss'), last '%s'", seen.progress, seen.bad,
              seen.last);
        CHECK(seen.notes == 1 && !strncmp(seen.note, "eval: 100 images in ", 20) && strstr(seen.note, " img/s)"),
              "closing notes %d: '%s'", seen.notes, seen.note);
        gr_eval_result_free(&r2);
    }
    gr_eval_result_free(&r);
    CHECK(r.confusion == NULL, "gr_eval_result_free left the pointer");
}

/* --tta flip: gr_evaluate_ex's probabilities are the mean of each image's
 * and its mirror's, against a per-image oracle (gr_dataset_get, the mirror
 * made here, gr_model_predict, the mean, argmax and clipped cross-entropy). */
static void test_evaluate_tta_flip(void) {
    gr_model *m = trained;
    if (!m) return;
    gr_eval_result r;
    gr_error e = {0};
    CHECK(gr_evaluate_ex(m, test_ds, NULL, 0, &(gr_eval_opts){.batch = 7, .tta_flip = true}, &r, &e) == GR_OK,
          "%s", e.msg);
    if (!r.confusion) return;
    int correct = 0;
    double loss = 0;
    float x[32 * 32 * 3], xm[32 * 32 * 3], p[10], pm[10];
    for (int i = 0; i < N_TEST; i++) {
        int y = gr_dataset_label(test_ds, i);
        if (gr_dataset_get(test_ds, i, x, &e) != GR_OK) break;
        for (int yy = 0; yy < 32; yy++)
            for (int xx = 0; xx < 32; xx++)
                for (int c = 0; c < 3; c++) xm[(yy * 32 + xx) * 3 + c] = x[(yy * 32 + 31 - xx) * 3 + c];
        if (gr_model_predict(m, x, 1, -1, p, &e) != GR_OK || gr_model_predict(m, xm, 1, -1, pm, &e) != GR_OK) break;
        int best = 0;
        for (int k = 0; k < 10; k++) p[k] = 0.5f * (p[k] + pm[k]);
        for (int k = 1; k < 10; k++)
            if (p[k] > p[best]) best = k;
        correct += best == y;
        double q = p[y] < 1e-7 ? 1e-7 : p[y] > 1 - 1e-7 ? 1 - 1e-7 : p[y];
        loss -= log(q);
    }
    CHECK(fabs(r.accuracy - (double)correct / N_TEST) < 1e-12, "tta accuracy %g oracle %g", r.accuracy,
          (double)correct / N_TEST);
    CHECK(fabs(r.loss - loss / N_TEST) < 1e-4 * (1 + loss / N_TEST), "tta loss %.7g oracle %.7g", r.loss,
          loss / N_TEST);
    gr_eval_result plain;
    CHECK(gr_evaluate(m, test_ds, NULL, 0, 7, &plain, &e) == GR_OK, "%s", e.msg);
    CHECK(plain.loss != r.loss, "the flip changed nothing (loss %g both)", r.loss);   /* the pattern is not symmetric */
    gr_eval_result_free(&plain);
    gr_eval_result_free(&r);
}

/* Copies the trainable parameters (every one but the fixed statistics). */
static size_t trained_params(gr_model *m, float *out) {
    size_t k = 0;
    for (int p = 0; p < m->n_params; p++) {
        if (m->nodes[m->params[p].node].frozen || gr_param_is_statistic(m->params[p].kind)) continue;
        if (out) memcpy(out + k, gr_param_data(m, p), m->params[p].count * sizeof(float));
        k += m->params[p].count;
    }
    return k;
}

/* --ema against the hand-computed average: one step per epoch (batch =
 * samples), a constant rate, so a 1-epoch run ends at w1 and a 2-epoch run
 * at w2 (the shuffle depends on (seed, epoch) only).  With decay 0.9:
 * e1 = d1 w0 + (1 - d1) w1, d1 = min(0.9, 2/11); e2 = d2 e1 + (1 - d2) w2,
 * d2 = 3/12.  The model after the --ema run is e2; validation sees e_k.
 * --keep best with --ema keeps the average of the best epoch.            */
static void test_ema_hand_computed(void) {
    enum { N = 40 };
    int idx[N];
    for (int i = 0; i < N; i++) idx[i] = i;
    float *w[4] = {NULL};
    gr_epoch_log h[2];
    size_t np = 0;
    for (int run = 0; run < 4; run++) {   /* w0 (no training), w1, w2, the --ema run */
        gr_model *m = build(9, NULL);
        if (!m) return;
        np = trained_params(m, NULL);
        w[run] = malloc(np * sizeof(float));
        if (!w[run]) { gr_model_free(m); break; }
        gr_error e = {0};
        gr_optim q = gr_sgd((gr_sgd_opts){.lr = 0.05f, .momentum = 0.9f, .nesterov = true});
        q.schedule = GR_SCHEDULE_CONSTANT;
        gr_fit_opts o = {.epochs = run == 3 ? 2 : run, .batch = N, .seed = 3, .optim = q, .ema = run == 3 ? 0.9f : 0,
                         .val = train_ds, .val_idx = idx, .n_val = 8, .history = h};
        gr_status st = run == 0 ? GR_OK : gr_fit(m, train_ds, idx, N, &o, &e);
        CHECK(st == GR_OK, "fit: %s", e.msg);
        trained_params(m, w[run]);
        gr_model_free(m);
    }
    if (!w[3]) goto out;
    float d1 = 2.0f / 11.0f, d2 = 3.0f / 12.0f;
    double worst = 0, moved = 0;
    for (size_t k = 0; k < np; k++) {
        float e1 = d1 * w[0][k] + (1 - d1) * w[1][k], want = d2 * e1 + (1 - d2) * w[2][k];
        worst = fmax(worst, fabs(want - w[3][k]));
        moved = fmax(moved, fabs(w[2][k] - want));
    }
    CHECK(worst < 1e-6, "--ema weights differ from the hand-computed average by %g", worst);
    CHECK(moved > 1e-4, "the average is the weights themselves (differs by %g): the test would not see a bug", moved);
out:
    for (int k = 0; k < 4; k++) free(w[k]);
}

/* mixup and cutmix on a batch, by hand: rows pair with the batch reversed;
 * mixup blends each pair both ways, cutmix swaps a box and says how much
 * of each image is left; Beta(a, a) draws have the mean 1/2 and the
 * variance 1 / (4 (2a + 1)).                                             */
static void test_mix_by_hand(void) {
    float x[3 * 2] = {1, 2, 10, 20, 100, 200};   /* 3 rows of 2 values */
    gr_mixup_rows(x, 3, 2, 0.25f);
    float want[6] = {0.25f * 1 + 0.75f * 100, 0.25f * 2 + 0.75f * 200, 10, 20, 0.25f * 100 + 0.75f * 1,
                     0.25f * 200 + 0.75f * 2};
    CHECK_CLOSE("mixup rows", x, want, 6, 1e-5, 1e-6);
    /* cutmix: 2 images 4x4x1, the box rows 1..2 x cols 0..2 swapped */
    float im[32];
    for (int i = 0; i < 16; i++) im[i] = (float)i, im[16 + i] = (float)(100 + i);
    float lam = gr_cutmix_rows(im, 2, 4, 4, 1, 1, 0, 3, 3);
    CHECK(fabs(lam - (1 - 6.0 / 16)) < 1e-6, "cutmix lam %g, want %g", lam, 1 - 6.0 / 16);
    int bad = 0;
    for (int y = 0; y < 4; y++)
        for (int xx = 0; xx < 4; xx++) {
            bool in = y >= 1 && y < 3 && xx < 3;
            bad += im[y * 4 + xx] != (float)((in ? 100 : 0) + y * 4 + xx);
            bad += im[16 + y * 4 + xx] != (float)((in ? 0 : 100) + y * 4 + xx);
        }
    CHECK(bad == 0, "cutmix swapped %d pixels wrongly", bad);
    /* the box: area ~ (1 - lam) of the image, inside it */
    gr_rng r;
    gr_rng_seed(&r, 5);
    int y0, x0, y1, x1;
    gr_cutmix_box(32, 32, 0.75f, &r, &y0, &x0, &y1, &x1);
    CHECK(y0 >= 0 && x0 >= 0 && y1 <= 32 && x1 <= 32 && y1 - y0 <= 16 && x1 - x0 <= 16 && y1 > y0 && x1 > x0,
          "cutmix box [%d,%d) x [%d,%d) for lam 0.75 (at most 16x16)", y0, y1, x0, x1);
    double s = 0, s2 = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double b = gr_rng_beta(&r, 0.2, 0.2);
        CHECK(b >= 0 && b <= 1, "beta draw %g", b);
        s += b, s2 += b * b;
    }
    double mean = s / n, var = s2 / n - mean * mean, want_var = 1.0 / (4 * (2 * 0.2 + 1));
    CHECK(fabs(mean - 0.5) < 0.01 && fabs(var - want_var) < 0.01, "Beta(0.2, 0.2): mean %g var %g (want 0.5, %g)",
          mean, var, want_var);
    s = s2 = 0;
    for (int i = 0; i < n; i++) {
        double b = gr_rng_beta(&r, 2.0, 2.0);
        s += b, s2 += b * b;
    }
    mean = s / n, var = s2 / n - mean * mean, want_var = 1.0 / (4 * (2 * 2.0 + 1));
    CHECK(fabs(mean - 0.5) < 0.01 && fabs(var - want_var) < 0.005, "Beta(2, 2): mean %g var %g (want 0.5, %g)",
          mean, var, want_var);
}

/* Validation under --tta flip (features of the mirrored images, computed
 * once) gives what gr_evaluate_ex with the test-time flip gives on the same
 * images (the images path); mixup + cutmix + random-resized-crop + ema run
 * and learn; bad values are errors.                                       */
static void test_fit_levers(void) {
    enum { NV = 60 };
    int vidx[NV];
    for (int i = 0; i < NV; i++) vidx[i] = i;
    gr_model *m = build(7, NULL);
    if (!m) return;
    gr_error e = {0};
    gr_epoch_log h[3];
    gr_fit_opts o = {.epochs = 3, .batch = 16, .seed = 2, .hflip = true, .rrc_scale = 0.5f, .mixup = 0.2f,
                     .cutmix = 1.0f, .ema = 0.9f, .tta_flip = true, .val = test_ds, .val_idx = vidx, .n_val = NV,
                     .history = h, .optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .momentum = 0.9f, .nesterov = true})};
    CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) == GR_OK, "fit with every lever: %s", e.msg);
    gr_eval_result r;
    CHECK(gr_evaluate_ex(m, test_ds, vidx, NV, &(gr_eval_opts){.batch = 16, .tta_flip = true}, &r, &e) == GR_OK,
          "%s", e.msg);
    CHECK(fabs(r.accuracy - h[2].val_accuracy) < 1e-6 && fabs(r.loss - h[2].val_loss) < 1e-4,
          "validation with --tta flip: accuracy %g loss %g; gr_evaluate_ex: %g %g", h[2].val_accuracy,
          h[2].val_loss, r.accuracy, r.loss);
    CHECK(r.accuracy > 0.5, "the levers learn nothing: %g", r.accuracy);
    gr_eval_result_free(&r);
    const char *what[] = {"rrc 1.5", "mixup -1", "cutmix NaN", "ema 1"};
    for (int k = 0; k < 4; k++) {
        gr_fit_opts b = o;
        b.epochs = 1;
        if (k == 0) b.rrc_scale = 1.5f;
        if (k == 1) b.mixup = -1;
        if (k == 2) b.cutmix = NAN;
        if (k == 3) b.ema = 1;
        CHECK(gr_fit(m, train_ds, NULL, 0, &b, &e) == GR_ERR_ARG && strstr(e.msg, "ema"), "%s: %s", what[k], e.msg);
    }
    gr_model_free(m);
}

/* Writes each parameter's name and shape to txt and its floats to bin. */
static int dump_params(gr_model *m, const char *txt, const char *bin) {
    FILE *t = fopen(txt, "w"), *b = fopen(bin, "wb");
    int rc = t && b ? 0 : -1;
    for (int p = 0; p < m->n_params && !rc; p++) {
        fprintf(t, "%s", m->params[p].name);
        for (int d = 0; d < m->params[p].ndim; d++) fprintf(t, " %lld", (long long)m->params[p].shape[d]);
        fprintf(t, "\n");
        if (fwrite(gr_param_data(m, p), sizeof(float), m->params[p].count, b) != m->params[p].count) rc = -1;
    }
    if (t && fclose(t)) rc = -1;
    if (b && fclose(b)) rc = -1;
    return rc;
}

static void test_save_load_round_trip(void) {
    gr_model *m = trained;
    CHECK(m != NULL, "fit failed");
    if (!m) return;
    gr_error e = {0};
    const char *names[10] = {"a0", "b1", "c\"2", "d,3", "e 4", "f5", "g6", "h7", "i8", "j9"};
    CHECK(gr_model_set_classes(m, 10, names, &e) == GR_OK, "%s", e.msg);
    char path[400];
    snprintf(path, sizeof path, "%s/m.gft", dir);
    CHECK(gr_model_save(m, path, "{\"epochs\": 4}", &e) == GR_OK, "save: %s", e.msg);
    gr_model *l = gr_model_load(path, &e);
    CHECK(l != NULL, "load: %s", e.msg);
    if (l) {
        CHECK(gr_model_num_layers(l) == gr_model_num_layers(m), "layers %d vs %d", gr_model_num_layers(l),
              gr_model_num_layers(m));
        CHECK(gr_model_preprocess(l) == GR_PREP_DARKNET, "preprocess %d", gr_model_preprocess(l));
        CHECK(gr_model_num_classes(l) == 10, "classes %d", gr_model_num_classes(l));
        for (int k = 0; k < 10; k++) {
            const char *nm = gr_model_class_name(l, k);
            CHECK(nm && !strcmp(nm, names[k]), "class %d '%s' want '%s'", k, nm ? nm : "(null)", names[k]);
        }
        for (int i = 0; i < gr_model_num_layers(m); i++)
            CHECK(gr_model_layer_frozen(l, i) == gr_model_layer_frozen(m, i) &&
                      !strcmp(gr_model_layer_name(l, i), gr_model_layer_name(m, i)),
                  "layer %d: '%s' frozen %d vs '%s' frozen %d", i, gr_model_layer_name(l, i),
                  gr_model_layer_frozen(l, i), gr_model_layer_name(m, i), gr_model_layer_frozen(m, i));
        CHECK(l->w_count == m->w_count && !memcmp(l->w, m->w, m->w_count * sizeof(float)),
              "loaded parameters differ");
        enum { B = 20 };
        float *x = malloc(sizeof(float) * B * 3072), pm[B * 10], pl[B * 10];
        int ok = x != NULL;
        for (int i = 0; i < B && ok; i++) ok = gr_dataset_get(test_ds, i, x + (size_t)i * 3072, &e) == GR_OK;
        ok = ok && gr_model_predict(m, x, B, -1, pm, &e) == GR_OK && gr_model_predict(l, x, B, -1, pl, &e) == GR_OK;
        CHECK(ok, "predict: %s", e.msg);
        if (ok) CHECK(!memcmp(pm, pl, sizeof pm), "predictions after load differ");
        if (ok) CHECK_CLOSE("predictions after load", pl, pm, B * 10, 0, 0);
        free(x);
        gr_model_free(l);
    }
    /* the independent reader: /usr/bin/python3 + numpy */
    char txt[400], bin[400], cmd[2000], out[400];
    snprintf(txt, sizeof txt, "%s/expected.txt", dir);
    snprintf(bin, sizeof bin, "%s/expected.bin", dir);
    snprintf(out, sizeof out, "%s/stcheck.out", dir);
    CHECK(dump_params(m, txt, bin) == 0, "cannot write %s", txt);
    if (access("/usr/bin/python3", X_OK) != 0 || system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        SKIP("/usr/bin/python3 with numpy is not installed: the file was not read independently");
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/gen_cli.py stcheck '%s' '%s' '%s' >'%s' 2>&1", path,
             txt, bin, out);
    int rc = system(cmd);
    char line[400] = "";
    FILE *f = fopen(out, "r");
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    CHECK(rc == 0 && !strncmp(line, "ok 12\n", 6), "numpy reader: rc %d: %s", rc, line);
}

/* Model files whose architecture is empty or implausible: clean errors. */
static void test_bad_architectures(void) {
    static const char *archs[2] = {"{\"input\":[32,32,3],\"layers\":[]}",
                                   "{\"input\":[100000,100000,3],\"layers\":[{\"name\":\"f\",\"op\":\"flatten\"}]}"};
    static const char *want[2] = {"no layers", "plausible"};
    for (int k = 0; k < 2; k++) {
        char path[400];
        snprintf(path, sizeof path, "%s/arch%d.gft", dir, k);
        const char *meta[4] = {"graft.format", "graft-model-1", "graft.architecture", archs[k]};
        gr_error e;
        CHECK(gr_st_write(path, NULL, 0, meta, 2, &e) == GR_OK, "write: %s", e.msg);
        memset(&e, 0, sizeof e);
        gr_model *m = gr_model_load(path, &e);
        CHECK(!m && strstr(e.msg, path) && strstr(e.msg, want[k]), "architecture %d: %s", k, m ? "loaded" : e.msg);
        gr_model_free(m);
    }
}

static void test_bad_inputs(void) {
    gr_error e = {0};
    /* data with more classes than the model has outputs */
    gr_model *m = build(7, NULL);
    if (!m) { CHECK(0, "build"); return; }
    gr_model_truncate(m, gr_model_num_layers(m) - 2, NULL);
    gr_stack(m, &e, gr_dense(4, GR_ACT_SOFTMAX));
    gr_fit_opts o = {.epochs = 1};
    CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) == GR_ERR_SHAPE && strstr(e.msg, "10 classes"), "fit: %s", e.msg);
    gr_eval_result r;
    CHECK(gr_evaluate(m, test_ds, NULL, 0, 32, &r, &e) == GR_ERR_SHAPE && r.confusion == NULL, "eval: %s", e.msg);
    gr_model_free(m);
    /* every layer frozen */
    m = build(7, NULL);
    if (!m) return;
    gr_model_freeze_upto(m, gr_model_num_layers(m) - 1);
    CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) == GR_ERR_ARG && strstr(e.msg, "frozen"), "all frozen: %s", e.msg);
    gr_model_free(m);
    /* a last layer with a spatial output [8, 8, 10]: not class scores (was a heap overflow) */
    m = gr_darknet_load_cfg(cfg_path, 32, 32, &e);
    if (m) {
        gr_model_freeze_upto(m, gr_model_num_layers(m) - 1);
        gr_stack(m, &e, gr_conv2d(10, 1, 1, 1, GR_PAD_SAME, GR_ACT_SOFTMAX));
        memset(&e, 0, sizeof e);
        CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) == GR_ERR_SHAPE && strstr(e.msg, "8x8x10"), "spatial fit: %s", e.msg);
        memset(&e, 0, sizeof e);
        CHECK(gr_evaluate(m, test_ds, NULL, 0, 32, &r, &e) == GR_ERR_SHAPE && strstr(e.msg, "8x8x10"),
              "spatial eval: %s", e.msg);
        gr_model_free(m);
    }
    /* a model without layers */
    m = gr_model_new(32, 32, 3, &e);
    if (m) {
        memset(&e, 0, sizeof e);
        CHECK(gr_evaluate(m, test_ds, NULL, 0, 32, &r, &e) != GR_OK && e.msg[0], "empty model eval: %s", e.msg);
        CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) != GR_OK && e.msg[0], "empty model fit: %s", e.msg);
        gr_model_free(m);
    }
    /* images of the wrong size */
    m = gr_darknet_load_cfg(cfg_path, 64, 64, &e);
    if (m) {
        gr_model_freeze_upto(m, gr_model_num_layers(m) - 1);
        gr_stack(m, &e, gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX));
        CHECK(gr_fit(m, train_ds, NULL, 0, &o, &e) == GR_ERR_SHAPE && strstr(e.msg, "32x32"), "size: %s", e.msg);
        gr_model_free(m);
    }
    /* a truncated model file and a safetensors file that is not a model */
    m = build(7, NULL);
    char path[400], trunc[400], plain[400];
    snprintf(path, sizeof path, "%s/good.gft", dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.gft", dir);
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    CHECK(m && gr_model_save(m, path, NULL, &e) == GR_OK, "save: %s", e.msg);
    gr_model_free(m);
    size_t n;
    unsigned char *buf = check_read_file(path, &n);
    CHECK(n > 1000 && n < (1 << 20), "model file size %zu", n);
    if (buf && n > 100) check_write_file(trunc, buf, n - 100);
    free(buf);
    memset(&e, 0, sizeof e);
    gr_model *t = gr_model_load(trunc, &e);
    CHECK(!t && e.code != GR_OK && strstr(e.msg, trunc), "truncated: code %d: %s", e.code, e.msg);
    gr_model_free(t);
    const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    uint64_t hl = sizeof hdr - 1;
    unsigned char st[8 + sizeof hdr - 1 + 8];
    float v[2] = {1, 2};
    memcpy(st, &hl, 8), memcpy(st + 8, hdr, hl), memcpy(st + 8 + hl, v, sizeof v);
    check_write_file(plain, st, sizeof st);
    memset(&e, 0, sizeof e);
    t = gr_model_load(plain, &e);
    CHECK(!t && e.code == GR_ERR_FORMAT && strstr(e.msg, plain) && strstr(e.msg, "not a graft model"),
          "plain safetensors: code %d: %s", e.code, e.msg);
    gr_model_free(t);
}

int main(void) {
    if (setup()) {
        printf("FAIL setup: cannot write the test data in /tmp\n");
        return 1;
    }
    train_ds = open_bin(bin_train);
    test_ds = open_bin(bin_test);
    if (!train_ds || !test_ds) {
        printf("FAIL setup: cannot open the test data\n");
        teardown();
        return 1;
    }
    trained = train(train_ds, 5, false, EPOCHS, hist);
    RUN(test_cache_equals_recompute);
    RUN(test_seed_determinism);
    RUN(test_learns_pattern);
    RUN(test_log_callback);
    RUN(test_evaluate_against_oracle);
    RUN(test_evaluate_tta_flip);
    RUN(test_ema_hand_computed);
    RUN(test_mix_by_hand);
    RUN(test_fit_levers);
    RUN(test_save_load_round_trip);
    RUN(test_bad_inputs);
    RUN(test_bad_architectures);
    gr_model_free(trained);
    gr_dataset_free(train_ds);
    gr_dataset_free(test_ds);
    teardown();
    return check_summary();
}
