/* What the CUDA kernels share: the backend state, error recording, and ggml's block layouts (the same bytes
 * as core/dtype.h's structs, which C++ cannot include: its format table uses C99 designators; the sizes are
 * checked here). */
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
};

/* Records the first failure of a CUDA call (launches are checked through cudaGetLastError). */
void sq_cuda_note(sq_cuda *c, cudaError_t e, const char *what);
void sq_cuda_note_blas(sq_cuda *c, cublasStatus_t s, const char *what);
#define SQ_CUDA_LAUNCHED(c, what) sq_cuda_note((c), cudaGetLastError(), (what))
/* At least nbytes of scratch (kept between calls; contents not preserved), or NULL after an error. */
void *sq_cuda_scratch(sq_cuda *c, size_t nbytes);

#define SQ_QK   32 /* elements of a Q8_0 / Q4_0 block */
#define SQ_QK_K 256
struct __align__(2) sq_cu_q8_0 {
    uint16_t d;
    int8_t qs[SQ_QK];
};
struct __align__(2) sq_cu_q4_0 {
    uint16_t d;
    uint8_t qs[SQ_QK / 2];
};
struct __align__(2) sq_cu_q4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[SQ_QK_K / 2];
};
static_assert(sizeof(sq_cu_q8_0) == 34, "ggml block_q8_0");
static_assert(sizeof(sq_cu_q4_0) == 18, "ggml block_q4_0");
static_assert(sizeof(sq_cu_q4_K) == 144, "ggml block_q4_K");

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

/* Element j of a row stored as DT, exactly as core/dtype_ref.c's to_f32 computes it. */
template <int DT> __device__ __forceinline__ float element(const uint8_t *row, int64_t j) {
    if (DT == SQ_CUDA_F32) return ((const float *)row)[j];
    if (DT == SQ_CUDA_F16) return sq_cu_h2f(((const uint16_t *)row)[j]);
    if (DT == SQ_CUDA_BF16) return sq_cu_bf2f(((const uint16_t *)row)[j]);
    if (DT == SQ_CUDA_Q8_0) {
        const sq_cu_q8_0 *b = (const sq_cu_q8_0 *)row + j / SQ_QK;
        return __fmul_rn((float)b->qs[j % SQ_QK], sq_cu_h2f(b->d));
    }
    if (DT == SQ_CUDA_Q4_0) {
        const sq_cu_q4_0 *b = (const sq_cu_q4_0 *)row + j / SQ_QK;
        const int i = (int)(j % SQ_QK);
        const int q = i < 16 ? (b->qs[i] & 0xf) : (b->qs[i - 16] >> 4);
        return __fmul_rn((float)(q - 8), sq_cu_h2f(b->d));
    }
    /* Q4_K: d * sc * q - dmin * m, rounded step by step as the reference */
    const sq_cu_q4_K *b = (const sq_cu_q4_K *)row + j / SQ_QK_K;
    const int i = (int)(j % SQ_QK_K), sub = i / 32;
    int sc, m;
    sq_cu_k4_scale_min(b->scales, sub, &sc, &m);
    const uint8_t byte = b->qs[(sub / 2) * 32 + i % 32];
    const int q = sub & 1 ? byte >> 4 : byte & 0xf;
    return __fsub_rn(__fmul_rn(__fmul_rn(sq_cu_h2f(b->d), (float)sc), (float)q),
                     __fmul_rn(sq_cu_h2f(b->dmin), (float)m));
}

/* Bytes of a row of cols values stored as dtype (one of cuda_ops.h's formats). */
static inline size_t sq_cu_row_bytes(int dtype, int64_t cols) {
    switch (dtype) {
    case SQ_CUDA_F32:
        return (size_t)cols * 4;
    case SQ_CUDA_F16:
    case SQ_CUDA_BF16:
        return (size_t)cols * 2;
    case SQ_CUDA_Q8_0:
        return (size_t)cols / SQ_QK * sizeof(sq_cu_q8_0);
    case SQ_CUDA_Q4_0:
        return (size_t)cols / SQ_QK * sizeof(sq_cu_q4_0);
    default:
        return (size_t)cols / SQ_QK_K * sizeof(sq_cu_q4_K);
    }
}

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
