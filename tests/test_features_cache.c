/* test_features_cache.c — the features cache on disk: a second run reuses the
 * stored features and ends with bit-identical weights; a damaged entry is
 * ignored and rewritten; other base weights give another entry; turning the
 * disk cache off (GRAFT_FEATURES_CACHE=0) writes nothing. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "model.h"

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

/* Trains a fresh head (fixed seed) on the .bin; returns the model (caller frees). */
static gr_model *train_once(float base_bump) {
    gr_error e;
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET}, &e);
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

int main(void) {
    snprintf(home, sizeof home, "/tmp/graft-fc-XXXXXX");
    if (!mkdtemp(home)) return 1;
    setenv("GRAFT_HOME", home, 1);
    snprintf(bin, sizeof bin, "%s/data.bin", home);
    FILE *f = fopen(bin, "wb");
    gr_rng r;
    gr_rng_seed(&r, 9);
    for (int i = 0; i < 64; i++) {
        uint8_t rec[3073];
        rec[0] = (uint8_t)(i % 10);
        for (int k = 1; k < 3073; k++) rec[k] = (uint8_t)gr_rng_below(&r, 256);
        fwrite(rec, 1, sizeof rec, f);
    }
    fclose(f);
    RUN(test_reuse_and_damage);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", home);
    return check_summary();
}
