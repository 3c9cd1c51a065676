/* onnx.h — ONNX model files, read with protobuf-c (the reader is generated at
 * build time from Debian's /usr/include/onnx/onnx.proto into $(B)/gen; see
 * the Makefile), and their tensors as float32 / int64.
 *
 * gr_onnx_open reads the whole file (its size checked against the memory
 * budget first), unpacks it, and checks the opset (11..18 of the default
 * domain) and that a graph is there.  Tensors are read by
 * gr_onnx_tensor_floats / _ints: data in raw_data (little-endian), in the
 * typed fields (float_data, int32_data, int64_data, double_data), or in an
 * external file (data_location = EXTERNAL: "location" relative to the
 * model's folder, which it must stay inside, "offset", "length").  Every
 * element count is checked against the bytes that hold it before anything
 * is allocated, so a dims claim of 2^40 values is an error, never an
 * allocation.  The graph builder is src/format/onnx_net.c.                 */
#ifndef GRAFT_FORMAT_ONNX_H
#define GRAFT_FORMAT_ONNX_H
#include <stdint.h>
#include "graft.h"
#include "onnx.pb-c.h"

#define GR_ONNX_OPSET_MIN 11
#define GR_ONNX_OPSET_MAX 18
#define GR_ONNX_MAX_RANK 8

typedef struct {
    char *path;               /* as given (owned) */
    char *dir;                /* the model's folder, resolved (owned): external data stays inside */
    Onnx__ModelProto *pb;     /* the unpacked model (protobuf-c) */
    int64_t opset;            /* of the default domain */
    uint64_t file_size;
} gr_onnx_file;

gr_onnx_file *gr_onnx_open(const char *path, gr_error *err);
void gr_onnx_close(gr_onnx_file *f);

/* "FLOAT", "INT64", "FLOAT16", ... ("type N" for unknown codes; buf >= 16). */
const char *gr_onnx_dtype_name(int dtype, char *buf, size_t cap);

/* Number of values of t (product of dims; 1 for a scalar) after checking
 * every dim is >= 0 and the product fits in the data present (raw bytes,
 * typed field or external file).  GR_ERR_FORMAT naming the tensor else.   */
gr_status gr_onnx_tensor_count(const gr_onnx_file *f, const Onnx__TensorProto *t, int64_t *n, gr_error *err);

/* The n values of t (n from gr_onnx_tensor_count) as float32: FLOAT,
 * FLOAT16 (converted), DOUBLE, and the integer types; other dtypes (BFLOAT16,
 * STRING, COMPLEX...) are GR_ERR_UNSUPPORTED naming the dtype.           */
gr_status gr_onnx_tensor_floats(const gr_onnx_file *f, const Onnx__TensorProto *t, float *dst, int64_t n,
                                gr_error *err);
/* The same as int64 (integer types and BOOL; floats truncated toward zero). */
gr_status gr_onnx_tensor_ints(const gr_onnx_file *f, const Onnx__TensorProto *t, int64_t *dst, int64_t n,
                              gr_error *err);

/* double -> int64 without undefined behaviour: truncated toward zero,
 * saturated at the int64 range, NaN -> 0.                                 */
static inline int64_t gr_onnx_f2i(double v) {
    if (!(v == v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

/* a * b for non-negative a, b, saturated at 2^62 (no overflow). */
static inline int64_t gr_onnx_smul(int64_t a, int64_t b) {
    const int64_t cap = (int64_t)1 << 62;
    if (a < 0 || b < 0) return -1;
    return a && b > cap / a ? cap : a * b;
}

/* IEEE half -> float (subnormals, infinities and NaN kept). */
float gr_half_to_float(uint16_t h);

#endif
