/* squeeze info: what a model file holds (architecture, dimensions, RoPE, tokenizer, every tensor). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* After width pruning blocks differ: then each block's query heads / kv heads / FFN width. */
static void print_layer_widths(const sq_model *model, int n_layers) {
    sq_layer_info first, li;
    int differ = 0;
    sq_error_free(sq_model_layer_info(model, 0, &first));
    for (int l = 1; l < n_layers && !differ; l++) {
        sq_error_free(sq_model_layer_info(model, l, &li));
        differ =
            li.n_heads != first.n_heads || li.n_kv_heads != first.n_kv_heads || li.ffn_dim != first.ffn_dim;
    }
    if (!differ) return;
    printf("per layer:       heads/kv heads/ffn dim");
    for (int l = 0; l < n_layers; l++) {
        sq_error_free(sq_model_layer_info(model, l, &li));
        printf("%s %d/%d/%d", l ? "," : "", li.n_heads, li.n_kv_heads, li.ffn_dim);
    }
    printf(" (the dimensions above are the largest)\n");
}

/* Low-rank (factorised) linear weights: one line per block that has any, each weight's rank or "dense". */
static void print_lowrank(const sq_model *model, int n_layers) {
    static const char *const names[7] = {"q", "k", "v", "o", "gate", "up", "down"};
    sq_layer_info li;
    int any = 0;
    for (int l = 0; l < n_layers; l++) {
        sq_error_free(sq_model_layer_info(model, l, &li));
        int n = 0;
        for (int i = 0; i < 7; i++) n += li.lowrank_rank[i] > 0;
        if (!n) continue;
        printf("%s block %d:", any ? "                " : "low rank:       ", l);
        for (int i = 0; i < 7; i++)
            if (li.lowrank_rank[i])
                printf(" %s r%d", names[i], li.lowrank_rank[i]);
            else
                printf(" %s dense", names[i]);
        printf("\n");
        any = 1;
    }
}

static void print_model(const char *path, const sq_model *model) {
    sq_model_info mi;
    sq_model_get_info(model, &mi);
    printf("model:           %s\n", path);
    printf("architecture:    %s\n", mi.arch);
    printf("file format:     %s\n", mi.file_format);
    printf("dimensions:      dim %d, layers %d, heads %d, kv heads %d, head dim %d, ffn dim %d\n", mi.dim,
           mi.n_layers, mi.n_heads, mi.n_kv_heads, mi.head_dim, mi.ffn_dim);
    print_layer_widths(model, mi.n_layers);
    print_lowrank(model, mi.n_layers);
    printf("vocab size:      %d\n", mi.vocab_size);
    printf("context length:  %d\n", mi.max_seq_len);
    printf("parameters:      %" PRId64 " (%.2fM)\n", mi.n_params, mi.n_params / 1e6);
    if (mi.n_experts)
        printf("experts:         %d per block, %d active per token%s; active parameters %" PRId64
               " (%.2fM)\n",
               mi.n_experts, mi.n_experts_used, mi.shared_expert ? ", plus a gated shared expert" : "",
               mi.n_active_params, mi.n_active_params / 1e6);
    printf("weight bytes:    %zu (%.2f MiB)\n", mi.weight_bytes, mi.weight_bytes / 1048576.0);
    printf("rope:            theta %g, %s pairs", mi.rope_theta, mi.rope_style);
    if (mi.rope_dims != mi.head_dim)
        printf(", partial: the first %d of %d dims of each head", mi.rope_dims, mi.head_dim);
    if (!strcmp(mi.rope_scaling, "llama3"))
        printf(", llama3 scaling (factor %g, low %g, high %g, original context %d)", mi.rope_scaling_factor,
               mi.rope_low_freq_factor, mi.rope_high_freq_factor, mi.rope_original_max_pos);
    if (!strcmp(mi.rope_scaling, "longrope"))
        printf(", longrope scaling (attention factor %g; long factors in contexts over %d)",
               mi.rope_attn_factor, mi.rope_original_max_pos);
    printf("\n");
    printf("norm epsilon:    %g\n", mi.norm_eps);
    if (mi.attn_softcap > 0 || mi.final_softcap > 0)
        printf("soft-capping:    attention scores %g, final logits %g (0: none)\n", mi.attn_softcap,
               mi.final_softcap);
    if (mi.n_global_layers) {
        printf("attention:       %d local layers (window %d, rope theta %g), %d global (layers",
               mi.n_layers - mi.n_global_layers, mi.sliding_window, mi.rope_local_theta, mi.n_global_layers);
        sq_layer_info li;
        for (int l = 0; l < mi.n_layers; l++) {
            sq_error_free(sq_model_layer_info(model, l, &li));
            if (li.global) printf(" %d", l);
        }
        printf(")\n");
    } else if (mi.sliding_window) {
        printf("sliding window:  %d\n", mi.sliding_window);
    } else {
        printf("sliding window:  none\n");
    }
    sq_layer_info b0;
    sq_error_free(sq_model_layer_info(model, 0, &b0));
    printf("block:           %s%s%s%s", strcmp(mi.ffn_act, "silu") ? "GeGLU (tanh GELU)" : "SwiGLU",
           b0.has_qkv_bias ? ", q/k/v biases" : "", b0.has_qk_norm ? ", q/k norms" : "",
           b0.has_post_norms ? ", post-norms" : "");
    if (mi.embd_scale != 1.0f) printf(", embeddings x %g", mi.embd_scale);
    if (mi.attn_scalar > 0) printf(", scores / sqrt(%g)", mi.attn_scalar);
    printf("\n");
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

static const cli_verb verb = {
    .name = "info",
    .usage = "-m MODEL [--tokenizer PATH]",
    .about =
        "Prints a model's architecture, file format, dimensions, parameter count (a mixture of experts:\n"
        "experts per block, active per token, active parameters), weight bytes, RoPE settings, tokenizer\n"
        "and end-of-generation ids, the rank of every low-rank (factorised) linear weight, then one line "
        "per\n"
        "tensor (name, dtype, shape, bytes).\n",
};

int sq_cmd_info(int argc, char **argv) {
    const char *model_path, *tokenizer;
    const cli_flag flags[] = {CLI_FLAG_MODEL(&model_path, 1), CLI_FLAG_TOKENIZER(&tokenizer)};
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model;
    sq_error *err = cli_load_model(model_path, &(sq_load_options){.tokenizer_path = tokenizer}, &model);
    if (err) return cli_fail(err);
    print_model(model_path, model);
    sq_model_free(model);
    return 0;
}
