/* The architectures squeeze runs, one row each: every fact that differs between families and that a format
 * reader, writer or the model binder needs, so that no code outside this table compares architecture names.
 *
 * Families share the Llama block (RMSNorm, attention with RoPE, SwiGLU FFN); a row says how the family's
 * checkpoints are named and which optional parts its blocks carry. What a loaded model actually computes is
 * read from its tensors (q/k biases, q/k norms are present or absent) and sq_model_config, never from the
 * name. */
#ifndef SQ_MODEL_ARCH_H
#define SQ_MODEL_ARCH_H

#include <stddef.h>

#include "core/rope.h"

/* Where Hugging Face configs put sliding-window attention (transformers' modeling code). */
typedef enum sq_hf_window {
    SQ_HF_WINDOW_NONE,    /* the family has none (Llama) */
    SQ_HF_WINDOW_ALWAYS,  /* sliding_window on every layer, 4096 when absent, null: off (Mistral) */
    SQ_HF_WINDOW_PATTERN, /* sliding_window on the layers layer_types (or sliding_window_pattern: every n-th
                           * global) names; global ones use rope_theta, sliding ones rope_local_base_freq
                           * (Gemma 3) */
    SQ_HF_WINDOW_OPT_IN, /* only with use_sliding_window, on layer_types / max_window_layers (Qwen2, Qwen3) */
    SQ_HF_WINDOW_SET,    /* sliding_window on every layer when set; absent or null: off (Phi-3) */
} sq_hf_window;

/* The FFN's gated activation: down(act(gate(x)) * up(x)). */
typedef enum sq_ffn_act {
    SQ_ACT_SILU,      /* SwiGLU (Llama, Qwen) */
    SQ_ACT_GELU_TANH, /* GeGLU with tanh-approximated GELU (Gemma: gelu_pytorch_tanh) */
} sq_ffn_act;

/* A part of the block a family either always has, never has, or may have. */
typedef enum sq_arch_part { SQ_PART_NEVER, SQ_PART_ALWAYS, SQ_PART_OPTIONAL } sq_arch_part;

typedef struct sq_arch {
    const char *name;        /* sq_model_config.arch: "llama", "mistral", "qwen2", "qwen3" */
    const char *hf_class;    /* config.json "architectures": "Qwen3ForCausalLM" */
    const char *gguf;        /* general.architecture written to GGUF ("mistral" is written as "llama") */
    sq_rope_style gguf_rope; /* pairing of the q/k rows in GGUF files of this architecture */
    sq_hf_window hf_window;
    sq_arch_part qkv_bias; /* attn_q/k/v biases: Qwen2 always (no config key), others per attention_bias;
                            * config.json writers check it (binding accepts biases in any family) */
    int hf_attention_bias; /* config.json has an attention_bias key */
    sq_arch_part qk_norm;  /* per-head RMSNorm of queries and keys before RoPE (Qwen3, Gemma 3) */
    sq_arch_part
        post_norms; /* RMSNorm of the attention and FFN outputs before their residual adds (Gemma 3) */
    /* What the family computes, copied into sq_model_config when a model is bound: */
    sq_ffn_act ffn_act;
    int embd_scale_sqrt_dim; /* embeddings multiplied by sqrt(dim) (Gemma) */
    /* Files store q/k/v as one tensor [(n_heads + 2 n_kv_heads) head_dim][dim] (HF qkv_proj, GGUF attn_qkv)
     * and gate/up as one [2 ffn_dim][dim], gate rows first (HF gate_up_proj, GGUF ffn_up) (Phi-3). Loaders
     * split them into the engine's tensors, writers join them again (formats/fused_tensors.h). */
    int fused_proj;
    /* attn_logit_softcapping and final_logit_softcapping are facts of the family (Gemma 2 and 3 configs; GGUF
     * {arch}.attn_logit_softcapping, .final_logit_softcapping): read and written back. Elsewhere a non-zero
     * value is refused naming the key. */
    int logit_softcap;
    float softcap_default[2]; /* attention, final caps when config.json or GGUF omits the key (Gemma 2: 50,
                               * 30, as transformers and llama.cpp default them) */
    /* Hugging Face checkpoints: */
    float hf_norm_offset;      /* added to every RMSNorm weight on load (Gemma stores w for x * (1 + w)); GGUF
                                * holds the sum, as llama.cpp's converter writes it */
    int hf_sandwich_norms;     /* post_attention_layernorm is the attention's post-norm and the FFN's norm is
                                * pre_feedforward_layernorm (Gemma), not Llama's pre-FFN post_attention_layernorm
                                */
    const char *hf_model_type; /* config.json model_type written (NULL: name) */
    const char *hf_act_key;    /* the config key naming the activation (NULL: hidden_act) */
    const char *hf_act;        /* its values that mean ffn_act, "|"-separated */
    int hf_tied_default;       /* tie_word_embeddings when the config omits it (Gemma: true) */
    /* GGUF files of the family, where llama.cpp hard-codes what the file does not say (llama-model.cpp): */
    int gguf_swa_pattern;        /* every n-th layer global, the others sliding (Gemma 3: 6, Gemma 2: 2); 0:
                                  * uniform. Also the default of a Hugging Face config without layer_types or
                                  * sliding_window_pattern */
    float gguf_rope_local_theta; /* RoPE base of the sliding layers (Gemma 3: 10000); 0: the global one, in
                                  * GGUF and Hugging Face files alike (Gemma 2 has one rotary embedding) */
} sq_arch;

/* The row of an architecture name (sq_model_config.arch); NULL when squeeze has none. */
const sq_arch *sq_arch_find(const char *name);
/* The row whose Hugging Face class is hf_class; NULL when none. */
const sq_arch *sq_arch_find_hf(const char *hf_class);
/* The row whose config.json model_type is model_type ("gemma3_text"); NULL when none. */
const sq_arch *sq_arch_find_model_type(const char *model_type);
/* The row a GGUF general.architecture value reads as; NULL when none. */
const sq_arch *sq_arch_find_gguf(const char *gguf);
/* Which names sq_arch_list lists. */
typedef enum sq_arch_names {
    SQ_ARCH_HF_CLASS,   /* "LlamaForCausalLM, MistralForCausalLM, ..." */
    SQ_ARCH_GGUF,       /* "llama, qwen2, ..." (no repeats) */
    SQ_ARCH_MODEL_TYPE, /* "llama, mistral, ..., gemma3_text" */
} sq_arch_names;
/* Writes the names of every row, ", "-separated, into buf[n], for errors naming what is supported; returns
 * buf. */
const char *sq_arch_list(char *buf, size_t n, sq_arch_names what);

#endif
