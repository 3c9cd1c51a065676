/* model.h — the model's insides, shared by the library's modules (not public).
 *
 * A model is a list of nodes in topological order.  Node i reads the outputs
 * of nodes in[0..n_in) (-1 = the model input) and produces [B, oh, ow, oc].
 * All parameters live in ONE allocation (m->w) with a table of named views
 * (m->params): freezing is a range, a checkpoint is one write, the optimizer
 * one loop.  Parameter names are "<layer>/<kind>" with kind one of
 * kernel, bias, gamma, beta, moving_mean, moving_variance, mean, std.       */
#ifndef GRAFT_MODEL_H
#define GRAFT_MODEL_H
#include <stdarg.h>
#include "graft.h"
#include "core/core.h"
#include "ops/op.h"

/* Limits checked before allocating (sizes read from files): values per
 * image at any node (1 GiB of float32) and a kernel/stride/pad/pool size
 * (GR_MAX_WINDOW, ops/op.h); the parameters must also fit in
 * gr_memory_budget() (core.h).                                            */
#define GR_MAX_SAMPLE_FLOATS ((int64_t)1 << 28)

typedef struct {
    char name[96];       /* "<layer>/<kind>" */
    char kind[24];       /* "kernel", "bias", ... */
    int node;
    int ndim;
    int64_t shape[4];
    size_t offset;       /* into m->w, in floats */
    size_t count;
} gr_param;

typedef struct {
    gr_layer_spec s;     /* the spec with defaults applied and padding resolved */
    int in[GR_MAX_INPUTS];
    int n_in;            /* >= 1 except for nothing; in[k] = -1 is the model input */
    int ih, iw, ic;      /* shape of in[0] per sample */
    int oh, ow, oc;      /* output per sample */
    int p0, np;          /* range in m->params */
    bool frozen;
} gr_node;

struct gr_model {
    int in_h, in_w, in_c;
    gr_node *nodes;
    int n_nodes, cap_nodes;
    gr_param *params;
    int n_params, cap_params;
    float *w;            /* all parameters, one allocation */
    size_t w_count, w_cap;
    uint64_t w_version;  /* bumped whenever weights change (fast caches re-pack) */
    /* A trainer's step changes only the weights of nodes >= w_tail_from: it
     * bumps w_tail_version, so caches of frozen nodes below keep their packed
     * weights (gr_model_weights_changed).  Moving w_tail_from bumps w_version. */
    uint64_t w_tail_version;
    int w_tail_from;
    /* Bumped whenever nodes are added or removed: an execution context
     * (exec/ctx.h) drops its per-node caches when it sees a new value.      */
    uint64_t g_version;
    gr_norm norm;        /* the input recipe: normalization (defaults resolved), */
    gr_resize_mode resize;   /* resize mode, */
    gr_interp interp;    /* interpolation, */
    float crop;          /* crop fraction (0 = 1) */
    char recipe_note[600];   /* where the recipe came from (gr_model_recipe_note), "" */
    /* Other names of nodes (an imported ONNX graph's tensor and node names),
     * found by gr_model_find after the layer names: n_alias pairs.         */
    char **alias;
    int *alias_node;
    int n_alias;
    char **class_names;  /* n_classes strings, or NULL */
    int n_classes;
    /* The precision a context made for this model starts with (a setting,
     * gr_model_set_precision; the running state is in the context).       */
    gr_precision precision;
};

/* v as the shortest "%g" text that reads back (strtof) as v exactly, in
 * buf (at least 32 chars); returns buf.  For the recipe's numbers in files. */
char *gr_float_short(float v, char *buf);

/* Pointer to the first float of param p. */
static inline float *gr_param_data(gr_model *m, int p) { return m->w + m->params[p].offset; }
/* The same, read-only (a model shared by execution contexts). */
static inline const float *gr_param_cdata(const gr_model *m, int p) { return m->w + m->params[p].offset; }
/* Fixed statistics (BN moving mean/variance, standardize mean/std): stored
 * with the model, never trained. */
bool gr_param_is_statistic(const char *kind);
/* Whether the weights of nodes first..last changed since a cache recorded
 * (*ver, *tver); records the current versions.                             */
static inline bool gr_model_weights_changed(const gr_model *m, int last, uint64_t *ver, uint64_t *tver) {
    bool changed = *ver != m->w_version || (last >= m->w_tail_from && *tver != m->w_tail_version);
    *ver = m->w_version;
    *tver = m->w_tail_version;
    return changed;
}
/* Index of node's param of the given kind, or -1. */
int gr_node_param(const gr_model *m, int node, const char *kind);
/* Output floats per sample of node (-1: the model input). */
int64_t gr_node_size(const gr_model *m, int node);

/* Another name for node (ignored when empty or taken): gr_model_find finds it. */
gr_status gr_model_add_alias(gr_model *m, const char *name, int node, gr_error *err);

/* Fills gr_conv_dims / gr_pool_dims for node with batch B (see ops.h). */
gr_conv_dims gr_node_conv_dims(const gr_model *m, int node, int B);
gr_pool_dims gr_node_pool_dims(const gr_model *m, int node, int B);
/* The op-table view of node for a batch of B with inputs ins (shapes,
 * spec, parameters; inference mode, no training state).                    */
gr_op_run gr_node_run(const gr_model *m, int node, int B, const float *const *ins);

/* exec.c: GR_OK when the B outputs of node (-1: the last) in out are all
 * finite; else GR_ERR_NUMERIC naming the layer, the count and the image.   */
gr_status gr_outputs_check(const gr_model *m, int node, const float *out, int B, gr_error *err);

/* gr_model_save with extra tensors (e.g. optimizer state in checkpoints);
 * entries are gr_st_entry (io/safetensors.h).                              */
gr_status gr_model_save_ex(const gr_model *m, const char *path, const char *extra_json,
                           const void *extra, int n_extra, gr_error *err);

#endif
