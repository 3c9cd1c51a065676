/* fuzz_darknet_weights.c — the darknet .weights reader
 * (src/format/darknet_weights.c) against a fixed network: the cfg of
 * tests/fixtures/darknet/synth.cfg, which uses every section graft reads
 * (conv with/without BN, groups, connected with BN, shortcut, route).     */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_is_hdf5(data, size)) return 0;
    static gr_model *m;
    gr_error err = {0};
    if (!m) {
        m = gr_darknet_load_cfg(FUZZ_SRCDIR "/tests/fixtures/darknet/synth.cfg", 0, 0, &err);
        if (!m) { fprintf(stderr, "fuzz_darknet_weights: %s\n", err.msg); abort(); }
    }
    const char *path = fuzz_input_file("in.weights", data, size);
    gr_load_report rep;
    if (gr_model_load_weights(m, path, &rep, &err) != GR_OK) fuzz_check_error(&err, "gr_model_load_weights");
    return 0;
}
