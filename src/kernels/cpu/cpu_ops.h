/* The CPU backend's operations (see kernels/backend.h for their contracts). */
#ifndef SQ_KERNELS_CPU_OPS_H
#define SQ_KERNELS_CPU_OPS_H

#include "core/threadpool.h"
#include "kernels/backend.h"

void sq_cpu_rmsnorm(sq_threadpool *pool, const float *x, const float *weight, float eps, int n_tokens,
                    int dim, float *out);
void sq_cpu_rope(float *x, int n_tokens, int n_heads, int head_dim, const float *cos, const float *sin,
                 sq_rope_style style);
void sq_cpu_swiglu(float *gate, const float *up, int64_t n);
void sq_cpu_attention(sq_threadpool *pool, const sq_attention_args *args);
void sq_cpu_kv_store(const sq_kv_view *kv, const float *k, const float *v, const int *seq, const int *pos,
                     int n_tokens);

#endif
