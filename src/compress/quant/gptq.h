/* GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers", Algorithm 1; the authors' gptq.py `fasterquant`): quantizes one linear layer's
 * weight W [rows][cols] column by column onto a grid (grid.h), each column's rounding error spread over the
 * columns not yet quantized through the inverse Hessian of the layer's reconstruction error,
 * H = 2 X^T X / n_tokens (X: the layer's inputs [n_tokens][cols]).
 *
 *   dead columns (H_jj = 0): H_jj = 1, W[:, j] = 0
 *   act_order: columns in order of decreasing H_jj; every group's parameters then chosen up front from the
 *              original W ("static groups"), otherwise when the pass reaches the group's first column from
 * the current, error-updated weights H += damp * mean(diag H) * I;  U = chol(H^-1) upper (Cholesky through
 * LAPACKE) for each lazy block of columns [i1, i2): for column i: q = round(W[:, i]) on its group's grid;  e
 * = (W[:, i] - q) / U_ii W[:, i+1:i2] -= e U[i, i+1:i2] W[:, i2:] -= E U[i1:i2, i2:] (one matrix product per
 * block) Group starts coincide with lazy block starts (the block size is adjusted to a multiple of the group,
 * or the group is a multiple of it), so the current weights a group's parameters are chosen from hold every
 * update an unbatched pass would have made. */
#ifndef SQ_COMPRESS_QUANT_GPTQ_H
#define SQ_COMPRESS_QUANT_GPTQ_H

#include <stdint.h>

#include "compress/quant/grid.h"

typedef struct sq_gptq_options {
    double damp;    /* fraction of the mean diagonal of H added to it; 0: 0.01 */
    int block_size; /* columns per lazy batch; 0: 128 */
    int act_order;  /* non-zero: columns by decreasing H_jj, static groups */
    /* [cols] or NULL: each input channel's importance (an imatrix's mean x^2), given to the grid's choice of
     * a group's parameters (the K-quants' and ggml's 32-blocks' weighted scale searches) */
    const float *importance;
} sq_gptq_options;

/* Quantizes w [rows][cols] (not changed) with xtx [cols][cols] = sum over n_tokens inputs of x x^T (both
 * triangles). values [rows][cols] (may be NULL) gets the quantized values, packed (may be NULL; only for
 * grids with a layout) the format's bytes, rows of sq_row_bytes(grid->dtype, cols). Fails with
 * SQ_ERR_INVALID_ARG when cols is not a whole number of groups or H + damping is not positive definite
 * (the message suggests more damping), SQ_ERR_NOMEM when scratch memory is missing; `name` names the tensor
 * in messages. */
SQ_NODISCARD sq_error *sq_gptq_quantize(const char *name, const float *w, int64_t rows, int64_t cols,
                                        const double *xtx, int64_t n_tokens, const sq_grid *grid,
                                        const sq_gptq_options *opts, float *values, void *packed);

#endif
