/* tensor.c — float32 tensors of up to 4 dimensions (NHWC for images). */
#include <stdlib.h>
#include "graph/model.h"

gr_tensor *gr_tensor_new(int ndim, const int64_t *shape, gr_error *err) {
    if (ndim < 0 || ndim > 4) {
        gr_error_set(err, GR_ERR_ARG, "tensor: %d dimensions (at most 4)", ndim);
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && n > INT64_MAX / 4 / shape[i])) {
            gr_error_set(err, GR_ERR_ARG, "tensor: bad dimension %lld", (long long)shape[i]);
            return NULL;
        }
        n *= shape[i];
    }
    gr_tensor *t = gr_calloc(1, sizeof *t, err);
    if (!t) return NULL;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = gr_calloc((size_t)n, sizeof(float), err);
    if (!t->data) { free(t); return NULL; }
    return t;
}

void gr_tensor_free(gr_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t);
}

int64_t gr_tensor_count(const gr_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
