/* Calibration samples: windows of token ids drawn at random positions from a text (GPTQ's get_c4 /
 * get_wikitext2 and Wanda's loaders draw them the same way), or given as ids. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

/* Bounds any sample set: 2^28 tokens of fp32 hidden states at dim 4096 would already be 4 TiB. */
#define SQ_CALIB_MAX_TOKENS (1 << 28)

static SQ_NODISCARD sq_error *check_shape(int n_samples, int seq_len) {
    if (n_samples < 1 || seq_len < 1 || (int64_t)n_samples * seq_len > SQ_CALIB_MAX_TOKENS)
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "calibration: %d samples of %d tokens (need at least 1 of 1, at most %d tokens in all)",
            n_samples, seq_len, SQ_CALIB_MAX_TOKENS);
    return NULL;
}

SQ_NODISCARD sq_error *sq_calib_samples_from_ids(const int32_t *ids, int n_samples, int seq_len,
                                                 sq_calib_samples *out) {
    *out = (sq_calib_samples){0};
    SQ_TRY(check_shape(n_samples, seq_len));
    if (!ids) return sq_errorf(SQ_ERR_INVALID_ARG, "calibration: no ids given");
    const size_t n = (size_t)n_samples * seq_len;
    out->ids = malloc(n * sizeof *out->ids);
    if (!out->ids) return sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for %zu ids", n);
    memcpy(out->ids, ids, n * sizeof *ids);
    out->n_samples = n_samples;
    out->seq_len = seq_len;
    return NULL;
}

SQ_NODISCARD sq_error *sq_calib_samples_from_text(const sq_tokenizer *tok, const char *text, size_t len,
                                                  int n_samples, int seq_len, int bos_id, uint64_t seed,
                                                  sq_calib_samples *out) {
    *out = (sq_calib_samples){0};
    SQ_TRY(check_shape(n_samples, seq_len));
    const int with_bos = bos_id >= 0, n_text = seq_len - with_bos; /* text tokens per window */
    if (n_text < 1)
        return sq_errorf(SQ_ERR_INVALID_ARG, "calibration: windows of %d token leave no room after BOS",
                         seq_len);
    int32_t *all = NULL;
    int n_all = 0;
    SQ_TRY(sq_tokenize(tok, text, len, 0, 0, &all, &n_all));
    sq_error *err = NULL;
    if (n_all < n_text)
        err = sq_errorf(SQ_ERR_INVALID_ARG, "calibration: the text holds %d tokens; a window needs %d", n_all,
                        n_text);
    const size_t n = (size_t)n_samples * seq_len;
    if (!err && !(out->ids = malloc(n * sizeof *out->ids)))
        err = sq_errorf(SQ_ERR_NOMEM, "calibration: out of memory for %zu ids", n);
    uint64_t state = seed;
    for (int s = 0; !err && s < n_samples; s++) {
        const int64_t start = (int64_t)sq_rng_below(&state, (uint64_t)(n_all - n_text + 1));
        int32_t *w = out->ids + (size_t)s * seq_len; /* [seq_len] */
        if (with_bos) w[0] = bos_id;
        memcpy(w + with_bos, all + start, (size_t)n_text * sizeof *w);
    }
    free(all);
    if (err) {
        free(out->ids);
        out->ids = NULL;
        return err;
    }
    out->n_samples = n_samples;
    out->seq_len = seq_len;
    return NULL;
}

void sq_calib_samples_free(sq_calib_samples *s) {
    if (!s) return;
    free(s->ids);
    *s = (sq_calib_samples){0};
}
