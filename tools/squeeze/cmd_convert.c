/* squeeze convert: write a model in another file format. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: squeeze convert -m MODEL -o OUT [--to gguf|hf|llama2c] [--tokenizer PATH]\n\n"
        "Writes MODEL (llama2.c .bin, GGUF file or Hugging Face directory) in another format. Without --to\n"
        "the format follows OUT: *.gguf -> GGUF, *.bin -> llama2.c, anything else -> a Hugging Face\n"
        "directory (config.json, model.safetensors, tokenizer files). Weights keep their dtype; llama2.c\n"
        "checkpoints are fp32, and safetensors cannot hold quantized (q8_0/q4_0/q4_1) weights.\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int sq_cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *to = NULL;
    sq_load_options opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(in = cli_flag_value("convert", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (!(out = cli_flag_value("convert", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--to")) {
            if (!(to = cli_flag_value("convert", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (!(opts.tokenizer_path = cli_flag_value("convert", argc, argv, &i))) return 2;
        } else {
            return cli_usage_error("convert", "unknown option %s", argv[i]);
        }
    }
    if (!in || !out) return cli_usage_error("convert", "-m MODEL and -o OUT are required");
    sq_file_format format;
    if (!to) to = ends_with(out, ".gguf") ? "gguf" : ends_with(out, ".bin") ? "llama2c" : "hf";
    if (!strcmp(to, "gguf"))
        format = SQ_FORMAT_GGUF;
    else if (!strcmp(to, "llama2c"))
        format = SQ_FORMAT_LLAMA2C;
    else if (!strcmp(to, "hf") || !strcmp(to, "safetensors"))
        format = SQ_FORMAT_SAFETENSORS;
    else
        return cli_usage_error("convert", "--to must be gguf, hf or llama2c, not '%s'", to);

    sq_model *model;
    sq_error *err = cli_load_model(in, &opts, &model);
    if (err) return cli_fail(err);
    err = sq_model_save(model, out, format);
    sq_model_free(model);
    if (err) return cli_fail(err);
    fprintf(stderr, "squeeze convert: wrote %s (%s)\n", out, to);
    return 0;
}
