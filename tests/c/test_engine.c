/* The serving engine (src/server/engine.c) on stories15M: greedy requests give exactly sq_generate's text,
 * alone and among 15 other requests; a prompt whose blocks come from the prefix cache continues exactly as a
 * cold run; preemption (a pool too small for the requests at once) loses nothing and changes no text;
 * stop strings split across tokens end the text before them; cancelled requests give back their blocks;
 * random mixes of requests and cancellations leave no block held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define MAX_OUT 4096

struct plain_results;
typedef struct fixture {
    sq_model *model;
    const sq_tokenizer *tok;
    struct plain_results *plain; /* the plain engine's results the speculative tests compare with */
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
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f) sq_model_free(f->model);
    if (f) free(f->plain);
    free(f);
    return 0;
}

/* What one request produced. */
typedef struct result {
    char text[MAX_OUT];
    size_t len;
    int32_t tokens[512];
    float logprobs[512];
    int n_tokens;
    sq_finish_reason finish;
    int events_after_finish;
    int cached_tokens, completion_tokens;
    int cancel_after; /* > 0: the callback cancels after this many tokens */
} result;

static int on_event(void *user, const sq_engine_event *ev) {
    result *r = user;
    if (r->finish) r->events_after_finish++;
    assert_true(r->len + ev->text_len < MAX_OUT);
    memcpy(r->text + r->len, ev->text, ev->text_len);
    r->len += ev->text_len;
    r->text[r->len] = 0;
    if (ev->token >= 0) {
        r->logprobs[r->n_tokens] = ev->logprob;
        r->tokens[r->n_tokens++] = ev->token;
    }
    r->finish = ev->finish;
    r->cached_tokens = ev->cached_tokens;
    r->completion_tokens = ev->completion_tokens;
    return r->cancel_after && r->n_tokens >= r->cancel_after;
}

/* the engines made below verify this many drafts per step, from this source */
static int spec_k;
static sq_engine_options spec_source = {.spec_draft = SQ_DRAFT_NGRAM};

static sq_engine *make_engine_ctx(fixture *f, int n_ctx, int max_seqs, size_t kv_mem, int no_prefix_cache) {
    sq_engine *e;
    sq_engine_options o = {.n_ctx = n_ctx,
                           .max_seqs = max_seqs,
                           .kv_mem = kv_mem,
                           .max_batch_tokens = 64,
                           .n_threads = 1,
                           .no_prefix_cache = no_prefix_cache,
                           .spec_k = spec_k,
                           .spec_draft = spec_source.spec_draft,
                           .spec_draft_model = spec_source.spec_draft_model,
                           .spec_skip_layers = spec_source.spec_skip_layers,
                           .spec_n_skip_layers = spec_source.spec_n_skip_layers};
    sq_test_ok(sq_engine_create(f->model, &o, &e));
    return e;
}

static sq_engine *make_engine(fixture *f, int max_seqs, size_t kv_mem, int no_prefix_cache) {
    return make_engine_ctx(f, 256, max_seqs, kv_mem, no_prefix_cache);
}

static void submit_text(fixture *f, sq_engine *e, const char *prompt, int max_tokens, sq_sampler_params sp,
                        const char *const *stop, int n_stop, result *r, int64_t *id) {
    int32_t *ids;
    int n;
    sq_test_ok(sq_tokenize(f->tok, prompt, strlen(prompt), sq_tokenizer_adds_bos(f->tok), 1, &ids, &n));
    sq_engine_request q = {.prompt = ids,
                           .n_prompt = n,
                           .max_tokens = max_tokens,
                           .sampling = sp,
                           .stop = stop,
                           .n_stop = n_stop,
                           .top_logprobs = 0};
    sq_test_ok(sq_engine_submit(e, &q, on_event, r, id));
    free(ids);
}

static void run_until_idle(sq_engine *e) {
    for (int busy = 1, steps = 0; busy; steps++) {
        assert_true(steps < 100000);
        sq_test_ok(sq_engine_step(e, &busy));
    }
}

static sq_sampler_params greedy(void) {
    return (sq_sampler_params){.temperature = 0, .top_p = 1, .repeat_penalty = 1};
}

/* sq_generate's text for the prompt: the reference */
typedef struct text_buf {
    char text[MAX_OUT];
    size_t len;
} text_buf;

static int collect(const char *piece, size_t len, void *user) {
    text_buf *t = user;
    memcpy(t->text + t->len, piece, len);
    t->text[t->len += len] = 0;
    return 0;
}

static void generate_text(fixture *f, const char *prompt, int n, text_buf *out) {
    sq_context *ctx;
    sq_test_ok(sq_context_create(f->model, &(sq_context_options){.n_ctx = 256, .n_threads = 1}, &ctx));
    sq_sampler_params sp = sq_sampler_default_params();
    sp.temperature = 0;
    out->len = 0;
    sq_test_ok(sq_generate(ctx, prompt, n, &sp, collect, out, NULL));
    sq_context_free(ctx);
}

static const char *const prompts[] = {
    "Once upon a time",    "The little dog", "Tom and Lily went to the park", "One day, a big bird",
    "Sara had a red ball", "The sun was",    "There was a cat named",         "Ben liked to",
};
#define N_PROMPTS (int)(sizeof prompts / sizeof *prompts)

static void test_greedy_alone_and_among_others(void **state) {
    fixture *f = *state;
    text_buf want;
    generate_text(f, prompts[0], 40, &want);
    /* alone */
    sq_engine *e = make_engine(f, 16, 0, 0);
    result *r = calloc(16, sizeof *r);
    submit_text(f, e, prompts[0], 40, greedy(), NULL, 0, &r[0], NULL);
    run_until_idle(e);
    assert_string_equal(r[0].text, want.text);
    assert_int_equal(r[0].finish, SQ_FINISH_LENGTH);
    assert_int_equal(r[0].events_after_finish, 0);
    /* among 15 others, sampled and of mixed lengths, submitted around it */
    memset(r, 0, 16 * sizeof *r);
    for (int i = 1; i < 16; i++) {
        sq_sampler_params sp = sq_sampler_default_params();
        sp.seed = (uint64_t)i;
        submit_text(f, e, prompts[i % N_PROMPTS], 8 + 2 * i, sp, NULL, 0, &r[i], NULL);
        if (i == 7) submit_text(f, e, prompts[0], 40, greedy(), NULL, 0, &r[0], NULL);
        if (i % 4 == 0) sq_test_ok(sq_engine_step(e, NULL));
    }
    run_until_idle(e);
    assert_string_equal(r[0].text, want.text);
    for (int i = 1; i < 16; i++)
        assert_true(r[i].finish == SQ_FINISH_STOP || r[i].finish == SQ_FINISH_LENGTH);
    sq_engine_free(e);
    free(r);
}

/* The second request's prompt shares 3 full blocks with the first's; it must reuse them and continue exactly
 * as in an engine that never saw the first request. */
static void test_prefix_reuse_matches_cold_run(void **state) {
    fixture *f = *state;
    const char *shared =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park with her friends. They liked to run and jump and laugh all day long. One day";
    char first[512], second[512];
    snprintf(first, sizeof first, "%s, she saw a big dog.", shared);
    snprintf(second, sizeof second, "%s, her mom said", shared);
    result cold = {0}, warm = {0}, other = {0};
    sq_engine *e = make_engine(f, 4, 0, 0);
    submit_text(f, e, second, 40, greedy(), NULL, 0, &cold, NULL);
    run_until_idle(e);
    sq_engine_free(e);
    assert_int_equal(cold.cached_tokens, 0);

    e = make_engine(f, 4, 0, 0);
    submit_text(f, e, first, 10, greedy(), NULL, 0, &other, NULL);
    run_until_idle(e);
    submit_text(f, e, second, 40, greedy(), NULL, 0, &warm, NULL);
    run_until_idle(e);
    sq_engine_stats st;
    sq_engine_get_stats(e, &st);
    sq_engine_free(e);
    assert_true(warm.cached_tokens >= 2 * 16); /* the shared text is over 2 blocks of 16 tokens */
    assert_int_equal(warm.cached_tokens % 16, 0);
    assert_int_equal(st.cached_tokens, warm.cached_tokens);
    assert_int_equal(warm.n_tokens, cold.n_tokens);
    assert_memory_equal(warm.tokens, cold.tokens, (size_t)cold.n_tokens * sizeof *cold.tokens);
    assert_string_equal(warm.text, cold.text);
    for (int i = 0; i < cold.n_tokens; i++) /* log-probabilities agree to float rounding */
        assert_float_equal(warm.logprobs[i], cold.logprobs[i], 1e-4);
}

/* A context of 64 positions and a pool of 5 blocks of 16: one full sequence (4 blocks) fits, four requests
 * growing to about 50 tokens each (4 blocks) do not, so the latest are preempted and recomputed. Nothing is
 * lost and the greedy texts are those of the requests run alone. */
static void test_preemption_by_recompute(void **state) {
    fixture *f = *state;
    sq_engine *e = make_engine_ctx(f, 64, 4, 0, 1);
    result alone[4] = {0};
    for (int i = 0; i < 4; i++) submit_text(f, e, prompts[i], 44, greedy(), NULL, 0, &alone[i], NULL);
    run_until_idle(e);
    sq_engine_stats big;
    sq_engine_get_stats(e, &big);
    sq_engine_free(e);
    assert_int_equal(big.preemptions, 0);

    size_t block_bytes = 0;
    { /* the bytes of one block, from a context of the same shape */
        sq_context *ctx;
        sq_test_ok(sq_context_create(f->model, &(sq_context_options){.n_ctx = 64, .n_threads = 1}, &ctx));
        block_bytes = sq_context_kv_bytes(ctx) / (size_t)sq_context_kv_blocks_total(ctx);
        sq_context_free(ctx);
    }
    e = make_engine_ctx(f, 64, 4, 5 * block_bytes, 1);
    result small[4] = {0};
    for (int i = 0; i < 4; i++) submit_text(f, e, prompts[i], 44, greedy(), NULL, 0, &small[i], NULL);
    run_until_idle(e);
    sq_engine_stats st;
    sq_engine_get_stats(e, &st);
    assert_int_equal(st.kv_blocks_total, 5);
    assert_true(st.preemptions > 0);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.running + st.waiting, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(small[i].finish, alone[i].finish);
        assert_string_equal(small[i].text, alone[i].text);
    }
    sq_engine_free(e);
}

static void test_stop_string_split_across_tokens(void **state) {
    fixture *f = *state;
    text_buf want;
    generate_text(f, prompts[0], 30, &want); /* ", there was a little girl named Lily. ..." */
    const char *at = strstr(want.text, "le gi");
    assert_non_null(at);
    const char *stop[] = {"zzz", "le gi"}; /* "le gi" spans the tokens " little" and " girl" */
    sq_engine *e = make_engine(f, 4, 0, 0);
    result r = {0};
    submit_text(f, e, prompts[0], 30, greedy(), stop, 2, &r, NULL);
    run_until_idle(e);
    assert_int_equal(r.finish, SQ_FINISH_STOP);
    assert_int_equal(r.len, (size_t)(at - want.text));
    assert_memory_equal(r.text, want.text, r.len);
    sq_engine_free(e);
}

/* Cancelled requests (by id, or by their callback) finish at the next step with their blocks freed; random
 * mixes leave no block held, and every request gets exactly one last event. */
static void test_cancel_and_random_mixes(void **state) {
    fixture *f = *state;
    uint64_t rng = 7;
    sq_engine *e = make_engine(f, 6, 0, 1);
    result *r = calloc(16, sizeof *r);
    int64_t ids[16];
    for (int i = 0; i < 16; i++) {
        sq_sampler_params sp = sq_sampler_default_params();
        sp.seed = sq_test_rand_u64(&rng);
        r[i].cancel_after = (int)(sq_test_rand_u64(&rng) % 4 == 0 ? 1 + sq_test_rand_u64(&rng) % 10 : 0);
        submit_text(f, e, prompts[sq_test_rand_u64(&rng) % N_PROMPTS], (int)(sq_test_rand_u64(&rng) % 40), sp,
                    NULL, 0, &r[i], &ids[i]);
        if (sq_test_rand_u64(&rng) % 3 == 0) sq_test_ok(sq_engine_step(e, NULL));
        if (i >= 3 && sq_test_rand_u64(&rng) % 5 == 0) sq_engine_cancel(e, ids[i - 3]);
    }
    run_until_idle(e);
    sq_engine_stats st;
    sq_engine_get_stats(e, &st);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.running + st.waiting, 0);
    for (int i = 0; i < 16; i++) {
        assert_true(r[i].finish != SQ_FINISH_NONE && r[i].finish != SQ_FINISH_ERROR);
        assert_int_equal(r[i].events_after_finish, 0);
        if (r[i].cancel_after) assert_true(r[i].n_tokens <= r[i].cancel_after); /* stopped at once */
        if (r[i].cancel_after && r[i].n_tokens == r[i].cancel_after)
            assert_int_equal(r[i].finish, SQ_FINISH_CANCELLED);
    }
    /* a request still queued when the engine is freed gets its last event then */
    result late = {0};
    submit_text(f, e, prompts[0], 10, greedy(), NULL, 0, &late, NULL);
    sq_engine_free(e);
    assert_int_equal(late.finish, SQ_FINISH_CANCELLED);
    free(r);
}

/* One context block's bytes, from a context of n_ctx positions. */
static size_t block_bytes_of(fixture *f, int n_ctx) {
    sq_context *ctx;
    sq_test_ok(sq_context_create(f->model, &(sq_context_options){.n_ctx = n_ctx, .n_threads = 1}, &ctx));
    size_t b = sq_context_kv_bytes(ctx) / (size_t)sq_context_kv_blocks_total(ctx);
    sq_context_free(ctx);
    return b;
}

static const char *const repeat_prompt =
    "Lily and Ben played with the ball. Lily and Ben played with the dog. Lily and Ben";

/* Ten greedy requests at once: the eight prompts, the repeating one, and the repeating one with a stop
 * string; the engine's statistics after them into st. */
static void greedy_mix(fixture *f, const char *const *stop, result *r, sq_engine_stats *st) {
    memset(r, 0, 10 * sizeof *r);
    sq_engine *e = make_engine(f, 16, 0, 0);
    for (int i = 0; i < 8; i++) submit_text(f, e, prompts[i], 48, greedy(), NULL, 0, &r[i], NULL);
    submit_text(f, e, repeat_prompt, 40, greedy(), NULL, 0, &r[8], NULL);
    submit_text(f, e, repeat_prompt, 40, greedy(), stop, 1, &r[9], NULL);
    run_until_idle(e);
    sq_engine_get_stats(e, st);
    assert_int_equal(st->running + st->waiting, 0);
    sq_engine_free(e);
}

/* A context of 64 positions and a pool of 5 blocks of 16 for four requests growing past 4 blocks each (no
 * prefix cache): requests are preempted and recomputed. */
static void preempted_mix(fixture *f, size_t kv_mem, result *r, sq_engine_stats *st) {
    memset(r, 0, 4 * sizeof *r);
    sq_engine *e = make_engine_ctx(f, 64, 4, kv_mem, 1);
    for (int i = 0; i < 4; i++)
        submit_text(f, e, i ? prompts[i] : repeat_prompt, 44, greedy(), NULL, 0, &r[i], NULL);
    run_until_idle(e);
    sq_engine_get_stats(e, st);
    sq_engine_free(e);
}

/* Sampling at temperature 1.5 (the whole distribution, flattened: drafts are often rejected): the (2nd, 3rd)
 * token pairs of S seeded requests into bins; the first call (bins empty) names the bins. */
enum { S_SAMPLES = 400, BINS = 8 };
typedef struct pair_bins {
    int32_t tok[BINS][2];
    int n;
} pair_bins;

static void sampled_pairs(fixture *f, pair_bins *bins, uint64_t seed0, int *counts, sq_engine_stats *st) {
    /* " with" is a likely first token, and what followed it in the prompt is drafted after it */
    const char *lookup =
        "Lily and Ben played with the ball. Lily and Ben played with the dog. Lily and Ben played";
    result *r = calloc(S_SAMPLES, sizeof *r);
    sq_engine *e = make_engine(f, 16, 0, 0); /* the prefix cache holds the shared prompt */
    for (int i = 0; i < S_SAMPLES; i++) {
        sq_sampler_params sp = sq_sampler_default_params();
        sp.temperature = 1.5f;
        sp.top_k = 0;
        sp.top_p = 1;
        sp.min_p = 0;
        sp.seed = seed0 + (uint64_t)i;
        submit_text(f, e, lookup, 3, sp, NULL, 0, &r[i], NULL);
    }
    run_until_idle(e);
    sq_engine_get_stats(e, st);
    sq_engine_free(e);
    memset(counts, 0, (BINS + 1) * sizeof *counts);
    for (int i = 0; i < S_SAMPLES; i++) {
        if (r[i].n_tokens < 3) {
            counts[BINS]++;
            continue;
        }
        int b = 0; /* bins: the first BINS - 1 distinct pairs of the naming call, then the rest */
        while (b < bins->n && !(bins->tok[b][0] == r[i].tokens[1] && bins->tok[b][1] == r[i].tokens[2])) b++;
        if (b == bins->n && seed0 == 1 && bins->n < BINS - 1) {
            bins->tok[b][0] = r[i].tokens[1];
            bins->tok[b][1] = r[i].tokens[2];
            bins->n++;
        }
        counts[b < bins->n ? b : BINS - 1]++;
    }
    free(r);
}

/* Two-sample chi-square over the bins with any count, against the 99.9% quantile. */
static void same_distribution(const int *a, const int *c, const char *what) {
    static const double crit[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12};
    double chi2 = 0;
    int dof = -1;
    for (int b = 0; b <= BINS; b++) {
        if (a[b] + c[b] == 0) continue;
        chi2 += (double)(a[b] - c[b]) * (a[b] - c[b]) / (a[b] + c[b]);
        dof++;
    }
    assert_true(dof >= 1 && dof <= 8);
    if (chi2 > crit[dof])
        fail_msg("%s: chi-square %.2f above %.2f (%d degrees of freedom)", what, chi2, crit[dof], dof);
}

/* The plain engine's results that every draft source must reproduce. */
typedef struct plain_results {
    char stop_at[8];
    size_t stop_len; /* the text's length before the stop string */
    result mix[10], preempted[4];
    sq_engine_stats st;
    size_t block_bytes;
    pair_bins bins;
    int counts[BINS + 1];
} plain_results;

static plain_results *plain_reference(fixture *f) {
    if (f->plain) return f->plain;
    plain_results *p = f->plain = calloc(1, sizeof *p);
    text_buf want; /* the stop string: 6 bytes from the middle of the greedy continuation */
    generate_text(f, repeat_prompt, 40, &want);
    assert_true(want.len > 30);
    memcpy(p->stop_at, want.text + 20, 6);
    p->stop_len = (size_t)(strstr(want.text, p->stop_at) - want.text);
    const char *const stop[] = {p->stop_at};
    spec_k = 0;
    greedy_mix(f, stop, p->mix, &p->st);
    assert_int_equal(p->st.spec.drafted, 0);
    p->block_bytes = block_bytes_of(f, 64);
    sq_engine_stats st;
    preempted_mix(f, 0, p->preempted, &st);
    assert_int_equal(st.preemptions, 0);
    sampled_pairs(f, &p->bins, 1, p->counts, &st);
    return p;
}

/* Speculation from the source in spec_source, k 4, against the plain engine: greedy requests give exactly its
 * tokens, texts and log-probabilities (1e-3), 10 at once and under preemption, with drafts really kept (at
 * least min_kept); stop strings and max_tokens end the text where they did; sampled requests draw the same
 * distribution (two-sample chi-square on the second and third tokens, the second a verified draft whenever
 * one is proposed), with drafts both kept and rejected; no KV block is left held, a draft model's included.
 */
static void check_source(fixture *f, const plain_results *p, int min_kept, const char *what) {
    const char *const stop[] = {p->stop_at};
    spec_k = 4;
    result spec[10];
    sq_engine_stats st;
    greedy_mix(f, stop, spec, &st);
    const sq_spec_stats greedy_spec = st.spec;
    assert_true(st.spec.accepted >= min_kept); /* drafts were kept, not only tried */
    assert_true(st.spec.accepted <= st.spec.drafted);
    assert_int_equal(st.generated_tokens, p->st.generated_tokens);
    assert_int_equal(st.spec_draft_kv_blocks_used, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(spec[i].finish, p->mix[i].finish);
        assert_int_equal(spec[i].n_tokens, p->mix[i].n_tokens);
        assert_memory_equal(spec[i].tokens, p->mix[i].tokens, (size_t)p->mix[i].n_tokens * sizeof(int32_t));
        assert_string_equal(spec[i].text, p->mix[i].text);
        for (int j = 0; j < p->mix[i].n_tokens; j++)
            assert_float_equal(spec[i].logprobs[j], p->mix[i].logprobs[j], 1e-3);
    }
    assert_int_equal(spec[9].finish, SQ_FINISH_STOP);
    assert_int_equal(spec[9].len, p->stop_len);

    result small[4];
    preempted_mix(f, 5 * p->block_bytes, small, &st);
    assert_true(st.preemptions > 0);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.spec_draft_kv_blocks_used, 0);
    for (int i = 0; i < 4; i++) assert_string_equal(small[i].text, p->preempted[i].text);

    pair_bins bins = p->bins;
    int counts[BINS + 1];
    sampled_pairs(f, &bins, 1001, counts, &st);
    /* drafts were kept and rejected: both of the rule's paths ran */
    assert_true(st.spec.accepted > S_SAMPLES / 8);
    assert_true(st.spec.drafted - st.spec.accepted > 10);
    assert_int_equal(st.spec_draft_kv_blocks_used, 0);
    same_distribution(p->counts, counts, what);
    printf("%s: greedy %lld of %lld drafts kept; sampled %lld of %lld\n", what,
           (long long)greedy_spec.accepted, (long long)greedy_spec.drafted, (long long)st.spec.accepted,
           (long long)st.spec.drafted);
    spec_k = 0;
}

static void test_speculative_ngram(void **state) {
    fixture *f = *state;
    plain_results *p = plain_reference(f);
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_NGRAM};
    check_source(f, p, 20, "n-gram drafts");
}

/* A draft model (stories15M's blocks 0, 1 and 5: it often disagrees, so drafts are rejected too) and
 * self-speculation (blocks 2 and 3 skipped) pass the same checks; the draft model's vocabulary is checked at
 * creation. */
static void test_speculative_draft_models(void **state) {
    fixture *f = *state;
    plain_results *p = plain_reference(f);
    sq_model *small;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories15M.bin"), NULL, &small));
    const int keep[] = {0, 1, 5};
    sq_test_ok(sq_model_set_layers(small, keep, 3));
    static const int32_t skip[] = {2, 3};
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_MODEL, .spec_draft_model = small};
    check_source(f, p, 40, "draft model (3 of 6 blocks)");
    spec_source =
        (sq_engine_options){.spec_draft = SQ_DRAFT_SELF, .spec_skip_layers = skip, .spec_n_skip_layers = 2};
    check_source(f, p, 40, "self-draft (blocks 2, 3 skipped)");
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_NGRAM};

    /* the target as its own draft (its own context) agrees with every greedy choice: every draft is kept,
     * which needs each request's draft sequence to follow exactly the tokens kept, batched with the others */
    spec_k = 4;
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_MODEL, .spec_draft_model = f->model};
    {
        result same[10];
        sq_engine_stats st;
        const char *const stop[] = {p->stop_at};
        greedy_mix(f, stop, same, &st);
        assert_true(st.spec.drafted > 200);
        assert_int_equal(st.spec.accepted, st.spec.drafted);
        for (int i = 0; i < 10; i++) assert_string_equal(same[i].text, p->mix[i].text);
    }

    /* a request cancelled mid-generation frees its draft sequence at once */
    spec_k = 4;
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_MODEL, .spec_draft_model = small};
    sq_engine *e = make_engine(f, 4, 0, 1);
    result r[2];
    memset(r, 0, sizeof r);
    int64_t id;
    submit_text(f, e, prompts[0], 200, greedy(), NULL, 0, &r[0], &id);
    submit_text(f, e, prompts[1], 200, greedy(), NULL, 0, &r[1], NULL);
    sq_engine_stats st;
    do {
        sq_test_ok(sq_engine_step(e, NULL));
        sq_engine_get_stats(e, &st);
    } while (r[0].n_tokens < 10);
    assert_true(st.spec_draft_kv_blocks_used > 0 && st.spec.drafted > 0);
    sq_engine_cancel(e, id);
    r[1].cancel_after = r[1].n_tokens + 1;
    sq_test_ok(sq_engine_step(e, NULL));
    run_until_idle(e);
    sq_engine_get_stats(e, &st);
    assert_int_equal(r[0].finish, SQ_FINISH_CANCELLED);
    assert_int_equal(r[1].finish, SQ_FINISH_CANCELLED);
    assert_int_equal(st.kv_blocks_used, 0);
    assert_int_equal(st.spec_draft_kv_blocks_used, 0);
    assert_true(st.spec_draft_kv_blocks_total > 0);
    sq_engine_free(e);
    spec_k = 0;
    spec_source = (sq_engine_options){.spec_draft = SQ_DRAFT_NGRAM};

    sq_model *other;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &other));
    sq_engine *bad;
    sq_test_fails_with(
        sq_engine_create(
            f->model,
            &(sq_engine_options){.spec_k = 4, .spec_draft = SQ_DRAFT_MODEL, .spec_draft_model = other}, &bad),
        "the draft has 512 token ids, the target 32000");
    sq_test_fails_with(
        sq_engine_create(f->model, &(sq_engine_options){.spec_k = 4, .spec_draft = SQ_DRAFT_MODEL}, &bad),
        "needs spec_draft_model");
    static const int32_t outside[] = {6};
    sq_test_fails_with(sq_engine_create(f->model,
                                        &(sq_engine_options){.spec_k = 4,
                                                             .spec_draft = SQ_DRAFT_SELF,
                                                             .spec_skip_layers = outside,
                                                             .spec_n_skip_layers = 1},
                                        &bad),
                       "block 6 is outside");
    sq_test_fails_with(sq_engine_create(f->model, &(sq_engine_options){.spec_k = 4}, &bad),
                       "needs a draft source");
    sq_model_free(other);
    sq_model_free(small);
}

/* The n-gram pool: a request whose own text has nothing to look up drafts from what an earlier request
 * generated (the same story told again), and its greedy tokens stay those of plain decoding. */
static void test_speculative_ngram_pool(void **state) {
    fixture *f = *state;
    result r[3][2];
    sq_engine_stats st[3];
    for (int pass = 0; pass < 3; pass++) { /* plain, prompt lookup alone, with the pool */
        memset(r[pass], 0, sizeof r[pass]);
        spec_k = pass ? 4 : 0;
        sq_engine *e;
        sq_engine_options o = {.n_ctx = 128,
                               .max_seqs = 1,
                               .max_batch_tokens = 64,
                               .n_threads = 1,
                               .spec_k = spec_k,
                               .spec_draft = SQ_DRAFT_NGRAM,
                               .spec_pool_entries = pass == 2 ? 4096 : 0};
        sq_test_ok(sq_engine_create(f->model, &o, &e));
        for (int i = 0; i < 2; i++) { /* one after the other: the second sees the first's finished text */
            submit_text(f, e, prompts[1], 40, greedy(), NULL, 0, &r[pass][i], NULL);
            run_until_idle(e);
        }
        sq_engine_get_stats(e, &st[pass]);
        sq_engine_free(e);
    }
    spec_k = 0;
    for (int pass = 1; pass < 3; pass++)
        for (int i = 0; i < 2; i++) {
            assert_int_equal(r[pass][i].n_tokens, r[0][i].n_tokens);
            assert_memory_equal(r[pass][i].tokens, r[0][i].tokens,
                                (size_t)r[0][i].n_tokens * sizeof(int32_t));
        }
    /* the repeat's 39 verified tokens came mostly from the pool: far more drafts kept than lookup alone */
    assert_true(st[2].spec.accepted >= st[1].spec.accepted + 25);
    sq_engine *bad;
    sq_test_fails_with(sq_engine_create(f->model, &(sq_engine_options){.spec_pool_entries = 16}, &bad),
                       "spec_pool_entries");
}

static void test_bad_requests(void **state) {
    fixture *f = *state;
    sq_engine *e = make_engine(f, 2, 0, 0);
    int32_t ids[300] = {1};
    sq_engine_request q = {.prompt = ids, .n_prompt = 0, .sampling = greedy()};
    sq_test_fails_with(sq_engine_submit(e, &q, on_event, NULL, NULL), "empty");
    q.n_prompt = 257;
    sq_test_fails_with(sq_engine_submit(e, &q, on_event, NULL, NULL), "context holds 256");
    q.n_prompt = 2;
    ids[1] = 32000;
    sq_test_fails_with(sq_engine_submit(e, &q, on_event, NULL, NULL), "outside the vocabulary");
    sq_engine_free(e);
    sq_engine *bad;
    sq_test_fails_with(
        sq_engine_create(f->model, &(sq_engine_options){.max_seqs = 8, .max_batch_tokens = 4}, &bad),
        "cannot carry");
    sq_test_fails_with(sq_engine_create(f->model, &(sq_engine_options){.spec_k = SQ_SPEC_MAX_K + 1}, &bad),
                       "spec_k");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_alone_and_among_others),
        cmocka_unit_test(test_prefix_reuse_matches_cold_run),
        cmocka_unit_test(test_preemption_by_recompute),
        cmocka_unit_test(test_speculative_ngram),
        cmocka_unit_test(test_speculative_draft_models),
        cmocka_unit_test(test_speculative_ngram_pool),
        cmocka_unit_test(test_stop_string_split_across_tokens),
        cmocka_unit_test(test_cancel_and_random_mixes),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
