/* test_onnx.c — ONNX models as graft models (src/format/onnx*.c) against
 * PyTorch: the fixtures (tests/fixtures/gen_onnx.py) hold models exported by
 * torch.onnx.export with random weights, an input and PyTorch's logits and
 * pre-logits features.  graft's outputs on the same input must match within
 * 1e-4 (absolute, or relative to the largest value).  Malformed files must
 * fail with an error naming the file and the problem.                      */
#include <stdint.h>
#include <unistd.h>
#include "check.h"
#include "check_grad.h"
#include "graft.h"
#include "graph/model.h"
#include "train/train.h"

float gr_half_to_float(uint16_t h);   /* src/format/onnx.c */

#define FX "tests/fixtures/onnx/"

/* NCHW [B,C,H,W] -> NHWC */
static float *to_nhwc(const float *x, int B, int C, int H, int W) {
    float *y = malloc(sizeof(float) * (size_t)B * C * H * W);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) y[((size_t)b * H * W + i) * C + c] = x[((size_t)b * C + c) * H * W + i];
    return y;
}

/* graft's output of `path` (top: logits, else the pre-logits features) vs
 * PyTorch's IO.out / IO.feat on IO.in, batch 2.                                */
static void parity_at(const char *path, const char *io, int H, int W, int load, bool top, int n_out) {
    char p[600];
    snprintf(p, sizeof p, "%s.in", io);
    float *x = check_read_floats(p, (size_t)2 * 3 * H * W);
    snprintf(p, sizeof p, "%s.%s", io, top ? "out" : "feat");
    float *want = check_read_floats(p, (size_t)2 * n_out);
    CHECK(x && want, "fixtures %s.* missing (run tests/fixtures/gen_onnx.py)", io);
    gr_error err = {0};
    gr_model *m = x && want ? gr_onnx_load(path, load, load, top, &err) : NULL;
    CHECK(m, "%s: %s", path, err.msg);
    if (m) {
        int n = gr_model_num_layers(m), h, w, c;
        gr_model_layer_shape(m, n - 1, &h, &w, &c);
        CHECK(h * w * c == n_out, "%s: output %dx%dx%d, want %d values", path, h, w, c, n_out);
        float *xn = to_nhwc(x, 2, 3, H, W), *out = calloc((size_t)2 * n_out, sizeof(float));
        if (h * w * c == n_out) {
            CHECK(gr_model_predict(m, xn, 2, -1, out, &err) == GR_OK, "%s", err.msg);
            float worst = 0, scale = 1;
            for (int i = 0; i < 2 * n_out; i++) scale = fmaxf(scale, fabsf(want[i]));
            for (int i = 0; i < 2 * n_out; i++) worst = fmaxf(worst, fabsf(out[i] - want[i]));
            printf("  %s (%s): max |graft - oracle| = %.3g (scale %.3g)\n", path, top ? "logits" : "features", worst, scale);
            CHECK(worst <= 1e-4f * scale, "%s: worst difference %g", path, worst);
        }
        free(xn);
        free(out);
        gr_model_free(m);
    }
    free(x);
    free(want);
}

/* at the file's own input size */
#define parity(path, io, H, W, top, n_out) parity_at(path, io, H, W, 0, top, n_out)

static void test_parity_small(void) {
    parity(FX "small.onnx", FX "small", 32, 32, true, 10);
    parity(FX "small.onnx", FX "small", 32, 32, false, 16);
}

/* BatchNormalization kept (folded by graft) and the view's Shape/Gather/Unsqueeze/Concat folded */
static void test_parity_small_unfolded(void) {
    parity(FX "small_bn.onnx", FX "small_bn", 32, 32, true, 10);
    parity(FX "small_bn.onnx", FX "small_bn", 32, 32, false, 16);
}

/* a Flatten of a 6x6x8 map into a dense layer: ONNX's CHW order vs graft's HWC */
static void test_parity_flatten(void) {
    parity(FX "flat.onnx", FX "flat", 16, 16, true, 5);
    parity(FX "flat.onnx", FX "flat", 16, 16, false, 32);
    parity(FX "flat_nhwc.onnx", FX "flat_nhwc", 16, 16, true, 5);
    parity(FX "mm.onnx", FX "mm", 4, 4, true, 4);    /* MatMul + Add, Gemm transB=0 alpha beta (numpy) */
    parity(FX "mm.onnx", FX "mm", 4, 4, false, 6);
    parity(FX "rm18.onnx", FX "rm18", 5, 6, true, 3);   /* opset 18 ReduceMean(axes input), LeakyRelu, Tanh */
    parity(FX "rm18.onnx", FX "rm18", 5, 6, false, 4);
    parity(FX "nhwc.onnx", FX "nhwc", 5, 6, true, 3);   /* NHWC input transposed by the graph */
    parity(FX "nhwc.onnx", FX "nhwc", 5, 6, false, 120);
}

/* exported with a symbolic batch, height and width: 224x224 by default, 32x32 asked */
static void test_symbolic_size(void) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(FX "small_dyn.onnx", 0, 0, false, &err);
    CHECK(m, "%s", err.msg);
    int h = 0, w = 0, c = 0;
    if (m) gr_model_layer_shape(m, -1, &h, &w, &c);
    CHECK(h == 224 && w == 224 && c == 3, "default input %dx%dx%d", h, w, c);
    gr_model_free(m);
    parity_at(FX "small_dyn.onnx", FX "small", 32, 32, 32, true, 10);
}

static void test_parity_mobilenet_v2(void) {
    parity(FX "mnv2.onnx", FX "mnv2", 64, 64, true, 10);
    parity(FX "mnv2.onnx", FX "mnv2", 64, 64, false, 1280);
}

/* narrow torchvision MobileNetV3 (HardSigmoid * x -> hardswish, SE with
 * HardSigmoid), EfficientNet (Sigmoid * x -> swish, SE), RegNetY (grouped
 * convs, SE), ConvNeXt (depthwise 7x7, layer norm decomposed / as one op,
 * Linear per position, the Erf GELU, layer scale), opsets 13 and 17       */
static void test_parity_zoo(void) {
    const struct { const char *name; int feat; } nets[] = {
        {"mnv3", 320}, {"mnv3_17", 320}, {"effnet", 64}, {"regnety", 32}, {"convnext", 16}, {"convnext_17", 16}};
    for (size_t k = 0; k < sizeof nets / sizeof *nets; k++) {
        char p[256], io[256];
        snprintf(p, sizeof p, FX "%s.onnx", nets[k].name);
        snprintf(io, sizeof io, FX "%.*s", (int)strcspn(nets[k].name, "_"), nets[k].name);
        parity(p, io, 32, 32, true, 10);
        parity(p, io, 32, 32, false, nets[k].feat);
    }
    /* the patterns became single graft ops */
    gr_error err = {0};
    gr_model *m = gr_onnx_load(FX "convnext.onnx", 0, 0, false, &err);
    CHECK(m, "%s", err.msg);
    int ln = 0, gelu = 0, n = m ? gr_model_num_layers(m) : 0;
    for (int i = 0; i < n; i++) {
        const gr_layer_spec *s = &m->nodes[i].s;
        ln += s->op == GR_OP_LAYERNORM;
        gelu += s->act == GR_ACT_GELU;
        CHECK(s->op != GR_OP_MUL, "layer %d '%s': the layer scale should fold into the conv before", i, s->name);
    }
    CHECK(ln == 6 && gelu == 3, "convnext: %d layer norms (want 6), %d GELUs (want 3)", ln, gelu);
    gr_model_free(m);
    m = gr_onnx_load(FX "effnet.onnx", 0, 0, false, &err);
    CHECK(m, "%s", err.msg);
    int swish = 0, mul = 0;
    n = m ? gr_model_num_layers(m) : 0;
    for (int i = 0; i < n; i++) {
        const gr_layer_spec *s = &m->nodes[i].s;
        swish += s->act == GR_ACT_SWISH;
        mul += s->op == GR_OP_MUL;
    }
    CHECK(swish == 13 && mul == 4, "effnet: %d swish (want 13), %d multiply (want 4)", swish, mul);
    gr_model_free(m);
}

/* Fine-tuning an imported model end to end: the trainer's gradient of the
 * mean cross-entropy (the whole model trainable, a softmax appended to the
 * logits) against central finite differences at sampled weights.         */
static void grad_check(const char *path, int step, float logit_scale) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(path, 0, 0, true, &err);
    CHECK(m, "%s", err.msg);
    if (!m) return;
    /* the classifier scaled to logits of about 1 (a saturated softmax has a
     * flat clamped loss that finite differences cannot see) */
    int last = gr_model_num_layers(m) - 1;
    for (int p = m->nodes[last].p0; p < m->nodes[last].p0 + m->nodes[last].np; p++)
        for (size_t i = 0; i < m->params[p].count; i++) gr_param_data(m, p)[i] *= logit_scale;
    m->w_version++;
    CHECK(gr_model_append(m, gr_softmax(), &err) >= 0, "%s", err.msg);
    float *x = check_read_floats(FX "convnext.in", (size_t)2 * 3 * 32 * 32), *xn = x ? to_nhwc(x, 2, 3, 32, 32) : NULL;
    int labels[2] = {3, 7};
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f}), .max_batch = 2};
    gr_trainer *t = xn ? gr_trainer_new(m, 0, &o, &err) : NULL;
    CHECK(t, "trainer: %s", err.msg);
    check_fd_result fr;
    if (t && check_model_fd(t, m, xn, labels, 2, step, 1, 3e-4f, 12345, &fr, &err) == 0) {
        printf("  %s: %d weights, worst |analytic - finite difference| = %.3g, %d off\n", path, fr.tried, fr.worst,
               fr.bad);
        CHECK(fr.tried >= 20 && fr.bad * 20 <= fr.tried, "%s: %d of %d gradients differ from finite differences",
              path, fr.bad, fr.tried);
    } else CHECK(0, "gradients: %s", err.msg);
    gr_trainer_free(t);
    gr_model_free(m);
    free(x);
    free(xn);
}

static void test_finetune_gradients(void) {
    grad_check(FX "convnext.onnx", 1, 1.0f);   /* layer norm, GELU, 1x1 convs, folded layer scale, depthwise 7x7 */
    grad_check(FX "mnv3.onnx", 4, 0.01f);     /* hardswish, hardsigmoid, SE multiply, depthwise */
}

/* constants by channel (depthwise 1x1 conv, folded Div), Mul(Sigmoid(c), c),
 * a scalar Mul after an activated conv, 1 - x, SE with HardSigmoid (numpy) */
static void test_parity_elementwise(void) {
    parity(FX "elem.onnx", FX "elem", 5, 6, true, 3);
    parity(FX "elem.onnx", FX "elem", 5, 6, false, 4);
}

static void test_weights_storage(void) {
    parity(FX "flat_fp16.onnx", FX "flat_fp16", 16, 16, true, 5);        /* FLOAT16 initializers */
    parity(FX "small_typed.onnx", FX "small_typed", 32, 32, true, 10);   /* float_data, int64_data */
    parity(FX "ext/small_ext.onnx", FX "small", 32, 32, true, 10);       /* external data */
}

/* hand-computed IEEE half values */
static void test_half(void) {
    const struct { uint16_t h; float f; } cases[] = {
        {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x3555, 0.333251953125f}, {0x7bff, 65504.0f},
        {0x0001, 5.9604644775390625e-08f}, {0x03ff, 6.097555160522461e-05f}, {0x0400, 6.103515625e-05f},
        {0x8000, -0.0f}, {0x0000, 0.0f}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        CHECK(gr_half_to_float(cases[k].h) == cases[k].f, "0x%04x -> %.10g, want %.10g", cases[k].h,
              gr_half_to_float(cases[k].h), cases[k].f);
    CHECK(isinf(gr_half_to_float(0x7c00)) && gr_half_to_float(0xfc00) < 0, "infinities");
    CHECK(isnan(gr_half_to_float(0x7e00)), "nan");
}

/* path must fail to load with code and every one of the fragments in the message (and the path). */
static void expect_error(const char *path, gr_status code, const char *f1, const char *f2) {
    gr_error err = {0};
    gr_model *m = gr_onnx_load(path, 0, 0, true, &err);
    CHECK(!m, "%s loaded", path);
    gr_model_free(m);
    CHECK(err.code == code, "%s: code %d, want %d (%s)", path, err.code, code, err.msg);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", path, err.msg);
    CHECK(!f1 || strstr(err.msg, f1), "%s: '%s' not in: %s", path, f1, err.msg);
    CHECK(!f2 || strstr(err.msg, f2), "%s: '%s' not in: %s", path, f2, err.msg);
}

static void test_malformed(void) {
    expect_error(FX "bad_bf16.onnx", GR_ERR_UNSUPPORTED, "BFLOAT16", "fc.weight");
    expect_error(FX "bad_cycle.onnx", GR_ERR_FORMAT, "cycle", NULL);
    expect_error(FX "bad_missing.onnx", GR_ERR_FORMAT, "neither an initializer nor the output", NULL);
    expect_error(FX "bad_outside.onnx", GR_ERR_FORMAT, "outside the model's folder", "../gen_onnx.py");
    expect_error(FX "bad_dims.onnx", GR_ERR_FORMAT, "dims [1048576,1048576,1,1] need 4398046511104 bytes", NULL);
    expect_error(FX "bad_opset.onnx", GR_ERR_UNSUPPORTED, "opset 9 is not supported", NULL);
    expect_error(FX "bad_ops.onnx", GR_ERR_UNSUPPORTED, "Selu x2", "Elu x1");
    expect_error(FX "bad_func.onnx", GR_ERR_UNSUPPORTED, "local function 'local.MyRelu'", NULL);
    expect_error(FX "bad_hsig.onnx", GR_ERR_UNSUPPORTED, "HardSigmoid with alpha 0.2", "'/features/");
    expect_error(FX "bad_erf.onnx", GR_ERR_UNSUPPORTED, "Erf, opset 13): Erf on activations is supported only inside",
                 "GELU");
    expect_error(FX "bad_noout.onnx", GR_ERR_FORMAT, "(Erf, opset 13): the node has no output", NULL);
    expect_error(FX "nonexistent.onnx", GR_ERR_IO, "cannot open", NULL);
    expect_error("tests/fixtures/data/gray8.png", GR_ERR_FORMAT, NULL, NULL);   /* another kind of file */
}

/* copies of valid files cut short */
static void test_truncated(void) {
    char dir[] = "/tmp/graft-onnx-XXXXXX", p[128], q[128];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    FILE *f = fopen(FX "small.onnx", "rb");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 1000, "small.onnx");
    const size_t cuts[] = {n / 2, n - 7, 3};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/cut%d.onnx", dir, k);
        FILE *o = fopen(p, "wb");
        fwrite(buf, 1, cuts[k], o);
        fclose(o);
        gr_error err = {0};
        gr_model *m = gr_onnx_load(p, 0, 0, true, &err);
        CHECK(!m && err.code != GR_OK && strstr(err.msg, p), "%s (%zu of %zu bytes): %s", p, cuts[k], n, err.msg);
        gr_model_free(m);
        unlink(p);
    }
    /* external data cut short */
    snprintf(p, sizeof p, "%s/small_ext.onnx", dir);
    snprintf(q, sizeof q, "%s/small_ext.data", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp " FX "ext/small_ext.onnx %s && head -c 3000 " FX "ext/small_ext.data > %s", p, q);
    CHECK(system(cmd) == 0, "%s", cmd);
    gr_error err = {0};
    gr_model *m = gr_onnx_load(p, 0, 0, true, &err);
    CHECK(!m && err.code == GR_ERR_FORMAT && strstr(err.msg, "past the end"), "%s", err.msg);
    gr_model_free(m);
    unlink(p);
    unlink(q);
    rmdir(dir);
}

/* `test_onnx NAME DIR SIZE CLASSES FEATURES`: DIR/NAME.onnx made by gen_onnx.py
 * --torchvision NAME SIZE DIR (tests/test_onnx.sh): logits and pre-logits.  */
static char **tv_args;
static void test_parity_torchvision(void) {
    char p[512], io[512];
    snprintf(p, sizeof p, "%s/%s.onnx", tv_args[2], tv_args[1]);
    snprintf(io, sizeof io, "%s/%s", tv_args[2], tv_args[1]);
    int size = atoi(tv_args[3]);
    parity(p, io, size, size, true, atoi(tv_args[4]));
    parity(p, io, size, size, false, atoi(tv_args[5]));
}

int main(int argc, char **argv) {
    if (argc == 6) {
        tv_args = argv;
        printf("  torchvision %s at %sx%s\n", argv[1], argv[3], argv[3]);
        RUN(test_parity_torchvision);
        return check_summary();
    }
    RUN(test_half);
    RUN(test_parity_small);
    RUN(test_parity_small_unfolded);
    RUN(test_parity_flatten);
    RUN(test_symbolic_size);
    RUN(test_parity_mobilenet_v2);
    RUN(test_parity_zoo);
    RUN(test_parity_elementwise);
    RUN(test_finetune_gradients);
    RUN(test_weights_storage);
    RUN(test_malformed);
    RUN(test_truncated);
    return check_summary();
}
