/* squeeze convert: write a model in another file format. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static const cli_verb verb = {
    .name = "convert",
    .usage = "-m MODEL -o OUT [--to gguf|hf|llama2c] [--tokenizer PATH]",
    .about =
        "Writes MODEL (llama2.c .bin, GGUF file or Hugging Face directory) in another format: a GGUF\n"
        "file, a Hugging Face directory (config.json, model.safetensors, tokenizer files) or a llama2.c\n"
        "checkpoint. Weights keep their dtype; llama2.c checkpoints are fp32, and safetensors cannot hold\n"
        "quantized (q8_0/q4_0/q4_1) weights.\n",
};

int sq_cmd_convert(int argc, char **argv) {
    const char *in, *out, *to, *tokenizer;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&in, 1),
        CLI_TEXT_FLAG("-o, --output", "OUT", &out, "where to write the model", .required = 1),
        CLI_CHOICE_FLAG("--to", "FORMAT", &to, "gguf|hf|safetensors|llama2c", NULL,
                        "gguf, hf (a Hugging Face directory; safetensors is\nthe same) or llama2c",
                        .def_shown = "from OUT: *.gguf gguf, *.bin llama2c, else hf"),
        CLI_FLAG_TOKENIZER(&tokenizer),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (!to) to = ends_with(out, ".gguf") ? "gguf" : ends_with(out, ".bin") ? "llama2c" : "hf";
    sq_file_format format = !strcmp(to, "gguf")      ? SQ_FORMAT_GGUF
                            : !strcmp(to, "llama2c") ? SQ_FORMAT_LLAMA2C
                                                     : SQ_FORMAT_SAFETENSORS;
    sq_model *model;
    sq_error *err = cli_load_model(in, &(sq_load_options){.tokenizer_path = tokenizer}, &model);
    if (err) return cli_fail(err);
    err = sq_model_save(model, out, format);
    sq_model_free(model);
    if (err) return cli_fail(err);
    fprintf(stderr, "squeeze convert: wrote %s (%s)\n", out, to);
    return 0;
}
