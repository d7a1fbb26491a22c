/* Depth pruning's block importance (Shortened LLaMA, Kim et al. 2024, section 3): the perplexity criterion
 * runs the calibration windows once per block with that block alone skipped (forward passes only, through
 * sq_perplexity's skip mask); the magnitude criterion sums |W| over the block's linear weights; Taylor+ sums
 * |dL/dW * W| over the block's weights, the gradients of the calibration cross-entropy from the trainer's
 * backward pass (src/train). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"

/* Calibration perplexity with skip (NULL: the whole model). */
static SQ_NODISCARD sq_error *calib_ppl(const sq_model *model, const sq_prune_options *o,
                                        const unsigned char *skip, double *ppl) {
    sq_ppl_options po = {.protocol = SQ_PPL_WINDOWS,
                         .n_ctx = o->calib->seq_len,
                         .n_batch = 4,
                         .n_threads = o->n_threads,
                         .bos_id = -1,
                         .skip_layers = skip,
                         .source = "calibration"};
    sq_ppl_result r;
    SQ_TRY(sq_perplexity(model, o->calib->ids, (int64_t)o->calib->n_samples * o->calib->seq_len, &po, &r));
    *ppl = r.ppl;
    sq_ppl_result_free(&r);
    return NULL;
}

static SQ_NODISCARD sq_error *block_magnitude(const sq_model *model, int layer, double *sum) {
    *sum = 0;
    for (int i = 0; i < SQ_PRUNE_N_LINEAR; i++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.%s", layer, sq_prune_linear_names[i]);
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, name), &ti);
        int64_t n = ti.shape[0] * ti.shape[1];
        float *w = malloc((size_t)n * sizeof *w);
        if (!w) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory reading %s", name);
        sq_error *err = sq_model_read_tensor(model, name, w, n);
        for (int64_t k = 0; k < n && !err; k++) *sum += fabs((double)w[k]);
        free(w);
        SQ_TRY(err);
    }
    return NULL;
}

void sq_prune_taylor_kept(int n_layers, const sq_prune_options *o, int *first, int *last) {
    *first = o->taylor_keep_first > 0   ? o->taylor_keep_first
             : o->taylor_keep_first < 0 ? 0
                                        : (n_layers + 7) / 8;
    *last = o->taylor_keep_last > 0   ? o->taylor_keep_last
            : o->taylor_keep_last < 0 ? 0
                                      : (n_layers + 15) / 16;
}

/* Gradients of the calibration samples' mean cross-entropy, accumulated over batches of samples. */
static SQ_NODISCARD sq_error *taylor_scores(const sq_model *model, const sq_prune_options *o,
                                            double *scores) {
    const sq_calib_samples *c = o->calib;
    const int per_batch = c->n_samples < 4 ? c->n_samples : 4;
    sq_trainer_options to = {
        .n_threads = o->n_threads, .max_tokens = per_batch * c->seq_len, .weight_grads = 1};
    sq_trainer *t;
    SQ_TRY(sq_trainer_create(model, &to, &t));
    sq_loss_options lo = {.ce_weight = 1};
    sq_error *err = NULL;
    sq_trainer_zero_grad(t);
    for (int s = 0; s < c->n_samples && !err; s += per_batch) {
        int n = c->n_samples - s < per_batch ? c->n_samples - s : per_batch;
        sq_loss_value v;
        err = sq_trainer_run(t, c->ids + (size_t)s * c->seq_len, n, c->seq_len, &lo, 1, &v);
        if (o->progress) o->progress(o->progress_user, s + n, c->n_samples);
    }
    if (!err) err = sq_trainer_block_taylor(t, scores);
    sq_trainer_free(t);
    return err;
}

SQ_NODISCARD sq_error *sq_prune_depth_scores(const sq_model *model, const sq_prune_options *o, double *scores,
                                             double *base) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    const int n_layers = info.n_layers;
    *base = 0;
    if (o->criterion == SQ_DEPTH_TAYLOR) return taylor_scores(model, o, scores);
    if (o->criterion == SQ_DEPTH_MAGNITUDE) {
        for (int l = 0; l < n_layers; l++) {
            SQ_TRY(block_magnitude(model, l, &scores[l]));
            if (o->progress) o->progress(o->progress_user, l + 1, n_layers);
        }
        return NULL;
    }
    unsigned char *skip = calloc((size_t)n_layers, 1);
    if (!skip) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    sq_error *err = calib_ppl(model, o, NULL, base);
    if (o->progress) o->progress(o->progress_user, 1, n_layers + 1);
    for (int l = 0; l < n_layers && !err; l++) {
        skip[l] = 1;
        err = calib_ppl(model, o, skip, &scores[l]);
        skip[l] = 0;
        if (err) err = sq_error_wrap(err, "scoring block %d", l);
        if (o->progress) o->progress(o->progress_user, l + 2, n_layers + 1);
    }
    free(skip);
    return err;
}
