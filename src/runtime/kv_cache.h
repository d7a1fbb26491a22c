/* The key/value cache: one pool of fixed-size blocks shared by all sequences, as in vLLM's PagedAttention
 * (Kwon et al., 2023, "Efficient Memory Management for Large Language Model Serving with PagedAttention").
 *
 * Each layer has a key pool and a value pool of n_blocks blocks of block_size rows, allocated through a
 * backend's alloc/free. A block id names the same slots in every layer's pools, so one block table per
 * sequence serves all layers. The pool is sized by memory (a byte budget divided by the bytes one block takes
 * across all layers), not by sequences x context: sequences take blocks as they grow and give them back when
 * truncated, so a server admits requests while blocks are free (sq_kv_cache_blocks_needed against n_free).
 *
 * Blocks carry reference counts: fork makes one sequence share all of another's blocks (prefix sharing,
 * parallel sampling), and reserve copies a shared block before a new row is written into it (copy-on-write),
 * through the backend's copy. Rows are typed (f32, f16; quantized rows come with KV quantization): nothing
 * here assumes an element size, only row_bytes.
 *
 * Lifecycle of a forward call: reserve every sequence of the batch at once (all or nothing), write the new
 * rows through sq_kv_cache_view, then commit the new lengths with sq_kv_cache_set_seq_len. Not thread-safe:
 * one caller at a time (the context's). */
#ifndef SQ_RUNTIME_KV_CACHE_H
#define SQ_RUNTIME_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "squeeze.h"

/* 16 positions a block (vLLM's default): small enough that a partly filled last block and copy-on-write waste
 * little, large enough to keep a block's rows contiguous. */
#define SQ_KV_DEFAULT_BLOCK_SIZE 16
#define SQ_KV_MAX_BLOCK_SIZE     65536

typedef struct sq_kv_cache_params {
    int n_layers;
    const int *kv_dim; /* [n_layers] n_kv_heads * head_dim of each layer (layers may differ after pruning) */
    int n_ctx;         /* positions one sequence may hold */
    int n_seq;         /* sequence ids 0 .. n_seq-1 */
    int block_size;    /* positions per block, 1 .. SQ_KV_MAX_BLOCK_SIZE; 0: SQ_KV_DEFAULT_BLOCK_SIZE */
    sq_dtype row_type; /* sq_kv_row_type_valid: f32, f16, q8_0, q4_0 */
    size_t mem_bytes;  /* budget for the pools of all layers; 0: n_seq sequences of n_ctx positions. Capped at
                          that: more blocks could never be held at once. */
} sq_kv_cache_params;

typedef struct sq_kv_cache {
    const sq_backend *backend; /* borrowed: the pools live in its memory */
    int n_layers, n_seq, n_ctx;
    int block_size, n_blocks;
    int max_blocks; /* block-table entries per sequence: ceil(n_ctx / block_size) */
    sq_dtype row_type;
    size_t block_bytes;   /* bytes one block takes in the key and value pools of all layers */
    int *kv_dim;          /* [n_layers] */
    size_t *row_bytes;    /* [n_layers] bytes of one row of that layer */
    uint8_t **k, **v;     /* [n_layers] pools, each [n_blocks][block_size][row_bytes[layer]] */
    int32_t *block_table; /* [n_seq][max_blocks] block ids; entries n_held[s] .. max_blocks-1 are -1 */
    int *n_held;          /* [n_seq] blocks each sequence holds (its first n_held table entries) */
    int *seq_len;         /* [n_seq] committed slots; ceil(seq_len / block_size) <= n_held */
    int *refcount;        /* [n_blocks] table entries naming each block; 0: the block is free */
    int32_t *free_list;   /* [n_blocks] free block ids, a stack of n_free */
    int n_free;
    int *writers;  /* [n_blocks] scratch of the block count: batch writers of each shared block; 0 between
                      calls */
    int *seq_mark; /* [n_seq] scratch of argument checks: 1 while a sequence is listed; 0 between calls */
    /* A backend without host memory reads the table from its own: block_table_dev [n_seq][max_blocks] (in
     * the backend's memory) holds what sq_kv_cache_sync_table last uploaded, table_sent [n_seq][max_blocks]
     * (host) the same, to upload only changes. Both NULL with host memory. */
    int32_t *block_table_dev, *table_sent;
} sq_kv_cache;

/* Allocates the pools through backend->alloc. Errors: SQ_ERR_INVALID_ARG for bad sizes, an unsupported row
 * type, or a budget that cannot hold one block or one sequence of n_ctx positions (the message says how many
 * bytes those take); SQ_ERR_NOMEM when the backend's memory runs out. */
SQ_NODISCARD sq_error *sq_kv_cache_create(const sq_backend *backend, const sq_kv_cache_params *params,
                                          sq_kv_cache **out);
void sq_kv_cache_free(sq_kv_cache *c);
/* Brings a device backend's copy of the block table up to date (queued like any upload); a no-op with host
 * memory. Call before operations read views after the table changed (reserve, truncate, fork, copy). */
void sq_kv_cache_sync_table(sq_kv_cache *c);
/* Bytes of the key and value pools of all layers: n_blocks * block_bytes. */
size_t sq_kv_cache_bytes(const sq_kv_cache *c);

/* Blocks that reserving seq_ids[i] up to new_len[i] slots (i < n) would take from the free list: blocks for
 * slots no held block covers, plus one copy of each shared block a new slot falls in (a block shared by r
 * sequences of which w write into it needs min(w, r-1) copies: the last writer keeps the original). Errors
 * (SQ_ERR_INVALID_ARG): a sequence id outside 0..n_seq-1 or listed twice, new_len below the committed length
 * or above n_ctx. */
SQ_NODISCARD sq_error *sq_kv_cache_blocks_needed(const sq_kv_cache *c, const int *seq_ids, const int *new_len,
                                                 int n, int *n_blocks);
/* all-or-nothing: gives every listed sequence private (refcount 1) blocks for slots [0, new_len[i]) —
 * allocating missing blocks and copying shared blocks that the new slots will write (copy-on-write) — or
 * changes nothing and returns an error naming the shortfall (SQ_ERR_NOMEM, "KV cache: ... needs N blocks,
 * M free"). Committed slots below seq_len whose blocks no new slot writes stay shared: only blocks that slots
 * [seq_len, new_len) fall in are made private. Argument errors as sq_kv_cache_blocks_needed. */
SQ_NODISCARD sq_error *sq_kv_cache_reserve(sq_kv_cache *c, const int *seq_ids, const int *new_len, int n);
/* Makes the blocks that committed slots [first, end) of seq fall in private, copying each shared one
 * (copy-on-write), so that rows there can be rewritten in place: keeping a token tree's path moves its rows
 * to lower slots (kv_copy). All or nothing: SQ_ERR_NOMEM ("KV cache: ... needs N blocks, M free") changes
 * nothing; SQ_ERR_INVALID_ARG unless 0 <= first <= end <= seq_len. seq must be valid. */
SQ_NODISCARD sq_error *sq_kv_cache_make_private(sq_kv_cache *c, int seq, int first, int end);
/* Layer `layer`'s pools and the block tables, for the kernels. Valid until the next reserve, truncate or
 * fork.
 */
void sq_kv_cache_view(const sq_kv_cache *c, int layer, sq_kv_view *out);
int sq_kv_cache_seq_len(const sq_kv_cache *c, int seq);         /* committed slots */
void sq_kv_cache_set_seq_len(sq_kv_cache *c, int seq, int len); /* commit after a forward pass; len must lie
                                                                    within the slots reserved for seq */
/* Forgets slots >= new_len (committed or only reserved) and drops the sequence's references to whole blocks
 * past them; a block whose count reaches 0 is free again. seq must be valid; new_len >= 0. */
void sq_kv_cache_truncate(sq_kv_cache *c, int seq, int new_len);
/* dst drops what it held and then shares every block of src's committed slots (reference counts up); its
 * length becomes src's. Takes no free block: the first write into a shared block copies it (reserve). Both
 * ids must be valid; src == dst changes nothing. */
void sq_kv_cache_fork(sq_kv_cache *c, int src, int dst);

#endif
