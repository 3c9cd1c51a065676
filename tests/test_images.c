/* test_images.c — decoding (JPEG/PNG/BMP), resizing and preprocessing
 * against PIL and hand-made fixtures (tests/fixtures/gen_data.py), bad
 * inputs, and a fuzz-style loop over mutated real files.  Run from the repo root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "graft.h"
#include "data/images.h"
#include "graph/model.h"

#define FIX "tests/fixtures/data/"

/* decode <file> <w> <h> <expected.rgb> <tol> — from the manifest */
static void test_decode_fixtures(void) {
    FILE *m = fopen(FIX "manifest.txt", "r");
    CHECK(m != NULL, "no manifest: run tests/fixtures/gen_data.py");
    if (!m) return;
    char line[512], kind[16], file[128], exp[128];
    int w, h, tol, n = 0;
    while (fgets(line, sizeof line, m)) {
        if (sscanf(line, "%15s %127s %d %d %127s %d", kind, file, &w, &h, exp, &tol) != 6 ||
            strcmp(kind, "decode"))
            continue;
        char path[256], epath[256];
        snprintf(path, sizeof path, FIX "%s", file);
        snprintf(epath, sizeof epath, FIX "%s", exp);
        gr_image img;
        gr_error err = {0};
        gr_status st = gr_image_load(path, &img, &err);
        CHECK(st == GR_OK, "%s: %s", file, err.msg);
        if (st != GR_OK) continue;
        CHECK(img.w == w && img.h == h, "%s: size %dx%d want %dx%d", file, img.w, img.h, w, h);
        size_t en = 0;
        uint8_t *want = check_read_file(epath, &en);
        CHECK(want && en == (size_t)w * h * 3, "%s: expected file", exp);
        if (want && en == (size_t)img.w * img.h * 3) {
            int worst = 0;
            for (size_t i = 0; i < en; i++) {
                int d = abs((int)img.data[i] - (int)want[i]);
                if (d > worst) worst = d;
            }
            CHECK(worst <= tol, "%s: worst pixel difference %d > %d", file, worst, tol);
        }
        free(want);
        gr_image_free(&img);
        n++;
    }
    fclose(m);
    CHECK(n >= 18, "only %d decode fixtures", n);
}

/* resize <file> <ow> <oh> <fit> <expected.rgb> — against PIL BILINEAR */
static void test_resize_vs_pil(void) {
    FILE *m = fopen(FIX "manifest.txt", "r");
    if (!m) { CHECK(0, "no manifest"); return; }
    char line[512], kind[16], file[128], exp[128];
    int ow, oh, fit, n = 0;
    while (fgets(line, sizeof line, m)) {
        if (sscanf(line, "%15s %127s %d %d %d %127s", kind, file, &ow, &oh, &fit, exp) != 6 ||
            strcmp(kind, "resize"))
            continue;
        char path[256], epath[256];
        snprintf(path, sizeof path, FIX "%s", file);
        snprintf(epath, sizeof epath, FIX "%s", exp);
        gr_image img;
        gr_error err = {0};
        if (gr_image_load(path, &img, &err) != GR_OK) { CHECK(0, "%s", err.msg); continue; }
        size_t en = 0;
        uint8_t *want = check_read_file(epath, &en);
        float *got = malloc(sizeof(float) * ow * oh * 3), *wf = malloc(sizeof(float) * ow * oh * 3);
        CHECK(want && en == (size_t)ow * oh * 3, "%s", exp);
        if (want && got && wf && en == (size_t)ow * oh * 3) {
            CHECK(gr_image_resize(&img, oh, ow, (gr_resize_mode)fit, got, &err) == GR_OK, "%s", err.msg);
            for (size_t i = 0; i < en; i++) wf[i] = want[i];
            char what[64];
            snprintf(what, sizeof what, "resize %dx%d fit %d", ow, oh, fit);
            /* PIL rounds to 8 bits after each pass; we keep floats. */
            CHECK_CLOSE(what, got, wf, en, 1.01, 0);
            double mean = 0;
            for (size_t i = 0; i < en; i++) mean += fabs(got[i] - wf[i]);
            CHECK(mean / en < 0.35, "%s: mean |diff| %.3f", what, mean / en);
        }
        free(want), free(got), free(wf);
        gr_image_free(&img);
        n++;
    }
    fclose(m);
    CHECK(n >= 6, "only %d resize fixtures", n);
}

static void test_resize_identity_and_crop(void) {
    /* same size = exact copy; a center crop of 4x2 -> 2x2 takes columns 1..2 */
    uint8_t px[2 * 4 * 3];
    for (int i = 0; i < 24; i++) px[i] = (uint8_t)(i * 10);
    gr_image img = {2, 4, px};
    float out[24];
    gr_error err = {0};
    CHECK(gr_image_resize(&img, 2, 4, GR_RESIZE_STRETCH, out, &err) == GR_OK, "%s", err.msg);
    for (int i = 0; i < 24; i++) CHECK(out[i] == px[i], "copy [%d]", i);
    CHECK(gr_image_resize(&img, 2, 2, GR_RESIZE_CENTER_CROP, out, &err) == GR_OK, "%s", err.msg);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++)
                CHECK(out[(y * 2 + x) * 3 + c] == px[(y * 4 + x + 1) * 3 + c], "crop %d %d %d", y, x, c);
    /* a constant image stays constant at any size */
    uint8_t flat[5 * 7 * 3];
    memset(flat, 77, sizeof flat);
    gr_image fi = {5, 7, flat};
    float big[13 * 3 * 3];
    CHECK(gr_image_resize(&fi, 13, 3, GR_RESIZE_STRETCH, big, &err) == GR_OK, "%s", err.msg);
    for (int i = 0; i < 13 * 3 * 3; i++) CHECK(fabsf(big[i] - 77) < 1e-4f, "flat [%d] %g", i, big[i]);
    CHECK(gr_image_resize(&fi, 0, 3, GR_RESIZE_STRETCH, big, &err) == GR_ERR_ARG, "zero size accepted");
}

static void test_preprocess(void) {
    float x[6] = {10, 20, 30, 255, 0, 127.5f}, y[6];
    memcpy(y, x, sizeof x);
    gr_preprocess_apply(GR_PREP_CAFFE, y, 2);
    float caffe[6] = {30 - 103.939f, 20 - 116.779f, 10 - 123.68f, 127.5f - 103.939f, 0 - 116.779f, 255 - 123.68f};
    CHECK_CLOSE("caffe", y, caffe, 6, 1e-4, 0);
    memcpy(y, x, sizeof x);
    gr_preprocess_apply(GR_PREP_TORCH, y, 2);
    float torch[6] = {(10 / 255.f - 0.485f) / 0.229f, (20 / 255.f - 0.456f) / 0.224f, (30 / 255.f - 0.406f) / 0.225f,
                      (1 - 0.485f) / 0.229f, (0 - 0.456f) / 0.224f, (0.5f - 0.406f) / 0.225f};
    CHECK_CLOSE("torch", y, torch, 6, 1e-5, 1e-5);
    memcpy(y, x, sizeof x);
    gr_preprocess_apply(GR_PREP_TF, y, 2);
    float tf[6] = {10 / 127.5f - 1, 20 / 127.5f - 1, 30 / 127.5f - 1, 1, -1, 0};
    CHECK_CLOSE("tf", y, tf, 6, 1e-6, 0);
    memcpy(y, x, sizeof x);
    gr_preprocess_apply(GR_PREP_DARKNET, y, 2);
    float dk[6] = {10 / 255.f, 20 / 255.f, 30 / 255.f, 1, 0, 0.5f};
    CHECK_CLOSE("darknet", y, dk, 6, 1e-6, 0);
    memcpy(y, x, sizeof x);
    gr_preprocess_apply(GR_PREP_NONE, y, 2);
    CHECK_CLOSE("none", y, x, 6, 0, 0);
}

/* Free normalization values (gr_norm): hand-computed values, the presets
 * equal to their free values and to the formulas graft used before them,
 * bit for bit, and the checks.                                            */
static void test_norm_free(void) {
    float x[6] = {10, 20, 30, 255, 0, 127.5f}, y[6];
    /* RGB, scale 255: exact rationals by hand, e.g. (10/255 - 0.5)/0.5 = 20/255 - 1 */
    gr_norm a = {255, {0.5f, 0.25f, 0.125f}, {0.5f, 0.25f, 2}, false};
    memcpy(y, x, sizeof x);
    gr_norm_apply(&a, y, 2);
    float want_a[6] = {-0.92156862745f, -0.68627450980f, -0.0036764705882f, 1, -1, 0.1875f};
    CHECK_CLOSE("custom rgb", y, want_a, 6, 1e-6, 1e-6);
    /* BGR, scale 1: the network's channel 0 is the pixel's blue, mean/std in that order */
    gr_norm b = {1, {1, 2, 3}, {2, 4, 8}, true};
    memcpy(y, x, sizeof x);
    gr_norm_apply(&b, y, 2);
    float want_b[6] = {14.5f, 4.5f, 0.875f, 63.25f, -0.5f, 31.5f};
    CHECK_CLOSE("custom bgr", y, want_b, 6, 0, 0);
    /* zero = defaults: scale 1, std 1, no mean: unchanged */
    gr_norm z = {0};
    memcpy(y, x, sizeof x);
    gr_norm_apply(&z, y, 2);
    CHECK_CLOSE("zero", y, x, 6, 0, 0);
    CHECK(gr_norm_preset_of(&z) == GR_PREP_NONE, "zero is %s", gr_preprocess_name(gr_norm_preset_of(&z)));
    CHECK(gr_norm_preset_of(&a) == GR_PREP_CUSTOM, "custom named %s", gr_preprocess_name(gr_norm_preset_of(&a)));

    /* every 8-bit value (and a half-level) per channel: each preset = its free
     * values = the formula graft applied before free values, bitwise        */
    enum { N = 511 };   /* not a multiple of 4 pixels: the 12-float blocks and the tail */
    static float p[N * 3], q[N * 3], o[N * 3];
    for (int i = 0; i < N * 3; i++) p[i] = (float)((i * 7) % 511) * 0.5f;
    gr_norm torch_free = {255, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, false};
    CHECK(gr_norm_preset_of(&torch_free) == GR_PREP_TORCH, "free torch values named %s",
          gr_preprocess_name(gr_norm_preset_of(&torch_free)));
    for (int k = GR_PREP_NONE; k < GR_PREP_CUSTOM; k++) {
        memcpy(q, p, sizeof p);
        memcpy(o, p, sizeof p);
        gr_preprocess_apply((gr_preprocess)k, q, N);
        for (int i = 0; i < N; i++) {   /* the formulas of graft 0.2.0 before gr_norm */
            float *v = o + 3 * i, r = v[0], bl = v[2];
            static const float tm[3] = {0.485f, 0.456f, 0.406f}, ts[3] = {0.229f, 0.224f, 0.225f};
            switch (k) {
            case GR_PREP_CAFFE: v[0] = bl - 103.939f, v[1] -= 116.779f, v[2] = r - 123.68f; break;
            case GR_PREP_TORCH: for (int c = 0; c < 3; c++) v[c] = (v[c] / 255.0f - tm[c]) / ts[c]; break;
            case GR_PREP_TF: for (int c = 0; c < 3; c++) v[c] = v[c] / 127.5f - 1.0f; break;
            case GR_PREP_DARKNET: for (int c = 0; c < 3; c++) v[c] /= 255.0f; break;
            default: break;
            }
        }
        CHECK(!memcmp(q, o, sizeof q), "preset %s differs from its former formula", gr_preprocess_name((gr_preprocess)k));
        gr_norm f = gr_norm_preset((gr_preprocess)k);
        memcpy(o, p, sizeof p);
        gr_norm_apply(&f, o, N);
        CHECK(!memcmp(q, o, sizeof q), "preset %s differs from its free values", gr_preprocess_name((gr_preprocess)k));
        CHECK(gr_norm_preset_of(&f) == (gr_preprocess)k, "preset %d named %s", k, gr_preprocess_name(gr_norm_preset_of(&f)));
    }
    memcpy(q, p, sizeof p);
    memcpy(o, p, sizeof p);
    gr_preprocess_apply(GR_PREP_TORCH, q, N);
    gr_norm_apply(&torch_free, o, N);
    CHECK(!memcmp(q, o, sizeof q), "--preprocess torch != its mean/std given freely");

    /* the checks */
    gr_error err = {0};
    gr_norm bad = a;
    bad.std[1] = -0.5f;
    CHECK(gr_norm_check(&bad, "x.gft", &err) == GR_ERR_ARG && strstr(err.msg, "x.gft") && strstr(err.msg, "std") &&
              strstr(err.msg, "channel 1"), "negative std: %s", err.msg);
    bad = a;
    bad.mean[2] = NAN;
    CHECK(gr_norm_check(&bad, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "mean"), "NaN mean: %s", err.msg);
    bad = a;
    bad.scale = INFINITY;
    CHECK(gr_norm_check(&bad, NULL, &err) == GR_ERR_ARG && strstr(err.msg, "scale"), "inf scale: %s", err.msg);
    CHECK(gr_norm_check(&a, NULL, &err) == GR_OK, "good values refused: %s", err.msg);
    gr_model *m = gr_model_new(4, 4, 3, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    bad = a;
    bad.std[0] = NAN;
    CHECK(gr_model_set_norm(m, &bad, &err) == GR_ERR_ARG, "model took a NaN std");
    CHECK(gr_model_preprocess(m) == GR_PREP_NONE, "a refused norm changed the model");
    CHECK(gr_model_set_norm(m, &a, &err) == GR_OK, "%s", err.msg);
    gr_norm got = gr_model_norm(m);
    CHECK(!memcmp(got.mean, a.mean, sizeof a.mean) && !memcmp(got.std, a.std, sizeof a.std) && got.scale == 255,
          "model norm not kept");
    gr_model_free(m);
}

/* tests/fixtures/norm (gen_norm.py): torchvision's ToTensor + Normalize on
 * img.png with CLIP's, the 0.5/0.5 and ImageNet's mean/std: graft's network
 * input from the same file with the same free values is the same, bitwise. */
static void test_norm_torchvision(void) {
    gr_error err = {0};
    gr_image img = {0};
    CHECK(gr_image_load("tests/fixtures/norm/img.png", &img, &err) == GR_OK, "%s", err.msg);
    FILE *f = fopen("tests/fixtures/norm/expect.txt", "r");
    CHECK(f != NULL, "no tests/fixtures/norm/expect.txt: run tests/fixtures/gen_norm.py");
    if (!f || !img.data) {
        if (f) fclose(f);
        gr_image_free(&img);
        return;
    }
    static const struct { const char *name; gr_norm n; } cases[] = {
        {"clip", {255, {0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}, false}},
        {"half", {255, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}, false}},
        {"torch", {255, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, false}},
    };
    char line[8192];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        char name[16], what[16];
        int off;
        if (sscanf(line, "%15s %15s %n", name, what, &off) != 2 || strcmp(what, "input")) continue;
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            if (strcmp(name, cases[k].name)) continue;
            float want[8 * 8 * 3], x[8 * 8 * 3];
            char *s = line + off, *end;
            int n = 0;
            for (; n < 192; n++, s = end) {
                want[n] = strtof(s, &end);
                if (end == s) break;
            }
            CHECK(n == 192, "%s: %d values", name, n);
            CHECK(gr_image_resize(&img, 8, 8, GR_RESIZE_STRETCH, x, &err) == GR_OK, "%s", err.msg);
            gr_norm_apply(&cases[k].n, x, 64);
            CHECK_CLOSE(name, x, want, 192, 0, 0);
            seen++;
        }
    }
    fclose(f);
    gr_image_free(&img);
    CHECK(seen == 3, "%d of 3 cases in expect.txt", seen);
}

/* The real photos: size, byte sum and spot pixels as PIL decodes them. */
static void test_real_photos(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/images", check_data_dir());
    if (access(dir, R_OK)) SKIP("%s absent", dir);
    FILE *m = fopen(FIX "real_images.txt", "r");
    if (!m) SKIP("no real_images.txt (gen_data.py ran without the data)");
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, m)) {
        char name[64];
        int w, h, used;
        long long sum;
        if (sscanf(line, "%63s %d %d %lld%n", name, &w, &h, &sum, &used) != 4) continue;
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        gr_image img;
        gr_error err = {0};
        if (gr_image_load(path, &img, &err) != GR_OK) { CHECK(0, "%s", err.msg); continue; }
        CHECK(img.w == w && img.h == h, "%s: %dx%d want %dx%d", name, img.w, img.h, w, h);
        if (img.w == w && img.h == h) {
            long long s = 0;
            for (size_t i = 0; i < (size_t)w * h * 3; i++) s += img.data[i];
            CHECK(s == sum, "%s: byte sum %lld want %lld", name, s, sum);
            const char *p = line + used;
            int y, x, r, g, b, k;
            while (sscanf(p, "%d %d %d %d %d%n", &y, &x, &r, &g, &b, &k) == 5) {
                const uint8_t *q = img.data + ((size_t)y * w + x) * 3;
                CHECK(q[0] == r && q[1] == g && q[2] == b, "%s (%d,%d): %d %d %d want %d %d %d", name, y, x,
                      q[0], q[1], q[2], r, g, b);
                p += k;
            }
        }
        gr_image_free(&img);
        n++;
    }
    fclose(m);
    CHECK(n == 5, "%d photos checked", n);
}

/* Writes a modified copy of a fixture and checks that loading it fails with
 * a message naming the file (and containing `why` when given).            */
static void expect_bad(const char *tmpdir, const char *src, size_t keep, int flip_at, const char *why) {
    size_t n;
    uint8_t *p = check_read_file(src, &n);
    CHECK(p != NULL, "%s", src);
    if (!p) return;
    if (keep < n) n = keep;
    if (flip_at >= 0 && (size_t)flip_at < n) p[flip_at] ^= 0x5A;
    char path[512];
    snprintf(path, sizeof path, "%s/bad_%zu_%d", tmpdir, keep, flip_at);
    check_write_file(path, p, n);
    gr_image img;
    gr_error err = {0};
    gr_status st = gr_image_load(path, &img, &err);
    CHECK(st != GR_OK, "%s (from %s) decoded", path, src);
    CHECK(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    if (why) CHECK(strstr(err.msg, why) != NULL, "message lacks '%s': %s", why, err.msg);
    if (st == GR_OK) gr_image_free(&img);
    free(p);
    unlink(path);
}

static void test_bad_inputs(void) {
    char dir[128];
    if (check_mkdtemp(dir, sizeof dir, "images")) { CHECK(0, "mkdtemp"); return; }
    expect_bad(dir, FIX "rgb8.png", 60, -1, "PNG");          /* truncated in IDAT */
    expect_bad(dir, FIX "rgb8.png", 1 << 30, 70, "PNG");     /* corrupt byte (CRC) */
    expect_bad(dir, FIX "rgb8.png", 20, -1, "PNG");          /* truncated header */
    expect_bad(dir, FIX "rgb.jpg", 300, -1, "JPEG");         /* truncated scan */
    expect_bad(dir, FIX "rgb.jpg", 100, -1, "JPEG");         /* truncated tables */
    expect_bad(dir, FIX "rgb24.bmp", 100, -1, "BMP");        /* truncated pixels */
    expect_bad(dir, FIX "rgb24.bmp", 30, -1, "BMP");         /* truncated header */
    expect_bad(dir, FIX "manifest.txt", 1 << 30, -1, "not a JPEG, PNG or BMP");
    expect_bad(dir, FIX "rgb8.png", 0, -1, "not a JPEG");    /* empty */
    gr_image img;
    gr_error err = {0};
    CHECK(gr_image_load("/nonexistent/x.png", &img, &err) == GR_ERR_IO, "missing file");
    CHECK(strstr(err.msg, "/nonexistent/x.png") != NULL, "%s", err.msg);
    /* corrupt JPEG marker segment: SOF with an absurd component count */
    size_t n;
    uint8_t *p = check_read_file(FIX "rgb.jpg", &n);
    for (size_t i = 0; p && i + 10 < n; i++)
        if (p[i] == 0xFF && p[i + 1] == 0xC0) { p[i + 9] = 77; break; }
    if (p) {
        gr_status st = gr_image_decode(p, n, "sof.jpg", &img, &err);
        CHECK(st == GR_ERR_FORMAT, "bad SOF decoded (%d)", st);
        CHECK(strstr(err.msg, "sof.jpg") != NULL, "%s", err.msg);
        if (st == GR_OK) gr_image_free(&img);
    }
    free(p);
    check_rmtree(dir);
}

/* Truncations and byte flips of real files must give an error or a valid
 * image, never a crash or hang (run under ASan too).                      */
static void test_fuzz(void) {
    const char *files[] = {FIX "rgb8.png", FIX "pal8.png", FIX "gray16.png", FIX "rgba8.png",
                           FIX "rgb.jpg", FIX "progressive.jpg", FIX "cmyk.jpg", FIX "gray.jpg",
                           FIX "rgb24.bmp", FIX "pal8.bmp", FIX "bgrx32.bmp", FIX "resize_src.png"};
    int nf = (int)(sizeof files / sizeof files[0]);
    gr_rng r;
    gr_rng_seed(&r, 42);
    gr_bytes pix = {0};
    int ok = 0, bad = 0;
    for (int it = 0; it < 600; it++) {
        size_t n;
        uint8_t *p = check_read_file(files[it % nf], &n);
        if (!p) { CHECK(0, "%s", files[it % nf]); continue; }
        int mode = (int)gr_rng_below(&r, 3);
        if (mode == 0 || mode == 2) n = gr_rng_below(&r, (uint32_t)n + 1);
        if (mode >= 1) {
            int flips = 1 + (int)gr_rng_below(&r, 4);
            for (int k = 0; k < flips && n > 0; k++)
                p[gr_rng_below(&r, (uint32_t)n)] ^= (uint8_t)(1 + gr_rng_below(&r, 255));
        }
        gr_image img;
        gr_error err = {0};
        gr_status st = gr_image_decode_into(p, n, "fuzz.img", &pix, &img, &err);
        if (st == GR_OK) {
            ok++;
            CHECK(img.w > 0 && img.h > 0 && img.w <= 32768 && img.h <= 32768, "size %dx%d", img.w, img.h);
        } else {
            bad++;
            CHECK(strstr(err.msg, "fuzz.img") != NULL, "message does not name the file: %s", err.msg);
        }
        free(p);
    }
    /* a few rounds on the real photos when present */
    const char *real[2] = {"dog.jpg", "cat.bmp"};
    for (int it = 0; it < 20; it++) {
        char path[512];
        snprintf(path, sizeof path, "%s/images/%s", check_data_dir(), real[it % 2]);
        size_t n;
        uint8_t *p = check_read_file(path, &n);
        if (!p) break;
        if (it & 2) n = gr_rng_below(&r, (uint32_t)n + 1);
        for (int k = 0; k < 3 && n; k++) p[gr_rng_below(&r, (uint32_t)n)] ^= 0xA5;
        gr_image img;
        gr_error err = {0};
        if (gr_image_decode_into(p, n, "fuzz.img", &pix, &img, &err) != GR_OK)
            CHECK(strstr(err.msg, "fuzz.img") != NULL, "message does not name the file: %s", err.msg);
        free(p);
    }
    free(pix.p);
    CHECK(bad > 100 && ok > 10, "ok %d bad %d", ok, bad);
}

/* The recipe's resize modes on hand-computed cases: darknet's corner-aligned
 * bilinear, the letterbox's gray border and integer sizes, the crop fraction. */
static void test_resize_recipe(void) {
    gr_error err = {0};
    /* one row of 3 pixels -> 5: steps of (3-1)/(5-1) = 0.5 source pixels,
     * the last column copied: p0, (p0+p1)/2, p1, (p1+p2)/2, p2            */
    uint8_t row[9] = {0, 10, 20, 100, 110, 120, 40, 50, 60};
    gr_image r1 = {1, 3, row};
    float out[5 * 3];
    gr_recipe dk = {.interp = GR_INTERP_DARKNET};
    CHECK(gr_image_resize_recipe(&r1, 1, 5, &dk, out, &err) == GR_OK, "%s", err.msg);
    static const float want[15] = {0, 10, 20, 50, 60, 70, 100, 110, 120, 70, 80, 90, 40, 50, 60};
    for (int i = 0; i < 15; i++) CHECK(fabsf(out[i] - want[i]) < 1e-4f, "darknet 1x3->1x5 [%d] %g want %g", i, out[i], want[i]);
    /* 2 rows -> 3: the middle row is the mean; darknet's last row takes the source's last row */
    uint8_t col[6] = {0, 0, 0, 200, 100, 50};
    gr_image c1 = {2, 1, col};
    float oc[9];
    CHECK(gr_image_resize_recipe(&c1, 3, 1, &dk, oc, &err) == GR_OK, "%s", err.msg);
    static const float wc[9] = {0, 0, 0, 100, 50, 25, 200, 100, 50};
    for (int i = 0; i < 9; i++) CHECK(fabsf(oc[i] - wc[i]) < 1e-4f, "darknet 2x1->3x1 [%d] %g want %g", i, oc[i], wc[i]);
    /* shrinking does not antialias: 5 -> 3 samples source pixels 0, 2, 4 exactly */
    uint8_t five[15];
    for (int i = 0; i < 15; i++) five[i] = (uint8_t)(i * 17);
    gr_image f5 = {1, 5, five};
    CHECK(gr_image_resize_recipe(&f5, 1, 3, &dk, out, &err) == GR_OK, "%s", err.msg);
    for (int x = 0; x < 3; x++)
        for (int c = 0; c < 3; c++) CHECK(out[3 * x + c] == five[3 * (2 * x) + c], "darknet 5->3 x %d", x);
    /* letterbox 4 wide x 2 high into 4x4: the image 4x2 at rows 1..2, gray 127.5 elsewhere */
    uint8_t px[2 * 4 * 3];
    for (int i = 0; i < 24; i++) px[i] = (uint8_t)(i * 10);
    gr_image img = {2, 4, px};
    float lb[4 * 4 * 3];
    gr_recipe lr = {.resize = GR_RESIZE_LETTERBOX, .interp = GR_INTERP_DARKNET};
    CHECK(gr_image_resize_recipe(&img, 4, 4, &lr, lb, &err) == GR_OK, "%s", err.msg);
    for (int y = 0; y < 4; y++)
        for (int i = 0; i < 12; i++) {
            float w = y == 0 || y == 3 ? 127.5f : px[(y - 1) * 12 + i];
            CHECK(lb[y * 12 + i] == w, "letterbox y %d i %d: %g want %g", y, i, lb[y * 12 + i], w);
        }
    /* 4x2 into 3x5 (h x w): the width limits (5/4 < 3/2): 5 x (2*5/4 = 2), at row (3-2)/2 = 0 */
    float l2[3 * 5 * 3];
    CHECK(gr_image_resize_recipe(&img, 3, 5, &lr, l2, &err) == GR_OK, "%s", err.msg);
    for (int i = 0; i < 15; i++) CHECK(l2[2 * 15 + i] == 127.5f, "letterbox 3x5 last row [%d] %g", i, l2[30 + i]);
    CHECK(l2[0] == px[0] && l2[12] == px[9], "letterbox 3x5 corners %g %g", l2[0], l2[12]);
    /* center crop with fraction 0.5: 8x8 -> 4x4 keeps the 4x4 box at (2, 2), copied exactly */
    uint8_t big[8 * 8 * 3];
    for (int i = 0; i < 192; i++) big[i] = (uint8_t)i;
    gr_image b8 = {8, 8, big};
    float cr[4 * 4 * 3];
    gr_recipe cf = {.resize = GR_RESIZE_CENTER_CROP, .crop = 0.5f};
    CHECK(gr_image_resize_recipe(&b8, 4, 4, &cf, cr, &err) == GR_OK, "%s", err.msg);
    for (int y = 0; y < 4; y++)
        for (int i = 0; i < 12; i++)
            CHECK(cr[y * 12 + i] == big[((y + 2) * 8 + 2) * 3 + i], "crop 0.5 y %d i %d", y, i);
    /* names round-trip */
    gr_resize_mode rm;
    gr_interp ip;
    CHECK(!gr_resize_mode_parse("letterbox", &rm) && rm == GR_RESIZE_LETTERBOX && gr_resize_mode_parse("fill", &rm),
          "resize names");
    CHECK(!gr_interp_parse("darknet", &ip) && ip == GR_INTERP_DARKNET && !strcmp(gr_interp_name(ip), "darknet"),
          "interp names");
}

int main(void) {
    RUN(test_decode_fixtures);
    RUN(test_resize_recipe);
    RUN(test_resize_vs_pil);
    RUN(test_resize_identity_and_crop);
    RUN(test_preprocess);
    RUN(test_norm_free);
    RUN(test_norm_torchvision);
    RUN(test_real_photos);
    RUN(test_bad_inputs);
    RUN(test_fuzz);
    return check_summary();
}
