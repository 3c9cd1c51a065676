/* attention.h — multi-head self-attention (src/ops/attention.c), one
 * algorithm for the reference and the fast path: the products go through
 * the GEMM the caller passes (the reference: a plain-C one; the backend and
 * the trainer: gr_gemm, oneDNN's sgemm).
 *
 * x [B, T, D] (an NHWC map, T = H*W tokens), heads H dividing D, hd = D/H,
 * params in_kernel [D, 3D], in_bias [3D], out_kernel [D, D], out_bias [D]:
 *   qkv = x in_kernel + in_bias          q, k, v = columns 0..D, D..2D, 2D..3D
 *   per head h: P_h = softmax_rows(scale * q_h k_h^T)   ctx_h = P_h v_h
 *   out = ctx out_kernel + out_bias      scale = spec.alpha (0: 1/sqrt(hd))
 * The state a backward reads (qkv, P, ctx) is kept in r->aux (training).  */
#ifndef GRAFT_OPS_ATTENTION_H
#define GRAFT_OPS_ATTENTION_H
#include "ops/op.h"

/* Row-major C[M,N] = alpha op(A) op(B) + beta C (gr_gemm's signature). */
typedef gr_status (*gr_gemm_fn)(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                                const float *B, int ldb, float beta, float *C, int ldc, gr_error *err);

/* Floats of the forward's state (qkv, P, ctx) for a batch of B. */
size_t gr_attention_state_floats(const gr_layer_spec *s, gr_dims3 in, int B);
/* out = attention(r->ins[0]); the state goes to st (gr_attention_state_floats). */
gr_status gr_attention_run(const gr_op_run *r, float *out, float *st, gr_gemm_fn gemm, gr_error *err);
/* din (+)= ..., dp[k] += ... (NULL skipped) from dout, after a training
 * forward that left its state in r->aux (gr_attention_run with st = r->aux). */
gr_status gr_attention_grad(const gr_op_run *r, const float *dout, float *din, float *const *dp,
                            gr_gemm_fn gemm, gr_error *err);

#endif
