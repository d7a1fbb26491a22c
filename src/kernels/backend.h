/* The narrow table of operations the forward pass runs on. The CPU implements it today; an accelerator
 * backend is a second implementation of the same table, checked against the CPU one operation by operation.
 * Activations are fp32 row-major [n_tokens][width] in the backend's memory; `impl` is the backend's own state
 * (the CPU's thread pool). */
#ifndef SQ_KERNELS_BACKEND_H
#define SQ_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "model/model.h"

/* A layer's KV cache as kernels see it: rows of kv_dim values stored as row_type (SQ_DTYPE_F32 or
 * SQ_DTYPE_F16 today; quantized row types come with KV quantization). Position slot p of sequence s lives at
 *   k + ((size_t)block_table[s * max_blocks + p / block_size] * block_size + p % block_size) * row_bytes
 * and likewise in v. Kernels read and write rows only through this view. */
typedef struct sq_kv_view {
    uint8_t *k, *v;             /* this layer's key and value pools, in the backend's memory */
    const int32_t *block_table; /* [n_seq][max_blocks] physical block ids of each sequence's slots */
    int max_blocks;             /* block-table entries per sequence */
    int block_size;             /* positions per block */
    size_t row_bytes;           /* bytes of one row (kv_dim values of row_type) */
    sq_dtype row_type;
    int kv_dim; /* n_kv_heads * head_dim of this layer */
} sq_kv_view;

/* Byte offset of slot pos of sequence seq in either pool of the view (the formula above). */
static inline size_t sq_kv_view_offset(const sq_kv_view *kv, int seq, int pos) {
    int32_t block = kv->block_table[(size_t)seq * kv->max_blocks + pos / kv->block_size];
    return ((size_t)block * kv->block_size + (size_t)(pos % kv->block_size)) * kv->row_bytes;
}

typedef struct sq_attention_args {
    const float *q;       /* [n_tokens][n_heads * head_dim], RoPE applied */
    const sq_kv_view *kv; /* this layer's keys/values of every position up to each token's, already stored */
    const int *seq, *pos; /* per token: its sequence and position */
    int n_tokens, n_heads, n_kv_heads, head_dim;
    int window; /* sliding window: attend to positions p with pos - p < window; 0: all */
    float *out; /* [n_tokens][n_heads * head_dim] */
} sq_attention_args;

typedef struct sq_backend {
    const char *name;
    void *impl;
    /* y[t][r] = sum_c x[t][c] W[r][c], W in any storage format */
    void (*matmul)(void *impl, const sq_tensor *w, const float *x, int n_tokens, float *y);
    /* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight */
    void (*rmsnorm)(void *impl, const float *x, const float *weight, float eps, int n_tokens, int dim,
                    float *out);
    /* rotates each head of x[t] by the angles of row t of cos/sin ([n_tokens][head_dim/2]) */
    void (*rope)(void *impl, float *x, int n_tokens, int n_heads, int head_dim, const float *cos,
                 const float *sin, sq_rope_style style);
    void (*attention)(void *impl, const sq_attention_args *args);
    /* gate = silu(gate) * up, elementwise over n values */
    void (*swiglu)(void *impl, float *gate, const float *up, int64_t n);
    /* stores token t's key and value rows (k, v: [n_tokens][kv->kv_dim] fp32) into slot pos[t] of sequence
     * seq[t], converted to kv->row_type (round to nearest even) */
    void (*kv_store)(void *impl, const sq_kv_view *kv, const float *k, const float *v, const int *seq,
                     const int *pos, int n_tokens);

    /* memory half (pools of the KV cache today; weights and activations with the device backends) */
    void *(*alloc)(void *impl, size_t nbytes); /* backend memory, 64-byte aligned, NULL when exhausted */
    void (*free)(void *impl, void *ptr);       /* NULL is a no-op */
    void (*upload)(void *impl, void *dst, const void *src, size_t nbytes);   /* host -> backend */
    void (*download)(void *impl, void *dst, const void *src, size_t nbytes); /* backend -> host */
    void (*copy)(void *impl, void *dst, const void *src, size_t nbytes);     /* backend -> backend */
    void (*synchronize)(void *impl);                                         /* waits for all queued work */
} sq_backend;

/* The CPU backend over a thread pool (borrowed). */
sq_backend sq_cpu_backend(sq_threadpool *pool);

#endif
