/* Plain references for every backend operation (kernels/backend.h) and the log-prob row kernels
 * (kernels/cpu/logprob.h): one thread, straightforward loops, double precision wherever the fast version
 * rounds, no tiling or online softmax. tests/c/test_backend_ops.c checks every backend and kernel set against
 * them; the matmul oracle is sq_ref_matmul (kernels/cpu/matmul.h). Pointers are host memory. */
#ifndef SQ_KERNELS_REF_H
#define SQ_KERNELS_REF_H

#include "kernels/backend.h"

/* out[i] = row rows[i] of src through the dtype's reference conversion; out [n_rows][cols] */
void sq_ref_get_rows(const sq_tensor *src, const int32_t *rows, int n_rows, float *out);
/* x [n_tokens][dim], weight [dim], out [n_tokens][dim] */
void sq_ref_rmsnorm(const float *x, const float *weight, float eps, int n_tokens, int dim, float *out);
/* Rotates the first rope_dims of every head of x [n_tokens][n_heads][head_dim] by the angles
 * pos[t] * inv_freq[i] (i < rope_dims/2), in double. */
void sq_ref_rope(float *x, int n_heads, int n_tokens, int head_dim, int rope_dims, const int32_t *pos,
                 const double *inv_freq, sq_rope_style style);
void sq_ref_add(float *x, const float *y, int64_t n);
void sq_ref_add_bias(float *y, const float *bias, int n_tokens, int width);
void sq_ref_swiglu(float *gate, const float *up, int64_t n);
/* x[rows[i]] += scale[i] * y[i] (backend.h's add_rows), in double */
void sq_ref_add_rows(float *x, const float *y, const int32_t *rows, const float *scale, int n_rows,
                     int width);
void sq_ref_geglu(float *gate, const float *up, int64_t n);
void sq_ref_scale(float *x, float s, int64_t n);
void sq_ref_kv_store(const sq_kv_view *kv, const float *k, const float *v, const sq_token_batch *tokens);
void sq_ref_kv_copy(const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst, int n);

/* mask [n_tokens][n_slots]: 1 where token t sees slot s of its sequence, as sq_token_batch defines it
 * (window: sliding window in positions, 0 none). n_slots must exceed every slot a token sees. */
void sq_ref_attention_mask(const sq_token_batch *tokens, int window, int n_slots, unsigned char *mask);
/* Naive attention under an explicit mask: for each token and head, scores over all n_slots slots of its
 * sequence (seq [n_tokens]), masked ones dropped, soft-capped when softcap > 0 (softcap tanh(s / softcap)),
 * full softmax and weighted sum in double. Every token must see at least one slot. q, out
 * [n_tokens][n_heads][head_dim]. */
void sq_ref_attention_masked(const float *q, const sq_kv_view *kv, const int32_t *seq, int n_tokens,
                             int n_heads, int n_kv_heads, int head_dim, float softcap,
                             const unsigned char *mask, int n_slots, float *out);
/* sq_ref_attention_masked under the mask of the arguments' token batch. */
void sq_ref_attention(const sq_attention_args *args);

/* log(sum exp z) and KL(softmax(zr) || softmax(z)) over rows of n logits, in long double */
double sq_ref_logsumexp(const float *z, int n);
double sq_ref_kl(const float *zr, const float *z, int n);

#endif
