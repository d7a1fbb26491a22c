/* The CUDA backend's ceilings and kernels on Llama-2-7B shapes (dim 4096, FFN 11008, vocab 32000):
 *
 *   bench_cuda [sections: any of bw,gemv,batch,gemm,step,batchstep; default all but the steps] [MODEL for
 * steps]
 *
 *  - bw: the device's copy bandwidth (bytes read + written per second) over 4 GiB buffers, the median of 20
 *    copies: the memory roofline the decode figures are compared with, measured in the same run;
 *  - gemv: batch-1 matmul through the backend table for each GPU format and each of the 7B shapes (q/k/v/o
 *    4096x4096, gate/up 11008x4096, down 4096x11008, output 32000x4096): weight bytes read per second, each
 *    shape over 8 copies of its weights in rotation (1.9 to 2.9 GB for f16, far more than the 60 MB L2);
 *  - batch: 1 to 64 tokens on 11008x4096 per format, as weight GB/s: where the GEMV gives way to cuBLAS;
 *  - step: MODEL's 1024-token prefill and 64 decode steps, the time of each backend operation; batchstep:
 *    the same for 64 sequences of 128 prompt tokens, decoding one token each a step;
 *  - gemm: a 1024-token matmul (the prefill path: cuBLAS on tensor cores) per format on 11008x4096, TFLOP/s.
 * Times are medians over repetitions, each synchronised, after a warm-up; weights are random, never zeros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "kernels/backend.h"
#include "runtime/context.h"
#include "squeeze.h"
#ifdef SQ_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#ifdef SQ_HAVE_CUDA
enum { COPIES = 8, REPS = 30 };

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* COPIES device tensors [rows][cols] of dtype: random values through the format's reference quantizer. */
static void make_weights(const sq_backend *be, sq_dtype dt, int64_t rows, int64_t cols, sq_tensor *w) {
    const int64_t n = rows * cols;
    float *v = malloc((size_t)n * sizeof *v);
    uint64_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v[i] = (float)((s >> 40) / (double)(1 << 24) * 2 - 1) * 0.02f;
    }
    const int64_t shape[2] = {rows, cols};
    const size_t bytes = sq_tensor_bytes_for(dt, 2, shape);
    void *host = malloc(bytes);
    sq_dtype_info(dt)->from_f32(v, host, n);
    for (int c = 0; c < COPIES; c++) {
        w[c] = (sq_tensor){
            .dtype = dt, .ndim = 2, .shape = {rows, cols}, .nbytes = bytes, .storage = SQ_STORAGE_DEVICE};
        w[c].data = be->alloc(be->impl, bytes);
        if (!w[c].data) {
            fprintf(stderr, "bench_cuda: no device memory for %zu bytes\n", bytes);
            exit(1);
        }
        be->upload_weight(
            be->impl, w[c].data,
            &(sq_tensor){.dtype = dt, .ndim = 2, .shape = {rows, cols}, .data = host, .nbytes = bytes});
    }
    free(host);
    free(v);
}

/* Median seconds of one matmul of n tokens, rotating over the copies. */
static double time_matmul(const sq_backend *be, sq_tensor *w, const float *x, int n, float *y) {
    double t[REPS];
    for (int r = -2; r < REPS; r++) {
        be->synchronize(be->impl);
        const double t0 = sq_monotonic_seconds();
        for (int c = 0; c < COPIES; c++) be->matmul(be->impl, &w[c], x, n, y);
        be->synchronize(be->impl);
        if (r >= 0) t[r] = (sq_monotonic_seconds() - t0) / COPIES;
    }
    qsort(t, REPS, sizeof *t, compare_doubles);
    return t[REPS / 2];
}

static const sq_dtype formats[] = {SQ_DTYPE_F16, SQ_DTYPE_BF16, SQ_DTYPE_Q8_0, SQ_DTYPE_Q4_0, SQ_DTYPE_Q4_K};
enum { N_FORMATS = sizeof formats / sizeof *formats };

static void bench_gemv(const sq_backend *be, double bw) {
    const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};
    printf(
        "\n## GEMV, batch 1 (weight GB/s; %% of the copy bandwidth)\n\n| format | 4096x4096 | 11008x4096 | "
        "4096x11008 | 32000x4096 |\n|---|---:|---:|---:|---:|\n");
    float *x = be->alloc(be->impl, 11008 * 4 * 8), *y = be->alloc(be->impl, 32000 * 4 * 8);
    float *xh = malloc(11008 * 4 * 8);
    for (int i = 0; i < 11008 * 8; i++) xh[i] = (float)((i * 37) % 101) / 50.0f - 1;
    be->upload(be->impl, x, xh, 11008 * 4 * 8);
    for (int f = 0; f < N_FORMATS; f++) {
        printf("| %s", sq_dtype_info(formats[f])->name);
        for (int s = 0; s < 4; s++) {
            sq_tensor w[COPIES];
            make_weights(be, formats[f], shapes[s][0], shapes[s][1], w);
            const double sec = time_matmul(be, w, x, 1, y);
            const double gbs = w[0].nbytes / sec / 1e9;
            printf(" | %.0f (%.0f%%)", gbs, 100 * gbs * 1e9 / bw);
            for (int c = 0; c < COPIES; c++) be->free(be->impl, w[c].data);
        }
        printf(" |\n");
        fflush(stdout);
    }
    free(xh);
    be->free(be->impl, x);
    be->free(be->impl, y);
}

/* Tokens per matmul on 11008x4096: the GEMV (up to 8 tokens) and cuBLAS (more) as weight GB/s. */
static void bench_batch(const sq_backend *be, double bw) {
    const int ns[] = {1, 2, 4, 8, 9, 16, 32, 64};
    enum { ROWS = 11008, COLS = 4096, N_NS = sizeof ns / sizeof *ns };
    printf("\n## matmul 11008x4096 by tokens (weight GB/s; %% of the copy bandwidth)\n\n| format |");
    for (int i = 0; i < N_NS; i++) printf(" %d |", ns[i]);
    printf("\n|---|");
    for (int i = 0; i < N_NS; i++) printf("---:|");
    printf("\n");
    float *x = be->alloc(be->impl, (size_t)64 * COLS * 4), *y = be->alloc(be->impl, (size_t)64 * ROWS * 4);
    float *xh = malloc((size_t)64 * COLS * 4);
    for (size_t i = 0; i < (size_t)64 * COLS; i++) xh[i] = (float)((i * 37) % 101) / 50.0f - 1;
    be->upload(be->impl, x, xh, (size_t)64 * COLS * 4);
    for (int f = 0; f < N_FORMATS; f++) {
        sq_tensor w[COPIES];
        make_weights(be, formats[f], ROWS, COLS, w);
        printf("| %s", sq_dtype_info(formats[f])->name);
        for (int i = 0; i < N_NS; i++) {
            const double gbs = w[0].nbytes / time_matmul(be, w, x, ns[i], y) / 1e9;
            printf(" | %.0f (%.0f%%)", gbs, 100 * gbs * 1e9 / bw);
        }
        printf(" |\n");
        fflush(stdout);
        for (int c = 0; c < COPIES; c++) be->free(be->impl, w[c].data);
    }
    free(xh);
    be->free(be->impl, x);
    be->free(be->impl, y);
}

static void bench_gemm(const sq_backend *be) {
    enum { N = 1024, ROWS = 11008, COLS = 4096 };
    printf("\n## GEMM, %d tokens x [%d x %d] (TFLOP/s)\n\n| format | TFLOP/s |\n|---|---:|\n", N, ROWS, COLS);
    float *x = be->alloc(be->impl, (size_t)N * COLS * 4), *y = be->alloc(be->impl, (size_t)N * ROWS * 4);
    float *xh = malloc((size_t)N * COLS * 4);
    for (size_t i = 0; i < (size_t)N * COLS; i++) xh[i] = (float)((i * 37) % 101) / 50.0f - 1;
    be->upload(be->impl, x, xh, (size_t)N * COLS * 4);
    for (int f = 0; f < N_FORMATS; f++) {
        sq_tensor w[COPIES];
        make_weights(be, formats[f], ROWS, COLS, w);
        const double sec = time_matmul(be, w, x, N, y);
        printf("| %s | %.1f |\n", sq_dtype_info(formats[f])->name, 2.0 * N * ROWS * COLS / sec / 1e12);
        fflush(stdout);
        for (int c = 0; c < COPIES; c++) be->free(be->impl, w[c].data);
    }
    free(xh);
    be->free(be->impl, x);
    be->free(be->impl, y);
}
/* Where a forward step's time goes: n_seqs sequences of MODEL, each a prompt (1024 tokens for one sequence,
 * 128 for several) then 64 decode steps of one token per sequence, each operation timed between
 * synchronisations (sq_cuda_backend_profile), in ms per step. */
static void bench_step(const char *path, int n_seqs) {
    enum { STEPS = 64, MAX_SEQS = 64 };
    const int prompt = n_seqs == 1 ? 1024 : 128;
    sq_model *m;
    sq_backend be;
    sq_context *ctx;
    sq_error *err = sq_model_load(path, NULL, &m);
    if (!err) err = sq_backend_create("cuda", 0, &be);
    if (!err)
        err = sq_context_create_on(m,
                                   &(sq_context_options){.n_ctx = prompt + STEPS + 1,
                                                         .n_seq_max = n_seqs,
                                                         .n_batch_max = prompt * n_seqs,
                                                         .kv_type = SQ_KV_F16},
                                   be, &ctx);
    if (err) {
        fprintf(stderr, "bench_cuda step: %s\n", sq_error_message(err));
        sq_error_free(err);
        return;
    }
    sq_model_info info;
    sq_model_get_info(m, &info);
    int32_t *ids = malloc((size_t)prompt * sizeof *ids);
    float *logits = malloc((size_t)n_seqs * info.vocab_size * sizeof *logits);
    for (int i = 0; i < prompt; i++) ids[i] = (int32_t)((i * 7919u + 13) % (unsigned)info.vocab_size);
    printf("\n## where a step's time goes: %s, %d sequence(s) (ms per step; each operation between "
           "synchronisations)\n\n",
           path, n_seqs);
    printf("| operation | prefill %d x %d tokens | decode (mean of %d steps) |\n|---|---:|---:|\n", n_seqs,
           prompt, STEPS);
    double pre[SQ_OP_COUNT], dec[SQ_OP_COUNT];
    long calls[SQ_OP_COUNT];
    sq_seq_batch b[MAX_SEQS];
    for (int pass = 0; pass < 2; pass++) { /* the first warms up */
        for (int q = 0; q < n_seqs; q++) {
            sq_error_free(sq_seq_truncate(ctx, q, 0));
            b[q] = (sq_seq_batch){.seq_id = q,
                                  .tokens = ids,
                                  .n_tokens = prompt,
                                  .logits_mode = SQ_LOGITS_LAST,
                                  .logits = logits + (size_t)q * info.vocab_size};
        }
        sq_cuda_backend_profile(&be, 1, NULL, NULL);
        sq_error_free(sq_forward(ctx, b, n_seqs));
        sq_cuda_backend_profile(&be, 1, pre, calls);
        for (int s = 0; s < STEPS; s++) {
            for (int q = 0; q < n_seqs; q++) b[q].tokens = &ids[s], b[q].n_tokens = 1;
            sq_error_free(sq_forward(ctx, b, n_seqs));
        }
        sq_cuda_backend_profile(&be, 0, dec, calls);
    }
    double tp = 0, td = 0;
    for (int op = 0; op < SQ_OP_COUNT; op++) {
        if (!pre[op] && !dec[op]) continue;
        printf("| %s | %.3f | %.3f |\n", sq_op_name((sq_op)op), pre[op] * 1e3, dec[op] * 1e3 / STEPS);
        tp += pre[op], td += dec[op];
    }
    printf("| total | %.3f | %.3f |\n", tp * 1e3, td * 1e3 / STEPS);
    free(ids);
    free(logits);
    sq_context_free(ctx);
    sq_model_free(m);
}
#endif

#ifdef SQ_HAVE_CUDA
/* whether the comma-separated list names section */
static int has(const char *list, const char *section) {
    const size_t n = strlen(section);
    for (const char *p = list; (p = strstr(p, section)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}
#endif

int main(int argc, char **argv) {
#ifndef SQ_HAVE_CUDA
    (void)argc;
    (void)argv;
    printf("bench_cuda: this build has no CUDA backend\n");
    return 0;
#else
    const char *sections = argc > 1 ? argv[1] : "bw,gemv,batch,gemm";
    sq_backend be;
    sq_error *err = sq_backend_create("cuda", 0, &be);
    if (err) {
        fprintf(stderr, "bench_cuda: %s\n", sq_error_message(err));
        sq_error_free(err);
        return 1;
    }
    const double bw = sq_cuda_backend_copy_bandwidth(&be, (size_t)4 << 30, 20);
    printf("copy bandwidth: %.0f GB/s (bytes read + written, 4 GiB buffers, median of 20)\n", bw / 1e9);
    if (has(sections, "gemv")) bench_gemv(&be, bw);
    if (has(sections, "batch")) bench_batch(&be, bw);
    if (has(sections, "gemm")) bench_gemm(&be);
    if (has(sections, "step") && argc > 2) bench_step(argv[2], 1);
    if (has(sections, "batchstep") && argc > 2) bench_step(argv[2], 64);
    be.synchronize(be.impl);
    const char *e = be.take_error(be.impl);
    if (e) fprintf(stderr, "bench_cuda: %s\n", e);
    sq_backend_destroy(&be);
    return e ? 1 : 0;
#endif
}
