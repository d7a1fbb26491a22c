/* Quantization methods: how the stored values of one weight tensor are chosen for a target format.
 *
 * squeeze quantize (quantize.c) decides each tensor's format (preset.c), then hands the tensor to the chosen
 * method; the method returns the tensor's bytes in that format's layout (core/dtype.h). RTN rounds every
 * group on its own with the format's reference quantizer (rtn.c); methods that use calibration (an imatrix,
 * GPTQ's Hessian, AWQ's activation scales) read the statistics the calibration module gathers for the
 * tensor's input, and choose values on the same format's grid, so that any format's kernels run their files.
 */
#ifndef SQ_COMPRESS_QUANT_METHOD_H
#define SQ_COMPRESS_QUANT_METHOD_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"

/* Calibration statistics of one linear layer's input (its activations x, [n_samples][cols]); NULL members
 * where none were gathered. RTN needs none. */
typedef struct sq_quant_stats {
    int64_t cols;         /* the layer's input width: the weight's row length */
    const float *mean_sq; /* [cols]: mean of x^2 per input channel (llama.cpp's imatrix) */
    const double *xtx;    /* [cols][cols]: X^T X (GPTQ's Hessian up to a factor of 2) */
    int64_t n_samples;    /* rows of X the statistics summed */
} sq_quant_stats;

/* One tensor to quantize: w [rows][cols] fp32 values, to be stored as `dtype` (cols a whole number of its
 * blocks) into out ([rows] rows of sq_row_bytes(dtype, cols) bytes). */
typedef struct sq_quant_job {
    const char *name; /* the tensor's canonical name, for errors */
    const float *w;
    int64_t rows, cols;
    sq_dtype dtype;
    const sq_quant_stats *stats;      /* NULL: none gathered */
    const sq_quantize_params *params; /* the request (method options) */
    void *out;
} sq_quant_job;

typedef struct sq_quant_method {
    const char *name; /* as --method takes it: "rtn" */
    int needs_stats;  /* non-zero: refuses jobs without calibration statistics */
    /* non-zero: statistics gathered block by block (sq_calibrate), each block quantized before the next
     * block's inputs are computed; NULL members of sq_quant_stats then hold what `stats` asks for */
    unsigned stats; /* SQ_CALIB_* flags it needs */
    /* checks that it can quantize tensors of this format, before any work (NULL: every format) */
    SQ_NODISCARD sq_error *(*supports)(sq_dtype dtype);
    /* NULL, or: changes block `layer` before its matrices are quantized (AWQ folds its scales into the norms
     * and linear layers), given the formats planned for the block's seven matrices (types[i] for
     * sq_awq_linear[i]: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down; NULL: left alone).
     * xtx_out[p] (malloc'ed by it, freed by the caller; NULL: unchanged) replaces stats[p].xtx for the
     * block's jobs. */
    SQ_NODISCARD sq_error *(*prepare_block)(sq_model *model, int layer, const sq_calib_stats *stats,
                                            const char *const types[7], const sq_quantize_params *p,
                                            double *xtx_out[4]);
    SQ_NODISCARD sq_error *(*quantize)(const sq_quant_job *job, sq_threadpool *pool);
} sq_quant_method;

/* Round to nearest with the format's reference quantizer, row by row over the pool's threads. */
extern const sq_quant_method sq_quant_rtn;
/* GPTQ (gptq.h) onto the format's grid (grid.h) with the input's X^T X; rows over the pool's threads. */
extern const sq_quant_method sq_quant_gptq;
/* AWQ (awq.h): scales searched and folded per block, then round to nearest with a clipping search. */
extern const sq_quant_method sq_quant_awq;

/* SmoothQuant (smoothquant.h): activation outliers migrated into the weights per block, then round to
 * nearest; formats that quantize activations (W8A8) only. */
extern const sq_quant_method sq_quant_smoothquant;

/* The method named `name`, or NULL when there is none. */
const sq_quant_method *sq_quant_method_find(const char *name);

#endif
