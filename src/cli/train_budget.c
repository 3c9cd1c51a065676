/* train_budget.c — `graft train --budget TIME`: given the data and a
 * wall-time budget, choose the base, the input size, the cut, what to
 * unfreeze, the epochs (and so the schedule), by measurement:
 *   1. probe: per base, per input size (32, 64, 96, ... up to the base's
 *      own), a linear probe of every candidate cut on a stratified sample
 *      (graft probe's scoring); sizes climb while the score improves and
 *      the next probe and features pass fit their share of the budget;
 *      above 64x64 only the cuts from the best one so far on are scored
 *      (a larger input moves the best cut deeper, not shallower; the
 *      scoring, not the forward pass, is most of a probe's time);
 *   2. throughput, per (base, size) at its best cut, on this machine, now:
 *      the frozen part's img/s (decoding included: the features pass and the
 *      final evaluation), the head's training img/s on cached features, and
 *      the fine-tuning step's img/s (augmented batches) with the last one or
 *      two pooled blocks unfrozen;
 *   3. gr_plan_choose (src/train/budget.c) turns them and the time left
 *      into epochs per candidate and picks one; the table says why.
 * The plan then runs as `graft train` with those options; gr_fit's
 * time_limit keeps it within the budget when epochs run slower than
 * measured.  GRAFT_BUDGET_FAKE (tests) replaces measured figures:
 * "feat=IPS,head=IPS,ft1=IPS,ft2=IPS,prefix=IPS,c1=IPS,c2=IPS,spent=S,
 * cut=default,cache=off" (any subset; prefix, c1 and c2: the frozen
 * prefix's pass and the steps from the cached prefix; cut=default probes
 * the base's default cut only; cache=off: as if the prefix did not fit in
 * memory).                                                                */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "exec/ctx.h"
#include "graph/model.h"
#include "train/budget.h"
#include "train/fit.h"
#include "train.h"

#define MAX_BASES 8
#define MAX_SIZES 6
#define MAX_CANDS (MAX_BASES * MAX_SIZES * 3)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Figures a test injects (NAN: measure). */
typedef struct { double feat, head, ft1, ft2, prefix, c1, c2, spent; bool default_cut, no_prefix; } fake_rates;

static void read_fake(fake_rates *f) {
    f->feat = f->head = f->ft1 = f->ft2 = f->prefix = f->c1 = f->c2 = f->spent = NAN;
    f->default_cut = f->no_prefix = false;
    const char *e = getenv("GRAFT_BUDGET_FAKE");
    if (!e || !*e) return;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", e);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        double v = strtod(eq + 1, NULL);
        if (!strcmp(tok, "feat")) f->feat = v;
        else if (!strcmp(tok, "head")) f->head = v;
        else if (!strcmp(tok, "ft1")) f->ft1 = v;
        else if (!strcmp(tok, "ft2")) f->ft2 = v;
        else if (!strcmp(tok, "spent")) f->spent = v;
        else if (!strcmp(tok, "prefix")) f->prefix = v;
        else if (!strcmp(tok, "c1")) f->c1 = v;
        else if (!strcmp(tok, "c2")) f->c2 = v;
        else if (!strcmp(tok, "cache") && !strcmp(eq + 1, "off")) f->no_prefix = true;
        else if (!strcmp(tok, "cut") && !strcmp(eq + 1, "default")) f->default_cut = true;
    }
}

/* "tflite:/a/b/m.tflite" reads as "tflite:m.tflite". */
static const char *base_label(const char *b, char *buf, size_t cap) {
    const char *colon = strchr(b, ':'), *slash = strrchr(b, '/');
    if (colon && slash && slash > colon) snprintf(buf, cap, "%.*s%s", (int)(colon - b + 1), b, slash + 1);
    else snprintf(buf, cap, "%s", b);
    return buf;
}

/* One (base, size) probed: its best cut and the measured rates. */
typedef struct {
    int base, size;
    int cut, u[2], nu;       /* the best cut; unfreeze points (1 or 2 blocks) */
    char cut_name[64], u_name[2][64];
    double probe, feat_ips, head_ips, ft_ips[2], probe_s, epoch_extra_s;
    int n_cuts, n_from_best; /* the cuts scored; those of them from the best one on */
    /* the cached prefix (the frozen part below u[k] computed once per image
     * and its mirror): whether it fits in memory, its pass, the steps from it */
    bool cached[2];
    double prefix_ips[2], cached_ips[2];
} probed;

typedef struct {
    train_args *t;
    budget_plan_out *out;
    double t_start, budget;
    const char *bases[MAX_BASES], *weights[MAX_BASES];
    char list[4096], wlist[4096];
    int nb, n_train, n_test, n_val, classes, samples;
    probed pr[MAX_BASES * MAX_SIZES];
    int np;
    fake_rates fake;
    bool say;
} planner;

/* The candidate cuts of a base (as --cut auto): every pooling layer up to
 * the default cut, the default cut, and each layer output after the last
 * pool.  Returns how many.                                                */
static int candidate_cuts(const gr_model *m, int *cuts, int cap) {
    int cut = cli_default_cut(m), nc = gr_probe_pool_cuts(m, cut, cuts, cap), last_pool = -1;
    if (nc > cap) nc = cap;
    for (int i = 0; i < cut; i++)
        if (gr_model_layer_op(m, i) == GR_OP_MAXPOOL || gr_model_layer_op(m, i) == GR_OP_AVGPOOL) last_pool = i;
    for (int i = last_pool + 1; i < cut && nc < cap; i++)
        if (!strchr(gr_model_layer_name(m, i), '/') && gr_model_layer_op(m, i) != GR_OP_BATCHNORM) cuts[nc++] = i;
    return nc;
}

/* Multiply-adds of node i per image (a proxy for its time): a layer with
 * a kernel, output positions x kernel size; any other, its output size.   */
static double node_cost(const gr_model *m, int i) {
    const gr_node *nd = &m->nodes[i];
    for (int k = 0; k < nd->np; k++)
        if (!strcmp(m->params[nd->p0 + k].kind, "kernel"))
            return (double)nd->oh * nd->ow * (double)m->params[nd->p0 + k].count;
    return (double)nd->oh * nd->ow * nd->oc;
}

/* The unfreeze points for cut (u[0] the shallower training, u[1] the
 * deeper), each moved to where training can start (residual blocks):
 * with two or more pools below the cut, after the last pool (one block)
 * and after the one before (two blocks); in a base without such stages
 * (MobileNet's strided convolutions, ResNet's one stem pool), the block
 * starts where the layers from it to the cut hold the nearest to a third
 * and to a half of the multiply-adds.  Returns how many (0..2).           */
static int unfreeze_points(const gr_model *m, int cut, int *u) {
    int pools[2] = {-1, -1};
    for (int i = 0; i < cut; i++)
        if (gr_model_layer_op(m, i) == GR_OP_MAXPOOL || gr_model_layer_op(m, i) == GR_OP_AVGPOOL) {
            pools[1] = pools[0];
            pools[0] = i;
        }
    int n = 0;
    if (pools[1] >= 0) {
        for (int k = 0; k < 2; k++) {
            if (pools[k] < 0 || pools[k] + 1 > cut) continue;
            int s = gr_model_train_start(m, pools[k] + 1);
            if (s <= 0 || (n > 0 && s == u[n - 1])) continue;
            u[n++] = s;
        }
        return n;
    }
    double total = 0, above = 0;
    for (int i = 0; i <= cut; i++) total += node_cost(m, i);
    if (!(total > 0)) return 0;
    static const double want[2] = {1.0 / 3, 0.5};
    int pick[2] = {-1, -1};
    double dist[2] = {INFINITY, INFINITY};
    for (int i = cut; i >= 1; i--) {   /* above: the cost of nodes i..cut */
        above += node_cost(m, i);
        if (gr_model_train_start(m, i) != i) continue;
        for (int k = 0; k < 2; k++)
            if (fabs(above / total - want[k]) < dist[k]) dist[k] = fabs(above / total - want[k]), pick[k] = i;
    }
    for (int k = 0; k < 2; k++)
        if (pick[k] > 0 && (n == 0 || pick[k] != u[n - 1])) u[n++] = pick[k];
    return n;
}

/* Opens the training data for base k at size x size. */
static gr_dataset *open_at(const planner *p, int k, int size, gr_recipe *rc, gr_error *err) {
    int nh, nw;
    if (cli_base_defaults(p->bases[k], &nh, &nw, rc, err)) return NULL;
    cli_recipe_apply(&p->t->d, rc);
    return cli_open_data(p->t->data, &p->t->d, GR_SPLIT_TRAIN, size, size, nh, nw, rc, err);
}

/* img/s of the frozen part up to node `upto`, decoding included: a few
 * batches through the batcher (the first one warms up).                   */
static double measure_forward(gr_model *m, gr_dataset *ds, int upto, int batch, gr_error *err) {
    int n = gr_dataset_count(ds), use = n < 5 * batch ? n : 5 * batch, h, w;
    gr_dataset_size(ds, &h, &w);
    /* the first `use` samples (a NULL index list would be all of them: a
     * whole features pass where five batches tell the rate) */
    int *idx = gr_malloc((size_t)use * sizeof(int), err);
    if (!idx) return NAN;
    for (int i = 0; i < use; i++) idx[i] = i;
    gr_batcher *b = gr_batcher_new(ds, idx, use, &(gr_batcher_opts){.batch = batch, .threads = 2}, err);
    gr_ctx *cx = gr_ctx_new(m, err);
    float *x = gr_malloc((size_t)batch * h * w * 3 * sizeof(float), err);
    float *o = gr_malloc((size_t)batch * gr_node_size(m, upto) * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    double ips = NAN, t0 = 0;
    int done = 0, got = 0, k = 0;
    if (b && cx && x && o && lab) {
        for (;; k++) {
            if (gr_batcher_next(b, x, lab, &got, err) != GR_OK || got == 0) break;
            if (gr_ctx_run(cx, 0, x, got, upto, o, err) != GR_OK) { got = -1; break; }
            if (k == 0) t0 = now_s();
            else done += got;
        }
        if (got >= 0 && done > 0) ips = done / (now_s() - t0);
        else if (got >= 0) ips = 1e9;   /* (one batch: the data is tiny) */
    }
    gr_batcher_free(b);
    gr_ctx_free(cx);
    free(x); free(o); free(lab); free(idx);
    return ips;
}

/* img/s of training steps from node `first` (inputs: the output of
 * first-1, from augmented batches of ds when the base runs, else random
 * features: the head on the features cache, or from_cache, the steps from
 * the cached prefix); stops after ~1.5 s or 12 steps once 3 are timed.    */
static double measure_steps(gr_model *m, gr_dataset *ds, int first, int head_first, bool from_cache, int batch,
                            uint64_t seed, gr_error *err) {
    gr_trainer_opts to = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.001f, .momentum = 0.9f, .nesterov = true}),
                          .max_batch = batch, .seed = seed, .head_first = head_first,
                          .base_lr_mult = head_first > 0 ? 0.1f : 0};
    gr_trainer *tr = gr_trainer_new(m, first, &to, err);
    if (!tr) return NAN;
    int h, w, C = gr_dataset_num_classes(ds);
    gr_dataset_size(ds, &h, &w);
    bool base_runs = !from_cache && first > 0 && gr_model_layer_frozen(m, 0);
    size_t F = (size_t)gr_node_size(m, first - 1);
    float *x = gr_malloc((size_t)batch * h * w * 3 * sizeof(float), err), *xb = gr_malloc((size_t)batch * F * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_batcher *b = base_runs ? gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){.batch = batch, .threads = 2,
                                               .shuffle = true, .seed = seed, .pad = 4, .hflip = true}, err) : NULL;
    double ips = NAN;
    if (x && xb && lab && (b || !base_runs)) {
        gr_rng r;
        gr_rng_seed(&r, seed);
        for (size_t i = 0; i < (size_t)batch * F; i++) xb[i] = (float)gr_rng_uniform(&r) * 2 - 1;
        for (int i = 0; i < batch; i++) lab[i] = i % C;
        double t0 = 0;
        int done = 0;
        for (int k = 0; k < 14; k++) {
            int got = batch;
            if (base_runs) {
                if (gr_batcher_next(b, x, lab, &got, err) != GR_OK) break;
                if (got == 0 && (gr_batcher_next(b, x, lab, &got, err) != GR_OK || got == 0)) break;
                if (gr_ctx_run(gr_trainer_ctx(tr), 0, x, got, first - 1, xb, err) != GR_OK) break;
            }
            float loss;
            int correct;
            if (gr_trainer_step(tr, xb, lab, got, &loss, &correct, err) != GR_OK) break;
            if (k <= 1) { t0 = now_s(); continue; }   /* (two steps warm up: primitives, buffers) */
            done += got;
            if (k >= 4 && now_s() - t0 > 1.5) break;
        }
        if (done > 0) ips = done / (now_s() - t0);
    }
    gr_batcher_free(b);
    gr_trainer_free(tr);
    free(x); free(xb); free(lab);
    return ips;
}

/* Throughput of one probed (base, size) at its best cut: the features
 * pass, the head on cached features, fine-tuning from each unfreeze point.
 * m: the base loaded at that size (changed: cut, standardize, head).      */
static int measure(planner *p, probed *q, gr_model *m, gr_dataset *ds, gr_error *err) {
    const train_args *t = p->t;
    int batch = t->batch > 0 ? t->batch : 32;
    q->feat_ips = isnan(p->fake.feat) ? measure_forward(m, ds, q->cut, 64, err) : p->fake.feat;
    if (isnan(q->feat_ips)) return -1;
    /* fine-tuning only from a cut in the base's upper half: the first
     * blocks' features are generic and unstable to train on few images */
    q->nu = q->cut >= cli_default_cut(m) / 2 ? unfreeze_points(m, q->cut, q->u) : 0;
    for (int k = 0; k < q->nu; k++) {
        snprintf(q->u_name[k], sizeof q->u_name[k], "%s", gr_model_layer_name(m, q->u[k]));
    }
    if (gr_model_truncate(m, q->cut, err) != GR_OK) return -1;
    gr_layer_spec sd;
    memset(&sd, 0, sizeof sd);
    sd.op = GR_OP_STANDARDIZE;
    if (gr_model_append(m, gr_named(sd, "standardize"), err) < 0) return -1;
    char head[128];
    snprintf(head, sizeof head, "flatten,dense:1024:relu,dense:%d:softmax", p->classes);
    if (cli_append_head(m, t->head ? t->head : head, p->classes, err)) return -1;
    gr_model_init_params(m, q->cut + 1, t->seed);
    float *sdv = gr_param_data(m, m->nodes[q->cut + 1].p0 + 1);   /* std 1 (mean 0): timing only */
    for (int64_t i = 0; i < gr_node_size(m, q->cut); i++) sdv[i] = 1;
    m->w_version++;
    gr_model_freeze_upto(m, q->cut);
    /* each epoch ends with a checkpoint (the model and the optimizer's
     * state, written and fsynced): ~0.1 s plus the bytes at ~150 MB/s */
    q->epoch_extra_s = 0.1 + 4.0 * (double)(gr_model_param_count(m, false) + 2 * gr_model_param_count(m, true)) / 150e6;
    q->head_ips = isnan(p->fake.head) ? measure_steps(m, ds, q->cut + 1, 0, false, batch, t->seed, err)
                                      : p->fake.head;
    if (isnan(q->head_ips)) return -1;
    for (int k = 0; k < q->nu; k++) {
        double f = k == 0 ? p->fake.ft1 : p->fake.ft2, fc = k == 0 ? p->fake.c1 : p->fake.c2;
        gr_model_freeze_upto(m, q->u[k] - 1);
        q->ft_ips[k] = isnan(f) ? measure_steps(m, ds, q->u[k], q->cut + 1, false, batch, t->seed, err) : f;
        if (isnan(q->ft_ips[k])) return -1;
        /* the cached prefix: the crop and flip on the cached map of the
         * layers below u (and its mirror), when it takes at most half of
         * the memory budget as gr_fit keeps it (float16, or float32 with
         * GRAFT_FEATURES_PRECISION=fp32) */
        double bytes = gr_prefix_cache_bytes(p->n_train, (size_t)gr_node_size(m, q->u[k] - 1),
                                             gr_features_env_fp32() != 1, true);
        q->cached[k] = !t->no_cache && !p->fake.no_prefix && !(t->mixup > 0 || t->cutmix > 0 || t->rrc > 0) &&
                       gr_prefix_cache_fits(bytes);
        if (!q->cached[k]) continue;
        q->prefix_ips[k] = isnan(p->fake.prefix) ? measure_forward(m, ds, q->u[k] - 1, 64, err) : p->fake.prefix;
        if (isnan(q->prefix_ips[k])) return -1;
        q->cached_ips[k] = isnan(fc) ? measure_steps(m, ds, q->u[k], q->cut + 1, true, batch, t->seed, err) : fc;
        if (isnan(q->cached_ips[k])) return -1;
    }
    return 0;
}

/* Probes base k at size s, scoring the candidate cuts from node min_cut on
 * (-1: all): the best cut's score, then its throughput.  1 probed, 0 the
 * base cannot run at that size (skipped), -1 + *err.                      */
static int probe_size(planner *p, int k, int s, int min_cut, gr_error *err) {
    const train_args *t = p->t;
    gr_recipe rec;
    gr_dataset *ds = open_at(p, k, s, &rec, err);
    if (!ds) return -1;
    if (p->n_train == 0) {
        p->n_train = gr_dataset_count(ds);
        p->classes = gr_dataset_num_classes(ds);
        if (cli_check_training_classes(ds, t->data, err)) { gr_dataset_free(ds); return -1; }
    }
    gr_error lerr = {0};
    gr_model *m = cli_load_base(p->bases[k], p->weights[k], s, s, false, t->weights_partial, NULL, &lerr);
    if (!m) {
        gr_dataset_free(ds);
        if (lerr.code == GR_ERR_SHAPE || lerr.code == GR_ERR_ARG) {   /* too small for this base */
            if (p->say) printf("budget: %s at %dx%d: skipped (%s)\n", p->bases[k], s, s, lerr.msg);
            return 0;
        }
        *err = lerr;
        gr_error_prefix(err, "--base %s", p->bases[k]);
        return -1;
    }
    int cuts[256], nc = candidate_cuts(m, cuts, 256), nr = 0;
    if (p->fake.default_cut) cuts[0] = cli_default_cut(m), nc = 1;
    int kept = 0;
    for (int i = 0; i < nc; i++)
        if (cuts[i] >= min_cut) cuts[kept++] = cuts[i];
    if (kept > 0) nc = kept;   /* (none: a base whose cuts differ by size; all of them) */
    gr_probe_row *rows = calloc((size_t)nc, sizeof *rows);
    if (!rows) { gr_model_free(m); gr_dataset_free(ds); gr_error_set(err, GR_ERR_NOMEM, "out of memory"); return -1; }
    double t0 = now_s();
    gr_probe_opts po = {.samples = p->samples, .seed = t->seed, .batch = 64};
    gr_status st = gr_probe_cuts(m, ds, cuts, nc, &po, rows, &nr, NULL, err);
    int rc = -1;
    if (st == GR_OK) {
        char bl[256];
        probed *q = &p->pr[p->np];
        memset(q, 0, sizeof *q);
        int b = gr_probe_pick(rows, nr);
        const gr_probe_score *sc = rows[b].use_flat ? &rows[b].flat : &rows[b].pooled;
        q->base = k, q->size = s, q->cut = rows[b].node, q->probe = sc->ridge_acc;
        q->probe_s = now_s() - t0;
        q->n_cuts = nr;
        for (int i = 0; i < nr; i++) q->n_from_best += rows[i].node >= q->cut;
        snprintf(q->cut_name, sizeof q->cut_name, "%s", rows[b].name);
        if (p->say)
            printf("budget: probed %s at %dx%d: %d cuts on %d images in %.1fs; best cut '%s' (ridge %.4f)\n",
                   base_label(p->bases[k], bl, sizeof bl), s, s, nr, p->samples < p->n_train ? p->samples : p->n_train, q->probe_s,
                   q->cut_name, q->probe);
        fflush(stdout);
        rc = measure(p, q, m, ds, err) ? -1 : 1;
        if (rc == 1) p->np++;
    } else {
        gr_error_prefix(err, "--budget: probing %s at %dx%d", p->bases[k], s, s);
    }
    free(rows);
    gr_model_free(m);
    gr_dataset_free(ds);
    return rc;
}

/* The bases: --base's list, else those whose ImageNet weights are on this
 * machine (cache or mirror: no download).                                 */
static int list_bases(planner *p, gr_error *err) {
    const train_args *t = p->t;
    if (t->base) {
        snprintf(p->list, sizeof p->list, "%s", t->base);
        snprintf(p->wlist, sizeof p->wlist, "%s", t->weights);
        char *save = NULL;
        for (char *tok = strtok_r(p->list, ",", &save); tok && p->nb < MAX_BASES; tok = strtok_r(NULL, ",", &save))
            p->bases[p->nb++] = tok;
        int nw = 0;
        save = NULL;
        for (char *tok = strtok_r(p->wlist, ",", &save); tok && nw < MAX_BASES; tok = strtok_r(NULL, ",", &save))
            p->weights[nw++] = tok;
        if (nw != 1 && nw != p->nb) {
            gr_error_set(err, GR_ERR_ARG, "--weights: give one value or one per base (%d bases, %d weights)", p->nb, nw);
            return -1;
        }
        for (int k = nw; k < p->nb; k++) p->weights[k] = p->weights[0];
        return 0;
    }
    static const char *const known[][2] = {{"tiny-darknet", "weights"}, {"resnet50", NULL}, {"vgg16", NULL}};
    gr_fetch_opts fo = {.offline = true, .quiet = true};
    for (int k = 0; k < 3; k++) {
        char path[4096];
        gr_error e = {0};
        if (gr_fetch_resolve(known[k][0], known[k][1], &fo, path, sizeof path, &e) == GR_OK) {
            p->bases[p->nb] = known[k][0];
            p->weights[p->nb++] = "imagenet";
        }
    }
    if (p->nb == 0) {
        gr_error_set(err, GR_ERR_ARG, "--budget: no base given and no pretrained base on this machine (none of "
                     "tiny-darknet, resnet50, vgg16 is in the cache or a mirror): give --base, or graft fetch one");
        return -1;
    }
    return 0;
}

/* Probes each base at sizes 32, 64, ... up to its own input size, while the
 * score improves and the next probe and features pass fit their share.     */
static int probe_all(planner *p, gr_error *err) {
    static const int ladder[MAX_SIZES] = {32, 64, 96, 128, 160, 224};
    double probe_share = 0.08 * p->budget / p->nb;
    for (int k = 0; k < p->nb; k++) {
        int nh, nw;
        gr_recipe rc;
        if (cli_base_defaults(p->bases[k], &nh, &nw, &rc, err)) { gr_error_prefix(err, "--base %s", p->bases[k]); return -1; }
        int native = nh < nw ? nh : nw;
        double t_base = now_s(), best = -1;
        const probed *bq = NULL;   /* the best size so far */
        for (int i = 0; i < MAX_SIZES && ladder[i] <= (native > 0 ? native : 224); i++) {
            int before = p->np, r = probe_size(p, k, ladder[i], ladder[i] > 64 && bq ? bq->cut : -1, err);
            if (r < 0) return -1;
            if (r == 0 || p->np == before) continue;
            const probed *q = &p->pr[p->np - 1];
            if (q->probe < best - 0.005) break;   /* the score went down: larger is not better here */
            if (q->probe > best) best = q->probe, bq = q;
            if (i + 1 >= MAX_SIZES) break;
            double grow = (double)ladder[i + 1] * ladder[i + 1] / ((double)ladder[i] * ladder[i]);
            /* the next probe scores the cuts from the best one on: its share of this probe's cuts */
            double cut_share = ladder[i + 1] > 64 && q->n_cuts > 0 ? (double)bq->n_from_best / q->n_cuts : 1;
            if (cut_share > 1) cut_share = 1;
            double next_probe = q->probe_s * grow * cut_share, next_feat = p->n_train / q->feat_ips * grow;
            if ((ladder[i + 1] > 64 && now_s() - t_base + next_probe > probe_share) || next_feat > 0.5 * p->budget)
                break;   /* (32 and 64 are always tried when their features pass fits) */
        }
    }
    if (p->np == 0) {
        gr_error_set(err, GR_ERR_ARG, "--budget: no base could be probed on %s", p->t->data);
        return -1;
    }
    return 0;
}

/* The candidates: per probed (base, size), frozen and fine-tuning from each
 * unfreeze point.                                                          */
static int make_cands(const planner *p, gr_plan_cand *c) {
    int n = 0;
    for (int i = 0; i < p->np; i++) {
        const probed *q = &p->pr[i];
        for (int k = -1; k < q->nu; k++) {
            gr_plan_cand *x = &c[n++];
            memset(x, 0, sizeof *x);
            x->base = i;   /* (index into pr) */
            x->size = q->size;
            x->cut = q->cut;
            snprintf(x->cut_name, sizeof x->cut_name, "%s", q->cut_name);
            x->mode = k < 0 ? GR_PLAN_FROZEN : GR_PLAN_FINETUNE;
            x->unfreeze = k < 0 ? -1 : q->u[k];
            if (k >= 0) snprintf(x->unfreeze_name, sizeof x->unfreeze_name, "%s", q->u_name[k]);
            x->group = q->base;
            x->probe = q->probe;
            x->feat_ips = q->feat_ips;
            x->step_ips = k < 0 ? q->head_ips : q->ft_ips[k];
            x->eval_ips = q->feat_ips;
            x->epoch_extra_s = q->epoch_extra_s;
            if (k < 0) {   /* each epoch's validation: the head on cached features */
                x->val_ips = 3 * x->step_ips;
                continue;
            }
            /* fine-tuning (the plan adds --tta flip: validation and the test
             * score each image and its mirror): validation runs the whole
             * model, or from the cached prefix the trained layers (a forward
             * ~ a third of a training step, twice); the cached prefix's pass
             * covers the images and their mirrors */
            x->eval_passes = 2;
            x->val_ips = q->feat_ips / 2;
            if (q->cached[k]) {
                x->cached = true;
                x->once_passes = 2;
                x->feat_ips = q->prefix_ips[k];
                x->step_ips = q->cached_ips[k];
                x->val_ips = 1.5 * q->cached_ips[k];
            }
        }
    }
    return n;
}

/* A darknet node "9/conv" reads as its layer "9"; an imported layer's
 * name loses its model scope ("MobilenetV2/expanded_conv_13/expand/Relu6"
 * reads "expanded_conv_13/expand/Relu6": the plan's JSON keeps the name). */
static const char *short_name(const char *s, char *buf, size_t cap) {
    const char *a = strchr(s, '/');
    if (a && strchr(a + 1, '/')) s = a + 1;
    snprintf(buf, cap, "%s", s);
    char *sl = strstr(buf, "/conv");
    if (sl && !sl[5]) *sl = 0;
    return buf;
}

static void cand_label(const planner *p, const gr_plan_cand *c, char *buf, size_t cap) {
    char u[64], bl[256];
    const probed *q = &p->pr[c->base];
    char cn[64];
    short_name(c->cut_name, cn, sizeof cn);
    if (c->mode == GR_PLAN_FROZEN)
        snprintf(buf, cap, "%s %dx%d cut %s, frozen", base_label(p->bases[q->base], bl, sizeof bl), c->size, c->size,
                 cn);
    else
        snprintf(buf, cap, "%s %dx%d cut %s, from %s%s", base_label(p->bases[q->base], bl, sizeof bl), c->size,
                 c->size, cn, short_name(c->unfreeze_name, u, sizeof u), c->cached ? ", cached" : "");
}

static void print_table(const planner *p, const gr_plan_cand *c, int n, const gr_plan_opts *po) {
    char b1[32], b2[32], label[256];
    printf("budget plan: %s in all, %s spent probing and measuring; %d training images%s", gr_budget_format(po->budget, b1, sizeof b1),
           gr_budget_format(po->spent, b2, sizeof b2), po->n_train, po->n_val ? " (" : "");
    if (po->n_val) printf("%d held out for validation)", po->n_val);
    printf(", %d test images\n", po->n_test);
    int lw = 9;
    for (int i = 0; i < n; i++) {
        cand_label(p, &c[i], label, sizeof label);
        if ((int)strlen(label) > lw) lw = (int)strlen(label);
    }
    printf("%-*s %7s %8s %9s %8s %7s %7s  %s\n", lw, "candidate", "probe", "once s", "s/epoch", "eval s", "fit", "epochs",
           "");
    for (int i = 0; i < n; i++) {
        cand_label(p, &c[i], label, sizeof label);
        printf("%-*s %7.4f %8.1f %9.2f %8.1f %7d %7d  %s\n", lw, label, c[i].probe, c[i].once_s, c[i].epoch_s,
               c[i].eval_s, c[i].epochs_fit > 0 ? c[i].epochs_fit : 0, c[i].epochs,
               c[i].chosen ? "<- chosen" : (c[i].epochs ? "" : "(does not fit)"));
    }
}

/* Why the pick: one line. */
static void say_why(const planner *p, const gr_plan_cand *c, const gr_plan_opts *po, char *buf, size_t cap) {
    char b1[32], b2[32];
    double total = po->spent + c->once_s + c->epochs * c->epoch_s + c->eval_s;
    const char *why = c->mode == GR_PLAN_FINETUNE
                          ? (gr_plan_enough(c, po) ? "fine-tuning fits enough training (8 epochs, or 4 of 6000 steps in all); among "
                                      "those, the best base by its probe score, then the deepest training within "
                                      "0.04 of its best score"
                                    : "fine-tuning fits at least 4 epochs (most epochs among those)")
                          : "no fine-tuning fits 4 epochs: a head on cached features, best probe score";
    snprintf(buf, cap, "%s; %d epochs of ~%.1fs, ~%s planned of %s", why, c->epochs, c->epoch_s,
             gr_budget_format(total, b1, sizeof b1), gr_budget_format(po->budget, b2, sizeof b2));
    (void)p;
}

/* The plan as JSON (saved in the model and checkpoints: --resume goes on
 * with it).                                                                */
static json_object *plan_json(const planner *p, const gr_plan_cand *c, int n, int pick, const gr_plan_opts *po,
                              const char *why) {
    json_object *j = json_object_new_object(), *a = json_object_new_array();
    const gr_plan_cand *x = &c[pick];
    const probed *q = &p->pr[x->base];
    json_object_object_add(j, "base", json_object_new_string(p->bases[q->base]));
    json_object_object_add(j, "weights", json_object_new_string(p->weights[q->base]));
    json_object_object_add(j, "input_size", json_object_new_int(x->size));
    json_object_object_add(j, "cut", json_object_new_string(x->cut_name));
    json_object_object_add(j, "mode", json_object_new_string(x->mode == GR_PLAN_FROZEN ? "frozen" : "finetune"));
    if (x->mode == GR_PLAN_FINETUNE) json_object_object_add(j, "unfreeze", json_object_new_string(x->unfreeze_name));
    json_object_object_add(j, "epochs", json_object_new_int(x->epochs));
    json_object_object_add(j, "lr", json_object_new_double(x->mode == GR_PLAN_FROZEN ? p->t->lr
                                                           : po->n_train >= GR_PLAN_FT_LR_LARGE ? 0.01 : GR_PLAN_FT_LR));
    if (x->mode == GR_PLAN_FINETUNE) json_object_object_add(j, "cached_prefix", json_object_new_boolean(x->cached));
    json_object_object_add(j, "spent_s", json_object_new_double(round(po->spent * 10) / 10));
    json_object_object_add(j, "eval_s", json_object_new_double(round(x->eval_s * 10) / 10));
    json_object_object_add(j, "planned_s", json_object_new_double(
        round((po->spent + x->once_s + x->epochs * x->epoch_s + x->eval_s) * 10) / 10));
    json_object_object_add(j, "why", json_object_new_string(why));
    for (int i = 0; i < n; i++) {
        char label[256];
        cand_label(p, &c[i], label, sizeof label);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "candidate", json_object_new_string(label));
        json_object_object_add(r, "probe", json_object_new_double(round(c[i].probe * 1e4) / 1e4));
        json_object_object_add(r, "once_s", json_object_new_double(round(c[i].once_s * 10) / 10));
        json_object_object_add(r, "epoch_s", json_object_new_double(round(c[i].epoch_s * 100) / 100));
        json_object_object_add(r, "eval_s", json_object_new_double(round(c[i].eval_s * 10) / 10));
        json_object_object_add(r, "epochs_fit", json_object_new_int(c[i].epochs_fit > 0 ? c[i].epochs_fit : 0));
        json_object_object_add(r, "epochs", json_object_new_int(c[i].epochs));
        json_object_object_add(r, "chosen", json_object_new_boolean(c[i].chosen));
        json_object_array_add(a, r);
    }
    json_object_object_add(j, "candidates", a);
    return j;
}

int budget_plan(train_args *t, double t_start, budget_plan_out *out, gr_error *err) {
    planner *p = calloc(1, sizeof *p);
    gr_plan_cand *c = calloc(MAX_CANDS, sizeof *c);
    if (!p || !c) { free(p); free(c); gr_error_set(err, GR_ERR_NOMEM, "out of memory"); return -1; }
    p->t = t, p->out = out, p->t_start = t_start, p->budget = t->budget;
    p->say = !t->quiet;
    read_fake(&p->fake);
    /* the probe's sample: small budgets score fewer images */
    p->samples = t->budget <= 180 ? 300 : t->budget <= 600 ? 800 : t->budget <= 1200 ? 1500 : 2000;
    int rc = -1;
    char b1[32];
    if (p->say) {
        printf("budget: %s for everything (probing, features, training, the --test evaluation); probing "
               "the data\n", gr_budget_format(t->budget, b1, sizeof b1));
        fflush(stdout);
    }
    if (list_bases(p, err)) goto out;
    int n_test = 0;
    if (t->test) {   /* the final evaluation's images (counted now: its time is in the plan) */
        gr_recipe rc0;
        cli_data_opts d = t->d;
        d.split = NULL;
        gr_dataset *ts = NULL;
        int nh, nw;
        if (cli_base_defaults(p->bases[0], &nh, &nw, &rc0, err)) goto out;
        cli_recipe_apply(&t->d, &rc0);
        if (!(ts = cli_open_data(t->test, &d, GR_SPLIT_TEST, 32, 32, nh, nw, &rc0, err))) goto out;
        n_test = gr_dataset_count(ts);
        gr_dataset_free(ts);
    }
    if (probe_all(p, err)) goto out;
    p->n_val = t->val_split > 0 ? (int)lround(p->n_train * t->val_split) : 0;
    if (t->val) p->n_val = 0;   /* (a separate --val set: counted as validation features, roughly) */
    gr_plan_opts po = {.budget = t->budget, .spent = isnan(p->fake.spent) ? now_s() - t_start : p->fake.spent,
                       .n_train = p->n_train - p->n_val, .n_val = p->n_val, .n_test = n_test,
                       .batch = t->batch > 0 ? t->batch : 32};
    int n = make_cands(p, c), pick = gr_plan_choose(c, n, &po);
    if (pick < 0) {
        if (p->say) print_table(p, c, n, &po);
        gr_error_set(err, GR_ERR_ARG, "--budget %s: no candidate fits (the features pass and one epoch of the "
                     "fastest take longer than the time left): give a longer budget or a smaller --data",
                     gr_budget_format(t->budget, b1, sizeof b1));
        goto out;
    }
    const gr_plan_cand *x = &c[pick];
    const probed *q = &p->pr[x->base];
    char why[512];
    say_why(p, x, &po, why, sizeof why);
    if (p->say) {
        print_table(p, c, n, &po);
        printf("budget: %s\n", why);
        fflush(stdout);
    }
    json_object *j = plan_json(p, c, n, pick, &po, why);
    int len = snprintf(out->json, sizeof out->json, "%s", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    if (t->json) printf("{\"event\": \"plan\", \"budget_s\": %.1f, \"plan\": %s}\n", t->budget, out->json);
    json_object_put(j);
    if (len < 0 || (size_t)len >= sizeof out->json) {
        gr_error_set(err, GR_ERR_ARG, "--budget: the plan is too long to record");
        goto out;
    }
    snprintf(out->base, sizeof out->base, "%s", p->bases[q->base]);
    snprintf(out->weights, sizeof out->weights, "%s", p->weights[q->base]);
    snprintf(out->cut, sizeof out->cut, "%s", x->cut_name);
    snprintf(out->unfreeze, sizeof out->unfreeze, "%s", x->unfreeze_name);
    out->eval_s = x->eval_s;
    /* the plan as options */
    t->base = out->base;
    t->weights = out->weights;
    t->cut = out->cut;
    t->h = t->w = x->size;
    t->epochs = x->epochs;
    if (x->mode == GR_PLAN_FINETUNE) {   /* (the hand-tuned recipe's: base at 0.1x, crop + flip, 1 warm-up epoch) */
        /* lr 0.01 (the hand-tuned recipes') from GR_PLAN_FT_LR_LARGE
         * training images; below, 0.005: 0.01 diverged on small sets
         * (160-image Fashion-MNIST, cut 14 from 9: a non-finite gradient in
         * epoch 4) */
        t->lr = po.n_train >= GR_PLAN_FT_LR_LARGE ? 0.01f : GR_PLAN_FT_LR;
        /* issue 19's levers that cost no epochs: label smoothing 0.1 and
         * the test-time flip (both kept when given); the cached prefix
         * where it fits in memory (measured into the plan) */
        if (!t->smoothing_given) t->smoothing = 0.1f;
        if (!t->tta || !strcmp(t->tta, "none")) t->tta = "flip";
        t->cache_prefix = x->cached;
        t->unfreeze = out->unfreeze;
        t->warmup = x->epochs >= 6 ? 1 : 0;
        t->augment = 1;
        t->base_lr_mult = 0.1f;
        t->base_lr_mult_given = 1;
    }
    t->plan = out->json;
    rc = 0;
out:
    free(c);
    free(p);
    return rc;
}
