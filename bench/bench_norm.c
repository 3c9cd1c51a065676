/* bench_norm.c — gr_norm_apply on a 224x224 image, per preset and for a
 * custom mean/std, beside the per-mode scalar loops graft used before free
 * normalization values (graft 625b65f's gr_preprocess_apply, copied here as
 * the baseline).  Min of N calls (each after a 600 KB memcpy, counted), so
 * a busy machine's preemptions drop out.  Usage: bench_norm [calls]       */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "graft.h"

enum { PX = 224 * 224 };
static float src[PX * 3], x[PX * 3];
static volatile size_t vn = PX;   /* a runtime count, as in the library */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void former(int p, float *v, size_t n) {
    static const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
    switch (p) {
    case GR_PREP_CAFFE:
        for (size_t i = 0; i < n; i++, v += 3) {
            float r = v[0], b = v[2];
            v[0] = b - 103.939f, v[1] -= 116.779f, v[2] = r - 123.68f;
        }
        break;
    case GR_PREP_TORCH:
        for (size_t i = 0; i < n; i++, v += 3)
            for (int c = 0; c < 3; c++) v[c] = (v[c] / 255.0f - m[c]) / s[c];
        break;
    case GR_PREP_TF: for (size_t i = 0; i < 3 * n; i++) v[i] = v[i] / 127.5f - 1.0f; break;
    case GR_PREP_DARKNET: for (size_t i = 0; i < 3 * n; i++) v[i] /= 255.0f; break;
    default: break;
    }
}

int main(int argc, char **argv) {
    int calls = argc > 1 ? atoi(argv[1]) : 400;
    for (int i = 0; i < PX * 3; i++) src[i] = (float)(i % 256);
    for (int p = GR_PREP_CAFFE; p <= GR_PREP_CUSTOM; p++) {
        gr_norm n = p == GR_PREP_CUSTOM ? (gr_norm){255, {0.48145466f, 0.4578275f, 0.40821073f},
                                                    {0.26862954f, 0.26130258f, 0.27577711f}, false}
                                        : gr_norm_preset((gr_preprocess)p);
        double best_old = 1e9, best_new = 1e9;
        for (int k = 0; k < calls; k++) {
            double t0 = now();
            memcpy(x, src, sizeof x);
            former(p, x, vn);
            double t1 = now();
            memcpy(x, src, sizeof x);
            gr_norm_apply(&n, x, vn);
            double t2 = now();
            if (t1 - t0 < best_old) best_old = t1 - t0;
            if (t2 - t1 < best_new) best_new = t2 - t1;
        }
        if (p == GR_PREP_CUSTOM)
            printf("%-8s 224x224: gr_norm_apply %6.1f us (CLIP's mean/std)\n", "custom", best_new * 1e6);
        else
            printf("%-8s 224x224: former loop %6.1f us, gr_norm_apply %6.1f us\n", gr_preprocess_name((gr_preprocess)p),
                   best_old * 1e6, best_new * 1e6);
    }
    return 0;
}
