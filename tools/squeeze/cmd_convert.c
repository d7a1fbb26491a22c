/* PLACEHOLDER: replaced by the module that owns 'squeeze convert'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_convert(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze convert: not built yet\n");
    return 1;
}
