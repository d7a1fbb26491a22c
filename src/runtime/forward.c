/* forward(batch): one pass of the transformer over the new tokens of several sequences at once.
 *
 * The tokens of all sequences are the rows of one activation matrix, so every projection is a single matrix
 * product whatever mix of prefill chunks, decode tokens and token trees the batch holds. Each token carries
 * its sequence, position and cache slot: RoPE uses the position, attention reads the slots the token sees.
 * Every step is an operation of the context's backend (kernels/backend.h); this file only sequences them:
 *
 *   begin:  validate, reserve cache blocks (all or nothing), lay out the tokens, embed    x = tok_embd[id]
 *   layer:  x += wo · attention(rope(wq·norm(x)), rope(wk·norm(x)), wv·norm(x))           keys, values stored
 *           x += w_down · (silu(w_gate·norm(x)) * w_up·norm(x))
 *           (what the block has: q/k biases, per-head q/k norms, post-norms of both outputs, GeGLU;
 *           a mixture-of-experts block: x += sum over the token's top-k experts of p_e · expert_e(norm(x)))
 *   end:    logits of the rows asked for = output · norm(x[rows]), into the caller's buffers; commit lengths
 *
 * sq_forward runs the three; larger batches than n_batch_max go in consecutive chunks (a later chunk sees
 * the keys an earlier one stored). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/moe_route.h"

/* ---------------------------------------------------------------- the batch */

static SQ_NODISCARD sq_error *check_batch(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    const int vocab = ctx->model->cfg.vocab_size;
    if (ctx->stepping)
        return sq_errorf(SQ_ERR_INVALID_ARG, "forward: a forward step is in progress (end it first)");
    if (n_seqs < 0 || (n_seqs > 0 && !seqs)) return sq_errorf(SQ_ERR_INVALID_ARG, "forward: invalid batch");
    for (int i = 0; i < n_seqs; i++) {
        const sq_seq_batch *s = &seqs[i];
        if (s->seq_id < 0 || s->seq_id >= ctx->n_seq_max)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence id %d is outside 0..%d", s->seq_id,
                             ctx->n_seq_max - 1);
        for (int j = 0; j < i; j++)
            if (seqs[j].seq_id == s->seq_id)
                return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d appears twice in one batch",
                                 s->seq_id);
        if (s->n_tokens < 0 || (s->n_tokens > 0 && !s->tokens))
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d has an invalid token list", s->seq_id);
        const int len = sq_kv_cache_seq_len(ctx->kv, s->seq_id);
        if (s->n_tokens > ctx->n_ctx - len)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "forward: sequence %d holds %d tokens; %d more exceed the context of %d",
                             s->seq_id, len, s->n_tokens, ctx->n_ctx);
        if (s->logits_mode != SQ_LOGITS_NONE && s->logits_mode != SQ_LOGITS_LAST &&
            s->logits_mode != SQ_LOGITS_ALL)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d has an unknown logits mode",
                             s->seq_id);
        if (s->logits_mode != SQ_LOGITS_NONE && !s->logits)
            return sq_errorf(SQ_ERR_INVALID_ARG, "forward: sequence %d asks for logits but gives no buffer",
                             s->seq_id);
        for (int j = 0; j < s->n_tokens; j++)
            if (s->tokens[j] < 0 || s->tokens[j] >= vocab)
                return sq_errorf(SQ_ERR_INVALID_ARG,
                                 "forward: token id %d (sequence %d, index %d) is outside the "
                                 "vocabulary of %d",
                                 s->tokens[j], s->seq_id, j, vocab);
        if (ctx->tree_start[s->seq_id] >= 0 && s->n_tokens > 0)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "forward: sequence %d ends in a token tree: keep one path (sq_seq_keep_path) or "
                             "truncate it first",
                             s->seq_id);
        if (!s->parents) continue;
        if (s->n_tokens > ctx->n_batch_max)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "forward: sequence %d's token tree of %d exceeds n_batch_max %d", s->seq_id,
                             s->n_tokens, ctx->n_batch_max);
        for (int j = 0; j < s->n_tokens; j++)
            if (s->parents[j] < -1 || s->parents[j] >= j)
                return sq_errorf(SQ_ERR_INVALID_ARG,
                                 "forward: sequence %d, token %d: parent %d is not -1 or an earlier token",
                                 s->seq_id, j, s->parents[j]);
    }
    return NULL;
}

/* Checks the batch, then gives every sequence its cache slots, all or nothing: a rejected batch changes
 * nothing. Records the sequences and lengths to commit. */
static SQ_NODISCARD sq_error *reserve_batch(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    SQ_TRY(check_batch(ctx, seqs, n_seqs));
    int any_tree = 0;
    for (int i = 0; i < n_seqs; i++) {
        ctx->step_seq[i] = seqs[i].seq_id;
        ctx->step_len[i] = sq_kv_cache_seq_len(ctx->kv, seqs[i].seq_id) + seqs[i].n_tokens;
        ctx->step_tree[i] = seqs[i].parents != NULL && seqs[i].n_tokens > 0;
        any_tree |= ctx->step_tree[i];
    }
    if (any_tree && !ctx->tree_parent) {
        ctx->tree_parent = malloc((size_t)ctx->n_seq_max * ctx->n_batch_max * sizeof *ctx->tree_parent);
        if (!ctx->tree_parent) return sq_errorf(SQ_ERR_NOMEM, "forward: out of memory for token trees");
    }
    SQ_TRY(sq_kv_cache_reserve(ctx->kv, ctx->step_seq, ctx->step_len, n_seqs));
    ctx->n_step_seqs = n_seqs;
    for (int i = 0; i < n_seqs; i++)
        if (ctx->step_tree[i])
            memcpy(ctx->tree_parent + (size_t)seqs[i].seq_id * ctx->n_batch_max, seqs[i].parents,
                   (size_t)seqs[i].n_tokens * sizeof *ctx->tree_parent);
    return NULL;
}

/* Where the next chunk starts: sequence i, its token j. */
typedef struct cursor {
    int i, j;
} cursor;

/* Lays out the next chunk of at most n_batch_max tokens from *at (a token tree is never split) and uploads
 * it; returns its token count. */
static int layout_chunk(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs, cursor *at) {
    const int B = ctx->n_batch_max, vocab = ctx->model->cfg.vocab_size;
    int32_t *f = ctx->tok_host;
    int32_t *id = f + (size_t)TOK_ID * B, *seq = f + (size_t)TOK_SEQ * B, *pos = f + (size_t)TOK_POS * B;
    int32_t *slot = f + (size_t)TOK_SLOT * B, *n_prefix = f + (size_t)TOK_N_PREFIX * B;
    int32_t *parent = f + (size_t)TOK_PARENT * B, *out_row = f + (size_t)TOK_OUT_ROW * B;
    int n = 0;
    ctx->n_out = 0;
    for (; at->i < n_seqs; at->i++, at->j = 0) {
        const sq_seq_batch *s = &seqs[at->i];
        if (s->parents && n > 0 && n + s->n_tokens > B) break;
        const int base = sq_kv_cache_seq_len(ctx->kv, s->seq_id), first = n - at->j;
        for (; at->j < s->n_tokens && n < B; at->j++, n++) {
            const int j = at->j, p = s->parents ? s->parents[j] : -1;
            id[n] = s->tokens[j];
            seq[n] = s->seq_id;
            slot[n] = base + j;
            /* a plain token sees every slot before its own; a tree node the cached ones and its ancestors */
            n_prefix[n] = s->parents ? base : base + j;
            parent[n] = p < 0 ? -1 : first + p;
            pos[n] = p < 0 ? n_prefix[n] : pos[first + p] + 1;
            float *dest = s->logits_mode == SQ_LOGITS_ALL ? s->logits + (size_t)j * vocab
                          : s->logits_mode == SQ_LOGITS_LAST && j == s->n_tokens - 1 ? s->logits
                                                                                     : NULL;
            if (dest) {
                out_row[ctx->n_out] = n;
                ctx->logits_dest[ctx->n_out++] = dest;
            }
        }
        if (at->j < s->n_tokens) break;
    }
    const sq_backend *be = &ctx->backend;
    for (int k = 0; k < TOK_FIELDS; k++)
        be->upload(be->impl, ctx->tok_dev + (size_t)k * B, f + (size_t)k * B, (size_t)n * sizeof *f);
    ctx->tokens.n_tokens = n;
    sq_kv_cache_sync_table(ctx->kv);
    for (int l = 0; l < ctx->model->cfg.n_layers; l++) sq_kv_cache_view(ctx->kv, l, &ctx->layer_args[l].kv);
    return n;
}

static void commit(sq_context *ctx) {
    for (int i = 0; i < ctx->n_step_seqs; i++) {
        const int s = ctx->step_seq[i], len = sq_kv_cache_seq_len(ctx->kv, s);
        if (ctx->step_tree[i]) {
            ctx->tree_start[s] = len;
            ctx->tree_len[s] = ctx->step_len[i] - len;
        }
        sq_kv_cache_set_seq_len(ctx->kv, s, ctx->step_len[i]);
    }
    ctx->n_step_seqs = 0;
}

/* ---------------------------------------------------------------- the layers */

/* Hands the tap a linear layer's input, from host memory. */
static void tap(sq_context *ctx, int layer, sq_tap_point point, int expert, const float *x, int n_tokens,
                int width) {
    if (!ctx->tap || n_tokens == 0) return;
    const sq_backend *be = &ctx->backend;
    if (!be->host_memory) {
        be->download(be->impl, ctx->tap_host, x, (size_t)n_tokens * width * sizeof *x);
        x = ctx->tap_host;
    }
    ctx->tap(ctx->tap_user, layer, point, expert, x, n_tokens, width);
}

/* out = w_down · (act(w_gate·in) * w_up·in) over n rows (out may be in): routed expert `expert`, or the
 * shared expert (-1, its down input tapped as SQ_TAP_FFN_DOWN; its gate/up input is SQ_TAP_FFN_IN's). */
static void ffn(sq_context *ctx, const sq_block_args *a, int expert, const sq_tensor *w_gate,
                const sq_tensor *w_up, const sq_tensor *w_down, const float *in, int n, float *out) {
    const sq_backend *be = &ctx->backend;
    void *B = be->impl;
    const int width = (int)w_gate->shape[0];
    if (expert >= 0) tap(ctx, a->layer, SQ_TAP_EXPERT_IN, expert, in, n, (int)w_gate->shape[1]);
    be->matmul(B, w_gate, in, n, a->gate);
    be->matmul(B, w_up, in, n, a->up);
    (a->geglu ? be->geglu : be->swiglu)(B, a->gate, a->up, (int64_t)n * width);
    tap(ctx, a->layer, expert >= 0 ? SQ_TAP_EXPERT_DOWN : SQ_TAP_FFN_DOWN, expert, a->gate, n, width);
    be->matmul(B, w_down, a->gate, n, out);
}

/* A mixture-of-experts FFN on the normed rows a->xb: the router's logits come to the host, which picks each
 * token's experts (moe_route.h) and groups the tokens by expert; each expert used then runs once on its
 * tokens' rows (gathered, one matrix product per weight, its outputs added into x weighted by the routing
 * probabilities), so its weights are read once per call whatever the batch. The shared expert (Qwen2-MoE)
 * runs on every row, weighted by sigmoid(ffn_gate_inp_shexp · xb), computed with the routing. */
static void ffn_experts(sq_context *ctx, const sq_block_args *a) {
    const sq_backend *be = &ctx->backend;
    void *B = be->impl;
    const sq_block_weights *w = a->w;
    const int n = a->tokens->n_tokens, dim = a->dim, E = w->n_experts, K = a->n_experts_used;
    const int shared = w->shexp_dim > 0;
    be->matmul(B, &w->ffn_gate_inp, a->xb, n, ctx->moe_logits);
    if (shared) be->matmul(B, &w->ffn_gate_inp_shexp, a->xb, n, ctx->moe_logits + (size_t)n * E);
    be->download(B, ctx->moe_host, ctx->moe_logits, (size_t)n * (E + shared) * sizeof(float));
    if (ctx->tap)
        ctx->tap(ctx->tap_user, a->layer, SQ_TAP_ROUTER, -1, ctx->moe_host, n, E); /* host already */
    sq_moe_route(ctx->moe_host, n, E, K, a->expert_norm_topk, ctx->moe_offset, ctx->moe_host_rows,
                 ctx->moe_host_weight);
    const int n_routed = n * K, n_rows = n_routed + (shared ? n : 0);
    for (int t = 0; shared && t < n; t++) {
        ctx->moe_host_rows[n_routed + t] = t;
        ctx->moe_host_weight[n_routed + t] =
            (float)(1.0 / (1.0 + exp(-(double)ctx->moe_host[(size_t)n * E + t])));
    }
    be->upload(B, ctx->moe_rows, ctx->moe_host_rows, (size_t)n_rows * sizeof *ctx->moe_rows);
    be->upload(B, ctx->moe_weight, ctx->moe_host_weight, (size_t)n_rows * sizeof *ctx->moe_weight);
    const sq_tensor xb = {.dtype = SQ_DTYPE_F32,
                          .ndim = 2,
                          .shape = {n, dim},
                          .data = a->xb,
                          .nbytes = (size_t)n * dim * sizeof(float)};
    for (int e = 0; e < E; e++) {
        const int first = ctx->moe_offset[e], count = ctx->moe_offset[e + 1] - first;
        if (!count) continue; /* no token chose it: its weights are not read */
        const sq_tensor gate = sq_tensor_slice(&w->ffn_gate_exps, e),
                        up = sq_tensor_slice(&w->ffn_up_exps, e),
                        down = sq_tensor_slice(&w->ffn_down_exps, e);
        be->get_rows(B, &xb, ctx->moe_rows + first, count, ctx->moe_x);
        ffn(ctx, a, e, &gate, &up, &down, ctx->moe_x, count, ctx->moe_y);
        be->add_rows(B, a->x, ctx->moe_y, ctx->moe_rows + first, ctx->moe_weight + first, count, dim);
    }
    if (!shared) return;
    ffn(ctx, a, -1, &w->ffn_gate_shexp, &w->ffn_up_shexp, &w->ffn_down_shexp, a->xb, n, ctx->moe_y);
    be->add_rows(B, a->x, ctx->moe_y, ctx->moe_rows + n_routed, ctx->moe_weight + n_routed, n, dim);
}

/* out [n][rows] = W.x for x [n][cols], W the block's linear i: one matmul, or, for low-rank factors
 * (W ~= B.A), two through the rank-wide scratch: out = B.(A.x). */
static void linear(const sq_backend *be, const sq_block_args *a, sq_linear i, const float *x, int n,
                   float *out) {
    const sq_block_weights *w = a->w;
    if (w->lr_a[i].data) {
        be->matmul(be->impl, &w->lr_a[i], x, n, a->lr_mid);
        be->matmul(be->impl, &w->lr_b[i], a->lr_mid, n, out);
        return;
    }
    const sq_tensor *dense[SQ_N_LINEAR] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
    be->matmul(be->impl, dense[i], x, n, out);
}

/* One transformer block, operation by operation: the reference for a backend's fused `block`. */
static void block_ops(sq_context *ctx, const sq_block_args *a) {
    const sq_backend *be = &ctx->backend;
    void *B = be->impl;
    const sq_block_weights *w = a->w;
    const int n = a->tokens->n_tokens, dim = a->dim, hd = a->head_dim, l = a->layer;
    const int q_dim = w->n_heads * hd, kv_dim = w->n_kv_heads * hd;

    /* attention: x += wo · attention(rope(wq·norm(x)), rope(wk·norm(x)), wv·norm(x)) */
    be->rmsnorm(B, a->x, w->attn_norm.data, a->norm_eps, n, dim, a->xb);
    tap(ctx, l, SQ_TAP_ATTN_IN, -1, a->xb, n, dim);
    linear(be, a, SQ_LINEAR_Q, a->xb, n, a->q);
    linear(be, a, SQ_LINEAR_K, a->xb, n, a->k);
    linear(be, a, SQ_LINEAR_V, a->xb, n, a->v);
    if (w->bq.data) be->add_bias(B, a->q, w->bq.data, n, q_dim);
    if (w->bk.data) be->add_bias(B, a->k, w->bk.data, n, kv_dim);
    if (w->bv.data) be->add_bias(B, a->v, w->bv.data, n, kv_dim);
    if (w->q_norm.data) { /* Qwen3, Gemma 3: every head's query and key RMS-normalised over head_dim */
        be->rmsnorm(B, a->q, w->q_norm.data, a->norm_eps, n * w->n_heads, hd, a->q);
        be->rmsnorm(B, a->k, w->k_norm.data, a->norm_eps, n * w->n_kv_heads, hd, a->k);
    }
    if (a->q_scale != 1.0f) be->scale(B, a->q, a->q_scale, (int64_t)n * q_dim);
    be->rope(B, a->q, w->n_heads, a->k, w->n_kv_heads, n, hd, a->rope_dims, a->tokens->pos, a->inv_freq,
             a->rope_style);
    be->kv_store(B, &a->kv, a->k, a->v, a->tokens);
    const sq_attention_args att = sq_block_attention_args(a);
    be->attention(B, &att);
    tap(ctx, l, SQ_TAP_ATTN_OUT, -1, a->attn_out, n, q_dim);
    linear(be, a, SQ_LINEAR_O, a->attn_out, n, a->xb);
    if (w->attn_post_norm.data) be->rmsnorm(B, a->xb, w->attn_post_norm.data, a->norm_eps, n, dim, a->xb);
    be->add(B, a->x, a->xb, (int64_t)n * dim);

    /* feed-forward: x += w_down · (act(w_gate·norm(x)) * w_up·norm(x)), act SiLU or tanh GELU */
    be->rmsnorm(B, a->x, w->ffn_norm.data, a->norm_eps, n, dim, a->xb);
    tap(ctx, l, SQ_TAP_FFN_IN, -1, a->xb, n, dim);
    if (w->n_experts) {
        ffn_experts(ctx, a);
        return;
    }
    linear(be, a, SQ_LINEAR_GATE, a->xb, n, a->gate);
    linear(be, a, SQ_LINEAR_UP, a->xb, n, a->up);
    (a->geglu ? be->geglu : be->swiglu)(B, a->gate, a->up, (int64_t)n * w->ffn_dim);
    tap(ctx, l, SQ_TAP_FFN_DOWN, -1, a->gate, n, w->ffn_dim);
    linear(be, a, SQ_LINEAR_DOWN, a->gate, n, a->xb);
    if (w->ffn_post_norm.data) be->rmsnorm(B, a->xb, w->ffn_post_norm.data, a->norm_eps, n, dim, a->xb);
    be->add(B, a->x, a->xb, (int64_t)n * dim);
}

static void run_layer(sq_context *ctx, int l) {
    const sq_backend *be = &ctx->backend;
    /* fused blocks run dense weights only */
    if (be->block && !ctx->tap && !ctx->max_rank && !ctx->blocks[l].n_experts)
        be->block(be->impl, &ctx->layer_args[l]);
    else
        block_ops(ctx, &ctx->layer_args[l]);
}

static void embed(sq_context *ctx) {
    const sq_backend *be = &ctx->backend;
    const float s = ctx->model->cfg.embd_scale;
    be->get_rows(be->impl, &ctx->tok_embd, ctx->tokens.id, ctx->tokens.n_tokens, ctx->x);
    if (s != 1.0f) be->scale(be->impl, ctx->x, s, (int64_t)ctx->tokens.n_tokens * ctx->model->cfg.dim);
}

/* Logits of the rows asked for: output · norm(x[row]) into the caller's buffers, consecutive destinations
 * as one matrix product (straight into them with host memory, else through the staging rows). */
static void output_logits(sq_context *ctx) {
    const sq_model_config *c = &ctx->model->cfg;
    const sq_backend *be = &ctx->backend;
    const int n_out = ctx->n_out, dim = c->dim, vocab = c->vocab_size;
    if (n_out == 0) return;
    const sq_tensor x = {.dtype = SQ_DTYPE_F32,
                         .ndim = 2,
                         .shape = {ctx->tokens.n_tokens, dim},
                         .data = ctx->x,
                         .nbytes = (size_t)ctx->tokens.n_tokens * dim * sizeof(float)};
    be->get_rows(be->impl, &x, ctx->tok_dev + (size_t)TOK_OUT_ROW * ctx->n_batch_max, n_out, ctx->xb);
    be->rmsnorm(be->impl, ctx->xb, ctx->out_norm.data, c->norm_eps, n_out, dim, ctx->xb);
    tap(ctx, -1, SQ_TAP_OUTPUT, -1, ctx->xb, n_out, dim);
    float **dest = ctx->logits_dest;
    for (int r = 0, run; r < n_out; r += run) {
        run = 1;
        while (r + run < n_out && dest[r + run] == dest[r] + (size_t)run * vocab &&
               (be->host_memory || run < SQ_LOGITS_ROWS))
            run++;
        float *y = be->host_memory ? dest[r] : ctx->logits;
        be->matmul(be->impl, &ctx->output, ctx->xb + (size_t)r * dim, run, y);
        if (!be->host_memory) be->download(be->impl, dest[r], y, (size_t)run * vocab * sizeof *y);
        const float cap = c->final_softcap; /* Gemma 2: on the host, whatever the backend */
        for (size_t i = 0; cap > 0 && i < (size_t)run * vocab; i++)
            dest[r][i] = cap * tanhf(dest[r][i] / cap);
    }
}

/* ---------------------------------------------------------------- public calls */

/* What went wrong on the device since the last check (kernels/backend.h's take_error), as an error. */
static SQ_NODISCARD sq_error *device_error(const sq_context *ctx) {
    const sq_backend *be = &ctx->backend;
    const char *msg = be->take_error ? be->take_error(be->impl) : NULL;
    return msg ? sq_errorf(SQ_ERR_INTERNAL, "device %s: %s", be->name, msg) : NULL;
}

sq_error *sq_forward_ex(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs,
                        const sq_forward_options *opts) {
    SQ_TRY(reserve_batch(ctx, seqs, n_seqs));
    const sq_backend *be = &ctx->backend;
    const int n_layers = ctx->model->cfg.n_layers;
    const unsigned char *skip = opts ? opts->skip_layers : NULL;
    cursor at = {0, 0};
    while (layout_chunk(ctx, seqs, n_seqs, &at) > 0) {
        if (be->forward && !ctx->tap && !ctx->max_rank && !ctx->model->cfg.n_experts) {
            be->forward(be->impl, &(sq_forward_args){.tokens = &ctx->tokens,
                                                     .tok_embd = &ctx->tok_embd,
                                                     .embd_scale = ctx->model->cfg.embd_scale,
                                                     .blocks = ctx->layer_args,
                                                     .n_layers = n_layers,
                                                     .skip = skip,
                                                     .x = ctx->x});
        } else {
            embed(ctx);
            for (int l = 0; l < n_layers; l++)
                if (!skip || !skip[l]) run_layer(ctx, l);
        }
        output_logits(ctx);
    }
    be->synchronize(be->impl);
    commit(ctx);
    return device_error(ctx);
}

sq_error *sq_forward(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    return sq_forward_ex(ctx, seqs, n_seqs, NULL);
}

sq_error *sq_forward_begin(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    long total = 0;
    for (int i = 0; seqs && i < n_seqs; i++) total += seqs[i].n_tokens > 0 ? seqs[i].n_tokens : 0;
    if (total > ctx->n_batch_max)
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "forward begin: %ld tokens exceed the context's n_batch_max of %d (sq_forward splits "
            "larger batches)",
            total, ctx->n_batch_max);
    SQ_TRY(reserve_batch(ctx, seqs, n_seqs));
    cursor at = {0, 0};
    layout_chunk(ctx, seqs, n_seqs, &at);
    embed(ctx);
    ctx->stepping = 1;
    return NULL;
}

static SQ_NODISCARD sq_error *check_stepping(const sq_context *ctx, const char *what) {
    return ctx->stepping
               ? NULL
               : sq_errorf(SQ_ERR_INVALID_ARG, "%s: no forward step in progress (sq_forward_begin)", what);
}

sq_error *sq_forward_layer(sq_context *ctx, int layer) {
    SQ_TRY(check_stepping(ctx, "forward layer"));
    if (layer < 0 || layer >= ctx->model->cfg.n_layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "forward layer: layer %d is outside 0..%d", layer,
                         ctx->model->cfg.n_layers - 1);
    run_layer(ctx, layer);
    return NULL;
}

sq_error *sq_forward_end(sq_context *ctx) {
    SQ_TRY(check_stepping(ctx, "forward end"));
    output_logits(ctx);
    ctx->backend.synchronize(ctx->backend.impl);
    commit(ctx);
    ctx->stepping = 0;
    return device_error(ctx);
}

int sq_forward_n_tokens(const sq_context *ctx) { return ctx->stepping ? ctx->tokens.n_tokens : 0; }

sq_error *sq_forward_get_hidden(sq_context *ctx, float *out) {
    SQ_TRY(check_stepping(ctx, "get hidden state"));
    const sq_backend *be = &ctx->backend;
    be->download(be->impl, out, ctx->x, (size_t)ctx->tokens.n_tokens * ctx->model->cfg.dim * sizeof *out);
    return NULL;
}

sq_error *sq_forward_set_hidden(sq_context *ctx, const float *in) {
    SQ_TRY(check_stepping(ctx, "set hidden state"));
    const sq_backend *be = &ctx->backend;
    be->upload(be->impl, ctx->x, in, (size_t)ctx->tokens.n_tokens * ctx->model->cfg.dim * sizeof *in);
    return NULL;
}
