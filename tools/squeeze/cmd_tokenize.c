/* PLACEHOLDER: replaced by the module that owns 'squeeze tokenize'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_tokenize(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze tokenize: not built yet\n");
    return 1;
}
