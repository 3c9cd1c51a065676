/* cmd_eval.c — `graft eval`: loss, accuracy, top-5, per-class accuracy and
 * the confusion matrix of a trained model on a dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "dist/dist.h"

static void usage(FILE *f) {
    fprintf(f,
"usage: graft eval --model MODEL --data PATH|cifar10|cifar100 [options]\n"
"\n"
"Evaluates a graft model: loss (categorical cross-entropy), accuracy, top-5\n"
"accuracy (n/a, JSON null, for 5 classes or fewer), per-class accuracy and the\n"
"confusion matrix (rows = true class).  A model whose outputs are NaN/Inf is an\n"
"error, not a score.  Images are prepared with the model's saved input recipe\n"
"(see graft info MODEL).\n"
"\n"
"  --batch N [32]   --threads N [cores]   --json (one JSON object on stdout)\n"
"  --quiet               print the scores only (no per-class table, no confusion matrix)\n"
"  --report DIR          write the results and an HTML report into DIR (confusion matrix, per-class\n"
"                        precision/recall/F1, the most confused images); added to a train run's report\n"
"                        when DIR holds one\n");
    cli_data_help(f, CLI_DATA_ALL);
    fprintf(f, "  (CIFAR: --split [test]; --input-size must match the model's own input)\n"
               "Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 prints.\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *report = NULL;
    int batch = 32, threads = 0, json = 0, quiet = 0;
    cli_data_opts d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        int dr = cli_data_option(argc, argv, &i, CLI_DATA_ALL, "eval", &d);
        if (dr == 1) continue;
        if (dr) return dr;
        if (strcmp(a, "--model") && strcmp(a, "--data") && strcmp(a, "--batch") && strcmp(a, "--threads") &&
            strcmp(a, "--report"))
            return cli_usage("unknown option '%s' (see graft eval --help)", a);
        if (i + 1 >= argc) return cli_usage("%s needs a value (see graft eval --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--report")) report = v;
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(v, &batch) || batch <= 0) return cli_usage("--batch '%s': expected a positive integer", v); }
        else if (cli_parse_int(v, &threads) || threads < 0) return cli_usage("--threads '%s': expected a non-negative integer", v);
    }
    if (!model || !data) return cli_usage("--model and --data are required (see graft eval --help)");
    gr_set_threads(threads);
    gr_error err = {0};
    gr_dataset *ds = NULL;
    gr_eval_result r = {0};
    int rc = 1;
    cli_run rep;
    if (cli_run_begin(&rep, report, NULL, true, argc, argv, &err)) { cli_run_free(&rep); return cli_fail(&err); }
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
    if (gr_dist_evaluate(m, ds, batch, &r, &err) != GR_OK) {   /* (under mpirun: sharded) */
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
        printf("{\"loss\": ");
        cli_json_number(r.loss);
        printf(", \"accuracy\": ");
        cli_json_number(r.accuracy);
        printf(", \"top5\": ");
        cli_json_number(top5 ? r.top5 : NAN);
        printf(", \"n\": %d, \"classes\": [", r.n);
        for (int k = 0; k < C; k++) {
            if (k) printf(", ");
            const char *nm = gr_model_class_name(m, k);
            cli_json_string(nm ? nm : "");
        }
        printf("], \"per_class_accuracy\": [");
        for (int k = 0; k < C; k++) {
            int64_t tot = 0;
            for (int j = 0; j < C; j++) tot += r.confusion[(size_t)k * C + j];
            printf("%s", k ? ", " : "");
            cli_json_number(tot ? (double)r.confusion[(size_t)k * C + k] / tot : NAN);   /* no images: null */
        }
        printf("], \"confusion\": [");
        for (int k = 0; k < C; k++) {
            printf("%s[", k ? ", " : "");
            for (int j = 0; j < C; j++) printf("%s%lld", j ? ", " : "", (long long)r.confusion[(size_t)k * C + j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        if (!quiet) printf("%s on %s (%d images)\n", model, data, r.n);
        printf("Test loss: %.4f\nTest accuracy: %.4f\n", r.loss, r.accuracy);
        if (top5) printf("Top-5 accuracy: %.4f\n", r.top5);
        else printf("Top-5 accuracy: n/a (%d classes)\n", C);
        if (quiet) goto done;
        printf("\n");
        printf("%-16s %8s %8s\n", "class", "images", "accuracy");
        for (int k = 0; k < C; k++) {
            int64_t tot = 0;
            for (int j = 0; j < C; j++) tot += r.confusion[(size_t)k * C + j];
            const char *nm = gr_model_class_name(m, k);
            if (tot) printf("%-16.16s %8lld %8.4f\n", nm ? nm : "?", (long long)tot,
                            (double)r.confusion[(size_t)k * C + k] / tot);
            else printf("%-16.16s %8d %8s\n", nm ? nm : "?", 0, "n/a");
        }
        if (C <= 20) {
            printf("\nconfusion matrix (rows: true class, columns: predicted)\n%10s", "");
            for (int j = 0; j < C; j++) {
                const char *nm = gr_model_class_name(m, j);
                printf(" %6.6s", nm ? nm : "?");
            }
            printf("\n");
            for (int k = 0; k < C; k++) {
                const char *nm = gr_model_class_name(m, k);
                printf("%10.10s", nm ? nm : "?");
                for (int j = 0; j < C; j++) printf(" %6lld", (long long)r.confusion[(size_t)k * C + j]);
                printf("\n");
            }
        }
    }
done:
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
