/* A deterministic stand-in language model for the evaluation tests: the logits at each position are a hash
 * of the whole token prefix (so cache, truncation and batching mistakes change them), plus a strong
 * preference for the token after the last one (so greedy continuations can be built on purpose). The
 * tests' own references call fake_logits on explicit token lists; the code under test sees it only through
 * the sq_lm seam, one batch of sequences at a time. */
#ifndef SQ_TEST_FAKE_LM_H
#define SQ_TEST_FAKE_LM_H

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/eval.h"

typedef struct fake_lm {
    int n_vocab, n_ctx, n_seq;
    uint64_t seed;
    double perturb; /* a second model: the same logits plus this much noise */
    int32_t *hist;  /* [n_seq][n_ctx] */
    int *len;
    long forward_calls, tokens_run;
    long fail_at_call; /* > 0: that forward call fails, as a broken backend would */
} fake_lm;

static uint64_t fake_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double fake_unit(uint64_t x) { return (double)(fake_mix(x) >> 11) / 9007199254740992.0; }

/* Logits after reading tokens[0..n-1]. */
static void fake_logits(const fake_lm *m, const int32_t *tokens, int n, float *out) {
    uint64_t h = m->seed;
    for (int i = 0; i < n; i++) h = fake_mix(h ^ (uint64_t)(uint32_t)tokens[i]);
    int next = (tokens[n - 1] + 1) % m->n_vocab;
    for (int v = 0; v < m->n_vocab; v++) {
        double z = 6 * fake_unit(h ^ ((uint64_t)v << 32)) - 3;
        if (v == next) z += 7; /* always the argmax: the rest lie in [-3, 3) */
        if (m->perturb != 0) z += m->perturb * (2 * fake_unit(h ^ ((uint64_t)v << 32) ^ 0x5555) - 1);
        out[v] = (float)z;
    }
}

static SQ_NODISCARD sq_error *fake_forward(void *impl, const sq_seq_batch *seqs, int n_seqs) {
    fake_lm *m = impl;
    if (++m->forward_calls == m->fail_at_call)
        return sq_errorf(SQ_ERR_INTERNAL, "fake lm: failing on purpose");
    for (int s = 0; s < n_seqs; s++) {
        const sq_seq_batch *b = &seqs[s];
        if (b->seq_id < 0 || b->seq_id >= m->n_seq || m->len[b->seq_id] + b->n_tokens > m->n_ctx ||
            b->n_tokens < 1)
            return sq_errorf(SQ_ERR_INVALID_ARG, "fake lm: bad batch");
        int32_t *h = m->hist + (size_t)b->seq_id * m->n_ctx;
        for (int t = 0; t < b->n_tokens; t++) {
            h[m->len[b->seq_id]++] = b->tokens[t];
            float *row = b->logits_mode == SQ_LOGITS_ALL ? b->logits + (size_t)t * m->n_vocab
                         : b->logits_mode == SQ_LOGITS_LAST && t == b->n_tokens - 1 ? b->logits
                                                                                    : NULL;
            if (row) fake_logits(m, h, m->len[b->seq_id], row);
        }
        m->tokens_run += b->n_tokens;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *fake_truncate(void *impl, int seq_id, int new_len) {
    fake_lm *m = impl;
    if (seq_id < 0 || seq_id >= m->n_seq || new_len > m->len[seq_id])
        return sq_errorf(SQ_ERR_INVALID_ARG, "fake lm: bad truncate");
    m->len[seq_id] = new_len;
    return NULL;
}

static sq_lm fake_lm_open(fake_lm *m, int n_vocab, int n_ctx, int n_seq, uint64_t seed, double perturb) {
    *m = (fake_lm){.n_vocab = n_vocab, .n_ctx = n_ctx, .n_seq = n_seq, .seed = seed, .perturb = perturb};
    m->hist = calloc((size_t)n_seq * n_ctx, sizeof *m->hist);
    m->len = calloc((size_t)n_seq, sizeof *m->len);
    return (sq_lm){.impl = m,
                   .n_vocab = n_vocab,
                   .n_ctx = n_ctx,
                   .n_seq_max = n_seq,
                   .forward = fake_forward,
                   .truncate = fake_truncate};
}

static void fake_lm_close(fake_lm *m) {
    free(m->hist);
    free(m->len);
}

#endif
