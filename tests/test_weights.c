/* test_weights.c — loading Keras .h5 and safetensors weights, checked against
 * PyTorch (tests/fixtures/gen_weights.py): a tiny conv/bn/dense net from
 * committed files, and a random VGG16 base written at test time in four
 * layouts.  Also the safetensors writer and every kind of broken file.      */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/safetensors.h"
#include "format/weights.h"

#define FIX "tests/fixtures/weights/"
/* Loads path into the tiny model and compares its output with want_path. */
static void tiny_check(const char *path, const char *want_path, bool by_order) {
    gr_model *m = check_tiny_model();
    float *x = check_read_floats(FIX "tiny_in.bin", 2 * 8 * 8 * 3), *want = check_read_floats(want_path, 10);
    CHECK(m && x && want, "fixtures missing (run gen_weights.py tiny)");
    if (!m || !x || !want) goto out;
    gr_error err = {0};
    gr_load_report rep;
    gr_status st = gr_model_load_weights(m, path, &rep, &err);
    CHECK(st == GR_OK, "load %s: %s", path, err.msg);
    if (st) goto out;
    CHECK(rep.layers_loaded == 3, "layers_loaded %d", rep.layers_loaded);
    CHECK(rep.by_order == by_order, "by_order %d:\n%s", rep.by_order, rep.report);
    CHECK(rep.layers_skipped == 0, "skipped %d", rep.layers_skipped);
    float y[10];
    st = gr_model_predict(m, x, 2, -1, y, &err);
    CHECK(st == GR_OK, "predict: %s", err.msg);
    CHECK_CLOSE(path, y, want, 10, 1e-5, 1e-4);
out:
    gr_model_free(m);
    free(x);
    free(want);
}

static void test_tiny_keras2_h5(void) { tiny_check(FIX "tiny_k2.h5", FIX "tiny_out_keras.bin", false); }
static void test_tiny_bn_without_scale(void) { tiny_check(FIX "tiny_noscale.h5", FIX "tiny_out_noscale.bin", false); }
/* torchvision names: matched by order, OIHW transposed, dense rows from CHW */
static void test_tiny_torch_safetensors_by_order(void) {
    tiny_check(FIX "tiny_torch.safetensors", FIX "tiny_out_torch.bin", true);
}

/* Loads a file expected to fail into the tiny model (check_load_fails). */
static void expect_fail(const char *path, gr_status code, const char *frag1, const char *frag2) {
    gr_model *m = check_tiny_model();
    if (!m) { CHECK(0, "tiny model"); return; }
    check_load_fails(m, path, code, frag1, frag2);
    gr_model_free(m);
}

static void test_wrong_shape(void) {
    expect_fail(FIX "tiny_badshape.h5", GR_ERR_SHAPE, "[3, 3, 3, 4]", "[3, 3, 3, 5]");
    expect_fail(FIX "tiny_badshape.h5", GR_ERR_SHAPE, "conv1", NULL);
}
static void test_missing_layer(void) { expect_fail(FIX "tiny_missing.h5", GR_ERR_SHAPE, "bn1", NULL); }

static void test_nan_weights_warn_but_load(void) {
    gr_model *m = check_tiny_model();
    gr_error err = {0};
    gr_load_report rep;
    gr_status st = gr_model_load_weights(m, FIX "tiny_nan.h5", &rep, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    CHECK(strstr(rep.report, "NaN") && strstr(rep.report, "conv1/bias"), "report: %s", rep.report);
    float *b = gr_param_data(m, gr_node_param(m, 0, "bias"));
    CHECK(b[2] != b[2] && b[1] == b[1], "NaN not where the file has it");
    gr_model_free(m);
}

static void test_truncated_h5(void) {
    size_t n;
    unsigned char *b = check_read_file(FIX "tiny_k2.h5", &n);
    char p[128];
    check_tmp_path(p, sizeof p, "truncated.h5");
    CHECK(b && !check_write_file(p, b, n / 2), "setup");
    expect_fail(p, GR_ERR_FORMAT, "HDF5", NULL);
    free(b);
}

/* Overwrites the B-tree / heap / object-header signatures in the middle of
 * the file with junk (what a bad disk or a partial copy does).             */
static void test_corrupt_h5(void) {
    size_t n;
    unsigned char *b = check_read_file(FIX "tiny_k2.h5", &n);
    CHECK(b != NULL, "setup");
    if (!b) return;
    int hits = 0;
    for (size_t i = n / 4; i + 4 < n; i++)
        if (!memcmp(b + i, "TREE", 4) || !memcmp(b + i, "HEAP", 4) || !memcmp(b + i, "SNOD", 4)) {
            for (int k = 0; k < 24 && i + k < n; k++) b[i + k] ^= 0x5a;
            hits++;
        }
    char p[128];
    check_tmp_path(p, sizeof p, "corrupt.h5");
    CHECK(hits > 0 && !check_write_file(p, b, n), "setup: %d signatures", hits);
    expect_fail(p, GR_OK, NULL, NULL);
    free(b);
}

/* Writes a safetensors file with a given header text and n data bytes. */
static void write_st(const char *path, uint64_t hlen_field, const char *header, size_t ndata) {
    FILE *f = fopen(path, "wb");
    unsigned char l[8];
    for (int i = 0; i < 8; i++) l[i] = (unsigned char)(hlen_field >> (8 * i));
    fwrite(l, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < ndata; i++) fputc(0, f);
    fclose(f);
}

static void test_bad_safetensors(void) {
    char p[128];
    const char *h;
    check_tmp_path(p, sizeof p, "lies.safetensors");
    h = "{\"conv1/kernel\":{\"dtype\":\"F32\",\"shape\":[3,3,3,4],\"data_offsets\":[0,432]}}";
    write_st(p, strlen(h), h, 100);        /* data ends before the tensor does */
    expect_fail(p, GR_ERR_FORMAT, "past the end", "conv1/kernel");
    h = "{\"a/kernel\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"a/bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}";
    write_st(p, strlen(h), h, 24);         /* overlapping */
    expect_fail(p, GR_ERR_FORMAT, "overlap", NULL);
    h = "{\"a/kernel\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(h), h, 16);         /* size disagrees with the shape */
    expect_fail(p, GR_ERR_FORMAT, "need 20", NULL);
    h = "{\"a/kernel\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    write_st(p, (uint64_t)1 << 62, h, 16); /* header length huge */
    expect_fail(p, GR_ERR_FORMAT, "header length", NULL);
    write_st(p, strlen(h) + 100, h, 16);   /* header length a bit beyond the file */
    expect_fail(p, GR_ERR_FORMAT, "header length", NULL);
    h = "{this is not json at all}";
    write_st(p, strlen(h), h, 0);
    expect_fail(p, GR_ERR_FORMAT, "JSON", NULL);
    h = "{\"a/kernel\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(h), h, 16);
    expect_fail(p, GR_ERR_FORMAT, "shape", NULL);
    h = "{\"a/kernel\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(h), h, 16);
    expect_fail(p, GR_ERR_FORMAT, "dtype", NULL);
}

static void test_not_a_weights_file(void) {
    char p[128];
    const char *txt = "just some text, not weights\n";
    check_tmp_path(p, sizeof p, "notes.txt");
    check_write_file(p, txt, strlen(txt));
    expect_fail(p, GR_ERR_FORMAT, "not a weights file", NULL);
    check_tmp_path(p, sizeof p, "fake.h5");
    check_write_file(p, txt, strlen(txt));
    expect_fail(p, GR_ERR_FORMAT, "HDF5", NULL);
    check_tmp_path(p, sizeof p, "missing.h5");
    expect_fail(p, GR_ERR_IO, NULL, NULL);
    /* raw floats with no header */
    expect_fail(FIX "tiny_in.bin", GR_ERR_FORMAT, "not a weights file", NULL);
    /* .weights goes to the darknet reader (with a model from a .cfg) */
    check_tmp_path(p, sizeof p, "short.weights");
    check_write_file(p, "abc", 3);
    expect_fail(p, GR_OK, "darknet", NULL);
}

/* F16 and BF16 tensors are converted (hand-computed values). */
static void test_safetensors_f16_bf16(void) {
    char p[128];
    check_tmp_path(p, sizeof p, "half.safetensors");
    const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
    unsigned char buf[256];
    uint64_t hl = strlen(h);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h, hl);
    /* F16: 1.0, -2.0, 65504, smallest subnormal; BF16: 1.0, -0.5 (LE) */
    const unsigned char d[12] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x80, 0x3f, 0x00, 0xbf};
    memcpy(buf + 8 + hl, d, 12);
    CHECK(!check_write_file(p, buf, 8 + hl + 12), "setup");
    gr_error err = {0};
    gr_st_file *sf = gr_st_open(p, &err);
    CHECK(sf != NULL, "%s", err.msg);
    if (!sf) return;
    float v[4], w[2];
    CHECK(!gr_st_read_f32(sf, gr_st_find(sf, "h"), v, 4, &err), "%s", err.msg);
    CHECK(!gr_st_read_f32(sf, gr_st_find(sf, "b"), w, 2, &err), "%s", err.msg);
    const float want[4] = {1.0f, -2.0f, 65504.0f, 5.9604645e-8f}, wantb[2] = {1.0f, -0.5f};
    CHECK_CLOSE("f16", v, want, 4, 0, 1e-7);
    CHECK_CLOSE("bf16", w, wantb, 2, 0, 0);
    gr_st_close(sf);
}

static int count_dir(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Writer: model params under graft names + metadata, read back by the
 * reader and by gr_model_load_weights (PyTorch output as the oracle). */
static void test_safetensors_write_roundtrip(void) {
    gr_model *m = check_tiny_model();
    gr_error err = {0};
    CHECK(gr_model_load_weights(m, FIX "tiny_k2.h5", NULL, &err) == GR_OK, "%s", err.msg);
    char dir[128], p[160];
    check_tmp_path(dir, sizeof dir, "rt");
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/tiny.safetensors", dir);
    check_write_file(p, "old", 3);   /* replaced atomically */
    gr_st_entry *e = calloc((size_t)m->n_params, sizeof *e);
    for (int i = 0; i < m->n_params; i++)
        e[i] = (gr_st_entry){m->params[i].name, "F32", m->params[i].ndim, m->params[i].shape,
                             gr_param_data(m, i)};
    const char *meta[] = {"format", "graft", "arch", "{\"layers\": [\"a/b\"]}"};
    CHECK(gr_st_write(p, e, m->n_params, meta, 2, &err) == GR_OK, "%s", err.msg);
    CHECK(count_dir(dir) == 1, "temp files left behind: %d entries", count_dir(dir));
    gr_st_file *sf = gr_st_open(p, &err);
    CHECK(sf != NULL, "%s", err.msg);
    if (sf) {
        CHECK(sf->n == m->n_params, "%d tensors", sf->n);
        CHECK(gr_st_meta(sf, "arch") && !strcmp(gr_st_meta(sf, "arch"), meta[3]), "metadata");
        CHECK(sf->data_start % 8 == 0, "header not padded to 8");
        CHECK(gr_st_find(sf, "bn1/moving_variance") >= 0, "names");
        gr_st_close(sf);
    }
    tiny_check(p, FIX "tiny_out_keras.bin", false);
    /* a duplicate name is refused and the file stays as it was */
    e[1].name = e[0].name;
    CHECK(gr_st_write(p, e, m->n_params, NULL, 0, &err) == GR_ERR_ARG, "duplicate accepted");
    CHECK(count_dir(dir) == 1, "temp files left behind");
    /* into a directory that does not exist: a clean error naming the file */
    snprintf(p, sizeof p, "%s/nope/x.safetensors", dir);
    CHECK(gr_st_write(p, e, 1, NULL, 0, &err) == GR_ERR_IO && strstr(err.msg, p), "%s", err.msg);
    free(e);
    gr_model_free(m);
}

/* A long model: the report keeps its closing summary (detail lines are cut
 * first), and graft-named safetensors round-trip bit-exactly.             */
static gr_model *long_model(void) {
    gr_model *m = gr_model_new(1, 1, 2, NULL);
    for (int i = 0; m && i < 80; i++) {
        char name[64];
        snprintf(name, sizeof name, "dense_with_a_rather_long_name_%02d", i);
        if (gr_model_append(m, gr_named(gr_dense(2, GR_ACT_LINEAR), name), NULL) < 0) {
            gr_model_free(m);
            return NULL;
        }
    }
    return m;
}
static void test_long_report_keeps_summary(void) {
    gr_model *a = long_model(), *b = long_model();
    CHECK(a && b, "setup");
    if (!a || !b) { gr_model_free(a); gr_model_free(b); return; }
    gr_model_init_params(a, 0, 42);
    gr_st_entry *e = calloc((size_t)a->n_params, sizeof *e);
    for (int i = 0; i < a->n_params; i++)
        e[i] = (gr_st_entry){a->params[i].name, "F32", a->params[i].ndim, a->params[i].shape, gr_param_data(a, i)};
    char p[128];
    check_tmp_path(p, sizeof p, "long.safetensors");
    gr_error err = {0};
    CHECK(gr_st_write(p, e, a->n_params, NULL, 0, &err) == GR_OK, "%s", err.msg);
    gr_load_report rep;
    CHECK(gr_model_load_weights(b, p, &rep, &err) == GR_OK, "%s", err.msg);
    CHECK(rep.layers_loaded == 80 && rep.tensors_loaded == 160, "%d %d", rep.layers_loaded, rep.tensors_loaded);
    CHECK(strstr(rep.report, "loaded 80 of 80 layers (160 tensors) by name") != NULL, "summary lost:\n%s", rep.report);
    CHECK(strstr(rep.report, "\n...\n") != NULL, "no cut marker");
    CHECK(b->w_count == a->w_count && !memcmp(a->w, b->w, a->w_count * sizeof(float)), "not bit-exact");
    free(e);
    gr_model_free(a);
    gr_model_free(b);
}

/* ------------------------------------------------------------------ VGG16 */

static char bigdir[128];
static int big_ready = -1;

static bool big_fixtures(void) {
    if (big_ready < 0) {
        check_tmp_path(bigdir, sizeof bigdir, "big");
        mkdir(bigdir, 0755);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/gen_weights.py big %s >/dev/null 2>&1", bigdir);
        big_ready = system(cmd) == 0;
    }
    return big_ready;
}

static void vgg_check(const char *file, int size, int skipped, bool by_order) {
    char p[256], xin[256], yout[256];
    snprintf(p, sizeof p, "%s/%s", bigdir, file);
    snprintf(xin, sizeof xin, "%s/vgg_in_%d.bin", bigdir, size);
    snprintf(yout, sizeof yout, "%s/vgg_out_%d.bin", bigdir, size);
    int B = size == 32 ? 2 : 1, s = size / 32;
    gr_error err = {0};
    gr_model *m = gr_vgg16(size, size, false, &err);
    float *x = check_read_floats(xin, (size_t)B * size * size * 3), *want = check_read_floats(yout, (size_t)B * s * s * 512);
    float *y = malloc((size_t)B * s * s * 512 * sizeof(float));
    CHECK(m && x && want && y, "setup %s: %s", file, err.msg);
    if (!m || !x || !want || !y) goto out;
    gr_load_report rep;
    gr_status st = gr_model_load_weights(m, p, &rep, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    if (st) goto out;
    CHECK(rep.layers_loaded == 13 && rep.tensors_loaded == 26, "%s: %d layers %d tensors", file,
          rep.layers_loaded, rep.tensors_loaded);
    CHECK(rep.layers_skipped == skipped, "%s: skipped %d, want %d\n%s", file, rep.layers_skipped, skipped, rep.report);
    CHECK(rep.by_order == by_order, "%s: by_order %d", file, rep.by_order);
    st = gr_model_predict(m, x, B, -1, y, &err);
    CHECK(st == GR_OK, "predict: %s", err.msg);
    float amax = 0;
    for (int i = 0; i < B * s * s * 512; i++) amax = fabsf(want[i]) > amax ? fabsf(want[i]) : amax;
    CHECK_CLOSE(file, y, want, (size_t)B * s * s * 512, 1e-4 * amax, 1e-4);
out:
    gr_model_free(m);
    free(x);
    free(want);
    free(y);
}

static void test_vgg16_keras1_flat_h5(void) {
    if (!big_fixtures()) SKIP("gen_weights.py big failed (python3 with torch, torchvision, h5py needed)");
    vgg_check("vgg_k1.h5", 32, 0, false);
    if (!UNDER_SAN) vgg_check("vgg_k1.h5", 64, 0, false);
}
static void test_vgg16_keras2_model_weights_h5(void) {
    if (!big_fixtures()) SKIP("no fixtures");
    vgg_check("vgg_k2.h5", 32, 3, false);
}
static void test_vgg16_keras3_weights_h5(void) {
    if (!big_fixtures()) SKIP("no fixtures");
    vgg_check("vgg.weights.h5", 32, 0, false);
}
static void test_vgg16_torchvision_safetensors(void) {
    if (!big_fixtures()) SKIP("no fixtures");
    vgg_check("vgg_torch.safetensors", 32, 1, true);
    if (!UNDER_SAN) vgg_check("vgg_torch.safetensors", 64, 1, true);
}

int main(void) {
    if (check_tmp_open("weights")) return 1;
    RUN(test_tiny_keras2_h5);
    RUN(test_tiny_bn_without_scale);
    RUN(test_tiny_torch_safetensors_by_order);
    RUN(test_wrong_shape);
    RUN(test_missing_layer);
    RUN(test_nan_weights_warn_but_load);
    RUN(test_truncated_h5);
    RUN(test_corrupt_h5);
    RUN(test_bad_safetensors);
    RUN(test_not_a_weights_file);
    RUN(test_safetensors_f16_bf16);
    RUN(test_safetensors_write_roundtrip);
    RUN(test_long_report_keeps_summary);
    RUN(test_vgg16_keras1_flat_h5);
    RUN(test_vgg16_keras2_model_weights_h5);
    RUN(test_vgg16_keras3_weights_h5);
    RUN(test_vgg16_torchvision_safetensors);
    check_tmp_close();
    return check_summary();
}
