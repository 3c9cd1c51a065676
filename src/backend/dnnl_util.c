/* dnnl_util.c — the net machinery of the oneDNN backend: owned objects,
 * steps, slot buffers, memory descriptors (see dnnl_util.h). */
#include <stdlib.h>
#include <string.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include "backend/dnnl_util.h"

gr_fast *dn_fast_of(gr_backend *be, int node, gr_error *err) {
    if (node < 0 || node >= be->n_nodes) {
        gr_error_set(err, GR_ERR_ARG, "backend: node %d of %d", node, be->n_nodes);
        return NULL;
    }
    if (!be->fast[node]) be->fast[node] = gr_calloc(1, sizeof(gr_fast), err);
    return be->fast[node];
}

gr_status dn_fail(gr_error *err, dnnl_status_t st, const char *what, const char *layer) {
    /* a shape oneDNN cannot express (invalid_arguments at build time) is
     * "unsupported" too: the caller falls back to the reference layers */
    gr_status code = st == dnnl_unimplemented || st == dnnl_invalid_arguments ? GR_ERR_UNSUPPORTED
                     : st == dnnl_out_of_memory ? GR_ERR_NOMEM
                                                : GR_ERR_BACKEND;
    return gr_error_set(err, code, "layer '%s': oneDNN %s: %s", layer ? layer : "?", what,
                        dnnl_status2str(st));
}

gr_status dn_net_init(dn_net *net, gr_error *err) {
    memset(net, 0, sizeof *net);
    DN_TRY(dnnl_engine_create(&net->eng, dnnl_cpu, 0), "engine", "backend");
    DN_TRY(dnnl_stream_create(&net->strm, net->eng, dnnl_stream_default_flags), "stream",
           "backend");
    return GR_OK;
}

void dn_net_free(dn_net *net) {
    for (int i = 0; i < net->n_steps; i++)
        if (net->steps[i].prim) dnnl_primitive_destroy(net->steps[i].prim);
    for (int i = 0; i < net->n_prims; i++) dnnl_primitive_destroy(net->prims[i]);
    for (int i = 0; i < net->n_mems; i++) dnnl_memory_destroy(net->mems[i]);
    for (int i = 0; i < DN_MAX_BUFS; i++) free(net->buf[i]);
    free(net->steps);
    free(net->prims);
    free(net->mems);
    free(net->bound);
    if (net->strm) dnnl_stream_destroy(net->strm);
    if (net->eng) dnnl_engine_destroy(net->eng);
    memset(net, 0, sizeof *net);
}

/* Grows an array of elements of size sz to hold one more. */
static int grow(void **arr, int *cap, int n, size_t sz, gr_error *err) {
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : 16;
    void *p = gr_realloc(*arr, (size_t)c * sz, err);
    if (!p) return -1;
    *arr = p;
    *cap = c;
    return 0;
}

dnnl_memory_t dn_mem(dn_net *net, const dnnl_memory_desc_t *md, void *handle, gr_error *err) {
    if (grow((void **)&net->mems, &net->cap_mems, net->n_mems, sizeof(dnnl_memory_t), err))
        return NULL;
    dnnl_memory_t m = NULL;
    dnnl_status_t st = dnnl_memory_create(&m, md, net->eng, handle);
    if (st != dnnl_success) {
        dn_fail(err, st, "memory", "backend");
        return NULL;
    }
    net->mems[net->n_mems++] = m;
    return m;
}

dnnl_memory_t dn_mem_slot(dn_net *net, const dnnl_memory_desc_t *md, int buf, gr_error *err) {
    if (grow((void **)&net->bound, &net->cap_bound, net->n_bound, sizeof(dn_bound), err))
        return NULL;
    dnnl_memory_t m = dn_mem(net, md, DNNL_MEMORY_NONE, err);
    if (!m) return NULL;
    size_t sz = dnnl_memory_desc_get_size(md);
    if (sz > net->buf_size[buf]) net->buf_size[buf] = sz;
    net->bound[net->n_bound].mem = m;
    net->bound[net->n_bound].buf = buf;
    net->n_bound++;
    return m;
}

gr_status dn_make_pd(dnnl_primitive_desc_t *pd, const void *desc, dnnl_engine_t eng,
                     const_dnnl_primitive_desc_t hint, const char *what, const char *layer,
                     gr_error *err) {
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr", layer);
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, desc, attr, eng, hint);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return dn_fail(err, st, what, layer);
    return GR_OK;
}

gr_status dn_add_step(dn_net *net, const_dnnl_primitive_desc_t pd, unsigned need, int n,
                      const dnnl_exec_arg_t *args, const char *layer, gr_error *err) {
    if (grow((void **)&net->steps, &net->cap_steps, net->n_steps, sizeof(dn_step), err))
        return GR_ERR_NOMEM;
    dn_step *s = &net->steps[net->n_steps];
    memset(s, 0, sizeof *s);
    DN_TRY(dnnl_primitive_create(&s->prim, pd), "primitive", layer);
    net->n_steps++;
    s->need = need;
    for (int i = 0; i < n; i++) s->args[s->nargs++] = args[i];
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (sp && dnnl_memory_desc_get_size(sp) > 0) {
        dnnl_memory_t m = dn_mem_slot(net, sp, 0, err);
        if (!m) return err->code;
        s = &net->steps[net->n_steps - 1];
        s->args[s->nargs].arg = DNNL_ARG_SCRATCHPAD;
        s->args[s->nargs].memory = m;
        s->nargs++;
    }
    return GR_OK;
}

gr_status dn_add_custom_step(dn_net *net,
                             gr_status (*run)(void *ctx, const dnnl_exec_arg_t *args, int nargs,
                                              gr_error *err),
                             void *ctx, unsigned need, int n, const dnnl_exec_arg_t *args,
                             size_t scratch_bytes, gr_error *err) {
    dnnl_memory_t sp = NULL;
    if (scratch_bytes > 0) {
        dnnl_memory_desc_t md = dn_md_1d((int)((scratch_bytes + sizeof(float) - 1) / sizeof(float)));
        if (!(sp = dn_mem_slot(net, &md, 0, err))) return err->code;
    }
    if (grow((void **)&net->steps, &net->cap_steps, net->n_steps, sizeof(dn_step), err))
        return GR_ERR_NOMEM;
    dn_step *s = &net->steps[net->n_steps++];
    memset(s, 0, sizeof *s);
    s->run = run;
    s->ctx = ctx;
    s->need = need;
    for (int i = 0; i < n; i++) s->args[s->nargs++] = args[i];
    if (sp) s->args[s->nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sp};
    return GR_OK;
}

static const dnnl_memory_desc_t *mem_md(dnnl_memory_t m) {
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(m, &md);
    return md;
}

/* A reorder primitive desc src -> dst (with dst += src when accumulate). */
static gr_status reorder_pd(dn_net *net, dnnl_memory_t src, dnnl_memory_t dst, int accumulate,
                            dnnl_primitive_desc_t *pd, const char *layer, gr_error *err) {
    dnnl_primitive_attr_t attr = NULL;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr", layer);
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && accumulate) {
        dnnl_post_ops_t po = NULL;
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(pd, mem_md(src), net->eng, mem_md(dst), net->eng,
                                                attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return dn_fail(err, st, "reorder", layer);
    return GR_OK;
}

gr_status dn_add_reorder(dn_net *net, dnnl_memory_t src, dnnl_memory_t dst, int accumulate,
                         unsigned need, const char *layer, gr_error *err) {
    dnnl_primitive_desc_t pd = NULL;
    gr_status st = reorder_pd(net, src, dst, accumulate, &pd, layer, err);
    if (st) return st;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    st = dn_add_step(net, pd, need, 2, a, layer, err);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

gr_status dn_make_reorder(dn_net *net, dnnl_memory_t src, dnnl_memory_t dst,
                          dnnl_primitive_t *out, const char *layer, gr_error *err) {
    if (grow((void **)&net->prims, &net->cap_prims, net->n_prims, sizeof(dnnl_primitive_t), err))
        return GR_ERR_NOMEM;
    dnnl_primitive_desc_t pd = NULL;
    /* weight reorders run rarely: library-managed scratchpad is fine here */
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, mem_md(src), net->eng,
                                                          mem_md(dst), net->eng, NULL);
    if (st != dnnl_success) return dn_fail(err, st, "weights reorder", layer);
    st = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return dn_fail(err, st, "weights reorder", layer);
    net->prims[net->n_prims++] = *out;
    return GR_OK;
}

gr_status dn_exec_reorder(dn_net *net, dnnl_primitive_t r, dnnl_memory_t src, dnnl_memory_t dst,
                          gr_error *err) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    DN_TRY(dnnl_primitive_execute(r, net->strm, 2, a), "weights reorder", "backend");
    DN_TRY(dnnl_stream_wait(net->strm), "stream wait", "backend");
    return GR_OK;
}

gr_status dn_net_finalize(dn_net *net, gr_error *err) {
    for (int b = 0; b < DN_MAX_BUFS; b++) {
        free(net->buf[b]);
        net->buf[b] = NULL;
        if (!net->buf_size[b] || net->lent) continue;
        size_t sz = (net->buf_size[b] + 63) / 64 * 64;
        net->buf[b] = aligned_alloc(64, sz);
        if (!net->buf[b])
            return gr_error_nomem(err, "allocating the network's activations:", (double)sz,
                                  "use a smaller --batch or --input-size");
    }
    for (int i = 0; i < net->n_bound; i++)
        DN_TRY(dnnl_memory_set_data_handle(net->bound[i].mem, net->buf[net->bound[i].buf]),
               "set handle", "backend");
    return GR_OK;
}

gr_status dn_net_bind_lent(dn_net *net, gr_backend *be, gr_error *err) {
    if (!net->lent) return GR_OK;
    for (int b = 0; b < DN_MAX_BUFS; b++) {
        if (be->bwd_buf_size[b] >= net->buf_size[b]) continue;
        size_t sz = (net->buf_size[b] + 63) / 64 * 64;
        void *p = aligned_alloc(64, sz);
        if (!p) return gr_error_nomem(err, "allocating the backward's buffers:", (double)sz,
                                             "use a smaller --batch or --input-size");
        free(be->bwd_buf[b]);
        be->bwd_buf[b] = p;
        be->bwd_buf_size[b] = sz;
    }
    for (int i = 0; i < net->n_bound; i++)
        DN_TRY(dnnl_memory_set_data_handle(net->bound[i].mem, be->bwd_buf[net->bound[i].buf]), "set handle",
               "backend");
    return GR_OK;
}

gr_status dn_net_run(dn_net *net, unsigned mask, gr_error *err) {
    for (int i = 0; i < net->n_steps; i++) {
        dn_step *s = &net->steps[i];
        if (!(s->need & mask)) continue;
        if (s->run) {
            DN_TRY(dnnl_stream_wait(net->strm), "stream wait", "backend");
            gr_status st = s->run(s->ctx, s->args, s->nargs, err);
            if (st) return st;
            continue;
        }
        DN_TRY(dnnl_primitive_execute(s->prim, net->strm, s->nargs, s->args), "execute",
               "backend");
    }
    DN_TRY(dnnl_stream_wait(net->strm), "stream wait", "backend");
    return GR_OK;
}

void dn_set(dnnl_memory_t mem, const void *p) { dnnl_memory_set_data_handle(mem, (void *)p); }

dnnl_memory_desc_t dn_md_nhwc(int B, int C, int H, int W, dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {B, C, H, W};
    dnnl_memory_desc_init_by_tag(&md, 4, d, dt, dnnl_nhwc);
    return md;
}

dnnl_memory_desc_t dn_md_any4(int B, int C, int H, int W, dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {B, C, H, W};
    dnnl_memory_desc_init_by_tag(&md, 4, d, dt, dnnl_format_tag_any);
    return md;
}

dnnl_memory_desc_t dn_md_plain4(int B, int C, int H, int W, dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {B, C, H, W};
    dnnl_memory_desc_init_by_tag(&md, 4, d, dt, dnnl_nchw);
    return md;
}

dnnl_memory_desc_t dn_md_hwio(int KH, int KW, int ICg, int OC, int groups) {
    dnnl_memory_desc_t md;
    if (groups == 1) {
        dnnl_dims_t d = {OC, ICg, KH, KW};
        dnnl_dims_t s = {1, OC, (int64_t)KW * ICg * OC, (int64_t)ICg * OC};
        dnnl_memory_desc_init_by_strides(&md, 4, d, dnnl_f32, s);
    } else {
        int OCg = OC / groups;
        dnnl_dims_t d = {groups, OCg, ICg, KH, KW};
        dnnl_dims_t s = {OCg, 1, OC, (int64_t)KW * ICg * OC, (int64_t)ICg * OC};
        dnnl_memory_desc_init_by_strides(&md, 5, d, dnnl_f32, s);
    }
    return md;
}

dnnl_memory_desc_t dn_md_weights_any(int KH, int KW, int ICg, int OC, int groups,
                                     dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    if (groups == 1) {
        dnnl_dims_t d = {OC, ICg, KH, KW};
        dnnl_memory_desc_init_by_tag(&md, 4, d, dt, dnnl_format_tag_any);
    } else {
        dnnl_dims_t d = {groups, OC / groups, ICg, KH, KW};
        dnnl_memory_desc_init_by_tag(&md, 5, d, dt, dnnl_format_tag_any);
    }
    return md;
}

dnnl_memory_desc_t dn_md_1d(int n) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {n};
    dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_x);
    return md;
}

dnnl_memory_desc_t dn_md_2d(int rows, int cols, dnnl_format_tag_t tag, dnnl_data_type_t dt) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {rows, cols};
    dnnl_memory_desc_init_by_tag(&md, 2, d, dt, tag);
    return md;
}

int dn_act_eltwise(gr_act act, float alpha, dnnl_alg_kind_t *alg, float *a, float *b) {
    *a = 0.0f;
    *b = 0.0f;
    switch (act) {
    case GR_ACT_LINEAR: return 0;
    case GR_ACT_RELU: *alg = dnnl_eltwise_relu; return 1;
    case GR_ACT_LEAKY: *alg = dnnl_eltwise_relu; *a = alpha; return 1;
    case GR_ACT_RELU6: *alg = dnnl_eltwise_clip; *a = 0.0f; *b = 6.0f; return 1;
    case GR_ACT_SIGMOID: *alg = dnnl_eltwise_logistic; return 1;
    case GR_ACT_TANH: *alg = dnnl_eltwise_tanh; return 1;
    case GR_ACT_SWISH: *alg = dnnl_eltwise_swish; *a = 1.0f; return 1;   /* x * sigmoid(1 * x) */
    case GR_ACT_HARDSWISH: *alg = dnnl_eltwise_hardswish; return 1;     /* x * relu6(x + 3) / 6 */
    case GR_ACT_GELU: *alg = dnnl_eltwise_gelu_erf; return 1;
    default: return -1;   /* hardsigmoid: not in oneDNN 2.6 (the reference runs it) */
    }
}

int dn_pad_end(int in, int k, int s, int pad_begin, int pad_end, int out) {
    if (pad_end >= 0 && (in + pad_begin + pad_end - k) / s + 1 == out) return pad_end;
    return (out - 1) * s + k - in - pad_begin;
}

int dn_bf16_native(void) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    unsigned want = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
    return (isa & want) == want;
}
