/* core.h — what every part of the library uses: the log, checked
 * allocation and the deterministic RNG (src/core/).  Depends on nothing
 * but the public header.                                                   */
#ifndef GRAFT_CORE_H
#define GRAFT_CORE_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "graft.h"

/* Logs through the callback of gr_set_log (nothing when none is set). */
void gr_log(gr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gr_vlog(gr_log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* gr_log(GR_LOG_WARN, ...) */
void gr_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether a callback is installed (skip formatting work when not). */
bool gr_log_enabled(void);

/* Checked allocation helpers: NULL and *err set (GR_ERR_NOMEM) on failure. */
void *gr_malloc(size_t bytes, gr_error *err);
void *gr_calloc(size_t n, size_t size, gr_error *err);
void *gr_realloc(void *p, size_t bytes, gr_error *err);
char *gr_strdup(const char *s, gr_error *err);
/* Sets GR_ERR_NOMEM, "out of memory <what> 1.5 GiB (N bytes)[: hint]"; returns it. */
gr_status gr_error_nomem(gr_error *err, const char *what, double bytes, const char *hint);

/* The memory budget (bytes: $GRAFT_MAX_MEMORY MiB, else the machine's
 * physical memory) that sizes read from files are checked against before
 * anything is allocated.                                                   */
uint64_t gr_memory_budget(void);

/* Small deterministic RNG (xoshiro256**, seeded with splitmix64). */
typedef struct { uint64_t s[4]; } gr_rng;
void gr_rng_seed(gr_rng *r, uint64_t seed);
uint64_t gr_rng_next(gr_rng *r);
float gr_rng_uniform(gr_rng *r);                 /* [0, 1) */
float gr_rng_normal(gr_rng *r);                  /* N(0, 1) */
uint32_t gr_rng_below(gr_rng *r, uint32_t n);    /* [0, n) unbiased */

/* Subnormal floats flushed to zero (FTZ + DAZ; fpmode.c says why): on the
 * calling thread and every OpenMP pool thread.  enter returns the calling
 * thread's mode, which leave restores (on the pool's threads too).
 * gr_fp_flushing: whether the calling thread flushes.                      */
unsigned gr_fp_flush_enter(void);
void gr_fp_flush_leave(unsigned saved);
bool gr_fp_flushing(void);

#endif
