/* SmoothQuant's smoothing (smoothquant.h) and the quantization method that quantizes after it. */
#include "compress/quant/smoothquant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/method.h"

#define SQ_SMOOTH_DEFAULT_ALPHA 0.5 /* the paper's default (and its choice for OPT and BLOOM) */
#define SQ_SMOOTH_MIN_WEIGHT    1e-5

SQ_NODISCARD sq_error *sq_smoothquant_block(sq_model *model, int layer, const sq_calib_stats *stats,
                                            const char *const types[SQ_AWQ_N_LINEAR], double alpha,
                                            float *const s_out[SQ_AWQ_N_GROUPS],
                                            int smoothed[SQ_AWQ_N_GROUPS]) {
    if (!(alpha >= 0 && alpha <= 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "SmoothQuant: alpha %g is outside [0, 1]", alpha);
    sq_layer_info li;
    SQ_TRY(sq_model_layer_info(model, layer, &li));
    sq_error *err = NULL;
    for (int gi = 0; gi < SQ_AWQ_N_GROUPS && !err; gi++) {
        const sq_awq_group *g = &sq_awq_groups[gi];
        const sq_calib_stats *st = &stats[g->point];
        if (smoothed) smoothed[gi] = 0;
        int any = 0;
        for (int l = 0; l < g->n; l++) any |= types[g->first + l] != NULL;
        if (!any || (gi == 1 && li.n_heads != li.n_kv_heads)) continue; /* v -> o: not with GQA */
        if (!st->max_abs)
            return sq_errorf(SQ_ERR_INVALID_ARG, "SmoothQuant: block %d has no max |x| of its inputs", layer);
        const int64_t cols = st->width;
        float *w[3] = {0};
        int64_t rows[3] = {0};
        float *s = malloc((size_t)cols * sizeof *s); /* [cols] */
        if (!s) err = sq_errorf(SQ_ERR_NOMEM, "SmoothQuant: out of memory");
        for (int64_t c = 0; !err && c < cols; c++) s[c] = 0; /* max |W_j| first */
        for (int l = 0; l < g->n && !err; l++) {
            char name[96];
            int64_t shape[2];
            snprintf(name, sizeof name, "blk.%d.%s.weight", layer, sq_awq_linear[g->first + l]);
            err = sq_awq_read_tensor(model, name, &w[l], shape);
            if (!err && shape[1] != cols)
                err =
                    sq_errorf(SQ_ERR_INVALID_ARG, "SmoothQuant: %s has rows of %lld, its input %lld channels",
                              name, (long long)shape[1], (long long)cols);
            rows[l] = shape[0];
            for (int64_t r = 0; !err && r < rows[l]; r++)
                for (int64_t c = 0; c < cols; c++) s[c] = fmaxf(s[c], fabsf(w[l][r * cols + c]));
        }
        for (int64_t c = 0; !err && c < cols; c++) {
            const double x = st->max_abs[c], wmax = fmax(s[c], SQ_SMOOTH_MIN_WEIGHT);
            const double v = x > 0 ? pow(x, alpha) / pow(wmax, 1 - alpha) : 1;
            s[c] = isfinite(v) && v > 0 ? (float)v : 1.0f;
        }
        if (!err) err = sq_awq_fold(model, layer, gi, w, rows, cols, s);
        if (!err && s_out && s_out[gi]) memcpy(s_out[gi], s, (size_t)cols * sizeof *s);
        if (!err && smoothed) smoothed[gi] = 1;
        for (int l = 0; l < 3; l++) free(w[l]);
        free(s);
    }
    return err;
}

/* ---------------------------------------------------------------- the method (method.h) */

static SQ_NODISCARD sq_error *smoothquant_prepare(sq_model *model, int layer, const sq_calib_stats *stats,
                                                  const char *const types[SQ_AWQ_N_LINEAR],
                                                  const sq_quantize_params *p, double *xtx_out[4]) {
    for (int i = 0; i < 4; i++) xtx_out[i] = NULL; /* it needs no X^T X */
    /* only inputs that will be quantized are smoothed: a float fallback's (f16 where rows are not whole
     * W8A8 blocks) are left alone */
    const char *quantized[SQ_AWQ_N_LINEAR];
    for (int i = 0; i < SQ_AWQ_N_LINEAR; i++) {
        const int d = types[i] ? sq_dtype_from_name(types[i]) : -1;
        quantized[i] = d >= 0 && sq_dtype_info((sq_dtype)d)->dot_dtype == (sq_dtype)d ? types[i] : NULL;
    }
    return sq_smoothquant_block(model, layer, stats, quantized,
                                p->smooth_alpha > 0 ? p->smooth_alpha : SQ_SMOOTH_DEFAULT_ALPHA, NULL, NULL);
}

/* Migrating outliers into the weights serves formats whose activations are quantized too (W8A8); a
 * weight-only format would only get harder weights. Plain floats (the fallback of rows that are not whole
 * W8A8 blocks) are stored unsmoothed. */
static SQ_NODISCARD sq_error *smoothquant_supports(sq_dtype dtype) {
    if (sq_dtype_info(dtype)->dot_dtype == dtype || sq_dtype_info(dtype)->block_elems == 1) return NULL;
    return sq_errorf(SQ_ERR_INVALID_ARG,
                     "SmoothQuant serves formats that quantize activations too (w8a8); %s quantizes weights "
                     "only (awq or gptq serve it)",
                     sq_dtype_info(dtype)->name);
}

/* After smoothing, each matrix is rounded to nearest by its format's reference quantizer (row by row). */
static SQ_NODISCARD sq_error *smoothquant_job(const sq_quant_job *job, sq_threadpool *pool) {
    return sq_quant_rtn.quantize(job, pool);
}

const sq_quant_method sq_quant_smoothquant = {.name = "smoothquant",
                                              .needs_stats = 1,
                                              .stats = SQ_CALIB_MAX_ABS,
                                              .supports = smoothquant_supports,
                                              .prepare_block = smoothquant_prepare,
                                              .quantize = smoothquant_job};
