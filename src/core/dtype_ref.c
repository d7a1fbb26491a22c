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
/* W8A8: Q8_0's blocks, one scale for all n values (a row): absmax / 127, rounded as Q8_0 rounds its own. */
void sq_ref_w8a8_to_f32(const void *src, float *dst, int64_t n) { sq_ref_q8_0_to_f32(src, dst, n); }
void sq_ref_w8a8_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q8_0 *b = dst;
    float amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(src[i]));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = sq_f32_to_f16(d);
    for (int64_t i = 0; i < n / SQ_QK8_0; i++) {
        b[i].d = dh;
        for (int j = 0; j < SQ_QK8_0; j++) b[i].qs[j] = (int8_t)roundf(src[i * SQ_QK8_0 + j] * id);
    }
}
void sq_ref_intn_params(const float *x, int n, int qmax, float *d, int *z) {
    double min = 0, max = 0;
    for (int j = 0; j < n; j++) min = fmin(min, x[j]), max = fmax(max, x[j]);
    if (min == 0 && max == 0) min = -1, max = 1;
    const double s = (max - min) / qmax;
    *z = (int)nearbyint(-min / s);
    *d = sq_f16_to_f32(sq_f32_to_f16((float)s));
}

void sq_intn_pack_run(int bits, const uint8_t q[32], uint8_t *qs) {
    if (bits == 4) {
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
        return;
    }
    memset(qs, 0, SQ_INTN_RUN_BYTES(bits));
    for (int j = 0; j < 32; j++) {
        qs[j % 8] |= (uint8_t)((q[j] & 3) << (2 * (j / 8)));
        if (bits == 3) qs[8 + j / 8] |= (uint8_t)((q[j] >> 2 & 1) << (j % 8));
    }
}

void sq_intn_pack(sq_dtype dt, float d, int z, const uint8_t *q, int64_t n, void *dst) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const uint16_t dh = sq_f32_to_f16(d);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n; i += 32) {
        if (i % f->block_elems == 0) { /* a block starts: its d and z */
            memcpy(b, &dh, sizeof dh);
            b[2] = (uint8_t)z;
            b[3] = 0;
            b += SQ_INTN_META_BYTES;
        }
        sq_intn_pack_run(f->bits, q + i, b);
        b += SQ_INTN_RUN_BYTES(f->bits);
    }
}

/* intN (SQ_ZERO_POINT): value = q * d + m, m = -z * d (both products exact in fp32). */
static void intn_to_f32(sq_dtype dt, const void *src, float *dst, int64_t n) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / f->block_elems; i++, b += f->block_bytes) {
        uint16_t dh;
        memcpy(&dh, b, sizeof dh);
        const float d = sq_f16_to_f32(dh), m = -(float)b[2] * d;
        for (int r = 0; r < f->block_elems; r += 32, dst += 32) {
            uint8_t q[32];
            sq_intn_unpack_run(f->bits, b + SQ_INTN_META_BYTES + r / 32 * SQ_INTN_RUN_BYTES(f->bits), q);
            for (int j = 0; j < 32; j++) dst[j] = q[j] * d + m;
        }
    }
}
/* Each group of n values (one per block; intN_g0: all n, a row) with its own d and z. */
static void intn_from_f32(sq_dtype dt, const float *src, void *dst, int64_t n) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const int qmax = (1 << f->bits) - 1;
    const int64_t group = f->group_elems == SQ_GROUP_ROW ? n : f->group_elems;
    uint8_t *b = dst;
    uint8_t q[128];
    for (int64_t g0 = 0; g0 < n; g0 += group, src += group, b += group / f->block_elems * f->block_bytes) {
        float d;
        int z;
        sq_ref_intn_params(src, (int)group, qmax, &d, &z);
        const double m = -(double)z * d;
        /* a block at a time (a row's blocks share d and z) */
        for (int64_t i = 0; i < group; i += f->block_elems) {
            for (int j = 0; j < f->block_elems; j++) {
                const double v = d != 0 ? nearbyint((src[i + j] - m) / d) : 0; /* as sq_grid_round */
                q[j] = (uint8_t)(v < 0 ? 0 : v > qmax ? qmax : v);
            }
            sq_intn_pack(dt, d, z, q, f->block_elems, b + i / f->block_elems * f->block_bytes);
        }
    }
}
#define DEFINE_INTN(N, G, DTYPE)                                                                             \
    void sq_ref_int##N##_g##G##_to_f32(const void *src, float *dst, int64_t n) {                             \
        intn_to_f32(DTYPE, src, dst, n);                                                                     \
    }                                                                                                        \
    void sq_ref_int##N##_g##G##_from_f32(const float *src, void *dst, int64_t n) {                           \
        intn_from_f32(DTYPE, src, dst, n);                                                                   \
    }
DEFINE_INTN(4, 32, SQ_DTYPE_INT4_G32)
DEFINE_INTN(4, 64, SQ_DTYPE_INT4_G64)
DEFINE_INTN(4, 128, SQ_DTYPE_INT4_G128)
DEFINE_INTN(3, 32, SQ_DTYPE_INT3_G32)
DEFINE_INTN(3, 64, SQ_DTYPE_INT3_G64)
DEFINE_INTN(3, 128, SQ_DTYPE_INT3_G128)
DEFINE_INTN(2, 32, SQ_DTYPE_INT2_G32)
DEFINE_INTN(2, 64, SQ_DTYPE_INT2_G64)
DEFINE_INTN(2, 128, SQ_DTYPE_INT2_G128)
DEFINE_INTN(4, 0, SQ_DTYPE_INT4_G0)
DEFINE_INTN(3, 0, SQ_DTYPE_INT3_G0)
DEFINE_INTN(2, 0, SQ_DTYPE_INT2_G0)
#undef DEFINE_INTN

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

/* The fifth bits of a Q5 block's 32 values, bit j for element j, as ggml stores them (a little-endian word).
 */
static uint32_t load_u32le(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void store_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

/* The 32 5-bit values of a Q5 block, element j from the low nibble of qs[j % 16] (j < 16) or its high nibble,
 * and bit j of qh. */
static void q5_values(const uint8_t qs[16], const uint8_t qh[4], int q[32]) {
    const uint32_t h = load_u32le(qh);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0x0f) | (int)((h >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
    }
}
static void q5_pack(const int q[32], uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    store_u32le(qh, h);
}

/* As Q4_0 with 32 steps: the value of largest magnitude maps to -16, others round by truncating x * id
 * + 16.5. */
void sq_ref_q5_0_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK5_0; i++) {
        const float *x = src + i * SQ_QK5_0;
        float amax = 0, max = 0;
        for (int j = 0; j < SQ_QK5_0; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        const float d = max / -16.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        int q[32];
        for (int j = 0; j < SQ_QK5_0; j++) {
            const int v = (int8_t)(x[j] * id + 16.5f);
            q[j] = v > 31 ? 31 : v;
        }
        q5_pack(q, b[i].qs, b[i].qh);
    }
}
void sq_ref_q5_1_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK5_1; i++) {
        const float *x = src + i * SQ_QK5_1;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < SQ_QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        b[i].m = sq_f32_to_f16(min);
        int q[32];
        for (int j = 0; j < SQ_QK5_1; j++) q[j] = (uint8_t)((x[j] - min) * id + 0.5f);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

/* ------------------------------------------------------------------ the K-quants (ggml's k-quants) */

/* Round to nearest, ties to even: what ggml's nearest_int computes. */
static int round_even(float v) { return (int)rintf(v); }
static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ggml's make_qkx2_quants: q in [0, nmax] with value = scale * q - min_out (min_out >= 0) for n values x,
 * fitted to minimise the weighted error (absolute with use_mad, else squared): the range [min(x, 0), max x]
 * split into nmax steps, then nstep + 1 trial step counts nmax + rmin + rdelta * is, each refined by weighted
 * least squares for scale and minimum, the best kept. Returns the scale; q in L. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *min_out,
                           float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *min_out = -min;
        return 0;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(round_even(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    uint8_t trial[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(round_even(iscale * (x[i] - min)), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * trial[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            error += w[i] * diff;
        }
        if (error < best_error) {
            memcpy(L, trial, (size_t)n);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *min_out = -min;
    return scale;
}

/* ggml's GROUP_MAX_EPS: a group whose largest magnitude is below it is all zero. */
#define K_ZERO_EPS 1e-15f

/* ggml's make_qx_quants (rmse_type 1): q in [-nmax, nmax - 1] with value = scale * q; the value of largest
 * magnitude maps to -nmax, then 18 nearby step counts nmax +- 0.1 k are tried and the one with the best
 * least-squares fit weighted by w (NULL: x^2) kept. Returns the scale; q + nmax in L. */
static float fit_symmetric(int n, int nmax, const float *x, const float *w, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < K_ZERO_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(round_even(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float wi = w ? w[i] : x[i] * x[i];
        sumlx += wi * x[i] * l;
        suml2 += wi * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(round_even(iscale * x[i]), -nmax, nmax - 1);
            const float wi = w ? w[i] : x[i] * x[i];
            sumlx += wi * x[i] * l;
            suml2 += wi * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_int(round_even(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_q3_quants with its error-minimising pass (Q3_K): q in [-nmax, nmax - 1], starting from the
 * value of largest magnitude mapped to -nmax, then up to five sweeps that move single values to the step that
 * improves the weighted (x^2) least-squares fit. Returns the scale; q + nmax in L. */
static float fit_symmetric_sweeps(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < K_ZERO_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(round_even(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int l = clamp_int(round_even(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * l;
            sl2 += w * l * l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Q2_K's and Q3_K's 2-bit planes: in each 128-value half, byte l of its 32 holds element l + 32 p in bits
 * 2p, 2p + 1. */
static void pack_2bit_planes(const uint8_t *L, uint8_t *qs) {
    for (int h = 0; h < SQ_QK_K; h += 128)
        for (int l = 0; l < 32; l++)
            qs[h / 4 + l] =
                (uint8_t)(L[h + l] | L[h + l + 32] << 2 | L[h + l + 64] << 4 | L[h + l + 96] << 6);
}
static int plane_2bit(const uint8_t *qs, int j) {
    return qs[j / 128 * 32 + j % 32] >> (2 * (j % 128 / 32)) & 3;
}

/* ggml's make_qp_quants: the non-negative sub-block scales (or minimums) x of a super-block coded as integers
 * q in [0, nmax] with value = scale * q, by a least-squares fit weighted by w (the sub-blocks' summed
 * importance): nine trial step counts nmax + 0.1 k around max x, then up to five sweeps moving single codes.
 * Returns the scale; q in L. */
static float fit_positive(int n, int nmax, const float *x, const float *w, uint8_t *L) {
    float max = 0;
    for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
    if (max < K_ZERO_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = nmax / max, best = 0;
    const float scale = 1 / iscale;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * round_even(iscale * x[i]);
        best += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            const int l = round_even(iscale_is * x[i]);
            const float diff = x[i] - scale_is * (l < nmax ? l : nmax);
            mse += w[i] * diff * diff;
        }
        if (mse < best) {
            best = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = round_even(iscale * x[i]);
        L[i] = (uint8_t)(l < nmax ? l : nmax);
        sumlx += w[i] * x[i] * L[i];
        suml2 += w[i] * L[i] * L[i];
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - w[i] * x[i] * L[i], sl2 = suml2 - w[i] * L[i] * L[i];
            if (!(slx > 0 && sl2 > 0)) continue;
            int l = round_even(x[i] * sl2 / slx);
            l = l < nmax ? l : nmax;
            if (l == L[i]) continue;
            slx += w[i] * x[i] * l;
            sl2 += w[i] * l * l;
            if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (uint8_t)l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* Importance-weighted quantization (llama.cpp's quantize_<type> with quant_weights, the --imatrix path): a
 * value's weight in every least-squares fit is its input channel's importance qw times sqrt(sigma2 + x^2),
 * sigma2 = k * mean x^2 over the super-block (or the row, for 32-value blocks), k = 1 or 2 as ggml has it. */
static void importance_weights(int n, const float *qw, const float *x, float sigma2, float *w) {
    for (int l = 0; l < n; l++) w[l] = qw[l] * sqrtf(sigma2 + x[l] * x[l]);
}
static float mean_sq(int64_t n, const float *x) {
    float sum = 0;
    for (int64_t j = 0; j < n; j++) sum += x[j] * x[j];
    return sum / (float)n;
}

/* Sub-blocks of 16 fitted with a minimum, their scales and minimums coded in 4 bits, then every value
 * rounded again with the stored ones. Reference (qw NULL): absolute error weighted by |x|, codes as fractions
 * of the largest; with importance qw [256 per super-block]: squared error, codes by fit_positive. */
static void q2_K_quantize(const float *src, sq_block_q2_K *b, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        uint8_t L[SQ_QK_K], Ls[16], Lm[16];
        float scales[16], mins[16], w[16], sw[16], max_scale = 0, max_min = 0, d, dmin;
        const float sigma2 = qw ? mean_sq(SQ_QK_K, src) : 0;
        for (int j = 0; j < 16; j++) {
            if (qw) {
                importance_weights(16, qw + i * SQ_QK_K + 16 * j, src + 16 * j, sigma2, w);
                sw[j] = 0;
                for (int l = 0; l < 16; l++) sw[j] += w[l];
                scales[j] = fit_scale_min(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0);
            } else {
                for (int l = 0; l < 16; l++) w[l] = fabsf(src[16 * j + l]);
                scales[j] = fit_scale_min(16, 3, src + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
            }
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (qw) {
            d = fit_positive(16, 15, scales, sw, Ls);
            dmin = fit_positive(16, 15, mins, sw, Lm);
        } else {
            const float is = max_scale > 0 ? 15.0f / max_scale : 0, im = max_min > 0 ? 15.0f / max_min : 0;
            for (int j = 0; j < 16; j++) {
                Ls[j] = (uint8_t)round_even(is * scales[j]);
                Lm[j] = (uint8_t)round_even(im * mins[j]);
            }
            d = max_scale / 15.0f;
            dmin = max_min / 15.0f;
        }
        for (int j = 0; j < 16; j++) b[i].scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        b[i].d = sq_f32_to_f16(d);
        b[i].dmin = sq_f32_to_f16(dmin);
        for (int j = 0; j < 16; j++) {
            const float dj = sq_f16_to_f32(b[i].d) * (float)(b[i].scales[j] & 0xf);
            if (!dj) continue;
            const float dm = sq_f16_to_f32(b[i].dmin) * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clamp_int(round_even((src[16 * j + l] + dm) / dj), 0, 3);
        }
        pack_2bit_planes(L, b[i].qs);
    }
}
void sq_ref_q2_K_from_f32(const float *src, void *dst, int64_t n) { q2_K_quantize(src, dst, n, NULL); }

/* Sub-blocks of 16 fitted symmetrically, their scales coded as signed 6-bit integers of one super-block
 * scale, then every value rounded again with the stored ones. Reference: sub-blocks by make_q3_quants'
 * sweeps, codes as fractions of the scale of largest magnitude; with importance: both fits weighted
 * (make_qx_quants, the codes' weights the sub-blocks' summed importance). */
static void q3_K_quantize(const float *src, sq_block_q3_K *b, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        int8_t L[SQ_QK_K], codes[16] = {0}; /* sc + 32 */
        float scales[16], w[16], sw[16], max_scale = 0, amax = 0, d = 0;
        const float sigma2 = qw ? 2 * mean_sq(SQ_QK_K, src) : 0;
        for (int j = 0; j < 16; j++) {
            if (qw) {
                importance_weights(16, qw + i * SQ_QK_K + 16 * j, src + 16 * j, sigma2, w);
                sw[j] = 0;
                for (int l = 0; l < 16; l++) sw[j] += w[l];
                scales[j] = fit_symmetric(16, 4, src + 16 * j, w, L + 16 * j);
            } else {
                scales[j] = fit_symmetric_sweeps(16, 4, src + 16 * j, L + 16 * j);
            }
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        if (qw) {
            d = fit_symmetric(16, 32, scales, sw, codes);
        } else if (max_scale) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++)
                codes[j] = (int8_t)(clamp_int((int8_t)round_even(iscale * scales[j]), -32, 31) + 32);
            d = 1 / iscale;
        }
        memset(b[i].scales, 0, sizeof b[i].scales);
        if (qw || max_scale)
            for (int j = 0; j < 16; j++) {
                const int l = codes[j];
                b[i].scales[j % 8] |= (uint8_t)((l & 0xf) << (j < 8 ? 0 : 4));
                b[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
        b[i].d = sq_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            const float dj = sq_f16_to_f32(b[i].d) * (float)sq_q3_K_scale(b[i].scales, j);
            if (!dj) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clamp_int(round_even(src[16 * j + l] / dj), -4, 3) + 4);
        }
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        uint8_t low[SQ_QK_K];
        for (int j = 0; j < SQ_QK_K; j++) {
            if (L[j] > 3) b[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
            low[j] = (uint8_t)(L[j] & 3);
        }
        pack_2bit_planes(low, b[i].qs);
    }
}
void sq_ref_q3_K_from_f32(const float *src, void *dst, int64_t n) { q3_K_quantize(src, dst, n, NULL); }

/* Q4_K and Q5_K: sub-blocks of 32 fitted with a minimum, their scales and minimums coded in 6 bits, then
 * every value rounded again with the stored ones into L (q in [0, nmax]). Reference (qw NULL): squared error
 * weighted by rms(x) + |x|, trial steps from rmin, codes as fractions of the largest; with importance qw
 * [256]: weights from it, 37 trial steps from -0.9, codes by fit_positive. */
static void fit_k4(const float *x, int nmax, float rmin, int nstep, const float *qw, uint16_t *d,
                   uint16_t *dmin, uint8_t scales[12], uint8_t L[SQ_QK_K]) {
    float sub_scales[8], mins[8], w[32], sw[8], max_scale = 0, max_min = 0, fd, fdmin;
    uint8_t Ls[8], Lm[8];
    const float sigma2 = qw ? 2 * mean_sq(SQ_QK_K, x) : 0;
    for (int j = 0; j < 8; j++) {
        if (qw) {
            importance_weights(32, qw + 32 * j, x + 32 * j, sigma2, w);
            sw[j] = 0;
            for (int l = 0; l < 32; l++) sw[j] += w[l];
            sub_scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36, 0);
        } else {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            const float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
            sub_scales[j] =
                fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, 0);
        }
        if (sub_scales[j] > max_scale) max_scale = sub_scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    if (qw) {
        fd = fit_positive(8, 63, sub_scales, sw, Ls);
        fdmin = fit_positive(8, 63, mins, sw, Lm);
    } else {
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        for (int j = 0; j < 8; j++) {
            const uint8_t ls = (uint8_t)round_even(inv_scale * sub_scales[j]),
                          lm = (uint8_t)round_even(inv_min * mins[j]);
            Ls[j] = ls > 63 ? 63 : ls;
            Lm[j] = lm > 63 ? 63 : lm;
        }
        fd = max_scale / 63.0f;
        fdmin = max_min / 63.0f;
    }
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        const uint8_t ls = Ls[j], lm = Lm[j];
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0xf) | (lm & 0xf) << 4);
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d = sq_f32_to_f16(fd);
    *dmin = sq_f32_to_f16(fdmin);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        sq_k4_scale_min(scales, j, &sc, &m);
        const float dj = sq_f16_to_f32(*d) * (float)sc;
        if (!dj) continue;
        const float dm = sq_f16_to_f32(*dmin) * (float)m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clamp_int(round_even((x[32 * j + l] + dm) / dj), 0, nmax);
    }
}

/* Element j of a Q4_K/Q5_K super-block: its low four bits from qs, as dtype.h describes. */
static int k4_low_bits(const uint8_t *qs, int j) {
    return qs[j / 64 * 32 + j % 32] >> (4 * (j % 64 / 32)) & 0xf;
}

static void q4_K_quantize(const float *src, sq_block_q4_K *b, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        uint8_t L[SQ_QK_K];
        fit_k4(src, 15, -1.0f, 20, qw ? qw + i * SQ_QK_K : NULL, &b[i].d, &b[i].dmin, b[i].scales, L);
        sq_ref_block_set_ints(SQ_DTYPE_Q4_K, &b[i], L);
    }
}
void sq_ref_q4_K_from_f32(const float *src, void *dst, int64_t n) { q4_K_quantize(src, dst, n, NULL); }

static void q5_K_quantize(const float *src, sq_block_q5_K *b, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        uint8_t L[SQ_QK_K];
        fit_k4(src, 31, -0.5f, 15, qw ? qw + i * SQ_QK_K : NULL, &b[i].d, &b[i].dmin, b[i].scales, L);
        sq_ref_block_set_ints(SQ_DTYPE_Q5_K, &b[i], L);
    }
}
void sq_ref_q5_K_from_f32(const float *src, void *dst, int64_t n) { q5_K_quantize(src, dst, n, NULL); }

/* Element j of a Q6_K super-block, q in [0, 63]. */
static int q6_K_value(const sq_block_q6_K *b, int j) {
    const int half = j / 128, plane = j % 128 / 32, l = j % 32;
    const int low = b->ql[64 * half + 32 * (plane & 1) + l] >> (4 * (plane >> 1)) & 0xf;
    return low | (b->qh[32 * half + l] >> (2 * plane) & 3) << 4;
}
/* Sub-blocks of 16 fitted symmetrically (weighted by x^2, or by the importance itself: ggml weighs Q6_K's
 * fits by qw alone), their scales stored as signed 8-bit fractions of the one of largest magnitude, then
 * every value rounded again with the stored ones. */
static void q6_K_quantize(const float *src, sq_block_q6_K *b, int64_t n, const float *qw) {
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        int8_t L[SQ_QK_K];
        float scales[16], max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] =
                fit_symmetric(16, 32, src + 16 * j, qw ? qw + i * SQ_QK_K + 16 * j : NULL, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) {
                max_abs = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(&b[i], 0, sizeof b[i]);
        if (max_abs < K_ZERO_EPS) continue; /* all zero (d = +0) */
        const float iscale = -128.0f / max_scale;
        b[i].d = sq_f32_to_f16(1 / iscale);
        for (int j = 0; j < 16; j++) {
            const int s = round_even(iscale * scales[j]);
            b[i].scales[j] = (int8_t)(s > 127 ? 127 : s);
        }
        for (int j = 0; j < 16; j++) {
            const float d = sq_f16_to_f32(b[i].d) * (float)b[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clamp_int(round_even(src[16 * j + l] / d), -32, 31) + 32);
        }
        uint8_t q[SQ_QK_K];
        for (int j = 0; j < SQ_QK_K; j++) q[j] = (uint8_t)L[j];
        sq_ref_block_set_ints(SQ_DTYPE_Q6_K, &b[i], q);
    }
}
void sq_ref_q6_K_from_f32(const float *src, void *dst, int64_t n) { q6_K_quantize(src, dst, n, NULL); }

/* The importance-weighted quantizers of one row (n values, qw [n]; the dtype table's from_f32_weighted). */
void sq_ref_q2_K_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    q2_K_quantize(src, dst, n, qw);
}
void sq_ref_q3_K_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    q3_K_quantize(src, dst, n, qw);
}
void sq_ref_q4_K_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    q4_K_quantize(src, dst, n, qw);
}
void sq_ref_q5_K_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    q5_K_quantize(src, dst, n, qw);
}
void sq_ref_q6_K_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    q6_K_quantize(src, dst, n, qw);
}

/* Q4_0 and Q5_0 (symmetric, 2^bits levels) and Q4_1 and Q5_1 (with a minimum) per 32-value block with
 * importance: the scale by make_qx_quants / the scale and minimum by make_qkx3_quants, weighted; sigma2 over
 * the whole row. The values found by the fit are stored as they are (no second rounding). */
static void blocks32_weighted(const float *src, void *dst, int64_t n, const float *qw, int bits,
                              int with_min) {
    const float sigma2 = mean_sq(n, src);
    for (int64_t ib = 0; ib < n / 32; ib++) {
        const float *x = src + 32 * ib;
        float w[32];
        int q[32];
        importance_weights(32, qw + 32 * ib, x, sigma2, w);
        float d, min = 0;
        if (with_min) {
            uint8_t L[32];
            d = fit_scale_min(32, (1 << bits) - 1, x, w, L, &min, -0.9f, 0.05f, 36, 0);
            for (int j = 0; j < 32; j++) q[j] = L[j];
        } else {
            int8_t L[32];
            d = fit_symmetric(32, 1 << (bits - 1), x, w, L);
            for (int j = 0; j < 32; j++) q[j] = L[j];
        }
        uint8_t *qs;
        if (bits == 4 && !with_min) {
            sq_block_q4_0 *b = (sq_block_q4_0 *)dst + ib;
            b->d = sq_f32_to_f16(d);
            qs = b->qs;
        } else if (bits == 4) {
            sq_block_q4_1 *b = (sq_block_q4_1 *)dst + ib;
            b->d = sq_f32_to_f16(d);
            b->m = sq_f32_to_f16(-min);
            qs = b->qs;
        } else if (!with_min) {
            sq_block_q5_0 *b = (sq_block_q5_0 *)dst + ib;
            b->d = sq_f32_to_f16(d);
            q5_pack(q, b->qs, b->qh);
            continue;
        } else {
            sq_block_q5_1 *b = (sq_block_q5_1 *)dst + ib;
            b->d = sq_f32_to_f16(d);
            b->m = sq_f32_to_f16(-min);
            q5_pack(q, b->qs, b->qh);
            continue;
        }
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
    }
}
void sq_ref_q4_0_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    blocks32_weighted(src, dst, n, qw, 4, 0);
}
void sq_ref_q4_1_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    blocks32_weighted(src, dst, n, qw, 4, 1);
}
void sq_ref_q5_0_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    blocks32_weighted(src, dst, n, qw, 5, 0);
}
void sq_ref_q5_1_from_f32_weighted(const float *src, void *dst, int64_t n, const float *qw) {
    blocks32_weighted(src, dst, n, qw, 5, 1);
}

void sq_ref_q8_K_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_q8_K *b = src;
    for (int64_t i = 0; i < n / SQ_QK_K; i++)
        for (int j = 0; j < SQ_QK_K; j++) dst[i * SQ_QK_K + j] = b[i].d * (float)b[i].qs[j];
}
/* The value of largest magnitude maps to -127 (ggml's choice), every value rounds to nearest even. */
void sq_ref_q8_K_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / SQ_QK_K; i++, src += SQ_QK_K) {
        float amax = 0, max = 0;
        for (int j = 0; j < SQ_QK_K; j++)
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        memset(&b[i], 0, sizeof b[i]);
        if (!amax) continue;
        const float iscale = -127.0f / max;
        for (int j = 0; j < SQ_QK_K; j++) {
            const int v = round_even(iscale * src[j]);
            b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < SQ_QK_K; j++) b[i].bsums[j / 16] = (int16_t)(b[i].bsums[j / 16] + b[i].qs[j]);
        b[i].d = 1 / iscale;
    }
}

/* ------------------------------------------------------------------ integers of a block, and dequantization
 */

void sq_ref_block_ints(sq_dtype dt, const void *block, sq_block_ints *b) {
    sq_block_scales(dt, block, b);
    switch (dt) {
    case SQ_DTYPE_Q4_0:
    case SQ_DTYPE_Q4_1: {
        const uint8_t *qs =
            dt == SQ_DTYPE_Q4_0 ? ((const sq_block_q4_0 *)block)->qs : ((const sq_block_q4_1 *)block)->qs;
        for (int j = 0; j < 16; j++) b->q[j] = qs[j] & 0x0f, b->q[j + 16] = qs[j] >> 4;
        break;
    }
    case SQ_DTYPE_Q5_0:
    case SQ_DTYPE_Q5_1: {
        const uint8_t *qh =
            dt == SQ_DTYPE_Q5_0 ? ((const sq_block_q5_0 *)block)->qh : ((const sq_block_q5_1 *)block)->qh;
        const uint8_t *qs =
            dt == SQ_DTYPE_Q5_0 ? ((const sq_block_q5_0 *)block)->qs : ((const sq_block_q5_1 *)block)->qs;
        int q[32];
        q5_values(qs, qh, q);
        for (int j = 0; j < 32; j++) b->q[j] = (uint8_t)q[j];
        break;
    }
    case SQ_DTYPE_Q2_K:
        for (int j = 0; j < SQ_QK_K; j++)
            b->q[j] = (uint8_t)plane_2bit(((const sq_block_q2_K *)block)->qs, j);
        break;
    case SQ_DTYPE_Q3_K: {
        const sq_block_q3_K *x = block;
        for (int j = 0; j < SQ_QK_K; j++)
            b->q[j] = (uint8_t)(plane_2bit(x->qs, j) | (x->hmask[j % 32] >> (j / 32) & 1) << 2);
        break;
    }
    case SQ_DTYPE_Q4_K:
        for (int j = 0; j < SQ_QK_K; j++)
            b->q[j] = (uint8_t)k4_low_bits(((const sq_block_q4_K *)block)->qs, j);
        break;
    case SQ_DTYPE_Q5_K: {
        const sq_block_q5_K *x = block;
        for (int j = 0; j < SQ_QK_K; j++)
            b->q[j] = (uint8_t)(k4_low_bits(x->qs, j) | (x->qh[j % 32] >> (j / 32) & 1) << 4);
        break;
    }
    case SQ_DTYPE_Q6_K:
        for (int j = 0; j < SQ_QK_K; j++) b->q[j] = (uint8_t)q6_K_value(block, j);
        break;
    default: /* not a format with integer sub-block scales */
        break;
    }
}

void sq_ref_block_set_ints(sq_dtype dt, void *block, const uint8_t *q) {
    switch (dt) {
    case SQ_DTYPE_Q4_0:
    case SQ_DTYPE_Q4_1: {
        uint8_t *qs = dt == SQ_DTYPE_Q4_0 ? ((sq_block_q4_0 *)block)->qs : ((sq_block_q4_1 *)block)->qs;
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
        break;
    }
    case SQ_DTYPE_Q5_0:
    case SQ_DTYPE_Q5_1: {
        int v[32];
        for (int j = 0; j < 32; j++) v[j] = q[j];
        if (dt == SQ_DTYPE_Q5_0)
            q5_pack(v, ((sq_block_q5_0 *)block)->qs, ((sq_block_q5_0 *)block)->qh);
        else
            q5_pack(v, ((sq_block_q5_1 *)block)->qs, ((sq_block_q5_1 *)block)->qh);
        break;
    }
    case SQ_DTYPE_Q2_K:
        pack_2bit_planes(q, ((sq_block_q2_K *)block)->qs);
        break;
    case SQ_DTYPE_Q3_K: {
        sq_block_q3_K *x = block;
        uint8_t low[SQ_QK_K];
        memset(x->hmask, 0, sizeof x->hmask);
        for (int j = 0; j < SQ_QK_K; j++) {
            low[j] = q[j] & 3;
            x->hmask[j % 32] |= (uint8_t)((q[j] >> 2 & 1) << (j / 32));
        }
        pack_2bit_planes(low, x->qs);
        break;
    }
    case SQ_DTYPE_Q4_K:
    case SQ_DTYPE_Q5_K: { /* Q5_K's qs lie as Q4_K's, after its qh */
        uint8_t *qs = dt == SQ_DTYPE_Q4_K ? ((sq_block_q4_K *)block)->qs : ((sq_block_q5_K *)block)->qs;
        for (int j = 0; j < SQ_QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                qs[j / 2 + l] = (uint8_t)((q[j + l] & 0xf) | (q[j + l + 32] & 0xf) << 4);
        if (dt == SQ_DTYPE_Q5_K) {
            sq_block_q5_K *x = block;
            memset(x->qh, 0, sizeof x->qh);
            for (int j = 0; j < SQ_QK_K; j++) x->qh[j % 32] |= (uint8_t)((q[j] >> 4) << (j / 32));
        }
        break;
    }
    case SQ_DTYPE_Q6_K: {
        sq_block_q6_K *x = block;
        memset(x->ql, 0, sizeof x->ql);
        memset(x->qh, 0, sizeof x->qh);
        for (int j = 0; j < SQ_QK_K; j++) {
            const int half = j / 128, plane = j % 128 / 32, l = j % 32;
            x->ql[64 * half + 32 * (plane & 1) + l] |= (uint8_t)((q[j] & 0xf) << (4 * (plane >> 1)));
            x->qh[32 * half + l] |= (uint8_t)((q[j] >> 4) << (2 * plane));
        }
        break;
    }
    default: /* not a format with integer sub-block scales */
        break;
    }
}

/* value = (d * sc) * (q - zero) - dmin * m, rounded step by step as ggml's dequantizers (and gguf's) round.
 */
static void block_ints_to_f32(sq_dtype dt, const void *src, float *dst, int64_t n) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const uint8_t *p = src;
    sq_block_ints b;
    for (int64_t i = 0; i < n / f->block_elems; i++, p += f->block_bytes, dst += f->block_elems) {
        sq_ref_block_ints(dt, p, &b);
        for (int j = 0; j < f->block_elems; j++) {
            const int s = j / f->sub_block_elems;
            dst[j] = b.d * (float)b.sc[s] * (float)(b.q[j] - f->zero_value) - b.dmin * (float)b.m[s];
        }
    }
}
#define DEFINE_BLOCK_INTS_TO_F32(name, DTYPE)                                                                \
    void sq_ref_##name##_to_f32(const void *src, float *dst, int64_t n) {                                    \
        block_ints_to_f32(DTYPE, src, dst, n);                                                               \
    }
DEFINE_BLOCK_INTS_TO_F32(q5_0, SQ_DTYPE_Q5_0)
DEFINE_BLOCK_INTS_TO_F32(q5_1, SQ_DTYPE_Q5_1)
DEFINE_BLOCK_INTS_TO_F32(q2_K, SQ_DTYPE_Q2_K)
DEFINE_BLOCK_INTS_TO_F32(q3_K, SQ_DTYPE_Q3_K)
DEFINE_BLOCK_INTS_TO_F32(q4_K, SQ_DTYPE_Q4_K)
DEFINE_BLOCK_INTS_TO_F32(q5_K, SQ_DTYPE_Q5_K)
DEFINE_BLOCK_INTS_TO_F32(q6_K, SQ_DTYPE_Q6_K)

/* ---------------------------------------------------------------- 2:4 semi-structured (squeeze's own) */

int64_t sq_nm_violation(const float *x, int64_t n, int nm_n, int nm_m) {
    for (int64_t g = 0; g < n / nm_m; g++) {
        int nonzero = 0;
        for (int j = 0; j < nm_m; j++) nonzero += x[g * nm_m + j] != 0; /* NaN != 0 */
        if (nonzero > nm_n) return g;
    }
    return -1;
}

int64_t sq_nm_bad_block(sq_dtype dt, const void *blocks, int64_t n_blocks) {
    const sq_dtype_traits *f = &sq_dtype_table[dt];
    const uint8_t *idx = (const uint8_t *)blocks + f->meta_bytes - 4; /* the 4 bytes before the values */
    for (int64_t i = 0; i < n_blocks; i++, idx += f->block_bytes)
        for (int b = 0; b < 4; b++) /* each byte: two groups, positions in bits 0-1 < 2-3, 4-5 < 6-7 */
            if ((idx[b] & 3) >= (idx[b] >> 2 & 3) || (idx[b] >> 4 & 3) >= (idx[b] >> 6)) return i;
    return -1;
}

/* The two kept values of each group of four of x[SQ_QK_NM], the larger magnitudes (ties: lower position
 * first; NaN is the largest), in column order into kept[SQ_NM_KEPT], their positions into idx. */
static void nm24_select(const float *x, float *kept, uint8_t idx[4]) {
    uint32_t bits = 0;
    for (int g = 0; g < SQ_QK_NM / 4; g++) {
        const float *v = x + 4 * g;
        int a = -1, b = -1; /* the best and the second best position */
        for (int j = 0; j < 4; j++) {
            const float m = isnan(v[j]) ? INFINITY : fabsf(v[j]);
            if (a < 0 || m > (isnan(v[a]) ? INFINITY : fabsf(v[a])))
                b = a, a = j;
            else if (b < 0 || m > (isnan(v[b]) ? INFINITY : fabsf(v[b])))
                b = j;
        }
        const int lo = a < b ? a : b, hi = a < b ? b : a;
        kept[2 * g] = v[lo];
        kept[2 * g + 1] = v[hi];
        bits |= (uint32_t)lo << (4 * g) | (uint32_t)hi << (4 * g + 2);
    }
    for (int i = 0; i < 4; i++) idx[i] = (uint8_t)(bits >> 8 * i);
}

/* Places kept[SQ_NM_KEPT] into dst[SQ_QK_NM] at the positions idx names, `zero` elsewhere: 0 * d, the
 * value a stored 0 has (-0 for a negative scale, as the kernels' dequantizers give it). */
static void nm24_place(const uint8_t idx[4], const float *kept, float zero, float *dst) {
    const uint32_t bits =
        (uint32_t)idx[0] | (uint32_t)idx[1] << 8 | (uint32_t)idx[2] << 16 | (uint32_t)idx[3] << 24;
    for (int j = 0; j < SQ_QK_NM; j++) dst[j] = zero;
    for (int k = 0; k < SQ_NM_KEPT; k++) dst[4 * (k / 2) + (bits >> 2 * k & 3)] = kept[k];
}

void sq_ref_sparse24_q8_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_sparse24_q8 *b = src;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        const float d = sq_f16_to_f32(b[i].d);
        float kept[SQ_NM_KEPT];
        for (int k = 0; k < SQ_NM_KEPT; k++) kept[k] = b[i].qs[k] * d;
        nm24_place(b[i].idx, kept, 0.0f * d, dst + i * SQ_QK_NM);
    }
}
void sq_ref_sparse24_q8_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_sparse24_q8 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        float kept[SQ_NM_KEPT], amax = 0;
        nm24_select(src + i * SQ_QK_NM, kept, b[i].idx);
        for (int k = 0; k < SQ_NM_KEPT; k++) amax = fmaxf(amax, fabsf(kept[k]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        for (int k = 0; k < SQ_NM_KEPT; k++) b[i].qs[k] = (int8_t)roundf(kept[k] * id);
    }
}

void sq_ref_sparse24_q4_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_sparse24_q4 *b = src;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        const float d = sq_f16_to_f32(b[i].d);
        float kept[SQ_NM_KEPT];
        for (int k = 0; k < SQ_NM_KEPT / 2; k++) {
            kept[k] = ((b[i].qs[k] & 0x0f) - 8) * d;
            kept[k + SQ_NM_KEPT / 2] = ((b[i].qs[k] >> 4) - 8) * d;
        }
        nm24_place(b[i].idx, kept, 0.0f * d, dst + i * SQ_QK_NM);
    }
}
void sq_ref_sparse24_q4_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_sparse24_q4 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        float kept[SQ_NM_KEPT], amax = 0, max = 0; /* Q4_0's: the signed largest magnitude maps to -8 */
        nm24_select(src + i * SQ_QK_NM, kept, b[i].idx);
        for (int k = 0; k < SQ_NM_KEPT; k++)
            if (fabsf(kept[k]) > amax) {
                amax = fabsf(kept[k]);
                max = kept[k];
            }
        const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = sq_f32_to_f16(d);
        for (int k = 0; k < SQ_NM_KEPT / 2; k++) {
            int q0 = (int)(kept[k] * id + 8.5f), q1 = (int)(kept[k + SQ_NM_KEPT / 2] * id + 8.5f);
            q0 = q0 > 15 ? 15 : q0;
            q1 = q1 > 15 ? 15 : q1;
            b[i].qs[k] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void sq_ref_sparse24_f16_to_f32(const void *src, float *dst, int64_t n) {
    const sq_block_sparse24_f16 *b = src;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        float kept[SQ_NM_KEPT];
        for (int k = 0; k < SQ_NM_KEPT; k++) kept[k] = sq_f16_to_f32(b[i].v[k]);
        nm24_place(b[i].idx, kept, 0.0f, dst + i * SQ_QK_NM);
    }
}
void sq_ref_sparse24_f16_from_f32(const float *src, void *dst, int64_t n) {
    sq_block_sparse24_f16 *b = dst;
    for (int64_t i = 0; i < n / SQ_QK_NM; i++) {
        float kept[SQ_NM_KEPT];
        nm24_select(src + i * SQ_QK_NM, kept, b[i].idx);
        for (int k = 0; k < SQ_NM_KEPT; k++) b[i].v[k] = sq_f32_to_f16(kept[k]);
    }
}
