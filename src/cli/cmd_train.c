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

static volatile int stop_flag = 0;   /* set on SIGINT/SIGTERM: finish the batch, checkpoint */

/* The signals that stop a run: SIGINT and SIGTERM. */
static void stop_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/* The thread pool is started with SIGINT/SIGTERM blocked, so its threads
 * inherit the mask and never run the handler inside a compute kernel.     */
static void start_pool_without_signals(void) {
    sigset_t set, old;
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, &old);
#pragma omp parallel
    { (void)0; }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void on_signal(int sig) { (void)sig; stop_flag = 1; }   /* threads not blocking them (a library's idle ones) */

/* SIGINT/SIGTERM during training are taken by this thread alone (sigwait),
 * never by a handler interrupting a compute thread: a handler's frame on
 * the stack of a thread inside oneDNN's JIT GEMM corrupted the heap (seen
 * as a rare abort when ^C landed mid-step).                               */
static void *signal_waiter(void *arg) {
    const sigset_t *set = arg;
    int sig;
    for (;;)
        if (sigwait(set, &sig) == 0) stop_flag = 1;
    return NULL;
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
"                        imagenet = the canonical file, fetched/cached)  [imagenet]\n"
"  --from MODEL          continue training a graft model file instead\n"
"  --cut LAYER|auto      keep the base up to and including LAYER (name or darknet index);\n"
"                        auto = the cut a linear probe scores best (see graft probe)\n"
"                        [whole headless base; darknet: before the last 1000-class conv]\n"
"  --head SPEC           layers after the cut  [flatten,dense:1024:relu,dense:N:softmax]\n"
"                        (flatten, gap, dropout:P, dense:UNITS[:ACT], batchnorm; N = classes)\n"
"  --input-size HxW      network input  [the data's native size: 32x32 for CIFAR]\n"
"  --preprocess MODE     caffe|torch|tf|darknet|none  [from the base: vgg16, resnet50 caffe; darknet darknet]\n"
"data:\n"
"  --data PATH|cifar10|cifar100   training data (CIFAR dir/.bin/.tar.gz, image folder, CSV)\n"
"  --val PATH            validation data, or --val-split F  (a seeded stratified split)\n"
"  --test PATH           evaluate on it at the end: prints Test loss / Test accuracy\n"
"  --format auto|cifar10|cifar100|folder|csv, --labels fine|coarse (CIFAR-100)\n"
"  --augment             random crop (pad 4) and horizontal flip (turns the cache off)\n"
"  --skip-bad            skip (and count) images that fail to decode instead of stopping\n"
"  --crop                resize keeping the aspect ratio, cropping the centre (default: stretch)\n"
"fine-tuning:\n"
"  --unfreeze LAYER      the base trains from LAYER on (e.g. block5_conv1, a darknet index)\n"
"  --base-lr-mult F [1]  learning-rate multiplier for the unfrozen base layers\n"
"  --bn-train            unfrozen batch norm uses batch statistics (default: stored ones)\n"
"training (defaults = the seed recipe, but for the schedule):\n"
"  --optimizer sgd|adam|adamw [sgd]   --lr F [0.01; adam/adamw 0.001]   --decay F [1e-6]\n"
"  --weight-decay F [0; adamw 0.01]   --lr-schedule constant|inverse-time|step|cosine\n"
"                        [cosine: from --lr down to 0 over the epochs; inverse-time (Keras'\n"
"                        decay, the seed's) with --no-standardize or an explicit --decay]\n"
"  --lr-step N [10] --lr-gamma F [0.1] (step)   --warmup EPOCHS [0]\n"
"  --patience N (early stopping, keeps the best)   --monitor val_accuracy|val_loss\n"
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
"  --checkpoint FILE     written after every epoch and on SIGINT/SIGTERM  [MODEL.ckpt, removed at the end]\n"
"  --resume CKPT         continue a run from its checkpoint (bit-exact; same settings required)\n"
"several processes (an MPI build, make MPI=1):  mpirun -np N graft train ...\n"
"                        data parallel: --batch is the global batch, split over the ranks; each\n"
"                        rank uses cores/ranks-on-its-node threads; rank 0 prints and writes\n");
}

typedef struct {
    const char *base, *weights, *from, *cut, *head, *data, *val, *test, *out, *log, *ckpt;
    const char *format, *labels, *prep, *optimizer, *loss, *resume, *keep, *unfreeze, *schedule, *monitor;
    int h, w, epochs, batch, threads, quiet, no_cache, augment, nesterov, no_standardize, lr_auto;
    int decay_given;         /* --decay on the command line: Keras' inverse-time schedule by default */
    int skip_bad, crop, bn_train, lr_step, patience;
    float lr, decay, momentum, val_split, smoothing, weight_decay, base_lr_mult, lr_gamma, warmup;
    unsigned long long seed;
} train_args;

#define NEED_VALUE() \
    do { if (i + 1 >= argc) return cli_failf("%s needs a value (see graft train --help)", a); } while (0)

static int parse(int argc, char **argv, train_args *t) {
    memset(t, 0, sizeof *t);
    t->weights = "imagenet"; t->out = "model.gft";
    t->epochs = 20; t->batch = 32; t->seed = 1; t->nesterov = 1;
    t->lr = NAN; t->decay = 1e-6f; t->momentum = 0.9f;
    t->optimizer = "sgd"; t->loss = "categorical";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **sv = NULL;
        int *iv = NULL;
        float *fv = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--base")) sv = &t->base;
        else if (!strcmp(a, "--weights")) sv = &t->weights;
        else if (!strcmp(a, "--from")) sv = &t->from;
        else if (!strcmp(a, "--cut")) sv = &t->cut;
        else if (!strcmp(a, "--head")) sv = &t->head;
        else if (!strcmp(a, "--data")) sv = &t->data;
        else if (!strcmp(a, "--val")) sv = &t->val;
        else if (!strcmp(a, "--test")) sv = &t->test;
        else if (!strcmp(a, "--out")) sv = &t->out;
        else if (!strcmp(a, "--log")) sv = &t->log;
        else if (!strcmp(a, "--checkpoint")) sv = &t->ckpt;
        else if (!strcmp(a, "--format")) sv = &t->format;
        else if (!strcmp(a, "--labels")) sv = &t->labels;
        else if (!strcmp(a, "--preprocess")) sv = &t->prep;
        else if (!strcmp(a, "--optimizer")) sv = &t->optimizer;
        else if (!strcmp(a, "--loss")) sv = &t->loss;
        else if (!strcmp(a, "--resume")) sv = &t->resume;
        else if (!strcmp(a, "--unfreeze")) sv = &t->unfreeze;
        else if (!strcmp(a, "--lr-schedule")) sv = &t->schedule;
        else if (!strcmp(a, "--monitor")) sv = &t->monitor;
        else if (!strcmp(a, "--lr-step")) iv = &t->lr_step;
        else if (!strcmp(a, "--patience")) iv = &t->patience;
        else if (!strcmp(a, "--weight-decay")) fv = &t->weight_decay;
        else if (!strcmp(a, "--base-lr-mult")) fv = &t->base_lr_mult;
        else if (!strcmp(a, "--lr-gamma")) fv = &t->lr_gamma;
        else if (!strcmp(a, "--warmup")) fv = &t->warmup;
        else if (!strcmp(a, "--skip-bad")) t->skip_bad = 1;
        else if (!strcmp(a, "--crop")) t->crop = 1;
        else if (!strcmp(a, "--bn-train")) t->bn_train = 1;
        else if (!strcmp(a, "--keep")) sv = &t->keep;
        else if (!strcmp(a, "--no-standardize")) t->no_standardize = 1;
        else if (!strcmp(a, "--lr") && i + 1 < argc && !strcmp(argv[i + 1], "auto")) { t->lr_auto = 1; i++; }
        else if (!strcmp(a, "--epochs")) iv = &t->epochs;
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
        else if (!strcmp(a, "--input-size")) {
            NEED_VALUE();
            if (cli_parse_size(argv[++i], &t->h, &t->w)) return cli_failf("--input-size '%s': expected HxW, e.g. 64x64", argv[i]);
        } else if (!strcmp(a, "--seed")) {
            NEED_VALUE();
            char *end;
            t->seed = strtoull(argv[++i], &end, 10);
            if (*end || !*argv[i]) return cli_failf("--seed '%s': expected a non-negative integer", argv[i]);
        } else return cli_failf("unknown option '%s' (see graft train --help)", a);
        if (sv) { NEED_VALUE(); *sv = argv[++i]; }
        if (iv) {
            NEED_VALUE();
            if (cli_parse_int(argv[++i], iv) || *iv < (iv == &t->threads ? 0 : 1))
                return cli_failf("%s '%s': expected a positive integer", a, argv[i]);
        }
        if (fv) {
            NEED_VALUE();
            if (cli_parse_float(argv[++i], fv) || !isfinite(*fv) || *fv < 0)
                return cli_failf("%s '%s': expected a non-negative number", a, argv[i]);
        }
    }
    if (!t->data) return cli_failf("--data is required (see graft train --help)");
    if (!t->base && !t->from && !t->resume) return cli_failf("--base (or --from MODEL, --resume CKPT) is required (see graft train --help)");
    if (t->base && t->from) return cli_failf("give --base or --from, not both");
    if (strcmp(t->optimizer, "sgd") && strcmp(t->optimizer, "adam") && strcmp(t->optimizer, "adamw"))
        return cli_failf("--optimizer '%s': expected sgd, adam or adamw", t->optimizer);
    if (t->schedule && strcmp(t->schedule, "constant") && strcmp(t->schedule, "inverse-time") &&
        strcmp(t->schedule, "step") && strcmp(t->schedule, "cosine"))
        return cli_failf("--lr-schedule '%s': expected constant, inverse-time, step or cosine", t->schedule);
    if (t->monitor && strcmp(t->monitor, "val_accuracy") && strcmp(t->monitor, "val_loss"))
        return cli_failf("--monitor '%s': expected val_accuracy or val_loss", t->monitor);
    if (t->lr_gamma >= 1) return cli_failf("--lr-gamma %g: expected a factor below 1", t->lr_gamma);
    if (strcmp(t->loss, "categorical") && strcmp(t->loss, "sparse"))
        return cli_failf("--loss '%s': expected categorical or sparse", t->loss);
    if (t->val_split >= 1) return cli_failf("--val-split %g: expected a fraction in (0, 1)", t->val_split);
    if (t->val && t->val_split > 0) return cli_failf("give --val or --val-split, not both");
    if (t->smoothing >= 1) return cli_failf("--label-smoothing %g: expected a value in [0, 1)", t->smoothing);
    if (t->momentum >= 1) return cli_failf("--momentum %g: expected a value in [0, 1)", t->momentum);
    if (t->keep && strcmp(t->keep, "best") && strcmp(t->keep, "last"))
        return cli_failf("--keep '%s': expected best or last", t->keep);
    if (t->resume && t->from) return cli_failf("give --resume or --from, not both");
    /* the default schedule: a cosine decay to 0 makes the run settle on any
     * base and cut (the seed's lr 0.01 with Keras' decay 1e-6 barely moves
     * in 20 epochs, and on standardized features the loss then climbs);
     * the exact Keras recipe keeps Keras' inverse-time decay             */
    if (!t->schedule) t->schedule = t->no_standardize || t->decay_given ? "inverse-time" : "cosine";
    if (isnan(t->lr)) t->lr = strcmp(t->optimizer, "sgd") ? 0.001f : 0.01f;
    if (!strcmp(t->optimizer, "adamw") && t->weight_decay == 0) t->weight_decay = 0.01f;
    if (!(t->lr > 0)) return cli_failf("--lr %g: must be positive", t->lr);
    return 0;
}

static int parse_format(const char *s, gr_data_format *f) {
    static const char *names[] = {"auto", "cifar10", "cifar100", "folder", "csv"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) { *f = (gr_data_format)i; return 0; }
    return -1;
}

/* Opens a dataset for the model's input size and preprocessing. */
static gr_dataset *open_data(const char *arg, const train_args *t, gr_split split, int h, int w,
                             gr_preprocess prep, gr_error *err) {
    char path[4096];
    if (cli_resolve_data(arg, path, sizeof path, err)) return NULL;
    gr_dataset_opts o = {.split = split, .h = h, .w = w, .preprocess = prep, .skip_bad = t->skip_bad,
                         .fit = t->crop ? GR_RESIZE_CENTER_CROP : GR_RESIZE_STRETCH};
    if (t->format && parse_format(t->format, &o.format)) {
        gr_error_set(err, GR_ERR_ARG, "--format '%s': expected auto, cifar10, cifar100, folder or csv", t->format);
        return NULL;
    }
    if (t->labels) o.labels = !strcmp(t->labels, "coarse") ? GR_LABELS_COARSE : GR_LABELS_FINE;
    return gr_dataset_open(path, &o, err);
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
        gr_preprocess prep = cli_default_preprocess(bases[k]);
        gr_dataset *ds = open_data(t->data, t, GR_SPLIT_TRAIN, t->h, t->w, prep, err);
        if (!ds) return -1;
        int h, w;
        gr_dataset_size(ds, &h, &w);
        gr_model *m = cli_load_base(bases[k], weights[k], h, w, true, err);
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

int cmd_train(int argc, char **argv) {
    train_args t;
    if (parse(argc, argv, &t)) return 2;
    gr_set_threads(t.threads);
    start_pool_without_signals();
    gr_error err = {0};
    gr_model *m = NULL;
    gr_dataset *train = NULL, *val = NULL, *test = NULL;
    int *tr_idx = NULL, *va_idx = NULL, n_tr = 0, n_va = 0, rc = 1;
    gr_preprocess prep = GR_PREP_NONE;
    int h = t.h, w = t.w;

    {   /* fail before any training when --out's directory cannot be written */
        char d[4096];
        snprintf(d, sizeof d, "%s", t.out);
        char *sl = strrchr(d, '/');
        if (!sl) snprintf(d, sizeof d, ".");
        else sl[sl == d] = 0;
        if (gr_dist_rank() == 0 && access(d, W_OK | X_OK) != 0) {   /* (rank 0 writes it) */
            gr_error_set(&err, GR_ERR_IO, "%s: cannot write the model into %s: %s", t.out, d, strerror(errno));
            goto fail;
        }
    }
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
        prep = gr_model_preprocess(m);
    } else {
        prep = cli_default_preprocess(t.base);
    }
    if (t.prep && gr_preprocess_parse(t.prep, &prep)) {
        cli_failf("--preprocess '%s': expected caffe, torch, tf, darknet or none", t.prep);
        goto out;
    }
    /* the training data decides the native size (CIFAR stays 32x32) */
    train = open_data(t.data, &t, GR_SPLIT_TRAIN, h, w, prep, &err);
    if (!train) goto fail;
    gr_dataset_size(train, &h, &w);
    int classes = gr_dataset_num_classes(train);
    if (!t.quiet)
        printf("data: %s: %d images, %d classes, %dx%d, preprocessing %s\n", t.data,
               gr_dataset_count(train), classes, h, w, gr_preprocess_name(prep));

    if (t.resume && t.base) {
        gr_error_set(&err, GR_ERR_ARG, "--resume takes the model from the checkpoint: drop --base");
        goto fail;
    }
    if (!t.from) {
        m = cli_load_base(t.base, t.weights, h, w, t.quiet, &err);
        if (!m) goto fail;
        gr_model_set_preprocess(m, prep);
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
    int head_first = 0;
    if (t.unfreeze) {
        /* the frozen prefix ends just before LAYER; the head keeps the full rate */
        /* a darknet layer N is the nodes "N/conv", "N/bn", "N": start at its first */
        char sub[128];
        snprintf(sub, sizeof sub, "%s/conv", t.unfreeze);
        int u = gr_model_find(m, sub);
        if (u < 0) u = gr_model_find(m, t.unfreeze);
        if (u < 0) {
            gr_error_set(&err, GR_ERR_ARG, "--unfreeze: the model has no layer '%s' (graft info --base lists them)",
                         t.unfreeze);
            goto fail;
        }
        int n_layers = gr_model_num_layers(m);
        for (int i = 0; i < n_layers; i++)
            if (!gr_model_layer_frozen(m, i)) { head_first = i; break; }
        if (u >= head_first) {
            gr_error_set(&err, GR_ERR_ARG, "--unfreeze %s: that layer is already in the trainable head", t.unfreeze);
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
        val = open_data(t.val, &t, GR_SPLIT_TEST, h, w, prep, &err);
        if (!val || cli_check_classes(m, val, t.val, "the model", &err)) goto fail;
    }
    if (t.test) {
        test = open_data(t.test, &t, GR_SPLIT_TEST, h, w, prep, &err);
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
    /* a cosine schedule spans the run: resuming into more epochs would change it */
    if (!strcmp(t.schedule, "cosine")) json_object_object_add(cj, "epochs", json_object_new_int(t.epochs));
    json_object_object_add(cj, "momentum", json_object_new_double(t.momentum));
    json_object_object_add(cj, "nesterov", json_object_new_boolean(t.nesterov));
    json_object_object_add(cj, "batch", json_object_new_int(t.batch));
    json_object_object_add(cj, "seed", json_object_new_int64((int64_t)t.seed));
    json_object_object_add(cj, "label_smoothing", json_object_new_double(t.smoothing));
    json_object_object_add(cj, "augment", json_object_new_boolean(t.augment));
    char config[2048];
    int clen = snprintf(config, sizeof config, "%s", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PLAIN));
    json_object_put(cj);
    if (clen < 0 || (size_t)clen >= sizeof config) {
        gr_error_set(&err, GR_ERR_ARG, "the run's settings (paths included) exceed %zu characters", sizeof config);
        goto fail;
    }
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s", t.ckpt ? t.ckpt : t.out);
    if (!t.ckpt) strncat(ckpt, ".ckpt", sizeof ckpt - strlen(ckpt) - 1);

    gr_fit_opts fo = {.epochs = t.epochs, .batch = t.batch, .seed = t.seed,
                      .label_smoothing = t.smoothing, .no_cache = t.no_cache,
                      .pad = t.augment ? 4 : 0, .hflip = t.augment, .log_csv = t.log,
                      .verbose = t.quiet ? 0 : 2, .checkpoint = ckpt, .stop = &stop_flag,
                      .resume = t.resume, .reuse_statistics = t.from != NULL, .config_json = config,
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
    sigset_t sigs, old_mask;
    stop_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);   /* every thread started from here on inherits it */
    pthread_t waiter;
    bool have_waiter = pthread_create(&waiter, NULL, signal_waiter, &sigs) == 0;
    if (!have_waiter) pthread_sigmask(SIG_SETMASK, &old_mask, NULL);   /* ^C then just ends the run */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    gr_status st = gr_fit(m, train, tr_idx, n_tr, &fo, &err);
    if (have_waiter) {
        pthread_cancel(waiter);   /* sigwait is a cancellation point */
        pthread_join(waiter, NULL);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (have_waiter) pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (st == GR_ERR_INTERRUPTED) {
        if (gr_dist_rank() == 0)
            fprintf(stderr, "graft: %s\ngraft: continue with: graft train --resume %s --data %s ...\n", err.msg,
                    ckpt, t.data);
        gr_dist_finalize();   /* under mpirun every rank stopped after the same batch: no MPI_Abort */
        rc = 1;
        goto out;
    }
    if (st != GR_OK) goto fail;
    if (gr_dist_rank() == 0) {   /* under mpirun, rank 0 writes */
        if (gr_model_save(m, t.out, config, &err) != GR_OK) goto fail;
        if (!t.ckpt) unlink(ckpt);   /* the default checkpoint is only for interruptions */
    }
    if (!t.quiet) printf("saved %s\n", t.out);
    if (test) {
        gr_eval_result r;
        if (gr_dist_evaluate(m, test, t.batch, &r, &err) != GR_OK) goto fail;   /* (under mpirun: sharded) */
        printf("Test loss: %.4f\nTest accuracy: %.4f\n", r.loss, r.accuracy);
        gr_eval_result_free(&r);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    free(tr_idx);
    free(va_idx);
    gr_dataset_free(train);
    gr_dataset_free(val);
    gr_dataset_free(test);
    gr_model_free(m);
    return rc;
}
