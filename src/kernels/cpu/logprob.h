/* Row kernels over a vocabulary of logits, in double precision: log-normaliser, exact KL divergence, argmax.
 * Evaluation (perplexity, KL, zero-shot) runs them on every scored token, over logits in host memory. Their
 * plain references are in kernels/ref/ref.h. */
#ifndef SQ_KERNELS_CPU_LOGPROB_H
#define SQ_KERNELS_CPU_LOGPROB_H

#include <stdint.h>

/* exp(x) for x <= 0 in double precision (relative error ~1e-16; 0 below -708), branch-free on two lanes so
 * that loops over a vocabulary vectorise: log-softmax over 32000 logits per token is otherwise a large share
 * of the time. 16-byte vectors are native in the baseline ABI of x86-64 (SSE2) and ARM (NEON). */
typedef double sq_v2d __attribute__((vector_size(16)));
typedef int64_t sq_v2l __attribute__((vector_size(16)));

static inline sq_v2d sq_exp2_nonpos(sq_v2d x) {
    const sq_v2d lo = {-708.0, -708.0}, shift = {0x1.8p52, 0x1.8p52};
    sq_v2l below = x < lo;
    x = (sq_v2d)(((sq_v2l)x & ~below) | ((sq_v2l)lo & below));
    sq_v2d t = x * 1.4426950408889634 + shift;
    sq_v2d k = t - shift;                                                 /* round(x / ln 2) */
    sq_v2d r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10; /* |r| <= ln(2)/2 */
    sq_v2d p = r * (1.0 / 479001600) + 1.0 / 39916800; /* Taylor series to r^12: truncation error < 2e-16 */
    p = p * r + 1.0 / 3628800;
    p = p * r + 1.0 / 362880;
    p = p * r + 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    sq_v2l bits = ((sq_v2l)t - (sq_v2l)shift + 1023) << 52; /* 2^k: t holds k in its low mantissa bits */
    return (sq_v2d)((sq_v2l)(p * (sq_v2d)bits) & ~below);
}

static inline double sq_exp_nonpos(double x) { return sq_exp2_nonpos((sq_v2d){x, x})[0]; }

/* log(sum_v exp(z_v)) over z [n] */
double sq_logsumexp(const float *z, int n);
/* KL(P_ref || P_model) = sum_v p_ref(v) (log p_ref(v) - log p_model(v)) from logit rows zr, z [n] and their
 * log-normalisers (sq_logsumexp); may be a rounding error below 0 for identical distributions. */
double sq_kl_row(const float *zr, double lse_r, const float *z, double lse_m, int n);
/* The index of the largest of z [n]; the first among equals. */
int sq_argmax(const float *z, int n);

#endif
