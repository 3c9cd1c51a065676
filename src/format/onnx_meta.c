/* onnx_meta.c — the input recipe and class names an ONNX file carries in
 * its metadata_props, as graft's exporter writes them (onnx_export.c, README
 * "Export to ONNX"): graft.preprocess (graft's name for the normalization,
 * checked against graft.pixel_scale / graft.mean / graft.std /
 * graft.channel_order when those are present), graft.resize,
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

/* "a,b,c" -> v[3]; false when not three numbers. */
static bool three(const char *s, double v[3]) {
    char *end;
    for (int k = 0; k < 3; k++) {
        v[k] = strtod(s, &end);
        if (end == s || !isfinite(v[k])) return false;
        s = end;
        if (k < 2 && *s++ != ',') return false;
    }
    return *s == 0;
}

/* Whether the numbers the file gives (any absent: not checked) are those of normalization p. */
static bool numbers_match(const gr_onnx_file *f, gr_preprocess p) {
    double scale = 1, mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
    const char *order = "RGB";
    switch (p) {   /* as the exporter writes them */
    case GR_PREP_CAFFE: order = "BGR", mean[0] = 103.939, mean[1] = 116.779, mean[2] = 123.68; break;
    case GR_PREP_TORCH:
        scale = 255, mean[0] = 0.485, mean[1] = 0.456, mean[2] = 0.406, sd[0] = 0.229, sd[1] = 0.224, sd[2] = 0.225;
        break;
    case GR_PREP_TF: scale = 127.5, mean[0] = mean[1] = mean[2] = 1; break;
    case GR_PREP_DARKNET: scale = 255; break;
    default: break;
    }
    const char *s = meta(f, "graft.pixel_scale"), *m = meta(f, "graft.mean"), *d = meta(f, "graft.std"),
               *o = meta(f, "graft.channel_order");
    double v[3];
    if (s && fabs(strtod(s, NULL) - scale) > 1e-6 * scale) return false;
    if (o && strcmp(o, order)) return false;
    if (m && (!three(m, v) || fabs(v[0] - mean[0]) > 1e-5 || fabs(v[1] - mean[1]) > 1e-5 || fabs(v[2] - mean[2]) > 1e-5))
        return false;
    if (d && (!three(d, v) || fabs(v[0] - sd[0]) > 1e-5 || fabs(v[1] - sd[1]) > 1e-5 || fabs(v[2] - sd[2]) > 1e-5))
        return false;
    return true;
}

gr_status gr_onnx_read_recipe(const gr_onnx_file *f, gr_recipe *r, char *note, size_t cap, gr_error *err) {
    *r = (gr_recipe){.resize = GR_RESIZE_CENTER_CROP, .interp = GR_INTERP_BILINEAR, .crop = 0.875f,
                     .norm = GR_PREP_TORCH};
    const char *prep = meta(f, "graft.preprocess");
    if (!prep) {
        snprintf(note, cap, "%s has no graft.* preprocessing metadata (an ONNX file holds none of its own): "
                 "torchvision's ImageNet recipe (resize crop 0.875, bilinear, torch normalization); --preprocess, "
                 "--resize, --crop-fraction and --interpolation override it", f->path);
        return GR_OK;
    }
    gr_recipe m = *r;
    const char *rs = meta(f, "graft.resize"), *in = meta(f, "graft.interpolation"), *cf = meta(f, "graft.crop_fraction");
    char *end = NULL;
    double crop = cf ? strtod(cf, &end) : 1.0;
    if (gr_preprocess_parse(prep, &m.norm) || !numbers_match(f, m.norm))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: metadata graft.preprocess '%.60s' %s", f->path, prep,
                            gr_preprocess_parse(prep, &m.norm) ? "is not a normalization graft knows"
                            : "disagrees with graft.pixel_scale / graft.mean / graft.std / graft.channel_order");
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
    char d[200];
    snprintf(note, cap, "the input recipe is the one %s carries (graft metadata): %s; --preprocess, --resize, "
             "--crop-fraction and --interpolation override it", f->path, gr_recipe_describe(r, d, sizeof d));
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
