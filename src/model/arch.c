/* The table of architectures (arch.h). */
#include "model/arch.h"

#include <stdio.h>
#include <string.h>

static const sq_arch archs[] = {
    {.name = "llama",
     .hf_class = "LlamaForCausalLM",
     .gguf = "llama",
     .gguf_rope = SQ_ROPE_INTERLEAVED,
     .hf_window = SQ_HF_WINDOW_NONE,
     .qkv_bias = SQ_PART_OPTIONAL,
     .hf_attention_bias = 1,
     .qk_norm = SQ_PART_NEVER,
     .post_norms = SQ_PART_NEVER,
     .hf_act = "silu|swish"},
    {.name = "mistral",
     .hf_class = "MistralForCausalLM",
     .gguf = "llama",
     .gguf_rope = SQ_ROPE_INTERLEAVED,
     .hf_window = SQ_HF_WINDOW_ALWAYS,
     .qkv_bias = SQ_PART_OPTIONAL,
     .hf_attention_bias = 1,
     .qk_norm = SQ_PART_NEVER,
     .post_norms = SQ_PART_NEVER,
     .hf_act = "silu|swish"},
    {.name = "qwen2",
     .hf_class = "Qwen2ForCausalLM",
     .gguf = "qwen2",
     .gguf_rope = SQ_ROPE_HALVES,
     .hf_window = SQ_HF_WINDOW_OPT_IN,
     .qkv_bias = SQ_PART_ALWAYS,
     .hf_attention_bias = 0,
     .qk_norm = SQ_PART_NEVER,
     .post_norms = SQ_PART_NEVER,
     .hf_act = "silu|swish"},
    {.name = "qwen3",
     .hf_class = "Qwen3ForCausalLM",
     .gguf = "qwen3",
     .gguf_rope = SQ_ROPE_HALVES,
     .hf_window = SQ_HF_WINDOW_OPT_IN,
     .qkv_bias = SQ_PART_OPTIONAL,
     .hf_attention_bias = 1,
     .qk_norm = SQ_PART_ALWAYS,
     .post_norms = SQ_PART_NEVER,
     .hf_act = "silu|swish"},
    {.name = "gemma3",
     .hf_class = "Gemma3ForCausalLM",
     .gguf = "gemma3",
     .gguf_rope = SQ_ROPE_HALVES,
     .hf_window = SQ_HF_WINDOW_PATTERN,
     .qkv_bias = SQ_PART_OPTIONAL,
     .hf_attention_bias = 1,
     .qk_norm = SQ_PART_ALWAYS,
     .post_norms = SQ_PART_ALWAYS,
     .ffn_act = SQ_ACT_GELU_TANH,
     .embd_scale_sqrt_dim = 1,
     .hf_norm_offset = 1.0f,
     .hf_sandwich_norms = 1,
     .hf_model_type = "gemma3_text",
     .hf_act_key = "hidden_activation",
     .hf_act = "gelu_pytorch_tanh",
     .hf_tied_default = 1,
     .logit_softcap = 1,
     .gguf_swa_pattern = 6,
     .gguf_rope_local_theta = 10000.0f},
    {.name = "gemma2", /* Gemma 3 without q/k norms, with soft-capping and every 2nd layer global */
     .hf_class = "Gemma2ForCausalLM",
     .gguf = "gemma2",
     .gguf_rope = SQ_ROPE_HALVES,
     .hf_window = SQ_HF_WINDOW_PATTERN,
     .qkv_bias = SQ_PART_OPTIONAL,
     .hf_attention_bias = 1,
     .qk_norm = SQ_PART_NEVER,
     .post_norms = SQ_PART_ALWAYS,
     .ffn_act = SQ_ACT_GELU_TANH,
     .embd_scale_sqrt_dim = 1,
     .hf_norm_offset = 1.0f,
     .hf_sandwich_norms = 1,
     .hf_model_type = "gemma2",
     .hf_act_key = "hidden_activation",
     .hf_act = "gelu_pytorch_tanh",
     .hf_tied_default = 1,
     .logit_softcap = 1,
     .softcap_default = {50.0f, 30.0f},
     .gguf_swa_pattern = 2},
    {.name = "phi3",
     .hf_class = "Phi3ForCausalLM",
     .gguf = "phi3",
     .gguf_rope = SQ_ROPE_HALVES,
     .hf_window = SQ_HF_WINDOW_SET,
     .qkv_bias = SQ_PART_NEVER,
     .hf_attention_bias = 0,
     .qk_norm = SQ_PART_NEVER,
     .post_norms = SQ_PART_NEVER,
     .fused_proj = 1,
     .hf_act = "silu"},
};
#define N_ARCHS (sizeof archs / sizeof *archs)

const sq_arch *sq_arch_find(const char *name) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(name, archs[i].name)) return &archs[i];
    return NULL;
}

const sq_arch *sq_arch_find_hf(const char *hf_class) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(hf_class, archs[i].hf_class)) return &archs[i];
    return NULL;
}

const sq_arch *sq_arch_find_model_type(const char *model_type) {
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(model_type, archs[i].hf_model_type ? archs[i].hf_model_type : archs[i].name))
            return &archs[i];
    return NULL;
}

const sq_arch *sq_arch_find_gguf(const char *gguf) {
    /* a name's own row first: "mistral" files (written by other tools) read as mistral */
    const sq_arch *a = sq_arch_find(gguf);
    if (a) return a;
    for (size_t i = 0; i < N_ARCHS; i++)
        if (!strcmp(gguf, archs[i].gguf)) return &archs[i];
    return NULL;
}

static const char *list_name(const sq_arch *a, sq_arch_names what) {
    if (what == SQ_ARCH_GGUF) return a->gguf;
    if (what == SQ_ARCH_MODEL_TYPE) return a->hf_model_type ? a->hf_model_type : a->name;
    return a->hf_class;
}

const char *sq_arch_list(char *buf, size_t n, sq_arch_names what) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_ARCHS; i++) {
        const char *s = list_name(&archs[i], what);
        int seen = 0;
        for (size_t j = 0; j < i; j++) seen |= !strcmp(s, list_name(&archs[j], what));
        if (!seen && len < n) len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? ", " : "", s);
    }
    return buf;
}
