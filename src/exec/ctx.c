/* ctx.c — the execution context's life (ctx.h, graft.h: gr_ctx): made for a
 * model, kept in step with its graph, freed with its caches; and the
 * one-call gr_model_predict, which makes a context for the call.          */
#include <stdlib.h>
#include <string.h>
#include "exec/ctx.h"

gr_ctx *gr_ctx_new(const gr_model *m, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!m) {
        gr_error_set(err, GR_ERR_ARG, "execution context: no model");
        return NULL;
    }
    gr_ctx *c = gr_calloc(1, sizeof *c, err);
    if (!c) return NULL;
    c->m = m;
    c->g_version = m->g_version;
    c->reference = getenv("GRAFT_REFERENCE") != NULL;   /* the one place it is read */
    const char *wino = getenv("GRAFT_WINOGRAD");          /* likewise */
    c->winograd = !(wino && !strcmp(wino, "0"));
    c->precision = m->precision;
    c->train_from = -1;
    if (!c->reference && !(c->be = gr_backend_new(m, c->precision, err))) {
        free(c);
        return NULL;
    }
    if (c->be) gr_backend_set_winograd(c->be, c->winograd);
    return c;
}

void gr_ctx_free(gr_ctx *c) {
    if (!c) return;
    gr_backend_free(c->be);
    gr_workspace_free(c->ws);
    free(c);
}

gr_status gr_ctx_sync(gr_ctx *c, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (c->reference || c->g_version == c->m->g_version) return GR_OK;
    /* the nodes changed: every per-node cache goes (activation buffers are
     * plain memory and stay) */
    gr_backend *be = gr_backend_new(c->m, c->precision, err);
    if (!be) return err->code;
    gr_backend_set_training(be, c->train_from);
    gr_backend_set_winograd(be, c->winograd);
    gr_backend_free(c->be);
    c->be = be;
    c->g_version = c->m->g_version;
    return GR_OK;
}

void gr_ctx_set_precision(gr_ctx *c, gr_precision p) {
    c->precision = p;
    if (c->be) gr_backend_set_precision(c->be, p);
}

void gr_ctx_set_training(gr_ctx *c, int from) {
    c->train_from = from;
    if (c->be) gr_backend_set_training(c->be, from);
}

gr_status gr_ctx_predict(gr_ctx *c, const float *x, int B, int upto, float *out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!c) return gr_error_set(err, GR_ERR_ARG, "predict: no execution context");
    gr_status st = gr_ctx_run(c, 0, x, B, upto, out, err);
    return st == GR_OK ? gr_outputs_check(c->m, upto, out, B, err) : st;
}

gr_status gr_model_predict(const gr_model *m, const float *x, int B, int upto, float *out,
                           gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_ctx *c = gr_ctx_new(m, err);
    if (!c) return err->code;
    gr_status st = gr_ctx_predict(c, x, B, upto, out, err);
    gr_ctx_free(c);
    return st;
}
