/* trainer_dist.c — the trainer's data-parallel step (MPI, src/dist): one
 * all-reduce of the gradients with the batch's loss, correct count and stop
 * flag, then the same update on every rank.                               */
#include <math.h>
#include <string.h>
#include <time.h>
#include "dist/dist.h"
#include "train/trainer_impl.h"

/* Data-parallel step: the gradients of this rank's rows, scaled for the
 * global batch ((p - y) / total), the batch's loss sum, correct count and
 * flag after them in one buffer, summed over the ranks by one all-reduce;
 * then every rank applies the same update (the fused dense path is off:
 * the whole gradient must exist before the reduction).  Non-finite values
 * are checked on the sums, so every rank fails alike.                     */
gr_status gr_trainer_step_dist(gr_trainer *t, const float *x, const int *labels, int B, int lo, int total,
                               float *loss, int *correct, int *flag, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (total <= 0 || B < 0 || lo < 0 || lo + B > total)
        return gr_error_set(err, GR_ERR_ARG, "trainer: rows [%d, %d) of a global batch of %d", lo, lo + B, total);
    t->shard_lo = lo;
    t->shard_total = total;
    gr_status st = GR_OK;
    float l = 0;
    int c = 0;
    if (B > 0) {
        st = gr_trainer_batch_gradients(t, x, labels, B, total, &l, &c, false, err);
    } else {   /* no rows here: a zero gradient, and the dropout draws of the other rows */
        for (int i = t->first; i < t->n; i++) t->deferred[i - t->first] = false;
        memset(t->grad, 0, t->np * sizeof(float));
        for (int i = t->first; i < t->n; i++)
            if (gr_op_get(t->m->nodes[i].s.op)->flags & GR_OPF_RNG)
                for (int64_t k = 0; k < (int64_t)total * gr_node_size(t->m, i); k++) gr_rng_uniform(&t->rng);
    }
    t->shard_lo = t->shard_total = 0;
    if (st != GR_OK) return st;   /* (a local failure: the caller ends the job) */
    float *g = t->grad;
    g[t->np] = l;            /* this rank's loss sum / total */
    g[t->np + 1] = (float)c;
    g[t->np + 2] = (float)(flag ? *flag : 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = gr_dist_sum_f32(g, t->np + DIST_EXTRA, err)) != GR_OK) return st;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    t->reduce_s += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    t->reduce_steps++;
    if (loss) *loss = g[t->np];
    if (correct) *correct = (int)lrintf(g[t->np + 1]);
    if (flag) *flag = (int)lrintf(g[t->np + 2]);
    if (!isfinite(g[t->np]))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "the loss became %g at iteration %lld: lower the learning rate (now %g)",
                            (double)g[t->np], (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    if (gr_grad_nonfinite(g, t->np))
        return gr_error_set(err, GR_ERR_NUMERIC,
                            "a non-finite gradient at iteration %lld: lower the learning rate (now %g)",
                            (long long)t->it, gr_optim_lr(&t->o.optim, t->it));
    return gr_trainer_apply_update(t, x, B, err);
}

double gr_trainer_reduce_seconds(const gr_trainer *t, int64_t *steps, size_t *floats) {
    if (steps) *steps = t->reduce_steps;
    if (floats) *floats = t->np + DIST_EXTRA;
    return t->reduce_s;
}
