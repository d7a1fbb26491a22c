/* CPU implementations of the backend's small operations: RMS norm, rotary embedding, SwiGLU. They are a few
 * percent of a step's time, so they stay plain C the compiler vectorises, split across threads by rows. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

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
    if (n_tokens < 8) /* a decode step: waking threads costs more than the work */
        rmsnorm_rows(&j, 0, 1);
    else
        sq_threadpool_run(pool, rmsnorm_rows, &j);
}

void sq_cpu_rope(float *x, int n_tokens, int n_heads, int head_dim, const float *cos, const float *sin,
                 sq_rope_style style) {
    const int half = head_dim / 2;
    for (int t = 0; t < n_tokens; t++) {
        const float *c = cos + (size_t)t * half, *s = sin + (size_t)t * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                /* interleaved rotates (2i, 2i+1); halves rotates (i, i + half) */
                float *a = style == SQ_ROPE_INTERLEAVED ? &v[2 * i] : &v[i];
                float *b = style == SQ_ROPE_INTERLEAVED ? &v[2 * i + 1] : &v[i + half];
                float a0 = *a, b0 = *b;
                *a = a0 * c[i] - b0 * s[i];
                *b = a0 * s[i] + b0 * c[i];
            }
        }
    }
}

void sq_cpu_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
