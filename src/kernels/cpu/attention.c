/* Causal attention over the paged KV cache, one (token, head) pair per work item.
 *
 * Positions are taken in tiles, as in FlashAttention: a tile's scores are computed together, the running
 * maximum and the accumulated output are rescaled once per tile (not once per position), and each cached key
 * and value row is read once, so no score buffer as long as the context is needed. Dot products and the
 * weighted sums use 4-float GCC vectors: native on baseline x86-64 (SSE2) and ARM (NEON), so one build runs
 * everywhere and every compiler accepts the helpers. Rows are read through the cache's view: fp32 rows in
 * place, rows of any other type (f16) converted to fp32 once per tile by the active kernel set. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/kernels.h"

/* Positions per tile: the tile's scores stay in registers/L1. Converted rows of a tile take at most
 * TILE_FLOATS floats per pool (32 rows of head_dim 128, 16 KiB on the stack); larger heads get shorter tiles.
 */
enum { TILE = 32, TILE_FLOATS = 32 * 128 };

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

static void attend_items(void *p, int ith, int nth) {
    const sq_attention_args *a = p;
    const sq_kv_view *kv = a->kv;
    const int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    sq_to_f32_fn convert = NULL;
    if (kv->row_type != SQ_DTYPE_F32) convert = sq_cpu_to_f32(sq_cpu_kernels_active(), kv->row_type);
    const int tile = !convert                  ? TILE
                     : TILE_FLOATS / hd < 1    ? 1
                     : TILE_FLOATS / hd < TILE ? TILE_FLOATS / hd
                                               : TILE;
    float k_buf[TILE_FLOATS], v_buf[TILE_FLOATS]; /* [tile][hd] the tile's keys and values (non-fp32 rows) */
    long begin, end;
    sq_split_range((long)a->n_tokens * a->n_heads, ith, nth, &begin, &end);
    for (long item = begin; item < end; item++) {
        int t = (int)(item / a->n_heads), h = (int)(item % a->n_heads);
        int kvh = h / group, seq = a->seq[t], pos = a->pos[t];
        int first = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        size_t head_at = sq_row_bytes(kv->row_type, (int64_t)kvh * hd);
        const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
        float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
        memset(out, 0, (size_t)hd * sizeof *out);
        float max = -INFINITY, sum = 0;
        for (int j0 = first; j0 <= pos; j0 += tile) {
            int n = pos - j0 + 1 < tile ? pos - j0 + 1 : tile;
            float s[TILE], tile_max = -INFINITY;
            const float *keys[TILE], *values[TILE];
            for (int j = 0; j < n; j++) {
                size_t at = sq_kv_view_offset(kv, seq, j0 + j) + head_at; /* the same in both pools */
                keys[j] = (const float *)(kv->k + at);
                values[j] = (const float *)(kv->v + at);
            }
            for (int j = 0; convert && j < n; j++) { /* typed rows: this head of the tile's rows, as fp32 */
                convert(keys[j], k_buf + (size_t)j * hd, hd);
                convert(values[j], v_buf + (size_t)j * hd, hd);
                keys[j] = k_buf + (size_t)j * hd;
                values[j] = v_buf + (size_t)j * hd;
            }
            for (int j = 0; j < n; j++) {
                s[j] = dot(q, keys[j], hd) * scale;
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
