/* test_dataset.c — CIFAR-10/100 (real files, generated files, .tar.gz),
 * image folders and CSV lists, bad inputs, a fuzz loop over CIFAR data, the
 * batcher's determinism across thread counts and its augmentation, and the
 * stratified split.  Run from the repo root.                               */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "graft.h"
#include "data/dataset.h"
#include "graph/model.h"

static const char *c10names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                   "dog", "frog", "horse", "ship", "truck"};

/* Labels of the official train set from trainLabels.csv ("id,label,..."). */
static int *train_labels(int *n) {
    char p[512];
    snprintf(p, sizeof p, "%s/cifar-10-extra/trainLabels.csv", check_data_dir());
    FILE *f = fopen(p, "r");
    if (!f) return NULL;
    int *l = malloc(sizeof(int) * 50000), k = 0;
    char line[256];
    while (fgets(line, sizeof line, f) && k < 50000) {
        char *c = strchr(line, ',');
        if (!c || line[0] < '0' || line[0] > '9') continue;
        char *e = strchr(c + 1, ',');
        if (e) *e = 0;
        l[k] = -1;
        for (int j = 0; j < 10; j++)
            if (!strcmp(c + 1, c10names[j])) l[k] = j;
        k++;
    }
    fclose(f);
    *n = k;
    return l;
}

/* A CIFAR-like record: label byte(s) then R, G, B planes with pixel value
 * (r * 7 + p * 3 + c * 50 + seed) & 255.                                   */
static void make_records(uint8_t *buf, int n, int label_bytes, int seed, int nclass, int nclass2) {
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * (3072 + label_bytes);
        if (label_bytes == 1) rec[0] = (uint8_t)((r + seed) % nclass);
        else rec[0] = (uint8_t)((r + seed) % nclass2), rec[1] = (uint8_t)((r * 3 + seed) % nclass);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) rec[label_bytes + c * 1024 + p] = (uint8_t)((r * 7 + p * 3 + c * 50 + seed) & 255);
    }
}
static int pixel_of(int r, int p, int c, int seed) { return (r * 7 + p * 3 + c * 50 + seed) & 255; }

static void test_cifar_lossless(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/cifar-10-extra/train_first200_lossless.bin", check_data_dir());
    if (access(p, R_OK)) SKIP("%s absent", p);
    int nl = 0;
    int *want = train_labels(&nl);
    CHECK(want && nl == 50000, "trainLabels.csv: %d labels", nl);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){0}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (!ds || !want) { free(want); gr_dataset_free(ds); return; }
    CHECK(gr_dataset_count(ds) == 200, "count %d", gr_dataset_count(ds));
    CHECK(gr_dataset_num_classes(ds) == 10, "classes");
    CHECK(!strcmp(gr_dataset_class_name(ds, 6), "frog"), "%s", gr_dataset_class_name(ds, 6));
    int bad = 0;
    for (int i = 0; i < 200; i++) bad += gr_dataset_label(ds, i) != want[i];
    CHECK(bad == 0, "%d labels differ from trainLabels.csv", bad);
    /* pixel spot checks against the raw record layout */
    size_t n;
    uint8_t *raw = check_read_file(p, &n);
    float img[32 * 32 * 3];
    int recs[3] = {0, 57, 199};
    for (int k = 0; raw && k < 3; k++) {
        CHECK(gr_dataset_get(ds, recs[k], img, &err) == GR_OK, "%s", err.msg);
        const uint8_t *rec = raw + (size_t)recs[k] * 3073;
        int pts[4][2] = {{0, 0}, {31, 31}, {5, 20}, {17, 3}};
        for (int q = 0; q < 4; q++)
            for (int c = 0; c < 3; c++) {
                int y = pts[q][0], x = pts[q][1];
                CHECK(img[(y * 32 + x) * 3 + c] == rec[1 + c * 1024 + y * 32 + x], "rec %d (%d,%d,%d)", recs[k], y, x, c);
            }
    }
    free(raw), free(want);
    gr_dataset_free(ds);
}

static void test_cifar_dir(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin", check_data_dir());
    if (access(p, R_OK)) SKIP("%s absent", p);
    gr_error err = {0};
    gr_dataset *tr = gr_dataset_open(p, &(gr_dataset_opts){.split = GR_SPLIT_TRAIN}, &err);
    CHECK(tr != NULL, "%s", err.msg);
    gr_dataset *te = gr_dataset_open(p, &(gr_dataset_opts){.split = GR_SPLIT_TEST}, &err);
    CHECK(te != NULL, "%s", err.msg);
    if (tr && te) {
        CHECK(gr_dataset_count(tr) == 50000 && gr_dataset_count(te) == 10000, "counts %d %d",
              gr_dataset_count(tr), gr_dataset_count(te));
        for (int c = 0; c < 10; c++)
            CHECK(!strcmp(gr_dataset_class_name(tr, c), c10names[c]), "class %d: %s", c, gr_dataset_class_name(tr, c));
        int nl = 0, *want = train_labels(&nl), bad = 0, per[10] = {0};
        for (int i = 0; want && i < 50000; i++) bad += gr_dataset_label(tr, i) != want[i];
        CHECK(want && bad == 0, "%d train labels differ from trainLabels.csv", bad);
        for (int i = 0; i < 10000; i++) per[gr_dataset_label(te, i)]++;
        for (int c = 0; c < 10; c++) CHECK(per[c] == 1000, "test class %d: %d", c, per[c]);
        free(want);
    }
    gr_dataset_free(tr), gr_dataset_free(te);
}

/* Generated CIFAR-10 batches: directory, single .bin, and a .tar.gz. */
static void test_cifar_generated(void) {
    char d[256], p[512];
    snprintf(d, sizeof d, "%s/cifar-10-batches-bin", check_tmp_dir());
    mkdir(d, 0755);
    uint8_t *buf = malloc(3073 * 4);
    for (int b = 1; b <= 5; b++) {
        make_records(buf, 3, 1, b * 10, 10, 0);
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", d, b);
        check_write_file(p, buf, 3073 * 3);
    }
    make_records(buf, 4, 1, 99, 10, 0);
    snprintf(p, sizeof p, "%s/test_batch.bin", d);
    check_write_file(p, buf, 3073 * 4);
    snprintf(p, sizeof p, "%s/batches.meta.txt", d);
    check_write_file(p, "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n", 31);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && tar czf cifar-10-binary.tar.gz cifar-10-batches-bin", check_tmp_dir());
    CHECK(system(cmd) == 0, "tar failed");
    const char *srcs[3] = {d, check_tmp_dir(), NULL};
    char tgz[512];
    snprintf(tgz, sizeof tgz, "%s/cifar-10-binary.tar.gz", check_tmp_dir());
    srcs[2] = tgz;
    for (int s = 0; s < 3; s++) {
        gr_error err = {0};
        gr_dataset *ds = gr_dataset_open(srcs[s], &(gr_dataset_opts){.split = GR_SPLIT_TRAIN}, &err);
        CHECK(ds != NULL, "%s: %s", srcs[s], err.msg);
        if (!ds) continue;
        CHECK(gr_dataset_count(ds) == 15, "%s: count %d", srcs[s], gr_dataset_count(ds));
        CHECK(!strcmp(gr_dataset_class_name(ds, 3), "a3"), "%s: name %s", srcs[s], gr_dataset_class_name(ds, 3));
        float img[3072];
        for (int i = 0; i < gr_dataset_count(ds); i++) {
            int b = i / 3 + 1, r = i % 3, seed = b * 10;
            CHECK(gr_dataset_label(ds, i) == (r + seed) % 10, "%s: label %d", srcs[s], i);
            gr_dataset_get(ds, i, img, &err);
            CHECK(img[0] == pixel_of(r, 0, 0, seed) && img[3 * 100 + 2] == pixel_of(r, 100, 2, seed) &&
                  img[3 * 1023 + 1] == pixel_of(r, 1023, 1, seed), "%s: pixels of %d", srcs[s], i);
        }
        gr_dataset_free(ds);
        ds = gr_dataset_open(srcs[s], &(gr_dataset_opts){.split = GR_SPLIT_TEST, .h = 64, .w = 48}, &err);
        CHECK(ds && gr_dataset_count(ds) == 4, "%s test split: %s", srcs[s], ds ? "" : err.msg);
        int h, w;
        gr_dataset_size(ds, &h, &w);
        CHECK(h == 64 && w == 48, "size %dx%d", h, w);
        gr_dataset_free(ds);
    }
    /* single .bin: whole file */
    gr_error err = {0};
    snprintf(p, sizeof p, "%s/test_batch.bin", d);
    gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){.split = GR_SPLIT_TRAIN}, &err);
    CHECK(ds && gr_dataset_count(ds) == 4 && gr_dataset_label(ds, 1) == 100 % 10, "single bin: %s", err.msg);
    CHECK(ds && !strcmp(gr_dataset_class_name(ds, 0), "a0"), "names from the sibling meta file");
    gr_dataset_free(ds);
    free(buf);
}

static void test_cifar100(void) {
    char d[256], p[512];
    snprintf(d, sizeof d, "%s/c100", check_tmp_dir());
    mkdir(d, 0755);
    uint8_t *buf = malloc(3074 * 7);
    make_records(buf, 7, 2, 5, 100, 20);
    snprintf(p, sizeof p, "%s/train.bin", d);
    check_write_file(p, buf, 3074 * 7);
    snprintf(p, sizeof p, "%s/test.bin", d);
    check_write_file(p, buf, 3074 * 2);
    FILE *f;
    snprintf(p, sizeof p, "%s/fine_label_names.txt", d);
    if ((f = fopen(p, "w"))) { for (int i = 0; i < 100; i++) fprintf(f, "fine%d\n", i); fclose(f); }
    snprintf(p, sizeof p, "%s/coarse_label_names.txt", d);
    if ((f = fopen(p, "w"))) { for (int i = 0; i < 20; i++) fprintf(f, "coarse%d\n", i); fclose(f); }
    gr_error err = {0};
    gr_dataset *fine = gr_dataset_open(d, &(gr_dataset_opts){0}, &err);
    CHECK(fine != NULL, "%s", err.msg);
    gr_dataset *coarse = gr_dataset_open(d, &(gr_dataset_opts){.labels = GR_LABELS_COARSE}, &err);
    CHECK(coarse != NULL, "%s", err.msg);
    if (fine && coarse) {
        CHECK(gr_dataset_count(fine) == 7 && gr_dataset_num_classes(fine) == 100, "fine");
        CHECK(gr_dataset_num_classes(coarse) == 20, "coarse classes %d", gr_dataset_num_classes(coarse));
        for (int r = 0; r < 7; r++) {
            CHECK(gr_dataset_label(fine, r) == (r * 3 + 5) % 100, "fine label %d", r);
            CHECK(gr_dataset_label(coarse, r) == (r + 5) % 20, "coarse label %d", r);
        }
        CHECK(!strcmp(gr_dataset_class_name(fine, 42), "fine42"), "%s", gr_dataset_class_name(fine, 42));
        CHECK(!strcmp(gr_dataset_class_name(coarse, 19), "coarse19"), "%s", gr_dataset_class_name(coarse, 19));
        float img[3072];
        CHECK(gr_dataset_get(fine, 6, img, &err) == GR_OK, "%s", err.msg);
        CHECK(img[3 * 77 + 1] == pixel_of(6, 77, 1, 5), "c100 pixel");
    }
    gr_dataset_free(fine), gr_dataset_free(coarse);
    gr_dataset *te = gr_dataset_open(d, &(gr_dataset_opts){.split = GR_SPLIT_TEST}, &err);
    CHECK(te && gr_dataset_count(te) == 2, "c100 test: %s", err.msg);
    gr_dataset_free(te);
    free(buf);
}

/* expects open(path) to fail with a message containing each of a, b */
static void expect_open_fails(const char *path, const gr_dataset_opts *o, const char *a, const char *b) {
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(path, o, &err);
    CHECK(ds == NULL, "%s opened", path);
    gr_dataset_free(ds);
    CHECK(strstr(err.msg, a) != NULL, "message lacks '%s': %s", a, err.msg);
    if (b) CHECK(strstr(err.msg, b) != NULL, "message lacks '%s': %s", b, err.msg);
}

static void test_cifar_bad(void) {
    char p[600], d[256];
    uint8_t *buf = malloc(3073 * 5);
    make_records(buf, 5, 1, 0, 10, 0);
    snprintf(p, sizeof p, "%s/trunc.bin", check_tmp_dir());
    check_write_file(p, buf, 3073 * 5 - 100);
    expect_open_fails(p, &(gr_dataset_opts){.format = GR_DATA_CIFAR10}, p, "multiple");
    expect_open_fails(p, &(gr_dataset_opts){0}, p, "truncated");
    buf[3073 * 2] = 10;
    snprintf(p, sizeof p, "%s/badlabel.bin", check_tmp_dir());
    check_write_file(p, buf, 3073 * 5);
    expect_open_fails(p, &(gr_dataset_opts){0}, p, "record 2: label 10 out of range");
    /* a directory missing a batch */
    snprintf(d, sizeof d, "%s/c10missing", check_tmp_dir());
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/data_batch_1.bin", d);
    make_records(buf, 2, 1, 0, 10, 0);
    check_write_file(p, buf, 3073 * 2);
    expect_open_fails(d, &(gr_dataset_opts){0}, "data_batch_2.bin", NULL);
    /* an archive without the batches, and a corrupt archive */
    snprintf(p, sizeof p, "%s/empty.tar.gz", check_tmp_dir());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && tar czf empty.tar.gz c100/fine_label_names.txt", check_tmp_dir());
    CHECK(system(cmd) == 0, "tar");
    expect_open_fails(p, &(gr_dataset_opts){.format = GR_DATA_CIFAR100}, p, "train.bin");
    snprintf(p, sizeof p, "%s/cifar-10-binary.tar.gz", check_tmp_dir());
    size_t n;
    uint8_t *t = check_read_file(p, &n);
    if (t) {
        snprintf(p, sizeof p, "%s/cut.tar.gz", check_tmp_dir());
        check_write_file(p, t, n / 2);
        expect_open_fails(p, &(gr_dataset_opts){0}, p, NULL);
    }
    free(t);
    free(buf);
}

/* Truncations and byte flips of CIFAR files and archives: errors or valid datasets. */
static void test_cifar_fuzz(void) {
    char src[512], p[512];
    snprintf(src, sizeof src, "%s/cifar-10-binary.tar.gz", check_tmp_dir());
    size_t ntgz, nbin;
    uint8_t *tgz = check_read_file(src, &ntgz);
    uint8_t *bin = malloc(3073 * 6);
    make_records(bin, 6, 1, 3, 10, 0);
    nbin = 3073 * 6;
    CHECK(tgz != NULL, "no archive");
    if (!tgz) { free(bin); return; }
    gr_rng r;
    gr_rng_seed(&r, 7);
    int ok = 0, bad = 0;
    for (int it = 0; it < 200; it++) {
        bool arc = it & 1;
        size_t n = arc ? ntgz : nbin;
        uint8_t *b = malloc(n);
        memcpy(b, arc ? tgz : bin, n);
        if (gr_rng_below(&r, 2)) n = gr_rng_below(&r, (uint32_t)n + 1);
        int flips = (int)gr_rng_below(&r, 4);
        for (int k = 0; k < flips && n; k++) b[gr_rng_below(&r, (uint32_t)n)] ^= (uint8_t)(1 + gr_rng_below(&r, 255));
        snprintf(p, sizeof p, "%s/fuzz%s", check_tmp_dir(), arc ? ".tar.gz" : ".bin");
        check_write_file(p, b, n);
        free(b);
        gr_error err = {0};
        gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){0}, &err);
        if (ds) {
            ok++;
            for (int i = 0; i < gr_dataset_count(ds); i++)
                CHECK(gr_dataset_label(ds, i) >= 0 && gr_dataset_label(ds, i) < gr_dataset_num_classes(ds), "label");
        } else {
            bad++;
            CHECK(strstr(err.msg, p) != NULL, "message does not name the file: %s", err.msg);
        }
        gr_dataset_free(ds);
        unlink(p);
    }
    CHECK(ok > 5 && bad > 50, "ok %d bad %d", ok, bad);
    free(tgz), free(bin);
}

/* A 24-bit BMP of w x h with pixel (y, x) = (v + x, v + 2y, v + 3x + y). */
static void write_bmp(const char *path, int w, int h, int v) {
    uint8_t rgb[16 * 16 * 3];
    if (w * h > 16 * 16) { CHECK(0, "write_bmp: %dx%d too large", w, h); return; }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = rgb + (y * w + x) * 3;
            q[0] = (uint8_t)(v + x), q[1] = (uint8_t)(v + 2 * y), q[2] = (uint8_t)(v + 3 * x + y);
        }
    check_write_bmp(path, w, h, rgb);
}

static void make_folder(const char *root) {
    char p[600];
    mkdir(root, 0755);
    const char *cls[3] = {"zebra", "ant", "moose"};   /* sorted: ant, moose, zebra */
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/%s", root, cls[c]);
        mkdir(p, 0755);
        for (int k = 0; k < 2 + c; k++) {
            snprintf(p, sizeof p, "%s/%s/img%d.dat", root, cls[c], 9 - k);   /* names not by extension */
            write_bmp(p, 4, 3, 10 * c + k);
        }
        snprintf(p, sizeof p, "%s/%s/notes.txt", root, cls[c]);
        check_write_file(p, "hello", 5);
    }
    snprintf(p, sizeof p, "%s/README", root);
    check_write_file(p, "x", 1);
}

static void test_folder_and_csv(void) {
    char root[256], p[600];
    snprintf(root, sizeof root, "%s/folder", check_tmp_dir());
    make_folder(root);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(root, &(gr_dataset_opts){.h = 3, .w = 4}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (ds) {
        CHECK(gr_dataset_count(ds) == 9 && gr_dataset_num_classes(ds) == 3, "count %d", gr_dataset_count(ds));
        CHECK(!strcmp(gr_dataset_class_name(ds, 0), "ant") && !strcmp(gr_dataset_class_name(ds, 2), "zebra"), "order");
        CHECK(gr_dataset_ignored(ds) == 3, "ignored %d", gr_dataset_ignored(ds));
        /* ant (c=1 above) files img9 (k=0), img8 (k=1), img7 (k=2): sorted img7, img8, img9 */
        CHECK(gr_dataset_label(ds, 0) == 0 && gr_dataset_label(ds, 3) == 1 && gr_dataset_label(ds, 8) == 2, "labels");
        CHECK(strstr(gr_dataset_path(ds, 0), "ant/img7.dat") != NULL, "%s", gr_dataset_path(ds, 0));
        float x[3 * 4 * 3];
        CHECK(gr_dataset_get(ds, 0, x, &err) == GR_OK, "%s", err.msg);
        int v = 10 * 1 + 2, bad = 0;    /* ant = index 1 in cls[], k = 2 (img7) */
        for (int y = 0; y < 3; y++)
            for (int xx = 0; xx < 4; xx++) {
                const float *q = x + (y * 4 + xx) * 3;
                bad += q[0] != v + xx || q[1] != v + 2 * y || q[2] != v + 3 * xx + y;
            }
        CHECK(bad == 0, "%d pixels differ", bad);
        /* caffe preprocessing on the same sample */
        gr_dataset *dc = gr_dataset_open(root, &(gr_dataset_opts){.h = 3, .w = 4, .preprocess = GR_PREP_CAFFE}, &err);
        if (dc && gr_dataset_get(dc, 0, x, &err) == GR_OK)
            CHECK(fabsf(x[0] - (v + 0 - 103.939f)) < 1e-4f && fabsf(x[2] - (v - 123.68f)) < 1e-4f, "caffe %g %g", x[0], x[2]);
        gr_dataset_free(dc);
    }
    gr_dataset_free(ds);
    /* CSV with a header, relative paths, class-name labels */
    snprintf(p, sizeof p, "%s/list.csv", check_tmp_dir());
    FILE *f = fopen(p, "w");
    if (f) {
        fprintf(f, "path,label\nfolder/zebra/img9.dat,zz\nfolder/ant/img8.dat, aa\r\n\nfolder/moose/img9.dat,mm\n");
        fclose(f);
    }
    ds = gr_dataset_open(p, &(gr_dataset_opts){.h = 8, .w = 8}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (ds) {
        CHECK(gr_dataset_count(ds) == 3 && gr_dataset_num_classes(ds) == 3, "csv count");
        CHECK(gr_dataset_label(ds, 0) == 2 && gr_dataset_label(ds, 1) == 0 && !strcmp(gr_dataset_class_name(ds, 1), "mm"),
              "csv labels");
        float x[8 * 8 * 3];
        CHECK(gr_dataset_get(ds, 1, x, &err) == GR_OK, "%s", err.msg);
    }
    gr_dataset_free(ds);
    snprintf(p, sizeof p, "%s/ints.csv", check_tmp_dir());
    if ((f = fopen(p, "w"))) { fprintf(f, "folder/zebra/img9.dat,4\nfolder/ant/img8.dat,1\n"); fclose(f); }
    ds = gr_dataset_open(p, &(gr_dataset_opts){.h = 8, .w = 8}, &err);
    CHECK(ds && gr_dataset_num_classes(ds) == 5 && gr_dataset_label(ds, 0) == 4, "int labels: %s", err.msg);
    gr_dataset_free(ds);
}

static void test_folder_bad(void) {
    char root[256], p[600];
    snprintf(root, sizeof root, "%s/badfolder", check_tmp_dir());
    make_folder(root);
    gr_dataset_opts o = {.h = 4, .w = 4};
    /* an empty class folder */
    snprintf(p, sizeof p, "%s/empty", root);
    mkdir(p, 0755);
    expect_open_fails(root, &o, "empty", "no JPEG/PNG/BMP");
    rmdir(p);
    /* an unreadable class folder (root reads anything: skipped then) */
    if (geteuid() != 0) {
        snprintf(p, sizeof p, "%s/ant", root);
        chmod(p, 0);
        expect_open_fails(root, &o, p, "cannot read directory");
        chmod(p, 0755);
    }
    expect_open_fails("/nonexistent/dir", &o, "/nonexistent/dir", NULL);
    /* CSV naming a missing file: names the CSV and the line */
    snprintf(p, sizeof p, "%s/missing.csv", check_tmp_dir());
    FILE *f = fopen(p, "w");
    if (f) { fprintf(f, "badfolder/ant/img8.dat,a\nbadfolder/ant/nope.png,a\n"); fclose(f); }
    char want[700];
    snprintf(want, sizeof want, "%s:2", p);
    expect_open_fails(p, &o, want, "nope.png");
    /* a corrupt PNG and a truncated JPEG among the images */
    size_t n;
    uint8_t *png = check_read_file("tests/fixtures/data/rgb8.png", &n);
    char bad1[600], bad2[600];
    snprintf(bad1, sizeof bad1, "%s/moose/corrupt.png", root);
    if (png) { png[n / 2] ^= 0x33; check_write_file(bad1, png, n); }
    free(png);
    uint8_t *jpg = check_read_file("tests/fixtures/data/rgb.jpg", &n);
    snprintf(bad2, sizeof bad2, "%s/zebra/cut.jpg", root);
    if (jpg) check_write_file(bad2, jpg, n * 2 / 3);
    free(jpg);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(root, &o, &err);
    CHECK(ds && gr_dataset_count(ds) == 11, "open (bad files are found when read): %s", err.msg);
    float x[4 * 4 * 3];
    int fails = 0;
    for (int i = 0; ds && i < gr_dataset_count(ds); i++)
        if (gr_dataset_get(ds, i, x, &err) != GR_OK) {
            fails++;
            CHECK(strstr(err.msg, gr_dataset_path(ds, i)) != NULL, "message lacks the file: %s", err.msg);
        }
    CHECK(fails == 2, "%d bad images found", fails);
    /* the batcher reports the error and shuts down cleanly */
    gr_batcher *b = ds ? gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){.batch = 4, .threads = 2}, &err) : NULL;
    CHECK(b != NULL, "%s", err.msg);
    float bx[4 * 4 * 4 * 3];
    int lab[4], got, nerr = 0;
    for (int k = 0; b && k < 6; k++)
        if (gr_batcher_next(b, bx, lab, &got, &err) != GR_OK) nerr++;
    CHECK(nerr > 0 && (strstr(err.msg, "corrupt.png") || strstr(err.msg, "cut.jpg")), "batcher error: %s", err.msg);
    gr_batcher_free(b);
    gr_dataset_free(ds);
    /* skip_bad: dropped at open and counted */
    o.skip_bad = true;
    ds = gr_dataset_open(root, &o, &err);
    CHECK(ds && gr_dataset_count(ds) == 9 && gr_dataset_skipped(ds) == 2, "skip_bad: %s", ds ? "counts" : err.msg);
    gr_dataset_free(ds);
}

/* All batches of `epochs` epochs (x, labels) concatenated. */
static float *run_batches(const gr_dataset *ds, const int *idx, int n, gr_batcher_opts o, int epochs, int **labels,
                          int *total) {
    gr_error err = {0};
    int h, w;
    if (!idx) n = gr_dataset_count(ds);
    gr_dataset_size(ds, &h, &w);
    size_t per = (size_t)h * w * 3;
    float *all = malloc(sizeof(float) * per * n * epochs);
    *labels = malloc(sizeof(int) * n * epochs);
    *total = 0;
    gr_batcher *b = gr_batcher_new(ds, idx, idx ? n : 0, &o, &err);
    CHECK(b != NULL, "%s", err.msg);
    if (!b) return all;
    float *x = malloc(sizeof(float) * per * o.batch);
    int *lab = malloc(sizeof(int) * o.batch);
    for (int e = 0; e < epochs; e++) {
        int got, seen = 0, nb = 0;
        for (;;) {
            if (gr_batcher_next(b, x, lab, &got, &err) != GR_OK) { CHECK(0, "%s", err.msg); break; }
            if (got == 0) break;
            CHECK(got == o.batch || seen + got == n, "short batch %d mid-epoch", got);
            memcpy(all + per * *total, x, sizeof(float) * per * got);
            memcpy(*labels + *total, lab, sizeof(int) * got);
            *total += got, seen += got, nb++;
        }
        CHECK(seen == n && nb == gr_batcher_num_batches(b), "epoch %d: %d samples in %d batches", e, seen, nb);
        CHECK(gr_batcher_epoch(b) == e, "epoch %d", gr_batcher_epoch(b));
    }
    free(x), free(lab);
    gr_batcher_free(b);
    return all;
}

static gr_dataset *gen_cifar(int n) {
    char p[512];
    snprintf(p, sizeof p, "%s/gen%d.bin", check_tmp_dir(), n);
    uint8_t *buf = malloc((size_t)3073 * n);
    make_records(buf, n, 1, 1, 10, 0);
    check_write_file(p, buf, (size_t)3073 * n);
    free(buf);
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){.preprocess = GR_PREP_NONE}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    return ds;
}

/* Random-resized-crop's resize, by hand: a 2x2 box of a 4x4 image brought
 * to 4x4 is PyTorch's interpolate(bilinear, align_corners=False) of the box
 * (source coordinate (y + 0.5) / 2 - 0.5, clamped in the box: weights
 * 0, 1/4, 3/4, 1 between the box's two rows and columns); a linear image
 * stays linear inside the box; the boxes drawn keep S..1 of the area and
 * the aspect ratio 3/4..4/3 (up to rounding), inside the image; the batcher
 * with rrc_scale gives images, deterministic across thread counts, and
 * flip_all mirrors every image.                                           */
static void test_random_resized_crop(void) {
    float in[4 * 4 * 3], out[4 * 4 * 3];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++) in[(y * 4 + x) * 3 + c] = (float)(10 * y + x + 100 * c);
    gr_resized_crop(in, 4, 4, 1, 2, 2, 2, out);   /* rows 1..2, columns 2..3 */
    const float wt[4] = {0, 0.25f, 0.75f, 1};      /* output k: in[lo] + wt[k] (in[hi] - in[lo]) */
    int bad = 0;
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++) {
                float want = 10 * (1 + wt[y]) + (2 + wt[x]) + 100 * c;
                bad += fabsf(out[(y * 4 + x) * 3 + c] - want) > 1e-5f;
            }
    CHECK(bad == 0, "resized crop 2x2 -> 4x4: %d values differ from the hand-computed ones", bad);
    /* the whole image: the identity */
    gr_resized_crop(in, 4, 4, 0, 0, 4, 4, out);
    CHECK(!memcmp(in, out, sizeof in), "a whole-image box is not the identity");
    /* a 3x2 box (rows 0..2, columns 1..2) to 4x4: the plane, clamped to the box */
    gr_resized_crop(in, 4, 4, 0, 1, 3, 2, out);
    bad = 0;
    for (int y = 0; y < 4; y++) {
        float sy = (y + 0.5f) * 0.75f - 0.5f;
        sy = sy < 0 ? 0 : sy > 2 ? 2 : sy;
        for (int x = 0; x < 4; x++) {
            float sx = (x + 0.5f) * 0.5f - 0.5f;
            sx = sx < 0 ? 0 : sx > 1 ? 1 : sx;
            bad += fabsf(out[(y * 4 + x) * 3] - (10 * sy + 1 + sx)) > 1e-5f;
        }
    }
    CHECK(bad == 0, "resized crop 3x2 -> 4x4 of a linear image: %d values off the plane", bad);
    gr_rng r;
    gr_rng_seed(&r, 9);
    int off = 0;
    double smallest = 1;
    for (int k = 0; k < 2000; k++) {
        int y0, x0, ch, cw;
        gr_rrc_box(96, 96, 0.35f, &r, &y0, &x0, &ch, &cw);
        double area = (double)ch * cw / (96.0 * 96.0), ratio = (double)cw / ch;
        smallest = area < smallest ? area : smallest;
        off += y0 < 0 || x0 < 0 || y0 + ch > 96 || x0 + cw > 96 || area < 0.33 || area > 1.0 ||
               ratio < 0.74 || ratio > 1.36;
    }
    CHECK(off == 0, "%d random-resized-crop boxes outside the image, the scale or the ratio", off);
    CHECK(smallest < 0.4, "boxes never went below %g of the area (S 0.35)", smallest);
    gr_dataset *ds = gen_cifar(20);
    if (!ds) return;
    gr_batcher_opts o = {.batch = 8, .shuffle = true, .seed = 5, .hflip = true, .rrc_scale = 0.35f};
    int *l0, *l1, t0, t1;
    float *a0 = run_batches(ds, NULL, 0, o, 2, &l0, &t0);
    o.threads = 2;
    float *a1 = run_batches(ds, NULL, 0, o, 2, &l1, &t1);
    size_t per = 32 * 32 * 3;
    CHECK(t0 == 40 && t1 == 40 && !memcmp(a0, a1, sizeof(float) * per * 40), "rrc: 0 vs 2 threads differ");
    free(a0), free(a1), free(l0), free(l1);
    /* flip_all: the mirror of the plain images */
    int *lp, *lf, tp, tf;
    float *p = run_batches(ds, NULL, 0, (gr_batcher_opts){.batch = 8}, 1, &lp, &tp);
    float *f = run_batches(ds, NULL, 0, (gr_batcher_opts){.batch = 8, .flip_all = true}, 1, &lf, &tf);
    bad = 0;
    for (int s = 0; s < 20 && tp == 20 && tf == 20; s++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                    bad += f[per * s + (y * 32 + x) * 3 + c] != p[per * s + (y * 32 + 31 - x) * 3 + c];
    CHECK(tp == 20 && tf == 20 && bad == 0, "flip_all: %d values are not the mirror's", bad);
    free(p), free(f), free(lp), free(lf);
    gr_error err = {0};
    gr_batcher *b = gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){.batch = 4, .rrc_scale = 1.5f}, &err);
    CHECK(!b && err.code == GR_ERR_ARG, "rrc_scale 1.5 accepted");
    gr_batcher_free(b);
    gr_dataset_free(ds);
}

static void test_batcher_determinism(void) {
    gr_dataset *ds = gen_cifar(37);
    if (!ds) return;
    gr_batcher_opts o = {.batch = 8, .shuffle = true, .seed = 123, .pad = 4, .hflip = true};
    int *l0, *l1, *l2, *l3, t0, t1, t2, t3;
    float *a0 = run_batches(ds, NULL, 0, o, 3, &l0, &t0);
    o.threads = 1;
    float *a1 = run_batches(ds, NULL, 0, o, 3, &l1, &t1);
    o.threads = 2, o.prefetch = 3;
    float *a2 = run_batches(ds, NULL, 0, o, 3, &l2, &t2);
    o.seed = 124;
    float *a3 = run_batches(ds, NULL, 0, o, 3, &l3, &t3);
    size_t per = 32 * 32 * 3;
    CHECK(t0 == 111 && t1 == 111 && t2 == 111, "totals %d %d %d", t0, t1, t2);
    if (t0 == 111 && t1 == 111 && t2 == 111 && t3 == 111) {
        CHECK(!memcmp(a0, a1, sizeof(float) * per * 111) && !memcmp(l0, l1, sizeof(int) * 111), "0 vs 1 thread");
        CHECK(!memcmp(a0, a2, sizeof(float) * per * 111) && !memcmp(l0, l2, sizeof(int) * 111), "0 vs 2 threads");
        CHECK(memcmp(a0, a3, sizeof(float) * per * 111) != 0, "another seed gives the same batches");
        CHECK(memcmp(l0, l0 + 37, sizeof(int) * 37) != 0, "epochs 0 and 1 in the same order");
        /* every sample of an epoch is a padded-crop (+flip) of one dataset image,
         * and each epoch covers every image once (found by brute force)     */
        float orig[3072];
        gr_error err = {0};
        for (int e = 0; e < 2; e++) {
            int used[37] = {0}, unexplained = 0;
            for (int s = 0; s < 37; s++) {
                const float *x = a0 + per * (e * 37 + s);
                int found = -1;
                for (int i = 0; i < 37 && found < 0; i++) {
                    if (used[i] || gr_dataset_label(ds, i) != l0[e * 37 + s]) continue;
                    gr_dataset_get(ds, i, orig, &err);
                    for (int oy = 0; oy <= 8 && found < 0; oy++)
                        for (int ox = 0; ox <= 8 && found < 0; ox++)
                            for (int fl = 0; fl < 2 && found < 0; fl++) {
                                int okk = 1;
                                for (int y = 0; y < 32 && okk; y++)
                                    for (int xx = 0; xx < 32 && okk; xx++) {
                                        int sy = y + oy - 4, sx = (fl ? 31 - xx : xx) + ox - 4;
                                        for (int c = 0; c < 3; c++) {
                                            float want = (sy < 0 || sy > 31 || sx < 0 || sx > 31) ? 0 : orig[(sy * 32 + sx) * 3 + c];
                                            if (x[(y * 32 + xx) * 3 + c] != want) okk = 0;
                                        }
                                    }
                                if (okk) found = i;
                            }
                }
                if (found >= 0) used[found] = 1; else unexplained++;
            }
            CHECK(unexplained == 0, "epoch %d: %d samples are not a pad-crop/flip of an unused image", e, unexplained);
        }
    }
    free(a0), free(a1), free(a2), free(a3), free(l0), free(l1), free(l2), free(l3);
    /* no shuffle, no augmentation, a subset: exactly the samples in order */
    int idx[5] = {30, 2, 7, 7, 11};
    int *lab, tot;
    float *a = run_batches(ds, idx, 5, (gr_batcher_opts){.batch = 2, .threads = 2}, 1, &lab, &tot);
    float img[3072];
    gr_error err = {0};
    for (int k = 0; k < 5 && tot == 5; k++) {
        gr_dataset_get(ds, idx[k], img, &err);
        CHECK(!memcmp(a + per * k, img, sizeof img) && lab[k] == gr_dataset_label(ds, idx[k]), "sample %d", k);
    }
    free(a), free(lab);
    /* freeing a batcher whose queue is full and never read does not hang */
    gr_batcher *b = gr_batcher_new(ds, NULL, 0, &(gr_batcher_opts){.batch = 4, .threads = 2, .prefetch = 2}, &err);
    usleep(20000);
    gr_batcher_free(b);
    gr_dataset_free(ds);
}

static void test_split(void) {
    /* classes with 100, 50 and 30 samples (CSV with int labels over one image) */
    char p[512];
    snprintf(p, sizeof p, "%s/split.csv", check_tmp_dir());
    FILE *f = fopen(p, "w");
    int counts[3] = {100, 50, 30};
    if (f) {
        for (int i = 0; i < 180; i++) fprintf(f, "folder/ant/img8.dat,%d\n", i < 100 ? 0 : i < 150 ? 1 : 2);
        fclose(f);
    }
    gr_error err = {0};
    gr_dataset *ds = gr_dataset_open(p, &(gr_dataset_opts){.h = 4, .w = 4}, &err);
    CHECK(ds != NULL, "%s", err.msg);
    if (!ds) return;
    int have[3] = {0};
    for (int i = 0; i < 180; i++) have[gr_dataset_label(ds, i)]++;
    CHECK(have[0] == 100 && have[1] == 50 && have[2] == 30, "class counts %d %d %d", have[0], have[1], have[2]);
    counts[0] = have[0], counts[1] = have[1], counts[2] = have[2];
    int *tr, *va, nt, nv, *tr2, *va2, nt2, nv2, *tr3, *va3, nt3, nv3;
    CHECK(gr_dataset_split(ds, 0.2f, 5, &tr, &nt, &va, &nv, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_dataset_split(ds, 0.2f, 5, &tr2, &nt2, &va2, &nv2, &err) == GR_OK, "%s", err.msg);
    CHECK(gr_dataset_split(ds, 0.2f, 6, &tr3, &nt3, &va3, &nv3, &err) == GR_OK, "%s", err.msg);
    CHECK(nv == 36 && nt == 144, "sizes %d %d", nt, nv);
    int vc[3] = {0}, seen[180] = {0};
    for (int i = 0; i < nv; i++) vc[gr_dataset_label(ds, va[i])]++, seen[va[i]]++;
    for (int i = 0; i < nt; i++) seen[tr[i]]++;
    for (int c = 0; c < 3; c++) CHECK(vc[c] == counts[c] / 5, "class %d: %d in validation", c, vc[c]);
    int cover = 1;
    for (int i = 0; i < 180; i++) cover &= seen[i] == 1;
    CHECK(cover, "train and validation do not partition the set");
    CHECK(nv == nv2 && !memcmp(va, va2, sizeof(int) * nv), "same seed, different split");
    CHECK(nv == nv3 && memcmp(va, va3, sizeof(int) * nv) != 0, "another seed, same split");
    for (int i = 1; i < nv; i++) CHECK(va[i] > va[i - 1], "not ascending");
    free(tr), free(va), free(tr2), free(va2), free(tr3), free(va3);
    CHECK(gr_dataset_split(ds, 1.5f, 5, &tr3, &nt3, &va3, &nv3, &err) == GR_ERR_ARG, "fraction 1.5 accepted");
    gr_dataset_free(ds);
}

int main(void) {
    if (check_tmp_open("dataset")) { printf("FAIL mkdtemp\n"); return 1; }
    RUN(test_cifar_lossless);
    RUN(test_cifar_dir);
    RUN(test_cifar_generated);
    RUN(test_cifar100);
    RUN(test_cifar_bad);
    RUN(test_cifar_fuzz);
    RUN(test_folder_and_csv);
    RUN(test_folder_bad);
    RUN(test_batcher_determinism);
    RUN(test_random_resized_crop);
    RUN(test_split);
    check_tmp_close();
    return check_summary();
}
