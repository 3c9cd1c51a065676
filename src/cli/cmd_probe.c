/* cmd_probe.c — `graft probe` (being written). */
#include "cli.h"

int cmd_probe(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft probe' is not available in this build yet");
}
