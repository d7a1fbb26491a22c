/* Speculative decoding (runtime/speculative.c) on real models:
 *  - greedy output equals a plain greedy loop written here (sq_forward + argmax), token for token, for every
 *    draft source, chains and trees, fixed and adaptive k;
 *  - after every step of any accept/reject pattern, the target's cache equals a cold run's: the next logits
 *    from the decoder's sequence match those of a fresh context fed only the kept tokens;
 *  - a draft identical to the target accepts every greedy proposal (its own cache follows exactly);
 *  - sampling: a chi-square test of the first speculated token's distribution against the exact one
 *    (sum over t1 of p(t1) p(t2 | t1), computed with the target alone), over many fixed seeds, for the chain
 *    rule and the rule for given candidates (trees; n-gram drafts use the same); the same test rejects a
 * deliberately wrong rule (rejected drafts resampled from p instead of max(0, p - q));
 *  - spec-search's first rounds against agreements computed here, and its estimate against the formula;
 *  - bad parameters and mismatched vocabularies are refused with clear errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "testlib.h"

static sq_model *load(const char *rel) {
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared(rel), NULL, &m));
    return m;
}

/* A depth-pruned copy: blocks `keep` of the model at rel. */
static sq_model *load_pruned(const char *rel, const int *keep, int n_keep) {
    sq_model *m = load(rel);
    sq_test_ok(sq_model_set_layers(m, keep, n_keep));
    return m;
}

static sq_context *make_context(const sq_model *m, int n_ctx) {
    sq_context *ctx;
    sq_context_options o = {.n_ctx = n_ctx, .n_seq_max = 1, .n_threads = 1}; /* the suite shares its cores */
    sq_test_ok(sq_context_create(m, &o, &ctx));
    return ctx;
}

static int vocab_of(const sq_model *m) {
    sq_model_info info;
    sq_model_get_info(m, &info);
    return info.vocab_size;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Plain greedy decoding written here: prompt then n_new tokens into out. */
static void reference_greedy(const sq_model *m, const int32_t *prompt, int n_prompt, int n_new,
                             int32_t *out) {
    const int vocab = vocab_of(m);
    sq_context *ctx = make_context(m, 256);
    float *logits = malloc((size_t)vocab * sizeof *logits);
    memcpy(out, prompt, (size_t)n_prompt * sizeof *out);
    int n = n_prompt, fed = 0;
    while (n < n_prompt + n_new) {
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = out + fed,
                          .n_tokens = n - fed,
                          .logits_mode = SQ_LOGITS_LAST,
                          .logits = logits};
        sq_test_ok(sq_forward(ctx, &b, 1));
        fed = n;
        out[n++] = argmax(logits, vocab);
    }
    free(logits);
    sq_context_free(ctx);
}

/* Runs a started decoder until it holds n_total tokens; calls check after every step. */
typedef void (*step_check)(void *user, sq_decoder *d);
static void decode_to(sq_decoder *d, int n_total, step_check check, void *user) {
    int n;
    sq_decoder_tokens(d, &n);
    while (n < n_total) {
        int n_new;
        sq_test_ok(sq_decoder_step(d, n_total - n, &n_new));
        assert_true(n_new >= 1 && n_new <= n_total - n);
        sq_decoder_tokens(d, &n);
        if (check) check(user, d);
    }
    assert_int_equal(n, n_total);
}

static sq_sampler_params greedy_params(void) {
    sq_sampler_params p = sq_sampler_default_params();
    p.temperature = 0;
    return p;
}

/* ---------------------------------------------------------------- greedy: identical to plain decoding */

typedef struct method {
    const char *name;
    sq_spec_params spec;
} method;

static const int32_t skip_2_3[] = {2, 3};
static const int32_t skip_1[] = {1}, skip_4[] = {4};

/* Every source, chain and tree; the draft model is a depth-pruned copy of the target (blocks 0, 1, 4 of 5).
 */
static int make_methods(sq_context *draft_ctx, method *m) {
    int n = 0;
    m[n++] = (method){"draft k=4", {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 4}};
    m[n++] = (method){"draft k=auto", {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 2, .k_auto = 1}};
    m[n++] = (method){"draft tree w=3",
                      {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 3, .tree_width = 3}};
    m[n++] =
        (method){"self 2,3", {.draft = SQ_DRAFT_SELF, .skip_layers = skip_2_3, .n_skip_layers = 2, .k = 3}};
    m[n++] = (method){
        "self tree w=2",
        {.draft = SQ_DRAFT_SELF, .skip_layers = skip_1, .n_skip_layers = 1, .k = 3, .tree_width = 2}};
    m[n++] = (method){"ngram 3", {.draft = SQ_DRAFT_NGRAM, .k = 5}};
    m[n++] = (method){"ngram 2 tree w=4", {.draft = SQ_DRAFT_NGRAM, .ngram_n = 2, .k = 4, .tree_width = 4}};
    return n;
}

/* stories260K (its 512-id tokenizer is not available: ids only), so every case runs in well under a second
 * even under the sanitizers; the second prompt repeats itself, which gives the n-gram sources matches. */
static const int32_t prompt_a[] = {1, 403, 407, 261, 378, 266, 279},
                     prompt_b[] = {1, 301, 290, 262, 310, 415, 301, 290, 262, 310, 415, 301, 290};
static const struct {
    const int32_t *ids;
    int n;
} prompts[] = {{prompt_a, 7}, {prompt_b, 13}};

static void test_greedy_identical(void **state) {
    (void)state;
    sq_model *target = load("models/stories260K.bin");
    const int keep[] = {0, 1, 4};
    sq_model *small = load_pruned("models/stories260K.bin", keep, 3);
    sq_context *ctx = make_context(target, 256), *draft_ctx = make_context(small, 256);
    method methods[8];
    int n_methods = make_methods(draft_ctx, methods);
    sq_sampler_params gp = greedy_params();
    enum { N_NEW = 40 };
    for (size_t pi = 0; pi < sizeof prompts / sizeof *prompts; pi++) {
        const int32_t *prompt = prompts[pi].ids;
        int n_prompt = prompts[pi].n;
        int32_t want[256];
        reference_greedy(target, prompt, n_prompt, N_NEW, want);
        for (int mi = 0; mi < n_methods; mi++) {
            sq_decoder *d;
            sq_test_ok(sq_decoder_create(ctx, &gp, &methods[mi].spec, &d));
            sq_test_ok(sq_decoder_start(d, prompt, n_prompt));
            decode_to(d, n_prompt + N_NEW, NULL, NULL);
            int n;
            const int32_t *got = sq_decoder_tokens(d, &n);
            for (int i = 0; i < n; i++)
                if (got[i] != want[i])
                    fail_msg("%s, prompt %zu: token %d is %d, plain greedy decoding gives %d",
                             methods[mi].name, pi, i, got[i], want[i]);
            sq_spec_stats st;
            sq_decoder_stats(d, &st, NULL);
            printf("%-18s prompt %zu: %lld steps for %d tokens, %.2f tokens per step\n", methods[mi].name, pi,
                   (long long)st.steps, N_NEW - 1, (double)st.generated / (double)st.steps);
            assert_int_equal(st.generated, N_NEW - 1); /* the first token comes from the prefill */
            sq_decoder_free(d);
        }
    }
    sq_context_free(draft_ctx);
    sq_context_free(ctx);
    sq_model_free(small);
    sq_model_free(target);
}

/* A draft that is the target itself (another load, its own context) agrees with every greedy choice: all k
 * drafts are accepted at every step, which needs its cache to follow the accepted text exactly. */
static void test_identical_draft_accepts_all(void **state) {
    (void)state;
    sq_model *target = load("models/stories260K.bin"), *copy = load("models/stories260K.bin");
    sq_context *ctx = make_context(target, 256), *draft_ctx = make_context(copy, 256);
    sq_sampler_params gp = greedy_params();
    for (int tree = 0; tree < 2; tree++) {
        sq_spec_params spec = {
            .draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 4, .tree_width = tree ? 2 : 0};
        sq_decoder *d;
        sq_test_ok(sq_decoder_create(ctx, &gp, &spec, &d));
        sq_test_ok(sq_decoder_start(d, prompts[0].ids, prompts[0].n));
        decode_to(d, prompts[0].n + 1 + 5 * 12, NULL, NULL);
        sq_spec_stats st;
        sq_decoder_stats(d, &st, NULL);
        assert_int_equal(st.steps, 12);
        assert_int_equal(st.accepted, 4 * 12);
        for (int i = 0; i < 4; i++) assert_int_equal(st.accepted_at[i], 12);
        sq_decoder_free(d);
    }
    sq_context_free(draft_ctx);
    sq_context_free(ctx);
    sq_model_free(copy);
    sq_model_free(target);
}

/* ---------------------------------------------------------------- the cache after every step */

typedef struct cache_check {
    sq_context *ctx;  /* the decoder's */
    sq_context *cold; /* fed only the kept tokens, in the decoder's order */
    int cold_len, vocab, steps;
    float *got, *want;
} cache_check;

static void check_cache(void *user, sq_decoder *d) {
    cache_check *c = user;
    int n;
    const int32_t *tok = sq_decoder_tokens(d, &n);
    assert_int_equal(sq_seq_len(c->ctx, 0), n - 1);
    /* the cold run appends what the step kept (its tokens are fed once each, never rejected) */
    sq_seq_batch cold = {.seq_id = 0,
                         .tokens = tok + c->cold_len,
                         .n_tokens = n - c->cold_len,
                         .logits_mode = SQ_LOGITS_LAST,
                         .logits = c->want};
    sq_test_ok(sq_forward(c->cold, &cold, 1));
    sq_test_ok(sq_seq_truncate(c->cold, 0, n - 1));
    c->cold_len = n - 1;
    sq_seq_batch probe = {
        .seq_id = 0, .tokens = tok + n - 1, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = c->got};
    sq_test_ok(sq_forward(c->ctx, &probe, 1));
    sq_test_ok(sq_seq_truncate(c->ctx, 0, n - 1));
    double err = sq_test_rel_err(c->got, c->want, (size_t)c->vocab);
    if (err > 1e-5)
        fail_msg("step %d (%d tokens): next logits differ from a cold run's by %.3g", c->steps, n, err);
    c->steps++;
}

static void test_cache_equals_cold_run(void **state) {
    (void)state;
    sq_model *target = load("models/stories260K.bin");
    const int keep[] = {0, 1, 4};
    sq_model *small = load_pruned("models/stories260K.bin", keep, 3);
    sq_context *ctx = make_context(target, 256), *draft_ctx = make_context(small, 256),
               *cold = make_context(target, 256);
    method methods[8];
    int n_methods = make_methods(draft_ctx, methods);
    const int vocab = vocab_of(target);
    cache_check c = {.ctx = ctx, .cold = cold, .vocab = vocab};
    c.got = malloc((size_t)vocab * sizeof *c.got);
    c.want = malloc((size_t)vocab * sizeof *c.want);
    sq_sampler_params sampling = sq_sampler_default_params(); /* temperature 0.8: rejections happen */
    sampling.seed = 11;
    for (int mi = 0; mi < n_methods; mi++)
        for (int greedy = 0; greedy < 2; greedy++) {
            sq_sampler_params p = greedy ? greedy_params() : sampling;
            const int32_t *prompt = prompts[1].ids;
            int n_prompt = prompts[1].n;
            sq_decoder *d;
            sq_test_ok(sq_decoder_create(ctx, &p, &methods[mi].spec, &d));
            sq_test_ok(sq_decoder_start(d, prompt, n_prompt));
            sq_test_ok(sq_seq_truncate(cold, 0, 0));
            c.cold_len = 0;
            c.steps = 0;
            decode_to(d, n_prompt + 32, check_cache, &c);
            sq_spec_stats st;
            sq_decoder_stats(d, &st, NULL);
            printf("%-18s %s: %d steps checked, %lld of %lld drafts accepted\n", methods[mi].name,
                   greedy ? "greedy  " : "temp 0.8", c.steps, (long long)st.accepted, (long long)st.drafted);
            sq_decoder_free(d);
        }
    free(c.got);
    free(c.want);
    sq_context_free(cold);
    sq_context_free(draft_ctx);
    sq_context_free(ctx);
    sq_model_free(small);
    sq_model_free(target);
}

/* ---------------------------------------------------------------- sampling: chi-square */

/* stories260K (512 ids; used with ids only) as the target; the draft: its first four of five blocks. */
enum { V260 = 512, N_SAMPLES = 4000 };
static const int32_t prompt260[] = {1, 403, 407, 261, 378, 266, 279, 1}; /* BOS, ids, then BOS again */

/* The exact distribution of the second generated token: sum over t1 of p(t1) p(t2 | t1). */
static void exact_second(const sq_model *m, const sq_sampler_params *p, int n_prompt, double *want) {
    sq_context *ctx = make_context(m, 64);
    sq_sampler *s;
    sq_test_ok(sq_sampler_create(p, V260, &s));
    float logits[V260];
    double p1[V260], p2[V260];
    sq_seq_batch b = {.seq_id = 0,
                      .tokens = prompt260,
                      .n_tokens = n_prompt,
                      .logits_mode = SQ_LOGITS_LAST,
                      .logits = logits};
    sq_test_ok(sq_forward(ctx, &b, 1));
    int32_t hist[16];
    memcpy(hist, prompt260, (size_t)n_prompt * sizeof *hist);
    sq_sampler_dist(s, logits, hist, n_prompt, p1);
    for (int i = 0; i < V260; i++) want[i] = 0;
    for (int32_t t1 = 0; t1 < V260; t1++) {
        if (p1[t1] == 0) continue;
        sq_seq_batch one = {
            .seq_id = 0, .tokens = &t1, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = logits};
        sq_test_ok(sq_forward(ctx, &one, 1));
        sq_test_ok(sq_seq_truncate(ctx, 0, n_prompt));
        hist[n_prompt] = t1;
        sq_sampler_dist(s, logits, hist, n_prompt + 1, p2);
        for (int i = 0; i < V260; i++) want[i] += p1[t1] * p2[i];
    }
    sq_sampler_free(s);
    sq_context_free(ctx);
}

/* Pearson's chi-square of counts[V260] (n samples) against probabilities want, cells with expected count
 * under 5 pooled; returned as the Wilson-Hilferty normal deviate (about N(0,1) when the counts follow want).
 */
static double chi_square_z(const int *counts, const double *want, int n) {
    double x2 = 0, pooled_e = 0, pooled_o = 0;
    int cells = 0;
    for (int i = 0; i < V260; i++) {
        double e = want[i] * n;
        if (e < 5) {
            pooled_e += e;
            pooled_o += counts[i];
            if (e == 0 && counts[i] > 0) return INFINITY; /* a token the exact distribution never gives */
            continue;
        }
        x2 += (counts[i] - e) * (counts[i] - e) / e;
        cells++;
    }
    if (pooled_e > 0) {
        x2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
        cells++;
    }
    double k = cells - 1, h = 2.0 / (9 * k);
    return (cbrt(x2 / k) - (1 - h)) / sqrt(h);
}

/* The wrong rule, run with the same models: a rejected draft is replaced by a draw from p. */
static int wrong_rule_second(sq_context *tctx, sq_context *dctx, const sq_sampler_params *p, int n_prompt,
                             uint64_t seed) {
    sq_sampler_params sp = *p;
    sp.seed = seed;
    sq_sampler *s;
    sq_test_ok(sq_sampler_create(&sp, V260, &s));
    float logits[V260];
    double pd[V260], qd[V260];
    int32_t hist[16];
    memcpy(hist, prompt260, (size_t)n_prompt * sizeof *hist);
    sq_test_ok(sq_seq_truncate(tctx, 0, 0));
    sq_seq_batch b = {.seq_id = 0,
                      .tokens = prompt260,
                      .n_tokens = n_prompt,
                      .logits_mode = SQ_LOGITS_LAST,
                      .logits = logits};
    sq_test_ok(sq_forward(tctx, &b, 1));
    int32_t t1 = sq_sampler_sample(s, logits, hist, n_prompt);
    hist[n_prompt] = t1;
    sq_seq_batch one = {
        .seq_id = 0, .tokens = &t1, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = logits};
    sq_test_ok(sq_forward(tctx, &one, 1));
    sq_sampler_dist(s, logits, hist, n_prompt + 1, pd);
    sq_test_ok(sq_seq_truncate(dctx, 0, 0));
    b.logits = logits;
    sq_test_ok(sq_forward(dctx, &b, 1));
    sq_test_ok(sq_forward(dctx, &one, 1));
    sq_sampler_dist(s, logits, hist, n_prompt + 1, qd);
    int32_t x = sq_sampler_draw(s, qd), t2;
    if (sq_sampler_uniform(s) * qd[x] < pd[x])
        t2 = x;
    else
        t2 = sq_sampler_draw(s, pd); /* wrong: the residual max(0, p - q) is what keeps p */
    sq_sampler_free(s);
    return t2;
}

static void test_sampling_distribution(void **state) {
    (void)state;
    sq_model *target = load("models/stories260K.bin");
    const int keep[] = {0, 1, 2, 3};
    sq_model *small = load_pruned("models/stories260K.bin", keep, 4);
    sq_context *ctx = make_context(target, 64), *draft_ctx = make_context(small, 64);
    const int n_prompt = 7; /* the last id of prompt260 is a candidate for n-gram lookup */
    const sq_sampler_params full = {.temperature = 1,
                                    .top_k = 0,
                                    .top_p = 1,
                                    .min_p = 0,
                                    .repeat_penalty = 1},
                            filtered = {.temperature = 0.8f,
                                        .top_k = 30,
                                        .top_p = 0.9f,
                                        .min_p = 0.02f,
                                        .repeat_penalty = 1.3f,
                                        .repeat_last_n = 64};
    struct {
        const char *name;
        sq_sampler_params p;
        sq_spec_params spec;
    } cases[] = {
        {"chain, full distribution", full, {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 3}},
        {"chain, filtered", filtered, {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 3}},
        {"tree w=3, full distribution",
         full,
         {.draft = SQ_DRAFT_MODEL, .draft_ctx = draft_ctx, .k = 2, .tree_width = 3}},
        {"self tree w=2, filtered",
         filtered,
         {.draft = SQ_DRAFT_SELF, .skip_layers = skip_4, .n_skip_layers = 1, .k = 2, .tree_width = 2}},
    };
    double want[V260];
    int counts[V260];
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        exact_second(target, &cases[ci].p, n_prompt, want);
        memset(counts, 0, sizeof counts);
        int64_t accepted = 0;
        for (int i = 0; i < N_SAMPLES; i++) {
            sq_sampler_params p = cases[ci].p;
            p.seed = 1000003u * (uint64_t)ci + (uint64_t)i;
            sq_decoder *d;
            sq_test_ok(sq_decoder_create(ctx, &p, &cases[ci].spec, &d));
            sq_test_ok(sq_decoder_start(d, prompt260, n_prompt));
            int n_new;
            sq_test_ok(sq_decoder_step(d, 3, &n_new));
            int n;
            const int32_t *tok = sq_decoder_tokens(d, &n);
            counts[tok[n_prompt + 1]]++;
            sq_spec_stats st;
            sq_decoder_stats(d, &st, NULL);
            accepted += st.accepted_at[0];
            sq_decoder_free(d);
        }
        double z = chi_square_z(counts, want, N_SAMPLES);
        printf("%-30s: chi-square z = %+.2f over %d samples (first draft accepted in %.0f%%)\n",
               cases[ci].name, z, N_SAMPLES, 100.0 * (double)accepted / N_SAMPLES);
        assert_true(accepted > N_SAMPLES / 20); /* the rule was exercised, not bypassed */
        if (!(z < 3.5))
            fail_msg("%s: the second token's distribution is not the target's (z = %.2f)", cases[ci].name, z);
    }
    /* the test has the power to see a wrong rule */
    exact_second(target, &full, n_prompt, want);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < N_SAMPLES; i++)
        counts[wrong_rule_second(ctx, draft_ctx, &full, n_prompt, 777 + (uint64_t)i)]++;
    double z = chi_square_z(counts, want, N_SAMPLES);
    printf("%-30s: chi-square z = %+.2f\n", "wrong rule (resample from p)", z);
    if (!(z > 5)) fail_msg("the chi-square test does not reject the wrong rule (z = %.2f)", z);
    sq_context_free(draft_ctx);
    sq_context_free(ctx);
    sq_model_free(small);
    sq_model_free(target);
}

/* ---------------------------------------------------------------- spec-search */

/* Agreement of the model with `skip` against the full model over windows of n_ctx tokens, written here. */
static double reference_agreement(sq_context *ctx, const int32_t *ids, int n_windows, int n_ctx, int vocab,
                                  const unsigned char *skip, float *logits, float *full) {
    int same = 0, total = 0;
    for (int w = 0; w < n_windows; w++) {
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = ids + w * n_ctx,
                          .n_tokens = n_ctx,
                          .logits_mode = SQ_LOGITS_ALL,
                          .logits = full};
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        sq_test_ok(sq_forward(ctx, &b, 1));
        b.logits = logits;
        sq_forward_options o = {.skip_layers = skip};
        sq_test_ok(sq_seq_truncate(ctx, 0, 0));
        sq_test_ok(sq_forward_ex(ctx, &b, 1, &o));
        for (int i = 0; i + 1 < n_ctx; i++, total++)
            same += argmax(logits + (size_t)i * vocab, vocab) == argmax(full + (size_t)i * vocab, vocab);
    }
    return (double)same / total;
}

static void test_spec_search(void **state) {
    (void)state;
    sq_model *m = load("models/stories260K.bin");
    const int vocab = vocab_of(m), n_ctx = 48, n_windows = 2, n_ids = 200;
    sq_model_info info;
    sq_model_get_info(m, &info);
    const int L = info.n_layers;
    uint64_t seed = 17;
    int32_t *ids = malloc(n_ids * sizeof *ids); /* BOS then random ids: any text has an agreement */
    ids[0] = 1;
    for (int i = 1; i < n_ids; i++) ids[i] = 3 + (int32_t)(sq_test_rand_u64(&seed) % (uint64_t)(vocab - 3));
    sq_spec_search_options o = {.n_ctx = n_ctx, .n_windows = n_windows, .max_skip = 2, .n_threads = 1};
    sq_spec_search_step steps[2];
    int n_steps;
    sq_test_ok(sq_spec_search(m, ids, n_ids, &o, steps, &n_steps));
    assert_int_equal(n_steps, 2);
    /* round 1 picks the single block with the best agreement, and reports it exactly */
    sq_context *ctx = make_context(m, n_ctx);
    float *logits = malloc((size_t)n_ctx * vocab * sizeof *logits),
          *full = malloc((size_t)n_ctx * vocab * sizeof *full);
    unsigned char skip[16] = {0};
    double best = -1;
    for (int l = 0; l < L; l++) {
        skip[l] = 1;
        double a = reference_agreement(ctx, ids, n_windows, n_ctx, vocab, skip, logits, full);
        skip[l] = 0;
        printf("skipping block %d alone: greedy agreement %.3f\n", l, a);
        best = a > best ? a : best;
    }
    assert_true(fabs(steps[0].agreement - best) < 1e-12);
    skip[steps[0].layer] = 1;
    assert_true(fabs(reference_agreement(ctx, ids, n_windows, n_ctx, vocab, skip, logits, full) - best) <
                1e-12);
    skip[steps[1].layer] = 1;
    double a2 = reference_agreement(ctx, ids, n_windows, n_ctx, vocab, skip, logits, full);
    assert_true(steps[1].layer != steps[0].layer && fabs(steps[1].agreement - a2) < 1e-12);
    /* the estimate at its k is Leviathan et al.'s formula, and no other k does better */
    for (int i = 0; i < 2; i++) {
        double a = steps[i].agreement, c = (double)(L - i - 1) / L;
        for (int k = 1; k <= SQ_SPEC_MAX_K; k++) {
            double x = (1 - pow(a, k + 1)) / ((1 - a) * (k * c + 1));
            assert_true(x <= steps[i].est_speedup + 1e-12);
            if (k == steps[i].k) assert_true(fabs(x - steps[i].est_speedup) < 1e-12);
        }
    }
    sq_test_fails_with(sq_spec_search(m, ids, n_ctx - 1, &o, steps, &n_steps), "do not fill one window");
    o.max_skip = L;
    sq_test_fails_with(sq_spec_search(m, ids, n_ids, &o, steps, &n_steps), "cannot run");
    free(logits);
    free(full);
    free(ids);
    sq_context_free(ctx);
    sq_model_free(m);
}

/* ---------------------------------------------------------------- errors */

static void test_bad_parameters(void **state) {
    (void)state;
    sq_model *target = load("models/stories15M.bin"), *other = load("models/stories260K.bin");
    sq_context *ctx = make_context(target, 64), *other_ctx = make_context(other, 64),
               *short_ctx = make_context(target, 32);
    sq_sampler_params gp = greedy_params();
    sq_decoder *d = NULL;
    const int32_t bad_block[] = {6}, all[] = {0, 1, 2, 3, 4, 5};
    struct {
        sq_spec_params spec;
        const char *needle;
    } bad[] = {
        {{.draft = SQ_DRAFT_MODEL}, "needs its context"},
        {{.draft = SQ_DRAFT_MODEL, .draft_ctx = ctx}, "context of its own"},
        {{.draft = SQ_DRAFT_MODEL, .draft_ctx = other_ctx}, "the draft has 512 token ids, the target 32000"},
        {{.draft = SQ_DRAFT_MODEL, .draft_ctx = short_ctx}, "less than the target's"},
        {{.draft = SQ_DRAFT_SELF}, "needs blocks to skip"},
        {{.draft = SQ_DRAFT_SELF, .skip_layers = bad_block, .n_skip_layers = 1}, "block 6 is outside"},
        {{.draft = SQ_DRAFT_SELF, .skip_layers = all, .n_skip_layers = 6}, "cannot skip all 6"},
        {{.draft = SQ_DRAFT_NGRAM, .ngram_n = 9}, "ngram_n 9"},
        {{.draft = SQ_DRAFT_NGRAM, .k = 17}, "k 17"},
        {{.draft = SQ_DRAFT_NGRAM, .tree_width = 9}, "tree width 9"},
        {{.draft = (sq_draft_kind)42}, "unknown draft kind"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_test_fails_with(sq_decoder_create(ctx, &gp, &bad[i].spec, &d), bad[i].needle);
        assert_null(d);
    }
    sq_test_fails_with(sq_spec_check_vocab(other, target), "the draft has 32000 token ids, the target 512");
    sq_test_ok(sq_spec_check_vocab(target, target));
    /* a decoder refuses steps before a start and prompts that do not fit */
    sq_test_ok(sq_decoder_create(ctx, &gp, NULL, &d));
    int n_new;
    sq_test_fails_with(sq_decoder_step(d, 1, &n_new), "not started");
    int32_t ids[65] = {1};
    sq_test_fails_with(sq_decoder_start(d, ids, 65), "1..64");
    sq_test_fails_with(sq_decoder_start(d, ids, 0), "1..64");
    sq_test_ok(sq_decoder_start(d, ids, 1));
    sq_test_fails_with(sq_decoder_step(d, 0, &n_new), "max_new 0");
    decode_to(d, 64, NULL, NULL); /* up to a full context */
    sq_test_fails_with(sq_decoder_step(d, 1, &n_new), "the context is full");
    sq_decoder_free(d);
    sq_context_free(short_ctx);
    sq_context_free(other_ctx);
    sq_context_free(ctx);
    sq_model_free(other);
    sq_model_free(target);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_identical),      cmocka_unit_test(test_identical_draft_accepts_all),
        cmocka_unit_test(test_cache_equals_cold_run), cmocka_unit_test(test_sampling_distribution),
        cmocka_unit_test(test_spec_search),           cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
