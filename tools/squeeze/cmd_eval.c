/* PLACEHOLDER: replaced by the module that owns 'squeeze eval'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_eval(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze eval: not built yet\n");
    return 1;
}
