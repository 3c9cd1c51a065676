/* onnx_std.c — the per-feature forms graft's own exporter writes
 * (onnx_export.c), read back as the layers they came from:
 *
 *   Sub(x, mean), Div(., std) on [N, F]                  -> standardize
 *   Flatten(map), Sub, Div, Reshape back to the map       -> standardize on the map
 *   (any chain of Sub/Add/Mul/Div by per-feature or scalar constants in
 *   these places: one standardize layer, (x - mean) / std)
 *   Sub(x, 3), HardSigmoid(1/6, 1/2), Mul(., 6)           -> relu6
 *
 * A flattened map's features are in ONNX's CHW order; graft's standardize
 * holds them in its HWC order (permuted here).  Hooks: gr_onnx_map_arith
 * (onnx_elem.c) and the Flatten/Reshape of a map (onnx_layout.c).        */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

/* The one node reading `name`, not built yet, or NULL. */
static onode *sole_reader(gr_onnx_b *b, const char *name, int *k) {
    int j = gr_onnx_sole_consumer(b, name);
    if (j < 0 || b->done[j]) return NULL;
    onode *n = b->g->node[j];
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return NULL;
    *k = j;
    return n;
}

static bool is_arith(const char *op) {
    return !strcmp(op, "Sub") || !strcmp(op, "Add") || !strcmp(op, "Mul") || !strcmp(op, "Div");
}

/* The constant operand of arithmetic node n reading `name` with 1 or F
 * float values (NULL: not that form); *cfirst: the constant is input 0.   */
static val *feature_const(gr_onnx_b *b, onode *n, const char *name, int64_t F, bool *cfirst) {
    if (n->n_input != 2 || !is_arith(n->op_type)) return NULL;
    int xi = !strcmp(n->input[0], name) ? 0 : !strcmp(n->input[1], name) ? 1 : -1;
    if (xi < 0 || !strcmp(n->input[0], n->input[1])) return NULL;
    val *k = gr_onnx_get(b, n->input[1 - xi]);
    if (!k || k->kind != V_CONST || gr_onnx_cload(b, k) || k->ct != CT_F || (k->n != 1 && k->n != F)) return NULL;
    for (int d = 0; d < k->rank - 1; d++)   /* [F], [1, F] */
        if (k->dims[d] != 1) return NULL;
    *cfirst = xi == 1;
    if (*cfirst && strcmp(n->op_type, "Add") && strcmp(n->op_type, "Mul")) return NULL;   /* c - x, c / x */
    return k;
}

/* Applies node op with constant k (ONNX feature order; idx[p]: the ONNX
 * feature of graft feature p) to y = (x - mean) / std: false when it is no
 * longer of that form (a Mul by 0).                                        */
static bool compose(const char *op, const val *k, const int64_t *idx, int64_t F, float *mean, float *sd) {
    for (int64_t p = 0; p < F; p++) {
        float c = k->f[k->n == 1 ? 0 : idx[p]];
        if (!strcmp(op, "Sub")) mean[p] += c * sd[p];
        else if (!strcmp(op, "Add")) mean[p] -= c * sd[p];
        else if (!strcmp(op, "Div")) sd[p] *= c;
        else if (c != 0) sd[p] /= c;
        else return false;
        if (!isfinite(mean[p]) || !isfinite(sd[p]) || sd[p] == 0) return false;
    }
    return true;
}

/* idx[p] for an F-feature value x: identity, or for a flattened map (fmap)
 * the ONNX flat index of graft's HWC feature p.                           */
static void feature_index(const val *x, int64_t F, int64_t *idx) {
    for (int64_t p = 0; p < F; p++) idx[p] = p;
    if (!x->fmap) return;
    int L[4], phys[4] = {1, x->fh, x->fw, x->fc}, c[4];
    for (int k = 0; k < 4; k++) L[k] = phys[x->fperm[k]];
    for (int64_t p = 0; p < F; p++) {
        c[0] = 0;
        c[1] = (int)(p / ((int64_t)x->fw * x->fc));
        c[2] = (int)(p / x->fc % x->fw);
        c[3] = (int)(p % x->fc);
        idx[p] = ((int64_t)c[x->fperm[1]] * L[2] + c[x->fperm[2]]) * L[3] + c[x->fperm[3]];
    }
}

/* Follows the chain of arithmetic nodes by constants from value `name`
 * (first node n0 given, or NULL: the sole reader of name), composing mean
 * and std; returns how many nodes (their indexes in k[]), 0 none.         */
static int chain(gr_onnx_b *b, onode *n0, int k0, const char *name, const int64_t *idx, int64_t F, float *mean,
                 float *sd, int k[8], onode **last) {
    int nk = 0;
    onode *n = n0;
    if (n) k[0] = k0;
    while (nk < 8) {
        if (!n && !(n = sole_reader(b, name, &k[nk]))) break;
        bool cfirst;
        val *c = feature_const(b, n, name, F, &cfirst);
        if (!c || !compose(n->op_type, c, idx, F, mean, sd)) break;
        *last = n;
        name = n->output[0];
        nk++;
        n = NULL;
    }
    return nk;
}

/* A standardize layer (mean, std [F] in graft's order) reading graft node in. */
static int emit_std(gr_onnx_b *b, onode *n, int in, const float *mean, const float *sd, int64_t F) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_STANDARDIZE;
    int id = gr_onnx_append(b, n, s, in, NULL);
    if (id < 0) return -1;
    memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "mean")), mean, (size_t)F * sizeof(float));
    memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "std")), sd, (size_t)F * sizeof(float));
    return id;
}

/* The buffers of a chain over F features: mean 0, std 1, idx. */
static bool chain_alloc(gr_onnx_b *b, int64_t F, float **mean, float **sd, int64_t **idx) {
    *mean = gr_calloc((size_t)F, 2 * sizeof(float), b->err);
    *idx = *mean ? gr_malloc((size_t)F * sizeof(int64_t), b->err) : NULL;
    if (!*idx) { free(*mean); return false; }
    *sd = *mean + F;
    for (int64_t p = 0; p < F; p++) (*sd)[p] = 1.0f;
    return true;
}

int gr_onnx_map_std_flat(gr_onnx_b *b, onode *n, val *x) {
    if (x->rank != 2 || x->node < 0) return 0;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    int64_t F = (int64_t)H * W * C;
    bool cfirst;
    val *c0 = feature_const(b, n, x->name, F, &cfirst);
    if (!c0) return 0;
    /* a plain [N, F] value: only the exporter's Sub, Div pair (other per-channel
     * constants stay the affine maps of onnx_elem.c); a flattened map: any chain */
    if (!x->fmap) {
        int k;
        onode *d = strcmp(n->op_type, "Sub") || cfirst ? NULL : sole_reader(b, n->output[0], &k);
        bool cf2;
        if (!d || strcmp(d->op_type, "Div") || !feature_const(b, d, n->output[0], F, &cf2) || c0->n != F) return 0;
    }
    float *mean, *sd;
    int64_t *idx;
    if (!chain_alloc(b, F, &mean, &sd, &idx)) return -1;
    feature_index(x, F, idx);
    int k[8];
    onode *last = NULL;
    int nk = chain(b, n, b->node, x->name, idx, F, mean, sd, k, &last);
    int r = 0;
    if (nk > 0) {
        int id = emit_std(b, n, x->node, mean, sd, F);
        for (int j = 1; j < nk; j++) b->done[k[j]] = true;
        int keep = b->node;
        b->node = k[nk - 1];
        r = id < 0 || !gr_onnx_set_act(b, last, 0, id, x, true) ? -1 : 1;
        b->node = keep;
    }
    free(mean);
    free(idx);
    return r;
}

int gr_onnx_map_std_map(gr_onnx_b *b, onode *n, val *x) {
    static const int NCHW[4] = {0, 3, 1, 2};
    if (x->rank != 4 || memcmp(x->perm, NCHW, sizeof NCHW) || x->node < 0) return 0;
    int H, W, C, k0;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    int64_t F = (int64_t)H * W * C;
    onode *first = sole_reader(b, n->output[0], &k0);
    bool cfirst;
    if (!first || !feature_const(b, first, n->output[0], F, &cfirst)) return 0;
    float *mean, *sd;
    int64_t *idx;
    if (!chain_alloc(b, F, &mean, &sd, &idx)) return -1;
    val flat = *x;   /* the Flatten's value: the map in ONNX's CHW order */
    flat.fmap = true, flat.fh = H, flat.fw = W, flat.fc = C;
    memcpy(flat.fperm, NCHW, sizeof NCHW);
    feature_index(&flat, F, idx);
    int k[9], kr;
    onode *last = NULL, *rs = NULL;
    int nk = chain(b, first, k0, n->output[0], idx, F, mean, sd, k, &last), r = 0;
    /* ... then a Reshape back to the map's [N, C, H, W] */
    val *s = NULL;
    if (nk > 0 && (rs = sole_reader(b, last->output[0], &kr)) && !strcmp(rs->op_type, "Reshape") &&
        !strcmp(rs->input[0], last->output[0]) && (s = gr_onnx_in(b, rs, 1)) && s->kind == V_CONST &&
        !gr_onnx_cload(b, s) && s->ct == CT_I && s->n == 4) {
        const int64_t want[4] = {b->batch, C, H, W};
        bool same = true;
        for (int j = 0; j < 4 && same; j++) same = s->i[j] == want[j] || s->i[j] == 0 || (s->i[j] == -1 && j == 0);
        if (same) {
            int id = emit_std(b, n, x->node, mean, sd, F);
            b->done[kr] = true;
            for (int j = 0; j < nk; j++) b->done[k[j]] = true;
            int keep = b->node;
            b->node = kr;
            r = id < 0 || !gr_onnx_set_act(b, rs, 0, id, x, true) ? -1 : 1;
            b->node = keep;
        }
    }
    free(mean);
    free(idx);
    return r;
}

int gr_onnx_map_relu6_form(gr_onnx_b *b, onode *n, val *x) {
    double three, six;
    int kh, km;
    bool cf;
    val *c = feature_const(b, n, x->name, 1, &cf);
    if (!c || strcmp(n->op_type, "Sub") || cf || c->n != 1) return 0;
    three = c->f[0];
    onode *h = sole_reader(b, n->output[0], &kh);
    if (three != 3.0 || !h || strcmp(h->op_type, "HardSigmoid") ||
        fabsf(gr_onnx_attr_f(h, "alpha", 0.2f) - 1.0f / 6.0f) > 1e-6f || fabsf(gr_onnx_attr_f(h, "beta", 0.5f) - 0.5f) > 1e-6f)
        return 0;
    onode *m = sole_reader(b, h->output[0], &km);
    val *c6 = m ? feature_const(b, m, h->output[0], 1, &cf) : NULL;
    if (!c6 || strcmp(m->op_type, "Mul") || c6->n != 1) return 0;
    six = c6->f[0];
    if (six != 6.0) return 0;
    /* relu6(x) = 6 * clamp((x - 3) / 6 + 1/2, 0, 1) */
    b->done[kh] = b->done[km] = true;
    int id = x->node;
    if (gr_onnx_can_fuse(b, x, 1)) b->m->nodes[x->node].s.act = GR_ACT_RELU6;
    else if ((id = gr_onnx_append(b, n, gr_activation(GR_ACT_RELU6, 0), x->node, NULL)) < 0) return -1;
    int keep = b->node;
    b->node = km;
    val *o = gr_onnx_set_act(b, m, 0, id, x, true);
    b->node = keep;
    return o ? 1 : -1;
}
