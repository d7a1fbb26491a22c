#include "formats/tensor_io.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/rope_permute.h"

sq_error *sq_import_tensor(sq_model *m, const char *path, const char *name, sq_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes, float offset) {
    size_t expect = sq_tensor_bytes_for(dtype, ndim, shape);
    if (!expect || expect != nbytes)
        return sq_errorf(SQ_ERR_FORMAT, "%s: tensor %s: %zu bytes of %s data do not match its shape (%s)",
                         path, name, nbytes, sq_dtype_info(dtype)->name,
                         expect ? "size mismatch" : "invalid dimensions or not whole blocks");
    void *use = (void *)data, *owned = NULL;
    if (ndim == 1 && (dtype != SQ_DTYPE_F32 || offset != 0)) {
        float *f = owned = sq_model_host_alloc((size_t)shape[0] * sizeof(float));
        if (!f) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory converting %s", path, name);
        sq_dtype_info(dtype)->to_f32(data, f, shape[0]);
        for (int64_t i = 0; offset != 0 && i < shape[0]; i++) f[i] += offset;
        dtype = SQ_DTYPE_F32;
        nbytes = (size_t)shape[0] * sizeof(float);
    } else if ((uintptr_t)data % sq_dtype_info(dtype)->alignment) {
        if (!(owned = sq_model_host_alloc(nbytes)))
            return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory realigning %s", path, name);
        memcpy(owned, data, nbytes);
    }
    if (owned) use = owned;
    sq_error *err = sq_model_add_tensor(m, name, dtype, ndim, shape, use, nbytes,
                                        owned ? SQ_STORAGE_HOST : SQ_STORAGE_MAPPED);
    if (err) free(owned);
    return sq_error_wrap(err, "%s", path);
}

sq_error *sq_check_layer_shapes(const sq_model *m, const char *path, const sq_layer_widths *w) {
    const sq_model_config *c = &m->cfg;
    const int64_t hd = c->head_dim > 0 ? c->head_dim : (c->n_heads > 0 ? c->dim / c->n_heads : 0);
    const sq_layer_widths none = {0};
    if (!w) w = &none;
    for (int l = 0; l < c->n_layers; l++) {
        const struct {
            const char *suffix, *what;
            int64_t rows;
        } checks[] = {
            {SQ_NAME_ATTN_Q, "heads x head_dim", (w->n_heads ? w->n_heads[l] : c->n_heads) * hd},
            {SQ_NAME_ATTN_K, "kv heads x head_dim", (w->n_kv_heads ? w->n_kv_heads[l] : c->n_kv_heads) * hd},
            {SQ_NAME_FFN_GATE, "FFN width", w->ffn_dim ? w->ffn_dim[l] : c->ffn_dim}};
        for (size_t k = 0; k < sizeof checks / sizeof *checks; k++) {
            char name[SQ_TENSOR_NAME_MAX];
            snprintf(name, sizeof name, "blk.%d.%s", l, checks[k].suffix);
            const sq_tensor *t = sq_model_find_tensor(m, name);
            if (t && t->ndim == 2 && t->shape[0] != checks[k].rows)
                return sq_errorf(SQ_ERR_FORMAT,
                                 "%s: tensor %s has %lld rows but the config implies %lld (%s)", path, name,
                                 (long long)t->shape[0], (long long)checks[k].rows, checks[k].what);
        }
    }
    return NULL;
}

int sq_layers_uniform(const sq_model *m) {
    const sq_layer *L = m->layers;
    for (int l = 1; l < m->cfg.n_layers; l++)
        if (L[l].n_heads != L[0].n_heads || L[l].n_kv_heads != L[0].n_kv_heads ||
            L[l].ffn_dim != L[0].ffn_dim)
            return 0;
    return 1;
}

sq_error *sq_check_uniform_layers(const sq_model *m, const char *path, const char *format,
                                  const sq_width_names *names) {
    const sq_layer *L = m->layers;
    for (int l = 1; l < m->cfg.n_layers; l++) {
        const struct {
            const char *field;
            int value, first;
        } widths[] = {{names->n_heads, L[l].n_heads, L[0].n_heads},
                      {names->n_kv_heads, L[l].n_kv_heads, L[0].n_kv_heads},
                      {names->ffn_dim, L[l].ffn_dim, L[0].ffn_dim}};
        for (size_t k = 0; k < sizeof widths / sizeof *widths; k++)
            if (widths[k].value != widths[k].first)
                return sq_errorf(SQ_ERR_UNSUPPORTED,
                                 "%s: layer %d has %s %d but layer 0 has %d; a %s holds one value for all "
                                 "layers (GGUF can store per-layer values)",
                                 path, l, widths[k].field, widths[k].value, widths[k].first, format);
    }
    return NULL;
}

sq_error *sq_export_tensor(const sq_model *m, const sq_tensor *t, int to, sq_rope_style target_rope,
                           sq_export_buf *out) {
    memset(out, 0, sizeof *out);
    const sq_dtype from = t->dtype, dtype = to < 0 ? from : (sq_dtype)to;
    const sq_dtype_traits *tf = sq_dtype_info(from), *tt = sq_dtype_info(dtype);
    if (dtype != from && tt->block_elems > 1)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "tensor %s: cannot write %s data as %s", t->name, tf->name,
                         tt->name);
    const int permute = m->cfg.rope_style != target_rope && sq_rope_rotates_rows(t->name);
    out->dtype = dtype;
    if (dtype == from && !permute) {
        out->data = t->data;
        out->nbytes = t->nbytes;
        return NULL;
    }
    const int64_t row_len = sq_tensor_row_len(t), n_rows = t->ndim == 1 ? t->shape[0] : sq_tensor_n_rows(t);
    const size_t row_bytes = t->ndim == 1 ? tt->block_bytes : sq_row_bytes(dtype, row_len);
    const size_t nbytes = (size_t)n_rows * row_bytes;
    unsigned char *conv = NULL, *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return sq_errorf(SQ_ERR_NOMEM, "out of memory preparing tensor %s", t->name);
    const unsigned char *src = t->data;
    if (dtype != from) { /* plain target: go through f32 one row at a time */
        float *row = malloc((size_t)row_len * sizeof *row);
        if (!row) {
            free(buf);
            return sq_errorf(SQ_ERR_NOMEM, "out of memory converting tensor %s", t->name);
        }
        conv = permute ? malloc(nbytes ? nbytes : 1) : buf;
        if (!conv) {
            free(row);
            free(buf);
            return sq_errorf(SQ_ERR_NOMEM, "out of memory converting tensor %s", t->name);
        }
        const int64_t rows = sq_tensor_n_rows(t);
        for (int64_t r = 0; r < rows; r++) {
            sq_tensor_row_to_f32(t, r, row);
            tt->from_f32(row, conv + (size_t)r * sq_row_bytes(dtype, row_len), row_len);
        }
        free(row);
        src = conv;
    }
    if (permute) {
        if (n_rows % m->cfg.head_dim) {
            if (conv != buf) free(conv);
            free(buf);
            return sq_errorf(SQ_ERR_FORMAT, "tensor %s: %lld rows are not whole heads of %d", t->name,
                             (long long)n_rows, m->cfg.head_dim);
        }
        sq_rope_permute_rows(src, buf, n_rows, row_bytes, m->cfg.head_dim, m->cfg.rope_dims,
                             m->cfg.rope_style, target_rope);
        if (conv != buf) free(conv);
    }
    out->data = out->owned = buf;
    out->nbytes = nbytes;
    return NULL;
}

void sq_export_release(sq_export_buf *b) {
    free(b->owned);
    memset(b, 0, sizeof *b);
}
