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

typedef struct {
    const char *base, *weights, *data, *layer, *out, *precision;
    int batch, threads, json, quiet, partial;
    cli_data_opts d;
} extract_args;

#define T extract_args
static const cli_opt extract_opts[] = {
    OPT_STR("--base", base, CLI_BASE_METAVAR, NULL, "the base"),
    OPT_STR("--weights", weights, "FILE|imagenet|none", "imagenet",
            "its weights; every layer must load unless --weights-partial"),
    OPT_FLAG("--weights-partial", partial, 1, "allow a weights file that fits only some layers"),
    OPT_STR("--data", data, "PATH", NULL,
            "a CIFAR-10 .bin file or directory (--split [train]), an image folder\nor a CSV list"),
    OPT_STR("--layer", layer, "NAME", NULL,
            "the last layer run (graft info --base BASE lists them and the cut\ncandidates; an ONNX base takes "
            "its tensor and node names too)  [the\nbase's default cut, as graft train's]"),
    OPT_STR("--out", out, "OUT.npy", NULL, "the features (and the sidecars beside it)"),
    OPT_INT("--batch", batch, 1, "64", "images per forward pass"),
    OPT_THREADS(threads),
    OPT_ENUM("--precision", precision, cli_precision_names, "fp32",
             "bf16: the fast path in bfloat16 where the CPU has it"),
    OPT_JSON_QUIET(json, "a JSON summary on stdout", quiet, "no summary and no \"weights: ...\" line"),
    OPT_DATA_OPTIONS(d),
    OPT_END};
#undef T

static const cli_cmd extract_cmd = {
    .name = "extract",
    .intro = "usage: graft extract --base BASE [--weights FILE] --data PATH [--layer NAME] --out OUT.npy [options]\n"
             "\n"
             "Runs the base up to and including layer NAME (without --layer: the base's default\n"
             "cut, where graft train cuts it) on every image of PATH (in file\n"
             "order) and writes a float32 .npy of shape (N, H, W, C), and beside it (STEM =\n"
             "OUT without .npy): STEM.labels.npy (int64, N: each sample's class index),\n"
             "STEM.paths.txt (N lines: each sample's file; PATH#I for record I of a CIFAR\n"
             "file) and STEM.classes.txt (the class names, one a line, in index order).\n"
             "Images are prepared with the base's input recipe (graft info --base BASE shows it).\n"
             "^C stops between batches and writes nothing (no file is left half-written).\n"
             "\n",
    .opts = extract_opts,
    .outro = "Under mpirun (an MPI build, make MPI=1) the ranks share the images; rank 0 writes OUT.\n"};

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

/* One extract run: its outputs, data, model and buffers. */
typedef struct {
    char lab_path[4200], paths_path[4200], cls_path[4200];
    char layer[64];          /* the layer run last: --layer's, or the base's default cut */
    cli_outputs outs;
    gr_outfile of;
    gr_dataset *ds;
    gr_model *m;
    gr_ctx *cx;              /* one execution context for every batch */
    gr_batcher *b;
    float *x, *y, *all;
    int *lab, *mine;
    int upto, h, w, oh, ow, oc, n, done;
    size_t F;
} extract_run;

/* OUT and its sidecars, checked against the inputs and locked: 0 or the exit code. */
static int claim_outputs(const extract_args *a, extract_run *r) {
    char stem[4096];
    size_t ol = strlen(a->out);
    snprintf(stem, sizeof stem, "%.*s", (int)(ol > 4 && !strcmp(a->out + ol - 4, ".npy") ? ol - 4 : ol), a->out);
    snprintf(r->lab_path, sizeof r->lab_path, "%s.labels.npy", stem);
    snprintf(r->paths_path, sizeof r->paths_path, "%s.paths.txt", stem);
    snprintf(r->cls_path, sizeof r->cls_path, "%s.classes.txt", stem);
    cli_outputs_add(&r->outs, "--out", a->out, NULL);
    cli_outputs_add(&r->outs, "--out (labels)", r->lab_path, NULL);
    cli_outputs_add(&r->outs, "--out (paths)", r->paths_path, NULL);
    cli_outputs_add(&r->outs, "--out (classes)", r->cls_path, NULL);
    cli_input ins[3] = {{"--data", a->data}, {"--weights", a->weights}, {"--base", NULL}};
    if (!strncmp(a->base, "darknet:", 8) || !strncmp(a->base, "tflite:", 7)) ins[2].path = strchr(a->base, ':') + 1;
    return cli_outputs_claim(&r->outs, ins, 3);
}

/* The data, the base up to --layer, the batch buffers.  0 ok, -1 + *err. */
static int open_model(const extract_args *a, extract_run *r, gr_error *err) {
    int nh, nw;
    gr_recipe recipe;
    if (cli_base_defaults(a->base, &nh, &nw, &recipe, err)) return -1;
    cli_recipe_apply(&a->d, &recipe);
    if (!(r->ds = cli_open_data(a->data, &a->d, GR_SPLIT_TRAIN, a->d.h, a->d.w, nh, nw, &recipe, err))) return -1;
    gr_dataset_size(r->ds, &r->h, &r->w);
    r->m = cli_load_base(a->base, a->weights, r->h, r->w, false, a->partial, a->quiet || a->json ? NULL : stdout, err);
    if (!r->m) return -1;
    gr_model_set_recipe(r->m, &recipe);
    if (!(r->cx = gr_ctx_new(r->m, err))) return -1;
    gr_ctx_set_precision(r->cx, (gr_precision)cli_enum_parse(cli_precision_names, a->precision));
    r->upto = a->layer ? cli_find_layer(r->m, "--layer", a->base, a->layer, err) : cli_default_cut(r->m);
    if (r->upto < 0) return -1;
    snprintf(r->layer, sizeof r->layer, "%s", gr_model_layer_name(r->m, r->upto));
    r->n = gr_dataset_count(r->ds);
    gr_model_layer_shape(r->m, r->upto, &r->oh, &r->ow, &r->oc);
    r->F = (size_t)r->oh * r->ow * r->oc;
    r->x = malloc((size_t)a->batch * r->h * r->w * 3 * sizeof(float));
    r->y = malloc((size_t)a->batch * r->F * sizeof(float));
    r->lab = malloc((size_t)a->batch * sizeof(int));
    if (!r->x || !r->y || !r->lab) { gr_error_set(err, GR_ERR_NOMEM, "out of memory"); return -1; }
    return 0;
}

/* Under mpirun (MPI build): the images go in chunks of batch x ranks;
 * each rank runs its part of every chunk (gr_dist_shard) and rank 0
 * gathers the chunk's rows and writes them, in file order.  Makes this
 * rank's batcher and (rank 0) opens OUT with its header.  0 ok, -1 + *err. */
static int start(const extract_args *a, extract_run *r, gr_error *err) {
    int ranks = gr_dist_size(), rank = gr_dist_rank(), chunk = a->batch * ranks, n_mine = 0;
    if (ranks > 1) {
        if (!(r->mine = malloc((size_t)r->n * sizeof(int))) ||
            (rank == 0 && !(r->all = malloc((size_t)chunk * r->F * sizeof(float))))) {
            gr_error_set(err, GR_ERR_NOMEM, "out of memory");
            return -1;
        }
        for (int c0 = 0; c0 < r->n; c0 += chunk) {
            int lo, hi;
            gr_dist_shard(r->n - c0 < chunk ? r->n - c0 : chunk, rank, ranks, &lo, &hi);
            for (int i = lo; i < hi; i++) r->mine[n_mine++] = c0 + i;
        }
    }
    gr_batcher_opts bo = {.batch = a->batch, .threads = 2};
    if ((ranks == 1 || n_mine > 0) && !(r->b = gr_batcher_new(r->ds, r->mine, n_mine, &bo, err))) return -1;
    if (rank > 0) return 0;
    if (gr_outfile_open(&r->of, a->out, err) != GR_OK) return -1;
    char hdr[256], shape[96];
    snprintf(shape, sizeof shape, "%d, %d, %d, %d", r->n, r->oh, r->ow, r->oc);
    size_t hl = npy_header(hdr, sizeof hdr, "<f4", shape);
    return gr_outfile_write(&r->of, hdr, hl, err) == GR_OK ? 0 : -1;
}

/* The features, chunk by chunk, into OUT: 0 ok, CLI_EXIT_INTERRUPTED
 * (^C: nothing written), -1 + *err.                                       */
static int run(const extract_args *a, extract_run *r, const volatile int *stop, gr_error *err) {
    int ranks = gr_dist_size(), rank = gr_dist_rank(), chunk = a->batch * ranks, got = 0;
    while (r->done < r->n) {
        if (__atomic_load_n(stop, __ATOMIC_RELAXED)) {   /* set by the signal thread */
            fprintf(stderr, "graft: interrupted after %d of %d images: nothing written (run the same command "
                    "again to start over)\n", r->done, r->n);
            return CLI_EXIT_INTERRUPTED;
        }
        int len = r->n - r->done < chunk ? r->n - r->done : chunk, lo = 0, hi = len;
        if (ranks > 1) gr_dist_shard(len, rank, ranks, &lo, &hi);
        got = 0;
        if (hi > lo) {
            if (gr_batcher_next(r->b, r->x, r->lab, &got, err) != GR_OK) return -1;
            if (got == 0) break;
            if (gr_ctx_predict(r->cx, r->x, got, r->upto, r->y, err) != GR_OK) {
                gr_error_prefix(err, "%s on %s", a->base, a->data);
                return -1;
            }
        }
        if (ranks > 1) {
            if (got != hi - lo)
                return gr_error_set(err, GR_ERR_IO, "rank %d: %d of %d images read", rank, got, hi - lo), -1;
            if (gr_dist_gather_rows_root(r->y, r->all, r->F, len, err) != GR_OK) return -1;
            got = len;
            if (rank > 0) { r->done += got; continue; }
        }
        if (gr_outfile_write(&r->of, ranks > 1 ? r->all : r->y, (size_t)got * r->F * sizeof(float), err) != GR_OK)
            return -1;
        r->done += got;
    }
    if (r->done != r->n)
        return gr_error_set(err, GR_ERR_IO, "%s: the data gave %d of its %d samples", a->data, r->done, r->n), -1;
    if (rank == 0 && (write_sidecars(r->ds, a->data, r->lab_path, r->paths_path, r->cls_path, err) != GR_OK ||
                      gr_outfile_commit(&r->of, err) != GR_OK)) return -1;
    return 0;
}

static void print_summary(const extract_args *a, const extract_run *r) {
    if (a->json) {
        printf("{\"out\": ");
        cli_json_string(a->out);
        printf(", \"layer\": ");
        cli_json_string(r->layer);
        printf(", \"shape\": [%d, %d, %d, %d], \"dtype\": \"float32\", \"labels\": ", r->done, r->oh, r->ow, r->oc);
        cli_json_string(r->lab_path);
        printf(", \"paths\": ");
        cli_json_string(r->paths_path);
        printf(", \"classes\": ");
        cli_json_string(r->cls_path);
        printf("}\n");
    } else if (!a->quiet) {
        printf("%s: %d x %d x %d x %d float32 (layer '%s'); labels %s, paths %s, classes %s\n", a->out, r->done,
               r->oh, r->ow, r->oc, r->layer, r->lab_path, r->paths_path, r->cls_path);
    }
}

int cmd_extract(int argc, char **argv) {
    extract_args a = {.precision = "fp32", .batch = 64};
    int rc = cli_parse(&extract_cmd, argc, argv, &a);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (!a.base || !a.data || !a.out)
        return cli_usage("--base, --data and --out are required (see graft extract --help)");
    extract_run r = {.of = {.fd = -1}};
    if ((rc = claim_outputs(&a, &r))) return rc;
    gr_set_threads(a.threads);
    cli_stop_prepare();
    cli_stop stop = {0};
    gr_error err = {0};
    rc = open_model(&a, &r, &err) || start(&a, &r, &err) ? -1 : 0;
    if (!rc) {
        cli_stop_start(&stop, &r.outs);
        rc = run(&a, &r, stop.flag, &err);
        cli_stop_end(&stop);
    }
    if (rc < 0) rc = cli_fail(&err);
    else if (rc == 0) print_summary(&a, &r);
    gr_outfile_abort(&r.of);
    cli_outputs_release(&r.outs);
    gr_batcher_free(r.b);
    free(r.x); free(r.y); free(r.lab); free(r.mine); free(r.all);
    gr_dataset_free(r.ds);
    gr_ctx_free(r.cx);
    gr_model_free(r.m);
    return rc;
}
