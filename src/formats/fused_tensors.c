#include "formats/fused_tensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define GGUF_FFN_GATE_UP SQ_NAME_FFN_UP /* llama.cpp's name for Phi-3's fused gate and up */

int sq_fused_name_valid(const char *name, int n_layers) {
    const char *rest;
    const int l = sq_split_layer_name(name, "blk.", &rest);
    return l >= 0 && l < n_layers && (!strcmp(rest, SQ_NAME_ATTN_QKV) || !strcmp(rest, SQ_NAME_FFN_GATE_UP));
}

/* Renames the layer tensor `name` ending in `from` to end in `to`; copies it unchanged otherwise. */
static void rename_suffix(const char *name, const char *from, const char *to, char *out, size_t n) {
    const char *rest;
    const int l = sq_split_layer_name(name, "blk.", &rest);
    if (l >= 0 && !strcmp(rest, from))
        snprintf(out, n, "blk.%d.%s", l, to);
    else
        snprintf(out, n, "%s", name);
}

void sq_fused_from_gguf(const sq_arch *a, const char *gguf, char *out, size_t n) {
    if (a->fused_proj)
        rename_suffix(gguf, GGUF_FFN_GATE_UP, SQ_NAME_FFN_GATE_UP, out, n);
    else
        snprintf(out, n, "%s", gguf);
}

void sq_fused_to_gguf(const sq_arch *a, const char *canonical, char *out, size_t n) {
    if (a->fused_proj)
        rename_suffix(canonical, SQ_NAME_FFN_GATE_UP, GGUF_FFN_GATE_UP, out, n);
    else
        snprintf(out, n, "%s", canonical);
}

sq_error *sq_import_fused(sq_model *m, const char *path, const char *name, sq_dtype dtype, int ndim,
                          const int64_t *shape, const void *data, size_t nbytes, int n_heads, int n_kv_heads,
                          int ffn_dim) {
    const char *rest;
    const int l = sq_split_layer_name(name, "blk.", &rest);
    const int qkv = !strcmp(rest, SQ_NAME_ATTN_QKV);
    const int64_t hd = m->cfg.head_dim;
    const int64_t rows[3] = {qkv ? n_heads * hd : ffn_dim, qkv ? n_kv_heads * hd : ffn_dim,
                             qkv ? n_kv_heads * hd : 0};
    const char *const parts[3] = {qkv ? SQ_NAME_ATTN_Q : SQ_NAME_FFN_GATE,
                                  qkv ? SQ_NAME_ATTN_K : SQ_NAME_FFN_UP, SQ_NAME_ATTN_V};
    const int n_parts = qkv ? 3 : 2;
    const int64_t want = rows[0] + rows[1] + rows[2];
    if (ndim != 2 || shape[0] != want || sq_tensor_bytes_for(dtype, ndim, shape) != nbytes)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: fused tensor %s must be [%lld][in] (%s) but is %s%lld rows of %zu bytes", path,
                         name, (long long)want,
                         qkv ? "(heads + 2 kv heads) x head_dim from the config" : "2 x the FFN width",
                         ndim == 2 ? "" : "not a matrix: ", ndim >= 1 ? (long long)shape[0] : 0LL, nbytes);
    const size_t row_bytes = nbytes / (size_t)shape[0];
    const unsigned char *p = data;
    for (int i = 0; i < n_parts; i++) {
        char part[SQ_TENSOR_NAME_MAX];
        snprintf(part, sizeof part, "blk.%d.%s", l, parts[i]);
        const int64_t part_shape[2] = {rows[i], shape[1]};
        SQ_TRY(sq_import_tensor(m, path, part, dtype, 2, part_shape, p, (size_t)rows[i] * row_bytes, 0));
        p += (size_t)rows[i] * row_bytes;
    }
    return NULL;
}

sq_error *sq_file_tensors(const sq_model *m, const sq_arch *a, const char *path, sq_file_tensor **out,
                          int *n) {
    sq_file_tensor *list = calloc((size_t)m->n_tensors + 1, sizeof *list);
    if (!list) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    int k = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const sq_tensor *t = m->tensors[i];
        const char *rest;
        const int l = sq_split_layer_name(t->name, "blk.", &rest);
        sq_file_tensor *f = &list[k];
        *f = (sq_file_tensor){.part = {t}, .n_parts = 1, .dtype = t->dtype, .ndim = t->ndim};
        snprintf(f->name, sizeof f->name, "%s", t->name);
        if (a->fused_proj && l >= 0) {
            const sq_layer *L = &m->layers[l];
            if (!strcmp(rest, SQ_NAME_ATTN_K) || !strcmp(rest, SQ_NAME_ATTN_V) ||
                !strcmp(rest, SQ_NAME_FFN_UP))
                continue; /* written within the fused tensor */
            const int qkv = !strcmp(rest, SQ_NAME_ATTN_Q);
            if (qkv || !strcmp(rest, SQ_NAME_FFN_GATE)) {
                snprintf(f->name, sizeof f->name, "blk.%d.%s", l,
                         qkv ? SQ_NAME_ATTN_QKV : SQ_NAME_FFN_GATE_UP);
                f->n_parts = qkv ? 3 : 2;
                f->part[0] = qkv ? L->wq : L->w_gate;
                f->part[1] = qkv ? L->wk : L->w_up;
                f->part[2] = qkv ? L->wv : NULL;
            }
        }
        for (int d = 0; d < SQ_MAX_DIMS; d++) f->shape[d] = t->shape[d];
        for (int p = 1; p < f->n_parts; p++) {
            const sq_tensor *q = f->part[p];
            if (q->dtype != t->dtype || q->ndim != 2 || q->shape[1] != t->shape[1]) {
                sq_error *err = sq_errorf(
                    SQ_ERR_UNSUPPORTED,
                    "%s: a %s file stores %s and %s as one tensor %s, but they are %s and %s; give them one "
                    "type (or write a format that keeps them apart)",
                    path, a->name, t->name, q->name, f->name, sq_dtype_info(t->dtype)->name,
                    sq_dtype_info(q->dtype)->name);
                free(list);
                return err;
            }
            f->shape[0] += q->shape[0];
        }
        f->nbytes = sq_tensor_bytes_for(f->dtype, f->ndim, f->shape);
        k++;
    }
    *out = list;
    *n = k;
    return NULL;
}

sq_error *sq_export_file_tensor(const sq_model *m, const sq_file_tensor *f, int to, sq_rope_style target_rope,
                                sq_export_buf *out) {
    if (f->n_parts == 1) return sq_export_tensor(m, f->part[0], to, target_rope, out);
    memset(out, 0, sizeof *out);
    sq_export_buf parts[3];
    size_t total = 0;
    int done = 0;
    sq_error *err = NULL;
    for (; done < f->n_parts && !err; done++) {
        err = sq_export_tensor(m, f->part[done], to, target_rope, &parts[done]);
        if (!err) total += parts[done].nbytes;
    }
    if (err) done--; /* the failed part holds nothing */
    unsigned char *buf = err ? NULL : malloc(total ? total : 1);
    if (!err && !buf) err = sq_errorf(SQ_ERR_NOMEM, "out of memory joining tensor %s", f->name);
    size_t off = 0;
    for (int i = 0; i < done; i++) {
        if (buf) memcpy(buf + off, parts[i].data, parts[i].nbytes);
        off += parts[i].nbytes;
        out->dtype = parts[i].dtype;
        sq_export_release(&parts[i]);
    }
    if (err) return err;
    out->data = out->owned = buf;
    out->nbytes = total;
    return NULL;
}
