/* fuzz_csv.c — CSV dataset lists (src/data/dataset.c): the input as list.csv
 * in a directory that also holds two small images (a.png, b.bmp), opened
 * with and without skip_bad, every listed sample read at 6x5.             */
#include "fuzz.h"

static void setup(void) {
    static const char *imgs[] = {"a.png", "b.bmp"};
    static const char *src[] = {FUZZ_SRCDIR "/tests/fixtures/data/rgb8.png",
                                FUZZ_SRCDIR "/tests/fixtures/data/rgb24.bmp"};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(src[k], "rb");
        if (!f) { perror(src[k]); abort(); }
        uint8_t buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        char p[256];
        fuzz_path(p, sizeof p, imgs[k]);
        fuzz_write(p, buf, n);
    }
}

static void one(const char *path, bool skip_bad) {
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(path, &(gr_dataset_opts){.format = GR_DATA_CSV, .h = 6, .w = 5,
                                                               .skip_bad = skip_bad}, &err);
    if (!ds) {
        fuzz_check_error(&err, "gr_dataset_open");
        return;
    }
    static float x[6 * 5 * 3];
    for (int i = 0; i < gr_dataset_count(ds) && i < 16; i++) {
        if (gr_dataset_get(ds, i, x, &err) != GR_OK) fuzz_check_error(&err, "gr_dataset_get");
        int l = gr_dataset_label(ds, i);
        if (l < 0 || l >= gr_dataset_num_classes(ds)) abort();
        (void)gr_dataset_path(ds, i);
    }
    int *tr = NULL, *va = NULL, ntr, nva;
    if (gr_dataset_split(ds, 0.25f, 1, &tr, &ntr, &va, &nva, &err) == GR_OK) {
        free(tr);
        free(va);
    }
    gr_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) setup(), ready = 1;
    const char *path = fuzz_input_file("list.csv", data, size);
    one(path, false);
    one(path, true);
    return 0;
}
