/* cmd_eval.c — `graft eval`: loss, accuracy, top-5, per-class accuracy and
 * the confusion matrix of a trained model on a dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "dist/dist.h"

typedef struct {
    const char *model, *data, *report, *tta;
    int batch, threads, json, quiet;
    cli_data_opts d;
} eval_args;

#define T eval_args
static const cli_opt eval_opts[] = {
    OPT_STR("--model", model, "MODEL", NULL, "the graft model to evaluate"),
    OPT_STR("--data", data, "PATH|cifar10|cifar100", NULL, "the data (CIFAR dir/.bin/.tar.gz, image folder, CSV)"),
    OPT_INT("--batch", batch, 1, "32", "images per forward pass"),
    {.kind = CLI_ENUM, .name = "--tta", .off = offsetof(eval_args, tta), .names = cli_tta_names, .def = "none",
     .help = "flip: score each image with its mirror image too (the mean of the two\n"
             "probabilities; twice the work)"},
    OPT_THREADS(threads),
    OPT_JSON_QUIET(json, "one JSON object on stdout", quiet,
                   "print the scores only (no progress, no per-class table, no confusion matrix)"),
    OPT_STR("--report", report, "DIR", NULL,
            "write the results and an HTML report into DIR (confusion matrix, per-class\n"
            "precision/recall/F1, the most confused images); added to a train run's report\n"
            "when DIR holds one"),
    OPT_HEAD("data options (CIFAR: --split [test]; --input-size must match the model's own input):"),
    OPT_GROUP(d, cli_data_all_table),
    OPT_END};
#undef T

static const cli_cmd eval_cmd = {
    .name = "eval",
    .intro = "usage: graft eval --model MODEL --data PATH|cifar10|cifar100 [options]\n"
             "\n"
             "Evaluates a graft model: loss (categorical cross-entropy), accuracy, top-5\n"
             "accuracy (n/a, JSON null, for 5 classes or fewer), per-class accuracy and the\n"
             "confusion matrix (rows = true class).  A model whose outputs are NaN/Inf is an\n"
             "error, not a score.  Images are prepared with the model's saved input recipe\n"
             "(see graft info MODEL).\n"
             "\n",
    .opts = eval_opts,
    .outro = "Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 prints.\n"};

/* The scores as one JSON object on stdout. */
static void print_json(const gr_model *m, const gr_eval_result *r, bool top5) {
    int C = r->n_classes;
    printf("{\"loss\": ");
    cli_json_number(r->loss);
    printf(", \"accuracy\": ");
    cli_json_number(r->accuracy);
    printf(", \"top5\": ");
    cli_json_number(top5 ? r->top5 : NAN);
    printf(", \"n\": %d, \"classes\": [", r->n);
    for (int k = 0; k < C; k++) {
        if (k) printf(", ");
        const char *nm = gr_model_class_name(m, k);
        cli_json_string(nm ? nm : "");
    }
    printf("], \"per_class_accuracy\": [");
    for (int k = 0; k < C; k++) {
        int64_t tot = 0;
        for (int j = 0; j < C; j++) tot += r->confusion[(size_t)k * C + j];
        printf("%s", k ? ", " : "");
        cli_json_number(tot ? (double)r->confusion[(size_t)k * C + k] / tot : NAN);   /* no images: null */
    }
    printf("], \"confusion\": [");
    for (int k = 0; k < C; k++) {
        printf("%s[", k ? ", " : "");
        for (int j = 0; j < C; j++) printf("%s%lld", j ? ", " : "", (long long)r->confusion[(size_t)k * C + j]);
        printf("]");
    }
    printf("]}\n");
}

/* The per-class table and (20 classes or fewer) the confusion matrix. */
static void print_classes(const gr_model *m, const gr_eval_result *r) {
    int C = r->n_classes;
    printf("\n");
    printf("%-16s %8s %8s\n", "class", "images", "accuracy");
    for (int k = 0; k < C; k++) {
        int64_t tot = 0;
        for (int j = 0; j < C; j++) tot += r->confusion[(size_t)k * C + j];
        const char *nm = gr_model_class_name(m, k);
        if (tot) printf("%-16.16s %8lld %8.4f\n", nm ? nm : "?", (long long)tot,
                        (double)r->confusion[(size_t)k * C + k] / tot);
        else printf("%-16.16s %8d %8s\n", nm ? nm : "?", 0, "n/a");
    }
    if (C > 20) return;
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n%10s", "");
    for (int j = 0; j < C; j++) {
        const char *nm = gr_model_class_name(m, j);
        printf(" %6.6s", nm ? nm : "?");
    }
    printf("\n");
    for (int k = 0; k < C; k++) {
        const char *nm = gr_model_class_name(m, k);
        printf("%10.10s", nm ? nm : "?");
        for (int j = 0; j < C; j++) printf(" %6lld", (long long)r->confusion[(size_t)k * C + j]);
        printf("\n");
    }
}

int cmd_eval(int argc, char **argv) {
    eval_args ea = {.batch = 32};
    int prc = cli_parse(&eval_cmd, argc, argv, &ea);
    if (prc) return prc == CLI_HELP ? 0 : prc;
    const char *model = ea.model, *data = ea.data;
    int batch = ea.batch, json = ea.json, quiet = ea.quiet;
    const cli_data_opts d = ea.d;
    if (!model || !data) return cli_usage("--model and --data are required (see graft eval --help)");
    gr_set_threads(ea.threads);
    gr_error err = {0};
    gr_dataset *ds = NULL;
    gr_eval_result r = {0};
    int rc = 1;
    cli_run rep;
    if (cli_run_begin(&rep, ea.report, NULL, true, argc, argv, &err)) { cli_run_free(&rep); return cli_fail(&err); }
    gr_model *m = gr_model_load(model, &err);
    if (!m) { cli_run_free(&rep); return cli_fail(&err); }
    int h, w, c;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    if (d.h && (d.h != h || d.w != w)) {
        rc = cli_usage("--input-size %dx%d: %s takes %dx%d images (its input size is fixed)", d.h, d.w, model, h, w);
        goto out;
    }
    gr_recipe recipe = gr_model_recipe(m);   /* the model's; options override it */
    cli_recipe_apply(&d, &recipe);
    if (!(ds = cli_open_data(data, &d, GR_SPLIT_TEST, h, w, h, w, &recipe, &err))) goto fail;
    if (cli_check_classes(m, ds, data, model, &err)) goto fail;
    if (!json && !quiet) {   /* (before the pass: its progress and closing line come under it) */
        printf("%s on %s (%d images)\n", model, data, gr_dataset_count(ds));
        fflush(stdout);
    }
    if (gr_dist_evaluate(m, ds, batch, json || quiet ? NULL : "eval", ea.tta && !strcmp(ea.tta, "flip"), &r,
                         &err) != GR_OK) {   /* (under mpirun: sharded) */
        gr_error_prefix(&err, "%s on %s", model, data);
        goto fail;
    }
    if (rep.run) {
        json_object *mf = NULL;
        if (!json_object_object_get_ex(rep.run, "model_file", &mf) &&
            gr_report_set(rep.run, "model_file", json_object_new_string(model), &err) != GR_OK) goto fail;
        if (!json_object_object_get_ex(rep.run, "model", &mf) && gr_report_add_model(rep.run, m, 0, 0, &err) != GR_OK)
            goto fail;
        if (gr_report_add_data(rep.run, "evaluation", data, ds, NULL, 0, &err) != GR_OK) goto fail;
    }
    if (cli_run_eval(&rep, m, ds, data, &r, &err) || cli_run_finish(&rep, NULL, false, json || quiet, &err)) goto fail;
    int C = r.n_classes;
    bool top5 = C > 5;   /* with 5 classes or fewer every image is a top-5 hit: not a measure */
    if (json) {
        print_json(m, &r, top5);
    } else {
        printf("Test loss: %.4f\nTest accuracy: %.4f\n", r.loss, r.accuracy);
        if (top5) printf("Top-5 accuracy: %.4f\n", r.top5);
        else printf("Top-5 accuracy: n/a (%d classes)\n", C);
        if (!quiet) print_classes(m, &r);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    cli_run_free(&rep);
    gr_eval_result_free(&r);
    gr_dataset_free(ds);
    gr_model_free(m);
    return rc;
}
