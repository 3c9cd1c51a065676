/* fast.c — placeholder until the oneDNN backend lands: everything falls back
 * to the reference layers. */
#include "backend/backend.h"

gr_status gr_backend_forward(gr_model *m, int node, const float *const *ins, float *out,
                             int B, gr_error *err) {
    (void)m; (void)node; (void)ins; (void)out; (void)B; (void)err;
    return GR_ERR_UNSUPPORTED;
}

gr_status gr_backend_forward_chain(gr_model *m, int first, int last, const float *in,
                                   float *out, int B, gr_error *err) {
    (void)m; (void)first; (void)last; (void)in; (void)out; (void)B; (void)err;
    return GR_ERR_UNSUPPORTED;
}

void gr_backend_node_free(void *fast) { (void)fast; }
