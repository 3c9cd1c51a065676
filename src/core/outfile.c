/* outfile.c — atomic writes of a user's file through symlinks, refusing
 * targets that are not regular files (see outfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/outfile.h"

static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a fifo";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

gr_status gr_outfile_resolve(const char *path, char *real, size_t cap, gr_error *err) {
    if (!path || !*path) return gr_error_set(err, GR_ERR_ARG, "an output path is empty");
    char cur[GR_OUTFILE_PATH_MAX], link[GR_OUTFILE_PATH_MAX];
    if ((size_t)snprintf(cur, sizeof cur, "%s", path) >= sizeof cur)
        return gr_error_set(err, GR_ERR_ARG, "%s: the path is too long", path);
    struct stat sb;
    for (int hops = 0;; hops++) {
        if (lstat(cur, &sb) != 0) {
            if (errno != ENOENT)
                return gr_error_set(err, GR_ERR_IO, "%s: cannot check the output path: %s", path, strerror(errno));
            break;   /* a new file (perhaps a link's missing target) */
        }
        if (!S_ISLNK(sb.st_mode)) {
            if (!S_ISREG(sb.st_mode))
                return gr_error_set(err, GR_ERR_ARG,
                                    "%s%s%s is %s: graft writes its outputs only to a new path or a regular "
                                    "file, and never replaces anything else", path, strcmp(cur, path) ? " -> " : "",
                                    strcmp(cur, path) ? cur : "", kind_of(sb.st_mode));
            break;
        }
        if (hops >= 40) return gr_error_set(err, GR_ERR_ARG, "%s: too many levels of symbolic links", path);
        ssize_t k = readlink(cur, link, sizeof link - 1);
        if (k < 0 || (size_t)k >= sizeof link - 1)
            return gr_error_set(err, GR_ERR_IO, "%s: cannot read the symbolic link %s", path, cur);
        link[k] = 0;
        char next[GR_OUTFILE_PATH_MAX];
        const char *slash = strrchr(cur, '/');
        int n = link[0] == '/' || !slash ? snprintf(next, sizeof next, "%s", link)
                                         : snprintf(next, sizeof next, "%.*s/%s", (int)(slash - cur), cur, link);
        if (n < 0 || (size_t)n >= sizeof next) return gr_error_set(err, GR_ERR_ARG, "%s: the path is too long", path);
        memcpy(cur, next, (size_t)n + 1);
    }
    /* its directory must exist and be writable */
    char dir[GR_OUTFILE_PATH_MAX];
    const char *slash = strrchr(cur, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == cur) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - cur), cur);
    if (access(dir, W_OK | X_OK) != 0)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot write into the directory %s: %s", path, dir, strerror(errno));
    if ((size_t)snprintf(real, cap, "%s", cur) >= cap) return gr_error_set(err, GR_ERR_ARG, "%s: the path is too long", path);
    return GR_OK;
}

void gr_outfile_temp_name(const char *real, long pid, char *out, size_t cap) {
    snprintf(out, cap, "%s.tmp.%ld", real, pid);
}

gr_status gr_outfile_open(gr_outfile *o, const char *path, gr_error *err) {
    o->fd = -1;
    o->tmp[0] = 0;
    snprintf(o->name, sizeof o->name, "%s", path ? path : "");
    gr_status st = gr_outfile_resolve(path, o->real, sizeof o->real, err);
    if (st != GR_OK) return st;
    gr_outfile_temp_name(o->real, (long)getpid(), o->tmp, sizeof o->tmp);
    for (int attempt = 0; attempt < 2 && o->fd < 0; attempt++) {
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        /* a leftover of a dead process that had our pid: ours to replace */
        if (o->fd < 0 && errno == EEXIST && attempt == 0) unlink(o->tmp);
    }
    if (o->fd < 0) {
        int e = errno;
        o->tmp[0] = 0;
        return gr_error_set(err, GR_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
    }
    return GR_OK;
}

gr_status gr_outfile_write(gr_outfile *o, const void *buf, size_t n, gr_error *err) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(o->fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return gr_error_set(err, GR_ERR_IO, "%s: write failed: %s", o->name, k < 0 ? strerror(errno) : "no space");
        p += k;
        n -= (size_t)k;
    }
    return GR_OK;
}

gr_status gr_outfile_commit(gr_outfile *o, gr_error *err) {
    mode_t um = umask(0);
    umask(um);
    gr_status st = GR_OK;
    if (fchmod(o->fd, 0666 & ~um) != 0 || fsync(o->fd) != 0)
        st = gr_error_set(err, GR_ERR_IO, "%s: cannot sync: %s", o->name, strerror(errno));
    if (close(o->fd) != 0 && st == GR_OK)
        st = gr_error_set(err, GR_ERR_IO, "%s: close failed: %s", o->name, strerror(errno));
    o->fd = -1;
    if (st == GR_OK && rename(o->tmp, o->real) != 0)
        st = gr_error_set(err, GR_ERR_IO, "%s: cannot rename the temporary file into place: %s", o->name,
                          strerror(errno));
    if (st != GR_OK) {
        gr_outfile_abort(o);
        return st;
    }
    o->tmp[0] = 0;
    char dir[GR_OUTFILE_PATH_MAX];   /* make the rename itself durable */
    const char *slash = strrchr(o->real, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == o->real ? 1 : (int)(slash - o->real), o->real);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return GR_OK;
}

void gr_outfile_abort(gr_outfile *o) {
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp[0]) unlink(o->tmp);
    o->tmp[0] = 0;
}
