/* weights.c — gr_model_load_weights: open a weights file as layers of
 * tensors (io/weights.h), match its layers to the model's weighted layers
 * (by name, or by order when no name matches and every shape agrees), read
 * each tensor into a staging copy of the parameters, and commit only when
 * everything loaded: a failed load leaves the model unchanged.             */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "format/keras_h5.h"
#include "format/safetensors.h"
#include "format/weights.h"
#include "arch/darknet.h"

/* ------------------------------------------------------------ gr_wfile */

int64_t gr_wtensor_count(const gr_wtensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void gr_shape_str(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

gr_wlayer *gr_wfile_add_layer(gr_wfile *wf, const char *name, gr_error *err) {
    gr_wlayer *l = gr_realloc(wf->layers, (size_t)(wf->n_layers + 1) * sizeof *l, err);
    if (!l) return NULL;
    wf->layers = l;
    l = &wf->layers[wf->n_layers];
    memset(l, 0, sizeof *l);
    if (!(l->name = gr_strdup(name, err))) return NULL;
    wf->n_layers++;
    return l;
}

gr_wtensor *gr_wlayer_add_tensor(gr_wlayer *l, const char *name, gr_error *err) {
    gr_wtensor *t = gr_realloc(l->t, (size_t)(l->n + 1) * sizeof *t, err);
    if (!t) return NULL;
    l->t = t;
    t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = gr_strdup(name, err))) return NULL;
    l->n++;
    return t;
}

void gr_wfile_close(gr_wfile *wf) {
    if (!wf) return;
    if (wf->close_impl) wf->close_impl(wf);
    for (int i = 0; i < wf->n_layers; i++) {
        for (int k = 0; k < wf->layers[i].n; k++) free(wf->layers[i].t[k].name);
        free(wf->layers[i].t);
        free(wf->layers[i].name);
    }
    free(wf->layers);
    free(wf->path);
    free(wf);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

int gr_weights_sniff(const char *path, gr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return 0;
    }
    static const unsigned char h5sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[16] = {0};
    size_t n = fread(b, 1, sizeof b, f);
    int kind = 0;
    if (n >= 8 && !memcmp(b, h5sig, 8)) kind = 'h';
    unsigned char ub[8];   /* HDF5 after a user block (its own buffer: b's bytes are needed below) */
    for (long off = 512; !kind && off <= 8192; off *= 2)
        if (!fseek(f, off, SEEK_SET) && fread(ub, 1, 8, f) == 8 && !memcmp(ub, h5sig, 8)) kind = 'h';
    fclose(f);
    if (kind) return kind;
    if (n >= 9 && b[8] == '{') return 's';
    if (ends_with(path, ".safetensors")) return 's';
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return 'h';
    if (ends_with(path, ".weights")) return 'd';
    gr_error_set(err, GR_ERR_FORMAT,
                 "%s: not a weights file (neither HDF5, safetensors nor a darknet .weights file)", path);
    return 0;
}

/* ---- safetensors as layers ---------------------------------------------- */

static gr_status st_read(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err) {
    return gr_st_read_f32(wf->impl, t->idx, out, count, err);
}
static void st_close(gr_wfile *wf) { gr_st_close(wf->impl); wf->impl = NULL; }

/* Compares names with digit runs as numbers: "features.2" < "features.10". */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y) return x < y ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a - (unsigned char)*b;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* torchvision order: natural order, except heads (classifier, fc, head) last;
 * the safetensors library writes its header sorted by name.                */
static int torch_rank(const char *name) {
    return !strncmp(name, "classifier", 10) || !strncmp(name, "fc", 2) || !strncmp(name, "head", 4);
}
static int torch_layer_cmp(const void *pa, const void *pb) {
    const gr_wlayer *a = pa, *b = pb;
    int ra = torch_rank(a->name), rb = torch_rank(b->name);
    return ra != rb ? ra - rb : natural_cmp(a->name, b->name);
}

static gr_wlayer *find_layer(gr_wfile *wf, const char *name) {
    for (int i = 0; i < wf->n_layers; i++)
        if (!strcmp(wf->layers[i].name, name)) return &wf->layers[i];
    return NULL;
}

static gr_status st_layers(gr_wfile *wf, gr_error *err) {
    gr_st_file *sf = wf->impl;
    bool graft = false;
    for (int i = 0; i < sf->n; i++) graft |= strchr(sf->t[i].name, '/') != NULL;
    wf->torch_names = !graft;
    for (int i = 0; i < sf->n; i++) {
        const gr_st_tensor *s = &sf->t[i];
        char lname[256], kind[24];
        const char *sep = strrchr(s->name, graft ? '/' : '.');
        if (!sep || sep == s->name || strlen(sep + 1) >= sizeof kind || (size_t)(sep - s->name) >= sizeof lname)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: tensor name '%s' is not '<layer>%s<kind>'", wf->path,
                                s->name, graft ? "/" : ".");
        snprintf(lname, sizeof lname, "%.*s", (int)(sep - s->name), s->name);
        snprintf(kind, sizeof kind, "%s", sep + 1);
        if (!graft && !strcmp(kind, "num_batches_tracked")) continue;
        gr_wlayer *l = find_layer(wf, lname);
        if (!l && !(l = gr_wfile_add_layer(wf, lname, err))) return GR_ERR_NOMEM;
        gr_wtensor *t = gr_wlayer_add_tensor(l, s->name, err);
        if (!t) return GR_ERR_NOMEM;
        t->idx = i;
        t->ndim = s->ndim;
        snprintf(t->dtype, sizeof t->dtype, "%s", s->dtype);
        for (int d = 0; d < s->ndim; d++) t->shape[d] = t->fshape[d] = s->shape[d];
        if (graft) { snprintf(t->kind, sizeof t->kind, "%s", kind); continue; }
        snprintf(t->kind, sizeof t->kind, "%s", kind);   /* mapped below, once the layer is known */
    }
    if (graft) {
        snprintf(wf->format, sizeof wf->format, "safetensors, graft names (<layer>/<kind>, HWIO kernels)");
        return GR_OK;
    }
    snprintf(wf->format, sizeof wf->format,
             "safetensors, torchvision names (<module>.weight; OIHW / [out,in] kernels, transposed at load)");
    for (int i = 0; i < wf->n_layers; i++) {
        gr_wlayer *l = &wf->layers[i];
        bool bn = false;
        for (int k = 0; k < l->n; k++) bn |= !strcmp(l->t[k].kind, "running_mean");
        for (int k = 0; k < l->n; k++) {
            gr_wtensor *t = &l->t[k];
            const char *kd = t->kind;
            if (bn) {
                kd = !strcmp(kd, "weight") ? "gamma" : !strcmp(kd, "bias") ? "beta"
                   : !strcmp(kd, "running_mean") ? "moving_mean"
                   : !strcmp(kd, "running_var") ? "moving_variance" : kd;
            } else if (!strcmp(kd, "weight")) {
                kd = "kernel";
                if (t->ndim == 4) {   /* [O][I][H][W] -> [H][W][I][O] */
                    t->layout = GR_WT_OIHW;
                    t->shape[0] = t->fshape[2]; t->shape[1] = t->fshape[3];
                    t->shape[2] = t->fshape[1]; t->shape[3] = t->fshape[0];
                } else if (t->ndim == 2) {
                    t->layout = GR_WT_OUT_IN;
                    t->shape[0] = t->fshape[1]; t->shape[1] = t->fshape[0];
                }
            }
            if (kd != t->kind) snprintf(t->kind, sizeof t->kind, "%s", kd);
        }
    }
    if (wf->n_layers > 1)   /* a file without tensors has no layer array at all */
        qsort(wf->layers, (size_t)wf->n_layers, sizeof *wf->layers, torch_layer_cmp);
    return GR_OK;
}

gr_wfile *gr_wfile_open(const char *path, gr_error *err) {
    int kind = gr_weights_sniff(path, err);
    if (!kind) return NULL;
    if (kind == 'd') {
        gr_error_set(err, GR_ERR_UNSUPPORTED,
                     "%s: a darknet .weights file holds no names or shapes: load it into a model built from its .cfg",
                     path);
        return NULL;
    }
    gr_wfile *wf = gr_calloc(1, sizeof *wf, err);
    if (!wf) return NULL;
    if (!(wf->path = gr_strdup(path, err))) goto fail;
    if (kind == 'h') {
        if (gr_keras_h5_open(wf, err)) goto fail;
    } else {
        gr_st_file *sf = gr_st_open(path, err);
        if (!sf) goto fail;
        wf->impl = sf;
        wf->read = st_read;
        wf->close_impl = st_close;
        wf->n_meta = sf->n_meta;
        wf->meta_key = sf->meta_key;
        wf->meta_val = sf->meta_val;
        if (st_layers(wf, err)) goto fail;
    }
    return wf;
fail:
    gr_wfile_close(wf);
    return NULL;
}

/* ------------------------------------------------------------ binding */

/* The report: one line per event.  Per-layer detail lines stop (with one
 * "..." line) when fewer than REP_RESERVE bytes are left, so the warnings
 * and the closing summary always fit.                                      */
#define REP_RESERVE 600
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

static bool has_weights(const gr_wlayer *l) { return l->n > 0; }

/* Maps the tensors of file layer l onto node's params: pmap[k] = param index
 * for tensor k.  Named kinds map by name; unnamed ones (Keras .h5) by Keras'
 * order: conv/dense [kernel, bias]; batch norm [gamma, beta, moving_mean,
 * moving_variance] (minus gamma/beta when the layer had scale/center off);
 * standardize [mean, std].  Checks every shape.  0 ok, else why says it.   */
static int assign(const gr_model *m, int node, const gr_wlayer *l, const gr_wfile *wf, int *pmap,
                  char *why, size_t nw) {
    const gr_node *n = &m->nodes[node];
    const char *order[4] = {0};
    int no = 0;
    if (l->n > 0 && !l->t[0].kind[0]) {
        switch (n->s.op) {
        case GR_OP_BATCHNORM:
            if (l->n == 4) { order[0] = "gamma"; order[1] = "beta"; order[2] = "moving_mean"; order[3] = "moving_variance"; }
            else if (l->n == 3) {
                order[0] = strstr(l->t[0].name, "beta") ? "beta" : "gamma";
                order[1] = "moving_mean"; order[2] = "moving_variance";
            } else if (l->n == 2) { order[0] = "moving_mean"; order[1] = "moving_variance"; }
            no = l->n;
            break;
        case GR_OP_STANDARDIZE: order[0] = "mean"; order[1] = "std"; no = 2; break;
        default: order[0] = "kernel"; order[1] = "bias"; no = 2; break;
        }
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
        bool same = q->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = q->shape[d] == t->shape[d];
        if (!same) {
            char a[96], b[96], c[96] = "";
            gr_shape_str(a, sizeof a, q->shape, q->ndim);
            gr_shape_str(b, sizeof b, t->shape, t->ndim);
            if (t->layout != GR_WT_ASIS) {
                char fs[80];
                gr_shape_str(fs, sizeof fs, t->fshape, t->ndim);
                snprintf(c, sizeof c, " (stored as %s)", fs);
            }
            snprintf(why, nw, "%s: the model expects shape %s, the file has %s%s for '%s'", q->name, a, b, c, t->name);
            return -1;
        }
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
    (void)wf;
    return 0;
}

/* Converts a stored tensor to graft's layout: src (as stored) -> dst. */
static void relayout(const gr_model *m, int node, const gr_wtensor *t, bool torch_flatten,
                     const float *src, float *dst) {
    if (t->layout == GR_WT_OIHW) {
        int64_t O = t->fshape[0], I = t->fshape[1], H = t->fshape[2], W = t->fshape[3];
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < W; w++)
                        dst[((h * W + w) * I + i) * O + o] = src[((o * I + i) * H + h) * W + w];
        return;
    }
    /* GR_WT_OUT_IN: [out][in] -> [in][out].  After a flatten of [h, w, c],
     * PyTorch's inputs come in (c, h, w) order, graft's in (h, w, c).       */
    int64_t OUT = t->fshape[0], IN = t->fshape[1];
    int FH = 1, FW = 1, FC = (int)IN;
    const gr_node *n = &m->nodes[node];
    if (torch_flatten && n->in[0] >= 0 && m->nodes[n->in[0]].s.op == GR_OP_FLATTEN) {
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

/* Reads layer l's tensors into stage (a copy of m->w) as mapped by pmap. */
static gr_status load_layer(gr_model *m, int node, gr_wfile *wf, const gr_wlayer *l, const int *pmap,
                            float *stage, gr_load_report *rep, gr_error *err) {
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
    for (int k = 0; k < l->n; k++) {
        const gr_wtensor *t = &l->t[k];
        const gr_param *q = &m->params[pmap[k]];
        float *dst = stage + q->offset, *tmp = NULL;
        int64_t count = (int64_t)q->count;
        if (t->layout != GR_WT_ASIS && !(tmp = gr_malloc((size_t)count * sizeof(float), err)))
            return GR_ERR_NOMEM;
        gr_status st = wf->read(wf, t, tmp ? tmp : dst, count, err);
        if (!st && tmp) relayout(m, node, t, wf->torch_names, tmp, dst);
        free(tmp);
        if (st) return st;
        int64_t bad = 0;
        for (int64_t i = 0; i < count; i++) bad += !isfinite(dst[i]);
        if (bad) {
            gr_warn("%s: weight '%s' (for %s) holds %lld NaN/Inf values", wf->path, t->name, q->name, (long long)bad);
            rep_add(rep, "warning: weight '%s' holds %lld NaN/Inf values", t->name, (long long)bad);
        }
        char s[80];
        gr_shape_str(s, sizeof s, q->shape, q->ndim);
        if (k0 > 0 && (size_t)k0 < sizeof line)
            k0 += snprintf(line + k0, sizeof line - (size_t)k0, " %s %s", q->kind, s);
        if (rep) rep->tensors_loaded++;
    }
    rep_detail(rep, "%s", line);
    if (rep) rep->layers_loaded++;
    return GR_OK;
}

static gr_status load_from_wfile(gr_model *m, gr_wfile *wf, bool partial, gr_load_report *rep, gr_error *err) {
    const char *path = wf->path;
    int nW = 0, nF = 0, named = 0;
    int *W = gr_malloc((size_t)(m->n_nodes + 1) * sizeof *W, err);
    int *F = gr_malloc((size_t)(wf->n_layers + 1) * sizeof *F, err);
    int *bind = gr_malloc((size_t)(m->n_nodes + 1) * sizeof *bind, err);   /* per W: file layer */
    int *pmap = gr_malloc((size_t)(8 * (m->n_nodes + 1)) * sizeof *pmap, err);
    float *stage = NULL;
    gr_status st = GR_OK;
    char why[600];
    if (!W || !F || !bind || !pmap) { st = GR_ERR_NOMEM; goto done; }
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].np > 0) W[nW++] = i;
    for (int i = 0; i < wf->n_layers; i++)
        if (has_weights(&wf->layers[i])) F[nF++] = i;
    for (int w = 0; w < nW; w++) {
        bind[w] = -1;
        for (int f = 0; f < nF; f++)
            if (!strcmp(wf->layers[F[f]].name, m->nodes[W[w]].s.name)) { bind[w] = F[f]; named++; break; }
    }
    bool by_order = false;
    if (named == 0 && wf->torch_names && find_layer(wf, "layer1.0.conv1") &&
        gr_model_find(m, "conv2_block1_1_conv") >= 0) {   /* see models/resnet.c */
        st = gr_error_set(err, GR_ERR_UNSUPPORTED,
                          "%s: torchvision ResNet weights (layer1.0.conv1.weight, ...) do not fit graft's resnet50: "
                          "it is Keras' ResNet50 v1 (stride 2 on a stack's first 1x1 conv, convs with bias), "
                          "torchvision's is v1.5 (stride 2 on the 3x3 conv, no conv bias); use Keras' "
                          "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", path);
        goto done;
    }
    if (named == 0 && nW > 0) {   /* Keras' rule for legacy files: topological order */
        if (nF < nW) {
            st = gr_error_set(err, GR_ERR_SHAPE,
                              "%s: no layer name matches the model's (0 of its %d weighted layers match; the first is '%s'), "
                              "and the file has %d weighted layers for the model's %d, too few to match by order",
                              path, nW, m->nodes[W[0]].s.name, nF, nW);
            goto done;
        }
        for (int w = 0; w < nW; w++) {
            if (assign(m, W[w], &wf->layers[F[w]], wf, pmap + 8 * w, why, sizeof why)) {
                st = gr_error_set(err, GR_ERR_SHAPE,
                                  "%s: no layer name matches the model's, and matching by order fails at model layer '%s' / file layer '%s': %s",
                                  path, m->nodes[W[w]].s.name, wf->layers[F[w]].name, why);
                goto done;
            }
            bind[w] = F[w];
        }
        by_order = true;
    } else {
        for (int w = 0; w < nW; w++) {
            const char *ln = m->nodes[W[w]].s.name;
            if (bind[w] < 0 && partial) continue;   /* keeps its weights; reported below */
            if (bind[w] < 0) {
                st = gr_error_set(err, GR_ERR_SHAPE, "%s: only %d of the model's %d weighted layers have weights "
                                  "in the file; the first without is '%s'", path, named, nW, ln);
                goto done;
            }
            if (assign(m, W[w], &wf->layers[bind[w]], wf, pmap + 8 * w, why, sizeof why)) {
                st = gr_error_set(err, GR_ERR_SHAPE, "%s: layer '%s': %s", path, ln, why);
                goto done;
            }
        }
    }
    /* everything fits: read into a staging copy, commit at the end */
    stage = gr_malloc((m->w_count ? m->w_count : 1) * sizeof(float), err);
    if (!stage) { st = GR_ERR_NOMEM; goto done; }
    if (m->w_count) memcpy(stage, m->w, m->w_count * sizeof(float));
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->by_order = by_order;
        rep->layers_total = nW;
    }
    rep_add(rep, "%s: %s", path, wf->format);
    if (by_order)
        rep_add(rep, "no layer name matches the model's: matched %d weighted layers by order (every shape agrees)", nW);
    int missing = 0;
    for (int w = 0; w < nW && !st; w++) {
        if (bind[w] >= 0) {
            st = load_layer(m, W[w], wf, &wf->layers[bind[w]], pmap + 8 * w, stage, rep, err);
            continue;
        }
        if (!missing++ && rep) snprintf(rep->first_missing, sizeof rep->first_missing, "%s", m->nodes[W[w]].s.name);
        rep_detail(rep, "not loaded: '%s' (not in the file: keeps its initial weights)", m->nodes[W[w]].s.name);
    }
    if (st) goto done;
    int skipped = 0;
    for (int f = 0; f < nF; f++) {
        bool used = false;
        for (int w = 0; w < nW && !used; w++) used = bind[w] == F[f];
        if (!used) {
            skipped++;
            rep_detail(rep, "skipped file layer '%s' (not in the model)", wf->layers[F[f]].name);
        }
    }
    if (rep) rep->layers_skipped = skipped;
    rep_add(rep, "loaded %d of %d layers (%d tensors)%s, skipped %d file layers", nW - missing, nW,
            rep ? rep->tensors_loaded : 0, by_order ? " by order" : " by name", skipped);
    if (m->w_count) memcpy(m->w, stage, m->w_count * sizeof(float));
    m->w_version++;
done:
    free(stage);
    free(W);
    free(F);
    free(bind);
    free(pmap);
    return st;
}

static gr_status load_weights(gr_model *m, const char *path, bool partial, gr_load_report *report,
                              gr_error *err) {
    if (!m || !path) return gr_error_set(err, GR_ERR_ARG, "load weights: no model or no path");
    int kind = gr_weights_sniff(path, err);
    if (!kind) return err ? err->code : GR_ERR_FORMAT;
    if (kind == 'd') return gr_darknet_load_weights_ex(m, path, partial, report, err);
    gr_wfile *wf = gr_wfile_open(path, err);
    if (!wf) return err ? err->code : GR_ERR_FORMAT;
    gr_status st = load_from_wfile(m, wf, partial, report, err);
    gr_wfile_close(wf);
    return st;
}

gr_status gr_model_load_weights(gr_model *m, const char *path, gr_load_report *report, gr_error *err) {
    return load_weights(m, path, false, report, err);
}

gr_status gr_model_load_weights_partial(gr_model *m, const char *path, gr_load_report *report,
                                        gr_error *err) {
    return load_weights(m, path, true, report, err);
}
