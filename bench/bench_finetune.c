/* bench_finetune.c — fine-tuning throughput of graft: one training step of
 * the VGG16 base (random weights) + the seed head (flatten, dense 1024 relu,
 * dense 10 softmax), categorical cross-entropy, SGD lr 0.01 momentum 0.9
 * Nesterov, on a fixed random batch.  Not a test: bench/bench_finetune.sh
 * runs it next to the PyTorch peer (bench/peer_finetune.py) and prints the
 * ratios (issue #5).
 *
 *   bench_finetune MODE H B SECONDS [TURN_IN TURN_OUT [THREADS]]  -> one key=value line
 *     MODE block5:        layers up to block4_pool run in inference mode
 *                         (gr_ctx_run, the trainer's context), then gr_trainer_step from
 *                         block5_conv1 on their output (like for like with
 *                         PyTorch's no_grad prefix);
 *          block5_cached: the trainer step only, on the cut's output
 *                         computed once (what the features cache gives);
 *          full:          gr_trainer_step from node 0 (everything trains).
 *     With the two FIFOs, rounds alternate with the peer's (a byte passed
 *     back and forth): both see the same background load on a shared box.
 * img/s is the best round's (a round: >= 0.25 s of whole steps).          */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "exec/ctx.h"
#include "graph/model.h"
#include "bench_common.h"

typedef struct {
    gr_model *m;
    gr_trainer *t;
    int first;          /* first trainable node */
    int B;
    bool prefix;        /* run 0..first-1 every step */
    const float *x;     /* [B, H, W, 3] */
    float *cut;         /* [B, size of first-1]: the trainer's input (or x) */
    const int *labels;
} step_ctx;

static int step(step_ctx *c, double *loss_out) {
    gr_error err = {0};
    const float *in = c->first == 0 ? c->x : c->cut;
    if (c->prefix && gr_ctx_run(gr_trainer_ctx(c->t), 0, c->x, c->B, c->first - 1, c->cut, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    float loss;
    int correct;
    if (gr_trainer_step(c->t, in, c->labels, c->B, &loss, &correct, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    if (loss_out) *loss_out = loss;
    return 0;
}

static int bench(const char *mode, int H, int B, double secs, const char *tin, const char *tout) {
    gr_error err = {0};
    bool block5 = !strcmp(mode, "block5"), cached = !strcmp(mode, "block5_cached");
    if (!block5 && !cached && strcmp(mode, "full")) {
        fprintf(stderr, "bench: unknown mode '%s' (block5, block5_cached, full)\n", mode);
        return 2;
    }
    gr_model *m = gr_vgg16(H, H, false, &err);
    if (!m || gr_stack(m, &err, gr_flatten(), gr_dense(1024, GR_ACT_RELU), gr_dense(10, GR_ACT_SOFTMAX))) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    gr_model_init_params(m, 0, 1);
    int first = (block5 || cached) ? gr_model_find(m, "block5_conv1") : 0;
    if (first < 0) { fprintf(stderr, "bench: no block5_conv1\n"); return 1; }
    gr_model_freeze_upto(m, first - 1);
    gr_trainer_opts to = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.01f, .momentum = 0.9f, .nesterov = true}),
                          .max_batch = B, .seed = 1};
    gr_trainer *t = gr_trainer_new(m, first, &to, &err);
    if (!t) { fprintf(stderr, "bench: %s\n", err.msg); return 1; }
    size_t nin = (size_t)B * H * H * 3, ncut = first > 0 ? (size_t)B * gr_node_size(m, first - 1) : 0;
    float *x = malloc(nin * sizeof(float)), *cut = ncut ? malloc(ncut * sizeof(float)) : NULL;
    int *labels = malloc((size_t)B * sizeof(int));
    if (!x || (ncut && !cut) || !labels) { fprintf(stderr, "bench: out of memory\n"); return 1; }
    gr_rng r;
    gr_rng_seed(&r, 3);
    /* inputs in the range of caffe-preprocessed pixels, as bench_forward */
    for (size_t i = 0; i < nin; i++) x[i] = 255.0f * gr_rng_uniform(&r) - 128.0f;
    for (int b = 0; b < B; b++) labels[b] = (int)(gr_rng_next(&r) % 10);
    step_ctx c = {m, t, first, B, block5, x, cut, labels};
    if (cached && gr_ctx_run(gr_trainer_ctx(t), 0, x, B, first - 1, cut, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    double loss0 = 0, loss = 0;
    /* warm-up: primitive creation, buffers */
    if (step(&c, &loss0) || step(&c, NULL)) return 1;
    int fin = tin ? open(tin, O_RDWR) : -1, fout = tout ? open(tout, O_RDWR) : -1;
    if (tin && (fin < 0 || fout < 0)) { fprintf(stderr, "bench: cannot open %s / %s\n", tin, tout); return 1; }
    double best = 0, total = 0, round_min = tin ? (secs / TURN_ROUNDS > 0.25 ? secs / TURN_ROUNDS : 0.25) : 0.25;
    int steps = 0;
    for (int round = 0; tin ? round < TURN_ROUNDS : (total < secs || best == 0); round++) {
        char tok = 't';
        if (tin && read(fin, &tok, 1) != 1) { fprintf(stderr, "bench: turn read failed\n"); return 1; }
        int iters = 0;
        double t0 = now(), el;
        do {
            if (step(&c, &loss)) return 1;
            iters++;
            el = now() - t0;
        } while (el < round_min);
        total += el;
        steps += iters;
        if (iters * B / el > best) best = iters * B / el;
        if (tin && write(fout, &tok, 1) != 1) { fprintf(stderr, "bench: turn write failed\n"); return 1; }
    }
    if (tin) { close(fin); close(fout); }
    printf("who=graft mode=%s size=%d batch=%d threads=%d img_s=%.2f mean_img_s=%.2f steps=%d "
           "loss0=%.4f loss=%.4f trainable=%lld rss_mb=%.1f\n",
           mode, H, B, gr_get_threads(), best, steps * B / total, steps, loss0, loss,
           (long long)gr_model_param_count(m, true), peak_rss_mb());
    free(x);
    free(cut);
    free(labels);
    gr_trainer_free(t);
    gr_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    gr_set_threads(argc >= 8 ? atoi(argv[7]) : 0);
    /* empty TURN_IN / TURN_OUT: no turns (to pass THREADS alone) */
    const char *tin = argc >= 7 && argv[5][0] ? argv[5] : NULL, *tout = tin ? argv[6] : NULL;
    if (argc >= 5) return bench(argv[1], atoi(argv[2]), atoi(argv[3]), atof(argv[4]), tin, tout);
    fprintf(stderr, "usage: bench_finetune block5|block5_cached|full H B SECONDS [TURN_IN TURN_OUT [THREADS]]\n");
    return 2;
}
