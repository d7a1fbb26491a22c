/* PLACEHOLDER: replaced by the module that owns 'squeeze bench'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_bench(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze bench: not built yet\n");
    return 1;
}
