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

/* Parses config.json text (path names the file in errors). Sets rope_style to halves, as every Hugging Face
 * checkpoint rotates. */
sq_error *sq_hf_config_parse(const char *path, const char *text, size_t len, sq_model_config *c,
                             sq_hf_flags *flags);
/* Writes config.json for a bound model whose weights are all of dtype `dtype` (torch_dtype). */
sq_error *sq_hf_config_write(const sq_model *m, sq_dtype dtype, const char *path);

#endif
