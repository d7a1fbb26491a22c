/* sq_lm over a real model: one context whose sequences hold the windows or items evaluated together, run with
 * an optional mask of blocks to skip (sq_forward_ex). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/eval.h"

typedef struct lm_ctx {
    sq_context *ctx;
    sq_forward_options fwd; /* skip_layers points at skip, or is NULL */
    unsigned char *skip;    /* [n_layers], or NULL */
} lm_ctx;

static SQ_NODISCARD sq_error *ctx_forward(void *impl, const sq_seq_batch *seqs, int n_seqs) {
    lm_ctx *c = impl;
    return sq_forward_ex(c->ctx, seqs, n_seqs, &c->fwd);
}

static SQ_NODISCARD sq_error *ctx_truncate(void *impl, int seq_id, int new_len) {
    return sq_seq_truncate(((lm_ctx *)impl)->ctx, seq_id, new_len);
}

static void ctx_close(void *impl) {
    lm_ctx *c = impl;
    sq_context_free(c->ctx);
    free(c->skip);
    free(c);
}

SQ_NODISCARD sq_error *sq_lm_open(const sq_model *model, const char *device, int n_ctx, int n_seq,
                                  int n_threads, sq_kv_type kv_type, const unsigned char *skip_layers,
                                  sq_lm *out) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (n_ctx <= 0) n_ctx = info.max_seq_len;
    if (n_seq <= 0) n_seq = 1;
    if ((long long)n_ctx * n_seq > (1LL << 30))
        return sq_errorf(SQ_ERR_INVALID_ARG, "%d sequences of %d tokens are too many for one batch", n_seq,
                         n_ctx);
    lm_ctx *c = calloc(1, sizeof *c);
    if (!c) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    if (skip_layers) {
        c->skip = malloc((size_t)info.n_layers + 1);
        if (!c->skip) {
            free(c);
            return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        }
        memcpy(c->skip, skip_layers, (size_t)info.n_layers);
        c->fwd.skip_layers = c->skip;
    }
    sq_context_options o = {.n_ctx = n_ctx,
                            .n_seq_max = n_seq,
                            .n_threads = n_threads,
                            .n_batch_max = n_ctx * n_seq,
                            .kv_type = kv_type,
                            .device = device};
    sq_error *err = sq_context_create(model, &o, &c->ctx);
    if (err) {
        free(c->skip);
        free(c);
        return err;
    }
    *out = (sq_lm){.impl = c,
                   .n_vocab = info.vocab_size,
                   .n_ctx = sq_context_n_ctx(c->ctx),
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
