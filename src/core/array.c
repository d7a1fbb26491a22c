#include "core/array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int sq_array_reserve(void *items, size_t *cap, size_t need, size_t size) {
    void *old;
    memcpy(&old, items, sizeof old); /* the caller's pointer variable, whatever its element type */
    if (need <= *cap) return 0;
    size_t grown = *cap > SIZE_MAX / 2 ? SIZE_MAX : 2 * *cap;
    if (grown < need) grown = need;
    if (grown < 16) grown = 16;
    if (size && grown > SIZE_MAX / size) {
        if (need > SIZE_MAX / size) return -1;
        grown = need; /* doubling would overflow; exactly `need` still fits */
    }
    void *p = realloc(old, grown * (size ? size : 1));
    if (!p) return -1;
    memcpy(items, &p, sizeof p);
    *cap = grown;
    return 0;
}
