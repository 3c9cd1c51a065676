/* dnnl_backward.c — conv2d and dense backward (data, weights, bias)
 * through oneDNN, for the trainer.  Same contract as the reference
 * gr_conv2d_backward / gr_dense_backward: gradients are ACCUMULATED (+=)
 * into the caller's NHWC / HWIO / [IN][OUT] buffers, NULL ones skipped;
 * din may instead be overwritten (gr_backend_conv2d_backward_ow).
 *
 * Layouts inside are NHWC when oneDNN serves it (no reorders), blocked for
 * Winograd; the caller's tensors are then reordered in and the results
 * reordered out with a sum post-op (dst += src).  The weights are reordered
 * on every call (they change every training step).  The blocked copies and
 * the scratchpad live in the backend's shared backward buffers (one layer
 * runs at a time).  Cache (be->fast[node]->bwd): keyed by B.              */
#include <stdlib.h>
#include <string.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"
#include "backend/winograd.h"

/* Winograd backward from this many output pixels per batch (see conv_build) */
#define WINO_BWD_PIXELS 1024
/* graft's Winograd backward (where oneDNN has none) from this many output
 * pixels per batch: below it the weight transform (per step, the weights
 * change) costs more than the GEMMs save (see conv_build) */
#define GRAFT_WINO_BWD_PIXELS 256

/* NEED_DIN: din += ...; NEED_DIN_SET: din = ... (the overwrite form) */
enum { NEED_DIN = 1, NEED_DW = 2, NEED_DB = 4, NEED_DIN_SET = 8 };

struct dn_bwd {
    int B;
    const gr_backend *be;
    bool unsupported;   /* oneDNN has no primitive here: not retried every step */
    dn_net net;
    dnnl_memory_t dout, in, w, din, dw, db;   /* the caller's, re-pointed per call */
    /* graft's Winograd (winograd.h) for the data / weight gradient where
     * oneDNN has no Winograd (AVX2): their plans; the oneDNN steps of those
     * parts are then not run */
    bool wino_d, wino_w;
    gr_wino_plan wd, ww;
};

void dn_bwd_free(struct dn_bwd *b) {
    if (!b) return;
    dn_net_free(&b->net);
    free(b);
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t q) {
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

/* The memory a primitive reads for the caller's `user`: user itself when the
 * layouts agree, else a net-owned copy filled by a reorder step. */
static dnnl_memory_t read_as(struct dn_bwd *b, dnnl_memory_t user, const dnnl_memory_desc_t *want,
                             int slot, unsigned need, const char *layer, gr_error *err) {
    const dnnl_memory_desc_t *have = NULL;
    dnnl_memory_get_memory_desc(user, &have);
    if (dnnl_memory_desc_equal(have, want)) return user;
    dnnl_memory_t m = dn_mem_slot(&b->net, want, slot, err);
    if (!m || dn_add_reorder(&b->net, user, m, 0, need, layer, err)) return NULL;
    return m;
}

/* Builds the steps from the three primitive descs (forward hint already
 * used): data path (NEED_DIN) and weights path (NEED_DW | NEED_DB). */
static gr_status build_steps(struct dn_bwd *b, const_dnnl_primitive_desc_t pdd,
                             const_dnnl_primitive_desc_t pdw, int has_bias, const char *layer,
                             gr_error *err) {
    dn_net *net = &b->net;
    gr_status st;
    /* data: din += conv_bwd_data(dout, w), or din = ... (NEED_DIN_SET): when
     * din's layout is the primitive's, straight into din */
    const unsigned nd = NEED_DIN | NEED_DIN_SET;
    const dnnl_memory_desc_t *dsmd = md_of(pdd, dnnl_query_diff_src_md), *dinmd = NULL;
    dnnl_memory_get_memory_desc(b->din, &dinmd);
    bool direct = dnnl_memory_desc_equal(dsmd, dinmd);
    /* slots (the model's shared buffers): data path dout 1, weights 2,
     * din 3; then the weights path reuses them: dout 1 (the same copy when
     * both paths want one layout), src 2, dw 3 */
    unsigned nw = NEED_DW | NEED_DB;
    bool same_dd = dnnl_memory_desc_equal(md_of(pdd, dnnl_query_diff_dst_md), md_of(pdw, dnnl_query_diff_dst_md));
    dnnl_memory_t dd = read_as(b, b->dout, md_of(pdd, dnnl_query_diff_dst_md), 1, same_dd ? nd | nw : nd, layer,
                               err);
    dnnl_memory_t w = dd ? dn_mem_slot(net, md_of(pdd, dnnl_query_weights_md), 2, err) : NULL;
    dnnl_memory_t ds = w ? dn_mem_slot(net, dsmd, 3, err) : NULL;
    if (!ds) return err->code;
    if ((st = dn_add_reorder(net, b->w, w, 0, nd, layer, err))) return st;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, ds}};
    if ((st = dn_add_step(net, pdd, direct ? NEED_DIN : nd, 3, a, layer, err))) return st;
    if ((st = dn_add_reorder(net, ds, b->din, 1, NEED_DIN, layer, err))) return st;
    if (direct) {
        a[2].memory = b->din;
        if ((st = dn_add_step(net, pdd, NEED_DIN_SET, 3, a, layer, err))) return st;
    } else if ((st = dn_add_reorder(net, ds, b->din, 0, NEED_DIN_SET, layer, err))) {
        return st;
    }
    /* weights: dw += ..., db += ... */
    dnnl_memory_t dd2 = same_dd ? dd : read_as(b, b->dout, md_of(pdw, dnnl_query_diff_dst_md), 1, nw, layer, err);
    dnnl_memory_t src = dd2 ? read_as(b, b->in, md_of(pdw, dnnl_query_src_md), 2, nw, layer, err) : NULL;
    dnnl_memory_t dw = src ? dn_mem_slot(net, md_of(pdw, dnnl_query_diff_weights_md), 3, err) : NULL;
    if (!dw) return err->code;
    dnnl_memory_t db = NULL;
    if (has_bias) {
        const dnnl_memory_desc_t *bmd = dnnl_primitive_desc_query_md(pdw, dnnl_query_diff_weights_md, 1);
        db = dn_mem(net, bmd, DNNL_MEMORY_ALLOCATE, err);
        if (!db) return err->code;
    }
    dnnl_exec_arg_t c[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dd2}, {DNNL_ARG_DIFF_WEIGHTS, dw},
                            {DNNL_ARG_DIFF_BIAS, db}};
    if ((st = dn_add_step(net, pdw, nw, has_bias ? 4 : 3, c, layer, err))) return st;
    if ((st = dn_add_reorder(net, dw, b->dw, 1, NEED_DW, layer, err))) return st;
    if (has_bias && (st = dn_add_reorder(net, db, b->db, 1, NEED_DB, layer, err))) return st;
    return dn_net_finalize(net, err);
}

/* Whether pd's implementation is one of oneDNN's reference kernels. */
static bool is_ref(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return false;
    return strncmp(impl, "ref", 3) == 0;
}

static gr_status conv_build(const gr_model *m, int node, int B, struct dn_bwd *b, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    const gr_layer_spec *s = &n->s;
    const char *name = s->name;
    int G = s->groups, ICg = n->ic / G, has_bias = gr_node_param(m, node, "bias") >= 0;
    gr_status st = dn_net_init(&b->net, err);
    if (st) return st;
    b->net.lent = true;   /* scratchpad and blocked copies in the backend's shared buffers */
    dnnl_memory_desc_t in_u = dn_md_nhwc(B, n->ic, n->ih, n->iw, dnnl_f32);
    dnnl_memory_desc_t out_u = dn_md_nhwc(B, n->oc, n->oh, n->ow, dnnl_f32);
    dnnl_memory_desc_t w_u = dn_md_hwio(s->kh, s->kw, ICg, n->oc, G);
    dnnl_memory_desc_t b_u = dn_md_1d(n->oc);
    dnnl_memory_desc_t wany = dn_md_weights_any(s->kh, s->kw, ICg, n->oc, G, dnnl_f32);
    int DH = s->dh > 1 ? s->dh : 1, DW = s->dw > 1 ? s->dw : 1;   /* oneDNN counts dilation from 0 */
    dnnl_dims_t strides = {s->sh, s->sw}, pl = {s->pad_t, s->pad_l}, dil = {DH - 1, DW - 1};
    dnnl_dims_t pr = {dn_pad_end(n->ih, (s->kh - 1) * DH + 1, s->sh, s->pad_t, s->pad_b, n->oh),
                      dn_pad_end(n->iw, (s->kw - 1) * DW + 1, s->sw, s->pad_l, s->pad_r, n->ow)};
    b->dout = dn_mem(&b->net, &out_u, DNNL_MEMORY_NONE, err);
    b->in = dn_mem(&b->net, &in_u, DNNL_MEMORY_NONE, err);
    b->din = dn_mem(&b->net, &in_u, DNNL_MEMORY_NONE, err);
    b->w = dn_mem(&b->net, &w_u, DNNL_MEMORY_NONE, err);
    b->dw = dn_mem(&b->net, &w_u, DNNL_MEMORY_NONE, err);
    b->db = dn_mem(&b->net, &b_u, DNNL_MEMORY_NONE, err);
    if (!b->dout || !b->in || !b->din || !b->w || !b->dw || !b->db) return err->code;
    /* Activations: first the caller's NHWC itself (no reorder of dout, in,
     * din; measured ~10% less backward time on VGG16 at 32x32 b64 than the
     * blocked layouts oneDNN picks, whose reorders cost more than the
     * kernels gain), then, if NHWC is unimplemented here, oneDNN's choice. */
    dnnl_primitive_desc_t pf = NULL, pdd = NULL, pdw = NULL;
    /* 3x3 stride-1 convs with 16+ channels and at least WINO_BWD_PIXELS
     * output pixels per batch: Winograd for the forward hint and both
     * backward passes, in oneDNN's blocked layouts (the reorders cost less
     * than Winograd saves there: VGG16 32x32 batch 64 fully unfrozen went
     * from 121 to 170 img/s; below 1024 pixels, e.g. block5's 2x2 maps, the
     * transforms cost more than they save).  Else, and when oneDNN has no
     * Winograd here: direct, on NHWC first, then oneDNN's layouts.          */
    int wino = s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && DH == 1 && DW == 1 && G == 1 && n->ic >= 16 &&
               n->oc >= 16 && (int64_t)B * n->oh * n->ow >= WINO_BWD_PIXELS && !b->be->own_winograd;
    int any;
    for (any = wino ? -1 : 0; any < 2; any++) {
        dnnl_alg_kind_t alg = any < 0 ? dnnl_convolution_winograd : dnnl_convolution_direct;
        dnnl_memory_desc_t src = any ? dn_md_any4(B, n->ic, n->ih, n->iw, dnnl_f32) : in_u;
        dnnl_memory_desc_t dst = any ? dn_md_any4(B, n->oc, n->oh, n->ow, dnnl_f32) : out_u;
        dnnl_convolution_desc_t fd, dd, wd;
        DN_TRY(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &src, &wany,
                                                          has_bias ? &b_u : NULL, &dst, strides, dil, pl, pr),
               "convolution", name);
        DN_TRY(dnnl_dilated_convolution_backward_data_desc_init(&dd, alg, &src, &wany, &dst,
                                                                strides, dil, pl, pr),
               "convolution backward data", name);
        DN_TRY(dnnl_dilated_convolution_backward_weights_desc_init(&wd, alg, &src, &wany, has_bias ? &b_u : NULL,
                                                                   &dst, strides, dil, pl, pr),
               "convolution backward weights", name);
        st = dn_make_pd(&pf, &fd, b->net.eng, NULL, "convolution", name, err);
        if (!st) st = dn_make_pd(&pdd, &dd, b->net.eng, pf, "convolution backward data", name, err);
        if (!st) st = dn_make_pd(&pdw, &wd, b->net.eng, pf, "convolution backward weights", name, err);
        /* NHWC served only by oneDNN's reference kernels (e.g. on some
         * ISAs) would be far slower than a reorder: take oneDNN's layouts */
        if (!st && !any && (is_ref(pdd) || is_ref(pdw))) {
            st = gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': NHWC backward only in reference kernels", name);
            dnnl_primitive_desc_destroy(pdw);
        }
        if (st == GR_OK) break;
        if (pf) dnnl_primitive_desc_destroy(pf);
        if (pdd) dnnl_primitive_desc_destroy(pdd);
        pf = pdd = pdw = NULL;
        if (st != GR_ERR_UNSUPPORTED || any > 0) return st;
    }
    if (!st) st = build_steps(b, pdd, pdw, has_bias, name, err);
    /* oneDNN has no Winograd here (AVX2 and older CPUs: it implements it
     * only with AVX-512): graft's own for the 3x3 stride-1 convs with enough
     * output pixels, as the forward (dnnl_chain.c) */
    const gr_backend *be = b->be;
    if (!st && any >= 0 && be->winograd && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && DH == 1 && DW == 1 && G == 1 &&
        (int64_t)B * n->oh * n->ow >= GRAFT_WINO_BWD_PIXELS) {
        int md = gr_wino_choose(n->ih, n->iw, n->oc, n->ic, GR_ACT_LINEAR);
        int mw = gr_wino_choose(n->oh, n->ow, n->ic, n->oc, GR_ACT_LINEAR);
        gr_error e2;
        b->wino_d = md && gr_wino_plan_init(&b->wd, B, n->oh, n->ow, n->oc, n->ih, n->iw, n->ic, 2 - s->pad_t,
                                            2 - s->pad_l, md, GR_ACT_LINEAR, 0.0f, &e2) == GR_OK;
        b->wino_w = mw && gr_wino_plan_init(&b->ww, B, n->ih, n->iw, n->ic, n->oh, n->ow, n->oc, s->pad_t,
                                            s->pad_l, mw, GR_ACT_LINEAR, 0.0f, &e2) == GR_OK;
    }
    if (pf) dnnl_primitive_desc_destroy(pf);
    if (pdd) dnnl_primitive_desc_destroy(pdd);
    if (pdw) dnnl_primitive_desc_destroy(pdw);
    return st;
}

/* be's shared Winograd scratch, at least bytes (grown, never shrunk). */
static void *wino_scratch(gr_backend *be, size_t bytes, gr_error *err) {
    if (be->wino_buf_size >= bytes) return be->wino_buf;
    free(be->wino_buf);
    be->wino_buf_size = 0;
    be->wino_buf = gr_malloc(bytes, err);
    if (be->wino_buf) be->wino_buf_size = bytes;
    return be->wino_buf;
}

/* The parts graft's Winograd serves (b->wino_d: din; b->wino_w with dw
 * given: dw and db). */
static gr_status wino_backward(gr_backend *be, struct dn_bwd *b, const float *w, const float *dout,
                               const float *in, float *din, bool din_set, float *dw, float *db, gr_error *err) {
    gr_status st = GR_OK;
    if (b->wino_d && din) {
        size_t ub = gr_wino_weights_floats(&b->wd) * sizeof(float), sb = gr_wino_scratch_bytes(&b->wd);
        char *buf = wino_scratch(be, ub + sb, err);
        if (!buf) return GR_ERR_NOMEM;
        gr_wino_weights_rot(&b->wd, w, (float *)buf);
        b->wd.accum = !din_set;
        st = gr_wino_forward(&b->wd, dout, (const float *)buf, NULL, din, buf + ub, false, err);
    }
    if (st == GR_OK && b->wino_w && dw) {
        void *buf = wino_scratch(be, gr_wino_bwdw_scratch_bytes(&b->ww), err);
        if (!buf) return GR_ERR_NOMEM;
        st = gr_wino_backward_weights(&b->ww, in, dout, dw, db, buf, false, err);
    }
    return st;
}

static gr_status backward(gr_backend *be, int node, gr_op op, const float *dout, const float *in,
                          int B, float *din, bool din_set, float *dw, float *db, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_model *m = be->m;
    if (node < 0 || node >= be->n_nodes || m->nodes[node].s.op != op || B <= 0)
        return gr_error_set(err, GR_ERR_ARG, "backend backward: node %d is not a %s (batch %d)",
                            node, gr_op_name(op), B);
    const gr_node *n = &m->nodes[node];
    gr_fast *f = dn_fast_of(be, node, err);
    if (!f) return err->code;
    struct dn_bwd *b = f->bwd;
    if (b && b->B != B) {
        dn_bwd_free(b);
        b = f->bwd = NULL;
    }
    if (b && b->unsupported)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "layer '%s': backward not in oneDNN (batch %d)", n->s.name, B);
    if (!b) {
        b = gr_calloc(1, sizeof *b, err);
        if (!b) return GR_ERR_NOMEM;
        b->B = B;
        b->be = be;
        gr_status st = conv_build(m, node, B, b, err);
        if (st == GR_ERR_UNSUPPORTED) {   /* remembered: the caller's reference path serves from now on */
            dn_net_free(&b->net);
            b->unsupported = true;
            f->bwd = b;
            return st;
        }
        if (st) {
            dn_bwd_free(b);
            return st;
        }
        f->bwd = b;
    }
    int pb = gr_node_param(m, node, "bias");
    if (pb < 0) db = NULL;
    unsigned mask = (din ? (din_set ? NEED_DIN_SET : NEED_DIN) : 0) | (dw ? NEED_DW : 0) | (db ? NEED_DB : 0);
    if (!mask) return GR_OK;
    const float *wk = gr_param_cdata(m, gr_node_param(m, node, "kernel"));
    if ((b->wino_d && (mask & (NEED_DIN | NEED_DIN_SET))) || (b->wino_w && (mask & NEED_DW))) {
        gr_status st = wino_backward(be, b, wk, dout, in, din, din_set, (mask & NEED_DW) ? dw : NULL,
                                     (mask & NEED_DW) ? db : NULL, err);
        if (st) return gr_error_prefix(err, "layer '%s'", n->s.name);
        if (b->wino_d) mask &= ~(unsigned)(NEED_DIN | NEED_DIN_SET);
        if (b->wino_w && (mask & NEED_DW)) mask &= ~(unsigned)(NEED_DW | NEED_DB);
        if (!mask) return GR_OK;
    }
    dn_set(b->dout, dout);
    dn_set(b->in, in);
    dn_set(b->w, gr_param_cdata(m, gr_node_param(m, node, "kernel")));
    dn_set(b->din, din);
    dn_set(b->dw, dw);
    dn_set(b->db, db);
    gr_status st = dn_net_bind_lent(&b->net, be, err);
    return st ? st : dn_net_run(&b->net, mask, err);
}

gr_status gr_backend_conv2d_backward(gr_backend *be, int node, const float *dout, const float *in,
                                     int B, float *din, float *dw, float *db, gr_error *err) {
    return backward(be, node, GR_OP_CONV2D, dout, in, B, din, false, dw, db, err);
}

gr_status gr_backend_conv2d_backward_ow(gr_backend *be, int node, const float *dout, const float *in,
                                        int B, float *din, bool din_overwrite, float *dw, float *db,
                                        gr_error *err) {
    return backward(be, node, GR_OP_CONV2D, dout, in, B, din, din_overwrite, dw, db, err);
}

void gr_backend_conv2d_backward_tiles(const gr_backend *be, int node, int *m_data, int *m_weights) {
    const struct dn_bwd *b = node >= 0 && node < be->n_nodes && be->fast[node] ? be->fast[node]->bwd : NULL;
    *m_data = b && b->wino_d ? b->wd.m : 0;
    *m_weights = b && b->wino_w ? b->ww.m : 0;
}

/* Dense backward through the one GEMM entry: the trainer's weights change
 * every step, so packing them for an inner-product primitive each time
 * would cost more than the GEMMs (measured: the oneDNN inner-product
 * backward took 3.1 s per 313-step epoch of a 512-1024-10 head, the GEMMs 2.0-2.4 s).
 *   dw [IN, OUT] += in^T dout,  din [B, IN] += dout w^T,  db += sum_b dout */
gr_status gr_backend_dense_backward(gr_backend *be, int node, const float *dout, const float *in,
                                    int B, float *din, float *dw, float *db, gr_error *err) {
    const gr_model *m = be->m;
    if (node < 0 || node >= be->n_nodes || m->nodes[node].s.op != GR_OP_DENSE || B <= 0)
        return gr_error_set(err, GR_ERR_ARG, "backend backward: node %d is not a %s (batch %d)",
                            node, gr_op_name(GR_OP_DENSE), B);
    const gr_node *n = &m->nodes[node];
    int IN = n->ic * n->ih * n->iw, OUT = n->oc, pb = gr_node_param(m, node, "bias");
    const float *w = gr_param_cdata(m, gr_node_param(m, node, "kernel"));
    gr_status st = GR_OK;
    if (dw) st = gr_gemm(true, false, IN, OUT, B, 1.0f, in, IN, dout, OUT, 1.0f, dw, OUT, err);
    if (st == GR_OK && din) st = gr_gemm(false, true, B, IN, OUT, 1.0f, dout, OUT, w, OUT, 1.0f, din, IN, err);
    if (st == GR_OK && db && pb >= 0)
        for (int bi = 0; bi < B; bi++)
            for (int o = 0; o < OUT; o++) db[o] += dout[(size_t)bi * OUT + o];
    return st;
}
