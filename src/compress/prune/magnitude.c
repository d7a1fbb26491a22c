/* Magnitude pruning: every block's linear weights lose their smallest |W|, unstructured (one threshold per
 * matrix, the baseline of Wanda's and SparseGPT's papers) or N:M. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "compress/prune/prune.h"
#include "core/error.h"

const char *const sq_prune_linear_names[7] = {"attn_q.weight",      "attn_k.weight",   "attn_v.weight",
                                              "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                                              "ffn_down.weight"};

enum { N_LINEAR = sizeof sq_prune_linear_names / sizeof *sq_prune_linear_names };

/* The block's linear weights, pruned, as one edit (all seven change together or none). */
static sq_error *prune_block(sq_model *model, int layer, const sq_prune_options *o, int64_t *n_zeroed) {
    char names[N_LINEAR][64];
    sq_tensor_edit edits[N_LINEAR] = {{0}};
    float *values[N_LINEAR] = {0};
    float *score = NULL;
    sq_error *err = NULL;
    for (int i = 0; i < N_LINEAR && !err; i++) {
        snprintf(names[i], sizeof names[i], "blk.%d.%s", layer, sq_prune_linear_names[i]);
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, names[i]), &ti);
        int64_t rows = ti.shape[0], cols = ti.shape[1], n = rows * cols;
        values[i] = malloc((size_t)n * sizeof(float));
        float *s = realloc(score, (size_t)n * sizeof(float));
        if (!values[i] || !s) {
            if (s) score = s;
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", names[i]);
            break;
        }
        score = s;
        if ((err = sq_model_read_tensor(model, names[i], values[i], n))) break;
        for (int64_t k = 0; k < n; k++) score[k] = fabsf(values[i][k]);
        int64_t chosen =
            sq_prune_mask(values[i], score, rows, cols, SQ_MASK_PER_MATRIX, o->sparsity, o->nm_n, o->nm_m);
        if (chosen < 0) {
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for the mask of %s", names[i]);
            break;
        }
        *n_zeroed += chosen;
        edits[i] = (sq_tensor_edit){.name = names[i], .values = values[i]};
    }
    if (!err) err = sq_model_edit_tensors(model, edits, N_LINEAR);
    for (int i = 0; i < N_LINEAR; i++) free(values[i]);
    free(score);
    return err;
}

sq_error *sq_prune_magnitude(sq_model *model, const sq_prune_options *o, int64_t *n_zeroed) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    *n_zeroed = 0;
    for (int l = 0; l < info.n_layers; l++) {
        SQ_TRY(prune_block(model, l, o, n_zeroed));
        if (o->progress) o->progress(o->progress_user, l + 1, info.n_layers);
    }
    return NULL;
}
