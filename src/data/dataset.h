/* dataset.h — the inside of gr_dataset, shared by dataset.c (open, folders,
 * CSV, split), cifar.c (CIFAR-10/100 loaders) and batcher.c (prefetch).    */
#ifndef GRAFT_IO_DATASET_H
#define GRAFT_IO_DATASET_H
#include "graft.h"
#include "data/images.h"
#include "core/core.h"

struct gr_dataset {
    char source[512];          /* the path opened (for messages) */
    int n;                     /* samples */
    int n_classes;
    int *labels;               /* [n] in 0..n_classes-1 */
    char **class_names;        /* [n_classes], owned */
    int h, w;                  /* a sample's size (after resizing) */
    gr_resize_mode fit;
    gr_norm norm;        /* the normalization (checked, defaults resolved) */
    gr_interp interp;
    float crop;
    /* in-memory images (CIFAR): [n][ih][iw][3] RGB8, owned */
    uint8_t *pixels;
    int ih, iw;
    /* files (folders, CSV), decoded on demand: [n] owned paths */
    char **paths;
    int skipped, ignored;
};

/* Per-thread buffers for loading samples (grown, reused; no per-sample malloc). */
typedef struct {
    gr_bytes file, pix;
    gr_resize_scratch rs;
} gr_sample_scratch;

void gr_sample_scratch_free(gr_sample_scratch *s);

/* The box [y0, y0+ch) x [x0, x0+cw) of in [h][w][3] resized to out
 * [h][w][3] bilinearly, half-pixel centres, edges clamped inside the box
 * (a crop, then PyTorch's interpolate(bilinear, align_corners=False)).    */
void gr_resized_crop(const float *in, int h, int w, int y0, int x0, int ch, int cw, float *out);
/* Draws random-resized-crop's box for an h x w image (scale U[smin, 1] of
 * the area, aspect ratio log-uniform in [3/4, 4/3]; 10 tries, then the
 * whole image), as torchvision's RandomResizedCrop.get_params.           */
void gr_rrc_box(int h, int w, float smin, gr_rng *r, int *y0, int *x0, int *ch, int *cw);

/* The pad-and-crop and flip augmentation's draws for sample i in pass
 * `epoch` of a batcher seeded `seed` (gr_batcher_opts.seed, .pad, .hflip):
 * the crop's offset (oy, ox) in [0, 2 pad] and the flip, as the batcher
 * draws them (the cached prefix, train/fit.c, draws the same).           */
void gr_augment_draw(uint64_t seed, int epoch, int i, int pad, bool hflip, int *oy, int *ox, bool *flip);

/* Sample i resized to out [ds->h][ds->w][3] float 0..255, RGB, not yet
 * preprocessed.  Errors name the file (and record).                      */
gr_status gr_dataset_load_resized(const gr_dataset *ds, int i, float *out, gr_sample_scratch *s,
                                  gr_error *err);

/* cifar.c: fills ds->n, labels, class_names, pixels (32x32), n_classes from
 * a CIFAR-10/100 directory, single .bin or .tar.gz at path.  fmt is
 * GR_DATA_CIFAR10, GR_DATA_CIFAR100 or GR_DATA_AUTO (decided from names
 * and sizes); *fmt_out is what was loaded.                                */
gr_status gr_cifar_load(gr_dataset *ds, const char *path, gr_data_format fmt, gr_split split,
                        gr_label_kind lk, gr_data_format *fmt_out, gr_error *err);

/* True when path looks like CIFAR (a .bin / .tar.gz / .tgz file, or a
 * directory holding CIFAR batch files or a cifar-1*-b* subdirectory).     */
bool gr_cifar_detect(const char *path);

/* Every JPEG/PNG/BMP file (by magic) under dir, recursively, skipping names
 * that start with '.', sorted bytewise by path ("dir/a/x.png" form).
 * *paths (n strings) is owned by the caller (free each, then the array);
 * *ignored counts the other files.                                        */
gr_status gr_image_list(const char *dir, char ***paths, int *n, int *ignored, gr_error *err);

#endif
