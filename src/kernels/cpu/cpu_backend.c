/* The CPU backend: the operations table over a thread pool. Its memory is host memory. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul.h"

static void cpu_matmul(void *impl, const sq_tensor *w, const float *x, int n_tokens, float *y) {
    sq_cpu_matmul(impl, w, x, n_tokens, y);
}
static void cpu_rmsnorm(void *impl, const float *x, const float *weight, float eps, int n, int dim,
                        float *out) {
    sq_cpu_rmsnorm(impl, x, weight, eps, n, dim, out);
}
static void cpu_rope(void *impl, float *x, int n, int n_heads, int head_dim, const float *cos,
                     const float *sin, sq_rope_style style) {
    (void)impl;
    sq_cpu_rope(x, n, n_heads, head_dim, cos, sin, style);
}
static void cpu_attention(void *impl, const sq_attention_args *args) { sq_cpu_attention(impl, args); }
static void cpu_swiglu(void *impl, float *gate, const float *up, int64_t n) {
    (void)impl;
    sq_cpu_swiglu(gate, up, n);
}

static void cpu_kv_store(void *impl, const sq_kv_view *kv, const float *k, const float *v, const int *seq,
                         const int *pos, int n_tokens) {
    (void)impl;
    sq_cpu_kv_store(kv, k, v, seq, pos, n_tokens);
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
static void cpu_memcpy(void *impl, void *dst, const void *src, size_t nbytes) {
    (void)impl;
    memcpy(dst, src, nbytes);
}
static void cpu_synchronize(void *impl) { (void)impl; /* every operation has finished when it returns */ }

sq_backend sq_cpu_backend(sq_threadpool *pool) {
    return (sq_backend){.name = "cpu",
                        .impl = pool,
                        .matmul = cpu_matmul,
                        .rmsnorm = cpu_rmsnorm,
                        .rope = cpu_rope,
                        .attention = cpu_attention,
                        .swiglu = cpu_swiglu,
                        .kv_store = cpu_kv_store,
                        .alloc = cpu_alloc,
                        .free = cpu_free,
                        .upload = cpu_memcpy,
                        .download = cpu_memcpy,
                        .copy = cpu_memcpy,
                        .synchronize = cpu_synchronize};
}
