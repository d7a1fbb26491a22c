/* CPU matmul kernels: every kernel set this CPU supports, for every weight dtype, against the plain-C oracle
 * sq_ref_matmul on fresh random inputs, over odd shapes, token counts and thread counts.
 *
 * Tolerance: max |fast - ref| / max |ref| < 2e-5. The reference dequantizes the very same stored weights
 * (f16/bf16 values and quantized blocks are exactly representable in fp32), so only the order and precision
 * of the summation differ: fp32 accumulation in the kernels against double in the reference. Where a set's
 * GEMV quantizes the activations for integer dot products (sq_cpu_matmul_x_dtype), the reference multiplies
 * the same quantized activations (sq_ref_matmul_x). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"
#include "testlib.h"

#define TOLERANCE 2e-5

static const char *const all_set_names[] = {"scalar", "avx2", "avx512"};

/* The kernel sets this CPU runs, found by forcing each; the automatic choice is restored afterwards. */
static int supported_sets(const char **names) {
    const char *best = sq_cpu_kernel_name();
    int n = 0;
    for (size_t i = 0; i < sizeof all_set_names / sizeof *all_set_names; i++) {
        sq_error *err = sq_cpu_force_kernels(all_set_names[i]);
        if (err)
            sq_error_free(err);
        else
            names[n++] = all_set_names[i];
    }
    sq_test_ok(sq_cpu_force_kernels(best));
    return n;
}

static void test_kernel_selection(void **state) {
    (void)state;
    const char *best = sq_cpu_kernel_name();
    assert_true(!strcmp(best, "scalar") || !strcmp(best, "avx2") || !strcmp(best, "avx512"));
    sq_test_ok(sq_cpu_force_kernels("scalar"));
    assert_string_equal(sq_cpu_kernel_name(), "scalar");
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        sq_test_ok(sq_cpu_force_kernels("avx512"));
        assert_string_equal(sq_cpu_kernel_name(), "avx512");
        assert_string_equal(best, "avx512");
    } else {
        sq_test_fails_with(sq_cpu_force_kernels("avx512"), "avx512f");
        assert_string_equal(sq_cpu_kernel_name(), "scalar"); /* a failed force changes nothing */
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        sq_test_ok(sq_cpu_force_kernels("avx2"));
        if (!__builtin_cpu_supports("avx512f")) assert_string_equal(best, "avx2");
    }
#endif
    sq_test_fails_with(sq_cpu_force_kernels("sse9"), "unknown CPU kernel set");
    sq_test_ok(sq_cpu_force_kernels(best));
    assert_string_equal(sq_cpu_kernel_name(), best);
}

/* A random weight tensor: uniform values in [-1, 1] stored in dtype, at an address aligned only to the
 * format's alignment (its widest field, which the GGUF reader checks), as a mapped file may give. *buffer
 * is what to free. */
static sq_tensor random_weights(sq_dtype dtype, int64_t rows, int64_t cols, uint64_t *seed, void **buffer) {
    sq_tensor t = {.dtype = dtype, .ndim = 2, .shape = {rows, cols}, .storage = SQ_STORAGE_HOST};
    t.nbytes = sq_tensor_bytes_for(dtype, 2, t.shape);
    assert_true(t.nbytes > 0);
    float *values = malloc((size_t)(rows * cols) * sizeof *values);
    *buffer = malloc(t.nbytes + 64);
    assert_non_null(values);
    assert_non_null(*buffer);
    for (int64_t i = 0; i < rows * cols; i++) values[i] = sq_test_rand_uniform(seed, -1, 1);
    t.data = (uint8_t *)*buffer + sq_dtype_info(dtype)->alignment;
    sq_dtype_info(dtype)->from_f32(values, t.data, rows * cols);
    free(values);
    return t;
}

/* n rounded up to whole blocks of the format. */
static int64_t whole_blocks(sq_dtype dtype, int64_t n) {
    const int64_t be = sq_dtype_info(dtype)->block_elems;
    return (n + be - 1) / be * be;
}

static void test_to_f32_matches_reference(void **state) {
    (void)state;
    const char *sets[3];
    int n_sets = supported_sets(sets);
    const char *best = sq_cpu_kernel_name();
    uint64_t seed = 7;
    /* the last three only for dense dtypes; the 0 stands for three blocks of each format */
    const int64_t lengths[] = {32, 96, 288, 4128, 0, 1, 7, 100};
    for (int s = 0; s < n_sets; s++) {
        sq_test_ok(sq_cpu_force_kernels(sets[s]));
        const sq_cpu_kernels *k = sq_cpu_kernels_active();
        for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
            if (k->formats[dt].reference_only) continue; /* runs through the reference itself */
            for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
                int64_t n = lengths[l] ? lengths[l] : 3 * sq_dtype_info(dt)->block_elems;
                if (n % sq_dtype_info(dt)->block_elems) continue;
                void *buf;
                sq_tensor t = random_weights(dt, 1, n, &seed, &buf);
                float *fast = malloc((size_t)n * sizeof *fast), *ref = malloc((size_t)n * sizeof *ref);
                sq_dtype_info(dt)->to_f32(t.data, ref, n);
                k->formats[dt].to_f32(t.data, fast, n);
                if (memcmp(fast, ref, (size_t)n * sizeof *ref) != 0)
                    fail_msg("%s to_f32 for %s, %lld elements differs from the reference", sets[s],
                             sq_dtype_info(dt)->name, (long long)n);
                free(fast);
                free(ref);
                free(buf);
            }
        }
    }
    sq_test_ok(sq_cpu_force_kernels(best));
}

typedef struct shape {
    int64_t rows, cols;
} shape;

/* Checks sq_cpu_matmul against the reference for every supported set and thread count on one problem. */
static void check_problem(sq_dtype dtype, int n_tokens, shape sh, sq_threadpool **pools, int n_pools,
                          const char **sets, int n_sets, uint64_t *seed) {
    void *wbuf;
    sq_tensor w = random_weights(dtype, sh.rows, sh.cols, seed, &wbuf);
    size_t nx = (size_t)n_tokens * sh.cols, ny = (size_t)n_tokens * sh.rows;
    float *xbuf = malloc((nx + 1) * sizeof *xbuf), *ybuf = malloc((ny + 1) * sizeof *ybuf);
    float *ref_f32 = malloc(ny * sizeof *ref_f32), *ref_q = malloc(ny * sizeof *ref_q);
    float *y1 = malloc(ny * sizeof *y1); /* y on one thread */
    float *x = xbuf + 1, *y = ybuf + 1;  /* not 32-byte aligned either */
    for (size_t i = 0; i < nx; i++) x[i] = sq_test_rand_uniform(seed, -1, 1);
    sq_ref_matmul(&w, x, n_tokens, ref_f32);
    const sq_dtype dot = sq_dtype_info(dtype)->dot_dtype;
    sq_dtype ref_q_dtype = SQ_DTYPE_F32; /* the activations' format ref_q holds so far */
    for (int s = 0; s < n_sets; s++) {
        sq_test_ok(sq_cpu_force_kernels(sets[s]));
        const sq_dtype x_dtype = sq_cpu_matmul_x_dtype(sq_cpu_kernels_active(), dtype, n_tokens);
        /* the GEMV's dot format, or for 16+ tokens the integer GEMM's (gemm.h) */
        const int gemm = n_tokens >= 16 && sq_cpu_gemm_for(sq_cpu_kernels_active(), dtype);
        assert_true(x_dtype == SQ_DTYPE_F32 || x_dtype == (gemm ? sq_cpu_gemm_x_dtype(dtype) : dot));
        if (x_dtype != SQ_DTYPE_F32 && x_dtype != ref_q_dtype) {
            sq_ref_matmul_x(&w, x_dtype, x, n_tokens, ref_q);
            ref_q_dtype = x_dtype;
        }
        const float *ref = x_dtype == SQ_DTYPE_F32 ? ref_f32 : ref_q;
        for (int p = 0; p < n_pools; p++) {
            for (size_t i = 0; i < ny; i++) y[i] = NAN;
            sq_cpu_matmul(pools[p], &w, x, n_tokens, y);
            double err = sq_test_rel_err(y, ref, ny);
            if (!(err < TOLERANCE))
                fail_msg("%s %s: %d tokens x [%lld x %lld] on %d threads: relative error %g", sets[s],
                         sq_dtype_info(dtype)->name, n_tokens, (long long)sh.rows, (long long)sh.cols,
                         sq_threadpool_size(pools[p]), err);
            /* the integer GEMM sums each output on one thread in a fixed order: the same bits for any count
             */
            if (gemm && p == 0) memcpy(y1, y, ny * sizeof *y);
            if (gemm && p > 0 && memcmp(y1, y, ny * sizeof *y) != 0)
                fail_msg("%s %s: %d tokens x [%lld x %lld]: %d threads differ from 1 in some bits", sets[s],
                         sq_dtype_info(dtype)->name, n_tokens, (long long)sh.rows, (long long)sh.cols,
                         sq_threadpool_size(pools[p]));
        }
    }
    free(xbuf);
    free(ybuf);
    free(ref_f32);
    free(ref_q);
    free(y1);
    free(wbuf);
}

static void test_matmul_matches_reference(void **state) {
    (void)state;
    const char *sets[3];
    int n_sets = supported_sets(sets);
    const char *best = sq_cpu_kernel_name();
    sq_threadpool *pools[3] = {NULL, sq_threadpool_create(2), sq_threadpool_create(3)};
    assert_non_null(pools[1]);
    assert_non_null(pools[2]);
    /* 11: two token groups in every GEMV (the K-quants take 8 at a time, the others 4); 16: the first GEMM */
    const int tokens[] = {1, 2, 3, 5, 7, 11, 16, 64, 129};
    sq_cpu_set_int8_prefill(1); /* the integer GEMM for every format it serves (gemm.h) */
    const int64_t rows[] = {1, 5, 37, 300};
    const int64_t cols[] = {32, 96, 288, 768, 7, 100}; /* the last two only for dense dtypes */
    uint64_t seed = 1234;
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++)
        for (size_t t = 0; t < sizeof tokens / sizeof *tokens; t++)
            for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
                for (size_t c = 0; c < sizeof cols / sizeof *cols; c++) {
                    if (cols[c] % sq_dtype_info(dt)->block_elems) continue;
                    check_problem(dt, tokens[t], (shape){rows[r], cols[c]}, pools, 3, sets, n_sets, &seed);
                }
    /* Rows longer than a GEMM tile holds: the reduction is split into slices; with the integer prefill off
     * (the default: dequantize + sgemm for all but W8A8), so that both paths are checked. */
    sq_cpu_set_int8_prefill(0);
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        check_problem(dt, 1, (shape){21, whole_blocks(dt, 4160)}, pools, 3, sets, n_sets, &seed);
        check_problem(dt, 17, (shape){21, whole_blocks(dt, 4160)}, pools, 3, sets, n_sets, &seed);
    }
    sq_threadpool_free(pools[1]);
    sq_threadpool_free(pools[2]);
    sq_test_ok(sq_cpu_force_kernels(best));
}

/* Every compiled kernel set, whether this CPU runs it or not (only its table is read), gives every format of
 * core/dtype.h a GEMV and a to_f32, or marks it reference-only and gives neither. The SIMD sets convert block
 * formats a sub-block at a time, so their blocks must be whole sub-blocks. */
static void test_every_format_has_kernels(void **state) {
    (void)state;
    const sq_cpu_kernels *const sets[] = {
        &sq_kernels_scalar,
#if defined(__x86_64__)
        &sq_kernels_avx2,
        &sq_kernels_avx512,
#endif
    };
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++)
        for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
            const sq_format_kernels *k = &sets[s]->formats[dt];
            const sq_dtype_traits *f = sq_dtype_info(dt);
            if (k->reference_only ? k->gemv || k->to_f32 : !k->gemv || !k->to_f32)
                fail_msg(
                    "kernel set %s: format %s needs a GEMV and a to_f32, or SQ_REFERENCE_ONLY and neither",
                    sets[s]->name, f->name);
            if (sets[s] != &sq_kernels_scalar && !k->reference_only && f->block_elems > 1 &&
                f->block_elems % SQ_CPU_SUB_BLOCK)
                fail_msg("kernel set %s: blocks of %d %s values are not whole sub-blocks of %d",
                         sets[s]->name, f->block_elems, f->name, SQ_CPU_SUB_BLOCK);
        }
}

/* A format a set marks reference-only runs through its reference to_f32, on the GEMV path (rows longer than
 * one dequantized piece included) and the GEMM path. */
static void test_reference_only_formats(void **state) {
    (void)state;
    sq_cpu_kernels reference_only = {.name = "reference-only"};
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++)
        reference_only.formats[dt] = (sq_format_kernels)SQ_REFERENCE_ONLY;
    sq_threadpool *pool = sq_threadpool_create(2);
    assert_non_null(pool);
    const int tokens[] = {1, 3, 17};
    const shape sizes[] = {{37, 96}, {21, 4160}}; /* columns rounded up to whole blocks */
    uint64_t seed = 99;
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++)
        for (size_t t = 0; t < sizeof tokens / sizeof *tokens; t++)
            for (size_t h = 0; h < sizeof sizes / sizeof *sizes; h++) {
                const shape sh = {sizes[h].rows, whole_blocks(dt, sizes[h].cols)};
                void *wbuf;
                sq_tensor w = random_weights(dt, sh.rows, sh.cols, &seed, &wbuf);
                size_t nx = (size_t)tokens[t] * sh.cols, ny = (size_t)tokens[t] * sh.rows;
                float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y),
                      *ref = malloc(ny * sizeof *ref);
                for (size_t i = 0; i < nx; i++) x[i] = sq_test_rand_uniform(&seed, -1, 1);
                for (size_t i = 0; i < ny; i++) y[i] = NAN;
                sq_ref_matmul(&w, x, tokens[t], ref);
                sq_cpu_matmul_with(&reference_only, pool, &w, x, tokens[t], y);
                double err = sq_test_rel_err(y, ref, ny);
                if (!(err < TOLERANCE))
                    fail_msg("reference-only %s: %d tokens x [%lld x %lld]: relative error %g",
                             sq_dtype_info(dt)->name, tokens[t], (long long)sh.rows, (long long)sh.cols, err);
                free(x);
                free(y);
                free(ref);
                free(wbuf);
            }
    sq_threadpool_free(pool);
}

/* The integer GEMM's activation quantizer (gemm.h) equals Q8_0's reference from_f32 bit for bit, and gives
 * each block's scale and the sum of its values: on random rows of several magnitudes and on blocks made of
 * exact halves (roundf's ties, away from zero), zeros, subnormals, an infinity and a NaN. */
static void test_gemm_quantizer_matches_reference(void **state) {
    (void)state;
    const char *sets[3];
    int n_sets = supported_sets(sets);
    const char *best = sq_cpu_kernel_name();
    enum { BLOCKS = 40, COLS = BLOCKS * SQ_QK8_0 };
    float x[COLS];
    uint64_t seed = 99;
    for (int b = 0; b < BLOCKS; b++) {
        const float scale = b < 32 ? ldexpf(1.0f, b - 16) : 1.0f;
        for (int j = 0; j < SQ_QK8_0; j++) x[b * SQ_QK8_0 + j] = scale * sq_test_rand_uniform(&seed, -1, 1);
    }
    float *blk = x + 32 * SQ_QK8_0; /* amax 127: the scale is 1, so k + 0.5 is a tie */
    for (int j = 0; j < SQ_QK8_0; j++) blk[j] = j == 0 ? 127.0f : (j % 2 ? 1 : -1) * ((float)(j % 13) + 0.5f);
    memset(x + 33 * SQ_QK8_0, 0, SQ_QK8_0 * sizeof *x);
    for (int j = 0; j < SQ_QK8_0; j++) x[34 * SQ_QK8_0 + j] = (float)j * 1e-41f;
    x[35 * SQ_QK8_0 + 3] = INFINITY;
    x[36 * SQ_QK8_0 + 7] = NAN;
    sq_block_q8_0 ref[BLOCKS], q[BLOCKS];
    float d[BLOCKS];
    int32_t sum[BLOCKS];
    sq_ref_q8_0_from_f32(x, ref, COLS);
    int tested = 0;
    for (int s = 0; s < n_sets; s++) {
        sq_test_ok(sq_cpu_force_kernels(sets[s]));
        const sq_gemm_kernels *k =
            sq_cpu_gemm_for(sq_cpu_kernels_active(), SQ_DTYPE_W8A8); /* W8A8: on by default */
        if (!k) continue;
        tested++;
        memset(q, 0xa5, sizeof q);
        k->quantize_q8_0(x, COLS, q, d, sum);
        for (int b = 0; b < BLOCKS; b++) {
            if (memcmp(&q[b], &ref[b], sizeof ref[b]) != 0)
                fail_msg("%s: block %d differs from the reference", sets[s], b);
            int32_t expect = 0;
            for (int j = 0; j < SQ_QK8_0; j++) expect += ref[b].qs[j];
            assert_int_equal(sum[b], expect);
            assert_true(d[b] == sq_f16_to_f32(ref[b].d));
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) assert_true(tested > 0);
#endif
    sq_test_ok(sq_cpu_force_kernels(best));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_selection),
        cmocka_unit_test(test_to_f32_matches_reference),
        cmocka_unit_test(test_matmul_matches_reference),
        cmocka_unit_test(test_every_format_has_kernels),
        cmocka_unit_test(test_reference_only_formats),
        cmocka_unit_test(test_gemm_quantizer_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
