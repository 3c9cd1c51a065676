/* darknet.c — reading a darknet .cfg file into a graft model.
 *
 * The file is read whole into sections of key=value pairs (whitespace is
 * dropped everywhere and lines starting with '#' or ';' are comments, as
 * darknet does), then each section after [net] becomes darknet layer i and one
 * or more graft nodes; the node holding layer i's output is named "i".  See
 * darknet.h for the mapping and darknet_weights.c for the .weights reader.
 *
 * Strictness: a key graft does not know in a layer section is an error (it
 * might change the math: dilation, stride_x, ...), except the training-only
 * keys of [net], [crop] and [cost], which are ignored.  Every error names
 * "file:line: [section] (layer i)".                                          */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph/model.h"
#include "arch/darknet.h"

typedef struct {
    char *key, *val;
    int line;
    bool used;
} dk_kv;

typedef struct {
    char *name;          /* without brackets */
    int line;
    dk_kv *kv;
    int n_kv, cap_kv;
} dk_section;

typedef struct {
    const char *path;
    dk_section *sec;
    int n_sec, cap_sec;
    gr_error *err;
    /* the section being built, for error messages */
    dk_section *cur;
    int layer;
} dk_cfg;

static void cfg_free(dk_cfg *c) {
    for (int i = 0; i < c->n_sec; i++) {
        for (int k = 0; k < c->sec[i].n_kv; k++) {
            free(c->sec[i].kv[k].key);
            free(c->sec[i].kv[k].val);
        }
        free(c->sec[i].kv);
        free(c->sec[i].name);
    }
    free(c->sec);
}

/* Removes every whitespace character in place (darknet's strip()). */
static void strip_ws(char *s) {
    char *o = s;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\v' && *s != '\f')
            *o++ = *s;
    *o = 0;
}

/* Reads the file into c->sec.  GR_OK or an error naming the file and line. */
static gr_status cfg_read(dk_cfg *c) {
    FILE *f = fopen(c->path, "r");
    if (!f)
        return gr_error_set(c->err, GR_ERR_IO, "%s: cannot open darknet cfg: %s", c->path,
                            strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    gr_status st = GR_OK;
    while (st == GR_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        strip_ws(line);
        if (!line[0] || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            size_t n = strlen(line);
            if (n < 3 || line[n - 1] != ']') {
                st = gr_error_set(c->err, GR_ERR_FORMAT, "%s:%d: malformed section header '%s'",
                                  c->path, lineno, line);
                break;
            }
            if (c->n_sec == c->cap_sec) {
                int nc = c->cap_sec ? 2 * c->cap_sec : 64;
                dk_section *ns = gr_realloc(c->sec, (size_t)nc * sizeof *ns, c->err);
                if (!ns) { st = GR_ERR_NOMEM; break; }
                c->sec = ns;
                c->cap_sec = nc;
            }
            dk_section *s = &c->sec[c->n_sec];
            memset(s, 0, sizeof *s);
            line[n - 1] = 0;
            s->name = gr_strdup(line + 1, c->err);
            if (!s->name) { st = GR_ERR_NOMEM; break; }
            s->line = lineno;
            c->n_sec++;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq || eq == line) {
            st = gr_error_set(c->err, GR_ERR_FORMAT, "%s:%d: expected key=value, got '%s'",
                              c->path, lineno, line);
            break;
        }
        if (c->n_sec == 0) {
            st = gr_error_set(c->err, GR_ERR_FORMAT,
                              "%s:%d: '%s' before any section (the file must start with [net])",
                              c->path, lineno, line);
            break;
        }
        dk_section *s = &c->sec[c->n_sec - 1];
        if (s->n_kv == s->cap_kv) {
            int nc = s->cap_kv ? 2 * s->cap_kv : 16;
            dk_kv *nk = gr_realloc(s->kv, (size_t)nc * sizeof *nk, c->err);
            if (!nk) { st = GR_ERR_NOMEM; break; }
            s->kv = nk;
            s->cap_kv = nc;
        }
        *eq = 0;
        dk_kv *kv = &s->kv[s->n_kv];
        kv->key = gr_strdup(line, c->err);
        kv->val = gr_strdup(eq + 1, c->err);
        kv->line = lineno;
        kv->used = false;
        s->n_kv++;
        if (!kv->key || !kv->val) st = GR_ERR_NOMEM;
    }
    free(line);
    if (st == GR_OK && ferror(f))
        st = gr_error_set(c->err, GR_ERR_IO, "%s: read error: %s", c->path, strerror(errno));
    fclose(f);
    return st;
}

/* ------------------------------------------------------------- key lookup */

/* Error about the current section: "file:line: [sec] (layer i): ...". */
static gr_status sec_error(dk_cfg *c, gr_status code, int line, const char *what) {
    if (c->layer >= 0)
        return gr_error_set(c->err, code, "%s:%d: [%s] (layer %d): %s", c->path, line,
                            c->cur->name, c->layer, what);
    return gr_error_set(c->err, code, "%s:%d: [%s]: %s", c->path, line, c->cur->name, what);
}

static dk_kv *kv_find(dk_cfg *c, const char *key) {
    dk_section *s = c->cur;
    for (int k = 0; k < s->n_kv; k++)
        if (!strcmp(s->kv[k].key, key)) { s->kv[k].used = true; return &s->kv[k]; }
    return NULL;
}

/* Reads integer `key` (default def) into *out; checks *out >= lo. */
static gr_status kv_int(dk_cfg *c, const char *key, int def, int lo, int *out) {
    dk_kv *kv = kv_find(c, key);
    if (!kv) { *out = def; return GR_OK; }
    char *end;
    errno = 0;
    long v = strtol(kv->val, &end, 10);
    char what[256];
    if (!kv->val[0] || *end) {
        snprintf(what, sizeof what, "%s=%s is not an integer", key, kv->val);
        return sec_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    if (errno == ERANGE || v < -1000000000L || v > 1000000000L) {
        snprintf(what, sizeof what, "%s=%s is out of range (%d to 1000000000)", key, kv->val, lo);
        return sec_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    if (v < lo) {
        snprintf(what, sizeof what, "%s=%ld must be >= %d", key, v, lo);
        return sec_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    *out = (int)v;
    return GR_OK;
}

static gr_status kv_float(dk_cfg *c, const char *key, float def, float *out) {
    dk_kv *kv = kv_find(c, key);
    if (!kv) { *out = def; return GR_OK; }
    char *end;
    errno = 0;
    float v = strtof(kv->val, &end);
    if (!kv->val[0] || *end || errno || v != v) {
        char what[256];
        snprintf(what, sizeof what, "%s=%s is not a number", key, kv->val);
        return sec_error(c, GR_ERR_FORMAT, kv->line, what);
    }
    *out = v;
    return GR_OK;
}

/* An integer key that graft only supports at one value (e.g. dilation=1). */
static gr_status kv_int_fixed(dk_cfg *c, const char *key, int want) {
    int v;
    gr_status st = kv_int(c, key, want, -1000000000, &v);
    if (st) return st;
    if (v != want) {
        char what[256];
        snprintf(what, sizeof what, "%s=%d is not supported (only %d)", key, v, want);
        return sec_error(c, GR_ERR_UNSUPPORTED, kv_find(c, key)->line, what);
    }
    return GR_OK;
}

/* Darknet activation names -> graft's. */
static gr_status kv_act(dk_cfg *c, const char *def, gr_act *act, float *alpha) {
    dk_kv *kv = kv_find(c, "activation");
    const char *v = kv ? kv->val : def;
    *alpha = 0;
    if (!strcmp(v, "leaky")) { *act = GR_ACT_LEAKY; *alpha = 0.1f; }
    else if (!strcmp(v, "relu")) *act = GR_ACT_RELU;
    else if (!strcmp(v, "linear")) *act = GR_ACT_LINEAR;
    else if (!strcmp(v, "logistic")) *act = GR_ACT_SIGMOID;
    else if (!strcmp(v, "tanh")) *act = GR_ACT_TANH;
    else {
        char what[256];
        snprintf(what, sizeof what, "activation=%s is not supported (leaky, relu, linear, "
                 "logistic, tanh)", v);
        return sec_error(c, GR_ERR_UNSUPPORTED, kv ? kv->line : c->cur->line, what);
    }
    return GR_OK;
}

/* Marks keys that only matter for training as used. */
static void kv_ignore(dk_cfg *c, const char *const *keys) {
    for (; *keys; keys++) kv_find(c, *keys);
}

static gr_status check_unused(dk_cfg *c) {
    for (int k = 0; k < c->cur->n_kv; k++)
        if (!c->cur->kv[k].used) {
            char what[256];
            snprintf(what, sizeof what, "unknown key '%s'", c->cur->kv[k].key);
            return sec_error(c, GR_ERR_FORMAT, c->cur->kv[k].line, what);
        }
    return GR_OK;
}

/* ------------------------------------------------------------ building */

/* Appends a node; on failure prefixes the error with the cfg position. */
static int add(dk_cfg *c, gr_model *m, gr_layer_spec s) {
    int id = gr_model_append(m, s, c->err);
    if (id < 0 && c->err)
        gr_error_prefix(c->err, "%s:%d: [%s] (layer %d)", c->path, c->cur->line, c->cur->name,
                        c->layer);
    return id;
}

static gr_layer_spec named(gr_layer_spec s, int layer, const char *suffix) {
    if (suffix) snprintf(s.name, sizeof s.name, "%d/%s", layer, suffix);
    else snprintf(s.name, sizeof s.name, "%d", layer);
    return s;
}

/* A node reading from `from` (-1 = input) instead of the previous node. */
static gr_layer_spec from_node(gr_layer_spec s, int from) {
    s.n_inputs = 1;
    s.inputs[0] = from;
    return s;
}

/* Flattens `prev` (darknet [connected]/[softmax] input) unless it is 1x1.
 * Returns the node to read from (-1 = the input), or -2 on error. */
static int flatten_if_needed(dk_cfg *c, gr_model *m, int prev) {
    int h, w, ch;
    gr_model_layer_shape(m, prev, &h, &w, &ch);
    if (h == 1 && w == 1) return prev;
    int id = add(c, m, from_node(named(gr_flatten(), c->layer, "flatten"), prev));
    return id < 0 ? -2 : id;
}

static int build_conv(dk_cfg *c, gr_model *m, int prev) {
    int filters, size, stride, pad, padding, groups, bn;
    gr_act act;
    float alpha;
    if (kv_int(c, "filters", 1, 1, &filters) || kv_int(c, "size", 1, 1, &size) ||
        kv_int(c, "stride", 1, 1, &stride) || kv_int(c, "pad", 0, 0, &pad) ||
        kv_int(c, "padding", 0, 0, &padding) || kv_int(c, "groups", 1, 1, &groups) ||
        kv_int(c, "batch_normalize", 0, 0, &bn) || kv_act(c, "logistic", &act, &alpha) ||
        kv_int_fixed(c, "binary", 0) || kv_int_fixed(c, "xnor", 0) ||
        kv_int_fixed(c, "dilation", 1) || kv_int_fixed(c, "flipped", 0))
        return -1;
    if (pad) padding = size / 2;
    gr_layer_spec s = gr_conv2d(filters, size, size, stride, GR_PAD_EXPLICIT, bn ? GR_ACT_LINEAR : act);
    s.pad_t = s.pad_b = s.pad_l = s.pad_r = padding;
    s.groups = groups;
    s.alpha = bn ? 0 : alpha;
    s.use_bias = !bn;
    int id = add(c, m, from_node(named(s, c->layer, bn ? "conv" : NULL), prev));
    if (id < 0 || !bn) return id;
    bool lin = act == GR_ACT_LINEAR;
    id = add(c, m, named(gr_batchnorm(GR_DARKNET_BN_EPS), c->layer, lin ? NULL : "bn"));
    if (id < 0 || lin) return id;
    return add(c, m, named(gr_activation(act, alpha), c->layer, NULL));
}

static int build_connected(dk_cfg *c, gr_model *m, int prev) {
    int out, bn;
    gr_act act;
    float alpha;
    if (kv_int(c, "output", 1, 1, &out) || kv_int(c, "batch_normalize", 0, 0, &bn) ||
        kv_act(c, "logistic", &act, &alpha))
        return -1;
    int in = flatten_if_needed(c, m, prev);
    if (in < -1) return -1;
    gr_layer_spec s = gr_dense(out, bn ? GR_ACT_LINEAR : act);
    s.alpha = bn ? 0 : alpha;
    s.use_bias = !bn;
    int id = add(c, m, from_node(named(s, c->layer, bn ? "dense" : NULL), in));
    if (id < 0 || !bn) return id;
    bool lin = act == GR_ACT_LINEAR;
    id = add(c, m, named(gr_batchnorm(GR_DARKNET_BN_EPS), c->layer, lin ? NULL : "bn"));
    if (id < 0 || lin) return id;
    return add(c, m, named(gr_activation(act, alpha), c->layer, NULL));
}

/* Darknet's maxpool: out = (in + padding - size) / stride + 1, window start
 * o*stride - padding/2, cells outside the image ignored. */
static int build_maxpool(dk_cfg *c, gr_model *m, int prev) {
    int stride, size, padding;
    if (kv_int(c, "stride", 1, 1, &stride) || kv_int(c, "size", stride, 1, &size) ||
        kv_int(c, "padding", size - 1, 0, &padding))
        return -1;
    int h, w, ch;
    gr_model_layer_shape(m, prev, &h, &w, &ch);
    gr_layer_spec s = gr_maxpool(size, stride);
    s.padding = GR_PAD_EXPLICIT;
    s.pad_t = s.pad_l = padding / 2;
    s.pad_b = s.pad_r = padding - padding / 2;
    int oh = h + padding - size, ow = w + padding - size;
    if (oh < 0 || ow < 0) {
        char what[256];
        snprintf(what, sizeof what, "a %dx%d input is too small for a size-%d maxpool", h, w, size);
        sec_error(c, GR_ERR_SHAPE, c->cur->line, what);
        return -1;
    }
    s.out_h = oh / stride + 1;
    s.out_w = ow / stride + 1;
    return add(c, m, from_node(named(s, c->layer, NULL), prev));
}

static int build_softmax(dk_cfg *c, gr_model *m, int prev) {
    float temp;
    if (kv_int_fixed(c, "groups", 1) || kv_float(c, "temperature", 1, &temp)) return -1;
    if (temp != 1) {
        sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "temperature other than 1 is not supported");
        return -1;
    }
    int in = flatten_if_needed(c, m, prev);
    if (in < -1) return -1;
    return add(c, m, from_node(named(gr_softmax(), c->layer, NULL), in));
}

/* Resolves a darknet layer reference (negative = relative to this layer). */
static gr_status layer_ref(dk_cfg *c, int v, int line, int *out) {
    int idx = v < 0 ? c->layer + v : v;
    if (idx < 0 || idx >= c->layer) {
        char what[256];
        snprintf(what, sizeof what, "refers to layer %d, which is not an earlier layer", idx);
        return sec_error(c, GR_ERR_FORMAT, line, what);
    }
    *out = idx;
    return GR_OK;
}

static int build_shortcut(dk_cfg *c, gr_model *m, int prev, const int *out_node) {
    int from = 0;
    float a, b;
    gr_act act;
    float alpha;
    dk_kv *kv = kv_find(c, "from");
    if (!kv) { sec_error(c, GR_ERR_FORMAT, c->cur->line, "missing from="); return -1; }
    kv->used = false;   /* re-read strictly below */
    if (kv_int(c, "from", 0, -1000000, &from) || layer_ref(c, from, kv->line, &from) ||
        kv_act(c, "linear", &act, &alpha) || kv_float(c, "alpha", 1, &a) ||
        kv_float(c, "beta", 1, &b))
        return -1;
    if (a != 1 || b != 1) {
        sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "alpha/beta other than 1 are not supported");
        return -1;
    }
    int addn = out_node[from];
    int h1, w1, c1, h2, w2, c2;
    gr_model_layer_shape(m, addn, &h1, &w1, &c1);
    gr_model_layer_shape(m, prev, &h2, &w2, &c2);
    if (h1 != h2 || w1 != w2 || c1 != c2) {
        /* darknet adds add[k, y*stride, x*stride] to out[k, y, x] for the first
         * min(c1, c2) channels: a fixed 1x1 conv "i/shortcut" with stride and
         * an identity kernel does that (its weights are not in the file). */
        int st = w1 / (w2 ? w2 : 1);
        if (w1 < w2 || h1 < h2 || st < 1 || st != h1 / h2 || (h1 - 1) / st + 1 != h2 ||
            (w1 - 1) / st + 1 != w2) {
            char what[256];
            snprintf(what, sizeof what, "adding a %dx%d layer to a %dx%d one is not supported",
                     h1, w1, h2, w2);
            sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, what);
            return -1;
        }
        gr_layer_spec p = gr_conv2d(c2, 1, 1, st, GR_PAD_VALID, GR_ACT_LINEAR);
        p.use_bias = false;
        int id = add(c, m, from_node(named(p, c->layer, "shortcut"), addn));
        if (id < 0) return -1;
        float *k = gr_param_data(m, gr_node_param(m, id, "kernel"));   /* [1][1][c1][c2] */
        memset(k, 0, (size_t)c1 * c2 * sizeof(float));
        for (int ch = 0; ch < c1 && ch < c2; ch++) k[(size_t)ch * c2 + ch] = 1;
        m->w_version++;
        addn = id;
    }
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_ADD;
    s.act = act;
    s.alpha = alpha;
    s.n_inputs = 2;
    s.inputs[0] = prev;
    s.inputs[1] = addn;
    return add(c, m, named(s, c->layer, NULL));
}

static int build_route(dk_cfg *c, gr_model *m, const int *out_node) {
    dk_kv *kv = kv_find(c, "layers");
    if (!kv || !kv->val[0]) { sec_error(c, GR_ERR_FORMAT, c->cur->line, "missing layers="); return -1; }
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_CONCAT;
    const char *p = kv->val;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        char what[256];
        if (end == p || errno || (*end && *end != ',') || v < -1000000 || v > 1000000) {
            snprintf(what, sizeof what, "layers=%s is not a list of integers", kv->val);
            sec_error(c, GR_ERR_FORMAT, kv->line, what);
            return -1;
        }
        int idx = 0;
        if (layer_ref(c, (int)v, kv->line, &idx)) return -1;
        if (s.n_inputs == GR_MAX_INPUTS) {
            snprintf(what, sizeof what, "more than %d routed layers are not supported", GR_MAX_INPUTS);
            sec_error(c, GR_ERR_UNSUPPORTED, kv->line, what);
            return -1;
        }
        s.inputs[s.n_inputs++] = out_node[idx];
        p = *end ? end + 1 : end;
    }
    return add(c, m, named(s, c->layer, NULL));
}

/* [crop] as the first layer: the input is the crop; darknet's test-time crop
 * maps x to 2x-1 unless noadjust=1 (a standardize node with mean=std=0.5). */
static int build_crop(dk_cfg *c, gr_model *m, bool *no_node) {
    static const char *const ign[] = {"crop_height", "crop_width", "flip", "angle",
                                      "saturation", "exposure", "shift", NULL};
    int noadjust;
    if (kv_int(c, "noadjust", 0, 0, &noadjust)) return -1;
    kv_ignore(c, ign);
    *no_node = noadjust != 0;
    if (noadjust) return -1;   /* no node: layer 0 is the input */
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_STANDARDIZE;
    int id = add(c, m, named(s, c->layer, NULL));
    if (id < 0) return id;
    float *mean = gr_param_data(m, gr_node_param(m, id, "mean"));
    float *sd = gr_param_data(m, gr_node_param(m, id, "std"));
    for (int64_t k = 0; k < gr_node_size(m, id); k++) { mean[k] = 0.5f; sd[k] = 0.5f; }
    m->w_version++;
    return id;
}

static bool is_unsupported_section(const char *n) {
    static const char *const known[] = {
        "local", "deconvolutional", "deconv", "normalization", "lrn", "batchnorm", "rnn",
        "gru", "lstm", "crnn", "conv_lstm", "detection", "region", "yolo", "Gaussian_yolo",
        "iseg", "reorg", "reorg3d", "upsample", "logistic", "l2norm", "xnor", "activation",
        "sam", "scale_channels", "implicit_add", "implicit_mul", "empty", "silence",
        "contrastive", "local_avgpool", NULL};
    for (int i = 0; known[i]; i++)
        if (!strcmp(n, known[i])) return true;
    return false;
}

/* Builds one layer section; returns its output node (-1 = the model input)
 * or < -1 on error.  out_node maps earlier darknet layers to nodes. */
static int build_layer(dk_cfg *c, gr_model *m, int prev, const int *out_node, bool *ok) {
    const char *n = c->cur->name;
    int r = -2;
    *ok = false;
    if (!strcmp(n, "convolutional") || !strcmp(n, "conv")) r = build_conv(c, m, prev);
    else if (!strcmp(n, "connected") || !strcmp(n, "conn")) r = build_connected(c, m, prev);
    else if (!strcmp(n, "maxpool") || !strcmp(n, "max")) r = build_maxpool(c, m, prev);
    else if (!strcmp(n, "avgpool") || !strcmp(n, "avg"))
        r = add(c, m, from_node(named(gr_global_avgpool(), c->layer, NULL), prev));
    else if (!strcmp(n, "softmax") || !strcmp(n, "soft")) r = build_softmax(c, m, prev);
    else if (!strcmp(n, "dropout")) {
        float p;
        if (kv_float(c, "probability", 0.5f, &p)) return -2;
        if (!(p >= 0 && p < 1)) {
            sec_error(c, GR_ERR_FORMAT, c->cur->line, "probability must be in [0, 1)");
            return -2;
        }
        r = add(c, m, from_node(named(gr_dropout(p), c->layer, NULL), prev));
    } else if (!strcmp(n, "shortcut")) {
        if (c->layer == 0) { sec_error(c, GR_ERR_FORMAT, c->cur->line, "shortcut as the first layer"); return -2; }
        r = build_shortcut(c, m, prev, out_node);
    } else if (!strcmp(n, "route")) r = build_route(c, m, out_node);
    else if (!strcmp(n, "cost")) {
        for (int k = 0; k < c->cur->n_kv; k++) c->cur->kv[k].used = true;
        *ok = true;
        return prev;
    } else if (!strcmp(n, "crop")) {
        if (c->layer != 0) {
            sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "[crop] is supported only as the first layer");
            return -2;
        }
        bool no_node = false;
        r = build_crop(c, m, &no_node);
        if (no_node) { *ok = true; return -1; }
    } else if (is_unsupported_section(n)) {
        sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "this kind of layer is not supported by graft");
        return -2;
    } else {
        sec_error(c, GR_ERR_FORMAT, c->cur->line, "unknown section");
        return -2;
    }
    if (r < 0) return -2;
    *ok = true;
    return r;
}

/* Reads [net]: input size and channels (h, w override when > 0). */
static gr_status read_net(dk_cfg *c, int *h, int *w, int *ch) {
    int nh, nw;
    if (kv_int(c, "height", 0, 0, &nh) || kv_int(c, "width", 0, 0, &nw) ||
        kv_int(c, "channels", 0, 0, ch))
        return c->err ? c->err->code : GR_ERR_FORMAT;
    if (*ch <= 0) return sec_error(c, GR_ERR_FORMAT, c->cur->line, "channels= is missing or 0");
    if (*h <= 0) *h = nh;
    if (*w <= 0) *w = nw;
    if (*h <= 0 || *w <= 0)
        return sec_error(c, GR_ERR_FORMAT, c->cur->line,
                         "height=/width= are missing and no input size was given");
    return GR_OK;
}

gr_model *gr_darknet_load_cfg(const char *cfg_path, int h, int w, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!cfg_path) { gr_error_set(err, GR_ERR_ARG, "darknet cfg: no path given"); return NULL; }
    if (h < 0 || w < 0 || (h > 0) != (w > 0)) {
        gr_error_set(err, GR_ERR_ARG, "%s: input size %dx%d: give both or neither", cfg_path, h, w);
        return NULL;
    }
    dk_cfg c;
    memset(&c, 0, sizeof c);
    c.path = cfg_path;
    c.err = err;
    c.layer = -1;
    gr_model *m = NULL;
    int *out_node = NULL;
    if (cfg_read(&c)) goto fail;
    if (c.n_sec == 0 || (strcmp(c.sec[0].name, "net") && strcmp(c.sec[0].name, "network"))) {
        gr_error_set(err, GR_ERR_FORMAT, "%s:%d: the first section must be [net] (found %s%s%s)",
                     cfg_path, c.n_sec ? c.sec[0].line : 1, c.n_sec ? "[" : "no section",
                     c.n_sec ? c.sec[0].name : "", c.n_sec ? "]" : "");
        goto fail;
    }
    if (c.n_sec == 1) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: no layers after [net]", cfg_path);
        goto fail;
    }
    c.cur = &c.sec[0];
    int ch = 0;
    if (c.n_sec > 1 && !strcmp(c.sec[1].name, "crop") && h == 0) {
        /* the input is the crop: its size replaces [net]'s */
        c.cur = &c.sec[1];
        c.layer = 0;
        if (kv_int(&c, "crop_height", 0, 1, &h) || kv_int(&c, "crop_width", 0, 1, &w)) goto fail;
        c.cur = &c.sec[0];
        c.layer = -1;
    }
    if (read_net(&c, &h, &w, &ch)) goto fail;   /* [net]'s other keys: training only */
    m = gr_model_new(h, w, ch, err);
    if (!m) {
        gr_error_prefix(err, "%s", cfg_path);   /* e.g. an absurd input size */
        goto fail;
    }
    out_node = gr_malloc((size_t)c.n_sec * sizeof(int), err);
    if (!out_node) goto fail;
    int prev = -1;
    for (int i = 1; i < c.n_sec; i++) {
        c.cur = &c.sec[i];
        c.layer = i - 1;
        bool ok;
        int r = build_layer(&c, m, prev, out_node, &ok);
        if (!ok) goto fail;
        if (check_unused(&c)) goto fail;
        out_node[i - 1] = r;
        prev = r;
    }
    if (gr_model_num_layers(m) == 0) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the network has no layers graft can run", cfg_path);
        goto fail;
    }
    /* darknet's classifiers see their input letterboxed with darknet's own
     * resize (examples/classifier.c predict_classifier), pixels x/255     */
    gr_model_set_recipe(m, &(gr_recipe){.resize = GR_RESIZE_LETTERBOX, .interp = GR_INTERP_DARKNET,
                                        .norm = GR_PREP_DARKNET});
    free(out_node);
    cfg_free(&c);
    return m;
fail:
    if (err->code == GR_OK) gr_error_set(err, GR_ERR_FORMAT, "%s: cannot read the darknet cfg", cfg_path);
    free(out_node);
    cfg_free(&c);
    gr_model_free(m);
    return NULL;
}
