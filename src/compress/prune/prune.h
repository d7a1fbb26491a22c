/* Pruning internals (issue 9, squeeze.h "pruning"): the mask every unstructured method chooses with, and the
 * methods sq_prune dispatches to. */
#ifndef SQ_COMPRESS_PRUNE_H
#define SQ_COMPRESS_PRUNE_H

#include <stdint.h>

#include "squeeze.h"

/* The linear weights of a block that unstructured pruning changes (GGUF suffixes after "blk.N."). */
extern const char *const sq_prune_linear_names[7];

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

/* Magnitude pruning of every block's linear weights, one block per sq_model_edit_tensors call; *n_zeroed
 * gets how many weights the masks chose. */
sq_error *sq_prune_magnitude(sq_model *model, const sq_prune_options *opts, int64_t *n_zeroed);

/* Shortened LLaMA's block importance: scores[n_layers] (ppl: calibration perplexity with the block alone
 * skipped, *base the unskipped model's; magnitude: sum of |W| over its linear weights, *base 0). Higher means
 * more important. */
sq_error *sq_prune_depth_scores(const sq_model *model, const sq_prune_options *opts, double *scores,
                                double *base);

#endif
