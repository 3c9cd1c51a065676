/* check.h — the tiny test harness every tests/test_*.c uses.
 *
 *   static void test_something(void) { CHECK(x == 1, "x was %d", x); }
 *   int main(void) { RUN(test_something); return check_summary(); }
 *
 * Each test prints one line: "PASS name", "FAIL name" or "SKIP name: why".
 * tests/run.sh counts those lines over all test programs and prints the
 * closing "N passed, N failed, N skipped" line CI reads.                  */
#ifndef GRAFT_TEST_CHECK_H
#define GRAFT_TEST_CHECK_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UNDER_SAN: 1 in the AddressSanitizer build (tests skip what is too slow there). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SAN 1
#endif
#endif
#ifndef UNDER_SAN
#define UNDER_SAN 0
#endif

/* Reads a raw float32 file of exactly n floats into a malloc'd array (NULL
 * if it is missing or holds any other number of bytes).                    */
static inline float *check_read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *p = malloc(n * sizeof *p);
    size_t got = p ? fread(p, sizeof *p, n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) { free(p); return NULL; }
    return p;
}

static int check_fails_ = 0;     /* failures inside the running test */
static int check_skipped_ = 0;   /* the running test called SKIP */
static int check_total_fail_ = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__,      \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            check_fails_++;                                                \
        }                                                                  \
    } while (0)

/* Marks the running test skipped (with a reason) and returns from it. */
#define SKIP(...)                                                          \
    do {                                                                   \
        printf("SKIP %s: ", check_current_);                               \
        printf(__VA_ARGS__);                                               \
        printf("\n");                                                      \
        check_skipped_ = 1;                                                \
        return;                                                            \
    } while (0)

static const char *check_current_ = "";

#define RUN(fn)                                                            \
    do {                                                                   \
        check_fails_ = 0;                                                  \
        check_skipped_ = 0;                                                \
        check_current_ = #fn;                                              \
        fflush(stdout);                                                    \
        fn();                                                              \
        if (!check_skipped_) {                                             \
            printf("%s %s\n", check_fails_ ? "FAIL" : "PASS", #fn);        \
            if (check_fails_) check_total_fail_++;                         \
        }                                                                  \
        fflush(stdout);                                                    \
    } while (0)

static inline int check_summary(void) { return check_total_fail_ ? 1 : 0; }

/* Compares two float arrays: |got - want| <= atol + rtol * |want| everywhere.
 * Prints the worst difference (index, got, want) and returns 1 when close. */
static inline int check_close_(const char *what, const float *got, const float *want,
                               size_t n, double atol, double rtol, const char *file, int line) {
    size_t worst = 0;
    double worst_excess = -1e300, worst_abs = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double lim = atol + rtol * fabs((double)want[i]);
        if (!(d <= lim)) bad = 1;          /* also catches NaN */
        double ex = (d != d) ? 1e300 : d - lim;
        if (ex > worst_excess) { worst_excess = ex; worst = i; worst_abs = d; }
    }
    if (bad) {
        fprintf(stderr, "  %s:%d: %s: not close (n=%zu): worst at [%zu] got %.8g want %.8g |diff| %.3g (atol %.1g rtol %.1g)\n",
                file, line, what, n, worst, got[worst], want[worst], worst_abs, atol, rtol);
        check_fails_++;
        return 0;
    }
    if (getenv("CHECK_VERBOSE"))
        fprintf(stderr, "  %s: max |diff| %.3g over %zu values\n", what, worst_abs, n);
    return 1;
}
#define CHECK_CLOSE(what, got, want, n, atol, rtol) \
    check_close_((what), (got), (want), (n), (atol), (rtol), __FILE__, __LINE__)

/* Where the shared real data lives (../shared/data unless GRAFT_DATA says). */
static inline const char *check_data_dir(void) {
    const char *d = getenv("GRAFT_DATA");
    return d ? d : "../shared/data";
}
#endif
