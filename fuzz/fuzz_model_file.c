/* fuzz_model_file.c — graft's model file (src/format/model_file.c: the
 * safetensors layout with the architecture as JSON metadata): load, and run
 * the model once on zeros when it is small.                               */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("in.gft", data, size);
    gr_error err = {0};
    gr_model *m = gr_model_load(path, &err);
    if (!m) {
        fuzz_check_error(&err, "gr_model_load");
        return 0;
    }
    for (int c = 0; c < gr_model_num_classes(m); c++) (void)gr_model_class_name(m, c);
    fuzz_run_small(m);
    gr_model_free(m);
    return 0;
}
