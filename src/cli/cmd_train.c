/* cmd_train.c — `graft train`: the seed recipe as one command.
 * Base + weights, cut, freeze, new head, SGD, fit (features cache), save,
 * and optionally the test score.  The run goes in phases over a train_run:
 * outputs, base (a probe picks one of several), model and data, the head
 * (or the --from model), unfreezing, validation and test data, settings,
 * fit, save and test.  The options and settings: train_args.c.          */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dist/dist.h"
#include "train/budget.h"
#include "train.h"

/* One train run: its settings and everything it opened. */
typedef struct {
    train_args t;
    json_object *resume_cfg;     /* --resume: the checkpoint's settings */
    int epochs_done;             /* --resume: the epochs the checkpoint has trained */
    gr_model *m;
    gr_dataset *train, *val, *test;
    int *tr_idx, *va_idx, n_tr, n_va;
    gr_recipe recipe;
    int h, w, base_h, base_w;    /* the input size; the network's own */
    int classes, head_first;
    cli_run rep;
    cli_outputs outs;
    char ckpt[4200];
    char base_list[4096], weights_list[4096];   /* --base B1,B2: the list split in place */
    /* saved in the model; in checkpoints, + where the run writes (room for
     * a --budget plan: budget_plan_out.json, and the paths) */
    char config[40960], ckpt_config[40960];
    gr_fit_opts fo;
    /* --budget: the run's start (monotonic seconds), the budget used before a --resume, the plan */
    double t_start, used_before;
    budget_plan_out *plan;
} train_run;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --budget: plans a new run (train_budget.c), or takes a resumed run's
 * budget back: the checkpoint was written (its mtime) when the run had
 * used mtime - budget_start of it.  0 or -1 + *err.                        */
static int budget_begin(train_run *r, gr_error *err) {
    train_args *t = &r->t;
    if (!(t->budget > 0)) return 0;
    char b1[32], b2[32], b3[32];
    if (t->resume) {
        struct stat sb;
        double used = stat(t->resume, &sb) == 0 ? (double)sb.st_mtime - t->budget_start : 0;
        if (!(used >= 0)) used = 0;
        if (used > t->budget) used = t->budget;
        r->used_before = used;
        t->budget_start = (double)time(NULL) - used;
        if (!t->quiet)
            printf("budget: resuming the plan: %s of %s used, %s left\n", gr_budget_format(used, b1, sizeof b1),
                   gr_budget_format(t->budget, b2, sizeof b2), gr_budget_format(t->budget - used, b3, sizeof b3));
        return 0;
    }
    t->budget_start = (double)time(NULL) - (mono_now() - r->t_start);
    if (!(r->plan = calloc(1, sizeof *r->plan))) return gr_error_set(err, GR_ERR_NOMEM, "out of memory"), -1;
    return budget_plan(t, r->t_start, r->plan, err);
}

/* The training images: those left by --val-split, or the whole --data. */
static int train_count(const train_run *r) { return r->tr_idx ? r->n_tr : gr_dataset_count(r->train); }

/* --budget: the seconds gr_fit may take: what is left, minus the final
 * evaluation's estimate (from the plan) and a margin for saving.          */
static double budget_fit_limit(const train_run *r, int *max_epochs) {
    const train_args *t = &r->t;
    double eval_s = 0;
    json_object *pj = t->plan ? json_tokener_parse(t->plan) : NULL, *v;
    if (pj && json_object_object_get_ex(pj, "eval_s", &v)) eval_s = json_object_get_double(v);
    /* the run may grow when batches run faster than measured: up to the planner's cap */
    int n_train = train_count(r);
    *max_epochs = pj && json_object_object_get_ex(pj, "mode", &v) && !strcmp(json_object_get_string(v), "frozen")
                      ? GR_PLAN_FROZEN_MAX : gr_plan_ft_max_epochs(n_train, r->fo.batch);
    json_object_put(pj);
    double left = t->budget - r->used_before - (mono_now() - r->t_start) - 1.1 * eval_s - 0.5 - 0.005 * t->budget;
    return left > 1 ? left : 1;
}

/* Prints the command that continues an interrupted run: the checkpoint
 * holds every setting (data, --out, schedule, ...), so it is only
 * `graft train --resume CKPT` (CKPT shell-quoted).                         */
static void print_resume_hint(const char *ckpt) {
    fprintf(stderr, "graft: continue with: graft train --resume");
    cli_print_shell_word(stderr, ckpt);
    fputc('\n', stderr);
}

/* Opens a dataset for the network's input size and recipe (h, w = 0: the
 * data's native size, else the network's nh x nw).                        */
static gr_dataset *open_data(const char *arg, const train_args *t, gr_split split, int h, int w, int nh, int nw,
                             const gr_recipe *r, gr_error *err) {
    cli_data_opts d = t->d;
    if (split == GR_SPLIT_TEST) d.split = NULL;   /* --val, --test: their test part; --split is --data's */
    return cli_open_data(arg, &d, split, h, w, nh, nw, r, err);
}

/* The outputs (--out, the checkpoint, --log): checked against the inputs
 * and locked before any work.  0 or the exit code.                        */
static int claim_outputs(train_run *r) {
    const train_args *t = &r->t;
    snprintf(r->ckpt, sizeof r->ckpt, "%s", t->ckpt ? t->ckpt : t->resume ? t->resume : t->out);
    if (!t->ckpt && !t->resume) strncat(r->ckpt, ".ckpt", sizeof r->ckpt - strlen(r->ckpt) - 1);
    cli_outputs_add(&r->outs, "--out", t->out, NULL);
    cli_outputs_add(&r->outs, "--checkpoint", r->ckpt, t->resume);   /* a resumed run rewrites its checkpoint */
    cli_outputs_add(&r->outs, "--log", t->log, NULL);
    cli_outputs_add(&r->outs, "--export-onnx", t->export_onnx, NULL);
    cli_input ins[8] = {{"--data", t->data}, {"--val", t->val}, {"--test", t->test}, {"--weights", t->weights},
                        {"--from", t->from}, {"--resume", t->resume}, {"--base", NULL}, {NULL, NULL}};
    if (t->base && (!strncmp(t->base, "darknet:", 8) || !strncmp(t->base, "tflite:", 7)))
        ins[6].path = strchr(t->base, ':') + 1;
    return cli_outputs_claim(&r->outs, ins, 8);
}

/* Splits a comma list in place; returns the count (at most cap). */
static int split_list(char *s, char **out, int cap) {
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

/* The probe's score of base k at its default cut (or, with --cut auto, its
 * best candidate cut) on a sample of the training data: *acc.  0 or -1.   */
static int score_base(const train_args *t, const char *base, const char *weights, double *acc, gr_error *err) {
    int nh, nw, h, w;
    gr_recipe rc;
    if (cli_base_defaults(base, &nh, &nw, &rc, err)) { gr_error_prefix(err, "--base %s", base); return -1; }
    cli_recipe_apply(&t->d, &rc);
    gr_dataset *ds = open_data(t->data, t, GR_SPLIT_TRAIN, t->h, t->w, nh, nw, &rc, err);
    if (!ds) return -1;
    gr_dataset_size(ds, &h, &w);
    gr_model *m = cli_load_base(base, weights, h, w, false, t->weights_partial, t->quiet ? NULL : stdout, err);
    if (!m) { gr_dataset_free(ds); gr_error_prefix(err, "--base %s", base); return -1; }
    int cut = cli_default_cut(m), cuts[512], nc = 1;
    cuts[0] = cut;
    if (t->cut && !strcmp(t->cut, "auto")) {
        nc = gr_probe_pool_cuts(m, cut, cuts, 256);
        if (nc > 256) nc = 256;
    }
    gr_probe_row *rows = calloc((size_t)nc, sizeof *rows);
    int pick = cut;
    gr_status st = rows ? gr_probe_best_cut(m, ds, cuts, nc, 2000, t->seed, &pick, rows, err)
                        : gr_error_set(err, GR_ERR_NOMEM, "out of memory");
    if (st == GR_OK)
        for (int k = 0; k < nc; k++)
            if (rows[k].node == pick) {
                const gr_probe_score *sc = rows[k].use_flat ? &rows[k].flat : &rows[k].pooled;
                printf("  %-40s cut %-20s ridge %.4f  LogME %8.4f\n", base, rows[k].name, sc->ridge_acc, sc->logme);
                *acc = sc->ridge_acc;
            }
    free(rows);
    gr_model_free(m);
    gr_dataset_free(ds);
    return st == GR_OK ? 0 : -1;
}

/* --base B1,B2,...: probes each base on a stratified sample of the
 * training data and keeps the best by ridge probe accuracy (t->base and
 * t->weights then name it).  0 ok, -1 + *err.                             */
static int pick_base(train_run *r, gr_error *err) {
    train_args *t = &r->t;
    if (!t->base || !strchr(t->base, ',')) return 0;
    char *bases[16], *weights[16];
    snprintf(r->base_list, sizeof r->base_list, "%s", t->base);
    snprintf(r->weights_list, sizeof r->weights_list, "%s", t->weights);
    int nb = split_list(r->base_list, bases, 16), nw = split_list(r->weights_list, weights, 16), best = -1;
    if (nw != 1 && nw != nb) {
        gr_error_set(err, GR_ERR_ARG, "--weights: give one value or one per base (%d bases, %d weights)", nb, nw);
        return -1;
    }
    for (int k = nw; k < nb; k++) weights[k] = weights[0];
    double best_acc = -1;
    printf("--base: probing %d bases on a stratified sample of the training data\n", nb);
    for (int k = 0; k < nb; k++) {
        double acc = -1;
        if (score_base(t, bases[k], weights[k], &acc, err)) return -1;
        if (acc > best_acc) { best_acc = acc; best = k; }
    }
    printf("--base: '%s' (best 5-fold ridge probe accuracy, %.4f)\n", bases[best], best_acc);
    t->base = bases[best];
    t->weights = weights[best];
    return 0;
}

/* The model (--from/--resume's, or the base with its weights), its recipe
 * and the training data.  0 ok, -1 + *err.                                */
static int open_model_data(train_run *r, gr_error *err) {
    train_args *t = &r->t;
    if (t->resume) t->from = t->resume;   /* the checkpoint holds the model too */
    if (t->from) {
        if (!(r->m = gr_model_load(t->from, err))) return -1;
        int c;
        gr_model_layer_shape(r->m, -1, &r->h, &r->w, &c);
        r->base_h = r->h, r->base_w = r->w;
        r->recipe = gr_model_recipe(r->m);
    } else if (cli_base_defaults(t->base, &r->base_h, &r->base_w, &r->recipe, err)) {
        return -1;
    } else {
        r->h = t->h, r->w = t->w;   /* --input-size (0: the data's size, or the base's for folders) */
    }
    cli_recipe_apply(&t->d, &r->recipe);   /* the base's (or model's) recipe, with the options' overrides */
    /* the training data decides the native size (CIFAR stays 32x32; folders: the base's own) */
    r->train = open_data(t->data, t, GR_SPLIT_TRAIN, r->h, r->w, r->base_h, r->base_w, &r->recipe, err);
    if (!r->train) return -1;
    gr_dataset_size(r->train, &r->h, &r->w);
    r->classes = gr_dataset_num_classes(r->train);
    if (cli_check_training_classes(r->train, t->data, err)) return -1;
    char rdesc[400];
    if (!t->quiet)
        printf("data: %s: %d images, %d classes, %dx%d, preprocessing %s (input recipe: %s)\n", t->data,
               gr_dataset_count(r->train), r->classes, r->h, r->w, gr_preprocess_name(gr_norm_preset_of(&r->recipe.norm)),
               gr_recipe_describe(&r->recipe, rdesc, sizeof rdesc));
    if (!t->from) {
        r->m = cli_load_base(t->base, t->weights, r->h, r->w, false, t->weights_partial, t->quiet ? NULL : stdout, err);
        if (!r->m) return -1;
    }
    gr_model_set_recipe(r->m, &r->recipe);   /* saved with the model: eval and predict apply it */
    return 0;
}

/* --cut auto: the candidate cut a linear probe scores best on a sample of
 * the training data (candidates: every pooling layer, the default cut, and
 * each layer output in the last block, after the last pool).  -1 + *err. */
static int auto_cut(train_run *r, int cut, gr_error *err) {
    const gr_model *m = r->m;
    int cuts[512], nc = gr_probe_pool_cuts(m, cut, cuts, 256), last_pool = -1, best = cut;
    if (nc > 256) nc = 256;
    for (int i = 0; i < cut; i++)
        if (gr_model_layer_op(m, i) == GR_OP_MAXPOOL || gr_model_layer_op(m, i) == GR_OP_AVGPOOL) last_pool = i;
    for (int i = last_pool + 1; i < cut && nc < 512; i++)
        if (!strchr(gr_model_layer_name(m, i), '/') && gr_model_layer_op(m, i) != GR_OP_BATCHNORM) cuts[nc++] = i;
    gr_probe_row *rows = calloc((size_t)nc, sizeof *rows);
    if (!rows) return gr_error_set(err, GR_ERR_NOMEM, "out of memory"), -1;
    bool say = !r->t.quiet;
    if (say) printf("--cut auto: probing %d candidate cuts on a stratified sample of the training data\n", nc);
    gr_status st = gr_probe_best_cut(r->m, r->train, cuts, nc, 2000, r->t.seed, &best, rows, err);
    for (int k = 0; k < nc && st == GR_OK && say; k++) {
        const gr_probe_score *sc = rows[k].use_flat ? &rows[k].flat : &rows[k].pooled;
        if (!rows[k].name[0]) continue;
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", rows[k].h, rows[k].w, rows[k].c);
        printf("  %-24s %-12s %-4s ridge %.4f  LogME %8.4f%s\n", rows[k].name, shape, rows[k].use_flat ? "flat" : "gap",
               sc->ridge_acc, sc->logme, rows[k].node == best ? "  <- chosen" : "");
    }
    if (st == GR_OK && say)
        printf("--cut auto: '%s' (best 5-fold ridge probe accuracy; default cut '%s')\n", gr_model_layer_name(m, best),
               gr_model_layer_name(m, cut));
    if (st == GR_OK && cli_run_probe(&r->rep, rows, nc, best, err)) st = err->code;
    free(rows);
    return st == GR_OK ? best : -1;
}

/* A new model: the base cut (--cut), frozen, the standardization and the
 * head (--head) with the data's classes, initialized.  0 ok, -1 + *err.  */
static int build_head(train_run *r, gr_error *err) {
    const train_args *t = &r->t;
    gr_model *m = r->m;
    int cut = cli_default_cut(m), classes = r->classes;
    if (t->cut && !strcmp(t->cut, "auto")) {
        if ((cut = auto_cut(r, cut, err)) < 0) return -1;
    } else if (t->cut && (cut = cli_find_layer(m, "--cut", t->base, t->cut, err)) < 0) {
        return -1;
    }
    if (gr_model_truncate(m, cut, err) != GR_OK) return -1;
    gr_model_freeze_upto(m, cut);
    if (!t->no_standardize) {   /* (its statistics are measured by gr_fit) */
        gr_layer_spec sd;
        memset(&sd, 0, sizeof sd);
        sd.op = GR_OP_STANDARDIZE;
        char name[32] = "standardize";   /* a base may have one already (graft's own ONNX export) */
        for (int k = 2; gr_model_find(m, name) >= 0; k++) snprintf(name, sizeof name, "standardize_%d", k);
        if (gr_model_append(m, gr_named(sd, name), err) < 0) return -1;
    }
    char def[128];
    snprintf(def, sizeof def, "flatten,dense:1024:relu,dense:%d:softmax", classes);
    if (cli_append_head(m, t->head ? t->head : def, classes, err)) return -1;
    int hh, ww, outc;
    gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &hh, &ww, &outc);
    if (outc != classes) {
        gr_error_set(err, GR_ERR_SHAPE, "--head ends with %d outputs but the data has %d classes", outc, classes);
        return -1;
    }
    const char **names = calloc((size_t)classes, sizeof *names);
    if (!names) return gr_error_set(err, GR_ERR_NOMEM, "out of memory"), -1;
    for (int c = 0; c < classes; c++) names[c] = gr_dataset_class_name(r->train, c);
    gr_status st = gr_model_set_classes(m, classes, names, err);
    free(names);
    if (st != GR_OK) return -1;
    gr_model_init_params(m, cut + 1, t->seed);
    return 0;
}

/* --from/--resume: the model must have the data's classes.  0 or -1 + *err. */
static int check_model(train_run *r, gr_error *err) {
    int hh, ww, outc;
    gr_model_layer_shape(r->m, gr_model_num_layers(r->m) - 1, &hh, &ww, &outc);
    if (outc != r->classes) {
        gr_error_set(err, GR_ERR_SHAPE, "%s has %d output classes but %s has %d", r->t.from, outc, r->t.data,
                     r->classes);
        return -1;
    }
    return cli_check_classes(r->m, r->train, r->t.data, r->t.from, err);
}

/* --unfreeze LAYER outside the frozen part: the error names the cut and
 * the layers --unfreeze takes (u < 0: no such layer).                     */
static void unfreeze_error(const train_run *r, int u, gr_error *err) {
    const train_args *t = &r->t;
    char cut_name[128], first[128];   /* darknet layer N's nodes are "N/conv", "N/bn", "N" */
    snprintf(cut_name, sizeof cut_name, "%s",
             r->head_first > 0 ? gr_model_layer_name(r->m, r->head_first - 1) : "(none)");
    snprintf(first, sizeof first, "%s", gr_model_layer_name(r->m, 0));
    first[strcspn(first, "/")] = 0;
    if (u < 0 && t->base)
        gr_error_set(err, GR_ERR_ARG, "--unfreeze %s: the model has no layer '%s'; the base is cut at '%s', so "
                     "--unfreeze takes a layer from '%s' to '%s' (graft info --base %s lists them)", t->unfreeze,
                     t->unfreeze, cut_name, first, cut_name, t->base);
    else if (u < 0)
        gr_error_set(err, GR_ERR_ARG, "--unfreeze %s: the model has no layer '%s'; its frozen part ends at '%s', so "
                     "--unfreeze takes a layer from '%s' to '%s' (graft info %s lists them)", t->unfreeze, t->unfreeze,
                     cut_name, first, cut_name, t->from);
    else
        gr_error_set(err, GR_ERR_ARG, "--unfreeze %s: that layer is above the cut ('%s'), in the trainable head; "
                     "--unfreeze takes a layer from '%s' to '%s'", t->unfreeze, cut_name, first, cut_name);
}

/* --unfreeze LAYER: the frozen prefix ends just before LAYER; the head
 * keeps the full rate.  Sets r->head_first.  0 ok, -1 + *err.             */
static int unfreeze(train_run *r, gr_error *err) {
    const train_args *t = &r->t;
    gr_model *m = r->m;
    r->head_first = t->resume ? t->head_first : 0;   /* a checkpoint's layers keep their frozen flags */
    if (!t->unfreeze || t->resume) return 0;
    char sub[128];   /* a darknet layer N is the nodes "N/conv", "N/bn", "N": start at its first */
    snprintf(sub, sizeof sub, "%s/conv", t->unfreeze);
    int u = gr_model_find(m, sub);
    if (u < 0) u = gr_model_find(m, t->unfreeze);
    /* a block of an imported net ("encoder_layer_1", "layer3/layer3.0"): its first layer,
     * the first whose name is LAYER/... or has /LAYER/ in it */
    size_t ul = strlen(t->unfreeze);
    for (int i = 0; u < 0 && ul && i < gr_model_num_layers(m); i++) {
        const char *nm = gr_model_layer_name(m, i), *p = nm;
        while (u < 0 && (p = strstr(p, t->unfreeze))) {
            if ((p == nm || p[-1] == '/') && p[ul] == '/') u = i;
            p++;
        }
    }
    for (int i = 0; i < gr_model_num_layers(m); i++)
        if (!gr_model_layer_frozen(m, i)) { r->head_first = i; break; }
    if (u < 0 || u >= r->head_first) {
        unfreeze_error(r, u, err);
        return -1;
    }
    int u0 = gr_model_train_start(m, u);
    if (u0 < u && !t->quiet)
        printf("--unfreeze %s: layers after it also read '%s' (a residual connection), so training starts "
               "at '%s'\n", t->unfreeze, gr_model_layer_name(m, u0 - 1), gr_model_layer_name(m, u0));
    u = u0;
    gr_model_freeze_upto(m, u - 1);
    if (!t->quiet) printf("fine-tuning: layers from '%s' on train (%d base layers unfrozen)%s\n",
                          gr_model_layer_name(m, u), r->head_first - u,
                          t->bn_train ? ", batch norm with batch statistics" : "");
    return 0;
}

/* The validation data (--val-split: a part of --data; --val) and --test. */
static int open_val_test(train_run *r, gr_error *err) {
    const train_args *t = &r->t;
    if (t->val_split > 0) {
        if (gr_dataset_split(r->train, t->val_split, t->seed, &r->tr_idx, &r->n_tr, &r->va_idx, &r->n_va, err) != GR_OK)
            return -1;
    } else if (t->val) {
        r->val = open_data(t->val, t, GR_SPLIT_TEST, r->h, r->w, r->h, r->w, &r->recipe, err);
        if (!r->val || cli_check_classes(r->m, r->val, t->val, "the model", err)) return -1;
    }
    if (!t->test) return 0;
    r->test = open_data(t->test, t, GR_SPLIT_TEST, r->h, r->w, r->h, r->w, &r->recipe, err);
    if (!r->test || cli_check_classes(r->m, r->test, t->test, "the model", err)) return -1;
    if (gr_dataset_num_classes(r->test) > r->classes) {   /* found now, not after training */
        gr_error_set(err, GR_ERR_SHAPE, "--test %s has %d classes but the model has %d outputs", t->test,
                     gr_dataset_num_classes(r->test), r->classes);
        return -1;
    }
    return 0;
}

/* gr_fit's options from the settings. */
static void fit_options(train_run *r) {
    const train_args *t = &r->t;
    gr_fit_opts *fo = &r->fo;
    *fo = (gr_fit_opts){.epochs = t->epochs, .batch = t->batch, .seed = t->seed, .label_smoothing = t->smoothing,
                        .no_cache = t->no_cache, .pad = t->augment ? 4 : 0, .hflip = t->augment || t->flip,
                        .cache_prefix = t->cache_prefix, .log_csv = t->log,
                        .verbose = t->quiet ? 0 : 2, .checkpoint = r->ckpt, .stop = NULL, .resume = t->resume,
                        .reuse_statistics = t->from != NULL, .config_json = r->ckpt_config,
                        .keep_best = t->keep && cli_enum_parse(cli_keep_names, t->keep) == CLI_KEEP_BEST,
                        .lr_auto = t->lr_auto, .rrc_scale = t->rrc, .mixup = t->mixup, .cutmix = t->cutmix,
                        .ema = t->ema, .tta_flip = t->tta && !strcmp(t->tta, "flip"),
                        .distributed = true};   /* under mpirun (MPI build): data parallel */
    gr_optim_kind opt = (gr_optim_kind)cli_enum_parse(cli_optimizer_names, t->optimizer);
    /* (parse always sets t->schedule: given, or the default) */
    gr_schedule sched = (gr_schedule)cli_enum_parse(cli_schedule_names, t->schedule);
    fo->optim = opt == GR_OPTIM_SGD
                    ? gr_sgd((gr_sgd_opts){.lr = t->lr, .decay = t->decay, .momentum = t->momentum,
                                           .nesterov = t->nesterov})
                    : (opt == GR_OPTIM_ADAM ? gr_adam(t->lr) : gr_adamw(t->lr, t->weight_decay));
    fo->optim.weight_decay = t->weight_decay;
    fo->optim.schedule = sched;
    if (sched == GR_SCHEDULE_CONSTANT) fo->optim.decay = 0;
    if (opt != GR_OPTIM_SGD && sched == GR_SCHEDULE_INVERSE_TIME) fo->optim.decay = t->decay;
    fo->optim.step_epochs = t->lr_step;
    fo->optim.gamma = t->lr_gamma;
    fo->warmup_epochs = t->warmup;
    fo->patience = t->patience;
    fo->monitor_loss = t->monitor && cli_enum_parse(cli_monitor_names, t->monitor) == CLI_MONITOR_LOSS;
    fo->bn_train = t->bn_train;
    fo->head_first = r->head_first;
    fo->base_lr_mult = t->base_lr_mult;
    if (r->va_idx) { fo->val = r->train; fo->val_idx = r->va_idx; fo->n_val = r->n_va; }
    else if (r->val) fo->val = r->val;
    fo->on_epoch = cli_run_on_epoch;
    fo->on_epoch_ctx = &r->rep;
    if (!fo->log_csv && r->rep.run) fo->log_csv = r->rep.history;
}

/* ^C during gr_fit: says where the run can go on from (rank 0). */
static void report_interrupted(train_run *r, const gr_error *err) {
    if (gr_dist_rank() != 0) return;
    bool written = strstr(err->msg, "checkpoint written to") != NULL;
    fprintf(stderr, "graft: %s\n", err->msg);
    if (written || r->t.resume) {
        if (!written) fprintf(stderr, "graft: the checkpoint %s is as it was\n", r->t.resume);
        print_resume_hint(written ? r->ckpt : r->t.resume);
    } else {
        fprintf(stderr, "graft: no checkpoint yet (stopped before the first training step): run the same "
                "command again to start over\n");
    }
    gr_error e = {0};
    if (cli_run_finish(&r->rep, r->fo.log_csv, true, r->t.quiet, &e)) cli_fail(&e);
}

/* Trains: 0 ok, CLI_EXIT_INTERRUPTED (^C, reported), -1 + *err. */
static int fit(train_run *r, gr_error *err) {
    const train_args *t = &r->t;
    fit_options(r);
    if (cli_run_train_info(&r->rep, &(cli_run_train){.model = r->m, .base = t->base,
            .weights = t->from ? NULL : t->weights, .model_file = t->out, .config_json = r->config,
            .monitor = t->monitor, .epochs = t->epochs, .patience = t->patience, .head_first = r->head_first,
            .lr = t->lr, .base_lr_mult = t->base_lr_mult, .train = r->train, .val = r->va_idx ? r->train : r->val,
            .test = r->test, .train_src = t->data, .val_src = r->va_idx ? t->data : t->val, .test_src = t->test,
            .tr_idx = r->tr_idx, .va_idx = r->va_idx, .n_tr = r->n_tr, .n_va = r->n_va}, err))
        return -1;
    if (t->budget > 0) r->fo.time_limit = budget_fit_limit(r, &r->fo.time_limit_epochs);
    cli_stop stop = {0};
    cli_stop_start(&stop, &r->outs);
    r->fo.stop = stop.flag;
    gr_status st = gr_fit(r->m, r->train, r->tr_idx, r->n_tr, &r->fo, err);
    cli_stop_end(&stop);
    if (st == GR_ERR_INTERRUPTED) {
        report_interrupted(r, err);
        gr_dist_finalize();   /* under mpirun every rank stopped after the same batch: no MPI_Abort */
        return CLI_EXIT_INTERRUPTED;
    }
    return st == GR_OK ? 0 : -1;
}

/* The run's last line under --json: its result. */
static void print_result(const train_run *r, const gr_eval_result *res) {
    printf("{\"event\": \"result\", \"out\": ");
    cli_json_string(r->t.out);
    printf(", \"epochs\": %d, \"classes\": %d, \"samples\": %d", r->t.epochs, r->classes, train_count(r));
    if (r->test) {
        printf(", \"test_loss\": ");
        cli_json_number(res->loss);
        printf(", \"test_accuracy\": ");
        cli_json_number(res->accuracy);
    }
    printf("}\n");
}

/* Saves the model (rank 0), scores --test, finishes the report.  0 or -1 + *err. */
static int save_and_test(train_run *r, gr_error *err) {
    const train_args *t = &r->t;
    if (gr_dist_rank() == 0) {   /* under mpirun, rank 0 writes */
        if (gr_model_save(r->m, t->out, r->config, err) != GR_OK) return -1;
        if (!t->ckpt) unlink(r->ckpt);   /* the default checkpoint (or the one resumed) is only for interruptions */
        if (t->export_onnx && gr_model_export_onnx(r->m, t->export_onnx, NULL, err) != GR_OK) return -1;
    }
    if (!t->quiet) printf("saved %s\n", t->out);
    if (!t->quiet && t->export_onnx) printf("exported %s (ONNX, opset %d)\n", t->export_onnx, GR_ONNX_EXPORT_OPSET);
    cli_run_event(&r->rep, "saved", "model", t->out, NAN, NAN);
    gr_eval_result res = {0};
    int rc = 0;
    if (r->test) {
        if (gr_dist_evaluate(r->m, r->test, t->batch, t->quiet ? NULL : "test", r->fo.tta_flip, &res, err) != GR_OK)
            return -1;   /* (under mpirun: sharded) */
        if (!t->json) printf("Test loss: %.4f\nTest accuracy: %.4f\n", res.loss, res.accuracy);
        cli_run_event(&r->rep, "test", "data", t->test, res.loss, res.accuracy);
        rc = cli_run_eval(&r->rep, r->m, r->test, t->test, &res, err);
    }
    if (!rc && t->budget > 0) {   /* what the budget became */
        double used = r->used_before + mono_now() - r->t_start;
        char b1[32], b2[32];
        if (!t->quiet)
            printf("budget: %s, the run took %s (%.0f%%)%s\n", gr_budget_format(t->budget, b1, sizeof b1),
                   gr_budget_format(used, b2, sizeof b2), 100 * used / t->budget,
                   r->used_before > 0 ? ", counting the time before --resume" : "");
        if (r->rep.run) {
            json_object *b = json_object_new_object();
            json_object_object_add(b, "budget_s", json_object_new_double(t->budget));
            json_object_object_add(b, "used_s", json_object_new_double(round(used * 10) / 10));
            if (gr_report_set(r->rep.run, "budget", b, err) != GR_OK) rc = -1;
        }
    }
    if (!rc) rc = cli_run_finish(&r->rep, r->fo.log_csv, false, t->quiet, err);
    if (!rc && t->json) print_result(r, &res);
    gr_eval_result_free(&res);
    return rc ? -1 : 0;
}

/* Everything up to the fit: the report, the base, the model and data, the
 * head, unfreezing, validation/test data and the settings.  0 or -1.     */
static int prepare(train_run *r, int argc, char **argv, gr_error *err) {
    train_args *t = &r->t;
    if (gr_dist_rank() > 0) t->report = t->tensorboard = NULL;   /* under mpirun rank 0 reports */
    if (cli_run_begin(&r->rep, t->report, t->tensorboard, false, argc, argv, err)) return -1;
    r->rep.json = t->json;
    if (budget_begin(r, err)) return -1;   /* --budget: the plan sets the base, size, cut, epochs... */
    r->rep.epochs = t->epochs;
    if (pick_base(r, err) || open_model_data(r, err)) return -1;
    if (t->from ? check_model(r, err) : build_head(r, err)) return -1;
    if (unfreeze(r, err) || open_val_test(r, err)) return -1;
    if (!t->quiet) gr_model_summary(r->m, stdout);
    if (train_config(t, train_count(r), r->head_first, r->config,
                     sizeof r->config, r->ckpt_config, sizeof r->ckpt_config, err)) return -1;
    if (t->resume && !t->quiet && t->epochs_given)
        printf("--epochs %d: the run goes on from epoch %d%s\n", t->epochs, r->epochs_done,
               cli_enum_parse(cli_schedule_names, t->schedule) == GR_SCHEDULE_COSINE
                   ? " (the cosine schedule now spans the new total)" : "");
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_run *r = calloc(1, sizeof *r);
    if (!r) return cli_failf("out of memory");
    r->t_start = mono_now();
    int rc = train_parse(argc, argv, &r->t, &r->resume_cfg, &r->epochs_done);
    if (rc == CLI_HELP) rc = 0;
    else if (!rc && !(rc = claim_outputs(r))) {
        gr_error err = {0};
        gr_set_threads(r->t.threads);
        cli_stop_prepare();
        rc = prepare(r, argc, argv, &err) ? -1 : fit(r, &err);
        if (!rc) rc = save_and_test(r, &err);
        if (rc < 0) rc = cli_fail(&err);
    }
    cli_outputs_release(&r->outs);
    json_object_put(r->resume_cfg);
    cli_run_free(&r->rep);
    free(r->tr_idx);
    free(r->va_idx);
    gr_dataset_free(r->train);
    gr_dataset_free(r->val);
    gr_dataset_free(r->test);
    gr_model_free(r->m);
    free(r->plan);
    free(r);
    return rc;
}
