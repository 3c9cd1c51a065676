/* cmd_report.c — `graft report RUN_DIR` (rebuilds a run's HTML report from
 * its record) and the --report / --tensorboard glue that train and eval
 * share (cli_run_*). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>
#include "cli.h"

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

int cli_run_begin(cli_run *r, const char *report_dir, const char *tb_dir, bool keep_existing, int argc,
                  char **argv, gr_error *err) {
    memset(r, 0, sizeof *r);
    r->t0 = now_s();
    r->dir = report_dir;
    if (report_dir) {
        if (gr_report_mkdir(report_dir, err) != GR_OK) return -1;
        char path[4200];
        snprintf(path, sizeof path, "%s/run.json", report_dir);
        if (keep_existing && access(path, F_OK) == 0) {   /* eval into a train run's report */
            r->run = gr_report_load(report_dir, err);
            if (!r->run) return -1;
            json_object *now = gr_report_run_new(argc, argv, err);
            if (!now) return -1;
            json_object *cmd = NULL;
            json_object_object_get_ex(now, "command", &cmd);
            gr_status st = gr_report_set(r->run, "eval_command", json_object_get(cmd), err);
            json_object_put(now);
            if (st != GR_OK) return -1;
        } else {
            r->run = gr_report_run_new(argc, argv, err);
            if (!r->run) return -1;
        }
        snprintf(r->history, sizeof r->history, "%s/history.csv", report_dir);
    }
    if (tb_dir) {
        r->tb = gr_tb_open(tb_dir, err);
        if (!r->tb) return -1;
    }
    return 0;
}

/* Adds key: v to o when v is finite. */
static void add_num(json_object *o, const char *key, double v) {
    if (isfinite(v)) json_object_object_add(o, key, json_object_new_double(v));
}

static void print_event(json_object *o) {
    if (!o) return;
    const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (txt) printf("%s\n", txt);
    fflush(stdout);
    json_object_put(o);
}

void cli_run_event(const cli_run *r, const char *event, const char *key, const char *value, double loss,
                   double accuracy) {
    if (!r->json) return;
    json_object *o = json_object_new_object();
    if (!o) return;
    json_object_object_add(o, "event", json_object_new_string(event));
    if (key && value) json_object_object_add(o, key, json_object_new_string(value));
    add_num(o, "loss", loss);
    add_num(o, "accuracy", accuracy);
    print_event(o);
}

void cli_run_on_epoch(const gr_epoch_log *e, void *ctx) {
    cli_run *r = ctx;
    if (e->seconds > 0) {
        r->images += r->n_train;
        r->seconds += e->seconds;
    }
    if (r->json) {
        json_object *o = json_object_new_object();
        if (o) {
            json_object_object_add(o, "event", json_object_new_string("epoch"));
            json_object_object_add(o, "epoch", json_object_new_int(e->epoch));
            json_object_object_add(o, "epochs", json_object_new_int(r->epochs));
            add_num(o, "loss", e->loss);
            add_num(o, "accuracy", e->accuracy);
            add_num(o, "val_loss", e->val_loss);
            add_num(o, "val_accuracy", e->val_accuracy);
            add_num(o, "lr", e->lr);
            add_num(o, "seconds", e->seconds);
            add_num(o, "images_per_second", e->seconds > 0 ? r->n_train / e->seconds : NAN);
            print_event(o);
        }
    }
    if (!r->tb || r->tb_failed) return;
    const char *tags[6] = {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "images_per_second"};
    double v[6] = {e->loss, e->accuracy, e->val_loss, e->val_accuracy, e->lr,
                   e->seconds > 0 ? r->n_train / e->seconds : NAN};
    for (int k = 0; k < 6; k++)
        if (isfinite(v[k]) && gr_tb_scalar(r->tb, tags[k], e->epoch, v[k], &r->tb_err) != GR_OK) {
            r->tb_failed = true;   /* reported by cli_run_finish */
            return;
        }
}

int cli_run_train_info(cli_run *r, const cli_run_train *t, gr_error *err) {
    r->n_train = t->tr_idx ? t->n_tr : gr_dataset_count(t->train);
    if (!r->run) return 0;
    json_object *cfg = t->config_json ? json_tokener_parse(t->config_json) : NULL;
    if (!cfg) cfg = json_object_new_object();
    if (!cfg) { gr_error_set(err, GR_ERR_NOMEM, "out of memory (run record)"); return -1; }
    json_object_object_add(cfg, "epochs_requested", json_object_new_int(t->epochs));
    json_object_object_add(cfg, "patience", json_object_new_int(t->patience));
    json_object_object_add(cfg, "monitor", json_object_new_string(t->monitor ? t->monitor : "val_accuracy"));
    if (!json_object_object_get_ex(cfg, "lr", NULL)) json_object_object_add(cfg, "lr", json_object_new_double(t->lr));
    gr_status st = gr_report_set(r->run, "train", cfg, err);
    if (st == GR_OK && t->base) st = gr_report_set(r->run, "base", json_object_new_string(t->base), err);
    if (st == GR_OK && t->weights) st = gr_report_set(r->run, "weights", json_object_new_string(t->weights), err);
    if (st == GR_OK && t->model_file) st = gr_report_set(r->run, "model_file", json_object_new_string(t->model_file), err);
    if (st == GR_OK) st = gr_report_add_model(r->run, t->model, t->head_first, t->base_lr_mult, err);
    if (st == GR_OK) st = gr_report_add_data(r->run, "train", t->train_src, t->train, t->tr_idx, t->n_tr, err);
    if (st == GR_OK && t->val)
        st = gr_report_add_data(r->run, "validation", t->val_src, t->val, t->va_idx, t->n_va, err);
    if (st == GR_OK && t->test) st = gr_report_add_data(r->run, "test", t->test_src, t->test, NULL, 0, err);
    return st == GR_OK ? 0 : -1;
}

int cli_run_probe(cli_run *r, const gr_probe_row *rows, int n, int chosen, gr_error *err) {
    if (!r->run) return 0;
    return gr_report_add_probe(r->run, rows, n, chosen, err) == GR_OK ? 0 : -1;
}

int cli_run_eval(cli_run *r, const gr_model *m, const gr_dataset *ds, const char *src, const gr_eval_result *res,
                 gr_error *err) {
    if (!r->run) return 0;
    return gr_report_add_eval(r->run, r->dir, m, ds, src, res, err) == GR_OK ? 0 : -1;
}

/* Copies file src to dst (the --log CSV into the report). */
static int copy_file(const char *src, const char *dst, gr_error *err) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    if (!in || !out) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot copy to %s: %s", src, dst, strerror(errno));
        if (in) fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = !ferror(in) && ok;
    fclose(in);
    ok = fclose(out) == 0 && ok;
    if (!ok) { gr_error_set(err, GR_ERR_IO, "%s: cannot write: %s", dst, strerror(errno)); return -1; }
    return 0;
}

int cli_run_finish(cli_run *r, const char *log_csv, bool interrupted, bool quiet, gr_error *err) {
    if (r->tb_failed) { *err = r->tb_err; return -1; }
    if (r->tb && !quiet) printf("tensorboard: %s\n", gr_tb_path(r->tb));
    if (r->tb) cli_run_event(r, "tensorboard", "path", gr_tb_path(r->tb), NAN, NAN);
    if (!r->run) return 0;
    struct rusage ru;
    json_object *run = r->run;
    gr_status st = gr_report_set(run, "wall_seconds", json_object_new_double(now_s() - r->t0), err);
    if (st == GR_OK && getrusage(RUSAGE_SELF, &ru) == 0)
        st = gr_report_set(run, "peak_rss_mb", json_object_new_double(ru.ru_maxrss / 1024.0), err);
    if (st == GR_OK && r->seconds > 0)
        st = gr_report_set(run, "images_per_second", json_object_new_double(r->images / r->seconds), err);
    if (st == GR_OK && interrupted) st = gr_report_set(run, "interrupted", json_object_new_boolean(1), err);
    if (st != GR_OK) return -1;
    if (log_csv && strcmp(log_csv, r->history) != 0 && access(log_csv, R_OK) == 0 &&
        copy_file(log_csv, r->history, err))
        return -1;
    if (gr_report_save(r->dir, run, err) != GR_OK || gr_report_build(r->dir, err) != GR_OK) return -1;
    if (!quiet) printf("report: %s/index.html\n", r->dir);
    char page[4300];
    snprintf(page, sizeof page, "%s/index.html", r->dir);
    cli_run_event(r, "report", "path", page, NAN, NAN);
    return 0;
}

void cli_run_free(cli_run *r) {
    json_object_put(r->run);
    gr_tb_close(r->tb);
    r->run = NULL;
    r->tb = NULL;
}

static int set_dir(void *obj, const char *arg) {
    const char **dir = obj;
    if (*dir) return cli_usage("one RUN_DIR, please (got '%s' and '%s')", *dir, arg);
    *dir = arg;
    return 0;
}

static const cli_opt report_opts[] = {OPT_END};
static const cli_cmd report_cmd = {
    .name = "report",
    .intro = "usage: graft report RUN_DIR\n"
             "\n"
             "Rebuilds RUN_DIR/index.html and its charts (loss, accuracy, learning rate,\n"
             "confusion matrix: .png and .svg) from the run record that `graft train\n"
             "--report RUN_DIR` or `graft eval --report RUN_DIR` left there (run.json,\n"
             "history.csv, thumbs/).  The page is self-contained: open it from file://.\n",
    .opts = report_opts,
    .operand = set_dir};

int cmd_report(int argc, char **argv) {
    const char *dir = NULL;
    int rc = cli_parse(&report_cmd, argc, argv, &dir);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!dir) { cli_help(&report_cmd, stderr); return CLI_USAGE; }
    gr_error err = {0};
    if (gr_report_build(dir, &err) != GR_OK) return cli_fail(&err);
    printf("report: %s/index.html\n", dir);
    return 0;
}
