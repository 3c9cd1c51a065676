/* probe.h — the probe module's internal pieces (src/probe/probe*.c).
 *
 * probe_linear.c scores a feature matrix: standardization, the ridge probe
 * with k-fold cross-validation and LogME.  probe.c samples a dataset, runs a
 * base once to every candidate cut and scores each cut's features.
 * The public entry points are the "probe" block of graft.h.               */
#ifndef GRAFT_PROBE_H
#define GRAFT_PROBE_H
#include "graph/model.h"

/* Standardizes X [n, F] (float) into Z [n, F] (double, caller-allocated):
 * each column minus its mean, divided by its population standard deviation
 * (ddof = 0).  Constant columns (std <= 1e-12 * (1 + |mean|)) become 0.     */
void gr_probe_standardize(const float *X, int n, int F, double *Z);

/* Fold of each row for k-fold CV: the r-th row of class c (in row order)
 * goes to fold r % k — stratified and deterministic.  fold [n].            */
void gr_probe_folds(const int *y, int n, int k, int *fold);

/* Eigen-decomposition of the symmetric d x d matrix A (row-major, both
 * triangles valid; overwritten): on return row i of A is the unit
 * eigenvector for eigenvalue s[i] (ascending).  LAPACK dsyevd.             */
gr_status gr_probe_eigh(double *A, int d, double *s, gr_error *err);

/* The thin SVD of the standardized features: Z = U diag(sqrt(s)) V^T with
 * the r nonzero eigenvalues s of Z^T Z (> 1e-10 of the largest, ascending)
 * and U [n, r] row-major.  Owned; free with gr_probe_spectrum_free.        */
typedef struct {
    int n, F, r;
    double *s, *U;
} gr_probe_spectrum;
gr_status gr_probe_spectrum_compute(const float *X, int n, int F, gr_probe_spectrum *sp, gr_error *err);
void gr_probe_spectrum_free(gr_probe_spectrum *sp);
/* gr_probe_ridge_cv / gr_probe_logme on a computed spectrum (labels checked by the caller). */
gr_status gr_probe_ridge_spectrum(const gr_probe_spectrum *sp, const int *y, int C, int folds, double *acc,
                                  double *lambda, double *acc_grid, gr_error *err);
gr_status gr_probe_logme_spectrum(const gr_probe_spectrum *sp, const int *y, int C, double *score,
                                  gr_error *err);
/* Both scores from one spectrum. */
gr_status gr_probe_score_both(const float *X, const int *y, int n, int F, int C, int folds, double *acc,
                              double *lambda, double *logme, gr_error *err);

#endif
