/* fuzz_cifar_targz.c — CIFAR archives (src/data/cifar.c through libarchive):
 * the input as a .tar.gz, opened as the training and the test split.     */
#include "fuzz.h"

static void one(const char *path, gr_split split) {
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(path, &(gr_dataset_opts){.split = split}, &err);
    if (!ds) {
        fuzz_check_error(&err, "gr_dataset_open");
        return;
    }
    static float x[32 * 32 * 3];
    for (int i = 0; i < gr_dataset_count(ds) && i < 4; i++)
        if (gr_dataset_get(ds, i, x, &err) != GR_OK) fuzz_check_error(&err, "gr_dataset_get");
    for (int c = 0; c < gr_dataset_num_classes(ds); c++)
        if (!gr_dataset_class_name(ds, c)) abort();
    gr_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("cifar.tar.gz", data, size);
    one(path, GR_SPLIT_TRAIN);
    one(path, GR_SPLIT_TEST);
    return 0;
}
