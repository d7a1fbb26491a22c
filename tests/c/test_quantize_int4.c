/* squeeze quantize to the int4 group formats through the library on stories260K (rows of 64 and 172 values):
 * the formats each matrix gets (groups of 128 fall back to the largest group that fits, 172-wide rows to f16)
 * and the report; RTN's values are the format's reference quantizer's, row by row; GPTQ and AWQ target the
 * formats through the method seam (their values against numpy: tests/py/test_gptq.py; their quality on
 * stories15M: bench/int4_quality.sh); a --keep rule naming rows that are not whole groups is refused. */
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
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
    sq_model *m = load(), *orig = load();
    sq_quantize_report *r;
    sq_test_ok(
        sq_quantize_model(m, &(sq_quantize_params){.type = "int4_g128", .n_threads = 1}, NULL, NULL, &r));
    assert_string_equal(type_of(r, "blk.0.attn_q.weight"), "int4_g64"); /* rows of 64 */
    assert_string_equal(type_of(r, "blk.0.ffn_up.weight"), "int4_g64");
    assert_string_equal(type_of(r, "blk.0.ffn_down.weight"), "f16"); /* rows of 172 */
    assert_true(r->n_fallbacks > 0);
    sq_quantize_report_free(r);
    /* RTN's bytes are the reference quantizer's, row by row */
    float w[64 * 64];
    sq_test_ok(sq_model_read_tensor(orig, "blk.1.attn_v.weight", w, 32 * 64));
    uint8_t want[32 * 36];
    const sq_dtype_traits *f = sq_dtype_info(SQ_DTYPE_INT4_G64);
    for (int row = 0; row < 32; row++) f->from_f32(w + row * 64, want + row * 36, 64);
    float got[32 * 64], back[32 * 64];
    sq_test_ok(sq_model_read_tensor(m, "blk.1.attn_v.weight", got, 32 * 64));
    f->to_f32(want, back, 32 * 64);
    assert_memory_equal(got, back, sizeof got);
    sq_model_free(m);
    sq_model_free(orig);
}

static void test_gptq_awq_target_int4(void **state) {
    (void)state;
    sq_calib_samples s = random_samples(4, 32, 3);
    for (int k = 0; k < 2; k++) {
        const char *method = k ? "awq" : "gptq";
        sq_model *m = load();
        sq_quantize_report *r;
        /* ffn_down's 172-wide rows fit no int4 group (their f16 fallback has no GPTQ grid): kept fp32 */
        const sq_quant_keep keep = {"blk.*.ffn_down.weight", "f32"};
        sq_test_ok(sq_quantize_model(m,
                                     &(sq_quantize_params){.type = "int4_g32",
                                                           .method = method,
                                                           .calib = &s,
                                                           .keep = &keep,
                                                           .n_keep = 1,
                                                           .n_threads = 1},
                                     NULL, NULL, &r));
        assert_string_equal(type_of(r, "blk.4.attn_output.weight"), "int4_g32");
        assert_string_equal(r->method, method);
        sq_quantize_report_free(r);
        sq_model_free(m);
    }
    sq_calib_samples_free(&s);
    sq_model *m = load();
    sq_test_fails_with(
        sq_quantize_model(m,
                          &(sq_quantize_params){.type = "int4_g32",
                                                .keep = &(sq_quant_keep){"blk.0.ffn_down.weight", "int4_g32"},
                                                .n_keep = 1},
                          NULL, NULL, NULL),
        "not whole int4_g32 blocks of 32");
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtn_formats_and_bytes),
        cmocka_unit_test(test_gptq_awq_target_int4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
