/* model.c — building a model: layer specs, shape inference, the parameter
 * table, names, freezing, cutting, and the summary table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "graph/model.h"

/* ------------------------------------------------------------ layer specs */

static gr_layer_spec spec(gr_op op) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = op;
    return s;
}
gr_layer_spec gr_conv2d(int filters, int kh, int kw, int stride, gr_padding pad, gr_act act) {
    gr_layer_spec s = spec(GR_OP_CONV2D);
    s.units = filters; s.kh = kh; s.kw = kw; s.sh = s.sw = stride;
    s.padding = pad; s.act = act; s.use_bias = true;
    return s;
}
gr_layer_spec gr_dense(int units, gr_act act) {
    gr_layer_spec s = spec(GR_OP_DENSE);
    s.units = units; s.act = act; s.use_bias = true;
    return s;
}
gr_layer_spec gr_flatten(void) { return spec(GR_OP_FLATTEN); }
gr_layer_spec gr_maxpool(int k, int stride) {
    gr_layer_spec s = spec(GR_OP_MAXPOOL);
    s.kh = s.kw = k; s.sh = s.sw = stride;
    return s;
}
gr_layer_spec gr_avgpool(int k, int stride) {
    gr_layer_spec s = spec(GR_OP_AVGPOOL);
    s.kh = s.kw = k; s.sh = s.sw = stride;
    return s;
}
gr_layer_spec gr_global_avgpool(void) { return spec(GR_OP_GLOBAL_AVGPOOL); }
gr_layer_spec gr_batchnorm(float eps) {
    gr_layer_spec s = spec(GR_OP_BATCHNORM);
    s.eps = eps;
    return s;
}
gr_layer_spec gr_activation(gr_act act, float alpha) {
    gr_layer_spec s = spec(GR_OP_ACTIVATION);
    s.act = act; s.alpha = alpha;
    return s;
}
gr_layer_spec gr_dropout(float rate) {
    gr_layer_spec s = spec(GR_OP_DROPOUT);
    s.rate = rate;
    return s;
}
gr_layer_spec gr_softmax(void) { return spec(GR_OP_SOFTMAX); }
gr_layer_spec gr_named(gr_layer_spec s, const char *name) {
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static const char *prep_names[] = {"none", "caffe", "torch", "tf", "darknet", "custom"};
const char *gr_preprocess_name(gr_preprocess p) {
    return (unsigned)p <= GR_PREP_CUSTOM ? prep_names[p] : "?";
}
int gr_preprocess_parse(const char *s, gr_preprocess *out) {
    for (int i = 0; i < GR_PREP_CUSTOM; i++)
        if (!strcmp(s, prep_names[i])) { *out = (gr_preprocess)i; return 0; }
    return -1;
}

char *gr_float_short(float v, char *buf) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, 32, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v || !isfinite(v)) break;
    }
    return buf;
}

gr_norm gr_norm_preset(gr_preprocess p) {
    gr_norm n = {.scale = 1, .std = {1, 1, 1}};
    switch (p) {
    case GR_PREP_CAFFE: n = (gr_norm){1, {103.939f, 116.779f, 123.68f}, {1, 1, 1}, true}; break;
    case GR_PREP_TORCH: n = (gr_norm){255, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, false}; break;
    case GR_PREP_TF: n = (gr_norm){127.5f, {1, 1, 1}, {1, 1, 1}, false}; break;
    case GR_PREP_DARKNET: n.scale = 255; break;
    default: break;
    }
    return n;
}

gr_norm gr_norm_resolved(const gr_norm *n) {
    gr_norm r = *n;
    if (r.scale == 0) r.scale = 1;
    for (int c = 0; c < 3; c++)
        if (r.std[c] == 0) r.std[c] = 1;
    return r;
}

static bool norm_equal(const gr_norm *a, const gr_norm *b) {
    if (a->scale != b->scale || a->bgr != b->bgr) return false;
    for (int c = 0; c < 3; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c]) return false;
    return true;
}

gr_preprocess gr_norm_preset_of(const gr_norm *n) {
    gr_norm r = gr_norm_resolved(n);
    for (int p = 0; p < GR_PREP_CUSTOM; p++) {
        gr_norm q = gr_norm_preset((gr_preprocess)p);
        if (norm_equal(&r, &q)) return (gr_preprocess)p;
    }
    return GR_PREP_CUSTOM;
}

gr_status gr_norm_check(const gr_norm *n, const char *what, gr_error *err) {
    const char *w = what ? what : "", *sep = what ? ": " : "";
    static const char *ch[2][3] = {{"R", "G", "B"}, {"B", "G", "R"}};
    if (!isfinite(n->scale) || n->scale < 0)
        return gr_error_set(err, GR_ERR_ARG, "%s%snormalization pixel scale %g is not a positive finite number", w, sep,
                            (double)n->scale);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(n->mean[c]))
            return gr_error_set(err, GR_ERR_ARG, "%s%snormalization mean of channel %d (%s) is %g, not a finite number",
                                w, sep, c, ch[n->bgr][c], (double)n->mean[c]);
        if (!isfinite(n->std[c]) || n->std[c] < 0)
            return gr_error_set(err, GR_ERR_ARG, "%s%snormalization std of channel %d (%s) is %g, not a positive finite "
                                "number", w, sep, c, ch[n->bgr][c], (double)n->std[c]);
    }
    return GR_OK;
}

char *gr_norm_describe(const gr_norm *n, char *buf, size_t cap) {
    static const char *what[] = {"pixels 0..255", "BGR, minus the ImageNet mean", "x/255, minus mean, over std (ImageNet)",
                                 "x/127.5 - 1", "x/255, RGB"};
    gr_preprocess p = gr_norm_preset_of(n);
    if (p != GR_PREP_CUSTOM) {
        snprintf(buf, cap, "%s normalization (%s)", gr_preprocess_name(p), what[p]);
        return buf;
    }
    gr_norm r = gr_norm_resolved(n);
    char f[7][32];
    gr_float_short(r.scale, f[0]);
    for (int c = 0; c < 3; c++) gr_float_short(r.mean[c], f[1 + c]), gr_float_short(r.std[c], f[4 + c]);
    snprintf(buf, cap, "custom normalization (x/%s, minus %s,%s,%s, over %s,%s,%s, %s)", f[0], f[1], f[2], f[3], f[4], f[5], f[6],
             r.bgr ? "BGR" : "RGB");
    return buf;
}

static const char *resize_names[] = {"stretch", "crop", "letterbox"};
const char *gr_resize_mode_name(gr_resize_mode r) { return (unsigned)r < 3 ? resize_names[r] : "?"; }
int gr_resize_mode_parse(const char *s, gr_resize_mode *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, resize_names[i])) { *out = (gr_resize_mode)i; return 0; }
    return -1;
}
static const char *interp_names[] = {"bilinear", "darknet"};
const char *gr_interp_name(gr_interp i) { return (unsigned)i < 2 ? interp_names[i] : "?"; }
int gr_interp_parse(const char *s, gr_interp *out) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, interp_names[i])) { *out = (gr_interp)i; return 0; }
    return -1;
}

char *gr_recipe_describe(const gr_recipe *r, char *buf, size_t cap) {
    char crop[48] = "", norm[200];
    if (r->resize == GR_RESIZE_CENTER_CROP)
        snprintf(crop, sizeof crop, " (fraction %g)", r->crop > 0 ? r->crop : 1.0);
    snprintf(buf, cap, "resize %s%s, %s interpolation, %s", gr_resize_mode_name(r->resize), crop,
             gr_interp_name(r->interp), gr_norm_describe(&r->norm, norm, sizeof norm));
    return buf;
}

/* ------------------------------------------------------------------ model */

gr_model *gr_model_new(int h, int w, int c, gr_error *err) {
    if (h <= 0 || w <= 0 || c <= 0) {
        gr_error_set(err, GR_ERR_ARG, "model input %dx%dx%d: every size must be positive", h, w, c);
        return NULL;
    }
    if ((int64_t)h * w * c > GR_MAX_SAMPLE_FLOATS) {
        gr_error_set(err, GR_ERR_ARG, "model input %dx%dx%d: %lld values per image, more than the limit of %lld",
                     h, w, c, (long long)h * w * c, (long long)GR_MAX_SAMPLE_FLOATS);
        return NULL;
    }
    gr_model *m = gr_calloc(1, sizeof *m, err);
    if (!m) return NULL;
    m->in_h = h; m->in_w = w; m->in_c = c;
    m->norm = gr_norm_preset(GR_PREP_NONE);
    return m;
}

void gr_model_free(gr_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_classes; i++) free(m->class_names[i]);
    free(m->class_names);
    for (int i = 0; i < m->n_alias; i++) free(m->alias[i]);
    free(m->alias);
    free(m->alias_node);
    free(m->nodes);
    free(m->params);
    free(m->w);
    free(m);
}

int gr_model_num_layers(const gr_model *m) { return m->n_nodes; }

int gr_model_find(const gr_model *m, const char *name) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].s.name, name)) return i;
    for (int i = 0; i < m->n_alias; i++)
        if (m->alias_node[i] < m->n_nodes && !strcmp(m->alias[i], name)) return m->alias_node[i];
    return -1;
}

gr_status gr_model_add_alias(gr_model *m, const char *name, int node, gr_error *err) {
    if (!name || !name[0] || node < 0 || node >= m->n_nodes || gr_model_find(m, name) >= 0) return GR_OK;
    char **a = gr_realloc(m->alias, (size_t)(m->n_alias + 1) * sizeof *a, err);
    if (!a) return GR_ERR_NOMEM;
    m->alias = a;
    int *an = gr_realloc(m->alias_node, (size_t)(m->n_alias + 1) * sizeof *an, err);
    if (!an) return GR_ERR_NOMEM;
    m->alias_node = an;
    if (!(a[m->n_alias] = gr_strdup(name, err))) return GR_ERR_NOMEM;
    an[m->n_alias++] = node;
    return GR_OK;
}

const char *gr_model_layer_alias(const gr_model *m, int node) {
    for (int i = 0; i < m->n_alias; i++)
        if (m->alias_node[i] == node && node < m->n_nodes) return m->alias[i];
    return NULL;
}

int gr_model_cut_candidates(const gr_model *m, int *out, int cap) {
    int n = 0, N = m->n_nodes;
    for (int i = 0; i < N && n < cap; i++) {
        /* one tensor carries everything later layers read: no edge j -> k with j < i < k */
        bool single = true;
        for (int k = i + 1; k < N && single; k++)
            for (int q = 0; q < m->nodes[k].n_in; q++)
                if (m->nodes[k].in[q] < i) { single = false; break; }
        if (!single) continue;
        const gr_node *a = &m->nodes[i];
        bool merge = a->s.op == GR_OP_ADD || a->s.op == GR_OP_CONCAT || a->s.op == GR_OP_MUL;
        bool pool = a->s.op == GR_OP_MAXPOOL || a->s.op == GR_OP_AVGPOOL || a->s.op == GR_OP_GLOBAL_AVGPOOL;
        if (merge || pool || i == N - 1) out[n++] = i;
    }
    return n;
}

const char *gr_model_layer_name(const gr_model *m, int node) {
    return (node >= 0 && node < m->n_nodes) ? m->nodes[node].s.name : "input";
}

gr_op gr_model_layer_op(const gr_model *m, int node) {
    return (node >= 0 && node < m->n_nodes) ? m->nodes[node].s.op : GR_OP_INPUT;
}

void gr_model_layer_shape(const gr_model *m, int node, int *h, int *w, int *c) {
    if (node < 0) { *h = m->in_h; *w = m->in_w; *c = m->in_c; return; }
    *h = m->nodes[node].oh; *w = m->nodes[node].ow; *c = m->nodes[node].oc;
}

int64_t gr_node_size(const gr_model *m, int node) {
    int h, w, c;
    gr_model_layer_shape(m, node, &h, &w, &c);
    return (int64_t)h * w * c;
}

int gr_node_param(const gr_model *m, int node, const char *kind) {
    const gr_node *n = &m->nodes[node];
    for (int p = n->p0; p < n->p0 + n->np; p++)
        if (!strcmp(m->params[p].kind, kind)) return p;
    return -1;
}

bool gr_param_is_statistic(const char *kind) {
    return !strcmp(kind, "moving_mean") || !strcmp(kind, "moving_variance") || !strcmp(kind, "mean") ||
           !strcmp(kind, "std");
}

int64_t gr_model_param_count(const gr_model *m, bool trainable_only) {
    int64_t n = 0;
    for (int p = 0; p < m->n_params; p++)
        if (!trainable_only || (!m->nodes[m->params[p].node].frozen && !gr_param_is_statistic(m->params[p].kind)))
            n += (int64_t)m->params[p].count;
    return n;
}

void gr_model_set_preprocess(gr_model *m, gr_preprocess p) { m->norm = gr_norm_preset(p); }
gr_preprocess gr_model_preprocess(const gr_model *m) { return gr_norm_preset_of(&m->norm); }
gr_status gr_model_set_norm(gr_model *m, const gr_norm *n, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (gr_norm_check(n, NULL, err) != GR_OK) return err->code;
    m->norm = gr_norm_resolved(n);
    return GR_OK;
}
gr_norm gr_model_norm(const gr_model *m) { return m->norm; }
void gr_model_set_recipe(gr_model *m, const gr_recipe *r) {
    m->norm = gr_norm_resolved(&r->norm);
    m->resize = r->resize;
    m->interp = r->interp;
    m->crop = r->crop;
}
gr_recipe gr_model_recipe(const gr_model *m) {
    return (gr_recipe){.resize = m->resize, .interp = m->interp, .crop = m->crop, .norm = m->norm};
}

const char *gr_model_recipe_note(const gr_model *m) { return m->recipe_note; }

void gr_model_set_precision(gr_model *m, gr_precision p) { m->precision = p; }

void gr_model_freeze_upto(gr_model *m, int node) {
    for (int i = 0; i < m->n_nodes; i++) m->nodes[i].frozen = i <= node;
}

bool gr_model_layer_frozen(const gr_model *m, int node) {
    return node >= 0 && node < m->n_nodes && m->nodes[node].frozen;
}

int gr_model_train_start(const gr_model *m, int node) {
    if (node < 0 || node >= m->n_nodes) return -1;
    /* lower the start until no layer from it on reads below its input, one
     * tensor: a residual block's shortcut reads the block's input too      */
    for (bool moved = true; moved;) {
        moved = false;
        for (int i = node; i < m->n_nodes && !moved; i++)
            for (int k = 0; k < m->nodes[i].n_in; k++)
                if (m->nodes[i].in[k] < node - 1) {
                    node = m->nodes[i].in[k] + 1;
                    moved = true;
                    break;
                }
    }
    return node;
}

gr_status gr_model_truncate(gr_model *m, int node, gr_error *err) {
    if (node < -1 || node >= m->n_nodes)
        return gr_error_set(err, GR_ERR_ARG, "cut at layer index %d: the model has %d layers",
                            node, m->n_nodes);
    m->n_nodes = node + 1;
    m->g_version++;
    for (int i = 0; i < m->n_alias;)   /* names of the nodes cut off: gone (new nodes may take the indexes) */
        if (m->alias_node[i] > node) {
            free(m->alias[i]);
            m->alias[i] = m->alias[--m->n_alias];
            m->alias_node[i] = m->alias_node[m->n_alias];
        } else i++;
    int np = 0;
    while (np < m->n_params && m->params[np].node <= node) np++;
    m->n_params = np;
    m->w_count = np ? m->params[np - 1].offset + m->params[np - 1].count : 0;
    m->w_version++;
    return GR_OK;
}

/* Adds a parameter view for node; grows m->w (one allocation). */
static int add_param(gr_model *m, int node, const char *kind, int ndim, const int64_t *shape,
                     gr_error *err) {
    if (m->n_params == m->cap_params) {
        int cap = m->cap_params ? 2 * m->cap_params : 32;
        gr_param *p = gr_realloc(m->params, (size_t)cap * sizeof *p, err);
        if (!p) return -1;
        m->params = p;
        m->cap_params = cap;
    }
    /* the size comes from a file: checked (overflow, budget) before allocating */
    uint64_t count = 1, budget = gr_memory_budget() / sizeof(float);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && count > budget / (uint64_t)shape[i])) { count = budget + 1; break; }
        count *= (uint64_t)shape[i];
    }
    if (count > budget || m->w_count + count > budget) {
        gr_error_set(err, GR_ERR_SHAPE,
                     "layer '%s': its %s would bring the model to more than %llu parameters "
                     "(%.1f GB, the memory budget; GRAFT_MAX_MEMORY=<MiB> sets it)",
                     m->nodes[node].s.name, kind, (unsigned long long)budget, (double)budget * 4 / 1e9);
        return -1;
    }
    if (m->w_count + count > m->w_cap) {
        size_t cap = m->w_cap ? m->w_cap : 1024;
        while (cap < m->w_count + count) cap *= 2;
        float *w = gr_realloc(m->w, cap * sizeof(float), err);
        if (!w) return -1;
        m->w = w;
        m->w_cap = cap;
    }
    gr_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s/%s", m->nodes[node].s.name, kind);
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    p->node = node;
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->offset = m->w_count;
    p->count = count;
    memset(m->w + p->offset, 0, count * sizeof(float));
    m->w_count += count;
    return m->n_params++;
}

static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

/* Keras defaults: glorot_uniform kernels, zero biases, BN gamma 1 var 1. */
void gr_model_init_params(gr_model *m, int first_node, uint64_t seed) {
    for (int p = 0; p < m->n_params; p++) {
        gr_param *q = &m->params[p];
        if (q->node < first_node) continue;
        float *d = m->w + q->offset;
        if (!strcmp(q->kind, "kernel")) {
            int64_t fan_in = 1, fan_out = q->shape[q->ndim - 1];
            for (int i = 0; i < q->ndim - 1; i++) fan_in *= q->shape[i];
            if (q->ndim == 4) fan_out *= q->shape[0] * q->shape[1];
            float lim = sqrtf(6.0f / (float)(fan_in + fan_out));
            gr_rng r;
            gr_rng_seed(&r, seed * 1000003ULL + (uint64_t)p);
            for (size_t i = 0; i < q->count; i++) d[i] = (2.0f * gr_rng_uniform(&r) - 1.0f) * lim;
        } else if (!strcmp(q->kind, "gamma") || !strcmp(q->kind, "moving_variance") ||
                   !strcmp(q->kind, "std")) {
            fill(d, q->count, 1.0f);
        } else {
            fill(d, q->count, 0.0f);
        }
    }
    m->w_version++;
}

static const char *auto_base(gr_op op) { return gr_op_name(op); }

static void auto_name(gr_model *m, gr_layer_spec *s) {
    const char *base = auto_base(s->op);
    for (int k = 0;; k++) {
        if (k == 0) snprintf(s->name, sizeof s->name, "%s", base);
        else snprintf(s->name, sizeof s->name, "%s_%d", base, k);
        if (gr_model_find(m, s->name) < 0) return;
    }
}

/* The inputs of node id from spec s (none given: the previous layer). */
static gr_status node_inputs(gr_node *n, const gr_layer_spec *s, int id, gr_error *err) {
    if (s->n_inputs <= 0) {
        n->n_in = 1;
        n->in[0] = id - 1;
        return GR_OK;
    }
    if (s->n_inputs > GR_MAX_INPUTS)
        return gr_error_set(err, GR_ERR_ARG, "layer '%s': %d inputs (at most %d)", s->name, s->n_inputs,
                            GR_MAX_INPUTS);
    n->n_in = s->n_inputs;
    for (int k = 0; k < s->n_inputs; k++) {
        if (s->inputs[k] < -1 || s->inputs[k] >= id)
            return gr_error_set(err, GR_ERR_ARG, "layer '%s': input %d is not an earlier layer", s->name,
                                s->inputs[k]);
        n->in[k] = s->inputs[k];
    }
    return GR_OK;
}

/* Windows, strides and pads come from files: bounded before any arithmetic. */
static gr_status check_window(const gr_layer_spec *s, gr_error *err) {
    if (s->kh > GR_MAX_WINDOW || s->kw > GR_MAX_WINDOW || s->sh > GR_MAX_WINDOW || s->sw > GR_MAX_WINDOW ||
        s->dh > GR_MAX_WINDOW || s->dw > GR_MAX_WINDOW ||
        s->pad_t < 0 || s->pad_l < 0 || s->pad_b < 0 || s->pad_r < 0 || s->pad_t > GR_MAX_WINDOW ||
        s->pad_l > GR_MAX_WINDOW || s->pad_b > GR_MAX_WINDOW || s->pad_r > GR_MAX_WINDOW ||
        s->out_h < 0 || s->out_w < 0 || s->out_h > GR_MAX_WINDOW || s->out_w > GR_MAX_WINDOW)
        return gr_error_set(err, GR_ERR_SHAPE, "layer '%s' (%s): a kernel, stride, padding or output size out of range "
                            "(kernel %dx%d, stride %dx%d, dilation %dx%d, pads %d,%d,%d,%d; at most %d)", s->name,
                            gr_op_name(s->op), s->kh, s->kw, s->sh, s->sw, s->dh, s->dw, s->pad_t, s->pad_l, s->pad_b,
                            s->pad_r, GR_MAX_WINDOW);
    return GR_OK;
}

/* The shape rule of s's op on node n's inputs: resolves s's defaults, sets
 * n's shapes. */
static gr_status node_shape(const gr_model *m, const gr_op_def *def, gr_node *n, gr_layer_spec *s,
                            gr_error *err) {
    gr_dims3 in[GR_MAX_INPUTS], out;
    for (int k = 0; k < n->n_in; k++) gr_model_layer_shape(m, n->in[k], &in[k].h, &in[k].w, &in[k].c);
    n->ih = in[0].h; n->iw = in[0].w; n->ic = in[0].c;
    if (check_window(s, err) != GR_OK) return GR_ERR_SHAPE;
    out = in[0];
    if (def->shape && def->shape(s, in, n->n_in, &out, err) != GR_OK) return GR_ERR_SHAPE;
    if (out.c <= 0 || gr_dims3_size(out) > GR_MAX_SAMPLE_FLOATS)
        return gr_error_set(err, GR_ERR_SHAPE, "layer '%s' (%s): an output of %dx%dx%d per image (limit %lld values)",
                            s->name, gr_op_name(s->op), out.h, out.w, out.c, (long long)GR_MAX_SAMPLE_FLOATS);
    n->oh = out.h; n->ow = out.w; n->oc = out.c;
    return GR_OK;
}

/* The parameters node id's op declares, added in order and initialized. */
static gr_status node_params(gr_model *m, const gr_op_def *def, int id, gr_error *err) {
    gr_node *n = &m->nodes[id];
    gr_param_decl d[GR_OP_MAX_PARAMS];
    gr_dims3 in = {n->ih, n->iw, n->ic};
    int np = def->params ? def->params(&n->s, &in, d) : 0;
    for (int k = 0; k < np; k++)
        if (add_param(m, id, d[k].kind, d[k].ndim, d[k].shape, err) < 0) {
            gr_model_truncate(m, id - 1, NULL);
            return GR_ERR_SHAPE;
        }
    if (np > 0) {
        n = &m->nodes[id];
        n->np = m->n_params - n->p0;
        /* initialize just this node's params (deterministic per index) */
        gr_model_init_params(m, id, 0);
    }
    return GR_OK;
}

int gr_model_append(gr_model *m, gr_layer_spec s, gr_error *err) {
    const gr_op_def *def = gr_op_get(s.op);
    if (!def) {
        gr_error_set(err, GR_ERR_ARG, "layer '%s': unknown op %d", s.name, (int)s.op);
        return -1;
    }
    if (!s.name[0]) auto_name(m, &s);
    else if (gr_model_find(m, s.name) >= 0) {
        gr_error_set(err, GR_ERR_ARG, "layer name '%s' is used twice", s.name);
        return -1;
    }
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 32;
        gr_node *nn = gr_realloc(m->nodes, (size_t)cap * sizeof *nn, err);
        if (!nn) return -1;
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    int id = m->n_nodes;
    gr_node *n = &m->nodes[id];
    memset(n, 0, sizeof *n);
    if (node_inputs(n, &s, id, err) != GR_OK || node_shape(m, def, n, &s, err) != GR_OK) return -1;
    n->s = s;
    n->p0 = m->n_params;
    m->n_nodes++;
    m->g_version++;
    if (node_params(m, def, id, err) != GR_OK) return -1;
    m->w_version++;
    return id;
}

gr_op_run gr_node_run(const gr_model *m, int node, int B, const float *const *ins) {
    const gr_node *n = &m->nodes[node];
    gr_op_run r;
    memset(&r, 0, sizeof r);
    r.s = &n->s;
    r.B = B;
    r.n_in = n->n_in;
    for (int k = 0; k < n->n_in; k++) {
        gr_model_layer_shape(m, n->in[k], &r.in[k].h, &r.in[k].w, &r.in[k].c);
        r.ins[k] = ins[k];
    }
    r.out = (gr_dims3){n->oh, n->ow, n->oc};
    for (int k = 0; k < n->np && k < GR_OP_MAX_PARAMS; k++) r.p[k] = m->w + m->params[n->p0 + k].offset;
    return r;
}

gr_status gr_stack_n(gr_model *m, gr_error *err, int n, const gr_layer_spec *specs) {
    gr_error local;
    if (!err) err = &local;
    for (int i = 0; i < n; i++)
        if (gr_model_append(m, specs[i], err) < 0) return err->code;
    return GR_OK;
}

gr_conv_dims gr_node_conv_dims(const gr_model *m, int node, int B) {
    const gr_node *n = &m->nodes[node];
    gr_conv_dims d = {B, n->ih, n->iw, n->ic, n->oh, n->ow, n->oc, n->s.kh, n->s.kw,
                      n->s.sh, n->s.sw, n->s.pad_t, n->s.pad_l, n->s.groups, n->s.dh, n->s.dw};
    return d;
}

gr_pool_dims gr_node_pool_dims(const gr_model *m, int node, int B) {
    const gr_node *n = &m->nodes[node];
    gr_pool_dims d = {B, n->ih, n->iw, n->ic, n->oh, n->ow, n->s.kh, n->s.kw,
                      n->s.sh, n->s.sw, n->s.pad_t, n->s.pad_l};
    return d;
}

void gr_model_summary(const gr_model *m, void *out) {
    FILE *f = out ? (FILE *)out : stdout;
    fprintf(f, "%-4s %-28s %-26s %-20s %12s  %s\n", "#", "Layer (name)", "Type", "Output shape",
            "Param #", "");
    fprintf(f, "%.*s\n", 100, "====================================================================================================");
    fprintf(f, "%-4s %-28s %-26s (None, %d, %d, %d)%*s %12d\n", "", "input", "InputLayer",
            m->in_h, m->in_w, m->in_c, 0, "", 0);
    for (int i = 0; i < m->n_nodes; i++) {
        const gr_node *n = &m->nodes[i];
        char shape[64], type[64];
        if (n->oh == 1 && n->ow == 1 && (n->s.op == GR_OP_DENSE || n->s.op == GR_OP_FLATTEN ||
                                         n->s.op == GR_OP_GLOBAL_AVGPOOL || n->ih == 1))
            snprintf(shape, sizeof shape, "(None, %d)", n->oc);
        else
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", n->oh, n->ow, n->oc);
        if ((n->s.op == GR_OP_CONV2D || n->s.op == GR_OP_DENSE) && n->s.act != GR_ACT_LINEAR)
            snprintf(type, sizeof type, "%s+%s", gr_op_name(n->s.op), gr_act_name(n->s.act));
        else if (n->s.op == GR_OP_ACTIVATION)
            snprintf(type, sizeof type, "activation:%s", gr_act_name(n->s.act));
        else
            snprintf(type, sizeof type, "%s", gr_op_name(n->s.op));
        int64_t np = 0;
        for (int p = n->p0; p < n->p0 + n->np; p++) np += (int64_t)m->params[p].count;
        fprintf(f, "%-4d %-28s %-26s %-20s %12lld  %s\n", i, n->s.name, type, shape,
                (long long)np, n->frozen ? "frozen" : "");
    }
    fprintf(f, "%.*s\n", 100, "====================================================================================================");
    int64_t total = gr_model_param_count(m, false), tr = gr_model_param_count(m, true);
    fprintf(f, "Total params: %lld\nTrainable params: %lld\nNon-trainable params: %lld\n",
            (long long)total, (long long)tr, (long long)(total - tr));
}
