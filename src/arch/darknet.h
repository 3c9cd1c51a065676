/* darknet.h — darknet networks: .cfg reading (gr_darknet_load_cfg in graft.h);
 * their .weights files are read by format/darknet_weights.h.
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

#endif
