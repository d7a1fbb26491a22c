/* A bounded pool of n-grams and the tokens that followed them, collected from text generated earlier (other
 * requests of a server, finished or running), from which speculative decoding drafts when prompt lookup in
 * the sequence itself finds nothing: lookahead decoding's n-gram pool (Fu et al. 2024, "Break the Sequential
 * Dependency of LLM Inference Using Lookahead Decoding"), llama.cpp's lookup cache. A fixed table of
 * `entries` slots, each an n-gram of `ngram_n` tokens with up to SPEC_POOL_CONT tokens after it; a newer
 * n-gram that hashes to a taken slot replaces it (the latest text wins, the memory stays bounded). One
 * thread at a time. */
#ifndef SQ_RUNTIME_NGRAM_POOL_H
#define SQ_RUNTIME_NGRAM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "squeeze.h"

#define SPEC_POOL_CONT 8 /* tokens kept after each n-gram */

typedef struct spec_ngram_pool spec_ngram_pool;

/* entries >= 1 (rounded up to a power of two), ngram_n 1..8. */
SQ_NODISCARD sq_error *spec_ngram_pool_create(int entries, int ngram_n, spec_ngram_pool **out);
void spec_ngram_pool_free(spec_ngram_pool *p);
/* Bytes the pool holds (its table). */
size_t spec_ngram_pool_bytes(const spec_ngram_pool *p);

/* Records, for each position `at` in [from, n) (from ngram_n at least), the n-gram tokens[at - ngram_n ..
 * at) with the tokens that follow it (up to SPEC_POOL_CONT): all of them when `final`, otherwise those whose
 * continuation is already complete. Returns the first position not recorded: `from` for the next call on the
 * same, longer text. */
int spec_ngram_pool_add(spec_ngram_pool *p, const int32_t *tokens, int n, int from, int final);

/* Copies into out (up to k <= SPEC_POOL_CONT tokens) what followed the recorded occurrence of the last
 * ngram_n tokens of tokens[0..n); returns how many (0: none recorded). */
int spec_ngram_pool_lookup(const spec_ngram_pool *p, const int32_t *tokens, int n, int k, int32_t *out);

#endif
