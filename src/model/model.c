#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

sq_model *sq_model_new(void) {
    sq_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg.bos_id = -1;
    m->cfg.norm_eps = 1e-5f;
    m->cfg.rope_theta = 10000.0f;
    return m;
}

void sq_model_free(sq_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->layers);
    sq_tokenizer_free(m->tokenizer);
    for (int i = 0; i < m->n_files; i++) sq_mapped_file_close(m->files[i]);
    free(m->files);
    for (int i = 0; i < m->n_buffers; i++) free(m->buffers[i]);
    free(m->buffers);
    sq_warnings_free(&m->warnings);
    free(m);
}

sq_error *sq_model_add_tensor(sq_model *m, const char *name, sq_dtype dtype, int ndim, const int64_t *shape,
                              void *data, size_t nbytes, sq_storage storage) {
    if (strlen(name) >= SQ_TENSOR_NAME_MAX)
        return sq_errorf(SQ_ERR_FORMAT, "tensor name too long: %.64s...", name);
    if (sq_model_find_tensor(m, name)) return sq_errorf(SQ_ERR_FORMAT, "tensor %s appears twice", name);
    if (!sq_dtype_info(dtype))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "tensor %s: unknown dtype %d", name, dtype);
    size_t expect = sq_tensor_bytes_for(dtype, ndim, shape);
    if (!expect)
        return sq_errorf(SQ_ERR_FORMAT, "tensor %s: invalid shape for %s (%d dims, row length %lld)", name,
                         sq_dtype_info(dtype)->name, ndim, ndim > 0 ? (long long)shape[ndim - 1] : 0LL);
    if (expect != nbytes)
        return sq_errorf(SQ_ERR_FORMAT, "tensor %s: %zu bytes of data but its shape needs %zu", name, nbytes,
                         expect);
    if (m->n_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        sq_tensor *t = realloc(m->tensors, (size_t)cap * sizeof *t);
        if (!t) return sq_errorf(SQ_ERR_NOMEM, "out of memory adding tensor %s", name);
        m->tensors = t;
        m->cap_tensors = cap;
    }
    sq_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    t->nbytes = nbytes;
    t->storage = storage;
    return NULL;
}

void *sq_model_alloc(sq_model *m, size_t nbytes) {
    void **list = realloc(m->buffers, (size_t)(m->n_buffers + 1) * sizeof *list);
    if (!list) return NULL;
    m->buffers = list;
    void *p = NULL;
    if (posix_memalign(&p, 64, nbytes ? nbytes : 1) != 0) return NULL;
    m->buffers[m->n_buffers++] = p;
    return p;
}

sq_error *sq_model_keep_file(sq_model *m, sq_mapped_file *f) {
    sq_mapped_file **list = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *list);
    if (!list) {
        sq_mapped_file_close(f);
        return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    }
    m->files = list;
    m->files[m->n_files++] = f;
    return NULL;
}

const sq_tensor *sq_model_find_tensor(const sq_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* Looks up a tensor and checks its shape: each expected dimension must match (-1 matches anything). */
static SQ_NODISCARD sq_error *require(const sq_model *m, const char *path, const char *name, int optional,
                                      int ndim, const int64_t *shape, const sq_tensor **out) {
    const sq_tensor *t = sq_model_find_tensor(m, name);
    *out = t;
    if (!t) return optional ? NULL : sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || t->shape[i] == shape[i];
    if (!ok) {
        char want[96] = "", got[96] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s has shape [%s] but the config implies [%s]", path,
                         name, got, want);
    }
    return NULL;
}

#define SHAPE(...)                                                                                           \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }

sq_error *sq_model_bind(sq_model *m, const char *path) {
    sq_model_config *c = &m->cfg;
    const int64_t limit = 1 << 24; /* larger than any real model's dimension; rejects absurd headers */
    if (c->dim <= 0 || c->dim > limit || c->n_layers <= 0 || c->n_layers > 4096 || c->n_heads <= 0 ||
        c->n_heads > 65536 || c->vocab_size <= 0 || c->vocab_size > limit || c->max_seq_len <= 0 ||
        c->max_seq_len > limit || c->ffn_dim <= 0 || c->ffn_dim > limit)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: implausible model dimensions (dim %d, layers %d, heads %d, ffn %d, vocab %d, "
                         "context %d)",
                         path, c->dim, c->n_layers, c->n_heads, c->ffn_dim, c->vocab_size, c->max_seq_len);
    if (c->n_kv_heads <= 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim <= 0) {
        if (c->dim % c->n_heads)
            return sq_errorf(SQ_ERR_FORMAT, "%s: dim %d is not a multiple of %d heads", path, c->dim,
                             c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %d query heads cannot share %d key/value heads", path,
                         c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 || c->head_dim > 4096)
        return sq_errorf(SQ_ERR_FORMAT, "%s: head dimension %d is not usable with rotary embeddings", path,
                         c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1) || !(c->rope_theta > 0))
        return sq_errorf(SQ_ERR_FORMAT, "%s: invalid norm epsilon %g or rope theta %g", path, c->norm_eps,
                         c->rope_theta);
    if (c->sliding_window < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: negative sliding window", path);

    const int64_t dim = c->dim, hd = c->head_dim;
    SQ_TRY(require(m, path, SQ_NAME_TOK_EMBD, 0, SHAPE(c->vocab_size, dim), &m->tok_embd));
    SQ_TRY(require(m, path, SQ_NAME_OUT_NORM, 0, SHAPE(dim), &m->out_norm));
    SQ_TRY(require(m, path, SQ_NAME_OUTPUT, 1, SHAPE(c->vocab_size, dim), &m->output));
    c->tied_embeddings = m->output == NULL;
    if (!m->output) m->output = m->tok_embd;

    free(m->layers);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    for (int l = 0; l < c->n_layers; l++) {
        sq_layer *L = &m->layers[l];
        char name[SQ_TENSOR_NAME_MAX];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        /* Head counts and FFN width are read from the weights (they may differ per layer after pruning). */
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_Q), 0, SHAPE(-1, dim), &L->wq));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_K), 0, SHAPE(-1, dim), &L->wk));
        SQ_TRY(require(m, path, NAME(SQ_NAME_FFN_GATE), 0, SHAPE(-1, dim), &L->w_gate));
        if (L->wq->shape[0] % hd || L->wk->shape[0] % hd)
            return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d attention weights are not whole heads of %lld", path,
                             l, (long long)hd);
        L->n_heads = (int)(L->wq->shape[0] / hd);
        L->n_kv_heads = (int)(L->wk->shape[0] / hd);
        L->ffn_dim = (int)L->w_gate->shape[0];
        if (L->n_kv_heads == 0 || L->n_heads % L->n_kv_heads)
            return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d has %d query heads for %d key/value heads", path, l,
                             L->n_heads, L->n_kv_heads);
        const int64_t q = L->wq->shape[0], kv = L->wk->shape[0], hid = L->ffn_dim;
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_NORM), 0, SHAPE(dim), &L->attn_norm));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_V), 0, SHAPE(kv, dim), &L->wv));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_OUT), 0, SHAPE(dim, q), &L->wo));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_Q_BIAS), 1, SHAPE(q), &L->bq));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_K_BIAS), 1, SHAPE(kv), &L->bk));
        SQ_TRY(require(m, path, NAME(SQ_NAME_ATTN_V_BIAS), 1, SHAPE(kv), &L->bv));
        SQ_TRY(require(m, path, NAME(SQ_NAME_FFN_NORM), 0, SHAPE(dim), &L->ffn_norm));
        SQ_TRY(require(m, path, NAME(SQ_NAME_FFN_UP), 0, SHAPE(hid, dim), &L->w_up));
        SQ_TRY(require(m, path, NAME(SQ_NAME_FFN_DOWN), 0, SHAPE(dim, hid), &L->w_down));
#undef NAME
    }
    /* Norms and biases are applied in fp32 by every kernel. */
    for (int i = 0; i < m->n_tensors; i++) {
        const sq_tensor *t = &m->tensors[i];
        if (t->ndim == 1 && t->dtype != SQ_DTYPE_F32)
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: 1-D tensor %s must be f32 (loaders convert it)", path,
                             t->name);
    }
    return NULL;
}

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A tokenizer next to the model file: tokenizer.model, then tokenizer.bin, then tokenizer.json. */
static SQ_NODISCARD sq_error *find_tokenizer_beside(const char *model_path, sq_tokenizer **out) {
    *out = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    static const char *const names[] = {"tokenizer.model", "tokenizer.bin", "tokenizer.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) == 0) return sq_tokenizer_load(p, out);
    }
    return NULL;
}

sq_error *sq_model_load(const char *path, const sq_load_options *opts, sq_model **out) {
    *out = NULL;
    sq_model *m = sq_model_new();
    if (!m) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    sq_error *err = NULL;
    if (is_directory(path)) {
        err = sq_hf_load(path, m);
    } else {
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            sq_model_free(m);
            return sq_errorf(SQ_ERR_IO, "%s: cannot open model", path);
        }
        char magic[4] = {0};
        size_t n = fread(magic, 1, 4, fp);
        fclose(fp);
        err = n == 4 && memcmp(magic, "GGUF", 4) == 0 ? sq_gguf_load(path, m) : sq_llama2c_load(path, m);
    }
    if (!err) err = sq_model_bind(m, path);
    if (!err && opts && opts->tokenizer_path) {
        sq_tokenizer_free(m->tokenizer);
        m->tokenizer = NULL;
        err = sq_tokenizer_load(opts->tokenizer_path, &m->tokenizer);
        if (!err && sq_tokenizer_vocab_size(m->tokenizer) > m->cfg.vocab_size)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: tokenizer has %d tokens but the model only %d",
                            opts->tokenizer_path, sq_tokenizer_vocab_size(m->tokenizer), m->cfg.vocab_size);
    } else if (!err && !m->tokenizer && !is_directory(path)) {
        err = find_tokenizer_beside(path, &m->tokenizer);
        /* A tokenizer that merely sits in the same folder but cannot belong to this model (stories260K beside
         * the Llama-2 tokenizer) is left out: the model loads without one and callers that need it say so. */
        if (!err && m->tokenizer && sq_tokenizer_vocab_size(m->tokenizer) > m->cfg.vocab_size) {
            sq_tokenizer_free(m->tokenizer);
            m->tokenizer = NULL;
        }
    }
    if (!err && m->tokenizer)
        err = sq_model_add_eos(&m->cfg, sq_tokenizer_eos(m->tokenizer), &m->warnings, path);
    if (err) {
        sq_model_free(m);
        return err;
    }
    *out = m;
    return NULL;
}

sq_error *sq_model_save(const sq_model *m, const char *path, sq_file_format format) {
    switch (format) {
    case SQ_FORMAT_LLAMA2C:
        return sq_llama2c_save(m, path);
    case SQ_FORMAT_SAFETENSORS:
        return sq_hf_save(m, path);
    case SQ_FORMAT_GGUF:
        return sq_gguf_save(m, path);
    }
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown output format %d", (int)format);
}

const sq_tokenizer *sq_model_tokenizer(const sq_model *m) { return m->tokenizer; }

int sq_model_n_warnings(const sq_model *m) {
    return m->warnings.n + (m->tokenizer ? sq_tokenizer_n_warnings(m->tokenizer) : 0);
}

const char *sq_model_warning(const sq_model *m, int i) {
    if (i >= 0 && i < m->warnings.n) return m->warnings.messages[i];
    return m->tokenizer ? sq_tokenizer_warning(m->tokenizer, i - m->warnings.n) : NULL;
}

void sq_model_get_info(const sq_model *m, sq_model_info *info) {
    const sq_model_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->arch = c->arch;
    info->file_format = m->file_format;
    info->dim = c->dim;
    info->n_layers = c->n_layers;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->head_dim = c->head_dim;
    info->ffn_dim = c->ffn_dim;
    info->vocab_size = c->vocab_size;
    info->max_seq_len = c->max_seq_len;
    info->rope_theta = c->rope_theta;
    info->norm_eps = c->norm_eps;
    info->sliding_window = c->sliding_window;
    info->tied_embeddings = c->tied_embeddings;
    info->rope_style = c->rope_style == SQ_ROPE_HALVES ? "halves" : "interleaved";
    info->rope_scaling = c->rope_scaling.type == SQ_ROPE_SCALING_LLAMA3 ? "llama3" : "none";
    info->rope_scaling_factor = c->rope_scaling.factor;
    info->rope_low_freq_factor = c->rope_scaling.low_freq_factor;
    info->rope_high_freq_factor = c->rope_scaling.high_freq_factor;
    info->rope_original_max_pos = c->rope_scaling.original_max_pos;
    for (int i = 0; i < m->n_tensors; i++) {
        info->n_params += sq_tensor_nelements(&m->tensors[i]);
        info->weight_bytes += m->tensors[i].nbytes;
    }
}

int sq_model_n_tensors(const sq_model *m) { return m->n_tensors; }

void sq_model_tensor_info(const sq_model *m, int i, sq_tensor_info *info) {
    const sq_tensor *t = &m->tensors[i];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->dtype = sq_dtype_info(t->dtype)->name;
    info->ndim = t->ndim;
    memcpy(info->shape, t->shape, sizeof t->shape);
    info->nbytes = t->nbytes;
}
