/* weights.c — gr_model_load_weights: decide the format of a weights file
 * by its content, open it as a named-tensor table (Keras .h5: keras_h5.c;
 * safetensors: st_table.c; darknet .weights: darknet_weights.c) and bind
 * the table to the model (bind.c): a failed load leaves the model unchanged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "format/bind.h"
#include "format/darknet_weights.h"
#include "format/keras_h5.h"
#include "format/st_table.h"
#include "format/weights.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

int gr_weights_sniff(const char *path, gr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return 0;
    }
    static const unsigned char h5sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[16] = {0};
    size_t n = fread(b, 1, sizeof b, f);
    int kind = 0;
    if (n >= 8 && !memcmp(b, h5sig, 8)) kind = 'h';
    unsigned char ub[8];   /* HDF5 after a user block (its own buffer: b's bytes are needed below) */
    for (long off = 512; !kind && off <= 8192; off *= 2)
        if (!fseek(f, off, SEEK_SET) && fread(ub, 1, 8, f) == 8 && !memcmp(ub, h5sig, 8)) kind = 'h';
    fclose(f);
    if (kind) return kind;
    if (n >= 9 && b[8] == '{') return 's';
    if (ends_with(path, ".safetensors")) return 's';
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return 'h';
    if (ends_with(path, ".weights")) return 'd';
    gr_error_set(err, GR_ERR_FORMAT,
                 "%s: not a weights file (neither HDF5, safetensors nor a darknet .weights file)", path);
    return 0;
}

gr_wfile *gr_wfile_open(const char *path, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    int kind = gr_weights_sniff(path, err);
    if (!kind) return NULL;
    if (kind == 'd') {
        gr_error_set(err, GR_ERR_UNSUPPORTED,
                     "%s: a darknet .weights file holds no names or shapes: load it into a model built from its .cfg",
                     path);
        return NULL;
    }
    gr_wfile *wf = gr_wfile_new(path, err);
    if (!wf) return NULL;
    if ((kind == 'h' ? gr_keras_h5_open(wf, err) : gr_st_table_open(wf, err)) != GR_OK) {
        gr_wfile_close(wf);
        return NULL;
    }
    return wf;
}

static gr_status load_weights(gr_model *m, const char *path, bool partial, gr_load_report *report,
                              gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!m || !path) return gr_error_set(err, GR_ERR_ARG, "load weights: no model or no path");
    int kind = gr_weights_sniff(path, err);
    if (!kind) return err->code;
    if (kind == 'd') return gr_darknet_load_weights_ex(m, path, partial, report, err);
    gr_wfile *wf = gr_wfile_open(path, err);
    if (!wf) return err->code;
    gr_bind_opts o = {.partial = partial, .by_order = true};
    gr_status st = gr_bind(m, wf, &o, report, err);
    gr_wfile_close(wf);
    return st;
}

gr_status gr_model_load_weights(gr_model *m, const char *path, gr_load_report *report, gr_error *err) {
    return load_weights(m, path, false, report, err);
}

gr_status gr_model_load_weights_partial(gr_model *m, const char *path, gr_load_report *report,
                                        gr_error *err) {
    return load_weights(m, path, true, report, err);
}
