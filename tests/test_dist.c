/* test_dist.c — src/dist without mpirun: the shard split (hand-computed
 * cases), the single-process behaviour of the collectives, and the
 * data-parallel trainer step on one process (all rows on "rank 0") against
 * gr_trainer_step — a dropout head large enough for the fused dense path,
 * which the sharded step turns off, so the two paths compute the same update
 * by different routes.  The 2-rank runs are tests/test_mpi.sh.            */
#include "check.h"
#include "dist/dist.h"
#include "graph/model.h"
#include "train/train.h"

static void test_shard(void) {
    /* n = 35 over 2: 18 + 17; 20 over 2: 10 + 10; 7 over 3: 3 + 2 + 2; 1 over 3: 1 + 0 + 0 */
    static const int cases[][3 + 2 * 3] = {
        {35, 2, 0, 0, 18, 18, 35},      {20, 2, 0, 0, 10, 10, 20},
        {7, 3, 0, 0, 3, 3, 5, 5, 7},    {1, 3, 0, 0, 1, 1, 1, 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c][0], size = cases[c][1];
        for (int r = 0; r < size; r++) {
            int lo, hi;
            gr_dist_shard(n, r, size, &lo, &hi);
            CHECK(lo == cases[c][3 + 2 * r] && hi == cases[c][4 + 2 * r], "n %d size %d rank %d: [%d, %d), want [%d, %d)",
                  n, size, r, lo, hi, cases[c][3 + 2 * r], cases[c][4 + 2 * r]);
        }
    }
}

static void test_single_process(void) {
    gr_error e = {0};
    CHECK(!gr_dist_active() && gr_dist_rank() == 0 && gr_dist_size() == 1, "one process: rank %d of %d",
          gr_dist_rank(), gr_dist_size());
    float v[3] = {1, 2, 3}, all[3] = {0};
    CHECK(gr_dist_sum_f32(v, 3, &e) == GR_OK && v[0] == 1 && v[2] == 3, "sum changed a lone rank's values");
    CHECK(gr_dist_gather_rows(v, 1, 3, &e) == GR_OK && v[1] == 2, "gather changed a lone rank's rows");
    CHECK(gr_dist_gather_rows_root(v, all, 1, 3, &e) == GR_OK && all[0] == 1 && all[2] == 3,
          "gather to root did not copy: %g %g %g", all[0], all[1], all[2]);
    CHECK(gr_dist_exit(0) == 0 && gr_dist_exit(3) == 3, "exit code not passed through");
}

static gr_model *head(void) {
    gr_error e;
    gr_model *m = gr_model_new(1, 1, 600, &e);
    if (!m || gr_stack(m, &e, gr_dense(512, GR_ACT_RELU), gr_dropout(0.3f), gr_dense(6, GR_ACT_SOFTMAX)) != GR_OK)
        return NULL;
    gr_model_init_params(m, 0, 11);
    return m;
}

static void test_step_dist_one_rank(void) {
    enum { B = 12, S = 5, F = 600 };
    gr_model *m[2] = {head(), head()};
    CHECK(m[0] && m[1], "model");
    if (!m[0] || !m[1]) return;
    gr_error e;
    gr_trainer_opts o = {.optim = gr_sgd((gr_sgd_opts){.lr = 0.05f, .momentum = 0.9f, .nesterov = true}),
                         .max_batch = B, .seed = 7};
    gr_trainer *t[2] = {gr_trainer_new(m[0], 0, &o, &e), gr_trainer_new(m[1], 0, &o, &e)};
    CHECK(t[0] && t[1], "trainer");
    static float x[B * F];
    int lab[B];
    float loss[2] = {0};
    int correct[2] = {0}, flag = 1;
    for (int s = 0; s < S; s++) {
        for (int k = 0; k < B * F; k++) x[k] = (float)sin(0.011 * (s * B * F + k));
        for (int b = 0; b < B; b++) lab[b] = (s * B + b * 5) % 6;
        CHECK(gr_trainer_step(t[0], x, lab, B, &loss[0], &correct[0], &e) == GR_OK, "%s", e.msg);
        CHECK(gr_trainer_step_dist(t[1], x, lab, B, 0, B, &loss[1], &correct[1], &flag, &e) == GR_OK, "%s", e.msg);
        CHECK(fabsf(loss[0] - loss[1]) <= 1e-6f * fmaxf(1, loss[0]) && correct[0] == correct[1],
              "step %d: loss %g vs %g, correct %d vs %d", s, loss[0], loss[1], correct[0], correct[1]);
        CHECK(flag == 1, "the flag of a lone rank came back as %d", flag);
    }
    CHECK_CLOSE("weights after 5 steps (fused vs sharded path)", m[1]->w, m[0]->w, m[0]->w_count, 1e-6, 1e-5);
    CHECK(gr_trainer_step_dist(t[1], x, lab, 3, 10, B, NULL, NULL, NULL, &e) != GR_OK && strstr(e.msg, "rows [10, 13)"),
          "rows past the global batch accepted: %s", e.msg);
    gr_trainer_free(t[0]); gr_trainer_free(t[1]);
    gr_model_free(m[0]); gr_model_free(m[1]);
}

int main(void) {
    RUN(test_shard);
    RUN(test_single_process);
    RUN(test_step_dist_one_rank);
    return check_summary();
}
