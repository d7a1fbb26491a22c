/* The trainer: fp32 weights and adapters, a batch forward with the inference pass's arithmetic, and its
 * backward block by block (each block's activations recomputed from its saved input). */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "runtime/context.h"
#include "train/train_ops.h"

const char *const tr_linear_gguf[TR_N_LINEAR] = {SQ_NAME_ATTN_Q,   SQ_NAME_ATTN_K,   SQ_NAME_ATTN_V,
                                                 SQ_NAME_ATTN_OUT, SQ_NAME_FFN_GATE, SQ_NAME_FFN_UP,
                                                 SQ_NAME_FFN_DOWN};
const char *const tr_linear_peft[TR_N_LINEAR] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                 "mlp.down_proj"};

/* ---------------------------------------------------------------- creation */

static SQ_NODISCARD sq_error *read_weight(const sq_tensor *t, float **out) {
    *out = NULL;
    if (!t) return NULL;
    int64_t n = sq_tensor_nelements(t), rows = sq_tensor_n_rows(t), len = sq_tensor_row_len(t);
    float *w = malloc((size_t)n * sizeof *w);
    if (!w)
        return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for %s (%lld values)", t->name, (long long)n);
    for (int64_t r = 0; r < rows; r++) sq_tensor_row_to_f32(t, r, w + r * len);
    *out = w;
    return NULL;
}

static float *zalloc(int64_t n) { return n > 0 ? calloc((size_t)n, sizeof(float)) : NULL; }

void sq_trainer_free(sq_trainer *t) {
    if (!t) return;
    sq_threadpool_free(t->pool);
    if (t->output != t->tok_embd) free(t->output);
    free(t->tok_embd);
    free(t->out_norm);
    for (int l = 0; t->layers && l < t->n_layers; l++) {
        tr_layer *L = &t->layers[l];
        free(L->attn_norm), free(L->ffn_norm), free(L->g_attn_norm), free(L->g_ffn_norm);
        free(L->bq), free(L->bk), free(L->bv);
        for (int i = 0; i < TR_N_LINEAR; i++) {
            tr_linear *li = &L->lin[i];
            free(li->w), free(li->gw), free(li->a), free(li->b), free(li->ga), free(li->gb);
        }
    }
    free(t->layers);
    free(t->inv_freq);
    for (int i = 0; i < t->n_params; i++) free(t->params[i].m), free(t->params[i].v);
    free(t->params);
    free(t->xs), free(t->xn), free(t->xn2), free(t->rstd), free(t->rstd2);
    free(t->q), free(t->att), free(t->dq), free(t->datt), free(t->k), free(t->v), free(t->dk), free(t->dv);
    free(t->lse), free(t->xmid), free(t->gate), free(t->up), free(t->h), free(t->dgate), free(t->dup);
    free(t->dx), free(t->dxn), free(t->lora_du), free(t->logits), free(t->teacher);
    for (int i = 0; i < TR_N_LINEAR; i++) free(t->lora_u[i]);
    free(t->pos), free(t->target), free(t->attn_scratch), free(t->loss_partial);
    free(t);
}

/* PEFT's LoRA A initialisation: kaiming_uniform_(a = sqrt(5)), i.e. uniform in +-1/sqrt(in). */
static void init_lora_a(float *a, int64_t n, int in, uint64_t *rng) {
    const double bound = 1.0 / sqrt((double)in);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(sq_splitmix64(rng) >> 11) / (double)(1ull << 53);
        a[i] = (float)((2 * u - 1) * bound);
    }
}

static SQ_NODISCARD sq_error *bind_layer(sq_trainer *t, int l, const sq_layer *src, uint64_t *rng) {
    tr_layer *L = &t->layers[l];
    L->n_heads = src->n_heads;
    L->n_kv_heads = src->n_kv_heads;
    L->ffn_dim = src->ffn_dim;
    SQ_TRY(read_weight(src->attn_norm, &L->attn_norm));
    SQ_TRY(read_weight(src->ffn_norm, &L->ffn_norm));
    SQ_TRY(read_weight(src->bq, &L->bq));
    SQ_TRY(read_weight(src->bk, &L->bk));
    SQ_TRY(read_weight(src->bv, &L->bv));
    const sq_tensor *w[TR_N_LINEAR] = {src->wq,     src->wk,   src->wv,    src->wo,
                                       src->w_gate, src->w_up, src->w_down};
    for (int i = 0; i < TR_N_LINEAR; i++) {
        tr_linear *li = &L->lin[i];
        li->out = (int)w[i]->shape[0];
        li->in = (int)w[i]->shape[1];
        SQ_TRY(read_weight(w[i], &li->w));
        if (t->weight_grads && !(li->gw = zalloc((int64_t)li->out * li->in)))
            return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for weight gradients");
        if (t->rank && (t->targets & (1u << i))) {
            li->a = zalloc((int64_t)t->rank * li->in);
            li->b = zalloc((int64_t)li->out * t->rank);
            li->ga = zalloc((int64_t)t->rank * li->in);
            li->gb = zalloc((int64_t)li->out * t->rank);
            if (!li->a || !li->b || !li->ga || !li->gb)
                return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for adapters");
            init_lora_a(li->a, (int64_t)t->rank * li->in, li->in, rng);
        }
    }
    if (t->weight_grads && (!(L->g_attn_norm = zalloc(t->dim)) || !(L->g_ffn_norm = zalloc(t->dim))))
        return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for weight gradients");
    return NULL;
}

static SQ_NODISCARD sq_error *add_params(sq_trainer *t) {
    int n = 0;
    for (int l = 0; l < t->n_layers; l++)
        for (int i = 0; i < TR_N_LINEAR; i++) n += t->layers[l].lin[i].a ? 2 : 0;
    t->params = calloc((size_t)(n ? n : 1), sizeof *t->params);
    if (!t->params) return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory");
    for (int l = 0; l < t->n_layers; l++)
        for (int i = 0; i < TR_N_LINEAR; i++) {
            tr_linear *li = &t->layers[l].lin[i];
            if (!li->a) continue;
            t->params[t->n_params++] = (tr_param){li->a, li->ga, NULL, NULL, (int64_t)t->rank * li->in};
            t->params[t->n_params++] = (tr_param){li->b, li->gb, NULL, NULL, (int64_t)li->out * t->rank};
        }
    for (int i = 0; i < t->n_params; i++) {
        t->params[i].m = zalloc(t->params[i].n);
        t->params[i].v = zalloc(t->params[i].n);
        if (!t->params[i].m || !t->params[i].v) return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory");
    }
    return NULL;
}

static SQ_NODISCARD sq_error *alloc_activations(sq_trainer *t) {
    int64_t n = t->max_tokens, qw = 0, kw = 0, ffn = 0;
    for (int l = 0; l < t->n_layers; l++) {
        const tr_layer *L = &t->layers[l];
        qw = L->n_heads * t->head_dim > qw ? L->n_heads * t->head_dim : qw;
        kw = L->n_kv_heads * t->head_dim > kw ? L->n_kv_heads * t->head_dim : kw;
        ffn = L->ffn_dim > ffn ? L->ffn_dim : ffn;
    }
    const int nth = sq_threadpool_size(t->pool);
    t->xs = zalloc((t->n_layers + 1) * n * t->dim);
    t->xn = zalloc(n * t->dim), t->xn2 = zalloc(n * t->dim), t->xmid = zalloc(n * t->dim);
    t->dx = zalloc(n * t->dim), t->dxn = zalloc(n * t->dim);
    t->rstd = zalloc(n), t->rstd2 = zalloc(n);
    t->q = zalloc(n * qw), t->att = zalloc(n * qw), t->dq = zalloc(n * qw), t->datt = zalloc(n * qw);
    t->k = zalloc(n * kw), t->v = zalloc(n * kw), t->dk = zalloc(n * kw), t->dv = zalloc(n * kw);
    t->lse = zalloc(n * (qw / t->head_dim));
    t->gate = zalloc(n * ffn), t->up = zalloc(n * ffn), t->h = zalloc(n * ffn);
    t->dgate = zalloc(n * ffn), t->dup = zalloc(n * ffn);
    t->pos = calloc((size_t)n, sizeof *t->pos), t->target = calloc((size_t)n, sizeof *t->target);
    t->attn_scratch = zalloc(nth * n);
    t->loss_partial = calloc(2 * (size_t)nth, sizeof *t->loss_partial);
    int ok = t->xs && t->xn && t->xn2 && t->xmid && t->dx && t->dxn && t->rstd && t->rstd2 && t->q &&
             t->att && t->dq && t->datt && t->k && t->v && t->dk && t->dv && t->lse && t->gate && t->up &&
             t->h && t->dgate && t->dup && t->pos && t->target && t->attn_scratch && t->loss_partial;
    if (t->rank) {
        for (int i = 0; i < TR_N_LINEAR; i++)
            if (t->targets & (1u << i)) ok = ok && (t->lora_u[i] = zalloc(n * t->rank));
        ok = ok && (t->lora_du = zalloc(n * t->rank));
    }
    if (!ok)
        return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for the activations of %lld tokens",
                         (long long)n);
    return NULL;
}

SQ_NODISCARD sq_error *sq_trainer_create(const sq_model *model, const sq_trainer_options *opts,
                                         sq_trainer **out) {
    *out = NULL;
    if (opts->max_tokens < 2 || opts->max_tokens > (1 << 22))
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: max_tokens %d outside [2, %d]", opts->max_tokens,
                         1 << 22);
    if (opts->lora_rank < 0 || opts->lora_rank > 4096)
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: LoRA rank %d outside [0, 4096]", opts->lora_rank);
    if (opts->lora_rank &&
        (!(opts->lora_targets & SQ_LORA_ALL) || (opts->lora_targets & ~(unsigned)SQ_LORA_ALL)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: LoRA targets 0x%x name no linear layer",
                         opts->lora_targets);
    if (opts->lora_rank && !(opts->lora_alpha > 0 && isfinite(opts->lora_alpha)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: LoRA alpha must be positive");
    if (opts->n_threads < 0 || opts->n_threads > 1024)
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: %d threads outside [0, 1024]", opts->n_threads);
    if (sq_model_has_lowrank(model))
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "trainer: the model has low-rank (factorised) linear weights, which training does not "
            "handle yet; train the dense model");
    if (model->cfg.rope_scaling.type == SQ_ROPE_SCALING_LONGROPE) /* its attention factor is not applied */
        return sq_errorf(SQ_ERR_UNSUPPORTED, "trainer: longrope RoPE scaling (Phi-3) is not supported");
    sq_trainer *t = calloc(1, sizeof *t);
    if (!t) return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory");
    t->cfg = model->cfg;
    t->n_layers = model->cfg.n_layers;
    t->dim = model->cfg.dim;
    t->head_dim = model->cfg.head_dim;
    t->vocab = model->cfg.vocab_size;
    t->max_tokens = opts->max_tokens;
    t->rank = opts->lora_rank;
    t->alpha = opts->lora_alpha;
    t->targets = opts->lora_rank ? opts->lora_targets : 0;
    t->weight_grads = opts->weight_grads != 0;
    sq_error *err = NULL;
    uint64_t rng = opts->seed ^ 0x4c6f5241ull; /* "LoRA" */
    if (!(t->pool = sq_threadpool_create(opts->n_threads)) ||
        !(t->layers = calloc((size_t)t->n_layers, sizeof *t->layers)) ||
        !(t->inv_freq = malloc((size_t)(t->head_dim / 2) * sizeof *t->inv_freq))) {
        err = sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory (or threads)");
        goto fail;
    }
    sq_rope_frequencies(&model->cfg, model->cfg.max_seq_len, t->inv_freq);
    if ((err = read_weight(model->tok_embd, &t->tok_embd)) ||
        (err = read_weight(model->out_norm, &t->out_norm)))
        goto fail;
    if (model->output == model->tok_embd)
        t->output = t->tok_embd;
    else if ((err = read_weight(model->output, &t->output)))
        goto fail;
    for (int l = 0; l < t->n_layers; l++)
        if ((err = bind_layer(t, l, &model->layers[l], &rng))) goto fail;
    if ((err = add_params(t)) || (err = alloc_activations(t))) goto fail;
    *out = t;
    return NULL;
fail:
    sq_trainer_free(t);
    return err;
}

/* ---------------------------------------------------------------- forward and backward */

static float lora_scale(const sq_trainer *t) { return t->alpha / (float)t->rank; }

/* y [n][out] = x W^T (+ s (x A^T) B^T, saving u = x A^T) */
static void linear_fwd(sq_trainer *t, int which, const tr_linear *li, const float *x, int n, float *y) {
    tr_gemm(t->pool, 0, 1, n, li->out, li->in, 1.0f, x, li->in, li->w, li->in, 0.0f, y, li->out);
    if (!li->a) return;
    float *u = t->lora_u[which];
    tr_gemm(t->pool, 0, 1, n, t->rank, li->in, 1.0f, x, li->in, li->a, li->in, 0.0f, u, t->rank);
    tr_gemm(t->pool, 0, 1, n, li->out, t->rank, lora_scale(t), u, t->rank, li->b, t->rank, 1.0f, y, li->out);
}

/* dx (= when add is 0, else +=) dy W (+ the adapter's path); gradients of W, A, B added. */
static void linear_bwd(sq_trainer *t, int which, tr_linear *li, const float *x, const float *dy, int n,
                       float *dx, int add) {
    tr_gemm(t->pool, 0, 0, n, li->in, li->out, 1.0f, dy, li->out, li->w, li->in, add ? 1.0f : 0.0f, dx,
            li->in);
    if (li->gw)
        tr_gemm(t->pool, 1, 0, li->out, li->in, n, 1.0f, dy, li->out, x, li->in, 1.0f, li->gw, li->in);
    if (!li->a) return;
    const float s = lora_scale(t);
    const float *u = t->lora_u[which];
    float *du = t->lora_du;
    tr_gemm(t->pool, 1, 0, li->out, t->rank, n, s, dy, li->out, u, t->rank, 1.0f, li->gb, t->rank);
    tr_gemm(t->pool, 0, 0, n, t->rank, li->out, s, dy, li->out, li->b, t->rank, 0.0f, du, t->rank);
    tr_gemm(t->pool, 1, 0, t->rank, li->in, n, 1.0f, du, t->rank, x, li->in, 1.0f, li->ga, li->in);
    tr_gemm(t->pool, 0, 0, n, li->in, t->rank, 1.0f, du, t->rank, li->a, li->in, 1.0f, dx, li->in);
}

static void add_bias(float *y, const float *b, int n, int width) {
    if (!b) return;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < width; i++) y[(long)r * width + i] += b[i];
}

static tr_attn_shape attn_shape(const sq_trainer *t, const tr_layer *L, int n_seqs, int seq_len) {
    return (tr_attn_shape){n_seqs, seq_len, L->n_heads, L->n_kv_heads, t->head_dim, t->cfg.sliding_window};
}

/* Block l on x_in [n][dim] -> x_out, its activations left in the trainer's buffers. */
static void block_fwd(sq_trainer *t, int l, const float *x_in, float *x_out, int n_seqs, int seq_len) {
    tr_layer *L = &t->layers[l];
    const int n = n_seqs * seq_len, d = t->dim, hd = t->head_dim;
    const int qw = L->n_heads * hd, kw = L->n_kv_heads * hd;
    tr_rmsnorm_fwd(t->pool, x_in, L->attn_norm, n, d, t->cfg.norm_eps, t->xn, t->rstd);
    linear_fwd(t, TR_Q, &L->lin[TR_Q], t->xn, n, t->q);
    linear_fwd(t, TR_K, &L->lin[TR_K], t->xn, n, t->k);
    linear_fwd(t, TR_V, &L->lin[TR_V], t->xn, n, t->v);
    add_bias(t->q, L->bq, n, qw);
    add_bias(t->k, L->bk, n, kw);
    add_bias(t->v, L->bv, n, kw);
    tr_rope(t->pool, t->q, n, L->n_heads, hd, t->cfg.rope_dims, t->pos, t->inv_freq, t->cfg.rope_style, 1);
    tr_rope(t->pool, t->k, n, L->n_kv_heads, hd, t->cfg.rope_dims, t->pos, t->inv_freq, t->cfg.rope_style, 1);
    tr_attn_shape s = attn_shape(t, L, n_seqs, seq_len);
    tr_attention_fwd(t->pool, &s, t->q, t->k, t->v, t->att, t->lse, t->attn_scratch);
    linear_fwd(t, TR_O, &L->lin[TR_O], t->att, n, t->xmid);
    for (long i = 0; i < (long)n * d; i++) t->xmid[i] += x_in[i];
    tr_rmsnorm_fwd(t->pool, t->xmid, L->ffn_norm, n, d, t->cfg.norm_eps, t->xn2, t->rstd2);
    linear_fwd(t, TR_GATE, &L->lin[TR_GATE], t->xn2, n, t->gate);
    linear_fwd(t, TR_UP, &L->lin[TR_UP], t->xn2, n, t->up);
    tr_swiglu_fwd(t->pool, t->gate, t->up, (int64_t)n * L->ffn_dim, t->h);
    linear_fwd(t, TR_DOWN, &L->lin[TR_DOWN], t->h, n, x_out);
    for (long i = 0; i < (long)n * d; i++) x_out[i] += t->xmid[i];
}

/* t->dx holds dL/d(block output); leaves dL/d(block input) there. */
static void block_bwd(sq_trainer *t, int l, const float *x_in, int n_seqs, int seq_len) {
    tr_layer *L = &t->layers[l];
    const int n = n_seqs * seq_len, d = t->dim, hd = t->head_dim;
    block_fwd(t, l, x_in, t->dxn, n_seqs, seq_len); /* recompute (the output itself is not needed) */
    /* FFN: x_out = xmid + down(h) */
    linear_bwd(t, TR_DOWN, &L->lin[TR_DOWN], t->h, t->dx, n, t->dup, 0); /* dh, in dup's room */
    tr_swiglu_bwd(t->pool, t->gate, t->up, t->dup, (int64_t)n * L->ffn_dim, t->dgate, t->dup);
    linear_bwd(t, TR_GATE, &L->lin[TR_GATE], t->xn2, t->dgate, n, t->dxn, 0);
    linear_bwd(t, TR_UP, &L->lin[TR_UP], t->xn2, t->dup, n, t->dxn, 1);
    tr_rmsnorm_bwd(t->pool, t->xmid, L->ffn_norm, t->rstd2, t->dxn, n, d, t->dx, L->g_ffn_norm);
    /* attention: xmid = x_in + o(att) */
    linear_bwd(t, TR_O, &L->lin[TR_O], t->att, t->dx, n, t->datt, 0);
    tr_attn_shape s = attn_shape(t, L, n_seqs, seq_len);
    tr_attention_bwd(t->pool, &s, t->q, t->k, t->v, t->att, t->lse, t->datt, t->dq, t->dk, t->dv);
    tr_rope(t->pool, t->dq, n, L->n_heads, hd, t->cfg.rope_dims, t->pos, t->inv_freq, t->cfg.rope_style, -1);
    tr_rope(t->pool, t->dk, n, L->n_kv_heads, hd, t->cfg.rope_dims, t->pos, t->inv_freq, t->cfg.rope_style,
            -1);
    linear_bwd(t, TR_Q, &L->lin[TR_Q], t->xn, t->dq, n, t->dxn, 0);
    linear_bwd(t, TR_K, &L->lin[TR_K], t->xn, t->dk, n, t->dxn, 1);
    linear_bwd(t, TR_V, &L->lin[TR_V], t->xn, t->dv, n, t->dxn, 1);
    tr_rmsnorm_bwd(t->pool, x_in, L->attn_norm, t->rstd, t->dxn, n, d, t->dx, L->g_attn_norm);
}

static SQ_NODISCARD sq_error *ensure_logits(sq_trainer *t, int seq_len, int teacher) {
    /* one sequence's logits at a time: [seq_len][vocab] */
    size_t need = (size_t)seq_len * t->vocab;
    float *l = realloc(t->logits, need * sizeof *l);
    if (!l) return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for logits [%d][%d]", seq_len, t->vocab);
    t->logits = l;
    if (teacher) {
        float *z = realloc(t->teacher, need * sizeof *z);
        if (!z) return sq_errorf(SQ_ERR_NOMEM, "trainer: out of memory for teacher logits");
        t->teacher = z;
    }
    return NULL;
}

SQ_NODISCARD sq_error *sq_trainer_run(sq_trainer *t, const int32_t *tokens, int n_seqs, int seq_len,
                                      const sq_loss_options *loss, int backward, sq_loss_value *value) {
    memset(value, 0, sizeof *value);
    const int64_t n64 = (int64_t)n_seqs * seq_len;
    if (n_seqs < 1 || seq_len < 2 || n64 > t->max_tokens)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "trainer: batch of %d x %d tokens (at least 1 x 2, at most %d tokens)", n_seqs,
                         seq_len, t->max_tokens);
    if (seq_len > t->cfg.max_seq_len)
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: sequences of %d tokens exceed the model's context %d",
                         seq_len, t->cfg.max_seq_len);
    const int use_kd = loss->kd_weight != 0;
    if (!(loss->ce_weight >= 0 && loss->kd_weight >= 0 && loss->ce_weight + loss->kd_weight > 0))
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: loss weights must be >= 0, not both 0");
    if (use_kd && (!loss->teacher || !(loss->kd_temp > 0)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: distillation needs a teacher and a temperature > 0");
    const int n = (int)n64, d = t->dim;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= t->vocab)
            return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: token id %d at %d outside the vocabulary [0, %d)",
                             tokens[i], i, t->vocab);
    SQ_TRY(ensure_logits(t, seq_len, use_kd));
    for (int i = 0; i < n; i++) {
        t->pos[i] = i % seq_len;
        t->target[i] = i % seq_len == seq_len - 1 ? -1 : tokens[i + 1];
        memcpy(t->xs + (size_t)i * d, t->tok_embd + (size_t)tokens[i] * d, (size_t)d * sizeof(float));
    }
    for (int l = 0; l < t->n_layers; l++)
        block_fwd(t, l, t->xs + (size_t)l * n * d, t->xs + (size_t)(l + 1) * n * d, n_seqs, seq_len);
    const float *xf = t->xs + (size_t)t->n_layers * n * d;
    tr_rmsnorm_fwd(t->pool, xf, t->out_norm, n, d, t->cfg.norm_eps, t->xn, t->rstd);
    tr_loss_spec spec = {loss->ce_weight, loss->kd_weight, use_kd ? loss->kd_temp : 1.0f,
                         1.0 / ((double)n_seqs * (seq_len - 1)), 1.0 / (double)n};
    double ce = 0, kd = 0;
    for (int b = 0; b < n_seqs; b++) {
        const size_t r0 = (size_t)b * seq_len;
        tr_gemm(t->pool, 0, 1, seq_len, t->vocab, d, 1.0f, t->xn + r0 * d, d, t->output, d, 0.0f, t->logits,
                t->vocab);
        if (use_kd) SQ_TRY(loss->teacher(loss->teacher_user, b, tokens + r0, seq_len, t->teacher));
        double ce_b, kd_b;
        tr_loss_rows(t->pool, t->logits, use_kd ? t->teacher : NULL, loss->ce_weight ? t->target + r0 : NULL,
                     seq_len, t->vocab, &spec, t->loss_partial, &ce_b, &kd_b);
        ce += ce_b;
        kd += kd_b;
        if (backward) /* dL/d(normed final state) of this sequence */
            tr_gemm(t->pool, 0, 0, seq_len, d, t->vocab, 1.0f, t->logits, t->vocab, t->output, d, 0.0f,
                    t->dxn + r0 * d, d);
    }
    value->ce = loss->ce_weight ? ce * spec.ce_scale : 0;
    value->kd = use_kd ? kd * spec.kd_scale : 0;
    value->loss = loss->ce_weight * value->ce + loss->kd_weight * spec.kd_temp * spec.kd_temp * value->kd;
    if (!backward) return NULL;
    memset(t->dx, 0, (size_t)n * d * sizeof *t->dx);
    tr_rmsnorm_bwd(t->pool, xf, t->out_norm, t->rstd, t->dxn, n, d, t->dx, NULL);
    for (int l = t->n_layers - 1; l >= 0; l--) block_bwd(t, l, t->xs + (size_t)l * n * d, n_seqs, seq_len);
    return NULL;
}

void sq_trainer_zero_grad(sq_trainer *t) {
    for (int i = 0; i < t->n_params; i++) memset(t->params[i].g, 0, (size_t)t->params[i].n * sizeof(float));
    if (!t->weight_grads) return;
    for (int l = 0; l < t->n_layers; l++) {
        tr_layer *L = &t->layers[l];
        memset(L->g_attn_norm, 0, (size_t)t->dim * sizeof(float));
        memset(L->g_ffn_norm, 0, (size_t)t->dim * sizeof(float));
        for (int i = 0; i < TR_N_LINEAR; i++)
            memset(L->lin[i].gw, 0, (size_t)L->lin[i].out * L->lin[i].in * sizeof(float));
    }
}

static double taylor_sum(const float *g, const float *w, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)g[i] * w[i]);
    return s;
}

SQ_NODISCARD sq_error *sq_trainer_block_taylor(const sq_trainer *t, double *scores) {
    if (!t->weight_grads) return sq_errorf(SQ_ERR_INVALID_ARG, "trainer: Taylor scores need weight_grads");
    for (int l = 0; l < t->n_layers; l++) {
        const tr_layer *L = &t->layers[l];
        scores[l] =
            taylor_sum(L->g_attn_norm, L->attn_norm, t->dim) + taylor_sum(L->g_ffn_norm, L->ffn_norm, t->dim);
        for (int i = 0; i < TR_N_LINEAR; i++)
            scores[l] += taylor_sum(L->lin[i].gw, L->lin[i].w, (int64_t)L->lin[i].out * L->lin[i].in);
    }
    return NULL;
}
