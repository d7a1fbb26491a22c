/* squeeze logits: runs a token sequence through the model and writes every position's logits, or continues it
 * greedily. It exposes the forward pass's three ways of consuming tokens (one prefill call, one token at a
 * time, fixed-size chunks) so reference tests can check that all agree with an independent implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* --mode: prefill (all tokens in one call), decode (one per call) or chunks:N; *chunk 0 means all at once */
static int parse_mode(const char *mode, long *chunk) {
    if (!strcmp(mode, "prefill")) return *chunk = 0, 0;
    if (!strcmp(mode, "decode")) return *chunk = 1, 0;
    if (strncmp(mode, "chunks:", 7) || !(mode[7] >= '0' && mode[7] <= '9')) return -1;
    char *end;
    long n = strtol(mode + 7, &end, 10);
    if (*end || n < 1 || n > CLI_MAX_CTX) return -1;
    return *chunk = n, 0;
}

static const cli_verb verb = {
    .name = "logits",
    .usage = "-m MODEL (--tokens \"ID ID ...\" | -p TEXT) [-o OUT.f32] [--greedy N] [options]",
    .about = "Runs a token sequence through the model and writes every position's logits, or continues it\n"
             "greedily: the forward pass's ways of consuming tokens, for reference tests.\n",
};

int sq_cmd_logits(int argc, char **argv) {
    const char *model_path, *prompt, *out_path, *tok_path, *mode;
    long greedy, threads, n_ctx, chunk = 0; /* tokens per forward call; 0: all at once */
    cli_list tokens;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&model_path, 1),
        CLI_LIST_FLAG("--tokens", "IDS", &tokens, 0, INT32_MAX,
                      "the token ids, separated by spaces or commas"),
        CLI_TEXT_FLAG("-p, --prompt", "TEXT", &prompt,
                      "tokenize TEXT (with BOS as the tokenizer adds it) instead"),
        CLI_TEXT_FLAG("-o, --output", "FILE", &out_path,
                      "write raw little-endian float32 logits [n_tokens][vocab];\nrow t follows tokens 0..t"),
        CLI_INT_FLAG("--greedy", "N", &greedy, 0, CLI_MAX_CTX, 0,
                     "then generate N tokens greedily and print their ids"),
        CLI_TEXT_FLAG(
            "--mode", "MODE", &mode,
            "prefill: all tokens in one forward call; decode: one\ntoken a call; chunks:N: N tokens a call",
            .def_str = "prefill"),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_CTX(&n_ctx, "the model's context length"),
        CLI_FLAG_TOKENIZER(&tok_path),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (parse_mode(mode, &chunk))
        rc = cli_usage_error("logits", "--mode '%s' must be prefill, decode or chunks:N with N in [1, %d]",
                             mode, CLI_MAX_CTX);
    else if (!tokens.n == !prompt)
        rc = cli_usage_error("logits", "give exactly one of --tokens and -p");
    if (rc != CLI_CONTINUE) {
        cli_list_free(&tokens);
        return rc;
    }

    sq_model *model = NULL;
    sq_context *ctx = NULL;
    int32_t *ids = tokens.v; /* owned from here on */
    float *logits = NULL;
    int n = (int)tokens.n;
    rc = 1;
    sq_error *err = cli_load_model(model_path, &(sq_load_options){.tokenizer_path = tok_path}, &model);
    if (err) {
        free(ids);
        return cli_fail(err);
    }
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (!ids) {
        const sq_tokenizer *tok = sq_model_tokenizer(model);
        if (!tok) {
            fprintf(stderr, "squeeze logits: %s has no tokenizer; use --tokens or --tokenizer\n", model_path);
            goto done;
        }
        if ((err = sq_tokenize(tok, prompt, strlen(prompt), sq_tokenizer_adds_bos(tok), 0, &ids, &n))) {
            rc = cli_fail(err);
            goto done;
        }
    }
    if (n == 0) {
        fprintf(stderr, "squeeze logits: the prompt has no tokens\n");
        goto done;
    }
    const long ctx_len = n_ctx ? n_ctx : info.max_seq_len;
    if ((long)n + greedy > ctx_len) {
        fprintf(stderr, "squeeze logits: %d tokens + %ld generated exceed the context of %ld\n", n, greedy,
                ctx_len);
        goto done;
    }
    int step = chunk ? (int)chunk : n;
    err = sq_context_create(
        model, &(sq_context_options){.n_threads = (int)threads, .n_ctx = (int)n_ctx, .n_batch_max = step},
        &ctx);
    logits = err ? NULL : malloc((size_t)n * info.vocab_size * sizeof *logits);
    if (!err && !logits) {
        fprintf(stderr, "squeeze logits: out of memory\n");
        goto done;
    }
    for (int start = 0; !err && start < n; start += step) {
        int len = n - start < step ? n - start : step;
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = ids + start,
                          .n_tokens = len,
                          .logits_mode = SQ_LOGITS_ALL,
                          .logits = logits + (size_t)start * info.vocab_size};
        err = sq_forward(ctx, &b, 1);
    }
    if (err) {
        rc = cli_fail(err);
        goto done;
    }
    if (out_path) {
        FILE *fp = fopen(out_path, "wb");
        size_t count = (size_t)n * info.vocab_size;
        if (!fp || fwrite(logits, sizeof *logits, count, fp) != count || fclose(fp) != 0) {
            fprintf(stderr, "squeeze logits: cannot write %s\n", out_path);
            goto done;
        }
    }
    const float *last = logits + (size_t)(n - 1) * info.vocab_size;
    float *next = malloc((size_t)info.vocab_size * sizeof *next);
    for (long g = 0; next && g < greedy; g++) {
        int32_t best = 0;
        for (int i = 1; i < info.vocab_size; i++)
            if (last[i] > last[best]) best = i;
        printf(g ? " %d" : "%d", best);
        sq_seq_batch b = {
            .seq_id = 0, .tokens = &best, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = next};
        if ((err = sq_forward(ctx, &b, 1))) {
            free(next);
            rc = cli_fail(err);
            goto done;
        }
        last = next;
    }
    if (greedy) printf("\n");
    free(next);
    rc = 0;
done:
    free(logits);
    free(ids);
    sq_context_free(ctx);
    sq_model_free(model);
    return rc;
}
