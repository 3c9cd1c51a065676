/* graft.c — the command line: `graft <command> [options]`. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "core/core.h"
#include "dist/dist.h"
#include "progress.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"fetch", cmd_fetch, "download pretrained weights and datasets (sha256-checked, cached)"},
    {"info", cmd_info, "show a weights file's tensors, or a base's layers (--base)"},
    {"extract", cmd_extract, "run a base up to a layer on a dataset, write features as .npy"},
    {"predict", cmd_predict, "classify images with a network and print the top classes"},
    {"train", cmd_train, "train a new head on a frozen pretrained base"},
    {"eval", cmd_eval, "evaluate a trained model on a dataset"},
    {"report", cmd_report, "rebuild a run's HTML report (graft train/eval --report DIR) from its record"},
    {"export", cmd_export, "write a trained model as an ONNX file (ONNX Runtime, OpenCV, OpenVINO)"},
    {"probe", cmd_probe, "score bases and cuts by how well their features transfer (linear probe, LogME)"},
    {"cache", cmd_cache, "list or clear the features cache (size limit: GRAFT_CACHE_MAX)"},
};
#define NCMD (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "graft %s — transfer learning from pretrained CNNs, in C\n\n"
               "usage: graft <command> [options]   (graft <command> --help for its options)\n\n"
               "commands:\n", GRAFT_VERSION);
    for (int i = 0; i < NCMD; i++) fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nenvironment: GRAFT_HOME (cache, default ~/.cache/graft), GRAFT_MIRROR (local mirror)\n"
               "exit status: 0 success, 1 runtime error (a missing or bad file, a failed run),\n"
               "             2 usage error (an unknown option, a bad or missing value),\n"
               "             130 interrupted (^C: SIGINT/SIGTERM)\n");
}

/* Prints "graft: error: MSG" in one write, through the log sink when it is
 * installed (progress.c: an open progress line is ended first).  Under
 * mpirun with several ranks it names the rank; a rank other than 0 waits a
 * second first: when every rank fails alike (a bad option), rank 0's
 * message and MPI_Abort end the job before, so the error is printed once. */
static void print_error(const char *msg) {
    char body[1200];
    if (gr_dist_active()) {
        if (gr_dist_rank() > 0) sleep(1);
        snprintf(body, sizeof body, "rank %d of %d: %s", gr_dist_rank(), gr_dist_size(), msg);
    } else {
        snprintf(body, sizeof body, "%s", msg);
    }
    if (gr_log_enabled()) {
        gr_log(GR_LOG_ERROR, "%s", body);
        return;
    }
    char line[1300];
    snprintf(line, sizeof line, "graft: error: %s\n", body);
    fputs(line, stderr);
}

int cli_fail(const gr_error *err) {
    print_error(err && err->msg[0] ? err->msg : "unknown error");
    return CLI_ERROR;
}

int cli_failf(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error(msg);
    return CLI_ERROR;
}

int cli_usage(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error(msg);
    return CLI_USAGE;
}

/* OpenMP threads that spin while idle fight with the decode threads and with
 * anything else on the machine (measured: a 7x slow-down of feature
 * extraction on a loaded 2-core machine).  libgomp reads OMP_WAIT_POLICY
 * only at load time, so when it is unset graft re-executes itself once with
 * OMP_WAIT_POLICY=PASSIVE.  Set the variable yourself to choose otherwise.  */
static void ensure_passive_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

static int run_command(int i, int argc, char **argv) {
    cli_log_state log_state;   /* the library's log: progress.h */
    cli_log_begin(&log_state, gr_dist_rank());
    int rc = commands[i].run(argc, argv);
    cli_log_end(&log_state);
    return rc;
}

static int graft_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("graft %s\n", GRAFT_VERSION);
        return 0;
    }
    for (int i = 0; i < NCMD; i++)
        if (!strcmp(argv[1], commands[i].name)) return run_command(i, argc - 1, argv + 1);
    fprintf(stderr, "graft: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* Under mpirun (an MPI build, make MPI=1): MPI starts first; ranks other
 * than 0 print nothing on stdout; a rank whose command fails ends the whole
 * job (MPI_Abort in gr_dist_exit) so that no rank waits for it.            */
int main(int argc, char **argv) {
    ensure_passive_wait(argv);
    gr_fp_flush_enter();   /* every command, on every thread: subnormals flushed (core/fpmode.c) */
    gr_error err = {0};
    if (gr_dist_init(&argc, &argv, &err) != GR_OK) return cli_fail(&err);
    if (gr_dist_rank() > 0 && !freopen("/dev/null", "w", stdout)) return gr_dist_exit(cli_failf("cannot silence rank %d's output", gr_dist_rank()));
    return gr_dist_exit(graft_main(argc, argv));
}
