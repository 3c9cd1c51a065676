/* darknet.h — darknet networks: .cfg reading (gr_darknet_load_cfg in graft.h)
 * and .weights loading.
 *
 * How a darknet network maps onto graft nodes (darknet layer i = the i-th
 * section after [net], counting every section, [cost] and [dropout] too):
 *   [convolutional] batch_normalize=1 -> "i/conv" (no bias), "i/bn", then an
 *                   activation node "i" (when linear, the BN node is "i")
 *   [convolutional] without BN        -> conv with bias + fused activation "i"
 *   [connected]                       -> "i/flatten" when its input is not 1x1,
 *                   then dense "i" (or "i/dense", "i/bn", "i" with BN)
 *   [maxpool] "i" (darknet's window rule: explicit pads + forced out size),
 *   [avgpool] global average "i", [softmax] "i" (after "i/flatten" if not
 *   1x1: same values as darknet, listed in HWC order, darknet lists CHW),
 *   [dropout] "i", [shortcut] add "i" (fused activation; when the shapes
 *   differ, darknet's strided / fewer-channels add goes through a fixed 1x1
 *   conv "i/shortcut" holding an identity kernel, not read from the file),
 *   [route]
 *   concat "i", [crop] (first layer only) -> standardize "i" computing 2x-1
 *   (darknet's test-time crop rescales unless noadjust=1; the model input is
 *   the crop size), [cost] -> no node (layer i's output is its input).
 * So a cut at "18" keeps what `darknet partial cfg weights out 19` keeps.   */
#ifndef GRAFT_MODELS_DARKNET_H
#define GRAFT_MODELS_DARKNET_H
#include "graft.h"

/* Batch-norm epsilon of the BN nodes made from darknet layers.  Darknet (CPU)
 * normalizes with (x - mean) / (sqrt(var) + 1e-6); the weights reader stores
 * moving_variance = (sqrt(var) + 1e-6)^2 - GR_DARKNET_BN_EPS so that graft's
 * (x - mean) / sqrt(moving_variance + eps) gives darknet's numbers (exactly
 * for var >= ~1e-9; smaller variances are clamped to 0).                    */
#define GR_DARKNET_BN_EPS 1e-9f

/* Loads a darknet .weights file into a model built by gr_darknet_load_cfg.
 * Fills rep (may be NULL) like gr_model_load_weights.
 * Format: int32 major, minor, revision, then `seen` (uint64 when
 * major*10+minor >= 2, else uint32); then for every conv / connected layer in
 * order: biases (BN beta), [BN: gamma, rolling mean, rolling variance],
 * kernel [out][in/groups][kh][kw] (-> HWIO).  Connected: biases, weights
 * [out][in] in darknet's CHW flatten order (permuted here to graft's HWC
 * flatten order, -> [in][out]), then BN.  Errors: a short header, an
 * unsupported version, a file that runs out (naming the layer).  Data left
 * after the model's last layer is NOT an error (a cut model reads a prefix,
 * as darknet does): it is warned about and noted in rep.  NaN/Inf values are
 * warned about.                                                             */
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
