/* exec.c — running a model in inference mode through an execution context
 * (ctx.h): maximal chains of nodes, or one node at a time, through the fast
 * backend when it has the op, else through the reference layers;
 * activation buffers are recycled as soon as their last reader has run.   */
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>
#include "exec/ctx.h"

/* A pool of reusable float buffers, kept in the context between calls. */
struct gr_workspace {
    float **buf;
    size_t *cap;
    int *busy;
    int n;
};

void gr_workspace_free(struct gr_workspace *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->n; i++) free(ws->buf[i]);
    free(ws->buf);
    free(ws->cap);
    free(ws->busy);
    free(ws);
}

/* Returns a free buffer of at least n floats (index into the pool), or -1. */
static int ws_acquire(struct gr_workspace *ws, size_t n, gr_error *err) {
    int best = -1;
    for (int i = 0; i < ws->n; i++)
        if (!ws->busy[i] && ws->cap[i] >= n && (best < 0 || ws->cap[i] < ws->cap[best])) best = i;
    if (best < 0) {   /* grow the largest free buffer, or add one */
        for (int i = 0; i < ws->n; i++)
            if (!ws->busy[i] && (best < 0 || ws->cap[i] > ws->cap[best])) best = i;
        if (best < 0) {
            int k = ws->n + 1;
            float **b = realloc(ws->buf, (size_t)k * sizeof *b);
            if (b) ws->buf = b;
            size_t *c = realloc(ws->cap, (size_t)k * sizeof *c);
            if (c) ws->cap = c;
            int *u = realloc(ws->busy, (size_t)k * sizeof *u);
            if (u) ws->busy = u;
            if (!b || !c || !u) {
                gr_error_set(err, GR_ERR_NOMEM, "out of memory for activation buffers");
                return -1;
            }
            best = ws->n++;
            ws->buf[best] = NULL;
            ws->cap[best] = 0;
            ws->busy[best] = 0;
        }
        free(ws->buf[best]);
        ws->buf[best] = gr_malloc(n * sizeof(float), err);
        if (!ws->buf[best]) { ws->cap[best] = 0; return -1; }
        ws->cap[best] = n;
    }
    ws->busy[best] = 1;
    return best;
}

/* Inputs of node n: layers below `from` are the given input x. */
static const float *const *in_ptrs(const gr_node *n, int from, const float *x, float **acts,
                                   const float **tmp) {
    for (int k = 0; k < n->n_in; k++) tmp[k] = n->in[k] < from ? x : acts[n->in[k]];
    return tmp;
}

/* The reference forward of one node (inference mode): its op's, as training runs it. */
static void node_forward_ref(const gr_model *m, int i, const float *const *ins, float *out, int B) {
    gr_op_run r = gr_node_run(m, i, B, ins);
    gr_op_forward(&r, out);
}

gr_status gr_node_forward_infer(gr_ctx *c, int i, const float *const *ins, float *out, int B,
                                gr_error *err) {
    gr_backend *be = gr_ctx_backend(c);
    if (be) {
        gr_status st = gr_backend_forward(be, i, ins, out, B, err);
        if (st != GR_ERR_UNSUPPORTED) return st;
    }
    node_forward_ref(c->m, i, ins, out, B);
    return GR_OK;
}

gr_status gr_outputs_check(const gr_model *m, int node, const float *out, int B, gr_error *err) {
    if (node < 0) node = m->n_nodes - 1;
    size_t F = (size_t)gr_node_size(m, node), total = (size_t)B * F, bad = 0, first = 0;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(out[i]) && !bad++) first = i;
    if (!bad) return GR_OK;
    return gr_error_set(err, GR_ERR_NUMERIC,
                        "layer '%s' outputs NaN/Inf (%zu of %zu values in a batch of %d, first in image %zu "
                        "of the batch): the weights or the input hold non-finite values, no result is "
                        "meaningful", m->nodes[node].s.name, bad, total, B, first / F + 1);
}

/* The end of the longest run from node i the fast backend may take as one
 * chain: nodes it supports, each reading only i's input (every input of i
 * is the same) or nodes of the run, with no node before the end read after
 * it (last[j]: the last reader of node j).  i itself when there is none.   */
static int region_end(const gr_model *m, const int *last, int i, int n) {
    const gr_node *nd = &m->nodes[i];
    int x = nd->in[0];
    for (int k = 1; k < nd->n_in; k++)
        if (nd->in[k] != x) return i;
    int best = i, reach = -1;   /* reach: the last reader of nodes i..e-1 */
    for (int e = i + 1; e < n && gr_backend_chain_supports(m, e); e++) {
        const gr_node *ne = &m->nodes[e];
        bool inside = true;
        for (int k = 0; k < ne->n_in; k++)
            if (ne->in[k] < i ? ne->in[k] != x : ne->in[k] >= e) inside = false;
        if (!inside) break;
        if (last[e - 1] > reach) reach = last[e - 1];
        if (reach <= e) best = e;
    }
    return best;
}

gr_status gr_ctx_run(gr_ctx *c, int from, const float *x, int B, int upto, float *out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_model *m = c->m;
    if (upto < 0) upto = m->n_nodes - 1;
    if (upto >= m->n_nodes || B <= 0 || from < 0 || from > upto + 1)
        return gr_error_set(err, GR_ERR_ARG, "run: layers %d..%d of %d, batch %d", from, upto,
                            m->n_nodes, B);
    for (int i = from; i <= upto; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] < from - 1)
                return gr_error_set(err, GR_ERR_ARG, "run from layer '%s': layer '%s' reads below it",
                                    m->nodes[from].s.name, m->nodes[i].s.name);
    if (upto < from) {   /* nothing to run: identity */
        memcpy(out, x, (size_t)B * gr_node_size(m, from - 1) * sizeof(float));
        return GR_OK;
    }
    gr_status st = gr_ctx_sync(c, err);
    if (st != GR_OK) return st;
    if (!c->ws) {
        c->ws = gr_calloc(1, sizeof *c->ws, err);
        if (!c->ws) return GR_ERR_NOMEM;
    }
    struct gr_workspace *ws = c->ws;
    gr_backend *be = gr_ctx_backend(c);
    int n = upto + 1;
    int *last = gr_malloc((size_t)n * sizeof(int), err);
    int *slot = gr_malloc((size_t)n * sizeof(int), err);
    float **acts = gr_calloc((size_t)n, sizeof(float *), err);
    if (!last || !slot || !acts) {   /* before slot[] is set: the loop at done would read it */
        free(last);
        free(slot);
        free(acts);
        return GR_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) { last[i] = i; slot[i] = -1; }
    for (int i = from; i < n; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) last[m->nodes[i].in[k]] = i;
    int nochain_upto = -1, linear_upto = -1;
    for (int i = from; i < n && st == GR_OK; i++) {
        const gr_node *nd = &m->nodes[i];
        /* the fast backend runs the longest run i..e of nodes it supports in
         * its own layout (one call): each node reads i's input or a node of
         * the run (residual adds, squeeze-and-excitation: region_end), and
         * only e's output is read after it.  Where the backend cannot build
         * that, a linear chain (each node the only reader of its
         * predecessor), else node by node.                                 */
        int e = i;
        if (be && i > nochain_upto && gr_backend_chain_supports(m, i)) {
            if (i > linear_upto) e = region_end(m, last, i, n);
            else if (nd->n_in == 1)
                while (e + 1 < n && last[e] == e + 1 && m->nodes[e + 1].n_in == 1 &&
                       m->nodes[e + 1].in[0] == e && gr_backend_chain_supports(m, e + 1))
                    e++;
        }
        float *o;
        if (e == upto) o = out;
        else {
            slot[e] = ws_acquire(ws, (size_t)B * (size_t)gr_node_size(m, e), err);
            if (slot[e] < 0) { st = GR_ERR_NOMEM; break; }
            o = ws->buf[slot[e]];
        }
        acts[e] = o;
        const float *tmp[GR_MAX_INPUTS];
        if (e > i) {
            st = gr_backend_forward_chain(be, i, e, in_ptrs(nd, from, x, acts, tmp)[0], o, B, err);
            if (st == GR_ERR_UNSUPPORTED) {   /* redo these nodes as linear chains, else one by one */
                if (slot[e] >= 0) { ws->busy[slot[e]] = 0; slot[e] = -1; }
                st = GR_OK;
                if (i > linear_upto) linear_upto = e;
                else nochain_upto = e;
                i--;
                continue;
            }
        } else {
            st = gr_node_forward_infer(c, i, in_ptrs(nd, from, x, acts, tmp), o, B, err);
        }
        for (int t = i; t <= e; t++)
            for (int k = 0; k < m->nodes[t].n_in; k++) {
                int j = m->nodes[t].in[k];
                if (j >= 0 && last[j] == t && slot[j] >= 0) { ws->busy[slot[j]] = 0; slot[j] = -1; }
            }
        i = e;
    }
    for (int i = 0; i < n; i++)
        if (slot[i] >= 0) ws->busy[slot[i]] = 0;
    free(last);
    free(slot);
    free(acts);
    return st;
}

void gr_set_threads(int n) {
    if (n <= 0) {   /* the cores, shared by the MPI ranks on this node (mpirun sets LOCAL_SIZE) */
        const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int local = ls ? atoi(ls) : 1;
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = omp_get_num_procs();
        if (local > 1 && online > 0 && online / local < n) n = (int)(online / local);
        if (n < 1) n = 1;
    }
    omp_set_num_threads(n);
}

int gr_get_threads(void) { return omp_get_max_threads(); }
