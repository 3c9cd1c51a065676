/* fuzz.h — shared helpers of the libFuzzer targets in fuzz/ (and of the
 * standalone regression driver, fuzz/standalone_main.c).
 *
 * Most of graft's loaders take a path, so a target writes the input to a
 * file in one private temporary directory (made once per process, reused
 * for every input) and calls the loader on it.  Nothing here is part of the
 * library; the static state belongs to the test harness process.          */
#ifndef GRAFT_FUZZ_H
#define GRAFT_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the repository is (fixed inputs such as a cfg): the targets run
 * from the repository root unless -DFUZZ_SRCDIR says otherwise.          */
#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

/* The process's private directory ("/dev/shm/graft-fuzz-XXXXXX"), made on first
 * use and removed at exit (its files only: targets write flat names).    */
static char fuzz_dir_[64];
static void fuzz_cleanup_(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_);
    if (system(cmd) != 0) { /* best effort */ }
}
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_[0]) {
        gr_set_threads(1);   /* one core per fuzzer process */
        /* a memory budget well under libFuzzer's -rss_limit_mb=2048: models
         * bigger than it (8M parameters) are refused (an error), not built slowly under ASan */
        setenv("GRAFT_MAX_MEMORY", "32", 0);
        /* /dev/shm (tmpfs) when there is one: rewriting a file on a disk
         * file system costs more than most inputs take to parse */
        char tmpl[] = "/dev/shm/graft-fuzz-XXXXXX", alt[] = "/tmp/graft-fuzz-XXXXXX";
        char *d = mkdtemp(tmpl);
        if (!d) d = mkdtemp(alt);
        if (!d) { perror("mkdtemp"); abort(); }
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s", d);
        atexit(fuzz_cleanup_);
    }
    return fuzz_dir_;
}

/* Path of `name` in the private directory (a static buffer per call site
 * is not needed: callers copy or use it at once).                          */
static inline void fuzz_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", fuzz_dir(), name);
}

/* Writes n bytes to path (truncating).  Aborts on a write error: that is a
 * harness failure (e.g. /tmp full), not a finding.                         */
static inline void fuzz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) { perror(path); abort(); }
}

/* Writes the input to the private directory under `name`; returns the path
 * (a static buffer, valid until the next call).                           */
static inline const char *fuzz_input_file(const char *name, const uint8_t *data, size_t n) {
    static char path[256];
    fuzz_path(path, sizeof path, name);
    fuzz_write(path, data, n);
    return path;
}

/* True when the bytes carry an HDF5 signature where graft looks for one
 * (offset 0, 512, 1024, ... 8192): such inputs would fuzz libhdf5, not
 * graft (Keras .h5 files are fuzzed at the structure level instead).      */
static inline int fuzz_is_hdf5(const uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(d, sig, 8)) return 1;
    for (size_t off = 512; off <= 8192; off *= 2)
        if (n >= off + 8 && !memcmp(d + off, sig, 8)) return 1;
    return 0;
}

/* The error messages of the current input (the standalone driver clears
 * them before each input and checks them against fuzz/regress/ *.expect).
 * One definition per program: each target is one translation unit.       */
char fuzz_last_error[4096];

/* A failed load must say what failed: a non-OK code with an empty message
 * is a finding (abort, so both libFuzzer and the driver report it).       */
static inline void fuzz_check_error(const gr_error *err, const char *what) {
    if (err->code == GR_OK || !err->msg[0]) {
        fprintf(stderr, "%s failed without an error message (code %d)\n", what, (int)err->code);
        abort();
    }
    size_t k = strlen(fuzz_last_error);   /* every error of the input, " | "-separated */
    snprintf(fuzz_last_error + k, sizeof fuzz_last_error - k, "%s%s", k ? " | " : "", err->msg);
}

/* Sum of the output sizes of every node (floats per sample): a bound on the
 * work of one inference, used to skip running models too big to fuzz fast. */
static inline int64_t fuzz_model_work(const gr_model *m) {
    int64_t s = 0;
    for (int i = 0; i < gr_model_num_layers(m); i++) {
        int h, w, c;
        gr_model_layer_shape(m, i, &h, &w, &c);
        s += (int64_t)h * w * c;
    }
    return s;
}

/* Runs a loaded model once on a zero input when it is small (shape bugs in
 * a loaded graph show up here, not at load).  Returns its status.          */
static inline gr_status fuzz_run_small(gr_model *m) {
    int n = gr_model_num_layers(m), h, w, c;
    if (n <= 0) return GR_OK;
    gr_model_layer_shape(m, -1, &h, &w, &c);
    int64_t in = (int64_t)h * w * c, work = fuzz_model_work(m);
    if (in <= 0 || in > 4096 || work > 200000 || gr_model_param_count(m, false) > 200000) return GR_OK;
    int oh, ow, oc;
    gr_model_layer_shape(m, n - 1, &oh, &ow, &oc);
    float *x = calloc((size_t)in, sizeof *x), *y = calloc((size_t)oh * ow * oc + 1, sizeof *y);
    gr_error err = {0};
    gr_status st = GR_OK;
    if (x && y) {
        st = gr_model_predict(m, x, 1, -1, y, &err);
        if (st != GR_OK) fuzz_check_error(&err, "gr_model_predict");
    }
    free(x);
    free(y);
    return st;
}
#endif
