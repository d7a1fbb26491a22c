/* The AVX-512 kernel set (AVX-512F only, so Skylake-X, Ice Lake, Sapphire Rapids and Zen 4 all run it): the
 * width's primitives for 16-float vectors, and the algorithms of kernels_simd.inc built on them. Compiled for
 * those instructions per function; cpu_features.c only selects it where the CPU and OS support them. */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#include "kernels/cpu/kernels.h"

#define TARGET __attribute__((target("avx512f,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET
/* Loops over the rows and tokens of a register tile: fully unrolled, so the accumulator arrays live in
 * registers (GCC at -O2 would otherwise keep the larger tiles in memory). */
#define UNROLL _Pragma("GCC unroll 16")

typedef __m512 vec;
enum { VL = 16 };

INLINE vec vec_zero(void) { return _mm512_setzero_ps(); }
INLINE vec vec_set1(float f) { return _mm512_set1_ps(f); }
INLINE vec vec_loadu(const float *p) { return _mm512_loadu_ps(p); }
INLINE void vec_storeu(float *p, vec v) { _mm512_storeu_ps(p, v); }
INLINE vec vec_add(vec a, vec b) { return _mm512_add_ps(a, b); }
INLINE vec vec_mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
INLINE vec vec_fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
INLINE float hsum(vec v) { return _mm512_reduce_add_ps(v); }

/* 16 consecutive elements as floats. */
INLINE vec load_vec(sq_dtype dt, const uint8_t *p) {
    switch (dt) {
    case SQ_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    case SQ_DTYPE_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    default:
        return _mm512_loadu_ps(p);
    }
}

/* The 32 integer values of a block, unscaled, as two vectors of 16 floats (elements 0-15 and 16-31).
 * Every format keeps its f16 scale d first; Q4_1 keeps its minimum m after it. */
INLINE void block_values(sq_dtype dt, const uint8_t *blk, vec v[2]) {
    __m128i lo, hi;
    if (dt == SQ_DTYPE_Q8_0) {
        const uint8_t *qs = blk + offsetof(sq_block_q8_0, qs);
        lo = _mm_loadu_si128((const __m128i *)qs);
        hi = _mm_loadu_si128((const __m128i *)(qs + 16));
    } else {
        /* Q4: element j in the low nibble of byte j, element j+16 in the high nibble; Q4_0 is offset by 8. */
        const uint8_t *qs =
            blk + (dt == SQ_DTYPE_Q4_0 ? offsetof(sq_block_q4_0, qs) : offsetof(sq_block_q4_1, qs));
        const __m128i raw = _mm_loadu_si128((const __m128i *)qs), nibble = _mm_set1_epi8(0x0f);
        const __m128i offset = _mm_set1_epi8(dt == SQ_DTYPE_Q4_0 ? 8 : 0);
        lo = _mm_sub_epi8(_mm_and_si128(raw, nibble), offset);
        hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble), offset);
    }
    v[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
    v[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
}

#define KERNEL_SET      sq_kernels_avx512
#define KERNEL_SET_NAME "avx512"
#include "kernels/cpu/kernels_simd.inc"
#endif
