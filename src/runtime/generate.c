/* The generation loop over text: tokenize, run a decoder (speculative.c: prefill, then one target step at a
 * time, plain or speculative), and stream each new token's text through the detokenizer (started after the
 * prompt, so the streamed text is decode(prompt + generated) minus decode(prompt)). It ends at any of the
 * model's end-of-generation ids (sq_model_eos_ids: every EOS its files name), and at BOS too: a generated BOS
 * begins an unrelated document (llama2.c's models end their stories so). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"

/* What one call holds; released together whatever the outcome. */
typedef struct generation {
    int32_t *prompt; /* [n_prompt] */
    sq_decoder *decoder;
    sq_detokenizer *detok;
} generation;

static void generation_free(generation *g) {
    free(g->prompt);
    sq_decoder_free(g->decoder);
    sq_detokenizer_free(g->detok);
}

/* Tokenizes the prompt into g->prompt and checks that it fits. */
static SQ_NODISCARD sq_error *tokenize_prompt(const sq_tokenizer *tok, const char *prompt, int n_ctx,
                                              generation *g, int *n_prompt) {
    int n;
    SQ_TRY(
        sq_error_wrap(sq_tokenize(tok, prompt, strlen(prompt), sq_tokenizer_adds_bos(tok), 1, &g->prompt, &n),
                      "generate: tokenizing the prompt"));
    if (n == 0)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "generate: the prompt is empty and the tokenizer adds no BOS token");
    if (n > n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "generate: the prompt is %d tokens but the context holds only %d", n, n_ctx);
    *n_prompt = n;
    return NULL;
}

static SQ_NODISCARD sq_error *run(sq_context *ctx, const char *prompt, int n_predict,
                                  const sq_sampler_params *params, const sq_spec_params *spec,
                                  sq_text_callback on_text, void *user, sq_generate_stats *stats,
                                  generation *g) {
    const sq_model *model = ctx->model;
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (!tok)
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "generate: the model has no tokenizer (load one with sq_load_options.tokenizer_path)");
    const int n_ctx = sq_context_n_ctx(ctx), bos = sq_tokenizer_bos(tok);
    int n_prompt = 0;
    SQ_TRY(tokenize_prompt(tok, prompt, n_ctx, g, &n_prompt));
    SQ_TRY(sq_decoder_create(ctx, params, spec, &g->decoder));
    g->detok = sq_detokenizer_create(tok);
    if (!g->detok) return sq_errorf(SQ_ERR_NOMEM, "generate: out of memory");
    /* the generated text continues the prompt's: its first word keeps its leading space */
    SQ_TRY(sq_detokenizer_reset(g->detok, g->prompt, n_prompt));
    stats->prompt_tokens = n_prompt;

    SQ_TRY(sq_error_wrap(sq_decoder_start(g->decoder, g->prompt, n_prompt),
                         "generate: prefilling %d prompt tokens", n_prompt));
    const double decode_start = sq_monotonic_seconds(); /* the prefill's token is sampled */
    double step_end = decode_start;
    sq_decoder_stats(g->decoder, NULL, &stats->prefill_seconds);

    int emitted = n_prompt, stopped_by_caller = 0, done = n_prompt == n_ctx || n_predict == 0;
    while (!done) {
        int n;
        const int32_t *tokens = sq_decoder_tokens(g->decoder, &n);
        for (; emitted < n && !done; emitted++) {
            int32_t next = tokens[emitted];
            if (emitted > n_prompt) { /* every token but the first comes from a decoding pass */
                stats->decode_steps++;
                stats->decode_seconds = step_end - decode_start;
            }
            if (sq_model_is_eos(model, next) || next == bos) { /* BOS starts a new document: llama2.c's end */
                done = 1;
                break;
            }
            stats->generated_tokens++;
            size_t len;
            const char *piece = sq_detokenizer_push(g->detok, next, &len);
            if (len && on_text && on_text(piece, len, user)) stopped_by_caller = done = 1;
            if (stats->generated_tokens == n_predict || emitted + 1 == n_ctx) done = 1;
        }
        if (done) break;
        int n_new;
        SQ_TRY(sq_error_wrap(
            sq_decoder_step(g->decoder, n_predict < 0 ? n_ctx : n_predict - stats->generated_tokens, &n_new),
            "generate: decoding position %d", n - 1));
        step_end = sq_monotonic_seconds();
    }
    size_t len;
    const char *rest = sq_detokenizer_flush(g->detok, &len);
    if (len && on_text && !stopped_by_caller) on_text(rest, len, user);
    return NULL;
}

SQ_NODISCARD sq_error *sq_generate_spec(sq_context *ctx, const char *prompt, int n_predict,
                                        const sq_sampler_params *params, const sq_spec_params *spec,
                                        sq_text_callback on_text, void *user, sq_generate_stats *stats,
                                        sq_spec_stats *spec_stats) {
    sq_generate_stats unused;
    if (!stats) stats = &unused;
    *stats = (sq_generate_stats){0};
    if (spec_stats) *spec_stats = (sq_spec_stats){0};
    if (!ctx || !prompt || !params)
        return sq_errorf(SQ_ERR_INVALID_ARG, "generate: missing context, prompt or parameters");
    generation g = {0};
    sq_error *err = run(ctx, prompt, n_predict, params, spec, on_text, user, stats, &g);
    if (g.decoder && spec_stats) sq_decoder_stats(g.decoder, spec_stats, NULL);
    generation_free(&g);
    return err;
}

sq_error *sq_generate(sq_context *ctx, const char *prompt, int n_predict, const sq_sampler_params *params,
                      sq_text_callback on_text, void *user, sq_generate_stats *stats) {
    return sq_generate_spec(ctx, prompt, n_predict, params, NULL, on_text, user, stats, NULL);
}
