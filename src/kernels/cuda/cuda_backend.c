/* The CUDA backend: kernels/backend.h's operations table over the kernels of this folder (cuda_ops.h), in the
 * GPU's memory. Weights are uploaded once in their stored format by the context (runtime/context.c); every
 * operation is queued on one stream, and download/synchronize wait for it. A format without a GPU kernel is
 * refused by supports(), so contexts fail with a clear error rather than run it elsewhere. */
#include "kernels/cuda/cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kernels/cuda/cuda_ops.h"

/* The backend's state: the device's, and the optional per-operation profile (sq_cuda_backend_profile). */
/* The key of a step's graph (cu_forward): every pointer, size and flag its launches bake in. */
typedef struct key_buf {
    uint64_t *v;
    size_t n, cap;
} key_buf;

typedef struct cuda_backend {
    sq_cuda *c;
    int graphs; /* decode steps replayed as CUDA graphs (sq_cuda_backend_graphs) */
    key_buf key;
    int profile;
    double seconds[SQ_OP_COUNT];
    long calls[SQ_OP_COUNT];
} cuda_backend;

static sq_cuda *dev(void *impl) { return ((cuda_backend *)impl)->c; }

/* With profiling on, each operation is timed between two synchronisations: the device's time for it plus one
 * launch latency (a few microseconds), the cost a decode step's small operations really have. */
static double prof_start(void *impl) {
    const cuda_backend *b = impl;
    if (!b->profile) return 0;
    sq_cuda_synchronize(b->c);
    return sq_monotonic_seconds();
}
static void prof_stop(void *impl, sq_op op, double t0) {
    cuda_backend *b = impl;
    if (!b->profile) return;
    sq_cuda_synchronize(b->c);
    b->seconds[op] += sq_monotonic_seconds() - t0;
    b->calls[op]++;
}
#define TIMED(op, call)                                                                                      \
    do {                                                                                                     \
        const double t0_ = prof_start(impl);                                                                 \
        call;                                                                                                \
        prof_stop(impl, op, t0_);                                                                            \
    } while (0)

static void cu_destroy(void *impl) {
    sq_cuda_close(dev(impl));
    free(((cuda_backend *)impl)->key.v);
    free(impl);
}

static int cu_supports(void *impl, sq_op op, sq_dtype dtype) {
    (void)impl;
    if ((unsigned)dtype >= SQ_DTYPE_COUNT) return 0;
    switch (op) {
    case SQ_OP_MATMUL:
    case SQ_OP_GET_ROWS:
        return sq_cuda_has_format((int)dtype);
    case SQ_OP_KV_STORE:
    case SQ_OP_KV_COPY:
    case SQ_OP_ATTENTION:
        return dtype == SQ_DTYPE_F32 || dtype == SQ_DTYPE_F16;
    case SQ_OP_RMSNORM:
    case SQ_OP_ROPE:
    case SQ_OP_ADD:
    case SQ_OP_ADD_BIAS:
    case SQ_OP_SWIGLU:
    case SQ_OP_GEGLU:
    case SQ_OP_SCALE:
        return dtype == SQ_DTYPE_F32;
    case SQ_OP_ADD_ROWS: /* not built yet: contexts of mixture-of-experts models refuse the device */
    case SQ_OP_COUNT:
        break;
    }
    return 0;
}

static void *cu_alloc(void *impl, size_t nbytes) { return sq_cuda_alloc(dev(impl), nbytes); }
static void cu_free(void *impl, void *p) { sq_cuda_free(dev(impl), p); }
static void cu_upload(void *impl, void *dst, const void *src, size_t n) {
    sq_cuda_upload(dev(impl), dst, src, n);
}
static void cu_download(void *impl, void *dst, const void *src, size_t n) {
    sq_cuda_download(dev(impl), dst, src, n);
}
static void cu_copy(void *impl, void *dst, const void *src, size_t n) {
    sq_cuda_copy(dev(impl), dst, src, n);
}
/* a stack of matrices (experts) is laid out matrix by matrix, so that its slices are weights too */
static void cu_upload_weight(void *impl, void *dst, const sq_tensor *src) {
    const int64_t cols = sq_tensor_row_len(src), rows = src->ndim >= 2 ? src->shape[src->ndim - 2] : 1;
    const int64_t n_rows = sq_tensor_n_rows(src);
    sq_cuda_upload_weight(dev(impl), (int)src->dtype, dst, src->data, rows ? n_rows / rows : 0, rows, cols);
}
static void cu_synchronize(void *impl) { sq_cuda_synchronize(dev(impl)); }
static const char *cu_take_error(void *impl) { return sq_cuda_take_error(dev(impl)); }

static void cu_matmul(void *impl, const sq_tensor *w, const float *x, int n_tokens, float *y) {
    TIMED(SQ_OP_MATMUL, sq_cuda_matmul(dev(impl), (int)w->dtype, w->data, w->shape[0], sq_tensor_row_len(w),
                                       x, n_tokens, y));
}
static void cu_get_rows(void *impl, const sq_tensor *src, const int32_t *rows, int n_rows, float *out) {
    TIMED(SQ_OP_GET_ROWS, sq_cuda_get_rows(dev(impl), (int)src->dtype, src->data, sq_tensor_n_rows(src),
                                           sq_tensor_row_len(src), rows, n_rows, out));
}
static void cu_rmsnorm(void *impl, const float *x, const float *weight, float eps, int n, int dim,
                       float *out) {
    TIMED(SQ_OP_RMSNORM, sq_cuda_rmsnorm(dev(impl), x, weight, eps, n, dim, out));
}
static void cu_rope(void *impl, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens, int head_dim,
                    int rope_dims, const int32_t *pos, const double *inv_freq, sq_rope_style style) {
    TIMED(SQ_OP_ROPE, sq_cuda_rope(dev(impl), q, n_q_heads, k, n_k_heads, n_tokens, head_dim, rope_dims, pos,
                                   inv_freq, style == SQ_ROPE_INTERLEAVED ? 0 : 1));
}
static void cu_add(void *impl, float *x, const float *y, int64_t n) {
    TIMED(SQ_OP_ADD, sq_cuda_add(dev(impl), x, y, n));
}
static void cu_add_bias(void *impl, float *y, const float *bias, int n_tokens, int width) {
    TIMED(SQ_OP_ADD_BIAS, sq_cuda_add_bias(dev(impl), y, bias, n_tokens, width));
}
static void cu_swiglu(void *impl, float *gate, const float *up, int64_t n) {
    TIMED(SQ_OP_SWIGLU, sq_cuda_swiglu(dev(impl), gate, up, n));
}
static void cu_geglu(void *impl, float *gate, const float *up, int64_t n) {
    TIMED(SQ_OP_GEGLU, sq_cuda_geglu(dev(impl), gate, up, n));
}
static void cu_scale(void *impl, float *x, float s, int64_t n) {
    TIMED(SQ_OP_SCALE, sq_cuda_scale(dev(impl), x, s, n));
}

static sq_cuda_kv kv_of(const sq_kv_view *v) {
    return (sq_cuda_kv){.k = v->k,
                        .v = v->v,
                        .block_table = v->block_table,
                        .max_blocks = v->max_blocks,
                        .block_size = v->block_size,
                        .row_bytes = v->row_bytes,
                        .f16 = v->row_type == SQ_DTYPE_F16,
                        .kv_dim = v->kv_dim};
}
static sq_cuda_tokens tokens_of(const sq_token_batch *t) {
    return (sq_cuda_tokens){.n_tokens = t->n_tokens,
                            .seq = t->seq,
                            .pos = t->pos,
                            .slot = t->slot,
                            .n_prefix = t->n_prefix,
                            .parent = t->parent};
}
static void cu_kv_store(void *impl, const sq_kv_view *kv, const float *k, const float *v,
                        const sq_token_batch *tokens) {
    const sq_cuda_kv ckv = kv_of(kv);
    const sq_cuda_tokens tok = tokens_of(tokens);
    TIMED(SQ_OP_KV_STORE, sq_cuda_kv_store(dev(impl), &ckv, k, v, &tok));
}
static void cu_kv_copy(void *impl, const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst,
                       int n) {
    const sq_cuda_kv ckv = kv_of(kv);
    TIMED(SQ_OP_KV_COPY, sq_cuda_kv_copy(dev(impl), &ckv, seq, src, dst, n));
}
static void cu_attention(void *impl, const sq_attention_args *a) {
    const sq_cuda_kv ckv = kv_of(&a->kv);
    const sq_cuda_tokens tok = tokens_of(a->tokens);
    TIMED(SQ_OP_ATTENTION, sq_cuda_attention(dev(impl), a->q, &ckv, &tok, a->n_heads, a->n_kv_heads,
                                             a->head_dim, a->window, a->out));
}

/* ---------------------------------------------------------------- the fused block and the decode step */

static int same_input(const sq_tensor *const *w, int n) {
    for (int i = 1; i < n; i++)
        if (w[i]->dtype != w[0]->dtype || sq_tensor_row_len(w[i]) != sq_tensor_row_len(w[0])) return 0;
    return 1;
}

/* y_i (+)= w_i . x for weights sharing the input x: one launch when they share format and width. norm (or
 * NULL): x is first RMS-normalised with it into x_normed, in the matmul's own first kernel. */
static void linears(void *impl, int n_w, const sq_tensor *const *w, const float *x, int n_tokens,
                    float *const *y, int accumulate, const float *norm, float eps, float *x_normed) {
    if (!same_input(w, n_w)) {
        if (norm) cu_rmsnorm(impl, x, norm, eps, n_tokens, (int)sq_tensor_row_len(w[0]), x_normed);
        for (int i = 0; i < n_w; i++)
            linears(impl, 1, &w[i], norm ? x_normed : x, n_tokens, &y[i], accumulate, NULL, 0, NULL);
        return;
    }
    const void *data[3];
    int64_t rows[3];
    for (int i = 0; i < n_w; i++) data[i] = w[i]->data, rows[i] = w[i]->shape[0];
    TIMED(SQ_OP_MATMUL,
          sq_cuda_matmul_n(dev(impl), (int)w[0]->dtype, n_w, data, rows, sq_tensor_row_len(w[0]), x, n_tokens,
                           y, accumulate, norm, eps, x_normed));
}

/* runtime/forward.c's block_ops with neighbouring operations fused: q, k and v in one GEMV launch on one
 * rounded input (gate and up likewise), the norm before them in the kernel that rounds that input, RoPE
 * and the cache write in one kernel, the residual adds in the epilogues of wo and w_down (where no post-norm
 * comes between). Dense blocks only (forward.c's rule). The profile counts each norm with its matmul. */
/* x += post_norm(w . in): into x in the GEMV's epilogue, or through xb where a post-norm (Gemma) comes
 * between */
static void add_linear(void *impl, const sq_block_args *a, const sq_tensor *w, const float *in,
                       const sq_tensor *post_norm) {
    const int n = a->tokens->n_tokens;
    if (!post_norm->data) {
        linears(impl, 1, &w, in, n, &a->x, 1, NULL, 0, NULL);
        return;
    }
    linears(impl, 1, &w, in, n, &a->xb, 0, NULL, 0, NULL);
    cu_rmsnorm(impl, a->xb, post_norm->data, a->norm_eps, n, a->dim, a->xb);
    cu_add(impl, a->x, a->xb, (int64_t)n * a->dim);
}

static void cu_block(void *impl, const sq_block_args *a) {
    const sq_block_weights *w = a->w;
    const int n = a->tokens->n_tokens, hd = a->head_dim;
    const int q_dim = w->n_heads * hd, kv_dim = w->n_kv_heads * hd;

    linears(impl, 3, (const sq_tensor *[]){&w->wq, &w->wk, &w->wv}, a->x, n, (float *[]){a->q, a->k, a->v}, 0,
            w->attn_norm.data, a->norm_eps, a->xb);
    if (w->bq.data) cu_add_bias(impl, a->q, w->bq.data, n, q_dim);
    if (w->bk.data) cu_add_bias(impl, a->k, w->bk.data, n, kv_dim);
    if (w->bv.data) cu_add_bias(impl, a->v, w->bv.data, n, kv_dim);
    if (w->q_norm.data) {
        cu_rmsnorm(impl, a->q, w->q_norm.data, a->norm_eps, n * w->n_heads, hd, a->q);
        cu_rmsnorm(impl, a->k, w->k_norm.data, a->norm_eps, n * w->n_kv_heads, hd, a->k);
    }
    if (a->q_scale != 1.0f) cu_scale(impl, a->q, a->q_scale, (int64_t)n * q_dim);
    const sq_cuda_kv kv = kv_of(&a->kv);
    const sq_cuda_tokens tok = tokens_of(a->tokens);
    TIMED(SQ_OP_ROPE, sq_cuda_rope_kv_store(dev(impl), a->q, w->n_heads, a->k, a->v, w->n_kv_heads, hd,
                                            a->rope_dims, a->tokens->pos, a->inv_freq,
                                            a->rope_style == SQ_ROPE_INTERLEAVED ? 0 : 1, &kv, &tok));
    const sq_attention_args att = sq_block_attention_args(a);
    cu_attention(impl, &att);
    add_linear(impl, a, &w->wo, a->attn_out, &w->attn_post_norm);

    linears(impl, 2, (const sq_tensor *[]){&w->w_gate, &w->w_up}, a->x, n, (float *[]){a->gate, a->up}, 0,
            w->ffn_norm.data, a->norm_eps, a->xb);
    (a->geglu ? cu_geglu : cu_swiglu)(impl, a->gate, a->up, (int64_t)n * w->ffn_dim);
    add_linear(impl, a, &w->w_down, a->gate, &w->ffn_post_norm);
}

typedef struct forward_call {
    void *impl;
    const sq_forward_args *f;
} forward_call;

static void issue_forward(void *arg) {
    const forward_call *fc = arg;
    const sq_forward_args *f = fc->f;
    const int n = f->tokens->n_tokens;
    cu_get_rows(fc->impl, f->tok_embd, f->tokens->id, n, f->x);
    if (f->embd_scale != 1.0f) cu_scale(fc->impl, f->x, f->embd_scale, (int64_t)n * f->blocks[0].dim);
    for (int l = 0; l < f->n_layers; l++)
        if (!f->skip || !f->skip[l]) cu_block(fc->impl, &f->blocks[l]);
}

static void put(key_buf *k, uint64_t x) {
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 1024;
        uint64_t *v = realloc(k->v, k->cap * sizeof *v);
        if (!v) abort();
        k->v = v;
    }
    k->v[k->n++] = x;
}
#define PUTP(k, p) put(k, (uint64_t)(uintptr_t)(p))
static void put_tensor(key_buf *k, const sq_tensor *t) {
    PUTP(k, t->data);
    put(k, (uint64_t)t->dtype);
    for (int i = 0; i < SQ_MAX_DIMS; i++) put(k, (uint64_t)(i < t->ndim ? t->shape[i] : 0));
}
static void put_float(key_buf *k, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put(k, u);
}

static void step_key(key_buf *k, const sq_forward_args *f) {
    const sq_token_batch *t = f->tokens;
    put(k, (uint64_t)t->n_tokens);
    PUTP(k, t->id), PUTP(k, t->seq), PUTP(k, t->pos), PUTP(k, t->slot), PUTP(k, t->n_prefix),
        PUTP(k, t->parent);
    put_tensor(k, f->tok_embd);
    put_float(k, f->embd_scale);
    PUTP(k, f->x);
    put(k, (uint64_t)f->n_layers);
    for (int l = 0; l < f->n_layers; l++) {
        const sq_block_args *a = &f->blocks[l];
        const sq_block_weights *w = a->w;
        put(k, f->skip ? f->skip[l] : 0);
        const sq_tensor *ts[] = {&w->attn_norm,    &w->wq,     &w->wk,   &w->wv,     &w->wo,
                                 &w->bq,           &w->bk,     &w->bv,   &w->q_norm, &w->k_norm,
                                 &w->ffn_norm,     &w->w_gate, &w->w_up, &w->w_down, &w->attn_post_norm,
                                 &w->ffn_post_norm};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) put_tensor(k, ts[i]);
        put(k, (uint64_t)w->n_heads), put(k, (uint64_t)w->n_kv_heads), put(k, (uint64_t)w->ffn_dim);
        PUTP(k, a->tokens);
        PUTP(k, a->kv.k), PUTP(k, a->kv.v), PUTP(k, a->kv.block_table);
        put(k, (uint64_t)a->kv.max_blocks), put(k, (uint64_t)a->kv.block_size), put(k, a->kv.row_bytes);
        put(k, (uint64_t)a->kv.row_type), put(k, (uint64_t)a->kv.kv_dim);
        put(k, (uint64_t)a->dim), put(k, (uint64_t)a->head_dim), put(k, (uint64_t)a->window);
        put_float(k, a->norm_eps), put_float(k, a->q_scale), put_float(k, a->attn_softcap);
        put(k, (uint64_t)a->geglu), put(k, (uint64_t)a->rope_style), put(k, (uint64_t)a->rope_dims);
        PUTP(k, a->inv_freq), PUTP(k, a->x), PUTP(k, a->xb), PUTP(k, a->q), PUTP(k, a->k), PUTP(k, a->v);
        PUTP(k, a->attn_out), PUTP(k, a->gate), PUTP(k, a->up);
    }
}

/* Steps of few tokens (decode, small batches, speculative verification) replay as CUDA graphs; prefill
 * (cuBLAS, the tiled attention) runs as it is, and so does everything while the profile is on. */
enum { GRAPH_MAX_TOKENS = 64 };

static void cu_forward(void *impl, const sq_forward_args *f) {
    cuda_backend *b = impl;
    forward_call fc = {impl, f};
    if (b->profile || !b->graphs || f->tokens->n_tokens > GRAPH_MAX_TOKENS) {
        issue_forward(&fc);
        return;
    }
    step_key(&b->key, f);
    sq_cuda_graph_run(b->c, b->key.v, b->key.n * sizeof *b->key.v, issue_forward, &fc);
    b->key.n = 0;
}

sq_error *sq_cuda_backend_create(int n_threads, sq_backend *out) {
    (void)n_threads;
    cuda_backend *b = calloc(1, sizeof *b);
    if (!b) return sq_errorf(SQ_ERR_NOMEM, "device cuda: out of memory");
    char msg[256];
    if (sq_cuda_open(&b->c, msg, sizeof msg)) {
        free(b);
        return sq_errorf(SQ_ERR_UNSUPPORTED, "device cuda: %s", msg);
    }
    *out = (sq_backend){.name = "cuda",
                        .impl = b,
                        .host_memory = 0,
                        .destroy = cu_destroy,
                        .supports = cu_supports,
                        .alloc = cu_alloc,
                        .free = cu_free,
                        .upload = cu_upload,
                        .upload_weight = cu_upload_weight,
                        .download = cu_download,
                        .copy = cu_copy,
                        .synchronize = cu_synchronize,
                        .take_error = cu_take_error,
                        .matmul = cu_matmul,
                        .get_rows = cu_get_rows,
                        .rmsnorm = cu_rmsnorm,
                        .rope = cu_rope,
                        .add = cu_add,
                        .add_bias = cu_add_bias,
                        .swiglu = cu_swiglu,
                        .geglu = cu_geglu,
                        .scale = cu_scale,
                        .kv_store = cu_kv_store,
                        .kv_copy = cu_kv_copy,
                        .attention = cu_attention,
                        .block = cu_block,
                        .forward = cu_forward};
    b->graphs = 1;
    return NULL;
}

void sq_cuda_backend_precision(sq_dtype w, int n_tokens, sq_dtype *x_dtype, sq_dtype *w_dtype) {
    int x, wd;
    sq_cuda_matmul_precision((int)w, n_tokens, &x, &wd);
    *x_dtype = (sq_dtype)x;
    *w_dtype = (sq_dtype)wd;
}

double sq_cuda_backend_copy_bandwidth(const sq_backend *be, size_t nbytes, int reps) {
    return sq_cuda_copy_bandwidth(dev(be->impl), nbytes, reps);
}

void sq_cuda_backend_profile(const sq_backend *be, int on, double *seconds, long *calls) {
    cuda_backend *b = be->impl;
    if (seconds) memcpy(seconds, b->seconds, sizeof b->seconds);
    if (calls) memcpy(calls, b->calls, sizeof b->calls);
    b->profile = on;
    memset(b->seconds, 0, sizeof b->seconds);
    memset(b->calls, 0, sizeof b->calls);
}

void sq_cuda_backend_graphs(const sq_backend *be, int on) { ((cuda_backend *)be->impl)->graphs = on; }
