#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_fail(sq_error *err) {
    fprintf(stderr, "squeeze: %s\n", sq_error_message(err));
    sq_error_free(err);
    return 1;
}

uint64_t cli_clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32) &
           ((1ull << 53) - 1);
}
