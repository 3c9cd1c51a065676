/* batcher.c — batches of preprocessed samples with background prefetch.
 *
 * Batches are numbered globally g = epoch * nb + b.  Batch g lives in slot
 * g % K of a ring of K preallocated slots; worker pthreads claim batch
 * numbers in order (under the mutex, which also copies the batch's sample
 * indices from the epoch's permutation) and fill them (decode, resize,
 * augment, preprocess) outside the lock; the consumer takes them in order.
 * What batch g holds depends only on (seed, epoch, sample index):
 *   permutation of epoch e:  Fisher-Yates with gr_rng seeded by mix(seed, e)
 *   augmentation of sample i in epoch e: gr_rng seeded by mix(seed, e, i)
 * so the thread count never changes the result.  No allocation per batch
 * once every worker's scratch has grown to the largest image.             */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "core/core.h"

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY };

typedef struct {
    int state;
    long job;           /* the global batch number it holds */
    int n;              /* samples */
    int *idx;           /* [batch] dataset indices */
    int epoch;
    float *x;           /* [batch][h][w][3] */
    int *labels;        /* [batch] */
    gr_status st;
    gr_error err;
} slot;

typedef struct {
    struct gr_batcher *b;
    gr_sample_scratch s;
    float *img;         /* [h][w][3] before augmentation */
} worker;

struct gr_batcher {
    const gr_dataset *ds;
    gr_batcher_opts o;
    int *items;         /* [n] dataset indices */
    int n, nb;
    int *perm;          /* [n] positions into items for perm_epoch */
    int perm_epoch;
    slot *slots;
    int K;
    long next_claim, next_take;
    bool pending_end;   /* the last batch of an epoch was taken: next call returns 0 */
    int epoch;
    gr_status failed;
    gr_error ferr;
    pthread_mutex_t mu;
    pthread_cond_t ready, freed;
    bool stop;
    bool sync_init;     /* mu, ready, freed initialized */
    pthread_t *th;
    int n_threads;      /* started */
    worker *w;          /* [max(threads, 1)] */
};

static uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = a * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ULL + b;
    h = (h ^ (h >> 29)) * 0x94D049BB133111EBULL + c;
    return h ^ (h >> 32);
}

/* Under the mutex (or single-threaded): assigns batch g to its slot. */
static void claim(struct gr_batcher *b, long g, slot *s) {
    int e = (int)(g / b->nb), k = (int)(g % b->nb);
    if (e != b->perm_epoch) {
        for (int i = 0; i < b->n; i++) b->perm[i] = i;
        if (b->o.shuffle) {
            gr_rng r;
            gr_rng_seed(&r, mix(b->o.seed, (uint64_t)e, 0xA5A5A5A5ULL));
            for (int i = b->n - 1; i > 0; i--) {
                int j = (int)gr_rng_below(&r, (uint32_t)i + 1), t = b->perm[i];
                b->perm[i] = b->perm[j], b->perm[j] = t;
            }
        }
        b->perm_epoch = e;
    }
    int lo = k * b->o.batch, hi = lo + b->o.batch < b->n ? lo + b->o.batch : b->n;
    s->n = hi - lo;
    for (int i = lo; i < hi; i++) s->idx[i - lo] = b->items[b->perm[i]];
    s->job = g;
    s->epoch = e;
    s->state = SLOT_FILLING;
}

void gr_augment_draw(uint64_t seed, int epoch, int i, int pad, bool hflip, int *oy, int *ox, bool *flip) {
    gr_rng r;
    gr_rng_seed(&r, mix(seed, (uint64_t)epoch, (uint64_t)i));
    *oy = pad ? (int)gr_rng_below(&r, 2 * (uint32_t)pad + 1) : pad;
    *ox = pad ? (int)gr_rng_below(&r, 2 * (uint32_t)pad + 1) : pad;
    *flip = hflip && gr_rng_below(&r, 2);
}

/* Pads with zeros by pad, crops back at the offset (oy, ox), flips:
 * out(y, x) = in(y + oy - pad, x' + ox - pad), x' = flip ? w-1-x : x.     */
static void augment(const float *in, float *out, int h, int w, int pad, int oy, int ox, bool flip) {
    for (int y = 0; y < h; y++) {
        int sy = y + oy - pad;
        float *o = out + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            int sx = (flip ? w - 1 - x : x) + ox - pad;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = 0;
            } else {
                const float *p = in + ((size_t)sy * w + sx) * 3;
                o[3 * x] = p[0], o[3 * x + 1] = p[1], o[3 * x + 2] = p[2];
            }
        }
    }
}

void gr_resized_crop(const float *in, int h, int w, int y0, int x0, int ch, int cw, float *out) {
    float sy = (float)ch / (float)h, sx = (float)cw / (float)w;
    for (int y = 0; y < h; y++) {
        float fy = ((float)y + 0.5f) * sy - 0.5f;
        if (fy < 0) fy = 0;
        int iy = (int)fy;
        if (iy > ch - 1) iy = ch - 1;
        int iy1 = iy + 1 < ch ? iy + 1 : ch - 1;
        float ay = fy - (float)iy;
        if (ay > 1) ay = 1;
        const float *r0 = in + ((size_t)(y0 + iy) * w + x0) * 3, *r1 = in + ((size_t)(y0 + iy1) * w + x0) * 3;
        float *o = out + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            float fx = ((float)x + 0.5f) * sx - 0.5f;
            if (fx < 0) fx = 0;
            int ix = (int)fx;
            if (ix > cw - 1) ix = cw - 1;
            int ix1 = ix + 1 < cw ? ix + 1 : cw - 1;
            float ax = fx - (float)ix;
            if (ax > 1) ax = 1;
            for (int c = 0; c < 3; c++) {
                float top = r0[3 * ix + c] + ax * (r0[3 * ix1 + c] - r0[3 * ix + c]);
                float bot = r1[3 * ix + c] + ax * (r1[3 * ix1 + c] - r1[3 * ix + c]);
                o[3 * x + c] = top + ay * (bot - top);
            }
        }
    }
}

void gr_rrc_box(int h, int w, float smin, gr_rng *r, int *y0, int *x0, int *ch, int *cw) {
    const float lr0 = logf(3.0f / 4.0f), lr1 = logf(4.0f / 3.0f);
    for (int k = 0; k < 10; k++) {
        float area = (float)h * (float)w * (smin + (1.0f - smin) * gr_rng_uniform(r));
        float ratio = expf(lr0 + (lr1 - lr0) * gr_rng_uniform(r));
        int bw = (int)lrintf(sqrtf(area * ratio)), bh = (int)lrintf(sqrtf(area / ratio));
        if (bw > 0 && bh > 0 && bw <= w && bh <= h) {
            *y0 = (int)gr_rng_below(r, (uint32_t)(h - bh + 1));
            *x0 = (int)gr_rng_below(r, (uint32_t)(w - bw + 1));
            *ch = bh, *cw = bw;
            return;
        }
    }
    *y0 = *x0 = 0, *ch = h, *cw = w;
}

/* Mirrors img [h][w][3] left-right in place. */
static void flip_lr(float *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                float t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c], row[3 * b + c] = t;
            }
    }
}

/* Outside the mutex: decodes, resizes, augments and preprocesses slot s. */
static void fill(struct gr_batcher *b, worker *wk, slot *s) {
    const gr_dataset *ds = b->ds;
    size_t hw = (size_t)ds->h * ds->w;
    bool aug = b->o.pad > 0 || b->o.hflip || b->o.rrc_scale > 0;
    s->st = GR_OK;
    for (int j = 0; j < s->n; j++) {
        int i = s->idx[j];
        float *dst = s->x + (size_t)j * hw * 3;
        s->st = gr_dataset_load_resized(ds, i, aug ? wk->img : dst, &wk->s, &s->err);
        if (s->st != GR_OK) return;
        if (aug) {
            gr_rng r;
            gr_rng_seed(&r, mix(b->o.seed, (uint64_t)s->epoch, (uint64_t)i));
            if (b->o.rrc_scale > 0) {   /* random-resized-crop, then the flip */
                int y0, x0, ch, cw;
                gr_rrc_box(ds->h, ds->w, b->o.rrc_scale, &r, &y0, &x0, &ch, &cw);
                gr_resized_crop(wk->img, ds->h, ds->w, y0, x0, ch, cw, dst);
                if (b->o.hflip && gr_rng_below(&r, 2)) flip_lr(dst, ds->h, ds->w);
            } else {
                int oy, ox;
                bool flip;
                gr_augment_draw(b->o.seed, s->epoch, i, b->o.pad, b->o.hflip, &oy, &ox, &flip);
                augment(wk->img, dst, ds->h, ds->w, b->o.pad, oy, ox, flip);
            }
        }
        if (b->o.flip_all) flip_lr(dst, ds->h, ds->w);
        gr_norm_apply(&ds->norm, dst, hw);
        s->labels[j] = ds->labels[i];
    }
}

static void *worker_main(void *arg) {
    worker *wk = arg;
    struct gr_batcher *b = wk->b;
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        long g = b->next_claim;
        slot *s = &b->slots[g % b->K];
        if (s->state != SLOT_FREE) {
            pthread_cond_wait(&b->freed, &b->mu);
            continue;
        }
        claim(b, g, s);
        b->next_claim++;
        pthread_mutex_unlock(&b->mu);
        fill(b, wk, s);
        pthread_mutex_lock(&b->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&b->ready);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

gr_batcher *gr_batcher_new(const gr_dataset *ds, const int *indices, int n, const gr_batcher_opts *opts,
                           gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!ds || !opts || opts->batch <= 0 || opts->threads < 0 || opts->pad < 0 || opts->prefetch < 0 ||
        !(opts->rrc_scale >= 0 && opts->rrc_scale <= 1)) {
        gr_error_set(err, GR_ERR_ARG, "gr_batcher_new: bad arguments (batch %d, threads %d)",
                     opts ? opts->batch : 0, opts ? opts->threads : 0);
        return NULL;
    }
    if (!indices) n = ds->n;
    if (n <= 0) {
        gr_error_set(err, GR_ERR_ARG, "%s: no samples to iterate over", ds->source);
        return NULL;
    }
    for (int i = 0; indices && i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n) {
            gr_error_set(err, GR_ERR_ARG, "%s: sample index %d out of range 0..%d", ds->source, indices[i], ds->n - 1);
            return NULL;
        }
    struct gr_batcher *b = gr_calloc(1, sizeof *b, err);
    if (!b) return NULL;
    b->ds = ds;
    b->o = *opts;
    b->n = n;
    b->nb = (n + opts->batch - 1) / opts->batch;
    b->perm_epoch = -1;
    int nw = opts->threads ? opts->threads : 1;
    b->K = opts->prefetch ? opts->prefetch : opts->threads + 1;
    if (b->K < 1) b->K = 1;
    size_t per = (size_t)opts->batch * ds->h * ds->w * 3;
    b->items = gr_malloc(sizeof(int) * (size_t)n, err);
    b->perm = gr_malloc(sizeof(int) * (size_t)n, err);
    b->slots = gr_calloc((size_t)b->K, sizeof(slot), err);
    b->w = gr_calloc((size_t)nw, sizeof(worker), err);
    b->th = gr_calloc((size_t)nw, sizeof(pthread_t), err);
    bool ok = b->items && b->perm && b->slots && b->w && b->th;
    for (int k = 0; ok && k < b->K; k++) {
        b->slots[k].idx = gr_malloc(sizeof(int) * (size_t)opts->batch, err);
        b->slots[k].labels = gr_malloc(sizeof(int) * (size_t)opts->batch, err);
        b->slots[k].x = gr_malloc(sizeof(float) * per, err);
        ok = b->slots[k].idx && b->slots[k].labels && b->slots[k].x;
    }
    for (int t = 0; ok && t < nw; t++) {
        b->w[t].b = b;
        b->w[t].img = gr_malloc(sizeof(float) * (size_t)ds->h * ds->w * 3, err);
        ok = b->w[t].img != NULL;
    }
    if (!ok) {
        gr_batcher_free(b);
        return NULL;
    }
    for (int i = 0; i < n; i++) b->items[i] = indices ? indices[i] : i;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->ready, NULL);
    pthread_cond_init(&b->freed, NULL);
    b->sync_init = true;
    /* loader threads never take signals (SIGINT/SIGTERM belong to the main thread) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int t = 0; t < opts->threads; t++) {
        if (pthread_create(&b->th[t], NULL, worker_main, &b->w[t])) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            gr_error_set(err, GR_ERR_BACKEND, "%s: cannot start a loader thread", ds->source);
            gr_batcher_free(b);
            return NULL;
        }
        b->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return b;
}

gr_status gr_batcher_next(gr_batcher *b, float *x, int *labels, int *n_out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    *n_out = 0;
    if (b->failed) {
        *err = b->ferr;
        return b->failed;
    }
    if (b->pending_end) {           /* end of epoch marker */
        b->pending_end = false;
        return GR_OK;
    }
    long g = b->next_take;
    slot *s = &b->slots[g % b->K];
    if (b->o.threads == 0) {
        claim(b, g, s);
        b->next_claim++;
        fill(b, &b->w[0], s);
    } else {
        pthread_mutex_lock(&b->mu);
        while (!(s->state == SLOT_READY && s->job == g)) pthread_cond_wait(&b->ready, &b->mu);
        pthread_mutex_unlock(&b->mu);
    }
    gr_status st = s->st;
    if (st == GR_OK) {
        size_t per = (size_t)b->ds->h * b->ds->w * 3;
        memcpy(x, s->x, sizeof(float) * per * (size_t)s->n);
        memcpy(labels, s->labels, sizeof(int) * (size_t)s->n);
        *n_out = s->n;
        b->epoch = s->epoch;
    } else {
        b->failed = st;
        b->ferr = s->err;
        *err = s->err;
    }
    if (b->o.threads) pthread_mutex_lock(&b->mu);
    s->state = SLOT_FREE;
    if (st != GR_OK) b->stop = true;
    if (b->o.threads) {
        pthread_cond_broadcast(&b->freed);
        pthread_mutex_unlock(&b->mu);
    }
    b->next_take++;
    if (st == GR_OK && b->next_take % b->nb == 0) b->pending_end = true;
    return st;
}

int gr_batcher_epoch(const gr_batcher *b) { return b ? b->epoch : 0; }
int gr_batcher_num_batches(const gr_batcher *b) { return b ? b->nb : 0; }

void gr_batcher_free(gr_batcher *b) {
    if (!b) return;
    if (b->n_threads) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_broadcast(&b->freed);
        pthread_cond_broadcast(&b->ready);
        pthread_mutex_unlock(&b->mu);
        for (int t = 0; t < b->n_threads; t++) pthread_join(b->th[t], NULL);
    }
    if (b->sync_init) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->ready);
        pthread_cond_destroy(&b->freed);
    }
    int nw = b->o.threads ? b->o.threads : 1;
    for (int t = 0; b->w && t < nw; t++) {
        gr_sample_scratch_free(&b->w[t].s);
        free(b->w[t].img);
    }
    for (int k = 0; b->slots && k < b->K; k++) {
        free(b->slots[k].idx);
        free(b->slots[k].labels);
        free(b->slots[k].x);
    }
    free(b->slots), free(b->w), free(b->th), free(b->items), free(b->perm);
    free(b);
}
