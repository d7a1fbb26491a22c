/* The one clock squeeze measures durations with: monotonic, so wall-clock adjustments never bend a timing. */
#include <time.h>

#include "squeeze.h"

double sq_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
