/* cmd_extract.c — `graft extract`: run a base up to a layer on every image
 * of a dataset (in file order) and write the features as a float32 .npy of
 * shape (N, H, W, C), atomically (temp file, fsync, rename). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
"usage: graft extract --base BASE --weights FILE --data PATH --layer NAME --out OUT.npy [options]\n"
"\n"
"Runs the base up to and including layer NAME on every image of PATH (in file\n"
"order) and writes a float32 .npy of shape (N, H, W, C).  Images are prepared\n"
"with the base's input recipe (graft info --base BASE shows it).\n"
"\n"
"  --base vgg16|resnet50|tiny-darknet|darknet:FILE.cfg   --weights FILE|imagenet|none\n"
"  --data PATH           a CIFAR-10 .bin file or directory (--split [train]), an image folder\n"
"                        or a CSV list\n"
"  --batch N [64]   --threads N [cores]   --precision fp32|bf16 [fp32]\n"
"  --json                a JSON summary on stdout   --quiet   no summary line\n");
    cli_data_help(f, CLI_DATA_ALL);
}

/* The .npy v1.0 header for float32 (n, h, w, c), padded to 64 bytes. */
static size_t npy_header(char *buf, size_t cap, long long n, int h, int w, int c) {
    char dict[256];
    int len = snprintf(dict, sizeof dict,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d, %d, %d), }", n, h, w, c);
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

int cmd_extract(int argc, char **argv) {
    const char *base = NULL, *weights = NULL, *data = NULL, *layer = NULL, *out = NULL, *precision = "fp32";
    int batch = 64, threads = 0, h = 0, w = 0, json = 0, quiet = 0;
    cli_data_opts d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
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
    gr_set_threads(threads);
    gr_error err = {0};
    gr_dataset *ds = NULL;
    gr_model *m = NULL;
    gr_batcher *b = NULL;
    float *x = NULL, *y = NULL;
    int *lab = NULL, fd = -1, rc = 1, nh, nw;
    char tmp[4200];
    tmp[0] = 0;
    gr_recipe recipe;
    if (cli_base_defaults(base, &nh, &nw, &recipe, &err)) goto fail;
    cli_recipe_apply(&d, &recipe);
    if (!(ds = cli_open_data(data, &d, GR_SPLIT_TRAIN, d.h, d.w, nh, nw, &recipe, &err))) goto fail;
    gr_dataset_size(ds, &h, &w);
    if (!(m = cli_load_base(base, weights, h, w, true, &err))) goto fail;
    gr_model_set_recipe(m, &recipe);
    if (!strcmp(precision, "bf16")) gr_model_set_precision(m, GR_PRECISION_BF16);
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
    gr_batcher_opts bo = {.batch = batch, .threads = 2};
    if (!(b = gr_batcher_new(ds, NULL, 0, &bo, &err))) goto fail;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { gr_error_set(&err, GR_ERR_IO, "%s: cannot create the output file", out); tmp[0] = 0; goto fail; }
    char hdr[256];
    size_t hl = npy_header(hdr, sizeof hdr, n, oh, ow, oc);
    if (write(fd, hdr, hl) != (ssize_t)hl) { gr_error_set(&err, GR_ERR_IO, "%s: write failed", out); goto fail; }
    int done = 0, got = 0;
    while (done < n) {
        if (gr_batcher_next(b, x, lab, &got, &err) != GR_OK) goto fail;
        if (got == 0) break;
        if (gr_model_predict(m, x, got, upto, y, &err) != GR_OK) goto fail;
        size_t bytes = (size_t)got * F * sizeof(float);
        if (write(fd, y, bytes) != (ssize_t)bytes) {
            gr_error_set(&err, GR_ERR_IO, "%s: write failed (disk full?)", out);
            goto fail;
        }
        done += got;
    }
    if (fsync(fd) != 0 || close(fd) != 0) { fd = -1; gr_error_set(&err, GR_ERR_IO, "%s: sync failed", out); goto fail; }
    fd = -1;
    if (rename(tmp, out) != 0) { gr_error_set(&err, GR_ERR_IO, "%s: cannot rename into place", out); goto fail; }
    tmp[0] = 0;
    if (json) {
        printf("{\"out\": ");
        cli_json_string(out);
        printf(", \"layer\": ");
        cli_json_string(layer);
        printf(", \"shape\": [%d, %d, %d, %d], \"dtype\": \"float32\"}\n", done, oh, ow, oc);
    } else if (!quiet) {
        printf("%s: %d x %d x %d x %d float32 (layer '%s')\n", out, done, oh, ow, oc, layer);
    }
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    if (fd >= 0) close(fd);
    if (tmp[0]) unlink(tmp);
    gr_batcher_free(b);
    free(x); free(y); free(lab);
    gr_dataset_free(ds);
    gr_model_free(m);
    return rc;
}
