/* darknet_weights.c — reading a darknet .weights file into a model made by
 * gr_darknet_load_cfg (format and node mapping: see darknet.h).
 *
 * The file is read sequentially (little-endian float32, as darknet writes on
 * every machine it runs on) into a private copy of the model's parameters;
 * the model is only changed when the whole read succeeded.                  */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "graph/model.h"
#include "arch/darknet.h"

typedef struct {
    FILE *f;
    const char *path;
    int64_t size, pos;   /* bytes */
    int64_t nonfinite;   /* NaN/Inf values read so far */
    gr_error *err;
} dk_reader;

/* Reads n float32 into dst for `what` of darknet layer `layer`. */
static gr_status rd_floats(dk_reader *r, float *dst, size_t n, const char *layer,
                           const char *what) {
    int64_t need = (int64_t)n * 4, left = r->size - r->pos;
    if (need > left)
        return gr_error_set(r->err, GR_ERR_FORMAT,
                            "%s: the file ends inside darknet layer %s (%s: needs %lld bytes at "
                            "offset %lld, %lld left): the .weights does not match the cfg or is "
                            "truncated", r->path, layer, what, (long long)need, (long long)r->pos,
                            (long long)left);
    if (n && fread(dst, 4, n, r->f) != n)
        return gr_error_set(r->err, GR_ERR_IO, "%s: read error in darknet layer %s (%s): %s",
                            r->path, layer, what, ferror(r->f) ? strerror(errno) : "short read");
    r->pos += need;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) r->nonfinite++;
    return GR_OK;
}

/* Appends a printf-style line to rep->report (when rep != NULL). */
static void rep_line(gr_load_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep_line(gr_load_report *rep, const char *fmt, ...) {
    if (!rep) return;
    size_t used = strlen(rep->report);
    if (used + 1 >= sizeof rep->report) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->report + used, sizeof rep->report - used, fmt, ap);
    va_end(ap);
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

/* BN params of node bn (gamma, moving_mean, moving_variance; beta was read
 * already) into w; the variance is rewritten for darknet's formula. */
static gr_status read_bn(dk_reader *r, const gr_model *m, int bn, float *w, const char *lname) {
    int pg = gr_node_param(m, bn, "gamma"), pm = gr_node_param(m, bn, "moving_mean"),
        pv = gr_node_param(m, bn, "moving_variance");
    size_t C = (size_t)m->nodes[bn].oc;
    gr_status st;
    if ((st = rd_floats(r, w + m->params[pg].offset, C, lname, "batch-norm scales")) ||
        (st = rd_floats(r, w + m->params[pm].offset, C, lname, "rolling mean")) ||
        (st = rd_floats(r, w + m->params[pv].offset, C, lname, "rolling variance")))
        return st;
    float *var = w + m->params[pv].offset;
    double eps = m->nodes[bn].s.eps;
    for (size_t c = 0; c < C; c++) {
        if (!(var[c] >= 0)) continue;   /* negative/NaN: left as is (NaN warned) */
        double sd = sqrt((double)var[c]) + 1e-6;
        double v = sd * sd - eps;
        var[c] = (float)(v > 0 ? v : 0);
    }
    return GR_OK;
}

/* One conv node (and its BN when it has one). tmp holds the kernel. */
static gr_status read_conv(dk_reader *r, const gr_model *m, int i, int bn, float *w, float *tmp,
                           const char *lname) {
    const gr_node *n = &m->nodes[i];
    int O = n->oc, KH = n->s.kh, KW = n->s.kw, CI = n->ic / n->s.groups;
    int pb = bn >= 0 ? gr_node_param(m, bn, "beta") : gr_node_param(m, i, "bias");
    gr_status st = rd_floats(r, w + m->params[pb].offset, (size_t)O, lname, "biases");
    if (!st && bn >= 0) st = read_bn(r, m, bn, w, lname);
    if (!st) st = rd_floats(r, tmp, (size_t)O * CI * KH * KW, lname, "weights");
    if (st) return st;
    /* [O][CI][KH][KW] -> [KH][KW][CI][O] */
    float *k = w + m->params[gr_node_param(m, i, "kernel")].offset;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < CI; c++)
            for (int y = 0; y < KH; y++)
                for (int x = 0; x < KW; x++)
                    k[(((size_t)y * KW + x) * CI + c) * O + o] =
                        tmp[(((size_t)o * CI + c) * KH + y) * KW + x];
    return GR_OK;
}

/* One dense node (darknet [connected]).  Darknet flattens CHW; graft's
 * flatten is HWC: graft input j = (y*W + x)*C + c is darknet input
 * c*H*W + y*W + x, where HxWxC is the flatten node's input. */
static gr_status read_dense(dk_reader *r, const gr_model *m, int i, int bn, float *w, float *tmp,
                            const char *lname) {
    const gr_node *n = &m->nodes[i];
    int IN = n->ic, OUT = n->oc, H = 1, W = 1, C = IN;
    int src = n->in[0];
    if (src >= 0 && m->nodes[src].s.op == GR_OP_FLATTEN) {
        H = m->nodes[src].ih; W = m->nodes[src].iw; C = m->nodes[src].ic;
    }
    int pb = bn >= 0 ? gr_node_param(m, bn, "beta") : gr_node_param(m, i, "bias");
    gr_status st = rd_floats(r, w + m->params[pb].offset, (size_t)OUT, lname, "biases");
    if (!st) st = rd_floats(r, tmp, (size_t)OUT * IN, lname, "weights");
    if (!st && bn >= 0) st = read_bn(r, m, bn, w, lname);
    if (st) return st;
    float *k = w + m->params[gr_node_param(m, i, "kernel")].offset;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                size_t j = ((size_t)y * W + x) * C + c;
                size_t d = ((size_t)c * H + y) * W + x;
                for (int o = 0; o < OUT; o++) k[j * OUT + o] = tmp[(size_t)o * IN + d];
            }
    return GR_OK;
}

/* Reads the header; GR_OK and r->pos past it, or an error. */
static gr_status read_header(dk_reader *r, int32_t v[3]) {
    if (r->size < 12 || fread(v, 4, 3, r->f) != 3)
        return gr_error_set(r->err, GR_ERR_FORMAT,
                            "%s: too short for a darknet .weights header (%lld bytes; needs 12 + "
                            "4 or 8)", r->path, (long long)r->size);
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[0] >= 1000 || v[1] >= 1000)
        return gr_error_set(r->err, GR_ERR_FORMAT,
                            "%s: not a darknet .weights header (version %d.%d.%d); graft reads "
                            "versions below 1000.1000 (the transposed legacy layout is not "
                            "supported)", r->path, v[0], v[1], v[2]);
    int seen_bytes = (v[0] * 10 + v[1]) >= 2 ? 8 : 4;
    unsigned char seen[8];
    if (r->size < 12 + seen_bytes || fread(seen, 1, (size_t)seen_bytes, r->f) != (size_t)seen_bytes)
        return gr_error_set(r->err, GR_ERR_FORMAT,
                            "%s: too short for a darknet .weights header (version %d.%d.%d needs "
                            "%d bytes, the file has %lld)", r->path, v[0], v[1], v[2],
                            12 + seen_bytes, (long long)r->size);
    r->pos = 12 + seen_bytes;
    return GR_OK;
}

gr_status gr_darknet_load_weights(gr_model *m, const char *path, gr_load_report *rep,
                                  gr_error *err) {
    return gr_darknet_load_weights_ex(m, path, false, rep, err);
}

gr_status gr_darknet_load_weights_ex(gr_model *m, const char *path, bool partial, gr_load_report *rep,
                                     gr_error *err) {
    if (rep) memset(rep, 0, sizeof *rep);
    dk_reader r = {0};
    r.path = path;
    r.err = err;
    r.f = fopen(path, "rb");
    if (!r.f)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot open darknet weights: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fileno(r.f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(r.f);
        return gr_error_set(err, GR_ERR_IO, "%s: not a regular file", path);
    }
    r.size = (int64_t)sb.st_size;
    float *w = NULL, *tmp = NULL;
    int32_t ver[3];
    gr_status st = read_header(&r, ver);
    if (st) goto done;
    /* scratch: a copy of all parameters, and room for the largest kernel */
    size_t big = 1;
    for (int p = 0; p < m->n_params; p++)
        if (m->params[p].count > big) big = m->params[p].count;
    w = gr_malloc((m->w_count ? m->w_count : 1) * sizeof(float), err);
    tmp = gr_malloc(big * sizeof(float), err);
    if (!w || !tmp) { st = GR_ERR_NOMEM; goto done; }
    if (m->w_count) memcpy(w, m->w, m->w_count * sizeof(float));
    int loaded = 0, tensors = 0, total = 0, missing = 0;
    char first_missing[96] = "";
    for (int i = 0; i < m->n_nodes; i++) {   /* conv/dense (+ their BN), a shortcut's fixed 1x1 conv aside */
        const gr_node *n = &m->nodes[i];
        const char *suf = "";
        if ((n->s.op != GR_OP_CONV2D && n->s.op != GR_OP_DENSE) ||
            (darknet_index(n->s.name, &suf) >= 0 && !strcmp(suf, "/shortcut")))
            continue;
        total += !n->s.use_bias && i + 1 < m->n_nodes && m->nodes[i + 1].s.op == GR_OP_BATCHNORM ? 2 : 1;
    }
    for (int i = 0; i < m->n_nodes && !st; i++) {
        const gr_node *n = &m->nodes[i];
        if (n->s.op != GR_OP_CONV2D && n->s.op != GR_OP_DENSE) continue;
        const char *suf = "";
        int li = darknet_index(n->s.name, &suf);
        if (li >= 0 && !strcmp(suf, "/shortcut")) continue;   /* fixed, made by the cfg reader */
        bool at_end = r.pos == r.size && loaded > 0;   /* a partial load stops where the file does */
        if (at_end && !partial && li >= 0) {
            st = gr_error_set(err, GR_ERR_SHAPE, "%s: only %d of the model's %d weighted layers have weights in the "
                              "file: it ends before darknet layer %d; the first without is '%s'", path, loaded,
                              total, li, n->s.name);
            break;
        }
        if (li < 0 || (*suf && strcmp(suf, "/conv") && strcmp(suf, "/dense")) || at_end) {
            if (!missing++) snprintf(first_missing, sizeof first_missing, "%s", n->s.name);
            if (!partial) continue;   /* the error below names it */
            rep_line(rep, "not loaded: '%s' (%s: keeps its initial weights)\n", n->s.name,
                     at_end ? "after the end of the file" : "not a darknet layer");
            continue;
        }
        int bn = -1;
        if (!n->s.use_bias) {
            if (i + 1 < m->n_nodes && m->nodes[i + 1].s.op == GR_OP_BATCHNORM) bn = i + 1;
            else {
                st = gr_error_set(err, GR_ERR_UNSUPPORTED,
                                  "%s: layer '%s' has neither bias nor batch norm; darknet layers "
                                  "always have one", path, n->s.name);
                break;
            }
        }
        char lname[96];
        snprintf(lname, sizeof lname, "%d (%s)", li,
                 n->s.op == GR_OP_CONV2D ? "convolutional" : "connected");
        int64_t nf0 = r.nonfinite;
        st = n->s.op == GR_OP_CONV2D ? read_conv(&r, m, i, bn, w, tmp, lname)
                                     : read_dense(&r, m, i, bn, w, tmp, lname);
        if (st) break;
        if (r.nonfinite > nf0) {
            gr_warn("%s: darknet layer %s has %lld NaN/Inf weights", path, lname,
                    (long long)(r.nonfinite - nf0));
            rep_line(rep, "layer %s: NaN/Inf weights: %lld\n", lname, (long long)(r.nonfinite - nf0));
        }
        loaded += bn >= 0 ? 2 : 1;
        tensors += bn >= 0 ? 5 : 2;
    }
    if (st) goto done;
    if (loaded == 0 && total > 0) {
        st = gr_error_set(err, GR_ERR_SHAPE, "%s: a darknet .weights file, but none of the model's %d weighted "
                          "layers is a darknet layer (the first is '%s'): darknet weights fit a base built from "
                          "their darknet .cfg", path, total, first_missing);
        goto done;
    }
    if (missing && !partial) {
        st = gr_error_set(err, GR_ERR_SHAPE,
                          "%s: a darknet .weights file, but only %d of the model's %d weighted layers are darknet "
                          "layers it can fill; the first that is not is '%s' (darknet weights fit a base built "
                          "from their darknet .cfg)", path, loaded, total, first_missing);
        goto done;
    }
    int64_t left = r.size - r.pos;
    if (left > 0) {
        gr_warn("%s: %lld bytes left after the model's last layer (fine for a cut model; "
                "otherwise the cfg does not match the file)", path, (long long)left);
        rep_line(rep, "%s: %lld bytes not used (the file has more layers than the model)\n",
                 path, (long long)left);
    }
    if (m->w_count) memcpy(m->w, w, m->w_count * sizeof(float));
    m->w_version++;
    if (rep) {
        rep->layers_loaded = loaded;
        rep->layers_total = total;
        snprintf(rep->first_missing, sizeof rep->first_missing, "%s", first_missing);
        rep->tensors_loaded = tensors;
        char head[160];
        snprintf(head, sizeof head, "darknet weights version %d.%d.%d", ver[0], ver[1], ver[2]);
        rep_line(rep, "%s, %lld bytes read\n", head, (long long)r.pos);
    }
done:
    free(w);
    free(tmp);
    fclose(r.f);
    return st;
}
