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

static void usage(FILE *f) {
    fprintf(f,
"usage: graft probe --base BASE [--weights W] [--base BASE2 [--weights W2] ...] --data DATA [options]\n"
"\n"
"Scores where to cut each base for DATA: runs the base once over a stratified\n"
"sample, takes the features at every candidate cut, and scores each with a\n"
"ridge linear probe (5-fold CV accuracy on standardized features) and LogME\n"
"(You et al., 2021; mean log evidence per sample).  Spatial cuts are scored\n"
"global-average-pooled (gap) and, when h*w*c <= 8192, flattened (flat).\n"
"The recommendation: the best probe accuracy, then LogME, then the shallower cut.\n"
"\n"
"  --base vgg16|tiny-darknet|darknet:FILE.cfg   (repeatable)\n"
"  --weights FILE|imagenet|none   weights of the --base before it  [imagenet]\n"
"  --weights-partial     allow weights files that fit only some of a base's layers\n"
"  --data PATH|cifar10|cifar100   training data (CIFAR dir/.bin/.tar.gz, image folder, CSV)\n"
"  --cuts LIST           comma-separated layer names, 'all-pools' (every pooling layer up to\n"
"                        the default cut, and the default cut) and 'default'  [all-pools]\n"
"  --samples N [2000]    --folds K [5]   --seed N [1]   --batch N [64]   --threads N [cores]\n"
"  --flat-max N [8192]   largest flattened form scored (0: never)\n"
"  --json                machine-readable output   --quiet   no progress on stderr\n");
    cli_data_help(f, CLI_DATA_ALL);
}

typedef struct {
    const char *name, *weights;
    char label[512];     /* the name, plus the weights' file name when two bases share a name */
} base_arg;

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
        int node = !strcmp(tok, "default") ? def : gr_model_find(m, tok);
        if (node < 0) {
            gr_error_set(err, GR_ERR_ARG, "--cuts: base '%s' has no layer '%s' (graft info --base %s lists them)",
                         base, tok, base);
            return -1;
        }
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

int cmd_probe(int argc, char **argv) {
    base_arg bases[MAX_BASES];
    int nb = 0, samples = 2000, folds = 5, batch = 64, threads = 0, flat_max = 8192;
    int json = 0, quiet = 0, partial = 0;
    unsigned long long seed = 1;
    const char *data = NULL, *cuts_arg = "all-pools";
    cli_data_opts d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        if (!strcmp(a, "--weights-partial")) { partial = 1; continue; }
        int dr = cli_data_option(argc, argv, &i, CLI_DATA_ALL, "probe", &d);
        if (dr == 1) continue;
        if (dr) return dr;
        if (strncmp(a, "--", 2)) return cli_usage("unexpected argument '%s' (see graft probe --help)", a);
        static const char *const known[] = {"--base", "--weights", "--data", "--cuts", "--samples", "--folds",
                                            "--batch", "--threads", "--flat-max", "--seed", NULL};
        int k = 0;
        while (known[k] && strcmp(a, known[k])) k++;
        if (!known[k]) return cli_usage("unknown option '%s' (see graft probe --help)", a);
        if (i + 1 >= argc) return cli_usage("%s needs a value (see graft probe --help)", a);
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--base")) {
            if (nb == MAX_BASES) return cli_usage("at most %d --base options", MAX_BASES);
            bases[nb++] = (base_arg){.name = v, .weights = "imagenet"};
        } else if (!strcmp(a, "--weights")) {
            if (!nb) return cli_usage("--weights '%s' comes before any --base (it applies to the --base before it)", v);
            bases[nb - 1].weights = v;
        } else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--cuts")) cuts_arg = v;
        else if (!strcmp(a, "--samples")) bad = cli_parse_int(v, &samples) || samples <= 0;
        else if (!strcmp(a, "--folds")) bad = cli_parse_int(v, &folds) || folds < 2;
        else if (!strcmp(a, "--batch")) bad = cli_parse_int(v, &batch) || batch <= 0;
        else if (!strcmp(a, "--threads")) bad = cli_parse_int(v, &threads) || threads < 0;
        else if (!strcmp(a, "--flat-max")) bad = cli_parse_int(v, &flat_max) || flat_max < 0;
        else if (!strcmp(a, "--seed")) {
            char *end;
            seed = strtoull(v, &end, 10);
            bad = *end || !*v || *v == '-';
        } else return cli_usage("unknown option '%s' (see graft probe --help)", a);
        if (bad) {
            if (!strcmp(a, "--folds")) return cli_usage("--folds '%s': expected an integer >= 2", v);
            if (!strcmp(a, "--threads") || !strcmp(a, "--flat-max") || !strcmp(a, "--seed"))
                return cli_usage("%s '%s': expected a non-negative integer", a, v);
            return cli_usage("%s '%s': expected a positive integer", a, v);
        }
    }
    if (!nb) return cli_usage("--base is required (see graft probe --help)");
    if (!data) return cli_usage("--data is required (see graft probe --help)");
    gr_set_threads(threads);
    for (int bi = 0; bi < nb; bi++) {
        bool shared = false;
        for (int bj = 0; bj < nb; bj++) shared |= bj != bi && !strcmp(bases[bi].name, bases[bj].name);
        const char *wb = strrchr(bases[bi].weights, '/');
        snprintf(bases[bi].label, sizeof bases[bi].label, shared ? "%s @%s" : "%s", bases[bi].name,
                 wb ? wb + 1 : bases[bi].weights);
    }

    gr_error err = {0};
    char path[4096];
    if (cli_resolve_data(data, path, sizeof path, &err)) return cli_fail(&err);
    gr_probe_row *rows = calloc((size_t)nb * MAX_CUTS, sizeof *rows);
    int n_rows[MAX_BASES] = {0}, n_samp = 0, classes = 0, rc = 1, cuts[MAX_CUTS];
    double base_s[MAX_BASES] = {0};
    gr_dataset *ds = NULL;
    gr_model *m = NULL;
    if (!rows) { gr_error_set(&err, GR_ERR_NOMEM, "out of memory"); goto fail; }
    for (int bi = 0; bi < nb; bi++) {
        const base_arg *ba = &bases[bi];
        int nh, nw;
        gr_recipe recipe;
        if (cli_base_defaults(ba->name, &nh, &nw, &recipe, &err)) goto fail;
        cli_recipe_apply(&d, &recipe);
        gr_preprocess prep = recipe.norm;
        if (!(ds = cli_open_data(path, &d, GR_SPLIT_TRAIN, d.h, d.w, nh, nw, &recipe, &err))) goto fail;
        int dh, dw;
        gr_dataset_size(ds, &dh, &dw);
        classes = gr_dataset_num_classes(ds);
        if (bi == 0 && cli_check_training_classes(ds, data, &err)) goto fail;
        if (!(m = cli_load_base(ba->name, ba->weights, dh, dw, false, partial, quiet ? NULL : stderr, &err))) {
            gr_error_prefix(&err, "%s", ba->name);
            goto fail;
        }
        gr_model_set_recipe(m, &recipe);
        int nc = 0;
        if (resolve_cuts(m, ba->name, cuts_arg, cuts, &nc, &err)) goto fail;
        if (!quiet && gr_dist_rank() == 0)   /* (under mpirun, rank 0 reports) */
            fprintf(stderr, "probe: %s at %dx%d (%s) on %s: %d images, %d classes\n", ba->name, dh, dw,
                    gr_preprocess_name(prep), data, gr_dataset_count(ds), classes);
        gr_probe_opts po = {.samples = samples, .seed = seed, .folds = folds, .batch = batch,
                            .flat_max = flat_max ? flat_max : -1, .verbose = !quiet,
                            .distributed = true};   /* under mpirun (MPI build): sharded features */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (gr_probe_cuts(m, ds, cuts, nc, &po, rows + (size_t)bi * MAX_CUTS, &n_rows[bi], &n_samp, &err) != GR_OK) {
            gr_error_prefix(&err, "%s", ba->name);
            goto fail;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        base_s[bi] = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        gr_model_free(m), m = NULL;
        gr_dataset_free(ds), ds = NULL;
    }

    /* the recommendation over every (base, cut) */
    int best_b = -1, best_r = -1;
    for (int bi = 0; bi < nb; bi++) {
        const gr_probe_row *r = rows + (size_t)bi * MAX_CUTS;
        int p = gr_probe_pick(r, n_rows[bi]);
        if (p < 0) continue;
        if (best_b < 0) { best_b = bi, best_r = p; continue; }
        const gr_probe_row *cur = rows + (size_t)best_b * MAX_CUTS + best_r, *cand = r + p;
        gr_probe_row pair[2] = {*cur, *cand};
        pair[1].node = pair[0].node + 1;   /* ties between bases go to the earlier --base */
        if (gr_probe_pick(pair, 2) == 1) best_b = bi, best_r = p;
    }
    const gr_probe_row *best = rows + (size_t)best_b * MAX_CUTS + best_r;
    const gr_probe_score *bs = best->use_flat ? &best->flat : &best->pooled;

    if (json) {
        printf("{\"data\": ");
        cli_json_string(data);
        printf(", \"samples\": %d, \"classes\": %d, \"folds\": %d, \"seed\": %llu, \"rows\": [", n_samp, classes,
               folds, seed);
        int first = 1;
        for (int bi = 0; bi < nb; bi++)
            for (int k = 0; k < n_rows[bi]; k++) {
                const gr_probe_row *r = rows + (size_t)bi * MAX_CUTS + k;
                printf("%s\n  {\"base\": ", first ? "" : ",");
                first = 0;
                cli_json_string(bases[bi].name);
                printf(", \"weights\": ");
                cli_json_string(bases[bi].weights);
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
        cli_json_string(bases[best_b].name);
        printf(", \"weights\": ");
        cli_json_string(bases[best_b].weights);
        printf(", \"cut\": ");
        cli_json_string(best->name);
        printf(", \"node\": %d, \"form\": \"%s\", \"ridge_acc\": ", best->node, gr_probe_form_name(bs->form));
        cli_json_number(bs->ridge_acc);
        printf(", \"logme\": ");
        cli_json_number(bs->logme);
        printf("}}\n");
    } else {
        printf("probe: %d samples (stratified, seed %llu), %d classes, ridge %d-fold CV accuracy and LogME\n",
               n_samp, seed, classes, folds);
        int bw = 4, cw = 3;
        for (int bi = 0; bi < nb; bi++) {
            bw = (int)strlen(bases[bi].label) > bw ? (int)strlen(bases[bi].label) : bw;
            for (int k = 0; k < n_rows[bi]; k++) {
                int l = (int)strlen(rows[(size_t)bi * MAX_CUTS + k].name);
                cw = l > cw ? l : cw;
            }
        }
        printf("%-*s  %-*s %-14s %-5s %8s %8s %9s %9s %8s\n", bw, "base", cw, "cut", "shape", "form", "features",
               "ridge", "LogME", "fwd ms/im", "probe s");
        for (int bi = 0; bi < nb; bi++)
            for (int k = 0; k < n_rows[bi]; k++) {
                const gr_probe_row *r = rows + (size_t)bi * MAX_CUTS + k;
                char shape[48];
                snprintf(shape, sizeof shape, "%dx%dx%d", r->h, r->w, r->c);
                for (int f = 0; f < 2; f++) {
                    const gr_probe_score *s = f ? &r->flat : &r->pooled;
                    if (!s->features) continue;
                    bool chosen = (f == 1) == r->use_flat;
                    bool rec = bi == best_b && r == best && chosen;
                    printf("%-*s  %-*s %-14s %-5s %8d %8.4f %9.4f %9.3f %8.2f%s\n", bw, f ? "" : bases[bi].label,
                           cw, f ? "" : r->name, f ? "" : shape, gr_probe_form_name(s->form), s->features,
                           s->ridge_acc, s->logme, r->fwd_ms, s->seconds,
                           rec ? "  <- recommended" : chosen && r->flat.features ? "  *" : "");
                }
            }
        for (int bi = 0; bi < nb; bi++)
            printf("%s: %d cuts in %.1fs\n", bases[bi].label, n_rows[bi], base_s[bi]);
        printf("recommendation: --base %s --weights %s --cut %s (%s features: %s; ridge accuracy %.4f, LogME %.4f)\n",
               bases[best_b].name, bases[best_b].weights, best->name, gr_probe_form_name(bs->form),
               bs->form == GR_PROBE_GAP ? "use a head starting with gap" : "use a head starting with flatten",
               bs->ridge_acc, bs->logme);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    gr_model_free(m);
    gr_dataset_free(ds);
    free(rows);
    return rc;
}
