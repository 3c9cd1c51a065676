/* probe.c — which cut of a base transfers best, by measurement.
 *
 * One pass of the base over a stratified, seeded sample of the data takes
 * the features at every candidate cut: the cuts are sorted, and each batch
 * runs in stages 0..c1, c1+1..c2, ... each stage starting from the previous
 * cut's output (a stage whose layers read below the previous cut, e.g. a
 * darknet route, runs from the input instead).  Per cut the features are
 * kept global-average-pooled [n, c] and, when small enough, flattened
 * [n, h*w*c]; each form is then scored by the ridge probe and LogME
 * (probe_linear.c).                                                        */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dist/dist.h"
#include "exec/ctx.h"
#include "probe/probe.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int gr_probe_pool_cuts(const gr_model *m, int default_cut, int *cuts, int cap) {
    int n = 0;
    if (default_cut >= m->n_nodes) default_cut = m->n_nodes - 1;
    for (int i = 0; i < default_cut; i++) {
        gr_op op = m->nodes[i].s.op;
        if (op == GR_OP_MAXPOOL || op == GR_OP_AVGPOOL || op == GR_OP_GLOBAL_AVGPOOL) {
            if (n < cap) cuts[n] = i;
            n++;
        }
    }
    if (default_cut >= 0) {
        if (n < cap) cuts[n] = default_cut;
        n++;
    }
    return n;
}

int gr_probe_pick(const gr_probe_row *rows, int n) {
    int best = -1;
    double ba = 0, bl = 0;
    for (int i = 0; i < n; i++) {
        const gr_probe_score *s = rows[i].use_flat ? &rows[i].flat : &rows[i].pooled;
        if (best < 0 || s->ridge_acc > ba || (s->ridge_acc == ba && s->logme > bl) ||
            (s->ridge_acc == ba && s->logme == bl && rows[i].node < rows[best].node)) {
            best = i;
            ba = s->ridge_acc;
            bl = s->logme;
        }
    }
    return best;
}

/* A cut being collected. */
typedef struct {
    int node, from;          /* the stage runs layers from..node */
    int h, w, c;
    size_t size;             /* h*w*c */
    float *out;              /* [batch, size] this batch's output */
    float *pooled;           /* [n, c] */
    float *flat;             /* [n, size] or NULL */
    double seconds;          /* this stage's forward time (after the first batch) */
} cut_buf;

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* True when layers from..upto read only layer from-1's output or later ones. */
static bool stage_ok(const gr_model *m, int from, int upto) {
    for (int i = from; i <= upto; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] < from - 1) return false;
    return true;
}

/* The sample: all of ds, or a stratified seeded subset of about `samples`. */
static gr_status sample_indices(const gr_dataset *ds, int samples, uint64_t seed, int **idx, int *n,
                                gr_error *err) {
    int total = gr_dataset_count(ds);
    *idx = NULL;
    if (samples >= total) {
        *idx = gr_malloc((size_t)(total ? total : 1) * sizeof(int), err);
        if (!*idx) return GR_ERR_NOMEM;
        for (int i = 0; i < total; i++) (*idx)[i] = i;
        *n = total;
        return GR_OK;
    }
    int *tr = NULL, ntr = 0;
    gr_status st = gr_dataset_split(ds, (float)((double)samples / total), seed, &tr, &ntr, idx, n, err);
    free(tr);
    return st;
}

/* Scores one form of features X [n, F]. */
static gr_status score_form(const float *X, const int *y, int n, int F, int C, int folds,
                            gr_probe_form form, gr_probe_score *s, gr_error *err) {
    double t0 = now_s();
    s->form = form;
    s->features = F;
    gr_status st = gr_probe_score_both(X, y, n, F, C, folds, &s->ridge_acc, &s->ridge_lambda, &s->logme, err);
    s->seconds = now_s() - t0;
    return st;
}

/* One gr_probe_cuts call: the settings, the distinct cuts ascending (cb),
 * the sample and, for this rank, its part [lo, hi).                        */
typedef struct {
    gr_model *m;
    const gr_dataset *ds;
    gr_probe_opts o;
    gr_error *err;
    int h, w, C;
    int *sorted, nc;         /* the distinct cuts, ascending */
    cut_buf *cb;             /* [nc] */
    int *idx, n;             /* the sample */
    int lo, hi;              /* this rank's part of it */
    bool dist;
    int *labels, *blab;
    float *x;
    gr_batcher *b;
    gr_ctx *cx;              /* one context for every cut's stage: its caches live across batches */
    double score_t0;         /* when the scoring of the first cut began */
} probe_run;

static void probe_defaults(gr_probe_opts *o) {
    if (o->samples <= 0) o->samples = 2000;
    if (o->folds <= 0) o->folds = 5;
    if (o->batch <= 0) o->batch = 64;
    if (o->threads <= 0) o->threads = 2;
    if (o->flat_max == 0) o->flat_max = 8192;
}

static gr_status probe_check(probe_run *r, const int *cuts, int n_cuts) {
    const gr_model *m = r->m;
    if (n_cuts <= 0) return gr_error_set(r->err, GR_ERR_ARG, "probe: no cuts to score");
    for (int k = 0; k < n_cuts; k++)
        if (cuts[k] < 0 || cuts[k] >= m->n_nodes)
            return gr_error_set(r->err, GR_ERR_ARG, "probe: cut %d is not a layer of the base (0..%d)", cuts[k],
                                m->n_nodes - 1);
    r->C = gr_dataset_num_classes(r->ds);
    gr_dataset_size(r->ds, &r->h, &r->w);
    if (r->h != m->in_h || r->w != m->in_w || m->in_c != 3)
        return gr_error_set(r->err, GR_ERR_SHAPE, "probe: the data's samples are %dx%dx3 but the base takes %dx%dx%d",
                            r->h, r->w, m->in_h, m->in_w, m->in_c);
    if (r->C < 2)
        return gr_error_set(r->err, GR_ERR_ARG, "probe: the data has %d class(es); scoring needs at least 2", r->C);
    /* distinct cuts, ascending */
    r->sorted = gr_malloc((size_t)n_cuts * sizeof(int), r->err);
    if (!r->sorted) return GR_ERR_NOMEM;
    memcpy(r->sorted, cuts, (size_t)n_cuts * sizeof(int));
    qsort(r->sorted, (size_t)n_cuts, sizeof(int), cmp_int);
    r->nc = 0;
    for (int k = 0; k < n_cuts; k++)
        if (!r->nc || r->sorted[k] != r->sorted[r->nc - 1]) r->sorted[r->nc++] = r->sorted[k];
    return GR_OK;
}

/* The sample, the batch buffers and each cut's stage and buffers. */
static gr_status probe_setup(probe_run *r) {
    const gr_probe_opts *o = &r->o;
    gr_error *err = r->err;
    r->cb = gr_calloc((size_t)r->nc, sizeof *r->cb, err);
    r->cx = gr_ctx_new(r->m, err);
    if (!r->cb || !r->cx) return GR_ERR_NOMEM;
    gr_status st = sample_indices(r->ds, o->samples, o->seed, &r->idx, &r->n, err);
    if (st != GR_OK) return st;
    int n = r->n;
    if (n < 2 * o->folds)
        return gr_error_set(err, GR_ERR_ARG, "probe: %d samples are too few for %d-fold cross-validation", n, o->folds);
    r->labels = gr_malloc((size_t)n * sizeof(int), err);
    r->blab = gr_malloc((size_t)o->batch * sizeof(int), err);
    r->x = gr_malloc((size_t)o->batch * r->h * r->w * 3 * sizeof(float), err);
    if (!r->labels || !r->blab || !r->x) return GR_ERR_NOMEM;
    for (int k = 0; k < r->nc; k++) {
        cut_buf *c = &r->cb[k];
        c->node = r->sorted[k];
        c->from = k > 0 && stage_ok(r->m, r->sorted[k - 1] + 1, c->node) ? r->sorted[k - 1] + 1 : 0;
        gr_model_layer_shape(r->m, c->node, &c->h, &c->w, &c->c);
        c->size = (size_t)c->h * c->w * c->c;
        c->out = gr_malloc((size_t)o->batch * c->size * sizeof(float), err);
        c->pooled = gr_malloc((size_t)n * c->c * sizeof(float), err);
        if (!c->out || !c->pooled) return GR_ERR_NOMEM;
        if (c->h * c->w > 1 && o->flat_max > 0 && c->size <= (size_t)o->flat_max) {
            c->flat = gr_malloc((size_t)n * c->size * sizeof(float), err);
            if (!c->flat) return GR_ERR_NOMEM;
        }
    }
    return GR_OK;
}

/* Keeps samples done..done+got of cut c's batch output: pooled, flat. */
static void keep_features(cut_buf *c, int done, int got) {
    int hw = c->h * c->w;
    for (int i = 0; i < got; i++) {
        const float *src = c->out + (size_t)i * c->size;
        float *dst = c->pooled + (size_t)(done + i) * c->c;
        for (int ch = 0; ch < c->c; ch++) {
            double s = 0;
            for (int p = 0; p < hw; p++) s += src[(size_t)p * c->c + ch];
            dst[ch] = (float)(s / hw);
        }
        if (c->flat) memcpy(c->flat + (size_t)(done + i) * c->size, src, c->size * sizeof(float));
    }
}

/* One pass: every cut's features for every sample (under MPI: this rank's
 * part [lo, hi) of the sample, then every rank gathers the rest).         */
static gr_status probe_pass(probe_run *r) {
    const gr_probe_opts *o = &r->o;
    gr_error *err = r->err;
    int n = r->n, lo = 0, hi = n;
    r->dist = o->distributed && gr_dist_active();
    if (r->dist) {
        gr_dist_shard(n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
        for (int i = 0; i < n; i++) r->labels[i] = gr_dataset_label(r->ds, r->idx[i]);
    }
    r->lo = lo;
    r->hi = hi;
    gr_batcher_opts bo = {.batch = o->batch, .threads = o->threads};
    if (hi > lo && !(r->b = gr_batcher_new(r->ds, r->idx + lo, hi - lo, &bo, err))) return err->code;
    double t0 = now_s();
    int done = lo, got = 0;
    gr_status st;
    while (done < hi) {
        if ((st = gr_batcher_next(r->b, r->x, r->blab, &got, err)) != GR_OK) return st;
        if (got == 0) break;
        memcpy(r->labels + done, r->blab, (size_t)got * sizeof(int));
        for (int k = 0; k < r->nc; k++) {
            cut_buf *c = &r->cb[k];
            const float *in = c->from == 0 ? r->x : r->cb[k - 1].out;
            double ts = now_s();
            if ((st = gr_ctx_run(r->cx, c->from, in, got, c->node, c->out, err)) != GR_OK ||
                (st = gr_outputs_check(r->m, c->node, c->out, got, err)) != GR_OK)
                return st;
            if (done > lo || got == hi - lo) c->seconds += now_s() - ts;   /* the first batch warms up */
            keep_features(c, done, got);
        }
        done += got;
        if (o->verbose) {   /* (under mpirun: rank 0's shard) */
            double el = now_s() - t0 + 1e-9;
            gr_log(GR_LOG_PROGRESS, "probe: features %d/%d images, %.0f img/s, ETA %.0fs", done - lo, hi - lo,
                   (done - lo) / el, el / (done - lo) * (hi - done));
        }
    }
    if (o->verbose)
        gr_log(GR_LOG_NOTE, "probe: features of %d images at %d cuts in %.1fs (%.0f img/s)", done - lo, r->nc,
               now_s() - t0, (done - lo) / (now_s() - t0 + 1e-9));
    if (done != hi) return gr_error_set(err, GR_ERR_IO, "probe: the data gave %d of %d samples", done - lo, hi - lo);
    st = GR_OK;
    for (int k = 0; r->dist && k < r->nc && st == GR_OK; k++) {
        st = gr_dist_gather_rows(r->cb[k].pooled, (size_t)r->cb[k].c, n, err);
        if (st == GR_OK && r->cb[k].flat) st = gr_dist_gather_rows(r->cb[k].flat, r->cb[k].size, n, err);
    }
    return st;
}

/* Scores cut k's forms into *row (and frees its features). */
static gr_status score_cut(probe_run *r, int k, gr_probe_row *row) {
    const gr_probe_opts *o = &r->o;
    cut_buf *c = &r->cb[k];
    memset(row, 0, sizeof *row);
    row->node = c->node;
    snprintf(row->name, sizeof row->name, "%s", r->m->nodes[c->node].s.name);
    row->h = c->h, row->w = c->w, row->c = c->c;
    double cum = 0;
    for (int j = k; j >= 0; j--) {   /* the stages that lead to this cut */
        cum += r->cb[j].seconds;
        if (r->cb[j].from == 0) break;
    }
    int lo = r->lo, hi = r->hi;
    row->fwd_ms = 1e3 * cum / (hi - lo > o->batch ? hi - lo - o->batch : (hi > lo ? hi - lo : 1));
    if (o->verbose && k == 0) {
        r->score_t0 = now_s();
        gr_log(GR_LOG_NOTE, "probe: scoring cut 1/%d '%s' (%dx%dx%d)", r->nc, row->name, c->h, c->w, c->c);
    } else if (o->verbose) {   /* the ETA: the cuts so far took this long on average (a rough guide) */
        double el = now_s() - r->score_t0;
        gr_log(GR_LOG_NOTE, "probe: scoring cut %d/%d '%s' (%dx%dx%d); %d scored in %.1fs, ETA ~%.0fs", k + 1,
               r->nc, row->name, c->h, c->w, c->c, k, el, el / k * (r->nc - k));
    }
    gr_status st = score_form(c->pooled, r->labels, r->n, c->c, r->C, o->folds,
                              c->h * c->w > 1 ? GR_PROBE_GAP : GR_PROBE_VEC, &row->pooled, r->err);
    if (st == GR_OK && c->flat)
        st = score_form(c->flat, r->labels, r->n, (int)c->size, r->C, o->folds, GR_PROBE_FLAT, &row->flat, r->err);
    if (st != GR_OK) {
        gr_error_prefix(r->err, "probe: cut '%s'", row->name);
        return st;
    }
    row->flat.form = GR_PROBE_FLAT;
    row->use_flat = row->flat.features > 0 &&
                    (row->flat.ridge_acc > row->pooled.ridge_acc ||
                     (row->flat.ridge_acc == row->pooled.ridge_acc && row->flat.logme > row->pooled.logme));
    free(c->pooled), c->pooled = NULL;
    free(c->flat), c->flat = NULL;
    return GR_OK;
}

static void probe_free(probe_run *r) {
    gr_batcher_free(r->b);
    gr_ctx_free(r->cx);
    for (int k = 0; r->cb && k < r->nc; k++) {
        free(r->cb[k].out);
        free(r->cb[k].pooled);
        free(r->cb[k].flat);
    }
    free(r->cb);
    free(r->sorted);
    free(r->idx);
    free(r->labels);
    free(r->blab);
    free(r->x);
}

gr_status gr_probe_cuts(gr_model *m, const gr_dataset *ds, const int *cuts, int n_cuts,
                        const gr_probe_opts *opts, gr_probe_row *rows, int *n_rows,
                        int *n_samples, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    probe_run r = {.m = m, .ds = ds, .o = opts ? *opts : (gr_probe_opts){0}, .err = err};
    probe_defaults(&r.o);
    *n_rows = 0;
    gr_status st = probe_check(&r, cuts, n_cuts);
    if (st == GR_OK) st = probe_setup(&r);
    if (st == GR_OK) st = probe_pass(&r);
    for (int k = 0; st == GR_OK && k < r.nc; k++) st = score_cut(&r, k, &rows[k]);
    if (st == GR_OK) {
        *n_rows = r.nc;
        if (n_samples) *n_samples = r.n;
    }
    probe_free(&r);
    return st;
}

gr_status gr_probe_best_cut(gr_model *base, const gr_dataset *ds, const int *cuts, int n_cuts,
                            int samples, uint64_t seed, int *best, gr_probe_row *rows,
                            gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_probe_row *r = rows;
    if (!r && n_cuts > 0 && !(r = gr_malloc((size_t)n_cuts * sizeof *r, err))) return GR_ERR_NOMEM;
    gr_probe_opts o = {.samples = samples, .seed = seed};
    int nr = 0;
    gr_status st = gr_probe_cuts(base, ds, cuts, n_cuts, &o, r, &nr, NULL, err);
    if (st == GR_OK) *best = r[gr_probe_pick(r, nr)].node;
    if (r != rows) free(r);
    return st;
}
