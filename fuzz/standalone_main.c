/* standalone_main.c — runs a fuzz target's LLVMFuzzerTestOneInput on files,
 * without libFuzzer (built with the normal compiler, under ASan+UBSan in the
 * sanitizer build): `run_<target> FILE|DIR ...`.  Each file is one input;
 * a directory's regular files are all run.  A crash, a sanitizer report or
 * an abort in the target ends the process non-zero; otherwise it prints
 * "PASS <target>: N inputs" (make test counts that line).               */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern char fuzz_last_error[4096];   /* fuzz/fuzz.h */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The expectation of a regression file X: the text of X.expect (one line, a
 * substring one of the input's error messages must contain), if present. */
static int expectation(const char *path, char *buf, size_t cap) {
    char p[4096];
    snprintf(p, sizeof p, "%s.expect", path);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    if (!fgets(buf, (int)cap, f)) buf[0] = 0;
    fclose(f);
    buf[strcspn(buf, "\r\n")] = 0;
    return 1;
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return -1; }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) { fclose(f); return -1; }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *q = realloc(buf, cap *= 2);
        if (!q) free(buf);
        buf = q;
    }
    fclose(f);
    /* a private copy of exactly n bytes, so ASan sees reads past the input */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) { free(buf); return -1; }
    memcpy(exact, buf, n);
    free(buf);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "run %s (%zu bytes)\n", path, n);
    fuzz_last_error[0] = 0;
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    char want[512];
    if (expectation(path, want, sizeof want) && !strstr(fuzz_last_error, want)) {
        printf("FAIL %s: expected an error containing \"%s\", got \"%s\"\n", path, want,
               fuzz_last_error[0] ? fuzz_last_error : "(no error)");
        return -2;
    }
    return 1;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    int total = 0, fails = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st)) continue;   /* an absent corpus directory is empty */
        if (!S_ISDIR(st.st_mode)) {
            int r = run_file(argv[a]);
            if (r == -1) return 1;
            if (r == -2) fails++; else total++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        if (!d) { perror(argv[a]); return 1; }
        char **names = NULL;
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char **q = realloc(names, (size_t)(n + 1) * sizeof *names);
            if (!q) return 1;
            names = q;
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            if (!(names[n] = malloc(len))) return 1;
            snprintf(names[n++], len, "%s/%s", argv[a], e->d_name);
        }
        closedir(d);
        if (n) qsort(names, (size_t)n, sizeof *names, cmp);   /* a fixed order */
        for (int i = 0; i < n; i++) {
            if (!stat(names[i], &st) && S_ISREG(st.st_mode) && !ends_with(names[i], ".expect")) {
                int r = run_file(names[i]);
                if (r == -1) return 1;
                if (r == -2) fails++; else total++;
            }
            free(names[i]);
        }
        free(names);
    }
    if (fails) return 1;   /* the FAIL lines are printed */
    printf("PASS %s: %d inputs\n", name, total);
    return 0;
}
