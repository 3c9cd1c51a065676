/* onnx.c — reads an ONNX model file with the protobuf-c code generated from
 * Debian's onnx.proto, and its tensors as float32 / int64 (see onnx.h).   */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/core.h"
#include "format/onnx.h"

typedef Onnx__TensorProto tensor;

const char *gr_onnx_dtype_name(int dt, char *buf, size_t cap) {
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
                                        "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    if (dt >= 0 && dt < (int)(sizeof names / sizeof *names)) return names[dt];
    snprintf(buf, cap, "type %d", dt);
    return buf;
}

/* Bytes per value of a fixed-width dtype graft reads, 0 for the others. */
static int dtype_size(int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return 8;
    default: return 0;
    }
}

static const char *tname(const tensor *t) { return t->name && t->name[0] ? t->name : "(unnamed)"; }

/* "PATH: tensor 'NAME': ..." */
static gr_status terr(gr_error *err, const gr_onnx_file *f, const tensor *t, gr_status code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static gr_status terr(gr_error *err, const gr_onnx_file *f, const tensor *t, gr_status code, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gr_error_set(err, code, "%s: tensor '%.200s': %s", f->path, tname(t), what);
}

float gr_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 31) bits = sign | 0x7f800000u | (m << 13);          /* inf, nan */
    else if (e) bits = sign | ((e + 112) << 23) | (m << 13);      /* normal: bias 15 -> 127 */
    else if (!m) bits = sign;                                     /* zero */
    else {                                                        /* subnormal: normalize */
        int k = 0;
        while (!(m & 1024)) { m <<= 1; k++; }
        bits = sign | ((uint32_t)(113 - k) << 23) | ((m & 1023) << 13);
    }
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* ---------------------------------------------------------------- external data */

typedef struct {
    char path[PATH_MAX];
    uint64_t offset, length;     /* length: the whole rest of the file when absent */
} ext_ref;

static bool parse_u64(const char *s, uint64_t *v) {
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *v = x;
    return true;
}

/* Resolves t's external file (inside the model's folder) and its byte range. */
static gr_status ext_resolve(const gr_onnx_file *f, const tensor *t, ext_ref *r, gr_error *err) {
    const char *loc = NULL, *off = NULL, *len = NULL;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = t->external_data[k];
        if (!e->key) continue;
        if (!strcmp(e->key, "location")) loc = e->value;
        else if (!strcmp(e->key, "offset")) off = e->value;
        else if (!strcmp(e->key, "length")) len = e->value;
    }
    if (!loc || !*loc) return terr(err, f, t, GR_ERR_FORMAT, "external data without a location");
    if (loc[0] == '/')
        return terr(err, f, t, GR_ERR_FORMAT, "external data location '%.200s' is an absolute path (it must be "
                    "relative to the model's folder)", loc);
    char joined[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", f->dir, loc) >= sizeof joined)
        return terr(err, f, t, GR_ERR_FORMAT, "external data location is too long");
    if (!realpath(joined, r->path))
        return terr(err, f, t, GR_ERR_IO, "external data file '%.200s' (in %s): %s", loc, f->dir, strerror(errno));
    size_t dl = strlen(f->dir);
    if (strncmp(r->path, f->dir, dl) || (r->path[dl] != '/' && strcmp(f->dir, "/")))
        return terr(err, f, t, GR_ERR_FORMAT, "external data location '%.200s' leads outside the model's folder "
                    "%s (to %s)", loc, f->dir, r->path);
    struct stat st;
    if (stat(r->path, &st) || !S_ISREG(st.st_mode))
        return terr(err, f, t, GR_ERR_IO, "external data file %s is not a readable file", r->path);
    r->offset = 0;
    if (off && !parse_u64(off, &r->offset)) return terr(err, f, t, GR_ERR_FORMAT, "external data offset '%.40s'", off);
    if (r->offset > (uint64_t)st.st_size)
        return terr(err, f, t, GR_ERR_FORMAT, "external data offset %llu is past the end of %s (%lld bytes)",
                    (unsigned long long)r->offset, r->path, (long long)st.st_size);
    r->length = (uint64_t)st.st_size - r->offset;
    if (len) {
        uint64_t l;
        if (!parse_u64(len, &l)) return terr(err, f, t, GR_ERR_FORMAT, "external data length '%.40s'", len);
        if (l > r->length)
            return terr(err, f, t, GR_ERR_FORMAT, "external data (offset %llu, length %llu) runs past the end of %s "
                        "(%lld bytes: truncated?)", (unsigned long long)r->offset, (unsigned long long)l, r->path,
                        (long long)st.st_size);
        r->length = l;
    }
    return GR_OK;
}

static bool is_external(const tensor *t) {
    return t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

/* ---------------------------------------------------------------- counts */

/* Values held by t's typed field for its dtype, or -1 when t uses raw bytes. */
static int64_t typed_count(const tensor *t) {
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return t->n_float_data ? (int64_t)t->n_float_data : -1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return t->n_int64_data ? (int64_t)t->n_int64_data : -1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return t->n_double_data ? (int64_t)t->n_double_data : -1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return t->n_uint64_data ? (int64_t)t->n_uint64_data : -1;
    default: return t->n_int32_data ? (int64_t)t->n_int32_data : -1;
    }
}

gr_status gr_onnx_tensor_count(const gr_onnx_file *f, const tensor *t, int64_t *n, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    char nb[16];
    int es = dtype_size(t->data_type);
    if (!es)
        return terr(err, f, t, GR_ERR_UNSUPPORTED, "dtype %s is not supported (graft reads FLOAT and FLOAT16 weights, "
                    "integer and BOOL shape values)", gr_onnx_dtype_name(t->data_type, nb, sizeof nb));
    if (t->n_dims > GR_ONNX_MAX_RANK)
        return terr(err, f, t, GR_ERR_UNSUPPORTED, "rank %zu (at most %d)", t->n_dims, GR_ONNX_MAX_RANK);
    if (t->segment) return terr(err, f, t, GR_ERR_UNSUPPORTED, "segmented tensors are not supported");
    uint64_t c = 1;
    int64_t nz = 1;
    const uint64_t cap = (uint64_t)1 << 62;
    char dims[200] = "";
    for (size_t k = 0, o = 0; k < t->n_dims; k++) {
        if (o < sizeof dims - 24) o += (size_t)snprintf(dims + o, sizeof dims - o, "%s%lld", k ? "," : "", (long long)t->dims[k]);
        if (t->dims[k] < 0) return terr(err, f, t, GR_ERR_FORMAT, "negative dimension in [%s]", dims);
        nz = gr_onnx_smul(nz, t->dims[k] ? t->dims[k] : 1);
        if (nz > ((int64_t)1 << 40))   /* so no product of dims overflows later, even with a zero among them */
            return terr(err, f, t, GR_ERR_FORMAT, "dims [%s...] are absurd (over 2^40 values)", dims);
        if (t->dims[k] && c > cap / (uint64_t)t->dims[k]) c = cap;
        else c *= (uint64_t)t->dims[k];
    }
    uint64_t have;   /* values present */
    int64_t tc = typed_count(t);
    if (is_external(t)) {
        ext_ref r;
        if (ext_resolve(f, t, &r, err)) return err->code;
        have = r.length / (uint64_t)es;
        if (c < cap && r.length != c * (uint64_t)es)
            return terr(err, f, t, GR_ERR_FORMAT, "dims [%s] need %llu bytes, the external data holds %llu", dims,
                        (unsigned long long)(c * (uint64_t)es), (unsigned long long)r.length);
    } else if (t->has_raw_data && t->raw_data.len) {
        have = t->raw_data.len / (size_t)es;
        if (c < cap && t->raw_data.len != c * (uint64_t)es)
            return terr(err, f, t, GR_ERR_FORMAT, "dims [%s] need %llu bytes, raw_data holds %zu", dims,
                        (unsigned long long)(c * (uint64_t)es), t->raw_data.len);
    } else {
        have = tc < 0 ? 0 : (uint64_t)tc;
    }
    if (c != have)
        return terr(err, f, t, GR_ERR_FORMAT, "dims [%s] claim %llu%s values, the file holds %llu", dims,
                    (unsigned long long)c, c == cap ? "+" : "", (unsigned long long)have);
    if (c * sizeof(float) > gr_memory_budget())
        return terr(err, f, t, GR_ERR_SHAPE, "%llu values exceed the memory budget (GRAFT_MAX_MEMORY=<MiB> sets it)",
                    (unsigned long long)c);
    *n = (int64_t)c;
    return GR_OK;
}

/* ---------------------------------------------------------------- values */

/* t's bytes (raw or external): *owned is a buffer to free, or NULL. */
static const uint8_t *raw_bytes(const gr_onnx_file *f, const tensor *t, uint64_t want, uint8_t **owned,
                                gr_error *err) {
    *owned = NULL;
    if (!is_external(t)) {
        if (t->raw_data.len != want) { terr(err, f, t, GR_ERR_FORMAT, "raw_data size changed"); return NULL; }
        return t->raw_data.data;
    }
    ext_ref r;
    if (ext_resolve(f, t, &r, err)) return NULL;
    if (r.length != want) { terr(err, f, t, GR_ERR_FORMAT, "external data is %llu bytes, not %llu",
                                 (unsigned long long)r.length, (unsigned long long)want); return NULL; }
    uint8_t *buf = gr_malloc(want ? want : 1, err);
    if (!buf) return NULL;
    int fd = open(r.path, O_RDONLY | O_CLOEXEC);
    uint64_t got = 0;
    while (fd >= 0 && got < want) {
        ssize_t k = pread(fd, buf + got, want - got > (1u << 30) ? (1u << 30) : want - got, (off_t)(r.offset + got));
        if (k <= 0) break;
        got += (uint64_t)k;
    }
    if (fd >= 0) close(fd);
    if (got != want) {
        free(buf);
        terr(err, f, t, GR_ERR_IO, "cannot read %llu bytes of external data from %s", (unsigned long long)want, r.path);
        return NULL;
    }
    *owned = buf;
    return buf;
}

/* Reads value i of raw little-endian bytes p of dtype dt as double / int64. */
static double raw_f(const uint8_t *p, int dt, int64_t i) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return gr_half_to_float(v); }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    default: return 0;
    }
}
static int64_t raw_i(const uint8_t *p, int dt, int64_t i) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return p[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)p[i];
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: { int64_t v; memcpy(&v, p + 8 * i, 8); return v; }
    default: return gr_onnx_f2i(raw_f(p, dt, i));
    }
}

static bool is_float_type(int dt) {
    return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

/* Shared reader: floats (dst_f) or ints (dst_i). */
static gr_status read_values(const gr_onnx_file *f, const tensor *t, float *dst_f, int64_t *dst_i, int64_t n,
                             gr_error *err) {
    char nb[16];
    int dt = t->data_type, es = dtype_size(dt);
    if (!es) return terr(err, f, t, GR_ERR_UNSUPPORTED, "dtype %s is not supported",
                         gr_onnx_dtype_name(dt, nb, sizeof nb));
    if (dst_f && !is_float_type(dt) && dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
        dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
        return terr(err, f, t, GR_ERR_UNSUPPORTED, "dtype %s is not supported for weights (FLOAT, FLOAT16)",
                    gr_onnx_dtype_name(dt, nb, sizeof nb));
    bool raw = is_external(t) || (t->has_raw_data && t->raw_data.len);
    if (raw) {
        uint8_t *owned;
        const uint8_t *p = raw_bytes(f, t, (uint64_t)n * (uint64_t)es, &owned, err);
        if (!p && n) return err->code;
        for (int64_t i = 0; i < n; i++) {
            if (dst_f) dst_f[i] = is_float_type(dt) ? (float)raw_f(p, dt, i) : (float)raw_i(p, dt, i);
            else dst_i[i] = raw_i(p, dt, i);
        }
        free(owned);
        return GR_OK;
    }
    if (typed_count(t) != (n ? n : -1) && n) return terr(err, f, t, GR_ERR_FORMAT, "holds no data for %lld values",
                                                        (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double v;
        int64_t iv;
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: v = t->float_data[i]; iv = gr_onnx_f2i(v); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: v = t->double_data[i]; iv = gr_onnx_f2i(v); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: iv = t->int64_data[i]; v = (double)iv; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: iv = (int64_t)t->uint64_data[i]; v = (double)iv; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: v = gr_half_to_float((uint16_t)t->int32_data[i]); iv = gr_onnx_f2i(v); break;
        default: iv = t->int32_data[i]; v = (double)iv; break;
        }
        if (dst_f) dst_f[i] = (float)v;
        else dst_i[i] = iv;
    }
    return GR_OK;
}

gr_status gr_onnx_tensor_floats(const gr_onnx_file *f, const tensor *t, float *dst, int64_t n, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return read_values(f, t, dst, NULL, n, err);
}

gr_status gr_onnx_tensor_ints(const gr_onnx_file *f, const tensor *t, int64_t *dst, int64_t n, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return read_values(f, t, NULL, dst, n, err);
}

/* ---------------------------------------------------------------- the file */

void gr_onnx_close(gr_onnx_file *f) {
    if (!f) return;
    if (f->pb) onnx__model_proto__free_unpacked(f->pb, NULL);
    free(f->path);
    free(f->dir);
    free(f);
}

/* The whole file in memory (size checked against the budget first). */
static uint8_t *slurp(const char *path, uint64_t *size, gr_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
        fclose(fp);
        gr_error_set(err, GR_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    *size = (uint64_t)st.st_size;
    /* protobuf-c's unpacked copy takes about as much again as the file */
    if (*size > gr_memory_budget() / 3) {
        fclose(fp);
        gr_error_set(err, GR_ERR_SHAPE, "%s: %llu bytes is more than a third of the memory budget (%llu MiB; "
                     "GRAFT_MAX_MEMORY=<MiB> sets it)", path, (unsigned long long)*size,
                     (unsigned long long)(gr_memory_budget() >> 20));
        return NULL;
    }
    uint8_t *buf = gr_malloc(*size ? *size : 1, err);
    if (buf && fread(buf, 1, *size, fp) != *size) {
        free(buf);
        buf = NULL;
        gr_error_set(err, GR_ERR_IO, "%s: read error", path);
    }
    fclose(fp);
    return buf;
}

static gr_status check_model(gr_onnx_file *f, gr_error *err) {
    const Onnx__ModelProto *pb = f->pb;
    if (!pb->graph || (!pb->graph->n_node && !pb->graph->n_input))
        return gr_error_set(err, GR_ERR_FORMAT, "%s: not an ONNX model (no graph: is this an ONNX file?)", f->path);
    for (size_t k = 0; k < pb->graph->n_node; k++)
        if (!pb->graph->node[k]->op_type || !pb->graph->node[k]->op_type[0])
            return gr_error_set(err, GR_ERR_FORMAT, "%s: node %zu has no operator type", f->path, k);
    f->opset = -1;
    for (size_t k = 0; k < pb->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = pb->opset_import[k];
        if ((!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) && o->has_version) f->opset = o->version;
    }
    if (f->opset < 0)
        return gr_error_set(err, GR_ERR_FORMAT, "%s: no opset of the default ONNX domain is declared", f->path);
    if (f->opset < GR_ONNX_OPSET_MIN || f->opset > GR_ONNX_OPSET_MAX)
        return gr_error_set(err, GR_ERR_UNSUPPORTED, "%s: opset %lld is not supported (graft reads opsets %d to %d; "
                            "re-export with torch.onnx.export(..., opset_version=13) or convert it with "
                            "onnx.version_converter)", f->path, (long long)f->opset, GR_ONNX_OPSET_MIN,
                            GR_ONNX_OPSET_MAX);
    return GR_OK;
}

gr_onnx_file *gr_onnx_open(const char *path, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    if (!path) { gr_error_set(err, GR_ERR_ARG, "onnx: no path given"); return NULL; }
    gr_onnx_file *f = gr_calloc(1, sizeof *f, err);
    if (!f) return NULL;
    if (!(f->path = gr_strdup(path, err))) goto fail;
    uint8_t *buf = slurp(path, &f->file_size, err);
    if (!buf) goto fail;
    f->pb = onnx__model_proto__unpack(NULL, f->file_size, buf);
    free(buf);
    if (!f->pb) {
        gr_error_set(err, GR_ERR_FORMAT, "%s: not a valid ONNX protobuf (%llu bytes: truncated, corrupt or another "
                     "kind of file)", path, (unsigned long long)f->file_size);
        goto fail;
    }
    if (check_model(f, err)) goto fail;
    char tmp[PATH_MAX], dir[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    if (slash == tmp) tmp[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(tmp, sizeof tmp, ".");
    if (!realpath(tmp, dir)) { gr_error_set(err, GR_ERR_IO, "%s: cannot resolve its folder: %s", path, strerror(errno)); goto fail; }
    if (!(f->dir = gr_strdup(dir, err))) goto fail;
    return f;
fail:
    gr_onnx_close(f);
    return NULL;
}
