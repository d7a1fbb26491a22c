/* The narrow table of operations the forward pass runs on. The CPU implements it today; an accelerator
 * backend is a second implementation of the same table, checked against the CPU one operation by operation.
 * Activations are fp32 row-major [n_tokens][width] in the backend's memory; `impl` is the backend's own state
 * (the CPU's thread pool). */
#ifndef SQ_KERNELS_BACKEND_H
#define SQ_KERNELS_BACKEND_H

#include <stdint.h>

#include "core/tensor.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

typedef struct sq_attention_args {
    const float *q;        /* [n_tokens][n_heads * head_dim], RoPE applied */
    const sq_kv_cache *kv; /* keys/values of every position up to each token's, this layer's already stored */
    int layer;
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
} sq_backend;

/* The CPU backend over a thread pool (borrowed). */
sq_backend sq_cpu_backend(sq_threadpool *pool);

#endif
