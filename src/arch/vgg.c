/* vgg.c — Keras' VGG16 with Keras' layer names.
 * block1: 2 x conv 64, block2: 2 x 128, block3..5: 3 x 256/512/512; every
 * conv 3x3 'same' + ReLU with bias, each block ends in a 2x2/2 max pool.
 * include_top adds flatten, fc1 (4096, relu), fc2 (4096, relu),
 * predictions (1000, softmax), which need a 224x224 input as in Keras.     */
#include <stdio.h>
#include "graph/model.h"

gr_model *gr_vgg16(int h, int w, bool include_top, gr_error *err) {
    if (h < 32 || w < 32) {
        gr_error_set(err, GR_ERR_ARG, "vgg16: input %dx%d is too small: the minimum is 32x32", h, w);
        return NULL;
    }
    if (include_top && (h != 224 || w != 224)) {
        gr_error_set(err, GR_ERR_ARG,
                     "vgg16: with the top (fc1, fc2, predictions) the input must be 224x224, not %dx%d",
                     h, w);
        return NULL;
    }
    static const int convs[5] = {2, 2, 3, 3, 3};
    static const int filters[5] = {64, 128, 256, 512, 512};
    gr_model *m = gr_model_new(h, w, 3, err);
    if (!m) return NULL;
    char name[64];
    for (int b = 0; b < 5; b++) {
        for (int c = 0; c < convs[b]; c++) {
            snprintf(name, sizeof name, "block%d_conv%d", b + 1, c + 1);
            if (gr_model_append(m, gr_named(gr_conv2d(filters[b], 3, 3, 1, GR_PAD_SAME, GR_ACT_RELU), name), err) < 0)
                goto fail;
        }
        snprintf(name, sizeof name, "block%d_pool", b + 1);
        if (gr_model_append(m, gr_named(gr_maxpool(2, 2), name), err) < 0) goto fail;
    }
    if (include_top &&
        gr_stack(m, err, gr_named(gr_flatten(), "flatten"),
                 gr_named(gr_dense(4096, GR_ACT_RELU), "fc1"),
                 gr_named(gr_dense(4096, GR_ACT_RELU), "fc2"),
                 gr_named(gr_dense(1000, GR_ACT_SOFTMAX), "predictions")) != GR_OK)
        goto fail;
    m->norm = gr_norm_preset(GR_PREP_CAFFE);
    return m;
fail:
    gr_model_free(m);
    return NULL;
}
