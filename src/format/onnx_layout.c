/* onnx_layout.c — the ONNX operators that change the layout or join
 * tensors, and the dense layers: Flatten/Reshape/Squeeze/Unsqueeze/
 * Transpose/Identity/Dropout/Pad (no layer when only the layout changes),
 * Gemm/MatMul (+ Add of a bias; rows permuted after a Flatten of a spatial
 * map), Add/Sum/Concat, Softmax.  Helpers in onnx_ops.c.                   */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

/* ------------------------------------------------------------------ layout */

/* x as a rank-2 [N, F] value (Flatten at axis 1): a graft flatten when spatial. */
static int to_vector(gr_onnx_b *b, onode *n, val *x) {
    if (x->rank == 2) return gr_onnx_set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    if (x->rank == 3 && (x->perm[0] != 0 || x->perm[1] != 1 || x->perm[2] != 2))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "flattening tokens in an order other than [N, T, D]"), -1;
    int r = gr_onnx_map_std_map(b, n, x);   /* graft's exported standardize of a map (onnx_std.c) */
    if (r) return r < 0 ? -1 : 0;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    if (H == 1 && W == 1) {
        val *o = gr_onnx_set_act(b, n, 0, x->node, x, false);
        if (o) o->rank = 2;
        return o ? 0 : -1;
    }
    int id = gr_onnx_append(b, n, gr_flatten(), x->node, NULL);
    val *o = id < 0 ? NULL : gr_onnx_set_act(b, n, 0, id, x, true);
    if (!o) return -1;
    static const int NHWC[4] = {0, 1, 2, 3};
    o->rank = 2;
    /* ONNX's flat order differs from graft's HWC (tokens [N, T, D]: the same) */
    o->fmap = x->rank == 4 && memcmp(x->perm, NHWC, sizeof NHWC) != 0;
    o->fh = H; o->fw = W; o->fc = C;
    memcpy(o->fperm, x->perm, sizeof o->fperm);
    return 0;
}

/* Pad: all zeros (PyTorch's before an AveragePool) is nothing; zeros added
 * around H and W, read only by a Conv, become that Conv's padding.         */
static int map_pad(gr_onnx_b *b, onode *n, val *x) {
    val *p = gr_onnx_in(b, n, 1), *cv = gr_onnx_in(b, n, 2);
    bool ok = p && p->kind == V_CONST && !gr_onnx_cload(b, p) && p->ct == CT_I && p->n == 2 * x->rank;
    bool zero = ok;
    for (int64_t k = 0; zero && k < p->n; k++) zero = p->i[k] == 0;
    if (zero) return gr_onnx_set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    const Onnx__AttributeProto *mode = gr_onnx_attr(n, "mode");
    bool constant = !mode || !mode->has_s || (mode->s.len == 8 && !memcmp(mode->s.data, "constant", 8));
    if (cv && (cv->kind != V_CONST || gr_onnx_cload(b, cv) || cv->n != 1 ||
               (cv->ct == CT_F ? cv->f[0] != 0 : cv->i[0] != 0)))
        constant = false;
    int k = gr_onnx_sole_consumer(b, n->output[0]);
    onode *c = k >= 0 ? b->g->node[k] : NULL;
    static const int NCHW[4] = {0, 3, 1, 2};
    if (ok && constant && c && !strcmp(c->op_type, "Conv") && !strcmp(c->input[0], n->output[0]) &&
        x->rank == 4 && !memcmp(x->perm, NCHW, sizeof NCHW) && !p->i[0] && !p->i[1] && !p->i[4] && !p->i[5]) {
        val *o = gr_onnx_set_act(b, n, 0, x->node, x, false);
        if (!o) return -1;
        const int64_t pads[4] = {p->i[2], p->i[3], p->i[6], p->i[7]};
        for (int d = 0; d < 4; d++) {
            if (pads[d] < 0 || pads[d] + x->xpad[d] > GR_MAX_WINDOW) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "padding %lld", (long long)pads[d]), -1;
            o->xpad[d] = x->xpad[d] + (int)pads[d];
        }
        return 0;
    }
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Pad that adds cells is supported only as zeros around H and W "
                        "read by one Conv"), -1;
}

int gr_onnx_map_layout(gr_onnx_b *b, onode *n, const char *op) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int64_t d[4], t[GR_ONNX_MAX_RANK] = {0};
    int r = gr_onnx_act_dims(b, x, d), tr = -1;
    bool prim = x->primary && x->consumers == 1;   /* the only way to the layer's output: still fusable */
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) return gr_onnx_set_act(b, n, 0, x->node, x, prim) ? 0 : -1;
    if (!strcmp(op, "Pad")) return map_pad(b, n, x);
    if (!strcmp(op, "Flatten")) {
        if (gr_onnx_attr_i(n, "axis", 1) == 1) return to_vector(b, n, x);
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Flatten at axis %lld (axis 1 only)",
                            (long long)gr_onnx_attr_i(n, "axis", 1)), -1;
    }
    if (!strcmp(op, "Transpose")) {
        int64_t p[4];
        int c = gr_onnx_attr_ints(n, "perm", p, 4);
        if (c != r) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a perm of %d axes on a rank-%d tensor", c, r), -1;
        if (r == 2 && p[0] == 0 && p[1] == 1) return gr_onnx_set_act(b, n, 0, x->node, x, false) ? 0 : -1;
        if (r == 3) {   /* tokens: any order of [N, T, C] (attention moves the batch axis) */
            val *o = gr_onnx_set_act(b, n, 0, x->node, x, prim);
            for (int k = 0; o && k < 3; k++) {
                if (p[k] < 0 || p[k] > 2) return gr_onnx_nerr(b, GR_ERR_FORMAT, "bad perm"), -1;
                o->perm[k] = x->perm[p[k]];
            }
            return o ? 0 : -1;
        }
        if (r != 4 || p[0] != 0) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only layout transposes of 4-D tensors that "
                                                      "keep the batch axis first are supported"), -1;
        val *o = gr_onnx_set_act(b, n, 0, x->node, x, prim);
        if (!o) return -1;
        for (int k = 0; k < 4; k++) {
            if (p[k] < 0 || p[k] > 3) return gr_onnx_nerr(b, GR_ERR_FORMAT, "bad perm"), -1;
            o->perm[k] = x->perm[p[k]];
        }
        return 0;
    }
    if (!strcmp(op, "Reshape")) {
        val *s = gr_onnx_in(b, n, 1);
        /* an attention's in_proj output split into [.., 3, ..] (torch 2's exporters) */
        if (r == 3 && s && s->kind == V_CONST && !gr_onnx_cload(b, s) && s->ct == CT_I && s->n > 3 && gr_onnx_is_qkv(b, x))
            return gr_onnx_map_attention(b, n, x);
        if (!s || s->kind != V_CONST || gr_onnx_cload(b, s) || s->ct != CT_I || s->n > GR_ONNX_MAX_RANK)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the target shape is not a constant at this input size"), -1;
        int64_t known = 1, neg = -1, total = r == 2 ? d[1] : r == 3 ? d[1] * d[2] : d[1] * d[2] * d[3];
        tr = (int)s->n;
        int64_t t0 = tr ? (s->i[0] == 0 ? d[0] : s->i[0]) : 0;
        if (tr < 1 || (t0 != d[0] && t0 != -1 && t0 != 1))
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a reshape that changes the batch dimension"), -1;
        t[0] = d[0];
        for (int k = 1; k < tr; k++) {
            t[k] = s->i[k] == 0 && k < r ? d[k] : s->i[k];
            if (t[k] == -1) neg = k;
            else known = gr_onnx_smul(known, t[k]);
        }
        if (neg >= 0 && known > 0) t[neg] = total / known;
    } else {   /* Squeeze / Unsqueeze: the resulting dims */
        int64_t axes[4] = {0};
        int na = 0;
        if (b->f->opset < 13) na = gr_onnx_attr_ints(n, "axes", axes, 4);
        else if (gr_onnx_in(b, n, 1)) {
            val *a = gr_onnx_in(b, n, 1);
            if (a->kind != V_CONST || gr_onnx_cload(b, a) || a->ct != CT_I || a->n > 4)
                return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "axes must be a constant"), -1;
            na = (int)a->n;
            for (int k = 0; k < na; k++) axes[k] = a->i[k];
        }
        bool sq = !strcmp(op, "Squeeze");
        int orank = sq ? r : r + na;
        bool mark[8] = {0};
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + orank : axes[k];
            if (a < 0 || a >= orank) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis %lld", (long long)axes[k]), -1;
            mark[a] = true;
        }
        tr = 0;
        for (int k = 0, s = 0; k < orank; k++) {
            if (sq) { if (!(na ? mark[k] : d[k] == 1 && k > 0)) t[tr++] = d[k]; }
            else t[tr++] = mark[k] ? 1 : d[s++];
        }
    }
    /* the same dims: nothing; [1, F]: a vector; a vector to [1, F, 1, 1]: the same 1x1 map */
    if (tr == r && !memcmp(t, d, sizeof(int64_t) * (size_t)r)) return gr_onnx_set_act(b, n, 0, x->node, x, false) ? 0 : -1;
    if (tr == 2 && t[0] == d[0] && t[1] == (r == 2 ? d[1] : r == 3 ? d[1] * d[2] : d[1] * d[2] * d[3]))
        return to_vector(b, n, x);
    /* [N, C, H, W] -> [N, C, 1, H*W] before graft's exported class token */
    if (r == 4 && tr == 4 && t[0] == d[0] && t[1] == d[1] && t[2] == 1 && t[3] == d[2] * d[3] && x->perm[1] == 3 &&
        x->perm[2] == 1 && x->perm[3] == 2) {
        int c = gr_onnx_map_tokens_row(b, n, x);
        if (c) return c < 0 ? -1 : 0;
    }
    /* [N, C, H, W] -> [N, C, H*W] (a patch embedding's map as tokens): the same node, T = H*W */
    if (r == 4 && tr == 3 && t[0] == d[0] && x->perm[1] == 3 && x->perm[2] == 1 && x->perm[3] == 2 && t[1] == d[1] &&
        t[2] == d[2] * d[3]) {
        val *o = gr_onnx_set_act(b, n, 0, x->node, x, false);
        if (o) { o->rank = 3; o->perm[0] = 0; o->perm[1] = 2; o->perm[2] = 1; }
        return o ? 0 : -1;
    }
    if (r == 2 && !x->fmap && tr == 4 && t[0] == d[0] && t[1] == d[1] && t[2] == 1 && t[3] == 1) {
        val *o = gr_onnx_set_act(b, n, 0, x->node, NULL, false);
        return o ? 0 : -1;
    }
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "this reshape of a rank-%d activation to rank %d is not supported "
                        "(graft maps flattening to [N, F] and layout-only changes)", r, tr), -1;
}

/* ------------------------------------------------------------------ dense */

int gr_onnx_map_dense(gr_onnx_b *b, onode *n, bool gemm) {
    val *a = gr_onnx_ain(b, n, 0);
    if (!a) return -1;
    /* a MatMul over the channels of a channels-last map ([N,H,W,C] x [C,O]: a
     * Linear per position, ConvNeXt) is a 1x1 convolution */
    bool pos = !gemm && ((a->rank == 4 && a->perm[3] == 3) || (a->rank == 3 && a->perm[2] == 2));
    if (a->rank != 2 && !pos)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a rank-%d input%s (graft maps [N, F] x [F, O] and [N, H, W, C] x "
                            "[C, O]; batched MatMul of tokens is not supported yet)", a->rank,
                            a->rank == 4 ? " whose last axis is not its channels" : ""), -1;
    val *wv = gr_onnx_cfloats(b, n, 1, -1, "weights");
    if (!wv) return -1;
    int h, w, I;
    gr_onnx_shape(b, a->node, &h, &w, &I);
    bool tb = gemm && gr_onnx_attr_i(n, "transB", 0);
    if (gemm && gr_onnx_attr_i(n, "transA", 0)) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "transA=1"), -1;
    if (wv->rank != 2 || wv->dims[tb ? 1 : 0] != I)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "weights '%.200s' are not [%s%d%s] for %d input features", wv->name,
                            tb ? "units, " : "", I, tb ? "" : ", units", I), -1;
    int64_t O = wv->dims[tb ? 0 : 1];
    float alpha = gemm ? gr_onnx_attr_f(n, "alpha", 1.0f) : 1.0f, beta = gemm ? gr_onnx_attr_f(n, "beta", 1.0f) : 1.0f;
    val *bias = NULL;
    onode *addn = NULL;
    int addk = -1;
    if (gemm && gr_onnx_in(b, n, 2)) {
        bias = gr_onnx_cfloats(b, n, 2, -1, "bias");
        if (!bias) return -1;
    } else if (!gemm) {   /* MatMul + Add(constant) = one dense layer with a bias */
        int k = gr_onnx_sole_consumer(b, n->output[0]);
        onode *c = k >= 0 ? b->g->node[k] : NULL;
        if (c && !strcmp(c->op_type, "Add") && c->n_input == 2) {
            val *other = gr_onnx_get(b, !strcmp(c->input[0], n->output[0]) ? c->input[1] : c->input[0]);
            if (other && other->kind == V_CONST && !gr_onnx_cload(b, other) && other->ct == CT_F && other->n == O) {
                bias = other;
                addn = c;
                addk = k;
                b->done[k] = true;
            }
        }
    }
    if (bias && bias->n != O && bias->n != 1)
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "bias has %lld values for %lld units", (long long)bias->n, (long long)O), -1;
    gr_layer_spec s = pos ? gr_conv2d((int)O, 1, 1, 1, GR_PAD_VALID, GR_ACT_LINEAR) : gr_dense((int)O, GR_ACT_LINEAR);
    s.use_bias = bias != NULL;
    int id = gr_onnx_append(b, n, s, a->node, NULL);
    if (id < 0) return -1;
    int *row = gr_malloc((size_t)I * sizeof(int), b->err);   /* graft row p <- ONNX row row[p] */
    if (!row) return -1;
    for (int p = 0; p < I; p++) row[p] = p;
    if (a->fmap) {
        int L[4], phys[4] = {1, a->fh, a->fw, a->fc}, c[4];
        for (int k = 0; k < 4; k++) L[k] = phys[a->fperm[k]];
        for (int p = 0; p < I; p++) {
            c[0] = 0; c[1] = p / (a->fw * a->fc); c[2] = p / a->fc % a->fw; c[3] = p % a->fc;
            row[p] = (c[a->fperm[1]] * L[2] + c[a->fperm[2]]) * L[3] + c[a->fperm[3]];
        }
    }
    float *k = gr_param_data(b->m, gr_node_param(b->m, id, "kernel"));   /* [I][O] (a 1x1 conv's HWIO too) */
    for (int p = 0; p < I; p++)
        for (int64_t o = 0; o < O; o++)
            k[(size_t)p * O + o] = alpha * (tb ? wv->f[o * I + row[p]] : wv->f[(int64_t)row[p] * O + o]);
    free(row);
    gr_onnx_release(wv);
    if (bias) {
        float *bb = gr_param_data(b->m, gr_node_param(b->m, id, "bias"));
        for (int64_t o = 0; o < O; o++) bb[o] = beta * bias->f[bias->n == 1 ? 0 : o];
    }
    if (!gr_onnx_set_act(b, n, 0, id, pos ? a : NULL, !addn)) return -1;
    val *o = gr_onnx_get(b, n->output[0]);
    if (!pos) o->rank = 2;
    o->fmap = false;
    if (addn) {
        int keep = b->node;
        b->node = addk;
        val *o2 = gr_onnx_set_act(b, addn, 0, id, o, true);
        b->node = keep;
        if (!o2) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ joins */

/* Add / Sum / Concat of activations; more than GR_MAX_INPUTS operands are
 * chained (concat(concat(a,b,c,d), e, ...)), one operand is the operand.  */
int gr_onnx_map_join(gr_onnx_b *b, onode *n, const char *op) {
    bool cat = !strcmp(op, "Concat");
    for (size_t k = 0; cat && k < n->n_input; k++) {   /* Concat(class token, tokens) */
        val *x = gr_onnx_in(b, n, k);
        if (x && x->kind == V_CONST) return gr_onnx_map_cls_concat(b, n);
    }
    if (n->n_input < 1 || n->n_input > 4096) return gr_onnx_nerr(b, GR_ERR_FORMAT, "%zu operands", n->n_input), -1;
    val *x0 = NULL;
    for (size_t k = 0; k < n->n_input; k++) {
        val *x = gr_onnx_in(b, n, k);
        if (x && x->kind == V_CONST)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of an activation and a constant ('%.200s') is not supported "
                                "yet (a bias outside Gemm/MatMul)", op, x->name), -1;
        if (!(x = gr_onnx_ain(b, n, k))) return -1;
        if (!x0) x0 = x;
        else if (x->rank != x0->rank || memcmp(x->perm, x0->perm, sizeof x->perm) || x->fmap != x0->fmap)
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "operands in different layouts"), -1;
    }
    if (x0->fmap) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s of flattened maps is not supported", op), -1;
    if (cat) {
        int64_t ax = gr_onnx_attr_i(n, "axis", 1);
        if (ax < 0) ax += x0->rank;
        bool chan = x0->rank == 2 ? ax == 1 : ax >= 0 && ax < 4 && x0->perm[ax] == 3;
        if (!chan) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "only concatenation over channels is supported"), -1;
    }
    if (n->n_input == 1) return gr_onnx_set_act(b, n, 0, x0->node, x0, false) ? 0 : -1;
    int id = -1, part = 0;
    for (size_t k = 0; k < n->n_input;) {
        gr_layer_spec s;
        memset(&s, 0, sizeof s);
        s.op = cat ? GR_OP_CONCAT : GR_OP_ADD;
        if (id >= 0) s.inputs[s.n_inputs++] = id;
        while (s.n_inputs < GR_MAX_INPUTS && k < n->n_input) s.inputs[s.n_inputs++] = gr_onnx_in(b, n, k++)->node;
        char suffix[24];
        snprintf(suffix, sizeof suffix, "part%d", ++part);
        if ((id = gr_onnx_append(b, n, s, 0, k < n->n_input ? suffix : NULL)) < 0) return -1;
    }
    return gr_onnx_set_act(b, n, 0, id, x0, true) ? 0 : -1;
}

int gr_onnx_map_softmax(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int64_t ax = gr_onnx_attr_i(n, "axis", b->f->opset < 13 ? 1 : -1);
    if (ax < 0) ax += x->rank;
    int H, W, C;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    bool ok = x->rank == 2 ? ax == 1 && !x->fmap
                           : (b->f->opset >= 13 ? ax >= 0 && ax < 4 && x->perm[ax] == 3 : ax == 1 && H == 1 && W == 1);
    if (!ok) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "softmax over axis %lld of a rank-%d tensor (graft: over "
                                 "channels)", (long long)ax, x->rank), -1;
    int id = gr_onnx_append(b, n, gr_softmax(), x->node, NULL);
    return id < 0 || !gr_onnx_set_act(b, n, 0, id, x, true) ? -1 : 0;
}

