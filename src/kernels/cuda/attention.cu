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

enum { ATT_WARPS = 4, MAX_GROUP = 8 };

struct att_params {
    const float *q;
    sq_cuda_kv kv;
    sq_cuda_tokens tok;
    int n_heads, n_kv_heads, head_dim, window, n_splits, n_chunks; /* n_chunks: head chunks of a group */
    float scale;
    float *out;
    float *part; /* [n_tokens][n_heads][n_splits][head_dim + 2] when n_splits > 1 */
};

template <int DPL, bool F16> __device__ __forceinline__ float row_at(const uint8_t *row, int i) {
    return F16 ? __half2float(((const __half *)row)[i]) : ((const float *)row)[i];
}

template <int DPL, bool F16>
__global__ void __launch_bounds__(ATT_WARPS * 32) attention_kernel(att_params p) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim;
    const int group = p.n_heads / p.n_kv_heads;
    const int chunk = blockIdx.x % p.n_chunks, kvh = blockIdx.x / p.n_chunks % p.n_kv_heads,
              t = blockIdx.x / p.n_chunks / p.n_kv_heads;
    const int h0 = kvh * group + chunk * MAX_GROUP;
    const int ng = min(MAX_GROUP, (kvh + 1) * group - h0);
    const int seq = p.tok.seq[t], pos = p.tok.pos[t], n_prefix = p.tok.n_prefix[t];

    float qr[MAX_GROUP][DPL], acc[MAX_GROUP][DPL], m[MAX_GROUP], l[MAX_GROUP];
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
        m[g] = -INFINITY, l[g] = 0;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            qr[g][i] = g < ng && d < hd ? p.q[((size_t)t * p.n_heads + h0 + g) * hd + d] : 0;
            acc[g][i] = 0;
        }
    }

    /* one key slot (at position kpos) into this warp's running softmax */
    auto visit = [&](int slot) {
        const int32_t blk = p.kv.block_table[(size_t)seq * p.kv.max_blocks + slot / p.kv.block_size];
        const size_t off = ((size_t)blk * p.kv.block_size + slot % p.kv.block_size) * p.kv.row_bytes +
                           (size_t)kvh * hd * (F16 ? 2 : 4);
        const uint8_t *kr = p.kv.k + off, *vr = p.kv.v + off;
        float kv_[DPL], vv[DPL];
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            kv_[i] = d < hd ? row_at<DPL, F16>(kr, d) : 0;
            vv[i] = d < hd ? row_at<DPL, F16>(vr, d) : 0;
        }
#pragma unroll
        for (int g = 0; g < MAX_GROUP; g++) {
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

    /* the cached prefix, in the window, split among blocks then warps */
    const int lo = p.window ? max(0, pos - p.window + 1) : 0;
    const int range = max(0, n_prefix - lo), per = (range + p.n_splits - 1) / p.n_splits;
    const int s0 = lo + blockIdx.y * per, s1 = min(n_prefix, s0 + per);
    for (int s = s0 + warp; s < s1; s += ATT_WARPS) visit(s);
    /* the token itself and its tree ancestors: split 0's first warp */
    if (blockIdx.y == 0 && warp == 0)
        for (int a = t; a >= 0; a = p.tok.parent[a])
            if (!p.window || pos - p.tok.pos[a] < p.window) visit(p.tok.slot[a]);

    /* merge the warps */
    __shared__ float sm[ATT_WARPS][MAX_GROUP], sl[ATT_WARPS][MAX_GROUP];
    __shared__ float sacc[ATT_WARPS][MAX_GROUP][DPL * 32];
    if (lane == 0)
#pragma unroll
        for (int g = 0; g < MAX_GROUP; g++) sm[warp][g] = m[g], sl[warp][g] = l[g];
#pragma unroll
    for (int g = 0; g < MAX_GROUP; g++)
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
__global__ void combine_kernel(const float *part, int n_splits, int hd, float *out) {
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

template <int DPL> static void launch(sq_cuda *c, const att_params &p, dim3 grid) {
    if (p.kv.f16)
        attention_kernel<DPL, true><<<grid, ATT_WARPS * 32, 0, c->stream>>>(p);
    else
        attention_kernel<DPL, false><<<grid, ATT_WARPS * 32, 0, c->stream>>>(p);
}

void sq_cuda_attention(sq_cuda *c, const float *q, const sq_cuda_kv *kv, const sq_cuda_tokens *tokens,
                       int n_heads, int n_kv_heads, int head_dim, int window, float *out) {
    const int n = tokens->n_tokens;
    if (n <= 0) return;
    if (head_dim > 256) {
        sq_cuda_note(c, cudaErrorInvalidValue, "attention: head_dim above 256");
        return;
    }
    att_params p = {q, *kv, *tokens, n_heads, n_kv_heads, head_dim, window, 1, 0, 0, out, NULL};
    const int group = n_heads / n_kv_heads;
    p.n_chunks = (group + MAX_GROUP - 1) / MAX_GROUP;
    p.scale = (float)(1.0 / sqrt((double)head_dim));
    /* split the slots while the blocks would not fill the GPU twice, at least 64 slots a split */
    const int64_t blocks = (int64_t)n * n_kv_heads * p.n_chunks;
    const int64_t capacity = (int64_t)kv->max_blocks * kv->block_size;
    while (blocks * p.n_splits < 2 * c->n_sm && (int64_t)p.n_splits * 2 * 64 <= capacity) p.n_splits *= 2;
    if (p.n_splits > 1) {
        p.part =
            (float *)sq_cuda_scratch(c, (size_t)n * n_heads * p.n_splits * (head_dim + 2) * sizeof(float));
        if (!p.part) return;
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
    if (p.n_splits > 1) combine_kernel<<<n * n_heads, 128, 0, c->stream>>>(p.part, p.n_splits, head_dim, out);
    SQ_CUDA_LAUNCHED(c, "attention");
}
