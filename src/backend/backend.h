/* backend.h — the fast compute path (oneDNN).  The executor offers every
 * node here first; GR_ERR_UNSUPPORTED means "use the reference layer".
 * Node caches (primitives, packed weights) live in node->fast and are
 * rebuilt when m->w_version or the batch size changes.                      */
#ifndef GRAFT_BACKEND_H
#define GRAFT_BACKEND_H
#include "model.h"

/* Inference forward of one node: ins[k] inputs, out output, NHWC, batch B.
 * Returns GR_OK, GR_ERR_UNSUPPORTED (caller falls back), or an error.       */
gr_status gr_backend_forward(gr_model *m, int node, const float *const *ins, float *out,
                             int B, gr_error *err);

/* Runs nodes first..last (a chain: each reads only its predecessor) in
 * inference mode, from in (NHWC, output of first's input) to out (NHWC,
 * output of last), keeping intermediate activations in the backend's own
 * layout.  GR_ERR_UNSUPPORTED when the chain has an op the backend lacks.   */
gr_status gr_backend_forward_chain(gr_model *m, int first, int last, const float *in,
                                   float *out, int B, gr_error *err);

/* Frees a node's backend cache (NULL is fine). */
void gr_backend_node_free(void *fast);

#endif
