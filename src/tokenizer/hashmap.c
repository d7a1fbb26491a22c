#include "tokenizer/hashmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* A table at most half full: lookups stay short and an insert always finds a slot. */
static size_t capacity_for(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    return cap;
}

int sq_strmap_init(sq_strmap *m, size_t n) {
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(n);
    if (!cap) return -1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->lens = calloc(cap, sizeof *m->lens);
    m->values = calloc(cap, sizeof *m->values);
    if (!m->keys || !m->lens || !m->values) {
        sq_strmap_free(m);
        return -1;
    }
    m->cap = cap;
    return 0;
}

void sq_strmap_free(sq_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->values);
    memset(m, 0, sizeof *m);
}

int sq_strmap_put(sq_strmap *m, const char *key, uint32_t len, int32_t value) {
    if (!m->cap || 2 * (m->count + 1) > m->cap) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->lens[i] = len;
            m->values[i] = value;
            m->count++;
            return 1;
        }
        if (m->lens[i] == len && !memcmp(m->keys[i], key, len)) return 0;
    }
}

int32_t sq_strmap_get(const sq_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(key, len) & mask; m->keys[i]; i = (i + 1) & mask)
        if (m->lens[i] == len && !memcmp(m->keys[i], key, len)) return m->values[i];
    return -1;
}

int sq_pairmap_init(sq_pairmap *m, size_t n) {
    memset(m, 0, sizeof *m);
    size_t cap = capacity_for(n);
    if (!cap) return -1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->values = calloc(cap, sizeof *m->values);
    if (!m->keys || !m->values) {
        sq_pairmap_free(m);
        return -1;
    }
    m->cap = cap;
    return 0;
}

void sq_pairmap_free(sq_pairmap *m) {
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

int sq_pairmap_put(sq_pairmap *m, int32_t left, int32_t right, sq_pair_value v) {
    if (!m->cap || 2 * (m->count + 1) > m->cap) return -1;
    uint64_t key = pair_key(left, right);
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->values[i] = v;
            m->count++;
            return 1;
        }
        if (m->keys[i] == key) return 0;
    }
}

const sq_pair_value *sq_pairmap_get(const sq_pairmap *m, int32_t left, int32_t right) {
    if (!m->cap) return NULL;
    uint64_t key = pair_key(left, right);
    size_t mask = m->cap - 1;
    for (size_t i = hash_u64(key) & mask; m->keys[i]; i = (i + 1) & mask)
        if (m->keys[i] == key) return &m->values[i];
    return NULL;
}
