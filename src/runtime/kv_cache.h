/* The key/value cache: paged blocks of positions, a block table per sequence.
 *
 * Each layer's keys and values live in fixed-size blocks of `block_size` positions; a sequence owns a list of
 * blocks (its block table) and attention reads position p of a sequence through that table. A single run is
 * the case of one sequence; serving (many sequences, prefix sharing with reference counts) and quantized K/V
 * build on the same table without changing the attention kernels' view: sq_kv_key/sq_kv_value give a row
 * pointer. */
#ifndef SQ_RUNTIME_KV_CACHE_H
#define SQ_RUNTIME_KV_CACHE_H

#include <stddef.h>

#include "squeeze.h"

typedef struct sq_kv_cache {
    int n_layers, n_seq, n_ctx, block_size, n_blocks, blocks_per_seq;
    int *kv_dim;      /* per layer: n_kv_heads * head_dim of that layer */
    float **k, **v;   /* per layer: [n_blocks][block_size][kv_dim] */
    int *seq_len;     /* cached positions per sequence */
    int *block_table; /* [n_seq][blocks_per_seq]: block ids, -1 where none is assigned */
    int *free_blocks;
    int n_free;
} sq_kv_cache;

/* Capacity: n_ctx positions for each of n_seq sequences. */
SQ_NODISCARD sq_error *sq_kv_cache_create(int n_layers, const int *kv_dim, int n_ctx, int n_seq,
                                          sq_kv_cache **out);
void sq_kv_cache_free(sq_kv_cache *c);
size_t sq_kv_cache_bytes(const sq_kv_cache *c);

/* Makes sure positions [0, new_len) of seq have blocks. */
SQ_NODISCARD sq_error *sq_kv_cache_reserve(sq_kv_cache *c, int seq, int new_len);
/* Forgets positions >= new_len and returns whole blocks past them to the free list. */
void sq_kv_cache_truncate(sq_kv_cache *c, int seq, int new_len);

static inline float *sq_kv_row(const sq_kv_cache *c, float *const *base, int layer, int seq, int pos) {
    int block = c->block_table[seq * c->blocks_per_seq + pos / c->block_size];
    return base[layer] + ((size_t)block * c->block_size + (size_t)(pos % c->block_size)) * c->kv_dim[layer];
}
static inline float *sq_kv_key(const sq_kv_cache *c, int layer, int seq, int pos) {
    return sq_kv_row(c, c->k, layer, seq, pos);
}
static inline float *sq_kv_value(const sq_kv_cache *c, int layer, int seq, int pos) {
    return sq_kv_row(c, c->v, layer, seq, pos);
}

#endif
