/* splitmix64 (Steele, Lea, Flood 2014): a seedable 64-bit generator for reproducible draws (calibration
 * windows, random test inputs). */
#ifndef SQ_CORE_RNG_H
#define SQ_CORE_RNG_H

#include <stdint.h>

static inline uint64_t sq_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for n >= 1 (Lemire's multiply-shift; the bias is below n / 2^64). */
static inline uint64_t sq_rng_below(uint64_t *state, uint64_t n) {
    return (uint64_t)(((unsigned __int128)sq_splitmix64(state) * n) >> 64);
}

#endif
