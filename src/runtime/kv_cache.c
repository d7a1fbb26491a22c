/* The paged KV cache and its block manager (see kv_cache.h). */
#include "runtime/kv_cache.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void sq_kv_cache_free(sq_kv_cache *c) {
    if (!c) return;
    for (int l = 0; c->k && l < c->n_layers; l++) c->backend->free(c->backend->impl, c->k[l]);
    for (int l = 0; c->v && l < c->n_layers; l++) c->backend->free(c->backend->impl, c->v[l]);
    free(c->k);
    free(c->v);
    free(c->kv_dim);
    free(c->row_bytes);
    free(c->block_table);
    if (c->block_table_dev) c->backend->free(c->backend->impl, c->block_table_dev);
    free(c->table_sent);
    free(c->n_held);
    free(c->seq_len);
    free(c->refcount);
    free(c->free_list);
    free(c->writers);
    free(c->seq_mark);
    free(c);
}

/* Sizes the pool: bytes per row and per block, block count from the budget. */
static SQ_NODISCARD sq_error *plan(sq_kv_cache *c, const sq_kv_cache_params *p) {
    for (int l = 0; l < c->n_layers; l++) {
        if (p->kv_dim[l] <= 0)
            return sq_errorf(SQ_ERR_INVALID_ARG, "KV cache: layer %d has rows of %d values", l, p->kv_dim[l]);
        if (!(c->row_bytes[l] = sq_row_bytes(c->row_type, p->kv_dim[l])))
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "KV cache: layer %d has rows of %d values, not whole %d-value blocks of %s", l,
                             p->kv_dim[l], (int)sq_dtype_info(c->row_type)->block_elems,
                             sq_dtype_info(c->row_type)->name);
        c->kv_dim[l] = p->kv_dim[l];
        size_t layer_block;
        if (__builtin_mul_overflow(c->row_bytes[l], (size_t)2 * c->block_size, &layer_block) ||
            __builtin_add_overflow(c->block_bytes, layer_block, &c->block_bytes))
            return sq_errorf(SQ_ERR_NOMEM, "KV cache: a block of %d positions is too large", c->block_size);
    }
    size_t full = (size_t)c->n_seq * (size_t)c->max_blocks, n = full;
    if (p->mem_bytes) {
        n = p->mem_bytes / c->block_bytes;
        if (n < 1)
            return sq_errorf(
                SQ_ERR_INVALID_ARG,
                "KV cache: a budget of %zu bytes cannot hold one block (%d positions x %d layers "
                "take %zu bytes)",
                p->mem_bytes, c->block_size, c->n_layers, c->block_bytes);
        if (n < (size_t)c->max_blocks)
            return sq_errorf(
                SQ_ERR_INVALID_ARG,
                "KV cache: a budget of %zu bytes holds %zu blocks of %d positions, but one sequence "
                "of the %d-position context needs %d (%zu bytes)",
                p->mem_bytes, n, c->block_size, c->n_ctx, c->max_blocks,
                (size_t)c->max_blocks * c->block_bytes);
        if (n > full) n = full;
    }
    if (n > INT32_MAX)
        return sq_errorf(SQ_ERR_NOMEM, "KV cache: %zu blocks of %d positions are too many", n, c->block_size);
    c->n_blocks = (int)n;
    return NULL;
}

sq_error *sq_kv_cache_create(const sq_backend *backend, const sq_kv_cache_params *p, sq_kv_cache **out) {
    *out = NULL;
    int bs = p->block_size ? p->block_size : SQ_KV_DEFAULT_BLOCK_SIZE;
    if (p->n_layers <= 0 || p->n_ctx <= 0 || p->n_seq <= 0 || bs < 0 || bs > SQ_KV_MAX_BLOCK_SIZE)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "KV cache: invalid size (%d layers, %d positions, %d sequences, blocks of %d)",
                         p->n_layers, p->n_ctx, p->n_seq, bs);
    if ((unsigned)p->row_type >= SQ_DTYPE_COUNT || !sq_kv_row_type_valid(p->row_type))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "KV cache: rows of type %s are not supported (f32, f16, q8_0, q4_0)",
                         (unsigned)p->row_type < SQ_DTYPE_COUNT ? sq_dtype_info(p->row_type)->name : "?");
    sq_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return sq_errorf(SQ_ERR_NOMEM, "KV cache: out of memory");
    c->backend = backend;
    c->n_layers = p->n_layers;
    c->n_seq = p->n_seq;
    c->n_ctx = p->n_ctx;
    c->block_size = bs;
    c->max_blocks = (int)(((int64_t)p->n_ctx + bs - 1) / bs);
    c->row_type = p->row_type;
    c->kv_dim = calloc((size_t)c->n_layers, sizeof *c->kv_dim);
    c->row_bytes = calloc((size_t)c->n_layers, sizeof *c->row_bytes);
    c->k = calloc((size_t)c->n_layers, sizeof *c->k);
    c->v = calloc((size_t)c->n_layers, sizeof *c->v);
    if (!c->kv_dim || !c->row_bytes || !c->k || !c->v) goto oom;
    sq_error *err = plan(c, p);
    if (err) {
        sq_kv_cache_free(c);
        return err;
    }
    size_t n_seq = (size_t)c->n_seq, n_blocks = (size_t)c->n_blocks;
    c->block_table = malloc(n_seq * (size_t)c->max_blocks * sizeof *c->block_table);
    c->n_held = calloc(n_seq, sizeof *c->n_held);
    c->seq_len = calloc(n_seq, sizeof *c->seq_len);
    c->seq_mark = calloc(n_seq, sizeof *c->seq_mark);
    c->refcount = calloc(n_blocks, sizeof *c->refcount);
    c->writers = calloc(n_blocks, sizeof *c->writers);
    c->free_list = malloc(n_blocks * sizeof *c->free_list);
    if (!c->block_table || !c->n_held || !c->seq_len || !c->seq_mark || !c->refcount || !c->writers ||
        !c->free_list)
        goto oom;
    for (int l = 0; l < c->n_layers; l++) {
        size_t pool = n_blocks * (size_t)c->block_size * c->row_bytes[l]; /* <= the budget: no overflow */
        c->k[l] = backend->alloc(backend->impl, pool);
        c->v[l] = backend->alloc(backend->impl, pool);
        if (!c->k[l] || !c->v[l]) goto oom;
    }
    const size_t table_bytes = n_seq * (size_t)c->max_blocks * sizeof *c->block_table;
    if (!backend->host_memory) {
        c->block_table_dev = backend->alloc(backend->impl, table_bytes);
        c->table_sent = malloc(table_bytes);
        if (!c->block_table_dev || !c->table_sent) goto oom;
    }
    for (size_t i = 0; i < n_seq * (size_t)c->max_blocks; i++) c->block_table[i] = -1;
    if (c->table_sent) {
        memcpy(c->table_sent, c->block_table, table_bytes);
        backend->upload(backend->impl, c->block_table_dev, c->block_table, table_bytes);
    }
    for (int i = 0; i < c->n_blocks; i++)
        c->free_list[i] = c->n_blocks - 1 - i; /* popped from the end: handed out in ascending order */
    c->n_free = c->n_blocks;
    *out = c;
    return NULL;
oom:;
    size_t total = c->n_blocks ? sq_kv_cache_bytes(c) : 0;
    int n_blocks_planned = c->n_blocks;
    sq_kv_cache_free(c);
    return sq_errorf(SQ_ERR_NOMEM, "KV cache: cannot allocate %d blocks of %d positions (%zu bytes)",
                     n_blocks_planned, bs, total);
}

size_t sq_kv_cache_bytes(const sq_kv_cache *c) { return (size_t)c->n_blocks * c->block_bytes; }

/* Checks the ids and lengths of one batch; seq_mark is 0 again on return. */
static SQ_NODISCARD sq_error *check_batch(const sq_kv_cache *c, const int *seq_ids, const int *new_len,
                                          int n) {
    if (n < 0 || (n > 0 && (!seq_ids || !new_len)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "KV cache: invalid list of %d sequences", n);
    sq_error *err = NULL;
    int i = 0;
    for (; i < n && !err; i++) {
        int s = seq_ids[i];
        if (s < 0 || s >= c->n_seq)
            err = sq_errorf(SQ_ERR_INVALID_ARG, "KV cache: sequence id %d is outside 0..%d", s, c->n_seq - 1);
        else if (c->seq_mark[s])
            err = sq_errorf(SQ_ERR_INVALID_ARG, "KV cache: sequence %d is listed twice", s);
        else if (new_len[i] < c->seq_len[s] || new_len[i] > c->n_ctx)
            err = sq_errorf(SQ_ERR_INVALID_ARG,
                            "KV cache: sequence %d cannot grow from %d to %d positions (context of %d)", s,
                            c->seq_len[s], new_len[i], c->n_ctx);
        else
            c->seq_mark[s] = 1;
    }
    for (int j = 0; j < i; j++)
        if (seq_ids[j] >= 0 && seq_ids[j] < c->n_seq) c->seq_mark[seq_ids[j]] = 0;
    return err;
}

/* Block-table entries that the new slots [seq_len, new_len) of seq fall in: [*first, *end). */
static void written_blocks(const sq_kv_cache *c, int seq, int new_len, int *first, int *end) {
    *first = c->seq_len[seq] / c->block_size;
    *end = new_len > c->seq_len[seq] ? (new_len - 1) / c->block_size + 1 : *first;
}

sq_error *sq_kv_cache_blocks_needed(const sq_kv_cache *c, const int *seq_ids, const int *new_len, int n,
                                    int *n_blocks) {
    *n_blocks = 0;
    SQ_TRY(check_batch(c, seq_ids, new_len, n));
    long need = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *table = c->block_table + (size_t)seq_ids[i] * c->max_blocks;
        int first, end;
        written_blocks(c, seq_ids[i], new_len[i], &first, &end);
        for (int b = first; b < end; b++) {
            if (b >= c->n_held[seq_ids[i]])
                need++;
            else if (c->refcount[table[b]] > 1)
                c->writers[table[b]]++;
        }
    }
    /* a second pass over the same blocks adds each shared block's copies once and clears the scratch */
    for (int i = 0; i < n; i++) {
        const int32_t *table = c->block_table + (size_t)seq_ids[i] * c->max_blocks;
        int first, end;
        written_blocks(c, seq_ids[i], new_len[i], &first, &end);
        for (int b = first; b < end && b < c->n_held[seq_ids[i]]; b++) {
            int w = c->writers[table[b]], copies = c->refcount[table[b]] - 1;
            need += w < copies ? w : copies;
            c->writers[table[b]] = 0;
        }
    }
    *n_blocks = (int)need; /* at most n_seq * max_blocks, which plan() bounds by INT32_MAX */
    return NULL;
}

static int32_t take_block(sq_kv_cache *c) {
    int32_t b = c->free_list[--c->n_free];
    c->refcount[b] = 1;
    return b;
}

static void drop_block(sq_kv_cache *c, int32_t b) {
    assert(c->refcount[b] > 0);
    if (--c->refcount[b] == 0) c->free_list[c->n_free++] = b;
}

/* Copies the first n_rows rows of block src into block dst in every layer's pools. */
static void copy_rows(sq_kv_cache *c, int32_t dst, int32_t src, int n_rows) {
    const sq_backend *be = c->backend;
    for (int l = 0; l < c->n_layers; l++) {
        size_t block = (size_t)c->block_size * c->row_bytes[l], n = (size_t)n_rows * c->row_bytes[l];
        be->copy(be->impl, c->k[l] + dst * block, c->k[l] + src * block, n);
        be->copy(be->impl, c->v[l] + dst * block, c->v[l] + src * block, n);
    }
}

/* Gives seq a private copy of its shared block b (table entry), keeping the block's first n_rows rows. */
static void copy_on_write(sq_kv_cache *c, int seq, int b, int n_rows) {
    int32_t *entry = c->block_table + (size_t)seq * c->max_blocks + b;
    int32_t copy = take_block(c);
    copy_rows(c, copy, *entry, n_rows);
    drop_block(c, *entry);
    *entry = copy;
}

sq_error *sq_kv_cache_reserve(sq_kv_cache *c, const int *seq_ids, const int *new_len, int n) {
    int need;
    SQ_TRY(sq_kv_cache_blocks_needed(c, seq_ids, new_len, n, &need));
    if (need > c->n_free)
        return sq_errorf(SQ_ERR_NOMEM,
                         "KV cache: a batch of %d sequence%s needs %d blocks, %d free (of %d blocks of %d "
                         "positions)",
                         n, n == 1 ? "" : "s", need, c->n_free, c->n_blocks, c->block_size);
    for (int i = 0; i < n; i++) {
        int s = seq_ids[i], first, end;
        int32_t *table = c->block_table + (size_t)s * c->max_blocks;
        written_blocks(c, s, new_len[i], &first, &end);
        for (int b = first; b < end; b++) {
            if (b >= c->n_held[s]) {
                table[b] = take_block(c);
                c->n_held[s] = b + 1;
            } else if (c->refcount[table[b]] > 1) {
                /* only the block holding slot seq_len can be shared and written: it has committed rows
                 * [b * block_size, seq_len) to keep */
                copy_on_write(c, s, b, c->seq_len[s] - b * c->block_size);
            }
        }
    }
    return NULL;
}

sq_error *sq_kv_cache_make_private(sq_kv_cache *c, int seq, int first, int end) {
    if (first < 0 || first > end || end > c->seq_len[seq])
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "KV cache: slots %d..%d of sequence %d are not all committed (%d)", first, end, seq,
                         c->seq_len[seq]);
    const int32_t *table = c->block_table + (size_t)seq * c->max_blocks;
    const int b0 = first / c->block_size, b1 = end > first ? (end - 1) / c->block_size + 1 : b0;
    int need = 0;
    for (int b = b0; b < b1; b++) need += c->refcount[table[b]] > 1;
    if (need > c->n_free)
        return sq_errorf(SQ_ERR_NOMEM,
                         "KV cache: rewriting slots %d..%d of sequence %d needs %d blocks, %d free", first,
                         end, seq, need, c->n_free);
    for (int b = b0; b < b1; b++) {
        if (c->refcount[table[b]] == 1) continue;
        int rows = c->seq_len[seq] - b * c->block_size; /* the block's committed rows */
        copy_on_write(c, seq, b, rows < c->block_size ? rows : c->block_size);
    }
    return NULL;
}

void sq_kv_cache_sync_table(sq_kv_cache *c) {
    if (!c->table_sent) return;
    const size_t bytes = (size_t)c->n_seq * c->max_blocks * sizeof *c->block_table;
    if (!memcmp(c->table_sent, c->block_table, bytes)) return;
    memcpy(c->table_sent, c->block_table, bytes);
    c->backend->upload(c->backend->impl, c->block_table_dev, c->block_table, bytes);
}

void sq_kv_cache_view(const sq_kv_cache *c, int layer, sq_kv_view *out) {
    *out = (sq_kv_view){.k = c->k[layer],
                        .v = c->v[layer],
                        .block_table = c->block_table_dev ? c->block_table_dev : c->block_table,
                        .max_blocks = c->max_blocks,
                        .block_size = c->block_size,
                        .row_bytes = c->row_bytes[layer],
                        .row_type = c->row_type,
                        .kv_dim = c->kv_dim[layer]};
}

int sq_kv_cache_seq_len(const sq_kv_cache *c, int seq) { return c->seq_len[seq]; }

void sq_kv_cache_set_seq_len(sq_kv_cache *c, int seq, int len) {
    assert(len >= 0 && len <= c->n_held[seq] * c->block_size);
    c->seq_len[seq] = len;
}

void sq_kv_cache_truncate(sq_kv_cache *c, int seq, int new_len) {
    int32_t *table = c->block_table + (size_t)seq * c->max_blocks;
    int keep = (int)(((int64_t)new_len + c->block_size - 1) / c->block_size);
    for (int b = keep; b < c->n_held[seq]; b++) {
        drop_block(c, table[b]);
        table[b] = -1;
    }
    if (c->n_held[seq] > keep) c->n_held[seq] = keep;
    if (c->seq_len[seq] > new_len) c->seq_len[seq] = new_len;
}

void sq_kv_cache_fork(sq_kv_cache *c, int src, int dst) {
    if (src == dst) return;
    sq_kv_cache_truncate(c, dst, 0);
    const int32_t *from = c->block_table + (size_t)src * c->max_blocks;
    int32_t *to = c->block_table + (size_t)dst * c->max_blocks;
    int n = (c->seq_len[src] + c->block_size - 1) / c->block_size;
    for (int b = 0; b < n; b++) {
        to[b] = from[b];
        c->refcount[from[b]]++;
    }
    c->n_held[dst] = n;
    c->seq_len[dst] = c->seq_len[src];
}
