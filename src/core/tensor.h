/* The one tensor type: shape, storage format, and where the bytes live.
 *
 * Shapes are outermost-first and row-major: a linear layer's weight is [out_features][in_features], and each
 * row is stored contiguously in the tensor's format. Block formats (Q8_0, Q4_0, Q4_1) pack a row as whole
 * blocks of 32 consecutive elements, exactly as GGUF stores them, so rows must be a multiple of 32 long. */
#ifndef SQ_CORE_TENSOR_H
#define SQ_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum sq_dtype {
    SQ_DTYPE_F32 = 0,
    SQ_DTYPE_F16,
    SQ_DTYPE_BF16,
    SQ_DTYPE_Q8_0,
    SQ_DTYPE_Q4_0,
    SQ_DTYPE_Q4_1,
    SQ_DTYPE_COUNT
} sq_dtype;

typedef enum sq_storage {
    SQ_STORAGE_MAPPED, /* points into a memory-mapped file (read-only) */
    SQ_STORAGE_HOST,   /* owned host memory */
    SQ_STORAGE_DEVICE  /* accelerator memory (later backends) */
} sq_storage;

#define SQ_MAX_DIMS 4
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

typedef struct sq_dtype_traits {
    const char *name;      /* "f32", "q8_0", ... */
    int block_elems;       /* elements per block: 1 for plain types, 32 for Q8_0/Q4_0/Q4_1 */
    size_t block_bytes;    /* bytes per block */
    /* Reference conversions of n elements (n a multiple of block_elems), plain C, used by tests and by slow
     * paths; the fast kernels live in kernels/cpu. */
    void (*to_f32)(const void *src, float *dst, int64_t n);
    void (*from_f32)(const float *src, void *dst, int64_t n);
} sq_dtype_traits;

const sq_dtype_traits *sq_dtype_info(sq_dtype dtype);
/* The dtype with this name, or -1. */
int sq_dtype_from_name(const char *name);

int64_t sq_tensor_nelements(const sq_tensor *t);
/* Elements per row (innermost dimension) and number of rows (product of the others). */
int64_t sq_tensor_row_len(const sq_tensor *t);
int64_t sq_tensor_n_rows(const sq_tensor *t);
/* Bytes one row occupies, or 0 if the row length is not a whole number of blocks. */
size_t sq_row_bytes(sq_dtype dtype, int64_t row_len);
/* Bytes a tensor of this dtype and shape needs; 0 if invalid (bad block multiple, overflow). */
size_t sq_tensor_bytes_for(sq_dtype dtype, int ndim, const int64_t *shape);
/* Dequantizes row `row` into dst (row_len floats). */
void sq_tensor_row_to_f32(const sq_tensor *t, int64_t row, float *dst);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float sq_f16_to_f32(uint16_t h);
uint16_t sq_f32_to_f16(float f);
float sq_bf16_to_f32(uint16_t h);
uint16_t sq_f32_to_bf16(float f);

/* GGUF block layouts, shared by the reference code, kernels and writers. */
#define SQ_QK 32
typedef struct {
    uint16_t d; /* f16 scale */
    int8_t qs[SQ_QK];
} sq_block_q8_0;
typedef struct {
    uint16_t d;             /* f16 scale; value = (nibble - 8) * d */
    uint8_t qs[SQ_QK / 2]; /* element j in the low nibble of byte j, element j+16 in the high nibble */
} sq_block_q4_0;
typedef struct {
    uint16_t d, m; /* f16 scale and minimum; value = nibble * d + m */
    uint8_t qs[SQ_QK / 2];
} sq_block_q4_1;

#endif
