/* PLACEHOLDER: replaced by the module that owns 'squeeze report'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_report(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze report: not built yet\n");
    return 1;
}
