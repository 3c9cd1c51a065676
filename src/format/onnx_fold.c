/* onnx_fold.c — the shape arithmetic of an ONNX graph, folded to constants
 * at the chosen input size (batch 1): Shape, Gather, Concat, Cast, Constant,
 * ConstantOfShape, Unsqueeze, Squeeze, Reshape, Slice, Expand, Transpose,
 * Range, Identity, and elementwise Add/Sub/Mul/Div/Pow/Equal/Less/Greater/
 * Min/Max/Where/Neg/Abs/Floor/Ceil/Sqrt with numpy broadcasting, whenever
 * every input is a constant.  Values are int64 (CT_I) or float32 (CT_F). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_net.h"

typedef gr_onnx_val val;

/* Constant input k (read), or NULL with an error (absent, or not a constant). */
static val *cin(gr_onnx_b *b, onode *n, size_t k) {
    val *v = gr_onnx_in(b, n, k);
    if (!v || v->kind != V_CONST) {
        gr_onnx_nerr(b, v ? GR_ERR_UNSUPPORTED : GR_ERR_FORMAT, "input %zu is %s", k, v ? "not a constant" : "missing");
        return NULL;
    }
    return gr_onnx_cload(b, v) ? NULL : v;
}

static double fv(const val *v, int64_t i) { return v->ct == CT_F ? v->f[i] : (double)v->i[i]; }
static int64_t iv(const val *v, int64_t i) { return v->ct == CT_I ? v->i[i] : gr_onnx_f2i(v->f[i]); }

/* Makes output k a constant of type ct and the given dims (values zeroed). */
static val *cset(gr_onnx_b *b, onode *n, size_t k, int ct, int rank, const int64_t *dims) {
    if (rank < 0 || rank > GR_ONNX_MAX_RANK) {
        gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "a rank-%d result", rank);
        return NULL;
    }
    int64_t c = 1, nz = 1;   /* nz: the product without zeros, bounded too (no overflow later) */
    for (int d = 0; d < rank; d++) {
        nz = gr_onnx_smul(nz, dims[d] ? dims[d] : 1);
        if (dims[d] < 0 || nz > GR_ONNX_MAX_FOLD) {
            gr_onnx_nerr(b, GR_ERR_SHAPE, "a constant of more than %lld values (dimension %d is %lld)",
                         (long long)GR_ONNX_MAX_FOLD, d, (long long)dims[d]);
            return NULL;
        }
        c *= dims[d];
    }
    val *o = gr_onnx_out(b, n, k);
    if (!o) { if (!b->err->code) gr_onnx_nerr(b, GR_ERR_FORMAT, "no output %zu", k); return NULL; }
    void *p = gr_calloc((size_t)(c ? c : 1), ct == CT_F ? sizeof(float) : sizeof(int64_t), b->err);
    if (!p) return NULL;
    o->kind = V_CONST;
    o->ct = ct;
    o->rank = rank;
    memcpy(o->dims, dims, (size_t)rank * sizeof *dims);
    o->n = c;
    if (ct == CT_F) o->f = p;
    else o->i = p;
    return o;
}

static void put(val *o, int64_t i, double x) {
    if (o->ct == CT_F) o->f[i] = (float)x;
    else o->i[i] = gr_onnx_f2i(x);
}

/* Normalizes axis a of rank r (negative counts from the end); -1 if out of range. */
static int axis_of(int64_t a, int r) { return a < -r || a >= r ? -1 : (int)(a < 0 ? a + r : a); }

/* ------------------------------------------------------------- broadcasting */

static gr_status bshape(gr_onnx_b *b, val **in, int k, int *rank, int64_t *dims) {
    *rank = 0;
    for (int j = 0; j < k; j++) if (in[j]->rank > *rank) *rank = in[j]->rank;
    for (int d = 0; d < *rank; d++) {
        dims[d] = 1;
        for (int j = 0; j < k; j++) {
            int dd = d - (*rank - in[j]->rank);
            int64_t x = dd < 0 ? 1 : in[j]->dims[dd];
            if (x == dims[d] || x == 1) continue;
            if (dims[d] != 1) return gr_onnx_nerr(b, GR_ERR_SHAPE, "operands do not broadcast (dimension %d: %lld vs %lld)",
                                                  d, (long long)dims[d], (long long)x);
            dims[d] = x;
        }
    }
    return GR_OK;
}

/* Index into v of output index o (output dims od, rank r). */
static int64_t bidx(const val *v, int64_t o, int r, const int64_t *od) {
    int64_t idx = 0, stride = 1;
    for (int d = r - 1; d >= 0; d--) {
        int64_t c = o % od[d];
        o /= od[d];
        int dd = d - (r - v->rank);
        if (dd < 0) continue;
        if (v->dims[dd] != 1) idx += c * stride;
        stride *= v->dims[dd];
    }
    return idx;
}

static double binop(const char *op, double x, double y, bool integer) {
    if (!strcmp(op, "Add")) return x + y;
    if (!strcmp(op, "Sub")) return x - y;
    if (!strcmp(op, "Mul")) return x * y;
    if (!strcmp(op, "Div")) return integer ? (y == 0 ? 0 : trunc(x / y)) : x / y;
    if (!strcmp(op, "Pow")) return pow(x, y);
    if (!strcmp(op, "Equal")) return x == y;
    if (!strcmp(op, "Less")) return x < y;
    if (!strcmp(op, "Greater")) return x > y;
    if (!strcmp(op, "Min")) return x < y ? x : y;
    if (!strcmp(op, "Mod")) {   /* the sign of the divisor (Python's %); fmod=1: C's fmod */
        double r = y == 0 ? 0 : fmod(x, y);
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
    }
    if (!strcmp(op, "FMod")) return y == 0 ? 0 : fmod(x, y);
    return x > y ? x : y;   /* Max */
}

static int fold_elementwise(gr_onnx_b *b, onode *n, const char *op) {
    val *in[3];
    int k = !strcmp(op, "Where") ? 3 : 2;
    if (n->n_input < (size_t)k) return gr_onnx_nerr(b, GR_ERR_FORMAT, "needs %d inputs", k), -1;
    for (int j = 0; j < k; j++) if (!(in[j] = cin(b, n, (size_t)j))) return -1;
    int r;
    int64_t od[GR_ONNX_MAX_RANK];
    if (bshape(b, in, k, &r, od)) return -1;
    bool cmp = !strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater");
    const val *ty = k == 3 ? in[1] : in[0];
    val *o = cset(b, n, 0, cmp ? CT_I : ty->ct, r, od);
    if (!o) return -1;
    for (int64_t i = 0; i < o->n; i++) {
        if (k == 3) put(o, i, iv(in[0], bidx(in[0], i, r, od)) ? fv(in[1], bidx(in[1], i, r, od)) : fv(in[2], bidx(in[2], i, r, od)));
        else put(o, i, binop(op, fv(in[0], bidx(in[0], i, r, od)), fv(in[1], bidx(in[1], i, r, od)), ty->ct == CT_I));
    }
    return 1;
}

/* Mod: fmod=0 (integers only) rounds like Python's %, fmod=1 like C's fmod. */
static int fold_mod(gr_onnx_b *b, onode *n) {
    bool f = gr_onnx_attr_i(n, "fmod", 0) != 0;
    val *x = cin(b, n, 0);
    if (!x) return -1;
    if (!f && x->ct != CT_I) return gr_onnx_nerr(b, GR_ERR_FORMAT, "Mod of floats needs fmod=1"), -1;
    return fold_elementwise(b, n, f ? "FMod" : "Mod");
}

static int fold_unary(gr_onnx_b *b, onode *n, const char *op) {
    val *x = cin(b, n, 0);
    if (!x) return -1;
    int ct = x->ct;
    if (!strcmp(op, "Cast")) {
        int64_t to = gr_onnx_attr_i(n, "to", 0);
        ct = to == 1 || to == 10 || to == 11 ? CT_F : CT_I;
    }
    val *o = cset(b, n, 0, ct, x->rank, x->dims);
    if (!o) return -1;
    for (int64_t i = 0; i < x->n; i++) {
        double a = fv(x, i);
        if (!strcmp(op, "Neg")) a = -a;
        else if (!strcmp(op, "Abs")) a = fabs(a);
        else if (!strcmp(op, "Floor")) a = floor(a);
        else if (!strcmp(op, "Ceil")) a = ceil(a);
        else if (!strcmp(op, "Sqrt")) a = sqrt(a);
        else if (!strcmp(op, "Cast") && gr_onnx_attr_i(n, "to", 0) == 9) a = a != 0;
        if (ct == CT_I && x->ct == CT_I) o->i[i] = !strcmp(op, "Neg") ? (int64_t)(0 - (uint64_t)x->i[i]) : gr_onnx_f2i(a);
        else put(o, i, a);
    }
    return 1;
}

/* ------------------------------------------------------------- shape ops */

static int fold_constant(gr_onnx_b *b, onode *n) {
    const Onnx__AttributeProto *a = n->n_attribute ? n->attribute[0] : NULL;
    val *o;
    if (!a || !a->name) return gr_onnx_nerr(b, GR_ERR_FORMAT, "a Constant without a value"), -1;
    if (!strcmp(a->name, "value") && a->t) {
        if (!(o = gr_onnx_out(b, n, 0))) return -1;
        o->kind = V_CONST;
        o->init = a->t;
        return gr_onnx_cload(b, o) ? -1 : 1;
    }
    bool fl = !strcmp(a->name, "value_float") || !strcmp(a->name, "value_floats");
    bool many = !strcmp(a->name, "value_floats") || !strcmp(a->name, "value_ints");
    if (!fl && strcmp(a->name, "value_int") && strcmp(a->name, "value_ints"))
        return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "Constant attribute '%s' is not supported", a->name), -1;
    int64_t d = fl ? (int64_t)a->n_floats : (int64_t)a->n_ints;
    if (!(o = cset(b, n, 0, fl ? CT_F : CT_I, many ? 1 : 0, &d))) return -1;
    if (!many) { put(o, 0, fl ? a->f : (double)a->i); return 1; }
    for (int64_t i = 0; i < d; i++) put(o, i, fl ? a->floats[i] : (double)a->ints[i]);
    return 1;
}

static int fold_shape(gr_onnx_b *b, onode *n) {
    val *x = gr_onnx_in(b, n, 0);
    if (!x) return gr_onnx_nerr(b, GR_ERR_FORMAT, "no input"), -1;
    int64_t d[GR_ONNX_MAX_RANK];
    int r;
    if (x->kind == V_ACT) r = gr_onnx_act_dims(b, x, d);
    else {
        if (gr_onnx_cload(b, x)) return -1;
        r = x->rank;
        memcpy(d, x->dims, sizeof d);
    }
    int64_t s = gr_onnx_attr_i(n, "start", 0), e = gr_onnx_attr_i(n, "end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < s ? s : e > r ? r : e;
    int64_t len = e - s;
    val *o = cset(b, n, 0, CT_I, 1, &len);
    if (!o) return -1;
    for (int64_t i = 0; i < len; i++) o->i[i] = d[s + i];
    return 1;
}

static int fold_gather(gr_onnx_b *b, onode *n) {
    val *x = cin(b, n, 0), *ix = cin(b, n, 1);
    if (!x || !ix) return -1;
    int ax = axis_of(gr_onnx_attr_i(n, "axis", 0), x->rank);
    if (ax < 0 || x->rank + ix->rank - 1 > GR_ONNX_MAX_RANK) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis out of range"), -1;
    int64_t od[GR_ONNX_MAX_RANK], outer = 1, inner = 1, A = x->dims[ax];
    int r = 0;
    for (int d = 0; d < ax; d++) { od[r++] = x->dims[d]; outer *= x->dims[d]; }
    for (int d = 0; d < ix->rank; d++) od[r++] = ix->dims[d];
    for (int d = ax + 1; d < x->rank; d++) { od[r++] = x->dims[d]; inner *= x->dims[d]; }
    val *o = cset(b, n, 0, x->ct, r, od);
    if (!o) return -1;
    for (int64_t p = 0, q = 0; p < outer; p++)
        for (int64_t j = 0; j < ix->n; j++) {
            int64_t g = iv(ix, j);
            if (g < 0) g += A;
            if (g < 0 || g >= A) return gr_onnx_nerr(b, GR_ERR_SHAPE, "index %lld out of range [0, %lld)",
                                                     (long long)iv(ix, j), (long long)A), -1;
            for (int64_t e = 0; e < inner; e++, q++) put(o, q, fv(x, (p * A + g) * inner + e));
        }
    return 1;
}

static int fold_concat(gr_onnx_b *b, onode *n) {
    val *first = cin(b, n, 0);
    if (!first) return -1;
    int ax = axis_of(gr_onnx_attr_i(n, "axis", 0), first->rank);
    if (ax < 0) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis out of range"), -1;
    int64_t od[GR_ONNX_MAX_RANK];
    memcpy(od, first->dims, sizeof od);
    od[ax] = 0;
    int ct = CT_I;
    for (size_t k = 0; k < n->n_input; k++) {
        val *x = cin(b, n, k);
        if (!x) return -1;
        if (x->rank != first->rank) return gr_onnx_nerr(b, GR_ERR_SHAPE, "inputs of different ranks"), -1;
        for (int d = 0; d < x->rank; d++)
            if (d != ax && x->dims[d] != first->dims[d]) return gr_onnx_nerr(b, GR_ERR_SHAPE, "inputs differ in shape"), -1;
        od[ax] += x->dims[ax];
        if (x->ct == CT_F) ct = CT_F;
    }
    val *o = cset(b, n, 0, ct, first->rank, od);
    if (!o) return -1;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= od[d];
    for (int d = ax + 1; d < first->rank; d++) inner *= od[d];
    for (int64_t p = 0, q = 0; p < outer; p++)
        for (size_t k = 0; k < n->n_input; k++) {
            val *x = gr_onnx_in(b, n, k);
            int64_t blk = x->dims[ax] * inner;
            for (int64_t e = 0; e < blk; e++, q++) put(o, q, fv(x, p * blk + e));
        }
    return 1;
}

/* Axes from the attribute (opset < 13) or input 1; *na = -1 when none given. */
static gr_status get_axes(gr_onnx_b *b, onode *n, int64_t *axes, int *na) {
    *na = -1;
    if (b->f->opset < 13) {
        int c = gr_onnx_attr_ints(n, "axes", axes, GR_ONNX_MAX_RANK);
        if (c < 0) return gr_onnx_nerr(b, GR_ERR_SHAPE, "too many axes");
        if (gr_onnx_attr(n, "axes")) *na = c;
        return GR_OK;
    }
    val *a = gr_onnx_in(b, n, 1);
    if (!a) return GR_OK;
    if (a->kind != V_CONST) return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "axes are not a constant");
    if (gr_onnx_cload(b, a)) return b->err->code;
    if (a->n > GR_ONNX_MAX_RANK) return gr_onnx_nerr(b, GR_ERR_SHAPE, "too many axes");
    for (int64_t i = 0; i < a->n; i++) axes[i] = iv(a, i);
    *na = (int)a->n;
    return GR_OK;
}

/* Unsqueeze / Squeeze / Reshape / Flatten / Identity of a constant: new dims, same values. */
static int fold_reshape(gr_onnx_b *b, onode *n, const char *op) {
    val *x = cin(b, n, 0);
    if (!x) return -1;
    int64_t od[GR_ONNX_MAX_RANK], axes[GR_ONNX_MAX_RANK];
    int r = 0, na;
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        if (get_axes(b, n, axes, &na)) return -1;
        bool sq = !strcmp(op, "Squeeze");
        int orank = sq ? x->rank : x->rank + (na < 0 ? 0 : na);
        bool mark[GR_ONNX_MAX_RANK * 2] = {0};
        for (int k = 0; k < na; k++) {
            int a = axis_of(axes[k], orank);
            if (a < 0) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis %lld out of range", (long long)axes[k]), -1;
            mark[a] = true;
        }
        for (int d = 0, s = 0; d < orank; d++) {
            if (sq) { if (!(na < 0 ? x->dims[d] == 1 : mark[d])) od[r++] = x->dims[d]; }
            else od[r++] = mark[d] ? 1 : x->dims[s++];
        }
    } else if (!strcmp(op, "Reshape")) {
        val *s = cin(b, n, 1);
        if (!s) return -1;
        if (s->n > GR_ONNX_MAX_RANK) return gr_onnx_nerr(b, GR_ERR_SHAPE, "rank %lld", (long long)s->n), -1;
        int64_t known = 1, neg = -1;
        for (int64_t k = 0; k < s->n; k++) {
            od[r] = iv(s, k);
            if (od[r] == 0 && !gr_onnx_attr_i(n, "allowzero", 0)) od[r] = k < x->rank ? x->dims[k] : 0;
            if (od[r] == -1) neg = r;
            else known = gr_onnx_smul(known, od[r]);
            r++;
        }
        if (neg >= 0) od[neg] = known ? x->n / known : 0;
    } else if (!strcmp(op, "Flatten")) {
        int ax = axis_of(gr_onnx_attr_i(n, "axis", 1), x->rank + 1);
        od[0] = od[1] = 1;
        if (ax < 0) return gr_onnx_nerr(b, GR_ERR_SHAPE, "axis out of range"), -1;
        for (int d = 0; d < x->rank; d++) od[d < ax ? 0 : 1] = gr_onnx_smul(od[d < ax ? 0 : 1], x->dims[d]);
        r = 2;
    } else {
        r = x->rank;
        memcpy(od, x->dims, sizeof od);
    }
    int64_t c = 1;
    for (int d = 0; d < r; d++) c = gr_onnx_smul(c, od[d] < 0 ? 0 : od[d]);
    if (c != x->n) return gr_onnx_nerr(b, GR_ERR_SHAPE, "%lld values cannot take the new shape", (long long)x->n), -1;
    val *o = cset(b, n, 0, x->ct, r, od);
    if (!o) return -1;
    if (x->ct == CT_F) memcpy(o->f, x->f, (size_t)c * sizeof(float));
    else memcpy(o->i, x->i, (size_t)c * sizeof(int64_t));
    return 1;
}

static int fold_const_of_shape(gr_onnx_b *b, onode *n) {
    val *s = cin(b, n, 0);
    if (!s) return -1;
    if (s->n > GR_ONNX_MAX_RANK) return gr_onnx_nerr(b, GR_ERR_SHAPE, "rank %lld", (long long)s->n), -1;
    int64_t od[GR_ONNX_MAX_RANK];
    for (int64_t k = 0; k < s->n; k++) od[k] = iv(s, k);
    double fill = 0;
    int ct = CT_F;
    const Onnx__AttributeProto *a = gr_onnx_attr(n, "value");
    if (a && a->t) {
        gr_onnx_val tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.init = a->t;
        if (gr_onnx_cload(b, &tmp)) return -1;
        if (tmp.n) fill = fv(&tmp, 0);
        ct = tmp.ct;
        free(tmp.f);
        free(tmp.i);
    }
    val *o = cset(b, n, 0, ct, (int)s->n, od);
    if (!o) return -1;
    for (int64_t i = 0; i < o->n; i++) put(o, i, fill);
    return 1;
}

static int fold_expand(gr_onnx_b *b, onode *n) {
    val *x = cin(b, n, 0), *s = cin(b, n, 1);
    if (!x || !s) return -1;
    if (s->n > GR_ONNX_MAX_RANK) return gr_onnx_nerr(b, GR_ERR_SHAPE, "rank %lld", (long long)s->n), -1;
    val shp;
    memset(&shp, 0, sizeof shp);
    shp.rank = (int)s->n;
    for (int64_t k = 0; k < s->n; k++) shp.dims[k] = iv(s, k);
    val *in[2] = {x, &shp};
    int r;
    int64_t od[GR_ONNX_MAX_RANK];
    if (bshape(b, in, 2, &r, od)) return -1;
    val *o = cset(b, n, 0, x->ct, r, od);
    if (!o) return -1;
    for (int64_t i = 0; i < o->n; i++) put(o, i, fv(x, bidx(x, i, r, od)));
    return 1;
}

static int fold_slice(gr_onnx_b *b, onode *n) {
    val *x = cin(b, n, 0), *st = cin(b, n, 1), *en = cin(b, n, 2);
    if (!x || !st || !en) return -1;
    val *ax = gr_onnx_in(b, n, 3) ? cin(b, n, 3) : NULL, *sp = gr_onnx_in(b, n, 4) ? cin(b, n, 4) : NULL;
    int64_t lo[GR_ONNX_MAX_RANK], step[GR_ONNX_MAX_RANK], od[GR_ONNX_MAX_RANK];
    for (int d = 0; d < x->rank; d++) { lo[d] = 0; step[d] = 1; od[d] = x->dims[d]; }
    for (int64_t k = 0; k < st->n && k < en->n; k++) {
        int a = axis_of(ax ? iv(ax, k) : k, x->rank);
        int64_t s = iv(st, k), e = iv(en, k), p = sp ? iv(sp, k) : 1, D = x->dims[a < 0 ? 0 : a];
        if (a < 0 || p == 0 || p == INT64_MIN) return gr_onnx_nerr(b, GR_ERR_SHAPE, "bad axis or step"), -1;
        if (s < 0) s += D;
        if (e < 0) e += D;
        if (p > 0) { s = s < 0 ? 0 : s > D ? D : s; e = e < 0 ? 0 : e > D ? D : e; od[a] = e > s ? (e - s + p - 1) / p : 0; }
        else { s = s < 0 ? -1 : s > D - 1 ? D - 1 : s; e = e < -1 ? -1 : e > D - 1 ? D - 1 : e; od[a] = s > e ? (s - e - p - 1) / -p : 0; }
        lo[a] = s;
        step[a] = p;
    }
    val *o = cset(b, n, 0, x->ct, x->rank, od);
    if (!o) return -1;
    for (int64_t i = 0; i < o->n; i++) {
        int64_t rem = i, src = 0, stride = 1;
        for (int d = x->rank - 1; d >= 0; d--) {
            int64_t c = rem % od[d];
            rem /= od[d];
            src += (lo[d] + c * step[d]) * stride;
            stride *= x->dims[d];
        }
        put(o, i, fv(x, src));
    }
    return 1;
}

static int fold_transpose(gr_onnx_b *b, onode *n) {
    val *x = cin(b, n, 0);
    if (!x) return -1;
    int64_t p[GR_ONNX_MAX_RANK], od[GR_ONNX_MAX_RANK], xs[GR_ONNX_MAX_RANK];
    int c = gr_onnx_attr_ints(n, "perm", p, GR_ONNX_MAX_RANK);
    if (c <= 0) { c = x->rank; for (int d = 0; d < c; d++) p[d] = c - 1 - d; }
    if (c != x->rank) return gr_onnx_nerr(b, GR_ERR_SHAPE, "perm of %d axes for rank %d", c, x->rank), -1;
    for (int d = 0; d < c; d++) {
        if (p[d] < 0 || p[d] >= c) return gr_onnx_nerr(b, GR_ERR_SHAPE, "bad perm"), -1;
        od[d] = x->dims[p[d]];
    }
    for (int64_t d = c - 1, s = 1; d >= 0; d--) { xs[d] = s; s = gr_onnx_smul(s, x->dims[d]); }
    val *o = cset(b, n, 0, x->ct, c, od);
    if (!o) return -1;
    for (int64_t i = 0; i < o->n; i++) {
        int64_t rem = i, src = 0;
        for (int d = c - 1; d >= 0; d--) { src += (rem % od[d]) * xs[p[d]]; rem /= od[d]; }
        put(o, i, fv(x, src));
    }
    return 1;
}

static int fold_range(gr_onnx_b *b, onode *n) {
    val *s = cin(b, n, 0), *l = cin(b, n, 1), *d = cin(b, n, 2);
    if (!s || !l || !d || !s->n || !l->n || !d->n) return -1;
    double a = fv(s, 0), e = fv(l, 0), st = fv(d, 0);
    if (st == 0) return gr_onnx_nerr(b, GR_ERR_SHAPE, "step 0"), -1;
    double cnt = ceil((e - a) / st);
    int64_t c = cnt > 0 ? (cnt > (double)GR_ONNX_MAX_FOLD ? GR_ONNX_MAX_FOLD + 1 : (int64_t)cnt) : 0;
    val *o = cset(b, n, 0, s->ct, 1, &c);
    if (!o) return -1;
    for (int64_t i = 0; i < c; i++) put(o, i, a + (double)i * st);
    return 1;
}

int gr_onnx_fold(gr_onnx_b *b, onode *n) {
    const char *op = n->op_type;
    if (!strcmp(op, "Constant")) return fold_constant(b, n);
    if (!strcmp(op, "Shape")) return fold_shape(b, n);
    bool any = false;
    for (size_t k = 0; k < n->n_input; k++) {
        val *v = gr_onnx_in(b, n, k);
        if (v && v->kind != V_CONST) return 0;
        any |= v != NULL;
    }
    if (!any) return 0;
    static const char *const bin[] = {"Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "Min", "Max", "Where", NULL};
    static const char *const un[] = {"Neg", "Abs", "Floor", "Ceil", "Sqrt", "Cast", NULL};
    static const char *const re[] = {"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Dropout", NULL};
    for (int k = 0; bin[k]; k++) if (!strcmp(op, bin[k])) return fold_elementwise(b, n, op);
    for (int k = 0; un[k]; k++) if (!strcmp(op, un[k])) return fold_unary(b, n, op);
    for (int k = 0; re[k]; k++) if (!strcmp(op, re[k])) return fold_reshape(b, n, op);
    if (!strcmp(op, "Gather")) return fold_gather(b, n);
    if (!strcmp(op, "Concat")) return fold_concat(b, n);
    if (!strcmp(op, "ConstantOfShape")) return fold_const_of_shape(b, n);
    if (!strcmp(op, "Expand")) return fold_expand(b, n);
    if (!strcmp(op, "Slice")) return fold_slice(b, n);
    if (!strcmp(op, "Transpose")) return fold_transpose(b, n);
    if (!strcmp(op, "Range")) return fold_range(b, n);
    if (!strcmp(op, "Mod")) return fold_mod(b, n);
    return 0;
}
