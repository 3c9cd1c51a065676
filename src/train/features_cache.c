/* features_cache.c — the features cache on disk: the frozen base's outputs
 * at the cut for a training set, kept under $GRAFT_HOME/cache/features so a
 * second run with the same base, weights, cut, input size, preprocessing and
 * samples skips the base entirely.
 *
 * Key: sha256 over the architecture of layers 0..cut (ops, shapes, options),
 * their parameters (bytes), the precision and reference flag, the dataset's
 * recipe (size, resize mode, preprocessing, and the prepared pixels of its
 * first sample, so any other way of preparing images gives another key), the
 * sample list with labels, and the samples' content: for files, every byte
 * of each file (path, size and time do not count: a file replaced by another
 * of the same size and time gives another key, a moved folder the same);
 * for in-memory sets (CIFAR), the prepared pixels.
 * File: "GRFC" magic, u32 version, u64 n, u64 F, the sha256 of the payload
 * (32 bytes), then the payload: n*F float16 (version 3, the default since
 * the cache holds float16: train/feats.h) or n*F float32 (version 2, the
 * float32 cache, GRAFT_FEATURES_PRECISION=fp32, and every entry graft
 * wrote before); written through gr_outfile (temp file, rename) and its
 * digest checked on every read: a damaged entry (truncated, a changed
 * byte, a header that does not match) is reported and recomputed, never
 * used.  A version 2 entry is read by a float16 run (converted), a version
 * 3 entry is a miss for a float32 run (its values were rounded), which
 * recomputes and replaces it.  The name "<key>.f32" stays for both.
 * GRAFT_FEATURES_CACHE=0 turns the disk cache off.
 * Size: GRAFT_CACHE_MAX (default 10G, 0 = no limit); a store removes the
 * least recently used entries first, "used" being the file's mtime, which
 * a write sets and every hit sets again (atime is not reliable: noatime,
 * relatime).  Two runs storing one entry at once each write their own
 * "<entry>.tmp.<pid>" and rename it into place: the last rename wins, and
 * either is complete.                                                      */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/dataset.h"
#include "core/outfile.h"
#include "exec/ctx.h"
#include "train/train.h"

#define FC_MAGIC "GRFC"
#define FC_VERSION_F32 2u
#define FC_VERSION_F16 3u

static int mkdirs(char *path) {   /* mkdir -p of the directories in path */
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

int gr_features_cache_dir(char *out, size_t cap) {
    const char *off = getenv("GRAFT_FEATURES_CACHE");
    if (off && !strcmp(off, "0")) return -1;
    return gr_features_cache_path(out, cap);
}

int gr_features_cache_path(char *out, size_t cap) {
    const char *home = getenv("GRAFT_HOME");
    if (home && *home) snprintf(out, cap, "%s/cache/features/", home);
    else if ((home = getenv("HOME")) && *home) snprintf(out, cap, "%s/.cache/graft/cache/features/", home);
    else return -1;
    return 0;
}

/* A normalization's part of the key: the preset's number as keys before free
 * values hashed it (so their caches stay valid), then a custom one's values. */
static void hash_norm_values(EVP_MD_CTX *c, const gr_norm *n) {
    float v[8] = {n->scale, n->mean[0], n->mean[1], n->mean[2], n->std[0], n->std[1], n->std[2], n->bgr ? 1.0f : 0.0f};
    EVP_DigestUpdate(c, v, sizeof v);
}
static void hash_norm(EVP_MD_CTX *c, const gr_norm *n) {
    gr_preprocess p = gr_norm_preset_of(n);
    EVP_DigestUpdate(c, &p, sizeof p);
    if (p == GR_PREP_CUSTOM) hash_norm_values(c, n);
}

gr_status gr_features_key(const gr_ctx *cx, int upto, const gr_dataset *ds, const int *idx, int n,
                          char hex[65], gr_error *err) {
    const gr_model *m = gr_ctx_model(cx);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return gr_error_set(err, GR_ERR_NOMEM, "features cache: cannot start a digest");
    }
    int in[3] = {m->in_h, m->in_w, m->in_c}, flags[3] = {upto, (int)cx->precision, gr_ctx_reference(cx)};
    EVP_DigestUpdate(c, FC_MAGIC, 4);
    EVP_DigestUpdate(c, in, sizeof in);
    EVP_DigestUpdate(c, flags, sizeof flags);
    hash_norm(c, &m->norm);
    /* how the samples were made: the dataset's resize recipe (--crop, ...) */
    float rcp[3] = {(float)ds->fit, (float)ds->interp, ds->crop};
    EVP_DigestUpdate(c, rcp, sizeof rcp);
    for (int i = 0; i <= upto; i++) {
        const gr_node *nd = &m->nodes[i];
        EVP_DigestUpdate(c, &nd->s, sizeof nd->s);
        EVP_DigestUpdate(c, nd->in, sizeof nd->in);
        for (int p = nd->p0; p < nd->p0 + nd->np; p++)
            EVP_DigestUpdate(c, m->w + m->params[p].offset, m->params[p].count * sizeof(float));
    }
    int h, w;
    gr_dataset_size(ds, &h, &w);
    int recipe[4] = {h, w, (int)ds->fit, (int)gr_norm_preset_of(&ds->norm)};
    EVP_DigestUpdate(c, recipe, sizeof recipe);
    if (recipe[3] == GR_PREP_CUSTOM) hash_norm_values(c, &ds->norm);
    size_t img = (size_t)h * w * 3;
    float *px = gr_malloc(img * sizeof(float), err);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = gr_malloc(CHUNK, err);
    gr_status st = px && buf ? GR_OK : GR_ERR_NOMEM;
    /* the prepared pixels of the first sample: the recipe as applied */
    if (st == GR_OK && n > 0) {
        st = gr_dataset_get(ds, idx ? idx[0] : 0, px, err);
        if (st == GR_OK) EVP_DigestUpdate(c, px, img * sizeof(float));
    }
    EVP_DigestUpdate(c, &n, sizeof n);
    for (int k = 0; k < n && st == GR_OK; k++) {
        int i = idx ? idx[k] : k, lab = gr_dataset_label(ds, i);
        EVP_DigestUpdate(c, &i, sizeof i);
        EVP_DigestUpdate(c, &lab, sizeof lab);
        const char *path = gr_dataset_path(ds, i);
        if (path) {   /* the file's bytes */
            FILE *f = fopen(path, "rb");
            if (!f) { st = gr_error_set(err, GR_ERR_IO, "%s: cannot read: %s", path, strerror(errno)); break; }
            size_t got, total = 0;
            while ((got = fread(buf, 1, CHUNK, f)) > 0) {
                EVP_DigestUpdate(c, buf, got);
                total += got;
            }
            if (ferror(f)) st = gr_error_set(err, GR_ERR_IO, "%s: read failed", path);
            fclose(f);
            EVP_DigestUpdate(c, &total, sizeof total);
        } else if ((st = gr_dataset_get(ds, i, px, err)) == GR_OK) {
            EVP_DigestUpdate(c, px, img * sizeof(float));
        }
    }
    free(buf);
    free(px);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(c, d, &dl);
    EVP_MD_CTX_free(c);
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    return st;
}

bool gr_features_key_mirror(char key[65]) {
    unsigned char in[64 + 6], d[32];
    unsigned int dl = 0;
    memcpy(in, "mirror", 6);
    memcpy(in + 6, key, 64);
    if (EVP_Digest(in, sizeof in, d, &dl, EVP_sha256(), NULL) != 1 || dl != 32) return false;
    for (int k = 0; k < 32; k++) snprintf(key + 2 * k, 3, "%02x", d[k]);
    return true;
}

/* sha256 of bytes into d[32]; false when OpenSSL fails. */
static bool payload_digest(const void *p, size_t bytes, unsigned char d[32]) {
    unsigned int dl = 0;
    return EVP_Digest(p, bytes, d, &dl, EVP_sha256(), NULL) == 1 && dl == 32;
}

/* A version 2 (float32) payload of count floats into a float16 cache at
 * element offset: read a chunk at a time, digest updated as it goes. */
static gr_features_hit read_f32_into_half(FILE *f, gr_feats *feat, size_t row0, size_t n,
                                          const unsigned char want[32]) {
    enum { CHUNK = 1 << 14 };
    float *buf = malloc(CHUNK * sizeof(float));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    gr_features_hit r = GR_FEATURES_DAMAGED;
    if (!buf || !c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        r = GR_FEATURES_NOMEM;
        goto done;
    }
    size_t rows_per = CHUNK / feat->F ? CHUNK / feat->F : 0;
    if (!rows_per) {   /* rows longer than a chunk: one row at a time */
        free(buf);
        if (!(buf = malloc(feat->F * sizeof(float)))) { r = GR_FEATURES_NOMEM; goto done; }
        rows_per = 1;
    }
    for (size_t i = 0; i < n; i += rows_per) {
        size_t k = n - i < rows_per ? n - i : rows_per;
        if (fread(buf, sizeof(float), k * feat->F, f) != k * feat->F) goto done;
        EVP_DigestUpdate(c, buf, k * feat->F * sizeof(float));
        gr_error e;
        if (gr_feats_put(feat, row0 + i, k, buf, &e) != GR_OK) { r = GR_FEATURES_NOMEM; goto done; }
    }
    unsigned char got[32];
    unsigned int dl = 0;
    if (fgetc(f) == EOF && EVP_DigestFinal_ex(c, got, &dl) == 1 && dl == 32 && !memcmp(want, got, 32))
        r = GR_FEATURES_HIT_F32;
done:
    EVP_MD_CTX_free(c);
    free(buf);
    return r;
}

gr_features_hit gr_features_load(const char key[65], size_t n, size_t F, gr_feats *feat, size_t row0,
                                 char *path_out, size_t cap) {
    char path[4096];
    if (gr_features_cache_dir(path, sizeof path)) return GR_FEATURES_MISS;
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s.f32", key);
    snprintf(path_out, cap, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return GR_FEATURES_MISS;
    char magic[4];
    uint32_t ver = 0;
    uint64_t hn, hf;
    unsigned char want[32], got[32];
    bool head = fread(magic, 1, 4, f) == 4 && !memcmp(magic, FC_MAGIC, 4) && fread(&ver, 4, 1, f) == 1 &&
                (ver == FC_VERSION_F32 || ver == FC_VERSION_F16) && fread(&hn, 8, 1, f) == 1 &&
                fread(&hf, 8, 1, f) == 1 && hn == n && hf == F && feat->F == F && fread(want, 1, 32, f) == 32;
    gr_features_hit r = GR_FEATURES_DAMAGED;
    if (head && ver == FC_VERSION_F16 && !feat->half) {
        r = GR_FEATURES_MISS;   /* rounded values: a float32 run recomputes (and replaces) them */
    } else if (head && ver == FC_VERSION_F32 && feat->half) {
        r = read_f32_into_half(f, feat, row0, n, want);
    } else if (head) {
        size_t es = feat->half ? sizeof(uint16_t) : sizeof(float);
        char *dst = (char *)feat->p + row0 * F * es;
        if (fread(dst, es, n * F, f) == n * F && fgetc(f) == EOF && payload_digest(dst, n * F * es, got) &&
            !memcmp(want, got, 32))
            r = GR_FEATURES_HIT;
    }
    if (r == GR_FEATURES_HIT || r == GR_FEATURES_HIT_F32) {
        /* a hit is a use: the LRU order reads mtime (a read-only cache just keeps its order) */
        const struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
        (void)futimens(fileno(f), now);
    }
    fclose(f);
    return r;
}

#define FC_HEADER (4 + 4 + 8 + 8 + 32)

void gr_features_store(const char key[65], size_t n, size_t F, const gr_feats *feat, size_t row0) {
    char path[4096], dir[4096], name[96];
    uint64_t limit;
    gr_error le;
    if (gr_features_cache_dir(dir, sizeof dir) || gr_features_cache_limit(&limit, &le) != GR_OK) return;
    size_t es = feat->half ? sizeof(uint16_t) : sizeof(float);
    const void *payload = (const char *)feat->p + row0 * F * es;
    uint64_t size = FC_HEADER + (uint64_t)n * F * es;
    char a[32], b[32];
    if (limit && size > limit) {
        gr_size_text(size, a, sizeof a);
        gr_size_text(limit, b, sizeof b);
        gr_log(GR_LOG_NOTE, "features cache: these features (%s) are larger than its limit (GRAFT_CACHE_MAX, %s): "
               "not stored", a, b);
        return;
    }
    snprintf(path, sizeof path, "%s", dir);
    if (mkdirs(path)) return;
    snprintf(name, sizeof name, "%s.f32", key);
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s", name);
    int removed = 0;
    uint64_t freed = 0;
    /* room first, so the directory never holds more than the limit for long */
    if (limit) gr_features_cache_evict(dir, limit - size, false, name, &removed, &freed, &le);
    uint32_t ver = feat->half ? FC_VERSION_F16 : FC_VERSION_F32;
    uint64_t hn = n, hf = F;
    unsigned char d[32];
    gr_outfile o;
    gr_error e;
    if (!payload_digest(payload, n * F * es, d) || gr_outfile_open(&o, path, &e) != GR_OK) return;
    bool ok = gr_outfile_write(&o, FC_MAGIC, 4, &e) == GR_OK && gr_outfile_write(&o, &ver, 4, &e) == GR_OK &&
              gr_outfile_write(&o, &hn, 8, &e) == GR_OK && gr_outfile_write(&o, &hf, 8, &e) == GR_OK &&
              gr_outfile_write(&o, d, 32, &e) == GR_OK &&
              gr_outfile_write(&o, payload, n * F * es, &e) == GR_OK;
    if (ok) ok = gr_outfile_commit(&o, &e) == GR_OK;   /* a full disk just means no cache */
    else gr_outfile_abort(&o);
    /* again with this entry in place: another run may have stored one meanwhile */
    int r2 = 0;
    uint64_t f2 = 0;
    if (ok && limit) gr_features_cache_evict(dir, limit, false, name, &r2, &f2, &le);
    if (removed + r2 > 0) {
        gr_size_text(freed + f2, a, sizeof a);
        gr_size_text(limit, b, sizeof b);
        gr_log(GR_LOG_NOTE, "features cache: removed %d least recently used entr%s (%s) to stay under its limit "
               "(GRAFT_CACHE_MAX, %s)", removed + r2, removed + r2 == 1 ? "y" : "ies", a, b);
    }
}

/* ---- the size limit, listing, eviction ---- */

gr_status gr_size_parse(const char *s, const char *what, uint64_t *out, gr_error *err) {
    const char *p = s ? s : "";
    uint64_t whole = 0, frac = 0, frac_div = 1;
    bool digits = false;
    while (isdigit((unsigned char)*p)) {
        if (whole > (UINT64_MAX - 9) / 10) goto bad_big;
        whole = whole * 10 + (uint64_t)(*p++ - '0');
        digits = true;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            /* six decimals at most: frac < 2^20, so frac << 40 cannot overflow */
            if (frac_div < 1000000ull) { frac = frac * 10 + (uint64_t)(*p - '0'); frac_div *= 10; }
            p++;
            digits = true;
        }
    }
    if (!digits) goto bad;
    int shift = 0;
    switch (toupper((unsigned char)*p)) {
    case 'K': shift = 10; p++; break;
    case 'M': shift = 20; p++; break;
    case 'G': shift = 30; p++; break;
    case 'T': shift = 40; p++; break;
    default: break;
    }
    if (shift && (p[0] == 'i' || p[0] == 'I') && (p[1] == 'B' || p[1] == 'b')) p += 2;
    else if (*p == 'B' || *p == 'b') p++;
    if (*p) goto bad;
    if (frac && !shift) goto bad;   /* a fraction of a byte */
    if (whole > (UINT64_MAX >> 1) >> shift) goto bad_big;
    *out = (whole << shift) + (frac << shift) / frac_div;
    return GR_OK;
bad:
    return gr_error_set(err, GR_ERR_ARG, "%s='%s' is not a size: give bytes, or a number with K, M, G or T "
                        "(powers of 1024), e.g. 10G or 500M; 0 = no limit", what, s ? s : "");
bad_big:
    return gr_error_set(err, GR_ERR_ARG, "%s='%s' is too large a size", what, s);
}

gr_status gr_features_cache_limit(uint64_t *max, gr_error *err) {
    const char *v = getenv("GRAFT_CACHE_MAX");
    if (!v) {
        *max = GR_FEATURES_CACHE_MAX_DEFAULT;
        return GR_OK;
    }
    return gr_size_parse(v, "GRAFT_CACHE_MAX", max, err);
}

void gr_size_text(uint64_t bytes, char *out, size_t cap) {
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(out, cap, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) { v /= 1024; u++; }
    snprintf(out, cap, "%.1f %s", v, unit[u]);
}

/* "<64 hex>.f32" -> entry; "<64 hex>.f32.tmp.<pid>" -> temp (pid in *pid); else -1. */
static int classify(const char *name, long *pid) {
    for (int k = 0; k < 64; k++)
        if (!isxdigit((unsigned char)name[k]) || isupper((unsigned char)name[k])) return -1;
    if (strncmp(name + 64, ".f32", 4)) return -1;
    if (!name[68]) return GR_FC_ENTRY;
    if (strncmp(name + 68, ".tmp.", 5) || !isdigit((unsigned char)name[73])) return -1;
    char *end;
    *pid = strtol(name + 73, &end, 10);
    return *end ? -1 : GR_FC_TEMP;
}

static void read_header(int dfd, const char *name, uint64_t *n, uint64_t *F) {
    *n = *F = 0;
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    unsigned char h[24];
    uint32_t ver;
    if (read(fd, h, sizeof h) == (ssize_t)sizeof h && !memcmp(h, FC_MAGIC, 4) &&
        (memcpy(&ver, h + 4, 4), ver == FC_VERSION_F32 || ver == FC_VERSION_F16)) {
        memcpy(n, h + 8, 8);
        memcpy(F, h + 16, 8);
    }
    close(fd);
}

static int by_use_desc(const void *pa, const void *pb) {
    const gr_fc_file *a = pa, *b = pb;
    if (a->used_s != b->used_s) return a->used_s > b->used_s ? -1 : 1;
    if (a->used_ns != b->used_ns) return a->used_ns > b->used_ns ? -1 : 1;
    return strcmp(a->name, b->name);
}

gr_status gr_features_cache_scan(const char *dir, gr_fc_file **files, int *n, gr_error *err) {
    *files = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return GR_OK;
        return gr_error_set(err, GR_ERR_IO, "%s: cannot list the features cache: %s", dir, strerror(errno));
    }
    int cap = 0;
    gr_fc_file *v = NULL;
    struct dirent *e;
    time_t now = time(NULL);
    gr_status st = GR_OK;
    while ((e = readdir(d))) {
        long pid = 0;
        int kind = strlen(e->d_name) < 68 ? -1 : classify(e->d_name, &pid);
        struct stat sb;
        if (kind < 0 || strlen(e->d_name) >= sizeof v->name || fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
            !S_ISREG(sb.st_mode))
            continue;
        if (kind == GR_FC_TEMP &&
            ((pid > 0 && pid <= 0x7fffffff && kill((pid_t)pid, 0) != 0 && errno == ESRCH) || pid <= 0 ||
             now - sb.st_mtim.tv_sec > 3600))
            kind = GR_FC_STALE;
        if (*n == cap) {
            int nc = cap ? 2 * cap : 64;
            gr_fc_file *nv = realloc(v, (size_t)nc * sizeof *v);
            if (!nv) { st = gr_error_set(err, GR_ERR_NOMEM, "%s: out of memory listing the features cache", dir); break; }
            v = nv;
            cap = nc;
        }
        gr_fc_file *f = &v[(*n)++];
        memset(f, 0, sizeof *f);
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1);   /* shorter than f->name: checked above */
        f->kind = (gr_fc_kind)kind;
        f->bytes = (uint64_t)sb.st_size;
        f->used_s = (int64_t)sb.st_mtim.tv_sec;
        f->used_ns = (int64_t)sb.st_mtim.tv_nsec;
        if (kind == GR_FC_ENTRY) read_header(dirfd(d), e->d_name, &f->n, &f->F);
    }
    closedir(d);
    if (st != GR_OK) { free(v); *n = 0; return st; }
    if (*n > 1) qsort(v, (size_t)*n, sizeof *v, by_use_desc);
    *files = v;
    return GR_OK;
}

gr_status gr_features_cache_evict(const char *dir, uint64_t budget, bool all, const char *keep, int *removed,
                                  uint64_t *freed, gr_error *err) {
    gr_fc_file *v;
    int n, rm = 0;
    uint64_t fr = 0, total = 0;
    gr_status st = gr_features_cache_scan(dir, &v, &n, err);
    if (st != GR_OK) return st;
    for (int i = 0; i < n; i++)
        if (v[i].kind == GR_FC_ENTRY) total += v[i].bytes;
    char path[4096 + 100];
    /* oldest use first: the list is most recent first */
    for (int i = n - 1; i >= 0; i--) {
        bool go = v[i].kind == GR_FC_STALE ||
                  (v[i].kind == GR_FC_ENTRY && (all || total > budget) && !(keep && !strcmp(keep, v[i].name)));
        if (!go) continue;
        snprintf(path, sizeof path, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", v[i].name);
        if (unlink(path) != 0) {
            if (errno == ENOENT) {   /* another run removed it first */
                if (v[i].kind == GR_FC_ENTRY) total -= v[i].bytes;
                continue;
            }
            st = gr_error_set(err, GR_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
            break;
        }
        if (v[i].kind == GR_FC_ENTRY) {
            total -= v[i].bytes;
            rm++;
        }
        fr += v[i].bytes;
    }
    free(v);
    if (removed) *removed = rm;
    if (freed) *freed = fr;
    return st;
}
