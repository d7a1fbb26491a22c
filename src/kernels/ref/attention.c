/* Plain reference attention: a full score row over every slot of the sequence, an explicit mask, softmax in
 * double (see ref.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ref/ref.h"

void sq_ref_attention_mask(const sq_token_batch *tb, int window, int n_slots, unsigned char *mask) {
    memset(mask, 0, (size_t)tb->n_tokens * n_slots);
    for (int t = 0; t < tb->n_tokens; t++) {
        unsigned char *row = mask + (size_t)t * n_slots;
        /* cached slots hold their own position */
        for (int s = 0; s < tb->n_prefix[t]; s++) row[s] = !window || tb->pos[t] - s < window;
        for (int a = t; a >= 0; a = tb->parent[a])
            if (!window || tb->pos[t] - tb->pos[a] < window) row[tb->slot[a]] = 1;
    }
}

/* Value i of a row: its block dequantized by the format's reference (f32 and f16 blocks are one value). */
static double row_value(const sq_kv_view *kv, const uint8_t *row, int i) {
    const sq_dtype_traits *f = sq_dtype_info(kv->row_type);
    float block[256]; /* [block_elems] */
    f->to_f32(row + (size_t)(i / f->block_elems) * f->block_bytes, block, f->block_elems);
    return block[i % f->block_elems];
}

void sq_ref_attention_masked(const float *q, const sq_kv_view *kv, const int32_t *seq, int n_tokens,
                             int n_heads, int n_kv_heads, int head_dim, float softcap,
                             const unsigned char *mask, int n_slots, float *out) {
    double *score = malloc((size_t)n_slots * sizeof *score);
    if (!score) abort();
    for (int t = 0; t < n_tokens; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + ((size_t)t * n_heads + h) * head_dim;
            const int kv_off = h / (n_heads / n_kv_heads) * head_dim;
            double max = -INFINITY, sum = 0;
            for (int s = 0; s < n_slots; s++) {
                if (!mask[(size_t)t * n_slots + s]) continue;
                const uint8_t *k = sq_kv_row(kv, kv->k, seq[t], s);
                double d = 0;
                for (int i = 0; i < head_dim; i++) d += qh[i] * row_value(kv, k, kv_off + i);
                score[s] = d / sqrt((double)head_dim);
                if (softcap > 0) score[s] = softcap * tanh(score[s] / softcap);
                max = score[s] > max ? score[s] : max;
            }
            for (int s = 0; s < n_slots; s++)
                if (mask[(size_t)t * n_slots + s]) sum += score[s] = exp(score[s] - max);
            for (int i = 0; i < head_dim; i++) {
                double acc = 0;
                for (int s = 0; s < n_slots; s++)
                    if (mask[(size_t)t * n_slots + s])
                        acc += score[s] * row_value(kv, sq_kv_row(kv, kv->v, seq[t], s), kv_off + i);
                out[((size_t)t * n_heads + h) * head_dim + i] = (float)(acc / sum);
            }
        }
    free(score);
}

void sq_ref_attention(const sq_attention_args *a) {
    const sq_token_batch *tb = a->tokens;
    int n_slots = 1;
    for (int t = 0; t < tb->n_tokens; t++) {
        if (tb->n_prefix[t] > n_slots) n_slots = tb->n_prefix[t];
        if (tb->slot[t] + 1 > n_slots) n_slots = tb->slot[t] + 1;
    }
    unsigned char *mask = malloc((size_t)tb->n_tokens * n_slots);
    if (!mask) abort();
    sq_ref_attention_mask(tb, a->window, n_slots, mask);
    sq_ref_attention_masked(a->q, &a->kv, tb->seq, tb->n_tokens, a->n_heads, a->n_kv_heads, a->head_dim,
                            a->softcap, mask, n_slots, a->out);
    free(mask);
}
