/* OWL (Yin et al. 2024, "Outlier weighed layerwise sparsity (OWL): a missing secret sauce for pruning LLMs to
 * high sparsity"): blocks with more outlier activations keep more weights. A block's layerwise outlier
 * distribution (LOD) is the share of its linear weights' Wanda scores |W_ij| * ||X_j||_2 above M times the
 * block's mean score, X the inputs of the unpruned model; the LODs are scaled to [0, 2 lambda], shifted so
 * that the blocks' densities average 1 - sparsity, and each block is pruned at one minus its density (the
 * authors' reference code: sparsity lies in [S - lambda, S + lambda] and averages S). */
#include <stdio.h>
#include <stdlib.h>

#include "compress/prune/prune.h"
#include "core/error.h"

typedef struct owl_job {
    double m;
    double *lod; /* [n_layers] */
} owl_job;

/* Statistics only: the block's LOD from its seven weights and the unpruned inputs. */
static SQ_NODISCARD sq_error *block_lod(void *user, sq_model *model, int layer, const sq_calib_stats *stats) {
    owl_job *job = user;
    static const sq_tap_point input[SQ_PRUNE_N_LINEAR] = {SQ_TAP_ATTN_IN,  SQ_TAP_ATTN_IN, SQ_TAP_ATTN_IN,
                                                          SQ_TAP_ATTN_OUT, SQ_TAP_FFN_IN,  SQ_TAP_FFN_IN,
                                                          SQ_TAP_FFN_DOWN};
    float *score[SQ_PRUNE_N_LINEAR] = {0};
    int64_t count[SQ_PRUNE_N_LINEAR] = {0}, total = 0;
    double sum = 0;
    sq_error *err = NULL;
    for (int i = 0; i < SQ_PRUNE_N_LINEAR && !err; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.%s", layer, sq_prune_linear_names[i]);
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, name), &ti);
        const int64_t rows = ti.shape[0], cols = ti.shape[1];
        float *w = malloc((size_t)(rows * cols) * sizeof *w);
        score[i] = malloc((size_t)(rows * cols) * sizeof *score[i]);
        if (!w || !score[i]) err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", name);
        if (!err) err = sq_model_read_tensor(model, name, w, rows * cols);
        if (!err) {
            sq_prune_wanda_scores(w, rows, cols, stats[input[i]].sum_sq, score[i]);
            count[i] = rows * cols;
            total += count[i];
            for (int64_t k = 0; k < count[i]; k++) sum += score[i][k];
        }
        free(w);
    }
    if (!err) {
        const double threshold = job->m * sum / (double)total;
        int64_t above = 0;
        for (int i = 0; i < SQ_PRUNE_N_LINEAR; i++)
            for (int64_t k = 0; k < count[i]; k++) above += score[i][k] > threshold;
        job->lod[layer] = (double)above / (double)total;
    }
    for (int i = 0; i < SQ_PRUNE_N_LINEAR; i++) free(score[i]);
    return err;
}

void sq_prune_owl_sparsity(const double *lod, int n_layers, double sparsity, double lambda, double *out) {
    double lo = lod[0], hi = lod[0], mean = 0;
    for (int l = 1; l < n_layers; l++) lo = lod[l] < lo ? lod[l] : lo, hi = lod[l] > hi ? lod[l] : hi;
    for (int l = 0; l < n_layers; l++) {
        out[l] = hi > lo ? (lod[l] - lo) / (hi - lo) * 2 * lambda : 0; /* density offsets in [0, 2 lambda] */
        mean += out[l] / n_layers;
    }
    for (int l = 0; l < n_layers; l++) out[l] = 1 - (out[l] - mean + (1 - sparsity));
}

sq_error *sq_prune_owl(sq_model *model, const sq_prune_options *o, double *lod, double *layer_sparsity) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    owl_job job = {.m = o->owl_m ? o->owl_m : 5, .lod = lod};
    sq_calib_method method = {.stats = SQ_CALIB_SUM_SQ, .apply_block = block_lod, .user = &job};
    sq_calib_options co = {
        .n_threads = o->n_threads, .progress = o->progress, .progress_user = o->progress_user};
    SQ_TRY(sq_calibrate(model, o->calib, &method, &co));
    sq_prune_owl_sparsity(lod, info.n_layers, o->sparsity, o->owl_lambda, layer_sparsity);
    return NULL;
}
