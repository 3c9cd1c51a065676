/* model_file.c — graft's model file: the safetensors layout, one F32 tensor
 * per parameter ("<layer>/<kind>"), and in __metadata__:
 *   "graft.format"        "graft-model-1"
 *   "graft.version"       the graft version that wrote it
 *   "graft.architecture"  JSON: {"input": [h, w, c], "preprocess": "caffe",
 *                         "normalization": {"pixel_scale": 1, "mean": [3 numbers],
 *                         "std": [3 numbers], "channel_order": "RGB"|"BGR"},
 *                         "resize": "stretch"|"crop"|"letterbox", "interpolation":
 *                         "bilinear"|"darknet", "crop_fraction": 1.0 (the input
 *                         recipe; files without the last three: stretch, bilinear, 1;
 *                         "preprocess" names the normalization's preset, or "custom";
 *                         files without "normalization" (before 0.2): the preset's values),
 *                         "classes": [...], "layers": [{"name", "op", ...}]}
 *   "graft.training"      JSON given by the caller (training config, epoch)
 * Python's safetensors (or numpy) reads the tensors unchanged.              */
#include <json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/bind.h"
#include "format/st_table.h"
#include "graph/model.h"

gr_status gr_model_set_classes(gr_model *m, int n, const char *const *names, gr_error *err) {
    char **c = gr_calloc((size_t)(n > 0 ? n : 1), sizeof(char *), err);
    if (!c) return GR_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        if (!(c[i] = gr_strdup(names[i] ? names[i] : "", err))) {
            for (int k = 0; k < i; k++) free(c[k]);
            free(c);
            return GR_ERR_NOMEM;
        }
    for (int i = 0; i < m->n_classes; i++) free(m->class_names[i]);
    free(m->class_names);
    m->class_names = c;
    m->n_classes = n;
    return GR_OK;
}

const char *gr_model_class_name(const gr_model *m, int c) {
    return (c >= 0 && c < m->n_classes) ? m->class_names[c] : NULL;
}

int gr_model_num_classes(const gr_model *m) { return m->n_classes; }

static const char *pad_names[] = {"valid", "same", "explicit"};

static json_object *ints(const int *v, int n) {
    json_object *a = json_object_new_array();
    for (int i = 0; i < n; i++) json_object_array_add(a, json_object_new_int(v[i]));
    return a;
}

/* One layer's spec as JSON: name, op, the generic fields when set, the
 * fields its op declares (GR_ATTR_*, ops/op.h), inputs and frozen.        */
static json_object *layer_to_json(const gr_node *n) {
    const gr_layer_spec *s = &n->s;
    json_object *l = json_object_new_object();
    json_object_object_add(l, "name", json_object_new_string(s->name));
    json_object_object_add(l, "op", json_object_new_string(gr_op_name(s->op)));
    if (s->units) json_object_object_add(l, "units", json_object_new_int(s->units));
    if (s->kh) {
        int k[2] = {s->kh, s->kw}, st[2] = {s->sh, s->sw}, p[4] = {s->pad_t, s->pad_l, s->pad_b, s->pad_r};
        json_object_object_add(l, "kernel", ints(k, 2));
        json_object_object_add(l, "strides", ints(st, 2));
        json_object_object_add(l, "padding", json_object_new_string(pad_names[s->padding]));
        json_object_object_add(l, "pads", ints(p, 4));
        if (s->out_h) {
            int o[2] = {s->out_h, s->out_w};
            json_object_object_add(l, "out", ints(o, 2));
        }
    }
    if (s->groups > 1) json_object_object_add(l, "groups", json_object_new_int(s->groups));
    if (s->dh > 1 || s->dw > 1) {
        int dl[2] = {s->dh, s->dw};
        json_object_object_add(l, "dilation", ints(dl, 2));
    }
    unsigned attrs = gr_op_get(s->op)->attrs;   /* what the op's spec holds (ops/op.h) */
    if (attrs & GR_ATTR_BIAS) json_object_object_add(l, "use_bias", json_object_new_boolean(s->use_bias));
    if (s->act != GR_ACT_LINEAR || (attrs & GR_ATTR_ACT))
        json_object_object_add(l, "activation", json_object_new_string(gr_act_name(s->act)));
    if (s->alpha != 0) json_object_object_add(l, "alpha", json_object_new_double(s->alpha));
    if (attrs & (GR_ATTR_NORM | GR_ATTR_EPS)) json_object_object_add(l, "epsilon", json_object_new_double(s->eps));
    if (attrs & GR_ATTR_NORM) json_object_object_add(l, "momentum", json_object_new_double(s->momentum));
    if (attrs & GR_ATTR_RATE) json_object_object_add(l, "rate", json_object_new_double(s->rate));
    json_object_object_add(l, "inputs", ints(n->in, n->n_in));
    json_object_object_add(l, "frozen", json_object_new_boolean(n->frozen));
    return l;
}

/* {"pixel_scale", "mean", "std", "channel_order"}: the numbers as the
 * shortest text that reads back to the same float. */
static json_object *num(float v) {
    char b[32];
    return json_object_new_double_s((double)v, gr_float_short(v, b));
}
static json_object *norm_json(const gr_norm *n) {
    gr_norm r = gr_norm_resolved(n);
    json_object *o = json_object_new_object(), *mean = json_object_new_array(), *sd = json_object_new_array();
    for (int c = 0; c < 3; c++) {
        json_object_array_add(mean, num(r.mean[c]));
        json_object_array_add(sd, num(r.std[c]));
    }
    json_object_object_add(o, "pixel_scale", num(r.scale));
    json_object_object_add(o, "mean", mean);
    json_object_object_add(o, "std", sd);
    json_object_object_add(o, "channel_order", json_object_new_string(r.bgr ? "BGR" : "RGB"));
    return o;
}

/* The architecture as a JSON text (caller frees). */
static char *architecture_json(const gr_model *m, gr_error *err) {
    json_object *root = json_object_new_object();
    int in[3] = {m->in_h, m->in_w, m->in_c};
    json_object_object_add(root, "input", ints(in, 3));
    json_object_object_add(root, "preprocess", json_object_new_string(gr_preprocess_name(gr_norm_preset_of(&m->norm))));
    json_object_object_add(root, "normalization", norm_json(&m->norm));
    /* the rest of the input recipe (absent in files before it: stretch, bilinear, 1) */
    json_object_object_add(root, "resize", json_object_new_string(gr_resize_mode_name(m->resize)));
    json_object_object_add(root, "interpolation", json_object_new_string(gr_interp_name(m->interp)));
    json_object_object_add(root, "crop_fraction", json_object_new_double(m->crop > 0 ? m->crop : 1.0));
    json_object *cl = json_object_new_array();
    for (int i = 0; i < m->n_classes; i++) json_object_array_add(cl, json_object_new_string(m->class_names[i]));
    json_object_object_add(root, "classes", cl);
    json_object *layers = json_object_new_array();
    for (int i = 0; i < m->n_nodes; i++) {
        json_object_array_add(layers, layer_to_json(&m->nodes[i]));
    }
    json_object_object_add(root, "layers", layers);
    char *txt = gr_strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), err);
    json_object_put(root);
    return txt;
}

gr_status gr_model_save_ex(const gr_model *m, const char *path, const char *extra_json,
                           const void *extra_entries, int n_extra, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_st_entry *extra = extra_entries;
    int n = m->n_params + n_extra;
    gr_st_entry *e = gr_calloc((size_t)(n ? n : 1), sizeof *e, err);
    char *arch = architecture_json(m, err);
    if (!e || !arch) {
        free(e);
        free(arch);
        return GR_ERR_NOMEM;
    }
    for (int p = 0; p < m->n_params; p++) {
        e[p].name = m->params[p].name;
        e[p].dtype = "F32";
        e[p].ndim = m->params[p].ndim;
        e[p].shape = m->params[p].shape;
        e[p].data = m->w + m->params[p].offset;
    }
    for (int k = 0; k < n_extra; k++) e[m->n_params + k] = extra[k];
    const char *meta[8] = {"graft.format", "graft-model-1", "graft.version", GRAFT_VERSION,
                           "graft.architecture", arch, "graft.training", extra_json ? extra_json : "{}"};
    gr_status st = gr_st_write(path, e, n, meta, 4, err);
    free(e);
    free(arch);
    return st;
}

gr_status gr_model_save(const gr_model *m, const char *path, const char *extra_json, gr_error *err) {
    return gr_model_save_ex(m, path, extra_json, NULL, 0, err);
}

static int jint(json_object *o, const char *key, int def) {
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : def;
}

static double jdbl(json_object *o, const char *key, double def) {
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : def;
}

static const char *jstr(json_object *o, const char *key) {
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v) : NULL;
}

/* Reads up to n ints of array key into v; returns how many. */
static int jints(json_object *o, const char *key, int *v, int n) {
    json_object *a;
    if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array)) return 0;
    int k = (int)json_object_array_length(a);
    if (k > n) k = n;
    for (int i = 0; i < k; i++) v[i] = json_object_get_int(json_object_array_get_idx(a, (size_t)i));
    return k;
}

/* Layer i of the architecture's list as a spec (the reverse of layer_to_json). */
static gr_status layer_from_json(json_object *l, int i, const char *path, gr_layer_spec *s, gr_error *err) {
    memset(s, 0, sizeof *s);
    const char *name = jstr(l, "name"), *op = jstr(l, "op"), *act = jstr(l, "activation"),
               *pad = jstr(l, "padding");
    s->op = op ? gr_op_parse(op) : GR_OP__COUNT;
    if (!name || s->op == GR_OP__COUNT) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: layer %d has no name or an unknown op '%s'", path, i,
                     op ? op : "(none)");
        return GR_ERR_FORMAT;
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    s->units = jint(l, "units", 0);
    int k2[2] = {0, 0}, st2[2] = {0, 0}, p4[4] = {0, 0, 0, 0}, o2[2] = {0, 0}, d2[2] = {0, 0};
    jints(l, "kernel", k2, 2);
    jints(l, "dilation", d2, 2);
    s->dh = d2[0]; s->dw = d2[1];
    jints(l, "strides", st2, 2);
    jints(l, "pads", p4, 4);
    jints(l, "out", o2, 2);
    s->kh = k2[0]; s->kw = k2[1]; s->sh = st2[0]; s->sw = st2[1];
    s->pad_t = p4[0]; s->pad_l = p4[1]; s->pad_b = p4[2]; s->pad_r = p4[3];
    s->out_h = o2[0]; s->out_w = o2[1];
    for (int k = 0; pad && k < 3; k++)
        if (!strcmp(pad, pad_names[k])) s->padding = (gr_padding)k;
    s->groups = jint(l, "groups", 1);
    json_object *v;
    s->use_bias = json_object_object_get_ex(l, "use_bias", &v) && json_object_get_boolean(v);
    if (act && gr_act_parse(act, &s->act) != 0) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: layer '%s': unknown activation '%s'", path, name, act);
        return GR_ERR_FORMAT;
    }
    s->alpha = (float)jdbl(l, "alpha", 0);
    s->eps = (float)jdbl(l, "epsilon", 0);
    s->momentum = (float)jdbl(l, "momentum", 0);
    s->rate = (float)jdbl(l, "rate", 0);
    s->n_inputs = jints(l, "inputs", s->inputs, 4);
    return GR_OK;
}

/* A number of the normalization: finite (and > 0 when positive). */
static bool norm_num(json_object *v, bool positive, float *out) {
    if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) return false;
    double d = json_object_get_double(v);
    float f = (float)d;
    *out = f;
    return isfinite(d) && isfinite(f) && (!positive || f > 0);
}

/* The normalization: "normalization"'s numbers (checked, and against the
 * preset "preprocess" names), or the preset's values (older files).       */
static gr_status read_norm(json_object *root, const char *path, gr_norm *out, gr_error *err) {
    const char *prep = jstr(root, "preprocess");
    gr_preprocess p = GR_PREP_NONE;
    bool custom = prep && !strcmp(prep, "custom");
    if (prep && !custom && gr_preprocess_parse(prep, &p) != 0)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: unknown preprocessing '%.60s' (known: none, caffe, torch, tf, "
                            "darknet, custom)", path, prep);
    json_object *no;
    if (!json_object_object_get_ex(root, "normalization", &no)) {
        if (custom)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: preprocessing 'custom' without its \"normalization\" values",
                                path);
        *out = gr_norm_preset(p);
        return GR_OK;
    }
    gr_norm n = {0};
    json_object *v;
    if (!json_object_is_type(no, json_type_object))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: \"normalization\" is not a JSON object", path);
    if (!json_object_object_get_ex(no, "pixel_scale", &v) || !norm_num(v, true, &n.scale))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: normalization pixel_scale is missing or not a positive finite "
                            "number", path);
    static const char *key[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        json_object *a;
        bool ok = json_object_object_get_ex(no, key[k], &a) && json_object_is_type(a, json_type_array) &&
                  json_object_array_length(a) == 3;
        for (int c = 0; ok && c < 3; c++)
            ok = norm_num(json_object_array_get_idx(a, (size_t)c), k == 1, k ? &n.std[c] : &n.mean[c]);
        if (!ok)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: normalization %s is missing or not 3 %s numbers", path,
                                key[k], k ? "positive finite" : "finite");
    }
    const char *order = jstr(no, "channel_order");
    if (!order || (strcmp(order, "RGB") && strcmp(order, "BGR")))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: normalization channel_order is missing or not \"RGB\" or \"BGR\"",
                            path);
    n.bgr = !strcmp(order, "BGR");
    if (prep && !custom && gr_norm_preset_of(&n) != p) {
        char d[200];
        return gr_error_set(err, GR_ERR_FORMAT, "%s: preprocessing '%s' disagrees with the normalization values "
                            "stored beside it (%s)", path, prep, gr_norm_describe(&n, d, sizeof d));
    }
    *out = n;
    return GR_OK;
}

static gr_model *build(json_object *root, const char *path, gr_error *err) {
    int in[3] = {0, 0, 0};
    if (jints(root, "input", in, 3) != 3) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the architecture has no input shape", path);
        return NULL;
    }
    /* a sane bound: no image network takes more than 16384 pixels a side or 4096 channels */
    if (in[0] <= 0 || in[1] <= 0 || in[2] <= 0 || in[0] > 16384 || in[1] > 16384 || in[2] > 4096) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the architecture's input shape %dx%dx%d is not a plausible image size",
                     path, in[0], in[1], in[2]);
        return NULL;
    }
    gr_model *m = gr_model_new(in[0], in[1], in[2], err);
    if (!m) {
        gr_error_prefix(err, "%s", path);
        return NULL;
    }
    if (read_norm(root, path, &m->norm, err) != GR_OK) goto fail;
    const char *rs = jstr(root, "resize"), *ip = jstr(root, "interpolation");
    if (rs && gr_resize_mode_parse(rs, &m->resize) != 0) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: unknown resize mode '%s' (known: stretch, crop, letterbox)", path, rs);
        goto fail;
    }
    if (ip && gr_interp_parse(ip, &m->interp) != 0) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: unknown interpolation '%s' (known: bilinear, darknet)", path, ip);
        goto fail;
    }
    double cf = jdbl(root, "crop_fraction", 1.0);
    if (!(cf > 0 && cf <= 1)) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: crop_fraction %g is not in (0, 1]", path, cf);
        goto fail;
    }
    m->crop = (float)cf;
    json_object *layers, *cl;
    if (json_object_object_get_ex(root, "classes", &cl) && json_object_is_type(cl, json_type_array)) {
        int n = (int)json_object_array_length(cl);
        const char **names = gr_calloc((size_t)(n ? n : 1), sizeof(char *), err);
        if (!names) goto fail;
        for (int i = 0; i < n; i++) names[i] = json_object_get_string(json_object_array_get_idx(cl, (size_t)i));
        gr_status st = gr_model_set_classes(m, n, names, err);
        free(names);
        if (st != GR_OK) goto fail;
    }
    if (!json_object_object_get_ex(root, "layers", &layers) || !json_object_is_type(layers, json_type_array)) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the architecture has no layer list", path);
        goto fail;
    }
    int nl = (int)json_object_array_length(layers);
    int last_frozen = -1;
    for (int i = 0; i < nl; i++) {
        json_object *l = json_object_array_get_idx(layers, (size_t)i);
        gr_layer_spec s;
        if (layer_from_json(l, i, path, &s, err) != GR_OK) goto fail;
        if (gr_model_append(m, s, err) < 0) {
            gr_error_prefix(err, "%s", path);
            goto fail;
        }
        json_object *v;
        if (json_object_object_get_ex(l, "frozen", &v) && json_object_get_boolean(v)) last_frozen = i;
    }
    if (nl == 0) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the architecture has no layers", path);
        goto fail;
    }
    gr_model_freeze_upto(m, last_frozen);
    if (m->n_classes > 0) {   /* one name per output: else predict labels with the wrong names or none */
        const gr_node *l = &m->nodes[m->n_nodes - 1];
        int outs = l->oh * l->ow * l->oc;
        if (m->n_classes != outs) {
            gr_error_set(err, GR_ERR_FORMAT, "%s: the file names %d classes but the model's last layer '%s' has "
                         "%d outputs", path, m->n_classes, l->s.name, outs);
            goto fail;
        }
    }
    return m;
fail:
    gr_model_free(m);
    return NULL;
}

gr_model *gr_model_load(const char *path, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_st_file *sf = gr_st_open(path, err);
    if (!sf) return NULL;
    gr_model *m = NULL;
    const char *fmt = gr_st_meta(sf, "graft.format"), *arch = gr_st_meta(sf, "graft.architecture");
    if (!fmt || strcmp(fmt, "graft-model-1") || !arch) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a graft model file (no graft.format/architecture metadata)", path);
        goto out;
    }
    json_object *root = json_tokener_parse(arch);
    if (!root) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: the architecture metadata is not valid JSON", path);
        goto out;
    }
    m = build(root, path, err);
    json_object_put(root);
    if (!m) goto out;
    gr_wfile *wf = gr_st_table_flat(sf, err);   /* owns sf from here */
    if (!wf) goto fail;
    sf = NULL;
    gr_status st = gr_bind_exact(m, wf, err);
    gr_wfile_close(wf);
    if (st) goto fail;
    m->w_version++;
    goto out;
fail:
    gr_model_free(m);
    m = NULL;
out:
    gr_st_close(sf);
    return m;
}
