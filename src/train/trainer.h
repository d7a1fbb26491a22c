/* The trainer's state (squeeze.h, "training"): fp32 weights, LoRA adapters, gradients, AdamW moments, the
 * activations of one batch. trainer.c runs forward and backward, optim.c updates and checkpoints, lora.c
 * reads, writes and merges adapters. */
#ifndef SQ_TRAIN_TRAINER_H
#define SQ_TRAIN_TRAINER_H

#include "core/threadpool.h"
#include "model/model.h"
#include "squeeze.h"

/* The seven linear layers of a block, in SQ_LORA_* bit order. */
enum { TR_Q, TR_K, TR_V, TR_O, TR_GATE, TR_UP, TR_DOWN, TR_N_LINEAR };

/* GGUF name suffix (model.h) and PEFT module path of each linear layer. */
extern const char *const tr_linear_gguf[TR_N_LINEAR];
extern const char *const tr_linear_peft[TR_N_LINEAR];

typedef struct tr_linear {
    int out, in;
    float *w;       /* [out][in] frozen base weight */
    float *gw;      /* [out][in] dL/dW (weight_grads), else NULL */
    float *a, *b;   /* LoRA [rank][in], [out][rank]; NULL when not a target */
    float *ga, *gb; /* their gradients, same shapes */
} tr_linear;

typedef struct tr_layer {
    int n_heads, n_kv_heads, ffn_dim;
    float *attn_norm, *ffn_norm;     /* [dim] */
    float *g_attn_norm, *g_ffn_norm; /* [dim] weight_grads, else NULL */
    float *bq, *bk, *bv;             /* [n_heads*head_dim], [n_kv*head_dim] x2; NULL without biases */
    tr_linear lin[TR_N_LINEAR];
} tr_layer;

/* One trainable array and its gradient and moments (all adapters, in layer then linear, A then B order). */
typedef struct tr_param {
    float *p, *g, *m, *v;
    int64_t n;
} tr_param;

struct sq_trainer {
    sq_model_config cfg;
    int n_layers, dim, head_dim, vocab, max_tokens, rank;
    float alpha;
    unsigned targets;
    sq_threadpool *pool;
    float *tok_embd;  /* [vocab][dim] */
    float *out_norm;  /* [dim] */
    float *output;    /* [vocab][dim]; == tok_embd when tied */
    tr_layer *layers; /* [n_layers] */
    double *inv_freq; /* [head_dim/2] */
    tr_param *params; /* [n_params] */
    int n_params;
    int64_t step;
    int weight_grads;

    /* activations of one batch: n = max_tokens rows, widths the largest over the blocks */
    float *xs;                  /* [n_layers+1][n][dim] each block's input, then the final hidden state */
    float *xn, *xn2;            /* [n][dim] attention and FFN norm outputs */
    float *rstd, *rstd2;        /* [n] */
    float *q, *att, *dq, *datt; /* [n][n_heads*head_dim] */
    float *k, *v, *dk, *dv;     /* [n][n_kv*head_dim] */
    float *lse;                 /* [n][n_heads] per row's log-sum-exp (attention backward) */
    float *xmid;                /* [n][dim] residual after attention */
    float *gate, *up, *h, *dgate, *dup; /* [n][ffn_dim] */
    float *dx, *dxn;                    /* [n][dim] residual and norm-output gradients */
    float *lora_u[TR_N_LINEAR];         /* [n][rank] A x of each target, saved for its backward */
    float *lora_du;                     /* [n][rank] */
    float *logits, *teacher;            /* [seq_len][vocab] one sequence's, at most max_tokens rows */
    int32_t *pos, *target;              /* [n] */
    float *attn_scratch;                /* [pool size][n] */
    double *loss_partial;               /* [2][pool size] */
};

#endif
