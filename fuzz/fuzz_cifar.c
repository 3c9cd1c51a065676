/* fuzz_cifar.c — CIFAR binary batches (src/data/cifar.c): the input as a
 * CIFAR-10 batch, then as a CIFAR-100 one (fine and coarse labels), and
 * every sample read back through gr_dataset_get.                          */
#include "fuzz.h"

static void one(const char *path, gr_data_format fmt, gr_label_kind lk) {
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(path, &(gr_dataset_opts){.format = fmt, .labels = lk}, &err);
    if (!ds) {
        fuzz_check_error(&err, "gr_dataset_open");
        return;
    }
    static float x[32 * 32 * 3];
    int h, w;
    gr_dataset_size(ds, &h, &w);
    if (h * w * 3 > (int)(sizeof x / sizeof x[0])) abort();
    for (int i = 0; i < gr_dataset_count(ds) && i < 8; i++) {
        if (gr_dataset_get(ds, i, x, &err) != GR_OK) fuzz_check_error(&err, "gr_dataset_get");
        int l = gr_dataset_label(ds, i);
        if (l < 0 || l >= gr_dataset_num_classes(ds) || !gr_dataset_class_name(ds, l)) abort();
    }
    gr_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("data_batch_1.bin", data, size);
    one(path, GR_DATA_AUTO, GR_LABELS_FINE);
    one(path, GR_DATA_CIFAR100, GR_LABELS_FINE);
    one(path, GR_DATA_CIFAR100, GR_LABELS_COARSE);
    return 0;
}
