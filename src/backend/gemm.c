/* gemm.c — graft's one GEMM entry: C = alpha * op(A) op(B) + beta * C,
 * row-major float32, through oneDNN's sgemm (JIT-compiled for this CPU,
 * deterministic for a given thread count). */
#include <oneapi/dnnl/dnnl.h>
#include "backend/backend.h"

gr_status gr_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, gr_error *err) {
    dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                                 beta, C, ldc);
    if (s != dnnl_success)
        return gr_error_set(err, GR_ERR_BACKEND, "sgemm %dx%dx%d failed (oneDNN status %d)", M, N, K, (int)s);
    return GR_OK;
}
