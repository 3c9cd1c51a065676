/* darknet_weights.h — darknet .weights files, for models built by
 * gr_darknet_load_cfg (node mapping: arch/darknet.h).
 *
 * A .weights file holds no names and no shapes: int32 major, minor,
 * revision, then `seen` (uint64 when major*10+minor >= 2, else uint32); then
 * for every conv / connected layer in order: biases (BN beta), [BN: gamma,
 * rolling mean, rolling variance], kernel [out][in/groups][kh][kw] (-> HWIO).
 * Connected: biases, weights [out][in] in darknet's CHW flatten order
 * (permuted to graft's HWC flatten order, -> [in][out]), then BN.  So the
 * reader walks the MODEL's darknet layers in order to lay out the file as a
 * named-tensor table (names "<node>/<kind>", file offsets, stored shapes),
 * and the binder (bind.h) loads it like any other table.                   */
#ifndef GRAFT_FORMAT_DARKNET_WEIGHTS_H
#define GRAFT_FORMAT_DARKNET_WEIGHTS_H
#include "graft.h"

/* Loads a darknet .weights file into a model built by gr_darknet_load_cfg.
 * Fills rep (may be NULL) like gr_model_load_weights; err may be NULL.
 * Errors: a short header, an unsupported version, a file that runs out
 * (naming the layer).  Data left after the model's last layer is NOT an
 * error (a cut model reads a prefix, as darknet does): it is warned about
 * and noted in rep.  NaN/Inf values are warned about.                      */
gr_status gr_darknet_load_weights(gr_model *m, const char *path, gr_load_report *rep, gr_error *err);
/* The same; partial = false: every weighted layer of the model must be a
 * darknet layer read from the file (else GR_ERR_SHAPE naming the file, the
 * count loaded of the total, and the first layer not loaded: e.g. a darknet
 * .weights file given for vgg16).  partial = true: layers that are not
 * darknet layers, and the layers after the file's end when it ends exactly
 * between two layers, keep their weights and are listed in rep.           */
gr_status gr_darknet_load_weights_ex(gr_model *m, const char *path, bool partial, gr_load_report *rep,
                                     gr_error *err);

#endif
