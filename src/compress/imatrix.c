/* The importance matrix gathered on sq_calibrate (statistics only, as llama-imatrix gathers it during plain
 * forward passes): per block, the sum of x^2 per input channel of its four linear-layer inputs, divided by
 * the tokens seen, becomes the entry of every weight that reads that input. */
#include "compress/imatrix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

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

/* The weights that read each input, by their GGUF names: a dense block's four tap points, then in a mixture-
 * of-experts block (whose FFN_IN and FFN_DOWN feed the shared expert) the experts' two. */
static const char *const readers[2][SQ_TAP_FFN_DOWN + 3][3] = {
    {{"attn_q", "attn_k", "attn_v"}, {"attn_output"}, {"ffn_gate", "ffn_up"}, {"ffn_down"}},
    {{"attn_q", "attn_k", "attn_v"},
     {"attn_output"},
     {"ffn_gate_shexp", "ffn_up_shexp"},
     {"ffn_down_shexp"},
     {"ffn_gate_exps", "ffn_up_exps"},
     {"ffn_down_exps"}},
};

/* sq_calib_method.apply_block: the block's means become entries. An expert tensor's entry holds each
 * expert's means over the tokens routed to it, one row of values after another (llama.cpp's imatrix layout
 * for ffn_*_exps); an expert no token reached gets 1s (no channel preferred), its mean being 0/0. */
static SQ_NODISCARD sq_error *gather_block(void *user, sq_model *model, int layer,
                                           const sq_calib_stats *stats) {
    sq_imatrix *im = user;
    const int E = model->layers[layer].n_experts, moe = E > 0;
    for (int p = 0; p < (moe ? SQ_TAP_FFN_DOWN + 3 : SQ_TAP_FFN_DOWN + 1); p++) {
        const int experts = p > SQ_TAP_FFN_DOWN, parts = experts ? E : 1;
        const sq_calib_stats *first =
            experts ? &stats[SQ_TAP_FFN_DOWN + 1 + (p - SQ_TAP_FFN_DOWN - 1)] : &stats[p];
        const int width = first->width;
        if (!width) continue;                                       /* no shared expert */
        float *mean = malloc((size_t)parts * width * sizeof *mean); /* [parts][width] */
        if (!mean) return sq_errorf(SQ_ERR_NOMEM, "imatrix: out of memory");
        for (int e = 0; e < parts; e++) {
            const sq_calib_stats *s = first + 2 * e; /* experts' statistics alternate IN, DOWN */
            for (int j = 0; j < width; j++)
                mean[(size_t)e * width + j] =
                    !s->n_tokens ? (experts ? 1.0f : 0.0f) : (float)(s->sum_sq[j] / (double)s->n_tokens);
        }
        sq_error *err = NULL;
        for (int r = 0; r < 3 && readers[moe][p][r] && !err; r++) {
            char name[64];
            const int len = snprintf(name, sizeof name, "blk.%d.%s.weight", layer, readers[moe][p][r]);
            err = sq_imatrix_add(im, name, (size_t)len, stats[SQ_TAP_FFN_IN].n_tokens, mean, parts * width);
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
    const sq_calib_method method = {.stats = SQ_CALIB_SUM_SQ,
                                    .apply_block = gather_block,
                                    .changes_weights = 0,
                                    .experts = 1,
                                    .user = im};
    sq_error *err = sq_calibrate(model, samples, &method, opts);
    if (err) {
        sq_imatrix_free(im);
        return err;
    }
    *out = im;
    return NULL;
}
