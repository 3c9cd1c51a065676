/* onnx_net.c — an ONNX classifier as a graft model (NHWC), built once at
 * load: the value table, the checks on the graph (one image input, opset,
 * local functions, unsupported operators listed by name and count), and the
 * walk over the nodes (onnx_fold.c folds the shape arithmetic, onnx_ops.c
 * maps the layers).  See onnx_net.h for how values are represented.       */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "format/onnx_meta.h"
#include "format/onnx_net.h"

gr_status gr_onnx_nerr(gr_onnx_b *b, gr_status code, const char *fmt, ...) {
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    onode *n = b->g->node[b->node];
    const char *name = n->name && n->name[0] ? n->name : n->n_output && n->output[0][0] ? n->output[0] : "";
    return gr_error_set(b->err, code, "%s: node %d '%.160s' (%s, opset %lld): %s", b->f->path, b->node, name,
                        n->op_type ? n->op_type : "?", (long long)b->f->opset, what);
}

/* ------------------------------------------------------------------ values */

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int vfind(const gr_onnx_b *b, const char *name) {
    for (uint32_t k = hash_str(name) & (uint32_t)(b->hcap - 1);; k = (k + 1) & (uint32_t)(b->hcap - 1)) {
        int e = b->hash[k];
        if (!e) return -1;
        if (!strcmp(b->v[e - 1].name, name)) return e - 1;
    }
}

/* A new value named name (NULL when the name is taken: an error). */
static gr_onnx_val *vadd(gr_onnx_b *b, const char *name) {
    if (vfind(b, name) >= 0 || b->nv >= b->cap) return NULL;
    uint32_t k = hash_str(name) & (uint32_t)(b->hcap - 1);
    while (b->hash[k]) k = (k + 1) & (uint32_t)(b->hcap - 1);
    b->hash[k] = b->nv + 1;
    gr_onnx_val *v = &b->v[b->nv++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

gr_onnx_val *gr_onnx_get(gr_onnx_b *b, const char *name) {
    int k = name ? vfind(b, name) : -1;
    return k < 0 ? NULL : &b->v[k];
}

gr_onnx_val *gr_onnx_in(gr_onnx_b *b, onode *n, size_t k) {
    if (k >= n->n_input || !n->input[k][0]) return NULL;
    return gr_onnx_get(b, n->input[k]);   /* checked to exist before the node is built */
}

gr_onnx_val *gr_onnx_out(gr_onnx_b *b, onode *n, size_t k) {
    if (k >= n->n_output || !n->output[k][0]) return NULL;
    gr_onnx_val *v = gr_onnx_get(b, n->output[k]);   /* its placeholder (make_values) */
    if (v) {
        gr_onnx_val keep = *v;
        memset(v, 0, sizeof *v);
        v->name = keep.name;
        v->consumers = keep.consumers;
    }
    return v;
}

gr_status gr_onnx_cload(gr_onnx_b *b, gr_onnx_val *v) {
    if (!v->init) return GR_OK;
    const Onnx__TensorProto *t = v->init;
    int64_t n;
    if (gr_onnx_tensor_count(b->f, t, &n, b->err)) return b->err->code;
    bool fl = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
              t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
              t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    size_t es = fl ? sizeof(float) : sizeof(int64_t);
    void *p = gr_malloc((size_t)(n ? n : 1) * es, b->err);
    if (!p) return b->err->code;
    gr_status st = fl ? gr_onnx_tensor_floats(b->f, t, p, n, b->err) : gr_onnx_tensor_ints(b->f, t, p, n, b->err);
    if (st) { free(p); return st; }
    v->ct = fl ? CT_F : CT_I;
    if (fl) v->f = p;
    else v->i = p;
    v->n = n;
    v->rank = (int)t->n_dims;
    for (int k = 0; k < v->rank; k++) v->dims[k] = t->dims[k];
    v->src = t;
    v->init = NULL;
    return GR_OK;
}

void gr_onnx_release(gr_onnx_val *v) {
    if (!v || !v->src || v->consumers > 1) return;
    free(v->f);
    free(v->i);
    v->f = NULL;
    v->i = NULL;
    v->init = v->src;
}

static void vfree(gr_onnx_val *v) {
    free(v->f);
    free(v->i);
    v->f = NULL;
    v->i = NULL;
}

int gr_onnx_act_dims(const gr_onnx_b *b, const gr_onnx_val *v, int64_t dims[4]) {
    int h, w, c;
    gr_model_layer_shape(b->m, v->node, &h, &w, &c);
    if (v->rank == 2) {
        dims[0] = b->batch;
        dims[1] = (int64_t)h * w * c;
        return 2;
    }
    if (v->rank == 3) {   /* tokens: the physical axes are [N, H*W, C] */
        const int64_t phys3[3] = {b->batch, (int64_t)h * w, c};
        for (int k = 0; k < 3; k++) dims[k] = phys3[v->perm[k]];
        return 3;
    }
    const int64_t phys[4] = {b->batch, h, w, c};
    for (int k = 0; k < 4; k++) dims[k] = phys[v->perm[k]];
    return 4;
}

int gr_onnx_sole_consumer(gr_onnx_b *b, const char *name) {
    gr_onnx_val *v = gr_onnx_get(b, name);
    if (!v || v->consumers != 1) return -1;
    for (size_t k = (size_t)b->node + 1; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        for (size_t i = 0; i < n->n_input; i++)
            if (!strcmp(n->input[i], name)) return (int)k;
    }
    return -1;   /* a graph output */
}

/* -------------------------------------------------------------- attributes */

const Onnx__AttributeProto *gr_onnx_attr(onode *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && !strcmp(n->attribute[k]->name, name)) return n->attribute[k];
    return NULL;
}

int64_t gr_onnx_attr_i(onode *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = gr_onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float gr_onnx_attr_f(onode *n, const char *name, float def) {
    const Onnx__AttributeProto *a = gr_onnx_attr(n, name);
    return a && a->has_f ? a->f : def;
}

int gr_onnx_attr_ints(onode *n, const char *name, int64_t *out, int max) {
    const Onnx__AttributeProto *a = gr_onnx_attr(n, name);
    if (!a) return 0;
    int c = (int)(a->n_ints < (size_t)max ? a->n_ints : (size_t)max);
    for (int k = 0; k < c; k++) out[k] = a->ints[k];
    return a->n_ints > (size_t)max ? -1 : c;
}

/* ------------------------------------------------------------------ checks */

static bool is_default_domain(const char *d) { return !d || !d[0] || !strcmp(d, "ai.onnx"); }

/* Local functions called by a node: refused (inlining is not done yet). */
static gr_status check_functions(gr_onnx_b *b) {
    const Onnx__ModelProto *pb = b->f->pb;
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        for (size_t j = 0; j < pb->n_functions; j++) {
            const Onnx__FunctionProto *fn = pb->functions[j];
            if (fn->name && n->op_type && !strcmp(fn->name, n->op_type) &&
                !strcmp(fn->domain ? fn->domain : "", n->domain ? n->domain : "")) {
                b->node = (int)k;
                return gr_onnx_nerr(b, GR_ERR_UNSUPPORTED, "calls the model-local function '%s%s%s', which graft "
                                    "does not inline yet (export with torch.onnx.export(..., "
                                    "export_modules_as_functions=False), the default)",
                                    fn->domain && fn->domain[0] ? fn->domain : "", fn->domain && fn->domain[0] ? "." : "",
                                    fn->name);
            }
        }
    }
    return GR_OK;
}

/* Whether node n is one graft cannot build: an operator it neither maps nor
 * folds, or one it only folds reading a value computed from the image.   */
static bool node_unsupported(const gr_onnx_b *b, onode *n) {
    if (!is_default_domain(n->domain) || !gr_onnx_op_known(n->op_type)) return true;
    if (gr_onnx_op_mapped(n->op_type) || !strcmp(n->op_type, "Shape")) return false;
    for (size_t i = 0; i < n->n_input; i++) {
        int v = n->input[i][0] ? vfind(b, n->input[i]) : -1;
        if (v >= 0 && b->v[v].dyn) return true;
    }
    return false;
}

/* Marks which values are computed from the image (Shape's output is not). */
static void mark_dynamic(gr_onnx_b *b) {
    b->v[0].dyn = true;   /* the input */
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        bool dyn = false;
        for (size_t i = 0; i < n->n_input && strcmp(n->op_type, "Shape"); i++) {
            int v = n->input[i][0] ? vfind(b, n->input[i]) : -1;
            dyn |= v >= 0 && b->v[v].dyn;
        }
        for (size_t i = 0; i < n->n_output; i++) {
            int v = n->output[i][0] ? vfind(b, n->output[i]) : -1;
            if (v >= 0) b->v[v].dyn = dyn;
        }
    }
}

/* Every operator graft cannot build, by name and count, in one error. */
static gr_status check_ops(gr_onnx_b *b) {
    char list[700] = "";
    size_t o = 0;
    int n_bad = 0;
    mark_dynamic(b);
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        if (!node_unsupported(b, n)) continue;
        const char *op = n->op_type, *dom = n->domain ? n->domain : "";
        bool seen = false;   /* counted already? */
        for (size_t j = 0; j < k && !seen; j++) {
            onode *p = b->g->node[j];
            seen = !strcmp(p->op_type, op) && !strcmp(p->domain ? p->domain : "", dom) && node_unsupported(b, p);
        }
        if (seen) continue;
        int count = 0;
        for (size_t j = k; j < b->g->n_node; j++) {
            onode *p = b->g->node[j];
            count += !strcmp(p->op_type, op) && !strcmp(p->domain ? p->domain : "", dom) && node_unsupported(b, p);
        }
        n_bad++;
        bool folded = is_default_domain(n->domain) && gr_onnx_op_known(op);
        if (o < sizeof list - 140)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s%s%s x%d%s (first: '%.60s')", o ? ", " : "",
                                  is_default_domain(dom) ? "" : dom, is_default_domain(dom) ? "" : ".", op, count,
                                  folded ? " on activations" : "", n->name ? n->name : "");
    }
    if (!n_bad) return GR_OK;
    return gr_error_set(b->err, GR_ERR_UNSUPPORTED, "%s: %d operator type%s graft cannot run yet (opset %lld): %s",
                        b->f->path, n_bad, n_bad == 1 ? "" : "s", (long long)b->f->opset, list);
}

/* The image input: the one graph input that is not an initializer. */
static const Onnx__ValueInfoProto *find_input(gr_onnx_b *b) {
    const Onnx__ValueInfoProto *in = NULL;
    int count = 0;
    for (size_t k = 0; k < b->g->n_input; k++) {
        const Onnx__ValueInfoProto *vi = b->g->input[k];
        if (!vi->name) continue;
        bool init = false;
        for (size_t j = 0; j < b->g->n_initializer && !init; j++)
            init = b->g->initializer[j]->name && !strcmp(b->g->initializer[j]->name, vi->name);
        if (!init) { in = vi; count++; }
    }
    if (count != 1) {
        gr_error_set(b->err, GR_ERR_UNSUPPORTED, "%s: %d graph inputs (graft needs one image input [N,C,H,W])",
                     b->f->path, count);
        return NULL;
    }
    return in;
}

/* Whether the image input is NHWC: every node reading it is a Transpose to
 * NCHW (tf2onnx's Keras models).                                         */
static bool input_is_nhwc(const gr_onnx_b *b, const char *name) {
    int readers = 0;
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        for (size_t i = 0; i < n->n_input; i++) {
            if (strcmp(n->input[i], name)) continue;
            int64_t p[4];
            if (strcmp(n->op_type, "Transpose") || gr_onnx_attr_ints(n, "perm", p, 4) != 4 || p[0] != 0 || p[1] != 3 ||
                p[2] != 1 || p[3] != 2)
                return false;
            readers++;
        }
    }
    return readers > 0;
}

/* The input's [C, H, W] (h, w: the chosen size or 0 for the file's own). */
static gr_status input_shape(gr_onnx_b *b, const Onnx__ValueInfoProto *in, int *h, int *w, int *c) {
    const Onnx__TypeProto *tp = in->type;
    const Onnx__TensorShapeProto *sh = tp && tp->tensor_type ? tp->tensor_type->shape : NULL;
    if (!sh || sh->n_dim != 4 || (tp->tensor_type->has_elem_type && tp->tensor_type->elem_type != 1))
        return gr_error_set(b->err, GR_ERR_UNSUPPORTED, "%s: input '%.200s' is not a float32 image [N,C,H,W] "
                            "(rank %d)", b->f->path, in->name, sh ? (int)sh->n_dim : -1);
    int64_t d[4];
    for (int k = 0; k < 4; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh->dim[k];
        d[k] = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dm->dim_value : -1;
    }
    if ((b->in_nhwc = input_is_nhwc(b, in->name))) {   /* [N,H,W,C] -> [N,C,H,W] */
        int64_t c3 = d[3];
        d[3] = d[2];
        d[2] = d[1];
        d[1] = c3;
    }
    if (d[1] < 1 || d[1] > 4096)
        return gr_error_set(b->err, GR_ERR_UNSUPPORTED, "%s: input '%.200s' has %lld channels (graft needs a known "
                            "channel count, NCHW)", b->f->path, in->name, (long long)d[1]);
    *c = (int)d[1];
    b->batch = d[0] >= 1 && d[0] <= 65536 ? d[0] : 1;   /* a fixed batch of the file, seen by its shape arithmetic */
    if (*h) return GR_OK;
    if ((d[2] < 1 && d[2] != -1) || (d[3] < 1 && d[3] != -1) || d[2] > GR_MAX_WINDOW || d[3] > GR_MAX_WINDOW)
        return gr_error_set(b->err, GR_ERR_FORMAT, "%s: input '%.200s' has size %lldx%lld", b->f->path, in->name,
                            (long long)d[2], (long long)d[3]);
    *h = d[2] < 0 ? 224 : (int)d[2];   /* a symbolic size: torchvision's 224 unless --input-size says */
    *w = d[3] < 0 ? 224 : (int)d[3];
    return GR_OK;
}

/* Values for the input, the initializers, and each node output (counted readers). */
static gr_status make_values(gr_onnx_b *b, const Onnx__ValueInfoProto *in) {
    size_t cap = 1 + b->g->n_initializer;
    for (size_t k = 0; k < b->g->n_node; k++) cap += b->g->node[k]->n_output;
    if (cap > ((size_t)1 << 24)) return gr_error_set(b->err, GR_ERR_FORMAT, "%s: %zu tensors", b->f->path, cap);
    b->cap = (int)cap;
    for (b->hcap = 16; (size_t)b->hcap < 2 * cap;) b->hcap *= 2;
    if (!(b->v = gr_calloc(cap, sizeof *b->v, b->err)) || !(b->hash = gr_calloc((size_t)b->hcap, sizeof(int), b->err)) ||
        !(b->done = gr_calloc(b->g->n_node + 1, sizeof(bool), b->err)))
        return b->err->code;
    gr_onnx_val *x = vadd(b, in->name);
    x->kind = V_ACT;
    x->node = -1;
    x->rank = 4;
    memcpy(x->perm, b->in_nhwc ? (int[4]){0, 1, 2, 3} : (int[4]){0, 3, 1, 2}, sizeof x->perm);
    for (size_t k = 0; k < b->g->n_initializer; k++) {
        const Onnx__TensorProto *t = b->g->initializer[k];
        gr_onnx_val *v = t->name ? vadd(b, t->name) : NULL;
        if (!v) return gr_error_set(b->err, GR_ERR_FORMAT, "%s: initializer %zu '%.200s' is unnamed or named twice",
                                    b->f->path, k, t->name ? t->name : "");
        v->kind = V_CONST;
        v->init = t;
        int64_t count;   /* every initializer checked now (dtype, dims against its bytes), used or not */
        if (gr_onnx_tensor_count(b->f, t, &count, b->err)) return b->err->code;
    }
    /* readers: every input must be the graph input, an initializer, or an earlier node's output */
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        b->node = (int)k;
        if (!n->n_output || !n->output[0][0])   /* every ONNX operator makes output 0 */
            return gr_onnx_nerr(b, GR_ERR_FORMAT, "the node has no output");
        for (size_t i = 0; i < n->n_input; i++) {
            if (!n->input[i][0]) continue;
            gr_onnx_val *v = gr_onnx_get(b, n->input[i]);
            if (!v) return gr_onnx_nerr(b, GR_ERR_FORMAT, "input '%.200s' is neither an initializer nor the output "
                                        "of an earlier node (missing, or the graph has a cycle)", n->input[i]);
            v->consumers++;
        }
        for (size_t i = 0; i < n->n_output; i++)   /* placeholders, so later inputs resolve; kind set when built */
            if (n->output[i][0] && !vadd(b, n->output[i]))
                return gr_onnx_nerr(b, GR_ERR_FORMAT, "output '%.200s' is produced twice", n->output[i]);
    }
    for (size_t k = 0; k < b->g->n_output; k++) {
        gr_onnx_val *v = b->g->output[k]->name ? gr_onnx_get(b, b->g->output[k]->name) : NULL;
        if (!v) return gr_error_set(b->err, GR_ERR_FORMAT, "%s: graph output '%.200s' is produced by no node",
                                    b->f->path, b->g->output[k]->name ? b->g->output[k]->name : "");
        v->consumers++;
    }
    return GR_OK;
}

/* Walks nodes [0, end): fold, or map onto layers. */
static gr_status build_nodes(gr_onnx_b *b, size_t end) {
    /* Constant nodes first: the patterns (onnx_elem.c) read constants that
     * the exporter wrote between the nodes they span                       */
    for (size_t k = 0; k < end; k++) {
        onode *n = b->g->node[k];
        if (strcmp(n->op_type, "Constant") || n->n_input || !is_default_domain(n->domain)) continue;
        b->node = (int)k;
        int r = gr_onnx_fold(b, n);
        if (r < 0) return b->err->code;
        b->done[k] = r > 0;
    }
    for (size_t k = 0; k < end; k++) {
        if (b->done[k]) continue;
        onode *n = b->g->node[k];
        b->node = (int)k;
        for (size_t i = 0; i < n->n_input; i++) {
            gr_onnx_val *v = n->input[i][0] ? gr_onnx_get(b, n->input[i]) : NULL;
            if (v && v->kind == V_NONE)
                return gr_onnx_nerr(b, GR_ERR_FORMAT, "input '%.200s' is read before the node that makes it "
                                    "(the graph is not topologically sorted, or has a cycle)", n->input[i]);
        }
        int r = gr_onnx_fold(b, n);
        if (r < 0) return b->err->code;
        if (r == 0 && gr_onnx_map(b, n)) return b->err->code;
    }
    return GR_OK;
}

/* The last Gemm/MatMul: its data input is the pre-logits tensor. */
static int top_node(const gr_onnx_b *b) {
    for (size_t k = b->g->n_node; k-- > 0;) {
        const char *op = b->g->node[k]->op_type ? b->g->node[k]->op_type : "";
        if ((!strcmp(op, "Gemm") || !strcmp(op, "MatMul")) && b->g->node[k]->n_input) return (int)k;
    }
    return -1;
}

static gr_status finish(gr_onnx_b *b, bool include_top) {
    int top = include_top ? -1 : top_node(b);
    if (build_nodes(b, top >= 0 ? (size_t)top : b->g->n_node)) return b->err->code;
    const char *oname = top >= 0 ? b->g->node[top]->input[0] : b->g->n_output ? b->g->output[0]->name : NULL;
    gr_onnx_val *o = oname ? gr_onnx_get(b, oname) : NULL;
    if (!o || o->kind != V_ACT || o->node < 0)
        return gr_error_set(b->err, GR_ERR_UNSUPPORTED, "%s: the %s '%.200s' is not computed from the image by any "
                            "layer", b->f->path, top >= 0 ? "pre-logits tensor" : "output", oname ? oname : "");
    return gr_model_truncate(b->m, o->node, b->err);
}

/* The ONNX names of each graft node's output, as other names of the node
 * (--cut, --unfreeze, extract --layer): the tensor mapped to it last (the
 * earlier ones may be before a fused activation or folded batch norm) and
 * the name of the node that makes that tensor.                            */
static gr_status add_aliases(gr_onnx_b *b) {
    int N = gr_model_num_layers(b->m);
    int *last = gr_malloc((size_t)(N ? N : 1) * 2 * sizeof(int), b->err);
    if (!last) return b->err->code;
    for (int i = 0; i < 2 * N; i++) last[i] = -1;
    for (size_t k = 0; k < b->g->n_node; k++) {
        onode *n = b->g->node[k];
        for (size_t o = 0; o < n->n_output; o++) {
            gr_onnx_val *v = n->output[o][0] ? gr_onnx_get(b, n->output[o]) : NULL;
            if (v && v->kind == V_ACT && v->node >= 0 && v->node < N) {
                last[2 * v->node] = (int)k;
                last[2 * v->node + 1] = (int)o;
            }
        }
    }
    gr_status st = GR_OK;
    for (int i = 0; i < N && !st; i++) {
        if (last[2 * i] < 0) continue;
        onode *n = b->g->node[last[2 * i]];
        st = gr_model_add_alias(b->m, n->output[last[2 * i + 1]], i, b->err);
        if (!st && last[2 * i + 1] == 0 && n->name) st = gr_model_add_alias(b->m, n->name, i, b->err);
    }
    for (size_t k = 0; k < b->g->n_node && !st; k++) {   /* a layer's ONNX node name as written ('/a/Conv': layer 'a/Conv') */
        const char *nm = b->g->node[k]->name;
        int i = nm && nm[0] == '/' ? gr_model_find(b->m, nm + 1) : -1;
        if (i >= 0) st = gr_model_add_alias(b->m, nm, i, b->err);
    }
    free(last);
    return st;
}

static void b_free(gr_onnx_b *b) {
    for (int k = 0; k < b->nv; k++) vfree(&b->v[k]);
    free(b->v);
    free(b->hash);
    free(b->done);
}

gr_model *gr_onnx_load(const char *path, int h, int w, bool include_top, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (h < 0 || w < 0 || (h > 0) != (w > 0)) {
        gr_error_set(err, GR_ERR_ARG, "%s: input size %dx%d: give both or neither", path ? path : "onnx", h, w);
        return NULL;
    }
    gr_onnx_b b;
    memset(&b, 0, sizeof b);
    b.err = err;
    if (!(b.f = gr_onnx_open(path, err))) return NULL;
    b.g = b.f->pb->graph;
    const Onnx__ValueInfoProto *in;
    int c = 0;
    if (check_functions(&b) || !(in = find_input(&b)) || input_shape(&b, in, &h, &w, &c)) goto fail;
    if (!(b.m = gr_model_new(h, w, c, err))) {
        gr_error_prefix(err, "%s", path);
        goto fail;
    }
    if (make_values(&b, in) || check_ops(&b)) goto fail;
    if (finish(&b, include_top) || add_aliases(&b)) goto fail;
    gr_recipe r;   /* the file's graft metadata, else torchvision's (onnx_meta.c) */
    if (gr_onnx_read_recipe(b.f, &r, b.m->recipe_note, sizeof b.m->recipe_note, err)) goto fail;
    gr_model_set_recipe(b.m, &r);
    if (include_top) {   /* the classifier's names, when they fit its output */
        int oh, ow, oc;
        gr_model_layer_shape(b.m, gr_model_num_layers(b.m) - 1, &oh, &ow, &oc);
        if (gr_onnx_read_classes(b.f, b.m, oh * ow * oc, err)) goto fail;
    }
    b.m->w_version++;
    b_free(&b);
    gr_onnx_close(b.f);
    return b.m;
fail:
    if (err->code == GR_OK) gr_error_set(err, GR_ERR_FORMAT, "%s: cannot build the ONNX model", path);
    b_free(&b);
    gr_model_free(b.m);
    gr_onnx_close(b.f);
    return NULL;
}
