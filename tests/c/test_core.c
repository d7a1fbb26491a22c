/* Core types: half/bfloat16 conversions, block quantizer round trips, tensor sizes, the thread pool. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "testlib.h"

static void test_f16_roundtrip_all_halves(void **state) {
    (void)state;
    /* every finite half converts to a float and back to itself */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        assert_int_equal(sq_f32_to_f16(sq_f16_to_f32((uint16_t)h)), h);
    }
    assert_true(sq_f16_to_f32(0x3c00) == 1.0f);
    assert_true(sq_f16_to_f32(0xc000) == -2.0f);
    assert_true(sq_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_int_equal(sq_f32_to_f16(65520.0f), 0x7c00);              /* rounds to infinity */
    assert_int_equal(sq_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie to even */
}

static void test_bf16(void **state) {
    (void)state;
    assert_true(sq_bf16_to_f32(sq_f32_to_bf16(1.0f)) == 1.0f);
    assert_true(sq_bf16_to_f32(sq_f32_to_bf16(-3.5f)) == -3.5f);
    assert_int_equal(sq_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80); /* tie to even stays */
    assert_true(isnan(sq_bf16_to_f32(sq_f32_to_bf16(NAN))));
}

static void test_block_quantizers_error_bounds(void **state) {
    (void)state;
    uint64_t seed = 42;
    enum { N = 32 * 64 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = sq_test_rand_uniform(&seed, -2, 2);
    const sq_dtype types[] = {SQ_DTYPE_Q8_0, SQ_DTYPE_Q4_0, SQ_DTYPE_Q4_1, SQ_DTYPE_F16, SQ_DTYPE_BF16};
    /* largest error relative to the block's range: half a quantization step, plus the f16 scale's rounding */
    const double bound[] = {1.0 / 254 + 1e-3, 1.0 / 16 + 1e-3, 1.0 / 30 + 1e-3, 1e-3, 4e-3};
    unsigned char buf[N * 4];
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const sq_dtype_traits *tr = sq_dtype_info(types[k]);
        tr->from_f32(x, buf, N);
        tr->to_f32(buf, y, N);
        for (int b = 0; b < N / 32; b++) {
            float lo = x[b * 32], hi = x[b * 32];
            for (int j = 0; j < 32; j++) lo = fminf(lo, x[b * 32 + j]), hi = fmaxf(hi, x[b * 32 + j]);
            double range = fmax(fabs(lo), fabs(hi)) * 2;
            for (int j = 0; j < 32; j++)
                if (fabs(x[b * 32 + j] - y[b * 32 + j]) > bound[k] * range)
                    fail_msg("%s: element %d: %g became %g", tr->name, b * 32 + j, x[b * 32 + j],
                             y[b * 32 + j]);
        }
    }
}

static void test_tensor_sizes(void **state) {
    (void)state;
    assert_int_equal(sq_tensor_bytes_for(SQ_DTYPE_Q8_0, 2, (int64_t[]){3, 64}), 3 * 2 * 34);
    assert_int_equal(sq_tensor_bytes_for(SQ_DTYPE_Q4_0, 2, (int64_t[]){3, 48}), 0); /* not whole blocks */
    assert_int_equal(sq_tensor_bytes_for(SQ_DTYPE_F32, 2, (int64_t[]){1LL << 40, 1LL << 40}), 0);
    assert_int_equal(sq_tensor_bytes_for(SQ_DTYPE_F32, 2, (int64_t[]){-1, 4}), 0);
    assert_int_equal(sq_dtype_from_name("q4_1"), SQ_DTYPE_Q4_1);
    assert_int_equal(sq_dtype_from_name("q9"), -1);
}

typedef struct {
    atomic_long sum;
    long n;
} sum_job;

static void sum_slice(void *p, int ith, int nth) {
    sum_job *job = p;
    long b, e, s = 0;
    sq_split_range(job->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) s += i;
    atomic_fetch_add(&job->sum, s);
}

static void test_threadpool(void **state) {
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        sq_threadpool *pool = sq_threadpool_create(threads);
        assert_non_null(pool);
        assert_int_equal(sq_threadpool_size(pool), threads);
        for (int rep = 0; rep < 2000; rep++) {
            sum_job job = {.n = 1000 + rep};
            sq_threadpool_run(pool, sum_slice, &job);
            assert_int_equal(atomic_load(&job.sum), job.n * (job.n - 1) / 2);
        }
        sq_threadpool_free(pool);
    }
}

/* Slices are claimed by whichever thread is free: each run must still call every slice exactly once, with
 * nth the pool's size, and return only when all have finished, also when some slices are slow enough that
 * the other threads go to sleep (the futex paths) and when a run follows at once on a finished one. */
typedef struct {
    atomic_int calls[4];
    atomic_int finished;
    int nth, rep;
} slice_log;

static void log_slice(void *p, int ith, int nth) {
    slice_log *log = p;
    assert_true(nth == log->nth && ith >= 0 && ith < nth);
    if (log->rep % 50 == ith) usleep(200 + 300 * (unsigned)ith); /* longer than the spin before sleeping */
    atomic_fetch_add(&log->calls[ith], 1);
    atomic_fetch_add(&log->finished, 1);
}

static void test_threadpool_slices_once(void **state) {
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        sq_threadpool *pool = sq_threadpool_create(threads);
        assert_non_null(pool);
        for (int rep = 0; rep < 400; rep++) {
            slice_log log = {.nth = threads, .rep = rep};
            sq_threadpool_run(pool, log_slice, &log);
            assert_int_equal(atomic_load(&log.finished), threads); /* all done when run returns */
            for (int i = 0; i < threads; i++) assert_int_equal(atomic_load(&log.calls[i]), 1);
        }
        sq_threadpool_free(pool);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_roundtrip_all_halves),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_block_quantizers_error_bounds),
        cmocka_unit_test(test_tensor_sizes),
        cmocka_unit_test(test_threadpool),
        cmocka_unit_test(test_threadpool_slices_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
