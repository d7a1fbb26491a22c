/* The generation loop: tokenize, prefill the prompt in one forward call, then sample and feed back one token
 * at a time, streaming text through the detokenizer (started after the prompt, so the streamed text is
 * decode(prompt + generated) minus decode(prompt)). It ends at any of the model's end-of-generation ids
 * (sq_model_eos_ids: every EOS its files name), and at BOS too: a generated BOS begins an unrelated document
 * (llama2.c's models end their stories so). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"

/* What one call holds; released together whatever the outcome. */
typedef struct generation {
    int32_t *tokens; /* prompt then generated, [n_ctx] */
    float *logits;   /* [vocab] */
    sq_sampler *sampler;
    sq_detokenizer *detok;
} generation;

static void generation_free(generation *g) {
    free(g->tokens);
    free(g->logits);
    sq_sampler_free(g->sampler);
    sq_detokenizer_free(g->detok);
}

/* Tokenizes the prompt into g->tokens (allocated for the whole context) and checks that it fits. */
static SQ_NODISCARD sq_error *tokenize_prompt(const sq_tokenizer *tok, const char *prompt, int n_ctx,
                                              generation *g, int *n_prompt) {
    int32_t *ids;
    int n;
    SQ_TRY(sq_error_wrap(sq_tokenize(tok, prompt, strlen(prompt), sq_tokenizer_adds_bos(tok), 1, &ids, &n),
                         "generate: tokenizing the prompt"));
    if (n == 0) {
        free(ids);
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "generate: the prompt is empty and the tokenizer adds no BOS token");
    }
    if (n > n_ctx) {
        free(ids);
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "generate: the prompt is %d tokens but the context holds only %d", n, n_ctx);
    }
    g->tokens = malloc((size_t)n_ctx * sizeof *g->tokens);
    if (!g->tokens) {
        free(ids);
        return sq_errorf(SQ_ERR_NOMEM, "generate: out of memory for %d tokens", n_ctx);
    }
    memcpy(g->tokens, ids, (size_t)n * sizeof *ids);
    free(ids);
    *n_prompt = n;
    return NULL;
}

/* Runs tokens [from, from + n) of g->tokens through sequence 0, leaving the last one's logits in g->logits.
 * Rows past the tokenizer's vocabulary (padding in some checkpoints) cannot be decoded: never sample them. */
static SQ_NODISCARD sq_error *forward(sq_context *ctx, generation *g, int from, int n, int n_text) {
    const int vocab = ctx->model->cfg.vocab_size;
    sq_seq_batch batch = {.seq_id = 0,
                          .tokens = g->tokens + from,
                          .n_tokens = n,
                          .logits_mode = SQ_LOGITS_LAST,
                          .logits = g->logits};
    SQ_TRY(sq_forward(ctx, &batch, 1));
    for (int i = n_text; i < vocab; i++) g->logits[i] = -INFINITY;
    return NULL;
}

static SQ_NODISCARD sq_error *run(sq_context *ctx, const char *prompt, int n_predict,
                                  const sq_sampler_params *params, sq_text_callback on_text, void *user,
                                  sq_generate_stats *stats, generation *g) {
    const sq_model *model = ctx->model;
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (!tok)
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "generate: the model has no tokenizer (load one with sq_load_options.tokenizer_path)");
    const int vocab = model->cfg.vocab_size, n_text = sq_tokenizer_vocab_size(tok),
              n_ctx = sq_context_n_ctx(ctx);
    const int bos = sq_tokenizer_bos(tok);
    int n_len = 0;
    SQ_TRY(tokenize_prompt(tok, prompt, n_ctx, g, &n_len));
    SQ_TRY(sq_sampler_create(params, vocab, &g->sampler));
    g->logits = malloc((size_t)vocab * sizeof *g->logits);
    g->detok = sq_detokenizer_create(tok);
    if (!g->logits || !g->detok) return sq_errorf(SQ_ERR_NOMEM, "generate: out of memory");
    /* the generated text continues the prompt's: its first word keeps its leading space */
    SQ_TRY(sq_detokenizer_reset(g->detok, g->tokens, n_len));
    stats->prompt_tokens = n_len;

    SQ_TRY(sq_seq_truncate(ctx, 0, 0));
    double t0 = sq_monotonic_seconds();
    SQ_TRY(sq_error_wrap(forward(ctx, g, 0, n_len, n_text), "generate: prefilling %d prompt tokens", n_len));
    stats->prefill_seconds = sq_monotonic_seconds() - t0;

    int stopped_by_caller = 0;
    double decode_start = 0; /* when the prefill's token was sampled */
    while ((n_predict < 0 || stats->generated_tokens < n_predict) && n_len < n_ctx) {
        int32_t next = sq_sampler_sample(g->sampler, g->logits, g->tokens, n_len);
        if (stats->decode_steps)
            stats->decode_seconds = sq_monotonic_seconds() - decode_start;
        else
            decode_start = sq_monotonic_seconds();
        if (next < 0)
            return sq_errorf(SQ_ERR_INTERNAL, "generate: every logit at position %d is NaN or -inf", n_len);
        if (sq_model_is_eos(model, next) || next == bos)
            break; /* BOS starts a new document: llama2.c's end */
        g->tokens[n_len++] = next;
        stats->generated_tokens++;
        size_t len;
        const char *piece = sq_detokenizer_push(g->detok, next, &len);
        if (len && on_text && on_text(piece, len, user)) {
            stopped_by_caller = 1;
            break;
        }
        if (stats->generated_tokens == n_predict || n_len == n_ctx) break; /* no need for its logits */
        SQ_TRY(sq_error_wrap(forward(ctx, g, n_len - 1, 1, n_text), "generate: decoding position %d",
                             n_len - 1));
        stats->decode_steps++;
    }
    size_t len;
    const char *rest = sq_detokenizer_flush(g->detok, &len);
    if (len && on_text && !stopped_by_caller) on_text(rest, len, user);
    return NULL;
}

sq_error *sq_generate(sq_context *ctx, const char *prompt, int n_predict, const sq_sampler_params *params,
                      sq_text_callback on_text, void *user, sq_generate_stats *stats) {
    sq_generate_stats unused;
    if (!stats) stats = &unused;
    *stats = (sq_generate_stats){0};
    if (!ctx || !prompt || !params)
        return sq_errorf(SQ_ERR_INVALID_ARG, "generate: missing context, prompt or parameters");
    generation g = {0};
    sq_error *err = run(ctx, prompt, n_predict, params, on_text, user, stats, &g);
    generation_free(&g);
    return err;
}
