/* squeeze quantize to the intN formats (int4/int3/int2 per group of G, and per row: intN_g0) through the
 * library on stories260K (rows of 64 and 172 values): the formats each matrix gets (groups of 128 fall back
 * to the largest group of the same N that fits, 172-wide rows to f16) and the report; RTN's values are the
 * format's reference quantizer's, row by row; GPTQ and AWQ target the formats through the method seam (their
 * values against numpy: tests/py/test_gptq.py; their quality on stories15M: bench/int4_quality.sh,
 * bench/intn_quality.sh); a --keep rule naming rows that are not whole groups is refused. */
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/tensor.h"
#include "testlib.h"

static sq_model *load(void) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    return m;
}

static sq_calib_samples random_samples(int n, int len, uint64_t seed) {
    sq_calib_samples s = {.n_samples = n, .seq_len = len, .ids = malloc((size_t)n * len * sizeof(int32_t))};
    assert_non_null(s.ids);
    for (int i = 0; i < n * len; i++) s.ids[i] = (int32_t)(sq_test_rand_u64(&seed) % 512);
    return s;
}

static const char *type_of(const sq_quantize_report *r, const char *name) {
    for (int i = 0; i < r->n_tensors; i++)
        if (!strcmp(r->tensors[i].name, name)) return r->tensors[i].type;
    fail_msg("no tensor %s in the report", name);
    return NULL;
}

static void test_rtn_formats_and_bytes(void **state) {
    (void)state;
    /* the type asked for, and what the 64-wide rows get */
    static const struct {
        const char *type, *rows64;
        sq_dtype dt;
    } cases[] = {{"int4_g128", "int4_g64", SQ_DTYPE_INT4_G64}, {"int3_g128", "int3_g64", SQ_DTYPE_INT3_G64},
                 {"int2_g128", "int2_g64", SQ_DTYPE_INT2_G64}, {"int3_g64", "int3_g64", SQ_DTYPE_INT3_G64},
                 {"int4_g0", "int4_g0", SQ_DTYPE_INT4_G0},     {"int2_g0", "int2_g0", SQ_DTYPE_INT2_G0}};
    sq_model *orig = load();
    float w[32 * 64];
    sq_test_ok(sq_model_read_tensor(orig, "blk.1.attn_v.weight", w, 32 * 64));
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sq_model *m = load();
        sq_quantize_report *r;
        sq_test_ok(sq_quantize_model(m, &(sq_quantize_params){.type = cases[c].type, .n_threads = 1}, NULL,
                                     NULL, &r));
        assert_string_equal(type_of(r, "blk.0.attn_q.weight"), cases[c].rows64);
        assert_string_equal(type_of(r, "blk.0.ffn_up.weight"), cases[c].rows64);
        assert_string_equal(type_of(r, "blk.0.ffn_down.weight"), "f16"); /* rows of 172 */
        assert_true(r->n_fallbacks > 0);
        sq_quantize_report_free(r);
        /* RTN's bytes are the reference quantizer's, row by row */
        const sq_dtype_traits *f = sq_dtype_info(cases[c].dt);
        const size_t rb = sq_row_bytes(cases[c].dt, 64);
        uint8_t want[32 * 40];
        assert_true(32 * rb <= sizeof want);
        for (int row = 0; row < 32; row++) f->from_f32(w + row * 64, want + row * rb, 64);
        float got[32 * 64], back[32 * 64];
        sq_test_ok(sq_model_read_tensor(m, "blk.1.attn_v.weight", got, 32 * 64));
        f->to_f32(want, back, 32 * 64);
        assert_memory_equal(got, back, sizeof got);
        sq_model_free(m);
    }
    sq_model_free(orig);
}

static void test_gptq_awq_target_intn(void **state) {
    (void)state;
    sq_calib_samples s = random_samples(4, 32, 3);
    static const char *const types[] = {"int4_g32", "int3_g0", "int2_g32"};
    for (int k = 0; k < 6; k++) {
        const char *method = k % 2 ? "awq" : "gptq", *type = types[k / 2];
        sq_model *m = load();
        sq_quantize_report *r;
        /* ffn_down's 172-wide rows fit no intN block (their f16 fallback has no GPTQ grid): kept fp32 */
        const sq_quant_keep keep = {"blk.*.ffn_down.weight", "f32"};
        sq_test_ok(sq_quantize_model(
            m,
            &(sq_quantize_params){
                .type = type, .method = method, .calib = &s, .keep = &keep, .n_keep = 1, .n_threads = 1},
            NULL, NULL, &r));
        assert_string_equal(type_of(r, "blk.4.attn_output.weight"), type);
        assert_string_equal(r->method, method);
        sq_quantize_report_free(r);
        sq_model_free(m);
    }
    sq_calib_samples_free(&s);
    sq_model *m = load();
    sq_test_fails_with(
        sq_quantize_model(m,
                          &(sq_quantize_params){.type = "int4_g32",
                                                .keep = &(sq_quant_keep){"blk.0.ffn_down.weight", "int3_g0"},
                                                .n_keep = 1},
                          NULL, NULL, NULL),
        "not whole int3_g0 blocks of 32");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtn_formats_and_bytes),
        cmocka_unit_test(test_gptq_awq_target_intn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
