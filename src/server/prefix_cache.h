/* Prefix caching over the paged KV cache (vLLM's automatic prefix caching): full blocks of finished or
 * prefilled prompts stay in the cache, and a new request whose prompt starts with the same tokens shares
 * them instead of computing them again.
 *
 * A full block is identified by a hash of its tokens chained with the hash of the block before it, so equal
 * hashes mean equal prefixes (the tokens are compared too: a hash collision costs a miss, never a wrong
 * answer). The cached blocks are held by "holder" sequences of the context, ids first_seq .. first_seq +
 * n_holders - 1: keeping a prefix forks the request's sequence into a holder and truncates it to its full
 * blocks (sq_seq_fork: the blocks are shared, reference-counted, nothing is copied), and using a prefix forks
 * a holder into the request's sequence and truncates it to the matching blocks. A block stays allocated while
 * any request or holder names it, and the KV cache's copy-on-write protects shared blocks from writes. When
 * blocks run short, holders are evicted least recently used first. */
#ifndef SQ_SERVER_PREFIX_CACHE_H
#define SQ_SERVER_PREFIX_CACHE_H

#include <stdint.h>

#include "squeeze.h"

typedef struct sq_prefix_holder {
    int32_t *tokens;  /* [n_blocks * block_size] the prefix it holds */
    uint64_t *hashes; /* [n_blocks] chained block hashes */
    int n_blocks;     /* 0: the holder is empty */
    uint64_t last_used;
} sq_prefix_holder;

typedef struct sq_prefix_cache {
    sq_context *ctx; /* borrowed */
    int block_size, max_blocks;
    int first_seq, n_holders;
    sq_prefix_holder *holders; /* [n_holders] */
    uint64_t clock;            /* ticks at every use: the LRU order */
    uint64_t *scratch;         /* [max_blocks] hashes of the prompt being looked up */
} sq_prefix_cache;

SQ_NODISCARD sq_error *sq_prefix_cache_create(sq_context *ctx, int first_seq, int n_holders,
                                              sq_prefix_cache **out);
void sq_prefix_cache_free(sq_prefix_cache *pc);

/* Makes sequence seq (empty) start with the longest cached prefix of tokens[0..n) made of whole blocks and
 * shorter than n (the last token is always computed, for its logits). Returns the tokens reused (a multiple
 * of the block size; 0 on a miss). */
int sq_prefix_cache_attach(sq_prefix_cache *pc, int seq, const int32_t *tokens, int n);
/* Keeps the full blocks of sequence seq, whose cached tokens are tokens[0..n) (n <= its length), unless a
 * holder has that prefix already. Takes an empty holder or evicts the least recently used one. */
SQ_NODISCARD sq_error *sq_prefix_cache_insert(sq_prefix_cache *pc, int seq, const int32_t *tokens, int n);
/* Empties the least recently used holder; returns 0 when every holder is empty. */
int sq_prefix_cache_evict(sq_prefix_cache *pc);

#endif
