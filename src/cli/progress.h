/* progress.h — the command's log sink: how the library's log lines reach a
 * person.  Info lines go to stdout (the run's report), notes, warnings and
 * errors to stderr.  Progress lines (GR_LOG_PROGRESS: "eval: 320/10000
 * images, 812 img/s, ETA 12s", Keras' epoch bar) are redrawn in place on a
 * terminal at most ~10 times a second, fitted to its current width (the bar
 * shrinks, then the line is cut) so that a line never wraps, even after the
 * window is resized; the next line of the run's report replaces the
 * progress line (the screen then reads like a log file).  When stderr is
 * not a terminal (a log file, CI, nohup) progress lines are dropped: such a
 * log gets the one line per epoch or phase that the library logs at the end
 * of each, never carriage-return spam.                                     */
#ifndef GRAFT_CLI_PROGRESS_H
#define GRAFT_CLI_PROGRESS_H
#include <stdbool.h>
#include <stddef.h>
#include "graft.h"

typedef struct {
    bool tty;           /* stderr is a terminal */
    bool out_tty;       /* stdout is a terminal (the same one, in practice) */
    bool open;          /* a progress line is drawn and not yet ended */
    int rank;           /* MPI rank (0 without MPI): only rank 0 reports */
    double last_draw;   /* when the progress line was last drawn (monotonic s) */
} cli_log_state;

/* Starts the sink for one command: s describes stderr now; gr_set_log. */
void cli_log_begin(cli_log_state *s, int rank);
/* Ends an open progress line, detaches the sink. */
void cli_log_end(cli_log_state *s);

/* Fits the progress line msg into cols columns for a terminal: out gets msg
 * unchanged when it is at most cols - 1 characters wide (the last column is
 * left free: writing it makes some terminals wrap); otherwise a progress
 * bar in it ("[=====>....]", 10 or more cells) is shrunk, down to 8 cells,
 * keeping its fill, then the line is cut to cols - 1 characters (at a UTF-8
 * character boundary, and at the last field separator " - " or ", " where
 * that keeps at least half the width).  Returns the number of columns of out.              */
int cli_progress_fit(const char *msg, int cols, char *out, size_t cap);

#endif
