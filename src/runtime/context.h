/* A model's execution context: backend, KV cache and scratch activations sized for n_batch_max tokens. */
#ifndef SQ_RUNTIME_CONTEXT_H
#define SQ_RUNTIME_CONTEXT_H

#include "core/threadpool.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "runtime/kv_cache.h"

struct sq_context {
    const sq_model *model;
    sq_threadpool *pool;
    sq_backend backend;
    sq_kv_cache *kv;
    int n_ctx, n_seq_max, n_batch_max;
    double *inv_freq; /* [head_dim/2] RoPE frequencies after scaling */
    /* scratch, [n_batch_max][width] each */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *rope_cos, *rope_sin;
    int32_t *tok_id;
    int *tok_seq, *tok_pos;
    float **tok_logits; /* where each token's logits go, or NULL */
    int *batch_seq,
        *batch_len; /* [n_seq_max] (kv) each batch sequence's id and length after it, for reserve */
};

/* RoPE inverse frequencies for the model's theta and scaling (llama3 wavelength smoothing). */
void sq_rope_frequencies(const sq_model_config *cfg, double *inv_freq);

#endif
