/* conv2d.c — reference 2-D convolution (NHWC input, HWIO kernel, groups).
 *
 * Shapes (see layers.h):
 *   in  [B, H, W, C]   w [KH, KW, C/groups, OC]   b [OC] or NULL
 *   out [B, OH, OW, OC]
 * Tap (ky, kx) reads input cell (oy*SH - PT + ky*DH, ox*SW - PL + kx*DW)
 * (DH, DW: the dilation, 1 for a plain conv).
 * Input cells outside the image read as zero.  Output channel o belongs to
 * group g = o / (OC/groups), which reads input channels g*Cg .. g*Cg+Cg-1.
 *
 * Loops keep the contiguous output-channel dimension innermost.  Every
 * parallel loop gives each thread a disjoint set of output elements and sums
 * in a fixed order, so results do not depend on the number of threads.     */
#include "ops/op.h"

/* The dilation of d (0 reads as 1: dims filled before dilation existed). */
static int dil(int v) { return v > 0 ? v : 1; }

/* Forward.  Parallel over (batch, output row); each thread owns whole rows. */
void gr_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                       const gr_conv_dims *d) {
    const int Cg = d->C / d->groups, OCg = d->OC / d->groups, DH = dil(d->DH), DW = dil(d->DW);
    const int64_t rows = (int64_t)d->B * d->OH;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int bi = (int)(r / d->OH), oy = (int)(r % d->OH);
        for (int ox = 0; ox < d->OW; ox++) {
            float *o_row = out + ((size_t)r * d->OW + ox) * d->OC;   /* [OC] */
            for (int o = 0; o < d->OC; o++) o_row[o] = b ? b[o] : 0.0f;
            for (int ky = 0; ky < d->KH; ky++) {
                const int iy = oy * d->SH - d->PT + ky * DH;
                if (iy < 0 || iy >= d->H) continue;
                for (int kx = 0; kx < d->KW; kx++) {
                    const int ix = ox * d->SW - d->PL + kx * DW;
                    if (ix < 0 || ix >= d->W) continue;
                    const float *i_px = in + (((size_t)bi * d->H + iy) * d->W + ix) * d->C;
                    const float *w_k = w + ((size_t)ky * d->KW + kx) * Cg * d->OC;
                    for (int g = 0; g < d->groups; g++) {
                        float *og = o_row + (size_t)g * OCg;
                        for (int cc = 0; cc < Cg; cc++) {
                            const float v = i_px[g * Cg + cc];
                            const float *wr = w_k + (size_t)cc * d->OC + (size_t)g * OCg;
                            for (int o = 0; o < OCg; o++) og[o] += v * wr[o];
                        }
                    }
                }
            }
        }
    }
}

/* din[b,iy,ix,c] += sum over (ky,kx) with iy = oy*SH-PT+ky*DH, ix = ox*SW-PL+kx*DW
 *                   and o in group(c) of dout[b,oy,ox,o] * w[ky,kx,c',o].
 * Gather form: parallel over (batch, input row), each thread owns its rows. */
static void conv_backward_input(const float *dout, const float *w, const gr_conv_dims *d,
                                float *din) {
    const int Cg = d->C / d->groups, OCg = d->OC / d->groups, DH = dil(d->DH), DW = dil(d->DW);
    const int64_t rows = (int64_t)d->B * d->H;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int bi = (int)(r / d->H), iy = (int)(r % d->H);
        for (int ix = 0; ix < d->W; ix++) {
            float *di_px = din + ((size_t)r * d->W + ix) * d->C;   /* [C] */
            for (int ky = 0; ky < d->KH; ky++) {
                const int ty = iy + d->PT - ky * DH;
                if (ty < 0 || ty % d->SH) continue;
                const int oy = ty / d->SH;
                if (oy >= d->OH) continue;
                for (int kx = 0; kx < d->KW; kx++) {
                    const int tx = ix + d->PL - kx * DW;
                    if (tx < 0 || tx % d->SW) continue;
                    const int ox = tx / d->SW;
                    if (ox >= d->OW) continue;
                    const float *do_px = dout + (((size_t)bi * d->OH + oy) * d->OW + ox) * d->OC;
                    const float *w_k = w + ((size_t)ky * d->KW + kx) * Cg * d->OC;
                    for (int g = 0; g < d->groups; g++) {
                        const float *dg = do_px + (size_t)g * OCg;
                        for (int cc = 0; cc < Cg; cc++) {
                            const float *wr = w_k + (size_t)cc * d->OC + (size_t)g * OCg;
                            float acc = 0.0f;
                            for (int o = 0; o < OCg; o++) acc += dg[o] * wr[o];
                            di_px[g * Cg + cc] += acc;
                        }
                    }
                }
            }
        }
    }
}

/* dw[ky,kx,c',o] += sum_{b,oy,ox} in[b,iy,ix,c] * dout[b,oy,ox,o].
 * Parallel over (kernel position, block of CB input channels of the group
 * layout); each task owns the dw rows [ky,kx,c'..c'+CB) and sums over
 * (b,oy,ox) in order. */
#define CONV_DW_CB 16
static void conv_backward_weight(const float *dout, const float *in, const gr_conv_dims *d,
                                 float *dw) {
    const int Cg = d->C / d->groups, OCg = d->OC / d->groups, DH = dil(d->DH), DW = dil(d->DW);
    const int nblk = (Cg + CONV_DW_CB - 1) / CONV_DW_CB;
    const int ntask = d->KH * d->KW * nblk;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < ntask; t++) {
        const int kpos = t / nblk, blk = t % nblk;
        const int ky = kpos / d->KW, kx = kpos % d->KW;
        const int c0 = blk * CONV_DW_CB;
        const int c1 = c0 + CONV_DW_CB < Cg ? c0 + CONV_DW_CB : Cg;
        float *dw_k = dw + (size_t)kpos * Cg * d->OC;
        for (int bi = 0; bi < d->B; bi++)
            for (int oy = 0; oy < d->OH; oy++) {
                const int iy = oy * d->SH - d->PT + ky * DH;
                if (iy < 0 || iy >= d->H) continue;
                for (int ox = 0; ox < d->OW; ox++) {
                    const int ix = ox * d->SW - d->PL + kx * DW;
                    if (ix < 0 || ix >= d->W) continue;
                    const float *i_px = in + (((size_t)bi * d->H + iy) * d->W + ix) * d->C;
                    const float *do_px = dout + (((size_t)bi * d->OH + oy) * d->OW + ox) * d->OC;
                    for (int g = 0; g < d->groups; g++) {
                        const float *dg = do_px + (size_t)g * OCg;
                        for (int cc = c0; cc < c1; cc++) {
                            const float v = i_px[g * Cg + cc];
                            float *wr = dw_k + (size_t)cc * d->OC + (size_t)g * OCg;
                            for (int o = 0; o < OCg; o++) wr[o] += v * dg[o];
                        }
                    }
                }
            }
    }
}

/* db[o] += sum_{b,oy,ox} dout[b,oy,ox,o]; sequential over pixels (cheap). */
static void conv_backward_bias(const float *dout, const gr_conv_dims *d, float *db) {
    const int64_t px = (int64_t)d->B * d->OH * d->OW;
    for (int64_t p = 0; p < px; p++) {
        const float *row = dout + (size_t)p * d->OC;
        for (int o = 0; o < d->OC; o++) db[o] += row[o];
    }
}

void gr_conv2d_backward(const float *dout, const float *in, const float *w,
                        const gr_conv_dims *d, float *din, float *dw, float *db) {
    if (din) conv_backward_input(dout, w, d, din);
    if (dw) conv_backward_weight(dout, in, d, dw);
    if (db) conv_backward_bias(dout, d, db);
}

/* ---- the op: Keras Conv2D (HWIO kernel, optional bias, fused activation) -- */
static gr_status conv_shape(gr_layer_spec *s, const gr_dims3 *in, int n_in, gr_dims3 *o, gr_error *err) {
    (void)n_in;
    int H = in[0].h, W = in[0].w, C = in[0].c;
    if (s->units <= 0 || s->kh <= 0 || s->kw <= 0)
        return gr_op_bad(err, s, "filters %d and kernel %dx%d must be positive", s->units, s->kh, s->kw);
    if (s->sh <= 0) s->sh = 1;
    if (s->sw <= 0) s->sw = 1;
    if (s->groups <= 0) s->groups = 1;
    if (s->dh < 0 || s->dw < 0)
        return gr_op_bad(err, s, "dilation %dx%d must be positive", s->dh, s->dw);
    if (s->dh == 0) s->dh = 1;
    if (s->dw == 0) s->dw = 1;
    /* the span of the dilated kernel (kh, dh <= GR_MAX_WINDOW: checked by the model) */
    int64_t eh = (int64_t)(s->kh - 1) * s->dh + 1, ew = (int64_t)(s->kw - 1) * s->dw + 1;
    if (eh > GR_MAX_WINDOW || ew > GR_MAX_WINDOW)
        return gr_op_bad(err, s, "kernel %dx%d with dilation %dx%d spans %lldx%lld cells (at most %d)", s->kh, s->kw,
                         s->dh, s->dw, (long long)eh, (long long)ew, GR_MAX_WINDOW);
    if (C % s->groups || s->units % s->groups)
        return gr_op_bad(err, s, "groups %d must divide input channels %d and filters %d", s->groups, C, s->units);
    o->h = gr_op_out_dim(H, (int)eh, s->sh, s->padding, &s->pad_t, &s->pad_b, 0);
    o->w = gr_op_out_dim(W, (int)ew, s->sw, s->padding, &s->pad_l, &s->pad_r, 0);
    o->c = s->units;
    if (o->h <= 0 || o->w <= 0)
        return gr_op_bad(err, s, "a %dx%d input is too small for this kernel (output %dx%d)", H, W, o->h, o->w);
    return GR_OK;
}

static int conv_params(const gr_layer_spec *s, const gr_dims3 *in, gr_param_decl *d) {
    d[0] = (gr_param_decl){"kernel", 4, {s->kh, s->kw, in[0].c / s->groups, s->units}};
    d[1] = (gr_param_decl){"bias", 1, {s->units}};
    return s->use_bias ? 2 : 1;
}

static gr_conv_dims conv_dims(const gr_op_run *r) {
    const gr_layer_spec *s = r->s;
    gr_conv_dims d = {r->B, r->in[0].h, r->in[0].w, r->in[0].c, r->out.h, r->out.w, r->out.c,
                      s->kh, s->kw, s->sh, s->sw, s->pad_t, s->pad_l, s->groups, s->dh, s->dw};
    return d;
}

static void conv_forward(const gr_op_run *r, float *out) {
    gr_conv_dims d = conv_dims(r);
    gr_conv2d_forward(out, r->ins[0], r->p[0], r->p[1], &d);
}

static void conv_backward(const gr_op_run *r, const float *out, const float *dout, float *const *din,
                          float *const *dp) {
    (void)out;
    gr_conv_dims d = conv_dims(r);
    gr_conv2d_backward(dout, r->ins[0], r->p[0], &d, din[0], dp[0], dp[1]);
}

const gr_op_def gr_op_conv2d_def = {
    .name = "conv2d", .attrs = GR_ATTR_BIAS, .flags = GR_OPF_FUSED_ACT, .fast = GR_FAST_CONV,
    .shape = conv_shape, .params = conv_params, .forward = conv_forward, .backward = conv_backward,
};
