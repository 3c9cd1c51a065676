/* cmd_eval.c — `graft eval` (being written). */
#include "cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft eval' is not available in this build yet");
}
