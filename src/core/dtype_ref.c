/* The reference conversions of every weight format (see dtype.h): plain C, written for clarity, the
 * definition the kernels are checked against. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/dtype.h"

float sq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | mant << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t sq_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
    if (absx >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds to beyond the largest half */
    if (absx < 0x38800000) {                                  /* subnormal half or zero */
        if (absx < 0x33000000) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float sq_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t sq_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void sq_ref_f32_to_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
void sq_ref_f32_from_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

/* The 16-bit float formats, one value at a time through its widening or narrowing conversion. */
static void halves_to_f32(const void *src, float *dst, int64_t n, float (*widen)(uint16_t)) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = widen(h);
    }
}
static void halves_from_f32(const float *src, void *dst, int64_t n, uint16_t (*narrow)(float)) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = narrow(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}
void sq_ref_f16_to_f32(const void *src, float *dst, int64_t n) { halves_to_f32(src, dst, n, sq_f16_to_f32); }
void sq_ref_f16_from_f32(const float *src, void *dst, int64_t n) {
    halves_from_f32(src, dst, n, sq_f32_to_f16);
}
void sq_ref_bf16_to_f32(const void *src, float *dst, int64_t n) {
    halves_to_f32(src, dst, n, sq_bf16_to_f32);
}
void sq_ref_bf16_from_f32(const float *src, void *dst, int64_t n) {
    halves_from_f32(src, dst, n, sq_f32_to_bf16);
}

/* Block quantizers follow ggml's reference C code (ggml-quants.c) so that files round-trip with llama.cpp,
 * evaluated as written (no FMA contraction, see CMakeLists.txt): where ggml's build fuses Q4_0's x * id + 8.5
 * into an FMA, a value exactly between two steps may land on the other one. */
void sq_ref_q8_0_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / SQ_QK8_0; i++) {
        float d = sq_f16_to_f32(b[i].d);
        for (int j = 0; j < SQ_QK8_0; j++) dst[i * SQ_QK8_0 + j] = b[i].qs[j] * d;
    }
}
void sq_ref_q8_0_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK8_0; i++) {
        const float *x = src + i * SQ_QK8_0;
        float amax = 0;
        for (int j = 0; j < SQ_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        for (int j = 0; j < SQ_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}
void sq_ref_q4_0_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / SQ_QK4_0; i++) {
        float d = sq_f16_to_f32(b[i].d);
        for (int j = 0; j < SQ_QK4_0 / 2; j++) {
            dst[i * SQ_QK4_0 + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
            dst[i * SQ_QK4_0 + j + SQ_QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}
void sq_ref_q4_0_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK4_0; i++) {
        const float *x = src + i * SQ_QK4_0;
        float amax = 0, max = 0; /* the signed value of largest magnitude maps to -8 */
        for (int j = 0; j < SQ_QK4_0; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        for (int j = 0; j < SQ_QK4_0 / 2; j++) {
            int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + SQ_QK4_0 / 2] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}
void sq_ref_q4_1_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / SQ_QK4_1; i++) {
        float d = sq_f16_to_f32(b[i].d), m = sq_f16_to_f32(b[i].m);
        for (int j = 0; j < SQ_QK4_1 / 2; j++) {
            dst[i * SQ_QK4_1 + j] = (b[i].qs[j] & 0x0f) * d + m;
            dst[i * SQ_QK4_1 + j + SQ_QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}
void sq_ref_q4_1_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK4_1; i++) {
        const float *x = src + i * SQ_QK4_1;
        float min = FLT_MAX,
              max = -FLT_MAX; /* as ggml's C code: the first of equal extremes (signed zeros) */
        for (int j = 0; j < SQ_QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / 15.0f;
        float id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        b[i].m = sq_f32_to_f16(min);
        for (int j = 0; j < SQ_QK4_1 / 2; j++) {
            int q0 = (int)((x[j] - min) * id + 0.5f), q1 = (int)((x[j + SQ_QK4_1 / 2] - min) * id + 0.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}
