/* Sampler internals: the distribution a sampler draws from, exposed so tests check exactly what samples. */
#ifndef SQ_RUNTIME_SAMPLER_H
#define SQ_RUNTIME_SAMPLER_H

#include <stdint.h>

#include "squeeze.h"

typedef struct sq_candidate {
    float logit;
    int32_t id;
} sq_candidate;

/* Applies the repetition penalty to logits (in place), then top-k, top-p, min-p and temperature, and returns
 * how many candidates survive; *cands and *probs (valid until the sampler's next call) hold their ids and
 * their probabilities, which sum to 1. Greedy samplers (temperature <= 0) return the one argmax token with
 * probability 1. Returns 0 when no logit is a number above -inf. sq_sampler_sample draws from exactly this.
 */
int sq_sampler_probs(sq_sampler *s, float *logits, const int32_t *history, int n_history,
                     const sq_candidate **cands, const double **probs);

/* A number drawn uniformly from [0, 1) by the sampler's generator (speculative acceptance tests). */
double sq_sampler_uniform(sq_sampler *s);
/* Draws id i with probability weights[i] / sum(weights) (weights: [vocab], non-negative, any positive total)
 * from the sampler's generator; -1 when every weight is zero. The residual draws of speculative sampling. */
int32_t sq_sampler_draw(sq_sampler *s, const double *weights);
/* Speculative sampling's rule for candidates chosen deterministically (n-gram lookup, a tree's branches;
 * SpecInfer, Miao et al. 2024): tried in order, each is accepted with probability r(x) / sum(r), where r
 * starts as the target's distribution p ([vocab]) and loses every rejected candidate. Returns the accepted
 * candidate's index into cands, or -1 with *next drawn from what r has left (from p when rounding left
 * nothing). r: [vocab] scratch. The tokens this yields follow p exactly. */
int sq_sampler_choose(sq_sampler *s, const double *p, double *r, const int32_t *cands, int n_cands,
                      int32_t *next);
/* Speculative sampling's rule for a draft token x drawn from the draft's distribution q (Leviathan et al.
 * 2023; Chen et al. 2023): accepted with probability min(1, p(x) / q(x)) (returns 1), else rejected (returns
 * 0) with *next drawn from normalize(max(0, p - q)) (from p when rounding left nothing). p, q: [vocab]; r:
 * [vocab] scratch. The tokens this yields follow p exactly. */
int sq_sampler_accept_drawn(sq_sampler *s, const double *p, const double *q, int32_t x, double *r,
                            int32_t *next);

#endif
