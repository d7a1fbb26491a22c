/* Prefix caching by holder sequences (see prefix_cache.h). */
#include "server/prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

SQ_NODISCARD sq_error *sq_prefix_cache_create(sq_context *ctx, int first_seq, int n_holders,
                                              sq_prefix_cache **out) {
    *out = NULL;
    sq_prefix_cache *pc = calloc(1, sizeof *pc);
    if (!pc) return sq_errorf(SQ_ERR_NOMEM, "prefix cache: out of memory");
    pc->ctx = ctx;
    pc->block_size = sq_context_kv_block_size(ctx);
    pc->max_blocks = sq_context_n_ctx(ctx) / pc->block_size;
    pc->first_seq = first_seq;
    pc->n_holders = n_holders;
    pc->holders = calloc((size_t)n_holders, sizeof *pc->holders);
    pc->scratch = malloc(((size_t)pc->max_blocks + 1) * sizeof *pc->scratch);
    if (!pc->holders || !pc->scratch) {
        sq_prefix_cache_free(pc);
        return sq_errorf(SQ_ERR_NOMEM, "prefix cache: out of memory");
    }
    *out = pc;
    return NULL;
}

void sq_prefix_cache_free(sq_prefix_cache *pc) {
    if (!pc) return;
    for (int i = 0; pc->holders && i < pc->n_holders; i++) {
        free(pc->holders[i].tokens);
        free(pc->holders[i].hashes);
    }
    free(pc->holders);
    free(pc->scratch);
    free(pc);
}

/* FNV-1a over the previous block's hash and this block's token ids, then a final mix (splitmix64). */
static void block_hashes(const sq_prefix_cache *pc, const int32_t *tokens, int n_blocks, uint64_t *out) {
    uint64_t h = 0xcbf29ce484222325u;
    for (int b = 0; b < n_blocks; b++) {
        for (int i = 0; i < pc->block_size; i++) {
            uint32_t t = (uint32_t)tokens[(size_t)b * pc->block_size + i];
            for (int k = 0; k < 4; k++) h = (h ^ ((t >> (8 * k)) & 0xff)) * 0x100000001b3u;
        }
        uint64_t z = h + 0x9e3779b97f4a7c15u;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        out[b] = h = z ^ (z >> 31);
    }
}

/* Blocks of holder h that match hashes[0..n): the deepest equal hash, confirmed by the tokens. */
static int matching_blocks(const sq_prefix_cache *pc, const sq_prefix_holder *h, const uint64_t *hashes,
                           const int32_t *tokens, int n) {
    int m = n < h->n_blocks ? n : h->n_blocks;
    while (m > 0 && h->hashes[m - 1] != hashes[m - 1]) m--;
    if (m && memcmp(h->tokens, tokens, (size_t)m * pc->block_size * sizeof *tokens)) return 0;
    return m;
}

int sq_prefix_cache_attach(sq_prefix_cache *pc, int seq, const int32_t *tokens, int n) {
    int n_blocks = (n - 1) / pc->block_size;
    if (n_blocks <= 0) return 0;
    block_hashes(pc, tokens, n_blocks, pc->scratch);
    int best = -1, best_blocks = 0;
    for (int i = 0; i < pc->n_holders; i++) {
        int m = matching_blocks(pc, &pc->holders[i], pc->scratch, tokens, n_blocks);
        if (m > best_blocks) best = i, best_blocks = m;
    }
    if (best < 0) return 0;
    sq_error *err = sq_seq_fork(pc->ctx, pc->first_seq + best, seq);
    if (!err) err = sq_seq_truncate(pc->ctx, seq, best_blocks * pc->block_size);
    if (err) { /* ids are the engine's own: cannot fail; fall back to computing */
        sq_error_free(err);
        sq_error_free(sq_seq_truncate(pc->ctx, seq, 0));
        return 0;
    }
    pc->holders[best].last_used = ++pc->clock;
    return best_blocks * pc->block_size;
}

static void empty_holder(sq_prefix_cache *pc, int i) {
    sq_error_free(sq_seq_truncate(pc->ctx, pc->first_seq + i, 0));
    pc->holders[i].n_blocks = 0;
}

int sq_prefix_cache_evict(sq_prefix_cache *pc) {
    int lru = -1;
    for (int i = 0; i < pc->n_holders; i++)
        if (pc->holders[i].n_blocks && (lru < 0 || pc->holders[i].last_used < pc->holders[lru].last_used))
            lru = i;
    if (lru < 0) return 0;
    empty_holder(pc, lru);
    return 1;
}

SQ_NODISCARD sq_error *sq_prefix_cache_insert(sq_prefix_cache *pc, int seq, const int32_t *tokens, int n) {
    int n_blocks = n / pc->block_size;
    if (n_blocks <= 0 || pc->n_holders == 0) return NULL;
    block_hashes(pc, tokens, n_blocks, pc->scratch);
    int target = -1;
    for (int i = 0; i < pc->n_holders; i++) {
        sq_prefix_holder *h = &pc->holders[i];
        int m = matching_blocks(pc, h, pc->scratch, tokens, n_blocks);
        if (m == n_blocks) { /* held already (perhaps as part of a longer prefix) */
            h->last_used = ++pc->clock;
            return NULL;
        }
        if (m == h->n_blocks && m > 0) target = i; /* a shorter prefix of ours: extend it in place */
    }
    if (target < 0)
        for (int i = 0; i < pc->n_holders && target < 0; i++)
            if (!pc->holders[i].n_blocks) target = i;
    if (target < 0) {
        sq_prefix_cache_evict(pc);
        for (int i = 0; i < pc->n_holders && target < 0; i++)
            if (!pc->holders[i].n_blocks) target = i;
    }
    sq_prefix_holder *h = &pc->holders[target];
    if (!h->tokens) {
        h->tokens = malloc((size_t)pc->max_blocks * pc->block_size * sizeof *h->tokens);
        h->hashes = malloc((size_t)pc->max_blocks * sizeof *h->hashes);
        if (!h->tokens || !h->hashes) return sq_errorf(SQ_ERR_NOMEM, "prefix cache: out of memory");
    }
    int hs = pc->first_seq + target;
    SQ_TRY(sq_seq_fork(pc->ctx, seq, hs));
    SQ_TRY(sq_seq_truncate(pc->ctx, hs, n_blocks * pc->block_size));
    memcpy(h->tokens, tokens, (size_t)n_blocks * pc->block_size * sizeof *tokens);
    memcpy(h->hashes, pc->scratch, (size_t)n_blocks * sizeof *h->hashes);
    h->n_blocks = n_blocks;
    h->last_used = ++pc->clock;
    return NULL;
}
