/* test_wtable.c — the named-tensor table every weights format produces
 * (src/format/wtable.h) and the error idiom of the format entry points.
 *
 * Offsets: where the table says a tensor's data is (safetensors: the header's
 * data_offsets; HDF5: a contiguous dataset's address), the file's own bytes
 * there must be the tensor the reader returns.  err == NULL: every public
 * load/save entry point of src/format returns a status without crashing.  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/darknet_weights.h"
#include "format/weights.h"

#define FIX "tests/fixtures/"

/* Checks every F32 tensor with an offset against the raw file; returns how many. */
static int check_offsets(const char *path) {
    gr_error err = {0};
    gr_wfile *wf = gr_wfile_open(path, &err);
    CHECK(wf != NULL, "%s", err.msg);
    if (!wf) return 0;
    FILE *f = fopen(path, "rb");
    int checked = 0;
    for (int l = 0; f && l < wf->n_layers; l++)
        for (int k = 0; k < wf->layers[l].n; k++) {
            const gr_wtensor *t = &wf->layers[l].t[k];
            if (t->offset < 0 || strcmp(t->dtype, "F32")) continue;
            int64_t n = gr_wtensor_count(t);
            float *a = malloc((size_t)(n ? n : 1) * sizeof *a), *b = malloc((size_t)(n ? n : 1) * sizeof *b);
            bool ok = a && b && !fseek(f, (long)t->offset, SEEK_SET) && fread(a, 4, (size_t)n, f) == (size_t)n;
            CHECK(ok, "%s: '%s': %lld floats at offset %lld", path, t->name, (long long)n, (long long)t->offset);
            if (ok) {
                CHECK(wf->read(wf, t, b, n, &err) == GR_OK, "%s", err.msg);
                CHECK(!memcmp(a, b, (size_t)n * 4), "%s: '%s': the bytes at offset %lld are not the tensor", path,
                      t->name, (long long)t->offset);
                checked++;
            }
            free(a);
            free(b);
        }
    if (f) fclose(f);
    gr_wfile_close(wf);
    return checked;
}

static void test_offsets(void) {
    int n = check_offsets(FIX "weights/tiny_torch.safetensors");
    CHECK(n == 8, "safetensors: %d tensors checked, want 8 (conv, batch norm, dense)", n);
    n = check_offsets(FIX "weights/tiny_k2.h5");
    CHECK(n > 0, "HDF5: no contiguous tensor checked");
}

/* A safetensors file's offsets are its header's, relative to the data section. */
static void test_offsets_layout(void) {
    gr_error err = {0};
    gr_wfile *wf = gr_wfile_open(FIX "weights/tiny_torch.safetensors", &err);
    CHECK(wf != NULL, "%s", err.msg);
    if (!wf) return;
    FILE *f = fopen(FIX "weights/tiny_torch.safetensors", "rb");
    unsigned char lb[8] = {0};
    CHECK(f && fread(lb, 1, 8, f) == 8, "header length");
    if (f) fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lb[i];
    int64_t lo = INT64_MAX;
    for (int l = 0; l < wf->n_layers; l++)
        for (int k = 0; k < wf->layers[l].n; k++)
            if (wf->layers[l].t[k].offset < lo) lo = wf->layers[l].t[k].offset;
    CHECK(lo == (int64_t)(8 + hlen), "the first tensor starts at %lld, the data section at %llu", (long long)lo,
          (unsigned long long)(8 + hlen));
    gr_wfile_close(wf);
}

static void test_err_null(void) {
    gr_error err = {0};
    gr_model *m = gr_darknet_load_cfg(FIX "darknet/synth.cfg", 0, 0, &err);
    CHECK(m != NULL, "%s", err.msg);
    if (!m) return;
    CHECK(gr_model_load_weights(m, "/nonexistent/w.h5", NULL, NULL) == GR_ERR_IO, "load_weights");
    CHECK(gr_model_load_weights_partial(m, "/nonexistent/w.h5", NULL, NULL) == GR_ERR_IO, "load_weights_partial");
    CHECK(gr_model_load_weights(m, FIX "weights/tiny_k2.h5", NULL, NULL) == GR_ERR_SHAPE, "a file that does not fit");
    CHECK(gr_darknet_load_weights(m, "/nonexistent/w.weights", NULL, NULL) == GR_ERR_IO, "darknet");
    CHECK(gr_darknet_load_weights(m, FIX "darknet/synth.weights", NULL, NULL) == GR_OK, "darknet, good file");
    CHECK(gr_wfile_open("/nonexistent/w.safetensors", NULL) == NULL, "wfile_open");
    CHECK(gr_model_load("/nonexistent/m.gft", NULL) == NULL, "model_load");
    CHECK(gr_model_save(m, "/nonexistent/dir/m.gft", NULL, NULL) == GR_ERR_IO, "model_save");
    CHECK(gr_tflite_load("/nonexistent/m.tflite", NULL) == NULL, "tflite_load");
    gr_model_free(m);
}

int main(void) {
    RUN(test_offsets);
    RUN(test_offsets_layout);
    RUN(test_err_null);
    return check_summary();
}
