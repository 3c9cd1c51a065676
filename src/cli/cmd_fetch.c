/* cmd_fetch.c — `graft fetch` (being written). */
#include "cli.h"

int cmd_fetch(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft fetch' is not available in this build yet");
}
