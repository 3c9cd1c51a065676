/* keras_h5.c — reading Keras HDF5 weight files through the libhdf5 C API
 * (layouts in keras_h5.h).  HDF5's own error printing is switched off while
 * we call it; its messages are folded into ours instead.                   */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "format/keras_h5.h"

typedef struct {
    hid_t file;
    char **paths;        /* dataset path from the root, per tensor idx */
    int n_paths, cap_paths;
    int gheap;           /* 0 unchecked, 1 checked ok, -1 corrupt */
} h5_impl;

/* ---- HDF5 error handling ------------------------------------------------ */

typedef struct { H5E_auto2_t fn; void *data; } h5_quiet;
static void quiet_begin(h5_quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
static void quiet_end(const h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->fn, q->data); }

typedef struct { char top[160], deep[160]; } h5_msgs;
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    h5_msgs *m = data;
    if (n == 0) snprintf(m->top, sizeof m->top, "%s", e->desc ? e->desc : "");
    snprintf(m->deep, sizeof m->deep, "%s", e->desc ? e->desc : "");
    return 0;
}
/* The current HDF5 error stack as "top message: deepest message". */
static void h5_why(char *buf, size_t n) {
    h5_msgs m = {"", ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &m);
    if (!m.top[0]) snprintf(buf, n, "HDF5 error");
    else if (!strcmp(m.top, m.deep)) snprintf(buf, n, "%s", m.top);
    else snprintf(buf, n, "%s: %s", m.top, m.deep);
}

/* ---- global heap check ----------------------------------------------------
 * Variable-length strings live in "global heap collections" (signature GCOL:
 * version 1, 3 reserved bytes, u64 collection size, then objects of u16
 * index, u16 refcount, 4 reserved, u64 size, data padded to 8; index 0 is the
 * free space).  HDF5 1.10 trusts those sizes: a corrupt collection makes
 * H5Aread crash or spin.  So before the first variable-length read, every
 * collection in the file is checked here.  0 ok, -1 corrupt.               */
static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int gcol_ok(FILE *f, uint64_t at, uint64_t fsize) {
    unsigned char h[16];
    if (fseeko(f, (off_t)at, SEEK_SET) || fread(h, 1, 16, f) != 16) return 0;
    uint64_t size = le64(h + 8);
    if (h[4] != 1 || size < 4096 || size > (1u << 26) || size > fsize - at) return 0;
    unsigned char *c = malloc(size);
    int ok = c && !fseeko(f, (off_t)at, SEEK_SET) && fread(c, 1, size, f) == size;
    /* the objects must tile the collection exactly; free space (index 0,
     * its size counting its own header) fills the rest                     */
    uint64_t pos = 16;
    while (ok && pos + 16 <= size) {
        unsigned idx = (unsigned)c[pos] | (unsigned)c[pos + 1] << 8;
        uint64_t osz = le64(c + pos + 8);
        if (idx == 0) { ok = osz == size - pos; pos = size; break; }
        if (osz > size) { ok = 0; break; }
        pos += 16 + (osz + 7) / 8 * 8;
    }
    if (ok && pos != size && size - pos >= 16) ok = 0;
    free(c);
    return ok;
}

static int gheap_check(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseeko(f, 0, SEEK_END);
    uint64_t fsize = (uint64_t)ftello(f);
    enum { CH = 1 << 20 };
    unsigned char *buf = malloc(CH + 3);
    int rc = buf ? 0 : -1;
    uint64_t base = 0;
    size_t keep = 0;   /* bytes carried over from the previous chunk */
    while (!rc) {
        if (fseeko(f, (off_t)(base + keep), SEEK_SET)) break;
        size_t n = fread(buf + keep, 1, CH, f);
        if (!n) break;
        size_t tot = keep + n;
        for (size_t i = 0; i + 4 <= tot && !rc; i++)
            if (buf[i] == 'G' && !memcmp(buf + i, "GCOL", 4)) {
                long save = ftell(f);
                if (!gcol_ok(f, base + i, fsize)) rc = -1;
                fseek(f, save, SEEK_SET);
            }
        keep = tot < 3 ? tot : 3;
        memmove(buf, buf + tot - keep, keep);
        base += tot - keep;
    }
    free(buf);
    fclose(f);
    return rc;
}

/* ---- small readers -------------------------------------------------------- */

static void free_strs(char **s, int n) {
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Reads a string (array) attribute, fixed- or variable-length, into a
 * malloc'd array of n strings.  An EMPTY attribute of any type (Keras writes
 * float64 [0] for layers without weights) gives n = 0.  -1 on failure.     */
static int read_str_attr(gr_wfile *wf, hid_t obj, const char *attr, char ***out, int *n, char *why,
                         size_t nw) {
    *out = NULL;
    *n = 0;
    hid_t a = H5Aopen(obj, attr, H5P_DEFAULT);
    if (a < 0) { snprintf(why, nw, "no '%s' attribute", attr); return -1; }
    hid_t sp = H5Aget_space(a), ft = H5Aget_type(a), mt = -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = -1;
    char **s = NULL;
    if (np < 0 || ft < 0) { snprintf(why, nw, "attribute '%s' is unreadable", attr); goto done; }
    if (np == 0) { rc = 0; goto done; }
    if (H5Tget_class(ft) != H5T_STRING) { snprintf(why, nw, "attribute '%s' is not a string list", attr); goto done; }
    if (np > 1000000) { snprintf(why, nw, "attribute '%s' has %lld entries", attr, (long long)np); goto done; }
    s = calloc((size_t)np, sizeof *s);
    if (!s) { snprintf(why, nw, "out of memory"); goto done; }
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (H5Tis_variable_str(ft) > 0) {
        h5_impl *im = wf->impl;
        if (!im->gheap) im->gheap = gheap_check(wf->path) ? -1 : 1;
        if (im->gheap < 0) { snprintf(why, nw, "corrupt global heap (variable-length strings)"); goto done; }
        H5Tset_size(mt, H5T_VARIABLE);
        char **v = calloc((size_t)np, sizeof *v);
        if (!v) { snprintf(why, nw, "out of memory"); goto done; }
        if (H5Aread(a, mt, v) < 0) { free(v); snprintf(why, nw, "attribute '%s' is unreadable", attr); goto done; }
        int ok = 1;
        for (hssize_t i = 0; i < np; i++) ok &= (s[i] = strdup(v[i] ? v[i] : "")) != NULL;
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
        free(v);
        if (!ok) { snprintf(why, nw, "out of memory"); goto done; }
    } else {
        size_t sz = H5Tget_size(ft);
        H5Tset_size(mt, sz);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        char *buf = calloc((size_t)np, sz + 1);
        if (!buf) { snprintf(why, nw, "out of memory"); goto done; }
        if (H5Aread(a, mt, buf) < 0) { free(buf); snprintf(why, nw, "attribute '%s' is unreadable", attr); goto done; }
        int ok = 1;
        for (hssize_t i = 0; i < np; i++) {
            const char *e = buf + (size_t)i * sz;
            size_t len = strnlen(e, sz);
            while (len && e[len - 1] == ' ') len--;     /* space-padded strings */
            ok &= (s[i] = strndup(e, len)) != NULL;
        }
        free(buf);
        if (!ok) { snprintf(why, nw, "out of memory"); goto done; }
    }
    *out = s;
    *n = (int)np;
    s = NULL;
    rc = 0;
done:
    if (s) free_strs(s, (int)np);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* Adds dataset `path` (from the root) as tensor `name` of layer l. */
static gr_status add_dataset(gr_wfile *wf, gr_wlayer *l, const char *path, const char *name,
                             gr_error *err) {
    h5_impl *im = wf->impl;
    char why[400];
    hid_t d = H5Dopen2(im->file, path, H5P_DEFAULT);
    if (d < 0) {
        h5_why(why, sizeof why);
        return gr_error_set(err, GR_ERR_FORMAT, "%s: layer '%s': weight '%s' cannot be opened (%s)",
                            wf->path, l->name, path, why);
    }
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    gr_status st = GR_OK;
    H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    if (nd < 0 || nd > GR_WF_MAX_DIMS || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: weight '%s' has an unreadable or too large shape",
                          wf->path, path);
        goto done;
    }
    double elems = 1;   /* corrupt dims must not overflow counts later */
    for (int i = 0; i < nd; i++) elems *= (double)dims[i];
    if (elems > 1e15) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: weight '%s' has an impossible shape", wf->path, path);
        goto done;
    }
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: weight '%s' is not numeric", wf->path, path);
        goto done;
    }
    if (im->n_paths == im->cap_paths) {
        int cap = im->cap_paths ? 2 * im->cap_paths : 64;
        char **p = gr_realloc(im->paths, (size_t)cap * sizeof *p, err);
        if (!p) { st = GR_ERR_NOMEM; goto done; }
        im->paths = p;
        im->cap_paths = cap;
    }
    gr_wtensor *t = gr_wlayer_add_tensor(l, name, err);
    char *pc = gr_strdup(path, err);
    if (!t || !pc) { free(pc); st = GR_ERR_NOMEM; goto done; }
    im->paths[im->n_paths] = pc;
    t->idx = im->n_paths++;
    t->ndim = nd;
    for (int i = 0; i < nd; i++) t->shape[i] = t->fshape[i] = (int64_t)dims[i];
    haddr_t off = H5Dget_offset(d);   /* contiguous data only; chunked has none */
    t->offset = off == HADDR_UNDEF ? -1 : (int64_t)off;
    snprintf(t->dtype, sizeof t->dtype, "%s%d", cls == H5T_FLOAT ? "F" : "I", (int)H5Tget_size(ty) * 8);
done:
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return st;
}

static gr_status h5_read(gr_wfile *wf, const gr_wtensor *t, float *out, int64_t count, gr_error *err) {
    h5_impl *im = wf->impl;
    h5_quiet q;
    quiet_begin(&q);
    char why[400];
    gr_status st = GR_OK;
    const char *path = im->paths[t->idx];
    hid_t d = H5Dopen2(im->file, path, H5P_DEFAULT);
    if (d < 0 || gr_wtensor_count(t) != count ||
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        h5_why(why, sizeof why);
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: weight '%s' cannot be read (%s)", wf->path, path, why);
    }
    if (d >= 0) H5Dclose(d);
    quiet_end(&q);
    return st;
}

static void h5_close(gr_wfile *wf) {
    h5_impl *im = wf->impl;
    if (!im) return;
    h5_quiet q;
    quiet_begin(&q);
    if (im->file >= 0) H5Fclose(im->file);
    quiet_end(&q);
    free_strs(im->paths, im->n_paths);
    free(im);
    wf->impl = NULL;
}

/* ---- legacy layout: layer_names / weight_names ------------------------------ */

static gr_status read_legacy(gr_wfile *wf, hid_t base, const char *prefix, gr_error *err) {
    char why[400], **lnames = NULL, *kver = NULL, *backend = NULL;
    int nl = 0;
    gr_status st = GR_OK;
    if (read_str_attr(wf, base, "layer_names", &lnames, &nl, why, sizeof why))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: Keras weights: %s", wf->path, why);
    bool nested = false;
    for (int i = 0; i < nl && !st; i++) {
        hid_t g = H5Gopen2(base, lnames[i], H5P_DEFAULT);
        if (g < 0) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: layer_names lists '%s' but there is no such group",
                              wf->path, lnames[i]);
            break;
        }
        char **wn = NULL;
        int nw = 0;
        if (read_str_attr(wf, g, "weight_names", &wn, &nw, why, sizeof why)) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: layer '%s': %s", wf->path, lnames[i], why);
        } else {
            gr_wlayer *l = gr_wfile_add_layer(wf, lnames[i], err);
            if (!l) st = GR_ERR_NOMEM;
            for (int k = 0; k < nw && !st; k++) {
                char path[1024];
                snprintf(path, sizeof path, "%s%s/%s", prefix, lnames[i], wn[k]);
                if (strchr(wn[k], '/')) nested = true;
                st = add_dataset(wf, l, path, wn[k], err);
            }
        }
        free_strs(wn, nw);
        H5Gclose(g);
    }
    /* describe what we found */
    char **v = NULL;
    int n = 0;
    if (!read_str_attr(wf, base, "keras_version", &v, &n, why, sizeof why) && n) kver = strdup(v[0]);
    free_strs(v, n);
    if (!read_str_attr(wf, base, "backend", &v, &n, why, sizeof why) && n) backend = strdup(v[0]);
    free_strs(v, n);
    snprintf(wf->format, sizeof wf->format, "Keras HDF5, %s layout (layer_names/weight_names%s%s%s%s%s)",
             nested ? "Keras 2 nested" : "Keras 1 flat", prefix[0] ? ", under model_weights/" : "",
             kver ? ", keras " : "", kver ? kver : "", backend ? ", backend " : "", backend ? backend : "");
    free(kver);
    free(backend);
    free_strs(lnames, nl);
    return st;
}

/* ---- Keras 3 layout: layers/<name>/vars/<i> --------------------------------- */

typedef struct { char **names; int n, cap; } name_list;
static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g; (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **p = realloc(l->names, (size_t)cap * sizeof *p);
        if (!p) return -1;
        l->names = p;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) return -1;
    l->n++;
    return 0;
}

/* Children of group `path`, in creation order when the file tracks it. */
static int list_group(hid_t file, const char *path, name_list *out) {
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0) return -1;
    hsize_t idx = 0;
    memset(out, 0, sizeof *out);
    herr_t r = H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, list_cb, out);
    if (r < 0) {
        free_strs(out->names, out->n);
        memset(out, 0, sizeof *out);
        idx = 0;
        r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, out);
    }
    H5Gclose(g);
    return r < 0 ? -1 : 0;
}

static bool is_group(hid_t file, const char *path) {
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return false;
    H5O_info_t info;
    return H5Oget_info_by_name(file, path, &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_GROUP;
}

static gr_status read_k3(gr_wfile *wf, const char *layers_path, int depth, gr_error *err) {
    h5_impl *im = wf->impl;
    name_list ln;
    if (depth > 8) return gr_error_set(err, GR_ERR_FORMAT, "%s: layers nested too deeply", wf->path);
    if (list_group(im->file, layers_path, &ln))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: group '%s' cannot be listed", wf->path, layers_path);
    gr_status st = GR_OK;
    for (int i = 0; i < ln.n && !st; i++) {
        char lp[1024], vp[1200], sub[1100];
        snprintf(lp, sizeof lp, "%s/%s", layers_path, ln.names[i]);
        snprintf(sub, sizeof sub, "%s/layers", lp);
        if (is_group(im->file, sub)) { st = read_k3(wf, sub, depth + 1, err); continue; }
        gr_wlayer *l = gr_wfile_add_layer(wf, ln.names[i], err);
        if (!l) { st = GR_ERR_NOMEM; break; }
        snprintf(sub, sizeof sub, "%s/vars", lp);
        if (!is_group(im->file, sub)) continue;       /* a layer without weights */
        for (int k = 0; !st; k++) {
            snprintf(vp, sizeof vp, "%s/%d", sub, k);
            if (H5Lexists(im->file, vp, H5P_DEFAULT) <= 0) break;
            char tn[32];
            snprintf(tn, sizeof tn, "vars/%d", k);
            st = add_dataset(wf, l, vp, tn, err);
        }
    }
    free_strs(ln.names, ln.n);
    return st;
}

/* ---- entry ---------------------------------------------------------------- */

gr_status gr_keras_h5_open(gr_wfile *wf, gr_error *err) {
    h5_impl *im = gr_calloc(1, sizeof *im, err);
    if (!im) return GR_ERR_NOMEM;
    im->file = -1;
    wf->impl = im;
    wf->read = h5_read;
    wf->close_impl = h5_close;
    h5_quiet q;
    quiet_begin(&q);
    char why[400];
    gr_status st = GR_OK;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    im->file = H5Fopen(wf->path, H5F_ACC_RDONLY, fapl);
    if (im->file < 0) h5_why(why, sizeof why);   /* before any other call clears the stack */
    H5Pclose(fapl);
    if (im->file < 0) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a readable HDF5 file (%s)", wf->path, why);
        goto out;
    }
    hid_t base = im->file;
    const char *prefix = "";
    if (is_group(im->file, "model_weights")) {
        base = H5Gopen2(im->file, "model_weights", H5P_DEFAULT);
        prefix = "model_weights/";
    }
    if (base >= 0 && H5Aexists(base, "layer_names") > 0) {
        st = read_legacy(wf, base, prefix, err);
    } else if (is_group(im->file, "layers")) {
        snprintf(wf->format, sizeof wf->format, "Keras 3 .weights.h5 layout (layers/<name>/vars/<i>)");
        st = read_k3(wf, "layers", 0, err);
    } else {
        st = gr_error_set(err, GR_ERR_FORMAT,
                          "%s: an HDF5 file but not Keras weights (no layer_names attribute, no layers/ group)",
                          wf->path);
    }
    if (base >= 0 && base != im->file) H5Gclose(base);
out:
    quiet_end(&q);
    return st;
}
