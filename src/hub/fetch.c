/* fetch.c — downloads into the cache: libcurl to <dest>.part (resumed with an
 * HTTP Range request), progress through the log, digest check, fsync, rename.  Also
 * local mirrors (a directory holding the files, checked against its own
 * SHA256SUMS) and the resolve call other commands use (--weights imagenet).
 *
 * Environment: GRAFT_HOME (cache root), GRAFT_MIRROR (mirror directory),
 * GRAFT_FETCH_TIMEOUT (seconds for connecting and for a stalled transfer,
 * default 30), GRAFT_FETCH_RETRIES (attempts after a dropped connection,
 * default 3), GRAFT_FETCH_BASE_URL (fetch every known file from BASE/<file>),
 * GRAFT_OFFLINE=1 (never use the network).                                  */
#include "hub/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/digest.h"
#include "core/core.h"

#define PATH_CAP GR_FETCH_PATH_CAP

static const gr_fetch_opts default_opts = {NULL, false, false, false};

/* snprintf for paths: returns -1 when the result was truncated. */
int gr_fetch_pathf(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long env_long(const char *name, long def, long lo, long hi) {
    const char *s = getenv(name);
    if (!s || !*s) return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) return def;
    return v;
}

bool gr_fetch_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

bool gr_fetch_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void gr_fetch_note(const gr_fetch_opts *o, const char *fmt, ...) {
    if (o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    gr_vlog(GR_LOG_NOTE, fmt, ap);
    va_end(ap);
}

/* Creates dir and its parents (mode 0755). */
static gr_status mkdir_p(const char *dir, gr_error *err) {
    char buf[PATH_CAP];
    if (gr_fetch_pathf(buf, sizeof buf, "%s", dir) < 0)
        return gr_error_set(err, GR_ERR_ARG, "%s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return gr_error_set(err, GR_ERR_IO, "%s: cannot create directory: %s", buf,
                                    strerror(errno));
            if (!c) break;
            *p = c;
        }
    }
    if (!gr_fetch_is_dir(buf)) return gr_error_set(err, GR_ERR_IO, "%s: not a directory", buf);
    return GR_OK;
}

/* fsync the directory holding path, so a rename into it is durable. */
void gr_fetch_fsync_parent(const char *path) {
    char buf[PATH_CAP];
    gr_fetch_pathf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash) gr_fetch_pathf(buf, sizeof buf, ".");
    else if (slash == buf) buf[1] = 0;
    else *slash = 0;
    int fd = open(buf, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

gr_status gr_fetch_write_all(int fd, const void *data, size_t n, const char *path, gr_error *err) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return gr_error_set(err, GR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return GR_OK;
}

/* Checks a finished .part against digest (may be NULL), then fsyncs nothing
 * more (the caller did) and renames it to dest.  `source` names where the
 * bytes came from (URL or mirror file) for messages.  A mismatch deletes part. */
static gr_status verify_and_commit(const char *part, const char *dest, const char *digest,
                                   const char *source, const char *digest_origin,
                                   const gr_fetch_opts *o, gr_error *err) {
    if (digest) {
        int kind = gr_digest_kind_of_hex(digest);
        if (kind < 0) {
            unlink(part);
            return gr_error_set(err, GR_ERR_ARG, "%s: '%s' is not an md5 or sha256 hex digest",
                                source, digest);
        }
        char got[GR_DIGEST_HEX_MAX];
        gr_status st = gr_digest_file((gr_digest_kind)kind, part, got, err);
        if (st != GR_OK) return st;
        if (!gr_digest_equal(got, digest)) {
            unlink(part);
            return gr_error_set(err, GR_ERR_DIGEST,
                                "%s: %s mismatch: expected %s (%s), got %s; the download was deleted",
                                source, gr_digest_name((gr_digest_kind)kind), digest,
                                digest_origin, got);
        }
    }
    if (rename(part, dest) != 0)
        return gr_error_set(err, GR_ERR_IO, "%s: cannot rename to %s: %s", part, dest, strerror(errno));
    gr_fetch_fsync_parent(dest);
    if (!digest && !o->quiet) {
        char sha[GR_DIGEST_HEX_MAX];
        if (gr_digest_file(GR_DIGEST_SHA256, dest, sha, NULL) == GR_OK)
            gr_fetch_note(o, "%s: no published digest, not verified (sha256 %s)", dest, sha);
    }
    return GR_OK;
}

/* ------------------------------------------------------------ downloading */

typedef struct {
    CURL *curl;
    int fd;
    const char *url, *part, *label;
    curl_off_t offset;        /* bytes already in .part when this request began */
    curl_off_t written;       /* bytes written by this request */
    long range_start;         /* start of the response's Content-Range; -1 none */
    bool checked;             /* status examined on the first body byte */
    bool restarted;           /* the server ignored Range: started over from 0 */
    gr_status st;             /* an error raised inside a callback */
    gr_error *err;
    const gr_fetch_opts *o;
    bool tty;
    double t0, t_last;
    int drawn;                /* progress lines drawn */
    bool final_drawn;         /* the 100% bar was drawn */
} dl_ctx;

static size_t header_cb(char *buf, size_t size, size_t n, void *user) {
    dl_ctx *d = user;
    size_t len = size * n;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) d->range_start = -1;   /* a new response */
    if (len > 14 && !strncasecmp(buf, "content-range:", 14)) {
        /* libcurl's header line is not NUL-terminated: parse a bounded copy */
        char line[128];
        size_t k = len - 14 < sizeof line - 1 ? len - 14 : sizeof line - 1;
        memcpy(line, buf + 14, k);
        line[k] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        long start;
        if (sscanf(p, "bytes %ld-", &start) == 1) d->range_start = start;
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *user) {
    dl_ctx *d = user;
    size_t len = size * n;
    if (!d->checked) {
        d->checked = true;
        if (d->offset > 0) {
            long code = 0;
            curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);
            if (code != 206 || d->range_start < 0) {   /* 200: the server ignored Range */
                if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) {
                    d->st = gr_error_set(d->err, GR_ERR_IO, "%s: cannot truncate: %s", d->part,
                                         strerror(errno));
                    return 0;
                }
                gr_fetch_note(d->o, "%s: the server ignored the range request; downloading from the start",
                     d->url);
                d->offset = 0;
                d->restarted = true;
            } else if (d->range_start != (long)d->offset) {
                d->st = gr_error_set(d->err, GR_ERR_NET,
                                     "%s: asked to resume at byte %ld, the server sent bytes from %ld",
                                     d->url, (long)d->offset, d->range_start);
                return 0;
            }
        }
    }
    if (gr_fetch_write_all(d->fd, data, len, d->part, d->err) != GR_OK) {
        d->st = GR_ERR_IO;
        return 0;
    }
    d->written += (curl_off_t)len;
    return len;
}

static void fmt_bytes(double b, char *buf, size_t cap) {
    if (b >= 1e9) snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(buf, cap, "%.1f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, cap, "%.1f kB", b / 1e3);
    else snprintf(buf, cap, "%.0f B", b);
}

/* Progress: a redrawn bar (GR_LOG_PROGRESS) when stderr is a terminal, else
 * a note every 5 s. */
static int progress_cb(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)ultotal; (void)ulnow;
    dl_ctx *d = user;
    if (d->o->quiet) return 0;
    double t = now_s();
    bool final = dltotal > 0 && dlnow >= dltotal;
    if (final && (!d->tty || d->final_drawn)) return 0;
    if (t - d->t_last < (d->tty ? 0.2 : 5.0) && !final) return 0;
    d->final_drawn = final;
    d->t_last = t;
    double have = (double)d->offset + (double)dlnow, total = dltotal > 0 ? (double)d->offset + (double)dltotal : 0;
    double speed = t > d->t0 ? (double)dlnow / (t - d->t0) : 0;
    char h[32], tot[32], sp[32], eta[32] = "";
    fmt_bytes(have, h, sizeof h);
    fmt_bytes(total, tot, sizeof tot);
    fmt_bytes(speed, sp, sizeof sp);
    /* the sizes come from the server (Content-Length, the resume offset): clamped
     * before they become integers */
    double frac = total > 0 ? have / total : 0;
    if (!(frac >= 0)) frac = 0;
    if (frac > 1) frac = 1;
    if (total > 0 && speed > 0) {
        double left = (total - have) / speed;
        long s = left > 0 ? (long)(left < 1e8 ? left : 1e8) : 0;
        gr_fetch_pathf(eta, sizeof eta, "ETA %ld:%02ld", s / 60, s % 60);
    }
    if (d->tty) {
        char bar[31];
        int fill = (int)(30 * frac);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        gr_log(GR_LOG_PROGRESS, "%-24.24s [%s] %3.0f%% %s / %s  %s/s  %s", d->label, bar,
               100 * frac, h, total > 0 ? tot : "?", sp, eta);
    } else {
        gr_log(GR_LOG_NOTE, "%s: %s of %s, %s/s %s", d->label, h, total > 0 ? tot : "?", sp, eta);
    }
    d->drawn++;
    return 0;
}

static bool transient(CURLcode rc) {
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
           rc == CURLE_SEND_ERROR;
}

/* One HTTP request appending to part.  Returns the curl code; *code = HTTP status. */
static CURLcode request_once(CURL *c, dl_ctx *d, long timeout, long *code, char *ebuf) {
    curl_easy_reset(c);
    ebuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "graft/" GRAFT_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);     /* < 1 byte/s ... */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout); /* ... for timeout s: give up */
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    char range[32];
    if (d->offset > 0) {   /* not CURLOPT_RESUME_FROM: it fails on a 200; we restart instead */
        snprintf(range, sizeof range, "%ld-", (long)d->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    d->written = 0;
    d->checked = false;
    d->range_start = -1;
    d->final_drawn = false;
    d->t0 = d->t_last = now_s();
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    d->drawn = 0;
    return rc;
}

/* Appends to part until complete.  The .part is kept after network errors
 * (so a later call resumes) unless it is empty. */
static gr_status download_part(const char *url, const char *part, const char *label,
                               const gr_fetch_opts *o, gr_error *err) {
    long timeout = env_long("GRAFT_FETCH_TIMEOUT", 30, 1, 86400);
    long tries = env_long("GRAFT_FETCH_RETRIES", 3, 0, 100);
    CURL *c = curl_easy_init();
    if (!c) return gr_error_set(err, GR_ERR_NET, "%s: cannot initialize libcurl", url);
    dl_ctx d = {.curl = c, .url = url, .part = part, .label = label, .err = err, .o = o,
                .tty = isatty(2) == 1};
    char ebuf[CURL_ERROR_SIZE];
    gr_status st = GR_OK;
    for (long attempt = 0;; attempt++) {
        d.fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (d.fd < 0) {
            st = gr_error_set(err, GR_ERR_IO, "%s: cannot open for writing: %s", part, strerror(errno));
            break;
        }
        if (flock(d.fd, LOCK_EX | LOCK_NB) != 0) {   /* one writer per .part */
            st = gr_error_set(err, GR_ERR_IO, "%s: another process is downloading into it", part);
            close(d.fd);
            break;
        }
        off_t size = lseek(d.fd, 0, SEEK_END);
        d.offset = size > 0 ? (curl_off_t)size : 0;
        d.st = GR_OK;
        if (d.offset > 0) gr_fetch_note(o, "%s: resuming at byte %ld", label, (long)d.offset);
        long code = 0;
        CURLcode rc = request_once(c, &d, timeout, &code, ebuf);
        if (rc == CURLE_OK && fsync(d.fd) != 0)
            st = gr_error_set(err, GR_ERR_IO, "%s: fsync failed: %s", part, strerror(errno));
        close(d.fd);
        if (st != GR_OK) break;
        if (rc == CURLE_OK) break;
        if (d.st) { st = d.st; break; }
        if (rc == CURLE_HTTP_RETURNED_ERROR && code == 416 && d.offset > 0 && attempt < tries) {
            /* "range not satisfiable": the .part is as long as the file or longer; start over */
            gr_fetch_note(o, "%s: the server refused to resume; downloading from the start", label);
            if (truncate(part, 0) != 0) {
                st = gr_error_set(err, GR_ERR_IO, "%s: cannot truncate: %s", part, strerror(errno));
                break;
            }
            continue;
        }
        if (transient(rc) && attempt < tries) {
            gr_fetch_note(o, "%s: connection lost after %ld bytes (%s); resuming", label,
                 (long)(d.offset + d.written), ebuf[0] ? ebuf : curl_easy_strerror(rc));
            continue;
        }
        if (rc == CURLE_HTTP_RETURNED_ERROR)
            st = gr_error_set(err, GR_ERR_NET, "%s: HTTP status %ld", url, code);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            st = gr_error_set(err, GR_ERR_NET,
                              "%s: timed out (no data for %ld s; GRAFT_FETCH_TIMEOUT sets the limit): %s",
                              url, timeout, ebuf[0] ? ebuf : curl_easy_strerror(rc));
        else
            st = gr_error_set(err, GR_ERR_NET, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
        break;
    }
    curl_easy_cleanup(c);
    struct stat sb;
    if (st != GR_OK && stat(part, &sb) == 0 && sb.st_size == 0) unlink(part);
    return st;
}

gr_status gr_fetch_url(const char *url, const char *dest, const char *digest,
                       const gr_fetch_opts *opts, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_fetch_opts *o = opts ? opts : &default_opts;
    char part[PATH_CAP];
    if (gr_fetch_pathf(part, sizeof part, "%s.part", dest) < 0)
        return gr_error_set(err, GR_ERR_ARG, "%s: path too long", dest);
    if (digest && gr_digest_kind_of_hex(digest) < 0)
        return gr_error_set(err, GR_ERR_ARG, "%s: '%s' is not an md5 or sha256 hex digest", url, digest);
    if (o->force) unlink(part);
    const char *label = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
    gr_status st = download_part(url, part, label, o, err);
    if (st != GR_OK) return st;
    return verify_and_commit(part, dest, digest, url, "published", o, err);
}

/* --------------------------------------------------------------- by name */

static gr_status unknown_name(const char *name, gr_error *err) {
    int n;
    const gr_fetch_entry *r = gr_fetch_registry(&n);
    char known[512] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof known; i++)
        len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", r[i].name);
    return gr_error_set(err, GR_ERR_ARG, "unknown name '%s' (known: %s)", name, known);
}

/* A cached file is current: present and, with a published digest, matching it. */
static bool cached_ok(const gr_fetch_file *f, const char *dest, const gr_fetch_opts *o) {
    if (!gr_fetch_is_file(dest)) return false;
    if (!f->digest) return true;
    char got[GR_DIGEST_HEX_MAX];
    int kind = gr_digest_kind_of_hex(f->digest);
    if (gr_digest_file((gr_digest_kind)kind, dest, got, NULL) == GR_OK && gr_digest_equal(got, f->digest))
        return true;
    gr_fetch_note(o, "%s: cached copy does not match its published digest; fetching again", dest);
    unlink(dest);
    return false;
}

static gr_status offline_hint(gr_error *err, const char *url, const char *dest, const char *file) {
    return gr_error_prefix(err, "cannot download %s; on a machine without network, download %s "
                                "and put it at %s, or point --mirror DIR (or GRAFT_MIRROR) at a "
                                "directory holding it", file, url, dest);
}

/* announce: say "up to date" for cached names (graft fetch does; resolve is silent). */
static gr_status fetch_name(const char *name, const gr_fetch_opts *opts, bool announce, gr_error *err) {
    const gr_fetch_opts *o = opts ? opts : &default_opts;
    const gr_fetch_entry *e = gr_fetch_lookup(name);
    if (!e) return unknown_name(name, err);
    char home[PATH_CAP], dir[PATH_CAP], dest[PATH_CAP], url[PATH_CAP];
    gr_status st = gr_fetch_home(home, sizeof home, err);
    if (st != GR_OK) return st;
    if (gr_fetch_pathf(dir, sizeof dir, "%s/%s", home, e->subdir) || strlen(dir) > PATH_CAP - 256)
        return gr_error_set(err, GR_ERR_ARG, "%s: cache path too long", home);
    if ((st = mkdir_p(dir, err))) return st;
    const char *mirror = o->mirror ? o->mirror : getenv("GRAFT_MIRROR");
    if (mirror && !*mirror) mirror = NULL;
    if (mirror && !gr_fetch_is_dir(mirror))
        return gr_error_set(err, GR_ERR_ARG, "mirror %s: not a directory", mirror);
    bool offline = o->offline || env_long("GRAFT_OFFLINE", 0, 0, 1) == 1;

    if (e->unpacked) {   /* a dataset: an unpacked directory in the cache counts as present */
        gr_fetch_pathf(dest, sizeof dest, "%s/%s", dir, e->unpacked);
        if (o->force) {
            struct stat sb;
            if (lstat(dest, &sb) == 0 && S_ISLNK(sb.st_mode)) unlink(dest);
        } else if (gr_fetch_unpacked_complete(e, dest)) {
            if (announce) gr_fetch_note(o, "%s: up to date (%s)", name, dest);
            return GR_OK;
        }
    }
    for (int i = 0; i < e->n_files; i++) {
        const gr_fetch_file *f = &e->files[i];
        gr_fetch_pathf(dest, sizeof dest, "%s/%s", dir, f->file);
        if (o->force) unlink(dest);
        else if (cached_ok(f, dest, o)) {
            if (announce) gr_fetch_note(o, "%s: up to date (%s)", name, dest);
            continue;
        }
        bool missing = true;
        if (mirror) {
            st = gr_fetch_mirror_file(mirror, e, f, dest, o, &missing, err);
            if (!missing) {
                if (st != GR_OK) return st;
                continue;
            }
            if (e->unpacked && i == 0) {
                st = gr_fetch_mirror_dir(mirror, e, dir, o, &missing, err);
                if (!missing) return st;
            }
            gr_fetch_note(o, "%s: not in mirror %s", f->file, mirror);
        }
        gr_fetch_file_url(f, url, sizeof url);
        if (offline) {
            gr_error_set(err, GR_ERR_NET, "offline (GRAFT_OFFLINE)");
            return offline_hint(err, url, dest, f->file);
        }
        gr_fetch_note(o, "%s: downloading %s", name, url);
        char part[PATH_CAP];
        gr_fetch_pathf(part, sizeof part, "%s.part", dest);
        const char *label = f->file;
        st = download_part(url, part, label, o, err);
        if (st == GR_ERR_NET) return offline_hint(err, url, dest, f->file);
        if (st != GR_OK) return st;
        st = verify_and_commit(part, dest, f->digest, url, "published", o, err);
        if (st != GR_OK) return st;
    }
    return GR_OK;
}

gr_status gr_fetch_name(const char *name, const gr_fetch_opts *opts, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    return fetch_name(name, opts, true, err);
}

/* Which file of e the hint names (NULL: the first). */
static const gr_fetch_file *pick_file(const gr_fetch_entry *e, const char *hint) {
    if (!hint || !*hint) return &e->files[0];
    for (int i = 0; i < e->n_files; i++)
        if (!strcmp(e->files[i].file, hint)) return &e->files[i];
    for (int i = 0; i < e->n_files; i++) {
        const char *dot = strrchr(e->files[i].file, '.');
        if (dot && !strcmp(dot + 1, hint)) return &e->files[i];
    }
    if (!strcmp(hint, "labels") || !strcmp(hint, "names"))
        for (int i = 0; i < e->n_files; i++)
            if (strstr(e->files[i].file, "names")) return &e->files[i];
    return NULL;
}

gr_status gr_fetch_resolve(const char *name, const char *file_hint, const gr_fetch_opts *opts,
                           char *path_out, size_t cap, gr_error *err) {
    gr_error local;
    if (!err) err = &local;
    const gr_fetch_entry *e = gr_fetch_lookup(name);
    if (!e) return unknown_name(name, err);
    const gr_fetch_file *f = pick_file(e, file_hint);
    if (!f && !e->unpacked)
        return gr_error_set(err, GR_ERR_ARG, "%s has no file matching '%s'", name, file_hint);
    gr_status st = fetch_name(name, opts, false, err);
    if (st != GR_OK) return st;
    char home[PATH_CAP], p[PATH_CAP];
    if ((st = gr_fetch_home(home, sizeof home, err))) return st;
    int n;
    if (e->unpacked) {
        gr_fetch_pathf(p, sizeof p, "%s/%s/%s", home, e->subdir, e->unpacked);
        if (gr_fetch_unpacked_complete(e, p)) {
            if (file_hint && *file_hint && !pick_file(e, file_hint)) {
                n = snprintf(path_out, cap, "%s/%s", p, file_hint);
            } else {
                n = snprintf(path_out, cap, "%s", p);
            }
            goto out;
        }
        if (!f) f = &e->files[0];
    }
    n = snprintf(path_out, cap, "%s/%s/%s", home, e->subdir, f->file);
out:
    if (n < 0 || (size_t)n >= cap) return gr_error_set(err, GR_ERR_ARG, "%s: cached path too long", name);
    return GR_OK;
}
