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
    bool training;       /* updated by a live trainer every step (set by gr_trainer_new) */
    void *fast;          /* the fast backend's cached state (owned by the backend) */
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
    gr_preprocess prep;  /* the input recipe: normalization, */
    gr_resize_mode resize;   /* resize mode, */
    gr_interp interp;    /* interpolation, */
    float crop;          /* crop fraction (0 = 1) */
    char **class_names;  /* n_classes strings, or NULL */
    int n_classes;
    gr_precision precision;
    struct gr_workspace *ws;   /* inference buffers, grown on demand */
    /* Buffers shared by the nodes' backward nets (they run one at a time):
     * oneDNN's scratchpad and the blocked copies of a layer's tensors, each
     * sized for the largest layer rather than summed over layers (Winograd
     * backward on VGG16 at batch 64: ~100 MB of scratchpad per layer).      */
    void *bwd_buf[4];
    size_t bwd_buf_size[4];
};

/* Pointer to the first float of param p. */
static inline float *gr_param_data(gr_model *m, int p) { return m->w + m->params[p].offset; }
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

/* Fills gr_conv_dims / gr_pool_dims for node with batch B (see ops.h). */
gr_conv_dims gr_node_conv_dims(const gr_model *m, int node, int B);
gr_pool_dims gr_node_pool_dims(const gr_model *m, int node, int B);
/* The op-table view of node for a batch of B with inputs ins (shapes,
 * spec, parameters; inference mode, no training state).                    */
gr_op_run gr_node_run(const gr_model *m, int node, int B, const float *const *ins);

/* exec.c: GR_OK when the B outputs of node (-1: the last) in out are all
 * finite; else GR_ERR_NUMERIC naming the layer, the count and the image.   */
gr_status gr_outputs_check(const gr_model *m, int node, const float *out, int B, gr_error *err);

/* exec.c: frees the inference workspace. */
void gr_workspace_free(struct gr_workspace *ws);

/* Frees the inference workspace and the backend caches (after structural changes). */
void gr_model_drop_caches(gr_model *m);

/* Runs one node in inference mode (reference or fast path).  ins[k] are the
 * node's inputs, out its output, for a batch of B.                          */
gr_status gr_node_forward_infer(gr_model *m, int node, const float *const *ins, float *out,
                                int B, gr_error *err);

/* Runs layers from..upto in inference mode; x is the output of layer
 * from-1 (the model input when from = 0).  out: B * size of layer upto.   */
gr_status gr_model_run(gr_model *m, int from, const float *x, int B, int upto, float *out,
                       gr_error *err);

/* gr_model_save with extra tensors (e.g. optimizer state in checkpoints);
 * entries are gr_st_entry (io/safetensors.h).                              */
gr_status gr_model_save_ex(const gr_model *m, const char *path, const char *extra_json,
                           const void *extra, int n_extra, gr_error *err);

#endif
