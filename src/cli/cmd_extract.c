/* cmd_extract.c — `graft extract`: run a base up to a layer on every image
 * of a dataset (in file order) and write the features as a float32 .npy of
 * shape (N, H, W, C), with the labels, the sample list and the class names
 * beside it (sidecar files), each written atomically (gr_outfile). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "dist/dist.h"
#include "core/outfile.h"

static void usage(FILE *f) {
    fprintf(f,
"usage: graft extract --base BASE [--weights FILE] --data PATH --layer NAME --out OUT.npy [options]\n"
"\n"
"Runs the base up to and including layer NAME on every image of PATH (in file\n"
"order) and writes a float32 .npy of shape (N, H, W, C), and beside it (STEM =\n"
"OUT without .npy): STEM.labels.npy (int64, N: each sample's class index),\n"
"STEM.paths.txt (N lines: each sample's file; PATH#I for record I of a CIFAR\n"
"file) and STEM.classes.txt (the class names, one a line, in index order).\n"
"Images are prepared with the base's input recipe (graft info --base BASE shows it).\n"
"^C stops between batches and writes nothing (no file is left half-written).\n"
"\n"
"  --base vgg16|resnet50|tiny-darknet|darknet:FILE.cfg|tflite:FILE.tflite\n"
"  --weights FILE|imagenet|none   [imagenet]; every layer must load unless --weights-partial\n"
"  --data PATH           a CIFAR-10 .bin file or directory (--split [train]), an image folder\n"
"                        or a CSV list\n"
"  --batch N [64]   --threads N [cores]   --precision fp32|bf16 [fp32]\n"
"  --json                a JSON summary on stdout   --quiet   no summary and no \"weights: ...\" line\n");
    cli_data_help(f, CLI_DATA_ALL);
    fprintf(f, "Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 writes OUT.\n");
}

/* The .npy v1.0 header for dtype descr ("<f4", "<i8") and a shape written
 * as the inside of a Python tuple ("10, 4, 4, 8" or "10,"), padded to 64.  */
static size_t npy_header(char *buf, size_t cap, const char *descr, const char *shape) {
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hl = (size_t)len + pad + 1;
    if (10 + hl > cap) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hl & 0xff);
    buf[9] = (char)(hl >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', pad);
    buf[10 + len + pad] = '\n';
    return 10 + hl;
}

/* Writes the sidecars of the features (labels .npy, paths, class names). */
static gr_status write_sidecars(const gr_dataset *ds, const char *data, const char *labels_path,
                                const char *paths_path, const char *classes_path, gr_error *err) {
    int n = gr_dataset_count(ds);
    gr_outfile o;
    char hdr[256], shape[32];
    snprintf(shape, sizeof shape, "%d,", n);
    size_t hl = npy_header(hdr, sizeof hdr, "<i8", shape);
    gr_status st = gr_outfile_open(&o, labels_path, err);
    if (st != GR_OK) return st;
    st = gr_outfile_write(&o, hdr, hl, err);
    for (int i = 0; i < n && st == GR_OK; i++) {
        int64_t v = gr_dataset_label(ds, i);   /* little-endian x86-64, as '<i8' says */
        st = gr_outfile_write(&o, &v, sizeof v, err);
    }
    if (st == GR_OK) st = gr_outfile_commit(&o, err);
    else gr_outfile_abort(&o);
    if (st != GR_OK || (st = gr_outfile_open(&o, paths_path, err)) != GR_OK) return st;
    for (int i = 0; i < n && st == GR_OK; i++) {
        char line[4200];
        const char *p = gr_dataset_path(ds, i);
        int len = p ? snprintf(line, sizeof line, "%s\n", p) : snprintf(line, sizeof line, "%s#%d\n", data, i);
        if (len < 0 || (size_t)len >= sizeof line || strchr(line, '\n') != line + len - 1)
            st = gr_error_set(err, GR_ERR_ARG, "%s: sample %d's path is too long or holds a newline", paths_path, i);
        else st = gr_outfile_write(&o, line, (size_t)len, err);
    }
    if (st == GR_OK) st = gr_outfile_commit(&o, err);
    else gr_outfile_abort(&o);
    if (st != GR_OK || (st = gr_outfile_open(&o, classes_path, err)) != GR_OK) return st;
    for (int c = 0; c < gr_dataset_num_classes(ds) && st == GR_OK; c++) {
        const char *name = gr_dataset_class_name(ds, c);
        if (!name || !*name) name = "?";
        st = gr_outfile_write(&o, name, strlen(name), err);
        if (st == GR_OK) st = gr_outfile_write(&o, "\n", 1, err);
    }
    if (st == GR_OK) st = gr_outfile_commit(&o, err);
    else gr_outfile_abort(&o);
    return st;
}

int cmd_extract(int argc, char **argv) {
    const char *base = NULL, *weights = NULL, *data = NULL, *layer = NULL, *out = NULL, *precision = "fp32";
    int batch = 64, threads = 0, h = 0, w = 0, json = 0, quiet = 0, partial = 0;
    cli_data_opts d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        if (!strcmp(a, "--weights-partial")) { partial = 1; continue; }
        int dr = cli_data_option(argc, argv, &i, CLI_DATA_ALL, "extract", &d);
        if (dr == 1) continue;
        if (dr) return dr;
        static const char *const known[] = {"--base", "--weights", "--data", "--layer", "--out", "--precision",
                                            "--batch", "--threads", NULL};
        int k = 0;
        while (known[k] && strcmp(a, known[k])) k++;
        if (!known[k]) return cli_usage("unknown option '%s' (see graft extract --help)", a);
        if (i + 1 >= argc) return cli_usage("%s needs a value (see graft extract --help)", a);
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--layer")) layer = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--batch")) bad = cli_parse_int(v, &batch) || batch <= 0;
        else bad = cli_parse_int(v, &threads) || threads < 0;
        if (bad) return cli_usage("%s '%s': expected a %s integer", a, v, !strcmp(a, "--batch") ? "positive" : "non-negative");
    }
    if (!base || !data || !layer || !out)
        return cli_usage("--base, --data, --layer and --out are required (see graft extract --help)");
    if (strcmp(precision, "fp32") && strcmp(precision, "bf16"))
        return cli_usage("--precision '%s': expected fp32 or bf16", precision);
    /* the outputs: OUT and its sidecars, checked and locked before any work */
    char stem[4096], lab_path[4200], paths_path[4200], cls_path[4200];
    size_t ol = strlen(out);
    snprintf(stem, sizeof stem, "%.*s", (int)(ol > 4 && !strcmp(out + ol - 4, ".npy") ? ol - 4 : ol), out);
    snprintf(lab_path, sizeof lab_path, "%s.labels.npy", stem);
    snprintf(paths_path, sizeof paths_path, "%s.paths.txt", stem);
    snprintf(cls_path, sizeof cls_path, "%s.classes.txt", stem);
    cli_outputs outs = {0};
    cli_outputs_add(&outs, "--out", out, NULL);
    cli_outputs_add(&outs, "--out (labels)", lab_path, NULL);
    cli_outputs_add(&outs, "--out (paths)", paths_path, NULL);
    cli_outputs_add(&outs, "--out (classes)", cls_path, NULL);
    cli_input ins[3] = {{"--data", data}, {"--weights", weights}, {"--base", NULL}};
    if (!strncmp(base, "darknet:", 8) || !strncmp(base, "tflite:", 7)) ins[2].path = strchr(base, ':') + 1;
    int orc = cli_outputs_claim(&outs, ins, 3);
    if (orc) return orc;
    gr_set_threads(threads);
    cli_stop_prepare();
    cli_stop stop = {0};
    gr_outfile of = {.fd = -1};
    gr_error err = {0};
    gr_dataset *ds = NULL;
    gr_model *m = NULL;
    gr_ctx *cx = NULL;   /* one execution context for every batch */
    gr_batcher *b = NULL;
    float *x = NULL, *y = NULL, *all = NULL;
    int *lab = NULL, *mine = NULL, rc = 1, nh, nw;
    gr_recipe recipe;
    if (cli_base_defaults(base, &nh, &nw, &recipe, &err)) goto fail;
    cli_recipe_apply(&d, &recipe);
    if (!(ds = cli_open_data(data, &d, GR_SPLIT_TRAIN, d.h, d.w, nh, nw, &recipe, &err))) goto fail;
    gr_dataset_size(ds, &h, &w);
    if (!(m = cli_load_base(base, weights, h, w, false, partial, quiet || json ? NULL : stdout, &err))) goto fail;
    gr_model_set_recipe(m, &recipe);
    if (!(cx = gr_ctx_new(m, &err))) goto fail;
    if (!strcmp(precision, "bf16")) gr_ctx_set_precision(cx, GR_PRECISION_BF16);
    int upto = gr_model_find(m, layer);
    if (upto < 0) {
        gr_error_set(&err, GR_ERR_ARG, "--layer: base '%s' has no layer '%s' (graft info --base %s lists them)",
                     base, layer, base);
        goto fail;
    }
    int oh, ow, oc, n = gr_dataset_count(ds);
    gr_model_layer_shape(m, upto, &oh, &ow, &oc);
    size_t F = (size_t)oh * ow * oc;
    x = malloc((size_t)batch * h * w * 3 * sizeof(float));
    y = malloc((size_t)batch * F * sizeof(float));
    lab = malloc((size_t)batch * sizeof(int));
    if (!x || !y || !lab) { gr_error_set(&err, GR_ERR_NOMEM, "out of memory"); goto fail; }
    /* Under mpirun (MPI build): the images go in chunks of batch x ranks;
     * each rank runs its part of every chunk (gr_dist_shard) and rank 0
     * gathers the chunk's rows and writes them, in file order.             */
    int ranks = gr_dist_size(), rank = gr_dist_rank(), chunk = batch * ranks, n_mine = 0;
    if (ranks > 1) {
        if (!(mine = malloc((size_t)n * sizeof(int))) ||
            (rank == 0 && !(all = malloc((size_t)chunk * F * sizeof(float))))) {
            gr_error_set(&err, GR_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int c0 = 0; c0 < n; c0 += chunk) {
            int lo, hi;
            gr_dist_shard(n - c0 < chunk ? n - c0 : chunk, rank, ranks, &lo, &hi);
            for (int i = lo; i < hi; i++) mine[n_mine++] = c0 + i;
        }
    }
    gr_batcher_opts bo = {.batch = batch, .threads = 2};
    if ((ranks == 1 || n_mine > 0) && !(b = gr_batcher_new(ds, mine, n_mine, &bo, &err))) goto fail;
    if (rank == 0) {
        if (gr_outfile_open(&of, out, &err) != GR_OK) goto fail;
        char hdr[256], shape[96];
        snprintf(shape, sizeof shape, "%d, %d, %d, %d", n, oh, ow, oc);
        size_t hl = npy_header(hdr, sizeof hdr, "<f4", shape);
        if (gr_outfile_write(&of, hdr, hl, &err) != GR_OK) goto fail;
    }
    cli_stop_start(&stop, &outs);
    int done = 0, got = 0;
    while (done < n) {
        if (*stop.flag) {
            cli_stop_end(&stop);
            fprintf(stderr, "graft: interrupted after %d of %d images: nothing written (run the same command "
                    "again to start over)\n", done, n);
            rc = CLI_EXIT_INTERRUPTED;
            goto out;
        }
        int len = n - done < chunk ? n - done : chunk, lo = 0, hi = len;
        if (ranks > 1) gr_dist_shard(len, rank, ranks, &lo, &hi);
        got = 0;
        if (hi > lo) {
            if (gr_batcher_next(b, x, lab, &got, &err) != GR_OK) goto fail;
            if (got == 0) break;
            if (gr_ctx_predict(cx, x, got, upto, y, &err) != GR_OK) {
                gr_error_prefix(&err, "%s on %s", base, data);
                goto fail;
            }
        }
        if (ranks > 1) {
            if (got != hi - lo) { gr_error_set(&err, GR_ERR_IO, "rank %d: %d of %d images read", rank, got, hi - lo); goto fail; }
            if (gr_dist_gather_rows_root(y, all, F, len, &err) != GR_OK) goto fail;
            got = len;
            if (rank > 0) { done += got; continue; }
        }
        if (gr_outfile_write(&of, ranks > 1 ? all : y, (size_t)got * F * sizeof(float), &err) != GR_OK) goto fail;
        done += got;
    }
    cli_stop_end(&stop);
    if (done != n) {
        gr_error_set(&err, GR_ERR_IO, "%s: the data gave %d of its %d samples", data, done, n);
        goto fail;
    }
    if (rank == 0) {
        if (write_sidecars(ds, data, lab_path, paths_path, cls_path, &err) != GR_OK) goto fail;
        if (gr_outfile_commit(&of, &err) != GR_OK) goto fail;
    }
    if (json) {
        printf("{\"out\": ");
        cli_json_string(out);
        printf(", \"layer\": ");
        cli_json_string(layer);
        printf(", \"shape\": [%d, %d, %d, %d], \"dtype\": \"float32\", \"labels\": ", done, oh, ow, oc);
        cli_json_string(lab_path);
        printf(", \"paths\": ");
        cli_json_string(paths_path);
        printf(", \"classes\": ");
        cli_json_string(cls_path);
        printf("}\n");
    } else if (!quiet) {
        printf("%s: %d x %d x %d x %d float32 (layer '%s'); labels %s, paths %s, classes %s\n", out, done, oh, ow,
               oc, layer, lab_path, paths_path, cls_path);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    cli_stop_end(&stop);
    gr_outfile_abort(&of);
    cli_outputs_release(&outs);
    gr_batcher_free(b);
    free(x); free(y); free(lab); free(mine); free(all);
    gr_dataset_free(ds);
    gr_ctx_free(cx);
    gr_model_free(m);
    return rc;
}
