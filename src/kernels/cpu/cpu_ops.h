/* The CPU backend's operations (contracts in kernels/backend.h), over a thread pool where the work is large
 * enough to share. */
#ifndef SQ_KERNELS_CPU_OPS_H
#define SQ_KERNELS_CPU_OPS_H

#include "core/threadpool.h"
#include "kernels/backend.h"

SQ_NODISCARD sq_error *sq_cpu_backend_create(int n_threads, sq_backend *out);

/* elementwise.c */
void sq_cpu_rmsnorm(sq_threadpool *pool, const float *x, const float *weight, float eps, int n_tokens,
                    int dim, float *out);
void sq_cpu_rope(sq_threadpool *pool, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens,
                 int head_dim, int rope_dims, const int32_t *pos, const double *inv_freq,
                 sq_rope_style style);
void sq_cpu_add(float *x, const float *y, int64_t n);
void sq_cpu_add_bias(float *y, const float *bias, int n_tokens, int width);
void sq_cpu_swiglu(float *gate, const float *up, int64_t n);
void sq_cpu_add_rows(float *x, const float *y, const int32_t *rows, const float *scale, int n_rows,
                     int width);
void sq_cpu_geglu(float *gate, const float *up, int64_t n);
void sq_cpu_scale(float *x, float s, int64_t n);

/* rows.c */
void sq_cpu_get_rows(const sq_tensor *src, const int32_t *rows, int n_rows, float *out);
void sq_cpu_kv_store(const sq_kv_view *kv, const float *k, const float *v, const sq_token_batch *tokens);
void sq_cpu_kv_copy(const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst, int n);

/* attention.c */
void sq_cpu_attention(sq_threadpool *pool, const sq_attention_args *args);

#endif
