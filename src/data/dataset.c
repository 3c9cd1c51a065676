/* dataset.c — gr_dataset: open (CIFAR via cifar.c, image folders, CSV
 * lists), per-sample access (decode + resize + preprocess), the seeded
 * stratified split.  Batching with prefetch is in batcher.c.              */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/dataset.h"
#include "core/core.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
    char **v;
    int n, cap;
} strlist;

static gr_status sl_push(strlist *l, const char *s, gr_error *err) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        char **q = gr_realloc(l->v, sizeof(char *) * (size_t)nc, err);
        if (!q) return GR_ERR_NOMEM;
        l->v = q, l->cap = nc;
    }
    if (!(l->v[l->n] = gr_strdup(s, err))) return GR_ERR_NOMEM;
    l->n++;
    return GR_OK;
}
static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir (not starting with '.'); want_dirs selects directories or the rest. */
static gr_status list_dir(const char *dir, bool want_dirs, strlist *out, gr_error *err) {
    DIR *d = opendir(dir);
    if (!d) return gr_error_set(err, GR_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
    struct dirent *e;
    gr_status st = GR_OK;
    char p[4096];
    while (st == GR_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb)) continue;   /* dangling link */
        if ((bool)S_ISDIR(sb.st_mode) == want_dirs) st = sl_push(out, e->d_name, err);
    }
    closedir(d);
    if (st == GR_OK && out->n > 1) qsort(out->v, (size_t)out->n, sizeof(char *), cmp_str);
    return st;
}

/* Reads the first bytes of a file; the image kind they announce. */
static gr_image_kind sniff_file(const char *path) {
    uint8_t b[16];
    FILE *f = fopen(path, "rb");
    if (!f) return GR_IMG_NONE;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return gr_image_sniff(b, n);
}

static gr_status set_class_names(gr_dataset *ds, const strlist *names, gr_error *err) {
    ds->class_names = gr_calloc((size_t)names->n, sizeof(char *), err);
    if (!ds->class_names) return GR_ERR_NOMEM;
    ds->n_classes = names->n;
    for (int c = 0; c < names->n; c++)
        if (!(ds->class_names[c] = gr_strdup(names->v[c], err))) return GR_ERR_NOMEM;
    return GR_OK;
}

/* ---------------------------------------------------------------- folders */

static gr_status open_folder(gr_dataset *ds, const char *root, gr_error *err) {
    strlist classes = {0}, files = {0}, paths = {0};
    int *labels = NULL, nl = 0;
    gr_status st = list_dir(root, true, &classes, err);
    if (st == GR_OK && classes.n == 0)
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: no class subfolders (want one folder per class)", root);
    char p[4096];
    for (int c = 0; st == GR_OK && c < classes.n; c++) {
        snprintf(p, sizeof p, "%s/%s", root, classes.v[c]);
        sl_free(&files);
        if ((st = list_dir(p, false, &files, err)) != GR_OK) break;
        int found = 0;
        for (int f = 0; st == GR_OK && f < files.n; f++) {
            snprintf(p, sizeof p, "%s/%s/%s", root, classes.v[c], files.v[f]);
            if (sniff_file(p) == GR_IMG_NONE) { ds->ignored++; continue; }
            if ((st = sl_push(&paths, p, err)) != GR_OK) break;
            int *q = gr_realloc(labels, sizeof(int) * (size_t)paths.n, err);
            if (!q) { st = GR_ERR_NOMEM; break; }
            labels = q;
            labels[nl++] = c;
            found++;
        }
        if (st == GR_OK && !found)
            st = gr_error_set(err, GR_ERR_FORMAT, "%s/%s: class folder has no JPEG/PNG/BMP images", root,
                              classes.v[c]);
    }
    if (st == GR_OK) st = set_class_names(ds, &classes, err);
    sl_free(&classes), sl_free(&files);
    ds->paths = paths.v;        /* owned by ds from here (freed with it) */
    ds->n = paths.n;
    ds->labels = labels;
    return st;
}

/* ---------------------------------------------------------------- CSV */

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') s[n - 1] = 0, s++;
    return s;
}

/* Integer labels are class indices: a label makes that many classes, so
 * it is bounded (ImageNet-21k has 21841) before any name is made.         */
#define MAX_INT_CLASSES 100000

static bool is_int(const char *s, long *v) {
    char *e;
    errno = 0;
    long x = strtol(s, &e, 10);
    if (!*s || *e || errno || x < 0 || x > 1000000) return false;
    *v = x;
    return true;
}

static gr_status open_csv(gr_dataset *ds, const char *csv, gr_error *err) {
    FILE *f = fopen(csv, "r");
    if (!f) return gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", csv, strerror(errno));
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", csv);
    char *sl = strrchr(dir, '/');
    if (sl) sl[1] = 0; else dir[0] = 0;
    strlist paths = {0}, labs = {0};
    gr_status st = GR_OK;
    char line[4096], p[8192];
    int ln = 0;
    bool all_int = true;
    while (st == GR_OK && fgets(line, sizeof line, f)) {
        ln++;
        if (ln == 1 && !strncmp(line, "\xEF\xBB\xBF", 3))   /* a UTF-8 byte-order mark (Excel's CSV) */
            memmove(line, line + 3, strlen(line + 3) + 1);
        char *c = strrchr(line, ',');
        if (!c) {
            if (*trim(line)) st = gr_error_set(err, GR_ERR_FORMAT, "%s:%d: want \"path,label\"", csv, ln);
            continue;
        }
        *c = 0;
        char *path = trim(line), *lab = trim(c + 1);
        if (ln == 1 && (!strcasecmp(path, "path") || !strcasecmp(path, "file") ||
                        !strcasecmp(path, "filename") || !strcasecmp(path, "image")))
            continue;   /* header */
        if (!*path || !*lab) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s:%d: empty path or label", csv, ln);
            break;
        }
        snprintf(p, sizeof p, "%s%s", path[0] == '/' ? "" : dir, path);
        struct stat sb;
        if (stat(p, &sb) || !S_ISREG(sb.st_mode)) {
            st = gr_error_set(err, GR_ERR_IO, "%s:%d: %s: no such file", csv, ln, p);
            break;
        }
        long v;
        if (!is_int(lab, &v)) all_int = false;
        if ((st = sl_push(&paths, p, err)) == GR_OK) st = sl_push(&labs, lab, err);
    }
    fclose(f);
    if (st == GR_OK && paths.n == 0) st = gr_error_set(err, GR_ERR_FORMAT, "%s: no samples", csv);
    if (st == GR_OK) ds->labels = gr_malloc(sizeof(int) * (size_t)paths.n, err);
    if (st == GR_OK && !ds->labels) st = GR_ERR_NOMEM;
    strlist names = {0};
    if (st == GR_OK && all_int) {           /* integer labels: class indices */
        long mx = 0, v;
        for (int i = 0; i < labs.n; i++) is_int(labs.v[i], &v), ds->labels[i] = (int)v, mx = v > mx ? v : mx;
        if (mx >= MAX_INT_CLASSES)   /* mx + 1 class names would be made: bounded first */
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: label %ld: integer labels are class indices, "
                              "at most %d classes", csv, mx, MAX_INT_CLASSES);
        for (long c = 0; st == GR_OK && c <= mx; c++) {
            char nm[24];
            snprintf(nm, sizeof nm, "%ld", c);
            st = sl_push(&names, nm, err);
        }
    } else if (st == GR_OK) {               /* class names, sorted */
        for (int i = 0; st == GR_OK && i < labs.n; i++) st = sl_push(&names, labs.v[i], err);
        if (st == GR_OK) {
            qsort(names.v, (size_t)names.n, sizeof(char *), cmp_str);
            int u = 0;
            for (int i = 0; i < names.n; i++) {
                if (u && !strcmp(names.v[u - 1], names.v[i])) { free(names.v[i]); continue; }
                names.v[u++] = names.v[i];
            }
            names.n = u;
            for (int i = 0; i < labs.n; i++) {
                char **hit = bsearch(&labs.v[i], names.v, (size_t)u, sizeof(char *), cmp_str);
                ds->labels[i] = (int)(hit - names.v);
            }
        }
    }
    if (st == GR_OK) st = set_class_names(ds, &names, err);
    sl_free(&names), sl_free(&labs);
    ds->paths = paths.v;
    ds->n = paths.n;
    return st;
}

/* With skip_bad: decodes every file once and drops the ones that fail. */
static gr_status drop_bad(gr_dataset *ds, gr_error *err) {
    gr_sample_scratch s = {0};
    int k = 0;
    for (int i = 0; i < ds->n; i++) {
        size_t n = 0;
        gr_image img;
        gr_error e = {0};
        gr_status st = gr_file_read_all(ds->paths[i], &s.file, &n, &e);
        if (st == GR_OK) st = gr_image_decode_into(s.file.p, n, ds->paths[i], &s.pix, &img, &e);
        if (st == GR_ERR_NOMEM) {
            gr_sample_scratch_free(&s);
            return gr_error_set(err, st, "%s", e.msg);
        }
        if (st != GR_OK) {
            if (ds->skipped < 5) gr_warn("skipping a bad image: %s", e.msg);
            ds->skipped++;
            free(ds->paths[i]);
            continue;
        }
        ds->paths[k] = ds->paths[i];
        ds->labels[k++] = ds->labels[i];
    }
    gr_sample_scratch_free(&s);
    if (ds->skipped > 5) gr_warn("%s: skipped %d bad images in all", ds->source, ds->skipped);
    ds->n = k;
    if (k == 0) return gr_error_set(err, GR_ERR_FORMAT, "%s: no readable images", ds->source);
    return GR_OK;
}

/* ---------------------------------------------------------------- open/free */

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static const char *const format_names[] = {"auto", "cifar10", "cifar100", "folder", "csv"};
const char *gr_data_format_name(gr_data_format f) { return (unsigned)f < 5 ? format_names[f] : "?"; }
int gr_data_format_parse(const char *s, gr_data_format *out) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, format_names[i])) { *out = (gr_data_format)i; return 0; }
    return -1;
}

static const char *const split_names[] = {"train", "test"};
const char *gr_split_name(gr_split s) { return (unsigned)s < 2 ? split_names[s] : "?"; }
int gr_split_parse(const char *s, gr_split *out) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, split_names[i])) { *out = (gr_split)i; return 0; }
    return -1;
}

static const char *const label_names[] = {"fine", "coarse"};
const char *gr_label_kind_name(gr_label_kind k) { return (unsigned)k < 2 ? label_names[k] : "?"; }
int gr_label_kind_parse(const char *s, gr_label_kind *out) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, label_names[i])) { *out = (gr_label_kind)i; return 0; }
    return -1;
}

gr_dataset *gr_dataset_open(const char *path, const gr_dataset_opts *opts, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_dataset_opts o = opts ? *opts : (gr_dataset_opts){0};
    if (!path) { gr_error_set(err, GR_ERR_ARG, "dataset: no path"); return NULL; }
    if (o.h < 0 || o.w < 0 || o.h > 8192 || o.w > 8192) {
        gr_error_set(err, GR_ERR_ARG, "%s: bad sample size %dx%d", path, o.w, o.h);
        return NULL;
    }
    gr_dataset *ds = gr_calloc(1, sizeof *ds, err);
    if (!ds) return NULL;
    snprintf(ds->source, sizeof ds->source, "%s", path);
    ds->fit = o.fit;
    if (o.norm && gr_norm_check(o.norm, path, err) != GR_OK) {
        free(ds);
        return NULL;
    }
    ds->norm = o.norm ? gr_norm_resolved(o.norm) : gr_norm_preset(o.preprocess);
    ds->interp = o.interp;
    ds->crop = o.crop;
    gr_data_format fmt = o.format;
    struct stat sb;
    gr_status st = GR_OK;
    if (stat(path, &sb)) {
        st = gr_error_set(err, GR_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        bool cifar = fmt == GR_DATA_CIFAR10 || fmt == GR_DATA_CIFAR100;
        if (fmt == GR_DATA_AUTO) {
            if (!S_ISDIR(sb.st_mode) && ends_with(path, ".csv")) fmt = GR_DATA_CSV;
            else if (gr_cifar_detect(path)) cifar = true;      /* cifar.c decides 10 vs 100 */
            else if (S_ISDIR(sb.st_mode)) fmt = GR_DATA_FOLDER;
            else st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a CIFAR file, .csv list or image folder", path);
        }
        if (st == GR_OK && cifar) st = gr_cifar_load(ds, path, fmt, o.split, o.labels, NULL, err);
    }
    if (st == GR_OK && fmt == GR_DATA_FOLDER) st = open_folder(ds, path, err);
    if (st == GR_OK && fmt == GR_DATA_CSV) st = open_csv(ds, path, err);
    if (st == GR_OK && ds->paths && o.skip_bad) st = drop_bad(ds, err);
    if (st == GR_OK) {
        ds->h = o.h ? o.h : ds->ih ? ds->ih : o.default_h;
        ds->w = o.w ? o.w : ds->iw ? ds->iw : o.default_w;
        if (ds->h <= 0 || ds->w <= 0)
            st = gr_error_set(err, GR_ERR_ARG, "%s: image folders and lists need a sample size (h, w; "
                              "--input-size HxW on the command line)", path);
    }
    if (st != GR_OK) {
        gr_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void gr_dataset_free(gr_dataset *ds) {
    if (!ds) return;
    for (int c = 0; ds->class_names && c < ds->n_classes; c++) free(ds->class_names[c]);
    free(ds->class_names);
    for (int i = 0; ds->paths && i < ds->n; i++) free(ds->paths[i]);
    free(ds->paths);
    free(ds->labels);
    free(ds->pixels);
    free(ds);
}

int gr_dataset_count(const gr_dataset *ds) { return ds ? ds->n : 0; }
int gr_dataset_num_classes(const gr_dataset *ds) { return ds ? ds->n_classes : 0; }
const char *gr_dataset_class_name(const gr_dataset *ds, int c) {
    return ds && c >= 0 && c < ds->n_classes ? ds->class_names[c] : NULL;
}
int gr_dataset_label(const gr_dataset *ds, int i) { return ds && i >= 0 && i < ds->n ? ds->labels[i] : -1; }
void gr_dataset_size(const gr_dataset *ds, int *h, int *w) {
    if (h) *h = ds ? ds->h : 0;
    if (w) *w = ds ? ds->w : 0;
}
int gr_dataset_skipped(const gr_dataset *ds) { return ds ? ds->skipped : 0; }
int gr_dataset_ignored(const gr_dataset *ds) { return ds ? ds->ignored : 0; }
const char *gr_dataset_path(const gr_dataset *ds, int i) {
    return ds && ds->paths && i >= 0 && i < ds->n ? ds->paths[i] : NULL;
}

/* ---------------------------------------------------------------- samples */

void gr_sample_scratch_free(gr_sample_scratch *s) {
    free(s->file.p);
    free(s->pix.p);
    gr_resize_scratch_free(&s->rs);
    memset(s, 0, sizeof *s);
}

gr_status gr_dataset_load_resized(const gr_dataset *ds, int i, float *out, gr_sample_scratch *s,
                                  gr_error *err) {
    if (i < 0 || i >= ds->n)
        return gr_error_set(err, GR_ERR_ARG, "%s: sample %d out of range 0..%d", ds->source, i, ds->n - 1);
    gr_recipe rc = {.resize = ds->fit, .interp = ds->interp, .crop = ds->crop};
    if (ds->pixels)
        return gr_resize_rgb8(ds->pixels + (size_t)i * ds->ih * ds->iw * 3, ds->ih, ds->iw, ds->h, ds->w,
                              &rc, out, &s->rs, err);
    size_t n = 0;
    gr_image img;
    gr_status st = gr_file_read_all(ds->paths[i], &s->file, &n, err);
    if (st == GR_OK) st = gr_image_decode_into(s->file.p, n, ds->paths[i], &s->pix, &img, err);
    if (st == GR_OK) st = gr_resize_rgb8(img.data, img.h, img.w, ds->h, ds->w, &rc, out, &s->rs, err);
    return st;
}

gr_status gr_dataset_get(const gr_dataset *ds, int i, float *out, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!ds || !out) return gr_error_set(err, GR_ERR_ARG, "gr_dataset_get: NULL argument");
    gr_sample_scratch s = {0};
    gr_status st = gr_dataset_load_resized(ds, i, out, &s, err);
    gr_sample_scratch_free(&s);
    if (st == GR_OK) gr_norm_apply(&ds->norm, out, (size_t)ds->h * ds->w);
    return st;
}

/* ---------------------------------------------------------------- split */

gr_status gr_dataset_split(const gr_dataset *ds, float val, uint64_t seed, int **train, int *n_train,
                           int **valid, int *n_valid, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    *train = *valid = NULL;
    *n_train = *n_valid = 0;
    if (!(val >= 0 && val < 1))
        return gr_error_set(err, GR_ERR_ARG, "%s: validation fraction %g not in [0, 1)", ds->source, val);
    int n = ds->n, C = ds->n_classes;
    int *order = gr_malloc(sizeof(int) * (size_t)(n ? n : 1), err);
    int *start = gr_calloc((size_t)C + 1, sizeof(int), err);
    char *is_val = gr_calloc((size_t)(n ? n : 1), 1, err);
    if (!order || !start || !is_val) {
        free(order), free(start), free(is_val);
        return GR_ERR_NOMEM;
    }
    /* counting sort by class (stable: ascending index within a class) */
    for (int i = 0; i < n; i++) start[ds->labels[i] + 1]++;
    for (int c = 0; c < C; c++) start[c + 1] += start[c];
    int *fill = gr_malloc(sizeof(int) * ((size_t)C + 1), err);
    if (!fill) { free(order), free(start), free(is_val); return GR_ERR_NOMEM; }
    memcpy(fill, start, sizeof(int) * (size_t)C);
    for (int i = 0; i < n; i++) order[fill[ds->labels[i]]++] = i;
    free(fill);
    gr_rng r;
    gr_rng_seed(&r, seed ^ 0x5EED5017ULL);
    int nv = 0;
    for (int c = 0; c < C; c++) {
        int *v = order + start[c], m = start[c + 1] - start[c];
        for (int i = m - 1; i > 0; i--) {       /* Fisher-Yates */
            int j = (int)gr_rng_below(&r, (uint32_t)i + 1), t = v[i];
            v[i] = v[j], v[j] = t;
        }
        int k = (int)lround((double)val * m);
        for (int i = 0; i < k; i++) is_val[v[i]] = 1;
        nv += k;
    }
    free(order), free(start);
    *train = gr_malloc(sizeof(int) * (size_t)(n - nv ? n - nv : 1), err);
    *valid = gr_malloc(sizeof(int) * (size_t)(nv ? nv : 1), err);
    if (!*train || !*valid) {
        free(*train), free(*valid), free(is_val);
        *train = *valid = NULL;
        return GR_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        if (is_val[i]) (*valid)[(*n_valid)++] = i;
        else (*train)[(*n_train)++] = i;
    }
    free(is_val);
    return GR_OK;
}

/* ---------------------------------------------------------- image lists */

static gr_status walk_images(const char *dir, int depth, strlist *out, int *ignored, gr_error *err) {
    if (depth > 32) return gr_error_set(err, GR_ERR_FORMAT, "%s: folders nested too deep (a symlink loop?)", dir);
    strlist dirs = {0}, files = {0};
    gr_status st = list_dir(dir, true, &dirs, err);
    if (st == GR_OK) st = list_dir(dir, false, &files, err);
    char p[4096];
    for (int i = 0; st == GR_OK && i < files.n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files.v[i]);
        if (sniff_file(p) == GR_IMG_NONE) (*ignored)++;
        else st = sl_push(out, p, err);
    }
    for (int i = 0; st == GR_OK && i < dirs.n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, dirs.v[i]);
        st = walk_images(p, depth + 1, out, ignored, err);
    }
    sl_free(&dirs);
    sl_free(&files);
    return st;
}

gr_status gr_image_list(const char *dir, char ***paths, int *n, int *ignored, gr_error *err) {
    strlist l = {0};
    int ign = 0;
    size_t dl = strlen(dir);
    char root[4096];
    snprintf(root, sizeof root, "%.*s", (int)(dl > 1 && dir[dl - 1] == '/' ? dl - 1 : dl), dir);
    gr_status st = walk_images(root, 0, &l, &ign, err);
    if (st != GR_OK) { sl_free(&l); return st; }
    if (l.n > 1) qsort(l.v, (size_t)l.n, sizeof(char *), cmp_str);
    *paths = l.v;
    *n = l.n;
    if (ignored) *ignored = ign;
    return GR_OK;
}
