/* fuzz_tflite.c — the TFLite flatbuffer reader (src/format/tflite.c) and the
 * graph builder on top (src/format/tflite_net.c), then one small run.     */
#include "fuzz.h"
#include "format/tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("in.tflite", data, size);
    gr_error err = {0};
    gr_tfl_model *t = gr_tfl_open(path, &err);
    if (!t) {
        fuzz_check_error(&err, "gr_tfl_open");
        return 0;
    }
    for (int i = 0; i < t->n_tensors; i++) {
        int64_t n = gr_tfl_tensor_count(&t->tensors[i]);
        if (n <= 0 || n > (1 << 16) || t->tensors[i].buffer == 0) continue;
        float *out = malloc((size_t)n * sizeof *out);
        if (!out) continue;
        gr_error e2 = {0};
        if (gr_tfl_tensor_floats(t, i, out, n, &e2) != GR_OK) fuzz_check_error(&e2, "gr_tfl_tensor_floats");
        free(out);
    }
    gr_tfl_close(t);
    memset(&err, 0, sizeof err);
    gr_model *m = gr_tflite_load(path, &err);
    if (!m) {
        fuzz_check_error(&err, "gr_tflite_load");
        return 0;
    }
    fuzz_run_small(m);
    gr_model_free(m);
    return 0;
}
