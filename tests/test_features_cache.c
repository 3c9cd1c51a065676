/* test_features_cache.c — the features cache on disk: a second run reuses the
 * stored features and ends with bit-identical weights; a damaged entry
 * (truncated, or one flipped byte of its payload) is detected, recomputed
 * and rewritten; other base weights give another entry; images replaced by
 * others of the same size and modification time give fresh features (the
 * key is the files' content); turning the disk cache off
 * (GRAFT_FEATURES_CACHE=0) writes nothing.  Entries are float16 (version
 * 3) by default, float32 (version 2, graft's format before) on request; an
 * old float32 entry is read by a float16 run and rewritten.
 * The size limit (GRAFT_CACHE_MAX): its values parsed (hand-computed byte
 * counts), least-recently-used eviction in the order set by the entries'
 * times and by a hit, the limit never exceeded, an entry larger than the
 * limit not stored, 0 = no limit, temp files of dead writers removed and a
 * live writer's kept. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "train/train.h"
#include <sys/wait.h>
#include <time.h>

static char home[256], bin[300];

static int count_entries(void) {
    char d[400];
    snprintf(d, sizeof d, "%s/cache/features", home);
    DIR *dp = opendir(d);
    if (!dp) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".f32") && !strstr(e->d_name, ".tmp")) n++;
    closedir(dp);
    return n;
}

/* Trains a fresh head (fixed seed) on data (the .bin, or an image folder);
 * returns the model (caller frees). */
static gr_model *train_on(const char *data, float base_bump) {
    gr_error e;
    gr_dataset *ds = gr_dataset_open(data, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET, .h = 32, .w = 32}, &e);
    if (!ds) { fprintf(stderr, "  %s\n", e.msg); return NULL; }
    gr_model *m = gr_model_new(32, 32, 3, &e);
    gr_stack(m, &e, gr_conv2d(8, 3, 3, 2, GR_PAD_SAME, GR_ACT_RELU), gr_maxpool(2, 2), gr_flatten(),
             gr_dense(10, GR_ACT_SOFTMAX));
    gr_model_init_params(m, 0, 3);
    m->w[0] += base_bump;
    m->w_version++;
    gr_model_freeze_upto(m, 2);
    gr_fit_opts o = {.epochs = 2, .batch = 16, .seed = 5};
    gr_status st = gr_fit(m, ds, NULL, 0, &o, &e);
    if (st != GR_OK) fprintf(stderr, "  fit: %s\n", e.msg);
    gr_dataset_free(ds);
    if (st != GR_OK) { gr_model_free(m); return NULL; }
    return m;
}
static gr_model *train_once(float base_bump) { return train_on(bin, base_bump); }

/* The one cache entry's path into f (empty when there is not exactly one). */
static void entry_path(char *f, size_t cap) {
    char d[400];
    snprintf(d, sizeof d, "%s/cache/features", home);
    DIR *dp = opendir(d);
    struct dirent *e;
    int n = 0;
    f[0] = 0;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".f32") && !strstr(e->d_name, ".tmp")) { snprintf(f, cap, "%s/%s", d, e->d_name); n++; }
    if (dp) closedir(dp);
    if (n != 1) f[0] = 0;
}

static bool same_weights(const gr_model *a, const gr_model *b) {
    return a && b && a->w_count == b->w_count && !memcmp(a->w, b->w, a->w_count * sizeof(float));
}

/* Clears the cache directory. */
static void clear_cache(void) {
    char d[400];
    snprintf(d, sizeof d, "%s/cache", home);
    check_rmtree(d);
}

/* One byte of the payload flipped (same size, same header): the digest in
 * the header catches it; the run recomputes (weights as the first run's)
 * and rewrites the entry (bytes as before).                               */
static void test_flipped_byte(void) {
    clear_cache();
    gr_model *a = train_once(0);
    char f[700];
    entry_path(f, sizeof f);
    CHECK(a && f[0], "one cache entry after the first run");
    size_t n0 = 0;
    unsigned char *orig = f[0] ? check_read_file(f, &n0) : NULL;
    CHECK(orig && n0 > 100, "entry readable");
    if (!orig || !a) { free(orig); gr_model_free(a); return; }
    int fd = open(f, O_RDWR);
    unsigned char c = (unsigned char)(orig[n0 - 7] ^ 0x40);
    CHECK(fd >= 0 && pwrite(fd, &c, 1, (off_t)(n0 - 7)) == 1, "flip a byte");
    if (fd >= 0) close(fd);
    gr_model *b = train_once(0);
    CHECK(same_weights(a, b), "a cache entry with a flipped byte was used (the weights differ from a computed run)");
    size_t n1 = 0;
    unsigned char *now = check_read_file(f, &n1);
    CHECK(now && n1 == n0 && !memcmp(now, orig, n0), "the damaged entry was not rewritten");
    free(orig); free(now);
    gr_model_free(a); gr_model_free(b);
}

/* The entry's header: version (2 float32, 3 float16), n, F; false if unreadable. */
static bool entry_header(const char *f, uint32_t *ver, uint64_t *n, uint64_t *F, size_t *bytes) {
    size_t len = 0;
    unsigned char *b = check_read_file(f, &len);
    bool ok = b && len >= 56 && !memcmp(b, "GRFC", 4);
    if (ok) { memcpy(ver, b + 4, 4); memcpy(n, b + 8, 8); memcpy(F, b + 16, 8); *bytes = len; }
    free(b);
    return ok;
}

static gr_model *train_prec(const char *prec) {
    if (prec) setenv("GRAFT_FEATURES_PRECISION", prec, 1);
    gr_model *m = train_once(0);
    unsetenv("GRAFT_FEATURES_PRECISION");
    return m;
}

/* The cache's precision: float16 entries by default (version 3, 2 bytes a
 * feature), float32 with GRAFT_FEATURES_PRECISION=fp32 (version 2, as graft
 * wrote before).  A float16 entry is not used by a float32 run (recomputed:
 * the same weights as with the disk cache off) and is replaced; a float32
 * entry (an old one) is read by a float16 run, giving the weights of a
 * float16 run computed from the images, and is rewritten as float16; a
 * header of an unknown version is damaged (recomputed, rewritten); a bad
 * GRAFT_FEATURES_PRECISION is an error naming it.                          */
static void test_precision_and_old_entries(void) {
    clear_cache();
    char f[700];
    uint32_t ver = 0;
    uint64_t n = 0, F = 0;
    size_t bytes = 0;
    gr_model *h = train_prec(NULL);
    entry_path(f, sizeof f);
    CHECK(h && f[0] && entry_header(f, &ver, &n, &F, &bytes), "a float16 entry");
    CHECK(ver == 3 && n == 64 && F > 0 && bytes == 56 + n * F * 2, "float16 entry: version %u, %llu x %llu, %zu bytes",
          ver, (unsigned long long)n, (unsigned long long)F, bytes);
    setenv("GRAFT_FEATURES_CACHE", "0", 1);
    gr_model *h0 = train_prec(NULL), *s0 = train_prec("fp32");
    unsetenv("GRAFT_FEATURES_CACHE");
    CHECK(same_weights(h, h0), "a float16 run from the images differs from the first float16 run");
    CHECK(h0 && s0 && !same_weights(h0, s0), "float16 and float32 features gave bit-identical weights (not rounded?)");
    /* float32 run over the float16 entry: recomputed, replaced by a float32 one */
    gr_model *s = train_prec("fp32");
    CHECK(same_weights(s, s0), "a float32 run used the float16 entry");
    CHECK(entry_header(f, &ver, &n, &F, &bytes) && ver == 2 && bytes == 56 + n * F * 4,
          "float32 entry: version %u, %zu bytes", ver, bytes);
    /* the float32 (old) entry read by a float16 run, then stored as float16 */
    gr_model *h2 = train_prec("fp16");
    CHECK(same_weights(h2, h), "a float16 run reading a float32 entry differs from one computing its features");
    CHECK(entry_header(f, &ver, &n, &F, &bytes) && ver == 3 && bytes == 56 + n * F * 2,
          "the float32 entry was not rewritten as float16: version %u, %zu bytes", ver, bytes);
    /* an unknown version: damaged, recomputed and rewritten */
    int fd = open(f, O_RDWR);
    uint32_t nine = 9;
    CHECK(fd >= 0 && pwrite(fd, &nine, 4, 4) == 4, "write a version");
    if (fd >= 0) close(fd);
    gr_model *h3 = train_prec(NULL);
    CHECK(same_weights(h3, h), "an entry of an unknown version was used");
    CHECK(entry_header(f, &ver, &n, &F, &bytes) && ver == 3, "the damaged entry was not rewritten (version %u)", ver);
    /* a bad value */
    setenv("GRAFT_FEATURES_PRECISION", "fp8", 1);
    gr_error e = {0};
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET, .h = 32, .w = 32}, &e);
    gr_model *m = gr_model_new(32, 32, 3, &e);
    gr_stack(m, &e, gr_conv2d(8, 3, 3, 2, GR_PAD_SAME, GR_ACT_RELU), gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX));
    gr_model_init_params(m, 0, 3);
    gr_model_freeze_upto(m, 0);
    gr_fit_opts o = {.epochs = 1, .batch = 16, .seed = 5};
    gr_status st = ds && m ? gr_fit(m, ds, NULL, 0, &o, &e) : GR_ERR_NOMEM;
    unsetenv("GRAFT_FEATURES_PRECISION");
    CHECK(st == GR_ERR_ARG && strstr(e.msg, "GRAFT_FEATURES_PRECISION='fp8'"), "bad precision: %d %s", st, e.msg);
    gr_model_free(m);
    gr_dataset_free(ds);
    gr_model_free(h); gr_model_free(h0); gr_model_free(s0); gr_model_free(s); gr_model_free(h2); gr_model_free(h3);
}

/* A w x h 24-bit BMP of one colour + a bright square at (k, k). */
static void write_bmp(const char *path, int w, int h, unsigned char r, unsigned char g, unsigned char b, int k) {
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb) { CHECK(0, "out of memory"); return; }
    for (int y = 0; y < h; y++)   /* y counts from the bottom row, as BMP stores them */
        for (int x = 0; x < w; x++) {
            bool sq = x >= k && x < k + 6 && y >= k && y < k + 6;
            uint8_t *q = rgb + ((size_t)(h - 1 - y) * w + x) * 3;
            q[0] = sq ? 255 : r, q[1] = sq ? 255 : g, q[2] = sq ? 255 : b;
        }
    check_write_bmp(path, w, h, rgb);
    free(rgb);
}

/* Every image of a folder replaced by another of the same size, with the
 * old modification times put back: the cache must not serve the old
 * features (the result equals a run with the disk cache off).             */
static void test_same_size_same_mtime(void) {
    clear_cache();
    char dir[400], p[500];
    snprintf(dir, sizeof dir, "%s/folder", home);
    const char *cls[2] = {"a", "b"};
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/%s", dir, cls[c]);
        mkdir(dir, 0755);
        mkdir(p, 0755);
        for (int i = 0; i < 8; i++) {
            snprintf(p, sizeof p, "%s/%s/%d.bmp", dir, cls[c], i);
            write_bmp(p, 32, 32, c ? 20 : 200, 60, c ? 200 : 20, i);
        }
    }
    gr_model *a = train_on(dir, 0);
    CHECK(a && count_entries() == 1, "one cache entry for the folder");
    for (int c = 0; c < 2; c++)   /* swap the classes' pixels: same sizes, same times */
        for (int i = 0; i < 8; i++) {
            snprintf(p, sizeof p, "%s/%s/%d.bmp", dir, cls[c], i);
            struct stat sb;
            stat(p, &sb);
            write_bmp(p, 32, 32, c ? 200 : 20, 60, c ? 20 : 200, 7 - i);
            struct stat sa;
            struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
            CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0 && stat(p, &sa) == 0 && sa.st_size == sb.st_size &&
                  sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec,
                  "replace %s keeping size and time", p);
        }
    gr_model *b = train_on(dir, 0);
    setenv("GRAFT_FEATURES_CACHE", "0", 1);
    gr_model *fresh = train_on(dir, 0);
    unsetenv("GRAFT_FEATURES_CACHE");
    CHECK(b && fresh && same_weights(b, fresh), "replaced images (same size and time) reused stale features");
    CHECK(a && b && !same_weights(a, b), "the replaced images gave the same weights as the old ones");
    CHECK(count_entries() == 2, "the replaced images share the old entry (%d entries)", count_entries());
    gr_model_free(a); gr_model_free(b); gr_model_free(fresh);
}

static void test_reuse_and_damage(void) {
    gr_model *a = train_once(0);
    CHECK(a != NULL, "first run");
    CHECK(count_entries() == 1, "one cache entry after the first run (%d)", count_entries());
    gr_model *b = train_once(0);
    CHECK(b && a && b->w_count == a->w_count && !memcmp(a->w, b->w, a->w_count * sizeof(float)),
          "a run from the cache differs from the computed one");
    /* damage the entry: truncate it */
    char d[400], f[700];
    snprintf(d, sizeof d, "%s/cache/features", home);
    DIR *dp = opendir(d);
    struct dirent *e;
    f[0] = 0;
    while (dp && (e = readdir(dp)))
        if (strstr(e->d_name, ".f32")) snprintf(f, sizeof f, "%s/%s", d, e->d_name);
    if (dp) closedir(dp);
    struct stat before;
    CHECK(f[0] && stat(f, &before) == 0, "entry file");
    CHECK(truncate(f, before.st_size / 2) == 0, "truncate");
    gr_model *c = train_once(0);
    struct stat after;
    CHECK(c && a && !memcmp(a->w, c->w, a->w_count * sizeof(float)), "a damaged entry changed the result");
    CHECK(stat(f, &after) == 0 && after.st_size == before.st_size, "the damaged entry was not rewritten");
    gr_model *x = train_once(0.5f);   /* other base weights: another key */
    CHECK(x != NULL && count_entries() == 2, "other base weights share the entry (%d files)", count_entries());
    setenv("GRAFT_FEATURES_CACHE", "0", 1);
    gr_model *y = train_once(1.0f);
    CHECK(y != NULL && count_entries() == 2, "GRAFT_FEATURES_CACHE=0 still wrote (%d files)", count_entries());
    unsetenv("GRAFT_FEATURES_CACHE");
    gr_model_free(a); gr_model_free(b); gr_model_free(c); gr_model_free(x); gr_model_free(y);
}

/* CIFAR record i: label i % 10, random pixels. */
static void random_record(int i, uint8_t rec[3073], void *rng) {
    rec[0] = (uint8_t)(i % 10);
    for (int k = 1; k < 3073; k++) rec[k] = (uint8_t)gr_rng_below(rng, 256);
}

static void test_cache_max_parse(void) {
    static const struct { const char *s; uint64_t want; } ok[] = {
        {"0", 0}, {"1048576", 1048576}, {"2G", 2147483648ull}, {"500M", 524288000ull}, {"500m", 524288000ull},
        {"1.5G", 1610612736ull}, {"10GiB", 10737418240ull}, {"64KB", 65536}, {"1T", 1099511627776ull},
        {"3k", 3072}, {"0.5K", 512}, {"100B", 100}, {"1.999999999T", 2199022156040ull},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        gr_error e = {0};
        CHECK(gr_size_parse(ok[i].s, "GRAFT_CACHE_MAX", &v, &e) == GR_OK && v == ok[i].want,
              "'%s' -> %llu (want %llu) %s", ok[i].s, (unsigned long long)v, (unsigned long long)ok[i].want, e.msg);
    }
    static const char *bad[] = {"", "abc", "-1", "10X", "1.5", "G", "1e9", "0x10", " 5G", "5G ", "1..2G",
                                "99999999999999999999", "9999999999T"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 0;
        gr_error e = {0};
        CHECK(gr_size_parse(bad[i], "GRAFT_CACHE_MAX", &v, &e) == GR_ERR_ARG && strstr(e.msg, "GRAFT_CACHE_MAX") &&
              strstr(e.msg, bad[i]), "'%s' accepted or unclear: '%s'", bad[i], e.msg);
    }
    unsetenv("GRAFT_CACHE_MAX");
    uint64_t v = 0;
    CHECK(gr_features_cache_limit(&v, NULL) == GR_OK && v == (10ull << 30), "default limit %llu, want 10 GiB",
          (unsigned long long)v);
}

/* The eviction tests' own cache: entries of n = 1, F = 256 (56 + 1024 bytes),
 * keyed by one hex digit repeated 64 times. */
enum { EV_F = 256, EV_BYTES = 56 + EV_F * 4 };
static char ev_dir[400];

static void ev_key(char c, char key[65]) {
    memset(key, c, 64);
    key[64] = 0;
}

static bool ev_has(char c) {
    char p[600], key[65];
    ev_key(c, key);
    snprintf(p, sizeof p, "%s%s.f32", ev_dir, key);
    return access(p, F_OK) == 0;
}

static uint64_t ev_total(void) {
    gr_fc_file *v;
    int n;
    uint64_t t = 0;
    if (gr_features_cache_scan(ev_dir, &v, &n, NULL) != GR_OK) return UINT64_MAX;
    for (int i = 0; i < n; i++) if (v[i].kind == GR_FC_ENTRY) t += v[i].bytes;
    free(v);
    return t;
}

static void ev_store(char c) {
    float feat[EV_F];
    for (int i = 0; i < EV_F; i++) feat[i] = (float)c + (float)i / 256;
    char key[65];
    ev_key(c, key);
    gr_feats f = {.p = feat, .n = 1, .F = EV_F, .half = false};
    gr_features_store(key, 1, EV_F, &f, 0);
}

static void ev_set_time(char c, time_t t) {
    char p[600], key[65];
    ev_key(c, key);
    snprintf(p, sizeof p, "%s%s.f32", ev_dir, key);
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    utimensat(AT_FDCWD, p, ts, 0);
}

static void test_cache_lru_eviction(void) {
    char h[400];
    snprintf(h, sizeof h, "%s/lru", home);
    setenv("GRAFT_HOME", h, 1);
    CHECK(gr_features_cache_dir(ev_dir, sizeof ev_dir) == 0, "cache dir");
    setenv("GRAFT_CACHE_MAX", "0", 1);   /* no limit */
    for (char c = 'a'; c <= 'c'; c++) ev_store(c);
    time_t t0 = time(NULL) - 1000;
    ev_set_time('a', t0);            /* a oldest, then b, then c */
    ev_set_time('b', t0 + 10);
    ev_set_time('c', t0 + 20);
    CHECK(ev_has('a') && ev_has('b') && ev_has('c') && ev_total() == 3 * EV_BYTES, "three entries, %llu bytes",
          (unsigned long long)ev_total());
    /* a hit on a makes it the most recently used */
    float got[EV_F];
    char key[65], path[600];
    ev_key('a', key);
    gr_feats gf = {.p = got, .n = 1, .F = EV_F, .half = false};
    CHECK(gr_features_load(key, 1, EV_F, &gf, 0, path, sizeof path) == GR_FEATURES_HIT && got[1] == 'a' + 1.0f / 256,
          "a reads back");
    struct stat sa;
    CHECK(stat(path, &sa) == 0 && sa.st_mtim.tv_sec >= time(NULL) - 60, "the hit did not mark a as used (mtime %lld)",
          (long long)sa.st_mtim.tv_sec);
    /* room for 3 entries: storing d removes the least recently used, b */
    char lim[32];
    snprintf(lim, sizeof lim, "%d", 3 * EV_BYTES + 100);
    setenv("GRAFT_CACHE_MAX", lim, 1);
    ev_store('d');
    CHECK(ev_has('a') && !ev_has('b') && ev_has('c') && ev_has('d'), "after d: a %d b %d c %d d %d (want b gone)",
          ev_has('a'), ev_has('b'), ev_has('c'), ev_has('d'));
    CHECK(ev_total() <= 3 * EV_BYTES + 100, "total %llu over the limit", (unsigned long long)ev_total());
    /* room for 2: storing e removes c (t0+20), then d (t0+30: older than a's hit) */
    ev_set_time('d', t0 + 30);
    snprintf(lim, sizeof lim, "%d", 2 * EV_BYTES + 100);
    setenv("GRAFT_CACHE_MAX", lim, 1);
    ev_store('e');
    CHECK(ev_has('a') && !ev_has('c') && !ev_has('d') && ev_has('e'), "after e: a %d c %d d %d e %d (want a, e)",
          ev_has('a'), ev_has('c'), ev_has('d'), ev_has('e'));
    CHECK(ev_total() == 2 * EV_BYTES, "total %llu, want %d", (unsigned long long)ev_total(), 2 * EV_BYTES);
    /* an entry larger than the limit is not stored and removes nothing */
    setenv("GRAFT_CACHE_MAX", "1000", 1);
    ev_store('f');
    CHECK(!ev_has('f') && ev_has('a') && ev_has('e'), "a too-large entry: f %d a %d e %d", ev_has('f'), ev_has('a'),
          ev_has('e'));
    /* temp files: a dead writer's goes at the next store, a live one's stays */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char dead[700], live[700];
    ev_key('9', key);
    snprintf(dead, sizeof dead, "%s%s.f32.tmp.%ld", ev_dir, key, (long)child);
    snprintf(live, sizeof live, "%s%s.f32.tmp.%ld", ev_dir, key, (long)getpid());
    check_write_text(dead, "half");   /* a failure is a CHECK failure there */
    check_write_text(live, "half");
    setenv("GRAFT_CACHE_MAX", "0", 1);
    ev_store('1');
    setenv("GRAFT_CACHE_MAX", lim, 1);   /* the limit applies at the next store */
    ev_store('2');
    CHECK(access(dead, F_OK) != 0 && access(live, F_OK) == 0, "dead writer's temp %s, live one's %s",
          access(dead, F_OK) ? "removed" : "kept", access(live, F_OK) ? "removed" : "kept");
    CHECK(ev_has('2') && ev_total() <= 2 * EV_BYTES + 100, "after 2: total %llu", (unsigned long long)ev_total());
    unlink(live);
    /* clear removes every entry */
    int removed = -1;
    uint64_t freed = 0;
    uint64_t before = ev_total();
    CHECK(gr_features_cache_evict(ev_dir, 0, true, NULL, &removed, &freed, NULL) == GR_OK && removed == 2 &&
          freed == before && ev_total() == 0, "clear: removed %d, freed %llu of %llu", removed,
          (unsigned long long)freed, (unsigned long long)before);
    unsetenv("GRAFT_CACHE_MAX");
    setenv("GRAFT_HOME", home, 1);
}

int main(void) {
    if (check_mkdtemp(home, sizeof home, "fc")) return 1;
    setenv("GRAFT_HOME", home, 1);
    snprintf(bin, sizeof bin, "%s/data.bin", home);
    gr_rng r;
    gr_rng_seed(&r, 9);
    if (check_write_cifar(bin, 64, random_record, &r)) return 1;
    RUN(test_reuse_and_damage);
    RUN(test_flipped_byte);
    RUN(test_precision_and_old_entries);
    RUN(test_same_size_same_mtime);
    RUN(test_cache_max_parse);
    RUN(test_cache_lru_eviction);
    check_rmtree(home);
    return check_summary();
}
