/* safetensors.c — the safetensors layout: a checked reader and an atomic
 * writer (see safetensors.h).  Little-endian host assumed (x86-64, arm64). */
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graph/model.h"
#include "core/outfile.h"
#include "format/safetensors.h"

#define ST_MAX_HEADER (100u << 20)   /* the reference implementation's limit */

static const struct { const char *name; int size; } dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1},
    {"F8_E4M3", 1}, {"F8_E5M2", 1}};

int gr_st_dtype_size(const char *dtype) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtype, dtypes[i].name)) return dtypes[i].size;
    return 0;
}

void gr_st_close(gr_st_file *sf) {
    if (!sf) return;
    if (sf->f) fclose(sf->f);
    for (int i = 0; i < sf->n; i++) free(sf->t[i].name);
    for (int i = 0; i < sf->n_meta; i++) { free(sf->meta_key[i]); free(sf->meta_val[i]); }
    free(sf->t);
    free(sf->meta_key);
    free(sf->meta_val);
    free(sf->path);
    free(sf);
}

int gr_st_find(const gr_st_file *sf, const char *name) {
    for (int i = 0; i < sf->n; i++)
        if (!strcmp(sf->t[i].name, name)) return i;
    return -1;
}

const char *gr_st_meta(const gr_st_file *sf, const char *key) {
    for (int i = 0; i < sf->n_meta; i++)
        if (!strcmp(sf->meta_key[i], key)) return sf->meta_val[i];
    return NULL;
}

int64_t gr_st_count(const gr_st_file *sf, int i) {
    int64_t n = 1;
    for (int d = 0; d < sf->t[i].ndim; d++) n *= sf->t[i].shape[d];
    return n;
}

/* Reads a non-negative JSON integer; -1 when v is not one. */
static int64_t json_uint(json_object *v) {
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < 0 || x == INT64_MAX) return -1;   /* INT64_MAX: json-c's clamp */
    return x;
}

/* Parses one tensor entry; 0 ok, else writes a reason into why. */
static int parse_entry(gr_st_tensor *t, json_object *o, uint64_t data_size, char *why, size_t nw) {
    json_object *dt, *sh, *off;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "dtype", &dt) ||
        !json_object_object_get_ex(o, "shape", &sh) ||
        !json_object_object_get_ex(o, "data_offsets", &off)) {
        snprintf(why, nw, "needs an object with dtype, shape and data_offsets");
        return -1;
    }
    if (!json_object_is_type(dt, json_type_string) || json_object_get_string_len(dt) >= (int)sizeof t->dtype) {
        snprintf(why, nw, "dtype is not a known type name");
        return -1;
    }
    snprintf(t->dtype, sizeof t->dtype, "%s", json_object_get_string(dt));
    int es = gr_st_dtype_size(t->dtype);
    if (!es) { snprintf(why, nw, "unknown dtype '%s'", t->dtype); return -1; }
    if (!json_object_is_type(sh, json_type_array) || json_object_array_length(sh) > GR_ST_MAX_DIMS) {
        snprintf(why, nw, "shape must be an array of at most %d sizes", GR_ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_object_array_length(sh);
    uint64_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
        int64_t v = json_uint(json_object_array_get_idx(sh, d));
        if (v < 0 || v > (int64_t)1 << 40) { snprintf(why, nw, "shape[%d] is not a size", d); return -1; }
        t->shape[d] = v;
        if (v && count > UINT64_MAX / (uint64_t)v / 8) { snprintf(why, nw, "shape is absurdly large"); return -1; }
        count *= (uint64_t)v;
    }
    if (!json_object_is_type(off, json_type_array) || json_object_array_length(off) != 2) {
        snprintf(why, nw, "data_offsets must be [begin, end]");
        return -1;
    }
    int64_t b = json_uint(json_object_array_get_idx(off, 0));
    int64_t e = json_uint(json_object_array_get_idx(off, 1));
    if (b < 0 || e < 0 || e < b) { snprintf(why, nw, "data_offsets are not a byte range"); return -1; }
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end > data_size) {
        snprintf(why, nw, "data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                 (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
        return -1;
    }
    if (t->end - t->begin != count * (uint64_t)es) {
        snprintf(why, nw, "data_offsets span %llu bytes but dtype %s and the shape need %llu",
                 (unsigned long long)(t->end - t->begin), t->dtype,
                 (unsigned long long)(count * (uint64_t)es));
        return -1;
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const gr_st_tensor *x = *(const gr_st_tensor *const *)a, *y = *(const gr_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Parses the JSON header text (n bytes) into sf; 0 ok. */
static gr_status parse_header(gr_st_file *sf, const char *text, size_t n, gr_error *err) {
    const char *path = sf->path;
    json_tokener *tok = json_tokener_new();
    if (!tok) return gr_error_set(err, GR_ERR_NOMEM, "%s: out of memory parsing the header", path);
    json_object *root = json_tokener_parse_ex(tok, text, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    gr_status st = GR_OK;
    if (!root || jerr != json_tokener_success) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: the header is not valid JSON (%s)",
                          path, json_tokener_error_desc(jerr));
        goto out;
    }
    for (size_t i = used; i < n; i++)
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r' && text[i] != 0) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: text after the JSON header", path);
            goto out;
        }
    if (!json_object_is_type(root, json_type_object)) {
        st = gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: the header is not a JSON object", path);
        goto out;
    }
    int cap = json_object_object_length(root);
    sf->t = gr_calloc((size_t)cap, sizeof *sf->t, err);
    if (!sf->t) { st = GR_ERR_NOMEM; goto out; }
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_object_is_type(val, json_type_object)) {
                st = gr_error_set(err, GR_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
                goto out;
            }
            int nm = json_object_object_length(val);
            sf->meta_key = gr_calloc((size_t)nm, sizeof(char *), err);
            sf->meta_val = gr_calloc((size_t)nm, sizeof(char *), err);
            if (!sf->meta_key || !sf->meta_val) { st = GR_ERR_NOMEM; goto out; }
            json_object_object_foreach(val, mk, mv) {
                if (!json_object_is_type(mv, json_type_string)) {
                    st = gr_error_set(err, GR_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string", path, mk);
                    goto out;
                }
                sf->meta_key[sf->n_meta] = gr_strdup(mk, err);
                sf->meta_val[sf->n_meta] = gr_strdup(json_object_get_string(mv), err);
                sf->n_meta++;
                if (!sf->meta_key[sf->n_meta - 1] || !sf->meta_val[sf->n_meta - 1]) { st = GR_ERR_NOMEM; goto out; }
            }
            continue;
        }
        gr_st_tensor *t = &sf->t[sf->n];
        char why[256];
        if (parse_entry(t, val, sf->data_size, why, sizeof why)) {
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: tensor '%s': %s", path, key, why);
            goto out;
        }
        t->name = gr_strdup(key, err);
        if (!t->name) { st = GR_ERR_NOMEM; goto out; }
        sf->n++;
    }
    /* no two tensors may share bytes */
    gr_st_tensor **order = gr_malloc((size_t)(sf->n ? sf->n : 1) * sizeof *order, err);
    if (!order) { st = GR_ERR_NOMEM; goto out; }
    for (int i = 0; i < sf->n; i++) order[i] = &sf->t[i];
    qsort(order, (size_t)sf->n, sizeof *order, cmp_begin);
    const gr_st_tensor *last = NULL;    /* the non-empty tensor reaching furthest so far */
    for (int i = 0; i < sf->n && !st; i++) {
        const gr_st_tensor *b = order[i];
        if (b->end == b->begin) continue;
        if (last && b->begin < last->end)
            st = gr_error_set(err, GR_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data",
                              path, last->name, b->name);
        if (!last || b->end > last->end) last = b;
    }
    free(order);
out:
    json_object_put(root);
    return st;
}

gr_st_file *gr_st_open(const char *path, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    gr_st_file *sf = gr_calloc(1, sizeof *sf, err);
    if (!sf) return NULL;
    char *text = NULL;
    sf->path = gr_strdup(path, err);
    if (!sf->path) goto fail;
    sf->f = fopen(path, "rb");
    if (!sf->f) {
        gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat stt;
    if (fstat(fileno(sf->f), &stt) || !S_ISREG(stt.st_mode)) {
        gr_error_set(err, GR_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)stt.st_size;
    unsigned char lenb[8];
    if (size < 8 || fread(lenb, 1, 8, sf->f) != 8) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: only %llu bytes", path,
                     (unsigned long long)size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenb[i];
    if (hlen > size - 8) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: header length %llu exceeds the file size %llu",
                     path, (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER || hlen < 2) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a safetensors file: header length %llu is implausible",
                     path, (unsigned long long)hlen);
        goto fail;
    }
    text = gr_malloc((size_t)hlen + 1, err);
    if (!text) goto fail;
    if (fread(text, 1, (size_t)hlen, sf->f) != hlen) {
        gr_error_set(err, GR_ERR_IO, "%s: read error in the header", path);
        goto fail;
    }
    text[hlen] = 0;
    sf->data_start = 8 + hlen;
    sf->data_size = size - sf->data_start;
    if (parse_header(sf, text, (size_t)hlen, err)) goto fail;
    free(text);
    return sf;
fail:
    free(text);
    gr_st_close(sf);
    return NULL;
}

gr_status gr_st_read_raw(gr_st_file *sf, int i, void *out, gr_error *err) {
    const gr_st_tensor *t = &sf->t[i];
    size_t n = (size_t)(t->end - t->begin);
    if (fseeko(sf->f, (off_t)(sf->data_start + t->begin), SEEK_SET) ||
        fread(out, 1, n, sf->f) != n)
        return gr_error_set(err, GR_ERR_IO, "%s: tensor '%s': read error (file changed or truncated?)",
                            sf->path, t->name);
    return GR_OK;
}

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
    if (e == 31) u = s | 0x7f800000u | m << 13;                /* inf / nan */
    else if (e) u = s | (e + 112) << 23 | m << 13;             /* normal */
    else if (!m) u = s;                                        /* zero */
    else {                                                     /* subnormal */
        e = 113;
        while (!(m & 1024)) { m <<= 1; e--; }
        u = s | e << 23 | (m & 1023) << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

gr_status gr_st_read_f32(gr_st_file *sf, int i, float *out, int64_t count, gr_error *err) {
    const gr_st_tensor *t = &sf->t[i];
    if (count != gr_st_count(sf, i))
        return gr_error_set(err, GR_ERR_SHAPE, "%s: tensor '%s' has %lld values, %lld wanted", sf->path,
                            t->name, (long long)gr_st_count(sf, i), (long long)count);
    if (!strcmp(t->dtype, "F32")) return gr_st_read_raw(sf, i, out, err);
    int es = gr_st_dtype_size(t->dtype);
    if (strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16") && strcmp(t->dtype, "F64"))
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (F32, F16, BF16, F64 are read)",
                            sf->path, t->name, t->dtype);
    unsigned char *raw = gr_malloc((size_t)count * (size_t)es, err);
    if (!raw) return GR_ERR_NOMEM;
    gr_status st = gr_st_read_raw(sf, i, raw, err);
    for (int64_t k = 0; !st && k < count; k++) {
        if (es == 8) { double d; memcpy(&d, raw + 8 * k, 8); out[k] = (float)d; continue; }
        uint16_t h;
        memcpy(&h, raw + 2 * k, 2);
        if (t->dtype[0] == 'B') { uint32_t u = (uint32_t)h << 16; memcpy(&out[k], &u, 4); }
        else out[k] = half_to_float(h);
    }
    free(raw);
    return st;
}

/* ------------------------------------------------------------------ writer */

/* Builds the JSON header for the entries; returns a malloc'd string padded
 * with spaces to a multiple of 8 bytes (length in *len), or NULL.           */
static char *build_header(const gr_st_entry *t, int n, const char *const *meta, int n_meta,
                          const char *path, size_t *len, gr_error *err) {
    json_object *root = json_object_new_object();
    char *out = NULL;
    if (!root) { gr_error_set(err, GR_ERR_NOMEM, "%s: out of memory", path); return NULL; }
    if (n_meta > 0) {
        json_object *m = json_object_new_object();
        json_object_object_add(root, "__metadata__", m);
        for (int k = 0; k < n_meta; k++)
            json_object_object_add(m, meta[2 * k], json_object_new_string(meta[2 * k + 1]));
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        int es = gr_st_dtype_size(t[i].dtype);
        if (!es || !t[i].name || !t[i].name[0] || t[i].ndim < 0 || t[i].ndim > GR_ST_MAX_DIMS ||
            !strcmp(t[i].name, "__metadata__") || json_object_object_get_ex(root, t[i].name, NULL)) {
            gr_error_set(err, GR_ERR_ARG, "%s: tensor %d ('%s'): bad name, dtype or rank, or a duplicate name",
                         path, i, t[i].name ? t[i].name : "");
            goto done;
        }
        json_object *e = json_object_new_object(), *sh = json_object_new_array(),
                    *of = json_object_new_array();
        uint64_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            json_object_array_add(sh, json_object_new_int64(t[i].shape[d]));
            count *= (uint64_t)t[i].shape[d];
        }
        json_object_array_add(of, json_object_new_int64((int64_t)off));
        off += count * (uint64_t)es;
        json_object_array_add(of, json_object_new_int64((int64_t)off));
        json_object_object_add(e, "dtype", json_object_new_string(t[i].dtype));
        json_object_object_add(e, "shape", sh);
        json_object_object_add(e, "data_offsets", of);
        json_object_object_add(root, t[i].name, e);
    }
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t sl = strlen(s), padded = (sl + 7) / 8 * 8;
    out = gr_malloc(padded + 1, err);
    if (!out) goto done;
    memcpy(out, s, sl);
    memset(out + sl, ' ', padded - sl);
    out[padded] = 0;
    *len = padded;
done:
    json_object_put(root);
    return out;
}

gr_status gr_st_write(const char *path, const gr_st_entry *t, int n, const char *const *meta,
                      int n_meta, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    size_t hlen = 0;
    char *header = build_header(t, n, meta, n_meta, path, &hlen, err);
    if (!header) return err->code;
    /* a temp file beside the (symlink-resolved) target, renamed over it */
    gr_outfile o;
    gr_status st = gr_outfile_open(&o, path, err);
    if (st != GR_OK) goto done;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    st = gr_outfile_write(&o, lenb, 8, err);
    if (!st) st = gr_outfile_write(&o, header, hlen, err);
    for (int i = 0; i < n && !st; i++) {
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) count *= (size_t)t[i].shape[d];
        st = gr_outfile_write(&o, t[i].data, count * (size_t)gr_st_dtype_size(t[i].dtype), err);
    }
    if (!st) st = gr_outfile_commit(&o, err);
    else gr_outfile_abort(&o);
done:
    free(header);
    return st;
}
