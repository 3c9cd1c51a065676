/* report.h — what a run leaves for people to look at (src/report/).
 *
 * A run's record lives in one directory:
 *   DIR/run.json      the run: command line, version, base, cut, layers
 *                     (trainable or frozen, at which rate), data (class
 *                     counts per split), settings, timings, the probe table,
 *                     the evaluation (confusion matrix, per-class P/R/F1,
 *                     top-5, the most confused pairs with their images);
 *   DIR/history.csv   one row per epoch (the format of `graft train --log`);
 *   DIR/thumbs/N.png  thumbnails of misclassified evaluation images.
 * gr_report_build turns the record into DIR/index.html (self-contained: no
 * script, no network; images referenced relatively) and the charts beside
 * it (PNG and SVG, drawn with cairo).  `graft report DIR` rebuilds it.
 *
 *   json_object *run = gr_report_run_new(argc, argv, &err);
 *   gr_report_add_model(run, m, head_first, base_lr_mult, &err);
 *   ... train, write DIR/history.csv, evaluate ...
 *   gr_report_add_eval(run, dir, m, test, "cifar10", &r, &err);
 *   gr_report_save(dir, run, &err);  gr_report_build(dir, &err);
 */
#ifndef GRAFT_REPORT_H
#define GRAFT_REPORT_H
#include <json.h>
#include "graft.h"

/* A new run record: the command line (argv joined, shell-quoted where needed),
 * graft's version, the UTC start time.  NULL + *err when out of memory.    */
json_object *gr_report_run_new(int argc, char **argv, gr_error *err);

/* Sets run[key] = val (takes val's reference; val NULL = out of memory). */
gr_status gr_report_set(json_object *run, const char *key, json_object *val, gr_error *err);

/* run["model"]: input size, preprocessing, class names, parameter counts and
 * the layers table (name, op, output shape, parameters, frozen, lr multiplier:
 * base_lr_mult for trainable nodes below head_first when head_first > 0;
 * the cut is node head_first - 1 then, else the last frozen node).         */
gr_status gr_report_add_model(json_object *run, const gr_model *m, int head_first, float base_lr_mult,
                              gr_error *err);

/* run["data"][split] = {source, images, counts per class} for samples
 * idx[0..n) of ds (idx NULL: all).                                         */
gr_status gr_report_add_data(json_object *run, const char *split, const char *source, const gr_dataset *ds,
                             const int *idx, int n, gr_error *err);

/* run["probe"]: the scored cuts (name, shape, form, ridge accuracy, LogME),
 * chosen = the node picked.                                                 */
gr_status gr_report_add_probe(json_object *run, const gr_probe_row *rows, int n, int chosen, gr_error *err);

/* run["eval"]: loss, accuracy, top-5, confusion, per-class precision, recall,
 * F1 and support, and the most confused pairs (true -> predicted) with up to
 * 8 examples each (the most confident mistakes), whose thumbnails are written
 * to dir/thumbs/.  r must come from gr_evaluate(m, ds, NULL, ...).          */
gr_status gr_report_add_eval(json_object *run, const char *dir, const gr_model *m, const gr_dataset *ds,
                             const char *source, const gr_eval_result *r, gr_error *err);

/* Creates dir (and its parents) when missing; an error names it. */
gr_status gr_report_mkdir(const char *dir, gr_error *err);
/* Writes dir/run.json atomically (temp file, fsync, rename). */
gr_status gr_report_save(const char *dir, json_object *run, gr_error *err);
/* Reads dir/run.json; NULL + *err (missing, not JSON, not an object). */
json_object *gr_report_load(const char *dir, gr_error *err);

/* Writes dir/index.html and the charts (loss, accuracy, lr, confusion; .png
 * and .svg) from dir/run.json and dir/history.csv (optional).              */
gr_status gr_report_build(const char *dir, gr_error *err);

/* ---- charts (charts.c, cairo) ---- */
typedef struct {
    const char *name;        /* legend text */
    const double *x, *y;     /* n points; NaN y values are skipped */
    int n;
    unsigned rgb;            /* 0xRRGGBB */
    bool dashed;
    bool points;             /* markers only (e.g. the test score) */
} gr_chart_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int width, height;       /* pixels (0 = 640 x 360) */
    double best_x;           /* a vertical marker "best" at this x (NaN = none) */
    double stop_x;           /* a vertical marker "early stop" (NaN = none) */
} gr_chart_opts;

/* A line chart written to png (and svg when not NULL). */
gr_status gr_chart_lines(const char *png, const char *svg, const gr_chart_series *s, int ns,
                         const gr_chart_opts *o, gr_error *err);
/* The confusion matrix C x C (rows = true class) as a heatmap with counts
 * (counts drawn when the cells are large enough); *w, *h = its size.       */
gr_status gr_chart_confusion(const char *png, const char *svg, const int64_t *conf, int C,
                             const char *const *names, int *w, int *h, gr_error *err);

/* ---- thumbnails (thumbs.c, libpng) ---- */
/* Writes an RGB8 image [h][w][3] as a PNG file. */
gr_status gr_png_write_rgb(const char *path, const uint8_t *rgb, int h, int w, gr_error *err);

/* ---- TensorBoard scalars (tb_events.c, protobuf-c) ---- */
typedef struct gr_tb_writer gr_tb_writer;
/* Creates dir and dir/events.out.tfevents.<time>.<host>.graft; writes the
 * file-version event.                                                     */
gr_tb_writer *gr_tb_open(const char *dir, gr_error *err);
/* Appends one scalar summary event (tag, step, value); flushes. */
gr_status gr_tb_scalar(gr_tb_writer *w, const char *tag, int64_t step, double value, gr_error *err);
void gr_tb_close(gr_tb_writer *w);
const char *gr_tb_path(const gr_tb_writer *w);
/* CRC32C (Castagnoli) of n bytes, as TFRecord framing uses it (unmasked). */
uint32_t gr_crc32c(const void *data, size_t n);

#endif
