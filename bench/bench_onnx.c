/* bench_onnx.c — graft's side of bench/onnx_forward.sh: an ONNX classifier
 * (--base onnx:FILE with its classifier) run forward at 224x224, driven by
 * bench/peer_onnx_forward.py through stdin/stdout so that its rounds take
 * turns with ONNX Runtime's and OpenVINO's.
 *
 *   bench_onnx FILE.onnx SIZE      prints "ready layers=N" (or "error: ...")
 *   then per stdin line "run B SECONDS": one round of batch-B forward passes
 *   lasting >= SECONDS, answered "ok iters=N secs=T min_ms=A med_ms=M"
 *   ("quit" or EOF ends).  The first round of a batch size also builds the
 *   oneDNN primitives (the driver runs a warm-up round first).  Threads:
 *   GRAFT_THREADS / OMP_NUM_THREADS as usual (the driver sets 2).        */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graft.h"
#include "bench_common.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_onnx FILE.onnx SIZE\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    gr_set_threads(0);
    int S = atoi(argv[2]);
    gr_error err = {0};
    gr_model *m = gr_onnx_load(argv[1], S, S, true, &err);
    if (!m) {
        printf("error: %s\n", err.msg);
        return 1;
    }
    gr_ctx *cx = gr_ctx_new(m, &err);
    if (!cx) {
        printf("error: %s\n", err.msg);
        return 1;
    }
    int oh, ow, oc;
    gr_model_layer_shape(m, gr_model_num_layers(m) - 1, &oh, &ow, &oc);
    printf("ready layers=%d threads=%d\n", gr_model_num_layers(m), gr_get_threads());
    char line[128];
    float *x = NULL, *y = NULL;
    double *ts = NULL;
    size_t cap_t = 0;
    int cur_b = 0;
    while (fgets(line, sizeof line, stdin)) {
        int B;
        double secs;
        if (sscanf(line, "run %d %lf", &B, &secs) != 2 || B < 1 || B > 1024) break;
        if (B != cur_b) {
            free(x);
            free(y);
            x = malloc((size_t)B * S * S * 3 * sizeof(float));
            y = malloc((size_t)B * oh * ow * oc * sizeof(float));
            if (!x || !y) { printf("error: out of memory\n"); return 1; }
            uint64_t r = 88172645463325252ULL;
            for (size_t i = 0; i < (size_t)B * S * S * 3; i++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                x[i] = (float)(r >> 40) / (float)(1 << 24) * 4.0f - 2.0f;   /* a normalized image's range */
            }
            cur_b = B;
        }
        size_t n = 0;
        double t0 = now(), t;
        do {
            double a = now();
            if (gr_ctx_predict(cx, x, B, -1, y, &err)) { printf("error: %s\n", err.msg); return 1; }
            if (n == cap_t) {
                cap_t = cap_t ? 2 * cap_t : 256;
                double *p = realloc(ts, cap_t * sizeof *p);
                if (!p) { printf("error: out of memory\n"); return 1; }
                ts = p;
            }
            ts[n++] = now() - a;
            t = now() - t0;
        } while (t < secs);
        qsort(ts, n, sizeof *ts, cmp_d);
        printf("ok iters=%zu secs=%.4f min_ms=%.3f med_ms=%.3f\n", n, t, 1e3 * ts[0], 1e3 * ts[n / 2]);
    }
    free(x);
    free(y);
    free(ts);
    gr_ctx_free(cx);
    gr_model_free(m);
    return 0;
}
