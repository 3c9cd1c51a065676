/* bench_decode.c — images/s for graft's data input (single thread unless
 * said): JPEG decode + resize to 224x224 float, CIFAR records to float
 * (caffe preprocessing), and the prefetching batcher.  Prints one line per
 * case: "<case> <images/s>".  Usage: bench_decode <jpeg>... -- <cifar .bin> <seconds> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graft.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int nj = 0;
    while (nj + 1 < argc && strcmp(argv[nj + 1], "--")) nj++;
    if (nj + 3 >= argc) { fprintf(stderr, "usage: bench_decode <jpeg>... -- <cifar.bin> <seconds>\n"); return 2; }
    const char *bin = argv[nj + 2];
    double secs = atof(argv[nj + 3]);
    gr_error err = {0};
    float *out = malloc(sizeof(float) * 224 * 224 * 3 * 64);
    /* 1. JPEG decode + resize 224x224 (stretch, PIL bilinear) */
    long n = 0;
    double t0 = now();
    while (now() - t0 < secs) {
        gr_image img;
        if (gr_image_load(argv[1 + n % nj], &img, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        gr_image_resize(&img, 224, 224, GR_RESIZE_STRETCH, out, &err);
        gr_preprocess_apply(GR_PREP_CAFFE, out, 224 * 224);
        gr_image_free(&img);
        n++;
    }
    printf("jpeg_decode_resize224 %.1f\n", n / (now() - t0));
    /* 2. CIFAR records -> float 32x32 caffe, one at a time */
    gr_dataset *ds = gr_dataset_open(bin, &(gr_dataset_opts){.preprocess = GR_PREP_CAFFE}, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 1; }
    int cnt = gr_dataset_count(ds);
    n = 0;
    t0 = now();
    while (now() - t0 < secs) {
        for (int k = 0; k < 1000; k++, n++) gr_dataset_get(ds, (int)(n % cnt), out, &err);
    }
    printf("cifar_record32 %.1f\n", n / (now() - t0));
    /* 3. CIFAR -> 224x224 (upscaled), the batcher with 2 threads, pad-crop + flip */
    gr_dataset_free(ds);
    ds = gr_dataset_open(bin, &(gr_dataset_opts){.h = 224, .w = 224, .preprocess = GR_PREP_CAFFE}, &err);
    int *lab = malloc(sizeof(int) * 64);
    for (int th = 0; th <= 2; th += 2) {
        gr_batcher *b = gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){.batch = 64, .shuffle = true, .seed = 1,
                                       .pad = 4, .hflip = true, .threads = th}, &err);
        if (!b) { fprintf(stderr, "%s\n", err.msg); return 1; }
        n = 0;
        t0 = now();
        int got;
        while (now() - t0 < secs) {
            if (gr_batcher_next(b, out, lab, &got, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            n += got;
        }
        printf("cifar_batcher224_threads%d %.1f\n", th, n / (now() - t0));
        gr_batcher_free(b);
    }
    gr_dataset_free(ds);
    free(out), free(lab);
    return 0;
}
