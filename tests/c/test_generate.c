/* sq_generate on stories15M against loops written here: greedy against recomputing the whole sequence every
 * step (no KV reuse), sampling against a token-by-token loop with its own sampler; then the stop conditions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

typedef struct fixture {
    sq_model *model;
    const sq_tokenizer *tok;
    int vocab;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    sq_error *err = sq_model_load(sq_test_shared("models/stories15M.bin"), NULL, &f->model);
    if (err) {
        fprintf(stderr, "loading stories15M: %s\n", sq_error_message(err));
        sq_error_free(err);
        free(f);
        return -1;
    }
    f->tok = sq_model_tokenizer(f->model);
    sq_model_info info;
    sq_model_get_info(f->model, &info);
    f->vocab = info.vocab_size;
    *state = f;
    return f->tok ? 0 : -1;
}

static int teardown(void **state) {
    fixture *f = *state; /* NULL when setup failed */
    if (f) sq_model_free(f->model);
    free(f);
    return 0;
}

static sq_context *make_context(fixture *f, int n_ctx) {
    sq_context *ctx;
    sq_context_options o = {.n_ctx = n_ctx, .n_seq_max = 1, .n_threads = 1}; /* the suite shares its cores */
    sq_test_ok(sq_context_create(f->model, &o, &ctx));
    return ctx;
}

/* The text the callback saw, and how often it was called. */
typedef struct collected {
    char text[8192];
    size_t len;
    int calls, stop_after;
} collected;

static int collect(const char *piece, size_t len, void *user) {
    collected *c = user;
    assert_true(len > 0);
    assert_true(c->len + len < sizeof c->text);
    memcpy(c->text + c->len, piece, len);
    c->text[c->len += len] = 0;
    return ++c->calls == c->stop_after;
}

static int32_t *tokenize_prompt(fixture *f, const char *prompt, int *n) {
    int32_t *ids;
    sq_test_ok(sq_tokenize(f->tok, prompt, strlen(prompt), sq_tokenizer_adds_bos(f->tok), 1, &ids, n));
    return ids;
}

static int is_end(fixture *f, int32_t id) {
    return id == sq_tokenizer_eos(f->tok) || id == sq_tokenizer_bos(f->tok);
}

/* Reference: the text up to n_predict tokens add to the prompt's (stopping at EOS/BOS or n_ctx), each step
 * either recomputing the whole sequence from an empty cache (recompute) or feeding the last token
 * (incremental). The text is decode(prompt + generated) minus decode(prompt): what a reader of the prompt
 * sees appended, the first word's leading space included. */
static char *reference_text(fixture *f, const char *prompt, int n_predict, int n_ctx,
                            const sq_sampler_params *p, int recompute, int *n_generated) {
    sq_context *ctx = make_context(f, n_ctx);
    sq_sampler *s;
    sq_test_ok(sq_sampler_create(p, f->vocab, &s));
    int n;
    int32_t *prompt_ids = tokenize_prompt(f, prompt, &n);
    int32_t *seq = malloc((size_t)n_ctx * sizeof *seq);
    memcpy(seq, prompt_ids, (size_t)n * sizeof *seq);
    free(prompt_ids);
    float *logits = malloc((size_t)f->vocab * sizeof *logits);
    const int n_prompt = n;
    int fed = 0; /* tokens of seq already in the cache */
    while (n - n_prompt < n_predict && n < n_ctx) {
        if (recompute) {
            sq_test_ok(sq_seq_truncate(ctx, 0, 0));
            fed = 0;
        }
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = seq + fed,
                          .n_tokens = n - fed,
                          .logits_mode = SQ_LOGITS_LAST,
                          .logits = logits};
        sq_test_ok(sq_forward(ctx, &b, 1));
        fed = n;
        int32_t next = sq_sampler_sample(s, logits, seq, n);
        if (is_end(f, next)) break;
        seq[n++] = next;
    }
    *n_generated = n - n_prompt;
    char *whole, *before;
    size_t whole_len, before_len;
    sq_test_ok(sq_detokenize(f->tok, seq, n, &whole, &whole_len));
    sq_test_ok(sq_detokenize(f->tok, seq, n_prompt, &before, &before_len));
    assert_true(before_len <= whole_len && !memcmp(whole, before, before_len));
    char *text = strdup(whole + before_len);
    free(whole);
    free(before);
    free(seq);
    free(logits);
    sq_sampler_free(s);
    sq_context_free(ctx);
    return text;
}

static sq_sampler_params greedy_params(void) {
    sq_sampler_params p = sq_sampler_default_params();
    p.temperature = 0;
    return p;
}

static int starts_with(const char *text, const char *prefix) {
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static const char *const readme_continuation =
    ", there was a little girl named Lily. She loved to play outside in the sunshine.";

static void test_greedy(void **state) {
    fixture *f = *state;
    const char *prompt = "Once upon a time";
    sq_sampler_params p = greedy_params();
    /* the whole greedy story, token by token, until its end token or the full context */
    int n_story, n_recomputed;
    char *story = reference_text(f, prompt, 1 << 30, 256, &p, 0, &n_story);
    /* its start again, recomputing the whole sequence every step: no KV reuse */
    char *recomputed = reference_text(f, prompt, 12, 256, &p, 1, &n_recomputed);
    assert_int_equal(n_recomputed, 12);
    assert_true(starts_with(story, recomputed));
    assert_true(starts_with(story, readme_continuation));

    sq_context *ctx = make_context(f, 256);
    collected all = {0}, part = {0}, again = {0};
    sq_generate_stats st;
    sq_test_ok(sq_generate(ctx, prompt, -1, &p, collect, &all, &st));
    assert_string_equal(all.text, story);
    assert_int_equal(st.generated_tokens, n_story);
    assert_int_equal(st.decode_steps, n_story);                /* the last pass gave the end token's logits */
    assert_int_equal(st.prompt_tokens, 5);                     /* BOS + 4 pieces */
    assert_true(st.prompt_tokens + st.generated_tokens < 256); /* stories15M ends this story itself */
    printf("greedy story: %d tokens, then an end token\n", n_story);

    sq_test_ok(sq_generate(ctx, prompt, 24, &p, collect, &part, &st));
    printf("greedy, 24 tokens: \"%s\"\n", part.text);
    assert_int_equal(st.generated_tokens, 24);
    assert_int_equal(st.decode_steps,
                     23); /* the first token comes from the prefill, the last needs no pass */
    assert_true(st.prefill_seconds > 0 && st.decode_seconds > 0);
    assert_true(starts_with(story, part.text));
    assert_true(starts_with(part.text, readme_continuation));
    /* the context is reused: every call starts from a cleared sequence */
    sq_test_ok(sq_generate(ctx, prompt, 24, &p, collect, &again, NULL));
    assert_string_equal(again.text, part.text);
    free(story);
    free(recomputed);
    sq_context_free(ctx);
}

/* Issue 7 item 5: the first generated word keeps the space before it. stories15M greedily continues this
 * prompt with "▁girl", which begins a word: streamed alone it used to lose its space ("a littlegirl"). */
static void test_continues_the_prompt(void **state) {
    fixture *f = *state;
    const char *prompt = "Once upon a time there was a little";
    sq_sampler_params p = greedy_params();
    int n_ref;
    char *want = reference_text(f, prompt, 8, 64, &p, 0, &n_ref);
    sq_context *ctx = make_context(f, 64);
    collected got = {0};
    sq_test_ok(sq_generate(ctx, prompt, 8, &p, collect, &got, NULL));
    printf("\"%s\" + \"%s\"\n", prompt, got.text);
    assert_string_equal(got.text, want);
    assert_true(starts_with(got.text, " girl"));
    free(want);
    sq_context_free(ctx);
}

static void test_sampling_matches_reference_loop(void **state) {
    fixture *f = *state;
    const char *prompt = "The little dog";
    sq_sampler_params p = {.temperature = 0.9f,
                           .top_k = 40,
                           .top_p = 0.9f,
                           .min_p = 0.05f,
                           .repeat_penalty = 1.1f,
                           .repeat_last_n = 16,
                           .seed = 1234};
    int n_ref;
    char *want = reference_text(f, prompt, 30, 256, &p, 0, &n_ref);
    sq_context *ctx = make_context(f, 256);
    collected a = {0}, b = {0}, c = {0};
    sq_generate_stats st;
    sq_test_ok(sq_generate(ctx, prompt, 30, &p, collect, &a, &st));
    printf("sampled (seed 1234): \"%s\"\n", a.text);
    assert_string_equal(a.text, want);
    assert_int_equal(st.generated_tokens, n_ref);
    sq_test_ok(sq_generate(ctx, prompt, 30, &p, collect, &b, NULL));
    assert_string_equal(a.text, b.text);
    p.seed = 99;
    sq_test_ok(sq_generate(ctx, prompt, 30, &p, collect, &c, NULL));
    assert_true(strcmp(a.text, c.text) != 0);
    free(want);
    sq_context_free(ctx);
}

static void test_context_limits(void **state) {
    fixture *f = *state;
    sq_sampler_params p = greedy_params();
    sq_generate_stats st;
    /* a small context fills: prompt + generated == n_ctx */
    sq_context *ctx = make_context(f, 12);
    collected small = {0};
    sq_test_ok(sq_generate(ctx, "Once upon a time", 100, &p, collect, &small, &st));
    assert_int_equal(st.prompt_tokens + st.generated_tokens, 12);
    assert_int_equal(st.decode_steps, st.generated_tokens - 1);
    assert_true(starts_with(readme_continuation, small.text));
    /* a prompt as long as the context (BOS + 11 pieces, as sentencepiece counts them) generates nothing; a
     * longer one is an error */
    collected none = {0};
    sq_test_ok(
        sq_generate(ctx, "Once upon a time there was a little girl named Sue", 5, &p, collect, &none, &st));
    assert_int_equal(st.prompt_tokens, 12);
    assert_int_equal(st.generated_tokens, 0);
    assert_int_equal(st.decode_steps, 0);
    assert_true(st.decode_seconds == 0);
    assert_int_equal(none.calls, 0);
    sq_test_fails_with(sq_generate(ctx, "Once upon a time there was a little girl who loved to play", 5, &p,
                                   collect, &none, &st),
                       "context holds only 12");
    sq_context_free(ctx);
}

static void test_stops(void **state) {
    fixture *f = *state;
    sq_sampler_params p = greedy_params();
    sq_context *ctx = make_context(f, 64);
    sq_generate_stats st;
    collected zero = {0};
    sq_test_ok(sq_generate(ctx, "Once upon a time", 0, &p, collect, &zero, &st));
    assert_int_equal(st.generated_tokens, 0);
    assert_int_equal(zero.calls, 0);
    assert_int_equal(st.prompt_tokens, 5);
    /* the callback stops it: no further calls, not even the flush */
    collected three = {.stop_after = 3};
    sq_test_ok(sq_generate(ctx, "Once upon a time", 40, &p, collect, &three, &st));
    assert_int_equal(three.calls, 3);
    assert_true(st.generated_tokens >= 3 && st.generated_tokens < 40);
    assert_int_equal(st.decode_steps, st.generated_tokens - 1);
    /* no callback at all is fine */
    sq_test_ok(sq_generate(ctx, "Once upon a time", 5, &p, NULL, NULL, &st));
    assert_int_equal(st.generated_tokens, 5);
    assert_int_equal(st.decode_steps, 4);
    sq_test_ok(sq_generate(ctx, "Once upon a time", 1, &p, NULL, NULL, &st));
    assert_int_equal(st.generated_tokens, 1);
    assert_true(st.decode_steps == 0 && st.decode_seconds == 0);
    /* bad sampler parameters surface as the sampler's error */
    p.top_p = 2;
    sq_test_fails_with(sq_generate(ctx, "Once", 5, &p, collect, &zero, &st), "top_p");
    sq_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_continues_the_prompt),
        cmocka_unit_test(test_sampling_matches_reference_loop),
        cmocka_unit_test(test_context_limits),
        cmocka_unit_test(test_stops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
