/* The importance matrix (squeeze.h, "importance matrix") and the importance-weighted quantizers it feeds:
 * sq_imatrix_compute against the same means gathered independently through the public calibration tap on
 * whole forward passes; the file's round trip and every malformed file refused by name; the weighted
 * quantizers' importance-weighted error below the plain reference quantizers' on rows whose importance
 * varies; quantize's refusals of an imatrix it cannot use. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"
#include "testlib.h"

enum { N_SAMPLES = 3, SEQ_LEN = 24 };

typedef struct tapped {
    int n_layers, width[64][4];
    double *sum_sq[64][4]; /* [layer][point][width] */
    int64_t n_tokens[64][4];
} tapped;

static void tap(void *user, int layer, sq_tap_point point, int expert, const float *x, int n, int width) {
    tapped *t = user;
    (void)expert;
    if (!t->sum_sq[layer][point]) {
        t->sum_sq[layer][point] = calloc((size_t)width, sizeof(double));
        t->width[layer][point] = width;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < width; j++)
            t->sum_sq[layer][point][j] += (double)x[(size_t)i * width + j] * x[(size_t)i * width + j];
    t->n_tokens[layer][point] += n;
}

static void test_compute_matches_tap(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_model_info info;
    sq_model_get_info(m, &info);
    int32_t ids[N_SAMPLES * SEQ_LEN];
    uint64_t seed = 7;
    for (int i = 0; i < N_SAMPLES * SEQ_LEN; i++)
        ids[i] = (int32_t)(sq_test_rand_u64(&seed) % info.vocab_size);
    sq_calib_samples samples;
    sq_test_ok(sq_calib_samples_from_ids(ids, N_SAMPLES, SEQ_LEN, &samples));
    sq_imatrix *im;
    sq_test_ok(
        sq_imatrix_compute(m, &samples, &(sq_calib_options){.n_threads = 2, .batch_tokens = SEQ_LEN}, &im));
    assert_int_equal(sq_imatrix_n_entries(im), 7 * info.n_layers);

    /* the same statistics from plain forward passes, one sample a sequence */
    tapped *t = calloc(1, sizeof *t);
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = SEQ_LEN, .n_threads = 2}, &ctx));
    sq_context_set_tap(ctx, tap, t);
    for (int s = 0; s < N_SAMPLES; s++) {
        sq_seq_batch b = {0, ids + s * SEQ_LEN, SEQ_LEN, SQ_LOGITS_NONE, NULL, NULL};
        sq_test_ok(sq_forward(ctx, &b, 1));
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    }
    sq_context_free(ctx);
    static const char *const names[4][3] = {
        {"attn_q", "attn_k", "attn_v"}, {"attn_output"}, {"ffn_gate", "ffn_up"}, {"ffn_down"}};
    for (int l = 0; l < info.n_layers; l++)
        for (int p = 0; p < 4; p++)
            for (int r = 0; r < 3 && names[p][r]; r++) {
                char name[64];
                snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[p][r]);
                sq_imatrix_entry e;
                assert_true(sq_imatrix_find(im, name, &e));
                assert_int_equal(e.n_values, t->width[l][p]);
                assert_int_equal(e.n_tokens, N_SAMPLES * SEQ_LEN);
                assert_int_equal(t->n_tokens[l][p], N_SAMPLES * SEQ_LEN);
                for (int j = 0; j < e.n_values; j++) {
                    const double want = t->sum_sq[l][p][j] / (N_SAMPLES * SEQ_LEN);
                    if (fabs(e.values[j] - want) > 1e-5 * want + 1e-12)
                        fail_msg("%s[%d]: %g, the tap's mean %g", name, j, (double)e.values[j], want);
                }
            }
    for (int l = 0; l < 64; l++)
        for (int p = 0; p < 4; p++) free(t->sum_sq[l][p]);
    free(t);

    /* save and load: the same entries, bit for bit */
    const char *path = sq_test_work("stories260K.imatrix");
    sq_test_ok(sq_imatrix_save(im, path));
    sq_imatrix *back;
    sq_test_ok(sq_imatrix_load(path, &back));
    assert_int_equal(sq_imatrix_n_entries(back), sq_imatrix_n_entries(im));
    for (int i = 0; i < sq_imatrix_n_entries(im); i++) {
        sq_imatrix_entry a, b;
        sq_imatrix_entry_at(im, i, &a);
        sq_imatrix_entry_at(back, i, &b);
        assert_string_equal(a.name, b.name);
        assert_int_equal(a.n_tokens, b.n_tokens);
        assert_int_equal(a.n_values, b.n_values);
        assert_memory_equal(a.values, b.values, (size_t)a.n_values * sizeof *a.values);
    }
    sq_imatrix_free(back);

    /* quantize: the imatrix serves rtn and gptq only, and only matrices of its entries' widths */
    sq_quantize_params qp = {.type = "q4_0", .method = "awq", .calib = &samples, .imatrix = im};
    sq_test_fails_with(sq_quantize_model(m, &qp, NULL, NULL, NULL),
                       "an imatrix serves methods rtn and gptq, not awq");
    sq_imatrix_free(im);
    const float vals[3] = {1, 2, 3};
    uint8_t file[256];
    size_t n = 0;
    memcpy(file, "SQIMATRX\1\0\0\0\1\0\0\0", 16);
    n = 16;
    const char *nm = "blk.0.attn_q.weight";
    uint32_t len = (uint32_t)strlen(nm), nv = 3;
    uint64_t tok = 5;
    memcpy(file + n, &len, 4), n += 4;
    memcpy(file + n, nm, len), n += len;
    memcpy(file + n, &tok, 8), n += 8;
    memcpy(file + n, &nv, 4), n += 4;
    memcpy(file + n, vals, 12), n += 12;
    sq_test_ok(sq_imatrix_parse(file, n, "three.imatrix", &im));
    qp = (sq_quantize_params){.type = "q4_0", .imatrix = im};
    sq_test_fails_with(sq_quantize_model(m, &qp, NULL, NULL, NULL),
                       "the imatrix entry blk.0.attn_q.weight has 3 values, but the tensor's rows have 64");
    sq_imatrix_free(im);
    sq_calib_samples_free(&samples);
    sq_model_free(m);
}

/* A valid two-entry file, then each way of breaking it. */
static size_t put(uint8_t *f, size_t n, const void *p, size_t k) {
    memcpy(f + n, p, k);
    return n + k;
}
static size_t entry(uint8_t *f, size_t n, const char *name, uint64_t tokens, const float *v, uint32_t nv) {
    uint32_t len = (uint32_t)strlen(name);
    n = put(f, n, &len, 4);
    n = put(f, n, name, len);
    n = put(f, n, &tokens, 8);
    n = put(f, n, &nv, 4);
    return put(f, n, v, (size_t)nv * 4);
}
static size_t header(uint8_t *f, uint32_t version, uint32_t n_entries) {
    size_t n = put(f, 0, "SQIMATRX", 8);
    n = put(f, n, &version, 4);
    return put(f, n, &n_entries, 4);
}

static void test_malformed_files(void **state) {
    (void)state;
    uint8_t f[512];
    const float v[2] = {0.25f, 4}, neg[2] = {1, -1}, nan_[2] = {1, NAN};
    size_t n = header(f, 1, 2);
    n = entry(f, n, "a", 10, v, 2);
    n = entry(f, n, "b", 10, v, 2);
    sq_imatrix *im;
    sq_test_ok(sq_imatrix_parse(f, n, "ok", &im));
    assert_int_equal(sq_imatrix_n_entries(im), 2);
    sq_imatrix_free(im);
    /* every truncation is refused, none crashes */
    for (size_t k = 0; k < n; k++) {
        sq_error *err = sq_imatrix_parse(f, k, "cut", &im);
        assert_non_null(err);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_FORMAT);
        assert_null(im);
        sq_error_free(err);
    }
    f[n] = 0;
    sq_test_fails_with(sq_imatrix_parse(f, n + 1, "long", &im), "long: 1 bytes after the last entry");
    sq_test_fails_with(sq_imatrix_parse("SQIMATRY\1\0\0\0\0\0\0\0", 16, "magic", &im),
                       "no \"SQIMATRX\" magic");
    n = header(f, 2, 0);
    sq_test_fails_with(sq_imatrix_parse(f, n, "v2", &im), "v2: version 2");
    n = header(f, 1, 70000);
    sq_test_fails_with(sq_imatrix_parse(f, n, "many", &im), "70000 entries");
    n = entry(f, header(f, 1, 2), "a", 1, v, 2);
    n = entry(f, n, "a", 1, v, 2);
    sq_test_fails_with(sq_imatrix_parse(f, n, "dup", &im), "the name a appears twice");
    n = entry(f, header(f, 1, 1), "a", 1, neg, 2);
    sq_test_fails_with(sq_imatrix_parse(f, n, "neg", &im), "value 1 is -1");
    n = entry(f, header(f, 1, 1), "a", 1, nan_, 2);
    sq_test_fails_with(sq_imatrix_parse(f, n, "nan", &im), "value 1 is nan");
    n = entry(f, header(f, 1, 1), "a", 1, v, 0);
    sq_test_fails_with(sq_imatrix_parse(f, n, "zero", &im), "0 values");
    n = entry(f, header(f, 1, 1), "", 1, v, 2);
    sq_test_fails_with(sq_imatrix_parse(f, n, "noname", &im), "a name of 0 bytes");
    uint32_t big = 1u << 30;
    n = put(f, header(f, 1, 1), &big, 4);
    sq_test_fails_with(sq_imatrix_parse(f, n, "huge", &im), "truncated name");
    sq_test_fails_with(sq_imatrix_load(sq_test_work("no-such.imatrix"), &im), "no-such.imatrix");
}

/* sum_j qw_j (x_j - dequant(quant(x))_j)^2 over a row */
static double weighted_error(sq_dtype dt, const float *x, const float *qw, int n, int weighted) {
    const sq_dtype_traits *f = sq_dtype_info(dt);
    uint8_t *q = malloc(sq_row_bytes(dt, n));
    float *y = malloc((size_t)n * sizeof *y);
    if (weighted)
        f->from_f32_weighted(x, q, n, qw);
    else
        f->from_f32(x, q, n);
    f->to_f32(q, y, n);
    double e = 0;
    for (int j = 0; j < n; j++) {
        assert_true(isfinite(y[j]));
        e += qw[j] * ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
    }
    free(q);
    free(y);
    return e;
}

/* On rows of Gaussian-like values whose importance spans six decades (log-uniform, as activations' mean
 * squares do), each weighted quantizer's total importance-weighted error must be below the plain reference
 * quantizer's, which ignores the importance; an all-zero importance must still give finite values. Measured:
 * ratios 0.29 (q2_k) .. 0.64 (q4_0); required: below 0.95. */
static void test_weighted_quantizers(void **state) {
    (void)state;
    uint64_t seed = 11;
    int tested = 0;
    for (int dt = 0; dt < SQ_DTYPE_COUNT; dt++) {
        const sq_dtype_traits *f = sq_dtype_info((sq_dtype)dt);
        if (!f->from_f32_weighted) continue;
        const int n = f->block_elems == SQ_QK_K ? 3 * SQ_QK_K : 9 * 32;
        float *x = malloc((size_t)n * sizeof *x), *qw = malloc((size_t)n * sizeof *qw);
        double ew = 0, er = 0;
        for (int row = 0; row < 24; row++) {
            for (int j = 0; j < n; j++) {
                float u = 0;
                for (int k = 0; k < 4; k++) u += sq_test_rand_uniform(&seed, -1, 1);
                x[j] = u * (row % 3 + 1) * 0.02f;
                qw[j] = powf(10.0f, sq_test_rand_uniform(&seed, -3, 3));
            }
            ew += weighted_error((sq_dtype)dt, x, qw, n, 1);
            er += weighted_error((sq_dtype)dt, x, qw, n, 0);
        }
        print_message("%s: importance-weighted error, weighted / plain quantizer: %.3f\n", f->name, ew / er);
        if (!(ew < 0.95 * er)) fail_msg("%s: weighted error %g, plain %g", f->name, ew, er);
        memset(qw, 0, (size_t)n * sizeof *qw);
        weighted_error((sq_dtype)dt, x, qw, n, 1);
        free(x);
        free(qw);
        tested++;
    }
    assert_int_equal(tested, 9); /* q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compute_matches_tap),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_weighted_quantizers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
