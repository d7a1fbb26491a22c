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
        low_bit_bytes(dt, qs, &lo, &hi);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* Kept value k of a block is at column 4 (k / 2) + its position (bits 2k of the index word): kept 8h .. 8h +
 * 3 lie in x vector 2h, 8h + 4 .. 8h + 7 in 2h + 1, at offsets {0, 0, 4, 4} + position in both. */
INLINE vec nm24_dot(sq_dtype dt, const uint8_t *qs, const vec xv[4]) {
    uint32_t word;
    memcpy(&word, nm24_idx(qs), sizeof word);
    const __m256i w = _mm256_set1_epi32((int)word), three = _mm256_set1_epi32(3),
                  base = _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4);
    const __m256i i0 = _mm256_add_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)), three), base);
    const __m256i i1 = _mm256_add_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30)), three),
        base);
    const vec g0 =
        _mm256_blend_ps(_mm256_permutevar8x32_ps(xv[0], i0), _mm256_permutevar8x32_ps(xv[1], i0), 0xf0);
    const vec g1 =
        _mm256_blend_ps(_mm256_permutevar8x32_ps(xv[2], i1), _mm256_permutevar8x32_ps(xv[3], i1), 0xf0);
    vec v0, v1;
    if (sq_dtype_table[dt].bits == 16) {
        v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)qs));
        v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(qs + 16)));
    } else {
        __m128i lo, hi; /* kept values 0-7 and 8-15 as signed bytes (4-bit: less the zero point) */
        if (sq_dtype_table[dt].bits == 8) {
            lo = _mm_loadl_epi64((const __m128i *)qs);
            hi = _mm_loadl_epi64((const __m128i *)(qs + 8));
        } else {
            const __m128i raw = _mm_loadl_epi64((const __m128i *)qs), nibble = _mm_set1_epi8(0x0f),
                          z = _mm_set1_epi8((char)sq_dtype_table[dt].zero_value);
            lo = _mm_sub_epi8(_mm_and_si128(raw, nibble), z);
            hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), nibble), z);
        }
        v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
        v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    }
    return _mm256_fmadd_ps(v1, g1, _mm256_mul_ps(v0, g0));
}

/* The prefill GEMM's integer tiles, on the helpers above. */
#include "kernels/cpu/gemm_simd.inc"
#endif
