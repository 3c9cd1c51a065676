/* bind.h — the one binder: assigns a named-tensor table (wtable.h) to a
 * model.  Every weights format goes through it (weights.c: Keras .h5 and
 * safetensors; darknet_weights.c; tflite_net.c; model_file.c).
 *
 * gr_bind matches the table's layers to the model's weighted layers by name
 * (graft, Keras 1/2/3 and torchvision names as the readers give them), or,
 * when no name matches and opts->by_order, by order (Keras' rule for legacy
 * files; every shape must agree).  Inside a layer, tensors go by kind when
 * the file names it, else by Keras' order (kernel, bias; gamma, beta,
 * moving_mean, moving_variance; mean, std).  Every shape is checked; stored
 * layouts are converted (OIHW/OHWI -> HWIO, [out][in] -> [in][out], CHW ->
 * HWC flatten order); NaN/Inf values are warned about.  The tensors are read
 * into a staging copy and the model changes only when all of them loaded.
 * Strict (opts->partial false): every weighted model layer must get its
 * weights, else GR_ERR_SHAPE naming the file, the count and the first layer
 * without.  Partial: those keep theirs and are listed in rep.             */
#ifndef GRAFT_FORMAT_BIND_H
#define GRAFT_FORMAT_BIND_H
#include "graph/model.h"
#include "format/wtable.h"

typedef struct {
    bool partial;        /* model layers without weights in the table keep theirs */
    bool by_order;       /* no name matches: match by order when every shape agrees */
} gr_bind_opts;

/* Binds wf to m; fills rep (may be NULL).  err must not be NULL. */
gr_status gr_bind(gr_model *m, gr_wfile *wf, const gr_bind_opts *opts, gr_load_report *rep, gr_error *err);

/* The graft model file's binding: every parameter by its full tensor name
 * ("<layer>/<kind>"), exact shapes, no tensor left over (but names starting
 * "__": optimizer state and the like).  Reads straight into m (a model just
 * built, freed by the caller on failure).  err must not be NULL.          */
gr_status gr_bind_exact(gr_model *m, gr_wfile *wf, gr_error *err);

#endif
