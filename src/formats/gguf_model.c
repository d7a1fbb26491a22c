/* GGUF -> sq_model: the {arch}.* hyperparameters and the tensors, used in place. Architectures: the rows of
 * model/arch.c (llama; mistral: llama with attention.sliding_window, a llama file with a sliding window is
 * read as mistral; qwen2: q/k/v biases, halves RoPE; qwen3: q/k norms, halves RoPE). Llama-3 RoPE scaling is
 * read from rope_freqs.weight; phi3: fused attn_qkv and ffn_up (gate and up) split at load
 * (formats/fused_tensors.h). Metadata that changes the arithmetic beyond that (other RoPE scaling, experts)
 * is refused naming the key; special-token ids out of range are dropped with a warning. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/formats.h"
#include "formats/fused_tensors.h"
#include "formats/gguf.h"
#include "formats/rope_scaling.h"
#include "formats/tensor_io.h"
#include "formats/tensor_names.h"
#include "model/arch.h"
#include "tokenizer/tokenizer.h"

#define ROPE_FREQS "rope_freqs.weight"
/* LongRoPE's factor lists (llama.cpp's converter for Phi-3 "su"/"longrope" configs) */
static const char *const longrope_names[2] = {"rope_factors_short.weight", "rope_factors_long.weight"};

/* Reads "{arch}.{suffix}" as an int in [lo, hi] into *v, leaving it untouched when absent and optional. */
static SQ_NODISCARD sq_error *arch_int(const sq_gguf_file *g, const char *arch, const char *suffix,
                                       int required, int64_t lo, int64_t hi, int *v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t x;
    int found;
    SQ_TRY(sq_gguf_get_int(g, key, lo, hi, &x, required ? NULL : &found));
    if (required || found) *v = (int)x;
    return NULL;
}

static SQ_NODISCARD sq_error *arch_float(const sq_gguf_file *g, const char *arch, const char *suffix,
                                         int required, float *v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double x;
    int found;
    SQ_TRY(sq_gguf_get_float(g, key, &x, required ? NULL : &found));
    if (required || found) *v = (float)x;
    return NULL;
}

/* {arch}.attention.head_count, .head_count_kv and .feed_forward_length: one value, or one per layer (arrays,
 * as llama.cpp reads them). *widths gets [3][n_layers] values (caller frees); the config holds layer 0's, as
 * llama.cpp derives the head dimension from them. */
static SQ_NODISCARD sq_error *read_widths(const sq_gguf_file *g, const char *arch, sq_model_config *c,
                                          int **widths) {
    const uint64_t n = (uint64_t)c->n_layers;
    int *w = *widths = malloc(3 * n * sizeof *w);
    if (!w) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", g->file->path);
    char key[128];
    int found;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    SQ_TRY(sq_gguf_get_ints(g, key, 1, 65536, w, n, NULL));
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    SQ_TRY(sq_gguf_get_ints(g, key, 1, 65536, w + n, n, &found));
    if (!found) memcpy(w + n, w, n * sizeof *w);
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    SQ_TRY(sq_gguf_get_ints(g, key, 1, 1 << 24, w + 2 * n, n, NULL));
    c->n_heads = w[0], c->n_kv_heads = w[n], c->ffn_dim = w[2 * n];
    return NULL;
}

/* Mixture of experts (llama.cpp's keys): {arch}.expert_count > 0 makes a llama file a Mixtral, and names
 * the routed experts; expert_used_count the top-k, expert_feed_forward_length the experts' width where it
 * differs from feed_forward_length (Qwen MoE); expert_weights_norm whether the top-k weights are
 * renormalised, else what llama.cpp does for the architecture (the row's moe_norm_topk). */
static SQ_NODISCARD sq_error *read_experts(const sq_gguf_file *g, const char *arch, const sq_arch **a,
                                           sq_model_config *c) {
    const char *path = g->file->path;
    c->n_experts = c->n_experts_used = 0;
    SQ_TRY(arch_int(g, arch, "expert_count", 0, 0, 1 << 16, &c->n_experts));
    if (c->n_experts == 0 && (*a)->experts)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF %s.expert_count is 0 or missing: a %s model needs experts",
                         path, arch, (*a)->name);
    if (c->n_experts == 0) return NULL;
    const sq_arch *moe = sq_arch_with_experts(*a);
    if (!moe)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: GGUF %s.expert_count = %d: squeeze has no mixture-of-experts %s architecture",
                         path, arch, c->n_experts, arch);
    *a = moe;
    snprintf(c->arch, sizeof c->arch, "%s", moe->name);
    SQ_TRY(arch_int(g, arch, "expert_used_count", 1, 0, 1 << 16, &c->n_experts_used));
    if (c->n_experts_used < 1 || c->n_experts_used > c->n_experts)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF %s.expert_used_count = %d must be 1..%s.expert_count (%d)",
                         path, arch, c->n_experts_used, arch, c->n_experts);
    SQ_TRY(arch_int(g, arch, "expert_feed_forward_length", 0, 1, 1 << 24, &c->ffn_dim));
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    c->expert_norm_topk = moe->moe_norm_topk;
    int found;
    return sq_gguf_get_bool(g, key, &c->expert_norm_topk, &found);
}

static SQ_NODISCARD sq_error *read_config(const sq_gguf_file *g, sq_model_config *c, int *original_ctx,
                                          int **widths) {
    const char *path = g->file->path;
    char *arch;
    SQ_TRY(sq_gguf_get_string(g, "general.architecture", &arch, NULL));
    const sq_arch *a = sq_arch_find_gguf(arch);
    if (!a) {
        char known[128];
        sq_error *err =
            sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF general.architecture '%.64s' is not supported (%s)", path,
                      arch, sq_arch_list(known, sizeof known, SQ_ARCH_GGUF));
        free(arch);
        return err;
    }
    snprintf(c->arch, sizeof c->arch, "%s", a->name);
    const int big = 1 << 24;
    sq_error *err = NULL;
#define TRY(x)                                                                                               \
    if (!err) err = (x)
    TRY(arch_int(g, arch, "context_length", 1, 1, big, &c->max_seq_len));
    TRY(arch_int(g, arch, "embedding_length", 1, 1, big, &c->dim));
    TRY(arch_int(g, arch, "block_count", 1, 1, 4096, &c->n_layers));
    TRY(read_widths(g, arch, c, widths));
    TRY(arch_float(g, arch, "rope.freq_base", 0, &c->rope_theta));
    TRY(arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1, &c->norm_eps));
    int key_len = 0, value_len = 0, rope_dims = 0;
    TRY(arch_int(g, arch, "attention.key_length", 0, 1, 65536, &key_len));
    TRY(arch_int(g, arch, "attention.value_length", 0, 1, 65536, &value_len));
    TRY(arch_int(g, arch, "rope.dimension_count", 0, 1, 65536, &rope_dims));
    TRY(arch_int(g, arch, "attention.sliding_window", 0, 0, big, &c->sliding_window));
    TRY(arch_int(g, arch, "vocab_size", 0, 1, big, &c->vocab_size));
    TRY(arch_int(g, arch, "rope.scaling.original_context_length", 0, 1, big, original_ctx));
    /* llama.cpp's defaults: key length dim / heads, rope dimension count the key length; fewer rotated dims
     * than that is partial rotary (Phi-4-mini) */
    if (!err && c->n_heads > 0 && c->dim % c->n_heads == 0) {
        c->head_dim = key_len ? key_len : c->dim / c->n_heads;
        if (value_len && value_len != c->head_dim)
            err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF key length %d and value length %d differ", path,
                            key_len, value_len);
    } else if (!err && key_len) {
        c->head_dim = key_len;
    }
    c->rope_dims = rope_dims ? rope_dims : c->head_dim;
    char key[128], *scaling = NULL;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    int found = 0;
    TRY(sq_gguf_get_string(g, key, &scaling, &found));
    if (!err && found && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0 &&
        strcmp(scaling, "longrope") != 0 && strcmp(scaling, "su") != 0)
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF rope scaling type '%.32s' is not supported", path,
                        scaling);
    free(scaling);
    /* llama.cpp divides every position by this factor (the older key name first), whatever the scaling type
     */
    static const char *const factor_keys[] = {"rope.scale_linear", "rope.scaling.factor"};
    for (size_t i = 0; i < sizeof factor_keys / sizeof *factor_keys && !err; i++) {
        float factor = 0;
        TRY(arch_float(g, arch, factor_keys[i], 0, &factor));
        if (!err && factor != 0 && factor != 1)
            err = sq_errorf(SQ_ERR_UNSUPPORTED,
                            "%s: GGUF %s.%s = %g (linear RoPE position scaling) is not supported", path, arch,
                            factor_keys[i], factor);
    }
    c->longrope.attn_factor = 1; /* llama.cpp's default; used only with the factor tensors */
    TRY(arch_float(g, arch, "rope.scaling.attn_factor", 0, &c->longrope.attn_factor));
    if (!err && !(c->longrope.attn_factor > 0))
        err = sq_errorf(SQ_ERR_FORMAT, "%s: GGUF %s.rope.scaling.attn_factor must be positive", path, arch);
    TRY(read_experts(g, arch, &a, c));
    static const char *const softcaps[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    float *const caps[2] = {&c->attn_softcap, &c->final_softcap};
    for (size_t i = 0; i < 2 && !err; i++) {
        float cap = a->logit_softcap ? a->softcap_default[i] : 0;
        TRY(arch_float(g, arch, softcaps[i], 0, &cap));
        if (!err && a->logit_softcap && cap >= 0) /* the family's fact (Gemma 2) */
            *caps[i] = cap;
        else if (!err && cap != 0)
            err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF %s.%s = %g (logit soft-capping) is not supported",
                            path, arch, softcaps[i], cap);
    }
#undef TRY
    if (!err) {
        c->rope_style = a->gguf_rope;
        if (a->gguf_swa_pattern) { /* what llama.cpp assumes of the family, not stored in the file */
            sq_model_set_layer_pattern(c, a->gguf_swa_pattern);
            c->rope_local_theta = a->gguf_rope_local_theta > 0 ? a->gguf_rope_local_theta : c->rope_theta;
            if (!sq_model_has_layer_pattern(c)) c->rope_theta = c->rope_local_theta; /* every layer local */
        }
        if (!strcmp(c->arch, "llama") && c->sliding_window > 0) snprintf(c->arch, sizeof c->arch, "mistral");
    }
    free(arch);
    return err;
}

/* BOS and the end-of-generation ids (eos, then end of turn and end of message, as llama.cpp's EOG set),
 * checked against the vocabulary inside the file, else the embedding rows. Out-of-range ids are reported here
 * only for keys the vocabulary reader does not check itself. */
static SQ_NODISCARD sq_error *read_special_ids(const sq_gguf_file *g, sq_model *m) {
    const sq_gguf_kv *tokens = sq_gguf_find(g, "tokenizer.ggml.tokens");
    const int has_vocab = tokens && tokens->type == SQ_GGUF_ARRAY;
    const int n = has_vocab && tokens->n_elems < (1u << 24) ? (int)tokens->n_elems : m->cfg.vocab_size;
    sq_warnings *unchecked = has_vocab ? NULL : &m->warnings;
    SQ_TRY(sq_gguf_special_id(g, SQ_GGUF_BOS_ID, n, unchecked, &m->cfg.bos_id));
    const struct {
        const char *key;
        int by_vocab;
    } eog[] = {{SQ_GGUF_EOS_ID, 1}, {"tokenizer.ggml.eot_token_id", 0}, {"tokenizer.ggml.eom_token_id", 0}};
    m->cfg.n_eos_ids = 0;
    for (size_t i = 0; i < sizeof eog / sizeof *eog; i++) {
        int id;
        SQ_TRY(sq_gguf_special_id(g, eog[i].key, n, eog[i].by_vocab ? unchecked : &m->warnings, &id));
        SQ_TRY(sq_model_add_eos(&m->cfg, id, &m->warnings, g->file->path));
    }
    return NULL;
}

/* widths: [3][n_layers] heads, kv heads, FFN width (read_widths), which split fused tensors. */
static SQ_NODISCARD sq_error *read_tensors(const sq_gguf_file *g, sq_model *m, int original_ctx,
                                           const int *widths) {
    const char *path = g->file->path;
    const sq_arch *a = sq_arch_find(m->cfg.arch);
    const int n = m->cfg.n_layers;
    int n_longrope = 0; /* bit 0: short factors read, bit 1: long */
    snprintf(m->file_format, sizeof m->file_format, "gguf");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const sq_gguf_tensor *t = &g->tensors[i];
        int dtype = sq_gguf_dtype_from_ggml(t->ggml_type);
        if (dtype < 0) {
            char known[128] = "";
            for (int d = 0; d < SQ_DTYPE_COUNT; d++)
                if (sq_dtype_info((sq_dtype)d)->ggml_type >= 0)
                    snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", *known ? ", " : "",
                             sq_gguf_ggml_type_name(sq_gguf_ggml_type((sq_dtype)d)));
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: tensor %s has ggml type %s (%u); squeeze reads %s",
                             path, t->name, sq_gguf_ggml_type_name(t->ggml_type), t->ggml_type, known);
        }
        if (!strcmp(t->name, ROPE_FREQS)) {
            if (dtype != SQ_DTYPE_F32 || t->ndim != 1 || t->shape[0] * 2 != m->cfg.rope_dims)
                return sq_errorf(SQ_ERR_FORMAT, "%s: %s must be %d f32 values (one per rotated pair)", path,
                                 ROPE_FREQS, m->cfg.rope_dims / 2);
            float *factors = malloc(t->nbytes);
            if (!factors) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
            memcpy(factors, t->data, t->nbytes);
            sq_error *err = sq_llama3_from_factors(path, factors, original_ctx, &m->cfg);
            free(factors);
            SQ_TRY(err);
            continue;
        }
        const int longrope = !strcmp(t->name, longrope_names[0])   ? 0
                             : !strcmp(t->name, longrope_names[1]) ? 1
                                                                   : -1;
        if (longrope >= 0) {
            const int n_pairs = m->cfg.rope_dims / 2;
            if (dtype != SQ_DTYPE_F32 || t->ndim != 1 || t->shape[0] != n_pairs ||
                n_pairs > SQ_ROPE_MAX_PAIRS)
                return sq_errorf(SQ_ERR_FORMAT, "%s: %s must be %d f32 values (rope dims / 2, at most %d)",
                                 path, t->name, n_pairs, SQ_ROPE_MAX_PAIRS);
            float *f = longrope ? m->cfg.longrope.long_factor : m->cfg.longrope.short_factor;
            memcpy(f, t->data, t->nbytes);
            for (int i = 0; i < n_pairs; i++)
                if (!(f[i] > 0) || f[i] == INFINITY)
                    return sq_errorf(SQ_ERR_FORMAT, "%s: %s[%d] = %g is not a positive factor", path, t->name,
                                     i, f[i]);
            n_longrope |= 1 << longrope;
            continue;
        }
        char name[SQ_TENSOR_NAME_MAX];
        sq_fused_from_gguf(a, t->name, name, sizeof name);
        if (sq_fused_name_valid(name, n)) {
            const char *rest;
            const int l = sq_split_layer_name(name, "blk.", &rest);
            SQ_TRY(sq_error_wrap(sq_import_fused(m, path, name, (sq_dtype)dtype, t->ndim, t->shape, t->data,
                                                 t->nbytes, widths[l], widths[n + l], widths[2 * n + l]),
                                 "GGUF tensor %s", t->name));
            continue;
        }
        if (!sq_canonical_name_valid(name, n))
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: unexpected tensor %s in a %s model with %d layers",
                             path, t->name, m->cfg.arch, n);
        /* the shared expert's gate is a [1][dim] matrix; llama.cpp reads it as [dim], which files hold either
         * way (converters keep transformers' [1, dim], or drop the 1) */
        const char *rest;
        int ndim = t->ndim;
        int64_t shape[SQ_MAX_DIMS] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
        if (ndim == 1 && sq_split_layer_name(name, "blk.", &rest) >= 0 &&
            !strcmp(rest, SQ_NAME_FFN_GATE_INP_SHEXP))
            ndim = 2, shape[0] = 1, shape[1] = t->shape[0];
        SQ_TRY(sq_import_tensor(m, path, name, (sq_dtype)dtype, ndim, shape, t->data, t->nbytes, 0));
    }
    if (n_longrope && n_longrope != 3)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s without %s (longrope needs both)", path,
                         longrope_names[n_longrope == 2], longrope_names[n_longrope == 1]);
    if (n_longrope) {
        if (original_ctx <= 0)
            return sq_errorf(SQ_ERR_FORMAT,
                             "%s: longrope factors need %s.rope.scaling.original_context_length (the context "
                             "above which the long factors apply)",
                             path, a->gguf);
        m->cfg.rope_scaling = (sq_rope_scaling){SQ_ROPE_SCALING_LONGROPE, 0, 0, 0, original_ctx};
    }
    return NULL;
}

sq_error *sq_gguf_read_model(const sq_gguf_file *g, sq_model *m) {
    const char *path = g->file->path;
    int original_ctx = 0, *widths = NULL;
    sq_error *err = read_config(g, &m->cfg, &original_ctx, &widths);
    if (!err) err = read_tensors(g, m, original_ctx, widths);
    if (!err) {
        const int n = m->cfg.n_layers;
        const sq_layer_widths w = {widths, widths + n, widths + 2 * n};
        err = sq_check_layer_shapes(m, path, &w);
    }
    free(widths);
    SQ_TRY(err);
    if (m->cfg.vocab_size <= 0) {
        const sq_tensor *emb = sq_model_find_tensor(m, SQ_NAME_TOK_EMBD);
        if (emb && emb->ndim == 2 && emb->shape[0] <= (1 << 24)) m->cfg.vocab_size = (int)emb->shape[0];
    }
    return read_special_ids(g, m);
}

sq_error *sq_gguf_load(const char *path, sq_model *m) {
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(path, &f));
    SQ_TRY(sq_model_keep_file(m, f));
    sq_gguf_file *g;
    SQ_TRY(sq_gguf_parse(f, &g));
    sq_error *err = sq_gguf_read_model(g, m);
    if (!err) err = sq_gguf_read_vocab(g, &m->tokenizer);
    sq_gguf_free(g);
    return err;
}
