/* dist_eval.c — gr_evaluate over the ranks: each rank evaluates its shard of
 * the dataset, the sums (loss, correct, top-5, confusion) are added up with
 * one all-reduce, and every rank holds the result of the whole dataset.   */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dist/dist.h"
#include "graph/model.h"

gr_status gr_dist_evaluate(gr_model *m, const gr_dataset *ds, int batch, const char *label, bool tta_flip,
                           gr_eval_result *res, gr_error *err) {
    gr_eval_opts eo = {.batch = batch, .label = label, .tta_flip = tta_flip};
    if (!gr_dist_active()) return gr_evaluate_ex(m, ds, NULL, 0, &eo, res, err);
    memset(res, 0, sizeof *res);
    int n = gr_dataset_count(ds), lo, hi;
    gr_dist_shard(n, gr_dist_rank(), gr_dist_size(), &lo, &hi);
    int C = m->n_nodes > 0 ? m->nodes[m->n_nodes - 1].oc : 0;   /* the same on every rank */
    int *idx = gr_malloc((size_t)(hi > lo ? hi - lo : 1) * sizeof(int), err);
    if (!idx) return GR_ERR_NOMEM;
    for (int i = lo; i < hi; i++) idx[i - lo] = i;
    gr_eval_result mine = {0};
    gr_status st = GR_OK;
    if (hi > lo) {
        st = gr_evaluate_ex(m, ds, idx, hi - lo, &eo, &mine, err);   /* (rank 0's shard) */
        if (st != GR_OK) gr_error_prefix(err, "rank %d (samples %d..%d of %d)", gr_dist_rank(), lo, hi - 1, n);
    }
    free(idx);
    if (st != GR_OK) return st;   /* (a local failure: the caller ends the job) */
    size_t k = 4 + (size_t)C * C;
    double *s = gr_calloc(k, sizeof(double), err);
    res->confusion = gr_calloc((size_t)C * C, sizeof(int64_t), err);
    if (!s || !res->confusion) { free(s); gr_eval_result_free(&mine); gr_eval_result_free(res); return GR_ERR_NOMEM; }
    if (mine.n > 0) {
        s[0] = mine.n;
        s[1] = mine.loss * mine.n;
        s[2] = mine.accuracy * mine.n;
        s[3] = mine.top5 * mine.n;
        for (size_t j = 0; j < (size_t)C * C; j++) s[4 + j] = (double)mine.confusion[j];
    }
    gr_eval_result_free(&mine);
    st = gr_dist_sum_f64(s, k, err);
    if (st == GR_OK) {
        res->n = (int)s[0];
        res->n_classes = C;
        res->loss = s[0] > 0 ? s[1] / s[0] : NAN;
        res->accuracy = s[0] > 0 ? round(s[2]) / s[0] : NAN;
        res->top5 = s[0] > 0 ? round(s[3]) / s[0] : NAN;
        for (size_t j = 0; j < (size_t)C * C; j++) res->confusion[j] = (int64_t)s[4 + j];
    } else {
        gr_eval_result_free(res);
    }
    free(s);
    return st;
}
