/* The shared stories15M GGUF files (written by an independent converter, checked in llama.cpp): our reader
 * must find the same config as the fp32 llama2.c checkpoint, dequantize every tensor to exactly the values
 * the `gguf` package (llama.cpp's reader) gives (tests/data/formats/stories15M-gguf-golden.txt, regenerated
 * and checked by test_formats_gguf.py), and stay within the format's rounding of the fp32 weights: f16:
 * exactly the round-to-nearest-even half of each fp32 weight; q8_0: |w - q*d| <= d/2 + 127 * (f16 rounding of
 * d) per 32-element block. */
#include <math.h>

#include "formats/gguf.h"
#include "test_formats_util.h"
#include "tokenizer/tokenizer.h"

static sq_model *load_gguf_weights(const char *path) {
    sq_model *m = sq_model_new();
    sq_mapped_file *f;
    sq_test_ok(sq_mapped_file_open(path, &f));
    sq_test_ok(sq_model_keep_file(m, f));
    sq_gguf_file *g;
    sq_test_ok(sq_gguf_parse(f, &g));
    sq_test_ok(sq_gguf_read_model(g, m));
    sq_gguf_free(g);
    sq_test_ok(sq_model_bind(m, path));
    return m;
}

static float *dequantize(const sq_tensor *t) {
    int64_t rows = sq_tensor_n_rows(t), len = sq_tensor_row_len(t);
    float *v = malloc((size_t)(rows * len) * sizeof *v);
    for (int64_t r = 0; r < rows; r++) sq_tensor_row_to_f32(t, r, v + r * len);
    return v;
}

static void check_against_golden(const char *tag, const sq_model *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/formats/stories15M-gguf-golden.txt",
             getenv("SQ_TEST_DATA") ? getenv("SQ_TEST_DATA") : "tests/data");
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    char line[8192];
    int checked = 0;
    while (fgets(line, sizeof line, fp)) {
        char ftag[16], name[128];
        long long n;
        double sum;
        int used;
        if (sscanf(line, "%15s %127s %lld %lf%n", ftag, name, &n, &sum, &used) != 4)
            fail_msg("bad golden line: %s", line);
        if (strcmp(ftag, tag)) continue;
        const sq_tensor *t = sq_model_find_tensor(m, name);
        if (!t) fail_msg("%s: tensor %s missing", tag, name);
        assert_int_equal(sq_tensor_nelements(t), n);
        float *v = dequantize(t);
        double s = 0;
        for (long long i = 0; i < n; i++) s += v[i];
        if (fabs(s - sum) > 1e-9 * fmax(1, fabs(sum)))
            fail_msg("%s %s: sum %.17g, gguf package %.17g", tag, name, s, sum);
        const char *p = line + used;
        long long idx;
        float want;
        int k;
        while (sscanf(p, " %lld:%f%n", &idx, &want, &k) == 2) {
            if (v[idx] != want)
                fail_msg("%s %s[%lld]: %.9g, gguf package %.9g", tag, name, idx, v[idx], want);
            p += k;
        }
        free(v);
        checked++;
    }
    fclose(fp);
    assert_int_equal(checked, m->n_tensors);
}

static void check_against_fp32(const sq_model *q, const sq_model *ref) {
    for (int i = 0; i < ref->n_tensors; i++) {
        const sq_tensor *r = ref->tensors[i], *t = sq_model_find_tensor(q, r->name);
        if (!t) fail_msg("tensor %s missing", r->name);
        assert_int_equal(sq_tensor_nelements(t), sq_tensor_nelements(r));
        float *v = dequantize(t);
        const float *w = r->data;
        const int64_t n = sq_tensor_nelements(r);
        if (t->dtype == SQ_DTYPE_F32) {
            assert_memory_equal(v, w, (size_t)n * 4);
        } else if (t->dtype == SQ_DTYPE_F16) {
            for (int64_t k = 0; k < n; k++)
                if (v[k] != sq_f16_to_f32(sq_f32_to_f16(w[k])))
                    fail_msg("%s[%lld]: %g vs fp32 %g", r->name, (long long)k, v[k], w[k]);
        } else {
            assert_int_equal(t->dtype, SQ_DTYPE_Q8_0);
            const sq_block_q8_0 *b = t->data;
            for (int64_t k = 0; k < n; k++) {
                double d = sq_f16_to_f32(b[k / SQ_QK8_0].d), tol = d / 2 + 127 * d * ldexp(1, -11) + 1e-12;
                if (fabs(v[k] - w[k]) > tol)
                    fail_msg("%s[%lld]: %g vs fp32 %g (tolerance %g)", r->name, (long long)k, v[k], w[k],
                             tol);
            }
        }
        free(v);
    }
}

static void test_shared_gguf_files(void **state) {
    (void)state;
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", sq_test_shared("models/stories15M.bin"));
    sq_model *ref = sq_model_new();
    sq_test_ok(sq_llama2c_load(bin, ref));
    sq_test_ok(sq_model_bind(ref, bin));
    const char *tags[] = {"f16", "q8_0"};
    for (int i = 0; i < 2; i++) {
        char path[4096], rel[64];
        snprintf(rel, sizeof rel, "models/stories15M-%s.gguf", tags[i]);
        snprintf(path, sizeof path, "%s", sq_test_shared(rel));
        sq_model *m = load_gguf_weights(path);
        const sq_model_config *a = &m->cfg, *b = &ref->cfg;
        assert_string_equal(a->arch, "llama");
        assert_string_equal(m->file_format, "gguf");
        assert_int_equal(a->dim, b->dim);
        assert_int_equal(a->n_layers, b->n_layers);
        assert_int_equal(a->n_heads, b->n_heads);
        assert_int_equal(a->n_kv_heads, b->n_kv_heads);
        assert_int_equal(a->head_dim, b->head_dim);
        assert_int_equal(a->ffn_dim, b->ffn_dim);
        assert_int_equal(a->vocab_size, b->vocab_size);
        assert_int_equal(a->max_seq_len, b->max_seq_len);
        assert_true(a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps);
        assert_int_equal(a->rope_style, SQ_ROPE_INTERLEAVED);
        assert_int_equal(a->tied_embeddings, b->tied_embeddings);
        assert_int_equal(a->bos_id, 1);
        assert_int_equal(a->n_eos_ids, 1);
        assert_int_equal(a->eos_ids[0], 2);
        assert_int_equal(m->n_tensors, ref->n_tensors);
        check_against_golden(tags[i], m);
        check_against_fp32(m, ref);
        sq_model_free(m);
    }
    sq_model_free(ref);
}

/* The vocabulary inside the GGUF must be the Llama-2 one in tokenizer.model. Needs the tokenizer module;
 * until it lands on this branch the placeholder refuses, and this test says so. */
static void test_shared_gguf_vocab(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s", sq_test_shared("models/stories15M-q8_0.gguf"));
    sq_mapped_file *f;
    sq_test_ok(sq_mapped_file_open(path, &f));
    sq_gguf_file *g;
    sq_test_ok(sq_gguf_parse(f, &g));
    sq_tokenizer *tok = NULL, *ref = NULL;
    sq_error *err = sq_gguf_read_vocab(g, &tok);
    sq_gguf_free(g);
    sq_mapped_file_close(f);
    if (err && strstr(sq_error_message(err), "not built yet")) {
        print_message("tokenizer module not merged yet: vocabulary checks skipped (%s)\n",
                      sq_error_message(err));
        sq_error_free(err);
        skip();
    }
    sq_test_ok(err);
    assert_string_equal(sq_tokenizer_kind(tok), "spm-bpe");
    assert_int_equal(sq_tokenizer_vocab_size(tok), 32000);
    assert_int_equal(sq_tokenizer_bos(tok), 1);
    assert_int_equal(sq_tokenizer_eos(tok), 2);
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.model"), &ref));
    const char *text = "Once upon a time, there was a little girl named Lily. 1234 héllo\n";
    int32_t *a, *b;
    int na, nb;
    sq_test_ok(sq_tokenize(tok, text, strlen(text), 1, 0, &a, &na));
    sq_test_ok(sq_tokenize(ref, text, strlen(text), 1, 0, &b, &nb));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    free(a);
    free(b);
    sq_tokenizer_free(tok);
    sq_tokenizer_free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_gguf_files),
        cmocka_unit_test(test_shared_gguf_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
