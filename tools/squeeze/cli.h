/* Shared pieces of the squeeze command-line tool: each verb lives in cmd_<verb>.c and is a thin client of
 * include/squeeze.h. Library errors are printed here and turned into exit codes; nothing below exits. */
#ifndef SQ_CLI_H
#define SQ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "squeeze.h"

int sq_cmd_run(int argc, char **argv);
int sq_cmd_info(int argc, char **argv);
int sq_cmd_synth(int argc, char **argv);
int sq_cmd_convert(int argc, char **argv);
int sq_cmd_quantize(int argc, char **argv);
int sq_cmd_imatrix(int argc, char **argv);
int sq_cmd_compress(int argc, char **argv);
int sq_cmd_tokenize(int argc, char **argv);
int sq_cmd_logits(int argc, char **argv);
int sq_cmd_ppl(int argc, char **argv);
int sq_cmd_eval(int argc, char **argv);
int sq_cmd_bench(int argc, char **argv);
int sq_cmd_report(int argc, char **argv);
int sq_cmd_chat_template(int argc, char **argv);
int sq_cmd_prune(int argc, char **argv);
int sq_cmd_finetune(int argc, char **argv);
int sq_cmd_spec_search(int argc, char **argv);
int sq_cmd_serve(int argc, char **argv);
int sq_cmd_chat(int argc, char **argv);

/* Prints "squeeze: <message>" to stderr, frees err, returns exit code 1. */
SQ_TAKES_ERROR(1) int cli_fail(sq_error *err);
/* Prints "squeeze <verb>: <printf message> (see 'squeeze <verb> --help')" to stderr and returns exit code 2,
 * the code of every usage error. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- flags
 *
 * Every verb declares its flags in one table of cli_flag rows (and a cli_verb for the rest of its --help);
 * cli_parse reads the command line by it and prints `squeeze VERB --help` from it, so a flag's spellings,
 * value type, range, default and help text are written once. Flags follow llama.cpp's names where it has one.
 * The rows that several verbs share (CLI_FLAG_* below) are the one definition of those flags and their
 * limits. */

typedef enum cli_type {
    CLI_SWITCH, /* no value: sets an int to 1 */
    CLI_TEXT,   /* a string: const char * (points into argv) */
    CLI_TEXTS,  /* a string that may be given up to `hi` times (at most CLI_MAX_TEXTS): cli_texts */
    CLI_CHOICE, /* one of the words of `choices` ("gguf|hf|llama2c"): const char * */
    CLI_INT,    /* a decimal integer in [lo, hi]: long */
    CLI_NUMBER, /* a finite number in [lo, hi], or (lo, hi] with lo_open: double */
    CLI_LIST    /* one or more integers in [lo, hi] separated by commas or whitespace: cli_list */
} cli_type;

enum { CLI_MAX_TEXTS = 8 };

typedef struct cli_texts {
    const char *v[CLI_MAX_TEXTS]; /* [n], in command-line order */
    int n;
} cli_texts;

typedef struct cli_list {
    int32_t *v; /* [n], malloc'ed by cli_parse: the verb frees it with cli_list_free */
    int64_t n;
} cli_list;

void cli_list_free(cli_list *list);

typedef struct cli_flag {
    const char *names; /* every spelling, ", "-separated as --help prints them: "-t, --threads" */
    const char *value; /* the value's placeholder in --help: "N", "MODEL"; unused by a switch */
    cli_type type;
    void *dst; /* where the value goes; its type follows `type` */
    double lo, hi;
    int lo_open;
    const char *choices;
    int required;
    /* The value before parsing: def_num for CLI_INT and CLI_NUMBER, def_str for CLI_TEXT and CLI_CHOICE
     * (switches start at 0, lists and texts empty). --help shows it, or def_shown when that is set ("" shows
     * no default: the flag is off unless given). */
    double def_num;
    const char *def_str;
    const char *def_shown;
    const char *help; /* may hold '\n': --help indents the next line under the first */
} cli_flag;

/* What --help says about a verb besides its flags. */
typedef struct cli_verb {
    const char *name;     /* "run" */
    const char *usage;    /* what follows "usage: squeeze run ": "-m MODEL (-p PROMPT | -f FILE) [options]" */
    const char *about;    /* paragraphs printed between the usage line and the flags; may be NULL */
    const char *operands; /* placeholder of the arguments that are not flags ("REPORT.json"); NULL: none */
} cli_verb;

#define CLI_N_FLAGS(rows) ((int)(sizeof(rows) / sizeof *(rows)))

/* What cli_parse returns when the verb should go on; otherwise the verb returns cli_parse's value (0 after
 * --help was printed, 2 after a usage error was). */
enum { CLI_CONTINUE = -1 };

/* Reads argv[1..argc-1] by the verb's table flags[n_flags]. Every flag first takes its default; then flags
 * are read in order: "-t 4", "--threads 4" and "--threads=4" alike (the form with '=' for names starting with
 * "--"); a value is the next argument even when it starts with '-' ("-n -1"); a flag given again replaces its
 * earlier value, except CLI_TEXTS, which collects up to `hi` of them. "-h"/"--help" prints the help to
 * stdout. Arguments that are not flags (everything after "--" too) are operands: with v->operands they are
 * moved, in order, to argv[1..*n_operands]; without, they are errors. A missing required flag is an error.
 * Every error is printed with cli_usage_error. Lists already parsed are freed on any outcome but
 * CLI_CONTINUE. */
int cli_parse(const cli_verb *v, const cli_flag *flags, int n_flags, int argc, char **argv, int *n_operands);

/* Prints `squeeze VERB --help` (usage, about, one line per flag with its default) to out. */
void cli_print_help(const cli_verb *v, const cli_flag *flags, int n_flags, FILE *out);

/* Limits several verbs share: one definition each. */
#define CLI_MAX_THREADS 1024      /* sq_context_options.n_threads refuses more */
#define CLI_MAX_CTX     (1 << 20) /* tokens in a context; the model's own limit is checked by the library */
#define CLI_MAX_BATCH   4096      /* sequences of one forward call */
#define CLI_MAX_SEED    9007199254740992.0 /* 2^53: a seed prints and reads back exactly anywhere */

/* One row of a flag table per value type: spellings, value placeholder, destination, then what the type
 * needs, then the help; more fields (.required, .lo_open, .def_shown) may follow as designators. */
#define CLI_SWITCH_FLAG(n, var, h, ...)                                                                      \
    { .names = n, .type = CLI_SWITCH, .dst = (var), .help = h, __VA_ARGS__ }
#define CLI_TEXT_FLAG(n, val, var, h, ...)                                                                   \
    { .names = n, .value = val, .type = CLI_TEXT, .dst = (var), .help = h, __VA_ARGS__ }
#define CLI_TEXTS_FLAG(n, val, var, most, h, ...)                                                            \
    { .names = n, .value = val, .type = CLI_TEXTS, .dst = (var), .hi = (most), .help = h, __VA_ARGS__ }
#define CLI_CHOICE_FLAG(n, val, var, words, def, h, ...)                                                     \
    {                                                                                                        \
        .names = n, .value = val, .type = CLI_CHOICE, .dst = (var), .choices = words, .def_str = def,        \
        .help = h, __VA_ARGS__                                                                               \
    }
#define CLI_INT_FLAG(n, val, var, low, high, def, h, ...)                                                    \
    {                                                                                                        \
        .names = n, .value = val, .type = CLI_INT, .dst = (var), .lo = (low), .hi = (high),                  \
        .def_num = (def), .help = h, __VA_ARGS__                                                             \
    }
#define CLI_NUMBER_FLAG(n, val, var, low, high, def, h, ...)                                                 \
    {                                                                                                        \
        .names = n, .value = val, .type = CLI_NUMBER, .dst = (var), .lo = (low), .hi = (high),               \
        .def_num = (def), .help = h, __VA_ARGS__                                                             \
    }
#define CLI_LIST_FLAG(n, val, var, low, high, h, ...)                                                        \
    {                                                                                                        \
        .names = n, .value = val, .type = CLI_LIST, .dst = (var), .lo = (low), .hi = (high), .help = h,      \
        __VA_ARGS__                                                                                          \
    }

/* The flags several verbs share. */
#define CLI_FLAG_MODEL(var, req)                                                                             \
    CLI_TEXT_FLAG("-m, --model", "MODEL", var, "llama2.c .bin, GGUF file or Hugging Face directory",         \
                  .required = (req))
#define CLI_FLAG_TOKENIZER(var)                                                                              \
    CLI_TEXT_FLAG("--tokenizer", "PATH", var,                                                                \
                  "tokenizer.model, tokenizer.bin or tokenizer.json to use instead",                         \
                  .def_shown = "the model's own")
#define CLI_FLAG_THREADS(var)                                                                                \
    CLI_INT_FLAG("-t, --threads", "N", var, 1, CLI_MAX_THREADS, 0, "threads", .def_shown = "all cores")
/* shown: what the context is without the flag */
#define CLI_FLAG_CTX(var, shown)                                                                             \
    CLI_INT_FLAG("-c, --ctx, --ctx-size", "N", var, 2, CLI_MAX_CTX, 0, "context length in tokens",           \
                 .def_shown = (shown))
#define CLI_FLAG_SEED(var, def, what)                                                                        \
    CLI_INT_FLAG("-s, --seed", "S", var, -1, CLI_MAX_SEED, def, what "; -1: from the clock")
#define CLI_FLAG_JSON(var)                                                                                   \
    CLI_TEXT_FLAG("--json", "FILE", var, "also write the machine-readable report (docs/report-format.md)")
#define CLI_FLAG_LABEL(var)                                                                                  \
    CLI_TEXT_FLAG("--label", "NAME", var, "name of this variant in the report (for squeeze report)",         \
                  .def_shown = "the model's path")
#define CLI_FLAG_KV_TYPE(var)                                                                                \
    CLI_CHOICE_FLAG(                                                                                         \
        "--kv-type", "TYPE", var, "f32|f16|q8_0|q4_0", "f32",                                                \
        "how the KV cache stores keys and values; f16: half\nthe memory, q8_0 0.27x, q4_0 0.14x "            \
        "(rows of a multiple\nof 32 values)")
#define CLI_FLAG_DEVICE(var)                                                                                 \
    CLI_CHOICE_FLAG("--device", "NAME", var, "cpu|cuda", "cpu",                                              \
                    "where the model runs: cpu, or cuda (an NVIDIA GPU; builds with -DSQUEEZE_CUDA=ON)")
/* Two rows: --bos and --no-bos force whether a text starts with BOS; neither: as the tokenizer says */
#define CLI_FLAGS_BOS(bos, no_bos)                                                                           \
    CLI_SWITCH_FLAG("--bos", bos, "start the text with BOS even where the tokenizer adds none"),             \
        CLI_SWITCH_FLAG("--no-bos", no_bos,                                                                  \
                        "do not start the text with BOS even where the tokenizer adds it")
/* The format a model is written in (convert, prune): --to, or from the output's name (cli_output_format) */
#define CLI_FLAG_OUTPUT_FORMAT(var)                                                                          \
    CLI_CHOICE_FLAG("--to", "FORMAT", var, "gguf|hf|safetensors|llama2c", NULL,                              \
                    "gguf, hf (a Hugging Face directory; safetensors is\nthe same) or llama2c",              \
                    .def_shown = "from OUT: *.gguf gguf, *.bin llama2c, else hf")
#define CLI_FLAG_LORA(var)                                                                                   \
    CLI_TEXT_FLAG(                                                                                           \
        "--lora", "ADAPTER", var,                                                                            \
        "a PEFT LoRA adapter (directory or adapter_model.safetensors)\nfolded into the weights at load")
#define CLI_FLAG_NO_PROGRESS(var)                                                                            \
    CLI_SWITCH_FLAG("--no-progress", var,                                                                    \
                    "no progress bar (one is drawn on stderr only when it is a terminal)")

/* Speculative decoding flags (run, bench, serve): one table of rows and the setup they lead to. */
typedef struct cli_spec_args {
    const char *method, *draft_path, *draft_k;
    long ngram_n, tree_width;
    cli_list skip_layers;
} cli_spec_args;

#define CLI_FLAGS_SPEC(a)                                                                                    \
    CLI_CHOICE_FLAG("--spec", "METHOD", &(a)->method, "none|draft|self|ngram|tree", "none",                  \
                    "speculative decoding: draft (a draft model, --draft), self (the model with\n"           \
                    "--skip-layers skipped), ngram (prompt lookup), tree (token trees from --draft,\n"       \
                    "else --skip-layers, else n-gram lookup)"),                                              \
        CLI_TEXT_FLAG("--draft", "MODEL", &(a)->draft_path, "draft model with the target's vocabulary"),     \
        CLI_TEXT_FLAG("--draft-k", "K", &(a)->draft_k,                                                       \
                      "draft tokens per step, 1..16, or auto (adapts to acceptance)", .def_str = "4"),       \
        CLI_INT_FLAG("--ngram-n", "N", &(a)->ngram_n, 1, 8, 3, "longest suffix n-gram lookup matches"),      \
        CLI_LIST_FLAG("--skip-layers", "LIST", &(a)->skip_layers, 0, 65535,                                  \
                      "blocks the self-draft skips, e.g. 2,3"),                                              \
        CLI_INT_FLAG("--tree-width", "W", &(a)->tree_width, 2, SQ_SPEC_MAX_WIDTH, 3,                         \
                     "--spec tree: candidates per position")

/* A speculative setup: the decoder's parameters and the draft model and context they name (NULL: none). */
typedef struct cli_spec {
    sq_spec_params params;
    sq_model *draft_model;
    sq_context *draft_ctx;
} cli_spec;

/* Checks the spec flags together (a usage error, 2, for --draft without a method that uses it and the like);
 * CLI_CONTINUE when they fit. */
int cli_spec_check(const char *verb, const cli_spec_args *a);
/* Fills out from checked flags: loads the draft model (with lo, vocabulary checked against target) and
 * makes its context with the target's options co (NULL: no context; the serving engine makes its own).
 * Nothing to release after a failure. */
SQ_NODISCARD sq_error *cli_spec_open(const cli_spec_args *a, const sq_model *target,
                                     const sq_load_options *lo, const sq_context_options *co, cli_spec *out);
void cli_spec_close(cli_spec *s);
/* One stats line for a speculative run on out: tokens per target step, acceptance by draft position, the
 * draft/target time split. */
void cli_spec_print_stats(FILE *out, const cli_spec_args *a, const sq_spec_stats *st);

/* squeeze bench --spec (cmd_bench_spec.c): plain against speculative decoding of one prompt in one run. */
typedef struct cli_bench_spec_options {
    const char *model_path, *prompt, *prompt_file, *json_path, *kv_type, *device;
    cli_spec_args spec;
    int n_gen, n_reps, n_warmup, n_threads, no_progress;
    sq_sampler_params sampling;
} cli_bench_spec_options;
int cli_bench_spec(const cli_bench_spec_options *o);

/* ---------------------------------------------------------------- helpers */

/* A one-line progress bar with rate and ETA on stderr, drawn only when stderr is a terminal;
 * cli_progress_update is an sq_progress_fn (user = the bar). NULL (out of memory) is a valid bar that draws
 * nothing. */
typedef struct cli_progress cli_progress;
cli_progress *cli_progress_create(const char *label);
void cli_progress_update(void *bar, int64_t done, int64_t total);
void cli_progress_free(cli_progress *bar); /* ends the line */

/* The policy --bos / --no-bos ask for, or a usage error when both are given (CLI_CONTINUE otherwise). */
int cli_bos_policy(const char *verb, int bos, int no_bos, sq_bos_policy *policy);

/* The format --to names (already checked by the flag table), or with NULL the one out's name implies: *.gguf
 * GGUF, *.bin llama2.c, anything else a Hugging Face directory. */
sq_file_format cli_output_format(const char *out, const char *to);

/* --kv-type's value (already checked by the flag table; NULL: f32). */
sq_kv_type cli_kv_type(const char *text);

/* sq_model_load / sq_tokenizer_load that print what loading worked around, one "squeeze: warning: ..." line
 * per load warning on stderr. Every verb loads through these. */
SQ_NODISCARD sq_error *cli_load_model(const char *path, const sq_load_options *opts, sq_model **out);
SQ_NODISCARD sq_error *cli_load_tokenizer(const char *path, sq_tokenizer **out);
/* cli_load_model, then a PEFT LoRA adapter folded into the weights (--lora FILE; NULL: none). */
SQ_NODISCARD sq_error *cli_load_model_lora(const char *path, const sq_load_options *opts, const char *lora,
                                           sq_model **out);

/* After writing out: a model with low-rank (factorised) weights is squeeze's own GGUF, which llama.cpp cannot
 * load; says so on stderr ("squeeze VERB: note: ..."), and nothing for any other model. */
void cli_note_lowrank(const char *verb, const sq_model *model, const char *out);

/* A seed from the clock and the process id, below 2^53 (for --seed -1). */
uint64_t cli_clock_seed(void);
/* Calibration samples for --calib PATH: n_samples windows of seq_len tokens (at most the model's context:
 * longer is shortened, saying so) encoded with the model's tokenizer, BOS as it says, positions drawn from
 * seed (-1: the clock). Returns CLI_CONTINUE, or the exit code after printing the error. */
int cli_calib_samples(const char *verb, const sq_model *model, const char *path, int n_samples, int seq_len,
                      long seed, sq_calib_samples *out);

#endif
