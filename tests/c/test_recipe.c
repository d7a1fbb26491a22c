/* Compression recipes (src/compress/recipe.c):
 *  - a recipe's steps give the model that the same calls made by hand give (sq_prune, then
 *    sq_quantize_model): the same tensors, byte for byte;
 *  - what is measured after each step agrees with its definition: counts from the model, the original's
 *    own ratios 1, KL 0, a pruned model's KL above 0 and its perplexity as sq_perplexity gives it alone;
 *  - malformed recipes are refused naming the step and key; a step needing calibration without samples is
 *    refused before any work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static sq_model *load260(void) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    return m;
}

static sq_recipe *parse(const char *json) {
    sq_recipe *r;
    sq_test_ok(sq_recipe_parse(json, strlen(json), "test.json", &r));
    return r;
}

/* Every tensor of a and b: same name, format and bytes (read back as floats). */
static void assert_same_tensors(const sq_model *a, const sq_model *b) {
    assert_int_equal(sq_model_n_tensors(a), sq_model_n_tensors(b));
    for (int i = 0; i < sq_model_n_tensors(a); i++) {
        sq_tensor_info ta, tb;
        sq_model_tensor_info(a, i, &ta);
        sq_model_tensor_info(b, i, &tb);
        assert_string_equal(ta.name, tb.name);
        assert_string_equal(ta.dtype, tb.dtype);
        int64_t n = 1;
        for (int d = 0; d < ta.ndim; d++) n *= ta.shape[d];
        float *va = malloc((size_t)n * sizeof *va), *vb = malloc((size_t)n * sizeof *vb);
        sq_test_ok(sq_model_read_tensor(a, ta.name, va, n));
        sq_test_ok(sq_model_read_tensor(b, tb.name, vb, n));
        if (memcmp(va, vb, (size_t)n * sizeof *va)) fail_msg("tensor %s differs", ta.name);
        free(va);
        free(vb);
    }
}

static int32_t *random_ids(int n, int vocab, uint64_t seed) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    ids[0] = 1;
    for (int i = 1; i < n; i++) ids[i] = 3 + (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)(vocab - 3));
    return ids;
}

static int steps_seen;
static void count_steps(void *user, int step, const sq_recipe_step_result *r) {
    (void)r;
    assert_int_equal(step, steps_seen - 1); /* -1 (the original), 0, 1, ... in order */
    steps_seen++;
    *(int *)user += 1;
}

static void test_steps_equal_calls_by_hand(void **state) {
    (void)state;
    sq_recipe *r =
        parse("{\"name\": \"m\", \"steps\": [{\"prune\": {\"method\": \"magnitude\", \"sparsity\": 0.5}},"
              " {\"prune\": {\"method\": \"depth\", \"remove\": 1, \"criterion\": \"magnitude\"}},"
              " {\"quantize\": {\"type\": \"q8_0\", \"keep\": {\"blk.*.ffn_down.weight\": \"f16\"}}}]}");
    assert_string_equal(sq_recipe_name(r), "m");
    assert_int_equal(sq_recipe_n_steps(r), 3);
    assert_string_equal(sq_recipe_step_label(r, 0), "prune magnitude 50%");
    assert_string_equal(sq_recipe_step_label(r, 1), "prune depth -1 (magnitude)");
    assert_string_equal(sq_recipe_step_label(r, 2), "quantize q8_0 rtn");
    assert_null(sq_recipe_step_label(r, 3));
    assert_int_equal(sq_recipe_needs_calib(r), 0);

    sq_model *model = load260(), *original = load260(), *by_hand = load260();
    sq_model_info info;
    sq_model_get_info(original, &info);
    enum { N_IDS = 160 };
    int32_t *ids = random_ids(N_IDS, info.vocab_size, 5);
    const sq_bench_params bench = {.n_prompt = 8, .n_gen = 4, .n_seqs = 1, .n_reps = 1, .n_threads = 1};
    int calls = 0;
    steps_seen = 0;
    const sq_recipe_options o = {.original = original,
                                 .eval_ids = ids,
                                 .n_eval_ids = N_IDS,
                                 .eval_ctx = 32,
                                 .bos_id = 1,
                                 .bench = &bench,
                                 .n_threads = 1,
                                 .on_step = count_steps,
                                 .user = &calls};
    sq_recipe_step_result res[4];
    sq_test_ok(sq_recipe_run(model, r, &o, res));
    assert_int_equal(calls, 4);

    sq_prune_result pr;
    sq_test_ok(sq_prune(by_hand, &(sq_prune_options){.method = SQ_PRUNE_MAGNITUDE, .sparsity = 0.5}, &pr));
    assert_int_equal(res[1].n_nonzero, pr.nonzero_after);
    assert_int_equal(res[0].n_nonzero, pr.nonzero_before);
    sq_prune_result_free(&pr);
    sq_test_ok(sq_prune(
        by_hand,
        &(sq_prune_options){.method = SQ_PRUNE_DEPTH, .n_remove = 1, .criterion = SQ_DEPTH_MAGNITUDE}, &pr));
    assert_int_equal(res[2].n_layers, pr.n_layers_after);
    sq_prune_result_free(&pr);
    const sq_quant_keep keep = {"blk.*.ffn_down.weight", "f16"};
    sq_test_ok(sq_quantize_model(by_hand, &(sq_quantize_params){.type = "q8_0", .keep = &keep, .n_keep = 1},
                                 NULL, NULL, NULL));
    assert_same_tensors(model, by_hand);

    /* the measurements */
    assert_string_equal(res[0].label, "original");
    assert_string_equal(res[3].label, "quantize q8_0 rtn");
    assert_int_equal(res[0].n_params, info.n_params);
    assert_int_equal(res[0].n_layers, info.n_layers);
    assert_int_equal(res[2].n_layers, info.n_layers - 1);
    assert_true(fabs(res[0].bits_per_weight - 32) < 1e-9);
    assert_true(res[3].bits_per_weight < 16 && res[3].weight_bytes < res[2].weight_bytes);
    assert_true(res[0].has_quality && res[0].ppl_ratio == 1 && res[0].kl_mean == 0 &&
                res[0].top1_agreement == 1);
    for (int i = 1; i <= 3; i++) {
        assert_true(res[i].has_quality && res[i].has_speed);
        assert_true(res[i].kl_mean > 0 && res[i].top1_agreement < 1);
        assert_true(fabs(res[i].ppl_ratio - res[i].ppl / res[0].ppl) < 1e-9 * res[i].ppl_ratio);
        assert_true(res[i].decode_tok_s > 0 && res[i].decode_ratio > 0 && res[i].prefill_ratio > 0);
    }
    /* the last perplexity is sq_perplexity's on the same windows */
    sq_ppl_result want;
    sq_test_ok(sq_perplexity(by_hand, ids, N_IDS,
                             &(sq_ppl_options){.n_ctx = 32, .n_threads = 1, .bos_id = 1, .ref = original},
                             &want));
    assert_true(fabs(res[3].ppl - want.ppl) <= 1e-12 * want.ppl);
    assert_true(fabs(res[3].kl_mean - want.kl_mean) <= 1e-12 * want.kl_mean);
    sq_ppl_result_free(&want);

    free(ids);
    sq_model_free(by_hand);
    sq_model_free(original);
    sq_model_free(model);
    sq_recipe_free(r);
}

/* A low-rank step, then RTN on its factors: the same tensors as the calls by hand. */
static void test_lowrank_step(void **state) {
    (void)state;
    sq_recipe *r = parse("{\"steps\": [{\"prune\": {\"method\": \"lowrank\", \"param_ratio\": 0.75}},"
                         " {\"quantize\": {\"type\": \"q8_0\"}}]}");
    assert_string_equal(sq_recipe_step_label(r, 0), "prune lowrank params 75%");
    assert_int_equal(sq_recipe_needs_calib(r), 0);
    sq_model *model = load260(), *original = load260(), *by_hand = load260();
    const sq_recipe_options o = {.original = original, .n_threads = 1};
    sq_recipe_step_result res[3];
    sq_test_ok(sq_recipe_run(model, r, &o, res));
    sq_prune_result pr;
    sq_test_ok(sq_prune(by_hand, &(sq_prune_options){.method = SQ_PRUNE_LOWRANK, .param_ratio = 0.75}, &pr));
    assert_true(pr.n_factorised > 0);
    assert_int_equal(res[1].n_params, pr.params_after);
    sq_prune_result_free(&pr);
    sq_test_ok(sq_quantize_model(by_hand, &(sq_quantize_params){.type = "q8_0"}, NULL, NULL, NULL));
    assert_same_tensors(model, by_hand);
    sq_tensor_info ti;
    sq_model_tensor_info(model, sq_model_tensor_index(model, "blk.0.ffn_up.weight_a"), &ti);
    assert_string_equal(ti.dtype, "q8_0"); /* the factors are quantized too */
    sq_recipe_free(r);
    r = parse("{\"steps\": [{\"prune\": {\"method\": \"asvd\", \"rank_ratio\": 0.5, \"alpha\": 1}}]}");
    assert_string_equal(sq_recipe_step_label(r, 0), "prune asvd rank 50%");
    assert_int_equal(sq_recipe_needs_calib(r), 1);
    sq_recipe_free(r);
    sq_model_free(by_hand), sq_model_free(original), sq_model_free(model);
}

static void test_calibrated_step_needs_samples(void **state) {
    (void)state;
    sq_recipe *r = parse("{\"steps\": [{\"quantize\": {\"type\": \"q8_0\"}}, "
                         "{\"prune\": {\"method\": \"wanda\", \"nm\": \"2:4\"}}]}");
    assert_int_equal(sq_recipe_needs_calib(r), 1);
    assert_string_equal(sq_recipe_name(r), "");
    sq_model *model = load260();
    sq_recipe_step_result res[3];
    sq_test_fails_with(sq_recipe_run(model, r, &(sq_recipe_options){.n_threads = 1}, res),
                       "step 2 (prune wanda 2:4) needs calibration samples");
    /* refused before any work: the first step did not run */
    for (int i = 0; i < sq_model_n_tensors(model); i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(model, i, &ti);
        assert_string_equal(ti.dtype, "f32");
    }
    int32_t ids[4] = {1, 5, 6, 7};
    sq_test_fails_with(sq_recipe_run(model, r, &(sq_recipe_options){.eval_ids = ids, .n_eval_ids = 4}, res),
                       "needs the original model");
    sq_model_free(model);
    sq_recipe_free(r);
}

static void test_bad_recipes(void **state) {
    (void)state;
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"", "not valid JSON"},
        {"{\"steps\": [", "not valid JSON"},
        {"[]", "expected a JSON object"},
        {"{\"steps\": []}", "\"steps\": expected an array of 1 to 16 steps"},
        {"{\"name\": \"x\"}", "\"steps\": expected an array"},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"nm\": \"2:4\"}}], \"extra\": 1}",
         "\"extra\": not a key of a recipe"},
        {"{\"steps\": [{}]}", "step 1 (?): \"(step)\": expected an object with one action"},
        {"{\"steps\": [{\"prune\": {\"method\": \"magnitude\", \"sparsity\": 0.5},"
         " \"quantize\": {\"type\": \"q8_0\"}}]}",
         "expected an object with one action"},
        {"{\"steps\": [{\"distill\": {}}]}", "step 1 (distill): \"distill\": not an action"},
        {"{\"steps\": [{\"prune\": {\"sparsity\": 0.5}}]}", "\"method\": missing"},
        {"{\"steps\": [{\"prune\": {\"method\": \"random\"}}]}", "\"method\": expected magnitude, wanda"},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"sparsity\": 1}}]}",
         "step 1 (prune): \"sparsity\": expected a number in [0, 1)"},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"sparsity\": \"half\"}}]}",
         "\"sparsity\": expected a number"},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\"}}]}",
         "give exactly one of \"sparsity\" and \"nm\""},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"sparsity\": 0.5, \"nm\": \"2:4\"}}]}",
         "give exactly one of"},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"nm\": \"4:2\"}}]}", "\"nm\": expected \"N:M\""},
        {"{\"steps\": [{\"prune\": {\"method\": \"wanda\", \"nm\": \"2:4x\"}}]}", "\"nm\": expected \"N:M\""},
        {"{\"steps\": [{\"prune\": {\"method\": \"depth\", \"sparsity\": 0.5}}]}",
         "\"sparsity\": not a key of prune method depth"},
        {"{\"steps\": [{\"prune\": {\"method\": \"depth\", \"remove\": 1.5}}]}",
         "\"remove\": expected a whole number"},
        {"{\"steps\": [{\"prune\": {\"method\": \"depth\", \"criterion\": \"ppl\"}}]}",
         "\"remove\": missing"},
        {"{\"steps\": [{\"prune\": {\"method\": \"depth\", \"remove\": 1, \"criterion\": \"random\"}}]}",
         "\"criterion\": expected ppl, magnitude or taylor"},
        {"{\"steps\": [{\"prune\": {\"method\": \"width\"}}]}", "width pruning needs"},
        {"{\"steps\": [{\"prune\": {\"method\": \"lowrank\"}}]}",
         "give exactly one of \"rank_ratio\" and \"param_ratio\""},
        {"{\"steps\": [{\"prune\": {\"method\": \"lowrank\", \"rank_ratio\": 0.5, \"param_ratio\": 0.5}}]}",
         "give exactly one of"},
        {"{\"steps\": [{\"prune\": {\"method\": \"lowrank\", \"rank_ratio\": 0}}]}",
         "\"rank_ratio\": expected a number in (0, 1]"},
        {"{\"steps\": [{\"prune\": {\"method\": \"asvd\", \"param_ratio\": 1}}]}",
         "\"param_ratio\": expected a number in [0, 1)"},
        {"{\"steps\": [{\"prune\": {\"method\": \"lowrank\", \"param_ratio\": 0.5, \"alpha\": 1}}]}",
         "\"alpha\": not a key of prune method lowrank"},
        {"{\"steps\": [{\"quantize\": {}}]}", "step 1 (quantize): \"type\": missing"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"method\": \"hqq\"}}]}",
         "expected rtn, gptq or awq"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"damp\": 0}}]}",
         "\"damp\": expected a number in (0, 1]"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"act_order\": 1}}]}", "expected true or false"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"keep\": [\"a\"]}}]}",
         "\"keep\": expected an object"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"keep\": {\"a\": 8}}}]}",
         "\"a\": expected a non-empty string"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\", \"group\": 128}}]}",
         "\"group\": not a key of quantize"},
        {"{\"steps\": [{\"quantize\": {\"type\": \"q4_0\"}}, {\"quantize\": {\"type\": 4}}]}",
         "step 2 (quantize): \"type\": expected a non-empty string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_recipe *r = (sq_recipe *)1;
        sq_error *err = sq_recipe_parse(cases[i].json, strlen(cases[i].json), "bad.json", &r);
        assert_null(r);
        if (!err) fail_msg("accepted: %s", cases[i].json);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_FORMAT);
        if (!strstr(sq_error_message(err), "bad.json: "))
            fail_msg("%s: the message does not name the file: %s", cases[i].json, sq_error_message(err));
        sq_test_fails_with(err, cases[i].needle);
    }
    /* 17 steps: one over the limit */
    char big[2048] = "{\"steps\": [";
    for (int i = 0; i < 17; i++)
        strcat(big, i ? ", {\"quantize\": {\"type\": \"q8_0\"}}" : "{\"quantize\": {\"type\": \"q8_0\"}}");
    strcat(big, "]}");
    sq_recipe *r;
    sq_test_fails_with(sq_recipe_parse(big, strlen(big), NULL, &r),
                       "recipe: \"steps\": expected an array of 1 to 16");
}

/* The recipes shipped in recipes/ parse. */
static void test_shipped_recipes_parse(void **state) {
    (void)state;
    static const char *const names[] = {
        "q4_k_m.json",          "wanda50-q8_0.json", "depth1-wanda24-q4_0-gptq.json",
        "depth2-awq-q4_0.json", "demo.json",         "asvd90-q8_0.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/../../recipes/%s", getenv("SQ_TEST_DATA"), names[i]);
        size_t n;
        char *json = sq_test_read_file(path, &n);
        sq_recipe *r;
        sq_test_ok(sq_recipe_parse(json, n, path, &r));
        assert_true(sq_recipe_n_steps(r) >= 1);
        sq_recipe_free(r);
        free(json);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_equal_calls_by_hand),     cmocka_unit_test(test_lowrank_step),
        cmocka_unit_test(test_calibrated_step_needs_samples), cmocka_unit_test(test_bad_recipes),
        cmocka_unit_test(test_shipped_recipes_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
