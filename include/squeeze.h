/* squeeze: load, compress, measure and run large language models.
 *
 * The one public header. Everything the CLI does goes through these calls.
 *
 * Conventions:
 *  - Functions that can fail return `sq_error *`: NULL on success, otherwise an error value the caller owns
 *    and releases with sq_error_free(). Its message names the file/field/request and the problem.
 *  - Objects are opaque; each has a create/load call and a free call. Free functions accept NULL.
 *  - Token ids are int32_t. Logits are float32, row-major [rows][vocab].
 */
#ifndef SQUEEZE_H
#define SQUEEZE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum sq_error_code {
    SQ_ERR_IO = 1,      /* a file could not be opened, read, mapped or written */
    SQ_ERR_FORMAT,      /* a file's content is malformed, truncated or inconsistent */
    SQ_ERR_UNSUPPORTED, /* well-formed, but an architecture/dtype/feature squeeze does not handle */
    SQ_ERR_INVALID_ARG, /* a caller passed a value outside the documented range */
    SQ_ERR_NOMEM,       /* an allocation failed or a size is absurd */
    SQ_ERR_INTERNAL
} sq_error_code;

typedef struct sq_error sq_error;

/* SQ_NODISCARD marks every function (and function pointer) that returns an sq_error *: the caller owns the
 * error and must look at it. The compilers reject a call that drops it (warn_unused_result, an error under
 * -Werror; GCC even through a (void) cast). Under clang's static analyzer (scripts/check-errors.sh, the
 * error_paths test) the returned error counts as allocated memory that must be freed, returned or stored on
 * every path. SQ_TAKES_ERROR(n) marks a function that takes over the error in its parameter n (1-based):
 * frees it or hands it on. */
#if defined(__clang_analyzer__)
#define SQ_NODISCARD      __attribute__((warn_unused_result, ownership_returns(malloc)))
#define SQ_TAKES_ERROR(n) __attribute__((ownership_takes(malloc, n)))
#elif defined(SQ_CHECK_DECLARATIONS) /* scripts/check-errors.sh: one attribute each, to find either gone */
#define SQ_NODISCARD      __attribute__((warn_unused_result))
#define SQ_TAKES_ERROR(n) __attribute__((ownership_takes(malloc, n)))
#elif defined(__GNUC__)
#define SQ_NODISCARD __attribute__((warn_unused_result))
#define SQ_TAKES_ERROR(n)
#else
#define SQ_NODISCARD
#define SQ_TAKES_ERROR(n)
#endif

sq_error_code sq_error_code_of(const sq_error *err);
const char *sq_error_message(const sq_error *err);
SQ_TAKES_ERROR(1) void sq_error_free(sq_error *err);

/* ---------------------------------------------------------------- tokenizer */

typedef struct sq_tokenizer sq_tokenizer;

/* Loads a standalone tokenizer: SentencePiece `tokenizer.model`, llama2.c `tokenizer.bin`, a Hugging Face
 * `tokenizer.json` (a `tokenizer_config.json` beside it is read for BOS/EOS handling and the chat template
 * when present, else a `chat_template.jinja` beside it), or the vocabulary of a GGUF file (its tensors are
 * not read, so any architecture and tensor type will do). */
SQ_NODISCARD sq_error *sq_tokenizer_load(const char *path, sq_tokenizer **out);
void sq_tokenizer_free(sq_tokenizer *tok);

/* "spm-bpe" (SentencePiece-style BPE with byte fallback) or "byte-bpe" (GPT-2 style byte-level BPE). */
const char *sq_tokenizer_kind(const sq_tokenizer *tok);
int sq_tokenizer_vocab_size(const sq_tokenizer *tok);
int sq_tokenizer_bos(const sq_tokenizer *tok); /* -1 when the vocabulary has none */
int sq_tokenizer_eos(const sq_tokenizer *tok); /* -1 when the vocabulary has none */
/* Whether encode should prepend BOS by default (from the tokenizer's config; true for Llama-2). */
int sq_tokenizer_adds_bos(const sq_tokenizer *tok);

/* Whether a sequence that begins a text starts with BOS (perplexity, zero-shot requests). */
typedef enum sq_bos_policy {
    SQ_BOS_AUTO = 0, /* as the tokenizer says (sq_tokenizer_adds_bos: tokenizer_config.json add_bos_token,
                        GGUF tokenizer.ggml.add_bos_token), as llama.cpp and Hugging Face do */
    SQ_BOS_ADD,      /* always */
    SQ_BOS_NONE      /* never */
} sq_bos_policy;
/* The BOS id such a sequence starts with under policy, or -1 for none. Fails with SQ_ERR_INVALID_ARG when
 * SQ_BOS_ADD asks for a BOS the vocabulary does not have, or for an unknown policy. */
SQ_NODISCARD sq_error *sq_tokenizer_bos_for(const sq_tokenizer *tok, sq_bos_policy policy, int *bos_id);
/* What loading worked around: tokenizer metadata that squeeze can do without but found out of range or
 * inconsistent (a special-token id outside the vocabulary, a tokenizer_config.json token the vocabulary
 * lacks), treated as absent. Each message names the file and field; valid while tok lives; NULL for i outside
 * [0, n). The library never prints: callers show them (the CLI as "squeeze: warning: ..."). */
int sq_tokenizer_n_warnings(const sq_tokenizer *tok);
const char *sq_tokenizer_warning(const sq_tokenizer *tok, int i);

/* A token as the vocabulary spells it ("<s>", "<|im_start|>", "Ġthe", "▁the", "<0x0A>"), or NULL for an id
 * outside the vocabulary. Owned by the tokenizer. */
const char *sq_tokenizer_piece(const sq_tokenizer *tok, int id);
/* The Jinja chat template the tokenizer came with (tokenizer_config.json's "chat_template", the "default" one
 * of its list form; GGUF's tokenizer.chat_template), or NULL when it has none. Owned by the tokenizer. */
const char *sq_tokenizer_chat_template(const sq_tokenizer *tok);

/* Writes the tokenizer as a Hugging Face tokenizer.json + tokenizer_config.json into directory dir (created
 * if missing), which sq_tokenizer_load and Hugging Face's tokenizers both read back as the same tokenizer. */
SQ_NODISCARD sq_error *sq_tokenizer_save_hf(const sq_tokenizer *tok, const char *dir);

/* Encodes `len` bytes of text (invalid UTF-8 is handled as the reference tokenizers do: spm maps bad bytes
 * through byte fallback, byte-bpe encodes raw bytes). When add_bos is non-zero and the vocabulary has a BOS,
 * it is prepended. Special-token strings in the text (e.g. "<|endoftext|>") are matched when
 * parse_special is non-zero. On success *ids is malloc'ed (caller frees) and *n_ids set. */
SQ_NODISCARD sq_error *sq_tokenize(const sq_tokenizer *tok, const char *text, size_t len, int add_bos,
                                   int parse_special, int32_t **ids, int *n_ids);

/* Decodes ids to bytes, exactly inverting sq_tokenize for ordinary text (BOS/EOS and other control tokens
 * produce nothing). *text is malloc'ed and NUL-terminated; *len excludes the NUL. */
SQ_NODISCARD sq_error *sq_detokenize(const sq_tokenizer *tok, const int32_t *ids, int n_ids, char **text,
                                     size_t *len);

/* Streaming decode: feeds one token at a time and returns the bytes it adds to the text, so that
 * concatenating the outputs equals sq_detokenize of the whole sequence. A multi-byte UTF-8 character split
 * across byte tokens is held back until it is complete. The returned pointer is valid until the next call.
 * A new decoder starts at the beginning of a text (an spm dummy-prefix space on the first piece is
 * dropped); to stream a continuation (generated tokens after a prompt), reset it to the context first. */
typedef struct sq_detokenizer sq_detokenizer;
sq_detokenizer *sq_detokenizer_create(const sq_tokenizer *tok); /* NULL: out of memory or no tok */
/* Restarts d after `context` (n_context ids, e.g. the prompt; NULL/0: the start of a text), dropping any
 * held-back bytes. Nothing of the context is returned: the following pushes and flush return exactly
 * sq_detokenize(context + pushed) minus sq_detokenize(context), byte for byte, so the first generated word
 * keeps its leading space. (A character the context leaves unfinished continues with its raw remaining bytes,
 * since its first bytes belong to the context's text.) Fails with SQ_ERR_INVALID_ARG naming an id outside
 * the vocabulary; d is then unchanged. */
SQ_NODISCARD sq_error *sq_detokenizer_reset(sq_detokenizer *d, const int32_t *context, int n_context);
const char *sq_detokenizer_push(sq_detokenizer *d, int32_t id, size_t *len);
const char *sq_detokenizer_flush(sq_detokenizer *d, size_t *len); /* whatever is still held back */
void sq_detokenizer_free(sq_detokenizer *d);

/* ---------------------------------------------------------------- chat templates */

/* A compiled Jinja chat template. squeeze renders the subset of Jinja that chat templates use (for/else with
 * loop.*, if/elif/else, set and namespace attributes, macros, break/continue, filters such as trim, tojson,
 * join, map, selectattr, tests such as defined/string/mapping, Python string methods, slicing, `in`, `~`,
 * raise_exception) exactly as Hugging Face's apply_chat_template renders it with jinja2
 * (ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, keep_trailing_newline off; tojson is
 * json.dumps with ensure_ascii=False). What it leaves out and the limits: docs/chat-templates.md. */
typedef struct sq_chat_template sq_chat_template;

/* Compiles len bytes of template source (UTF-8). Syntax errors, unknown filters or tests name the line and
 * column (SQ_ERR_FORMAT); a template over 4 MiB is refused. */
SQ_NODISCARD sq_error *sq_chat_template_compile(const char *source, size_t len, sq_chat_template **out);
/* The tokenizer's own template (sq_tokenizer_chat_template), or for a tokenizer without one the plain
 * fallback: a "Role: content" paragraph per message (role capitalised, content trimmed, then a blank line),
 * and "Assistant:" for the generation prompt. bos_token and eos_token are the pieces of the tokenizer's
 * BOS and EOS ids. */
SQ_NODISCARD sq_error *sq_chat_template_from_tokenizer(const sq_tokenizer *tok, sq_chat_template **out);
const char *sq_chat_template_source(const sq_chat_template *t);
int sq_chat_template_is_fallback(const sq_chat_template *t); /* made from the plain fallback */
void sq_chat_template_free(sq_chat_template *t);

/* One message of a conversation: the template sees a dict with "role", then "content", then the members of
 * fields_json (tool_calls, tool_call_id, name, reasoning_content, or content as a list of parts), a member
 * given again replacing the earlier one; members whose value is null are dropped, as apply_chat_template
 * drops them. All strings UTF-8. */
typedef struct sq_chat_message {
    const char *role;        /* NULL: not set here (fields_json may set it) */
    const char *content;     /* NULL: not set here */
    const char *fields_json; /* NULL, or a JSON object */
} sq_chat_message;

typedef struct sq_chat_render_options {
    int add_generation_prompt; /* end with the header that starts the assistant's reply */
    const char *bos_token;     /* the template's bos_token / eos_token; NULL: the template's own (from its */
    const char *eos_token;     /* tokenizer), else undefined */
    /* NULL, or a JSON object whose members become template variables (tools, documents, enable_thinking,
     * date_string, ...); tools and documents are None unless given here, as apply_chat_template passes
     * them */
    const char *vars_json;
    size_t max_bytes;  /* memory the rendering may use; 0: 64 MiB + 16 times the size of the input */
    int64_t max_steps; /* evaluation steps before the rendering is stopped; 0: 10 million */
} sq_chat_render_options;

/* Renders n_messages messages (opts may be NULL: no generation prompt). On success *text is malloc'ed,
 * NUL-terminated, and *len (may be NULL) its length. The template's raise_exception(msg) fails with
 * SQ_ERR_INVALID_ARG and a message ending in msg; errors in the template's evaluation (type errors, undefined
 * values used) name the line and column; exceeding max_bytes or max_steps fails with SQ_ERR_NOMEM. */
SQ_NODISCARD sq_error *sq_chat_template_render(const sq_chat_template *t, const sq_chat_message *messages,
                                               int n_messages, const sq_chat_render_options *opts,
                                               char **text, size_t *len);
/* The same with the messages as a JSON array of message objects, as OpenAI's API and apply_chat_template take
 * them (null-valued members dropped). JSON numbers keep Python's distinction: 1 is an int, 1.0 a float. */
SQ_NODISCARD sq_error *sq_chat_template_render_json(const sq_chat_template *t, const char *messages_json,
                                                    const sq_chat_render_options *opts, char **text,
                                                    size_t *len);

/* Token ids of a rendered chat prompt, as Hugging Face's apply_chat_template(tokenize=True) makes them:
 * special-token text (<|im_start|>, <s>) becomes its ids, and BOS is put first only where the tokenizer adds
 * one (sq_tokenizer_adds_bos) and the rendering does not already begin with it. *ids is malloc'ed. */
SQ_NODISCARD sq_error *sq_chat_tokenize(const sq_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                                        int *n_ids);

/* ---------------------------------------------------------------- model */

typedef struct sq_model sq_model;

typedef struct sq_load_options {
    const char *tokenizer_path; /* NULL: found inside or beside the model */
} sq_load_options;

/* Loads (memory-maps) a model: a llama2.c checkpoint (.bin), a Hugging Face directory (config.json +
 * *.safetensors + tokenizer.json), or a GGUF file. Weights keep their stored dtype. */
SQ_NODISCARD sq_error *sq_model_load(const char *path, const sq_load_options *opts, sq_model **out);
void sq_model_free(sq_model *model);

typedef struct sq_model_info {
    const char *arch;        /* "llama", "mistral", "qwen2", "qwen3" */
    const char *file_format; /* "llama2c", "safetensors", "gguf" */
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size, max_seq_len;
    float rope_theta, norm_eps;
    int sliding_window;  /* 0: full attention */
    int tied_embeddings; /* output projection shares the token embedding */
    int64_t n_params;
    size_t weight_bytes;
    const char *rope_style; /* "interleaved" (llama2.c, GGUF llama) or "halves" (Hugging Face, GGUF qwen2) */
    int rope_dims; /* the leading dims of each head RoPE rotates; < head_dim: partial rotary (Phi-4-mini) */
    const char *rope_scaling;  /* "none", "llama3" or "longrope" (Phi-3) */
    float rope_scaling_factor; /* llama3: factor, low/high frequency factors, original context */
    float rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    float rope_attn_factor; /* longrope: queries and keys scaled by it; short factors up to the original
                               context, long factors in a longer one (sq_context_options.n_ctx) */
    /* what the blocks compute besides Llama's (docs/architecture.md, "adding an architecture") */
    const char *ffn_act; /* "silu" (SwiGLU) or "gelu_tanh" (GeGLU: Gemma) */
    float embd_scale;    /* embeddings are multiplied by it (Gemma: sqrt(dim)); 1: not scaled */
    float attn_scalar;   /* scores are q.k / sqrt(attn_scalar) (Gemma's query_pre_attn_scalar); 0: head_dim */
    int n_global_layers; /* interleaved local/global attention (Gemma 3): the global ones; 0: none */
    float rope_local_theta;            /* the local layers' RoPE base when n_global_layers > 0 */
    float attn_softcap, final_softcap; /* scores / logits x -> cap tanh(x / cap) (Gemma 2); 0: none */
    /* mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE): routed experts per block, how many each token uses,
     * and the parameters one token's forward pass multiplies by (n_params less the experts it does not use);
     * 0, 0 and n_params for a dense model */
    int n_experts, n_experts_used;
    int shared_expert; /* blocks add a gated shared expert (Qwen2-MoE) */
    int64_t n_active_params;
} sq_model_info;

void sq_model_get_info(const sq_model *model, sq_model_info *info);
/* The model's tokenizer (owned by the model), or NULL when none was found. */
const sq_tokenizer *sq_model_tokenizer(const sq_model *model);

/* Load warnings: metadata the model can do without that loading found out of range and treated as absent
 * (a GGUF tokenizer.ggml.padding_token_id of 0xFFFFFFFF, a config.json eos_token_id outside the vocabulary,
 * ...), the model's own first, then its tokenizer's (sq_tokenizer_warning). Each names the file and key;
 * valid while the model lives; NULL for i outside [0, n). Metadata that changes the arithmetic is never
 * worked around: it is read in every layout the format has used, or loading fails naming the key. */
int sq_model_n_warnings(const sq_model *model);
const char *sq_model_warning(const sq_model *model, int i);

/* End-of-generation ids: every id the model's files name as ending a generated text, the union of
 * config.json eos_token_id (one id or a list), generation_config.json eos_token_id, GGUF
 * tokenizer.ggml.eos_token_id / eot_token_id / eom_token_id, llama2.c's 2 and the tokenizer's own EOS
 * (tokenizer_config.json eos_token). The primary EOS comes first; no duplicates; each in [0, vocab_size).
 * The array is the model's (valid while it lives), *n_ids its length (0: none). sq_generate stops at any of
 * them; serving and speculative decoding use the same set. */
const int32_t *sq_model_eos_ids(const sq_model *model, int *n_ids);
int sq_model_is_eos(const sq_model *model, int32_t id);

typedef struct sq_tensor_info {
    const char *name;  /* GGUF-style canonical name, e.g. "blk.0.attn_q.weight" */
    const char *dtype; /* the storage format's name: "f32", "f16", "bf16", "q8_0", ... (docs/formats.md) */
    int ndim;
    int64_t shape[4]; /* outermost first: a linear layer is [out_features, in_features] */
    size_t nbytes;
} sq_tensor_info;

int sq_model_n_tensors(const sq_model *model);
/* i in 0 .. sq_model_n_tensors()-1; the strings belong to the model and stay valid until it changes. */
void sq_model_tensor_info(const sq_model *model, int i, sq_tensor_info *info);
/* The index of the tensor with this canonical name, or -1 when the model has none. */
int sq_model_tensor_index(const sq_model *model, const char *name);

/* One transformer block ("blk.N.*" tensors), as its weights define it: after width pruning, blocks differ.
 * sq_model_info's n_heads, n_kv_heads and ffn_dim are the largest over the blocks. */
typedef struct sq_layer_info {
    int n_heads;         /* query heads: rows of attn_q / head_dim */
    int n_kv_heads;      /* key/value heads: rows of attn_k / head_dim */
    int head_dim;        /* the model's */
    int ffn_dim;         /* FFN width: rows of ffn_gate and ffn_up */
    int has_qkv_bias;    /* attn_q/attn_k/attn_v carry biases */
    int has_qk_norm;     /* queries and keys are RMS-normalised per head before RoPE (Qwen3, Gemma 3) */
    int has_post_norms;  /* the attention and FFN outputs are RMS-normalised before their residual adds */
    int window;          /* this block's attention window in positions; 0: full attention */
    int global;          /* a global layer of a model with interleaved local/global layers (Gemma 3) */
    int64_t n_params;    /* elements of the block's tensors */
    size_t weight_bytes; /* their bytes in memory */
    /* Low-rank linear weights (sq_prune's SQ_PRUNE_LOWRANK / SQ_PRUNE_ASVD; docs/formats.md): the rank of
     * each of attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down (in that order) stored as two
     * thin matrices "<name>.weight_a" [rank][in] and "<name>.weight_b" [out][rank]; 0: dense. */
    int lowrank_rank[7];
} sq_layer_info;

/* Facts of block `layer` (0 .. n_layers-1); SQ_ERR_INVALID_ARG outside that range. */
SQ_NODISCARD sq_error *sq_model_layer_info(const sq_model *model, int layer, sq_layer_info *info);

/* ---------------------------------------------------------------- changing a model (compression)
 *
 * A loaded model can be changed in place: tensors replaced, added or removed, blocks dropped or reordered.
 * Each call is all-or-nothing: it applies the change, then binds the model again (every block's head counts
 * and FFN width re-read from its weights, every shape checked, every tensor required to belong to the
 * architecture); when anything fails it returns the error (SQ_ERR_INVALID_ARG for a change that leaves the
 * model inconsistent, naming the tensor) and the model is exactly as before. Weights in a memory-mapped file
 * are never written: changed tensors get new host memory that the model owns (copy-on-write), and the memory
 * a replaced tensor owned is freed. sq_model_save writes the changed model in any format that can express it.
 *
 * Thread safety: a model is read-only to every other call, so several threads and contexts may use one model
 * at once; these calls change it and need it to themselves: no context created from it may exist (contexts
 * hold its layers), and no other call on it may run meanwhile. */

/* Copies the tensor's values into dst ([n_elems] floats, row-major in its shape), dequantizing with its
 * format's reference dequantizer. SQ_ERR_INVALID_ARG when there is no such tensor or n_elems is not its
 * element count. */
SQ_NODISCARD sq_error *sq_model_read_tensor(const sq_model *model, const char *name, float *dst,
                                            int64_t n_elems);

/* One change to one tensor. */
typedef struct sq_tensor_edit {
    const char *name;  /* canonical name, e.g. "blk.3.ffn_up.weight"; a new name adds a tensor */
    int remove;        /* non-zero: remove the tensor (the fields below are ignored) */
    const char *dtype; /* storage format of the new data, a name as in sq_tensor_info ("f32", "q4_0", ...);
                          NULL: the tensor's current one. 1-D tensors (norms, biases) stay "f32". */
    int ndim;          /* 1..4; 0: the tensor's current shape */
    int64_t shape[4];  /* outermost first: a linear layer is [out_features, in_features] */
    /* The new contents, one of:
     *  - values: [shape] floats, stored through dtype's reference quantizer (GGUF's definitions);
     *  - data: nbytes bytes already in dtype's layout (GGUF block layouts), e.g. from an own quantizer;
     *  - neither: the tensor's own values re-encoded in dtype (quantizing it; the shape must stay). */
    const float *values;
    const void *data;
    size_t nbytes;
} sq_tensor_edit;

/* Applies n_edits changes to distinct tensors together (width pruning changes a block's attn_q, attn_k,
 * attn_v and attn_output, or ffn_gate, ffn_up and ffn_down, in one call), then binds. The caller's arrays are
 * copied: they may be freed on return. */
SQ_NODISCARD sq_error *sq_model_edit_tensors(sq_model *model, const sq_tensor_edit *edits, int n_edits);

/* Keeps the blocks layers[0 .. n_layers-1] in that order, each old index at most once: block i of the result
 * is old block layers[i] and its tensors are renamed blk.i.*, so that saving and loading give the same
 * model. Dropping block 3 of 6 is {0, 1, 2, 4, 5}. */
SQ_NODISCARD sq_error *sq_model_set_layers(sq_model *model, const int *layers, int n_layers);

typedef enum sq_file_format { SQ_FORMAT_LLAMA2C, SQ_FORMAT_SAFETENSORS, SQ_FORMAT_GGUF } sq_file_format;

/* Writes the model in another format: SQ_FORMAT_SAFETENSORS writes a Hugging Face directory at `path`
 * (config.json, model.safetensors, tokenizer files when the model has them), SQ_FORMAT_GGUF a GGUF v3 file
 * with the vocabulary inside, SQ_FORMAT_LLAMA2C a llama2.c checkpoint (fp32, llama architecture only). */
SQ_NODISCARD sq_error *sq_model_save(const sq_model *model, const char *path, sq_file_format format);

/* ---------------------------------------------------------------- synthetic models (squeeze synth) */

/* A model of a real architecture's exact shapes with seeded random weights, to measure speed at real scale
 * without downloading weights (model/synth.c gives the scales: activations stay finite; no tokenizer). */
typedef struct sq_synth_options {
    const char *preset; /* sq_synth_preset_names(): "llama-2-7b", "llama-3-8b", "qwen2.5-7b", "mistral-7b",
                         * the mixtures of experts "mixtral-8x7b", "qwen1.5-moe-a2.7b" */
    const char *dtype;  /* the 2-D weights' format: "f32", "f16" (NULL), "bf16", "q8_0", "q4_0" or "q4_k" */
    int n_layers;       /* 0: the preset's; fewer make a shallower model of the same widths */
    int n_threads;      /* 0: sq_cpu_count() */
    uint64_t seed;      /* the same seed gives the same bytes, whatever n_threads */
    /* a mixture-of-experts preset as a dense model of the same parameters per token (its dense family, one
     * FFN of experts-used x expert width, plus the shared expert's): the baseline of MoE speed */
    int dense_active;
} sq_synth_options;

/* The presets' names, '|'-separated. */
const char *sq_synth_preset_names(void);
/* Builds the model in host memory (13.5 GB for llama-2-7b in f16). SQ_ERR_INVALID_ARG for an unknown preset
 * or type, SQ_ERR_NOMEM when memory runs out. Release with sq_model_free; sq_model_save writes it. */
SQ_NODISCARD sq_error *sq_model_synth(const sq_synth_options *opts, sq_model **out);

/* ---------------------------------------------------------------- context: KV cache + forward(batch) */

/* Thread safety: a context is used by one thread at a time (its own threads do the work of each call;
 * sq_forward and the sq_seq_* / sq_context_kv_* calls change or read its KV cache). Different contexts, on
 * the same model or not, may run concurrently on different threads: a model is only read by contexts.
 * Changing a model's weights while a context runs on it is not allowed; after a change,
 * sq_context_reload_weights brings each of its contexts up to date. Tokenizers and models may be shared by
 * any number of threads for reading. */

typedef struct sq_context sq_context;

/* How the KV cache stores keys and values. */
typedef enum sq_kv_type {
    SQ_KV_F32 = 0, /* fp32 rows: exact */
    SQ_KV_F16,     /* IEEE half rows (round to nearest even): half the memory; logits move by about the half
                      precision's rounding (2^-11 relative per stored value) */
    /* KV-cache quantization: ggml's block formats along each row (n_kv_heads * head_dim values, which must be
     * a multiple of 32), one f16 scale per 32 values, written when a token's key and value are stored and
     * dequantized a tile at a time by attention. Per token, as llama.cpp's --cache-type-k/v q8_0|q4_0. */
    SQ_KV_Q8_0, /* 8.5 bits per value (0.27x f32's bytes): round to nearest on 255 levels of max|x|/127 */
    SQ_KV_Q4_0  /* 4.5 bits per value (0.14x): 16 levels of max-magnitude/-8; docs/benchmarks.md has the cost
                 */
} sq_kv_type;

/* The name of a KV row type as the CLI's --kv-type takes it ("f32", "f16", "q8_0", "q4_0"); NULL for a value
 * outside the enum. */
const char *sq_kv_type_name(sq_kv_type type);

typedef struct sq_context_options {
    int n_ctx;       /* tokens per sequence; 0: the model's max_seq_len */
    int n_seq_max;   /* sequences that may be live at once; 0: 1 */
    int n_threads;   /* 0: sq_cpu_count() */
    int n_batch_max; /* most tokens one forward step carries (sq_forward splits larger batches); 0: n_ctx */
    const char *device; /* the backend the context runs on: "cpu" (NULL: "cpu") or "cuda" (an NVIDIA GPU, in
                           builds with -DSQUEEZE_CUDA=ON; SQ_ERR_UNSUPPORTED naming the reason where none is
                           usable, or where a weight's format has no GPU kernel); an unknown device fails with
                           SQ_ERR_INVALID_ARG naming the ones this build has */
    /* The KV cache is one pool of blocks of kv_block_size positions, shared by all sequences (vLLM's paged
     * attention), in the device's memory: a sequence takes blocks as it grows and returns them when
     * truncated. */
    size_t kv_mem; /* bytes for the pool (keys and values of all layers); 0: room for n_seq_max sequences of
                      n_ctx tokens each. Less serves sequences while blocks are free (see
                      sq_context_kv_blocks_needed); more is capped there. */
    int kv_block_size; /* positions per block, 1..65536; 0: 16 */
    sq_kv_type kv_type;
} sq_context_options;

/* Fails with SQ_ERR_INVALID_ARG on options out of range, and when kv_mem cannot hold one block or one
 * sequence of n_ctx tokens (the message says how many bytes those take). */
SQ_NODISCARD sq_error *sq_context_create(const sq_model *model, const sq_context_options *opts,
                                         sq_context **out);
void sq_context_free(sq_context *ctx);

typedef enum sq_logits_mode { SQ_LOGITS_NONE = 0, SQ_LOGITS_LAST, SQ_LOGITS_ALL } sq_logits_mode;

/* One sequence's part of a batch: n_tokens new tokens appended after the seq_id's cached tokens. */
typedef struct sq_seq_batch {
    int seq_id; /* 0 .. n_seq_max-1 */
    const int32_t *tokens;
    int n_tokens;
    sq_logits_mode logits_mode;
    float *logits; /* caller's buffer: [1][vocab] for LAST, [n_tokens][vocab] for ALL */
    /* NULL: the tokens follow each other. Otherwise [n_tokens], a token tree (speculative verification):
     * parents[j] is the index (< j) of token j's parent among these tokens, or -1 for a child of the cached
     * tokens. Token j then takes position len + depth(j) (len: the tokens cached before the batch) and
     * attends to the cached tokens, its ancestors and itself only; it is cached at slot len + j. A tree must
     * fit in n_batch_max tokens, and until sq_seq_keep_path or sq_seq_truncate removes it, no tokens can
     * follow it. */
    const int32_t *parents;
} sq_seq_batch;

/* forward(batch): runs every sequence's new tokens through the model in one pass (prefill chunks, single
 * decode tokens, draft tokens and token trees alike), appends their keys/values to each sequence's cache and
 * writes the requested logits. A rejected batch changes nothing: every check, and the reservation of cache
 * space for all its sequences, happens before anything is written. Invalid arguments (SQ_ERR_INVALID_ARG),
 * or KV blocks for all of the batch's sequences not free at once (SQ_ERR_NOMEM, "KV cache: ... needs N
 * blocks, M free"), leave every sequence and the free blocks as they were. */
SQ_NODISCARD sq_error *sq_forward(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs);

typedef struct sq_forward_options {
    /* NULL, or [n_layers]: a non-zero entry skips that transformer block (attention and feed-forward) for
     * this call: self-speculative drafts, depth-pruning scores. A skipped block stores no keys/values for the
     * batch's tokens, so its cache rows at their slots are stale until a call without the skip rewrites them
     * (truncate and run the tokens again). */
    const unsigned char *skip_layers;
} sq_forward_options;

/* sq_forward with options (opts may be NULL). */
SQ_NODISCARD sq_error *sq_forward_ex(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs,
                                     const sq_forward_options *opts);

/* The forward pass one layer at a time, for calibration (GPTQ re-runs a layer with its quantized weights on
 * the same inputs) and layer-wise analysis; sq_forward is these three calls. sq_forward_begin validates the
 * batch, reserves its cache space (all or nothing, as sq_forward) and embeds its tokens; the batch must fit
 * in n_batch_max tokens. sq_forward_layer runs block `layer` (0 .. n_layers-1) on the hidden state, in any
 * order, any number of times (a block run again overwrites its keys/values). sq_forward_end writes the
 * requested logits from the hidden state and commits the new tokens to their sequences. Between begin and
 * end, calls that change sequences (sq_forward, sq_seq_truncate, ...) fail. */
SQ_NODISCARD sq_error *sq_forward_begin(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs);
SQ_NODISCARD sq_error *sq_forward_layer(sq_context *ctx, int layer);
SQ_NODISCARD sq_error *sq_forward_end(sq_context *ctx);
/* Tokens in the step in progress (the batch's, in order of sequences then tokens); 0 outside a step. */
int sq_forward_n_tokens(const sq_context *ctx);
/* Copies the hidden state out of / into the step in progress: [n_tokens][dim] fp32, the residual stream
 * after the blocks run so far (after begin: the embeddings). */
SQ_NODISCARD sq_error *sq_forward_get_hidden(sq_context *ctx, float *out);
SQ_NODISCARD sq_error *sq_forward_set_hidden(sq_context *ctx, const float *in);

/* Calibration tap: called with the input of every linear layer the forward pass runs, so that GPTQ, AWQ,
 * SmoothQuant, Wanda, SparseGPT and width-pruning scores collect their statistics through one mechanism.
 * x is [n_tokens][width] fp32 (host memory, valid during the call only); the tokens are the step's, in
 * order (a batch that sq_forward splits into chunks of n_batch_max tokens is tapped chunk by chunk). A tap
 * forces the operation-by-operation path on backends that fuse layers. */
typedef enum sq_tap_point {
    SQ_TAP_ATTN_IN,  /* input of attn_q, attn_k, attn_v: the attention norm's output; width dim */
    SQ_TAP_ATTN_OUT, /* input of attn_output: the heads' attention output; width n_heads * head_dim */
    SQ_TAP_FFN_IN,   /* input of ffn_gate, ffn_up: the FFN norm's output; width dim */
    SQ_TAP_FFN_DOWN, /* input of ffn_down: silu(gate) * up; width the layer's ffn_dim (a mixture-of-experts
                        block: of the shared expert's ffn_down_shexp, width its own) */
    SQ_TAP_OUTPUT,   /* input of the output head (layer -1): the final norm's output of the rows whose
                        logits were asked for, in batch order; width dim */
    SQ_TAP_ROUTER,   /* a mixture-of-experts block's router logits (ffn_gate_inp's output, before the
                        softmax); width n_experts; dense blocks have none */
    /* A mixture-of-experts block's expert `expert` (0 .. n_experts-1), tapped once per step for each expert
     * any token chose, with the rows of only the tokens routed to it (in token order), as llama.cpp's
     * imatrix collects ffn_*_exps and GPTQ for MoE gathers one Hessian per expert: */
    SQ_TAP_EXPERT_IN, /* input of its slice of ffn_gate_exps, ffn_up_exps: the FFN norm's output; width dim */
    SQ_TAP_EXPERT_DOWN /* input of its slice of ffn_down_exps: act(gate) * up; width the expert's ffn width */
} sq_tap_point;
/* expert: which expert for SQ_TAP_EXPERT_IN / SQ_TAP_EXPERT_DOWN, -1 at every other point */
typedef void (*sq_tap_fn)(void *user, int layer, sq_tap_point point, int expert, const float *x, int n_tokens,
                          int width);
/* Sets (tap NULL: clears) the context's tap. */
void sq_context_set_tap(sq_context *ctx, sq_tap_fn tap, void *user);

/* Makes the context use the model's weights as they are now (after a compression step replaced some):
 * tensors whose data, dtype and size are unchanged are kept. Fails when a layer's shape changed (create a
 * new context then) or the device cannot hold the new weights; after such a failure, free the context. */
SQ_NODISCARD sq_error *sq_context_reload_weights(sq_context *ctx);

int sq_seq_len(const sq_context *ctx, int seq_id);
/* Drops cached tokens from position new_len on (0 clears the sequence): KV rollback. Blocks no longer used
 * return to the pool. */
SQ_NODISCARD sq_error *sq_seq_truncate(sq_context *ctx, int seq_id, int new_len);
/* After a token tree (sq_seq_batch.parents): keeps the nodes path[0..n_path) (indices among the tree's
 * tokens: a root, then each node a child of the one before) as the sequence's next n_path tokens, and drops
 * every other node. Their cached keys/values move; nothing is recomputed. A KV block the moved rows land in
 * that the sequence shares (after sq_seq_fork) is copied first: SQ_ERR_NOMEM, changing nothing, when no
 * block is free for that. */
SQ_NODISCARD sq_error *sq_seq_keep_path(sq_context *ctx, int seq_id, const int *path, int n_path);
/* dst_seq drops its tokens and continues from src_seq's: it shares src_seq's KV blocks (no copy, no new
 * block) until either sequence writes into a shared block, which is then copied (copy-on-write). Prefix
 * sharing and parallel sampling: prefill once, fork, decode each fork on its own. A token tree at the end
 * of src_seq comes along (each sequence may then keep a path of its own). src_seq == dst_seq does nothing. */
SQ_NODISCARD sq_error *sq_seq_fork(sq_context *ctx, int src_seq, int dst_seq);
int sq_context_n_ctx(const sq_context *ctx);
/* Bytes of the KV cache's pool. */
size_t sq_context_kv_bytes(const sq_context *ctx);
/* Admission control: positions per KV block, blocks in the pool, blocks free now, and how many free blocks a
 * batch appending n_new_tokens[i] tokens to sequence seq_ids[i] (i < n, distinct ids) would take (new blocks
 * plus copies of shared blocks it writes into); sq_forward of that batch succeeds iff *n_blocks <=
 * sq_context_kv_blocks_free (and the batch is otherwise valid). Fails with SQ_ERR_INVALID_ARG on a bad id, a
 * repeated id, or a length beyond the context. */
int sq_context_kv_block_size(const sq_context *ctx);
int sq_context_kv_blocks_total(const sq_context *ctx);
int sq_context_kv_blocks_free(const sq_context *ctx);
SQ_NODISCARD sq_error *sq_context_kv_blocks_needed(const sq_context *ctx, const int *seq_ids,
                                                   const int *n_new_tokens, int n, int *n_blocks);

/* ---------------------------------------------------------------- sampling and generation */

typedef struct sq_sampler_params {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* tokens the penalty looks back over */
    uint64_t seed;
} sq_sampler_params;

/* llama.cpp-like defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0 over 64, seed 0 */
sq_sampler_params sq_sampler_default_params(void);

typedef struct sq_sampler sq_sampler;
SQ_NODISCARD sq_error *sq_sampler_create(const sq_sampler_params *params, int vocab_size, sq_sampler **out);
/* Picks the next token from logits (modified in place); history is the sequence so far, for the penalty.
 * Returns -1 only when no logit is a number above -inf. */
int32_t sq_sampler_sample(sq_sampler *s, float *logits, const int32_t *history, int n_history);
/* The distribution sq_sampler_sample draws from, as a dense vector: the same penalty (applied to logits in
 * place), top-k, top-p, min-p and temperature, so that a target's and a draft's distributions come from one
 * mechanism (speculative sampling compares them token by token). dist is [vocab] (the sampler's
 * vocab_size): the probability of every id, zero for the filtered ones, summing to 1; greedy samplers give
 * the argmax probability 1. Returns how many ids have non-zero probability (0: no logit is a number above
 * -inf; dist is then all zero). */
int sq_sampler_dist(sq_sampler *s, float *logits, const int32_t *history, int n_history, double *dist);
void sq_sampler_free(sq_sampler *s);

typedef struct sq_generate_stats {
    int prompt_tokens;
    double prefill_seconds; /* the prompt's forward pass, whose logits give the first generated token */
    int generated_tokens;   /* EOS is not counted */
    /* Decoding: the forward passes after the prefill, one per generated token whose successor was asked for
     * (generated_tokens - 1 when n_predict or the context's end stops it, generated_tokens when an
     * end-of-generation id does), and decode_seconds from the sampling of the first generated token to that
     * of the last, which covers exactly those passes (with their sampling and streaming). Decode speed is
     * decode_steps / decode_seconds (0 steps: no decode speed). With speculative decoding (sq_generate_spec)
     * a pass yields several tokens: decode_steps counts the tokens the passes yielded, counted as above (so
     * that decode speed stays tokens per second), and sq_spec_stats.steps the passes. */
    int decode_steps;
    double decode_seconds;
} sq_generate_stats;

/* Called with each piece of generated text as soon as it is complete; return non-zero to stop early. The
 * pieces together are decode(prompt + generated) minus decode(prompt) (sq_detokenizer_reset): the text
 * continues the prompt's, leading space included. */
typedef int (*sq_text_callback)(const char *piece, size_t len, void *user);

/* Tokenizes the prompt (with BOS as the tokenizer says; special-token text such as "<|im_start|>" is matched,
 * as llama.cpp does), prefills it in one forward call, then samples up to n_predict tokens one at a time
 * (n_predict < 0: no limit), stopping at any end-of-generation id (sq_model_eos_ids; or a generated BOS,
 * which starts a new document) or when prompt and generated text fill the context. Uses sequence 0 of ctx and
 * clears it first. A prompt longer than the context is an error. */
SQ_NODISCARD sq_error *sq_generate(sq_context *ctx, const char *prompt, int n_predict,
                                   const sq_sampler_params *params, sq_text_callback on_text, void *user,
                                   sq_generate_stats *stats);

/* ---------------------------------------------------------------- speculative decoding
 *
 * A cheap draft proposes tokens; the target checks them all in one forward pass (a token tree when the draft
 * proposes several candidates per position: sq_seq_batch.parents) and keeps the ones its own sampling rule
 * accepts, so every target step yields one to k+1 tokens while the output distribution stays exactly the
 * target's (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding"; Chen et al.
 * 2023, "Accelerating Large Language Model Decoding with Speculative Sampling"):
 *  - a draft token x drawn from the draft's distribution q is accepted with probability min(1, p(x)/q(x)),
 *    else the step ends with a token drawn from normalize(max(0, p - q));
 *  - candidates chosen deterministically (n-gram lookup, a tree's top branches) are tried in order, each
 *    accepted with probability r(x)/sum(r), r starting at p and losing each rejected candidate; when none is
 *    accepted the step ends with a draw from r (SpecInfer's rule for deterministic candidates);
 *  - p and q are sq_sampler_dist's: temperature, top-k, top-p, min-p and the repetition penalty apply to
 *    both alike; greedy decoding (temperature 0) makes both one-hot, so output equals plain greedy decoding
 *    token for token.
 * Rejected tokens leave no trace: the target's cache is truncated (a chain) or keeps the accepted path
 * (sq_seq_keep_path, a tree), and a draft model's cache drops what the target did not keep. */

#define SQ_SPEC_MAX_K     16 /* draft tokens per step (tree depth) at most */
#define SQ_SPEC_MAX_WIDTH 8  /* candidates per tree position at most */

typedef enum sq_draft_kind {
    SQ_DRAFT_NONE = 0, /* plain decoding: one token per target step */
    SQ_DRAFT_MODEL,    /* a smaller model with the same vocabulary, in its own context (draft_ctx) */
    SQ_DRAFT_SELF,     /* the target itself with some blocks skipped (self-speculative decoding, Zhang et al.
                          2023 "Draft & Verify"; LayerSkip): it shares the target's cache */
    SQ_DRAFT_NGRAM     /* prompt lookup: the tokens that followed the latest earlier occurrence of the
                          sequence's last n (ngram_n down to 1) tokens (Saxena 2023) */
} sq_draft_kind;

typedef struct sq_spec_params {
    sq_draft_kind draft;
    /* SQ_DRAFT_MODEL: a context on the draft model, whose sequence 0 the decoder uses (and clears); its
     * tokenizer must equal the target's (sq_spec_check_vocab) and its n_ctx be at least the target's */
    sq_context *draft_ctx;
    const int32_t *skip_layers; /* SQ_DRAFT_SELF: [n_skip_layers] blocks of the target the draft skips */
    int n_skip_layers;
    int ngram_n; /* SQ_DRAFT_NGRAM: longest suffix looked up, 1..8; 0: 3 */
    int k;       /* draft tokens per step (tree depth), 1..SQ_SPEC_MAX_K; 0: 4 */
    int k_auto;  /* non-zero: k adapts to acceptance: +2 after a step that accepted all, -1 (down to 1)
                    otherwise (Hugging Face transformers' "heuristic" schedule), starting at k */
    /* 0 or 1: one chain of k tokens. w >= 2: a token tree of up to w candidates per position
     * (SQ_SPEC_MAX_WIDTH at most): a model draft branches into its w best tokens at each position of its
     * greedy chain; n-gram lookup merges the continuations of up to w earlier occurrences */
    int tree_width;
} sq_spec_params;

typedef struct sq_spec_stats {
    int64_t steps;                        /* target forward passes after the prefill */
    int64_t drafted;                      /* draft tokens (tree nodes) verified */
    int64_t accepted;                     /* draft tokens accepted */
    int64_t generated;                    /* tokens the steps produced (accepted + one per step) */
    int64_t reached[SQ_SPEC_MAX_K];       /* steps that reached draft position d with a proposal there */
    int64_t accepted_at[SQ_SPEC_MAX_K];   /* steps that accepted a token at position d */
    double draft_seconds, target_seconds; /* time in the draft's proposals, in the target's passes */
    int k;                                /* the draft length at the end (k_auto moves it) */
} sq_spec_stats;

/* Whether draft can draft for target: the ids each can score and decode (its logits, or its tokenizer's
 * size when smaller) are as many, and each id is the same piece in both tokenizers (or neither model has a
 * tokenizer: token ids only). SQ_ERR_INVALID_ARG naming the first difference otherwise. */
SQ_NODISCARD sq_error *sq_spec_check_vocab(const sq_model *target, const sq_model *draft);

/* A decoder: the generation of one sequence (sequence 0 of ctx) one target step at a time, plain or
 * speculative. Serving and benchmarks drive it step by step; sq_generate runs it over a text. */
typedef struct sq_decoder sq_decoder;

/* spec NULL (or draft SQ_DRAFT_NONE): plain decoding. Checks the parameters (skip lists inside the target's
 * blocks, k, widths, the draft's vocabulary and context) with SQ_ERR_INVALID_ARG. The decoder uses ctx (and
 * spec->draft_ctx) until freed; it copies params and spec. */
SQ_NODISCARD sq_error *sq_decoder_create(sq_context *ctx, const sq_sampler_params *params,
                                         const sq_spec_params *spec, sq_decoder **out);
void sq_decoder_free(sq_decoder *d);
/* Clears the sequence, prefills prompt[0..n_prompt) (1..n_ctx ids) in one forward call and samples the first
 * token from its last logits (exactly as sq_sampler_sample would). */
SQ_NODISCARD sq_error *sq_decoder_start(sq_decoder *d, const int32_t *prompt, int n_prompt);
/* One target step: drafts, verifies, and appends between 1 and max_new tokens (max_new >= 1; fewer drafts
 * are proposed when max_new or the context leave no room for them); *n_new gets how many. Needs a started
 * decoder whose tokens do not yet fill the context. Between steps, the target's sequence holds exactly the
 * tokens but the last (which the next step feeds). */
SQ_NODISCARD sq_error *sq_decoder_step(sq_decoder *d, int max_new, int *n_new);
/* The prompt and every token sampled so far ([*n], valid until the next call). */
const int32_t *sq_decoder_tokens(const sq_decoder *d, int *n);
/* Statistics so far; prefill_seconds gets the prompt's forward time (may be NULL). */
void sq_decoder_stats(const sq_decoder *d, sq_spec_stats *stats, double *prefill_seconds);

/* sq_generate with a speculative decoder (spec NULL: exactly sq_generate); spec_stats (may be NULL) gets the
 * decoder's statistics. */
SQ_NODISCARD sq_error *sq_generate_spec(sq_context *ctx, const char *prompt, int n_predict,
                                        const sq_sampler_params *params, const sq_spec_params *spec,
                                        sq_text_callback on_text, void *user, sq_generate_stats *stats,
                                        sq_spec_stats *spec_stats);

/* ---------------------------------------------------------------- serving: the engine
 *
 * Many requests at once over one context (Orca's continuous batching, Yu et al., OSDI 2022): every step
 * schedules anew, so requests join and leave between steps; prompts are prefilled in chunks that share a
 * step's token budget with the other requests' decode tokens (chunked prefill); requests are served first
 * come, first served, and when the paged KV cache runs out of blocks the latest-arrived running request is
 * preempted: its blocks are freed and its tokens recomputed when it runs again (vLLM's recompute). Full
 * blocks of prompts stay cached after their request (prefix caching: a block is known by a hash of its
 * tokens and of everything before it) and a new request with the same prefix shares them by reference
 * count; cached blocks no request uses are evicted least recently used first. src/server/engine.c,
 * docs/serving.md. */

typedef struct sq_engine sq_engine;

typedef struct sq_engine_options {
    int n_ctx;            /* tokens per sequence; 0: the model's max_seq_len, at most 4096 */
    int max_seqs;         /* requests decoded together; 0: 16 */
    size_t kv_mem;        /* bytes of the KV cache's pool; 0: room for max_seqs sequences of n_ctx */
    int kv_block_size;    /* positions per KV block; 0: 16 */
    sq_kv_type kv_type;   /* how the cache stores keys and values */
    int max_batch_tokens; /* tokens one step carries (decode tokens and prefill chunks); 0: 512 */
    int n_threads;        /* 0: all online cores */
    int no_prefix_cache;  /* non-zero: every prompt is computed from scratch */
    /* Speculative decoding: each decode step verifies up to spec_k draft tokens per request in the same
     * forward call, with the request's own sampling rule (squeeze.h, "speculative decoding": output
     * distribution unchanged; greedy output identical). spec_k 0..SQ_SPEC_MAX_K; 0: off. The drafts come from
     * spec_draft: SQ_DRAFT_NGRAM, prompt lookup (n-gram drafts copied from earlier text of the same request,
     * Saxena 2023; vLLM's "ngram" method); SQ_DRAFT_MODEL, spec_draft_model (borrowed; its vocabulary must
     * be the model's, sq_spec_check_vocab) in a context of its own with a sequence per running request
     * (n_ctx, max_seqs, kv_block_size, kv_type, device and n_threads as the engine's; a KV pool for max_seqs
     * full sequences), drafting for all decoding requests in one forward call per draft position;
     * SQ_DRAFT_SELF, the model itself with the blocks spec_skip_layers[0..spec_n_skip_layers) skipped,
     * drafting in the requests' own sequences (its drafts take KV blocks for the moment they are made: a step
     * whose pool cannot hold them goes without drafts). A draft model's and a self-draft's chains are drawn
     * with each request's sampling parameters and tested with min(1, p/q). */
    int spec_k;
    sq_draft_kind spec_draft;         /* with spec_k: NGRAM, MODEL or SELF (NONE: an error) */
    const sq_model *spec_draft_model; /* SQ_DRAFT_MODEL */
    const int32_t *spec_skip_layers;  /* SQ_DRAFT_SELF: [spec_n_skip_layers] blocks skipped */
    int spec_n_skip_layers;
    int spec_ngram_n; /* SQ_DRAFT_NGRAM: the longest suffix looked up, 1..8; 0: 3 */
    /* SQ_DRAFT_NGRAM: n-grams (spec_ngram_n tokens) of every request's generated text, each with the 8 tokens
     * that followed it, kept in a table of this many entries (rounded up to a power of two; about 72 bytes
     * each; newer text replaces older), shared by all requests, and drafted from when prompt lookup finds no
     * earlier occurrence in the request itself (lookahead decoding's n-gram pool). 0: no pool. */
    int spec_pool_entries;
    const char *device; /* sq_context_options.device; NULL: "cpu" */
} sq_engine_options;

typedef struct sq_engine_request {
    const int32_t *prompt; /* [n_prompt] token ids (copied by sq_engine_submit), 1 .. n_ctx of them */
    int n_prompt;
    int max_tokens;             /* tokens to generate at most; < 0: until the context is full */
    sq_sampler_params sampling; /* temperature 0: greedy */
    float presence_penalty;     /* OpenAI's: subtracted from the logit of every token generated so far */
    float frequency_penalty;    /* OpenAI's: times the count of that token generated so far */
    const char *const *stop;    /* [n_stop] stop strings (copied): the text ends before the first of them */
    int n_stop;
    int top_logprobs; /* < 0: no log-probabilities; 0..20: the chosen token's and this many alternatives' */
} sq_engine_request;

typedef enum sq_finish_reason {
    SQ_FINISH_NONE = 0,  /* not finished */
    SQ_FINISH_STOP,      /* an end-of-generation id (sq_model_is_eos; BOS too) or a stop string */
    SQ_FINISH_LENGTH,    /* max_tokens generated, or the context is full */
    SQ_FINISH_CANCELLED, /* sq_engine_cancel, a callback that asked to stop, or sq_engine_free */
    SQ_FINISH_ERROR      /* the forward pass failed: message in error */
} sq_finish_reason;

/* What a request produced. Pointers are valid during the callback only. */
typedef struct sq_engine_event {
    int64_t request_id;
    int32_t token; /* the generated token, or -1 for an event that only finishes the request */
    /* [text_len] what the token adds to the text (UTF-8; never NULL): decode(prompt + generated) minus
     * decode(prompt), with stop strings held back until they cannot match and never passed on */
    const char *text;
    size_t text_len;
    float logprob;          /* log-probability of token under the model (before temperature and penalties) */
    const int32_t *top_ids; /* [n_top] the most likely tokens at this position, most likely first */
    const float *top_logprobs; /* [n_top] */
    int n_top;
    sq_finish_reason finish;              /* non-zero: the request's last event */
    const char *error;                    /* SQ_FINISH_ERROR: what failed */
    int prompt_tokens, completion_tokens; /* so far; completion tokens exclude an end-of-generation id */
    int cached_tokens;                    /* prompt tokens whose KV blocks came from the prefix cache */
} sq_engine_event;

/* Called on the thread that runs sq_engine_step; returns non-zero to cancel the request. It must not call
 * the engine except sq_engine_cancel / sq_engine_submit. */
typedef int (*sq_engine_event_fn)(void *user, const sq_engine_event *ev);

/* Creates the engine and its context (sq_context_create's errors). The model must outlive it. */
SQ_NODISCARD sq_error *sq_engine_create(const sq_model *model, const sq_engine_options *opts,
                                        sq_engine **out);
/* Cancels what is still queued or running (each gets its SQ_FINISH_CANCELLED event here) and frees. */
void sq_engine_free(sq_engine *e);
int sq_engine_n_ctx(const sq_engine *e);

/* Queues a request; any thread. Fails with SQ_ERR_INVALID_ARG for an empty prompt, one longer than the
 * context, an id outside the vocabulary, or top_logprobs above 20. *id (may be NULL) names it in events. */
SQ_NODISCARD sq_error *sq_engine_submit(sq_engine *e, const sq_engine_request *req,
                                        sq_engine_event_fn on_event, void *user, int64_t *id);
/* Any thread: the request finishes (SQ_FINISH_CANCELLED) at the next step and its KV blocks are freed. */
void sq_engine_cancel(sq_engine *e, int64_t id);
/* Runs one step: admits queued requests, runs one forward call, delivers the events. *busy (may be NULL) is
 * 0 when there was nothing to do. One thread at a time. Errors of the forward pass finish the requests of the
 * step (SQ_FINISH_ERROR) rather than fail the call; only an engine that cannot go on returns an error. */
SQ_NODISCARD sq_error *sq_engine_step(sq_engine *e, int *busy);
/* Blocks until a request is queued or cancelled, sq_engine_wake is called, or `seconds` pass. */
void sq_engine_wait(sq_engine *e, double seconds);
void sq_engine_wake(sq_engine *e);

typedef struct sq_engine_stats {
    int waiting, running;                /* requests queued, requests holding a sequence */
    int kv_blocks_total, kv_blocks_used; /* used: held by requests or the prefix cache */
    int kv_block_size;
    int64_t preemptions;                  /* requests preempted so far */
    int64_t prompt_tokens, cached_tokens; /* prompt tokens admitted, of which the prefix cache held */
    int64_t generated_tokens;
    /* Speculative decoding: steps are request steps that verified drafts (generated: the tokens they gave),
     * reached / accepted_at by draft position, draft_seconds the time in proposals, target_seconds the time
     * in forward calls that carried drafts; k is spec_k. */
    sq_spec_stats spec;
    int spec_draft_kv_blocks_total, spec_draft_kv_blocks_used; /* a draft model's own KV pool; else 0 */
} sq_engine_stats;
/* Any thread: a snapshot as of the last step. */
void sq_engine_get_stats(sq_engine *e, sq_engine_stats *out);

/* ---------------------------------------------------------------- serving: the OpenAI-compatible server
 *
 * HTTP on libmicrohttpd with the engine above: POST /v1/completions and /v1/chat/completions as OpenAI's API
 * reference defines them (streaming as server-sent events ending with "data: [DONE]"; chat prompts rendered
 * by the model's own chat template), GET /v1/models, /health and /metrics (Prometheus text). Bad requests get
 * OpenAI's error body with status 400 (404 unknown path or model, 401 without the API key, 405 wrong method,
 * 413 body too large, 503 shutting down). docs/serving.md. */

typedef struct sq_server sq_server;

typedef struct sq_server_options {
    const char *host;      /* IPv4 address to listen on; NULL: "127.0.0.1" */
    int port;              /* 0: any free port (sq_server_port) */
    const char *api_key;   /* NULL: none; else /v1/ requests need "Authorization: Bearer KEY" */
    const char *alias;     /* the model's name in the API; NULL: "squeeze" */
    size_t max_body_bytes; /* 0: 8 MiB */
    int idle_timeout_s;    /* a connection idle this long is closed; 0: 30 */
    int max_connections;   /* 0: 1000 */
    sq_engine_options engine;
} sq_server_options;

/* Starts serving on its own threads (the engine's and one per connection). The model must outlive it. */
SQ_NODISCARD sq_error *sq_server_start(const sq_model *model, const sq_server_options *opts, sq_server **out);
int sq_server_port(const sq_server *s);
/* Graceful stop: no new connections; requests in flight get up to grace_seconds to finish (then they are
 * cancelled, finish_reason null); then everything is closed and freed. final_stats (may be NULL) gets the
 * engine's statistics as the last step left them (the speculative acceptance a server reports at exit). */
void sq_server_stop(sq_server *s, double grace_seconds, sq_engine_stats *final_stats);

/* ---------------------------------------------------------------- evaluation */

/* Progress reports from long evaluations: `done` of `total` units (windows, items) finished. The library
 * only calls it; drawing (the CLI's progress bar) is the caller's business. */
typedef void (*sq_progress_fn)(void *user, int64_t done, int64_t total);

/* Reads a text file for evaluation: invalid UTF-8 is an error naming the file, line and byte offset; CRLF
 * line endings become LF. *text is malloc'ed and NUL-terminated. */
SQ_NODISCARD sq_error *sq_eval_read_text(const char *path, char **text, size_t *len);

typedef enum sq_ppl_protocol {
    SQ_PPL_WINDOWS,    /* consecutive non-overlapping windows of n_ctx tokens (last partial one dropped),
                          each from an empty cache, scoring positions 1..n_ctx-1; needs one full window */
    SQ_PPL_STRIDE,     /* windows of n_ctx tokens advancing by `stride`, each scoring only the tokens the
                          previous window did not (Hugging Face's perplexity guide); the last window may be
                          shorter, and a text shorter than n_ctx is one short window (at least 2 tokens) */
    SQ_PPL_SECOND_HALF /* llama.cpp: non-overlapping windows whose first token is replaced by BOS (bos_id),
                          scoring positions n_ctx/2+1..n_ctx-1; needs one full window */
} sq_ppl_protocol;

typedef struct sq_ppl_options {
    sq_ppl_protocol protocol;
    int n_ctx;     /* window length in tokens; 0: the model's max_seq_len */
    int stride;    /* SQ_PPL_STRIDE: tokens each window advances by, 1..n_ctx */
    int n_batch;   /* windows run together as sequences of one forward call; 0: 1 */
    int n_threads; /* 0: sq_cpu_count() */
    int bos_id;    /* the BOS the ids begin with (sq_tokenizer_bos_for), which SQ_PPL_SECOND_HALF also puts
                      first in every window; -1: none, every window keeps its own first token (llama.cpp) */
    const sq_model *ref;        /* reference model run on the same windows (same vocabulary), or NULL */
    const char *ref_logits_in;  /* read the reference's distributions from this file instead of running it */
    const char *ref_logits_out; /* write the reference's distributions here (needs ref) */
    int ref_top_k;              /* log-probs kept per token in ref_logits_out; 0: 64 */
    sq_progress_fn progress;    /* called after each batch of windows; may be NULL */
    void *progress_user;
    const char *source; /* names the input (its file) in error messages; may be NULL */
    /* NULL, or [n_layers] of the model: non-zero entries name blocks the model skips in every window
     * (sq_forward_ex; the reference runs whole): depth-pruning scores, the quality of a model with blocks
     * removed, without removing them */
    const unsigned char *skip_layers;
    sq_kv_type kv_type; /* how the model's KV cache stores keys and values (the reference's is always f32) */
    const char *device; /* where both models run (sq_context_options.device); NULL: "cpu" */
} sq_ppl_options;

typedef struct sq_ppl_window {
    int64_t start; /* first token of the window in the id sequence */
    int n_tokens;  /* window length */
    int n_scored;
    double nll; /* mean negative log-likelihood of its scored tokens (nats) */
    double kl;  /* mean KL(P_ref || P_model) over its scored tokens; 0 without a reference */
} sq_ppl_window;

typedef struct sq_ppl_result {
    double ppl, ppl_lo, ppl_hi; /* exp(mean NLL) and its 95% interval exp(mean ± 1.96·sd/√n) */
    double mean_nll, nll_sd;    /* nats per scored token */
    int64_t n_scored, n_ids;    /* tokens scored; tokens in the input */
    int n_windows, n_ctx;
    double seconds;           /* wall time of the whole evaluation */
    double tokens_per_second; /* tokens through the model's forward pass per second of the whole run */
    sq_ppl_window *windows;   /* [n_windows], malloc'ed: release with sq_ppl_result_free */
    /* with a reference (ref or ref_logits_in); has_ref is 0 otherwise */
    int has_ref;
    int kl_top_k;                  /* 0: KL is exact; k: KL over the reference's top k plus one tail bucket */
    double ref_ppl, ppl_ratio;     /* the reference's own perplexity; ppl / ref_ppl */
    double kl_mean, kl_max, kl_sd; /* KL(P_ref || P_model) per token, nats */
    double top1_agreement;         /* fraction of scored positions where both argmaxes agree */
    double ref_tail_mass;          /* kl_top_k > 0: mean reference mass outside the stored top k */
} sq_ppl_result;

/* Perplexity of `model` over token ids (for text: [BOS] + encode(text), BOS as sq_tokenizer_bos_for says)
 * with the chosen protocol; with a reference, also KL divergence and top-1 agreement. Fails when the ids do
 * not fill one window (SQ_PPL_WINDOWS, SQ_PPL_SECOND_HALF) or are fewer than 2 (SQ_PPL_STRIDE). */
SQ_NODISCARD sq_error *sq_perplexity(const sq_model *model, const int32_t *ids, int64_t n_ids,
                                     const sq_ppl_options *opts, sq_ppl_result *res);
void sq_ppl_result_free(sq_ppl_result *res);

/* Zero-shot multiple-choice tasks, scored as lm-evaluation-harness does (docs/eval.md). Task names: piqa,
 * arc_easy, arc_challenge, boolq, winogrande, hellaswag, openbook_qa, lambada. */
typedef struct sq_eval_options {
    const char *data_dir;    /* folder with the task files (piqa.jsonl, hellaswag_val.txt.bz2, ...) */
    int limit;               /* items per task; 0: all */
    int n_batch;             /* items run together as sequences of one forward call; 0: 1 */
    int n_threads;           /* 0: sq_cpu_count() */
    int n_ctx;               /* 0: the model's max_seq_len; longer items lose context tokens from the left */
    sq_bos_policy bos;       /* whether requests start with BOS; SQ_BOS_AUTO (0): as the tokenizer says */
    sq_progress_fn progress; /* called after each batch of items, counting over all tasks */
    void *progress_user;
    sq_kv_type kv_type; /* how the KV cache stores keys and values */
    const char *device; /* sq_context_options.device; NULL: "cpu" */
} sq_eval_options;

typedef struct sq_task_result {
    char task[32];
    int n_items;
    double acc, acc_stderr; /* stderr = sqrt(p(1-p)/(n-1)) */
    int has_acc_norm;       /* acc_norm: argmax of log-prob per byte of the choice */
    double acc_norm, acc_norm_stderr;
    int has_ppl; /* lambada: exp(-mean log-likelihood of the continuation) */
    double ppl;
    double score;    /* the task's headline number: acc_norm where reported, else acc */
    int n_truncated; /* items that lost context tokens to fit n_ctx */
    double seconds;
} sq_task_result;

/* Runs the comma-separated tasks in order; *results (malloc'ed, caller frees) gets one entry per task. */
SQ_NODISCARD sq_error *sq_eval_tasks(const sq_model *model, const char *tasks, const sq_eval_options *opts,
                                     sq_task_result **results, int *n_results);

/* ---------------------------------------------------------------- calibration (compression)
 *
 * The loop that calibrated compression methods (GPTQ, AWQ, SmoothQuant, imatrix; Wanda, SparseGPT, width
 * scores) run on, as GPTQ's, SparseGPT's and Wanda's reference code runs it: block by block. The hidden
 * states of all samples at the current block's input are held ([n_samples][seq_len][dim] fp32); the block
 * runs over them with the calibration tap set (sq_context_set_tap), so the method sees every linear layer's
 * input; the method then changes that block's weights (sq_model_edit_tensors); the block runs again on the
 * same inputs with the changed weights to produce the next block's inputs, so that later blocks are
 * calibrated on the outputs of the already-compressed ones. Memory: the hidden states, one context's
 * activations and one block's statistics. */

/* Calibration samples: n_samples windows of seq_len token ids each. */
typedef struct sq_calib_samples {
    int n_samples, seq_len;
    int32_t *ids; /* [n_samples][seq_len], malloc'ed: release with sq_calib_samples_free */
} sq_calib_samples;

/* Draws n_samples windows of seq_len tokens from text encoded with tok (no BOS, special-token text not
 * matched), each starting at a uniformly random token position (splitmix64 from seed; windows may overlap),
 * as GPTQ's and Wanda's scripts draw them from C4/WikiText. With bos_id >= 0 (sq_tokenizer_bos_for) every
 * window is BOS followed by seq_len-1 text tokens. Fails with SQ_ERR_INVALID_ARG when n_samples or seq_len
 * is below 1 (or seq_len is 1 with a BOS), their product exceeds 2^28 tokens, or the text holds fewer tokens
 * than one window needs (the message gives both counts). */
SQ_NODISCARD sq_error *sq_calib_samples_from_text(const sq_tokenizer *tok, const char *text, size_t len,
                                                  int n_samples, int seq_len, int bos_id, uint64_t seed,
                                                  sq_calib_samples *out);
/* Samples from given ids ([n_samples][seq_len], copied). */
SQ_NODISCARD sq_error *sq_calib_samples_from_ids(const int32_t *ids, int n_samples, int seq_len,
                                                 sq_calib_samples *out);
void sq_calib_samples_free(sq_calib_samples *s);

/* Statistics the loop gathers per distinct linear-layer input (flags, or-ed). */
enum {
    SQ_CALIB_XTX = 1,     /* sum over tokens of x x^T: GPTQ's and SparseGPT's H = 2 XX^T / n_tokens */
    SQ_CALIB_SUM_SQ = 2,  /* per channel sum of x^2: Wanda's ||x||_2, llama.cpp's imatrix */
    SQ_CALIB_SUM_ABS = 4, /* per channel sum of |x|: AWQ's mean |x| */
    SQ_CALIB_MAX_ABS = 8  /* per channel max |x|: SmoothQuant */
};

/* The statistics of one block's input at one tap point, summed over all samples' tokens in double precision.
 * The inputs of block `layer`: SQ_TAP_ATTN_IN (attn_q, attn_k, attn_v share it; width dim), SQ_TAP_ATTN_OUT
 * (attn_output; n_heads * head_dim), SQ_TAP_FFN_IN (ffn_gate, ffn_up; dim), SQ_TAP_FFN_DOWN (ffn_down; the
 * layer's ffn_dim). In a mixture-of-experts block, SQ_TAP_EXPERT_IN and SQ_TAP_EXPERT_DOWN of each expert
 * over the tokens routed to it (n_tokens 0: none was), and SQ_TAP_FFN_DOWN is the shared expert's down
 * input (width 0 without one). Arrays not asked for, or of width 0, are NULL. */
typedef struct sq_calib_stats {
    int layer;
    sq_tap_point point;
    int expert; /* SQ_TAP_EXPERT_*: which expert; else -1 */
    int width;
    int64_t n_tokens; /* tokens summed */
    double *xtx;      /* [width][width] sum of x x^T (symmetric, both triangles filled) */
    double *sum_sq;   /* [width] */
    double *sum_abs;  /* [width] */
    double *max_abs;  /* [width] */
} sq_calib_stats;

/* A calibrated method: what it wants gathered and what it does with each block. */
typedef struct sq_calib_method {
    unsigned stats; /* SQ_CALIB_* flags */
    /* May be NULL. Each chunk of a linear layer's input of the block being calibrated, as the tap sees it
     * (tokens in sample order; x valid during the call only): for methods that need the activations
     * themselves (AWQ's search of the output error). */
    void (*on_input)(void *user, int layer, sq_tap_point point, const float *x, int n_tokens, int width);
    /* May be NULL. Called once per block after its inputs were gathered: stats[p] for p = SQ_TAP_ATTN_IN ..
     * SQ_TAP_FFN_DOWN, then in a mixture-of-experts block stats[4 + 2e] (SQ_TAP_EXPERT_IN) and
     * stats[5 + 2e] (SQ_TAP_EXPERT_DOWN) for each expert e. Changes the block's weights through
     * sq_model_edit_tensors (any tensor of this block; shapes may change: width pruning). An error stops the
     * loop and is returned. */
    SQ_NODISCARD sq_error *(*apply_block)(void *user, sq_model *model, int layer,
                                          const sq_calib_stats *stats);
    /* Non-zero: apply_block changes weights, so the block runs again to give the next block its inputs.
     * Zero (statistics only, e.g. imatrix): the gathering pass's outputs are used. */
    int changes_weights;
    /* Non-zero: apply_block uses the per-expert statistics (each 3-D ffn_*_exps tensor processed expert by
     * expert); sq_calibrate refuses mixture-of-experts models to methods without it. */
    int experts;
    void *user;
} sq_calib_method;

typedef struct sq_calib_options {
    int n_threads;    /* 0: all online cores */
    int batch_tokens; /* samples run together per forward step, in tokens (at least one sample); 0: 2048 */
    sq_progress_fn progress; /* called after each block: done blocks of n_layers; may be NULL */
    void *progress_user;
} sq_calib_options;

/* Runs the block-by-block loop over every block of model (0 .. n_layers-1, in order) on the samples. The
 * model must have no context (the loop creates its own) and no other user meanwhile. Fails with
 * SQ_ERR_INVALID_ARG when a sample is longer than the model's context or holds an id outside its vocabulary,
 * or when opts are out of range; errors from apply_block are returned as they are. On failure the blocks
 * before the failing one keep the changes apply_block made. */
SQ_NODISCARD sq_error *sq_calibrate(sq_model *model, const sq_calib_samples *samples,
                                    const sq_calib_method *method, const sq_calib_options *opts);
/* ---------------------------------------------------------------- pruning
 *
 * sq_prune changes a loaded model in place through the calls above (sq_model_edit_tensors,
 * sq_model_set_layers); save it with sq_model_save. Unstructured and N:M methods prune every block's linear
 * weights (attn_q/k/v/output, ffn_gate/up/down; not the embeddings, norms or output head), either a fraction
 * `sparsity` of each matrix or N:M (nm_m > 0): in every group of M consecutive weights of a row (along the
 * input), the M - N lowest-scored, so that at most N stay non-zero (NVIDIA's 2:4 sparsity). Pruned weights
 * are exactly zero, stored in the tensor's own format; formats whose zero is not exact (a per-group minimum:
 * q4_1) are refused. Scores are ranked as fp32, equal scores lower index first.
 *  - SQ_PRUNE_MAGNITUDE: the smallest |W|, one threshold per matrix (the baseline of Wanda's and SparseGPT's
 *    papers).
 *  - SQ_PRUNE_WANDA (Sun et al. 2023, "A simple and effective pruning approach for LLMs"): the smallest
 *    |W_ij| * ||X_j||_2 (X_j: input channel j over the calibration tokens) within each output row.
 *  - SQ_PRUNE_SPARSEGPT (Frantar & Alistarh 2023, "SparseGPT: massive language models can be accurately
 *    pruned in one-shot"): columns in lazy blocks of 128 through the inverse Hessian H^-1 of H = 2 X^T X / n
 *    (dampened by 1% of its mean diagonal; Cholesky through LAPACK); in each block the weights with the
 *    smallest w^2 / [H^-1]_jj^2 (unstructured: a fraction `sparsity` of the block; N:M: per group as it is
 *    reached) become zero and the error is spread over the later columns (OBS update), as the paper's
 *    reference code does.
 *    Wanda and SparseGPT calibrate block by block on `calib` through sq_calibrate, so each block sees the
 *    outputs of the blocks already pruned.
 *  - SQ_PRUNE_WIDTH (structured): each block loses floor(heads * n_kv_heads) whole key/value groups (a KV
 *    head with the query heads that share it; plain heads without GQA) and floor(ffn * ffn_dim) FFN channels,
 *    the least important by Wanda's score summed over the structure's columns of its output projection
 *    (attn_output for a head, ffn_down for a channel: sum |W_ij| * ||X_j||_2; Wanda-sp, An et al. 2024),
 *    calibrated block by block on `calib`. The blocks get genuinely smaller matrices (q/k/v rows and biases,
 *    attn_output columns, gate/up rows, down columns), so blocks may differ in shape; GGUF stores the
 *    per-block head counts and FFN widths as arrays, as llama.cpp reads them.
 *  - SQ_PRUNE_DEPTH: Shortened LLaMA (Kim et al. 2024, "Shortened LLaMA: depth pruning for LLMs"): scores
 *    every transformer block, then removes the n_remove least important in one shot (sq_model_set_layers).
 *    SQ_DEPTH_PPL scores a block by the perplexity of the calibration samples with that block alone skipped
 *    (forward passes only; sq_ppl_options.skip_layers; each sample a window from an empty cache scored at
 *    positions 1..seq_len-1, 4 samples per forward call), SQ_DEPTH_MAGNITUDE by the sum of |W| over its
 *    linear weights (the paper's Mag criterion), SQ_DEPTH_TAYLOR by the paper's Taylor+: the sum over the
 *    block's weights (linear and norm) of |dL/dW * W|, L the next-token cross-entropy of the calibration
 *    samples (gradients from the trainer's backward pass, "training" above), with the first taylor_keep_first
 *    and last taylor_keep_last blocks never removed (the paper keeps the first four and last two of 32).
 *  - SQ_PRUNE_LOWRANK: truncated SVD (Eckart-Young: the best rank-r approximation in the Frobenius norm) of
 *    every block's linear weight W [out][in] = U S V^T (LAPACK dgesdd, in double), stored as two thin
 *    matrices that run as two matmuls: B = U_r S_r^1/2 [out][r] ("<name>.weight_b") and A = S_r^1/2 V_r^T
 *    [r][in] ("<name>.weight_a"), in W's own float format (docs/formats.md, "Low-rank weights").
 *  - SQ_PRUNE_ASVD (Yuan et al. 2023, "ASVD: activation-aware singular value decomposition for compressing
 *    large language models"): the same on W D, D = diag(m_j^alpha) with m_j the mean |x_j| of input channel j
 *    over the calibration tokens of the original model (channels never active take the mean of the others),
 *    then A = S_r^1/2 V_r^T D^-1, so the discarded part is small where the inputs are large.
 *    Ranks: with rank_ratio, each weight keeps round(rank_ratio * min(out, in)) (at least 1); with
 *    param_ratio, ranks are chosen under one budget for all blocks' linear weights, by singular-value energy:
 *    singular values are taken greedily in order of sigma_k^2 / ||W D||_F^2 (the fraction of the matrix's
 *    (activation-weighted) energy each keeps) per parameter it costs (out + in), every weight keeping at
 *    least rank 1, until the kept parameters reach param_ratio of the original. A weight whose rank saves no
 *    parameters (r (out + in) >= out in) stays dense. Models whose linear weights are in block formats are
 *    refused (factorise f32/f16/bf16, then quantize: RTN quantizes the factors).
 *  - SQ_PRUNE_EXPERTS (mixtures of experts): the calibration samples run through the model once; each block's
 *    router logits give every token's top k (the model's routing rule), and each block loses the
 *    n_remove_experts experts that the fewest tokens chose (ties: lower index first): their matrices leave
 *    ffn_{gate,up,down}_exps and their rows the router ffn_gate_inp, in the tensors' own formats, so the
 *    model routes every token as before with those experts' router logits at minus infinity. Shared experts
 *    (Qwen2-MoE) stay. */
typedef enum sq_prune_method {
    SQ_PRUNE_MAGNITUDE = 0,
    SQ_PRUNE_WANDA,
    SQ_PRUNE_SPARSEGPT,
    SQ_PRUNE_WIDTH,
    SQ_PRUNE_DEPTH,
    SQ_PRUNE_LOWRANK,
    SQ_PRUNE_ASVD,
    SQ_PRUNE_EXPERTS
} sq_prune_method;

typedef enum sq_depth_criterion { SQ_DEPTH_PPL = 0, SQ_DEPTH_MAGNITUDE, SQ_DEPTH_TAYLOR } sq_depth_criterion;

typedef struct sq_prune_options {
    sq_prune_method method;
    /* unstructured and N:M methods: either sparsity in [0, 1) (0 runs the method and removes nothing), or
     * N:M with 0 < nm_n < nm_m <= 256 and nm_m dividing every pruned matrix's input width (sparsity 0) */
    double sparsity;
    int nm_n, nm_m;
    /* Wanda and SparseGPT at a sparsity: owl_lambda in (0, sparsity] turns on OWL (Yin et al. 2024): each
     * block's sparsity from its outlier ratio (share of Wanda scores above owl_m times the block's mean; 0:
     * the paper's 5), spread over [sparsity - owl_lambda, sparsity + owl_lambda] and averaging sparsity, more
     * outliers keeping more weights; 0: every block at sparsity */
    double owl_lambda, owl_m;
    /* SQ_PRUNE_WIDTH: fractions in [0, 1) of each block's key/value groups and FFN channels removed; each
     * block must keep at least one of each */
    double heads, ffn;
    /* SQ_PRUNE_DEPTH */
    int n_remove; /* blocks to remove: 1 .. n_layers-1 */
    sq_depth_criterion criterion;
    /* SQ_DEPTH_TAYLOR: blocks at the start and end that are never removed; 0: the paper's 4 and 2 of 32
     * scaled to the model's depth, ceil(n_layers / 8) and ceil(n_layers / 16); negative: none */
    int taylor_keep_first, taylor_keep_last;
    /* SQ_PRUNE_LOWRANK and SQ_PRUNE_ASVD: exactly one of rank_ratio in (0, 1] (per weight) and param_ratio
     * in (0, 1) (of all blocks' linear-weight parameters kept); the other 0 */
    double rank_ratio, param_ratio;
    double asvd_alpha; /* SQ_PRUNE_ASVD's exponent alpha in (0, 4]; 0: the paper's 0.5 */
    /* SQ_PRUNE_EXPERTS: experts every block loses, 1 .. n_experts - n_experts_used */
    int n_remove_experts;
    /* Calibration samples (sq_calib_samples_from_text) for Wanda, SparseGPT, width, ASVD and SQ_DEPTH_PPL;
     * NULL for the others. Shortened LLaMA scores with a handful of short sequences (10 of 128 tokens); Wanda
     * and SparseGPT calibrate on 128 of 2048 in their papers (shorter ones on small models). */
    const sq_calib_samples *calib;
    int n_threads; /* 0: all online cores */
    /* called after each block is pruned or scored; may be NULL */
    sq_progress_fn progress;
    void *progress_user;
} sq_prune_options;

typedef struct sq_prune_result {
    int64_t params_before, params_after;   /* elements of all tensors */
    int64_t nonzero_before, nonzero_after; /* of them, those not zero */
    size_t bytes_before, bytes_after;      /* weight bytes in memory */
    int n_layers_before, n_layers_after;
    int64_t n_pruned; /* weights the masks chose (unstructured and N:M; some may have been zero already) */
    /* SQ_PRUNE_DEPTH: scores[n_layers_before] (higher: more important; ppl: perplexity with the block
     * skipped; magnitude: sum |W|), base_score the unpruned model's calibration perplexity (ppl; 0 for
     * magnitude), removed[n_removed] the old indices of the removed blocks, ascending. Malloc'ed; NULL for
     * other methods. */
    double *scores;
    double base_score;
    int *removed;
    int n_removed;
    int n_factorised; /* SQ_PRUNE_LOWRANK, SQ_PRUNE_ASVD: linear weights now stored as low-rank factors */
    /* OWL: layer_sparsity[n_layers_before] each block's sparsity, owl_lod[n_layers_before] its outlier ratio
     * (malloc'ed; NULL without OWL) */
    double *layer_sparsity, *owl_lod;
    /* SQ_PRUNE_EXPERTS: scores[n_layers][n_experts_before] the share of calibration tokens whose top k held
     * each expert, removed[n_layers][n_removed] the removed experts' old indices per block, ascending */
    int n_experts_before;
    /* Wanda, SparseGPT on a mixture of experts: the experts no calibration token was routed to, pruned by
     * magnitude instead, one line "blk.L.ffn_*_exps.weight: experts E E ..." each (malloc'ed; NULL: none) */
    char *experts_magnitude;
} sq_prune_result;

/* Checks a request against the model without changing anything: SQ_ERR_INVALID_ARG naming the problem
 * (sparsity outside [0, 1), N:M with N >= M or M not dividing a matrix's width, removing no block or every
 * block, a width that leaves a block no head or no FFN channel, missing calibration samples or ones the model
 * cannot run, an unknown method or criterion), SQ_ERR_UNSUPPORTED for a format without an exact zero, or a
 * block format whose blocks a width cut would split. sq_prune makes the same checks before any work. */
SQ_NODISCARD sq_error *sq_prune_check(const sq_model *model, const sq_prune_options *opts);
/* Prunes model in place (no context on it may exist) and fills res (release with sq_prune_result_free). On
 * failure after the checks (out of memory, a Hessian that is not positive definite), blocks already pruned
 * stay pruned: discard the model. */
SQ_NODISCARD sq_error *sq_prune(sq_model *model, const sq_prune_options *opts, sq_prune_result *res);
void sq_prune_result_free(sq_prune_result *res);

/* ---------------------------------------------------------------- importance matrix (imatrix)
 *
 * llama.cpp's importance matrix: for each weight matrix of the blocks, the mean over the calibration tokens
 * of the square of each input channel (sum_t x_tj^2 / n_tokens, j < the matrix's row length), gathered block
 * by block through sq_calibrate with statistics only (the weights do not change). sq_quantize_params.imatrix
 * uses it as llama-quantize does: each value's weight in the importance-weighted scale searches of the
 * K-quants, Q4_0/Q4_1 and Q5_0/Q5_1 (sq_dtype_traits.from_f32_weighted, core/dtype_ref.c). Entries are named
 * by the weight's canonical name ("blk.0.attn_q.weight"); attn_q/k/v hold the same values (one input), as do
 * ffn_gate/up. The output layer and token_embd have no entry (the calibration tap does not see the output
 * layer's input): they are quantized without one. The file format is squeeze's own (docs/formats.md,
 * "imatrix files"). */
typedef struct sq_imatrix sq_imatrix;

typedef struct sq_imatrix_entry {
    const char *name;    /* the weight's canonical name; owned by the imatrix */
    int64_t n_tokens;    /* calibration tokens the means are over */
    int n_values;        /* the weight's row length (input channels) */
    const float *values; /* [n_values] mean x^2 per input channel, finite and >= 0 */
} sq_imatrix_entry;

/* Gathers the imatrix of every block's seven linear weights on the samples (sq_calibrate; the model is not
 * changed, but may have no context meanwhile). Errors as sq_calibrate's. */
SQ_NODISCARD sq_error *sq_imatrix_compute(sq_model *model, const sq_calib_samples *samples,
                                          const sq_calib_options *opts, sq_imatrix **out);
/* Writes the file (a temporary file renamed into place: an interrupted write leaves nothing under path). */
SQ_NODISCARD sq_error *sq_imatrix_save(const sq_imatrix *im, const char *path);
/* Reads an imatrix file, squeeze's own or llama.cpp's GGUF imatrix (docs/formats.md, "imatrix files");
 * sq_imatrix_parse reads one from memory (source names it in errors; may be NULL). Fails with SQ_ERR_FORMAT
 * naming the problem (bad magic or version, truncation, trailing bytes, a name that is empty, longer than
 * 1024 bytes or holds a NUL, a duplicate name, a count of 0 or above 2^24 values, more than 65536 entries, a
 * value that is negative or not finite; in a GGUF: another general.type, an unpaired or non-F32 in_sum2 or
 * counts tensor), SQ_ERR_UNSUPPORTED for a GGUF imatrix of per-expert sums and SQ_ERR_IO when the file
 * cannot be read. */
SQ_NODISCARD sq_error *sq_imatrix_load(const char *path, sq_imatrix **out);
SQ_NODISCARD sq_error *sq_imatrix_parse(const void *data, size_t size, const char *source, sq_imatrix **out);
int sq_imatrix_n_entries(const sq_imatrix *im);
/* Entry i (0 .. n_entries-1), in the order computed or read. */
void sq_imatrix_entry_at(const sq_imatrix *im, int i, sq_imatrix_entry *out);
/* The entry named `name`: 1 and *out filled, or 0. */
int sq_imatrix_find(const sq_imatrix *im, const char *name, sq_imatrix_entry *out);
void sq_imatrix_free(sq_imatrix *im);

/* ---------------------------------------------------------------- training: backward pass, LoRA (src/train/)
 *
 * A trainer holds an fp32 copy of a model's weights (block formats dequantized by their reference
 * dequantizer; the model itself is never changed), optional LoRA adapters (Hu et al. 2021) on chosen linear
 * layers of every block, their gradients and AdamW moments, and the activations of one batch. A step runs the
 * whole batch forward (the same arithmetic as the inference forward pass, causal attention over whole
 * sequences), then backward block by block, recomputing each block's activations from its saved input so
 * that memory is the residual stream of every block plus one block's activations. Gradients flow only where
 * needed: into the adapters, and with weight_grads into every block's linear and norm weights (Taylor
 * importance); embeddings and the output head stay frozen. A LoRA layer computes
 * y = W x + (alpha / rank) * B (A x), A [rank][in], B [out][rank], as PEFT does (A kaiming-uniform with
 * a = sqrt(5), B = 0 at creation). */

enum {
    SQ_LORA_Q = 1,
    SQ_LORA_K = 2,
    SQ_LORA_V = 4,
    SQ_LORA_O = 8,
    SQ_LORA_GATE = 16,
    SQ_LORA_UP = 32,
    SQ_LORA_DOWN = 64,
    SQ_LORA_ALL = 127
};

/* Parses a comma list of q,k,v,o,gate,up,down (also PEFT's q_proj, ..., down_proj) into SQ_LORA_* bits. */
SQ_NODISCARD sq_error *sq_lora_parse_targets(const char *list, unsigned *targets);

typedef struct sq_trainer_options {
    int n_threads;  /* 0: sq_cpu_count() */
    int max_tokens; /* most tokens (sequences x length) one sq_trainer_run takes: sizes the activations */
    int lora_rank;  /* 0: no adapters */
    float lora_alpha;
    unsigned lora_targets; /* SQ_LORA_* bits */
    uint64_t seed;         /* LoRA A's initial values */
    int weight_grads;      /* also accumulate dL/dW of every block's linear and norm weights */
} sq_trainer_options;

typedef struct sq_trainer sq_trainer;

/* SQ_ERR_INVALID_ARG for options out of range or a model the trainer cannot run (q/k/v biases are frozen and
 * supported; sliding windows are applied). */
SQ_NODISCARD sq_error *sq_trainer_create(const sq_model *model, const sq_trainer_options *opts,
                                         sq_trainer **out);
void sq_trainer_free(sq_trainer *t);

/* The loss of a batch of n_seqs sequences of seq_len tokens, averaged over its positions:
 *   ce_weight * next-token cross-entropy (positions 0 .. seq_len-2 predict tokens 1 .. seq_len-1)
 *   + kd_weight * kd_temp^2 * KL(softmax(teacher / kd_temp) || softmax(student / kd_temp)) (every position;
 *     Hinton et al. 2015), the teacher's logits [seq_len][vocab] of sequence `seq` supplied by `teacher`. */
typedef struct sq_loss_options {
    float ce_weight, kd_weight, kd_temp;
    SQ_NODISCARD sq_error *(*teacher)(void *user, int seq, const int32_t *tokens, int seq_len, float *logits);
    void *teacher_user;
} sq_loss_options;

typedef struct sq_loss_value {
    double loss; /* the weighted total */
    double ce;   /* mean cross-entropy (nats per predicted token); 0 when ce_weight is 0 */
    double kd;   /* mean KL (nats per position, without kd_temp^2); 0 when kd_weight is 0 */
} sq_loss_value;

/* Runs tokens [n_seqs][seq_len] forward and, when backward is non-zero, backward: the gradients of
 * value->loss are added to the trainer's (sq_trainer_zero_grad clears them). */
SQ_NODISCARD sq_error *sq_trainer_run(sq_trainer *t, const int32_t *tokens, int n_seqs, int seq_len,
                                      const sq_loss_options *loss, int backward, sq_loss_value *value);
void sq_trainer_zero_grad(sq_trainer *t);

/* AdamW (Loshchilov & Hutter 2019) on the adapters: the gradient is first clipped to global L2 norm
 * clip_norm (0: no clipping), then m, v updated with bias correction and decoupled weight decay. The
 * gradient's norm before clipping is returned in *grad_norm. */
typedef struct sq_adamw_options {
    float lr, beta1, beta2, eps, weight_decay, clip_norm;
} sq_adamw_options;
SQ_NODISCARD sq_error *sq_trainer_adamw_step(sq_trainer *t, const sq_adamw_options *o, double *grad_norm);
/* Linear warm-up over `warmup` steps to lr, then cosine decay to lr * min_ratio at step `total` (step counts
 * from 0). */
float sq_lr_schedule(float lr, int step, int warmup, int total, float min_ratio);
/* Optimizer steps taken (restored by sq_trainer_load_state). */
int64_t sq_trainer_steps(const sq_trainer *t);

/* Checkpoints: adapters, AdamW moments and the step count, bit for bit; loading into a trainer created with
 * the same model and options continues exactly as if never stopped. A state of other shapes is refused. */
SQ_NODISCARD sq_error *sq_trainer_save_state(const sq_trainer *t, const char *path);
SQ_NODISCARD sq_error *sq_trainer_load_state(sq_trainer *t, const char *path);

/* The adapters as PEFT saves them, in directory dir (created when missing): adapter_model.safetensors
 * (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [rank][in], .lora_B.weight [out][rank],
 * ...; F32; q/k rows in Hugging Face's rotate-half order whatever the model's RoPE pairing, as a Hugging Face
 * export of the model has them) and adapter_config.json (peft_type LORA, r, lora_alpha, target_modules). */
SQ_NODISCARD sq_error *sq_trainer_save_adapter(const sq_trainer *t, const char *dir);
/* Folds the adapters into the model's weights: W + (alpha / rank) B A, stored back in each tensor's own
 * format (a quantized base is re-quantized by its format's reference quantizer). No context may exist on
 * the model. */
SQ_NODISCARD sq_error *sq_trainer_merge(const sq_trainer *t, sq_model *model);
/* Reads a PEFT adapter (a directory with adapter_model.safetensors and adapter_config.json, or the
 * .safetensors file with its config beside it) and folds it into the model as sq_trainer_merge does (the
 * `--lora FILE` of the CLI). Key names, shapes and the config are checked against the model; an adapter for
 * modules squeeze does not have, or with a DoRA/rsLoRA/bias setting it does not compute, is refused. */
SQ_NODISCARD sq_error *sq_model_apply_lora(sq_model *model, const char *path);

/* Data-free distillation data (LLM-QAT, Liu et al. 2023): n_samples sequences of seq_len tokens sampled from
 * the teacher itself, each starting (after BOS where the tokenizer adds one) with a token drawn uniformly
 * from the vocabulary, then continued by plain sampling (temperature 1, no truncation), 16 sequences per
 * forward batch. Deterministic for a seed (and kernel set). Release with sq_calib_samples_free. */
SQ_NODISCARD sq_error *sq_generate_samples(const sq_model *teacher, int n_samples, int seq_len, uint64_t seed,
                                           int n_threads, sq_calib_samples *out);

/* Taylor importance of every block (Molchanov et al. 2019, as Shortened LLaMA scores blocks): sum over the
 * block's weights of |dL/dW * W|, from the gradients accumulated so far (weight_grads must be set).
 * scores [n_layers]. */
SQ_NODISCARD sq_error *sq_trainer_block_taylor(const sq_trainer *t, double *scores);

/* ---------------------------------------------------------------- quantization
 *
 * sq_quantize_model stores a loaded model's weight matrices in llama.cpp's block formats (docs/formats.md),
 * in place (through sq_model_edit_tensors, so the rules of "changing a model" above hold), and optionally
 * writes the result as a GGUF file that llama.cpp and squeeze load. Which format each tensor gets follows
 * `type`:
 *  - a name llama.cpp has as a file type (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q6_k, q3_k_m, q4_k_s, q4_k_m,
 *    q5_k_m): llama-quantize's rules for it (llama-quant.cpp): the output layer (token_embd when tied) in
 *    Q6_K, more bits for attn_v and ffn_down in some layers of the _M mixes, ...;
 *  - q3_k, q4_k, q5_k: every weight matrix in that format (llama-quantize --pure);
 *  - w8a8 (squeeze's own, docs/formats.md): every weight matrix, int8 per output channel, its products
 *    quantizing activations to int8 per token;
 *  - intN_gG for N = 4, 3, 2 and G = 32, 64, 128 (int4_g32 .. int2_g128; squeeze's own): every weight matrix
 *    in asymmetric intN with an f16 scale and an integer zero point per group of G (GPTQ's convention;
 *    `squeeze quantize --type int4|int3|int2 --group G`), rows that are not whole groups in the largest
 *    smaller group of the same N that fits; intN_g0 (int4_g0, int3_g0, int2_g0; `--group 0`): one scale and
 *    zero point per row (output channel), rows in whole blocks of 32;
 *  - sparse24_q8, sparse24_q4, sparse24_f16 (squeeze's own, 2:4 semi-structured, docs/formats.md):
 *    the blocks' matrices that are 2:4 already (squeeze prune --nm 2:4) keep only their kept values and
 *    positions, the values as q8_0, q4_0 or f16 store them; every other matrix gets that dense format; a
 *    model with no 2:4 matrix is refused, and so is a keep rule naming a matrix that is not 2:4;
 * then `keep` overrides, first match winning; a matrix whose rows are not whole blocks of a rule's format
 * falls back as llama.cpp's does (Q4_K -> Q5_0, Q6_K -> Q8_0, ..., else F16) and the report says so. Norms
 * and other 1-D tensors stay as they are. */

/* --keep PATTERN=TYPE: weight matrices whose canonical name matches the shell-style glob `pattern`
 * ("blk.*.ffn_down.weight", "output.weight") are stored as `type`, a format name ("q8_0", "f16", ...). */
typedef struct sq_quant_keep {
    const char *pattern;
    const char *type;
} sq_quant_keep;

typedef struct sq_quantize_params {
    const char *type;   /* a format or preset name, as above */
    const char *method; /* how stored values are chosen: "rtn" (NULL: rtn), round to nearest with each
                           format's reference quantizer (llama.cpp's reference algorithms, no imatrix);
                           "gptq" (needs calib): GPTQ (Frantar et al. 2022) block by block through
                           sq_calibrate, each block's matrices on the outputs of the already-quantized
                           blocks before it, onto the grid of every format but f16/bf16/w8a8 (those
                           are refused before any work): for ggml's block formats (q4_0 ... q6_k) each
                           block's scales come from the format's own search (imatrix-weighted with
                           imatrix) on the error-updated weights, the file bit-compatible with
                           llama.cpp's; matrices outside the blocks (token_embd, output) are rounded to
                           nearest */
    const sq_calib_samples *calib; /* calibration samples (methods that need them; NULL otherwise) */
    double gptq_damp;              /* gptq: fraction of the Hessian's mean diagonal added to it; 0: 0.01 */
    int gptq_act_order;            /* gptq: columns by decreasing Hessian diagonal, static groups */
    /* "smoothquant" (needs calib; formats that quantize activations: w8a8): SmoothQuant (Xiao et al. 2023),
     * per block the inputs' per-channel max |x| migrated into the weights, s = max|x|^alpha /
     * max|w|^(1 - alpha), folded into the norms, attn_v and ffn_up (compress/quant/smoothquant.h), then
     * round to nearest. smooth_alpha: its migration strength in (0, 1]; 0: 0.5 */
    double smooth_alpha;
    const sq_quant_keep *keep;
    int n_keep;
    int n_threads; /* 0: all online cores */
    const char
        *output; /* a GGUF file to write (atomically: a temporary file renamed into place, so an
                    interrupted run leaves nothing under this name), or NULL to only change the model */
    /* NULL, or an imatrix (methods rtn and gptq): every matrix with an entry is quantized by its format's
     * importance-weighted search where the format has one (llama-quantize --imatrix; with gptq, the search
     * that chooses each block's scales from the error-updated weights); an entry whose length is not the
     * matrix's row length is refused before any work */
    const sq_imatrix *imatrix;
    /* > 0 (method rtn only): mixed precision. The blocks' weight matrices that no keep rule names get the
     * formats (among q2_k, q3_k, q4_0, q4_k, q5_0, q5_k, q6_k, q8_0, f16 whose blocks fit their rows) that
     * keep the whole file's bits per weight (every tensor, as the report counts) at most budget_bpw with the
     * least summed sensitivity, chosen greedily by sensitivity removed per added byte
     * (compress/quant/budget.c). Sensitivity with calib: measured, the mean KL divergence of the next-token
     * distributions on calib's windows with that matrix alone quantized (one forward pass over them per
     * matrix and candidate; the model is put back after each); without: the relative output error
     * sum_ij qw_j (W_ij - Q(W)_ij)^2 / sum_ij qw_j W_ij^2, qw the imatrix entry (1 without one). A budget
     * below the cheapest choice is refused before any measuring. The other tensors keep the type's rules. */
    double budget_bpw;
} sq_quantize_params;

/* What happened to one tensor. Strings belong to the report. */
typedef struct sq_quant_tensor_report {
    const char *name;
    const char *from;   /* its format before */
    const char *type;   /* its format now (= from for tensors left alone) */
    const char *wanted; /* what the rules asked for; differs from type after a fallback */
    int64_t n_elems;
    size_t bytes_before, bytes_after;
    int weighted; /* quantized by the format's importance-weighted search with the imatrix's entry */
    int kept;     /* its format came from a --keep rule */
    /* a 3-D expert tensor under a calibrated method: the experts no calibration token was routed to, rounded
     * to nearest instead ([n_experts_rtn], malloc'ed; NULL when none) */
    int *experts_rtn;
    int n_experts_rtn;
} sq_quant_tensor_report;

typedef struct sq_quantize_report {
    const char *type, *method;
    int n_tensors;                   /* every tensor of the model, in its order */
    sq_quant_tensor_report *tensors; /* [n_tensors] */
    int n_quantized;                 /* tensors whose format changed */
    int n_fallbacks;                 /* tensors stored in another format than the rules asked for */
    int n_weighted;  /* tensors quantized with an imatrix entry (sq_quantize_params.imatrix) */
    int64_t n_elems; /* elements of all tensors */
    size_t bytes_before, bytes_after; /* of all tensors */
    double bits_per_weight;           /* 8 * bytes_after / n_elems, all tensors */
    double seconds;                   /* quantizing and writing */
} sq_quantize_report;

/* Quantizes `model` as params says; progress (may be NULL) counts elements of the tensors being quantized.
 * Every request is checked before any work: an unknown type or method, a keep pattern matching no weight
 * matrix or naming a format a matching tensor's rows cannot take, an output that cannot be created
 * (SQ_ERR_INVALID_ARG / SQ_ERR_IO, naming it; the model unchanged). *report (may be NULL) receives a report
 * the caller frees with sq_quantize_report_free, also when writing the file fails after quantizing. */
SQ_NODISCARD sq_error *sq_quantize_model(sq_model *model, const sq_quantize_params *params,
                                         sq_progress_fn progress, void *user, sq_quantize_report **report);
void sq_quantize_report_free(sq_quantize_report *report);
/* Writes the report as JSON (docs/report-format.md, "quantize"); replaces path. */
SQ_NODISCARD sq_error *sq_quantize_report_write(const sq_quantize_report *report, const char *path);

/* Searching a self-speculation skip set (squeeze spec-search): greedy forward selection. Starting from no
 * skipped block, each round adds the block whose skipping keeps the self-draft's greedy choice closest to the
 * full model's: the fraction a of calibration positions where the argmax of the logits with the set skipped
 * equals the full model's (teacher-forced over the text: the draft's per-token acceptance at temperature 0).
 * Each set also gets Leviathan et al.'s (2023) estimate of the speedup at the best draft length k:
 * (1 - a^(k+1)) / ((1 - a) (k c + 1)), c = blocks run / n_layers (a draft token's cost relative to a target
 * token's), the verification of k+1 tokens costing about one target token (decoding is memory-bound). */
typedef struct sq_spec_search_options {
    int n_ctx;               /* tokens per calibration window; 0: 128 (at most the model's max_seq_len) */
    int n_windows;           /* consecutive windows of the text used; 0: 2 */
    int max_skip;            /* rounds (blocks added) at most, < n_layers; 0: n_layers / 2 */
    int n_threads;           /* 0: all online cores */
    sq_progress_fn progress; /* after each candidate set evaluated; may be NULL */
    void *progress_user;
} sq_spec_search_options;

typedef struct sq_spec_search_step {
    int layer;          /* the block this round adds: the set after round i is the layers of rounds 0..i */
    double agreement;   /* a: the set's greedy agreement with the full model */
    int k;              /* the draft length (1..SQ_SPEC_MAX_K) with the best estimate */
    double est_speedup; /* the estimate at that k */
} sq_spec_search_step;

/* Runs the search over ids[0..n_ids) (for text: [BOS] + encode(text)); steps is [max_skip], *n_steps gets the
 * rounds run. Fails with SQ_ERR_INVALID_ARG when the ids do not fill one window or the model has one block.
 */
SQ_NODISCARD sq_error *sq_spec_search(const sq_model *model, const int32_t *ids, int64_t n_ids,
                                      const sq_spec_search_options *opts, sq_spec_search_step *steps,
                                      int *n_steps);

/* ---------------------------------------------------------------- benchmark and report */

/* One benchmark workload. A repetition clears n_seqs sequences, prefills all their prompts (n_prompt random
 * token ids each, drawn from `seed`) in one sq_forward call, then runs n_gen decode steps, each one
 * sq_forward call carrying one greedily chosen token per sequence. n_prompt 0 benchmarks decoding alone
 * (from one random token per sequence, as llama-bench's -p 0), n_gen 0 the prefill alone; the metrics of
 * the part left out are NaN. */
typedef struct sq_bench_params {
    int n_prompt, n_gen; /* tokens per sequence, each >= 0, not both 0 */
    int n_seqs;
    int n_reps; /* timed repetitions summarised */
    /* The most timed rounds run (0: n_reps). A round (every model once) is disturbed when a model's threads
     * spent more than SQ_BENCH_MAX_CPU_WAIT of their time kept off a CPU (run-queue delay of the process's
     * threads, from /proc/self/task/N/schedstat, plus the hypervisor's steal time, from /proc/stat); rounds
     * run until n_reps were undisturbed or n_reps_max ran. The statistics summarise the n_reps rounds that
     * waited least: the undisturbed ones when there are enough, else the least disturbed. */
    int n_reps_max;
    int n_warmup;  /* untimed repetitions before them */
    int n_threads; /* 0: sq_cpu_count() */
    uint64_t seed;
    sq_kv_type kv_type; /* how each context's KV cache stores keys and values */
    /* with vs_kv_type_set, the second model's cache stores them as vs_kv_type (bench --vs-kv-type: one model
     * against itself with another cache, in one run) */
    sq_kv_type vs_kv_type;
    int vs_kv_type_set;
    const char *device; /* the contexts' device (sq_context_options.device); NULL: "cpu" */
} sq_bench_params;

/* A repetition whose threads waited longer than this share of their time for a CPU is disturbed. */
#define SQ_BENCH_MAX_CPU_WAIT 0.05

typedef struct sq_bench_stat {
    double median, min, max; /* over the n_reps summarised repetitions */
} sq_bench_stat;

typedef struct sq_bench_result {
    sq_bench_stat ttft_s;        /* time to first token: the batched prefill */
    sq_bench_stat tpot_s;        /* time per output token: decode time / n_gen */
    sq_bench_stat e2e_s;         /* end-to-end latency: prefill + decode */
    sq_bench_stat prefill_tok_s; /* n_seqs * n_prompt / prefill time */
    sq_bench_stat decode_tok_s;  /* n_seqs * n_gen / decode time */
    sq_bench_stat requests_s;    /* n_seqs / end-to-end latency */
    size_t weight_bytes;         /* the model's weights in memory */
    size_t kv_bytes;             /* the KV cache of a context sized for this workload */
    size_t peak_rss_bytes;       /* the process's peak resident memory after this model's first repetitions */
    int n_runs;                  /* timed rounds run (the same for every model of one call) */
    int n_disturbed;             /* of them, disturbed (see n_reps_max) */
    double cpu_wait;             /* median over the rounds run of this model's share of time kept off a CPU;
                                  * NAN where /proc does not tell */
} sq_bench_result;

/* Benchmarks n_models models on the same workload, each in its own context, interleaving their timed
 * repetitions (A, B, A, B, ...) so that they share the machine's conditions; results[i] describes models[i].
 * Fails with SQ_ERR_INVALID_ARG when n_prompt + n_gen exceeds a model's context. progress (may be NULL) is
 * called after every repetition, warm-ups included. */
SQ_NODISCARD sq_error *sq_bench_run(const sq_model *const *models, int n_models,
                                    const sq_bench_params *params, sq_progress_fn progress, void *user,
                                    sq_bench_result *results);

/* Median and range of values[0..n) (n >= 1; sorted in place); all NaN when values[0] is NaN. */
sq_bench_stat sq_bench_summarise(double *values, int n);

/* The quantities of an sq_bench_result, in report order: timing statistics, then byte counts. */
typedef struct sq_bench_metric {
    const char *key;   /* its JSON field in bench reports, e.g. "ttft_s", "kv_bytes" */
    const char *label; /* a table row naming its display unit, e.g. "time to first token (ms)" */
    double scale;      /* stored unit (seconds, tokens or requests per second, bytes) -> the label's unit */
    int is_bytes;      /* 0: an sq_bench_stat at `offset` of sq_bench_result; 1: a size_t byte count there */
    size_t offset;
} sq_bench_metric;

/* The static table of metrics; *n gets its length. */
const sq_bench_metric *sq_bench_metrics(int *n);
/* A metric's value in a result: its statistic (is_bytes 0) or its byte count (is_bytes 1). */
const sq_bench_stat *sq_bench_metric_stat(const sq_bench_result *r, const sq_bench_metric *metric);
double sq_bench_metric_bytes(const sq_bench_result *r, const sq_bench_metric *metric);

/* ---------------------------------------------------------------- compression recipes
 *
 * A recipe (docs/recipes.md; recipes/ holds the common ones) runs compression steps in order on one model
 * with one calibration set, measuring after every step what it cost (perplexity, KL divergence and top-1
 * agreement against the original on held-out text) and what it bought (parameters, weight bytes, bits per
 * weight, decode and prefill speed against the original in the same run). Its JSON:
 *
 *   {"name": "one block fewer, Wanda 2:4, GPTQ 4-bit",                      (optional)
 *    "steps": [                                                             (1 .. SQ_RECIPE_MAX_STEPS)
 *      {"prune": {"method": "depth", "remove": 1, "criterion": "ppl"}},
 *      {"prune": {"method": "wanda", "nm": "2:4"}},                         (or "sparsity": 0.5)
 *      {"prune": {"method": "width", "heads": 0.25, "ffn": 0.25}},
 *      {"quantize": {"type": "q4_0", "method": "gptq", "damp": 0.01, "act_order": false,
 *                    "keep": {"output.weight": "q8_0"}}}]}
 *
 * Each step holds exactly one action; its fields are those of sq_prune_options (method magnitude | wanda |
 * sparsegpt | width | depth; sparsity, nm "N:M", heads, ffn, remove, criterion ppl | magnitude) and of
 * sq_quantize_params (type, method rtn | gptq | awq, damp, act_order, keep), with their meanings and ranges.
 * An unknown key, a value of the wrong type, two actions in one step or none are errors naming the step and
 * the key. What depends on the model (a width no block can lose, N:M not dividing a row) is checked before
 * each step on the model the earlier steps left, before any work of that step. */
enum { SQ_RECIPE_MAX_STEPS = 16 };
typedef struct sq_recipe sq_recipe;

/* Parses a recipe from json[len] (not necessarily NUL-terminated); `source` names it in messages (a file
 * path; may be NULL). SQ_ERR_FORMAT for malformed JSON or a recipe breaking the rules above. */
SQ_NODISCARD sq_error *sq_recipe_parse(const char *json, size_t len, const char *source, sq_recipe **out);
void sq_recipe_free(sq_recipe *recipe);
const char *sq_recipe_name(const sq_recipe *recipe); /* "" when the recipe has none */
int sq_recipe_n_steps(const sq_recipe *recipe);
/* A short description of step i ("prune wanda 2:4", "quantize q4_0 gptq"), owned by the recipe. */
const char *sq_recipe_step_label(const sq_recipe *recipe, int i);
/* Non-zero when some step needs calibration samples (Wanda, SparseGPT, depth by ppl, width, GPTQ, AWQ). */
int sq_recipe_needs_calib(const sq_recipe *recipe);

/* The model after one step (or before the first). */
typedef struct sq_recipe_step_result {
    const char *label; /* the step's label; "original" for the model before the first step */
    int64_t n_params;  /* elements of all tensors */
    int64_t
        n_nonzero; /* of them, those not zero (counted after pruning steps; carried over by quantization) */
    size_t weight_bytes;
    double bits_per_weight; /* 8 * weight_bytes / n_params */
    int n_layers;
    double seconds;                                 /* the step's own time (not its measurement) */
    int has_quality;                                /* sq_recipe_options.eval_ids given */
    double ppl, ppl_ratio, kl_mean, top1_agreement; /* against the original, sq_perplexity's meanings */
    int has_speed;                                  /* sq_recipe_options.bench given */
    double decode_tok_s, prefill_tok_s;             /* medians, sq_bench_run beside the original */
    double decode_ratio, prefill_ratio;             /* this model's medians / the original's, same run */
} sq_recipe_step_result;

typedef struct sq_recipe_options {
    const sq_calib_samples *calib; /* one set for every step that needs it; NULL when none does */
    /* The original model: the reference for KL, top-1 agreement and speed ratios (an unchanged copy of the
     * model given to sq_recipe_run). Needed when eval_ids or bench is given. */
    const sq_model *original;
    const int32_t *eval_ids; /* held-out text's ids (BOS first as the tokenizer says), or NULL: no quality */
    int64_t n_eval_ids;
    int eval_ctx;                 /* perplexity windows (SQ_PPL_WINDOWS); 0: the model's max_seq_len */
    int bos_id;                   /* as sq_ppl_options.bos_id */
    const sq_bench_params *bench; /* workload for the speed ratios, or NULL: no speed */
    int n_threads;                /* 0: all online cores */
    /* called after the original is measured (step -1) and after each step and its measurement; may be NULL */
    void (*on_step)(void *user, int step, const sq_recipe_step_result *result);
    void *user;
    sq_progress_fn progress; /* within each step's compression; may be NULL */
    void *progress_user;
} sq_recipe_options;

/* Runs every step of recipe on model in place (no context on it may exist) and fills results[0] (the model
 * before) .. results[n_steps] (after each step); labels point into the recipe. On failure the steps before
 * the failing one stay applied: discard the model (a CLI writes its output only after the last step). */
SQ_NODISCARD sq_error *sq_recipe_run(sq_model *model, const sq_recipe *recipe, const sq_recipe_options *opts,
                                     sq_recipe_step_result *results);

/* ---------------------------------------------------------------- JSON reports
 *
 * The library owns the report layout (docs/report-format.md): these calls write the ppl, eval and bench
 * reports, and sq_report_render reads them back. Each writes `path` (replacing it) and fails with SQ_ERR_IO
 * naming it when it cannot. Numbers that are not finite are written as null. */

/* The model a report measured: its path as given (the variant's identity unless a label names it). */
typedef struct sq_report_model {
    const char *path;
    const char *label; /* NULL: none */
    const sq_model *model;
} sq_report_model;

/* kind "ppl": the options and result of one sq_perplexity run. ref_path names the file of opts->ref (NULL
 * without a reference model); ids_input is non-zero when the ids were given as such rather than encoded from
 * the text file opts->source. */
SQ_NODISCARD sq_error *sq_report_write_ppl(const char *path, const sq_report_model *model,
                                           const sq_ppl_options *opts, const char *ref_path, int ids_input,
                                           const sq_ppl_result *result);
/* kind "eval": the options and n_results (>= 1) results of one sq_eval_tasks run. */
SQ_NODISCARD sq_error *sq_report_write_eval(const char *path, const sq_report_model *model,
                                            const sq_eval_options *opts, const sq_task_result *results,
                                            int n_results);
/* kind "bench": n_models models (1 or 2; two also get B/A ratios) run with params at n_batches batch sizes;
 * results is [n_batches][n_models], as sq_bench_run filled it for batch_sizes[b] sequences. */
SQ_NODISCARD sq_error *sq_report_write_bench(const char *path, const sq_report_model *models, int n_models,
                                             const sq_bench_params *params, const int *batch_sizes,
                                             int n_batches, const sq_bench_result *results);

/* kind "bench_spec" (squeeze bench --spec): plain and speculative decoding of one prompt, each repetition
 * running both (the order alternating) so that they share the machine's conditions. Decode speed as
 * sq_generate_stats defines it: tokens after the first over the passes after the prompt's. */
typedef struct sq_spec_bench_report {
    const char *method;         /* the draft source as the CLI names it: "draft", "self", "ngram", "tree" */
    const char *draft_path;     /* the draft model's file, or NULL */
    const sq_spec_params *spec; /* k, k_auto, ngram_n, tree_width and skip_layers are written */
    const sq_sampler_params *sampling;
    int n_prompt, n_gen; /* the prompt's tokens; tokens generated at most per run */
    int n_reps, n_warmup, n_threads;
    sq_bench_stat plain_tok_s, spec_tok_s; /* decode tokens per second over the timed repetitions */
    sq_bench_stat speedup; /* per repetition: the speculative run's tok/s over the plain one's */
    sq_spec_stats stats;   /* the timed speculative runs' together (k: the last run's) */
    int greedy_identical;  /* temperature 0: 1 when every speculative run's tokens equal the plain run's, else
                              0; sampled runs: -1 (their texts differ by design) */
} sq_spec_bench_report;
SQ_NODISCARD sq_error *sq_report_write_bench_spec(const char *path, const sq_report_model *model,
                                                  const sq_spec_bench_report *r);

/* kind "prune": one sq_prune run: the request (method, sparsity or N:M, blocks removed, criterion,
 * calibration), the counts before and after, and for depth pruning every block's score and whether it was
 * removed. model is the pruned model (its path: where it was written), source_path the model it came from. */
SQ_NODISCARD sq_error *sq_report_write_prune(const char *path, const sq_report_model *model,
                                             const char *source_path, const sq_prune_options *opts,
                                             const sq_prune_result *result);

typedef enum sq_report_format { SQ_REPORT_MARKDOWN, SQ_REPORT_SVG } sq_report_format;

/* Combines ppl, eval and bench JSON reports (docs/report-format.md) of variants of one model into a Markdown
 * table or an SVG plot of quality against size and decode speed. Reports naming the same variant (its
 * "label", else its "model" path) are merged. On success *text is malloc'ed and NUL-terminated. */
SQ_NODISCARD sq_error *sq_report_render(const char *const *paths, int n_paths, const char *title,
                                        sq_report_format format, char **text);

/* ---------------------------------------------------------------- files, integer lists, time */

/* Reads the whole file at path (a regular file, or a pipe or device such as /dev/stdin) into a malloc'ed,
 * NUL-terminated buffer: *data (caller frees) holding *size bytes before the NUL; the bytes may include NULs.
 * Fails with SQ_ERR_FORMAT, naming the limit, when the file holds more than max_bytes, and with SQ_ERR_IO
 * when it cannot be opened or read or is a directory. */
SQ_NODISCARD sq_error *sq_read_file(const char *path, size_t max_bytes, char **data, size_t *size);

/* Parses len bytes of integers separated by commas and/or whitespace: "1,4,16", "1 2 3", one a line. A comma
 * may have whitespace around it, but an empty item (two commas in a row, a comma at either end) is an error,
 * as is an item that is not an optionally signed decimal integer in [lo, hi] (a range within int32); the
 * message names the item by number and byte offset. Text of whitespace only is an empty list. On success
 * *values is malloc'ed [*n_values] (NULL when empty; caller frees). The one reader of token-id lists
 * (logits --tokens, ppl id files), batch-size lists and layer lists. */
SQ_NODISCARD sq_error *sq_parse_int_list(const char *text, size_t len, int64_t lo, int64_t hi,
                                         int32_t **values, int64_t *n_values);

/* Seconds on a monotonic clock with an arbitrary origin: the difference of two readings is a duration. */
double sq_monotonic_seconds(void);

/* ---------------------------------------------------------------- process facts */

/* Peak resident memory of this process so far, in bytes. */
size_t sq_peak_rss_bytes(void);
/* The CPUs this process may run on: its affinity mask (taskset, a container's cpuset), else the online
 * cores. The default thread count everywhere: squeeze never starts more threads than this unless a caller
 * asks for them (n_threads), and a context's n_threads is the whole truth, since the BLAS library that runs
 * prefill products is kept to the calling thread (src/kernels/cpu/matmul.c). */
int sq_cpu_count(void);
/* Which CPU kernel set the dispatcher chose: "avx512", "avx2", or "scalar". The best one the CPU supports,
 * unless the environment variable SQ_KERNELS names another that it supports (for tests and baselines; the CLI
 * refuses to run when SQ_KERNELS names a set this CPU lacks) or sq_cpu_force_kernels chose one. */
const char *sq_cpu_kernel_name(void);
/* Forces a kernel set for tests and baselines ("scalar", "avx2", "avx512"); fails if the CPU lacks it. */
SQ_NODISCARD sq_error *sq_cpu_force_kernels(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* SQUEEZE_H */
