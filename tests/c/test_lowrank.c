/* Low-rank linear weights (model.h's sq_layer.lr_a / lr_b; squeeze.h SQ_PRUNE_LOWRANK, SQ_PRUNE_ASVD):
 *  - the factorised matmul: a block whose linear weights are random factors B [out][r], A [r][in] computes
 *    what the same block with the dense product W = B A (formed in double here) computes, logits within
 *    2e-5 of the largest (two float matmuls against one, the product rounded once to f32; seen: 1.3e-6);
 *  - every linear weight of stories260K factorised at full rank gives the dense model's logits within 2e-5 of
 *    the largest (seen: 2.4e-6), the same argmax; the factorised model saves as GGUF and reads back to
 * identical logits, and sq_layer_info reports each rank;
 *  - the rank budget: ranks never exceed the budget, every weight keeps rank >= 1 or stays dense, weights
 *    that save nothing stay dense, and no unused singular value would still fit (greedy is maximal);
 *  - sq_prune lowrank on stories260K at a parameter ratio keeps at most that share of the linear weights'
 *    parameters and within one weight's rank step of it; the rank-ratio form keeps round(R min(out, in));
 *    ASVD (calibrated on random ids) keeps to the budget and gives finite logits;
 *  - refusals before any change: ratios out of range, both or neither, a budget below rank 1 everywhere,
 *    ASVD without calibration, block-format weights; other methods, Hugging Face / llama2.c export, LoRA on
 *    a low-rank model; the binder rejects half a pair or a pair beside the dense weight.
 * The SVD against numpy (Eckart-Young, ASVD's weighted error, outlier channels) is tests/py/test_lowrank.py.
 */
#include <math.h>

#include "compress/prune/prune.h"
#include "test_formats_util.h"

static const char *stories260k(void) { return sq_test_shared("models/stories260K.bin"); }

static float *read_all(const sq_model *m, const char *name, int64_t *rows, int64_t *cols) {
    sq_tensor_info ti;
    sq_model_tensor_info(m, sq_model_tensor_index(m, name), &ti);
    *rows = ti.shape[0], *cols = ti.shape[1];
    float *v = malloc((size_t)(*rows * *cols) * sizeof *v);
    sq_test_ok(sq_model_read_tensor(m, name, v, *rows * *cols));
    return v;
}

static void random_ids(int32_t *ids, int n, int vocab, uint64_t seed) {
    ids[0] = 1;
    for (int i = 1; i < n; i++) ids[i] = 3 + (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)(vocab - 3));
}

static void linear_name(char *out, size_t n, int l, int i, const char *suffix) {
    snprintf(out, n, "blk.%d.%s.%s", l, sq_linear_names[i], suffix);
}

/* Replaces linear i of block l by factors a [r][cols], b [rows][r] (f32). */
static SQ_NODISCARD sq_error *put_factors(sq_model *m, int l, int i, int64_t rows, int64_t cols, int r,
                                          const float *a, const float *b) {
    char dense[64], na[64], nb[64];
    linear_name(dense, sizeof dense, l, i, "weight");
    linear_name(na, sizeof na, l, i, "weight_a");
    linear_name(nb, sizeof nb, l, i, "weight_b");
    const sq_tensor_edit e[3] = {
        {.name = dense, .remove = 1},
        {.name = na, .dtype = "f32", .ndim = 2, .shape = {r, cols}, .values = a},
        {.name = nb, .dtype = "f32", .ndim = 2, .shape = {rows, r}, .values = b},
    };
    return sq_model_edit_tensors(m, e, 3);
}

/* ---------------------------------------------------------------- the factorised matmul */

static void test_factorised_matmul(void **state) {
    (void)state;
    static const tiny_spec spec = {"llama", 40,           2, 4, 2, 10, 56,
                                   90,      SQ_DTYPE_F32, 0, 0, 0, 0,  SQ_ROPE_INTERLEAVED};
    sq_model *lr = tiny_model(&spec, 11), *dense = tiny_model(&spec, 11);
    uint64_t seed = 77;
    const int ranks[SQ_N_LINEAR] = {3, 7, 1, 9, 13, 5, 17}; /* awkward, none a multiple of a SIMD width */
    for (int l = 0; l < spec.n_layers; l++)
        for (int i = 0; i < SQ_N_LINEAR; i++) {
            int64_t rows, cols;
            sq_layer_linear_shape(&lr->layers[l], (sq_linear)i, &rows, &cols);
            const int r = ranks[i] + l;
            float *a = malloc((size_t)(r * cols) * sizeof *a), *b = malloc((size_t)(rows * r) * sizeof *b),
                  *w = malloc((size_t)(rows * cols) * sizeof *w);
            for (int64_t k = 0; k < r * cols; k++) a[k] = sq_test_rand_uniform(&seed, -1, 1);
            for (int64_t k = 0; k < rows * r; k++)
                b[k] = sq_test_rand_uniform(&seed, -1, 1) / sqrtf((float)r);
            for (int64_t y = 0; y < rows; y++)
                for (int64_t x = 0; x < cols; x++) {
                    double s = 0;
                    for (int k = 0; k < r; k++) s += (double)b[y * r + k] * a[k * cols + x];
                    w[y * cols + x] = (float)s;
                }
            sq_test_ok(put_factors(lr, l, i, rows, cols, r, a, b));
            char name[64];
            linear_name(name, sizeof name, l, i, "weight");
            sq_test_ok(sq_model_edit_tensors(dense, &(sq_tensor_edit){.name = name, .values = w}, 1));
            free(a), free(b), free(w);
        }
    sq_layer_info li;
    sq_test_ok(sq_model_layer_info(lr, 1, &li));
    for (int i = 0; i < SQ_N_LINEAR; i++) assert_int_equal(li.lowrank_rank[i], ranks[i] + 1);
    enum { N = 21 };
    int32_t ids[N];
    random_ids(ids, N, spec.vocab, 4);
    float *x = sq_test_logits(dense, ids, N, NULL), *y = sq_test_logits(lr, ids, N, NULL);
    sq_test_check_logits(y, x, N, spec.vocab, 2e-5, "factorised vs the dense product");
    free(x), free(y);
    sq_model_free(lr), sq_model_free(dense);
}

/* ---------------------------------------------------------------- full rank on a real model */

static void test_full_rank_equals_dense(void **state) {
    (void)state;
    sq_model *orig, *lr, *back;
    sq_test_ok(sq_model_load(stories260k(), NULL, &orig));
    sq_test_ok(sq_model_load(stories260k(), NULL, &lr));
    for (int l = 0; l < orig->cfg.n_layers; l++)
        for (int i = 0; i < SQ_N_LINEAR; i++) {
            char name[64];
            linear_name(name, sizeof name, l, i, "weight");
            int64_t rows, cols;
            float *w = read_all(orig, name, &rows, &cols);
            const int k = (int)(rows < cols ? rows : cols);
            float *a = malloc((size_t)(k * cols) * sizeof *a), *b = malloc((size_t)(rows * k) * sizeof *b);
            double *sigma = malloc((size_t)k * sizeof *sigma);
            sq_test_ok(sq_lowrank_svd(w, rows, cols, NULL, k, sigma, a, b));
            for (int j = 1; j < k; j++) assert_true(sigma[j] <= sigma[j - 1]);
            sq_test_ok(put_factors(lr, l, i, rows, cols, k, a, b));
            free(w), free(a), free(b), free(sigma);
        }
    assert_true(sq_model_has_lowrank(lr));
    sq_layer_info li;
    sq_test_ok(sq_model_layer_info(lr, 0, &li));
    assert_int_equal(li.lowrank_rank[SQ_LINEAR_DOWN], 64); /* ffn_down [64][172] */
    enum { N = 33 };
    int32_t ids[N];
    random_ids(ids, N, 512, 8);
    float *x = sq_test_logits(orig, ids, N, NULL), *y = sq_test_logits(lr, ids, N, NULL);
    sq_test_check_logits(y, x, N, 512, 2e-5, "full-rank factors vs dense");
    /* GGUF holds the factors: the same logits after a save and load */
    sq_test_ok(sq_model_save(lr, sq_test_work("lowrank-full.gguf"), SQ_FORMAT_GGUF));
    sq_test_ok(load_plain(sq_test_work("lowrank-full.gguf"), &back));
    float *z = sq_test_logits(back, ids, N, NULL);
    assert_memory_equal(y, z, (size_t)N * 512 * sizeof *y);
    /* formats and methods that cannot take them say so */
    sq_test_fails_with(sq_model_save(lr, sq_test_work("lowrank-full-hf"), SQ_FORMAT_SAFETENSORS),
                       "no low-rank (factorised) linear layers");
    sq_test_fails_with(sq_model_save(lr, sq_test_work("lowrank-full.bin"), SQ_FORMAT_LLAMA2C),
                       "it has no low-rank (factorised) weights");
    sq_test_fails_with(sq_prune_check(lr, &(sq_prune_options){.method = SQ_PRUNE_MAGNITUDE, .sparsity = 0.5}),
                       "already has low-rank");
    sq_test_fails_with(sq_prune_check(lr, &(sq_prune_options){.method = SQ_PRUNE_LOWRANK, .rank_ratio = 0.5}),
                       "already has low-rank");
    sq_test_fails_with(
        sq_quantize_model(lr, &(sq_quantize_params){.type = "q8_0", .method = "gptq"}, NULL, NULL, NULL),
        "has low-rank factors");
    free(x), free(y), free(z);
    sq_model_free(orig), sq_model_free(lr), sq_model_free(back);
}

/* ---------------------------------------------------------------- binding */

static void test_bind_refuses_half_pairs(void **state) {
    (void)state;
    static const tiny_spec spec = {"llama", 32,           1, 4, 4, 8, 48,
                                   40,      SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    sq_model *m = tiny_model(&spec, 3);
    float a[4 * 32] = {0}, b[48 * 4] = {0};
    /* a factor beside the dense weight */
    sq_test_fails_with(
        sq_model_edit_tensors(
            m,
            &(sq_tensor_edit){
                .name = "blk.0.ffn_up.weight_a", .dtype = "f32", .ndim = 2, .shape = {4, 32}, .values = a},
            1),
        "only one of its low-rank factors");
    const sq_tensor_edit both[3] = {
        {.name = "blk.0.ffn_up.weight_a", .dtype = "f32", .ndim = 2, .shape = {4, 32}, .values = a},
        {.name = "blk.0.ffn_up.weight_b", .dtype = "f32", .ndim = 2, .shape = {48, 4}, .values = b}};
    sq_test_fails_with(sq_model_edit_tensors(m, both, 2), "both dense and as low-rank factors");
    /* ranks that disagree */
    const sq_tensor_edit bad[3] = {
        {.name = "blk.0.ffn_up.weight", .remove = 1},
        {.name = "blk.0.ffn_up.weight_a", .dtype = "f32", .ndim = 2, .shape = {4, 32}, .values = a},
        {.name = "blk.0.ffn_up.weight_b", .dtype = "f32", .ndim = 2, .shape = {48, 3}, .values = b}};
    sq_test_fails_with(sq_model_edit_tensors(m, bad, 3), "blk.0.ffn_up.weight_b has shape [48,3]");
    assert_false(sq_model_has_lowrank(m));
    sq_model_free(m);
}

/* ---------------------------------------------------------------- ranks under a budget */

static int64_t cost(int64_t rows, int64_t cols, int r) { return r ? r * (rows + cols) : rows * cols; }

static void test_choose_ranks(void **state) {
    (void)state;
    uint64_t seed = 5;
    enum { N = 9 };
    const int64_t rows[N] = {17, 40, 3, 64, 33, 8, 100, 5, 29}, cols[N] = {23, 40, 200, 12, 70, 8, 37, 5, 64};
    double *sigma[N];
    int64_t dense = 0, least = 0;
    for (int i = 0; i < N; i++) {
        const int64_t k = rows[i] < cols[i] ? rows[i] : cols[i];
        sigma[i] = malloc((size_t)k * sizeof *sigma[i]);
        double s = 1 + 10 * sq_test_rand_uniform(&seed, 0, 1);
        for (int64_t j = 0; j < k; j++) sigma[i][j] = s *= sq_test_rand_uniform(&seed, 0.5, 1);
        dense += rows[i] * cols[i];
        least += (rows[i] + cols[i] < rows[i] * cols[i]) ? rows[i] + cols[i] : rows[i] * cols[i];
    }
    for (double ratio = 0.25; ratio < 1; ratio += 0.15) {
        const int64_t budget = (int64_t)(ratio * (double)dense);
        int rank[N];
        assert_int_equal(sq_lowrank_choose_ranks(N, rows, cols, (const double *const *)sigma, budget, rank),
                         0);
        int64_t used = 0;
        for (int i = 0; i < N; i++) {
            const int64_t k = rows[i] < cols[i] ? rows[i] : cols[i];
            assert_true(rank[i] >= 0 && rank[i] < k);
            if (rank[i]) assert_true(rank[i] * (rows[i] + cols[i]) < rows[i] * cols[i]); /* it saves */
            if (rows[i] + cols[i] >= rows[i] * cols[i]) assert_int_equal(rank[i], 0);    /* 8x8, 5x5 */
            used += cost(rows[i], cols[i], rank[i]);
        }
        assert_true(used <= budget);
        assert_true(used >= least);
        /* maximal: no factorised weight could take one more singular value within the budget */
        for (int i = 0; i < N; i++) {
            if (!rank[i]) continue;
            const int next = (rank[i] + 1) * (rows[i] + cols[i]) < rows[i] * cols[i] ? rank[i] + 1 : 0;
            assert_true(used - cost(rows[i], cols[i], rank[i]) + cost(rows[i], cols[i], next) > budget);
        }
    }
    for (int i = 0; i < N; i++) free(sigma[i]);
}

/* ---------------------------------------------------------------- sq_prune */

/* Every block linear's rank (0: dense) and shape, in block order; returns the parameters they hold. */
static int64_t linear_facts(const sq_model *m, int *rank, int64_t *rows, int64_t *cols) {
    int64_t n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        sq_layer_info li;
        sq_test_ok(sq_model_layer_info(m, l, &li));
        for (int i = 0, q = l * SQ_N_LINEAR; i < SQ_N_LINEAR; i++, q++) {
            sq_layer_linear_shape(&m->layers[l], (sq_linear)i, &rows[q], &cols[q]);
            rank[q] = li.lowrank_rank[i];
            n += rank[q] ? rank[q] * (rows[q] + cols[q]) : rows[q] * cols[q];
        }
    }
    return n;
}

static void test_prune_lowrank(void **state) {
    (void)state;
    enum { N = 5 * SQ_N_LINEAR }; /* stories260K's */
    int rank[N];
    int64_t rows[N], cols[N];
    sq_model *m;
    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    const int64_t before = linear_facts(m, rank, rows, cols);
    sq_prune_result r;
    sq_test_ok(sq_prune(m, &(sq_prune_options){.method = SQ_PRUNE_LOWRANK, .param_ratio = 0.7}, &r));
    const int64_t after = linear_facts(m, rank, rows, cols);
    assert_true(after <= (int64_t)(0.7 * (double)before));
    assert_true(after >= (int64_t)(0.7 * (double)before) - (64 + 172)); /* within one rank step */
    assert_true(r.n_factorised > 0);
    assert_int_equal(r.params_before - r.params_after, before - after);
    sq_prune_result_free(&r);
    sq_model_free(m);

    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    sq_test_ok(sq_prune(m, &(sq_prune_options){.method = SQ_PRUNE_LOWRANK, .rank_ratio = 0.3}, &r));
    linear_facts(m, rank, rows, cols);
    for (int q = 0; q < N; q++) {
        const int want = (int)lround(0.3 * (double)(rows[q] < cols[q] ? rows[q] : cols[q]));
        assert_int_equal(rank[q], want * (rows[q] + cols[q]) < rows[q] * cols[q] ? want : 0);
    }
    assert_int_equal(r.n_factorised, N);
    sq_prune_result_free(&r);
    sq_model_free(m);

    /* ASVD, calibrated on random ids (stories260K has no tokenizer): the same budget, a model that runs */
    enum { LEN = 32, N_SAMPLES = 4 };
    int32_t ids[LEN * N_SAMPLES];
    random_ids(ids, LEN * N_SAMPLES, 512, 21);
    sq_calib_samples calib;
    sq_test_ok(sq_calib_samples_from_ids(ids, N_SAMPLES, LEN, &calib));
    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    sq_test_ok(sq_prune(
        m,
        &(sq_prune_options){.method = SQ_PRUNE_ASVD, .param_ratio = 0.7, .asvd_alpha = 0.5, .calib = &calib},
        &r));
    const int64_t asvd = linear_facts(m, rank, rows, cols);
    assert_true(asvd <= (int64_t)(0.7 * (double)before) && r.n_factorised > 0);
    float *logits = sq_test_logits(m, ids, LEN, NULL);
    for (int k = 0; k < LEN * 512; k++) assert_true(isfinite(logits[k]));
    free(logits);
    sq_prune_result_free(&r);
    sq_calib_samples_free(&calib);
    sq_model_free(m);
}

static void test_refused(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(stories260k(), NULL, &m));
    const sq_prune_method lr = SQ_PRUNE_LOWRANK;
    const struct {
        sq_prune_options o;
        const char *needle;
    } cases[] = {
        {{.method = lr}, "one of a rank ratio and a parameter ratio"},
        {{.method = lr, .rank_ratio = 0.5, .param_ratio = 0.5}, "one of a rank ratio and a parameter ratio"},
        {{.method = lr, .rank_ratio = 1.5}, "rank ratio 1.5 is outside (0, 1]"},
        {{.method = lr, .rank_ratio = -0.5}, "outside (0, 1]"},
        {{.method = lr, .rank_ratio = NAN}, "outside (0, 1]"},
        {{.method = lr, .param_ratio = 1}, "parameter ratio 1 is outside (0, 1)"},
        {{.method = lr, .param_ratio = 0.01}, "what rank 1 in every linear weight keeps"},
        {{.method = SQ_PRUNE_ASVD, .param_ratio = 0.5}, "ASVD needs calibration samples"},
        {{.method = SQ_PRUNE_ASVD, .rank_ratio = 0.5, .asvd_alpha = 5}, "alpha 5 is outside"},
    };
    const int n_tensors = sq_model_n_tensors(m);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sq_prune_result r;
        sq_test_fails_with(sq_prune(m, &cases[c].o, &r), cases[c].needle);
        assert_int_equal(sq_model_n_tensors(m), n_tensors);
        assert_false(sq_model_has_lowrank(m));
    }
    sq_model_free(m);
    static const tiny_spec q8 = {
        "llama", 64, 1, 4, 2, 16, 96, 70, SQ_DTYPE_Q8_0, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    m = tiny_model(&q8, 9);
    sq_test_fails_with(sq_prune_check(m, &(sq_prune_options){.method = lr, .rank_ratio = 0.5}),
                       "blk.0.attn_q.weight is q8_0");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factorised_matmul),       cmocka_unit_test(test_full_rank_equals_dense),
        cmocka_unit_test(test_bind_refuses_half_pairs), cmocka_unit_test(test_choose_ranks),
        cmocka_unit_test(test_prune_lowrank),           cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
