/* weights.h — a weights file seen as layers of tensors, and binding it to a
 * model (gr_model_load_weights in graft.h).
 *
 * Every reader (Keras .h5, safetensors) presents its file as a gr_wfile: an
 * ordered list of file layers, each with its tensors in the file's order.
 * Tensor shapes are given in GRAFT's layout (HWIO conv kernels, [in][out]
 * dense kernels); `fshape` keeps the shape as stored when the reader
 * transposes (torchvision OIHW / [out][in]).                                */
#ifndef GRAFT_IO_WEIGHTS_H
#define GRAFT_IO_WEIGHTS_H
#include "graph/model.h"

#define GR_WF_MAX_DIMS 8

typedef enum {
    GR_WT_ASIS = 0,      /* stored as graft wants it */
    GR_WT_OIHW,          /* conv kernel [O][I][H][W] -> HWIO */
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
    int idx;             /* the reader's own handle */
} gr_wtensor;

typedef struct {
    char *name;          /* layer name in the file */
    int n;
    gr_wtensor *t;
} gr_wlayer;

typedef struct gr_wfile gr_wfile;
struct gr_wfile {
    char *path;
    char format[160];    /* human description of the format/layout detected */
    bool torch_names;    /* torchvision names: dense inputs come in CHW order */
    int n_layers;
    gr_wlayer *layers;
    int n_meta;          /* safetensors __metadata__ (borrowed from impl), else 0 */
    char **meta_key, **meta_val;
    void *impl;
    /* Reads tensor t (as stored, converted to float32) into out (count floats). */
    gr_status (*read)(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err);
    void (*close_impl)(gr_wfile *wf);
};

/* Opens a Keras .h5 or safetensors file (decided by content).  NULL + *err. */
gr_wfile *gr_wfile_open(const char *path, gr_error *err);
void gr_wfile_close(gr_wfile *wf);
/* Elements of a tensor. */
int64_t gr_wtensor_count(const gr_wtensor *t);
/* Adds a layer / a tensor to it (used by the readers).  NULL on no memory. */
gr_wlayer *gr_wfile_add_layer(gr_wfile *wf, const char *name, gr_error *err);
gr_wtensor *gr_wlayer_add_tensor(gr_wlayer *l, const char *name, gr_error *err);
/* Formats a shape as "[3, 3, 64, 128]". */
void gr_shape_str(char *buf, size_t n, const int64_t *shape, int ndim);

/* What kind of file is at path: 'h' HDF5, 's' safetensors, 'd' darknet
 * (.weights by name), 0 unknown (err says why when it could not be read). */
int gr_weights_sniff(const char *path, gr_error *err);

#endif
