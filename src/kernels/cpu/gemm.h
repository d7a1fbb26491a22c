/* Prefill GEMM of the 32-value block formats as integer tiles: squeeze's own, in place of dequantizing to
 * fp32 and calling sgemm.
 *
 *   y[t][r] = sum_c x[t][c] * W[r][c]      for t < n_tokens, r < rows(W), c < cols(W)
 *
 * The activations are quantized once per product to Q8_0 blocks (W8A8: to its own per-token blocks, Q8_0's
 * layout) by the dot format's reference from_f32, as the GEMVs' are; then a register tile of several weight
 * rows x several tokens multiplies each 32-value unit of both as bytes (AVX2 maddubs + madd, or AVX-512
 * VNNI's vpdpbusd where the CPU has it, chosen at run time), exact in 32-bit integers, scaled per unit in
 * fp32 by the weight block's and the activation block's scales. No dequantized copy of the matrix is made.
 * Zero points that are one constant per format (Q4_0's 8, Q5_0's 16, Q8_0's 128 after its values are offset
 * to unsigned bytes) are folded into the integer sum; the per-block minimums of Q4_1, Q5_1 and int4 come in
 * through the activation block's sum, in fp32.
 *
 * Each output is summed by one thread in a fixed order, so results are bit-identical for any thread count.
 * The oracle is sq_ref_matmul_x(w, sq_cpu_gemm_x_dtype(dtype), ...) (matmul_ref.c): the same quantized
 * activations, dequantized weights, double sums. */
#ifndef SQ_KERNELS_CPU_GEMM_H
#define SQ_KERNELS_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "core/threadpool.h"

struct sq_cpu_kernels;

/* The quantized activations of one product: n_tokens rows of nb 32-value blocks. */
typedef struct sq_gemm_x {
    const sq_block_q8_0 *q; /* [n_tokens][nb] the blocks (Q8_0's layout) */
    const float *d;         /* [n_tokens][nb] each block's scale, as fp32 */
    const int32_t *sum;     /* [n_tokens][nb] the sum of each block's 32 values */
    int64_t nb;
} sq_gemm_x;

/* y[t * ldy + r] = dot(weight row r, token t) for r < n_rows, t < n_tokens: weight rows of dtype dt,
 * rb bytes apart, x->nb * 32 elements long. One kernel set's tiles; any n_rows and n_tokens. */
typedef void (*sq_gemm_fn)(sq_dtype dt, const uint8_t *w, size_t rb, int64_t n_rows, const sq_gemm_x *x,
                           int n_tokens, float *y, size_t ldy);

/* Quantizes one token's cols activations (whole 32-value blocks) to q [cols / 32] as Q8_0's reference
 * from_f32 does, bit for bit, with each block's scale in d and the sum of its values in sum (both [cols /
 * 32]). */
typedef void (*sq_gemm_quantize_fn)(const float *x, int64_t cols, sq_block_q8_0 *q, float *d, int32_t *sum);

/* A kernel set's integer GEMM: its tiles and its activation quantizer (for Q8_0 activations). */
typedef struct sq_gemm_kernels {
    sq_gemm_fn gemm;
    sq_gemm_quantize_fn quantize_q8_0;
} sq_gemm_kernels;

#if defined(__x86_64__)
/* The tiles of kernels_avx2.c and kernels_avx512.c (gemm_simd.inc); the AVX-512 set's take vpdpbusd where
 * the CPU has AVX-512 VNNI, else the AVX2 instructions. */
void sq_gemm_avx2(sq_dtype dt, const uint8_t *w, size_t rb, int64_t n_rows, const sq_gemm_x *x, int n_tokens,
                  float *y, size_t ldy);
void sq_gemm_avx512(sq_dtype dt, const uint8_t *w, size_t rb, int64_t n_rows, const sq_gemm_x *x,
                    int n_tokens, float *y, size_t ldy);
void sq_gemm_quantize_q8_0_avx2(const float *x, int64_t cols, sq_block_q8_0 *q, float *d, int32_t *sum);
void sq_gemm_quantize_q8_0_avx512(const float *x, int64_t cols, sq_block_q8_0 *q, float *d, int32_t *sum);
#endif

/* Whether the formats whose prefill otherwise multiplies fp32 activations (all but W8A8) take the integer
 * GEMM: off unless the environment sets SQ_PREFILL_INT8=1, or sq_cpu_set_int8_prefill(1) (tests, benchmarks).
 * Off by default because rounding the activations to 8 bits moves these formats' prefill logits by about 1%
 * of their range, which the forward-pass tests' float64 reference (tests/py/reference.py) does not model yet:
 * it compares them at 1e-4. Decode is unaffected either way. */
int sq_cpu_int8_prefill(void);
void sq_cpu_set_int8_prefill(int on);

/* The integer GEMM a kernel set has for weights of dtype: NULL for the formats and sets without one (the
 * scalar set: its prefill stays dequantize + sgemm, W8A8's its GEMV) and, while sq_cpu_int8_prefill() is 0,
 * for every format but W8A8. */
const sq_gemm_kernels *sq_cpu_gemm_for(const struct sq_cpu_kernels *set, sq_dtype dtype);

/* What the integer GEMM quantizes the activations to for weights of dtype: the dtype's dot_dtype where it
 * has one of 32-value blocks (W8A8's own), else Q8_0. */
sq_dtype sq_cpu_gemm_x_dtype(sq_dtype dtype);

/* y = x . W^T for n_tokens rows of x ([n_tokens][cols] fp32) into y ([n_tokens][rows] fp32) through k, the
 * activations quantized here (one allocation), threads over `pool`. Returns 0, or -1 without touching y when
 * the activations' buffer cannot be allocated (the caller then takes another path). */
int sq_cpu_gemm(const sq_gemm_kernels *k, sq_threadpool *pool, const sq_tensor *w, const float *x,
                int n_tokens, float *y);

#endif
