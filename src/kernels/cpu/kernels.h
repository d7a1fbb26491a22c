/* The kernel sets behind sq_cpu_matmul. Each set (scalar, AVX2, AVX-512) gives, per weight dtype, a GEMV over
 * a run of weight rows and a fast dequantizer into fp32 (for the tiles of the GEMM path). The dispatcher in
 * matmul.c picks one set per call; cpu_features.c decides which set is active. */
#ifndef SQ_KERNELS_CPU_KERNELS_H
#define SQ_KERNELS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* y[t * ldy + r] = dot(row r of w, x + t * cols) for r < n_rows and t < n_tokens; rows are row_bytes apart
 * and cols elements long. Each weight row is read (and converted) once for a group of tokens. */
typedef void (*sq_gemv_fn)(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t cols, const float *x,
                           int n_tokens, float *y, size_t ldy);
/* Converts n consecutive elements (a whole number of blocks for block formats) to fp32, with results
 * identical to the dtype's reference to_f32. */
typedef void (*sq_to_f32_fn)(const void *src, float *dst, int64_t n);

typedef struct sq_cpu_kernels {
    const char *name;
    sq_gemv_fn gemv[SQ_DTYPE_COUNT];
    sq_to_f32_fn to_f32[SQ_DTYPE_COUNT]; /* NULL: the dtype's reference to_f32 */
} sq_cpu_kernels;

extern const sq_cpu_kernels sq_kernels_scalar;
#if defined(__x86_64__)
extern const sq_cpu_kernels sq_kernels_avx2;
extern const sq_cpu_kernels sq_kernels_avx512;
#endif

/* The set sq_cpu_matmul uses now: the best the CPU supports unless sq_cpu_force_kernels chose another. */
const sq_cpu_kernels *sq_cpu_kernels_active(void);

#endif
