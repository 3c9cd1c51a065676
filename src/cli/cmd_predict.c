/* cmd_predict.c — `graft predict` (being written). */
#include "cli.h"

int cmd_predict(int argc, char **argv) {
    (void)argc; (void)argv;
    return cli_failf("'graft predict' is not available in this build yet");
}
