/* darknet.c — reading a darknet .cfg file into a graft model.
 *
 * The file is read whole into sections of key=value pairs (darknet_cfg.c:
 * whitespace is dropped everywhere and lines starting with '#' or ';' are
 * comments, as darknet does), then each section after [net] becomes darknet
 * layer i and one or more graft nodes; the node holding layer i's output is
 * named "i".  See darknet.h for the mapping and format/darknet_weights.c
 * for the .weights reader.
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
#include "arch/darknet_cfg.h"

/* Darknet activation names -> graft's. */
static gr_status kv_act(dk_cfg *c, const char *def, gr_act *act, float *alpha) {
    dk_kv *kv = dk_kv_find(c, "activation");
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
        return dk_sec_error(c, GR_ERR_UNSUPPORTED, kv ? kv->line : c->cur->line, what);
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
    if (dk_kv_int(c, "filters", 1, 1, &filters) || dk_kv_int(c, "size", 1, 1, &size) ||
        dk_kv_int(c, "stride", 1, 1, &stride) || dk_kv_int(c, "pad", 0, 0, &pad) ||
        dk_kv_int(c, "padding", 0, 0, &padding) || dk_kv_int(c, "groups", 1, 1, &groups) ||
        dk_kv_int(c, "batch_normalize", 0, 0, &bn) || kv_act(c, "logistic", &act, &alpha) ||
        dk_kv_int_fixed(c, "binary", 0) || dk_kv_int_fixed(c, "xnor", 0) ||
        dk_kv_int_fixed(c, "dilation", 1) || dk_kv_int_fixed(c, "flipped", 0))
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
    if (dk_kv_int(c, "output", 1, 1, &out) || dk_kv_int(c, "batch_normalize", 0, 0, &bn) ||
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
    if (dk_kv_int(c, "stride", 1, 1, &stride) || dk_kv_int(c, "size", stride, 1, &size) ||
        dk_kv_int(c, "padding", size - 1, 0, &padding))
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
        dk_sec_error(c, GR_ERR_SHAPE, c->cur->line, what);
        return -1;
    }
    s.out_h = oh / stride + 1;
    s.out_w = ow / stride + 1;
    return add(c, m, from_node(named(s, c->layer, NULL), prev));
}

static int build_softmax(dk_cfg *c, gr_model *m, int prev) {
    float temp;
    if (dk_kv_int_fixed(c, "groups", 1) || dk_kv_float(c, "temperature", 1, &temp)) return -1;
    if (temp != 1) {
        dk_sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "temperature other than 1 is not supported");
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
        return dk_sec_error(c, GR_ERR_FORMAT, line, what);
    }
    *out = idx;
    return GR_OK;
}

static int build_shortcut(dk_cfg *c, gr_model *m, int prev, const int *out_node) {
    int from = 0;
    float a, b;
    gr_act act;
    float alpha;
    dk_kv *kv = dk_kv_find(c, "from");
    if (!kv) { dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "missing from="); return -1; }
    kv->used = false;   /* re-read strictly below */
    if (dk_kv_int(c, "from", 0, -1000000, &from) || layer_ref(c, from, kv->line, &from) ||
        kv_act(c, "linear", &act, &alpha) || dk_kv_float(c, "alpha", 1, &a) ||
        dk_kv_float(c, "beta", 1, &b))
        return -1;
    if (a != 1 || b != 1) {
        dk_sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "alpha/beta other than 1 are not supported");
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
            dk_sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, what);
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
    dk_kv *kv = dk_kv_find(c, "layers");
    if (!kv || !kv->val[0]) { dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "missing layers="); return -1; }
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
            dk_sec_error(c, GR_ERR_FORMAT, kv->line, what);
            return -1;
        }
        int idx = 0;
        if (layer_ref(c, (int)v, kv->line, &idx)) return -1;
        if (s.n_inputs == GR_MAX_INPUTS) {
            snprintf(what, sizeof what, "more than %d routed layers are not supported", GR_MAX_INPUTS);
            dk_sec_error(c, GR_ERR_UNSUPPORTED, kv->line, what);
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
    if (dk_kv_int(c, "noadjust", 0, 0, &noadjust)) return -1;
    dk_kv_ignore(c, ign);
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
        if (dk_kv_float(c, "probability", 0.5f, &p)) return -2;
        if (!(p >= 0 && p < 1)) {
            dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "probability must be in [0, 1)");
            return -2;
        }
        r = add(c, m, from_node(named(gr_dropout(p), c->layer, NULL), prev));
    } else if (!strcmp(n, "shortcut")) {
        if (c->layer == 0) { dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "shortcut as the first layer"); return -2; }
        r = build_shortcut(c, m, prev, out_node);
    } else if (!strcmp(n, "route")) r = build_route(c, m, out_node);
    else if (!strcmp(n, "cost")) {
        for (int k = 0; k < c->cur->n_kv; k++) c->cur->kv[k].used = true;
        *ok = true;
        return prev;
    } else if (!strcmp(n, "crop")) {
        if (c->layer != 0) {
            dk_sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "[crop] is supported only as the first layer");
            return -2;
        }
        bool no_node = false;
        r = build_crop(c, m, &no_node);
        if (no_node) { *ok = true; return -1; }
    } else if (is_unsupported_section(n)) {
        dk_sec_error(c, GR_ERR_UNSUPPORTED, c->cur->line, "this kind of layer is not supported by graft");
        return -2;
    } else {
        dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "unknown section");
        return -2;
    }
    if (r < 0) return -2;
    *ok = true;
    return r;
}

/* Reads [net]: input size and channels (h, w override when > 0). */
static gr_status read_net(dk_cfg *c, int *h, int *w, int *ch) {
    int nh, nw;
    if (dk_kv_int(c, "height", 0, 0, &nh) || dk_kv_int(c, "width", 0, 0, &nw) ||
        dk_kv_int(c, "channels", 0, 0, ch))
        return c->err ? c->err->code : GR_ERR_FORMAT;
    if (*ch <= 0) return dk_sec_error(c, GR_ERR_FORMAT, c->cur->line, "channels= is missing or 0");
    if (*h <= 0) *h = nh;
    if (*w <= 0) *w = nw;
    if (*h <= 0 || *w <= 0)
        return dk_sec_error(c, GR_ERR_FORMAT, c->cur->line,
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
    if (dk_cfg_read(&c)) goto fail;
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
        if (dk_kv_int(&c, "crop_height", 0, 1, &h) || dk_kv_int(&c, "crop_width", 0, 1, &w)) goto fail;
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
        if (dk_check_unused(&c)) goto fail;
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
                                        .norm = gr_norm_preset(GR_PREP_DARKNET)});
    free(out_node);
    dk_cfg_free(&c);
    return m;
fail:
    if (err->code == GR_OK) gr_error_set(err, GR_ERR_FORMAT, "%s: cannot read the darknet cfg", cfg_path);
    free(out_node);
    dk_cfg_free(&c);
    gr_model_free(m);
    return NULL;
}
