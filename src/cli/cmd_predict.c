/* cmd_predict.c — `graft predict`: classify images with a whole network (a
 * pretrained classifier with its labels file, or a trained graft model) and
 * print the top classes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "data/dataset.h"

typedef struct {
    const char *model, *base, *weights, *labels;
    int top, json, quiet, threads, partial;
    cli_data_opts d;
    const char **images;     /* the IMAGE arguments (argc entries allocated) */
    int n_img;
} predict_args;

static int add_image(void *obj, const char *arg) {
    predict_args *a = obj;
    a->images[a->n_img++] = arg;
    return 0;
}

#define T predict_args
static const cli_opt predict_opts[] = {
    OPT_STR("--model", model, "MODEL", NULL, "a graft model (its class names and input recipe are used)"),
    OPT_STR("--base", base, CLI_BASE_METAVAR, NULL,
            "a pretrained classifier (vgg16: with its top)"),
    OPT_STR("--weights", weights, "FILE|imagenet|none", "imagenet",
            "its weights; every layer must load unless\n--weights-partial; a tflite: base has its own"),
    OPT_FLAG("--weights-partial", partial, 1, "allow a weights file that fits only some layers"),
    OPT_STR("--labels", labels, "FILE", NULL, "class names, one per line, one per output [tiny-darknet: its own]"),
    OPT_INT("--top", top, 1, "5", "the classes printed per image"),
    OPT_JSON_QUIET(json, "one JSON object per image", quiet,
                   "no \"weights: ...\" line (with --json it goes to stderr)"),
    OPT_THREADS(threads),
    OPT_GROUP(d, cli_data_recipe_table),
    OPT_END};
#undef T

static const cli_cmd predict_cmd = {
    .name = "predict",
    .intro = "usage: graft predict --model MODEL [options] IMAGE...\n"
             "       graft predict --base BASE [--weights FILE] [--labels FILE] [options] IMAGE...\n"
             "\n"
             "Decodes each image (JPEG, PNG, BMP), brings it to the network's input with the\n"
             "network's recipe (the model's, or the base's own: resize mode, interpolation,\n"
             "normalization; darknet bases letterbox like darknet classify), runs it and\n"
             "prints the top classes (with their probability; a network that does not end\n"
             "in a softmax: its scores).\n"
             "\n",
    .opts = predict_opts,
    .outro = "An IMAGE that is a directory stands for every JPEG/PNG/BMP file under it\n"
             "(recursively, by content not name; names starting with '.' skipped), sorted by path.\n"
             "A bad image is reported (graft: error: FILE: ...) and the others are still classified;\n"
             "the exit status is then 1.  Exit status 2: a usage error.\n",
    .operand = add_image};

/* Replaces each directory in images[0..n) by the images under it (sorted);
 * *owned collects the strings allocated here.  Returns the new count, -1
 * on failure (printed).                                                   */
static int expand_dirs(const char ***images, int n, char ***owned, int *n_owned) {
    const char **out = NULL;
    int n_out = 0;
    for (int k = 0; k < n; k++) {
        struct stat sb;
        char **list = NULL;
        int nl = 0, ignored = 0;
        if (stat((*images)[k], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            gr_error err = {0};
            if (gr_image_list((*images)[k], &list, &nl, &ignored, &err) != GR_OK) {
                free(out);
                return cli_fail(&err), -1;
            }
            if (nl == 0) {
                free(list);
                free(out);
                return cli_failf("%s: a directory with no JPEG/PNG/BMP images (%d other files)", (*images)[k],
                                 ignored), -1;
            }
            fprintf(stderr, "%s: %d images%s\n", (*images)[k], nl, ignored ? " (other files skipped)" : "");
        }
        const char **q = realloc(out, (size_t)(n_out + (list ? nl : 1)) * sizeof *q);
        char **o2 = list ? realloc(*owned, (size_t)(*n_owned + nl) * sizeof *o2) : *owned;
        if (q) out = q;
        if (o2) *owned = o2;
        if (!q || (list && !o2)) {
            for (int i = 0; i < nl; i++) free(list[i]);
            free(list);
            free(out);
            return cli_failf("out of memory"), -1;
        }
        if (!list) { out[n_out++] = (*images)[k]; continue; }
        for (int i = 0; i < nl; i++) out[n_out++] = (*owned)[(*n_owned)++] = list[i];
        free(list);
    }
    free(*images);
    *images = out;
    return n_out;
}

/* Reads a labels file: one name per line.  Returns the count or -1. */
static int read_labels(const char *path, char ***out, gr_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) { gr_error_set(err, GR_ERR_IO, "%s: cannot open the labels file", path); return -1; }
    char line[1024];
    int n = 0, cap = 0;
    char **v = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        if (!(v[n] = strdup(line))) break;
        n++;
    }
    fclose(f);
    *out = v;
    return n;
}

/* The network and what it needs to label its outputs. */
typedef struct {
    gr_model *m;
    gr_ctx *cx;              /* one execution context for every image: the fast path is built once */
    gr_recipe recipe;
    char **names;            /* --labels' lines (a base), or NULL */
    int n_names, h, w, C;
    float *x, *p;
} predict_net;

/* Loads --model or --base, the recipe, the labels and the buffers.  0 ok, -1 + *err. */
static int open_network(const predict_args *a, predict_net *n, gr_error *err) {
    if (a->model) n->m = gr_model_load(a->model, err);
    else   /* the whole network, with its classifier; weights default to imagenet */
        n->m = cli_load_base(a->base, a->weights, a->d.h, a->d.w, true, a->partial,
                             a->quiet ? NULL : (a->json ? stderr : stdout), err);
    if (!n->m || !(n->cx = gr_ctx_new(n->m, err))) return -1;
    n->recipe = gr_model_recipe(n->m);   /* the model's or the base's; options override it */
    cli_recipe_apply(&a->d, &n->recipe);
    const char *labels = a->labels;
    char lab_path[4096];
    if (!labels && a->base && !strcmp(a->base, "tiny-darknet")) {   /* the fetched labels */
        if (gr_fetch_resolve("tiny-darknet", "labels", NULL, lab_path, sizeof lab_path, err) != GR_OK) return -1;
        labels = lab_path;
    }
    if (labels && (n->n_names = read_labels(labels, &n->names, err)) < 0) return -1;
    int c, hh, ww;
    gr_model_layer_shape(n->m, -1, &n->h, &n->w, &c);
    gr_model_layer_shape(n->m, gr_model_num_layers(n->m) - 1, &hh, &ww, &n->C);
    n->C *= hh * ww;
    if (labels && n->n_names != n->C) {   /* names for other classes would label every answer wrongly */
        gr_error_set(err, GR_ERR_ARG, "%s: %d class names (one per line) but the network has %d outputs", labels,
                     n->n_names, n->C);
        return -1;
    }
    n->x = malloc((size_t)n->h * n->w * 3 * sizeof(float));
    n->p = malloc((size_t)n->C * sizeof(float));
    if (!n->x || !n->p) { gr_error_set(err, GR_ERR_NOMEM, "out of memory"); return -1; }
    return 0;
}

/* Prints the top classes of one image's outputs n->p. */
static void print_top(const predict_args *a, const predict_net *n, const char *image) {
    const float *p = n->p;
    int C = n->C, top = a->top < C ? a->top : C;
    if (a->json) { printf("{\"image\": "); cli_json_string(image); printf(", \"top\": ["); }
    else printf("%s\n", image);
    /* a network that does not end in a softmax gives scores, not probabilities:
     * printed as scores (a "141%" would be a wrong answer)                    */
    double sum = 0;
    bool is_prob = true;
    for (int j = 0; j < C; j++) {
        is_prob &= p[j] >= 0 && p[j] <= 1;
        sum += p[j];
    }
    is_prob &= fabs(sum - 1) < 1e-3;
    int best_k[64];
    if (top > 64) top = 64;
    for (int t = 0; t < top; t++) {
        int best = -1;
        for (int j = 0; j < C; j++) {
            int taken = 0;
            for (int u = 0; u < t; u++) taken |= best_k[u] == j;
            if (!taken && (best < 0 || p[j] > p[best])) best = j;
        }
        best_k[t] = best;
        /* --labels, else the model's names (a model file; an ONNX base's class_names metadata) */
        const char *label = best < n->n_names ? n->names[best] : gr_model_class_name(n->m, best);
        if (a->json) {
            printf("%s{\"index\": %d, \"label\": ", t ? ", " : "", best);
            cli_json_string(label ? label : "");
            printf(is_prob ? ", \"prob\": " : ", \"score\": ");
            cli_json_number(p[best]);
            printf("}");
        } else if (is_prob) {
            printf("  %6.2f%%  %s (%d)\n", 100.0 * p[best], label ? label : "?", best);
        } else {
            printf("  score %.4g  %s (%d)\n", p[best], label ? label : "?", best);
        }
    }
    if (a->json) printf("]}\n");
    fflush(stdout);
}

/* Classifies every image: 0, 1 when an image could not be read (reported,
 * the others still classified), -1 + *err when the network fails.        */
static int classify(const predict_args *a, predict_net *n, gr_error *err) {
    int rc = 0;
    for (int k = 0; k < a->n_img; k++) {
        gr_image img = {0};
        if (gr_image_load(a->images[k], &img, err) != GR_OK ||
            gr_image_resize_recipe(&img, n->h, n->w, &n->recipe, n->x, err) != GR_OK) {
            gr_image_free(&img);
            cli_fail(err);
            rc = 1;
            continue;
        }
        gr_image_free(&img);
        gr_norm_apply(&n->recipe.norm, n->x, (size_t)n->h * n->w);
        if (gr_ctx_predict(n->cx, n->x, 1, -1, n->p, err) != GR_OK) {
            gr_error_prefix(err, "%s on %s", a->model ? a->model : a->base, a->images[k]);
            return -1;
        }
        print_top(a, n, a->images[k]);
    }
    return rc;
}

/* The usage errors of a parsed command line: 0 or the exit code. */
static int check_args(const predict_args *a) {
    if (!a->n_img) return cli_usage("no images given (see graft predict --help)");
    if (!a->model && !a->base) return cli_usage("give --model MODEL or --base BASE [--weights FILE]");
    if (a->model && (a->base || a->weights || a->partial || a->labels))
        return cli_usage("--model MODEL holds its network, weights and class names: drop --base/--weights/--labels");
    return 0;
}

int cmd_predict(int argc, char **argv) {
    predict_args a = {.top = 5, .images = calloc((size_t)argc, sizeof(const char *))};
    if (!a.images) return cli_failf("out of memory");
    int rc = cli_parse(&predict_cmd, argc, argv, &a);
    if (rc || (rc = check_args(&a))) {
        free(a.images);
        return rc == CLI_HELP ? 0 : rc;
    }
    char **owned = NULL;
    int n_owned = 0;
    predict_net n = {0};
    gr_error err = {0};
    if ((a.n_img = expand_dirs(&a.images, a.n_img, &owned, &n_owned)) < 0) {
        rc = 1;
    } else {
        gr_set_threads(a.threads);
        rc = open_network(&a, &n, &err) ? -1 : classify(&a, &n, &err);
        if (rc < 0) rc = cli_fail(&err);
    }
    for (int i = 0; i < n.n_names; i++) free(n.names[i]);
    free(n.names);
    free(n.x);
    free(n.p);
    free(a.images);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    gr_ctx_free(n.cx);
    gr_model_free(n.m);
    return rc;
}
