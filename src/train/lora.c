/* LoRA adapters in PEFT's files (adapter_model.safetensors + adapter_config.json), and folding adapters into
 * a model's weights. PEFT's conventions (peft/tuners/lora): keys
 * base_model.model.model.layers.N.<module>.lora_A.weight [r][in] and .lora_B.weight [out][r], the layer's
 * output W x + scaling * B A x with scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora). Hugging
 * Face checkpoints rotate halves in RoPE, so q/k rows (B's rows) are stored in that order, converted from and
 * to the model's pairing as a checkpoint conversion does (formats/rope_permute.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/rope_permute.h"
#include "formats/safetensors.h"
#include "train/trainer.h"

#define PEFT_PREFIX "base_model.model.model.layers."

static const char *const short_names[TR_N_LINEAR] = {"q", "k", "v", "o", "gate", "up", "down"};

/* Which linear layer a target name means: q / q_proj / self_attn.q_proj; -1 when none. */
static int target_index(const char *name, size_t len) {
    for (int i = 0; i < TR_N_LINEAR; i++) {
        const char *peft = tr_linear_peft[i], *dot = strchr(peft, '.') + 1;
        size_t ls = strlen(short_names[i]);
        if ((len == ls && !strncmp(name, short_names[i], len)) ||
            (len == strlen(dot) && !strncmp(name, dot, len)) ||
            (len == strlen(peft) && !strncmp(name, peft, len)))
            return i;
    }
    return -1;
}

SQ_NODISCARD sq_error *sq_lora_parse_targets(const char *list, unsigned *targets) {
    *targets = 0;
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int i = target_index(p, len);
        if (i < 0)
            return sq_errorf(SQ_ERR_INVALID_ARG, "LoRA target '%.*s' is none of q,k,v,o,gate,up,down",
                             (int)len, p);
        *targets |= 1u << i;
        p += len + (e ? 1 : 0);
    }
    if (!*targets) return sq_errorf(SQ_ERR_INVALID_ARG, "no LoRA target given");
    return NULL;
}

/* Adapters of every (layer, linear) in the model's row order: a[l * TR_N_LINEAR + i], NULL when absent. */
typedef struct adapter_set {
    int n_layers, rank;
    float scale;
    float **a, **b;
} adapter_set;

/* W += scale * B A for every adapter, each block's changed tensors stored back in their own formats. */
static SQ_NODISCARD sq_error *merge_set(sq_model *model, const adapter_set *s) {
    sq_error *err = NULL;
    for (int l = 0; l < s->n_layers && !err; l++) {
        sq_tensor_edit edits[TR_N_LINEAR];
        float *vals[TR_N_LINEAR] = {0};
        char names[TR_N_LINEAR][64];
        int n_edits = 0;
        for (int i = 0; i < TR_N_LINEAR && !err; i++) {
            const float *a = s->a[l * TR_N_LINEAR + i], *b = s->b[l * TR_N_LINEAR + i];
            if (!a) continue;
            snprintf(names[i], sizeof names[i], "blk.%d.%s", l, tr_linear_gguf[i]);
            const sq_tensor *t = sq_model_find_tensor(model, names[i]);
            int64_t out = t->shape[0], in = t->shape[1];
            if (!(vals[i] = malloc((size_t)(out * in) * sizeof(float)))) {
                err = sq_errorf(SQ_ERR_NOMEM, "LoRA merge: out of memory for %s", names[i]);
                break;
            }
            if ((err = sq_model_read_tensor(model, names[i], vals[i], out * in))) break;
            for (int64_t r = 0; r < out; r++)
                for (int k = 0; k < s->rank; k++) {
                    float c = s->scale * b[r * s->rank + k];
                    const float *ak = a + (int64_t)k * in;
                    float *w = vals[i] + r * in;
                    for (int64_t j = 0; j < in; j++) w[j] += c * ak[j];
                }
            edits[n_edits++] = (sq_tensor_edit){.name = names[i], .values = vals[i]};
        }
        if (!err && n_edits) err = sq_model_edit_tensors(model, edits, n_edits);
        for (int i = 0; i < TR_N_LINEAR; i++) free(vals[i]);
    }
    return err;
}

/* The trainer's adapters as a set; the caller frees s->a and s->b whatever the outcome. */
static SQ_NODISCARD sq_error *trainer_set(const sq_trainer *t, adapter_set *s) {
    s->n_layers = t->n_layers;
    s->rank = t->rank;
    s->scale = t->alpha / (float)t->rank;
    s->a = calloc((size_t)t->n_layers * TR_N_LINEAR, sizeof *s->a);
    s->b = calloc((size_t)t->n_layers * TR_N_LINEAR, sizeof *s->b);
    if (!s->a || !s->b) return sq_errorf(SQ_ERR_NOMEM, "LoRA: out of memory");
    for (int l = 0; l < t->n_layers; l++)
        for (int i = 0; i < TR_N_LINEAR; i++) {
            s->a[l * TR_N_LINEAR + i] = t->layers[l].lin[i].a;
            s->b[l * TR_N_LINEAR + i] = t->layers[l].lin[i].b;
        }
    return NULL;
}

SQ_NODISCARD sq_error *sq_trainer_merge(const sq_trainer *t, sq_model *model) {
    if (!t->rank) return sq_errorf(SQ_ERR_INVALID_ARG, "LoRA merge: the trainer has no adapters");
    if (sq_model_has_lowrank(model))
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "LoRA merge: the model has low-rank (factorised) linear weights");
    if (model->cfg.n_layers != t->n_layers || model->cfg.dim != t->dim)
        return sq_errorf(SQ_ERR_INVALID_ARG, "LoRA merge: the model's shape is not the trainer's");
    adapter_set s = {0};
    sq_error *err = trainer_set(t, &s);
    if (!err) err = merge_set(model, &s);
    free(s.a), free(s.b);
    return err;
}

/* ---------------------------------------------------------------- writing PEFT files */

typedef struct save_job {
    const sq_trainer *t;
    int *layer, *lin, *is_b; /* [n] */
} save_job;

static SQ_NODISCARD sq_error *fetch_adapter(void *user, int k, const void **data, void **scratch) {
    const save_job *j = user;
    const tr_linear *li = &j->t->layers[j->layer[k]].lin[j->lin[k]];
    if (!j->is_b[k]) {
        *data = li->a;
        return NULL;
    }
    const int rot = j->lin[k] == TR_Q || j->lin[k] == TR_K;
    if (!rot || j->t->cfg.rope_style == SQ_ROPE_HALVES) {
        *data = li->b;
        return NULL;
    }
    float *b = malloc((size_t)li->out * j->t->rank * sizeof *b);
    if (!b) return sq_errorf(SQ_ERR_NOMEM, "LoRA save: out of memory");
    sq_rope_permute_rows(li->b, b, li->out, (size_t)j->t->rank * sizeof(float), j->t->head_dim,
                         j->t->cfg.rope_dims, j->t->cfg.rope_style, SQ_ROPE_HALVES);
    *data = *scratch = b;
    return NULL;
}

static SQ_NODISCARD sq_error *write_config(const sq_trainer *t, const char *path) {
    cJSON *c = cJSON_CreateObject(), *mods = cJSON_CreateArray();
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(c, "r", t->rank);
    cJSON_AddNumberToObject(c, "lora_alpha", t->alpha);
    cJSON_AddNumberToObject(c, "lora_dropout", 0.0);
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddBoolToObject(c, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(c, "use_rslora", 0);
    cJSON_AddBoolToObject(c, "use_dora", 0);
    cJSON_AddBoolToObject(c, "inference_mode", 1);
    for (int i = 0; i < TR_N_LINEAR; i++)
        if (t->targets & (1u << i))
            cJSON_AddItemToArray(mods, cJSON_CreateString(strchr(tr_linear_peft[i], '.') + 1));
    cJSON_AddItemToObject(c, "target_modules", mods);
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    if (!text) return sq_errorf(SQ_ERR_NOMEM, "LoRA save: out of memory");
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok = fclose(f) == 0 && ok;
    free(text);
    return ok ? NULL : sq_errorf(SQ_ERR_IO, "cannot write %s", path);
}

SQ_NODISCARD sq_error *sq_trainer_save_adapter(const sq_trainer *t, const char *dir) {
    if (!t->rank) return sq_errorf(SQ_ERR_INVALID_ARG, "LoRA save: the trainer has no adapters");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return sq_errorf(SQ_ERR_IO, "cannot create directory %s", dir);
    const int n = t->n_params;
    sq_st_tensor *ts = calloc((size_t)n, sizeof *ts);
    char(*names)[128] = calloc((size_t)n, sizeof *names);
    int64_t(*shapes)[2] = calloc((size_t)n, sizeof *shapes);
    save_job j = {t, calloc((size_t)n, sizeof(int)), calloc((size_t)n, sizeof(int)),
                  calloc((size_t)n, sizeof(int))};
    sq_error *err = NULL;
    if (!ts || !names || !shapes || !j.layer || !j.lin || !j.is_b) {
        err = sq_errorf(SQ_ERR_NOMEM, "LoRA save: out of memory");
        goto done;
    }
    int k = 0;
    for (int l = 0; l < t->n_layers; l++)
        for (int i = 0; i < TR_N_LINEAR; i++) {
            const tr_linear *li = &t->layers[l].lin[i];
            if (!li->a) continue;
            for (int isb = 0; isb < 2; isb++, k++) {
                snprintf(names[k], sizeof names[k], PEFT_PREFIX "%d.%s.lora_%c.weight", l, tr_linear_peft[i],
                         isb ? 'B' : 'A');
                shapes[k][0] = isb ? li->out : t->rank;
                shapes[k][1] = isb ? t->rank : li->in;
                ts[k] = (sq_st_tensor){names[k], SQ_DTYPE_F32, 2, shapes[k],
                                       (size_t)(shapes[k][0] * shapes[k][1]) * sizeof(float)};
                j.layer[k] = l, j.lin[k] = i, j.is_b[k] = isb;
            }
        }
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!(err = sq_st_write(path, ts, n, fetch_adapter, &j))) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        err = write_config(t, path);
    }
done:
    free(ts), free(names), free(shapes), free(j.layer), free(j.lin), free(j.is_b);
    return err;
}

/* ---------------------------------------------------------------- reading PEFT files */

static SQ_NODISCARD sq_error *read_config(const char *path, int *rank, float *scale) {
    char *text;
    size_t len;
    SQ_TRY(sq_read_file(path, 1 << 20, &text, &len));
    cJSON *c = cJSON_ParseWithLength(text, len);
    free(text);
    if (!c) return sq_errorf(SQ_ERR_FORMAT, "%s: not valid JSON", path);
    sq_error *err = NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha");
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(c, "bias");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA"))
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: peft_type is not \"LORA\"", path);
    else if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 4096 ||
             r->valuedouble != (int)r->valuedouble)
        err = sq_errorf(SQ_ERR_FORMAT, "%s: r must be an integer in [1, 4096]", path);
    else if (!cJSON_IsNumber(alpha) || !isfinite(alpha->valuedouble))
        err = sq_errorf(SQ_ERR_FORMAT, "%s: lora_alpha must be a number", path);
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_dora")))
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: use_dora (DoRA) is not supported", path);
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "fan_in_fan_out")))
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: fan_in_fan_out (Conv1D layers) is not supported", path);
    else if (bias && !(cJSON_IsString(bias) && !strcmp(bias->valuestring, "none")))
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: bias must be \"none\"", path);
    else {
        *rank = (int)r->valuedouble;
        int rs = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_rslora"));
        *scale = (float)(alpha->valuedouble / (rs ? sqrt(*rank) : *rank));
    }
    cJSON_Delete(c);
    return err;
}

/* "base_model.model.model.layers.N.<module>.lora_A.weight" -> layer, linear, B or not; 0 on another name. */
static int parse_key(const char *name, int *layer, int *lin, int *is_b) {
    if (strncmp(name, PEFT_PREFIX, strlen(PEFT_PREFIX))) return 0;
    const char *p = name + strlen(PEFT_PREFIX);
    char *end;
    long l = strtol(p, &end, 10);
    if (end == p || *end != '.' || l < 0 || l > 1 << 20) return 0;
    p = end + 1;
    const char *suffix = strstr(p, ".lora_");
    if (!suffix || (strcmp(suffix, ".lora_A.weight") && strcmp(suffix, ".lora_B.weight"))) return 0;
    int i = target_index(p, (size_t)(suffix - p));
    if (i < 0) return 0;
    *layer = (int)l, *lin = i, *is_b = suffix[6] == 'B';
    return 1;
}

SQ_NODISCARD sq_error *sq_model_apply_lora(sq_model *model, const char *path) {
    char st_path[4096], cfg_path[4096];
    size_t len = strlen(path);
    if (len > 12 && !strcmp(path + len - 12, ".safetensors")) {
        snprintf(st_path, sizeof st_path, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(cfg_path, sizeof cfg_path, "%.*sadapter_config.json", slash ? (int)(slash - path + 1) : 0,
                 path);
    } else {
        snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", path);
        snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", path);
    }
    if (sq_model_has_lowrank(model))
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: cannot apply a LoRA adapter to low-rank (factorised) linear weights; apply it to "
            "the dense model",
            path);
    adapter_set s = {.n_layers = model->cfg.n_layers};
    SQ_TRY(read_config(cfg_path, &s.rank, &s.scale));
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(st_path, &f));
    sq_st_file *st = NULL;
    sq_error *err = sq_st_parse(f, &st);
    s.a = calloc((size_t)s.n_layers * TR_N_LINEAR, sizeof *s.a);
    s.b = calloc((size_t)s.n_layers * TR_N_LINEAR, sizeof *s.b);
    if (!err && (!s.a || !s.b)) err = sq_errorf(SQ_ERR_NOMEM, "LoRA: out of memory");
    for (int e = 0; !err && e < st->n_entries; e++) {
        const sq_st_entry *en = &st->entries[e];
        int l, i, is_b;
        if (!parse_key(en->name, &l, &i, &is_b)) {
            err =
                sq_errorf(SQ_ERR_UNSUPPORTED, "%s: tensor %s is no LoRA A/B of a Llama block's linear layer",
                          st_path, en->name);
            break;
        }
        if (l >= s.n_layers) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: %s names layer %d; the model has %d", st_path, en->name, l,
                            s.n_layers);
            break;
        }
        const sq_layer *L = &model->layers[l];
        const sq_tensor *w[TR_N_LINEAR] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        int64_t want0 = is_b ? w[i]->shape[0] : s.rank, want1 = is_b ? s.rank : w[i]->shape[1];
        const sq_dtype_traits *dt = en->dtype >= 0 ? sq_dtype_info(en->dtype) : NULL;
        if (en->ndim != 2 || en->shape[0] != want0 || en->shape[1] != want1) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: %s should be [%lld, %lld] (r = %d)", st_path, en->name,
                            (long long)want0, (long long)want1, s.rank);
            break;
        }
        if (!dt || dt->block_elems != 1 || !dt->safetensors) {
            err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: %s has dtype %s (F32, F16 or BF16 expected)", st_path,
                            en->name, en->dtype_name);
            break;
        }
        float **slot = is_b ? &s.b[l * TR_N_LINEAR + i] : &s.a[l * TR_N_LINEAR + i];
        if (*slot) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: %s appears twice", st_path, en->name);
            break;
        }
        int64_t n = want0 * want1;
        float *v = malloc((size_t)n * sizeof *v);
        if (!v) {
            err = sq_errorf(SQ_ERR_NOMEM, "LoRA: out of memory");
            break;
        }
        dt->to_f32(en->data, v, n);
        if (is_b && (i == TR_Q || i == TR_K) && model->cfg.rope_style != SQ_ROPE_HALVES) {
            float *p = malloc((size_t)n * sizeof *p);
            if (!p) {
                free(v);
                err = sq_errorf(SQ_ERR_NOMEM, "LoRA: out of memory");
                break;
            }
            sq_rope_permute_rows(v, p, want0, (size_t)s.rank * sizeof(float), model->cfg.head_dim,
                                 model->cfg.rope_dims, SQ_ROPE_HALVES, model->cfg.rope_style);
            free(v);
            v = p;
        }
        *slot = v;
    }
    for (int k = 0; !err && k < s.n_layers * TR_N_LINEAR; k++)
        if (!s.a[k] != !s.b[k])
            err = sq_errorf(SQ_ERR_FORMAT, "%s: layer %d %s has lora_%c without lora_%c", st_path,
                            k / TR_N_LINEAR, tr_linear_peft[k % TR_N_LINEAR], s.a[k] ? 'A' : 'B',
                            s.a[k] ? 'B' : 'A');
    if (!err) err = merge_set(model, &s);
    for (int k = 0; s.a && s.b && k < s.n_layers * TR_N_LINEAR; k++) free(s.a[k]), free(s.b[k]);
    free(s.a), free(s.b);
    sq_st_free(st);
    sq_mapped_file_close(f);
    return err;
}
