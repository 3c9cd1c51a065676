/* registry.c — the table of files `graft fetch` knows: canonical URLs and the
 * digests their publishers give (Keras applications' file_hash md5s; the
 * CIFAR page's md5s).  Tiny Darknet's files have no published digest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hub/fetch.h"

#define KERAS_APPS "https://storage.googleapis.com/tensorflow/keras-applications/"
#define DARKNET_RAW "https://raw.githubusercontent.com/pjreddie/darknet/master/"

static const gr_fetch_entry registry[] = {
    {"vgg16", "weights/vgg16", "Keras VGG16 ImageNet weights, no top (58 MB)", NULL, {NULL}, 1,
     {{"vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
       KERAS_APPS "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
       "6d6bbae143d832006294945121d1f1fc", NULL}}},
    {"vgg16-top", "weights/vgg16", "Keras VGG16 ImageNet weights with the classifier (528 MB)",
     NULL, {NULL}, 1,
     {{"vgg16_weights_tf_dim_ordering_tf_kernels.h5",
       KERAS_APPS "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
       "64373286793e3c8b2b4e3219cbf3544b", NULL}}},
    {"resnet50", "weights/resnet50", "Keras ResNet50 ImageNet weights, no top (94 MB)", NULL,
     {NULL}, 1,
     {{"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
       KERAS_APPS "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
       "4d473c1dd8becc155b73f8504c6f6626", NULL}}},
    {"tiny-darknet", "weights/darknet-tiny",
     "Tiny Darknet ImageNet classifier: .weights, .cfg, labels (4 MB; no published digest)",
     NULL, {NULL}, 3,
     {{"tiny.weights", "https://pjreddie.com/media/files/tiny.weights", NULL,
       "weights/darknet-tiny/tiny.weights"},
      {"tiny.cfg", DARKNET_RAW "cfg/tiny.cfg", NULL, "weights/darknet-tiny/tiny.cfg"},
      {"imagenet.shortnames.list", DARKNET_RAW "data/imagenet.shortnames.list", NULL,
       "weights/darknet-tiny/imagenet1k.shortnames.txt"}}},
    {"cifar10", "datasets/cifar10", "CIFAR-10 binary version (162 MB)", "cifar-10-batches-bin",
     {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
      "data_batch_5.bin", "test_batch.bin", "batches.meta.txt", NULL},
     1,
     {{"cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
       "c32a1d4ab5d03f1284b67883e8d87530", NULL}}},
    {"cifar100", "datasets/cifar100", "CIFAR-100 binary version (161 MB)", "cifar-100-binary",
     {"train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt", NULL},
     1,
     {{"cifar-100-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
       "03b5dce01913d631647c71ecec9e9cb8", NULL}}},
};

const gr_fetch_entry *gr_fetch_registry(int *n) {
    *n = (int)(sizeof registry / sizeof registry[0]);
    return registry;
}

const gr_fetch_entry *gr_fetch_lookup(const char *name) {
    int n;
    const gr_fetch_entry *r = gr_fetch_registry(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].name, name)) return &r[i];
    return NULL;
}

gr_status gr_fetch_home(char *buf, size_t cap, gr_error *err) {
    const char *h = getenv("GRAFT_HOME");
    int n;
    if (h && *h) {
        n = snprintf(buf, cap, "%s", h);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return gr_error_set(err, GR_ERR_ARG,
                                "neither GRAFT_HOME nor HOME is set: no place for the download cache");
        n = snprintf(buf, cap, "%s/.cache/graft", home);
    }
    if (n < 0 || (size_t)n >= cap) return gr_error_set(err, GR_ERR_ARG, "cache path too long");
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    return GR_OK;
}

void gr_fetch_file_url(const gr_fetch_file *f, char *buf, size_t cap) {
    const char *base = getenv("GRAFT_FETCH_BASE_URL");
    if (base && *base) {
        size_t n = strlen(base);
        snprintf(buf, cap, "%s%s%s", base, base[n - 1] == '/' ? "" : "/", f->file);
    } else {
        snprintf(buf, cap, "%s", f->url);
    }
}
