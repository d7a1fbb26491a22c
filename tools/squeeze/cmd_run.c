/* squeeze run: generates text from a prompt and streams it to stdout, with llama.cpp's flags. One stats line
 * (speeds, peak memory, the seed) goes to stderr at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Without -c, contexts stop here even when the model allows more: the KV cache of a long-context model would
 * otherwise take gigabytes before the first token. */
#define DEFAULT_MAX_CTX 4096
/* Prompts are prefilled in chunks of at most this many tokens (within one forward call), as llama.cpp does.
 */
#define PREFILL_CHUNK 512
/* A prompt file larger than this is a mistake, not a prompt. */
#define MAX_PROMPT_BYTES ((size_t)1 << 30)

typedef struct run_args {
    const char *model_path, *prompt, *prompt_file, *tokenizer_path, *kv_type, *lora, *device;
    long n_predict, threads, n_ctx, repeat_last_n, top_k, seed; /* seed -1: from the clock */
    double temperature, top_p, min_p, repeat_penalty;
    int no_echo, spec_compare;
    cli_spec_args spec;
} run_args;

static const cli_verb verb = {
    .name = "run",
    .usage = "-m MODEL (-p PROMPT | -f FILE) [options]",
    .about =
        "Generates text from a prompt and streams it to stdout; one line of statistics (prefill and\n"
        "decode speed, peak memory, the seed) goes to stderr at the end. Decode speed counts the forward\n"
        "passes after the prompt's: n tokens generated to the limit took n - 1 (the first comes from the\n"
        "prompt's pass); with --spec, the tokens those passes produced. With --spec, a draft proposes "
        "tokens\n"
        "that the model verifies several at a time, keeping its own output distribution (greedy: the same\n"
        "text); a line of acceptance statistics comes before the last one.\n",
};

/* CLI_CONTINUE to go on, otherwise the exit code */
static int parse_args(int argc, char **argv, run_args *a) {
    sq_sampler_params d = sq_sampler_default_params();
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model_path, 1),
        CLI_TEXT_FLAG("-p, --prompt", "TEXT", &a->prompt, "the prompt"),
        CLI_TEXT_FLAG("-f, --file", "FILE", &a->prompt_file, "read the prompt from FILE (/dev/stdin too)"),
        CLI_INT_FLAG("-n, --n-predict", "N", &a->n_predict, -1, INT32_MAX, 256,
                     "tokens to generate at most: generation also stops at an end-of-generation\n"
                     "token (EOS, end of turn) and when the context is full; -1: only there"),
        CLI_NUMBER_FLAG("--temp", "T", &a->temperature, 0, 100, d.temperature, "temperature; 0: greedy"),
        CLI_INT_FLAG("--top-k", "K", &a->top_k, 0, INT32_MAX, d.top_k,
                     "keep the K most likely tokens; 0: off"),
        CLI_NUMBER_FLAG("--top-p", "P", &a->top_p, 0, 1, d.top_p,
                        "keep the smallest set with probability P; 1: off", .lo_open = 1),
        CLI_NUMBER_FLAG("--min-p", "P", &a->min_p, 0, 1, d.min_p,
                        "drop tokens below P times the best one's probability; 0: off"),
        CLI_NUMBER_FLAG("--repeat-penalty", "R", &a->repeat_penalty, 0, 100, d.repeat_penalty,
                        "penalise tokens seen in the last --repeat-last-n; 1: off", .lo_open = 1),
        CLI_INT_FLAG("--repeat-last-n", "N", &a->repeat_last_n, -1, INT32_MAX, d.repeat_last_n,
                     "how far back the penalty looks; 0: off; -1: the whole context"),
        CLI_FLAG_SEED(&a->seed, -1, "sampling seed, printed with the stats"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_CTX(&a->n_ctx, "the model's, at most 4096"),
        CLI_FLAG_KV_TYPE(&a->kv_type),
        CLI_FLAG_DEVICE(&a->device),
        CLI_FLAG_TOKENIZER(&a->tokenizer_path),
        CLI_FLAG_LORA(&a->lora),
        CLI_SWITCH_FLAG("--no-echo", &a->no_echo, "do not print the prompt before the generated text"),
        CLI_FLAGS_SPEC(&a->spec),
        CLI_SWITCH_FLAG("--spec-compare", &a->spec_compare,
                        "then decode again without speculation and print the speedup"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc == CLI_CONTINUE && !a->prompt == !a->prompt_file)
        rc = cli_usage_error("run", "give the prompt with exactly one of -p and -f");
    if (rc == CLI_CONTINUE) rc = cli_spec_check("run", &a->spec);
    if (rc == CLI_CONTINUE && a->spec_compare && !strcmp(a->spec.method, "none"))
        rc = cli_usage_error("run", "--spec-compare compares a --spec method with plain decoding");
    if (rc != CLI_CONTINUE) cli_list_free(&a->spec.skip_layers);
    return rc;
}

/* The prompt is echoed with the first piece (or at the end), so a prompt the library rejects prints nothing.
 */
typedef struct printer {
    const char *echo; /* the prompt until it is printed, or NULL */
    int printed;
} printer;

static void print_echo(printer *p) {
    if (p->echo) fputs(p->echo, stdout);
    p->printed |= p->echo != NULL;
    p->echo = NULL;
}

static int print_piece(const char *piece, size_t len, void *user) {
    printer *p = user;
    print_echo(p);
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    p->printed = 1;
    return ferror(stdout) ? 1 : 0; /* stop when nobody reads any more */
}

static void print_stats(const sq_generate_stats *st, uint64_t seed) {
    double prefill = st->prefill_seconds > 0 ? st->prompt_tokens / st->prefill_seconds : 0;
    /* the first generated token comes from the prefill: decode speed counts the passes after it */
    double decode = st->decode_seconds > 0 ? st->decode_steps / st->decode_seconds : 0;
    fprintf(
        stderr,
        "prompt %d tokens, prefill %.1f tok/s | generated %d tokens, decode %.1f tok/s | peak memory %.1f MiB"
        " | seed %llu\n",
        st->prompt_tokens, prefill, st->generated_tokens, decode, sq_peak_rss_bytes() / (1024.0 * 1024.0),
        (unsigned long long)seed);
}

static int silent(const char *piece, size_t len, void *user) {
    (void)piece, (void)len, (void)user;
    return 0;
}

static int generate(const run_args *a, const char *prompt) {
    sq_model *model = NULL;
    sq_context *ctx = NULL;
    cli_spec spec = {0};
    sq_load_options lo = {.tokenizer_path = a->tokenizer_path};
    sq_error *err = cli_load_model_lora(a->model_path, &lo, a->lora, &model);
    if (err) return cli_fail(err);
    if (!sq_model_tokenizer(model)) {
        sq_model_free(model);
        fprintf(stderr, "squeeze: %s: no tokenizer inside or beside the model; give one with --tokenizer\n",
                a->model_path);
        return 1;
    }
    sq_model_info info;
    sq_model_get_info(model, &info);
    int n_ctx = a->n_ctx                             ? (int)a->n_ctx
                : info.max_seq_len < DEFAULT_MAX_CTX ? info.max_seq_len
                                                     : DEFAULT_MAX_CTX;
    sq_context_options co = {.n_ctx = n_ctx,
                             .n_seq_max = 1,
                             .n_threads = (int)a->threads,
                             .n_batch_max = n_ctx < PREFILL_CHUNK ? n_ctx : PREFILL_CHUNK,
                             .kv_type = cli_kv_type(a->kv_type),
                             .device = a->device};
    err = sq_context_create(model, &co, &ctx);
    if (!err) err = cli_spec_open(&a->spec, model, &lo, &co, &spec);
    if (err) {
        sq_context_free(ctx);
        sq_model_free(model);
        return cli_fail(err);
    }
    sq_sampler_params sp = {.temperature = (float)a->temperature,
                            .top_k = (int)a->top_k,
                            .top_p = (float)a->top_p,
                            .min_p = (float)a->min_p,
                            .repeat_penalty = (float)a->repeat_penalty,
                            .repeat_last_n = a->repeat_last_n < 0 ? n_ctx : (int)a->repeat_last_n,
                            .seed = a->seed < 0 ? cli_clock_seed() : (uint64_t)a->seed};
    const int speculative = spec.params.draft != SQ_DRAFT_NONE;
    printer out = {.echo = a->no_echo ? NULL : prompt};
    sq_generate_stats st, plain;
    sq_spec_stats sst;
    err = sq_generate_spec(ctx, prompt, (int)a->n_predict, &sp, speculative ? &spec.params : NULL,
                           print_piece, &out, &st, &sst);
    if (!err) print_echo(&out);
    if (out.printed) fputc('\n', stdout);
    fflush(stdout);
    /* the same request without speculation, in the same process, for the speedup */
    if (!err && a->spec_compare) err = sq_generate(ctx, prompt, (int)a->n_predict, &sp, silent, NULL, &plain);
    cli_spec_close(&spec);
    sq_context_free(ctx);
    sq_model_free(model);
    if (err) return cli_fail(err);
    /* the usual stats line stays the last one */
    if (speculative) cli_spec_print_stats(stderr, &a->spec, &sst);
    if (a->spec_compare) {
        double spec_rate = st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0;
        double plain_rate = plain.decode_seconds > 0 ? plain.generated_tokens / plain.decode_seconds : 0;
        fprintf(stderr, "plain decoding: generated %d tokens, decode %.1f tok/s | speedup %.2fx\n",
                plain.generated_tokens, plain_rate, plain_rate > 0 ? spec_rate / plain_rate : 0);
    }
    print_stats(&st, sp.seed);
    return 0;
}

int sq_cmd_run(int argc, char **argv) {
    run_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    char *file_prompt = NULL;
    size_t len = 0;
    if (a.prompt_file) {
        sq_error *err = sq_read_file(a.prompt_file, MAX_PROMPT_BYTES, &file_prompt, &len);
        if (!err && memchr(file_prompt, 0, len)) {
            fprintf(stderr, "squeeze: %s: the prompt contains a NUL byte\n", a.prompt_file);
            free(file_prompt);
            cli_list_free(&a.spec.skip_layers);
            return 1;
        }
        if (err) {
            cli_list_free(&a.spec.skip_layers);
            return cli_fail(err);
        }
    }
    rc = generate(&a, file_prompt ? file_prompt : a.prompt);
    free(file_prompt);
    cli_list_free(&a.spec.skip_layers);
    return rc;
}
