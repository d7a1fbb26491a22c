/* PLACEHOLDER: replaced by the module that owns 'squeeze logits'. */
#include <stdio.h>

#include "cli.h"

int sq_cmd_logits(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "squeeze logits: not built yet\n");
    return 1;
}
