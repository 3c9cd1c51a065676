/* test_darknet.c — darknet .cfg + .weights as graft models, against an
 * independent PyTorch re-implementation (tests/fixtures/gen_darknet.py) and
 * the real Tiny Darknet (../shared/data; skipped when absent).             */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "graft.h"
#include "graph/model.h"
#include "arch/darknet.h"
#include "format/darknet_weights.h"
#include "check.h"

#define FIX "tests/fixtures/darknet"

static int exists(const char *p) { return access(p, R_OK) == 0; }

/* Floats per sample of a node's output. */
static int64_t node_size(const gr_model *m, int node) {
    int h, w, c;
    gr_model_layer_shape(m, node, &h, &w, &c);
    return (int64_t)h * w * c;
}

/* ------------------------------------------------------- synthetic parity */

/* synth_io.bin records: int32 layer, int32 per-sample floats, floats (NHWC). */
typedef struct { int layer, n; const float *v; } io_rec;

static int read_io(unsigned char *buf, size_t sz, io_rec *recs, int max, int *batch) {
    int32_t hdr[2];
    memcpy(hdr, buf, 8);
    *batch = hdr[1];
    size_t pos = 8;
    int k = 0;
    for (; k < hdr[0] && k < max && pos + 8 <= sz; k++) {
        int32_t h[2];
        memcpy(h, buf + pos, 8);
        recs[k].layer = h[0];
        recs[k].n = h[1];
        recs[k].v = (const float *)(buf + pos + 8);
        pos += 8 + (size_t)h[1] * (size_t)*batch * 4;
    }
    return pos == sz ? k : -1;
}

static gr_model *load_synth(gr_error *err, gr_load_report *rep) {
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, err);
    if (!m) return NULL;
    if (gr_darknet_load_weights(m, FIX "/synth.weights", rep, err) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    return m;
}

/* Compares every darknet layer output of the synthetic net with PyTorch's. */
static void compare_synth(gr_model *m, int max_layer) {
    size_t sz;
    unsigned char *buf = check_read_file(FIX "/synth_io.bin", &sz);
    CHECK(buf != NULL, "missing " FIX "/synth_io.bin");
    if (!buf) return;
    io_rec recs[64];
    int B, n = read_io(buf, sz, recs, 64, &B);
    CHECK(n == 24 && recs[0].layer == -1, "synth_io.bin: %d records", n);
    if (n != 24) { free(buf); return; }
    gr_error err = {0};
    int compared = 0;
    for (int k = 1; k < n; k++) {
        char name[16];
        snprintf(name, sizeof name, "%d", recs[k].layer);
        int node = gr_model_find(m, name);
        if (recs[k].layer > max_layer) continue;
        if (recs[k].layer == 11) {   /* [cost]: no node */
            CHECK(node < 0, "layer 11 ([cost]) should have no node");
            continue;
        }
        CHECK(node >= 0, "no node named %s", name);
        if (node < 0) continue;
        CHECK(node_size(m, node) == recs[k].n, "layer %s: %lld floats, want %d", name,
              (long long)node_size(m, node), recs[k].n);
        if (node_size(m, node) != recs[k].n) continue;
        float *out = malloc((size_t)B * recs[k].n * sizeof(float));
        gr_status st = gr_model_predict(m, recs[0].v, B, node, out, &err);
        CHECK(st == GR_OK, "predict to layer %s: %s", name, err.msg);
        char what[64];
        snprintf(what, sizeof what, "darknet layer %s", name);
        if (st == GR_OK) CHECK_CLOSE(what, out, recs[k].v, (size_t)B * recs[k].n, 2e-5, 2e-4);
        free(out);
        compared++;
    }
    int want = (max_layer > 22 ? 23 : max_layer + 1) - (max_layer >= 11);
    CHECK(compared == want, "compared %d layers, want %d", compared, want);
    free(buf);
}

static void test_synth_structure(void) {
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    int h, w, c;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    CHECK(h == 13 && w == 11 && c == 3, "input %dx%dx%d", h, w, c);
    CHECK(gr_model_preprocess(m) == GR_PREP_DARKNET, "preprocess %d", gr_model_preprocess(m));
    const char *want[] = {"0/conv", "0/bn", "0", "1", "2", "3", "4/conv", "4/bn", "4", "5", "6",
                          "7/conv", "7", "8", "9/flatten", "9", "10", "12", "13", "14/dense",
                          "14/bn", "14", "15", "16", "17", "18", "19/conv", "19/bn", "19",
                          "20/shortcut", "20", "21", "22"};
    int nw = (int)(sizeof want / sizeof want[0]);
    CHECK(gr_model_num_layers(m) == nw, "%d nodes, want %d", gr_model_num_layers(m), nw);
    for (int i = 0; i < nw && i < gr_model_num_layers(m); i++)
        CHECK(!strcmp(gr_model_layer_name(m, i), want[i]), "node %d is '%s', want '%s'", i,
              gr_model_layer_name(m, i), want[i]);
    /* darknet maxpool rule on odd sizes: 13x11 -size 3 stride 2-> 7x6; 7x6 -size 2-> 4x3 */
    gr_model_layer_shape(m, gr_model_find(m, "1"), &h, &w, &c);
    CHECK(h == 7 && w == 6 && c == 8, "layer 1: %dx%dx%d", h, w, c);
    gr_model_layer_shape(m, gr_model_find(m, "6"), &h, &w, &c);
    CHECK(h == 4 && w == 3 && c == 12, "layer 6: %dx%dx%d", h, w, c);
    gr_model_free(m);
}

static void test_synth_parity(void) {
    gr_error err = {0};
    gr_load_report rep;
    gr_model *m = load_synth(&err, &rep);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    CHECK(rep.layers_loaded == 15, "layers_loaded %d (10 weighted layers, 5 with BN)", rep.layers_loaded);
    compare_synth(m, 100);
    gr_model_free(m);
}

static void test_synth_parity_reference(void) {
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_error err = {0};
    gr_model *m = load_synth(&err, NULL);
    CHECK(m != NULL, "%s", err.msg);
    if (m) compare_synth(m, 100);
    gr_model_free(m);
    unsetenv("GRAFT_REFERENCE");
}

/* A cut model reads a prefix of the file; the rest is reported, not an error.
 * A layer that is not a darknet layer (a new head) is an error naming it and
 * the count, unless the load is partial: then it keeps its weights. */
static void test_synth_cut(void) {
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    CHECK(gr_model_truncate(m, gr_model_find(m, "6"), &err) == GR_OK, "%s", err.msg);
    CHECK(gr_stack(m, &err, gr_flatten(), gr_named(gr_dense(3, GR_ACT_SOFTMAX), "head")) == GR_OK,
          "%s", err.msg);
    gr_model_init_params(m, 0, 3);
    float *before = malloc(m->w_count * sizeof(float));
    if (!before) { gr_model_free(m); return; }
    memcpy(before, m->w, m->w_count * sizeof(float));
    gr_load_report rep;
    gr_status st = gr_darknet_load_weights(m, FIX "/synth.weights", &rep, &err);
    CHECK(st == GR_ERR_SHAPE && strstr(err.msg, "synth.weights") && strstr(err.msg, "5 of the model's 6") &&
          strstr(err.msg, "'head'"), "strict load: %s %s", gr_status_name(st), err.msg);
    CHECK(!memcmp(before, m->w, m->w_count * sizeof(float)), "a failed load changed the weights");
    st = gr_darknet_load_weights_ex(m, FIX "/synth.weights", true, &rep, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    CHECK(strstr(rep.report, "not used") != NULL, "report: %s", rep.report);
    CHECK(strstr(rep.report, "not loaded: 'head' (not a darknet layer") != NULL, "report: %s", rep.report);
    CHECK(rep.layers_loaded == 5 && rep.layers_total == 6 && !strcmp(rep.first_missing, "head"),
          "layers_loaded %d of %d, first missing '%s'", rep.layers_loaded, rep.layers_total, rep.first_missing);
    int hk = gr_node_param(m, gr_model_find(m, "head"), "kernel");
    CHECK(!memcmp(before + m->params[hk].offset, m->w + m->params[hk].offset, m->params[hk].count * sizeof(float)),
          "the head's weights changed in a partial load");
    if (st == GR_OK) compare_synth(m, 6);
    free(before);
    gr_model_free(m);
}

/* A partial load stops where the file does when it ends between layers;
 * a strict load calls that a truncated file. */
static void test_synth_partial_prefix(void) {
    const char *path = check_tmp("prefix.weights");
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    FILE *in = fopen(FIX "/synth.weights", "rb");
    FILE *out = fopen(path, "wb");
    if (!m || !in || !out) { if (in) fclose(in); if (out) fclose(out); gr_model_free(m); return; }
    /* header (20 bytes for version >= 0.2) + layer 0: biases, 3 BN vectors, kernel */
    int n0 = gr_model_find(m, "0/conv");
    if (n0 < 0) n0 = gr_model_find(m, "0");
    const gr_node *c0 = &m->nodes[n0];
    long keep = 20 + 4L * (c0->oc * (c0->s.use_bias ? 1 : 4) + (long)c0->oc * c0->ic * c0->s.kh * c0->s.kw);
    int32_t ver[3];
    CHECK(fread(ver, 4, 3, in) == 3, "header");
    if (ver[0] * 10 + ver[1] < 2) keep -= 4;
    fseek(in, 0, SEEK_SET);
    for (long i = 0; i < keep; i++) fputc(fgetc(in), out);
    fclose(in);
    fclose(out);
    gr_load_report rep;
    gr_status st = gr_darknet_load_weights(m, path, &rep, &err);
    CHECK(st == GR_ERR_SHAPE && strstr(err.msg, "only 2 of the model's ") && strstr(err.msg, "before darknet layer 2"),
          "strict: %s %s", gr_status_name(st), err.msg);
    st = gr_darknet_load_weights_ex(m, path, true, &rep, &err);
    CHECK(st == GR_OK, "partial: %s", err.msg);
    CHECK(rep.layers_loaded == (c0->s.use_bias ? 1 : 2) && rep.layers_total > rep.layers_loaded &&
          strstr(rep.report, "after the end of the file"), "loaded %d of %d: %s", rep.layers_loaded,
          rep.layers_total, rep.report);
    unlink(path);
    gr_model_free(m);
}

/* ------------------------------------------------------------ real data */

static void run_tiny(const char *dir, const char *img, int size, int idx) {
    char cfg[512], wts[512], px[256];
    snprintf(cfg, sizeof cfg, "%s/weights/darknet-tiny/tiny.cfg", dir);
    snprintf(wts, sizeof wts, "%s/weights/darknet-tiny/tiny.weights", dir);
    snprintf(px, sizeof px, FIX "/tiny_%s%d.u8", img, size);
    size_t n, ne;
    unsigned char *u8 = check_read_file(px, &n);
    float *want = (float *)check_read_file(FIX "/tiny_expected.bin", &ne);
    CHECK(u8 && n == (size_t)size * size * 3 && want && ne == 3 * 1000 * 4, "fixtures %s", px);
    gr_error err = {0};
    gr_model *m = u8 && want ? gr_darknet_load_cfg(cfg, size, size, &err) : NULL;
    CHECK(m != NULL, "%s", err.msg);
    if (m) {
        gr_status st = gr_darknet_load_weights(m, wts, NULL, &err);
        CHECK(st == GR_OK, "%s", err.msg);
        float *x = malloc(n * sizeof(float)), out[1000];
        for (size_t i = 0; i < n; i++) x[i] = u8[i] / 255.0f;
        st = gr_model_predict(m, x, 1, -1, out, &err);
        CHECK(st == GR_OK, "%s", err.msg);
        const float *w = want + idx * 1000;
        int top = 0, wtop = 0;
        for (int k = 1; k < 1000; k++) {
            if (out[k] > out[top]) top = k;
            if (w[k] > w[wtop]) wtop = k;
        }
        CHECK(top == wtop, "%s%d: top-1 %d (%.4f), PyTorch %d (%.4f)", img, size, top, out[top],
              wtop, w[wtop]);
        char what[64];
        snprintf(what, sizeof what, "tiny %s%d probabilities", img, size);
        CHECK_CLOSE(what, out, w, 1000, 1e-4, 0);
        if (getenv("CHECK_VERBOSE"))
            fprintf(stderr, "  tiny %s%d: top-1 class %d p=%.4f\n", img, size, top, out[top]);
        free(x);
    }
    gr_model_free(m);
    free(u8);
    free(want);
}

static void test_tiny_darknet_real(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/weights/darknet-tiny/tiny.weights", check_data_dir());
    if (!exists(p)) SKIP("%s absent", p);
    run_tiny(check_data_dir(), "dog", 32, 0);
    run_tiny(check_data_dir(), "dog", 224, 1);
    run_tiny(check_data_dir(), "eagle", 224, 2);
}

/* Shapes of darknet's own classifier cfgs (Debian package `darknet`). */
static void cfg_shape(const char *file, int h, int w, const char *layer, int wh, int ww, int wc) {
    char p[256];
    snprintf(p, sizeof p, "/usr/share/darknet/cfg/%s", file);
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(p, h, w, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    int node = layer ? gr_model_find(m, layer) : gr_model_num_layers(m) - 1;
    int oh = 0, ow = 0, oc = 0;
    CHECK(node >= 0, "%s: no layer %s", file, layer);
    if (node >= 0) gr_model_layer_shape(m, node, &oh, &ow, &oc);
    CHECK(oh == wh && ow == ww && oc == wc, "%s layer %s: %dx%dx%d, want %dx%dx%d", file,
          layer ? layer : "(last)", oh, ow, oc, wh, ww, wc);
    gr_model_free(m);
}

static void test_debian_cfgs(void) {
    if (!exists("/usr/share/darknet/cfg/darknet19.cfg"))
        SKIP("/usr/share/darknet/cfg absent (apt-get install darknet)");
    /* figures printed by Debian's darknet (`darknet partial <cfg> ...`) at the cfg's size */
    cfg_shape("darknet19.cfg", 0, 0, "1", 128, 128, 32);
    cfg_shape("darknet19.cfg", 0, 0, "23", 8, 8, 1000);
    cfg_shape("darknet19.cfg", 0, 0, "25", 1, 1, 1000);
    cfg_shape("resnet50.cfg", 0, 0, "2", 64, 64, 64);
    cfg_shape("resnet50.cfg", 0, 0, "23", 32, 32, 128);
    cfg_shape("resnet50.cfg", 0, 0, "66", 1, 1, 2048);
    cfg_shape("resnet50.cfg", 0, 0, "68", 1, 1, 1000);
    cfg_shape("extraction.cfg", 0, 0, "19", 7, 7, 1024);
    cfg_shape("extraction.cfg", 0, 0, "26", 1, 1, 1000);
    cfg_shape("alexnet.cfg", 0, 0, "1", 27, 27, 96);
    cfg_shape("alexnet.cfg", 0, 0, "3", 13, 13, 256);
    cfg_shape("tiny.cfg", 0, 0, "19", 14, 14, 1000);
    /* vgg-16 at 224 (its crop) holds a 400 MB fc6; at 32x32 the same layers: */
    cfg_shape("vgg-16.cfg", 32, 32, "18", 1, 1, 512);
    cfg_shape("vgg-16.cfg", 32, 32, "24", 1, 1, 1000);
}

/* ------------------------------------------------------------- bad inputs */

/* Loads cfg text and expects an error whose message has path and `needle`. */
static void bad_cfg(const char *name, const char *text, const char *needle, int h, int w) {
    const char *p = check_tmp_write(name, text, strlen(text));
    char path[256];
    snprintf(path, sizeof path, "%s", p);
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(path, h, w, &err);
    CHECK(m == NULL, "%s: loaded but should fail", name);
    CHECK(err.code != GR_OK && strstr(err.msg, path) && strstr(err.msg, needle),
          "%s: message '%s' should name the file and say '%s'", name, err.msg, needle);
    gr_model_free(m);
}

#define NET "[net]\nheight=8\nwidth=8\nchannels=3\n"

static void test_bad_cfgs(void) {
    bad_cfg("unknown_section.cfg", NET "[convolutional]\nfilters=4\n\n[frobnicate]\nx=1\n",
            ":8: [frobnicate] (layer 1): unknown section", 0, 0);
    bad_cfg("bad_value.cfg", NET "[convolutional]\nfilters=abc\nsize=3\n",
            ":6: [convolutional] (layer 0): filters=abc is not an integer", 0, 0);
    bad_cfg("huge_value.cfg", NET "[convolutional]\nfilters=2000000000\nsize=3\n",
            ":6: [convolutional] (layer 0): filters=2000000000 is out of range (1 to 1000000000)", 0, 0);
    bad_cfg("overflow_value.cfg", NET "[convolutional]\nfilters=99999999999999999999\nsize=3\n",
            "filters=99999999999999999999 is out of range", 0, 0);
    bad_cfg("no_net.cfg", "[convolutional]\nfilters=4\n", "must be [net]", 0, 0);
    bad_cfg("empty.cfg", "# nothing\n", "must be [net]", 0, 0);
    bad_cfg("route_far.cfg", NET "[convolutional]\nfilters=4\n[route]\nlayers=-5\n",
            "(layer 1): refers to layer -4", 0, 0);
    bad_cfg("route_fwd.cfg", NET "[convolutional]\nfilters=4\n[route]\nlayers=3\n",
            "refers to layer 3", 0, 0);
    bad_cfg("shortcut_far.cfg", NET "[convolutional]\nfilters=3\n[shortcut]\nfrom=-9\n",
            "not an earlier layer", 0, 0);
    bad_cfg("shortcut_up.cfg", NET "[convolutional]\nfilters=3\n[convolutional]\nfilters=3\n"
            "stride=2\n[route]\nlayers=0\n[shortcut]\nfrom=1\n", "adding a 4x4 layer to a 8x8", 0, 0);
    bad_cfg("too_small.cfg", NET "[convolutional]\nfilters=4\nsize=5\nstride=1\npad=0\n",
            "too small", 4, 4);
    bad_cfg("too_small_pool.cfg", NET "[maxpool]\nsize=9\nstride=1\npadding=0\n", "too small", 0, 0);
    bad_cfg("bad_act.cfg", NET "[convolutional]\nfilters=4\nactivation=swishy\n",
            "activation=swishy", 0, 0);
    bad_cfg("unknown_key.cfg", NET "[convolutional]\nfilters=4\nfoo=1\n", "unknown key 'foo'", 0, 0);
    bad_cfg("dilation.cfg", NET "[convolutional]\nfilters=4\ndilation=2\n", "dilation=2", 0, 0);
    bad_cfg("yolo.cfg", NET "[convolutional]\nfilters=4\n[yolo]\n", "[yolo] (layer 1)", 0, 0);
    bad_cfg("no_size.cfg", "[net]\nchannels=3\n[convolutional]\nfilters=4\n", "height", 0, 0);
    bad_cfg("no_eq.cfg", NET "[convolutional]\nfilters\n", ":6: expected key=value", 0, 0);
    bad_cfg("no_layers.cfg", NET, "no layers", 0, 0);
    gr_error err = {0};
    CHECK(gr_darknet_load_cfg("/nonexistent/x.cfg", 0, 0, &err) == NULL &&
          strstr(err.msg, "/nonexistent/x.cfg"), "missing file: %s", err.msg);
}

static void bad_weights(const char *name, const void *data, size_t n, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, "%s", check_tmp_write(name, data, n));
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    float before = 0;
    gr_status st = gr_darknet_load_weights(m, path, NULL, &err);
    CHECK(st != GR_OK, "%s: loaded but should fail", name);
    CHECK(strstr(err.msg, path) && strstr(err.msg, needle),
          "%s: message '%s' should name the file and say '%s'", name, err.msg, needle);
    (void)before;
    gr_model_free(m);
}

static void test_bad_weights(void) {
    size_t n;
    unsigned char *w = check_read_file(FIX "/synth.weights", &n);
    CHECK(w != NULL, "missing synth.weights");
    if (!w) return;
    bad_weights("half.weights", w, n / 2, "ends inside darknet layer");
    bad_weights("one_short.weights", w, n - 4, "ends inside darknet layer 22 (connected)");
    bad_weights("header_only.weights", w, 20, "ends inside darknet layer 0 (convolutional)");
    bad_weights("short_header.weights", w, 10, "too short for a darknet .weights header");
    bad_weights("short_seen.weights", w, 16, "too short for a darknet .weights header");
    unsigned char bad[64];
    memcpy(bad, w, sizeof bad);
    int32_t big = 5000;
    memcpy(bad, &big, 4);
    bad_weights("bad_version.weights", bad, sizeof bad, "not a darknet .weights header");
    /* extra data after the last layer: loads, with a note in the report */
    unsigned char *longer = malloc(n + 16);
    memcpy(longer, w, n);
    memset(longer + n, 0, 16);
    char path[256];
    snprintf(path, sizeof path, "%s", check_tmp_write("long.weights", longer, n + 16));
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    gr_load_report rep;
    CHECK(m && gr_darknet_load_weights(m, path, &rep, &err) == GR_OK, "%s", err.msg);
    CHECK(strstr(rep.report, "16 bytes not used") != NULL, "report: %s", rep.report);
    gr_model_free(m);
    /* a NaN weight: loads, warns, says so in the report */
    float nan = NAN;
    memcpy(longer + 20, &nan, 4);    /* layer 0's first beta */
    snprintf(path, sizeof path, "%s", check_tmp_write("nan.weights", longer, n));
    m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m && gr_darknet_load_weights(m, path, &rep, &err) == GR_OK, "%s", err.msg);
    CHECK(strstr(rep.report, "layer 0 (convolutional): NaN/Inf weights: 1") != NULL, "report: %s",
          rep.report);
    gr_model_free(m);
    free(longer);
    free(w);
}

/* gr_model_load_weights (weights.c) hands .weights files to the darknet reader. */
static void test_dispatch(void) {
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_load_report rep;
    CHECK(gr_model_load_weights(m, FIX "/synth.weights", &rep, &err) == GR_OK, "%s", err.msg);
    CHECK(rep.layers_loaded == 15, "layers_loaded %d", rep.layers_loaded);
    compare_synth(m, 100);
    gr_model_free(m);
}

int main(void) {
    if (check_tmp_open("darknet")) return 1;
    RUN(test_synth_structure);
    RUN(test_synth_parity);
    RUN(test_synth_parity_reference);
    RUN(test_synth_cut);
    RUN(test_synth_partial_prefix);
    RUN(test_tiny_darknet_real);
    RUN(test_debian_cfgs);
    RUN(test_bad_cfgs);
    RUN(test_bad_weights);
    RUN(test_dispatch);
    check_tmp_close();
    return check_summary();
}
