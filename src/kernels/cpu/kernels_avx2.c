/* The AVX2 + FMA + F16C kernel set (Haswell / Zen and later): kernels_simd.inc over 8-float vectors.
 * Compiled for those instructions per function, so the rest of the binary runs on any x86-64;
 * cpu_features.c only selects it where the CPU has them. */
#if defined(__x86_64__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
typedef __m256 vec;
#define SIMD(op)   _mm256_##op
#define KERNEL_SET avx2
#define HAVE_HSUM4
#include "kernels/cpu/kernels_simd.inc"

INLINE float hsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Through horizontal adds. */
INLINE void hsum4(const vec acc[4], float *y) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

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

/* Elements 0-7, 8-15, 16-23 and 24-31. */
INLINE void sub_block_values(sq_dtype dt, const uint8_t *qs, vec v[4]) {
    if (is_nm(dt) && sq_dtype_table[dt].bits == 16) {
        UNROLL
        for (int k = 0; k < 4; k++) v[k] = _mm256_cvtph_ps(nm24_f16_columns(qs, k));
        return;
    }
    if (sq_dtype_table[dt].bits == 8 && !is_nm(dt)) {
        UNROLL
        for (int k = 0; k < 4; k++)
            v[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * k))));
        return;
    }
    __m128i lo, hi;
    if (is_nm(dt))
        nm24_bytes(dt, qs, &lo, &hi);
    else
        q4_bytes(dt, qs, &lo, &hi);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* The prefill GEMM's integer tiles, on the helpers above. */
#include "kernels/cpu/gemm_simd.inc"
#endif
