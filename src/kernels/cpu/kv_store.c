/* Stores new key/value rows into the paged KV cache, converting fp32 activations to the cache's row type with
 * the row type's reference conversion (round to nearest even): a few rows per layer and step, so plain C. */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

void sq_cpu_kv_store(const sq_kv_view *kv, const float *k, const float *v, const int *seq, const int *pos,
                     int n_tokens) {
    const sq_dtype_traits *row = sq_dtype_info(kv->row_type);
    for (int t = 0; t < n_tokens; t++) {
        size_t at = sq_kv_view_offset(kv, seq[t], pos[t]);
        row->from_f32(k + (size_t)t * kv->kv_dim, kv->k + at, kv->kv_dim);
        row->from_f32(v + (size_t)t * kv->kv_dim, kv->v + at, kv->kv_dim);
    }
}
