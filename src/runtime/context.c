/* The execution context: backend, weights as the backend holds them, KV cache, activations; and the calls
 * that change a sequence's cache outside a forward pass (truncate, keep a token tree's path). */
#include "runtime/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void sq_rope_frequencies(const sq_model_config *cfg, int n_ctx, double *inv_freq) {
    const int half = cfg->rope_dims / 2;
    const sq_rope_scaling *s = &cfg->rope_scaling;
    for (int i = 0; i < half; i++) {
        double f = pow(cfg->rope_theta, -2.0 * i / cfg->rope_dims);
        if (s->type == SQ_ROPE_SCALING_LLAMA3) {
            /* Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between blended
             */
            double wavelen = 2 * M_PI / f;
            double low_wavelen = s->original_max_pos / s->low_freq_factor;
            double high_wavelen = s->original_max_pos / s->high_freq_factor;
            if (wavelen > low_wavelen) {
                f /= s->factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (s->original_max_pos / wavelen - s->low_freq_factor) /
                                (s->high_freq_factor - s->low_freq_factor);
                f = (1 - smooth) * f / s->factor + smooth * f;
            }
        }
        if (s->type == SQ_ROPE_SCALING_LONGROPE)
            f /= n_ctx > s->original_max_pos ? cfg->longrope.long_factor[i] : cfg->longrope.short_factor[i];
        inv_freq[i] = f;
    }
}

float sq_rope_score_scale(const sq_model_config *c) {
    const int hd = c->head_dim;
    double s = c->attn_scalar > 0 ? sqrt((double)hd) / sqrt((double)c->attn_scalar) : 1.0;
    if (c->rope_scaling.type == SQ_ROPE_SCALING_LONGROPE)
        s *= (double)c->longrope.attn_factor * c->longrope.attn_factor;
    return (float)s;
}

/* ---------------------------------------------------------------- weights */

enum { BLOCK_TENSORS = 24 + 2 * SQ_N_LINEAR };

static int n_weight_slots(const sq_context *ctx) { return 3 + BLOCK_TENSORS * ctx->model->cfg.n_layers; }

/* Every weight the context holds, in one order: the model's tensor (NULL: an absent bias) and its copy. */
static void weight_slots(sq_context *ctx, const sq_tensor **host, sq_tensor **dev) {
    const sq_model *m = ctx->model;
    int n = 0;
#define SLOT(h, d) (host[n] = (h), dev[n] = (d), n++)
    SLOT(m->tok_embd, &ctx->tok_embd);
    SLOT(m->out_norm, &ctx->out_norm);
    SLOT(m->output, &ctx->output);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const sq_layer *L = &m->layers[l];
        sq_block_weights *b = &ctx->blocks[l];
        SLOT(L->attn_norm, &b->attn_norm);
        SLOT(L->wq, &b->wq);
        SLOT(L->wk, &b->wk);
        SLOT(L->wv, &b->wv);
        SLOT(L->wo, &b->wo);
        SLOT(L->bq, &b->bq);
        SLOT(L->bk, &b->bk);
        SLOT(L->bv, &b->bv);
        SLOT(L->q_norm, &b->q_norm);
        SLOT(L->k_norm, &b->k_norm);
        SLOT(L->attn_post_norm, &b->attn_post_norm);
        SLOT(L->ffn_norm, &b->ffn_norm);
        SLOT(L->ffn_post_norm, &b->ffn_post_norm);
        SLOT(L->w_gate, &b->w_gate);
        SLOT(L->w_up, &b->w_up);
        SLOT(L->w_down, &b->w_down);
        SLOT(L->ffn_gate_inp, &b->ffn_gate_inp);
        SLOT(L->ffn_gate_exps, &b->ffn_gate_exps);
        SLOT(L->ffn_up_exps, &b->ffn_up_exps);
        SLOT(L->ffn_down_exps, &b->ffn_down_exps);
        SLOT(L->ffn_gate_shexp, &b->ffn_gate_shexp);
        SLOT(L->ffn_up_shexp, &b->ffn_up_shexp);
        SLOT(L->ffn_down_shexp, &b->ffn_down_shexp);
        SLOT(L->ffn_gate_inp_shexp, &b->ffn_gate_inp_shexp);
        for (int i = 0; i < SQ_N_LINEAR; i++) {
            SLOT(L->lr_a[i], &b->lr_a[i]);
            SLOT(L->lr_b[i], &b->lr_b[i]);
        }
    }
#undef SLOT
}

static void free_weights(sq_context *ctx) {
    if (!ctx->weight_src || !ctx->blocks) return;
    const int n = n_weight_slots(ctx);
    const sq_tensor **host = malloc((size_t)n * sizeof *host);
    sq_tensor **dev = malloc((size_t)n * sizeof *dev);
    if (host && dev) {
        weight_slots(ctx, host, dev);
        for (int i = 0; i < n; i++)
            if (ctx->weight_src[i]) ctx->backend.free(ctx->backend.impl, dev[i]->data);
    }
    free(host);
    free(dev);
}

/* (Re)makes the backend's copy of every weight: with host memory the model's tensor itself; otherwise an
 * upload, kept while the model's tensor still has the same data, dtype and size, and shared between slots
 * that name the same tensor (tied embeddings). */
static SQ_NODISCARD sq_error *bind_weights(sq_context *ctx) {
    const sq_backend *be = &ctx->backend;
    const int n = n_weight_slots(ctx);
    const sq_tensor **host = malloc((size_t)n * sizeof *host);
    sq_tensor **dev = malloc((size_t)n * sizeof *dev);
    sq_error *err = NULL;
    if (!host || !dev) err = sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    if (!err) weight_slots(ctx, host, dev);
    /* slot 0 is the embedding table (rows are read); every other matrix is multiplied */
    for (int i = 1; !err && i < n; i++)
        if (host[i] && host[i]->ndim >= 2 && !be->supports(be->impl, SQ_OP_MATMUL, host[i]->dtype))
            err = sq_errorf(SQ_ERR_UNSUPPORTED, "device %s cannot multiply %s weights (%s)", be->name,
                            sq_dtype_info(host[i]->dtype)->name, host[i]->name);
    for (int i = 0; !err && i < n; i++) {
        const sq_tensor *h = host[i];
        if (be->host_memory) {
            *dev[i] = h ? *h : (sq_tensor){0};
            continue;
        }
        const void *src = h ? h->data : NULL;
        if (ctx->weight_src[i] == src && src && dev[i]->dtype == h->dtype && dev[i]->nbytes == h->nbytes)
            continue; /* unchanged since the last upload */
        int alias = -1;
        for (int j = 0; h && j < i && alias < 0; j++)
            if (host[j] == h) alias = j;
        sq_tensor copy = h ? *h : (sq_tensor){0};
        if (h && alias < 0) {
            copy.data = be->alloc(be->impl, h->nbytes);
            copy.storage = SQ_STORAGE_DEVICE;
            if (!copy.data) {
                err = sq_errorf(SQ_ERR_NOMEM, "device %s: no memory for %s (%zu bytes)", be->name, h->name,
                                h->nbytes);
                break;
            }
            if (be->upload_weight)
                be->upload_weight(be->impl, copy.data, h);
            else
                be->upload(be->impl, copy.data, h->data, h->nbytes);
        } else if (h) {
            copy.data = dev[alias]->data;
            copy.storage = SQ_STORAGE_DEVICE;
        }
        if (ctx->weight_src[i]) be->free(be->impl, dev[i]->data);
        *dev[i] = copy;
        ctx->weight_src[i] = alias < 0 ? src : NULL;
    }
    free(host);
    free(dev);
    return err;
}

sq_error *sq_context_reload_weights(sq_context *ctx) {
    const sq_model *m = ctx->model;
    if (ctx->stepping)
        return sq_errorf(SQ_ERR_INVALID_ARG, "reload weights: a forward step is in progress (end it first)");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const sq_layer *L = &m->layers[l];
        const sq_block_weights *b = &ctx->blocks[l];
        if (L->n_heads != b->n_heads || L->n_kv_heads != b->n_kv_heads || L->ffn_dim != b->ffn_dim ||
            L->n_experts != b->n_experts || L->shexp_dim != b->shexp_dim)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "reload weights: layer %d changed shape (heads %d/%d, ffn %d) since the context "
                             "was created (heads %d/%d, ffn %d): create a new context",
                             l, L->n_heads, L->n_kv_heads, L->ffn_dim, b->n_heads, b->n_kv_heads, b->ffn_dim);
        for (int i = 0; i < SQ_N_LINEAR; i++)
            if (L->lr_a[i] && L->lr_a[i]->shape[0] > ctx->max_rank)
                return sq_errorf(SQ_ERR_INVALID_ARG,
                                 "reload weights: layer %d's %s has rank %lld, above the %d the context was "
                                 "created for: create a new context",
                                 l, sq_linear_names[i], (long long)L->lr_a[i]->shape[0], ctx->max_rank);
    }
    return bind_weights(ctx);
}

/* ---------------------------------------------------------------- create and free */

void sq_context_free(sq_context *ctx) {
    if (!ctx) return;
    const sq_backend *be = &ctx->backend;
    free_weights(ctx);
    void *bufs[] = {ctx->x,          ctx->xb,       ctx->q,          ctx->k,      ctx->v,
                    ctx->attn_out,   ctx->gate,     ctx->up,         ctx->lr_mid, ctx->logits,
                    ctx->moe_logits, ctx->moe_rows, ctx->moe_weight, ctx->moe_x,  ctx->moe_y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(be->impl, bufs[i]);
    free(ctx->moe_host);
    free(ctx->moe_host_rows);
    free(ctx->moe_host_weight);
    free(ctx->moe_offset);
    be->free(be->impl, ctx->inv_freq);
    if (ctx->tok_dev != ctx->tok_host) be->free(be->impl, ctx->tok_dev);
    sq_kv_cache_free(ctx->kv);
    sq_backend_destroy(&ctx->backend);
    free(ctx->tok_host);
    free(ctx->tap_host);
    free(ctx->logits_dest);
    free(ctx->layer_args);
    free(ctx->blocks);
    free(ctx->weight_src);
    free(ctx->step_seq);
    free(ctx->step_len);
    free(ctx->step_tree);
    free(ctx->query_len);
    free(ctx->tree_start);
    free(ctx->tree_len);
    free(ctx->tree_parent);
    free(ctx);
}

/* The row format of each sq_kv_type. */
static const sq_dtype kv_row_types[] = {[SQ_KV_F32] = SQ_DTYPE_F32,
                                        [SQ_KV_F16] = SQ_DTYPE_F16,
                                        [SQ_KV_Q8_0] = SQ_DTYPE_Q8_0,
                                        [SQ_KV_Q4_0] = SQ_DTYPE_Q4_0};
enum { N_KV_TYPES = sizeof kv_row_types / sizeof *kv_row_types };

const char *sq_kv_type_name(sq_kv_type type) {
    return (unsigned)type < N_KV_TYPES ? sq_dtype_info(kv_row_types[type])->name : NULL;
}

static SQ_NODISCARD sq_error *check_options(const sq_context_options *o) {
    if (o->n_ctx < 0 || o->n_seq_max < 0 || o->n_threads < 0 || o->n_batch_max < 0 || o->n_seq_max > 65536 ||
        o->n_threads > 1024 || o->kv_block_size < 0 || o->kv_block_size > SQ_KV_MAX_BLOCK_SIZE ||
        (unsigned)o->kv_type >= N_KV_TYPES)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "context: invalid options (n_ctx %d, n_seq_max %d, threads %d, n_batch_max %d, "
                         "kv_block_size %d, kv_type %d)",
                         o->n_ctx, o->n_seq_max, o->n_threads, o->n_batch_max, o->kv_block_size,
                         (int)o->kv_type);
    return NULL;
}

sq_error *sq_context_create(const sq_model *model, const sq_context_options *opts, sq_context **out) {
    *out = NULL;
    sq_context_options o = opts ? *opts : (sq_context_options){0};
    SQ_TRY(check_options(&o));
    sq_backend be;
    SQ_TRY(sq_backend_create(o.device, o.n_threads, &be));
    return sq_context_create_on(model, &o, be, out);
}

/* The operations a forward pass runs besides matmul (bind_weights checks each weight), on the data types this
 * model and cache hand them. */
static SQ_NODISCARD sq_error *check_supports(const sq_context *ctx) {
    const sq_backend *be = &ctx->backend;
    const sq_model_config *c = &ctx->model->cfg;
    sq_kv_view kv;
    sq_kv_cache_view(ctx->kv, 0, &kv);
    const struct {
        sq_op op;
        sq_dtype dtype;
    } needs[] = {{SQ_OP_GET_ROWS, ctx->model->tok_embd->dtype},
                 {SQ_OP_GET_ROWS, SQ_DTYPE_F32},
                 {SQ_OP_RMSNORM, SQ_DTYPE_F32},
                 {SQ_OP_ROPE, SQ_DTYPE_F32},
                 {SQ_OP_ADD, SQ_DTYPE_F32},
                 {SQ_OP_ADD_BIAS, SQ_DTYPE_F32},
                 {c->ffn_act == SQ_ACT_GELU_TANH ? SQ_OP_GEGLU : SQ_OP_SWIGLU, SQ_DTYPE_F32},
                 {SQ_OP_SCALE, SQ_DTYPE_F32},
                 {SQ_OP_KV_STORE, kv.row_type},
                 {SQ_OP_KV_COPY, kv.row_type},
                 {SQ_OP_ATTENTION, kv.row_type},
                 {c->n_experts ? SQ_OP_ADD_ROWS : SQ_OP_ADD, SQ_DTYPE_F32}};
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if (!be->supports(be->impl, needs[i].op, needs[i].dtype))
            return sq_errorf(SQ_ERR_UNSUPPORTED, "device %s cannot run %s on %s data", be->name,
                             sq_op_name(needs[i].op), sq_dtype_info(needs[i].dtype)->name);
    if (c->attn_softcap > 0 && !be->attn_softcap)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "device %s cannot run attention with score soft-capping (attn_logit_softcapping %g)",
                         be->name, c->attn_softcap);
    return NULL;
}

static void *alloc_rows(const sq_backend *be, int rows, int64_t width, size_t elem) {
    return be->alloc(be->impl, (size_t)rows * (size_t)width * elem);
}

sq_error *sq_context_create_on(const sq_model *model, const sq_context_options *opts, sq_backend backend,
                               sq_context **out) {
    *out = NULL;
    const sq_model_config *c = &model->cfg;
    sq_context_options o = opts ? *opts : (sq_context_options){0};
    sq_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        sq_backend_destroy(&backend);
        return sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    }
    ctx->backend = backend;
    ctx->model = model;
    sq_error *err = check_options(&o);
    if (err) {
        sq_context_free(ctx);
        return err;
    }
    if (o.n_ctx == 0) o.n_ctx = c->max_seq_len;
    if (o.n_ctx > c->max_seq_len) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_INVALID_ARG, "context of %d tokens exceeds the model's maximum of %d",
                         o.n_ctx, c->max_seq_len);
    }
    if (o.n_seq_max == 0) o.n_seq_max = 1;
    if (o.n_batch_max == 0) o.n_batch_max = o.n_ctx;
    ctx->n_ctx = o.n_ctx;
    ctx->n_seq_max = o.n_seq_max;
    ctx->n_batch_max = o.n_batch_max;
    const sq_backend *be = &ctx->backend;

    /* widths are the largest any layer needs: layers may differ after pruning */
    const int L = c->n_layers, hd = c->head_dim;
    int max_q = 0, max_kv = 0, max_ffn = 0;
    int *kv_dim = malloc((size_t)L * sizeof *kv_dim);
    ctx->blocks = calloc((size_t)L, sizeof *ctx->blocks);
    ctx->layer_args = calloc((size_t)L, sizeof *ctx->layer_args);
    ctx->weight_src = calloc((size_t)n_weight_slots(ctx), sizeof *ctx->weight_src);
    if (!kv_dim || !ctx->blocks || !ctx->layer_args || !ctx->weight_src) {
        free(kv_dim);
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    }
    for (int l = 0; l < L; l++) {
        const sq_layer *ly = &model->layers[l];
        ctx->blocks[l].n_heads = ly->n_heads;
        ctx->blocks[l].n_kv_heads = ly->n_kv_heads;
        ctx->blocks[l].ffn_dim = ly->ffn_dim;
        ctx->blocks[l].n_experts = ly->n_experts;
        ctx->blocks[l].shexp_dim = ly->shexp_dim;
        if (ly->shexp_dim > max_ffn) max_ffn = ly->shexp_dim;
        kv_dim[l] = ly->n_kv_heads * hd;
        if (ly->n_heads * hd > max_q) max_q = ly->n_heads * hd;
        if (kv_dim[l] > max_kv) max_kv = kv_dim[l];
        if (ly->ffn_dim > max_ffn) max_ffn = ly->ffn_dim;
        for (int i = 0; i < SQ_N_LINEAR; i++)
            if (ly->lr_a[i] && ly->lr_a[i]->shape[0] > ctx->max_rank)
                ctx->max_rank = (int)ly->lr_a[i]->shape[0];
    }
    sq_kv_cache_params kp = {.n_layers = L,
                             .kv_dim = kv_dim,
                             .n_ctx = o.n_ctx,
                             .n_seq = o.n_seq_max,
                             .block_size = o.kv_block_size,
                             .row_type = kv_row_types[o.kv_type],
                             .mem_bytes = o.kv_mem};
    err = sq_kv_cache_create(&ctx->backend, &kp, &ctx->kv);
    free(kv_dim);
    if (!err) err = check_supports(ctx);
    if (!err) err = bind_weights(ctx);
    if (err) {
        sq_context_free(ctx);
        return err;
    }

    const int B = o.n_batch_max, S = o.n_seq_max;
    int max_width = c->dim > max_q ? c->dim : max_q; /* of anything the tap sees */
    if (max_ffn > max_width) max_width = max_ffn;
    ctx->x = alloc_rows(be, B, c->dim, sizeof(float));
    ctx->xb = alloc_rows(be, B, c->dim, sizeof(float));
    ctx->q = alloc_rows(be, B, max_q, sizeof(float));
    ctx->k = alloc_rows(be, B, max_kv, sizeof(float));
    ctx->v = alloc_rows(be, B, max_kv, sizeof(float));
    ctx->attn_out = alloc_rows(be, B, max_q, sizeof(float));
    ctx->gate = alloc_rows(be, B, max_ffn, sizeof(float));
    ctx->up = alloc_rows(be, B, max_ffn, sizeof(float));
    if (ctx->max_rank) ctx->lr_mid = alloc_rows(be, B, ctx->max_rank, sizeof(float));
    ctx->inv_freq = be->alloc(be->impl, (size_t)2 * (hd / 2) * sizeof(double));
    ctx->tok_host = malloc((size_t)TOK_FIELDS * B * sizeof *ctx->tok_host);
    ctx->tok_dev = be->host_memory ? ctx->tok_host : alloc_rows(be, TOK_FIELDS, B, sizeof(int32_t));
    ctx->logits_dest = malloc((size_t)B * sizeof *ctx->logits_dest);
    ctx->step_seq = malloc((size_t)S * sizeof *ctx->step_seq);
    ctx->step_len = malloc((size_t)S * sizeof *ctx->step_len);
    ctx->step_tree = malloc((size_t)S * sizeof *ctx->step_tree);
    ctx->query_len = malloc((size_t)S * sizeof *ctx->query_len);
    ctx->tree_start = malloc((size_t)S * sizeof *ctx->tree_start);
    ctx->tree_len = calloc((size_t)S, sizeof *ctx->tree_len);
    int ok = ctx->x && ctx->xb && ctx->q && ctx->k && ctx->v && ctx->attn_out && ctx->gate && ctx->up &&
             (!ctx->max_rank || ctx->lr_mid) && ctx->inv_freq && ctx->tok_host && ctx->tok_dev &&
             ctx->logits_dest && ctx->step_seq && ctx->step_len && ctx->step_tree && ctx->query_len &&
             ctx->tree_start && ctx->tree_len;
    if (ok && !be->host_memory) {
        ctx->logits = alloc_rows(be, SQ_LOGITS_ROWS, c->vocab_size, sizeof(float));
        ctx->tap_host = malloc((size_t)B * max_width * sizeof(float));
        ok = ctx->logits && ctx->tap_host;
    }
    if (ok && c->n_experts) {
        const int E = c->n_experts, K1 = c->n_experts_used + 1;
        ctx->moe_logits = alloc_rows(be, B, E + 1, sizeof(float));
        ctx->moe_rows = alloc_rows(be, B, K1, sizeof(int32_t));
        ctx->moe_weight = alloc_rows(be, B, K1, sizeof(float));
        ctx->moe_x = alloc_rows(be, B, c->dim, sizeof(float));
        ctx->moe_y = alloc_rows(be, B, c->dim, sizeof(float));
        ctx->moe_host = malloc((size_t)B * (E + 1) * sizeof *ctx->moe_host);
        ctx->moe_host_rows = malloc((size_t)B * K1 * sizeof *ctx->moe_host_rows);
        ctx->moe_host_weight = malloc((size_t)B * K1 * sizeof *ctx->moe_host_weight);
        ctx->moe_offset = malloc((size_t)(E + 1) * sizeof *ctx->moe_offset);
        ok = ctx->moe_logits && ctx->moe_rows && ctx->moe_weight && ctx->moe_x && ctx->moe_y &&
             ctx->moe_host && ctx->moe_host_rows && ctx->moe_host_weight && ctx->moe_offset;
    }
    if (!ok) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_NOMEM, "context: cannot allocate activations for %d tokens", B);
    }
    for (int s = 0; s < S; s++) ctx->tree_start[s] = -1;
    double *inv_freq = malloc((size_t)2 * (hd / 2) * sizeof *inv_freq);
    if (!inv_freq) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    }
    /* row 0: the global layers' (every layer's without a local/global pattern); row 1: the local layers',
     * their own base and no scaling (Gemma 3's rotary_emb_local) */
    sq_model_config local = *c;
    local.rope_theta = c->rope_local_theta;
    local.rope_scaling = (sq_rope_scaling){SQ_ROPE_SCALING_NONE, 0, 0, 0, 0};
    sq_rope_frequencies(c, ctx->n_ctx, inv_freq);
    const int pattern = sq_model_has_layer_pattern(c);
    if (pattern) sq_rope_frequencies(&local, ctx->n_ctx, inv_freq + hd / 2);
    be->upload(be->impl, ctx->inv_freq, inv_freq, (size_t)(pattern ? 2 : 1) * (hd / 2) * sizeof *inv_freq);
    free(inv_freq);
    const float q_scale = sq_rope_score_scale(c);

    const int32_t *tok = ctx->tok_dev;
    ctx->tokens = (sq_token_batch){.id = tok + (size_t)TOK_ID * B,
                                   .seq = tok + (size_t)TOK_SEQ * B,
                                   .pos = tok + (size_t)TOK_POS * B,
                                   .slot = tok + (size_t)TOK_SLOT * B,
                                   .n_prefix = tok + (size_t)TOK_N_PREFIX * B,
                                   .parent = tok + (size_t)TOK_PARENT * B};
    for (int l = 0; l < L; l++)
        ctx->layer_args[l] =
            (sq_block_args){.layer = l,
                            .w = &ctx->blocks[l],
                            .tokens = &ctx->tokens,
                            .dim = c->dim,
                            .head_dim = hd,
                            .window = pattern && sq_layer_is_global(c, l) ? 0 : c->sliding_window,
                            .norm_eps = c->norm_eps,
                            .q_scale = q_scale,
                            .attn_softcap = c->attn_softcap,
                            .geglu = c->ffn_act == SQ_ACT_GELU_TANH,
                            .n_experts_used = c->n_experts_used,
                            .expert_norm_topk = c->expert_norm_topk,
                            .rope_style = c->rope_style,
                            .rope_dims = c->rope_dims,
                            .inv_freq = ctx->inv_freq + (pattern && !sq_layer_is_global(c, l) ? hd / 2 : 0),
                            .x = ctx->x,
                            .xb = ctx->xb,
                            .q = ctx->q,
                            .k = ctx->k,
                            .v = ctx->v,
                            .attn_out = ctx->attn_out,
                            .gate = ctx->gate,
                            .up = ctx->up,
                            .lr_mid = ctx->lr_mid};
    *out = ctx;
    return NULL;
}

/* ---------------------------------------------------------------- sequences */

static SQ_NODISCARD sq_error *check_seq(const sq_context *ctx, int seq_id, const char *what) {
    if (ctx->stepping)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: a forward step is in progress (end it first)", what);
    if (seq_id < 0 || seq_id >= ctx->n_seq_max)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: sequence id %d is outside 0..%d", what, seq_id,
                         ctx->n_seq_max - 1);
    return NULL;
}

int sq_seq_len(const sq_context *ctx, int seq_id) {
    return seq_id >= 0 && seq_id < ctx->n_seq_max ? sq_kv_cache_seq_len(ctx->kv, seq_id) : 0;
}

sq_error *sq_seq_truncate(sq_context *ctx, int seq_id, int new_len) {
    SQ_TRY(check_seq(ctx, seq_id, "truncate"));
    int len = sq_kv_cache_seq_len(ctx->kv, seq_id);
    if (new_len < 0 || new_len > len)
        return sq_errorf(SQ_ERR_INVALID_ARG, "cannot truncate sequence %d of %d tokens to %d", seq_id, len,
                         new_len);
    sq_kv_cache_truncate(ctx->kv, seq_id, new_len);
    /* what is left of a token tree is still one (node indices below new_len keep their parents) */
    if (ctx->tree_start[seq_id] >= 0) {
        ctx->tree_len[seq_id] = new_len - ctx->tree_start[seq_id];
        if (ctx->tree_len[seq_id] <= 0) ctx->tree_start[seq_id] = -1;
    }
    return NULL;
}

sq_error *sq_seq_keep_path(sq_context *ctx, int seq_id, const int *path, int n_path) {
    SQ_TRY(check_seq(ctx, seq_id, "keep path"));
    const int start = ctx->tree_start[seq_id], n_nodes = ctx->tree_len[seq_id];
    if (start < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "keep path: sequence %d does not end in a token tree", seq_id);
    if (n_path < 0 || n_path > n_nodes || (n_path > 0 && !path))
        return sq_errorf(SQ_ERR_INVALID_ARG, "keep path: %d nodes of a tree of %d", n_path, n_nodes);
    const int32_t *parent = ctx->tree_parent + (size_t)seq_id * ctx->n_batch_max;
    for (int i = 0; i < n_path; i++)
        if (path[i] < 0 || path[i] >= n_nodes || parent[path[i]] != (i ? path[i - 1] : -1))
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "keep path: node %d (step %d) is not %s in sequence %d's tree of %d nodes",
                             path[i], i, i ? "a child of the previous node" : "a root", seq_id, n_nodes);
    /* node path[i] has depth i, so its keys were rotated for position start + i: its rows move there, into
     * blocks of the sequence's own (a fork may share them) */
    const int new_len = start + n_path;
    SQ_TRY(sq_kv_cache_make_private(ctx->kv, seq_id, start, new_len));
    sq_kv_cache_sync_table(ctx->kv);
    const sq_backend *be = &ctx->backend;
    int32_t *src = ctx->tok_host + (size_t)TOK_SLOT * ctx->n_batch_max;
    int32_t *dst = ctx->tok_host + (size_t)TOK_POS * ctx->n_batch_max;
    for (int i = 0; i < n_path; i++) {
        src[i] = start + path[i];
        dst[i] = start + i;
    }
    const size_t bytes = (size_t)n_path * sizeof(int32_t);
    int32_t *src_dev = ctx->tok_dev + (size_t)TOK_SLOT * ctx->n_batch_max;
    int32_t *dst_dev = ctx->tok_dev + (size_t)TOK_POS * ctx->n_batch_max;
    be->upload(be->impl, src_dev, src, bytes);
    be->upload(be->impl, dst_dev, dst, bytes);
    for (int l = 0; l < ctx->model->cfg.n_layers; l++) {
        sq_kv_view kv;
        sq_kv_cache_view(ctx->kv, l, &kv);
        be->kv_copy(be->impl, &kv, seq_id, src_dev, dst_dev, n_path);
    }
    be->synchronize(be->impl);
    sq_kv_cache_truncate(ctx->kv, seq_id, new_len);
    ctx->tree_start[seq_id] = -1;
    return NULL;
}

sq_error *sq_seq_fork(sq_context *ctx, int src_seq, int dst_seq) {
    SQ_TRY(check_seq(ctx, src_seq, "fork"));
    SQ_TRY(check_seq(ctx, dst_seq, "fork"));
    if (src_seq == dst_seq) return NULL;
    sq_kv_cache_fork(ctx->kv, src_seq, dst_seq);
    /* a token tree at the end comes along: its rows are shared blocks now, its parents are copied */
    ctx->tree_start[dst_seq] = ctx->tree_start[src_seq];
    ctx->tree_len[dst_seq] = ctx->tree_len[src_seq];
    if (ctx->tree_start[src_seq] >= 0)
        memcpy(ctx->tree_parent + (size_t)dst_seq * ctx->n_batch_max,
               ctx->tree_parent + (size_t)src_seq * ctx->n_batch_max,
               (size_t)ctx->tree_len[src_seq] * sizeof *ctx->tree_parent);
    return NULL;
}

int sq_context_n_ctx(const sq_context *ctx) { return ctx->n_ctx; }
size_t sq_context_kv_bytes(const sq_context *ctx) { return sq_kv_cache_bytes(ctx->kv); }

void sq_context_set_tap(sq_context *ctx, sq_tap_fn tap, void *user) {
    ctx->tap = tap;
    ctx->tap_user = user;
}

int sq_context_kv_block_size(const sq_context *ctx) { return ctx->kv->block_size; }
int sq_context_kv_blocks_total(const sq_context *ctx) { return ctx->kv->n_blocks; }
int sq_context_kv_blocks_free(const sq_context *ctx) { return ctx->kv->n_free; }

sq_error *sq_context_kv_blocks_needed(const sq_context *ctx, const int *seq_ids, const int *n_new_tokens,
                                      int n, int *n_blocks) {
    *n_blocks = 0;
    if (n < 0 || n > ctx->n_seq_max || (n > 0 && (!seq_ids || !n_new_tokens)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "KV blocks needed: invalid list of %d sequences (at most %d)", n,
                         ctx->n_seq_max);
    for (int i = 0; i < n; i++) {
        if (seq_ids[i] < 0 || seq_ids[i] >= ctx->n_seq_max)
            return sq_errorf(SQ_ERR_INVALID_ARG, "KV blocks needed: sequence id %d is outside 0..%d",
                             seq_ids[i], ctx->n_seq_max - 1);
        if (n_new_tokens[i] < 0 || n_new_tokens[i] > ctx->n_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG, "KV blocks needed: sequence %d cannot take %d tokens",
                             seq_ids[i], n_new_tokens[i]);
        ctx->query_len[i] = sq_kv_cache_seq_len(ctx->kv, seq_ids[i]) + n_new_tokens[i];
    }
    return sq_kv_cache_blocks_needed(ctx->kv, seq_ids, ctx->query_len, n, n_blocks);
}
