/* bench_common.h — small pieces shared by graft's benchmark drivers
 * (bench_forward.c, bench_finetune.c): a monotonic clock and peak RSS. */
#ifndef GRAFT_BENCH_COMMON_H
#define GRAFT_BENCH_COMMON_H
#include <sys/resource.h>
#include <time.h>

/* Rounds of a measurement taken in turn with the peer (see forward.sh). */
#define TURN_ROUNDS 6

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak resident set size of this process so far, in MB. */
static inline double peak_rss_mb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;
}
#endif
