/* sq_lm over a real model: one context whose sequences hold the windows or items evaluated together. */
#include <stdlib.h>

#include "core/error.h"
#include "eval/eval.h"

static SQ_NODISCARD sq_error *ctx_forward(void *impl, const sq_seq_batch *seqs, int n_seqs) {
    return sq_forward(impl, seqs, n_seqs);
}

static SQ_NODISCARD sq_error *ctx_truncate(void *impl, int seq_id, int new_len) {
    return sq_seq_truncate(impl, seq_id, new_len);
}

static void ctx_close(void *impl) { sq_context_free(impl); }

sq_error *sq_lm_open(const sq_model *model, int n_ctx, int n_seq, int n_threads, sq_lm *out) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (n_ctx <= 0) n_ctx = info.max_seq_len;
    if (n_seq <= 0) n_seq = 1;
    if ((long long)n_ctx * n_seq > (1LL << 30))
        return sq_errorf(SQ_ERR_INVALID_ARG, "%d sequences of %d tokens are too many for one batch", n_seq,
                         n_ctx);
    sq_context_options o = {
        .n_ctx = n_ctx, .n_seq_max = n_seq, .n_threads = n_threads, .n_batch_max = n_ctx * n_seq};
    sq_context *ctx;
    SQ_TRY(sq_context_create(model, &o, &ctx));
    *out = (sq_lm){.impl = ctx,
                   .n_vocab = info.vocab_size,
                   .n_ctx = sq_context_n_ctx(ctx),
                   .n_seq_max = n_seq,
                   .forward = ctx_forward,
                   .truncate = ctx_truncate,
                   .close = ctx_close};
    return NULL;
}

void sq_lm_close(sq_lm *lm) {
    if (lm && lm->close && lm->impl) lm->close(lm->impl);
    if (lm) lm->impl = NULL;
}
