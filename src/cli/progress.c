/* progress.c — the command's log sink (see progress.h). */
#include "progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Redraws of the progress line: at most one per this many seconds. */
#define REDRAW_S 0.1

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The terminal's width now (it may change between two draws); COLUMNS or
 * 80 when the terminal does not say.                                       */
static int term_cols(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n > 0 ? n : 80;
}

/* Columns of s[0..n): one per UTF-8 character (continuation bytes add none). */
static int text_cols(const char *s, size_t n) {
    int w = 0;
    for (size_t i = 0; i < n; i++) w += ((unsigned char)s[i] & 0xC0) != 0x80;
    return w;
}

static bool bar_fill(char c) { return c == '=' || c == '#'; }
static bool bar_cell(char c) { return bar_fill(c) || c == '>' || c == '.' || c == '-'; }

/* The first "[" + 10 or more bar cells + "]" in s: its cells' offset and
 * count, or 0.                                                             */
static int find_bar(const char *s, size_t *at) {
    for (const char *lb = strchr(s, '['); lb; lb = strchr(lb + 1, '[')) {
        const char *p = lb + 1;
        while (bar_cell(*p)) p++;
        if (*p == ']' && p - lb - 1 >= 10) {
            *at = (size_t)(lb + 1 - s);
            return (int)(p - lb - 1);
        }
    }
    return 0;
}

int cli_progress_fit(const char *msg, int cols, char *out, size_t cap) {
    if (cap == 0) return 0;
    int max = cols > 2 ? cols - 1 : 1;
    snprintf(out, cap, "%s", msg);
    size_t n = strlen(out), at;
    int w = text_cols(out, n), len = w > max ? find_bar(out, &at) : 0;
    if (len > 8) {   /* shrink the bar, keeping its fill */
        int nl = len - (w - max);
        if (nl < 8) nl = 8;
        int filled = 0;
        bool head = false;
        char fc = '=', ec = '.';
        for (int i = 0; i < len; i++) {
            char c = out[at + i];
            if (bar_fill(c)) filled++, fc = c;
            else if (c == '>') head = true;
            else ec = c;
        }
        int nf = filled * nl / len;
        for (int i = 0; i < nl; i++) out[at + i] = i < nf ? fc : (i == nf && head ? '>' : ec);
        memmove(out + at + nl, out + at + len, n - at - len + 1);
        n -= (size_t)(len - nl);
        w -= len - nl;
    }
    if (w > max) {   /* cut at a character boundary */
        size_t i = 0;
        int c = 0;
        while (i < n) {
            if (((unsigned char)out[i] & 0xC0) != 0x80) {
                if (c == max) break;
                c++;
            }
            i++;
        }
        /* rather at the last field boundary (" - ", ", ") in the second half of the width */
        for (size_t j = i; j > 0; j--) {
            if (text_cols(out, j) < max / 2) break;
            if ((out[j] == ' ' && out[j + 1] == '-' && out[j + 2] == ' ') || (out[j] == ',' && out[j + 1] == ' ')) {
                i = j;
                break;
            }
        }
        out[i] = 0;
        w = text_cols(out, i);
    }
    return w;
}

static void cli_log(void *user, gr_log_level level, const char *msg) {
    cli_log_state *s = user;
    if (s->rank > 0 && level != GR_LOG_ERROR) return;   /* under mpirun rank 0 reports */
    if (level == GR_LOG_PROGRESS) {
        if (!s->tty) return;
        double t = now_s();
        if (s->open && t - s->last_draw < REDRAW_S) return;
        char line[1024];
        fflush(stdout);
        cli_progress_fit(msg, term_cols(), line, sizeof line);
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        s->open = true;
        s->last_draw = t;
        return;
    }
    if (level == GR_LOG_DEBUG && !getenv("GRAFT_DEBUG")) return;
    fflush(stdout);   /* what the command printed comes first (a log file gets both in order) */
    if (s->open) {
        /* a line of the run's report replaces the progress line when it
         * goes to the same terminal (the screen then reads like the log
         * file); before a warning or an error, or a line that goes
         * elsewhere, the progress line stays (it says where the run was) */
        bool same = level == GR_LOG_NOTE || (level == GR_LOG_INFO && s->out_tty);
        fputs(same ? "\r\033[K" : "\n", stderr);
        s->open = false;
    }
    if (level == GR_LOG_INFO) {
        puts(msg);
        fflush(stdout);
        return;
    }
    char line[2200];   /* one write (under mpirun several ranks share stderr) */
    snprintf(line, sizeof line, "graft: %s%s%s\n", level == GR_LOG_NOTE ? "" : gr_log_level_name(level),
             level == GR_LOG_NOTE ? "" : ": ", msg);
    fputs(line, stderr);
}

void cli_log_begin(cli_log_state *s, int rank) {
    *s = (cli_log_state){.tty = isatty(STDERR_FILENO) == 1, .out_tty = isatty(STDOUT_FILENO) == 1, .rank = rank};
    gr_set_log(cli_log, s);
}

void cli_log_end(cli_log_state *s) {
    if (s->open) fputc('\n', stderr);
    s->open = false;
    gr_set_log(NULL, NULL);
}
