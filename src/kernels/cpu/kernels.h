/* The kernel sets behind sq_cpu_matmul. Each set (scalar, AVX2, AVX-512) gives every weight format of the
 * table in core/dtype.h a GEMV over a run of weight rows and a fast dequantizer into fp32 (for the tiles of
 * the GEMM path), or marks the format SQ_REFERENCE_ONLY, and matmul.c then runs it through the format's
 * reference to_f32. tests/c/test_matmul.c fails when a set has neither for some format. The dispatcher in
 * matmul.c picks one set per call; cpu_features.c decides which set is active. */
#ifndef SQ_KERNELS_CPU_KERNELS_H
#define SQ_KERNELS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

/* y[t * ldy + r] = dot(row r of w, row t of x) for r < n_rows and t < n_tokens; weight rows are row_bytes
 * apart and cols elements long. x holds n_tokens rows of cols activations in the format's dot_dtype
 * (core/dtype.h): fp32, or for integer dot products 8-bit blocks (Q8_0, Q8_K), sq_row_bytes(dot_dtype, cols)
 * bytes a row, quantized by the dispatcher once per matmul. Each weight row is read (and converted) once for
 * a group of tokens. */
typedef void (*sq_gemv_fn)(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t cols, const void *x,
                           int n_tokens, float *y, size_t ldy);
/* Converts n consecutive elements (a whole number of blocks) to fp32, with results identical to the format's
 * reference to_f32. */
typedef void (*sq_to_f32_fn)(const void *src, float *dst, int64_t n);

/* One format's entry points in one kernel set: both, or neither and reference_only set. */
typedef struct sq_format_kernels {
    sq_gemv_fn gemv;
    sq_to_f32_fn to_f32;
    int reference_only;
} sq_format_kernels;
#define SQ_REFERENCE_ONLY                                                                                    \
    { .reference_only = 1 }

typedef struct sq_cpu_kernels {
    const char *name;
    sq_format_kernels formats[SQ_DTYPE_COUNT]; /* indexed by sq_dtype */
} sq_cpu_kernels;

/* The SIMD sets convert blocks this many values at a time (a register tile, not a format's block: ggml's
 * 32-value blocks are one sub-block, the K-quants' 256-value super-blocks would be eight), so their block
 * formats' blocks are whole multiples of it. */
#define SQ_CPU_SUB_BLOCK 32

extern const sq_cpu_kernels sq_kernels_scalar;
#if defined(__x86_64__)
extern const sq_cpu_kernels sq_kernels_avx2;
extern const sq_cpu_kernels sq_kernels_avx512;
#endif

/* The set sq_cpu_matmul uses now: the best the CPU supports unless sq_cpu_force_kernels chose another. */
const sq_cpu_kernels *sq_cpu_kernels_active(void);

/* A set's dequantizer for a format: its fast to_f32, or the format's reference where it has none. */
static inline sq_to_f32_fn sq_cpu_to_f32(const sq_cpu_kernels *set, sq_dtype dtype) {
    return set->formats[dtype].reference_only ? sq_dtype_info(dtype)->to_f32 : set->formats[dtype].to_f32;
}

#endif
