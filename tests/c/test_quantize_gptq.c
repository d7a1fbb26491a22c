/* squeeze quantize --method gptq|awq through the library (sq_quantize_model with calibration samples) on the
 * real stories15M: the published orderings (GPTQ's and AWQ's KL divergence to the fp32 model below RTN's at
 * the same format), calibrated on the classics and evaluated on TinyStories text; AWQ's folded scales leave
 * the model's logits unchanged before rounding; and the requests refused before any work. */
#include <stdlib.h>
#include <string.h>

#include "compress/quant/awq.h"
#include "testlib.h"

static sq_model *load(void) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories15M.bin"), NULL, &m));
    return m;
}

static sq_calib_samples calib(const sq_model *m, int n_samples, int seq_len) {
    size_t len;
    char *text = sq_test_read_file(sq_test_shared("data/classics/grimms_fairy_tales.txt"), &len);
    sq_calib_samples s;
    sq_test_ok(sq_calib_samples_from_text(sq_model_tokenizer(m), text, len, n_samples, seq_len, 1, 7, &s));
    free(text);
    return s;
}

/* Mean KL(fp32 || model) over windows of 128 tokens of the first 8 KB of TinyStories' validation text. */
static double kl_to_fp32(const sq_model *model, const sq_model *ref) {
    size_t len;
    char *text = sq_test_read_file(sq_test_shared("data/tinystories/valid-a.txt"), &len);
    int32_t *ids;
    int n;
    sq_test_ok(sq_tokenize(sq_model_tokenizer(ref), text, 8000, 1, 0, &ids, &n));
    sq_ppl_result res;
    const sq_ppl_options o = {
        .protocol = SQ_PPL_WINDOWS, .n_ctx = 128, .bos_id = 1, .ref = ref, .n_threads = 2};
    sq_test_ok(sq_perplexity(model, ids, n, &o, &res));
    const double kl = res.kl_mean;
    sq_ppl_result_free(&res);
    free(ids);
    free(text);
    return kl;
}

static void test_gptq_awq_below_rtn(void **state) {
    (void)state;
    sq_model *ref = load(), *rtn = load(), *gptq = load(), *awq = load();
    sq_calib_samples s = calib(ref, 24, 128);
    sq_test_ok(
        sq_quantize_model(rtn, &(sq_quantize_params){.type = "q4_0", .n_threads = 2}, NULL, NULL, NULL));
    sq_quantize_report *r = NULL;
    sq_test_ok(sq_quantize_model(
        gptq, &(sq_quantize_params){.type = "q4_0", .method = "gptq", .calib = &s, .n_threads = 2}, NULL,
        NULL, &r));
    assert_string_equal(r->method, "gptq");
    /* every block matrix in q4_0, as RTN's plan has it */
    for (int i = 0; i < r->n_tensors; i++)
        if (strstr(r->tensors[i].name, "blk.") && strstr(r->tensors[i].name, "_norm") == NULL)
            assert_string_equal(r->tensors[i].type, "q4_0");
    sq_quantize_report_free(r);
    sq_test_ok(sq_quantize_model(
        awq, &(sq_quantize_params){.type = "q4_0", .method = "awq", .calib = &s, .n_threads = 2}, NULL, NULL,
        NULL));
    const double kl_rtn = kl_to_fp32(rtn, ref), kl_gptq = kl_to_fp32(gptq, ref),
                 kl_awq = kl_to_fp32(awq, ref);
    print_message("stories15M q4_0: KL to fp32 RTN %.5f, GPTQ %.5f, AWQ %.5f\n", kl_rtn, kl_gptq, kl_awq);
    assert_true(kl_gptq < kl_rtn);
    assert_true(kl_awq < kl_rtn);
    sq_calib_samples_free(&s);
    sq_model_free(ref);
    sq_model_free(rtn);
    sq_model_free(gptq);
    sq_model_free(awq);
}

/* ---------------------------------------------------------------- AWQ's folding */

typedef struct fold_run {
    const char *const *types;
    float alphas[16][4];
} fold_run;

static SQ_NODISCARD sq_error *fold_only(void *user, sq_model *model, int layer, const sq_calib_stats *stats) {
    fold_run *f = user;
    double *xtx[4];
    SQ_TRY(sq_awq_scale_block(model, layer, stats, f->types, 0, xtx, f->alphas[layer]));
    for (int p = 0; p < 4; p++) free(xtx[p]);
    return NULL;
}

static float *golden_logits(const sq_model *m, int *n_out) {
    int32_t ids[32];
    const int n = sq_test_read_ids(sq_test_shared("golden/stories15M.tokens.txt"), ids, 32);
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_threads = 2}, &ctx));
    float *logits = malloc((size_t)n * 32000 * sizeof *logits);
    sq_seq_batch b = {
        .seq_id = 0, .tokens = ids, .n_tokens = n, .logits_mode = SQ_LOGITS_ALL, .logits = logits};
    sq_test_ok(sq_forward(ctx, &b, 1));
    sq_context_free(ctx);
    *n_out = n;
    return logits;
}

/* The scales AWQ searches (for q4_0 here), folded into the norms and attn_v / ffn_up, leave the fp32 model's
 * logits as they were (fp32 rounding apart), while the weights did change. */
static void test_awq_folding_keeps_logits(void **state) {
    (void)state;
    sq_model *m = load();
    int n;
    float *before = golden_logits(m, &n);
    float norm_before[288], norm_after[288];
    sq_test_ok(sq_model_read_tensor(m, "blk.2.ffn_norm.weight", norm_before, 288));
    sq_calib_samples s = calib(m, 8, 64);
    static const char *const types[SQ_AWQ_N_LINEAR] = {"q4_0", "q4_0", "q4_0", "q4_0",
                                                       "q4_0", "q4_0", "q4_0"};
    fold_run f = {.types = types};
    const sq_calib_method method = {
        .stats = SQ_CALIB_XTX | SQ_CALIB_SUM_ABS, .apply_block = fold_only, .changes_weights = 1, .user = &f};
    sq_test_ok(sq_calibrate(m, &s, &method, NULL));
    int scaled = 0;
    for (int l = 0; l < 6; l++)
        for (int g = 0; g < 4; g++) {
            assert_true(f.alphas[l][g] >= 0 && f.alphas[l][g] < 1); /* no GQA: all four groups searched */
            scaled += f.alphas[l][g] > 0;
        }
    print_message("AWQ: %d of 24 groups scaled (alpha > 0)\n", scaled);
    assert_true(scaled > 0);
    sq_test_ok(sq_model_read_tensor(m, "blk.2.ffn_norm.weight", norm_after, 288));
    float *after = golden_logits(m, &n);
    sq_test_check_logits(after, before, n, 32000, 1e-4, "AWQ-folded stories15M");
    assert_true(sq_test_rel_err(norm_after, norm_before, 288) > 1e-3 || f.alphas[2][2] == 0);
    free(before);
    free(after);
    sq_calib_samples_free(&s);
    sq_model_free(m);
}

static void test_refused_before_work(void **state) {
    (void)state;
    sq_model *m = load();
    sq_calib_samples s = calib(m, 2, 16);
    sq_tensor_info before;
    sq_model_tensor_info(m, sq_model_tensor_index(m, "blk.0.attn_q.weight"), &before);
    sq_test_fails_with(
        sq_quantize_model(m, &(sq_quantize_params){.type = "q4_0", .method = "gptq"}, NULL, NULL, NULL),
        "method gptq needs calibration samples");
    /* w8a8 quantizes activations too: no weight grid of its own */
    sq_test_fails_with(sq_quantize_model(m,
                                         &(sq_quantize_params){.type = "w8a8", .method = "gptq", .calib = &s},
                                         NULL, NULL, NULL),
                       "method gptq cannot store blk.0.attn_q.weight as w8a8: no quantization grid \"w8a8\"");
    sq_calib_samples longer = calib(m, 1, 300);
    sq_test_fails_with(
        sq_quantize_model(m, &(sq_quantize_params){.type = "q8_0", .method = "gptq", .calib = &longer}, NULL,
                          NULL, NULL),
        "exceed the model's context of 256");
    sq_tensor_info after;
    sq_model_tensor_info(m, sq_model_tensor_index(m, "blk.0.attn_q.weight"), &after);
    assert_string_equal(after.dtype, "f32"); /* nothing was quantized */
    sq_calib_samples_free(&longer);
    sq_calib_samples_free(&s);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_awq_below_rtn),
        cmocka_unit_test(test_awq_folding_keeps_logits),
        cmocka_unit_test(test_refused_before_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
