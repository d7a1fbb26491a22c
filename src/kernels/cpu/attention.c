/* Causal attention over the paged KV cache, one (token, head) pair per work item.
 *
 * Scores use an online softmax (running maximum and rescaled sum, as in FlashAttention), so a head reads each
 * cached key and value row once and needs no score buffer as long as the context. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

static float dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void attend_items(void *p, int ith, int nth) {
    const sq_attention_args *a = p;
    const int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    long begin, end;
    sq_split_range((long)a->n_tokens * a->n_heads, ith, nth, &begin, &end);
    for (long item = begin; item < end; item++) {
        int t = (int)(item / a->n_heads), h = (int)(item % a->n_heads);
        int kvh = h / group, seq = a->seq[t], pos = a->pos[t];
        int first = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
        float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
        memset(out, 0, (size_t)hd * sizeof *out);
        float max = -INFINITY, sum = 0;
        for (int j = first; j <= pos; j++) {
            const float *k = sq_kv_key(a->kv, a->layer, seq, j) + (size_t)kvh * hd;
            const float *v = sq_kv_value(a->kv, a->layer, seq, j) + (size_t)kvh * hd;
            float s = dot(q, k, hd) * scale;
            if (s > max) { /* rescale what has been accumulated to the new maximum */
                float r = expf(max - s);
                sum *= r;
                for (int i = 0; i < hd; i++) out[i] *= r;
                max = s;
            }
            float w = expf(s - max);
            sum += w;
            for (int i = 0; i < hd; i++) out[i] += w * v[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < hd; i++) out[i] *= inv;
    }
}

void sq_cpu_attention(sq_threadpool *pool, const sq_attention_args *args) {
    sq_threadpool_run(pool, attend_items, (void *)args);
}
