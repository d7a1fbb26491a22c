/* Synthetic models (sq_model_synth, `squeeze synth`): real architectures' exact shapes with seeded random
 * weights, so that speed at real scale can be measured without downloading weights.
 *
 * Scales: every linear layer's weights have standard deviation 0.5 / sqrt(in_features), so a projection of an
 * RMS-normalised input has outputs of standard deviation about 0.5 and the residual stream grows slowly over
 * the layers (activations stay finite in any precision); embeddings have standard deviation 1, norms are 1,
 * biases 0.02. Quantized formats are drawn in their own representation (uniform integers under a scale that
 * gives that deviation), not quantized from floats: the bytes are valid blocks of the format, and a 7B model
 * takes seconds. Values are a function of (seed, tensor, chunk of 64K elements) only, whatever the thread
 * count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"

typedef struct synth_preset {
    const char *name, *arch;
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab, max_seq_len;
    float rope_theta, norm_eps;
    sq_rope_style rope;
    int bias; /* q/k/v biases (Qwen2) */
    /* mixture of experts: experts per block (0: dense), used per token, the shared expert's width, whether
     * the top-k weights are renormalised, and the dense family a --dense-active twin is written as */
    int n_experts, top_k, shexp_dim, norm_topk;
    const char *dense_arch;
} synth_preset;

/* From each model's published config.json (Hugging Face): hidden_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads, intermediate_size (Qwen MoE: moe_intermediate_size), vocab_size,
 * max_position_embeddings, rope_theta, rms_norm_eps; num_local_experts / num_experts, num_experts_per_tok,
 * shared_expert_intermediate_size, norm_topk_prob. */
static const synth_preset presets[] = {
    {"llama-2-7b", "llama", 4096, 32, 32, 32, 128, 11008, 32000, 4096, 10000, 1e-5f, SQ_ROPE_INTERLEAVED, 0,
     0, 0, 0, 0, NULL},
    {"llama-3-8b", "llama", 4096, 32, 32, 8, 128, 14336, 128256, 8192, 500000, 1e-5f, SQ_ROPE_INTERLEAVED, 0,
     0, 0, 0, 0, NULL},
    {"qwen2.5-7b", "qwen2", 3584, 28, 28, 4, 128, 18944, 152064, 32768, 1000000, 1e-6f, SQ_ROPE_HALVES, 1, 0,
     0, 0, 0, NULL},
    {"mistral-7b", "llama", 4096, 32, 32, 8, 128, 14336, 32000, 32768, 1000000, 1e-5f, SQ_ROPE_INTERLEAVED, 0,
     0, 0, 0, 0, NULL},
    {"mixtral-8x7b", "mixtral", 4096, 32, 32, 8, 128, 14336, 32000, 32768, 1000000, 1e-5f,
     SQ_ROPE_INTERLEAVED, 0, 8, 2, 0, 1, "llama"},
    {"qwen1.5-moe-a2.7b", "qwen2moe", 2048, 24, 16, 16, 128, 1408, 151936, 8192, 1000000, 1e-6f,
     SQ_ROPE_HALVES, 1, 60, 4, 5632, 0, "qwen2"},
};
enum { N_PRESETS = sizeof presets / sizeof *presets, CHUNK = 1 << 16 };

const char *sq_synth_preset_names(void) {
    return "llama-2-7b|llama-3-8b|qwen2.5-7b|mistral-7b|mixtral-8x7b|qwen1.5-moe-a2.7b";
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct fill_job {
    sq_dtype dtype;
    void *data;
    int64_t n;    /* elements */
    float sd;     /* standard deviation of the values */
    uint64_t key; /* seed and tensor */
} fill_job;

/* Elements [c * CHUNK, ...) of the tensor, a whole number of blocks (CHUNK is a multiple of every block). */
static void fill_chunk(const fill_job *j, int64_t c) {
    uint64_t s = j->key ^ (uint64_t)c * 0xd1342543de82ef95ull, r = 0;
    const int64_t e0 = c * CHUNK, e1 = e0 + CHUNK < j->n ? e0 + CHUNK : j->n;
    const float half_width = j->sd * 1.7320508f; /* uniform on [-w, w] has deviation w / sqrt(3) */
    switch (j->dtype) {
    case SQ_DTYPE_F32:
    case SQ_DTYPE_F16:
    case SQ_DTYPE_BF16:
        for (int64_t i = e0; i < e1; i++) {
            r = splitmix64(&s);
            const float v = ((float)(r >> 40) / (float)(1 << 24) * 2 - 1) * half_width;
            if (j->dtype == SQ_DTYPE_F32)
                ((float *)j->data)[i] = v;
            else if (j->dtype == SQ_DTYPE_F16)
                ((uint16_t *)j->data)[i] = sq_f32_to_f16(v);
            else
                ((uint16_t *)j->data)[i] = sq_f32_to_bf16(v);
        }
        break;
    case SQ_DTYPE_Q8_0: /* q uniform on -127..127: deviation 73.3 */
        for (int64_t b = e0 / 32; b < e1 / 32; b++) {
            sq_block_q8_0 *blk = (sq_block_q8_0 *)j->data + b;
            blk->d = sq_f32_to_f16(j->sd / 73.3f);
            for (int i = 0; i < 32; i++) {
                if (i % 8 == 0) r = splitmix64(&s);
                int8_t q = (int8_t)(r >> (8 * (i % 8)));
                blk->qs[i] = q == -128 ? -127 : q;
            }
        }
        break;
    case SQ_DTYPE_Q4_0: /* q - 8 uniform on -8..7: deviation 4.61 */
        for (int64_t b = e0 / 32; b < e1 / 32; b++) {
            sq_block_q4_0 *blk = (sq_block_q4_0 *)j->data + b;
            blk->d = sq_f32_to_f16(j->sd / 4.61f);
            for (int i = 0; i < 16; i++) {
                if (i % 8 == 0) r = splitmix64(&s);
                blk->qs[i] = (uint8_t)(r >> (8 * (i % 8)));
            }
        }
        break;
    default: { /* Q4_K: sub-block scales sc in 32..63, minimums m = sc and dmin = 7.5 d: value = d sc (q
                  - 7.5) */
        for (int64_t b = e0 / SQ_QK_K; b < e1 / SQ_QK_K; b++) {
            sq_block_q4_K *blk = (sq_block_q4_K *)j->data + b;
            const float d = j->sd / (47.5f * 4.61f);
            blk->d = sq_f32_to_f16(d);
            blk->dmin = sq_f32_to_f16(7.5f * d);
            r = splitmix64(&s);
            uint8_t sc[8];
            for (int k = 0; k < 8; k++) sc[k] = (uint8_t)(32 + (r >> (5 * k) & 31));
            for (int k = 0; k < 4; k++) { /* ggml's 6-bit packing, read back by get_scale_min_k4 */
                blk->scales[k] = (uint8_t)(sc[k] | (sc[k + 4] >> 4) << 6);
                blk->scales[k + 4] = (uint8_t)(sc[k] | (sc[k + 4] >> 4) << 6);
                blk->scales[k + 8] = (uint8_t)((sc[k + 4] & 0xf) | (sc[k + 4] & 0xf) << 4);
            }
            for (int i = 0; i < SQ_QK_K / 2; i++) {
                if (i % 8 == 0) r = splitmix64(&s);
                blk->qs[i] = (uint8_t)(r >> (8 * (i % 8)));
            }
        }
        break;
    }
    }
}

static void fill_task(void *p, int ith, int nth) {
    const fill_job *j = p;
    const int64_t n_chunks = (j->n + CHUNK - 1) / CHUNK;
    for (int64_t c = ith; c < n_chunks; c += nth) fill_chunk(j, c);
}

/* Adds one random tensor of standard deviation sd (sd 0 with mean 1: a norm): [d0], [d0][d1] or, with
 * n_experts, [n_experts][d0][d1]. */
static SQ_NODISCARD sq_error *add3(sq_model *m, sq_threadpool *pool, uint64_t seed, const char *name,
                                   sq_dtype dtype, int n_experts, int64_t d0, int64_t d1, float sd) {
    const int64_t shape[3] = {n_experts ? n_experts : d0, n_experts ? d0 : d1, d1};
    const int ndim = n_experts ? 3 : d1 ? 2 : 1;
    const size_t bytes = sq_tensor_bytes_for(dtype, ndim, shape);
    void *data = sq_model_host_alloc(bytes);
    if (!data) return sq_errorf(SQ_ERR_NOMEM, "synth: no memory for %s (%zu bytes)", name, bytes);
    const int64_t n = (ndim == 1 ? d0 : d0 * d1) * (n_experts ? n_experts : 1);
    if (sd == 0) {
        for (int64_t i = 0; i < n; i++) ((float *)data)[i] = 1.0f;
    } else {
        uint64_t key = seed;
        for (const char *c = name; *c; c++) key = (key ^ (uint8_t)*c) * 0x100000001b3ull; /* FNV-1a */
        fill_job j = {dtype, data, n, sd, key};
        sq_threadpool_run(pool, fill_task, &j);
    }
    sq_error *err = sq_model_add_tensor(m, name, dtype, ndim, shape, data, bytes, SQ_STORAGE_HOST);
    if (err) free(data);
    return err;
}

static SQ_NODISCARD sq_error *add(sq_model *m, sq_threadpool *pool, uint64_t seed, const char *name,
                                  sq_dtype dtype, int64_t d0, int64_t d1, float sd) {
    return add3(m, pool, seed, name, dtype, 0, d0, d1, sd);
}

/* Every tensor; a dense model's FFN is ffn_dim wide (a --dense-active twin: the experts' active width). */
static SQ_NODISCARD sq_error *add_all(sq_model *m, sq_threadpool *pool, const synth_preset *p, sq_dtype dt,
                                      uint64_t seed, int experts, int ffn_dim) {
    const int64_t q = (int64_t)p->n_heads * p->head_dim, kv = (int64_t)p->n_kv_heads * p->head_dim;
    const float in_dim = 0.5f / sqrtf((float)p->dim), in_q = 0.5f / sqrtf((float)q),
                in_ffn = 0.5f / sqrtf((float)ffn_dim), in_shexp = 0.5f / sqrtf((float)(p->shexp_dim + 1));
    SQ_TRY(add(m, pool, seed, SQ_NAME_TOK_EMBD, dt, p->vocab, p->dim, 1.0f));
    SQ_TRY(add(m, pool, seed, SQ_NAME_OUT_NORM, SQ_DTYPE_F32, p->dim, 0, 0));
    SQ_TRY(add(m, pool, seed, SQ_NAME_OUTPUT, dt, p->vocab, p->dim, 2 * in_dim));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        char name[SQ_TENSOR_NAME_MAX];
#define N(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_NORM), SQ_DTYPE_F32, p->dim, 0, 0));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_Q), dt, q, p->dim, in_dim));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_K), dt, kv, p->dim, in_dim));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_V), dt, kv, p->dim, in_dim));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_OUT), dt, p->dim, q, in_q));
        if (p->bias) {
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_Q_BIAS), SQ_DTYPE_F32, q, 0, 0.02f));
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_K_BIAS), SQ_DTYPE_F32, kv, 0, 0.02f));
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_ATTN_V_BIAS), SQ_DTYPE_F32, kv, 0, 0.02f));
        }
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_NORM), SQ_DTYPE_F32, p->dim, 0, 0));
        if (!experts) {
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_GATE), dt, ffn_dim, p->dim, in_dim));
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_UP), dt, ffn_dim, p->dim, in_dim));
            SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_DOWN), dt, p->dim, ffn_dim, in_ffn));
            continue;
        }
        /* the router stays f32, as llama.cpp's files keep it */
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_GATE_INP), SQ_DTYPE_F32, experts, p->dim, in_dim));
        SQ_TRY(add3(m, pool, seed, N(SQ_NAME_FFN_GATE_EXPS), dt, experts, ffn_dim, p->dim, in_dim));
        SQ_TRY(add3(m, pool, seed, N(SQ_NAME_FFN_UP_EXPS), dt, experts, ffn_dim, p->dim, in_dim));
        SQ_TRY(add3(m, pool, seed, N(SQ_NAME_FFN_DOWN_EXPS), dt, experts, p->dim, ffn_dim, in_ffn));
        if (!p->shexp_dim) continue;
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_GATE_SHEXP), dt, p->shexp_dim, p->dim, in_dim));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_UP_SHEXP), dt, p->shexp_dim, p->dim, in_dim));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_DOWN_SHEXP), dt, p->dim, p->shexp_dim, in_shexp));
        SQ_TRY(add(m, pool, seed, N(SQ_NAME_FFN_GATE_INP_SHEXP), SQ_DTYPE_F32, 1, p->dim, in_dim));
#undef N
    }
    return NULL;
}

sq_error *sq_model_synth(const sq_synth_options *o, sq_model **out) {
    *out = NULL;
    const synth_preset *p = NULL;
    for (int i = 0; i < N_PRESETS && o->preset; i++)
        if (!strcmp(presets[i].name, o->preset)) p = &presets[i];
    if (!p)
        return sq_errorf(SQ_ERR_INVALID_ARG, "synth: unknown preset '%.64s' (%s)", o->preset ? o->preset : "",
                         sq_synth_preset_names());
    const int dt = sq_dtype_from_name(o->dtype ? o->dtype : "f16");
    if (dt != SQ_DTYPE_F32 && dt != SQ_DTYPE_F16 && dt != SQ_DTYPE_BF16 && dt != SQ_DTYPE_Q8_0 &&
        dt != SQ_DTYPE_Q4_0 && dt != SQ_DTYPE_Q4_K)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "synth: type '%.32s' is not one of f32, f16, bf16, q8_0, q4_0, q4_k",
                         o->dtype ? o->dtype : "");
    if (o->n_layers < 0 || o->n_layers > p->n_layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "synth: %d layers (the preset has %d)", o->n_layers,
                         p->n_layers);
    if (o->dense_active && !p->n_experts)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "synth: --dense-active needs a mixture-of-experts preset, not %s", p->name);
    /* the dense twin: one FFN as wide as the experts a token uses (and the shared expert), no router */
    const int experts = o->dense_active ? 0 : p->n_experts;
    const int ffn_dim = o->dense_active ? p->top_k * p->ffn_dim + p->shexp_dim : p->ffn_dim;
    sq_model *m = sq_model_new();
    if (!m) return sq_errorf(SQ_ERR_NOMEM, "synth: out of memory");
    sq_model_config *c = &m->cfg;
    snprintf(c->arch, sizeof c->arch, "%s", o->dense_active ? p->dense_arch : p->arch);
    c->dim = p->dim, c->n_layers = o->n_layers ? o->n_layers : p->n_layers, c->n_heads = p->n_heads;
    c->n_kv_heads = p->n_kv_heads, c->head_dim = p->head_dim, c->ffn_dim = ffn_dim;
    c->n_experts = experts, c->n_experts_used = experts ? p->top_k : 0, c->expert_norm_topk = p->norm_topk;
    c->vocab_size = p->vocab, c->max_seq_len = p->max_seq_len;
    c->rope_theta = p->rope_theta, c->norm_eps = p->norm_eps, c->rope_style = p->rope;
    c->bos_id = 1;
    snprintf(m->file_format, sizeof m->file_format, "synth");
    sq_error *err = sq_model_add_eos(c, 2, NULL, "synth");
    sq_threadpool *pool = err ? NULL : sq_threadpool_create(o->n_threads);
    if (!err && !pool) err = sq_errorf(SQ_ERR_INTERNAL, "synth: cannot start %d threads", o->n_threads);
    if (!err) err = add_all(m, pool, p, (sq_dtype)dt, o->seed, experts, ffn_dim);
    sq_threadpool_free(pool);
    if (!err) err = sq_model_bind(m, p->name);
    if (err) {
        sq_model_free(m);
        return err;
    }
    *out = m;
    return NULL;
}
