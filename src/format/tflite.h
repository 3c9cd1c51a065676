/* tflite.h — a small reader for TFLite flatbuffers (the subset of the schema
 * graft needs to rebuild a CNN): Model -> subgraph 0 -> tensors (shape, type,
 * buffer, name, quantization: scale / zero_point, per-tensor or per-axis),
 * operators (builtin code via operator_codes, inputs, outputs, builtin
 * options) and buffers.  The file is read whole; every offset and length is
 * checked against its size, so a truncated or corrupt file is an error
 * naming the file, never a crash.  Field numbers follow TFLite's schema.fbs. */
#ifndef GRAFT_IO_TFLITE_H
#define GRAFT_IO_TFLITE_H
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

/* TensorType values graft reads. */
enum { GR_TFL_FLOAT32 = 0, GR_TFL_INT32 = 2, GR_TFL_UINT8 = 3, GR_TFL_INT64 = 4, GR_TFL_INT8 = 9 };

/* BuiltinOperator codes graft maps (the others are named in errors only). */
enum {
    GR_TFL_ADD = 0, GR_TFL_AVERAGE_POOL_2D = 1, GR_TFL_CONCATENATION = 2, GR_TFL_CONV_2D = 3,
    GR_TFL_DEPTHWISE_CONV_2D = 4, GR_TFL_DEQUANTIZE = 6, GR_TFL_FULLY_CONNECTED = 9,
    GR_TFL_LOGISTIC = 14, GR_TFL_MAX_POOL_2D = 17, GR_TFL_RELU = 19, GR_TFL_RELU6 = 21,
    GR_TFL_RESHAPE = 22, GR_TFL_SOFTMAX = 25, GR_TFL_CUSTOM = 32, GR_TFL_MEAN = 40,
    GR_TFL_SQUEEZE = 43, GR_TFL_QUANTIZE = 113
};

/* ActivationFunctionType / Padding values. */
enum { GR_TFL_ACT_NONE = 0, GR_TFL_ACT_RELU = 1, GR_TFL_ACT_RELU_N1_TO_1 = 2, GR_TFL_ACT_RELU6 = 3,
       GR_TFL_ACT_TANH = 4 };
enum { GR_TFL_PAD_SAME = 0, GR_TFL_PAD_VALID = 1 };

typedef struct {
    int ndim;
    int32_t shape[8];
    int type;                /* TensorType */
    uint32_t buffer;         /* index into buffers (0 = the empty buffer) */
    char *name;              /* owned; "" when absent */
    float *scale;            /* n_scale quantization scales (owned) or NULL */
    int64_t *zero_point;     /* n_zp zero points (owned) or NULL */
    int n_scale, n_zp;
    int qdim;                /* quantized_dimension (per-axis) */
} gr_tfl_tensor;

/* Builtin options of the operators graft reads (defaults when absent). */
typedef struct {
    int type;                /* BuiltinOptions union type (0 = none) */
    int padding;             /* GR_TFL_PAD_* */
    int stride_w, stride_h;
    int dilation_w, dilation_h;
    int depth_multiplier;
    int filter_w, filter_h;  /* Pool2DOptions */
    int act;                 /* fused GR_TFL_ACT_* */
    float beta;              /* SoftmaxOptions */
    int keep_dims;           /* ReducerOptions (MEAN) */
    int keep_num_dims;       /* FullyConnectedOptions */
    int weights_format;      /* FullyConnectedOptions (0 = DEFAULT) */
} gr_tfl_options;

typedef struct {
    int code;                /* builtin operator code */
    char *custom;            /* custom_code for CUSTOM ops (owned) or NULL */
    int32_t *inputs, *outputs;   /* tensor indices (-1 = optional input absent) */
    int n_in, n_out;
    gr_tfl_options opt;
} gr_tfl_op;

typedef struct {
    const uint8_t *data;     /* into the file bytes; NULL when empty */
    size_t size;
} gr_tfl_buffer;

typedef struct {
    char *path;
    uint8_t *bytes;          /* the whole file */
    size_t len;
    uint32_t version;
    gr_tfl_tensor *tensors;
    int n_tensors;
    gr_tfl_op *ops;
    int n_ops;
    gr_tfl_buffer *buffers;
    int n_buffers;
    int32_t *inputs, *outputs;   /* subgraph 0's input / output tensors */
    int n_inputs, n_outputs;
} gr_tfl_model;

/* Reads and checks a .tflite file.  Returns NULL with *err naming the file. */
gr_tfl_model *gr_tfl_open(const char *path, gr_error *err);
void gr_tfl_close(gr_tfl_model *m);

/* "CONV_2D", "MEAN", ...; "builtin operator N" (in buf) for unknown codes. */
const char *gr_tfl_op_name(int code, char *buf, size_t cap);

/* Number of elements of tensor t (product of its shape); a shape of more
 * than GR_TFL_MAX_ELEMS elements is refused when the file is read.       */
#define GR_TFL_MAX_ELEMS ((int64_t)1 << 40)
/* Number of elements of tensor t (product of its shape). */
int64_t gr_tfl_tensor_count(const gr_tfl_tensor *t);

/* Dequantizes constant tensor t into out[n] (n = its element count):
 * float32 as is; uint8/int8/int32 as (q - zero_point) * scale, per tensor or
 * per axis (quantized_dimension).  Errors: no data, a buffer of the wrong
 * size, a type graft cannot read, missing quantization.                    */
gr_status gr_tfl_tensor_floats(const gr_tfl_model *m, int t, float *out, int64_t n, gr_error *err);

#endif
