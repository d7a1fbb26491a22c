/* The in-memory model: configuration, the list of tensors, and per-layer views into them.
 *
 * Format loaders (formats/) fill cfg and add tensors under canonical GGUF-style names; sq_model_bind then
 * resolves the names into layers and checks every shape against the config. Per-layer head counts and FFN
 * widths come from the weights, so compression may reshape or drop layers without touching this code. */
#ifndef SQ_MODEL_MODEL_H
#define SQ_MODEL_MODEL_H

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "core/warnings.h"
#include "squeeze.h"

typedef enum sq_rope_style {
    SQ_ROPE_INTERLEAVED, /* rotates pairs (2i, 2i+1): llama2.c, GGUF llama */
    SQ_ROPE_HALVES       /* rotates (i, i + head_dim/2): Hugging Face, GGUF qwen2 ("neox") */
} sq_rope_style;

typedef enum sq_rope_scaling_type { SQ_ROPE_SCALING_NONE, SQ_ROPE_SCALING_LLAMA3 } sq_rope_scaling_type;

typedef struct sq_rope_scaling {
    sq_rope_scaling_type type;
    float factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
} sq_rope_scaling;

/* More end-of-generation ids than any model names (Llama 3.1 Instruct names three). */
#define SQ_MAX_EOS_IDS 16

typedef struct sq_model_config {
    char arch[16]; /* "llama", "mistral", "qwen2" */
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size, max_seq_len;
    float rope_theta, norm_eps;
    sq_rope_style rope_style;
    sq_rope_scaling rope_scaling;
    int sliding_window;  /* 0: full attention */
    int tied_embeddings; /* no output.weight: the output projection reuses token_embd.weight */
    int bos_id;          /* from the model's own config; -1 when it names none */
    /* end-of-generation ids (sq_model_eos_ids): the primary EOS first, no duplicates, each < vocab_size */
    int32_t eos_ids[SQ_MAX_EOS_IDS];
    int n_eos_ids;
} sq_model_config;

typedef struct sq_layer {
    const sq_tensor *attn_norm, *wq, *wk, *wv, *wo;
    const sq_tensor *bq, *bk, *bv; /* NULL when the architecture has no q/k/v biases */
    const sq_tensor *ffn_norm, *w_gate, *w_up, *w_down;
    int n_heads, n_kv_heads, ffn_dim; /* this layer's own, from its weights */
} sq_layer;

struct sq_model {
    sq_model_config cfg;
    char file_format[16]; /* "llama2c", "safetensors", "gguf" */
    sq_tensor *tensors;
    int n_tensors, cap_tensors;
    const sq_tensor *tok_embd, *out_norm, *output; /* output == tok_embd when tied */
    sq_layer *layers;
    sq_tokenizer *tokenizer;
    sq_mapped_file **files;
    int n_files;
    void **buffers; /* host memory the model owns (converted or realigned tensors) */
    int n_buffers;
    sq_warnings warnings; /* what loading worked around (sq_model_warning) */
};

/* Canonical tensor names. */
#define SQ_NAME_TOK_EMBD "token_embd.weight"
#define SQ_NAME_OUT_NORM "output_norm.weight"
#define SQ_NAME_OUTPUT   "output.weight"
/* Per-layer suffixes: "blk.%d." followed by one of these. */
#define SQ_NAME_ATTN_NORM   "attn_norm.weight"
#define SQ_NAME_ATTN_Q      "attn_q.weight"
#define SQ_NAME_ATTN_K      "attn_k.weight"
#define SQ_NAME_ATTN_V      "attn_v.weight"
#define SQ_NAME_ATTN_OUT    "attn_output.weight"
#define SQ_NAME_ATTN_Q_BIAS "attn_q.bias"
#define SQ_NAME_ATTN_K_BIAS "attn_k.bias"
#define SQ_NAME_ATTN_V_BIAS "attn_v.bias"
#define SQ_NAME_FFN_NORM    "ffn_norm.weight"
#define SQ_NAME_FFN_GATE    "ffn_gate.weight"
#define SQ_NAME_FFN_UP      "ffn_up.weight"
#define SQ_NAME_FFN_DOWN    "ffn_down.weight"

/* An empty model with config fields set to "unknown" (-1 ids, zero sizes). */
sq_model *sq_model_new(void);
/* Appends a tensor (data is borrowed from a mapped file or a model buffer). Rejects duplicate names and
 * shapes whose byte size disagrees with nbytes. */
SQ_NODISCARD sq_error *sq_model_add_tensor(sq_model *m, const char *name, sq_dtype dtype, int ndim,
                                           const int64_t *shape, void *data, size_t nbytes,
                                           sq_storage storage);
/* 64-byte aligned memory owned (and freed) by the model. */
void *sq_model_alloc(sq_model *m, size_t nbytes);
/* Keeps a mapped file alive as long as the model. */
SQ_NODISCARD sq_error *sq_model_keep_file(sq_model *m, sq_mapped_file *f);
const sq_tensor *sq_model_find_tensor(const sq_model *m, const char *name);
/* Adds id to the end-of-generation set unless it is already there or outside [0, vocab_size) (sources check
 * their ids first and warn about bad ones). A set already full is reported in w, naming `source`. */
SQ_NODISCARD sq_error *sq_model_add_eos(sq_model_config *c, int id, sq_warnings *w, const char *source);
/* Resolves layers and checks every tensor shape against cfg; names the offending tensor on failure. */
SQ_NODISCARD sq_error *sq_model_bind(sq_model *m, const char *source_path);

#endif
