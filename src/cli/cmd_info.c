/* cmd_info.c — `graft info`: what is in a weights file (format, layers,
 * tensors with dtype and shape, parameter count), or a base's layer table. */
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "format/weights.h"

typedef struct {
    const char *base, *file, *weights;
    int h, w, top, partial, json, quiet;
} info_args;

static int set_size(void *obj, const char *v) {
    info_args *a = obj;
    return cli_parse_size(v, &a->h, &a->w);
}

static int set_file(void *obj, const char *arg) {
    info_args *a = obj;
    if (a->file) return cli_usage("info: one file at a time ('%s' and '%s')", a->file, arg);
    a->file = arg;
    return 0;
}

#define T info_args
static const cli_opt info_opts[] = {
    OPT_STR("--base", base, "NAME", NULL, "print the layer table of a base (vgg16, resnet50, tiny-darknet, darknet:FILE.cfg, tflite:FILE.tflite, onnx:FILE.onnx)"),
    OPT_FUNC("--input-size", set_size, "HxW", "HxW, e.g. 32x32", NULL,
             "input size for --base (default: the base's own, vgg16 224x224)"),
    OPT_FLAG("--include-top", top, 1, "with vgg16: keep fc1, fc2, predictions (needs 224x224)"),
    OPT_STR("--weights", weights, "FILE|imagenet", NULL,
            "with --base: load FILE into the base and print what matched\n"
            "(every weighted layer must match unless --weights-partial)"),
    OPT_FLAG("--weights-partial", partial, 1, "with --weights: allow a file that fits only some layers"),
    OPT_JSON_QUIET(json, "one JSON object on stdout", quiet, "the totals only"),
    OPT_NOTE("  -h, --help            this text\n"),
    OPT_END};
#undef T

static const cli_cmd info_cmd = {
    .name = "info",
    .intro = "usage: graft info FILE\n"
             "       graft info --base BASE [--input-size HxW]\n"
             "                  [--include-top] [--weights FILE]\n\n"
             "FILE: a Keras .h5 (Keras 1/2 layer_names layout, model.save's model_weights/,\n"
             "Keras 3 .weights.h5) or a .safetensors file (graft or torchvision names):\n"
             "prints the format detected, each layer's tensors (dtype, shape as stored)\n"
             "and the total parameter count; for a graft model (.gft) also its input size\n"
             "and input recipe (resize, interpolation, normalization), which every command applies.\n"
             "With --base: the base's layer table and its input recipe.\n\n"
             "options:\n",
    .opts = info_opts,
    .outro = "exit status: 0 shown, 1 a missing or unreadable file, 2 a usage error\n",
    .operand = set_file};

/* The recipe as a JSON object's members (no braces). */
static void json_recipe(const gr_recipe *r) {
    gr_norm n = gr_norm_resolved(&r->norm);
    printf("\"input_recipe\": {\"resize\": \"%s\", \"interpolation\": \"%s\", \"crop_fraction\": %g, "
           "\"preprocess\": \"%s\", \"normalization\": {\"pixel_scale\": %.9g, \"mean\": [%.9g, %.9g, %.9g], "
           "\"std\": [%.9g, %.9g, %.9g], \"channel_order\": \"%s\"}}", gr_resize_mode_name(r->resize),
           gr_interp_name(r->interp), r->crop > 0 ? r->crop : 1.0, gr_preprocess_name(gr_norm_preset_of(&n)),
           (double)n.scale, (double)n.mean[0], (double)n.mean[1], (double)n.mean[2], (double)n.std[0],
           (double)n.std[1], (double)n.std[2], n.bgr ? "BGR" : "RGB");
}

/* Prints the layers and tensors of a weights file (json: one JSON object;
 * quiet: the format and totals only); returns the exit code.              */
static int info_file(const char *path, bool json, bool quiet) {
    gr_error err = {0};
    gr_wfile *wf = gr_wfile_open(path, &err);
    if (!wf) return cli_fail(&err);
    int64_t total = 0;
    int ntens = 0, nweighted = 0;
    gr_model *m = NULL;   /* a graft model: its input and recipe */
    for (int i = 0; i < wf->n_meta && !m; i++) {
        if (strcmp(wf->meta_key[i], "graft.format")) continue;
        if (!(m = gr_model_load(path, &err))) {
            gr_wfile_close(wf);
            return cli_fail(&err);
        }
    }
    for (int i = 0; i < wf->n_layers; i++) nweighted += wf->layers[i].n > 0;
    if (json) {
        printf("{\"file\": ");
        cli_json_string(path);
        printf(", \"format\": ");
        cli_json_string(wf->format);
    } else {
        printf("file: %s\nformat: %s\n", path, wf->format);
        for (int i = 0; i < wf->n_meta && !quiet; i++) {
            const char *v = wf->meta_val[i];
            size_t n = strlen(v);
            printf("metadata: %s = %.*s%s\n", wf->meta_key[i], n > 60 ? 60 : (int)n, v, n > 60 ? "..." : "");
        }
    }
    if (m) {
        int h, w, c;
        char rd[400];
        gr_model_layer_shape(m, -1, &h, &w, &c);
        gr_recipe r = gr_model_recipe(m);
        if (json) {
            printf(", \"input\": [%d, %d, %d], ", h, w, c);
            json_recipe(&r);
        } else {
            printf("input: %dx%dx%d\ninput recipe: %s\n", h, w, c, gr_recipe_describe(&r, rd, sizeof rd));
        }
        gr_model_free(m);
    }
    if (json) printf(", \"layers\": [");
    else if (!quiet) printf("layers: %d (%d with weights)\n", wf->n_layers, nweighted);
    for (int i = 0; i < wf->n_layers; i++) {
        const gr_wlayer *l = &wf->layers[i];
        int64_t lc = 0;
        for (int k = 0; k < l->n; k++) lc += gr_wtensor_count(&l->t[k]);
        total += lc;
        ntens += l->n;
        if (json) {
            printf("%s\n  {\"name\": ", i ? "," : "");
            cli_json_string(l->name);
            printf(", \"params\": %lld, \"tensors\": [", (long long)lc);
            for (int k = 0; k < l->n; k++) {
                const gr_wtensor *t = &l->t[k];
                printf("%s{\"name\": ", k ? ", " : "");
                cli_json_string(t->name);
                printf(", \"dtype\": \"%s\", \"shape\": [", t->dtype);
                for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->fshape[d]);
                printf("]}");
            }
            printf("]}");
            continue;
        }
        if (quiet) continue;
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
    }
    if (json) printf("\n], \"params\": %lld, \"tensors\": %d}\n", (long long)total, ntens);
    else printf("total: %lld parameters in %d tensors\n", (long long)total, ntens);
    gr_wfile_close(wf);
    return 0;
}

/* The base's cut candidates (gr_model_cut_candidates), with their ONNX tensor names. */
static void print_cuts(const gr_model *m, bool top) {
    int cuts[256], nc = gr_model_cut_candidates(m, cuts, 256), def = cli_default_cut(m);
    printf("cut candidates (--cut NAME, extract --layer NAME%s):\n",
           gr_model_layer_alias(m, def) ? "; the ONNX tensor or node name works too" : "");
    for (int k = 0; k < nc; k++) {
        int h, w, c;
        const char *alias = gr_model_layer_alias(m, cuts[k]);
        gr_model_layer_shape(m, cuts[k], &h, &w, &c);
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", h, w, c);
        printf("  %-4d %-40s %s%s%s%s%s\n", cuts[k], gr_model_layer_name(m, cuts[k]), shape, alias ? "  tensor '" : "",
               alias ? alias : "", alias ? "'" : "", cuts[k] == def && !top ? "  (the default cut)" : "");
    }
}

/* A base's layers as one JSON object. */
static void json_base(const char *base, const gr_model *m) {
    int h, w, c;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    printf("{\"base\": ");
    cli_json_string(base);
    printf(", \"input\": [%d, %d, %d], ", h, w, c);
    gr_recipe r = gr_model_recipe(m);
    json_recipe(&r);
    printf(", \"layers\": [");
    for (int i = 0; i < gr_model_num_layers(m); i++) {
        gr_model_layer_shape(m, i, &h, &w, &c);
        printf("%s\n  {\"name\": ", i ? "," : "");
        cli_json_string(gr_model_layer_name(m, i));
        printf(", \"op\": \"%s\", \"shape\": [%d, %d, %d]}", gr_op_name(gr_model_layer_op(m, i)), h, w, c);
    }
    int cuts[256], nc = gr_model_cut_candidates(m, cuts, 256);
    printf("\n], \"cut_candidates\": [");
    for (int k = 0; k < nc; k++) {
        printf("%s", k ? ", " : "");
        cli_json_string(gr_model_layer_name(m, cuts[k]));
    }
    printf("], \"default_cut\": ");
    cli_json_string(gr_model_layer_name(m, cli_default_cut(m)));
    printf(", \"params\": %lld, \"trainable_params\": %lld}\n", (long long)gr_model_param_count(m, false),
           (long long)gr_model_param_count(m, true));
}

int cmd_info(int argc, char **argv) {
    info_args a = {0};
    int rc = cli_parse(&info_cmd, argc, argv, &a);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    const char *base = a.base, *file = a.file, *weights = a.weights;
    int h = a.h, w = a.w;
    bool top = a.top, partial = a.partial, json = a.json, quiet = a.quiet;
    if (file && base) return cli_usage("info: give a FILE or --base, not both");
    if (file) {
        if (top || h || weights || partial)
            return cli_usage("info: --input-size, --include-top, --weights and --weights-partial go with --base");
        return info_file(file, json, quiet);
    }
    if (!base) {
        cli_help(&info_cmd, stderr);
        return cli_usage("info: nothing to show: give a weights FILE or --base");
    }
    gr_error err = {0};
    gr_model *m = cli_build_base(base, h, w, top, &err);
    if (!m) return cli_fail(&err);
    if (partial && !weights) {
        gr_model_free(m);
        return cli_usage("info: --weights-partial goes with --weights FILE");
    }
    if (weights && cli_load_weights(m, base, weights, top, partial, json || quiet ? NULL : stdout,
                                    !json && !quiet, &err)) {
        gr_model_free(m);
        return cli_fail(&err);
    }
    gr_recipe r = gr_model_recipe(m);
    char rd[400];
    if (json) json_base(base, m);
    else if (quiet) printf("params: %lld\n", (long long)gr_model_param_count(m, false));
    else gr_model_summary(m, stdout);
    if (!json) printf("input recipe: %s\n", gr_recipe_describe(&r, rd, sizeof rd));
    if (!json && !quiet && gr_model_recipe_note(m)[0]) printf("note: %s\n", gr_model_recipe_note(m));
    if (!json && !quiet) print_cuts(m, top);
    gr_model_free(m);
    return 0;
}
