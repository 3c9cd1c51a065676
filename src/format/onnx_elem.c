/* onnx_elem.c — elementwise ONNX operators on activations, and the node
 * patterns PyTorch's exporter writes for layers graft runs as one op:
 *
 *   Sigmoid(x), Mul(x, .)              -> swish (SiLU)
 *   HardSigmoid(x), Mul(x, .)          -> hardswish (torch before opset 14)
 *   HardSigmoid (alpha 1/6, beta 1/2: torch.nn.Hardsigmoid only)
 *   Div(x, sqrt 2), Erf, Add 1, Mul x, Mul 0.5          -> gelu (erf form;
 *     Mul 0.5 then Mul x as torch 2's dynamo exporter writes it)
 *   ReduceMean(x, C), Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div
 *     [, Mul gamma [, Add beta]]                         -> layer norm over C
 *   LayerNormalization over the channel axis             -> layer norm
 *   Mul of two activations, one maybe [N,C,1,1] (squeeze-excitation) -> multiply
 *   Add/Sub/Mul/Div by a scalar or per-channel constant (ConvNeXt's layer
 *     scale): folded into the conv/dense layer before when it is the only
 *     reader, else a depthwise 1x1 conv (trainable like any conv).
 * An activation reached only through a pattern fuses into the conv, dense
 * or add layer that made its input.  Helpers in onnx_ops.c.              */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

/* ------------------------------------------------------------------ helpers */

bool gr_onnx_can_fuse(gr_onnx_b *b, const val *x, int consumers) {
    if (!x->primary || x->consumers != consumers || x->node < 0 || x->node != gr_model_num_layers(b->m) - 1)
        return false;
    const gr_layer_spec *s = &b->m->nodes[x->node].s;
    return (s->op == GR_OP_CONV2D || s->op == GR_OP_DENSE || s->op == GR_OP_ADD) && s->act == GR_ACT_LINEAR;
}

/* The one node reading value `name` when it is an `op` not built yet, or NULL. */
static onode *next_op(gr_onnx_b *b, const char *name, const char *op, int *k) {
    int j = gr_onnx_sole_consumer(b, name);
    if (j < 0 || b->done[j]) return NULL;
    onode *n = b->g->node[j];
    if (strcmp(n->op_type, op) || (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))) return NULL;
    *k = j;
    return n;
}

/* The first node after the current one reading `name` that is an `op`, or NULL. */
static onode *reader_op(gr_onnx_b *b, const char *name, const char *op, int *k) {
    for (size_t j = (size_t)b->node + 1; j < b->g->n_node; j++) {
        onode *n = b->g->node[j];
        if (b->done[j] || strcmp(n->op_type, op)) continue;
        for (size_t i = 0; i < n->n_input; i++)
            if (!strcmp(n->input[i], name)) { *k = (int)j; return n; }
    }
    return NULL;
}

/* The input of binary node n that is not `name` (NULL: n is not binary or does not read it). */
static const char *other(onode *n, const char *name) {
    if (n->n_input != 2) return NULL;
    if (!strcmp(n->input[0], name)) return n->input[1];
    if (!strcmp(n->input[1], name)) return n->input[0];
    return NULL;
}

/* Whether value `name` is a one-value constant; its value in *f. */
static bool cscalar(gr_onnx_b *b, const char *name, double *f) {
    val *v = gr_onnx_get(b, name);
    if (!v || v->kind != V_CONST || gr_onnx_cload(b, v) || v->n != 1) return false;
    *f = v->ct == CT_F ? v->f[0] : (double)v->i[0];
    return true;
}

/* The logical axis of x holding graft's channels (-1: none, a flattened map). */
static int chan_axis(const val *x) {
    if (x->rank == 2) return x->fmap ? -1 : 1;
    if (x->rank == 3) { for (int k = 0; k < 3; k++) if (x->perm[k] == 2) return k; return -1; }
    for (int k = 0; k < 4; k++) if (x->perm[k] == 3) return k;
    return -1;
}

/* Whether logical axis ax (negative: from the end) of x is its channel axis. */
static bool is_chan_axis(const val *x, int64_t ax) {
    if (ax < 0) ax += x->rank;
    return ax >= 0 && ax < x->rank && ax == chan_axis(x);
}

/* Constant k as C per-channel floats for x (a scalar, or 1s but for x's
 * channel axis, aligned to the right): malloc'd, or NULL (error set).      */
static float *chan_vec(gr_onnx_b *b, const val *x, val *k, int C, const char *what) {
    if (gr_onnx_cload(b, k)) return NULL;
    int ca = chan_axis(x);
    bool ok = k->n == 1 || (k->n == C && k->rank <= x->rank && ca >= 0);
    for (int j = 0; ok && k->n != 1 && j < k->rank; j++) {
        int ax = x->rank - k->rank + j;
        ok = k->dims[j] == (ax == ca ? C : 1);
    }
    if (!ok) {
        gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s '%.200s' (%lld values) is neither a scalar nor one value per channel "
                     "(%d)", what, k->name, (long long)k->n, C);
        return NULL;
    }
    float *v = gr_malloc((size_t)C * sizeof(float), b->err);
    for (int c = 0; v && c < C; c++) {
        int64_t j = k->n == 1 ? 0 : c;
        v[c] = k->ct == CT_F ? k->f[j] : (float)k->i[j];
    }
    return v;
}

/* out = x * scale + shift per channel (either NULL: 1, 0), the output of node n. */
static int affine(gr_onnx_b *b, onode *n, val *x, const float *scale, const float *shift) {
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    if (x->primary && x->consumers == 1 && x->node >= 0 && x->node == gr_model_num_layers(b->m) - 1 &&
        b->m->nodes[x->node].s.op == GR_OP_LAYERNORM) {   /* into its gamma and beta (graft's export on maps) */
        float *g = gr_param_data(b->m, gr_node_param(b->m, x->node, "gamma"));
        float *bb = gr_param_data(b->m, gr_node_param(b->m, x->node, "beta"));
        for (int c = 0; c < C; c++) {
            float sc = scale ? scale[c] : 1.0f;
            g[c] *= sc;
            bb[c] = bb[c] * sc + (shift ? shift[c] : 0.0f);
        }
        return gr_onnx_set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    if (gr_onnx_can_fuse(b, x, 1) && b->m->nodes[x->node].s.op != GR_OP_ADD &&
        (!shift || b->m->nodes[x->node].s.use_bias)) {   /* into the conv / dense before */
        int pk = gr_node_param(b->m, x->node, "kernel"), pb = gr_node_param(b->m, x->node, "bias");
        float *k = gr_param_data(b->m, pk);   /* [..][C]: HWIO or [I][O] */
        size_t rows = b->m->params[pk].count / (size_t)C;
        for (size_t r = 0; scale && r < rows; r++)
            for (int c = 0; c < C; c++) k[r * (size_t)C + c] *= scale[c];
        float *bb = pb >= 0 ? gr_param_data(b->m, pb) : NULL;
        for (int c = 0; bb && c < C; c++) bb[c] = bb[c] * (scale ? scale[c] : 1.0f) + (shift ? shift[c] : 0.0f);
        return gr_onnx_set_act(b, n, 0, x->node, x, true) ? 0 : -1;
    }
    gr_layer_spec s = gr_conv2d(C, 1, 1, 1, GR_PAD_VALID, GR_ACT_LINEAR);   /* depthwise 1x1 */
    s.groups = C;
    s.use_bias = shift != NULL;
    int id = gr_onnx_append(b, n, s, x->node, NULL);
    if (id < 0) return -1;
    float *k = gr_param_data(b->m, gr_node_param(b->m, id, "kernel"));   /* [1][1][1][C] */
    for (int c = 0; c < C; c++) k[c] = scale ? scale[c] : 1.0f;
    if (shift) memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "bias")), shift, (size_t)C * sizeof(float));
    return gr_onnx_set_act(b, n, 0, id, x, true) ? 0 : -1;
}

/* act on x as the output of node `outn` (fused into x's layer when it is
 * read only by the `consumers` reads of the pattern).                     */
static int emit_act(gr_onnx_b *b, onode *n, val *x, gr_act act, int consumers, onode *outn) {
    int id = x->node;
    if (gr_onnx_can_fuse(b, x, consumers)) b->m->nodes[x->node].s.act = act;
    else if ((id = gr_onnx_append(b, n, gr_activation(act, 0), x->node, NULL)) < 0) return -1;
    return gr_onnx_set_act(b, outn, 0, id, x, true) ? 0 : -1;
}

/* ------------------------------------------------------------------ gates */

int gr_onnx_map_gate(gr_onnx_b *b, onode *n, gr_act act) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    if (act == GR_ACT_HARDSIGMOID) {
        float alpha = gr_onnx_attr_f(n, "alpha", 0.2f), beta = gr_onnx_attr_f(n, "beta", 0.5f);
        if (fabsf(alpha - 1.0f / 6.0f) > 1e-6f || fabsf(beta - 0.5f) > 1e-6f)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "HardSigmoid with alpha %g, beta %g: graft has PyTorch's "
                                "(alpha 1/6, beta 0.5) only, not e.g. Keras 2's hard_sigmoid (alpha 0.2)",
                                (double)alpha, (double)beta), -1;
    }
    int k;
    onode *m = next_op(b, n->output[0], "Mul", &k);
    const char *o = m ? other(m, n->output[0]) : NULL;
    if (o && !strcmp(o, x->name) && x->consumers == 2) {   /* x * gate(x) */
        b->done[k] = true;
        return emit_act(b, n, x, act == GR_ACT_SIGMOID ? GR_ACT_SWISH : GR_ACT_HARDSWISH, 2, m);
    }
    return emit_act(b, n, x, act, 1, n);
}

/* ------------------------------------------------------------------ gelu */

/* Whether n = Div(x, sqrt 2) (or Mul(x, 1/sqrt 2)) starts torch's erf GELU:
 * Erf, Add 1, Mul x, Mul 0.5 (or Mul 0.5, Mul x); the nodes after n in idx[4]. */
static bool match_gelu(gr_onnx_b *b, onode *n, const val *x, int idx[4]) {
    double c;
    bool div = !strcmp(n->op_type, "Div");
    if (x->consumers != 2 || n->n_input != 2 || strcmp(n->input[0], x->name) || !cscalar(b, n->input[1], &c) ||
        fabs(c - (div ? M_SQRT2 : M_SQRT1_2)) > 1e-5)
        return false;
    onode *e = next_op(b, n->output[0], "Erf", &idx[0]);
    onode *a = e ? next_op(b, e->output[0], "Add", &idx[1]) : NULL;
    const char *one = a ? other(a, e->output[0]) : NULL;
    if (!one || !cscalar(b, one, &c) || c != 1.0) return false;
    /* then Mul x, Mul 0.5 (TorchScript's exporter), or Mul 0.5, Mul x (dynamo's) */
    onode *m = next_op(b, a->output[0], "Mul", &idx[2]);
    const char *o1 = m ? other(m, a->output[0]) : NULL;
    onode *h = o1 ? next_op(b, m->output[0], "Mul", &idx[3]) : NULL;
    const char *o2 = h ? other(h, m->output[0]) : NULL;
    if (!o2) return false;
    if (!strcmp(o1, x->name)) return cscalar(b, o2, &c) && fabs(c - 0.5) < 1e-7;
    return !strcmp(o2, x->name) && cscalar(b, o1, &c) && fabs(c - 0.5) < 1e-7;
}

/* ------------------------------------------------------------------ arithmetic */

/* Mul of two activations: the same shape, or one a 1x1 map per channel. */
static int map_mul2(gr_onnx_b *b, onode *n, val *a, val *c) {
    int ha, wa, ca, hc, wc, cc;
    gr_onnx_shape(b, a->node, &ha, &wa, &ca);
    gr_onnx_shape(b, c->node, &hc, &wc, &cc);
    if (ha * wa == 1 && hc * wc > 1) {
        val *t = a; a = c; c = t;
    }
    bool bcast = (hc * wc == 1) != (ha * wa == 1);
    bool ok = a->rank == c->rank && chan_axis(a) >= 0 && chan_axis(a) == chan_axis(c) &&
              (bcast || !memcmp(a->perm, c->perm, sizeof a->perm) || a->rank == 2);
    if (!ok) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Mul of '%.200s' and '%.200s': graft multiplies tensors of "
                                 "one layout, or a map by a per-channel [N,C,1,1] scale", a->name, c->name), -1;
    int id = gr_onnx_append(b, n, gr_multiply(a->node, c->node), 0, NULL);
    return id < 0 || !gr_onnx_set_act(b, n, 0, id, a, true) ? -1 : 0;
}

int gr_onnx_map_arith(gr_onnx_b *b, onode *n, const char *op) {
    if (n->n_input != 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "%zu inputs (2 expected)", n->n_input), -1;
    val *a = gr_onnx_in(b, n, 0), *c = gr_onnx_in(b, n, 1);
    if (!a || !c) return gr_onnx_nerr(b, GR_ERR_FORMAT, "an input is missing"), -1;
    if (a->kind == V_ACT && c->kind == V_ACT) {
        if (!strcmp(op, "Add")) return gr_onnx_map_join(b, n, op);
        if (!strcmp(op, "Mul")) return map_mul2(b, n, a, c);
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of two activations is not supported (Add and Mul are)", op), -1;
    }
    bool cfirst = a->kind != V_ACT;
    val *x = cfirst ? c : a, *k = cfirst ? a : c;
    if (x->kind != V_ACT || k->kind != V_CONST) return gr_onnx_nerr(b, GR_ERR_FORMAT, "bad operands"), -1;
    int idx[4];
    if (!cfirst && (!strcmp(op, "Div") || !strcmp(op, "Mul")) && match_gelu(b, n, x, idx)) {
        for (int j = 0; j < 4; j++) b->done[idx[j]] = true;
        return emit_act(b, n, x, GR_ACT_GELU, 2, b->g->node[idx[3]]);
    }
    int own = gr_onnx_map_relu6_form(b, n, x);   /* graft's own export (onnx_std.c) */
    if (!own) own = gr_onnx_map_std_flat(b, n, x);
    if (own) return own < 0 ? -1 : 0;
    if (x->fmap) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of a flattened map by a constant", op), -1;
    if (!strcmp(op, "Add") && (x->rank == 3 || x->rank == 4) && !gr_onnx_cload(b, k)) {   /* a constant of the tokens' shape */
        int r = gr_onnx_map_pos_embed(b, n, x, k);
        if (r <= 0) return r;
    }
    if (cfirst && !strcmp(op, "Div"))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a constant divided by an activation is not supported"), -1;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    float *v = chan_vec(b, x, k, C, "the constant");
    if (!v) return -1;
    const float *scale = NULL, *shift = NULL;
    float *neg = NULL;
    if (!strcmp(op, "Add")) shift = v;
    else if (!strcmp(op, "Mul")) scale = v;
    else if (!strcmp(op, "Div")) {
        for (int j = 0; j < C; j++) v[j] = 1.0f / v[j];
        scale = v;
    } else if (!cfirst) {   /* x - c */
        for (int j = 0; j < C; j++) v[j] = -v[j];
        shift = v;
    } else {                /* c - x */
        if (!(neg = gr_malloc((size_t)C * sizeof(float), b->err))) { free(v); return -1; }
        for (int j = 0; j < C; j++) neg[j] = -1.0f;
        scale = neg;
        shift = v;
    }
    int r = affine(b, n, x, scale, shift);
    free(v);
    free(neg);
    return r;
}

/* ------------------------------------------------------------------ layer norm */

/* A layer norm over x's channels, output of node outn, gamma/beta constants (NULL: 1, 0). */
static int emit_ln(gr_onnx_b *b, onode *n, val *x, float eps, val *gamma, val *beta, onode *outn) {
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    float *g = gamma ? chan_vec(b, x, gamma, C, "scale") : NULL, *be = beta ? chan_vec(b, x, beta, C, "bias") : NULL;
    if ((gamma && !g) || (beta && !be)) { free(g); free(be); return -1; }
    int id = gr_onnx_append(b, n, gr_layernorm(eps > 0 ? eps : 1e-12f), x->node, NULL);
    if (id >= 0) {
        float *pg = gr_param_data(b->m, gr_node_param(b->m, id, "gamma")), *pb = gr_param_data(b->m, gr_node_param(b->m, id, "beta"));
        for (int c = 0; c < C; c++) { pg[c] = g ? g[c] : 1.0f; pb[c] = be ? be[c] : 0.0f; }
    }
    free(g);
    free(be);
    return id < 0 || !gr_onnx_set_act(b, outn, 0, id, x, true) ? -1 : 0;
}

int gr_onnx_map_layernorm(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int64_t ax = gr_onnx_attr_i(n, "axis", -1);
    if (!is_chan_axis(x, ax))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "normalization from axis %lld of a rank-%d tensor: graft normalizes "
                            "over channels only (the last axis of a channels-last tensor)", (long long)ax, x->rank), -1;
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k][0] && gr_onnx_get(b, n->output[k]) && gr_onnx_get(b, n->output[k])->consumers)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the Mean / InvStdDev outputs are used"), -1;
    val *g = gr_onnx_in(b, n, 1), *be = gr_onnx_in(b, n, 2);
    if (!g || g->kind != V_CONST || (be && be->kind != V_CONST))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "scale and bias must be constants"), -1;
    return emit_ln(b, n, x, gr_onnx_attr_f(n, "epsilon", 1e-5f), g, be, n);
}

/* The axes of ReduceMean node n (attribute, or input from opset 18): count, -1 not constant. */
int gr_onnx_reduce_axes(gr_onnx_b *b, onode *n, int64_t axes[4]) {
    if (b->f->opset < 18) return gr_onnx_attr_ints(n, "axes", axes, 4);
    val *a = gr_onnx_in(b, n, 1);
    if (!a) return 0;
    if (a->kind != V_CONST || gr_onnx_cload(b, a) || a->n > 4 || a->ct != CT_I) return -1;
    for (int k = 0; k < a->n; k++) axes[k] = a->i[k];
    return (int)a->n;
}

/* Whether node r is a ReduceMean over axis ax only, keeping dims. */
static bool mean_over(gr_onnx_b *b, onode *r, int64_t ax, int rank) {
    int64_t axes[4];
    int na = gr_onnx_reduce_axes(b, r, axes);
    int64_t a = na == 1 ? (axes[0] < 0 ? axes[0] + rank : axes[0]) : -1;
    return a == (ax < 0 ? ax + rank : ax) && gr_onnx_attr_i(r, "keepdims", 1);
}

/* ReduceMean n over the channel axis ax of x: the start of a layer norm
 * decomposed by the exporter (opsets before 17).                          */
int gr_onnx_map_ln_decomposed(gr_onnx_b *b, onode *n, int64_t ax) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int k[9];
    double c;
    onode *sub = NULL, *pw = NULL, *r2 = NULL, *ae = NULL, *sq = NULL, *dv = NULL;
    bool ok = is_chan_axis(x, ax) && gr_onnx_attr_i(n, "keepdims", 1) && x->consumers >= 2;   /* x may feed a residual too */
    ok = ok && (sub = next_op(b, n->output[0], "Sub", &k[0])) && sub->n_input == 2 && !strcmp(sub->input[0], x->name) &&
         !strcmp(sub->input[1], n->output[0]);
    val *d = ok ? gr_onnx_get(b, sub->output[0]) : NULL;
    ok = ok && d && d->consumers == 2 && (pw = reader_op(b, sub->output[0], "Pow", &k[1])) && pw->n_input == 2 &&
         !strcmp(pw->input[0], sub->output[0]) && cscalar(b, pw->input[1], &c) && c == 2.0;
    ok = ok && (r2 = next_op(b, pw->output[0], "ReduceMean", &k[2])) && mean_over(b, r2, ax, x->rank);
    const char *epsn = NULL;
    double eps = 0;
    ok = ok && (ae = next_op(b, r2->output[0], "Add", &k[3])) && (epsn = other(ae, r2->output[0])) &&
         cscalar(b, epsn, &eps);
    ok = ok && (sq = next_op(b, ae->output[0], "Sqrt", &k[4])) && (dv = next_op(b, sq->output[0], "Div", &k[5])) &&
         dv->n_input == 2 && !strcmp(dv->input[0], sub->output[0]) && !strcmp(dv->input[1], sq->output[0]);
    if (!ok)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a mean over axes other than height and width is supported only as "
                            "the start of a layer norm over channels (ReduceMean, Sub, Pow 2, ReduceMean, Add, Sqrt, "
                            "Div)"), -1;
    int nk = 6;
    onode *out = dv, *mn, *an;
    val *gamma = NULL, *beta = NULL, *t;
    const char *o;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    /* the elementwise affine after it, when constant per channel */
    if ((mn = next_op(b, dv->output[0], "Mul", &k[nk])) && (o = other(mn, dv->output[0])) && (t = gr_onnx_get(b, o)) &&
        t->kind == V_CONST && !gr_onnx_cload(b, t) && t->n == C) {
        gamma = t;
        out = mn;
        nk++;
        if ((an = next_op(b, mn->output[0], "Add", &k[nk])) && (o = other(an, mn->output[0])) &&
            (t = gr_onnx_get(b, o)) && t->kind == V_CONST && !gr_onnx_cload(b, t) && t->n == C) {
            beta = t;
            out = an;
            nk++;
        }
    }
    for (int j = 0; j < nk; j++) b->done[k[j]] = true;
    return emit_ln(b, n, x, (float)eps, gamma, beta, out);
}
