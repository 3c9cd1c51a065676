/* darknet_weights.c — a darknet .weights file as a named-tensor table laid
 * out by the model's darknet layers (darknet_weights.h), bound by bind.c.
 *
 * The layout is computed before a byte of data is read, so a file that runs
 * out is an error naming the darknet layer before anything is loaded.  The
 * data is little-endian float32, as darknet writes on every machine.
 *
 * What stays here rather than in the binder, because the file cannot say
 * it: which model layers are darknet's (names "i", "i/conv", "i/bn"; the
 * cfg reader's fixed layers are marked so the binder neither counts nor
 * loads them), where the file ends relative to the model (a partial load
 * stops there; a strict one names the darknet layer), and darknet's
 * batch-norm formula (the rolling variance is rewritten by the read
 * callback).  Name matching, shapes, OIHW / CHW-flatten conversion, NaN
 * reporting, staging and the report are the binder's, as for every format. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "arch/darknet.h"
#include "format/bind.h"
#include "format/darknet_weights.h"

/* What the reader knows of each tensor (by gr_wtensor.idx). */
typedef struct {
    int layer;           /* darknet layer index */
    bool conv;           /* convolutional, else connected */
    const char *what;    /* "biases", "weights", ... */
    double eps;          /* a rolling variance: its BN node's epsilon; else < 0 */
} dk_tinfo;

typedef struct {
    FILE *f;
    dk_tinfo *ti;
    int n, cap;
} dk_impl;

/* Laying out the table. */
typedef struct {
    gr_wfile *wf;
    dk_impl *im;
    const gr_model *m;
    gr_error *err;
    bool partial;
    int64_t size, pos;   /* bytes */
    int loaded, total, missing;
    char first_missing[96];
} dk_plan;

static void lname(char *buf, size_t n, int layer, bool conv) {
    snprintf(buf, n, "%d (%s)", layer, conv ? "convolutional" : "connected");
}

/* Reads tensor t; a rolling variance is rewritten for darknet's formula:
 * darknet (CPU) normalizes with (x - mean) / (sqrt(var) + 1e-6), graft with
 * (x - mean) / sqrt(moving_variance + eps), so moving_variance =
 * (sqrt(var) + 1e-6)^2 - eps (clamped to 0; negative/NaN left as is).    */
static gr_status dk_read(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err) {
    dk_impl *im = wf->impl;
    const dk_tinfo *ti = &im->ti[t->idx];
    if (fseeko(im->f, (off_t)t->offset, SEEK_SET) || fread(out, 4, (size_t)count, im->f) != (size_t)count) {
        char ln[64];
        lname(ln, sizeof ln, ti->layer, ti->conv);
        return gr_error_set(err, GR_ERR_IO, "%s: read error in darknet layer %s (%s): %s", wf->path, ln, ti->what,
                            ferror(im->f) ? strerror(errno) : "short read");
    }
    for (int64_t c = 0; ti->eps >= 0 && c < count; c++) {
        if (!(out[c] >= 0)) continue;
        double sd = sqrt((double)out[c]) + 1e-6;
        double v = sd * sd - ti->eps;
        out[c] = (float)(v > 0 ? v : 0);
    }
    return GR_OK;
}

static void dk_close(gr_wfile *wf) {
    dk_impl *im = wf->impl;
    if (!im) return;
    if (im->f) fclose(im->f);
    free(im->ti);
    free(im);
    wf->impl = NULL;
}

/* Adds tensor <layer>/<kind> of n values (stored shape fs[nd], graft shape
 * that of param p) at the current position; the file must hold it.        */
static gr_status plan_tensor(dk_plan *pl, gr_wlayer *l, int p, const char *what, int li, bool conv,
                             const int64_t *fs, int nd, gr_wt_layout layout, double eps) {
    const gr_param *q = &pl->m->params[p];
    int64_t need = (int64_t)q->count * 4, left = pl->size - pl->pos;
    char ln[64];
    lname(ln, sizeof ln, li, conv);
    if (need > left)
        return gr_error_set(pl->err, GR_ERR_FORMAT,
                            "%s: the file ends inside darknet layer %s (%s: needs %lld bytes at offset %lld, %lld "
                            "left): the .weights does not match the cfg or is truncated", pl->wf->path, ln, what,
                            (long long)need, (long long)pl->pos, (long long)left);
    if (pl->im->n == pl->im->cap) {
        int cap = pl->im->cap ? 2 * pl->im->cap : 64;
        dk_tinfo *ti = gr_realloc(pl->im->ti, (size_t)cap * sizeof *ti, pl->err);
        if (!ti) return GR_ERR_NOMEM;
        pl->im->ti = ti;
        pl->im->cap = cap;
    }
    gr_wtensor *t = gr_wlayer_add_tensor(l, q->name, pl->err);
    if (!t || (!l->label && !(l->label = gr_strdup(ln, pl->err)))) return GR_ERR_NOMEM;
    pl->im->ti[pl->im->n] = (dk_tinfo){li, conv, what, eps};
    t->idx = pl->im->n++;
    snprintf(t->kind, sizeof t->kind, "%s", q->kind);
    snprintf(t->dtype, sizeof t->dtype, "F32");
    t->ndim = q->ndim;
    for (int d = 0; d < q->ndim; d++) t->shape[d] = q->shape[d];
    for (int d = 0; d < nd; d++) t->fshape[d] = fs ? fs[d] : q->shape[d];
    t->layout = layout;
    t->offset = pl->pos;
    pl->pos += need;
    return GR_OK;
}

/* A vector tensor <node>/<kind> (biases, BN vectors). */
static gr_status plan_vec(dk_plan *pl, gr_wlayer *l, int node, const char *kind, const char *what, int li,
                          bool conv) {
    int p = gr_node_param(pl->m, node, kind);
    double eps = strcmp(kind, "moving_variance") ? -1 : pl->m->nodes[node].s.eps;
    return plan_tensor(pl, l, p, what, li, conv, NULL, 1, GR_WT_ASIS, eps);
}

static gr_status plan_bn(dk_plan *pl, gr_wlayer *bl, int bn, int li, bool conv) {
    gr_status st;
    if ((st = plan_vec(pl, bl, bn, "gamma", "batch-norm scales", li, conv)) ||
        (st = plan_vec(pl, bl, bn, "moving_mean", "rolling mean", li, conv)))
        return st;
    return plan_vec(pl, bl, bn, "moving_variance", "rolling variance", li, conv);
}

/* Conv/dense node i (and its BN node bn, or -1) of darknet layer li. */
static gr_status plan_layer(dk_plan *pl, int i, int bn, int li) {
    const gr_node *n = &pl->m->nodes[i];
    bool conv = n->s.op == GR_OP_CONV2D;
    gr_wlayer *l = gr_wfile_add_layer(pl->wf, n->s.name, pl->err);
    gr_wlayer *bl = l && bn >= 0 ? gr_wfile_add_layer(pl->wf, pl->m->nodes[bn].s.name, pl->err) : NULL;
    if (!l || (bn >= 0 && !bl)) return GR_ERR_NOMEM;
    l = gr_wfile_find_layer(pl->wf, n->s.name);   /* the array may have moved */
    int pk = gr_node_param(pl->m, i, "kernel");
    gr_status st = bn >= 0 ? plan_vec(pl, bl, bn, "beta", "biases", li, conv)
                           : plan_vec(pl, l, i, "bias", "biases", li, conv);
    if (!st && bn >= 0 && conv) st = plan_bn(pl, bl, bn, li, conv);
    if (st) return st;
    if (conv) {
        int64_t fs[4] = {n->oc, n->ic / n->s.groups, n->s.kh, n->s.kw};
        st = plan_tensor(pl, l, pk, "weights", li, conv, fs, 4, GR_WT_OIHW, -1);
    } else {
        int64_t fs[2] = {n->oc, n->ic};
        st = plan_tensor(pl, l, pk, "weights", li, conv, fs, 2, GR_WT_OUT_IN, -1);
        if (!st && bn >= 0) st = plan_bn(pl, bl, bn, li, conv);
    }
    return st;
}

/* The darknet layer index a node name starts with ("12", "12/conv"), or -1. */
static int darknet_index(const char *name, const char **suffix) {
    if (!isdigit((unsigned char)name[0])) return -1;
    char *end;
    long v = strtol(name, &end, 10);
    if (*end && *end != '/') return -1;
    *suffix = end;
    return (int)v;
}

/* A model layer the file gives no weights: fixed (set by the cfg reader:
 * a shortcut's 1x1 conv, a crop's scaling) or absent, with the reason.    */
static gr_status plan_none(dk_plan *pl, int node, bool fixed, const char *why) {
    gr_wlayer *l = gr_wfile_add_layer(pl->wf, pl->m->nodes[node].s.name, pl->err);
    if (!l) return GR_ERR_NOMEM;
    l->fixed = fixed;
    if (why) snprintf(l->absent, sizeof l->absent, "%s", why);
    return GR_OK;
}

/* The BN node after bias-less conv/dense node i, or -1. */
static int bn_after(const gr_model *m, int i) {
    return !m->nodes[i].s.use_bias && i + 1 < m->n_nodes && m->nodes[i + 1].s.op == GR_OP_BATCHNORM ? i + 1 : -1;
}

static bool is_shortcut(const gr_node *n) {
    const char *suf = "";
    return darknet_index(n->s.name, &suf) >= 0 && !strcmp(suf, "/shortcut");
}

/* Conv/dense node i: planned, absent (partial) or an error. */
static gr_status plan_node(dk_plan *pl, int i) {
    const gr_node *n = &pl->m->nodes[i];
    const char *suf = "";
    int li = darknet_index(n->s.name, &suf), bn = bn_after(pl->m, i);
    bool at_end = pl->pos == pl->size && pl->loaded > 0;   /* a partial load stops where the file does */
    if (at_end && !pl->partial && li >= 0)
        return gr_error_set(pl->err, GR_ERR_SHAPE, "%s: only %d of the model's %d weighted layers have weights in "
                            "the file: it ends before darknet layer %d; the first without is '%s'", pl->wf->path,
                            pl->loaded, pl->total, li, n->s.name);
    if (li < 0 || (*suf && strcmp(suf, "/conv") && strcmp(suf, "/dense")) || at_end) {
        if (!pl->missing++) snprintf(pl->first_missing, sizeof pl->first_missing, "%s", n->s.name);
        const char *why = at_end ? "after the end of the file" : "not a darknet layer";
        gr_status st = plan_none(pl, i, false, why);
        return st || bn < 0 ? st : plan_none(pl, bn, false, why);
    }
    if (!n->s.use_bias && bn < 0)
        return gr_error_set(pl->err, GR_ERR_UNSUPPORTED, "%s: layer '%s' has neither bias nor batch norm; darknet "
                            "layers always have one", pl->wf->path, n->s.name);
    gr_status st = plan_layer(pl, i, bn, li);
    if (!st) pl->loaded += bn >= 0 ? 2 : 1;
    return st;
}

/* Lays out the file after its header (at pl->pos) by the model's layers. */
static gr_status plan(dk_plan *pl) {
    const gr_model *m = pl->m;
    for (int i = 0; i < m->n_nodes; i++) {   /* conv/dense (+ their BN), a shortcut's fixed 1x1 conv aside */
        const gr_node *n = &m->nodes[i];
        if ((n->s.op == GR_OP_CONV2D || n->s.op == GR_OP_DENSE) && !is_shortcut(n))
            pl->total += bn_after(m, i) >= 0 ? 2 : 1;
    }
    gr_status st = GR_OK;
    for (int i = 0; i < m->n_nodes && !st; i++) {
        const gr_node *n = &m->nodes[i];
        bool layer = (n->s.op == GR_OP_CONV2D || n->s.op == GR_OP_DENSE) && !is_shortcut(n);
        bool bn = i > 0 && n->s.op == GR_OP_BATCHNORM && bn_after(m, i - 1) == i &&
                  (m->nodes[i - 1].s.op == GR_OP_CONV2D || m->nodes[i - 1].s.op == GR_OP_DENSE) &&
                  !is_shortcut(&m->nodes[i - 1]);
        if (layer) st = plan_node(pl, i);
        else if (n->np > 0 && !bn) st = plan_none(pl, i, true, NULL);   /* not darknet's to fill */
    }
    if (st) return st;
    if (pl->loaded == 0 && pl->total > 0)
        return gr_error_set(pl->err, GR_ERR_SHAPE, "%s: a darknet .weights file, but none of the model's %d "
                            "weighted layers is a darknet layer (the first is '%s'): darknet weights fit a base built "
                            "from their darknet .cfg", pl->wf->path, pl->total, pl->first_missing);
    if (pl->missing && !pl->partial)
        return gr_error_set(pl->err, GR_ERR_SHAPE, "%s: a darknet .weights file, but only %d of the model's %d "
                            "weighted layers are darknet layers it can fill; the first that is not is '%s' (darknet "
                            "weights fit a base built from their darknet .cfg)", pl->wf->path, pl->loaded, pl->total,
                            pl->first_missing);
    return GR_OK;
}

/* Reads the header; GR_OK and pl->pos past it, or an error. */
static gr_status read_header(dk_plan *pl, FILE *f, int32_t v[3]) {
    const char *path = pl->wf->path;
    if (pl->size < 12 || fread(v, 4, 3, f) != 3)
        return gr_error_set(pl->err, GR_ERR_FORMAT, "%s: too short for a darknet .weights header (%lld bytes; "
                            "needs 12 + 4 or 8)", path, (long long)pl->size);
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[0] >= 1000 || v[1] >= 1000)
        return gr_error_set(pl->err, GR_ERR_FORMAT, "%s: not a darknet .weights header (version %d.%d.%d); graft "
                            "reads versions below 1000.1000 (the transposed legacy layout is not supported)",
                            path, v[0], v[1], v[2]);
    int seen_bytes = (v[0] * 10 + v[1]) >= 2 ? 8 : 4;
    unsigned char seen[8];
    if (pl->size < 12 + seen_bytes || fread(seen, 1, (size_t)seen_bytes, f) != (size_t)seen_bytes)
        return gr_error_set(pl->err, GR_ERR_FORMAT, "%s: too short for a darknet .weights header (version "
                            "%d.%d.%d needs %d bytes, the file has %lld)", path, v[0], v[1], v[2], 12 + seen_bytes,
                            (long long)pl->size);
    pl->pos = 12 + seen_bytes;
    return GR_OK;
}

/* Opens path as a table laid out for m: *out, or an error. */
static gr_status dk_open(const gr_model *m, const char *path, bool partial, gr_wfile **out, gr_error *err) {
    dk_plan pl = {.m = m, .err = err, .partial = partial};
    if (!(pl.wf = gr_wfile_new(path, err)) || !(pl.im = gr_calloc(1, sizeof *pl.im, err))) {
        gr_wfile_close(pl.wf);
        return GR_ERR_NOMEM;
    }
    pl.wf->impl = pl.im;
    pl.wf->read = dk_read;
    pl.wf->close_impl = dk_close;
    pl.wf->chw_flatten = true;   /* darknet flattens CHW */
    gr_status st = GR_OK;
    struct stat sb;
    int32_t v[3];
    if (!(pl.im->f = fopen(path, "rb")))
        st = gr_error_set(err, GR_ERR_IO, "%s: cannot open darknet weights: %s", path, strerror(errno));
    else if (fstat(fileno(pl.im->f), &sb) || !S_ISREG(sb.st_mode))
        st = gr_error_set(err, GR_ERR_IO, "%s: not a regular file", path);
    if (!st) {
        pl.size = (int64_t)sb.st_size;
        st = read_header(&pl, pl.im->f, v);
    }
    if (!st) st = plan(&pl);
    if (st) {
        gr_wfile_close(pl.wf);
        return st;
    }
    int64_t left = pl.size - pl.pos;
    if (left > 0) {
        gr_warn("%s: %lld bytes left after the model's last layer (fine for a cut model; otherwise the cfg does "
                "not match the file)", path, (long long)left);
        snprintf(pl.wf->note, sizeof pl.wf->note, "%s: %lld bytes not used (the file has more layers than the "
                 "model)", path, (long long)left);
    }
    snprintf(pl.wf->format, sizeof pl.wf->format, "darknet weights version %d.%d.%d, %lld bytes read", v[0], v[1],
             v[2], (long long)pl.pos);
    *out = pl.wf;
    return GR_OK;
}

gr_status gr_darknet_load_weights(gr_model *m, const char *path, gr_load_report *rep, gr_error *err) {
    return gr_darknet_load_weights_ex(m, path, false, rep, err);
}

gr_status gr_darknet_load_weights_ex(gr_model *m, const char *path, bool partial, gr_load_report *rep,
                                     gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (rep) memset(rep, 0, sizeof *rep);
    if (!m || !path) return gr_error_set(err, GR_ERR_ARG, "load darknet weights: no model or no path");
    gr_wfile *wf = NULL;
    gr_status st = dk_open(m, path, partial, &wf, err);
    if (st) return st;
    gr_bind_opts o = {.partial = partial, .by_order = false};
    st = gr_bind(m, wf, &o, rep, err);
    gr_wfile_close(wf);
    return st;
}
