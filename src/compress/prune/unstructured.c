/* Unstructured and N:M pruning of every block's linear weights: magnitude (no calibration), Wanda and
 * SparseGPT (block by block on the calibration loop, sq_calibrate). One block is one sq_model_edit_tensors
 * call: its seven matrices change together or not at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "compress/prune/prune.h"
#include "core/error.h"

const char *const sq_prune_linear_names[SQ_PRUNE_N_LINEAR] = {
    "attn_q.weight",   "attn_k.weight", "attn_v.weight",  "attn_output.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

/* The tap point whose input each of them multiplies (sq_calib_stats index). */
static const sq_tap_point linear_input[SQ_PRUNE_N_LINEAR] = {SQ_TAP_ATTN_IN,  SQ_TAP_ATTN_IN, SQ_TAP_ATTN_IN,
                                                             SQ_TAP_ATTN_OUT, SQ_TAP_FFN_IN,  SQ_TAP_FFN_IN,
                                                             SQ_TAP_FFN_DOWN};

/* One matrix w [rows][cols] pruned by the method; stats: its input's statistics (NULL for magnitude). */
static SQ_NODISCARD sq_error *prune_matrix(const sq_prune_options *o, double sparsity, const char *name,
                                           float *w, int64_t rows, int64_t cols, const sq_calib_stats *stats,
                                           int64_t *chosen) {
    if (stats && stats->width != cols)
        return sq_errorf(SQ_ERR_INTERNAL, "prune: %s has %lld inputs but its calibration input %d", name,
                         (long long)cols, stats->width);
    if (o->method == SQ_PRUNE_SPARSEGPT) {
        sq_error *err = sq_prune_sparsegpt_matrix(w, rows, cols, stats->xtx, stats->n_tokens, sparsity,
                                                  o->nm_n, o->nm_m, chosen);
        return err ? sq_error_wrap(err, "%s", name) : NULL;
    }
    float *score = malloc((size_t)(rows * cols) * sizeof *score);
    if (!score) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for the scores of %s", name);
    sq_mask_scope scope = SQ_MASK_PER_MATRIX;
    if (o->method == SQ_PRUNE_WANDA) {
        sq_prune_wanda_scores(w, rows, cols, stats->sum_sq, score);
        scope = SQ_MASK_PER_ROW;
    } else {
        for (int64_t k = 0; k < rows * cols; k++) score[k] = fabsf(w[k]);
    }
    *chosen = sq_prune_mask(w, score, rows, cols, scope, sparsity, o->nm_n, o->nm_m);
    free(score);
    return *chosen < 0 ? sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for the mask of %s", name) : NULL;
}

typedef struct block_job {
    const sq_prune_options *o;
    const double *layer_sparsity; /* [n_layers] or NULL */
    int64_t n_pruned;
} block_job;

/* The block's seven linear weights, pruned, as one edit. stats: [4] by tap point, or NULL. */
static SQ_NODISCARD sq_error *prune_block(void *user, sq_model *model, int layer,
                                          const sq_calib_stats *stats) {
    block_job *job = user;
    char names[SQ_PRUNE_N_LINEAR][64];
    sq_tensor_edit edits[SQ_PRUNE_N_LINEAR] = {{0}};
    float *values[SQ_PRUNE_N_LINEAR] = {0};
    sq_error *err = NULL;
    for (int i = 0; i < SQ_PRUNE_N_LINEAR && !err; i++) {
        snprintf(names[i], sizeof names[i], "blk.%d.%s", layer, sq_prune_linear_names[i]);
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, names[i]), &ti);
        int64_t rows = ti.shape[0], cols = ti.shape[1], chosen = 0;
        values[i] = malloc((size_t)(rows * cols) * sizeof(float));
        if (!values[i]) {
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", names[i]);
            break;
        }
        if (!(err = sq_model_read_tensor(model, names[i], values[i], rows * cols)))
            err = prune_matrix(job->o, job->layer_sparsity ? job->layer_sparsity[layer] : job->o->sparsity,
                               names[i], values[i], rows, cols, stats ? &stats[linear_input[i]] : NULL,
                               &chosen);
        job->n_pruned += chosen;
        edits[i] = (sq_tensor_edit){.name = names[i], .values = values[i]};
    }
    if (!err) err = sq_model_edit_tensors(model, edits, SQ_PRUNE_N_LINEAR);
    for (int i = 0; i < SQ_PRUNE_N_LINEAR; i++) free(values[i]);
    return err;
}

SQ_NODISCARD sq_error *sq_prune_unstructured(sq_model *model, const sq_prune_options *o,
                                             const double *layer_sparsity, int64_t *n_pruned) {
    block_job job = {o, layer_sparsity, 0};
    sq_error *err = NULL;
    if (o->method == SQ_PRUNE_MAGNITUDE) {
        sq_model_info info;
        sq_model_get_info(model, &info);
        for (int l = 0; l < info.n_layers && !err; l++) {
            err = prune_block(&job, model, l, NULL);
            if (o->progress) o->progress(o->progress_user, l + 1, info.n_layers);
        }
    } else {
        sq_calib_method method = {.stats = o->method == SQ_PRUNE_WANDA ? SQ_CALIB_SUM_SQ : SQ_CALIB_XTX,
                                  .apply_block = prune_block,
                                  .changes_weights = 1,
                                  .user = &job};
        sq_calib_options co = {
            .n_threads = o->n_threads, .progress = o->progress, .progress_user = o->progress_user};
        err = sq_calibrate(model, o->calib, &method, &co);
    }
    *n_pruned = job.n_pruned;
    return err;
}
