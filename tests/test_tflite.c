/* test_tflite.c — TFLite MobileNets as graft models (src/format/tflite.c,
 * src/format/tflite_net.c) against the PyTorch float reference of
 * tests/fixtures/gen_tflite.py (its own flatbuffer parser, the same
 * dequantized weights), on exact crops of the real BMPs; and bad files:
 * truncated, a corrupted offset, not a flatbuffer, an unsupported operator,
 * random byte flips.  Needs ../shared/data (SKIP when absent).            */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "graft.h"
#include "check.h"

#define FIX "tests/fixtures/tflite/"

static char g_tfl[1024], g_img[1024];

static int have_data(void) {
    snprintf(g_tfl, sizeof g_tfl, "%s/weights/coral-tflite", check_data_dir());
    snprintf(g_img, sizeof g_img, "%s/images", check_data_dir());
    char p[1200];
    snprintf(p, sizeof p, "%s/mobilenet_v2_1.0_224_quant.tflite", g_tfl);
    return access(p, R_OK) == 0;
}

static gr_model *load(const char *name, gr_error *err) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.tflite", g_tfl, name);
    return gr_tflite_load(p, err);
}

/* The same input as gen_tflite.py: a centered 224 crop, or a centered 256
 * crop averaged over 2x2 blocks (128); then tf preprocessing. */
static int make_input(const char *img, int size, float *x) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.bmp", g_img, img);
    gr_image im;
    gr_error err = {0};
    if (gr_image_load(p, &im, &err)) { fprintf(stderr, "  %s\n", err.msg); return -1; }
    int win = size == 224 ? 224 : 256, f = win / size;
    int t = (im.h - win) / 2, l = (im.w - win) / 2;
    for (int y = 0; y < size; y++)
        for (int xx = 0; xx < size; xx++)
            for (int c = 0; c < 3; c++) {
                float s = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++)
                        s += im.data[((size_t)(t + y * f + dy) * im.w + (l + xx * f + dx)) * 3 + c];
                x[((size_t)y * size + xx) * 3 + c] = s / (float)(f * f);
            }
    gr_image_free(&im);
    gr_preprocess_apply(GR_PREP_TF, x, (size_t)size * size);
    return 0;
}

/* Reference values of "model:layer" from layers.bin (malloc'ed) or NULL. */
static float *ref_layer(const char *key, int *count) {
    size_t n;
    unsigned char *b = check_read_file(FIX "layers.bin", &n), *p = b;
    float *out = NULL;
    while (b && p + 8 <= b + n) {
        int32_t ln, cnt;
        memcpy(&ln, p, 4);
        memcpy(&cnt, p + 4 + ln, 4);
        const unsigned char *v = p + 8 + ln;
        if ((size_t)ln == strlen(key) && !memcmp(p + 4, key, (size_t)ln)) {
            out = malloc((size_t)cnt * sizeof(float));
            memcpy(out, v, (size_t)cnt * sizeof(float));
            *count = cnt;
            break;
        }
        p = (unsigned char *)v + 4 * (size_t)cnt;
    }
    free(b);
    return out;
}

/* Expected top-1 of (model, image) from expected.txt; -1 if absent. */
static int ref_top1(const char *model, const char *img, float *prob) {
    FILE *f = fopen(FIX "expected.txt", "r");
    char line[512], m[128], i[64];
    int top = -1, t;
    float p;
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%127s %63s %d %f", m, i, &t, &p) == 4 && !strcmp(m, model) &&
            !strcmp(i, img)) {
            top = t;
            *prob = p;
        }
    if (f) fclose(f);
    return top;
}

static int argmax(const float *p, int n) {
    int b = 0;
    for (int k = 1; k < n; k++) if (p[k] > p[b]) b = k;
    return b;
}

/* (1) per-layer parity on cat: graft's float network vs PyTorch's. */
static void check_layers(const char *model, int size, const char *const *layers, int n) {
    gr_error err = {0};
    gr_model *m = load(model, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    CHECK(gr_model_preprocess(m) == GR_PREP_TF, "preprocessing %d", gr_model_preprocess(m));
    float *x = malloc((size_t)size * size * 3 * sizeof(float));
    CHECK(make_input("cat", size, x) == 0, "input");
    for (int k = 0; k < n; k++) {
        char key[256];
        snprintf(key, sizeof key, "%s:%s", model, layers[k]);
        int cnt = 0;
        float *want = ref_layer(key, &cnt);
        int node = gr_model_find(m, layers[k]);
        CHECK(want && node >= 0, "%s: fixture %p node %d", key, (void *)want, node);
        if (!want || node < 0) { free(want); continue; }
        int h, w, c;
        gr_model_layer_shape(m, node, &h, &w, &c);
        CHECK((int64_t)h * w * c == cnt, "%s: %dx%dx%d vs %d values", key, h, w, c, cnt);
        float *got = calloc((size_t)h * w * c, sizeof(float));
        if ((int64_t)h * w * c == cnt) {
            CHECK(gr_model_predict(m, x, 1, node, got, &err) == GR_OK, "%s", err.msg);
            float mx = 0;
            for (int i = 0; i < cnt; i++) mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
            CHECK(mx > 0, "%s: an all-zero reference", key);
            CHECK_CLOSE(key, got, want, (size_t)cnt, 1e-4 * mx, 1e-4);
        }
        free(got);
        free(want);
    }
    free(x);
    gr_model_free(m);
}

static void test_layers_v1_025(void) {
    if (!have_data()) SKIP("no %s", g_tfl);
    const char *l[] = {"MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6", "MobilenetV1/Logits/AvgPool_1a/AvgPool",
                       "MobilenetV1/Predictions/Reshape_1"};
    check_layers("mobilenet_v1_0.25_128_quant", 128, l, 3);
}

static void test_layers_v2(void) {
    if (!have_data()) SKIP("no %s", g_tfl);
    const char *l[] = {"MobilenetV2/expanded_conv_15/add", "MobilenetV2/Logits/AvgPool",
                       "MobilenetV2/Predictions/Softmax"};
    check_layers("mobilenet_v2_1.0_224_quant", 224, l, 3);
}

/* (2) ImageNet top-1 per image equals the reference's (1001 classes, 0 = background). */
static void test_top1_images(void) {
    if (!have_data()) SKIP("no %s", g_tfl);
    const char *imgs[] = {"cat", "bird", "grace_hopper"};
    const char *models[] = {"mobilenet_v1_0.25_128_quant", "mobilenet_v2_1.0_224_quant", "v1_1.0_224_extractor+head"};
    int sizes[] = {128, 224, 224};
    gr_error err = {0};
    gr_model *head = load("mobilenet_quant_v1_224_head_layers", &err);
    CHECK(head != NULL, "%s", err.msg);
    for (int mi = 0; mi < 3 && head; mi++) {
        gr_model *m = load(mi == 2 ? "mobilenet_v1_1.0_224_quant_embedding_extractor" : models[mi], &err);
        CHECK(m != NULL, "%s", err.msg);
        if (!m) continue;
        float *x = malloc((size_t)sizes[mi] * sizes[mi] * 3 * sizeof(float)), p[1001], emb[1024];
        for (int ii = 0; ii < 3; ii++) {
            float want_p = 0;
            int want = ref_top1(models[mi], imgs[ii], &want_p);
            CHECK(want >= 0, "no reference for %s %s", models[mi], imgs[ii]);
            if (make_input(imgs[ii], sizes[mi], x)) { CHECK(0, "input %s", imgs[ii]); continue; }
            gr_status st = mi == 2 ? gr_model_predict(m, x, 1, -1, emb, &err) : gr_model_predict(m, x, 1, -1, p, &err);
            if (!st && mi == 2) st = gr_model_predict(head, emb, 1, -1, p, &err);
            CHECK(st == GR_OK, "%s", err.msg);
            int got = argmax(p, 1001);
            CHECK(got == want, "%s %s: top-1 %d (p %.4f), reference %d (p %.4f)", models[mi], imgs[ii], got,
                  p[got], want, want_p);
            CHECK(fabsf(p[got] - want_p) < 1e-3f, "%s %s: p %.5f vs %.5f", models[mi], imgs[ii], p[got], want_p);
            if (getenv("CHECK_VERBOSE"))
                fprintf(stderr, "  %s %s: top-1 %d p %.4f (reference %d p %.4f)\n", models[mi], imgs[ii], got,
                        p[got], want, want_p);
        }
        free(x);
        gr_model_free(m);
    }
    gr_model_free(head);
}

/* Another input size: the 7x7 average pool becomes a global one. */
static void test_other_size(void) {
    if (!have_data()) SKIP("no %s", g_tfl);
    char p[1200];
    snprintf(p, sizeof p, "%s/mobilenet_v2_1.0_224_quant.tflite", g_tfl);
    gr_error err = {0};
    gr_model *m = gr_tflite_load_sized(p, 96, 64, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    int h, w, c, n = gr_model_num_layers(m);
    gr_model_layer_shape(m, n - 1, &h, &w, &c);
    CHECK(h == 1 && w == 1 && c == 1001, "output %dx%dx%d", h, w, c);
    int gap = gr_model_find(m, "MobilenetV2/Logits/AvgPool");
    CHECK(gap >= 0 && gr_model_layer_op(m, gap) == GR_OP_GLOBAL_AVGPOOL, "avg pool node %d op %d", gap,
          gr_model_layer_op(m, gap));
    float *x = calloc(96 * 64 * 3, sizeof(float)), out[1001];
    CHECK(gr_model_predict(m, x, 1, -1, out, &err) == GR_OK, "%s", err.msg);
    double s = 0;
    for (int k = 0; k < 1001; k++) s += out[k];
    CHECK(fabs(s - 1) < 1e-4, "softmax sums to %g", s);
    free(x);
    gr_model_free(m);
    CHECK(gr_tflite_load_sized(p, 96, 0, &err) == NULL && err.code == GR_ERR_ARG, "h without w: %s", err.msg);
}

/* ---- bad files ------------------------------------------------------------ */

/* Loads path expecting failure with code and text in the message (and the path). */
static void expect_fail(const char *path, gr_status code, const char *text) {
    gr_error err = {0};
    gr_model *m = gr_tflite_load(path, &err);
    CHECK(m == NULL, "%s loaded", path);
    gr_model_free(m);
    CHECK(err.code == code, "%s: code %s, want %s: %s", path, gr_status_name(err.code), gr_status_name(code), err.msg);
    CHECK(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    CHECK(!text || strstr(err.msg, text), "message lacks '%s': %s", text, err.msg);
}

static long patch_value(const char *key, int which) {
    FILE *f = fopen(FIX "patch.txt", "r");
    char line[256], k[64];
    long a = -1, b = -1, r = -1;
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%63s %ld %ld", k, &a, &b) >= 2 && !strcmp(k, key)) r = which ? b : a;
    if (f) fclose(f);
    return r;
}

static void test_bad_files(void) {
    if (!have_data()) SKIP("no %s", g_tfl);
    char p[1200];
    snprintf(p, sizeof p, "%s/mobilenet_v1_0.25_128_quant.tflite", g_tfl);
    size_t n;
    unsigned char *b = check_read_file(p, &n);
    CHECK(b != NULL && n > 100000, "read %s", p);
    if (!b) return;
    CHECK(check_tmp_open("tflite") == 0, "mkdtemp");

    expect_fail(check_tmp_write("trunc_half.tflite", b, n / 2), GR_ERR_FORMAT, "corrupt flatbuffer");
    expect_fail(check_tmp_write("trunc_100.tflite", b, 100), GR_ERR_FORMAT, "past the end");
    expect_fail(check_tmp_write("trunc_3.tflite", b, 3), GR_ERR_FORMAT, "too short");
    const char *txt = "this is not a flatbuffer at all, just some text\n";
    expect_fail(check_tmp_write("text.tflite", (const unsigned char *)txt, strlen(txt)), GR_ERR_FORMAT, NULL);
    expect_fail("/nonexistent/model.tflite", GR_ERR_IO, "cannot open");

    unsigned char *c = malloc(n);
    long toff = patch_value("tensors", 0);
    CHECK(toff > 0 && (size_t)toff + 4 <= n, "patch.txt tensors %ld", toff);
    if (toff > 0 && (size_t)toff + 4 <= n) {
        memcpy(c, b, n);
        uint32_t bad = 0x7ffffff0u;
        memcpy(c + toff, &bad, 4);
        expect_fail(check_tmp_write("bad_offset.tflite", c, n), GR_ERR_FORMAT, "tensors");
    }
    /* AVERAGE_POOL_2D's opcode -> TRANSPOSE (39): named in the error */
    long dep = patch_value("opcode", 0), bc = patch_value("opcode", 1);
    CHECK(dep > 0 || bc > 0, "patch.txt opcode");
    memcpy(c, b, n);
    if (dep > 0 && (size_t)dep < n) c[dep] = 39;
    if (bc > 0 && (size_t)bc + 4 <= n) { int32_t v = 39; memcpy(c + bc, &v, 4); }
    expect_fail(check_tmp_write("transpose.tflite", c, n), GR_ERR_UNSUPPORTED, "TRANSPOSE");

    /* random byte flips: an error or a model, never a crash (ASan watches) */
    uint64_t s = 12345;
    int failed = 0, loaded = 0;
    for (int it = 0; it < 40; it++) {
        memcpy(c, b, n);
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(s >> 33) % (it < 20 ? 4096 : n);   /* half in the header region */
            c[pos] ^= (unsigned char)(1u << ((s >> 20) & 7));
        }
        gr_error err = {0};
        gr_model *m = gr_tflite_load(check_tmp_write("flip.tflite", c, n), &err);
        if (getenv("CHECK_VERBOSE") && !m) fprintf(stderr, "  flip %d: %s\n", it, err.msg);
        if (m) loaded++;
        else {
            failed++;
            CHECK(err.code != GR_OK && strstr(err.msg, "flip.tflite"), "flip %d: %s", it, err.msg);
        }
        gr_model_free(m);
    }
    CHECK(failed + loaded == 40, "flips");
    free(c);
    free(b);
    check_tmp_close();
}

int main(void) {
    gr_set_threads(0);
    RUN(test_layers_v1_025);
    RUN(test_layers_v2);
    RUN(test_top1_images);
    RUN(test_other_size);
    RUN(test_bad_files);
    return check_summary();
}
