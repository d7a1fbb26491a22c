/* Pruning internals (issue 9, squeeze.h "pruning"): the mask every unstructured method chooses with, and the
 * methods sq_prune dispatches to. */
#ifndef SQ_COMPRESS_PRUNE_H
#define SQ_COMPRESS_PRUNE_H

#include <stdint.h>

#include "squeeze.h"

/* The linear weights of a block that unstructured pruning changes (GGUF suffixes after "blk.N."). */
enum { SQ_PRUNE_N_LINEAR = 7 };
extern const char *const sq_prune_linear_names[SQ_PRUNE_N_LINEAR];

/* The weight matrices unstructured pruning changes in block `layer`: a dense block's seven; a mixture-of-
 * experts block's four attention ones, its three 3-D ffn_*_exps tensors (each expert's matrix pruned on its
 * own) and the shared expert's three where it has one. names[i] the full names, input[i] the tap point of
 * each one's input (sq_calib_stats; SQ_TAP_EXPERT_*: per expert). Returns the count. */
enum { SQ_PRUNE_MAX_MATRICES = 10 };
int sq_prune_block_matrices(const sq_model *model, int layer, char names[SQ_PRUNE_MAX_MATRICES][64],
                            sq_tap_point input[SQ_PRUNE_MAX_MATRICES]);

/* Which weights compete for removal under a sparsity. */
typedef enum sq_mask_scope {
    SQ_MASK_PER_MATRIX, /* one threshold for the whole matrix (magnitude, as Wanda's and SparseGPT's baseline)
                         */
    SQ_MASK_PER_ROW     /* each output row on its own (Wanda: "compared within each output row") */
} sq_mask_scope;

/* Sets to zero the weights of w [rows][cols] with the lowest score [rows][cols]. With m > 0 (N:M), in every
 * group of m consecutive weights of a row, the m - n lowest (cols must be a multiple of m); otherwise the
 * floor(sparsity * count) lowest of each scope (as Wanda's reference code counts them). Equal scores go lower
 * index first, so the choice is deterministic. Returns how many weights it chose, or -1 when out of memory
 * (w is then unchanged). */
int64_t sq_prune_mask(float *w, const float *score, int64_t rows, int64_t cols, sq_mask_scope scope,
                      double sparsity, int n, int m);

/* Splits 0..n-1 into the k lowest-scored (a score that is not a number counts as most important; ties: lower
 * index first) and the others: drop[k] and keep[n-k], each ascending. -1 when out of memory. */
int sq_prune_split_lowest(const double *score, int n, int k, int *drop, int *keep);

/* Elements, non-zero elements (every tensor read back as floats) and weight bytes of all the model's tensors,
 * and its block count: what sq_prune_result and the recipe runner report. */
SQ_NODISCARD sq_error *sq_prune_measure(const sq_model *model, int64_t *params, int64_t *nonzero,
                                        size_t *bytes, int *n_layers);

/* Magnitude, Wanda or SparseGPT pruning of every block's linear weights, one block per sq_model_edit_tensors
 * call; res->n_pruned gets how many weights the masks chose, res->experts_magnitude the experts that Wanda or
 * SparseGPT found without calibration tokens (pruned by magnitude instead). layer_sparsity [n_layers] (NULL:
 * opts->sparsity for every block) gives each block its own sparsity (OWL). */
SQ_NODISCARD sq_error *sq_prune_unstructured(sq_model *model, const sq_prune_options *opts,
                                             const double *layer_sparsity, sq_prune_result *res);

/* Wanda's score of w [rows][cols]: score[i][j] = |w[i][j]| * sqrt(sum_sq[j]) (sum_sq: the input channel's sum
 * of squares over the calibration tokens). */
void sq_prune_wanda_scores(const float *w, int64_t rows, int64_t cols, const double *sum_sq, float *score);

/* SparseGPT on one matrix w [rows][cols] (changed in place: pruned weights exactly zero, the others updated)
 * with xtx [cols][cols] the sum of x x^T over n_tokens calibration inputs: H = 2 xtx / n_tokens, inputs
 * never active (H_jj = 0) pruned outright, H dampened by 1% of its mean diagonal, the upper Cholesky factor
 * of H^-1, then lazy blocks of 128 columns (a multiple of m under N:M). Unstructured: in each block the
 * floor(sparsity * rows * block) lowest w^2 / [H^-1]_jj^2; N:M: per row in each group of m columns, the m - n
 * lowest as the group is reached. *chosen: weights the masks chose. SQ_ERR_INVALID_ARG when the dampened H
 * is not positive definite. */
SQ_NODISCARD sq_error *sq_prune_sparsegpt_matrix(float *w, int64_t rows, int64_t cols, const double *xtx,
                                                 int64_t n_tokens, double sparsity, int n, int m,
                                                 int64_t *chosen);

/* Width pruning (SQ_PRUNE_WIDTH) on the calibration loop. */
SQ_NODISCARD sq_error *sq_prune_width(sq_model *model, const sq_prune_options *opts);

/* Shortened LLaMA's block importance: scores[n_layers] (ppl: calibration perplexity with the block alone
 * skipped, *base the unskipped model's; magnitude: sum of |W| over its linear weights, *base 0). Higher means
 * more important. */
/* Taylor+'s protected blocks: the first *first and last *last (opts' values, or the paper's rule scaled). */
void sq_prune_taylor_kept(int n_layers, const sq_prune_options *opts, int *first, int *last);
SQ_NODISCARD sq_error *sq_prune_depth_scores(const sq_model *model, const sq_prune_options *opts,
                                             double *scores, double *base);

/* Truncated SVD of w [rows][cols] times diag(scale) (scale [cols], entries > 0; NULL: plain SVD) = U S V^T,
 * in double through LAPACK's dgesdd. sigma [min(rows, cols)] gets S, largest first. With rank in
 * 1..min(rows, cols) also the factors b [rows][rank] = U_r S_r^1/2 and a [rank][cols] = S_r^1/2 V_r^T
 * diag(scale)^-1, so that b a is the best rank-r approximation of w in the norm ||(.) diag(scale)||_F; with
 * rank 0 only sigma (a, b unused). SQ_ERR_INVALID_ARG for a rank outside 0..min(rows, cols) or an SVD that
 * does not converge. */
SQ_NODISCARD sq_error *sq_lowrank_svd(const float *w, int64_t rows, int64_t cols, const double *scale,
                                      int rank, double *sigma, float *a, float *b);

/* Ranks of n weights [rows[i]][cols[i]] with singular values sigma[i] (largest first) under a budget of
 * parameters (squeeze.h, SQ_PRUNE_LOWRANK's param_ratio): rank[i] >= 1, or 0 for a weight kept dense (no
 * rank saves parameters, or its rank grew to where it would not). -1 when out of memory. */
int sq_lowrank_choose_ranks(int n, const int64_t *rows, const int64_t *cols, const double *const *sigma,
                            int64_t budget, int *rank);

/* Low-rank factorisation (SQ_PRUNE_LOWRANK, SQ_PRUNE_ASVD) of every block's linear weights;
 * *n_factorised gets how many are now low-rank. */
SQ_NODISCARD sq_error *sq_prune_lowrank(sq_model *model, const sq_prune_options *opts, int *n_factorised);

/* OWL's per-block sparsities (owl.c): out[l] = 1 - density, densities the LODs scaled to [0, 2 lambda] and
 * shifted to average 1 - sparsity (all equal when the LODs are). */
void sq_prune_owl_sparsity(const double *lod, int n_layers, double sparsity, double lambda, double *out);
/* Measures every block's LOD on the calibration samples (the unpruned model's inputs, one statistics-only
 * pass) and gives each block its OWL sparsity: lod[n_layers], layer_sparsity[n_layers]. */
SQ_NODISCARD sq_error *sq_prune_owl(sq_model *model, const sq_prune_options *opts, double *lod,
                                    double *layer_sparsity);

/* Expert pruning by routing frequency (SQ_PRUNE_EXPERTS): fills res's scores, removed, n_removed and
 * n_experts_before. */
SQ_NODISCARD sq_error *sq_prune_experts(sq_model *model, const sq_prune_options *opts, sq_prune_result *res);

#endif
