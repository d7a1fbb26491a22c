/* The portable kernel set: plain C for any CPU, and the baseline the SIMD sets are measured against. */
#include <string.h>

#include "kernels/cpu/kernels.h"

static float load_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float dense_at(sq_dtype dt, const uint8_t *w, int64_t c) {
    switch (dt) {
    case SQ_DTYPE_F16:
        return sq_f16_to_f32(load_u16(w + 2 * c));
    case SQ_DTYPE_BF16:
        return sq_bf16_to_f32(load_u16(w + 2 * c));
    default:
        return load_f32(w + 4 * c);
    }
}

/* Eight interleaved partial sums, as a SIMD lane layout would keep them: independent chains for the CPU, and
 * each sums an eighth of the terms, so rounding errors stay small on long rows. */
enum { LANES = 8 };

static inline float dense_dot(sq_dtype dt, const uint8_t *w, int64_t cols, const float *x) {
    float acc[LANES] = {0};
    int64_t c = 0;
    for (; c + LANES <= cols; c += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += dense_at(dt, w, c + l) * x[c + l];
    for (int l = 0; c < cols; c++, l++) acc[l] += dense_at(dt, w, c) * x[c];
    float sum = 0;
    for (int l = 0; l < LANES; l++) sum += acc[l];
    return sum;
}

static float dot_f32(const uint8_t *w, int64_t cols, const float *x) {
    return dense_dot(SQ_DTYPE_F32, w, cols, x);
}
static float dot_f16(const uint8_t *w, int64_t cols, const float *x) {
    return dense_dot(SQ_DTYPE_F16, w, cols, x);
}
static float dot_bf16(const uint8_t *w, int64_t cols, const float *x) {
    return dense_dot(SQ_DTYPE_BF16, w, cols, x);
}

/* Block formats, in ggml's layout (the f16 scale d, for SQ_ZERO_MIN the f16 minimum m after it, for
 * SQ_ZERO_POINT an integer zero point z (m = -z d) and a zero byte, then the stored values; 4-bit values in
 * ggml's nibble order, squeeze's 3- and 2-bit ones in pair planes, runs of 32 unpacked by
 * sq_intn_unpack_run): the integer part of each block is dotted with x first, then scaled once. */
static inline float block_dot(sq_dtype dt, const uint8_t *w, int64_t cols, const float *x) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const int be = f->block_elems, z = f->zero_value;
    float acc = 0;
    for (int64_t b = 0; b < cols / be; b++, w += f->block_bytes, x += be) {
        const uint8_t *qs = w + f->meta_bytes;
        float s = 0, xsum = 0; /* sum (q d + m) x = d sum q x + m sum x */
        if (f->bits == 8) {
            for (int j = 0; j < be; j++) s += (int8_t)qs[j] * x[j];
        } else {
            for (int r = 0; r < be; r += 32, qs += SQ_INTN_RUN_BYTES(f->bits)) {
                uint8_t q[32];
                sq_intn_unpack_run(f->bits, qs, q);
                for (int j = 0; j < 32; j++) s += (q[j] - z) * x[r + j], xsum += x[r + j];
            }
        }
        const float d = sq_f16_to_f32(load_u16(w));
        if (f->zero == SQ_ZERO_MIN)
            acc += s * d + xsum * sq_f16_to_f32(load_u16(w + sizeof(uint16_t)));
        else if (f->zero == SQ_ZERO_POINT) /* squeeze's intN: the zero point z after d, m = -z d */
            acc += s * d + xsum * (-(float)w[2] * d);
        else
            acc += s * d;
    }
    return acc;
}

static float dot_q8_0(const uint8_t *w, int64_t cols, const float *x) {
    return block_dot(SQ_DTYPE_Q8_0, w, cols, x);
}
static float dot_q4_0(const uint8_t *w, int64_t cols, const float *x) {
    return block_dot(SQ_DTYPE_Q4_0, w, cols, x);
}
static float dot_q4_1(const uint8_t *w, int64_t cols, const float *x) {
    return block_dot(SQ_DTYPE_Q4_1, w, cols, x);
}
#define DEFINE_INTN_DOT(dtype, DTYPE)                                                                        \
    static float dot_##dtype(const uint8_t *w, int64_t cols, const float *x) {                               \
        return block_dot(DTYPE, w, cols, x);                                                                 \
    }
DEFINE_INTN_DOT(int4_g32, SQ_DTYPE_INT4_G32)
DEFINE_INTN_DOT(int4_g64, SQ_DTYPE_INT4_G64)
DEFINE_INTN_DOT(int4_g128, SQ_DTYPE_INT4_G128)
DEFINE_INTN_DOT(int3_g32, SQ_DTYPE_INT3_G32)
DEFINE_INTN_DOT(int3_g64, SQ_DTYPE_INT3_G64)
DEFINE_INTN_DOT(int3_g128, SQ_DTYPE_INT3_G128)
DEFINE_INTN_DOT(int2_g32, SQ_DTYPE_INT2_G32)
DEFINE_INTN_DOT(int2_g64, SQ_DTYPE_INT2_G64)
DEFINE_INTN_DOT(int2_g128, SQ_DTYPE_INT2_G128)
#undef DEFINE_INTN_DOT

/* The 2:4 formats: only the 16 kept values of each 32 columns are multiplied, each with the activation at its
 * column (block struct in core/dtype.h); then scaled once per block, as block_dot. */
static inline float nm24_dot(sq_dtype dt, const uint8_t *w, int64_t cols, const float *x) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    float acc = 0;
    for (int64_t b = 0; b < cols / SQ_QK_NM; b++, w += f->block_bytes, x += SQ_QK_NM) {
        const uint8_t *qs = w + f->meta_bytes, *idx = qs - 4;
        const uint32_t pos =
            (uint32_t)idx[0] | (uint32_t)idx[1] << 8 | (uint32_t)idx[2] << 16 | (uint32_t)idx[3] << 24;
        float s = 0;
        for (int k = 0; k < SQ_NM_KEPT; k++) {
            float v;
            if (f->bits == 8)
                v = (int8_t)qs[k];
            else if (f->bits == 4)
                v = (float)((k < SQ_NM_KEPT / 2 ? qs[k] & 0x0f : qs[k - SQ_NM_KEPT / 2] >> 4) -
                            f->zero_value);
            else
                v = sq_f16_to_f32(load_u16(qs + 2 * k));
            s += v * x[4 * (k / 2) + (pos >> 2 * k & 3)];
        }
        acc += f->bits == 16 ? s : s * sq_f16_to_f32(load_u16(w));
    }
    return acc;
}
static float dot_sparse24_q8(const uint8_t *w, int64_t cols, const float *x) {
    return nm24_dot(SQ_DTYPE_SPARSE24_Q8, w, cols, x);
}
static float dot_sparse24_q4(const uint8_t *w, int64_t cols, const float *x) {
    return nm24_dot(SQ_DTYPE_SPARSE24_Q4, w, cols, x);
}
static float dot_sparse24_f16(const uint8_t *w, int64_t cols, const float *x) {
    return nm24_dot(SQ_DTYPE_SPARSE24_F16, w, cols, x);
}

/* Formats with integer sub-block scales, against activations quantized to 8-bit blocks of the same length
 * (Q8_0 for 32-value blocks, Q8_K for the K-quants' 256): per block the integer sums
 *   sum_s sc[s] (sum_j q_j x_j - zero sum_j x_j)  and  sum_s m[s] sum_j x_j,
 * then scaled once: value (d sc) (q - zero) - dmin m times x = dx qx gives dx (d isum - dmin imin). */
static inline float int_block_dot(sq_dtype dt, const uint8_t *w, int64_t cols, const uint8_t *x) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const int be = f->block_elems, sub = f->sub_block_elems;
    const size_t xbytes = sq_dtype_table[f->dot_dtype].block_bytes;
    float acc = 0;
    sq_block_ints b;
    for (int64_t i = 0; i < cols / be; i++, w += f->block_bytes, x += xbytes) {
        sq_ref_block_ints(dt, w, &b);
        float dx;
        const int8_t *qx;
        if (f->dot_dtype == SQ_DTYPE_Q8_K) {
            const sq_block_q8_K *xb = (const sq_block_q8_K *)x;
            dx = xb->d, qx = xb->qs;
        } else {
            const sq_block_q8_0 *xb = (const sq_block_q8_0 *)x;
            dx = sq_f16_to_f32(xb->d), qx = xb->qs;
        }
        int32_t isum = 0, imin = 0;
        for (int s = 0; s < be / sub; s++) {
            int32_t dot = 0, xsum = 0;
            for (int j = s * sub; j < (s + 1) * sub; j++) dot += b.q[j] * qx[j], xsum += qx[j];
            isum += b.sc[s] * (dot - f->zero_value * xsum);
            imin += b.m[s] * xsum;
        }
        acc += dx * (b.d * (float)isum - b.dmin * (float)imin);
    }
    return acc;
}

/* W8A8 against its own activations (one int8 row per token): per block the exact int32 sum of products,
 * scaled by the weight's and the token's scales (each block holds its row's). */
static float w8a8_dot(const uint8_t *w, int64_t cols, const uint8_t *x) {
    const sq_block_q8_0 *wb = (const sq_block_q8_0 *)w, *xb = (const sq_block_q8_0 *)x;
    float acc = 0;
    for (int64_t b = 0; b < cols / SQ_QK8_0; b++) {
        int32_t dot = 0;
        for (int j = 0; j < SQ_QK8_0; j++) dot += wb[b].qs[j] * xb[b].qs[j];
        acc += sq_f16_to_f32(wb[b].d) * sq_f16_to_f32(xb[b].d) * (float)dot;
    }
    return acc;
}

#define DEFINE_GEMV(dtype)                                                                                   \
    static void gemv_##dtype(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t cols,               \
                             const void *x, int n_tokens, float *y, size_t ldy) {                            \
        for (int64_t r = 0; r < n_rows; r++)                                                                 \
            for (int t = 0; t < n_tokens; t++)                                                               \
                y[t * ldy + r] =                                                                             \
                    dot_##dtype(w + (size_t)r * row_bytes, cols, (const float *)x + (size_t)t * cols);       \
    }
#define DEFINE_INT_GEMV(dtype, DTYPE)                                                                        \
    static void gemv_##dtype(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t cols,               \
                             const void *x, int n_tokens, float *y, size_t ldy) {                            \
        const size_t xrow = sq_row_bytes(sq_dtype_table[DTYPE].dot_dtype, cols);                             \
        for (int64_t r = 0; r < n_rows; r++)                                                                 \
            for (int t = 0; t < n_tokens; t++)                                                               \
                y[t * ldy + r] =                                                                             \
                    int_block_dot(DTYPE, w + (size_t)r * row_bytes, cols, (const uint8_t *)x + t * xrow);    \
    }
DEFINE_GEMV(f32)
DEFINE_GEMV(f16)
DEFINE_GEMV(bf16)
DEFINE_GEMV(q8_0)
DEFINE_GEMV(q4_0)
DEFINE_GEMV(q4_1)
DEFINE_GEMV(int4_g32)
DEFINE_GEMV(int4_g64)
DEFINE_GEMV(int4_g128)
DEFINE_GEMV(int3_g32)
DEFINE_GEMV(int3_g64)
DEFINE_GEMV(int3_g128)
DEFINE_GEMV(int2_g32)
DEFINE_GEMV(int2_g64)
DEFINE_GEMV(int2_g128)
DEFINE_GEMV(sparse24_q8)
DEFINE_GEMV(sparse24_q4)
DEFINE_GEMV(sparse24_f16)
DEFINE_INT_GEMV(q5_0, SQ_DTYPE_Q5_0)
DEFINE_INT_GEMV(q5_1, SQ_DTYPE_Q5_1)
DEFINE_INT_GEMV(q2_K, SQ_DTYPE_Q2_K)
DEFINE_INT_GEMV(q3_K, SQ_DTYPE_Q3_K)
DEFINE_INT_GEMV(q4_K, SQ_DTYPE_Q4_K)
DEFINE_INT_GEMV(q5_K, SQ_DTYPE_Q5_K)
DEFINE_INT_GEMV(q6_K, SQ_DTYPE_Q6_K)

static void gemv_w8a8(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t cols, const void *x,
                      int n_tokens, float *y, size_t ldy) {
    const size_t xrow = sq_row_bytes(SQ_DTYPE_W8A8, cols);
    for (int64_t r = 0; r < n_rows; r++)
        for (int t = 0; t < n_tokens; t++)
            y[t * ldy + r] = w8a8_dot(w + (size_t)r * row_bytes, cols, (const uint8_t *)x + t * xrow);
}

/* Its dequantizers are the formats' reference conversions. */
const sq_cpu_kernels sq_kernels_scalar = {
    .name = "scalar",
    .formats =
        {
            [SQ_DTYPE_F32] = {.gemv = gemv_f32, .to_f32 = sq_ref_f32_to_f32},
            [SQ_DTYPE_F16] = {.gemv = gemv_f16, .to_f32 = sq_ref_f16_to_f32},
            [SQ_DTYPE_BF16] = {.gemv = gemv_bf16, .to_f32 = sq_ref_bf16_to_f32},
            [SQ_DTYPE_Q8_0] = {.gemv = gemv_q8_0, .to_f32 = sq_ref_q8_0_to_f32},
            [SQ_DTYPE_Q4_0] = {.gemv = gemv_q4_0, .to_f32 = sq_ref_q4_0_to_f32},
            [SQ_DTYPE_Q4_1] = {.gemv = gemv_q4_1, .to_f32 = sq_ref_q4_1_to_f32},
            [SQ_DTYPE_Q5_0] = {.gemv = gemv_q5_0, .to_f32 = sq_ref_q5_0_to_f32},
            [SQ_DTYPE_Q5_1] = {.gemv = gemv_q5_1, .to_f32 = sq_ref_q5_1_to_f32},
            [SQ_DTYPE_Q2_K] = {.gemv = gemv_q2_K, .to_f32 = sq_ref_q2_K_to_f32},
            [SQ_DTYPE_Q3_K] = {.gemv = gemv_q3_K, .to_f32 = sq_ref_q3_K_to_f32},
            [SQ_DTYPE_Q4_K] = {.gemv = gemv_q4_K, .to_f32 = sq_ref_q4_K_to_f32},
            [SQ_DTYPE_Q5_K] = {.gemv = gemv_q5_K, .to_f32 = sq_ref_q5_K_to_f32},
            [SQ_DTYPE_Q6_K] = {.gemv = gemv_q6_K, .to_f32 = sq_ref_q6_K_to_f32},
            [SQ_DTYPE_Q8_K] = SQ_REFERENCE_ONLY,
            [SQ_DTYPE_W8A8] = {.gemv = gemv_w8a8, .to_f32 = sq_ref_w8a8_to_f32},
            [SQ_DTYPE_INT4_G32] = {.gemv = gemv_int4_g32, .to_f32 = sq_ref_int4_g32_to_f32},
            [SQ_DTYPE_INT4_G64] = {.gemv = gemv_int4_g64, .to_f32 = sq_ref_int4_g64_to_f32},
            [SQ_DTYPE_INT4_G128] = {.gemv = gemv_int4_g128, .to_f32 = sq_ref_int4_g128_to_f32},
            [SQ_DTYPE_INT3_G32] = {.gemv = gemv_int3_g32, .to_f32 = sq_ref_int3_g32_to_f32},
            [SQ_DTYPE_INT3_G64] = {.gemv = gemv_int3_g64, .to_f32 = sq_ref_int3_g64_to_f32},
            [SQ_DTYPE_INT3_G128] = {.gemv = gemv_int3_g128, .to_f32 = sq_ref_int3_g128_to_f32},
            [SQ_DTYPE_INT2_G32] = {.gemv = gemv_int2_g32, .to_f32 = sq_ref_int2_g32_to_f32},
            [SQ_DTYPE_INT2_G64] = {.gemv = gemv_int2_g64, .to_f32 = sq_ref_int2_g64_to_f32},
            [SQ_DTYPE_INT2_G128] = {.gemv = gemv_int2_g128, .to_f32 = sq_ref_int2_g128_to_f32},
            /* intN_g0: intN_g32's blocks (the row's scale and zero point in each), so intN_g32's GEMV */
            [SQ_DTYPE_INT4_G0] = {.gemv = gemv_int4_g32, .to_f32 = sq_ref_int4_g0_to_f32},
            [SQ_DTYPE_INT3_G0] = {.gemv = gemv_int3_g32, .to_f32 = sq_ref_int3_g0_to_f32},
            [SQ_DTYPE_INT2_G0] = {.gemv = gemv_int2_g32, .to_f32 = sq_ref_int2_g0_to_f32},
            [SQ_DTYPE_SPARSE24_Q8] = {.gemv = gemv_sparse24_q8, .to_f32 = sq_ref_sparse24_q8_to_f32},
            [SQ_DTYPE_SPARSE24_Q4] = {.gemv = gemv_sparse24_q4, .to_f32 = sq_ref_sparse24_q4_to_f32},
            [SQ_DTYPE_SPARSE24_F16] = {.gemv = gemv_sparse24_f16, .to_f32 = sq_ref_sparse24_f16_to_f32},
        },
};
