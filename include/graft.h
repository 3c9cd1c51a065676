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

/* libgraft.so exports what this header declares and nothing else: the
 * library is built with -fvisibility=hidden, and these declarations are
 * made visible here.                                                      */
#if defined(__GNUC__) && !defined(GRAFT_NO_VISIBILITY)
#pragma GCC visibility push(default)
#endif

/* The one version number: `graft --version`, the soname (libgraft.so.MAJOR),
 * graft.pc and the man pages all take it from this line. */
#define GRAFT_VERSION "0.2.0"
#define GRAFT_VERSION_MAJOR 0
#define GRAFT_VERSION_MINOR 2
#define GRAFT_VERSION_PATCH 0
/* The version of the library actually linked (GRAFT_VERSION is the header's). */
const char *gr_version(void);

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

/* ------------------------------------------------------------------ log */

/* The library prints nothing by itself.  Warnings (NaN in weights, skipped
 * images, a rising loss), informational lines (what loaded, one line per
 * epoch) and progress (transient: images done, an epoch's bar) go to one
 * callback that the program installs; without one they are dropped.  The
 * graft command installs a callback that prints info on stdout, notes and
 * warnings as "graft: ..." / "graft: warning: ..." on stderr, and progress
 * in place when stderr is a terminal (and not at all when it is not).     */
typedef enum {
    GR_LOG_ERROR = 0,
    GR_LOG_WARN,
    GR_LOG_NOTE,       /* a remark on files and downloads ("using mirror file ...") */
    GR_LOG_INFO,       /* a line of the run's own report (what loaded, each epoch) */
    GR_LOG_PROGRESS,   /* a status line that the next one replaces (no newline) */
    GR_LOG_DEBUG
} gr_log_level;

/* msg: one line without its trailing newline, valid during the call only.
 * Called from the thread that runs the library call (never from oneDNN's or
 * OpenMP's worker threads).                                               */
typedef void (*gr_log_fn)(void *user, gr_log_level level, const char *msg);

/* Installs the log callback (NULL: silent, the default).  Call it once at
 * start-up, before other graft calls; it is not synchronised with them.   */
void gr_set_log(gr_log_fn fn, void *user);
/* "error", "warning", "note", "info", "progress", "debug". */
const char *gr_log_level_name(gr_log_level level);

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
    GR_OP_MUL,           /* a * b, b [B,H,W,C] or [B,1,1,C] (squeeze-and-excitation scale) */
    GR_OP_LAYERNORM,     /* layer normalization over channels, gamma and beta [C] */
    GR_OP_CLS_TOKEN,     /* tokens [B,H,W,C] -> [B,1,1+H*W,C]: a learned token [C] first (ViT) */
    GR_OP_POS_EMBED,     /* x + a learned embedding of x's per-sample shape [H,W,C] (ViT) */
    GR_OP_ATTENTION,     /* multi-head self-attention over the H*W tokens (groups = heads) */
    GR_OP_TOKEN,         /* token number `units` of [B,H,W,C] (row-major H*W): [B,1,1,C] */
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
    GR_ACT_SWISH,        /* x * sigmoid(x): "swish", SiLU (torch.nn.SiLU) */
    GR_ACT_HARDSWISH,    /* x * relu6(x + 3) / 6 (torch.nn.Hardswish) */
    GR_ACT_HARDSIGMOID,  /* relu6(x + 3) / 6 (torch.nn.Hardsigmoid; not Keras 2's 0.2x + 0.5) */
    GR_ACT_GELU,         /* x * Phi(x), the exact erf form (torch.nn.GELU()) */
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
    int dh, dw;          /* conv dilation (0 = 1): the kernel's taps are dh rows, dw columns
                          * apart, so a kh x kw kernel spans (kh-1)*dh+1 x (kw-1)*dw+1 cells */
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
gr_layer_spec gr_multiply(int a, int b);     /* node a times node b (b may be [1,1,C]) */
gr_layer_spec gr_layernorm(float eps);        /* over channels; eps 0 = 1e-5 (PyTorch) */
gr_layer_spec gr_class_token(void);           /* prepends a learned token [C] to the H*W tokens */
gr_layer_spec gr_pos_embedding(void);         /* adds a learned [H, W, C] embedding */
gr_layer_spec gr_attention(int heads);        /* self-attention: in_proj [C,3C], out_proj [C,C] (+ biases) */
gr_layer_spec gr_select_token(int index);     /* token `index` of the H*W tokens */
gr_layer_spec gr_named(gr_layer_spec s, const char *name);   /* returns s with a name */

const char *gr_op_name(gr_op op);
const char *gr_act_name(gr_act act);
int gr_act_parse(const char *s, gr_act *out);   /* "relu", "leaky", "linear", ... ; 0 ok, -1 unknown */

/* ------------------------------------------------------------------ models */

typedef struct gr_model gr_model;

/* Input normalization: how a pixel (float, 0..255, RGB) becomes the
 * network's input value, per channel c of the network's input:
 *
 *     y[c] = (x[src(c)] / scale - mean[c]) / std[c]
 *
 * src(c) = c for RGB, 2 - c for BGR (the channels reversed first; mean and
 * std are given in the network's own channel order, as Keras and
 * torchvision write them).  mean and std are in units of pixel / scale:
 * torchvision's values (0.485, ...) go with scale 255, Keras caffe's
 * (103.939, ...) with scale 1.  Zero fields are defaults: scale 0 = 1,
 * std[c] 0 = 1; an all-zero gr_norm leaves the pixels as they are.        */
typedef struct {
    float scale;        /* pixel scale: pixels are divided by it first; 0 = 1 */
    float mean[3];      /* subtracted next, per network channel */
    float std[3];       /* divided by last, per network channel; 0 = 1 */
    bool bgr;           /* the network takes B, G, R (false: R, G, B) */
} gr_norm;

/* The named normalizations: presets of gr_norm (gr_norm_preset). */
typedef enum {
    GR_PREP_NONE = 0,    /* pixels as float 0..255 */
    GR_PREP_CAFFE,       /* RGB->BGR, subtract (103.939, 116.779, 123.68) (Keras VGG16/ResNet50) */
    GR_PREP_TORCH,       /* /255, subtract (0.485,0.456,0.406), divide by (0.229,0.224,0.225) */
    GR_PREP_TF,          /* /127.5 - 1 */
    GR_PREP_DARKNET,     /* /255, RGB */
    GR_PREP_CUSTOM       /* a gr_norm equal to none of the above (not a preset: no values) */
} gr_preprocess;

/* "none", "caffe", "torch", "tf", "darknet", "custom"; parse takes the
 * five presets only (0 ok, -1 unknown).                                    */
const char *gr_preprocess_name(gr_preprocess p);
int gr_preprocess_parse(const char *s, gr_preprocess *out);
/* The values of preset p (GR_PREP_CUSTOM or out of range: all zero = none),
 * with every default resolved (scale and std written out, never 0).        */
gr_norm gr_norm_preset(gr_preprocess p);
/* The preset n equals exactly (defaults resolved), else GR_PREP_CUSTOM. */
gr_preprocess gr_norm_preset_of(const gr_norm *n);
/* n with its defaults written out (scale 0 -> 1, std 0 -> 1). */
gr_norm gr_norm_resolved(const gr_norm *n);
/* Whether n can be applied: every value finite, scale and std not negative
 * (0 = the default 1).  GR_OK, or GR_ERR_ARG naming the value; what (e.g.
 * a file name, may be NULL) starts the message.                           */
gr_status gr_norm_check(const gr_norm *n, const char *what, gr_error *err);
/* One line, e.g. "torch normalization (x/255, minus mean, over std
 * (ImageNet))" or "custom normalization (x/255, minus 0.5,0.5,0.5, over
 * 0.5,0.5,0.5, RGB)"; returns buf.                                        */
char *gr_norm_describe(const gr_norm *n, char *buf, size_t cap);

typedef enum {
    GR_RESIZE_STRETCH = 0,  /* the whole image to oh x ow (aspect ratio not kept) */
    GR_RESIZE_CENTER_CROP,  /* the largest centered box with the aspect ratio oh:ow
                          * (Keras smart_resize's box: int sizes, offsets floored),
                          * shrunk by the crop fraction (timm's crop_pct: 0.875 is
                          * torchvision's Resize(256) + CenterCrop(224))              */
    GR_RESIZE_LETTERBOX     /* the whole image, aspect ratio kept, centered on a gray
                          * (127.5) canvas of oh x ow (darknet's letterbox_image:
                          * int sizes and offsets as darknet computes them)           */
} gr_resize_mode;

typedef enum {
    GR_INTERP_BILINEAR = 0, /* PIL's BILINEAR: antialiased when shrinking (see below) */
    GR_INTERP_DARKNET       /* darknet's resize_image: bilinear on corner-aligned pixel
                          * grids ((in-1)/(out-1) steps), no antialiasing, rows
                          * then columns, the last row/column copied from the source */
} gr_interp;

/* How an image becomes a network's input: the inference recipe that
 * belongs to a base's weights (like timm's pretrained_cfg), stored in the
 * model file and applied by every command.  Zero = today's default:
 * stretch, PIL bilinear, crop fraction 1, no normalization.                */
typedef struct {
    gr_resize_mode resize;
    gr_interp interp;
    float crop;              /* GR_RESIZE_CENTER_CROP: side fraction kept, (0, 1]; 0 = 1 */
    gr_norm norm;            /* the normalization (gr_norm_preset(GR_PREP_TORCH), or free values) */
} gr_recipe;

const char *gr_resize_mode_name(gr_resize_mode r);          /* "stretch", "crop", "letterbox" */
int gr_resize_mode_parse(const char *s, gr_resize_mode *out);   /* 0 ok, -1 unknown */
const char *gr_interp_name(gr_interp i);                    /* "bilinear", "darknet" */
int gr_interp_parse(const char *s, gr_interp *out);
/* One line describing r, e.g. "letterbox, darknet interpolation, darknet
 * normalization (x/255, RGB)"; returns buf.                                */
char *gr_recipe_describe(const gr_recipe *r, char *buf, size_t cap);

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
/* The first other name of node (an imported ONNX graph's tensor name: --cut,
 * --unfreeze and extract --layer take it too), or NULL.                    */
const char *gr_model_layer_alias(const gr_model *m, int node);
/* Where a base is commonly cut: layers whose output alone carries what the
 * rest reads (no skip connection crosses it) that end a block (an add,
 * concat or multiply) or a stage (a pool), or are the last layer
 * (the pre-logits tensor of a base without its classifier).  Their indexes
 * in out (at most cap, in order); returns the count.                      */
int gr_model_cut_candidates(const gr_model *m, int *out, int cap);
const char *gr_model_layer_name(const gr_model *m, int node);
gr_op gr_model_layer_op(const gr_model *m, int node);   /* GR_OP_INPUT for -1 */
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
/* Where training from `node` on must really start: the highest node <= node
 * such that every layer from it on reads only layers from its predecessor
 * on (a residual block's shortcut reads the block's input, so unfreezing
 * inside the block starts at the block).  -1 for a node out of range.     */
int gr_model_train_start(const gr_model *m, int node);

/* The model's normalization: set_preprocess sets a preset, set_norm free
 * values (checked: GR_ERR_ARG and m unchanged when gr_norm_check fails);
 * gr_model_preprocess names it (GR_PREP_CUSTOM: none of the presets).      */
void gr_model_set_preprocess(gr_model *m, gr_preprocess p);
gr_preprocess gr_model_preprocess(const gr_model *m);
gr_status gr_model_set_norm(gr_model *m, const gr_norm *n, gr_error *err);
gr_norm gr_model_norm(const gr_model *m);
/* The model's whole input recipe (resize, interpolation, crop, normalization);
 * set_preprocess and set_norm change its normalization only.  Bases set their weights'
 * recipe (darknet: letterbox + darknet interpolation, like darknet classify). */
void gr_model_set_recipe(gr_model *m, const gr_recipe *r);
gr_recipe gr_model_recipe(const gr_model *m);
/* Where m's recipe came from, a line for the user (an imported ONNX file:
 * the recipe its graft metadata carries, or torchvision's default for a
 * file without one), or "" (a built-in base, a model file).  Owned by m.   */
const char *gr_model_recipe_note(const gr_model *m);

/* Prints a Keras-summary()-like table (name, op, output shape, params). */
void gr_model_summary(const gr_model *m, void *FILE_out);

/* Number of compute threads (0 = number of cores; under mpirun, the cores
 * over the ranks on this node: OMPI_COMM_WORLD_LOCAL_SIZE).  Sets the process's one
 * thread pool (OpenMP, shared with oneDNN).                                 */
void gr_set_threads(int n);
int gr_get_threads(void);

typedef enum { GR_PRECISION_FP32 = 0, GR_PRECISION_BF16 } gr_precision;
/* The inference precision of the fast path (bf16 where the CPU has it) that
 * contexts made for m afterwards start with, and gr_model_predict uses.     */
void gr_model_set_precision(gr_model *m, gr_precision p);

/* ------------------------------------------------------ execution context
 * A model is its graph and its weights.  What running it needs -- the fast
 * path's oneDNN primitives and packed weights, activation buffers, the
 * precision, and whether $GRAFT_REFERENCE asks for the plain-C reference
 * layers (read once, when the context is made) -- lives in an execution
 * context made for the model.  Keep a context and reuse it across batches:
 * its first run at a batch size builds the primitives, later runs only
 * compute.  A context reads the model's weights at every run (new weights
 * are packed again by themselves; layers added or removed rebuild it).
 *
 *   gr_ctx *cx = gr_ctx_new(m, &err);
 *   for (...) gr_ctx_predict(cx, x, B, -1, probs, &err);
 *   gr_ctx_free(cx);                        (before the model is freed)
 *
 * Threads.  A model that no call is changing may be shared by any number of
 * threads: calls taking a const gr_model * only read it and may run at the
 * same time (gr_ctx_new, gr_model_predict, gr_model_save, the accessors).
 * Each thread runs the model through its own context (gr_ctx_predict) or
 * through gr_model_predict; a context is used by one thread at a time.
 * Calls taking a gr_model * change it (gr_model_append, _truncate,
 * _load_weights, _init_params, _freeze_upto, _set_*, gr_fit, a trainer's
 * steps ...) and must not run while any other call uses that model.
 * gr_set_threads and gr_set_log are process-wide settings.                  */
typedef struct gr_ctx gr_ctx;

/* A context for m (which must outlive it).  NULL (err set) when out of memory. */
gr_ctx *gr_ctx_new(const gr_model *m, gr_error *err);
void gr_ctx_free(gr_ctx *cx);           /* NULL is fine */
/* This context's inference precision (starts as the model's). */
void gr_ctx_set_precision(gr_ctx *cx, gr_precision p);

/* Runs the context's model in inference mode on x [B, h, w, c]
 * (preprocessed) and writes the output of node `upto` (-1 = last) to out
 * (caller-allocated, B * h*w*c of that node).  Uses the fast backend when it
 * supports the layer.  An output holding NaN/Inf is an error
 * (GR_ERR_NUMERIC naming the layer): no score or label computed from it
 * would mean anything.                                                      */
gr_status gr_ctx_predict(gr_ctx *cx, const float *x, int batch, int upto, float *out,
                         gr_error *err);
/* The same through a context made for this one call and freed: thread-safe
 * on a shared model and simple, but it builds the fast path's primitives
 * at every call -- for repeated calls keep a context (gr_ctx_predict).     */
gr_status gr_model_predict(const gr_model *m, const float *x, int batch, int upto,
                           float *out, gr_error *err);

/* ------------------------------------------------------------ architectures */

/* Keras VGG16 (layer names block1_conv1 ... block5_pool; with include_top:
 * flatten, fc1, fc2, predictions [1000, softmax]).  h, w >= 32.             */
gr_model *gr_vgg16(int h, int w, bool include_top, gr_error *err);

/* Keras ResNet50 (v1: stride 2 on each stack's first 1x1 conv; conv biases;
 * batch norm eps 1.001e-5), Keras' layer names: conv1_conv, conv1_bn,
 * conv1_relu, pool1_pool, conv2_block1_0_conv ... conv5_block3_out (the
 * ZeroPadding2D layers conv1_pad / pool1_pad are folded into the layer
 * after them).  include_top adds avg_pool (global average) and predictions
 * [1000, softmax].  h, w >= 32.  Loads Keras' resnet50_*.h5 files by name;
 * torchvision (v1.5) weights are refused.  Preprocessing: caffe.          */
gr_model *gr_resnet50(int h, int w, bool include_top, gr_error *err);

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
    int layers_total;        /* model layers that have weights (loaded or not) */
    char first_missing[96];  /* partial load: the first model layer left unloaded ("" = none) */
    char report[4096];       /* one line per notable event */
} gr_load_report;

/* Loads weights from a Keras .h5 (Keras-1 notop layout, Keras 2, Keras 3
 * .weights.h5), a .safetensors file (graft or torchvision names), or a
 * darknet .weights file (for a model from gr_darknet_load_cfg).  Matches
 * by layer name; checks every shape.  Every weighted layer of the model
 * must get its weights from the file: one that does not is an error
 * (GR_ERR_SHAPE naming the file, how many layers matched of how many, and
 * the first unmatched layer) and the model is left unchanged.  report may
 * be NULL.                                                                  */
gr_status gr_model_load_weights(gr_model *m, const char *path, gr_load_report *report,
                                gr_error *err);
/* The same, but a partial load is allowed: model layers the file has no
 * weights for keep theirs (each listed in the report as "not loaded: ...";
 * layers_loaded < layers_total).  Shapes are still checked; a file that
 * matches no layer at all is still an error.                                */
gr_status gr_model_load_weights_partial(gr_model *m, const char *path, gr_load_report *report,
                                        gr_error *err);

/* ----------------------------------------------------------------- training */

typedef enum { GR_OPTIM_SGD = 0, GR_OPTIM_ADAM, GR_OPTIM_ADAMW } gr_optim_kind;
const char *gr_optim_kind_name(gr_optim_kind k);                 /* "sgd", "adam", "adamw" ("?" unknown) */
int gr_optim_kind_parse(const char *s, gr_optim_kind *out);      /* 0 ok, -1 unknown */

/* Learning-rate schedules (per iteration; `decay` > 0 alone = inverse-time). */
typedef enum {
    GR_SCHEDULE_CONSTANT = 0,  /* lr (or Keras' inverse-time decay when decay > 0) */
    GR_SCHEDULE_INVERSE_TIME,  /* lr / (1 + decay * iterations) */
    GR_SCHEDULE_STEP,          /* lr * gamma ^ floor(epoch / step_epochs) */
    GR_SCHEDULE_COSINE         /* lr * (1 + cos(pi * t / total)) / 2 over the run */
} gr_schedule;
const char *gr_schedule_name(gr_schedule s);   /* "constant", "inverse-time", "step", "cosine" ("?" unknown) */
int gr_schedule_parse(const char *s, gr_schedule *out);          /* 0 ok, -1 unknown */

/* An optimizer's settings.  SGD follows Keras' legacy SGD exactly:
 *   lr_t = lr / (1 + decay * iterations)        (iterations = batches so far)
 *   v = momentum * v - lr_t * g
 *   w += nesterov ? momentum * v - lr_t * g : v
 * weight_decay: SGD/Adam add weight_decay * w to the gradient (L2, as
 * PyTorch's weight_decay); AdamW decays decoupled: w -= lr_t * wd * w.
 * Adam follows Keras (beta1 0.9, beta2 0.999, epsilon 1e-7 by default).
 * Warm-up: the rate rises linearly over warmup_iters iterations first.     */
typedef struct {
    gr_optim_kind kind;
    float lr;            /* learning rate */
    float decay;         /* Keras legacy inverse-time decay per iteration */
    float momentum;      /* SGD */
    bool nesterov;       /* SGD */
    float beta1, beta2, epsilon;   /* Adam (0 = Keras defaults) */
    float weight_decay;
    gr_schedule schedule;
    int64_t total_iters;     /* cosine: iterations in the run (set by gr_fit) */
    int64_t epoch_iters;     /* step: iterations per epoch (set by gr_fit) */
    int step_epochs;         /* step: epochs between drops (0 = 10) */
    float gamma;             /* step: factor per drop (0 = 0.1) */
    int64_t warmup_iters;    /* linear warm-up (gr_fit sets it from warmup epochs) */
} gr_optim;

typedef struct { float lr, decay, momentum; bool nesterov; } gr_sgd_opts;
gr_optim gr_sgd(gr_sgd_opts o);
gr_optim gr_adam(float lr);
gr_optim gr_adamw(float lr, float weight_decay);
/* The learning rate used at iteration it (0-based). */
float gr_optim_lr(const gr_optim *o, int64_t it);

/* A trainer updates the trainable layers of a model (from `first` on; all
 * earlier layers are frozen and run in inference mode, if at all) one batch
 * at a time.  Its input is the output of layer first-1 (the features at the
 * cut), so the frozen base can run once and be cached.                     */
typedef struct gr_trainer gr_trainer;

typedef struct {
    gr_optim optim;
    int max_batch;           /* largest batch that will be passed */
    uint64_t seed;           /* dropout masks */
    float label_smoothing;   /* 0..1 */
    bool bn_train;           /* batch norm in trainable layers uses batch statistics */
    int head_first;          /* layers head_first.. learn at the full rate; earlier */
    float base_lr_mult;      /* trainable layers at lr * base_lr_mult (0 = 1) */
} gr_trainer_opts;

/* The trainer changes m's weights (m must outlive it); it runs the layers
 * through an execution context of its own, which gr_trainer_ctx returns:
 * run the frozen layers and evaluate through it while training to share its
 * primitives and buffers (it belongs to the trainer: never free it).      */
gr_trainer *gr_trainer_new(gr_model *m, int first, const gr_trainer_opts *o, gr_error *err);
void gr_trainer_free(gr_trainer *t);
gr_ctx *gr_trainer_ctx(gr_trainer *t);

/* One optimizer step on a batch: x [B, features at first-1], labels [B]
 * (class indices).  Returns the batch's mean categorical cross-entropy in
 * *loss and the number of correct top-1 predictions in *correct.          */
gr_status gr_trainer_step(gr_trainer *t, const float *x, const int *labels, int B,
                          float *loss, int *correct, gr_error *err);
/* Iterations (batches) done so far. */
int64_t gr_trainer_iterations(const gr_trainer *t);

/* Loss and accuracy of probabilities p [B, C] against labels (Keras clips p
 * to [1e-7, 1 - 1e-7]).  Returns the summed (not mean) loss.              */
double gr_cross_entropy(const float *p, const int *labels, int B, int C, float label_smoothing,
                        int *correct, int *correct_top5);

/* ------------------------------------------------------------------ fetch */
/* Downloads and the cache ($GRAFT_HOME, default ~/.cache/graft): known names
 * ("vgg16", "vgg16-top", "resnet50", "tiny-darknet", "cifar10", "cifar100")
 * are fetched with libcurl (resumable .part files, timeouts from
 * $GRAFT_FETCH_TIMEOUT seconds), checked against the publisher's md5/sha256
 * (or a mirror's SHA256SUMS), and only then renamed into place.            */
typedef struct {
    const char *mirror;  /* local mirror directory tried first; NULL: $GRAFT_MIRROR if set */
    bool force;          /* fetch again even when a verified copy is cached */
    bool offline;        /* never use the network (also $GRAFT_OFFLINE=1) */
    bool quiet;          /* no progress bar or notes on stderr */
} gr_fetch_opts;

/* Makes every file of a known name present and verified in the cache.
 * opts may be NULL (defaults).  Errors name the URL (or file), the HTTP
 * status or the expected and actual digest, and say how to get the file by hand. */
gr_status gr_fetch_name(const char *name, const gr_fetch_opts *opts, gr_error *err);

/* Writes to path_out the cached path of a known name's file, fetching it
 * first when missing.  file_hint picks the file of a multi-file name: a file
 * name, an extension ("weights", "cfg") or "labels"; NULL = the main file.
 * Datasets resolve to their unpacked directory when the cache holds one
 * (e.g. linked from a mirror), else to the archive (.tar.gz).              */
gr_status gr_fetch_resolve(const char *name, const char *file_hint, const gr_fetch_opts *opts,
                           char *path_out, size_t cap, gr_error *err);

/* Downloads url to dest (via dest.part, resuming it when present), checks
 * digest (32 hex chars = md5, 64 = sha256; NULL = unchecked), fsyncs and
 * renames into place.  A digest mismatch deletes the .part file.           */
gr_status gr_fetch_url(const char *url, const char *dest, const char *digest,
                       const gr_fetch_opts *opts, gr_error *err);
/* --------------------------------------------------------------- end fetch */

/* ---------------------------------------------------------------- datasets
 * Data input (src/data/images.c, cifar.c, dataset.c, batcher.c): decoding,
 * resizing, preprocessing, CIFAR-10/100, image folders, CSV lists, a
 * seeded stratified split and a prefetching batch iterator.
 *
 *   gr_dataset *ds = gr_dataset_open("cifar-10-batches-bin",
 *       &(gr_dataset_opts){ .split = GR_SPLIT_TRAIN, .h = 32, .w = 32,
 *                           .preprocess = GR_PREP_CAFFE }, &err);
 *   gr_batcher *b = gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){ .batch = 32,
 *       .shuffle = true, .seed = 1, .pad = 4, .hflip = true, .threads = 2 }, &err);
 *   while (gr_batcher_next(b, x, labels, &n, &err) == GR_OK && n > 0) ... one epoch
 */

/* A decoded image: RGB, 8 bits per channel. */
typedef struct {
    int h, w;            /* pixels */
    uint8_t *data;       /* [h][w][3] row-major RGB; owned, free with gr_image_free */
} gr_image;

/* Decodes a JPEG (baseline/progressive; gray, YCbCr, CMYK/YCCK -> RGB), PNG
 * (gray, gray+alpha, palette, RGB(A), 1-16 bits -> RGB8: 16-bit keeps the high
 * byte, alpha is dropped, not composited) or BMP (uncompressed 8-bit paletted,
 * 24- and 32-bit, bottom-up or top-down).  The format comes from the magic
 * bytes, never the file name.  A corrupt or truncated file is an error
 * (GR_ERR_FORMAT) naming the file and the reason.                          */
gr_status gr_image_load(const char *path, gr_image *out, gr_error *err);
/* The same from n bytes in memory; name is used in messages. */
gr_status gr_image_decode(const void *bytes, size_t n, const char *name, gr_image *out,
                          gr_error *err);
void gr_image_free(gr_image *img);   /* frees img->data, zeroes *img */


/* Resizes RGB8 to out [oh][ow][3] float in 0..255 (not rounded) with PIL's
 * BILINEAR filter: triangle kernel whose support is scaled by the factor when
 * shrinking (antialiased), separable, edge weights renormalized — i.e. PIL's
 * im.resize((ow, oh), Image.BILINEAR, box=<box>) without PIL's 8-bit rounding
 * (results agree within 1 level).  Same size: exact copy.                  */
gr_status gr_image_resize(const gr_image *img, int oh, int ow, gr_resize_mode fit, float *out,
                          gr_error *err);
/* The same with a recipe's resize mode, interpolation and crop fraction
 * (its normalization is not applied: gr_norm_apply does that).           */
gr_status gr_image_resize_recipe(const gr_image *img, int oh, int ow, const gr_recipe *r, float *out,
                                 gr_error *err);

/* In place on x [n_pixels][3] RGB float 0..255: y[c] = (x[src(c)] / scale
 * - mean[c]) / std[c] (gr_norm), in float, divisions as written (torchvision's
 * ToTensor then Normalize give the same bits).  gr_preprocess_apply: a preset's
 *   NONE    unchanged;   CAFFE  -> BGR, minus (103.939, 116.779, 123.68) (B, G, R);
 *   TORCH   x/255, minus (0.485, 0.456, 0.406), divided by (0.229, 0.224, 0.225);
 *   TF      x/127.5 - 1; DARKNET x/255 (RGB).                                */
void gr_norm_apply(const gr_norm *n, float *x, size_t n_pixels);
void gr_preprocess_apply(gr_preprocess p, float *x, size_t n_pixels);

typedef enum { GR_SPLIT_TRAIN = 0, GR_SPLIT_TEST } gr_split;
typedef enum {
    GR_DATA_AUTO = 0,    /* a .tar.gz / .bin / directory of CIFAR batches, a .csv, else a folder */
    GR_DATA_CIFAR10,
    GR_DATA_CIFAR100,
    GR_DATA_FOLDER,      /* one subfolder per class */
    GR_DATA_CSV          /* lines "path,label" */
} gr_data_format;
typedef enum { GR_LABELS_FINE = 0, GR_LABELS_COARSE } gr_label_kind;  /* CIFAR-100 */
/* The names the CLI and the files use: "auto", "cifar10", "cifar100", "folder",
 * "csv"; "train", "test"; "fine", "coarse" ("?" for a value out of range).
 * parse: 0 and *out set, or -1 for an unknown name.                       */
const char *gr_data_format_name(gr_data_format f);
int gr_data_format_parse(const char *s, gr_data_format *out);
const char *gr_split_name(gr_split s);
int gr_split_parse(const char *s, gr_split *out);
const char *gr_label_kind_name(gr_label_kind k);
int gr_label_kind_parse(const char *s, gr_label_kind *out);

/* Zero fields are defaults. */
typedef struct {
    gr_split split;          /* CIFAR directories/archives: which batches */
    gr_data_format format;
    gr_label_kind labels;
    int h, w;                /* samples' size; 0 = native (32 for CIFAR; folders/CSV: default_h/w) */
    int default_h, default_w;    /* the size when h, w are 0 and the data has no native size
                              * (folders, CSV): e.g. the network's own input size         */
    gr_resize_mode fit;
    gr_preprocess preprocess;    /* a preset normalization, used when norm is NULL */
    const gr_norm *norm;     /* free values (checked at open), or NULL: preprocess */
    gr_interp interp;        /* resampling filter (default PIL bilinear) */
    float crop;              /* fit = CENTER_CROP: side fraction kept (0 = 1) */
    bool skip_bad;           /* folders/CSV: decode every file at open, drop and count the
                              * ones that fail (gr_dataset_skipped); otherwise a bad file
                              * is an error naming it when it is read                    */
} gr_dataset_opts;

typedef struct gr_dataset gr_dataset;

/* Opens a dataset.  CIFAR is held in memory as uint8 (not float); folders
 * and CSV lists are decoded on demand.  Folder classes are the subfolder
 * names sorted (bytewise), files sorted by name within a class; files that
 * are not JPEG/PNG/BMP by magic are ignored (gr_dataset_ignored).  CSV:
 * "path,label" per line, paths relative to the CSV's directory; an optional
 * header (first field "path", "file", "filename" or "image"); labels that
 * are all integers are class indices, otherwise class names (sorted).     */
gr_dataset *gr_dataset_open(const char *path, const gr_dataset_opts *opts, gr_error *err);
void gr_dataset_free(gr_dataset *ds);
int gr_dataset_count(const gr_dataset *ds);
int gr_dataset_num_classes(const gr_dataset *ds);
const char *gr_dataset_class_name(const gr_dataset *ds, int c);  /* NULL when out of range */
int gr_dataset_label(const gr_dataset *ds, int i);               /* -1 when out of range */
void gr_dataset_size(const gr_dataset *ds, int *h, int *w);      /* a sample's h, w */
int gr_dataset_skipped(const gr_dataset *ds);   /* bad images dropped at open (skip_bad) */
int gr_dataset_ignored(const gr_dataset *ds);   /* non-image files ignored in folders */
/* Path of sample i (folders/CSV), NULL for CIFAR. */
const char *gr_dataset_path(const gr_dataset *ds, int i);

/* Sample i as out [h][w][3] float, resized and preprocessed (no augmentation).
 * Safe to call from several threads at once.                               */
gr_status gr_dataset_get(const gr_dataset *ds, int i, float *out, gr_error *err);

/* Seeded stratified split: per class, a fraction `val` (rounded) of its
 * samples goes to validation, chosen by a shuffle seeded with `seed`.
 * Returns two malloc'ed ascending index lists (caller frees).             */
gr_status gr_dataset_split(const gr_dataset *ds, float val, uint64_t seed, int **train,
                           int *n_train, int **valid, int *n_valid, gr_error *err);

typedef struct {
    int batch;               /* samples per batch (> 0) */
    bool shuffle;            /* a new permutation every epoch, from (seed, epoch) */
    uint64_t seed;
    int pad;                 /* augmentation: zero-pad by pad pixels, random crop back (0 = off) */
    bool hflip;              /* augmentation: random horizontal flip (p = 0.5) */
    float rrc_scale;         /* augmentation: random-resized-crop instead of the pad-and-crop: a box
                                of area fraction U[rrc_scale, 1] and aspect ratio e^U[ln 3/4, ln 4/3]
                                (torchvision's RandomResizedCrop), resized back bilinearly (0 = off) */
    bool flip_all;           /* every sample mirrored left-right (test-time flip; no randomness) */
    int threads;             /* background decode threads (0 = decode in gr_batcher_next) */
    int prefetch;            /* batches prepared ahead (0 = 2 * threads + 1) */
} gr_batcher_opts;

typedef struct gr_batcher gr_batcher;

/* Iterates over ds samples indices[0..n) (NULL = all) in batches.  Order and
 * augmentation depend only on (seed, epoch, sample index), never on the
 * thread count.  ds must outlive the batcher.                              */
gr_batcher *gr_batcher_new(const gr_dataset *ds, const int *indices, int n,
                           const gr_batcher_opts *opts, gr_error *err);
/* Next batch: x [batch][h][w][3] preprocessed, labels [batch]; *n_out
 * samples (the last batch of an epoch may be short).  *n_out == 0 marks the
 * end of an epoch; the call after it starts the next one.  After an error
 * the batcher stays failed (every later call returns the same error).     */
gr_status gr_batcher_next(gr_batcher *b, float *x, int *labels, int *n_out, gr_error *err);
int gr_batcher_epoch(const gr_batcher *b);          /* 0-based epoch of the last batch returned */
int gr_batcher_num_batches(const gr_batcher *b);    /* batches per epoch */
void gr_batcher_free(gr_batcher *b);                /* stops the threads (no wait on a full queue) */
/* ------------------------------------------------------------ end datasets */

/* ------------------------------------------------------------------ fitting */

/* Per-epoch figures (NaN where not measured, e.g. no validation set). */
typedef struct {
    int epoch;               /* 1-based */
    float loss, accuracy;
    float val_loss, val_accuracy;
    float lr;                /* learning rate at the epoch's end */
    double seconds;
} gr_epoch_log;

/* Options of gr_fit; zero fields are the seed recipe's defaults. */
typedef struct {
    int epochs;              /* 0 = 20 */
    int batch;               /* 0 = 32 */
    uint64_t seed;           /* shuffling, dropout, augmentation */
    gr_optim optim;          /* lr 0 = SGD(lr 0.01, decay 1e-6, momentum 0.9, nesterov) */
    float label_smoothing;
    bool bn_train;           /* trainable batch norm uses batch statistics */
    bool no_cache;           /* run the frozen base on every batch (slower, same result) */
    int pad;                 /* augmentation: pad-and-crop pixels (turns the cache off, but see
                                cache_prefix) */
    bool hflip;              /* augmentation: random horizontal flips.  Alone (no pad, rrc, mixup,
                                cutmix) it keeps the cache: the mirrored images' outputs of the
                                frozen part are cached too and a flipped sample reads its
                                mirror's (exact: what the base would compute on the flipped image) */
    float rrc_scale;         /* augmentation: random-resized-crop (gr_batcher_opts), replaces pad (0 = off) */
    float mixup, cutmix;     /* Beta(a, a) of mixup / cutmix on the input images, 0 = off (both:
                                one of them per batch, with probability 1/2; turn the cache off) */
    float ema;               /* exponential moving average of the trained weights, decay
                                min(ema, (1 + k) / (10 + k)) after update k; validation, the best
                                epoch and the final model use the average (0 = off) */
    bool tta_flip;           /* validation: the mean of the probabilities of each image and its mirror */
    int threads;             /* decode threads (0 = 2) */
    const gr_dataset *val;   /* validation set (may be the training set with val_idx) */
    const int *val_idx;      /* NULL = all of val */
    int n_val;
    const char *log_csv;     /* one row per epoch, or NULL */
    int verbose;             /* 0 silent, 1 one line per epoch, 2 a progress bar too */
    const char *checkpoint;  /* written (atomically) after every epoch, or NULL */
    const char *resume;      /* a checkpoint to continue from, or NULL */
    volatile int *stop;      /* when it becomes non-zero: finish the batch, checkpoint, stop
                                (read with an atomic load: set it from another thread with
                                __atomic_store_n or from a signal handler) */
    gr_epoch_log *history;   /* epochs entries, or NULL */
    bool reuse_statistics;   /* keep the standardize layer's stored mean/std (see below) */
    bool keep_best;          /* end with the weights of the best epoch (val_accuracy, else loss) */
    bool lr_auto;            /* pick the learning rate with a range test on the cached features */
    const char *config_json; /* the run's settings, stored in checkpoints and checked on resume */
    float warmup_epochs;     /* linear learning-rate warm-up */
    int patience;            /* early stopping: epochs without improvement (0 = off) */
    bool monitor_loss;       /* best/early stopping by val_loss (default val_accuracy) */
    int head_first;          /* see gr_trainer_opts (0 = no discriminative rates) */
    float base_lr_mult;
    /* called after each epoch's figures are known (TensorBoard, progress events), or NULL */
    void (*on_epoch)(const gr_epoch_log *e, void *ctx);
    void *on_epoch_ctx;
    bool distributed;        /* in an MPI build (make MPI=1) running on several ranks: data
                              * parallel over MPI_COMM_WORLD (every rank calls gr_fit with the
                              * same arguments; batch is the global batch; rank 0 reports and
                              * writes log_csv and checkpoints).  Ignored on one process. */
    double time_limit;       /* seconds from the call that the run may take (features pass and
                              * epochs; 0 = no limit): when the epochs run slower than that
                              * allows, the run ends after fewer epochs (the schedule re-spanned
                              * over them), and a batch that ends past the limit ends the run
                              * with the weights it has (graft train --budget) */
    int time_limit_epochs;   /* with time_limit: when batches run faster than planned, the run
                              * may grow to this many epochs (0 = epochs: it only shrinks;
                              * history keeps the first `epochs`) */
    bool features_fp32;      /* keep the cached features (memory and disk) in float32; default
                              * float16, half the memory (also GRAFT_FEATURES_PRECISION=fp32) */
    bool cache_prefix;       /* with pad (and hflip): cache the frozen part's output anyway and
                              * do the crop on the cached map: a translation by whole cells of
                              * the map (up to max(1, round(pad * map height / image height))
                              * cells, the offset scaled from the image crop's draw, zeros
                              * beyond the edge); an approximation of the image crop (README
                              * "The cached prefix").  Not with rrc_scale, mixup, cutmix or
                              * no_cache.  Both the flip cache and this fall back to running the
                              * frozen part on every batch when the cache (two copies with
                              * hflip) would take more than half of gr_memory_budget(). */
} gr_fit_opts;

/* Trains the model's trainable layers (those after the frozen prefix set by
 * gr_model_freeze_upto) on samples idx[0..n) of ds (NULL = all).  With a
 * frozen base and no augmentation the base runs once per image and its
 * outputs are cached (features cache).  When the first trainable layer is a
 * standardize layer (GR_OP_STANDARDIZE, right after the cut), its per-feature
 * mean and standard deviation are first measured on the training features,
 * unless reuse_statistics.  Returns GR_ERR_INTERRUPTED when stopped through
 * opts->stop (after writing the checkpoint).                               */
gr_status gr_fit(gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_fit_opts *o,
                 gr_error *err);

/* Evaluation results: loss (mean cross-entropy), accuracy, top-5 accuracy,
 * and the confusion matrix confusion[true * C + predicted].                */
typedef struct {
    double loss, accuracy, top5;
    int n, n_classes;
    int64_t *confusion;      /* [n_classes][n_classes], rows = true class */
    int *label, *pred;       /* per sample, in the order evaluated: true and predicted class */
    float *prob;             /* per sample: the predicted class's probability */
} gr_eval_result;

gr_status gr_evaluate(const gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                      gr_eval_result *res, gr_error *err);
/* gr_evaluate that says how far it is: label (e.g. "eval") non-NULL logs
 * "label: N/M images, R img/s, ETA Ss" (GR_LOG_PROGRESS) after each batch
 * and "label: M images in Ts (R img/s)" (GR_LOG_NOTE) at the end; NULL is
 * gr_evaluate (silent).                                                    */
gr_status gr_evaluate_progress(const gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                               const char *label, gr_eval_result *res, gr_error *err);
/* gr_evaluate_progress with options: tta_flip = each image's probabilities
 * are the mean of the image's and its left-right mirror's (test-time flip;
 * twice the work).                                                        */
typedef struct {
    int batch;               /* 0 = 32 */
    const char *label;       /* progress lines as gr_evaluate_progress's, or NULL */
    bool tta_flip;
} gr_eval_opts;
gr_status gr_evaluate_ex(const gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_eval_opts *o,
                         gr_eval_result *res, gr_error *err);
void gr_eval_result_free(gr_eval_result *res);

/* Class names stored with a model (copied); gr_model_class_name(m, c) or NULL. */
gr_status gr_model_set_classes(gr_model *m, int n, const char *const *names, gr_error *err);
const char *gr_model_class_name(const gr_model *m, int c);
int gr_model_num_classes(const gr_model *m);

/* graft's model file: the safetensors layout (one tensor per parameter,
 * named "<layer>/<kind>") with the architecture, class names, input size,
 * preprocessing and training configuration as JSON in __metadata__.
 * Written atomically (temp file, fsync, rename).  extra_json: a JSON object
 * text stored as metadata "graft.training" (or NULL).                     */
gr_status gr_model_save(const gr_model *m, const char *path, const char *extra_json, gr_error *err);
gr_model *gr_model_load(const char *path, gr_error *err);

/* ONNX export: the whole model (base + head) as one ONNX graph that ONNX
 * Runtime, OpenCV's dnn module and OpenVINO run (README "Export to ONNX").
 * Input "input": the preprocessed image as float32 NCHW [N, C, H, W] (the
 * layout torchvision exports use; graft's own engine is NHWC: weights and
 * flatten order are converted in the file).  Output "output": what
 * gr_model_predict gives ([N, classes]: probabilities after a softmax).
 * metadata_props hold graft's version, the input recipe (resize mode,
 * interpolation, crop fraction, channel order, pixel scale, mean, std) and
 * the class names (a JSON array).  Written atomically: on any error
 * (GR_ERR_UNSUPPORTED naming the layer and op that has no ONNX form, a bad
 * option, an unwritable path) no file is left.                            */
#define GR_ONNX_EXPORT_OPSET 13
typedef struct {
    int opset;   /* the default domain's opset, 11..18; 0 = GR_ONNX_EXPORT_OPSET */
    int batch;   /* a fixed batch size; 0 = symbolic ("N") */
} gr_onnx_export_opts;
gr_status gr_model_export_onnx(const gr_model *m, const char *path, const gr_onnx_export_opts *opts,
                               gr_error *err);


/* -------------------------------------------------------------------- probe
 * "Which base, which cut?" by measurement (src/probe/probe*.c, `graft probe`).
 * A base runs once over a stratified sample of the data, taking the features
 * at every candidate cut in the same pass; each cut's features are scored
 * by two fast transferability estimates on standardized features:
 *   - ridge: one-vs-all ridge regression (closed form, dual when F > N) with
 *     stratified k-fold cross-validation over a small grid of lambda;
 *     score = CV accuracy of argmax of the k-fold predictions;
 *   - LogME (You et al., ICML 2021): per class, the log marginal likelihood
 *     of a Bayesian linear model with the prior/noise precisions maximized
 *     by the fixed-point iteration; score = mean over classes of evidence/N.
 * Spatial cuts are scored global-average-pooled and, when h*w*c is small
 * enough, flattened too; the row says which form scored better.
 *
 *   int cuts[64], n = gr_probe_pool_cuts(base, default_cut, cuts, 64);
 *   gr_probe_row rows[64]; int best;
 *   gr_probe_best_cut(base, ds, cuts, n, 2000, 1, &best, rows, &err);
 */
#define GR_PROBE_N_LAMBDA 7   /* lambda grid: 1e-4 .. 1e2 times trace(Z^T Z) / min(F, n) */

typedef enum {
    GR_PROBE_VEC = 0,    /* a non-spatial output (h = w = 1): the vector itself */
    GR_PROBE_GAP,        /* global average pooled: c features */
    GR_PROBE_FLAT        /* flattened (channels_last): h*w*c features */
} gr_probe_form;
const char *gr_probe_form_name(gr_probe_form f);   /* "vec", "gap", "flat" */

/* Scores of one form of one cut's features. */
typedef struct {
    gr_probe_form form;
    int features;            /* floats per sample; 0 = not scored */
    double ridge_acc;        /* k-fold CV accuracy at the best lambda, 0..1 */
    double ridge_lambda;     /* that lambda, in units of trace(Z^T Z) / min(F, n) */
    double logme;            /* LogME: mean log evidence per sample (higher is better) */
    double seconds;          /* scoring time */
} gr_probe_score;

typedef struct {
    int node;                /* the cut: node index in the base */
    char name[64];           /* its layer name */
    int h, w, c;             /* its output per sample */
    gr_probe_score pooled;   /* GAP (or VEC for non-spatial outputs) */
    gr_probe_score flat;     /* flattened; features = 0 when not scored (too big or not spatial) */
    bool use_flat;           /* flat scored better (ridge accuracy, then LogME) */
    double fwd_ms;           /* ms per image to run the base from its input to this cut */
} gr_probe_row;

typedef struct {
    int samples;             /* stratified, seeded sample of the data (0 = 2000; >= n = all) */
    uint64_t seed;
    int folds;               /* cross-validation folds (0 = 5) */
    int batch;               /* forward batch (0 = 64) */
    int threads;             /* decode threads (0 = 2) */
    int flat_max;            /* score the flattened form up to this many floats (0 = 8192; < 0 never) */
    int verbose;             /* 1: one progress line per step on stderr */
    bool distributed;        /* MPI build on several ranks: each rank runs the base on its part
                              * of the sample, the features are gathered (scores: every rank) */
} gr_probe_opts;

/* Runs base (an inference model; its input size must equal the samples')
 * once over a stratified sample of ds and scores the features at cuts
 * (node indices, any order, duplicates ignored).  rows gets one entry per
 * distinct cut, in ascending node order (capacity n_cuts); *n_rows their
 * count, *n_samples (may be NULL) the sample size.  opts may be NULL.     */
gr_status gr_probe_cuts(gr_model *base, const gr_dataset *ds, const int *cuts, int n_cuts,
                        const gr_probe_opts *opts, gr_probe_row *rows, int *n_rows,
                        int *n_samples, gr_error *err);
/* Index in rows of the recommendation: the best ridge accuracy (of the
 * row's better form), then the best LogME, then the shallower cut.  -1 if n = 0. */
int gr_probe_pick(const gr_probe_row *rows, int n);
/* gr_probe_cuts + gr_probe_pick: *best = the recommended cut's node index.
 * rows (capacity n_cuts) may be NULL.  samples 0 = 2000.                   */
gr_status gr_probe_best_cut(gr_model *base, const gr_dataset *ds, const int *cuts, int n_cuts,
                            int samples, uint64_t seed, int *best, gr_probe_row *rows,
                            gr_error *err);
/* "all-pools": every pooling layer at or before default_cut, then
 * default_cut itself, ascending.  Writes up to cap node indices; returns
 * how many there are.                                                      */
int gr_probe_pool_cuts(const gr_model *m, int default_cut, int *cuts, int cap);

/* The two scores on a feature matrix X [n, F] with labels y [n] in 0..C-1
 * (standardized inside).  Folds: the r-th sample of each class (in row
 * order) is in fold r % folds.  acc_grid [GR_PROBE_N_LAMBDA] (or NULL): the
 * CV accuracy at each lambda; ties go to the larger lambda.                */
gr_status gr_probe_ridge_cv(const float *X, const int *y, int n, int F, int C, int folds,
                            double *acc, double *lambda, double *acc_grid, gr_error *err);
gr_status gr_probe_logme(const float *X, const int *y, int n, int F, int C, double *score,
                         gr_error *err);
/* ---------------------------------------------------------------- end probe */

/* ------------------------------------------------------------------- tflite
 * A TFLite flatbuffer (.tflite) as a float graft model (src/format/tflite.c,
 * src/format/tflite_net.c): uint8/int8/int32 weights are dequantized once,
 * (q - zero_point) * scale; activations run in float32.  Operators: CONV_2D,
 * DEPTHWISE_CONV_2D, ADD, AVERAGE/MAX_POOL_2D, MEAN, RESHAPE, SQUEEZE,
 * FULLY_CONNECTED, SOFTMAX, RELU, RELU6, LOGISTIC, CONCATENATION,
 * (DE)QUANTIZE; any other is GR_ERR_UNSUPPORTED naming it.  Layer names are
 * the ops' output tensor names (up to the first ';', the last 63 bytes of a
 * longer one).  Preprocessing: GR_PREP_TF (the quantized MobileNets' input
 * is (q - 128) / 128, within 1/128 of tf's q / 127.5 - 1).                 */
gr_model *gr_tflite_load(const char *path, gr_error *err);        /* the file's input size */
/* The same at another input size (h, w = 0: the file's); an average pool
 * over the file's whole map becomes a global average pool.                */
gr_model *gr_tflite_load_sized(const char *path, int h, int w, gr_error *err);
/* ---------------------------------------------------------------- end tflite */
/* --------------------------------------------------------------------- onnx
 * An ONNX classifier (.onnx, opsets 11-18) as a graft model, mapped once at
 * load from NCHW onto graft's NHWC layers (src/format/onnx*.c): Conv
 * (groups, depthwise), BatchNormalization (folded into the conv before it),
 * Relu/Clip(0,6)/Sigmoid/Tanh/LeakyRelu, MaxPool/AveragePool/Global*Pool,
 * ReduceMean over H,W, Gemm/MatMul(+Add), Add, Concat (channels), Softmax,
 * Flatten/Reshape to [N, F], layout-only Transposes, Dropout/Identity; the
 * shape arithmetic (Shape, Gather, Concat, Cast, ConstantOfShape, Unsqueeze,
 * ...) is folded at the chosen input size.  Weights: float32 or float16, in
 * the file or in external data files inside the model's folder.  Any other
 * operator is GR_ERR_UNSUPPORTED listing them by name and count.  h = w = 0
 * takes the file's input size (224x224 when it is symbolic).  include_top =
 * false ends the model at the pre-logits tensor (the input of the last
 * Gemm/MatMul).  The input recipe is torchvision's ImageNet one (torch
 * normalization, crop 0.875).                                              */
gr_model *gr_onnx_load(const char *path, int h, int w, bool include_top, gr_error *err);
/* ------------------------------------------------------------------ end onnx */

#if defined(__GNUC__) && !defined(GRAFT_NO_VISIBILITY)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* GRAFT_H */
