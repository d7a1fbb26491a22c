/* The importance matrix gathered on sq_calibrate (statistics only, as llama-imatrix gathers it during plain
 * forward passes): per block, the sum of x^2 per input channel of its four linear-layer inputs, divided by
 * the tokens seen, becomes the entry of every weight that reads that input. */
#include "compress/imatrix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

sq_error *sq_imatrix_add(sq_imatrix *im, const char *name, size_t name_len, int64_t n_tokens,
                         const float *values, int n_values) {
    if (im->n_entries == im->cap) {
        int cap = im->cap ? 2 * im->cap : 16;
        sq_imatrix_entry *e = realloc(im->entries, (size_t)cap * sizeof *e);
        if (!e) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
        im->entries = e;
        im->cap = cap;
    }
    char *n = malloc(name_len + 1);
    float *v = malloc((size_t)n_values * sizeof *v);
    if (!n || !v) {
        free(n);
        free(v);
        return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
    }
    memcpy(n, name, name_len);
    n[name_len] = 0;
    memcpy(v, values, (size_t)n_values * sizeof *v);
    im->entries[im->n_entries++] = (sq_imatrix_entry){n, n_tokens, n_values, v};
    return NULL;
}

void sq_imatrix_free(sq_imatrix *im) {
    if (!im) return;
    for (int i = 0; i < im->n_entries; i++) {
        free((char *)im->entries[i].name);
        free((float *)im->entries[i].values);
    }
    free(im->entries);
    free(im);
}

int sq_imatrix_n_entries(const sq_imatrix *im) { return im ? im->n_entries : 0; }

void sq_imatrix_entry_at(const sq_imatrix *im, int i, sq_imatrix_entry *out) { *out = im->entries[i]; }

int sq_imatrix_find(const sq_imatrix *im, const char *name, sq_imatrix_entry *out) {
    for (int i = 0; im && i < im->n_entries; i++)
        if (!strcmp(im->entries[i].name, name)) {
            *out = im->entries[i];
            return 1;
        }
    return 0;
}

/* The weights that read each tap point's input, by their GGUF names. */
static const char *const readers[SQ_TAP_FFN_DOWN + 1][3] = {
    [SQ_TAP_ATTN_IN] = {"attn_q", "attn_k", "attn_v"},
    [SQ_TAP_ATTN_OUT] = {"attn_output"},
    [SQ_TAP_FFN_IN] = {"ffn_gate", "ffn_up"},
    [SQ_TAP_FFN_DOWN] = {"ffn_down"},
};

/* sq_calib_method.apply_block: the block's means become entries. */
static SQ_NODISCARD sq_error *gather_block(void *user, sq_model *model, int layer,
                                           const sq_calib_stats *stats) {
    (void)model;
    sq_imatrix *im = user;
    for (int p = 0; p <= SQ_TAP_FFN_DOWN; p++) {
        const sq_calib_stats *s = &stats[p];
        float *mean = malloc((size_t)s->width * sizeof *mean); /* [width] */
        if (!mean) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
        for (int j = 0; j < s->width; j++)
            mean[j] = s->n_tokens ? (float)(s->sum_sq[j] / (double)s->n_tokens) : 0;
        sq_error *err = NULL;
        for (int r = 0; r < 3 && readers[p][r] && !err; r++) {
            char name[64];
            const int len = snprintf(name, sizeof name, "blk.%d.%s.weight", layer, readers[p][r]);
            err = sq_imatrix_add(im, name, (size_t)len, s->n_tokens, mean, s->width);
        }
        free(mean);
        SQ_TRY(err);
    }
    return NULL;
}

sq_error *sq_imatrix_compute(sq_model *model, const sq_calib_samples *samples, const sq_calib_options *opts,
                             sq_imatrix **out) {
    *out = NULL;
    sq_imatrix *im = calloc(1, sizeof *im);
    if (!im) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
    const sq_calib_method method = {
        .stats = SQ_CALIB_SUM_SQ, .apply_block = gather_block, .changes_weights = 0, .user = im};
    sq_error *err = sq_calibrate(model, samples, &method, opts);
    if (err) {
        sq_imatrix_free(im);
        return err;
    }
    *out = im;
    return NULL;
}
