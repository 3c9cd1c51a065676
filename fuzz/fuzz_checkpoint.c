/* fuzz_checkpoint.c — training checkpoints (src/train/checkpoint.c: a model file
 * with the optimizer state and the run's position as metadata): load the
 * model from the input, then resume gr_fit from it on a fixed 4-image
 * CIFAR-10 set (32x32, 10 classes), as `graft train --resume` does.       */
#include "fuzz.h"

static gr_dataset *tiny_set(void) {
    static uint8_t rec[4 * 3073];
    for (size_t i = 0; i < sizeof rec; i++) rec[i] = (uint8_t)(i * 37u);
    for (int r = 0; r < 4; r++) rec[r * 3073] = (uint8_t)r;   /* labels 0..3 */
    char path[256];
    fuzz_path(path, sizeof path, "tiny_batch.bin");
    fuzz_write(path, rec, sizeof rec);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(path, &(gr_dataset_opts){.format = GR_DATA_CIFAR10}, &err);
    if (!ds) { fprintf(stderr, "fuzz_checkpoint: %s\n", err.msg); abort(); }
    return ds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static gr_dataset *ds;
    if (!ds) ds = tiny_set();
    const char *p = fuzz_input_file("in.ckpt", data, size);
    char path[256];
    snprintf(path, sizeof path, "%s", p);
    gr_error err = {0};
    gr_model *m = gr_model_load(path, &err);
    if (!m) {
        fuzz_check_error(&err, "gr_model_load");
        return 0;
    }
    int n = gr_model_num_layers(m);
    if (n >= 1 && fuzz_model_work(m) <= 200000 && gr_model_param_count(m, false) <= 200000) {
        gr_model_freeze_upto(m, n - 2);
        gr_fit_opts o = {.epochs = 2, .batch = 4, .seed = 1, .threads = 1, .no_cache = true,
                         .resume = path};
        if (gr_fit(m, ds, NULL, 0, &o, &err) != GR_OK) fuzz_check_error(&err, "gr_fit --resume");
    }
    gr_model_free(m);
    return 0;
}
