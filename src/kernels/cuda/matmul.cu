/* y = x · W^T on the GPU, W in its stored format.
 *
 * Decode (n_tokens <= gemv_max_tokens: 2 for float formats, 8 for quantized ones): a GEMV that reads every
 * weight byte once with the dequantization fused in. Each row belongs to one warp or, where rows are few, to
 * 2-8 warps of a block that each take a contiguous part of the row (split-K) and add their sums through
 * shared memory. Plain float formats are read straight from global memory 16 bytes a lane; block formats
 * (34-, 18- and 144-byte blocks, only 2-byte aligned) are staged per warp through shared memory with
 * coalesced 16-byte loads, about 2 KB a step (enough bytes in flight per SM to cover the memory latency),
 * then each lane decodes whole 32-value units. Quantized weights multiply x quantized to 8 bits per 32-value
 * block (Q8_0's own rounding, core/dtype_ref.c) with integer dot products (dp4a), as llama.cpp's mmvq and the
 * CPU's integer GEMVs do: 4x less activation traffic than fp32 x, exact integer sums.
 *
 * Prefill and larger batches: cuBLAS (GemmEx) on tensor cores with fp32 accumulation: f16 and bf16 weights as
 * they are, x rounded to the weight's 16-bit type; quantized weights dequantized to f16 first (a scratch
 * copy of the matrix). f32 weights take the plain fp32 SGEMM (no TF32). sq_cuda_matmul_precision states each
 * path's rounding, so that tests round their oracle alike. */
#include "kernels/cuda/cuda_common.cuh"

enum { GEMV_MAX_TOKENS = 8, WARPS = 8 };

static int is_quantized(int dtype) {
    return dtype == SQ_CUDA_Q8_0 || dtype == SQ_CUDA_Q4_0 || dtype == SQ_CUDA_Q4_K;
}

/* The GEMV reads x from L1 once per weight row: past 2 tokens fp32 x costs more than cuBLAS on 16-bit weights
 * (measured on the H200: 4 tokens 40% of the copy bandwidth, cuBLAS 75%); quantized weights keep the GEMV to
 * 8 tokens (8-bit x, and cuBLAS would need the matrix dequantized first). */
static int gemv_max_tokens(int dtype) { return is_quantized(dtype) ? GEMV_MAX_TOKENS : 2; }

void sq_cuda_matmul_precision(int dtype, int n_tokens, int *x_dtype, int *w_dtype) {
    const int quantized = is_quantized(dtype);
    *w_dtype = dtype;
    if (n_tokens <= gemv_max_tokens(dtype)) {
        *x_dtype = quantized ? SQ_CUDA_Q8_0 : SQ_CUDA_F32;
        return;
    }
    if (dtype == SQ_CUDA_F32) {
        *x_dtype = SQ_CUDA_F32;
        return;
    }
    *x_dtype = dtype == SQ_CUDA_BF16 ? SQ_CUDA_BF16 : SQ_CUDA_F16;
    if (quantized) *w_dtype = SQ_CUDA_F16;
}

int sq_cuda_has_format(int dtype) {
    return dtype == SQ_CUDA_F32 || dtype == SQ_CUDA_F16 || dtype == SQ_CUDA_BF16 || dtype == SQ_CUDA_Q8_0 ||
           dtype == SQ_CUDA_Q4_0 || dtype == SQ_CUDA_Q4_K;
}

/* ---------------------------------------------------------------- x quantized to 8 bits */

/* One warp per 32-value block, as sq_ref_q8_0_from_f32: d = amax / 127, q = roundf(x / d); the kernels use
 * the scale as stored (rounded to f16). xq [n][cols], xd [n][cols / 32]. */
__global__ void quantize_x_kernel(const float *x, int64_t n_blocks, int8_t *xq, float *xd) {
    const int64_t b = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (b >= n_blocks) return;
    const float v = x[b * 32 + lane];
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = __fdiv_rn(amax, 127.0f);
    const float id = d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
    xq[b * 32 + lane] = (int8_t)roundf(__fmul_rn(v, id));
    if (lane == 0) xd[b] = __half2float(__float2half_rn(d));
}

/* ---------------------------------------------------------------- GEMV, plain float formats */

/* 16 bytes of weights as floats: 4 f32 or 8 f16/bf16 */
template <int DT> __device__ __forceinline__ void unpack16(uint4 v, float *f) {
    if (DT == SQ_CUDA_F32) {
        f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y), f[2] = __uint_as_float(v.z),
        f[3] = __uint_as_float(v.w);
        return;
    }
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (DT == SQ_CUDA_F16) {
            const float2 p = __half22float2(*(const __half2 *)&w[i]);
            f[2 * i] = p.x, f[2 * i + 1] = p.y;
        } else {
            f[2 * i] = __uint_as_float(w[i] << 16), f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
}

/* Adds each warp's sums into y: directly with one warp a row, else through shared memory. */
template <int NT>
__device__ __forceinline__ void finish_rows(float (&acc)[NT], int64_t row, int64_t rows, int wpr, float *y) {
    __shared__ float part[WARPS][NT];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = sq_cu_warp_sum(acc[t]);
    if (wpr == 1) {
        if (lane == 0 && row < rows)
#pragma unroll
            for (int t = 0; t < NT; t++) y[(size_t)t * rows + row] = acc[t];
        return;
    }
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++) part[warp][t] = acc[t];
    __syncthreads();
    if (warp % wpr == 0 && lane < NT && row < rows) {
        float s = 0;
        for (int p = 0; p < wpr; p++) s += part[warp + p][lane];
        y[(size_t)lane * rows + row] = s;
    }
}

template <int DT, int NT>
__global__ void __launch_bounds__(WARPS * 32)
    gemv_dense(const uint8_t *__restrict__ w, int64_t rows, int64_t cols, const float *__restrict__ x,
               float *__restrict__ y, int wpr) {
    constexpr int ES = DT == SQ_CUDA_F32 ? 4 : 2, EPU = 16 / ES; /* element size, elements per 16 bytes */
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, part = warp % wpr;
    const int64_t row = blockIdx.x * (int64_t)(WARPS / wpr) + warp / wpr;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0;
    if (row < rows) {
        const uint8_t *wr = w + (size_t)row * cols * ES;
        /* 16-byte units where rows are 16-byte aligned, the rest one element at a time */
        const int64_t n_units = cols % EPU == 0 ? cols / EPU : 0;
        const uint4 *wv = (const uint4 *)wr;
#pragma unroll 4
        for (int64_t u = part * 32 + lane; u < n_units; u += 32 * wpr) {
            float f[EPU];
            unpack16<DT>(__ldg(wv + u), f);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const float4 *xv = (const float4 *)(x + (size_t)t * cols + u * EPU);
#pragma unroll
                for (int k = 0; k < EPU / 4; k++) {
                    const float4 a = __ldg(xv + k);
                    acc[t] += f[4 * k] * a.x + f[4 * k + 1] * a.y + f[4 * k + 2] * a.z + f[4 * k + 3] * a.w;
                }
            }
        }
        for (int64_t j = n_units * EPU + part * 32 + lane; j < cols; j += 32 * wpr) {
            const float f = element<DT>(wr, j);
#pragma unroll
            for (int t = 0; t < NT; t++) acc[t] += f * x[(size_t)t * cols + j];
        }
    }
    finish_rows<NT>(acc, row, rows, wpr, y);
}

/* ---------------------------------------------------------------- GEMV, block formats */

template <int DT> struct fmt;
template <> struct fmt<SQ_CUDA_Q8_0> {
    static constexpr int bytes = 34, elems = 32, per_chunk = 64; /* blocks staged per warp and step */
};
template <> struct fmt<SQ_CUDA_Q4_0> { static constexpr int bytes = 18, elems = 32, per_chunk = 128; };
template <> struct fmt<SQ_CUDA_Q4_K> {
    static constexpr int bytes = 144, elems = 256, per_chunk = 16; /* 128 sub-blocks of 32 */
};

/* 4 bytes of shared memory from a 2-byte aligned address */
__device__ __forceinline__ int load_i32_2(const uint8_t *p) {
    const uint16_t *h = (const uint16_t *)p;
    return (int)((uint32_t)h[0] | (uint32_t)h[1] << 16);
}

/* x's 32 quantized values at column c of token row t, as 8 packed ints */
__device__ __forceinline__ void load_x8(const int8_t *xq, int64_t off, int *xi) {
    const int4 a = __ldg((const int4 *)(xq + off)), b = __ldg((const int4 *)(xq + off + 16));
    xi[0] = a.x, xi[1] = a.y, xi[2] = a.z, xi[3] = a.w, xi[4] = b.x, xi[5] = b.y, xi[6] = b.z, xi[7] = b.w;
}

/* The sums of one 32-value unit against every token: unit u of the staged chunk at sb. */
template <int DT, int NT>
__device__ __forceinline__ void unit_dot(const uint8_t *sb, int u, int64_t col, int64_t cols,
                                         const int8_t *__restrict__ xq, const float *__restrict__ xd,
                                         float (&acc)[NT]) {
    int wq[8];
    float scale, min_scale = 0; /* value = scale * q - min_scale, per unit */
    if (DT == SQ_CUDA_Q8_0) {
        const uint8_t *b = sb + u * 34;
        scale = sq_cu_h2f(*(const uint16_t *)b);
#pragma unroll
        for (int i = 0; i < 8; i++) wq[i] = load_i32_2(b + 2 + 4 * i);
    } else if (DT == SQ_CUDA_Q4_0) {
        const uint8_t *b = sb + u * 18;
        scale = sq_cu_h2f(*(const uint16_t *)b);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int v = load_i32_2(b + 2 + 4 * i);
            wq[i] = v & 0x0f0f0f0f;            /* elements 4i..4i+3 */
            wq[4 + i] = (v >> 4) & 0x0f0f0f0f; /* elements 16+4i.. */
        }
        min_scale = 8 * scale;
    } else {
        const uint8_t *b = sb + (u / 8) * 144;
        const int s = u % 8;
        int sc, m;
        sq_cu_k4_scale_min(b + 4, s, &sc, &m);
        scale = sq_cu_h2f(((const uint16_t *)b)[0]) * sc;
        min_scale = sq_cu_h2f(((const uint16_t *)b)[1]) * m;
        const uint8_t *q = b + 16 + (s / 2) * 32;
#pragma unroll
        for (int i = 0; i < 8; i++) wq[i] = (load_i32_2(q + 4 * i) >> (4 * (s & 1))) & 0x0f0f0f0f;
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int xi[8];
        load_x8(xq, (int64_t)t * cols + col, xi);
        int sumi = 0, sumx = 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            sumi = __dp4a(wq[i], xi[i], sumi);
            if (DT != SQ_CUDA_Q8_0) sumx = __dp4a(0x01010101, xi[i], sumx);
        }
        const float dx = __ldg(xd + ((int64_t)t * cols + col) / 32);
        acc[t] += dx * (scale * (float)sumi - min_scale * (float)sumx);
    }
}

template <int DT, int NT>
__global__ void __launch_bounds__(WARPS * 32)
    gemv_blocks(const uint8_t *__restrict__ w, int64_t rows, int64_t cols, const int8_t *__restrict__ xq,
                const float *__restrict__ xd, float *__restrict__ y, int wpr) {
    using F = fmt<DT>;
    constexpr int CHUNK16 = (F::per_chunk * F::bytes + 15) / 16 + 1; /* + 1: an unaligned start */
    __shared__ uint4 stage[WARPS][CHUNK16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, part = warp % wpr;
    const int64_t row = blockIdx.x * (int64_t)(WARPS / wpr) + warp / wpr;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0;
    if (row < rows) {
        const int64_t nb = cols / F::elems, b_begin = part * nb / wpr, b_end = (part + 1) * nb / wpr;
        const uint8_t *wr = w + (size_t)row * nb * F::bytes;
        for (int64_t b0 = b_begin; b0 < b_end; b0 += F::per_chunk) {
            const int n = (int)(b_end - b0 < F::per_chunk ? b_end - b0 : F::per_chunk);
            const uint8_t *start = wr + b0 * F::bytes;
            const uint4 *a0 = (const uint4 *)((uintptr_t)start & ~(uintptr_t)15);
            const int n16 = (int)((start + n * F::bytes - (const uint8_t *)a0 + 15) / 16);
            for (int i = lane; i < n16; i += 32) stage[warp][i] = __ldg(a0 + i);
            __syncwarp();
            const uint8_t *sb = (const uint8_t *)stage[warp] + (start - (const uint8_t *)a0);
            const int units = n * F::elems / 32;
            for (int u = lane; u < units; u += 32)
                unit_dot<DT, NT>(sb, u, b0 * F::elems + u * 32, cols, xq, xd, acc);
            __syncwarp();
        }
    }
    finish_rows<NT>(acc, row, rows, wpr, y);
}

/* ---------------------------------------------------------------- launch */

/* Warps per row: enough blocks to fill the GPU twice over when rows are few. */
static int warps_per_row(const sq_cuda *c, int64_t rows) {
    int wpr = 1;
    while (wpr < WARPS && rows * wpr / WARPS < 2 * c->n_sm) wpr *= 2;
    return wpr;
}

template <int DT, int NT>
static void launch_gemv(sq_cuda *c, const uint8_t *w, int64_t rows, int64_t cols, const float *x,
                        const int8_t *xq, const float *xd, float *y) {
    const int wpr = warps_per_row(c, rows);
    const unsigned grid = sq_cu_blocks(rows, WARPS / wpr);
    if constexpr (DT == SQ_CUDA_F32 || DT == SQ_CUDA_F16 || DT == SQ_CUDA_BF16)
        gemv_dense<DT, NT><<<grid, WARPS * 32, 0, c->stream>>>(w, rows, cols, x, y, wpr);
    else
        gemv_blocks<DT, NT><<<grid, WARPS * 32, 0, c->stream>>>(w, rows, cols, xq, xd, y, wpr);
}

/* launch_gemv with NT = n (1 .. GEMV_MAX_TOKENS), chosen at compile time */
template <int DT, int NT = 1>
static void gemv_tokens(sq_cuda *c, const uint8_t *w, int64_t rows, int64_t cols, const float *x,
                        const int8_t *xq, const float *xd, int n, float *y) {
    if constexpr (NT < GEMV_MAX_TOKENS)
        if (n > NT) return gemv_tokens<DT, NT + 1>(c, w, rows, cols, x, xq, xd, n, y);
    launch_gemv<DT, NT>(c, w, rows, cols, x, xq, xd, y);
}

/* ---------------------------------------------------------------- GEMM */

/* One thread per 32 consecutive values of a row (a block or sub-block), 64 bytes of f16 written as 4 uint4.
 */
template <int DT>
__global__ void dequantize_f16(const uint8_t *w, size_t row_bytes, int64_t cols, int64_t n_units,
                               __half *out) {
    const int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (u >= n_units) return;
    const int64_t units_per_row = cols / 32, row = u / units_per_row, c0 = u % units_per_row * 32;
    const uint8_t *wr = w + (size_t)row * row_bytes;
    uint4 packed[4];
    __half2 *h = (__half2 *)packed;
#pragma unroll
    for (int j = 0; j < 16; j++)
        h[j] = __halves2half2(__float2half_rn(element<DT>(wr, c0 + 2 * j)),
                              __float2half_rn(element<DT>(wr, c0 + 2 * j + 1)));
    uint4 *o = (uint4 *)(out + (size_t)row * cols + c0);
#pragma unroll
    for (int k = 0; k < 4; k++) o[k] = packed[k];
}

__global__ void round_x(const float *x, int64_t n, int bf16, void *out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (bf16)
            ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(x[i]);
        else
            ((__half *)out)[i] = __float2half_rn(x[i]);
    }
}

static unsigned grid_for(const sq_cuda *c, int64_t n) {
    const unsigned b = sq_cu_blocks(n, 256), most = (unsigned)c->n_sm * 16;
    return b < most ? b : most;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

static void gemm(sq_cuda *c, int dtype, const void *w, int64_t rows, int64_t cols, const float *x, int n,
                 float *y) {
    const float one = 1, zero = 0;
    if (dtype == SQ_CUDA_F32) {
        sq_cuda_note_blas(c,
                          cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols, &one,
                                      (const float *)w, (int)cols, x, (int)cols, &zero, y, (int)rows),
                          "SGEMM");
        return;
    }
    const int bf16 = dtype == SQ_CUDA_BF16, quantized = dtype != SQ_CUDA_F16 && !bf16;
    const size_t x_bytes = align256((size_t)n * cols * 2), w_bytes = quantized ? (size_t)rows * cols * 2 : 0;
    uint8_t *s = (uint8_t *)sq_cuda_scratch(c, x_bytes + w_bytes);
    if (!s) return;
    const int64_t nx = (int64_t)n * cols;
    round_x<<<grid_for(c, nx), 256, 0, c->stream>>>(x, nx, bf16, s);
    const void *a = w;
    if (quantized) {
        __half *wh = (__half *)(s + x_bytes);
        const int64_t nu = rows * cols / 32;
        const unsigned grid = sq_cu_blocks(nu, 256);
        const uint8_t *wb = (const uint8_t *)w;
        const size_t rb = sq_cu_row_bytes(dtype, cols);
        sq_cu_with_format(dtype, [&](auto dt) {
            dequantize_f16<decltype(dt)::value><<<grid, 256, 0, c->stream>>>(wb, rb, cols, nu, wh);
        });
        a = wh;
    }
    SQ_CUDA_LAUNCHED(c, "GEMM operands");
    const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    sq_cuda_note_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols, &one, a, t,
                                   (int)cols, s, t, (int)cols, &zero, y, CUDA_R_32F, (int)rows,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "GemmEx");
}

void sq_cuda_matmul(sq_cuda *c, int dtype, const void *w, int64_t rows, int64_t cols, const float *x,
                    int n_tokens, float *y) {
    if (n_tokens <= 0 || rows <= 0) return;
    if (n_tokens > gemv_max_tokens(dtype)) {
        gemm(c, dtype, w, rows, cols, x, n_tokens, y);
        return;
    }
    const uint8_t *wb = (const uint8_t *)w;
    int8_t *xq = NULL;
    float *xd = NULL;
    if (dtype == SQ_CUDA_Q8_0 || dtype == SQ_CUDA_Q4_0 || dtype == SQ_CUDA_Q4_K) {
        const int64_t n_blocks = (int64_t)n_tokens * cols / 32;
        const size_t q_bytes = align256((size_t)n_tokens * cols);
        uint8_t *s = (uint8_t *)sq_cuda_scratch(c, q_bytes + (size_t)n_blocks * 4);
        if (!s) return;
        xq = (int8_t *)s;
        xd = (float *)(s + q_bytes);
        quantize_x_kernel<<<sq_cu_blocks(n_blocks * 32, 256), 256, 0, c->stream>>>(x, n_blocks, xq, xd);
    }
    sq_cu_with_format(
        dtype, [&](auto dt) { gemv_tokens<decltype(dt)::value>(c, wb, rows, cols, x, xq, xd, n_tokens, y); });
    SQ_CUDA_LAUNCHED(c, "matmul");
}
