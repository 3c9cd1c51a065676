/* cmd_info.c — `graft info`: what is in a weights file (format, layers,
 * tensors with dtype and shape, parameter count), or a base's layer table. */
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "io/weights.h"

static void info_usage(FILE *f) {
    fprintf(f,
            "usage: graft info FILE\n"
            "       graft info --base vgg16|resnet50|tiny-darknet|darknet:CFG|tflite:FILE [--input-size HxW]\n"
            "                  [--include-top] [--weights FILE]\n\n"
            "FILE: a Keras .h5 (Keras 1/2 layer_names layout, model.save's model_weights/,\n"
            "Keras 3 .weights.h5) or a .safetensors file (graft or torchvision names):\n"
            "prints the format detected, each layer's tensors (dtype, shape as stored)\n"
            "and the total parameter count; for a graft model (.gft) also its input size\n"
            "and input recipe (resize, interpolation, normalization), which every command applies.\n"
            "With --base: the base's layer table and its input recipe.\n\n"
            "options:\n"
            "  --base NAME         print the layer table of a base (vgg16, resnet50, tiny-darknet, ...)\n"
            "  --input-size HxW    input size for --base (default: the base's own, vgg16 224x224)\n"
            "  --include-top       with vgg16: keep fc1, fc2, predictions (needs 224x224)\n"
            "  --weights FILE      with --base: load FILE into the base and print what matched\n"
            "  -h, --help          this text\n");
}

/* Prints the layers and tensors of a weights file; returns the exit code. */
static int info_file(const char *path) {
    gr_error err = {0};
    gr_wfile *wf = gr_wfile_open(path, &err);
    if (!wf) return cli_fail(&err);
    int64_t total = 0;
    int ntens = 0, nweighted = 0;
    printf("file: %s\nformat: %s\n", path, wf->format);
    for (int i = 0; i < wf->n_meta; i++) {
        const char *v = wf->meta_val[i];
        size_t n = strlen(v);
        printf("metadata: %s = %.*s%s\n", wf->meta_key[i], n > 60 ? 60 : (int)n, v,
               n > 60 ? "..." : "");
    }
    for (int i = 0; i < wf->n_meta; i++) {   /* a graft model: its input and recipe */
        if (strcmp(wf->meta_key[i], "graft.format")) continue;
        gr_model *m = gr_model_load(path, &err);
        if (!m) {
            gr_wfile_close(wf);
            return cli_fail(&err);
        }
        int h, w, c;
        char rd[256];
        gr_model_layer_shape(m, -1, &h, &w, &c);
        gr_recipe r = gr_model_recipe(m);
        printf("input: %dx%dx%d\ninput recipe: %s\n", h, w, c, gr_recipe_describe(&r, rd, sizeof rd));
        gr_model_free(m);
    }
    for (int i = 0; i < wf->n_layers; i++) nweighted += wf->layers[i].n > 0;
    printf("layers: %d (%d with weights)\n", wf->n_layers, nweighted);
    for (int i = 0; i < wf->n_layers; i++) {
        const gr_wlayer *l = &wf->layers[i];
        int64_t lc = 0;
        for (int k = 0; k < l->n; k++) lc += gr_wtensor_count(&l->t[k]);
        if (!l->n) { printf("  %s  (no weights)\n", l->name); continue; }
        printf("  %s  (%lld params)\n", l->name, (long long)lc);
        for (int k = 0; k < l->n; k++) {
            const gr_wtensor *t = &l->t[k];
            char s[128], g[128] = "";
            gr_shape_str(s, sizeof s, t->fshape, t->ndim);
            if (t->layout != GR_WT_ASIS) {
                char h[100];
                gr_shape_str(h, sizeof h, t->shape, t->ndim);
                snprintf(g, sizeof g, "  -> %s %s", t->layout == GR_WT_OIHW ? "HWIO" : "[in, out]", h);
            }
            printf("    %-40s %-5s %s%s\n", t->name, t->dtype, s, g);
        }
        total += lc;
        ntens += l->n;
    }
    printf("total: %lld parameters in %d tensors\n", (long long)total, ntens);
    gr_wfile_close(wf);
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *base = NULL, *file = NULL, *weights = NULL;
    int h = 0, w = 0;
    bool top = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { info_usage(stdout); return 0; }
        if (!strcmp(a, "--include-top")) { top = true; continue; }
        if (!strcmp(a, "--base") || !strcmp(a, "--input-size") || !strcmp(a, "--weights")) {
            if (i + 1 >= argc) return cli_usage("info: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--base")) base = v;
            else if (!strcmp(a, "--weights")) weights = v;
            else if (cli_parse_size(v, &h, &w))
                return cli_usage("info: --input-size '%s': expected HxW, e.g. 32x32", v);
            continue;
        }
        if (a[0] == '-' && a[1]) return cli_usage("info: unknown option '%s' (see graft info --help)", a);
        if (file) return cli_usage("info: one file at a time ('%s' and '%s')", file, a);
        file = a;
    }
    if (file && base) return cli_usage("info: give a FILE or --base, not both");
    if (file) {
        if (top || h || weights) return cli_usage("info: --input-size, --include-top and --weights go with --base");
        return info_file(file);
    }
    if (!base) {
        info_usage(stderr);
        return cli_usage("info: nothing to show: give a weights FILE or --base");
    }
    gr_error err = {0};
    gr_model *m = cli_build_base(base, h, w, top, &err);
    if (!m) return cli_fail(&err);
    if (weights) {
        gr_load_report rep;
        if (gr_model_load_weights(m, weights, &rep, &err)) {
            gr_model_free(m);
            return cli_fail(&err);
        }
        printf("%s", rep.report);
    }
    gr_model_summary(m, stdout);
    gr_recipe r = gr_model_recipe(m);
    char rd[256];
    printf("input recipe: %s\n", gr_recipe_describe(&r, rd, sizeof rd));
    gr_model_free(m);
    return 0;
}
