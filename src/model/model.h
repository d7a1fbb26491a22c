/* The in-memory model: configuration, the tensors under canonical GGUF-style names, and the layers bound from
 * them.
 *
 * Format loaders (formats/) fill cfg and add tensors; sq_model_bind resolves the names into layers, reading
 * each layer's head counts and FFN width from its own weight shapes, and checks every shape. Compression
 * changes a bound model through sq_model_edit_tensors and sq_model_set_layers (squeeze.h): each applies its
 * change, binds again and, when anything fails, restores the model exactly as it was.
 *
 * Tensors keep their address for the model's life: each sq_tensor is allocated on its own, so layers (and any
 * caller) may hold pointers to them across additions, and replacing a tensor's data keeps its sq_tensor in
 * place. A tensor's data is either borrowed from a mapped file (SQ_STORAGE_MAPPED, read-only: never written;
 * an edit puts new data beside it) or host memory the model owns and frees with the tensor
 * (SQ_STORAGE_HOST). */
#ifndef SQ_MODEL_MODEL_H
#define SQ_MODEL_MODEL_H

#include "core/mapped_file.h"
#include "core/rope.h"
#include "core/tensor.h"
#include "core/warnings.h"
#include "model/arch.h"
#include "squeeze.h"

typedef enum sq_rope_scaling_type {
    SQ_ROPE_SCALING_NONE,
    SQ_ROPE_SCALING_LLAMA3,
    SQ_ROPE_SCALING_LONGROPE, /* Phi-3 "su"/"longrope" (LongRoPE, Ding et al. 2024) */
} sq_rope_scaling_type;

typedef struct sq_rope_scaling {
    sq_rope_scaling_type type;
    float factor, low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_pos; /* llama3, longrope: the pretraining context (original_max_position_embeddings) */
} sq_rope_scaling;

/* Rotated pairs a longrope factor list may have (rope_dims up to 512). */
#define SQ_ROPE_MAX_PAIRS 256

/* LongRoPE's per-pair factors (rope_scaling.type SQ_ROPE_SCALING_LONGROPE): each pair's frequency is divided
 * by short_factor[i], or by long_factor[i] in a context longer than original_max_pos (the rule llama.cpp
 * applies to n_ctx: fixed for a context's life, so every cached key is rotated alike); rotated queries and
 * keys are multiplied by attn_factor (transformers scales cos and sin: scores grow by attn_factor^2). */
typedef struct sq_longrope {
    float attn_factor;
    float short_factor[SQ_ROPE_MAX_PAIRS], long_factor[SQ_ROPE_MAX_PAIRS]; /* [rope_dims/2] used */
} sq_longrope;

/* Layers a model may have (the binder refuses more). */
#define SQ_MAX_LAYERS 4096

/* The most experts one token may use (real models use 1 to 8). */
#define SQ_MOE_MAX_TOPK 64

/* More end-of-generation ids than any model names (Llama 3.1 Instruct names three). */
#define SQ_MAX_EOS_IDS 16

typedef struct sq_model_config {
    char arch[16]; /* a row of model/arch.c: "llama", "mistral", "qwen2", "qwen3" */
    int dim, n_layers, head_dim, vocab_size, max_seq_len;
    /* A loader sets the file's values; once bound, the largest over the layers (each layer's own are in
     * sq_layer: they differ after width pruning). */
    int n_heads, n_kv_heads, ffn_dim;
    float rope_theta, norm_eps;
    sq_rope_style rope_style;
    /* The leading dims of each head RoPE rotates, the rest passing through unrotated (partial rotary:
     * Hugging Face's partial_rotary_factor, GGUF rope.dimension_count; Phi-4-mini 96 of 128). Frequencies
     * are theta^(-2i/rope_dims) and the halves pairing is (i, i + rope_dims/2), as transformers' rotate_half
     * on the first rope_dims and llama.cpp's ggml_rope with n_dims < head_dim both do. A loader may leave 0:
     * binding sets head_dim. */
    int rope_dims;
    sq_rope_scaling rope_scaling;
    sq_longrope longrope; /* rope_scaling.type SQ_ROPE_SCALING_LONGROPE only */
    int sliding_window;   /* 0: full attention */
    /* Interleaved local and global attention (Gemma 3): a set bit marks a global layer, which ignores the
     * window and uses rope_theta and rope_scaling; the others slide and use rope_local_theta unscaled. All
     * clear: every layer alike (the window, if any, everywhere; rope_theta everywhere). Bit l is
     * global_layers[l / 64] >> (l % 64). */
    uint64_t global_layers[SQ_MAX_LAYERS / 64];
    float rope_local_theta; /* 0 when no layer is local */
    sq_ffn_act ffn_act;     /* set from the architecture's row when bound */
    float embd_scale;       /* embeddings are multiplied by it; 1: not scaled (bound from the row) */
    float attn_scalar; /* scores are q.k / sqrt(attn_scalar); 0: head_dim (Gemma's query_pre_attn_scalar) */
    /* Gemma 2 style soft-capping, x -> cap tanh(x / cap), of the attention scores (attn_logit_softcapping)
     * and of the output logits (final_logit_softcapping); 0: none */
    float attn_softcap, final_softcap;
    int tied_embeddings; /* no output.weight: the output projection reuses token_embd.weight */
    int bos_id;          /* from the model's own config; -1 when it names none */
    /* end-of-generation ids (sq_model_eos_ids): the primary EOS first, no duplicates, each < vocab_size */
    int32_t eos_ids[SQ_MAX_EOS_IDS];
    int n_eos_ids;
    /* Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE; 0 experts: dense). A block with a router sends each
     * token to the n_experts_used experts of highest router softmax and sums their outputs weighted by those
     * probabilities, renormalised to sum 1 when expert_norm_topk (Mixtral, Qwen3-MoE). */
    int n_experts;      /* GGUF {arch}.expert_count; HF num_local_experts / num_experts */
    int n_experts_used; /* top-k: GGUF {arch}.expert_used_count; HF num_experts_per_tok */
    int expert_norm_topk;
} sq_model_config;

/* A block's linear weights, in one order (the forward pass's matmuls, low-rank factors). */
typedef enum sq_linear {
    SQ_LINEAR_Q,
    SQ_LINEAR_K,
    SQ_LINEAR_V,
    SQ_LINEAR_O,
    SQ_LINEAR_GATE,
    SQ_LINEAR_UP,
    SQ_LINEAR_DOWN,
    SQ_N_LINEAR
} sq_linear;

/* One transformer block. Shapes are outermost first; a linear layer is [out][in]. */
typedef struct sq_layer {
    const sq_tensor *attn_norm; /* [dim] */
    const sq_tensor *wq;        /* [n_heads*head_dim][dim] */
    const sq_tensor *wk;        /* [n_kv_heads*head_dim][dim] */
    const sq_tensor *wv;        /* [n_kv_heads*head_dim][dim] */
    const sq_tensor *wo;        /* [dim][n_heads*head_dim] */
    const sq_tensor *bq;        /* [n_heads*head_dim]; NULL when the block has no q/k/v biases */
    const sq_tensor *bk;        /* [n_kv_heads*head_dim]; NULL likewise */
    const sq_tensor *bv;        /* [n_kv_heads*head_dim]; NULL likewise */
    const sq_tensor *q_norm;    /* [head_dim] RMSNorm of each query head before RoPE (Qwen3); or NULL */
    const sq_tensor *k_norm;    /* [head_dim] likewise of each key head; both or neither */
    const sq_tensor
        *attn_post_norm; /* [dim] RMSNorm of the attention output before the residual add (Gemma 3) */
    const sq_tensor *ffn_post_norm; /* [dim] likewise of the FFN output; both or neither */
    const sq_tensor *ffn_norm;      /* [dim] */
    const sq_tensor *w_gate;        /* [ffn_dim][dim] */
    const sq_tensor *w_up;          /* [ffn_dim][dim] */
    const sq_tensor *w_down;        /* [dim][ffn_dim] */
    /* A mixture-of-experts block has these instead of w_gate/w_up/w_down (NULL in a dense block): */
    const sq_tensor *ffn_gate_inp;       /* [n_experts][dim] the router */
    const sq_tensor *ffn_gate_exps;      /* [n_experts][ffn_dim][dim] expert e's gate is matrix e */
    const sq_tensor *ffn_up_exps;        /* [n_experts][ffn_dim][dim] */
    const sq_tensor *ffn_down_exps;      /* [n_experts][dim][ffn_dim] */
    const sq_tensor *ffn_gate_shexp;     /* [shexp_dim][dim] the shared expert (Qwen2-MoE); or NULL */
    const sq_tensor *ffn_up_shexp;       /* [shexp_dim][dim] */
    const sq_tensor *ffn_down_shexp;     /* [dim][shexp_dim] */
    const sq_tensor *ffn_gate_inp_shexp; /* [1][dim] its gate: output x sigmoid(gate . x) */
    int n_heads, n_kv_heads, ffn_dim;    /* this block's own, from its weights (ffn_dim: each expert's) */
    int n_experts;                       /* routed experts; 0: a dense FFN */
    int shexp_dim;                       /* the shared expert's FFN width; 0: none */
    /* Low-rank linear weights (docs/formats.md, "Low-rank weights"): linear i stored as W ~= B.A with
     * lr_a[i] = A [rank][in] ("blk.N.<name>.weight_a") and lr_b[i] = B [out][rank] ("..._b"); its dense
     * pointer above is then NULL. Both NULL: the weight is dense. */
    const sq_tensor *lr_a[SQ_N_LINEAR], *lr_b[SQ_N_LINEAR];
} sq_layer;

/* The linear weights' canonical names without ".weight" ("attn_q" .. "ffn_down"), in sq_linear order. */
extern const char *const sq_linear_names[SQ_N_LINEAR];
/* Linear i of a block: its dense tensor, or NULL when it is stored as low-rank factors. */
const sq_tensor *sq_layer_dense(const sq_layer *L, sq_linear i);
/* Linear i's [out][in], whether dense or low-rank (a mixture-of-experts FFN: one expert's). */
void sq_layer_linear_shape(const sq_layer *L, sq_linear i, int64_t *out, int64_t *in);
/* Whether any block of the model holds low-rank factors. */
int sq_model_has_lowrank(const sq_model *m);

struct sq_model {
    sq_model_config cfg;
    char file_format[16]; /* "llama2c", "safetensors", "gguf" */
    sq_tensor **tensors;  /* [n_tensors], each allocated on its own (stable addresses) */
    int n_tensors;
    size_t cap_tensors;
    const sq_tensor *tok_embd; /* [vocab_size][dim] */
    const sq_tensor *out_norm; /* [dim] */
    const sq_tensor *output;   /* [vocab_size][dim]; == tok_embd when tied */
    sq_layer *layers;          /* [n_layers] */
    sq_tokenizer *tokenizer;
    sq_mapped_file **files; /* [n_files] mappings the tensors borrow from, kept open for the model's life */
    int n_files;
    size_t cap_files;
    sq_warnings warnings; /* what loading worked around (sq_model_warning) */
};

/* Canonical tensor names. */
#define SQ_NAME_TOK_EMBD "token_embd.weight"
#define SQ_NAME_OUT_NORM "output_norm.weight"
#define SQ_NAME_OUTPUT   "output.weight"
/* Per-layer suffixes: "blk.%d." followed by one of these. */
#define SQ_NAME_ATTN_NORM      "attn_norm.weight"
#define SQ_NAME_ATTN_Q         "attn_q.weight"
#define SQ_NAME_ATTN_K         "attn_k.weight"
#define SQ_NAME_ATTN_V         "attn_v.weight"
#define SQ_NAME_ATTN_OUT       "attn_output.weight"
#define SQ_NAME_ATTN_Q_BIAS    "attn_q.bias"
#define SQ_NAME_ATTN_K_BIAS    "attn_k.bias"
#define SQ_NAME_ATTN_V_BIAS    "attn_v.bias"
#define SQ_NAME_ATTN_Q_NORM    "attn_q_norm.weight"
#define SQ_NAME_ATTN_K_NORM    "attn_k_norm.weight"
#define SQ_NAME_ATTN_POST_NORM "post_attention_norm.weight"
#define SQ_NAME_FFN_POST_NORM  "post_ffw_norm.weight"
#define SQ_NAME_FFN_NORM       "ffn_norm.weight"
#define SQ_NAME_FFN_GATE       "ffn_gate.weight"
#define SQ_NAME_FFN_UP         "ffn_up.weight"
#define SQ_NAME_FFN_DOWN       "ffn_down.weight"
/* mixture of experts (llama.cpp's names): the router, the experts as [n_experts][rows][cols], the shared
 * expert and its gate */
#define SQ_NAME_FFN_GATE_INP       "ffn_gate_inp.weight"
#define SQ_NAME_FFN_GATE_EXPS      "ffn_gate_exps.weight"
#define SQ_NAME_FFN_UP_EXPS        "ffn_up_exps.weight"
#define SQ_NAME_FFN_DOWN_EXPS      "ffn_down_exps.weight"
#define SQ_NAME_FFN_GATE_SHEXP     "ffn_gate_shexp.weight"
#define SQ_NAME_FFN_UP_SHEXP       "ffn_up_shexp.weight"
#define SQ_NAME_FFN_DOWN_SHEXP     "ffn_down_shexp.weight"
#define SQ_NAME_FFN_GATE_INP_SHEXP "ffn_gate_inp_shexp.weight"

/* An empty model with config fields set to "unknown" (-1 ids, zero sizes). */
sq_model *sq_model_new(void);
/* Host memory for tensor data: 64-byte aligned, released with free(). */
void *sq_model_host_alloc(size_t nbytes);
/* Appends a tensor. storage SQ_STORAGE_MAPPED borrows data from a file kept with sq_model_keep_file;
 * SQ_STORAGE_HOST hands the model data from sq_model_host_alloc, which it frees with the tensor (on failure
 * the data stays the caller's). Rejects duplicate names and shapes whose byte size disagrees with nbytes. */
SQ_NODISCARD sq_error *sq_model_add_tensor(sq_model *m, const char *name, sq_dtype dtype, int ndim,
                                           const int64_t *shape, void *data, size_t nbytes,
                                           sq_storage storage);
/* Keeps a mapped file alive as long as the model (closes it on failure). */
SQ_NODISCARD sq_error *sq_model_keep_file(sq_model *m, sq_mapped_file *f);
const sq_tensor *sq_model_find_tensor(const sq_model *m, const char *name);
/* Splits "<prefix><layer>.<rest>" (e.g. "blk.3.attn_q.weight") into the layer number and rest; -1 when the
 * name does not have that form. */
int sq_split_layer_name(const char *name, const char *prefix, const char **rest);
/* Adds id to the end-of-generation set unless it is already there or outside [0, vocab_size) (sources check
 * their ids first and warn about bad ones). A set already full is reported in w, naming `source`. */
SQ_NODISCARD sq_error *sq_model_add_eos(sq_model_config *c, int id, sq_warnings *w, const char *source);
/* Resolves layers and checks every tensor shape; names the offending tensor on failure, and then leaves the
 * model's layers as they were. Every tensor must belong to the model (an unknown name is an error). */
SQ_NODISCARD sq_error *sq_model_bind(sq_model *m, const char *source_path);

/* Whether block l is marked global (no window, rope_theta) in a model with interleaved local and global
 * layers; 0 for every layer of a model without (sq_model_has_layer_pattern says which). */
static inline int sq_layer_is_global(const sq_model_config *c, int l) {
    return (c->global_layers[l / 64] >> (l % 64)) & 1;
}
/* Whether any layer is marked global (the model interleaves local and global layers). */
int sq_model_has_layer_pattern(const sq_model_config *c);
/* Marks every n-th layer global (layers n-1, 2n-1, ...), the pattern of Gemma 3 (n = 6). */
void sq_model_set_layer_pattern(sq_model_config *c, int n);

/* Tells clang's static analyzer (scripts/check-errors.sh) that sq_model_append_tensor takes its tensor over.
 */
#ifdef __clang_analyzer__
#define SQ_TAKES_TENSOR __attribute__((ownership_takes(malloc, 2)))
#else
#define SQ_TAKES_TENSOR
#endif
/* For model_edit.c: the checks sq_model_add_tensor makes of a new tensor, appending a malloc'ed tensor to
 * the list (the model takes t over: keeps it, or frees it, not its data, on failure), and freeing one (with
 * its data when the model owns it). */
SQ_NODISCARD sq_error *sq_model_check_tensor(const char *name, sq_dtype dtype, int ndim, const int64_t *shape,
                                             size_t nbytes);
SQ_NODISCARD SQ_TAKES_TENSOR sq_error *sq_model_append_tensor(sq_model *m, sq_tensor *t);
void sq_model_tensor_free(sq_tensor *t);

#endif
