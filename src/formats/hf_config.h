/* Hugging Face config.json <-> sq_model_config, for LlamaForCausalLM, MistralForCausalLM and
 * Qwen2ForCausalLM. */
#ifndef SQ_FORMATS_HF_CONFIG_H
#define SQ_FORMATS_HF_CONFIG_H

#include <stddef.h>

#include "model/model.h"

typedef struct sq_hf_flags {
    int attention_bias;      /* q/k/v projections carry biases (Qwen2 always) */
    int tie_word_embeddings; /* lm_head reuses embed_tokens */
} sq_hf_flags;

/* Parses config.json text (path names the file in errors and warnings) as transformers (v4 and v5) reads it:
 * RoPE from rope_parameters or rope_scaling or rope_theta, sliding windows by each architecture's rules. Keys
 * that change the arithmetic in ways squeeze does not implement (hidden_act other than SiLU, a rope type
 * other than default/llama3/longrope, mlp_bias, quantization_config, windows on some layers
 * only) are errors naming the key; special-token ids outside the vocabulary are left out with a warning.
 * Sets rope_style to halves, as every Hugging Face checkpoint rotates. */
SQ_NODISCARD sq_error *sq_hf_config_parse(const char *path, const char *text, size_t len, sq_model_config *c,
                                          sq_hf_flags *flags, sq_warnings *warnings);
/* Adds the eos_token_id (one id or a list) of generation_config.json text to c's end-of-generation set; a
 * malformed file or id is a warning (the file only adds stop ids). c's vocab_size must be set. */
SQ_NODISCARD sq_error *sq_hf_generation_config_parse(const char *path, const char *text, size_t len,
                                                     sq_model_config *c, sq_warnings *warnings);
/* Writes config.json for a bound model whose weights are all of dtype `dtype` (torch_dtype). */
SQ_NODISCARD sq_error *sq_hf_config_write(const sq_model *m, sq_dtype dtype, const char *path);

#endif
