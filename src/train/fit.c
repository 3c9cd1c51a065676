/* fit.c — the training loop (Keras `fit`): epochs of shuffled batches, the
 * features cache for a frozen base, validation, the CSV log, progress
 * lines, checkpoints and resume; and `evaluate`.
 *
 * The features cache: the frozen layers 0..first-1 run in inference mode,
 * so their output for an image never changes.  Without augmentation it is
 * computed once per image ([n, F] floats in memory) and every epoch trains
 * only the layers from `first` on.  The uncached path computes the same
 * features batch by batch, in the same order, so both give the same
 * result.                                                                   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "train/train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* First trainable layer: the one after the frozen prefix. */
static int first_trainable(const gr_model *m) {
    int f = 0;
    while (f < m->n_nodes && m->nodes[f].frozen) f++;
    return f;
}

/* Runs layers 0..upto on samples idx[0..n) of ds (in that order) and stores
 * their outputs in feat [n, F].  upto = -1 stores the preprocessed images. */
static gr_status compute_features(gr_model *m, int upto, const gr_dataset *ds, const int *idx,
                                  int n, int batch, int threads, float *feat, const char *what,
                                  int verbose, gr_error *err) {
    int h, w;
    gr_dataset_size(ds, &h, &w);
    size_t F = (size_t)gr_node_size(m, upto), img = (size_t)h * w * 3;
    gr_batcher_opts bo = {.batch = batch, .threads = threads};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err ? err->code : GR_ERR_ARG;
    float *x = gr_malloc((size_t)batch * img * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    gr_status st = (x && lab) ? GR_OK : GR_ERR_NOMEM;
    double t0 = now_s();
    int done = 0, got = 0;
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = upto < 0 ? (memcpy(feat + (size_t)done * F, x, (size_t)got * F * sizeof(float)), GR_OK)
                      : gr_model_run(m, 0, x, got, upto, feat + (size_t)done * F, err);
        done += got;
        if (verbose >= 2 && isatty(2))
            fprintf(stderr, "\r%s: %d/%d images, %.0f img/s   ", what, done, n, done / (now_s() - t0));
    }
    if (verbose >= 2 && isatty(2)) fputc('\n', stderr);
    if (st == GR_OK && verbose >= 1)
        printf("%s: %d images in %.1fs (%.0f img/s)\n", what, done, now_s() - t0,
               done / (now_s() - t0 + 1e-9));
    free(x);
    free(lab);
    gr_batcher_free(b);
    return st;
}

/* Mean loss and accuracy of layers first.. on cached features. */
static gr_status eval_features(gr_model *m, int first, const float *feat, const int *labels, int n,
                               int batch, float *probs, float *loss, float *acc, gr_error *err) {
    size_t F = (size_t)gr_node_size(m, first - 1);
    int C = m->nodes[m->n_nodes - 1].oc;
    double l = 0;
    int64_t c = 0;
    for (int s = 0; s < n; s += batch) {
        int B = n - s < batch ? n - s : batch;
        gr_status st = gr_model_run(m, first, feat + (size_t)s * F, B, -1, probs, err);
        if (st != GR_OK) return st;
        int c1;
        l += gr_cross_entropy(probs, labels + s, B, C, 0, &c1, NULL);
        c += c1;
    }
    *loss = (float)(l / n);
    *acc = (float)c / (float)n;
    return GR_OK;
}

static void shuffle(int *perm, int n, uint64_t seed, int epoch) {
    gr_rng r;
    gr_rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gr_rng_below(&r, (uint32_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

static void progress(int verbose, int epoch, int epochs, int step, int steps, double t0,
                     double loss, double acc) {
    if (verbose < 2 || !isatty(2)) return;
    double el = now_s() - t0, eta = step ? el / step * (steps - step) : 0;
    int bar = steps ? 30 * step / steps : 30;
    char b[31];
    for (int i = 0; i < 30; i++) b[i] = i < bar ? '=' : (i == bar ? '>' : '.');
    b[30] = 0;
    fprintf(stderr, "\rEpoch %d/%d %d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f ", epoch,
            epochs, step, steps, b, eta, loss, acc);
}

gr_status gr_fit(gr_model *m, const gr_dataset *ds, const int *idx, int n, const gr_fit_opts *opt,
                 gr_error *err) {
    gr_fit_opts o = *opt;
    if (o.epochs <= 0) o.epochs = 20;
    if (o.batch <= 0) o.batch = 32;
    if (o.threads <= 0) o.threads = 2;
    if (o.optim.lr == 0)
        o.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .decay = 1e-6f, .momentum = 0.9f, .nesterov = true});
    if (!idx) n = gr_dataset_count(ds);
    if (n <= 0) return gr_error_set(err, GR_ERR_ARG, "no training samples");
    int first = first_trainable(m);
    if (first >= m->n_nodes)
        return gr_error_set(err, GR_ERR_ARG, "every layer is frozen: nothing to train");
    int C = m->nodes[m->n_nodes - 1].oc;
    if (gr_dataset_num_classes(ds) > C)
        return gr_error_set(err, GR_ERR_SHAPE,
                            "the data has %d classes but the model's last layer '%s' has %d outputs",
                            gr_dataset_num_classes(ds), m->nodes[m->n_nodes - 1].s.name, C);
    int h, w;
    gr_dataset_size(ds, &h, &w);
    if (h != m->in_h || w != m->in_w)
        return gr_error_set(err, GR_ERR_SHAPE, "the data's images are %dx%d but the model takes %dx%d",
                            h, w, m->in_h, m->in_w);
    bool augment = o.pad > 0 || o.hflip;
    bool cache = !o.no_cache && !augment;
    gr_trainer_opts to = {.optim = o.optim, .max_batch = o.batch, .seed = o.seed,
                          .label_smoothing = o.label_smoothing, .bn_train = o.bn_train};
    gr_trainer *t = gr_trainer_new(m, first, &to, err);
    if (!t) return err ? err->code : GR_ERR_ARG;

    size_t F = (size_t)gr_node_size(m, first - 1), img = (size_t)h * w * 3;
    int n_val = o.val ? (o.val_idx ? o.n_val : gr_dataset_count(o.val)) : 0;
    float *feat = NULL, *vfeat = NULL, *xb = NULL, *xi = NULL, *probs = NULL;
    int *lab = NULL, *vlab = NULL, *perm = NULL, *order = NULL, *blab = NULL;
    FILE *log = NULL;
    gr_batcher *bt = NULL;
    gr_status st = GR_OK;
    if (!(xb = gr_malloc((size_t)o.batch * F * sizeof(float), err)) ||
        !(lab = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(perm = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(order = gr_malloc((size_t)n * sizeof(int), err)) ||
        !(blab = gr_malloc((size_t)o.batch * sizeof(int), err)) ||
        !(probs = gr_malloc((size_t)o.batch * C * sizeof(float), err))) {
        st = GR_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) lab[i] = gr_dataset_label(ds, idx ? idx[i] : i);
    if (o.verbose)
        printf("Training %d layers from '%s' on %d samples (%lld trainable parameters); the frozen part "
               "ends at '%s'; features cache: %s\n",
               m->n_nodes - first, m->nodes[first].s.name, n,
               (long long)gr_model_param_count(m, true), gr_model_layer_name(m, first - 1),
               cache ? "on" : (augment ? "off (augmentation)" : "off (--no-cache)"));
    if (cache) {
        feat = gr_malloc((size_t)n * F * sizeof(float), err);
        if (!feat) {
            gr_error_prefix(err, "features cache for %d samples x %zu floats (use --no-cache)", n, F);
            st = GR_ERR_NOMEM;
            goto done;
        }
        st = compute_features(m, first - 1, ds, idx, n, o.batch, o.threads, feat, "features (train)",
                              o.verbose, err);
        if (st != GR_OK) goto done;
    } else if (!(xi = gr_malloc((size_t)o.batch * img * sizeof(float), err))) {
        st = GR_ERR_NOMEM;
        goto done;
    }
    if (n_val > 0) {   /* validation features: computed once (inference never changes them) */
        vfeat = gr_malloc((size_t)n_val * F * sizeof(float), err);
        vlab = gr_malloc((size_t)n_val * sizeof(int), err);
        if (!vfeat || !vlab) { st = GR_ERR_NOMEM; goto done; }
        for (int i = 0; i < n_val; i++) vlab[i] = gr_dataset_label(o.val, o.val_idx ? o.val_idx[i] : i);
        st = compute_features(m, first - 1, o.val, o.val_idx, n_val, o.batch, o.threads, vfeat,
                              "features (validation)", o.verbose, err);
        if (st != GR_OK) goto done;
    }
    if (o.log_csv) {
        log = fopen(o.log_csv, "w");
        if (!log) {
            st = gr_error_set(err, GR_ERR_IO, "%s: cannot write the log", o.log_csv);
            goto done;
        }
        fprintf(log, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    }
    int steps = (n + o.batch - 1) / o.batch;
    for (int ep = 0; ep < o.epochs && st == GR_OK; ep++) {
        double t0 = now_s();
        shuffle(perm, n, o.seed, ep);
        for (int i = 0; i < n; i++) order[i] = idx ? idx[perm[i]] : perm[i];
        if (!cache) {
            gr_batcher_opts bo = {.batch = o.batch, .seed = o.seed + 7919u * (uint64_t)ep,
                                  .pad = o.pad, .hflip = o.hflip, .threads = o.threads};
            bt = gr_batcher_new(ds, order, n, &bo, err);
            if (!bt) { st = err ? err->code : GR_ERR_ARG; break; }
        }
        double lsum = 0;
        int64_t csum = 0;
        int seen = 0;
        for (int s = 0; s < steps && st == GR_OK; s++) {
            int B = n - s * o.batch < o.batch ? n - s * o.batch : o.batch;
            if (cache) {
                for (int b = 0; b < B; b++) {
                    int k = perm[s * o.batch + b];
                    memcpy(xb + (size_t)b * F, feat + (size_t)k * F, F * sizeof(float));
                    blab[b] = lab[k];
                }
            } else {
                int got = 0;
                st = gr_batcher_next(bt, xi, blab, &got, err);
                if (st != GR_OK) break;
                if (got != B) { st = gr_error_set(err, GR_ERR_ARG, "batcher gave %d of %d samples", got, B); break; }
                st = first > 0 ? gr_model_run(m, 0, xi, B, first - 1, xb, err)
                               : (memcpy(xb, xi, (size_t)B * F * sizeof(float)), GR_OK);
                if (st != GR_OK) break;
            }
            float l;
            int c;
            st = gr_trainer_step(t, xb, blab, B, &l, &c, err);
            if (st != GR_OK) break;
            lsum += (double)l * B;
            csum += c;
            seen += B;
            progress(o.verbose, ep + 1, o.epochs, s + 1, steps, t0, lsum / seen, (double)csum / seen);
            if (o.stop && *o.stop) {
                st = gr_error_set(err, GR_ERR_INTERRUPTED, "interrupted in epoch %d at batch %d/%d",
                                  ep + 1, s + 1, steps);
                break;
            }
        }
        gr_batcher_free(bt);
        bt = NULL;
        if (st != GR_OK) break;
        gr_epoch_log e = {.epoch = ep + 1, .loss = (float)(lsum / seen), .accuracy = (float)csum / seen,
                          .val_loss = NAN, .val_accuracy = NAN,
                          .lr = gr_optim_lr(&o.optim, gr_trainer_iterations(t))};
        if (n_val > 0) {
            st = eval_features(m, first, vfeat, vlab, n_val, o.batch, probs, &e.val_loss,
                               &e.val_accuracy, err);
            if (st != GR_OK) break;
        }
        e.seconds = now_s() - t0;
        if (o.verbose >= 2 && isatty(2)) fputc('\n', stderr);
        if (o.verbose) {
            printf("Epoch %d/%d - %d/%d - %.1fs - loss: %.4f - accuracy: %.4f", ep + 1, o.epochs, steps,
                   steps, e.seconds, e.loss, e.accuracy);
            if (n_val > 0) printf(" - val_loss: %.4f - val_accuracy: %.4f", e.val_loss, e.val_accuracy);
            printf(" - lr: %.6g\n", e.lr);
            fflush(stdout);
        }
        if (log) {
            fprintf(log, "%d,%.6f,%.6f,%.6f,%.6f,%.8g,%.3f\n", e.epoch, e.loss, e.accuracy, e.val_loss,
                    e.val_accuracy, e.lr, e.seconds);
            fflush(log);
        }
        if (o.history) o.history[ep] = e;
        if (o.checkpoint) {
            char extra[256];
            snprintf(extra, sizeof extra, "{\"epoch\": %d, \"iterations\": %lld}", ep + 1,
                     (long long)gr_trainer_iterations(t));
            st = gr_model_save(m, o.checkpoint, extra, err);
        }
    }
done:
    if (log) fclose(log);
    gr_batcher_free(bt);
    gr_trainer_free(t);
    free(feat); free(vfeat); free(xb); free(xi); free(probs);
    free(lab); free(vlab); free(perm); free(order); free(blab);
    return st;
}

gr_status gr_evaluate(gr_model *m, const gr_dataset *ds, const int *idx, int n, int batch,
                      gr_eval_result *res, gr_error *err) {
    memset(res, 0, sizeof *res);
    if (!idx) n = gr_dataset_count(ds);
    if (batch <= 0) batch = 32;
    int C = m->nodes[m->n_nodes - 1].oc, h, w;
    gr_dataset_size(ds, &h, &w);
    if (h != m->in_h || w != m->in_w)
        return gr_error_set(err, GR_ERR_SHAPE, "the data's images are %dx%d but the model takes %dx%d",
                            h, w, m->in_h, m->in_w);
    if (gr_dataset_num_classes(ds) > C)
        return gr_error_set(err, GR_ERR_SHAPE, "the data has %d classes but the model has %d outputs",
                            gr_dataset_num_classes(ds), C);
    gr_batcher_opts bo = {.batch = batch, .threads = 2};
    gr_batcher *b = gr_batcher_new(ds, idx, n, &bo, err);
    if (!b) return err ? err->code : GR_ERR_ARG;
    float *x = gr_malloc((size_t)batch * h * w * 3 * sizeof(float), err);
    float *p = gr_malloc((size_t)batch * C * sizeof(float), err);
    int *lab = gr_malloc((size_t)batch * sizeof(int), err);
    res->confusion = gr_calloc((size_t)C * C, sizeof(int64_t), err);
    res->n_classes = C;
    gr_status st = (x && p && lab && res->confusion) ? GR_OK : GR_ERR_NOMEM;
    double l = 0;
    int64_t c1 = 0, c5 = 0;
    int done = 0, got = 0;
    while (st == GR_OK && done < n) {
        st = gr_batcher_next(b, x, lab, &got, err);
        if (st != GR_OK || got == 0) break;
        st = gr_model_predict(m, x, got, -1, p, err);
        if (st != GR_OK) break;
        int a, a5;
        l += gr_cross_entropy(p, lab, got, C, 0, &a, &a5);
        c1 += a;
        c5 += a5;
        for (int i = 0; i < got; i++) {
            int best = 0;
            for (int k = 1; k < C; k++)
                if (p[(size_t)i * C + k] > p[(size_t)i * C + best]) best = k;
            res->confusion[(size_t)lab[i] * C + best]++;
        }
        done += got;
    }
    gr_batcher_free(b);
    free(x); free(p); free(lab);
    if (st != GR_OK) { gr_eval_result_free(res); return st; }
    res->n = done;
    res->loss = done ? l / done : NAN;
    res->accuracy = done ? (double)c1 / done : NAN;
    res->top5 = done ? (double)c5 / done : NAN;
    return GR_OK;
}

void gr_eval_result_free(gr_eval_result *res) {
    free(res->confusion);
    res->confusion = NULL;
}
