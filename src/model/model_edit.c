/* Changing a bound model, as compression does: tensors replaced, added or removed (sq_model_edit_tensors),
 * blocks dropped or reordered (sq_model_set_layers), values read back as fp32 (sq_model_read_tensor).
 *
 * Every change runs as a transaction: the tensor list and config are remembered, each tensor changed in place
 * is saved first, the model is bound again, and a failure puts everything back (the layers of the old model
 * are untouched until binding succeeds). New data always goes to fresh host memory, so a mapped file is never
 * written; the old data of a replaced tensor is freed only once the change has succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

typedef struct txn {
    sq_model *m;
    sq_model_config cfg;
    sq_tensor **list; /* [n_list]: the tensor list before the change */
    int n_list;
    sq_tensor *saved;    /* [n_saved] contents before the change of the tensors changed in place, */
    sq_tensor **changed; /* [n_saved] which those are */
    int n_saved;
} txn;

static SQ_NODISCARD sq_error *txn_begin(txn *x, sq_model *m, int max_saved) {
    sq_tensor **list = malloc(((size_t)m->n_tensors + 1) * sizeof *list);
    sq_tensor *saved = malloc(((size_t)max_saved + 1) * sizeof *saved);
    sq_tensor **changed = malloc(((size_t)max_saved + 1) * sizeof *changed);
    if (!list || !saved || !changed) {
        free(list), free(saved), free(changed);
        return sq_errorf(SQ_ERR_NOMEM, "model edit: out of memory");
    }
    memcpy(list, m->tensors, (size_t)m->n_tensors * sizeof *list);
    *x = (txn){
        .m = m, .cfg = m->cfg, .list = list, .n_list = m->n_tensors, .saved = saved, .changed = changed};
    return NULL;
}

static void txn_save(txn *x, sq_tensor *t) {
    x->saved[x->n_saved] = *t;
    x->changed[x->n_saved++] = t;
}

static int in_list(sq_tensor *const *list, int n, const sq_tensor *t) {
    for (int i = 0; i < n; i++)
        if (list[i] == t) return 1;
    return 0;
}

static void txn_end(txn *x) {
    free(x->list);
    free(x->saved);
    free(x->changed);
}

/* A change that would leave the model malformed is the caller's invalid argument, not a bad file. */
static SQ_NODISCARD SQ_TAKES_ERROR(1) sq_error *as_invalid_arg(sq_error *err) {
    if (sq_error_code_of(err) != SQ_ERR_NOMEM) err->code = SQ_ERR_INVALID_ARG;
    return err;
}

/* Puts the model back as it was when the transaction began. */
static void txn_rollback(txn *x) {
    sq_model *m = x->m;
    for (int i = x->n_saved - 1; i >= 0; i--) {
        sq_tensor *t = x->changed[i];
        if (t->storage == SQ_STORAGE_HOST && t->data != x->saved[i].data) free(t->data);
        *t = x->saved[i];
    }
    for (int i = 0; i < m->n_tensors; i++) /* the added tensors */
        if (!in_list(x->list, x->n_list, m->tensors[i])) sq_model_tensor_free(m->tensors[i]);
    memcpy(m->tensors, x->list, (size_t)x->n_list * sizeof *m->tensors);
    m->n_tensors = x->n_list;
    m->cfg = x->cfg;
    txn_end(x);
}

/* Binds the changed model; keeps the change, or undoes it and returns why it was refused. An edit may change
 * a mixture of experts' expert count (expert pruning): block 0's expert tensors give the new count, which
 * every block must then have (the config, and every file format, store one count). */
static SQ_NODISCARD sq_error *txn_finish(txn *x) {
    sq_model *m = x->m;
    const sq_tensor *exps = m->cfg.n_experts ? sq_model_find_tensor(m, "blk.0." SQ_NAME_FFN_GATE_EXPS) : NULL;
    if (exps && exps->ndim == 3 && exps->shape[0] >= 1 && exps->shape[0] <= 65536)
        m->cfg.n_experts = (int)exps->shape[0];
    sq_error *err = sq_model_bind(m, "model edit");
    if (err) {
        txn_rollback(x);
        return as_invalid_arg(err);
    }
    for (int i = 0; i < x->n_saved; i++) /* the replaced data */
        if (x->saved[i].storage == SQ_STORAGE_HOST && x->saved[i].data != x->changed[i]->data)
            free(x->saved[i].data);
    for (int i = 0; i < x->n_list; i++) /* the removed tensors */
        if (!in_list(m->tensors, m->n_tensors, x->list[i])) sq_model_tensor_free(x->list[i]);
    txn_end(x);
    return NULL;
}

static void remove_from_list(sq_model *m, const sq_tensor *t) {
    int j = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i] != t) m->tensors[j++] = m->tensors[i];
    m->n_tensors = j;
}

/* ---------------------------------------------------------------- tensors */

sq_error *sq_model_read_tensor(const sq_model *m, const char *name, float *dst, int64_t n_elems) {
    const sq_tensor *t = name ? sq_model_find_tensor(m, name) : NULL;
    if (!t) return sq_errorf(SQ_ERR_INVALID_ARG, "the model has no tensor %.96s", name ? name : "(null)");
    if (n_elems != sq_tensor_nelements(t))
        return sq_errorf(SQ_ERR_INVALID_ARG, "tensor %s has %lld elements, not %lld", t->name,
                         (long long)sq_tensor_nelements(t), (long long)n_elems);
    const int64_t row_len = sq_tensor_row_len(t);
    for (int64_t r = 0; r < sq_tensor_n_rows(t); r++) sq_tensor_row_to_f32(t, r, dst + r * row_len);
    return NULL;
}

/* An edit checked and its new data built, before anything in the model changes. */
typedef struct prepared {
    sq_tensor *target; /* the tensor it changes; NULL: a new one */
    sq_tensor value;   /* its new contents (data in fresh host memory); unused for a removal */
} prepared;

/* The tensor's own values, re-encoded in dtype one row at a time. */
static SQ_NODISCARD sq_error *reencode(const sq_tensor *t, sq_dtype dtype, unsigned char *dst) {
    const int64_t row_len = sq_tensor_row_len(t);
    const size_t row_bytes = sq_row_bytes(dtype, row_len);
    float *row = malloc((size_t)row_len * sizeof *row);
    if (!row) return sq_errorf(SQ_ERR_NOMEM, "model edit: out of memory converting %s", t->name);
    for (int64_t r = 0; r < sq_tensor_n_rows(t); r++) {
        sq_tensor_row_to_f32(t, r, row);
        sq_dtype_info(dtype)->from_f32(row, dst + (size_t)r * row_bytes, row_len);
    }
    free(row);
    return NULL;
}

static SQ_NODISCARD sq_error *prepare(const sq_model *m, const sq_tensor_edit *e, prepared *p) {
    if (!e->name) return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: an edit has no tensor name");
    p->target = (sq_tensor *)sq_model_find_tensor(m, e->name);
    const sq_tensor *old = p->target;
    if (e->remove) {
        if (!old) return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: no tensor %.96s to remove", e->name);
        return NULL;
    }
    int dtype = e->dtype ? sq_dtype_from_name(e->dtype) : old ? (int)old->dtype : -1;
    if (dtype < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: %.96s: %s", e->name,
                         e->dtype ? "unknown format name" : "a new tensor needs a format (dtype)");
    if (!old && e->ndim == 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: new tensor %.96s needs a shape", e->name);
    if (e->values && e->data)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: %.96s gives both values and data", e->name);
    if (!e->values && !e->data && !old)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: new tensor %.96s needs values or data", e->name);
    if (e->ndim < 0 || e->ndim > SQ_MAX_DIMS)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: %.96s: %d dimensions (1 to %d)", e->name, e->ndim,
                         SQ_MAX_DIMS);
    sq_tensor *v = &p->value;
    snprintf(v->name, sizeof v->name, "%s", e->name);
    v->dtype = (sq_dtype)dtype;
    v->ndim = e->ndim ? e->ndim : old->ndim;
    memcpy(v->shape, e->ndim ? e->shape : old->shape, sizeof v->shape);
    v->nbytes = sq_tensor_bytes_for(v->dtype, v->ndim, v->shape);
    v->storage = SQ_STORAGE_HOST;
    sq_error *err = sq_model_check_tensor(e->name, v->dtype, v->ndim, v->shape, v->nbytes);
    if (err) return sq_error_wrap(as_invalid_arg(err), "model edit");
    if (e->data && e->nbytes != v->nbytes)
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: %s: %zu bytes of data but %zu of %s for its shape",
                         e->name, e->nbytes, v->nbytes, sq_dtype_info(v->dtype)->name);
    if (!e->values && !e->data && (v->ndim != old->ndim || memcmp(v->shape, old->shape, sizeof v->shape)))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "model edit: %s: re-encoding keeps the shape; give values for a new shape", e->name);
    if (!(v->data = sq_model_host_alloc(v->nbytes)))
        return sq_errorf(SQ_ERR_NOMEM, "model edit: out of memory for %s (%zu bytes)", e->name, v->nbytes);
    if (e->values)
        sq_dtype_info(v->dtype)->from_f32(e->values, v->data, sq_tensor_nelements(v));
    else if (e->data)
        memcpy(v->data, e->data, v->nbytes);
    else
        return reencode(old, v->dtype, v->data);
    return NULL;
}

sq_error *sq_model_edit_tensors(sq_model *m, const sq_tensor_edit *edits, int n_edits) {
    if (n_edits < 0 || (n_edits > 0 && !edits))
        return sq_errorf(SQ_ERR_INVALID_ARG, "model edit: invalid edit list");
    prepared *p = calloc((size_t)n_edits + 1, sizeof *p);
    if (!p) return sq_errorf(SQ_ERR_NOMEM, "model edit: out of memory");
    sq_error *err = NULL;
    for (int i = 0; i < n_edits && !err; i++) {
        err = prepare(m, &edits[i], &p[i]);
        for (int j = 0; j < i && !err; j++)
            if (!strcmp(edits[j].name, edits[i].name))
                err =
                    sq_errorf(SQ_ERR_INVALID_ARG, "model edit: tensor %.96s is edited twice", edits[i].name);
    }
    txn x;
    if (!err) err = txn_begin(&x, m, n_edits);
    if (err) {
        for (int i = 0; i < n_edits; i++) free(p[i].value.data);
        free(p);
        return err;
    }
    for (int i = 0; i < n_edits && !err; i++) {
        sq_tensor *t = p[i].target;
        if (edits[i].remove) {
            remove_from_list(m, t);
        } else if (t) {
            txn_save(&x, t);
            *t = p[i].value;
            p[i].value.data = NULL; /* now the model's */
        } else if (!(t = malloc(sizeof *t))) {
            err = sq_errorf(SQ_ERR_NOMEM, "model edit: out of memory");
        } else {
            *t = p[i].value;
            if (!(err = sq_model_append_tensor(m, t))) p[i].value.data = NULL; /* now the model's */
        }
    }
    if (err)
        txn_rollback(&x);
    else
        err = txn_finish(&x);
    for (int i = 0; i < n_edits; i++) free(p[i].value.data);
    free(p);
    return err;
}

/* ---------------------------------------------------------------- blocks */

sq_error *sq_model_set_layers(sq_model *m, const int *layers, int n_layers) {
    const int old_n = m->cfg.n_layers;
    if (n_layers < 1 || n_layers > old_n || !layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "set layers: %d blocks requested; the model has %d", n_layers,
                         old_n);
    int *new_index = malloc((size_t)old_n * sizeof *new_index); /* [old_n]: -1 for a dropped block */
    if (!new_index) return sq_errorf(SQ_ERR_NOMEM, "set layers: out of memory");
    for (int l = 0; l < old_n; l++) new_index[l] = -1;
    sq_error *err = NULL;
    for (int i = 0; i < n_layers && !err; i++) {
        if (layers[i] < 0 || layers[i] >= old_n)
            err =
                sq_errorf(SQ_ERR_INVALID_ARG, "set layers: block %d is outside 0..%d", layers[i], old_n - 1);
        else if (new_index[layers[i]] >= 0)
            err = sq_errorf(SQ_ERR_INVALID_ARG, "set layers: block %d is listed twice", layers[i]);
        else
            new_index[layers[i]] = i;
    }
    txn x;
    if (!err) err = txn_begin(&x, m, m->n_tensors);
    if (err) {
        free(new_index);
        return err;
    }
    for (int i = 0; i < x.n_list; i++) {
        sq_tensor *t = x.list[i];
        const char *suffix;
        const int l = sq_split_layer_name(t->name, "blk.", &suffix);
        if (l < 0) continue; /* not a block's tensor */
        if (l >= old_n || new_index[l] < 0) {
            remove_from_list(m, t);
            continue;
        }
        char name[SQ_TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "blk.%d.%s", new_index[l], suffix);
        txn_save(&x, t);
        memcpy(t->name, name, sizeof name);
    }
    free(new_index);
    /* a kept block keeps its kind (local or global attention) */
    uint64_t global[SQ_MAX_LAYERS / 64] = {0};
    for (int i = 0; i < n_layers; i++)
        if (sq_layer_is_global(&m->cfg, layers[i])) global[i / 64] |= (uint64_t)1 << (i % 64);
    memcpy(m->cfg.global_layers, global, sizeof global);
    m->cfg.n_layers = n_layers;
    return txn_finish(&x);
}
