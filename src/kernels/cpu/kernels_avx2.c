/* The AVX2 + FMA + F16C kernel set (Haswell / Zen and later). Compiled for those instructions per function,
 * so the rest of the binary runs on any x86-64; cpu_features.c only selects it where the CPU has them. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET
/* Loops over the rows and tokens of a register tile: fully unrolled, so the accumulator arrays live in
 * registers (GCC at -O2 would otherwise keep the larger tiles in memory). */
#define UNROLL _Pragma("GCC unroll 16")

/* Large matrices stream from DRAM: the hardware prefetcher alone leaves bandwidth unused, so each step asks
 * for the cache line PREFETCH_ROWS rows further on in the same stream. Small matrices are in cache anyway. */
enum { PREFETCH_ROWS = 8 };

INLINE void prefetch_ahead(const uint8_t *p, size_t rb) {
    _mm_prefetch((const char *)(p + PREFETCH_ROWS * rb), _MM_HINT_T0);
}

/* Weight rows handled together: x is loaded once for all of them, and their accumulators are independent
 * dependency chains that keep both FMA pipes busy. */
enum { NR = 4 };

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* y[i * ystride] = hsum(acc[i]) for nr rows; four adjacent ones at once through horizontal adds. */
INLINE void store_sums(int nr, const __m256 *acc, float *y, size_t ystride) {
    if (nr == 4 && ystride == 1) {
        __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
        _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
        return;
    }
    UNROLL
    for (int i = 0; i < nr; i++) y[i * ystride] = hsum(acc[i]);
}

INLINE float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

/* ------------------------------------------------------------------ dense rows: f32, f16, bf16 */

INLINE size_t elem_bytes(sq_dtype dt) { return dt == SQ_DTYPE_F32 ? 4 : 2; }

/* 8 consecutive elements as floats. */
INLINE __m256 load8(sq_dtype dt, const uint8_t *p) {
    switch (dt) {
    case SQ_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case SQ_DTYPE_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default:
        return _mm256_loadu_ps((const float *)p);
    }
}

/* The last n < 8 elements, zero-padded: a full-width load could run past the end of the mapping. */
INLINE __m256 load_tail(sq_dtype dt, const uint8_t *p, int64_t n) {
    uint8_t buf[32] = {0};
    memcpy(buf, p, (size_t)n * elem_bytes(dt));
    return load8(dt, buf);
}

/* y[i * ystride] = dot(row i, x) for i < nr, row i at w + i * rstride; rb is the row size, for prefetching
 * the rows that follow in each row's stream. */
INLINE void dense_rows(sq_dtype dt, int nr, const uint8_t *w, size_t rb, size_t rstride, int64_t cols,
                       const float *x, float *y, size_t ystride) {
    const size_t eb = elem_bytes(dt);
    __m256 acc[NR], acc2[NR];
    UNROLL
    for (int i = 0; i < nr; i++) acc[i] = acc2[i] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
        UNROLL
        for (int i = 0; i < nr; i++) {
            const uint8_t *p = w + i * rstride + c * eb;
            if (eb == 4 || (c & 16) == 0) prefetch_ahead(p, rb);
            acc[i] = _mm256_fmadd_ps(load8(dt, p), x0, acc[i]);
            acc2[i] = _mm256_fmadd_ps(load8(dt, p + 8 * eb), x1, acc2[i]);
        }
    }
    if (c + 8 <= cols) {
        __m256 x0 = _mm256_loadu_ps(x + c);
        UNROLL
        for (int i = 0; i < nr; i++)
            acc[i] = _mm256_fmadd_ps(load8(dt, w + i * rstride + c * eb), x0, acc[i]);
        c += 8;
    }
    if (c < cols) {
        __m256 x0 = load_tail(SQ_DTYPE_F32, (const uint8_t *)(x + c), cols - c);
        UNROLL
        for (int i = 0; i < nr; i++)
            acc2[i] = _mm256_fmadd_ps(load_tail(dt, w + i * rstride + c * eb, cols - c), x0, acc2[i]);
    }
    UNROLL
    for (int i = 0; i < nr; i++) acc[i] = _mm256_add_ps(acc[i], acc2[i]);
    store_sums(nr, acc, y, ystride);
}

/* ------------------------------------------------------------------ block rows: q8_0, q4_0, q4_1 */

INLINE size_t block_bytes(sq_dtype dt) {
    return dt == SQ_DTYPE_Q8_0   ? sizeof(sq_block_q8_0)
           : dt == SQ_DTYPE_Q4_0 ? sizeof(sq_block_q4_0)
                                 : sizeof(sq_block_q4_1);
}

/* The 32 integer values of a block, unscaled, as four vectors of 8 floats (elements 0-7, 8-15, 16-23, 24-31).
 * Every format keeps its f16 scale d first; Q4_1 keeps its minimum m after it. */
INLINE void block_values(sq_dtype dt, const uint8_t *blk, __m256 v[4]) {
    if (dt == SQ_DTYPE_Q8_0) {
        const uint8_t *qs = blk + offsetof(sq_block_q8_0, qs);
        UNROLL
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * k))));
        return;
    }
    /* Q4: element j in the low nibble of byte j, element j+16 in the high nibble; Q4_0 is offset by 8. */
    const uint8_t *qs =
        blk + (dt == SQ_DTYPE_Q4_0 ? offsetof(sq_block_q4_0, qs) : offsetof(sq_block_q4_1, qs));
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), nibble = _mm_set1_epi8(0x0f);
    const __m128i offset = _mm_set1_epi8(dt == SQ_DTYPE_Q4_0 ? 8 : 0);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, nibble), offset);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble), offset);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* As dense_rows, for the block formats. */
INLINE void block_rows(sq_dtype dt, int nr, const uint8_t *w, size_t rb, size_t rstride, int64_t cols,
                       const float *x, float *y, size_t ystride) {
    const size_t bb = block_bytes(dt);
    __m256 acc[NR];
    UNROLL
    for (int i = 0; i < nr; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / SQ_QK; b++) {
        const float *xb = x + b * SQ_QK;
        const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                     x3 = _mm256_loadu_ps(xb + 24);
        /* Q4_1: sum (q d + m) x = d sum q x + m sum x, and sum x is shared by all rows. */
        const __m256 xsum = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
        UNROLL
        for (int i = 0; i < nr; i++) {
            const uint8_t *blk = w + i * rstride + b * bb;
            if (dt == SQ_DTYPE_Q8_0 || (b & 1) == 0) prefetch_ahead(blk, rb);
            __m256 v[4];
            block_values(dt, blk, v);
            __m256 s = _mm256_add_ps(_mm256_fmadd_ps(v[1], x1, _mm256_mul_ps(v[0], x0)),
                                     _mm256_fmadd_ps(v[3], x3, _mm256_mul_ps(v[2], x2)));
            acc[i] = _mm256_fmadd_ps(s, _mm256_set1_ps(f16_at(blk)), acc[i]);
            if (dt == SQ_DTYPE_Q4_1)
                acc[i] =
                    _mm256_fmadd_ps(xsum, _mm256_set1_ps(f16_at(blk + offsetof(sq_block_q4_1, m))), acc[i]);
        }
    }
    store_sums(nr, acc, y, ystride);
}

/* ------------------------------------------------------------------ several tokens at once */

/* Tokens per group, and dense rows per step: each weight vector, loaded and converted once, serves MT tokens.
 * Block rows go one at a time, as their converted values already fill a share of the registers. */
enum { MT = 4, MR = 2 };

INLINE void dense_rows_tokens(sq_dtype dt, int nr, int nt, const uint8_t *w, size_t rb, int64_t cols,
                              const float *x, float *y, size_t ldy) {
    const size_t eb = elem_bytes(dt);
    __m256 acc[MR][MT];
    UNROLL
    for (int i = 0; i < nr; i++) {
        UNROLL
        for (int t = 0; t < nt; t++) acc[i][t] = _mm256_setzero_ps();
    }
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        __m256 xv[MT];
        UNROLL
        for (int t = 0; t < nt; t++) xv[t] = _mm256_loadu_ps(x + t * cols + c);
        UNROLL
        for (int i = 0; i < nr; i++) {
            const __m256 wv = load8(dt, w + i * rb + c * eb);
            UNROLL
            for (int t = 0; t < nt; t++) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
        }
    }
    if (c < cols) {
        __m256 xv[MT];
        UNROLL
        for (int t = 0; t < nt; t++)
            xv[t] = load_tail(SQ_DTYPE_F32, (const uint8_t *)(x + t * cols + c), cols - c);
        UNROLL
        for (int i = 0; i < nr; i++) {
            const __m256 wv = load_tail(dt, w + i * rb + c * eb, cols - c);
            UNROLL
            for (int t = 0; t < nt; t++) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
        }
    }
    UNROLL
    for (int i = 0; i < nr; i++) {
        UNROLL
        for (int t = 0; t < nt; t++) y[t * ldy + i] = hsum(acc[i][t]);
    }
}

INLINE void block_row_tokens(sq_dtype dt, int nt, const uint8_t *w, int64_t cols, const float *x, float *y,
                             size_t ldy) {
    const size_t bb = block_bytes(dt);
    __m256 acc[MT];
    UNROLL
    for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / SQ_QK; b++) {
        const uint8_t *blk = w + b * bb;
        __m256 v[4];
        block_values(dt, blk, v);
        const __m256 d = _mm256_set1_ps(f16_at(blk));
        UNROLL
        for (int t = 0; t < nt; t++) {
            const float *xb = x + t * cols + b * SQ_QK;
            __m256 s = _mm256_mul_ps(v[0], _mm256_loadu_ps(xb)), xsum = _mm256_loadu_ps(xb);
            UNROLL
            for (int k = 1; k < 4; k++) {
                s = _mm256_fmadd_ps(v[k], _mm256_loadu_ps(xb + 8 * k), s);
                xsum = _mm256_add_ps(xsum, _mm256_loadu_ps(xb + 8 * k));
            }
            acc[t] = _mm256_fmadd_ps(s, d, acc[t]);
            if (dt == SQ_DTYPE_Q4_1) /* sum (q d + m) x = d sum q x + m sum x */
                acc[t] =
                    _mm256_fmadd_ps(xsum, _mm256_set1_ps(f16_at(blk + offsetof(sq_block_q4_1, m))), acc[t]);
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) y[t * ldy] = hsum(acc[t]);
}

/* One group of nt <= MT tokens over all rows. */
INLINE void gemv_tokens(sq_dtype dt, int nt, const uint8_t *w, size_t rb, int64_t n_rows, int64_t cols,
                        const float *x, float *y, size_t ldy) {
    if (dt == SQ_DTYPE_F32 || dt == SQ_DTYPE_F16 || dt == SQ_DTYPE_BF16) {
        int64_t r = 0;
        for (; r + MR <= n_rows; r += MR) dense_rows_tokens(dt, MR, nt, w + r * rb, rb, cols, x, y + r, ldy);
        for (; r < n_rows; r++) dense_rows_tokens(dt, 1, nt, w + r * rb, rb, cols, x, y + r, ldy);
    } else {
        for (int64_t r = 0; r < n_rows; r++) block_row_tokens(dt, nt, w + r * rb, cols, x, y + r, ldy);
    }
}

/* ------------------------------------------------------------------ entry points */

/* One token. The NR rows of a step come from NR far-apart quarters of the matrix (row r of each): four
 * independent streams through memory keep more DRAM requests in flight than four adjacent rows (measured on
 * Zen 3: 22 GB/s instead of 13 for one core on an fp32 matrix larger than the caches). */
INLINE void gemv_one(sq_dtype dt, const uint8_t *w, size_t rb, int64_t n_rows, int64_t cols, const float *x,
                     float *y) {
    const int dense = dt == SQ_DTYPE_F32 || dt == SQ_DTYPE_F16 || dt == SQ_DTYPE_BF16;
    const int64_t q = n_rows / NR;
    for (int64_t r = 0; r < q; r++) {
        if (dense)
            dense_rows(dt, NR, w + r * rb, rb, q * rb, cols, x, y + r, q);
        else
            block_rows(dt, NR, w + r * rb, rb, q * rb, cols, x, y + r, q);
    }
    for (int64_t r = q * NR; r < n_rows; r++) {
        if (dense)
            dense_rows(dt, 1, w + r * rb, rb, rb, cols, x, y + r, 1);
        else
            block_rows(dt, 1, w + r * rb, rb, rb, cols, x, y + r, 1);
    }
}

INLINE void gemv(sq_dtype dt, const uint8_t *w, size_t rb, int64_t n_rows, int64_t cols, const float *x,
                 int n_tokens, float *y, size_t ldy) {
    if (n_tokens == 1) {
        gemv_one(dt, w, rb, n_rows, cols, x, y);
        return;
    }
    for (int t = 0; t < n_tokens; t += MT) {
        const float *xt = x + (size_t)t * cols;
        float *yt = y + (size_t)t * ldy;
        switch (n_tokens - t) { /* constant token counts, so the accumulators stay in registers */
        case 1:
            gemv_one(dt, w, rb, n_rows, cols, xt, yt);
            break;
        case 2:
            gemv_tokens(dt, 2, w, rb, n_rows, cols, xt, yt, ldy);
            break;
        case 3:
            gemv_tokens(dt, 3, w, rb, n_rows, cols, xt, yt, ldy);
            break;
        default:
            gemv_tokens(dt, MT, w, rb, n_rows, cols, xt, yt, ldy);
            break;
        }
    }
}

INLINE void dense_to_f32(sq_dtype dt, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(dt, p + i * elem_bytes(dt)));
    if (i < n) {
        float tail[8];
        _mm256_storeu_ps(tail, load_tail(dt, p + i * elem_bytes(dt), n - i));
        memcpy(dst + i, tail, (size_t)(n - i) * sizeof *tail);
    }
}

/* Scaled exactly as the reference: q * d, then + m for Q4_1 (a separate add, not an FMA, to round alike). */
INLINE void block_to_f32(sq_dtype dt, const void *src, float *dst, int64_t n) {
    const uint8_t *blk = src;
    for (int64_t b = 0; b < n / SQ_QK; b++, blk += block_bytes(dt), dst += SQ_QK) {
        __m256 v[4];
        block_values(dt, blk, v);
        const __m256 d = _mm256_set1_ps(f16_at(blk));
        const __m256 m = dt == SQ_DTYPE_Q4_1 ? _mm256_set1_ps(f16_at(blk + offsetof(sq_block_q4_1, m)))
                                             : _mm256_setzero_ps();
        UNROLL
        for (int k = 0; k < 4; k++) {
            __m256 val = _mm256_mul_ps(v[k], d);
            if (dt == SQ_DTYPE_Q4_1) val = _mm256_add_ps(val, m);
            _mm256_storeu_ps(dst + 8 * k, val);
        }
    }
}

#define DEFINE_ENTRY_POINTS(dtype, DTYPE, to_f32_impl)                                                       \
    TARGET static void gemv_##dtype(const uint8_t *w, size_t rb, int64_t n_rows, int64_t cols,               \
                                    const float *x, int n_tokens, float *y, size_t ldy) {                    \
        gemv(DTYPE, w, rb, n_rows, cols, x, n_tokens, y, ldy);                                               \
    }                                                                                                        \
    TARGET static void to_f32_##dtype(const void *src, float *dst, int64_t n) {                              \
        to_f32_impl(DTYPE, src, dst, n);                                                                     \
    }
DEFINE_ENTRY_POINTS(f32, SQ_DTYPE_F32, dense_to_f32)
DEFINE_ENTRY_POINTS(f16, SQ_DTYPE_F16, dense_to_f32)
DEFINE_ENTRY_POINTS(bf16, SQ_DTYPE_BF16, dense_to_f32)
DEFINE_ENTRY_POINTS(q8_0, SQ_DTYPE_Q8_0, block_to_f32)
DEFINE_ENTRY_POINTS(q4_0, SQ_DTYPE_Q4_0, block_to_f32)
DEFINE_ENTRY_POINTS(q4_1, SQ_DTYPE_Q4_1, block_to_f32)

const sq_cpu_kernels sq_kernels_avx2 = {
    .name = "avx2",
    .gemv = {gemv_f32, gemv_f16, gemv_bf16, gemv_q8_0, gemv_q4_0, gemv_q4_1},
    .to_f32 = {to_f32_f32, to_f32_f16, to_f32_bf16, to_f32_q8_0, to_f32_q4_0, to_f32_q4_1},
};
#endif
