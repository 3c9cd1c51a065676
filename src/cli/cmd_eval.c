/* cmd_eval.c — `graft eval`: loss, accuracy, top-5, per-class accuracy and
 * the confusion matrix of a trained model on a dataset. */
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
"accuracy, per-class accuracy and the confusion matrix (rows = true class).\n"
"\n"
"  --split train|test    CIFAR directories/archives: which part  [test]\n"
"  --format auto|cifar10|cifar100|folder|csv   --labels fine|coarse\n"
"  --batch N [32]   --threads N [cores]   --json (one JSON object on stdout)\n"
"Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 prints.\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *split = "test", *format = NULL, *labels = NULL;
    int batch = 32, threads = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (i + 1 >= argc) return cli_failf("unknown option or missing value: '%s' (see graft eval --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--labels")) labels = v;
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(v, &batch) || batch <= 0) return cli_failf("--batch '%s': expected a positive integer", v); }
        else if (!strcmp(a, "--threads")) { if (cli_parse_int(v, &threads) || threads < 0) return cli_failf("--threads '%s': expected a non-negative integer", v); }
        else return cli_failf("unknown option '%s' (see graft eval --help)", a);
    }
    if (!model || !data) return cli_failf("--model and --data are required (see graft eval --help)");
    if (strcmp(split, "train") && strcmp(split, "test")) return cli_failf("--split '%s': expected train or test", split);
    gr_set_threads(threads);
    gr_error err = {0};
    gr_dataset *ds = NULL;
    gr_eval_result r = {0};
    int rc = 1;
    gr_model *m = gr_model_load(model, &err);
    if (!m) return cli_fail(&err);
    int h, w, c;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    char path[4096];
    if (cli_resolve_data(data, path, sizeof path, &err)) goto fail;
    gr_dataset_opts o = {.split = strcmp(split, "train") ? GR_SPLIT_TEST : GR_SPLIT_TRAIN, .h = h, .w = w,
                         .preprocess = gr_model_preprocess(m)};
    if (format) {
        static const char *names[] = {"auto", "cifar10", "cifar100", "folder", "csv"};
        int k = 0;
        while (k < 5 && strcmp(format, names[k])) k++;
        if (k == 5) { cli_failf("--format '%s': expected auto, cifar10, cifar100, folder or csv", format); goto out; }
        o.format = (gr_data_format)k;
    }
    if (labels) o.labels = !strcmp(labels, "coarse") ? GR_LABELS_COARSE : GR_LABELS_FINE;
    ds = gr_dataset_open(path, &o, &err);
    if (!ds) goto fail;
    if (cli_check_classes(m, ds, data, model, &err)) goto fail;
    if (gr_dist_evaluate(m, ds, batch, &r, &err) != GR_OK) goto fail;   /* (under mpirun: sharded) */
    int C = r.n_classes;
    if (json) {
        printf("{\"loss\": %.6f, \"accuracy\": %.6f, \"top5\": %.6f, \"n\": %d, \"classes\": [", r.loss,
               r.accuracy, r.top5, r.n);
        for (int k = 0; k < C; k++) {
            if (k) printf(", ");
            const char *nm = gr_model_class_name(m, k);
            cli_json_string(nm ? nm : "");
        }
        printf("], \"per_class_accuracy\": [");
        for (int k = 0; k < C; k++) {
            int64_t tot = 0;
            for (int j = 0; j < C; j++) tot += r.confusion[(size_t)k * C + j];
            printf("%s%.6f", k ? ", " : "", tot ? (double)r.confusion[(size_t)k * C + k] / tot : 0.0);
        }
        printf("], \"confusion\": [");
        for (int k = 0; k < C; k++) {
            printf("%s[", k ? ", " : "");
            for (int j = 0; j < C; j++) printf("%s%lld", j ? ", " : "", (long long)r.confusion[(size_t)k * C + j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("%s on %s (%d images)\n", model, data, r.n);
        printf("Test loss: %.4f\nTest accuracy: %.4f\nTop-5 accuracy: %.4f\n\n", r.loss, r.accuracy, r.top5);
        printf("%-16s %8s %8s\n", "class", "images", "accuracy");
        for (int k = 0; k < C; k++) {
            int64_t tot = 0;
            for (int j = 0; j < C; j++) tot += r.confusion[(size_t)k * C + j];
            const char *nm = gr_model_class_name(m, k);
            printf("%-16.16s %8lld %8.4f\n", nm ? nm : "?", (long long)tot,
                   tot ? (double)r.confusion[(size_t)k * C + k] / tot : 0.0);
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
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    gr_eval_result_free(&r);
    gr_dataset_free(ds);
    gr_model_free(m);
    return rc;
}
