/* cmd_extract.c — `graft extract`: run a base up to a layer on every image
 * of a dataset (in file order) and write the features as a float32 .npy of
 * shape (N, H, W, C), atomically (temp file, fsync, rename). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "dist/dist.h"

static void usage(FILE *f) {
    fprintf(f,
"usage: graft extract --base BASE --weights FILE --data PATH --layer NAME --out OUT.npy [options]\n"
"\n"
"Runs the base up to and including layer NAME on every image of PATH (in file\n"
"order) and writes a float32 .npy of shape (N, H, W, C).\n"
"\n"
"  --base vgg16|resnet50|tiny-darknet|darknet:FILE.cfg   --weights FILE|imagenet|none\n"
"  --data PATH           a CIFAR-10 .bin file or directory (--split train|test [train]),\n"
"                        an image folder or a CSV list (then --input-size is needed)\n"
"  --preprocess caffe|torch|tf|darknet|none   [the base's: vgg16, resnet50 caffe; darknet darknet]\n"
"  --input-size HxW [the data's]   --batch N [64]   --threads N [cores]\n"
"  --precision fp32|bf16 [fp32]\n"
"Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 writes OUT.\n");
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
    const char *base = NULL, *weights = NULL, *data = NULL, *layer = NULL, *out = NULL,
               *prep_s = NULL, *split = "train", *precision = "fp32";
    int batch = 64, threads = 0, h = 0, w = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (i + 1 >= argc) return cli_failf("unknown option or missing value: '%s' (see graft extract --help)", a);
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--layer")) layer = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--preprocess")) prep_s = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--batch")) bad = cli_parse_int(v, &batch) || batch <= 0;
        else if (!strcmp(a, "--threads")) bad = cli_parse_int(v, &threads) || threads < 0;
        else if (!strcmp(a, "--input-size")) bad = cli_parse_size(v, &h, &w);
        else return cli_failf("unknown option '%s' (see graft extract --help)", a);
        if (bad) return cli_failf("%s '%s': bad value", a, v);
    }
    if (!base || !data || !layer || !out)
        return cli_failf("--base, --data, --layer and --out are required (see graft extract --help)");
    if (strcmp(precision, "fp32") && strcmp(precision, "bf16"))
        return cli_failf("--precision '%s': expected fp32 or bf16", precision);
    if (strcmp(split, "train") && strcmp(split, "test")) return cli_failf("--split '%s': expected train or test", split);
    gr_set_threads(threads);
    gr_error err = {0};
    gr_preprocess prep = cli_default_preprocess(base);
    if (prep_s && gr_preprocess_parse(prep_s, &prep))
        return cli_failf("--preprocess '%s': expected caffe, torch, tf, darknet or none", prep_s);
    gr_dataset *ds = NULL;
    gr_model *m = NULL;
    gr_batcher *b = NULL;
    float *x = NULL, *y = NULL, *all = NULL;
    int *lab = NULL, *mine = NULL, fd = -1, rc = 1;
    char path[4096], tmp[4200];
    tmp[0] = 0;
    if (cli_resolve_data(data, path, sizeof path, &err)) goto fail;
    gr_dataset_opts o = {.split = strcmp(split, "test") ? GR_SPLIT_TRAIN : GR_SPLIT_TEST, .h = h, .w = w,
                         .preprocess = prep};
    if (!(ds = gr_dataset_open(path, &o, &err))) goto fail;
    gr_dataset_size(ds, &h, &w);
    if (!(m = cli_load_base(base, weights, h, w, true, &err))) goto fail;
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
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { gr_error_set(&err, GR_ERR_IO, "%s: cannot create the output file", out); tmp[0] = 0; goto fail; }
        char hdr[256];
        size_t hl = npy_header(hdr, sizeof hdr, n, oh, ow, oc);
        if (write(fd, hdr, hl) != (ssize_t)hl) { gr_error_set(&err, GR_ERR_IO, "%s: write failed", out); goto fail; }
    }
    int done = 0, got = 0;
    while (done < n) {
        int len = n - done < chunk ? n - done : chunk, lo = 0, hi = len;
        if (ranks > 1) gr_dist_shard(len, rank, ranks, &lo, &hi);
        got = 0;
        if (hi > lo) {
            if (gr_batcher_next(b, x, lab, &got, &err) != GR_OK) goto fail;
            if (got == 0) break;
            if (gr_model_predict(m, x, got, upto, y, &err) != GR_OK) goto fail;
        }
        if (ranks > 1) {
            if (got != hi - lo) { gr_error_set(&err, GR_ERR_IO, "rank %d: %d of %d images read", rank, got, hi - lo); goto fail; }
            if (gr_dist_gather_rows_root(y, all, F, len, &err) != GR_OK) goto fail;
            got = len;
            if (rank > 0) { done += got; continue; }
        }
        size_t bytes = (size_t)got * F * sizeof(float);
        if (write(fd, ranks > 1 ? all : y, bytes) != (ssize_t)bytes) {
            gr_error_set(&err, GR_ERR_IO, "%s: write failed (disk full?)", out);
            goto fail;
        }
        done += got;
    }
    if (rank == 0) {
        if (fsync(fd) != 0 || close(fd) != 0) { fd = -1; gr_error_set(&err, GR_ERR_IO, "%s: sync failed", out); goto fail; }
        fd = -1;
        if (rename(tmp, out) != 0) { gr_error_set(&err, GR_ERR_IO, "%s: cannot rename into place", out); goto fail; }
        tmp[0] = 0;
    }
    printf("%s: %d x %d x %d x %d float32 (layer '%s')\n", out, done, oh, ow, oc, layer);
    rc = 0;
    goto out;
fail:
    rc = cli_fail(&err);
out:
    if (fd >= 0) close(fd);
    if (tmp[0]) unlink(tmp);
    gr_batcher_free(b);
    free(x); free(y); free(lab); free(mine); free(all);
    gr_dataset_free(ds);
    gr_model_free(m);
    return rc;
}
