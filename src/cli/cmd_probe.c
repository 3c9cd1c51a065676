/* cmd_probe.c — `graft probe`: which base, which cut, by measurement.
 * Each base runs once over a stratified sample of the training data; the
 * features at every candidate cut are scored by a ridge linear probe
 * (k-fold CV accuracy) and LogME (src/train/probe*.c); prints a table and
 * the recommendation (or --json). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "dist/dist.h"

#define MAX_BASES 16
#define MAX_CUTS 256

typedef struct {
    const char *name, *weights;
    char label[512];     /* the name, plus the weights' file name when two bases share a name */
    char buf[1024];      /* name or weights taken from a comma list (--base A,B --weights W1,W2) */
    char wbuf[1024];
} base_arg;

typedef struct {
    base_arg bases[MAX_BASES];
    int nb, group, samples, folds, batch, threads, flat_max, json, quiet, partial;   /* group: the last --base's first */
    unsigned long long seed;
    const char *data, *cuts;
    cli_data_opts d;
} probe_args;

/* Splits v at commas into at most max items of cap bytes each (out[i]);
 * the count, or -1 for an empty item or one too long.                     */
static int split_list(const char *v, char (*out)[1024], size_t stride, int max) {
    int n = 0;
    for (const char *p = v;; n++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len >= 1024) return -1;
        if (n < max) {
            char *dst = (char *)out + (size_t)n * stride;
            memcpy(dst, p, len);
            dst[len] = 0;
        }
        if (!e) return n + 1;
        p = e + 1;
    }
}

/* --base NAME, or --base A,B,... (as graft train takes it): one base each. */
static int add_base(void *obj, const char *v) {
    probe_args *a = obj;
    int room = MAX_BASES - a->nb;
    if (!strchr(v, ',')) {
        if (room < 1) return cli_usage("at most %d bases", MAX_BASES);
        a->group = a->nb;
        a->bases[a->nb++] = (base_arg){.name = v, .weights = "imagenet"};
        return 0;
    }
    int k = split_list(v, &a->bases[a->nb].buf, sizeof(base_arg), room);
    if (k < 0) return cli_usage("--base '%s': an empty (or over-long) name in the list", v);
    if (k > room) return cli_usage("at most %d bases", MAX_BASES);
    a->group = a->nb;
    for (int i = 0; i < k; i++, a->nb++) {
        a->bases[a->nb].name = a->bases[a->nb].buf;
        a->bases[a->nb].weights = "imagenet";
    }
    return 0;
}

/* --weights W after --base B; --weights W1,W2,... after --base B1,B2,... */
static int set_weights(void *obj, const char *v) {
    probe_args *a = obj;
    if (!a->nb) return cli_usage("--weights '%s' comes before any --base (it applies to the --base before it)", v);
    int k = a->nb - a->group;
    if (k == 1) {
        a->bases[a->nb - 1].weights = v;
        return 0;
    }
    int n = split_list(v, &a->bases[a->group].wbuf, sizeof(base_arg), k);
    if (n != k)
        return cli_usage("--weights '%s' follows a list of %d bases: give %d weights, comma-separated, in the same order",
                         v, k, k);
    for (int i = a->group; i < a->nb; i++) a->bases[i].weights = a->bases[i].wbuf;
    return 0;
}

#define T probe_args
static const cli_opt probe_opts[] = {
    OPT_FUNC("--base", add_base, CLI_BASE_METAVAR, NULL, NULL, "a base to score (repeatable, or a comma-separated list)"),
    OPT_FUNC("--weights", set_weights, "FILE|imagenet|none", NULL, "imagenet", "weights of the --base before it"),
    OPT_FLAG("--weights-partial", partial, 1, "allow weights files that fit only some of a base's layers"),
    OPT_STR("--data", data, "PATH|cifar10|cifar100", NULL, "training data (CIFAR dir/.bin/.tar.gz, image folder, CSV)"),
    OPT_STR("--cuts", cuts, "LIST", "all-pools",
            "comma-separated layer names, 'all-pools' (every pooling layer up to\n"
            "the default cut, and the default cut) and 'default'"),
    OPT_INT("--samples", samples, 1, "2000", "images in the stratified sample"),
    OPT_INT("--folds", folds, 2, "5", "cross-validation folds of the ridge probe"),
    OPT_U64("--seed", seed, "1", "the sample's and the folds' seed"),
    OPT_INT("--batch", batch, 1, "64", "images per forward pass"),
    OPT_THREADS(threads),
    OPT_INT("--flat-max", flat_max, 0, "8192", "largest flattened form scored (0: never)"),
    OPT_JSON_QUIET(json, "machine-readable output", quiet, "no progress on stderr"),
    OPT_DATA_OPTIONS(d),
    OPT_END};
#undef T

static const cli_cmd probe_cmd = {
    .name = "probe",
    .intro = "usage: graft probe --base BASE [--weights W] [--base BASE2 [--weights W2] ...] --data DATA [options]\n"
             "\n"
             "Scores where to cut each base for DATA: runs the base once over a stratified\n"
             "sample, takes the features at every candidate cut, and scores each with a\n"
             "ridge linear probe (5-fold CV accuracy on standardized features) and LogME\n"
             "(You et al., 2021; mean log evidence per sample).  Spatial cuts are scored\n"
             "global-average-pooled (gap) and, when h*w*c <= 8192, flattened (flat).\n"
             "The recommendation: the best probe accuracy, then LogME, then the shallower cut.\n"
             "\n",
    .opts = probe_opts};

/* Appends the node of each item of the --cuts list to cuts; -1 + *err on an unknown name. */
static int resolve_cuts(const gr_model *m, const char *base, const char *list, int *cuts, int *n,
                        gr_error *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    int def = cli_default_cut(m);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "all-pools")) {
            int k = gr_probe_pool_cuts(m, def, cuts + *n, MAX_CUTS - *n);
            *n += k < MAX_CUTS - *n ? k : MAX_CUTS - *n;
            continue;
        }
        int node = !strcmp(tok, "default") ? def : cli_find_layer(m, "--cuts", base, tok, err);
        if (node < 0) return -1;
        if (*n < MAX_CUTS) cuts[(*n)++] = node;
    }
    if (*n == 0) {
        gr_error_set(err, GR_ERR_ARG, "--cuts '%s': no layers given", list);
        return -1;
    }
    return 0;
}

static void json_score(const gr_probe_score *s) {   /* (NaN/Inf: null, as JSON has no such numbers) */
    printf("{\"form\": \"%s\", \"features\": %d, \"ridge_acc\": ", gr_probe_form_name(s->form), s->features);
    cli_json_number(s->ridge_acc);
    printf(", \"ridge_lambda\": ");
    if (isfinite(s->ridge_lambda)) printf("%g", s->ridge_lambda);
    else printf("null");
    printf(", \"logme\": ");
    cli_json_number(s->logme);
    printf(", \"seconds\": %.3f}", s->seconds);
}

/* The scores of every (base, cut) and the recommendation. */
typedef struct {
    gr_probe_row *rows;      /* MAX_CUTS per base */
    int n_rows[MAX_BASES], n_samp, classes;
    double base_s[MAX_BASES];
    int best_b, best_r;      /* the recommendation: base, row */
} probe_result;

/* Each base's label: its name, plus the weights' file name when two share a name. */
static void label_bases(probe_args *a) {
    for (int bi = 0; bi < a->nb; bi++) {
        bool shared = false;
        for (int bj = 0; bj < a->nb; bj++) shared |= bj != bi && !strcmp(a->bases[bi].name, a->bases[bj].name);
        const char *wb = strrchr(a->bases[bi].weights, '/');
        snprintf(a->bases[bi].label, sizeof a->bases[bi].label, shared ? "%s @%s" : "%s", a->bases[bi].name,
                 wb ? wb + 1 : a->bases[bi].weights);
    }
}

/* Runs base bi over the sample of the data at path and scores its cuts
 * into res.  0 ok, -1 + *err.                                            */
static int probe_base(const probe_args *a, int bi, const char *path, probe_result *res, gr_error *err) {
    const base_arg *ba = &a->bases[bi];
    int nh, nw, dh, dw, nc = 0, cuts[MAX_CUTS], rc = -1;
    gr_recipe recipe;
    gr_model *m = NULL;
    if (cli_base_defaults(ba->name, &nh, &nw, &recipe, err)) return -1;
    cli_recipe_apply(&a->d, &recipe);
    gr_dataset *ds = cli_open_data(path, &a->d, GR_SPLIT_TRAIN, a->d.h, a->d.w, nh, nw, &recipe, err);
    if (!ds) return -1;
    gr_dataset_size(ds, &dh, &dw);
    res->classes = gr_dataset_num_classes(ds);
    if (bi == 0 && cli_check_training_classes(ds, a->data, err)) goto out;
    if (!(m = cli_load_base(ba->name, ba->weights, dh, dw, false, a->partial, a->quiet ? NULL : stderr, err))) {
        gr_error_prefix(err, "%s", ba->name);
        goto out;
    }
    gr_model_set_recipe(m, &recipe);
    if (resolve_cuts(m, ba->name, a->cuts, cuts, &nc, err)) goto out;
    if (!a->quiet && gr_dist_rank() == 0)   /* (under mpirun, rank 0 reports) */
        fprintf(stderr, "probe: %s at %dx%d (%s) on %s: %d images, %d classes\n", ba->name, dh, dw,
                gr_preprocess_name(gr_norm_preset_of(&recipe.norm)), a->data, gr_dataset_count(ds), res->classes);
    gr_probe_opts po = {.samples = a->samples, .seed = a->seed, .folds = a->folds, .batch = a->batch,
                        .flat_max = a->flat_max ? a->flat_max : -1, .verbose = !a->quiet,
                        .distributed = true};   /* under mpirun (MPI build): sharded features */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (gr_probe_cuts(m, ds, cuts, nc, &po, res->rows + (size_t)bi * MAX_CUTS, &res->n_rows[bi], &res->n_samp,
                      err) != GR_OK) {
        gr_error_prefix(err, "%s", ba->name);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->base_s[bi] = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    rc = 0;
out:
    gr_model_free(m);
    gr_dataset_free(ds);
    return rc;
}

/* The recommendation over every (base, cut): res->best_b, res->best_r. */
static void recommend(int nb, probe_result *res) {
    res->best_b = res->best_r = -1;
    for (int bi = 0; bi < nb; bi++) {
        const gr_probe_row *r = res->rows + (size_t)bi * MAX_CUTS;
        int p = gr_probe_pick(r, res->n_rows[bi]);
        if (p < 0) continue;
        if (res->best_b < 0) { res->best_b = bi, res->best_r = p; continue; }
        const gr_probe_row *cur = res->rows + (size_t)res->best_b * MAX_CUTS + res->best_r, *cand = r + p;
        gr_probe_row pair[2] = {*cur, *cand};
        pair[1].node = pair[0].node + 1;   /* ties between bases go to the earlier --base */
        if (gr_probe_pick(pair, 2) == 1) res->best_b = bi, res->best_r = p;
    }
}

static void print_json(const probe_args *a, const probe_result *res) {
    const gr_probe_row *best = res->rows + (size_t)res->best_b * MAX_CUTS + res->best_r;
    const gr_probe_score *bs = best->use_flat ? &best->flat : &best->pooled;
    printf("{\"data\": ");
    cli_json_string(a->data);
    printf(", \"samples\": %d, \"classes\": %d, \"folds\": %d, \"seed\": %llu, \"rows\": [", res->n_samp,
           res->classes, a->folds, a->seed);
    int first = 1;
    for (int bi = 0; bi < a->nb; bi++)
        for (int k = 0; k < res->n_rows[bi]; k++) {
            const gr_probe_row *r = res->rows + (size_t)bi * MAX_CUTS + k;
            printf("%s\n  {\"base\": ", first ? "" : ",");
            first = 0;
            cli_json_string(a->bases[bi].name);
            printf(", \"weights\": ");
            cli_json_string(a->bases[bi].weights);
            printf(", \"cut\": ");
            cli_json_string(r->name);
            printf(", \"node\": %d, \"shape\": [%d, %d, %d], \"form\": \"%s\", \"fwd_ms_per_image\": %.4f, "
                   "\"pooled\": ", r->node, r->h, r->w, r->c,
                   gr_probe_form_name(r->use_flat ? GR_PROBE_FLAT : r->pooled.form), r->fwd_ms);
            json_score(&r->pooled);
            printf(", \"flat\": ");
            if (r->flat.features) json_score(&r->flat);
            else printf("null");
            printf("}");
        }
    printf("\n], \"best\": {\"base\": ");
    cli_json_string(a->bases[res->best_b].name);
    printf(", \"weights\": ");
    cli_json_string(a->bases[res->best_b].weights);
    printf(", \"cut\": ");
    cli_json_string(best->name);
    printf(", \"node\": %d, \"form\": \"%s\", \"ridge_acc\": ", best->node, gr_probe_form_name(bs->form));
    cli_json_number(bs->ridge_acc);
    printf(", \"logme\": ");
    cli_json_number(bs->logme);
    printf("}}\n");
}

static void print_table(const probe_args *a, const probe_result *res) {
    const gr_probe_row *best = res->rows + (size_t)res->best_b * MAX_CUTS + res->best_r;
    const gr_probe_score *bs = best->use_flat ? &best->flat : &best->pooled;
    printf("probe: %d samples (stratified, seed %llu), %d classes, ridge %d-fold CV accuracy and LogME\n",
           res->n_samp, a->seed, res->classes, a->folds);
    int bw = 4, cw = 3;
    for (int bi = 0; bi < a->nb; bi++) {
        bw = (int)strlen(a->bases[bi].label) > bw ? (int)strlen(a->bases[bi].label) : bw;
        for (int k = 0; k < res->n_rows[bi]; k++) {
            int l = (int)strlen(res->rows[(size_t)bi * MAX_CUTS + k].name);
            cw = l > cw ? l : cw;
        }
    }
    printf("%-*s  %-*s %-14s %-5s %8s %8s %9s %9s %8s\n", bw, "base", cw, "cut", "shape", "form", "features",
           "ridge", "LogME", "fwd ms/im", "probe s");
    for (int bi = 0; bi < a->nb; bi++)
        for (int k = 0; k < res->n_rows[bi]; k++) {
            const gr_probe_row *r = res->rows + (size_t)bi * MAX_CUTS + k;
            char shape[48];
            snprintf(shape, sizeof shape, "%dx%dx%d", r->h, r->w, r->c);
            for (int f = 0; f < 2; f++) {
                const gr_probe_score *s = f ? &r->flat : &r->pooled;
                if (!s->features) continue;
                bool chosen = (f == 1) == r->use_flat;
                bool rec = bi == res->best_b && r == best && chosen;
                char lm[32];   /* LogME is undefined when no feature varies (rank 0) */
                if (isfinite(s->logme)) snprintf(lm, sizeof lm, "%9.4f", s->logme);
                else snprintf(lm, sizeof lm, "%9s", "n/a");
                printf("%-*s  %-*s %-14s %-5s %8d %8.4f %s %9.3f %8.2f%s\n", bw, f ? "" : a->bases[bi].label,
                       cw, f ? "" : r->name, f ? "" : shape, gr_probe_form_name(s->form), s->features,
                       s->ridge_acc, lm, r->fwd_ms, s->seconds,
                       rec ? "  <- recommended" : chosen && r->flat.features ? "  *" : "");
            }
        }
    for (int bi = 0; bi < a->nb; bi++)
        printf("%s: %d cuts in %.1fs\n", a->bases[bi].label, res->n_rows[bi], res->base_s[bi]);
    printf("recommendation: --base %s --weights %s --cut %s (%s features: %s; ridge accuracy %.4f, LogME %.4f)\n",
           a->bases[res->best_b].name, a->bases[res->best_b].weights, best->name, gr_probe_form_name(bs->form),
           bs->form == GR_PROBE_GAP ? "use a head starting with gap" : "use a head starting with flatten",
           bs->ridge_acc, bs->logme);
}

int cmd_probe(int argc, char **argv) {
    probe_args a = {.samples = 2000, .folds = 5, .batch = 64, .flat_max = 8192, .seed = 1, .cuts = "all-pools"};
    int rc = cli_parse(&probe_cmd, argc, argv, &a);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!a.nb) return cli_usage("--base is required (see graft probe --help)");
    if (!a.data) return cli_usage("--data is required (see graft probe --help)");
    gr_set_threads(a.threads);
    label_bases(&a);
    gr_error err = {0};
    char path[4096];
    if (cli_resolve_data(a.data, path, sizeof path, &err)) return cli_fail(&err);
    probe_result res = {.rows = calloc((size_t)a.nb * MAX_CUTS, sizeof(gr_probe_row))};
    rc = res.rows ? 0 : (gr_error_set(&err, GR_ERR_NOMEM, "out of memory"), -1);
    for (int bi = 0; bi < a.nb && !rc; bi++) rc = probe_base(&a, bi, path, &res, &err);
    if (rc) {
        free(res.rows);
        return cli_fail(&err);
    }
    recommend(a.nb, &res);
    if (a.json) print_json(&a, &res);
    else print_table(&a, &res);
    free(res.rows);
    return 0;
}
