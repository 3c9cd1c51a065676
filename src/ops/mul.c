/* mul.c — the multiply op: out = a * b elementwise, b broadcast over the
 * image when it is [B, 1, 1, C] (squeeze-and-excitation's channel scale:
 * ONNX Mul, Keras Multiply on an SE block).
 *
 *   a [B, H, W, C]   b [B, H, W, C] or [B, 1, 1, C]   out [B, H, W, C]
 *   din_a += dout * b           din_b += dout * a (summed over H, W when broadcast) */
#include <string.h>
#include "ops/op.h"

gr_layer_spec gr_multiply(int a, int b) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_MUL;
    s.inputs[0] = a;
    s.inputs[1] = b;
    s.n_inputs = 2;
    return s;
}

static gr_status mul_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    if (n_in != 2) return gr_op_bad(err, s, "takes 2 inputs, not %d", n_in);
    bool same = in[1].h == in[0].h && in[1].w == in[0].w, bcast = in[1].h == 1 && in[1].w == 1;
    if (in[1].c != in[0].c || !(same || bcast))
        return gr_op_bad(err, s, "cannot multiply %dx%dx%d by %dx%dx%d (the second input must have the first's "
                         "shape or 1x1x%d)", in[0].h, in[0].w, in[0].c, in[1].h, in[1].w, in[1].c, in[0].c);
    *o = in[0];
    return GR_OK;
}

static void mul_forward(const gr_op_run *r, float *out) {
    const float *a = r->ins[0], *b = r->ins[1];
    int64_t HW = (int64_t)r->out.h * r->out.w, C = r->out.c;
    int64_t bstep = r->in[1].h * r->in[1].w == 1 ? 0 : C;   /* b's stride per pixel */
    /* parallel over pixels of every image (a batch of 1 keeps both cores busy) */
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < r->B * HW; q++) {
        const int64_t bi = q / HW;
        const float *x = a + q * C, *y = b + (bstep ? q * C : bi * C);
        float *o = out + q * C;
        for (int64_t c = 0; c < C; c++) o[c] = x[c] * y[c];
    }
}

static void mul_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                         float *const *dp) {
    (void)out;
    (void)dp;
    const float *a = r->ins[0], *b = r->ins[1];
    int64_t HW = (int64_t)r->out.h * r->out.w, C = r->out.c;
    int64_t bstep = r->in[1].h * r->in[1].w == 1 ? 0 : C;
    /* parallel over images: each thread owns its images' gradients (b's too) */
#pragma omp parallel for schedule(static)
    for (int64_t bi = 0; bi < r->B; bi++)
        for (int64_t p = 0; p < HW; p++) {
            size_t at = (size_t)((bi * HW + p) * C), bt = (size_t)(bstep ? (bi * HW + p) * C : bi * C);
            for (int64_t c = 0; c < C; c++) {
                if (din[0]) din[0][at + c] += dout[at + c] * b[bt + c];
                if (din[1]) din[1][bt + c] += dout[at + c] * a[at + c];
            }
        }
}

const gr_op_def gr_op_mul_def = {
    .name = "multiply", .shape = mul_shape, .forward = mul_forward, .backward = mul_backward,
};
