/* winograd.h — graft's Winograd convolution: F(2x2, 3x3) and F(4x4, 3x3)
 * forward for 3x3, stride-1, ungrouped convolutions, NHWC float32 input and
 * output, HWIO weights (graft's own layout), bias and a simple fused
 * activation.  For CPUs where oneDNN has no Winograd (oneDNN 2.x implements
 * it only with AVX-512): the fast path (dnnl_chain.c) uses it there.
 *
 * The method (Lavin & Gray 2015): the output is cut into m x m tiles; each
 * tile needs an (m+2) x (m+2) window of the input.  With the transforms
 *   V = Bt d B (input window),  U = G g Gt (3x3 filter),  Y = At M A,
 * M[k] = sum_c V[k][c] U[k][c][oc] for each of the a*a = (m+2)^2 positions k
 * is a batch of a*a independent GEMMs [tiles, C] x [C, OC] (graft's one
 * GEMM entry, gr_gemm); only the transforms are written here (AVX2 with a
 * plain-C fallback chosen at run time, bit-identical: same operations in the
 * same order, no FMA).  Multiplies per output: 4 (m=4) or 2.25 (m=2) times
 * fewer than the direct 9 per (c, oc).
 *
 * Rounding: the transforms mix values of different magnitudes (Bt has
 * entries up to 5, At up to 8, G 1/6 and 1/24), so the result is rounded
 * at a larger scale than a direct sum's: measured against a double-precision
 * sum, relative to the sum of |x * w| over the taps, the direct float conv
 * is ~1e-7, F(2x2,3x3) <= 1.5e-7, F(4x4,3x3) <= 3e-6 (tests/test_winograd.c). */
#ifndef GRAFT_WINOGRAD_H
#define GRAFT_WINOGRAD_H
#include <stdbool.h>
#include <stddef.h>
#include "graft.h"

/* One convolution's shape and what the tiles need.  Made by gr_wino_plan_init. */
typedef struct {
    int B, H, W, C;        /* input [B, H, W, C] */
    int OH, OW, OC;        /* output [B, OH, OW, OC] */
    int pad_t, pad_l;      /* output (0,0) reads input (-pad_t, -pad_l) .. +2 */
    int m, a;              /* tile m x m outputs, a = m + 2 */
    int th, tw;            /* tiles down and across one image */
    int tiles;             /* B * th * tw */
    int chunk;             /* tiles transformed and multiplied at a time */
    int act;               /* GR_WINO_ACT_* */
    float alpha;           /* leaky slope */
    bool accum;            /* the output transform adds to out (no bias, linear) instead of storing */
} gr_wino_plan;

enum { GR_WINO_ACT_LINEAR = 0, GR_WINO_ACT_RELU, GR_WINO_ACT_LEAKY, GR_WINO_ACT_RELU6 };

/* The tile size worth using for a 3x3 stride-1 conv of this shape (counting
 * multiplies, transforms included): 4, 2, or 0 when direct is better (few
 * channels, outputs smaller than a tile) or the activation cannot be fused
 * (only linear, relu, leaky, relu6 can).                                    */
int gr_wino_choose(int OH, int OW, int C, int OC, gr_act act);

/* Fills p for input [B,H,W,C] -> output [B,OH,OW,OC] (stride 1, 3x3),
 * tile m (2 or 4).  GR_ERR_ARG for another m, an activation
 * gr_wino_choose refuses or sizes that overflow.                           */
gr_status gr_wino_plan_init(gr_wino_plan *p, int B, int H, int W, int C, int OH, int OW, int OC,
                            int pad_t, int pad_l, int m, gr_act act, float alpha, gr_error *err);

/* Floats of the transformed weights U: a*a * C * OC. */
size_t gr_wino_weights_floats(const gr_wino_plan *p);
/* Bytes of the scratch gr_wino_forward needs (64-byte aligned is best). */
size_t gr_wino_scratch_bytes(const gr_wino_plan *p);

/* U [a*a][C][OC] from w [3][3][C][OC] (HWIO), in float (G's zeros and
 * repeats used; AVX2 where the CPU has it, the same bits in plain C).
 * Done once per weights version (every step for a trained layer).         */
void gr_wino_weights(const gr_wino_plan *p, const float *w, float *U);

/* out [B,OH,OW,OC] = act(conv(in [B,H,W,C], w) + bias), bias [OC] or NULL,
 * from U = gr_wino_weights(w).  scratch: gr_wino_scratch_bytes(p).
 * portable: use the plain-C transforms even where AVX2 is there (tests).
 * Threads: the OpenMP team (transforms split by tiles, GEMMs by position).
 * Fails only if the GEMM does (GR_ERR_BACKEND).                           */
gr_status gr_wino_forward(const gr_wino_plan *p, const float *in, const float *U,
                          const float *bias, float *out, void *scratch, bool portable,
                          gr_error *err);

/* ---- backward (train/trainer through backend/dnnl_backward.c) ----
 *
 * Data gradient: din = conv(dout, w rotated by 180 degrees, in/out channels
 * swapped) with pad 2 - pad: a forward convolution of its own plan
 *   gr_wino_plan_init(&pd, B, OH, OW, OC, H, W, C, 2 - pad_t, 2 - pad_l, m, LINEAR)
 * whose weights gr_wino_weights_rot makes from the forward's w [3][3][C][OC];
 * then gr_wino_forward (pd.accum: din += instead of din =).
 *
 * Weight gradient, for the forward plan p: per tile, dw[r][s] +=
 * sum_{i,j} dout[i][j] in[i + r][j + s] is a 3x3 "convolution" of the
 * input window by the m x m dout tile, and the same algebra gives
 *   dW = Gt [ (A^T dY A) (.) (Bt d B) ] G     (A^T = At transposed, a x m),
 * so V = the forward's input transform, D = A^T dY A (the dout transform),
 * M[k] [C, OC] = sum over tiles V[k]^T D[k] (a*a GEMMs with the tiles as
 * the inner dimension, accumulated over chunks), then dw += Gt M G per
 * (c, oc) and db += the sums of dout.                                     */
void gr_wino_weights_rot(const gr_wino_plan *pd, const float *w, float *U);
/* Bytes of scratch gr_wino_backward_weights needs. */
size_t gr_wino_bwdw_scratch_bytes(const gr_wino_plan *p);
/* dw [3][3][C][OC] += the weight gradient, db [OC] += the bias gradient
 * (db may be NULL), from in [B,H,W,C] and dout [B,OH,OW,OC] (p: the
 * forward's plan, linear).  Fails only if the GEMM does.                  */
gr_status gr_wino_backward_weights(const gr_wino_plan *p, const float *in, const float *dout, float *dw,
                                   float *db, void *scratch, bool portable, gr_error *err);

/* Whether the AVX2 transforms run on this CPU (false off x86). */
bool gr_wino_avx2(void);

/* The transforms of tiles [t_begin, t_end) of the chunk starting at tile
 * tile0 (nt tiles): V [a*a][nt][C] from in; out from M [a*a][nt][OC].
 * Internal (winograd.c / winograd_avx2.c).                                 */
void gr_wino_input_c(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                     int t_begin, int t_end);
void gr_wino_output_c(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                      int tile0, int nt, int t_begin, int t_end);
void gr_wino_input_avx2(const gr_wino_plan *p, const float *in, float *V, int tile0, int nt,
                        int t_begin, int t_end);
void gr_wino_output_avx2(const gr_wino_plan *p, const float *M, const float *bias, float *out,
                         int tile0, int nt, int t_begin, int t_end);
/* D [a*a][nt][OC] = A^T dY A of the chunk's dout tiles (zero past the edges). */
void gr_wino_gradout_c(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt, int t_begin,
                       int t_end);
void gr_wino_gradout_avx2(const gr_wino_plan *p, const float *dout, float *D, int tile0, int nt, int t_begin,
                          int t_end);
/* The weight side for input channels [c_begin, c_end): U from the filters
 * g(ky, kx, c, o) = w0[ky*sy + kx*sx + c*sc + o*so]; dw += Gt M G. */
void gr_wino_weights_c(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                       ptrdiff_t so, float *U, int c_begin, int c_end);
void gr_wino_weights_avx2(const gr_wino_plan *p, const float *w0, ptrdiff_t sy, ptrdiff_t sx, ptrdiff_t sc,
                          ptrdiff_t so, float *U, int c_begin, int c_end);
void gr_wino_wgrad_c(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end);
void gr_wino_wgrad_avx2(const gr_wino_plan *p, const float *M, float *dw, int c_begin, int c_end);

#endif
