/* The forward pass against the golden logits of an independent float64 implementation (../shared/golden),
 * for stories15M (multi-head) and stories260K (grouped-query attention), in every way of feeding tokens:
 * one prefill call, one token per call, chunks, and several sequences in one batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* fp32 arithmetic against a float64 reference: max |diff| / max |ref| per row */
#define GOLDEN_TOLERANCE 1e-4

typedef struct {
    const char *model, *tokens, *logits;
    int vocab;
} golden_case;

static const golden_case cases[] = {
    {"models/stories15M.bin", "golden/stories15M.tokens.txt", "golden/stories15M.logits.f32", 32000},
    {"models/stories260K.bin", "golden/stories260K.tokens.txt", "golden/stories260K.logits.f32", 512},
};

static void check_rows(const float *got, const float *want, int n, int vocab, const char *what) {
    sq_test_check_logits(got, want, n, vocab, GOLDEN_TOLERANCE, what);
}

/* Feeds the golden tokens `step` at a time (step >= n: one call) into sequence `seq` of ctx. */
static void run_steps(sq_context *ctx, int seq, const int32_t *ids, int n, int step, int vocab, float *out) {
    for (int s = 0; s < n; s += step) {
        int len = n - s < step ? n - s : step;
        sq_seq_batch b = {.seq_id = seq,
                          .tokens = ids + s,
                          .n_tokens = len,
                          .logits_mode = SQ_LOGITS_ALL,
                          .logits = out + (size_t)s * vocab};
        sq_test_ok(sq_forward(ctx, &b, 1));
    }
}

static void test_golden(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const golden_case *g = &cases[c];
        sq_model *model;
        sq_test_ok(sq_model_load(sq_test_shared(g->model), NULL, &model));
        int32_t ids[64];
        int n = sq_test_read_ids(sq_test_shared(g->tokens), ids, 64);
        assert_true(n > 8);
        float *want = sq_test_read_f32(sq_test_shared(g->logits), (size_t)n * g->vocab);
        float *got = malloc((size_t)n * g->vocab * sizeof *got);
        assert_non_null(got);
        const int steps[] = {n, 1, 5};
        const int threads[] = {1, 2, 3};
        for (size_t s = 0; s < 3; s++) {
            sq_context *ctx;
            sq_test_ok(sq_context_create(model, &(sq_context_options){.n_threads = threads[s]}, &ctx));
            memset(got, 0xff, (size_t)n * g->vocab * sizeof *got); /* NaN: every row must be written */
            run_steps(ctx, 0, ids, n, steps[s], g->vocab, got);
            char what[128];
            snprintf(what, sizeof what, "%s, %d tokens per call, %d threads", g->model, steps[s], threads[s]);
            check_rows(got, want, n, g->vocab, what);
            sq_context_free(ctx);
        }
        sq_model_free(model);
        free(want);
        free(got);
    }
}

/* Three sequences of different lengths and offsets in one batch, with a small n_batch_max forcing chunks:
 * every sequence's logits equal the golden ones for its own tokens. */
static void test_batched_sequences(void **state) {
    (void)state;
    const golden_case *g = &cases[1];
    sq_model *model;
    sq_test_ok(sq_model_load(sq_test_shared(g->model), NULL, &model));
    int32_t ids[64];
    int n = sq_test_read_ids(sq_test_shared(g->tokens), ids, 64);
    float *want = sq_test_read_f32(sq_test_shared(g->logits), (size_t)n * g->vocab);
    sq_context *ctx;
    sq_test_ok(sq_context_create(
        model, &(sq_context_options){.n_seq_max = 3, .n_batch_max = 7, .n_threads = 2}, &ctx));
    float *out[3];
    for (int s = 0; s < 3; s++) out[s] = malloc((size_t)n * g->vocab * sizeof(float));
    /* sequence s has already consumed `pre[s]` tokens; the batch carries the rest for each */
    const int pre[3] = {0, 10, n - 1};
    for (int s = 0; s < 3; s++)
        if (pre[s]) run_steps(ctx, s, ids, pre[s], pre[s], g->vocab, out[s]);
    sq_seq_batch batch[3];
    for (int s = 0; s < 3; s++)
        batch[s] = (sq_seq_batch){.seq_id = s,
                                  .tokens = ids + pre[s],
                                  .n_tokens = n - pre[s],
                                  .logits_mode = SQ_LOGITS_ALL,
                                  .logits = out[s] + (size_t)pre[s] * g->vocab};
    sq_test_ok(sq_forward(ctx, batch, 3));
    for (int s = 0; s < 3; s++) {
        assert_int_equal(sq_seq_len(ctx, s), n);
        check_rows(out[s], want, n, g->vocab, "batched sequences");
    }
    /* KV rollback: truncate and re-run the tail; the logits are the same */
    sq_test_ok(sq_seq_truncate(ctx, 1, 20));
    sq_seq_batch tail = {
        .seq_id = 1, .tokens = ids + 20, .n_tokens = n - 20, .logits_mode = SQ_LOGITS_LAST, .logits = out[1]};
    sq_test_ok(sq_forward(ctx, &tail, 1));
    check_rows(out[1], want + (size_t)(n - 1) * g->vocab, 1, g->vocab, "after truncation");
    for (int s = 0; s < 3; s++) free(out[s]);
    free(want);
    sq_context_free(ctx);
    sq_model_free(model);
}

static void test_bad_batches(void **state) {
    (void)state;
    sq_model *model;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &model));
    sq_context *ctx;
    sq_test_ok(sq_context_create(model, &(sq_context_options){.n_ctx = 8, .n_seq_max = 2}, &ctx));
    float logits[512];
    int32_t ok[3] = {1, 2, 3}, bad[2] = {1, 512};
    sq_test_fails_with(
        sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 2, .tokens = ok, .n_tokens = 3, .logits_mode = SQ_LOGITS_LAST, .logits = logits},
            1),
        "sequence id 2");
    sq_test_fails_with(
        sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = bad, .n_tokens = 2, .logits_mode = SQ_LOGITS_LAST, .logits = logits},
            1),
        "token id 512");
    sq_test_fails_with(
        sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = ok, .n_tokens = 3, .logits_mode = SQ_LOGITS_LAST, .logits = NULL},
            1),
        "no buffer");
    sq_seq_batch twice[2] = {
        {.seq_id = 0, .tokens = ok, .n_tokens = 1, .logits_mode = SQ_LOGITS_NONE, .logits = NULL},
        {.seq_id = 0, .tokens = ok, .n_tokens = 1, .logits_mode = SQ_LOGITS_NONE, .logits = NULL}};
    sq_test_fails_with(sq_forward(ctx, twice, 2), "twice");
    sq_test_ok(sq_forward(
        ctx,
        &(sq_seq_batch){
            .seq_id = 0, .tokens = ok, .n_tokens = 3, .logits_mode = SQ_LOGITS_NONE, .logits = NULL},
        1));
    sq_test_ok(sq_forward(
        ctx,
        &(sq_seq_batch){
            .seq_id = 0, .tokens = ok, .n_tokens = 3, .logits_mode = SQ_LOGITS_NONE, .logits = NULL},
        1));
    sq_test_fails_with(
        sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = ok, .n_tokens = 3, .logits_mode = SQ_LOGITS_NONE, .logits = NULL},
            1),
        "exceed the context");
    assert_int_equal(sq_seq_len(ctx, 0), 6); /* the rejected batch changed nothing */
    sq_test_fails_with(sq_seq_truncate(ctx, 0, 7), "cannot truncate");
    sq_context *big;
    sq_test_fails_with(sq_context_create(model, &(sq_context_options){.n_ctx = 1 << 20}, &big), "exceeds");
    sq_context_free(ctx);
    sq_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_batched_sequences),
        cmocka_unit_test(test_bad_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
