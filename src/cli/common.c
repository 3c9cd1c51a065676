/* common.c — option parsing helpers shared by the subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"

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
    if (!strncmp(base, "tflite:", 7)) return gr_tflite_load_sized(base + 7, h, w, err);
    if (!strncmp(base, "darknet:", 8)) return gr_darknet_load_cfg(base + 8, h, w, err);
    gr_error_set(err, GR_ERR_ARG, "unknown base '%s' (known: vgg16, resnet50, darknet:PATH.cfg)", base);
    return NULL;
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

gr_model *cli_load_base(const char *base, const char *weights, int h, int w, bool quiet,
                        gr_error *err) {
    char cfg[4096], wpath[4096];
    const char *b = base;
    if (!strcmp(base, "tiny-darknet")) {   /* the fetched Tiny Darknet: cfg + weights */
        if (gr_fetch_resolve("tiny-darknet", "cfg", NULL, cfg + 8, sizeof cfg - 8, err) != GR_OK) return NULL;
        memcpy(cfg, "darknet:", 8);
        b = cfg;
    }
    gr_model *m = cli_build_base(b, h, w, false, err);
    if (!m || !weights || !strcmp(weights, "none") || !strcmp(weights, "random")) return m;
    if (!strncmp(base, "tflite:", 7) && !strcmp(weights, "imagenet")) return m;   /* in the file */
    const char *wp = weights;
    if (!strcmp(weights, "imagenet")) {
        const char *name = !strcmp(base, "vgg16") || !strcmp(base, "resnet50") ? base : (!strcmp(base, "tiny-darknet") ? "tiny-darknet" : NULL);
        if (!name) {
            gr_error_set(err, GR_ERR_ARG, "--weights imagenet: no known ImageNet weights for base '%s'; give a file", base);
            gr_model_free(m);
            return NULL;
        }
        if (gr_fetch_resolve(name, !strcmp(name, "tiny-darknet") ? "weights" : NULL, NULL, wpath,
                             sizeof wpath, err) != GR_OK) {
            gr_model_free(m);
            return NULL;
        }
        wp = wpath;
    }
    gr_load_report rep;
    memset(&rep, 0, sizeof rep);
    if (gr_model_load_weights(m, wp, &rep, err) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    if (!quiet) {
        printf("weights: %s: %d layers loaded, %d file layers skipped%s\n", wp, rep.layers_loaded,
               rep.layers_skipped, rep.by_order ? " (matched by order: names differ)" : "");
    }
    return m;
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

gr_preprocess cli_default_preprocess(const char *base) {
    if (!strncmp(base, "tflite:", 7)) return GR_PREP_TF;
    if (!strncmp(base, "vgg", 3) || !strncmp(base, "resnet", 6)) return GR_PREP_CAFFE;
    return GR_PREP_DARKNET;
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
