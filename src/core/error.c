/* error.c — the one error type, the log, checked allocation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/core.h"

gr_status gr_error_set(gr_error *err, gr_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

gr_status gr_error_prefix(gr_error *err, const char *fmt, ...) {
    if (!err) return GR_OK;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t np = strlen(pre);
    if (np > sizeof err->msg - 3) np = sizeof err->msg - 3;
    memcpy(err->msg, pre, np);
    memcpy(err->msg + np, ": ", 2);
    size_t room = sizeof err->msg - np - 3, no = strnlen(old, sizeof old);
    if (no > room) no = room;
    memcpy(err->msg + np + 2, old, no);
    err->msg[np + 2 + no] = 0;
    return err->code;
}

const char *gr_version(void) { return GRAFT_VERSION; }

const char *gr_status_name(gr_status code) {
    static const char *names[] = {"ok", "bad argument", "I/O error", "format error",
                                  "shape error", "out of memory", "network error",
                                  "digest mismatch", "unsupported", "numeric error",
                                  "interrupted", "backend error"};
    if ((unsigned)code < sizeof names / sizeof names[0]) return names[code];
    return "unknown error";
}

/* The log sink: set once at start-up by the program (the CLI installs one);
 * until then the library prints nothing.  With the thread pool, the only
 * process-wide state of the library.                                      */
static gr_log_fn log_fn;
static void *log_user;

void gr_set_log(gr_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

bool gr_log_enabled(void) { return log_fn != NULL; }

void gr_vlog(gr_log_level level, const char *fmt, va_list ap) {
    if (!log_fn) return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    log_fn(log_user, level, msg);
}

void gr_log(gr_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    gr_vlog(level, fmt, ap);
    va_end(ap);
}

void gr_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    gr_vlog(GR_LOG_WARN, fmt, ap);
    va_end(ap);
}

const char *gr_log_level_name(gr_log_level level) {
    static const char *names[] = {"error", "warning", "note", "info", "progress", "debug"};
    return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "?";
}

/* "out of memory allocating 1.5 GiB (1610612736 bytes)": the size a person can read, and
 * (hint) what to try; the caller's gr_error_prefix says what the memory was for. */
gr_status gr_error_nomem(gr_error *err, const char *what, double bytes, const char *hint) {
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = bytes;
    int u = 0;
    while (v >= 1024 && u < 6) v /= 1024, u++;
    if (u == 0) return gr_error_set(err, GR_ERR_NOMEM, "out of memory %s %.0f bytes", what, bytes);
    return gr_error_set(err, GR_ERR_NOMEM, "out of memory %s %.1f %s (%.0f bytes)%s%s", what, v,
                        unit[u], bytes, hint ? ": " : "", hint ? hint : "");
}

void *gr_malloc(size_t bytes, gr_error *err) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) gr_error_nomem(err, "allocating", (double)bytes, NULL);
    return p;
}

void *gr_calloc(size_t n, size_t size, gr_error *err) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) gr_error_nomem(err, "allocating", (double)n * (double)size, NULL);
    return p;
}

void *gr_realloc(void *old, size_t bytes, gr_error *err) {
    void *p = realloc(old, bytes ? bytes : 1);
    if (!p) gr_error_nomem(err, "growing a buffer to", (double)bytes, NULL);
    return p;
}

char *gr_strdup(const char *s, gr_error *err) {
    size_t n = strlen(s) + 1;
    char *p = gr_malloc(n, err);
    if (p) memcpy(p, s, n);
    return p;
}

/* The memory budget in bytes: $GRAFT_MAX_MEMORY (MiB) when set, else the
 * machine's physical memory.  Sizes read from files are checked against it
 * before anything is allocated.                                            */
uint64_t gr_memory_budget(void) {
    const char *e = getenv("GRAFT_MAX_MEMORY");
    if (e && *e) {
        char *end;
        unsigned long long mb = strtoull(e, &end, 10);
        if (end != e && !*end && mb > 0) return (uint64_t)mb << 20;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : (uint64_t)8 << 30;
}
