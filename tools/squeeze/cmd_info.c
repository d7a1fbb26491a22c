/* squeeze info: what a model file holds (architecture, dimensions, RoPE, tokenizer, every tensor). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: squeeze info -m MODEL [--tokenizer PATH]\n\n"
            "Prints a model's architecture, file format, dimensions, parameter count, weight bytes, RoPE\n"
            "settings, tokenizer and end-of-generation ids, then one line per tensor (name, dtype, shape,\n"
            "bytes).\n"
            "MODEL is a llama2.c .bin, a GGUF file or a Hugging Face directory.\n");
}

static void print_model(const char *path, const sq_model *model) {
    sq_model_info mi;
    sq_model_get_info(model, &mi);
    printf("model:           %s\n", path);
    printf("architecture:    %s\n", mi.arch);
    printf("file format:     %s\n", mi.file_format);
    printf("dimensions:      dim %d, layers %d, heads %d, kv heads %d, head dim %d, ffn dim %d\n", mi.dim,
           mi.n_layers, mi.n_heads, mi.n_kv_heads, mi.head_dim, mi.ffn_dim);
    printf("vocab size:      %d\n", mi.vocab_size);
    printf("context length:  %d\n", mi.max_seq_len);
    printf("parameters:      %" PRId64 " (%.2fM)\n", mi.n_params, mi.n_params / 1e6);
    printf("weight bytes:    %zu (%.2f MiB)\n", mi.weight_bytes, mi.weight_bytes / 1048576.0);
    printf("rope:            theta %g, %s pairs", mi.rope_theta, mi.rope_style);
    if (!strcmp(mi.rope_scaling, "llama3"))
        printf(", llama3 scaling (factor %g, low %g, high %g, original context %d)", mi.rope_scaling_factor,
               mi.rope_low_freq_factor, mi.rope_high_freq_factor, mi.rope_original_max_pos);
    printf("\n");
    printf("norm epsilon:    %g\n", mi.norm_eps);
    if (mi.sliding_window)
        printf("sliding window:  %d\n", mi.sliding_window);
    else
        printf("sliding window:  none\n");
    printf("tied embeddings: %s\n", mi.tied_embeddings ? "yes" : "no");
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (tok)
        printf("tokenizer:       %s, %d tokens, bos %d, eos %d\n", sq_tokenizer_kind(tok),
               sq_tokenizer_vocab_size(tok), sq_tokenizer_bos(tok), sq_tokenizer_eos(tok));
    else
        printf("tokenizer:       none\n");
    int n_eos;
    const int32_t *eos = sq_model_eos_ids(model, &n_eos);
    printf("eos ids:         ");
    for (int i = 0; i < n_eos; i++) printf("%s%d", i ? ", " : "", eos[i]);
    printf("%s\n", n_eos ? "" : "none");
    int n = sq_model_n_tensors(model);
    printf("tensors:         %d\n", n);
    for (int i = 0; i < n; i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(model, i, &ti);
        char shape[96] = "";
        for (int d = 0; d < ti.ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%" PRId64, d ? ", " : "",
                     ti.shape[d]);
        printf("  %-28s %-5s [%s] %zu\n", ti.name, ti.dtype, shape, ti.nbytes);
    }
}

int sq_cmd_info(int argc, char **argv) {
    const char *model_path = NULL;
    sq_load_options opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(model_path = cli_flag_value("info", argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--tokenizer")) {
            if (!(opts.tokenizer_path = cli_flag_value("info", argc, argv, &i))) return 2;
        } else {
            return cli_usage_error("info", "unknown option %s", argv[i]);
        }
    }
    if (!model_path) return cli_usage_error("info", "-m MODEL is required");
    sq_model *model;
    sq_error *err = cli_load_model(model_path, &opts, &model);
    if (err) return cli_fail(err);
    print_model(model_path, model);
    sq_model_free(model);
    return 0;
}
