/* The table of operations the forward pass runs on, and the memory they run in.
 *
 * A backend is one implementation of this table: the CPU today (kernels/cpu/), an accelerator later. The
 * forward pass (runtime/forward.c) does no arithmetic of its own: each step of a layer is one operation here,
 * every buffer an operation touches was allocated by the backend, and host data reaches it only through
 * upload and download. Every operation has a plain reference (kernels/ref/ref.h), and
 * tests/c/test_backend_ops.c runs every backend against it.
 *
 * Conventions. Activations are fp32, row-major, outer dimension first ([n_tokens][width]). Every pointer an
 * operation receives is backend memory unless its comment says "host"; the argument structs themselves are
 * host memory, read during the call only. Operations may run asynchronously but in the order they are
 * issued; download and synchronize wait for what came before. They cannot fail: the forward pass validates
 * its inputs first, and alloc (which returns NULL) is the only fallible call. `impl` is the backend's state.
 * Kernels see plain arguments only: this header and kernels/ include nothing outside core/. */
#ifndef SQ_KERNELS_BACKEND_H
#define SQ_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/rope.h"
#include "core/tensor.h"
#include "squeeze.h"

/* A layer's KV cache as kernels see it: rows of kv_dim values stored as row_type (sq_kv_row_type_valid).
 * Quantized rows (q8_0, q4_0) are ggml's 32-value blocks along the row, so a block may hold the end of one
 * head and the start of the next when head_dim is not a multiple of 32. Position slot p of sequence s lives
 * at k + ((size_t)block_table[s * max_blocks + p / block_size] * block_size + p % block_size) * row_bytes and
 * likewise in v. Kernels read and write rows only through this view. */
typedef struct sq_kv_view {
    uint8_t *k, *v;             /* this layer's key and value pools, in the backend's memory */
    const int32_t *block_table; /* [n_seq][max_blocks] physical block ids of each sequence's slots */
    int max_blocks;             /* block-table entries per sequence */
    int block_size;             /* positions per block */
    size_t row_bytes;           /* bytes of one row (kv_dim values of row_type) */
    sq_dtype row_type;
    int kv_dim; /* n_kv_heads * head_dim of this layer */
} sq_kv_view;

/* The row types a KV cache may hold: f32, f16, and the 32-value block formats q8_0 and q4_0 (KV-cache
 * quantization: 8.5 and 4.5 bits per value, one f16 scale per 32 values, rows of a multiple of 32 values). */
static inline int sq_kv_row_type_valid(sq_dtype t) {
    return t == SQ_DTYPE_F32 || t == SQ_DTYPE_F16 || t == SQ_DTYPE_Q8_0 || t == SQ_DTYPE_Q4_0;
}

/* The address of slot `slot` of sequence `seq` in `pool` (kv->k or kv->v). */
static inline uint8_t *sq_kv_row(const sq_kv_view *kv, uint8_t *pool, int seq, int slot) {
    int32_t block = kv->block_table[(size_t)seq * kv->max_blocks + slot / kv->block_size];
    return pool + ((size_t)block * kv->block_size + (size_t)(slot % kv->block_size)) * kv->row_bytes;
}

/* The tokens of one forward step, arrays of n_tokens in backend memory. Each token sees, in its sequence's
 * cache, the slots [0, n_prefix) (cached tokens, whose slot is their position), then its own slot, then the
 * slot of parent[t], of parent[parent[t]], ... until -1: the batch indices of its ancestors in a token tree.
 * A token of a plain run at position p has n_prefix = slot = p and parent -1, so it sees slots [0, p]. A
 * tree node j after P cached tokens has n_prefix = P, slot = P + j and position P + (its depth). With a
 * sliding window w, keys at positions <= pos - w are not seen. */
typedef struct sq_token_batch {
    int n_tokens;
    const int32_t *id;       /* [n_tokens] token ids */
    const int32_t *seq;      /* [n_tokens] row of the KV block table */
    const int32_t *pos;      /* [n_tokens] position: RoPE angle, sliding window */
    const int32_t *slot;     /* [n_tokens] cache slot of the token's own key/value row */
    const int32_t *n_prefix; /* [n_tokens] cached slots it sees before its own */
    const int32_t *parent;   /* [n_tokens] batch index of the next ancestor it sees, -1: none */
} sq_token_batch;

typedef struct sq_attention_args {
    const float *q; /* [n_tokens][n_heads][head_dim], RoPE applied */
    sq_kv_view kv;  /* this layer's cache; every token's own row is already stored */
    const sq_token_batch *tokens;
    int n_heads, n_kv_heads, head_dim; /* query head h reads key/value head h / (n_heads / n_kv_heads) */
    int window;                        /* sliding window in positions, 0: none */
    float softcap; /* scores s = q k / sqrt(head_dim) become softcap tanh(s / softcap) before the softmax
                    * (Gemma 2's attn_logit_softcapping); 0: none. Only backends with attn_softcap take it */
    float *out;    /* [n_tokens][n_heads][head_dim] softmax(scores) v */
} sq_attention_args;

/* One block's weights as the backend holds them (for the CPU: the model's own tensors). Norms and biases are
 * f32 vectors; an absent bias has data == NULL. */
typedef struct sq_block_weights {
    sq_tensor attn_norm; /* [dim] */
    sq_tensor wq, wk, wv,
        wo;               /* [n_heads*head_dim][dim], [kv_dim][dim], [kv_dim][dim], [dim][n_heads*head_dim] */
    sq_tensor bq, bk, bv; /* [n_heads*head_dim], [kv_dim], [kv_dim] (Qwen2) */
    sq_tensor q_norm,
        k_norm;         /* [head_dim] each: per-head RMSNorm of q and k before RoPE (Qwen3); or absent */
    sq_tensor ffn_norm; /* [dim] */
    sq_tensor attn_post_norm,
        ffn_post_norm;      /* [dim] each: norms of the attention and FFN outputs (Gemma 3) */
    sq_tensor w_gate, w_up; /* [ffn_dim][dim] */
    sq_tensor w_down;       /* [dim][ffn_dim] */
    /* mixture of experts (absent in a dense block; then w_gate/w_up/w_down): */
    sq_tensor ffn_gate_inp;                 /* [n_experts][dim] router */
    sq_tensor ffn_gate_exps, ffn_up_exps;   /* [n_experts][ffn_dim][dim] */
    sq_tensor ffn_down_exps;                /* [n_experts][dim][ffn_dim] */
    sq_tensor ffn_gate_shexp, ffn_up_shexp; /* [shexp_dim][dim] shared expert (Qwen2-MoE); or absent */
    sq_tensor ffn_down_shexp;               /* [dim][shexp_dim] */
    sq_tensor ffn_gate_inp_shexp;           /* [1][dim] its sigmoid gate */
    int n_heads, n_kv_heads, ffn_dim;
    int n_experts, shexp_dim; /* 0, 0: a dense FFN */
    /* Low-rank linear weights (model.h's sq_layer.lr_a, lr_b), indexed wq, wk, wv, wo, w_gate, w_up, w_down:
     * lr_a[i] [rank][in], lr_b[i] [out][rank], and that dense tensor absent; absent (no data): dense */
    sq_tensor lr_a[7], lr_b[7];
} sq_block_weights;

/* Everything one transformer block needs over one step: what runtime/forward.c's operation path computes
 * (x = x + attention(x); x = x + ffn(x), keys and values stored), and what a backend's fused `block` must. */
typedef struct sq_block_args {
    int layer;
    const sq_block_weights *w;
    const sq_token_batch *tokens;
    sq_kv_view kv; /* this layer's cache */
    int dim, head_dim, window;
    float norm_eps;
    float q_scale; /* queries are multiplied by it before RoPE; 1: none (Gemma's query_pre_attn_scalar) */
    float attn_softcap;                   /* sq_attention_args.softcap */
    int geglu;                            /* the FFN's activation: GeGLU (tanh GELU), else SwiGLU */
    int n_experts_used, expert_norm_topk; /* mixture of experts: top-k, renormalised (sq_model_config) */
    sq_rope_style rope_style;
    int rope_dims;          /* the leading dims of each head RoPE rotates (sq_model_config) */
    const double *inv_freq; /* [rope_dims/2] this block's RoPE inverse frequencies, scaling applied */
    float *x;               /* [n_tokens][dim] residual stream, updated in place */
    float *xb;              /* [n_tokens][dim] scratch: norm output, projection output */
    float *q;               /* [n_tokens][n_heads*head_dim] */
    float *k, *v;           /* [n_tokens][kv_dim] */
    float *attn_out;        /* [n_tokens][n_heads*head_dim] attention output, input of wo */
    float *gate, *up;       /* [n_tokens][ffn_dim] */
    float *lr_mid;          /* [n_tokens][largest rank] A.x of a low-rank weight; NULL when none is */
} sq_block_args;

/* The attention of a block's step: its q, cache and tokens into attn_out (block_ops and fused blocks alike).
 */
static inline sq_attention_args sq_block_attention_args(const sq_block_args *a) {
    return (sq_attention_args){.q = a->q,
                               .kv = a->kv,
                               .tokens = a->tokens,
                               .n_heads = a->w->n_heads,
                               .n_kv_heads = a->w->n_kv_heads,
                               .head_dim = a->head_dim,
                               .window = a->window,
                               .softcap = a->attn_softcap,
                               .out = a->attn_out};
}

typedef struct sq_forward_args {
    const sq_token_batch *tokens;
    const sq_tensor *tok_embd;   /* [vocab][dim] */
    float embd_scale;            /* the embeddings are multiplied by it (Gemma: sqrt(dim)); 1: none */
    const sq_block_args *blocks; /* [n_layers], in order */
    int n_layers;
    const unsigned char *skip; /* host, [n_layers] or NULL: non-zero skips that block */
    float *x;                  /* [n_tokens][dim]: the embeddings through every block not skipped */
} sq_forward_args;

/* Operations, for supports(). */
typedef enum sq_op {
    SQ_OP_MATMUL,   /* dtype: the weight's */
    SQ_OP_GET_ROWS, /* dtype: the source rows' */
    SQ_OP_RMSNORM,  /* the rest take SQ_DTYPE_F32 activations, except: */
    SQ_OP_ROPE,
    SQ_OP_ADD,
    SQ_OP_ADD_BIAS,
    SQ_OP_SWIGLU,
    SQ_OP_GEGLU,
    SQ_OP_SCALE,
    SQ_OP_KV_STORE,  /* dtype: the cache's row type */
    SQ_OP_KV_COPY,   /* dtype: the cache's row type */
    SQ_OP_ATTENTION, /* dtype: the cache's row type */
    SQ_OP_ADD_ROWS,  /* f32: mixture-of-experts outputs added into their tokens' rows */
    SQ_OP_COUNT
} sq_op;

typedef struct sq_backend {
    const char *name; /* the device name that selects it: "cpu" */
    void *impl;
    /* Backend memory is host memory: pointers are interchangeable, weights are used where they lie (the
     * mapped file), and results are written straight into the caller's buffers. */
    int host_memory;
    int attn_softcap; /* attention applies sq_attention_args.softcap (contexts of models with one need it) */
    void (*destroy)(void *impl);
    /* non-zero when op runs on data of this dtype */
    int (*supports)(void *impl, sq_op op, sq_dtype dtype);

    /* ---- memory */
    void *(*alloc)(void *impl, size_t nbytes); /* backend memory, 64-byte aligned, NULL when exhausted */
    void (*free)(void *impl, void *ptr);       /* NULL is a no-op */
    void (*upload)(void *impl, void *dst, const void *src, size_t nbytes); /* host -> backend */
    /* Optional (NULL: upload): uploads a weight (src: a host tensor) into dst (src->nbytes of backend
     * memory) in the backend's own layout for its dtype, which its matmul and get_rows read (the CUDA
     * backend splits the block formats' quants from their scales); every weight goes through it. */
    void (*upload_weight)(void *impl, void *dst, const sq_tensor *src);
    void (*download)(void *impl, void *dst, const void *src, size_t nbytes); /* backend -> host */
    void (*copy)(void *impl, void *dst, const void *src, size_t nbytes);     /* backend -> backend */
    void (*synchronize)(void *impl);                                         /* waits for queued work */
    /* Optional (NULL: cannot fail): the first error of queued work since the last call (a device fault, a
     * failed launch) as text, or NULL. The forward pass asks after each synchronize. */
    const char *(*take_error)(void *impl);

    /* ---- operations */
    /* y[t][r] = sum_c x[t][c] w[r][c]: x [n_tokens][cols], y [n_tokens][rows], w [rows][cols] in any format
     */
    void (*matmul)(void *impl, const sq_tensor *w, const float *x, int n_tokens, float *y);
    /* out[i] = row rows[i] of src, as fp32: embedding lookup (src = token_embd, any format) and gathering
     * activation rows (src f32). src [n][cols], rows [n_rows] (indices < n, in any order), out [n_rows][cols]
     */
    void (*get_rows)(void *impl, const sq_tensor *src, const int32_t *rows, int n_rows, float *out);
    /* out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight; x, out [n_tokens][dim] (out may be x), weight [dim]
     */
    void (*rmsnorm)(void *impl, const float *x, const float *weight, float eps, int n_tokens, int dim,
                    float *out);
    /* Rotates the first rope_dims elements of every head of q ([n_tokens][n_q_heads][head_dim]) and k
     * ([n_tokens][n_k_heads][head_dim]) of token t by the angles pos[t] * inv_freq[i] (i < rope_dims/2,
     * computed in double), pairing elements as style says within those rope_dims; the rest of each head is
     * left as it is (partial rotary); pos [n_tokens], inv_freq [rope_dims/2] */
    void (*rope)(void *impl, float *q, int n_q_heads, float *k, int n_k_heads, int n_tokens, int head_dim,
                 int rope_dims, const int32_t *pos, const double *inv_freq, sq_rope_style style);
    /* x[i] += y[i], n values: the residual connection */
    void (*add)(void *impl, float *x, const float *y, int64_t n);
    /* y[t][i] += bias[i]; y [n_tokens][width], bias [width] */
    void (*add_bias)(void *impl, float *y, const float *bias, int n_tokens, int width);
    /* gate[i] = silu(gate[i]) * up[i], n values (SwiGLU, Shazeer 2020) */
    void (*swiglu)(void *impl, float *gate, const float *up, int64_t n);
    /* gate[i] = gelu(gate[i]) * up[i], n values, GELU's tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x +
     * 0.044715 x^3))) (GeGLU, Shazeer 2020; Gemma's gelu_pytorch_tanh) */
    void (*geglu)(void *impl, float *gate, const float *up, int64_t n);
    /* x[i] *= s, n values (Gemma's embedding scale, a query scale) */
    void (*scale)(void *impl, float *x, float s, int64_t n);
    /* Stores k[t] and v[t] ([n_tokens][kv_dim] fp32) as slot tokens->slot[t] of sequence tokens->seq[t],
     * converted to the view's row type (f16: round to nearest even). */
    void (*kv_store)(void *impl, const sq_kv_view *kv, const float *k, const float *v,
                     const sq_token_batch *tokens);
    /* For i < n in order, copies the key and value rows at slot src[i] of sequence seq to slot dst[i];
     * src, dst [n]. Keeps the accepted path of a token tree (dst[i] <= src[i], ascending). */
    void (*kv_copy)(void *impl, const sq_kv_view *kv, int seq, const int32_t *src, const int32_t *dst, int n);
    /* Attention of every query token over the slots it sees (sq_token_batch), full softmax, fp32 output. */
    void (*attention)(void *impl, const sq_attention_args *args);
    /* x[rows[i]][c] += scale[i] * y[i][c] for i < n_rows, c < width: an expert's outputs added, weighted by
     * their routing probabilities, into the rows of the tokens routed to it (rows distinct within one call).
     * x [n][width], y [n_rows][width], rows and scale [n_rows]. Optional where supports() says so: NULL when
     * the backend has none. */
    void (*add_rows)(void *impl, float *x, const float *y, const int32_t *rows, const float *scale,
                     int n_rows, int width);

    /* ---- optional (NULL on the CPU): a backend may take over larger steps, as fast GPU decoders fuse them.
     * The operation path in runtime/forward.c stays the reference they are tested against, and runs instead
     * whenever a calibration tap is set. */
    void (*block)(void *impl, const sq_block_args *args);     /* one transformer block */
    void (*forward)(void *impl, const sq_forward_args *args); /* embedding and every block */
} sq_backend;

/* "matmul", "get_rows", ... */
const char *sq_op_name(sq_op op);

/* The backend of a device: "cpu" or "cuda" (kernels/cuda/); NULL means "cpu". n_threads: 0 for every online
 * core. An unknown device is SQ_ERR_INVALID_ARG naming the devices this build has; one whose hardware is
 * missing, SQ_ERR_UNSUPPORTED. Release with sq_backend_destroy. */
SQ_NODISCARD sq_error *sq_backend_create(const char *device, int n_threads, sq_backend *out);
void sq_backend_destroy(sq_backend *be);

#endif
