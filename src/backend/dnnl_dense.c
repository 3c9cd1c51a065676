/* dnnl_dense.c — dense (inner product) inference forward through oneDNN.
 * in [B, IN] f32, kernel [IN, OUT] (Keras order), bias [OUT], out [B, OUT].
 * relu / leaky / relu6 / sigmoid / tanh are fused as a post-op; softmax is
 * applied afterwards by the reference softmax (over OUT).  Always f32.
 * Cache (be->fast[node]->dense): the primitive keyed by B; the packed
 * kernel is refreshed when the model's weights change.                     */
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"

struct dn_dense {
    int B;
    uint64_t wver, tver;
    dn_net net;
    dnnl_memory_t src, dst, wu, wp, bias;
    dnnl_primitive_t reorder;     /* wu -> wp */
};

void dn_dense_free(struct dn_dense *d) {
    if (!d) return;
    dn_net_free(&d->net);
    free(d);
}

static gr_status dense_build(const gr_model *m, int node, int B, struct dn_dense *d, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    const char *name = n->s.name;
    int IN = n->ic * n->ih * n->iw, OUT = n->oc;
    gr_status st = dn_net_init(&d->net, err);
    if (st) return st;
    dnnl_memory_desc_t src = dn_md_2d(B, IN, dnnl_nc, dnnl_f32);
    dnnl_memory_desc_t dst = dn_md_2d(B, OUT, dnnl_nc, dnnl_f32);
    dnnl_memory_desc_t wany = dn_md_2d(OUT, IN, dnnl_format_tag_any, dnnl_f32);
    dnnl_memory_desc_t wio = dn_md_2d(OUT, IN, dnnl_io, dnnl_f32);   /* [IN][OUT] */
    dnnl_memory_desc_t bmd = dn_md_1d(OUT);
    int has_bias = gr_node_param(m, node, "bias") >= 0;
    dnnl_inner_product_desc_t ipd;
    DN_TRY(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src, &wany,
                                                has_bias ? &bmd : NULL, &dst),
           "inner product", name);
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr", name);
    dnnl_status_t ds = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_alg_kind_t alg;
    float a, b;
    if (ds == dnnl_success && dn_act_eltwise(n->s.act, n->s.alpha, &alg, &a, &b) > 0) {
        dnnl_post_ops_t po = NULL;
        ds = dnnl_post_ops_create(&po);
        if (ds == dnnl_success) ds = dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, b);
        if (ds == dnnl_success) ds = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (ds == dnnl_success) ds = dnnl_primitive_desc_create(&pd, &ipd, attr, d->net.eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (ds != dnnl_success) return dn_fail(err, ds, "inner product", name);
    dnnl_memory_desc_t pw = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    d->src = dn_mem(&d->net, &src, DNNL_MEMORY_NONE, err);
    d->dst = d->src ? dn_mem(&d->net, &dst, DNNL_MEMORY_NONE, err) : NULL;
    d->wu = d->dst ? dn_mem(&d->net, &wio, DNNL_MEMORY_NONE, err) : NULL;
    d->wp = d->wu ? dn_mem(&d->net, &pw, DNNL_MEMORY_ALLOCATE, err) : NULL;
    d->bias = d->wp && has_bias ? dn_mem(&d->net, &bmd, DNNL_MEMORY_NONE, err) : NULL;
    st = d->wp && (d->bias || !has_bias) ? GR_OK : err->code;
    if (!st) st = dn_make_reorder(&d->net, d->wu, d->wp, &d->reorder, name, err);
    if (!st) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, d->src}, {DNNL_ARG_DST, d->dst},
                                   {DNNL_ARG_WEIGHTS, d->wp}, {DNNL_ARG_BIAS, d->bias}};
        st = dn_add_step(&d->net, pd, ~0u, has_bias ? 4 : 3, args, name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    return dn_net_finalize(&d->net, err);
}

gr_status dn_dense_forward(gr_backend *be, int node, const float *in, float *out, int B,
                           gr_error *err) {
    const gr_model *m = be->m;
    const gr_node *n = &m->nodes[node];
    if (n->s.act != GR_ACT_SOFTMAX && n->s.act != GR_ACT_LINEAR) {
        dnnl_alg_kind_t alg;
        float a, b;
        if (dn_act_eltwise(n->s.act, n->s.alpha, &alg, &a, &b) < 0) return GR_ERR_UNSUPPORTED;
    }
    gr_fast *f = dn_fast_of(be, node, err);
    if (!f) return err->code;
    struct dn_dense *d = f->dense;
    if (d && d->B != B) {
        dn_dense_free(d);
        d = f->dense = NULL;
    }
    if (!d) {
        d = gr_calloc(1, sizeof *d, err);
        if (!d) return GR_ERR_NOMEM;
        d->B = B;
        gr_status st = dense_build(m, node, B, d, err);
        if (st) {
            dn_dense_free(d);
            return st;
        }
        d->wver = m->w_version - 1;
        f->dense = d;
    }
    if (gr_model_weights_changed(m, node, &d->wver, &d->tver)) {
        dn_set(d->wu, gr_param_cdata(m, gr_node_param(m, node, "kernel")));
        if (d->bias) dn_set(d->bias, gr_param_cdata(m, gr_node_param(m, node, "bias")));
        gr_status st = dn_exec_reorder(&d->net, d->reorder, d->wu, d->wp, err);
        if (st) {
            d->wver = m->w_version - 1;   /* not packed: retry next time */
            return gr_error_prefix(err, "layer '%s'", n->s.name);
        }
    }
    dn_set(d->src, in);
    dn_set(d->dst, out);
    gr_status st = dn_net_run(&d->net, ~0u, err);
    if (st) return st;
    if (n->s.act == GR_ACT_SOFTMAX) gr_softmax_forward(out, out, B, n->oc);
    return GR_OK;
}
