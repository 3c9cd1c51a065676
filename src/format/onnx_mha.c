/* onnx_mha.c — a multi-head self-attention subgraph as one graft
 * self_attention node, whichever way the exporter wrote it.
 *
 * The in_proj (a MatMul of width 3*D, already mapped to a 1x1 conv over the
 * tokens: the value qkv) is where the matcher starts.  From there it follows
 * every path to the two products and the out_proj, tracking what each axis
 * of each tensor holds as a list of "atoms": T (tokens), N (batch), S (which
 * of q, k, v), D (the width, until a reshape splits it into H heads of E),
 * K (keys), O (out_proj outputs).  An axis is the row-major product of its
 * atoms; atoms of size 1 are left out (a batch of 1 or one head change no
 * memory order).  Reshape (only splitting and merging whole atoms, D into H
 * x E once), Transpose, Squeeze and Unsqueeze move atoms; Gather or Slice
 * of S picks q, k or v; scalar Mul/Div on q, k or the scores multiply the
 * scale.  That covers, on torchvision's EncoderBlock (nn.MultiheadAttention,
 * batch_first):
 *   torch 1.13, TorchScript exporter (opsets 13, 17): 3 Slices of qkv
 *     [T, N, 3D]; q, v: Reshape [T, N*H, E], Transpose (1,0,2); k:
 *     Transpose (1,2,0); Div sqrt(E) on q; MatMul, Softmax, MatMul,
 *     Transpose (1,0,2), Reshape [T*N, D], Gemm, Reshape [T, N, D];
 *   torch 2.x, TorchScript exporter (opsets 14-17; scaled_dot_product_
 *     attention): qkv Reshape [T, N, 3, D], Unsqueeze 0, Transpose
 *     (3,1,2,0,4), Squeeze 3, 3 Gathers on axis 0; each Reshape [T, N*H, E],
 *     Transpose (1,0,2), Reshape [N, H, T, E]; k Transpose (0,1,3,2); q and
 *     k each Mul sqrt(1/sqrt(E)) (computed from a Shape of q); MatMul,
 *     Softmax, MatMul, Transpose (2,0,1,3), Reshape [T*N, D], Gemm, Reshape;
 *   torch 2.x, dynamo exporter (opset 18): the same with constants folded,
 *     k as Transpose (0,2,1) then Reshape [N, H, E, T], -1 for the batch
 *     (anywhere) when it is symbolic.
 * Reshape targets computed from Shape nodes of the tensors inside (a
 * symbolic batch) read the tracked shapes (hints); every Shape of such a
 * tensor is folded with them.  Anything else (another softmax axis, a head
 * split that does not divide the width, a reader that is not part of the
 * pattern) fails at load naming the node, its operator and the opset.     */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

enum { A_T = 1, A_N, A_S, A_D, A_H, A_E, A_K, A_O };
#define MR 6   /* tracked rank */
#define MA 6   /* atoms per axis */

typedef struct {
    int rank;
    int na[MR];
    signed char a[MR][MA];
} adims;

typedef struct {
    const char *name;   /* the value entering its product */
    adims d;
    int mm, pos;        /* that MatMul and the input it is */
} endpoint;

typedef struct {
    gr_onnx_b *b;
    int64_t T, N, D, H, E;   /* H 0: not split yet */
    double scale;
    gr_onnx_hints hs;
    int done[512], nd;
    endpoint ep[3];
    bool have[3];
} mha;

#define AT gr_onnx_nerr_at

static int64_t asize(const mha *m, int a) {
    switch (a) {
    case A_T: case A_K: return m->T;
    case A_N: return m->N;
    case A_S: return 3;
    case A_D: case A_O: return m->D;
    case A_H: return m->H;
    default: return m->E;
    }
}

static int64_t dsize(const mha *m, const adims *d, int k) {
    int64_t s = 1;
    for (int j = 0; j < d->na[k]; j++) s *= asize(m, d->a[k][j]);
    return s;
}

/* D as H x E once the heads are known (atoms of size 1 left out). */
static int normalize(mha *m, adims *d) {
    if (!m->H) return 0;
    for (int k = 0; k < d->rank; k++) {
        signed char out[MA];
        int n = 0;
        for (int j = 0; j < d->na[k]; j++) {
            if (d->a[k][j] != A_D) { if (n < MA) out[n++] = d->a[k][j]; continue; }
            if (m->H > 1 && n < MA) out[n++] = A_H;
            if (m->E > 1 && n < MA) out[n++] = A_E;
        }
        if (n >= MA) return -1;
        d->na[k] = n;
        memcpy(d->a[k], out, (size_t)n);
    }
    return 0;
}

static bool same_axis(const adims *x, int i, const adims *y, int j) {
    return x->na[i] == y->na[j] && !memcmp(x->a[i], y->a[j], (size_t)x->na[i]);
}

static bool axis_is(const adims *d, int k, int a0, int a1) {
    int n = a1 ? 2 : a0 ? 1 : 0;
    return d->na[k] == n && (n < 1 || d->a[k][0] == a0) && (n < 2 || d->a[k][1] == a1);
}

static void hint_of(mha *m, const char *name, const adims *d) {
    gr_onnx_hints *h = &m->hs;
    if (h->n >= GR_ONNX_MAX_HINTS || d->rank > GR_ONNX_HINT_RANK) return;
    h->name[h->n] = name;
    h->rank[h->n] = d->rank;
    for (int k = 0; k < d->rank; k++) h->d[h->n][k] = dsize(m, d, k);
    h->n++;
}

static int mark(mha *m, int k) {
    if (m->nd >= (int)(sizeof m->done / sizeof m->done[0]))
        return AT(m->b, k, "the attention pattern spans more than %d nodes", m->nd);
    m->done[m->nd++] = k;
    return 0;
}

/* The nodes reading `name` that are not Shapes (at most 4, in *r); -1
 * when the value has other readers (a graph output).  Only the in_proj
 * output has readers from the current node (the first) back.             */
static int readers(mha *m, const char *name, int *r) {
    gr_onnx_b *b = m->b;
    int n = 0, all = 0;
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *c = b->g->node[k];
        for (size_t i = 0; i < c->n_input; i++) {
            if (strcmp(c->input[i], name)) continue;
            all++;
            if (!strcmp(c->op_type, "Shape")) continue;
            if (n < 4) r[n] = (int)k;
            n++;
        }
    }
    val *v = gr_onnx_get(b, name);
    return v && v->consumers == all ? n : -1;
}

/* ----------------------------------------------------------- the moves */

/* Reshape node k of x (dims d) into *o: whole atoms split and merged, D
 * split into H x E the first time it has to be.                        */
static int do_reshape(mha *m, int k, const adims *d, adims *o) {
    gr_onnx_b *b = m->b;
    onode *n = b->g->node[k];
    int64_t t[GR_ONNX_MAX_RANK], in[MR], total = 1;
    int tr = gr_onnx_cints(b, n, 1, t, GR_ONNX_MAX_RANK, &m->hs);
    if (tr < 1 || tr > MR) return AT(b, k, "the attention's reshape target is not a constant of rank 1 to %d", MR);
    for (int j = 0; j < d->rank; j++) total *= (in[j] = dsize(m, d, j));
    bool zero = gr_onnx_attr_i(n, "allowzero", 0) != 0;
    int64_t known = 1;
    int neg = -1;
    for (int j = 0; j < tr; j++) {
        if (t[j] == 0 && !zero && j < d->rank) t[j] = in[j];
        if (t[j] == -1 && neg < 0) neg = j;
        else if (t[j] < 1) return AT(b, k, "reshape target dim %lld in the attention", (long long)t[j]);
        else known = gr_onnx_smul(known, t[j]);
    }
    int64_t asked[GR_ONNX_MAX_RANK];
    memcpy(asked, t, sizeof asked);
    if (neg >= 0) t[neg] = known > 0 && total % known == 0 ? total / known : 0;
    /* the atoms in memory order, cut into the target's axes */
    signed char flat[MR * MA + 2];
    int nf = 0;
    for (int j = 0; j < d->rank; j++)
        for (int a = 0; a < d->na[j]; a++) flat[nf++] = d->a[j][a];
    o->rank = tr;
    int p = 0;
    for (int j = 0; j < tr; j++) {
        int64_t need = t[j];
        o->na[j] = 0;
        while (need > 1) {
            int64_t s = p < nf ? asize(m, flat[p]) : 0;
            if (p < nf && s <= need && need % s == 0) {
                need /= s;
            } else if (p < nf && flat[p] == A_D && !m->H && s % need == 0) {   /* D -> H x E */
                m->H = need;
                m->E = s / need;
                memmove(flat + p + 2, flat + p + 1, (size_t)(nf - p - 1));
                flat[p] = A_H;
                flat[p + 1] = A_E;
                nf++;
                need = 1;
                if (m->E == 1) { memmove(flat + p + 1, flat + p + 2, (size_t)(nf - p - 2)); nf--; }
            } else {
                char ts[120], is[120];
                int l = 0;
                for (int q = 0; q < tr; q++) l += snprintf(ts + l, sizeof ts - (size_t)l, "%s%lld", q ? ", " : "", (long long)asked[q]);
                l = 0;
                for (int q = 0; q < d->rank; q++) l += snprintf(is + l, sizeof is - (size_t)l, "%s%lld", q ? ", " : "", (long long)in[q]);
                return AT(b, k, "a reshape of [%s] into [%s] inside the attention (%lld tokens of width %lld) that does "
                          "not split or merge whole axes (a head split: the head width must divide the width)",
                          is, ts, (long long)m->T, (long long)m->D);
            }
            if (o->na[j] >= MA) return AT(b, k, "too many axes merged");
            o->a[j][o->na[j]++] = flat[p++];
        }
    }
    if (p != nf) return AT(b, k, "the attention's reshape does not keep every value");
    return normalize(m, o);
}

static int do_transpose(mha *m, int k, const adims *d, adims *o) {
    onode *n = m->b->g->node[k];
    int64_t p[GR_ONNX_MAX_RANK];
    int c = gr_onnx_attr_ints(n, "perm", p, GR_ONNX_MAX_RANK);
    if (c == 0) for (c = 0; c < d->rank; c++) p[c] = d->rank - 1 - c;
    if (c != d->rank) return AT(m->b, k, "a perm of %d axes on a rank-%d tensor", c, d->rank);
    bool seen[MR] = {0};
    o->rank = d->rank;
    for (int j = 0; j < c; j++) {
        if (p[j] < 0 || p[j] >= c || seen[p[j]]) return AT(m->b, k, "bad perm");
        seen[p[j]] = true;
        o->na[j] = d->na[p[j]];
        memcpy(o->a[j], d->a[p[j]], MA);
    }
    return 0;
}

/* Squeeze / Unsqueeze: axes from the attribute (before opset 13) or input 1. */
static int do_squeeze(mha *m, int k, const adims *d, adims *o, bool sq) {
    gr_onnx_b *b = m->b;
    onode *n = b->g->node[k];
    int64_t ax[MR];
    int na = b->f->opset < 13 ? gr_onnx_attr_ints(n, "axes", ax, MR) : gr_onnx_cints(b, n, 1, ax, MR, &m->hs);
    if (na < 0) return AT(b, k, "its axes are not a constant");
    int orank = sq ? d->rank : d->rank + na;
    if (orank > MR) return AT(b, k, "rank %d inside the attention", orank);
    bool sel[MR] = {0};
    for (int j = 0; j < na; j++) {
        int64_t a = ax[j] < 0 ? ax[j] + orank : ax[j];
        if (a < 0 || a >= orank) return AT(b, k, "axis %lld", (long long)ax[j]);
        sel[a] = true;
    }
    o->rank = 0;
    for (int j = 0, s = 0; j < orank; j++) {
        if (sq) {
            bool drop = na ? sel[j] : d->na[j] == 0;
            if (drop && d->na[j]) return AT(b, k, "squeezes axis %d of size %lld", j, (long long)dsize(m, d, j));
            if (drop) continue;
            o->na[o->rank] = d->na[j];
            memcpy(o->a[o->rank++], d->a[j], MA);
        } else if (sel[j]) {
            o->na[o->rank++] = 0;
        } else {
            o->na[o->rank] = d->na[s];
            memcpy(o->a[o->rank++], d->a[s++], MA);
        }
    }
    return 0;
}

/* Node k picking q (0), k (1) or v (2) out of the S atom of d: Gather of a
 * constant index on an axis that is S alone, or Slice of the thirds of an
 * axis starting with S.  The component, or -1 (error set).               */
static int do_select(mha *m, int k, const adims *d, adims *o) {
    gr_onnx_b *b = m->b;
    onode *n = b->g->node[k];
    int64_t ax = 0, st[2], en[2], sp[2] = {1, 1};
    int comp = -1;
    *o = *d;
    if (!strcmp(n->op_type, "Gather")) {
        ax = gr_onnx_attr_i(n, "axis", 0);
        if (ax < 0) ax += d->rank;
        val *iv = gr_onnx_ensure_const(b, n->input[1], &m->hs);
        if (ax < 0 || ax >= d->rank || !axis_is(d, (int)ax, A_S, 0) || !iv || iv->ct != CT_I || iv->n != 1 ||
            iv->rank > 1)
            return AT(b, k, "a Gather inside the attention that does not pick q, k or v of the in_proj output");
        comp = (int)(iv->i[0] < 0 ? iv->i[0] + 3 : iv->i[0]);
        if (iv->rank == 0) {   /* the axis goes */
            for (int j = (int)ax; j + 1 < d->rank; j++) { o->na[j] = d->na[j + 1]; memcpy(o->a[j], d->a[j + 1], MA); }
            o->rank--;
        } else {
            o->na[ax] = 0;
        }
    } else {
        int ca = gr_onnx_cints(b, n, 3, &ax, 1, &m->hs);
        int cs = gr_onnx_cints(b, n, 1, st, 1, &m->hs), ce = gr_onnx_cints(b, n, 2, en, 1, &m->hs);
        int cp = n->n_input > 4 ? gr_onnx_cints(b, n, 4, sp, 1, &m->hs) : 0;
        if (ca == 0) ax = 0;
        if (ax < 0) ax += d->rank;
        if (cs != 1 || ce != 1 || ca < 0 || cp < 0 || sp[0] != 1 || ax < 0 || ax >= d->rank || d->na[ax] < 1 ||
            d->a[ax][0] != A_S)
            return AT(b, k, "the q/k/v split must slice the axis of the in_proj output's thirds with constant bounds, "
                      "step 1");
        int64_t w = dsize(m, d, (int)ax), R = w / 3;
        int64_t lo = st[0] < 0 ? st[0] + w : st[0], hi = en[0] < 0 ? en[0] + w : en[0] > w ? w : en[0];
        comp = lo == 0 && hi == R ? 0 : lo == R && hi == 2 * R ? 1 : lo == 2 * R && hi == w ? 2 : -1;
        if (comp < 0)
            return AT(b, k, "slice [%lld, %lld) of the in_proj output of width %lld: not q, k and v (thirds)",
                      (long long)lo, (long long)hi, (long long)w);
        o->na[ax]--;
        memmove(o->a[ax], o->a[ax] + 1, MA - 1);
    }
    if (comp < 0 || comp > 2) return AT(b, k, "index %d of q, k, v", comp);
    return comp;
}

/* A one-value float constant input of binary node k other than `name`
 * (for Div: the divisor): its value in *f.                              */
static bool scalar_other(mha *m, int k, const char *name, double *f) {
    onode *n = m->b->g->node[k];
    if (n->n_input != 2) return false;
    const char *o = !strcmp(n->input[0], name) ? n->input[1] : !strcmp(n->input[1], name) ? n->input[0] : NULL;
    if (!o || (!strcmp(n->op_type, "Div") && strcmp(n->input[0], name))) return false;
    val *v = gr_onnx_ensure_const(m->b, o, &m->hs);
    if (!v || v->n != 1) return false;
    *f = v->ct == CT_F ? v->f[0] : (double)v->i[0];
    return true;
}

static bool is_op(onode *n, const char *op) { return !strcmp(n->op_type, op); }
static bool is_move(onode *n) {
    return is_op(n, "Reshape") || is_op(n, "Transpose") || is_op(n, "Squeeze") || is_op(n, "Unsqueeze");
}

static int do_move(mha *m, int k, const adims *d, adims *o) {
    onode *n = m->b->g->node[k];
    adims t = *d;
    if (normalize(m, &t)) return AT(m->b, k, "too many axes");
    if (is_op(n, "Reshape")) return do_reshape(m, k, &t, o);
    if (is_op(n, "Transpose")) return do_transpose(m, k, &t, o);
    return do_squeeze(m, k, &t, o, is_op(n, "Squeeze"));
}

/* Follows value `name` (dims d) of component comp (-1: before the q/k/v
 * split) to the product it enters.                                       */
static int walk(mha *m, const char *name, adims d, int comp, int depth) {
    gr_onnx_b *b = m->b;
    for (int steps = 0;; steps++) {
        hint_of(m, name, &d);
        int r[4], nr = readers(m, name, r), from = m->nd ? m->done[m->nd - 1] : b->node;
        if (steps > 40 || depth > 2) return AT(b, from, "the attention pattern is longer than graft follows");
        if (nr < 0) return AT(b, from, "'%.200s' inside the attention is read from outside it", name);
        if (nr == 0) return AT(b, from, "'%.200s' inside the attention is not read by the attention's products", name);
        onode *n = b->g->node[r[0]];
        if (comp < 0 && nr > 1) {   /* the q/k/v split */
            if (nr != 3) return AT(b, r[0], "the in_proj output is read by %d nodes (q, k, v: 3)", nr);
            for (int j = 0; j < 3; j++) {
                onode *s = b->g->node[r[j]];
                if (!is_op(s, "Gather") && !is_op(s, "Slice"))
                    return AT(b, r[j], "reads the attention's in_proj output where only its q/k/v split may");
                adims o;
                int c = do_select(m, r[j], &d, &o);
                if (c < 0 || mark(m, r[j])) return -1;
                if (m->have[c]) return AT(b, r[j], "picks %s a second time", c == 0 ? "q" : c == 1 ? "k" : "v");
                m->have[c] = true;
                if (walk(m, s->output[0], o, c, depth + 1)) return -1;
            }
            return 0;
        }
        if (nr != 1) return AT(b, r[1], "a second reader of '%.200s' inside the attention", name);
        if (comp < 0 && (is_op(n, "Gather") || is_op(n, "Slice")))
            return AT(b, r[0], "picks one of q, k, v but not the others (they must all be read from '%.200s')", name);
        adims o;
        if (is_move(n)) {
            if (do_move(m, r[0], &d, &o) || mark(m, r[0])) return -1;
            d = o;
            name = n->output[0];
            continue;
        }
        double f;
        if (comp >= 0 && comp < 2 && (is_op(n, "Mul") || is_op(n, "Div")) && scalar_other(m, r[0], name, &f)) {
            if (f == 0 || !isfinite(f)) return AT(b, r[0], "the attention scale %g", f);
            m->scale *= is_op(n, "Mul") ? f : 1.0 / f;
            if (mark(m, r[0])) return -1;
            name = n->output[0];
            continue;
        }
        if (comp >= 0 && is_op(n, "MatMul") && n->n_input == 2) {
            m->ep[comp] = (endpoint){.name = name, .d = d, .mm = r[0], .pos = strcmp(n->input[0], name) ? 1 : 0};
            if (normalize(m, &m->ep[comp].d)) return AT(b, r[0], "too many axes");
            return 0;
        }
        return AT(b, r[0], "a %s inside the attention (graft follows reshapes, transposes, the q/k/v split, scalar "
                  "scales and the two products)", n->op_type);
    }
}

/* Follows value `name` (dims d) through moves to a node of op `stop` (the
 * out_proj): its index, with *d the dims entering it.                      */
static int walk_to(mha *m, const char **name, adims *d, bool (*stop)(mha *, int, const adims *)) {
    gr_onnx_b *b = m->b;
    for (int steps = 0; steps < 40; steps++) {
        hint_of(m, *name, d);
        int r[4], nr = readers(m, *name, r), from = m->done[m->nd - 1];
        if (nr != 1) return AT(b, from, "'%.200s' inside the attention is read %s", *name,
                               nr < 0 ? "from outside it" : nr ? "more than once" : "by nothing");
        onode *n = b->g->node[r[0]];
        if (stop(m, r[0], d)) return r[0];
        if (!is_move(n))
            return AT(b, r[0], "a %s where the attention's heads are merged (graft expects reshapes and "
                      "transposes to the out_proj)", n->op_type);
        adims o;
        if (do_move(m, r[0], d, &o) || mark(m, r[0])) return -1;
        *d = o;
        *name = n->output[0];
    }
    return AT(b, m->done[m->nd - 1], "the attention pattern is longer than graft follows");
}

/* The merged heads: axes of T and N in any order, then H x E (rank 2 or 3). */
static bool at_out_proj(mha *m, int k, const adims *d) {
    onode *n = m->b->g->node[k];
    bool conv = is_op(n, "Conv");
    if (!is_op(n, "Gemm") && !is_op(n, "MatMul") && !conv) return false;
    adims t = *d;
    normalize(m, &t);
    if (conv) {   /* graft's export: a 1x1 Conv of [N, H x E, 1, T] */
        int64_t ks[2];
        return t.rank == 4 && gr_onnx_attr_ints(n, "kernel_shape", ks, 2) == 2 && ks[0] == 1 && ks[1] == 1 &&
               gr_onnx_attr_i(n, "group", 1) == 1 && (m->N > 1 ? axis_is(&t, 0, A_N, 0) : !t.na[0]) &&
               (m->H > 1 ? axis_is(&t, 1, A_H, m->E > 1 ? A_E : 0) : axis_is(&t, 1, m->E > 1 ? A_E : 0, 0)) &&
               !t.na[2] && axis_is(&t, 3, A_T, 0);
    }
    int r = t.rank, last = r - 1;
    if (r < 2 || r > 3) return false;
    if (!(m->H > 1 ? axis_is(&t, last, A_H, m->E > 1 ? A_E : 0) : axis_is(&t, last, m->E > 1 ? A_E : 0, 0)))
        return false;
    int nt = 0, nn = 0, other = 0;
    for (int j = 0; j < last; j++)
        for (int a = 0; a < t.na[j]; a++) t.a[j][a] == A_T ? nt++ : t.a[j][a] == A_N ? nn++ : other++;
    return nt == 1 && nn == (m->N > 1) && !other;
}

/* A rank-3 value of the axes [T], [N] ([] for a batch of 1), [O]; or the
 * NCHW map [N, O, 1, T] (graft's export).                                 */
static bool is_final(const mha *m, const adims *d, int perm[4]) {
    if (d->rank == 4) {
        perm[0] = 0, perm[1] = 3, perm[2] = 1, perm[3] = 2;
        return (m->N > 1 ? axis_is(d, 0, A_N, 0) : !d->na[0]) && axis_is(d, 1, A_O, 0) && !d->na[2] &&
               axis_is(d, 3, A_T, 0);
    }
    if (d->rank != 3) return false;
    bool seen[3] = {0};
    for (int j = 0; j < 3; j++) {
        int p = axis_is(d, j, A_T, 0) ? 1 : axis_is(d, j, A_O, 0) ? 2 : (m->N > 1 ? axis_is(d, j, A_N, 0) : !d->na[j]) ? 0 : -1;
        if (p < 0 || seen[p]) return false;
        seen[p] = true;
        perm[j] = p;
    }
    return true;
}

/* The out_proj node k on input dims d: weights [D, D] ([out, in] with
 * transB) and bias, as graft's [in][out] in ok / ob; *outk the node whose
 * output holds the projection (the Add of a MatMul's bias).              */
static int out_proj(mha *m, int k, float *ok, float *ob, int *outk) {
    gr_onnx_b *b = m->b;
    onode *g = b->g->node[k];
    int64_t D = m->D;
    bool gemm = is_op(g, "Gemm"), conv = is_op(g, "Conv"), tb = conv || (gemm && gr_onnx_attr_i(g, "transB", 0) != 0);
    if (gemm && (gr_onnx_attr_i(g, "transA", 0) || gr_onnx_attr_f(g, "alpha", 1) != 1 || gr_onnx_attr_f(g, "beta", 1) != 1))
        return AT(b, k, "the attention's out_proj is not a Gemm (alpha 1, beta 1) of the merged heads");
    if (g->n_input < 2 || strcmp(g->input[0], m->ep[0].name))
        return AT(b, k, "the merged heads are not the out_proj's data input");
    val *w = gr_onnx_get(b, g->input[1]), *bias = !is_op(g, "MatMul") && g->n_input > 2 && g->input[2][0] ? gr_onnx_get(b, g->input[2]) : NULL;
    *outk = k;
    if (is_op(g, "MatMul")) {   /* MatMul + Add(bias) */
        int r[4];
        if (readers(m, g->output[0], r) == 1 && is_op(b->g->node[r[0]], "Add") && b->g->node[r[0]]->n_input == 2) {
            onode *a = b->g->node[r[0]];
            val *c = gr_onnx_get(b, a->input[strcmp(a->input[0], g->output[0]) ? 0 : 1]);
            if (c && c->kind == V_CONST) { bias = c; *outk = r[0]; }
        }
    }
    if (!w || w->kind != V_CONST || gr_onnx_cload(b, w) || w->ct != CT_F || w->rank != (conv ? 4 : 2) || w->dims[0] != D ||
        w->dims[1] != D || w->n != D * D || (bias && (bias->kind != V_CONST || gr_onnx_cload(b, bias) || bias->ct != CT_F || bias->n != D)))
        return AT(b, k, "out_proj weights [%lld, %lld] and bias must be constants", (long long)D, (long long)D);
    for (int64_t i = 0; i < D; i++)   /* [in][out] */
        for (int64_t o = 0; o < D; o++) ok[i * D + o] = tb ? w->f[o * D + i] : w->f[i * D + o];
    for (int64_t o = 0; o < D; o++) ob[o] = bias ? bias->f[o] : 0.0f;
    gr_onnx_release(w);
    return 0;
}

/* Layer name from the entry node's folder ("/a/b/Reshape" -> "a/b"; graft's
 * export: "a/b/Slice_7" -> "a/b"), unique.                                */
static void module_name(gr_onnx_b *b, onode *n, char name[64]) {
    const char *s = n->name ? n->name + (n->name[0] == '/') : "";
    const char *slash = strrchr(s, '/');
    char full[300];
    if (slash && slash > s) snprintf(full, sizeof full, "%.*s", (int)(slash - s), s);
    else snprintf(full, sizeof full, "self_attention");
    gr_onnx_unique_name(b, full, name);
}

bool gr_onnx_is_qkv(gr_onnx_b *b, const val *x) {
    if (x->kind != V_ACT || x->node < 0) return false;
    const gr_node *pn = &b->m->nodes[x->node];
    /* tokens [.., 3D] (rank 3), or graft's export: an NCHW map [N, 3D, 1, T] */
    if (!(x->rank == 3 && x->perm[2] == 2) &&
        !(x->rank == 4 && x->perm[0] == 0 && x->perm[1] == 3 && x->perm[2] == 1 && x->perm[3] == 2 && pn->oh == 1))
        return false;
    return x->node == gr_model_num_layers(b->m) - 1 && pn->s.op == GR_OP_CONV2D && pn->s.kh == 1 && pn->s.kw == 1 &&
           pn->s.groups <= 1 && pn->s.act == GR_ACT_LINEAR && pn->ic * 3 == pn->oc;
}

int gr_onnx_map_attention(gr_onnx_b *b, onode *n0, val *qkv) {
    gr_model *gm = b->m;
    if (!gr_onnx_is_qkv(b, qkv))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a Slice of the channels of an activation is supported only as the "
                            "q/k/v split of an attention's in_proj output (a MatMul of width 3*D)"), -1;
    int pid = qkv->node;
    const gr_node *pn = &gm->nodes[pid];
    mha *m = calloc(1, sizeof *m);
    if (!m) return gr_onnx_nerr(b, GR_ERR_NOMEM, "out of memory"), -1;
    *m = (mha){.b = b, .T = (int64_t)pn->oh * pn->ow, .N = b->batch, .D = pn->ic, .scale = 1};
    int in_id = pn->in[0], rc = -1;
    float *wi = NULL;
    adims d = {.rank = qkv->rank};
    for (int k = 0; k < qkv->rank; k++) {   /* rank 3: physical [N, T, C]; rank 4: [N, 1, T, C] */
        int p = qkv->rank == 3 ? qkv->perm[k] : qkv->perm[k] == 1 ? -1 : qkv->perm[k] == 0 ? 0 : qkv->perm[k] - 1;
        if (p == 0 && m->N > 1) d.na[k] = 1, d.a[k][0] = A_N;
        else if (p == 1) d.na[k] = 1, d.a[k][0] = A_T;
        else if (p == 2) d.na[k] = 2, d.a[k][0] = A_S, d.a[k][1] = A_D;
    }
    int keep = b->node;
    if (walk(m, qkv->name, d, -1, 0)) goto out;
    if (!m->have[0] || !m->have[1] || !m->have[2]) { AT(b, keep, "the in_proj output is not split into q, k and v"); goto out; }
    if (!m->H) m->H = 1, m->E = m->D;   /* one head: D is its width */
    for (int c = 0; c < 3; c++) normalize(m, &m->ep[c].d);
    endpoint *q = &m->ep[0], *kk = &m->ep[1], *v = &m->ep[2];
    int mm1 = q->mm, r = q->d.rank;
    if (kk->mm != mm1 || q->pos != 0 || kk->pos != 1) { AT(b, mm1, "the attention scores are not MatMul(q, k^T) of the heads"); goto out; }
    if (v->mm == mm1 || v->pos != 1) { AT(b, v->mm, "v does not enter the second product as its right side"); goto out; }
    /* q [.., T, E]  k [.., E, T]  v [.., T, E] with the same batch axes holding N and H */
    int eE = m->E > 1 ? A_E : 0;
    bool ok = r >= 2 && kk->d.rank == r && v->d.rank == r && axis_is(&q->d, r - 2, A_T, 0) && axis_is(&q->d, r - 1, eE, 0) &&
              axis_is(&kk->d, r - 2, eE, 0) && axis_is(&kk->d, r - 1, A_T, 0) && axis_is(&v->d, r - 2, A_T, 0) &&
              axis_is(&v->d, r - 1, eE, 0);
    int nn = 0, nh = 0;
    for (int j = 0; ok && j < r - 2; j++) {
        ok = same_axis(&q->d, j, &kk->d, j) && same_axis(&q->d, j, &v->d, j);
        for (int a = 0; ok && a < q->d.na[j]; a++) {
            int at = q->d.a[j][a];
            nn += at == A_N, nh += at == A_H;
            ok = at == A_N || at == A_H;
        }
    }
    if (!ok || nn != (m->N > 1) || nh != (m->H > 1)) {
        AT(b, mm1, "the attention's q, k and v are not [batch and heads..., tokens, head width] (k transposed) alike");
        goto out;
    }
    if (mark(m, mm1)) goto out;
    /* the scores: scalar scales, Softmax over the keys */
    const char *sc = b->g->node[mm1]->output[0];
    adims sd = q->d;
    sd.na[r - 1] = 1, sd.a[r - 1][0] = A_K;
    int smx = -1, rr[4];
    for (;;) {
        hint_of(m, sc, &sd);
        int nr = readers(m, sc, rr);
        double f;
        if (nr == 1 && (is_op(b->g->node[rr[0]], "Mul") || is_op(b->g->node[rr[0]], "Div")) &&
            scalar_other(m, rr[0], sc, &f)) {
            if (f == 0 || !isfinite(f)) { AT(b, rr[0], "the attention scale %g", f); goto out; }
            m->scale *= is_op(b->g->node[rr[0]], "Mul") ? f : 1.0 / f;
            if (mark(m, rr[0])) goto out;
            sc = b->g->node[rr[0]]->output[0];
            continue;
        }
        smx = nr == 1 && is_op(b->g->node[rr[0]], "Softmax") ? rr[0] : -1;
        break;
    }
    if (smx < 0) { AT(b, mm1, "the attention scores are not followed by a Softmax"); goto out; }
    int64_t sax = gr_onnx_attr_i(b->g->node[smx], "axis", b->f->opset < 13 ? 1 : -1);
    if (sax != -1 && sax != r - 1) {
        AT(b, smx, "softmax over axis %lld of the attention scores [batch and heads..., queries, keys]: graft's attention "
           "normalizes over the keys (the last axis)", (long long)sax);
        goto out;
    }
    if (mark(m, smx)) goto out;
    const char *pr = b->g->node[smx]->output[0];
    hint_of(m, pr, &sd);
    int mm2 = v->mm;
    if (readers(m, pr, rr) != 1 || rr[0] != mm2 || strcmp(b->g->node[mm2]->input[0], pr)) {
        AT(b, smx, "the attention weights are not multiplied by v (MatMul(softmax, v))");
        goto out;
    }
    if (mark(m, mm2)) goto out;
    /* the heads merged and projected */
    const char *cx = b->g->node[mm2]->output[0];
    adims cd = v->d;
    int gk = walk_to(m, &cx, &cd, at_out_proj);
    if (gk < 0) goto out;
    m->ep[0].name = cx;
    size_t nk = (size_t)(m->D * 3 * m->D), D = (size_t)m->D;
    if (!(wi = gr_malloc((nk + 3 * D + D * D + D) * sizeof(float), b->err))) goto out;
    float *ok_ = wi + nk + 3 * D, *ob = ok_ + D * D;
    int outk = gk;
    if (out_proj(m, gk, ok_, ob, &outk) || mark(m, gk) || (outk != gk && mark(m, outk))) goto out;
    const char *po = b->g->node[outk]->output[0];
    adims od = cd;
    int oax = is_op(b->g->node[gk], "Conv") ? 1 : od.rank - 1;   /* the out_proj's features */
    od.na[oax] = 1, od.a[oax][0] = A_O;
    int perm[4], last = outk;
    while (!is_final(m, &od, perm)) {   /* back to tokens [T, N, D] in some order */
        hint_of(m, po, &od);
        adims o;
        if (readers(m, po, rr) != 1 || !is_move(b->g->node[rr[0]])) {
            AT(b, last, "the out_proj output is not reshaped back to [tokens, batch, width]");
            goto out;
        }
        if (do_move(m, rr[0], &od, &o) || mark(m, rr[0])) goto out;
        od = o;
        last = rr[0];
        po = b->g->node[last]->output[0];
    }
    /* the in_proj conv becomes the attention's in_kernel / in_bias */
    int pk = gr_node_param(gm, pid, "kernel"), pbias = gr_node_param(gm, pid, "bias");
    memcpy(wi, gr_param_data(gm, pk), nk * sizeof(float));
    for (size_t j = 0; j < 3 * D; j++) wi[nk + j] = pbias >= 0 ? gr_param_data(gm, pbias)[j] : 0.0f;
    if (gr_model_truncate(gm, pid - 1, b->err)) goto out;
    gr_layer_spec s = gr_attention((int)m->H);
    s.alpha = (float)m->scale;
    s.inputs[0] = in_id;
    s.n_inputs = 1;
    module_name(b, n0, s.name);
    gr_error e = {0};
    int id = gr_model_append(gm, s, &e);
    if (id < 0) { gr_onnx_nerr(b, e.code ? e.code : GR_ERR_SHAPE, "%s", e.msg); goto out; }
    memcpy(gr_param_data(gm, gr_node_param(gm, id, "in_kernel")), wi, nk * sizeof(float));
    memcpy(gr_param_data(gm, gr_node_param(gm, id, "in_bias")), wi + nk, 3 * D * sizeof(float));
    memcpy(gr_param_data(gm, gr_node_param(gm, id, "out_kernel")), ok_, D * D * sizeof(float));
    memcpy(gr_param_data(gm, gr_node_param(gm, id, "out_bias")), ob, D * sizeof(float));
    for (int j = 0; j < m->nd; j++) b->done[m->done[j]] = true;
    /* every Shape of a tensor inside (a symbolic batch's shape arithmetic) */
    for (size_t k = (size_t)b->node + 1; k < b->g->n_node; k++) {
        onode *p = b->g->node[k];
        if (b->done[k] || !is_op(p, "Shape")) continue;
        for (int j = 0; j < m->hs.n; j++)
            if (!strcmp(p->input[0], m->hs.name[j])) {
                int keep2 = b->node;
                b->node = (int)k;
                val *sv = gr_onnx_shape_of_hint(b, p, &m->hs);
                b->node = keep2;
                if (!sv) goto out;
                b->done[k] = true;
                break;
            }
    }
    val *o = gr_onnx_set_act(b, b->g->node[last], 0, id, qkv, true);
    if (!o) goto out;
    o->rank = od.rank;
    for (int j = 0; j < od.rank; j++) o->perm[j] = perm[j];
    rc = 0;
out:
    free(wi);
    free(m);
    return rc;
}
