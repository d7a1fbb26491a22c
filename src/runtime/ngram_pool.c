/* The n-gram pool of speculative decoding (ngram_pool.h): a direct-mapped hash table of n-grams. */
#include "runtime/ngram_pool.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct pool_slot {
    int32_t key[8];               /* the n-gram: [ngram_n] tokens */
    int32_t cont[SPEC_POOL_CONT]; /* [n_cont] the tokens that followed it */
    int32_t n_cont;               /* 0: an empty slot */
} pool_slot;

struct spec_ngram_pool {
    pool_slot *slots; /* [mask + 1] */
    uint64_t mask;
    int ngram_n;
};

sq_error *spec_ngram_pool_create(int entries, int ngram_n, spec_ngram_pool **out) {
    *out = NULL;
    if (entries < 1 || entries > (1 << 26))
        return sq_errorf(SQ_ERR_INVALID_ARG, "n-gram pool: %d entries is outside 1..%d", entries, 1 << 26);
    if (ngram_n < 1 || ngram_n > 8)
        return sq_errorf(SQ_ERR_INVALID_ARG, "n-gram pool: ngram_n %d is outside 1..8", ngram_n);
    uint64_t cap = 1;
    while (cap < (uint64_t)entries) cap <<= 1;
    spec_ngram_pool *p = calloc(1, sizeof *p);
    if (p) p->slots = calloc(cap, sizeof *p->slots);
    if (!p || !p->slots) {
        spec_ngram_pool_free(p);
        return sq_errorf(SQ_ERR_NOMEM, "n-gram pool: out of memory for %llu entries",
                         (unsigned long long)cap);
    }
    p->mask = cap - 1;
    p->ngram_n = ngram_n;
    *out = p;
    return NULL;
}

void spec_ngram_pool_free(spec_ngram_pool *p) {
    if (!p) return;
    free(p->slots);
    free(p);
}

size_t spec_ngram_pool_bytes(const spec_ngram_pool *p) { return (size_t)(p->mask + 1) * sizeof *p->slots; }

/* The slot of the n-gram key[0..ngram_n) (FNV-1a over its tokens, then a final mix). */
static pool_slot *slot_of(const spec_ngram_pool *p, const int32_t *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < p->ngram_n; i++) h = (h ^ (uint32_t)key[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return &p->slots[h & p->mask];
}

int spec_ngram_pool_add(spec_ngram_pool *p, const int32_t *tokens, int n, int from, int final) {
    if (from < p->ngram_n) from = p->ngram_n;
    int at = from;
    /* the n-gram tokens[at - ngram_n .. at) is followed by tokens[at ..) */
    for (; at < n; at++) {
        int n_cont = n - at < SPEC_POOL_CONT ? n - at : SPEC_POOL_CONT;
        if (n_cont < SPEC_POOL_CONT && !final) break;
        const int32_t *key = tokens + at - p->ngram_n;
        pool_slot *s = slot_of(p, key);
        memcpy(s->key, key, (size_t)p->ngram_n * sizeof *key);
        memcpy(s->cont, tokens + at, (size_t)n_cont * sizeof *tokens);
        s->n_cont = n_cont;
    }
    return at;
}

int spec_ngram_pool_lookup(const spec_ngram_pool *p, const int32_t *tokens, int n, int k, int32_t *out) {
    if (n < p->ngram_n || k < 1) return 0;
    const int32_t *key = tokens + n - p->ngram_n;
    const pool_slot *s = slot_of(p, key);
    if (!s->n_cont || memcmp(s->key, key, (size_t)p->ngram_n * sizeof *key)) return 0;
    int m = s->n_cont < k ? s->n_cont : k;
    memcpy(out, s->cont, (size_t)m * sizeof *out);
    return m;
}
