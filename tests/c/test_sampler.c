/* The sampler against a plain reference (full sort, double precision) written here, the empirical frequencies
 * of its draws against its probabilities, and its edge cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "testlib.h"

/* ---------------------------------------------------------------- the reference */

typedef struct ref_token {
    double logit;
    int id;
} ref_token;

static int ref_compare(const void *pa, const void *pb) {
    const ref_token *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id - b->id;
}

static void ref_softmax(const ref_token *t, int n, double temperature, double *p) {
    double mx = t[0].logit, sum = 0; /* t is sorted: t[0] is the largest */
    for (int i = 0; i < n; i++) sum += p[i] = exp(t[i].logit / temperature - mx / temperature);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* out[vocab]: the probability of each token under llama.cpp's chain. Penalised in float, like the sampler's
 * in-place logits; everything after in double over a fully sorted vocabulary. */
static void ref_probs(const sq_sampler_params *prm, const float *logits_in, int vocab, const int32_t *history,
                      int n_history, double *out) {
    float *logits = malloc((size_t)vocab * sizeof *logits);
    ref_token *t = malloc((size_t)vocab * sizeof *t);
    double *p = malloc((size_t)vocab * sizeof *p);
    memcpy(logits, logits_in, (size_t)vocab * sizeof *logits);
    int start = n_history > prm->repeat_last_n ? n_history - prm->repeat_last_n : 0;
    for (int i = start; i < n_history && prm->repeat_penalty != 1; i++) {
        int id = history[i], seen_before = 0;
        for (int j = start; j < i; j++) seen_before |= history[j] == id;
        if (seen_before || id < 0 || id >= vocab) continue;
        logits[id] = logits[id] > 0 ? logits[id] / prm->repeat_penalty : logits[id] * prm->repeat_penalty;
    }
    int n = 0;
    for (int i = 0; i < vocab; i++)
        if (!isnan(logits[i]) && logits[i] != -INFINITY) t[n++] = (ref_token){logits[i], i};
    qsort(t, (size_t)n, sizeof *t, ref_compare);
    for (int i = 0; i < vocab; i++) out[i] = 0;
    if (prm->temperature <= 0) {
        out[t[0].id] = 1;
    } else {
        if (prm->top_k > 0 && prm->top_k < n) n = prm->top_k;
        if (prm->top_p < 1) {
            ref_softmax(t, n, 1, p);
            double cum = 0;
            for (int i = 0; i < n; i++) {
                cum += p[i];
                if (cum >= prm->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        if (prm->min_p > 0) {
            ref_softmax(t, n, 1, p);
            int kept = 0;
            for (int i = 0; i < n; i++)
                if (p[i] >= prm->min_p * p[0]) t[kept++] = t[i];
            n = kept;
        }
        ref_softmax(t, n, prm->temperature, p);
        for (int i = 0; i < n; i++) out[t[i].id] = p[i];
    }
    free(logits);
    free(t);
    free(p);
}

/* ---------------------------------------------------------------- helpers */

static sq_sampler *make_sampler(sq_sampler_params prm, int vocab) {
    sq_sampler *s;
    sq_test_ok(sq_sampler_create(&prm, vocab, &s));
    return s;
}

/* The sampler's distribution as a dense [vocab] vector; checks ids are valid and distinct. */
static void sampler_dense(sq_sampler *s, float *logits, int vocab, const int32_t *history, int n_history,
                          double *dense) {
    const sq_candidate *c;
    const double *p;
    int n = sq_sampler_probs(s, logits, history, n_history, &c, &p);
    assert_true(n >= 1 && n <= vocab);
    for (int i = 0; i < vocab; i++) dense[i] = -1;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        assert_true(c[i].id >= 0 && c[i].id < vocab);
        if (dense[c[i].id] != -1) fail_msg("token %d appears twice among the candidates", c[i].id);
        dense[c[i].id] = p[i];
        sum += p[i];
    }
    for (int i = 0; i < vocab; i++) dense[i] = dense[i] < 0 ? 0 : dense[i];
    if (fabs(sum - 1) > 1e-9) fail_msg("probabilities sum to %.12f", sum);
}

static sq_sampler_params params(float temp, int top_k, float top_p, float min_p, float penalty, int last_n) {
    return (sq_sampler_params){temp, top_k, top_p, min_p, penalty, last_n, 1234};
}

/* ---------------------------------------------------------------- tests */

static void test_probs_match_reference(void **state) {
    (void)state;
    const int vocabs[] = {1, 2, 7, 100, 1000, 32000, 151936};
    const float temps[] = {0, 0.3f, 0.8f, 1, 1.7f};
    const int top_ks[] = {0, 1, 5, 40, 1000000};
    const float top_ps[] = {1, 0.95f, 0.5f, 0.05f};
    const float min_ps[] = {0, 0.05f, 0.3f};
    const float penalties[] = {1, 1.1f, 1.5f, 0.7f};
    const int last_ns[] = {0, 8, 64};
    uint64_t rng = 7;
    int trials = 0;
    for (size_t v = 0; v < sizeof vocabs / sizeof *vocabs; v++) {
        int vocab = vocabs[v], n_trials = vocab > 10000 ? 3 : 60;
        float *logits = malloc((size_t)vocab * sizeof *logits), *work = malloc((size_t)vocab * sizeof *work);
        double *want = malloc((size_t)vocab * sizeof *want), *got = malloc((size_t)vocab * sizeof *got);
        int32_t history[100];
        for (int trial = 0; trial < n_trials; trial++, trials++) {
            float scale = sq_test_rand_uniform(&rng, 0.5f, 8);
            for (int i = 0; i < vocab; i++) logits[i] = scale * sq_test_rand_uniform(&rng, -1, 1);
            int n_history = (int)(sq_test_rand_u64(&rng) % 100);
            for (int i = 0; i < n_history; i++)
                history[i] = (int32_t)(sq_test_rand_u64(&rng) % (uint64_t)vocab);
#define PICK(a) a[sq_test_rand_u64(&rng) % (sizeof a / sizeof *a)]
            sq_sampler_params prm =
                params(PICK(temps), PICK(top_ks), PICK(top_ps), PICK(min_ps), PICK(penalties), PICK(last_ns));
#undef PICK
            sq_sampler *s = make_sampler(prm, vocab);
            ref_probs(&prm, logits, vocab, history, n_history, want);
            memcpy(work, logits, (size_t)vocab * sizeof *work);
            sampler_dense(s, work, vocab, history, n_history, got);
            for (int i = 0; i < vocab; i++)
                if (fabs(got[i] - want[i]) > 1e-6)
                    fail_msg(
                        "vocab %d temp %g top_k %d top_p %g min_p %g penalty %g/%d: token %d has p=%.9f, "
                        "reference %.9f",
                        vocab, prm.temperature, prm.top_k, prm.top_p, prm.min_p, prm.repeat_penalty,
                        prm.repeat_last_n, i, got[i], want[i]);
            sq_sampler_free(s);
        }
        free(logits);
        free(work);
        free(want);
        free(got);
    }
    printf("sampler probabilities matched the double-precision reference to 1e-6 in %d random trials\n",
           trials);
}

/* Ties at the top-k boundary go to the lower ids, in the sampler and in the reference alike. */
static void test_top_k_ties(void **state) {
    (void)state;
    enum { V = 64 };
    float logits[V], work[V];
    double want[V], got[V];
    for (int i = 0; i < V; i++) logits[i] = (float)((i * 7) % 5) * 0.5f; /* five values, many ties */
    sq_sampler_params prm = params(1, 20, 1, 0, 1, 0);
    sq_sampler *s = make_sampler(prm, V);
    memcpy(work, logits, sizeof work);
    sampler_dense(s, work, V, NULL, 0, got);
    ref_probs(&prm, logits, V, NULL, 0, want);
    for (int i = 0; i < V; i++) assert_true(fabs(got[i] - want[i]) <= 1e-12);
    sq_sampler_free(s);
}

/* Top-p alone over a large vocabulary: peaked logits stop within the first partial sorts, flat ones make the
 * sampler sort (radix) most of the vocabulary; quantized logits put ties everywhere; -0 ties with +0. */
static void test_top_p_large_vocab(void **state) {
    (void)state;
    enum { V = 151936 };
    float *logits = malloc(V * sizeof *logits), *work = malloc(V * sizeof *work);
    double *want = malloc(V * sizeof *want), *got = malloc(V * sizeof *got);
    uint64_t rng = 21;
    const float top_ps[] = {0.5f, 0.95f};
    for (int shape = 0; shape < 4; shape++) {
        for (int i = 0; i < V; i++) {
            float u = sq_test_rand_uniform(&rng, -1, 1);
            logits[i] = shape == 0   ? 30 * u * u * u * u * u /* a few large logits, the rest near 0 */
                        : shape == 1 ? 10 * u
                        : shape == 2 ? roundf(64 * u) / 16     /* many ties */
                                     : (i % 3 ? 0.0f : -0.0f); /* all tied: the cut falls among equals */
        }
        for (size_t k = 0; k < sizeof top_ps / sizeof *top_ps; k++) {
            sq_sampler_params prm = params(0.9f, 0, top_ps[k], 0, 1, 0);
            sq_sampler *s = make_sampler(prm, V);
            memcpy(work, logits, V * sizeof *work);
            sampler_dense(s, work, V, NULL, 0, got);
            ref_probs(&prm, logits, V, NULL, 0, want);
            for (int i = 0; i < V; i++)
                if (fabs(got[i] - want[i]) > 1e-6)
                    fail_msg("shape %d top_p %g: token %d has p=%.9f, reference %.9f", shape, top_ps[k], i,
                             got[i], want[i]);
            sq_sampler_free(s);
        }
    }
    free(logits);
    free(work);
    free(want);
    free(got);
}

/* Upper 0.999 quantile of chi-square with df degrees of freedom (Wilson-Hilferty; z = 3.0902). */
static double chi2_quantile_999(int df) {
    double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + 3.0902 * sqrt(a), 3);
}

static void test_draw_frequencies(void **state) {
    (void)state;
    enum { V = 50, DRAWS = 100000 };
    uint64_t rng = 99;
    float logits[V], work[V];
    for (int i = 0; i < V; i++) logits[i] = sq_test_rand_uniform(&rng, -3, 3);
    const sq_sampler_params cases[] = {params(1, 0, 1, 0, 1, 0), params(0.7f, 30, 0.9f, 0.02f, 1, 0),
                                       params(1.5f, 12, 1, 0, 1, 0)};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        sq_sampler *s = make_sampler(cases[k], V);
        double p[V];
        memcpy(work, logits, sizeof work);
        sampler_dense(s, work, V, NULL, 0, p);
        long count[V] = {0};
        for (int d = 0; d < DRAWS; d++) {
            int32_t id = sq_sampler_sample(s, work, NULL, 0);
            assert_true(id >= 0 && id < V);
            count[id]++;
        }
        double chi2 = 0;
        int df = -1;
        for (int i = 0; i < V; i++) {
            if (p[i] == 0) {
                if (count[i]) fail_msg("token %d has probability 0 but was drawn %ld times", i, count[i]);
                continue;
            }
            double e = p[i] * DRAWS;
            assert_true(e >= 5); /* the chi-square approximation holds */
            chi2 += (count[i] - e) * (count[i] - e) / e;
            df++;
        }
        double limit = chi2_quantile_999(df);
        printf("draws case %zu: chi-square %.1f over %d degrees of freedom (limit %.1f, p = 0.001)\n", k,
               chi2, df, limit);
        assert_true(df >= 1);
        assert_true(chi2 < limit);
        sq_sampler_free(s);
    }
}

static void test_seed_determinism(void **state) {
    (void)state;
    enum { V = 1000, N = 500 };
    uint64_t rng = 5;
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = sq_test_rand_uniform(&rng, -2, 2);
    sq_sampler_params prm = params(1, 0, 1, 0, 1, 0);
    int32_t seq[3][N];
    const uint64_t seeds[3] = {42, 42, 43};
    for (int r = 0; r < 3; r++) {
        prm.seed = seeds[r];
        sq_sampler *s = make_sampler(prm, V);
        for (int i = 0; i < N; i++) seq[r][i] = sq_sampler_sample(s, logits, NULL, 0);
        sq_sampler_free(s);
    }
    assert_memory_equal(seq[0], seq[1], sizeof seq[0]);
    int differ = 0;
    for (int i = 0; i < N; i++) differ += seq[0][i] != seq[2][i];
    assert_true(differ > N / 2); /* p(same) per draw is about 1/V for a flat-ish distribution */
}

static void test_greedy_ties_and_nan(void **state) {
    (void)state;
    float logits[8] = {1, 5, -2, 5, NAN, 0, 5, -INFINITY};
    sq_sampler *s = make_sampler(params(0, 40, 0.9f, 0.1f, 1, 64), 8);
    assert_int_equal(sq_sampler_sample(s, logits, NULL, 0), 1);
    logits[0] = NAN, logits[1] = NAN;
    assert_int_equal(sq_sampler_sample(s, logits, NULL, 0), 3);
    sq_sampler_free(s);
    /* negative temperature is greedy too */
    float flat[4] = {2, 2, 2, 2};
    s = make_sampler(params(-1, 0, 1, 0, 1, 0), 4);
    for (int i = 0; i < 10; i++) assert_int_equal(sq_sampler_sample(s, flat, NULL, 0), 0);
    sq_sampler_free(s);
}

static void test_repetition_penalty(void **state) {
    (void)state;
    float logits[8] = {2, -2, 0, 3, 4, -1, 1, 0.5f};
    /* token 4 appears three times: penalised once; token 9 is not in the vocabulary; token 7 is too far back
     */
    const int32_t history[] = {7, 0, 4, 1, 4, 2, 9, 4, -3};
    sq_sampler *s = make_sampler(params(0, 0, 1, 0, 2, 8), 8);
    assert_int_equal(sq_sampler_sample(s, logits, history, 9), 3); /* 4 -> 2 loses to 3 */
    const float want[8] = {1, -4, 0, 3, 2, -1, 1, 0.5f};
    for (int i = 0; i < 8; i++)
        if (logits[i] != want[i])
            fail_msg("logit %d is %g after the penalty, want %g", i, logits[i], want[i]);
    /* penalty 1 leaves logits alone; repeat_last_n 0 looks at nothing */
    sq_sampler_free(s);
    float again[8] = {2, -2, 0, 3, 4, -1, 1, 0.5f};
    s = make_sampler(params(0, 0, 1, 0, 2, 0), 8);
    assert_int_equal(sq_sampler_sample(s, again, history, 9), 4);
    assert_true(again[4] == 4);
    sq_sampler_free(s);
}

static void test_edge_cases(void **state) {
    (void)state;
    enum { V = 300 };
    float logits[V];
    double got[V], want[V];
    const sq_candidate *c;
    const double *p;
    /* all -inf but one: that one, whatever the filters */
    for (int i = 0; i < V; i++) logits[i] = -INFINITY;
    logits[123] = -50;
    sq_sampler *s = make_sampler(params(0.9f, 10, 0.5f, 0.2f, 1, 0), V);
    assert_int_equal(sq_sampler_probs(s, logits, NULL, 0, &c, &p), 1);
    assert_int_equal(c[0].id, 123);
    assert_true(p[0] == 1);
    for (int i = 0; i < 20; i++) assert_int_equal(sq_sampler_sample(s, logits, NULL, 0), 123);
    /* nothing above -inf: no candidates, sample says -1 */
    logits[123] = NAN;
    assert_int_equal(sq_sampler_probs(s, logits, NULL, 0, &c, &p), 0);
    assert_int_equal(sq_sampler_sample(s, logits, NULL, 0), -1);
    sq_sampler_free(s);
    s = make_sampler(params(0, 0, 1, 0, 1, 0), V);
    assert_int_equal(sq_sampler_sample(s, logits, NULL, 0), -1);
    sq_sampler_free(s);
    /* +inf logits share all the mass */
    for (int i = 0; i < V; i++) logits[i] = (float)i / V;
    logits[10] = logits[20] = INFINITY;
    s = make_sampler(params(1, 0, 1, 0, 1, 0), V);
    sampler_dense(s, logits, V, NULL, 0, got);
    assert_true(got[10] == 0.5 && got[20] == 0.5);
    sq_sampler_free(s);

    /* top_k beyond the vocabulary, top_p = 1 and min_p = 0 filter nothing: a plain softmax over all */
    uint64_t rng = 11;
    for (int i = 0; i < V; i++) logits[i] = sq_test_rand_uniform(&rng, -5, 5);
    s = make_sampler(params(1, V + 50, 1, 0, 1, 0), V);
    sampler_dense(s, logits, V, NULL, 0, got);
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++) sum += want[i] = exp((double)logits[i] - mx);
    for (int i = 0; i < V; i++) {
        assert_true(got[i] > 0);
        assert_true(fabs(got[i] - want[i] / sum) <= 1e-12);
    }
    sq_sampler_free(s);
    /* a tiny top_p keeps only the best token */
    s = make_sampler(params(1, 0, 1e-6f, 0, 1, 0), V);
    assert_int_equal(sq_sampler_probs(s, logits, NULL, 0, &c, &p), 1);
    sq_sampler_free(s);
}

static void test_invalid_params(void **state) {
    (void)state;
    sq_sampler *s = (sq_sampler *)&s;
    const struct {
        sq_sampler_params p;
        int vocab;
        const char *field;
    } bad[] = {
        {params(1, 0, 1, 0, 1, 0), 0, "vocab_size"},
        {params(1, -1, 1, 0, 1, 0), 10, "top_k"},
        {params(1, 0, 0, 0, 1, 0), 10, "top_p"},
        {params(1, 0, 1.01f, 0, 1, 0), 10, "top_p"},
        {params(1, 0, NAN, 0, 1, 0), 10, "top_p"},
        {params(NAN, 0, 1, 0, 1, 0), 10, "temperature"},
        {params(INFINITY, 0, 1, 0, 1, 0), 10, "temperature"},
        {params(1, 0, 1, -0.1f, 1, 0), 10, "min_p"},
        {params(1, 0, 1, NAN, 1, 0), 10, "min_p"},
        {params(1, 0, 1, 0, 0, 0), 10, "repeat_penalty"},
        {params(1, 0, 1, 0, NAN, 0), 10, "repeat_penalty"},
        {params(1, 0, 1, 0, 1, -1), 10, "repeat_last_n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_error *err = sq_sampler_create(&bad[i].p, bad[i].vocab, &s);
        assert_non_null(err);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_INVALID_ARG);
        assert_null(s);
        sq_test_fails_with(err, bad[i].field);
    }
    sq_sampler_params d = sq_sampler_default_params();
    sq_test_ok(sq_sampler_create(&d, 32000, &s));
    sq_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probs_match_reference), cmocka_unit_test(test_top_k_ties),
        cmocka_unit_test(test_top_p_large_vocab),     cmocka_unit_test(test_draw_frequencies),
        cmocka_unit_test(test_seed_determinism),      cmocka_unit_test(test_greedy_ties_and_nan),
        cmocka_unit_test(test_repetition_penalty),    cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_invalid_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
