/* images.h — image decoding and resizing internals (the public side is the
 * "datasets" block of graft.h: gr_image_load, gr_image_resize, ...).
 *
 * These variants reuse caller-owned buffers so that the batcher's worker
 * threads do not allocate per image in the steady state.                   */
#ifndef GRAFT_IO_IMAGES_H
#define GRAFT_IO_IMAGES_H
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

typedef enum { GR_IMG_NONE = 0, GR_IMG_JPEG, GR_IMG_PNG, GR_IMG_BMP } gr_image_kind;

/* The kind of image the first n bytes announce (magic bytes, never the name). */
gr_image_kind gr_image_sniff(const uint8_t *b, size_t n);

/* A growable byte buffer (owned; free with free(buf->p)). */
typedef struct {
    uint8_t *p;
    size_t cap;
} gr_bytes;

/* Reads the whole file at path into buf (grown as needed); *n = its size. */
gr_status gr_file_read_all(const char *path, gr_bytes *buf, size_t *n, gr_error *err);

/* Decodes n bytes (JPEG, PNG or BMP, by magic) to RGB8.  The pixels go to
 * pix (grown as needed); out->data points into pix->p (not owned by out).
 * name is used in error messages only.                                     */
gr_status gr_image_decode_into(const uint8_t *bytes, size_t n, const char *name,
                               gr_bytes *pix, gr_image *out, gr_error *err);

/* Scratch for gr_resize_rgb8 (coefficient tables, the intermediate rows). */
typedef struct {
    float *tmp;  size_t tmp_cap;   /* floats */
    float *kx;   size_t kx_cap;    /* floats */
    float *ky;   size_t ky_cap;
    int *ix;     size_t ix_cap;    /* ints: start, len per output pixel */
    int *iy;     size_t iy_cap;
} gr_resize_scratch;

void gr_resize_scratch_free(gr_resize_scratch *s);

/* src [h][w][3] RGB8 -> out [oh][ow][3] float 0..255 (see gr_image_resize). */
/* The recipe's resize, interpolation and crop are used (NULL: stretch,
 * PIL bilinear); its normalization is not applied.                        */
gr_status gr_resize_rgb8(const uint8_t *src, int h, int w, int oh, int ow, const gr_recipe *r,
                         float *out, gr_resize_scratch *s, gr_error *err);

#endif
