/* Token sampling with llama.cpp's semantics and order: repetition penalty, top-k, top-p, min-p, temperature,
 * then a draw from the sampler's own seeded generator (xoshiro256**).
 *
 * Candidates are ranked by logit, ties to the lower id, so every filter is deterministic. Only as much of the
 * vocabulary is sorted as a filter needs: a heap selects the best k (O(V log k)) and top-p grows its sorted
 * prefix geometrically until the probability mass is reached. All buffers are allocated once per sampler. */
#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* top-p sorts this many candidates first, then four times as many each time until it reaches its mass */
#define TOP_P_FIRST_SORT 64

struct sq_sampler {
    sq_sampler_params params;
    int vocab;
    uint64_t rng[4];
    sq_candidate *cand;  /* [vocab] */
    uint64_t *keys;      /* [2][vocab] for the radix sort */
    double *prob;        /* [vocab] */
    unsigned char *seen; /* [vocab] all zero between calls: marks tokens already penalised */
};

sq_sampler_params sq_sampler_default_params(void) {
    return (sq_sampler_params){.temperature = 0.8f,
                               .top_k = 40,
                               .top_p = 0.95f,
                               .min_p = 0.05f,
                               .repeat_penalty = 1.0f,
                               .repeat_last_n = 64,
                               .seed = 0};
}

/* ---------------------------------------------------------------- random numbers */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro256ss(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, 1) with 53 random bits */
static double next_uniform(sq_sampler *s) { return (double)(xoshiro256ss(s->rng) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------- creation */

static SQ_NODISCARD sq_error *check_params(const sq_sampler_params *p, int vocab_size) {
    if (vocab_size <= 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: vocab_size %d must be positive", vocab_size);
    if (!isfinite(p->temperature))
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: temperature %g must be a finite number (<= 0: greedy)",
                         p->temperature);
    if (p->top_k < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: top_k %d must be >= 0 (0 turns it off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: top_p %g must be in (0, 1] (1 turns it off)",
                         p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: min_p %g must be in [0, 1] (0 turns it off)",
                         p->min_p);
    if (!(p->repeat_penalty > 0) || !isfinite(p->repeat_penalty))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "sampler: repeat_penalty %g must be a positive finite number (1: off)",
                         p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: repeat_last_n %d must be >= 0", p->repeat_last_n);
    return NULL;
}

sq_error *sq_sampler_create(const sq_sampler_params *params, int vocab_size, sq_sampler **out) {
    *out = NULL;
    if (!params) return sq_errorf(SQ_ERR_INVALID_ARG, "sampler: no parameters given");
    SQ_TRY(check_params(params, vocab_size));
    sq_sampler *s = calloc(1, sizeof *s);
    if (!s) return sq_errorf(SQ_ERR_NOMEM, "sampler: out of memory");
    s->params = *params;
    s->vocab = vocab_size;
    s->cand = malloc((size_t)vocab_size * sizeof *s->cand);
    s->keys = malloc(2 * (size_t)vocab_size * sizeof *s->keys);
    s->prob = malloc((size_t)vocab_size * sizeof *s->prob);
    s->seen = calloc((size_t)vocab_size, 1);
    if (!s->cand || !s->keys || !s->prob || !s->seen) {
        sq_sampler_free(s);
        return sq_errorf(SQ_ERR_NOMEM, "sampler: out of memory for a vocabulary of %d tokens", vocab_size);
    }
    uint64_t x = params->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return NULL;
}

void sq_sampler_free(sq_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->keys);
    free(s->prob);
    free(s->seen);
    free(s);
}

/* ---------------------------------------------------------------- ranking */

/* a ranks before b: higher logit, ties to the lower id (a total order: ids are distinct, NaN never enters) */
static int ranks_before(const sq_candidate *a, const sq_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int compare_rank(const void *a, const void *b) { return ranks_before(b, a) - ranks_before(a, b); }

static void swap_cand(sq_candidate *a, sq_candidate *b) {
    sq_candidate t = *a;
    *a = *b;
    *b = t;
}

/* heap of the m best so far, its root the worst of them */
static void sift_down(sq_candidate *h, int m, int i) {
    for (;;) {
        int worst = i, l = 2 * i + 1, r = l + 1;
        if (l < m && ranks_before(&h[worst], &h[l])) worst = l;
        if (r < m && ranks_before(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        swap_cand(&h[i], &h[worst]);
        i = worst;
    }
}

/* Permutes c[0..n) so that c[0..m) holds its m best, in no particular order. */
static void select_best(sq_candidate *c, int n, int m) {
    if (m >= n) return;
    for (int i = m / 2 - 1; i >= 0; i--) sift_down(c, m, i);
    for (int i = m; i < n; i++)
        if (ranks_before(&c[i], &c[0])) {
            swap_cand(&c[0], &c[i]);
            sift_down(c, m, 0);
        }
}

/* (logit, id) as one unsigned key that orders like ranks_before (larger logits first, then lower ids) and
 * from which the candidate comes back: -0 becomes +0, which ranks the same */
static uint64_t rank_key(sq_candidate c) {
    uint32_t u;
    float logit = c.logit == 0 ? 0.0f : c.logit;
    memcpy(&u, &logit, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending as unsigned */
    return (uint64_t)~u << 32 | (uint32_t)c.id;
}

static sq_candidate candidate_of_key(uint64_t key) {
    uint32_t u = ~(uint32_t)(key >> 32);
    u = (u & 0x80000000u) ? u & 0x7fffffffu : ~u;
    sq_candidate c = {.id = (int32_t)(uint32_t)key};
    memcpy(&c.logit, &u, sizeof u);
    return c;
}

/* Sorts c[0..n) into rank order in O(n): a least-significant-byte radix sort of the rank keys. */
static void radix_sort(sq_sampler *s, sq_candidate *c, int n) {
    uint64_t *key = s->keys, *tmp = s->keys + s->vocab;
    size_t start[8][256] = {{0}};
    for (int i = 0; i < n; i++) {
        key[i] = rank_key(c[i]);
        for (int b = 0; b < 8; b++) start[b][(key[i] >> (8 * b)) & 255]++;
    }
    for (int b = 0; b < 8; b++) {
        int shift = 8 * b;
        if (start[b][(key[0] >> shift) & 255] == (size_t)n)
            continue; /* every key has this byte: no-op pass */
        size_t pos = 0;
        for (int d = 0; d < 256; d++) {
            size_t count = start[b][d];
            start[b][d] = pos;
            pos += count;
        }
        for (int i = 0; i < n; i++) tmp[start[b][(key[i] >> shift) & 255]++] = key[i];
        uint64_t *t = key;
        key = tmp;
        tmp = t;
    }
    for (int i = 0; i < n; i++) c[i] = candidate_of_key(key[i]);
}

/* Makes c[0..m) the m best of c[0..n) in rank order, given that c[0..*sorted) already is. */
static void sort_prefix(sq_sampler *s, int n, int *sorted, int m) {
    sq_candidate *rest = s->cand + *sorted;
    int n_rest = n - *sorted;
    if (m > n) m = n;
    if (m <= *sorted) return;
    if (m - *sorted > n_rest / 64) { /* much of the rest: sorting it all is cheaper than selecting */
        radix_sort(s, rest, n_rest);
        *sorted = n;
        return;
    }
    select_best(rest, n_rest, m - *sorted);
    qsort(rest, (size_t)(m - *sorted), sizeof *rest, compare_rank);
    *sorted = m;
}

static float max_logit(const sq_candidate *c, int n) {
    float mx = c[0].logit;
    for (int i = 1; i < n; i++) mx = c[i].logit > mx ? c[i].logit : mx;
    return mx;
}

/* Unnormalised probability of a logit at temperature t, relative to the largest logit mx. When mx is +inf,
 * the infinite logits share all the mass (the limit of the softmax). */
static double weight(float logit, float mx, double t) {
    if (isinf(mx)) return logit == mx;
    return exp(((double)logit - mx) / t);
}

/* ---------------------------------------------------------------- the filters */

/* Once per distinct token among the last repeat_last_n of history: positive logits divided by the penalty,
 * the others multiplied. */
static void apply_penalty(sq_sampler *s, float *logits, const int32_t *history, int n_history) {
    float penalty = s->params.repeat_penalty;
    if (penalty == 1.0f || s->params.repeat_last_n == 0 || !history || n_history <= 0) return;
    int start = n_history > s->params.repeat_last_n ? n_history - s->params.repeat_last_n : 0;
    for (int i = start; i < n_history; i++) {
        int32_t id = history[i];
        if (id < 0 || id >= s->vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
    }
    for (int i = start; i < n_history; i++)
        if (history[i] >= 0 && history[i] < s->vocab) s->seen[history[i]] = 0;
}

/* The smallest rank-ordered prefix whose probability (softmax over the n candidates) reaches top_p. */
static int apply_top_p(sq_sampler *s, int n, int *sorted, float top_p) {
    const sq_candidate *c = s->cand;
    float mx = max_logit(c, n);
    double total = 0;
    for (int i = 0; i < n; i++) total += weight(c[i].logit, mx, 1);
    double mass = 0;
    for (int i = 0; i < n; i++) {
        if (i == *sorted)
            sort_prefix(s, n, sorted, *sorted < TOP_P_FIRST_SORT ? TOP_P_FIRST_SORT : 4 * *sorted);
        mass += weight(c[i].logit, mx, 1) / total;
        if (mass >= top_p) return i + 1;
    }
    return n;
}

/* Drops candidates whose probability is below min_p times the largest probability (order is kept). */
static int apply_min_p(sq_candidate *c, int n, float min_p) {
    float mx = max_logit(c, n);
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (c[i].logit == mx || weight(c[i].logit, mx, 1) >= min_p) c[kept++] = c[i];
    return kept;
}

static int greedy(sq_sampler *s, const float *logits) {
    int best = -1;
    for (int i = 0; i < s->vocab; i++)
        if (logits[i] > -INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) return 0;
    s->cand[0] = (sq_candidate){logits[best], best};
    s->prob[0] = 1;
    return 1;
}

int sq_sampler_probs(sq_sampler *s, float *logits, const int32_t *history, int n_history,
                     const sq_candidate **cands, const double **probs) {
    const sq_sampler_params *p = &s->params;
    *cands = s->cand;
    *probs = s->prob;
    apply_penalty(s, logits, history, n_history);
    if (p->temperature <= 0) return greedy(s, logits);

    sq_candidate *c = s->cand;
    int n = 0, sorted = 0;
    for (int i = 0; i < s->vocab; i++)
        if (logits[i] > -INFINITY) c[n++] = (sq_candidate){logits[i], i}; /* NaN and -inf never win */
    if (n == 0) return 0;
    if (p->top_k > 0 && p->top_k < n) {
        sort_prefix(s, n, &sorted, p->top_k);
        n = p->top_k;
    }
    if (p->top_p < 1) n = apply_top_p(s, n, &sorted, p->top_p);
    if (p->min_p > 0) n = apply_min_p(c, n, p->min_p);

    float mx = max_logit(c, n);
    double total = 0;
    for (int i = 0; i < n; i++) total += s->prob[i] = weight(c[i].logit, mx, p->temperature);
    for (int i = 0; i < n; i++) s->prob[i] /= total;
    return n;
}

int sq_sampler_dist(sq_sampler *s, float *logits, const int32_t *history, int n_history, double *dist) {
    const sq_candidate *c;
    const double *prob;
    int n = sq_sampler_probs(s, logits, history, n_history, &c, &prob);
    memset(dist, 0, (size_t)s->vocab * sizeof *dist);
    for (int i = 0; i < n; i++) dist[c[i].id] = prob[i];
    return n;
}

double sq_sampler_uniform(sq_sampler *s) { return next_uniform(s); }

int sq_sampler_choose(sq_sampler *s, const double *p, double *r, const int32_t *cands, int n_cands,
                      int32_t *next) {
    memcpy(r, p, (size_t)s->vocab * sizeof *r);
    double total = 1;
    for (int i = 0; i < n_cands; i++) {
        int32_t x = cands[i];
        if (r[x] > 0 && next_uniform(s) * total < r[x]) return i;
        total -= r[x];
        r[x] = 0;
    }
    *next = sq_sampler_draw(s, r);
    if (*next < 0) *next = sq_sampler_draw(s, p);
    return -1;
}

int sq_sampler_accept_drawn(sq_sampler *s, const double *p, const double *q, int32_t x, double *r,
                            int32_t *next) {
    if (next_uniform(s) * q[x] < p[x]) return 1;
    for (int i = 0; i < s->vocab; i++) r[i] = p[i] > q[i] ? p[i] - q[i] : 0;
    *next = sq_sampler_draw(s, r);
    /* rounding can leave no residual mass where p and q agree, a rejection of probability zero: p then */
    if (*next < 0) *next = sq_sampler_draw(s, p);
    return 0;
}

int32_t sq_sampler_draw(sq_sampler *s, const double *weights) {
    double total = 0;
    for (int i = 0; i < s->vocab; i++) total += weights[i];
    if (!(total > 0)) return -1;
    double u = next_uniform(s) * total, mass = 0;
    int last = -1;
    for (int i = 0; i < s->vocab; i++) {
        if (weights[i] <= 0) continue;
        mass += weights[i];
        last = i;
        if (u < mass) return i;
    }
    return last; /* rounding left the running total a hair under u */
}

int32_t sq_sampler_sample(sq_sampler *s, float *logits, const int32_t *history, int n_history) {
    const sq_candidate *c;
    const double *prob;
    int n = sq_sampler_probs(s, logits, history, n_history, &c, &prob);
    if (n == 0) return -1;
    if (s->params.temperature <= 0) return c[0].id;
    double u = next_uniform(s), mass = 0;
    for (int i = 0; i < n; i++) {
        mass += prob[i];
        if (u < mass) return c[i].id;
    }
    /* rounding left the total a hair under u: the last candidate that has any mass */
    int last = n - 1;
    while (last > 0 && prob[last] == 0) last--;
    return c[last].id;
}
