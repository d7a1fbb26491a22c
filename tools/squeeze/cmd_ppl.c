/* PLACEHOLDER: replaced by the module that owns 'squeeze ppl'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_ppl(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze ppl: not built yet\n");
    return 1;
}
