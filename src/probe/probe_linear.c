/* probe_linear.c — transferability scores of a feature matrix: a ridge
 * linear probe with stratified k-fold cross-validation, and LogME.
 *
 * Both work in double precision on the standardized features Z [n, F] and
 * share ONE symmetric eigen-decomposition (LAPACK dsyevd via OpenBLAS): of
 * Z^T Z [F, F] when F <= n, else of the kernel Z Z^T [n, n] (the dual),
 * giving the thin SVD Z = U S^1/2 V^T (U [n, r], nonzero spectrum s [r]).
 *   ridge: every fold and every lambda from the hat matrix
 *          H = 1 1^T/n + U diag(s/(s+l)) U^T (held-out identity below);
 *   LogME: per class the one-hot target's coordinates U^T y, then the
 *          alpha/beta fixed point of You et al. (2021), Algorithm 1.       */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "probe/probe.h"

/* LAPACK (Fortran) symmetric eigensolver, divide and conquer. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info);

static const double lambda_rel[GR_PROBE_N_LAMBDA] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100};

const char *gr_probe_form_name(gr_probe_form f) {
    return f == GR_PROBE_GAP ? "gap" : f == GR_PROBE_FLAT ? "flat" : "vec";
}

void gr_probe_standardize(const float *X, int n, int F, double *Z) {
    for (int j = 0; j < F; j++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++) s += X[(size_t)i * F + j];
        double mu = s / n;
        for (int i = 0; i < n; i++) {
            double d = X[(size_t)i * F + j] - mu;
            q += d * d;
        }
        double sd = sqrt(q / n);
        double inv = sd > 1e-12 * (1 + fabs(mu)) ? 1 / sd : 0;
        for (int i = 0; i < n; i++) Z[(size_t)i * F + j] = (X[(size_t)i * F + j] - mu) * inv;
    }
}

void gr_probe_folds(const int *y, int n, int k, int *fold) {
    int cmax = 0;
    for (int i = 0; i < n; i++) cmax = y[i] > cmax ? y[i] : cmax;
    int *seen = calloc((size_t)cmax + 1, sizeof *seen);
    for (int i = 0; i < n; i++) fold[i] = seen ? seen[y[i]]++ % k : i % k;
    free(seen);
}

gr_status gr_probe_eigh(double *A, int d, double *s, gr_error *err) {
    int info = 0, lwork = -1, liwork = -1, iw_q = 0;
    double w_q = 0;
    dsyevd_("V", "U", &d, A, &d, s, &w_q, &lwork, &iw_q, &liwork, &info);   /* workspace query */
    if (info != 0) return gr_error_set(err, GR_ERR_NUMERIC, "probe: eigensolver workspace query failed (info %d)", info);
    lwork = (int)w_q + 1;
    liwork = iw_q + 1;
    double *work = gr_malloc((size_t)lwork * sizeof(double), err);
    int *iwork = gr_malloc((size_t)liwork * sizeof(int), err);
    if (!work || !iwork) { free(work); free(iwork); return GR_ERR_NOMEM; }
    /* column-major in LAPACK's view: column i = eigenvector i, i.e. row i here */
    dsyevd_("V", "U", &d, A, &d, s, work, &lwork, iwork, &liwork, &info);
    free(work);
    free(iwork);
    if (info != 0) return gr_error_set(err, GR_ERR_NUMERIC, "probe: eigensolver did not converge (info %d, size %d)", info, d);
    return GR_OK;
}

/* C = A A^T for A [n, F] row-major; C [n, n] full (both triangles). */
static void gram_rows(const double *A, int n, int F, double *C) {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, F, 1.0, A, F, 0.0, C, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) C[(size_t)i * n + j] = C[(size_t)j * n + i];
}
/* C = A^T A for A [n, F] row-major; C [F, F] full. */
static void gram_cols(const double *A, int n, int F, double *C) {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, F, n, 1.0, A, F, 0.0, C, F);
    for (int i = 0; i < F; i++)
        for (int j = 0; j < i; j++) C[(size_t)i * F + j] = C[(size_t)j * F + i];
}

static gr_status check_inputs(const char *what, const int *y, int n, int F, int C, gr_error *err) {
    if (n < 2 || F < 1 || C < 2)
        return gr_error_set(err, GR_ERR_ARG, "%s: needs n >= 2 samples, F >= 1 features, C >= 2 classes (got %d, %d, %d)",
                            what, n, F, C);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= C)
            return gr_error_set(err, GR_ERR_ARG, "%s: label %d of sample %d not in 0..%d", what, y[i], i, C - 1);
    return GR_OK;
}

/* LAPACK LU solve (Fortran): A X = B, A [n, n], B [n, nrhs], column-major. */
extern void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
                   const int *ldb, int *info);

void gr_probe_spectrum_free(gr_probe_spectrum *sp) {
    free(sp->s);
    free(sp->U);
    memset(sp, 0, sizeof *sp);
}

gr_status gr_probe_spectrum_compute(const float *X, int n, int F, gr_probe_spectrum *sp, gr_error *err) {
    memset(sp, 0, sizeof *sp);
    bool primal = F <= n;
    int d = primal ? F : n;
    double *Z = gr_malloc((size_t)n * F * sizeof(double), err);
    double *A = gr_malloc((size_t)d * d * sizeof(double), err);
    double *s = gr_malloc((size_t)d * sizeof(double), err);
    int *keep = gr_malloc((size_t)d * sizeof(int), err);
    sp->s = gr_malloc((size_t)d * sizeof(double), err);
    sp->U = gr_malloc((size_t)n * d * sizeof(double), err);
    gr_status st = GR_ERR_NOMEM;
    if (!Z || !A || !s || !keep || !sp->s || !sp->U) goto out;
    gr_probe_standardize(X, n, F, Z);
    if (primal) gram_cols(Z, n, F, A);
    else gram_rows(Z, n, F, A);
    if ((st = gr_probe_eigh(A, d, s, err)) != GR_OK) goto out;
    double smax = 0;
    for (int k = 0; k < d; k++) smax = s[k] > smax ? s[k] : smax;
    int r = 0;
    for (int k = 0; k < d; k++)
        if (s[k] > 1e-10 * smax) keep[r++] = k;
    /* the kept eigenvectors as rows of A, in place (keep[q] >= q) */
    for (int q = 0; q < r; q++) {
        sp->s[q] = s[keep[q]];
        if (keep[q] != q) memcpy(A + (size_t)q * d, A + (size_t)keep[q] * d, (size_t)d * sizeof(double));
    }
    if (primal) {   /* U = Z V S^-1/2 */
        if (r) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, F, 1.0, Z, F, A, d, 0.0, sp->U, r);
        for (int i = 0; i < n; i++)
            for (int q = 0; q < r; q++) sp->U[(size_t)i * r + q] /= sqrt(sp->s[q]);
    } else {        /* U = the eigenvectors of Z Z^T, as columns */
        for (int i = 0; i < n; i++)
            for (int q = 0; q < r; q++) sp->U[(size_t)i * r + q] = A[(size_t)q * d + i];
    }
    sp->n = n, sp->F = F, sp->r = r;
    st = GR_OK;
out:
    free(Z); free(A); free(s); free(keep);
    if (st != GR_OK) gr_probe_spectrum_free(sp);
    return st;
}

/* P [r, C] = U^T T for one-hot targets T. */
static void project_targets(const gr_probe_spectrum *sp, const int *y, int C, double *P) {
    memset(P, 0, sizeof(double) * (size_t)sp->r * C);
    for (int i = 0; i < sp->n; i++)
        for (int q = 0; q < sp->r; q++) P[(size_t)q * C + y[i]] += sp->U[(size_t)i * sp->r + q];
}

/* Ridge with an unpenalized intercept on all n rows has the hat matrix
 * H = 1 1^T / n + U diag(s / (s + l)) U^T (Z is centered).  For any
 * penalized least squares the prediction for held-out rows te from a fit
 * on the rest is T_te - (I - H_te,te)^-1 (T - H T)_te, which equals the
 * per-fold fit (centering by the training rows' means) exactly.          */
gr_status gr_probe_ridge_spectrum(const gr_probe_spectrum *sp, const int *y, int C, int folds, double *acc,
                                  double *lambda, double *acc_grid, gr_error *err) {
    int n = sp->n, r = sp->r;
    if (folds < 2 || folds > n)
        return gr_error_set(err, GR_ERR_ARG, "ridge probe: %d folds for %d samples", folds, n);
    int *fold = gr_malloc((size_t)n * sizeof(int), err), *te = gr_malloc((size_t)n * sizeof(int), err);
    int *cnt = gr_calloc((size_t)C, sizeof(int), err), *ipiv = gr_malloc((size_t)n * sizeof(int), err);
    double *P = gr_malloc((size_t)(r ? r : 1) * C * sizeof(double), err);
    double *E = gr_malloc((size_t)n * C * sizeof(double), err);
    double *Ut = gr_malloc((size_t)n * (r ? r : 1) * sizeof(double), err);
    double *M = gr_malloc((size_t)n * n * sizeof(double), err);
    double *R = gr_malloc((size_t)n * C * sizeof(double), err);
    double *PD = gr_malloc((size_t)(r ? r : 1) * C * sizeof(double), err);
    long correct[GR_PROBE_N_LAMBDA] = {0};
    gr_status st = GR_ERR_NOMEM;
    if (!fold || !te || !cnt || !ipiv || !P || !E || !Ut || !M || !R || !PD) goto out;
    gr_probe_folds(y, n, folds, fold);
    project_targets(sp, y, C, P);
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    double trace = 0;
    for (int q = 0; q < r; q++) trace += sp->s[q];
    double scale = trace > 0 ? trace / (sp->F < n ? sp->F : n) : 1;
    for (int l = 0; l < GR_PROBE_N_LAMBDA; l++) {
        double lam = lambda_rel[l] * scale;
        /* residuals E = T - H T = T - mean(T) - U D P */
        for (int q = 0; q < r; q++)
            for (int c = 0; c < C; c++) PD[(size_t)q * C + c] = P[(size_t)q * C + c] * sp->s[q] / (sp->s[q] + lam);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < C; c++) E[(size_t)i * C + c] = (y[i] == c) - (double)cnt[c] / n;
        if (r) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, r, -1.0, sp->U, r, PD, C, 1.0, E, C);
        for (int f = 0; f < folds; f++) {
            int nt = 0;
            for (int i = 0; i < n; i++)
                if (fold[i] == f) te[nt++] = i;
            if (!nt) continue;
            /* M = I - 1/n - (U_te sqrt(D)) (U_te sqrt(D))^T, R = E_te (column-major for LAPACK) */
            for (int a = 0; a < nt; a++)
                for (int q = 0; q < r; q++)
                    Ut[(size_t)a * r + q] = sp->U[(size_t)te[a] * r + q] * sqrt(sp->s[q] / (sp->s[q] + lam));
            if (r) cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, nt, r, -1.0, Ut, r, 0.0, M, nt);
            else memset(M, 0, sizeof(double) * (size_t)nt * nt);
            for (int a = 0; a < nt; a++)
                for (int b = a; b < nt; b++) {
                    M[(size_t)a * nt + b] += (a == b) - 1.0 / n;
                    M[(size_t)b * nt + a] = M[(size_t)a * nt + b];
                }
            for (int a = 0; a < nt; a++)
                for (int c = 0; c < C; c++) R[(size_t)c * nt + a] = E[(size_t)te[a] * C + c];
            int info = 0;
            dgesv_(&nt, &C, M, &nt, ipiv, R, &nt, &info);   /* M symmetric: row/column order alike */
            if (info != 0) {
                st = gr_error_set(err, GR_ERR_NUMERIC, "ridge probe: singular held-out system (fold %d, lambda %g)", f,
                                  lambda_rel[l]);
                goto out;
            }
            for (int a = 0; a < nt; a++) {   /* CV prediction = T_te - R */
                int best = 0;
                double bv = -1e300;
                for (int c = 0; c < C; c++) {
                    double v = (y[te[a]] == c) - R[(size_t)c * nt + a];
                    if (v > bv) bv = v, best = c;
                }
                correct[l] += best == y[te[a]];
            }
        }
    }
    int bl = 0;
    for (int l = 1; l < GR_PROBE_N_LAMBDA; l++)
        if (correct[l] >= correct[bl]) bl = l;
    if (acc_grid)
        for (int l = 0; l < GR_PROBE_N_LAMBDA; l++) acc_grid[l] = (double)correct[l] / n;
    *acc = (double)correct[bl] / n;
    if (lambda) *lambda = lambda_rel[bl];
    st = GR_OK;
out:
    free(fold); free(te); free(cnt); free(ipiv); free(P); free(E); free(Ut); free(M); free(R); free(PD);
    return st;
}

/* LogME of one target given the spectrum: s [r] nonzero eigenvalues of Z^T Z,
 * x [r] the target's coordinates on the matching left singular vectors,
 * rx2 = |y|^2 - |x|^2 (outside the column space).  D features, N samples.
 * Returns the log evidence divided by N.                                    */
static double logme_one(const double *s, const double *x, int r, double rx2, int D, int N) {
    double alpha = 1, beta = 1, m2 = 0, res2 = 0, gamma = 0;
    for (int it = 0; it < 1000; it++) {
        double t = alpha / beta;
        gamma = 0, m2 = 0, res2 = rx2;
        for (int k = 0; k < r; k++) {
            double den = s[k] + t;
            gamma += s[k] / den;
            m2 += s[k] * x[k] * x[k] / (den * den);
            res2 += (x[k] * t / den) * (x[k] * t / den);
        }
        alpha = gamma / (m2 > 1e-300 ? m2 : 1e-300);
        beta = (N - gamma) / (res2 > 1e-300 ? res2 : 1e-300);
        double tn = alpha / beta;
        if (fabs(tn - t) <= 1e-10 * t) break;
    }
    double t = alpha / beta, logdet = (double)(D - r) * log(alpha);
    m2 = 0, res2 = rx2;
    for (int k = 0; k < r; k++) {
        double den = s[k] + t;
        m2 += s[k] * x[k] * x[k] / (den * den);
        res2 += (x[k] * t / den) * (x[k] * t / den);
        logdet += log(alpha + beta * s[k]);
    }
    double ev = 0.5 * D * log(alpha) + 0.5 * N * log(beta) - 0.5 * alpha * m2 - 0.5 * beta * res2 -
                0.5 * logdet - 0.5 * N * log(2 * M_PI);
    return ev / N;
}


gr_status gr_probe_logme_spectrum(const gr_probe_spectrum *sp, const int *y, int C, double *score,
                                  gr_error *err) {
    int r = sp->r;
    double *P = gr_malloc((size_t)(r ? r : 1) * C * sizeof(double), err);
    double *x = gr_malloc((size_t)(r ? r : 1) * sizeof(double), err);
    int *cnt = gr_calloc((size_t)C, sizeof(int), err);
    gr_status st = GR_ERR_NOMEM;
    if (!P || !x || !cnt) goto out;
    project_targets(sp, y, C, P);
    for (int i = 0; i < sp->n; i++) cnt[y[i]]++;
    double total = 0;
    for (int c = 0; c < C; c++) {
        double x2 = 0;
        for (int q = 0; q < r; q++) {
            x[q] = P[(size_t)q * C + c];
            x2 += x[q] * x[q];
        }
        double rx2 = cnt[c] - x2;
        total += logme_one(sp->s, x, r, rx2 > 0 ? rx2 : 0, sp->F, sp->n);
    }
    *score = total / C;
    st = GR_OK;
out:
    free(P); free(x); free(cnt);
    return st;
}

gr_status gr_probe_ridge_cv(const float *X, const int *y, int n, int F, int C, int folds,
                            double *acc, double *lambda, double *acc_grid, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_status st = check_inputs("ridge probe", y, n, F, C, err);
    if (st != GR_OK) return st;
    if (folds < 2 || folds > n)
        return gr_error_set(err, GR_ERR_ARG, "ridge probe: %d folds for %d samples", folds, n);
    gr_probe_spectrum sp;
    if ((st = gr_probe_spectrum_compute(X, n, F, &sp, err)) != GR_OK) return st;
    st = gr_probe_ridge_spectrum(&sp, y, C, folds, acc, lambda, acc_grid, err);
    gr_probe_spectrum_free(&sp);
    return st;
}

gr_status gr_probe_logme(const float *X, const int *y, int n, int F, int C, double *score,
                         gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_status st = check_inputs("LogME", y, n, F, C, err);
    if (st != GR_OK) return st;
    gr_probe_spectrum sp;
    if ((st = gr_probe_spectrum_compute(X, n, F, &sp, err)) != GR_OK) return st;
    st = gr_probe_logme_spectrum(&sp, y, C, score, err);
    gr_probe_spectrum_free(&sp);
    return st;
}

gr_status gr_probe_score_both(const float *X, const int *y, int n, int F, int C, int folds, double *acc,
                              double *lambda, double *logme, gr_error *err) {
    gr_status st = check_inputs("probe", y, n, F, C, err);
    if (st != GR_OK) return st;
    gr_probe_spectrum sp;
    if ((st = gr_probe_spectrum_compute(X, n, F, &sp, err)) != GR_OK) return st;
    st = gr_probe_ridge_spectrum(&sp, y, C, folds, acc, lambda, NULL, err);
    if (st == GR_OK) st = gr_probe_logme_spectrum(&sp, y, C, logme, err);
    gr_probe_spectrum_free(&sp);
    return st;
}
