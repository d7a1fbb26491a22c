/* Open-addressing hash maps for the tokenizer's lookups: byte strings to token ids, and id pairs to merges.
 */
#ifndef SQ_TOKENIZER_HASHMAP_H
#define SQ_TOKENIZER_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

/* Keys point at strings the caller keeps alive; a key is a byte span, so it may contain NULs. */
typedef struct sq_strmap {
    const char **keys;
    uint32_t *lens;
    int32_t *values;
    size_t cap; /* power of two; 0 when empty */
    size_t count;
} sq_strmap;

/* Prepares room for n entries. Returns 0, or -1 when out of memory. */
int sq_strmap_init(sq_strmap *m, size_t n);
void sq_strmap_free(sq_strmap *m);
/* Inserts key -> value unless key is present. Returns 1 when inserted, 0 when already present, -1 when full.
 */
int sq_strmap_put(sq_strmap *m, const char *key, uint32_t len, int32_t value);
/* The value for key, or -1. */
int32_t sq_strmap_get(const sq_strmap *m, const char *key, size_t len);

typedef struct sq_pair_value {
    int32_t rank;
    int32_t id;
} sq_pair_value;

/* (left id, right id) -> (rank, merged id). */
typedef struct sq_pairmap {
    uint64_t *keys; /* (left << 32 | right) + 1; 0 marks an empty slot */
    sq_pair_value *values;
    size_t cap;
    size_t count;
} sq_pairmap;

int sq_pairmap_init(sq_pairmap *m, size_t n);
void sq_pairmap_free(sq_pairmap *m);
/* Same return values as sq_strmap_put. */
int sq_pairmap_put(sq_pairmap *m, int32_t left, int32_t right, sq_pair_value v);
/* NULL when absent. */
const sq_pair_value *sq_pairmap_get(const sq_pairmap *m, int32_t left, int32_t right);

#endif
