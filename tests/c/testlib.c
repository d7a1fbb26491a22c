#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sq_test_shared(const char *rel) {
    static char buf[4096];
    const char *root = getenv("SQ_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

const char *sq_test_work(const char *rel) {
    static char buf[4096];
    const char *root = getenv("SQ_WORK");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "/tmp", rel);
    return buf;
}

const char *sq_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return path;
}

char *sq_test_read_file(const char *path, size_t *n) {
    char *data = NULL;
    sq_test_ok(sq_read_file(path, (size_t)1 << 30, &data, n));
    return data;
}

void sq_test_ok(sq_error *err) {
    if (err) {
        print_error("unexpected error: %s\n", sq_error_message(err));
        sq_error_free(err);
        fail();
    }
}

void sq_test_fails_with(sq_error *err, const char *needle) {
    if (!err) fail_msg("expected an error mentioning \"%s\", got success", needle);
    if (!strstr(sq_error_message(err), needle)) {
        print_error("expected an error mentioning \"%s\", got: %s\n", needle, sq_error_message(err));
        sq_error_free(err);
        fail();
    }
    sq_error_free(err);
}

uint64_t sq_test_rand_u64(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

float sq_test_rand_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((sq_test_rand_u64(s) >> 40) / (double)(1ull << 24));
}

int sq_test_read_ids(const char *path, int32_t *ids, int max) {
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int n = 0;
    while (n < max && fscanf(fp, "%d", &ids[n]) == 1) n++;
    fclose(fp);
    return n;
}

float *sq_test_read_f32(const char *path, size_t count) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    float *data = malloc(count * sizeof *data);
    assert_non_null(data);
    assert_int_equal(fread(data, sizeof *data, count, fp), count);
    fclose(fp);
    return data;
}

double sq_test_rel_err(const float *a, const float *b, size_t n) {
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
        maxref = fmax(maxref, fabs((double)b[i]));
    }
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

void sq_test_check_logits(const float *got, const float *want, int n_rows, int vocab, double tol,
                          const char *what) {
    for (int t = 0; t < n_rows; t++) {
        const float *g = got + (size_t)t * vocab, *w = want + (size_t)t * vocab;
        double err = sq_test_rel_err(g, w, (size_t)vocab);
        int ag = 0, aw = 0;
        for (int i = 1; i < vocab; i++) {
            if (g[i] > g[ag]) ag = i;
            if (w[i] > w[aw]) aw = i;
        }
        if (err > tol || ag != aw)
            fail_msg("%s: position %d: relative error %.3g (tolerance %g), argmax %d vs %d", what, t, err,
                     tol, ag, aw);
    }
}

float *sq_test_logits(const sq_model *m, const int32_t *ids, int n, const unsigned char *skip_layers) {
    sq_model_info info;
    sq_model_get_info(m, &info);
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = n}, &ctx));
    float *logits = malloc((size_t)n * info.vocab_size * sizeof *logits);
    sq_seq_batch b = {
        .seq_id = 0, .tokens = ids, .n_tokens = n, .logits_mode = SQ_LOGITS_ALL, .logits = logits};
    sq_test_ok(sq_forward_ex(ctx, &b, 1, &(sq_forward_options){.skip_layers = skip_layers}));
    sq_context_free(ctx);
    return logits;
}
