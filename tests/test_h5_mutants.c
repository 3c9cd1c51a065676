/* test_h5_mutants.c — structure-level fuzzing of the Keras .h5 reader
 * (src/format/keras_h5.c) and the weights binder (src/format/weights.c).
 *
 * tests/fixtures/gen_h5_mutants.py writes 300 valid HDF5 files (seeded):
 * the tiny Keras model of gen_weights.py with its groups, attributes,
 * dtypes and shapes mutated.  Each is opened as a weights file (every tensor
 * read) and loaded into the matching graft model (conv1, bn1, pool1,
 * flatten, fc).  Each must either succeed or fail cleanly: a non-OK status
 * whose message names the file — never a crash, a sanitizer report, a hang
 * or a huge allocation.  Also: the unmutated file loads, and the mutants
 * are not all accepted nor all refused (the generator really mutates).    */
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "graft.h"
#include "graph/model.h"
#include "format/weights.h"

enum { N_MUTANTS = 300 };

/* Opens path as a weights file and reads every tensor; 1 ok, 0 clean error,
 * -1 an error without a message naming the file.                          */
static int read_all(const char *path, gr_error *err) {
    gr_wfile *wf = gr_wfile_open(path, err);
    if (!wf) return err->code != GR_OK && strstr(err->msg, path) ? 0 : -1;
    int r = 1;
    for (int l = 0; l < wf->n_layers && r == 1; l++)
        for (int k = 0; k < wf->layers[l].n && r == 1; k++) {
            const gr_wtensor *t = &wf->layers[l].t[k];
            int64_t n = gr_wtensor_count(t);
            if (n < 0 || n > (1 << 22)) continue;
            float *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
            if (!buf) continue;
            if (wf->read(wf, t, buf, n, err) != GR_OK) r = err->code != GR_OK && strstr(err->msg, path) ? 0 : -1;
            free(buf);
        }
    gr_wfile_close(wf);
    return r;
}

static void test_h5_mutants(void) {
    char dir[128], cmd[512];
    if (access("/usr/bin/python3", X_OK) || system("/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null"))
        SKIP("/usr/bin/python3 with h5py and numpy is needed (scripts/deps.sh test)");
    if (check_mkdtemp(dir, sizeof dir, "h5-mutants")) { CHECK(0, "mkdtemp"); return; }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/fixtures/gen_h5_mutants.py %s %d 15", dir, N_MUTANTS);
    CHECK(system(cmd) == 0, "%s failed", cmd);
    gr_model *m = check_tiny_model();
    CHECK(m != NULL, "tiny model");
    if (!m) return;
    int loaded = 0, refused = 0, read_ok = 0;
    for (int i = 0; i < N_MUTANTS; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/mutant_%03d.h5", dir, i);
        gr_error err = {0};
        int r = read_all(path, &err);
        CHECK(r >= 0, "%s: reading failed without naming the file: '%s'", path, err.msg);
        read_ok += r == 1;
        memset(&err, 0, sizeof err);
        gr_load_report rep;
        gr_status st = gr_model_load_weights(m, path, &rep, &err);
        if (st == GR_OK) loaded++;
        else {
            refused++;
            CHECK(err.code == st && strstr(err.msg, path), "%s: status %d, message '%s'", path, (int)st, err.msg);
        }
    }
    printf("  h5 mutants: %d read whole, %d loaded, %d refused with an error\n", read_ok, loaded, refused);
    CHECK(loaded > 0 && refused > 0, "the mutants should be partly loadable, partly not (%d / %d)", loaded, refused);
    /* the unmutated file of gen_weights.py loads */
    gr_error err = {0};
    CHECK(gr_model_load_weights(m, "tests/fixtures/weights/tiny_k2.h5", NULL, &err) == GR_OK, "%s", err.msg);
    gr_model_free(m);
    check_rmtree(dir);
}

int main(void) {
    gr_set_threads(1);
    RUN(test_h5_mutants);
    return check_summary();
}
