/* cli.h — what the graft command's subcommands share.  Only the CLI prints
 * and exits; the library returns errors. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H
#include <stdio.h>
#include "graft.h"
#include "report/report.h"
#include "opts.h"

/* Each subcommand: argv[0] is the subcommand's name.  Returns the exit code. */
int cmd_info(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_cache(int argc, char **argv);

/* Exit codes: 0 success, 1 a runtime error (a file missing or bad, a
 * failed run), 2 a usage error (an unknown option, a bad or missing value). */
enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

/* Prints "graft: error: <msg>" to stderr; returns 1 (the exit code). */
int cli_fail(const gr_error *err);
/* printf-style variant for runtime errors found by the CLI; returns 1. */
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* (cli_usage, for usage errors: opts.h) */

/* The data options every command that reads data shares (one parser, one
 * help text): which samples (--format, --labels, --split, --skip-bad) and
 * how an image becomes the network's input (--input-size and the recipe
 * overrides --resize, --crop, --crop-fraction, --interpolation, --preprocess,
 * and the normalization's parts --pixel-scale, --mean, --std, --channel-order). */
typedef struct {
    const char *format, *labels, *split, *resize, *interp, *prep, *order;
    int skip_bad, crop, h, w;    /* h, w: --input-size (0 = the network's / the data's) */
    float crop_fraction;         /* 0 = not given */
    float scale, mean[3], std[3];    /* --pixel-scale, --mean, --std (checked: finite, scale and std > 0) */
    int has_scale, has_mean, has_std;
} cli_data_opts;
/* Whether d overrides any part of the input recipe (--resume refuses them). */
bool cli_recipe_given(const cli_data_opts *d);
/* Their option tables (common.c), for a command's table: OPT_GROUP(d, cli_data_all_table). */
extern const cli_opt cli_data_set_table[], cli_data_recipe_table[], cli_data_all_table[];
/* A command's data options under their usual heading. */
#define OPT_DATA_OPTIONS(fld) OPT_HEAD("data options:"), OPT_GROUP(fld, cli_data_all_table)
/* Applies the recipe overrides of d to *r (a base's or a model's recipe):
 * --preprocess replaces the normalization by its preset, then --pixel-scale,
 * --mean, --std and --channel-order replace their parts of it.            */
void cli_recipe_apply(const cli_data_opts *d, gr_recipe *r);
/* Opens --data: resolves a dataset name, uses d's set options, the size
 * h x w (0: the data's native size, else the network's nh x nw) and recipe r;
 * reports on stderr the files it skipped or ignored.  default_split: when
 * d->split is not given.  NULL + *err on failure.                          */
gr_dataset *cli_open_data(const char *arg, const cli_data_opts *d, gr_split default_split, int h, int w,
                          int nh, int nw, const gr_recipe *r, gr_error *err);
/* A base's own input size and recipe (built without weights). 0 ok. */
int cli_base_defaults(const char *base, int *h, int *w, gr_recipe *r, gr_error *err);

/* Parses "HxW" (or "N" for NxN) into h, w.  0 ok, -1 bad. */
int cli_parse_size(const char *s, int *h, int *w);
/* (cli_parse_int, cli_parse_float: opts.h) */

/* The --base metavariable of every command's help. */
#define CLI_BASE_METAVAR "vgg16|resnet50|tiny-darknet|darknet:FILE.cfg|tflite:FILE.tflite|onnx:FILE.onnx"

/* Builds a base from "--base" text: "vgg16" or "darknet:PATH.cfg"; h, w = 0
 * means the base's native size (vgg16: 224x224; darknet: [net] size).      */
gr_model *cli_build_base(const char *base, int h, int w, bool include_top, gr_error *err);

/* --data argument: an existing path, or a known dataset name to fetch. 0 ok. */
int cli_resolve_data(const char *arg, char *out, size_t cap, gr_error *err);
/* Loads the weights of base (its --base text) into m: weights = a file,
 * "imagenet" or NULL (the fetched canonical file; vgg16 with include_top:
 * the one with the classifier), "none"/"random" (left untrained, said).
 * Every weighted layer must load unless partial (--weights-partial).  A
 * tflite: base holds its weights: any --weights but imagenet is refused.
 * say: where the one line "weights: ..." goes (and, for a partial load, the
 * layers not loaded); NULL = --quiet.  full_report: print the load report
 * first.  0 ok, -1 + *err.                                                */
int cli_load_weights(gr_model *m, const char *base, const char *weights, bool include_top, bool partial,
                     FILE *say, bool full_report, gr_error *err);
/* Builds a base ("vgg16", "resnet50", "tiny-darknet", "darknet:CFG",
 * "tflite:FILE") and loads its weights with cli_load_weights.             */
gr_model *cli_load_base(const char *base, const char *weights, int h, int w, bool include_top, bool partial,
                        FILE *say, gr_error *err);
/* The default cut: the whole headless base; for darknet networks the layer
 * before the last 1000-class convolution.                                  */
int cli_default_cut(const gr_model *m);
/* The node of layer `name` in m (a layer name, or for an imported ONNX base
 * one of its tensor or node names), else -1 with an error for option opt
 * listing the base's cut candidates.                                      */
int cli_find_layer(const gr_model *m, const char *opt, const char *base, const char *name, gr_error *err);
/* Appends a head spec ("flatten,dense:1024:relu,dense:10:softmax", "gap",
 * "dropout:0.5", "dense:N" with N = n_classes) to m.  0 ok, -1 + *err.    */
int cli_append_head(gr_model *m, const char *spec, int n_classes, gr_error *err);

/* Labels are class indices: refuses data (-1 + *err) whose class k has a name
 * that the model has under another index (a folder with a subset of the
 * classes, another order).  Unnamed or unknown names pass.                */
int cli_check_classes(const gr_model *m, const gr_dataset *ds, const char *data, const char *model,
                      gr_error *err);

/* Training data must have at least 2 classes and an image in every class
 * (integer CSV labels {0, 5} make 6 classes, 4 of them empty): -1 + *err
 * naming data and the empty classes otherwise.                            */
int cli_check_training_classes(const gr_dataset *ds, const char *data, gr_error *err);

/* Prints v as a JSON number (%.6f) on stdout; NaN/Inf, which JSON cannot
 * hold, as null.                                                           */
void cli_json_number(double v);
/* Prints " " and s quoted for a POSIX shell (as is when it needs no quotes). */
void cli_print_shell_word(FILE *f, const char *s);

/* Prints s as a JSON string literal (quoted, escaped) on stdout. */
void cli_json_string(const char *s);

/* ---- outputs (outputs.c): every command that writes files ----
 * Before any long work, a command lists its outputs (cli_outputs_add) and
 * claims them against its inputs (cli_outputs_claim): each output must be a
 * new path or a regular file (a symlink counts as the file it points to:
 * that file is replaced, the link stays), no output may be an input of the
 * run (same st_dev/st_ino, through symlinks; an existing file inside an
 * input directory), and no two outputs may be one file.  Then each output
 * is locked ("<output>.lock" beside the real target, flock, holding the
 * pid) so a second run writing it is refused naming the first one's pid;
 * once locked, temp files beside it that a killed run left are removed.
 * The files themselves are written through gr_outfile (io/outfile.h).      */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#define CLI_MAX_OUTPUTS 8
typedef struct {
    int n;
    const char *opt[CLI_MAX_OUTPUTS];      /* the option naming it ("--out"), for messages */
    const char *path[CLI_MAX_OUTPUTS];     /* as given */
    const char *may_be[CLI_MAX_OUTPUTS];   /* an input this output may be (--checkpoint = --resume) */
    char real[CLI_MAX_OUTPUTS][4096];      /* symlinks resolved */
    char lock[CLI_MAX_OUTPUTS][4104];      /* the lock file, "" when not held */
    int lock_fd[CLI_MAX_OUTPUTS];
} cli_outputs;

/* An input of the run: the option and its value (path NULL or not a file: skipped). */
typedef struct { const char *opt, *path; } cli_input;
/* Adds an output (path NULL: nothing); may_be: an input it may equal. */
void cli_outputs_add(cli_outputs *o, const char *opt, const char *path, const char *may_be);
/* Checks and locks every output.  inputs: the run's input paths (NULL or
 * non-paths are skipped).  0 ok, else the exit code after printing the
 * error: 2 for a usage error (not a regular file, an input of the run, two
 * outputs that are one file), 1 when the directory cannot be written or
 * another run holds the lock.                                             */
int cli_outputs_claim(cli_outputs *o, const cli_input *inputs, int n_in);
/* Removes the lock files (call before returning; safe when none is held). */
void cli_outputs_release(cli_outputs *o);

/* ---- ^C (outputs.c) ----
 * cli_stop_prepare: first thing in a command that computes (starts the
 * OpenMP pool with SIGINT/SIGTERM blocked).  cli_stop_start: from here on a
 * first SIGINT/SIGTERM sets *flag (the run stops after its current batch,
 * also during a features pass); a second removes this run's temporary
 * files ("<output>.tmp.<pid>", the features cache's) and lock files and
 * exits at once with status 130.  cli_stop_end restores the signals.      */
typedef struct {
    volatile int *flag;
    cli_outputs *outs;
    sigset_t set, old;
    pthread_t waiter;
    bool have_waiter;
} cli_stop;
void cli_stop_prepare(void);
void cli_stop_start(cli_stop *s, cli_outputs *outs);
void cli_stop_end(cli_stop *s);

/* Exit status of a run stopped by SIGINT/SIGTERM (128 + SIGINT, as shells). */
#define CLI_EXIT_INTERRUPTED 130
/* --report DIR / --tensorboard DIR of train and eval (cmd_report.c). */
typedef struct {
    const char *dir;         /* --report DIR, or NULL */
    json_object *run;        /* the run record (NULL without --report) */
    gr_tb_writer *tb;        /* --tensorboard, or NULL */
    char history[4200];      /* DIR/history.csv */
    double t0, images, seconds;
    int n_train, epochs;
    bool json;               /* --json: epoch events as JSON lines on stdout */
    bool tb_failed;
    gr_error tb_err;
} cli_run;

/* What a train run records (cli_run_train_info). */
typedef struct {
    const gr_model *model;
    const char *base, *weights, *model_file, *config_json, *monitor;
    int epochs, patience, head_first;
    float lr, base_lr_mult;
    const gr_dataset *train, *val, *test;
    const char *train_src, *val_src, *test_src;
    const int *tr_idx, *va_idx;
    int n_tr, n_va;
} cli_run_train;

/* Starts the record: creates DIR (and the TensorBoard file).  keep_existing:
 * an eval adds to DIR/run.json when a train run left one.  0 ok, -1 + *err. */
int cli_run_begin(cli_run *r, const char *report_dir, const char *tb_dir, bool keep_existing, int argc,
                  char **argv, gr_error *err);
/* gr_fit_opts.on_epoch (ctx = the cli_run): TensorBoard scalars, img/s. */
void cli_run_on_epoch(const gr_epoch_log *e, void *ctx);
/* With --json: prints {"event": event, key: value[, "loss", "accuracy"]} (NaN: left out). */
void cli_run_event(const cli_run *r, const char *event, const char *key, const char *value, double loss,
                   double accuracy);
int cli_run_train_info(cli_run *r, const cli_run_train *t, gr_error *err);
int cli_run_probe(cli_run *r, const gr_probe_row *rows, int n, int chosen, gr_error *err);
int cli_run_eval(cli_run *r, const gr_model *m, const gr_dataset *ds, const char *src, const gr_eval_result *res,
                 gr_error *err);
/* Wall time, peak RSS, img/s; copies log_csv (when not DIR/history.csv) in;
 * writes DIR/run.json and builds DIR/index.html.  0 ok, -1 + *err.        */
int cli_run_finish(cli_run *r, const char *log_csv, bool interrupted, bool quiet, gr_error *err);
void cli_run_free(cli_run *r);

#endif
