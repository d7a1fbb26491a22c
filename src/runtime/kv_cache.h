/* The key/value cache: paged blocks of positions, a block table per sequence.
 *
 * Each layer's keys and values live in fixed-size blocks of `block_size` positions; a sequence owns a list of
 * blocks (its block table) and kernels read position p of a sequence through that table (sq_kv_view). Serving
 * (many sequences, prefix sharing with reference counts) and quantized K/V build on the same table without
 * changing the kernels' view. */
#ifndef SQ_RUNTIME_KV_CACHE_H
#define SQ_RUNTIME_KV_CACHE_H

#include <stddef.h>

#include "kernels/backend.h"
#include "squeeze.h"

typedef struct sq_kv_cache {
    const sq_backend *be; /* whose memory holds the pools */
    int n_layers, n_seq, n_ctx, block_size, n_blocks, blocks_per_seq;
    int *kv_dim;          /* per layer: n_kv_heads * head_dim of that layer */
    uint8_t **k, **v;     /* per layer: [n_blocks][block_size][kv_dim] f32 */
    int *seq_len;         /* cached positions per sequence */
    int32_t *block_table; /* [n_seq][blocks_per_seq]: block ids, -1 where none is assigned */
    int *free_blocks;
    int n_free;
} sq_kv_cache;

/* Capacity: n_ctx positions for each of n_seq sequences; the pools in be's memory (be outlives the cache). */
sq_error *sq_kv_cache_create(const sq_backend *be, int n_layers, const int *kv_dim, int n_ctx, int n_seq,
                             sq_kv_cache **out);
void sq_kv_cache_free(sq_kv_cache *c);
size_t sq_kv_cache_bytes(const sq_kv_cache *c);

/* all-or-nothing: gives every listed sequence blocks for slots [0, new_len[i]), or changes nothing and
 * returns an error naming the shortfall. */
sq_error *sq_kv_cache_reserve(sq_kv_cache *c, const int *seq_ids, const int *new_len, int n);
void sq_kv_cache_view(const sq_kv_cache *c, int layer, sq_kv_view *out);
int sq_kv_cache_seq_len(const sq_kv_cache *c, int seq);         /* committed slots */
void sq_kv_cache_set_seq_len(sq_kv_cache *c, int seq, int len); /* commit after a forward pass */
/* Forgets positions >= new_len and returns whole blocks past them to the free list. */
void sq_kv_cache_truncate(sq_kv_cache *c, int seq, int new_len);

#endif
