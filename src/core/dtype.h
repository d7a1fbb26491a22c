/* Weight storage formats: one descriptor per format, all in one table (sq_dtype_table, at the end).
 *
 * A row holds every fact about a format that code outside its kernels needs: the name users type, its
 * numbers in GGUF (ggml_type for tensors, llama.cpp's LLAMA_FTYPE for general.file_type) and its names in
 * safetensors and Hugging Face configs where those files can hold it, the block layout (elements and bytes
 * per block), the quantization parameters (bits per value, elements per scale group, zero point, column
 * order), the round-trip error the format promises, and its plain-C reference conversions (core/dtype_ref.c),
 * which define what its bytes mean. Every CPU kernel set gives each format a GEMV and a fast to_f32 or marks
 * it reference-only (kernels/cpu/kernels.h); tests/c/test_matmul.c fails when a set leaves a format out, and
 * tests/c/test_dtype.c checks every row's invariants.
 *
 * The table is defined in this header, so that the kernels, which inline one entry point per format, see
 * each format's block size and parameters as compile-time constants.
 *
 * Adding a format: its enum value, block struct, reference conversions and row here, the conversions'
 * definitions in dtype_ref.c, and its kernels (docs/architecture.md, "Adding a weight format"). Nothing else
 * in the tree switches over formats: readers, writers and `squeeze info` look rows up by name or number. */
#ifndef SQ_CORE_DTYPE_H
#define SQ_CORE_DTYPE_H

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

/* How a stored integer q becomes a value, with d the scale of its group. */
typedef enum sq_zero_point {
    SQ_ZERO_NONE,  /* value = q * d, q signed (Q8_0); plain float formats store the values themselves */
    SQ_ZERO_FIXED, /* value = (q - zero_value) * d, q unsigned, the same offset everywhere (Q4_0: 8) */
    SQ_ZERO_MIN,   /* value = q * d + m, a stored minimum m per group (Q4_1; the K-quants' sub-blocks; an
                      integer zero point z per group, as GPTQ/AWQ store it, is m = -z * d) */
} sq_zero_point;

/* Which element of the block each stored value is. Later formats add theirs here (AWQ packs eight nibbles of
 * a 32-bit word in the order 0 2 4 6 1 3 5 7; GPTQ's act-order permutes whole columns through g_idx). */
typedef enum sq_column_order {
    SQ_COLUMNS_SEQUENTIAL,    /* value j is element j */
    SQ_COLUMNS_NIBBLE_HALVES, /* 4-bit, ggml's order: in each run of 32 values, byte j holds element j in its
                                 low nibble and element j + 16 in its high nibble */
} sq_column_order;

typedef struct sq_dtype_traits {
    const char *name;        /* lower case, as users type it and `squeeze info` prints it: "f32", "q8_0" */
    int ggml_type;           /* type number in GGUF tensor infos (ggml.h's enum ggml_type); -1: none */
    int gguf_file_type;      /* general.file_type (llama.cpp's LLAMA_FTYPE) of a model mostly in this format;
                                -1: none */
    const char *safetensors; /* dtype string in safetensors headers; NULL: safetensors cannot hold it */
    const char *torch_dtype; /* config.json's torch_dtype of a checkpoint mostly in this format, or NULL */
    int block_elems;         /* consecutive elements of a row stored as one unit; rows are whole blocks */
    size_t block_bytes;      /* = block_elems * bits / 8 + meta_bytes */
    int bits;                /* bits per stored value */
    size_t meta_bytes;       /* bytes of scales, minimums and zero points per block */
    int group_elems;         /* consecutive elements sharing one scale (and minimum); 1 for plain floats */
    sq_zero_point zero;
    int zero_value; /* SQ_ZERO_FIXED: what is subtracted from every stored value */
    sq_column_order columns;
    size_t alignment; /* a block's address must be a multiple of this (its widest field) */
    /* The promise of the round trip to_f32(from_f32(x)): |error| <= max_error * (largest |x| of the value's
     * group), for finite values whose group's largest magnitude lies in [2^-6, 2^15] */
    double max_error;
    /* Reference conversions of n elements (n a whole number of blocks): plain C, the definition the kernels
     * are checked against (bit for bit for to_f32). GGUF formats follow ggml's reference code exactly, so
     * files round-trip with llama.cpp. */
    void (*to_f32)(const void *src, float *dst, int64_t n);
    void (*from_f32)(const float *src, void *dst, int64_t n);
} sq_dtype_traits;

/* The row of a dtype (NULL when out of range), and the dtype with this name (-1 when none has it). */
const sq_dtype_traits *sq_dtype_info(sq_dtype dtype);
int sq_dtype_from_name(const char *name);

/* IEEE half and bfloat16 conversions of one value (round to nearest even). */
float sq_f16_to_f32(uint16_t h);
uint16_t sq_f32_to_f16(float f);
float sq_bf16_to_f32(uint16_t h);
uint16_t sq_f32_to_bf16(float f);

/* ggml's block layouts (ggml-common.h), shared by the reference code, the kernels and the writers. */
#define SQ_QK8_0 32
typedef struct {
    uint16_t d; /* f16 scale; value = q * d */
    int8_t qs[SQ_QK8_0];
} sq_block_q8_0;
#define SQ_QK4_0 32
typedef struct {
    uint16_t d;               /* f16 scale; value = (nibble - 8) * d */
    uint8_t qs[SQ_QK4_0 / 2]; /* element j in the low nibble of byte j, element j+16 in the high nibble */
} sq_block_q4_0;
#define SQ_QK4_1 32
typedef struct {
    uint16_t d, m; /* f16 scale and minimum; value = nibble * d + m */
    uint8_t qs[SQ_QK4_1 / 2];
} sq_block_q4_1;

/* The reference conversions (dtype_ref.c), named sq_ref_<format>_to_f32 / _from_f32. */
#define SQ_DECLARE_REFERENCE(format)                                                                         \
    void sq_ref_##format##_to_f32(const void *src, float *dst, int64_t n);                                   \
    void sq_ref_##format##_from_f32(const float *src, void *dst, int64_t n);
SQ_DECLARE_REFERENCE(f32)
SQ_DECLARE_REFERENCE(f16)
SQ_DECLARE_REFERENCE(bf16)
SQ_DECLARE_REFERENCE(q8_0)
SQ_DECLARE_REFERENCE(q4_0)
SQ_DECLARE_REFERENCE(q4_1)
#undef SQ_DECLARE_REFERENCE

/* The stated errors: half a step of the grid, plus the rounding of the f16 scale (relative 2^-11) over the
 * largest stored integer, plus for Q4_1 the rounding of its f16 minimum. Q4_0 maps the value of largest
 * magnitude to -8, so its opposite can clip to 7: a whole step there. */
#define SQ_F16_ROUNDING (1.0 / 2048)
static const sq_dtype_traits sq_dtype_table[SQ_DTYPE_COUNT] = {
    [SQ_DTYPE_F32] = {.name = "f32",
                      .ggml_type = 0,
                      .gguf_file_type = 0,
                      .safetensors = "F32",
                      .torch_dtype = "float32",
                      .block_elems = 1,
                      .block_bytes = 4,
                      .bits = 32,
                      .group_elems = 1,
                      .alignment = 4,
                      .max_error = 0,
                      .to_f32 = sq_ref_f32_to_f32,
                      .from_f32 = sq_ref_f32_from_f32},
    [SQ_DTYPE_F16] = {.name = "f16",
                      .ggml_type = 1,
                      .gguf_file_type = 1,
                      .safetensors = "F16",
                      .torch_dtype = "float16",
                      .block_elems = 1,
                      .block_bytes = 2,
                      .bits = 16,
                      .group_elems = 1,
                      .alignment = 2,
                      .max_error = SQ_F16_ROUNDING,
                      .to_f32 = sq_ref_f16_to_f32,
                      .from_f32 = sq_ref_f16_from_f32},
    [SQ_DTYPE_BF16] = {.name = "bf16",
                       .ggml_type = 30,
                       .gguf_file_type = 32,
                       .safetensors = "BF16",
                       .torch_dtype = "bfloat16",
                       .block_elems = 1,
                       .block_bytes = 2,
                       .bits = 16,
                       .group_elems = 1,
                       .alignment = 2,
                       .max_error = 1.0 / 256,
                       .to_f32 = sq_ref_bf16_to_f32,
                       .from_f32 = sq_ref_bf16_from_f32},
    [SQ_DTYPE_Q8_0] = {.name = "q8_0",
                       .ggml_type = 8,
                       .gguf_file_type = 7,
                       .block_elems = SQ_QK8_0,
                       .block_bytes = sizeof(sq_block_q8_0),
                       .bits = 8,
                       .meta_bytes = 2,
                       .group_elems = SQ_QK8_0,
                       .zero = SQ_ZERO_NONE,
                       .alignment = 2,
                       .max_error = 0.5 / 127 + 1.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_q8_0_to_f32,
                       .from_f32 = sq_ref_q8_0_from_f32},
    [SQ_DTYPE_Q4_0] = {.name = "q4_0",
                       .ggml_type = 2,
                       .gguf_file_type = 2,
                       .block_elems = SQ_QK4_0,
                       .block_bytes = sizeof(sq_block_q4_0),
                       .bits = 4,
                       .meta_bytes = 2,
                       .group_elems = SQ_QK4_0,
                       .zero = SQ_ZERO_FIXED,
                       .zero_value = 8,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES,
                       .alignment = 2,
                       .max_error = 1.0 / 8 + 1.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_q4_0_to_f32,
                       .from_f32 = sq_ref_q4_0_from_f32},
    [SQ_DTYPE_Q4_1] = {.name = "q4_1",
                       .ggml_type = 3,
                       .gguf_file_type = 3,
                       .block_elems = SQ_QK4_1,
                       .block_bytes = sizeof(sq_block_q4_1),
                       .bits = 4,
                       .meta_bytes = 4,
                       .group_elems = SQ_QK4_1,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES,
                       .alignment = 2,
                       .max_error = 1.0 / 15 + 3.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_q4_1_to_f32,
                       .from_f32 = sq_ref_q4_1_from_f32},
};
#undef SQ_F16_ROUNDING

#endif
