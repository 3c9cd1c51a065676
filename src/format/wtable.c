/* wtable.c — the named-tensor table (wtable.h): building and freeing it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "format/wtable.h"

gr_wfile *gr_wfile_new(const char *path, gr_error *err) {
    gr_wfile *wf = gr_calloc(1, sizeof *wf, err);
    if (!wf) return NULL;
    if (!(wf->path = gr_strdup(path, err))) {
        free(wf);
        return NULL;
    }
    return wf;
}

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
    t->offset = -1;
    if (!(t->name = gr_strdup(name, err))) return NULL;
    l->n++;
    return t;
}

gr_wlayer *gr_wfile_find_layer(gr_wfile *wf, const char *name) {
    for (int i = 0; i < wf->n_layers; i++)
        if (!strcmp(wf->layers[i].name, name)) return &wf->layers[i];
    return NULL;
}

const gr_wtensor *gr_wfile_find_tensor(const gr_wfile *wf, const char *name) {
    for (int i = 0; i < wf->n_layers; i++)
        for (int k = 0; k < wf->layers[i].n; k++)
            if (!strcmp(wf->layers[i].t[k].name, name)) return &wf->layers[i].t[k];
    return NULL;
}

void gr_wfile_close(gr_wfile *wf) {
    if (!wf) return;
    if (wf->close_impl) wf->close_impl(wf);
    for (int i = 0; i < wf->n_layers; i++) {
        for (int k = 0; k < wf->layers[i].n; k++) free(wf->layers[i].t[k].name);
        free(wf->layers[i].t);
        free(wf->layers[i].name);
        free(wf->layers[i].label);
    }
    free(wf->layers);
    free(wf->path);
    free(wf);
}
