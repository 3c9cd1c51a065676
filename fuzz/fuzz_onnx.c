/* fuzz_onnx.c — the ONNX reader (src/format/onnx.c: protobuf-c unpacking,
 * tensor counts against their bytes, float16/typed/external data) and the
 * graph builder on top (src/format/onnx_net.c, onnx_ops.c, onnx_fold.c), at
 * the file's input size with and without the classifier, then one small run. */
#include "fuzz.h"
#include "format/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("in.onnx", data, size);
    gr_error err = {0};
    gr_onnx_file *f = gr_onnx_open(path, &err);
    if (!f) {
        fuzz_check_error(&err, "gr_onnx_open");
        return 0;
    }
    const Onnx__GraphProto *g = f->pb->graph;
    for (size_t i = 0; i < g->n_initializer; i++) {
        gr_error e2 = {0};
        int64_t n;
        if (gr_onnx_tensor_count(f, g->initializer[i], &n, &e2) != GR_OK) { fuzz_check_error(&e2, "gr_onnx_tensor_count"); continue; }
        if (n > (1 << 16)) continue;
        float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
        if (out && gr_onnx_tensor_floats(f, g->initializer[i], out, n, &e2) != GR_OK)
            fuzz_check_error(&e2, "gr_onnx_tensor_floats");
        free(out);
    }
    gr_onnx_close(f);
    for (int top = 0; top < 2; top++) {
        memset(&err, 0, sizeof err);
        gr_model *m = gr_onnx_load(path, 0, 0, top, &err);
        if (!m) {
            fuzz_check_error(&err, "gr_onnx_load");
            continue;
        }
        fuzz_run_small(m);
        gr_model_free(m);
    }
    return 0;
}
