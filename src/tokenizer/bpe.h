/* The BPE merge loop both tokenizer kinds share: symbols in a linked list, candidate pairs in a binary heap
 * (best first, leftmost among equals), stale candidates skipped when popped -- as sentencepiece, Hugging Face
 * tokenizers and llama.cpp all do it. */
#ifndef SQ_TOKENIZER_BPE_H
#define SQ_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "squeeze.h"

typedef struct sq_bpe_symbol {
    int32_t id;          /* token id, or -1 when the symbol is no token */
    uint32_t start, len; /* bytes of the text it covers; len 0 once merged into its left neighbour */
    int32_t prev, next;  /* -1 at the ends */
    int32_t mergeable;
} sq_bpe_symbol;

typedef struct sq_bpe_candidate {
    double priority; /* lower merges first */
    int32_t left, right;
    uint32_t left_len, right_len;
    int32_t merged;
} sq_bpe_candidate;

/* Whether symbols l and r (adjacent, both mergeable) merge; if so sets the merge's priority and result id. */
typedef int (*sq_bpe_pair_fn)(const void *ctx, const char *text, const sq_bpe_symbol *l,
                              const sq_bpe_symbol *r, double *priority, int32_t *merged);

/* Scratch state reused across words. */
typedef struct sq_bpe {
    sq_bpe_symbol *symbols;
    size_t n, cap;
    sq_bpe_candidate *heap;
    size_t heap_n, heap_cap;
} sq_bpe;

void sq_bpe_free(sq_bpe *b);
/* Appends a symbol after the last one (the list starts empty after sq_bpe_reset). */
SQ_NODISCARD sq_error *sq_bpe_add(sq_bpe *b, int32_t id, size_t start, size_t len, int mergeable);
static inline void sq_bpe_reset(sq_bpe *b) { b->n = 0; }
/* Merges until no candidate is left. The surviving symbols are reached from index 0 through `next`. */
SQ_NODISCARD sq_error *sq_bpe_merge(sq_bpe *b, const char *text, sq_bpe_pair_fn pair, const void *ctx);

#endif
