/* onnx_attn.c — Vision Transformers: the token ops, and the helpers the
 * attention matcher (onnx_mha.c) shares.
 *
 * A token sequence [N, T, D] is a rank-3 value on a graft node [N, H, W, D]
 * with T = H*W (onnx_net.h): the patch-embedding Conv's output reshaped to
 * [N, D, H*W] and transposed is that Conv's node, no layer.  Then:
 *
 *   Concat(Expand(class_token), tokens, axis 1)     -> class_token
 *   Add(tokens, constant [1, T, D])                  -> position_embedding
 *   Gather(tokens, 0, axis 1), Slice [i:i+1] of T    -> select_token
 *   a Slice of an attention's in_proj output         -> onnx_mha.c        */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

int gr_onnx_nerr_at(gr_onnx_b *b, int k, const char *fmt, ...) {
    char what[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int keep = b->node;
    b->node = k;
    gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s", what);
    b->node = keep;
    return -1;
}

/* Shape node p of a hinted value: its output made a constant. */
val *gr_onnx_shape_of_hint(gr_onnx_b *b, onode *p, const gr_onnx_hints *h) {
    for (int j = 0; h && p->n_input == 1 && !strcmp(p->op_type, "Shape") && j < h->n; j++) {
        if (strcmp(h->name[j], p->input[0])) continue;
        int64_t r = h->rank[j], s = gr_onnx_attr_i(p, "start", 0), e = gr_onnx_attr_i(p, "end", r);
        if (s < 0) s += r;
        if (e < 0) e += r;
        s = s < 0 ? 0 : s > r ? r : s;
        e = e < s ? s : e > r ? r : e;
        val *o = gr_onnx_out(b, p, 0);
        if (!o || !(o->i = gr_malloc((size_t)(e - s + 1) * sizeof(int64_t), b->err))) return NULL;
        o->kind = V_CONST;
        o->ct = CT_I;
        o->rank = 1;
        o->dims[0] = o->n = e - s;
        for (int64_t i = s; i < e; i++) o->i[i - s] = h->d[j][i];
        return o;
    }
    return NULL;
}

/* Makes value `name` a constant: when a later node (shape arithmetic not
 * reached yet) makes it, folds that node first (and its inputs).        */
static val *ensure_const(gr_onnx_b *b, const char *name, int depth, const gr_onnx_hints *h) {
    val *v = gr_onnx_get(b, name);
    if (!v || v->kind == V_ACT || depth > 64) return NULL;
    if (v->kind == V_CONST) return gr_onnx_cload(b, v) ? NULL : v;
    for (size_t k = (size_t)b->node + 1; k < b->g->n_node; k++) {
        onode *p = b->g->node[k];
        bool makes = false;
        for (size_t o = 0; o < p->n_output && !makes; o++) makes = !strcmp(p->output[o], name);
        if (!makes) continue;
        if (b->done[k]) return NULL;
        if (gr_onnx_shape_of_hint(b, p, h)) {
            b->done[k] = true;
            return gr_onnx_get(b, name);
        }
        for (size_t i = 0; i < p->n_input; i++)
            if (p->input[i][0] && !ensure_const(b, p->input[i], depth + 1, h)) return NULL;
        int keep = b->node;
        b->node = (int)k;
        int r = gr_onnx_fold(b, p);
        b->node = keep;
        if (r <= 0) return NULL;
        b->done[k] = true;
        v = gr_onnx_get(b, name);
        return v && v->kind == V_CONST && !gr_onnx_cload(b, v) ? v : NULL;
    }
    return NULL;
}

/* Input k of node n as an int64 constant with at most max values: count or -1. */
int gr_onnx_cints(gr_onnx_b *b, onode *n, size_t k, int64_t *out, int max, const gr_onnx_hints *h) {
    if (k >= n->n_input || !n->input[k][0]) return 0;
    val *v = ensure_const(b, n->input[k], 0, h);
    if (!v || v->ct != CT_I || v->n > max) return -1;
    for (int64_t j = 0; j < v->n; j++) out[j] = v->i[j];
    return (int)v->n;
}

val *gr_onnx_ensure_const(gr_onnx_b *b, const char *name, const gr_onnx_hints *h) {
    return ensure_const(b, name, 0, h);
}

/* ------------------------------------------------------------ tokens */

/* select_token of x's token `index` (x: tokens [N, T, D]); the output rank. */
static int emit_select(gr_onnx_b *b, onode *n, val *x, int64_t index, int rank) {
    int id = gr_onnx_append(b, n, gr_select_token((int)index), x->node, NULL);
    val *o = id < 0 ? NULL : gr_onnx_set_act(b, n, 0, id, x, true);
    if (!o) return -1;
    o->rank = rank;
    if (rank == 3) { o->perm[0] = 0; o->perm[1] = 1; o->perm[2] = 2; }
    return 0;
}

static bool tokens_nd(const val *x) { return x->rank == 3 && x->perm[0] == 0 && x->perm[1] == 1 && x->perm[2] == 2; }

/* x is an NCHW map [N, D, 1, T] (tokens as graft exports them). */
static bool nchw_row(gr_onnx_b *b, const val *x) {
    int H, W, C;
    if (x->kind != V_ACT || x->rank != 4 || x->perm[0] != 0 || x->perm[1] != 3 || x->perm[2] != 1 || x->perm[3] != 2)
        return false;
    gr_onnx_shape(b, x->node, &H, &W, &C);
    return H == 1;
}

/* The nodes reading `name` (at most 3 in r): their count. */
static int readers_of(gr_onnx_b *b, const char *name, int *r) {
    int c = 0;
    for (size_t k = 0; k < b->g->n_node; k++)
        for (size_t i = 0; i < b->g->node[k]->n_input; i++)
            if (!strcmp(b->g->node[k]->input[i], name)) {
                if (c < 3) r[c] = (int)k;
                c++;
            }
    return c;
}

/* graft's exported class token (onnx_export.c): on `row` (tokens [N, D, 1,
 * T] of x's node), Slice [0, 1) of axis 3 -> depthwise 1x1 Conv with zero
 * weights, the token as bias -> Concat(that, row, axis 3).  1 mapped (the
 * nodes done, the Concat's output a class_token layer), 0 not that form. */
static int map_cls_form(gr_onnx_b *b, onode *n, val *x, const char *row) {
    int r[3], rc[3], rk[3];
    if (readers_of(b, row, r) != 2) return 0;
    onode *sl = NULL, *cat = NULL;
    for (int j = 0; j < 2; j++) {
        onode *c = b->g->node[r[j]];
        if (!strcmp(c->op_type, "Slice") && !strcmp(c->input[0], row)) sl = c;
        else if (!strcmp(c->op_type, "Concat") && c->n_input == 2 && !strcmp(c->input[1], row)) cat = c;
    }
    int64_t st[2], en[2], ax[2];
    if (!sl || !cat || gr_onnx_attr_i(cat, "axis", 0) != 3 || gr_onnx_cints(b, sl, 1, st, 1, NULL) != 1 ||
        gr_onnx_cints(b, sl, 2, en, 1, NULL) != 1 || gr_onnx_cints(b, sl, 3, ax, 1, NULL) != 1 || st[0] != 0 ||
        en[0] != 1 || ax[0] != 3 || sl->n_input > 4 || readers_of(b, sl->output[0], rc) != 1)
        return 0;
    onode *cv = b->g->node[rc[0]];
    int H, W, D;
    gr_onnx_shape(b, x->node, &H, &W, &D);
    if (strcmp(cv->op_type, "Conv") || cv->n_input != 3 || gr_onnx_attr_i(cv, "group", 1) != D ||
        readers_of(b, cv->output[0], rk) != 1 || b->g->node[rk[0]] != cat || strcmp(cat->input[0], cv->output[0]))
        return 0;
    val *w = gr_onnx_get(b, cv->input[1]), *t = gr_onnx_get(b, cv->input[2]);
    if (!w || !t || w->kind != V_CONST || t->kind != V_CONST || gr_onnx_cload(b, w) || gr_onnx_cload(b, t) ||
        w->ct != CT_F || t->ct != CT_F || w->n != D || t->n != D)
        return 0;
    for (int64_t i = 0; i < D; i++) if (w->f[i] != 0) return 0;
    int id = gr_onnx_append(b, cat, gr_class_token(), x->node, NULL);
    if (id < 0) return -1;
    memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "token")), t->f, (size_t)D * sizeof(float));
    for (int j = 0; j < 2; j++) b->done[r[j]] = true;
    b->done[rc[0]] = true;
    if (strcmp(n->op_type, "Slice") && !gr_onnx_set_act(b, n, 0, x->node, x, false)) return -1;   /* the Reshape */
    return gr_onnx_set_act(b, cat, 0, id, x, true) ? 1 : -1;
}

int gr_onnx_map_tokens_row(gr_onnx_b *b, onode *n, val *x) { return map_cls_form(b, n, x, n->output[0]); }

int gr_onnx_map_slice(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int64_t st[2], en[2], ax[2] = {0}, sp[2] = {1, 1};
    int ca = gr_onnx_cints(b, n, 3, ax, 1, NULL);
    if (x->rank == 3 && ca == 1 && (ax[0] == 2 || ax[0] == -1) && x->perm[2] == 2 && x->perm[0] != 0)
        return gr_onnx_map_attention(b, n, x);
    int64_t d[4];
    gr_onnx_act_dims(b, x, d);
    if (x->rank == 4 && ca == 1 && (ax[0] == 1 || ax[0] == -3) && gr_onnx_is_qkv(b, x))   /* graft's export */
        return gr_onnx_map_attention(b, n, x);
    if (nchw_row(b, x) && ca == 1 && (ax[0] == 3 || ax[0] == -1)) {   /* graft's export: [N, D, 1, T] */
        int r = map_cls_form(b, n, x, n->input[0]);
        if (r) return r < 0 ? -1 : 0;
        if (gr_onnx_cints(b, n, 1, st, 1, NULL) == 1 && gr_onnx_cints(b, n, 2, en, 1, NULL) == 1 &&
            (n->n_input < 5 || (gr_onnx_cints(b, n, 4, sp, 1, NULL) == 1 && sp[0] == 1))) {
            int64_t lo = st[0] < 0 ? st[0] + d[3] : st[0], hi = en[0] < 0 ? en[0] + d[3] : en[0] > d[3] ? d[3] : en[0];
            if (lo >= 0 && hi == lo + 1) return emit_select(b, n, x, lo, 4);
        }
    }
    if (tokens_nd(x) && ca == 1 && (ax[0] == 1 || ax[0] == -2) && gr_onnx_cints(b, n, 1, st, 1, NULL) == 1 &&
        gr_onnx_cints(b, n, 2, en, 1, NULL) == 1 && (n->n_input < 5 || (gr_onnx_cints(b, n, 4, sp, 1, NULL) == 1 && sp[0] == 1))) {
        int64_t lo = st[0] < 0 ? st[0] + d[1] : st[0], hi = en[0] < 0 ? en[0] + d[1] : en[0] > d[1] ? d[1] : en[0];
        if (lo >= 0 && hi == lo + 1) return emit_select(b, n, x, lo, 3);
    }
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Slice of an activation is supported as one token of a token "
                        "sequence [N, T, D] (axis 1) and as the q/k/v split of an attention"), -1;
}

int gr_onnx_map_gather(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_in(b, n, 0), *ix = n->n_input > 1 ? ensure_const(b, n->input[1], 0, NULL) : NULL;
    if (!x || x->kind != V_ACT)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Gather of constants by indices computed from the image"), -1;
    int64_t ax = gr_onnx_attr_i(n, "axis", 0), d[4];
    gr_onnx_act_dims(b, x, d);
    if (tokens_nd(x) && (ax == 1 || ax == -2) && ix && ix->ct == CT_I && ix->n == 1 && ix->rank == 0) {
        int64_t i = ix->i[0] < 0 ? ix->i[0] + d[1] : ix->i[0];
        if (i >= 0 && i < d[1]) return emit_select(b, n, x, i, 2);
    }
    return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Gather of an activation is supported only as one token (a scalar index) "
                        "of a token sequence [N, T, D] over axis 1"), -1;
}

int gr_onnx_map_cls_concat(gr_onnx_b *b, onode *n) {
    val *c = gr_onnx_in(b, n, 0), *x = gr_onnx_in(b, n, 1);
    int64_t ax = gr_onnx_attr_i(n, "axis", 0);
    if (n->n_input != 2 || !c || !x || c->kind != V_CONST || x->kind != V_ACT || !tokens_nd(x) || (ax != 1 && ax != -2))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Concat of a constant and an activation is supported only as a "
                            "class token put before a token sequence: Concat(token [N, 1, D], tokens [N, T, D], "
                            "axis 1)"), -1;
    int H, W, D;
    gr_onnx_shape(b, x->node, &H, &W, &D);
    if (gr_onnx_cload(b, c) || c->ct != CT_F || c->rank != 3 || c->dims[1] != 1 || c->dims[2] != D ||
        (c->dims[0] != 1 && c->dims[0] != b->batch))
        return gr_onnx_nerr(b, GR_ERR_SHAPE, "the class token '%.200s' is not [batch, 1, %d]", c->name, D), -1;
    for (int64_t i = D; i < c->n; i++)
        if (c->f[i] != c->f[i % D])
            return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the class token '%.200s' differs between images", c->name), -1;
    int id = gr_onnx_append(b, n, gr_class_token(), x->node, NULL);
    if (id < 0) return -1;
    memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "token")), c->f, (size_t)D * sizeof(float));
    return gr_onnx_set_act(b, n, 0, id, x, true) ? 0 : -1;
}

/* 1: k is not of x's whole shape (not a position embedding). */
int gr_onnx_map_pos_embed(gr_onnx_b *b, onode *n, val *x, val *k) {
    int64_t d[4];
    gr_onnx_act_dims(b, x, d);
    if (x->rank == 4 && nchw_row(b, x)) {   /* graft's export: [1, D, 1, T] on [N, D, 1, T] */
        if (k->n != d[1] * d[3] || k->n == d[1] || k->ct != CT_F || k->rank != 4 || k->dims[0] != 1 ||
            k->dims[1] != d[1] || k->dims[2] != 1 || k->dims[3] != d[3])
            return 1;
        int id = gr_onnx_append(b, n, gr_pos_embedding(), x->node, NULL);
        if (id < 0) return -1;
        float *e = gr_param_data(b->m, gr_node_param(b->m, id, "embedding"));   /* [1][T][D] */
        for (int64_t c = 0; c < d[1]; c++)
            for (int64_t t = 0; t < d[3]; t++) e[t * d[1] + c] = k->f[c * d[3] + t];
        gr_onnx_release(k);
        return gr_onnx_set_act(b, n, 0, id, x, true) ? 0 : -1;
    }
    if (x->rank != 3 || k->n != d[1] * d[2] || k->n == d[2]) return 1;   /* not the whole shape: per channel, elsewhere */
    bool ok = tokens_nd(x) && k->ct == CT_F && k->rank <= 3;
    for (int j = 0; ok && j < k->rank; j++) ok = k->dims[k->rank - 1 - j] == (j < 2 ? d[2 - j] : 1);
    if (!ok)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Add of '%.200s' (%lld values): graft adds a constant per channel, "
                            "or one of the whole shape [1, T, D] to a token sequence (a position embedding)", k->name,
                            (long long)k->n), -1;
    int id = gr_onnx_append(b, n, gr_pos_embedding(), x->node, NULL);
    if (id < 0) return -1;
    memcpy(gr_param_data(b->m, gr_node_param(b->m, id, "embedding")), k->f, (size_t)k->n * sizeof(float));
    gr_onnx_release(k);
    return gr_onnx_set_act(b, n, 0, id, x, true) ? 0 : -1;
}
