/* AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and Acceleration"):
 * per input channel scales s = mean|x|^alpha for each group of linear layers that share an input, alpha
 * searched on a grid of 20 in [0, 1) to minimise the error of the group's outputs after quantization
 * (the paper's Eq. 4, L(s) = ||Q(W diag(s)) diag(s)^-1 X - W X||, computed exactly from X^T X:
 * sum over rows of e H e^T with e the row's error), s normalised by sqrt(max s * min s) as the authors' code
 * does; the scales folded into what produces the input, so the model is unchanged before rounding:
 *
 *   attn_norm -> attn_q, attn_k, attn_v     norm weight / s, the linear layers' columns * s
 *   attn_v    -> attn_output                attn_v's rows (and bias) / s, attn_output's columns * s
 *                                            (only without grouped-query attention: otherwise the
 *                                            attention output's channels are not attn_v's rows)
 *   ffn_norm  -> ffn_gate, ffn_up
 *   ffn_up    -> ffn_down
 *
 * then each matrix is rounded to nearest with a clipping search (the authors' auto_clip: per group of a row,
 * the range shrunk by 1 - i/20 for i = 0..10, the one with the least output error e H_gg e^T kept). */
#ifndef SQ_COMPRESS_QUANT_AWQ_H
#define SQ_COMPRESS_QUANT_AWQ_H

#include "compress/quant/grid.h"
#include "squeeze.h"

/* The block's seven matrices in this order, with the tap point of each one's input. */
enum { SQ_AWQ_N_LINEAR = 7 };
extern const char *const sq_awq_linear[SQ_AWQ_N_LINEAR]; /* "attn_q", ..., "ffn_down" */

/* The groups of linear layers sharing an input, in the order above: what produces the input (`prev`, a norm,
 * or a linear layer whose rows are the input's channels), the layers sq_awq_linear[first .. first + n), and
 * the tap point of their input. */
enum { SQ_AWQ_N_GROUPS = 4 };
typedef struct sq_awq_group {
    const char *prev;
    int prev_is_norm;
    int first, n;
    sq_tap_point point;
} sq_awq_group;
extern const sq_awq_group sq_awq_groups[SQ_AWQ_N_GROUPS];

/* Folds per input channel scales s [cols] into group gi of block `layer`, leaving the model's function
 * unchanged up to fp32 rounding: w[l] (the values of the group's layer l, [rows[l]][cols] fp32, read by the
 * caller) get their columns multiplied by s and replace the layers in the model (as f32); the producer's
 * weight (a norm's [cols], or a linear layer's rows, and its bias) is divided by s. The caller checks that
 * the group can be folded (attn_v -> attn_output only without grouped-query attention). Shared by AWQ and
 * SmoothQuant (smoothquant.h). */
SQ_NODISCARD sq_error *sq_awq_fold(sq_model *model, int layer, int gi, float *const w[3],
                                   const int64_t rows[3], int64_t cols, const float *s);

/* Tensor `name` of the model as fp32 values, malloc'ed into *out (NULL on failure); shape[0] its rows,
 * shape[1] its row length (1 for a vector). */
SQ_NODISCARD sq_error *sq_awq_read_tensor(const sq_model *m, const char *name, float **out, int64_t shape[2]);

/* Searches and folds the scales of block `layer`. types[i] is the format sq_awq_linear[i] will be stored in
 * (a grid name, grid.h), NULL where it stays unquantized; group the intN grids' group. stats[p] hold X^T X
 * and sum |x| of the block's inputs; xtx_out[p] (caller frees) gets X^T X of the scaled inputs,
 * [width][width] each. alpha_out[4] (may be NULL) gets the chosen alpha per group of layers, -1 where a group
 * was not scaled. The model's output is unchanged up to fp32 rounding. */
SQ_NODISCARD sq_error *sq_awq_scale_block(sq_model *model, int layer, const sq_calib_stats *stats,
                                          const char *const types[SQ_AWQ_N_LINEAR], int group,
                                          double *xtx_out[4], float *alpha_out);

/* Round to nearest on grid g with AWQ's clipping search against h = X^T X [cols][cols] of the input:
 * values [rows][cols] (may be NULL) and packed bytes (may be NULL). */
SQ_NODISCARD sq_error *sq_awq_clip_rtn(const sq_grid *g, const float *w, int64_t rows, int64_t cols,
                                       const double *h, float *values, void *packed);

#endif
