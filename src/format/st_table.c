/* st_table.c — safetensors files as named-tensor tables (st_table.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "format/st_table.h"

static gr_status st_read(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err) {
    return gr_st_read_f32(wf->impl, t->idx, out, count, err);
}
static void st_close(gr_wfile *wf) { gr_st_close(wf->impl); wf->impl = NULL; }

static void attach(gr_wfile *wf, gr_st_file *sf) {
    wf->impl = sf;
    wf->read = st_read;
    wf->close_impl = st_close;
    wf->n_meta = sf->n_meta;
    wf->meta_key = sf->meta_key;
    wf->meta_val = sf->meta_val;
}

/* Tensor i of sf as stored, added to layer l. */
static gr_wtensor *add_stored(gr_wlayer *l, const gr_st_file *sf, int i, gr_error *err) {
    const gr_st_tensor *s = &sf->t[i];
    gr_wtensor *t = gr_wlayer_add_tensor(l, s->name, err);
    if (!t) return NULL;
    t->idx = i;
    t->ndim = s->ndim;
    t->offset = (int64_t)(sf->data_start + s->begin);
    snprintf(t->dtype, sizeof t->dtype, "%s", s->dtype);
    for (int d = 0; d < s->ndim; d++) t->shape[d] = t->fshape[d] = s->shape[d];
    return t;
}

gr_wfile *gr_st_table_flat(gr_st_file *sf, gr_error *err) {
    gr_wfile *wf = gr_wfile_new(sf->path, err);
    if (!wf) return NULL;
    snprintf(wf->format, sizeof wf->format, "safetensors");
    gr_wlayer *l = gr_wfile_add_layer(wf, "", err);
    for (int i = 0; l && i < sf->n; i++)
        if (!add_stored(l, sf, i, err)) l = NULL;
    if (!l) {
        gr_wfile_close(wf);
        return NULL;
    }
    attach(wf, sf);
    return wf;
}

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

/* torchvision kinds -> graft kinds and layouts, once a layer's tensors are known. */
static void torch_kinds(gr_wlayer *l) {
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

/* Groups the tensors into layers by name: "<layer>/<kind>" or "<module>.<kind>". */
static gr_status group_layers(gr_wfile *wf, const gr_st_file *sf, bool graft, gr_error *err) {
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
        gr_wlayer *l = gr_wfile_find_layer(wf, lname);
        if (!l && !(l = gr_wfile_add_layer(wf, lname, err))) return GR_ERR_NOMEM;
        gr_wtensor *t = add_stored(l, sf, i, err);
        if (!t) return GR_ERR_NOMEM;
        snprintf(t->kind, sizeof t->kind, "%s", kind);   /* torchvision's: mapped once the layer is known */
    }
    return GR_OK;
}

gr_status gr_st_table_open(gr_wfile *wf, gr_error *err) {
    gr_st_file *sf = gr_st_open(wf->path, err);
    if (!sf) return err->code;
    attach(wf, sf);
    bool graft = false;
    for (int i = 0; i < sf->n; i++) graft |= strchr(sf->t[i].name, '/') != NULL;
    wf->torch_names = wf->chw_flatten = !graft;
    gr_status st = group_layers(wf, sf, graft, err);
    if (st) return st;
    if (graft) {
        snprintf(wf->format, sizeof wf->format, "safetensors, graft names (<layer>/<kind>, HWIO kernels)");
        return GR_OK;
    }
    snprintf(wf->format, sizeof wf->format,
             "safetensors, torchvision names (<module>.weight; OIHW / [out,in] kernels, transposed at load)");
    for (int i = 0; i < wf->n_layers; i++) torch_kinds(&wf->layers[i]);
    if (wf->n_layers > 1)   /* a file without tensors has no layer array at all */
        qsort(wf->layers, (size_t)wf->n_layers, sizeof *wf->layers, torch_layer_cmp);
    return GR_OK;
}
