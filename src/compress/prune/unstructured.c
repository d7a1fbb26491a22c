/* Unstructured and N:M pruning of every block's linear weights: magnitude (no calibration), Wanda and
 * SparseGPT (block by block on the calibration loop, sq_calibrate). One block is one sq_model_edit_tensors
 * call: its seven matrices change together or not at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"

const char *const sq_prune_linear_names[SQ_PRUNE_N_LINEAR] = {
    "attn_q.weight",   "attn_k.weight", "attn_v.weight",  "attn_output.weight",
    "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};

/* The tap point whose input each of them multiplies (sq_calib_stats index). */
static const sq_tap_point linear_input[SQ_PRUNE_N_LINEAR] = {SQ_TAP_ATTN_IN,  SQ_TAP_ATTN_IN, SQ_TAP_ATTN_IN,
                                                             SQ_TAP_ATTN_OUT, SQ_TAP_FFN_IN,  SQ_TAP_FFN_IN,
                                                             SQ_TAP_FFN_DOWN};

int sq_prune_block_matrices(const sq_model *model, int layer, char names[SQ_PRUNE_MAX_MATRICES][64],
                            sq_tap_point input[SQ_PRUNE_MAX_MATRICES]) {
    static const char *const moe[6] = {"ffn_gate_exps.weight", "ffn_up_exps.weight",
                                       "ffn_down_exps.weight", "ffn_gate_shexp.weight",
                                       "ffn_up_shexp.weight",  "ffn_down_shexp.weight"};
    static const sq_tap_point moe_input[6] = {SQ_TAP_EXPERT_IN, SQ_TAP_EXPERT_IN, SQ_TAP_EXPERT_DOWN,
                                              SQ_TAP_FFN_IN,    SQ_TAP_FFN_IN,    SQ_TAP_FFN_DOWN};
    /* the block's tensors say which kind it is (a pruned model may differ from block to block) */
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s", layer, moe[0]);
    const int experts = sq_model_tensor_index(model, name) >= 0;
    snprintf(name, sizeof name, "blk.%d.%s", layer, moe[3]);
    const int dense = experts ? 4 : SQ_PRUNE_N_LINEAR, n_moe = !experts                                  ? 0
                                                               : sq_model_tensor_index(model, name) >= 0 ? 6
                                                                                                         : 3;
    for (int i = 0; i < dense + n_moe; i++) {
        snprintf(names[i], 64, "blk.%d.%s", layer, i < dense ? sq_prune_linear_names[i] : moe[i - dense]);
        input[i] = i < dense ? linear_input[i] : moe_input[i - dense];
    }
    return dense + n_moe;
}

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
    sq_prune_result *res;         /* n_pruned, experts_magnitude */
} block_job;

/* Appends "name: experts E E ..." (a line) to res->experts_magnitude. */
static SQ_NODISCARD sq_error *note_idle(sq_prune_result *res, const char *name, const int *idle, int n) {
    const size_t old = res->experts_magnitude ? strlen(res->experts_magnitude) : 0;
    char *s = realloc(res->experts_magnitude, old + 80 + (size_t)n * 12);
    if (!s) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    res->experts_magnitude = s;
    size_t at = old + (size_t)sprintf(s + old, "%s: expert%s", name, n > 1 ? "s" : "");
    for (int i = 0; i < n; i++) at += (size_t)sprintf(s + at, " %d", idle[i]);
    sprintf(s + at, "\n");
    return NULL;
}

/* The block's linear weights, pruned, as one edit; a 3-D expert tensor matrix by matrix, expert e with the
 * statistics of the tokens routed to it (stats[4 + 2e (+1)]), by magnitude where none was. stats: by tap
 * point (sq_calibrate's order), or NULL. */
static SQ_NODISCARD sq_error *prune_block(void *user, sq_model *model, int layer,
                                          const sq_calib_stats *stats) {
    block_job *job = user;
    char names[SQ_PRUNE_MAX_MATRICES][64];
    sq_tap_point input[SQ_PRUNE_MAX_MATRICES];
    const int n = sq_prune_block_matrices(model, layer, names, input);
    sq_tensor_edit edits[SQ_PRUNE_MAX_MATRICES] = {{0}};
    float *values[SQ_PRUNE_MAX_MATRICES] = {0};
    const double sparsity = job->layer_sparsity ? job->layer_sparsity[layer] : job->o->sparsity;
    const sq_prune_options magnitude = {
        .method = SQ_PRUNE_MAGNITUDE, .nm_n = job->o->nm_n, .nm_m = job->o->nm_m};
    int *idle = NULL;
    sq_error *err = NULL;
    for (int i = 0; i < n && !err; i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, names[i]), &ti);
        const int parts = ti.ndim == 3 ? (int)ti.shape[0] : 1;
        const int64_t rows = ti.shape[ti.ndim - 2], cols = ti.shape[ti.ndim - 1];
        values[i] = malloc((size_t)(parts * rows * cols) * sizeof(float));
        int *grown = realloc(idle, (size_t)parts * sizeof *idle);
        if (grown) idle = grown;
        if (!values[i] || !grown) {
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", names[i]);
            break;
        }
        err = sq_model_read_tensor(model, names[i], values[i], parts * rows * cols);
        int n_idle = 0;
        for (int e = 0; e < parts && !err; e++) {
            const int expert = input[i] == SQ_TAP_EXPERT_IN || input[i] == SQ_TAP_EXPERT_DOWN;
            const sq_calib_stats *s =
                !stats   ? NULL
                : expert ? &stats[SQ_TAP_FFN_DOWN + 1 + 2 * e + (input[i] == SQ_TAP_EXPERT_DOWN)]
                         : &stats[input[i]];
            const sq_prune_options *o = job->o;
            if (expert && s && !s->n_tokens) idle[n_idle++] = e, o = &magnitude, s = NULL;
            int64_t chosen = 0;
            err = prune_matrix(o, sparsity, names[i], values[i] + (size_t)e * rows * cols, rows, cols, s,
                               &chosen);
            job->res->n_pruned += chosen;
        }
        if (!err && n_idle) err = note_idle(job->res, names[i], idle, n_idle);
        edits[i] = (sq_tensor_edit){.name = names[i], .values = values[i]};
    }
    if (!err) err = sq_model_edit_tensors(model, edits, n);
    for (int i = 0; i < n; i++) free(values[i]);
    free(idle);
    return err;
}

SQ_NODISCARD sq_error *sq_prune_unstructured(sq_model *model, const sq_prune_options *o,
                                             const double *layer_sparsity, sq_prune_result *res) {
    block_job job = {o, layer_sparsity, res};
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
                                  .experts = 1,
                                  .user = &job};
        sq_calib_options co = {
            .n_threads = o->n_threads, .progress = o->progress, .progress_user = o->progress_user};
        err = sq_calibrate(model, o->calib, &method, &co);
    }
    return err;
}
