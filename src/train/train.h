/* train.h — the training module's internal pieces. */
#ifndef GRAFT_TRAIN_H
#define GRAFT_TRAIN_H
#include "train/feats.h"
#include "graph/model.h"

/* One optimizer update over n parameters: w, gradient g, state s1 (SGD
 * velocity / Adam m) and s2 (Adam v).  it = iterations done before;
 * the rate is gr_optim_lr(o, it) * lr_mult.                               */
void gr_optim_update(const gr_optim *o, int64_t it, float lr_mult, float *w, const float *g,
                     float *s1, float *s2, size_t n);

/* The forward + backward half of gr_trainer_step (no update): fills the
 * gradient of the batch's mean loss; gr_trainer_grad exposes it, covering
 * m->w[offset .. offset+count).                                            */
gr_status gr_trainer_gradients(gr_trainer *t, const float *x, const int *labels, int B,
                               float *loss, int *correct, gr_error *err);
float *gr_trainer_grad(gr_trainer *t, size_t *offset, size_t *count);

/* One data-parallel step (with MPI, src/dist): this rank holds rows
 * [lo, lo+B) of a global batch of `total` rows (B may be 0).  Gradients,
 * loss and correct count are summed over the ranks with one all-reduce, so
 * every rank makes the update a single process makes on the whole batch
 * (up to the order of the sums).  *loss = the global batch's mean loss,
 * *correct its correct count; *flag (may be NULL) in: this rank's flag, out:
 * the sum over the ranks (a stop request every rank sees at the same step). */
gr_status gr_trainer_step_dist(gr_trainer *t, const float *x, const int *labels, int B, int lo, int total,
                               float *loss, int *correct, int *flag, gr_error *err);
/* Seconds spent in gr_trainer_step_dist's all-reduce so far (waiting for
 * the slowest rank included), over *steps steps of *floats floats each.   */
double gr_trainer_reduce_seconds(const gr_trainer *t, int64_t *steps, size_t *floats);

/* Mixed targets for the next steps (mixup, cutmix): the target of row b
 * is lam * y(labels[b]) + (1 - lam) * y(labels2[b]) (each y label-smoothed
 * as usual), so the loss is lam * CE(labels) + (1 - lam) * CE(labels2) and
 * a row counts as correct when it predicts the label with the larger
 * weight.  labels2 (B rows, kept by the caller while it is set) NULL turns
 * it off.                                                                 */
void gr_trainer_set_mix(gr_trainer *t, const int *labels2, float lam);

/* The trainer's resumable state: optimizer slots s1/s2 (n floats each; s2
 * NULL unless Adam), the iteration count and the dropout RNG.               */
void gr_trainer_state(gr_trainer *t, float **s1, float **s2, size_t *n, int64_t **it, gr_rng **rng);
/* Changes the learning rate (the learning-rate range test). */
void gr_trainer_set_lr(gr_trainer *t, float lr);
/* The trainer's optimizer settings (the range test runs without the schedule). */
gr_optim *gr_trainer_optim(gr_trainer *t);

/* The learning-rate range test (lr_range.c).  smooth: out[i] = the
 * bias-corrected exponential moving average (factor 0.9) of loss[0..i]
 * (out[0] = loss[0]; a constant stays constant).  pick: the index of the
 * lowest smoothed loss, or -1 when the test is inconclusive: fewer than 10
 * points, the lowest within max(3, n/20) points of either end of the sweep
 * (the loss only rose, or still fell when the sweep ended), or less than
 * 5% below the first value (a flat curve).                                */
void gr_lr_range_smooth(const double *loss, int n, double *out);
int gr_lr_range_pick(const double *smoothed, int n);

/* The features cache on disk (features_cache.c).  gr_features_key digests
 * everything the features at layer upto depend on (the files' content, not
 * their names or times; the context's precision and reference switch); load
 * fills rows [row0, row0 + n) of feat (n x F) and says whether the entry was
 * there and intact (its payload digest checked; path_out: the file): a
 * float16 entry fills a float16 cache and is a miss for a float32 one (its
 * values were rounded), a float32 entry (format 2, graft before float16)
 * fills either (GR_FEATURES_HIT_F32: the caller may store it again as
 * float16); store keeps rows [row0, row0 + n) in feat's precision.
 * gr_features_cache_dir writes the cache directory (with a final '/'); -1
 * when the disk cache is off or no home is known.                         */
typedef enum {
    GR_FEATURES_MISS = 0, GR_FEATURES_HIT, GR_FEATURES_DAMAGED,
    GR_FEATURES_HIT_F32,   /* a hit on a float32 entry read into a float16 cache */
    GR_FEATURES_NOMEM      /* the cache could not be widened to float32 for the entry's values */
} gr_features_hit;
gr_status gr_features_key(const gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                          char hex[65], gr_error *err);
/* The key of the mirrored images' features (the cached prefix with the
 * flip, fit.c): key re-hashed with the tag "mirror", in place; false (key
 * unusable) when OpenSSL fails.                                           */
bool gr_features_key_mirror(char key[65]);
gr_features_hit gr_features_load(const char key[65], size_t n, size_t F, gr_feats *feat, size_t row0,
                                 char *path_out, size_t cap);
int gr_features_cache_dir(char *out, size_t cap);
void gr_features_store(const char key[65], size_t n, size_t F, const gr_feats *feat, size_t row0);

/* The cache's size limit (README "The features cache"): GRAFT_CACHE_MAX in
 * bytes, or a number with a K, M, G or T suffix (powers of 1024; "2G",
 * "500M", "1.5T"; a trailing B or iB is allowed), default 10G, 0 = no
 * limit.  Storing an entry first removes the least recently used entries
 * (by the time each was last written or read: a hit sets the file's mtime)
 * until the new one fits; an entry larger than the limit is not stored.   */
#define GR_FEATURES_CACHE_MAX_DEFAULT (10ull << 30)
gr_status gr_size_parse(const char *s, const char *what, uint64_t *out, gr_error *err);
gr_status gr_features_cache_limit(uint64_t *max, gr_error *err);
/* "12.3 MiB" (bytes below 1 KiB: "812 B"). */
void gr_size_text(uint64_t bytes, char *out, size_t cap);
/* The cache directory (with a final '/') even when the cache is off;
 * -1 when no home is known. */
int gr_features_cache_path(char *out, size_t cap);

/* A file of the cache directory (gr_features_cache_scan). */
typedef enum {
    GR_FC_ENTRY = 0,   /* "<sha256>.f32" */
    GR_FC_TEMP,        /* "<sha256>.f32.tmp.<pid>" of a live writer */
    GR_FC_STALE        /* a temp file left by a killed writer (its pid is gone, or older than an hour) */
} gr_fc_kind;
typedef struct {
    char name[96];             /* file name inside the directory */
    gr_fc_kind kind;
    uint64_t bytes;
    int64_t used_s, used_ns;   /* mtime: the last write or hit */
    uint64_t n, F;             /* images and features per image (header); 0, 0 when unreadable */
} gr_fc_file;
/* Lists dir's cache files, most recently used first (*files malloc'd;
 * *n = 0 and GR_OK when dir does not exist).  Other files are ignored.    */
gr_status gr_features_cache_scan(const char *dir, gr_fc_file **files, int *n, gr_error *err);
/* Removes least-recently-used entries until the entries total at most
 * budget bytes (never the entry named keep, may be NULL), and stale temp
 * files.  all: remove every entry and stale temp file (budget ignored).
 * removed / freed (may be NULL): how many entries, how many bytes (stale
 * temp files included).                                                   */
gr_status gr_features_cache_evict(const char *dir, uint64_t budget, bool all, const char *keep, int *removed,
                                  uint64_t *freed, gr_error *err);

#endif
