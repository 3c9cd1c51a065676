/* backend.h — the fast compute path (oneDNN).  The executor offers every
 * node here first; GR_ERR_UNSUPPORTED means "use the reference layer"; any
 * other error is a real failure (oneDNN, out of memory) the caller reports.
 *
 * A gr_backend is one user's fast-path state for one model (an execution
 * context, exec/ctx.h, owns one): per node, the primitives and packed
 * weights (gr_fast, dnnl_util.h), the buffers the backward nets share and
 * the precision.  The model is only read: several gr_backend on one model
 * may run in different threads at once, each used by one thread at a time.
 * Primitives are rebuilt when the batch size or the precision changes,
 * packed weights are refreshed when the model's weights version changes
 * (gr_model_weights_changed).  No allocation per call in the steady state.
 * The model must not gain or lose nodes while a gr_backend exists for it
 * (the context makes a new one when the model's g_version moves).         */
#ifndef GRAFT_BACKEND_H
#define GRAFT_BACKEND_H
#include "graph/model.h"

typedef struct gr_backend gr_backend;

/* The state for model m (its nodes as they are now), running precision
 * prec.  NULL (err set) when out of memory.  Nothing is built until used. */
gr_backend *gr_backend_new(const gr_model *m, gr_precision prec, gr_error *err);
void gr_backend_free(gr_backend *be);   /* NULL is fine */
/* Inference precision of the chains (bf16 where the CPU has it). */
void gr_backend_set_precision(gr_backend *be, gr_precision prec);
/* Nodes from..the last are updated by a trainer every step (from < 0: none).
 * A trainable conv is re-packed every step, which changes which algorithm
 * its chain picks (see dnnl_chain.c).                                       */
void gr_backend_set_training(gr_backend *be, int from);
/* Whether 3x3 convolutions may run Winograd (oneDNN's where it has one,
 * else graft's, backend/winograd.h); on by default.  Off: direct only.  */
void gr_backend_set_winograd(gr_backend *be, bool on);
/* The backward of 3x3 convs: graft's Winograd (winograd.h) even where
 * oneDNN has its own (AVX-512), so tests reach graft's kernels on every
 * x86 CPU with AVX2.  Call before the first backward.                    */
void gr_backend_set_own_winograd(gr_backend *be, bool on);

/* Inference forward of one node: ins[k] inputs, out output, NHWC, batch B.
 * conv2d, max/avg pool, batch norm, activation (not softmax) and dense.
 * Returns GR_OK, GR_ERR_UNSUPPORTED (caller falls back), or an error.       */
gr_status gr_backend_forward(gr_backend *be, int node, const float *const *ins, float *out,
                             int B, gr_error *err);

/* Runs nodes first..last (a chain: each reads first's input or an earlier
 * node of the chain; the caller reads only last's output) in inference
 * mode, from in (NHWC, first's input) to out (NHWC, output of last),
 * keeping intermediate activations in the backend's own layout.
 * conv -> batchnorm is folded, activations fused as post-ops, a residual
 * Add after a conv becomes its sum post-op, other Adds and Muls oneDNN
 * binaries; precision GR_PRECISION_BF16 runs bf16 inside the chain.
 * GR_ERR_UNSUPPORTED when the chain has an op the backend lacks, reads a
 * node from before it, or keeps more activations alive than it has arenas. */
gr_status gr_backend_forward_chain(gr_backend *be, int first, int last, const float *in,
                                   float *out, int B, gr_error *err);

/* True when node can be part of a chain (conv2d, max/avg/global average
 * pool, batch norm, elementwise activation, two-input add and multiply).
 * The executor builds the longest runs of these (exec.c: region_end).     */
bool gr_backend_chain_supports(const gr_model *m, int node);

/* Backward of a conv2d node (its linear part: dout is the gradient of the
 * conv output BEFORE the fused activation), batch B, NHWC f32:
 *   dout [B, OH, OW, OC], in [B, H, W, C] (the forward input);
 *   din [B, H, W, C] += ..., dw [KH, KW, C/groups, OC] += ..., db [OC] += ...
 * Any of din / dw / db may be NULL (skipped).  Same semantics as
 * gr_conv2d_backward in layers/layers.h.  Uses the node's current weights.
 * GR_ERR_UNSUPPORTED: the caller uses the reference.                        */
gr_status gr_backend_conv2d_backward(gr_backend *be, int node, const float *dout, const float *in,
                                     int B, float *din, float *dw, float *db, gr_error *err);
/* The same, din OVERWRITTEN (its prior content ignored) when din_overwrite:
 * for a gradient buffer only this layer writes, which then needs no zeroing
 * and no read-add pass.                                                     */
gr_status gr_backend_conv2d_backward_ow(gr_backend *be, int node, const float *dout, const float *in,
                                        int B, float *din, bool din_overwrite, float *dw, float *db,
                                        gr_error *err);
/* After a backward call on conv node: the Winograd tile graft's own
 * backward used for the data gradient (*m_data) and the weight gradient
 * (*m_weights), 0 = not graft's (oneDNN's direct or Winograd kernels). */
void gr_backend_conv2d_backward_tiles(const gr_backend *be, int node, int *m_data, int *m_weights);

/* Pooling (max / avg), batch norm and activations in training (dnnl_train_layers.c),
 * NHWC f32, batch B.  GR_ERR_UNSUPPORTED: the caller uses the reference.
 *   gr_backend_pool_forward_train: out = pool(in), keeping (max pooling)
 *     oneDNN's workspace for the backward of this same `in`;
 *   gr_backend_pool_backward: din (+)= the gradient from dout, after the
 *     forward of this `in` (else GR_ERR_UNSUPPORTED);
 *   gr_backend_batchnorm_forward_train: out with the batch statistics,
 *     written to bmean / bvar (biased variance) [C];
 *   gr_backend_batchnorm_backward: bmean NULL = the stored statistics
 *     (constants; the default for unfrozen layers), else the batch ones of
 *     the forward; din (+)=, dgamma += and dbeta += (NULL skipped; din NULL
 *     is GR_ERR_UNSUPPORTED).
 * din is accumulated (+=), or overwritten when `overwrite`.                */
gr_status gr_backend_pool_forward_train(gr_backend *be, int node, const float *in, float *out, int B,
                                        gr_error *err);
gr_status gr_backend_pool_backward(gr_backend *be, int node, const float *dout, const float *in, int B,
                                   float *din, bool overwrite, gr_error *err);
gr_status gr_backend_batchnorm_forward_train(gr_backend *be, int node, const float *in, float *out, int B,
                                             float *bmean, float *bvar, gr_error *err);
gr_status gr_backend_batchnorm_backward(gr_backend *be, int node, const float *dout, const float *in, int B,
                                        const float *bmean, const float *bvar, float *din, bool overwrite,
                                        float *dgamma, float *dbeta, gr_error *err);
/* An activation layer (relu, leaky, relu6, sigmoid, tanh) from its input:
 * din (+)= dout * f'(in).  Softmax and linear: GR_ERR_UNSUPPORTED.         */
gr_status gr_backend_act_backward(gr_backend *be, int node, const float *dout, const float *in, int B, float *din,
                                  bool overwrite, gr_error *err);

/* Backward of a dense node (linear part), as gr_dense_backward:
 *   dout [B, OUT], in [B, IN]; din [B, IN] +=, dw [IN, OUT] +=, db [OUT] +=. */
gr_status gr_backend_dense_backward(gr_backend *be, int node, const float *dout, const float *in,
                                    int B, float *din, float *dw, float *db, gr_error *err);

/* The one GEMM entry (backend/gemm.c): row-major float32
 * C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when ta/tb. */
gr_status gr_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, gr_error *err);

#endif
