/* Hugging Face checkpoint directories: config.json, the weights in model.safetensors or in shards listed by
 * model.safetensors.index.json, tokenizer.json (or tokenizer.model) and generation_config.json's stop ids.
 * Weights are used in place from the mapped shards. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/array.h"
#include "core/error.h"
#include "formats/formats.h"
#include "formats/fused_tensors.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "formats/tensor_io.h"
#include "formats/tensor_names.h"
#include "tokenizer/tokenizer.h"

#define INDEX_JSON  "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"

static SQ_NODISCARD sq_error *join(const char *dir, const char *name, char *out, size_t n) {
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s/%s: path too long", dir, name);
    return NULL;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The shard each tensor of a sharded checkpoint lives in, sorted by tensor name. */
typedef struct shard_entry {
    const char *tensor, *file;
    int found;
} shard_entry;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const shard_entry *)a)->tensor, ((const shard_entry *)b)->tensor);
}

/* One expert's matrix, kept until every shard is read and the block's experts are stacked into one tensor. */
typedef struct expert_piece {
    char name[SQ_TENSOR_NAME_MAX]; /* the 3-D tensor's canonical name */
    char hf[128];                  /* this matrix's own name, for errors */
    int expert;
    sq_dtype dtype;
    int64_t shape[2];
    const void *data; /* in the mapped shard */
    size_t nbytes;
} expert_piece;

typedef struct load_state {
    sq_model *m;
    const sq_arch *arch; /* the config's architecture */
    sq_hf_flags flags;
    shard_entry *map; /* NULL for a single-file checkpoint */
    int n_map;
    expert_piece *pieces; /* [n_pieces] */
    int n_pieces;
    size_t cap_pieces;
} load_state;

static int cmp_piece(const void *a, const void *b) {
    const expert_piece *x = a, *y = b;
    const int c = strcmp(x->name, y->name);
    return c ? c : (x->expert > y->expert) - (x->expert < y->expert);
}

/* Each block's expert matrices as one [n_experts][rows][cols] tensor in host memory (GGUF's layout; the
 * shards hold them apart), every expert present once, all of one shape and dtype. */
static SQ_NODISCARD sq_error *stack_experts(load_state *s, const char *dir) {
    const int E = s->m->cfg.n_experts;
    if (s->n_pieces) qsort(s->pieces, (size_t)s->n_pieces, sizeof *s->pieces, cmp_piece);
    for (int i = 0, j; i < s->n_pieces; i = j) {
        const expert_piece *p = &s->pieces[i];
        for (j = i; j < s->n_pieces && !strcmp(s->pieces[j].name, p->name); j++) {
            const expert_piece *q = &s->pieces[j];
            if (q->expert >= E)
                return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is expert %d but config field %s is %d", dir,
                                 q->hf, q->expert, s->arch->hf_experts_key, E);
            if (q->expert != j - i)
                return sq_errorf(SQ_ERR_FORMAT, "%s: expert %d of %s is %s (config field %s = %d)", dir,
                                 j - i, p->name, q->expert < j - i ? "given twice" : "missing",
                                 s->arch->hf_experts_key, E);
            if (q->dtype != p->dtype || q->shape[0] != p->shape[0] || q->shape[1] != p->shape[1])
                return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s differs in shape or dtype from %s", dir, q->hf,
                                 p->hf);
        }
        if (j - i != E)
            return sq_errorf(SQ_ERR_FORMAT, "%s: %s has %d experts' matrices but config field %s is %d", dir,
                             p->name, j - i, s->arch->hf_experts_key, E);
        const size_t total = p->nbytes * (size_t)E;
        char *data = sq_model_host_alloc(total);
        if (!data) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory stacking %s", dir, p->name);
        for (int e = 0; e < E; e++) memcpy(data + (size_t)e * p->nbytes, s->pieces[i + e].data, p->nbytes);
        const int64_t shape[3] = {E, p->shape[0], p->shape[1]};
        sq_error *err = sq_model_add_tensor(s->m, p->name, p->dtype, 3, shape, data, total, SQ_STORAGE_HOST);
        if (err) {
            free(data);
            return sq_error_wrap(err, "%s", dir);
        }
    }
    return NULL;
}

/* Keeps one expert's matrix for stack_experts. */
static SQ_NODISCARD sq_error *add_piece(load_state *s, const char *path, const sq_st_entry *e,
                                        const char *name, int expert) {
    if (e->dtype < 0)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: tensor %.96s has dtype %s (F32, F16 and BF16 are supported)", path, e->name,
                         e->dtype_name);
    if (e->ndim != 2)
        return sq_errorf(SQ_ERR_FORMAT, "%s: expert tensor %.96s is not a matrix", path, e->name);
    if (SQ_ARRAY_RESERVE(s->pieces, s->cap_pieces, (size_t)s->n_pieces + 1))
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    expert_piece *p = &s->pieces[s->n_pieces++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->hf, sizeof p->hf, "%s", e->name);
    p->expert = expert;
    p->dtype = (sq_dtype)e->dtype;
    p->shape[0] = e->shape[0], p->shape[1] = e->shape[1];
    p->data = e->data;
    p->nbytes = e->nbytes;
    return NULL;
}

static SQ_NODISCARD sq_error *load_shard(load_state *s, const char *dir, const char *file) {
    char path[4096];
    SQ_TRY(join(dir, file, path, sizeof path));
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(path, &f));
    SQ_TRY(sq_model_keep_file(s->m, f));
    sq_st_file *st;
    SQ_TRY(sq_st_parse(f, &st));
    sq_error *err = NULL;
    for (int i = 0; i < st->n_entries && !err; i++) {
        const sq_st_entry *e = &st->entries[i];
        if (s->map) {
            shard_entry key = {e->name, NULL, 0};
            shard_entry *hit = bsearch(&key, s->map, (size_t)s->n_map, sizeof *s->map, cmp_entry);
            if (!hit || strcmp(hit->file, file) != 0) {
                err = sq_errorf(SQ_ERR_FORMAT, "%s: tensor %.96s is not listed for this shard in %s", path,
                                e->name, INDEX_JSON);
                break;
            }
            hit->found = 1;
        }
        char name[SQ_TENSOR_NAME_MAX];
        int expert;
        if (sq_hf_expert_to_canonical(s->arch, e->name, name, sizeof name, &expert)) {
            err = sq_canonical_name_valid(name, s->m->cfg.n_layers)
                      ? add_piece(s, path, e, name, expert)
                      : sq_errorf(SQ_ERR_UNSUPPORTED,
                                  "%s: unexpected tensor %.96s in a %s checkpoint with %d layers", path,
                                  e->name, s->m->cfg.arch, s->m->cfg.n_layers);
            continue;
        }
        int kind = sq_hf_to_canonical(s->arch, e->name, name, sizeof name);
        const sq_model_config *c = &s->m->cfg;
        const int fused = kind > 0 && sq_fused_name_valid(name, c->n_layers);
        if (kind == 0) continue;
        if (kind < 0 || !(fused || sq_canonical_name_valid(name, c->n_layers))) {
            err =
                sq_errorf(SQ_ERR_UNSUPPORTED, "%s: unexpected tensor %.96s in a %s checkpoint with %d layers",
                          path, e->name, s->m->cfg.arch, s->m->cfg.n_layers);
        } else if (s->flags.tie_word_embeddings && !strcmp(name, SQ_NAME_OUTPUT)) {
            continue; /* some tied checkpoints store a copy of the embedding; the config says to share it */
        } else if (e->dtype < 0) {
            err = sq_errorf(SQ_ERR_UNSUPPORTED,
                            "%s: tensor %.96s has dtype %s (F32, F16 and BF16 are supported)", path, e->name,
                            e->dtype_name);
        } else if (e->ndim == 0) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tensor %.96s is a scalar", path, e->name);
        } else if (fused) {
            err = sq_import_fused(s->m, path, name, (sq_dtype)e->dtype, e->ndim, e->shape, e->data, e->nbytes,
                                  c->n_heads, c->n_kv_heads, c->ffn_dim);
        } else {
            const float offset = sq_is_norm_weight(name) ? s->arch->hf_norm_offset : 0;
            err = sq_import_tensor(s->m, path, name, (sq_dtype)e->dtype, e->ndim, e->shape, e->data,
                                   e->nbytes, offset);
        }
    }
    sq_st_free(st);
    return err;
}

static SQ_NODISCARD sq_error *load_sharded(load_state *s, const char *dir, const char *index_path) {
    char *text;
    size_t len;
    SQ_TRY(sq_read_file(index_path, 64u << 20, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    sq_error *err = NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_FORMAT, "%s: not a JSON object with a weight_map", index_path);
    }
    int n = cJSON_GetArraySize(wm), i = 0;
    s->map = calloc((size_t)(n ? n : 1), sizeof *s->map);
    if (!s->map) err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", index_path);
    for (const cJSON *item = wm->child; item && !err; item = item->next, i++) {
        const char *file = cJSON_GetStringValue(item);
        /* shard names are plain file names in the same directory */
        if (!file || !*file || strchr(file, '/') || file[0] == '.')
            err = sq_errorf(SQ_ERR_FORMAT,
                            "%s: weight_map entry %.96s does not name a shard file in the directory",
                            index_path, item->string);
        else
            s->map[i] = (shard_entry){item->string, file, 0};
    }
    s->n_map = i;
    if (!err) qsort(s->map, (size_t)s->n_map, sizeof *s->map, cmp_entry);
    for (int k = 1; k < s->n_map && !err; k++)
        if (!strcmp(s->map[k - 1].tensor, s->map[k].tensor))
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tensor %.96s is listed twice", index_path, s->map[k].tensor);
    /* load each distinct shard once */
    const char **loaded = calloc((size_t)(n ? n : 1), sizeof *loaded);
    int n_loaded = 0;
    if (!loaded && !err) err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", index_path);
    for (int k = 0; k < s->n_map && !err; k++) {
        int seen = 0;
        for (int j = 0; j < n_loaded && !seen; j++) seen = !strcmp(loaded[j], s->map[k].file);
        if (seen) continue;
        loaded[n_loaded++] = s->map[k].file;
        err = sq_error_wrap(load_shard(s, dir, s->map[k].file), "%s", index_path);
    }
    free(loaded);
    for (int k = 0; k < s->n_map && !err; k++)
        if (!s->map[k].found)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tensor %.96s is missing from shard %s", index_path,
                            s->map[k].tensor, s->map[k].file);
    free(s->map);
    s->map = NULL;
    cJSON_Delete(root);
    return err;
}

static SQ_NODISCARD sq_error *check_tensors(const load_state *s, const char *dir) {
    const sq_model *m = s->m;
    SQ_TRY(sq_check_layer_shapes(m, dir, NULL));
    if (!s->flags.tie_word_embeddings && !sq_model_find_tensor(m, SQ_NAME_OUTPUT))
        return sq_errorf(SQ_ERR_FORMAT, "%s: lm_head.weight is missing and tie_word_embeddings is false",
                         dir);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        char name[SQ_TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "blk.%d.%s", l, SQ_NAME_ATTN_Q);
        if (!sq_model_find_tensor(m, name)) continue; /* a missing layer is reported by sq_model_bind */
        snprintf(name, sizeof name, "blk.%d.%s", l, SQ_NAME_ATTN_Q_BIAS);
        int has = sq_model_find_tensor(m, name) != NULL;
        if (has != s->flags.attention_bias)
            return sq_errorf(SQ_ERR_FORMAT,
                             "%s: layer %d %s q/k/v biases but the config says attention_bias=%s", dir, l,
                             has ? "has" : "lacks", s->flags.attention_bias ? "true" : "false");
    }
    return NULL;
}

/* The tensors of model.safetensors or of the shards the index lists, experts stacked. */
static SQ_NODISCARD sq_error *load_weights(load_state *s, const char *dir) {
    char path[4096];
    SQ_TRY(join(dir, INDEX_JSON, path, sizeof path));
    if (file_exists(path)) {
        SQ_TRY(load_sharded(s, dir, path));
    } else {
        SQ_TRY(join(dir, SINGLE_FILE, path, sizeof path));
        if (!file_exists(path))
            return sq_errorf(SQ_ERR_IO, "%s: no %s or %s (only safetensors checkpoints are supported)", dir,
                             SINGLE_FILE, INDEX_JSON);
        SQ_TRY(load_shard(s, dir, SINGLE_FILE));
    }
    return stack_experts(s, dir);
}

sq_error *sq_hf_load(const char *dir, sq_model *m) {
    char path[4096];
    SQ_TRY(join(dir, "config.json", path, sizeof path));
    char *text;
    size_t len;
    SQ_TRY(sq_read_file(path, 4u << 20, &text, &len));
    load_state s = {.m = m};
    sq_error *err = sq_hf_config_parse(path, text, len, &m->cfg, &s.flags, &m->warnings);
    free(text);
    SQ_TRY(err);
    s.arch = sq_arch_find(m->cfg.arch); /* the config parser accepts only the table's architectures */
    snprintf(m->file_format, sizeof m->file_format, "safetensors");
    /* generation_config.json may name more stop ids than config.json (chat models' end-of-turn tokens) */
    SQ_TRY(join(dir, "generation_config.json", path, sizeof path));
    if (file_exists(path)) {
        if ((err = sq_read_file(path, 4u << 20, &text, &len))) { /* it only adds stop ids: do without it */
            sq_error *w = sq_warn(&m->warnings, "%s; ignored", sq_error_message(err));
            sq_error_free(err);
            SQ_TRY(w);
        } else {
            err = sq_hf_generation_config_parse(path, text, len, &m->cfg, &m->warnings);
            free(text);
            SQ_TRY(err);
        }
    }

    err = load_weights(&s, dir);
    free(s.pieces);
    SQ_TRY(err);
    SQ_TRY(check_tensors(&s, dir));

    SQ_TRY(join(dir, "tokenizer.json", path, sizeof path));
    if (!file_exists(path)) SQ_TRY(join(dir, "tokenizer.model", path, sizeof path));
    if (file_exists(path)) SQ_TRY(sq_tokenizer_load(path, &m->tokenizer));
    return NULL;
}

/* ---------------------------------------------------------------- writing */

typedef struct save_state {
    const sq_model *m;
    const sq_arch *arch;
    const sq_file_tensor **tensors; /* [entries] the file tensor each entry of the file comes from */
    int *expert; /* [entries] the expert matrix it is of a 3-D expert tensor; -1: all of it */
} save_state;

static SQ_NODISCARD sq_error *fetch(void *user, int i, const void **data, void **scratch) {
    const save_state *s = user;
    const sq_file_tensor *t = s->tensors[i];
    sq_export_buf buf;
    SQ_TRY(sq_export_file_tensor(s->m, t, -1, SQ_ROPE_HALVES, &buf));
    if (s->arch->hf_norm_offset != 0 && sq_is_norm_weight(t->name)) { /* norms are f32 (sq_model_bind) */
        float *w = malloc(buf.nbytes ? buf.nbytes : 1);
        if (!w) {
            sq_export_release(&buf);
            return sq_errorf(SQ_ERR_NOMEM, "out of memory preparing tensor %s", t->name);
        }
        for (size_t k = 0; k < buf.nbytes / sizeof *w; k++)
            w[k] = ((const float *)buf.data)[k] - s->arch->hf_norm_offset;
        sq_export_release(&buf);
        buf = (sq_export_buf){.data = w, .nbytes = t->nbytes, .dtype = SQ_DTYPE_F32, .owned = w};
    }
    *data = buf.data;
    if (s->expert[i] >= 0) *data = (const char *)buf.data + (size_t)s->expert[i] * (t->nbytes / t->shape[0]);
    *scratch = buf.owned;
    return NULL;
}

static SQ_NODISCARD sq_error *make_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return sq_errorf(SQ_ERR_IO, "%s: exists and is not a directory", dir);
        return NULL;
    }
    if (mkdir(dir, 0755) != 0)
        return sq_errorf(SQ_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    return NULL;
}

sq_error *sq_hf_save(const sq_model *m, const char *dir) {
    size_t bytes[SQ_DTYPE_COUNT] = {0};
    /* refused rather than multiplied back out, which would silently give up the factorisation's savings */
    if (sq_model_has_lowrank(m))
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: transformers' Llama-family checkpoints have no low-rank (factorised) linear "
                         "layers; write GGUF (squeeze's own low-rank tensors) instead",
                         dir);
    for (int i = 0; i < m->n_tensors; i++) {
        const sq_tensor *t = m->tensors[i];
        if (!sq_dtype_info(t->dtype)->safetensors)
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: safetensors cannot hold %s tensor %s; convert to GGUF instead (or from an "
                             "unquantized model)",
                             dir, sq_dtype_info(t->dtype)->name, t->name);
        if (t->ndim >= 2) bytes[t->dtype] += t->nbytes;
    }
    /* transformers' Llama, Mistral and Qwen2 configs have one width of each kind for all layers */
    static const sq_width_names hf_names = {"num_attention_heads", "num_key_value_heads",
                                            "intermediate_size"};
    SQ_TRY(sq_check_uniform_layers(m, dir, "Hugging Face config.json", &hf_names));
    sq_dtype main_dtype = SQ_DTYPE_F32;
    for (int d = 0; d < SQ_DTYPE_COUNT; d++)
        if (bytes[d] > bytes[main_dtype]) main_dtype = (sq_dtype)d;

    SQ_TRY(make_dir(dir));
    char path[4096];
    SQ_TRY(join(dir, INDEX_JSON, path, sizeof path));
    if (file_exists(path))
        return sq_errorf(SQ_ERR_IO, "%s: already holds a sharded checkpoint (%s); choose an empty directory",
                         dir, INDEX_JSON);
    SQ_TRY(join(dir, "config.json", path, sizeof path));
    SQ_TRY(sq_hf_config_write(m, main_dtype, path));

    const sq_arch *arch = sq_arch_find(m->cfg.arch);
    sq_file_tensor *files;
    int n_files;
    SQ_TRY(sq_file_tensors(m, arch, dir, &files, &n_files));
    /* a 3-D expert tensor is written as one matrix per expert, as transformers names them */
    size_t n = 0;
    for (int i = 0; i < n_files; i++) n += files[i].ndim == 3 ? (size_t)files[i].shape[0] : 1;
    sq_st_tensor *list = calloc(n + 1, sizeof *list);
    char(*names)[SQ_TENSOR_NAME_MAX + 32] = calloc(n + 1, sizeof *names);
    save_state s = {m, arch, calloc(n + 1, sizeof *s.tensors), calloc(n + 1, sizeof(int))};
    sq_error *err =
        list && names && s.tensors && s.expert ? NULL : sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", dir);
    for (int i = 0, k = 0; i < n_files && !err; i++) {
        const sq_file_tensor *t = &files[i];
        for (int e = 0; e < (t->ndim == 3 ? t->shape[0] : 1) && !err; e++, k++) {
            const int named = t->ndim == 3
                                  ? sq_canonical_expert_to_hf(arch, t->name, e, names[k], sizeof names[k])
                                  : sq_canonical_to_hf(arch, t->name, names[k], sizeof names[k]);
            if (named != 0)
                err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: tensor %s has no Hugging Face name", dir, t->name);
            const int ndim = t->ndim == 3 ? 2 : t->ndim;
            list[k] = (sq_st_tensor){names[k], t->dtype, ndim, t->shape + (t->ndim - ndim),
                                     t->nbytes / (t->ndim == 3 ? (size_t)t->shape[0] : 1)};
            s.tensors[k] = t;
            s.expert[k] = t->ndim == 3 ? e : -1;
        }
    }
    if (!err) err = join(dir, SINGLE_FILE, path, sizeof path);
    if (!err) err = sq_st_write(path, list, (int)n, fetch, &s);
    free(list);
    free(names);
    free(s.tensors);
    free(s.expert);
    free(files);
    if (!err && m->tokenizer) err = sq_error_wrap(sq_tokenizer_save_hf(m->tokenizer, dir), "%s", dir);
    return err;
}
