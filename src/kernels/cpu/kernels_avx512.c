/* The AVX-512 kernel set (AVX-512F only, so Skylake-X, Ice Lake, Sapphire Rapids and Zen 4 all run it):
 * kernels_simd.inc over 16-float vectors. Compiled for those instructions per function; cpu_features.c only
 * selects it where the CPU and OS support them. */
#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx2,fma,f16c")))
typedef __m512 vec;
#define SIMD(op)   _mm512_##op
#define KERNEL_SET avx512
#define HAVE_VNNI

/* AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later; with AVX-512VL for 256-bit registers), asked at
 * run time: the set itself needs only AVX-512F. */
static inline int has_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
}
/* vpdpbusd: per 32-bit lane the sum of four products of unsigned bytes of a and signed bytes of b. As an
 * instruction, not an intrinsic, so that this set compiles for AVX-512F and runs it only where has_vnni(). */
static inline __attribute__((always_inline)) TARGET __m256i dot_vnni(__m256i a, __m256i b) {
    __m256i acc = _mm256_setzero_si256();
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}
#include "kernels/cpu/kernels_simd.inc"

INLINE float hsum(vec v) { return _mm512_reduce_add_ps(v); }

INLINE vec load_vec(sq_dtype dt, const uint8_t *p) {
    if (dt == SQ_DTYPE_F32) return _mm512_loadu_ps(p);
    const __m256i half = _mm256_loadu_si256((const __m256i *)p);
    return dt == SQ_DTYPE_F16 ? _mm512_cvtph_ps(half)
                              : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

/* Elements 0-15 and 16-31. */
INLINE void sub_block_values(sq_dtype dt, const uint8_t *qs, vec v[2]) {
    if (is_nm(dt) && sq_dtype_table[dt].bits == 16) {
        UNROLL
        for (int k = 0; k < 2; k++)
            v[k] = _mm512_cvtph_ps(
                _mm256_set_m128i(nm24_f16_columns(qs, 2 * k + 1), nm24_f16_columns(qs, 2 * k)));
        return;
    }
    __m128i lo, hi;
    if (is_nm(dt)) {
        nm24_bytes(dt, qs, &lo, &hi);
    } else if (sq_dtype_table[dt].bits == 8) {
        lo = _mm_loadu_si128((const __m128i *)qs);
        hi = _mm_loadu_si128((const __m128i *)(qs + 16));
    } else {
        low_bit_bytes(dt, qs, &lo, &hi);
    }
    v[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
    v[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
}

/* Kept value k of a block is at column 4 (k / 2) + its position (bits 2k of the index word): one two-source
 * permute gathers all 16 from the block's 32 activations. */
INLINE vec nm24_dot(sq_dtype dt, const uint8_t *qs, const vec xv[2]) {
    uint32_t word;
    memcpy(&word, nm24_idx(qs), sizeof word);
    const __m512i pos = _mm512_and_si512(
        _mm512_srlv_epi32(_mm512_set1_epi32((int)word),
                          _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)),
        _mm512_set1_epi32(3));
    const __m512i idx =
        _mm512_add_epi32(pos, _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28));
    const vec g = _mm512_permutex2var_ps(xv[0], idx, xv[1]);
    vec v;
    if (sq_dtype_table[dt].bits == 16) {
        v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)qs));
    } else {
        __m128i kept; /* the 16 kept values as signed bytes (4-bit: less the zero point) */
        if (sq_dtype_table[dt].bits == 8) {
            kept = _mm_loadu_si128((const __m128i *)qs);
        } else {
            const __m128i raw = _mm_loadl_epi64((const __m128i *)qs), nibble = _mm_set1_epi8(0x0f);
            kept = _mm_sub_epi8(
                _mm_unpacklo_epi64(_mm_and_si128(raw, nibble), _mm_and_si128(_mm_srli_epi16(raw, 4), nibble)),
                _mm_set1_epi8((char)sq_dtype_table[dt].zero_value));
        }
        v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(kept));
    }
    return _mm512_mul_ps(v, g);
}

/* The prefill GEMM's integer tiles, on the helpers above. */
#include "kernels/cpu/gemm_simd.inc"
#endif
