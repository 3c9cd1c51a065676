/* test_resnet.c — gr_resnet50 (Keras' ResNet50 v1) against PyTorch: a random
 * Keras-architecture ResNet-50 written by tests/fixtures/gen_resnet.py at test
 * time in the published notop .h5 layout (nested and flat groups), outputs
 * compared at the last layer and at intermediate names; the architecture's
 * counts against Keras' published ones; bad files and bad sizes.          */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"

static int fx_ready = -1;

static bool fixtures(void) {
    if (fx_ready < 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/gen_resnet.py %s >/dev/null 2>&1", check_tmp_dir());
        fx_ready = system(cmd) == 0;
    }
    return fx_ready;
}

/* ------------------------------------------------------------ architecture */

static void test_architecture_counts(void) {
    gr_error err = {0};
    gr_model *m = gr_resnet50(224, 224, false, &err), *t = gr_resnet50(224, 224, true, &err);
    CHECK(m && t, "%s", err.msg);
    if (!m || !t) goto out;
    /* Keras: 175 layers (input_1 and the two ZeroPadding2D included) and
     * 23,587,712 parameters (of which 53,120 BN moving statistics) without
     * the top; 25,636,712 with it (avg_pool + predictions) */
    CHECK(gr_model_num_layers(m) == 175 - 3, "%d layers", gr_model_num_layers(m));
    CHECK(gr_model_num_layers(t) == 177 - 3, "%d layers with the top", gr_model_num_layers(t));
    CHECK(gr_model_param_count(m, false) == 23587712, "%lld params", (long long)gr_model_param_count(m, false));
    CHECK(gr_model_param_count(t, false) == 25636712, "%lld params with the top",
          (long long)gr_model_param_count(t, false));
    int convs = 0, bns = 0, adds = 0;
    for (int i = 0; i < gr_model_num_layers(m); i++) {
        gr_op op = gr_model_layer_op(m, i);
        convs += op == GR_OP_CONV2D;
        bns += op == GR_OP_BATCHNORM;
        adds += op == GR_OP_ADD;
    }
    CHECK(convs == 53 && bns == 53 && adds == 16, "%d convs %d bns %d adds", convs, bns, adds);
    CHECK(!strcmp(gr_model_layer_name(m, 0), "conv1_conv"), "first %s", gr_model_layer_name(m, 0));
    CHECK(!strcmp(gr_model_layer_name(m, 171), "conv5_block3_out"), "last %s", gr_model_layer_name(m, 171));
    CHECK(!strcmp(gr_model_layer_name(t, 173), "predictions"), "top %s", gr_model_layer_name(t, 173));
    CHECK(gr_model_find(m, "conv1_pad") < 0 && gr_model_find(m, "pool1_pad") < 0, "pads have no node");
    const char *names[] = {"conv1_bn", "conv1_relu", "pool1_pool", "conv2_block1_0_conv", "conv2_block1_0_bn",
                           "conv3_block4_2_relu", "conv4_block6_3_bn", "conv5_block3_add"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK(gr_model_find(m, names[i]) >= 0, "no layer %s", names[i]);
    /* shapes at 224 (Keras: 112, 56, 56, 28, 14, 7) */
    struct { const char *n; int h, c; } sh[] = {{"conv1_conv", 112, 64}, {"pool1_pool", 56, 64},
        {"conv2_block3_out", 56, 256}, {"conv3_block1_1_conv", 28, 128}, {"conv3_block4_out", 28, 512},
        {"conv4_block6_out", 14, 1024}, {"conv5_block3_out", 7, 2048}};
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        int h, w, c;
        gr_model_layer_shape(m, gr_model_find(m, sh[i].n), &h, &w, &c);
        CHECK(h == sh[i].h && w == sh[i].h && c == sh[i].c, "%s: %dx%dx%d", sh[i].n, h, w, c);
    }
    int h, w, c;
    gr_model_layer_shape(t, 173, &h, &w, &c);
    CHECK(h == 1 && w == 1 && c == 1000, "predictions %dx%dx%d", h, w, c);
    /* the stride sits on the 1x1 (v1): conv3_block1_1_conv already halves */
    int n1 = gr_model_find(m, "conv3_block1_1_conv"), n2 = gr_model_find(m, "conv3_block1_2_conv");
    CHECK(m->nodes[n1].s.sh == 2 && m->nodes[n1].s.kh == 1 && m->nodes[n2].s.sh == 1, "stride placement");
    CHECK(m->nodes[0].s.use_bias && m->nodes[n1].s.use_bias, "Keras' ResNet50 convs have biases");
    CHECK(fabsf(m->nodes[1].s.eps - 1.001e-5f) < 1e-9f, "bn eps %g", m->nodes[1].s.eps);
    /* the adds read the shortcut and the main path */
    int a1 = gr_model_find(m, "conv2_block1_add"), a2 = gr_model_find(m, "conv2_block2_add");
    CHECK(m->nodes[a1].n_in == 2 && m->nodes[a1].in[0] == gr_model_find(m, "conv2_block1_0_bn") &&
          m->nodes[a1].in[1] == gr_model_find(m, "conv2_block1_3_bn"), "conv2_block1_add inputs");
    CHECK(m->nodes[a2].n_in == 2 && m->nodes[a2].in[0] == gr_model_find(m, "conv2_block1_out") &&
          m->nodes[a2].in[1] == gr_model_find(m, "conv2_block2_3_bn"), "conv2_block2_add inputs");
    CHECK(gr_model_preprocess(m) == GR_PREP_CAFFE, "preprocess %s", gr_preprocess_name(gr_model_preprocess(m)));
out:
    gr_model_free(m);
    gr_model_free(t);
}

static void test_input_sizes(void) {
    gr_error err = {0};
    gr_model *m = gr_resnet50(31, 64, false, &err);
    CHECK(!m && err.code == GR_ERR_ARG && strstr(err.msg, "32x32") && strstr(err.msg, "resnet50"), "%s", err.msg);
    gr_model_free(m);
    m = gr_resnet50(64, 0, true, &err);
    CHECK(!m && err.code == GR_ERR_ARG, "%s", err.msg);
    gr_model_free(m);
    m = gr_resnet50(32, 32, false, &err);   /* the minimum: conv5 is 1x1 */
    CHECK(m != NULL, "%s", err.msg);
    int h, w, c;
    if (m) gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &h, &w, &c);
    CHECK(m && h == 1 && w == 1 && c == 2048, "32x32 -> %dx%dx%d", h, w, c);
    gr_model_free(m);
    m = gr_resnet50(33, 45, false, &err);    /* odd sizes: (n-1)/2+1 at every stride */
    if (m) gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &h, &w, &c);
    CHECK(m && h == 2 && w == 2, "33x45 -> %dx%d (%s)", h, w, err.msg);
    gr_model_free(m);
}

/* ------------------------------------------------------------ parity */

static const char *OUTS[] = {"pool1_pool", "conv2_block1_out", "conv3_block1_add", "conv4_block6_out",
                             "conv5_block3_out"};

static gr_model *loaded(int size, bool top, gr_load_report *rep) {
    char p[256];
    check_tmp_path(p, sizeof p, "resnet_notop.h5");
    gr_error err = {0};
    gr_model *m = gr_resnet50(size, size, top, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return NULL;
    gr_status st = gr_model_load_weights(m, p, rep, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    if (st) { gr_model_free(m); return NULL; }
    return m;
}

static void parity(int size) {
    int B = size == 32 ? 2 : 1;
    gr_load_report rep;
    gr_model *m = loaded(size, false, &rep);
    char p[256];
    snprintf(p, sizeof p, "%s/rn_in_%d.bin", check_tmp_dir(), size);
    float *x = check_read_floats(p, (size_t)B * size * size * 3);
    CHECK(m && x, "setup");
    if (!m || !x) goto out;
    CHECK(rep.layers_loaded == 106 && rep.tensors_loaded == 318 && rep.layers_skipped == 0 && !rep.by_order,
          "%d layers %d tensors %d skipped by_order %d\n%s", rep.layers_loaded, rep.tensors_loaded,
          rep.layers_skipped, rep.by_order, rep.report);
    CHECK(strstr(rep.report, "nested") != NULL, "format: %s", rep.report);
    for (size_t k = 0; k < sizeof OUTS / sizeof *OUTS; k++) {
        int node = gr_model_find(m, OUTS[k]);
        CHECK(node >= 0, "no %s", OUTS[k]);
        if (node < 0) continue;
        size_t n = (size_t)B * (size_t)gr_node_size(m, node);
        snprintf(p, sizeof p, "%s/rn_%d_%s.bin", check_tmp_dir(), size, OUTS[k]);
        float *want = check_read_floats(p, n), *y = malloc(n * sizeof *y);
        CHECK(want && y, "%s: %zu floats", p, n);
        gr_error err = {0};
        if (want && y) {
            gr_status st = gr_model_predict(m, x, B, node == m->n_nodes - 1 ? -1 : node, y, &err);
            CHECK(st == GR_OK, "predict to %s: %s", OUTS[k], err.msg);
            float amax = 0;
            for (size_t i = 0; i < n; i++) amax = fabsf(want[i]) > amax ? fabsf(want[i]) : amax;
            char what[96];
            snprintf(what, sizeof what, "%dx%d %s", size, size, OUTS[k]);
            if (!st) CHECK_CLOSE(what, y, want, n, 1e-4 * amax, 1e-4);
        }
        free(want);
        free(y);
    }
out:
    gr_model_free(m);
    free(x);
}

static void test_keras_notop_h5_32(void) {
    if (!fixtures()) SKIP("gen_resnet.py failed (python3 with torch, h5py needed)");
    parity(32);
}
static void test_keras_notop_h5_64(void) {
    if (!fixtures()) SKIP("no fixtures");
    if (UNDER_SAN) SKIP("64x64 only in the optimized build (slow under ASan)");
    parity(64);
}

/* The top: notop weights + a random predictions layer -> PyTorch's softmax. */
static void test_top_predictions(void) {
    if (!fixtures()) SKIP("no fixtures");
    char p[256];
    check_tmp_path(p, sizeof p, "resnet_notop.h5");
    gr_error err = {0};
    gr_model *t = gr_resnet50(32, 32, true, &err);
    CHECK(t != NULL, "%s", err.msg);
    if (!t) return;
    /* the notop file has no predictions: a clean error */
    CHECK(gr_model_load_weights(t, p, NULL, &err) == GR_ERR_SHAPE && strstr(err.msg, "predictions") &&
              strstr(err.msg, p), "%s", err.msg);
    gr_model *m = loaded(32, false, NULL);
    float *K = NULL, *b = NULL, *x = NULL, *want = NULL;
    if (!m) goto out;
    /* the base's parameters are a prefix of the top model's (same order) */
    CHECK(m->w_count < t->w_count && m->n_params + 2 == t->n_params, "param tables");
    memcpy(t->w, m->w, m->w_count * sizeof(float));
    check_tmp_path(p, sizeof p, "rn_pred_kernel.bin");
    K = check_read_floats(p, 2048 * 1000);
    check_tmp_path(p, sizeof p, "rn_pred_bias.bin");
    b = check_read_floats(p, 1000);
    check_tmp_path(p, sizeof p, "rn_in_32.bin");
    x = check_read_floats(p, 2 * 32 * 32 * 3);
    check_tmp_path(p, sizeof p, "rn_32_predictions.bin");
    want = check_read_floats(p, 2000);
    CHECK(K && b && x && want, "fixtures");
    if (!K || !b || !x || !want) goto out;
    int node = gr_model_find(t, "predictions");
    memcpy(gr_param_data(t, gr_node_param(t, node, "kernel")), K, 2048 * 1000 * sizeof(float));
    memcpy(gr_param_data(t, gr_node_param(t, node, "bias")), b, 1000 * sizeof(float));
    t->w_version++;
    float y[2000];
    CHECK(gr_model_predict(t, x, 2, -1, y, &err) == GR_OK, "%s", err.msg);
    CHECK_CLOSE("predictions", y, want, 2000, 1e-6, 1e-3);
out:
    free(K); free(b); free(x); free(want);
    gr_model_free(m);
    gr_model_free(t);
}

/* graft's model file keeps the ADD inputs: saved and reloaded, the same output. */
static void test_save_load_roundtrip(void) {
    if (!fixtures()) SKIP("no fixtures");
    gr_model *m = loaded(32, false, NULL), *r = NULL;
    char p[256], mp[256];
    check_tmp_path(p, sizeof p, "rn_in_32.bin");
    check_tmp_path(mp, sizeof mp, "resnet.gft");
    float *x = check_read_floats(p, 2 * 32 * 32 * 3), y1[2 * 2048], y2[2 * 2048];
    gr_error err = {0};
    CHECK(m && x, "setup");
    if (!m || !x) goto out;
    CHECK(gr_model_save(m, mp, NULL, &err) == GR_OK, "%s", err.msg);
    r = gr_model_load(mp, &err);
    CHECK(r != NULL, "%s", err.msg);
    if (!r) goto out;
    CHECK(gr_model_num_layers(r) == 172 && gr_model_preprocess(r) == GR_PREP_CAFFE, "reloaded model");
    CHECK(gr_model_predict(m, x, 2, -1, y1, &err) == GR_OK && gr_model_predict(r, x, 2, -1, y2, &err) == GR_OK,
          "%s", err.msg);
    CHECK(!memcmp(y1, y2, sizeof y1), "reloaded model gives other numbers");
out:
    unlink(mp);
    free(x);
    gr_model_free(m);
    gr_model_free(r);
}

/* ------------------------------------------------------------ bad files */

/* Loads a file that must fail: status, message naming the file and holding
 * the fragments, weights unchanged. */
static void expect_fail(const char *file, gr_status code, const char *frag1, const char *frag2) {
    char p[256];
    check_tmp_path(p, sizeof p, file);
    gr_error err = {0};
    gr_model *m = gr_resnet50(32, 32, false, &err);
    if (!m) { CHECK(0, "%s", err.msg); return; }
    check_load_fails(m, p, code, frag1, frag2);
    gr_model_free(m);
}

static void test_file_missing_a_layer(void) {
    if (!fixtures()) SKIP("no fixtures");
    expect_fail("rn_missing.h5", GR_ERR_SHAPE, "conv4_block6_3_bn", "105 of the model's 106");
}
static void test_file_wrong_shape(void) {
    if (!fixtures()) SKIP("no fixtures");
    expect_fail("rn_badshape.h5", GR_ERR_SHAPE, "conv3_block2_2_conv", "[3, 3, 128, 64]");
}
static void test_file_of_another_network(void) {
    if (!fixtures()) SKIP("no fixtures");
    expect_fail("rn_vgg.h5", GR_ERR_SHAPE, "no layer name matches", NULL);
}
static void test_torchvision_refused(void) {
    if (!fixtures()) SKIP("no fixtures");
    expect_fail("rn_torchvision.safetensors", GR_ERR_UNSUPPORTED, "v1.5", "notop.h5");
}

/* Unfreezing inside a residual block starts at the block: its shortcut (or
 * the identity into the add) reads the block's input.  Expected starts are
 * read off Keras' ResNet50 graph: conv block 1 of stage 5 opens with its
 * projection shortcut conv5_block1_0_conv; identity block 2 opens with
 * conv5_block2_1_conv, reading conv5_block1_out.                          */
static void test_train_start(void) {
    gr_error err;
    gr_model *m = gr_resnet50(32, 32, false, &err), *v = gr_vgg16(32, 32, false, &err);
    CHECK(m && v, "%s", err.msg);
    if (!m || !v) { gr_model_free(m); gr_model_free(v); return; }
    static const char *cases[][2] = {
        {"conv5_block1_2_conv", "conv5_block1_0_conv"}, {"conv5_block1_1_conv", "conv5_block1_0_conv"},
        {"conv5_block1_0_conv", "conv5_block1_0_conv"}, {"conv5_block1_3_bn", "conv5_block1_0_conv"},
        {"conv5_block2_3_conv", "conv5_block2_1_conv"}, {"conv5_block2_1_conv", "conv5_block2_1_conv"},
        {"conv5_block3_out", "conv5_block3_out"}, {"conv2_block1_2_conv", "conv2_block1_0_conv"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int u = gr_model_find(m, cases[k][0]), want = gr_model_find(m, cases[k][1]);
        int got = gr_model_train_start(m, u);
        CHECK(u >= 0 && want >= 0 && got == want, "--unfreeze %s: starts at '%s', want '%s'", cases[k][0],
              got >= 0 ? gr_model_layer_name(m, got) : "(none)", cases[k][1]);
    }
    int b = gr_model_find(v, "block5_conv2");   /* a chain: no change */
    CHECK(gr_model_train_start(v, b) == b, "vgg block5_conv2 moved to %d", gr_model_train_start(v, b));
    CHECK(gr_model_train_start(v, -1) == -1 && gr_model_train_start(v, 9999) == -1, "out of range accepted");
    gr_model_free(m);
    gr_model_free(v);
}

int main(void) {
    if (check_tmp_open("resnet")) return 1;
    RUN(test_architecture_counts);
    RUN(test_input_sizes);
    RUN(test_keras_notop_h5_32);
    RUN(test_keras_notop_h5_64);
    RUN(test_top_predictions);
    RUN(test_save_load_roundtrip);
    RUN(test_file_missing_a_layer);
    RUN(test_file_wrong_shape);
    RUN(test_file_of_another_network);
    RUN(test_torchvision_refused);
    RUN(test_train_start);
    check_tmp_close();
    return check_summary();
}
