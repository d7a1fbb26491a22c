/* forward(batch): one pass of the transformer over the new tokens of several sequences at once.
 *
 * The tokens of all sequences are laid out as the rows of one activation matrix, so every projection is a
 * single matrix-matrix product whatever mix of prefill chunks and decode tokens the batch holds. Each token
 * carries its sequence and position: RoPE uses the position, attention reads that sequence's cache up to it.
 * Batches larger than the context's n_batch_max run in consecutive chunks (a later chunk sees the keys an
 * earlier one stored). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"

static void add_bias(float *y, const sq_tensor *bias, int n_tokens, int width) {
    if (!bias) return;
    const float *b = bias->data;
    for (int t = 0; t < n_tokens; t++)
        for (int i = 0; i < width; i++) y[(size_t)t * width + i] += b[i];
}

static void add_into(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Runs tokens [0, n) of the context's token list, which the caller filled. */
static void forward_chunk(sq_context *ctx, int n) {
    const sq_model *m = ctx->model;
    const sq_model_config *c = &m->cfg;
    const sq_backend *be = &ctx->backend;
    const int dim = c->dim, hd = c->head_dim, half = hd / 2;

    for (int t = 0; t < n; t++) {
        sq_tensor_row_to_f32(m->tok_embd, ctx->tok_id[t], ctx->x + (size_t)t * dim);
        for (int i = 0; i < half; i++) {
            double angle = ctx->tok_pos[t] * ctx->inv_freq[i];
            ctx->rope_cos[(size_t)t * half + i] = (float)cos(angle);
            ctx->rope_sin[(size_t)t * half + i] = (float)sin(angle);
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        const sq_layer *L = &m->layers[l];
        const int q_dim = L->n_heads * hd, kv_dim = L->n_kv_heads * hd;
        be->rmsnorm(be->impl, ctx->x, L->attn_norm->data, c->norm_eps, n, dim, ctx->xb);
        be->matmul(be->impl, L->wq, ctx->xb, n, ctx->q);
        be->matmul(be->impl, L->wk, ctx->xb, n, ctx->k);
        be->matmul(be->impl, L->wv, ctx->xb, n, ctx->v);
        add_bias(ctx->q, L->bq, n, q_dim);
        add_bias(ctx->k, L->bk, n, kv_dim);
        add_bias(ctx->v, L->bv, n, kv_dim);
        be->rope(be->impl, ctx->q, n, L->n_heads, hd, ctx->rope_cos, ctx->rope_sin, c->rope_style);
        be->rope(be->impl, ctx->k, n, L->n_kv_heads, hd, ctx->rope_cos, ctx->rope_sin, c->rope_style);
        sq_kv_view kv; /* (kv) this layer's keys/values, read and written only through the view */
        sq_kv_cache_view(ctx->kv, l, &kv);
        be->kv_store(be->impl, &kv, ctx->k, ctx->v, ctx->tok_seq, ctx->tok_pos, n);
        sq_attention_args att = {.q = ctx->q,
                                 .kv = &kv,
                                 .seq = ctx->tok_seq,
                                 .pos = ctx->tok_pos,
                                 .n_tokens = n,
                                 .n_heads = L->n_heads,
                                 .n_kv_heads = L->n_kv_heads,
                                 .head_dim = hd,
                                 .window = c->sliding_window,
                                 .out = ctx->att};
        be->attention(be->impl, &att);
        be->matmul(be->impl, L->wo, ctx->att, n, ctx->xb);
        add_into(ctx->x, ctx->xb, (size_t)n * dim);

        be->rmsnorm(be->impl, ctx->x, L->ffn_norm->data, c->norm_eps, n, dim, ctx->xb);
        be->matmul(be->impl, L->w_gate, ctx->xb, n, ctx->gate);
        be->matmul(be->impl, L->w_up, ctx->xb, n, ctx->up);
        be->swiglu(be->impl, ctx->gate, ctx->up, (int64_t)n * L->ffn_dim);
        be->matmul(be->impl, L->w_down, ctx->gate, n, ctx->xb);
        add_into(ctx->x, ctx->xb, (size_t)n * dim);
    }
    /* Only rows whose logits were asked for go through the classifier: runs of consecutive tokens whose
     * destinations are consecutive rows become one matrix product straight into the caller's buffer. */
    for (int t = 0; t < n;) {
        if (!ctx->tok_logits[t]) {
            t++;
            continue;
        }
        int run = 1;
        while (t + run < n && ctx->tok_logits[t + run] == ctx->tok_logits[t] + (size_t)run * c->vocab_size)
            run++;
        be->rmsnorm(be->impl, ctx->x + (size_t)t * dim, m->out_norm->data, c->norm_eps, run, dim,
                    ctx->xb + (size_t)t * dim);
        be->matmul(be->impl, m->output, ctx->xb + (size_t)t * dim, run, ctx->tok_logits[t]);
        t += run;
    }
}

sq_error *sq_forward(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    const int vocab = ctx->model->cfg.vocab_size;
    if (n_seqs < 0 || (n_seqs > 0 && !seqs)) return sq_errorf(SQ_ERR_INVALID_ARG, "forward: invalid batch");
    /* Validate everything before touching the cache, so a rejected batch changes nothing. */
    for (int i = 0; i < n_seqs; i++) {
        const sq_seq_batch *s = &seqs[i];
        if (s->seq_id < 0 || s->seq_id >= ctx->n_seq_max)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence id %d is outside 0..%d", s->seq_id,
                             ctx->n_seq_max - 1);
        for (int j = 0; j < i; j++)
            if (seqs[j].seq_id == s->seq_id)
                return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d appears twice in one batch",
                                 s->seq_id);
        if (s->n_tokens < 0 || (s->n_tokens > 0 && !s->tokens))
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d has an invalid token list", s->seq_id);
        int len = sq_kv_cache_seq_len(ctx->kv, s->seq_id);
        if (s->n_tokens > ctx->n_ctx - len)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "forward: sequence %d holds %d tokens; %d more exceed the context of %d",
                             s->seq_id, len, s->n_tokens, ctx->n_ctx);
        if (s->logits_mode != SQ_LOGITS_NONE && s->logits_mode != SQ_LOGITS_LAST &&
            s->logits_mode != SQ_LOGITS_ALL)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d has an unknown logits mode",
                             s->seq_id);
        if (s->logits_mode != SQ_LOGITS_NONE && !s->logits)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d asks for logits but gives no buffer",
                             s->seq_id);
        for (int j = 0; j < s->n_tokens; j++)
            if (s->tokens[j] < 0 || s->tokens[j] >= vocab)
                return sq_errorf(SQ_ERR_INVALID_ARG,
                                 "forward: token id %d (sequence %d, index %d) is outside the "
                                 "vocabulary of %d",
                                 s->tokens[j], s->seq_id, j, vocab);
    }
    /* (kv) blocks for every sequence at once, or a rejected batch that changed nothing */
    for (int i = 0; i < n_seqs; i++) {
        ctx->batch_seq[i] = seqs[i].seq_id;
        ctx->batch_len[i] = sq_kv_cache_seq_len(ctx->kv, seqs[i].seq_id) + seqs[i].n_tokens;
    }
    SQ_TRY(sq_kv_cache_reserve(ctx->kv, ctx->batch_seq, ctx->batch_len, n_seqs));

    int n = 0;
    for (int i = 0; i < n_seqs; i++) {
        const sq_seq_batch *s = &seqs[i];
        int start = sq_kv_cache_seq_len(ctx->kv, s->seq_id);
        for (int j = 0; j < s->n_tokens; j++) {
            ctx->tok_id[n] = s->tokens[j];
            ctx->tok_seq[n] = s->seq_id;
            ctx->tok_pos[n] = start + j;
            ctx->tok_logits[n] = s->logits_mode == SQ_LOGITS_ALL ? s->logits + (size_t)j * vocab
                                 : s->logits_mode == SQ_LOGITS_LAST && j == s->n_tokens - 1 ? s->logits
                                                                                            : NULL;
            if (++n == ctx->n_batch_max) {
                forward_chunk(ctx, n);
                n = 0;
            }
        }
    }
    if (n) forward_chunk(ctx, n);
    for (int i = 0; i < n_seqs; i++) sq_kv_cache_set_seq_len(ctx->kv, ctx->batch_seq[i], ctx->batch_len[i]);
    return NULL;
}
