/* layers.h — the plain-C reference layers: the readable spec of every op and
 * the oracle the fast backend is tested against.
 *
 * All tensors are float32 NHWC, contiguous.  Every *_forward writes its
 * output (overwrites).  Every *_backward ACCUMULATES (+=) into the gradient
 * buffers it is given (the caller zeroes them), and skips any that is NULL.
 * No function allocates; none can fail (shapes are checked when the model is
 * built).                                                                   */
#ifndef GRAFT_LAYERS_H
#define GRAFT_LAYERS_H
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

/* ---- conv2d ----------------------------------------------------------------
 * in  [B, H, W, C]      w [KH, KW, C/groups, OC] (HWIO)      b [OC] or NULL
 * out [B, OH, OW, OC]
 * out[b,oy,ox,o] = b[o] + sum_{ky,kx,c in group(o)} in[b, oy*SH-PT+ky, ox*SW-PL+kx, c] * w[ky,kx,c',o]
 * Input cells outside the image read as zero.  groups divides C and OC;
 * output channel o belongs to group o / (OC/groups).                        */
typedef struct {
    int B, H, W, C;
    int OH, OW, OC;
    int KH, KW, SH, SW, PT, PL;
    int groups;
    int DH, DW;    /* dilation: tap (ky, kx) reads input row oy*SH - PT + ky*DH (0 reads as 1) */
} gr_conv_dims;

void gr_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                       const gr_conv_dims *d);
void gr_conv2d_backward(const float *dout, const float *in, const float *w,
                        const gr_conv_dims *d, float *din, float *dw, float *db);

/* ---- dense ------------------------------------------------------------------
 * in [B, IN]   w [IN, OUT] (Keras kernel order)   b [OUT] or NULL   out [B, OUT] */
void gr_dense_forward(float *out, const float *in, const float *w, const float *b,
                      int B, int IN, int OUT);
void gr_dense_backward(const float *dout, const float *in, const float *w,
                       int B, int IN, int OUT, float *din, float *dw, float *db);

/* ---- batch norm (per channel, over N = B*H*W rows of C) ---------------------
 * inference: out = gamma * (in - mean) / sqrt(var + eps) + beta
 * gamma NULL means 1, beta NULL means 0.                                    */
void gr_batchnorm_forward(float *out, const float *in, const float *gamma, const float *beta,
                          const float *mean, const float *var, float eps, int64_t N, int C);
/* backward of the inference form (statistics are constants). */
void gr_batchnorm_backward(const float *dout, const float *in, const float *gamma,
                           const float *mean, const float *var, float eps, int64_t N, int C,
                           float *din, float *dgamma, float *dbeta);
/* training form: batch statistics.  Writes bmean[C] and bvar[C] (biased
 * variance, what normalizes) for the caller to update running averages. */
void gr_batchnorm_forward_train(float *out, const float *in, const float *gamma,
                                const float *beta, float eps, int64_t N, int C,
                                float *bmean, float *bvar);
void gr_batchnorm_backward_train(const float *dout, const float *in, const float *gamma,
                                 const float *bmean, const float *bvar, float eps,
                                 int64_t N, int C, float *din, float *dgamma, float *dbeta);
/* Keras' running averages after a training batch of N rows: m = mom*m +
 * (1-mom)*bmean, v = mom*v + (1-mom)*bvar*N/(N-1) (unbiased).             */
void gr_batchnorm_running_update(float *mm, float *mv, const float *bmean, const float *bvar, float momentum,
                                 int64_t N, int C);

/* ---- elementwise activations (n values) -------------------------------------
 * GR_ACT_SOFTMAX is not elementwise: use gr_softmax_*.  backward takes the
 * forward's input `in` and output `out` (either suffices for each kind).     */
void gr_act_forward(float *out, const float *in, size_t n, gr_act act, float alpha);
void gr_act_backward(const float *dout, const float *in, const float *out, size_t n,
                     gr_act act, float alpha, float *din);

/* ---- softmax over the last axis: in/out [N, C] --------------------------------*/
void gr_softmax_forward(float *out, const float *in, int64_t N, int C);
void gr_softmax_backward(const float *dout, const float *out, int64_t N, int C, float *din);

/* ---- pooling -----------------------------------------------------------------
 * in [B, H, W, C]  out [B, OH, OW, C]; window (oy*SH-PT .. +KH) x (ox*SW-PL .. +KW);
 * cells outside the image are ignored (max: never chosen; avg: not counted,
 * as TF/Keras 'same' do).  Max backward routes to the first maximal cell.   */
typedef struct {
    int B, H, W, C;
    int OH, OW;
    int KH, KW, SH, SW, PT, PL;
} gr_pool_dims;

void gr_maxpool_forward(float *out, const float *in, const gr_pool_dims *d);
void gr_maxpool_backward(const float *dout, const float *in, const gr_pool_dims *d, float *din);
void gr_avgpool_forward(float *out, const float *in, const gr_pool_dims *d);
void gr_avgpool_backward(const float *dout, const gr_pool_dims *d, float *din);

/* ---- global average pool: in [B, HW, C] -> out [B, C] -------------------------*/
void gr_gap_forward(float *out, const float *in, int B, int HW, int C);
void gr_gap_backward(const float *dout, int B, int HW, int C, float *din);

/* ---- dropout (inverted): out = in * mask, mask = 0 or 1/(1-rate) ----------------
 * The caller fills mask (see gr_dropout_mask) so runs are reproducible.     */
void gr_dropout_forward(float *out, const float *in, const float *mask, size_t n);
void gr_dropout_backward(const float *dout, const float *mask, size_t n, float *din);

/* ---- add / concat over channels ----------------------------------------------
 * add: out = sum of k inputs, each n values.
 * concat: inputs k, each [R, Ci] -> out [R, sum Ci] (R = B*H*W).             */
void gr_add_forward(float *out, const float *const *ins, int k, size_t n);
void gr_add_backward(const float *dout, int k, size_t n, float *const *dins);
void gr_concat_forward(float *out, const float *const *ins, const int *cs, int k, int64_t R);
void gr_concat_backward(const float *dout, const int *cs, int k, int64_t R, float *const *dins);

/* ---- standardize: out = (in - mean) / std per feature, in [N, F] ---------------*/
void gr_standardize_forward(float *out, const float *in, const float *mean, const float *std,
                            int64_t N, int F);
void gr_standardize_backward(const float *dout, const float *std, int64_t N, int F, float *din);

#endif
