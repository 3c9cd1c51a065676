/* fast.c — the backend's entry points: per-node forward dispatch and the
 * node cache's destructor.  The work is in dnnl_chain.c (conv / pool / bn /
 * activation, also for a single node), dnnl_dense.c, dnnl_backward.c and dnnl_train_layers.c. */
#include <stdlib.h>
#include "backend/backend.h"
#include "backend/dnnl_util.h"

gr_status gr_backend_forward(gr_model *m, int node, const float *const *ins, float *out,
                             int B, gr_error *err) {
    const gr_node *n = &m->nodes[node];
    if (n->n_in != 1) return GR_ERR_UNSUPPORTED;
    if (n->s.op == GR_OP_DENSE) return dn_dense_forward(m, node, ins[0], out, B, err);
    if (!gr_backend_chain_supports(m, node)) return GR_ERR_UNSUPPORTED;
    return gr_backend_forward_chain(m, node, node, ins[0], out, B, err);
}

void gr_backend_node_free(void *fast) {
    gr_fast *f = fast;
    if (!f) return;
    dn_chain_free(f->chain);
    dn_chain_free(f->single);
    dn_dense_free(f->dense);
    dn_bwd_free(f->bwd);
    dn_tl_free(f->tl);
    free(f);
}
