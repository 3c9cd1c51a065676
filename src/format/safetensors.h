/* safetensors.h — reading and writing the safetensors layout.
 *
 * File = u64 little-endian header length N, N bytes of JSON, then the raw
 * tensor bytes (little-endian, row-major).  The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (byte offsets
 * into the data that follows the header); the optional key "__metadata__"
 * maps strings to strings.  The reader checks every size and offset against
 * the file before reading a byte of data; the writer writes atomically (a
 * temporary file in the same directory, fsync, rename).                      */
#ifndef GRAFT_IO_SAFETENSORS_H
#define GRAFT_IO_SAFETENSORS_H
#include <stdint.h>
#include <stdio.h>
#include "graft.h"

#define GR_ST_MAX_DIMS 8

typedef struct {
    char *name;
    char dtype[8];            /* "F32", "F16", "BF16", "F64", "I64", ... */
    int ndim;
    int64_t shape[GR_ST_MAX_DIMS];
    uint64_t begin, end;      /* byte range within the data section */
} gr_st_tensor;

typedef struct {
    char *path;
    FILE *f;
    uint64_t data_start;      /* 8 + header length */
    uint64_t data_size;       /* file size - data_start */
    int n;                    /* tensors, in header order */
    gr_st_tensor *t;
    int n_meta;               /* "__metadata__" pairs */
    char **meta_key, **meta_val;
} gr_st_file;

/* Bytes per element of a dtype name, 0 if unknown. */
int gr_st_dtype_size(const char *dtype);

/* Opens and validates a safetensors file (header only).  NULL + *err on failure. */
gr_st_file *gr_st_open(const char *path, gr_error *err);
void gr_st_close(gr_st_file *sf);
/* Index of the tensor called name, or -1. */
int gr_st_find(const gr_st_file *sf, const char *name);
/* Value of a metadata key, or NULL. */
const char *gr_st_meta(const gr_st_file *sf, const char *key);
/* Element count of tensor i. */
int64_t gr_st_count(const gr_st_file *sf, int i);
/* Reads tensor i converted to float32 into out (count floats, which must be
 * the tensor's element count).  Converts F16, BF16, F64; other dtypes fail. */
gr_status gr_st_read_f32(gr_st_file *sf, int i, float *out, int64_t count, gr_error *err);
/* Reads tensor i's raw bytes (end - begin of them) into out. */
gr_status gr_st_read_raw(gr_st_file *sf, int i, void *out, gr_error *err);

/* One tensor to write: data holds nbytes = count * dtype size bytes (LE). */
typedef struct {
    const char *name;
    const char *dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} gr_st_entry;

/* Writes n tensors (in this order) and n_meta metadata pairs (meta[2k] =
 * key, meta[2k+1] = value; may be 0/NULL) to path, atomically: path is
 * either left as it was or replaced by the complete file.                   */
gr_status gr_st_write(const char *path, const gr_st_entry *t, int n, const char *const *meta,
                      int n_meta, gr_error *err);

#endif
