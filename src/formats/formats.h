/* Model file formats. Each loader fills an empty sq_model (config, tensors under canonical names, and the
 * tokenizer when the file carries one); each writer serialises a bound model. All validate every size and
 * offset against the file before using it and name the file and field in their errors. */
#ifndef SQ_FORMATS_FORMATS_H
#define SQ_FORMATS_FORMATS_H

#include "model/model.h"

/* llama2.c checkpoint: 7 int32 header + fp32 arrays (see ../shared/README.md). Interleaved RoPE. */
SQ_NODISCARD sq_error *sq_llama2c_load(const char *path, sq_model *m);
SQ_NODISCARD sq_error *sq_llama2c_save(const sq_model *m, const char *path);

/* GGUF v2/v3: metadata, vocabulary (tokenizer.ggml.*), tensors in F32/F16/BF16/Q8_0/Q4_0/Q4_1. */
SQ_NODISCARD sq_error *sq_gguf_load(const char *path, sq_model *m);
SQ_NODISCARD sq_error *sq_gguf_save(const sq_model *m, const char *path);

/* Hugging Face directory: config.json, model.safetensors or sharded model-*-of-*.safetensors with
 * model.safetensors.index.json, tokenizer.json (+ tokenizer_config.json). */
SQ_NODISCARD sq_error *sq_hf_load(const char *dir, sq_model *m);
SQ_NODISCARD sq_error *sq_hf_save(const sq_model *m, const char *dir);

#endif
