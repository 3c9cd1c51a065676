/* dnnl_chain.c — the speed path: a chain of conv / pool / batch norm /
 * activation nodes run by oneDNN with activations kept in oneDNN's preferred
 * (blocked) layout between layers.  NHWC float32 only at the two ends.
 *
 * Fusions (inference):
 *   conv (linear) -> batchnorm          BN folded into the conv's weights/bias
 *   conv [-> bn] -> activation           activation as an eltwise post-op
 * Precision: be->precision == GR_PRECISION_BF16 runs bf16 activations and
 * weights inside the chain (bias and the boundaries stay f32) when the CPU
 * has native bf16; otherwise f32 with a warning.
 *
 * The cache (be->fast[first]->chain) holds the primitives, keyed by
 * (last, B, precision); the packed weights are refreshed whenever the
 * model's weights change (no primitive is rebuilt for that).             */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"
#include "backend/winograd.h"

/* One conv's weights: graft HWIO (or the BN-folded copy) -> packed. */
typedef struct {
    int node, bn;                 /* conv node, folded batch-norm node or -1 */
    dnnl_memory_t wu, wp;         /* user HWIO f32, packed for the primitive */
    dnnl_memory_t bias;           /* f32 [OC] (owned when folded), or NULL */
    int bias_owned;
    dnnl_primitive_t reorder;     /* wu -> wp */
    /* graft's Winograd instead (wino_u != NULL; the fields above unused) */
    gr_wino_plan wino;
    float *wino_u;                /* transformed weights, gr_wino_weights_floats */
    float *wino_b;                /* [OC] bias (folded with the batch norm), or NULL */
} dn_conv_pack;

/* A stand-alone batch norm's parameter memories (point into m->w). */
typedef struct {
    int node;
    dnnl_memory_t mean, var, scale, shift;
} dn_bn_bind;

struct dn_chain {
    int last, B;
    gr_precision prec;
    uint64_t wver, tver;          /* the weights' versions packed (gr_model_weights_changed) */
    dn_net net;
    dnnl_memory_t in, out;        /* user NHWC f32, re-pointed per call */
    dn_conv_pack *convs;
    int n_convs;
    dn_bn_bind *bns;
    int n_bns;
    float *staging;               /* BN-folded weights of one conv (largest size) */
    size_t staging_n;
};

static void chain_free(struct dn_chain *c) {
    if (!c) return;
    dn_net_free(&c->net);
    for (int k = 0; c->convs && k < c->n_convs; k++) {
        free(c->convs[k].wino_u);
        free(c->convs[k].wino_b);
    }
    free(c->convs);
    free(c->bns);
    free(c->staging);
    free(c);
}

/* ------------------------------------------------------------ what is supported */

static int pool_ok(const gr_node *n) {
    int pb = dn_pad_end(n->ih, n->s.kh, n->s.sh, n->s.pad_t, n->s.pad_b, n->oh);
    int pr = dn_pad_end(n->iw, n->s.kw, n->s.sw, n->s.pad_l, n->s.pad_r, n->ow);
    /* every window must touch the image (oneDNN divides by the cells inside) */
    return pb >= 0 && pr >= 0 && pb < n->s.kh && pr < n->s.kw && n->s.pad_t < n->s.kh &&
           n->s.pad_l < n->s.kw;
}

bool gr_backend_chain_supports(const gr_model *m, int node) {
    const gr_node *n = &m->nodes[node];
    dnnl_alg_kind_t alg;
    float a, b;
    switch (n->s.op) {
    case GR_OP_CONV2D: return dn_act_eltwise(n->s.act, n->s.alpha, &alg, &a, &b) >= 0;
    case GR_OP_MAXPOOL:
    case GR_OP_AVGPOOL: return pool_ok(n);
    case GR_OP_BATCHNORM: return true;
    case GR_OP_ACTIVATION: return dn_act_eltwise(n->s.act, n->s.alpha, &alg, &a, &b) >= 0;
    default: return false;
    }
}

/* ------------------------------------------------------------ building */

typedef struct {
    struct dn_chain *c;
    const gr_backend *be;
    const gr_model *m;
    dnnl_data_type_t dt;
    dnnl_memory_t cur;            /* the current activation */
    dnnl_memory_desc_t cur_md;
    int cur_slot;                 /* 0 = the user input, else arena 1 or 2 */
    int last_dst_step, last_dst_arg;   /* where the latest output is written */
    gr_error *err;
} builder;

static int next_slot(const builder *bd) { return bd->cur_slot == 1 ? 2 : 1; }

/* The step just added wrote m (layout md, in slot): the chain's current activation. */
static void set_current(builder *bd, dnnl_memory_t m, const dnnl_memory_desc_t *md, int slot) {
    bd->cur = m;
    bd->cur_md = *md;
    bd->cur_slot = slot;
    bd->last_dst_step = bd->c->net.n_steps - 1;
    bd->last_dst_arg = 1;
}

/* Makes the current activation have layout md (inserting a reorder). */
static gr_status to_layout(builder *bd, const dnnl_memory_desc_t *md, const char *layer) {
    if (dnnl_memory_desc_equal(&bd->cur_md, md)) return GR_OK;
    int slot = next_slot(bd);
    dnnl_memory_t m = dn_mem_slot(&bd->c->net, md, slot, bd->err);
    if (!m) return bd->err->code;
    gr_status st = dn_add_reorder(&bd->c->net, bd->cur, m, 0, ~0u, layer, bd->err);
    if (st) return st;
    set_current(bd, m, md, slot);
    return GR_OK;
}

static gr_status attr_with_act(dnnl_primitive_attr_t *attr, gr_act act, float alpha,
                               const char *layer, gr_error *err) {
    DN_TRY(dnnl_primitive_attr_create(attr), "attr", layer);
    DN_TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attr",
           layer);
    dnnl_alg_kind_t alg;
    float a, b;
    if (dn_act_eltwise(act, alpha, &alg, &a, &b) > 0) {
        dnnl_post_ops_t po;
        DN_TRY(dnnl_post_ops_create(&po), "post-ops", layer);
        dnnl_status_t st = dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, b);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
        dnnl_post_ops_destroy(po);
        if (st != dnnl_success) return dn_fail(err, st, "post-op", layer);
    }
    return GR_OK;
}

/* graft's Winograd step (winograd.h): NHWC in, NHWC out. */
static gr_status wino_run(void *ctx, const dnnl_exec_arg_t *args, int nargs, gr_error *err) {
    const dn_conv_pack *cp = ctx;
    void *in = NULL, *out = NULL, *scratch = NULL;
    for (int a = 0; a < nargs; a++) {
        void **h = args[a].arg == DNNL_ARG_SRC ? &in : args[a].arg == DNNL_ARG_DST ? &out : &scratch;
        dnnl_memory_get_data_handle(args[a].memory, h);
    }
    return gr_wino_forward(&cp->wino, in, cp->wino_u, cp->wino_b, out, scratch, false, err);
}

/* conv node i (+ folded batch norm bn, activation act) as graft's Winograd
 * with tile m: the current activation goes NHWC (a reorder unless it is). */
static gr_status build_wino(builder *bd, int i, int bn, gr_act act, float alpha, int m) {
    const gr_node *n = &bd->m->nodes[i];
    gr_error *err = bd->err;
    int B = bd->c->B;
    dn_conv_pack *cp = &bd->c->convs[bd->c->n_convs];
    memset(cp, 0, sizeof *cp);
    cp->node = i;
    cp->bn = bn;
    gr_status st = gr_wino_plan_init(&cp->wino, B, n->ih, n->iw, n->ic, n->oh, n->ow, n->oc,
                                     n->s.pad_t, n->s.pad_l, m, act, alpha, err);
    if (st) return st;
    bd->c->n_convs++;   /* chain_free frees what follows */
    if (!(cp->wino_u = gr_malloc(gr_wino_weights_floats(&cp->wino) * sizeof(float), err)))
        return GR_ERR_NOMEM;
    if ((n->s.use_bias || bn >= 0) && !(cp->wino_b = gr_malloc((size_t)n->oc * sizeof(float), err)))
        return GR_ERR_NOMEM;
    dnnl_memory_desc_t src = dn_md_nhwc(B, n->ic, n->ih, n->iw, dnnl_f32);
    dnnl_memory_desc_t dst = dn_md_nhwc(B, n->oc, n->oh, n->ow, dnnl_f32);
    if ((st = to_layout(bd, &src, n->s.name))) return st;
    dnnl_memory_t out = dn_mem_slot(&bd->c->net, &dst, next_slot(bd), err);
    if (!out) return err->code;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, bd->cur}, {DNNL_ARG_DST, out}};
    st = dn_add_custom_step(&bd->c->net, wino_run, cp, ~0u, 2, a, gr_wino_scratch_bytes(&cp->wino),
                            err);
    if (st) return gr_error_prefix(err, "layer '%s'", n->s.name);
    if (bn >= 0) {
        size_t need = (size_t)9 * n->ic * n->oc;
        if (need > bd->c->staging_n) bd->c->staging_n = need;
    }
    set_current(bd, out, &dst, next_slot(bd));
    return GR_OK;
}

/* conv node i (+ folded bn + fused activation); *consumed = nodes used. */
static gr_status build_conv(builder *bd, int i, int last, int *consumed) {
    const gr_model *m = bd->m;
    const gr_node *n = &m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    int bn = -1, j = i;
    gr_act act = s->act;
    float alpha = s->alpha;
    if (act == GR_ACT_LINEAR && j + 1 <= last && m->nodes[j + 1].s.op == GR_OP_BATCHNORM)
        bn = ++j;
    if (act == GR_ACT_LINEAR && j + 1 <= last && m->nodes[j + 1].s.op == GR_OP_ACTIVATION) {
        dnnl_alg_kind_t alg;
        float a, b;
        if (dn_act_eltwise(m->nodes[j + 1].s.act, 0, &alg, &a, &b) > 0) {
            j++;
            act = m->nodes[j].s.act;
            alpha = m->nodes[j].s.alpha;
        }
    }
    *consumed = j - i + 1;
    int B = bd->c->B, G = s->groups, ICg = n->ic / G;
    dnnl_memory_desc_t src = dn_md_any4(B, n->ic, n->ih, n->iw, bd->dt);
    dnnl_memory_desc_t dst = dn_md_any4(B, n->oc, n->oh, n->ow, bd->dt);
    dnnl_memory_desc_t wany = dn_md_weights_any(s->kh, s->kw, ICg, n->oc, G, bd->dt);
    dnnl_memory_desc_t bmd = dn_md_1d(n->oc);
    int has_bias = s->use_bias || bn >= 0;
    /* oneDNN counts dilation from 0 (no gap between taps) */
    int DH = s->dh > 1 ? s->dh : 1, DW = s->dw > 1 ? s->dw : 1;
    dnnl_dims_t strides = {s->sh, s->sw}, pl = {s->pad_t, s->pad_l}, dil = {DH - 1, DW - 1};
    dnnl_dims_t pr = {dn_pad_end(n->ih, (s->kh - 1) * DH + 1, s->sh, s->pad_t, s->pad_b, n->oh),
                      dn_pad_end(n->iw, (s->kw - 1) * DW + 1, s->sw, s->pad_l, s->pad_r, n->ow)};
    /* f32 3x3 stride-1 convs with 16+ channels: Winograd F(4x4, 3x3) (2.25x
     * fewer multiplies; measured ~2x faster than direct on VGG16 layers here,
     * at the price of 4x larger packed weights); everything else, and any
     * shape Winograd refuses: direct. */
    /* A conv a trainer updates is re-packed every step, and oneDNN's
     * Winograd weight transform (plain code: ~12 ns per weight, 30 ms for
     * 512x512) then costs more than it saves unless the batch has many
     * output pixels (it saves ~7 ps per weight and output pixel): a
     * trainable conv uses oneDNN's from 2048 pixels on (VGG16 32x32 batch
     * 64: blocks 1-3 yes, blocks 4-5 no).                                   */
    /* graft's own weight transform (winograd.h, ~0.3 ns per weight with
     * AVX2) pays from 256 output pixels (VGG16 32x32 batch 64: all blocks) */
    int wino_ok = bd->dt == dnnl_f32 && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 &&
                  DH == 1 && DW == 1 && G == 1 && n->ic >= 16 && n->oc >= 16 && bd->be->winograd;
    int64_t px = (int64_t)bd->c->B * n->oh * n->ow;
    int wino = wino_ok && (!dn_training(bd->be, i) || px >= 2048);
    /* where oneDNN has no Winograd (AVX2 and older CPUs), graft's own */
    int gm = wino_ok && (!dn_training(bd->be, i) || px >= 256) ? gr_wino_choose(n->oh, n->ow, n->ic, n->oc, act)
                                                                : 0,
        graft_wino = 0;
    dnnl_primitive_attr_t attr = NULL;
    gr_status st = attr_with_act(&attr, act, alpha, s->name, err);
    dnnl_primitive_desc_t pd = NULL;
    for (int tries = wino || gm ? 2 : 1; st == GR_OK && !pd && !graft_wino && tries > 0; tries--) {
        dnnl_convolution_desc_t cd;
        dnnl_alg_kind_t alg = tries == 2 ? dnnl_convolution_winograd : dnnl_convolution_direct;
        dnnl_status_t ds = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &src,
                                                                      &wany, has_bias ? &bmd : NULL, &dst,
                                                                      strides, dil, pl, pr);
        if (ds == dnnl_success) ds = dnnl_primitive_desc_create(&pd, &cd, attr, bd->c->net.eng, NULL);
        if (ds == dnnl_success && tries == 2 && !wino) {   /* oneDNN's, too few pixels for its transform */
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
            continue;
        }
        if (ds == dnnl_unimplemented && tries == 2 && gm) graft_wino = 1;
        else if (ds != dnnl_success && (tries == 1 || ds != dnnl_unimplemented))
            st = dn_fail(err, ds, "convolution", s->name);
    }
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st) return st;
    if (graft_wino) return build_wino(bd, i, bn, act, alpha, gm);
    dnnl_memory_desc_t psrc = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t pw = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dn_conv_pack *cp = &bd->c->convs[bd->c->n_convs];
    memset(cp, 0, sizeof *cp);
    cp->node = i;
    cp->bn = bn;
    dnnl_memory_desc_t hwio = dn_md_hwio(s->kh, s->kw, ICg, n->oc, G);
    st = to_layout(bd, &psrc, s->name);
    dnnl_memory_t out = NULL;
    if (!st) {
        cp->wu = dn_mem(&bd->c->net, &hwio, DNNL_MEMORY_NONE, err);
        cp->wp = cp->wu ? dn_mem(&bd->c->net, &pw, DNNL_MEMORY_ALLOCATE, err) : NULL;
        if (cp->wp && has_bias) {
            cp->bias_owned = bn >= 0;
            cp->bias = dn_mem(&bd->c->net, &bmd, bn >= 0 ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE,
                              err);
        }
        out = cp->wp && (cp->bias || !has_bias) ? dn_mem_slot(&bd->c->net, &pdst, next_slot(bd), err)
                                                : NULL;
        if (!out) st = err->code;
    }
    if (!st) st = dn_make_reorder(&bd->c->net, cp->wu, cp->wp, &cp->reorder, s->name, err);
    if (!st) {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, bd->cur}, {DNNL_ARG_DST, out},
                                {DNNL_ARG_WEIGHTS, cp->wp}, {DNNL_ARG_BIAS, cp->bias}};
        st = dn_add_step(&bd->c->net, pd, ~0u, has_bias ? 4 : 3, a, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    bd->c->n_convs++;
    if (bn >= 0) {
        size_t need = (size_t)s->kh * s->kw * ICg * n->oc;
        if (need > bd->c->staging_n) bd->c->staging_n = need;
    }
    set_current(bd, out, &pdst, next_slot(bd));
    return GR_OK;
}

static gr_status build_pool(builder *bd, int i) {
    const gr_node *n = &bd->m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    dnnl_memory_desc_t dst = dn_md_any4(bd->c->B, n->oc, n->oh, n->ow, bd->dt);
    dnnl_dims_t strides = {s->sh, s->sw}, kernel = {s->kh, s->kw}, pl = {s->pad_t, s->pad_l};
    dnnl_dims_t pr = {dn_pad_end(n->ih, s->kh, s->sh, s->pad_t, s->pad_b, n->oh),
                      dn_pad_end(n->iw, s->kw, s->sw, s->pad_l, s->pad_r, n->ow)};
    dnnl_pooling_desc_t pdsc;
    DN_TRY(dnnl_pooling_forward_desc_init(
               &pdsc, dnnl_forward_inference,
               s->op == GR_OP_MAXPOOL ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding,
               &bd->cur_md, &dst, strides, kernel, pl, pr),
           "pooling", s->name);
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr", s->name);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t ds = dnnl_primitive_desc_create(&pd, &pdsc, attr, bd->c->net.eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (ds != dnnl_success) return dn_fail(err, ds, "pooling", s->name);
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_t out = dn_mem_slot(&bd->c->net, &pdst, next_slot(bd), err);
    gr_status st = out ? GR_OK : err->code;
    if (!st) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, bd->cur}, {DNNL_ARG_DST, out}};
        st = dn_add_step(&bd->c->net, pd, ~0u, 2, a, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    set_current(bd, out, &pdst, next_slot(bd));
    return GR_OK;
}

/* Batch norm (inference, stored statistics) or an activation: in place on
 * the current arena, or into a new one when the current is the user input. */
static gr_status build_inplace(builder *bd, int i) {
    const gr_node *n = &bd->m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    union { dnnl_batch_normalization_desc_t bn; dnnl_eltwise_desc_t el; } d;
    if (s->op == GR_OP_BATCHNORM) {
        DN_TRY(dnnl_batch_normalization_forward_desc_init(
                   &d.bn, dnnl_forward_inference, &bd->cur_md, s->eps,
                   dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
               "batch normalization", s->name);
    } else {
        dnnl_alg_kind_t alg;
        float a, b;
        if (dn_act_eltwise(s->act, s->alpha, &alg, &a, &b) == 0) {
            alg = dnnl_eltwise_linear;   /* identity: y = 1 * x + 0 */
            a = 1.0f;
            b = 0.0f;
        }
        DN_TRY(dnnl_eltwise_forward_desc_init(&d.el, dnnl_forward_inference, alg, &bd->cur_md, a, b),
               "eltwise", s->name);
    }
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr", s->name);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t ds = dnnl_primitive_desc_create(&pd, &d, attr, bd->c->net.eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (ds != dnnl_success) return dn_fail(err, ds, s->name, s->name);
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int slot = bd->cur_slot;
    dnnl_memory_t out = bd->cur;
    if (!bd->cur_slot || !dnnl_memory_desc_equal(&pdst, &bd->cur_md)) {
        slot = next_slot(bd);
        out = dn_mem_slot(&bd->c->net, &pdst, slot, err);
    }
    gr_status st = out ? GR_OK : err->code;
    if (!st) {
        dnnl_exec_arg_t a[6] = {{DNNL_ARG_SRC, bd->cur}, {DNNL_ARG_DST, out}};
        int na = 2;
        if (s->op == GR_OP_BATCHNORM) {
            dn_bn_bind *b = &bd->c->bns[bd->c->n_bns];
            dnnl_memory_desc_t c1 = dn_md_1d(n->ic);
            b->node = i;
            b->mean = dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err);
            b->var = b->mean ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            b->scale = b->var ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            b->shift = b->scale ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            if (!b->shift) st = err->code;
            a[2] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, b->mean};
            a[3] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, b->var};
            a[4] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, b->scale};
            a[5] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, b->shift};
            na = 6;
            if (!st) bd->c->n_bns++;
        }
        if (!st) st = dn_add_step(&bd->c->net, pd, ~0u, na, a, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    set_current(bd, out, &pdst, slot);
    return GR_OK;
}

static gr_status chain_build(const gr_backend *be, int first, int last, int B, struct dn_chain *c,
                             gr_error *err) {
    const gr_model *m = be->m;
    gr_status st = dn_net_init(&c->net, err);
    if (st) return st;
    int n = last - first + 1;
    c->convs = gr_calloc((size_t)n, sizeof *c->convs, err);
    c->bns = gr_calloc((size_t)n, sizeof *c->bns, err);
    if (!c->convs || !c->bns) return GR_ERR_NOMEM;
    builder bd = {c, be, m, dnnl_f32, NULL, {0}, 0, -1, 0, err};
    if (c->prec == GR_PRECISION_BF16) {
        if (dn_bf16_native()) bd.dt = dnnl_bf16;
        else gr_warn("bf16 requested but this CPU has no native bf16 (avx512_bf16): running f32");
    }
    const gr_node *n0 = &m->nodes[first], *nl = &m->nodes[last];
    dnnl_memory_desc_t in_md = dn_md_nhwc(B, n0->ic, n0->ih, n0->iw, dnnl_f32);
    dnnl_memory_desc_t out_md = dn_md_nhwc(B, nl->oc, nl->oh, nl->ow, dnnl_f32);
    c->in = dn_mem(&c->net, &in_md, DNNL_MEMORY_NONE, err);
    c->out = c->in ? dn_mem(&c->net, &out_md, DNNL_MEMORY_NONE, err) : NULL;
    if (!c->out) return err->code;
    bd.cur = c->in;
    bd.cur_md = in_md;
    for (int i = first; i <= last && !st;) {
        const gr_node *nd = &m->nodes[i];
        int used = 1;
        if (!gr_backend_chain_supports(m, i))
            return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': no fast path for %s",
                                nd->s.name, gr_op_name(nd->s.op));
        switch (nd->s.op) {
        case GR_OP_CONV2D: st = build_conv(&bd, i, last, &used); break;
        default:
            /* a bf16 chain that starts with a pool / bn / activation: convert the input */
            if (bd.cur_slot == 0 && bd.dt != dnnl_f32) {
                dnnl_memory_desc_t b16 = dn_md_nhwc(B, nd->ic, nd->ih, nd->iw, bd.dt);
                st = to_layout(&bd, &b16, nd->s.name);
            }
            if (st) break;
            if (nd->s.op == GR_OP_MAXPOOL || nd->s.op == GR_OP_AVGPOOL) st = build_pool(&bd, i);
            else st = build_inplace(&bd, i);
            break;
        }
        i += used;
    }
    if (st) return st;
    if (dnnl_memory_desc_equal(&bd.cur_md, &out_md) && bd.last_dst_step >= 0) {
        /* the last primitive can write the caller's NHWC buffer directly */
        dn_step *s = &c->net.steps[bd.last_dst_step];
        for (int a = 0; a < s->nargs; a++)
            if (s->args[a].arg == DNNL_ARG_DST || s->args[a].arg == DNNL_ARG_TO) s->args[a].memory = c->out;
    } else {
        st = dn_add_reorder(&c->net, bd.cur, c->out, 0, ~0u, nl->s.name, err);
        if (st) return st;
    }
    if (c->staging_n) {
        c->staging = gr_malloc(c->staging_n * sizeof(float), err);
        if (!c->staging) return GR_ERR_NOMEM;
    }
    return dn_net_finalize(&c->net, err);
}

/* Refreshes packed weights and parameter pointers from m->w. */
static gr_status chain_pack(const gr_model *m, struct dn_chain *c, gr_error *err) {
    for (int k = 0; k < c->n_convs; k++) {
        dn_conv_pack *cp = &c->convs[k];
        const gr_node *n = &m->nodes[cp->node];
        int OC = n->oc;
        const float *w = gr_param_cdata(m, gr_node_param(m, cp->node, "kernel"));
        int pb = gr_node_param(m, cp->node, "bias");
        const float *b = pb >= 0 ? gr_param_cdata(m, pb) : NULL;
        if (cp->bn < 0) {
            if (cp->wino_u) {
                if (cp->wino_b) memcpy(cp->wino_b, b, (size_t)OC * sizeof(float));
                gr_wino_weights(&cp->wino, w, cp->wino_u);
                continue;
            }
            dn_set(cp->wu, w);
            if (cp->bias) dn_set(cp->bias, b);
        } else {
            const gr_node *bn = &m->nodes[cp->bn];
            const float *g = gr_param_cdata(m, gr_node_param(m, cp->bn, "gamma"));
            const float *be = gr_param_cdata(m, gr_node_param(m, cp->bn, "beta"));
            const float *mu = gr_param_cdata(m, gr_node_param(m, cp->bn, "moving_mean"));
            const float *var = gr_param_cdata(m, gr_node_param(m, cp->bn, "moving_variance"));
            float *fb = cp->wino_b;
            if (!fb) dnnl_memory_get_data_handle(cp->bias, (void **)&fb);
            size_t nw = (size_t)n->s.kh * n->s.kw * (n->ic / n->s.groups) * OC;
            for (int o = 0; o < OC; o++) {
                float sc = g[o] / sqrtf(var[o] + bn->s.eps);
                fb[o] = ((b ? b[o] : 0.0f) - mu[o]) * sc + be[o];
            }
            for (size_t r = 0; r < nw / (size_t)OC; r++)
                for (int o = 0; o < OC; o++) {
                    float sc = g[o] / sqrtf(var[o] + bn->s.eps);
                    c->staging[r * OC + o] = w[r * OC + o] * sc;
                }
            if (cp->wino_u) {
                gr_wino_weights(&cp->wino, c->staging, cp->wino_u);
                continue;
            }
            dn_set(cp->wu, c->staging);
        }
        gr_status st = dn_exec_reorder(&c->net, cp->reorder, cp->wu, cp->wp, err);
        if (st) return gr_error_prefix(err, "layer '%s'", n->s.name);
    }
    for (int k = 0; k < c->n_bns; k++) {
        dn_bn_bind *b = &c->bns[k];
        dn_set(b->scale, gr_param_cdata(m, gr_node_param(m, b->node, "gamma")));
        dn_set(b->shift, gr_param_cdata(m, gr_node_param(m, b->node, "beta")));
        dn_set(b->mean, gr_param_cdata(m, gr_node_param(m, b->node, "moving_mean")));
        dn_set(b->var, gr_param_cdata(m, gr_node_param(m, b->node, "moving_variance")));
    }
    return GR_OK;
}

gr_status gr_backend_forward_chain(gr_backend *be, int first, int last, const float *in,
                                   float *out, int B, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_model *m = be->m;
    if (first < 0 || last < first || last >= be->n_nodes || B <= 0)
        return gr_error_set(err, GR_ERR_ARG, "fast chain: nodes %d..%d of %d, batch %d", first,
                            last, be->n_nodes, B);
    for (int i = first; i <= last; i++) {
        const gr_node *n = &m->nodes[i];
        if (!gr_backend_chain_supports(m, i) || n->n_in != 1 || (i > first && n->in[0] != i - 1))
            return GR_ERR_UNSUPPORTED;
    }
    gr_fast *f = dn_fast_of(be, first, err);
    if (!f) return err->code;
    /* a node alone has its own slot: per-node calls and the executor's
     * chain from the same node do not evict each other */
    struct dn_chain **slot = first == last ? &f->single : &f->chain;
    struct dn_chain *c = *slot;
    if (c && (c->last != last || c->B != B || c->prec != be->precision)) {
        chain_free(c);
        c = *slot = NULL;
    }
    if (!c) {
        c = gr_calloc(1, sizeof *c, err);
        if (!c) return GR_ERR_NOMEM;
        c->last = last;
        c->B = B;
        c->prec = be->precision;
        gr_status st = chain_build(be, first, last, B, c, err);
        if (st) {
            chain_free(c);
            return st;
        }
        c->wver = m->w_version - 1;   /* force a pack */
        *slot = c;
    }
    if (gr_model_weights_changed(m, last, &c->wver, &c->tver)) {
        gr_status st = chain_pack(m, c, err);
        if (st) {
            chain_free(c);
            *slot = NULL;
            return st;
        }
    }
    dn_set(c->in, in);
    dn_set(c->out, out);
    return dn_net_run(&c->net, ~0u, err);
}

void dn_chain_free(struct dn_chain *c) { chain_free(c); }
