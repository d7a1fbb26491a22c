/* squeeze synth: a model of a real architecture's shapes with seeded random weights, written as GGUF. */
#include <stdio.h>

#include "cli.h"

static const cli_verb verb = {
    .name = "synth",
    .usage = "--preset NAME --type f16|q8_0|q4_0|q4_k -o FILE.gguf [--dense-active]",
    .about =
        "Writes a GGUF model with the exact shapes of a real architecture and seeded random weights\n"
        "(realistic scales: activations stay finite), so that speed at real scale can be measured\n"
        "without downloading weights. It has no tokenizer: benchmark it with squeeze bench, which feeds\n"
        "random token ids. Mixture-of-experts presets (mixtral-8x7b, qwen1.5-moe-a2.7b) take\n"
        "--dense-active: a dense model with the same parameters per token instead (one FFN as wide as\n"
        "the experts a token uses), the baseline their decode speed is compared with.\n",
};

int sq_cmd_synth(int argc, char **argv) {
    const char *preset, *type, *out;
    long layers, threads, seed;
    int dense_active = 0;
    const cli_flag flags[] = {
        CLI_CHOICE_FLAG("--preset", "NAME", &preset,
                        "llama-2-7b|llama-3-8b|qwen2.5-7b|mistral-7b|mixtral-8x7b|qwen1.5-moe-a2.7b", NULL,
                        "the architecture whose shapes the model takes", .required = 1),
        CLI_CHOICE_FLAG("--type", "TYPE", &type, "f32|f16|bf16|q8_0|q4_0|q4_k", "f16",
                        "format of the weight matrices (norms stay f32)"),
        CLI_TEXT_FLAG("-o, --output", "FILE", &out, "the GGUF file to write", .required = 1),
        CLI_INT_FLAG("--layers", "N", &layers, 0, 1024, 0, "blocks; 0: the preset's"),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_SEED(&seed, 1, "seed of the weights"),
        CLI_SWITCH_FLAG("--dense-active", &dense_active,
                        "a mixture-of-experts preset as a dense model of its active parameters"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model;
    sq_error *err = sq_model_synth(&(sq_synth_options){.preset = preset,
                                                       .dtype = type,
                                                       .n_layers = (int)layers,
                                                       .n_threads = (int)threads,
                                                       .seed = seed < 0 ? cli_clock_seed() : (uint64_t)seed,
                                                       .dense_active = dense_active},
                                   &model);
    if (err) return cli_fail(err);
    err = sq_model_save(model, out, SQ_FORMAT_GGUF);
    sq_model_free(model);
    if (err) return cli_fail(err);
    fprintf(stderr, "squeeze synth: wrote %s (%s, %s)\n", out, preset, type);
    return 0;
}
