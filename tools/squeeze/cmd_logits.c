/* squeeze logits: runs a token sequence through the model and writes every position's logits, or continues it
 * greedily. It exposes the forward pass's three ways of consuming tokens (one prefill call, one token at a
 * time, fixed-size chunks) so reference tests can check that all agree with an independent implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const usage =
    "usage: squeeze logits -m MODEL (--tokens \"ID ID ...\" | -p TEXT) [-o OUT.f32] [--greedy N]\n"
    "                      [--mode prefill|decode|chunks:N] [-t THREADS] [--tokenizer PATH]\n"
    "  -o FILE       write raw little-endian float32 logits [n_tokens][vocab]; row t follows tokens 0..t\n"
    "  --greedy N    then generate N tokens greedily and print their ids on stdout\n"
    "  --mode        prefill: all tokens in one forward call (default); decode: one token per call;\n"
    "                chunks:N: N tokens per call\n"
    "  -p TEXT       tokenize TEXT (with BOS as the tokenizer adds it) instead of --tokens\n";

static int parse_ids(const char *text, int32_t **ids, int *n) {
    int cap = 16;
    *n = 0;
    *ids = malloc((size_t)cap * sizeof **ids);
    if (!*ids) return -1;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) return 0;
        char word[32];
        size_t len = strcspn(p, " ,\t\n");
        long v;
        if (len >= sizeof word) return -1;
        memcpy(word, p, len);
        word[len] = 0;
        if (cli_parse_int(word, 0, INT32_MAX, &v)) return -1;
        if (*n == cap) {
            int32_t *grown = realloc(*ids, (size_t)(cap *= 2) * sizeof **ids);
            if (!grown) return -1;
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p += len;
    }
}

int sq_cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *tokens_text = NULL, *prompt = NULL, *out_path = NULL, *tok_path = NULL;
    long greedy = 0, threads = 0, chunk = 0; /* chunk 0: all at once */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        const char *v = cli_flag_value("logits", argc, argv, &i);
        if (!v) return 2;
        if (!strcmp(a, "-m"))
            model_path = v;
        else if (!strcmp(a, "--tokens"))
            tokens_text = v;
        else if (!strcmp(a, "-p"))
            prompt = v;
        else if (!strcmp(a, "-o"))
            out_path = v;
        else if (!strcmp(a, "--tokenizer"))
            tok_path = v;
        else if (!strcmp(a, "--greedy")) {
            if (cli_parse_int(v, 0, 1 << 20, &greedy))
                return cli_usage_error("logits", "bad --greedy '%s'", v);
        } else if (!strcmp(a, "-t")) {
            if (cli_parse_int(v, 1, 1024, &threads)) return cli_usage_error("logits", "bad -t '%s'", v);
        } else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "prefill"))
                chunk = 0;
            else if (!strcmp(v, "decode"))
                chunk = 1;
            else if (strncmp(v, "chunks:", 7) || cli_parse_int(v + 7, 1, 1 << 20, &chunk))
                return cli_usage_error("logits", "bad --mode '%s'", v);
        } else {
            return cli_usage_error("logits", "unknown option '%s'", a);
        }
    }
    if (!model_path) return cli_usage_error("logits", "-m MODEL is required");
    if (!tokens_text == !prompt) return cli_usage_error("logits", "give exactly one of --tokens and -p");

    sq_model *model = NULL;
    sq_context *ctx = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int n = 0, rc = 1;
    sq_error *err = cli_load_model(model_path, &(sq_load_options){.tokenizer_path = tok_path}, &model);
    if (err) return cli_fail(err);
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (tokens_text) {
        if (parse_ids(tokens_text, &ids, &n)) {
            rc = cli_usage_error("logits", "--tokens must be non-negative integers separated by spaces");
            goto done;
        }
    } else {
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
        rc = cli_usage_error("logits", "no tokens given");
        goto done;
    }
    if ((long)n + greedy > info.max_seq_len) {
        fprintf(stderr, "squeeze logits: %d tokens + %ld generated exceed the context of %d\n", n, greedy,
                info.max_seq_len);
        goto done;
    }
    int step = chunk ? (int)chunk : n;
    err =
        sq_context_create(model, &(sq_context_options){.n_threads = (int)threads, .n_batch_max = step}, &ctx);
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
