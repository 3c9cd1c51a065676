/* bind.c — assigning a named-tensor table to a model (bind.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/bind.h"

/* ------------------------------------------------------------ the report */

/* One line per event.  Per-layer detail lines stop (with one "..." line)
 * when fewer than REP_RESERVE bytes are left, so the warnings and the
 * closing summary always fit.                                              */
#define REP_RESERVE 600
__attribute__((format(printf, 3, 0)))
static void rep_vadd(gr_load_report *rep, bool detail, const char *fmt, va_list ap) {
    if (!rep) return;
    size_t k = strnlen(rep->report, sizeof rep->report);
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    if (detail && k + n + 2 + REP_RESERVE > sizeof rep->report) {
        if (k < 4 || strcmp(rep->report + k - 4, "...\n")) snprintf(line, sizeof line, "...");
        else return;
        n = 3;
    }
    if (k + n + 2 > sizeof rep->report) return;
    memcpy(rep->report + k, line, n);
    rep->report[k + n] = '\n';
    rep->report[k + n + 1] = 0;
}
static void rep_add(gr_load_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep_add(gr_load_report *rep, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rep_vadd(rep, false, fmt, ap);
    va_end(ap);
}
static void rep_detail(gr_load_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep_detail(gr_load_report *rep, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rep_vadd(rep, true, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ matching */

/* One binding in progress. */
typedef struct {
    gr_model *m;
    gr_wfile *wf;
    const gr_bind_opts *o;
    gr_load_report *rep;
    gr_error *err;
    int nW, nF, named;
    int *W;              /* weighted model nodes */
    int *F;              /* table layers holding tensors */
    int *bind;           /* per W: table layer, -1 none */
    int *pmap;           /* per W: 8 param indices, one per tensor of its layer */
    bool by_order;
} binder;

/* Keras' order of unnamed tensors in a layer of node n's op (l->n of them). */
static int keras_order(const gr_node *n, const gr_wlayer *l, const char *order[4]) {
    switch (n->s.op) {
    case GR_OP_BATCHNORM:
        if (l->n == 4) { order[0] = "gamma"; order[1] = "beta"; order[2] = "moving_mean"; order[3] = "moving_variance"; }
        else if (l->n == 3) {
            order[0] = strstr(l->t[0].name, "beta") ? "beta" : "gamma";
            order[1] = "moving_mean"; order[2] = "moving_variance";
        } else if (l->n == 2) { order[0] = "moving_mean"; order[1] = "moving_variance"; }
        return l->n;
    case GR_OP_STANDARDIZE: order[0] = "mean"; order[1] = "std"; return 2;
    default: order[0] = "kernel"; order[1] = "bias"; return 2;
    }
}

/* why = "<param>: the model expects shape A, the file has B[ (stored as C)] for 'T'" */
static void shape_why(const gr_param *q, const gr_wtensor *t, char *why, size_t nw) {
    char a[96], b[96], c[96] = "";
    gr_shape_str(a, sizeof a, q->shape, q->ndim);
    gr_shape_str(b, sizeof b, t->shape, t->ndim);
    if (t->layout != GR_WT_ASIS) {
        char fs[80];
        gr_shape_str(fs, sizeof fs, t->fshape, t->ndim);
        snprintf(c, sizeof c, " (stored as %s)", fs);
    }
    snprintf(why, nw, "%s: the model expects shape %s, the file has %s%s for '%s'", q->name, a, b, c, t->name);
}

static bool same_shape(const gr_param *q, const gr_wtensor *t) {
    bool same = q->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = q->shape[d] == t->shape[d];
    return same;
}

/* Maps the tensors of table layer l onto node's params: pmap[k] = param
 * index for tensor k (by kind, or Keras' order for unnamed ones).  Checks
 * every shape.  0 ok, else why says it.                                    */
static int assign(const gr_model *m, int node, const gr_wlayer *l, int *pmap, char *why, size_t nw) {
    const gr_node *n = &m->nodes[node];
    const char *order[4] = {0};
    if (l->n > 0 && !l->t[0].kind[0]) {
        int no = keras_order(n, l, order);
        if (l->n > no || l->n > n->np || (n->s.op != GR_OP_BATCHNORM && l->n != n->np)) {
            snprintf(why, nw, "the file has %d weights for it, the model %d", l->n, n->np);
            return -1;
        }
    }
    bool used[8] = {0};
    for (int k = 0; k < l->n; k++) {
        const gr_wtensor *t = &l->t[k];
        const char *kind = t->kind[0] ? t->kind : order[k];
        int p = kind ? gr_node_param(m, node, kind) : -1;
        if (p < 0) {
            snprintf(why, nw, "file weight '%s' (%s) has no place in a %s layer", t->name,
                     kind ? kind : "?", gr_op_name(n->s.op));
            return -1;
        }
        const gr_param *q = &m->params[p];
        if (!same_shape(q, t)) { shape_why(q, t, why, nw); return -1; }
        if (used[p - n->p0]) { snprintf(why, nw, "two file weights for %s", q->name); return -1; }
        used[p - n->p0] = true;
        pmap[k] = p;
    }
    for (int p = n->p0; p < n->p0 + n->np; p++) {
        const char *kd = m->params[p].kind;
        if (!used[p - n->p0] && strcmp(kd, "gamma") && strcmp(kd, "beta")) {
            snprintf(why, nw, "the file has no %s for it", kd);
            return -1;
        }
    }
    return 0;
}

/* The weighted model layers (but those the table calls fixed), the table
 * layers holding tensors, and the name matches between them.             */
static void collect(binder *b) {
    for (int i = 0; i < b->m->n_nodes; i++) {
        if (b->m->nodes[i].np <= 0) continue;
        const gr_wlayer *l = gr_wfile_find_layer(b->wf, b->m->nodes[i].s.name);
        if (!l || !l->fixed) b->W[b->nW++] = i;
    }
    for (int i = 0; i < b->wf->n_layers; i++)
        if (b->wf->layers[i].n > 0) b->F[b->nF++] = i;
    for (int w = 0; w < b->nW; w++) {
        b->bind[w] = -1;
        for (int f = 0; f < b->nF; f++)
            if (!strcmp(b->wf->layers[b->F[f]].name, b->m->nodes[b->W[w]].s.name)) {
                b->bind[w] = b->F[f];
                b->named++;
                break;
            }
    }
}

/* Keras' rule for legacy files: the weighted layers in topological order. */
static gr_status match_by_order(binder *b) {
    const char *path = b->wf->path;
    char why[600];
    if (b->nF < b->nW)
        return gr_error_set(b->err, GR_ERR_SHAPE,
                            "%s: no layer name matches the model's (0 of its %d weighted layers match; the first is "
                            "'%s'), and the file has %d weighted layers for the model's %d, too few to match by order",
                            path, b->nW, b->m->nodes[b->W[0]].s.name, b->nF, b->nW);
    for (int w = 0; w < b->nW; w++) {
        if (assign(b->m, b->W[w], &b->wf->layers[b->F[w]], b->pmap + 8 * w, why, sizeof why))
            return gr_error_set(b->err, GR_ERR_SHAPE,
                                "%s: no layer name matches the model's, and matching by order fails at model layer "
                                "'%s' / file layer '%s': %s", path, b->m->nodes[b->W[w]].s.name,
                                b->wf->layers[b->F[w]].name, why);
        b->bind[w] = b->F[w];
    }
    b->by_order = true;
    return GR_OK;
}

static gr_status match_by_name(binder *b) {
    const char *path = b->wf->path;
    char why[600];
    if (b->named == 0 && b->nW > 0)
        return gr_error_set(b->err, GR_ERR_SHAPE, "%s: no layer name matches the model's (0 of its %d weighted "
                            "layers match; the first is '%s')", path, b->nW, b->m->nodes[b->W[0]].s.name);
    for (int w = 0; w < b->nW; w++) {
        const char *ln = b->m->nodes[b->W[w]].s.name;
        if (b->bind[w] < 0 && b->o->partial) continue;   /* keeps its weights; reported later */
        if (b->bind[w] < 0)
            return gr_error_set(b->err, GR_ERR_SHAPE, "%s: only %d of the model's %d weighted layers have weights "
                                "in the file; the first without is '%s'", path, b->named, b->nW, ln);
        if (assign(b->m, b->W[w], &b->wf->layers[b->bind[w]], b->pmap + 8 * w, why, sizeof why))
            return gr_error_set(b->err, GR_ERR_SHAPE, "%s: layer '%s': %s", path, ln, why);
    }
    return GR_OK;
}

static gr_status match(binder *b) {
    collect(b);
    if (b->named == 0 && b->wf->torch_names && gr_wfile_find_layer(b->wf, "layer1.0.conv1") &&
        gr_model_find(b->m, "conv2_block1_1_conv") >= 0)   /* see arch/resnet.c */
        return gr_error_set(b->err, GR_ERR_UNSUPPORTED,
                            "%s: torchvision ResNet weights (layer1.0.conv1.weight, ...) do not fit graft's resnet50: "
                            "it is Keras' ResNet50 v1 (stride 2 on a stack's first 1x1 conv, convs with bias), "
                            "torchvision's is v1.5 (stride 2 on the 3x3 conv, no conv bias); use Keras' "
                            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", b->wf->path);
    if (b->named == 0 && b->nW > 0 && b->o->by_order) return match_by_order(b);
    return match_by_name(b);
}

/* ------------------------------------------------------------ reading */

/* Converts a stored tensor to graft's layout: src (as stored) -> dst.
 * After a flatten of [h, w, c], a CHW-ordered file's dense inputs come in
 * (c, h, w) order, graft's in (h, w, c).                                   */
static void relayout(const gr_model *m, int node, const gr_wtensor *t, bool chw_flatten, const float *src,
                     float *dst) {
    const int64_t *f = t->fshape;
    if (t->layout == GR_WT_OIHW || t->layout == GR_WT_OHWI) {
        bool hwi = t->layout == GR_WT_OHWI;
        int64_t O = f[0], I = hwi ? f[3] : f[1], H = hwi ? f[1] : f[2], W = hwi ? f[2] : f[3];
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < W; w++)
                        dst[((h * W + w) * I + i) * O + o] =
                            src[hwi ? ((o * H + h) * W + w) * I + i : ((o * I + i) * H + h) * W + w];
        return;
    }
    int64_t OUT = f[0], IN = f[1];   /* GR_WT_OUT_IN */
    int FH = 1, FW = 1, FC = (int)IN;
    const gr_node *n = &m->nodes[node];
    if (chw_flatten && n->in[0] >= 0 && m->nodes[n->in[0]].s.op == GR_OP_FLATTEN) {
        const gr_node *fl = &m->nodes[n->in[0]];
        FH = fl->ih; FW = fl->iw; FC = fl->ic;
    }
    for (int y = 0; y < FH; y++)
        for (int x = 0; x < FW; x++)
            for (int c = 0; c < FC; c++) {
                int64_t gi = ((int64_t)y * FW + x) * FC + c, ti = ((int64_t)c * FH + y) * FW + x;
                for (int64_t o = 0; o < OUT; o++) dst[gi * OUT + o] = src[o * IN + ti];
            }
}

/* Reads tensor t of table layer l into dst (q's place in the staging copy). */
static gr_status read_tensor(binder *b, int node, const gr_wlayer *l, const gr_wtensor *t, const gr_param *q,
                             float *dst, int64_t *nonfinite) {
    float *tmp = NULL;
    int64_t count = (int64_t)q->count;
    if (t->layout != GR_WT_ASIS && !(tmp = gr_malloc((size_t)count * sizeof(float), b->err))) return GR_ERR_NOMEM;
    gr_status st = b->wf->read(b->wf, t, tmp ? tmp : dst, count, b->err);
    if (!st && tmp) relayout(b->m, node, t, b->wf->chw_flatten, tmp, dst);
    free(tmp);
    if (st) return st;
    int64_t bad = 0;
    for (int64_t i = 0; i < count; i++) bad += !isfinite(dst[i]);
    *nonfinite += bad;
    if (bad && !l->label) {
        gr_warn("%s: weight '%s' (for %s) holds %lld NaN/Inf values", b->wf->path, t->name, q->name, (long long)bad);
        rep_add(b->rep, "warning: weight '%s' holds %lld NaN/Inf values", t->name, (long long)bad);
    }
    return GR_OK;
}

/* Reads table layer l's tensors into stage (a copy of m->w) as mapped by pmap. */
static gr_status load_layer(binder *b, int node, const gr_wlayer *l, const int *pmap, float *stage) {
    const gr_model *m = b->m;
    const gr_node *n = &m->nodes[node];
    for (int p = n->p0; p < n->p0 + n->np; p++) {   /* absent scale/center: identity */
        const char *kd = m->params[p].kind;
        if (!strcmp(kd, "gamma") || !strcmp(kd, "beta")) {
            float v = kd[0] == 'g' ? 1.0f : 0.0f;
            for (size_t i = 0; i < m->params[p].count; i++) stage[m->params[p].offset + i] = v;
        }
    }
    char line[512];
    int k0 = snprintf(line, sizeof line, "%s <- %s:", n->s.name, l->name);
    int64_t nonfinite = 0;
    for (int k = 0; k < l->n; k++) {
        const gr_param *q = &m->params[pmap[k]];
        gr_status st = read_tensor(b, node, l, &l->t[k], q, stage + q->offset, &nonfinite);
        if (st) return st;
        char s[80];
        gr_shape_str(s, sizeof s, q->shape, q->ndim);
        if (k0 > 0 && (size_t)k0 < sizeof line)
            k0 += snprintf(line + k0, sizeof line - (size_t)k0, " %s %s", q->kind, s);
        if (b->rep) b->rep->tensors_loaded++;
    }
    if (nonfinite && l->label) {
        gr_warn("%s: layer %s has %lld NaN/Inf weights", b->wf->path, l->label, (long long)nonfinite);
        rep_add(b->rep, "layer %s: NaN/Inf weights: %lld", l->label, (long long)nonfinite);
    }
    rep_detail(b->rep, "%s", line);
    if (b->rep) b->rep->layers_loaded++;
    return GR_OK;
}

/* Reads every bound layer into stage; reports the layers left out. */
static gr_status load_all(binder *b, float *stage) {
    gr_load_report *rep = b->rep;
    int missing = 0, skipped = 0;
    for (int w = 0; w < b->nW; w++) {
        const char *ln = b->m->nodes[b->W[w]].s.name;
        if (b->bind[w] >= 0) {
            gr_status st = load_layer(b, b->W[w], &b->wf->layers[b->bind[w]], b->pmap + 8 * w, stage);
            if (st) return st;
            continue;
        }
        const gr_wlayer *l = gr_wfile_find_layer(b->wf, ln);
        if (!missing++ && rep) snprintf(rep->first_missing, sizeof rep->first_missing, "%s", ln);
        rep_detail(rep, "not loaded: '%s' (%s: keeps its initial weights)", ln,
                   l && l->absent[0] ? l->absent : "not in the file");
    }
    for (int f = 0; f < b->nF; f++) {
        bool used = false;
        for (int w = 0; w < b->nW && !used; w++) used = b->bind[w] == b->F[f];
        if (!used) {
            skipped++;
            rep_detail(rep, "skipped file layer '%s' (not in the model)", b->wf->layers[b->F[f]].name);
        }
    }
    if (rep) rep->layers_skipped = skipped;
    rep_add(rep, "loaded %d of %d layers (%d tensors)%s, skipped %d file layers", b->nW - missing, b->nW,
            rep ? rep->tensors_loaded : 0, b->by_order ? " by order" : " by name", skipped);
    return GR_OK;
}

/* Everything fits: read into a staging copy, commit at the end. */
static gr_status load(binder *b) {
    gr_model *m = b->m;
    gr_load_report *rep = b->rep;
    float *stage = gr_malloc((m->w_count ? m->w_count : 1) * sizeof(float), b->err);
    if (!stage) return GR_ERR_NOMEM;
    if (m->w_count) memcpy(stage, m->w, m->w_count * sizeof(float));
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->by_order = b->by_order;
        rep->layers_total = b->nW;
    }
    rep_add(rep, "%s: %s", b->wf->path, b->wf->format);
    if (b->wf->note[0]) rep_add(rep, "%s", b->wf->note);
    if (b->by_order)
        rep_add(rep, "no layer name matches the model's: matched %d weighted layers by order (every shape agrees)",
                b->nW);
    gr_status st = load_all(b, stage);
    if (!st) {
        if (m->w_count) memcpy(m->w, stage, m->w_count * sizeof(float));
        m->w_version++;
    }
    free(stage);
    return st;
}

gr_status gr_bind(gr_model *m, gr_wfile *wf, const gr_bind_opts *opts, gr_load_report *rep, gr_error *err) {
    binder b = {.m = m, .wf = wf, .o = opts, .rep = rep, .err = err};
    b.W = gr_malloc((size_t)(m->n_nodes + 1) * sizeof *b.W, err);
    b.F = gr_malloc((size_t)(wf->n_layers + 1) * sizeof *b.F, err);
    b.bind = gr_malloc((size_t)(m->n_nodes + 1) * sizeof *b.bind, err);
    b.pmap = gr_malloc((size_t)(8 * (m->n_nodes + 1)) * sizeof *b.pmap, err);
    gr_status st = !b.W || !b.F || !b.bind || !b.pmap ? GR_ERR_NOMEM : match(&b);
    if (!st) st = load(&b);
    free(b.W);
    free(b.F);
    free(b.bind);
    free(b.pmap);
    return st;
}

/* ------------------------------------------------------------ exact */

gr_status gr_bind_exact(gr_model *m, gr_wfile *wf, gr_error *err) {
    const char *path = wf->path;
    for (int p = 0; p < m->n_params; p++) {
        const gr_param *q = &m->params[p];
        const gr_wtensor *t = gr_wfile_find_tensor(wf, q->name);
        if (!t) return gr_error_set(err, GR_ERR_FORMAT, "%s: tensor '%s' is missing", path, q->name);
        if (!same_shape(q, t)) {   /* every dimension: a transposed kernel has the right count */
            char want[96], got[96];
            gr_shape_str(want, sizeof want, q->shape, q->ndim);
            gr_shape_str(got, sizeof got, t->shape, t->ndim);
            return gr_error_set(err, GR_ERR_SHAPE, "%s: tensor '%s' has shape %s, the architecture's layer needs %s",
                                path, q->name, got, want);
        }
        gr_status st = wf->read(wf, t, m->w + q->offset, (int64_t)q->count, err);
        if (st) return st;
    }
    for (int l = 0; l < wf->n_layers; l++)   /* a tensor no layer reads: the file was edited or mixed */
        for (int k = 0; k < wf->layers[l].n; k++) {
            const char *tn = wf->layers[l].t[k].name;
            bool known = !strncmp(tn, "__", 2);
            for (int p = 0; !known && p < m->n_params; p++) known = !strcmp(m->params[p].name, tn);
            if (!known)
                return gr_error_set(err, GR_ERR_FORMAT, "%s: tensor '%s' belongs to no layer of the architecture",
                                    path, tn);
        }
    return GR_OK;
}
