/* The one tensor type: shape, storage format, and where the bytes live.
 *
 * Shapes are outermost-first and row-major: a linear layer's weight is [out_features][in_features], and each
 * row is stored contiguously in the tensor's format (core/dtype.h). Block formats pack a row as whole blocks
 * of the format's block_elems consecutive elements, exactly as GGUF stores them, so a row's length must be a
 * multiple of it. */
#ifndef SQ_CORE_TENSOR_H
#define SQ_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

typedef enum sq_storage {
    SQ_STORAGE_MAPPED, /* points into a memory-mapped file (read-only) */
    SQ_STORAGE_HOST,   /* owned host memory */
    SQ_STORAGE_DEVICE  /* accelerator memory (later backends) */
} sq_storage;

#define SQ_MAX_DIMS        4
#define SQ_TENSOR_NAME_MAX 96

typedef struct sq_tensor {
    char name[SQ_TENSOR_NAME_MAX];
    sq_dtype dtype;
    int ndim;
    int64_t shape[SQ_MAX_DIMS];
    void *data;
    size_t nbytes;
    sq_storage storage;
} sq_tensor;

int64_t sq_tensor_nelements(const sq_tensor *t);
/* Elements per row (innermost dimension) and number of rows (product of the others). */
int64_t sq_tensor_row_len(const sq_tensor *t);
int64_t sq_tensor_n_rows(const sq_tensor *t);
/* Bytes one row occupies, or 0 if the row length is not a whole number of blocks. */
size_t sq_row_bytes(sq_dtype dtype, int64_t row_len);
/* Bytes a tensor of this dtype and shape needs; 0 if invalid (bad block multiple, overflow). */
size_t sq_tensor_bytes_for(sq_dtype dtype, int ndim, const int64_t *shape);
/* Sub-tensor i of the outermost dimension, a view of the same data (one expert's matrix of a
 * [n_experts][rows][cols] tensor): shape without the outer dimension, data and nbytes of that part. */
sq_tensor sq_tensor_slice(const sq_tensor *t, int64_t i);
/* Dequantizes row `row` into dst (row_len floats). */
void sq_tensor_row_to_f32(const sq_tensor *t, int64_t row, float *dst);

#endif
