/* squeeze convert: write a model in another file format. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

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
        CLI_FLAG_OUTPUT_FORMAT(&to),
        CLI_FLAG_TOKENIZER(&tokenizer),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    sq_file_format format = cli_output_format(out, to);
    sq_model *model;
    sq_error *err = cli_load_model(in, &(sq_load_options){.tokenizer_path = tokenizer}, &model);
    if (err) return cli_fail(err);
    err = sq_model_save(model, out, format);
    if (!err) cli_note_lowrank("convert", model, out);
    sq_model_free(model);
    if (err) return cli_fail(err);
    fprintf(stderr, "squeeze convert: wrote %s (%s)\n", out,
            to                            ? to
            : format == SQ_FORMAT_GGUF    ? "gguf"
            : format == SQ_FORMAT_LLAMA2C ? "llama2c"
                                          : "hf");
    return 0;
}
