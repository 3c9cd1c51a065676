/* test_prefix.c — the cached frozen prefix (gr_fit_opts.hflip alone, and
 * .cache_prefix; README "The cached prefix"), on a tiny CIFAR-like .bin
 * written here (class k = a colour and a dark vertical bar at columns
 * 3k..3k+2, so that an image and its mirror differ) and a tiny darknet base
 * (2 x conv+bn+leaky+maxpool, random weights).  One step of plain SGD
 * (no momentum, no decay) on one batch of B images, so the update is
 * -lr * the gradient:
 *
 *   - no augmentation, head only (flatten + dense softmax): the cached
 *     (float16) step against the uncached float32 step, their difference
 *     within a bound computed here by hand from the float16 rounding
 *     (relative 2^-11) propagated through the dense layer and the softmax;
 *   - the flip: the cached step (each flipped sample reads its mirror's
 *     float16 features) against the uncached step (the batcher mirrors the
 *     images, the base runs on them in float32), within the same kind of
 *     bound; and that step against one without the flip differs by far more
 *     than the bound (a wrong copy would be caught);
 *   - the flip with an unfrozen conv block: the two steps agree to 1% of
 *     the update while flip vs no flip differ by more than 10%;
 *   - --cache-prefix: the step against a gradient computed here from the
 *     base's outputs rounded to float16 (_Float16, not graft's conversion),
 *     mirrored features for the flipped samples and the map translated by
 *     the documented rule, the dense gradient by hand;
 *   - gr_augment_draw gives the batcher's crop and flip (the batcher's
 *     augmented images rebuilt by hand from those draws);
 *   - a damaged cache file (the mirrors' entry included) is reported and
 *     rebuilt (the same weights as the first run), then reused;
 *   - a cache larger than half of GRAFT_MAX_MEMORY falls back to running the
 *     base on every batch (a warning; the weights of the --no-cache run);
 *   - --cache-prefix with mixup / without anything frozen is refused.      */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "graft.h"
#include "data/dataset.h"
#include "exec/ctx.h"
#include "graph/model.h"
#include "train/fit.h"

static char dir[256], bin_path[300], cfg_path[300], home[300];
enum { N = 32, NBIG = 600, C = 10 };
static const float LR = 0.5f;

static void record(int i, uint8_t rec[3073], void *rng) {
    int k = i % 10;
    rec[0] = (uint8_t)k;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                float v = 60.0f + 17.0f * (float)((k * 7 + c * 3) % 11);
                if (x >= 3 * k && x < 3 * k + 3) v *= 0.3f;
                v += 20.0f * gr_rng_normal(rng);
                rec[1 + c * 1024 + y * 32 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
}

static int setup(void) {
    if (check_mkdtemp(dir, sizeof dir, "prefix")) return -1;
    snprintf(bin_path, sizeof bin_path, "%s/train.bin", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tiny.cfg", dir);
    snprintf(home, sizeof home, "%s/home", dir);
    setenv("GRAFT_HOME", home, 1);
    gr_rng r;
    gr_rng_seed(&r, 3);
    if (check_write_cifar(bin_path, NBIG, record, &r)) return -1;
    return check_write_tiny_cfg(cfg_path);
}

static gr_dataset *ds;

/* The base frozen up to its last layer (head_only) or its first maxpool;
 * then flatten + dense:10:softmax (seed 7).  *cut = the last frozen node. */
static gr_model *build(bool head_only, int *cut) {
    gr_error e = {0};
    gr_model *m = gr_darknet_load_cfg(cfg_path, 32, 32, &e);
    if (!m) { fprintf(stderr, "  cfg: %s\n", e.msg); return NULL; }
    int c = gr_model_num_layers(m) - 1;
    if (!head_only)
        for (c = 0; m->nodes[c].s.op != GR_OP_MAXPOOL; c++) {}
    gr_model_set_preprocess(m, GR_PREP_DARKNET);
    if (gr_stack(m, &e, gr_flatten(), gr_dense(C, GR_ACT_SOFTMAX)) != GR_OK) {
        fprintf(stderr, "  head: %s\n", e.msg);
        gr_model_free(m);
        return NULL;
    }
    gr_model_init_params(m, c + 1, 7);
    gr_model_freeze_upto(m, c);
    if (cut) *cut = c;
    return m;
}

/* One epoch of n samples in batches of N; returns the model (caller frees). */
static gr_model *step(bool head_only, int n, gr_fit_opts o, gr_status *st_out) {
    gr_model *m = build(head_only, NULL);
    if (!m) return NULL;
    gr_error e = {0};
    o.epochs = 1;
    o.batch = N;
    o.seed = 11;
    o.optim = gr_sgd((gr_sgd_opts){.lr = LR});
    int *idx = malloc((size_t)n * sizeof(int));
    for (int i = 0; idx && i < n; i++) idx[i] = i;
    gr_status st = idx ? gr_fit(m, ds, idx, n, &o, &e) : GR_ERR_NOMEM;
    free(idx);
    if (st_out) *st_out = st;
    if (st != GR_OK) {
        if (!st_out) fprintf(stderr, "  fit: %s\n", e.msg);
        gr_model_free(m);
        return NULL;
    }
    return m;
}

/* The dense layer's gradient from one step: (w0 - w1) / lr over kernel + bias. */
static void dense_grad(const gr_model *m0, const gr_model *m1, float *g, size_t *count) {
    int p = m0->n_params - 2;   /* dense kernel, bias */
    size_t off = m0->params[p].offset, n = m0->w_count - off;
    for (size_t k = 0; k < n; k++) g[k] = (m0->w[off + k] - m1->w[off + k]) / LR;
    *count = n;
}

/* The base's output at the cut for samples 0..n-1, mirrored images when
 * flip (float32, x [n, F]). */
static int cut_features(gr_model *m, int cut, int n, bool flip, float *x) {
    gr_error e = {0};
    gr_ctx *cx = gr_ctx_new(m, &e);
    float img[32 * 32 * 3], mir[32 * 32 * 3];
    size_t F = (size_t)gr_node_size(m, cut);
    int ok = cx != NULL;
    for (int i = 0; ok && i < n; i++) {
        ok = gr_dataset_get(ds, i, img, &e) == GR_OK;
        for (int y = 0; ok && y < 32; y++)
            for (int xx = 0; xx < 32; xx++)
                for (int c = 0; c < 3; c++) mir[(y * 32 + xx) * 3 + c] = img[(y * 32 + 31 - xx) * 3 + c];
        ok = ok && gr_ctx_run(cx, 0, flip ? mir : img, 1, cut, x + (size_t)i * F, &e) == GR_OK;
    }
    if (!ok) fprintf(stderr, "  features: %s\n", e.msg);
    gr_ctx_free(cx);
    return ok ? 0 : -1;
}

/* The hand bound on |g(x + d) - g(x)| for the dense softmax layer (kernel
 * [F][C] W, bias; mean cross-entropy over n rows, one-hot labels) when every
 * input x_bi moves by |d_bi| <= u |x_bi| + 2^-25 (float16's rounding: u =
 * 2^-11, the absolute term its subnormals).  With z = W^T x + b, |dz_bj| <=
 * sum_i |W_ij| |d_bi| = E_bj; the softmax moves p_bj by at most
 * D_bj = p_bj (e^(2 max_k E_bk) - 1); g_ij = mean_b x_bi (p_bj - y_bj) moves
 * by mean_b |d_bi| (|p_bj - y_bj| + D_bj) + |x_bi| D_bj.  loose: p unknown
 * (the flipped samples' are not computed): p_bj <= 1, |p - y| <= 1, and
 * X[b][i] = the largest |x| of the image's and its mirror's.             */
static void grad_bound(const float *X, const float *W, const float *bias, const int *lab, int n, size_t F,
                       bool loose, float *bound) {
    const double u = 1.0 / 2048, a = 1.0 / (1 << 25);
    size_t nb = F * C + C;
    double *acc = calloc(nb, sizeof(double));
    for (int b = 0; b < n && acc; b++) {
        const float *x = X + (size_t)b * F;
        double z[C], p[C], E = 0, zmax = -1e300, s = 0;
        for (int j = 0; j < C; j++) {
            double zz = bias[j], ej = 0;
            for (size_t i = 0; i < F; i++) {
                zz += (double)W[i * C + j] * x[i];
                ej += fabs((double)W[i * C + j]) * (u * fabs((double)x[i]) + a);
            }
            z[j] = zz;
            if (ej > E) E = ej;
            if (zz > zmax) zmax = zz;
        }
        for (int j = 0; j < C; j++) s += (p[j] = exp(z[j] - zmax));
        for (int j = 0; j < C; j++) p[j] = loose ? 1.0 : p[j] / s;
        for (int j = 0; j < C; j++) {
            double D = p[j] * expm1(2 * E), py = loose ? 1.0 : fabs(p[j] - (j == lab[b]));
            for (size_t i = 0; i < F; i++) {
                double d = u * fabs((double)x[i]) + a;
                acc[i * C + j] += d * (py + D) + fabs((double)x[i]) * D;
            }
            acc[F * C + j] += D;
        }
    }
    for (size_t k = 0; k < nb; k++) bound[k] = acc ? (float)(acc[k] / n) : 0;
    free(acc);
}

/* max_k |a_k - b_k| - bound_k (> 0: outside the bound somewhere), and the
 * largest |a| and difference. */
static double excess(const float *a, const float *b, const float *bound, size_t n, double *amax, double *dmax) {
    double worst = -1e300;
    *amax = *dmax = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)a[k] - b[k]);
        /* float32 arithmetic of either step: 1e-5 of the gradient's scale */
        if (d - bound[k] > worst) worst = d - bound[k];
        if (fabs(a[k]) > *amax) *amax = fabs(a[k]);
        if (d > *dmax) *dmax = d;
    }
    return worst;
}

static void test_no_augmentation_fp16_bound(void) {
    int cut;
    gr_model *m0 = build(true, &cut);
    gr_model *ca = step(true, N, (gr_fit_opts){0}, NULL);
    gr_model *un = step(true, N, (gr_fit_opts){.no_cache = true, .features_fp32 = true}, NULL);
    CHECK(m0 && ca && un, "fit failed");
    if (!(m0 && ca && un)) goto out;
    size_t F = (size_t)gr_node_size(m0, cut), n;
    float *x = malloc((size_t)N * F * sizeof(float)), *ga = malloc((F * C + C) * sizeof(float));
    float *gu = malloc((F * C + C) * sizeof(float)), *bd = malloc((F * C + C) * sizeof(float));
    int lab[N];
    for (int b = 0; b < N; b++) lab[b] = gr_dataset_label(ds, b);
    if (x && ga && gu && bd && !cut_features(m0, cut, N, false, x)) {
        dense_grad(m0, ca, ga, &n);
        dense_grad(m0, un, gu, &n);
        const float *W = m0->w + m0->params[m0->n_params - 2].offset, *bias = W + F * C;
        grad_bound(x, W, bias, lab, N, F, false, bd);
        double amax, dmax, bmax = 0;
        for (size_t k = 0; k < n; k++) bmax = fmax(bmax, bd[k]);
        double ex = excess(ga, gu, bd, n, &amax, &dmax);
        CHECK(ex <= 1e-5 * amax, "cached vs uncached gradient: outside the float16 bound by %g (max |g| %g)", ex,
              amax);
        CHECK(dmax > 0, "the cached step equals the float32 step exactly: the cache did not round to float16");
        CHECK(bmax < 0.02 * amax, "the bound (%g) is too loose against the gradient (%g) to test anything", bmax,
              amax);
    } else {
        CHECK(0, "out of memory or features failed");
    }
    free(x); free(ga); free(gu); free(bd);
out:
    gr_model_free(m0); gr_model_free(ca); gr_model_free(un);
}

static void test_flip_fp16_bound(void) {
    int cut;
    gr_model *m0 = build(true, &cut);
    gr_model *ca = step(true, N, (gr_fit_opts){.hflip = true}, NULL);
    gr_model *un = step(true, N, (gr_fit_opts){.hflip = true, .no_cache = true}, NULL);
    gr_model *nf = step(true, N, (gr_fit_opts){0}, NULL);
    CHECK(m0 && ca && un && nf, "fit failed");
    if (!(m0 && ca && un && nf)) goto out;
    size_t F = (size_t)gr_node_size(m0, cut), n;
    float *x = malloc((size_t)N * F * sizeof(float)), *xm = malloc((size_t)N * F * sizeof(float));
    float *ga = malloc((F * C + C) * sizeof(float)), *gu = malloc((F * C + C) * sizeof(float));
    float *gn = malloc((F * C + C) * sizeof(float)), *bd = malloc((F * C + C) * sizeof(float));
    int lab[N];
    for (int b = 0; b < N; b++) lab[b] = gr_dataset_label(ds, b);
    if (x && xm && ga && gu && gn && bd && !cut_features(m0, cut, N, false, x) &&
        !cut_features(m0, cut, N, true, xm)) {
        for (size_t k = 0; k < (size_t)N * F; k++) x[k] = fmaxf(fabsf(x[k]), fabsf(xm[k]));
        dense_grad(m0, ca, ga, &n);
        dense_grad(m0, un, gu, &n);
        dense_grad(m0, nf, gn, &n);
        const float *W = m0->w + m0->params[m0->n_params - 2].offset, *bias = W + F * C;
        grad_bound(x, W, bias, lab, N, F, true, bd);
        double amax, dmax;
        double ex = excess(ga, gu, bd, n, &amax, &dmax);
        CHECK(ex <= 1e-5 * amax, "flip: cached vs uncached gradient outside the float16 bound by %g (max |g| %g)",
              ex, amax);
        double exn = excess(ga, gn, bd, n, &amax, &dmax);
        CHECK(exn > 0.05 * amax, "flip vs no flip within the bound (%g of %g): the test could not see a wrong copy",
              exn, amax);
    } else {
        CHECK(0, "out of memory or features failed");
    }
    free(x); free(xm); free(ga); free(gu); free(gn); free(bd);
out:
    gr_model_free(m0); gr_model_free(ca); gr_model_free(un); gr_model_free(nf);
}

/* The trainable parameters' update of one step (m1 - m0), its largest |.|. */
static double max_update_diff(const gr_model *m0, const gr_model *a, const gr_model *b, double *amax) {
    int p0 = 0;
    while (p0 < m0->n_params && m0->nodes[m0->params[p0].node].frozen) p0++;
    double d = 0;
    *amax = 0;
    for (size_t k = m0->params[p0].offset; k < m0->w_count; k++) {
        *amax = fmax(*amax, fabs((double)a->w[k] - m0->w[k]));
        d = fmax(d, fabs((double)a->w[k] - b->w[k]));
    }
    return d;
}

static void test_flip_unfrozen_block(void) {
    gr_model *m0 = build(false, NULL);
    gr_model *ca = step(false, N, (gr_fit_opts){.hflip = true}, NULL);
    gr_model *un = step(false, N, (gr_fit_opts){.hflip = true, .no_cache = true}, NULL);
    gr_model *nf = step(false, N, (gr_fit_opts){0}, NULL);
    CHECK(m0 && ca && un && nf, "fit failed");
    if (m0 && ca && un && nf) {
        double amax, d = max_update_diff(m0, ca, un, &amax), a2, dn = max_update_diff(m0, ca, nf, &a2);
        CHECK(d <= 0.01 * amax, "flip, conv block unfrozen: cached vs uncached update differ by %g of %g", d, amax);
        CHECK(dn > 0.1 * amax, "flip vs no flip differ by only %g of %g", dn, amax);
    }
    gr_model_free(m0); gr_model_free(ca); gr_model_free(un); gr_model_free(nf);
}

/* --cache-prefix: the hand oracle (see the top). */
static void test_cache_prefix_translation(void) {
    int cut;
    gr_model *m0 = build(true, &cut);
    gr_model *ca = step(true, N, (gr_fit_opts){.hflip = true, .pad = 4, .cache_prefix = true}, NULL);
    CHECK(m0 && ca, "fit failed");
    if (!(m0 && ca)) goto out;
    const gr_node *nd = &m0->nodes[cut];
    int mh = nd->oh, mw = nd->ow, mc = nd->oc;
    size_t F = (size_t)gr_node_size(m0, cut), n;
    CHECK(mh == 8 && mw == 8, "the cut's map is %dx%d, the test expects 8x8", mh, mw);
    float *x = malloc((size_t)N * F * sizeof(float)), *xm = malloc((size_t)N * F * sizeof(float));
    float *ga = malloc((F * C + C) * sizeof(float));
    double *g = calloc(F * C + C, sizeof(double));
    if (x && xm && ga && g && !cut_features(m0, cut, N, false, x) && !cut_features(m0, cut, N, true, xm)) {
        const float *W = m0->w + m0->params[m0->n_params - 2].offset, *bias = W + F * C;
        int cells = (int)lround(4.0 * mh / 32) < 1 ? 1 : (int)lround(4.0 * mh / 32);
        int shifted = 0, flipped = 0;
        float *in = malloc(F * sizeof(float));
        for (int b = 0; b < N && in; b++) {
            int oy, ox;
            bool flip;
            gr_augment_draw(11 + 7919u * 0, 0, b, 4, true, &oy, &ox, &flip);   /* fit: seed + 7919 * epoch */
            const float *src = (flip ? xm : x) + (size_t)b * F;
            int dy = (int)lround((oy - 4) * (double)cells / 4), dx = (int)lround((ox - 4) * (double)cells / 4);
            if (flip) dx = -dx;
            shifted += dy || dx;
            flipped += flip;
            for (int y = 0; y < mh; y++)
                for (int xx = 0; xx < mw; xx++)
                    for (int c = 0; c < mc; c++) {
                        int sy = y + dy, sx = xx + dx;
                        float v = sy < 0 || sy >= mh || sx < 0 || sx >= mw ? 0.0f : src[((size_t)sy * mw + sx) * mc + c];
                        in[((size_t)y * mw + xx) * mc + c] = (float)(_Float16)v;
                    }
            double z[C], p[C], zmax = -1e300, s = 0;
            for (int j = 0; j < C; j++) {
                z[j] = bias[j];
                for (size_t i = 0; i < F; i++) z[j] += (double)W[i * C + j] * in[i];
                zmax = fmax(zmax, z[j]);
            }
            for (int j = 0; j < C; j++) s += (p[j] = exp(z[j] - zmax));
            int lab = gr_dataset_label(ds, b);
            for (int j = 0; j < C; j++) {
                double r = p[j] / s - (j == lab);
                for (size_t i = 0; i < F; i++) g[i * C + j] += in[i] * r / N;
                g[F * C + j] += r / N;
            }
        }
        free(in);
        CHECK(shifted > 4 && flipped > 4 && flipped < N - 4, "the draws shifted %d and flipped %d of %d samples",
              shifted, flipped, N);
        dense_grad(m0, ca, ga, &n);
        double gmax = 0, dmax = 0;
        for (size_t k = 0; k < n; k++) {
            gmax = fmax(gmax, fabs(g[k]));
            dmax = fmax(dmax, fabs(g[k] - ga[k]));
        }
        CHECK(dmax <= 1e-4 * gmax, "--cache-prefix: the step's gradient differs from the hand oracle by %g (max %g)",
              dmax, gmax);
    } else {
        CHECK(0, "out of memory or features failed");
    }
    free(x); free(xm); free(ga); free(g);
out:
    gr_model_free(m0); gr_model_free(ca);
}

/* The batcher's augmented images = the images cropped and flipped by hand
 * with gr_augment_draw's offsets (pad with zeros, darknet preprocessing
 * maps 0 to 0). */
static void test_augment_draw_is_the_batchers(void) {
    gr_error e = {0};
    enum { K = 8 };
    int idx[K] = {5, 0, 17, 3, 9, 30, 2, 11};
    gr_batcher *bt = gr_batcher_new(ds, idx, K, &(gr_batcher_opts){.batch = K, .seed = 99, .pad = 4, .hflip = true},
                                    &e);
    float *xb = malloc((size_t)K * 3072 * sizeof(float)), img[3072];
    int lab[K], got = 0, bad = 0, flips = 0;
    CHECK(bt && xb && gr_batcher_next(bt, xb, lab, &got, &e) == GR_OK && got == K, "batcher: %s", e.msg);
    for (int k = 0; k < got && !bad; k++) {
        int oy, ox;
        bool flip;
        gr_augment_draw(99, 0, idx[k], 4, true, &oy, &ox, &flip);
        flips += flip;
        if (gr_dataset_get(ds, idx[k], img, &e) != GR_OK) { bad = 1; break; }
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int sy = y + oy - 4, sx = (flip ? 31 - x : x) + ox - 4;
                for (int c = 0; c < 3; c++) {
                    float want = sy < 0 || sy > 31 || sx < 0 || sx > 31 ? 0.0f : img[(sy * 32 + sx) * 3 + c];
                    if (xb[(size_t)k * 3072 + (y * 32 + x) * 3 + c] != want) bad = 1;
                }
            }
    }
    CHECK(!bad, "the batcher's augmented image differs from the one made with gr_augment_draw's draws");
    CHECK(flips > 0 && flips < K, "the draws flipped %d of %d", flips, K);
    gr_batcher_free(bt);
    free(xb);
}

typedef struct { int damaged, reused, fallback; } seen;
static void collect(void *user, gr_log_level level, const char *msg) {
    (void)level;
    seen *s = user;
    if (strstr(msg, "damaged")) s->damaged++;
    if (strstr(msg, "reused from the features cache")) s->reused++;
    if (strstr(msg, "more than half of the memory budget")) s->fallback++;
}

/* Flips one payload byte of every entry in the features cache directory. */
static int damage_cache(void) {
    char d[400];
    snprintf(d, sizeof d, "%s/cache/features", home);
    DIR *dp = opendir(d);
    if (!dp) return 0;
    struct dirent *de;
    int k = 0;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        FILE *f = fopen(p, "r+b");
        if (!f) continue;
        if (fseek(f, 100, SEEK_SET) == 0) {
            int c = fgetc(f);
            fseek(f, 100, SEEK_SET);
            fputc(c ^ 0x55, f);
            k++;
        }
        fclose(f);
    }
    closedir(dp);
    return k;
}

static bool same_weights(const gr_model *a, const gr_model *b) {
    return a && b && a->w_count == b->w_count && !memcmp(a->w, b->w, a->w_count * sizeof(float));
}

static void test_damaged_cache_rebuilt(void) {
    check_rmtree(home);
    seen s = {0};
    gr_set_log(collect, &s);
    gr_fit_opts o = {.hflip = true, .verbose = 1};
    gr_model *a = step(true, N, o, NULL);
    int k = damage_cache();
    CHECK(k == 2, "expected 2 cache entries (the images' and the mirrors'), damaged %d", k);
    gr_model *b = step(true, N, o, NULL);
    CHECK(s.damaged == 2, "%d damaged entries reported, expected 2", s.damaged);
    CHECK(same_weights(a, b), "the run after the damage differs from the first");
    s.reused = 0;
    gr_model *c = step(true, N, o, NULL);
    CHECK(s.reused == 2, "the rebuilt entries were reused %d times, expected 2", s.reused);
    CHECK(same_weights(a, c), "the run from the rebuilt cache differs from the first");
    gr_set_log(NULL, NULL);
    gr_model_free(a); gr_model_free(b); gr_model_free(c);
}

static void test_memory_fallback(void) {
    /* NBIG x 1024 features x 2 bytes x 2 copies = 2.3 MiB > half of 4 MiB */
    seen s = {0};
    gr_set_log(collect, &s);
    setenv("GRAFT_MAX_MEMORY", "4", 1);
    gr_model *a = step(true, NBIG, (gr_fit_opts){.hflip = true, .verbose = 1}, NULL);
    unsetenv("GRAFT_MAX_MEMORY");
    gr_set_log(NULL, NULL);
    gr_model *b = step(true, NBIG, (gr_fit_opts){.hflip = true, .no_cache = true}, NULL);
    CHECK(s.fallback == 1, "the fallback was announced %d times", s.fallback);
    CHECK(same_weights(a, b), "the fallback run differs from the --no-cache run");
    gr_model_free(a); gr_model_free(b);
}

static void test_refused(void) {
    gr_status st = GR_OK;
    gr_model *m = step(true, N, (gr_fit_opts){.pad = 4, .cache_prefix = true, .mixup = 0.2f}, &st);
    CHECK(!m && st == GR_ERR_ARG, "--cache-prefix with mixup: status %d", (int)st);
    gr_model_free(m);
    m = step(true, N, (gr_fit_opts){.pad = 4, .cache_prefix = true, .no_cache = true}, &st);
    CHECK(!m && st == GR_ERR_ARG, "--cache-prefix with --no-cache: status %d", (int)st);
    gr_model_free(m);
}

int main(void) {
    if (setup()) {
        printf("FAIL setup: cannot write the test data in /tmp\n");
        return 1;
    }
    gr_error e = {0};
    ds = gr_dataset_open(bin_path, &(gr_dataset_opts){.preprocess = GR_PREP_DARKNET}, &e);
    if (!ds) {
        printf("FAIL setup: %s\n", e.msg);
        check_rmtree(dir);
        return 1;
    }
    RUN(test_no_augmentation_fp16_bound);
    RUN(test_flip_fp16_bound);
    RUN(test_flip_unfrozen_block);
    RUN(test_cache_prefix_translation);
    RUN(test_augment_draw_is_the_batchers);
    RUN(test_damaged_cache_rebuilt);
    RUN(test_memory_fallback);
    RUN(test_refused);
    gr_dataset_free(ds);
    check_rmtree(dir);
    return check_summary();
}
