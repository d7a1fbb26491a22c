/* sq_cpu_gemm: quantizes the activations once, then splits the weight rows across the pool's threads, each
 * running a kernel set's integer tiles (gemm_simd.inc) on its share. */
#include "kernels/cpu/gemm.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/kernels.h"

/* Thread shares are whole multiples of this many rows (every tile height divides it). */
#define GEMM_ROW_ALIGN 16

sq_dtype sq_cpu_gemm_x_dtype(sq_dtype dtype) {
    const sq_dtype dot = sq_dtype_info(dtype)->dot_dtype;
    return dot != SQ_DTYPE_F32 && sq_dtype_info(dot)->block_elems == SQ_QK8_0 ? dot : SQ_DTYPE_Q8_0;
}

#if defined(__x86_64__)
static const sq_gemm_kernels gemm_avx2 = {sq_gemm_avx2, sq_gemm_quantize_q8_0_avx2};
static const sq_gemm_kernels gemm_avx512 = {sq_gemm_avx512, sq_gemm_quantize_q8_0_avx512};
#endif

/* -1 until read from SQ_PREFILL_INT8 (a benign race: every reader finds the same value). */
static int int8_prefill = -1;

int sq_cpu_int8_prefill(void) {
    if (int8_prefill < 0) {
        const char *v = getenv("SQ_PREFILL_INT8");
        int8_prefill = v && strcmp(v, "1") == 0;
    }
    return int8_prefill;
}

void sq_cpu_set_int8_prefill(int on) { int8_prefill = on != 0; }

const sq_gemm_kernels *sq_cpu_gemm_for(const struct sq_cpu_kernels *set, sq_dtype dtype) {
    switch (dtype) { /* the formats whose blocks are whole 32-value units of one scale (and minimum) */
    case SQ_DTYPE_Q8_0:
    case SQ_DTYPE_Q4_0:
    case SQ_DTYPE_Q4_1:
    case SQ_DTYPE_Q5_0:
    case SQ_DTYPE_Q5_1:
    case SQ_DTYPE_W8A8:
    case SQ_DTYPE_INT4_G32:
    case SQ_DTYPE_INT4_G64:
    case SQ_DTYPE_INT4_G128:
    case SQ_DTYPE_INT3_G32:
    case SQ_DTYPE_INT3_G64:
    case SQ_DTYPE_INT3_G128:
    case SQ_DTYPE_INT2_G32:
    case SQ_DTYPE_INT2_G64:
    case SQ_DTYPE_INT2_G128:
    case SQ_DTYPE_INT4_G0:
    case SQ_DTYPE_INT3_G0:
    case SQ_DTYPE_INT2_G0:
        break;
    default:
        return NULL;
    }
    if (set->formats[dtype].reference_only) return NULL;
    /* W8A8's activations are 8-bit in every product anyway; the others' only when asked */
    if (dtype != SQ_DTYPE_W8A8 && !sq_cpu_int8_prefill()) return NULL;
#if defined(__x86_64__)
    if (set == &sq_kernels_avx512) return &gemm_avx512;
    if (set == &sq_kernels_avx2) return &gemm_avx2;
#endif
    return NULL;
}

typedef struct gemm_job {
    const sq_gemm_kernels *k;
    sq_dtype dtype, x_dtype;
    const uint8_t *w;
    size_t rb;
    int64_t rows, cols;
    const float *x_f32; /* [n_tokens][cols] */
    sq_block_q8_0 *q;   /* [n_tokens][nb] */
    float *d;           /* [n_tokens][nb] */
    int32_t *sum;       /* [n_tokens][nb] */
    sq_gemm_x x;
    int n_tokens;
    float *y;
} gemm_job;

/* Each thread quantizes its share of the tokens. */
static void quantize_task(void *p, int ith, int nth) {
    const gemm_job *job = p;
    const int64_t nb = job->x.nb;
    long t0, t1;
    sq_split_range(job->n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        if (job->x_dtype == SQ_DTYPE_Q8_0) {
            job->k->quantize_q8_0(job->x_f32 + (size_t)t * job->cols, job->cols, job->q + t * nb,
                                  job->d + t * nb, job->sum + t * nb);
            continue;
        }
        sq_dtype_info(job->x_dtype)->from_f32(job->x_f32 + (size_t)t * job->cols, job->q + t * nb, job->cols);
        for (int64_t i = t * nb; i < (t + 1) * nb; i++) {
            int32_t sum = 0;
            for (int j = 0; j < SQ_QK8_0; j++) sum += job->q[i].qs[j];
            job->sum[i] = sum;
            job->d[i] = sq_f16_to_f32(job->q[i].d);
        }
    }
}

static void gemm_task(void *p, int ith, int nth) {
    const gemm_job *job = p;
    long groups = (long)((job->rows + GEMM_ROW_ALIGN - 1) / GEMM_ROW_ALIGN), b, e;
    sq_split_range(groups, ith, nth, &b, &e);
    const int64_t r0 = (int64_t)b * GEMM_ROW_ALIGN;
    const int64_t r1 = (int64_t)e * GEMM_ROW_ALIGN < job->rows ? (int64_t)e * GEMM_ROW_ALIGN : job->rows;
    if (r1 > r0)
        job->k->gemm(job->dtype, job->w + (size_t)r0 * job->rb, job->rb, r1 - r0, &job->x, job->n_tokens,
                     job->y + r0, (size_t)job->rows);
}

int sq_cpu_gemm(const sq_gemm_kernels *k, sq_threadpool *pool, const sq_tensor *w, const float *x,
                int n_tokens, float *y) {
    const int64_t cols = sq_tensor_row_len(w), nb = cols / SQ_QK8_0, n = (int64_t)n_tokens * nb;
    /* one buffer: the scales [n_tokens][nb], the sums [n_tokens][nb], the blocks [n_tokens][nb] */
    uint8_t *buf = malloc((size_t)n * (sizeof(float) + sizeof(int32_t) + sizeof(sq_block_q8_0)));
    if (!buf) return -1;
    float *d = (float *)buf;
    int32_t *sum = (int32_t *)(d + n);
    sq_block_q8_0 *q = (sq_block_q8_0 *)(sum + n);
    gemm_job job = {
        .k = k,
        .dtype = w->dtype,
        .x_dtype = sq_cpu_gemm_x_dtype(w->dtype),
        .w = w->data,
        .rb = sq_row_bytes(w->dtype, cols),
        .rows = sq_tensor_n_rows(w),
        .cols = cols,
        .x_f32 = x,
        .q = q,
        .d = d,
        .sum = sum,
        .x = {.q = q, .d = d, .sum = sum, .nb = nb},
        .n_tokens = n_tokens,
        .y = y,
    };
    sq_threadpool_run(pool, quantize_task, &job);
    sq_threadpool_run(pool, gemm_task, &job);
    free(buf);
    return 0;
}
