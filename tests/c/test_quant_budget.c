/* Mixed precision (sq_quantize_params.budget_bpw, compress/quant/budget.c) on stories260K: the file's bits
 * per weight stay within the budget and go beyond the cheapest plan, a larger budget buys a lower summed
 * sensitivity, keep rules are left alone, and budgets that cannot work are refused before any change. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* The quantized model's summed squared weight error over the blocks' matrices (plain sensitivity, no imatrix:
 * what the search minimises), and its report. */
static double run(double budget, const sq_quant_keep *keep, int n_keep, sq_quantize_report **rep) {
    sq_model *orig, *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &orig));
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_quantize_params p = {
        .type = "q4_0", .budget_bpw = budget, .keep = keep, .n_keep = n_keep, .n_threads = 2};
    sq_test_ok(sq_quantize_model(m, &p, NULL, NULL, rep));
    double err = 0;
    for (int i = 0; i < (*rep)->n_tensors; i++) {
        const sq_quant_tensor_report *t = &(*rep)->tensors[i];
        if (strncmp(t->name, "blk.", 4) || !strcmp(t->from, t->type)) continue;
        float *a = malloc((size_t)t->n_elems * 4), *b = malloc((size_t)t->n_elems * 4);
        sq_test_ok(sq_model_read_tensor(orig, t->name, a, t->n_elems));
        sq_test_ok(sq_model_read_tensor(m, t->name, b, t->n_elems));
        for (int64_t j = 0; j < t->n_elems; j++) err += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
        free(a);
        free(b);
    }
    sq_model_free(orig);
    sq_model_free(m);
    return err;
}

static void test_budget(void **state) {
    (void)state;
    sq_quantize_report *lo, *hi, *kept;
    const double e_lo = run(8.0, NULL, 0, &lo), e_hi = run(10.0, NULL, 0, &hi);
    print_message("stories260K: %.3f bpw (budget 8) error %.4g; %.3f bpw (budget 10) error %.4g\n",
                  lo->bits_per_weight, e_lo, hi->bits_per_weight, e_hi);
    assert_true(lo->bits_per_weight <= 8.0 + 1e-9 && hi->bits_per_weight <= 10.0 + 1e-9);
    assert_true(hi->bits_per_weight > lo->bits_per_weight);
    assert_true(e_hi < e_lo);
    /* the budget is used: the cheapest plan (every searched matrix in its cheapest format) takes 7.51 bits
     * per weight of this model, whose embeddings and output are fixed by the q4_0 rules */
    assert_true(lo->bits_per_weight > 7.52);
    /* a keep rule wins over the search */
    const sq_quant_keep keep = {"blk.0.attn_q.weight", "q8_0"};
    run(8.0, &keep, 1, &kept);
    for (int i = 0; i < kept->n_tensors; i++)
        if (!strcmp(kept->tensors[i].name, "blk.0.attn_q.weight")) {
            assert_string_equal(kept->tensors[i].type, "q8_0");
            assert_true(kept->tensors[i].kept);
        }
    assert_true(kept->bits_per_weight <= 8.0 + 1e-9);
    sq_quantize_report_free(lo);
    sq_quantize_report_free(hi);
    sq_quantize_report_free(kept);

    /* refusals, the model unchanged */
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_quantize_params p = {.type = "q4_0", .budget_bpw = 1.0};
    sq_test_fails_with(sq_quantize_model(m, &p, NULL, NULL, NULL),
                       "a budget of 1.000 bits per weight is below the smallest types'");
    p.budget_bpw = -1;
    sq_test_fails_with(sq_quantize_model(m, &p, NULL, NULL, NULL), "must be positive");
    sq_calib_samples s;
    const int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    sq_test_ok(sq_calib_samples_from_ids(ids, 1, 8, &s));
    p = (sq_quantize_params){.type = "q4_0", .method = "gptq", .calib = &s, .budget_bpw = 6};
    sq_test_fails_with(sq_quantize_model(m, &p, NULL, NULL, NULL), "serves method rtn");
    sq_calib_samples_free(&s);
    sq_tensor_info t;
    sq_model_tensor_info(m, sq_model_tensor_index(m, "blk.0.attn_q.weight"), &t);
    assert_string_equal(t.dtype, "f32");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_budget)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
