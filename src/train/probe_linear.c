/* probe_linear.c — transferability scores of a feature matrix: a ridge
 * linear probe with stratified k-fold cross-validation, and LogME.
 *
 * Both work in double precision on standardized features Z [n, F]
 * (row-major) and reduce every solve to one symmetric eigen-decomposition
 * (LAPACK dsyevd via OpenBLAS), after which each lambda / each LogME
 * iteration costs O(d) or O(n d C):
 *   ridge, primal (F <= n_train): G = Zc^T Zc = V S V^T,
 *          W(l) = V (S + l)^-1 V^T Zc^T T,   pred = (z - mean) W + mean(T);
 *   ridge, dual (F > n_train):    Kc = Zc Zc^T = U S U^T (centered kernel),
 *          pred = (z - mean) Zc^T U (S + l)^-1 U^T (T - mean(T)) + mean(T);
 *   LogME: the singular values of Z once; per class the projections of the
 *          one-hot target on the left singular vectors, then the alpha/beta
 *          fixed point of You et al. (2021), Algorithm 1.                 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/probe.h"

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

/* One fold's spectral form: pred(l)[a][c] = my[c] + sum_k Q[a][k] P[k][c] / (s[k] + l). */
typedef struct {
    int d;
    double *s, *P, *Q, *my;   /* s [d], P [d, C], Q [n_te, d], my [C] */
} fold_spec;

/* Primal: G = Zc^T Zc over the training rows. */
static gr_status fold_primal(const double *Z, const int *y, int F, int C, const int *tr, int n_tr,
                             const int *te, int n_te, fold_spec *fs, gr_error *err) {
    double *mx = gr_calloc((size_t)F, sizeof(double), err);
    double *Zc = gr_malloc((size_t)n_tr * F * sizeof(double), err);
    double *G = gr_malloc((size_t)F * F * sizeof(double), err);
    double *B = gr_calloc((size_t)F * C, sizeof(double), err);
    double *Zt = gr_malloc((size_t)(n_te ? n_te : 1) * F * sizeof(double), err);
    gr_status st = GR_ERR_NOMEM;
    if (!mx || !Zc || !G || !B || !Zt) goto out;
    for (int i = 0; i < n_tr; i++)
        for (int j = 0; j < F; j++) mx[j] += Z[(size_t)tr[i] * F + j];
    for (int j = 0; j < F; j++) mx[j] /= n_tr;
    for (int i = 0; i < n_tr; i++)
        for (int j = 0; j < F; j++) {
            double v = Z[(size_t)tr[i] * F + j] - mx[j];
            Zc[(size_t)i * F + j] = v;
            B[(size_t)j * C + y[tr[i]]] += v;    /* Zc^T T (Zc's columns sum to 0) */
        }
    for (int a = 0; a < n_te; a++)
        for (int j = 0; j < F; j++) Zt[(size_t)a * F + j] = Z[(size_t)te[a] * F + j] - mx[j];
    gram_cols(Zc, n_tr, F, G);
    if ((st = gr_probe_eigh(G, F, fs->s, err)) != GR_OK) goto out;
    /* P = V^T B (rows of G are eigenvectors), Q = Zt V */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, F, C, F, 1.0, G, F, B, C, 0.0, fs->P, C);
    if (n_te)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_te, F, F, 1.0, Zt, F, G, F, 0.0, fs->Q, F);
    fs->d = F;
    st = GR_OK;
out:
    free(mx); free(Zc); free(G); free(B); free(Zt);
    return st;
}

/* Dual: the centered kernel of the training rows, from K = Z Z^T [n, n]. */
static gr_status fold_dual(const double *K, int n, const int *y, int C, const int *tr, int n_tr,
                           const int *te, int n_te, fold_spec *fs, gr_error *err) {
    double *r = gr_malloc((size_t)n_tr * sizeof(double), err);
    double *Kc = gr_malloc((size_t)n_tr * n_tr * sizeof(double), err);
    double *Kx = gr_malloc((size_t)(n_te ? n_te : 1) * n_tr * sizeof(double), err);
    double *Tc = gr_malloc((size_t)n_tr * C * sizeof(double), err);
    gr_status st = GR_ERR_NOMEM;
    if (!r || !Kc || !Kx || !Tc) goto out;
    double mall = 0;
    for (int i = 0; i < n_tr; i++) {
        double s = 0;
        for (int j = 0; j < n_tr; j++) s += K[(size_t)tr[i] * n + tr[j]];
        r[i] = s / n_tr;
        mall += r[i];
    }
    mall /= n_tr;
    for (int i = 0; i < n_tr; i++)
        for (int j = 0; j < n_tr; j++)
            Kc[(size_t)i * n_tr + j] = K[(size_t)tr[i] * n + tr[j]] - r[i] - r[j] + mall;
    for (int a = 0; a < n_te; a++) {
        double s = 0;
        for (int j = 0; j < n_tr; j++) s += K[(size_t)te[a] * n + tr[j]];
        s /= n_tr;
        for (int j = 0; j < n_tr; j++)
            Kx[(size_t)a * n_tr + j] = K[(size_t)te[a] * n + tr[j]] - s - r[j] + mall;
    }
    for (int i = 0; i < n_tr; i++)
        for (int c = 0; c < C; c++) Tc[(size_t)i * C + c] = (y[tr[i]] == c) - fs->my[c];
    if ((st = gr_probe_eigh(Kc, n_tr, fs->s, err)) != GR_OK) goto out;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_tr, C, n_tr, 1.0, Kc, n_tr, Tc, C, 0.0, fs->P, C);
    if (n_te)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_te, n_tr, n_tr, 1.0, Kx, n_tr, Kc, n_tr, 0.0, fs->Q, n_tr);
    fs->d = n_tr;
    st = GR_OK;
out:
    free(r); free(Kc); free(Kx); free(Tc);
    return st;
}

gr_status gr_probe_ridge_cv(const float *X, const int *y, int n, int F, int C, int folds,
                            double *acc, double *lambda, double *acc_grid, gr_error *err) {
    gr_status st = check_inputs("ridge probe", y, n, F, C, err);
    if (st != GR_OK) return st;
    if (folds < 2 || folds > n)
        return gr_error_set(err, GR_ERR_ARG, "ridge probe: %d folds for %d samples", folds, n);
    int dmax = F < n ? F : n;
    double *Z = gr_malloc((size_t)n * F * sizeof(double), err);
    double *K = NULL;
    int *fold = gr_malloc((size_t)n * sizeof(int), err);
    int *tr = gr_malloc((size_t)n * sizeof(int), err), *te = gr_malloc((size_t)n * sizeof(int), err);
    fold_spec fs = {0};
    fs.s = gr_malloc((size_t)dmax * sizeof(double), err);
    fs.P = gr_malloc((size_t)dmax * C * sizeof(double), err);
    fs.Q = gr_malloc((size_t)n * dmax * sizeof(double), err);
    fs.my = gr_malloc((size_t)C * sizeof(double), err);
    double *pred = gr_malloc((size_t)C * sizeof(double), err);
    long correct[GR_PROBE_N_LAMBDA] = {0}, scored = 0;
    st = GR_ERR_NOMEM;
    if (!Z || !fold || !tr || !te || !fs.s || !fs.P || !fs.Q || !fs.my || !pred) goto out;
    gr_probe_standardize(X, n, F, Z);
    gr_probe_folds(y, n, folds, fold);
    for (int f = 0; f < folds; f++) {
        int n_tr = 0, n_te = 0;
        for (int i = 0; i < n; i++) {
            if (fold[i] == f) te[n_te++] = i;
            else tr[n_tr++] = i;
        }
        if (n_te == 0 || n_tr == 0) continue;
        for (int c = 0; c < C; c++) fs.my[c] = 0;
        for (int i = 0; i < n_tr; i++) fs.my[y[tr[i]]] += 1.0 / n_tr;
        if (F <= n_tr) {
            st = fold_primal(Z, y, F, C, tr, n_tr, te, n_te, &fs, err);
        } else {
            if (!K) {
                K = gr_malloc((size_t)n * n * sizeof(double), err);
                if (!K) { st = GR_ERR_NOMEM; goto out; }
                gram_rows(Z, n, F, K);
            }
            st = fold_dual(K, n, y, C, tr, n_tr, te, n_te, &fs, err);
        }
        if (st != GR_OK) goto out;
        double trace = 0;
        for (int k = 0; k < fs.d; k++) {
            if (fs.s[k] < 0) fs.s[k] = 0;   /* round-off below zero */
            trace += fs.s[k];
        }
        double scale = trace > 0 ? trace / fs.d : 1;
        for (int l = 0; l < GR_PROBE_N_LAMBDA; l++) {
            double lam = lambda_rel[l] * scale;
            for (int a = 0; a < n_te; a++) {
                const double *q = fs.Q + (size_t)a * fs.d;
                for (int c = 0; c < C; c++) pred[c] = 0;
                for (int k = 0; k < fs.d; k++) {
                    double w = q[k] / (fs.s[k] + lam);
                    const double *p = fs.P + (size_t)k * C;
                    for (int c = 0; c < C; c++) pred[c] += w * p[c];
                }
                int best = 0;
                for (int c = 1; c < C; c++)
                    if (pred[c] + fs.my[c] > pred[best] + fs.my[best]) best = c;
                correct[l] += best == y[te[a]];
            }
        }
        scored += n_te;
    }
    int bl = 0;
    for (int l = 1; l < GR_PROBE_N_LAMBDA; l++)
        if (correct[l] >= correct[bl]) bl = l;
    if (acc_grid)
        for (int l = 0; l < GR_PROBE_N_LAMBDA; l++) acc_grid[l] = (double)correct[l] / (double)scored;
    *acc = (double)correct[bl] / (double)scored;
    if (lambda) *lambda = lambda_rel[bl];
    st = GR_OK;
out:
    free(Z); free(K); free(fold); free(tr); free(te);
    free(fs.s); free(fs.P); free(fs.Q); free(fs.my); free(pred);
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

gr_status gr_probe_logme(const float *X, const int *y, int n, int F, int C, double *score,
                         gr_error *err) {
    gr_status st = check_inputs("LogME", y, n, F, C, err);
    if (st != GR_OK) return st;
    bool primal = F <= n;
    int d = primal ? F : n;
    double *Z = gr_malloc((size_t)n * F * sizeof(double), err);
    double *A = gr_malloc((size_t)d * d * sizeof(double), err);
    double *s = gr_malloc((size_t)d * sizeof(double), err);
    double *x = gr_malloc((size_t)d * sizeof(double), err);
    double *sk = gr_malloc((size_t)d * sizeof(double), err);
    double *B = gr_calloc((size_t)F * C, sizeof(double), err);
    int *cnt = gr_calloc((size_t)C, sizeof(int), err), *keep = gr_malloc((size_t)d * sizeof(int), err);
    st = GR_ERR_NOMEM;
    if (!Z || !A || !s || !x || !sk || !B || !cnt || !keep) goto out;
    gr_probe_standardize(X, n, F, Z);
    for (int i = 0; i < n; i++) cnt[y[i]]++;
    if (primal) {
        gram_cols(Z, n, F, A);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < F; j++) B[(size_t)j * C + y[i]] += Z[(size_t)i * F + j];   /* Z^T Y */
    } else {
        gram_rows(Z, n, F, A);
    }
    if ((st = gr_probe_eigh(A, d, s, err)) != GR_OK) goto out;
    /* keep the nonzero spectrum: keep[r] = eigenvector row of sk[r] */
    double smax = 0;
    for (int k = 0; k < d; k++) smax = s[k] > smax ? s[k] : smax;
    int r = 0;
    for (int k = 0; k < d; k++)
        if (s[k] > 1e-10 * smax) { keep[r] = k; sk[r++] = s[k]; }
    double total = 0;
    for (int c = 0; c < C; c++) {
        double x2 = 0;
        for (int q = 0; q < r; q++) {
            const double *v = A + (size_t)keep[q] * d;
            double xv = 0;
            if (primal) {   /* u_k . y = (v_k . Z^T y) / sigma_k */
                for (int j = 0; j < F; j++) xv += v[j] * B[(size_t)j * C + c];
                xv /= sqrt(sk[q]);
            } else {
                for (int i = 0; i < n; i++)
                    if (y[i] == c) xv += v[i];
            }
            x[q] = xv;
            x2 += xv * xv;
        }
        double rx2 = cnt[c] - x2;
        total += logme_one(sk, x, r, rx2 > 0 ? rx2 : 0, F, n);
    }
    *score = total / C;
    st = GR_OK;
out:
    free(Z); free(A); free(s); free(x); free(sk); free(B); free(cnt); free(keep);
    return st;
}
