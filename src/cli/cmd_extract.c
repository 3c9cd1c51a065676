/* cmd_extract.c — `graft extract` (being written). */
#include "cli.h"

int cmd_extract(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft extract' is not available in this build yet");
}
