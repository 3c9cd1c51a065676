/* weights.h — weights files by content: gr_wfile_open gives any Keras .h5
 * or safetensors file as a named-tensor table (wtable.h);
 * gr_model_load_weights (graft.h) binds it to a model (bind.h), or hands a
 * darknet .weights file to its reader (darknet_weights.h).                 */
#ifndef GRAFT_FORMAT_WEIGHTS_H
#define GRAFT_FORMAT_WEIGHTS_H
#include "format/wtable.h"

/* Opens a Keras .h5 or safetensors file (decided by content).  NULL + *err. */
gr_wfile *gr_wfile_open(const char *path, gr_error *err);

/* What kind of file is at path: 'h' HDF5, 's' safetensors, 'd' darknet
 * (.weights by name), 0 unknown (err says why when it could not be read). */
int gr_weights_sniff(const char *path, gr_error *err);

#endif
