/* check_grad.h — the whole-model gradient check shared by the tests of
 * imported and fine-tuned nets (test_onnx, test_vit, test_dilation): the
 * trainer's gradient of the mean cross-entropy against central finite
 * differences at sampled weights.  Include after check.h.                  */
#ifndef GRAFT_TESTS_CHECK_GRAD_H
#define GRAFT_TESTS_CHECK_GRAD_H
#include <math.h>
#include <stdint.h>
#include "graph/model.h"
#include "train/train.h"

typedef struct {
    int tried, bad;   /* weights compared, and those outside 2e-3 + 3% of the finite difference */
    double worst;     /* the largest |analytic - finite difference| */
} check_fd_result;

/* per_param weights of every step-th parameter (drawn from seed), each
 * moved by +-h; x: B images (NHWC).  -1 when the gradients fail (err set). */
static inline int check_model_fd(gr_trainer *t, gr_model *m, const float *x, const int *labels, int B,
                                 int step, int per_param, float h, uint64_t seed, check_fd_result *res,
                                 gr_error *err) {
    float loss, lp, lm;
    size_t off, cnt;
    *res = (check_fd_result){0};
    if (gr_trainer_gradients(t, x, labels, B, &loss, NULL, err) != GR_OK) return -1;
    const float *g0 = gr_trainer_grad(t, &off, &cnt);
    float *g = malloc(cnt * sizeof(float));
    if (!g) return gr_error_set(err, GR_ERR_NOMEM, "out of memory"), -1;
    memcpy(g, g0, cnt * sizeof(float));
    uint64_t r = seed;
    for (int q = 0; q < m->n_params; q += step)
        for (int k = 0; k < per_param; k++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t i = m->params[q].offset + (size_t)(r >> 33) % m->params[q].count;
            float *w = &m->w[i], keep = *w;
            *w = keep + h;
            m->w_version++;
            gr_trainer_gradients(t, x, labels, B, &lp, NULL, err);
            *w = keep - h;
            m->w_version++;
            gr_trainer_gradients(t, x, labels, B, &lm, NULL, err);
            *w = keep;
            m->w_version++;
            double fd = ((double)lp - lm) / (2 * h), an = g[i - off], d = fabs(fd - an);
            res->tried++;
            if (d > 2e-3 + 0.03 * fabs(fd)) {
                res->bad++;
                printf("    %s [%zu]: analytic %.6g, finite difference %.6g\n", m->params[q].name,
                       i - m->params[q].offset, an, fd);
            }
            res->worst = fmax(res->worst, d);
        }
    free(g);
    return 0;
}
#endif
