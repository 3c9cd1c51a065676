/* onnx_meta.h — an ONNX file's input recipe and class names from its
 * metadata_props (onnx_meta.c; not public).                               */
#ifndef GRAFT_FORMAT_ONNX_META_H
#define GRAFT_FORMAT_ONNX_META_H
#include <stddef.h>
#include "graph/model.h"
#include "format/onnx.h"

/* The recipe f carries (graft.* keys, checked: a bad value is an error
 * naming it) or torchvision's ImageNet default; note gets a line saying
 * which.                                                                  */
gr_status gr_onnx_read_recipe(const gr_onnx_file *f, gr_recipe *r, char *note, size_t cap, gr_error *err);
/* Sets m's class names from f's "class_names" when it holds n_out names
 * (another count: left alone; not a JSON array of strings: an error).      */
gr_status gr_onnx_read_classes(const gr_onnx_file *f, gr_model *m, int n_out, gr_error *err);

#endif
