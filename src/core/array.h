/* Growable heap arrays: one growth policy and one overflow check for every array the library appends to. */
#ifndef SQ_CORE_ARRAY_H
#define SQ_CORE_ARRAY_H

#include <stddef.h>

/* Makes room for at least `need` elements of `size` bytes in the heap array whose pointer variable is at
 * `items` (an int32_t **, char **, ...; the array may be NULL with *cap 0), of capacity *cap elements. It
 * grows geometrically, to the largest of need, twice *cap and 16 elements, so appending n elements costs
 * O(n). Returns 0, or -1 when memory runs out or the byte count overflows size_t; *items and *cap are then as
 * they were (the caller still owns and frees the old array). */
int sq_array_reserve(void *items, size_t *cap, size_t need, size_t size);

/* sq_array_reserve for an array variable `arr` (any pointer type) and its size_t capacity `cap`; the common
 * case, room already there, costs one comparison (need is evaluated twice: no side effects in it). */
#define SQ_ARRAY_RESERVE(arr, cap, need)                                                                     \
    ((need) <= (cap) ? 0 : sq_array_reserve(&(arr), &(cap), (need), sizeof *(arr)))

#endif
