/* attention.c — multi-head self-attention (see attention.h for the math),
 * the `self_attention` op: torchvision's EncoderBlock attention (in_proj,
 * the head split, scaled Q K^T, softmax over the keys, times V, the head
 * merge, out_proj) as one node.  Backward, per head, with S the scaled
 * scores and P = softmax(S):
 *   dctx = dout out_kernel^T      dout_kernel += ctx^T dout   dout_bias += sum dout
 *   dP = dctx_h v_h^T             dv_h = P^T dctx_h
 *   dS = P * (dP - rowsum(dP * P))
 *   dq_h = scale dS k_h           dk_h = scale dS^T q_h
 *   din += dqkv in_kernel^T       din_kernel += x^T dqkv      din_bias += sum dqkv
 * The products go through a GEMM passed in: the table's reference uses the
 * plain-C one below, the backend and the trainer gr_gemm (oneDNN).       */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops/attention.h"

gr_layer_spec gr_attention(int heads) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_ATTENTION;
    s.groups = heads;
    s.use_bias = true;
    return s;
}

static int heads_of(const gr_layer_spec *s) { return s->groups > 0 ? s->groups : 1; }

/* The plain-C GEMM (row-major, the reference's): C = alpha op(A) op(B) + beta C. */
static gr_status ref_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc, gr_error *err) {
    (void)err;
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j++) c[j] = beta == 0 ? 0.0f : beta * c[j];
        for (int k = 0; k < K; k++) {
            float a = alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            if (a == 0) continue;
            if (!tb) {
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
    return GR_OK;
}

static gr_status att_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    int H = heads_of(s), D = in[0].c;
    if (s->groups < 0 || D % H)
        return gr_op_bad(err, s, "%d heads do not divide the %d channels", s->groups, D);
    if (!(s->alpha >= 0) || isinf(s->alpha)) return gr_op_bad(err, s, "scale %g", (double)s->alpha);
    if ((int64_t)in[0].h * in[0].w > 65536) return gr_op_bad(err, s, "%lld tokens (at most 65536)",
                                                           (long long)in[0].h * in[0].w);
    *o = in[0];
    return GR_OK;
}

static int att_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    (void)s;
    int64_t D = in[0].c;
    d[0] = (gr_param_decl){"in_kernel", 2, {D, 3 * D}};
    d[1] = (gr_param_decl){"in_bias", 1, {3 * D}};
    d[2] = (gr_param_decl){"out_kernel", 2, {D, D}};
    d[3] = (gr_param_decl){"out_bias", 1, {D}};
    return 4;
}

size_t gr_attention_state_floats(const gr_layer_spec *s, gr_dims3 in, int B) {
    size_t T = (size_t)in.h * (size_t)in.w, D = (size_t)in.c;
    return (size_t)B * (T * 3 * D + (size_t)heads_of(s) * T * T + T * D);
}

/* Training keeps the forward's state and room for the backward's. */
static size_t att_aux(const gr_layer_spec *s, const gr_dims3 *in, const gr_dims3 *out, int B) {
    (void)out;
    return 2 * gr_attention_state_floats(s, in[0], B);
}

/* Rows of x [n, m] plus v [m]. */
static void add_rows(float *x, const float *v, int64_t n, int m) {
    if (!v) return;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < m; j++) x[i * m + j] += v[j];
}

/* acc[m] += sum of the n rows of x [n, m] (ld ldx). */
static void sum_rows(float *acc, const float *x, int64_t n, int m, int ldx) {
    if (!acc) return;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < m; j++) acc[j] += x[i * ldx + j];
}

typedef struct { int B, T, D, H, hd; float scale; } att_dims;

static att_dims dims_of(const gr_op_run *r) {
    att_dims a;
    a.B = r->B;
    a.T = r->in[0].h * r->in[0].w;
    a.D = r->in[0].c;
    a.H = heads_of(r->s);
    a.hd = a.D / a.H;
    a.scale = r->s->alpha > 0 ? r->s->alpha : (float)(1.0 / sqrt((double)a.hd));
    return a;
}

gr_status gr_attention_run(const gr_op_run *r, float *out, float *st, gr_gemm_fn gemm, gr_error *err) {
    att_dims a = dims_of(r);
    int D3 = 3 * a.D, BT = a.B * a.T;
    float *qkv = st, *P = qkv + (size_t)BT * D3, *ctx = P + (size_t)a.B * a.H * a.T * a.T;
    gr_status s = gemm(false, false, BT, D3, a.D, 1.0f, r->ins[0], a.D, r->p[0], D3, 0.0f, qkv, D3, err);
    if (s) return s;
    add_rows(qkv, r->p[1], BT, D3);
    gr_status fail = GR_OK;
    int nbh = a.B * a.H;
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < nbh; bh++) {
        int b = bh / a.H, h = bh % a.H;
        const float *q = qkv + (size_t)b * a.T * D3 + (size_t)h * a.hd, *k = q + a.D, *v = q + 2 * a.D;
        float *S = P + (size_t)bh * a.T * a.T, *c = ctx + (size_t)b * a.T * a.D + (size_t)h * a.hd;
        gr_error e = {0};
        gr_status s1 = gemm(false, true, a.T, a.T, a.hd, a.scale, q, D3, k, D3, 0.0f, S, a.T, &e);
        if (!s1) {
            gr_softmax_forward(S, S, a.T, a.T);
            s1 = gemm(false, false, a.T, a.hd, a.T, 1.0f, S, a.T, v, D3, 0.0f, c, a.D, &e);
        }
        if (s1) {
#pragma omp critical
            if (!fail) { fail = s1; *err = e; }
        }
    }
    if (fail) return fail;
    if ((s = gemm(false, false, BT, a.D, a.D, 1.0f, ctx, a.D, r->p[2], a.D, 0.0f, out, a.D, err))) return s;
    add_rows(out, r->p[3], BT, a.D);
    return GR_OK;
}

gr_status gr_attention_grad(const gr_op_run *r, const float *dout, float *din, float *const *dp, gr_gemm_fn gemm,
                            gr_error *err) {
    att_dims a = dims_of(r);
    int D3 = 3 * a.D, BT = a.B * a.T;
    size_t nst = gr_attention_state_floats(r->s, r->in[0], a.B);
    const float *qkv = r->aux, *P = qkv + (size_t)BT * D3, *ctx = P + (size_t)a.B * a.H * a.T * a.T;
    float *dqkv = r->aux + nst, *dS = dqkv + (size_t)BT * D3, *dctx = dS + (size_t)a.B * a.H * a.T * a.T;
    gr_status s;
    if ((s = gemm(false, true, BT, a.D, a.D, 1.0f, dout, a.D, r->p[2], a.D, 0.0f, dctx, a.D, err))) return s;
    if (dp[2] && (s = gemm(true, false, a.D, a.D, BT, 1.0f, ctx, a.D, dout, a.D, 1.0f, dp[2], a.D, err))) return s;
    sum_rows(dp[3], dout, BT, a.D, a.D);
    gr_status fail = GR_OK;
    int nbh = a.B * a.H;
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < nbh; bh++) {
        int b = bh / a.H, h = bh % a.H, T = a.T;
        size_t o = (size_t)b * T * D3 + (size_t)h * a.hd;
        const float *q = qkv + o, *k = q + a.D, *v = q + 2 * a.D, *Ph = P + (size_t)bh * T * T;
        const float *dc = dctx + (size_t)b * T * a.D + (size_t)h * a.hd;
        float *g = dS + (size_t)bh * T * T, *dq = dqkv + o, *dk = dq + a.D, *dv = dq + 2 * a.D;
        gr_error e = {0};
        gr_status s1 = gemm(false, true, T, T, a.hd, 1.0f, dc, a.D, v, D3, 0.0f, g, T, &e);   /* dP */
        if (!s1) s1 = gemm(true, false, T, a.hd, T, 1.0f, Ph, T, dc, a.D, 0.0f, dv, D3, &e);
        if (!s1) {
            for (int i = 0; i < T; i++) {   /* dS = P * (dP - rowsum(dP * P)) */
                float *gi = g + (size_t)i * T;
                const float *pi = Ph + (size_t)i * T;
                double dot = 0;
                for (int j = 0; j < T; j++) dot += (double)gi[j] * pi[j];
                for (int j = 0; j < T; j++) gi[j] = pi[j] * (gi[j] - (float)dot);
            }
            s1 = gemm(false, false, T, a.hd, T, a.scale, g, T, k, D3, 0.0f, dq, D3, &e);
        }
        if (!s1) s1 = gemm(true, false, T, a.hd, T, a.scale, g, T, q, D3, 0.0f, dk, D3, &e);
        if (s1) {
#pragma omp critical
            if (!fail) { fail = s1; *err = e; }
        }
    }
    if (fail) return fail;
    sum_rows(dp[1], dqkv, BT, D3, D3);
    if (dp[0] && (s = gemm(true, false, a.D, D3, BT, 1.0f, r->ins[0], a.D, dqkv, D3, 1.0f, dp[0], D3, err))) return s;
    if (din && (s = gemm(false, true, BT, a.D, D3, 1.0f, dqkv, D3, r->p[0], D3, 1.0f, din, a.D, err))) return s;
    return GR_OK;
}

/* The table's reference: plain-C products.  Outside training the state
 * goes to a scratch buffer; when it cannot be had the output is NaN, which
 * every caller's output check reports as an error.                        */
static void att_forward(const gr_op_run *r, float *out) {
    gr_error e = {0};
    float *st = r->aux;
    size_t n = gr_attention_state_floats(r->s, r->in[0], r->B);
    if (!st) st = gr_malloc(n * sizeof(float), &e);
    if (!st || gr_attention_run(r, out, st, ref_gemm, &e) != GR_OK) {
        size_t no = (size_t)r->B * (size_t)gr_dims3_size(r->out);
        for (size_t i = 0; i < no; i++) out[i] = NAN;
    }
    if (st != r->aux) free(st);
}

static void att_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                         float *const *dp) {
    (void)out;
    gr_error e = {0};
    gr_attention_grad(r, dout, din[0], dp, ref_gemm, &e);   /* the plain-C GEMM cannot fail */
}

const gr_op_def gr_op_attention_def = {
    .name = "self_attention", .fast = GR_FAST_ATTN, .shape = att_shape,
    .params = att_params, .aux_floats = att_aux, .forward = att_forward, .backward = att_backward,
};
