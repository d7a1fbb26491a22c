/* A model's execution context: its backend, the backend's copies of the weights, the KV cache, and the
 * activations of one step of n_batch_max tokens. Every buffer the operations touch is backend memory. */
#ifndef SQ_RUNTIME_CONTEXT_H
#define SQ_RUNTIME_CONTEXT_H

#include "kernels/backend.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

/* The per-token facts of a step: one int32 array of n_batch_max for each (sq_token_batch's, then the rows
 * whose logits were asked for), uploaded together. */
enum { TOK_ID, TOK_SEQ, TOK_POS, TOK_SLOT, TOK_N_PREFIX, TOK_PARENT, TOK_OUT_ROW, TOK_FIELDS };

struct sq_context {
    const sq_model *model;
    sq_backend backend;
    sq_kv_cache *kv;
    int n_ctx, n_seq_max, n_batch_max;

    /* the model's weights as the backend holds them: on the CPU the model's own tensors, used in place */
    sq_tensor tok_embd;       /* [vocab][dim] */
    sq_tensor out_norm;       /* [dim] */
    sq_tensor output;         /* [vocab][dim] */
    sq_block_weights *blocks; /* [n_layers] */
    const void **weight_src;  /* [3 + 30 * n_layers] (context.c's weight slots) host data each uploaded copy
                                 was made from, NULL: none */
    double *inv_freq; /* [2][head_dim/2] RoPE inverse frequencies, scaling applied: global, local layers */

    /* activations of one step */
    float *x;        /* [n_batch_max][dim] residual stream */
    float *xb;       /* [n_batch_max][dim] norm output, projection output */
    float *q;        /* [n_batch_max][max n_heads * head_dim] */
    float *k, *v;    /* [n_batch_max][max n_kv_heads * head_dim] */
    float *attn_out; /* [n_batch_max][max n_heads * head_dim] attention output */
    float *gate;     /* [n_batch_max][max ffn_dim] */
    float *up;       /* [n_batch_max][max ffn_dim] */
    /* mixture of experts (NULL in a dense model): E = n_experts, K = n_experts_used, shared expert 0/1 */
    float *moe_logits;      /* [n_batch_max][E + 1] router logits, then the shared expert's gate logits */
    int32_t *moe_rows;      /* [n_batch_max * (K + 1)] tokens grouped by expert, then 0..n-1 (shared) */
    float *moe_weight;      /* [n_batch_max * (K + 1)] their routing weights, then the shared gates */
    float *moe_x;           /* [n_batch_max][dim] one expert's input rows */
    float *moe_y;           /* [n_batch_max][dim] its outputs */
    float *moe_host;        /* host [n_batch_max][E + 1] the logits, downloaded */
    int32_t *moe_host_rows; /* host [n_batch_max * (K + 1)] */
    float *moe_host_weight; /* host [n_batch_max * (K + 1)] */
    int32_t *moe_offset;    /* host [E + 1] expert e's rows are moe_rows[offset[e] .. offset[e + 1]) */
    float *lr_mid;   /* [n_batch_max][max_rank] a low-rank weight's A.x; NULL when no weight is low-rank */
    int max_rank;    /* the largest rank of the model's low-rank weights when the context was made */
    float *logits;   /* [SQ_LOGITS_ROWS][vocab] logits before download; NULL with host memory */
    float *tap_host; /* host [n_batch_max][max width] the tap's copy; NULL with host memory */

    /* the step's tokens */
    int32_t *tok_host;         /* host [TOK_FIELDS][n_batch_max] */
    int32_t *tok_dev;          /* [TOK_FIELDS][n_batch_max] backend copy (tok_host itself with host memory) */
    sq_token_batch tokens;     /* views of tok_dev */
    int n_out;                 /* rows with logits: tok_host[TOK_OUT_ROW][0 .. n_out) */
    float **logits_dest;       /* host [n_batch_max] the caller's row for each of them */
    sq_block_args *layer_args; /* [n_layers] one block's arguments each, per step */

    /* the step between sq_forward_begin and sq_forward_end: its sequences and their new lengths */
    int stepping;
    int n_step_seqs;
    int *step_seq, *step_len, *step_tree; /* [n_seq_max] */
    int *query_len;                       /* [n_seq_max] scratch of sq_context_kv_blocks_needed */

    /* sequences whose cache ends in a token tree (sq_seq_keep_path) */
    int *tree_start;      /* [n_seq_max] first slot of the tree, -1: none */
    int *tree_len;        /* [n_seq_max] its nodes */
    int32_t *tree_parent; /* [n_seq_max][n_batch_max] each node's parent index, allocated on first use */

    sq_tap_fn tap;
    void *tap_user;
};

/* Logit rows computed per matmul before download, on backends without host memory. */
#define SQ_LOGITS_ROWS 32

/* RoPE inverse frequencies [rope_dims/2] for the model's theta and scaling (llama3 wavelength smoothing;
 * longrope's short or long factors, long when n_ctx > original_max_pos). */
void sq_rope_frequencies(const sq_model_config *cfg, int n_ctx, double *inv_freq);
/* What scores q.k are multiplied by besides 1/sqrt(head_dim): Gemma's query_pre_attn_scalar and longrope's
 * attention factor (squared: both q and k carry it). */
float sq_rope_score_scale(const sq_model_config *cfg);

/* sq_context_create on a given backend, which the context then owns (tests use backends of their own). */
SQ_NODISCARD sq_error *sq_context_create_on(const sq_model *model, const sq_context_options *opts,
                                            sq_backend backend, sq_context **out);

#endif
