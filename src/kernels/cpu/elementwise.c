/* CPU implementations of the backend's small operations: RMS norm, rotary embedding, residual and bias adds,
 * SwiGLU. They are a few percent of a step's time, so they stay plain C the compiler vectorises; the ones
 * that grow with the batch are split across threads by tokens. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

/* Fewer tokens than this (a decode step) run on the calling thread: waking the pool costs more. */
enum { THREADED_MIN_TOKENS = 8 };

static void run_over_tokens(sq_threadpool *pool, int n_tokens, sq_task_fn fn, void *job) {
    if (n_tokens < THREADED_MIN_TOKENS)
        fn(job, 0, 1);
    else
        sq_threadpool_run(pool, fn, job);
}

typedef struct {
    const float *x, *weight;
    float eps;
    int n, dim;
    float *out;
} rmsnorm_job;

static void rmsnorm_rows(void *p, int ith, int nth) {
    const rmsnorm_job *j = p;
    long b, e;
    sq_split_range(j->n, ith, nth, &b, &e);
    for (long t = b; t < e; t++) {
        const float *x = j->x + t * j->dim;
        float *o = j->out + t * j->dim;
        double ss = 0;
        for (int i = 0; i < j->dim; i++) ss += (double)x[i] * x[i];
        float scale = (float)(1.0 / sqrt(ss / j->dim + j->eps));
        for (int i = 0; i < j->dim; i++) o[i] = x[i] * scale * j->weight[i];
    }
}

void sq_cpu_rmsnorm(sq_threadpool *pool, const float *x, const float *weight, float eps, int n_tokens,
                    int dim, float *out) {
    rmsnorm_job j = {x, weight, eps, n_tokens, dim, out};
    run_over_tokens(pool, n_tokens, rmsnorm_rows, &j);
}

typedef struct {
    float *q, *k;
    int n_q_heads, n_k_heads, n_tokens, head_dim, rope_dims;
    const int32_t *pos;
    const double *inv_freq;
    sq_rope_style style;
} rope_job;

/* Pairs whose cos/sin one pass computes and keeps on the stack. */
enum { ROPE_PAIRS = 64 };

static void rotate_heads(float *x, int n_heads, int head_dim, int rope_dims, int i0, int n, const float *c,
                         const float *s, sq_rope_style style) {
    const int half = rope_dims / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = i0; i < i0 + n; i++) {
            /* interleaved rotates (2i, 2i+1); halves rotates (i, i + half) */
            float *a = style == SQ_ROPE_INTERLEAVED ? &v[2 * i] : &v[i];
            float *b = style == SQ_ROPE_INTERLEAVED ? &v[2 * i + 1] : &v[i + half];
            float a0 = *a, b0 = *b;
            *a = a0 * c[i - i0] - b0 * s[i - i0];
            *b = a0 * s[i - i0] + b0 * c[i - i0];
        }
    }
}

static void rope_tokens(void *p, int ith, int nth) {
    const rope_job *j = p;
    const int half = j->rope_dims / 2;
    long b, e;
    sq_split_range(j->n_tokens, ith, nth, &b, &e);
    for (long t = b; t < e; t++) {
        for (int i0 = 0; i0 < half; i0 += ROPE_PAIRS) {
            int n = half - i0 < ROPE_PAIRS ? half - i0 : ROPE_PAIRS;
            float c[ROPE_PAIRS], s[ROPE_PAIRS];
            for (int i = 0; i < n; i++) {
                double angle = j->pos[t] * j->inv_freq[i0 + i];
                c[i] = (float)cos(angle);
                s[i] = (float)sin(angle);
            }
            rotate_heads(j->q + (size_t)t * j->n_q_heads * j->head_dim, j->n_q_heads, j->head_dim,
                         j->rope_dims, i0, n, c, s, j->style);
            if (j->k)
                rotate_heads(j->k + (size_t)t * j->n_k_heads * j->head_dim, j->n_k_heads, j->head_dim,
                             j->rope_dims, i0, n, c, s, j->style);
        }
    }
}

void sq_cpu_rope(sq_threadpool *pool, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens,
                 int head_dim, int rope_dims, const int32_t *pos, const double *inv_freq,
                 sq_rope_style style) {
    rope_job j = {q, k, n_q_heads, n_k_heads, n_tokens, head_dim, rope_dims, pos, inv_freq, style};
    run_over_tokens(pool, n_tokens, rope_tokens, &j);
}

void sq_cpu_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

void sq_cpu_add_bias(float *y, const float *bias, int n_tokens, int width) {
    for (int t = 0; t < n_tokens; t++)
        for (int i = 0; i < width; i++) y[(size_t)t * width + i] += bias[i];
}

void sq_cpu_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* 0.5 x (1 + tanh(z)) = x sigmoid(2z): the same function without 1 + tanh(z) cancelling for negative x */
void sq_cpu_geglu(float *gate, const float *up, int64_t n) {
    const float c2 = 2 * 0.7978845608028654f; /* 2 sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        const float x = gate[i];
        gate[i] = x / (1.0f + expf(-c2 * (x + 0.044715f * x * x * x))) * up[i];
    }
}

void sq_cpu_add_rows(float *x, const float *y, const int32_t *rows, const float *scale, int n_rows,
                     int width) {
    for (int i = 0; i < n_rows; i++) {
        float *dst = x + (size_t)rows[i] * width;
        const float *src = y + (size_t)i * width, s = scale[i];
        for (int c = 0; c < width; c++) dst[c] += s * src[c];
    }
}

void sq_cpu_scale(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}
