/* PLACEHOLDER: replaced by the module that owns 'squeeze info'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_info(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze info: not built yet\n");
    return 1;
}
