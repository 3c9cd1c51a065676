/* fetch.h — the download cache: known files (registry.c), libcurl downloads
 * with resume and digest checks, local mirrors (fetch.c).  The public entry
 * points (gr_fetch_name, gr_fetch_resolve, gr_fetch_url) are in graft.h.    */
#ifndef GRAFT_IO_FETCH_H
#define GRAFT_IO_FETCH_H
#include <stddef.h>
#include "graft.h"

/* One downloadable file of a known name. */
typedef struct {
    const char *file;        /* local file name in the cache (also the name in a mirror) */
    const char *url;         /* canonical URL */
    const char *digest;      /* publisher's md5 (32 hex) or sha256 (64 hex); NULL = none published */
    const char *mirror_alt;  /* another path to look for in a mirror ("weights/darknet-tiny/tiny.cfg"); may be NULL */
} gr_fetch_file;

/* A known name ("vgg16", "cifar10"): its files and where they go. */
typedef struct {
    const char *name;
    const char *subdir;      /* under $GRAFT_HOME: "weights/vgg16", "datasets/cifar10" */
    const char *what;        /* one line for --list */
    const char *unpacked;    /* datasets: the directory the archive unpacks to
                                ("cifar-10-batches-bin"); a mirror may hold it unpacked.  NULL for weights */
    const char *unpacked_files[8]; /* files that must be in that directory (NULL-terminated) */
    int n_files;
    gr_fetch_file files[3];
} gr_fetch_entry;

/* The table of known names (static, read-only). */
const gr_fetch_entry *gr_fetch_registry(int *n);
const gr_fetch_entry *gr_fetch_lookup(const char *name);   /* NULL when unknown */

/* The cache root: $GRAFT_HOME, else $HOME/.cache/graft.  Writes it to buf. */
gr_status gr_fetch_home(char *buf, size_t cap, gr_error *err);

/* The URL a file is fetched from: $GRAFT_FETCH_BASE_URL + "/" + file when that
 * environment variable is set (tests, private mirrors), else the canonical URL. */
void gr_fetch_file_url(const gr_fetch_file *f, char *buf, size_t cap);

/* fetch.c's helpers, shared with mirror.c.  pathf: snprintf for paths, -1
 * when truncated; note: a GR_LOG_NOTE line unless o->quiet; fsync_parent:
 * fsyncs the directory holding path (a rename into it is durable).        */
#define GR_FETCH_PATH_CAP 4096
int gr_fetch_pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool gr_fetch_is_file(const char *p);
bool gr_fetch_is_dir(const char *p);
void gr_fetch_note(const gr_fetch_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gr_fetch_fsync_parent(const char *path);
gr_status gr_fetch_write_all(int fd, const void *data, size_t n, const char *path, gr_error *err);

/* mirror.c.  Fill dest (a file of entry e) or the cache's dataset directory
 * from the mirror directory: GR_OK when done, GR_ERR_IO with *missing =
 * true when the mirror lacks it, any other error as is.  unpacked_complete:
 * dir holds every file of e's unpacked dataset.                            */
gr_status gr_fetch_mirror_file(const char *mirror, const gr_fetch_entry *e, const gr_fetch_file *f,
                               const char *dest, const gr_fetch_opts *o, bool *missing, gr_error *err);
gr_status gr_fetch_mirror_dir(const char *mirror, const gr_fetch_entry *e, const char *cache_dir,
                              const gr_fetch_opts *o, bool *missing, gr_error *err);
bool gr_fetch_unpacked_complete(const gr_fetch_entry *e, const char *dir);
/* Looks rel ("weights/x/y") up in dir/SHA256SUMS ("<hex>  [./]rel" lines):
 * 1 and hex filled when listed, 0 when not (or no SHA256SUMS).            */
int gr_fetch_mirror_sum(const char *dir, const char *rel, char *hex);
#endif
