/* outputs.c — what the commands that write files share: the checks of
 * their outputs before any work starts, the lock that keeps two runs off
 * one output, and ^C (see cli.h: cli_outputs_*, cli_stop_*). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "dist/dist.h"
#include "core/outfile.h"
#include "train/train.h"

void cli_outputs_add(cli_outputs *o, const char *opt, const char *path, const char *may_be) {
    if (!path || o->n >= CLI_MAX_OUTPUTS) return;
    o->opt[o->n] = opt;
    o->path[o->n] = path;
    o->may_be[o->n] = may_be;
    o->lock_fd[o->n] = -1;
    o->real[o->n][0] = o->lock[o->n][0] = 0;
    o->n++;
}

/* "dir/base" with dir made canonical (symlinks and .. resolved), so two
 * spellings of one new file compare equal.  0 ok.                         */
static int canonical(const char *real, char *out, size_t cap) {
    char dir[PATH_MAX], rdir[PATH_MAX];
    const char *slash = strrchr(real, '/'), *base = slash ? slash + 1 : real;
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == real ? 1 : (int)(slash - real), real);
    if (!realpath(dir, rdir)) return -1;
    return (size_t)snprintf(out, cap, "%s/%s", strcmp(rdir, "/") ? rdir : "", base) >= cap ? -1 : 0;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "graft: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* Takes the lock "<real>.lock" (flock, the pid written in it).  0 ok, or
 * the exit code after printing why.                                        */
static int take_lock(cli_outputs *o, int k) {
    size_t rl = strnlen(o->real[k], sizeof o->real[k] - 1);   /* lock[] has room for ".lock" */
    memcpy(o->lock[k], o->real[k], rl);
    memcpy(o->lock[k] + rl, ".lock", 6);
    for (int attempt = 0; attempt < 5; attempt++) {
        int fd = open(o->lock[k], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "graft: error: %s: cannot create the lock file %s: %s\n", o->path[k], o->lock[k],
                    strerror(errno));
            o->lock[k][0] = 0;
            return 1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char pid[32] = {0};
            ssize_t r = read(fd, pid, sizeof pid - 1);
            pid[r > 0 ? r : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            close(fd);
            o->lock[k][0] = 0;
            fprintf(stderr, "graft: error: %s %s is the output of another graft run that is still going (%s%s; "
                    "lock file %s.lock): wait for it to end or choose another path\n", o->opt[k], o->path[k],
                    pid[0] ? "pid " : "pid unknown", pid, o->real[k]);
            return 1;
        }
        /* the holder before us may have removed the file after we opened it */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(o->lock[k], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            char pid[32];
            int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)len) != len) { /* the pid is a courtesy */ }
            o->lock_fd[k] = fd;
            return 0;
        }
        close(fd);
    }
    fprintf(stderr, "graft: error: %s: could not take the lock %s\n", o->path[k], o->lock[k]);
    o->lock[k][0] = 0;
    return 1;
}

/* With the output's lock held, "<real>.tmp.<pid>" files beside it whose
 * process is gone are what a killed run (kill -9, power loss) left: remove
 * them (a live pid's file is left alone).                                  */
static void remove_stale_temps(const char *real) {
    char dir[PATH_MAX], path[PATH_MAX + 300];
    const char *slash = strrchr(real, '/'), *base = slash ? slash + 1 : real;
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == real ? 1 : (int)(slash - real), real);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, bl) || strncmp(e->d_name + bl, ".tmp.", 5)) continue;
        char *end;
        errno = 0;
        long pid = strtol(e->d_name + bl + 5, &end, 10);
        if (*end || pid <= 0 || errno || pid == (long)getpid() || pid > INT_MAX) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

int cli_outputs_claim(cli_outputs *o, const cli_input *inputs, int n_in) {
    char canon[CLI_MAX_OUTPUTS][PATH_MAX];
    for (int k = 0; k < o->n; k++) {
        gr_error err = {0};
        gr_status st = gr_outfile_resolve(o->path[k], o->real[k], sizeof o->real[k], &err);
        if (st != GR_OK) {
            cli_fail(&err);
            return st == GR_ERR_ARG ? 2 : 1;
        }
        if (canonical(o->real[k], canon[k], sizeof canon[k]))
            return usage_error("%s %s: cannot resolve its directory", o->opt[k], o->path[k]);
        struct stat os;
        bool exists = stat(o->real[k], &os) == 0;
        for (int j = 0; j < k; j++)
            if (!strcmp(canon[j], canon[k]))
                return usage_error("%s %s and %s %s are the same file: give each output its own path", o->opt[j],
                                   o->path[j], o->opt[k], o->path[k]);
        for (int i = 0; i < n_in; i++) {
            struct stat is;
            const char *in = inputs[i].path;
            if (!in || stat(in, &is) != 0) continue;   /* not a file (a dataset name) */
            if (o->may_be[k] && !strcmp(o->may_be[k], in)) continue;
            if (exists && is.st_dev == os.st_dev && is.st_ino == os.st_ino)
                return usage_error("%s %s is the file %s %s reads: writing it would destroy that input; choose "
                                   "another path", o->opt[k], o->path[k], inputs[i].opt, in);
            char rin[PATH_MAX];
            size_t rl;
            if (exists && S_ISDIR(is.st_mode) && realpath(in, rin) && (rl = strlen(rin)) &&
                !strncmp(canon[k], rin, rl) && canon[k][rl] == '/')
                return usage_error("%s %s is a file inside %s %s, an input of this run: writing it would replace "
                                   "part of that input; choose another path", o->opt[k], o->path[k], inputs[i].opt, in);
        }
    }
    if (gr_dist_rank() > 0) return 0;   /* under mpirun rank 0 alone writes the outputs, and locks them */
    for (int k = 0; k < o->n; k++) {
        int rc = take_lock(o, k);
        if (rc) { cli_outputs_release(o); return rc; }
    }
    for (int k = 0; k < o->n; k++) remove_stale_temps(o->real[k]);
    return 0;
}

void cli_outputs_release(cli_outputs *o) {
    for (int k = 0; k < o->n; k++) {
        if (o->lock_fd[k] < 0) continue;
        unlink(o->lock[k]);   /* while holding it: a waiter re-checks the inode */
        close(o->lock_fd[k]);
        o->lock_fd[k] = -1;
    }
}

/* Removes this process's temporary files: "<output>.tmp.<pid>" and the
 * features cache's "*.tmp.<pid>" (for an exit at once on a second ^C).   */
static void remove_temps(const cli_outputs *o) {
    char tmp[PATH_MAX + 320], suffix[40];
    long pid = (long)getpid();
    for (int k = 0; o && k < o->n; k++) {
        if (!o->real[k][0]) continue;
        gr_outfile_temp_name(o->real[k], pid, tmp, sizeof tmp);
        unlink(tmp);
    }
    char dir[PATH_MAX];
    if (gr_features_cache_dir(dir, sizeof dir)) return;
    snprintf(suffix, sizeof suffix, ".tmp.%ld", pid);
    DIR *d = opendir(dir);
    if (!d) return;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (nl > sl && !strcmp(e->d_name + nl - sl, suffix)) {
            snprintf(tmp, sizeof tmp, "%s%s", dir, e->d_name);
            unlink(tmp);
        }
    }
    closedir(d);
}

/* ---- ^C ---- */

static volatile int stop_flag = 0;   /* set on SIGINT/SIGTERM: finish the batch, checkpoint, stop */

static void stop_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void cli_stop_prepare(void) {
    /* the thread pool is started with SIGINT/SIGTERM blocked, so its threads
     * inherit the mask and never run a handler inside a compute kernel */
    sigset_t set, old;
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, &old);
#pragma omp parallel
    { (void)0; }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* A thread that does not block the signals (one a library started before
 * cli_stop_prepare, e.g. OpenBLAS's pool) may receive them: its handler
 * only passes the signal on to the waiter thread (pthread_kill is
 * async-signal-safe), so the first/second signal logic stays in one place. */
static pthread_t waiter_thread;
static volatile sig_atomic_t waiter_up = 0;
static void on_signal(int sig) {
    if (__atomic_load_n(&waiter_up, __ATOMIC_ACQUIRE)) pthread_kill(waiter_thread, sig);
    else __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
}

/* SIGINT/SIGTERM during a run are taken by this thread alone (sigwait),
 * never by a handler interrupting a compute thread: a handler's frame on
 * the stack of a thread inside oneDNN's JIT GEMM corrupted the heap (seen
 * as a rare abort when ^C landed mid-step).  The first signal asks the run
 * to stop after the current batch; the second removes this run's temporary
 * files and lock files and exits at once (status 130).                    */
static void *signal_waiter(void *arg) {
    cli_stop *s = arg;
    int sig;
    for (;;) {
        if (sigwait(&s->set, &sig) != 0) continue;
        if (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
            __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);   /* the run reads it from another thread */
            static const char msg[] = "\ngraft: stopping after the current batch (^C again to quit at once)\n";
            if (write(2, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
            continue;
        }
        remove_temps(s->outs);
        for (int k = 0; s->outs && k < s->outs->n; k++)
            if (s->outs->lock_fd[k] >= 0) unlink(s->outs->lock[k]);
        static const char bye[] = "graft: stopped at once (second signal); temporary files removed, "
                                  "no checkpoint written now\n";
        if (write(2, bye, sizeof bye - 1) < 0) { /* nothing to do */ }
        _exit(130);
    }
    return NULL;
}

void cli_stop_start(cli_stop *s, cli_outputs *outs) {
    s->outs = outs;
    s->flag = &stop_flag;
    __atomic_store_n(&stop_flag, 0, __ATOMIC_RELAXED);
    stop_signals(&s->set);
    pthread_sigmask(SIG_BLOCK, &s->set, &s->old);   /* every thread started from here on inherits it */
    s->have_waiter = pthread_create(&s->waiter, NULL, signal_waiter, s) == 0;
    if (!s->have_waiter) pthread_sigmask(SIG_SETMASK, &s->old, NULL);   /* ^C then just ends the run */
    waiter_thread = s->waiter;
    __atomic_store_n(&waiter_up, s->have_waiter, __ATOMIC_RELEASE);   /* after waiter_thread */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

void cli_stop_end(cli_stop *s) {
    __atomic_store_n(&waiter_up, 0, __ATOMIC_RELEASE);
    if (s->have_waiter) {
        pthread_cancel(s->waiter);   /* sigwait is a cancellation point */
        pthread_join(s->waiter, NULL);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (s->have_waiter) pthread_sigmask(SIG_SETMASK, &s->old, NULL);
    s->have_waiter = false;
}
