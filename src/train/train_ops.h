/* The forward and backward steps of the Llama block's operations, in fp32, for training (LoRA recovery,
 * Taylor importance). Each forward step here computes exactly what the inference kernels compute (same
 * definitions, plain fp32 loops, no paged cache: training sequences are whole and causal), and each backward
 * step is its derivative, checked against finite differences in tests/c/test_train.c and against the float64
 * reference forward in tests/py/test_train.py.
 *
 * Shapes are outermost first; n is the number of token rows (sequences x length, row t of sequence b is
 * b * seq_len + t). Backward steps that produce an input gradient say whether they overwrite (=) or add (+=).
 */
#ifndef SQ_TRAIN_TRAIN_OPS_H
#define SQ_TRAIN_TRAIN_OPS_H

#include <stdint.h>

#include "core/rope.h"
#include "core/threadpool.h"

/* C = alpha * op(A) op(B) + beta * C (row-major, as cblas_sgemm), its M rows of C split over the pool. */
void tr_gemm(sq_threadpool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* RMSNorm: y = x / sqrt(mean(x^2) + eps) * w.  x, y [n][d]; w [d]; rstd [n] (saved for the backward). */
void tr_rmsnorm_fwd(sq_threadpool *pool, const float *x, const float *w, int n, int d, float eps, float *y,
                    float *rstd);
/* dx += dL/dx; dw += dL/dw when dw is not NULL (one thread sums dw: its rows in order, deterministic). */
void tr_rmsnorm_bwd(sq_threadpool *pool, const float *x, const float *w, const float *rstd, const float *dy,
                    int n, int d, float *dx, float *dw);

/* RoPE in place on the first rope_dims of each head of x [n][heads * head_dim], token row r at position
 * pos[r]; inv_freq [rope_dims/2]. sign +1 rotates by the angle (forward), -1 by its negative: the transpose,
 * i.e. the backward of the forward. */
void tr_rope(sq_threadpool *pool, float *x, int n, int heads, int head_dim, int rope_dims, const int32_t *pos,
             const double *inv_freq, sq_rope_style style, int sign);

/* Causal softmax attention with grouped-query heads (query head h reads key/value head h / (n_heads /
 * n_kv_heads)) over n_seqs whole sequences of seq_len: q, out [n][n_heads * hd]; k, v [n][n_kv * hd]; lse
 * [n_seqs][n_heads][seq_len] each row's log-sum-exp of scaled scores (saved: the backward recomputes the
 * probabilities from it). window > 0: query i sees keys j with i - window < j <= i. */
typedef struct tr_attn_shape {
    int n_seqs, seq_len, n_heads, n_kv_heads, head_dim, window;
} tr_attn_shape;
void tr_attention_fwd(sq_threadpool *pool, const tr_attn_shape *s, const float *q, const float *k,
                      const float *v, float *out, float *lse, float *scratch /* [pool size][seq_len] */);
/* dq, dk, dv (=) from dout; q, k, v, out, lse as the forward left them. */
void tr_attention_bwd(sq_threadpool *pool, const tr_attn_shape *s, const float *q, const float *k,
                      const float *v, const float *out, const float *lse, const float *dout, float *dq,
                      float *dk, float *dv);

/* SwiGLU: h = silu(g) * u over n values; backward dg, du (=) from dh (dh may be du itself). */
void tr_swiglu_fwd(sq_threadpool *pool, const float *g, const float *u, int64_t n, float *h);
void tr_swiglu_bwd(sq_threadpool *pool, const float *g, const float *u, const float *dh, int64_t n, float *dg,
                   float *du);

/* The loss of rows of logits z [n][vocab], replaced in place by its gradient:
 *   ce_weight * (-log softmax(z)[target]) for rows whose target >= 0 (next-token cross-entropy),
 *   + kd_weight * T^2 * KL(softmax(zt / T) || softmax(z / T)) for every row when zt [n][vocab] is given
 *   (Hinton et al. 2015's distillation loss with temperature T; T^2 keeps its gradient's scale).
 * Each term's gradient is multiplied by its row scale (ce_scale, kd_scale: 1 / rows averaged over). Returns
 * the unscaled sums: *ce_sum of -log p, *kd_sum of KL (without T^2). Rows are computed in double. */
typedef struct tr_loss_spec {
    float ce_weight, kd_weight, kd_temp;
    double ce_scale, kd_scale;
} tr_loss_spec;
void tr_loss_rows(sq_threadpool *pool, float *z, const float *zt, const int32_t *target, int n, int vocab,
                  const tr_loss_spec *spec, double *partial /* [2][pool size] */, double *ce_sum,
                  double *kd_sum);

#endif
