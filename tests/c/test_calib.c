/* The calibration loop (squeeze.h, "calibration"): samples drawn from text, the statistics of every linear
 * layer's input against a plain double-precision reference gathered through an ordinary forward pass, the
 * block-by-block order (later blocks see the changed earlier ones), and bad requests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "testlib.h"

#define N_POINTS 4 /* SQ_TAP_ATTN_IN .. SQ_TAP_FFN_DOWN */

/* ---------------------------------------------------------------- samples */

static void test_samples_from_text(void **state) {
    (void)state;
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.model"), &tok));
    size_t len;
    char *text = sq_test_read_file(sq_test_shared("data/classics/alice_in_wonderland.txt"), &len);
    len = 20000; /* a few thousand tokens */
    int32_t *all;
    int n_all;
    sq_test_ok(sq_tokenize(tok, text, len, 0, 0, &all, &n_all));
    sq_calib_samples a, b, c;
    sq_test_ok(sq_calib_samples_from_text(tok, text, len, 7, 37, 1, 42, &a));
    sq_test_ok(sq_calib_samples_from_text(tok, text, len, 7, 37, 1, 42, &b));
    sq_test_ok(sq_calib_samples_from_text(tok, text, len, 7, 37, -1, 43, &c));
    assert_int_equal(a.n_samples, 7);
    assert_int_equal(a.seq_len, 37);
    assert_memory_equal(a.ids, b.ids, 7 * 37 * sizeof *a.ids); /* the seed decides */
    int distinct_starts = 0, prev = -1;
    for (int s = 0; s < 7; s++) {
        const int32_t *w = a.ids + s * 37, *v = c.ids + s * 37;
        assert_int_equal(w[0], 1); /* BOS, then 36 consecutive text tokens */
        int found = -1, found_c = -1;
        for (int p = 0; p + 36 <= n_all && found < 0; p++)
            if (!memcmp(all + p, w + 1, 36 * sizeof *w)) found = p;
        for (int p = 0; p + 37 <= n_all && found_c < 0; p++)
            if (!memcmp(all + p, v, 37 * sizeof *v)) found_c = p; /* no BOS: 37 text tokens */
        assert_true(found >= 0);
        assert_true(found_c >= 0);
        distinct_starts += found != prev;
        prev = found;
    }
    assert_true(distinct_starts > 1);
    sq_calib_samples_free(&a);
    sq_calib_samples_free(&b);
    sq_calib_samples_free(&c);

    sq_calib_samples bad;
    sq_test_fails_with(sq_calib_samples_from_text(tok, text, 100, 4, 512, 1, 0, &bad), "a window needs 511");
    assert_null(bad.ids);
    sq_test_fails_with(sq_calib_samples_from_text(tok, text, len, 0, 16, 1, 0, &bad), "0 samples of 16");
    sq_test_fails_with(sq_calib_samples_from_text(tok, text, len, 4, 1, 1, 0, &bad), "no room after BOS");
    sq_test_fails_with(sq_calib_samples_from_text(tok, text, len, 1 << 20, 1 << 10, 1, 0, &bad), "at most");
    sq_test_fails_with(sq_calib_samples_from_ids(NULL, 2, 2, &bad), "no ids");
    free(all);
    free(text);
    sq_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- statistics */

/* Statistics of one block's four inputs, as plain arrays. */
typedef struct block_stats {
    int width[N_POINTS];
    int64_t n_tokens[N_POINTS];
    double *xtx[N_POINTS], *sum_sq[N_POINTS], *sum_abs[N_POINTS], *max_abs[N_POINTS];
} block_stats;

typedef struct recorder {
    block_stats *blocks; /* [n_layers] */
    int scale_down;      /* apply_block halves the block's ffn_down */
    int fail_at;         /* apply_block fails at this block (-1: never) */
    int calls;
} recorder;

static double *dup_or_null(const double *x, size_t n) {
    if (!x) return NULL;
    double *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

static SQ_NODISCARD sq_error *record(void *user, sq_model *model, int layer, const sq_calib_stats *stats) {
    recorder *r = user;
    r->calls++;
    block_stats *b = &r->blocks[layer];
    for (int p = 0; p < N_POINTS; p++) {
        const sq_calib_stats *s = &stats[p];
        assert_int_equal(s->layer, layer);
        assert_int_equal(s->point, p);
        const size_t w = (size_t)s->width;
        b->width[p] = s->width;
        b->n_tokens[p] = s->n_tokens;
        b->xtx[p] = dup_or_null(s->xtx, w * w);
        b->sum_sq[p] = dup_or_null(s->sum_sq, w);
        b->sum_abs[p] = dup_or_null(s->sum_abs, w);
        b->max_abs[p] = dup_or_null(s->max_abs, w);
    }
    if (layer == r->fail_at) return sq_errorf(SQ_ERR_INVALID_ARG, "method refuses block %d", layer);
    if (!r->scale_down) return NULL;
    char name[64];
    snprintf(name, sizeof name, "blk.%d.ffn_down.weight", layer);
    sq_tensor_info info;
    sq_model_tensor_info(model, sq_model_tensor_index(model, name), &info);
    const int64_t n = info.shape[0] * info.shape[1];
    float *w = malloc((size_t)n * sizeof *w);
    sq_error *err = sq_model_read_tensor(model, name, w, n);
    for (int64_t i = 0; !err && i < n; i++) w[i] *= 0.5f;
    if (!err) err = sq_model_edit_tensors(model, &(sq_tensor_edit){.name = name, .values = w}, 1);
    free(w);
    return err;
}

static void free_blocks(block_stats *b, int n) {
    for (int l = 0; l < n; l++)
        for (int p = 0; p < N_POINTS; p++) {
            free(b[l].xtx[p]);
            free(b[l].sum_sq[p]);
            free(b[l].sum_abs[p]);
            free(b[l].max_abs[p]);
        }
    free(b);
}

/* The reference: every sample through an ordinary forward pass (one sequence, the whole window in one call),
 * each tapped input summed with plain double loops. */
typedef struct ref_run {
    block_stats *blocks;
} ref_run;

static void ref_tap(void *user, int layer, sq_tap_point point, int expert, const float *x, int n, int width) {
    ref_run *r = user;
    (void)expert;
    if (layer < 0 || (int)point >= N_POINTS) return;
    block_stats *b = &r->blocks[layer];
    const size_t w = (size_t)width;
    if (!b->xtx[point]) {
        b->width[point] = width;
        b->xtx[point] = calloc(w * w, sizeof(double));
        b->sum_sq[point] = calloc(w, sizeof(double));
        b->sum_abs[point] = calloc(w, sizeof(double));
        b->max_abs[point] = calloc(w, sizeof(double));
    }
    b->n_tokens[point] += n;
    for (int t = 0; t < n; t++) {
        const float *row = x + (size_t)t * w;
        for (size_t i = 0; i < w; i++) {
            b->sum_sq[point][i] += (double)row[i] * row[i];
            b->sum_abs[point][i] += fabs((double)row[i]);
            if (fabs((double)row[i]) > b->max_abs[point][i]) b->max_abs[point][i] = fabs((double)row[i]);
            for (size_t j = 0; j < w; j++) b->xtx[point][i * w + j] += (double)row[i] * row[j];
        }
    }
}

static block_stats *reference_stats(const sq_model *m, const sq_calib_samples *s) {
    sq_model_info info;
    sq_model_get_info(m, &info);
    ref_run r = {calloc((size_t)info.n_layers, sizeof *r.blocks)};
    sq_context *ctx;
    sq_test_ok(sq_context_create(m, &(sq_context_options){.n_ctx = s->seq_len, .n_threads = 2}, &ctx));
    sq_context_set_tap(ctx, ref_tap, &r);
    for (int i = 0; i < s->n_samples; i++) {
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        sq_seq_batch b = {.seq_id = 0, .tokens = s->ids + (size_t)i * s->seq_len, .n_tokens = s->seq_len};
        sq_test_ok(sq_forward(ctx, &b, 1));
    }
    sq_context_free(ctx);
    return r.blocks;
}

/* max |a - b| / max |b| */
static double rel(const double *a, const double *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

/* The largest relative difference over every statistic of every block. */
static double compare(const block_stats *got, const block_stats *want, int n_layers) {
    double worst = 0;
    for (int l = 0; l < n_layers; l++)
        for (int p = 0; p < N_POINTS; p++) {
            const size_t w = (size_t)want[l].width[p];
            assert_int_equal(got[l].width[p], w);
            assert_int_equal(got[l].n_tokens[p], want[l].n_tokens[p]);
            worst = fmax(worst, rel(got[l].xtx[p], want[l].xtx[p], w * w));
            worst = fmax(worst, rel(got[l].sum_sq[p], want[l].sum_sq[p], w));
            worst = fmax(worst, rel(got[l].sum_abs[p], want[l].sum_abs[p], w));
            worst = fmax(worst, rel(got[l].max_abs[p], want[l].max_abs[p], w));
        }
    return worst;
}

static sq_calib_samples random_samples(int n_samples, int seq_len, int vocab, uint64_t seed) {
    int32_t *ids = malloc((size_t)n_samples * seq_len * sizeof *ids);
    for (int i = 0; i < n_samples * seq_len; i++)
        ids[i] = (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)vocab);
    sq_calib_samples s;
    sq_test_ok(sq_calib_samples_from_ids(ids, n_samples, seq_len, &s));
    free(ids);
    return s;
}

static const unsigned all_stats = SQ_CALIB_XTX | SQ_CALIB_SUM_SQ | SQ_CALIB_SUM_ABS | SQ_CALIB_MAX_ABS;

/* Statistics only: each block's inputs equal those of an ordinary forward pass of the same model. Five
 * samples of 23 tokens, two per step: the last step is short. */
static void test_stats_match_forward(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_model_info info;
    sq_model_get_info(m, &info);
    sq_calib_samples s = random_samples(5, 23, info.vocab_size, 11);
    recorder rec = {calloc((size_t)info.n_layers, sizeof *rec.blocks), 0, -1, 0};
    const sq_calib_method method = {.stats = all_stats, .apply_block = record, .user = &rec};
    sq_test_ok(sq_calibrate(m, &s, &method, &(sq_calib_options){.n_threads = 2, .batch_tokens = 46}));
    assert_int_equal(rec.calls, info.n_layers);
    block_stats *want = reference_stats(m, &s);
    const double err = compare(rec.blocks, want, info.n_layers);
    assert_true(err < 1e-5); /* fp32 activations through differently batched matmuls; sums in double */
    assert_int_equal(rec.blocks[0].width[SQ_TAP_FFN_DOWN], info.ffn_dim);
    assert_int_equal(rec.blocks[0].n_tokens[SQ_TAP_ATTN_IN], 5 * 23);
    free_blocks(want, info.n_layers);
    free_blocks(rec.blocks, info.n_layers);

    /* only what is asked for is gathered */
    rec = (recorder){calloc((size_t)info.n_layers, sizeof *rec.blocks), 0, -1, 0};
    const sq_calib_method some = {.stats = SQ_CALIB_SUM_ABS, .apply_block = record, .user = &rec};
    sq_test_ok(sq_calibrate(m, &s, &some, NULL));
    assert_null(rec.blocks[1].xtx[0]);
    assert_null(rec.blocks[1].sum_sq[2]);
    assert_null(rec.blocks[1].max_abs[3]);
    assert_non_null(rec.blocks[1].sum_abs[3]);
    free_blocks(rec.blocks, info.n_layers);
    sq_calib_samples_free(&s);
    sq_model_free(m);
}

/* Block by block: a method that halves each block's ffn_down as it goes. Block l's inputs depend only on the
 * blocks before it and on its own attention, gate and up, so the statistics the loop hands block l must be
 * those of an ordinary forward pass of the final model, and (from block 1 on) not those of the original. */
static void test_blocks_see_changed_blocks(void **state) {
    (void)state;
    sq_model *m, *orig;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &orig));
    sq_model_info info;
    sq_model_get_info(m, &info);
    sq_calib_samples s = random_samples(3, 31, info.vocab_size, 5);
    recorder rec = {calloc((size_t)info.n_layers, sizeof *rec.blocks), 1, -1, 0};
    const sq_calib_method method = {
        .stats = all_stats, .apply_block = record, .changes_weights = 1, .user = &rec};
    sq_test_ok(sq_calibrate(m, &s, &method, &(sq_calib_options){.n_threads = 1, .batch_tokens = 64}));
    block_stats *final = reference_stats(m, &s), *before = reference_stats(orig, &s);
    assert_true(compare(rec.blocks, final, info.n_layers) < 1e-5);
    assert_true(compare(rec.blocks + 1, before + 1, info.n_layers - 1) > 1e-2);
    free_blocks(final, info.n_layers);
    free_blocks(before, info.n_layers);
    free_blocks(rec.blocks, info.n_layers);
    sq_calib_samples_free(&s);
    sq_model_free(orig);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- bad requests */

static void test_bad_requests(void **state) {
    (void)state;
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &m));
    sq_model_info info;
    sq_model_get_info(m, &info);
    recorder rec = {calloc((size_t)info.n_layers, sizeof *rec.blocks), 0, 2, 0};
    const sq_calib_method method = {.stats = SQ_CALIB_XTX, .apply_block = record, .user = &rec};

    sq_calib_samples longer = random_samples(1, info.max_seq_len + 1, info.vocab_size, 1);
    sq_test_fails_with(sq_calibrate(m, &longer, &method, NULL), "exceed the model's context");
    sq_calib_samples_free(&longer);

    sq_calib_samples s = random_samples(2, 8, info.vocab_size, 2);
    s.ids[9] = info.vocab_size;
    sq_test_fails_with(sq_calibrate(m, &s, &method, NULL), "sample 1, token 1: id 512 is outside");
    s.ids[9] = -1;
    sq_test_fails_with(sq_calibrate(m, &s, &method, NULL), "id -1 is outside");
    s.ids[9] = 3;
    sq_test_fails_with(sq_calibrate(m, &s, &(sq_calib_method){.stats = 16}, NULL), "unknown statistics");
    sq_test_fails_with(sq_calibrate(m, &s, &method, &(sq_calib_options){.n_threads = -1}), "invalid options");
    sq_test_fails_with(sq_calibrate(m, NULL, &method, NULL), "no samples");
    /* the method's own error comes back, after blocks 0, 1 and 2 were handed their statistics */
    sq_test_fails_with(sq_calibrate(m, &s, &method, NULL), "method refuses block 2");
    assert_int_equal(rec.calls, 3);
    free_blocks(rec.blocks, info.n_layers);
    sq_calib_samples_free(&s);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_from_text),
        cmocka_unit_test(test_stats_match_forward),
        cmocka_unit_test(test_blocks_see_changed_blocks),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
