/* cmd_info.c — `graft info` (being written). */
#include "cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft info' is not available in this build yet");
}
