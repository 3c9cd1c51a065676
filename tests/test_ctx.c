/* test_ctx.c — the execution context (exec/ctx.h, graft.h: gr_ctx):
 *   - two threads predicting with one const model, each through its own
 *     context (and a third through gr_model_predict's one-call context),
 *     give bit for bit what one thread gives, at two batch sizes; the
 *     one-thread output itself agrees with the plain-C reference layers
 *     (themselves checked against PyTorch in test_layers);
 *   - a context follows its model: new weights are used at the next run,
 *     and after layers are removed and others added (gr_model_truncate,
 *     gr_model_append) it runs the new layers, not stale primitives;
 *   - GRAFT_REFERENCE is read once, when the context is made;
 *   - a context's precision is its own (the model's is only the default);
 *   - err == NULL is accepted by the context calls.                      */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "backend/dnnl_util.h"
#include "check.h"
#include "exec/ctx.h"
#include "graph/model.h"

enum { H = 12, ITERS = 12 };

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static void fill_rand(float *p, size_t n, uint64_t seed, float lo, float hi) {
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * gr_rng_uniform(&r);
}

/* conv -> bn -> leaky -> pool -> conv relu -> pool -> flatten -> dense relu
 * -> dense softmax, random non-zero statistics: chains, a folded batch
 * norm, dense layers, softmax.                                            */
static gr_model *small_net(gr_error *err) {
    gr_model *m = gr_model_new(H, H, 3, err);
    if (!m) return NULL;
    if (gr_stack(m, err, gr_conv2d(16, 3, 3, 1, GR_PAD_SAME, GR_ACT_LINEAR), gr_batchnorm(1e-3f),
                 gr_activation(GR_ACT_LEAKY, 0.1f), gr_maxpool(2, 2),
                 gr_conv2d(24, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_maxpool(2, 2), gr_flatten(),
                 gr_dense(32, GR_ACT_RELU), gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    gr_model_init_params(m, 0, 7);
    for (int p = 0; p < m->n_params; p++) {
        const gr_param *q = &m->params[p];
        if (!strcmp(q->kind, "moving_mean") || !strcmp(q->kind, "beta") || !strcmp(q->kind, "bias"))
            fill_rand(gr_param_data(m, p), q->count, 100 + (uint64_t)p, -0.3f, 0.3f);
        else if (!strcmp(q->kind, "moving_variance") || !strcmp(q->kind, "gamma"))
            fill_rand(gr_param_data(m, p), q->count, 100 + (uint64_t)p, 0.5f, 1.5f);
    }
    m->w_version++;
    return m;
}

/* The plain-C reference output (a context made while GRAFT_REFERENCE is set). */
static gr_status reference_predict(const gr_model *m, const float *x, int B, float *out, gr_error *err) {
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_status st = gr_model_predict(m, x, B, -1, out, err);
    unsetenv("GRAFT_REFERENCE");
    return st;
}

typedef struct {
    const gr_model *m;        /* shared, read only */
    const float *x;           /* [3, H, H, 3] */
    const float *want3, *want1;   /* one thread's outputs at batch 3 and 1 */
    bool one_call;            /* gr_model_predict instead of a context of its own */
    int runs, mismatches, failures;
    char msg[256];
} worker;

static void *work(void *arg) {
    worker *w = arg;
    gr_set_threads(2);        /* the same OpenMP team size as the main thread's */
    gr_error err;
    gr_ctx *cx = w->one_call ? NULL : gr_ctx_new(w->m, &err);
    if (!w->one_call && !cx) {
        w->failures++;
        snprintf(w->msg, sizeof w->msg, "%.200s", err.msg);
        return NULL;
    }
    float y[3 * 10];
    for (int it = 0; it < ITERS; it++) {
        int B = it % 3 == 2 ? 1 : 3;   /* a batch change rebuilds the primitives */
        gr_status st = cx ? gr_ctx_predict(cx, w->x, B, -1, y, &err) : gr_model_predict(w->m, w->x, B, -1, y, &err);
        if (st != GR_OK) {
            w->failures++;
            snprintf(w->msg, sizeof w->msg, "%.200s", err.msg);
            continue;
        }
        w->runs++;
        if (memcmp(y, B == 3 ? w->want3 : w->want1, (size_t)B * 10 * sizeof(float)) != 0) w->mismatches++;
    }
    gr_ctx_free(cx);
    return NULL;
}

static void test_threads_share_a_model(void) {
    gr_set_threads(2);
    gr_error err;
    gr_model *m = small_net(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    size_t nin = (size_t)3 * H * H * 3;
    float *x = falloc(nin), *want3 = falloc(30), *want1 = falloc(10), *ref = falloc(30);
    fill_rand(x, nin, 3, -1, 1);
    gr_ctx *cx = gr_ctx_new(m, &err);
    CHECK(cx != NULL, "%s", err.msg);
    if (!cx) return;
    CHECK(gr_ctx_predict(cx, x, 3, -1, want3, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_ctx_predict(cx, x, 1, -1, want1, &err) == GR_OK, "%s", err.msg);
    gr_ctx_free(cx);
    CHECK(reference_predict(m, x, 3, ref, &err) == GR_OK, "%s", err.msg);
    CHECK_CLOSE("one thread vs the reference layers", want3, ref, 30, 1e-5, 1e-4);
    CHECK_CLOSE("batch 1 vs the first row of batch 3", want1, want3, 10, 1e-5, 1e-4);
    worker w[3];
    pthread_t th[3];
    for (int k = 0; k < 3; k++) {
        w[k] = (worker){.m = m, .x = x, .want3 = want3, .want1 = want1, .one_call = k == 2};
        CHECK(pthread_create(&th[k], NULL, work, &w[k]) == 0, "pthread_create");
    }
    for (int k = 0; k < 3; k++) {
        pthread_join(th[k], NULL);
        CHECK(w[k].failures == 0, "thread %d: %d failed runs: %s", k, w[k].failures, w[k].msg);
        CHECK(w[k].runs == ITERS && w[k].mismatches == 0, "thread %d: %d of %d runs differ from one thread's",
              k, w[k].mismatches, w[k].runs);
    }
    free(x); free(want3); free(want1); free(ref);
    gr_model_free(m);
}

/* New weights, then new layers: the context runs what the model is now. */
static void test_ctx_follows_its_model(void) {
    gr_error err;
    gr_model *m = gr_model_new(H, H, 3, &err);
    CHECK(m && gr_stack(m, &err, gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),
                        gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU)) == GR_OK, "%s", err.msg);
    if (!m) return;
    gr_model_init_params(m, 0, 1);
    size_t nin = (size_t)2 * H * H * 3, nout = (size_t)2 * H * H * 8;
    float *x = falloc(nin), *got = falloc(nout), *want = falloc(nout);
    fill_rand(x, nin, 5, -1, 1);
    gr_ctx *cx = gr_ctx_new(m, &err);
    CHECK(cx && gr_ctx_predict(cx, x, 2, -1, got, &err) == GR_OK, "%s", err.msg);
    if (!cx) return;
    gr_model_init_params(m, 0, 2);   /* new weights */
    CHECK(gr_ctx_predict(cx, x, 2, -1, got, &err) == GR_OK, "%s", err.msg);
    CHECK(reference_predict(m, x, 2, want, &err) == GR_OK, "%s", err.msg);
    CHECK_CLOSE("after new weights", got, want, nout, 1e-5, 1e-4);
    /* the last conv replaced by a 5x5 one with another activation: same
     * output shape, so stale primitives would run without a crash */
    CHECK(gr_model_truncate(m, 0, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_model_append(m, gr_conv2d(8, 5, 5, 1, GR_PAD_SAME, GR_ACT_TANH), &err) == 1, "%s", err.msg);
    gr_model_init_params(m, 1, 3);
    CHECK(gr_ctx_predict(cx, x, 2, -1, got, &err) == GR_OK, "%s", err.msg);
    CHECK(reference_predict(m, x, 2, want, &err) == GR_OK, "%s", err.msg);
    CHECK_CLOSE("after new layers", got, want, nout, 1e-5, 1e-4);
    size_t neg = 0;   /* tanh, not relu: the new layer really ran */
    for (size_t i = 0; i < nout; i++) neg += got[i] < 0;
    CHECK(neg > nout / 10, "only %zu of %zu outputs are negative: the old relu layer ran", neg, nout);
    gr_ctx_free(cx);
    free(x); free(got); free(want);
    gr_model_free(m);
}

/* GRAFT_REFERENCE counts when the context is made, not when it runs. */
static void test_reference_read_once(void) {
    gr_error err;
    gr_model *m = small_net(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_ctx *ref = gr_ctx_new(m, &err);
    unsetenv("GRAFT_REFERENCE");
    gr_ctx *fast = gr_ctx_new(m, &err);
    setenv("GRAFT_REFERENCE", "1", 1);
    CHECK(ref && gr_ctx_reference(ref) && !gr_ctx_backend(ref), "made under GRAFT_REFERENCE, not a reference context");
    CHECK(fast && !gr_ctx_reference(fast) && gr_ctx_backend(fast), "made without GRAFT_REFERENCE, not a fast context");
    float x[2 * H * H * 3], a[20], b[20];
    fill_rand(x, sizeof x / sizeof x[0], 9, -1, 1);
    CHECK(ref && gr_ctx_predict(ref, x, 2, -1, a, &err) == GR_OK, "%s", err.msg);
    CHECK(fast && gr_ctx_predict(fast, x, 2, -1, b, &err) == GR_OK, "%s", err.msg);
    unsetenv("GRAFT_REFERENCE");
    /* the fast context built its caches although the variable was set when it ran */
    CHECK(fast && fast->be->fast[0] && fast->be->fast[0]->chain, "the fast context ran no chain");
    CHECK_CLOSE("reference vs fast context", a, b, 20, 1e-5, 1e-4);
    gr_ctx_free(ref);
    gr_ctx_free(fast);
    gr_model_free(m);
}

/* The model's precision is where a context starts; a context's is its own. */
static void test_precision_per_context(void) {
    gr_error err;
    gr_model *m = small_net(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_model_set_precision(m, GR_PRECISION_BF16);
    gr_ctx *a = gr_ctx_new(m, &err);
    gr_model_set_precision(m, GR_PRECISION_FP32);
    gr_ctx *b = gr_ctx_new(m, &err);
    CHECK(a && a->precision == GR_PRECISION_BF16 && a->be->precision == GR_PRECISION_BF16, "context a: not bf16");
    CHECK(b && b->precision == GR_PRECISION_FP32, "context b: not fp32");
    if (a) gr_ctx_set_precision(a, GR_PRECISION_FP32);
    CHECK(a && a->be->precision == GR_PRECISION_FP32, "set_precision did not reach the backend");
    gr_ctx_free(a);
    gr_ctx_free(b);
    gr_model_free(m);
}

/* err may be NULL; bad arguments are errors, not crashes. */
static void test_null_err_and_bad_args(void) {
    gr_error err;
    CHECK(gr_ctx_new(NULL, NULL) == NULL, "a context for no model");
    gr_ctx_free(NULL);
    gr_model *m = small_net(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_ctx *cx = gr_ctx_new(m, NULL);
    CHECK(cx != NULL, "gr_ctx_new with err NULL");
    float x[H * H * 3] = {0}, y[10];
    CHECK(gr_ctx_predict(cx, x, 1, -1, y, NULL) == GR_OK, "predict with err NULL");
    CHECK(gr_ctx_predict(cx, x, 0, -1, y, NULL) == GR_ERR_ARG, "batch 0 with err NULL");
    CHECK(gr_ctx_predict(cx, x, 1, 99, y, &err) == GR_ERR_ARG && strstr(err.msg, "99"), "upto 99: %s", err.msg);
    CHECK(gr_ctx_predict(NULL, x, 1, -1, y, &err) == GR_ERR_ARG, "no context");
    CHECK(gr_model_predict(m, x, 1, -1, y, NULL) == GR_OK, "gr_model_predict with err NULL");
    gr_ctx_free(cx);
    gr_model_free(m);
}

int main(void) {
    unsetenv("GRAFT_REFERENCE");
    RUN(test_threads_share_a_model);
    RUN(test_ctx_follows_its_model);
    RUN(test_reference_read_once);
    RUN(test_precision_per_context);
    RUN(test_null_err_and_bad_args);
    return check_summary();
}
