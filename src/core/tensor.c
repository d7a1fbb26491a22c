#include "core/tensor.h"

int64_t sq_tensor_nelements(const sq_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int64_t sq_tensor_row_len(const sq_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

int64_t sq_tensor_n_rows(const sq_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t sq_row_bytes(sq_dtype dtype, int64_t row_len) {
    const sq_dtype_traits *tr = sq_dtype_info(dtype);
    if (!tr || row_len < 0 || row_len % tr->block_elems) return 0;
    return (size_t)(row_len / tr->block_elems) * tr->block_bytes;
}

size_t sq_tensor_bytes_for(sq_dtype dtype, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > SQ_MAX_DIMS) return 0;
    const int64_t limit =
        (int64_t)1 << 40; /* no single tensor of a supported model is near a trillion bytes */
    int64_t rows = 1;
    for (int i = 0; i + 1 < ndim; i++) {
        if (shape[i] <= 0 || shape[i] > limit || rows > limit / shape[i]) return 0;
        rows *= shape[i];
    }
    if (shape[ndim - 1] <= 0 || shape[ndim - 1] > limit) return 0;
    size_t row = sq_row_bytes(dtype, shape[ndim - 1]);
    if (!row || (uint64_t)rows > (uint64_t)limit / row) return 0;
    return (size_t)rows * row;
}

void sq_tensor_row_to_f32(const sq_tensor *t, int64_t row, float *dst) {
    int64_t len = sq_tensor_row_len(t);
    size_t rb = sq_row_bytes(t->dtype, len);
    sq_dtype_table[t->dtype].to_f32((const uint8_t *)t->data + (size_t)row * rb, dst, len);
}

sq_tensor sq_tensor_slice(const sq_tensor *t, int64_t i) {
    sq_tensor v = *t;
    const size_t part = t->shape[0] > 0 ? t->nbytes / (size_t)t->shape[0] : 0;
    v.ndim = t->ndim - 1;
    for (int d = 0; d < SQ_MAX_DIMS - 1; d++) v.shape[d] = t->shape[d + 1];
    v.shape[SQ_MAX_DIMS - 1] = 0;
    v.data = (char *)t->data + (size_t)i * part;
    v.nbytes = part;
    return v;
}
