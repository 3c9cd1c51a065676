/* features_cache.c — the features cache on disk: the frozen base's outputs
 * at the cut for a training set, kept under $GRAFT_HOME/cache/features so a
 * second run with the same base, weights, cut, input size, preprocessing and
 * samples skips the base entirely.
 *
 * Key: sha256 over the architecture of layers 0..cut (ops, shapes, options),
 * their parameters (bytes), the precision and reference flag, the sample
 * list with labels, and the samples' identity: for files, path + size +
 * modification time; for in-memory sets (CIFAR), the preprocessed pixels.
 * File: "GRFC" magic, u32 version, u64 n, u64 F, then n*F float32, written
 * to a temporary name and renamed, so a crash never leaves a bad entry.
 * GRAFT_FEATURES_CACHE=0 turns the disk cache off.                         */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/dataset.h"
#include "train/train.h"

#define FC_MAGIC "GRFC"
#define FC_VERSION 1u

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

/* Writes the cache file's path for this key into out; 0 ok, -1 when the
 * disk cache is off or no home directory is known. */
static int cache_dir(char *out, size_t cap) {
    const char *off = getenv("GRAFT_FEATURES_CACHE");
    if (off && !strcmp(off, "0")) return -1;
    const char *home = getenv("GRAFT_HOME");
    if (home && *home) snprintf(out, cap, "%s/cache/features/", home);
    else if ((home = getenv("HOME")) && *home) snprintf(out, cap, "%s/.cache/graft/cache/features/", home);
    else return -1;
    return 0;
}

gr_status gr_features_key(gr_model *m, int upto, const gr_dataset *ds, const int *idx, int n,
                          char hex[65], gr_error *err) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return gr_error_set(err, GR_ERR_NOMEM, "features cache: cannot start a digest");
    }
    int in[3] = {m->in_h, m->in_w, m->in_c}, flags[3] = {upto, (int)m->precision,
                                                        getenv("GRAFT_REFERENCE") != NULL};
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
    size_t img = (size_t)h * w * 3;
    float *px = NULL;
    gr_status st = GR_OK;
    EVP_DigestUpdate(c, &n, sizeof n);
    for (int k = 0; k < n && st == GR_OK; k++) {
        int i = idx ? idx[k] : k, lab = gr_dataset_label(ds, i);
        EVP_DigestUpdate(c, &i, sizeof i);
        EVP_DigestUpdate(c, &lab, sizeof lab);
        const char *path = gr_dataset_path(ds, i);
        struct stat sb;
        if (path && stat(path, &sb) == 0) {
            long long id[2] = {(long long)sb.st_size, (long long)sb.st_mtime};
            EVP_DigestUpdate(c, path, strlen(path));
            EVP_DigestUpdate(c, id, sizeof id);
        } else {
            if (!px && !(px = gr_malloc(img * sizeof(float), err))) { st = GR_ERR_NOMEM; break; }
            if ((st = gr_dataset_get(ds, i, px, err)) == GR_OK) EVP_DigestUpdate(c, px, img * sizeof(float));
        }
    }
    free(px);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(c, d, &dl);
    EVP_MD_CTX_free(c);
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    return st;
}

bool gr_features_load(const char key[65], size_t n, size_t F, float *feat, char *path_out, size_t cap) {
    char path[4096];
    if (cache_dir(path, sizeof path)) return false;
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s.f32", key);
    snprintf(path_out, cap, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    uint32_t ver;
    uint64_t hn, hf;
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, FC_MAGIC, 4) && fread(&ver, 4, 1, f) == 1 &&
              ver == FC_VERSION && fread(&hn, 8, 1, f) == 1 && fread(&hf, 8, 1, f) == 1 && hn == n &&
              hf == F && fread(feat, sizeof(float), n * F, f) == n * F;
    fclose(f);
    return ok;
}

void gr_features_store(const char key[65], size_t n, size_t F, const float *feat) {
    char path[4096], tmp[4200];
    if (cache_dir(path, sizeof path) || mkdirs(path)) return;
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s.f32", key);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    uint32_t ver = FC_VERSION;
    uint64_t hn = n, hf = F;
    bool ok = fwrite(FC_MAGIC, 1, 4, f) == 4 && fwrite(&ver, 4, 1, f) == 1 && fwrite(&hn, 8, 1, f) == 1 &&
              fwrite(&hf, 8, 1, f) == 1 && fwrite(feat, sizeof(float), n * F, f) == n * F;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);   /* a full disk just means no cache */
}
