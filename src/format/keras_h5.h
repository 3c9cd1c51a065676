/* keras_h5.h — Keras HDF5 weights as a named-tensor table (format/wtable.h).
 *
 * Layouts read:
 *  - legacy (Keras 1 and 2 save_weights, and model.save under model_weights/):
 *    root attribute layer_names; each layer group has weight_names, the paths
 *    of its datasets relative to the group, IN ORDER (kernel, bias; gamma,
 *    beta, moving_mean, moving_variance).  Keras 1 files name them
 *    "block1_conv1_W_1:0" flat in the group, Keras 2 "block1_conv1/kernel:0".
 *  - Keras 3 .weights.h5: layers/<name>/vars/0, 1, ... (no weight_names);
 *    nested models under layers/<name>/layers/.
 * Tensors keep the file's shapes (Keras already uses HWIO and [in][out]).   */
#ifndef GRAFT_IO_KERAS_H5_H
#define GRAFT_IO_KERAS_H5_H
#include "format/wtable.h"

/* Fills wf (already holding path) from the HDF5 file; on failure *err names
 * the file and the problem (wf is then closed by the caller).              */
gr_status gr_keras_h5_open(gr_wfile *wf, gr_error *err);

#endif
