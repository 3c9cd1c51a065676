/* onnx_meta.c — the input recipe and class names an ONNX file carries in
 * its metadata_props, as graft's exporter writes them (onnx_export.c, README
 * "Export to ONNX"): graft.preprocess (a preset's name, checked against
 * graft.pixel_scale / graft.mean / graft.std / graft.channel_order when
 * those are present, or "custom": those numbers, any finite values with a
 * positive scale and std), graft.resize,
 * graft.interpolation, graft.crop_fraction, class_names (a JSON array).
 * Without them: torchvision's ImageNet recipe (crop 0.875, bilinear, torch
 * normalization).  Either way a note for the CLI says which.             */
#include <json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx.h"
#include "format/onnx_meta.h"

static const char *meta(const gr_onnx_file *f, const char *key) {
    for (size_t k = 0; k < f->pb->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *e = f->pb->metadata_props[k];
        if (e->key && e->value && !strcmp(e->key, key)) return e->value;
    }
    return NULL;
}

/* "a,b,c" -> v[3]; false when not three finite numbers (positive ones when
 * positive). */
static bool three(const char *s, float v[3], bool positive) {
    char *end;
    for (int k = 0; k < 3; k++) {
        v[k] = strtof(s, &end);
        if (end == s || !isfinite(v[k]) || (positive && !(v[k] > 0))) return false;
        s = end;
        if (k < 2 && *s++ != ',') return false;
    }
    while (*s == ' ') s++;
    return *s == 0;
}

static bool near(float a, float b) { return fabsf(a - b) <= 1e-5f * fmaxf(1.0f, fabsf(b)); }

/* The normalization of the graft.* keys into *n: graft.preprocess names a
 * preset (the numbers beside it, when present, must agree: within 1e-5, as
 * older exporters wrote them from doubles) or is "custom" / absent, when
 * graft.pixel_scale, graft.mean and graft.std give it (graft.channel_order:
 * RGB when absent).                                                        */
static gr_status read_norm(const gr_onnx_file *f, gr_norm *n, gr_error *err) {
    const char *prep = meta(f, "graft.preprocess"), *ps = meta(f, "graft.pixel_scale"), *mn = meta(f, "graft.mean"),
               *sd = meta(f, "graft.std"), *o = meta(f, "graft.channel_order");
    gr_preprocess p = GR_PREP_CUSTOM;
    bool custom = !prep || !strcmp(prep, "custom");
    if (!custom && gr_preprocess_parse(prep, &p))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.preprocess '%.60s' is not a normalization graft "
                            "knows (none, caffe, torch, tf, darknet, custom)", f->path, prep);
    const char *missing = !ps ? "graft.pixel_scale" : !mn ? "graft.mean" : !sd ? "graft.std" : NULL;
    if (custom && missing)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata %s%s%s gives no %s: a normalization not named by "
                            "graft.preprocess needs graft.pixel_scale, graft.mean and graft.std", f->path,
                            prep ? "graft.preprocess '" : "graft.* normalization keys", prep ? prep : "",
                            prep ? "'" : "", missing);
    gr_norm v = custom ? gr_norm_preset(GR_PREP_NONE) : gr_norm_preset(p);
    char *end;
    if (ps) {
        v.scale = strtof(ps, &end);
        if (end == ps || *end || !isfinite(v.scale) || !(v.scale > 0))
            return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.pixel_scale '%.60s' is not a positive finite "
                                "number", f->path, ps);
    }
    if (mn && !three(mn, v.mean, false))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.mean '%.60s' is not three finite numbers "
                            "\"a,b,c\"", f->path, mn);
    if (sd && !three(sd, v.std, true))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.std '%.60s' is not three positive finite numbers "
                            "\"a,b,c\"", f->path, sd);
    if (o && strcmp(o, "RGB") && strcmp(o, "BGR"))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.channel_order '%.60s' is not RGB or BGR", f->path, o);
    if (o) v.bgr = !strcmp(o, "BGR");
    if (!custom) {
        gr_norm q = gr_norm_preset(p);
        bool same = near(v.scale, q.scale) && v.bgr == q.bgr;
        for (int c = 0; c < 3; c++) same = same && near(v.mean[c], q.mean[c]) && near(v.std[c], q.std[c]);
        if (!same)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.preprocess '%.60s' disagrees with "
                                "graft.pixel_scale / graft.mean / graft.std / graft.channel_order", f->path, prep);
        v = q;
    }
    *n = v;
    return GR_OK;
}

gr_status gr_onnx_read_recipe(const gr_onnx_file *f, gr_recipe *r, char *note, size_t cap, gr_error *err) {
    *r = (gr_recipe){.resize = GR_RESIZE_CENTER_CROP, .interp = GR_INTERP_BILINEAR, .crop = 0.875f,
                     .norm = gr_norm_preset(GR_PREP_TORCH)};
    if (!meta(f, "graft.preprocess") && !meta(f, "graft.pixel_scale") && !meta(f, "graft.mean") &&
        !meta(f, "graft.std") && !meta(f, "graft.channel_order")) {
        snprintf(note, cap, "%s has no graft.* preprocessing metadata (an ONNX file holds none of its own): "
                 "torchvision's ImageNet recipe (resize crop 0.875, bilinear, torch normalization); --preprocess, "
                 "--mean, --std, --resize, --crop-fraction and --interpolation override it", f->path);
        return GR_OK;
    }
    gr_recipe m = *r;
    const char *rs = meta(f, "graft.resize"), *in = meta(f, "graft.interpolation"), *cf = meta(f, "graft.crop_fraction");
    char *end = NULL;
    double crop = cf ? strtod(cf, &end) : 1.0;
    gr_status st = read_norm(f, &m.norm, err);
    if (st != GR_OK) return st;
    if (rs && gr_resize_mode_parse(rs, &m.resize))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.resize '%.60s' is not a resize mode graft knows "
                            "(stretch, crop, letterbox)", f->path, rs);
    if (in && gr_interp_parse(in, &m.interp))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.interpolation '%.60s' is not one graft knows "
                            "(bilinear, darknet)", f->path, in);
    if (cf && (end == cf || *end || !(crop > 0 && crop <= 1)))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.crop_fraction '%.60s' is not a fraction in "
                            "(0, 1]", f->path, cf);
    if (!rs) m.resize = GR_RESIZE_STRETCH;
    if (!in) m.interp = GR_INTERP_BILINEAR;
    m.crop = m.resize == GR_RESIZE_CENTER_CROP ? (float)crop : 0.0f;
    *r = m;
    char d[320];
    snprintf(note, cap, "the input recipe is the one %s carries (graft metadata): %s; --preprocess, --mean, --std, "
             "--resize, --crop-fraction and --interpolation override it", f->path, gr_recipe_describe(r, d, sizeof d));
    return GR_OK;
}

gr_status gr_onnx_read_classes(const gr_onnx_file *f, gr_model *m, int n_out, gr_error *err) {
    const char *s = meta(f, "class_names");
    if (!s) return GR_OK;
    json_object *a = json_tokener_parse(s);
    int n = a && json_object_is_type(a, json_type_array) ? (int)json_object_array_length(a) : -1;
    for (int k = 0; k < n; k++)
        if (!json_object_is_type(json_object_array_get_idx(a, (size_t)k), json_type_string)) n = -1;
    gr_status st = GR_OK;
    if (n < 0) st = gr_error_set(err, GR_ERR_FORMAT, "%s: metadata class_names is not a JSON array of strings", f->path);
    else if (n != n_out)   /* names of another classifier (or a cut model): not this output's */
        st = GR_OK;
    else {
        const char **names = gr_malloc((size_t)(n ? n : 1) * sizeof *names, err);
        if (!names) st = err->code;
        for (int k = 0; names && k < n; k++) names[k] = json_object_get_string(json_object_array_get_idx(a, (size_t)k));
        if (names) st = gr_model_set_classes(m, n, names, err);
        free(names);
    }
    json_object_put(a);
    return st;
}
