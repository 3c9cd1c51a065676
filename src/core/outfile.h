/* outfile.h — the one way graft writes a file: a model, a checkpoint, the
 * features of `graft extract` and their sidecars, a features-cache entry.
 *
 * Rules (README "Files graft writes"):
 *  - a symbolic link is followed: the file it points to is replaced, the
 *    link itself stays (as `cp` and a shell's `>` write through a link);
 *  - the target must be a new path or a regular file: a directory, a
 *    device (/dev/null), a fifo or a socket is refused, never replaced;
 *  - the bytes go to "<target>.tmp.<pid>" beside the real target, are
 *    fsynced and renamed over it, and the directory is fsynced: a crash or
 *    ^C leaves the old file or the new one, never half of one.
 *
 * Usage: gr_outfile o; gr_outfile_open(&o, path, &err); gr_outfile_write(...)...;
 * gr_outfile_commit(&o, &err) (or gr_outfile_abort(&o) to drop the temp file). */
#ifndef GRAFT_IO_OUTFILE_H
#define GRAFT_IO_OUTFILE_H
#include <stddef.h>
#include "graft.h"

#define GR_OUTFILE_PATH_MAX 4096

/* Resolves path (following symbolic links, at most 40) into real, the file
 * a write replaces, and checks it is a new path or a regular file.  Also
 * fails when real's directory does not exist.  Errors name path.          */
gr_status gr_outfile_resolve(const char *path, char *real, size_t cap, gr_error *err);

/* The temporary name for real used by pid: "<real>.tmp.<pid>". */
void gr_outfile_temp_name(const char *real, long pid, char *out, size_t cap);

typedef struct {
    int fd;                               /* the temp file, -1 when closed */
    char name[GR_OUTFILE_PATH_MAX];       /* the path as given (messages) */
    char real[GR_OUTFILE_PATH_MAX];       /* the file replaced at commit */
    char tmp[GR_OUTFILE_PATH_MAX + 32];   /* the temp file beside it */
} gr_outfile;

/* Resolves path and creates its temp file (mode 0666 & ~umask at commit). */
gr_status gr_outfile_open(gr_outfile *o, const char *path, gr_error *err);
/* Writes n bytes (all of them, or an error naming the file). */
gr_status gr_outfile_write(gr_outfile *o, const void *buf, size_t n, gr_error *err);
/* fsync, close, rename over the real target, fsync the directory.  On
 * failure the temp file is removed and the target is untouched.           */
gr_status gr_outfile_commit(gr_outfile *o, gr_error *err);
/* Closes and removes the temp file (safe after commit or a failed open). */
void gr_outfile_abort(gr_outfile *o);

#endif
