/* squeeze: the command-line front end. Each verb is a thin client of the library (include/squeeze.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verb;

static const verb verbs[] = {
    {"run", sq_cmd_run, "generate text from a prompt"},
    {"info", sq_cmd_info, "print a model's architecture, tensors and tokenizer"},
    {"convert", sq_cmd_convert, "write a model in another format (llama2c, safetensors directory, GGUF)"},
    {"compress", sq_cmd_compress, "run a compression recipe (prune, quantize) and measure every step"},
    {"quantize", sq_cmd_quantize, "store weight matrices in llama.cpp's block formats (q4_k_m, q8_0, ...)"},
    {"imatrix", sq_cmd_imatrix,
     "per-channel activation importance of each weight matrix, for quantize --imatrix"},
    {"tokenize", sq_cmd_tokenize, "print the token ids of a text"},
    {"logits", sq_cmd_logits, "write the logits of a token sequence (for reference checks)"},
    {"ppl", sq_cmd_ppl, "perplexity and KL divergence on a text file"},
    {"eval", sq_cmd_eval, "zero-shot multiple-choice tasks"},
    {"bench", sq_cmd_bench, "time to first token, time per output token, throughput, memory"},
    {"synth", sq_cmd_synth,
     "write a model of a real architecture's shapes with random weights (llama-2-7b, ...)"},
    {"report", sq_cmd_report, "combine evaluation reports into a table and a plot"},
    {"finetune", sq_cmd_finetune, "LoRA recovery training with distillation (PEFT adapters, --merge)"},
    {"prune", sq_cmd_prune, "remove weights or whole blocks (magnitude, N:M, depth pruning)"},
    {"chat-template", sq_cmd_chat_template, "render a conversation with a model's chat template"},
    {"spec-search", sq_cmd_spec_search, "find blocks a self-speculative draft can skip"},
    {"serve", sq_cmd_serve, "an OpenAI-compatible HTTP server (continuous batching, prefix caching)"},
    {"chat", sq_cmd_chat, "an interactive chat in the terminal with the model's chat template"},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: squeeze <command> [options]   (squeeze <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        fprintf(out, "  %-13s %s\n", verbs[i].name, verbs[i].summary);
}

int main(int argc, char **argv) {
    /* The library quietly keeps its best set when SQ_KERNELS names one this CPU lacks; a run asked for by
     * name must not measure another set, so the CLI refuses it. */
    const char *kernels = getenv("SQ_KERNELS");
    if (kernels && *kernels) {
        sq_error *err = sq_cpu_force_kernels(kernels);
        if (err) {
            fprintf(stderr, "squeeze: SQ_KERNELS: %s\n", sq_error_message(err));
            sq_error_free(err);
            return 2;
        }
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* "squeeze help VERB" is "squeeze VERB --help": one help path */
    int help = !strcmp(argv[1], "help");
    if ((help && argc == 2) || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    const char *name = help ? argv[2] : argv[1];
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (!strcmp(name, verbs[i].name))
            return help ? verbs[i].run(2, (char *[]){argv[2], "--help", NULL})
                        : verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "squeeze: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
