/* test_backend.c — the oneDNN backend against the reference layers
 * (src/ops/, themselves checked against PyTorch in test_layers):
 * per-node conv / dense / pool over a spread of shapes, chains (VGG-like and
 * darknet-like with folded batch norm) against the per-node reference path,
 * bf16 with a loose tolerance, conv / dense backward (accumulating, and
 * conv's overwriting form), pooling, batch norm and activations in training (forward
 * with workspace / batch statistics, backward accumulating or overwriting),
 * determinism, and the executor's GRAFT_REFERENCE switch.              */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "graph/model.h"
#include "backend/backend.h"
#include "backend/dnnl_util.h"
#include "exec/ctx.h"

/* The fast path's state for a test model (its nodes as they are now). */
static gr_backend *be_of(const gr_model *m) {
    gr_backend *be = gr_backend_new(m, m->precision, NULL);
    if (!be) { fprintf(stderr, "out of memory\n"); exit(2); }
    return be;
}

/* Random non-zero biases / BN statistics so every parameter matters. */
static void randomize_params(gr_model *m, uint64_t seed) {
    gr_model_init_params(m, 0, seed);
    for (int p = 0; p < m->n_params; p++) {
        gr_param *q = &m->params[p];
        float *d = gr_param_data(m, p);
        if (!strcmp(q->kind, "bias") || !strcmp(q->kind, "beta") || !strcmp(q->kind, "moving_mean"))
            check_fill(d, q->count, seed + 7 * (uint64_t)p, -0.5f, 0.5f);
        else if (!strcmp(q->kind, "gamma") || !strcmp(q->kind, "moving_variance"))
            check_fill(d, q->count, seed + 7 * (uint64_t)p, 0.5f, 1.5f);
    }
    m->w_version++;
}

/* ------------------------------------------------------------ conv per node */

typedef struct {
    const char *what;
    int B, H, W, C, OC, k, stride;
    gr_padding pad;
    int pt, pl, pb, pr;
    int groups;
    gr_act act;
    float alpha;
    bool bias;
} conv_case;

static void run_conv_case(const conv_case *cc) {
    gr_error err = {0};
    gr_model *m = gr_model_new(cc->H, cc->W, cc->C, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    gr_layer_spec s = gr_conv2d(cc->OC, cc->k, cc->k, cc->stride, cc->pad, cc->act);
    s.pad_t = cc->pt; s.pad_l = cc->pl; s.pad_b = cc->pb; s.pad_r = cc->pr;
    s.groups = cc->groups; s.alpha = cc->alpha; s.use_bias = cc->bias;
    int id = gr_model_append(m, s, &err);
    CHECK(id == 0, "%s: %s", cc->what, err.msg);
    if (id != 0) { gr_model_free(m); return; }
    randomize_params(m, 11);
    gr_backend *fp = be_of(m);
    const gr_node *n = &m->nodes[0];
    size_t nin = (size_t)cc->B * cc->H * cc->W * cc->C, nout = (size_t)cc->B * n->oh * n->ow * n->oc;
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout);
    check_fill(x, nin, 5, -1, 1);
    gr_conv_dims d = gr_node_conv_dims(m, 0, cc->B);
    int pb = gr_node_param(m, 0, "bias");
    gr_conv2d_forward(want, x, gr_param_data(m, gr_node_param(m, 0, "kernel")),
                      pb >= 0 ? gr_param_data(m, pb) : NULL, &d);
    if (cc->act != GR_ACT_LINEAR) gr_act_forward(want, want, nout, cc->act, cc->alpha);
    const float *ins[1] = {x};
    gr_status st = gr_backend_forward(fp, 0, ins, got, cc->B, &err);
    CHECK(st == GR_OK, "%s: %s", cc->what, err.msg);
    if (st == GR_OK) CHECK_CLOSE(cc->what, got, want, nout, 1e-4, 1e-4);
    /* a second call (cached primitives) gives the same numbers */
    float *again = check_falloc(nout);
    st = gr_backend_forward(fp, 0, ins, again, cc->B, &err);
    CHECK(st == GR_OK && !memcmp(again, got, nout * sizeof(float)), "%s: second call differs", cc->what);
    free(again); free(x); free(got); free(want);
    gr_backend_free(fp);
    gr_model_free(m);
}

static void test_conv_shapes(void) {
    const conv_case cases[] = {
        {"1x1", 1, 7, 5, 3, 8, 1, 1, GR_PAD_VALID, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
        {"3x3 same relu b3", 3, 9, 9, 17, 19, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_RELU, 0, true},
        {"5x5 s2 same (asymmetric)", 1, 10, 11, 5, 7, 5, 2, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
        {"3x3 s2 same even (pad bottom only)", 3, 8, 8, 4, 33, 3, 2, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_RELU, 0, false},
        {"3x3 explicit 1 leaky", 3, 13, 13, 3, 16, 3, 1, GR_PAD_EXPLICIT, 1, 1, 1, 1, 1, GR_ACT_LEAKY, 0.1f, false},
        {"explicit asymmetric 0/2", 1, 6, 7, 4, 5, 3, 1, GR_PAD_EXPLICIT, 0, 2, 2, 0, 1, GR_ACT_LINEAR, 0, true},
        {"depthwise 3x3 relu6", 3, 9, 7, 6, 6, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 6, GR_ACT_RELU6, 0, true},
        {"depthwise 3x3 s2", 1, 10, 10, 32, 32, 3, 2, GR_PAD_SAME, 0, 0, 0, 0, 32, GR_ACT_RELU, 0, true},
        {"groups 2", 1, 6, 6, 4, 6, 3, 1, GR_PAD_VALID, 0, 0, 0, 0, 2, GR_ACT_LINEAR, 0, true},
        {"tiny 1->1", 3, 4, 4, 1, 1, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
        {"sigmoid 2x2 s2 valid", 1, 5, 5, 2, 3, 2, 2, GR_PAD_VALID, 0, 0, 0, 0, 1, GR_ACT_SIGMOID, 0, true},
        /* the activations of imported EfficientNet / MobileNetV3 / ConvNeXt as post-ops */
        {"1x1 swish", 2, 6, 5, 8, 12, 1, 1, GR_PAD_VALID, 0, 0, 0, 0, 1, GR_ACT_SWISH, 0, true},
        {"depthwise 3x3 swish", 2, 7, 7, 16, 16, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 16, GR_ACT_SWISH, 0, true},
        {"3x3 s2 hardswish", 2, 9, 9, 3, 16, 3, 2, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_HARDSWISH, 0, true},
        {"1x1 gelu", 2, 4, 4, 8, 32, 1, 1, GR_PAD_VALID, 0, 0, 0, 0, 1, GR_ACT_GELU, 0, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_case(&cases[i]);
}

/* ------------------------------------------------------------ dense */

static void dense_case(int B, int IN, int OUT, gr_act act, bool bias) {
    gr_error err = {0};
    gr_model *m = gr_model_new(1, 1, IN, &err);
    gr_layer_spec s = gr_dense(OUT, act);
    s.use_bias = bias;
    CHECK(gr_model_append(m, s, &err) == 0, "%s", err.msg);
    randomize_params(m, 3);
    gr_backend *fp = be_of(m);
    float *x = check_falloc((size_t)B * IN), *got = check_falloc((size_t)B * OUT), *want = check_falloc((size_t)B * OUT);
    check_fill(x, (size_t)B * IN, 9, -1, 1);
    int pb = gr_node_param(m, 0, "bias");
    gr_dense_forward(want, x, gr_param_data(m, gr_node_param(m, 0, "kernel")),
                     pb >= 0 ? gr_param_data(m, pb) : NULL, B, IN, OUT);
    if (act == GR_ACT_SOFTMAX) gr_softmax_forward(want, want, B, OUT);
    else if (act != GR_ACT_LINEAR) gr_act_forward(want, want, (size_t)B * OUT, act, 0);
    const float *ins[1] = {x};
    gr_status st = gr_backend_forward(fp, 0, ins, got, B, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    char what[64];
    snprintf(what, sizeof what, "dense B%d %dx%d %s", B, IN, OUT, gr_act_name(act));
    if (st == GR_OK) CHECK_CLOSE(what, got, want, (size_t)B * OUT, 1e-5, 1e-4);
    /* new weights (w_version bump) are picked up without a rebuild */
    float *k = gr_param_data(m, gr_node_param(m, 0, "kernel"));
    for (int i = 0; i < IN * OUT; i++) k[i] *= -0.5f;
    m->w_version++;
    gr_dense_forward(want, x, k, pb >= 0 ? gr_param_data(m, pb) : NULL, B, IN, OUT);
    if (act == GR_ACT_SOFTMAX) gr_softmax_forward(want, want, B, OUT);
    else if (act != GR_ACT_LINEAR) gr_act_forward(want, want, (size_t)B * OUT, act, 0);
    st = gr_backend_forward(fp, 0, ins, got, B, &err);
    if (st == GR_OK) CHECK_CLOSE("dense after weight change", got, want, (size_t)B * OUT, 1e-5, 1e-4);
    free(x); free(got); free(want);
    gr_backend_free(fp);
    gr_model_free(m);
}

static void test_dense(void) {
    dense_case(1, 37, 13, GR_ACT_RELU, true);
    dense_case(3, 64, 10, GR_ACT_SOFTMAX, true);
    dense_case(3, 5, 17, GR_ACT_LINEAR, false);
    dense_case(2, 24, 12, GR_ACT_HARDSWISH, true);   /* MobileNetV3's classifier */
}

/* ------------------------------------------------------------ pooling */

/* One pooling layer through the backend, against the reference layers:
 * the inference forward; the training forward (keeping the workspace); the
 * backward accumulated onto a pre-filled din or overwriting a garbage one;
 * max pooling's backward refused for an input it did not run forward.     */
static void pool_case(const char *what, int B, int H, int W, int C, gr_layer_spec s) {
    gr_error err = {0};
    gr_model *m = gr_model_new(H, W, C, &err);
    CHECK(gr_model_append(m, s, &err) == 0, "%s: %s", what, err.msg);
    gr_backend *fp = be_of(m);
    const gr_node *n = &m->nodes[0];
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * n->oh * n->ow * n->oc;
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout), *dout = check_falloc(nout);
    float *din = check_falloc(nin), *rdin = check_falloc(nin);
    /* mostly negative: padding must not win a max; continuous: no ties in a window */
    check_fill(x, nin, 21, -2, 1);
    check_fill(dout, nout, 22, -1, 1);
    gr_pool_dims d = gr_node_pool_dims(m, 0, B);
    bool mx = s.op == GR_OP_MAXPOOL;
    if (mx) gr_maxpool_forward(want, x, &d);
    else gr_avgpool_forward(want, x, &d);
    const float *ins[1] = {x};
    gr_status st = gr_backend_forward(fp, 0, ins, got, B, &err);
    CHECK(st == GR_OK, "%s: %s", what, err.msg);
    if (st == GR_OK) CHECK_CLOSE(what, got, want, nout, 1e-6, 1e-5);
    memset(got, 0, nout * sizeof(float));
    st = gr_backend_pool_forward_train(fp, 0, x, got, B, &err);
    CHECK(st == GR_OK, "%s forward train: %s", what, err.msg);
    if (st == GR_OK) CHECK_CLOSE(what, got, want, nout, 1e-6, 1e-5);
    check_fill(din, nin, 23, -1, 1);
    memcpy(rdin, din, nin * sizeof(float));
    if (mx) gr_maxpool_backward(dout, x, &d, rdin);
    else gr_avgpool_backward(dout, &d, rdin);
    st = gr_backend_pool_backward(fp, 0, dout, x, B, din, false, &err);
    CHECK(st == GR_OK, "%s backward: %s", what, err.msg);
    if (st == GR_OK) CHECK_CLOSE("pool din (accumulated)", din, rdin, nin, 1e-6, 1e-5);
    check_fill(din, nin, 24, -1e3f, 1e3f);
    memset(rdin, 0, nin * sizeof(float));
    if (mx) gr_maxpool_backward(dout, x, &d, rdin);
    else gr_avgpool_backward(dout, &d, rdin);
    st = gr_backend_pool_backward(fp, 0, dout, x, B, din, true, &err);
    CHECK(st == GR_OK, "%s backward (overwrite): %s", what, err.msg);
    if (st == GR_OK) CHECK_CLOSE("pool din (overwritten)", din, rdin, nin, 1e-6, 1e-5);
    if (mx) {
        st = gr_backend_pool_backward(fp, 0, dout, din, B, rdin, false, &err);
        CHECK(st == GR_ERR_UNSUPPORTED, "%s: backward of another input: %d", what, st);
    }
    free(x); free(got); free(want); free(dout); free(din); free(rdin);
    gr_backend_free(fp);
    gr_model_free(m);
}

static void test_pool(void) {
    pool_case("max 2x2 odd valid", 3, 7, 7, 5, gr_maxpool(2, 2));
    pool_case("max 2x2 s2", 4, 8, 8, 16, gr_maxpool(2, 2));
    gr_layer_spec s = gr_maxpool(3, 2);
    s.padding = GR_PAD_SAME;
    pool_case("max 3x3 s2 same", 2, 9, 8, 17, s);
    s = gr_avgpool(3, 2);
    s.padding = GR_PAD_SAME;
    pool_case("avg 3x3 s2 same (exclude padding)", 3, 9, 8, 4, s);
    s = gr_maxpool(2, 1);   /* darknet's size=2 stride=1: keeps the size, pads bottom/right */
    s.padding = GR_PAD_EXPLICIT;
    s.pad_b = s.pad_r = 1;
    pool_case("max 2x2 s1 darknet", 2, 7, 7, 3, s);
    s = gr_maxpool(2, 2);
    s.padding = GR_PAD_SAME;
    pool_case("max 2x2 s2 same odd", 3, 13, 13, 16, s);
}

/* A pooling oneDNN cannot express (windows wholly in the padding) is
 * refused as unsupported, and so again from the remembered refusal.        */
static void test_pool_unsupported(void) {
    gr_error err = {0};
    gr_layer_spec s = gr_maxpool(2, 1);
    s.padding = GR_PAD_EXPLICIT;
    s.pad_t = s.pad_l = 2;
    gr_model *m = gr_model_new(5, 5, 3, &err);
    CHECK(m && gr_model_append(m, s, &err) == 0, "%s", err.msg);
    if (!m) return;
    gr_backend *fp = be_of(m);
    size_t nin = 5 * 5 * 3, nout = (size_t)gr_node_size(m, 0);
    float *x = check_falloc(nin), *y = check_falloc(nout);
    for (int k = 0; k < 2; k++) {
        gr_status st = gr_backend_pool_forward_train(fp, 0, x, y, 1, &err);
        CHECK(st == GR_ERR_UNSUPPORTED && strstr(err.msg, m->nodes[0].s.name), "call %d: %d %s", k, st, err.msg);
        /* the second call answers from the remembered refusal, not a new build */
        if (k == 1) CHECK(strstr(err.msg, "not in oneDNN") != NULL, "not remembered: %s", err.msg);
    }
    free(x); free(y);
    gr_backend_free(fp);
    gr_model_free(m);
}

/* ------------------------------------------------------------ chains */

static gr_model *vgg_like(int H, gr_error *err) {
    gr_model *m = gr_model_new(H, H, 3, err);
    if (!m) return NULL;
    if (gr_stack(m, err, gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),
                 gr_conv2d(12, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_maxpool(2, 2),
                 gr_conv2d(32, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),
                 gr_conv2d(20, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_maxpool(2, 2), gr_flatten(),
                 gr_dense(10, GR_ACT_SOFTMAX)) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    return m;
}

static gr_layer_spec dk_conv(int f, int k) {
    gr_layer_spec s = gr_conv2d(f, k, k, 1, GR_PAD_EXPLICIT, GR_ACT_LINEAR);
    s.pad_t = s.pad_l = s.pad_b = s.pad_r = k / 2;
    s.use_bias = false;
    return s;
}

/* conv(no bias) -> bn -> leaky, darknet style, odd sizes, a darknet maxpool. */
static gr_model *darknet_like(gr_error *err) {
    gr_model *m = gr_model_new(13, 13, 3, err);
    if (!m) return NULL;
    gr_layer_spec mp = gr_maxpool(2, 2);
    mp.padding = GR_PAD_SAME;
    gr_layer_spec mp1 = gr_maxpool(2, 1);
    mp1.padding = GR_PAD_EXPLICIT;
    mp1.pad_b = mp1.pad_r = 1;
    gr_layer_spec leaky = gr_activation(GR_ACT_LEAKY, 0.1f);
    gr_layer_spec c3 = gr_conv2d(7, 3, 3, 1, GR_PAD_SAME, GR_ACT_LINEAR);
    if (gr_stack(m, err, dk_conv(16, 3), gr_batchnorm(1e-5f), leaky, mp, dk_conv(24, 3),
                 gr_batchnorm(1e-5f), leaky, mp1, dk_conv(8, 1), gr_batchnorm(1e-5f), leaky,
                 gr_batchnorm(1e-3f), c3, gr_activation(GR_ACT_RELU, 0), gr_avgpool(2, 2)) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    return m;
}

/* predict through the executor (fast chains) vs GRAFT_REFERENCE=1 */
static void compare_predict(const char *what, gr_model *m, int B, double atol, double rtol) {
    gr_error err = {0};
    size_t nin = (size_t)B * gr_node_size(m, -1), nout = (size_t)B * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout);
    check_fill(x, nin, 77, -1, 1);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_status st = gr_model_predict(m, x, B, -1, want, &err);
    unsetenv("GRAFT_REFERENCE");
    CHECK(st == GR_OK, "%s reference: %s", what, err.msg);
    st = gr_model_predict(m, x, B, -1, got, &err);
    CHECK(st == GR_OK, "%s fast: %s", what, err.msg);
    if (st == GR_OK) CHECK_CLOSE(what, got, want, nout, atol, rtol);
    /* a comparison of two all-zero outputs would prove nothing */
    size_t nz = 0;
    for (size_t i = 0; i < nout; i++) nz += want[i] != 0;
    CHECK(nz > nout / 4, "%s: only %zu of %zu outputs are non-zero", what, nz, nout);
    free(x); free(got); free(want);
}

static void test_chain_vgg_like(void) {
    gr_error err = {0};
    gr_model *m = vgg_like(16, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    randomize_params(m, 5);
    gr_backend *fp = be_of(m);
    compare_predict("vgg-like B=3", m, 3, 1e-5, 1e-4);
    compare_predict("vgg-like B=1", m, 1, 1e-5, 1e-4);
    /* the chain entry directly: nodes 0..5 (conv conv pool conv conv pool) */
    int B = 2;
    size_t nin = (size_t)B * 16 * 16 * 3, nout = (size_t)B * gr_node_size(m, 5);
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout);
    check_fill(x, nin, 8, -1, 1);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_status st = gr_model_predict(m, x, B, 5, want, &err);
    unsetenv("GRAFT_REFERENCE");
    CHECK(st == GR_OK, "%s", err.msg);
    st = gr_backend_forward_chain(fp, 0, 5, x, got, B, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    if (st == GR_OK) CHECK_CLOSE("chain 0..5", got, want, nout, 1e-5, 1e-4);
    /* weights change: the chain re-packs */
    randomize_params(m, 6);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_model_predict(m, x, B, 5, want, &err);
    unsetenv("GRAFT_REFERENCE");
    st = gr_backend_forward_chain(fp, 0, 5, x, got, B, &err);
    if (st == GR_OK) CHECK_CLOSE("chain 0..5 new weights", got, want, nout, 1e-5, 1e-4);
    /* a chain over a node the backend lacks is refused cleanly */
    st = gr_backend_forward_chain(fp, 4, 7, x, got, B, &err);
    CHECK(st == GR_ERR_UNSUPPORTED, "chain over flatten/dense: status %d", st);
    free(x); free(got); free(want);
    gr_backend_free(fp);
    gr_model_free(m);
}

static void test_chain_darknet_like(void) {
    gr_error err = {0};
    gr_model *m = darknet_like(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    randomize_params(m, 9);
    compare_predict("darknet-like B=3", m, 3, 1e-4, 1e-4);
    /* the executor ran one chain from node 0 (bn folded: node 1 has no cache) */
    gr_ctx *cx = gr_ctx_new(m, &err);
    size_t nin = (size_t)3 * gr_node_size(m, -1), nout = (size_t)3 * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *y = check_falloc(nout);
    check_fill(x, nin, 77, -1, 1);
    CHECK(cx && gr_ctx_predict(cx, x, 3, -1, y, &err) == GR_OK, "%s", err.msg);
    if (cx) {
        CHECK(cx->be->fast[0] && cx->be->fast[0]->chain, "no chain cache at node 0");
        CHECK(!cx->be->fast[1], "node 1 (folded bn) ran on its own");
    }
    gr_ctx_free(cx);
    free(x); free(y);
    compare_predict("darknet-like B=1", m, 1, 1e-4, 1e-4);
    gr_model_free(m);
}

/* an output with another reader: the shortcut's Add stays in the chain */
static void test_chain_branch(void) {
    gr_error err = {0};
    gr_model *m = gr_model_new(8, 8, 4, &err);
    gr_layer_spec add = {0};
    add.op = GR_OP_ADD;
    add.n_inputs = 2;
    add.inputs[0] = 0;
    add.inputs[1] = 2;
    CHECK(gr_stack(m, &err, gr_conv2d(6, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU),
                   gr_conv2d(6, 1, 1, 1, GR_PAD_SAME, GR_ACT_LINEAR), gr_batchnorm(0),
                   add, gr_conv2d(5, 3, 3, 2, GR_PAD_SAME, GR_ACT_LEAKY)) == GR_OK, "%s", err.msg);
    m->nodes[4].s.alpha = 0.1f;
    randomize_params(m, 4);
    compare_predict("shortcut", m, 2, 1e-5, 1e-4);
    gr_model_free(m);
}

/* spec s reading nodes a and b (b < -1: one input) */
static gr_layer_spec reading(gr_layer_spec s, int a, int b) {
    s.inputs[0] = a;
    s.inputs[1] = b;
    s.n_inputs = b < -1 ? 1 : 2;
    return s;
}
static gr_layer_spec add_of(int a, int b, gr_act act) {
    gr_layer_spec s = {0};
    s.op = GR_OP_ADD;
    s.act = act;
    return reading(s, a, b);
}

/* Residual adds and squeeze-and-excitation in one chain (dnnl_chain.c):
 * the Add after a conv as its sum post-op (into the other operand in place,
 * or into a copy when the operand is read later, is the conv's own input or
 * is the caller's input), Adds and Muls as oneDNN binaries (broadcast SE
 * scale, same-shape product, fused ReLU), the global pool, hardsigmoid as
 * two eltwise steps; against the reference layers, and as ONE chain.       */
static gr_model *region_model(gr_error *err) {
    gr_model *m = gr_model_new(8, 8, 4, err);
    if (!m) return NULL;
    gr_layer_spec dw = gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_SWISH);
    dw.groups = 8;
    gr_layer_spec hsig = gr_activation(GR_ACT_HARDSIGMOID, 0);
    if (gr_stack(m, err,
                 gr_conv2d(4, 1, 1, 1, GR_PAD_SAME, GR_ACT_LINEAR),                   /* 0 */
                 add_of(0, -1, GR_ACT_LINEAR),                                         /* 1: + the caller's input */
                 gr_conv2d(8, 3, 3, 1, GR_PAD_SAME, GR_ACT_SWISH),                    /* 2 */
                 gr_conv2d(8, 1, 1, 1, GR_PAD_SAME, GR_ACT_LINEAR), gr_batchnorm(1e-3f), /* 3, 4 */
                 add_of(4, 2, GR_ACT_RELU),                                            /* 5: 2 read again at 7 */
                 reading(gr_conv2d(8, 1, 1, 1, GR_PAD_SAME, GR_ACT_HARDSWISH), 5, -2), /* 6 */
                 add_of(6, 2, GR_ACT_LINEAR),                                          /* 7: in place into 2 */
                 dw,                                                                   /* 8 */
                 gr_global_avgpool(),                                                  /* 9 */
                 gr_conv2d(4, 1, 1, 1, GR_PAD_SAME, GR_ACT_SWISH),                    /* 10 */
                 gr_conv2d(8, 1, 1, 1, GR_PAD_SAME, GR_ACT_HARDSIGMOID),              /* 11 */
                 gr_multiply(8, 11),                                                   /* 12: SE scale */
                 gr_conv2d(8, 1, 1, 1, GR_PAD_SAME, GR_ACT_RELU),                     /* 13 */
                 hsig,                                                                 /* 14 */
                 gr_multiply(14, 13),                                                  /* 15: same shape */
                 add_of(15, 12, GR_ACT_RELU),                                          /* 16: binary + relu */
                 gr_conv2d(6, 3, 3, 2, GR_PAD_SAME, GR_ACT_LINEAR),                   /* 17 */
                 gr_conv2d(6, 1, 1, 1, GR_PAD_SAME, GR_ACT_LINEAR),                   /* 18 */
                 add_of(18, 17, GR_ACT_LEAKY),                                         /* 19: + the conv's input */
                 gr_maxpool(2, 2)) != GR_OK) {
        gr_model_free(m);
        return NULL;
    }
    m->nodes[19].s.alpha = 0.1f;
    return m;
}

static void test_chain_region(void) {
    gr_error err = {0};
    gr_model *m = region_model(&err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    randomize_params(m, 21);
    compare_predict("region B=3", m, 3, 1e-5, 1e-4);
    compare_predict("region B=1", m, 1, 1e-5, 1e-4);
    /* the executor gave the backend the whole model as one chain */
    gr_ctx *cx = gr_ctx_new(m, &err);
    size_t nin = (size_t)2 * gr_node_size(m, -1), nout = (size_t)2 * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *y = check_falloc(nout);
    check_fill(x, nin, 78, -1, 1);
    CHECK(cx && gr_ctx_predict(cx, x, 2, -1, y, &err) == GR_OK, "%s", err.msg);
    if (cx) {
        CHECK(cx->be->fast[0] && cx->be->fast[0]->chain && dn_chain_last(cx->be->fast[0]->chain) == m->n_nodes - 1,
              "no chain over the whole model from node 0");
        for (int i = 1; i < m->n_nodes; i++) CHECK(!cx->be->fast[i], "node %d ran on its own", i);
    }
    gr_ctx_free(cx);
    /* the chain entry directly, from node 2 (the SE block and what follows) */
    gr_backend *fp = be_of(m);
    float *mid = check_falloc((size_t)2 * gr_node_size(m, 1)), *want = check_falloc(nout);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_model_predict(m, x, 2, 1, mid, &err);
    gr_model_predict(m, x, 2, -1, want, &err);
    unsetenv("GRAFT_REFERENCE");
    gr_status st = gr_backend_forward_chain(fp, 2, m->n_nodes - 1, mid, y, 2, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    if (st == GR_OK) CHECK_CLOSE("chain 2..end", y, want, nout, 1e-5, 1e-4);
    /* a run that reads a node from before it is not a chain */
    st = gr_backend_forward_chain(fp, 6, 8, mid, y, 2, &err);
    CHECK(st == GR_ERR_UNSUPPORTED, "chain 6..8 reads node 2: status %d", st);
    gr_backend_free(fp);
    if (dn_bf16_native()) {   /* bf16 inside the chain, loosely */
        m->precision = GR_PRECISION_BF16;
        CHECK(gr_model_predict(m, x, 2, -1, y, &err) == GR_OK, "bf16: %s", err.msg);
        float mx = 0;
        for (size_t i = 0; i < nout; i++) mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
        CHECK_CLOSE("bf16 region", y, want, nout, 0.05 * mx, 0.05);
        m->precision = GR_PRECISION_FP32;
    }
    free(x); free(y); free(mid); free(want);
    gr_model_free(m);
}

/* more activations alive at once than the chain has buffers: the executor
 * falls back to linear chains and single nodes, with the same answer     */
static void test_chain_region_fallback(void) {
    gr_error err = {0};
    gr_model *m = gr_model_new(6, 6, 4, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    for (int k = 0; k < 9; k++)
        CHECK(gr_model_append(m, reading(gr_conv2d(4, 1, 1, 1, GR_PAD_SAME, GR_ACT_RELU), -1, -2), &err) == k,
              "%s", err.msg);
    CHECK(gr_model_append(m, add_of(0, 1, GR_ACT_LINEAR), &err) == 9, "%s", err.msg);
    for (int k = 2; k < 9; k++)
        CHECK(gr_model_append(m, add_of(7 + k, k, GR_ACT_LINEAR), &err) == 8 + k, "%s", err.msg);
    randomize_params(m, 22);
    compare_predict("too many live B=2", m, 2, 1e-5, 1e-4);
    gr_backend *fp = be_of(m);
    size_t nin = (size_t)2 * gr_node_size(m, -1), nout = (size_t)2 * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *y = check_falloc(nout);
    gr_status st = gr_backend_forward_chain(fp, 0, m->n_nodes - 1, x, y, 2, &err);
    CHECK(st == GR_ERR_UNSUPPORTED, "chain with 8 live activations: status %d", st);
    /* remembered: the next call answers at once, without building again */
    CHECK(fp->fast[0] && fp->fast[0]->fail_last1 == m->n_nodes, "the failed chain is not remembered");
    st = gr_backend_forward_chain(fp, 0, m->n_nodes - 1, x, y, 2, &err);
    CHECK(st == GR_ERR_UNSUPPORTED && strstr(err.msg, "as before"), "second call: status %d (%s)", st, err.msg);
    gr_backend_free(fp);
    free(x); free(y);
    gr_model_free(m);
}

static void test_bf16(void) {
    if (!dn_bf16_native()) SKIP("this CPU has no native bf16");
    gr_error err = {0};
    gr_model *m = vgg_like(16, &err);
    randomize_params(m, 5);
    m->precision = GR_PRECISION_BF16;
    int B = 2;
    size_t nin = (size_t)B * 16 * 16 * 3, nout = (size_t)B * gr_node_size(m, 5);
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout), *f32 = check_falloc(nout);
    check_fill(x, nin, 8, -1, 1);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_model_predict(m, x, B, 5, want, &err);
    unsetenv("GRAFT_REFERENCE");
    gr_status st = gr_model_predict(m, x, B, 5, got, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    float mx = 0;
    for (size_t i = 0; i < nout; i++) mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
    CHECK_CLOSE("bf16 vgg-like", got, want, nout, 0.03 * mx, 0.03);
    /* it really ran bf16: not bit-equal to the f32 chain */
    m->precision = GR_PRECISION_FP32;
    gr_model_predict(m, x, B, 5, f32, &err);
    CHECK(memcmp(f32, got, nout * sizeof(float)) != 0, "bf16 output equals f32 output");
    free(x); free(got); free(want); free(f32);
    gr_model_free(m);
}

/* ------------------------------------------------------------ backward */

static void conv_bwd_case(const conv_case *cc) {
    gr_error err = {0};
    gr_model *m = gr_model_new(cc->H, cc->W, cc->C, &err);
    gr_layer_spec s = gr_conv2d(cc->OC, cc->k, cc->k, cc->stride, cc->pad, GR_ACT_LINEAR);
    s.pad_t = cc->pt; s.pad_l = cc->pl; s.pad_b = cc->pb; s.pad_r = cc->pr;
    s.groups = cc->groups; s.use_bias = cc->bias;
    CHECK(gr_model_append(m, s, &err) == 0, "%s", err.msg);
    randomize_params(m, 12);
    gr_backend *fp = be_of(m);
    const gr_node *n = &m->nodes[0];
    int B = cc->B;
    size_t nin = (size_t)B * cc->H * cc->W * cc->C, nout = (size_t)B * n->oh * n->ow * n->oc;
    size_t nw = (size_t)cc->k * cc->k * (cc->C / cc->groups) * cc->OC;
    float *x = check_falloc(nin), *dout = check_falloc(nout);
    float *din = check_falloc(nin), *dw = check_falloc(nw), *db = check_falloc((size_t)cc->OC);
    float *rdin = check_falloc(nin), *rdw = check_falloc(nw), *rdb = check_falloc((size_t)cc->OC);
    check_fill(x, nin, 1, -1, 1);
    check_fill(dout, nout, 2, -1, 1);
    /* pre-filled: both must accumulate */
    check_fill(din, nin, 3, -1, 1); memcpy(rdin, din, nin * sizeof(float));
    check_fill(dw, nw, 4, -1, 1); memcpy(rdw, dw, nw * sizeof(float));
    check_fill(db, (size_t)cc->OC, 5, -1, 1); memcpy(rdb, db, (size_t)cc->OC * sizeof(float));
    gr_conv_dims d = gr_node_conv_dims(m, 0, B);
    const float *w = gr_param_data(m, gr_node_param(m, 0, "kernel"));
    gr_conv2d_backward(dout, x, w, &d, rdin, rdw, cc->bias ? rdb : NULL);
    gr_status st = gr_backend_conv2d_backward(fp, 0, dout, x, B, din, dw, cc->bias ? db : NULL, &err);
    CHECK(st == GR_OK, "%s: %s", cc->what, err.msg);
    if (st == GR_OK) {
        CHECK_CLOSE("conv din", din, rdin, nin, 1e-4, 1e-4);
        CHECK_CLOSE("conv dw", dw, rdw, nw, 1e-3, 1e-4);
        CHECK_CLOSE("conv db", db, rdb, (size_t)cc->OC, 1e-3, 1e-4);
    }
    /* the overwriting form: din's prior content (garbage) is replaced */
    float *odin = check_falloc(nin);
    check_fill(odin, nin, 6, -1e3f, 1e3f);
    memset(rdin, 0, nin * sizeof(float));
    gr_conv2d_backward(dout, x, w, &d, rdin, NULL, NULL);
    st = gr_backend_conv2d_backward_ow(fp, 0, dout, x, B, odin, true, NULL, NULL, &err);
    CHECK(st == GR_OK, "%s (overwrite): %s", cc->what, err.msg);
    if (st == GR_OK) CHECK_CLOSE("conv din overwritten", odin, rdin, nin, 1e-4, 1e-4);
    free(odin);
    /* only dw this time (din NULL): din must stay untouched */
    memcpy(rdin, din, nin * sizeof(float));
    st = gr_backend_conv2d_backward(fp, 0, dout, x, B, NULL, dw, NULL, &err);
    CHECK(st == GR_OK && !memcmp(rdin, din, nin * sizeof(float)), "%s: dw-only call", cc->what);
    free(x); free(dout); free(din); free(dw); free(db); free(rdin); free(rdw); free(rdb);
    gr_backend_free(fp);
    gr_model_free(m);
}

static void test_conv_backward(void) {
    const conv_case cases[] = {
        {"bwd 3x3 same", 3, 9, 9, 5, 19, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
        {"bwd 5x5 s2 asym", 1, 10, 11, 3, 8, 5, 2, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, false},
        {"bwd 1x1", 3, 4, 4, 16, 4, 1, 1, GR_PAD_VALID, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
        {"bwd depthwise", 1, 7, 7, 8, 8, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 8, GR_ACT_LINEAR, 0, true},
        {"bwd 3x3 16->32 (Winograd-sized)", 4, 12, 12, 16, 32, 3, 1, GR_PAD_SAME, 0, 0, 0, 0, 1, GR_ACT_LINEAR, 0, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_bwd_case(&cases[i]);
}

static void test_dense_backward(void) {
    gr_error err = {0};
    int B = 3, IN = 29, OUT = 11;
    gr_model *m = gr_model_new(1, 1, IN, &err);
    CHECK(gr_model_append(m, gr_dense(OUT, GR_ACT_RELU), &err) == 0, "%s", err.msg);
    randomize_params(m, 2);
    gr_backend *fp = be_of(m);
    float *x = check_falloc((size_t)B * IN), *dout = check_falloc((size_t)B * OUT);
    float *din = check_falloc((size_t)B * IN), *dw = check_falloc((size_t)IN * OUT), *db = check_falloc((size_t)OUT);
    float *rdin = check_falloc((size_t)B * IN), *rdw = check_falloc((size_t)IN * OUT), *rdb = check_falloc((size_t)OUT);
    check_fill(x, (size_t)B * IN, 1, -1, 1);
    check_fill(dout, (size_t)B * OUT, 2, -1, 1);
    check_fill(din, (size_t)B * IN, 3, -1, 1); memcpy(rdin, din, (size_t)B * IN * sizeof(float));
    check_fill(dw, (size_t)IN * OUT, 4, -1, 1); memcpy(rdw, dw, (size_t)IN * OUT * sizeof(float));
    check_fill(db, (size_t)OUT, 5, -1, 1); memcpy(rdb, db, (size_t)OUT * sizeof(float));
    gr_dense_backward(dout, x, gr_param_data(m, gr_node_param(m, 0, "kernel")), B, IN, OUT, rdin,
                      rdw, rdb);
    gr_status st = gr_backend_dense_backward(fp, 0, dout, x, B, din, dw, db, &err);
    CHECK(st == GR_OK, "%s", err.msg);
    if (st == GR_OK) {
        CHECK_CLOSE("dense din", din, rdin, (size_t)B * IN, 1e-5, 1e-4);
        CHECK_CLOSE("dense dw", dw, rdw, (size_t)IN * OUT, 1e-5, 1e-4);
        CHECK_CLOSE("dense db", db, rdb, (size_t)OUT, 1e-5, 1e-4);
    }
    free(x); free(dout); free(din); free(dw); free(db); free(rdin); free(rdw); free(rdb);
    gr_backend_free(fp);
    gr_model_free(m);
}

/* Batch norm in training against the reference layers: stored statistics
 * (backward only), batch statistics (forward: output, mean, biased
 * variance; backward through them); din accumulated or overwritten,
 * dgamma / dbeta accumulated.                                             */
static void test_batchnorm_train(void) {
    gr_error err = {0};
    int B = 3, H = 5, W = 6, C = 19;
    gr_model *m = gr_model_new(H, W, C, &err);
    CHECK(gr_model_append(m, gr_batchnorm(1e-3f), &err) == 0, "%s", err.msg);
    randomize_params(m, 9);
    gr_backend *fp = be_of(m);
    const gr_node *n = &m->nodes[0];
    size_t N = (size_t)B * H * W, nx = N * C;
    float *x = check_falloc(nx), *dout = check_falloc(nx), *y = check_falloc(nx), *ry = check_falloc(nx);
    float *din = check_falloc(nx), *rdin = check_falloc(nx), *bm = check_falloc(C), *bv = check_falloc(C), *rbm = check_falloc(C),
          *rbv = check_falloc(C), *dg = check_falloc(C), *db = check_falloc(C), *rdg = check_falloc(C), *rdb = check_falloc(C);
    check_fill(x, nx, 31, -1, 3);
    check_fill(dout, nx, 32, -1, 1);
    const float *g = gr_param_data(m, n->p0), *be = gr_param_data(m, n->p0 + 1);
    const float *mm = gr_param_data(m, n->p0 + 2), *mv = gr_param_data(m, n->p0 + 3);
    for (int batch = 0; batch < 2; batch++) {
        const char *what = batch ? "batch statistics" : "stored statistics";
        if (batch) {
            gr_batchnorm_forward_train(ry, x, g, be, n->s.eps, (int64_t)N, C, rbm, rbv);
            gr_status st = gr_backend_batchnorm_forward_train(fp, 0, x, y, B, bm, bv, &err);
            CHECK(st == GR_OK, "forward train: %s", err.msg);
            CHECK_CLOSE("bn forward train out", y, ry, nx, 1e-5, 1e-4);
            CHECK_CLOSE("bn batch mean", bm, rbm, (size_t)C, 1e-6, 1e-5);
            CHECK_CLOSE("bn batch variance", bv, rbv, (size_t)C, 1e-5, 1e-4);
        }
        for (int ow = 0; ow < 2; ow++) {
            check_fill(din, nx, 33, ow ? -1e3f : -1, ow ? 1e3f : 1);
            if (ow) memset(rdin, 0, nx * sizeof(float));
            else memcpy(rdin, din, nx * sizeof(float));
            check_fill(dg, C, 34, -1, 1); memcpy(rdg, dg, C * sizeof(float));
            check_fill(db, C, 35, -1, 1); memcpy(rdb, db, C * sizeof(float));
            if (batch) gr_batchnorm_backward_train(dout, x, g, rbm, rbv, n->s.eps, (int64_t)N, C, rdin, rdg, rdb);
            else gr_batchnorm_backward(dout, x, g, mm, mv, n->s.eps, (int64_t)N, C, rdin, rdg, rdb);
            gr_status st = gr_backend_batchnorm_backward(fp, 0, dout, x, B, batch ? bm : NULL, batch ? bv : NULL,
                                                         din, ow, dg, db, &err);
            CHECK(st == GR_OK, "%s backward: %s", what, err.msg);
            if (st != GR_OK) continue;
            CHECK_CLOSE(ow ? "bn din (overwritten)" : "bn din (accumulated)", din, rdin, nx, 1e-4, 1e-4);
            CHECK_CLOSE("bn dgamma", dg, rdg, (size_t)C, 1e-4, 1e-4);
            CHECK_CLOSE("bn dbeta", db, rdb, (size_t)C, 1e-4, 1e-4);
        }
    }
    /* wrong node kinds: a clean error */
    gr_status st = gr_backend_pool_forward_train(fp, 0, x, y, B, &err);
    CHECK(st == GR_ERR_ARG, "batch norm node as pooling: %d", st);
    free(x); free(dout); free(y); free(ry); free(din); free(rdin); free(bm); free(bv); free(rbm);
    free(rbv); free(dg); free(db); free(rdg); free(rdb);
    gr_backend_free(fp);
    gr_model_free(m);
}

/* Activation layers' backward through oneDNN = the reference's, accumulated
 * onto a pre-filled din or overwriting a garbage one.                      */
static void test_act_train(void) {
    const gr_act acts[] = {GR_ACT_RELU, GR_ACT_LEAKY, GR_ACT_RELU6, GR_ACT_SIGMOID, GR_ACT_TANH, GR_ACT_SWISH,
                           GR_ACT_HARDSWISH, GR_ACT_GELU};
    int B = 2, H = 5, W = 7, C = 24;
    size_t nx = (size_t)B * H * W * C;
    float *x = check_falloc(nx), *y = check_falloc(nx), *dout = check_falloc(nx), *din = check_falloc(nx), *rdin = check_falloc(nx);
    check_fill(x, nx, 41, -8, 8);   /* spans relu6's both ends */
    check_fill(dout, nx, 42, -1, 1);
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        gr_error err = {0};
        gr_model *m = gr_model_new(H, W, C, &err);
        CHECK(gr_model_append(m, gr_activation(acts[a], 0.1f), &err) == 0, "%s", err.msg);
        gr_backend *fp = be_of(m);
        gr_act_forward(y, x, nx, acts[a], 0.1f);
        for (int ow = 0; ow < 2; ow++) {
            check_fill(din, nx, 43, ow ? -1e3f : -1, ow ? 1e3f : 1);
            if (ow) memset(rdin, 0, nx * sizeof(float));
            else memcpy(rdin, din, nx * sizeof(float));
            gr_act_backward(dout, x, y, nx, acts[a], 0.1f, rdin);
            gr_status st = gr_backend_act_backward(fp, 0, dout, x, B, din, ow, &err);
            CHECK(st == GR_OK, "activation %d: %s", (int)acts[a], err.msg);
            if (st == GR_OK) CHECK_CLOSE(ow ? "act din (overwritten)" : "act din (accumulated)", din, rdin, nx, 1e-6, 1e-5);
        }
        gr_backend_free(fp);
        gr_model_free(m);
    }
    free(x); free(y); free(dout); free(din); free(rdin);
}

/* the real Tiny Darknet (cfg + pretrained weights from ../shared/data) at 64x64 */
static void test_tiny_darknet(void) {
    char cfg[512], wts[512];
    snprintf(cfg, sizeof cfg, "%s/weights/darknet-tiny/tiny.cfg", check_data_dir());
    snprintf(wts, sizeof wts, "%s/weights/darknet-tiny/tiny.weights", check_data_dir());
    FILE *f = fopen(cfg, "r");
    if (!f) SKIP("%s absent", cfg);
    fclose(f);
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(cfg, 64, 64, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    if (gr_model_load_weights(m, wts, NULL, &err) != GR_OK) {
        fprintf(stderr, "  (weights not loaded: %s; random weights)\n", err.msg);
        randomize_params(m, 2);
    }
    /* inputs like darknet's: 0..1 */
    int B = 2;
    size_t nin = (size_t)B * gr_node_size(m, -1), nout = (size_t)B * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *got = check_falloc(nout), *want = check_falloc(nout);
    check_fill(x, nin, 31, 0, 1);
    setenv("GRAFT_REFERENCE", "1", 1);
    gr_status st = gr_model_predict(m, x, B, -1, want, &err);
    unsetenv("GRAFT_REFERENCE");
    CHECK(st == GR_OK, "reference: %s", err.msg);
    st = gr_model_predict(m, x, B, -1, got, &err);
    CHECK(st == GR_OK, "fast: %s", err.msg);
    if (st == GR_OK) CHECK_CLOSE("tiny darknet", got, want, nout, 1e-5, 1e-3);
    free(x); free(got); free(want);
    gr_model_free(m);
}

/* wrong nodes / ranges: a clean error, not a crash */
static void test_bad_args(void) {
    gr_error err = {0};
    gr_model *m = vgg_like(16, &err);
    gr_backend *fp = be_of(m);
    float buf[16] = {0};
    gr_status st = gr_backend_conv2d_backward(fp, 2, buf, buf, 1, buf, NULL, NULL, &err);
    CHECK(st == GR_ERR_ARG && strstr(err.msg, "conv2d"), "pool node as conv: %d %s", st, err.msg);
    st = gr_backend_dense_backward(fp, 0, buf, buf, 1, buf, NULL, NULL, &err);
    CHECK(st == GR_ERR_ARG && strstr(err.msg, "dense"), "conv node as dense: %d %s", st, err.msg);
    st = gr_backend_forward_chain(fp, 3, 1, buf, buf, 1, &err);
    CHECK(st == GR_ERR_ARG, "reversed chain: %d", st);
    st = gr_backend_forward_chain(fp, 0, 99, buf, buf, 1, &err);
    CHECK(st == GR_ERR_ARG, "chain past the end: %d", st);
    st = gr_backend_forward_chain(fp, 0, 1, buf, buf, 0, &err);
    CHECK(st == GR_ERR_ARG, "batch 0: %d", st);
    /* softmax as an activation layer is not a chain op: the executor falls back */
    gr_model *s = gr_model_new(4, 4, 3, &err);
    gr_stack(s, &err, gr_conv2d(5, 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), gr_activation(GR_ACT_SOFTMAX, 0));
    randomize_params(s, 1);
    CHECK(!gr_backend_chain_supports(s, 1), "softmax activation claimed by the chain");
    compare_predict("conv + softmax activation", s, 2, 1e-6, 1e-4);
    gr_model_free(s);
    gr_backend_free(fp);
    gr_model_free(m);
}

/* ------------------------------------------------------------ determinism */

static void test_deterministic(void) {
    gr_error err = {0};
    gr_model *m = darknet_like(&err);
    randomize_params(m, 1);
    int B = 3;
    size_t nin = (size_t)B * gr_node_size(m, -1), nout = (size_t)B * gr_node_size(m, m->n_nodes - 1);
    float *x = check_falloc(nin), *a = check_falloc(nout), *b = check_falloc(nout);
    check_fill(x, nin, 4, -1, 1);
    gr_ctx *cx = gr_ctx_new(m, &err);   /* the second run: from the context's cached primitives */
    CHECK(cx && gr_ctx_predict(cx, x, B, -1, a, &err) == GR_OK, "%s", err.msg);
    CHECK(cx && gr_ctx_predict(cx, x, B, -1, b, &err) == GR_OK, "%s", err.msg);
    CHECK(!memcmp(a, b, nout * sizeof(float)), "two runs differ");
    gr_ctx_free(cx);
    /* a fresh model with the same seed gives the same bits too */
    gr_model *m2 = darknet_like(&err);
    randomize_params(m2, 1);
    CHECK(gr_model_predict(m2, x, B, -1, b, &err) == GR_OK, "%s", err.msg);
    CHECK(!memcmp(a, b, nout * sizeof(float)), "a rebuilt model differs");
    free(x); free(a); free(b);
    gr_model_free(m);
    gr_model_free(m2);
}

int main(void) {
    gr_set_threads(0);
    RUN(test_conv_shapes);
    RUN(test_dense);
    RUN(test_pool);
    RUN(test_pool_unsupported);
    RUN(test_chain_vgg_like);
    RUN(test_chain_darknet_like);
    RUN(test_chain_branch);
    RUN(test_chain_region);
    RUN(test_chain_region_fallback);
    RUN(test_tiny_darknet);
    RUN(test_bf16);
    RUN(test_conv_backward);
    RUN(test_dense_backward);
    RUN(test_batchnorm_train);
    RUN(test_act_train);
    RUN(test_bad_args);
    RUN(test_deterministic);
    return check_summary();
}
