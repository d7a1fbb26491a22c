/* Changing a model as compression will (squeeze.h "changing a model"): tensors keep their addresses; edits
 * replace, re-encode, add and remove tensors and drop or reorder blocks; every refused change leaves the
 * model exactly as it was; a mapped file is never written; a changed model saves and loads back as the same
 * model in every format that can hold it. The numbers a changed model computes are checked against the
 * float64 reference in tests/py/test_model_edit.py. */
#include <math.h>

#include "test_formats_util.h"

static const tiny_spec llama_f32 = {"llama", 64,           3, 4, 2, 16, 96,
                                    70,      SQ_DTYPE_F32, 0, 0, 0, 0,  SQ_ROPE_INTERLEAVED};
static const tiny_spec qwen2_bias = {"qwen2", 64,           2, 4, 2, 16, 96,
                                     70,      SQ_DTYPE_F16, 1, 1, 0, 0,  SQ_ROPE_HALVES};

static float *random_values(int64_t n, uint64_t seed) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = sq_test_rand_uniform(&seed, -1, 1);
    return v;
}

/* Everything an edit could change, to check that a refused one changed nothing. */
typedef struct snapshot {
    sq_model_config cfg;
    int n_tensors;
    sq_tensor **ptrs;      /* [n_tensors] */
    sq_tensor *values;     /* [n_tensors] */
    unsigned char **bytes; /* [n_tensors] copies of the data */
    sq_layer *layers;      /* [n_layers] */
} snapshot;

static snapshot take_snapshot(const sq_model *m) {
    snapshot s = {m->cfg,
                  m->n_tensors,
                  malloc(m->n_tensors * sizeof(sq_tensor *)),
                  malloc(m->n_tensors * sizeof(sq_tensor)),
                  malloc(m->n_tensors * sizeof(void *)),
                  malloc(m->cfg.n_layers * sizeof(sq_layer))};
    for (int i = 0; i < m->n_tensors; i++) {
        s.ptrs[i] = m->tensors[i];
        s.values[i] = *m->tensors[i];
        s.bytes[i] = malloc(m->tensors[i]->nbytes);
        memcpy(s.bytes[i], m->tensors[i]->data, m->tensors[i]->nbytes);
    }
    memcpy(s.layers, m->layers, m->cfg.n_layers * sizeof(sq_layer));
    return s;
}

static void assert_unchanged(const sq_model *m, snapshot *s) {
    assert_memory_equal(&m->cfg, &s->cfg, sizeof m->cfg);
    assert_int_equal(m->n_tensors, s->n_tensors);
    for (int i = 0; i < s->n_tensors; i++) {
        assert_ptr_equal(m->tensors[i], s->ptrs[i]);
        assert_memory_equal(m->tensors[i], &s->values[i], sizeof(sq_tensor));
        assert_memory_equal(m->tensors[i]->data, s->bytes[i], m->tensors[i]->nbytes);
        free(s->bytes[i]);
    }
    assert_memory_equal(m->layers, s->layers, m->cfg.n_layers * sizeof(sq_layer));
    free(s->ptrs), free(s->values), free(s->bytes), free(s->layers);
}

/* Saves in `format` and loads back. */
static sq_model *round_trip(const sq_model *m, const char *file, sq_file_format format) {
    sq_test_ok(sq_model_save(m, sq_test_work(file), format));
    sq_model *back;
    sq_test_ok(load_plain(sq_test_work(file), &back));
    return back;
}

static void test_stable_addresses(void **state) {
    (void)state;
    sq_model *m = sq_model_new();
    enum { N = 300 }; /* several times the list's first capacity */
    const sq_tensor *seen[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        float *data = sq_model_host_alloc(8 * sizeof *data);
        for (int k = 0; k < 8; k++) data[k] = (float)(i * 8 + k);
        sq_test_ok(sq_model_add_tensor(m, name, SQ_DTYPE_F32, 1, (int64_t[]){8}, data, 32, SQ_STORAGE_HOST));
        seen[i] = sq_model_find_tensor(m, name);
    }
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        assert_ptr_equal(sq_model_find_tensor(m, name), seen[i]);
        assert_string_equal(seen[i]->name, name);
        assert_true(((const float *)seen[i]->data)[7] == (float)(i * 8 + 7));
    }
    sq_model_free(m);

    /* replacing a tensor's data keeps its sq_tensor (and so every layer's pointer to it) */
    m = tiny_model(&llama_f32, 1);
    const sq_tensor *wq = m->layers[1].wq;
    const int64_t n = sq_tensor_nelements(wq);
    float *v = random_values(n, 2);
    sq_tensor_edit e = {.name = "blk.1.attn_q.weight", .values = v};
    sq_test_ok(sq_model_edit_tensors(m, &e, 1));
    assert_ptr_equal(m->layers[1].wq, wq);
    assert_ptr_equal(sq_model_find_tensor(m, "blk.1.attn_q.weight"), wq);
    assert_memory_equal(wq->data, v, (size_t)n * sizeof *v);
    free(v);
    sq_model_free(m);
}

static void test_layer_info(void **state) {
    (void)state;
    sq_model *m = tiny_model(&qwen2_bias, 3);
    for (int l = 0; l < 2; l++) {
        sq_layer_info li;
        sq_test_ok(sq_model_layer_info(m, l, &li));
        assert_int_equal(li.n_heads, 4);
        assert_int_equal(li.n_kv_heads, 2);
        assert_int_equal(li.head_dim, 16);
        assert_int_equal(li.ffn_dim, 96);
        assert_true(li.has_qkv_bias);
        /* 2 norms, q [64][64], k/v [32][64], o [64][64], biases 64+32+32, gate/up/down 96x64 */
        const int64_t params = 2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 128 + 3 * 96 * 64;
        assert_int_equal(li.n_params, params);
        /* f16 matrices, f32 norms and biases */
        assert_int_equal(li.weight_bytes, (size_t)(2 * 64 + 128) * 4 + (size_t)(params - 2 * 64 - 128) * 2);
    }
    sq_layer_info li;
    sq_test_fails_with(sq_model_layer_info(m, 2, &li), "layer 2 is outside 0..1");
    sq_test_fails_with(sq_model_layer_info(m, -1, &li), "outside");
    sq_model_free(m);
}

static void test_read_tensor(void **state) {
    (void)state;
    tiny_spec s = llama_f32;
    s.dtype = SQ_DTYPE_Q4_1;
    sq_model *m = tiny_model(&s, 4);
    const sq_tensor *t = m->layers[0].w_up;
    const int64_t n = sq_tensor_nelements(t);
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    sq_test_ok(sq_model_read_tensor(m, "blk.0.ffn_up.weight", got, n));
    /* Q4_1 by hand: value = nibble * d + m, element j in the low nibble of byte j, j+16 in the high */
    const sq_block_q4_1 *b = t->data;
    for (int64_t i = 0; i < n; i++) {
        const sq_block_q4_1 *blk = &b[i / 32];
        int j = (int)(i % 32), nib = j < 16 ? blk->qs[j] & 15 : blk->qs[j - 16] >> 4;
        want[i] = nib * sq_f16_to_f32(blk->d) + sq_f16_to_f32(blk->m);
    }
    assert_memory_equal(got, want, n * sizeof *got);
    sq_test_fails_with(sq_model_read_tensor(m, "blk.0.ffn_up.weight", got, n - 1), "elements, not");
    sq_test_fails_with(sq_model_read_tensor(m, "blk.9.ffn_up.weight", got, n),
                       "no tensor blk.9.ffn_up.weight");
    free(got), free(want);
    sq_model_free(m);
}

/* Replaced values survive saving and loading in every format; a re-encoded tensor holds exactly the reference
 * quantizer's output. */
static void test_replace_and_round_trip(void **state) {
    (void)state;
    sq_model *m = tiny_model(&llama_f32, 5);
    const int64_t n_v = 32 * 64, n_down = 64 * 96;
    float *v = random_values(n_v, 6), *down = random_values(n_down, 7);
    const sq_tensor_edit edits[] = {
        {.name = "blk.2.attn_v.weight", .values = v},
        {.name = "blk.0.ffn_down.weight", .dtype = "f16", .values = down},
    };
    sq_test_ok(sq_model_edit_tensors(m, edits, 2));
    assert_int_equal(m->layers[0].w_down->dtype, SQ_DTYPE_F16);
    const struct {
        const char *file;
        sq_file_format format;
    } targets[] = {{"edit-rt.gguf", SQ_FORMAT_GGUF}, {"edit-rt-hf", SQ_FORMAT_SAFETENSORS}};
    for (int k = 0; k < 2; k++) {
        sq_model *back = round_trip(m, targets[k].file, targets[k].format);
        assert_same_model(m, back, -1);
        float *got = malloc(n_down * sizeof *got);
        sq_test_ok(sq_model_read_tensor(back, "blk.2.attn_v.weight", got, n_v));
        assert_memory_equal(got, v, n_v * sizeof *v);
        sq_test_ok(sq_model_read_tensor(back, "blk.0.ffn_down.weight", got, n_down));
        for (int64_t i = 0; i < n_down; i++) assert_true(got[i] == sq_f16_to_f32(sq_f32_to_f16(down[i])));
        free(got);
        sq_model_free(back);
    }
    /* llama2.c holds fp32 only: the f16 tensor is written as its exact fp32 values */
    sq_model *back = round_trip(m, "edit-rt.bin", SQ_FORMAT_LLAMA2C);
    assert_same_model(m, back, SQ_DTYPE_F32);
    sq_model_free(back);

    /* quantize in place: the tensor's own values through the reference quantizer, then GGUF and back */
    const sq_tensor *up = m->layers[1].w_up;
    float *orig = malloc(96 * 64 * sizeof *orig);
    sq_test_ok(sq_model_read_tensor(m, "blk.1.ffn_up.weight", orig, 96 * 64));
    unsigned char *expect = malloc(sq_row_bytes(SQ_DTYPE_Q4_0, 64) * 96);
    sq_dtype_info(SQ_DTYPE_Q4_0)->from_f32(orig, expect, 96 * 64);
    sq_tensor_edit q = {.name = "blk.1.ffn_up.weight", .dtype = "q4_0"};
    sq_test_ok(sq_model_edit_tensors(m, &q, 1));
    assert_ptr_equal(m->layers[1].w_up, up);
    assert_int_equal(up->dtype, SQ_DTYPE_Q4_0);
    assert_int_equal(up->nbytes, sq_row_bytes(SQ_DTYPE_Q4_0, 64) * 96);
    assert_memory_equal(up->data, expect, up->nbytes);
    back = round_trip(m, "edit-rt-q.gguf", SQ_FORMAT_GGUF);
    assert_same_model(m, back, -1);
    sq_model_free(back);
    sq_test_fails_with(sq_model_save(m, sq_test_work("edit-rt-q-hf"), SQ_FORMAT_SAFETENSORS),
                       "safetensors cannot hold q4_0");

    /* raw bytes in a block layout are taken as they are */
    sq_tensor_edit raw = {
        .name = "blk.0.ffn_gate.weight", .dtype = "q4_0", .data = expect, .nbytes = up->nbytes};
    sq_test_ok(sq_model_edit_tensors(m, &raw, 1));
    assert_memory_equal(m->layers[0].w_gate->data, expect, up->nbytes);
    raw.nbytes--;
    sq_test_fails_with(sq_model_edit_tensors(m, &raw, 1), "bytes of data but");
    free(v), free(down), free(orig), free(expect);
    sq_model_free(m);
}

/* Each refused change names the problem and leaves the model as it was. */
static void test_refused_edits_change_nothing(void **state) {
    (void)state;
    sq_model *m = tiny_model(&qwen2_bias, 8);
    float *v = random_values(96 * 64, 9);
    const struct {
        sq_tensor_edit edits[2];
        int n;
        const char *why;
    } cases[] = {
        /* a narrower attn_q without attn_output: inconsistent, found when binding */
        {{{.name = "blk.0.attn_q.weight", .ndim = 2, .shape = {32, 64}, .values = v}},
         1,
         "blk.0.attn_output"},
        /* the first edit is fine, the second names no format */
        {{{.name = "blk.1.ffn_up.weight", .dtype = "q8_0"}, {.name = "blk.1.ffn_down.weight", .dtype = "q9"}},
         2,
         "unknown format name"},
        {{{.name = "blk.0.attn_norm.weight", .dtype = "f16"}}, 1, "must be f32"},
        {{{.name = "blk.0.attn_q.bias", .remove = 1}, {.name = "blk.0.ffn_up.weight", .dtype = "q4_1"}},
         2,
         "blk.0 has only some of the q/k/v biases"},
        {{{.name = "blk.0.ffn_norm.weight", .remove = 1}}, 1, "blk.0.ffn_norm.weight is missing"},
        {{{.name = "blk.0.attn_output.bias", .dtype = "f32", .ndim = 1, .shape = {64}, .values = v}},
         1,
         "blk.0.attn_output.bias is not part of a qwen2 model"},
        {{{.name = "blk.7.ffn_up.weight", .remove = 1}}, 1, "no tensor blk.7.ffn_up.weight to remove"},
        {{{.name = "blk.1.ffn_up.weight", .dtype = "q8_0"}, {.name = "blk.1.ffn_up.weight", .dtype = "f16"}},
         2,
         "edited twice"},
        {{{.name = "blk.1.ffn_up.weight", .ndim = 2, .shape = {96, 60}, .dtype = "q8_0", .values = v}},
         1,
         "invalid shape for q8_0"},
        {{{.name = "blk.1.ffn_up.weight", .ndim = 2, .shape = {48, 64}, .dtype = "q8_0"}},
         1,
         "re-encoding keeps the shape"},
        {{{.name = "blk.1.ffn_up.weight", .values = v, .data = v, .nbytes = 4}}, 1, "both values and data"},
        {{{.name = "blk.1.new.weight", .values = v}}, 1, "needs a format"},
        {{{.name = "blk.1.new.weight", .dtype = "f32", .values = v}}, 1, "needs a shape"},
        {{{.name = NULL}}, 1, "no tensor name"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        snapshot s = take_snapshot(m);
        sq_error *err = sq_model_edit_tensors(m, cases[k].edits, cases[k].n);
        if (!err) fail_msg("case %zu (%s) was accepted", k, cases[k].why);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_INVALID_ARG);
        sq_test_fails_with(err, cases[k].why);
        assert_unchanged(m, &s);
    }
    const int bad_orders[][3] = {{0, 0}, {0, 2}, {-1, 1}};
    for (size_t k = 0; k < 3; k++) {
        snapshot s = take_snapshot(m);
        sq_test_fails_with(sq_model_set_layers(m, bad_orders[k], 2),
                           k == 0 ? "listed twice" : "outside 0..1");
        assert_unchanged(m, &s);
    }
    snapshot s = take_snapshot(m);
    sq_test_fails_with(sq_model_set_layers(m, bad_orders[0], 3), "3 blocks requested; the model has 2");
    sq_test_fails_with(sq_model_set_layers(m, bad_orders[0], 0), "0 blocks requested");
    assert_unchanged(m, &s);
    free(v);
    sq_model_free(m);
}

/* Removing and adding tensors: the q/k/v biases of a Qwen2 model go, the model binds without them and its
 * HF config says attention_bias false; added back, they are there again. */
static void test_remove_and_add(void **state) {
    (void)state;
    sq_model *m = tiny_model(&qwen2_bias, 10);
    snprintf(m->cfg.arch, sizeof m->cfg.arch, "llama"); /* a Qwen2 checkpoint always has biases */
    sq_tensor_edit rm[6];
    char names[6][SQ_TENSOR_NAME_MAX];
    const char *suffix[3] = {SQ_NAME_ATTN_Q_BIAS, SQ_NAME_ATTN_K_BIAS, SQ_NAME_ATTN_V_BIAS};
    for (int k = 0; k < 6; k++) {
        snprintf(names[k], sizeof names[k], "blk.%d.%s", k / 3, suffix[k % 3]);
        rm[k] = (sq_tensor_edit){.name = names[k], .remove = 1};
    }
    const int before = m->n_tensors;
    sq_test_ok(sq_model_edit_tensors(m, rm, 6));
    assert_int_equal(m->n_tensors, before - 6);
    assert_null(m->layers[0].bq);
    sq_layer_info li;
    sq_test_ok(sq_model_layer_info(m, 1, &li));
    assert_false(li.has_qkv_bias);
    sq_model *back = round_trip(m, "edit-nobias-hf", SQ_FORMAT_SAFETENSORS);
    assert_same_model(m, back, -1);
    sq_model_free(back);

    float *b = random_values(64, 11);
    const sq_tensor_edit add[] = {
        {.name = "blk.1.attn_q.bias", .dtype = "f32", .ndim = 1, .shape = {64}, .values = b},
        {.name = "blk.1.attn_k.bias", .dtype = "f32", .ndim = 1, .shape = {32}, .values = b},
        {.name = "blk.1.attn_v.bias", .dtype = "f32", .ndim = 1, .shape = {32}, .values = b + 32},
    };
    sq_test_fails_with(sq_model_edit_tensors(m, add, 1), "blk.1 has only some of the q/k/v biases");
    sq_test_ok(sq_model_edit_tensors(m, add, 3));
    assert_non_null(m->layers[1].bq);
    assert_null(m->layers[0].bq);
    assert_memory_equal(m->layers[1].bq->data, b, 64 * sizeof *b);
    assert_memory_equal(m->layers[1].bv->data, b + 32, 32 * sizeof *b);
    free(b);
    sq_model_free(m);
}

/* Dropping and reordering blocks renames their tensors; the result saves and loads back as itself. */
static void test_set_layers(void **state) {
    (void)state;
    sq_model *m = tiny_model(&llama_f32, 12);
    const sq_tensor *old[3][2];
    for (int l = 0; l < 3; l++) old[l][0] = m->layers[l].wq, old[l][1] = m->layers[l].w_down;
    const int per_layer = 9, before = m->n_tensors;
    sq_test_ok(sq_model_set_layers(m, (int[]){2, 0}, 2));
    assert_int_equal(m->cfg.n_layers, 2);
    assert_int_equal(m->n_tensors, before - per_layer);
    assert_ptr_equal(m->layers[0].wq, old[2][0]);
    assert_ptr_equal(m->layers[0].w_down, old[2][1]);
    assert_ptr_equal(m->layers[1].wq, old[0][0]);
    assert_string_equal(m->layers[0].wq->name, "blk.0.attn_q.weight");
    assert_string_equal(m->layers[1].w_down->name, "blk.1.ffn_down.weight");
    assert_null(sq_model_find_tensor(m, "blk.2.attn_q.weight"));
    sq_model_info info;
    sq_model_get_info(m, &info);
    assert_int_equal(info.n_layers, 2);
    const sq_file_format formats[] = {SQ_FORMAT_GGUF, SQ_FORMAT_SAFETENSORS, SQ_FORMAT_LLAMA2C};
    const char *files[] = {"edit-layers.gguf", "edit-layers-hf", "edit-layers.bin"};
    for (int k = 0; k < 3; k++) {
        sq_model *back = round_trip(m, files[k], formats[k]);
        assert_same_model(m, back, -1);
        sq_model_free(back);
    }
    sq_model_free(m);
}

/* Per-layer head counts and widths after width pruning: GGUF keeps them, and the per-layer facts are right.
 */
static void test_width_pruning_round_trip(void **state) {
    (void)state;
    sq_model *m = tiny_model(&llama_f32, 13);
    /* block 0 keeps query heads 0-1 and kv head 0 (GQA groups of 2 stay whole); block 2 keeps 40 FFN units */
    const int hd = 16, dim = 64;
    float *q = malloc(64 * 64 * sizeof *q), *k = malloc(32 * 64 * sizeof *k),
          *vv = malloc(32 * 64 * sizeof *vv), *o = malloc(64 * 64 * sizeof *o),
          *o2 = malloc(64 * 32 * sizeof *o2);
    sq_test_ok(sq_model_read_tensor(m, "blk.0.attn_q.weight", q, 64 * 64));
    sq_test_ok(sq_model_read_tensor(m, "blk.0.attn_k.weight", k, 32 * 64));
    sq_test_ok(sq_model_read_tensor(m, "blk.0.attn_v.weight", vv, 32 * 64));
    sq_test_ok(sq_model_read_tensor(m, "blk.0.attn_output.weight", o, 64 * 64));
    for (int r = 0; r < dim; r++) memcpy(o2 + r * 2 * hd, o + r * 64, 2 * hd * sizeof *o);
    const sq_tensor_edit heads[] = {
        {.name = "blk.0.attn_q.weight", .ndim = 2, .shape = {2 * hd, dim}, .values = q},
        {.name = "blk.0.attn_k.weight", .ndim = 2, .shape = {hd, dim}, .values = k},
        {.name = "blk.0.attn_v.weight", .ndim = 2, .shape = {hd, dim}, .values = vv},
        {.name = "blk.0.attn_output.weight", .ndim = 2, .shape = {dim, 2 * hd}, .values = o2},
    };
    sq_test_ok(sq_model_edit_tensors(m, heads, 4));
    float *gate = malloc(96 * 64 * sizeof *gate), *up = malloc(96 * 64 * sizeof *up),
          *down = malloc(64 * 96 * sizeof *down), *down2 = malloc(64 * 40 * sizeof *down2);
    sq_test_ok(sq_model_read_tensor(m, "blk.2.ffn_gate.weight", gate, 96 * 64));
    sq_test_ok(sq_model_read_tensor(m, "blk.2.ffn_up.weight", up, 96 * 64));
    sq_test_ok(sq_model_read_tensor(m, "blk.2.ffn_down.weight", down, 64 * 96));
    for (int r = 0; r < dim; r++) memcpy(down2 + r * 40, down + r * 96, 40 * sizeof *down);
    const sq_tensor_edit ffn[] = {
        {.name = "blk.2.ffn_gate.weight", .ndim = 2, .shape = {40, dim}, .values = gate},
        {.name = "blk.2.ffn_up.weight", .ndim = 2, .shape = {40, dim}, .values = up},
        {.name = "blk.2.ffn_down.weight", .ndim = 2, .shape = {dim, 40}, .values = down2},
    };
    sq_test_ok(sq_model_edit_tensors(m, ffn, 3));
    const int want[3][3] = {{2, 1, 96}, {4, 2, 96}, {4, 2, 40}};
    for (int l = 0; l < 3; l++) {
        sq_layer_info li;
        sq_test_ok(sq_model_layer_info(m, l, &li));
        assert_int_equal(li.n_heads, want[l][0]);
        assert_int_equal(li.n_kv_heads, want[l][1]);
        assert_int_equal(li.ffn_dim, want[l][2]);
    }
    sq_model *back = round_trip(m, "edit-widths.gguf", SQ_FORMAT_GGUF);
    assert_same_model(m, back, -1);
    sq_model_info info;
    sq_model_get_info(back, &info);
    assert_int_equal(info.n_heads, 4); /* the largest */
    assert_int_equal(info.ffn_dim, 96);
    sq_model_free(back);
    sq_test_fails_with(sq_model_save(m, sq_test_work("edit-widths-hf"), SQ_FORMAT_SAFETENSORS),
                       "layer 1 has num_attention_heads 4 but layer 0 has 2");
    sq_test_fails_with(sq_model_save(m, sq_test_work("edit-widths.bin"), SQ_FORMAT_LLAMA2C),
                       "layer 1 has n_heads 4 but layer 0 has 2; a llama2.c checkpoint");
    free(q), free(k), free(vv), free(o), free(o2), free(gate), free(up), free(down), free(down2);
    sq_model_free(m);
}

/* Edits of a model mapped from a file put new data in host memory: the mapping (and the file) keep their
 * bytes, and the edited tensors no longer point into it. */
static void test_mapping_never_written(void **state) {
    (void)state;
    sq_model *m = tiny_model(&llama_f32, 14);
    const char *path = sq_test_work("edit-mapped.gguf");
    sq_test_ok(sq_model_save(m, path, SQ_FORMAT_GGUF));
    sq_model_free(m);
    sq_test_ok(load_plain(path, &m));
    assert_int_equal(m->n_files, 1);
    const sq_mapped_file *f = m->files[0];
    unsigned char *copy = malloc(f->size);
    memcpy(copy, f->data, f->size);
    const sq_tensor *up = m->layers[1].w_up;
    assert_int_equal(up->storage, SQ_STORAGE_MAPPED);
    float *v = random_values(96 * 64, 15);
    const sq_tensor_edit edits[] = {
        {.name = "blk.1.ffn_up.weight", .values = v},
        {.name = "blk.0.attn_q.weight", .dtype = "q8_0"},
        {.name = "blk.2.attn_norm.weight", .values = v},
    };
    sq_test_ok(sq_model_edit_tensors(m, edits, 3));
    sq_test_ok(sq_model_set_layers(m, (int[]){1, 2}, 2));
    for (int i = 0; i < m->n_tensors; i++) {
        const sq_tensor *t = m->tensors[i];
        const int inside =
            (const unsigned char *)t->data >= f->data && (const unsigned char *)t->data < f->data + f->size;
        assert_int_equal(inside, t->storage == SQ_STORAGE_MAPPED);
    }
    assert_int_equal(m->layers[0].w_up->storage, SQ_STORAGE_HOST);
    assert_int_equal(m->layers[1].attn_norm->storage, SQ_STORAGE_HOST);
    assert_memory_equal(f->data, copy, f->size);
    char *disk;
    size_t n;
    sq_test_ok(sq_read_file(path, 1 << 26, &disk, &n));
    assert_int_equal(n, f->size);
    assert_memory_equal(disk, copy, n);
    free(disk), free(copy), free(v);
    sq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stable_addresses),
        cmocka_unit_test(test_layer_info),
        cmocka_unit_test(test_read_tensor),
        cmocka_unit_test(test_replace_and_round_trip),
        cmocka_unit_test(test_refused_edits_change_nothing),
        cmocka_unit_test(test_remove_and_add),
        cmocka_unit_test(test_set_layers),
        cmocka_unit_test(test_width_pruning_round_trip),
        cmocka_unit_test(test_mapping_never_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
