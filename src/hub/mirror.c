/* mirror.c — local mirrors: a directory holding the known files (by name,
 * by their alternative path, or under the cache's own subdirectory), each
 * checked against the mirror's SHA256SUMS, else the published digest; a
 * dataset may be there unpacked (linked into the cache after its check).  */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/digest.h"
#include "hub/fetch.h"
#include "core/core.h"

#define PATH_CAP GR_FETCH_PATH_CAP

/* Looks rel ("weights/x/y") up in dir/SHA256SUMS ("<hex>  [./]rel" lines).
 * Returns 1 and fills hex when listed, 0 when not (or no SHA256SUMS). */
int gr_fetch_mirror_sum(const char *dir, const char *rel, char *hex) {
    char path[PATH_CAP], line[PATH_CAP + 80];
    gr_fetch_pathf(path, sizeof path, "%s/SHA256SUMS", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *sp = strchr(line, ' ');
        if (!sp || sp - line != 64) continue;
        char *name = sp;
        while (*name == ' ' || *name == '*') name++;
        if (!strncmp(name, "./", 2)) name += 2;
        if (!strcmp(name, rel)) {
            memcpy(hex, line, 64);
            hex[64] = 0;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* Copies src to part while hashing it with kind; hex gets the digest. */
static gr_status copy_hashing(const char *src, const char *part, gr_digest_kind kind, char *hex,
                              gr_error *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return gr_error_set(err, GR_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fclose(in);
        return gr_error_set(err, GR_ERR_IO, "%s: cannot open for writing: %s", part, strerror(errno));
    }
    gr_status st = GR_OK;
    gr_digest *d = gr_digest_new(kind, err);
    char *buf = malloc(1 << 16);
    if (!d || !buf) st = d ? gr_error_set(err, GR_ERR_NOMEM, "out of memory copying %s", src) : GR_ERR_NOMEM;
    size_t got;
    while (st == GR_OK && (got = fread(buf, 1, 1 << 16, in)) > 0) {
        st = gr_digest_update(d, buf, got, err);
        if (st == GR_OK) st = gr_fetch_write_all(fd, buf, got, part, err);
    }
    if (st == GR_OK && ferror(in)) st = gr_error_set(err, GR_ERR_IO, "%s: read error", src);
    if (st == GR_OK && fsync(fd) != 0) st = gr_error_set(err, GR_ERR_IO, "%s: fsync failed: %s", part, strerror(errno));
    if (st == GR_OK) {
        st = gr_digest_final(d, hex, err);
        d = NULL;
    }
    gr_digest_free(d);
    free(buf);
    fclose(in);
    close(fd);
    if (st != GR_OK) unlink(part);
    return st;
}

/* Tries to fill dest from the mirror.  Returns GR_OK when done, GR_ERR_IO with
 * *missing = true when the mirror lacks the file, any other error as is. */
gr_status gr_fetch_mirror_file(const char *mirror, const gr_fetch_entry *e, const gr_fetch_file *f,
                             const char *dest, const gr_fetch_opts *o, bool *missing, gr_error *err) {
    char rels[3][PATH_CAP], src[PATH_CAP];
    int nrel = 0;
    gr_fetch_pathf(rels[nrel++], PATH_CAP, "%s", f->file);
    if (f->mirror_alt) gr_fetch_pathf(rels[nrel++], PATH_CAP, "%s", f->mirror_alt);
    gr_fetch_pathf(rels[nrel++], PATH_CAP, "%s/%s", e->subdir, f->file);
    *missing = true;
    const char *rel = NULL;
    for (int i = 0; i < nrel && !rel; i++) {
        gr_fetch_pathf(src, sizeof src, "%s/%s", mirror, rels[i]);
        if (gr_fetch_is_file(src)) rel = rels[i];
    }
    if (!rel) return GR_ERR_IO;
    *missing = false;
    char want[GR_DIGEST_HEX_MAX], got[GR_DIGEST_HEX_MAX], part[PATH_CAP];
    const char *origin;
    gr_digest_kind kind = GR_DIGEST_SHA256;
    if (gr_fetch_mirror_sum(mirror, rel, want)) {
        origin = "the mirror's SHA256SUMS";
    } else if (f->digest) {
        gr_fetch_pathf(want, sizeof want, "%s", f->digest);
        kind = (gr_digest_kind)gr_digest_kind_of_hex(f->digest);
        origin = "published";
    } else {
        want[0] = 0;
        origin = NULL;
    }
    gr_fetch_note(o, "%s: using mirror file %s", f->file, src);
    gr_fetch_pathf(part, sizeof part, "%s.part", dest);
    gr_status st = copy_hashing(src, part, kind, got, err);
    if (st != GR_OK) return st;
    if (origin && !gr_digest_equal(want, got)) {
        unlink(part);
        return gr_error_set(err, GR_ERR_DIGEST, "mirror file %s: %s mismatch: expected %s (%s), got %s",
                            src, gr_digest_name(kind), want, origin, got);
    }
    if (rename(part, dest) != 0)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot rename to %s: %s", part, dest, strerror(errno));
    gr_fetch_fsync_parent(dest);
    if (origin) gr_fetch_note(o, "%s: %s matches %s", f->file, gr_digest_name(kind), origin);
    else gr_fetch_note(o, "%s: not in %s/SHA256SUMS and no published digest: not verified", src, mirror);
    return GR_OK;
}

/* The dataset's unpacked directory is complete in dir (all listed files). */
bool gr_fetch_unpacked_complete(const gr_fetch_entry *e, const char *dir) {
    char p[PATH_CAP];
    if (!gr_fetch_is_dir(dir)) return false;
    for (int i = 0; e->unpacked_files[i]; i++) {
        gr_fetch_pathf(p, sizeof p, "%s/%s", dir, e->unpacked_files[i]);
        if (!gr_fetch_is_file(p)) return false;
    }
    return true;
}

/* Links the mirror's unpacked dataset directory into the cache after checking
 * every file the mirror's SHA256SUMS lists for it.  *missing as mirror_file. */
gr_status gr_fetch_mirror_dir(const char *mirror, const gr_fetch_entry *e, const char *cache_dir,
                            const gr_fetch_opts *o, bool *missing, gr_error *err) {
    char rels[2][PATH_CAP], src[PATH_CAP], real[PATH_CAP], p[PATH_CAP], rel[PATH_CAP + 64];
    gr_fetch_pathf(rels[0], PATH_CAP, "%s", e->unpacked);
    gr_fetch_pathf(rels[1], PATH_CAP, "%s/%s", e->subdir, e->unpacked);
    *missing = true;
    int k = -1;
    for (int i = 0; i < 2 && k < 0; i++) {
        gr_fetch_pathf(src, sizeof src, "%s/%s", mirror, rels[i]);
        if (gr_fetch_unpacked_complete(e, src)) k = i;
    }
    if (k < 0) return GR_ERR_IO;
    *missing = false;
    gr_fetch_note(o, "%s: using mirror directory %s", e->name, src);
    int checked = 0;
    for (int i = 0; e->unpacked_files[i]; i++) {
        char want[GR_DIGEST_HEX_MAX], got[GR_DIGEST_HEX_MAX];
        gr_fetch_pathf(rel, sizeof rel, "%s/%s", rels[k], e->unpacked_files[i]);
        if (!gr_fetch_mirror_sum(mirror, rel, want)) continue;
        gr_fetch_pathf(p, sizeof p, "%s/%s", src, e->unpacked_files[i]);
        gr_status st = gr_digest_file(GR_DIGEST_SHA256, p, got, err);
        if (st != GR_OK) return st;
        if (!gr_digest_equal(want, got))
            return gr_error_set(err, GR_ERR_DIGEST,
                                "mirror file %s: sha256 mismatch: expected %s (the mirror's SHA256SUMS), got %s",
                                p, want, got);
        checked++;
    }
    if (!checked) gr_fetch_note(o, "%s: no SHA256SUMS entries for %s: not verified", e->name, src);
    else gr_fetch_note(o, "%s: %d files match the mirror's SHA256SUMS", e->name, checked);
    if (!realpath(src, real))
        return gr_error_set(err, GR_ERR_IO, "%s: cannot resolve path: %s", src, strerror(errno));
    gr_fetch_pathf(p, sizeof p, "%s/%s", cache_dir, e->unpacked);
    unlink(p);   /* a stale link */
    if (symlink(real, p) != 0)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot link to %s: %s", p, real, strerror(errno));
    return GR_OK;
}
