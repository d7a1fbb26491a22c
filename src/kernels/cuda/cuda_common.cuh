/* What the CUDA kernels share: the backend state, error recording, and the device layout of weights (the
 * block formats' quants and scales apart, from ggml's blocks; core/dtype.h's structs, which C++ cannot
 * include, describe the host's). */
#ifndef SQ_KERNELS_CUDA_COMMON_CUH
#define SQ_KERNELS_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "kernels/cuda/cuda_ops.h"

struct sq_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    int n_sm;
    char error[256]; /* the first error since sq_cuda_take_error */
    void *scratch;   /* grow-only: quantized/rounded activations, dequantized weights, attention partials */
    size_t scratch_bytes;
    struct sq_cuda_graphs *graphs; /* graph.cu's captured steps, or NULL */
};
void sq_cuda_graphs_free(sq_cuda *c);

/* Records the first failure of a CUDA call (launches are checked through cudaGetLastError). */
void sq_cuda_note(sq_cuda *c, cudaError_t e, const char *what);
void sq_cuda_note_blas(sq_cuda *c, cublasStatus_t s, const char *what);
#define SQ_CUDA_LAUNCHED(c, what) sq_cuda_note((c), cudaGetLastError(), (what))
/* At least nbytes of scratch (kept between calls; contents not preserved), or NULL after an error. */
void *sq_cuda_scratch(sq_cuda *c, size_t nbytes);

#define SQ_QK   32 /* elements of a Q8_0 / Q4_0 block */
#define SQ_QK_K 256
__device__ __forceinline__ float sq_cu_h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float sq_cu_bf2f(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* ggml's get_scale_min_k4: the 6-bit scale and minimum of sub-block j (< 8) of a Q4_K block */
__device__ __forceinline__ void sq_cu_k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

__device__ __forceinline__ float sq_cu_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The device layout of the block formats (layout.cu uploads it; the host copy keeps ggml's): every block of a
 * weight is split into its quants and its scales, the quants of all blocks first, 16-byte aligned, in block
 * order (row-major), then the scales of all blocks, in the same order:
 *   q4_0: quants [n_blocks][16] (ggml's qs), then d [n_blocks] (f16)
 *   q8_0: quants [n_blocks][32], then d [n_blocks]
 *   q4_K: quants [n_blocks][128], then [n_blocks][16]: d, dmin (f16) and the 12 bytes of 6-bit scales/mins
 * so a warp reads 16 bytes a lane of quants (one 16-byte load per 32 q4_0 values) and its scales apart, in
 * the same total bytes. */
template <int DT> struct sq_cu_layout {
    static constexpr int quant_bytes = 0, scale_bytes = 0, elems = 1; /* plain float formats: as stored */
};
template <> struct sq_cu_layout<SQ_CUDA_Q4_0> {
    static constexpr int quant_bytes = 16, scale_bytes = 2, elems = SQ_QK;
};
template <> struct sq_cu_layout<SQ_CUDA_Q8_0> {
    static constexpr int quant_bytes = 32, scale_bytes = 2, elems = SQ_QK;
};
template <> struct sq_cu_layout<SQ_CUDA_Q4_K> {
    static constexpr int quant_bytes = 128, scale_bytes = 16, elems = SQ_QK_K;
};

/* A weight [rows][cols] in the device layout: where its quants and scales start. */
struct sq_cu_weight {
    const uint8_t *quants, *scales; /* scales: NULL for plain float formats */
    int64_t cols;
};
template <int DT> static inline sq_cu_weight sq_cu_weight_of(const void *w, int64_t rows, int64_t cols) {
    using L = sq_cu_layout<DT>;
    const uint8_t *b = (const uint8_t *)w;
    if (L::quant_bytes == 0) return {b, NULL, cols};
    return {b, b + (size_t)(rows * (cols / L::elems)) * L::quant_bytes, cols};
}

/* Element j of row r of a weight stored as DT, exactly as core/dtype_ref.c's to_f32 computes it. */
template <int DT> __device__ __forceinline__ float element(const sq_cu_weight &w, int64_t r, int64_t j) {
    if (DT == SQ_CUDA_F32) return ((const float *)w.quants)[r * w.cols + j];
    if (DT == SQ_CUDA_F16) return sq_cu_h2f(((const uint16_t *)w.quants)[r * w.cols + j]);
    if (DT == SQ_CUDA_BF16) return sq_cu_bf2f(((const uint16_t *)w.quants)[r * w.cols + j]);
    using L = sq_cu_layout<DT>;
    const int64_t blk = r * (w.cols / L::elems) + j / L::elems;
    const uint8_t *q = w.quants + blk * L::quant_bytes;
    const int i = (int)(j % L::elems);
    if (DT == SQ_CUDA_Q8_0)
        return __fmul_rn((float)(int8_t)q[i], sq_cu_h2f(((const uint16_t *)w.scales)[blk]));
    if (DT == SQ_CUDA_Q4_0) {
        const int v = i < 16 ? (q[i] & 0xf) : (q[i - 16] >> 4);
        return __fmul_rn((float)(v - 8), sq_cu_h2f(((const uint16_t *)w.scales)[blk]));
    }
    /* Q4_K: d * sc * q - dmin * m, rounded step by step as the reference */
    const uint8_t *meta = w.scales + blk * 16;
    const int sub = i / 32;
    int sc, m;
    sq_cu_k4_scale_min(meta + 4, sub, &sc, &m);
    const uint8_t byte = q[(sub / 2) * 32 + i % 32];
    const int v = sub & 1 ? byte >> 4 : byte & 0xf;
    return __fsub_rn(__fmul_rn(__fmul_rn(sq_cu_h2f(((const uint16_t *)meta)[0]), (float)sc), (float)v),
                     __fmul_rn(sq_cu_h2f(((const uint16_t *)meta)[1]), (float)m));
}

/* x quantized to 8 bits per 32 values, as sq_ref_q8_0_from_f32 (d = amax / 127, q = roundf(x / d)), for the
 * integer-dot GEMVs (matmul.cu): one warp per 32-value block, lane i holding value i. xq [n][cols], xd
 * [n][cols / 32] (the scale as stored, rounded to f16), xs [n][cols / 16]: d times the sum of each 16
 * quantized values, which the offsets of q4_0 (-8) and q4_K (-dmin m) multiply. */
struct sq_cu_q8x {
    int8_t *q;
    float *d, *s;
};
__device__ __forceinline__ void sq_cu_quantize_block(float v, int64_t block, const sq_cu_q8x &x) {
    const int lane = threadIdx.x % 32;
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    const int q = (int)roundf(__fmul_rn(v, id));
    x.q[block * 32 + lane] = (int8_t)q;
    int sum = q;
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float dh = __half2float(__float2half_rn(d));
    if (lane == 0) x.d[block] = dh;
    if (lane % 16 == 0) x.s[block * 2 + lane / 16] = dh * (float)sum;
}
/* sq_cuda_rmsnorm (out [n_tokens][dim]) that also quantizes its output into xq (dim a multiple of 32). */
void sq_cu_rmsnorm_q8(sq_cuda *c, const float *x, const float *weight, float eps, int n_tokens, int dim,
                      float *out, const sq_cu_q8x &xq);

/* Calls f(std::integral_constant<int, DT>()) for the format dtype: the one switch over formats that every
 * kernel templated on a format is launched through. */
template <class F> static void sq_cu_with_format(int dtype, F &&f) {
    switch (dtype) {
    case SQ_CUDA_F32:
        f(std::integral_constant<int, SQ_CUDA_F32>());
        break;
    case SQ_CUDA_F16:
        f(std::integral_constant<int, SQ_CUDA_F16>());
        break;
    case SQ_CUDA_BF16:
        f(std::integral_constant<int, SQ_CUDA_BF16>());
        break;
    case SQ_CUDA_Q8_0:
        f(std::integral_constant<int, SQ_CUDA_Q8_0>());
        break;
    case SQ_CUDA_Q4_0:
        f(std::integral_constant<int, SQ_CUDA_Q4_0>());
        break;
    case SQ_CUDA_Q4_K:
        f(std::integral_constant<int, SQ_CUDA_Q4_K>());
        break;
    }
}

static inline unsigned sq_cu_blocks(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

#endif
