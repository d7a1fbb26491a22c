/* SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large
 * Language Models"): activation outliers are migrated into the weights before both are quantized to int8
 * (W8A8, core/dtype.h). Per input channel j of each group of linear layers that share an input,
 *
 *   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)      (the paper's Eq. 4; alpha the migration strength)
 *
 * with max|X_j| over the calibration tokens (sq_calibrate's SQ_CALIB_MAX_ABS) and max|W_j| over the rows of
 * all the group's layers; the input is divided by s (folded into what produces it) and the layers' columns
 * multiplied by s (sq_awq_fold), so the float model is unchanged before rounding:
 *
 *   attn_norm -> attn_q, attn_k, attn_v    the norm's weight / s
 *   attn_v    -> attn_output               attn_v's rows / s, only without grouped-query attention
 *   ffn_norm  -> ffn_gate, ffn_up          the norm's weight / s
 *   ffn_up    -> ffn_down                  ffn_up's rows / s: SwiGLU's h = silu(gate) * up is linear in
 *                                          up's output (not in gate's, which passes through silu), so the
 *                                          scales fold through up alone
 *
 * As the authors' code, max|W_j| is clamped below at 1e-5; a channel the calibration never activated
 * (max|X_j| = 0) keeps s_j = 1 instead of the authors' clamp to 1e-5, which would multiply whatever reaches
 * it later by 1e5. */
#ifndef SQ_COMPRESS_QUANT_SMOOTHQUANT_H
#define SQ_COMPRESS_QUANT_SMOOTHQUANT_H

#include "compress/quant/awq.h"

/* Smooths block `layer` with migration strength alpha in [0, 1]: each group with a layer to be quantized
 * (types[i] non-NULL for sq_awq_linear[i]) gets its scales from stats[p].max_abs and folded. s_out
 * (may be NULL) receives group gi's scales at s_out[gi] ([width] each, caller-allocated; left alone where a
 * group was not smoothed); smoothed[gi] (may be NULL) says which were. */
SQ_NODISCARD sq_error *sq_smoothquant_block(sq_model *model, int layer, const sq_calib_stats *stats,
                                            const char *const types[SQ_AWQ_N_LINEAR], double alpha,
                                            float *const s_out[SQ_AWQ_N_GROUPS],
                                            int smoothed[SQ_AWQ_N_GROUPS]);

#endif
