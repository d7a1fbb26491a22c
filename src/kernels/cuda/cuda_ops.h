/* The CUDA backend's kernels as plain C calls (implemented in the .cu files beside this one), so that the
 * backend table (cuda_backend.c) stays C11 and no C file includes a CUDA header.
 *
 * Every call is asynchronous on the backend's one stream; pointers are device memory unless marked "host".
 * Weights are in their stored format (core/dtype.h's block layouts, ggml's), activations fp32 row-major,
 * outer dimension first. Errors of a launch are recorded in the state and reported by sq_cuda_take_error,
 * since the operations table's calls cannot fail. */
#ifndef SQ_KERNELS_CUDA_OPS_H
#define SQ_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_cuda sq_cuda; /* device, stream, cuBLAS handle, scratch buffers */

/* Device numbers of the formats the kernels know (the values of core/dtype.h's sq_dtype). */
enum {
    SQ_CUDA_F32 = 0,
    SQ_CUDA_F16 = 1,
    SQ_CUDA_BF16 = 2,
    SQ_CUDA_Q8_0 = 3,
    SQ_CUDA_Q4_0 = 4,
    SQ_CUDA_Q4_K = 10,
};

/* 0 on success; otherwise a message in msg[msg_size] (no GPU, driver too old, ...). */
int sq_cuda_open(sq_cuda **out, char *msg, size_t msg_size);
void sq_cuda_close(sq_cuda *c);
/* The device's name and memory, for messages: name[name_size], free and total bytes. */
void sq_cuda_describe(sq_cuda *c, char *name, size_t name_size, size_t *free_bytes, size_t *total_bytes);
/* The first error since the last call (a failed launch, an illegal address), as text, or NULL. */
const char *sq_cuda_take_error(sq_cuda *c);

void *sq_cuda_alloc(sq_cuda *c, size_t nbytes); /* NULL when the device's memory is exhausted */
void sq_cuda_free(sq_cuda *c, void *p);
void sq_cuda_upload(sq_cuda *c, void *dst, const void *src, size_t nbytes);   /* src host */
void sq_cuda_download(sq_cuda *c, void *dst, const void *src, size_t nbytes); /* dst host; waits */
void sq_cuda_copy(sq_cuda *c, void *dst, const void *src, size_t nbytes);
void sq_cuda_synchronize(sq_cuda *c);
/* Uploads n_matrices weights [rows][cols] stored as dtype (src: host, core/dtype.h's layout, the stack's
 * bytes) into dst (as many bytes) in the device layout that matmul and get_rows read (cuda_common.cuh:
 * the block formats' quants and scales apart, each matrix in its own bytes). Plain formats are copied. */
void sq_cuda_upload_weight(sq_cuda *c, int dtype, void *dst, const void *src, int64_t n_matrices,
                           int64_t rows, int64_t cols);

/* Whether the kernels multiply / read rows of this format. */
int sq_cuda_has_format(int dtype);
/* What the matmul of n_tokens rows against a dtype weight rounds its operands to: x_dtype (SQ_CUDA_F32: no
 * rounding; F16/BF16 for the tensor-core GEMM; Q8_0 for the integer-dot GEMV of quantized weights) and
 * w_dtype (the weight's own, or F16 where a quantized weight is dequantized for the GEMM). */
void sq_cuda_matmul_precision(int dtype, int n_tokens, int *x_dtype, int *w_dtype);

/* y[n_tokens][rows] = x[n_tokens][cols] · w[rows][cols]^T, w stored as dtype (rows of whole blocks) in the
 * device layout (sq_cuda_upload_weight). */
void sq_cuda_matmul(sq_cuda *c, int dtype, const void *w, int64_t rows, int64_t cols, const float *x,
                    int n_tokens, float *y);
/* y_i[n_tokens][rows[i]] = x[n_tokens][cols] · w_i^T for n_w (1 to 3) weights of one dtype and width that
 * share the input (q, k and v; gate and up): x rounded once, one GEMV launch for all. accumulate: y_i +=
 * instead (a residual add fused into the epilogue). norm ([cols], or NULL): x is first RMS-normalised with
 * it and eps into x_normed [n_tokens][cols] (sq_cuda_rmsnorm's result), which the matmul multiplies; the
 * integer-dot GEMV's quantization of x happens in the norm's kernel. */
void sq_cuda_matmul_n(sq_cuda *c, int dtype, int n_w, const void *const *w, const int64_t *rows, int64_t cols,
                      const float *x, int n_tokens, float *const *y, int accumulate, const float *norm,
                      float eps, float *x_normed);
/* out[i][cols] = row rows[i] of src [n_src][cols] (stored as dtype, in the device layout), as fp32. */
void sq_cuda_get_rows(sq_cuda *c, int dtype, const void *src, int64_t n_src, int64_t cols,
                      const int32_t *rows, int n_rows, float *out);
void sq_cuda_rmsnorm(sq_cuda *c, const float *x, const float *weight, float eps, int n_tokens, int dim,
                     float *out);
/* backend.h's rope: the first rope_dims of each head rotated; style 0: interleaved pairs (2i, 2i+1), 1:
 * halves (i, i + rope_dims/2); k may be NULL */
void sq_cuda_rope(sq_cuda *c, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens, int head_dim,
                  int rope_dims, const int32_t *pos, const double *inv_freq, int style);
void sq_cuda_add(sq_cuda *c, float *x, const float *y, int64_t n);
void sq_cuda_add_bias(sq_cuda *c, float *y, const float *bias, int n_tokens, int width);
void sq_cuda_swiglu(sq_cuda *c, float *gate, const float *up, int64_t n);
void sq_cuda_geglu(sq_cuda *c, float *gate, const float *up, int64_t n);
void sq_cuda_scale(sq_cuda *c, float *x, float s, int64_t n);

/* The paged cache as kernels/backend.h's sq_kv_view describes it; block_table in device memory. */
typedef struct sq_cuda_kv {
    uint8_t *k, *v;
    const int32_t *block_table; /* [n_seq][max_blocks] */
    int max_blocks, block_size;
    size_t row_bytes;
    int f16; /* rows of f16 (else f32) */
    int kv_dim;
} sq_cuda_kv;

/* The token arrays of kernels/backend.h's sq_token_batch, each [n_tokens] in device memory. */
typedef struct sq_cuda_tokens {
    int n_tokens;
    const int32_t *seq, *pos, *slot, *n_prefix, *parent;
} sq_cuda_tokens;

void sq_cuda_kv_store(sq_cuda *c, const sq_cuda_kv *kv, const float *k, const float *v,
                      const sq_cuda_tokens *tokens);
/* sq_cuda_rope of q and k (k [n_tokens][n_k_heads][head_dim]) with sq_cuda_kv_store of the rotated keys and
 * of v in the same kernel: the decode step's RoPE and cache write in one launch. */
void sq_cuda_rope_kv_store(sq_cuda *c, float *q, int n_q_heads, float *k, const float *v, int n_k_heads,
                           int head_dim, int rope_dims, const int32_t *pos, const double *inv_freq, int style,
                           const sq_cuda_kv *kv, const sq_cuda_tokens *tokens);
void sq_cuda_kv_copy(sq_cuda *c, const sq_cuda_kv *kv, int seq, const int32_t *src, const int32_t *dst,
                     int n);
/* out[t][h][head_dim] = softmax(q k / sqrt(head_dim)) v over the slots token t sees (sq_token_batch's rule),
 * query head h reading key/value head h / (n_heads / n_kv_heads); window 0: none. */
void sq_cuda_attention(sq_cuda *c, const float *q, const sq_cuda_kv *kv, const sq_cuda_tokens *tokens,
                       int n_heads, int n_kv_heads, int head_dim, int window, float *out);

/* Runs issue(arg), which queues a step's work on the stream, as a CUDA graph once the same key (key_bytes
 * of everything the launches bake in: pointers, sizes, flags) has come often enough (graph.cu); what
 * changes between steps of one key must live in device memory. */
void sq_cuda_graph_run(sq_cuda *c, const void *key, size_t key_bytes, void (*issue)(void *), void *arg);

/* Device copy bandwidth in bytes per second (read + written) over a copy of nbytes, the median of reps
 * timed copies after a warm-up; 0 on failure. For benchmarks: the memory roofline measured in the run. */
double sq_cuda_copy_bandwidth(sq_cuda *c, size_t nbytes, int reps);

#ifdef __cplusplus
}
#endif

#endif
