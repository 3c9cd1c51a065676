/* graft.h — transfer learning in C: a pretrained convolutional base, frozen,
 * with a new head trained on your images.  This is the whole public API.
 *
 * The recipe (Keras' classic transfer-learning example, line for line):
 *
 *   1. Build a base without its top:       gr_model *base = gr_vgg16(32, 32, false, &err);
 *   2. Load pretrained weights into it:    gr_model_load_weights(base, "vgg16_notop.h5", NULL, &err);
 *   3. Stack a new head on top:            gr_model_append(base, gr_flatten(), &err); ...
 *   4. Freeze the base:                    gr_model_freeze_upto(base, "block5_pool", &err);
 *   5. Train the head:                     gr_fit(...)       (see the training section)
 *   6. Evaluate:                           gr_evaluate(...)
 *
 * Conventions
 *   - Tensors are float32, NHWC (batch, height, width, channels).  Convolution
 *     kernels are HWIO ([kh][kw][in][out], Keras' order), dense kernels are
 *     [in][out].  Flatten uses Keras' channels_last order.
 *   - Every function that can fail takes a `gr_error *err` (may be NULL) and
 *     returns a status (GR_OK = 0) or NULL / -1; the message names the file
 *     and the problem.  The library never exits or aborts on bad input.
 *   - Ownership: a function named *_new / *_open / *_load returns an object the
 *     caller frees with the matching *_free.  Strings passed in are copied.
 */
#ifndef GRAFT_H
#define GRAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_VERSION "0.1.0"

/* ------------------------------------------------------------------ errors */

typedef enum {
    GR_OK = 0,
    GR_ERR_ARG,          /* a bad argument or option value */
    GR_ERR_IO,           /* a file could not be opened, read or written */
    GR_ERR_FORMAT,       /* a file's content is not what its format says */
    GR_ERR_SHAPE,        /* a tensor or layer shape does not fit */
    GR_ERR_NOMEM,        /* an allocation failed */
    GR_ERR_NET,          /* a download failed */
    GR_ERR_DIGEST,       /* a file's checksum does not match */
    GR_ERR_UNSUPPORTED,  /* a valid input graft cannot handle (yet) */
    GR_ERR_NUMERIC,      /* a non-finite loss, gradient or weight */
    GR_ERR_INTERRUPTED,  /* stopped by a signal */
    GR_ERR_BACKEND       /* the compute backend (oneDNN) failed */
} gr_status;

/* One error type: a code and a message naming the file and the problem. */
typedef struct {
    gr_status code;
    char msg[1024];
} gr_error;

/* Sets *err (when err != NULL) and returns code.  printf-style message. */
gr_status gr_error_set(gr_error *err, gr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (adding context on the way up). */
gr_status gr_error_prefix(gr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *gr_status_name(gr_status code);

/* Warnings (NaN in weights, fallbacks) go through this callback; default
 * prints "graft: warning: ..." to stderr.  Set once at start-up.          */
typedef void (*gr_log_fn)(void *user, const char *msg);

/* ------------------------------------------------------------------ tensors */

/* A float32 tensor of up to 4 dimensions (NHWC for images). */
typedef struct {
    int ndim;
    int64_t shape[4];
    float *data;       /* owned when created by gr_tensor_new */
} gr_tensor;

gr_tensor *gr_tensor_new(int ndim, const int64_t *shape, gr_error *err); /* zeroed */
void gr_tensor_free(gr_tensor *t);
int64_t gr_tensor_count(const gr_tensor *t);

/* ------------------------------------------------------------------ layers */

typedef enum {
    GR_OP_INPUT = 0,
    GR_OP_CONV2D,        /* Keras Conv2D / darknet [convolutional] (conv part) */
    GR_OP_BATCHNORM,     /* per-channel; inference uses stored statistics */
    GR_OP_ACTIVATION,    /* elementwise activation (or softmax over channels) */
    GR_OP_MAXPOOL,
    GR_OP_AVGPOOL,
    GR_OP_GLOBAL_AVGPOOL,/* [B,H,W,C] -> [B,C] */
    GR_OP_FLATTEN,       /* [B,H,W,C] -> [B,H*W*C], channels_last order */
    GR_OP_DENSE,
    GR_OP_DROPOUT,
    GR_OP_SOFTMAX,       /* over the last axis */
    GR_OP_ADD,           /* elementwise sum of inputs (darknet shortcut, ResNet add) */
    GR_OP_CONCAT,        /* channel concatenation (darknet route) */
    GR_OP_STANDARDIZE,   /* fixed (x - mean) / std per feature */
    GR_OP__COUNT
} gr_op;

typedef enum {
    GR_ACT_LINEAR = 0,
    GR_ACT_RELU,
    GR_ACT_LEAKY,        /* x > 0 ? x : alpha * x (darknet: alpha = 0.1) */
    GR_ACT_RELU6,
    GR_ACT_SIGMOID,
    GR_ACT_TANH,
    GR_ACT_SOFTMAX,      /* softmax over channels (dense outputs) */
    GR_ACT__COUNT
} gr_act;

typedef enum {
    GR_PAD_VALID = 0,    /* no padding (Keras 'valid') */
    GR_PAD_SAME,         /* TF/Keras 'same': out = ceil(in / stride), extra pad at bottom/right */
    GR_PAD_EXPLICIT      /* pad_t/pad_l/pad_b/pad_r given (darknet: size/2 each side) */
} gr_padding;

/* Describes one layer to add.  Make one with the gr_<op>() helpers below and
 * adjust fields as needed; zero means "default" for every optional field. */
typedef struct {
    gr_op op;
    char name[64];       /* unique layer name; "" = Keras-style automatic name */
    int units;           /* conv: filters; dense: units */
    int kh, kw;          /* conv/pool window */
    int sh, sw;          /* stride (0 = 1 for conv, = window for pools) */
    gr_padding padding;
    int pad_t, pad_l, pad_b, pad_r;  /* for GR_PAD_EXPLICIT; pools: out-of-range cells are ignored */
    int out_h, out_w;    /* pools: force the output size (darknet maxpool rule); 0 = computed */
    int groups;          /* conv groups (1 = normal; = channels for depthwise) */
    bool use_bias;       /* conv/dense */
    gr_act act;          /* fused activation (conv/dense) or the activation (ACTIVATION) */
    float alpha;         /* leaky slope */
    float eps;           /* batch norm epsilon (0 = 1e-3, Keras) */
    float momentum;      /* batch norm running-average momentum (0 = 0.99, Keras) */
    float rate;          /* dropout rate */
    int inputs[4];       /* ADD/CONCAT (and any layer): node indices of inputs; */
    int n_inputs;        /* 0 = the previous layer */
} gr_layer_spec;

gr_layer_spec gr_conv2d(int filters, int kh, int kw, int stride, gr_padding pad, gr_act act);
gr_layer_spec gr_dense(int units, gr_act act);
gr_layer_spec gr_flatten(void);
gr_layer_spec gr_maxpool(int k, int stride);
gr_layer_spec gr_avgpool(int k, int stride);
gr_layer_spec gr_global_avgpool(void);
gr_layer_spec gr_batchnorm(float eps);
gr_layer_spec gr_activation(gr_act act, float alpha);
gr_layer_spec gr_dropout(float rate);
gr_layer_spec gr_softmax(void);
gr_layer_spec gr_named(gr_layer_spec s, const char *name);   /* returns s with a name */

const char *gr_op_name(gr_op op);
const char *gr_act_name(gr_act act);
int gr_act_parse(const char *s, gr_act *out);   /* "relu", "leaky", "linear", ... ; 0 ok, -1 unknown */

/* ------------------------------------------------------------------ models */

typedef struct gr_model gr_model;

/* Input preprocessing the weights were trained with. */
typedef enum {
    GR_PREP_NONE = 0,    /* pixels as float 0..255 */
    GR_PREP_CAFFE,       /* RGB->BGR, subtract (103.939, 116.779, 123.68) (Keras VGG16/ResNet50) */
    GR_PREP_TORCH,       /* /255, subtract (0.485,0.456,0.406), divide by (0.229,0.224,0.225) */
    GR_PREP_TF,          /* /127.5 - 1 */
    GR_PREP_DARKNET      /* /255, RGB */
} gr_preprocess;

const char *gr_preprocess_name(gr_preprocess p);
int gr_preprocess_parse(const char *s, gr_preprocess *out);

/* An empty model taking [B, h, w, c] inputs. */
gr_model *gr_model_new(int h, int w, int c, gr_error *err);
void gr_model_free(gr_model *m);

/* Appends a layer; returns its node index (>= 0), or -1 with *err set
 * (unknown op, duplicate name, a shape that does not fit).                 */
int gr_model_append(gr_model *m, gr_layer_spec spec, gr_error *err);

/* Stacks layers on a model: gr_stack(m, &err, gr_flatten(), gr_dense(10, GR_ACT_SOFTMAX)).
 * Returns GR_OK or the first error.                                        */
gr_status gr_stack_n(gr_model *m, gr_error *err, int n, const gr_layer_spec *specs);
#define gr_stack(m, err, ...)                                                   \
    gr_stack_n((m), (err), (int)(sizeof((gr_layer_spec[]){__VA_ARGS__}) /       \
                                 sizeof(gr_layer_spec)),                        \
               (gr_layer_spec[]){__VA_ARGS__})

int gr_model_num_layers(const gr_model *m);
int gr_model_find(const gr_model *m, const char *name);         /* node index or -1 */
const char *gr_model_layer_name(const gr_model *m, int node);
/* Output shape of a node for one sample: h, w, c (dense/flatten: 1, 1, n). */
void gr_model_layer_shape(const gr_model *m, int node, int *h, int *w, int *c);
int64_t gr_model_param_count(const gr_model *m, bool trainable_only);

/* (Re)initializes the parameters of layers first_node.. with Keras' defaults
 * (glorot_uniform kernels, zero biases, BN gamma = variance = 1), from seed. */
void gr_model_init_params(gr_model *m, int first_node, uint64_t seed);

/* Keeps nodes 0..node (drops everything after).  A "cut". */
gr_status gr_model_truncate(gr_model *m, int node, gr_error *err);
/* Freezes every layer up to and including `node` (-1: none); the rest train. */
void gr_model_freeze_upto(gr_model *m, int node);
bool gr_model_layer_frozen(const gr_model *m, int node);

void gr_model_set_preprocess(gr_model *m, gr_preprocess p);
gr_preprocess gr_model_preprocess(const gr_model *m);

/* Prints a Keras-summary()-like table (name, op, output shape, params). */
void gr_model_summary(const gr_model *m, void *FILE_out);

/* Number of compute threads (0 = number of cores).  Sets the process's one
 * thread pool (OpenMP, shared with oneDNN).                                 */
void gr_set_threads(int n);
int gr_get_threads(void);

typedef enum { GR_PRECISION_FP32 = 0, GR_PRECISION_BF16 } gr_precision;

/* Runs the model in inference mode on x [B, h, w, c] (preprocessed) and
 * writes the output of node `upto` (-1 = last) to out (caller-allocated,
 * B * h*w*c of that node).  Uses the fast backend when it supports the layer. */
gr_status gr_model_predict(gr_model *m, const float *x, int batch, int upto,
                           float *out, gr_error *err);

/* ------------------------------------------------------------ architectures */

/* Keras VGG16 (layer names block1_conv1 ... block5_pool; with include_top:
 * flatten, fc1, fc2, predictions [1000, softmax]).  h, w >= 32.             */
gr_model *gr_vgg16(int h, int w, bool include_top, gr_error *err);

/* A network from a darknet .cfg file; layer names are darknet's indices
 * ("0", "1", ...).  h, w = 0: the [net] section's size.                     */
gr_model *gr_darknet_load_cfg(const char *cfg_path, int h, int w, gr_error *err);

/* ------------------------------------------------------------------ weights */

/* What a weights load did: counts, and a human-readable report. */
typedef struct {
    int layers_loaded;       /* model layers that received weights */
    int layers_skipped;      /* file layers not used (e.g. the top of a full VGG16) */
    int tensors_loaded;
    bool by_order;           /* names differed; matched by order and shapes */
    char report[4096];       /* one line per notable event */
} gr_load_report;

/* Loads weights from a Keras .h5 (Keras-1 notop layout, Keras 2, Keras 3
 * .weights.h5), a .safetensors file (graft or torchvision names), or a
 * darknet .weights file (for a model from gr_darknet_load_cfg).  Matches
 * by layer name; checks every shape.  report may be NULL.                   */
gr_status gr_model_load_weights(gr_model *m, const char *path, gr_load_report *report,
                                gr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* GRAFT_H */
