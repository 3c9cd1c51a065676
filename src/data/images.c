/* images.c — the one image decoder path: JPEG (libjpeg-turbo), PNG (libpng),
 * BMP (by hand), all to RGB8 [h][w][3]; then PIL-style
 * bilinear resampling and preprocessing (bottom of this file).
 *
 * Library errors never exit: libjpeg's error_exit and libpng's error
 * callback longjmp back here; the message names the file.                 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "data/images.h"
#include "core/core.h"

/* Largest image accepted (a corrupt header must not allocate gigabytes). */
#define MAX_SIDE 32768
#define MAX_PIXELS (1LL << 27)

gr_image_kind gr_image_sniff(const uint8_t *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return GR_IMG_JPEG;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return GR_IMG_PNG;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return GR_IMG_BMP;
    return GR_IMG_NONE;
}

static gr_status grow(gr_bytes *b, size_t need, gr_error *err) {
    if (need <= b->cap) return GR_OK;
    void *p = realloc(b->p, need);
    if (!p) return gr_error_nomem(err, "allocating", (double)need, NULL);
    b->p = p;
    b->cap = need;
    return GR_OK;
}

gr_status gr_file_read_all(const char *path, gr_bytes *buf, size_t *n, gr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    size_t len = 0, want = (!fstat(fileno(f), &sb) && sb.st_size > 0) ? (size_t)sb.st_size + 1 : 65536;
    gr_status st = GR_OK;
    for (;;) {   /* the size from fstat, grown geometrically if the file grows */
        if (len + 1 > buf->cap && (st = grow(buf, len + 1 > want ? 2 * (len + 1) : want, err)) != GR_OK) break;
        size_t got = fread(buf->p + len, 1, buf->cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = gr_error_set(err, GR_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    *n = len;
    return st;
}

/* The size a header declares, checked before anything is allocated for it:
 * the hard limits, then the decoded pixels (up to 4 bytes each: CMYK)
 * against the memory budget.                                              */
static gr_status check_dims(const char *name, long long w, long long h, gr_error *err) {
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: image size %lldx%lld is not supported (at most %d a "
                            "side and %lld pixels)", name, w, h, MAX_SIDE, MAX_PIXELS);
    uint64_t need = (uint64_t)w * (uint64_t)h * 4, budget = gr_memory_budget();
    if (need > budget)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: image size %lldx%lld needs %llu MiB decoded, more than "
                            "the memory budget (%llu MiB; GRAFT_MAX_MEMORY=<MiB> sets it)", name, w, h,
                            (unsigned long long)(need >> 20), (unsigned long long)(budget >> 20));
    return GR_OK;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings that mean the data is truncated or corrupt are errors here (as in
 * PIL without LOAD_TRUNCATED_IMAGES); the rest are ignored silently.       */
static void jpeg_on_message(j_common_ptr c, int level) {
    if (level >= 0) return;
    int code = c->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL) {
        jpeg_on_error(c);
    }
}

static gr_status decode_jpeg(const uint8_t *bytes, size_t n, const char *name, gr_bytes *pix,
                             gr_image *out, gr_error *err) {
    struct jpeg_decompress_struct d;
    jpeg_err e;
    memset(&e, 0, sizeof e);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jpeg_on_error;
    e.pub.emit_message = jpeg_on_message;
    /* Everything below that is read after a longjmp lives in memory (d, e,
     * *pix, *err); no local is modified between setjmp and longjmp.        */
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt JPEG: %s", name, e.msg);
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, bytes, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    /* the declared size is checked before jpeg_start_decompress, which
     * allocates for it (a progressive JPEG: the whole image's coefficients) */
    if (check_dims(name, d.image_width, d.image_height, err) != GR_OK) {
        jpeg_destroy_decompress(&d);
        return GR_ERR_FORMAT;
    }
    bool cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    d.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&d);
    gr_status dst = check_dims(name, d.output_width, d.output_height, err);
    if (d.output_components != (cmyk ? 4 : 3))
        dst = gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: JPEG with %d components", name, d.output_components);
    if (dst != GR_OK) {
        jpeg_destroy_decompress(&d);
        return dst;
    }
    size_t W = d.output_width, H = d.output_height, C = (size_t)d.output_components;
    if (grow(pix, W * H * C, err) != GR_OK) {
        jpeg_destroy_decompress(&d);
        return GR_ERR_NOMEM;
    }
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = pix->p + (size_t)d.output_scanline * W * C;
        jpeg_read_scanlines(&d, &row, 1);
    }
    bool adobe = d.saw_Adobe_marker;
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    if (cmyk) {
        /* Adobe CMYK JPEGs store inverted ink values; then R = c' * k' / 255
         * with c' = 255 - C (PIL's cmyk2rgb on the un-inverted values).    */
        uint8_t *p = pix->p;
        for (size_t i = 0; i < W * H; i++) {
            int c = p[4 * i], m = p[4 * i + 1], y = p[4 * i + 2], k = p[4 * i + 3];
            if (!adobe) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
            p[3 * i] = (uint8_t)((c * k + 127) / 255);
            p[3 * i + 1] = (uint8_t)((m * k + 127) / 255);
            p[3 * i + 2] = (uint8_t)((y * k + 127) / 255);
        }
    }
    out->w = (int)W;
    out->h = (int)H;
    out->data = pix->p;
    return GR_OK;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    jmp_buf jb;
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_on_read(png_structp png, png_bytep dst, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->pos) png_error(png, "truncated file");
    memcpy(dst, c->p + c->pos, len);
    c->pos += len;
}

static gr_status decode_png(const uint8_t *bytes, size_t n, const char *name, gr_bytes *pix,
                            gr_image *out, gr_error *err) {
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.p = bytes;
    c.n = n;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    if (!png) return gr_error_set(err, GR_ERR_NOMEM, "%s: cannot start libpng", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return gr_error_set(err, GR_ERR_NOMEM, "%s: cannot start libpng", name);
    }
    /* png and info are not modified after setjmp. */
    if (setjmp(c.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt PNG: %s", name, c.msg);
    }
    png_set_read_fn(png, &c, png_on_read);
    png_read_info(png, info);
    png_uint_32 W = png_get_image_width(png, info), H = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (check_dims(name, W, H, err) != GR_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return GR_ERR_FORMAT;
    }
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);          /* keep the high byte */
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);                        /* dropped, not composited */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)W * 3) png_error(png, "unexpected row layout");
    if (grow(pix, (size_t)W * H * 3, err) != GR_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return GR_ERR_NOMEM;
    }
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < H; y++) png_read_row(png, pix->p + (size_t)y * W * 3, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    out->w = (int)W;
    out->h = (int)H;
    out->data = pix->p;
    return GR_OK;
}

/* ---------------------------------------------------------------- BMP */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Uncompressed BMP (BITMAPINFOHEADER or later): 8-bit paletted, 24-bit BGR,
 * 32-bit BGRX (BI_RGB or BI_BITFIELDS with the standard masks).           */
static gr_status decode_bmp(const uint8_t *b, size_t n, const char *name, gr_bytes *pix,
                            gr_image *out, gr_error *err) {
    if (n < 14 + 40) return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: truncated header", name);
    uint32_t off = le32(b + 10), hsize = le32(b + 14);
    if (hsize < 40 || hsize > n - 14)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: unsupported BMP header (size %u)", name, hsize);
    int32_t w = (int32_t)le32(b + 18), hh = (int32_t)le32(b + 22);
    int planes = le16(b + 26), bpp = le16(b + 28);
    uint32_t comp = le32(b + 30), ncolors = le32(b + 46);
    bool top_down = hh < 0;
    long long h = top_down ? -(long long)hh : hh;
    if (planes != 1) return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: %d planes", name, planes);
    if (check_dims(name, w, h, err) != GR_OK) return GR_ERR_FORMAT;
    if (bpp != 8 && bpp != 24 && bpp != 32)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: unsupported BMP: %d bits per pixel", name, bpp);
    if (!(comp == 0 || (comp == 3 && bpp == 32)))
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: unsupported BMP compression %u", name, comp);
    if (comp == 3) {
        if (n < 14 + 40 + 12)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: truncated masks", name);
        const uint8_t *mk = b + 54;
        if (le32(mk) != 0xFF0000u || le32(mk + 4) != 0xFF00u || le32(mk + 8) != 0xFFu)
            return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: unsupported BMP bit masks", name);
    }
    const uint8_t *pal = NULL;
    uint32_t npal = 0;
    if (bpp == 8) {
        npal = ncolors ? ncolors : 256;
        if (npal > 256) return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: %u palette colors", name, npal);
        size_t pstart = 14 + (size_t)hsize;
        if (pstart + (size_t)npal * 4 > n)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: truncated palette", name);
        pal = b + pstart;
    }
    size_t stride = (((size_t)w * (size_t)bpp + 31) / 32) * 4;
    if (off > n || stride * (size_t)h > n - off)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt BMP: truncated pixel data (%zu of %zu bytes)",
                            name, off > n ? (size_t)0 : n - off, stride * (size_t)h);
    if (grow(pix, (size_t)w * (size_t)h * 3, err) != GR_OK) return GR_ERR_NOMEM;
    for (long long y = 0; y < h; y++) {
        const uint8_t *src = b + off + stride * (size_t)(top_down ? y : h - 1 - y);
        uint8_t *dst = pix->p + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++) {
            const uint8_t *q;
            if (bpp == 8) {
                static const uint8_t black[4] = {0, 0, 0, 0};
                q = src[x] < npal ? pal + 4 * src[x] : black;   /* out of palette: black */
            } else {
                q = src + (size_t)x * (size_t)(bpp / 8);
            }
            dst[3 * x] = q[2];
            dst[3 * x + 1] = q[1];
            dst[3 * x + 2] = q[0];
        }
    }
    out->w = w;
    out->h = (int)h;
    out->data = pix->p;
    return GR_OK;
}

/* ---------------------------------------------------------------- entry points */

gr_status gr_image_decode_into(const uint8_t *bytes, size_t n, const char *name, gr_bytes *pix,
                               gr_image *out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    switch (gr_image_sniff(bytes, n)) {
    case GR_IMG_JPEG: return decode_jpeg(bytes, n, name, pix, out, err);
    case GR_IMG_PNG: return decode_png(bytes, n, name, pix, out, err);
    case GR_IMG_BMP: return decode_bmp(bytes, n, name, pix, out, err);
    default:
        return gr_error_set(err, GR_ERR_FORMAT, "%s: not a JPEG, PNG or BMP image (%zu bytes)", name, n);
    }
}

gr_status gr_image_decode(const void *bytes, size_t n, const char *name, gr_image *out,
                          gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_bytes pix = {0};
    memset(out, 0, sizeof *out);
    gr_status st = gr_image_decode_into(bytes, n, name ? name : "<memory>", &pix, out, err);
    if (st != GR_OK) {
        free(pix.p);
        memset(out, 0, sizeof *out);
    }
    return st;
}

gr_status gr_image_load(const char *path, gr_image *out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_bytes file = {0};
    size_t n = 0;
    memset(out, 0, sizeof *out);
    gr_status st = gr_file_read_all(path, &file, &n, err);
    if (st == GR_OK) st = gr_image_decode(file.p, n, path, out, err);
    free(file.p);
    return st;
}

void gr_image_free(gr_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ---------------------------------------------------------------- resize */

static gr_status grow_f(float **p, size_t *cap, size_t need, gr_error *err) {
    if (need <= *cap) return GR_OK;
    float *q = realloc(*p, need * sizeof **p);
    if (!q) return gr_error_nomem(err, "allocating", (double)need * sizeof **p, NULL);
    *p = q;
    *cap = need;
    return GR_OK;
}
static gr_status grow_i(int **p, size_t *cap, size_t need, gr_error *err) {
    if (need <= *cap) return GR_OK;
    int *q = realloc(*p, need * sizeof **p);
    if (!q) return gr_error_nomem(err, "allocating", (double)need * sizeof **p, NULL);
    *p = q;
    *cap = need;
    return GR_OK;
}

void gr_resize_scratch_free(gr_resize_scratch *s) {
    free(s->tmp), free(s->kx), free(s->ky), free(s->ix), free(s->iy);
    memset(s, 0, sizeof *s);
}

/* PIL's precompute_coeffs for the triangle filter: output pixel o covers
 * source [b0 + o*scale, b0 + (o+1)*scale) of a source of in pixels; weights
 * k[o][0..len) start at source index idx[2o] (len = idx[2o+1]).  Returns the
 * kernel size (stride of k).                                               */
static int coeffs(int in, double b0, double bsize, int out, float **k, size_t *kcap, int **idx,
                  size_t *icap, gr_error *err) {
    double scale = bsize / out, fs = scale > 1 ? scale : 1.0, support = fs;
    int ksize = (int)ceil(support) * 2 + 1;
    if (grow_f(k, kcap, (size_t)out * ksize, err) != GR_OK || grow_i(idx, icap, (size_t)out * 2, err) != GR_OK) return -1;
    for (int o = 0; o < out; o++) {
        double center = b0 + (o + 0.5) * scale, ss = 1.0 / fs, sum = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int len = hi - lo;
        if (len > ksize) len = ksize;
        double wtmp[len > 0 ? len : 1];
        for (int j = 0; j < len; j++) {
            double t = fabs((j + lo - center + 0.5) * ss);
            wtmp[j] = t < 1 ? 1 - t : 0;
            sum += wtmp[j];
        }
        for (int j = 0; j < len; j++) (*k)[(size_t)o * ksize + j] = (float)(sum != 0 ? wtmp[j] / sum : 0);
        (*idx)[2 * o] = lo;
        (*idx)[2 * o + 1] = len;
    }
    return ksize;
}

/* PIL's bilinear (see coeffs) from the source box (bx, by, bw, bh) of src
 * [h][w][3] to the nw x nh rectangle at (ox, oy) of out [..][ow][3].       */
static gr_status resize_pil(const uint8_t *src, int h, int w, int bx, int by, int bw, int bh, float *out,
                            int ow, int ox, int oy, int nw, int nh, gr_resize_scratch *s, gr_error *err) {
    int kx = coeffs(w, bx, bw, nw, &s->kx, &s->kx_cap, &s->ix, &s->ix_cap, err);
    int ky = coeffs(h, by, bh, nh, &s->ky, &s->ky_cap, &s->iy, &s->iy_cap, err);
    if (kx < 0 || ky < 0) return GR_ERR_NOMEM;
    /* rows the vertical pass reads */
    int y0 = s->iy[0], y1 = s->iy[2 * (nh - 1)] + s->iy[2 * (nh - 1) + 1];
    if (y1 <= y0) y1 = y0 + 1;
    if (grow_f(&s->tmp, &s->tmp_cap, (size_t)(y1 - y0) * nw * 3, err) != GR_OK) return GR_ERR_NOMEM;
    for (int y = y0; y < y1; y++) {          /* horizontal pass -> tmp [y1-y0][nw][3] */
        const uint8_t *r = src + (size_t)y * w * 3;
        float *t = s->tmp + (size_t)(y - y0) * nw * 3;
        for (int o = 0; o < nw; o++) {
            const float *k = s->kx + (size_t)o * kx;
            int lo = s->ix[2 * o], len = s->ix[2 * o + 1];
            float a = 0, b = 0, c = 0;
            for (int j = 0; j < len; j++) {
                const uint8_t *p = r + (size_t)(lo + j) * 3;
                a += k[j] * p[0], b += k[j] * p[1], c += k[j] * p[2];
            }
            t[3 * o] = a, t[3 * o + 1] = b, t[3 * o + 2] = c;
        }
    }
    for (int o = 0; o < nh; o++) {           /* vertical pass -> out */
        const float *k = s->ky + (size_t)o * ky;
        int lo = s->iy[2 * o], len = s->iy[2 * o + 1];
        float *dst = out + ((size_t)(oy + o) * ow + ox) * 3;
        for (int i = 0; i < nw * 3; i++) dst[i] = 0;
        for (int j = 0; j < len; j++) {
            const float *t = s->tmp + (size_t)(lo + j - y0) * nw * 3;
            float kj = k[j];
            for (int i = 0; i < nw * 3; i++) dst[i] += kj * t[i];
        }
    }
    return GR_OK;
}

/* darknet's resize_image, written from its maths: the output grid's corners
 * sit on the source box's corner pixels, so output pixel c samples source
 * x = c * (bw-1)/(nw-1) (float), linearly between its two neighbours; the
 * last column copies the box's last column.  Rows first (into tmp), then
 * columns, where darknet skips the lower neighbour's term on the last row
 * and for a one-row source.  No antialiasing.  Same arguments as resize_pil. */
static gr_status resize_darknet(const uint8_t *src, int w, int bx, int by, int bw, int bh, float *out,
                                int ow, int ox, int oy, int nw, int nh, gr_resize_scratch *s, gr_error *err) {
    if (grow_f(&s->tmp, &s->tmp_cap, (size_t)bh * nw * 3, err) != GR_OK) return GR_ERR_NOMEM;
    float xs = nw > 1 ? (float)(bw - 1) / (float)(nw - 1) : 0.0f;
    float ys = nh > 1 ? (float)(bh - 1) / (float)(nh - 1) : 0.0f;
    for (int y = 0; y < bh; y++) {           /* horizontal pass -> tmp [bh][nw][3] */
        const uint8_t *r = src + ((size_t)(by + y) * w + bx) * 3;
        float *t = s->tmp + (size_t)y * nw * 3;
        for (int c = 0; c < nw; c++) {
            if (c == nw - 1 || bw == 1) {
                for (int k = 0; k < 3; k++) t[3 * c + k] = r[(size_t)(bw - 1) * 3 + k];
                continue;
            }
            float sx = (float)c * xs;
            int ix = (int)sx;
            if (ix > bw - 2) ix = bw - 2;
            float dx = sx - (float)ix;
            for (int k = 0; k < 3; k++)
                t[3 * c + k] = (1 - dx) * r[(size_t)ix * 3 + k] + dx * r[(size_t)(ix + 1) * 3 + k];
        }
    }
    for (int o = 0; o < nh; o++) {           /* vertical pass -> out */
        float sy = (float)o * ys;
        int iy = (int)sy;
        if (iy > bh - 1) iy = bh - 1;
        float dy = sy - (float)iy;
        const float *t0 = s->tmp + (size_t)iy * nw * 3;
        float *dst = out + ((size_t)(oy + o) * ow + ox) * 3;
        for (int i = 0; i < nw * 3; i++) dst[i] = (1 - dy) * t0[i];
        if (o == nh - 1 || bh == 1 || iy + 1 >= bh) continue;
        const float *t1 = t0 + (size_t)nw * 3;
        for (int i = 0; i < nw * 3; i++) dst[i] += dy * t1[i];
    }
    return GR_OK;
}

gr_status gr_resize_rgb8(const uint8_t *src, int h, int w, int oh, int ow, const gr_recipe *rc, float *out,
                         gr_resize_scratch *s, gr_error *err) {
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
        return gr_error_set(err, GR_ERR_ARG, "resize: bad sizes %dx%d -> %dx%d", w, h, ow, oh);
    gr_recipe r = rc ? *rc : (gr_recipe){0};
    int bx = 0, by = 0, bw = w, bh = h;     /* source box */
    int ox = 0, oy = 0, nw = ow, nh = oh;   /* where it goes in out */
    if (r.resize == GR_RESIZE_CENTER_CROP) {
        double f = r.crop > 0 && r.crop < 1 ? r.crop : 1.0;
        int ch = (int)((long long)w * oh / ow), cw = (int)((long long)h * ow / oh);
        if (ch > h) ch = h;
        if (cw > w) cw = w;
        if (f < 1) ch = (int)lround(ch * f), cw = (int)lround(cw * f);
        if (ch < 1) ch = 1;
        if (cw < 1) cw = 1;
        by = (h - ch) / 2, bx = (w - cw) / 2, bh = ch, bw = cw;
    } else if (r.resize == GR_RESIZE_LETTERBOX) {
        /* the side that limits the scale fills the canvas; the other keeps
         * the aspect ratio, in integers, as darknet's letterbox_image does */
        if ((float)ow / w < (float)oh / h) nw = ow, nh = (int)((long long)h * ow / w);
        else nh = oh, nw = (int)((long long)w * oh / h);
        if (nw < 1) nw = 1;
        if (nh < 1) nh = 1;
        ox = (ow - nw) / 2, oy = (oh - nh) / 2;
        if (nw != ow || nh != oh)
            for (size_t i = 0; i < (size_t)oh * ow * 3; i++) out[i] = 127.5f;   /* darknet's 0.5 gray */
    }
    if (bw == nw && bh == nh) {             /* same size: exact copy of the box */
        for (int y = 0; y < nh; y++) {
            const uint8_t *row = src + ((size_t)(by + y) * w + bx) * 3;
            float *o = out + ((size_t)(oy + y) * ow + ox) * 3;
            for (int i = 0; i < nw * 3; i++) o[i] = row[i];
        }
        return GR_OK;
    }
    if (r.interp == GR_INTERP_DARKNET) return resize_darknet(src, w, bx, by, bw, bh, out, ow, ox, oy, nw, nh, s, err);
    return resize_pil(src, h, w, bx, by, bw, bh, out, ow, ox, oy, nw, nh, s, err);
}

gr_status gr_image_resize_recipe(const gr_image *img, int oh, int ow, const gr_recipe *r, float *out,
                                 gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_resize_scratch s = {0};
    gr_status st = gr_resize_rgb8(img->data, img->h, img->w, oh, ow, r, out, &s, err);
    gr_resize_scratch_free(&s);
    return st;
}

gr_status gr_image_resize(const gr_image *img, int oh, int ow, gr_resize_mode fit, float *out,
                          gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return gr_image_resize_recipe(img, oh, ow, &(gr_recipe){.resize = fit}, out, err);
}

/* y[c] = (x[src(c)] / scale - mean[c]) / std[c].  The divisions are kept
 * as written (not multiplications by reciprocals): torchvision's ToTensor
 * (x/255) then Normalize ((x - mean)/std) give these same bits.  Operations
 * that are the identity (x/1, x-0) are exact, so the loops below that skip
 * them give the same bits as the general one (caffe's is its former loop;
 * the general one does 4 floats at a time, faster than the former per-mode
 * loops of torch, tf and darknet).                                        */
typedef float gr_v4 __attribute__((vector_size(16)));
void gr_norm_apply(const gr_norm *nm, float *x, size_t n) {
    gr_norm r = gr_norm_resolved(nm);
    const float sc = r.scale, m0 = r.mean[0], m1 = r.mean[1], m2 = r.mean[2];
    const bool std1 = r.std[0] == 1 && r.std[1] == 1 && r.std[2] == 1;
    if (r.bgr && sc == 1 && std1) {   /* caffe's form */
        for (size_t i = 0; i < n; i++, x += 3) {
            float red = x[0], blue = x[2];
            x[0] = blue - m0, x[1] -= m1, x[2] = red - m2;
        }
        return;
    }
    if (!r.bgr && std1 && sc == 1 && m0 == 0 && m1 == 0 && m2 == 0) return;   /* none */
    /* the general form, 4 pixels (3 vectors of 4 floats, the per-channel
     * constants repeated) at a time: SSE2 divides 4 floats at once */
    if (r.bgr)
        for (size_t i = 0; i < n; i++) {
            float t = x[3 * i];
            x[3 * i] = x[3 * i + 2], x[3 * i + 2] = t;
        }
    float mk[12], sk[12];
    for (int j = 0; j < 12; j++) mk[j] = r.mean[j % 3], sk[j] = r.std[j % 3];
    gr_v4 vs = {sc, sc, sc, sc}, vm[3], vd[3];
    memcpy(vm, mk, sizeof vm);
    memcpy(vd, sk, sizeof vd);
    size_t total = 3 * n, blocks = total / 12 * 12;
    for (size_t i = 0; i < blocks; i += 12) {
        gr_v4 v[3];
        memcpy(v, x + i, sizeof v);
        for (int k = 0; k < 3; k++) v[k] = (v[k] / vs - vm[k]) / vd[k];
        memcpy(x + i, v, sizeof v);
    }
    for (size_t i = blocks; i < total; i++) x[i] = (x[i] / sc - mk[i % 3]) / sk[i % 3];
}

void gr_preprocess_apply(gr_preprocess p, float *x, size_t n) {
    gr_norm nm = gr_norm_preset(p);
    gr_norm_apply(&nm, x, n);
}
