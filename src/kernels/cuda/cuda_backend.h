/* The CUDA backend (built with -DSQUEEZE_CUDA=ON, which defines SQ_HAVE_CUDA): kernels/backend.h's table on
 * an NVIDIA GPU (compute capability 8.0 or later; tuned for sm_90, the H100/H200). What runs there and how is
 * described in docs/architecture.md, "CUDA backend". */
#ifndef SQ_KERNELS_CUDA_BACKEND_H
#define SQ_KERNELS_CUDA_BACKEND_H

#include "kernels/backend.h"

/* The "cuda" row of kernels/backend.c: device 0. SQ_ERR_UNSUPPORTED (with the driver's reason) where no
 * usable GPU is present. n_threads is unused. */
SQ_NODISCARD sq_error *sq_cuda_backend_create(int n_threads, sq_backend *out);

/* How the matmul of n_tokens rows against a weight of type w rounds its operands, for tests' oracles: x to
 * x_dtype (F32: not at all; F16/BF16 for the tensor-core GEMM; Q8_0 for the integer-dot GEMV), the weight to
 * w_dtype (its own, or F16 where a quantized weight is dequantized for the GEMM). */
void sq_cuda_backend_precision(sq_dtype w, int n_tokens, sq_dtype *x_dtype, sq_dtype *w_dtype);

/* Device-to-device copy bandwidth (bytes read + written per second) over nbytes, the median of reps copies.
 */
double sq_cuda_backend_copy_bandwidth(const sq_backend *be, size_t nbytes, int reps);

/* Per-operation profile, for benchmarks: copies the seconds and calls of each sq_op since the last call into
 * seconds/calls ([SQ_OP_COUNT] each, or NULL), clears them, and turns timing on or off. While on, each
 * operation waits for the device before and after itself (its device time plus a launch latency). */
void sq_cuda_backend_profile(const sq_backend *be, int on, double *seconds, long *calls);

/* Whether steps of few tokens replay as CUDA graphs (on by default): for tests comparing both ways. */
void sq_cuda_backend_graphs(const sq_backend *be, int on);

#endif
