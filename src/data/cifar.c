/* cifar.c — CIFAR-10 / CIFAR-100 binary batches: a directory, one .bin, or
 * the official .tar.gz read directly with libarchive.  Held in memory as
 * uint8 HWC [n][32][32][3] RGB (60k images = 180 MB), never as floats.
 *
 * Record layouts (row-major 32x32 planes):
 *   CIFAR-10   1 label byte            + 1024 R + 1024 G + 1024 B   (3073 bytes)
 *   CIFAR-100  1 coarse + 1 fine byte  + 1024 R + 1024 G + 1024 B   (3074 bytes)
 * Files: CIFAR-10  data_batch_1..5.bin (train), test_batch.bin, batches.meta.txt;
 *        CIFAR-100 train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "data/dataset.h"
#include "core/core.h"

#define PIX 3072

static const char *const cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                              "dog", "frog", "horse", "ship", "truck"};

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}
static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}
static bool is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}
static bool is_file(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

/* One input file's bytes, by role. */
typedef struct {
    char name[2560];     /* for messages */
    uint8_t *p;
    size_t n;
} blob;

/* The files one split needs: batches[0..nb) in order, and the names file. */
typedef struct {
    blob batch[5];
    int nb;
    blob names;          /* p == NULL: none */
    int rec;             /* record size: 3073 or 3074 */
} cifar_src;

static void src_free(cifar_src *s) {
    for (int i = 0; i < 5; i++) free(s->batch[i].p);
    free(s->names.p);
}

static gr_status read_blob(const char *path, blob *b, gr_error *err) {
    gr_bytes buf = {0};
    snprintf(b->name, sizeof b->name, "%s", path);
    gr_status st = gr_file_read_all(path, &buf, &b->n, err);
    if (st != GR_OK) { free(buf.p); return st; }
    b->p = buf.p;
    return GR_OK;
}

/* Class names: the first k non-empty lines of the names file, or built-ins. */
static gr_status set_names(gr_dataset *ds, const blob *nb, int k, bool c10, gr_error *err) {
    ds->class_names = gr_calloc((size_t)k, sizeof(char *), err);
    if (!ds->class_names) return GR_ERR_NOMEM;
    ds->n_classes = k;
    size_t pos = 0;
    for (int c = 0; c < k; c++) {
        char tmp[128];
        if (nb->p) {
            while (pos < nb->n && (nb->p[pos] == '\n' || nb->p[pos] == '\r' || nb->p[pos] == ' ')) pos++;
            size_t e = pos;
            while (e < nb->n && nb->p[e] != '\n' && nb->p[e] != '\r') e++;
            if (e == pos)
                return gr_error_set(err, GR_ERR_FORMAT, "%s: %d class names, want %d", nb->name, c, k);
            size_t len = e - pos < sizeof tmp - 1 ? e - pos : sizeof tmp - 1;
            memcpy(tmp, nb->p + pos, len);
            tmp[len] = 0;
            pos = e;
        } else if (c10) {
            snprintf(tmp, sizeof tmp, "%s", cifar10_names[c]);
        } else {
            snprintf(tmp, sizeof tmp, "%d", c);
        }
        if (!(ds->class_names[c] = gr_strdup(tmp, err))) return GR_ERR_NOMEM;
    }
    return GR_OK;
}

/* Parses all batches into ds->pixels (HWC) and ds->labels (reading a
 * directory's batches here one at a time: peak = the set + one batch). */
static gr_status parse(gr_dataset *ds, cifar_src *s, gr_label_kind lk, gr_error *err) {
    size_t total = 0;
    for (int b = 0; b < s->nb; b++) {
        const blob *f = &s->batch[b];
        if (f->n == 0 || f->n % (size_t)s->rec)
            return gr_error_set(err, GR_ERR_FORMAT,
                                "%s: size %zu is not a multiple of the %d-byte CIFAR-%s record (truncated?)",
                                f->name, f->n, s->rec, s->rec == 3073 ? "10" : "100");
        total += f->n / (size_t)s->rec;
    }
    if (total > 0x7fffffff) return gr_error_set(err, GR_ERR_FORMAT, "%s: too many records", ds->source);
    ds->pixels = gr_malloc(total * PIX, err);
    ds->labels = gr_malloc(total * sizeof(int), err);
    if (!ds->pixels || !ds->labels) return GR_ERR_NOMEM;
    int c100 = s->rec == 3074, limit = c100 ? (lk == GR_LABELS_COARSE ? 20 : 100) : 10;
    size_t i = 0;
    for (int b = 0; b < s->nb; b++) {
        blob *f = &s->batch[b];
        if (!f->p) {   /* a directory's batch: read it now, drop it after */
            size_t want = f->n;
            char path[sizeof f->name];
            memcpy(path, f->name, sizeof path);
            gr_status st = read_blob(path, f, err);
            if (st != GR_OK) return st;
            if (f->n != want)
                return gr_error_set(err, GR_ERR_IO, "%s: size changed while reading", f->name);
        }
        size_t nr = f->n / (size_t)s->rec;
        for (size_t r = 0; r < nr; r++, i++) {
            const uint8_t *rec = f->p + r * (size_t)s->rec;
            int lab = c100 ? rec[lk == GR_LABELS_COARSE ? 0 : 1] : rec[0];
            if (lab >= limit)
                return gr_error_set(err, GR_ERR_FORMAT, "%s: record %zu: label %d out of range 0..%d",
                                    f->name, r, lab, limit - 1);
            ds->labels[i] = lab;
            const uint8_t *pl = rec + 1 + c100;
            uint8_t *dst = ds->pixels + i * PIX;
            for (int p = 0; p < 1024; p++) {
                dst[3 * p] = pl[p];
                dst[3 * p + 1] = pl[1024 + p];
                dst[3 * p + 2] = pl[2048 + p];
            }
        }
        free(f->p);
        f->p = NULL;
    }
    ds->n = (int)total;
    ds->ih = ds->iw = 32;
    return set_names(ds, &s->names, limit, !c100, err);
}

/* Which batch slot a file name fills for this split (-1: not needed), and
 * whether it is the names file.                                            */
static int role(const char *base, bool c100, gr_split split, gr_label_kind lk, bool *is_names) {
    *is_names = false;
    if (!c100) {
        if (!strcmp(base, "batches.meta.txt")) { *is_names = true; return -1; }
        if (split == GR_SPLIT_TEST) return strcmp(base, "test_batch.bin") ? -1 : 0;
        int k;
        char tail[8];
        if (sscanf(base, "data_batch_%d%7s", &k, tail) == 2 && !strcmp(tail, ".bin") && k >= 1 && k <= 5)
            return k - 1;
        return -1;
    }
    if (!strcmp(base, lk == GR_LABELS_COARSE ? "coarse_label_names.txt" : "fine_label_names.txt")) {
        *is_names = true;
        return -1;
    }
    return strcmp(base, split == GR_SPLIT_TEST ? "test.bin" : "train.bin") ? -1 : 0;
}

static gr_status load_dir(const char *dir, bool c100, gr_split split, gr_label_kind lk, cifar_src *s,
                          gr_error *err) {
    s->rec = c100 ? 3074 : 3073;
    s->nb = (c100 || split == GR_SPLIT_TEST) ? 1 : 5;
    char path[2304];
    for (int b = 0; b < s->nb; b++) {
        if (c100) snprintf(path, sizeof path, "%s/%s", dir, split == GR_SPLIT_TEST ? "test.bin" : "train.bin");
        else if (split == GR_SPLIT_TEST) snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        else snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b + 1);
        /* read lazily in parse() (one batch in memory at a time); size now */
        struct stat sb;
        if (stat(path, &sb)) return gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        snprintf(s->batch[b].name, sizeof s->batch[b].name, "%s", path);
        s->batch[b].n = (size_t)sb.st_size;
    }
    snprintf(path, sizeof path, "%s/%s", dir,
             !c100 ? "batches.meta.txt" : lk == GR_LABELS_COARSE ? "coarse_label_names.txt" : "fine_label_names.txt");
    if (is_file(path)) return read_blob(path, &s->names, err);
    return GR_OK;
}

static gr_status load_archive(const char *path, gr_data_format fmt, gr_split split, gr_label_kind lk,
                              cifar_src *s, bool *c100_out, gr_error *err) {
    struct archive *a = archive_read_new();
    if (!a) return gr_error_set(err, GR_ERR_NOMEM, "%s: cannot start libarchive", path);
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    gr_status st = GR_OK;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        st = gr_error_set(err, GR_ERR_IO, "%s: cannot open archive: %s", path, archive_error_string(a));
        archive_read_free(a);
        return st;
    }
    /* CIFAR-10 vs 100 from the first recognised entry unless fmt says */
    int c100 = fmt == GR_DATA_CIFAR100 ? 1 : fmt == GR_DATA_CIFAR10 ? 0 : -1;
    struct archive_entry *e;
    int r;
    uint64_t budget = gr_memory_budget(), kept = 0;   /* bytes of entries held */
    if (budget < (1 << 17)) budget = 1 << 17;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *nm = archive_entry_pathname(e);
        if (!nm || archive_entry_filetype(e) != AE_IFREG) continue;
        const char *base = base_name(nm);
        if (c100 < 0) {
            if (!strncmp(base, "data_batch_", 11) || !strcmp(base, "test_batch.bin") ||
                !strcmp(base, "batches.meta.txt")) c100 = 0;
            else if (!strcmp(base, "train.bin") || !strcmp(base, "test.bin") || ends_with(base, "label_names.txt"))
                c100 = 1;
            else continue;
        }
        bool is_names;
        int slot = role(base, c100, split, lk, &is_names);
        if (slot < 0 && !is_names) continue;
        blob *b = is_names ? &s->names : &s->batch[slot];
        if (b->p) continue;   /* first copy wins */
        snprintf(b->name, sizeof b->name, "%s:%s", path, nm);
        /* a decompression bomb is refused before it is held: the entries kept
         * must fit the memory budget together (declared size, then actual) */
        if (archive_entry_size_is_set(e) && (archive_entry_size(e) < 0 ||
                                             (uint64_t)archive_entry_size(e) > budget - kept)) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: the entry declares %lld bytes, more than the memory budget "
                              "(%llu MiB; GRAFT_MAX_MEMORY=<MiB> sets it)", b->name, (long long)archive_entry_size(e),
                              (unsigned long long)(budget >> 20));
            break;
        }
        gr_bytes buf = {0};
        size_t len = 0;
        for (;;) {
            if (len + 65536 > budget - kept) {
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: expands past the memory budget (%llu MiB; "
                                  "GRAFT_MAX_MEMORY=<MiB> sets it)", b->name, (unsigned long long)(budget >> 20));
                break;
            }
            if (len + 65536 > buf.cap) {
                size_t nc = buf.cap ? buf.cap * 2 : (archive_entry_size_is_set(e) ? (size_t)archive_entry_size(e) + 65536 : 1 << 20);
                if (nc > budget - kept) nc = budget - kept;
                uint8_t *q = realloc(buf.p, nc);
                if (!q) { st = gr_error_set(err, GR_ERR_NOMEM, "%s: out of memory", b->name); break; }
                buf.p = q, buf.cap = nc;
            }
            la_ssize_t got = archive_read_data(a, buf.p + len, buf.cap - len);
            if (got < 0) {
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt archive: %s", b->name, archive_error_string(a));
                break;
            }
            if (got == 0) break;
            len += (size_t)got;
        }
        b->p = buf.p;
        b->n = len;
        kept += len;
        if (st != GR_OK) break;
    }
    if (st == GR_OK && r != ARCHIVE_EOF)
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: corrupt archive: %s", path, archive_error_string(a));
    archive_read_free(a);
    if (st != GR_OK) return st;
    if (c100 < 0) return gr_error_set(err, GR_ERR_FORMAT, "%s: no CIFAR batch files in the archive", path);
    s->rec = c100 ? 3074 : 3073;
    s->nb = (c100 || split == GR_SPLIT_TEST) ? 1 : 5;
    for (int b = 0; b < s->nb; b++)
        if (!s->batch[b].p) {
            char want[32];
            if (c100) snprintf(want, sizeof want, "%s", split == GR_SPLIT_TEST ? "test.bin" : "train.bin");
            else if (split == GR_SPLIT_TEST) snprintf(want, sizeof want, "test_batch.bin");
            else snprintf(want, sizeof want, "data_batch_%d.bin", b + 1);
            return gr_error_set(err, GR_ERR_FORMAT, "%s: the archive has no %s", path, want);
        }
    *c100_out = c100;
    return GR_OK;
}

static bool dir_has(const char *dir, const char *name) {
    char p[2304];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return is_file(p);
}

/* A directory holding CIFAR-10 (1) or CIFAR-100 (2) files, else 0. */
static int dir_kind(const char *dir) {
    if (dir_has(dir, "data_batch_1.bin") || dir_has(dir, "test_batch.bin")) return 1;
    if (dir_has(dir, "train.bin") || dir_has(dir, "test.bin")) return 2;
    return 0;
}

bool gr_cifar_detect(const char *path) {
    if (is_dir(path)) {
        char sub[2304];
        snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", path);
        if (is_dir(sub)) return true;
        snprintf(sub, sizeof sub, "%s/cifar-100-binary", path);
        if (is_dir(sub)) return true;
        return dir_kind(path) != 0;
    }
    return ends_with(path, ".bin") || ends_with(path, ".tar.gz") || ends_with(path, ".tgz");
}

gr_status gr_cifar_load(gr_dataset *ds, const char *path, gr_data_format fmt, gr_split split,
                        gr_label_kind lk, gr_data_format *fmt_out, gr_error *err) {
    cifar_src s;
    memset(&s, 0, sizeof s);
    gr_status st = GR_OK;
    bool c100 = fmt == GR_DATA_CIFAR100;
    struct stat sb;
    if (stat(path, &sb)) {
        return gr_error_set(err, GR_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        char dir[2048];
        snprintf(dir, sizeof dir, "%s", path);
        int k = dir_kind(dir);
        if (!k) {
            snprintf(dir, sizeof dir, "%s/%s", path, c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
            if (fmt == GR_DATA_AUTO && !is_dir(dir)) snprintf(dir, sizeof dir, "%s/cifar-100-binary", path);
            k = dir_kind(dir);
        }
        if (!k)
            return gr_error_set(err, GR_ERR_FORMAT, "%s: no CIFAR batch files (data_batch_1.bin, test_batch.bin, "
                                "train.bin, test.bin) in this directory", path);
        if (fmt == GR_DATA_AUTO) c100 = k == 2;
        st = load_dir(dir, c100, split, lk, &s, err);
    } else if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz") || ends_with(path, ".tar")) {
        st = load_archive(path, fmt, split, lk, &s, &c100, err);
    } else {
        /* one .bin: the whole file, whatever the split */
        s.nb = 1;
        st = read_blob(path, &s.batch[0], err);
        if (st == GR_OK && fmt == GR_DATA_AUTO) {
            bool m10 = s.batch[0].n % 3073 == 0, m100 = s.batch[0].n % 3074 == 0;
            if (m10 == m100)
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: size %zu fits neither CIFAR-10 (3073-byte) nor "
                                  "CIFAR-100 (3074-byte) records (truncated?)", path, s.batch[0].n);
            c100 = m100;
        }
        s.rec = c100 ? 3074 : 3073;
        if (st == GR_OK) {
            char dir[2048], np[2304];
            snprintf(dir, sizeof dir, "%s", path);
            char *sl = strrchr(dir, '/');
            if (sl) *sl = 0; else snprintf(dir, sizeof dir, ".");
            snprintf(np, sizeof np, "%s/%s", dir,
                     !c100 ? "batches.meta.txt" : lk == GR_LABELS_COARSE ? "coarse_label_names.txt" : "fine_label_names.txt");
            if (is_file(np)) st = read_blob(np, &s.names, err);
        }
    }
    if (st == GR_OK) st = parse(ds, &s, lk, err);
    src_free(&s);
    if (st == GR_OK && fmt_out) *fmt_out = c100 ? GR_DATA_CIFAR100 : GR_DATA_CIFAR10;
    return st;
}
