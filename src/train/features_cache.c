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
 * (32 bytes), then n*F float32; written through gr_outfile (temp file,
 * rename) and its digest checked on every read: a damaged entry is reported
 * and recomputed, never used.
 * GRAFT_FEATURES_CACHE=0 turns the disk cache off.                         */
#include <errno.h>
#include <fcntl.h>
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
#define FC_VERSION 2u

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
    const char *home = getenv("GRAFT_HOME");
    if (home && *home) snprintf(out, cap, "%s/cache/features/", home);
    else if ((home = getenv("HOME")) && *home) snprintf(out, cap, "%s/.cache/graft/cache/features/", home);
    else return -1;
    return 0;
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
    EVP_DigestUpdate(c, &m->prep, sizeof m->prep);
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
    int recipe[4] = {h, w, (int)ds->fit, (int)ds->prep};
    EVP_DigestUpdate(c, recipe, sizeof recipe);
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

/* sha256 of n floats into d[32]; false when OpenSSL fails. */
static bool payload_digest(const float *feat, size_t count, unsigned char d[32]) {
    unsigned int dl = 0;
    return EVP_Digest(feat, count * sizeof(float), d, &dl, EVP_sha256(), NULL) == 1 && dl == 32;
}

gr_features_hit gr_features_load(const char key[65], size_t n, size_t F, float *feat, char *path_out,
                                 size_t cap) {
    char path[4096];
    if (gr_features_cache_dir(path, sizeof path)) return GR_FEATURES_MISS;
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s.f32", key);
    snprintf(path_out, cap, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return GR_FEATURES_MISS;
    char magic[4];
    uint32_t ver;
    uint64_t hn, hf;
    unsigned char want[32], got[32];
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, FC_MAGIC, 4) && fread(&ver, 4, 1, f) == 1 &&
              ver == FC_VERSION && fread(&hn, 8, 1, f) == 1 && fread(&hf, 8, 1, f) == 1 && hn == n &&
              hf == F && fread(want, 1, 32, f) == 32 && fread(feat, sizeof(float), n * F, f) == n * F &&
              fgetc(f) == EOF && payload_digest(feat, n * F, got) && !memcmp(want, got, 32);
    fclose(f);
    return ok ? GR_FEATURES_HIT : GR_FEATURES_DAMAGED;
}

void gr_features_store(const char key[65], size_t n, size_t F, const float *feat) {
    char path[4096];
    if (gr_features_cache_dir(path, sizeof path) || mkdirs(path)) return;
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s.f32", key);
    uint32_t ver = FC_VERSION;
    uint64_t hn = n, hf = F;
    unsigned char d[32];
    gr_outfile o;
    gr_error e;
    if (!payload_digest(feat, n * F, d) || gr_outfile_open(&o, path, &e) != GR_OK) return;
    bool ok = gr_outfile_write(&o, FC_MAGIC, 4, &e) == GR_OK && gr_outfile_write(&o, &ver, 4, &e) == GR_OK &&
              gr_outfile_write(&o, &hn, 8, &e) == GR_OK && gr_outfile_write(&o, &hf, 8, &e) == GR_OK &&
              gr_outfile_write(&o, d, 32, &e) == GR_OK &&
              gr_outfile_write(&o, feat, n * F * sizeof(float), &e) == GR_OK;
    if (ok) gr_outfile_commit(&o, &e);   /* a full disk just means no cache */
    else gr_outfile_abort(&o);
}
