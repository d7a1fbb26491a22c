#include "formats/hf_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/out_file.h"

static const struct {
    const char *hf, *arch;
} architectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

typedef struct reader {
    const char *path;
    const cJSON *root;
} reader;

/* An integer field in [lo, hi]: *v is left alone when the field is absent or null and not required. */
static sq_error *get_int(const reader *r, const cJSON *obj, const char *key, int required, long lo, long hi,
                         int *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
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

static sq_error *get_float(const reader *r, const cJSON *obj, const char *key, int required, float *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        if (required) return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s is missing", r->path, key);
        return NULL;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be a number", r->path, key);
    *v = (float)item->valuedouble;
    return NULL;
}

static sq_error *get_bool(const reader *r, const char *key, int *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (!item || cJSON_IsNull(item)) return NULL;
    if (!cJSON_IsBool(item))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must be true or false", r->path, key);
    *v = cJSON_IsTrue(item);
    return NULL;
}

/* eos_token_id may be one id or a list of them (the first is the end of a turn). */
static sq_error *get_token_id(const reader *r, const char *key, int *v) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(r->root, key);
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) == 0) return NULL;
        item = cJSON_GetArrayItem(item, 0);
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < 0 ||
            item->valuedouble > (1 << 24))
            return sq_errorf(SQ_ERR_FORMAT, "%s: config field %s must hold token ids", r->path, key);
        *v = (int)item->valuedouble;
        return NULL;
    }
    return get_int(r, r->root, key, 0, 0, 1 << 24, v);
}

static sq_error *get_architecture(const reader *r, sq_model_config *c) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->root, "architectures");
    const cJSON *name = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, 0) : NULL;
    if (!cJSON_IsString(name))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: config field architectures (e.g. [\"LlamaForCausalLM\"]) is missing", r->path);
    for (size_t i = 0; i < sizeof architectures / sizeof *architectures; i++)
        if (!strcmp(name->valuestring, architectures[i].hf)) {
            snprintf(c->arch, sizeof c->arch, "%s", architectures[i].arch);
            return NULL;
        }
    return sq_errorf(SQ_ERR_UNSUPPORTED,
                     "%s: architecture %.64s is not supported (LlamaForCausalLM, MistralForCausalLM, "
                     "Qwen2ForCausalLM)",
                     r->path, name->valuestring);
}

static sq_error *get_rope_scaling(const reader *r, sq_model_config *c) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return NULL;
    if (!cJSON_IsObject(rs))
        return sq_errorf(SQ_ERR_FORMAT, "%s: config field rope_scaling must be an object", r->path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type)) return sq_errorf(SQ_ERR_FORMAT, "%s: rope_scaling has no rope_type", r->path);
    if (!strcmp(type->valuestring, "default")) return NULL;
    if (strcmp(type->valuestring, "llama3") != 0)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: rope_scaling type %.32s is not supported (llama3 is)",
                         r->path, type->valuestring);
    sq_rope_scaling *s = &c->rope_scaling;
    s->type = SQ_ROPE_SCALING_LLAMA3;
    SQ_TRY(get_float(r, rs, "factor", 1, &s->factor));
    SQ_TRY(get_float(r, rs, "low_freq_factor", 1, &s->low_freq_factor));
    SQ_TRY(get_float(r, rs, "high_freq_factor", 1, &s->high_freq_factor));
    SQ_TRY(get_int(r, rs, "original_max_position_embeddings", 1, 1, 1 << 24, &s->original_max_pos));
    if (!(s->factor >= 1) || !(s->low_freq_factor > 0) || !(s->high_freq_factor > s->low_freq_factor))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: rope_scaling needs factor >= 1 and 0 < low_freq_factor < high_freq_factor",
                         r->path);
    return NULL;
}

static sq_error *parse(const reader *r, sq_model_config *c, sq_hf_flags *flags) {
    const int big = 1 << 24;
    SQ_TRY(get_architecture(r, c));
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
    c->rope_theta = 10000.0f;
    SQ_TRY(get_float(r, r->root, "rope_theta", 0, &c->rope_theta));
    SQ_TRY(get_rope_scaling(r, c));
    c->sliding_window = 0;
    const int qwen2 = !strcmp(c->arch, "qwen2");
    if (!strcmp(c->arch, "mistral")) {
        SQ_TRY(get_int(r, r->root, "sliding_window", 0, 0, big, &c->sliding_window));
    } else if (qwen2) {
        int use = 0;
        SQ_TRY(get_bool(r, "use_sliding_window", &use));
        if (use)
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: Qwen2 use_sliding_window (per-layer windows) is not supported", r->path);
    }
    flags->tie_word_embeddings = 0;
    SQ_TRY(get_bool(r, "tie_word_embeddings", &flags->tie_word_embeddings));
    flags->attention_bias = qwen2;
    if (!qwen2) SQ_TRY(get_bool(r, "attention_bias", &flags->attention_bias));
    c->bos_id = c->eos_id = -1;
    SQ_TRY(get_token_id(r, "bos_token_id", &c->bos_id));
    SQ_TRY(get_token_id(r, "eos_token_id", &c->eos_id));
    c->rope_style = SQ_ROPE_HALVES;
    return NULL;
}

sq_error *sq_hf_config_parse(const char *path, const char *text, size_t len, sq_model_config *c,
                             sq_hf_flags *flags) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_FORMAT, "%s: not a JSON object", path);
    }
    reader r = {path, root};
    sq_error *err = parse(&r, c, flags);
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
    const char *hf = NULL;
    for (size_t i = 0; i < sizeof architectures / sizeof *architectures; i++)
        if (!strcmp(c->arch, architectures[i].arch)) hf = architectures[i].hf;
    if (!hf) return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: no Hugging Face architecture for %s", path, c->arch);
    const int qwen2 = !strcmp(c->arch, "qwen2"), mistral = !strcmp(c->arch, "mistral");
    const int bias = sq_model_find_tensor(m, "blk.0." SQ_NAME_ATTN_Q_BIAS) != NULL;
    if (qwen2 && !bias)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: a Qwen2 checkpoint needs q/k/v biases, this model has none",
                         path);
    cJSON *root = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(hf));
    cJSON_AddStringToObject(root, "model_type", c->arch);
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
    if (c->rope_scaling.type == SQ_ROPE_SCALING_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", shortest(c->rope_scaling.factor));
        cJSON_AddNumberToObject(rs, "low_freq_factor", shortest(c->rope_scaling.low_freq_factor));
        cJSON_AddNumberToObject(rs, "high_freq_factor", shortest(c->rope_scaling.high_freq_factor));
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_scaling.original_max_pos);
    } else {
        cJSON_AddNullToObject(root, "rope_scaling");
    }
    if (mistral) {
        if (c->sliding_window > 0)
            cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        else
            cJSON_AddNullToObject(root, "sliding_window");
    } else if (qwen2) {
        cJSON_AddFalseToObject(root, "use_sliding_window");
    } else if (c->sliding_window > 0) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: a llama checkpoint cannot hold a sliding window", path);
    }
    if (!qwen2) cJSON_AddBoolToObject(root, "attention_bias", bias);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied_embeddings);
    if (c->bos_id >= 0) cJSON_AddNumberToObject(root, "bos_token_id", c->bos_id);
    if (c->eos_id >= 0) cJSON_AddNumberToObject(root, "eos_token_id", c->eos_id);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddStringToObject(root, "torch_dtype", sq_dtype_info(dtype)->torch_dtype);
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
