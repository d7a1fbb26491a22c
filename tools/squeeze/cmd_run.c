/* PLACEHOLDER: replaced by the module that owns 'squeeze run'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_run(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze run: not built yet\n");
    return 1;
}
