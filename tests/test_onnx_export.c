/* test_onnx_export.c — gr_model_export_onnx on models built with the C API,
 * for the ops and layouts no CLI-trained model reaches.
 *
 * Without arguments (tests/run.sh): the library's errors — a bad opset or
 * batch, a layer with no ONNX form (a pool padded past its window) — each a
 * status naming the problem (and the layer), with no file written and an
 * existing file untouched; and a successful export is a non-empty file
 * starting with the ModelProto's ir_version field.
 *
 * With a directory (tests/test_onnx_export.sh): writes there, for each of
 * the models below, NAME-opsetK.onnx, NAME.in.f32 (the input, NCHW float32)
 * and NAME.out.f32 (gr_model_predict's output for it, reference layers);
 * tests/fixtures/check_onnx_export.py runs the files with onnx.checker,
 * OpenCV and ONNX Runtime and compares.
 *   maps    12x10 input (not square): conv same + relu, depthwise stride-2
 *           conv with explicit pads + hardswish, batchnorm, 3x3 stride-1
 *           'same' average pool (cells outside not counted), 1x1 conv +
 *           gelu, softmax over the channels of a map, add, add + swish,
 *           concat, standardize on a map, max pool with explicit pads,
 *           flatten (HWC order) into batchnorm, standardize and tanh on the
 *           flat values, dropout, concats of flat values (one from a gap +
 *           dense sigmoid branch), dense softmax
 *   norms   layer normalization over the channels of a map and of a flat
 *           value, a squeeze-and-excitation scale (gap, dense relu, dense,
 *           hardsigmoid, multiply): OpenCV 4.6 runs neither, so the checker
 *           and ONNX Runtime only                                          */
#include <stdint.h>
#include <stdio.h>
#include "check.h"
#include "graft.h"

#define H 12
#define W 10
#define NB 3

/* An add / concat of nodes a and b, with a fused activation (add). */
static gr_layer_spec merge(gr_op op, int a, int b, gr_act act) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = op, s.act = act;
    s.inputs[0] = a, s.inputs[1] = b, s.n_inputs = 2;
    return s;
}

static gr_layer_spec standardize(void) {
    gr_layer_spec s;
    memset(&s, 0, sizeof s);
    s.op = GR_OP_STANDARDIZE;
    return s;
}

/* Random parameters, statistics included (std and variances positive). */
static void fill_params(gr_model *m, uint64_t seed) {
    gr_model_init_params(m, 0, seed);
    uint64_t s = seed * 2654435761u + 1;
    for (int p = 0; p < m->n_params; p++) {
        float *d = gr_param_data(m, p);
        const char *k = m->params[p].kind;
        bool pos = !strcmp(k, "std") || !strcmp(k, "moving_variance") || !strcmp(k, "gamma");
        for (size_t i = 0; i < m->params[p].count; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)((s >> 40) & 0xffffff) / 16777216.0f;   /* [0, 1) */
            if (pos) d[i] = 0.5f + u;
            else if (strcmp(k, "kernel")) d[i] = u - 0.5f;
        }
    }
}

static gr_model *model_maps(gr_error *err) {
    gr_model *m = gr_model_new(H, W, 3, err);
    if (!m) return NULL;
    gr_layer_spec dw = gr_conv2d(8, 3, 3, 2, GR_PAD_EXPLICIT, GR_ACT_HARDSWISH);
    dw.groups = 8, dw.pad_t = 1, dw.pad_l = 0, dw.pad_b = 1, dw.pad_r = 2;
    gr_layer_spec ap = gr_avgpool(3, 1);
    ap.padding = GR_PAD_SAME;
    gr_layer_spec mp = gr_maxpool(2, 2);
    mp.padding = GR_PAD_EXPLICIT, mp.pad_t = 1, mp.pad_l = 0, mp.pad_b = 0, mp.pad_r = 1;
    gr_layer_spec specs[] = {
        gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),   /* 0: 12x10x8 */
        dw,                                                /* 1: 6x6x8 (pads 1,0,1,2) */
        gr_batchnorm(1e-3f),                               /* 2 */
        ap,                                                /* 3 */
        gr_conv2d(8, 1, 1, 1, GR_PAD_VALID, GR_ACT_GELU),  /* 4 */
        gr_global_avgpool(),                               /* 5: [8] */
        gr_dense(8, GR_ACT_SIGMOID),                       /* 6: [8] */
        merge(GR_OP_ADD, 4, 4, GR_ACT_LINEAR),             /* 7: 6x5x8 */
        gr_activation(GR_ACT_SOFTMAX, 0),                  /* 8: softmax over channels */
        merge(GR_OP_ADD, 8, 4, GR_ACT_SWISH),              /* 9: add + swish */
        merge(GR_OP_CONCAT, 9, 7, GR_ACT_LINEAR),          /* 10: 6x6x16 */
        standardize(),                                     /* 11 */
        mp,                                                /* 12: 4x3x16 */
        gr_flatten(),                                      /* 13: [192] HWC */
        gr_batchnorm(1e-3f),                               /* 14 */
        standardize(),                                     /* 15 */
        gr_activation(GR_ACT_TANH, 0),                     /* 16 */
        gr_dropout(0.5f),                                  /* 17 */
        merge(GR_OP_CONCAT, 17, 14, GR_ACT_LINEAR),        /* 18: [384] */
        merge(GR_OP_CONCAT, 18, 6, GR_ACT_LINEAR),         /* 19: [392] with the gap branch */
        gr_dense(5, GR_ACT_SOFTMAX),                       /* 20 */
    };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        if (gr_model_append(m, specs[k], err) < 0) { gr_model_free(m); return NULL; }
    fill_params(m, 7);
    return m;
}

static gr_model *model_norms(gr_error *err) {
    gr_model *m = gr_model_new(H, W, 3, err);
    if (!m) return NULL;
    gr_layer_spec specs[] = {
        gr_conv2d(6, 3, 3, 2, GR_PAD_SAME, GR_ACT_LINEAR),   /* 0: 6x5x6 */
        gr_layernorm(0),                                     /* 1 */
        gr_activation(GR_ACT_RELU6, 0),                      /* 2 */
        gr_global_avgpool(),                                 /* 3: squeeze-and-excitation */
        gr_dense(3, GR_ACT_RELU),                            /* 4 */
        gr_dense(6, GR_ACT_LINEAR),                          /* 5 */
        gr_activation(GR_ACT_HARDSIGMOID, 0),                /* 6 */
        gr_multiply(2, 6),                                   /* 7: 6x5x6 */
        gr_flatten(),                                        /* 8 */
        gr_layernorm(1e-3f),                                 /* 9 */
        gr_dense(4, GR_ACT_SOFTMAX),                         /* 10 */
    };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        if (gr_model_append(m, specs[k], err) < 0) { gr_model_free(m); return NULL; }
    fill_params(m, 11);
    return m;
}

/* Writes NAME.in.f32, NAME.out.f32 and NAME-opsetK.onnx into dir. */
static void write_case(const char *dir, const char *name, gr_model *m) {
    float x[NB * H * W * 3], xc[NB * 3 * H * W];
    uint64_t s = 12345;
    for (int i = 0; i < NB * H * W * 3; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    }
    for (int b = 0; b < NB; b++)   /* NHWC -> NCHW */
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++)
                    xc[((b * 3 + c) * H + y) * W + xx] = x[((b * H + y) * W + xx) * 3 + c];
    int oh, ow, oc;
    gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &oh, &ow, &oc);
    size_t no = (size_t)NB * oh * ow * oc;
    float *out = malloc(no * sizeof *out);
    gr_error err = {0};
    CHECK(out && gr_model_predict(m, x, NB, -1, out, &err) == GR_OK, "%s: predict: %s", name, err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.in.f32", dir, name);
    CHECK(check_write_file(path, xc, sizeof xc) == 0, "%s", path);
    snprintf(path, sizeof path, "%s/%s.out.f32", dir, name);
    CHECK(out && check_write_file(path, out, no * sizeof *out) == 0, "%s", path);
    static const int opsets[] = {11, 13, 17, 18};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s-opset%d.onnx", dir, name, opsets[k]);
        gr_onnx_export_opts o = {.opset = opsets[k]};
        CHECK(gr_model_export_onnx(m, path, &o, &err) == GR_OK, "%s: %s", path, err.msg);
    }
    free(out);
}

static const char *out_dir;

static void test_write_fixtures(void) {
    gr_error err = {0};
    gr_model *a = model_maps(&err), *b = a ? model_norms(&err) : NULL;
    CHECK(a && b, "%s", err.msg);
    if (!a || !b) { gr_model_free(a); return; }
    setenv("GRAFT_REFERENCE", "1", 1);   /* the plain-C layers: the spec */
    write_case(out_dir, "maps", a);
    write_case(out_dir, "norms", b);
    gr_model_free(a);
    gr_model_free(b);
}

/* ---- errors: a status naming the problem, no file, an existing file untouched */
static void test_errors(void) {
    char dir[512], path[600], keep[600];
    CHECK(check_mkdtemp(dir, sizeof dir, "onnx-export") == 0, "mkdtemp");
    snprintf(path, sizeof path, "%s/new.onnx", dir);
    snprintf(keep, sizeof keep, "%s/keep.onnx", dir);
    CHECK(check_write_text(keep, "old") == 0, "write %s", keep);
    gr_error err = {0};
    gr_model *m = model_maps(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_onnx_export_opts o = {.opset = 10};
    CHECK(gr_model_export_onnx(m, path, &o, &err) == GR_ERR_ARG && strstr(err.msg, "opset 10") &&
              strstr(err.msg, "new.onnx"), "%s", err.msg);
    o = (gr_onnx_export_opts){.opset = 19};
    CHECK(gr_model_export_onnx(m, keep, &o, &err) == GR_ERR_ARG && strstr(err.msg, "11..18"), "%s", err.msg);
    o = (gr_onnx_export_opts){.batch = -2};
    CHECK(gr_model_export_onnx(m, keep, &o, &err) == GR_ERR_ARG, "%s", err.msg);
    snprintf(path, sizeof path, "%s/no/such/dir.onnx", dir);
    CHECK(gr_model_export_onnx(m, path, NULL, &err) == GR_ERR_IO && strstr(err.msg, "dir.onnx"), "%s", err.msg);
    gr_model_free(m);

    /* a max pool padded past its window: graft ignores the cells, ONNX forbids the pads */
    m = gr_model_new(8, 8, 3, &err);
    gr_layer_spec mp = gr_named(gr_maxpool(2, 2), "wide_pool");
    mp.padding = GR_PAD_EXPLICIT, mp.pad_t = 3, mp.pad_b = 3;
    CHECK(m && gr_stack(m, &err, gr_conv2d(4, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), mp, gr_flatten(),
                        gr_dense(2, GR_ACT_SOFTMAX)) == GR_OK, "%s", err.msg);
    if (m) {
        fill_params(m, 3);
        CHECK(gr_model_export_onnx(m, keep, NULL, &err) == GR_ERR_UNSUPPORTED && strstr(err.msg, "'wide_pool'") &&
                  strstr(err.msg, "max_pooling2d") && strstr(err.msg, "ONNX"), "%s", err.msg);
    }
    size_t n = 0;
    unsigned char *k = check_read_file(keep, &n);
    CHECK(k && n == 3 && !memcmp(k, "old", 3), "keep.onnx was changed");
    free(k);
    snprintf(path, sizeof path, "%s/new.onnx", dir);
    CHECK(access(path, F_OK) != 0, "a file was left");
    /* nothing but keep.onnx in dir (no temp file) */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = keep.onnx", dir);
    CHECK(system(cmd) == 0, "files left in %s", dir);
    /* a good export: a ModelProto starting with field 1 (ir_version, varint) = 7 */
    gr_model_free(m);
    m = model_norms(&err);
    CHECK(m && gr_model_export_onnx(m, keep, NULL, &err) == GR_OK, "%s", err.msg);
    k = check_read_file(keep, &n);
    CHECK(k && n > 1000 && k[0] == 0x08 && k[1] == 7, "not a ModelProto with ir_version 7 first");
    free(k);
    gr_model_free(m);
    check_rmtree(dir);
}

int main(int argc, char **argv) {
    if (argc == 2) {
        out_dir = argv[1];
        RUN(test_write_fixtures);
        return check_summary();
    }
    RUN(test_errors);
    return check_summary();
}
