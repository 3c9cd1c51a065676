/* report.c — DIR/index.html from the run record (DIR/run.json and
 * DIR/history.csv): the run at a glance, the curves, the evaluation, the
 * most confused pairs with their images, the probe table and the layers.
 * One self-contained page: inline CSS, no script, no network; the charts
 * and thumbnails are files beside it, referenced relatively. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "graph/model.h"
#include "report/report.h"

typedef struct {
    int n;
    double *v[7];   /* epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds */
} history;

static const char *const COLS[7] = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"};

static void history_free(history *h) {
    for (int k = 0; k < 7; k++) free(h->v[k]);
    memset(h, 0, sizeof *h);
}

/* Reads dir/history.csv (absent: an empty history). */
static gr_status history_load(const char *dir, history *h, gr_error *err) {
    memset(h, 0, sizeof *h);
    char path[4200], line[1024];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? GR_OK : gr_error_set(err, GR_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    int cap = 0, ln = 0;
    gr_status st = GR_OK;
    while (st == GR_OK && fgets(line, sizeof line, f)) {
        ln++;
        if (ln == 1) {
            if (strncmp(line, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds", 52) != 0)
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: line 1: expected the header "
                                  "'epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds'", path);
            continue;
        }
        if (line[0] == '\n' || !line[0]) continue;
        if (h->n == cap) {
            cap = cap ? 2 * cap : 64;
            for (int k = 0; k < 7 && st == GR_OK; k++) {
                double *p = realloc(h->v[k], (size_t)cap * sizeof(double));
                if (!p) st = gr_error_set(err, GR_ERR_NOMEM, "out of memory reading %s", path);
                else h->v[k] = p;
            }
            if (st != GR_OK) break;
        }
        char *s = line;
        for (int k = 0; k < 7; k++) {
            char *end;
            h->v[k][h->n] = strtod(s, &end);
            if (end == s || (k < 6 ? *end != ',' : (*end && *end != '\n' && *end != '\r'))) {
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: line %d: expected 7 numbers (%s)", path, ln, COLS[k]);
                break;
            }
            s = end + 1;
        }
        if (st == GR_OK) h->n++;
    }
    fclose(f);
    if (st != GR_OK) history_free(h);
    return st;
}

static json_object *jget(json_object *o, const char *key) {
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}
static const char *jstr(json_object *o, const char *key) {
    json_object *v = jget(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}
static double jnum(json_object *o, const char *key) {
    json_object *v = jget(o, key);
    return v && (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
               ? json_object_get_double(v) : NAN;
}

/* HTML text: &, <, >, " escaped. */
static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* One key/value row of the at-a-glance table; printf-style value, escaped. */
static void kv(FILE *f, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kv(FILE *f, const char *key, const char *fmt, ...) {
    char buf[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(f, "<tr><th>");
    esc(f, key);
    fprintf(f, "</th><td>");
    esc(f, buf);
    fprintf(f, "</td></tr>\n");
}

static void num_cell(FILE *f, double v, int dec) {
    if (isfinite(v)) fprintf(f, "<td class=n>%.*f</td>", dec, v);
    else fprintf(f, "<td class=n>&ndash;</td>");
}

/* The epoch the run kept as best: fit.c's rule, epoch_end (val_accuracy, or -val_loss
 * with monitor val_loss, or -loss without validation; the first maximum). */
static int best_epoch(const history *h, const char *monitor) {
    int best = -1;
    double bs = -INFINITY;
    for (int i = 0; i < h->n; i++) {
        bool val = isfinite(h->v[4][i]);
        double s = val ? (monitor && !strcmp(monitor, "val_loss") ? -h->v[3][i] : h->v[4][i]) : -h->v[1][i];
        if (s > bs) { bs = s; best = i; }
    }
    return best;
}

static const char *CSS =
    "body{font:14px/1.45 'DejaVu Sans',sans-serif;margin:24px auto;max-width:1320px;color:#222;padding:0 16px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}"
    "h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;margin:8px 0}"
    "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}"
    "table.kv th{width:190px}code,.cmd{font-family:'DejaVu Sans Mono',monospace;font-size:12px}"
    ".cmd{background:#f5f5f5;padding:6px 8px;display:block;white-space:pre-wrap;word-break:break-all}"
    ".charts{display:flex;flex-wrap:wrap;gap:8px}.charts img{max-width:100%;height:auto;border:1px solid #eee}"
    ".charts img.half{width:calc(50% - 6px)}"
    ".grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;width:120px;text-align:center;font-size:11px;line-height:1.3}"
    ".grid img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;background:#fafafa}"
    "tr.best td{background:#e8f5e9}tr.frozen td{color:#777}.muted{color:#777}"
    ".row{display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start}";

/* A report being built: the record's parts and what the charts gave. */
typedef struct {
    const char *dir;
    gr_error *err;
    json_object *run, *model, *train, *ev, *data, *probe;
    history h;
    const char *monitor;
    int best;                /* the best epoch's row, or -1 */
    double req;              /* epochs requested */
    bool stopped;            /* early stopping ended the run */
    bool have_conf;
    int conf_w, conf_h;
    int C;                   /* classes of the evaluation */
    const char **names;      /* their names [C], or NULL */
} page;

/* loss.png, accuracy.png, lr.png (and .svg) from the history. */
static gr_status draw_curves(page *p) {
    const history *h = &p->h;
    const char *dir = p->dir;
    char png[4300], svg[4300];
    double tx[1] = {h->v[0][h->n - 1]}, tl[1] = {jnum(p->ev, "loss")}, ta[1] = {jnum(p->ev, "accuracy")};
    bool test_pt = p->ev != NULL;
    gr_chart_opts o = {.xlabel = "epoch", .best_x = p->best >= 0 ? h->v[0][p->best] : NAN,
                       .stop_x = p->stopped ? h->v[0][h->n - 1] : NAN};
    gr_chart_series s[3] = {
        {"train", h->v[0], h->v[1], h->n, 0x1f77b4, false, false},
        {"validation", h->v[0], h->v[3], h->n, 0xff7f0e, true, false},
        {"test", tx, tl, 1, 0xd62728, false, true}};
    o.title = "Loss"; o.ylabel = "cross-entropy";
    snprintf(png, sizeof png, "%s/loss.png", dir);
    snprintf(svg, sizeof svg, "%s/loss.svg", dir);
    gr_status st = gr_chart_lines(png, svg, s, test_pt ? 3 : 2, &o, p->err);
    s[0].y = h->v[2]; s[1].y = h->v[4]; s[2].y = ta;
    o.title = "Accuracy"; o.ylabel = "accuracy";
    snprintf(png, sizeof png, "%s/accuracy.png", dir);
    snprintf(svg, sizeof svg, "%s/accuracy.svg", dir);
    if (st == GR_OK) st = gr_chart_lines(png, svg, s, test_pt ? 3 : 2, &o, p->err);
    gr_chart_series lr = {"learning rate (end of epoch)", h->v[0], h->v[5], h->n, 0x6a3d9a, false, false};
    o.title = "Learning rate"; o.ylabel = "lr"; o.best_x = o.stop_x = NAN;
    snprintf(png, sizeof png, "%s/lr.png", dir);
    snprintf(svg, sizeof svg, "%s/lr.svg", dir);
    if (st == GR_OK) st = gr_chart_lines(png, svg, &lr, 1, &o, p->err);
    return st;
}

/* The class names and confusion.png (and .svg) from the evaluation. */
static gr_status draw_confusion(page *p) {
    json_object *classes = jget(p->ev, "classes"), *conf = jget(p->ev, "confusion");
    int C = p->C = classes ? (int)json_object_array_length(classes) : 0;
    if (!(C > 0 && conf && (int)json_object_array_length(conf) == C)) return GR_OK;
    char png[4300], svg[4300];
    gr_status st = GR_OK;
    p->names = calloc((size_t)C, sizeof *p->names);
    int64_t *cm = calloc((size_t)C * C, sizeof *cm);
    if (!p->names || !cm) st = gr_error_set(p->err, GR_ERR_NOMEM, "out of memory (report)");
    for (int i = 0; st == GR_OK && i < C; i++) {
        p->names[i] = json_object_get_string(json_object_array_get_idx(classes, i));
        json_object *row = json_object_array_get_idx(conf, i);
        if (!row || (int)json_object_array_length(row) != C) {
            st = gr_error_set(p->err, GR_ERR_FORMAT, "%s/run.json: eval.confusion row %d is not %d counts", p->dir, i, C);
            break;
        }
        for (int j = 0; j < C; j++) cm[(size_t)i * C + j] = json_object_get_int64(json_object_array_get_idx(row, j));
    }
    snprintf(png, sizeof png, "%s/confusion.png", p->dir);
    snprintf(svg, sizeof svg, "%s/confusion.svg", p->dir);
    if (st == GR_OK) st = gr_chart_confusion(png, svg, cm, C, p->names, &p->conf_w, &p->conf_h, p->err);
    p->have_conf = st == GR_OK;
    free(cm);
    return st;
}

/* The at-a-glance table's training rows. */
static void glance_train(FILE *f, const page *p) {
    json_object *train = p->train, *aug = jget(train, "augment");
    const history *h = &p->h;
    kv(f, "augmentation", "%s", aug && json_object_get_boolean(aug) ? "random crop (pad 4) + horizontal flip" : "none");
    char lr[32];
    if (jstr(train, "lr")) snprintf(lr, sizeof lr, "%s", jstr(train, "lr"));   /* "auto" */
    else snprintf(lr, sizeof lr, "%g", jnum(train, "lr"));
    kv(f, "optimizer", "%s, lr %s, schedule %s, batch %.0f", jstr(train, "optimizer") ? jstr(train, "optimizer") : "?",
       lr, jstr(train, "lr_schedule") ? jstr(train, "lr_schedule") : "?", jnum(train, "batch"));
    kv(f, "seed", "%.0f", jnum(train, "seed"));
    kv(f, "epochs", "%d of %.0f%s", h->n, p->req,
       p->stopped ? " (early stopping)" : jget(p->run, "interrupted") ? " (interrupted)" : "");
    int best = p->best;
    if (best >= 0) {
        bool vl = p->monitor && !strcmp(p->monitor, "val_loss");
        kv(f, "best epoch", "%.0f (%s %.4f)", h->v[0][best],
           isfinite(h->v[4][best]) ? (vl ? "val_loss" : "val_accuracy") : "loss",
           isfinite(h->v[4][best]) ? (vl ? h->v[3][best] : h->v[4][best]) : h->v[1][best]);
    }
}

/* The title, the command and the at-a-glance table. */
static void write_glance(FILE *f, const page *p) {
    json_object *run = p->run, *model = p->model, *ev = p->ev;
    const char *sub = jstr(run, "subcommand");
    fprintf(f, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
               "<title>graft report: ");
    esc(f, jstr(run, "base") ? jstr(run, "base") : (sub ? sub : "run"));
    fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>graft %s report</h1>\n", CSS, sub ? sub : "");
    fprintf(f, "<div class=muted>%s &middot; graft %s</div>\n", jstr(run, "started") ? jstr(run, "started") : "",
            jstr(run, "version") ? jstr(run, "version") : "?");
    fprintf(f, "<h2 id=glance-h>The run at a glance</h2>\n<span class=cmd>");
    esc(f, jstr(run, "command"));
    fprintf(f, "</span>\n<div class=row><div><table class=kv id=glance>\n");
    if (jstr(run, "base")) kv(f, "base", "%s (weights %s)", jstr(run, "base"), jstr(run, "weights") ? jstr(run, "weights") : "?");
    if (jstr(run, "model_file")) kv(f, "model", "%s", jstr(run, "model_file"));
    if (model) {
        json_object *in = jget(model, "input");
        if (jstr(model, "cut")) kv(f, "cut", "%s", jstr(model, "cut"));
        if (in && json_object_array_length(in) == 3)
            kv(f, "input size", "%dx%dx%d", json_object_get_int(json_object_array_get_idx(in, 0)),
               json_object_get_int(json_object_array_get_idx(in, 1)), json_object_get_int(json_object_array_get_idx(in, 2)));
        kv(f, "preprocessing", "%s", jstr(model, "preprocess") ? jstr(model, "preprocess") : "?");
        kv(f, "parameters", "%.0f (%.0f trainable)", jnum(model, "params"), jnum(model, "trainable_params"));
    }
    if (p->train) glance_train(f, p);
    if (isfinite(jnum(run, "wall_seconds"))) kv(f, "wall time", "%.1f s", jnum(run, "wall_seconds"));
    if (isfinite(jnum(run, "images_per_second"))) kv(f, "training speed", "%.0f images/s", jnum(run, "images_per_second"));
    if (isfinite(jnum(run, "peak_rss_mb"))) kv(f, "peak memory (RSS)", "%.0f MB", jnum(run, "peak_rss_mb"));
    if (ev) {
        kv(f, "evaluation accuracy", "%.4f (top-5 %.4f) on %s", jnum(ev, "accuracy"), jnum(ev, "top5"),
           jstr(ev, "source") ? jstr(ev, "source") : "?");
    }
    fprintf(f, "</table></div>\n");
}

/* The data table beside the glance table, and the images per class. */
static void write_data(FILE *f, json_object *data) {
    fprintf(f, "<div><h3>Data</h3>\n<table id=data><tr><th>split</th><th>source</th><th>images</th><th>classes</th></tr>\n");
    json_object *first = NULL;
    json_object_object_foreach(data, split, d) {
        if (!first) first = d;
        fprintf(f, "<tr><td>");
        esc(f, split);
        fprintf(f, "</td><td><code>");
        esc(f, jstr(d, "source"));
        fprintf(f, "</code></td><td class=n>%.0f</td><td class=n>%.0f</td></tr>\n", jnum(d, "images"), jnum(d, "classes"));
    }
    fprintf(f, "</table>\n");
    json_object *cn = jget(first, "class_names");
    int nc = cn ? (int)json_object_array_length(cn) : 0;
    if (nc > 0 && nc <= 200) {
        fprintf(f, "<details%s><summary>images per class</summary>\n<table id=class-counts><tr><th>class</th>",
                nc <= 20 ? " open" : "");
        json_object_object_foreach(data, split2, d2) { (void)d2; fprintf(f, "<th>"); esc(f, split2); fprintf(f, "</th>"); }
        fprintf(f, "</tr>\n");
        for (int k = 0; k < nc; k++) {
            fprintf(f, "<tr><td>");
            esc(f, json_object_get_string(json_object_array_get_idx(cn, k)));
            fprintf(f, "</td>");
            json_object_object_foreach(data, split3, d3) {
                (void)split3;
                json_object *cnt = jget(d3, "counts");
                json_object *v = cnt ? json_object_array_get_idx(cnt, k) : NULL;
                if (v) fprintf(f, "<td class=n>%lld</td>", (long long)json_object_get_int64(v));
                else fprintf(f, "<td class=n>&ndash;</td>");
            }
            fprintf(f, "</tr>\n");
        }
        fprintf(f, "</table></details>\n");
    }
    fprintf(f, "</div>");
}

/* The training curves and the history table. */
static void write_curves(FILE *f, const page *p) {
    const history *h = &p->h;
    fprintf(f, "<h2>Training curves</h2>\n<div class=charts>"
               "<img class=half src=\"loss.png\" width=640 height=360 alt=\"loss per epoch\">"
               "<img class=half src=\"accuracy.png\" width=640 height=360 alt=\"accuracy per epoch\"></div>\n"
               "<div class=\"row charts\" style=\"margin-top:8px\">"
               "<img class=half src=\"lr.png\" width=640 height=360 alt=\"learning rate per epoch\"><div>\n");
    fprintf(f, "<table id=history><tr>");
    for (int k = 0; k < 7; k++) fprintf(f, "<th>%s</th>", COLS[k]);
    fprintf(f, "</tr>\n");
    for (int i = 0; i < h->n; i++) {
        fprintf(f, "<tr%s><td class=n>%.0f</td>", i == p->best ? " class=best" : "", h->v[0][i]);
        for (int k = 1; k <= 4; k++) num_cell(f, h->v[k][i], 4);
        fprintf(f, "<td class=n>%.6g</td>", h->v[5][i]);
        num_cell(f, h->v[6][i], 1);
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
    if (p->best >= 0) fprintf(f, "<p class=muted>The highlighted row is the best epoch%s.</p>\n",
                              p->stopped ? "; training stopped early after it" : "");
    fprintf(f, "</div></div>\n");
}

static const char *class_name(const page *p, int k) {
    return p->names && k >= 0 && k < p->C ? p->names[k] : "?";
}

/* The evaluation's figures, confusion matrix and per-class table. */
static void write_eval(FILE *f, const page *p) {
    json_object *ev = p->ev;
    fprintf(f, "<h2>Evaluation</h2>\n<table class=kv id=eval>\n");
    kv(f, "data", "%s", jstr(ev, "source") ? jstr(ev, "source") : "?");
    kv(f, "images", "%.0f", jnum(ev, "images"));
    kv(f, "loss", "%.4f", jnum(ev, "loss"));
    kv(f, "accuracy", "%.4f", jnum(ev, "accuracy"));
    kv(f, "top-5 accuracy", "%.4f", jnum(ev, "top5"));
    fprintf(f, "</table>\n");
    fprintf(f, "<div class=row>");
    if (p->have_conf)
        fprintf(f, "<div><h3>Confusion matrix</h3>\n<div class=charts><img src=\"confusion.png\" width=%d height=%d "
                   "alt=\"confusion matrix\"></div></div>\n", p->conf_w, p->conf_h);
    json_object *pc = jget(ev, "per_class");
    if (pc && (int)json_object_array_length(pc) == p->C) {
        fprintf(f, "<div><h3>Per class</h3>\n<table id=per-class><tr><th>class</th><th>images</th><th>precision</th>"
                   "<th>recall</th><th>F1</th></tr>\n");
        for (int k = 0; k < p->C; k++) {
            json_object *o = json_object_array_get_idx(pc, k);
            fprintf(f, "<tr><td>");
            esc(f, p->names ? p->names[k] : "?");
            fprintf(f, "</td><td class=n>%.0f</td>", jnum(o, "support"));
            num_cell(f, jnum(o, "precision"), 4);
            num_cell(f, jnum(o, "recall"), 4);
            num_cell(f, jnum(o, "f1"), 4);
            fprintf(f, "</tr>\n");
        }
        fprintf(f, "</table></div>\n");
    }
    fprintf(f, "</div>\n");
}

/* The most confused pairs: a table, then each pair's images. */
static void write_confused(FILE *f, const page *p, json_object *pairs) {
    int np = (int)json_object_array_length(pairs);
    fprintf(f, "<h3>Most confused pairs</h3>\n<p class=muted>The most confident mistakes of each pair "
               "(true &rarr; predicted, the predicted class's probability).</p>\n");
    fprintf(f, "<table id=confused><tr><th>true</th><th>predicted</th><th>images</th></tr>\n");
    for (int q = 0; q < np; q++) {
        json_object *o = json_object_array_get_idx(pairs, q);
        fprintf(f, "<tr><td>");
        esc(f, class_name(p, (int)jnum(o, "true")));
        fprintf(f, "</td><td>");
        esc(f, class_name(p, (int)jnum(o, "pred")));
        fprintf(f, "</td><td class=n>%.0f</td></tr>\n", jnum(o, "count"));
    }
    fprintf(f, "</table>\n");
    for (int q = 0; q < np; q++) {
        json_object *o = json_object_array_get_idx(pairs, q), *ex = jget(o, "examples");
        const char *a = class_name(p, (int)jnum(o, "true")), *b = class_name(p, (int)jnum(o, "pred"));
        fprintf(f, "<h3>");
        esc(f, a);
        fprintf(f, " &rarr; ");
        esc(f, b);
        fprintf(f, " <span class=muted>(%.0f images)</span></h3>\n<div class=grid>\n", jnum(o, "count"));
        for (int k = 0; ex && k < (int)json_object_array_length(ex); k++) {
            json_object *x = json_object_array_get_idx(ex, k);
            fprintf(f, "<figure><img src=\"");
            esc(f, jstr(x, "thumb"));
            fprintf(f, "\" alt=\"image %.0f\" title=\"", jnum(x, "index"));
            esc(f, jstr(x, "path") ? jstr(x, "path") : "");
            fprintf(f, "\"><figcaption>");   /* "true → predicted" (wraps after the arrow), "#index · p" */
            esc(f, a);
            fprintf(f, "&nbsp;&rarr; ");
            esc(f, b);
            fprintf(f, "<br>#%.0f &middot; %.2f</figcaption></figure>\n", jnum(x, "index"), jnum(x, "prob"));
        }
        fprintf(f, "</div>\n");
    }
}

/* The cut probe's table. */
static void write_probe(FILE *f, json_object *probe) {
    int npr = (int)json_object_array_length(probe);
    fprintf(f, "<h2>Cut probe</h2>\n<p class=muted>Each candidate cut scored by a 5-fold ridge probe "
               "and LogME on a stratified sample of the training data.</p>\n<table id=probe><tr><th>cut</th>"
               "<th>output</th><th>form</th><th>features</th><th>ridge accuracy</th><th>LogME</th><th></th></tr>\n");
    for (int k = 0; k < npr; k++) {
        json_object *o = json_object_array_get_idx(probe, k);
        json_object *ch = jget(o, "chosen");
        bool chosen = ch && json_object_get_boolean(ch);
        fprintf(f, "<tr%s><td>", chosen ? " class=best" : "");
        esc(f, jstr(o, "cut"));
        fprintf(f, "</td><td>");
        esc(f, jstr(o, "shape"));
        fprintf(f, "</td><td>");
        esc(f, jstr(o, "form"));
        fprintf(f, "</td><td class=n>%.0f</td>", jnum(o, "features"));
        num_cell(f, jnum(o, "ridge_accuracy"), 4);
        num_cell(f, jnum(o, "logme"), 4);
        fprintf(f, "<td>%s</td></tr>\n", chosen ? "chosen" : "");
    }
    fprintf(f, "</table>\n");
}

/* graft train --budget: the plan's table (run.train.plan) and what the
 * budget became (run.budget).                                              */
static void write_budget(FILE *f, json_object *plan, json_object *budget) {
    json_object *cands = jget(plan, "candidates");
    fprintf(f, "<h2>Budget plan</h2>\n<p>");
    if (budget) fprintf(f, "Budget %.0f s, used %.1f s (%.0f%%). ", jnum(budget, "budget_s"), jnum(budget, "used_s"),
                        100 * jnum(budget, "used_s") / jnum(budget, "budget_s"));
    fprintf(f, "Chosen: ");
    esc(f, jstr(plan, "base"));
    fprintf(f, " at %.0fx%.0f, cut ", jnum(plan, "input_size"), jnum(plan, "input_size"));
    esc(f, jstr(plan, "cut"));
    if (jget(plan, "unfreeze")) {
        fprintf(f, ", fine-tuned from ");
        esc(f, jstr(plan, "unfreeze"));
    }
    fprintf(f, ", %.0f epochs &mdash; ", jnum(plan, "epochs"));
    esc(f, jstr(plan, "why"));
    fprintf(f, ".</p>\n<table id=budget><tr><th>candidate</th><th>probe</th><th>once s</th><th>s/epoch</th>"
               "<th>eval s</th><th>epochs that fit</th><th>epochs</th><th></th></tr>\n");
    for (int k = 0; cands && k < (int)json_object_array_length(cands); k++) {
        json_object *o = json_object_array_get_idx(cands, k), *ch = jget(o, "chosen");
        bool chosen = ch && json_object_get_boolean(ch);
        fprintf(f, "<tr%s><td>", chosen ? " class=best" : "");
        esc(f, jstr(o, "candidate"));
        fprintf(f, "</td>");
        num_cell(f, jnum(o, "probe"), 4);
        num_cell(f, jnum(o, "once_s"), 1);
        num_cell(f, jnum(o, "epoch_s"), 2);
        num_cell(f, jnum(o, "eval_s"), 1);
        fprintf(f, "<td class=n>%.0f</td><td class=n>%.0f</td><td>%s</td></tr>\n", jnum(o, "epochs_fit"),
                jnum(o, "epochs"), chosen ? "chosen" : "");
    }
    fprintf(f, "</table>\n");
}

/* The layers table: frozen or the rate each trains at. */
static void write_layers(FILE *f, json_object *layers, double lr0) {
    int nl = (int)json_object_array_length(layers), ntrain = 0;
    for (int i = 0; i < nl; i++) {
        json_object *fr = jget(json_object_array_get_idx(layers, i), "frozen");
        ntrain += !(fr && json_object_get_boolean(fr));
    }
    fprintf(f, "<h2>Layers</h2>\n<p>%d of %d layers train; the rest are frozen (inference only).</p>\n"
               "<details%s><summary>the layers table</summary>\n<table id=layers><tr><th>layer</th><th>op</th>"
               "<th>output</th><th>parameters</th><th>training</th></tr>\n", ntrain, nl, nl <= 40 ? " open" : "");
    for (int i = 0; i < nl; i++) {
        json_object *o = json_object_array_get_idx(layers, i), *fr = jget(o, "frozen");
        bool frozen = fr && json_object_get_boolean(fr);
        fprintf(f, "<tr%s><td>", frozen ? " class=frozen" : "");
        esc(f, jstr(o, "name"));
        fprintf(f, "</td><td>");
        esc(f, jstr(o, "op"));
        fprintf(f, "</td><td>");
        esc(f, jstr(o, "shape"));
        fprintf(f, "</td><td class=n>%.0f</td><td>", jnum(o, "params"));
        double mult = jnum(o, "lr_mult");
        if (frozen) fprintf(f, "frozen");
        else if (!isfinite(mult)) fprintf(f, "&ndash;");
        else if (isfinite(lr0)) fprintf(f, "lr %g (&times; %g)", lr0 * mult, mult);
        else fprintf(f, "lr &times; %g", mult);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table></details>\n");
}

/* DIR/index.html, written to a temporary file and renamed over it. */
static gr_status write_page(const page *p) {
    char html[4300], tmp[4400];
    snprintf(html, sizeof html, "%s/index.html", p->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", html, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return gr_error_set(p->err, GR_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    write_glance(f, p);
    if (p->data && json_object_object_length(p->data) > 0) write_data(f, p->data);
    fprintf(f, "</div>\n");
    if (p->h.n > 0) write_curves(f, p);
    if (p->ev) {
        write_eval(f, p);
        json_object *pairs = jget(p->ev, "confused");
        if (pairs && json_object_array_length(pairs) > 0) write_confused(f, p, pairs);
    }
    if (p->probe && json_object_array_length(p->probe) > 0) write_probe(f, p->probe);
    json_object *plan = jget(p->train, "plan");
    if (plan && json_object_is_type(plan, json_type_object)) write_budget(f, plan, jget(p->run, "budget"));
    json_object *layers = jget(p->model, "layers");
    if (layers && json_object_array_length(layers) > 0) write_layers(f, layers, jnum(p->train, "lr"));
    fprintf(f, "<p class=muted>Files: <a href=\"run.json\">run.json</a>%s; charts also as SVG beside this page.</p>\n"
               "</body></html>\n", p->h.n > 0 ? ", <a href=\"history.csv\">history.csv</a>" : "");
    bool ok = fflush(f) == 0 && !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, html) != 0) {
        int e = errno;
        unlink(tmp);
        return gr_error_set(p->err, GR_ERR_IO, "%s: cannot write: %s", html, strerror(e));
    }
    return GR_OK;
}

gr_status gr_report_build(const char *dir, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    page p = {.dir = dir, .err = err};
    p.run = gr_report_load(dir, err);
    if (!p.run) return err->code;
    gr_status st = history_load(dir, &p.h, err);
    if (st != GR_OK) { json_object_put(p.run); return st; }
    p.model = jget(p.run, "model");
    p.train = jget(p.run, "train");
    p.ev = jget(p.run, "eval");
    p.data = jget(p.run, "data");
    p.probe = jget(p.run, "probe");
    p.monitor = jstr(p.train, "monitor");
    p.best = best_epoch(&p.h, p.monitor);
    p.req = jnum(p.train, "epochs_requested");
    p.stopped = p.h.n > 0 && jnum(p.train, "patience") > 0 && isfinite(p.req) && p.h.n < p.req &&
                !jget(p.run, "interrupted");
    if (p.h.n > 0) st = draw_curves(&p);
    if (st == GR_OK) st = draw_confusion(&p);
    if (st == GR_OK) st = write_page(&p);
    free(p.names);
    history_free(&p.h);
    json_object_put(p.run);
    return st;
}
