/* wtable.h — the named-tensor table every weights format produces.
 *
 * A reader (Keras .h5, safetensors, darknet .weights, TFLite, the graft
 * model file) presents its file as a gr_wfile: an ordered list of layers,
 * each with its tensors in the file's order.  A tensor has a name, a dtype
 * as stored, a shape as stored (fshape) and in graft's layout (shape: HWIO
 * conv kernels, [in][out] dense kernels), the layout conversion between the
 * two, and where its data is (a file offset when the format has one); the
 * reader's read callback returns it as float32, as stored.  The binder
 * (format/bind.h) assigns a table to a model.                              */
#ifndef GRAFT_FORMAT_WTABLE_H
#define GRAFT_FORMAT_WTABLE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

#define GR_WF_MAX_DIMS 8

typedef enum {
    GR_WT_ASIS = 0,      /* stored as graft wants it (fshape may differ by unit dims only) */
    GR_WT_OIHW,          /* conv kernel [O][I][H][W] -> HWIO (torchvision, darknet) */
    GR_WT_OHWI,          /* conv kernel [O][H][W][I] -> HWIO (TFLite) */
    GR_WT_OUT_IN         /* dense kernel [out][in] -> [in][out] */
} gr_wt_layout;

typedef struct {
    char *name;          /* the tensor's full name in the file */
    char kind[24];       /* graft kind when the file names it ("kernel", "gamma", ...), else "" */
    char dtype[12];      /* as stored: "F32", "F16", "F64", ... */
    int ndim;
    int64_t shape[GR_WF_MAX_DIMS];   /* graft layout */
    int64_t fshape[GR_WF_MAX_DIMS];  /* as stored */
    gr_wt_layout layout;
    int64_t offset;      /* byte offset of the data in the file, -1 when the format has none */
    int idx;             /* the reader's own handle */
} gr_wtensor;

typedef struct {
    char *name;          /* layer name in the file */
    int n;
    gr_wtensor *t;
    char *label;         /* the format's own name for the layer ("12 (convolutional)"), or NULL:
                          * NaN/Inf values are then reported per layer under it            */
    bool fixed;          /* (no tensors) the model layer of this name is set by the
                          * architecture, not by any file: not counted, not loaded         */
    char absent[48];     /* (no tensors) why the model layer of this name gets none, e.g.
                          * "not a darknet layer"; "" = "not in the file"                  */
} gr_wlayer;

typedef struct gr_wfile gr_wfile;
struct gr_wfile {
    char *path;
    char format[160];    /* human description of the format/layout detected */
    char note[160];      /* one more report line from the reader, or "" */
    bool chw_flatten;    /* a dense layer after a flatten takes its inputs in CHW order
                          * (torchvision, darknet): permuted to graft's HWC at load      */
    bool torch_names;    /* torchvision module names (<module>.weight) */
    int n_layers;
    gr_wlayer *layers;
    int n_meta;          /* safetensors __metadata__ (borrowed from impl), else 0 */
    char **meta_key, **meta_val;
    void *impl;
    /* Reads tensor t (as stored, converted to float32) into out (count floats). */
    gr_status (*read)(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err);
    void (*close_impl)(gr_wfile *wf);
};

/* An empty table for path.  NULL on no memory. */
gr_wfile *gr_wfile_new(const char *path, gr_error *err);
void gr_wfile_close(gr_wfile *wf);
/* Elements of a tensor (graft shape). */
int64_t gr_wtensor_count(const gr_wtensor *t);
/* Adds a layer / a tensor to it (used by the readers).  NULL on no memory. */
gr_wlayer *gr_wfile_add_layer(gr_wfile *wf, const char *name, gr_error *err);
gr_wtensor *gr_wlayer_add_tensor(gr_wlayer *l, const char *name, gr_error *err);
/* The layer called name, or NULL. */
gr_wlayer *gr_wfile_find_layer(gr_wfile *wf, const char *name);
/* The tensor whose full name is name (any layer), or NULL. */
const gr_wtensor *gr_wfile_find_tensor(const gr_wfile *wf, const char *name);
/* Formats a shape as "[3, 3, 64, 128]". */
void gr_shape_str(char *buf, size_t n, const int64_t *shape, int ndim);

#endif
