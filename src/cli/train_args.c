/* train_args.c — `graft train`'s option table (the parser and --help come
 * from it), the checks of the settings, and the settings saved in the model
 * and in checkpoints (--resume takes them back through the same table).  */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "format/safetensors.h"
#include "train/budget.h"
#include "train.h"

static int set_lr(void *obj, const char *v) {
    train_args *t = obj;
    if (!strcmp(v, "auto")) { t->lr_auto = 1; return 0; }
    t->lr_auto = 0;
    return cli_parse_float(v, &t->lr) || !isfinite(t->lr) || t->lr < 0 ? -1 : 0;
}

static int set_budget(void *obj, const char *v) {
    train_args *t = obj;
    char msg[256];
    if (gr_budget_parse(v, &t->budget, msg, sizeof msg)) return cli_usage("%s", msg);
    t->budget_cli = 1;
    return 0;
}

#define T train_args
#define GIVEN(fld) .given = offsetof(T, fld) + 1
static const cli_opt train_opts[] = {
    OPT_HEAD("model:"),
    OPT_STR("--base", base, CLI_BASE_METAVAR, NULL,
            "the pretrained base;\n"
            "a comma list (--weights: one value, or one per base) = the base whose\n"
            "features a linear probe scores best (with --cut auto: at its best cut)"),
    {.kind = CLI_STR, .name = "--weights", .off = offsetof(T, weights), .meta = "FILE|imagenet|none",
     .def = "imagenet", GIVEN(weights_given),
     .help = "weights for the base (.h5, .safetensors, .weights;\n"
             "imagenet = the canonical file, fetched/cached); every\n"
             "weighted layer of the base must load (a tflite: base has its own)"},
    OPT_FLAG("--weights-partial", weights_partial, 1,
             "allow a file that fits only some layers (the others stay untrained)"),
    OPT_STR("--from", from, "MODEL", NULL, "continue training a graft model file instead"),
    OPT_STR("--cut", cut, "LAYER|auto", NULL,
            "keep the base up to and including LAYER (name or darknet index; an\n"
            "ONNX base: its tensor or node name too; graft info --base lists the\n"
            "cut candidates); auto = the cut a linear probe scores best (see graft\n"
            "probe)  [whole headless base (ONNX: the pre-logits tensor); darknet:\n"
            "before the last 1000-class conv]"),
    OPT_STR("--head", head, "SPEC", "flatten,dense:1024:relu,dense:N:softmax",
            "layers after the cut\n(flatten, gap, dropout:P, dense:UNITS[:ACT], batchnorm, layernorm; N = classes)"),
    OPT_HEAD("data:"),
    {.kind = CLI_STR, .name = "--data", .off = offsetof(T, data), .meta = "PATH|cifar10|cifar100", .cfg = "data",
     .help = "training data (CIFAR dir/.bin/.tar.gz, image folder, CSV)"},
    {.kind = CLI_STR, .name = "--val", .off = offsetof(T, val), .meta = "PATH", .cfg = "val",
     .help = "validation data, or --val-split F"},
    {.kind = CLI_FLOAT, .name = "--val-split", .off = offsetof(T, val_split), .meta = "F", .cfg = "val_split",
     .help = "hold out a fraction of --data for validation (a seeded stratified split)"},
    {.kind = CLI_STR, .name = "--test", .off = offsetof(T, test), .meta = "PATH", .cfg = "test",
     .help = "evaluate on it at the end: prints Test loss / Test accuracy"},
    {.kind = CLI_FLAG, .name = "--augment", .off = offsetof(T, augment), .val = 1, .cfg = "augment",
     .help = "random crop (pad 4) and horizontal flip (turns the cache off; see\n"
             "--cache-prefix)"},
    {.kind = CLI_FLAG, .name = "--flip", .off = offsetof(T, flip), .val = 1, .cfg = "flip",
     .help = "random horizontal flip alone; keeps the cache: the frozen part's output\n"
             "of each image's mirror is cached too and a flipped image reads it (exact)"},
    {.kind = CLI_FLAG, .name = "--cache-prefix", .off = offsetof(T, cache_prefix), .val = 1,
     .cfg = "cache_prefix",
     .help = "with --augment: cache the frozen part's output (and its mirror's) anyway\n"
             "and do the crop on the cached map, a translation by whole cells (up to\n"
             "max(1, round(4 x map/input size)), zeros beyond the edge): an\n"
             "approximation of the image crop, much faster when most of the net is frozen"},
    OPT_FUNC("--budget", set_budget, "TIME", "a time such as 90s, 5m or 1.5h", NULL,
             "wall time for the whole run (90s, 5m, 1.5h): graft probes the data, measures\n"
             "this machine's throughput, then chooses the base (of --base A,B,... or those\n"
             "on this machine), input size, cut, what to unfreeze and the epochs, prints\n"
             "the plan and runs it within TIME (everything counted, --test too); it\n"
             "chooses what --epochs, --cut, --unfreeze, --input-size, --augment,\n"
             "--base-lr-mult and --lr set, so those are refused with it"),
    {.kind = CLI_FLOAT, .name = "--random-resized-crop", .off = offsetof(T, rrc), .meta = "S", .cfg = "rrc",
     .help = "the crop is torchvision's RandomResizedCrop: a box of S..1 of the area, aspect\n"
             "3/4..4/3, resized back (e.g. 0.35; with --augment: and the flip)"},
    {.kind = CLI_FLOAT, .name = "--mixup", .off = offsetof(T, mixup), .meta = "A", .cfg = "mixup",
     .help = "mixup: each image blended with another of the batch, weight ~ Beta(A, A),\n"
             "and their labels alike (e.g. 0.2; turns the cache off)"},
    {.kind = CLI_FLOAT, .name = "--cutmix", .off = offsetof(T, cutmix), .meta = "A", .cfg = "cutmix",
     .help = "cutmix: a box of another image of the batch pasted in, its area ~ Beta(A, A),\n"
             "labels by area (e.g. 1; with --mixup: one of the two per batch)"},
    {.kind = CLI_ENUM, .name = "--tta", .off = offsetof(T, tta), .names = cli_tta_names, .def = "none",
     .cfg = "tta", .help = "flip: validation and --test score each image with its mirror image\n"
                           "(the mean of the two probabilities)"},
    OPT_HEAD("fine-tuning:"),
    OPT_STR("--unfreeze", unfreeze, "LAYER", NULL,
            "the base trains from LAYER on (e.g. block5_conv1, a darknet index,\nan ONNX block: encoder_layer_11 starts at its first layer)"),
    {.kind = CLI_FLOAT, .name = "--base-lr-mult", .off = offsetof(T, base_lr_mult), .meta = "F", .def = "1",
     GIVEN(base_lr_mult_given), .cfg = "base_lr_mult",
     .help = "learning-rate multiplier for the unfrozen base layers (needs --unfreeze)"},
    {.kind = CLI_FLAG, .name = "--bn-train", .off = offsetof(T, bn_train), .val = 1, .cfg = "bn_train",
     .help = "unfrozen batch norm uses batch statistics (default: stored ones;\nneeds --unfreeze)"},
    OPT_HEAD("training (defaults = the seed recipe, but for the schedule):"),
    {.kind = CLI_ENUM, .name = "--optimizer", .off = offsetof(T, optimizer), .names = cli_optimizer_names,
     .def = "sgd", .cfg = "optimizer", .help = "the optimizer"},
    OPT_FUNC("--lr", set_lr, "F|auto", "a non-negative number (or auto)", "0.01; adam/adamw 0.001",
             "the learning rate; auto: pick it with a range test on the cached features"),
    {.kind = CLI_FLOAT, .name = "--decay", .off = offsetof(T, decay), .meta = "F", .def = "1e-6",
     GIVEN(decay_given), .cfg = "decay", .help = "Keras' inverse-time decay (with --lr-schedule inverse-time)"},
    {.kind = CLI_FLOAT, .name = "--weight-decay", .off = offsetof(T, weight_decay), .meta = "F",
     .def = "0; adamw 0.01", .cfg = "weight_decay", .help = "L2 weight decay (adamw: decoupled)"},
    {.kind = CLI_ENUM, .name = "--lr-schedule", .off = offsetof(T, schedule), .names = cli_schedule_names,
     .cfg = "lr_schedule",
     .help = "[cosine: from --lr down to 0 over the epochs; inverse-time (Keras'\n"
             "decay, the seed's) with --no-standardize or an explicit --decay]"},
    {.kind = CLI_INT, .name = "--lr-step", .off = offsetof(T, lr_step), .val = 1, .meta = "N", .def = "10",
     .cfg = "lr_step", .help = "step schedule: epochs between rate drops"},
    {.kind = CLI_FLOAT, .name = "--lr-gamma", .off = offsetof(T, lr_gamma), .meta = "F", .def = "0.1",
     .cfg = "lr_gamma", .help = "step schedule: the factor of each drop"},
    {.kind = CLI_FLOAT, .name = "--warmup", .off = offsetof(T, warmup), .meta = "EPOCHS", .def = "0",
     .cfg = "warmup", .help = "linear warmup of the rate (fewer than --epochs)"},
    {.kind = CLI_INT, .name = "--patience", .off = offsetof(T, patience), .val = 1, .meta = "N",
     .cfg = "patience", .help = "early stopping, keeps the best"},
    {.kind = CLI_ENUM, .name = "--monitor", .off = offsetof(T, monitor), .names = cli_monitor_names,
     .cfg = "monitor", .help = "(both watch the validation data: --val or --val-split is required)"},
    {.kind = CLI_FLOAT, .name = "--momentum", .off = offsetof(T, momentum), .meta = "F", .def = "0.9",
     .cfg = "momentum", .help = "SGD momentum"},
    {.kind = CLI_FLAG, .name = "--nesterov", .off = offsetof(T, nesterov), .val = 1, .cfg = "nesterov",
     .help = "Nesterov momentum (the default)"},
    OPT_FLAG("--no-nesterov", nesterov, 0, "plain momentum"),
    {.kind = CLI_ENUM, .name = "--loss", .off = offsetof(T, loss), .names = cli_loss_names, .def = "categorical",
     .cfg = "loss", .help = "(the same math; labels are class indices either way)"},
    {.kind = CLI_FLOAT, .name = "--label-smoothing", .off = offsetof(T, smoothing), .meta = "F", .def = "0",
     GIVEN(smoothing_given),
     .cfg = "label_smoothing", .help = "label smoothing"},
    {.kind = CLI_FLOAT, .name = "--ema", .off = offsetof(T, ema), .meta = "DECAY", .cfg = "ema",
     .help = "keep an exponential moving average of the trained weights (e.g. 0.999;\n"
             "decay min(DECAY, (1+k)/(10+k)) at step k): validation, --keep best and\n"
             "the saved model use it"},
    {.kind = CLI_INT, .name = "--epochs", .off = offsetof(T, epochs), .val = 1, .meta = "N", .def = "20",
     GIVEN(epochs_given), .cfg = "epochs", .help = "epochs (with --resume: the new total)"},
    {.kind = CLI_INT, .name = "--batch", .off = offsetof(T, batch), .val = 1, .meta = "N", .def = "32",
     .cfg = "batch", .help = "images per step"},
    {.kind = CLI_U64, .name = "--seed", .off = offsetof(T, seed), .meta = "N", .def = "1", .cfg = "seed",
     .help = "the seed of the initialization, the shuffles and the split"},
    OPT_THREADS(threads),
    {.kind = CLI_FLAG, .name = "--no-cache", .off = offsetof(T, no_cache), .val = 1, .cfg = "no_cache",
     .help = "recompute the base every batch"},
    OPT_FLAG("--no-standardize", no_standardize, 1,
             "the exact Keras recipe: raw features into the head and Keras' decay;\n"
             "by default a fixed per-feature standardization (training-set mean/std)\n"
             "precedes the head and the rate follows a cosine schedule"),
    {.kind = CLI_ENUM, .name = "--keep", .off = offsetof(T, keep), .names = cli_keep_names, .cfg = "keep",
     .help = "best: end with the weights of the best epoch (val_accuracy, else loss)"},
    OPT_HEAD("output:"),
    {.kind = CLI_STR, .name = "--out", .off = offsetof(T, out), .meta = "MODEL", .def = "model.gft", .cfg = "out",
     .help = "the trained model"},
    {.kind = CLI_STR, .name = "--log", .off = offsetof(T, log), .meta = "FILE.csv", .cfg = "log",
     .help = "one line per epoch"},
    {.kind = CLI_STR, .name = "--export-onnx", .off = offsetof(T, export_onnx), .meta = "FILE.onnx",
     .cfg = "export_onnx", .help = "also write the trained model as ONNX (as graft export does, opset 13)"},
    OPT_JSON_QUIET(json,
                   "one JSON object per line on stdout instead of the text: an \"epoch\" event per\n"
                   "epoch (loss, accuracy, val_*, lr, seconds, images_per_second), then \"saved\",\n"
                   "\"test\" (with --test) and last \"result\" (out, epochs, classes, samples, test_*)",
                   quiet, "only errors and warnings"),
    OPT_STR("--report", report, "DIR", NULL,
            "write the run's record and an HTML report (DIR/index.html: curves, confusion\n"
            "matrix, most confused images, layers); graft report DIR rebuilds it"),
    OPT_STR("--tensorboard", tensorboard, "DIR", NULL,
            "per-epoch scalars (loss, accuracy, val_*, lr, images/s) as a TensorBoard event file"),
    {.kind = CLI_STR, .name = "--checkpoint", .off = offsetof(T, ckpt), .meta = "FILE", .cfg = "checkpoint",
     .def = "MODEL.ckpt, removed at the end", .help = "written after every epoch and on SIGINT/SIGTERM"},
    OPT_STR("--resume", resume, "CKPT", NULL,
            "continue a run from its checkpoint (bit-exact): the model, the recipe and\n"
            "the training settings come from it; --epochs may extend the run"),
    OPT_NOTE("  outputs are new paths or regular files (symlinks written through), never an input of the\n"
             "  run, and locked (<output>.lock) while it lasts; ^C stops after the batch (exit 130), twice: at once\n"
             "several processes (an MPI build, make MPI=1):  mpirun -np N graft train ...\n"
             "                        data parallel: --batch is the global batch, split over the ranks; each\n"
             "                        rank uses cores/ranks-on-its-node threads; rank 0 prints and writes\n"),
    OPT_HEAD("data options (shared by every command that reads data; the recipe is saved in the model):"),
    OPT_GROUP(d, cli_data_all_table),
    OPT_END};
#undef GIVEN
#undef T

static const cli_cmd train_cmd = {
    .name = "train",
    .intro = "usage: graft train --base BASE --data DATA [options]\n"
             "       graft train --data DATA --budget TIME [--base A,B,...] [options]\n"
             "\n"
             "Trains a new head on a frozen pretrained base (Keras' transfer-learning recipe).\n"
             "\n",
    .opts = train_opts,
    .outro = "exit status: 0 trained, 1 a runtime error, 2 a usage error, 130 interrupted (^C)\n"};

/* A checkpoint's settings (its "config") as the run's starting values:
 * each key is an option's (its table entry's cfg) and sets its field.
 * 0 ok, else 2 after printing a bad value.                                */
static int apply_config(train_args *t, json_object *cfg) {
    json_object_object_foreach(cfg, key, v) {
        const char *sv = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (!strcmp(key, "lr")) {   /* a number, or "auto" */
            if (sv) t->lr_auto = 1;
            else t->lr = (float)json_object_get_double(v);
            continue;
        }
        if (!strcmp(key, "head_first")) { t->head_first = json_object_get_int(v); continue; }
        if (!strcmp(key, "budget")) { t->budget = json_object_get_double(v); continue; }
        if (!strcmp(key, "budget_start")) { t->budget_start = json_object_get_double(v); continue; }
        if (!strcmp(key, "plan")) { t->plan = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN); continue; }
        size_t base;
        const cli_opt *o = cli_find_cfg(train_opts, key, &base);
        if (!o) continue;   /* ("samples": a record, not a setting) */
        void *obj = (char *)t + base, *field = (char *)obj + o->off;
        switch (o->kind) {
        case CLI_STR:
        case CLI_ENUM:
            if (sv && cli_set_opt(o, obj, sv)) return CLI_USAGE;
            break;
        case CLI_FLAG: *(int *)field = json_object_get_boolean(v); break;
        case CLI_INT: *(int *)field = json_object_get_int(v); break;
        case CLI_FLOAT: *(float *)field = (float)json_object_get_double(v); break;
        case CLI_U64: *(unsigned long long *)field = (unsigned long long)json_object_get_int64(v); break;
        default: break;
        }
    }
    return 0;
}

/* The settings' checks and the defaults that depend on other settings.
 * cfg: the checkpoint's settings (NULL on the first pass).  0 or 2.      */
static int check(train_args *t, json_object *cfg) {
    if (!t->data && !(t->resume && !cfg))   /* --resume: the checkpoint's (second pass) */
        return cli_usage("--data is required (see graft train --help)");
    if ((t->resume || t->from) && (t->model_opt || t->d.h))
        return cli_usage("%s: the model comes from %s: --cut, --head and --input-size cannot change it",
                         t->model_opt ? t->model_opt : "--input-size", t->resume ? "--resume's checkpoint" : "--from");
    if (t->resume && cli_recipe_given(&t->d))
        return cli_usage("--resume takes the input recipe from the checkpoint: drop --resize, --crop, "
                         "--crop-fraction, --interpolation, --preprocess, --mean, --std, --pixel-scale and "
                         "--channel-order");
    if (t->resume && t->base) return cli_usage("--resume takes the model from the checkpoint: drop --base");
    if (t->budget_cli && t->resume)
        return cli_usage("--budget with --resume: the checkpoint holds the plan and the budget, and the run goes on "
                         "with what is left of it: drop --budget");
    if (t->budget > 0 && !cfg) {   /* (first pass: every setting here is from the command line) */
        const char *c = t->from ? "--from" : t->epochs_given ? "--epochs" : t->cut ? "--cut" : t->unfreeze ? "--unfreeze"
                        : t->d.h ? "--input-size" : t->augment ? "--augment" : t->base_lr_mult_given ? "--base-lr-mult"
                        : !isnan(t->lr) || t->lr_auto ? "--lr" : NULL;
        if (c)
            return cli_usage("--budget chooses the base, input size, cut, what to unfreeze, augmentation, rate "
                             "and epochs: drop %s (or drop --budget)", c);
    }
    if (t->budget > 0 && t->epochs_given && t->resume)
        return cli_usage("--epochs with --resume of a --budget run: the plan sets the epochs within its budget");
    if (!t->base && !t->from && !t->resume && !(t->budget > 0))
        return cli_usage("--base (or --from MODEL, --resume CKPT) is required (see graft train --help)");
    if (t->base && t->from) return cli_usage("give --base or --from, not both");
    if (t->cache_prefix && !t->augment)
        return cli_usage("--cache-prefix does --augment's crop on the cached map: give --augment too (--flip "
                         "alone keeps the cache by itself)");
    if (t->cache_prefix && t->no_cache) return cli_usage("give --cache-prefix or --no-cache, not both");
    if (t->lr_gamma >= 1) return cli_usage("--lr-gamma %g: expected a factor below 1", t->lr_gamma);
    if (t->val_split >= 1) return cli_usage("--val-split %g: expected a fraction in (0, 1)", t->val_split);
    if (t->val && t->val_split > 0) return cli_usage("give --val or --val-split, not both");
    if (t->smoothing >= 1) return cli_usage("--label-smoothing %g: expected a value in [0, 1)", t->smoothing);
    if (t->momentum >= 1) return cli_usage("--momentum %g: expected a value in [0, 1)", t->momentum);
    if (t->rrc > 1) return cli_usage("--random-resized-crop %g: expected the smallest area fraction, in (0, 1]", t->rrc);
    if (t->ema >= 1) return cli_usage("--ema %g: expected a decay in [0, 1) (e.g. 0.999)", t->ema);
    if (t->lr_auto && (t->mixup > 0 || t->cutmix > 0))
        return cli_usage("--lr auto runs on the cached features: it does not go with --%s",
                         t->mixup > 0 ? "mixup" : "cutmix");
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
                         t->weights_partial && !t->weights_given ? "-partial" : "",
                         t->from ? "--from MODEL" : "--resume CKPT");
    /* the default schedule: a cosine decay to 0 makes the run settle on any
     * base and cut (the seed's lr 0.01 with Keras' decay 1e-6 barely moves
     * in 20 epochs, and on standardized features the loss then climbs);
     * the exact Keras recipe keeps Keras' inverse-time decay             */
    if (!t->schedule) t->schedule = t->no_standardize || t->decay_given ? "inverse-time" : "cosine";
    if (isnan(t->lr)) t->lr = cli_enum_parse(cli_optimizer_names, t->optimizer) != GR_OPTIM_SGD ? 0.001f : 0.01f;
    if (cli_enum_parse(cli_optimizer_names, t->optimizer) == GR_OPTIM_ADAMW && t->weight_decay == 0)
        t->weight_decay = 0.01f;
    if (!(t->lr > 0)) return cli_usage("--lr %g: must be positive", t->lr);
    return 0;
}


/* One pass over the command line, from the defaults (and cfg's settings). */
static int parse(int argc, char **argv, train_args *t, json_object *cfg) {
    memset(t, 0, sizeof *t);
    t->weights = "imagenet"; t->out = "model.gft";
    t->epochs = 20; t->batch = 32; t->seed = 1; t->nesterov = 1;
    t->lr = NAN; t->decay = 1e-6f; t->momentum = 0.9f;
    t->optimizer = "sgd"; t->loss = "categorical";
    int rc = cfg ? apply_config(t, cfg) : 0;
    if (rc || (rc = cli_parse(&train_cmd, argc, argv, t))) return rc;
    if (t->json) t->quiet = 1;
    t->model_opt = t->cut ? "--cut" : t->head ? "--head" : NULL;
    t->h = t->d.h, t->w = t->d.w;
    return check(t, cfg);
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

int train_parse(int argc, char **argv, train_args *t, json_object **cfg, int *epochs_done) {
    *cfg = NULL;
    int rc = parse(argc, argv, t, NULL);
    if (rc || !t->resume) return rc;
    gr_error err = {0};
    if (!(*cfg = checkpoint_config(t->resume, epochs_done, &err))) return cli_fail(&err);
    if ((rc = parse(argc, argv, t, *cfg))) return rc;
    if (t->epochs_given && t->epochs < *epochs_done)
        return cli_usage("--epochs %d: %s has already trained %d epochs (give more to extend the run)", t->epochs,
                         t->resume, *epochs_done);
    return 0;
}

int train_config(const train_args *t, int samples, int head_first, char *config, size_t cap, char *ckpt_config,
                 size_t kcap, gr_error *err) {
    json_object *cj = json_object_new_object();
    json_object_object_add(cj, "data", json_object_new_string(t->data));
    json_object_object_add(cj, "samples", json_object_new_int(samples));
    json_object_object_add(cj, "optimizer", json_object_new_string(t->optimizer));
    json_object_object_add(cj, "lr", t->lr_auto ? json_object_new_string("auto") : json_object_new_double(t->lr));
    json_object_object_add(cj, "decay", json_object_new_double(t->decay));
    json_object_object_add(cj, "lr_schedule", json_object_new_string(t->schedule));
    json_object_object_add(cj, "epochs", json_object_new_int(t->epochs));
    json_object_object_add(cj, "momentum", json_object_new_double(t->momentum));
    json_object_object_add(cj, "nesterov", json_object_new_boolean(t->nesterov));
    json_object_object_add(cj, "batch", json_object_new_int(t->batch));
    json_object_object_add(cj, "seed", json_object_new_int64((int64_t)t->seed));
    json_object_object_add(cj, "label_smoothing", json_object_new_double(t->smoothing));
    json_object_object_add(cj, "augment", json_object_new_boolean(t->augment));
    json_object_object_add(cj, "flip", json_object_new_boolean(t->flip));
    json_object_object_add(cj, "cache_prefix", json_object_new_boolean(t->cache_prefix));
    json_object_object_add(cj, "rrc", json_object_new_double(t->rrc));
    json_object_object_add(cj, "mixup", json_object_new_double(t->mixup));
    json_object_object_add(cj, "cutmix", json_object_new_double(t->cutmix));
    json_object_object_add(cj, "ema", json_object_new_double(t->ema));
    json_object_object_add(cj, "tta", json_object_new_string(t->tta ? t->tta : "none"));
    /* the rest of the run, so that --resume CKPT alone continues it as it was */
#define ADD_STR(k, v) if (v) json_object_object_add(cj, k, json_object_new_string(v))
    ADD_STR("val", t->val);
    ADD_STR("test", t->test);
    ADD_STR("monitor", t->monitor);
    ADD_STR("keep", t->keep);
    ADD_STR("format", t->d.format);
    ADD_STR("labels", t->d.labels);
    ADD_STR("split", t->d.split);
    json_object_object_add(cj, "loss", json_object_new_string(t->loss));
    if (t->val_split > 0) json_object_object_add(cj, "val_split", json_object_new_double(t->val_split));
    json_object_object_add(cj, "weight_decay", json_object_new_double(t->weight_decay));
    json_object_object_add(cj, "lr_step", json_object_new_int(t->lr_step));
    json_object_object_add(cj, "lr_gamma", json_object_new_double(t->lr_gamma));
    json_object_object_add(cj, "warmup", json_object_new_double(t->warmup));
    json_object_object_add(cj, "patience", json_object_new_int(t->patience));
    json_object_object_add(cj, "base_lr_mult", json_object_new_double(t->base_lr_mult));
    json_object_object_add(cj, "bn_train", json_object_new_boolean(t->bn_train));
    json_object_object_add(cj, "skip_bad", json_object_new_boolean(t->d.skip_bad));
    json_object_object_add(cj, "head_first", json_object_new_int(head_first));
    if (t->budget > 0) {   /* --budget: the plan and the budget, so that --resume goes on with them */
        json_object_object_add(cj, "budget", json_object_new_double(t->budget));
        json_object_object_add(cj, "budget_start", json_object_new_double(t->budget_start));
        json_object *pj = t->plan ? json_tokener_parse(t->plan) : NULL;
        if (pj) json_object_object_add(cj, "plan", pj);
    }
    int clen = snprintf(config, cap, "%s", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PLAIN));
    json_object_object_add(cj, "out", json_object_new_string(t->out));
    ADD_STR("log", t->log);
    ADD_STR("checkpoint", t->ckpt);
#undef ADD_STR
    json_object_object_add(cj, "no_cache", json_object_new_boolean(t->no_cache));   /* same numbers either way */
    int klen = snprintf(ckpt_config, kcap, "%s", json_object_to_json_string_ext(cj, JSON_C_TO_STRING_PLAIN));
    json_object_put(cj);
    if (clen < 0 || (size_t)clen >= cap || klen < 0 || (size_t)klen >= kcap) {
        gr_error_set(err, GR_ERR_ARG, "the run's settings (paths included) exceed %zu characters", cap);
        return -1;
    }
    return 0;
}
