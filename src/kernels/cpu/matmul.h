/* Matrix multiplication with weights in any supported storage format, fp32 activations and accumulation.
 *
 *   y[t][r] = sum_c x[t][c] * W[r][c]      for t < n_tokens, r < rows(W), c < cols(W)
 *
 * x is [n_tokens][cols] and y is [n_tokens][rows], both fp32 and densely packed. One token is a GEMV over
 * the weight rows (decode, memory bound); many tokens run as a blocked GEMM (prefill, compute bound). */
#ifndef SQ_KERNELS_CPU_MATMUL_H
#define SQ_KERNELS_CPU_MATMUL_H

#include "core/tensor.h"
#include "core/threadpool.h"

/* Fast path: SIMD kernels chosen at run time (AVX-512, AVX2/FMA or scalar), threads over `pool`. */
void sq_cpu_matmul(sq_threadpool *pool, const sq_tensor *w, const float *x, int n_tokens, float *y);
/* The same with a given kernel set (kernels.h) instead of the active one: for tests of sets built there. */
struct sq_cpu_kernels;
void sq_cpu_matmul_with(const struct sq_cpu_kernels *set, sq_threadpool *pool, const sq_tensor *w,
                        const float *x, int n_tokens, float *y);

/* What sq_cpu_matmul_with(set, ...) multiplies weights of w_dtype with for n_tokens tokens: SQ_DTYPE_F32, or
 * the 8-bit format the GEMV's integer dot products take (the format's dot_dtype), into which x is quantized
 * by that format's reference from_f32. */
sq_dtype sq_cpu_matmul_x_dtype(const struct sq_cpu_kernels *set, sq_dtype w_dtype, int n_tokens);

/* The oracle: plain C, one thread, each weight row dequantized with the dtype's reference to_f32, double
 * accumulation. sq_ref_matmul_x first rounds each row of x through x_dtype's reference conversions (from_f32,
 * then to_f32): the oracle of a product whose activations were quantized. */
void sq_ref_matmul(const sq_tensor *w, const float *x, int n_tokens, float *y);
void sq_ref_matmul_x(const sq_tensor *w, sq_dtype x_dtype, const float *x, int n_tokens, float *y);

#endif
