/* fuzz_darknet_cfg.c — the darknet .cfg reader (src/arch/darknet.c, darknet_cfg.c): build
 * a model from the input, and run it once on zeros when it is small.      */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("in.cfg", data, size);
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(path, 0, 0, &err);
    if (!m) {
        fuzz_check_error(&err, "gr_darknet_load_cfg");
        return 0;
    }
    fuzz_run_small(m);
    gr_model_free(m);
    return 0;
}
