/* CPU row movement: gathering rows of a matrix into fp32 (the embedding lookup, the rows whose logits were
 * asked for) and storing or copying key/value rows through the cache view. */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/kernels.h"

void sq_cpu_get_rows(const sq_tensor *src, const int32_t *rows, int n_rows, float *out) {
    const int64_t cols = sq_tensor_row_len(src);
    const size_t row_bytes = sq_row_bytes(src->dtype, cols);
    sq_to_f32_fn to_f32 = sq_cpu_to_f32(sq_cpu_kernels_active(), src->dtype);
    for (int i = 0; i < n_rows; i++)
        to_f32((const uint8_t *)src->data + (size_t)rows[i] * row_bytes, out + (size_t)i * cols, cols);
}

void sq_cpu_kv_store(const sq_kv_view *kv, const float *k, const float *v, const sq_token_batch *tokens) {
    const sq_dtype_traits *row = sq_dtype_info(kv->row_type);
    for (int t = 0; t < tokens->n_tokens; t++) {
        int seq = tokens->seq[t], slot = tokens->slot[t];
        row->from_f32(k + (size_t)t * kv->kv_dim, sq_kv_row(kv, kv->k, seq, slot), kv->kv_dim);
        row->from_f32(v + (size_t)t * kv->kv_dim, sq_kv_row(kv, kv->v, seq, slot), kv->kv_dim);
    }
}

void sq_cpu_kv_copy(const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst, int n) {
    for (int i = 0; i < n; i++) {
        if (src[i] == dst[i]) continue;
        memcpy(sq_kv_row(kv, kv->k, seq, dst[i]), sq_kv_row(kv, kv->k, seq, src[i]), kv->row_bytes);
        memcpy(sq_kv_row(kv, kv->v, seq, dst[i]), sq_kv_row(kv, kv->v, seq, src[i]), kv->row_bytes);
    }
}
