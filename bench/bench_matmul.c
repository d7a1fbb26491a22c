/* Throughput of the CPU matmul kernels on the stories15M shapes (dim 288, hidden 768, vocab 32000).
 *
 *   bench_matmul [seconds per measurement, default 0.1] [sections: any of bw,gemv,step,gemm; default all]
 *                [kernel set to compare with scalar; default the best this CPU runs]
 *
 * Prints, with medians over repetitions:
 *  - the machine's read bandwidth (a plain streaming sum over a buffer far larger than the caches, and one
 * the size of stories15M's fp32 weights), 1 and 2 threads: the ceiling for decode;
 *  - GEMV (one token) per shape and dtype: GB/s of weights streamed and GFLOP/s, scalar vs the best kernel
 * set, 1 vs 2 threads (each shape alone, so small ones run from cache);
 *  - a decode step: all 43 matrices of stories15M, each its own buffer, one token through them, as tokens/s;
 *  - GEMM (64 tokens) per shape and dtype in GFLOP/s, and a 64-token prefill step as tokens/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#include <emmintrin.h>
#endif

#include "core/tensor.h"
#include "core/threadpool.h"
#include "kernels/cpu/matmul.h"
#include "squeeze.h"

enum { DIM = 288, HIDDEN = 768, VOCAB = 32000, LAYERS = 6, PREFILL_TOKENS = 64 };

static double seconds_per_measurement = 0.1;

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of fn(ctx) over enough repetitions to fill the measurement time (3 to 1000), after a
 * warm-up. */
static double median_seconds(void (*fn)(void *), void *ctx) {
    fn(ctx);
    double t0 = sq_monotonic_seconds();
    fn(ctx);
    double once = sq_monotonic_seconds() - t0;
    int reps = once > 0 ? (int)(seconds_per_measurement / once) : 1000;
    reps = reps < 3 ? 3 : reps > 1000 ? 1000 : reps;
    double *times = malloc((size_t)reps * sizeof *times);
    if (!times) abort();
    for (int i = 0; i < reps; i++) {
        t0 = sq_monotonic_seconds();
        fn(ctx);
        times[i] = sq_monotonic_seconds() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, compare_doubles);
    double median = times[reps / 2];
    free(times);
    return median;
}

/* ------------------------------------------------------------------ read bandwidth */

typedef struct read_job {
    sq_threadpool *pool;
    const uint8_t *buf;
    size_t bytes;
    volatile uint64_t sink[16 * 8]; /* one cache line per thread */
} read_job;

/* Sums the 64-bit words of one cache line into acc. */
static inline void add_line(const uint8_t *line, uint64_t *acc) {
#if defined(__x86_64__)
    __m128i a =
        _mm_add_epi64(_mm_load_si128((const __m128i *)line), _mm_load_si128((const __m128i *)(line + 16)));
    __m128i b = _mm_add_epi64(_mm_load_si128((const __m128i *)(line + 32)),
                              _mm_load_si128((const __m128i *)(line + 48)));
    *acc += (uint64_t)_mm_cvtsi128_si64(_mm_add_epi64(a, b));
#else
    for (int i = 0; i < 8; i++) {
        uint64_t v;
        memcpy(&v, line + 8 * i, 8);
        *acc += v;
    }
#endif
}

/* Reads the thread's share as four interleaved streams with software prefetch, as the GEMV kernels read rows:
 * the best this machine's cores can stream, and so the ceiling GEMV GB/s is measured against. */
enum { READ_STREAMS = 4, READ_PREFETCH_LINES = 16 };

static void read_task(void *p, int ith, int nth) {
    read_job *job = p;
    long b, e;
    sq_split_range((long)(job->bytes / 64), ith, nth, &b, &e);
    const uint8_t *base = job->buf + (size_t)b * 64;
    long per = (e - b) / READ_STREAMS;
    uint64_t acc[READ_STREAMS] = {0};
    for (long i = 0; i < per; i++)
        for (int s = 0; s < READ_STREAMS; s++) {
            const uint8_t *line = base + (size_t)(s * per + i) * 64;
#if defined(__x86_64__)
            _mm_prefetch((const char *)(line + READ_PREFETCH_LINES * 64), _MM_HINT_T0);
#endif
            add_line(line, &acc[s]);
        }
    for (long i = per * READ_STREAMS; i < e - b; i++) add_line(base + (size_t)i * 64, &acc[0]);
    job->sink[ith * 8] = acc[0] + acc[1] + acc[2] + acc[3];
}

static void run_read(void *p) {
    read_job *job = p;
    sq_threadpool_run(job->pool, read_task, job);
}

static double read_bandwidth(sq_threadpool *pool, size_t bytes) {
    uint8_t *buf = aligned_alloc(64, bytes);
    if (!buf) abort();
    memset(buf, 1, bytes);
    read_job job = {.pool = pool, .buf = buf, .bytes = bytes};
    double gbs = (double)bytes / median_seconds(run_read, &job) / 1e9;
    free(buf);
    return gbs;
}

/* ------------------------------------------------------------------ matmul measurements */

static sq_tensor random_weights(sq_dtype dtype, int64_t rows, int64_t cols, uint64_t *seed) {
    sq_tensor t = {.dtype = dtype, .ndim = 2, .shape = {rows, cols}, .storage = SQ_STORAGE_HOST};
    t.nbytes = sq_tensor_bytes_for(dtype, 2, t.shape);
    float *values = malloc((size_t)(rows * cols) * sizeof *values);
    t.data = aligned_alloc(64, (t.nbytes + 63) / 64 * 64);
    if (!values || !t.data) abort();
    for (int64_t i = 0; i < rows * cols; i++) {
        *seed ^= *seed << 13, *seed ^= *seed >> 7, *seed ^= *seed << 17;
        values[i] = (float)((*seed >> 40) / (double)(1 << 24) - 0.5);
    }
    sq_dtype_info(dtype)->from_f32(values, t.data, rows * cols);
    free(values);
    return t;
}

typedef struct matmul_run {
    sq_threadpool *pool;
    const sq_tensor *w;
    int n_w;
    const float *x;
    int n_tokens;
    float *y;
} matmul_run;

static void run_matmuls(void *p) {
    matmul_run *run = p;
    for (int i = 0; i < run->n_w; i++) sq_cpu_matmul(run->pool, &run->w[i], run->x, run->n_tokens, run->y);
}

static double time_matmuls(sq_threadpool *pool, const char *set, const sq_tensor *w, int n_w, int n_tokens) {
    sq_error *err = sq_cpu_force_kernels(set);
    if (err) abort();
    float *x = calloc((size_t)n_tokens * HIDDEN, sizeof *x), *y = calloc((size_t)n_tokens * VOCAB, sizeof *y);
    if (!x || !y) abort();
    for (size_t i = 0; i < (size_t)n_tokens * HIDDEN; i++) x[i] = (float)(i % 7) * 0.1f - 0.3f;
    matmul_run run = {pool, w, n_w, x, n_tokens, y};
    double s = median_seconds(run_matmuls, &run);
    free(x);
    free(y);
    return s;
}

static const struct {
    const char *name;
    int rows, cols, per_layer; /* matrices of this shape per layer; 0: once per model; -1: not stories15M's */
} shapes[] = {
    {"attn q/k/v/o 288x288", DIM, DIM, 4}, {"ffn w1/w3 768x288", HIDDEN, DIM, 2},
    {"ffn w2 288x768", DIM, HIDDEN, 1},    {"classifier 32000x288", VOCAB, DIM, 0},
    {"wide 4096x4096", 4096, 4096, -1}, /* a 7B model's attention matrix: rows of whole K-quant blocks */
};
enum { N_SHAPES = sizeof shapes / sizeof *shapes };

/* Whether rows of cols values are whole blocks of dt. */
static int fits(int dt, int cols) { return cols % sq_dtype_info(dt)->block_elems == 0; }

/* All of stories15M's matrices in dtype, in forward order, each its own buffer. */
static int model_matrices(sq_dtype dtype, sq_tensor *w, uint64_t *seed) {
    int n = 0;
    for (int l = 0; l < LAYERS; l++)
        for (int s = 0; s < N_SHAPES; s++)
            for (int k = 0; k < shapes[s].per_layer; k++)
                w[n++] = random_weights(dtype, shapes[s].rows, shapes[s].cols, seed);
    w[n++] = random_weights(dtype, VOCAB, DIM, seed);
    return n;
}

static const char *sets[2];     /* "scalar" and the best set */
static sq_threadpool *pools[2]; /* 1 and 2 threads */
static uint64_t seed = 88172645463325252ull;

static void bench_bandwidth(void) {
    printf("read bandwidth, GB/s           1 thread  2 threads\n");
    const size_t mib[] = {256, 61, 48, 32, 24, 16, 8};
    for (size_t i = 0; i < sizeof mib / sizeof *mib; i++)
        printf("  %3zu MiB buffer%s %8.1f  %9.1f\n", mib[i], mib[i] == 61 ? " (stories15M)" : "             ",
               read_bandwidth(pools[0], mib[i] << 20), read_bandwidth(pools[1], mib[i] << 20));
    printf("\n");
}

static void bench_gemv(void) {
    printf("GEMV, 1 token: GB/s of weights (GFLOP/s)\n");
    printf("%-22s %-5s  %-16s %-16s %-16s %-16s\n", "shape", "dtype", "scalar 1t", "scalar 2t", "best 1t",
           "best 2t");
    for (int s = 0; s < N_SHAPES; s++)
        for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
            if (!fits(dt, shapes[s].cols)) continue;
            sq_tensor w = random_weights(dt, shapes[s].rows, shapes[s].cols, &seed);
            double flops = 2.0 * shapes[s].rows * shapes[s].cols;
            printf("%-22s %-5s ", shapes[s].name, sq_dtype_info(dt)->name);
            for (int k = 0; k < 2; k++)
                for (int p = 0; p < 2; p++) {
                    double t = time_matmuls(pools[p], sets[k], &w, 1, 1);
                    printf(" %6.1f (%6.1f)", (double)w.nbytes / t / 1e9, flops / t / 1e9);
                }
            printf("\n");
            free(w.data);
        }
    printf("\n");
}

static void bench_model_step(void) {
    static sq_tensor w[LAYERS * 7 + 1];
    printf("step through all stories15M matrices (43, each its own buffer): tokens/s (GB/s of weights)\n");
    printf("%-5s %6s  %-16s %-16s %-16s %-16s %-22s\n", "dtype", "MB", "decode scalar 1t", "decode scalar 2t",
           "decode best 1t", "decode best 2t", "prefill 64 best 2t");
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        if (!fits(dt, DIM)) continue; /* rows of 288: not the K-quants */
        int n = model_matrices(dt, w, &seed);
        size_t bytes = 0;
        for (int i = 0; i < n; i++) bytes += w[i].nbytes;
        printf("%-5s %6.1f ", sq_dtype_info(dt)->name, (double)bytes / 1e6);
        double decode_tps = 0;
        for (int k = 0; k < 2; k++)
            for (int p = 0; p < 2; p++) {
                double t = time_matmuls(pools[p], sets[k], w, n, 1);
                printf(" %7.0f (%6.1f)", 1 / t, (double)bytes / t / 1e9);
                decode_tps = 1 / t;
            }
        double t = time_matmuls(pools[1], sets[1], w, n, PREFILL_TOKENS);
        printf("  %7.0f (%4.1fx decode)\n", PREFILL_TOKENS / t, PREFILL_TOKENS / t / decode_tps);
        for (int i = 0; i < n; i++) free(w[i].data);
    }
    printf("\n");
}

static void bench_gemm(void) {
    printf("GEMM, %d tokens: GFLOP/s\n", PREFILL_TOKENS);
    printf("%-22s %-5s  %9s %9s %9s %9s\n", "shape", "dtype", "scalar 1t", "scalar 2t", "best 1t", "best 2t");
    for (int s = 0; s < N_SHAPES; s++)
        for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
            if (!fits(dt, shapes[s].cols)) continue;
            sq_tensor w = random_weights(dt, shapes[s].rows, shapes[s].cols, &seed);
            double flops = 2.0 * shapes[s].rows * shapes[s].cols * PREFILL_TOKENS;
            printf("%-22s %-5s ", shapes[s].name, sq_dtype_info(dt)->name);
            for (int k = 0; k < 2; k++)
                for (int p = 0; p < 2; p++)
                    printf(" %9.1f", flops / time_matmuls(pools[p], sets[k], &w, 1, PREFILL_TOKENS) / 1e9);
            printf("\n");
            free(w.data);
        }
}

int main(int argc, char **argv) {
    if (argc > 1) seconds_per_measurement = atof(argv[1]);
    const char *sections = argc > 2 ? argv[2] : "bw,gemv,step,gemm";
    sets[0] = "scalar";
    sets[1] = argc > 3 ? argv[3] : sq_cpu_kernel_name();
    sq_error *err = sq_cpu_force_kernels(sets[1]);
    if (err) {
        fprintf(stderr, "bench_matmul: %s\n", sq_error_message(err));
        sq_error_free(err);
        return 1;
    }
    pools[0] = NULL;
    pools[1] = sq_threadpool_create(2);
    if (!pools[1]) abort();
    printf("kernel set compared with scalar (\"best\" below): %s\n\n", sets[1]);
    if (strstr(sections, "bw")) bench_bandwidth();
    if (strstr(sections, "gemv")) bench_gemv();
    if (strstr(sections, "step")) bench_model_step();
    if (strstr(sections, "gemm")) bench_gemm();
    sq_threadpool_free(pools[1]);
    return 0;
}
