/* common.c — option parsing helpers shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "opts.h"

int cli_parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, int *h, int *w) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *x = strchr(buf, 'x');
    if (!x) x = strchr(buf, 'X');
    if (!x) {
        if (cli_parse_int(buf, h) || *h <= 0) return -1;
        *w = *h;
        return 0;
    }
    *x = 0;
    if (cli_parse_int(buf, h) || cli_parse_int(x + 1, w) || *h <= 0 || *w <= 0) return -1;
    return 0;
}

gr_model *cli_build_base(const char *base, int h, int w, bool include_top, gr_error *err) {
    if (!strcmp(base, "vgg16")) {
        if (!h) { h = 224; w = 224; }
        return gr_vgg16(h, w, include_top, err);
    }
    if (!strcmp(base, "resnet50")) {
        if (!h) { h = 224; w = 224; }
        return gr_resnet50(h, w, include_top, err);
    }
    if (!strcmp(base, "tiny-darknet")) {   /* the fetched Tiny Darknet's cfg */
        char cfg[4096];
        if (gr_fetch_resolve("tiny-darknet", "cfg", NULL, cfg, sizeof cfg, err) != GR_OK) return NULL;
        return gr_darknet_load_cfg(cfg, h, w, err);
    }
    if (!strncmp(base, "tflite:", 7)) return gr_tflite_load_sized(base + 7, h, w, err);
    if (!strncmp(base, "onnx:", 5)) return gr_onnx_load(base + 5, h, w, include_top, err);
    if (!strncmp(base, "darknet:", 8)) return gr_darknet_load_cfg(base + 8, h, w, err);
    gr_error_set(err, GR_ERR_ARG, "unknown base '%s' (known: vgg16, resnet50, tiny-darknet, darknet:FILE.cfg, "
                 "tflite:FILE.tflite, onnx:FILE.onnx)", base);
    return NULL;
}

int cli_base_defaults(const char *base, int *h, int *w, gr_recipe *r, gr_error *err) {
    gr_model *m = cli_build_base(base, 0, 0, false, err);
    if (!m) return -1;
    int c;
    gr_model_layer_shape(m, -1, h, w, &c);
    *r = gr_model_recipe(m);
    gr_model_free(m);
    return 0;
}

/* ------------------------------------------------------------ data options */

#define T cli_data_opts
static int set_input_size(void *o, const char *v) {
    cli_data_opts *d = o;
    return cli_parse_size(v, &d->h, &d->w);
}
static int set_crop_fraction(void *o, const char *v) {
    cli_data_opts *d = o;
    return cli_parse_float(v, &d->crop_fraction) || !(d->crop_fraction > 0 && d->crop_fraction <= 1) ? -1 : 0;
}
/* --mean / --std "a,b,c": three finite numbers (std: > 0); a usage error
 * that says what is wrong. */
static int set_three(const char *opt, const char *v, float out[3], bool positive) {
    const char *s = v;
    int n = 0;
    float t[3];
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char item[64];
        if (n == 3) {
            n++;
            break;
        }
        if (len >= sizeof item) return cli_usage("%s '%s': value %d is not a number", opt, v, n + 1);
        memcpy(item, s, len);
        item[len] = 0;
        float f;
        if (cli_parse_float(item, &f) || len == 0)
            return cli_usage("%s '%s': value %d ('%s') is not a number", opt, v, n + 1, item);
        if (!isfinite(f)) return cli_usage("%s '%s': value %d ('%s') is not finite", opt, v, n + 1, item);
        if (positive && !(f > 0))
            return cli_usage("%s '%s': value %d (%s) must be greater than 0 (it divides)", opt, v, n + 1, item);
        t[n++] = f;
        if (!comma) break;
        s = comma + 1;
    }
    if (n != 3)
        return cli_usage("%s '%s': expected 3 comma-separated numbers, one per channel (e.g. 0.5,0.5,0.5), got %s",
                         opt, v, n > 3 ? "more" : n == 1 ? "1" : "2");
    memcpy(out, t, sizeof t);
    return 0;
}
static int set_mean(void *o, const char *v) {
    cli_data_opts *d = o;
    int rc = set_three("--mean", v, d->mean, false);
    d->has_mean |= rc == 0;
    return rc;
}
static int set_std(void *o, const char *v) {
    cli_data_opts *d = o;
    int rc = set_three("--std", v, d->std, true);
    d->has_std |= rc == 0;
    return rc;
}
static int set_scale(void *o, const char *v) {
    cli_data_opts *d = o;
    if (cli_parse_float(v, &d->scale) || !isfinite(d->scale) || !(d->scale > 0)) return -1;
    d->has_scale = 1;
    return 0;
}
static int set_order(void *o, const char *v) {
    cli_data_opts *d = o;
    if (strcmp(v, "rgb") && strcmp(v, "bgr")) return -1;
    d->order = v;
    return 0;
}
/* which samples (the cfg keys: a train run's settings, saved for --resume) */
const cli_opt cli_data_set_table[] = {
    {.kind = CLI_ENUM, .name = "--format", .off = offsetof(T, format), .names = cli_format_names, .def = "auto",
     .help = "what --data is (auto: CIFAR batches (.tar.gz, .bin, a directory),\n"
             "a .csv list, else an image folder)",
     .cfg = "format"},
    {.kind = CLI_ENUM, .name = "--labels", .off = offsetof(T, labels), .names = cli_labels_names, .def = "fine",
     .expect = "fine or coarse (CIFAR-100)", .help = "CIFAR-100: the 100 fine or the 20 coarse classes",
     .cfg = "labels"},
    {.kind = CLI_ENUM, .name = "--split", .off = offsetof(T, split), .names = cli_split_names,
     .help = "CIFAR directories/archives: which part", .cfg = "split"},
    {.kind = CLI_FLAG, .name = "--skip-bad", .off = offsetof(T, skip_bad), .val = 1,
     .help = "skip (and count) images that fail to decode instead of stopping", .cfg = "skip_bad"},
    OPT_END};
/* how an image becomes the network's input */
const cli_opt cli_data_recipe_table[] = {
    OPT_FUNC("--input-size", set_input_size, "HxW", "HxW, e.g. 64x64", NULL,
             "network input  [CIFAR: 32x32; folders, CSV, images: the network's own]"),
    OPT_HEAD("input recipe (default: the one saved in the model, or the base's own; see graft info):"),
    OPT_ENUM("--resize", resize, cli_resize_names, NULL, "how an image is brought to the input size"),
    OPT_FLAG("--crop", crop, 1, "= --resize crop"),
    OPT_FUNC("--crop-fraction", set_crop_fraction, "F", "a fraction in (0, 1], e.g. 0.875", NULL,
             "crop: the side fraction kept (0.875 = Resize(256)+CenterCrop(224))"),
    OPT_ENUM("--interpolation", interp, cli_interp_names, NULL, "bilinear: PIL's; darknet: darknet's resize"),
    OPT_ENUM("--preprocess", prep, cli_preprocess_names, NULL,
             "normalization preset (vgg16, resnet50 caffe; darknet darknet;\n"
             "ONNX without graft metadata torch); the options below\n"
             "change its parts: y = (pixel/scale - mean) / std per channel"),
    OPT_FUNC("--mean", set_mean, "A,B,C", "3 comma-separated finite numbers", NULL,
             "per-channel mean, in units of pixel/scale, in the network's\n"
             "channel order (R,G,B; B,G,R for caffe), e.g. CLIP's with\n"
             "--preprocess torch: 0.4815,0.4578,0.4082"),
    OPT_FUNC("--std", set_std, "A,B,C", "3 comma-separated numbers > 0", NULL,
             "per-channel standard deviation (same units and order)"),
    OPT_FUNC("--pixel-scale", set_scale, "S", "a finite number > 0", NULL,
             "pixels (0..255) are divided by S first (torch 255, caffe 1)"),
    OPT_FUNC("--channel-order", set_order, "rgb|bgr", "rgb or bgr", NULL,
             "the channel order the network takes (caffe: bgr)"),
    OPT_END};
#undef T
const cli_opt cli_data_all_table[] = {
    {.kind = CLI_GROUP, .sub = cli_data_set_table}, {.kind = CLI_GROUP, .sub = cli_data_recipe_table}, OPT_END};

void cli_recipe_apply(const cli_data_opts *d, gr_recipe *r) {
    if (d->resize) gr_resize_mode_parse(d->resize, &r->resize);
    if (d->crop || d->crop_fraction > 0) r->resize = GR_RESIZE_CENTER_CROP;
    if (d->crop_fraction > 0) r->crop = d->crop_fraction;
    if (d->interp) gr_interp_parse(d->interp, &r->interp);
    gr_norm n = gr_norm_resolved(&r->norm);
    gr_preprocess p;
    if (d->prep && gr_preprocess_parse(d->prep, &p) == 0) n = gr_norm_preset(p);
    if (d->has_scale) n.scale = d->scale;
    if (d->has_mean) memcpy(n.mean, d->mean, sizeof n.mean);
    if (d->has_std) memcpy(n.std, d->std, sizeof n.std);
    if (d->order) n.bgr = !strcmp(d->order, "bgr");
    r->norm = n;
}

bool cli_recipe_given(const cli_data_opts *d) {
    return d->resize || d->crop || d->crop_fraction > 0 || d->interp || d->prep || d->order || d->has_scale ||
           d->has_mean || d->has_std;
}

gr_dataset *cli_open_data(const char *arg, const cli_data_opts *d, gr_split default_split, int h, int w,
                          int nh, int nw, const gr_recipe *r, gr_error *err) {
    char path[4096];
    if (cli_resolve_data(arg, path, sizeof path, err)) return NULL;
    gr_dataset_opts o = {.split = d->split ? (gr_split)cli_enum_parse(cli_split_names, d->split) : default_split,
                         .h = h, .w = w, .default_h = nh, .default_w = nw, .skip_bad = d->skip_bad,
                         .fit = r->resize, .interp = r->interp, .crop = r->crop, .norm = &r->norm};
    if (d->format) o.format = (gr_data_format)cli_enum_parse(cli_format_names, d->format);
    if (d->labels) o.labels = (gr_label_kind)cli_enum_parse(cli_labels_names, d->labels);
    gr_dataset *ds = gr_dataset_open(path, &o, err);
    if (!ds) return NULL;
    int sk = gr_dataset_skipped(ds), ig = gr_dataset_ignored(ds);
    if (ig) fprintf(stderr, "graft: warning: %s: ignored %d file%s that %s not JPEG, PNG or BMP images (empty, "
                    "GIF, WebP, TIFF, ...)\n", arg, ig, ig == 1 ? "" : "s", ig == 1 ? "is" : "are");
    if (sk) fprintf(stderr, "graft: warning: %s: skipped %d image%s that failed to decode (--skip-bad)\n", arg, sk,
                    sk == 1 ? "" : "s");
    return ds;
}

/* An existing path is used as is; a known dataset name (cifar10, cifar100)
 * resolves through the download cache, fetching it when missing.          */
int cli_resolve_data(const char *arg, char *out, size_t cap, gr_error *err) {
    struct stat st;
    if (stat(arg, &st) == 0 || (strcmp(arg, "cifar10") && strcmp(arg, "cifar100"))) {
        snprintf(out, cap, "%s", arg);
        return 0;
    }
    return gr_fetch_resolve(arg, NULL, NULL, out, cap, err) == GR_OK ? 0 : -1;
}

/* The canonical ImageNet weights of a named base: the registry name and
 * file kind, or NULL (no known weights: the user must give a file).       */
static const char *imagenet_name(const char *base, bool include_top, const char **kind) {
    *kind = NULL;
    if (!strcmp(base, "vgg16")) return include_top ? "vgg16-top" : "vgg16";
    if (!strcmp(base, "resnet50")) return include_top ? NULL : "resnet50";
    if (!strcmp(base, "tiny-darknet")) { *kind = "weights"; return "tiny-darknet"; }
    return NULL;
}

int cli_load_weights(gr_model *m, const char *base, const char *weights, bool include_top, bool partial,
                     FILE *say, bool full_report, gr_error *err) {
    if (!weights) weights = "imagenet";
    bool none = !strcmp(weights, "none") || !strcmp(weights, "random");
    if (!strncmp(base, "tflite:", 7) || !strncmp(base, "onnx:", 5)) {   /* the weights are in the file itself */
        const char *file = strchr(base, ':') + 1, *kind = base[0] == 't' ? "tflite" : "onnx";
        if (strcmp(weights, "imagenet")) {
            gr_error_set(err, GR_ERR_ARG, "--weights %s: a %s: base carries its own weights (in %s); drop "
                         "--weights", weights, kind, file);
            return -1;
        }
        if (say) fprintf(say, "weights: %s (in the .%s file)\n", file, kind);
        return 0;
    }
    if (none) {
        if (partial) {
            gr_error_set(err, GR_ERR_ARG, "--weights-partial goes with a weights file, not --weights %s", weights);
            return -1;
        }
        if (say) fprintf(say, "weights: none (--weights %s): random initialization, the base is untrained\n", weights);
        return 0;
    }
    char wpath[4096];
    const char *wp = weights;
    if (!strcmp(weights, "imagenet")) {
        const char *kind, *name = imagenet_name(base, include_top, &kind);
        if (!name) {
            gr_error_set(err, GR_ERR_ARG, "--weights imagenet: no known ImageNet weights for base '%s'%s; give a "
                         "weights file with --weights FILE (or --weights none for an untrained base)", base,
                         include_top && !strcmp(base, "resnet50") ? " with its classifier" : "");
            return -1;
        }
        if (gr_fetch_resolve(name, kind, NULL, wpath, sizeof wpath, err) != GR_OK) return -1;
        wp = wpath;
    }
    gr_load_report rep;
    memset(&rep, 0, sizeof rep);
    gr_status st = partial ? gr_model_load_weights_partial(m, wp, &rep, err) : gr_model_load_weights(m, wp, &rep, err);
    if (st != GR_OK) {   /* a file that fits only some layers: say how to load those anyway */
        size_t k = strlen(err->msg);
        if (st == GR_ERR_SHAPE && !partial && strstr(err->msg, ": only "))
            snprintf(err->msg + k, sizeof err->msg - k, " (--weights-partial loads the layers that match and "
                     "leaves the others untrained)");
        return -1;
    }
    if (!say) return 0;
    if (full_report) fputs(rep.report, say);
    fprintf(say, "weights: %s%s: %d of %d layers loaded%s%s\n", wp, wp == wpath ? " (imagenet)" : "",
            rep.layers_loaded, rep.layers_total, rep.by_order ? " (matched by order: names differ)" : "",
            rep.layers_loaded < rep.layers_total ? " (--weights-partial: the others are untrained)" : "");
    if (partial && rep.layers_loaded < rep.layers_total && !full_report) {   /* what was not loaded */
        for (const char *l = rep.report; *l;) {
            const char *e = strchr(l, '\n');
            size_t n = e ? (size_t)(e - l) : strlen(l);
            if (!strncmp(l, "not loaded: ", 12) || !strncmp(l, "...", 3)) fprintf(say, "  %.*s\n", (int)n, l);
            l += n + (e != NULL);
        }
    }
    return 0;
}

gr_model *cli_load_base(const char *base, const char *weights, int h, int w, bool include_top, bool partial,
                        FILE *say, gr_error *err) {
    gr_model *m = cli_build_base(base, h, w, include_top, err);
    if (m && cli_load_weights(m, base, weights, include_top, partial, say, false, err)) {
        gr_model_free(m);
        return NULL;
    }
    if (m && say && gr_model_recipe_note(m)[0]) fprintf(say, "note: %s\n", gr_model_recipe_note(m));
    return m;
}

int cli_find_layer(const gr_model *m, const char *opt, const char *base, const char *name, gr_error *err) {
    int node = gr_model_find(m, name);
    if (node >= 0) return node;
    char list[1500] = "";
    int cuts[64], nc = gr_model_cut_candidates(m, cuts, 64);
    size_t o = 0;
    for (int k = 0; k < nc && o < sizeof list - 100; k++) {
        const char *alias = gr_model_layer_alias(m, cuts[k]);
        o += (size_t)snprintf(list + o, sizeof list - o, "%s'%s'%s%s%s", k ? ", " : "", gr_model_layer_name(m, cuts[k]),
                              alias ? " (" : "", alias ? alias : "", alias ? ")" : "");
    }
    if (o >= sizeof list - 100) snprintf(list + o, sizeof list - o, ", ...");
    gr_error_set(err, GR_ERR_ARG, "%s: base '%s' has no layer '%s'%s; cut candidates: %s (graft info --base %s "
                 "lists every layer)", opt, base, name, !strncmp(base, "onnx:", 5) ? " (nor an ONNX node or tensor of "
                 "that name)" : "", nc ? list : "none", base);
    return -1;
}

int cli_default_cut(const gr_model *m) {
    /* darknet classifiers: everything before the last 1000-class convolution;
     * other bases (built without their top): the whole base. */
    int n = gr_model_num_layers(m);
    for (int i = n - 1; i >= 0; i--) {
        int h, w, c;
        gr_model_layer_shape(m, i, &h, &w, &c);
        gr_op op = gr_model_layer_op(m, i);   /* TFLite MobileNets: 1001 classes, conv or dense */
        if ((op == GR_OP_CONV2D || op == GR_OP_DENSE) && (c == 1000 || c == 1001)) return i - 1;
    }
    return n - 1;
}

int cli_check_classes(const gr_model *m, const gr_dataset *ds, const char *data, const char *model,
                      gr_error *err) {
    for (int k = 0; k < gr_dataset_num_classes(ds) && k < gr_model_num_classes(m); k++) {
        const char *dn = gr_dataset_class_name(ds, k);
        if (!dn || !strcmp(dn, gr_model_class_name(m, k))) continue;
        for (int j = 0; j < gr_model_num_classes(m); j++)
            if (!strcmp(dn, gr_model_class_name(m, j))) {
                gr_error_set(err, GR_ERR_ARG, "%s: class %d is '%s', but in %s '%s' is class %d (the data "
                             "must have the model's classes in the model's order)", data, k, dn, model, dn, j);
                return -1;
            }
    }
    return 0;
}

int cli_check_training_classes(const gr_dataset *ds, const char *data, gr_error *err) {
    int C = gr_dataset_num_classes(ds), n = gr_dataset_count(ds);
    if (C < 2) {
        const char *nm = C == 1 ? gr_dataset_class_name(ds, 0) : NULL;
        gr_error_set(err, GR_ERR_ARG, "%s: %d class%s%s%s%s: a classifier needs at least 2 (with one, the loss is 0 "
                     "and the accuracy 1.0 whatever the model learns)", data, C, C == 1 ? "" : "es",
                     nm ? " ('" : "", nm ? nm : "", nm ? "')" : "");
        return -1;
    }
    int *count = calloc((size_t)C, sizeof *count);
    if (!count) { gr_error_set(err, GR_ERR_NOMEM, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        int y = gr_dataset_label(ds, i);
        if (y >= 0 && y < C) count[y]++;
    }
    char list[512] = "";
    int empty = 0;
    size_t k = 0;
    for (int c = 0; c < C; c++) {
        if (count[c]) continue;
        if (empty++ < 8 && k < sizeof list) {
            const char *nm = gr_dataset_class_name(ds, c);
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", empty > 1 ? ", " : "", c);
            char num[16];
            snprintf(num, sizeof num, "%d", c);
            if (nm && nm[0] && strcmp(nm, num) && k < sizeof list)
                k += (size_t)snprintf(list + k, sizeof list - k, " '%s'", nm);
        } else if (empty == 9 && k < sizeof list) {
            k += (size_t)snprintf(list + k, sizeof list - k, ", ...");
        }
    }
    free(count);
    if (empty) {
        gr_error_set(err, GR_ERR_ARG, "%s: %d of its %d classes have no images (class %s): the model would have "
                     "outputs it never sees; integer labels are class indices 0..K-1 (renumber them), and a "
                     "folder's class is each subfolder (remove the empty ones)", data, empty, C, list);
        return -1;
    }
    return 0;
}

void cli_json_number(double v) {
    if (isfinite(v)) printf("%.6f", v);
    else fputs("null", stdout);
}

void cli_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

void cli_print_shell_word(FILE *f, const char *s) {
    bool plain = *s != 0;
    for (const char *p = s; *p; p++)
        plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("_./:=,+-@%", *p) != NULL;
    if (plain) { fprintf(f, " %s", s); return; }
    fputs(" '", f);
    for (; *s; s++) {
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    }
    fputc('\'', f);
}
