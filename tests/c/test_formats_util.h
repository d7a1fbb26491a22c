/* Helpers for the format tests: tiny random models built in memory, and model comparison. */
#ifndef SQ_TEST_FORMATS_UTIL_H
#define SQ_TEST_FORMATS_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "formats/formats.h"
#include "formats/tensor_io.h"
#include "model/model.h"
#include "testlib.h"

typedef struct tiny_spec {
    const char *arch;
    int dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab;
    sq_dtype dtype; /* of the 2-D weights */
    int tied, bias, sliding_window, llama3;
    sq_rope_style rope;
} tiny_spec;

static inline void tiny_add(sq_model *m, uint64_t *seed, const char *name, sq_dtype dtype, int ndim,
                            int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1}, n = ndim == 1 ? d0 : d0 * d1;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = sq_test_rand_uniform(seed, -1, 1);
    size_t bytes = sq_tensor_bytes_for(dtype, ndim, shape);
    void *data = sq_model_host_alloc(bytes);
    sq_dtype_info(dtype)->from_f32(x, data, n);
    free(x);
    sq_test_ok(sq_model_add_tensor(m, name, dtype, ndim, shape, data, bytes, SQ_STORAGE_HOST));
}

/* A bound model with random weights. */
static inline sq_model *tiny_model(const tiny_spec *s, uint64_t seed) {
    sq_model *m = sq_model_new();
    sq_model_config *c = &m->cfg;
    snprintf(c->arch, sizeof c->arch, "%s", s->arch);
    c->dim = s->dim, c->n_layers = s->n_layers, c->n_heads = s->n_heads, c->n_kv_heads = s->n_kv_heads;
    c->head_dim = s->head_dim, c->ffn_dim = s->ffn_dim, c->vocab_size = s->vocab, c->max_seq_len = 64;
    c->rope_theta = s->llama3 ? 500000.0f : 10000.0f;
    c->norm_eps = 1e-5f;
    c->rope_style = s->rope;
    c->sliding_window = s->sliding_window;
    c->bos_id = 1;
    sq_test_ok(sq_model_add_eos(c, 2, NULL, "tiny"));
    if (s->llama3) c->rope_scaling = (sq_rope_scaling){SQ_ROPE_SCALING_LLAMA3, 8.0f, 1.0f, 4.0f, 8192};
    snprintf(m->file_format, sizeof m->file_format, "test");
    const int64_t q = (int64_t)s->n_heads * s->head_dim, kv = (int64_t)s->n_kv_heads * s->head_dim;
    tiny_add(m, &seed, SQ_NAME_TOK_EMBD, s->dtype, 2, s->vocab, s->dim);
    tiny_add(m, &seed, SQ_NAME_OUT_NORM, SQ_DTYPE_F32, 1, s->dim, 0);
    if (!s->tied) tiny_add(m, &seed, SQ_NAME_OUTPUT, s->dtype, 2, s->vocab, s->dim);
    for (int l = 0; l < s->n_layers; l++) {
        char name[SQ_TENSOR_NAME_MAX];
#define N(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
        tiny_add(m, &seed, N(SQ_NAME_ATTN_NORM), SQ_DTYPE_F32, 1, s->dim, 0);
        tiny_add(m, &seed, N(SQ_NAME_ATTN_Q), s->dtype, 2, q, s->dim);
        tiny_add(m, &seed, N(SQ_NAME_ATTN_K), s->dtype, 2, kv, s->dim);
        tiny_add(m, &seed, N(SQ_NAME_ATTN_V), s->dtype, 2, kv, s->dim);
        tiny_add(m, &seed, N(SQ_NAME_ATTN_OUT), s->dtype, 2, s->dim, q);
        if (s->bias) {
            tiny_add(m, &seed, N(SQ_NAME_ATTN_Q_BIAS), SQ_DTYPE_F32, 1, q, 0);
            tiny_add(m, &seed, N(SQ_NAME_ATTN_K_BIAS), SQ_DTYPE_F32, 1, kv, 0);
            tiny_add(m, &seed, N(SQ_NAME_ATTN_V_BIAS), SQ_DTYPE_F32, 1, kv, 0);
        }
        tiny_add(m, &seed, N(SQ_NAME_FFN_NORM), SQ_DTYPE_F32, 1, s->dim, 0);
        tiny_add(m, &seed, N(SQ_NAME_FFN_GATE), s->dtype, 2, s->ffn_dim, s->dim);
        tiny_add(m, &seed, N(SQ_NAME_FFN_UP), s->dtype, 2, s->ffn_dim, s->dim);
        tiny_add(m, &seed, N(SQ_NAME_FFN_DOWN), s->dtype, 2, s->dim, s->ffn_dim);
#undef N
    }
    sq_test_ok(sq_model_bind(m, "tiny"));
    return m;
}

/* Loads a model from any format without looking for a tokenizer (the formats are what is tested). */
static inline SQ_NODISCARD sq_error *load_plain(const char *path, sq_model **out) {
    sq_model *m = sq_model_new();
    struct stat st;
    char magic[4] = {0};
    FILE *fp = fopen(path, "rb");
    int is_gguf = fp && fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GGUF", 4);
    if (fp) fclose(fp);
    sq_error *err;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        err = sq_hf_load(path, m);
    else if (is_gguf)
        err = sq_gguf_load(path, m);
    else
        err = sq_llama2c_load(path, m);
    if (!err) err = sq_model_bind(m, path);
    *out = NULL;
    if (err) {
        sq_model_free(m);
        return err;
    }
    *out = m;
    return NULL;
}

/* Asserts that b holds the same config and tensors as a: equal bytes once both are in interleaved RoPE order
 * (and, when `plain` is a dtype, after converting a's tensors to it). */
static inline void assert_same_model(const sq_model *a, const sq_model *b, int convert_to) {
    const sq_model_config *x = &a->cfg, *y = &b->cfg;
    assert_string_equal(x->arch, y->arch);
    assert_int_equal(x->dim, y->dim);
    assert_int_equal(x->n_layers, y->n_layers);
    assert_int_equal(x->n_heads, y->n_heads);
    assert_int_equal(x->n_kv_heads, y->n_kv_heads);
    assert_int_equal(x->head_dim, y->head_dim);
    assert_int_equal(x->ffn_dim, y->ffn_dim);
    assert_int_equal(x->vocab_size, y->vocab_size);
    assert_int_equal(x->max_seq_len, y->max_seq_len);
    assert_int_equal(x->sliding_window, y->sliding_window);
    assert_int_equal(x->tied_embeddings, y->tied_embeddings);
    assert_true(x->rope_theta == y->rope_theta);
    assert_true(x->norm_eps == y->norm_eps);
    assert_int_equal(x->rope_scaling.type, y->rope_scaling.type);
    if (x->rope_scaling.type == SQ_ROPE_SCALING_LLAMA3) {
        assert_true(x->rope_scaling.factor == y->rope_scaling.factor);
        assert_int_equal(x->rope_scaling.original_max_pos, y->rope_scaling.original_max_pos);
        assert_float_equal(x->rope_scaling.low_freq_factor, y->rope_scaling.low_freq_factor, 1e-3);
        assert_float_equal(x->rope_scaling.high_freq_factor, y->rope_scaling.high_freq_factor, 1e-3);
    }
    for (int l = 0; l < x->n_layers; l++) {
        assert_int_equal(a->layers[l].n_heads, b->layers[l].n_heads);
        assert_int_equal(a->layers[l].n_kv_heads, b->layers[l].n_kv_heads);
        assert_int_equal(a->layers[l].ffn_dim, b->layers[l].ffn_dim);
    }
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const sq_tensor *ta = a->tensors[i], *tb = sq_model_find_tensor(b, ta->name);
        if (!tb) fail_msg("tensor %s is missing after the round trip", ta->name);
        int to = ta->ndim == 1 ? -1 : convert_to;
        assert_int_equal(to < 0 ? (int)ta->dtype : to, (int)tb->dtype);
        assert_int_equal(ta->ndim, tb->ndim);
        for (int d = 0; d < ta->ndim; d++) assert_int_equal(ta->shape[d], tb->shape[d]);
        sq_export_buf ea, eb;
        sq_test_ok(sq_export_tensor(a, ta, to, SQ_ROPE_INTERLEAVED, &ea));
        sq_test_ok(sq_export_tensor(b, tb, -1, SQ_ROPE_INTERLEAVED, &eb));
        assert_int_equal(ea.nbytes, eb.nbytes);
        if (memcmp(ea.data, eb.data, ea.nbytes)) fail_msg("tensor %s changed in the round trip", ta->name);
        sq_export_release(&ea);
        sq_export_release(&eb);
    }
}

#endif
