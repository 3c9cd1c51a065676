/* activation.c — reference elementwise activations and softmax.
 *
 *   linear  y = x                      relu    y = max(x, 0)
 *   leaky   y = x > 0 ? x : alpha*x    relu6   y = min(max(x, 0), 6)
 *   sigmoid y = 1 / (1 + e^-x)         tanh    y = tanh(x)
 *   swish   y = x * sigmoid(x) (SiLU)  gelu    y = x * Phi(x) = x/2 (1 + erf(x/sqrt 2))
 *   hardswish   y = x * relu6(x + 3) / 6
 *   hardsigmoid y = relu6(x + 3) / 6   (PyTorch's, ONNX HardSigmoid alpha 1/6)
 * Derivatives at the kinks take the "off" side (relu'(0) = 0, leaky'(0) =
 * alpha, relu6'(0) = relu6'(6) = 0), as PyTorch does.
 * GR_ACT_SOFTMAX is not elementwise (use gr_softmax_*): here it copies.    */
#include <math.h>
#include <string.h>
#include "ops/op.h"

static float sigmoidf_(float x) {
    /* stable on both tails */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

/* ---- the activation kinds ------------------------------------------------------
 * An entry with f and df is computed elementwise from them (the kinds above
 * keep their own loops: they are the hot paths and their numbers are fixed);
 * df gives f'(x) from the input x.                                          */
static float swish_f(float x) { return x * sigmoidf_(x); }
static float swish_df(float x) {
    const float s = sigmoidf_(x);
    return s + x * s * (1.0f - s);
}
static float hardswish_f(float x) { return x <= -3.0f ? 0.0f : x >= 3.0f ? x : x * (x + 3.0f) / 6.0f; }
/* PyTorch's: 0 below -3, x/3 + 1/2 up to 3 included, 1 above */
static float hardswish_df(float x) { return x < -3.0f ? 0.0f : x <= 3.0f ? x / 3.0f + 0.5f : 1.0f; }
static float hardsigmoid_f(float x) { return x <= -3.0f ? 0.0f : x >= 3.0f ? 1.0f : x / 6.0f + 0.5f; }
static float hardsigmoid_df(float x) { return x > -3.0f && x < 3.0f ? 1.0f / 6.0f : 0.0f; }
static float gelu_f(float x) { return (float)(0.5 * x * (1.0 + erf(x * M_SQRT1_2))); }
static float gelu_df(float x) {
    const double xd = x;
    return (float)(0.5 * (1.0 + erf(xd * M_SQRT1_2)) + xd * exp(-0.5 * xd * xd) * (0.5 * M_2_SQRTPI * M_SQRT1_2));
}

static const struct {
    const char *name;
    float (*f)(float x);
    float (*df)(float x);
} acts[GR_ACT__COUNT] = {
    [GR_ACT_LINEAR] = {"linear", NULL, NULL},
    [GR_ACT_RELU] = {"relu", NULL, NULL},
    [GR_ACT_LEAKY] = {"leaky", NULL, NULL},
    [GR_ACT_RELU6] = {"relu6", NULL, NULL},
    [GR_ACT_SIGMOID] = {"sigmoid", NULL, NULL},
    [GR_ACT_TANH] = {"tanh", NULL, NULL},
    [GR_ACT_SOFTMAX] = {"softmax", NULL, NULL},
    [GR_ACT_SWISH] = {"swish", swish_f, swish_df},
    [GR_ACT_HARDSWISH] = {"hardswish", hardswish_f, hardswish_df},
    [GR_ACT_HARDSIGMOID] = {"hardsigmoid", hardsigmoid_f, hardsigmoid_df},
    [GR_ACT_GELU] = {"gelu", gelu_f, gelu_df},
};

const char *gr_act_name(gr_act a) { return (unsigned)a < GR_ACT__COUNT ? acts[a].name : "?"; }
int gr_act_parse(const char *s, gr_act *out) {
    for (int i = 0; i < GR_ACT__COUNT; i++)
        if (!strcmp(s, acts[i].name)) { *out = (gr_act)i; return 0; }
    if (!strcmp(s, "none")) { *out = GR_ACT_LINEAR; return 0; }
    if (!strcmp(s, "silu")) { *out = GR_ACT_SWISH; return 0; }
    return -1;
}

bool gr_act_needs_input(gr_act act) { return (unsigned)act < GR_ACT__COUNT && acts[act].df; }

static void act_forward_table(float *out, const float *in, size_t n, gr_act act) {
    float (*f)(float) = acts[act].f;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = f(in[i]);
}

void gr_act_forward(float *out, const float *in, size_t n, gr_act act, float alpha) {
    switch (act) {
    case GR_ACT_RELU:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0.0f;
        break;
    case GR_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : alpha * in[i];
        break;
    case GR_ACT_RELU6:
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? (in[i] < 6 ? in[i] : 6.0f) : 0.0f;
        break;
    case GR_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) out[i] = sigmoidf_(in[i]);
        break;
    case GR_ACT_TANH:
        for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
        break;
    default: /* LINEAR (and SOFTMAX, which is not elementwise), or a kind of the table below */
        if ((unsigned)act < GR_ACT__COUNT && acts[act].f) act_forward_table(out, in, n, act);
        else if (out != in)
            for (size_t i = 0; i < n; i++) out[i] = in[i];
        break;
    }
}

/* din += dout * f'(x); relu/leaky/relu6 read `in`, sigmoid/tanh read `out`. */
void gr_act_backward(const float *dout, const float *in, const float *out, size_t n,
                     gr_act act, float alpha, float *din) {
    if (!din) return;
    switch (act) {
    case GR_ACT_RELU:
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : 0.0f;
        break;
    case GR_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : alpha * dout[i];
        break;
    case GR_ACT_RELU6:
        for (size_t i = 0; i < n; i++) din[i] += (in[i] > 0 && in[i] < 6) ? dout[i] : 0.0f;
        break;
    case GR_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
        break;
    case GR_ACT_TANH:
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    default:
        if ((unsigned)act < GR_ACT__COUNT && acts[act].df)
            for (size_t i = 0; i < n; i++) din[i] += dout[i] * acts[act].df(in[i]);
        else
            for (size_t i = 0; i < n; i++) din[i] += dout[i];
        break;
    }
}

/* out[r,:] = exp(in[r,:] - max) / sum exp(in[r,:] - max); sum in double. */
void gr_softmax_forward(float *out, const float *in, int64_t N, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *x = in + (size_t)r * C;
        float *y = out + (size_t)r * C;
        float mx = -INFINITY;
        for (int c = 0; c < C; c++) if (x[c] > mx) mx = x[c];
        double s = 0;
        for (int c = 0; c < C; c++) { y[c] = expf(x[c] - mx); s += y[c]; }
        const float inv = (float)(1.0 / s);
        for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

/* din[r,c] += out[r,c] * (dout[r,c] - sum_k dout[r,k] out[r,k]) */
void gr_softmax_backward(const float *dout, const float *out, int64_t N, int C, float *din) {
    if (!din) return;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        const float *dy = dout + (size_t)r * C, *y = out + (size_t)r * C;
        float *dx = din + (size_t)r * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)dy[c] * y[c];
        for (int c = 0; c < C; c++) dx[c] += y[c] * (float)(dy[c] - s);
    }
}

/* dy <- dy * f'(.) in place: from the output y (relu kinks take the "off" side). */
void gr_act_grad_inplace(float *dy, const float *x, const float *y, size_t n, gr_act act, float alpha) {
    switch (act) {
    case GR_ACT_RELU:   /* the common case, over whole conv activations: elementwise, split over threads */
#pragma omp parallel for simd schedule(static) if (parallel: n > 262144)
        for (size_t k = 0; k < n; k++) dy[k] = y[k] > 0 ? dy[k] : 0.0f;
        break;
    case GR_ACT_LEAKY: for (size_t k = 0; k < n; k++) if (!(y[k] > 0)) dy[k] *= alpha; break;
    case GR_ACT_RELU6: for (size_t k = 0; k < n; k++) if (!(y[k] > 0 && y[k] < 6)) dy[k] = 0; break;
    case GR_ACT_SIGMOID: for (size_t k = 0; k < n; k++) dy[k] *= y[k] * (1 - y[k]); break;
    case GR_ACT_TANH: for (size_t k = 0; k < n; k++) dy[k] *= 1 - y[k] * y[k]; break;
    default:
        if ((unsigned)act < GR_ACT__COUNT && acts[act].df)
            for (size_t k = 0; k < n; k++) dy[k] *= acts[act].df(x[k]);
        break;
    }
}

/* ---- the ops: an activation layer (elementwise, or softmax over channels) and
 * a softmax layer (over the last axis) --------------------------------------- */
static void act_op_forward(const gr_op_run *r, float *out) {
    const gr_layer_spec *s = r->s;
    if (s->act == GR_ACT_SOFTMAX) gr_softmax_forward(out, r->ins[0], (int64_t)r->B * r->out.h * r->out.w, r->out.c);
    else gr_act_forward(out, r->ins[0], (size_t)((int64_t)r->B * gr_dims3_size(r->out)), s->act, s->alpha);
}

static void act_op_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                            float *const *dp) {
    (void)dp;
    const gr_layer_spec *s = r->s;
    if (s->act == GR_ACT_SOFTMAX)
        gr_softmax_backward(dout, out, (int64_t)r->B * r->out.h * r->out.w, r->out.c, din[0]);
    else
        gr_act_backward(dout, r->ins[0], out, (size_t)((int64_t)r->B * gr_dims3_size(r->out)), s->act, s->alpha,
                        din[0]);
}

static void softmax_op_forward(const gr_op_run *r, float *out) {
    gr_softmax_forward(out, r->ins[0], (int64_t)r->B * r->out.h * r->out.w, r->out.c);
}

static void softmax_op_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                                float *const *dp) {
    (void)dp;
    gr_softmax_backward(dout, out, (int64_t)r->B * r->out.h * r->out.w, r->out.c, din[0]);
}

const gr_op_def gr_op_activation_def = {
    .name = "activation", .attrs = GR_ATTR_ACT, .fast = GR_FAST_ACT,
    .forward = act_op_forward, .backward = act_op_backward,
};
const gr_op_def gr_op_softmax_def = {
    .name = "softmax", .forward = softmax_op_forward, .backward = softmax_op_backward,
};
