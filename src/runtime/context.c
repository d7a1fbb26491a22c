#include "runtime/context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void sq_rope_frequencies(const sq_model_config *cfg, double *inv_freq) {
    const int half = cfg->head_dim / 2;
    const sq_rope_scaling *s = &cfg->rope_scaling;
    for (int i = 0; i < half; i++) {
        double f = pow(cfg->rope_theta, -2.0 * i / cfg->head_dim);
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
        inv_freq[i] = f;
    }
}

void sq_context_free(sq_context *ctx) {
    if (!ctx) return;
    sq_kv_cache_free(ctx->kv);
    sq_threadpool_free(ctx->pool);
    float *bufs[] = {ctx->x,   ctx->xb,   ctx->q,  ctx->k,        ctx->v,
                     ctx->att, ctx->gate, ctx->up, ctx->rope_cos, ctx->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(ctx->inv_freq);
    free(ctx->tok_id);
    free(ctx->tok_seq);
    free(ctx->tok_pos);
    free(ctx->tok_logits);
    free(ctx->batch_seq);
    free(ctx->batch_len);
    free(ctx);
}

static float *alloc_rows(int rows, int64_t width) {
    void *p = NULL;
    return posix_memalign(&p, 64, (size_t)rows * (size_t)width * sizeof(float)) == 0 ? p : NULL;
}

sq_error *sq_context_create(const sq_model *model, const sq_context_options *opts, sq_context **out) {
    *out = NULL;
    const sq_model_config *c = &model->cfg;
    sq_context_options o = opts ? *opts : (sq_context_options){0};
    if (o.n_ctx < 0 || o.n_seq_max < 0 || o.n_threads < 0 || o.n_batch_max < 0 || o.n_seq_max > 65536 ||
        o.n_threads > 1024 || o.kv_block_size < 0 || o.kv_block_size > SQ_KV_MAX_BLOCK_SIZE ||
        (o.kv_type != SQ_KV_F32 && o.kv_type != SQ_KV_F16))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "context: invalid options (n_ctx %d, n_seq_max %d, threads %d, "
                         "n_batch_max %d, kv_block_size %d, kv_type %d)",
                         o.n_ctx, o.n_seq_max, o.n_threads, o.n_batch_max, o.kv_block_size, (int)o.kv_type);
    if (o.n_ctx == 0) o.n_ctx = c->max_seq_len;
    if (o.n_ctx > c->max_seq_len)
        return sq_errorf(SQ_ERR_INVALID_ARG, "context of %d tokens exceeds the model's maximum of %d",
                         o.n_ctx, c->max_seq_len);
    if (o.n_seq_max == 0) o.n_seq_max = 1;
    if (o.n_batch_max == 0) o.n_batch_max = o.n_ctx;

    sq_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    ctx->model = model;
    ctx->n_ctx = o.n_ctx;
    ctx->n_seq_max = o.n_seq_max;
    ctx->n_batch_max = o.n_batch_max;
    ctx->pool = sq_threadpool_create(o.n_threads);
    if (!ctx->pool) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_INTERNAL, "context: cannot start %d threads", o.n_threads);
    }
    ctx->backend = sq_cpu_backend(ctx->pool);

    /* widths are the largest any layer needs: layers may differ after pruning */
    int max_q = 0, max_kv = 0, max_ffn = 0;
    int *kv_dim = malloc((size_t)c->n_layers * sizeof *kv_dim);
    if (!kv_dim) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_NOMEM, "context: out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) {
        const sq_layer *L = &model->layers[l];
        kv_dim[l] = L->n_kv_heads * c->head_dim;
        if (L->n_heads * c->head_dim > max_q) max_q = L->n_heads * c->head_dim;
        if (kv_dim[l] > max_kv) max_kv = kv_dim[l];
        if (L->ffn_dim > max_ffn) max_ffn = L->ffn_dim;
    }
    sq_kv_cache_params kp = {.n_layers = c->n_layers,
                             .kv_dim = kv_dim,
                             .n_ctx = o.n_ctx,
                             .n_seq = o.n_seq_max,
                             .block_size = o.kv_block_size,
                             .row_type = o.kv_type == SQ_KV_F16 ? SQ_DTYPE_F16 : SQ_DTYPE_F32,
                             .mem_bytes = o.kv_mem};
    sq_error *err = sq_kv_cache_create(&ctx->backend, &kp, &ctx->kv);
    free(kv_dim);
    if (err) {
        sq_context_free(ctx);
        return err;
    }
    const int B = o.n_batch_max, half = c->head_dim / 2;
    ctx->x = alloc_rows(B, c->dim);
    ctx->xb = alloc_rows(B, c->dim > max_q ? c->dim : max_q);
    ctx->q = alloc_rows(B, max_q);
    ctx->k = alloc_rows(B, max_kv);
    ctx->v = alloc_rows(B, max_kv);
    ctx->att = alloc_rows(B, max_q);
    ctx->gate = alloc_rows(B, max_ffn);
    ctx->up = alloc_rows(B, max_ffn);
    ctx->rope_cos = alloc_rows(B, half);
    ctx->rope_sin = alloc_rows(B, half);
    ctx->inv_freq = malloc((size_t)half * sizeof *ctx->inv_freq);
    ctx->tok_id = malloc((size_t)B * sizeof *ctx->tok_id);
    ctx->tok_seq = malloc((size_t)B * sizeof *ctx->tok_seq);
    ctx->tok_pos = malloc((size_t)B * sizeof *ctx->tok_pos);
    ctx->tok_logits = malloc((size_t)B * sizeof *ctx->tok_logits);
    ctx->batch_seq = malloc((size_t)o.n_seq_max * sizeof *ctx->batch_seq);
    ctx->batch_len = malloc((size_t)o.n_seq_max * sizeof *ctx->batch_len);
    if (!ctx->x || !ctx->xb || !ctx->q || !ctx->k || !ctx->v || !ctx->att || !ctx->gate || !ctx->up ||
        !ctx->rope_cos || !ctx->rope_sin || !ctx->inv_freq || !ctx->tok_id || !ctx->tok_seq ||
        !ctx->tok_pos || !ctx->tok_logits || !ctx->batch_seq || !ctx->batch_len) {
        sq_context_free(ctx);
        return sq_errorf(SQ_ERR_NOMEM, "context: cannot allocate activations for %d tokens", B);
    }
    sq_rope_frequencies(c, ctx->inv_freq);
    *out = ctx;
    return NULL;
}

/* ---- sequences and the KV cache's blocks (kv) */

static SQ_NODISCARD sq_error *check_seq(const sq_context *ctx, int seq_id) {
    if (seq_id < 0 || seq_id >= ctx->n_seq_max)
        return sq_errorf(SQ_ERR_INVALID_ARG, "sequence id %d is outside 0..%d", seq_id, ctx->n_seq_max - 1);
    return NULL;
}

int sq_seq_len(const sq_context *ctx, int seq_id) {
    return seq_id >= 0 && seq_id < ctx->n_seq_max ? sq_kv_cache_seq_len(ctx->kv, seq_id) : 0;
}

sq_error *sq_seq_truncate(sq_context *ctx, int seq_id, int new_len) {
    SQ_TRY(check_seq(ctx, seq_id));
    int len = sq_kv_cache_seq_len(ctx->kv, seq_id);
    if (new_len < 0 || new_len > len)
        return sq_errorf(SQ_ERR_INVALID_ARG, "cannot truncate sequence %d of %d tokens to %d", seq_id, len,
                         new_len);
    sq_kv_cache_truncate(ctx->kv, seq_id, new_len);
    return NULL;
}

sq_error *sq_seq_fork(sq_context *ctx, int src_seq, int dst_seq) {
    SQ_TRY(sq_error_wrap(check_seq(ctx, src_seq), "fork"));
    SQ_TRY(sq_error_wrap(check_seq(ctx, dst_seq), "fork"));
    sq_kv_cache_fork(ctx->kv, src_seq, dst_seq);
    return NULL;
}

int sq_context_n_ctx(const sq_context *ctx) { return ctx->n_ctx; }
size_t sq_context_kv_bytes(const sq_context *ctx) { return sq_kv_cache_bytes(ctx->kv); }
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
        SQ_TRY(sq_error_wrap(check_seq(ctx, seq_ids[i]), "KV blocks needed"));
        if (n_new_tokens[i] < 0 || n_new_tokens[i] > ctx->n_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG, "KV blocks needed: sequence %d cannot take %d tokens",
                             seq_ids[i], n_new_tokens[i]);
        ctx->batch_len[i] = sq_kv_cache_seq_len(ctx->kv, seq_ids[i]) + n_new_tokens[i];
    }
    return sq_kv_cache_blocks_needed(ctx->kv, seq_ids, ctx->batch_len, n, n_blocks);
}
