/* check.h — the tiny test harness every tests/test_*.c uses.
 *
 *   static void test_something(void) { CHECK(x == 1, "x was %d", x); }
 *   int main(void) { RUN(test_something); return check_summary(); }
 *
 * Also what several tests need (below the harness): temporary directories
 * removed without a shell, file readers and writers, deterministic random
 * fillers, CIFAR-10 .bin and BMP writers, the tiny Keras-named model.
 *
 * Each test prints one line: "PASS name", "FAIL name" or "SKIP name: why".
 * tests/run.sh counts those lines over all test programs and prints the
 * closing "N passed, N failed, N skipped" line CI reads.                  */
#ifndef GRAFT_TEST_CHECK_H
#define GRAFT_TEST_CHECK_H
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graft.h"
#include "core/core.h"
#include "graph/model.h"

/* UNDER_SAN: 1 in the AddressSanitizer build (tests skip what is too slow there). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SAN 1
#endif
#endif
#ifndef UNDER_SAN
#define UNDER_SAN 0
#endif

/* Reads a raw float32 file of exactly n floats into a malloc'd array (NULL
 * if it is missing or holds any other number of bytes).                    */
static inline float *check_read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *p = malloc(n * sizeof *p);
    size_t got = p ? fread(p, sizeof *p, n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) { free(p); return NULL; }
    return p;
}

static int check_fails_ = 0;     /* failures inside the running test */
static int check_skipped_ = 0;   /* the running test called SKIP */
static int check_total_fail_ = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__,      \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            check_fails_++;                                                \
        }                                                                  \
    } while (0)

/* Marks the running test skipped (with a reason) and returns from it. */
#define SKIP(...)                                                          \
    do {                                                                   \
        printf("SKIP %s: ", check_current_);                               \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        check_skipped_ = 1;                                                \
        return;                                                            \
    } while (0)

static const char *check_current_ = "";

#define RUN(fn)                                                            \
    do {                                                                   \
        check_fails_ = 0;                                                  \
        check_skipped_ = 0;                                                \
        check_current_ = #fn;                                              \
        fflush(stdout);                                                    \
        fn();                                                              \
        if (!check_skipped_) {                                             \
            printf("%s %s\n", check_fails_ ? "FAIL" : "PASS", #fn);        \
            if (check_fails_) check_total_fail_++;                         \
        }                                                                  \
        fflush(stdout);                                                    \
    } while (0)

static inline int check_summary(void) { return check_total_fail_ ? 1 : 0; }

/* Compares two float arrays: |got - want| <= atol + rtol * |want| everywhere.
 * Prints the worst difference (index, got, want) and returns 1 when close. */
static inline int check_close_(const char *what, const float *got, const float *want,
                               size_t n, double atol, double rtol, const char *file, int line) {
    size_t worst = 0;
    double worst_excess = -1e300, worst_abs = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (!(d <= lim)) bad = 1;          /* also catches NaN */
        double ex = (d != d) ? 1e300 : d - lim;
        if (ex > worst_excess) { worst_excess = ex; worst = i; worst_abs = d; }
    }
    if (bad) {
        fprintf(stderr, "  %s:%d: %s: not close (n=%zu): worst at [%zu] got %.8g want %.8g |diff| %.3g (atol %.1g rtol %.1g)\n",
                file, line, what, n, worst, got[worst], want[worst], worst_abs, atol, rtol);
        check_fails_++;
        return 0;
    }
    if (getenv("CHECK_VERBOSE"))
        fprintf(stderr, "  %s: max |diff| %.3g over %zu values\n", what, worst_abs, n);
    return 1;
}
#define CHECK_CLOSE(what, got, want, n, atol, rtol) \
    check_close_((what), (got), (want), (n), (atol), (rtol), __FILE__, __LINE__)

/* Where the shared real data lives (../shared/data unless GRAFT_DATA says). */
static inline const char *check_data_dir(void) {
    const char *d = getenv("GRAFT_DATA");
    return d ? d : "../shared/data";
}
/* ---- files ---------------------------------------------------------------- */

/* Reads a whole file into a malloc'd buffer, with a NUL byte after the data
 * (so a text file is also a string); *n = its bytes.  NULL (and *n = 0) when
 * it cannot be opened or read.                                              */
static inline unsigned char *check_read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    unsigned char *b = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) { free(b); b = NULL; }
    fclose(f);
    if (!b) return NULL;
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

/* Writes n bytes to path (created or truncated).  0, or -1 after a failed
 * check naming the file (test data that cannot be written fails the test). */
static inline int check_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t w = f ? fwrite(data, 1, n, f) : 0;
    int ok = f && fclose(f) == 0 && w == n;
    CHECK(ok, "cannot write %s", path);
    return ok ? 0 : -1;
}
static inline int check_write_text(const char *path, const char *text) {
    return check_write_file(path, text, strlen(text));
}

/* ---- temporary directories ------------------------------------------------- */

/* Makes a fresh directory /tmp/graft-test-<name>-XXXXXX; its path in dir
 * (cap bytes).  0, or -1 with a message.                                    */
static inline int check_mkdtemp(char *dir, size_t cap, const char *name) {
    if (snprintf(dir, cap, "/tmp/graft-test-%s-XXXXXX", name) < (int)cap && mkdtemp(dir)) return 0;
    fprintf(stderr, "  cannot make a temporary directory %s: %s\n", dir, strerror(errno));
    return -1;
}

static inline int check_rm_one_(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    if (remove(path) != 0) fprintf(stderr, "  could not remove %s: %s\n", path, strerror(errno));
    return 0;   /* go on with the rest */
}
/* Removes path and everything below it (depth first, symbolic links removed,
 * not followed).  A path that does not exist is fine.                       */
static inline void check_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0) nftw(path, check_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* The test program's scratch directory: check_tmp_open("name") in main
 * before the RUNs, check_tmp("file") for a path in it (one of 8 rotating
 * buffers), check_tmp_close() before check_summary().                      */
static char check_tmp_dir_[128];
static inline int check_tmp_open(const char *name) {
    return check_mkdtemp(check_tmp_dir_, sizeof check_tmp_dir_, name);
}
static inline const char *check_tmp_dir(void) { return check_tmp_dir_; }
/* dir/name into buf (cap bytes); returns buf. */
static inline char *check_tmp_path(char *buf, size_t cap, const char *name) {
    if (snprintf(buf, cap, "%s/%s", check_tmp_dir_, name) >= (int)cap)
        fprintf(stderr, "  path cut short: %s/%s\n", check_tmp_dir_, name);
    return buf;
}
static inline const char *check_tmp(const char *name) {
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    return check_tmp_path(p[k], sizeof p[k], name);
}
/* Writes n bytes to the scratch file name; returns its path (as check_tmp). */
static inline const char *check_tmp_write(const char *name, const void *data, size_t n) {
    const char *p = check_tmp(name);
    check_write_file(p, data, n);
    return p;
}
static inline void check_tmp_close(void) {
    if (check_tmp_dir_[0]) check_rmtree(check_tmp_dir_);
    check_tmp_dir_[0] = 0;
}

/* ---- deterministic data ---------------------------------------------------- */

/* n floats, calloc'd (zeros); exits on out of memory (a test cannot go on). */
static inline float *check_falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* p[i] uniform in [lo, hi) from gr_rng seeded with seed. */
static inline void check_fill(float *p, size_t n, uint64_t seed, float lo, float hi) {
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * gr_rng_uniform(&r);
}

/* n floats, malloc'd, each v; exits on out of memory. */
static inline float *check_filled(size_t n, float v) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* A xorshift64 stream for hand-made inputs: check_xs r = {seed}. */
typedef struct { uint64_t s; } check_xs;
static inline float check_xs_u(check_xs *r) {   /* [0, 1) */
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17;
    return (float)((r->s >> 40) * (1.0 / 16777216.0));
}
static inline float check_xs_sym(check_xs *r, float a) { return (2.0f * check_xs_u(r) - 1.0f) * a; }   /* [-a, a) */
/* n values of the stream in [-a, a), malloc'd. */
static inline float *check_xs_fill(check_xs *r, size_t n, float a) {
    float *p = check_filled(n, 0);
    for (size_t i = 0; i < n; i++) p[i] = check_xs_sym(r, a);
    return p;
}

/* A CIFAR-10 .bin of n records (1 label byte + R, G, B planes of 32x32):
 * record(i, rec, user) fills each of the 3073 bytes.  0, or -1 after a
 * failed check naming the file.                                             */
typedef void (*check_record_fn)(int i, uint8_t rec[3073], void *user);
static inline int check_write_cifar(const char *path, int n, check_record_fn record, void *user) {
    FILE *f = fopen(path, "wb");
    int ok = f != NULL;
    uint8_t rec[3073];
    for (int i = 0; ok && i < n; i++) {
        record(i, rec, user);
        ok = fwrite(rec, 1, sizeof rec, f) == sizeof rec;
    }
    if (f && fclose(f) != 0) ok = 0;
    CHECK(ok, "cannot write %s", path);
    return ok ? 0 : -1;
}

/* A tiny darknet cfg at path: 32x32x3 input, 2 x [conv 3x3 (8, 16
 * filters) + batch norm + leaky, maxpool 2]; 0, or -1 if it cannot be written. */
static inline int check_write_tiny_cfg(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "[net]\nheight=32\nwidth=32\nchannels=3\n\n");
    for (int i = 0; i < 2; i++)
        fprintf(f, "[convolutional]\nbatch_normalize=1\nfilters=%d\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"
                   "[maxpool]\nsize=2\nstride=2\n\n", 8 * (i + 1));
    return fclose(f);
}

/* A w x h 24-bit BMP of rgb (rows top to bottom, 3 bytes a pixel). */
static inline int check_write_bmp(const char *path, int w, int h, const uint8_t *rgb) {
    int stride = (w * 3 + 3) & ~3;
    size_t n = 54 + (size_t)stride * h;
    uint8_t *b = calloc(1, n);
    if (!b) { CHECK(0, "out of memory for %s", path); return -1; }
    b[0] = 'B', b[1] = 'M';
    uint32_t v32[] = {(uint32_t)n, 0, 54, 40, (uint32_t)w, (uint32_t)h};
    memcpy(b + 2, &v32[0], 4), memcpy(b + 10, &v32[2], 4), memcpy(b + 14, &v32[3], 4);
    memcpy(b + 18, &v32[4], 4), memcpy(b + 22, &v32[5], 4);
    b[26] = 1, b[28] = 24;
    for (int y = 0; y < h; y++)   /* BMP rows go bottom up, pixels B, G, R */
        for (int x = 0; x < w; x++) {
            uint8_t *q = b + 54 + (size_t)(h - 1 - y) * stride + 3 * x;
            const uint8_t *s = rgb + ((size_t)y * w + x) * 3;
            q[0] = s[2], q[1] = s[1], q[2] = s[0];
        }
    int rc = check_write_file(path, b, n);
    free(b);
    return rc;
}

/* ---- models ---------------------------------------------------------------- */

/* The tiny Keras model of tests/fixtures/gen_weights.py: input 8x8x3 ->
 * conv1 (3x3, 4, same, relu, bias) -> bn1 -> pool1 (2x2) -> flatten -> fc (5,
 * linear, bias).  NULL (with a message) on failure.                         */
static inline gr_model *check_tiny_model(void) {
    gr_error err = {0};
    gr_model *m = gr_model_new(8, 8, 3, &err);
    if (m && gr_stack(m, &err, gr_named(gr_conv2d(4, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), "conv1"),
                      gr_named(gr_batchnorm(1e-3f), "bn1"), gr_named(gr_maxpool(2, 2), "pool1"),
                      gr_named(gr_flatten(), "flatten"), gr_named(gr_dense(5, GR_ACT_LINEAR), "fc")) != GR_OK) {
        gr_model_free(m);
        m = NULL;
    }
    if (!m) fprintf(stderr, "  tiny model: %s\n", err.msg);
    return m;
}

/* gr_model_load_weights(m, path) must fail: with code (any error when
 * code is GR_OK), a message naming the file and holding frag1 and frag2
 * (each when not NULL), and m's weights unchanged.                          */
static inline void check_load_fails(gr_model *m, const char *path, gr_status code, const char *frag1,
                                    const char *frag2) {
    size_t nw = m->w_count;
    float *before = malloc((nw ? nw : 1) * sizeof(float));
    if (!before) { CHECK(0, "out of memory"); return; }
    memcpy(before, m->w, nw * sizeof(float));
    gr_error err = {0};
    gr_status st = gr_model_load_weights(m, path, NULL, &err);
    CHECK(st != GR_OK, "%s: loaded but should not", path);
    if (code != GR_OK) CHECK(st == code, "%s: status %s (%s)", path, gr_status_name(st), err.msg);
    CHECK(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    if (frag1) CHECK(strstr(err.msg, frag1) != NULL, "message lacks '%s': %s", frag1, err.msg);
    if (frag2) CHECK(strstr(err.msg, frag2) != NULL, "message lacks '%s': %s", frag2, err.msg);
    CHECK(!memcmp(before, m->w, nw * sizeof(float)), "a failed load changed the weights");
    if (getenv("CHECK_VERBOSE")) fprintf(stderr, "  error: %s\n", err.msg);
    free(before);
}

/* ---- PyTorch fixtures ------------------------------------------------------ */

/* A GRFX file (tests/fixtures/gen_layers.py's format): "GRFX", uint32
 * count, then per array a 32-byte name, uint32 n and n float32 values.     */
#define CHECK_FX_MAX 32
typedef struct {
    int count;
    char name[CHECK_FX_MAX][32];
    uint32_t n[CHECK_FX_MAX];
    float *data[CHECK_FX_MAX];
} check_fx;

static inline void check_fx_free(check_fx *f) {
    for (int i = 0; i < f->count; i++) free(f->data[i]);
    f->count = 0;
}

/* Loads dir/name.bin; 0 ok, -1 (after a failed check) when it is missing or corrupt. */
static inline int check_fx_load(check_fx *f, const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL, "cannot open %s (run from the repo root)", path);
    if (!fp) return -1;
    char magic[4];
    uint32_t count = 0;
    int ok = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GRFX", 4) && fread(&count, 4, 1, fp) == 1 &&
             count <= CHECK_FX_MAX;
    for (uint32_t i = 0; ok && i < count; i++) {
        ok = fread(f->name[i], 1, 32, fp) == 32 && fread(&f->n[i], 4, 1, fp) == 1 && f->n[i] < (1u << 24);
        if (!ok) break;
        f->name[i][31] = 0;
        f->data[i] = malloc((f->n[i] ? f->n[i] : 1) * sizeof(float));
        f->count = (int)i + 1;
        ok = f->data[i] && fread(f->data[i], sizeof(float), f->n[i], fp) == f->n[i];
    }
    fclose(fp);
    CHECK(ok, "%s: truncated or corrupt fixture", path);
    if (!ok) check_fx_free(f);
    return ok ? 0 : -1;
}

/* The array `name` with exactly n values (NULL and a failed check if not). */
static inline float *check_fx_get(check_fx *f, const char *name, size_t n) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->name[i], name)) {
            CHECK(f->n[i] == n, "fixture array %s has %u values, want %zu", name, f->n[i], n);
            return f->n[i] == n ? f->data[i] : NULL;
        }
    CHECK(0, "fixture array %s missing", name);
    return NULL;
}
#endif
