/* The paged KV cache's block manager (src/runtime/kv_cache.c) against an independent shadow model kept here.
 *
 * Long random mixes of reserve (batches of sequences, all or nothing), commit, truncate, fork, rewriting
 * committed slots (make_private, as keeping a token tree's path does) and clearing run against the cache and
 * the shadow side by side. The shadow knows, per sequence, which abstract block
 * each table entry names (its own ids, never reused), the reference count of each, and the tag of the row
 * written at every committed slot. After every operation the cache must agree: the same sharing structure (a
 * one-to-one map between shadow ids and physical blocks), reference counts, free list (no leak, no double
 * free, no duplicate), lengths, and every sequence reads exactly its own history through the block table,
 * addressed here with the interface's formula, in every layer's key and value pools. Rows are written through
 * the CPU backend's kv_store and read back with a half decoder written here, for f32 and f16 rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#include "kernels/backend.h"
#include "runtime/kv_cache.h"

/* ---------------------------------------------------------------- a CPU backend that counts */

/* Wraps the CPU backend's memory half: live allocations (a leak check of the pools), copies (copy-on-write
 * goes through the backend) and an allocation that fails on demand. */
typedef struct counting_backend {
    sq_backend cpu;
    long live, copies;
    int fail_after; /* allocations that still succeed; -1: all */
} counting_backend;

static void *count_alloc(void *impl, size_t n) {
    counting_backend *cb = impl;
    if (cb->fail_after == 0) return NULL;
    if (cb->fail_after > 0) cb->fail_after--;
    void *p = cb->cpu.alloc(cb->cpu.impl, n);
    cb->live += p != NULL;
    return p;
}
static void count_free(void *impl, void *p) {
    counting_backend *cb = impl;
    cb->live -= p != NULL;
    cb->cpu.free(cb->cpu.impl, p);
}
static void count_copy(void *impl, void *dst, const void *src, size_t n) {
    counting_backend *cb = impl;
    cb->copies++;
    cb->cpu.copy(cb->cpu.impl, dst, src, n);
}
static void count_kv_store(void *impl, const sq_kv_view *kv, const float *k, const float *v,
                           const sq_token_batch *tokens) {
    counting_backend *cb = impl;
    cb->cpu.kv_store(cb->cpu.impl, kv, k, v, tokens);
}

/* Release with sq_backend_destroy(&cb->cpu). */
static sq_backend counting(counting_backend *cb) {
    sq_test_ok(sq_backend_create("cpu", 1, &cb->cpu)); /* the memory half and kv_store use no threads */
    cb->live = cb->copies = 0;
    cb->fail_after = -1;
    sq_backend b = cb->cpu;
    b.impl = cb;
    b.alloc = count_alloc;
    b.free = count_free;
    b.copy = count_copy;
    b.kv_store = count_kv_store;
    return b;
}

/* ---------------------------------------------------------------- rows: tags in, tags out */

static float half_to_float(uint16_t h) { /* IEEE binary16, written independently of core/tensor.c */
    int exp = (h >> 10) & 31, man = h & 1023;
    float v = exp == 0    ? ldexpf((float)man, -24)
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf(man + 1024.f, exp - 25);
    return h >> 15 ? -v : v;
}

/* Element i of the row written with `tag` in layer `layer`, keys (kv 0) or values (kv 1): integers below
 * 2048, exact in f16; the first two elements spell the tag (below 2^20), the rest tell layer and pool apart.
 */
static float row_value(uint32_t tag, int layer, int kv, int i) {
    if (i == 0) return (float)(tag & 1023);
    if (i == 1) return (float)((tag >> 10) & 1023);
    return (float)((tag * 3u + (uint32_t)i * 7u + (uint32_t)layer * 11u + (uint32_t)kv * 13u) % 2048u);
}

/* Element i of slot pos of seq, read from the pools with the interface's address formula. */
static float read_elem(const sq_kv_cache *c, int layer, int kv, int seq, int pos, int i) {
    int32_t block = c->block_table[(size_t)seq * c->max_blocks + pos / c->block_size];
    const uint8_t *pool = kv ? c->v[layer] : c->k[layer];
    const uint8_t *row = pool + ((size_t)block * c->block_size + pos % c->block_size) * c->row_bytes[layer];
    if (c->row_type == SQ_DTYPE_F32) {
        float f;
        memcpy(&f, row + 4 * (size_t)i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * (size_t)i, 2);
    return half_to_float(h);
}

/* ---------------------------------------------------------------- the shadow model */

enum { MAX_SEQ = 8, MAX_CTX = 64, MAX_IDS = 1 << 16 };

typedef struct shadow {
    int n_seq, n_ctx, bs, n_blocks;
    int len[MAX_SEQ], held[MAX_SEQ];
    int blk[MAX_SEQ][MAX_CTX]; /* shadow block id of each held table entry (blocks have >= 1 slot) */
    uint32_t tag[MAX_SEQ][MAX_CTX];
    int ref[MAX_IDS]; /* reference count per shadow id */
    int n_ids, live;  /* ids handed out; ids with a count above 0 */
    long cow;         /* copies made */
    uint32_t next_tag;
} shadow;

static int new_id(shadow *sh) {
    assert_true(sh->n_ids < MAX_IDS);
    sh->ref[sh->n_ids] = 1;
    sh->live++;
    return sh->n_ids++;
}

static void drop_id(shadow *sh, int id) {
    assert_true(sh->ref[id] > 0);
    if (--sh->ref[id] == 0) sh->live--;
}

static void shadow_truncate(shadow *sh, int s, int new_len) {
    int keep = (new_len + sh->bs - 1) / sh->bs;
    for (int b = keep; b < sh->held[s]; b++) drop_id(sh, sh->blk[s][b]);
    if (sh->held[s] > keep) sh->held[s] = keep;
    if (sh->len[s] > new_len) sh->len[s] = new_len;
}

/* Runs a reservation block by block, in list order: a missing block is new; a written block that others
 * still hold is copied (the holder's count drops). With apply == 0 every count is restored afterwards. */
static int shadow_reserve(shadow *sh, const int *ids, const int *new_len, int n, int apply) {
    int need = 0, undo[MAX_SEQ], n_undo = 0;
    for (int i = 0; i < n; i++) {
        int s = ids[i];
        for (int b = sh->len[s] / sh->bs; new_len[i] > sh->len[s] && b * sh->bs < new_len[i]; b++) {
            if (b >= sh->held[s]) {
                need++;
                if (apply) sh->blk[s][b] = new_id(sh), sh->held[s] = b + 1;
            } else if (sh->ref[sh->blk[s][b]] > 1) {
                need++;
                if (apply) {
                    drop_id(sh, sh->blk[s][b]);
                    sh->blk[s][b] = new_id(sh);
                    sh->cow++;
                } else {
                    sh->ref[sh->blk[s][b]]--;
                    undo[n_undo++] = sh->blk[s][b];
                }
            }
        }
    }
    while (n_undo) sh->ref[undo[--n_undo]]++;
    return need;
}

/* Blocks that slots [first, end) of s fall in and others still hold, copied (with apply) or counted. */
static int shadow_make_private(shadow *sh, int s, int first, int end, int apply) {
    int need = 0;
    for (int b = first / sh->bs; first < end && b * sh->bs < end; b++) {
        if (sh->ref[sh->blk[s][b]] == 1) continue;
        need++;
        if (apply) {
            drop_id(sh, sh->blk[s][b]);
            sh->blk[s][b] = new_id(sh);
            sh->cow++;
        }
    }
    return need;
}

static void shadow_fork(shadow *sh, int src, int dst) {
    if (src == dst) return;
    shadow_truncate(sh, dst, 0);
    int n = (sh->len[src] + sh->bs - 1) / sh->bs;
    for (int b = 0; b < n; b++) sh->blk[dst][b] = sh->blk[src][b], sh->ref[sh->blk[src][b]]++;
    sh->held[dst] = n;
    sh->len[dst] = sh->len[src];
    memcpy(sh->tag[dst], sh->tag[src], sizeof sh->tag[src]);
}

/* ---------------------------------------------------------------- cache == shadow */

static void check_agrees(const sq_kv_cache *c, const shadow *sh) {
    static int phys_of[MAX_IDS];
    int *shadow_of = malloc((size_t)c->n_blocks * sizeof *shadow_of);
    assert_non_null(shadow_of);
    for (int i = 0; i < sh->n_ids; i++) phys_of[i] = -1;
    for (int b = 0; b < c->n_blocks; b++) shadow_of[b] = -1;
    for (int s = 0; s < sh->n_seq; s++) {
        assert_int_equal(c->seq_len[s], sh->len[s]);
        assert_int_equal(sq_kv_cache_seq_len(c, s), sh->len[s]);
        assert_int_equal(c->n_held[s], sh->held[s]);
        for (int b = 0; b < c->max_blocks; b++) {
            int32_t phys = c->block_table[(size_t)s * c->max_blocks + b];
            if (b >= sh->held[s]) {
                assert_int_equal(phys, -1);
                continue;
            }
            assert_true(phys >= 0 && phys < c->n_blocks);
            int id = sh->blk[s][b];
            if (phys_of[id] < 0) phys_of[id] = phys; /* the sharing structure is the same */
            assert_int_equal(phys_of[id], phys);
            if (shadow_of[phys] < 0) shadow_of[phys] = id;
            assert_int_equal(shadow_of[phys], id);
        }
    }
    /* reference counts: the shadow's for blocks in use, 0 for the rest, which are exactly the free list */
    for (int b = 0; b < c->n_blocks; b++)
        assert_int_equal(c->refcount[b], shadow_of[b] < 0 ? 0 : sh->ref[shadow_of[b]]);
    assert_int_equal(c->n_free, c->n_blocks - sh->live);
    char *listed = calloc((size_t)c->n_blocks, 1);
    assert_non_null(listed);
    for (int i = 0; i < c->n_free; i++) {
        int32_t b = c->free_list[i];
        assert_true(b >= 0 && b < c->n_blocks);
        assert_false(listed[b]); /* no block freed twice */
        listed[b] = 1;
        assert_int_equal(c->refcount[b], 0);
    }
    free(listed);
    free(shadow_of);
    /* every sequence reads its own history */
    for (int s = 0; s < sh->n_seq; s++)
        for (int p = 0; p < sh->len[s]; p++)
            for (int l = 0; l < c->n_layers; l++)
                for (int kv = 0; kv < 2; kv++)
                    for (int i = 0; i < c->kv_dim[l]; i++) {
                        float got = read_elem(c, l, kv, s, p, i), want = row_value(sh->tag[s][p], l, kv, i);
                        if (got != want)
                            fail_msg("sequence %d slot %d layer %d %s[%d]: read %g, wrote %g (tag %u)", s, p,
                                     l, kv ? "v" : "k", i, got, want, sh->tag[s][p]);
                    }
}

/* Writes fresh tags into slots [from[i], to[i]) of seqs[i] through kv_store, in every layer. */
static void write_rows(const sq_kv_cache *c, const sq_backend *be, shadow *sh, const int *seqs,
                       const int *from, const int *to, int n) {
    int32_t tok_seq[MAX_SEQ * MAX_CTX], tok_pos[MAX_SEQ * MAX_CTX], n_tok = 0;
    for (int i = 0; i < n; i++)
        for (int p = from[i]; p < to[i]; p++) {
            tok_seq[n_tok] = seqs[i];
            tok_pos[n_tok++] = p;
            sh->tag[seqs[i]][p] = ++sh->next_tag;
        }
    for (int l = 0; l < c->n_layers; l++) {
        float *k = malloc(((size_t)n_tok + 1) * c->kv_dim[l] * sizeof *k);
        float *v = malloc(((size_t)n_tok + 1) * c->kv_dim[l] * sizeof *v);
        assert_true(k && v);
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < c->kv_dim[l]; i++) {
                k[(size_t)t * c->kv_dim[l] + i] = row_value(sh->tag[tok_seq[t]][tok_pos[t]], l, 0, i);
                v[(size_t)t * c->kv_dim[l] + i] = row_value(sh->tag[tok_seq[t]][tok_pos[t]], l, 1, i);
            }
        sq_kv_view view;
        sq_kv_cache_view(c, l, &view);
        /* kv_store reads only each token's sequence and slot */
        const sq_token_batch tokens = {.n_tokens = n_tok, .seq = tok_seq, .pos = tok_pos, .slot = tok_pos};
        be->kv_store(be->impl, &view, k, v, &tokens);
        free(k);
        free(v);
    }
}

/* The block manager's state, to show that a rejected call changed nothing. */
typedef struct snapshot {
    int32_t *table, *free_list;
    int *n_held, *seq_len, *refcount, n_free;
} snapshot;

static snapshot take_snapshot(const sq_kv_cache *c) {
    size_t nt = (size_t)c->n_seq * c->max_blocks, nb = (size_t)c->n_blocks, ns = (size_t)c->n_seq;
    snapshot s = {malloc(nt * 4),           malloc(nb * 4),           malloc(ns * sizeof(int)),
                  malloc(ns * sizeof(int)), malloc(nb * sizeof(int)), c->n_free};
    assert_true(s.table && s.free_list && s.n_held && s.seq_len && s.refcount);
    memcpy(s.table, c->block_table, nt * 4);
    memcpy(s.free_list, c->free_list, nb * 4);
    memcpy(s.n_held, c->n_held, ns * sizeof(int));
    memcpy(s.seq_len, c->seq_len, ns * sizeof(int));
    memcpy(s.refcount, c->refcount, nb * sizeof(int));
    return s;
}

static void assert_unchanged(const sq_kv_cache *c, snapshot s) {
    size_t nt = (size_t)c->n_seq * c->max_blocks, nb = (size_t)c->n_blocks, ns = (size_t)c->n_seq;
    assert_int_equal(c->n_free, s.n_free);
    assert_memory_equal(c->block_table, s.table, nt * 4);
    assert_memory_equal(c->free_list, s.free_list, (size_t)s.n_free * 4);
    assert_memory_equal(c->n_held, s.n_held, ns * sizeof(int));
    assert_memory_equal(c->seq_len, s.seq_len, ns * sizeof(int));
    assert_memory_equal(c->refcount, s.refcount, nb * sizeof(int));
    for (int b = 0; b < c->n_blocks; b++) assert_int_equal(c->writers[b], 0); /* scratch left clean */
    for (int q = 0; q < c->n_seq; q++) assert_int_equal(c->seq_mark[q], 0);
    free(s.table);
    free(s.free_list);
    free(s.n_held);
    free(s.seq_len);
    free(s.refcount);
}

/* ---------------------------------------------------------------- random operation mixes */

typedef struct mix_case {
    const char *name;
    sq_dtype row_type;
    int n_seq, n_ctx, block_size, budget_blocks; /* budget_blocks 0: the default pool */
    int n_layers, kv_dim[3];
    int n_ops;
    uint64_t seed;
} mix_case;

static int pick(uint64_t *rng, int n) { return (int)(sq_test_rand_u64(rng) % (uint64_t)n); }

static int listed(const int *ids, int n, int s) {
    for (int i = 0; i < n; i++)
        if (ids[i] == s) return 1;
    return 0;
}

static void run_mix(const mix_case *mc) {
    counting_backend cb;
    sq_backend be = counting(&cb);
    size_t block_bytes = 0;
    for (int l = 0; l < mc->n_layers; l++)
        block_bytes += 2 * (size_t)mc->block_size * mc->kv_dim[l] * (mc->row_type == SQ_DTYPE_F16 ? 2 : 4);
    /* a budget a little over whole blocks: the remainder is not a block */
    sq_kv_cache_params p = {mc->n_layers,
                            mc->kv_dim,
                            mc->n_ctx,
                            mc->n_seq,
                            mc->block_size,
                            mc->row_type,
                            mc->budget_blocks ? mc->budget_blocks * block_bytes + block_bytes / 2 : 0};
    sq_kv_cache *c;
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    int max_blocks = (mc->n_ctx + mc->block_size - 1) / mc->block_size;
    int want_blocks = mc->budget_blocks ? mc->budget_blocks : mc->n_seq * max_blocks;
    assert_int_equal(c->n_blocks, want_blocks);
    assert_int_equal(c->block_bytes, block_bytes);
    assert_int_equal(sq_kv_cache_bytes(c), want_blocks * block_bytes);
    assert_int_equal(cb.live, 2 * mc->n_layers);

    shadow *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    *sh = (shadow){.n_seq = mc->n_seq, .n_ctx = mc->n_ctx, .bs = mc->block_size, .n_blocks = c->n_blocks};
    uint64_t rng = mc->seed;
    long n_reserved = 0, n_rejected_dry = 0, n_rejected_args = 0, n_forks = 0, n_rewrites = 0,
         rewrite_cow = 0;
    for (int op = 0; op < mc->n_ops; op++) {
        int r = pick(&rng, 100);
        if (r < 55) { /* a batch: reserve all, write, commit (sometimes reserve only) */
            int n = 1 + pick(&rng, mc->n_seq < 4 ? mc->n_seq : 4), ids[MAX_SEQ], new_len[MAX_SEQ],
                from[MAX_SEQ];
            for (int i = 0; i < n; i++) {
                int s;
                do s = pick(&rng, mc->n_seq);
                while (listed(ids, i, s));
                ids[i] = s;
                int room = mc->n_ctx - sh->len[s];
                int grow = pick(&rng, 4) == 0
                               ? pick(&rng, room + 1)
                               : pick(&rng, (room < 2 * mc->block_size ? room : 2 * mc->block_size) + 1);
                from[i] = sh->len[s];
                new_len[i] = sh->len[s] + grow;
            }
            int bad = pick(&rng, 40);
            if (bad == 0) new_len[0] = mc->n_ctx + 1 + pick(&rng, 3);                /* beyond the context */
            if (bad == 1 && sh->len[ids[0]] > 0) new_len[0] = sh->len[ids[0]] - 1;   /* shrinking */
            if (bad == 2 && n > 1) ids[n - 1] = ids[0], new_len[n - 1] = new_len[0]; /* listed twice */
            int invalid = (bad == 0) || (bad == 1 && sh->len[ids[0]] > 0) || (bad == 2 && n > 1);
            snapshot before = take_snapshot(c);
            int needed = -1;
            sq_error *err = sq_kv_cache_blocks_needed(c, ids, new_len, n, &needed);
            if (invalid) {
                sq_test_fails_with(err, "KV cache");
                sq_test_fails_with(sq_kv_cache_reserve(c, ids, new_len, n), "KV cache");
                assert_unchanged(c, before);
                n_rejected_args++;
            } else {
                sq_test_ok(err);
                int need = shadow_reserve(sh, ids, new_len, n, 0);
                assert_int_equal(needed, need);
                if (need > c->n_free) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "needs %d blocks, %d free", need, c->n_free);
                    sq_error *e = sq_kv_cache_reserve(c, ids, new_len, n);
                    assert_int_equal(sq_error_code_of(e), SQ_ERR_NOMEM);
                    sq_test_fails_with(e, msg);
                    assert_unchanged(c, before);
                    n_rejected_dry++;
                } else {
                    assert_unchanged(c, before);
                    sq_test_ok(sq_kv_cache_reserve(c, ids, new_len, n));
                    shadow_reserve(sh, ids, new_len, n, 1);
                    n_reserved++;
                    if (pick(&rng, 10)) { /* a forward pass: rows written, lengths committed */
                        write_rows(c, &be, sh, ids, from, new_len, n);
                        for (int i = 0; i < n; i++) {
                            sq_kv_cache_set_seq_len(c, ids[i], new_len[i]);
                            sh->len[ids[i]] = new_len[i];
                        }
                    }
                }
            }
        } else if (r < 72) { /* truncate (rollback), sometimes below what was only reserved */
            int s = pick(&rng, mc->n_seq), new_len = pick(&rng, sh->len[s] + 1);
            sq_kv_cache_truncate(c, s, new_len);
            shadow_truncate(sh, s, new_len);
        } else if (r < 92) { /* fork (sometimes onto itself) */
            int src = pick(&rng, mc->n_seq), dst = pick(&rng, mc->n_seq);
            int free_before = c->n_free;
            sq_kv_cache_fork(c, src, dst);
            shadow_fork(sh, src, dst);
            assert_true(c->n_free >= free_before); /* a fork never takes a block */
            n_forks++;
        } else if (r < 96) { /* rewrite committed slots [first, end) (keeping a tree's path) */
            int s = pick(&rng, mc->n_seq), first = pick(&rng, sh->len[s] + 1);
            int end = first + pick(&rng, sh->len[s] - first + 1);
            int need = shadow_make_private(sh, s, first, end, 0);
            if (need > c->n_free) {
                snapshot before = take_snapshot(c);
                sq_error *e = sq_kv_cache_make_private(c, s, first, end);
                assert_int_equal(sq_error_code_of(e), SQ_ERR_NOMEM);
                sq_test_fails_with(e, "free");
                assert_unchanged(c, before);
            } else {
                sq_test_ok(sq_kv_cache_make_private(c, s, first, end));
                long cow = sh->cow;
                shadow_make_private(sh, s, first, end, 1);
                rewrite_cow += sh->cow - cow;
                write_rows(c, &be, sh, &s, &first, &end, 1);
                n_rewrites++;
            }
            if (pick(&rng, 8) == 0) { /* slots not all committed */
                int bad_end = sh->len[s] + 1 + pick(&rng, 3);
                sq_test_fails_with(sq_kv_cache_make_private(c, s, 0, bad_end), "are not all committed");
            }
        } else { /* a finished request */
            int s = pick(&rng, mc->n_seq);
            sq_kv_cache_truncate(c, s, 0);
            shadow_truncate(sh, s, 0);
        }
        check_agrees(c, sh);
    }
    /* copy-on-write went through the backend: keys and values of every layer per copied block */
    assert_int_equal(cb.copies, 2L * mc->n_layers * sh->cow);
    /* each kind of step happened often enough to mean something (blocks of one slot are never partly
     * filled, so never copied) */
    const long reserve_cow = sh->cow - rewrite_cow;
    if (n_reserved < mc->n_ops / 5 || (mc->budget_blocks && n_rejected_dry < 5) || n_rejected_args < 5 ||
        (mc->block_size > 1 ? reserve_cow < 20 : reserve_cow != 0) || n_forks < 50 || n_rewrites < 50 ||
        rewrite_cow < 10)
        fail_msg("%s: too few interesting steps: %ld reserved, %ld rejected for lack of blocks, %ld for bad "
                 "arguments, %ld copies in reserve, %ld forks, %ld rewrites with %ld copies",
                 mc->name, n_reserved, n_rejected_dry, n_rejected_args, reserve_cow, n_forks, n_rewrites,
                 rewrite_cow);
    /* everything back: every block free again */
    for (int s = 0; s < mc->n_seq; s++) sq_kv_cache_truncate(c, s, 0), shadow_truncate(sh, s, 0);
    check_agrees(c, sh);
    assert_int_equal(c->n_free, c->n_blocks);
    sq_kv_cache_free(c);
    assert_int_equal(cb.live, 0); /* the pools went back through the backend */
    sq_backend_destroy(&cb.cpu);
    free(sh);
}

static void test_random_mixes(void **state) {
    (void)state;
    const mix_case cases[] = {
        /* a pool far below n_seq full sequences: reservations often run dry */
        {"f32, blocks of 4, tight budget", SQ_DTYPE_F32, 6, 40, 4, 24, 3, {6, 20, 12}, 4000, 1},
        /* the default pool (room for every sequence): only the context limits */
        {"f16, blocks of 16, default pool", SQ_DTYPE_F16, 5, 50, 16, 0, 2, {8, 24, 0}, 3000, 2},
        {"f16, blocks of 1", SQ_DTYPE_F16, 8, 33, 1, 45, 2, {4, 10, 0}, 3000, 3},
        {"f32, blocks of 7 (not a power of two)", SQ_DTYPE_F32, 4, 30, 7, 9, 1, {16, 0, 0}, 3000, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_mix(&cases[i]);
}

/* ---------------------------------------------------------------- sizing and its errors */

static void test_sizing(void **state) {
    (void)state;
    counting_backend cb;
    sq_backend be = counting(&cb);
    const int kv_dim[2] = {32, 16};
    /* f32: a block of 16 positions takes 2 * 16 * (32 + 16) * 4 bytes; a sequence of 100 positions 7 blocks
     */
    const size_t block = 2 * 16 * 48 * 4;
    sq_kv_cache_params p = {2, kv_dim, 100, 3, 0, SQ_DTYPE_F32, 0};
    sq_kv_cache *c;
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    assert_int_equal(c->block_size, 16);
    assert_int_equal(c->max_blocks, 7);
    assert_int_equal(c->n_blocks, 21); /* the default: n_seq sequences of n_ctx */
    assert_int_equal(sq_kv_cache_bytes(c), 21 * block);
    sq_kv_cache_free(c);

    p.mem_bytes = 10 * block + block - 1; /* whole blocks only */
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    assert_int_equal(c->n_blocks, 10);
    sq_kv_cache_free(c);
    p.mem_bytes = (size_t)1 << 40; /* capped: more than 3 sequences x 7 blocks could never be held */
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    assert_int_equal(c->n_blocks, 21);
    sq_kv_cache_free(c);
    p.mem_bytes = 7 * block; /* exactly one full sequence */
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    assert_int_equal(c->n_blocks, 7);
    sq_kv_cache_free(c);

    p.mem_bytes = block - 1;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c),
                       "cannot hold one block (16 positions x 2 layers take 6144 bytes)");
    assert_null(c);
    p.mem_bytes = 7 * block - 1;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c),
                       "holds 6 blocks of 16 positions, but one sequence of the "
                       "100-position context needs 7 (43008 bytes)");

    /* f16 rows: half the bytes, so twice the blocks in the same budget */
    p.row_type = SQ_DTYPE_F16;
    p.mem_bytes = 10 * block;
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    assert_int_equal(c->block_bytes, block / 2);
    assert_int_equal(c->row_bytes[0], 64);
    assert_int_equal(c->n_blocks, 20);
    sq_kv_cache_free(c);

    /* q8_0 and q4_0 rows: 34 and 18 bytes per 32 values */
    const int block_dim[2] = {32, 64};
    p.kv_dim = block_dim;
    p.mem_bytes = 0;
    const sq_dtype block_types[2] = {SQ_DTYPE_Q8_0, SQ_DTYPE_Q4_0};
    const size_t bytes32[2] = {34, 18};
    for (int i = 0; i < 2; i++) {
        p.row_type = block_types[i];
        sq_test_ok(sq_kv_cache_create(&be, &p, &c));
        assert_int_equal(c->row_bytes[0], bytes32[i]);
        assert_int_equal(c->row_bytes[1], 2 * bytes32[i]);
        assert_int_equal(c->block_bytes, 2 * 16 * 3 * bytes32[i]);
        sq_kv_cache_free(c);
    }
    p.kv_dim = kv_dim;
    p.row_type = SQ_DTYPE_F16;

    /* block sizes: 1, 100 (= n_ctx), 101 (> n_ctx, one block a sequence) */
    const int sizes[] = {1, 100, 101}, blocks[] = {100, 1, 1};
    p.mem_bytes = 0;
    for (int i = 0; i < 3; i++) {
        p.block_size = sizes[i];
        sq_test_ok(sq_kv_cache_create(&be, &p, &c));
        assert_int_equal(c->max_blocks, blocks[i]);
        assert_int_equal(c->n_blocks, 3 * blocks[i]);
        sq_kv_cache_free(c);
    }
    p.block_size = SQ_KV_MAX_BLOCK_SIZE + 1;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c), "invalid size");
    p.block_size = -1;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c), "invalid size");
    p.block_size = 0;
    /* q8_0 became a KV row type (KV-cache quantization); a K-quant is still refused */
    p.row_type = SQ_DTYPE_Q4_K;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c), "rows of type q4_k are not supported");
    /* block row types need rows of whole blocks */
    p.row_type = SQ_DTYPE_Q8_0;
    const int odd_dim[2] = {64, 48};
    p.kv_dim = odd_dim;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c),
                       "layer 1 has rows of 48 values, not whole 32-value blocks of q8_0");
    p.kv_dim = kv_dim;
    p.row_type = SQ_DTYPE_F32;
    const int zero_dim[2] = {32, 0};
    p.kv_dim = zero_dim;
    sq_test_fails_with(sq_kv_cache_create(&be, &p, &c), "layer 1 has rows of 0 values");
    p.kv_dim = kv_dim;

    /* the backend's memory runs out at each of the 4 pool allocations in turn: a clear error, nothing kept */
    for (int fail_at = 0; fail_at < 4; fail_at++) {
        cb.fail_after = fail_at;
        sq_error *err = sq_kv_cache_create(&be, &p, &c);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_NOMEM);
        sq_test_fails_with(err, "cannot allocate 21 blocks of 16 positions (129024 bytes)");
        assert_null(c);
        assert_int_equal(cb.live, 0);
    }
    assert_int_equal(cb.live, 0);
    sq_backend_destroy(&cb.cpu);
}

/* ---------------------------------------------------------------- sharing, by hand */

/* One prompt, forked into three samples that all write into the shared partial block in one batch: the
 * block is held 4 times, 3 writers, so 3 copies (min(writers, holders - 1)); the last writer copies too,
 * because the source (sequence 0) still holds it. Then sequence 0 writes in place. */
static void test_parallel_sampling(void **state) {
    (void)state;
    counting_backend cb;
    sq_backend be = counting(&cb);
    const int kv_dim[1] = {4};
    sq_kv_cache_params p = {1, kv_dim, 32, 4, 4, SQ_DTYPE_F32, 0};
    sq_kv_cache *c;
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    shadow *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    *sh = (shadow){.n_seq = 4, .n_ctx = 32, .bs = 4, .n_blocks = c->n_blocks};
    int zero = 0, ten = 10, from0 = 0;
    sq_test_ok(sq_kv_cache_reserve(c, &zero, &ten, 1)); /* the prompt: 10 slots, blocks 0-2 */
    shadow_reserve(sh, &zero, &ten, 1, 1);
    write_rows(c, &be, sh, &zero, &from0, &ten, 1);
    sq_kv_cache_set_seq_len(c, 0, 10);
    sh->len[0] = 10;
    assert_int_equal(c->n_free, 32 - 3);
    for (int d = 1; d < 4; d++) sq_kv_cache_fork(c, 0, d), shadow_fork(sh, 0, d);
    check_agrees(c, sh);
    assert_int_equal(c->n_free, 29); /* forks take no block */
    assert_int_equal(c->refcount[2], 4);

    int ids[3] = {1, 2, 3}, len[3] = {11, 12, 12}, from[3] = {10, 10, 10}, needed;
    sq_test_ok(sq_kv_cache_blocks_needed(c, ids, len, 3, &needed));
    assert_int_equal(needed, 3);
    long copies = cb.copies;
    sq_test_ok(sq_kv_cache_reserve(c, ids, len, 3));
    shadow_reserve(sh, ids, len, 3, 1);
    assert_int_equal(cb.copies - copies, 3 * 2);
    write_rows(c, &be, sh, ids, from, len, 3);
    for (int i = 0; i < 3; i++) sq_kv_cache_set_seq_len(c, ids[i], len[i]), sh->len[ids[i]] = len[i];
    check_agrees(c, sh);
    assert_int_equal(c->refcount[2], 1); /* sequence 0's own again */
    /* sequence 0 grows into block 3: no copy, one new block */
    int twelve = 12, sixteen = 17;
    sq_test_ok(sq_kv_cache_blocks_needed(c, &zero, &sixteen, 1, &needed));
    assert_int_equal(needed, 2);
    sq_test_ok(sq_kv_cache_blocks_needed(c, &zero, &twelve, 1, &needed));
    assert_int_equal(needed, 0);
    /* a batch may not list a sequence twice, nor shrink one, nor grow beyond the context */
    int twice[2] = {1, 1}, lens[2] = {12, 12}, shrink = 9, beyond = 33, bad_id = 4;
    sq_test_fails_with(sq_kv_cache_reserve(c, twice, lens, 2), "sequence 1 is listed twice");
    sq_test_fails_with(sq_kv_cache_reserve(c, &zero, &shrink, 1), "cannot grow from 10 to 9");
    sq_test_fails_with(sq_kv_cache_reserve(c, &zero, &beyond, 1), "context of 32");
    sq_test_fails_with(sq_kv_cache_blocks_needed(c, &bad_id, &twelve, 1, &needed),
                       "sequence id 4 is outside 0..3");
    sq_test_ok(sq_kv_cache_reserve(c, NULL, NULL, 0)); /* an empty batch */
    check_agrees(c, sh);
    sq_kv_cache_free(c);
    assert_int_equal(cb.live, 0);
    sq_backend_destroy(&cb.cpu);
    free(sh);
}

/* ---------------------------------------------------------------- f16 rows */

/* kv_store rounds fp32 to the nearest half (ties to even), checked against the neighbouring halves with the
 * decoder above; exactly representable values come back unchanged; overflow goes to infinity. */
static void test_f16_rows(void **state) {
    (void)state;
    counting_backend cb;
    sq_backend be = counting(&cb);
    enum { DIM = 37 * 2, N = 50 };
    const int kv_dim[1] = {DIM};
    sq_kv_cache_params p = {1, kv_dim, N, 1, 8, SQ_DTYPE_F16, 0};
    sq_kv_cache *c;
    sq_test_ok(sq_kv_cache_create(&be, &p, &c));
    int zero = 0, n = N;
    sq_test_ok(sq_kv_cache_reserve(c, &zero, &n, 1));
    static float k[N * DIM], v[N * DIM];
    int32_t seq[N], pos[N];
    uint64_t rng = 7;
    for (int t = 0; t < N; t++) {
        seq[t] = 0;
        pos[t] = t;
        for (int i = 0; i < DIM; i++) {
            /* magnitudes from subnormal halves (below 2^-14) to beyond the largest (65504) */
            float x = ldexpf(sq_test_rand_uniform(&rng, 1, 2), pick(&rng, 44) - 28);
            k[t * DIM + i] = pick(&rng, 2) ? x : -x;
            v[t * DIM + i] = (float)(pick(&rng, 4096) - 2048) / 8; /* exact in f16 */
        }
    }
    k[0] = 65520.f; /* exactly halfway between 65504 and the first value past it: infinity */
    k[1] = 65519.f; /* below halfway: 65504 */
    k[2] = 0.0f;    /* zeros keep their sign */
    k[3] = -0.0f;
    k[4] = 1.0f + ldexpf(1, -11);     /* a tie: to even (1.0) */
    k[5] = 1.0f + 3 * ldexpf(1, -11); /* a tie: to even (1 + 2^-9) */
    sq_kv_view view;
    sq_kv_cache_view(c, 0, &view);
    const sq_token_batch tokens = {.n_tokens = N, .seq = seq, .pos = pos, .slot = pos};
    be.kv_store(be.impl, &view, k, v, &tokens);
    sq_kv_cache_set_seq_len(c, 0, N);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < DIM; i++) {
            float x = k[t * DIM + i];
            size_t at = (size_t)(sq_kv_row(&view, view.k, 0, t) - view.k) + 2 * (size_t)i;
            uint16_t h, hv;
            memcpy(&h, view.k + at, 2);
            memcpy(&hv, view.v + at, 2);
            assert_true(half_to_float(hv) == v[t * DIM + i]);
            float got = half_to_float(h);
            if (isinf(got)) { /* only beyond halfway past the largest half */
                assert_true(fabsf(x) >= 65520.f && signbit(got) == signbit(x));
                continue;
            }
            assert_true(signbit(got) == signbit(x));
            /* no neighbour of h is nearer to x; at a tie the even one wins */
            for (int step = -1; step <= 1; step += 2) {
                uint16_t mag = h & 0x7fff;
                if ((mag == 0 && step < 0) || mag + step > 0x7bff) continue;
                float other = half_to_float((uint16_t)((h & 0x8000) | (mag + step)));
                double d_got = fabs((double)x - got), d_other = fabs((double)x - other);
                if (d_other < d_got || (d_other == d_got && (h & 1)))
                    fail_msg("%.9g stored as %.9g, but %.9g is %s", x, got, other,
                             d_other < d_got ? "nearer" : "as near and even");
            }
        }
    uint16_t h;
    memcpy(&h, view.k + 0, 2);
    assert_int_equal(h, 0x7c00);
    memcpy(&h, view.k + 2, 2);
    assert_int_equal(h, 0x7bff);
    memcpy(&h, view.k + 6, 2);
    assert_int_equal(h, 0x8000);
    memcpy(&h, view.k + 8, 2);
    assert_int_equal(h, 0x3c00);
    memcpy(&h, view.k + 10, 2);
    assert_int_equal(h, 0x3c02);
    sq_kv_cache_free(c);
    sq_backend_destroy(&cb.cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizing),
        cmocka_unit_test(test_parallel_sampling),
        cmocka_unit_test(test_f16_rows),
        cmocka_unit_test(test_random_mixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
