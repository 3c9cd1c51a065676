/* test_wrong.c — library checks against wrong answers (issue 12, part A):
 *   - the learning-rate range test's smoothing (hand-computed values: a
 *     bias-corrected average of a constant is that constant) and its pick
 *     (hand-made curves: a clear minimum, a minimum at either edge, a flat
 *     curve, too few points)
 *   - a NaN score is never a hit in gr_cross_entropy's accuracy
 *   - gr_model_predict refuses NaN outputs, naming the layer
 *   - a weights file missing a layer: gr_model_load_weights fails naming
 *     the file, the count and the layer, and changes nothing;
 *     gr_model_load_weights_partial loads the others and reports it       */
#include <math.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/safetensors.h"
#include "train/train.h"

static void test_lr_range_smooth(void) {
    double c[30], out[30];
    for (int i = 0; i < 30; i++) c[i] = 2.5;
    gr_lr_range_smooth(c, 30, out);
    double worst = 0;
    for (int i = 0; i < 30; i++) worst = fmax(worst, fabs(out[i] - 2.5));
    CHECK(worst < 1e-12, "a constant curve is not constant after smoothing (worst %g; first %g)", worst, out[0]);
    double l[3] = {1, 2, 4};
    gr_lr_range_smooth(l, 3, out);
    /* by hand: e1 = 0.1, e2 = 0.09 + 0.2 = 0.29, e3 = 0.261 + 0.4 = 0.661;
     * divided by 1 - 0.9^k = 0.1, 0.19, 0.271                              */
    CHECK(fabs(out[0] - 1) < 1e-12 && fabs(out[1] - 0.29 / 0.19) < 1e-12 && fabs(out[2] - 0.661 / 0.271) < 1e-12,
          "%.15g %.15g %.15g", out[0], out[1], out[2]);
}

static void test_lr_range_pick(void) {
    double v[120];
    int n = 100;   /* edge = max(3, 100/20) = 5 points at each end */
    for (int i = 0; i < n; i++) v[i] = 1 + (i - 60) * (i - 60) / 1000.0;
    CHECK(gr_lr_range_pick(v, n) == 60, "U-shaped curve: picked %d, want 60", gr_lr_range_pick(v, n));
    for (int i = 0; i < n; i++) v[i] = 3 - i / 50.0;   /* still falling at the end */
    CHECK(gr_lr_range_pick(v, n) == -1, "falling curve: picked %d", gr_lr_range_pick(v, n));
    for (int i = 0; i < n; i++) v[i] = 1 + i / 50.0;   /* only rising */
    CHECK(gr_lr_range_pick(v, n) == -1, "rising curve: picked %d", gr_lr_range_pick(v, n));
    for (int i = 0; i < n; i++) v[i] = 2 + 0.02 * sin(i * 0.7);   /* flat: 1% noise */
    CHECK(gr_lr_range_pick(v, n) == -1, "flat curve: picked %d", gr_lr_range_pick(v, n));
    for (int i = 0; i < n; i++) v[i] = 2 - (i <= 94 ? i : 188 - i) / 100.0;   /* lowest at 94: the last inside */
    CHECK(gr_lr_range_pick(v, n) == 94, "minimum at 94: picked %d", gr_lr_range_pick(v, n));
    for (int i = 0; i < n; i++) v[i] = 2 - (i <= 95 ? i : 190 - i) / 100.0;   /* lowest at 95: the edge */
    CHECK(gr_lr_range_pick(v, n) == -1, "minimum at 95 (edge): picked %d", gr_lr_range_pick(v, n));
    for (int i = 0; i < 9; i++) v[i] = 1 + (i - 4) * (i - 4);
    CHECK(gr_lr_range_pick(v, 9) == -1, "9 points: picked %d", gr_lr_range_pick(v, 9));
}

static void test_nan_is_not_a_hit(void) {
    const float p[6] = {NAN, NAN, NAN, 0.2f, 0.7f, 0.1f};
    const int y[2] = {0, 1};
    int c1 = -1, c5 = -1;
    gr_cross_entropy(p, y, 2, 3, 0, &c1, &c5);
    CHECK(c1 == 1 && c5 == 1, "top-1 hits %d (want 1: the NaN row is a miss), top-5 %d (want 1)", c1, c5);
}

/* a 1x1x2 input -> d0 (2) -> d1 (2) -> d2 (2, softmax) */
static gr_model *dense3(void) {
    gr_model *m = gr_model_new(1, 1, 2, NULL);
    const char *names[3] = {"d0", "d1", "d2"};
    for (int i = 0; m && i < 3; i++)
        if (gr_model_append(m, gr_named(gr_dense(2, i == 2 ? GR_ACT_SOFTMAX : GR_ACT_LINEAR), names[i]), NULL) < 0) {
            gr_model_free(m);
            return NULL;
        }
    return m;
}

static void test_predict_refuses_nan(void) {
    gr_model *m = dense3();
    CHECK(m != NULL, "setup");
    if (!m) return;
    gr_model_init_params(m, 0, 5);
    float x[4] = {1, 2, 3, 4}, out[4];
    gr_error err = {0};
    CHECK(gr_model_predict(m, x, 2, -1, out, &err) == GR_OK, "%s", err.msg);
    gr_param_data(m, gr_node_param(m, 1, "kernel"))[0] = NAN;
    m->w_version++;
    gr_status st = gr_model_predict(m, x, 2, -1, out, &err);
    CHECK(st == GR_ERR_NUMERIC && strstr(err.msg, "layer 'd2' outputs NaN/Inf") && strstr(err.msg, "4 of 4 values"),
          "%s: %s", gr_status_name(st), err.msg);
    st = gr_model_predict(m, x, 2, 0, out, &err);   /* below the NaN: fine */
    CHECK(st == GR_OK, "%s", err.msg);
    gr_model_free(m);
}

static void test_partial_load(void) {
    gr_model *a = dense3(), *b = dense3();
    CHECK(a && b, "setup");
    if (!a || !b) { gr_model_free(a); gr_model_free(b); return; }
    gr_model_init_params(a, 0, 1);
    gr_model_init_params(b, 0, 2);
    gr_st_entry e[6];
    int k = 0;
    for (int i = 0; i < a->n_params; i++)   /* every tensor but d1's */
        if (a->params[i].node != 1)
            e[k++] = (gr_st_entry){a->params[i].name, "F32", a->params[i].ndim, a->params[i].shape, gr_param_data(a, i)};
    char p[128];
    check_tmp_path(p, sizeof p, "no_d1.safetensors");
    gr_error err = {0};
    CHECK(gr_st_write(p, e, k, NULL, 0, &err) == GR_OK, "%s", err.msg);
    float before[64];
    memcpy(before, b->w, b->w_count * sizeof(float));
    gr_load_report rep;
    gr_status st = gr_model_load_weights(b, p, &rep, &err);
    CHECK(st == GR_ERR_SHAPE && strstr(err.msg, p) && strstr(err.msg, "only 2 of the model's 3 weighted layers") &&
          strstr(err.msg, "'d1'"), "%s: %s", gr_status_name(st), err.msg);
    CHECK(!memcmp(before, b->w, b->w_count * sizeof(float)), "a failed load changed the weights");
    st = gr_model_load_weights_partial(b, p, &rep, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    CHECK(rep.layers_loaded == 2 && rep.layers_total == 3 && !strcmp(rep.first_missing, "d1") &&
          strstr(rep.report, "not loaded: 'd1'") && strstr(rep.report, "loaded 2 of 3 layers"),
          "%d of %d, '%s':\n%s", rep.layers_loaded, rep.layers_total, rep.first_missing, rep.report);
    for (int i = 0; i < b->n_params; i++) {
        const gr_param *q = &b->params[i];
        const float *want = q->node == 1 ? before + q->offset : a->w + q->offset;
        CHECK(!memcmp(want, b->w + q->offset, q->count * sizeof(float)), "%s: wrong values after a partial load",
              q->name);
    }
    unlink(p);
    gr_model_free(a);
    gr_model_free(b);
}

int main(void) {
    if (check_tmp_open("wrong")) return 1;
    RUN(test_lr_range_smooth);
    RUN(test_lr_range_pick);
    RUN(test_nan_is_not_a_hit);
    RUN(test_predict_refuses_nan);
    RUN(test_partial_load);
    check_tmp_close();
    return check_summary();
}
