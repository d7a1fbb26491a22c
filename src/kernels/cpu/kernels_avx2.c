/* The AVX2 + FMA + F16C kernel set (Haswell / Zen and later): the width's primitives for 8-float vectors, and
 * the algorithms of kernels_simd.inc built on them. Compiled for those instructions per function, so the rest
 * of the binary runs on any x86-64; cpu_features.c only selects it where the CPU has them. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#include "kernels/cpu/kernels.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET
/* Loops over the rows and tokens of a register tile: fully unrolled, so the accumulator arrays live in
 * registers (GCC at -O2 would otherwise keep the larger tiles in memory). */
#define UNROLL _Pragma("GCC unroll 16")

typedef __m256 vec;
enum { VL = 8 };

INLINE vec vec_zero(void) { return _mm256_setzero_ps(); }
INLINE vec vec_set1(float f) { return _mm256_set1_ps(f); }
INLINE vec vec_loadu(const float *p) { return _mm256_loadu_ps(p); }
INLINE void vec_storeu(float *p, vec v) { _mm256_storeu_ps(p, v); }
INLINE vec vec_add(vec a, vec b) { return _mm256_add_ps(a, b); }
INLINE vec vec_mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
INLINE vec vec_fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }

INLINE float hsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Four adjacent sums at once through horizontal adds. */
#define HAVE_HSUM4 1
INLINE void hsum4(const vec acc[4], float *y) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

/* 8 consecutive elements as floats. */
INLINE vec load_vec(sq_dtype dt, const uint8_t *p) {
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

/* The 32 integer values of a block, unscaled, as four vectors of 8 floats (elements 0-7, 8-15, 16-23, 24-31).
 * Every format keeps its f16 scale d first; Q4_1 keeps its minimum m after it. */
INLINE void block_values(sq_dtype dt, const uint8_t *blk, vec v[4]) {
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

#define KERNEL_SET      sq_kernels_avx2
#define KERNEL_SET_NAME "avx2"
#include "kernels/cpu/kernels_simd.inc"
#endif
