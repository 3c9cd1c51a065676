/* cli.h — what the graft command's subcommands share.  Only the CLI prints
 * and exits; the library returns errors. */
#ifndef GRAFT_CLI_H
#define GRAFT_CLI_H
#include <stdio.h>
#include "graft.h"

/* Each subcommand: argv[0] is the subcommand's name.  Returns the exit code. */
int cmd_info(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_probe(int argc, char **argv);

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

/* The preprocessing a base's published weights were trained with:
 * vgg16/resnet50 (Keras) caffe, tflite: tf, darknet networks darknet.     */
gr_preprocess cli_default_preprocess(const char *base);

/* Prints v as a JSON number (%.6f) on stdout; NaN/Inf, which JSON cannot
 * hold, as null.                                                           */
void cli_json_number(double v);
/* Prints s as a JSON string literal (quoted, escaped) on stdout. */
void cli_json_string(const char *s);

#endif
