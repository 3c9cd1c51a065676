/* test_train.c — the trainer: gradients against finite differences of the
 * loss, SGD/Adam against hand-computed steps and a PyTorch trajectory,
 * determinism, and bad arguments. */
#include <math.h>
#include <omp.h>
#include "check.h"
#include "graft.h"
#include "exec/ctx.h"
#include "graph/model.h"
#include "train/train.h"

/* Mean cross-entropy of the whole model on x (inference path + gr_cross_entropy). */
static double model_loss(gr_model *m, const float *x, const int *labels, int B, float ls) {
    int C = m->nodes[m->n_nodes - 1].oc;
    float p[64 * 8];
    gr_error e;
    if (gr_model_predict(m, x, B, -1, p, &e) != GR_OK) return NAN;
    return gr_cross_entropy(p, labels, B, C, ls, NULL, NULL) / B;
}

/* Builds input 3x3x2 -> conv 2x2 (3 filters, relu) -> batchnorm -> flatten ->
 * standardize -> dense 5 (tanh) -> dense 4 softmax, random parameters. */
static gr_model *small_model(void) {
    gr_error e;
    gr_model *m = gr_model_new(3, 3, 2, &e);
    if (!m) return NULL;
    gr_layer_spec c = gr_conv2d(3, 2, 2, 1, GR_PAD_SAME, GR_ACT_RELU);
    gr_layer_spec st = gr_named(gr_flatten(), "flat");
    if (gr_stack(m, &e, c, gr_batchnorm(1e-3f), st) != GR_OK) return NULL;
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_STANDARDIZE;
    if (gr_stack(m, &e, s, gr_dense(5, GR_ACT_TANH), gr_dense(4, GR_ACT_SOFTMAX)) != GR_OK) return NULL;
    gr_model_init_params(m, 0, 42);
    gr_rng r;
    gr_rng_seed(&r, 3);
    for (int p = 0; p < m->n_params; p++) {   /* make every parameter non-trivial */
        float *d = gr_param_data(m, p);
        const char *k = m->params[p].kind;
        for (size_t i = 0; i < m->params[p].count; i++) {
            if (!strcmp(k, "moving_variance") || !strcmp(k, "std") || !strcmp(k, "gamma"))
                d[i] = 0.5f + gr_rng_uniform(&r);
            else if (strcmp(k, "kernel"))
                d[i] = 0.2f * gr_rng_normal(&r);
        }
    }
    return m;
}

static void test_gradients_match_finite_differences(void) {
    gr_model *m = small_model();
    CHECK(m != NULL, "model");
    if (!m) return;
    gr_error e;
    enum { B = 3 };
    float x[B * 18];
    int labels[B] = {0, 3, 1};
    gr_rng r;
    gr_rng_seed(&r, 11);
    for (int i = 0; i < B * 18; i++) x[i] = gr_rng_normal(&r);
    for (int pass = 0; pass < 3; pass++) {   /* whole model; the head after the flatten; whole model with BN in training mode */
        int first = pass == 1 ? 3 : 0;
        bool bn_train = pass == 2;
        const float *xin = x;
        float feat[B * 27];
        if (first > 0) {
            CHECK(gr_model_predict(m, x, B, first - 1, feat, &e) == GR_OK, "%s", e.msg);
            xin = feat;
        }
        gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.1f}), .max_batch = B,
                             .seed = 1, .label_smoothing = 0.1f, .bn_train = bn_train};
        gr_trainer *t = gr_trainer_new(m, first, &o, &e);
        CHECK(t != NULL, "%s", e.msg);
        if (!t) break;
        float loss;
        CHECK(gr_trainer_gradients(t, xin, labels, B, &loss, NULL, &e) == GR_OK, "%s", e.msg);
        /* the oracle loss: inference path + gr_cross_entropy; in BN training
         * mode the forward of a second trainer (its own buffers) */
        gr_trainer *t2 = bn_train ? gr_trainer_new(m, first, &o, &e) : NULL;
#define LOSS() (bn_train ? (gr_trainer_gradients(t2, xin, labels, B, &l2, NULL, &e), (double)l2) \
                         : model_loss(m, x, labels, B, 0.1f))
        float l2 = 0;
        double l0 = LOSS();
        CHECK(fabs(l0 - loss) < 1e-5, "trainer loss %g vs oracle loss %g", loss, l0);
        size_t off, cnt;
        float *g = gr_trainer_grad(t, &off, &cnt);
        float num[512], ana[512];
        int k = 0;
        for (size_t q = 0; q < cnt && k < 512; q += 1 + q % 3) {
            int pi = 0;   /* which parameter holds q: skip the fixed statistics */
            while (m->params[pi].offset + m->params[pi].count <= off + q) pi++;
            const char *kind = m->params[pi].kind;
            if (!strcmp(kind, "moving_mean") || !strcmp(kind, "moving_variance") ||
                !strcmp(kind, "mean") || !strcmp(kind, "std")) {
                CHECK(g[q] == 0, "fixed statistic %s has gradient %g", m->params[pi].name, g[q]);
                continue;
            }
            float *w = m->w + off + q;
            float keep = *w;
            const float h = 1e-2f;
            *w = keep + h;
            m->w_version++;   /* weights changed: the fast path re-packs them */
            double lp = LOSS();
            *w = keep - h;
            m->w_version++;
            double lm = LOSS();
            *w = keep;
            m->w_version++;
            num[k] = (float)((lp - lm) / (2 * h));
            ana[k] = g[q];
            k++;
        }
#undef LOSS
        gr_trainer_free(t2);
        CHECK(k > 20, "checked %d parameters", k);
        CHECK_CLOSE(pass == 0 ? "whole-model gradients" : (pass == 1 ? "head gradients" : "gradients, BN in training mode"),
                    ana, num, (size_t)k, 2e-3, 2e-2);
        gr_trainer_free(t);
    }
    gr_model_free(m);
}

/* Mixed targets (mixup/cutmix): the loss is lam CE(labels) + (1 - lam)
 * CE(labels2) (label smoothing on each), and the trainer's gradient is that
 * loss's: against finite differences of the oracle loss from the inference
 * path, for the whole model and the head; the correct count follows the
 * heavier label.                                                          */
static void test_mixed_targets_match_finite_differences(void) {
    gr_model *m = small_model();
    CHECK(m != NULL, "model");
    if (!m) return;
    gr_error e;
    enum { B = 4 };
    float x[B * 18];
    int labels[B] = {0, 3, 1, 2}, labels2[B] = {2, 1, 3, 0};
    const float lam = 0.3f, ls = 0.1f;
    gr_rng r;
    gr_rng_seed(&r, 11);
    for (int i = 0; i < B * 18; i++) x[i] = gr_rng_normal(&r);
#define MIXLOSS() (lam * model_loss(m, x, labels, B, ls) + (1 - lam) * model_loss(m, x, labels2, B, ls))
    for (int pass = 0; pass < 2; pass++) {
        int first = pass ? 3 : 0;
        float feat[B * 27];
        const float *xin = x;
        if (first > 0) {
            CHECK(gr_model_predict(m, x, B, first - 1, feat, &e) == GR_OK, "%s", e.msg);
            xin = feat;
        }
        gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.1f}), .max_batch = B, .seed = 1,
                             .label_smoothing = ls};
        gr_trainer *t = gr_trainer_new(m, first, &o, &e);
        CHECK(t != NULL, "%s", e.msg);
        if (!t) break;
        gr_trainer_set_mix(t, labels2, lam);
        float loss;
        int correct = -1;
        CHECK(gr_trainer_gradients(t, xin, labels, B, &loss, &correct, &e) == GR_OK, "%s", e.msg);
        double l0 = MIXLOSS();
        CHECK(fabs(l0 - loss) < 1e-5, "mixed loss %g vs oracle %g", loss, l0);
        /* correct: against labels2 (lam < 0.5), by the inference path's argmax */
        float p[B * 4];
        CHECK(gr_model_predict(m, x, B, -1, p, &e) == GR_OK, "%s", e.msg);
        int want = 0;
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int c = 1; c < 4; c++)
                if (p[b * 4 + c] > p[b * 4 + best]) best = c;
            want += best == labels2[b];
        }
        CHECK(correct == want, "mixed correct %d, expected %d (the heavier label's)", correct, want);
        size_t off, cnt;
        float *g = gr_trainer_grad(t, &off, &cnt);
        float num[512], ana[512];
        int k = 0;
        for (size_t q = 0; q < cnt && k < 512; q += 1 + q % 3) {
            int pi = 0;
            while (m->params[pi].offset + m->params[pi].count <= off + q) pi++;
            if (gr_param_is_statistic(m->params[pi].kind)) continue;
            float *w = m->w + off + q, keep = *w;
            const float h = 2e-3f;
            *w = keep + h; m->w_version++;
            double lp = MIXLOSS();
            *w = keep - h; m->w_version++;
            double lm = MIXLOSS();
            *w = keep; m->w_version++;
            num[k] = (float)((lp - lm) / (2 * h));
            ana[k++] = g[q];
        }
        CHECK(k > 20, "checked %d parameters", k);
        CHECK_CLOSE(pass ? "mixed-target head gradients" : "mixed-target gradients", ana, num, (size_t)k, 2e-3, 2e-2);
        /* a partner label out of range is an error, not a read past the row */
        int bad[B] = {0, 9, 1, 2};
        gr_trainer_set_mix(t, bad, lam);
        CHECK(gr_trainer_gradients(t, xin, labels, B, &loss, NULL, &e) == GR_ERR_ARG && strstr(e.msg, "label 9"),
              "bad partner label: %s", e.msg);
        gr_trainer_free(t);
    }
#undef MIXLOSS
    gr_model_free(m);
}

/* Keras legacy SGD with Nesterov momentum and decay, worked by hand:
 * w0 = 1, g = 0.5 at each step, lr 0.1, momentum 0.9, decay 0.5.
 * step 1: lr 0.1; v = -0.05; w = 1 + 0.9 * -0.05 - 0.05 = 0.905
 * step 2: lr 0.1/1.5; v = 0.9*-0.05 - 0.0333333 = -0.0783333;
 *         w = 0.905 + 0.9 * -0.0783333 - 0.0333333 = 0.8011667          */
static void test_sgd_hand_computed(void) {
    gr_optim o = gr_sgd((gr_sgd_opts){.lr = 0.1f, .decay = 0.5f, .momentum = 0.9f, .nesterov = true});
    float w = 1, g = 0.5f, v = 0;
    gr_optim_update(&o, 0, 1.0f, &w, &g, &v, NULL, 1);
    CHECK(fabsf(w - 0.905f) < 1e-6f, "after step 1 w = %.7f", w);
    gr_optim_update(&o, 1, 1.0f, &w, &g, &v, NULL, 1);
    CHECK(fabsf(w - 0.8011667f) < 1e-6f, "after step 2 w = %.7f", w);
    CHECK(fabsf(gr_optim_lr(&o, 2) - 0.05f) < 1e-7f, "lr at iteration 2 = %g", gr_optim_lr(&o, 2));
    /* plain momentum, no Nesterov: w = 1 - 0.05 = 0.95; then v = -0.045-0.0333 -> w = 0.8716667 */
    gr_optim p = gr_sgd((gr_sgd_opts){.lr = 0.1f, .decay = 0.5f, .momentum = 0.9f});
    w = 1; v = 0;
    gr_optim_update(&p, 0, 1.0f, &w, &g, &v, NULL, 1);
    gr_optim_update(&p, 1, 1.0f, &w, &g, &v, NULL, 1);
    CHECK(fabsf(w - 0.8716667f) < 1e-6f, "momentum w = %.7f", w);
}

/* Schedules, worked by hand: lr 0.1, 10 iterations per epoch. */
static void test_schedules_hand_computed(void) {
    gr_optim o = gr_sgd((gr_sgd_opts){.lr = 0.1f});
    o.schedule = GR_SCHEDULE_STEP;
    o.epoch_iters = 10;
    o.step_epochs = 2;
    o.gamma = 0.5f;
    CHECK(fabsf(gr_optim_lr(&o, 19) - 0.1f) < 1e-7f, "step: epoch 1 lr %g", gr_optim_lr(&o, 19));
    CHECK(fabsf(gr_optim_lr(&o, 20) - 0.05f) < 1e-7f, "step: epoch 2 lr %g", gr_optim_lr(&o, 20));
    CHECK(fabsf(gr_optim_lr(&o, 45) - 0.025f) < 1e-7f, "step: epoch 4 lr %g", gr_optim_lr(&o, 45));
    o.schedule = GR_SCHEDULE_COSINE;
    o.total_iters = 100;
    CHECK(fabsf(gr_optim_lr(&o, 0) - 0.1f) < 1e-7f, "cosine start %g", gr_optim_lr(&o, 0));
    CHECK(fabsf(gr_optim_lr(&o, 50) - 0.05f) < 1e-7f, "cosine middle %g", gr_optim_lr(&o, 50));
    CHECK(fabsf(gr_optim_lr(&o, 25) - 0.0853553f) < 1e-6f, "cosine quarter %g (0.1*(1+cos(pi/4))/2)", gr_optim_lr(&o, 25));
    CHECK(gr_optim_lr(&o, 100) < 1e-9f, "cosine end %g", gr_optim_lr(&o, 100));
    o.schedule = GR_SCHEDULE_CONSTANT;
    o.warmup_iters = 4;
    CHECK(fabsf(gr_optim_lr(&o, 0) - 0.025f) < 1e-7f, "warm-up step 1: %g", gr_optim_lr(&o, 0));
    CHECK(fabsf(gr_optim_lr(&o, 3) - 0.1f) < 1e-7f, "warm-up step 4: %g", gr_optim_lr(&o, 3));
    CHECK(fabsf(gr_optim_lr(&o, 9) - 0.1f) < 1e-7f, "after warm-up: %g", gr_optim_lr(&o, 9));
    /* SGD with L2 weight decay by hand: w 1, g 0.5, wd 0.1, lr 0.1, no momentum:
     * w = 1 - 0.1 * (0.5 + 0.1) = 0.94 */
    gr_optim p = gr_sgd((gr_sgd_opts){.lr = 0.1f});
    p.weight_decay = 0.1f;
    float w = 1, g = 0.5f, v = 0;
    gr_optim_update(&p, 0, 1.0f, &w, &g, &v, NULL, 1);
    CHECK(fabsf(w - 0.94f) < 1e-6f, "sgd weight decay: w = %.7f", w);
    /* discriminative rate: lr_mult 0.1 -> w = 1 - 0.01 * 0.6 = 0.994 */
    w = 1;
    gr_optim_update(&p, 0, 0.1f, &w, &g, &v, NULL, 1);
    CHECK(fabsf(w - 0.994f) < 1e-6f, "lr multiplier: w = %.7f", w);
}

static int read_floats(FILE *f, float *dst, size_t n) { return fread(dst, sizeof(float), n, f) == n; }

/* The same head trained 6 steps in PyTorch (tests/fixtures/gen_train.py). */
static void test_trajectory_matches_pytorch(void) {
    FILE *f = fopen("tests/fixtures/train/head.bin", "rb");
    CHECK(f != NULL, "tests/fixtures/train/head.bin missing (run tests/fixtures/gen_train.py)");
    if (!f) return;
    enum { S = 6, B = 4, F = 12, H = 8, C = 3 };
    static float x[S * B * F], yl[S * B], w1[F * H], b1[H], w2[H * C], b2[C];
    static float want[4][S + F * H + H + H * C + C];
    int ok = read_floats(f, x, S * B * F) && read_floats(f, yl, S * B) && read_floats(f, w1, F * H) &&
             read_floats(f, b1, H) && read_floats(f, w2, H * C) && read_floats(f, b2, C) &&
             read_floats(f, want[0], sizeof want[0] / 4) && read_floats(f, want[1], sizeof want[1] / 4) &&
             read_floats(f, want[2], sizeof want[2] / 4) && read_floats(f, want[3], sizeof want[3] / 4);
    fclose(f);
    CHECK(ok, "short fixture");
    if (!ok) return;
    static const char *names[4] = {"sgd", "adam", "sgd+weight decay", "adamw"};
    for (int run = 0; run < 4; run++) {
        gr_error e;
        gr_model *m = gr_model_new(1, 1, F, &e);
        gr_stack(m, &e, gr_dense(H, GR_ACT_RELU), gr_dense(C, GR_ACT_SOFTMAX));
        memcpy(gr_param_data(m, 0), w1, sizeof w1);
        memcpy(gr_param_data(m, 1), b1, sizeof b1);
        memcpy(gr_param_data(m, 2), w2, sizeof w2);
        memcpy(gr_param_data(m, 3), b2, sizeof b2);
        gr_optim opt = run % 2 == 0 ? gr_sgd((gr_sgd_opts){.lr = 0.1f, .momentum = 0.9f, .nesterov = true})
                                    : (run == 1 ? gr_adam(0.01f) : gr_adamw(0.01f, 0.1f));
        if (run == 2) opt.weight_decay = 0.01f;
        gr_trainer_opts o = {.optim = opt, .max_batch = B, .seed = 1};
        gr_trainer *t = gr_trainer_new(m, 0, &o, &e);
        float losses[S];
        for (int s = 0; s < S; s++) {
            int lab[B];
            for (int b = 0; b < B; b++) lab[b] = (int)yl[s * B + b];
            CHECK(gr_trainer_step(t, x + s * B * F, lab, B, &losses[s], NULL, &e) == GR_OK, "%s", e.msg);
        }
        char what[64];
        snprintf(what, sizeof what, "%s losses", names[run]);
        CHECK_CLOSE(what, losses, want[run], S, 1e-5, 1e-4);
        snprintf(what, sizeof what, "%s weights", names[run]);
        CHECK_CLOSE(what, m->w, want[run] + S, F * H + H + H * C + C, 1e-5, 1e-3);
        gr_trainer_free(t);
        gr_model_free(m);
    }
}

static void test_deterministic_with_dropout(void) {
    float final[2][40];
    for (int run = 0; run < 2; run++) {
        gr_error e;
        gr_model *m = gr_model_new(1, 1, 6, &e);
        gr_stack(m, &e, gr_dense(8, GR_ACT_RELU), gr_dropout(0.5f), gr_dense(4, GR_ACT_SOFTMAX));
        gr_model_init_params(m, 0, 5);
        gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.05f, .momentum = 0.9f}),
                             .max_batch = 8, .seed = 99};
        gr_trainer *t = gr_trainer_new(m, 0, &o, &e);
        gr_rng r;
        gr_rng_seed(&r, 4);
        for (int s = 0; s < 10; s++) {
            float x[8 * 6];
            int lab[8];
            for (int i = 0; i < 48; i++) x[i] = gr_rng_normal(&r);
            for (int i = 0; i < 8; i++) lab[i] = (int)gr_rng_below(&r, 4);
            gr_trainer_step(t, x, lab, 8, NULL, NULL, &e);
        }
        memcpy(final[run], m->w, sizeof final[run]);
        gr_trainer_free(t);
        gr_model_free(m);
    }
    CHECK(memcmp(final[0], final[1], sizeof final[0]) == 0, "two runs with one seed differ");
}

static void test_bad_arguments(void) {
    gr_error e;
    gr_model *m = gr_model_new(1, 1, 4, &e);
    gr_stack(m, &e, gr_dense(3, GR_ACT_LINEAR));
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.1f}), .max_batch = 2};
    gr_trainer *t = gr_trainer_new(m, 0, &o, &e);
    CHECK(t == NULL && strstr(e.msg, "softmax"), "no softmax at the end: %s", t ? "accepted" : e.msg);
    gr_trainer_free(t);
    gr_model_append(m, gr_softmax(), &e);
    o.optim.lr = -1;
    t = gr_trainer_new(m, 0, &o, &e);
    CHECK(t == NULL && strstr(e.msg, "lr"), "negative lr: %s", t ? "accepted" : e.msg);
    gr_trainer_free(t);
    o.optim.lr = 1e30f;
    t = gr_trainer_new(m, 0, &o, &e);
    CHECK(t != NULL, "%s", e.msg);
    float x[8] = {1e30f, -1e30f, 1e30f, 3, 1, 2, 3, 4};
    int lab[2] = {0, 5};
    CHECK(gr_trainer_step(t, x, lab, 2, NULL, NULL, &e) == GR_ERR_ARG, "label 5 of 3 classes accepted");
    lab[1] = 1;
    gr_status st = GR_OK;
    float l = 0;
    for (int s = 0; s < 5 && st == GR_OK; s++) st = gr_trainer_step(t, x, lab, 2, &l, NULL, &e);
    if (getenv("CHECK_VERBOSE")) fprintf(stderr, "  last loss %g: %s\n", l, e.msg);
    CHECK(st == GR_ERR_NUMERIC, "a diverging run was not stopped (status %d)", st);
    gr_trainer_free(t);
    gr_model_free(m);
}

/* The fused dense step (a kernel of >= 2^18 weights: its gradient is made a
 * tile at a time and applied at once) against PyTorch (gen_train_large.py),
 * against the unfused gradient + update, and bit-identical at 1 and 2 threads. */
enum { LS = 4, LB = 8, LF = 512, LH = 512, LC = 10, LW1 = (LF * LH + 60) / 61 };

static gr_model *large_head(void) {
    gr_error e;
    gr_model *m = gr_model_new(1, 1, LF, &e);
    if (!m || gr_stack(m, &e, gr_dense(LH, GR_ACT_RELU), gr_dense(LC, GR_ACT_SOFTMAX)) != GR_OK) return NULL;
    float *w1 = gr_param_data(m, 0), *b1 = gr_param_data(m, 1), *w2 = gr_param_data(m, 2);
    for (int i = 0; i < LF * LH; i++) w1[i] = (float)(0.05 * sin(0.37 * i + 0.1));
    for (int i = 0; i < LH; i++) b1[i] = (float)(0.01 * cos((double)i));
    for (int i = 0; i < LH * LC; i++) w2[i] = (float)(0.02 * sin(0.91 * i));
    memset(gr_param_data(m, 3), 0, LC * sizeof(float));
    return m;
}

static void large_batch(int s, float *x, int *lab) {
    for (int k = 0; k < LB * LF; k++) x[k] = (float)(1.0 * sin(0.013 * (s * LB * LF + k) + 0.5));
    for (int b = 0; b < LB; b++) lab[b] = ((s * LB + b) * 7) % LC;
}

/* Trains 4 steps; fused = gr_trainer_step, else gradients + gr_optim_update. */
static gr_model *train_large(gr_optim opt, int threads, bool fused, float *losses) {
    omp_set_num_threads(threads);
    gr_model *m = large_head();
    gr_error e;
    gr_trainer_opts o = {.optim = opt, .max_batch = LB, .seed = 1};
    gr_trainer *t = m ? gr_trainer_new(m, 0, &o, &e) : NULL;
    static float x[LB * LF];
    int lab[LB];
    for (int s = 0; t && s < LS; s++) {
        large_batch(s, x, lab);
        if (fused) {
            CHECK(gr_trainer_step(t, x, lab, LB, &losses[s], NULL, &e) == GR_OK, "%s", e.msg);
            continue;
        }
        CHECK(gr_trainer_gradients(t, x, lab, LB, &losses[s], NULL, &e) == GR_OK, "%s", e.msg);
        size_t off, n;
        float *g = gr_trainer_grad(t, &off, &n), *s1, *s2;
        int64_t *it;
        gr_rng *rng;
        gr_trainer_state(t, &s1, &s2, &n, &it, &rng);
        gr_optim_update(&opt, *it, 1.0f, m->w + off, g, s1, s2, n);
        (*it)++;
    }
    gr_trainer_free(t);
    omp_set_num_threads(2);
    return m;
}

static void test_fused_dense_step(void) {
    FILE *f = fopen("tests/fixtures/train/head_large.bin", "rb");
    CHECK(f != NULL, "tests/fixtures/train/head_large.bin missing (run tests/fixtures/gen_train_large.py)");
    if (!f) return;
    enum { PER = LS + LW1 + LH + LH * LC + LC };
    static float want[2][PER], got[PER];
    int ok = read_floats(f, want[0], PER) && read_floats(f, want[1], PER);
    fclose(f);
    CHECK(ok, "short fixture");
    if (!ok) return;
    gr_optim opts[2] = {gr_sgd((gr_sgd_opts){.lr = 0.01f, .momentum = 0.9f, .nesterov = true}),
                        gr_adamw(0.001f, 0.1f)};
    opts[1].epsilon = 1e-12f;
    static const char *names[2] = {"sgd", "adamw"};
    for (int run = 0; run < 2; run++) {
        float l1[LS], l2[LS], l3[LS];
        gr_model *a = train_large(opts[run], 2, true, l1);
        gr_model *b = train_large(opts[run], 1, true, l2);
        gr_model *c = train_large(opts[run], 2, false, l3);
        CHECK(a && b && c, "model");
        if (!a || !b || !c) return;
        memcpy(got, l1, sizeof l1);
        for (int k = 0; k < LW1; k++) got[LS + k] = a->w[(size_t)k * 61];
        memcpy(got + LS + LW1, a->w + LF * LH, (LH + LH * LC + LC) * sizeof(float));
        char what[64];
        snprintf(what, sizeof what, "fused %s vs PyTorch", names[run]);
        CHECK_CLOSE(what, got, want[run], PER, 1e-5, 1e-3);
        snprintf(what, sizeof what, "fused %s vs unfused", names[run]);
        CHECK_CLOSE(what, a->w, c->w, a->w_count, 1e-6, 1e-5);
        CHECK(memcmp(a->w, b->w, a->w_count * sizeof(float)) == 0 && memcmp(l1, l2, sizeof l1) == 0,
              "fused %s: 1 and 2 threads differ", names[run]);
        /* the weights moved: a step that did nothing would pass the comparisons above */
        gr_model *z = large_head();
        double moved = 0;
        for (size_t k = 0; k < (size_t)LF * LH; k++) moved += fabs(a->w[k] - z->w[k]);
        CHECK(moved > 1e-3, "fused %s: the kernel did not move (%g)", names[run], moved);
        gr_model_free(z);
        gr_model_free(a); gr_model_free(b); gr_model_free(c);
    }
}

/* The fast backend caches packed weights per chain of layers.  A trainer
 * step marks only its own layers as changed, so the frozen part keeps its
 * packs; inference after training must still see every update.  Oracle: the
 * same layers with the same weights in a fresh model (no caches at all).  */
static gr_model *conv_net(void) {
    gr_error e;
    gr_model *m = gr_model_new(8, 8, 3, &e);
    if (!m || gr_stack(m, &e, gr_conv2d(16, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),
                       gr_conv2d(16, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_maxpool(2, 2),
                       gr_conv2d(16, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_flatten(),
                       gr_dense(4, GR_ACT_SOFTMAX)) != GR_OK)
        return NULL;
    gr_model_init_params(m, 0, 9);
    return m;
}

/* The trainer's fast path (oneDNN conv backward with Winograd from 1024
 * output pixels, pooling with the forward's workspace, batch norm through
 * oneDNN, single-writer gradient buffers overwritten) gives the gradients of
 * its plain-C path (GRAFT_REFERENCE: the reference layers, themselves
 * checked against finite differences and PyTorch), with stored and with
 * batch statistics; a darknet-like net with a 2-input add so one buffer
 * has two writers.                                                          */
static gr_model *dk_net(void) {
    gr_error e;
    gr_model *m = gr_model_new(32, 32, 3, &e);
    gr_layer_spec c1 = gr_conv2d(16, 3, 3, 1, GR_PAD_SAME, GR_ACT_LINEAR), c2 = c1, c3 = c1;
    c1.use_bias = c2.use_bias = c3.use_bias = false;
    gr_layer_spec lk = gr_activation(GR_ACT_LEAKY, 0.1f), add = {0};
    add.op = GR_OP_ADD;
    add.n_inputs = 2;
    if (!m || gr_stack(m, &e, c1, gr_batchnorm(1e-5f), lk, gr_maxpool(2, 2),      /* 0-3 */
                       c2, gr_batchnorm(1e-5f), lk,                                /* 4-6: 4x16x16 = 1024 px */
                       c3) != GR_OK)                                              /* 7 */
        return NULL;
    add.inputs[0] = 6;
    add.inputs[1] = 7;
    if (gr_stack(m, &e, add, gr_avgpool(2, 2), gr_flatten(), gr_dense(5, GR_ACT_SOFTMAX)) != GR_OK) return NULL;
    gr_model_init_params(m, 0, 5);
    for (int p = 0; p < m->n_params; p++) {   /* non-trivial statistics and affine parts */
        float *d = gr_param_data(m, p);
        for (size_t k = 0; k < m->params[p].count; k++) {
            if (!strcmp(m->params[p].kind, "moving_variance") || !strcmp(m->params[p].kind, "gamma"))
                d[k] = 0.5f + 0.1f * (float)(k % 7);
            else if (!strcmp(m->params[p].kind, "moving_mean") || !strcmp(m->params[p].kind, "beta"))
                d[k] = 0.05f * (float)((int)(k % 5) - 2);
        }
    }
    return m;
}

static void test_fast_path_gradients(void) {
    enum { B = 4, N = 32 * 32 * 3 };
    static float x[B * N];
    int labels[B] = {0, 3, 1, 4};
    gr_rng r;
    gr_rng_seed(&r, 11);
    for (int i = 0; i < B * N; i++) x[i] = gr_rng_uniform(&r);
    for (int bn_train = 0; bn_train < 2; bn_train++) {
        float *g[2] = {NULL, NULL};
        size_t off = 0, cnt = 0;
        float loss[2] = {0, 0};
        for (int ref = 0; ref < 2; ref++) {
            gr_model *m = dk_net();
            CHECK(m != NULL, "model");
            if (!m) return;
            if (ref) setenv("GRAFT_REFERENCE", "1", 1);
            gr_error e;
            gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f}), .max_batch = B, .bn_train = bn_train};
            gr_trainer *t = gr_trainer_new(m, 0, &o, &e);
            unsetenv("GRAFT_REFERENCE");
            CHECK(t != NULL, "%s", e.msg);
            if (!t) { gr_model_free(m); return; }
            /* twice: the second call runs on buffers the first left dirty */
            for (int rep = 0; rep < 2; rep++)
                CHECK(gr_trainer_gradients(t, x, labels, B, &loss[ref], NULL, &e) == GR_OK, "%s", e.msg);
            float *gr = gr_trainer_grad(t, &off, &cnt);
            g[ref] = malloc(cnt * sizeof(float));
            if (g[ref]) memcpy(g[ref], gr, cnt * sizeof(float));
            gr_trainer_free(t);
            gr_model_free(m);
        }
        if (g[0] && g[1]) {
            CHECK(fabsf(loss[0] - loss[1]) < 1e-4f, "loss fast %g reference %g", loss[0], loss[1]);
            CHECK_CLOSE(bn_train ? "gradients, batch statistics" : "gradients, stored statistics", g[0], g[1], cnt,
                        2e-4, 2e-3);
        }
        free(g[0]);
        free(g[1]);
    }
}

static void test_caches_follow_training(void) {
    enum { B = 4, N = 8 * 8 * 3 };
    gr_model *m = conv_net(), *fresh = conv_net();
    CHECK(m && fresh, "model");
    if (!m || !fresh) return;
    static float x[B * N], feat[B * 4 * 4 * 16], p1[B * 4], p2[B * 4], p0[B * 4];
    gr_rng r;
    gr_rng_seed(&r, 5);
    for (int k = 0; k < B * N; k++) x[k] = gr_rng_uniform(&r);
    int lab[B] = {0, 1, 2, 3};
    gr_error e;
    gr_ctx *cx = gr_ctx_new(m, &e);   /* a context kept across the training steps */
    CHECK(cx && gr_ctx_predict(cx, x, B, -1, p0, &e) == GR_OK, "%s", e.msg);   /* packs every chain */
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.05f, .momentum = 0.9f}), .max_batch = B};
    gr_trainer *t = gr_trainer_new(m, 3, &o, &e);   /* layers 0-2 frozen: conv, conv, pool */
    CHECK(t != NULL, "%s", e.msg);
    if (!t) return;
    for (int s = 0; s < 5; s++) {
        /* the frozen part, through the trainer's context */
        CHECK(gr_ctx_run(gr_trainer_ctx(t), 0, x, B, 2, feat, &e) == GR_OK, "%s", e.msg);
        CHECK(gr_trainer_step(t, feat, lab, B, NULL, NULL, &e) == GR_OK, "%s", e.msg);
        /* an evaluation between steps (as after every epoch) re-packs what it uses */
        CHECK(gr_ctx_predict(cx, x, B, -1, p1, &e) == GR_OK, "%s", e.msg);
    }
    gr_trainer_free(t);
    CHECK(gr_ctx_predict(cx, x, B, -1, p1, &e) == GR_OK, "%s", e.msg);
    gr_ctx_free(cx);
    memcpy(fresh->w, m->w, m->w_count * sizeof(float));
    CHECK(gr_model_predict(fresh, x, B, -1, p2, &e) == GR_OK, "%s", e.msg);
    CHECK_CLOSE("predict after training vs a fresh copy", p1, p2, B * 4, 1e-6, 1e-5);
    double moved = 0;
    for (int k = 0; k < B * 4; k++) moved += fabs(p1[k] - p0[k]);
    CHECK(moved > 1e-3, "training changed no prediction (%g)", moved);
    gr_model_free(m);
    gr_model_free(fresh);
}

int main(void) {
    RUN(test_gradients_match_finite_differences);
    RUN(test_mixed_targets_match_finite_differences);
    RUN(test_sgd_hand_computed);
    RUN(test_schedules_hand_computed);
    RUN(test_trajectory_matches_pytorch);
    RUN(test_deterministic_with_dropout);
    RUN(test_fused_dense_step);
    RUN(test_fast_path_gradients);
    RUN(test_caches_follow_training);
    RUN(test_bad_arguments);
    return check_summary();
}
