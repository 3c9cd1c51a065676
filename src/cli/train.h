/* train.h — `graft train`'s settings, shared by its two files:
 * train_args.c (the option table, the checks, the settings saved in the
 * model and checkpoints) and cmd_train.c (the run, in phases).           */
#ifndef GRAFT_CLI_TRAIN_H
#define GRAFT_CLI_TRAIN_H
#include <json.h>
#include "cli.h"

typedef struct {
    const char *base, *weights, *from, *cut, *head, *data, *val, *test, *out, *log, *ckpt;
    const char *export_onnx;   /* --export-onnx FILE: the model also as ONNX (cmd_export.c's writer) */
    const char *optimizer, *loss, *resume, *keep, *unfreeze, *schedule, *monitor;   /* enums: their names */
    const char *report, *tensorboard;
    const char *tta;         /* --tta none|flip */
    cli_data_opts d;         /* --format, --labels, --split, --skip-bad, --input-size, the recipe */
    int h, w, epochs, batch, threads, quiet, json, no_cache, augment, nesterov, no_standardize, lr_auto;
    int flip, cache_prefix;   /* --flip: the flip alone; --cache-prefix: --augment's crop on the cached map */
    int decay_given;         /* --decay on the command line: Keras' inverse-time schedule by default */
    int bn_train, lr_step, patience;
    int weights_given, weights_partial;   /* --weights on the command line; --weights-partial */
    int base_lr_mult_given, smoothing_given;
    int epochs_given;        /* --epochs on the command line (with --resume: extends the run) */
    int head_first;          /* --resume: the first trained node, from the checkpoint */
    const char *model_opt;   /* --cut or --head when given (refused with --resume/--from) */
    float lr, decay, momentum, val_split, smoothing, weight_decay, base_lr_mult, lr_gamma, warmup;
    float rrc, mixup, cutmix, ema;   /* --random-resized-crop, --mixup, --cutmix, --ema */
    unsigned long long seed;
    /* --budget (train_budget.c): seconds (0 = none), given on this command line; when the budget
     * began (Unix time; a resumed run moves it by the pause); the plan (JSON text) */
    double budget, budget_start;
    int budget_cli;
    const char *plan;
} train_args;

/* Parses the command line into *t, with --resume: the checkpoint's settings
 * as the defaults (*cfg, freed by the caller with json_object_put, and
 * *epochs_done).  0 ok, CLI_HELP (--help printed), else the exit code
 * after printing the error.                                                */
int train_parse(int argc, char **argv, train_args *t, json_object **cfg, int *epochs_done);

/* The run's settings as JSON: config (saved in the model) and ckpt_config
 * (in checkpoints: also where the run writes), so that --resume CKPT alone
 * continues the run as it was.  samples: the training images; head_first:
 * the first trained node.  0 ok, -1 + *err (too long).                    */
int train_config(const train_args *t, int samples, int head_first, char *config, size_t cap, char *ckpt_config,
                 size_t kcap, gr_error *err);

/* --budget: what the plan chose (the strings train_args points at). */
typedef struct {
    char base[4096], weights[4096], cut[64], unfreeze[64];
    double eval_s;           /* the final evaluation's estimate (time kept back from training) */
    char json[32768];        /* the plan: choice, why, the candidates table */
} budget_plan_out;

/* --budget TIME (train_budget.c): probes the data with each base at a few
 * input sizes, measures the throughput of each way to train on this
 * machine, prints the plan table and sets t's base, weights, cut, input
 * size, unfreeze, augmentation, rate multiplier, epochs and plan (pointing
 * into *out).  t_start: the run's start (CLOCK_MONOTONIC seconds).
 * 0 ok, -1 + *err.                                                         */
int budget_plan(train_args *t, double t_start, budget_plan_out *out, gr_error *err);

#endif
