/* The model's tensor registry, binding tensors into layers, and the facts the public API reports. */
#include "model/model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "model/arch.h"
#include "tokenizer/tokenizer.h"

sq_model *sq_model_new(void) {
    sq_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg.bos_id = -1;
    m->cfg.norm_eps = 1e-5f;
    m->cfg.rope_theta = 10000.0f;
    return m;
}

void sq_model_tensor_free(sq_tensor *t) {
    if (!t) return;
    if (t->storage == SQ_STORAGE_HOST) free(t->data);
    free(t);
}

void sq_model_free(sq_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) sq_model_tensor_free(m->tensors[i]);
    free(m->tensors);
    free(m->layers);
    sq_tokenizer_free(m->tokenizer);
    for (int i = 0; i < m->n_files; i++) sq_mapped_file_close(m->files[i]);
    free(m->files);
    sq_warnings_free(&m->warnings);
    free(m);
}

void *sq_model_host_alloc(size_t nbytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, nbytes ? nbytes : 1) == 0 ? p : NULL;
}

sq_error *sq_model_check_tensor(const char *name, sq_dtype dtype, int ndim, const int64_t *shape,
                                size_t nbytes) {
    if (strlen(name) >= SQ_TENSOR_NAME_MAX)
        return sq_errorf(SQ_ERR_FORMAT, "tensor name too long: %.64s...", name);
    if (!sq_dtype_info(dtype))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "tensor %s: unknown dtype %d", name, dtype);
    size_t expect = sq_tensor_bytes_for(dtype, ndim, shape);
    if (!expect)
        return sq_errorf(SQ_ERR_FORMAT, "tensor %s: invalid shape for %s (%d dims, row length %lld)", name,
                         sq_dtype_info(dtype)->name, ndim,
                         ndim > 0 && ndim <= SQ_MAX_DIMS ? (long long)shape[ndim - 1] : 0LL);
    if (expect != nbytes)
        return sq_errorf(SQ_ERR_FORMAT, "tensor %s: %zu bytes of data but its shape needs %zu", name, nbytes,
                         expect);
    return NULL;
}

sq_error *sq_model_append_tensor(sq_model *m, sq_tensor *t) {
    if (SQ_ARRAY_RESERVE(m->tensors, m->cap_tensors, (size_t)m->n_tensors + 1)) {
        sq_error *err = sq_errorf(SQ_ERR_NOMEM, "out of memory adding tensor %s", t->name);
        free(t);
        return err;
    }
    m->tensors[m->n_tensors++] = t;
    return NULL;
}

sq_error *sq_model_add_tensor(sq_model *m, const char *name, sq_dtype dtype, int ndim, const int64_t *shape,
                              void *data, size_t nbytes, sq_storage storage) {
    SQ_TRY(sq_model_check_tensor(name, dtype, ndim, shape, nbytes));
    if (sq_model_find_tensor(m, name)) return sq_errorf(SQ_ERR_FORMAT, "tensor %s appears twice", name);
    sq_tensor *t = calloc(1, sizeof *t);
    if (!t) return sq_errorf(SQ_ERR_NOMEM, "out of memory adding tensor %s", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    t->nbytes = nbytes;
    t->storage = storage;
    return sq_model_append_tensor(m, t); /* on failure the data stays the caller's */
}

sq_error *sq_model_keep_file(sq_model *m, sq_mapped_file *f) {
    if (SQ_ARRAY_RESERVE(m->files, m->cap_files, (size_t)m->n_files + 1)) {
        sq_mapped_file_close(f);
        return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    }
    m->files[m->n_files++] = f;
    return NULL;
}

int sq_model_tensor_index(const sq_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i]->name, name) == 0) return i;
    return -1;
}

const sq_tensor *sq_model_find_tensor(const sq_model *m, const char *name) {
    int i = sq_model_tensor_index(m, name);
    return i < 0 ? NULL : m->tensors[i];
}

int sq_split_layer_name(const char *name, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return -1;
    const char *p = name + n;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '.')) return -1;
    char *end;
    long layer = strtol(p, &end, 10);
    if (*end != '.' || layer > 1000000) return -1;
    *rest = end + 1;
    return (int)layer;
}

/* ---------------------------------------------------------------- binding */

/* The widths a block's tensor dimensions are checked against. */
typedef enum width { W_NONE, W_DIM, W_Q, W_KV, W_FFN, W_HEAD, W_EXPERTS, W_SHEXP, W_ONE } width;

/* When a block has a tensor: always, optionally, only with a dense FFN, only with experts (then required),
 * only with experts as the shared expert (then all of its tensors or none). */
typedef enum part { P_REQUIRED, P_OPTIONAL, P_DENSE, P_MOE, P_SHEXP } part;

/* A block's tensors: canonical suffix, where the layer keeps it, when it is there, and its shape (up to three
 * dimensions, outermost first, W_NONE after the last). */
static const struct layer_slot {
    const char *suffix;
    size_t offset;
    part part;
    width dims[3];
    int linear; /* its sq_linear (it may then be stored as low-rank factors), or -1 */
} layer_slots[] = {
    {SQ_NAME_ATTN_NORM, offsetof(sq_layer, attn_norm), P_REQUIRED, {W_DIM}, -1},
    {SQ_NAME_ATTN_Q, offsetof(sq_layer, wq), P_REQUIRED, {W_Q, W_DIM}, SQ_LINEAR_Q},
    {SQ_NAME_ATTN_K, offsetof(sq_layer, wk), P_REQUIRED, {W_KV, W_DIM}, SQ_LINEAR_K},
    {SQ_NAME_ATTN_V, offsetof(sq_layer, wv), P_REQUIRED, {W_KV, W_DIM}, SQ_LINEAR_V},
    {SQ_NAME_ATTN_OUT, offsetof(sq_layer, wo), P_REQUIRED, {W_DIM, W_Q}, SQ_LINEAR_O},
    {SQ_NAME_ATTN_Q_BIAS, offsetof(sq_layer, bq), P_OPTIONAL, {W_Q}, -1},
    {SQ_NAME_ATTN_K_BIAS, offsetof(sq_layer, bk), P_OPTIONAL, {W_KV}, -1},
    {SQ_NAME_ATTN_V_BIAS, offsetof(sq_layer, bv), P_OPTIONAL, {W_KV}, -1},
    {SQ_NAME_ATTN_Q_NORM, offsetof(sq_layer, q_norm), P_OPTIONAL, {W_HEAD}, -1},
    {SQ_NAME_ATTN_K_NORM, offsetof(sq_layer, k_norm), P_OPTIONAL, {W_HEAD}, -1},
    {SQ_NAME_ATTN_POST_NORM, offsetof(sq_layer, attn_post_norm), P_OPTIONAL, {W_DIM}, -1},
    {SQ_NAME_FFN_NORM, offsetof(sq_layer, ffn_norm), P_REQUIRED, {W_DIM}, -1},
    {SQ_NAME_FFN_POST_NORM, offsetof(sq_layer, ffn_post_norm), P_OPTIONAL, {W_DIM}, -1},
    {SQ_NAME_FFN_GATE, offsetof(sq_layer, w_gate), P_DENSE, {W_FFN, W_DIM}, SQ_LINEAR_GATE},
    {SQ_NAME_FFN_UP, offsetof(sq_layer, w_up), P_DENSE, {W_FFN, W_DIM}, SQ_LINEAR_UP},
    {SQ_NAME_FFN_DOWN, offsetof(sq_layer, w_down), P_DENSE, {W_DIM, W_FFN}, SQ_LINEAR_DOWN},
    {SQ_NAME_FFN_GATE_INP, offsetof(sq_layer, ffn_gate_inp), P_MOE, {W_EXPERTS, W_DIM}, -1},
    {SQ_NAME_FFN_GATE_EXPS, offsetof(sq_layer, ffn_gate_exps), P_MOE, {W_EXPERTS, W_FFN, W_DIM}, -1},
    {SQ_NAME_FFN_UP_EXPS, offsetof(sq_layer, ffn_up_exps), P_MOE, {W_EXPERTS, W_FFN, W_DIM}, -1},
    {SQ_NAME_FFN_DOWN_EXPS, offsetof(sq_layer, ffn_down_exps), P_MOE, {W_EXPERTS, W_DIM, W_FFN}, -1},
    {SQ_NAME_FFN_GATE_SHEXP, offsetof(sq_layer, ffn_gate_shexp), P_SHEXP, {W_SHEXP, W_DIM}, -1},
    {SQ_NAME_FFN_UP_SHEXP, offsetof(sq_layer, ffn_up_shexp), P_SHEXP, {W_SHEXP, W_DIM}, -1},
    {SQ_NAME_FFN_DOWN_SHEXP, offsetof(sq_layer, ffn_down_shexp), P_SHEXP, {W_DIM, W_SHEXP}, -1},
    {SQ_NAME_FFN_GATE_INP_SHEXP, offsetof(sq_layer, ffn_gate_inp_shexp), P_SHEXP, {W_ONE, W_DIM}, -1},
};
#define N_SLOTS (sizeof layer_slots / sizeof *layer_slots)

static const sq_tensor **slot_of(sq_layer *L, size_t s) {
    return (const sq_tensor **)((char *)L + layer_slots[s].offset);
}

/* ---------------------------------------------------------------- linear weights */

const char *const sq_linear_names[SQ_N_LINEAR] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                  "ffn_gate", "ffn_up", "ffn_down"};

/* layer_slots' row of linear i */
static size_t linear_slot(sq_linear i) {
    size_t s = 0;
    while (layer_slots[s].linear != (int)i) s++;
    return s;
}

const sq_tensor *sq_layer_dense(const sq_layer *L, sq_linear i) {
    return *slot_of((sq_layer *)L, linear_slot(i));
}

void sq_layer_linear_shape(const sq_layer *L, sq_linear i, int64_t *out, int64_t *in) {
    const sq_tensor *d = sq_layer_dense(L, i);
    if (!d && !L->lr_a[i] && L->n_experts) { /* a mixture-of-experts FFN: each expert's matrix */
        const sq_tensor *e = i == SQ_LINEAR_DOWN ? L->ffn_down_exps
                             : i == SQ_LINEAR_UP ? L->ffn_up_exps
                                                 : L->ffn_gate_exps;
        *out = e->shape[1];
        *in = e->shape[2];
        return;
    }
    *out = d ? d->shape[0] : L->lr_b[i]->shape[0];
    *in = d ? d->shape[1] : L->lr_a[i]->shape[1];
}

int sq_model_has_lowrank(const sq_model *m) {
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++)
        for (int i = 0; i < SQ_N_LINEAR; i++)
            if (m->layers[l].lr_a[i]) return 1;
    return 0;
}

/* Binding state: which tensors something claimed, so that a tensor nothing uses is reported. */
typedef struct binder {
    const sq_model *m;
    const sq_arch *arch; /* the model's row of the architecture table */
    const char *path;
    char *claimed; /* [n_tensors] */
} binder;

/* Looks a tensor up and checks its shape: each expected dimension must match (-1 matches anything). */
static SQ_NODISCARD sq_error *require(binder *b, const char *name, int optional, int ndim,
                                      const int64_t *shape, const sq_tensor **out) {
    int i = sq_model_tensor_index(b->m, name);
    *out = i < 0 ? NULL : b->m->tensors[i];
    if (i < 0) return optional ? NULL : sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is missing", b->path, name);
    b->claimed[i] = 1;
    const sq_tensor *t = *out;
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || t->shape[d] == shape[d];
    if (!ok) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
                     (long long)shape[d]);
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)t->shape[d]);
        return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s has shape [%s] but the config implies [%s]", b->path,
                         name, got, want);
    }
    return NULL;
}

#define SHAPE(...)                                                                                           \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }

/* Linear i of block l, [rows][cols] (-1 matches anything): dense under its canonical name, or low-rank
 * factors "<name>.weight_a" [rank][cols] and "<name>.weight_b" [rows][rank] (both, and not beside the dense
 * weight). */
static SQ_NODISCARD sq_error *bind_linear(binder *b, int l, sq_linear i, int64_t rows, int64_t cols,
                                          sq_layer *L) {
    char dense[SQ_TENSOR_NAME_MAX], fa[SQ_TENSOR_NAME_MAX], fb[SQ_TENSOR_NAME_MAX];
    snprintf(dense, sizeof dense, "blk.%d.%s.weight", l, sq_linear_names[i]);
    snprintf(fa, sizeof fa, "blk.%d.%s.weight_a", l, sq_linear_names[i]);
    snprintf(fb, sizeof fb, "blk.%d.%s.weight_b", l, sq_linear_names[i]);
    const int has_a = sq_model_tensor_index(b->m, fa) >= 0, has_b = sq_model_tensor_index(b->m, fb) >= 0;
    const sq_tensor **slot = slot_of(L, linear_slot(i));
    L->lr_a[i] = L->lr_b[i] = NULL;
    if (!has_a && !has_b) return require(b, dense, 0, SHAPE(rows, cols), slot);
    if (!has_a || !has_b)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s has only one of its low-rank factors (%s and %s)", b->path,
                         dense, fa, fb);
    if (sq_model_tensor_index(b->m, dense) >= 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %s is there both dense and as low-rank factors", b->path, dense);
    *slot = NULL;
    SQ_TRY(require(b, fa, 0, SHAPE(-1, cols), &L->lr_a[i]));
    return require(b, fb, 0, SHAPE(rows, L->lr_a[i]->shape[0]), &L->lr_b[i]);
}

/* Block l: its head counts and FFN width from the rows of attn_q, attn_k and ffn_gate (a mixture-of-experts
 * block: the router's experts and each expert's width from ffn_gate_exps), then every tensor. */
static SQ_NODISCARD sq_error *bind_layer(binder *b, const sq_model_config *c, int l, sq_layer *L) {
    char name[SQ_TENSOR_NAME_MAX];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
    const int64_t dim = c->dim, hd = c->head_dim;
    SQ_TRY(bind_linear(b, l, SQ_LINEAR_Q, -1, dim, L));
    SQ_TRY(bind_linear(b, l, SQ_LINEAR_K, -1, dim, L));
    const int moe = sq_model_find_tensor(b->m, NAME(SQ_NAME_FFN_GATE_INP)) != NULL;
    if (moe && c->n_experts <= 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is a router but the config names no experts (0)",
                         b->path, name);
    if (!moe && b->arch->experts)
        return sq_errorf(SQ_ERR_FORMAT, "%s: router tensor %s is missing (every block of a %s model routes)",
                         b->path, name, b->arch->name);
    int64_t q_rows, kv_rows, ffn_rows, in;
    if (moe) {
        const sq_tensor *shexp = sq_model_find_tensor(b->m, NAME(SQ_NAME_FFN_GATE_SHEXP));
        SQ_TRY(require(b, NAME(SQ_NAME_FFN_GATE_EXPS), 0, SHAPE(c->n_experts, -1, dim), &L->ffn_gate_exps));
        L->n_experts = c->n_experts;
        L->shexp_dim = shexp && shexp->ndim == 2 && shexp->shape[0] <= (1 << 24) ? (int)shexp->shape[0] : 0;
        ffn_rows = L->ffn_gate_exps->shape[1];
    } else {
        SQ_TRY(bind_linear(b, l, SQ_LINEAR_GATE, -1, dim, L));
        sq_layer_linear_shape(L, SQ_LINEAR_GATE, &ffn_rows, &in);
    }
    sq_layer_linear_shape(L, SQ_LINEAR_Q, &q_rows, &in);
    sq_layer_linear_shape(L, SQ_LINEAR_K, &kv_rows, &in);
    if (q_rows % hd || kv_rows % hd || q_rows / hd > 65536)
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d attention weights are not whole heads of %lld", b->path,
                         l, (long long)hd);
    L->n_heads = (int)(q_rows / hd);
    L->n_kv_heads = (int)(kv_rows / hd);
    if (ffn_rows > (1 << 24) || ffn_rows <= 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d FFN width %lld is implausible", b->path, l,
                         (long long)ffn_rows);
    L->ffn_dim = (int)ffn_rows;
    if (L->n_heads % L->n_kv_heads)
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d has %d query heads for %d key/value heads", b->path, l,
                         L->n_heads, L->n_kv_heads);
    const int64_t widths[] = {[W_NONE] = 0,
                              [W_DIM] = dim,
                              [W_Q] = q_rows,
                              [W_KV] = kv_rows,
                              [W_FFN] = L->ffn_dim,
                              [W_HEAD] = hd,
                              [W_EXPERTS] = c->n_experts,
                              [W_SHEXP] = L->shexp_dim,
                              [W_ONE] = 1};
    for (size_t s = 0; s < N_SLOTS; s++) {
        const struct layer_slot *slot = &layer_slots[s];
        const part p = slot->part;
        const int wanted = p == P_REQUIRED || (p == P_DENSE && !moe) || (p == P_MOE && moe);
        const int allowed = wanted || p == P_OPTIONAL || (p == P_SHEXP && moe && L->shexp_dim);
        if (!allowed && sq_model_find_tensor(b->m, NAME(slot->suffix)))
            return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s belongs to a %s block but blk.%d %s", b->path,
                             name, p == P_DENSE ? "dense" : "mixture-of-experts", l,
                             moe ? "has a router (ffn_gate_inp)"
                                 : "has no router (" SQ_NAME_FFN_GATE_INP " is missing)");
        if (!allowed) continue;
        int64_t shape[3];
        int ndim = 0;
        while (ndim < 3 && slot->dims[ndim] != W_NONE) shape[ndim] = widths[slot->dims[ndim]], ndim++;
        if (slot->linear >= 0)
            SQ_TRY(bind_linear(b, l, (sq_linear)slot->linear, shape[0], shape[1], L));
        else
            SQ_TRY(require(b, NAME(slot->suffix), !wanted, ndim, shape, slot_of(L, s)));
    }
    if (L->shexp_dim &&
        (!L->ffn_gate_shexp || !L->ffn_up_shexp || !L->ffn_down_shexp || !L->ffn_gate_inp_shexp))
        return sq_errorf(
            SQ_ERR_FORMAT,
            "%s: blk.%d has only some of the shared expert's tensors (ffn_gate_shexp, ffn_up_shexp, "
            "ffn_down_shexp, ffn_gate_inp_shexp: all or none)",
            b->path, l);
    if (!L->bq != !L->bk || !L->bq != !L->bv)
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d has only some of the q/k/v biases (all or none)", b->path,
                         l);
    if (!L->q_norm != !L->k_norm)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: blk.%d has only one of attn_q_norm and attn_k_norm (both or none)", b->path, l);
    const sq_arch *a = b->arch;
    if (!L->attn_post_norm != !L->ffn_post_norm)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: blk.%d has only one of post_attention_norm and post_ffw_norm (both or none)",
                         b->path, l);
    if ((a->post_norms == SQ_PART_ALWAYS && !L->ffn_post_norm) ||
        (a->post_norms == SQ_PART_NEVER && L->ffn_post_norm))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: blk.%d %s post-norms (post_attention_norm, post_ffw_norm), which a %s model %s",
                         b->path, l, L->ffn_post_norm ? "has" : "lacks", a->name,
                         L->ffn_post_norm ? "never has" : "needs");
    if ((a->qk_norm == SQ_PART_ALWAYS && !L->q_norm) || (a->qk_norm == SQ_PART_NEVER && L->q_norm))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: blk.%d %s q/k norms (attn_q_norm, attn_k_norm), which a %s model %s", b->path,
                         l, L->q_norm ? "has" : "lacks", a->name, L->q_norm ? "never has" : "needs");
    if (a->experts != moe)
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d %s a router (ffn_gate_inp), which a %s model %s", b->path,
                         l, moe ? "has" : "lacks", a->name, moe ? "never has" : "needs");
    if (moe && ((a->shared_expert == SQ_PART_ALWAYS && !L->shexp_dim) ||
                (a->shared_expert == SQ_PART_NEVER && L->shexp_dim)))
        return sq_errorf(SQ_ERR_FORMAT, "%s: blk.%d %s a shared expert (ffn_*_shexp), which a %s model %s",
                         b->path, l, L->shexp_dim ? "has" : "lacks", a->name,
                         L->shexp_dim ? "never has" : "needs");
#undef NAME
    return NULL;
}

static SQ_NODISCARD sq_error *bind(binder *b, sq_model_config *c, sq_layer *layers,
                                   const sq_tensor **global) {
    const sq_model *m = b->m;
    const char *path = b->path;
    if (!(b->arch = sq_arch_find(c->arch)))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: unknown architecture '%.16s'", path, c->arch);
    const int64_t limit = 1 << 24; /* larger than any real model's dimension; rejects absurd headers */
    if (c->dim <= 0 || c->dim > limit || c->n_layers <= 0 || c->n_layers > SQ_MAX_LAYERS || c->n_heads <= 0 ||
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
    if (c->head_dim % 2 || c->head_dim > 4096)
        return sq_errorf(SQ_ERR_FORMAT, "%s: head dimension %d is not usable with rotary embeddings", path,
                         c->head_dim);
    if (c->rope_dims == 0) c->rope_dims = c->head_dim;
    if (c->rope_dims < 2 || c->rope_dims % 2 || c->rope_dims > c->head_dim)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: RoPE dimension count %d must be even and between 2 and head_dim %d", path,
                         c->rope_dims, c->head_dim);
    if (!(c->norm_eps > 0 && c->norm_eps < 1) || !(c->rope_theta > 0))
        return sq_errorf(SQ_ERR_FORMAT, "%s: invalid norm epsilon %g or rope theta %g", path, c->norm_eps,
                         c->rope_theta);
    if (c->sliding_window < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: negative sliding window", path);
    if (sq_model_has_layer_pattern(c) && !(c->rope_local_theta > 0))
        return sq_errorf(SQ_ERR_FORMAT, "%s: local and global layers but no RoPE base for the local ones",
                         path);
    if (!(c->attn_scalar >= 0 && c->attn_scalar < 1e9f))
        return sq_errorf(SQ_ERR_FORMAT, "%s: invalid attention scalar %g", path, c->attn_scalar);
    if (c->n_experts < 0 || c->n_experts > 65536 || (c->n_experts > 0 && !b->arch->experts))
        return sq_errorf(SQ_ERR_FORMAT, "%s: %d experts in a %s model", path, c->n_experts, c->arch);
    if (b->arch->experts && c->n_experts <= 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: a %s model needs experts, the config names %d", path, c->arch,
                         c->n_experts);
    if (c->n_experts > 0 &&
        (c->n_experts_used < 1 || c->n_experts_used > c->n_experts || c->n_experts_used > SQ_MOE_MAX_TOPK))
        return sq_errorf(
            SQ_ERR_FORMAT,
            "%s: top-%d routing over %d experts (experts used per token must be 1..%d, at most %d)", path,
            c->n_experts_used, c->n_experts, c->n_experts, SQ_MOE_MAX_TOPK);
    if (!(c->attn_softcap >= 0 && c->attn_softcap < 1e9f) ||
        !(c->final_softcap >= 0 && c->final_softcap < 1e9f))
        return sq_errorf(SQ_ERR_FORMAT, "%s: invalid logit soft-capping %g / %g", path, c->attn_softcap,
                         c->final_softcap);
    c->ffn_act = b->arch->ffn_act;
    c->embd_scale = b->arch->embd_scale_sqrt_dim ? sqrtf((float)c->dim) : 1.0f;

    const int64_t dim = c->dim;
    SQ_TRY(require(b, SQ_NAME_TOK_EMBD, 0, SHAPE(c->vocab_size, dim), &global[0]));
    SQ_TRY(require(b, SQ_NAME_OUT_NORM, 0, SHAPE(dim), &global[1]));
    SQ_TRY(require(b, SQ_NAME_OUTPUT, 1, SHAPE(c->vocab_size, dim), &global[2]));
    int max_heads = 0, max_kv = 0, max_ffn = 0;
    for (int l = 0; l < c->n_layers; l++) {
        SQ_TRY(bind_layer(b, c, l, &layers[l]));
        if (layers[l].n_heads > max_heads) max_heads = layers[l].n_heads;
        if (layers[l].n_kv_heads > max_kv) max_kv = layers[l].n_kv_heads;
        if (layers[l].ffn_dim > max_ffn) max_ffn = layers[l].ffn_dim;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const sq_tensor *t = m->tensors[i];
        if (!b->claimed[i])
            return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s is not part of a %s model with %d layers", path,
                             t->name, c->arch, c->n_layers);
        /* Norms and biases are applied in fp32 by every kernel. */
        if (t->ndim == 1 && t->dtype != SQ_DTYPE_F32)
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: 1-D tensor %s must be f32 (loaders convert it)", path,
                             t->name);
    }
    c->n_heads = max_heads, c->n_kv_heads = max_kv, c->ffn_dim = max_ffn;
    c->tied_embeddings = global[2] == NULL;
    return NULL;
}

sq_error *sq_model_bind(sq_model *m, const char *path) {
    sq_model_config c = m->cfg;
    binder b = {.m = m, .path = path, .claimed = calloc((size_t)m->n_tensors + 1, 1)};
    const int n_layers = c.n_layers > 0 && c.n_layers <= SQ_MAX_LAYERS ? c.n_layers : 1;
    sq_layer *layers = calloc((size_t)n_layers, sizeof *layers);
    const sq_tensor *global[3];
    sq_error *err = b.claimed && layers ? bind(&b, &c, layers, global)
                                        : sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    free(b.claimed);
    if (err) {
        free(layers);
        return err;
    }
    free(m->layers);
    m->layers = layers;
    m->cfg = c;
    m->tok_embd = global[0];
    m->out_norm = global[1];
    m->output = global[2] ? global[2] : global[0];
    return NULL;
}

int sq_model_has_layer_pattern(const sq_model_config *c) {
    for (size_t i = 0; i < sizeof c->global_layers / sizeof *c->global_layers; i++)
        if (c->global_layers[i]) return 1;
    return 0;
}

void sq_model_set_layer_pattern(sq_model_config *c, int n) {
    memset(c->global_layers, 0, sizeof c->global_layers);
    for (int l = n - 1; n > 0 && l < c->n_layers && l < SQ_MAX_LAYERS; l += n)
        c->global_layers[l / 64] |= (uint64_t)1 << (l % 64);
}

/* ---------------------------------------------------------------- facts */

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
    info->rope_dims = c->rope_dims;
    info->ffn_dim = c->ffn_dim;
    info->vocab_size = c->vocab_size;
    info->max_seq_len = c->max_seq_len;
    info->rope_theta = c->rope_theta;
    info->norm_eps = c->norm_eps;
    info->sliding_window = c->sliding_window;
    info->tied_embeddings = c->tied_embeddings;
    info->rope_style = c->rope_style == SQ_ROPE_HALVES ? "halves" : "interleaved";
    static const char *const scalings[] = {"none", "llama3", "longrope"};
    info->rope_scaling = scalings[c->rope_scaling.type];
    info->rope_scaling_factor = c->rope_scaling.factor;
    info->rope_low_freq_factor = c->rope_scaling.low_freq_factor;
    info->rope_high_freq_factor = c->rope_scaling.high_freq_factor;
    info->rope_original_max_pos = c->rope_scaling.original_max_pos;
    info->rope_attn_factor = c->rope_scaling.type == SQ_ROPE_SCALING_LONGROPE ? c->longrope.attn_factor : 0;
    info->ffn_act = c->ffn_act == SQ_ACT_GELU_TANH ? "gelu_tanh" : "silu";
    info->embd_scale = c->embd_scale;
    info->attn_scalar = c->attn_scalar;
    info->attn_softcap = c->attn_softcap;
    info->final_softcap = c->final_softcap;
    for (int l = 0; sq_model_has_layer_pattern(c) && l < c->n_layers; l++)
        info->n_global_layers += sq_layer_is_global(c, l);
    info->rope_local_theta = info->n_global_layers ? c->rope_local_theta : 0;
    for (int i = 0; i < m->n_tensors; i++) {
        info->n_params += sq_tensor_nelements(m->tensors[i]);
        info->weight_bytes += m->tensors[i]->nbytes;
    }
    info->n_experts = c->n_experts;
    info->n_experts_used = c->n_experts ? c->n_experts_used : 0;
    info->n_active_params = info->n_params;
    for (int l = 0; l < c->n_layers && m->layers; l++) {
        const sq_layer *L = &m->layers[l];
        const sq_tensor *exps[] = {L->ffn_gate_exps, L->ffn_up_exps, L->ffn_down_exps};
        info->shared_expert |= L->shexp_dim > 0;
        for (int k = 0; k < 3 && L->n_experts; k++) /* the unused experts' share of each expert tensor */
            info->n_active_params -=
                sq_tensor_nelements(exps[k]) / L->n_experts * (L->n_experts - c->n_experts_used);
    }
}

sq_error *sq_model_layer_info(const sq_model *m, int l, sq_layer_info *info) {
    memset(info, 0, sizeof *info);
    if (l < 0 || l >= m->cfg.n_layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "layer %d is outside 0..%d", l, m->cfg.n_layers - 1);
    sq_layer L = m->layers[l];
    info->n_heads = L.n_heads;
    info->n_kv_heads = L.n_kv_heads;
    info->head_dim = m->cfg.head_dim;
    info->ffn_dim = L.ffn_dim;
    info->has_qkv_bias = L.bq != NULL;
    info->has_qk_norm = L.q_norm != NULL;
    info->has_post_norms = L.ffn_post_norm != NULL;
    info->global = sq_model_has_layer_pattern(&m->cfg) && sq_layer_is_global(&m->cfg, l);
    info->window = info->global ? 0 : m->cfg.sliding_window;
    for (size_t s = 0; s < N_SLOTS; s++) {
        const sq_tensor *t = *slot_of(&L, s);
        if (!t) continue;
        info->n_params += sq_tensor_nelements(t);
        info->weight_bytes += t->nbytes;
    }
    for (int i = 0; i < SQ_N_LINEAR; i++) {
        if (!L.lr_a[i]) continue;
        info->lowrank_rank[i] = (int)L.lr_a[i]->shape[0];
        info->n_params += sq_tensor_nelements(L.lr_a[i]) + sq_tensor_nelements(L.lr_b[i]);
        info->weight_bytes += L.lr_a[i]->nbytes + L.lr_b[i]->nbytes;
    }
    return NULL;
}

int sq_model_n_tensors(const sq_model *m) { return m->n_tensors; }

void sq_model_tensor_info(const sq_model *m, int i, sq_tensor_info *info) {
    const sq_tensor *t = m->tensors[i];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->dtype = sq_dtype_info(t->dtype)->name;
    info->ndim = t->ndim;
    memcpy(info->shape, t->shape, sizeof t->shape);
    info->nbytes = t->nbytes;
}
