/* test_limits.c — sizes read from files are checked before anything is
 * allocated (issue 15, "limits before allocation"): each absurd size is an
 * error naming the file and the field, never an out-of-memory kill.
 *
 *   - a model input of 100000x100000 (gr_model_new, a model file, a cfg)
 *   - a graft model file with zero layers, with 16384x16384x4096
 *   - a cfg layer whose parameters exceed the memory budget (GRAFT_MAX_MEMORY)
 *   - kernel / stride / padding sizes out of range
 *   - a 1 KB PNG declaring 50000x50000 (decompression bomb)
 *   - a tar.gz whose entry expands past the budget (decompression bomb)
 * Hand-made files; the expected outcome of each is stated, not computed.  */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/safetensors.h"

/* err must be set with code and a message holding each of a, b (may be NULL). */
#define CHECK_ERR(err, want_code, a, b)                                                            \
    CHECK((err).code == (want_code) && strstr((err).msg, (a)) && (!(b) || strstr((err).msg, (b))), \
          "got %s: '%s' (want %s naming '%s'%s%s)", gr_status_name((err).code), (err).msg,        \
          gr_status_name(want_code), (a), (b) ? " and " : "", (b) ? (const char *)(b) : "")

static void test_model_input_limit(void) {
    gr_error err = {0};
    CHECK(gr_model_new(100000, 100000, 3, &err) == NULL, "100000x100000 accepted");
    CHECK_ERR(err, GR_ERR_ARG, "100000x100000x3", "limit");
    memset(&err, 0, sizeof err);
    gr_model *m = gr_model_new(224, 224, 3, &err);   /* a normal size still works */
    CHECK(m != NULL, "%s", err.msg);
    gr_model_free(m);
}

/* A graft model file holding only metadata: the architecture JSON given. */
static const char *model_file(const char *name, const char *arch) {
    const char *p = check_tmp(name);
    const char *meta[] = {"graft.format", "graft-model-1", "graft.architecture", arch};
    gr_error err = {0};
    if (gr_st_write(p, NULL, 0, meta, 2, &err) != GR_OK) fprintf(stderr, "%s\n", err.msg);
    return p;
}

static void test_model_file_limits(void) {
    gr_error err = {0};
    const char *p = model_file("huge_in.gft", "{\"input\": [100000, 100000, 3], \"layers\": "
                                              "[{\"name\": \"gap\", \"op\": \"global_average_pooling2d\"}]}");
    CHECK(gr_model_load(p, &err) == NULL, "a 100000x100000 input accepted");
    CHECK_ERR(err, GR_ERR_FORMAT, p, "100000x100000");
    memset(&err, 0, sizeof err);
    p = model_file("wide_in.gft", "{\"input\": [16384, 16384, 4096], \"layers\": "
                                  "[{\"name\": \"gap\", \"op\": \"global_average_pooling2d\"}]}");
    CHECK(gr_model_load(p, &err) == NULL, "a 16384x16384x4096 input accepted");
    CHECK(err.code != GR_OK && strstr(err.msg, p) && strstr(err.msg, "16384x16384x4096"), "%s", err.msg);
    memset(&err, 0, sizeof err);
    p = model_file("no_layers.gft", "{\"input\": [32, 32, 3], \"layers\": []}");
    CHECK(gr_model_load(p, &err) == NULL, "a model with zero layers accepted");
    CHECK_ERR(err, GR_ERR_FORMAT, p, "no layers");
    memset(&err, 0, sizeof err);
    /* a dense layer of 2^20 x 2^20 weights: refused before allocating 4 TB */
    p = model_file("huge_dense.gft", "{\"input\": [1024, 1024, 1], \"layers\": [{\"name\": \"f\", \"op\": "
                                     "\"flatten\"}, {\"name\": \"big\", \"op\": \"dense\", \"units\": 1048576}]}");
    CHECK(gr_model_load(p, &err) == NULL, "a 4 TB dense layer accepted");
    CHECK_ERR(err, GR_ERR_SHAPE, p, "'big'");
    CHECK(strstr(err.msg, "memory budget") != NULL, "%s", err.msg);
}

static void test_cfg_limits(void) {
    gr_error err = {0};
    const char *p = check_tmp("huge_in.cfg");
    check_write_text(p, "[net]\nheight=100000\nwidth=100000\nchannels=3\n\n[avgpool]\n");
    CHECK(gr_darknet_load_cfg(p, 0, 0, &err) == NULL, "a 100000x100000 cfg accepted");
    CHECK_ERR(err, GR_ERR_ARG, p, "100000x100000x3");
    /* 3x3x4096x100000 floats = 15 GB of parameters against a 64 MiB budget */
    memset(&err, 0, sizeof err);
    p = check_tmp("huge_filters.cfg");
    check_write_text(p, "[net]\nheight=8\nwidth=8\nchannels=4096\n\n[convolutional]\nfilters=100000\nsize=3\n"
                  "stride=1\npad=1\nactivation=leaky\n");
    setenv("GRAFT_MAX_MEMORY", "64", 1);
    CHECK(gr_memory_budget() == (uint64_t)64 << 20, "GRAFT_MAX_MEMORY=64: budget %llu",
          (unsigned long long)gr_memory_budget());
    CHECK(gr_darknet_load_cfg(p, 0, 0, &err) == NULL, "15 GB of filters accepted");
    CHECK_ERR(err, GR_ERR_SHAPE, p, "memory budget");
    unsetenv("GRAFT_MAX_MEMORY");
    /* a kernel of 10^9 pixels a side */
    memset(&err, 0, sizeof err);
    p = check_tmp("huge_kernel.cfg");
    check_write_text(p, "[net]\nheight=8\nwidth=8\nchannels=3\n\n[maxpool]\nsize=1000000000\nstride=1\n");
    CHECK(gr_darknet_load_cfg(p, 0, 0, &err) == NULL, "a 10^9 pool accepted");
    CHECK_ERR(err, GR_ERR_SHAPE, p, "out of range");
}

static void put32be(uint8_t *p, uint32_t v) { p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = (uint8_t)v; }

/* A PNG chunk: length, type, data, CRC over type + data. */
static size_t chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n) {
    put32be(out, n);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    put32be(out + 8 + n, (uint32_t)crc32(0, out + 4, 4 + n));
    return 12 + n;
}

/* A PNG of < 1 KB declaring w x h RGB8: IHDR, a few hundred bytes of IDAT
 * (64 KB of zeros), IEND.  Returns its size (0 on a harness failure).      */
static size_t png_bomb(uint8_t png[1024], uint32_t w, uint32_t h) {
    uint8_t ihdr[13] = {0}, idat[600];
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(png, sig, 8);
    n = 8;
    put32be(ihdr, w);
    put32be(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = 2;
    n += chunk(png + n, "IHDR", ihdr, 13);
    static const uint8_t zeros[65536] = {0};
    uLongf zn = sizeof idat;
    if (compress2(idat, &zn, zeros, sizeof zeros, 9) != Z_OK) return 0;
    n += chunk(png + n, "IDAT", idat, (uint32_t)zn);
    n += chunk(png + n, "IEND", NULL, 0);
    return n;
}

static void test_png_bomb(void) {
    uint8_t png[1024];
    size_t n = png_bomb(png, 50000, 50000);
    CHECK(n > 0 && n <= 1024, "the bomb is %zu bytes", n);
    gr_image img = {0};
    gr_error err = {0};
    CHECK(gr_image_decode(png, n, "bomb.png", &img, &err) == GR_ERR_FORMAT, "decoded: %dx%d", img.w, img.h);
    CHECK_ERR(err, GR_ERR_FORMAT, "bomb.png", "50000x50000");
    gr_image_free(&img);
    /* 8192x8192 is within the hard limits, but its 256 MiB of decoded
     * pixels are past a 64 MiB budget: refused before decoding */
    n = png_bomb(png, 8192, 8192);
    setenv("GRAFT_MAX_MEMORY", "64", 1);
    memset(&err, 0, sizeof err);
    CHECK(gr_image_decode(png, n, "big.png", &img, &err) == GR_ERR_FORMAT, "decoded: %dx%d", img.w, img.h);
    CHECK_ERR(err, GR_ERR_FORMAT, "big.png", "memory budget");
    CHECK(strstr(err.msg, "8192x8192") != NULL, "%s", err.msg);
    unsetenv("GRAFT_MAX_MEMORY");
    gr_image_free(&img);
}

/* A ustar header for one regular file of `size` bytes. */
static void tar_header(uint8_t h[512], const char *name, uint64_t size) {
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "0000644");
    snprintf((char *)h + 108, 8, "0000000");
    snprintf((char *)h + 116, 8, "0000000");
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf((char *)h + 136, 12, "%011o", 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static void test_targz_bomb(void) {
    /* data_batch_1.bin of 256 MiB of zeros: a ~250 KB .tar.gz */
    const char *p = check_tmp("bomb.tar.gz");
    gzFile gz = gzopen(p, "wb9");
    CHECK(gz != NULL, "gzopen");
    if (!gz) return;
    uint8_t h[512];
    uint64_t size = (uint64_t)256 << 20;
    tar_header(h, "cifar-10-batches-bin/data_batch_1.bin", size);
    gzwrite(gz, h, 512);
    static uint8_t zeros[1 << 16];
    for (uint64_t k = 0; k < size / sizeof zeros; k++) gzwrite(gz, zeros, sizeof zeros);
    memset(h, 0, 512);
    gzwrite(gz, h, 512);
    gzwrite(gz, h, 512);
    CHECK(gzclose(gz) == Z_OK, "gzclose");
    setenv("GRAFT_MAX_MEMORY", "64", 1);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){.format = GR_DATA_CIFAR10}, &err);
    CHECK(ds == NULL, "a 256 MiB entry accepted with a 64 MiB budget");
    CHECK_ERR(err, GR_ERR_FORMAT, p, "memory budget");
    gr_dataset_free(ds);
    unsetenv("GRAFT_MAX_MEMORY");
}

int main(void) {
    if (check_tmp_open("limits")) return 1;
    RUN(test_model_input_limit);
    RUN(test_model_file_limits);
    RUN(test_cfg_limits);
    RUN(test_png_bomb);
    RUN(test_targz_bomb);
    check_tmp_close();
    return check_summary();
}
