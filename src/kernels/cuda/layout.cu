/* The upload of weights into the device layout (cuda_common.cuh, "device layout"): each block of a block
 * format split into its quants and its scales, so that the GEMVs read quants 16 bytes a lane and every byte
 * once. The host's copy keeps ggml's layout; this upload is the only place that rearranges. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

enum { STAGE_BLOCKS = 1 << 16 }; /* blocks rearranged per staged upload (up to 9 MiB of q4_K) */

template <int DT>
static void upload_matrix(sq_cuda *c, uint8_t *dst, const uint8_t *src, int64_t n_blocks, uint8_t *stage) {
    using L = sq_cu_layout<DT>;
    constexpr int Q = L::quant_bytes, M = L::scale_bytes, B = Q + M; /* ggml's block: scales, then quants */
    uint8_t *scales = dst + (size_t)n_blocks * Q;
    for (int64_t b0 = 0; b0 < n_blocks; b0 += STAGE_BLOCKS) {
        const int64_t n = n_blocks - b0 < STAGE_BLOCKS ? n_blocks - b0 : STAGE_BLOCKS;
        uint8_t *sq = stage, *ss = stage + (size_t)n * Q; /* [n][Q] quants, [n][M] scales */
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *blk = src + (size_t)(b0 + i) * B;
            memcpy(ss + (size_t)i * M, blk, M);
            memcpy(sq + (size_t)i * Q, blk + M, Q);
        }
        /* from pageable memory each copy is staged before the call returns: the stage may be reused */
        sq_cuda_upload(c, dst + (size_t)b0 * Q, sq, (size_t)n * Q);
        sq_cuda_upload(c, scales + (size_t)b0 * M, ss, (size_t)n * M);
    }
}

void sq_cuda_upload_weight(sq_cuda *c, int dtype, void *dst, const void *src, int64_t n_matrices,
                           int64_t rows, int64_t cols) {
    if (dtype != SQ_CUDA_Q4_0 && dtype != SQ_CUDA_Q8_0 && dtype != SQ_CUDA_Q4_K) {
        const size_t es = dtype == SQ_CUDA_F32 ? 4 : 2;
        sq_cuda_upload(c, dst, src, (size_t)(n_matrices * rows * cols) * es);
        return;
    }
    uint8_t *stage = (uint8_t *)malloc((size_t)STAGE_BLOCKS * (128 + 16));
    if (!stage) {
        sq_cuda_note(c, cudaErrorMemoryAllocation, "weight upload: out of host memory");
        return;
    }
    sq_cu_with_format(dtype, [&](auto dt) {
        constexpr int DT = decltype(dt)::value;
        using L = sq_cu_layout<DT>;
        if constexpr (L::quant_bytes > 0) {
            /* each matrix of a stack (experts) in its own bytes, so that a slice of one is a weight too */
            const int64_t nb = rows * (cols / L::elems);
            const size_t mbytes = (size_t)nb * (L::quant_bytes + L::scale_bytes);
            for (int64_t m = 0; m < n_matrices; m++)
                upload_matrix<DT>(c, (uint8_t *)dst + m * mbytes, (const uint8_t *)src + m * mbytes, nb,
                                  stage);
        }
    });
    free(stage);
}
