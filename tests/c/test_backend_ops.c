/* Every backend operation (kernels/backend.h), on every backend and every CPU kernel set, against its plain
 * reference (kernels/ref/ref.h) on random inputs of awkward shapes: odd widths, head dims 2/6/64/128, GQA
 * ratios, batches mixing sequences, positions and token trees, block tables out of order, f32 and f16 cache
 * rows. Inputs are uploaded into the backend's memory and results downloaded, so the same checks serve a
 * device backend: adding one means adding its name to `devices`.
 *
 * Tolerances, as max |backend - ref| / max |ref| over each result unless stated:
 *  - exact (0) where both sides do the same rounding steps: get_rows (weights dequantize to exact fp32
 *    values), add, add_bias, kv_store (f16 rows: round to nearest even both), kv_copy;
 *  - matmul 2e-5: fp32 accumulation against double over up to 288 products (as tests/c/test_matmul.c);
 *  - rmsnorm 1e-6: the fp32 result is x * scale * w, two roundings (~1.2e-7 each) after a double sum;
 *  - rope 1e-6: cos/sin rounded to fp32 and a two-term fp32 rotation, ~4 roundings of |x| (~5e-7);
 *  - swiglu 1e-6 per element relative: expf (1 ulp), a division and a product, ~4 roundings;
 *  - geglu 1e-6 per element relative to max(|ref|, |x * up| * 1e-3): expf (1 ulp) of an argument whose
 *    fp32 rounding (|arg| <= 10, ~6e-7 absolute) carries into the result where the sigmoid is far in its
 *    tail (x < -4: the product is then < 1e-3 |x * up|, so the bound is taken on that scale);
 *  - scale exact: one fp32 product both sides (the reference rounds the double product once);
 *  - add_rows 2 ulp of |x| + |s y| per element (check_add_rows);
 *  - attention 2e-6: fp32 dot products over head_dim <= 128 and an fp32 online softmax against a full
 *    softmax in double; the outputs are averages of value rows of magnitude <= 1 (measured 3e-7);
 *  - log-prob rows 1e-12 relative: double sums of a vectorised exp (relative error 2e-16) against long
 *    double libm over up to 32000 terms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/logprob.h"
#include "kernels/cpu/matmul.h"
#ifdef SQ_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif
#include "kernels/ref/ref.h"
#include "model/model.h"
#include "runtime/context.h"
#include "testlib.h"

/* every device this build has; one whose hardware is missing here (cuda without a GPU) is skipped, said so */
static const char *const devices[] = {"cpu", "cuda"};
static const char *const cpu_sets[] = {"scalar", "avx2", "avx512"};

typedef void (*op_check)(const sq_backend *be, const char *label, uint64_t *seed);

/* Runs check on every device, and on the CPU once per kernel set this machine has. */
static void for_each_backend(op_check check) {
    uint64_t seed = 20240611;
    for (size_t d = 0; d < sizeof devices / sizeof *devices; d++) {
        sq_backend be;
        sq_error *err = sq_backend_create(devices[d], 3, &be);
        if (err && sq_error_code_of(err) == SQ_ERR_UNSUPPORTED) {
            print_message("skipping device %s: %s\n", devices[d], sq_error_message(err));
            sq_error_free(err);
            continue;
        }
        sq_test_ok(err);
        const int is_cpu = !strcmp(devices[d], "cpu");
        const char *best = sq_cpu_kernel_name();
        for (size_t s = 0; s < (is_cpu ? sizeof cpu_sets / sizeof *cpu_sets : 1); s++) {
            char label[64];
            if (is_cpu) {
                sq_error *err = sq_cpu_force_kernels(cpu_sets[s]);
                if (err) { /* a set this CPU lacks */
                    sq_error_free(err);
                    continue;
                }
            }
            snprintf(label, sizeof label, "%s%s%s", devices[d], is_cpu ? "/" : "", is_cpu ? cpu_sets[s] : "");
            check(&be, label, &seed);
        }
        sq_test_ok(sq_cpu_force_kernels(best));
        sq_backend_destroy(&be);
    }
}

/* ---------------------------------------------------------------- helpers */

static void *dev_copy(const sq_backend *be, const void *host, size_t bytes) {
    void *d = be->alloc(be->impl, bytes);
    assert_non_null(d);
    be->upload(be->impl, d, host, bytes);
    return d;
}

static void dev_read(const sq_backend *be, void *host, const void *dev, size_t bytes) {
    be->download(be->impl, host, dev, bytes);
}

static float *random_floats(size_t n, float lo, float hi, uint64_t *seed) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = sq_test_rand_uniform(seed, lo, hi);
    return x;
}

static int rand_below(uint64_t *seed, int n) { return (int)(sq_test_rand_u64(seed) % (uint64_t)n); }

static void check_rel(const float *got, const float *want, size_t n, double tol, const char *label,
                      const char *what) {
    double err = sq_test_rel_err(got, want, n);
    if (!(err <= tol)) fail_msg("%s: %s: relative error %.3g exceeds %g", label, what, err, tol);
}

static void check_same(const void *got, const void *want, size_t bytes, const char *label, const char *what) {
    if (memcmp(got, want, bytes)) fail_msg("%s: %s differs from the reference", label, what);
}

/* A host tensor [rows][cols] of uniform values in [-1, 1] stored as dtype. */
static sq_tensor random_tensor(sq_dtype dtype, int64_t rows, int64_t cols, uint64_t *seed) {
    sq_tensor t = {.dtype = dtype, .ndim = 2, .shape = {rows, cols}, .storage = SQ_STORAGE_HOST};
    t.nbytes = sq_tensor_bytes_for(dtype, 2, t.shape);
    assert_true(t.nbytes > 0);
    float *values = random_floats((size_t)(rows * cols), -1, 1, seed);
    t.data = malloc(t.nbytes);
    assert_non_null(t.data);
    sq_dtype_info(dtype)->from_f32(values, t.data, rows * cols);
    free(values);
    return t;
}

/* w's values rounded to dtype (a copy), or w itself when dtype is its own. */
static sq_tensor rounded_tensor(const sq_tensor *w, sq_dtype dtype) {
    if (dtype == w->dtype) return *w;
    const int64_t n = w->shape[0] * w->shape[1];
    float *values = malloc((size_t)n * sizeof *values);
    assert_non_null(values);
    sq_dtype_info(w->dtype)->to_f32(w->data, values, n);
    sq_tensor r = *w;
    r.dtype = dtype;
    r.nbytes = sq_tensor_bytes_for(dtype, 2, w->shape);
    r.data = malloc(r.nbytes);
    assert_non_null(r.data);
    sq_dtype_info(dtype)->from_f32(values, r.data, n);
    free(values);
    return r;
}

/* A weight in the backend's memory and layout, as a context uploads it. */
static sq_tensor on_device(const sq_backend *be, const sq_tensor *host) {
    sq_tensor d = *host;
    if (be->upload_weight) {
        d.data = be->alloc(be->impl, host->nbytes);
        assert_non_null(d.data);
        be->upload_weight(be->impl, d.data, host);
    } else {
        d.data = dev_copy(be, host->data, host->nbytes);
    }
    d.storage = be->host_memory ? SQ_STORAGE_HOST : SQ_STORAGE_DEVICE;
    return d;
}

/* ---------------------------------------------------------------- memory, supports */

static void check_memory(const sq_backend *be, const char *label, uint64_t *seed) {
    const size_t sizes[] = {1, 3, 64, 1000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *host = malloc(sizes[i]), *back = malloc(sizes[i]);
        for (size_t b = 0; b < sizes[i]; b++) host[b] = (unsigned char)sq_test_rand_u64(seed);
        void *a = dev_copy(be, host, sizes[i]), *c = be->alloc(be->impl, sizes[i]);
        assert_non_null(c);
        if ((uintptr_t)a % 64 || (uintptr_t)c % 64) fail_msg("%s: allocation not 64-byte aligned", label);
        be->copy(be->impl, c, a, sizes[i]);
        be->synchronize(be->impl);
        dev_read(be, back, c, sizes[i]);
        check_same(back, host, sizes[i], label, "upload, copy, download");
        be->free(be->impl, a);
        be->free(be->impl, c);
        free(host);
        free(back);
    }
    be->free(be->impl, NULL);
}

static void check_supports(const sq_backend *be, const char *label, uint64_t *seed) {
    (void)seed;
    const sq_op f32_ops[] = {SQ_OP_RMSNORM, SQ_OP_ROPE, SQ_OP_ADD, SQ_OP_ADD_BIAS, SQ_OP_SWIGLU};
    for (size_t i = 0; i < sizeof f32_ops / sizeof *f32_ops; i++)
        if (!be->supports(be->impl, f32_ops[i], SQ_DTYPE_F32))
            fail_msg("%s: op %d lacks f32", label, f32_ops[i]);
    if (!be->supports(be->impl, SQ_OP_KV_STORE, SQ_DTYPE_F32) ||
        !be->supports(be->impl, SQ_OP_ATTENTION, SQ_DTYPE_F32) ||
        !be->supports(be->impl, SQ_OP_KV_COPY, SQ_DTYPE_F32))
        fail_msg("%s: no f32 KV cache", label);
    if (strncmp(label, "cpu", 3)) return;
    /* the CPU runs every storage format and the four cache row types, and says no to the rest */
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        assert_true(be->supports(be->impl, SQ_OP_MATMUL, dt));
        assert_true(be->supports(be->impl, SQ_OP_GET_ROWS, dt));
        int kv = dt == SQ_DTYPE_F32 || dt == SQ_DTYPE_F16 || dt == SQ_DTYPE_Q8_0 || dt == SQ_DTYPE_Q4_0;
        assert_int_equal(be->supports(be->impl, SQ_OP_ATTENTION, dt), kv);
        assert_int_equal(be->supports(be->impl, SQ_OP_KV_STORE, dt), kv);
        assert_int_equal(be->supports(be->impl, SQ_OP_RMSNORM, dt), dt == SQ_DTYPE_F32);
        assert_int_equal(be->supports(be->impl, SQ_OP_ADD_ROWS, dt), dt == SQ_DTYPE_F32);
    }
    assert_false(be->supports(be->impl, SQ_OP_MATMUL, SQ_DTYPE_COUNT));
}

/* ---------------------------------------------------------------- matmul, get_rows */

static void check_matmul(const sq_backend *be, const char *label, uint64_t *seed) {
    const int tokens[] = {1, 3, 17};
    const int64_t rows[] = {1, 5, 67};
    const int64_t cols[] = {32, 288, 7, 33}; /* the last two for dense formats only */
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        if (!be->supports(be->impl, SQ_OP_MATMUL, dt)) continue;
        for (size_t t = 0; t < 3; t++)
            for (size_t r = 0; r < 3; r++)
                for (size_t c = 0; c < 4; c++) {
                    if (cols[c] % sq_dtype_info(dt)->block_elems) continue;
                    sq_tensor w = random_tensor(dt, rows[r], cols[c], seed);
                    size_t nx = (size_t)tokens[t] * cols[c], ny = (size_t)tokens[t] * rows[r];
                    float *x = random_floats(nx, -1, 1, seed), *want = malloc(ny * 4), *got = malloc(ny * 4);
                    /* the CPU's GEMV may quantize x for integer dot products, the GPU's GEMM round x and
                     * the weights to 16 bits: the oracle rounds its operands alike */
                    sq_dtype x_dtype = SQ_DTYPE_F32, w_dtype = (sq_dtype)dt;
                    if (!strcmp(be->name, "cpu"))
                        x_dtype = sq_cpu_matmul_x_dtype(sq_cpu_kernels_active(), dt, tokens[t]);
#ifdef SQ_HAVE_CUDA
                    if (!strcmp(be->name, "cuda"))
                        sq_cuda_backend_precision(dt, tokens[t], &x_dtype, &w_dtype);
#endif
                    sq_tensor w_ref = rounded_tensor(&w, w_dtype);
                    sq_ref_matmul_x(&w_ref, x_dtype, x, tokens[t], want);
                    if (w_ref.data != w.data) free(w_ref.data);
                    sq_tensor wd = on_device(be, &w);
                    float *xd = dev_copy(be, x, nx * 4), *yd = be->alloc(be->impl, ny * 4);
                    be->matmul(be->impl, &wd, xd, tokens[t], yd);
                    dev_read(be, got, yd, ny * 4);
                    char what[96];
                    snprintf(what, sizeof what, "matmul %s %d x [%lld x %lld]", sq_dtype_info(dt)->name,
                             tokens[t], (long long)rows[r], (long long)cols[c]);
                    check_rel(got, want, ny, 2e-5, label, what);
                    be->free(be->impl, wd.data);
                    be->free(be->impl, xd);
                    be->free(be->impl, yd);
                    free(w.data);
                    free(x);
                    free(want);
                    free(got);
                }
    }
}

static void check_get_rows(const sq_backend *be, const char *label, uint64_t *seed) {
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        if (!be->supports(be->impl, SQ_OP_GET_ROWS, dt)) continue;
        const int64_t cols = sq_dtype_info(dt)->block_elems > 1 ? 3 * sq_dtype_info(dt)->block_elems : 37,
                      n_src = 11;
        sq_tensor src = random_tensor(dt, n_src, cols, seed);
        for (int n_rows = 1; n_rows <= 9; n_rows += 4) {
            int32_t rows[9];
            for (int i = 0; i < n_rows; i++) rows[i] = rand_below(seed, (int)n_src); /* any order, repeats */
            float *want = malloc((size_t)n_rows * cols * 4), *got = malloc((size_t)n_rows * cols * 4);
            sq_ref_get_rows(&src, rows, n_rows, want);
            sq_tensor sd = on_device(be, &src);
            int32_t *rd = dev_copy(be, rows, sizeof rows);
            float *od = be->alloc(be->impl, (size_t)n_rows * cols * 4);
            be->get_rows(be->impl, &sd, rd, n_rows, od);
            dev_read(be, got, od, (size_t)n_rows * cols * 4);
            char what[64];
            snprintf(what, sizeof what, "get_rows %s", sq_dtype_info(dt)->name);
            check_same(got, want, (size_t)n_rows * cols * 4, label, what);
            be->free(be->impl, sd.data);
            be->free(be->impl, rd);
            be->free(be->impl, od);
            free(want);
            free(got);
        }
        free(src.data);
    }
}

/* ---------------------------------------------------------------- rmsnorm, rope, adds, swiglu */

static void check_rmsnorm(const sq_backend *be, const char *label, uint64_t *seed) {
    const int dims[] = {1, 7, 64, 289}, tokens[] = {1, 5, 9, 33}; /* 8 or more tokens run threaded */
    for (size_t d = 0; d < 4; d++)
        for (size_t t = 0; t < 4; t++) {
            size_t n = (size_t)tokens[t] * dims[d];
            float *x = random_floats(n, -3, 3, seed), *w = random_floats((size_t)dims[d], 0.5f, 1.5f, seed);
            float *want = malloc(n * 4), *got = malloc(n * 4);
            sq_ref_rmsnorm(x, w, 1e-5f, tokens[t], dims[d], want);
            float *xd = dev_copy(be, x, n * 4), *wd = dev_copy(be, w, (size_t)dims[d] * 4);
            float *od = be->alloc(be->impl, n * 4);
            be->rmsnorm(be->impl, xd, wd, 1e-5f, tokens[t], dims[d], od);
            dev_read(be, got, od, n * 4);
            check_rel(got, want, n, 1e-6, label, "rmsnorm");
            be->rmsnorm(be->impl, xd, wd, 1e-5f, tokens[t], dims[d], xd); /* in place */
            dev_read(be, got, xd, n * 4);
            check_rel(got, want, n, 1e-6, label, "rmsnorm in place");
            be->free(be->impl, xd);
            be->free(be->impl, wd);
            be->free(be->impl, od);
            free(x);
            free(w);
            free(want);
            free(got);
        }
}

static void check_rope(const sq_backend *be, const char *label, uint64_t *seed) {
    const int head_dims[] = {2, 6, 64, 128};
    /* frequencies as contexts compute them: plain theta, and llama3 scaling spanning all three bands */
    sq_model_config cfgs[2] = {
        {.rope_theta = 10000},
        {.rope_theta = 500000, .rope_scaling = {SQ_ROPE_SCALING_LLAMA3, 8.0f, 1.0f, 4.0f, 128}}};
    /* every head whole, and partial rotary (the first 3/4 rotated, as Phi-4-mini; one pair of 6) */
    for (size_t h = 0; h < 4; h++)
        for (int partial = 0; partial < 2; partial++)
            for (int c = 0; c < 2; c++)
                for (int style = 0; style < 2; style++) {
                    const int hd = head_dims[h], n_tokens = 1 + rand_below(seed, 12), nq = 3, nk = 1;
                    const int rd = partial ? (hd * 3 / 4) & ~1 : hd;
                    if (rd < 2) continue;
                    cfgs[c].head_dim = hd, cfgs[c].rope_dims = rd;
                    double inv_freq[64];
                    sq_rope_frequencies(&cfgs[c], 0, inv_freq);
                    int32_t pos[16];
                    for (int t = 0; t < n_tokens; t++) pos[t] = t == 0 ? 0 : rand_below(seed, 131072);
                    size_t nqv = (size_t)n_tokens * nq * hd, nkv = (size_t)n_tokens * nk * hd;
                    float *q = random_floats(nqv, -2, 2, seed), *k = random_floats(nkv, -2, 2, seed);
                    float *gq = malloc(nqv * 4), *gk = malloc(nkv * 4);
                    float *qd = dev_copy(be, q, nqv * 4), *kd = dev_copy(be, k, nkv * 4);
                    int32_t *pd = dev_copy(be, pos, sizeof pos);
                    double *fd = dev_copy(be, inv_freq, (size_t)(hd / 2) * sizeof *inv_freq);
                    be->rope(be->impl, qd, nq, kd, nk, n_tokens, hd, rd, pd, fd, (sq_rope_style)style);
                    dev_read(be, gq, qd, nqv * 4);
                    dev_read(be, gk, kd, nkv * 4);
                    sq_ref_rope(q, nq, n_tokens, hd, rd, pos, inv_freq, (sq_rope_style)style);
                    sq_ref_rope(k, nk, n_tokens, hd, rd, pos, inv_freq, (sq_rope_style)style);
                    char what[96];
                    snprintf(what, sizeof what, "rope %s head_dim %d rotating %d%s",
                             style ? "halves" : "interleaved", hd, rd, c ? " llama3" : "");
                    check_rel(gq, q, nqv, 1e-6, label, what);
                    check_rel(gk, k, nkv, 1e-6, label, what);
                    be->free(be->impl, qd);
                    be->free(be->impl, kd);
                    be->free(be->impl, pd);
                    be->free(be->impl, fd);
                    free(q);
                    free(k);
                    free(gq);
                    free(gk);
                }
}

static void check_adds_swiglu(const sq_backend *be, const char *label, uint64_t *seed) {
    const int tokens = 3, width = 37;
    const size_t n = (size_t)tokens * width;
    float *x = random_floats(n, -30, 30, seed), *y = random_floats(n, -2, 2, seed);
    float *bias = random_floats(width, -1, 1, seed), *got = malloc(n * 4);
    float *xd = dev_copy(be, x, n * 4), *yd = dev_copy(be, y, n * 4), *bd = dev_copy(be, bias, width * 4);

    be->add(be->impl, xd, yd, (int64_t)n);
    sq_ref_add(x, y, (int64_t)n);
    dev_read(be, got, xd, n * 4);
    check_same(got, x, n * 4, label, "add");

    be->add_bias(be->impl, xd, bd, tokens, width);
    sq_ref_add_bias(x, bias, tokens, width);
    dev_read(be, got, xd, n * 4);
    check_same(got, x, n * 4, label, "add_bias");

    float *g0 = malloc(n * 4);
    memcpy(g0, x, n * 4); /* geglu's input, before swiglu changes x */
    be->swiglu(be->impl, xd, yd, (int64_t)n);
    sq_ref_swiglu(x, y, (int64_t)n);
    dev_read(be, got, xd, n * 4);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - x[i]) <= 1e-6 * fabs((double)x[i])))
            fail_msg("%s: swiglu element %zu: %.9g, reference %.9g", label, i, got[i], x[i]);

    for (size_t i = 0; i < n; i++) g0[i] = (float)(g0[i] / 5.0); /* [-6, 6]: both tails and the middle */
    memcpy(x, g0, n * 4);
    be->upload(be->impl, xd, g0, n * 4);
    be->geglu(be->impl, xd, yd, (int64_t)n);
    sq_ref_geglu(x, y, (int64_t)n);
    dev_read(be, got, xd, n * 4);
    for (size_t i = 0; i < n; i++) {
        const double scale = fmax(fabs((double)x[i]), 1e-3 * fabs((double)g0[i] * y[i]));
        if (!(fabs((double)got[i] - x[i]) <= 1e-6 * scale))
            fail_msg("%s: geglu element %zu (x %.9g): %.9g, reference %.9g", label, i, g0[i], got[i], x[i]);
    }

    be->upload(be->impl, xd, x, n * 4); /* the same input both sides */
    be->scale(be->impl, xd, 0.37f, (int64_t)n);
    sq_ref_scale(x, 0.37f, (int64_t)n);
    dev_read(be, got, xd, n * 4);
    check_same(got, x, n * 4, label, "scale");
    free(g0);
    be->free(be->impl, xd);
    be->free(be->impl, yd);
    be->free(be->impl, bd);
    free(x);
    free(y);
    free(bias);
    free(got);
}

/* ---------------------------------------------------------------- the KV cache */

/* A host cache of n_seq sequences of up to n_slots slots in blocks of block_size, whose blocks are a random
 * permutation of the pool (never in order), filled with random rows of row_type. */
typedef struct cache {
    sq_kv_view view; /* host */
    int n_seq, n_slots;
    int32_t *table;
} cache;

static cache make_cache(int n_seq, int n_slots, int block_size, int kv_dim, sq_dtype row_type,
                        uint64_t *seed) {
    cache c = {.n_seq = n_seq, .n_slots = n_slots};
    const int max_blocks = (n_slots + block_size - 1) / block_size, n_blocks = max_blocks * n_seq;
    c.table = malloc((size_t)n_blocks * sizeof *c.table);
    for (int i = 0; i < n_blocks; i++) c.table[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = rand_below(seed, i + 1), tmp = c.table[i];
        c.table[i] = c.table[j];
        c.table[j] = tmp;
    }
    const size_t row_bytes = sq_row_bytes(row_type, kv_dim);
    const size_t pool = (size_t)n_blocks * block_size * row_bytes;
    c.view = (sq_kv_view){.k = malloc(pool),
                          .v = malloc(pool),
                          .block_table = c.table,
                          .max_blocks = max_blocks,
                          .block_size = block_size,
                          .row_bytes = row_bytes,
                          .row_type = row_type,
                          .kv_dim = kv_dim};
    const size_t n_values =
        pool / sq_dtype_info(row_type)->block_bytes * sq_dtype_info(row_type)->block_elems;
    float *values = random_floats(n_values, -1, 1, seed);
    sq_dtype_info(row_type)->from_f32(values, c.view.k, (int64_t)n_values);
    for (size_t i = 0; i < n_values; i++) values[i] = sq_test_rand_uniform(seed, -1, 1);
    sq_dtype_info(row_type)->from_f32(values, c.view.v, (int64_t)n_values);
    free(values);
    return c;
}

static size_t pool_bytes(const cache *c) {
    return (size_t)c->view.max_blocks * c->n_seq * c->view.block_size * c->view.row_bytes;
}

/* The same cache in the backend's memory. */
static sq_kv_view view_on_device(const sq_backend *be, const cache *c) {
    sq_kv_view d = c->view;
    d.k = dev_copy(be, c->view.k, pool_bytes(c));
    d.v = dev_copy(be, c->view.v, pool_bytes(c));
    d.block_table = dev_copy(be, c->table, (size_t)c->view.max_blocks * c->n_seq * sizeof *c->table);
    return d;
}

static void free_device_view(const sq_backend *be, sq_kv_view *d) {
    be->free(be->impl, d->k);
    be->free(be->impl, d->v);
    be->free(be->impl, (void *)d->block_table);
}

static void free_cache(cache *c) {
    free(c->view.k);
    free(c->view.v);
    free(c->table);
}

/* The token arrays of a batch, host side, and their device copy. */
typedef struct batch {
    int32_t f[6][64]; /* id, seq, pos, slot, n_prefix, parent */
    sq_token_batch host, dev;
} batch;

static void batch_views(batch *b, const sq_backend *be, int n) {
    b->host = (sq_token_batch){n, b->f[0], b->f[1], b->f[2], b->f[3], b->f[4], b->f[5]};
    int32_t *d = dev_copy(be, b->f, sizeof b->f);
    b->dev = (sq_token_batch){n, d, d + 64, d + 128, d + 192, d + 256, d + 320};
}

static void add_plain(batch *b, int *n, int seq, int pos) {
    int32_t v[6] = {0, seq, pos, pos, pos, -1};
    for (int k = 0; k < 6; k++) b->f[k][*n] = v[k];
    (*n)++;
}

/* Every KV row type, and row lengths for each: any for f32 and f16, whole 32-value blocks for q8_0 and q4_0.
 */
static const sq_dtype kv_row_types[] = {SQ_DTYPE_F32, SQ_DTYPE_F16, SQ_DTYPE_Q8_0, SQ_DTYPE_Q4_0};
enum { N_KV_ROW_TYPES = sizeof kv_row_types / sizeof *kv_row_types };

static void check_kv_store_copy(const sq_backend *be, const char *label, uint64_t *seed) {
    const int block_sizes[] = {1, 3, 16}, kv_dims[2][3] = {{2, 6, 128}, {32, 96, 160}};
    for (int rt = 0; rt < N_KV_ROW_TYPES; rt++)
        for (size_t bs = 0; bs < 3; bs++)
            for (size_t kd = 0; kd < 3; kd++) {
                const sq_dtype row_type = kv_row_types[rt];
                if (!be->supports(be->impl, SQ_OP_KV_STORE, row_type)) continue;
                const int kv_dim = kv_dims[sq_dtype_info(row_type)->block_elems > 1][kd];
                cache c = make_cache(3, 20, block_sizes[bs], kv_dim, row_type, seed);
                sq_kv_view dv = view_on_device(be, &c);
                /* 7 tokens at distinct random (sequence, slot) places */
                batch b;
                int n = 0;
                while (n < 7) {
                    int seq = rand_below(seed, 3), slot = rand_below(seed, 20), dup = 0;
                    for (int i = 0; i < n; i++) dup |= b.f[1][i] == seq && b.f[3][i] == slot;
                    if (!dup) add_plain(&b, &n, seq, slot);
                }
                batch_views(&b, be, n);
                float *k = random_floats((size_t)n * kv_dim, -4, 4, seed),
                      *v = random_floats((size_t)n * kv_dim, -4, 4, seed);
                float *kd_ = dev_copy(be, k, (size_t)n * kv_dim * 4),
                      *vd = dev_copy(be, v, (size_t)n * kv_dim * 4);
                be->kv_store(be->impl, &dv, kd_, vd, &b.dev);
                sq_ref_kv_store(&c.view, k, v, &b.host);
                unsigned char *got = malloc(pool_bytes(&c));
                dev_read(be, got, dv.k, pool_bytes(&c));
                char what[64];
                snprintf(what, sizeof what, "kv_store %s keys", sq_dtype_info(row_type)->name);
                check_same(got, c.view.k, pool_bytes(&c), label, what);
                dev_read(be, got, dv.v, pool_bytes(&c));
                snprintf(what, sizeof what, "kv_store %s values", sq_dtype_info(row_type)->name);
                check_same(got, c.view.v, pool_bytes(&c), label, what);
                /* keep a path: rows move down to ascending slots of sequence 1 */
                int32_t src[4] = {3, 9, 10, 17}, dst[4] = {3, 4, 5, 6};
                int32_t *sd = dev_copy(be, src, sizeof src), *dd = dev_copy(be, dst, sizeof dst);
                be->kv_copy(be->impl, &dv, 1, sd, dd, 4);
                sq_ref_kv_copy(&c.view, 1, src, dst, 4);
                dev_read(be, got, dv.k, pool_bytes(&c));
                check_same(got, c.view.k, pool_bytes(&c), label, "kv_copy keys");
                dev_read(be, got, dv.v, pool_bytes(&c));
                check_same(got, c.view.v, pool_bytes(&c), label, "kv_copy values");
                be->free(be->impl, sd);
                be->free(be->impl, dd);
                be->free(be->impl, kd_);
                be->free(be->impl, vd);
                be->free(be->impl, (void *)b.dev.id);
                free(got);
                free(k);
                free(v);
                free_device_view(be, &dv);
                free_cache(&c);
            }
}

/* ---------------------------------------------------------------- attention */

typedef struct tree {
    int n;
    int parent[12]; /* within the tree, -1: a root */
} tree;

static tree random_tree(int n, uint64_t *seed) {
    tree t = {.n = n};
    for (int j = 0; j < n; j++) t.parent[j] = j == 0 ? -1 : rand_below(seed, j + 1) - 1;
    return t;
}

static int depth(const tree *t, int j) { return t->parent[j] < 0 ? 0 : 1 + depth(t, t->parent[j]); }

static int is_ancestor_or_self(const tree *t, int a, int j) {
    for (; j >= 0; j = t->parent[j])
        if (j == a) return 1;
    return 0;
}

/* A batch over three sequences: sequence 0 decodes one token after a long prefix, sequence 1 runs a prefill
 * chunk after a short one, sequence 2 a token tree after its prefix; the tokens are interleaved, as any
 * order of sequences is valid. explicit_mask gets the tree's visibility worked out from its own definition
 * (cached slots, ancestors by walking parents, positions by depth): [n][n_slots]. */
static int mixed_batch(batch *b, int window, int n_slots, const tree *tr, unsigned char *explicit_mask,
                       uint64_t *seed) {
    int n = 0;
    const int p0 = 29 + rand_below(seed, 8), p1 = rand_below(seed, 4), n1 = 9, p2 = 5 + rand_below(seed, 10);
    add_plain(b, &n, 0, p0);
    for (int j = 0; j < n1; j++) add_plain(b, &n, 1, p1 + j);
    const int first = n;
    for (int j = 0; j < tr->n; j++) {
        int32_t v[6] = {0, 2, p2 + depth(tr, j), p2 + j, p2, tr->parent[j] < 0 ? -1 : first + tr->parent[j]};
        for (int k = 0; k < 6; k++) b->f[k][n] = v[k];
        n++;
    }
    memset(explicit_mask, 0, (size_t)n * n_slots);
    for (int t = 0; t < n; t++) {
        unsigned char *row = explicit_mask + (size_t)t * n_slots;
        const int pos = b->f[2][t];
        for (int s = 0; s < n_slots; s++) {
            int visible, s_pos;
            if (t < first) { /* plain: every slot up to its own, which hold their positions */
                visible = s <= pos;
                s_pos = s;
            } else if (s < p2) { /* tree node: the cached prefix... */
                visible = 1;
                s_pos = s;
            } else { /* ...and its ancestors and itself */
                const int j = t - first, a = s - p2;
                visible = a < tr->n && is_ancestor_or_self(tr, a, j);
                s_pos = a < tr->n ? p2 + depth(tr, a) : 0;
            }
            row[s] = visible && (!window || pos - s_pos < window);
        }
    }
    return n;
}

static void check_attention(const sq_backend *be, const char *label, uint64_t *seed) {
    /* block formats: heads of 16 and 48 values share 32-value blocks with their neighbours */
    const int head_dims[2][4] = {{2, 6, 64, 128}, {16, 48, 64, 128}}, block_sizes[] = {1, 5, 16},
              windows[] = {0, 7};
    const int heads[][2] = {{1, 1}, {4, 4}, {6, 2}, {8, 1}, {6, 3}};
    const int n_slots = 48;
    for (int rt = 0; rt < N_KV_ROW_TYPES; rt++)
        for (size_t h = 0; h < 4; h++)
            for (size_t g = 0; g < 5; g++)
                for (size_t w = 0; w < 2; w++) {
                    const sq_dtype row_type = kv_row_types[rt];
                    if (!be->supports(be->impl, SQ_OP_ATTENTION, row_type)) continue;
                    const int hd = head_dims[sq_dtype_info(row_type)->block_elems > 1][h], nh = heads[g][0],
                              nkv = heads[g][1];
                    if (!sq_row_bytes(row_type, (int64_t)nkv * hd)) continue; /* not whole blocks */
                    const int bs = block_sizes[(h + g) % 3], window = windows[w];
                    /* Gemma 2's score soft-capping on half the cases, where the backend takes it */
                    const float softcap = be->attn_softcap && (h + g + w) % 2 ? 5.0f : 0.0f;
                    cache c = make_cache(3, n_slots, bs, nkv * hd, row_type, seed);
                    sq_kv_view dv = view_on_device(be, &c);
                    tree tr = random_tree(3 + rand_below(seed, 9), seed);
                    batch b;
                    unsigned char *mask = malloc((size_t)64 * n_slots),
                                  *derived = malloc((size_t)64 * n_slots);
                    const int n = mixed_batch(&b, window, n_slots, &tr, mask, seed);
                    batch_views(&b, be, n);
                    sq_ref_attention_mask(&b.host, window, n_slots, derived);
                    check_same(derived, mask, (size_t)n * n_slots, label,
                               "the reference's mask of a token batch");
                    const size_t nq = (size_t)n * nh * hd;
                    float *q = random_floats(nq, -2, 2, seed), *want = malloc(nq * 4), *got = malloc(nq * 4);
                    sq_ref_attention_masked(q, &c.view, b.host.seq, n, nh, nkv, hd, softcap, mask, n_slots,
                                            want);
                    float *qd = dev_copy(be, q, nq * 4), *od = be->alloc(be->impl, nq * 4);
                    be->attention(be->impl, &(sq_attention_args){.q = qd,
                                                                 .kv = dv,
                                                                 .tokens = &b.dev,
                                                                 .n_heads = nh,
                                                                 .n_kv_heads = nkv,
                                                                 .head_dim = hd,
                                                                 .window = window,
                                                                 .softcap = softcap,
                                                                 .out = od});
                    dev_read(be, got, od, nq * 4);
                    char what[128];
                    snprintf(
                        what, sizeof what,
                        "attention %s rows, head_dim %d, %d/%d heads, blocks of %d, window %d, tree of %d, "
                        "softcap %g",
                        sq_dtype_info(row_type)->name, hd, nh, nkv, bs, window, tr.n, softcap);
                    check_rel(got, want, nq, 2e-6, label, what);
                    be->free(be->impl, qd);
                    be->free(be->impl, od);
                    be->free(be->impl, (void *)b.dev.id);
                    free(q);
                    free(want);
                    free(got);
                    free(mask);
                    free(derived);
                    free_device_view(be, &dv);
                    free_cache(&c);
                }
}

/* add_rows (mixture-of-experts outputs into their tokens' rows): rows distinct and out of order, a row set
 * twice over two calls, none at all; both sides round s * y[c] then the sum (the CPU may fuse them into one
 * rounding), so the bound is 2 ulp of |x| + |s y| per element. Backends without it (supports) are skipped. */
static void check_add_rows(const sq_backend *be, const char *label, uint64_t *seed) {
    if (!be->supports(be->impl, SQ_OP_ADD_ROWS, SQ_DTYPE_F32)) {
        print_message("%s: no add_rows, skipped\n", label);
        return;
    }
    const int n = 7, width = 37;
    const int32_t rows[][4] = {{5, 0, 3, 6}, {6, 1, 2, 4}};
    const int n_rows[] = {4, 3}; /* the second call uses 6, 1, 2 */
    float *x = random_floats((size_t)n * width, -3, 3, seed), *got = malloc((size_t)n * width * 4);
    float *xd = dev_copy(be, x, (size_t)n * width * 4);
    for (int call = 0; call < 3; call++) {
        const int k = call < 2 ? n_rows[call] : 0;
        const int32_t *r = rows[call < 2 ? call : 0];
        float *y = random_floats((size_t)4 * width, -2, 2, seed), *s = random_floats(4, 0, 1, seed);
        float *before = malloc((size_t)n * width * 4);
        memcpy(before, x, (size_t)n * width * 4);
        be->upload(be->impl, xd, x, (size_t)n * width * 4); /* the same input both sides */
        float *yd = dev_copy(be, y, (size_t)4 * width * 4), *sd = dev_copy(be, s, 16);
        int32_t *rd = dev_copy(be, r, 16);
        be->add_rows(be->impl, xd, yd, rd, sd, k, width);
        sq_ref_add_rows(x, y, r, s, k, width);
        dev_read(be, got, xd, (size_t)n * width * 4);
        for (int t = 0; t < n; t++)
            for (int c = 0; c < width; c++) {
                const size_t i = (size_t)t * width + c;
                double scale = fabs((double)before[i]);
                for (int j = 0; j < k; j++)
                    if (r[j] == t) scale += fabs((double)s[j] * y[(size_t)j * width + c]);
                if (!(fabs((double)got[i] - x[i]) <= 2.4e-7 * scale))
                    fail_msg("%s: add_rows call %d row %d col %d: %.9g, reference %.9g", label, call, t, c,
                             got[i], x[i]);
            }
        be->free(be->impl, yd);
        be->free(be->impl, sd);
        be->free(be->impl, rd);
        free(y);
        free(s);
        free(before);
    }
    be->free(be->impl, xd);
    free(x);
    free(got);
}

/* ---------------------------------------------------------------- the tests */

static void test_memory(void **state) {
    (void)state;
    for_each_backend(check_memory);
    for_each_backend(check_supports);
}
static void test_matmul(void **state) {
    (void)state;
    for_each_backend(check_matmul);
}
static void test_get_rows(void **state) {
    (void)state;
    for_each_backend(check_get_rows);
}
static void test_rmsnorm(void **state) {
    (void)state;
    for_each_backend(check_rmsnorm);
}
static void test_rope(void **state) {
    (void)state;
    for_each_backend(check_rope);
}
static void test_adds_swiglu(void **state) {
    (void)state;
    for_each_backend(check_adds_swiglu);
}
static void test_kv_store_copy(void **state) {
    (void)state;
    for_each_backend(check_kv_store_copy);
}
static void test_attention(void **state) {
    (void)state;
    for_each_backend(check_attention);
}
static void test_add_rows(void **state) {
    (void)state;
    for_each_backend(check_add_rows);
}

/* The log-prob row kernels run on host logits (evaluation), on the CPU only. */
static void test_logprob_rows(void **state) {
    (void)state;
    uint64_t seed = 5;
    const int lengths[] = {1, 2, 3, 4, 5, 7, 8, 33, 1000, 32000};
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
        const int n = lengths[l];
        float *z = random_floats((size_t)n, -20, 20, &seed), *zr = random_floats((size_t)n, -20, 20, &seed);
        double lse = sq_logsumexp(z, n), want = sq_ref_logsumexp(z, n);
        if (!(fabs(lse - want) <= 1e-12 * fabs(want)))
            fail_msg("logsumexp of %d: %.17g, reference %.17g", n, lse, want);
        double kl = sq_kl_row(zr, sq_logsumexp(zr, n), z, lse, n), kl_want = sq_ref_kl(zr, z, n);
        if (!(fabs(kl - kl_want) <= 1e-12 * fabs(kl_want) + 1e-13))
            fail_msg("KL of %d: %.17g, reference %.17g", n, kl, kl_want);
        assert_true(fabs(sq_kl_row(z, lse, z, lse, n)) < 1e-13); /* a distribution against itself */
        int best = sq_argmax(z, n);
        for (int i = 0; i < n; i++)
            if (z[i] > z[best] || (z[i] == z[best] && i < best))
                fail_msg("argmax of %d: %d, not the first largest", n, best);
        free(z);
        free(zr);
    }
    float ties[5] = {1, 3, 3, -1, 3};
    assert_int_equal(sq_argmax(ties, 5), 1);
}

static void test_unknown_device(void **state) {
    (void)state;
    sq_backend be;
    sq_test_fails_with(sq_backend_create("tpu9", 1, &be),
                       "unknown device 'tpu9' (this build has: cpu, cuda)");
    sq_test_ok(sq_backend_create(NULL, 1, &be));
    assert_string_equal(be.name, "cpu");
    sq_backend_destroy(&be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_get_rows),      cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),          cmocka_unit_test(test_adds_swiglu),
        cmocka_unit_test(test_kv_store_copy), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_logprob_rows),  cmocka_unit_test(test_unknown_device),
        cmocka_unit_test(test_add_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
