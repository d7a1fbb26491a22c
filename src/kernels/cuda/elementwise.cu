/* CUDA implementations of the backend's row, norm, rotary, elementwise and cache-row operations. Each
 * rounds as the CPU's reference does (kernels/ref/ops.c): the dequantizations and the f16 cache rows bit for
 * bit (no fused multiply-adds where the reference rounds twice), norms and angles in double. */
#include "kernels/cuda/cuda_common.cuh"

/* ---------------------------------------------------------------- get_rows */

template <int DT> __global__ void get_rows_kernel(sq_cu_weight src, const int32_t *rows, float *out) {
    const int64_t r = rows[blockIdx.y];
    float *o = out + (size_t)blockIdx.y * src.cols;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < src.cols;
         j += (int64_t)gridDim.x * blockDim.x)
        o[j] = element<DT>(src, r, j);
}

void sq_cuda_get_rows(sq_cuda *c, int dtype, const void *src, int64_t n_src, int64_t cols,
                      const int32_t *rows, int n_rows, float *out) {
    if (n_rows <= 0) return;
    const dim3 grid(sq_cu_blocks(cols, 256) < 64 ? sq_cu_blocks(cols, 256) : 64, (unsigned)n_rows);
    sq_cu_with_format(dtype, [&](auto dt) {
        constexpr int DT = decltype(dt)::value;
        get_rows_kernel<DT><<<grid, 256, 0, c->stream>>>(sq_cu_weight_of<DT>(src, n_src, cols), rows, out);
    });
    SQ_CUDA_LAUNCHED(c, "get_rows");
}

/* ---------------------------------------------------------------- rmsnorm */

/* One block per token: the sum of squares in double (as the reference), then x * scale * weight. Each
 * thread keeps its first RMS_HELD values in registers between the two passes, so that a decode step's row
 * (4096 values: 4 a thread) is read once and its stores do not wait on loads (out may be x). */
enum { RMS_THREADS = 1024, RMS_HELD = 8 };
template <bool Q8>
__global__ void __launch_bounds__(RMS_THREADS)
    rmsnorm_kernel(const float *x, const float *w, float eps, int dim, float *out, sq_cu_q8x xq) {
    const float *r = x + (size_t)blockIdx.x * dim;
    float *o = out + (size_t)blockIdx.x * dim;
    float held[RMS_HELD];
    double ss = 0;
#pragma unroll
    for (int k = 0; k < RMS_HELD; k++) {
        const int i = threadIdx.x + k * RMS_THREADS;
        held[k] = i < dim ? r[i] : 0;
        ss += (double)held[k] * held[k];
    }
    for (int i = threadIdx.x + RMS_HELD * RMS_THREADS; i < dim; i += RMS_THREADS) ss += (double)r[i] * r[i];
    __shared__ double part[32];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = part[threadIdx.x];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    const float scale = (float)(1.0 / sqrt(part[0] / dim + eps));
    /* with Q8, each warp's 32 consecutive values (dim a multiple of 32: whole warps) are a block of x */
    const int64_t blocks0 = (int64_t)blockIdx.x * (dim / 32);
    for (int i = threadIdx.x + RMS_HELD * RMS_THREADS; i < dim; i += RMS_THREADS) {
        const float v = __fmul_rn(__fmul_rn(r[i], scale), w[i]);
        o[i] = v;
        if (Q8) sq_cu_quantize_block(v, blocks0 + i / 32, xq);
    }
#pragma unroll
    for (int k = 0; k < RMS_HELD; k++) {
        const int i = threadIdx.x + k * RMS_THREADS;
        if (i < dim) {
            const float v = __fmul_rn(__fmul_rn(held[k], scale), w[i]);
            o[i] = v;
            if (Q8) sq_cu_quantize_block(v, blocks0 + i / 32, xq);
        }
    }
}

void sq_cuda_rmsnorm(sq_cuda *c, const float *x, const float *weight, float eps, int n_tokens, int dim,
                     float *out) {
    if (n_tokens <= 0) return;
    rmsnorm_kernel<false><<<n_tokens, RMS_THREADS, 0, c->stream>>>(x, weight, eps, dim, out, sq_cu_q8x{});
    SQ_CUDA_LAUNCHED(c, "rmsnorm");
}

void sq_cu_rmsnorm_q8(sq_cuda *c, const float *x, const float *weight, float eps, int n_tokens, int dim,
                      float *out, const sq_cu_q8x &xq) {
    if (n_tokens <= 0) return;
    rmsnorm_kernel<true><<<n_tokens, RMS_THREADS, 0, c->stream>>>(x, weight, eps, dim, out, xq);
    SQ_CUDA_LAUNCHED(c, "rmsnorm and quantize");
}

/* ---------------------------------------------------------------- rope */

/* One thread per (token, head, pair), so that every rotation is an independent load and store (a loop over
 * heads in one thread would serialise them: q and k may alias as far as the compiler knows). The angle
 * pos * inv_freq and its cos/sin are computed in double and rounded to fp32, as the reference does. */
/* The cache row of a sequence's slot (kernels/backend.h's sq_kv_row). */
__device__ __forceinline__ uint8_t *kv_row(const sq_cuda_kv &kv, uint8_t *pool, int seq, int slot) {
    const int32_t block = kv.block_table[(size_t)seq * kv.max_blocks + slot / kv.block_size];
    return pool + ((size_t)block * kv.block_size + (size_t)(slot % kv.block_size)) * kv.row_bytes;
}

struct rope_store {
    sq_cuda_kv kv;
    const float *v;
    const int32_t *seq, *slot;
};

/* With STORE, each key pair goes to its cache row as well, with the value pair beside it (RoPE and kv_store
 * in one kernel: the keys are not read back). One thread per pair of head_dim/2: those of the first
 * rope_dims/2 rotate, the others (partial rotary) store their two elements unrotated. */
template <bool STORE>
__global__ void rope_kernel(float *q, int nq, float *k, int nk, int64_t n, int head_dim, int rope_dims,
                            const int32_t *pos, const double *inv_freq, int style, rope_store st) {
    const int pairs = head_dim / 2, half = rope_dims / 2, heads = nq + nk;
    const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (id >= n) return;
    const int i = (int)(id % pairs), h = (int)(id / pairs % heads);
    const int64_t t = id / pairs / heads;
    float *v = h < nq ? q + ((size_t)t * nq + h) * head_dim : k + ((size_t)t * nk + (h - nq)) * head_dim;
    int ia = rope_dims + 2 * (i - half), ib = ia + 1; /* a pass-through pair */
    float ra, rb;
    if (i < half) {
        double sn, cs;
        sincos(pos[t] * inv_freq[i], &sn, &cs);
        const float cf = (float)cs, sf = (float)sn;
        ia = style == 0 ? 2 * i : i, ib = style == 0 ? 2 * i + 1 : i + half;
        const float a = v[ia], b = v[ib];
        ra = __fsub_rn(__fmul_rn(a, cf), __fmul_rn(b, sf)),
        rb = __fadd_rn(__fmul_rn(a, sf), __fmul_rn(b, cf));
        v[ia] = ra;
        v[ib] = rb;
    } else {
        if (!STORE) return;
        ra = v[ia], rb = v[ib];
    }
    if (STORE && h >= nq) {
        const int off = (h - nq) * head_dim;
        const float *vr = st.v + (size_t)t * nk * head_dim + off;
        uint8_t *kr = kv_row(st.kv, st.kv.k, st.seq[t], st.slot[t]),
                *vo = kv_row(st.kv, st.kv.v, st.seq[t], st.slot[t]);
        if (st.kv.f16) {
            ((__half *)kr)[off + ia] = __float2half_rn(ra), ((__half *)kr)[off + ib] = __float2half_rn(rb);
            ((__half *)vo)[off + ia] = __float2half_rn(vr[ia]),
                                 ((__half *)vo)[off + ib] = __float2half_rn(vr[ib]);
        } else {
            ((float *)kr)[off + ia] = ra, ((float *)kr)[off + ib] = rb;
            ((float *)vo)[off + ia] = vr[ia], ((float *)vo)[off + ib] = vr[ib];
        }
    }
}

void sq_cuda_rope(sq_cuda *c, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens, int head_dim,
                  int rope_dims, const int32_t *pos, const double *inv_freq, int style) {
    const int nk = k ? n_k_heads : 0;
    const int64_t n = (int64_t)n_tokens * (n_q_heads + nk) * (head_dim / 2);
    if (n <= 0) return;
    rope_kernel<false><<<sq_cu_blocks(n, 256), 256, 0, c->stream>>>(
        q, n_q_heads, k, nk, n, head_dim, rope_dims, pos, inv_freq, style, rope_store{});
    SQ_CUDA_LAUNCHED(c, "rope");
}

void sq_cuda_rope_kv_store(sq_cuda *c, float *q, int n_q_heads, float *k, const float *v, int n_k_heads,
                           int head_dim, int rope_dims, const int32_t *pos, const double *inv_freq, int style,
                           const sq_cuda_kv *kv, const sq_cuda_tokens *tokens) {
    const int64_t n = (int64_t)tokens->n_tokens * (n_q_heads + n_k_heads) * (head_dim / 2);
    if (n <= 0) return;
    rope_kernel<true><<<sq_cu_blocks(n, 256), 256, 0, c->stream>>>(
        q, n_q_heads, k, n_k_heads, n, head_dim, rope_dims, pos, inv_freq, style,
        rope_store{*kv, v, tokens->seq, tokens->slot});
    SQ_CUDA_LAUNCHED(c, "rope and kv_store");
}

/* ---------------------------------------------------------------- adds, swiglu */

__global__ void add_kernel(float *x, const float *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], y[i]);
}

__global__ void add_bias_kernel(float *y, const float *bias, int64_t n, int width) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __fadd_rn(y[i], bias[i % width]);
}

/* silu(g) * u as the CPU computes it: g / (1 + expf(-g)) * u in fp32 */
__global__ void swiglu_kernel(float *gate, const float *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
    }
}

/* GeGLU with the tanh GELU as the CPU computes it: x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3), times
 * u */
__global__ void geglu_kernel(float *gate, const float *up, int64_t n) {
    const float c2 = 2 * 0.7978845608028654f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float x = gate[i];
        const float z = __fmul_rn(-c2, __fadd_rn(x, __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x)));
        gate[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, expf(z))), up[i]);
    }
}

__global__ void scale_kernel(float *x, float s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], s);
}

static unsigned grid_for(sq_cuda *c, int64_t n) {
    const unsigned b = sq_cu_blocks(n, 256), most = (unsigned)c->n_sm * 16;
    return b < most ? b : most;
}

void sq_cuda_add(sq_cuda *c, float *x, const float *y, int64_t n) {
    if (n <= 0) return;
    add_kernel<<<grid_for(c, n), 256, 0, c->stream>>>(x, y, n);
    SQ_CUDA_LAUNCHED(c, "add");
}

void sq_cuda_add_bias(sq_cuda *c, float *y, const float *bias, int n_tokens, int width) {
    const int64_t n = (int64_t)n_tokens * width;
    if (n <= 0) return;
    add_bias_kernel<<<grid_for(c, n), 256, 0, c->stream>>>(y, bias, n, width);
    SQ_CUDA_LAUNCHED(c, "add_bias");
}

void sq_cuda_swiglu(sq_cuda *c, float *gate, const float *up, int64_t n) {
    if (n <= 0) return;
    swiglu_kernel<<<grid_for(c, n), 256, 0, c->stream>>>(gate, up, n);
    SQ_CUDA_LAUNCHED(c, "swiglu");
}

void sq_cuda_geglu(sq_cuda *c, float *gate, const float *up, int64_t n) {
    if (n <= 0) return;
    geglu_kernel<<<grid_for(c, n), 256, 0, c->stream>>>(gate, up, n);
    SQ_CUDA_LAUNCHED(c, "geglu");
}

void sq_cuda_scale(sq_cuda *c, float *x, float s, int64_t n) {
    if (n <= 0) return;
    scale_kernel<<<grid_for(c, n), 256, 0, c->stream>>>(x, s, n);
    SQ_CUDA_LAUNCHED(c, "scale");
}

/* ---------------------------------------------------------------- cache rows */

/* One thread per value of the new rows (independent stores), converted to the row type (f16: round to
 * nearest even). */
__global__ void kv_store_kernel(sq_cuda_kv kv, const float *k, const float *v, const int32_t *seq,
                                const int32_t *slot, int64_t n) {
    const int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (id >= n) return;
    const int64_t t = id / kv.kv_dim;
    const int i = (int)(id % kv.kv_dim);
    uint8_t *kr = kv_row(kv, kv.k, seq[t], slot[t]), *vr = kv_row(kv, kv.v, seq[t], slot[t]);
    if (kv.f16) {
        ((__half *)kr)[i] = __float2half_rn(k[id]);
        ((__half *)vr)[i] = __float2half_rn(v[id]);
    } else {
        ((float *)kr)[i] = k[id];
        ((float *)vr)[i] = v[id];
    }
}

void sq_cuda_kv_store(sq_cuda *c, const sq_cuda_kv *kv, const float *k, const float *v,
                      const sq_cuda_tokens *tokens) {
    const int64_t n = (int64_t)tokens->n_tokens * kv->kv_dim;
    if (n <= 0) return;
    kv_store_kernel<<<sq_cu_blocks(n, 256), 256, 0, c->stream>>>(*kv, k, v, tokens->seq, tokens->slot, n);
    SQ_CUDA_LAUNCHED(c, "kv_store");
}

/* One block, the rows in order: a later copy may overwrite an earlier one's source. */
__global__ void kv_copy_kernel(sq_cuda_kv kv, int seq, const int32_t *src, const int32_t *dst, int n) {
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 2; p++) {
            uint8_t *pool = p ? kv.v : kv.k;
            const uint8_t *s = kv_row(kv, pool, seq, src[i]);
            uint8_t *d = kv_row(kv, pool, seq, dst[i]);
            for (size_t b = threadIdx.x; b < kv.row_bytes; b += blockDim.x) d[b] = s[b];
        }
        __syncthreads();
    }
}

void sq_cuda_kv_copy(sq_cuda *c, const sq_cuda_kv *kv, int seq, const int32_t *src, const int32_t *dst,
                     int n) {
    if (n <= 0) return;
    kv_copy_kernel<<<1, 256, 0, c->stream>>>(*kv, seq, src, dst, n);
    SQ_CUDA_LAUNCHED(c, "kv_copy");
}
