/* squeeze run: generates text from a prompt and streams it to stdout, with llama.cpp's flags. One stats line
 * (speeds, peak memory, the seed) goes to stderr at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Without -c, contexts stop here even when the model allows more: the KV cache of a long-context model would
 * otherwise take gigabytes before the first token. */
#define DEFAULT_MAX_CTX 4096
/* Prompts are prefilled in chunks of at most this many tokens (within one forward call), as llama.cpp does.
 */
#define PREFILL_CHUNK 512

static const char *const usage =
    "usage: squeeze run -m MODEL (-p PROMPT | -f PROMPT_FILE) [options]\n"
    "  -m MODEL              llama2.c .bin, Hugging Face directory or GGUF file\n"
    "  -p PROMPT             the prompt text\n"
    "  -f FILE               read the prompt from FILE\n"
    "  -n N                  tokens to generate (default 256; -1: until EOS or the context is full)\n"
    "  --temp T              temperature (default 0.8; 0: greedy)\n"
    "  --top-k K             keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P             keep the smallest set with probability P (default 0.95; 1: off)\n"
    "  --min-p P             drop tokens below P times the best one's probability (default 0.05; 0: off)\n"
    "  --repeat-penalty R    penalise tokens seen in the last N (default 1.0: off)\n"
    "  --repeat-last-n N     how far back the penalty looks (default 64; 0: off; -1: the whole context)\n"
    "  --seed S              sampling seed (default: from the clock; -1 too); printed with the stats\n"
    "  -t THREADS            threads (default: all cores)\n"
    "  -c CTX                context length in tokens (default: the model's, at most 4096)\n"
    "  --tokenizer PATH      tokenizer file (default: inside or beside the model)\n"
    "  --no-echo             do not print the prompt before the generated text\n";

typedef struct run_args {
    const char *model_path, *prompt, *prompt_file, *tokenizer_path;
    long n_predict, threads, n_ctx, repeat_last_n, top_k, seed; /* seed -1: from the clock */
    double temperature, top_p, min_p, repeat_penalty;
    int echo;
} run_args;

typedef enum flag_kind { FLAG_TEXT, FLAG_INT, FLAG_NUMBER } flag_kind;

/* A flag that takes a value, where the value goes, and (for numbers) its range. */
typedef struct flag_spec {
    const char *name;
    flag_kind kind;
    void *dst; /* const char **, long * or double * */
    double lo, hi;
    int lo_open; /* the range excludes lo */
} flag_spec;

static int parse_value(const flag_spec *f, const char *v) {
    if (f->kind == FLAG_TEXT) {
        *(const char **)f->dst = v;
        return 0;
    }
    if (f->kind == FLAG_INT) {
        if (cli_parse_int(v, (long)f->lo, (long)f->hi, f->dst))
            return cli_usage_error("run", "%s '%s' must be an integer in [%ld, %ld]", f->name, v, (long)f->lo,
                                   (long)f->hi);
        return 0;
    }
    double x;
    if (cli_parse_float(v, f->lo, f->hi, &x) || (f->lo_open && x == f->lo))
        return cli_usage_error("run", "%s '%s' must be a number in %c%g, %g]", f->name, v,
                               f->lo_open ? '(' : '[', f->lo, f->hi);
    *(double *)f->dst = x;
    return 0;
}

/* 0 to go on, otherwise 1 with the exit code in *exit_code (0 after --help) */
static int parse_args(int argc, char **argv, run_args *a, int *exit_code) {
    sq_sampler_params d = sq_sampler_default_params();
    *a = (run_args){.n_predict = 256,
                    .repeat_last_n = d.repeat_last_n,
                    .top_k = d.top_k,
                    .seed = -1,
                    .temperature = d.temperature,
                    .top_p = d.top_p,
                    .min_p = d.min_p,
                    .repeat_penalty = d.repeat_penalty,
                    .echo = 1};
    const flag_spec flags[] = {
        {"-m", FLAG_TEXT, &a->model_path, 0, 0, 0},
        {"-p", FLAG_TEXT, &a->prompt, 0, 0, 0},
        {"-f", FLAG_TEXT, &a->prompt_file, 0, 0, 0},
        {"--tokenizer", FLAG_TEXT, &a->tokenizer_path, 0, 0, 0},
        {"-n", FLAG_INT, &a->n_predict, -1, INT32_MAX, 0},
        {"-t", FLAG_INT, &a->threads, 1, 1024, 0},
        {"-c", FLAG_INT, &a->n_ctx, 1, INT32_MAX, 0},
        {"--top-k", FLAG_INT, &a->top_k, 0, INT32_MAX, 0},
        {"--repeat-last-n", FLAG_INT, &a->repeat_last_n, -1, INT32_MAX, 0},
        {"--seed", FLAG_INT, &a->seed, -1, (double)(1ull << 53), 0}, /* exact in a double */
        {"--temp", FLAG_NUMBER, &a->temperature, 0, 100, 0},
        {"--top-p", FLAG_NUMBER, &a->top_p, 0, 1, 1},
        {"--min-p", FLAG_NUMBER, &a->min_p, 0, 1, 0},
        {"--repeat-penalty", FLAG_NUMBER, &a->repeat_penalty, 0, 100, 1},
    };
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
            fputs(usage, stdout);
            return *exit_code = 0, 1;
        }
        if (!strcmp(name, "--no-echo")) {
            a->echo = 0;
            continue;
        }
        const flag_spec *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof *flags && !f; k++)
            if (!strcmp(name, flags[k].name)) f = &flags[k];
        if (!f) return *exit_code = cli_usage_error("run", "unknown option '%s'", name), 1;
        const char *v = cli_flag_value("run", argc, argv, &i);
        if (!v) return *exit_code = 2, 1;
        if ((*exit_code = parse_value(f, v))) return 1;
    }
    if (!a->model_path) return *exit_code = cli_usage_error("run", "-m MODEL is required"), 1;
    if (!a->prompt == !a->prompt_file)
        return *exit_code = cli_usage_error("run", "give the prompt with exactly one of -p and -f"), 1;
    return 0;
}

static uint64_t clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* below 2^53 so that it prints and reads back exactly anywhere */
    return ((uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32) &
           ((1ull << 53) - 1);
}

/* The whole file as a NUL-terminated string; NULL after printing why not. */
static char *read_prompt_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "squeeze: cannot open prompt file '%s'\n", path);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + len, 1, cap - 1 - len, f)) > 0;) {
        len += got;
        if (len == cap - 1) {
            char *grown = realloc(text, cap *= 2);
            if (!grown) free(text);
            text = grown;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (!text || failed || memchr(text, 0, len)) {
        fprintf(stderr, "squeeze: cannot read prompt file '%s'%s\n", path,
                text && !failed ? ": it contains a NUL byte" : "");
        free(text);
        return NULL;
    }
    text[len] = 0;
    return text;
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
    double decode = st->decode_seconds > 0 ? st->generated_tokens / st->decode_seconds : 0;
    fprintf(
        stderr,
        "prompt %d tokens, prefill %.1f tok/s | generated %d tokens, decode %.1f tok/s | peak memory %.1f MiB"
        " | seed %llu\n",
        st->prompt_tokens, prefill, st->generated_tokens, decode, sq_peak_rss_bytes() / (1024.0 * 1024.0),
        (unsigned long long)seed);
}

static int generate(const run_args *a, const char *prompt) {
    sq_model *model = NULL;
    sq_context *ctx = NULL;
    sq_load_options lo = {.tokenizer_path = a->tokenizer_path};
    sq_error *err = cli_load_model(a->model_path, &lo, &model);
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
                             .n_batch_max = n_ctx < PREFILL_CHUNK ? n_ctx : PREFILL_CHUNK};
    err = sq_context_create(model, &co, &ctx);
    if (err) {
        sq_model_free(model);
        return cli_fail(err);
    }
    sq_sampler_params sp = {.temperature = (float)a->temperature,
                            .top_k = (int)a->top_k,
                            .top_p = (float)a->top_p,
                            .min_p = (float)a->min_p,
                            .repeat_penalty = (float)a->repeat_penalty,
                            .repeat_last_n = a->repeat_last_n < 0 ? n_ctx : (int)a->repeat_last_n,
                            .seed = a->seed < 0 ? clock_seed() : (uint64_t)a->seed};
    printer out = {.echo = a->echo ? prompt : NULL};
    sq_generate_stats st;
    err = sq_generate(ctx, prompt, (int)a->n_predict, &sp, print_piece, &out, &st);
    if (!err) print_echo(&out);
    if (out.printed) fputc('\n', stdout);
    fflush(stdout);
    sq_context_free(ctx);
    sq_model_free(model);
    if (err) return cli_fail(err);
    print_stats(&st, sp.seed);
    return 0;
}

int sq_cmd_run(int argc, char **argv) {
    run_args a;
    int code;
    if (parse_args(argc, argv, &a, &code)) return code;
    char *file_prompt = NULL;
    if (a.prompt_file && !(file_prompt = read_prompt_file(a.prompt_file))) return 1;
    int rc = generate(&a, file_prompt ? file_prompt : a.prompt);
    free(file_prompt);
    return rc;
}
