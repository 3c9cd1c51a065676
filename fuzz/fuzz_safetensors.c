/* fuzz_safetensors.c — the safetensors reader (src/format/safetensors.c) and its
 * view as a weights file (src/format/weights.c: graft / torchvision names,
 * layouts): open, then read every tensor of a sane size as float32.       */
#include "fuzz.h"
#include "format/safetensors.h"
#include "format/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_is_hdf5(data, size)) return 0;
    const char *path = fuzz_input_file("in.safetensors", data, size);
    gr_error err = {0};
    gr_st_file *sf = gr_st_open(path, &err);
    if (!sf) {
        fuzz_check_error(&err, "gr_st_open");
    } else {
        for (int i = 0; i < sf->n; i++) {
            (void)gr_st_find(sf, sf->t[i].name);
            int64_t n = gr_st_count(sf, i);
            if (n < 0 || n > (1 << 16)) continue;
            float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
            if (!out) continue;
            gr_error e2 = {0};
            if (gr_st_read_f32(sf, i, out, n, &e2) != GR_OK) fuzz_check_error(&e2, "gr_st_read_f32");
            free(out);
        }
        (void)gr_st_meta(sf, "format");
        gr_st_close(sf);
    }
    memset(&err, 0, sizeof err);
    gr_wfile *wf = gr_wfile_open(path, &err);
    if (!wf) {
        fuzz_check_error(&err, "gr_wfile_open");
        return 0;
    }
    for (int l = 0; l < wf->n_layers; l++)
        for (int k = 0; k < wf->layers[l].n; k++) {
            const gr_wtensor *t = &wf->layers[l].t[k];
            int64_t n = gr_wtensor_count(t);
            if (n < 0 || n > (1 << 16)) continue;
            float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
            if (!out) continue;
            gr_error e2 = {0};
            if (wf->read(wf, t, out, n, &e2) != GR_OK) fuzz_check_error(&e2, "gr_wfile read");
            free(out);
        }
    gr_wfile_close(wf);
    return 0;
}
