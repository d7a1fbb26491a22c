#include "formats/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/out_file.h"
#include "model/arch.h"

typedef struct reader {
    const char *path;
    const cJSON *root;
    sq_warnings *warnings;
} reader;

static int present(const cJSON *item) { return item && !cJSON_IsNull(item); }

/* An integer field in [lo, hi]: *v is left alone when the field is absent or null and not required. */
static SQ_NODISCARD sq_error *get_int(const reader *r, const cJSON *obj, const char *key, int required,
                                      long lo, long hi, int *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!present(item)) {
        if (required) return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s is missing", r->path, key);
        return NULL;
    }
    double x = item->valuedouble;
    if (!cJSON_IsNumber(item) || x != floor(x) || x < lo || x > hi)
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be an integer in [%ld, %ld]", r->path, key,
                         lo, hi);
    *v = (int)x;
    return NULL;
}

static SQ_NODISCARD sq_error *get_double(const reader *r, const cJSON *obj, const char *key, int required,
                                         double *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!present(item)) {
        if (required) return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s is missing", r->path, key);
        return NULL;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be a number", r->path, key);
    *v = item->valuedouble;
    return NULL;
}

static SQ_NODISCARD sq_error *get_float(const reader *r, const cJSON *obj, const char *key, int required,
                                        float *v) {
    double d = *v;
    SQ_TRY(get_double(r, obj, key, required, &d));
    *v = (float)d;
    return NULL;
}

static SQ_NODISCARD sq_error *get_bool(const reader *r, const char *key, int *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!present(item)) return NULL;
    if (!cJSON_IsBool(item))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be true or false", r->path, key);
    *v = cJSON_IsTrue(item);
    return NULL;
}

/* A string field; NULL when absent or null. */
static SQ_NODISCARD sq_error *get_string(const reader *r, const cJSON *obj, const char *key, const char **v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *v = NULL;
    if (!present(item)) return NULL;
    if (!cJSON_IsString(item))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be a string", r->path, key);
    *v = item->valuestring;
    return NULL;
}

/* A token id the model can do without (bos_token_id, eos_token_id): anything but an id of the vocabulary is
 * reported and left out, as transformers' generation would never see it. -1 when absent or left out. */
static SQ_NODISCARD sq_error *token_id(const reader *r, const char *key, const cJSON *item, int vocab_size,
                                       int *id) {
    *id = -1;
    if (!present(item)) return NULL;
    double x = item->valuedouble;
    if (cJSON_IsNumber(item) && x == floor(x) && x >= 0 && x < vocab_size) {
        *id = (int)x;
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(item);
    sq_error *err = sq_warn(r->warnings, "%s: %s %.40s is not a token id of the %d-token vocabulary; ignored",
                            r->path, key, text ? text : "(value)", vocab_size);
    free(text);
    return err;
}

/* eos_token_id: one id or a list of them (chat models end a turn with any: Llama 3's <|eot_id|>), each
 * added to the end-of-generation set. */
static SQ_NODISCARD sq_error *get_eos_ids(const reader *r, sq_model_config *c) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, "eos_token_id"), *one;
    int id;
    if (!cJSON_IsArray(item)) {
        SQ_TRY(token_id(r, "eos_token_id", item, c->vocab_size, &id));
        return sq_model_add_eos(c, id, r->warnings, r->path);
    }
    cJSON_ArrayForEach(one, item) {
        SQ_TRY(token_id(r, "eos_token_id", one, c->vocab_size, &id));
        SQ_TRY(sq_model_add_eos(c, id, r->warnings, r->path));
    }
    return NULL;
}

/* The architecture: the class architectures[0] names, else (configs written without it) the model_type
 * transformers picks the config class by. Neither known: an error naming both keys and the supported lists.
 */
static SQ_NODISCARD sq_error *get_architecture(const reader *r, sq_model_config *c, const sq_arch **arch) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->root, "architectures");
    const cJSON *name = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, 0) : NULL;
    const cJSON *type_item = cJSON_GetObjectItemCaseSensitive(r->root, "model_type");
    const char *type = cJSON_GetStringValue(type_item);
    if (present(type_item) && !type)
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field model_type must be a string", r->path);
    if (present(list) && !cJSON_IsString(name))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: config field architectures must be a list of class names (e.g. "
                         "[\"LlamaForCausalLM\"])",
                         r->path);
    *arch = name ? sq_arch_find_hf(name->valuestring) : type ? sq_arch_find_model_type(type) : NULL;
    if (*arch) {
        snprintf(c->arch, sizeof c->arch, "%s", (*arch)->name);
        return NULL;
    }
    char known[256];
    if (name)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: architecture %.64s is not supported (config field architectures; model_type "
                         "%.32s; supported: %s)",
                         r->path, name->valuestring, type ? type : "absent",
                         sq_arch_list(known, sizeof known, SQ_ARCH_HF_CLASS));
    if (type)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: config field model_type = %.32s is not supported and architectures is absent "
                         "(supported model types: %s)",
                         r->path, type, sq_arch_list(known, sizeof known, SQ_ARCH_MODEL_TYPE));
    return sq_errorf(SQ_ERR_FORMAT,
                     "%s: config fields architectures (e.g. [\"LlamaForCausalLM\"]) and model_type are both "
                     "missing",
                     r->path);
}

/* layer_types (recent transformers): "full_attention" or "sliding_attention" per layer. *n_sliding counts the
 * sliding ones; -1 when the field is absent. */
static SQ_NODISCARD sq_error *get_layer_types(const reader *r, int n_layers, int *n_sliding) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->root, "layer_types"), *t;
    *n_sliding = -1;
    if (!present(list)) return NULL;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n_layers)
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field layer_types must list one type per layer (%d)",
                         r->path, n_layers);
    *n_sliding = 0;
    cJSON_ArrayForEach(t, list) {
        const char *s = cJSON_GetStringValue(t);
        if (s && !strcmp(s, "sliding_attention"))
            ++*n_sliding;
        else if (!s || strcmp(s, "full_attention"))
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: config field layer_types holds %.40s (full_attention and sliding_attention "
                             "are supported)",
                             r->path, s ? s : "a non-string");
    }
    return NULL;
}

/* A list of rope_dims/2 positive factors (longrope's short_factor, long_factor). */
static SQ_NODISCARD sq_error *get_factors(const reader *r, const char *field, const cJSON *p, const char *key,
                                          int n, float *out) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, key), *x;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s.%s must list %d factors (one per rotated pair)", r->path,
                         field, key, n);
    int i = 0;
    cJSON_ArrayForEach(x, list) {
        if (!cJSON_IsNumber(x) || !(x->valuedouble > 0) || !isfinite(x->valuedouble))
            return sq_errorf(SQ_ERR_FORMAT, "%s: %s.%s[%d] must be a positive number", r->path, field, key,
                             i);
        out[i++] = (float)x->valuedouble;
    }
    return NULL;
}

/* LongRoPE (Phi-3's "su", later "longrope"), as transformers' _compute_longrope_parameters reads it: the
 * factor lists; original_max_position_embeddings from the dict, else the top level (Phi-3's configs), and
 * then factor = max_position_embeddings / original, else the dict's factor with the original context
 * max_position_embeddings; attention_factor, else sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1).
 */
static SQ_NODISCARD sq_error *read_longrope(const reader *r, const char *field, const cJSON *p,
                                            sq_model_config *c) {
    sq_rope_scaling *s = &c->rope_scaling;
    sq_longrope *lr = &c->longrope;
    const int n = c->rope_dims / 2;
    if (n > SQ_ROPE_MAX_PAIRS)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: %s longrope with %d rotated dims (at most %d) is not supported", r->path, field,
                         c->rope_dims, 2 * SQ_ROPE_MAX_PAIRS);
    s->type = SQ_ROPE_SCALING_LONGROPE;
    SQ_TRY(get_factors(r, field, p, "short_factor", n, lr->short_factor));
    SQ_TRY(get_factors(r, field, p, "long_factor", n, lr->long_factor));
    s->original_max_pos = 0;
    SQ_TRY(get_int(r, r->root, "original_max_position_embeddings", 0, 1, 1 << 24, &s->original_max_pos));
    SQ_TRY(get_int(r, p, "original_max_position_embeddings", 0, 1, 1 << 24, &s->original_max_pos));
    double factor = 1;
    if (s->original_max_pos > 0) {
        factor = (double)c->max_seq_len / s->original_max_pos;
    } else {
        float f = 1;
        SQ_TRY(get_float(r, p, "factor", 0, &f));
        factor = f;
        s->original_max_pos = c->max_seq_len;
    }
    lr->attn_factor = factor <= 1 || s->original_max_pos <= 1
                          ? 1.0f
                          : (float)sqrt(1 + log(factor) / log((double)s->original_max_pos));
    SQ_TRY(get_float(r, p, "attention_factor", 0, &lr->attn_factor));
    if (!(lr->attn_factor > 0))
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s.attention_factor must be positive", r->path, field);
    return NULL;
}

/* The RoPE settings as transformers resolves them (modeling_rope_utils.py, convert_rope_params_to_dict):
 * a non-empty rope_scaling (v4) replaces rope_parameters (v5); inside it rope_theta, then the top-level
 * rope_theta, then 10000; rope_type, else the older "type", else "default"; partial_rotary_factor from
 * either place, rotating the first int(head_dim * factor) dims of each head
 * (_compute_default_rope_parameters). A v5 rope_parameters may instead hold one such dict per layer type.
 * Every type but default, llama3 and longrope ("su") changes the arithmetic in ways squeeze does not
 * implement: errors. */
static SQ_NODISCARD sq_error *read_rope_dict(const reader *r, const char *field, const cJSON *p,
                                             sq_model_config *c) {
    if (!cJSON_IsObject(p))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be an object", r->path, field);
    c->rope_theta = 10000.0f;
    SQ_TRY(get_float(r, r->root, "rope_theta", 0, &c->rope_theta));
    SQ_TRY(get_float(r, p, "rope_theta", 0, &c->rope_theta));
    double partial = 1; /* in double, as Python multiplies it */
    SQ_TRY(get_double(r, r->root, "partial_rotary_factor", 0, &partial));
    SQ_TRY(get_double(r, p, "partial_rotary_factor", 0, &partial));
    const int hd = c->head_dim > 0 ? c->head_dim : c->dim / c->n_heads;
    c->rope_dims = (int)(hd * partial); /* transformers truncates likewise */
    if (!(partial > 0 && partial <= 1) || c->rope_dims < 2 || c->rope_dims % 2)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: config field partial_rotary_factor = %g gives %d rotated dims of head_dim %d "
                         "(must be even, at least 2, at most head_dim)",
                         r->path, partial, c->rope_dims, hd);
    const char *type;
    SQ_TRY(get_string(r, p, "rope_type", &type));
    if (!type) SQ_TRY(get_string(r, p, "type", &type));
    c->rope_scaling = (sq_rope_scaling){SQ_ROPE_SCALING_NONE, 0, 0, 0, 0};
    if (!type || !strcmp(type, "default")) return NULL;
    if (!strcmp(type, "longrope") || !strcmp(type, "su")) return read_longrope(r, field, p, c);
    if (strcmp(type, "llama3") != 0)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: %s type %.32s is not supported (default, llama3 and longrope are)", r->path,
                         field, type);
    sq_rope_scaling *s = &c->rope_scaling;
    s->type = SQ_ROPE_SCALING_LLAMA3;
    s->original_max_pos = c->max_seq_len; /* transformers' default when the dict omits it */
    SQ_TRY(get_float(r, p, "factor", 1, &s->factor));
    SQ_TRY(get_float(r, p, "low_freq_factor", 1, &s->low_freq_factor));
    SQ_TRY(get_float(r, p, "high_freq_factor", 1, &s->high_freq_factor));
    SQ_TRY(get_int(r, p, "original_max_position_embeddings", 0, 1, 1 << 24, &s->original_max_pos));
    if (!(s->factor >= 1) || !(s->low_freq_factor > 0) || !(s->high_freq_factor > s->low_freq_factor))
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s needs factor >= 1 and 0 < low_freq_factor < high_freq_factor",
                         r->path, field);
    return NULL;
}

static int same_rope(const sq_model_config *a, const sq_model_config *b) {
    return a->rope_theta == b->rope_theta && a->rope_dims == b->rope_dims &&
           !memcmp(&a->rope_scaling, &b->rope_scaling, sizeof a->rope_scaling) &&
           !memcmp(&a->longrope, &b->longrope, sizeof a->longrope);
}

/* A dict nested per layer type: the keys named in layer_types. Every type the layers use must agree, as
 * squeeze has one RoPE for all layers. *nested counts the entries found. */
static SQ_NODISCARD sq_error *read_nested_rope(const reader *r, const char *field, const cJSON *p,
                                               sq_model_config *c, int *nested) {
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(r->root, "layer_types"), *t, *entry;
    *nested = 0;
    if (!cJSON_IsArray(types)) return NULL;
    cJSON_ArrayForEach(t, types) {
        const char *name = cJSON_GetStringValue(t);
        if (!name || !(entry = cJSON_GetObjectItemCaseSensitive(p, name))) continue;
        sq_model_config one = *c;
        char where[96];
        snprintf(where, sizeof where, "%s.%.40s", field, name);
        SQ_TRY(read_rope_dict(r, where, entry, &one));
        if ((*nested)++ && !same_rope(&one, c))
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: %s differs between layer types (not supported)",
                             r->path, field);
        *c = one;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *get_rope(const reader *r, sq_model_config *c) {
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->root, "rope_parameters");
    if (present(scaling) && !cJSON_IsObject(scaling))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field rope_scaling must be an object", r->path);
    if (cJSON_IsObject(scaling) && scaling->child) return read_rope_dict(r, "rope_scaling", scaling, c);
    if (!present(params)) { /* the top-level keys alone */
        cJSON *empty = cJSON_CreateObject();
        if (!empty) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", r->path);
        sq_error *err = read_rope_dict(r, "rope_parameters", empty, c);
        cJSON_Delete(empty);
        return err;
    }
    int nested = 0;
    if (cJSON_IsObject(params)) SQ_TRY(read_nested_rope(r, "rope_parameters", params, c, &nested));
    return nested ? NULL : read_rope_dict(r, "rope_parameters", params, c);
}

/* Where the window of sliding-window attention applies, as transformers' modeling code decides: Mistral
 * everywhere (4096 when the config omits the field; null turns it off); Phi-3 everywhere when set; Qwen2 and
 * Qwen3 only with use_sliding_window, on the layers layer_types marks (else those from max_window_layers on).
 * Llama has none. One window for all layers or none is supported; a mix of both is not. */
static SQ_NODISCARD sq_error *get_sliding_window(const reader *r, const sq_arch *a, sq_model_config *c) {
    c->sliding_window = 0;
    const cJSON *window = cJSON_GetObjectItemCaseSensitive(r->root, "sliding_window");
    if (a->hf_window == SQ_HF_WINDOW_ALWAYS || a->hf_window == SQ_HF_WINDOW_SET) {
        if (!window && a->hf_window == SQ_HF_WINDOW_ALWAYS) c->sliding_window = 4096;
        return get_int(r, r->root, "sliding_window", 0, 0, 1 << 24, &c->sliding_window);
    }
    if (a->hf_window != SQ_HF_WINDOW_OPT_IN) return NULL;
    int n_sliding;
    SQ_TRY(get_layer_types(r, c->n_layers, &n_sliding));
    int use = 0, size = window ? -1 : 4096, from = 28;
    SQ_TRY(get_bool(r, "use_sliding_window", &use));
    SQ_TRY(get_int(r, r->root, "sliding_window", 0, 0, 1 << 24, &size));
    if (!use || size <= 0) return NULL;
    const char *decided_by = "layer_types";
    if (n_sliding < 0) {
        SQ_TRY(get_int(r, r->root, "max_window_layers", 0, 0, 1 << 24, &from));
        n_sliding = c->n_layers - (from < c->n_layers ? from : c->n_layers);
        decided_by = "max_window_layers";
    }
    if (n_sliding == c->n_layers) c->sliding_window = size;
    if (n_sliding == 0 || n_sliding == c->n_layers) return NULL;
    return sq_errorf(SQ_ERR_UNSUPPORTED,
                     "%s: use_sliding_window with %s = %d of %d layers windowed (a window on some layers "
                     "only) is not supported",
                     r->path, decided_by, n_sliding, c->n_layers);
}

/* Interleaved local and global layers (Gemma 3, Gemma3TextConfig): layer_types names each layer's kind, else
 * every sliding_window_pattern-th layer (default 6; Gemma 2: every 2nd) is global; sliding_window (default
 * 4096) is the local layers' window and rope_local_base_freq (default 10000) their RoPE base (Gemma 2: the
 * global one). */
static SQ_NODISCARD sq_error *get_layer_pattern(const reader *r, const sq_arch *a, sq_model_config *c) {
    c->sliding_window = 4096;
    SQ_TRY(get_int(r, r->root, "sliding_window", 0, 0, 1 << 24, &c->sliding_window));
    c->rope_local_theta = c->rope_theta; /* Gemma 2: one rotary embedding */
    if (a->gguf_rope_local_theta > 0) {
        c->rope_local_theta = 10000.0f;
        SQ_TRY(get_float(r, r->root, "rope_local_base_freq", 0, &c->rope_local_theta));
    }
    int n_sliding, pattern = a->gguf_swa_pattern;
    SQ_TRY(get_layer_types(r, c->n_layers, &n_sliding));
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(r->root, "layer_types"), *t;
    if (n_sliding < 0) {
        SQ_TRY(get_int(r, r->root, "sliding_window_pattern", 0, 1, 1 << 24, &pattern));
        sq_model_set_layer_pattern(c, pattern);
    } else {
        memset(c->global_layers, 0, sizeof c->global_layers);
        int l = 0;
        cJSON_ArrayForEach(t, types) {
            if (!strcmp(cJSON_GetStringValue(t), "full_attention"))
                c->global_layers[l / 64] |= (uint64_t)1 << (l % 64);
            l++;
        }
    }
    if (!sq_model_has_layer_pattern(c)) /* all local: mark none global, but keep every layer windowed */
        c->rope_theta = c->rope_local_theta;
    return NULL;
}

/* Mixture of experts (transformers' MixtralConfig, Qwen2MoeConfig, Qwen3MoeConfig): the expert count, top-k,
 * the experts' width (Qwen: moe_intermediate_size), whether the top-k weights are renormalised (Mixtral:
 * always; Qwen: norm_topk_prob, false when absent as in transformers). Dense layers between the sparse ones
 * (decoder_sparse_step > 1, mlp_only_layers) are refused by name. */
static SQ_NODISCARD sq_error *get_experts(const reader *r, const sq_arch *a, sq_model_config *c) {
    c->n_experts = c->n_experts_used = c->expert_norm_topk = 0;
    if (!a->experts) return NULL;
    SQ_TRY(get_int(r, r->root, a->hf_experts_key, 1, 1, 65536, &c->n_experts));
    SQ_TRY(get_int(r, r->root, "num_experts_per_tok", 1, 1, 65536, &c->n_experts_used));
    if (c->n_experts_used > c->n_experts)
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field num_experts_per_tok = %d exceeds %s = %d", r->path,
                         c->n_experts_used, a->hf_experts_key, c->n_experts);
    c->expert_norm_topk = a->hf_moe_names == SQ_HF_MOE_MIXTRAL;
    if (a->hf_moe_names == SQ_HF_MOE_QWEN) SQ_TRY(get_bool(r, "norm_topk_prob", &c->expert_norm_topk));
    if (a->hf_moe_ffn_key) SQ_TRY(get_int(r, r->root, "moe_intermediate_size", 1, 1, 1 << 24, &c->ffn_dim));
    int step = 1;
    SQ_TRY(get_int(r, r->root, "decoder_sparse_step", 0, 0, 1 << 24, &step));
    if (step > 1)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: config field decoder_sparse_step = %d (dense blocks between the sparse ones) is not "
            "supported",
            r->path, step);
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(r->root, "mlp_only_layers");
    if (present(dense) && (!cJSON_IsArray(dense) || cJSON_GetArraySize(dense) > 0))
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: config field mlp_only_layers (dense blocks among the sparse ones) is not supported",
            r->path);
    return NULL;
}

/* Keys that change the arithmetic of these architectures beyond what squeeze implements: an error naming the
 * key, never a silent default. */
static SQ_NODISCARD sq_error *check_unsupported(const reader *r, const sq_arch *a, const sq_model_config *c) {
    const char *act, *act_key = a->hf_act_key ? a->hf_act_key : "hidden_act";
    SQ_TRY(get_string(r, r->root, act_key, &act));
    size_t len = act ? strlen(act) : 0;
    const char *hit = act ? strstr(a->hf_act, act) : NULL; /* a "|"-separated list of names */
    if (act && !(hit && (hit == a->hf_act || hit[-1] == '|') && (hit[len] == 0 || hit[len] == '|')))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: config field %s = %.32s is not supported (%s)", r->path,
                         act_key, act, a->hf_act);
    static const char *const softcaps[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (int i = 0; i < 2 && !a->logit_softcap; i++) { /* the families that have them read them in parse */
        float cap = 0;
        SQ_TRY(get_float(r, r->root, softcaps[i], 0, &cap));
        if (cap != 0)
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: config field %s = %g (logit soft-capping) is not supported", r->path,
                             softcaps[i], cap);
    }
    int bidirectional = 0;
    SQ_TRY(get_bool(r, "use_bidirectional_attention", &bidirectional));
    if (bidirectional)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: config field use_bidirectional_attention = true (an encoder) is not supported",
                         r->path);
    int mlp_bias = 0;
    if (!strcmp(c->arch, "llama")) SQ_TRY(get_bool(r, "mlp_bias", &mlp_bias));
    if (mlp_bias)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: config field mlp_bias = true (MLP biases) is not supported",
                         r->path);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(r->root, "quantization_config");
    if (present(q)) {
        const char *method = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "quant_method"));
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: config field quantization_config (quant_method %.32s): quantized Hugging Face "
                         "checkpoints are not supported",
                         r->path, method ? method : "unknown");
    }
    return NULL;
}

static SQ_NODISCARD sq_error *parse(const reader *r, sq_model_config *c, sq_hf_flags *flags) {
    const int big = 1 << 24;
    const sq_arch *a;
    SQ_TRY(get_architecture(r, c, &a));
    SQ_TRY(get_int(r, r->root, "hidden_size", 1, 1, big, &c->dim));
    SQ_TRY(get_int(r, r->root, "intermediate_size", 1, 1, big, &c->ffn_dim));
    SQ_TRY(get_int(r, r->root, "num_hidden_layers", 1, 1, 4096, &c->n_layers));
    SQ_TRY(get_int(r, r->root, "num_attention_heads", 1, 1, 65536, &c->n_heads));
    c->n_kv_heads = c->n_heads;
    SQ_TRY(get_int(r, r->root, "num_key_value_heads", 0, 1, 65536, &c->n_kv_heads));
    c->head_dim = 0;
    SQ_TRY(get_int(r, r->root, "head_dim", 0, 1, 65536, &c->head_dim));
    SQ_TRY(get_int(r, r->root, "vocab_size", 1, 1, big, &c->vocab_size));
    SQ_TRY(get_int(r, r->root, "max_position_embeddings", 1, 1, big, &c->max_seq_len));
    c->norm_eps = 1e-6f; /* transformers' default for all three */
    SQ_TRY(get_float(r, r->root, "rms_norm_eps", 0, &c->norm_eps));
    SQ_TRY(get_rope(r, c));
    SQ_TRY(get_sliding_window(r, a, c));
    if (a->hf_window == SQ_HF_WINDOW_PATTERN) SQ_TRY(get_layer_pattern(r, a, c));
    SQ_TRY(get_experts(r, a, c));
    SQ_TRY(check_unsupported(r, a, c));
    c->attn_softcap = c->final_softcap = 0;
    if (a->logit_softcap) { /* absent: the config class's default (Gemma 2: 50, 30; Gemma 3: none); null: none
                             */
        static const char *const keys[2] = {"attn_logit_softcapping", "final_logit_softcapping"};
        float *const caps[2] = {&c->attn_softcap, &c->final_softcap};
        for (int i = 0; i < 2; i++) {
            if (!cJSON_GetObjectItemCaseSensitive(r->root, keys[i])) *caps[i] = a->softcap_default[i];
            SQ_TRY(get_float(r, r->root, keys[i], 0, caps[i]));
            if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r->root, keys[i]))) *caps[i] = 0;
        }
        if (c->attn_softcap < 0 || c->final_softcap < 0)
            return sq_errorf(SQ_ERR_FORMAT,
                             "%s: config fields attn_logit_softcapping and "
                             "final_logit_softcapping must be positive (or null: none)",
                             r->path);
    }
    c->attn_scalar = 0;
    if (a->hf_window == SQ_HF_WINDOW_PATTERN) { /* Gemma: scores scaled by query_pre_attn_scalar^-0.5 */
        float scalar = 256;                     /* Gemma3TextConfig's default */
        SQ_TRY(get_float(r, r->root, "query_pre_attn_scalar", 0, &scalar));
        if (!(scalar > 0))
            return sq_errorf(SQ_ERR_FORMAT, "%s: config field query_pre_attn_scalar must be positive",
                             r->path);
        if (scalar != (float)c->head_dim) c->attn_scalar = scalar;
    }
    flags->tie_word_embeddings = a->hf_tied_default;
    SQ_TRY(get_bool(r, "tie_word_embeddings", &flags->tie_word_embeddings));
    flags->attention_bias = a->qkv_bias == SQ_PART_ALWAYS;
    if (a->hf_attention_bias) SQ_TRY(get_bool(r, "attention_bias", &flags->attention_bias));
    SQ_TRY(token_id(r, "bos_token_id", cJSON_GetObjectItemCaseSensitive(r->root, "bos_token_id"),
                    c->vocab_size, &c->bos_id));
    c->n_eos_ids = 0;
    SQ_TRY(get_eos_ids(r, c));
    c->rope_style = SQ_ROPE_HALVES;
    return NULL;
}

static SQ_NODISCARD sq_error *parse_object(const char *path, const char *text, size_t len, cJSON **root) {
    *root = cJSON_ParseWithLength(text, len);
    if (cJSON_IsObject(*root)) return NULL;
    cJSON_Delete(*root);
    *root = NULL;
    return sq_errorf(SQ_ERR_FORMAT, "%s: not a JSON object", path);
}

sq_error *sq_hf_config_parse(const char *path, const char *text, size_t len, sq_model_config *c,
                             sq_hf_flags *flags, sq_warnings *warnings) {
    cJSON *root;
    SQ_TRY(parse_object(path, text, len, &root));
    reader r = {path, root, warnings};
    sq_error *err = parse(&r, c, flags);
    cJSON_Delete(root);
    return err;
}

sq_error *sq_hf_generation_config_parse(const char *path, const char *text, size_t len, sq_model_config *c,
                                        sq_warnings *warnings) {
    cJSON *root;
    sq_error *err = parse_object(path, text, len, &root);
    if (err) { /* only its stop ids matter to squeeze, and those the model's other files also name */
        sq_error_free(err);
        return sq_warn(warnings, "%s: not a JSON object; ignored", path);
    }
    reader r = {path, root, warnings};
    err = get_eos_ids(&r, c);
    cJSON_Delete(root);
    return err;
}

/* The shortest decimal that reads back as the same float, so 1e-5f is written "1e-05" and not
 * "9.99999974737875e-06". */
static double shortest(float f) {
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

sq_error *sq_hf_config_write(const sq_model *m, sq_dtype dtype, const char *path) {
    const sq_model_config *c = &m->cfg;
    const sq_arch *a = sq_arch_find(c->arch);
    if (!a) return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: no Hugging Face architecture for %s", path, c->arch);
    const char *hf = a->hf_class;
    const int bias = sq_model_find_tensor(m, "blk.0." SQ_NAME_ATTN_Q_BIAS) != NULL;
    if (a->qkv_bias == SQ_PART_ALWAYS && !bias)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: a %s checkpoint needs q/k/v biases, this model has none",
                         path, hf);
    if (a->qkv_bias == SQ_PART_NEVER && bias)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: a %s checkpoint cannot hold q/k/v biases", path, hf);
    cJSON *root = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(hf));
    cJSON_AddStringToObject(root, "model_type", a->hf_model_type ? a->hf_model_type : c->arch);
    cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    cJSON_AddNumberToObject(root, "intermediate_size", c->ffn_dim);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_seq_len);
    cJSON_AddNumberToObject(root, "rms_norm_eps", shortest(c->norm_eps));
    cJSON_AddNumberToObject(root, "rope_theta", shortest(c->rope_theta));
    if (c->rope_dims != c->head_dim) /* exact in binary for the fractions real models use (0.75, 0.5) */
        cJSON_AddNumberToObject(root, "partial_rotary_factor", (double)c->rope_dims / c->head_dim);
    if (c->rope_scaling.type == SQ_ROPE_SCALING_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", shortest(c->rope_scaling.factor));
        cJSON_AddNumberToObject(rs, "low_freq_factor", shortest(c->rope_scaling.low_freq_factor));
        cJSON_AddNumberToObject(rs, "high_freq_factor", shortest(c->rope_scaling.high_freq_factor));
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_scaling.original_max_pos);
    } else if (c->rope_scaling.type ==
               SQ_ROPE_SCALING_LONGROPE) { /* Phi-3's layout, attention_factor stated */
        const int n = c->rope_dims / 2;
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "longrope");
        cJSON *lists[2] = {cJSON_AddArrayToObject(rs, "short_factor"),
                           cJSON_AddArrayToObject(rs, "long_factor")};
        for (int i = 0; i < n; i++) {
            cJSON_AddItemToArray(lists[0], cJSON_CreateNumber(shortest(c->longrope.short_factor[i])));
            cJSON_AddItemToArray(lists[1], cJSON_CreateNumber(shortest(c->longrope.long_factor[i])));
        }
        cJSON_AddNumberToObject(rs, "attention_factor", shortest(c->longrope.attn_factor));
        cJSON_AddNumberToObject(root, "original_max_position_embeddings", c->rope_scaling.original_max_pos);
    } else {
        cJSON_AddNullToObject(root, "rope_scaling");
    }
    if (a->hf_window == SQ_HF_WINDOW_ALWAYS || a->hf_window == SQ_HF_WINDOW_SET) {
        if (c->sliding_window > 0)
            cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        else
            cJSON_AddNullToObject(root, "sliding_window");
    } else if (a->hf_window == SQ_HF_WINDOW_OPT_IN && c->sliding_window > 0) {
        cJSON_AddTrueToObject(root, "use_sliding_window");
        cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        cJSON_AddNumberToObject(root, "max_window_layers", 0);
    } else if (a->hf_window == SQ_HF_WINDOW_OPT_IN) {
        cJSON_AddFalseToObject(root, "use_sliding_window");
    } else if (a->hf_window == SQ_HF_WINDOW_PATTERN) {
        const int pattern = sq_model_has_layer_pattern(c);
        cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        cJSON *types = cJSON_AddArrayToObject(root, "layer_types");
        for (int l = 0; l < c->n_layers; l++)
            cJSON_AddItemToArray(types, cJSON_CreateString(pattern && sq_layer_is_global(c, l)
                                                               ? "full_attention"
                                                               : "sliding_attention"));
        if (a->gguf_rope_local_theta > 0)
            cJSON_AddNumberToObject(root, "rope_local_base_freq",
                                    shortest(pattern ? c->rope_local_theta : c->rope_theta));
        cJSON_AddNumberToObject(root, "query_pre_attn_scalar",
                                shortest(c->attn_scalar > 0 ? c->attn_scalar : (float)c->head_dim));
    } else if (c->sliding_window > 0) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: a %s checkpoint cannot hold a sliding window", path, hf);
    }
    if (a->logit_softcap) {
        const float caps[2] = {c->attn_softcap, c->final_softcap};
        static const char *const keys[2] = {"attn_logit_softcapping", "final_logit_softcapping"};
        for (int i = 0; i < 2; i++)
            if (caps[i] > 0)
                cJSON_AddNumberToObject(root, keys[i], shortest(caps[i]));
            else
                cJSON_AddNullToObject(root, keys[i]);
    }
    if (a->hf_attention_bias) cJSON_AddBoolToObject(root, "attention_bias", bias);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied_embeddings);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(root, "bos_token_id", c->bos_id);
    if (c->n_eos_ids == 1) cJSON_AddNumberToObject(root, "eos_token_id", c->eos_ids[0]);
    if (c->n_eos_ids > 1)
        cJSON_AddItemToObject(root, "eos_token_id", cJSON_CreateIntArray(c->eos_ids, c->n_eos_ids));
    char act[32];
    snprintf(act, sizeof act, "%.*s", (int)strcspn(a->hf_act, "|"), a->hf_act);
    cJSON_AddStringToObject(root, a->hf_act_key ? a->hf_act_key : "hidden_act", act);
    cJSON_AddStringToObject(root, "torch_dtype", sq_dtype_info(dtype)->torch_dtype);
    if (a->experts) {
        cJSON_AddNumberToObject(root, a->hf_experts_key, c->n_experts);
        cJSON_AddNumberToObject(root, "num_experts_per_tok", c->n_experts_used);
    }
    if (a->hf_moe_names == SQ_HF_MOE_QWEN) {
        cJSON_AddNumberToObject(root, "moe_intermediate_size", c->ffn_dim);
        cJSON_AddBoolToObject(root, "norm_topk_prob", c->expert_norm_topk);
        cJSON_AddNumberToObject(root, "decoder_sparse_step", 1);
        cJSON_AddItemToObject(root, "mlp_only_layers", cJSON_CreateArray());
    }
    if (a->shared_expert != SQ_PART_NEVER && m->layers)
        cJSON_AddNumberToObject(root, "shared_expert_intermediate_size", m->layers[0].shexp_dim);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    sq_out_file o;
    sq_error *err = sq_out_open(&o, path);
    if (!err) {
        sq_out_write(&o, text, strlen(text));
        sq_out_write(&o, "\n", 1);
        err = sq_out_close(&o, NULL);
    }
    free(text);
    return err;
}
