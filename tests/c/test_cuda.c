/* The CUDA backend at sizes test_backend_ops's small cases do not reach, and end to end on real models.
 * Exits 77 (skipped) where no usable GPU is present or the build has no CUDA, saying why.
 *
 *  - matmul of every GPU format at rows x cols where the GEMV splits rows among warps (few rows) or not, Q4_K
 *    (256-value blocks), 1-8 tokens (GEMV) and 24 tokens (cuBLAS GEMM), against sq_ref_matmul_x with the
 *    operands rounded as sq_cuda_backend_precision states: 2e-5 of max |ref| (fp32 accumulation over up to
 *    2048 products against double; what is left is summation order);
 *  - attention over up to 1000 cached slots in blocks of 16, GQA 8/2 heads, head_dim 128, f32 and f16 rows,
 *    with and without a sliding window: a decode token (slots split among blocks, then merged), a 40-token
 *    prefill chunk (the tiled prefill kernel), and a batch of two sequences whose first tile is mixed (the
 *    general kernel beside the tiled one): 1e-5 of max |ref| (fp32 online softmax over up to 1000 keys
 *    against double);
 *  - stories260K (fp32, GQA) against its float64 golden logits, all tokens in one call (GEMM) and one token
 *    at a time (GEMV): 1e-4 of each row's max |logit|, as test_forward holds the CPU to, same argmax;
 *  - stories15M-f16 on the GPU against the same model on the CPU: prefill logits within 1e-2 of max |logit|
 *    (the prefill GEMM rounds activations to f16: 2^-11 relative each), decode logits within 1e-3 (fp32
 *    activations), and 48 greedy tokens identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/matmul.h"
#include "kernels/ref/ref.h"
#include "testlib.h"
#ifdef SQ_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "runtime/context.h"
#endif

#ifdef SQ_HAVE_CUDA
static sq_backend gpu;

static void *dev_copy(const void *host, size_t bytes) {
    void *d = gpu.alloc(gpu.impl, bytes);
    assert_non_null(d);
    gpu.upload(gpu.impl, d, host, bytes);
    return d;
}

static float *random_floats(size_t n, float lo, float hi, uint64_t *seed) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = sq_test_rand_uniform(seed, lo, hi);
    return x;
}

static sq_tensor tensor_of(sq_dtype dtype, int64_t rows, int64_t cols, const float *values) {
    sq_tensor t = {.dtype = dtype, .ndim = 2, .shape = {rows, cols}, .storage = SQ_STORAGE_HOST};
    t.nbytes = sq_tensor_bytes_for(dtype, 2, t.shape);
    t.data = malloc(t.nbytes);
    assert_non_null(t.data);
    sq_dtype_info(dtype)->from_f32(values, t.data, rows * cols);
    return t;
}

static void check(double err, double tol, const char *what) {
    print_message("%-60s relative error %.3g (tolerance %g)\n", what, err, tol);
    if (!(err <= tol)) fail_msg("%s: relative error %.3g exceeds %g", what, err, tol);
}

static void test_matmul_shapes(void **state) {
    (void)state;
    uint64_t seed = 77;
    const sq_dtype types[] = {SQ_DTYPE_F32,  SQ_DTYPE_F16,  SQ_DTYPE_BF16,
                              SQ_DTYPE_Q8_0, SQ_DTYPE_Q4_0, SQ_DTYPE_Q4_K};
    const int64_t shapes[][2] = {{1000, 1536}, {37, 2048}, {3, 512}};
    const int tokens[] = {1, 2, 5, 8, 24};
    for (size_t d = 0; d < sizeof types / sizeof *types; d++)
        for (size_t s = 0; s < 3; s++)
            for (size_t k = 0; k < 5; k++) {
                const int64_t rows = shapes[s][0], cols = shapes[s][1];
                const int n = tokens[k];
                float *wv = random_floats((size_t)(rows * cols), -1, 1, &seed);
                sq_tensor w = tensor_of(types[d], rows, cols, wv);
                sq_dtype x_dtype, w_dtype;
                sq_cuda_backend_precision(types[d], n, &x_dtype, &w_dtype);
                sq_dtype_info(types[d])->to_f32(w.data, wv, rows * cols);
                sq_tensor w_ref = w_dtype == types[d] ? w : tensor_of(w_dtype, rows, cols, wv);
                float *x = random_floats((size_t)n * cols, -1, 1, &seed);
                float *want = malloc((size_t)n * rows * 4), *got = malloc((size_t)n * rows * 4);
                sq_ref_matmul_x(&w_ref, x_dtype, x, n, want);
                sq_tensor wd = w; /* in the device layout, as a context uploads it */
                wd.data = gpu.alloc(gpu.impl, w.nbytes);
                assert_non_null(wd.data);
                gpu.upload_weight(gpu.impl, wd.data, &w);
                wd.storage = SQ_STORAGE_DEVICE;
                float *xd = dev_copy(x, (size_t)n * cols * 4),
                      *yd = gpu.alloc(gpu.impl, (size_t)n * rows * 4);
                gpu.matmul(gpu.impl, &wd, xd, n, yd);
                gpu.download(gpu.impl, got, yd, (size_t)n * rows * 4);
                assert_null(gpu.take_error(gpu.impl));
                char what[96];
                snprintf(what, sizeof what, "matmul %s %d x [%lld x %lld]", sq_dtype_info(types[d])->name, n,
                         (long long)rows, (long long)cols);
                check(sq_test_rel_err(got, want, (size_t)n * rows), 2e-5, what);
                gpu.free(gpu.impl, wd.data);
                gpu.free(gpu.impl, xd);
                gpu.free(gpu.impl, yd);
                if (w_ref.data != w.data) free(w_ref.data);
                free(w.data);
                free(wv);
                free(x);
                free(want);
                free(got);
            }
}

static void test_attention_long(void **state) {
    (void)state;
    uint64_t seed = 78;
    enum { SLOTS = 1040, BS = 16, NH = 8, NKV = 2, HD = 128, MAXB = SLOTS / BS, NSEQ = 2 };
    /* batches: one decode token; a 40-token prefill chunk (tiles of 32 plain tokens); 16 tokens of sequence
     * 1 then 24 of sequence 0 (a mixed tile, then a plain one) */
    static const char *const kinds[] = {"1 token", "40 tokens", "16 + 24 tokens of 2 sequences"};
    for (int rt = 0; rt < 2; rt++)
        for (int window = 0; window <= 300; window += 300)
            for (int kind = 0; kind < 3; kind++) {
                const sq_dtype row_type = rt ? SQ_DTYPE_F16 : SQ_DTYPE_F32;
                const size_t row_bytes = (size_t)NKV * HD * (rt ? 2 : 4),
                             pool = (size_t)NSEQ * SLOTS * row_bytes;
                const int64_t n_values = (int64_t)NSEQ * SLOTS * NKV * HD;
                int32_t table[NSEQ * MAXB];
                for (int i = 0; i < NSEQ * MAXB; i++) table[i] = (i * 37) % (NSEQ * MAXB); /* out of order */
                float *kv = random_floats((size_t)n_values * 2, -1, 1, &seed);
                uint8_t *k = malloc(pool), *v = malloc(pool);
                sq_dtype_info(row_type)->from_f32(kv, k, n_values);
                sq_dtype_info(row_type)->from_f32(kv + n_values, v, n_values);
                sq_kv_view hv = {k, v, table, MAXB, BS, row_bytes, row_type, NKV * HD};
                int32_t f[6][40];
                const int n = kind == 0 ? 1 : 40;
                for (int t = 0; t < n; t++) {
                    /* sequence 0 ends at slot 1000, sequence 1's 16 tokens at 515 */
                    const int seq = kind == 2 && t < 16, p = seq ? 500 + t : 1000 - (n - 1) + t;
                    f[0][t] = 0, f[1][t] = seq, f[2][t] = p, f[3][t] = p, f[4][t] = p, f[5][t] = -1;
                }
                sq_token_batch hb = {n, f[0], f[1], f[2], f[3], f[4], f[5]};
                int32_t *fd = dev_copy(f, sizeof f);
                sq_token_batch db = {n, fd, fd + 40, fd + 80, fd + 120, fd + 160, fd + 200};
                sq_kv_view dv = hv;
                dv.k = dev_copy(k, pool);
                dv.v = dev_copy(v, pool);
                dv.block_table = dev_copy(table, sizeof table);
                const size_t nq = (size_t)n * NH * HD;
                float *q = random_floats(nq, -2, 2, &seed), *want = malloc(nq * 4), *got = malloc(nq * 4);
                sq_ref_attention(&(sq_attention_args){.q = q,
                                                      .kv = hv,
                                                      .tokens = &hb,
                                                      .n_heads = NH,
                                                      .n_kv_heads = NKV,
                                                      .head_dim = HD,
                                                      .window = window,
                                                      .out = want});
                float *qd = dev_copy(q, nq * 4), *od = gpu.alloc(gpu.impl, nq * 4);
                gpu.attention(gpu.impl, &(sq_attention_args){.q = qd,
                                                             .kv = dv,
                                                             .tokens = &db,
                                                             .n_heads = NH,
                                                             .n_kv_heads = NKV,
                                                             .head_dim = HD,
                                                             .window = window,
                                                             .out = od});
                gpu.download(gpu.impl, got, od, nq * 4);
                assert_null(gpu.take_error(gpu.impl));
                char what[128];
                snprintf(what, sizeof what, "attention %s rows, %s, window %d", rt ? "f16" : "f32",
                         kinds[kind], window);
                check(sq_test_rel_err(got, want, nq), 1e-5, what);
                void *dev[] = {fd, dv.k, dv.v, (void *)dv.block_table, qd, od};
                for (size_t i = 0; i < 6; i++) gpu.free(gpu.impl, dev[i]);
                free(kv), free(k), free(v), free(q), free(want), free(got);
            }
}

/* ---------------------------------------------------------------- real models */

static sq_context *context_on(const sq_model *m, const char *device, int n_ctx) {
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = n_ctx, .device = device}, &ctx));
    return ctx;
}

static void test_stories260K_golden(void **state) {
    (void)state;
    enum { VOCAB = 512 };
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    int32_t ids[64];
    const int n = sq_test_read_ids(sq_test_shared("golden/stories260K.tokens.txt"), ids, 64);
    float *want = sq_test_read_f32(sq_test_shared("golden/stories260K.logits.f32"), (size_t)n * VOCAB);
    float *got = malloc((size_t)n * VOCAB * 4);
    sq_context *ctx = context_on(m, "cuda", 0);
    sq_seq_batch all = {
        .seq_id = 0, .tokens = ids, .n_tokens = n, .logits_mode = SQ_LOGITS_ALL, .logits = got};
    sq_test_ok(sq_forward(ctx, &all, 1));
    sq_test_check_logits(got, want, n, VOCAB, 1e-4, "stories260K on cuda, one call");
    sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    for (int t = 0; t < n; t++) {
        sq_seq_batch one = {.seq_id = 0,
                            .tokens = ids + t,
                            .n_tokens = 1,
                            .logits_mode = SQ_LOGITS_LAST,
                            .logits = got + (size_t)t * VOCAB};
        sq_test_ok(sq_forward(ctx, &one, 1));
    }
    sq_test_check_logits(got, want, n, VOCAB, 1e-4, "stories260K on cuda, token by token");
    sq_context_free(ctx);
    sq_model_free(m);
    free(want);
    free(got);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void no_tap(void *user, int layer, sq_tap_point point, int expert, const float *x, int n_tokens,
                   int width) {
    (void)user, (void)layer, (void)point, (void)expert, (void)x, (void)n_tokens, (void)width;
}

/* The CPU, and on the GPU: the fused block with its steps replayed as CUDA graphs (the default), the fused
 * block without graphs, and the operation path (forward.c's block_ops, which a calibration tap selects). */
enum { ON_CPU, GRAPHS, NO_GRAPHS, OP_PATH, N_RUNS };

static void test_stories15M_gpu_vs_cpu(void **state) {
    (void)state;
    enum { VOCAB = 32000, GEN = 48 };
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories15M-f16.gguf"), NULL, &m));
    int32_t ids[64 + GEN];
    const int n = sq_test_read_ids(sq_test_shared("golden/stories15M.tokens.txt"), ids, 64);
    sq_context *c[N_RUNS] = {context_on(m, "cpu", 0), context_on(m, "cuda", 0), context_on(m, "cuda", 0),
                             context_on(m, "cuda", 0)};
    sq_cuda_backend_graphs(&c[NO_GRAPHS]->backend, 0);
    sq_cuda_backend_graphs(&c[OP_PATH]->backend, 0);
    sq_context_set_tap(c[OP_PATH], no_tap, NULL);
    float *logits[N_RUNS];
    for (int d = 0; d < N_RUNS; d++) logits[d] = malloc((size_t)n * VOCAB * 4);
    for (int d = 0; d < N_RUNS; d++) {
        sq_seq_batch all = {
            .seq_id = 0, .tokens = ids, .n_tokens = n, .logits_mode = SQ_LOGITS_ALL, .logits = logits[d]};
        sq_test_ok(sq_forward(c[d], &all, 1));
    }
    double worst = 0;
    for (int t = 0; t < n; t++) {
        double e = sq_test_rel_err(logits[1] + (size_t)t * VOCAB, logits[0] + (size_t)t * VOCAB, VOCAB);
        worst = e > worst ? e : worst;
    }
    check(worst, 1e-2, "stories15M-f16 prefill logits, cuda vs cpu");
    /* greedy decoding from the prompt, both in step: the same token chosen by each at every step is the
     * same greedy text */
    int32_t next = argmax(logits[0] + (size_t)(n - 1) * VOCAB, VOCAB);
    assert_int_equal(next, argmax(logits[1] + (size_t)(n - 1) * VOCAB, VOCAB));
    double worst_step = 0, worst_fused = 0;
    for (int i = 0; i < GEN; i++) {
        for (int d = 0; d < N_RUNS; d++) {
            sq_seq_batch one = {.seq_id = 0,
                                .tokens = &next,
                                .n_tokens = 1,
                                .logits_mode = SQ_LOGITS_LAST,
                                .logits = logits[d]};
            sq_test_ok(sq_forward(c[d], &one, 1));
        }
        double e = sq_test_rel_err(logits[1], logits[0], VOCAB);
        worst_step = e > worst_step ? e : worst_step;
        /* a replay runs the very launches it captured, positions and lengths read from device memory */
        if (memcmp(logits[GRAPHS], logits[NO_GRAPHS], VOCAB * sizeof(float)))
            fail_msg("decode step %d: logits replayed from a CUDA graph differ from the same launches run",
                     i);
        e = sq_test_rel_err(logits[GRAPHS], logits[OP_PATH], VOCAB);
        worst_fused = e > worst_fused ? e : worst_fused;
        next = argmax(logits[0], VOCAB);
        if (argmax(logits[1], VOCAB) != next)
            fail_msg("greedy step %d: cpu chooses %d, cuda %d", i, next, argmax(logits[1], VOCAB));
    }
    check(worst_step, 1e-3, "stories15M-f16 decode logits, cuda vs cpu (48 steps)");
    /* the fused block adds the same sums in the same order (the residual in the GEMV's epilogue) */
    check(worst_fused, 1e-6, "stories15M-f16 decode logits, fused block vs operation path on cuda");
    print_message("48 greedy tokens identical on cpu and cuda; graph replays identical to direct launches\n");
    for (int d = 0; d < N_RUNS; d++) sq_context_free(c[d]), free(logits[d]);
    sq_model_free(m);
}

/* A 7B-shaped synthetic model ($SQ_SYNTH_MODEL, made by squeeze synth on the GPU machine; skipped without):
 * finite logits, GPU against CPU over an 8-token prompt and 8 decode steps. */
static void test_synthetic_7b(void **state) {
    (void)state;
    const char *path = getenv("SQ_SYNTH_MODEL");
    if (!path) skip();
    sq_model *m;
    sq_test_ok(sq_model_load(path, NULL, &m));
    sq_model_info info;
    sq_model_get_info(m, &info);
    const int vocab = info.vocab_size;
    sq_context *c[2] = {context_on(m, "cpu", 64), context_on(m, "cuda", 64)};
    float *logits[2] = {malloc((size_t)vocab * 4), malloc((size_t)vocab * 4)};
    int32_t ids[8] = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
    double worst = 0;
    for (int step = 0; step < 9; step++)
        for (int d = 0; d < 2; d++) {
            sq_seq_batch b = {.seq_id = 0,
                              .tokens = step ? &ids[step - 1] : ids,
                              .n_tokens = step ? 1 : 8,
                              .logits_mode = SQ_LOGITS_LAST,
                              .logits = logits[d]};
            sq_test_ok(sq_forward(c[d], &b, 1));
            if (d == 1) {
                for (int i = 0; i < vocab; i++)
                    if (!isfinite(logits[1][i])) fail_msg("step %d: logit %d is %g", step, i, logits[1][i]);
                const double e = sq_test_rel_err(logits[1], logits[0], (size_t)vocab);
                worst = e > worst ? e : worst;
            }
        }
    char what[160];
    snprintf(what, sizeof what, "%s: logits cuda vs cpu, 8-token prompt + 8 steps", path);
    check(worst, 1e-2, what);
    for (int d = 0; d < 2; d++) sq_context_free(c[d]), free(logits[d]);
    sq_model_free(m);
}
#endif

int main(void) {
#ifndef SQ_HAVE_CUDA
    printf("skipped: this build has no CUDA backend (-DSQUEEZE_CUDA=ON needs nvcc)\n");
    return 77;
#else
    sq_error *err = sq_backend_create("cuda", 0, &gpu);
    if (err) {
        printf("skipped: %s\n", sq_error_message(err));
        sq_error_free(err);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_shapes),      cmocka_unit_test(test_attention_long),
        cmocka_unit_test(test_stories260K_golden), cmocka_unit_test(test_stories15M_gpu_vs_cpu),
        cmocka_unit_test(test_synthetic_7b),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sq_backend_destroy(&gpu);
    return rc;
#endif
}
