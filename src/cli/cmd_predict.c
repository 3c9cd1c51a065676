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

static void usage(FILE *f) {
    fprintf(f,
"usage: graft predict --model MODEL [options] IMAGE...\n"
"       graft predict --base BASE [--weights FILE] [--labels FILE] [options] IMAGE...\n"
"\n"
"Decodes each image (JPEG, PNG, BMP), brings it to the network's input with the\n"
"network's recipe (the model's, or the base's own: resize mode, interpolation,\n"
"normalization; darknet bases letterbox like darknet classify), runs it and\n"
"prints the top classes (with their probability; a network that does not end\n"
"in a softmax: its scores).\n"
"\n"
"  --model MODEL         a graft model (its class names and input recipe are used)\n"
"  --base vgg16|tiny-darknet|darknet:FILE.cfg   a pretrained classifier (vgg16: with its top)\n"
"  --weights FILE|imagenet|none   its weights [imagenet]; every layer must load unless\n"
"                        --weights-partial; a tflite: base has its own\n"
"  --labels FILE         class names, one per line, one per output [tiny-darknet: its own]\n"
"  --top K [5]   --json (one object per image)   --threads N [cores]\n"
"  --quiet               no \"weights: ...\" line (with --json it goes to stderr)\n");
    cli_data_help(f, CLI_DATA_RECIPE);
    fprintf(f,
"An IMAGE that is a directory stands for every JPEG/PNG/BMP file under it\n"
"(recursively, by content not name; names starting with '.' skipped), sorted by path.\n"
"A bad image is reported (graft: error: FILE: ...) and the others are still classified;\n"
"the exit status is then 1.  Exit status 2: a usage error.\n");
}

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

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *base = NULL, *weights = NULL, *labels = NULL;
    int top = 5, json = 0, quiet = 0, threads = 0, h = 0, w = 0, partial = 0;
    cli_data_opts d = {0};
    const char **images = calloc((size_t)argc, sizeof *images);
    int n_img = 0;
    if (!images) return cli_failf("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(images); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { quiet = 1; continue; }
        if (!strcmp(a, "--weights-partial")) { partial = 1; continue; }
        if (a[0] != '-' || !a[1]) { images[n_img++] = a; continue; }
        int dr = cli_data_option(argc, argv, &i, CLI_DATA_RECIPE, "predict", &d);
        if (dr == 1) continue;
        if (dr) { free(images); return dr; }
        static const char *const known[] = {"--model", "--base", "--weights", "--labels", "--top", "--threads", NULL};
        int k = 0;
        while (known[k] && strcmp(a, known[k])) k++;
        if (!known[k]) { free(images); return cli_usage("unknown option '%s' (see graft predict --help)", a); }
        if (i + 1 >= argc) { free(images); return cli_usage("%s needs a value (see graft predict --help)", a); }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--base")) base = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--labels")) labels = v;
        else if (!strcmp(a, "--top")) bad = cli_parse_int(v, &top) || top <= 0;
        else bad = cli_parse_int(v, &threads) || threads < 0;
        if (bad) { free(images); return cli_usage("%s '%s': expected a %s integer", a, v, !strcmp(a, "--top") ? "positive" : "non-negative"); }
    }
    h = d.h, w = d.w;
    if (!n_img) { free(images); return cli_usage("no images given (see graft predict --help)"); }
    if (!model && !base) { free(images); return cli_usage("give --model MODEL or --base BASE [--weights FILE]"); }
    if (model && (base || weights || partial || labels)) {
        free(images);
        return cli_usage("--model MODEL holds its network, weights and class names: drop --base/--weights/--labels");
    }
    char **owned = NULL;
    int n_owned = 0;
    if ((n_img = expand_dirs(&images, n_img, &owned, &n_owned)) < 0) {
        for (int i = 0; i < n_owned; i++) free(owned[i]);
        free(owned);
        free(images);
        return 1;
    }
    gr_set_threads(threads);
    gr_error err = {0};
    gr_model *m = NULL;
    gr_ctx *cx = NULL;   /* one execution context for every image: the fast path is built once */
    char **names = NULL;
    int n_names = 0, rc = 0;
    float *x = NULL, *p = NULL;
    if (model) {
        m = gr_model_load(model, &err);
    } else {   /* the whole network, with its classifier; weights default to imagenet */
        m = cli_load_base(base, weights, h, w, true, partial, quiet ? NULL : (json ? stderr : stdout), &err);
    }
    if (!m) goto fail;
    gr_recipe recipe = gr_model_recipe(m);   /* the model's or the base's; options override it */
    cli_recipe_apply(&d, &recipe);
    char lab_path[4096];
    if (!labels && base && !strcmp(base, "tiny-darknet")) {   /* the fetched labels */
        if (gr_fetch_resolve("tiny-darknet", "labels", NULL, lab_path, sizeof lab_path, &err) != GR_OK) goto fail;
        labels = lab_path;
    }
    if (labels && (n_names = read_labels(labels, &names, &err)) < 0) goto fail;
    int c, C;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    int hh, ww;
    gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &hh, &ww, &C);
    C *= hh * ww;
    if (labels && n_names != C) {   /* names for other classes would label every answer wrongly */
        gr_error_set(&err, GR_ERR_ARG, "%s: %d class names (one per line) but the network has %d outputs", labels,
                     n_names, C);
        goto fail;
    }
    if (top > C) top = C;
    x = malloc((size_t)h * w * 3 * sizeof(float));
    p = malloc((size_t)C * sizeof(float));
    if (!x || !p) { gr_error_set(&err, GR_ERR_NOMEM, "out of memory"); goto fail; }
    if (!(cx = gr_ctx_new(m, &err))) goto fail;
    for (int k = 0; k < n_img; k++) {
        gr_image img = {0};
        if (gr_image_load(images[k], &img, &err) != GR_OK ||
            gr_image_resize_recipe(&img, h, w, &recipe, x, &err) != GR_OK) {
            gr_image_free(&img);
            cli_fail(&err);
            rc = 1;
            continue;
        }
        gr_image_free(&img);
        gr_preprocess_apply(recipe.norm, x, (size_t)h * w);
        if (gr_ctx_predict(cx, x, 1, -1, p, &err) != GR_OK) {
            gr_error_prefix(&err, "%s on %s", model ? model : base, images[k]);
            goto fail;
        }
        if (json) { printf("{\"image\": "); cli_json_string(images[k]); printf(", \"top\": ["); }
        else printf("%s\n", images[k]);
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
            const char *label = model ? gr_model_class_name(m, best) : (best < n_names ? names[best] : NULL);
            if (json) {
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
        if (json) printf("]}\n");
        fflush(stdout);
    }
    goto out;
fail:
    rc = cli_fail(&err);
out:
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    free(x);
    free(p);
    free(images);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    gr_ctx_free(cx);
    gr_model_free(m);
    return rc;
}
