/* llama2.c checkpoints: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 * a negative vocab_size means an unshared classifier follows), then fp32 arrays in a fixed order. The
 * weights are used in place from the mapping. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "formats/formats.h"

sq_error *sq_llama2c_load(const char *path, sq_model *m) {
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(path, &f));
    SQ_TRY(sq_model_keep_file(m, f));
    int32_t h[7];
    if (f->size < sizeof h)
        return sq_errorf(SQ_ERR_FORMAT, "%s: %zu bytes is too short for a llama2.c header (28 bytes)", path,
                         f->size);
    memcpy(h, f->data, sizeof h);
    sq_model_config *c = &m->cfg;
    snprintf(c->arch, sizeof c->arch, "llama");
    snprintf(m->file_format, sizeof m->file_format, "llama2c");
    int shared = h[5] > 0;
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab_size = shared ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c->max_seq_len = h[6];
    c->rope_style = SQ_ROPE_INTERLEAVED;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->bos_id = 1; /* llama2.c models use the Llama-2 vocabulary conventions */
    c->eos_id = 2;
    const int64_t lim = 1 << 20;
    if (c->dim <= 0 || c->dim > lim || c->hidden_dim <= 0 || c->hidden_dim > lim || c->n_layers <= 0 ||
        c->n_layers > 4096 || c->n_heads <= 0 || c->n_heads > c->dim || c->n_kv_heads <= 0 ||
        c->n_kv_heads > c->n_heads || c->vocab_size <= 0 || c->vocab_size > lim || c->max_seq_len <= 0 ||
        c->max_seq_len > lim || c->dim % c->n_heads)
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: not a llama2.c checkpoint (implausible header: dim %d, hidden %d, layers %d, heads "
                         "%d, kv heads %d, vocab %d, seq_len %d)",
                         path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);

    const int64_t dim = c->dim, hid = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    const int64_t hd = dim / c->n_heads, kv = hd * c->n_kv_heads;
    size_t off = sizeof h;
    /* Each array is [L][rows][cols] (or [rows][cols] when per_layer is 0); the file order is fixed. */
    struct {
        const char *name;
        int per_layer;
        int64_t rows, cols;
    } arrays[] = {
        {SQ_NAME_TOK_EMBD, 0, V, dim},   {SQ_NAME_ATTN_NORM, 1, 1, dim}, {SQ_NAME_ATTN_Q, 1, dim, dim},
        {SQ_NAME_ATTN_K, 1, kv, dim},    {SQ_NAME_ATTN_V, 1, kv, dim},   {SQ_NAME_ATTN_OUT, 1, dim, dim},
        {SQ_NAME_FFN_NORM, 1, 1, dim},   {SQ_NAME_FFN_GATE, 1, hid, dim}, {SQ_NAME_FFN_DOWN, 1, dim, hid},
        {SQ_NAME_FFN_UP, 1, hid, dim},   {SQ_NAME_OUT_NORM, 0, 1, dim},
    };
    for (size_t a = 0; a < sizeof arrays / sizeof *arrays; a++) {
        for (int64_t l = 0; l < (arrays[a].per_layer ? L : 1); l++) {
            size_t bytes = (size_t)(arrays[a].rows * arrays[a].cols) * 4;
            if (off > f->size || f->size - off < bytes)
                return sq_errorf(SQ_ERR_FORMAT, "%s: truncated: %s%s needs bytes %zu..%zu but the file has %zu",
                                 path, arrays[a].per_layer ? "a layer's " : "", arrays[a].name, off, off + bytes,
                                 f->size);
            char name[SQ_TENSOR_NAME_MAX];
            if (arrays[a].per_layer)
                snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, arrays[a].name);
            else
                snprintf(name, sizeof name, "%s", arrays[a].name);
            int ndim = arrays[a].rows == 1 ? 1 : 2;
            int64_t shape[2] = {arrays[a].rows, arrays[a].cols};
            if (ndim == 1) shape[0] = arrays[a].cols;
            SQ_TRY(sq_model_add_tensor(m, name, SQ_DTYPE_F32, ndim, shape, (void *)(f->data + off), bytes,
                                       SQ_STORAGE_MAPPED));
            off += bytes;
        }
    }
    off += (size_t)(c->max_seq_len * (hd / 2)) * 4 * 2; /* legacy RoPE tables, unused */
    if (!shared) {
        size_t bytes = (size_t)(V * dim) * 4;
        if (off > f->size || f->size - off < bytes)
            return sq_errorf(SQ_ERR_FORMAT, "%s: truncated: the unshared classifier is missing", path);
        SQ_TRY(sq_model_add_tensor(m, SQ_NAME_OUTPUT, SQ_DTYPE_F32, 2, (int64_t[]){V, dim},
                                   (void *)(f->data + off), bytes, SQ_STORAGE_MAPPED));
    }
    return NULL;
}

sq_error *sq_llama2c_save(const sq_model *m, const char *path) {
    (void)m;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: llama2.c writer not built yet", path); /* PLACEHOLDER */
}
