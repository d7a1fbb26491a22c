/* llama2.c checkpoints: seven int32 (dim, ffn_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 * a negative vocab_size means an unshared classifier follows), then fp32 arrays in a fixed order. The
 * weights are used in place from the mapping. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "formats/formats.h"
#include "formats/out_file.h"
#include "formats/tensor_io.h"

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
    c->ffn_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab_size = shared ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c->max_seq_len = h[6];
    c->rope_style = SQ_ROPE_INTERLEAVED;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    const int64_t lim = 1 << 20;
    if (c->dim <= 0 || c->dim > lim || c->ffn_dim <= 0 || c->ffn_dim > lim || c->n_layers <= 0 ||
        c->n_layers > 4096 || c->n_heads <= 0 || c->n_heads > c->dim || c->n_kv_heads <= 0 ||
        c->n_kv_heads > c->n_heads || c->vocab_size <= 0 || c->vocab_size > lim || c->max_seq_len <= 0 ||
        c->max_seq_len > lim || c->dim % c->n_heads)
        return sq_errorf(
            SQ_ERR_FORMAT,
            "%s: not a llama2.c checkpoint (implausible header: dim %d, hidden %d, layers %d, heads "
            "%d, kv heads %d, vocab %d, seq_len %d)",
            path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    c->bos_id = 1; /* llama2.c models use the Llama-2 vocabulary conventions */
    SQ_TRY(sq_model_add_eos(c, 2, &m->warnings, path));

    const int64_t dim = c->dim, hid = c->ffn_dim, L = c->n_layers, V = c->vocab_size;
    const int64_t hd = dim / c->n_heads, kv = hd * c->n_kv_heads;
    size_t off = sizeof h;
    /* Each array is [L][rows][cols] (or [rows][cols] when per_layer is 0); the file order is fixed. */
    struct {
        const char *name;
        int per_layer;
        int64_t rows, cols;
    } arrays[] = {
        {SQ_NAME_TOK_EMBD, 0, V, dim}, {SQ_NAME_ATTN_NORM, 1, 1, dim},  {SQ_NAME_ATTN_Q, 1, dim, dim},
        {SQ_NAME_ATTN_K, 1, kv, dim},  {SQ_NAME_ATTN_V, 1, kv, dim},    {SQ_NAME_ATTN_OUT, 1, dim, dim},
        {SQ_NAME_FFN_NORM, 1, 1, dim}, {SQ_NAME_FFN_GATE, 1, hid, dim}, {SQ_NAME_FFN_DOWN, 1, dim, hid},
        {SQ_NAME_FFN_UP, 1, hid, dim}, {SQ_NAME_OUT_NORM, 0, 1, dim},
    };
    for (size_t a = 0; a < sizeof arrays / sizeof *arrays; a++) {
        for (int64_t l = 0; l < (arrays[a].per_layer ? L : 1); l++) {
            size_t bytes = (size_t)(arrays[a].rows * arrays[a].cols) * 4;
            if (off > f->size || f->size - off < bytes)
                return sq_errorf(
                    SQ_ERR_FORMAT, "%s: truncated: %s%s needs bytes %zu..%zu but the file has %zu", path,
                    arrays[a].per_layer ? "a layer's " : "", arrays[a].name, off, off + bytes, f->size);
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

/* What the llama2.c format cannot express, as an error naming it; NULL when the model fits. */
static SQ_NODISCARD sq_error *check_representable(const sq_model *m, const char *path) {
    const sq_model_config *c = &m->cfg;
    const char *why = NULL;
    if (strcmp(c->arch, "llama") && strcmp(c->arch, "mistral"))
        why = "only llama-architecture models fit";
    else if (c->sliding_window > 0)
        why = "it has no sliding-window attention";
    else if (c->head_dim * c->n_heads != c->dim)
        why = "its head dimension is always dim / n_heads";
    else if (c->rope_scaling.type != SQ_ROPE_SCALING_NONE)
        why = "it has no RoPE scaling";
    else if (c->rope_dims != c->head_dim)
        why = "RoPE rotates whole heads (no partial rotary)";
    else if (c->rope_theta != 10000.0f || c->norm_eps != 1e-5f)
        why = "RoPE theta 10000 and RMSNorm epsilon 1e-5 are fixed";
    for (int l = 0; !why && l < c->n_layers; l++) {
        const sq_layer *L = &m->layers[l];
        if (L->bq || L->bk || L->bv) why = "it has no attention biases";
    }
    if (!why && sq_model_has_lowrank(m)) why = "it has no low-rank (factorised) weights; write GGUF";
    for (int i = 0; !why && i < m->n_tensors; i++)
        if (sq_dtype_info(m->tensors[i]->dtype)->block_elems > 1)
            why = "it holds fp32 only, and dequantizing would not restore the original weights";
    if (why)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: cannot write this model as a llama2.c checkpoint: %s", path,
                         why);
    static const sq_width_names header_names = {"n_heads", "n_kv_heads", "hidden_dim"};
    return sq_check_uniform_layers(m, path, "llama2.c checkpoint", &header_names);
}

static SQ_NODISCARD sq_error *write_tensor(sq_out_file *o, const sq_model *m, const sq_tensor *t) {
    sq_export_buf buf;
    SQ_TRY(sq_export_tensor(m, t, SQ_DTYPE_F32, SQ_ROPE_INTERLEAVED, &buf));
    sq_out_write(o, buf.data, buf.nbytes);
    sq_export_release(&buf);
    return NULL;
}

/* The legacy RoPE tables llama2.c's export writes: cos, then sin, of pos * theta^(-2i/head_dim), computed in
 * float32 as its PyTorch code does. */
static void write_rope_tables(sq_out_file *o, const sq_model_config *c) {
    const int half = c->head_dim / 2;
    for (int table = 0; table < 2; table++)
        for (int pos = 0; pos < c->max_seq_len; pos++)
            for (int i = 0; i < half; i++) {
                float freq = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
                float angle = (float)pos * freq;
                float v = table == 0 ? cosf(angle) : sinf(angle);
                sq_out_write(o, &v, sizeof v);
            }
}

sq_error *sq_llama2c_save(const sq_model *m, const char *path) {
    SQ_TRY(check_representable(m, path));
    const sq_model_config *c = &m->cfg;
    const int32_t header[7] = {c->dim,        c->ffn_dim,
                               c->n_layers,   c->n_heads,
                               c->n_kv_heads, c->tied_embeddings ? c->vocab_size : -c->vocab_size,
                               c->max_seq_len};
    sq_out_file o;
    SQ_TRY(sq_out_open(&o, path));
    sq_out_write(&o, header, sizeof header);
    sq_error *err = write_tensor(&o, m, m->tok_embd);
    /* per-layer arrays in the file's order: each array holds that weight for every layer */
    for (int a = 0; a < 9 && !err; a++)
        for (int l = 0; l < c->n_layers && !err; l++) {
            const sq_layer *L = &m->layers[l];
            const sq_tensor *order[9] = {L->attn_norm, L->wq,     L->wk,     L->wv,  L->wo,
                                         L->ffn_norm,  L->w_gate, L->w_down, L->w_up};
            err = write_tensor(&o, m, order[a]);
        }
    if (!err) err = write_tensor(&o, m, m->out_norm);
    if (!err) write_rope_tables(&o, c);
    if (!err && !c->tied_embeddings) err = write_tensor(&o, m, m->output);
    return sq_out_close(&o, err ? sq_error_wrap(err, "%s", path) : NULL);
}
