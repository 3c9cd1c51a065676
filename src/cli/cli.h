/* cli.h — what the graft command's subcommands share.  Only the CLI prints
 * and exits; the library returns errors. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H
#include <stdio.h>
#include "graft.h"
#include "report/report.h"

/* Each subcommand: argv[0] is the subcommand's name.  Returns the exit code. */
int cmd_info(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Prints "graft: error: <msg>" to stderr; returns 1 (the exit code). */
int cli_fail(const gr_error *err);
/* printf-style variant for CLI-level errors (bad options). */
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses "HxW" (or "N" for NxN) into h, w.  0 ok, -1 bad. */
int cli_parse_size(const char *s, int *h, int *w);
/* Parses a positive int / a float option value; -1 when malformed. */
int cli_parse_int(const char *s, int *out);
int cli_parse_float(const char *s, float *out);

/* Builds a base from "--base" text: "vgg16" or "darknet:PATH.cfg"; h, w = 0
 * means the base's native size (vgg16: 224x224; darknet: [net] size).      */
gr_model *cli_build_base(const char *base, int h, int w, bool include_top, gr_error *err);

/* --data argument: an existing path, or a known dataset name to fetch. 0 ok. */
int cli_resolve_data(const char *arg, char *out, size_t cap, gr_error *err);
/* Builds a base ("vgg16", "tiny-darknet", "darknet:CFG") and loads weights
 * (a file, "imagenet" = the fetched canonical file, or NULL/"none").       */
gr_model *cli_load_base(const char *base, const char *weights, int h, int w, bool quiet,
                        gr_error *err);
/* The default cut: the whole headless base; for darknet networks the layer
 * before the last 1000-class convolution.                                  */
int cli_default_cut(const gr_model *m);
/* Appends a head spec ("flatten,dense:1024:relu,dense:10:softmax", "gap",
 * "dropout:0.5", "dense:N" with N = n_classes) to m.  0 ok, -1 + *err.    */
int cli_append_head(gr_model *m, const char *spec, int n_classes, gr_error *err);

/* Labels are class indices: refuses data (-1 + *err) whose class k has a name
 * that the model has under another index (a folder with a subset of the
 * classes, another order).  Unnamed or unknown names pass.                */
int cli_check_classes(const gr_model *m, const gr_dataset *ds, const char *data, const char *model,
                      gr_error *err);

/* The preprocessing a base's published weights were trained with:
 * vgg16/resnet50 (Keras) caffe, tflite: tf, darknet networks darknet.     */
gr_preprocess cli_default_preprocess(const char *base);

/* Prints s as a JSON string literal (quoted, escaped) on stdout. */
void cli_json_string(const char *s);

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
