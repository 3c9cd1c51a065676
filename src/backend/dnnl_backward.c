/* dnnl_backward.c — placeholder (being written). */
#include "backend/backend.h"
#include "backend/dnnl_util.h"
void dn_bwd_free(struct dn_bwd *b) { (void)b; }
gr_status gr_backend_conv2d_backward(gr_model *m, int node, const float *dout, const float *in,
                                     int B, float *din, float *dw, float *db, gr_error *err) {
    (void)m; (void)node; (void)dout; (void)in; (void)B; (void)din; (void)dw; (void)db; (void)err;
    return GR_ERR_UNSUPPORTED;
}
gr_status gr_backend_dense_backward(gr_model *m, int node, const float *dout, const float *in,
                                    int B, float *din, float *dw, float *db, gr_error *err) {
    (void)m; (void)node; (void)dout; (void)in; (void)B; (void)din; (void)dw; (void)db; (void)err;
    return GR_ERR_UNSUPPORTED;
}
