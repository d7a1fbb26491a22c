/* Attention over the paged KV cache on the GPU, FlashDecoding-style (Dao et al., 2023, "Flash-Decoding for
 * long-context inference"): the slots a query sees are split among blocks (split-K) and, inside a block,
 * among its warps; each keeps an online softmax (Milakov & Gimelshein, 2018) of its keys, and the partial
 * results (max, sum, weighted values) are merged exactly, first in shared memory, then across blocks by a
 * second kernel when the slots were split. A block serves one token and one key/value head with up to 8 of
 * its query heads (GQA without replicating K/V: the group reads each key row once). Keys and values are read
 * through the block table, f32 or f16 rows; a token sees its cached prefix [0, n_prefix), itself and its
 * token-tree ancestors, within the sliding window (kernels/backend.h's sq_token_batch). */
#include <math.h>

#include "kernels/cuda/cuda_common.cuh"

enum { ATT_WARPS = 4, MAX_GROUP = 8, PREFILL_TILE = 32 };

struct att_params {
    const float *q;
    sq_cuda_kv kv;
    sq_cuda_tokens tok;
    int n_heads, n_kv_heads, head_dim, window, n_splits, n_chunks; /* n_chunks: head chunks of a group */
    float scale;
    float *out;
    float *part;     /* [n_tokens][n_heads][n_splits][head_dim + 2] when n_splits > 1 */
    const int *done; /* [n_tokens / PREFILL_TILE] tiles prefill_kernel finished (non-zero), or NULL */
};

template <int DPL, bool F16> __device__ __forceinline__ float row_at(const uint8_t *row, int i) {
    return F16 ? __half2float(((const __half *)row)[i]) : ((const float *)row)[i];
}

/* G: the most query heads a block serves (1 for multi-head attention, whose registers then hold more keys
 * in flight; else 8) */
template <int DPL, bool F16, int G>
__global__ void __launch_bounds__(ATT_WARPS * 32) attention_kernel(att_params p) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim;
    const int group = p.n_heads / p.n_kv_heads;
    const int chunk = blockIdx.x % p.n_chunks, kvh = blockIdx.x / p.n_chunks % p.n_kv_heads,
              t = blockIdx.x / p.n_chunks / p.n_kv_heads;
    if (p.done && p.done[t / PREFILL_TILE]) return; /* prefill_kernel has it */
    const int h0 = kvh * group + chunk * G;
    const int ng = min(G, (kvh + 1) * group - h0);
    const int seq = p.tok.seq[t], pos = p.tok.pos[t], n_prefix = p.tok.n_prefix[t];

    float qr[G][DPL], acc[G][DPL], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY, l[g] = 0;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            qr[g][i] = g < ng && d < hd ? p.q[((size_t)t * p.n_heads + h0 + g) * hd + d] : 0;
            acc[g][i] = 0;
        }
    }

    /* a key slot's rows (this lane's elements), then their step of this warp's running softmax */
    auto load = [&](int slot, float *kv_, float *vv) {
        const int32_t blk = p.kv.block_table[(size_t)seq * p.kv.max_blocks + slot / p.kv.block_size];
        const size_t off = ((size_t)blk * p.kv.block_size + slot % p.kv.block_size) * p.kv.row_bytes +
                           (size_t)kvh * hd * (F16 ? 2 : 4);
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            kv_[i] = d < hd ? row_at<DPL, F16>(p.kv.k + off, d) : 0;
            vv[i] = d < hd ? row_at<DPL, F16>(p.kv.v + off, d) : 0;
        }
    };
    auto update = [&](const float *kv_, const float *vv) {
#pragma unroll
        for (int g = 0; g < G; g++) {
            if (g >= ng) break;
            float dot = 0;
#pragma unroll
            for (int i = 0; i < DPL; i++) dot += qr[g][i] * kv_[i];
            const float s = sq_cu_warp_sum(dot) * p.scale;
            const float mn = fmaxf(m[g], s), corr = expf(m[g] - mn), e = expf(s - mn);
            l[g] = l[g] * corr + e;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[g][i] = acc[g][i] * corr + e * vv[i];
            m[g] = mn;
        }
    };
    auto visit = [&](int slot) {
        float kv_[DPL], vv[DPL];
        load(slot, kv_, vv);
        update(kv_, vv);
    };

    /* the cached prefix, in the window, split among blocks then warps */
    const int lo = p.window ? max(0, pos - p.window + 1) : 0;
    const int range = max(0, n_prefix - lo), per = (range + p.n_splits - 1) / p.n_splits;
    const int s0 = lo + blockIdx.y * per, s1 = min(n_prefix, s0 + per);
    /* U keys' rows loaded before the first is used: more bytes in flight per warp */
    constexpr int U = DPL <= 4 ? (G == 1 ? 8 : 4) : 2;
    int s = s0 + warp;
    for (; s + (U - 1) * ATT_WARPS < s1; s += U * ATT_WARPS) {
        float kr[U][DPL], vr[U][DPL];
#pragma unroll
        for (int u = 0; u < U; u++) load(s + u * ATT_WARPS, kr[u], vr[u]);
#pragma unroll
        for (int u = 0; u < U; u++) update(kr[u], vr[u]);
    }
    for (; s < s1; s += ATT_WARPS) visit(s);
    /* the token itself and its tree ancestors: split 0's first warp */
    if (blockIdx.y == 0 && warp == 0)
        for (int a = t; a >= 0; a = p.tok.parent[a])
            if (!p.window || pos - p.tok.pos[a] < p.window) visit(p.tok.slot[a]);

    /* merge the warps */
    __shared__ float sm[ATT_WARPS][G], sl[ATT_WARPS][G];
    __shared__ float sacc[ATT_WARPS][G][DPL * 32];
    if (lane == 0)
#pragma unroll
        for (int g = 0; g < G; g++) sm[warp][g] = m[g], sl[warp][g] = l[g];
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int i = 0; i < DPL; i++) sacc[warp][g][lane + 32 * i] = acc[g][i];
    __syncthreads();
    for (int e = threadIdx.x; e < ng * hd; e += blockDim.x) {
        const int g = e / hd, d = e % hd;
        float M = -INFINITY;
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, sm[w][g]);
        float L = 0, A = 0;
        for (int w = 0; w < ATT_WARPS; w++)
            if (sl[w][g] > 0) {
                const float f = expf(sm[w][g] - M);
                L += sl[w][g] * f;
                A += sacc[w][g][d] * f;
            }
        const size_t th = (size_t)t * p.n_heads + h0 + g;
        if (p.n_splits == 1) {
            p.out[th * hd + d] = A / L;
        } else {
            float *pp = p.part + (th * p.n_splits + blockIdx.y) * (hd + 2);
            pp[2 + d] = A;
            if (d == 0) pp[0] = M, pp[1] = L;
        }
    }
}

/* One block per (token, head): the splits' partial softmaxes merged. */
__global__ void combine_kernel(const float *part, int n_splits, int hd, int n_heads, const int *done,
                               float *out) {
    if (done && done[blockIdx.x / n_heads / PREFILL_TILE]) return;
    const float *pp = part + (size_t)blockIdx.x * n_splits * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, pp[s * (hd + 2)]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0, A = 0;
        for (int s = 0; s < n_splits; s++) {
            const float *q = pp + s * (hd + 2);
            if (q[1] > 0) {
                const float f = expf(q[0] - M);
                L += q[1] * f;
                A += q[2 + d] * f;
            }
        }
        out[(size_t)blockIdx.x * hd + d] = A / L;
    }
}

/* ---------------------------------------------------------------- prefill */

/* FlashAttention-style (Dao et al., 2022) causal prefill: a block takes PREFILL_TILE consecutive tokens of
 * one sequence and one query head, and walks the keys they see in tiles of 32 staged in shared memory as
 * fp32, with an online softmax per query. Each warp owns 8 queries; for the scores lane j takes key j
 * (16-byte loads of its padded row against broadcast query rows), for the weighted values lane l takes
 * dimensions l*DPL.. of every query. It takes only tiles of plain tokens (one sequence, no tree parent, slot
 * = position = cached prefix), which see the slots [max(0, pos - window + 1), pos]; it marks the tiles it did
 * in done[], and attention_kernel does the rest (token trees, mixed tiles). Shared memory: Q [32][hd], K
 * [32][hd + 4], V [32][hd]. */
template <int DPL> struct vec;
template <> struct vec<1> {
    using t = float;
    static __device__ __forceinline__ float get(const t &v, int) { return v; }
};
template <> struct vec<2> {
    using t = float2;
    static __device__ __forceinline__ float get(const t &v, int k) { return k ? v.y : v.x; }
};
template <> struct vec<4> {
    using t = float4;
    static __device__ __forceinline__ float get(const t &v, int k) {
        return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
    }
};

/* DPL consecutive values of a cache row from element d0 (16-bit or 32-bit rows), one load */
template <int DPL, bool F16>
__device__ __forceinline__ void load_vec(const uint8_t *row, int d0, float *out) {
    if constexpr (F16) {
        if constexpr (DPL == 4) {
            const uint2 u = *(const uint2 *)(row + 2 * d0);
            const float2 a = __half22float2(*(const __half2 *)&u.x),
                         b = __half22float2(*(const __half2 *)&u.y);
            out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
        } else if constexpr (DPL == 2) {
            const float2 a = __half22float2(*(const __half2 *)(row + 2 * d0));
            out[0] = a.x, out[1] = a.y;
        } else {
            out[0] = __half2float(*(const __half *)(row + 2 * d0));
        }
    } else {
        if constexpr (DPL == 4) {
            const float4 a = *(const float4 *)(row + 4 * d0);
            out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
        } else if constexpr (DPL == 2) {
            const float2 a = *(const float2 *)(row + 4 * d0);
            out[0] = a.x, out[1] = a.y;
        } else {
            out[0] = *(const float *)(row + 4 * d0);
        }
    }
}

template <int DPL, bool F16> __global__ void __launch_bounds__(128) prefill_kernel(att_params p, int *done) {
    constexpr int HD = DPL * 32, KP = HD + 4, QPW = PREFILL_TILE / ATT_WARPS; /* queries per warp */
    using V = vec<DPL>;
    extern __shared__ float4 smem4[];
    float *qs = (float *)smem4, *ks = qs + PREFILL_TILE * HD, *vs = ks + 32 * KP;
    const int tile = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int t0 = tile * PREFILL_TILE, nt = min(PREFILL_TILE, p.tok.n_tokens - t0);
    const int kvh = h / (p.n_heads / p.n_kv_heads), seq = p.tok.seq[t0];
    int mine = 1; /* thread i checks token t0 + i */
    if (tid < nt) {
        const int t = t0 + tid;
        mine = p.tok.seq[t] == seq && p.tok.parent[t] < 0 && p.tok.n_prefix[t] == p.tok.slot[t] &&
               p.tok.pos[t] == p.tok.slot[t];
    }
    const int ok = __syncthreads_and(mine);
    if (h == 0 && tid == 0) done[tile] = ok;
    if (!ok) return;
    for (int e = tid; e < PREFILL_TILE * HD; e += blockDim.x) {
        const int i = e / HD;
        qs[e] = i < nt ? p.q[((size_t)(t0 + i) * p.n_heads + h) * HD + e % HD] : 0;
    }
    const int first_pos = p.tok.pos[t0];
    const int lo = p.window ? max(0, first_pos - p.window + 1) : 0, hi = p.tok.slot[t0 + nt - 1] + 1;
    float m[QPW], l[QPW], acc[QPW][DPL];
    int qpos[QPW];
#pragma unroll
    for (int r = 0; r < QPW; r++) {
        m[r] = -INFINITY, l[r] = 0;
        const int i = warp * QPW + r;
        qpos[r] = i < nt ? p.tok.pos[t0 + i] : -1; /* -1: no query, sees nothing */
#pragma unroll
        for (int d = 0; d < DPL; d++) acc[r][d] = 0;
    }
    const size_t head_off = (size_t)kvh * HD * (F16 ? 2 : 4);
    for (int k0 = lo; k0 < hi; k0 += 32) {
        __syncthreads(); /* the previous tile is consumed */
        /* warp w stages rows w, w + 4, ...: lane l the DPL values at l * DPL of each, all loads issued first
         */
        float kr[32 / ATT_WARPS][DPL], vr[32 / ATT_WARPS][DPL];
#pragma unroll
        for (int jj = 0; jj < 32 / ATT_WARPS; jj++) {
            const int slot = k0 + warp + ATT_WARPS * jj;
            if (slot < hi) {
                const int32_t blk = p.kv.block_table[(size_t)seq * p.kv.max_blocks + slot / p.kv.block_size];
                const size_t off =
                    ((size_t)blk * p.kv.block_size + slot % p.kv.block_size) * p.kv.row_bytes + head_off;
                load_vec<DPL, F16>(p.kv.k + off, lane * DPL, kr[jj]);
                load_vec<DPL, F16>(p.kv.v + off, lane * DPL, vr[jj]);
            } else {
#pragma unroll
                for (int d = 0; d < DPL; d++) kr[jj][d] = vr[jj][d] = 0;
            }
        }
#pragma unroll
        for (int jj = 0; jj < 32 / ATT_WARPS; jj++) {
            const int j = warp + ATT_WARPS * jj;
#pragma unroll
            for (int d = 0; d < DPL; d++) {
                ks[j * KP + lane * DPL + d] = kr[jj][d];
                vs[j * HD + lane * DPL + d] = vr[jj][d];
            }
        }
        __syncthreads();
        float s[QPW];
#pragma unroll
        for (int r = 0; r < QPW; r++) s[r] = 0;
#pragma unroll 4
        for (int d = 0; d < HD; d += 4) {
            const float4 kd = *(const float4 *)&ks[lane * KP + d];
#pragma unroll
            for (int r = 0; r < QPW; r++) {
                const float4 qv = *(const float4 *)&qs[(warp * QPW + r) * HD + d];
                s[r] += qv.x * kd.x + qv.y * kd.y + qv.z * kd.z + qv.w * kd.w;
            }
        }
        const int ks_slot = k0 + lane;
        float e[QPW];
#pragma unroll
        for (int r = 0; r < QPW; r++) {
            const bool seen =
                ks_slot < hi && ks_slot <= qpos[r] && (!p.window || qpos[r] - ks_slot < p.window);
            const float sr = seen ? s[r] * p.scale : -INFINITY;
            float mx = sr;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            /* a query that sees nothing of this tile keeps its state: corr 1, weights 0 */
            const float mn = fmaxf(m[r], mx);
            const float corr = mx == -INFINITY ? 1.0f : expf(m[r] - mn);
            e[r] = seen ? expf(sr - mn) : 0.0f;
            l[r] = l[r] * corr + sq_cu_warp_sum(e[r]);
#pragma unroll
            for (int d = 0; d < DPL; d++) acc[r][d] *= corr;
            m[r] = mn;
        }
        for (int j = 0; j < 32; j++) {
            const typename V::t v = *(const typename V::t *)&vs[j * HD + lane * DPL];
#pragma unroll
            for (int r = 0; r < QPW; r++) {
                const float pj = __shfl_sync(0xffffffffu, e[r], j);
#pragma unroll
                for (int d = 0; d < DPL; d++) acc[r][d] += pj * V::get(v, d);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < QPW; r++) {
        const int i = warp * QPW + r;
        if (i >= nt) continue;
#pragma unroll
        for (int d = 0; d < DPL; d++)
            p.out[((size_t)(t0 + i) * p.n_heads + h) * HD + lane * DPL + d] = acc[r][d] / l[r];
    }
}

template <int DPL> static void launch_prefill(sq_cuda *c, const att_params &p, int *done) {
    const size_t smem = ((size_t)PREFILL_TILE * DPL * 32 * 2 + (size_t)32 * (DPL * 32 + 4)) * sizeof(float);
    const dim3 grid(sq_cu_blocks(p.tok.n_tokens, PREFILL_TILE), (unsigned)p.n_heads);
    if (p.kv.f16) {
        cudaFuncSetAttribute(prefill_kernel<DPL, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem);
        prefill_kernel<DPL, true><<<grid, 128, smem, c->stream>>>(p, done);
    } else {
        cudaFuncSetAttribute(prefill_kernel<DPL, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem);
        prefill_kernel<DPL, false><<<grid, 128, smem, c->stream>>>(p, done);
    }
}

template <int DPL, int G> static void launch(sq_cuda *c, const att_params &p, dim3 grid) {
    if (p.kv.f16)
        attention_kernel<DPL, true, G><<<grid, ATT_WARPS * 32, 0, c->stream>>>(p);
    else
        attention_kernel<DPL, false, G><<<grid, ATT_WARPS * 32, 0, c->stream>>>(p);
}
template <int DPL> static void launch(sq_cuda *c, const att_params &p, dim3 grid) {
    if (p.n_heads == p.n_kv_heads)
        launch<DPL, 1>(c, p, grid);
    else
        launch<DPL, MAX_GROUP>(c, p, grid);
}

void sq_cuda_attention(sq_cuda *c, const float *q, const sq_cuda_kv *kv, const sq_cuda_tokens *tokens,
                       int n_heads, int n_kv_heads, int head_dim, int window, float *out) {
    const int n = tokens->n_tokens;
    if (n <= 0) return;
    if (head_dim > 256) {
        sq_cuda_note(c, cudaErrorInvalidValue, "attention: head_dim above 256");
        return;
    }
    att_params p = {q, *kv, *tokens, n_heads, n_kv_heads, head_dim, window, 1, 0, 0, out, NULL, NULL};
    const int group = n_heads / n_kv_heads;
    p.n_chunks = (group + MAX_GROUP - 1) / MAX_GROUP;
    p.scale = (float)(1.0 / sqrt((double)head_dim));
    /* split the slots while the blocks would not fill the GPU twice, at least 64 slots a split */
    const int64_t blocks = (int64_t)n * n_kv_heads * p.n_chunks;
    const int64_t capacity = (int64_t)kv->max_blocks * kv->block_size;
    while (blocks * p.n_splits < 2 * c->n_sm && (int64_t)p.n_splits * 2 * 64 <= capacity) p.n_splits *= 2;
    /* scratch: the tiles prefill_kernel did, then the splits' partial results */
    const int use_prefill = n >= PREFILL_TILE && (head_dim == 32 || head_dim == 64 || head_dim == 128);
    const size_t done_bytes =
        use_prefill ? ((size_t)sq_cu_blocks(n, PREFILL_TILE) * sizeof(int) + 255) & ~(size_t)255 : 0;
    const size_t part_bytes =
        p.n_splits > 1 ? (size_t)n * n_heads * p.n_splits * (head_dim + 2) * sizeof(float) : 0;
    uint8_t *scratch = NULL;
    if (done_bytes + part_bytes) {
        scratch = (uint8_t *)sq_cuda_scratch(c, done_bytes + part_bytes);
        if (!scratch) return;
    }
    if (p.n_splits > 1) p.part = (float *)(scratch + done_bytes);
    if (use_prefill) {
        int *done = (int *)scratch;
        if (head_dim == 32)
            launch_prefill<1>(c, p, done);
        else if (head_dim == 64)
            launch_prefill<2>(c, p, done);
        else
            launch_prefill<4>(c, p, done);
        p.done = done;
    }
    const dim3 grid((unsigned)blocks, (unsigned)p.n_splits);
    if (head_dim <= 32)
        launch<1>(c, p, grid);
    else if (head_dim <= 64)
        launch<2>(c, p, grid);
    else if (head_dim <= 128)
        launch<4>(c, p, grid);
    else
        launch<8>(c, p, grid);
    if (p.n_splits > 1)
        combine_kernel<<<n * n_heads, 128, 0, c->stream>>>(p.part, p.n_splits, head_dim, n_heads, p.done,
                                                           out);
    SQ_CUDA_LAUNCHED(c, "attention");
}
