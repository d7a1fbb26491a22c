/* The 2:4 sparse formats end to end on stories260K (rows of 64 and, ffn_down, 172 values): magnitude 2:4
 * pruning, then squeeze quantize --type sparse24_q8 | sparse24_q4 | sparse24_f16 stores the blocks' matrices
 * in that format (ffn_down, whose rows are not whole blocks of 32, and the tensors outside the blocks in the
 * dense counterpart), zero exactly where the pruned model is, f16 values equal to the pruned weights rounded
 * to f16; and the model's logits, through the sparse kernels of the set under test (one token at a time: the
 * GEMV; three: the few-token GEMV; all 24: the prefill GEMM path), equal those of the same model with every
 * tensor replaced by its reference dequantization in f32 (the dense f32 kernels). Both sum fp32 products
 * in different orders: each dot product of n <= 512 terms within n 2^-24 sum|w x| (3e-5 of it), grown over 5
 * blocks, so 1e-4 of the largest logit, and the same argmax. Requests the formats cannot serve (a model that
 * is not 2:4; a keep rule naming a matrix that is not) are refused naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "testlib.h"

enum { N_TOKENS = 24 };
#define LOGIT_TOL 1e-4

static sq_model *load_pruned(int prune) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_prune_result r = {0};
    if (prune)
        sq_test_ok(sq_prune(m, &(sq_prune_options){.method = SQ_PRUNE_MAGNITUDE, .nm_n = 2, .nm_m = 4}, &r));
    sq_prune_result_free(&r);
    return m;
}

static const char *type_of(const sq_quantize_report *r, const char *name) {
    for (int i = 0; i < r->n_tensors; i++)
        if (!strcmp(r->tensors[i].name, name)) return r->tensors[i].type;
    fail_msg("no tensor %s in the report", name);
}

/* The logits of N_TOKENS fixed random tokens fed `chunk` at a time, [N_TOKENS][vocab]. */
static float *logits_in_chunks(const sq_model *m, int chunk) {
    sq_model_info info;
    sq_model_get_info(m, &info);
    int32_t ids[N_TOKENS];
    uint64_t seed = 7;
    for (int i = 0; i < N_TOKENS; i++)
        ids[i] = (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)info.vocab_size);
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = N_TOKENS, .n_threads = 1}, &ctx));
    float *logits = malloc((size_t)N_TOKENS * info.vocab_size * sizeof *logits);
    assert_non_null(logits);
    for (int t = 0; t < N_TOKENS; t += chunk) {
        const int n = N_TOKENS - t < chunk ? N_TOKENS - t : chunk;
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = ids + t,
                          .n_tokens = n,
                          .logits_mode = SQ_LOGITS_ALL,
                          .logits = logits + (size_t)t * info.vocab_size};
        sq_test_ok(sq_forward(ctx, &b, 1));
    }
    sq_context_free(ctx);
    return logits;
}

static void check_format(const char *type, const char *dense) {
    sq_model *pruned = load_pruned(1), *sparse = load_pruned(1), *ref = load_pruned(1);
    sq_quantize_report *r;
    sq_test_ok(
        sq_quantize_model(sparse, &(sq_quantize_params){.type = type, .n_threads = 1}, NULL, NULL, &r));
    assert_string_equal(type_of(r, "blk.0.attn_q.weight"), type);
    assert_string_equal(type_of(r, "blk.4.ffn_up.weight"), type);
    assert_string_equal(type_of(r, "token_embd.weight"), dense);
    /* rows of 172: no whole blocks of 32, nor of the dense counterpart's (but f16's) */
    assert_string_equal(type_of(r, "blk.0.ffn_down.weight"), "f16");
    assert_true(r->bytes_after < r->bytes_before);

    /* ref: every tensor of `sparse` dequantized by its format's reference, stored as f32 */
    const int is_f16 = !strcmp(type, "sparse24_f16");
    for (int i = 0; i < sq_model_n_tensors(sparse); i++) {
        sq_tensor_info t;
        sq_model_tensor_info(sparse, i, &t);
        if (t.ndim < 2) continue;
        int64_t n = 1;
        for (int d = 0; d < t.ndim; d++) n *= t.shape[d];
        float *w = malloc((size_t)n * sizeof *w), *p = malloc((size_t)n * sizeof *p);
        assert_true(w && p);
        sq_test_ok(sq_model_read_tensor(sparse, t.name, w, n));
        if (!strcmp(t.dtype, type)) { /* zero exactly where pruned; f16: the pruned weights rounded */
            sq_test_ok(sq_model_read_tensor(pruned, t.name, p, n));
            for (int64_t j = 0; j < n; j++) {
                if (p[j] == 0 && w[j] != 0)
                    fail_msg("%s %s: pruned element %lld is %g", type, t.name, (long long)j, w[j]);
                if (is_f16 && w[j] != sq_f16_to_f32(sq_f32_to_f16(p[j])))
                    fail_msg("%s %s: element %lld is %g, not f16(%g)", type, t.name, (long long)j, w[j],
                             p[j]);
            }
        }
        const sq_tensor_edit e = {.name = t.name, .dtype = "f32", .data = w, .nbytes = (size_t)n * sizeof *w};
        sq_test_ok(sq_model_edit_tensors(ref, &e, 1));
        free(w);
        free(p);
    }
    sq_model_info info;
    sq_model_get_info(sparse, &info);
    static const int chunks[] = {1, 3, N_TOKENS};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        float *got = logits_in_chunks(sparse, chunks[c]), *want = logits_in_chunks(ref, chunks[c]);
        char what[96];
        snprintf(what, sizeof what, "%s, %d token(s) a step (%s kernels)", type, chunks[c],
                 sq_cpu_kernel_name());
        sq_test_check_logits(got, want, N_TOKENS, info.vocab_size, LOGIT_TOL, what);
        free(got);
        free(want);
    }
    sq_quantize_report_free(r);
    sq_model_free(pruned);
    sq_model_free(sparse);
    sq_model_free(ref);
}

static void test_sparse24_q8(void **state) {
    (void)state;
    check_format("sparse24_q8", "q8_0");
}
static void test_sparse24_q4(void **state) {
    (void)state;
    check_format("sparse24_q4", "q4_0");
}
static void test_sparse24_f16(void **state) {
    (void)state;
    check_format("sparse24_f16", "f16");
}

static void test_refused(void **state) {
    (void)state;
    sq_model *m = load_pruned(0);
    sq_quantize_report *r = NULL;
    sq_test_fails_with(sq_quantize_model(m, &(sq_quantize_params){.type = "sparse24_q8"}, NULL, NULL, &r),
                       "no weight matrix of the model is 2:4 (prune it first: squeeze prune --nm 2:4)");
    sq_quantize_report_free(r);
    r = NULL;
    const sq_quant_keep keep = {"blk.1.attn_k.weight", "sparse24_q4"};
    sq_test_fails_with(
        sq_quantize_model(m, &(sq_quantize_params){.type = "q8_0", .keep = &keep, .n_keep = 1}, NULL, NULL,
                          &r),
        "sparse24_q4 stores 2:4 sparse weights, but tensor blk.1.attn_k.weight is not 2:4 (row 0, columns");
    sq_quantize_report_free(r);

    /* a file whose positions repeat inside a group is refused as it loads */
    sq_model *sparse = load_pruned(1);
    sq_test_ok(sq_quantize_model(sparse, &(sq_quantize_params){.type = "sparse24_q8"}, NULL, NULL, &r));
    sq_quantize_report_free(r);
    sq_tensor_info t;
    sq_model_tensor_info(sparse, sq_model_tensor_index(sparse, "blk.2.ffn_up.weight"), &t);
    assert_string_equal(t.dtype, "sparse24_q8");
    const size_t nb = t.nbytes / sizeof(sq_block_sparse24_q8);
    sq_block_sparse24_q8 *blocks = calloc(nb, sizeof *blocks);
    assert_non_null(blocks);
    for (size_t i = 0; i < nb; i++) memset(blocks[i].idx, 0x55, 4); /* positions 1, 1 in each group */
    const sq_tensor_edit e = {.name = t.name, .data = blocks, .nbytes = t.nbytes};
    sq_test_ok(sq_model_edit_tensors(sparse, &e, 1));
    const char *path = sq_test_work("sparse-bad-positions.gguf");
    sq_test_ok(sq_model_save(sparse, path, SQ_FORMAT_GGUF));
    sq_model *bad = NULL;
    sq_test_fails_with(sq_model_load(path, NULL, &bad),
                       "GGUF tensor blk.2.ffn_up.weight: SPARSE24_Q8 block 0 names a position twice");
    free(blocks);
    sq_model_free(sparse);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse24_q8),
        cmocka_unit_test(test_sparse24_q4),
        cmocka_unit_test(test_sparse24_f16),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
