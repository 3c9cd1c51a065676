/* cmd_train.c — `graft train`: the seed recipe as one command.
 * Base + weights, cut, freeze, new head, SGD, fit (features cache), save,
 * and optionally the test score. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json.h>
#include <unistd.h>
#include "cli.h"
#include "dist/dist.h"
#include "format/safetensors.h"

/* Prints the command that continues an interrupted run: the checkpoint
 * holds every setting (data, --out, schedule, ...), so it is only
 * `graft train --resume CKPT` (CKPT shell-quoted).                         */
static void print_resume_hint(const char *ckpt) {
    fprintf(stderr, "graft: continue with: graft train --resume");
    cli_print_shell_word(stderr, ckpt);
    fputc('\n', stderr);
}

static void usage(FILE *f) {
    fprintf(f,
"usage: graft train --base BASE --data DATA [options]\n"
"\n"
"Trains a new head on a frozen pretrained base (Keras' transfer-learning recipe).\n"
"\n"
"model:\n"
"  --base vgg16|resnet50|tiny-darknet|darknet:FILE.cfg|tflite:FILE.tflite   the pretrained base;\n"
"                        a comma list (--weights: one value, or one per base) = the base whose\n"
"                        features a linear probe scores best (with --cut auto: at its best cut)\n"
"  --weights FILE|imagenet|none   weights for the base (.h5, .safetensors, .weights;\n"
"                        imagenet = the canonical file, fetched/cached)  [imagenet]; every\n"
"                        weighted layer of the base must load (a tflite: base has its own)\n"
"  --weights-partial     allow a file that fits only some layers (the others stay untrained)\n"
"  --from MODEL          continue training a graft model file instead\n"
"  --cut LAYER|auto      keep the base up to and including LAYER (name or darknet index);\n"
"                        auto = the cut a linear probe scores best (see graft probe)\n"
"                        [whole headless base; darknet: before the last 1000-class conv]\n"
"  --head SPEC           layers after the cut  [flatten,dense:1024:relu,dense:N:softmax]\n"
"                        (flatten, gap, dropout:P, dense:UNITS[:ACT], batchnorm, layernorm; N = classes)\n"
"data:\n"
"  --data PATH|cifar10|cifar100   training data (CIFAR dir/.bin/.tar.gz, image folder, CSV)\n"
"  --val PATH            validation data, or --val-split F  (a seeded stratified split)\n"
"  --test PATH           evaluate on it at the end: prints Test loss / Test accuracy\n"
"  --augment             random crop (pad 4) and horizontal flip (turns the cache off)\n"
"fine-tuning:\n"
"  --unfreeze LAYER      the base trains from LAYER on (e.g. block5_conv1, a darknet index)\n"
"  --base-lr-mult F [1]  learning-rate multiplier for the unfrozen base layers (needs --unfreeze)\n"
"  --bn-train            unfrozen batch norm uses batch statistics (default: stored ones;\n"
"                        needs --unfreeze)\n"
"training (defaults = the seed recipe, but for the schedule):\n"
"  --optimizer sgd|adam|adamw [sgd]   --lr F [0.01; adam/adamw 0.001]   --decay F [1e-6]\n"
"  --weight-decay F [0; adamw 0.01]   --lr-schedule constant|inverse-time|step|cosine\n"
"                        [cosine: from --lr down to 0 over the epochs; inverse-time (Keras'\n"
"                        decay, the seed's) with --no-standardize or an explicit --decay]\n"
"  --lr-step N [10] --lr-gamma F [0.1] (step)   --warmup EPOCHS [0] (fewer than --epochs)\n"
"  --patience N (early stopping, keeps the best)   --monitor val_accuracy|val_loss\n"
"                        (both watch the validation data: --val or --val-split is required)\n"
"  --momentum F [0.9]    --nesterov / --no-nesterov [nesterov]\n"
"  --loss categorical|sparse  (the same math; labels are class indices either way)\n"
"  --label-smoothing F [0]   --epochs N [20]   --batch N [32]   --seed N [1]\n"
"  --threads N [cores]   --no-cache (recompute the base every batch)\n"
"  --no-standardize      the exact Keras recipe: raw features into the head and Keras' decay;\n"
"                        by default a fixed per-feature standardization (training-set mean/std)\n"
"                        precedes the head and the rate follows a cosine schedule\n"
"  --lr auto             pick the learning rate with a range test on the cached features\n"
"  --keep best           end with the weights of the best epoch (val_accuracy, else loss)\n"
"output:\n"
"  --out MODEL [model.gft]   --log FILE.csv   --quiet\n"
"  --json                one JSON object per line on stdout instead of the text: an \"epoch\" event per\n"
"                        epoch (loss, accuracy, val_*, lr, seconds, images_per_second), then \"saved\",\n"
"                        \"test\" (with --test) and last \"result\" (out, epochs, classes, samples, test_*)\n"
"  --report DIR          write the run's record and an HTML report (DIR/index.html: curves, confusion\n"
"                        matrix, most confused images, layers); graft report DIR rebuilds it\n"
"  --tensorboard DIR     per-epoch scalars (loss, accuracy, val_*, lr, images/s) as a TensorBoard event file\n"
"  --checkpoint FILE     written after every epoch and on SIGINT/SIGTERM  [MODEL.ckpt, removed at the end]\n"
"  --resume CKPT         continue a run from its checkpoint (bit-exact): the model, the recipe and\n"
"                        the training settings come from it; --epochs may extend the run\n"
"  outputs are new paths or regular files (symlinks written through), never an input of the\n"
"  run, and locked (<output>.lock) while it lasts; ^C stops after the batch (exit 130), twice: at once\n"
"several processes (an MPI build, make MPI=1):  mpirun -np N graft train ...\n"
"                        data parallel: --batch is the global batch, split over the ranks; each\n"
"                        rank uses cores/ranks-on-its-node threads; rank 0 prints and writes\n"
"data options (shared by every command that reads data; the recipe is saved in the model):\n");
    cli_data_help(f, CLI_DATA_ALL);
    fprintf(f, "exit status: 0 trained, 1 a runtime error, 2 a usage error, 130 interrupted (^C)\n");
}

typedef struct {
    const char *base, *weights, *from, *cut, *head, *data, *val, *test, *out, *log, *ckpt;
    const char *optimizer, *loss, *resume, *keep, *unfreeze, *schedule, *monitor;
    const char *report, *tensorboard;
    cli_data_opts d;         /* --format, --labels, --split, --skip-bad, --input-size, the recipe */
    int h, w, epochs, batch, threads, quiet, json, no_cache, augment, nesterov, no_standardize, lr_auto;
    int decay_given;         /* --decay on the command line: Keras' inverse-time schedule by default */
    int bn_train, lr_step, patience;
    int weights_given, weights_partial;   /* --weights on the command line; --weights-partial */
    int base_lr_mult_given;
    int epochs_given;        /* --epochs on the command line (with --resume: extends the run) */
    int head_first;          /* --resume: the first trained node, from the checkpoint */
    const char *model_opt;   /* the first of --cut/--head/--base given (refused with --resume/--from) */
    float lr, decay, momentum, val_split, smoothing, weight_decay, base_lr_mult, lr_gamma, warmup;
    unsigned long long seed;
} train_args;

#define NEED_VALUE() \
    do { if (i + 1 >= argc) return cli_usage("%s needs a value (see graft train --help)", a); } while (0)

/* A checkpoint's settings (its "config") as the run's starting values:
 * --resume takes every setting from the checkpoint.                       */
static void apply_config(train_args *t, json_object *cfg) {
    json_object_object_foreach(cfg, key, v) {
        const char *sv = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        float fv = (float)json_object_get_double(v);
        int iv = json_object_get_int(v);
        if (!strcmp(key, "data")) t->data = sv;
        else if (!strcmp(key, "out")) t->out = sv ? sv : t->out;
        else if (!strcmp(key, "val")) t->val = sv;
        else if (!strcmp(key, "test")) t->test = sv;
        else if (!strcmp(key, "log")) t->log = sv;
        else if (!strcmp(key, "checkpoint")) t->ckpt = sv;
        else if (!strcmp(key, "optimizer") && sv) t->optimizer = sv;
        else if (!strcmp(key, "loss") && sv) t->loss = sv;
        else if (!strcmp(key, "lr")) { if (sv) t->lr_auto = 1; else t->lr = fv; }
        else if (!strcmp(key, "decay")) t->decay = fv;
        else if (!strcmp(key, "lr_schedule")) t->schedule = sv;
        else if (!strcmp(key, "epochs")) t->epochs = iv;
        else if (!strcmp(key, "momentum")) t->momentum = fv;
        else if (!strcmp(key, "nesterov")) t->nesterov = json_object_get_boolean(v);
        else if (!strcmp(key, "batch")) t->batch = iv;
        else if (!strcmp(key, "seed")) t->seed = (unsigned long long)json_object_get_int64(v);
        else if (!strcmp(key, "label_smoothing")) t->smoothing = fv;
        else if (!strcmp(key, "augment")) t->augment = json_object_get_boolean(v);
        else if (!strcmp(key, "val_split")) t->val_split = fv;
        else if (!strcmp(key, "weight_decay")) t->weight_decay = fv;
        else if (!strcmp(key, "lr_step")) t->lr_step = iv;
        else if (!strcmp(key, "lr_gamma")) t->lr_gamma = fv;
        else if (!strcmp(key, "warmup")) t->warmup = fv;
        else if (!strcmp(key, "patience")) t->patience = iv;
        else if (!strcmp(key, "monitor")) t->monitor = sv;
        else if (!strcmp(key, "keep")) t->keep = sv;
        else if (!strcmp(key, "base_lr_mult")) t->base_lr_mult = fv;
        else if (!strcmp(key, "bn_train")) t->bn_train = json_object_get_boolean(v);
        else if (!strcmp(key, "no_cache")) t->no_cache = json_object_get_boolean(v);
        else if (!strcmp(key, "head_first")) t->head_first = iv;
        else if (!strcmp(key, "format")) t->d.format = sv;
        else if (!strcmp(key, "labels")) t->d.labels = sv;
        else if (!strcmp(key, "split")) t->d.split = sv;
        else if (!strcmp(key, "skip_bad")) t->d.skip_bad = json_object_get_boolean(v);
    }
}

static int parse(int argc, char **argv, train_args *t, json_object *cfg) {
    memset(t, 0, sizeof *t);
    t->weights = "imagenet"; t->out = "model.gft";
    t->epochs = 20; t->batch = 32; t->seed = 1; t->nesterov = 1;
    t->lr = NAN; t->decay = 1e-6f; t->momentum = 0.9f;
    t->optimizer = "sgd"; t->loss = "categorical";
    if (cfg) apply_config(t, cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **sv = NULL;
        int *iv = NULL;
        float *fv = NULL;
        int dr = cli_data_option(argc, argv, &i, CLI_DATA_ALL, "train", &t->d);
        if (dr == 1) continue;
        if (dr) return dr;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--base")) sv = &t->base;
        else if (!strcmp(a, "--weights")) { sv = &t->weights; t->weights_given = 1; }
        else if (!strcmp(a, "--weights-partial")) t->weights_partial = 1;
        else if (!strcmp(a, "--from")) sv = &t->from;
        else if (!strcmp(a, "--cut")) { sv = &t->cut; if (!t->model_opt) t->model_opt = a; }
        else if (!strcmp(a, "--head")) { sv = &t->head; if (!t->model_opt) t->model_opt = a; }
        else if (!strcmp(a, "--data")) sv = &t->data;
        else if (!strcmp(a, "--val")) sv = &t->val;
        else if (!strcmp(a, "--test")) sv = &t->test;
        else if (!strcmp(a, "--out")) sv = &t->out;
        else if (!strcmp(a, "--log")) sv = &t->log;
        else if (!strcmp(a, "--report")) sv = &t->report;
        else if (!strcmp(a, "--tensorboard")) sv = &t->tensorboard;
        else if (!strcmp(a, "--checkpoint")) sv = &t->ckpt;
        else if (!strcmp(a, "--optimizer")) sv = &t->optimizer;
        else if (!strcmp(a, "--loss")) sv = &t->loss;
        else if (!strcmp(a, "--resume")) sv = &t->resume;
        else if (!strcmp(a, "--unfreeze")) sv = &t->unfreeze;
        else if (!strcmp(a, "--lr-schedule")) sv = &t->schedule;
        else if (!strcmp(a, "--monitor")) sv = &t->monitor;
        else if (!strcmp(a, "--lr-step")) iv = &t->lr_step;
        else if (!strcmp(a, "--patience")) iv = &t->patience;
        else if (!strcmp(a, "--weight-decay")) fv = &t->weight_decay;
        else if (!strcmp(a, "--base-lr-mult")) { fv = &t->base_lr_mult; t->base_lr_mult_given = 1; }
        else if (!strcmp(a, "--lr-gamma")) fv = &t->lr_gamma;
        else if (!strcmp(a, "--warmup")) fv = &t->warmup;
        else if (!strcmp(a, "--bn-train")) t->bn_train = 1;
        else if (!strcmp(a, "--keep")) sv = &t->keep;
        else if (!strcmp(a, "--no-standardize")) t->no_standardize = 1;
        else if (!strcmp(a, "--lr") && i + 1 < argc && !strcmp(argv[i + 1], "auto")) { t->lr_auto = 1; i++; }
        else if (!strcmp(a, "--epochs")) { iv = &t->epochs; t->epochs_given = 1; }
        else if (!strcmp(a, "--batch")) iv = &t->batch;
        else if (!strcmp(a, "--threads")) iv = &t->threads;
        else if (!strcmp(a, "--lr")) fv = &t->lr;
        else if (!strcmp(a, "--decay")) { fv = &t->decay; t->decay_given = 1; }
        else if (!strcmp(a, "--momentum")) fv = &t->momentum;
        else if (!strcmp(a, "--val-split")) fv = &t->val_split;
        else if (!strcmp(a, "--label-smoothing")) fv = &t->smoothing;
        else if (!strcmp(a, "--nesterov")) t->nesterov = 1;
        else if (!strcmp(a, "--no-nesterov")) t->nesterov = 0;
        else if (!strcmp(a, "--no-cache")) t->no_cache = 1;
        else if (!strcmp(a, "--augment")) t->augment = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) t->quiet = 1;
        else if (!strcmp(a, "--json")) t->json = t->quiet = 1;
        else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            t->seed = strtoull(argv[++i], &end, 10);
            if (*end || !*argv[i]) return cli_usage("--seed '%s': expected a non-negative integer", argv[i]);
        } else return cli_usage("unknown option '%s' (see graft train --help)", a);
        if (sv) { NEED_VALUE(); *sv = argv[++i]; }
        if (iv) {
            NEED_VALUE();
            if (cli_parse_int(argv[++i], iv) || *iv < (iv == &t->threads ? 0 : 1))
                return cli_usage("%s '%s': expected a positive integer", a, argv[i]);
        }
        if (fv) {
            NEED_VALUE();
            if (cli_parse_float(argv[++i], fv) || !isfinite(*fv) || *fv < 0)
                return cli_usage("%s '%s': expected a non-negative number", a, argv[i]);
        }
    }
    t->h = t->d.h, t->w = t->d.w;
    if (!t->data && !(t->resume && !cfg))   /* --resume: the checkpoint's (second pass) */
        return cli_usage("--data is required (see graft train --help)");
    if ((t->resume || t->from) && (t->model_opt || t->d.h))
        return cli_usage("%s: the model comes from %s: --cut, --head and --input-size cannot change it",
                         t->model_opt ? t->model_opt : "--input-size", t->resume ? "--resume's checkpoint" : "--from");
    if (t->resume && (t->d.resize || t->d.crop || t->d.crop_fraction > 0 || t->d.interp || t->d.prep))
        return cli_usage("--resume takes the input recipe from the checkpoint: drop --resize, --crop, "
                         "--crop-fraction, --interpolation and --preprocess");
    if (t->resume && t->base) return cli_usage("--resume takes the model from the checkpoint: drop --base");
    if (!t->base && !t->from && !t->resume) return cli_usage("--base (or --from MODEL, --resume CKPT) is required (see graft train --help)");
    if (t->base && t->from) return cli_usage("give --base or --from, not both");
    if (strcmp(t->optimizer, "sgd") && strcmp(t->optimizer, "adam") && strcmp(t->optimizer, "adamw"))
        return cli_usage("--optimizer '%s': expected sgd, adam or adamw", t->optimizer);
    if (t->schedule && strcmp(t->schedule, "constant") && strcmp(t->schedule, "inverse-time") &&
        strcmp(t->schedule, "step") && strcmp(t->schedule, "cosine"))
        return cli_usage("--lr-schedule '%s': expected constant, inverse-time, step or cosine", t->schedule);
    if (t->monitor && strcmp(t->monitor, "val_accuracy") && strcmp(t->monitor, "val_loss"))
        return cli_usage("--monitor '%s': expected val_accuracy or val_loss", t->monitor);
    if (t->lr_gamma >= 1) return cli_usage("--lr-gamma %g: expected a factor below 1", t->lr_gamma);
    if (strcmp(t->loss, "categorical") && strcmp(t->loss, "sparse"))
        return cli_usage("--loss '%s': expected categorical or sparse", t->loss);
    if (t->val_split >= 1) return cli_usage("--val-split %g: expected a fraction in (0, 1)", t->val_split);
    if (t->val && t->val_split > 0) return cli_usage("give --val or --val-split, not both");
    if (t->smoothing >= 1) return cli_usage("--label-smoothing %g: expected a value in [0, 1)", t->smoothing);
    if (t->momentum >= 1) return cli_usage("--momentum %g: expected a value in [0, 1)", t->momentum);
    if (t->keep && strcmp(t->keep, "best") && strcmp(t->keep, "last"))
        return cli_usage("--keep '%s': expected best or last", t->keep);
    if (t->resume && t->from) return cli_usage("give --resume or --from, not both");
    /* settings that would silently do nothing (or something else than asked) */
    if ((t->patience || t->monitor) && !t->val && !(t->val_split > 0))
        return cli_usage("--%s watches the validation data: add --val-split F (a held-out part of --data) or "
                         "--val PATH", t->patience ? "patience" : "monitor");
    if (t->warmup > 0 && t->warmup >= t->epochs)
        return cli_usage("--warmup %g: the run has %d epoch%s, so the rate would never reach --lr (give fewer "
                         "warmup epochs or more --epochs)", t->warmup, t->epochs, t->epochs == 1 ? "" : "s");
    if ((t->bn_train || t->base_lr_mult_given) && !t->unfreeze)
        return cli_usage("%s applies to unfrozen base layers: add --unfreeze LAYER (the base is frozen)",
                         t->bn_train ? "--bn-train" : "--base-lr-mult");
    if ((t->from || t->resume) && (t->weights_given || t->weights_partial))
        return cli_usage("--weights%s: %s holds its weights; --weights goes with --base",
                         t->weights_partial && !t->weights_given ? "-partial" : "", t->from ? "--from MODEL" : "--resume CKPT");
    /* the default schedule: a cosine decay to 0 makes the run settle on any
     * base and cut (the seed's lr 0.01 with Keras' decay 1e-6 barely moves
     * in 20 epochs, and on standardized features the loss then climbs);
     * the exact Keras recipe keeps Keras' inverse-time decay             */
    if (!t->schedule) t->schedule = t->no_standardize || t->decay_given ? "inverse-time" : "cosine";
    if (isnan(t->lr)) t->lr = strcmp(t->optimizer, "sgd") ? 0.001f : 0.01f;
    if (!strcmp(t->optimizer, "adamw") && t->weight_decay == 0) t->weight_decay = 0.01f;
    if (!(t->lr > 0)) return cli_usage("--lr %g: must be positive", t->lr);
    return 0;
}

/* Opens a dataset for the network's input size and recipe (h, w = 0: the
 * data's native size, else the network's nh x nw).                        */
static gr_dataset *open_data(const char *arg, const train_args *t, gr_split split, int h, int w, int nh, int nw,
                             const gr_recipe *r, gr_error *err) {
    cli_data_opts d = t->d;
    if (split == GR_SPLIT_TEST) d.split = NULL;   /* --val, --test: their test part; --split is --data's */
    return cli_open_data(arg, &d, split, h, w, nh, nw, r, err);
}

/* --base B1,B2,...: probes each base (at its default cut, or at the --cut
 * auto candidates) on a stratified sample of the training data and returns
 * the index of the best by ridge probe accuracy (-1 + *err on failure).
 * bases[] / weights[] are the split lists (weights may repeat one value). */
static int choose_base(train_args *t, char **bases, char **weights, int nb, gr_error *err) {
    int best = -1;
    double best_acc = -1;
    printf("--base: probing %d bases on a stratified sample of the training data\n", nb);
    for (int k = 0; k < nb; k++) {
        int nh, nw;
        gr_recipe rc;
        if (cli_base_defaults(bases[k], &nh, &nw, &rc, err)) { gr_error_prefix(err, "--base %s", bases[k]); return -1; }
        cli_recipe_apply(&t->d, &rc);
        gr_dataset *ds = open_data(t->data, t, GR_SPLIT_TRAIN, t->h, t->w, nh, nw, &rc, err);
        if (!ds) return -1;
        int h, w;
        gr_dataset_size(ds, &h, &w);
        gr_model *m = cli_load_base(bases[k], weights[k], h, w, false, t->weights_partial, t->quiet ? NULL : stdout, err);
        if (!m) { gr_dataset_free(ds); gr_error_prefix(err, "--base %s", bases[k]); return -1; }
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
            for (int r = 0; r < nc; r++)
                if (rows[r].node == pick) {
                    const gr_probe_score *sc = rows[r].use_flat ? &rows[r].flat : &rows[r].pooled;
                    printf("  %-40s cut %-20s ridge %.4f  LogME %8.4f\n", bases[k], rows[r].name, sc->ridge_acc,
                           sc->logme);
                    if (sc->ridge_acc > best_acc) { best_acc = sc->ridge_acc; best = k; }
                }
        free(rows);
        gr_model_free(m);
        gr_dataset_free(ds);
        if (st != GR_OK) return -1;
    }
    printf("--base: '%s' (best 5-fold ridge probe accuracy, %.4f)\n", bases[best], best_acc);
    return best;
}

/* Splits a comma list in place; returns the count (at most cap). */
static int split_list(char *s, char **out, int cap) {
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

/* The settings saved in a checkpoint (its graft.training "config"), or NULL
 * + *err.  The caller frees with json_object_put.                          */
static json_object *checkpoint_config(const char *path, int *epochs_done, gr_error *err) {
    gr_st_file *sf = gr_st_open(path, err);
    if (!sf) return NULL;
    const char *tr = gr_st_meta(sf, "graft.training");
    json_object *root = tr ? json_tokener_parse(tr) : NULL, *cfg = NULL, *ep;
    if (root && json_object_object_get_ex(root, "config", &cfg) && json_object_is_type(cfg, json_type_object) &&
        json_object_object_get_ex(root, "epoch", &ep)) {
        *epochs_done = json_object_get_int(ep);
        json_object_get(cfg);
    } else {
        cfg = NULL;
        gr_error_set(err, GR_ERR_FORMAT, "--resume %s: not a graft checkpoint (no training settings)", path);
    }
    json_object_put(root);
    gr_st_close(sf);
    return cfg;
}

int cmd_train(int argc, char **argv) {
    train_args t;
    gr_error err = {0};
    int prc = parse(argc, argv, &t, NULL), epochs_done = 0;
    if (prc) return prc;
    json_object *resume_cfg = NULL;   /* --resume: the checkpoint's settings, the run's defaults */
    if (t.resume) {
        if (!(resume_cfg = checkpoint_config(t.resume, &epochs_done, &err))) return cli_fail(&err);
        if ((prc = parse(argc, argv, &t, resume_cfg))) { json_object_put(resume_cfg); return prc; }
        if (t.epochs_given && t.epochs < epochs_done) {
            json_object_put(resume_cfg);
            return cli_usage("--epochs %d: %s has already trained %d epochs (give more to extend the run)", t.epochs,
                             t.resume, epochs_done);
        }
    }
    gr_set_threads(t.threads);
    cli_stop_prepare();
    gr_model *m = NULL;
    gr_dataset *train = NULL, *val = NULL, *test = NULL;
    int *tr_idx = NULL, *va_idx = NULL, n_tr = 0, n_va = 0, rc = 1;
    gr_recipe recipe = {0};
    int h = t.h, w = t.w, base_h = 0, base_w = 0;   /* the network's own size */
    cli_run rep = {0};

    /* the outputs: checked against the inputs and locked before any work */
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s", t.ckpt ? t.ckpt : t.resume ? t.resume : t.out);
    if (!t.ckpt && !t.resume) strncat(ckpt, ".ckpt", sizeof ckpt - strlen(ckpt) - 1);
    cli_outputs outs = {0};
    cli_outputs_add(&outs, "--out", t.out, NULL);
    cli_outputs_add(&outs, "--checkpoint", ckpt, t.resume);   /* a resumed run rewrites its checkpoint */
    cli_outputs_add(&outs, "--log", t.log, NULL);
    {
        cli_input ins[8] = {{"--data", t.data}, {"--val", t.val}, {"--test", t.test}, {"--weights", t.weights},
                            {"--from", t.from}, {"--resume", t.resume}, {"--base", NULL}, {NULL, NULL}};
        if (t.base && (!strncmp(t.base, "darknet:", 8) || !strncmp(t.base, "tflite:", 7)))
            ins[6].path = strchr(t.base, ':') + 1;
        int orc = cli_outputs_claim(&outs, ins, 8);
        if (orc) {
            json_object_put(resume_cfg);
            return orc;
        }
    }
    if (gr_dist_rank() > 0) t.report = t.tensorboard = NULL;   /* under mpirun rank 0 reports */
    if (cli_run_begin(&rep, t.report, t.tensorboard, false, argc, argv, &err)) goto fail;
    rep.json = t.json;
    rep.epochs = t.epochs;
    cli_stop stop = {0};
    char base_list[4096], weights_list[4096];
    if (t.base && strchr(t.base, ',')) {   /* several bases: the probe picks one */
        char *bases[16], *weights[16];
        snprintf(base_list, sizeof base_list, "%s", t.base);
        snprintf(weights_list, sizeof weights_list, "%s", t.weights);
        int nb = split_list(base_list, bases, 16), nw = split_list(weights_list, weights, 16);
        if (nw != 1 && nw != nb) {
            gr_error_set(&err, GR_ERR_ARG, "--weights: give one value or one per base (%d bases, %d weights)", nb, nw);
            goto fail;
        }
        for (int k = nw; k < nb; k++) weights[k] = weights[0];
        int b = choose_base(&t, bases, weights, nb, &err);
        if (b < 0) goto fail;
        t.base = bases[b];
        t.weights = weights[b];
    }
    if (t.resume) t.from = t.resume;   /* the checkpoint holds the model too */
    if (t.from) {
        m = gr_model_load(t.from, &err);
        if (!m) goto fail;
        int c;
        gr_model_layer_shape(m, -1, &h, &w, &c);
        base_h = h, base_w = w;
        recipe = gr_model_recipe(m);
    } else if (cli_base_defaults(t.base, &base_h, &base_w, &recipe, &err)) {
        goto fail;
    }
    cli_recipe_apply(&t.d, &recipe);   /* the base's (or model's) recipe, with the options' overrides */
    /* the training data decides the native size (CIFAR stays 32x32; folders: the base's own) */
    train = open_data(t.data, &t, GR_SPLIT_TRAIN, h, w, base_h, base_w, &recipe, &err);
    if (!train) goto fail;
    gr_dataset_size(train, &h, &w);
    int classes = gr_dataset_num_classes(train);
    if (cli_check_training_classes(train, t.data, &err)) goto fail;
    char rdesc[256];
    if (!t.quiet)
        printf("data: %s: %d images, %d classes, %dx%d, preprocessing %s (input recipe: %s)\n", t.data,
               gr_dataset_count(train), classes, h, w, gr_preprocess_name(recipe.norm),
               gr_recipe_describe(&recipe, rdesc, sizeof rdesc));

    if (!t.from) {
        m = cli_load_base(t.base, t.weights, h, w, false, t.weights_partial, t.quiet ? NULL : stdout, &err);
        if (!m) goto fail;
    }
    gr_model_set_recipe(m, &recipe);   /* saved with the model: eval and predict apply it */
    if (!t.from) {
        int cut = cli_default_cut(m);
        if (t.cut && !strcmp(t.cut, "auto")) {
            /* candidates: every pooling layer, the default cut, and each layer
             * output in the last block (after the last pool) */
            int cuts[512], nc = gr_probe_pool_cuts(m, cut, cuts, 256);
            if (nc > 256) nc = 256;
            int last_pool = -1;
            for (int i = 0; i < cut; i++)
                if (gr_model_layer_op(m, i) == GR_OP_MAXPOOL || gr_model_layer_op(m, i) == GR_OP_AVGPOOL) last_pool = i;
            for (int i = last_pool + 1; i < cut && nc < 512; i++)
                if (!strchr(gr_model_layer_name(m, i), '/') && gr_model_layer_op(m, i) != GR_OP_BATCHNORM) cuts[nc++] = i;
            gr_probe_row *rows = calloc((size_t)nc, sizeof *rows);
            if (!rows) { gr_error_set(&err, GR_ERR_NOMEM, "out of memory"); goto fail; }
            int best = cut;
            if (!t.quiet) printf("--cut auto: probing %d candidate cuts on a stratified sample of the training data\n", nc);
            gr_status pst = gr_probe_best_cut(m, train, cuts, nc, 2000, t.seed, &best, rows, &err);
            if (pst == GR_OK && !t.quiet) {
                for (int k = 0; k < nc; k++) {
                    const gr_probe_score *sc = rows[k].use_flat ? &rows[k].flat : &rows[k].pooled;
                    if (!rows[k].name[0]) continue;
                    char shape[48];
                    snprintf(shape, sizeof shape, "%dx%dx%d", rows[k].h, rows[k].w, rows[k].c);
                    printf("  %-24s %-12s %-4s ridge %.4f  LogME %8.4f%s\n", rows[k].name, shape,
                           rows[k].use_flat ? "flat" : "gap", sc->ridge_acc, sc->logme,
                           rows[k].node == best ? "  <- chosen" : "");
                }
                printf("--cut auto: '%s' (best 5-fold ridge probe accuracy; default cut '%s')\n",
                       gr_model_layer_name(m, best), gr_model_layer_name(m, cut));
            }
            if (pst == GR_OK && cli_run_probe(&rep, rows, nc, best, &err)) pst = err.code;
            free(rows);
            if (pst != GR_OK) goto fail;
            cut = best;
        } else if (t.cut) {
            cut = gr_model_find(m, t.cut);
            if (cut < 0) {
                gr_error_set(&err, GR_ERR_ARG, "--cut: base '%s' has no layer '%s' (graft info --base %s lists them)",
                             t.base, t.cut, t.base);
                goto fail;
            }
        }
        if (gr_model_truncate(m, cut, &err) != GR_OK) goto fail;
        gr_model_freeze_upto(m, cut);
        if (!t.no_standardize) {
            gr_layer_spec sd;
            memset(&sd, 0, sizeof sd);
            sd.op = GR_OP_STANDARDIZE;
            if (gr_model_append(m, gr_named(sd, "standardize"), &err) < 0) goto fail;
        }
        char def[128];
        snprintf(def, sizeof def, "flatten,dense:1024:relu,dense:%d:softmax", classes);
        if (cli_append_head(m, t.head ? t.head : def, classes, &err)) goto fail;
        int hh, ww, outc;
        gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &hh, &ww, &outc);
        if (outc != classes) {
            gr_error_set(&err, GR_ERR_SHAPE, "--head ends with %d outputs but the data has %d classes", outc, classes);
            goto fail;
        }
        const char **names = calloc((size_t)classes, sizeof *names);
        if (!names) { gr_error_set(&err, GR_ERR_NOMEM, "out of memory"); goto fail; }
        for (int c = 0; c < classes; c++) names[c] = gr_dataset_class_name(train, c);
        gr_status st = gr_model_set_classes(m, classes, names, &err);
        free(names);
        if (st != GR_OK) goto fail;
        gr_model_init_params(m, cut + 1, t.seed);
        /* (the standardize layer's statistics are measured by gr_fit) */
    } else {
        int hh, ww, outc;
        gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &hh, &ww, &outc);
        if (outc != classes) {
            gr_error_set(&err, GR_ERR_SHAPE, "%s has %d output classes but %s has %d", t.from, outc, t.data, classes);
            goto fail;
        }
        if (cli_check_classes(m, train, t.data, t.from, &err)) goto fail;
    }
    int head_first = t.resume ? t.head_first : 0;   /* a checkpoint's layers keep their frozen flags */
    if (t.unfreeze && !t.resume) {
        /* the frozen prefix ends just before LAYER; the head keeps the full rate */
        /* a darknet layer N is the nodes "N/conv", "N/bn", "N": start at its first */
        char sub[128];
        snprintf(sub, sizeof sub, "%s/conv", t.unfreeze);
        int u = gr_model_find(m, sub);
        if (u < 0) u = gr_model_find(m, t.unfreeze);
        int n_layers = gr_model_num_layers(m);
        for (int i = 0; i < n_layers; i++)
            if (!gr_model_layer_frozen(m, i)) { head_first = i; break; }
        if (u < 0 || u >= head_first) {
            /* the frozen part ends at the cut: name it and what may be unfrozen */
            char cut_name[128], first[128];   /* darknet layer N's nodes are "N/conv", "N/bn", "N" */
            snprintf(cut_name, sizeof cut_name, "%s", head_first > 0 ? gr_model_layer_name(m, head_first - 1) : "(none)");
            snprintf(first, sizeof first, "%s", gr_model_layer_name(m, 0));
            first[strcspn(first, "/")] = 0;
            if (u < 0 && t.base)
                gr_error_set(&err, GR_ERR_ARG, "--unfreeze %s: the model has no layer '%s'; the base is cut at "
                             "'%s', so --unfreeze takes a layer from '%s' to '%s' (graft info --base %s lists them)",
                             t.unfreeze, t.unfreeze, cut_name, first, cut_name, t.base);
            else if (u < 0)
                gr_error_set(&err, GR_ERR_ARG, "--unfreeze %s: the model has no layer '%s'; its frozen part ends at "
                             "'%s', so --unfreeze takes a layer from '%s' to '%s' (graft info %s lists them)",
                             t.unfreeze, t.unfreeze, cut_name, first, cut_name, t.from);
            else
                gr_error_set(&err, GR_ERR_ARG, "--unfreeze %s: that layer is above the cut ('%s'), in the trainable "
                             "head; --unfreeze takes a layer from '%s' to '%s'", t.unfreeze, cut_name, first, cut_name);
            goto fail;
        }
        int u0 = gr_model_train_start(m, u);
        if (u0 < u && !t.quiet)
            printf("--unfreeze %s: layers after it also read '%s' (a residual connection), so training starts "
                   "at '%s'\n", t.unfreeze, gr_model_layer_name(m, u0 - 1), gr_model_layer_name(m, u0));
        u = u0;
        gr_model_freeze_upto(m, u - 1);
        if (!t.quiet) printf("fine-tuning: layers from '%s' on train (%d base layers unfrozen)%s\n",
                             gr_model_layer_name(m, u), head_first - u,
                             t.bn_train ? ", batch norm with batch statistics" : "");
    }
    if (t.val_split > 0) {
        if (gr_dataset_split(train, t.val_split, t.seed, &tr_idx, &n_tr, &va_idx, &n_va, &err) != GR_OK) goto fail;
    } else if (t.val) {
        val = open_data(t.val, &t, GR_SPLIT_TEST, h, w, h, w, &recipe, &err);
        if (!val || cli_check_classes(m, val, t.val, "the model", &err)) goto fail;
    }
    if (t.test) {
        test = open_data(t.test, &t, GR_SPLIT_TEST, h, w, h, w, &recipe, &err);
        if (!test || cli_check_classes(m, test, t.test, "the model", &err)) goto fail;
        if (gr_dataset_num_classes(test) > classes) {   /* found now, not after training */
            gr_error_set(&err, GR_ERR_SHAPE, "--test %s has %d classes but the model has %d outputs", t.test,
                         gr_dataset_num_classes(test), classes);
            goto fail;
        }
    }
    if (!t.quiet) gr_model_summary(m, stdout);

    /* the run's settings: stored in the model and checkpoints, checked on --resume */
    json_object *cj = json_object_new_object();
    json_object_object_add(cj, "data", json_object_new_string(t.data));
    json_object_object_add(cj, "samples", json_object_new_int(tr_idx ? n_tr : gr_dataset_count(train)));
    json_object_object_add(cj, "optimizer", json_object_new_string(t.optimizer));
    json_object_object_add(cj, "lr", t.lr_auto ? json_object_new_string("auto") : json_object_new_double(t.lr));
    json_object_object_add(cj, "decay", json_object_new_double(t.decay));
    json_object_object_add(cj, "lr_schedule", json_object_new_string(t.schedule));
    json_object_object_add(cj, "epochs", json_object_new_int(t.epochs));
    json_object_object_add(cj, "momentum", json_object_new_double(t.momentum));
    json_object_object_add(cj, "nesterov", json_object_new_boolean(t.nesterov));
    json_object_object_add(cj, "batch", json_object_new_int(t.batch));
    json_object_object_add(cj, "seed", json_object_new_int64((int64_t)t.seed));
    json_object_object_add(cj, "label_smoothing", json_object_new_double(t.smoothing));
    json_object_object_add(cj, "augment", json_object_new_boolean(t.augment));
    /* the rest of the run, so that --resume CKPT alone continues it as it was */
#define ADD_STR(k, v) if (v) json_object_object_add(cj, k, json_object_new_string(v))
    ADD_STR("val", t.val);
    ADD_STR("test", t.test);
    ADD_STR("monitor", t.monitor);
    ADD_STR("keep", t.keep);
    ADD_STR("format", t.d.format);
    ADD_STR("labels", t.d.labels);
    ADD_STR("split", t.d.split);
    json_object_object_add(cj, "loss", json_object_new_string(t.loss));
    if (t.val_split > 0) json_object_object_add(cj, "val_split", json_object_new_double(t.val_split));
    json_object_object_add(cj, "weight_decay", json_object_new_double(t.weight_decay));
    json_object_object_add(cj, "lr_step", json_object_new_int(t.lr_step));
    json_object_object_add(cj, "lr_gamma", json_object_new_double(t.lr_gamma));
    json_object_object_add(cj, "warmup", json_object_new_double(t.warmup));
    json_object_object_add(cj, "patience", json_object_new_int(t.patience));
    json_object_object_add(cj, "base_lr_mult", json_object_new_double(t.base_lr_mult));
    json_object_object_add(cj, "bn_train", json_object_new_boolean(t.bn_train));
    json_object_object_add(cj, "skip_bad", json_object_new_boolean(t.d.skip_bad));
    json_object_object_add(cj, "head_first", json_object_new_int(head_first));
    char config[4096], ckpt_config[4096];   /* saved in the model; in checkpoints, + where the run writes */
    int clen = snprintf(config, sizeof config, "%s", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PLAIN));
    json_object_object_add(cj, "out", json_object_new_string(t.out));
    ADD_STR("log", t.log);
    ADD_STR("checkpoint", t.ckpt);
#undef ADD_STR
    json_object_object_add(cj, "no_cache", json_object_new_boolean(t.no_cache));   /* same numbers either way */
    int klen = snprintf(ckpt_config, sizeof ckpt_config, "%s", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PLAIN));
    json_object_put(cj);
    if (clen < 0 || (size_t)clen >= sizeof config || klen < 0 || (size_t)klen >= sizeof ckpt_config) {
        gr_error_set(&err, GR_ERR_ARG, "the run's settings (paths included) exceed %zu characters", sizeof config);
        goto fail;
    }
    if (t.resume && !t.quiet && t.epochs_given)
        printf("--epochs %d: the run goes on from epoch %d%s\n", t.epochs, epochs_done,
               !strcmp(t.schedule, "cosine") ? " (the cosine schedule now spans the new total)" : "");

    gr_fit_opts fo = {.epochs = t.epochs, .batch = t.batch, .seed = t.seed,
                      .label_smoothing = t.smoothing, .no_cache = t.no_cache,
                      .pad = t.augment ? 4 : 0, .hflip = t.augment, .log_csv = t.log,
                      .verbose = t.quiet ? 0 : 2, .checkpoint = ckpt, .stop = NULL,
                      .resume = t.resume, .reuse_statistics = t.from != NULL, .config_json = ckpt_config,
                      .keep_best = t.keep && !strcmp(t.keep, "best"), .lr_auto = t.lr_auto,
                      .distributed = true};   /* under mpirun (MPI build): data parallel */
    fo.optim = !strcmp(t.optimizer, "sgd")
                   ? gr_sgd((gr_sgd_opts){.lr = t.lr, .decay = t.decay, .momentum = t.momentum, .nesterov = t.nesterov})
                   : (!strcmp(t.optimizer, "adam") ? gr_adam(t.lr) : gr_adamw(t.lr, t.weight_decay));
    fo.optim.weight_decay = t.weight_decay;
    /* (parse always sets t.schedule: given, or the default) */
    fo.optim.schedule = !strcmp(t.schedule, "step") ? GR_SCHEDULE_STEP
                      : !strcmp(t.schedule, "cosine") ? GR_SCHEDULE_COSINE
                      : !strcmp(t.schedule, "inverse-time") ? GR_SCHEDULE_INVERSE_TIME : GR_SCHEDULE_CONSTANT;
    if (!strcmp(t.schedule, "constant")) fo.optim.decay = 0;
    fo.optim.step_epochs = t.lr_step;
    fo.optim.gamma = t.lr_gamma;
    fo.warmup_epochs = t.warmup;
    fo.patience = t.patience;
    fo.monitor_loss = t.monitor && !strcmp(t.monitor, "val_loss");
    fo.bn_train = t.bn_train;
    fo.head_first = head_first;
    fo.base_lr_mult = t.base_lr_mult;
    if (strcmp(t.optimizer, "sgd") && !strcmp(t.schedule, "inverse-time")) fo.optim.decay = t.decay;
    if (va_idx) { fo.val = train; fo.val_idx = va_idx; fo.n_val = n_va; }
    else if (val) fo.val = val;
    fo.on_epoch = cli_run_on_epoch;
    fo.on_epoch_ctx = &rep;
    if (!fo.log_csv && rep.run) fo.log_csv = rep.history;
    if (cli_run_train_info(&rep, &(cli_run_train){.model = m, .base = t.base, .weights = t.from ? NULL : t.weights,
            .model_file = t.out, .config_json = config, .monitor = t.monitor, .epochs = t.epochs,
            .patience = t.patience, .head_first = head_first, .lr = t.lr, .base_lr_mult = t.base_lr_mult,
            .train = train, .val = va_idx ? train : val, .test = test, .train_src = t.data,
            .val_src = va_idx ? t.data : t.val, .test_src = t.test, .tr_idx = tr_idx, .va_idx = va_idx,
            .n_tr = n_tr, .n_va = n_va}, &err)) goto fail;
    cli_stop_start(&stop, &outs);
    fo.stop = stop.flag;
    gr_status st = gr_fit(m, train, tr_idx, n_tr, &fo, &err);
    cli_stop_end(&stop);
    if (st == GR_ERR_INTERRUPTED) {
        if (gr_dist_rank() == 0) {
            fprintf(stderr, "graft: %s\n", err.msg);
            if (strstr(err.msg, "checkpoint written to") || t.resume) {
                if (!strstr(err.msg, "checkpoint written to"))
                    fprintf(stderr, "graft: the checkpoint %s is as it was\n", t.resume);
                print_resume_hint(strstr(err.msg, "checkpoint written to") ? ckpt : t.resume);
            } else {
                fprintf(stderr, "graft: no checkpoint yet (stopped before the first training step): run the same "
                        "command again to start over\n");
            }
            if (cli_run_finish(&rep, fo.log_csv, true, t.quiet, &err)) cli_fail(&err);
        }
        gr_dist_finalize();   /* under mpirun every rank stopped after the same batch: no MPI_Abort */
        rc = CLI_EXIT_INTERRUPTED;
        goto out;
    }
    if (st != GR_OK) goto fail;
    if (gr_dist_rank() == 0) {   /* under mpirun, rank 0 writes */
        if (gr_model_save(m, t.out, config, &err) != GR_OK) goto fail;
        if (!t.ckpt) unlink(ckpt);   /* the default checkpoint (or the one resumed) is only for interruptions */
    }
    if (!t.quiet) printf("saved %s\n", t.out);
    cli_run_event(&rep, "saved", "model", t.out, NAN, NAN);
    gr_eval_result r = {0};
    if (test) {
        if (gr_dist_evaluate(m, test, t.batch, &r, &err) != GR_OK) goto fail;   /* (under mpirun: sharded) */
        if (!t.json) printf("Test loss: %.4f\nTest accuracy: %.4f\n", r.loss, r.accuracy);
        cli_run_event(&rep, "test", "data", t.test, r.loss, r.accuracy);
        if (cli_run_eval(&rep, m, test, t.test, &r, &err)) {
            gr_eval_result_free(&r);
            goto fail;
        }
    }
    if (cli_run_finish(&rep, fo.log_csv, false, t.quiet, &err)) {
        gr_eval_result_free(&r);
        goto fail;
    }
    if (t.json) {   /* the last line: the run's result */
        printf("{\"event\": \"result\", \"out\": ");
        cli_json_string(t.out);
        printf(", \"epochs\": %d, \"classes\": %d, \"samples\": %d", t.epochs, classes,
               tr_idx ? n_tr : gr_dataset_count(train));
        if (test) {
            printf(", \"test_loss\": ");
            cli_json_number(r.loss);
            printf(", \"test_accuracy\": ");
            cli_json_number(r.accuracy);
        }
        printf("}\n");
    }
    gr_eval_result_free(&r);
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    cli_outputs_release(&outs);
    json_object_put(resume_cfg);
    cli_run_free(&rep);
    free(tr_idx);
    free(va_idx);
    gr_dataset_free(train);
    gr_dataset_free(val);
    gr_dataset_free(test);
    gr_model_free(m);
    return rc;
}
