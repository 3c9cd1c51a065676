/* dnnl_train_layers.c — pooling, batch norm and activation layers for the
 * trainer through oneDNN's training primitives (forward_training /
 * backward), NHWC f32.
 *
 *   max/avg pooling: the forward in training mode keeps oneDNN's workspace
 *     (which cell of each window held the maximum) for the backward of the
 *     same batch, so the backward never searches the windows again.
 *   batch norm: backward with stored statistics (the default for unfrozen
 *     layers: the statistics are constants) or batch statistics (--bn-train,
 *     after the oneDNN forward in training mode that computed them).
 *   activation layers (relu, leaky, relu6, sigmoid, tanh): the eltwise
 *     backward from the layer's input.
 *
 * din is accumulated (+=) like the reference layers' gradients, unless the
 * caller says it may be overwritten (a gradient buffer that only this layer
 * writes): oneDNN then writes straight into it, with no zeroing, no
 * temporary and no read-add pass.  Both forms are steps of one net chosen by
 * the run mask.  Cache (be->fast[node]->tl): keyed by B and the BN mode.   */
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"

enum { FWD = 1, BWD_SET = 2, BWD_ACC = 4 };

struct dn_tl {
    int B, bn_batch_stats;
    bool unsupported;                 /* oneDNN has no primitive here: not retried every step */
    dn_net net;
    /* the caller's, re-pointed per call */
    dnnl_memory_t in, out, dout, din;
    dnnl_memory_t mean, var, scale, shift;
    dnnl_memory_t ws;                 /* max pooling workspace (net-owned) */
    dnnl_memory_t dscale, dshift;     /* batch norm parameter gradients (net-owned) */
    const float *ws_in;               /* the input the workspace was made from */
};

void dn_tl_free(struct dn_tl *t) {
    if (!t) return;
    dn_net_free(&t->net);
    free(t);
}

/* The backward step twice: writing din directly (BWD_SET) and into a
 * temporary then added to din (BWD_ACC).  args[0] is the DIFF_SRC slot. */
static gr_status add_bwd_steps(struct dn_tl *t, const_dnnl_primitive_desc_t pd, int n,
                               dnnl_exec_arg_t *args, const char *layer, gr_error *err) {
    gr_status st;
    args[0].memory = t->din;
    if ((st = dn_add_step(&t->net, pd, BWD_SET, n, args, layer, err))) return st;
    dnnl_memory_t tmp = dn_mem_slot(&t->net, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0), 1,
                                    err);
    if (!tmp) return err->code;
    args[0].memory = tmp;
    if ((st = dn_add_step(&t->net, pd, BWD_ACC, n, args, layer, err))) return st;
    return dn_add_reorder(&t->net, tmp, t->din, 1, BWD_ACC, layer, err);
}

/* The end of every build: the primitive descs go, the net's buffers come. */
static gr_status build_end(struct dn_tl *t, dnnl_primitive_desc_t pf, dnnl_primitive_desc_t pbw, gr_status st,
                           gr_error *err) {
    if (pf) dnnl_primitive_desc_destroy(pf);
    if (pbw) dnnl_primitive_desc_destroy(pbw);
    return st ? st : dn_net_finalize(&t->net, err);
}

static gr_status pool_build(const gr_model *m, int node, struct dn_tl *t, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    const gr_layer_spec *s = &n->s;
    const char *name = s->name;
    int pb = dn_pad_end(n->ih, s->kh, s->sh, s->pad_t, s->pad_b, n->oh);
    int pr = dn_pad_end(n->iw, s->kw, s->sw, s->pad_l, s->pad_r, n->ow);
    /* every window must touch the image (oneDNN divides by the cells inside) */
    if (pb < 0 || pr < 0 || pb >= s->kh || pr >= s->kw || s->pad_t >= s->kh || s->pad_l >= s->kw)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': pooling windows outside the image", name);
    gr_status st = dn_net_init(&t->net, err);
    if (st) return st;
    dnnl_memory_desc_t in_u = dn_md_nhwc(t->B, n->ic, n->ih, n->iw, dnnl_f32);
    dnnl_memory_desc_t out_u = dn_md_nhwc(t->B, n->oc, n->oh, n->ow, dnnl_f32);
    t->in = dn_mem(&t->net, &in_u, DNNL_MEMORY_NONE, err);
    t->out = dn_mem(&t->net, &out_u, DNNL_MEMORY_NONE, err);
    t->dout = dn_mem(&t->net, &out_u, DNNL_MEMORY_NONE, err);
    t->din = dn_mem(&t->net, &in_u, DNNL_MEMORY_NONE, err);
    if (!t->in || !t->out || !t->dout || !t->din) return err->code;
    dnnl_alg_kind_t alg = s->op == GR_OP_MAXPOOL ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
    dnnl_dims_t strides = {s->sh, s->sw}, kernel = {s->kh, s->kw}, pl = {s->pad_t, s->pad_l}, prr = {pb, pr};
    dnnl_pooling_desc_t fd, bd;
    DN_TRY(dnnl_pooling_forward_desc_init(&fd, dnnl_forward_training, alg, &in_u, &out_u, strides, kernel,
                                          pl, prr),
           "pooling", name);
    DN_TRY(dnnl_pooling_backward_desc_init(&bd, alg, &in_u, &out_u, strides, kernel, pl, prr),
           "pooling backward", name);
    dnnl_primitive_desc_t pf = NULL, pbw = NULL;
    st = dn_make_pd(&pf, &fd, t->net.eng, NULL, "pooling", name, err);
    if (!st) st = dn_make_pd(&pbw, &bd, t->net.eng, pf, "pooling backward", name, err);
    if (!st) {
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pf, dnnl_query_workspace_md, 0);
        bool has_ws = wmd && dnnl_memory_desc_get_size(wmd) > 0;
        if (has_ws && !(t->ws = dn_mem(&t->net, wmd, DNNL_MEMORY_ALLOCATE, err))) st = err->code;
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_SRC, t->in}, {DNNL_ARG_DST, t->out}, {DNNL_ARG_WORKSPACE, t->ws}};
        if (!st) st = dn_add_step(&t->net, pf, FWD, has_ws ? 3 : 2, a, name, err);
        dnnl_exec_arg_t b[3] = {{DNNL_ARG_DIFF_SRC, NULL}, {DNNL_ARG_DIFF_DST, t->dout},
                                {DNNL_ARG_WORKSPACE, t->ws}};
        if (!st) st = add_bwd_steps(t, pbw, has_ws ? 3 : 2, b, name, err);
    }
    return build_end(t, pf, pbw, st, err);
}

static gr_status act_build(const gr_model *m, int node, struct dn_tl *t, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    const char *name = n->s.name;
    dnnl_alg_kind_t alg;
    float a, b;
    if (dn_act_eltwise(n->s.act, n->s.alpha, &alg, &a, &b) != 1)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': activation not in oneDNN", name);
    gr_status st = dn_net_init(&t->net, err);
    if (st) return st;
    dnnl_memory_desc_t x = dn_md_nhwc(t->B, n->oc, n->oh, n->ow, dnnl_f32);
    t->in = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->dout = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->din = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    if (!t->in || !t->dout || !t->din) return err->code;
    dnnl_eltwise_desc_t fd, bd;
    DN_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, alg, &x, a, b), "eltwise", name);
    DN_TRY(dnnl_eltwise_backward_desc_init(&bd, alg, &x, &x, a, b), "eltwise backward", name);
    dnnl_primitive_desc_t pf = NULL, pbw = NULL;
    st = dn_make_pd(&pf, &fd, t->net.eng, NULL, "eltwise", name, err);
    if (!st) st = dn_make_pd(&pbw, &bd, t->net.eng, pf, "eltwise backward", name, err);
    if (!st) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_SRC, NULL}, {DNNL_ARG_SRC, t->in}, {DNNL_ARG_DIFF_DST, t->dout}};
        st = add_bwd_steps(t, pbw, 3, args, name, err);
    }
    return build_end(t, pf, pbw, st, err);
}

static gr_status bn_build(const gr_model *m, int node, struct dn_tl *t, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    const char *name = n->s.name;
    float eps = n->s.eps;
    gr_status st = dn_net_init(&t->net, err);
    if (st) return st;
    dnnl_memory_desc_t x = dn_md_nhwc(t->B, n->oc, n->oh, n->ow, dnnl_f32), c = dn_md_1d(n->oc);
    t->in = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->out = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->dout = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->din = dn_mem(&t->net, &x, DNNL_MEMORY_NONE, err);
    t->mean = dn_mem(&t->net, &c, DNNL_MEMORY_NONE, err);
    t->var = dn_mem(&t->net, &c, DNNL_MEMORY_NONE, err);
    t->scale = dn_mem(&t->net, &c, DNNL_MEMORY_NONE, err);
    t->shift = dn_mem(&t->net, &c, DNNL_MEMORY_NONE, err);
    t->dscale = dn_mem(&t->net, &c, DNNL_MEMORY_ALLOCATE, err);
    t->dshift = dn_mem(&t->net, &c, DNNL_MEMORY_ALLOCATE, err);
    if (!t->in || !t->out || !t->dout || !t->din || !t->mean || !t->var || !t->scale || !t->shift ||
        !t->dscale || !t->dshift)
        return err->code;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (t->bn_batch_stats ? 0u : dnnl_use_global_stats);
    dnnl_batch_normalization_desc_t fd, bd;
    DN_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &x, eps, flags),
           "batch normalization", name);
    DN_TRY(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &x, &x, eps, flags),
           "batch normalization backward", name);
    dnnl_primitive_desc_t pf = NULL, pbw = NULL;
    st = dn_make_pd(&pf, &fd, t->net.eng, NULL, "batch normalization", name, err);
    if (!st) st = dn_make_pd(&pbw, &bd, t->net.eng, pf, "batch normalization backward", name, err);
    if (!st && t->bn_batch_stats) {   /* the forward that computes the batch statistics */
        dnnl_exec_arg_t a[6] = {{DNNL_ARG_SRC, t->in},     {DNNL_ARG_DST, t->out},
                                {DNNL_ARG_MEAN, t->mean},  {DNNL_ARG_VARIANCE, t->var},
                                {DNNL_ARG_SCALE, t->scale}, {DNNL_ARG_SHIFT, t->shift}};
        st = dn_add_step(&t->net, pf, FWD, 6, a, name, err);
    }
    if (!st) {
        dnnl_exec_arg_t b[9] = {{DNNL_ARG_DIFF_SRC, NULL},       {DNNL_ARG_SRC, t->in},
                                {DNNL_ARG_MEAN, t->mean},        {DNNL_ARG_VARIANCE, t->var},
                                {DNNL_ARG_DIFF_DST, t->dout},    {DNNL_ARG_SCALE, t->scale},
                                {DNNL_ARG_SHIFT, t->shift},      {DNNL_ARG_DIFF_SCALE, t->dscale},
                                {DNNL_ARG_DIFF_SHIFT, t->dshift}};
        st = add_bwd_steps(t, pbw, 9, b, name, err);
    }
    return build_end(t, pf, pbw, st, err);
}

/* The node's cache for batch B (and BN mode), built on first use. */
static struct dn_tl *tl_of(gr_backend *be, int node, gr_op op, int B, int bn_batch_stats, gr_error *err) {
    const gr_model *m = be->m;
    gr_op got = node >= 0 && node < m->n_nodes ? m->nodes[node].s.op : GR_OP_INPUT;
    bool ok = op == GR_OP_MAXPOOL ? (got == GR_OP_MAXPOOL || got == GR_OP_AVGPOOL) : got == op;
    if (!ok || B <= 0) {
        gr_error_set(err, GR_ERR_ARG, "backend training layer: node %d is not a %s (batch %d)", node,
                     op == GR_OP_BATCHNORM ? "batch normalization" : op == GR_OP_ACTIVATION ? "activation" : "pooling",
                     B);
        return NULL;
    }
    const gr_node *n = &m->nodes[node];
    gr_fast *f = dn_fast_of(be, node, err);
    if (!f) return NULL;
    struct dn_tl *t = f->tl;
    if (t && (t->B != B || t->bn_batch_stats != bn_batch_stats)) {
        dn_tl_free(t);
        t = f->tl = NULL;
    }
    if (t && t->unsupported) {
        gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': not in oneDNN (batch %d)", n->s.name, B);
        return NULL;
    }
    if (t) return t;
    if (!(t = gr_calloc(1, sizeof *t, err))) return NULL;
    t->B = B;
    t->bn_batch_stats = bn_batch_stats;
    gr_status st = got == GR_OP_BATCHNORM    ? bn_build(m, node, t, err)
                   : got == GR_OP_ACTIVATION ? act_build(m, node, t, err)
                                             : pool_build(m, node, t, err);
    if (st == GR_ERR_UNSUPPORTED) {   /* remembered: the caller's reference path serves from now on */
        dn_net_free(&t->net);
        t->unsupported = true;
        f->tl = t;
        return NULL;
    }
    if (st) {
        dn_tl_free(t);
        return NULL;
    }
    return f->tl = t;
}

gr_status gr_backend_pool_forward_train(gr_backend *be, int node, const float *in, float *out, int B,
                                        gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    struct dn_tl *t = tl_of(be, node, GR_OP_MAXPOOL, B, 0, err);
    if (!t) return err->code;
    dn_set(t->in, in);
    dn_set(t->out, out);
    t->ws_in = NULL;
    gr_status st = dn_net_run(&t->net, FWD, err);
    if (st == GR_OK) t->ws_in = in;
    return st;
}

gr_status gr_backend_pool_backward(gr_backend *be, int node, const float *dout, const float *in, int B,
                                   float *din, bool overwrite, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!din) return GR_OK;
    struct dn_tl *t = tl_of(be, node, GR_OP_MAXPOOL, B, 0, err);
    if (!t) return err->code;
    /* max pooling reads the workspace of the forward of this very input */
    if (t->ws && t->ws_in != in)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': no pooling forward in training for this input",
                            be->m->nodes[node].s.name);
    dn_set(t->dout, dout);
    dn_set(t->din, din);
    return dn_net_run(&t->net, overwrite ? BWD_SET : BWD_ACC, err);
}

gr_status gr_backend_batchnorm_forward_train(gr_backend *be, int node, const float *in, float *out, int B,
                                             float *bmean, float *bvar, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    struct dn_tl *t = tl_of(be, node, GR_OP_BATCHNORM, B, 1, err);
    if (!t) return err->code;
    const gr_node *n = &be->m->nodes[node];
    dn_set(t->in, in);
    dn_set(t->out, out);
    dn_set(t->mean, bmean);
    dn_set(t->var, bvar);
    dn_set(t->scale, gr_param_cdata(be->m, n->p0));
    dn_set(t->shift, gr_param_cdata(be->m, n->p0 + 1));
    return dn_net_run(&t->net, FWD, err);
}

gr_status gr_backend_batchnorm_backward(gr_backend *be, int node, const float *dout, const float *in, int B,
                                        const float *bmean, const float *bvar, float *din, bool overwrite,
                                        float *dgamma, float *dbeta, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    bool batch = bmean != NULL;
    struct dn_tl *t = tl_of(be, node, GR_OP_BATCHNORM, B, batch, err);
    if (!t) return err->code;
    const gr_node *n = &be->m->nodes[node];
    dn_set(t->in, in);
    dn_set(t->dout, dout);
    dn_set(t->din, din);
    dn_set(t->mean, batch ? bmean : gr_param_cdata(be->m, n->p0 + 2));
    dn_set(t->var, batch ? bvar : gr_param_cdata(be->m, n->p0 + 3));
    dn_set(t->scale, gr_param_cdata(be->m, n->p0));
    dn_set(t->shift, gr_param_cdata(be->m, n->p0 + 1));
    if (!din) {
        /* oneDNN always writes diff_src: into the temporary, never added */
        gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': batch norm backward without din", n->s.name);
        return GR_ERR_UNSUPPORTED;
    }
    gr_status st = dn_net_run(&t->net, overwrite ? BWD_SET : BWD_ACC, err);
    if (st) return st;
    void *ds = NULL, *dh = NULL;
    dnnl_memory_get_data_handle(t->dscale, &ds);
    dnnl_memory_get_data_handle(t->dshift, &dh);
    for (int c = 0; c < n->oc; c++) {
        if (dgamma) dgamma[c] += ((const float *)ds)[c];
        if (dbeta) dbeta[c] += ((const float *)dh)[c];
    }
    return GR_OK;
}

gr_status gr_backend_act_backward(gr_backend *be, int node, const float *dout, const float *in, int B, float *din,
                                  bool overwrite, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!din) return GR_OK;
    struct dn_tl *t = tl_of(be, node, GR_OP_ACTIVATION, B, 0, err);
    if (!t) return err->code;
    dn_set(t->in, in);
    dn_set(t->dout, dout);
    dn_set(t->din, din);
    return dn_net_run(&t->net, overwrite ? BWD_SET : BWD_ACC, err);
}
