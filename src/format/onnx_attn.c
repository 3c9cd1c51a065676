/* onnx_attn.c — Vision Transformers: tokens and self-attention as graft ops.
 *
 * A token sequence [N, T, D] is a rank-3 value on a graft node [N, H, W, D]
 * with T = H*W (onnx_net.h): the patch-embedding Conv's output reshaped to
 * [N, D, H*W] and transposed is that Conv's node, no layer.  Then:
 *
 *   Concat(Expand(class_token), tokens, axis 1)     -> class_token
 *   Add(tokens, constant [1, T, D])                  -> position_embedding
 *   Gather(tokens, 0, axis 1), Slice [i:i+1] of T    -> select_token
 *   torchvision's EncoderBlock attention as torch.onnx.export writes it
 *   (nn.MultiheadAttention, opsets 13 and 17):
 *     Transpose(1,0,2) -> MatMul in_proj (+ Add bias) -> Slice q | k | v
 *     q: Reshape [T, N*heads, hd], Transpose(1,0,2), Div sqrt(hd)
 *     k: Reshape, Transpose(1,2,0)       v: Reshape, Transpose(1,0,2)
 *     MatMul(q, k), Softmax(last axis), MatMul(., v), Transpose(1,0,2),
 *     Reshape [T*N, D], Gemm out_proj, Reshape [T, N, D]
 *                                                    -> self_attention
 * The in_proj MatMul was already mapped (a 1x1 conv over the tokens) when
 * the first Slice is reached; the matcher takes its weights into the one
 * self_attention node.  A graph that does not fit the pattern (another
 * softmax axis, a head split that does not divide the width, a missing
 * piece) fails at load naming the node, its operator and the opset.      */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

/* "PATH: node ... : ..." about node k (not the current one). */
#define AT(b, k, ...) (gr_onnx_nerr_at((b), (k), __VA_ARGS__), -1)
static void gr_onnx_nerr_at(gr_onnx_b *b, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void gr_onnx_nerr_at(gr_onnx_b *b, int k, const char *fmt, ...) {
    char what[500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int keep = b->node;
    b->node = k;
    gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "%s", what);
    b->node = keep;
}

/* The dims of values inside the attention pattern (never built as values),
 * for the Shape nodes a dynamic-batch export reads them with.            */
typedef struct {
    const char *name[8];
    int rank[8];
    int64_t d[8][3];
    int n;
} shape_hints;

static void hint(shape_hints *h, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2) {
    if (!h || h->n >= 8) return;
    h->name[h->n] = name;
    h->rank[h->n] = rank;
    h->d[h->n][0] = d0; h->d[h->n][1] = d1; h->d[h->n][2] = d2;
    h->n++;
}

/* Shape node p of a hinted value: its output made a constant. */
static val *shape_of_hint(gr_onnx_b *b, onode *p, const shape_hints *h) {
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
static val *ensure_const(gr_onnx_b *b, const char *name, int depth, const shape_hints *h) {
    val *v = gr_onnx_get(b, name);
    if (!v || v->kind == V_ACT || depth > 64) return NULL;
    if (v->kind == V_CONST) return gr_onnx_cload(b, v) ? NULL : v;
    for (size_t k = (size_t)b->node + 1; k < b->g->n_node; k++) {
        onode *p = b->g->node[k];
        bool makes = false;
        for (size_t o = 0; o < p->n_output && !makes; o++) makes = !strcmp(p->output[o], name);
        if (!makes) continue;
        if (b->done[k]) return NULL;
        if (shape_of_hint(b, p, h)) {
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
static int cints(gr_onnx_b *b, onode *n, size_t k, int64_t *out, int max, const shape_hints *h) {
    if (k >= n->n_input || !n->input[k][0]) return 0;
    val *v = ensure_const(b, n->input[k], 0, h);
    if (!v || v->ct != CT_I || v->n > max) return -1;
    for (int64_t j = 0; j < v->n; j++) out[j] = v->i[j];
    return (int)v->n;
}

/* The one node after the current one reading `name` that is an `op`, when
 * every other reader is a Shape (a dynamic-batch export's); else -1.      */
static int sole(gr_onnx_b *b, const char *name, const char *op) {
    int found = -1, readers = 0;
    for (size_t k = (size_t)b->node + 1; k < b->g->n_node; k++) {
        onode *c = b->g->node[k];
        for (size_t i = 0; i < c->n_input; i++) {
            if (strcmp(c->input[i], name)) continue;
            readers++;
            if (!strcmp(c->op_type, op) && found < 0 && !b->done[k]) found = (int)k;
            else if (strcmp(c->op_type, "Shape")) return -1;
        }
    }
    val *v = gr_onnx_get(b, name);
    return v && v->consumers == readers ? found : -1;
}

static bool perm_is(onode *n, int a, int c, int d) {
    int64_t p[3];
    return gr_onnx_attr_ints(n, "perm", p, 3) == 3 && p[0] == a && p[1] == c && p[2] == d;
}

/* A one-value float constant input of binary node n that is not `name`. */
static bool scalar_other(gr_onnx_b *b, onode *n, const char *name, double *f) {
    if (n->n_input != 2) return false;
    const char *o = !strcmp(n->input[0], name) ? n->input[1] : !strcmp(n->input[1], name) ? n->input[0] : NULL;
    if (!o || (!strcmp(n->op_type, "Div") && strcmp(n->input[0], name))) return false;
    val *v = ensure_const(b, o, 0, NULL);
    if (!v || v->n != 1) return false;
    *f = v->ct == CT_F ? v->f[0] : (double)v->i[0];
    return true;
}

/* Follows scalar Mul/Div nodes after value *name (the scale of the scores),
 * multiplying *scale; *name and *k become the last one's.  0 or -1.       */
static int follow_scale(gr_onnx_b *b, const char **name, int *k, double *scale, int *idx, int *ni) {
    for (;;) {
        int j = gr_onnx_sole_consumer(b, *name);
        if (j < 0 || b->done[j]) return 0;
        onode *m = b->g->node[j];
        bool mul = !strcmp(m->op_type, "Mul"), dv = !strcmp(m->op_type, "Div");
        double f;
        if (!(mul || dv) || !scalar_other(b, m, *name, &f)) return 0;
        if (f == 0 || !isfinite(f)) return AT(b, j, "the attention scale %g", f);
        *scale *= mul ? f : 1.0 / f;
        idx[(*ni)++] = j;
        *name = m->output[0];
        *k = j;
        if (*ni > 40) return AT(b, j, "more than 40 scalings of the attention scores");
    }
}

/* Layer name from a node name: its folder ("/a/b/Slice" -> "a/b"), unique. */
static void module_name(gr_onnx_b *b, onode *n, const char *fallback, char name[64]) {
    const char *s = n->name && n->name[0] == '/' ? n->name + 1 : "";
    const char *slash = strrchr(s, '/');
    char full[300];
    if (slash && slash > s) snprintf(full, sizeof full, "%.*s", (int)(slash - s), s);
    else snprintf(full, sizeof full, "%s", fallback);
    gr_onnx_unique_name(b, full, name);
}

/* ------------------------------------------------------------ attention */

typedef struct {
    int slice, reshape, tr, mm;   /* node indices along one of q, k, v */
    const char *out;              /* the value entering the product */
} att_path;

/* Slice s of qkv -> Reshape [T, N*heads, hd] -> Transpose(perm): the path. */
static int head_split(gr_onnx_b *b, int s, int64_t T, int64_t D, const int *perm, att_path *p, int64_t *hd,
                      const shape_hints *hs) {
    onode *sl = b->g->node[s];
    p->slice = s;
    if ((p->reshape = sole(b, sl->output[0], "Reshape")) < 0)
        return AT(b, s, "the slice of the attention's in_proj output is not reshaped into heads");
    onode *rs = b->g->node[p->reshape];
    int64_t t[4];
    int c = cints(b, rs, 1, t, 4, hs);
    if (c != 3)
        return AT(b, p->reshape, "the head split is not a constant [tokens, batch*heads, head_dim] shape");
    int64_t N = b->batch, h = t[2];
    if (h < 1 || D % h || (t[0] != T && t[0] != -1 && t[0] != 0) || (t[1] != N * (D / h) && t[1] != -1))
        return AT(b, p->reshape, "a head split into [%lld, %lld, %lld] of %lld tokens of width %lld: the head width "
                  "must divide the width (heads = width / head width)", (long long)t[0], (long long)t[1],
                  (long long)t[2], (long long)T, (long long)D);
    if (*hd && *hd != h) return AT(b, p->reshape, "q, k and v are split into heads of different widths");
    *hd = h;
    if ((p->tr = sole(b, rs->output[0], "Transpose")) < 0 || !perm_is(b->g->node[p->tr], perm[0], perm[1], perm[2]))
        return AT(b, p->reshape, "the heads are not transposed as nn.MultiheadAttention's export does (perm [%d, %d, %d])",
                  perm[0], perm[1], perm[2]);
    p->out = b->g->node[p->tr]->output[0];
    return 0;
}

/* Whether node k is a MatMul reading `name` as input `pos`. */
static bool matmul_reads(gr_onnx_b *b, int k, const char *name, int pos) {
    onode *m = b->g->node[k];
    return !strcmp(m->op_type, "MatMul") && m->n_input == 2 && !strcmp(m->input[pos], name);
}

/* Slice n0 of qkv (its in_proj, a 1x1 conv D -> 3D, the last layer): the
 * whole attention up to the [T, N, D] value before the last Transpose.   */
static int map_attention(gr_onnx_b *b, onode *n0, val *qkv) {
    gr_model *m = b->m;
    int pid = qkv->node;
    const gr_node *pn = pid >= 0 ? &m->nodes[pid] : NULL;
    if (!pn || pid != gr_model_num_layers(m) - 1 || pn->s.op != GR_OP_CONV2D || pn->s.kh != 1 || pn->s.kw != 1 ||
        pn->s.groups > 1 || pn->s.act != GR_ACT_LINEAR || pn->ic * 3 != pn->oc)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Slice of the channels of an activation is supported only as the "
                            "q/k/v split of an attention's in_proj output (a MatMul of width 3*D)"), -1;
    int in_id = pn->in[0];
    int64_t D = pn->ic, T = (int64_t)pn->oh * pn->ow;
    /* the three Slices: q, k, v by their start */
    int sl[3] = {-1, -1, -1}, nslice = 0, nshape = 0;
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *c = b->g->node[k];
        for (size_t i = 0; i < c->n_input; i++) {
            if (strcmp(c->input[i], qkv->name)) continue;
            if (!strcmp(c->op_type, "Shape")) { nshape++; continue; }
            if (strcmp(c->op_type, "Slice") || i != 0 || b->done[k])
                return AT(b, (int)k, "reads the attention's in_proj output where only its q/k/v Slices may");
            int64_t st[2], en[2], ax[2], sp[2] = {1, 1};
            int cs = cints(b, c, 1, st, 1, NULL), ce = cints(b, c, 2, en, 1, NULL), ca = cints(b, c, 3, ax, 1, NULL),
                cp = c->n_input > 4 ? cints(b, c, 4, sp, 1, NULL) : 0;
            if (cs != 1 || ce != 1 || ca != 1 || cp < 0 || (ax[0] != 2 && ax[0] != -1) || sp[0] != 1)
                return AT(b, (int)k, "the q/k/v split must slice the last axis with constant bounds, step 1");
            int64_t lo = st[0] < 0 ? st[0] + 3 * D : st[0], hi = en[0] < 0 ? en[0] + 3 * D : en[0];
            if (hi > 3 * D) hi = 3 * D;
            int which = lo == 0 && hi == D ? 0 : lo == D && hi == 2 * D ? 1 : lo == 2 * D && hi == 3 * D ? 2 : -1;
            if (which < 0 || sl[which] >= 0)
                return AT(b, (int)k, "slice [%lld, %lld) of the in_proj output of width %lld: not q, k and v (thirds)",
                          (long long)lo, (long long)hi, (long long)(3 * D));
            sl[which] = (int)k;
            nslice++;
        }
    }
    if (nslice != 3 || nshape + nslice != qkv->consumers)
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "the attention's in_proj output is read by %d Slices (q, k, v: 3) "
                            "and %d other nodes", nslice, qkv->consumers - nslice), -1;
    static const int P102[3] = {1, 0, 2}, P120[3] = {1, 2, 0};
    att_path q, k, v;
    int64_t hd = 0;
    shape_hints hs = {.n = 0};
    for (int j = 0; j < 3; j++) hint(&hs, b->g->node[sl[j]]->output[0], 3, T, b->batch, D);
    if (head_split(b, sl[0], T, D, P102, &q, &hd, &hs) || head_split(b, sl[1], T, D, P120, &k, &hd, &hs) ||
        head_split(b, sl[2], T, D, P102, &v, &hd, &hs))
        return -1;
    int idx[64], ni = 0, last;
    double scale = 1;
    if (follow_scale(b, &q.out, &last, &scale, idx, &ni) || follow_scale(b, &k.out, &last, &scale, idx, &ni)) return -1;
    int mm1 = gr_onnx_sole_consumer(b, q.out);
    if (mm1 < 0 || !matmul_reads(b, mm1, q.out, 0) || !matmul_reads(b, mm1, k.out, 1))
        return AT(b, mm1 >= 0 ? mm1 : q.tr, "the attention scores are not MatMul(q, k^T) of the heads");
    const char *sc = b->g->node[mm1]->output[0];
    if (follow_scale(b, &sc, &last, &scale, idx, &ni)) return -1;
    int smx = gr_onnx_sole_consumer(b, sc);
    if (smx < 0 || strcmp(b->g->node[smx]->op_type, "Softmax"))
        return AT(b, mm1, "the attention scores are not followed by a Softmax");
    int64_t sax = gr_onnx_attr_i(b->g->node[smx], "axis", b->f->opset < 13 ? 1 : -1);
    if (sax != -1 && sax != 2)
        return AT(b, smx, "softmax over axis %lld of the attention scores [batch*heads, queries, keys]: graft's "
                  "attention normalizes over the keys (the last axis)", (long long)sax);
    const char *pr = b->g->node[smx]->output[0];
    int mm2 = gr_onnx_sole_consumer(b, pr);
    if (mm2 < 0 || !matmul_reads(b, mm2, pr, 0) || !matmul_reads(b, mm2, v.out, 1))
        return AT(b, smx, "the attention weights are not multiplied by v (MatMul(softmax, v))");
    int tr4 = sole(b, b->g->node[mm2]->output[0], "Transpose");
    if (tr4 < 0 || !perm_is(b->g->node[tr4], 1, 0, 2)) return AT(b, mm2, "the heads are not merged (Transpose 1,0,2)");
    int rs3 = sole(b, b->g->node[tr4]->output[0], "Reshape");
    int64_t t[4];
    if (rs3 < 0 || cints(b, b->g->node[rs3], 1, t, 4, &hs) != 2 || t[1] != D)
        return AT(b, tr4, "the merged heads are not reshaped to [tokens*batch, width]");
    int gm = sole(b, b->g->node[rs3]->output[0], "Gemm");
    onode *g = gm >= 0 ? b->g->node[gm] : NULL;
    if (!g || strcmp(g->op_type, "Gemm") || strcmp(g->input[0], b->g->node[rs3]->output[0]) ||
        gr_onnx_attr_i(g, "transA", 0) || gr_onnx_attr_f(g, "alpha", 1) != 1 || gr_onnx_attr_f(g, "beta", 1) != 1)
        return AT(b, rs3, "the attention's out_proj is not a Gemm (alpha 1, beta 1) of the merged heads");
    bool tb = gr_onnx_attr_i(g, "transB", 0) != 0;
    val *w = gr_onnx_get(b, g->input[1]), *bias = g->n_input > 2 && g->input[2][0] ? gr_onnx_get(b, g->input[2]) : NULL;
    if (!w || w->kind != V_CONST || gr_onnx_cload(b, w) || w->ct != CT_F || w->rank != 2 || w->dims[0] != D ||
        w->dims[1] != D || (bias && (bias->kind != V_CONST || gr_onnx_cload(b, bias) || bias->ct != CT_F || bias->n != D)))
        return AT(b, gm, "out_proj weights [%lld, %lld] and bias must be constants", (long long)D, (long long)D);
    hint(&hs, g->output[0], 2, T * b->batch, D, 0);
    int rs4 = sole(b, g->output[0], "Reshape");
    if (rs4 < 0 || cints(b, b->g->node[rs4], 1, t, 4, &hs) != 3 || t[2] != D)
        return AT(b, gm, "the out_proj output is not reshaped back to [tokens, batch, width]");
    /* the in_proj conv becomes the attention's in_kernel / in_bias */
    int H = (int)(D / hd);
    size_t nk = (size_t)(D * 3 * D);
    float *wi = gr_malloc((nk + 3 * (size_t)D) * sizeof(float), b->err);
    if (!wi) return -1;
    int pk = gr_node_param(m, pid, "kernel"), pbias = gr_node_param(m, pid, "bias");
    memcpy(wi, gr_param_data(m, pk), nk * sizeof(float));
    for (int64_t j = 0; j < 3 * D; j++) wi[nk + (size_t)j] = pbias >= 0 ? gr_param_data(m, pbias)[j] : 0.0f;
    if (gr_model_truncate(m, pid - 1, b->err)) { free(wi); return -1; }
    gr_layer_spec s = gr_attention(H);
    s.alpha = (float)scale;
    s.inputs[0] = in_id;
    s.n_inputs = 1;
    module_name(b, n0, "self_attention", s.name);
    gr_error e = {0};
    int id = gr_model_append(m, s, &e);
    if (id < 0) { free(wi); return gr_onnx_nerr(b, e.code ? e.code : GR_ERR_SHAPE, "%s", e.msg), -1; }
    memcpy(gr_param_data(m, gr_node_param(m, id, "in_kernel")), wi, nk * sizeof(float));
    memcpy(gr_param_data(m, gr_node_param(m, id, "in_bias")), wi + nk, 3 * (size_t)D * sizeof(float));
    free(wi);
    float *ok = gr_param_data(m, gr_node_param(m, id, "out_kernel")), *ob = gr_param_data(m, gr_node_param(m, id, "out_bias"));
    for (int64_t i = 0; i < D; i++)   /* [in][out] */
        for (int64_t o = 0; o < D; o++) ok[i * D + o] = tb ? w->f[o * D + i] : w->f[i * D + o];
    for (int64_t o = 0; o < D; o++) ob[o] = bias ? bias->f[o] : 0.0f;
    gr_onnx_release(w);
    const att_path *ps[3] = {&q, &k, &v};
    for (int j = 0; j < 3; j++) b->done[ps[j]->slice] = b->done[ps[j]->reshape] = b->done[ps[j]->tr] = true;
    for (int j = 0; j < ni; j++) b->done[idx[j]] = true;
    b->done[mm1] = b->done[smx] = b->done[mm2] = b->done[tr4] = b->done[rs3] = b->done[gm] = b->done[rs4] = true;
    /* [T, N, D]: the layout of the in_proj output (perm {1, 0, 2}) */
    return gr_onnx_set_act(b, b->g->node[rs4], 0, id, qkv, true) ? 0 : -1;
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

int gr_onnx_map_slice(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_ain(b, n, 0);
    if (!x) return -1;
    int64_t st[2], en[2], ax[2] = {0}, sp[2] = {1, 1};
    int ca = cints(b, n, 3, ax, 1, NULL);
    if (x->rank == 3 && ca == 1 && (ax[0] == 2 || ax[0] == -1) && x->perm[2] == 2 && x->perm[0] != 0)
        return map_attention(b, n, x);
    int64_t d[4];
    gr_onnx_act_dims(b, x, d);
    if (tokens_nd(x) && ca == 1 && (ax[0] == 1 || ax[0] == -2) && cints(b, n, 1, st, 1, NULL) == 1 &&
        cints(b, n, 2, en, 1, NULL) == 1 && (n->n_input < 5 || (cints(b, n, 4, sp, 1, NULL) == 1 && sp[0] == 1))) {
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
    if (k->n != d[1] * d[2] || k->n == d[2]) return 1;   /* not the whole shape: per channel, elsewhere */
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
