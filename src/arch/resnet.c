/* resnet.c — Keras' ResNet50 (keras.applications.ResNet50, "v1") with
 * Keras' layer names, so the published Keras files
 * (resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5) load by name.
 *
 * Stem:  conv1_pad   ZeroPadding2D(3)        -- folded into conv1_conv (see below)
 *        conv1_conv  conv 7x7/2, 64, bias    [B,H,W,3] -> [B,H1,W1,64], H1 = (H-1)/2+1
 *        conv1_bn    batch norm, eps 1.001e-5
 *        conv1_relu  relu
 *        pool1_pad   ZeroPadding2D(1)        -- folded into pool1_pool
 *        pool1_pool  max pool 3x3/2          -> [B,H2,W2,64], H2 = (H1-1)/2+1
 * Stacks conv2..conv5: 3, 4, 6, 3 bottleneck blocks of 64, 128, 256, 512
 * filters (outputs 4x that), stride 1, 2, 2, 2 on the stack's first block.
 * Block convN_blockK (input x, stride s on block 1 only, F filters):
 *        _0_conv 1x1/s 4F + _0_bn             (block 1 only: projection shortcut;
 *                                              the others add x itself)
 *        _1_conv 1x1/s F  + _1_bn + _1_relu   (v1: the stride sits HERE, on the 1x1)
 *        _2_conv 3x3 'same' F + _2_bn + _2_relu
 *        _3_conv 1x1 4F   + _3_bn
 *        _add    shortcut + main              (GR_OP_ADD, two inputs)
 *        _out    relu                         (GR_OP_ACTIVATION)
 * Every conv has a bias (Keras' ResNet50 does; torchvision's does not) and
 * every batch norm eps 1.001e-5.  1x1 convs are 'valid' (as Keras).
 * include_top: avg_pool (global average pool) + predictions (dense 1000,
 * softmax).  Without the top: 23,587,712 parameters, like Keras' notop model.
 *
 * The two ZeroPadding2D layers have no node: graft has no padding op, so
 * their padding is explicit padding (GR_PAD_EXPLICIT) of the layer after
 * them.  graft's model therefore has Keras' layers minus input_1, conv1_pad
 * and pool1_pad (172 nodes without the top, 174 with it); cutting at those
 * two names is not possible (cut at conv1_relu or pool1_pool instead).
 *
 * Max pool after zero padding: Keras pads with ZEROS then max-pools, graft's
 * pools ignore out-of-range cells.  The same here: pool1's input comes
 * right after a ReLU, so it is >= 0 and a zero pad never beats the in-range
 * cells of a window (each 3x3/2 window with pad 1 holds at least one).
 *
 * Weights sources (DESIGN: match by name, else by order):
 *  - Keras .h5, nested (conv1_conv/conv1_conv/kernel:0) or flat
 *    (conv1_conv_W_1:0) groups: by name, each group's datasets in the order
 *    of its weight_names attribute (kernel, bias; gamma, beta, moving_mean,
 *    moving_variance) — the file's numbers reproduce Keras' exactly.
 *  - graft's own files (gr_model_save): by name.
 *  - torchvision safetensors (conv1.weight, layer1.0.conv1.weight, ...):
 *    REFUSED with a clear error (io/weights.c).  torchvision's resnet50 is
 *    "v1.5": the stride 2 sits on each stack's first 3x3 conv, not on the
 *    1x1, and its convs have no bias; loading its weights into this
 *    architecture would give other numbers than torchvision, silently.    */
#include <stdio.h>
#include <string.h>
#include "graph/model.h"

#define RESNET_BN_EPS 1.001e-5f

/* Appends conv (k x k, stride, padding) + batch norm named <pre>_conv and
 * <pre>_bn reading node `in`; returns the batch norm's node or -1.        */
static int conv_bn(gr_model *m, int in, const char *pre, int filters, int k, int stride,
                   gr_padding pad, gr_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%s_conv", pre);
    gr_layer_spec c = gr_named(gr_conv2d(filters, k, k, stride, pad, GR_ACT_LINEAR), name);
    c.inputs[0] = in;
    c.n_inputs = 1;
    if (gr_model_append(m, c, err) < 0) return -1;
    snprintf(name, sizeof name, "%s_bn", pre);
    return gr_model_append(m, gr_named(gr_batchnorm(RESNET_BN_EPS), name), err);
}

static int relu(gr_model *m, const char *pre, gr_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%s_relu", pre);
    return gr_model_append(m, gr_named(gr_activation(GR_ACT_RELU, 0), name), err);
}

/* One bottleneck block reading node x; returns its _out node or -1. */
static int block(gr_model *m, int x, int stack, int blk, int filters, int stride, gr_error *err) {
    char pre[48], name[64];
    int shortcut = x;
    if (blk == 1) {   /* projection shortcut: conv 1x1/stride to 4F + BN */
        snprintf(pre, sizeof pre, "conv%d_block%d_0", stack, blk);
        if ((shortcut = conv_bn(m, x, pre, 4 * filters, 1, stride, GR_PAD_VALID, err)) < 0) return -1;
    } else {
        stride = 1;
    }
    int y;
    snprintf(pre, sizeof pre, "conv%d_block%d_1", stack, blk);
    if (conv_bn(m, x, pre, filters, 1, stride, GR_PAD_VALID, err) < 0 || (y = relu(m, pre, err)) < 0) return -1;
    snprintf(pre, sizeof pre, "conv%d_block%d_2", stack, blk);
    if (conv_bn(m, y, pre, filters, 3, 1, GR_PAD_SAME, err) < 0 || (y = relu(m, pre, err)) < 0) return -1;
    snprintf(pre, sizeof pre, "conv%d_block%d_3", stack, blk);
    if ((y = conv_bn(m, y, pre, 4 * filters, 1, 1, GR_PAD_VALID, err)) < 0) return -1;
    gr_layer_spec add;
    memset(&add, 0, sizeof add);
    add.op = GR_OP_ADD;
    add.inputs[0] = shortcut;
    add.inputs[1] = y;
    add.n_inputs = 2;
    snprintf(name, sizeof name, "conv%d_block%d_add", stack, blk);
    if (gr_model_append(m, gr_named(add, name), err) < 0) return -1;
    snprintf(name, sizeof name, "conv%d_block%d_out", stack, blk);
    return gr_model_append(m, gr_named(gr_activation(GR_ACT_RELU, 0), name), err);
}

gr_model *gr_resnet50(int h, int w, bool include_top, gr_error *err) {
    if (h < 32 || w < 32) {
        gr_error_set(err, GR_ERR_ARG, "resnet50: input %dx%d is too small: the minimum is 32x32", h, w);
        return NULL;
    }
    gr_model *m = gr_model_new(h, w, 3, err);
    if (!m) return NULL;
    /* conv1_pad (ZeroPadding2D(3)) + conv1_conv (7x7/2 'valid') */
    gr_layer_spec c1 = gr_named(gr_conv2d(64, 7, 7, 2, GR_PAD_EXPLICIT, GR_ACT_LINEAR), "conv1_conv");
    c1.pad_t = c1.pad_l = c1.pad_b = c1.pad_r = 3;
    /* pool1_pad (ZeroPadding2D(1)) + pool1_pool (3x3/2 'valid'); see the top
     * comment for why ignoring out-of-range cells equals zero padding here */
    gr_layer_spec p1 = gr_named(gr_maxpool(3, 2), "pool1_pool");
    p1.padding = GR_PAD_EXPLICIT;
    p1.pad_t = p1.pad_l = p1.pad_b = p1.pad_r = 1;
    if (gr_stack(m, err, c1, gr_named(gr_batchnorm(RESNET_BN_EPS), "conv1_bn"),
                 gr_named(gr_activation(GR_ACT_RELU, 0), "conv1_relu"), p1) != GR_OK)
        goto fail;
    static const int blocks[4] = {3, 4, 6, 3}, filters[4] = {64, 128, 256, 512}, strides[4] = {1, 2, 2, 2};
    int x = m->n_nodes - 1;
    for (int s = 0; s < 4; s++)
        for (int b = 1; b <= blocks[s]; b++)
            if ((x = block(m, x, s + 2, b, filters[s], strides[s], err)) < 0) goto fail;
    if (include_top &&
        gr_stack(m, err, gr_named(gr_global_avgpool(), "avg_pool"),
                 gr_named(gr_dense(1000, GR_ACT_SOFTMAX), "predictions")) != GR_OK)
        goto fail;
    m->norm = gr_norm_preset(GR_PREP_CAFFE);
    return m;
fail:
    gr_error_prefix(err, "resnet50 %dx%d", h, w);
    gr_model_free(m);
    return NULL;
}
