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
    SQ_DTYPE_Q5_0,
    SQ_DTYPE_Q5_1,
    SQ_DTYPE_Q2_K,
    SQ_DTYPE_Q3_K,
    SQ_DTYPE_Q4_K,
    SQ_DTYPE_Q5_K,
    SQ_DTYPE_Q6_K,
    SQ_DTYPE_Q8_K,
    SQ_DTYPE_W8A8,
    SQ_DTYPE_INT4_G32,
    SQ_DTYPE_INT4_G64,
    SQ_DTYPE_INT4_G128,
    SQ_DTYPE_INT3_G32,
    SQ_DTYPE_INT3_G64,
    SQ_DTYPE_INT3_G128,
    SQ_DTYPE_INT2_G32,
    SQ_DTYPE_INT2_G64,
    SQ_DTYPE_INT2_G128,
    SQ_DTYPE_INT4_G0, /* per output channel: one scale and zero point per row */
    SQ_DTYPE_INT3_G0,
    SQ_DTYPE_INT2_G0,
    SQ_DTYPE_SPARSE24_Q8,
    SQ_DTYPE_SPARSE24_Q4,
    SQ_DTYPE_SPARSE24_F16,
    SQ_DTYPE_COUNT
} sq_dtype;

/* How a stored integer q becomes a value, with d the scale of its group. */
typedef enum sq_zero_point {
    SQ_ZERO_NONE,  /* value = q * d, q signed (Q8_0); plain float formats store the values themselves */
    SQ_ZERO_FIXED, /* value = (q - zero_value) * d, q unsigned, the same offset everywhere (Q4_0: 8; Q5_0: 16;
                      the K-quants Q3_K: 4 and Q6_K: 32, d their sub-block's scale) */
    SQ_ZERO_MIN,   /* value = q * d + m, a stored minimum m per group (Q4_1; the K-quants' sub-blocks; an
                      integer zero point z per group, as GPTQ/AWQ store it, is m = -z * d) */
    SQ_ZERO_POINT, /* value = q * d + m with m = -z * d, z an unsigned integer stored per group (GPTQ's and
                      AWQ's asymmetric zero point; squeeze's intN): q * d and z * d are exact in fp32, so the
                      value is (q - z) * d exactly */
} sq_zero_point;

/* Which element of the block each stored value is. Later formats add theirs here (AWQ packs eight nibbles of
 * a 32-bit word in the order 0 2 4 6 1 3 5 7; GPTQ's act-order permutes whole columns through g_idx). */
typedef enum sq_column_order {
    SQ_COLUMNS_SEQUENTIAL,    /* value j is element j */
    SQ_COLUMNS_NIBBLE_HALVES, /* 4-bit, ggml's order: in each run of 32 values, byte j holds element j in its
                                 low nibble and element j + 16 in its high nibble */
    SQ_COLUMNS_NIBBLE_HALVES_HIGH_BIT, /* 5-bit (Q5_0, Q5_1): the low four bits as SQ_COLUMNS_NIBBLE_HALVES,
                                          the fifth of element j in bit j of a 32-bit word qh */
    SQ_COLUMNS_K_QUANT, /* ggml's K-quants: bit planes of 2, 4 and 1 or 2 bits spread over the super-block as
                           its block struct below describes */
    SQ_COLUMNS_PAIR_PLANES, /* 2-bit (squeeze's int2): in each run of 32 values, byte j (j < 8) holds elements
                               j, j + 8, j + 16, j + 24 in bits 0-1, 2-3, 4-5, 6-7 */
    SQ_COLUMNS_PAIR_PLANES_HIGH_BIT, /* 3-bit (squeeze's int3): in each run of 32 values, the low two bits as
                                        SQ_COLUMNS_PAIR_PLANES (8 bytes), then the third bit of element j in
                                        bit j of a little-endian 32-bit word (4 bytes): 12 bytes per 32 values
                                      */
    SQ_COLUMNS_NM, /* N:M semi-structured (squeeze's sparse24_*): only the kept values, in column order, each
                      group's positions as 2-bit indices before them (sq_block_sparse24_q8 below); 4-bit
                      values: kept value k in the low nibble of byte k % 8, k >= 8 in the high one */
} sq_column_order;

typedef struct sq_dtype_traits {
    const char *name;        /* lower case, as users type it and `squeeze info` prints it: "f32", "q8_0" */
    int ggml_type;           /* type number in GGUF tensor infos (ggml.h's enum ggml_type); -1: none */
    int gguf_file_type;      /* general.file_type (llama.cpp's LLAMA_FTYPE) of a model mostly in this format;
                                -1: none */
    const char *safetensors; /* dtype string in safetensors headers; NULL: safetensors cannot hold it */
    const char *torch_dtype; /* config.json's torch_dtype of a checkpoint mostly in this format, or NULL */
    int block_elems;         /* consecutive elements of a row stored as one unit; rows are whole blocks */
    size_t block_bytes;      /* = stored values * bits / 8 + meta_bytes; stored values: block_elems, or
                                block_elems * nm_n / nm_m for N:M formats */
    int bits;                /* bits per stored value */
    size_t meta_bytes;       /* bytes of scales, minimums and zero points (and N:M positions) per block */
    int group_elems;         /* consecutive elements sharing one floating-point scale (and minimum); 1 for
                                plain floats; the K-quants' super-block; SQ_GROUP_ROW: every value one
                                from_f32 call is given (callers give it a row at a time) */
    int sub_block_elems; /* consecutive elements sharing one integer sub-block scale (and minimum) inside a
                            group: the K-quants' 16 or 32; = group_elems where a group has one scale */
    sq_zero_point zero;
    int zero_value; /* SQ_ZERO_FIXED: what is subtracted from every stored value */
    sq_column_order columns;
    /* N:M semi-structured sparsity (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks"): at most
     * nm_n non-zero values in every nm_m consecutive elements of a row, and only those stored (block_elems
     * * nm_n / nm_m values of `bits`, their positions in meta_bytes); 0, 0 for dense formats. from_f32 of
     * such a format keeps the nm_n largest magnitudes of each group (ties: lower position first), so callers
     * refuse weights that are not N:M before converting them (sq_nm_violation). */
    int nm_n, nm_m;
    size_t alignment; /* a block's address must be a multiple of this (its widest field) */
    /* What the CPU kernels' GEMV multiplies the weights with: SQ_DTYPE_F32 (fp32 activations), or the 8-bit
     * format activations are quantized to first, once per matmul by its reference from_f32, for integer dot
     * products (ggml's vec_dot_type: Q8_0 for 32-value blocks, Q8_K for the K-quants). A format naming
     * itself (W8A8) makes activation quantization part of the format: every product quantizes them, prefill
     * included, where the others' prefill multiplies fp32 activations. */
    sq_dtype dot_dtype;
    /* The promise of the round trip to_f32(from_f32(x)): |error| <= max_error * (largest |x| of the value's
     * group), for finite values whose group's largest magnitude lies in [2^-6, 2^15] */
    double max_error;
    /* Reference conversions of n elements (n a whole number of blocks): plain C, the definition the kernels
     * are checked against (bit for bit for to_f32). GGUF formats follow ggml's reference code exactly, so
     * files round-trip with llama.cpp. */
    void (*to_f32)(const void *src, float *dst, int64_t n);
    void (*from_f32)(const float *src, void *dst, int64_t n);
    /* NULL, or from_f32 of one row of n values given an importance per value (qw [n], >= 0; an imatrix: the
     * mean squared activation of each value's input channel): llama.cpp's quantize_<type> with quant_weights,
     * whose scale (and minimum) fits minimise the importance-weighted squared error. */
    void (*from_f32_weighted)(const float *src, void *dst, int64_t n, const float *qw);
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
#define SQ_QK5_0 32
typedef struct {
    uint16_t d;               /* f16 scale; value = (q - 16) * d */
    uint8_t qh[4];            /* bit j of this little-endian word: the fifth bit of element j */
    uint8_t qs[SQ_QK5_0 / 2]; /* the low four bits, in Q4_0's nibble order */
} sq_block_q5_0;
#define SQ_QK5_1 32
typedef struct {
    uint16_t d, m; /* f16 scale and minimum; value = q * d + m */
    uint8_t qh[4];
    uint8_t qs[SQ_QK5_1 / 2];
} sq_block_q5_1;

/* The K-quants: super-blocks of SQ_QK_K values, one f16 scale d (and minimum scale dmin) each, and sub-blocks
 * of 16 or 32 values with integer scales (and minimums) relative to them: value = d * sc * q - dmin * m. Bit
 * planes: where a struct says "plane p", byte l of a 32-byte run holds bits of elements l + 32 * p. */
#define SQ_QK_K 256
typedef struct {
    uint8_t scales[SQ_QK_K / 16]; /* per 16-value sub-block: sc in the low nibble, m in the high nibble */
    uint8_t qs[SQ_QK_K / 4];      /* 2-bit q: each 32-byte half of the super-block (128 values) holds planes
                                     0-3 in bits 0-1, 2-3, 4-5, 6-7 */
    uint16_t d, dmin;
} sq_block_q2_K;
typedef struct {
    uint8_t hmask[SQ_QK_K / 8]; /* the third bit of q: element j in bit j / 32 of byte j % 32 */
    uint8_t qs[SQ_QK_K / 4];    /* the low two bits, as Q2_K's */
    uint8_t scales[12];         /* 16 6-bit sc, stored + 32: low nibbles of 0-7 in bytes 0-7 (low), 8-15 in
                                   bytes 0-7 (high), the top two bits of sc j in byte 8 + j % 4, bits 2 (j / 4) */
    uint16_t d;                 /* value = d * (sc - 32) * (q - 4) */
} sq_block_q3_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];      /* 8 6-bit sc and m: sc j (j < 4) in bits 0-5 of byte j, m j in byte j + 4; for
                                j >= 4 the low nibbles of sc and m in byte j + 4, the top two bits in bits 6-7 of
                                bytes j - 4 (sc) and j (m) */
    uint8_t qs[SQ_QK_K / 2]; /* 4-bit q: each 32-byte quarter (64 values) holds its first 32 values in the low
                                nibbles and the next 32 in the high ones */
} sq_block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];      /* as Q4_K's */
    uint8_t qh[SQ_QK_K / 8]; /* the fifth bit of q: element j in bit j / 32 of byte j % 32 */
    uint8_t qs[SQ_QK_K / 2]; /* the low four bits, as Q4_K's */
} sq_block_q5_K;
typedef struct {
    uint8_t ql[SQ_QK_K / 2]; /* the low four bits of q: each 64-byte half (128 values) holds planes 0 and 1
                                in its two 32-byte runs' low nibbles, planes 2 and 3 in their high nibbles */
    uint8_t qh[SQ_QK_K / 4]; /* the top two bits: each 32-byte half holds planes 0-3 in bits 0-1 ... 6-7 */
    int8_t scales[SQ_QK_K / 16]; /* per 16-value sub-block */
    uint16_t d;                  /* value = d * sc * (q - 32) */
} sq_block_q6_K;
typedef struct {
    float d; /* value = q * d */
    int8_t qs[SQ_QK_K];
    int16_t bsums[SQ_QK_K / 16]; /* the sum of each 16 consecutive q */
} sq_block_q8_K;

/* squeeze's 2:4 semi-structured formats (docs/formats.md, "squeeze's own types in GGUF"): per 32 columns the
 * 16 kept values, two of every group of four consecutive columns, in column order. idx (a little-endian
 * 32-bit word): bits 2k .. 2k + 1 hold the position (0..3) inside its group (group k / 2) of kept value k;
 * a writer stores each group's two positions ascending. Decoding places value k at column 4 (k / 2) + its
 * position, value 2g + 1 after 2g (so it wins should both name one position); the other columns are 0. */
#define SQ_QK_NM   32
#define SQ_NM_KEPT (SQ_QK_NM / 2)
typedef struct {
    uint16_t d; /* f16 scale: value = q * d (Q8_0's arithmetic on the kept values) */
    uint8_t idx[4];
    int8_t qs[SQ_NM_KEPT];
} sq_block_sparse24_q8;
typedef struct {
    uint16_t d; /* f16 scale: value = (nibble - 8) * d (Q4_0's arithmetic on the kept values) */
    uint8_t idx[4];
    uint8_t qs[SQ_NM_KEPT / 2]; /* kept value k in the low nibble of byte k, k + 8 in its high nibble */
} sq_block_sparse24_q4;
typedef struct {
    uint8_t idx[4];
    uint16_t v[SQ_NM_KEPT]; /* IEEE half values */
} sq_block_sparse24_f16;

/* The first run of m consecutive elements of x[n] (n a multiple of m) with more than nm_n non-zero values
 * (NaN counts as non-zero): its index (run i covers x[i m .. i m + m - 1]), or -1 when x is N:M. */
int64_t sq_nm_violation(const float *x, int64_t n, int nm_n, int nm_m);
/* The first of n_blocks blocks of a 2:4 format dt whose positions do not ascend inside a group (a writer
 * stores them so; squeeze refuses files that do not, as the kernels' sums and the dequantizers would
 * disagree on a position named twice), or -1. */
int64_t sq_nm_bad_block(sq_dtype dt, const void *blocks, int64_t n_blocks);

/* The integers of one block of a format with integer sub-block scales (Q4_0, Q4_1, Q5_0, Q5_1 and the
 * K-quants but Q8_K), ggml's packings undone: value j = (d * sc[s]) * (q[j] - zero_value) - dmin * m[s],
 * s = j / sub_block_elems (Q4_0 .. Q5_1: one sub-block, sc = 1; Q4_1's and Q5_1's minimum m is dmin = -m with
 * m[0] = 1). The reference dequantizers of Q5_0 .. Q6_K are this, and the kernels' integer dot products
 * start from it. */
typedef struct sq_block_ints {
    float d, dmin;
    int sc[SQ_QK_K / 16], m[SQ_QK_K / 16];
    uint8_t q[SQ_QK_K]; /* unsigned: 0 .. 2^bits - 1 */
} sq_block_ints;
void sq_ref_block_ints(sq_dtype dt, const void *block, sq_block_ints *out);
/* The inverse for the integers: stores q[block_elems] (unsigned, 0 .. 2^bits - 1) into the block's bit
 * planes, its scales left as they are. Error-feedback quantizers (GPTQ) choose a block's scales with the
 * format's reference search, then its integers one by one, and pack them with this. */
void sq_ref_block_set_ints(sq_dtype dt, void *block, const uint8_t *q);

/* Q3_K's sub-block scale j (stored + 32 in 6 bits), and Q4_K's and Q5_K's 6-bit scale and minimum of
 * sub-block j, as dtype.h's block structs describe them. */
static inline int sq_q3_K_scale(const uint8_t s[12], int j) {
    const int low = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
    return (low | (s[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
}
static inline void sq_k4_scale_min(const uint8_t s[12], int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}
/* The scales part of sq_ref_block_ints (d, dmin, sc, m; not q): inline, for the kernels. */
static inline void sq_block_scales(sq_dtype dt, const void *block, sq_block_ints *b) {
    for (int s = 0; s < SQ_QK_K / 16; s++) b->sc[s] = 1, b->m[s] = 0;
    b->dmin = 0;
    switch (dt) {
    case SQ_DTYPE_Q4_0:
        b->d = sq_f16_to_f32(((const sq_block_q4_0 *)block)->d);
        break;
    case SQ_DTYPE_Q4_1:
        b->d = sq_f16_to_f32(((const sq_block_q4_1 *)block)->d);
        b->dmin = -sq_f16_to_f32(((const sq_block_q4_1 *)block)->m);
        b->m[0] = 1;
        break;
    case SQ_DTYPE_Q5_0:
        b->d = sq_f16_to_f32(((const sq_block_q5_0 *)block)->d);
        break;
    case SQ_DTYPE_Q5_1: /* + m is - dmin * 1 with dmin = -m */
        b->d = sq_f16_to_f32(((const sq_block_q5_1 *)block)->d);
        b->dmin = -sq_f16_to_f32(((const sq_block_q5_1 *)block)->m);
        b->m[0] = 1;
        break;
    case SQ_DTYPE_Q2_K: {
        const sq_block_q2_K *x = block;
        for (int s = 0; s < 16; s++) b->sc[s] = x->scales[s] & 0xf, b->m[s] = x->scales[s] >> 4;
        b->d = sq_f16_to_f32(x->d);
        b->dmin = sq_f16_to_f32(x->dmin);
        break;
    }
    case SQ_DTYPE_Q3_K:
        for (int s = 0; s < 16; s++) b->sc[s] = sq_q3_K_scale(((const sq_block_q3_K *)block)->scales, s);
        b->d = sq_f16_to_f32(((const sq_block_q3_K *)block)->d);
        break;
    case SQ_DTYPE_Q4_K:
    case SQ_DTYPE_Q5_K: { /* Q5_K's d, dmin and scales lie where Q4_K's do */
        const sq_block_q4_K *x = block;
        for (int s = 0; s < 8; s++) sq_k4_scale_min(x->scales, s, &b->sc[s], &b->m[s]);
        b->d = sq_f16_to_f32(x->d);
        b->dmin = sq_f16_to_f32(x->dmin);
        break;
    }
    case SQ_DTYPE_Q6_K:
        for (int s = 0; s < 16; s++) b->sc[s] = ((const sq_block_q6_K *)block)->scales[s];
        b->d = sq_f16_to_f32(((const sq_block_q6_K *)block)->d);
        break;
    default:
        break;
    }
}

/* group_elems of a format whose scale covers a whole row: one per output channel of a weight, one per token
 * of activations. */
#define SQ_GROUP_ROW 0

/* squeeze's intN formats (SQ_ZERO_POINT; N = 4, 3, 2): per block an f16 scale d at byte 0, the zero point z
 * at byte 2 (byte 3 zero), then the values in runs of 32, each run SQ_INTN_RUN_BYTES(N) bytes: 4-bit in
 * ggml's nibble order (SQ_COLUMNS_NIBBLE_HALVES), 3-bit and 2-bit in pair planes (SQ_COLUMNS_PAIR_PLANES*).
 * A block is one group of G = 32, 64 or 128 values (intN_gG), or, per output channel (intN_g0, GPTQ's and
 * AWQ's group size -1), 32 values carrying their row's d and z, repeated in every block of the row as W8A8
 * repeats its row scale, so that any run of whole blocks converts on its own. */
#define SQ_INTN_META_BYTES   4
#define SQ_INTN_RUN_BYTES(N) (32 * (N) / 8)
/* The 32 values of one run at qs of an intN block (bits 4, 3 or 2), unsigned, element order. */
static inline void sq_intn_unpack_run(int bits, const uint8_t *qs, uint8_t q[32]) {
    if (bits == 4) {
        for (int j = 0; j < 16; j++) q[j] = qs[j] & 0x0f, q[j + 16] = qs[j] >> 4;
        return;
    }
    for (int j = 0; j < 32; j++) q[j] = qs[j % 8] >> (2 * (j / 8)) & 3;
    if (bits == 3)
        for (int j = 0; j < 32; j++) q[j] |= (uint8_t)((qs[8 + j / 8] >> (j % 8) & 1) << 2);
}
/* The inverse: q[32] (unsigned, below 2^bits) into the run's bytes at qs. */
void sq_intn_pack_run(int bits, const uint8_t q[32], uint8_t *qs);
/* Stores n values (whole blocks of dt, an intN format) with the scale d (an f16 value) and zero point z of
 * each block and their integers q[n]: one group (intN_gG: n = G), or a whole row (intN_g0). The reference
 * quantizers and the GPTQ/AWQ grids (compress/quant/grid.c) share it. */
void sq_intn_pack(sq_dtype dt, float d, int z, const uint8_t *q, int64_t n, void *dst);
/* GPTQ's asymmetric parameters of one group x[n] (quant.py, Quantizer.find_params with weight=True): the
 * range [min(x, 0), max(x, 0)] (or [-1, 1] when both are 0) in qmax steps, s = (max - min) / qmax,
 * z = round(-min / s); then squeeze stores d = f16(s) and rounds each value to q = clamp(round((x + z d) /
 * d), 0, qmax). The reference quantizers and the GPTQ/AWQ grids (compress/quant/grid.c) share it. */
void sq_ref_intn_params(const float *x, int n, int qmax, float *d, int *z);

/* squeeze's own formats in GGUF: tensor type numbers far past ggml's (which end below 64), so that no
 * ggml release reads them as one of its own; llama.cpp refuses them as an invalid tensor type. */
#define SQ_GGUF_OWN_TYPE_BASE 1024

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
SQ_DECLARE_REFERENCE(q5_0)
SQ_DECLARE_REFERENCE(q5_1)
SQ_DECLARE_REFERENCE(q2_K)
SQ_DECLARE_REFERENCE(q3_K)
SQ_DECLARE_REFERENCE(q4_K)
SQ_DECLARE_REFERENCE(q5_K)
SQ_DECLARE_REFERENCE(q6_K)
SQ_DECLARE_REFERENCE(q8_K)
SQ_DECLARE_REFERENCE(w8a8)
SQ_DECLARE_REFERENCE(int4_g32)
SQ_DECLARE_REFERENCE(int4_g64)
SQ_DECLARE_REFERENCE(int4_g128)
SQ_DECLARE_REFERENCE(int3_g32)
SQ_DECLARE_REFERENCE(int3_g64)
SQ_DECLARE_REFERENCE(int3_g128)
SQ_DECLARE_REFERENCE(int2_g32)
SQ_DECLARE_REFERENCE(int2_g64)
SQ_DECLARE_REFERENCE(int2_g128)
SQ_DECLARE_REFERENCE(int4_g0)
SQ_DECLARE_REFERENCE(int3_g0)
SQ_DECLARE_REFERENCE(int2_g0)
SQ_DECLARE_REFERENCE(sparse24_q8)
SQ_DECLARE_REFERENCE(sparse24_q4)
SQ_DECLARE_REFERENCE(sparse24_f16)
#undef SQ_DECLARE_REFERENCE
#define SQ_DECLARE_WEIGHTED(format)                                                                          \
    void sq_ref_##format##_from_f32_weighted(const float *, void *, int64_t, const float *);
SQ_DECLARE_WEIGHTED(q4_0)
SQ_DECLARE_WEIGHTED(q4_1)
SQ_DECLARE_WEIGHTED(q5_0)
SQ_DECLARE_WEIGHTED(q5_1)
SQ_DECLARE_WEIGHTED(q2_K)
SQ_DECLARE_WEIGHTED(q3_K)
SQ_DECLARE_WEIGHTED(q4_K)
SQ_DECLARE_WEIGHTED(q5_K)
SQ_DECLARE_WEIGHTED(q6_K)
#undef SQ_DECLARE_WEIGHTED

/* The stated errors: half a step of the grid, plus the rounding of the f16 scale (relative 2^-11) over the
 * largest stored integer, plus for Q4_1 the rounding of its f16 minimum. Q4_0 maps the value of largest
 * magnitude to -8, so its opposite can clip to 7: a whole step there. */
#define SQ_F16_ROUNDING (1.0 / 2048)
/* Q5_0 and Q5_1 as Q4_0 and Q4_1 with 32 steps. The K-quants have no closed form (each sub-block's step
 * search and the rounding of sub-block scales to 4, 6 or 8 bits of the super-block's interact, and a rounded
 * scale can clip the last step): each bound is the worst error seen over 18,000 random super-blocks of
 * tests/c/test_dtype.c's kinds, rounded up by 10-20%. Q8_K: half a step, its scale an fp32. */
#define Q5_0_ERROR (1.0 / 16 + 1.01 * SQ_F16_ROUNDING)
#define Q5_1_ERROR (1.0 / 31 + 3.01 * SQ_F16_ROUNDING)
#define Q2_K_ERROR 0.5
#define Q3_K_ERROR 0.3
#define Q4_K_ERROR 0.125
#define Q5_K_ERROR 0.075
#define Q6_K_ERROR 0.028
#define Q8_K_ERROR (0.5 / 127 * 1.001)
/* intN: half a step s / 2 inside the range, and at its ends the zero point's rounding (the range's ends move
 * by up to s / 2) plus the f16 scale's (up to qmax s 2^-11); s = (max - min) / qmax <= 2 amax / qmax. */
#define INTN_ERROR(N) (1.0 / ((1 << (N)) - 1) + 2.01 * SQ_F16_ROUNDING)
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
                      .sub_block_elems = 1,
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
                      .sub_block_elems = 1,
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
                       .sub_block_elems = 1,
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
                       .sub_block_elems = SQ_QK8_0,
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
                       .sub_block_elems = SQ_QK4_0,
                       .zero = SQ_ZERO_FIXED,
                       .zero_value = 8,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES,
                       .alignment = 2,
                       .max_error = 1.0 / 8 + 1.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_q4_0_to_f32,
                       .from_f32 = sq_ref_q4_0_from_f32,
                       .from_f32_weighted = sq_ref_q4_0_from_f32_weighted},
    [SQ_DTYPE_Q4_1] = {.name = "q4_1",
                       .ggml_type = 3,
                       .gguf_file_type = 3,
                       .block_elems = SQ_QK4_1,
                       .block_bytes = sizeof(sq_block_q4_1),
                       .bits = 4,
                       .meta_bytes = 4,
                       .group_elems = SQ_QK4_1,
                       .sub_block_elems = SQ_QK4_1,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES,
                       .alignment = 2,
                       .max_error = 1.0 / 15 + 3.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_q4_1_to_f32,
                       .from_f32 = sq_ref_q4_1_from_f32,
                       .from_f32_weighted = sq_ref_q4_1_from_f32_weighted},
    [SQ_DTYPE_Q5_0] = {.name = "q5_0",
                       .ggml_type = 6,
                       .gguf_file_type = 8,
                       .block_elems = SQ_QK5_0,
                       .block_bytes = sizeof(sq_block_q5_0),
                       .bits = 5,
                       .meta_bytes = 2,
                       .group_elems = SQ_QK5_0,
                       .sub_block_elems = SQ_QK5_0,
                       .zero = SQ_ZERO_FIXED,
                       .zero_value = 16,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES_HIGH_BIT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_0,
                       .max_error = Q5_0_ERROR,
                       .to_f32 = sq_ref_q5_0_to_f32,
                       .from_f32 = sq_ref_q5_0_from_f32,
                       .from_f32_weighted = sq_ref_q5_0_from_f32_weighted},
    [SQ_DTYPE_Q5_1] = {.name = "q5_1",
                       .ggml_type = 7,
                       .gguf_file_type = 9,
                       .block_elems = SQ_QK5_1,
                       .block_bytes = sizeof(sq_block_q5_1),
                       .bits = 5,
                       .meta_bytes = 4,
                       .group_elems = SQ_QK5_1,
                       .sub_block_elems = SQ_QK5_1,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_NIBBLE_HALVES_HIGH_BIT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_0,
                       .max_error = Q5_1_ERROR,
                       .to_f32 = sq_ref_q5_1_to_f32,
                       .from_f32 = sq_ref_q5_1_from_f32,
                       .from_f32_weighted = sq_ref_q5_1_from_f32_weighted},
    [SQ_DTYPE_Q2_K] = {.name = "q2_k",
                       .ggml_type = 10,
                       .gguf_file_type = 10,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q2_K),
                       .bits = 2,
                       .meta_bytes = 20,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = 16,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_K_QUANT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_K,
                       .max_error = Q2_K_ERROR,
                       .to_f32 = sq_ref_q2_K_to_f32,
                       .from_f32 = sq_ref_q2_K_from_f32,
                       .from_f32_weighted = sq_ref_q2_K_from_f32_weighted},
    [SQ_DTYPE_Q3_K] = {.name = "q3_k",
                       .ggml_type = 11,
                       .gguf_file_type = -1,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q3_K),
                       .bits = 3,
                       .meta_bytes = 14,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = 16,
                       .zero = SQ_ZERO_FIXED,
                       .zero_value = 4,
                       .columns = SQ_COLUMNS_K_QUANT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_K,
                       .max_error = Q3_K_ERROR,
                       .to_f32 = sq_ref_q3_K_to_f32,
                       .from_f32 = sq_ref_q3_K_from_f32,
                       .from_f32_weighted = sq_ref_q3_K_from_f32_weighted},
    [SQ_DTYPE_Q4_K] = {.name = "q4_k",
                       .ggml_type = 12,
                       .gguf_file_type = -1,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q4_K),
                       .bits = 4,
                       .meta_bytes = 16,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = 32,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_K_QUANT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_K,
                       .max_error = Q4_K_ERROR,
                       .to_f32 = sq_ref_q4_K_to_f32,
                       .from_f32 = sq_ref_q4_K_from_f32,
                       .from_f32_weighted = sq_ref_q4_K_from_f32_weighted},
    [SQ_DTYPE_Q5_K] = {.name = "q5_k",
                       .ggml_type = 13,
                       .gguf_file_type = -1,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q5_K),
                       .bits = 5,
                       .meta_bytes = 16,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = 32,
                       .zero = SQ_ZERO_MIN,
                       .columns = SQ_COLUMNS_K_QUANT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_K,
                       .max_error = Q5_K_ERROR,
                       .to_f32 = sq_ref_q5_K_to_f32,
                       .from_f32 = sq_ref_q5_K_from_f32,
                       .from_f32_weighted = sq_ref_q5_K_from_f32_weighted},
    [SQ_DTYPE_Q6_K] = {.name = "q6_k",
                       .ggml_type = 14,
                       .gguf_file_type = 18,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q6_K),
                       .bits = 6,
                       .meta_bytes = 18,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = 16,
                       .zero = SQ_ZERO_FIXED,
                       .zero_value = 32,
                       .columns = SQ_COLUMNS_K_QUANT,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_Q8_K,
                       .max_error = Q6_K_ERROR,
                       .to_f32 = sq_ref_q6_K_to_f32,
                       .from_f32 = sq_ref_q6_K_from_f32,
                       .from_f32_weighted = sq_ref_q6_K_from_f32_weighted},
    [SQ_DTYPE_Q8_K] = {.name = "q8_k",
                       .ggml_type = 15,
                       .gguf_file_type = -1,
                       .block_elems = SQ_QK_K,
                       .block_bytes = sizeof(sq_block_q8_K),
                       .bits = 8,
                       .meta_bytes = 36,
                       .group_elems = SQ_QK_K,
                       .sub_block_elems = SQ_QK_K,
                       .zero = SQ_ZERO_NONE,
                       .columns = SQ_COLUMNS_SEQUENTIAL,
                       .alignment = 4,
                       .max_error = Q8_K_ERROR,
                       .to_f32 = sq_ref_q8_K_to_f32,
                       .from_f32 = sq_ref_q8_K_from_f32},
    /* SmoothQuant's W8A8 (Xiao et al. 2023): symmetric int8 with one scale per row, so per output channel
     * for weights and, as the dot format of itself, per token for activations (absmax / 127). The layout is
     * Q8_0's, the row's f16 scale repeated in each 32-value block, so that any run of whole blocks converts
     * on its own as every other format's does (the GEMM tiles and the reference GEMV convert parts of rows).
     */
    [SQ_DTYPE_W8A8] = {.name = "w8a8",
                       .ggml_type = SQ_GGUF_OWN_TYPE_BASE,
                       .gguf_file_type = -1,
                       .block_elems = SQ_QK8_0,
                       .block_bytes = sizeof(sq_block_q8_0),
                       .bits = 8,
                       .meta_bytes = 2,
                       .group_elems = SQ_GROUP_ROW,
                       .sub_block_elems = SQ_QK8_0,
                       .zero = SQ_ZERO_NONE,
                       .columns = SQ_COLUMNS_SEQUENTIAL,
                       .alignment = 2,
                       .dot_dtype = SQ_DTYPE_W8A8,
                       .max_error = 0.5 / 127 + 1.01 * SQ_F16_ROUNDING,
                       .to_f32 = sq_ref_w8a8_to_f32,
                       .from_f32 = sq_ref_w8a8_from_f32},
/* squeeze's intN with a scale and zero point per group of G = 32, 64 or 128 (GPTQ's and AWQ's asymmetric
 * convention, e.g. int4g128), or per row (G = 0: SQ_GROUP_ROW, blocks of 32 carrying the row's; see
 * SQ_INTN_META_BYTES; docs/formats.md) */
#define SQ_INTN_BLOCK(G) ((G) ? (G) : 32)
#define SQ_INTN_ROW(N, G, ggml)                                                                              \
    {                                                                                                        \
        .name = "int" #N "_g" #G, .ggml_type = ggml, .gguf_file_type = -1, .block_elems = SQ_INTN_BLOCK(G),  \
        .block_bytes = SQ_INTN_META_BYTES + SQ_INTN_BLOCK(G) * (N) / 8, .bits = N,                           \
        .meta_bytes = SQ_INTN_META_BYTES, .group_elems = G, .sub_block_elems = SQ_INTN_BLOCK(G),             \
        .zero = SQ_ZERO_POINT,                                                                               \
        .columns = (N) == 4   ? SQ_COLUMNS_NIBBLE_HALVES                                                     \
                   : (N) == 3 ? SQ_COLUMNS_PAIR_PLANES_HIGH_BIT                                              \
                              : SQ_COLUMNS_PAIR_PLANES,                                                      \
        .alignment = 2, .max_error = INTN_ERROR(N), .to_f32 = sq_ref_int##N##_g##G##_to_f32,                 \
        .from_f32 = sq_ref_int##N##_g##G##_from_f32                                                          \
    }
    [SQ_DTYPE_INT4_G32] = SQ_INTN_ROW(4, 32, SQ_GGUF_OWN_TYPE_BASE + 1),
    [SQ_DTYPE_INT4_G64] = SQ_INTN_ROW(4, 64, SQ_GGUF_OWN_TYPE_BASE + 2),
    [SQ_DTYPE_INT4_G128] = SQ_INTN_ROW(4, 128, SQ_GGUF_OWN_TYPE_BASE + 3),
    [SQ_DTYPE_INT3_G32] = SQ_INTN_ROW(3, 32, SQ_GGUF_OWN_TYPE_BASE + 4),
    [SQ_DTYPE_INT3_G64] = SQ_INTN_ROW(3, 64, SQ_GGUF_OWN_TYPE_BASE + 5),
    [SQ_DTYPE_INT3_G128] = SQ_INTN_ROW(3, 128, SQ_GGUF_OWN_TYPE_BASE + 6),
    [SQ_DTYPE_INT2_G32] = SQ_INTN_ROW(2, 32, SQ_GGUF_OWN_TYPE_BASE + 7),
    [SQ_DTYPE_INT2_G64] = SQ_INTN_ROW(2, 64, SQ_GGUF_OWN_TYPE_BASE + 8),
    [SQ_DTYPE_INT2_G128] = SQ_INTN_ROW(2, 128, SQ_GGUF_OWN_TYPE_BASE + 9),
    [SQ_DTYPE_INT4_G0] = SQ_INTN_ROW(4, 0, SQ_GGUF_OWN_TYPE_BASE + 10),
    [SQ_DTYPE_INT3_G0] = SQ_INTN_ROW(3, 0, SQ_GGUF_OWN_TYPE_BASE + 11),
    [SQ_DTYPE_INT2_G0] = SQ_INTN_ROW(2, 0, SQ_GGUF_OWN_TYPE_BASE + 12),
#undef SQ_INTN_ROW
#undef SQ_INTN_BLOCK
/* squeeze's 2:4 sparse formats (docs/formats.md): the 16 kept values of each 32 columns, their positions
 * (4 bytes) before them. q8 and q4 quantize the kept values as Q8_0 and Q4_0 quantize a block (the largest
 * kept magnitude is the block's largest), so they promise those formats' errors; f16 rounds each value. Own
 * type numbers from 1040 (1028-1039 are taken by the int3/int2 formats). */
#define SQ_SPARSE24_ROW(kind, ggml, b, meta, group, zero_kind, zv, err)                                      \
    {                                                                                                        \
        .name = "sparse24_" #kind, .ggml_type = ggml, .gguf_file_type = -1, .block_elems = SQ_QK_NM,         \
        .block_bytes = sizeof(sq_block_sparse24_##kind), .bits = b, .meta_bytes = meta,                      \
        .group_elems = group, .sub_block_elems = group, .zero = zero_kind, .zero_value = zv,                 \
        .columns = SQ_COLUMNS_NM, .nm_n = 2, .nm_m = 4, .alignment = 2, .max_error = err,                    \
        .to_f32 = sq_ref_sparse24_##kind##_to_f32, .from_f32 = sq_ref_sparse24_##kind##_from_f32             \
    }
    [SQ_DTYPE_SPARSE24_Q8] = SQ_SPARSE24_ROW(q8, SQ_GGUF_OWN_TYPE_BASE + 16, 8, 6, SQ_QK_NM, SQ_ZERO_NONE, 0,
                                             0.5 / 127 + 1.01 * SQ_F16_ROUNDING),
    [SQ_DTYPE_SPARSE24_Q4] = SQ_SPARSE24_ROW(q4, SQ_GGUF_OWN_TYPE_BASE + 17, 4, 6, SQ_QK_NM, SQ_ZERO_FIXED, 8,
                                             1.0 / 8 + 1.01 * SQ_F16_ROUNDING),
    [SQ_DTYPE_SPARSE24_F16] =
        SQ_SPARSE24_ROW(f16, SQ_GGUF_OWN_TYPE_BASE + 18, 16, 4, 1, SQ_ZERO_NONE, 0, SQ_F16_ROUNDING),
#undef SQ_SPARSE24_ROW
};
#undef SQ_F16_ROUNDING

#endif
