/* Causal attention over the paged KV cache, one (token, head) pair per work item.
 *
 * The slots a token sees (sq_token_batch: its sequence's cached prefix, then its own slot and those of its
 * token-tree ancestors) are taken in tiles, as in FlashAttention: a tile's scores are computed together, the
 * running maximum and the accumulated output are rescaled once per tile (not once per slot), and each key and
 * value row is read once, so no score buffer as long as the context is needed. Plain runs and token trees go
 * through the same loop: a plain token's chain is its own slot only. Dot products and the weighted sums use
 * 4-float GCC vectors: native on baseline x86-64 (SSE2) and ARM (NEON), so one build runs everywhere and
 * every compiler accepts the helpers. f16, q8_0 and q4_0 rows are converted a tile at a time by the active
 * kernel set's dequantizer (the blocks holding the head's values). */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/kernels.h"

/* Slots per tile: the tile's scores stay in registers/L1. */
enum { TILE = 32 };

typedef float v4f __attribute__((vector_size(16)));
#define INLINE static inline __attribute__((always_inline))

INLINE v4f load4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE float dot(const float *a, const float *b, int n) {
    v4f acc0 = {0}, acc1 = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 += load4(a + i) * load4(b + i);
        acc1 += load4(a + i + 4) * load4(b + i + 4);
    }
    v4f acc = acc0 + acc1;
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* out = out * scale + sum_j w[j] * v_j over n rows */
INLINE void scale_add_rows(float *out, float scale, const float *const *rows, const float *w, int n, int hd) {
    int i = 0;
    for (; i + 4 <= hd; i += 4) {
        v4f acc = load4(out + i) * scale;
        for (int j = 0; j < n; j++) acc += w[j] * load4(rows[j] + i);
        memcpy(out + i, &acc, sizeof acc);
    }
    for (; i < hd; i++) {
        float acc = out[i] * scale;
        for (int j = 0; j < n; j++) acc += w[j] * rows[j][i];
        out[i] = acc;
    }
}

/* The next up to cap <= TILE slots token t sees: the rest of its dense prefix [*lo, hi), then its chain from
 * *link (batch indices through parent[], skipping ancestors outside the window). Returns how many. */
INLINE int next_tile(const sq_token_batch *tb, int t, int window, int cap, int *lo, int hi, int *link,
                     int *slots) {
    int n = hi - *lo < cap ? hi - *lo : cap;
    if (n < 0) n = 0;
    for (int j = 0; j < n; j++) slots[j] = *lo + j;
    *lo += n;
    while (n < cap && *link >= 0) {
        if (!window || tb->pos[t] - tb->pos[*link] < window) slots[n++] = tb->slot[*link];
        *link = tb->parent[*link];
    }
    return n;
}

/* Where a head's values lie in a row: from byte `offset`, `span` values (whole blocks of the row type) hold
 * them, starting `skip` values in. f32 and f16 blocks are one value, so skip is 0 and span head_dim; a q8_0
 * or q4_0 head whose start or end falls inside a 32-value block takes the whole block. */
typedef struct head_place {
    size_t offset;
    int skip, span;
} head_place;

INLINE head_place place_head(sq_dtype row_type, int first, int hd) {
    const sq_dtype_traits *f = sq_dtype_info(row_type);
    const int be = (int)f->block_elems, b0 = first / be, b1 = (first + hd + be - 1) / be;
    return (head_place){(size_t)b0 * f->block_bytes, first - b0 * be, (b1 - b0) * be};
}

/* Pointers to the head's values in each slot's key and value rows: the rows themselves when they are f32
 * (to_f32 NULL), else their conversions into kbuf and vbuf [n][span]. */
INLINE void tile_rows(const sq_kv_view *kv, int seq, const int *slots, int n, head_place hp,
                      sq_to_f32_fn to_f32, float *kbuf, float *vbuf, const float **keys,
                      const float **values) {
    if (!to_f32) {
        for (int j = 0; j < n; j++) {
            const uint8_t *k = sq_kv_row(kv, kv->k, seq, slots[j]) + hp.offset;
            keys[j] = (const float *)k;
            values[j] = (const float *)(kv->v + (k - kv->k));
        }
        return;
    }
    for (int j = 0; j < n; j++) {
        const uint8_t *k = sq_kv_row(kv, kv->k, seq, slots[j]) + hp.offset;
        to_f32(k, kbuf + (size_t)j * hp.span, hp.span);
        to_f32(kv->v + (k - kv->k), vbuf + (size_t)j * hp.span, hp.span);
        keys[j] = kbuf + (size_t)j * hp.span + hp.skip;
        values[j] = vbuf + (size_t)j * hp.span + hp.skip;
    }
}

/* Floats of converted (non-f32) key rows, and as many of value rows, per tile: a tile of such rows holds
 * fewer than TILE slots when heads are longer than CONVERTED / TILE. */
enum { CONVERTED = TILE * 128 };

static void attend_items(void *p, int ith, int nth) {
    const sq_attention_args *a = p;
    const sq_token_batch *tb = a->tokens;
    const int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd), softcap = a->softcap;
    /* f32 rows are read in place; others through the set's dequantizer */
    sq_to_f32_fn to_f32 =
        a->kv.row_type == SQ_DTYPE_F32 ? NULL : sq_cpu_to_f32(sq_cpu_kernels_active(), a->kv.row_type);
    /* heads are at most 4096 = CONVERTED long (sq_model_bind); a head's blocks add less than two blocks of 32
     * values, which the buffers' slack holds, so a tile holds at least one converted row */
    float kbuf[CONVERTED + 2 * SQ_CPU_SUB_BLOCK], vbuf[CONVERTED + 2 * SQ_CPU_SUB_BLOCK];
    long begin, end;
    sq_split_range((long)tb->n_tokens * a->n_heads, ith, nth, &begin, &end);
    for (long item = begin; item < end; item++) {
        int t = (int)(item / a->n_heads), h = (int)(item % a->n_heads);
        int kvh = h / group, seq = tb->seq[t], pos = tb->pos[t];
        const head_place hp = place_head(a->kv.row_type, kvh * hd, hd);
        int cap = TILE; /* slots per tile: as many converted rows as the buffers hold */
        if (to_f32 && hp.span > CONVERTED / TILE) cap = hp.span < CONVERTED ? CONVERTED / hp.span : 1;
        int lo = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0, link = t;
        const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
        float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
        memset(out, 0, (size_t)hd * sizeof *out);
        float max = -INFINITY, sum = 0;
        int slots[TILE], n;
        while ((n = next_tile(tb, t, a->window, cap, &lo, tb->n_prefix[t], &link, slots)) > 0) {
            float s[TILE], tile_max = -INFINITY;
            const float *keys[TILE], *values[TILE];
            tile_rows(&a->kv, seq, slots, n, hp, to_f32, kbuf, vbuf, keys, values);
            for (int j = 0; j < n; j++) {
                s[j] = dot(q, keys[j], hd) * scale;
                if (softcap > 0) s[j] = softcap * tanhf(s[j] / softcap);
                tile_max = s[j] > tile_max ? s[j] : tile_max;
            }
            float new_max = tile_max > max ? tile_max : max;
            float rescale = expf(max - new_max); /* 0 on the first tile: out and sum are still 0 */
            for (int j = 0; j < n; j++) s[j] = expf(s[j] - new_max);
            float tile_sum = 0;
            for (int j = 0; j < n; j++) tile_sum += s[j];
            sum = sum * rescale + tile_sum;
            scale_add_rows(out, rescale, values, s, n, hd);
            max = new_max;
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < hd; i++) out[i] *= inv;
    }
}

void sq_cpu_attention(sq_threadpool *pool, const sq_attention_args *args) {
    sq_threadpool_run(pool, attend_items, (void *)args);
}
