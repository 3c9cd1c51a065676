/* fast.c — the backend's entry points: its state (one per execution
 * context), per-node forward dispatch and the node caches' destructor.  The
 * work is in dnnl_chain.c (conv / pool / bn / activation, also for a single
 * node), dnnl_dense.c, dnnl_backward.c and dnnl_train_layers.c.           */
#include <stdlib.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"
#include "ops/attention.h"

gr_backend *gr_backend_new(const gr_model *m, gr_precision prec, gr_error *err) {
    gr_backend *be = gr_calloc(1, sizeof *be, err);
    if (!be) return NULL;
    be->m = m;
    be->n_nodes = m->n_nodes;
    be->precision = prec;
    be->train_from = -1;
    be->winograd = true;
    be->fast = gr_calloc((size_t)(m->n_nodes > 0 ? m->n_nodes : 1), sizeof *be->fast, err);
    if (!be->fast) {
        free(be);
        return NULL;
    }
    return be;
}

static void node_free(gr_fast *f) {
    if (!f) return;
    dn_chain_free(f->chain);
    dn_chain_free(f->single);
    dn_dense_free(f->dense);
    dn_bwd_free(f->bwd);
    dn_tl_free(f->tl);
    free(f);
}

void gr_backend_free(gr_backend *be) {
    if (!be) return;
    for (int i = 0; i < be->n_nodes; i++) node_free(be->fast[i]);
    free(be->fast);
    for (int b = 0; b < DN_MAX_BUFS; b++) free(be->bwd_buf[b]);
    free(be->att_buf);
    free(be->wino_buf);
    free(be);
}

/* Chains are keyed by precision: those of the other one are rebuilt on use. */
void gr_backend_set_precision(gr_backend *be, gr_precision prec) { be->precision = prec; }

/* The algorithms a chain may pick change: chains that failed may build now. */
static void forget_failures(gr_backend *be) {
    for (int i = 0; i < be->n_nodes; i++)
        if (be->fast[i]) be->fast[i]->fail_last1 = 0;
}

void gr_backend_set_training(gr_backend *be, int from) {
    if (be->train_from != from) forget_failures(be);
    be->train_from = from;
}

void gr_backend_set_winograd(gr_backend *be, bool on) {
    if (be->winograd != on) forget_failures(be);
    be->winograd = on;
}
void gr_backend_set_own_winograd(gr_backend *be, bool on) { be->own_winograd = on; }

gr_status gr_backend_forward(gr_backend *be, int node, const float *const *ins, float *out,
                             int B, gr_error *err) {
    if (node < 0 || node >= be->n_nodes)
        return gr_error_set(err, GR_ERR_ARG, "backend forward: node %d of %d", node, be->n_nodes);
    const gr_node *n = &be->m->nodes[node];
    if (n->n_in != 1) return GR_ERR_UNSUPPORTED;
    if (n->s.op == GR_OP_DENSE) return dn_dense_forward(be, node, ins[0], out, B, err);
    if (n->s.op == GR_OP_ATTENTION) {   /* the reference's algorithm, its products through oneDNN's sgemm */
        gr_op_run r = gr_node_run(be->m, node, B, ins);
        size_t need = gr_attention_state_floats(&n->s, r.in[0], B);
        if (need > be->att_buf_n) {
            free(be->att_buf);
            be->att_buf_n = 0;
            if (!(be->att_buf = gr_malloc(need * sizeof(float), err))) return err->code;
            be->att_buf_n = need;
        }
        return gr_attention_run(&r, out, be->att_buf, gr_gemm, err);
    }
    if (!gr_backend_chain_supports(be->m, node)) return GR_ERR_UNSUPPORTED;
    return gr_backend_forward_chain(be, node, node, ins[0], out, B, err);
}
