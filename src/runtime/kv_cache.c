#include "runtime/kv_cache.h"

#include <stdlib.h>

#include "core/error.h"

/* 16 positions a block: small enough that prefix sharing wastes little, large enough to keep rows contiguous.
 */
#define KV_BLOCK_SIZE 16

void sq_kv_cache_free(sq_kv_cache *c) {
    if (!c) return;
    for (int l = 0; c->k && l < c->n_layers; l++) c->be->free(c->be->impl, c->k[l]);
    for (int l = 0; c->v && l < c->n_layers; l++) c->be->free(c->be->impl, c->v[l]);
    free(c->k);
    free(c->v);
    free(c->kv_dim);
    free(c->seq_len);
    free(c->block_table);
    free(c->free_blocks);
    free(c);
}

sq_error *sq_kv_cache_create(const sq_backend *be, int n_layers, const int *kv_dim, int n_ctx, int n_seq,
                             sq_kv_cache **out) {
    *out = NULL;
    if (n_layers <= 0 || n_ctx <= 0 || n_seq <= 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "KV cache: invalid size (%d layers, %d positions, %d sequences)",
                         n_layers, n_ctx, n_seq);
    sq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return sq_errorf(SQ_ERR_NOMEM, "KV cache: out of memory");
    c->be = be;
    c->n_layers = n_layers;
    c->n_seq = n_seq;
    c->n_ctx = n_ctx;
    c->block_size = KV_BLOCK_SIZE;
    c->blocks_per_seq = (n_ctx + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE;
    c->n_blocks = c->blocks_per_seq * n_seq;
    c->kv_dim = malloc((size_t)n_layers * sizeof *c->kv_dim);
    c->k = calloc((size_t)n_layers, sizeof *c->k);
    c->v = calloc((size_t)n_layers, sizeof *c->v);
    c->seq_len = calloc((size_t)n_seq, sizeof *c->seq_len);
    c->block_table = malloc((size_t)c->n_blocks * sizeof *c->block_table);
    c->free_blocks = malloc((size_t)c->n_blocks * sizeof *c->free_blocks);
    if (!c->kv_dim || !c->k || !c->v || !c->seq_len || !c->block_table || !c->free_blocks) goto oom;
    for (int l = 0; l < n_layers; l++) {
        c->kv_dim[l] = kv_dim[l];
        size_t n = (size_t)c->n_blocks * KV_BLOCK_SIZE * (size_t)kv_dim[l];
        c->k[l] = be->alloc(be->impl, n * sizeof(float));
        c->v[l] = be->alloc(be->impl, n * sizeof(float));
        if (!c->k[l] || !c->v[l]) goto oom;
    }
    for (int i = 0; i < c->n_blocks; i++) {
        c->block_table[i] = -1;
        c->free_blocks[i] = c->n_blocks - 1 - i; /* pop from the end: blocks are handed out in order */
    }
    c->n_free = c->n_blocks;
    *out = c;
    return NULL;
oom:
    sq_kv_cache_free(c);
    return sq_errorf(SQ_ERR_NOMEM, "KV cache: cannot allocate %d positions x %d sequences x %d layers", n_ctx,
                     n_seq, n_layers);
}

size_t sq_kv_cache_bytes(const sq_kv_cache *c) {
    size_t n = 0;
    for (int l = 0; l < c->n_layers; l++)
        n += 2 * (size_t)c->n_blocks * c->block_size * c->kv_dim[l] * sizeof(float);
    return n;
}

sq_error *sq_kv_cache_reserve(sq_kv_cache *c, const int *seq_ids, const int *new_len, int n) {
    int needed = 0;
    for (int i = 0; i < n; i++) {
        if (new_len[i] > c->n_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG, "sequence %d would hold %d tokens but the context holds %d",
                             seq_ids[i], new_len[i], c->n_ctx);
        const int32_t *table = c->block_table + (size_t)seq_ids[i] * c->blocks_per_seq;
        for (int b = 0; b * c->block_size < new_len[i]; b++) needed += table[b] < 0;
    }
    if (needed > c->n_free)
        return sq_errorf(SQ_ERR_NOMEM, "KV cache: the batch needs %d blocks, %d free", needed, c->n_free);
    for (int i = 0; i < n; i++) {
        int32_t *table = c->block_table + (size_t)seq_ids[i] * c->blocks_per_seq;
        for (int b = 0; b * c->block_size < new_len[i]; b++)
            if (table[b] < 0) table[b] = c->free_blocks[--c->n_free];
    }
    return NULL;
}

void sq_kv_cache_view(const sq_kv_cache *c, int layer, sq_kv_view *out) {
    *out = (sq_kv_view){.k = c->k[layer],
                        .v = c->v[layer],
                        .block_table = c->block_table,
                        .max_blocks = c->blocks_per_seq,
                        .block_size = c->block_size,
                        .row_bytes = (size_t)c->kv_dim[layer] * sizeof(float),
                        .row_type = SQ_DTYPE_F32,
                        .kv_dim = c->kv_dim[layer]};
}

int sq_kv_cache_seq_len(const sq_kv_cache *c, int seq) { return c->seq_len[seq]; }
void sq_kv_cache_set_seq_len(sq_kv_cache *c, int seq, int len) { c->seq_len[seq] = len; }

void sq_kv_cache_truncate(sq_kv_cache *c, int seq, int new_len) {
    int32_t *table = c->block_table + (size_t)seq * c->blocks_per_seq;
    int keep = (new_len + c->block_size - 1) / c->block_size;
    for (int b = keep; b < c->blocks_per_seq; b++) {
        if (table[b] < 0) continue;
        c->free_blocks[c->n_free++] = table[b];
        table[b] = -1;
    }
    if (c->seq_len[seq] > new_len) c->seq_len[seq] = new_len;
}
