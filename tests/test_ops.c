/* test_ops.c — the ops added through the op table (src/ops/op.h): swish,
 * hardswish, hardsigmoid, gelu, multiply (channel broadcast) and layernorm,
 * run through their table entries (gr_op_forward, the entry's backward)
 * against two independent oracles:
 *   1. PyTorch fixtures tests/fixtures/ops/<case>.bin (tests/fixtures/gen_ops.py);
 *   2. central finite differences of L = sum(out * R) for every backward
 *      (gradients ACCUMULATE: buffers start at GBASE, the test subtracts it);
 * and a squeeze-and-excitation head using them all in a model: PyTorch's
 * probabilities from gr_model_predict and its cross-entropy gradients from
 * the trainer (with the fused activations), the same after a save/load, and
 * the errors of bad specs.  Run from the repo root.                        */
#include <stdint.h>
#include <unistd.h>
#include "check.h"
#include "graph/model.h"
#include "train/train.h"

#define GBASE 0.5f

/* ---- fixtures: tests/fixtures/ops/<case>.bin (check.h's GRFX reader) ---------- */
typedef check_fx fixture;
#define fx_free check_fx_free
#define fx_get check_fx_get
static int fx_load(fixture *f, const char *name) { return check_fx_load(f, "tests/fixtures/ops", name); }

/* ---- helpers ------------------------------------------------------------------- */
static check_xs rng = {88172645463325252ULL};
#define arr check_filled
static float *rand_arr(size_t n, float a) { return check_xs_fill(&rng, n, a); }
static float *added(const float *g, size_t n) {
    float *p = arr(n, 0);
    for (size_t i = 0; i < n; i++) p[i] = g[i] - GBASE;
    return p;
}

/* One op under test: its run (inputs, params), output, the loss weights R. */
typedef struct {
    gr_layer_spec s;
    gr_op_run r;
    float *out, *R;
    size_t nout;
} opcase;

static void oc_init(opcase *c, gr_layer_spec s, int B, int n_in, const gr_dims3 *in, const float *const *ins,
                    float *const *p) {
    memset(c, 0, sizeof *c);
    c->s = s;
    c->r.s = &c->s;
    c->r.B = B;
    c->r.n_in = n_in;
    gr_error e;
    c->r.out = in[0];
    const gr_op_def *d = gr_op_get(s.op);
    CHECK(d != NULL, "op %d has no table entry", (int)s.op);
    CHECK(!d->shape || d->shape(&c->s, in, n_in, &c->r.out, &e) == GR_OK, "shape rule refused the case");
    for (int k = 0; k < n_in; k++) { c->r.in[k] = in[k]; c->r.ins[k] = ins[k]; }
    for (int k = 0; p && k < GR_OP_MAX_PARAMS; k++) c->r.p[k] = p[k];
    c->nout = (size_t)B * (size_t)gr_dims3_size(c->r.out);
    c->out = arr(c->nout, 0);
}
static void oc_free(opcase *c) { free(c->out); free(c->R); }

static double oc_loss(opcase *c) {
    gr_op_forward(&c->r, c->out);
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->out[i] * c->R[i];
    return s;
}

/* The backward through the table with dout = R; grads start at GBASE. */
static void oc_backward(opcase *c, float *const *din, float *const *dp) {
    gr_op_forward(&c->r, c->out);
    gr_op_get(c->s.op)->backward(&c->r, c->out, c->R, din, dp);
}

/* got (what the backward added) against central differences in x[0..n). */
static void fd_check(opcase *c, const char *what, float *x, size_t n, const float *got) {
    float *num = arr(n, 0);
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        const float x0 = x[i];
        x[i] = x0 + h;
        const double lp = oc_loss(c);
        x[i] = x0 - h;
        const double lm = oc_loss(c);
        x[i] = x0;
        num[i] = (float)((lp - lm) / ((double)(x0 + h) - (double)(x0 - h)));
    }
    CHECK_CLOSE(what, got, num, n, 2e-3, 2e-3);
    free(num);
}

/* ---- activations ------------------------------------------------------------------ */
static const struct { gr_act act; const char *name; } new_acts[] = {
    {GR_ACT_SWISH, "swish"}, {GR_ACT_HARDSWISH, "hardswish"}, {GR_ACT_HARDSIGMOID, "hardsigmoid"},
    {GR_ACT_GELU, "gelu"}};

static void test_activations_pytorch(void) {
    for (size_t a = 0; a < sizeof new_acts / sizeof new_acts[0]; a++) {
        char fname[64];
        snprintf(fname, sizeof fname, "act_%s", new_acts[a].name);
        fixture f;
        if (fx_load(&f, fname)) continue;
        float *in = fx_get(&f, "in", 80), *out = fx_get(&f, "out", 80), *R = fx_get(&f, "R", 80),
              *din = fx_get(&f, "din", 80);
        if (in && out && R && din) {
            gr_act parsed;
            CHECK(gr_act_parse(new_acts[a].name, &parsed) == 0 && parsed == new_acts[a].act &&
                      !strcmp(gr_act_name(parsed), new_acts[a].name), "%s: name does not round-trip", fname);
            opcase c;
            gr_dims3 d = {1, 1, 80};
            const float *ins[1] = {in};
            oc_init(&c, gr_activation(new_acts[a].act, 0), 1, 1, &d, ins, NULL);
            c.R = arr(80, 0);
            memcpy(c.R, R, 80 * sizeof(float));
            float *g = arr(80, GBASE);
            float *dins[1] = {g}, *dp[GR_OP_MAX_PARAMS] = {NULL};
            oc_backward(&c, dins, dp);
            char what[80];
            snprintf(what, sizeof what, "%s forward", new_acts[a].name);
            CHECK_CLOSE(what, c.out, out, 80, 1e-6, 1e-5);
            float *ad = added(g, 80);
            snprintf(what, sizeof what, "%s backward", new_acts[a].name);
            CHECK_CLOSE(what, ad, din, 80, 1e-6, 1e-5);
            free(ad); free(g); oc_free(&c);
        }
        fx_free(&f);
    }
    gr_act x;
    CHECK(gr_act_parse("silu", &x) == 0 && x == GR_ACT_SWISH, "silu is swish");
}

static void test_activations_fd(void) {
    for (size_t a = 0; a < sizeof new_acts / sizeof new_acts[0]; a++) {
        float *in = rand_arr(40, 5.0f);
        for (int i = 0; i < 40; i++)   /* off the kinks at -3 and 3 (hard kinds) */
            if (fabsf(fabsf(in[i]) - 3.0f) < 0.05f) in[i] += 0.2f;
        opcase c;
        gr_dims3 d = {1, 5, 8};
        const float *ins[1] = {in};
        oc_init(&c, gr_activation(new_acts[a].act, 0), 1, 1, &d, ins, NULL);
        c.R = rand_arr(40, 1.0f);
        float *g = arr(40, GBASE), *dins[1] = {g}, *dp[GR_OP_MAX_PARAMS] = {NULL};
        oc_backward(&c, dins, dp);
        float *ad = added(g, 40);
        char what[64];
        snprintf(what, sizeof what, "%s din", new_acts[a].name);
        fd_check(&c, what, in, 40, ad);
        free(ad); free(g); free(in); oc_free(&c);
    }
}

/* The fused form (dense + act): dy * act'(pre-activation), pre kept in r.pre. */
static void test_fused_activation_grad(void) {
    for (size_t a = 0; a < sizeof new_acts / sizeof new_acts[0]; a++) {
        float *x = rand_arr(12, 4.0f), *pre = arr(12, 0), *y = arr(12, 0), *dy = rand_arr(12, 1.0f);
        gr_layer_spec s = gr_dense(12, new_acts[a].act);
        gr_op_run r = {.s = &s, .B = 1, .n_in = 1, .in = {{1, 1, 12}}, .out = {1, 1, 12}, .pre = pre};
        memcpy(y, x, 12 * sizeof(float));
        gr_op_act_forward(&r, y);
        CHECK(!memcmp(pre, x, 12 * sizeof(float)), "%s: the pre-activation is kept", new_acts[a].name);
        float *want = arr(12, 0);
        gr_act_backward(dy, x, y, 12, new_acts[a].act, 0, want);   /* the layer form, checked above */
        gr_op_act_backward(&r, y, dy);
        CHECK_CLOSE("fused act grad", dy, want, 12, 1e-7, 1e-6);
        free(x); free(pre); free(y); free(dy); free(want);
    }
}

/* ---- multiply ---------------------------------------------------------------------- */
static void pt_mul(const char *name, int bh, int bw) {
    fixture f;
    if (fx_load(&f, name)) return;
    size_t na = 2 * 3 * 4 * 5, nb = (size_t)2 * bh * bw * 5;
    float *a = fx_get(&f, "a", na), *b = fx_get(&f, "b", nb), *out = fx_get(&f, "out", na), *R = fx_get(&f, "R", na),
          *da = fx_get(&f, "da", na), *db = fx_get(&f, "db", nb);
    if (a && b && out && R && da && db) {
        opcase c;
        gr_dims3 d[2] = {{3, 4, 5}, {bh, bw, 5}};
        const float *ins[2] = {a, b};
        oc_init(&c, gr_multiply(0, 1), 2, 2, d, ins, NULL);
        c.R = arr(na, 0);
        memcpy(c.R, R, na * sizeof(float));
        float *ga = arr(na, GBASE), *gb = arr(nb, GBASE), *dins[2] = {ga, gb}, *dp[GR_OP_MAX_PARAMS] = {NULL};
        oc_backward(&c, dins, dp);
        CHECK_CLOSE("mul forward", c.out, out, na, 1e-6, 1e-5);
        float *x = added(ga, na), *y = added(gb, nb);
        CHECK_CLOSE("mul da", x, da, na, 1e-5, 1e-4);
        CHECK_CLOSE("mul db", y, db, nb, 1e-5, 1e-4);
        free(x); free(y); free(ga); free(gb); oc_free(&c);
    }
    fx_free(&f);
}
static void test_mul_pytorch(void) {
    pt_mul("mul_bcast", 1, 1);
    pt_mul("mul_same", 3, 4);
}

static void test_mul_fd(void) {
    for (int bc = 0; bc < 2; bc++) {
        int bh = bc ? 1 : 3, bw = bc ? 1 : 2;
        size_t na = 2 * 3 * 2 * 4, nb = (size_t)2 * bh * bw * 4;
        float *a = rand_arr(na, 2.0f), *b = rand_arr(nb, 2.0f);
        opcase c;
        gr_dims3 d[2] = {{3, 2, 4}, {bh, bw, 4}};
        const float *ins[2] = {a, b};
        oc_init(&c, gr_multiply(0, 1), 2, 2, d, ins, NULL);
        c.R = rand_arr(na, 1.0f);
        float *ga = arr(na, GBASE), *gb = arr(nb, GBASE), *dins[2] = {ga, gb}, *dp[GR_OP_MAX_PARAMS] = {NULL};
        oc_backward(&c, dins, dp);
        float *x = added(ga, na), *y = added(gb, nb);
        fd_check(&c, bc ? "mul(bcast) da" : "mul da", a, na, x);
        fd_check(&c, bc ? "mul(bcast) db" : "mul db", b, nb, y);
        free(x); free(y); free(ga); free(gb); free(a); free(b); oc_free(&c);
    }
}

/* ---- layernorm ---------------------------------------------------------------------- */
static void test_layernorm_pytorch(void) {
    fixture f;
    if (fx_load(&f, "layernorm")) return;
    size_t n = 2 * 3 * 2 * 6;
    float *in = fx_get(&f, "in", n), *g = fx_get(&f, "gamma", 6), *be = fx_get(&f, "beta", 6),
          *out = fx_get(&f, "out", n), *R = fx_get(&f, "R", n), *din = fx_get(&f, "din", n),
          *dg = fx_get(&f, "dgamma", 6), *db = fx_get(&f, "dbeta", 6);
    if (in && g && be && out && R && din && dg && db) {
        opcase c;
        gr_dims3 d = {3, 2, 6};
        const float *ins[1] = {in};
        float *p[GR_OP_MAX_PARAMS] = {g, be};
        oc_init(&c, gr_layernorm(0), 2, 1, &d, ins, p);
        CHECK(c.s.eps == 1e-5f, "default epsilon %g, want 1e-5", (double)c.s.eps);
        c.R = arr(n, 0);
        memcpy(c.R, R, n * sizeof(float));
        float *gx = arr(n, GBASE), *gg = arr(6, GBASE), *gb = arr(6, GBASE);
        float *dins[1] = {gx}, *dp[GR_OP_MAX_PARAMS] = {gg, gb};
        oc_backward(&c, dins, dp);
        CHECK_CLOSE("layernorm forward", c.out, out, n, 1e-5, 1e-4);
        float *a = added(gx, n), *b = added(gg, 6), *e = added(gb, 6);
        CHECK_CLOSE("layernorm din", a, din, n, 1e-5, 1e-4);
        CHECK_CLOSE("layernorm dgamma", b, dg, 6, 1e-5, 1e-4);
        CHECK_CLOSE("layernorm dbeta", e, db, 6, 1e-5, 1e-4);
        free(a); free(b); free(e); free(gx); free(gg); free(gb); oc_free(&c);
    }
    fx_free(&f);
}

static void test_layernorm_fd(void) {
    size_t n = 2 * 2 * 3 * 5;
    float *in = rand_arr(n, 2.0f), *g = rand_arr(5, 1.5f), *be = rand_arr(5, 1.0f);
    opcase c;
    gr_dims3 d = {2, 3, 5};
    const float *ins[1] = {in};
    float *p[GR_OP_MAX_PARAMS] = {g, be};
    oc_init(&c, gr_layernorm(1e-3f), 2, 1, &d, ins, p);
    c.R = rand_arr(n, 1.0f);
    float *gx = arr(n, GBASE), *gg = arr(5, GBASE), *gb = arr(5, GBASE);
    float *dins[1] = {gx}, *dp[GR_OP_MAX_PARAMS] = {gg, gb};
    oc_backward(&c, dins, dp);
    float *a = added(gx, n), *b = added(gg, 5), *e = added(gb, 5);
    fd_check(&c, "layernorm din", in, n, a);
    fd_check(&c, "layernorm dgamma", g, 5, b);
    fd_check(&c, "layernorm dbeta", be, 5, e);
    free(a); free(b); free(e); free(gx); free(gg); free(gb); free(in); free(g); free(be); oc_free(&c);
}

/* ---- a squeeze-and-excitation head in a model ------------------------------------------ */
static gr_model *se_model(gr_error *e) {
    gr_model *m = gr_model_new(4, 4, 6, e);
    if (!m) return NULL;
    int ok = gr_model_append(m, gr_named(gr_layernorm(0), "ln"), e) == 0 &&
             gr_model_append(m, gr_global_avgpool(), e) == 1 &&
             gr_model_append(m, gr_named(gr_dense(3, GR_ACT_SWISH), "sq"), e) == 2 &&
             gr_model_append(m, gr_named(gr_dense(6, GR_ACT_HARDSIGMOID), "ex"), e) == 3 &&
             gr_model_append(m, gr_multiply(0, 3), e) == 4 && gr_model_append(m, gr_flatten(), e) == 5 &&
             gr_model_append(m, gr_named(gr_dense(5, GR_ACT_GELU), "d1"), e) == 6 &&
             gr_model_append(m, gr_named(gr_dense(3, GR_ACT_HARDSWISH), "d2"), e) == 7 &&
             gr_model_append(m, gr_named(gr_dense(3, GR_ACT_SOFTMAX), "out"), e) == 8;
    if (!ok) {
        gr_model_free(m);
        return NULL;
    }
    return m;
}

static void check_se_head(gr_model *m, fixture *f, const char *label) {
    float *x = fx_get(f, "x", 2 * 96), *prob = fx_get(f, "prob", 6), *lab = fx_get(f, "labels", 2);
    if (!x || !prob || !lab) return;
    gr_error e;
    float p[6];
    CHECK(gr_model_predict(m, x, 2, -1, p, &e) == GR_OK, "%s: predict: %s", label, e.msg);
    CHECK_CLOSE(label, p, prob, 6, 1e-6, 1e-5);
    int labels[2] = {(int)lab[0], (int)lab[1]};
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f}), .max_batch = 2};
    gr_trainer *t = gr_trainer_new(m, 0, &o, &e);
    CHECK(t != NULL, "%s: trainer: %s", label, t ? "" : e.msg);
    if (!t) return;
    float loss;
    CHECK(gr_trainer_gradients(t, x, labels, 2, &loss, NULL, &e) == GR_OK, "%s: gradients: %s", label, e.msg);
    size_t off, cnt;
    const float *g = gr_trainer_grad(t, &off, &cnt);
    for (int q = 0; q < m->n_params; q++) {
        char nm[128];
        snprintf(nm, sizeof nm, "d:%s", m->params[q].name);
        const float *want = fx_get(f, nm, m->params[q].count);
        if (want) CHECK_CLOSE(nm, g + (m->params[q].offset - off), want, m->params[q].count, 2e-6, 1e-4);
    }
    gr_trainer_free(t);
}

static void test_se_head_pytorch(void) {
    fixture f;
    if (fx_load(&f, "se_head")) return;
    gr_error e;
    gr_model *m = se_model(&e);
    CHECK(m != NULL, "se model: %s", e.msg);
    for (int q = 0; m && q < m->n_params; q++) {
        const float *v = fx_get(&f, m->params[q].name, m->params[q].count);
        if (v) memcpy(gr_param_data(m, q), v, m->params[q].count * sizeof(float));
    }
    if (m) {
        m->w_version++;
        check_se_head(m, &f, "se head");
        /* saved and loaded: the same architecture and numbers */
        char dir[] = "/tmp/graft-test-ops-XXXXXX", path[64];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(path, sizeof path, "%s/se.gft", dir);
        CHECK(gr_model_save(m, path, NULL, &e) == GR_OK, "save: %s", e.msg);
        gr_model *m2 = gr_model_load(path, &e);
        CHECK(m2 != NULL, "load: %s", m2 ? "" : e.msg);
        if (m2) {
            CHECK(gr_model_num_layers(m2) == 9 && gr_model_layer_op(m2, 4) == GR_OP_MUL &&
                      gr_model_layer_op(m2, 0) == GR_OP_LAYERNORM && m2->nodes[0].s.eps == 1e-5f &&
                      m2->nodes[6].s.act == GR_ACT_GELU && m2->nodes[4].in[0] == 0 && m2->nodes[4].in[1] == 3,
                  "the loaded architecture differs");
            check_se_head(m2, &f, "se head (loaded)");
            gr_model_free(m2);
        }
        unlink(path);
        rmdir(dir);
    }
    gr_model_free(m);
    fx_free(&f);
}

/* ---- bad specs: clear errors naming the layer ------------------------------------------ */
static void test_bad_specs(void) {
    gr_error e;
    gr_model *m = gr_model_new(4, 4, 6, &e);
    if (!m) return;
    int c = gr_model_append(m, gr_conv2d(6, 1, 1, 1, GR_PAD_VALID, GR_ACT_GELU), &e);   /* node 0 */
    int g = gr_model_append(m, gr_global_avgpool(), &e);                               /* node 1 */
    int d = gr_model_append(m, gr_dense(5, GR_ACT_HARDSIGMOID), &e);                   /* node 2: 1x1x5 */
    CHECK(c == 0 && g == 1 && d == 2, "setup");
    CHECK(gr_model_append(m, gr_multiply(0, 2), &e) < 0 && e.code == GR_ERR_SHAPE && strstr(e.msg, "multiply") &&
              strstr(e.msg, "cannot multiply 4x4x6 by 1x1x5"), "channel mismatch: %s", e.msg);
    gr_layer_spec one = gr_multiply(0, 1);
    one.n_inputs = 1;
    CHECK(gr_model_append(m, one, &e) < 0 && strstr(e.msg, "takes 2 inputs, not 1"), "one input: %s", e.msg);
    CHECK(gr_model_append(m, gr_multiply(0, 1), &e) == 3, "broadcast multiply: %s", e.msg);
    CHECK(gr_model_append(m, gr_layernorm(-1), &e) < 0 && strstr(e.msg, "epsilon -1 must be positive"),
          "negative epsilon: %s", e.msg);
    gr_act a;
    CHECK(gr_act_parse("geluu", &a) != 0, "unknown activation accepted");
    CHECK(gr_op_parse("layer_normalization") == GR_OP_LAYERNORM && gr_op_parse("multiply") == GR_OP_MUL &&
              gr_op_parse("nope") == GR_OP__COUNT, "op names");
    gr_model_free(m);
}

int main(void) {
    RUN(test_activations_pytorch);
    RUN(test_activations_fd);
    RUN(test_fused_activation_grad);
    RUN(test_mul_pytorch);
    RUN(test_mul_fd);
    RUN(test_layernorm_pytorch);
    RUN(test_layernorm_fd);
    RUN(test_se_head_pytorch);
    RUN(test_bad_specs);
    return check_summary();
}
