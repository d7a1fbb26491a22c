/* y = x · W^T on the GPU, W in its stored format.
 *
 * Decode (n_tokens <= gemv_max_tokens: 2 for float formats, 8 for quantized ones): a GEMV that reads every
 * weight byte once with the dequantization fused in. Each row belongs to one warp or, where rows are few, to
 * 2-8 warps of a block that each take every wpr-th part of the row (split-K) and add their sums through
 * shared memory. Every lane reads 16 bytes at a time straight from global memory, four loads in flight
 * before the first use: plain float formats as stored, block formats in the device layout (cuda_common.cuh:
 * quants apart from scales, so a lane's 16 bytes are 32 q4_0 values, 16 q8_0 values or 32 q4_K values of
 * two sub-blocks, and its scales a 2-byte or 16-byte load beside them). Quantized weights multiply x
 * quantized to 8 bits per 32-value block (Q8_0's own rounding, core/dtype_ref.c) with integer dot products
 * (dp4a), as llama.cpp's mmvq and the CPU's integer GEMVs do: 4x less activation traffic than fp32 x, exact
 * integer sums.
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

/* One warp per 32-value block (sq_cu_quantize_block) */
__global__ void quantize_x_kernel(const float *x, int64_t n_blocks, sq_cu_q8x xq) {
    const int64_t b = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    if (b >= n_blocks) return;
    sq_cu_quantize_block(x[b * 32 + threadIdx.x % 32], b, xq);
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

/* One weight of a GEMV launch: its blocks are [block0, next weight's block0) of the grid, wpr warps a row. */
struct gemv_part {
    sq_cu_weight w;
    int64_t rows;
    float *y; /* [NT][rows] */
    unsigned block0;
    int wpr;
};
enum { MAX_WEIGHTS = 3 };
/* Up to MAX_WEIGHTS weights of one format and width sharing one input x, in one launch (q, k and v; gate and
 * up); accumulate: y += x . w^T (the residual add fused in), else y = x . w^T. */
struct gemv_set {
    gemv_part p[MAX_WEIGHTS];
    int n, accumulate;
};

/* This block's weight, and its first row and warp's part (split-K) */
struct gemv_at {
    gemv_part w;
    int64_t row;
    int part;
};
__device__ __forceinline__ gemv_at gemv_locate(const gemv_set &s) {
    gemv_at a;
    a.w = s.p[0];
#pragma unroll
    for (int k = 1; k < MAX_WEIGHTS; k++)
        if (k < s.n && blockIdx.x >= s.p[k].block0) a.w = s.p[k];
    const int warp = threadIdx.x / 32;
    a.row = (blockIdx.x - a.w.block0) * (int64_t)(WARPS / a.w.wpr) + warp / a.w.wpr;
    a.part = warp % a.w.wpr;
    return a;
}

/* Adds each warp's sums into y: directly with one warp a row, else through shared memory. */
template <int NT>
__device__ __forceinline__ void finish_rows(float (&acc)[NT], const gemv_at &a, int accumulate) {
    __shared__ float part[WARPS][NT];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wpr = a.w.wpr;
    const int64_t row = a.row, rows = a.w.rows;
    float *y = a.w.y;
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = sq_cu_warp_sum(acc[t]);
    if (wpr == 1) {
        if (lane == 0 && row < rows)
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float *o = y + (size_t)t * rows + row;
                *o = accumulate ? *o + acc[t] : acc[t];
            }
        return;
    }
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++) part[warp][t] = acc[t];
    __syncthreads();
    if (warp % wpr == 0 && lane < NT && row < rows) {
        float s = 0;
        for (int p = 0; p < wpr; p++) s += part[warp + p][lane];
        float *o = y + (size_t)lane * rows + row;
        *o = accumulate ? *o + s : s;
    }
}

template <int DT, int NT>
__global__ void __launch_bounds__(WARPS * 32) gemv_dense(gemv_set set, const float *__restrict__ x) {
    constexpr int ES = DT == SQ_CUDA_F32 ? 4 : 2, EPU = 16 / ES; /* element size, elements per 16 bytes */
    const gemv_at at = gemv_locate(set);
    const sq_cu_weight &wt = at.w.w;
    const int lane = threadIdx.x % 32, part = at.part, wpr = at.w.wpr;
    const int64_t row = at.row, rows = at.w.rows;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0;
    const int64_t cols = wt.cols;
    if (row < rows) {
        const uint8_t *wr = wt.quants + (size_t)row * cols * ES;
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
            const float f = element<DT>(wt, row, j);
#pragma unroll
            for (int t = 0; t < NT; t++) acc[t] += f * x[(size_t)t * cols + j];
        }
    }
    finish_rows<NT>(acc, at, set.accumulate);
}

/* ---------------------------------------------------------------- GEMV, block formats */

/* x's 16 quantized values at column col of token t, as 4 packed ints, and their block's scale */
__device__ __forceinline__ int4 x16(const int8_t *__restrict__ xq, int64_t col) {
    return __ldg((const int4 *)(xq + col));
}

/* One lane's 16 bytes of quants and the scales they need (the f16 d of q4_0/q8_0 in m.x's low half, q4_K's
 * 16 bytes of d, dmin and 6-bit scales/mins as they are). Unit u of a row: q4_0 block u, q8_0 half u % 2 of
 * block u / 2, q4_K bytes 16 (u % 8) of super-block u / 8 (sub-blocks 2 (u % 8 / 2) and the next). */
struct unit_bytes {
    uint4 q, m;
};

template <int DT>
__device__ __forceinline__ unit_bytes load_unit(const uint4 *__restrict__ q, const uint8_t *__restrict__ s,
                                                int64_t u) {
    unit_bytes b;
    b.q = __ldg(q + u);
    if (DT == SQ_CUDA_Q4_K)
        b.m = __ldg((const uint4 *)s + u / 8);
    else
        b.m.x = __ldg((const uint16_t *)s + (DT == SQ_CUDA_Q8_0 ? u / 2 : u));
    return b;
}

/* the low (shift 0) or high (4) nibbles of 4 bytes, as bytes */
__device__ __forceinline__ int nib(uint32_t v, int shift) { return (int)((v >> shift) & 0x0f0f0f0fu); }

/* q4_K's 6-bit scale and minimum of sub-block j (< 8) from its words s0 = scales[0..3], s1 = [4..7],
 * s2 = [8..11] (ggml's get_scale_min_k4 without a byte array, so nothing goes to local memory) */
__device__ __forceinline__ void k4_scale_min(uint32_t s0, uint32_t s1, uint32_t s2, int j, int *sc, int *m) {
    const int k = 8 * (j & 3);
    if (j < 4) {
        *sc = (s0 >> k) & 63;
        *m = (s1 >> k) & 63;
    } else {
        *sc = ((s2 >> k) & 0xf) | ((s0 >> k) >> 6 & 3) << 4;
        *m = ((s2 >> k) >> 4 & 0xf) | ((s1 >> k) >> 6 & 3) << 4;
    }
}

/* Unit u's sums against every token into acc. */
template <int DT, int NT>
__device__ __forceinline__ void unit_dot(const unit_bytes &b, int64_t u, int64_t cols,
                                         const int8_t *__restrict__ xq, const float *__restrict__ xd,
                                         const float *__restrict__ xs, float (&acc)[NT]) {
    const uint32_t w[4] = {b.q.x, b.q.y, b.q.z, b.q.w};
    if (DT == SQ_CUDA_Q4_0) {
        const float d = sq_cu_h2f((uint16_t)b.m.x);
        int lo[4], hi[4]; /* elements 0-15 and 16-31 of the block (the -8 through xs) */
#pragma unroll
        for (int i = 0; i < 4; i++) lo[i] = nib(w[i], 0), hi[i] = nib(w[i], 4);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const int8_t *x = xq + t * cols + u * 32;
            const int4 a = x16(x, 0), c = x16(x, 16);
            int s = __dp4a(lo[0], a.x, 0);
            s = __dp4a(lo[1], a.y, s), s = __dp4a(lo[2], a.z, s), s = __dp4a(lo[3], a.w, s);
            s = __dp4a(hi[0], c.x, s), s = __dp4a(hi[1], c.y, s), s = __dp4a(hi[2], c.z, s);
            s = __dp4a(hi[3], c.w, s);
            const float2 sums = __ldg((const float2 *)(xs + (t * cols) / 16) + u);
            acc[t] += d * (__ldg(xd + (t * cols) / 32 + u) * (float)s - 8.0f * (sums.x + sums.y));
        }
    } else if (DT == SQ_CUDA_Q8_0) {
        const float d = sq_cu_h2f((uint16_t)b.m.x);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const int4 a = x16(xq, t * cols + u * 16);
            int s = __dp4a((int)w[0], a.x, 0);
            s = __dp4a((int)w[1], a.y, s), s = __dp4a((int)w[2], a.z, s), s = __dp4a((int)w[3], a.w, s);
            acc[t] += d * __ldg(xd + (t * cols) / 32 + u / 2) * (float)s;
        }
    } else {
        const int part = (int)(u % 8), j0 = part / 2 * 2; /* sub-blocks j0 (low nibbles) and j0 + 1 */
        const int64_t col0 = u / 8 * 256 + j0 * 32 + (part % 2) * 16;
        const float d = sq_cu_h2f((uint16_t)(b.m.x & 0xffff)), dmin = sq_cu_h2f((uint16_t)(b.m.x >> 16));
        int sc0, m0, sc1, m1;
        k4_scale_min(b.m.y, b.m.z, b.m.w, j0, &sc0, &m0);
        k4_scale_min(b.m.y, b.m.z, b.m.w, j0 + 1, &sc1, &m1);
        const float ds0 = d * sc0, dm0 = dmin * m0, ds1 = d * sc1, dm1 = dmin * m1;
        int lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) lo[i] = nib(w[i], 0), hi[i] = nib(w[i], 4);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const int4 a = x16(xq, t * cols + col0), c = x16(xq, t * cols + col0 + 32);
            int s0 = __dp4a(lo[0], a.x, 0), s1 = __dp4a(hi[0], c.x, 0);
            s0 = __dp4a(lo[1], a.y, s0), s0 = __dp4a(lo[2], a.z, s0), s0 = __dp4a(lo[3], a.w, s0);
            s1 = __dp4a(hi[1], c.y, s1), s1 = __dp4a(hi[2], c.z, s1), s1 = __dp4a(hi[3], c.w, s1);
            const float *d0 = xd + (t * cols + col0) / 32, *s16 = xs + (t * cols + col0) / 16;
            acc[t] += ds0 * __ldg(d0) * (float)s0 - dm0 * __ldg(s16) + ds1 * __ldg(d0 + 1) * (float)s1 -
                      dm1 * __ldg(s16 + 2);
        }
    }
}

enum { UNROLL = 4 }; /* 16-byte loads a lane has in flight */

template <int DT, int NT>
__global__ void __launch_bounds__(WARPS * 32)
    gemv_blocks(gemv_set set, const int8_t *__restrict__ xq, const float *__restrict__ xd,
                const float *__restrict__ xs) {
    using L = sq_cu_layout<DT>;
    const gemv_at at = gemv_locate(set);
    const sq_cu_weight &wt = at.w.w;
    const int lane = threadIdx.x % 32, part = at.part, wpr = at.w.wpr;
    const int64_t row = at.row, rows = at.w.rows, cols = wt.cols;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0;
    if (row < rows) {
        const int64_t nb = cols / L::elems, units = nb * (L::quant_bytes / 16), step = 32 * wpr;
        const uint4 *q = (const uint4 *)wt.quants + row * units;
        const uint8_t *s = wt.scales + row * nb * L::scale_bytes;
        int64_t u = part * 32 + lane;
        for (; u + (UNROLL - 1) * step < units; u += UNROLL * step) {
            unit_bytes b[UNROLL];
#pragma unroll
            for (int k = 0; k < UNROLL; k++) b[k] = load_unit<DT>(q, s, u + k * step);
#pragma unroll
            for (int k = 0; k < UNROLL; k++) unit_dot<DT, NT>(b[k], u + k * step, cols, xq, xd, xs, acc);
        }
        for (; u < units; u += step) unit_dot<DT, NT>(load_unit<DT>(q, s, u), u, cols, xq, xd, xs, acc);
    }
    finish_rows<NT>(acc, at, set.accumulate);
}

/* ---------------------------------------------------------------- launch */

/* Warps per row for a launch of `rows` rows of `units` 16-byte loads each, `resident` warps of the kernel
 * fitting on the GPU at once: enough blocks to fill the GPU twice over when rows are few, and while one warp
 * a row would leave half the resident warps idle (f16 4096x11008: 4096 warps of 8448), two warps a row,
 * keeping at least 2 loads a lane. Launches of more rows keep one warp a row: splitting them measured slower
 * (the split's reduction, shorter streams; bench_cuda gemv on the H200, docs/benchmarks.md). */
static int warps_per_row(const sq_cuda *c, int64_t rows, int64_t units, int64_t resident) {
    int wpr = 1;
    while (wpr < WARPS && rows * wpr / WARPS < 2 * c->n_sm) wpr *= 2;
    while (wpr < WARPS && rows * wpr * 2 <= resident && units / (wpr * 2) >= 64) wpr *= 2;
    return wpr;
}

/* Warps of a GEMV kernel resident on the whole GPU (its registers decide). */
template <class K> static int64_t resident_warps(const sq_cuda *c, K kernel) {
    int blocks = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, WARPS * 32, 0) != cudaSuccess ||
        blocks < 1) {
        cudaGetLastError();
        blocks = 1;
    }
    return (int64_t)blocks * WARPS * c->n_sm;
}

/* The weights to multiply, as the public calls take them: n (<= MAX_WEIGHTS) of one format and width. */
struct matmul_job {
    int dtype, n;
    const void *const *w;
    const int64_t *rows;
    int64_t cols;
    float *const *y;
    int accumulate;
    const float *norm; /* [cols] or NULL: x is RMS-normalised first (into x_normed) */
    float eps;
    float *x_normed;
};

template <int DT, int NT>
static void launch_gemv(sq_cuda *c, const matmul_job &j, const float *x, const sq_cu_q8x &xq) {
    gemv_set set = {};
    set.n = j.n;
    set.accumulate = j.accumulate;
    constexpr bool dense = DT == SQ_CUDA_F32 || DT == SQ_CUDA_F16 || DT == SQ_CUDA_BF16;
    static int64_t resident; /* per kernel, once */
    int64_t units;           /* 16-byte loads of a row */
    if constexpr (dense) {
        if (!resident) resident = resident_warps(c, gemv_dense<DT, NT>);
        units = j.cols * (DT == SQ_CUDA_F32 ? 4 : 2) / 16;
    } else {
        if (!resident) resident = resident_warps(c, gemv_blocks<DT, NT>);
        units = j.cols / sq_cu_layout<DT>::elems * sq_cu_layout<DT>::quant_bytes / 16;
    }
    int64_t all_rows = 0;
    for (int i = 0; i < j.n; i++) all_rows += j.rows[i];
    const int wpr = warps_per_row(c, all_rows, units, resident);
    unsigned grid = 0;
    for (int i = 0; i < j.n; i++) {
        set.p[i] = {sq_cu_weight_of<DT>(j.w[i], j.rows[i], j.cols), j.rows[i], j.y[i], grid, wpr};
        grid += sq_cu_blocks(j.rows[i], WARPS / wpr);
    }
    if constexpr (dense)
        gemv_dense<DT, NT><<<grid, WARPS * 32, 0, c->stream>>>(set, x);
    else
        gemv_blocks<DT, NT><<<grid, WARPS * 32, 0, c->stream>>>(set, xq.q, xq.d, xq.s);
}

/* launch_gemv with NT = n (1 .. GEMV_MAX_TOKENS), chosen at compile time */
template <int DT, int NT = 1>
static void gemv_tokens(sq_cuda *c, const matmul_job &j, const float *x, const sq_cu_q8x &xq, int n) {
    if constexpr (NT < GEMV_MAX_TOKENS)
        if (n > NT) return gemv_tokens<DT, NT + 1>(c, j, x, xq, n);
    launch_gemv<DT, NT>(c, j, x, xq);
}

/* ---------------------------------------------------------------- GEMM */

/* One thread per 32 consecutive values of a row (a block or sub-block), 64 bytes of f16 written as 4 uint4.
 */
template <int DT> __global__ void dequantize_f16(sq_cu_weight w, int64_t n_units, __half *out) {
    const int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (u >= n_units) return;
    const int64_t cols = w.cols, units_per_row = cols / 32, row = u / units_per_row,
                  c0 = u % units_per_row * 32;
    uint4 packed[4];
    __half2 *h = (__half2 *)packed;
#pragma unroll
    for (int j = 0; j < 16; j++)
        h[j] = __halves2half2(__float2half_rn(element<DT>(w, row, c0 + 2 * j)),
                              __float2half_rn(element<DT>(w, row, c0 + 2 * j + 1)));
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
                 float *y, int accumulate) {
    const float one = 1, zero = 0, *beta = accumulate ? &one : &zero;
    if (dtype == SQ_CUDA_F32) {
        sq_cuda_note_blas(c,
                          cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols, &one,
                                      (const float *)w, (int)cols, x, (int)cols, beta, y, (int)rows),
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
        sq_cu_with_format(dtype, [&](auto dt) {
            constexpr int DT = decltype(dt)::value;
            dequantize_f16<DT><<<grid, 256, 0, c->stream>>>(sq_cu_weight_of<DT>(w, rows, cols), nu, wh);
        });
        a = wh;
    }
    SQ_CUDA_LAUNCHED(c, "GEMM operands");
    const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    sq_cuda_note_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, n, (int)cols, &one, a, t,
                                   (int)cols, s, t, (int)cols, beta, y, CUDA_R_32F, (int)rows,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "GemmEx");
}

static void matmul(sq_cuda *c, const matmul_job &j, const float *x, int n_tokens) {
    if (n_tokens <= 0 || j.n <= 0 || j.n > MAX_WEIGHTS) return;
    const int64_t cols = j.cols;
    const int q8 = is_quantized(j.dtype) && n_tokens <= gemv_max_tokens(j.dtype);
    if (j.norm && !q8) { /* the norm on its own; the integer-dot GEMV's quantization takes it in */
        sq_cuda_rmsnorm(c, x, j.norm, j.eps, n_tokens, (int)cols, j.x_normed);
        x = j.x_normed;
    }
    if (n_tokens > gemv_max_tokens(j.dtype)) {
        for (int i = 0; i < j.n; i++)
            if (j.rows[i] > 0) gemm(c, j.dtype, j.w[i], j.rows[i], cols, x, n_tokens, j.y[i], j.accumulate);
        return;
    }
    sq_cu_q8x xq = {};
    if (q8) { /* x quantized once for every weight of the job */
        const int64_t n_blocks = (int64_t)n_tokens * cols / 32;
        const size_t q_bytes = align256((size_t)n_tokens * cols), d_bytes = align256((size_t)n_blocks * 4);
        uint8_t *s = (uint8_t *)sq_cuda_scratch(c, q_bytes + d_bytes + (size_t)n_blocks * 8);
        if (!s) return;
        int8_t *q = (int8_t *)s;
        float *d = (float *)(s + q_bytes), *sums = (float *)(s + q_bytes + d_bytes);
        xq = {q, d, sums};
        if (j.norm)
            sq_cu_rmsnorm_q8(c, x, j.norm, j.eps, n_tokens, (int)cols, j.x_normed, xq);
        else
            quantize_x_kernel<<<sq_cu_blocks(n_blocks * 32, 256), 256, 0, c->stream>>>(x, n_blocks, xq);
    }
    sq_cu_with_format(j.dtype, [&](auto dt) { gemv_tokens<decltype(dt)::value>(c, j, x, xq, n_tokens); });
    SQ_CUDA_LAUNCHED(c, "matmul");
}

void sq_cuda_matmul(sq_cuda *c, int dtype, const void *w, int64_t rows, int64_t cols, const float *x,
                    int n_tokens, float *y) {
    if (rows <= 0) return;
    matmul(c, {dtype, 1, &w, &rows, cols, &y, 0, NULL, 0, NULL}, x, n_tokens);
}

void sq_cuda_matmul_n(sq_cuda *c, int dtype, int n_w, const void *const *w, const int64_t *rows, int64_t cols,
                      const float *x, int n_tokens, float *const *y, int accumulate, const float *norm,
                      float eps, float *x_normed) {
    for (int i = 0; i < n_w; i++)
        if (rows[i] <= 0) return;
    matmul(c, {dtype, n_w, w, rows, cols, y, accumulate, norm, eps, x_normed}, x, n_tokens);
}
