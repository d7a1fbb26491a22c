/* The CPU backend: the operations table over a thread pool, in host memory. Weights stay where the model
 * keeps them (the mapped file), so its memory half is plain aligned allocation and memcpy. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"

typedef struct cpu_backend {
    sq_threadpool *pool;
} cpu_backend;

static sq_threadpool *pool_of(void *impl) { return ((cpu_backend *)impl)->pool; }

static void cpu_destroy(void *impl) {
    sq_threadpool_free(pool_of(impl));
    free(impl);
}

static int cpu_supports(void *impl, sq_op op, sq_dtype dtype) {
    (void)impl;
    if ((unsigned)dtype >= SQ_DTYPE_COUNT) return 0;
    switch (op) {
    case SQ_OP_MATMUL: { /* a set's GEMV, or the format's reference through matmul.c */
        const sq_format_kernels *f = &sq_cpu_kernels_active()->formats[dtype];
        return f->gemv != NULL || f->reference_only;
    }
    case SQ_OP_GET_ROWS:
        return 1;
    case SQ_OP_KV_STORE:
    case SQ_OP_KV_COPY:
    case SQ_OP_ATTENTION:
        return sq_kv_row_type_valid(dtype);
    case SQ_OP_RMSNORM:
    case SQ_OP_ROPE:
    case SQ_OP_ADD:
    case SQ_OP_ADD_BIAS:
    case SQ_OP_SWIGLU:
    case SQ_OP_GEGLU:
    case SQ_OP_SCALE:
    case SQ_OP_ADD_ROWS:
        return dtype == SQ_DTYPE_F32;
    case SQ_OP_COUNT:
        break;
    }
    return 0;
}

static void *cpu_alloc(void *impl, size_t nbytes) {
    (void)impl;
    void *p = NULL;
    return posix_memalign(&p, 64, nbytes ? nbytes : 1) == 0 ? p : NULL;
}
static void cpu_free(void *impl, void *ptr) {
    (void)impl;
    free(ptr);
}
/* upload, download and copy alike: both sides are host memory */
static void cpu_memcpy(void *impl, void *dst, const void *src, size_t nbytes) {
    (void)impl;
    if (dst != src && nbytes) memcpy(dst, src, nbytes);
}
static void cpu_synchronize(void *impl) { (void)impl; }

static void cpu_matmul(void *impl, const sq_tensor *w, const float *x, int n_tokens, float *y) {
    sq_cpu_matmul(pool_of(impl), w, x, n_tokens, y);
}
static void cpu_get_rows(void *impl, const sq_tensor *src, const int32_t *rows, int n_rows, float *out) {
    (void)impl;
    sq_cpu_get_rows(src, rows, n_rows, out);
}
static void cpu_rmsnorm(void *impl, const float *x, const float *weight, float eps, int n, int dim,
                        float *out) {
    sq_cpu_rmsnorm(pool_of(impl), x, weight, eps, n, dim, out);
}
static void cpu_rope(void *impl, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens, int head_dim,
                     int rope_dims, const int32_t *pos, const double *inv_freq, sq_rope_style style) {
    sq_cpu_rope(pool_of(impl), q, n_q_heads, k, n_k_heads, n_tokens, head_dim, rope_dims, pos, inv_freq,
                style);
}
static void cpu_add(void *impl, float *x, const float *y, int64_t n) {
    (void)impl;
    sq_cpu_add(x, y, n);
}
static void cpu_add_bias(void *impl, float *y, const float *bias, int n_tokens, int width) {
    (void)impl;
    sq_cpu_add_bias(y, bias, n_tokens, width);
}
static void cpu_swiglu(void *impl, float *gate, const float *up, int64_t n) {
    (void)impl;
    sq_cpu_swiglu(gate, up, n);
}
static void cpu_geglu(void *impl, float *gate, const float *up, int64_t n) {
    (void)impl;
    sq_cpu_geglu(gate, up, n);
}
static void cpu_scale(void *impl, float *x, float s, int64_t n) {
    (void)impl;
    sq_cpu_scale(x, s, n);
}
static void cpu_add_rows(void *impl, float *x, const float *y, const int32_t *rows, const float *scale,
                         int n_rows, int width) {
    (void)impl;
    sq_cpu_add_rows(x, y, rows, scale, n_rows, width);
}
static void cpu_kv_store(void *impl, const sq_kv_view *kv, const float *k, const float *v,
                         const sq_token_batch *tokens) {
    (void)impl;
    sq_cpu_kv_store(kv, k, v, tokens);
}
static void cpu_kv_copy(void *impl, const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst,
                        int n) {
    (void)impl;
    sq_cpu_kv_copy(kv, seq, src, dst, n);
}
static void cpu_attention(void *impl, const sq_attention_args *args) {
    sq_cpu_attention(pool_of(impl), args);
}

sq_error *sq_cpu_backend_create(int n_threads, sq_backend *out) {
    cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return sq_errorf(SQ_ERR_NOMEM, "cpu backend: out of memory");
    cpu->pool = sq_threadpool_create(n_threads);
    if (!cpu->pool) {
        free(cpu);
        return sq_errorf(SQ_ERR_INTERNAL, "cpu backend: cannot start %d threads", n_threads);
    }
    *out = (sq_backend){.name = "cpu",
                        .impl = cpu,
                        .host_memory = 1,
                        .attn_softcap = 1,
                        .destroy = cpu_destroy,
                        .supports = cpu_supports,
                        .alloc = cpu_alloc,
                        .free = cpu_free,
                        .upload = cpu_memcpy,
                        .download = cpu_memcpy,
                        .copy = cpu_memcpy,
                        .synchronize = cpu_synchronize,
                        .matmul = cpu_matmul,
                        .get_rows = cpu_get_rows,
                        .rmsnorm = cpu_rmsnorm,
                        .rope = cpu_rope,
                        .add = cpu_add,
                        .add_bias = cpu_add_bias,
                        .swiglu = cpu_swiglu,
                        .geglu = cpu_geglu,
                        .scale = cpu_scale,
                        .kv_store = cpu_kv_store,
                        .kv_copy = cpu_kv_copy,
                        .attention = cpu_attention,
                        .add_rows = cpu_add_rows};
    return NULL;
}
