/* dnnl_chain.c — the speed path: a run of conv / pool / batch norm /
 * activation / add / multiply nodes run by oneDNN with activations kept in
 * oneDNN's preferred (blocked) layout between layers.  NHWC float32 only at
 * the two ends.  The run need not be a line: a node may read the run's
 * input or any earlier node of the run (residual blocks, squeeze-and-
 * excitation), and only the last node's output leaves it.  Each activation
 * lives in one of the net's arenas (dnnl_util.h) until its last reader has
 * been built, then the arena is reused.
 *
 * Fusions (inference):
 *   conv (linear) -> batchnorm          BN folded into the conv's weights/bias
 *   conv [-> bn] -> activation           activation as an eltwise post-op
 *   conv ... -> Add(conv, other) [+act]  a sum post-op: the conv accumulates
 *                                        into `other` (in place when nothing
 *                                        reads it later, else into a copy),
 *                                        the Add's activation after it
 *   Add / Mul of two activations         oneDNN's binary primitive in the
 *                                        chain's layout (SE's [B,1,1,C] scale
 *                                        broadcast over the map), in place
 *   global average pooling               a pooling window of the whole map
 *   hardsigmoid (not in oneDNN 2.6)      eltwise linear x/6 + 1/2, then clip [0, 1]
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

/* Whether the chain applies activation act: one oneDNN eltwise, or for
 * PyTorch's hardsigmoid (oneDNN 2.6 has none) two: linear x/6 + 1/2, then
 * clip to [0, 1].                                                          */
static bool act_ok(gr_act act, float alpha) {
    dnnl_alg_kind_t alg;
    float a, b;
    return act == GR_ACT_HARDSIGMOID || dn_act_eltwise(act, alpha, &alg, &a, &b) >= 0;
}

/* The eltwise steps of act (0, 1 or 2): algorithm, alpha, beta. */
static int act_steps(gr_act act, float alpha, dnnl_alg_kind_t alg[2], float a[2], float b[2]) {
    if (act == GR_ACT_HARDSIGMOID) {
        alg[0] = dnnl_eltwise_linear, a[0] = 1.0f / 6.0f, b[0] = 0.5f;
        alg[1] = dnnl_eltwise_clip, a[1] = 0.0f, b[1] = 1.0f;
        return 2;
    }
    return dn_act_eltwise(act, alpha, &alg[0], &a[0], &b[0]) > 0 ? 1 : 0;
}

bool gr_backend_chain_supports(const gr_model *m, int node) {
    const gr_node *n = &m->nodes[node];
    switch (n->s.op) {
    case GR_OP_CONV2D: return act_ok(n->s.act, n->s.alpha);
    case GR_OP_MAXPOOL:
    case GR_OP_AVGPOOL: return pool_ok(n);
    case GR_OP_GLOBAL_AVGPOOL:
    case GR_OP_BATCHNORM: return true;
    case GR_OP_ACTIVATION: return act_ok(n->s.act, n->s.alpha);
    case GR_OP_ADD: return n->n_in == 2 && act_ok(n->s.act, n->s.alpha);
    case GR_OP_MUL: return n->n_in == 2;
    default: return false;
    }
}

/* ------------------------------------------------------------ building */

/* One activation of the chain: the caller's input, or a node's output. */
typedef struct {
    dnnl_memory_t mem;
    dnnl_memory_desc_t md;
    int slot;                     /* the net's buffer (>= 1); 0: the caller's input, never written */
    int lastr;                    /* the last node of the chain reading it (-1: none) */
    int dims[4];                  /* B, C, H, W */
} dn_val;

enum { SLOT_FREE = -1, SLOT_TEMP = -2 };

typedef struct {
    struct dn_chain *c;
    const gr_backend *be;
    const gr_model *m;
    dnnl_data_type_t dt;
    int first, last;
    dn_val *v;                    /* [0] the input, [1 + k] node first + k */
    int owner[DN_MAX_BUFS];       /* per slot: the node whose output it holds, SLOT_FREE or SLOT_TEMP */
    int last_dst_step;            /* the step writing the chain's latest output */
    bool redirect_ok;             /* ... and it may write the caller's buffer instead */
    gr_error *err;
} builder;

static dn_val *val(builder *bd, int node) { return &bd->v[node < bd->first ? 0 : node - bd->first + 1]; }

/* A memory of layout md in a free slot (best fit, else the largest free
 * one, grown), which `owner` then holds.                                    */
static dnnl_memory_t new_mem(builder *bd, const dnnl_memory_desc_t *md, int owner, int *slot) {
    size_t need = dnnl_memory_desc_get_size(md);
    int best = -1;
    for (int s = 1; s < DN_MAX_BUFS; s++) {
        if (bd->owner[s] != SLOT_FREE) continue;
        size_t have = bd->c->net.buf_size[s], bh = best < 0 ? 0 : bd->c->net.buf_size[best];
        if (best < 0 || (have >= need && (bh < need || have < bh)) || (bh < need && have > bh)) best = s;
    }
    if (best < 0) {
        gr_error_set(bd->err, GR_ERR_UNSUPPORTED, "fast chain: more than %d activations alive at once",
                     DN_MAX_BUFS - 1);
        return NULL;
    }
    dnnl_memory_t m = dn_mem_slot(&bd->c->net, md, best, bd->err);
    if (!m) return NULL;
    bd->owner[best] = owner;
    *slot = best;
    return m;
}

/* The step just added wrote node's output m (layout md, in slot). */
static void set_out(builder *bd, int node, dnnl_memory_t m, const dnnl_memory_desc_t *md, int slot,
                    bool redirect_ok) {
    dn_val *v = val(bd, node);
    v->mem = m;
    v->md = *md;
    v->slot = slot;
    if (slot >= 1) bd->owner[slot] = node;
    bd->last_dst_step = bd->c->net.n_steps - 1;
    bd->redirect_ok = redirect_ok;
}

/* Frees the slots of the activations no node after `done` reads, and the temporaries. */
static void release(builder *bd, int done) {
    for (int s = 1; s < DN_MAX_BUFS; s++) {
        int o = bd->owner[s];
        if (o == SLOT_TEMP || (o >= 0 && val(bd, o)->lastr <= done && o != bd->last)) bd->owner[s] = SLOT_FREE;
    }
}

/* Node `node`'s input value in layout md: itself, or a reorder into a temporary. */
static dnnl_memory_t to_layout(builder *bd, int node, const dnnl_memory_desc_t *md, const char *layer) {
    dn_val *v = val(bd, node);
    if (dnnl_memory_desc_equal(&v->md, md)) return v->mem;
    int slot;
    dnnl_memory_t m = new_mem(bd, md, SLOT_TEMP, &slot);
    if (!m) return NULL;
    if (dn_add_reorder(&bd->c->net, v->mem, m, 0, ~0u, layer, bd->err)) return NULL;
    return m;
}

/* Node's value in the chain's data type (the caller's f32 input in a bf16 chain: converted). */
static dnnl_memory_t in_dt(builder *bd, int node, dnnl_memory_desc_t *md, const char *layer) {
    dn_val *v = val(bd, node);
    *md = v->md;
    if (v->md.data_type == bd->dt) return v->mem;
    *md = dn_md_nhwc(v->dims[0], v->dims[1], v->dims[2], v->dims[3], bd->dt);
    return to_layout(bd, node, md, layer);
}

/* A primitive attribute: user scratchpad, post-ops act1, then (sum) += dst, then act2. */
static gr_status make_attr(dnnl_primitive_attr_t *attr, gr_act act1, float alpha1, bool sum, gr_act act2,
                           float alpha2, const char *layer, gr_error *err) {
    DN_TRY(dnnl_primitive_attr_create(attr), "attr", layer);
    DN_TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attr", layer);
    dnnl_alg_kind_t alg[2], alg2[2];
    float a[2], b[2], a2[2], b2[2];
    int n1 = act_steps(act1, alpha1, alg, a, b), n2 = sum ? act_steps(act2, alpha2, alg2, a2, b2) : 0;
    if (!n1 && !sum) return GR_OK;
    dnnl_post_ops_t po;
    DN_TRY(dnnl_post_ops_create(&po), "post-ops", layer);
    dnnl_status_t st = dnnl_success;
    for (int k = 0; k < n1 && st == dnnl_success; k++) st = dnnl_post_ops_append_eltwise(po, 1.0f, alg[k], a[k], b[k]);
    if (sum && st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.0f);
    for (int k = 0; k < n2 && st == dnnl_success; k++) st = dnnl_post_ops_append_eltwise(po, 1.0f, alg2[k], a2[k], b2[k]);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
    dnnl_post_ops_destroy(po);
    if (st != dnnl_success) return dn_fail(err, st, "post-op", layer);
    return GR_OK;
}

/* Appends act as eltwise steps in place on m (layout md). */
static gr_status add_act_steps(builder *bd, dnnl_memory_t m, const dnnl_memory_desc_t *md, gr_act act, float alpha,
                               const char *layer) {
    gr_error *err = bd->err;
    dnnl_alg_kind_t alg[2];
    float a[2], b[2];
    int n = act_steps(act, alpha, alg, a, b);
    for (int k = 0; k < n; k++) {
        dnnl_eltwise_desc_t d;
        DN_TRY(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg[k], md, a[k], b[k]), "eltwise", layer);
        dnnl_primitive_desc_t pd = NULL;
        gr_status st = dn_make_pd(&pd, &d, bd->c->net.eng, NULL, "eltwise", layer, err);
        if (st) return st;
        dnnl_exec_arg_t x[2] = {{DNNL_ARG_SRC, m}, {DNNL_ARG_DST, m}};
        st = dn_add_step(&bd->c->net, pd, ~0u, 2, x, layer, err);
        dnnl_primitive_desc_destroy(pd);
        if (st) return st;
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

/* conv node i (+ folded batch norm bn, activation act, output node j) as
 * graft's Winograd with tile m: its input goes NHWC (a reorder unless it is). */
static gr_status build_wino(builder *bd, int i, int bn, int j, gr_act act, float alpha, int m) {
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
    dnnl_memory_t in = to_layout(bd, n->in[0], &src, n->s.name);
    int slot;
    dnnl_memory_t out = in ? new_mem(bd, &dst, j, &slot) : NULL;
    if (!out) return err->code;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    st = dn_add_custom_step(&bd->c->net, wino_run, cp, ~0u, 2, a, gr_wino_scratch_bytes(&cp->wino),
                            err);
    if (st) return gr_error_prefix(err, "layer '%s'", n->s.name);
    if (bn >= 0) {
        size_t need = (size_t)9 * n->ic * n->oc;
        if (need > bd->c->staging_n) bd->c->staging_n = need;
    }
    set_out(bd, j, out, &dst, slot, true);
    return GR_OK;
}

/* Whether node k of the chain reads node j as its first input and is j's only reader. */
static bool only_reader(builder *bd, int j, int k) {
    return k <= bd->last && bd->m->nodes[k].in[0] == j && val(bd, j)->lastr == k;
}

/* conv node i (+ folded bn + fused activation [+ the residual Add after it,
 * as a sum post-op: the conv accumulates into the Add's other operand]);
 * *consumed = nodes used. */
static gr_status build_conv(builder *bd, int i, int *consumed) {
    const gr_model *m = bd->m;
    const gr_node *n = &m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    int bn = -1, j = i;
    gr_act act = s->act;
    float alpha = s->alpha;
    if (act == GR_ACT_LINEAR && only_reader(bd, j, j + 1) && m->nodes[j + 1].s.op == GR_OP_BATCHNORM)
        bn = ++j;
    if (act == GR_ACT_LINEAR && only_reader(bd, j, j + 1) && m->nodes[j + 1].s.op == GR_OP_ACTIVATION &&
        act_ok(m->nodes[j + 1].s.act, m->nodes[j + 1].s.alpha)) {
        j++;
        act = m->nodes[j].s.act;
        alpha = m->nodes[j].s.alpha;
    }
    /* the residual Add reading this conv's output and one other activation */
    int add = -1, other = -1;
    if (j + 1 <= bd->last && val(bd, j)->lastr == j + 1 && m->nodes[j + 1].s.op == GR_OP_ADD &&
        m->nodes[j + 1].n_in == 2) {
        const gr_node *a = &m->nodes[j + 1];
        int o = a->in[0] == j ? a->in[1] : a->in[0];
        if ((a->in[0] == j) != (a->in[1] == j) && val(bd, o)->md.data_type == bd->dt) {
            add = j + 1;
            other = o;
        }
    }
    int B = bd->c->B, G = s->groups, ICg = n->ic / G;
    dnnl_memory_desc_t src = dn_md_any4(B, n->ic, n->ih, n->iw, bd->dt);
    dnnl_memory_desc_t dany = dn_md_any4(B, n->oc, n->oh, n->ow, bd->dt);
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
    dnnl_primitive_desc_t pd = NULL;
    gr_status st = GR_OK;
    /* with the Add fused first; without it when oneDNN has no such kernel */
    for (int fuse = add >= 0; fuse >= 0 && !pd && !st; fuse--) {
        graft_wino = 0;
        dnnl_memory_desc_t dst = fuse ? val(bd, other)->md : dany;
        dnnl_primitive_attr_t attr = NULL;
        st = make_attr(&attr, act, alpha, fuse, fuse ? m->nodes[add].s.act : GR_ACT_LINEAR,
                       fuse ? m->nodes[add].s.alpha : 0.0f, s->name, err);
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
        if (fuse && (st == GR_ERR_UNSUPPORTED || graft_wino)) {   /* try again without the Add */
            st = GR_OK;
            graft_wino = 0;
            add = -1;
        }
    }
    if (st) return st;
    *consumed = (add >= 0 ? add : j) - i + 1;
    if (graft_wino) return build_wino(bd, i, bn, j, act, alpha, gm);
    dnnl_memory_desc_t psrc = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    dnnl_memory_desc_t pw = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dn_conv_pack *cp = &bd->c->convs[bd->c->n_convs];
    memset(cp, 0, sizeof *cp);
    cp->node = i;
    cp->bn = bn;
    dnnl_memory_desc_t hwio = dn_md_hwio(s->kh, s->kw, ICg, n->oc, G);
    dnnl_memory_t in = to_layout(bd, n->in[0], &psrc, s->name), out = NULL;
    int slot = 0;
    st = in ? GR_OK : err->code;
    if (!st) {
        cp->wu = dn_mem(&bd->c->net, &hwio, DNNL_MEMORY_NONE, err);
        cp->wp = cp->wu ? dn_mem(&bd->c->net, &pw, DNNL_MEMORY_ALLOCATE, err) : NULL;
        if (cp->wp && has_bias) {
            cp->bias_owned = bn >= 0;
            cp->bias = dn_mem(&bd->c->net, &bmd, bn >= 0 ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE,
                              err);
        }
        if (!cp->wp || (has_bias && !cp->bias)) st = err->code;
    }
    if (!st && add >= 0) {
        /* the sum post-op adds what dst holds: the other operand, in place
         * when nothing reads it later, else a copy of it                   */
        dn_val *o = val(bd, other);
        if (o->slot >= 1 && o->lastr == add && other != n->in[0] && dnnl_memory_desc_equal(&o->md, &pdst)) {
            out = o->mem;
            slot = o->slot;
        } else if ((out = new_mem(bd, &pdst, add, &slot))) {
            st = dn_add_reorder(&bd->c->net, o->mem, out, 0, ~0u, s->name, err);
        }
    } else if (!st) {
        out = new_mem(bd, &pdst, j, &slot);
    }
    if (!st && !out) st = err->code;
    if (!st) st = dn_make_reorder(&bd->c->net, cp->wu, cp->wp, &cp->reorder, s->name, err);
    if (!st) {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out},
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
    /* a conv that accumulates must write where the other operand is */
    set_out(bd, add >= 0 ? add : j, out, &pdst, slot, add < 0);
    return GR_OK;
}

/* max / average pooling, or the global average pooling (a window of the whole map) */
static gr_status build_pool(builder *bd, int i) {
    const gr_node *n = &bd->m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    bool gap = s->op == GR_OP_GLOBAL_AVGPOOL;
    dnnl_memory_desc_t smd;
    dnnl_memory_t in = in_dt(bd, n->in[0], &smd, s->name);
    if (!in) return err->code;
    dnnl_memory_desc_t dst = dn_md_any4(bd->c->B, n->oc, n->oh, n->ow, bd->dt);
    dnnl_dims_t strides = {s->sh, s->sw}, kernel = {s->kh, s->kw}, pl = {s->pad_t, s->pad_l};
    dnnl_dims_t pr = {0, 0};
    if (!gap) {
        pr[0] = dn_pad_end(n->ih, s->kh, s->sh, s->pad_t, s->pad_b, n->oh);
        pr[1] = dn_pad_end(n->iw, s->kw, s->sw, s->pad_l, s->pad_r, n->ow);
    } else {
        dst = dn_md_any4(bd->c->B, n->ic, 1, 1, bd->dt);
        strides[0] = strides[1] = 1;
        kernel[0] = n->ih, kernel[1] = n->iw;
        pl[0] = pl[1] = 0;
    }
    dnnl_pooling_desc_t pdsc;
    DN_TRY(dnnl_pooling_forward_desc_init(
               &pdsc, dnnl_forward_inference,
               s->op == GR_OP_MAXPOOL ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding,
               &smd, &dst, strides, kernel, pl, pr),
           "pooling", s->name);
    dnnl_primitive_desc_t pd = NULL;
    gr_status st = dn_make_pd(&pd, &pdsc, bd->c->net.eng, NULL, "pooling", s->name, err);
    if (st) return st;
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int slot;
    dnnl_memory_t out = new_mem(bd, &pdst, i, &slot);
    st = out ? GR_OK : err->code;
    if (!st) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
        st = dn_add_step(&bd->c->net, pd, ~0u, 2, a, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    set_out(bd, i, out, &pdst, slot, true);
    return GR_OK;
}

/* The output memory of node i whose (first) input is value a in memory am
 * with layout md: a's own buffer when i is its last reader, else a new one. */
static dnnl_memory_t out_inplace(builder *bd, int i, int a, dnnl_memory_t am, const dnnl_memory_desc_t *md,
                                 bool ok, int *slot) {
    dn_val *v = val(bd, a);
    if (ok && am == v->mem && v->slot >= 1 && v->lastr == i && dnnl_memory_desc_equal(md, &v->md)) {
        *slot = v->slot;
        return v->mem;
    }
    return new_mem(bd, md, i, slot);
}

/* Batch norm (inference, stored statistics) or an activation: in place
 * when this node is its input's last reader. */
static gr_status build_inplace(builder *bd, int i) {
    const gr_node *n = &bd->m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    dnnl_memory_desc_t smd;
    dnnl_memory_t in = in_dt(bd, n->in[0], &smd, s->name);
    if (!in) return err->code;
    union { dnnl_batch_normalization_desc_t bn; dnnl_eltwise_desc_t el; } d;
    dnnl_alg_kind_t alg[2];
    float a[2], b[2];
    int na_steps = 1;
    if (s->op == GR_OP_BATCHNORM) {
        DN_TRY(dnnl_batch_normalization_forward_desc_init(
                   &d.bn, dnnl_forward_inference, &smd, s->eps,
                   dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
               "batch normalization", s->name);
    } else {
        na_steps = act_steps(s->act, s->alpha, alg, a, b);
        if (na_steps == 0) {
            alg[0] = dnnl_eltwise_linear;   /* identity: y = 1 * x + 0 */
            a[0] = 1.0f;
            b[0] = 0.0f;
        }
        DN_TRY(dnnl_eltwise_forward_desc_init(&d.el, dnnl_forward_inference, alg[0], &smd, a[0], b[0]),
               "eltwise", s->name);
    }
    dnnl_primitive_desc_t pd = NULL;
    gr_status st = dn_make_pd(&pd, &d, bd->c->net.eng, NULL, s->name, s->name, err);
    if (st) return st;
    dnnl_memory_desc_t pdst = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int slot;
    dnnl_memory_t out = out_inplace(bd, i, n->in[0], in, &pdst, true, &slot);
    st = out ? GR_OK : err->code;
    if (!st) {
        dnnl_exec_arg_t x[6] = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
        int na = 2;
        if (s->op == GR_OP_BATCHNORM) {
            dn_bn_bind *bb = &bd->c->bns[bd->c->n_bns];
            dnnl_memory_desc_t c1 = dn_md_1d(n->ic);
            bb->node = i;
            bb->mean = dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err);
            bb->var = bb->mean ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            bb->scale = bb->var ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            bb->shift = bb->scale ? dn_mem(&bd->c->net, &c1, DNNL_MEMORY_NONE, err) : NULL;
            if (!bb->shift) st = err->code;
            x[2] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, bb->mean};
            x[3] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, bb->var};
            x[4] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, bb->scale};
            x[5] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, bb->shift};
            na = 6;
            if (!st) bd->c->n_bns++;
        }
        if (!st) st = dn_add_step(&bd->c->net, pd, ~0u, na, x, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (!st && na_steps == 2) {   /* hardsigmoid's clip, in place on the output */
        dnnl_eltwise_desc_t e2;
        DN_TRY(dnnl_eltwise_forward_desc_init(&e2, dnnl_forward_inference, alg[1], &pdst, a[1], b[1]), "eltwise",
               s->name);
        st = dn_make_pd(&pd, &e2, bd->c->net.eng, NULL, "eltwise", s->name, err);
        if (!st) {
            dnnl_exec_arg_t x[2] = {{DNNL_ARG_SRC, out}, {DNNL_ARG_DST, out}};
            st = dn_add_step(&bd->c->net, pd, ~0u, 2, x, s->name, err);
            dnnl_primitive_desc_destroy(pd);
        }
        if (!st) {   /* both steps must write the caller's buffer when redirected: no */
            set_out(bd, i, out, &pdst, slot, false);
            return GR_OK;
        }
    }
    if (st) return st;
    set_out(bd, i, out, &pdst, slot, true);
    return GR_OK;
}

/* Add (residual, fused activation) or Mul (same shape, or squeeze-and-
 * excitation's [B, 1, 1, C] scale broadcast over the map): oneDNN's binary
 * primitive on the chain's layout, in place on the first operand when this
 * node is its last reader.                                                   */
static gr_status build_binary(builder *bd, int i) {
    const gr_node *n = &bd->m->nodes[i];
    const gr_layer_spec *s = &n->s;
    gr_error *err = bd->err;
    int A = n->in[0], Bn = n->in[1];
    dnnl_memory_desc_t md0, md1;
    dnnl_memory_t a = in_dt(bd, A, &md0, s->name), b = NULL;
    if (!a) return err->code;
    bool bcast = val(bd, Bn)->dims[2] * val(bd, Bn)->dims[3] == 1 && n->ih * n->iw > 1;
    if (bcast) b = in_dt(bd, Bn, &md1, s->name);
    else b = to_layout(bd, Bn, &md0, s->name), md1 = md0;
    if (!b) return err->code;
    dnnl_alg_kind_t alg = s->op == GR_OP_ADD ? dnnl_binary_add : dnnl_binary_mul;
    gr_act act = s->op == GR_OP_ADD ? s->act : GR_ACT_LINEAR;
    dnnl_primitive_desc_t pd = NULL;
    gr_status st = GR_OK;
    bool act_fused = false;
    /* the activation as a post-op, else as its own steps; a broadcast
     * scale oneDNN does not take in its layout: as plain [B, C, 1, 1]      */
    for (int k = 0; k < 4 && !pd; k++) {
        bool with_act = !(k & 1) && act != GR_ACT_LINEAR;
        if ((k & 1) && act == GR_ACT_LINEAR) continue;
        if (k == 2) {
            if (!bcast) break;
            md1 = dn_md_plain4(val(bd, Bn)->dims[0], val(bd, Bn)->dims[1], 1, 1, bd->dt);
            if (!(b = to_layout(bd, Bn, &md1, s->name))) return err->code;
        }
        dnnl_binary_desc_t d;
        DN_TRY(dnnl_binary_desc_init(&d, alg, &md0, &md1, &md0), "binary", s->name);
        dnnl_primitive_attr_t attr = NULL;
        st = make_attr(&attr, with_act ? act : GR_ACT_LINEAR, s->alpha, false, GR_ACT_LINEAR, 0.0f, s->name, err);
        dnnl_status_t ds = st ? dnnl_success : dnnl_primitive_desc_create(&pd, &d, attr, bd->c->net.eng, NULL);
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (st) return st;
        if (ds != dnnl_success && ds != dnnl_unimplemented) return dn_fail(err, ds, "binary", s->name);
        act_fused = with_act;
    }
    if (!pd) return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': no oneDNN binary for it", s->name);
    int slot;
    dnnl_memory_t out = out_inplace(bd, i, A, a, &md0, A != Bn, &slot);
    st = out ? GR_OK : err->code;
    if (!st) {
        dnnl_exec_arg_t x[3] = {{DNNL_ARG_SRC_0, a}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, out}};
        st = dn_add_step(&bd->c->net, pd, ~0u, 3, x, s->name, err);
    }
    dnnl_primitive_desc_destroy(pd);
    if (st) return st;
    bool redirect = true;
    if (!act_fused && act != GR_ACT_LINEAR) {
        if ((st = add_act_steps(bd, out, &md0, act, s->alpha, s->name))) return st;
        redirect = false;
    }
    set_out(bd, i, out, &md0, slot, redirect);
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
    dn_val *v = gr_calloc((size_t)n + 1, sizeof *v, err);
    if (!c->convs || !c->bns || !v) {
        free(v);
        return GR_ERR_NOMEM;
    }
    builder bd = {.c = c, .be = be, .m = m, .dt = dnnl_f32, .first = first, .last = last, .v = v,
                  .last_dst_step = -1, .err = err};
    for (int s = 0; s < DN_MAX_BUFS; s++) bd.owner[s] = SLOT_FREE;
    if (c->prec == GR_PRECISION_BF16) {
        if (dn_bf16_native()) bd.dt = dnnl_bf16;
        else gr_warn("bf16 requested but this CPU has no native bf16 (avx512_bf16): running f32");
    }
    const gr_node *n0 = &m->nodes[first], *nl = &m->nodes[last];
    dnnl_memory_desc_t in_md = dn_md_nhwc(B, n0->ic, n0->ih, n0->iw, dnnl_f32);
    dnnl_memory_desc_t out_md = dn_md_nhwc(B, nl->oc, nl->oh, nl->ow, dnnl_f32);
    c->in = dn_mem(&c->net, &in_md, DNNL_MEMORY_NONE, err);
    c->out = c->in ? dn_mem(&c->net, &out_md, DNNL_MEMORY_NONE, err) : NULL;
    if (!c->out) {
        free(v);
        return err->code;
    }
    v[0] = (dn_val){c->in, in_md, 0, -1, {B, n0->ic, n0->ih, n0->iw}};
    for (int i = first; i <= last; i++) {
        const gr_node *nd = &m->nodes[i];
        dn_val *o = val(&bd, i);
        o->lastr = -1;
        o->dims[0] = B, o->dims[1] = nd->oc, o->dims[2] = nd->oh, o->dims[3] = nd->ow;
        for (int k = 0; k < nd->n_in; k++) val(&bd, nd->in[k])->lastr = i;
    }
    for (int i = first; i <= last && !st;) {
        const gr_node *nd = &m->nodes[i];
        int used = 1;
        if (!gr_backend_chain_supports(m, i)) {
            free(v);
            return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': no fast path for %s",
                                nd->s.name, gr_op_name(nd->s.op));
        }
        switch (nd->s.op) {
        case GR_OP_CONV2D: st = build_conv(&bd, i, &used); break;
        case GR_OP_MAXPOOL:
        case GR_OP_AVGPOOL:
        case GR_OP_GLOBAL_AVGPOOL: st = build_pool(&bd, i); break;
        case GR_OP_ADD:
        case GR_OP_MUL: st = build_binary(&bd, i); break;
        default: st = build_inplace(&bd, i); break;
        }
        release(&bd, i + used - 1);
        i += used;
    }
    dn_val fv = *val(&bd, last);
    free(v);
    if (st) return st;
    if (dnnl_memory_desc_equal(&fv.md, &out_md) && bd.redirect_ok && bd.last_dst_step >= 0 &&
        bd.last_dst_step == c->net.n_steps - 1) {
        /* the last primitive can write the caller's NHWC buffer directly */
        dn_step *s = &c->net.steps[bd.last_dst_step];
        for (int a = 0; a < s->nargs; a++)
            if (s->args[a].arg == DNNL_ARG_DST || s->args[a].arg == DNNL_ARG_TO) s->args[a].memory = c->out;
    } else {
        st = dn_add_reorder(&c->net, fv.mem, c->out, 0, ~0u, nl->s.name, err);
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
    /* every node reads the chain's input (first's) or an earlier node of the chain */
    for (int i = first, x = m->nodes[first].in[0]; i <= last; i++) {
        const gr_node *n = &m->nodes[i];
        if (!gr_backend_chain_supports(m, i)) return GR_ERR_UNSUPPORTED;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] < first ? n->in[k] != x : n->in[k] >= i) return GR_ERR_UNSUPPORTED;
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
        if (f->fail_last1 == last + 1 && f->fail_B == B && f->fail_prec == be->precision)
            return gr_error_set(err, GR_ERR_UNSUPPORTED, "layers %d..%d: no oneDNN chain (as before)", first, last);
        c = gr_calloc(1, sizeof *c, err);
        if (!c) return GR_ERR_NOMEM;
        c->last = last;
        c->B = B;
        c->prec = be->precision;
        gr_status st = chain_build(be, first, last, B, c, err);
        if (st) {
            chain_free(c);
            if (st == GR_ERR_UNSUPPORTED) {
                f->fail_last1 = last + 1;
                f->fail_B = B;
                f->fail_prec = be->precision;
            }
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

int dn_chain_last(const struct dn_chain *c) { return c->last; }
