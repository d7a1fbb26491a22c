/* Bad model files: truncations at many cut points, wrong magic and versions, absurd counts and dimensions,
 * shape products that overflow, offsets past the end, misaligned or overlapping data, unknown types and
 * architectures, configs that disagree with the weights, malformed config.json and safetensors headers,
 * missing shards. Each must fail with an error naming the file, never crash (this also runs under ASan). */
#include <sys/stat.h>

#include "formats/gguf.h"
#include "test_formats_util.h"

/* Expects loading `path` to fail with a message naming the file and containing `needle` (NULL: any). */
static void expect_failure(const char *path, const char *needle) {
    sq_model *m;
    sq_error *err = load_plain(path, &m);
    if (!err)
        fail_msg("%s loaded although it is broken (expected \"%s\")", path, needle ? needle : "an error");
    const char *msg = sq_error_message(err);
    if (!strstr(msg, path) || (needle && !strstr(msg, needle))) {
        print_error("expected an error naming %s and saying \"%s\", got: %s\n", path, needle ? needle : "",
                    msg);
        sq_error_free(err);
        fail();
    }
    sq_error_free(err);
}

static const tiny_spec small = {"llama", 32,           1, 2, 1, 16, 32,
                                8,       SQ_DTYPE_F32, 0, 1, 0, 0,  SQ_ROPE_INTERLEAVED};

/* ---------------------------------------------------------------- GGUF */

static size_t find(const unsigned char *d, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(d + i, s, k)) return i;
    fail_msg("%s not found in the test file", s);
    return 0;
}

/* Writes a patched copy of a valid file and expects it to fail. */
static void patched(const unsigned char *orig, size_t n, size_t at, const void *bytes, size_t len,
                    const char *needle) {
    unsigned char *d = malloc(n);
    memcpy(d, orig, n);
    memcpy(d + at, bytes, len);
    const char *path = sq_test_work("formats-bad.gguf");
    sq_test_write_file(path, d, n);
    expect_failure(path, needle);
    free(d);
}

static void test_gguf_corruptions(void **state) {
    (void)state;
    sq_model *m = tiny_model(&small, 5);
    char good[4096];
    snprintf(good, sizeof good, "%s", sq_test_work("formats-good.gguf"));
    sq_test_ok(sq_model_save(m, good, SQ_FORMAT_GGUF));
    sq_model_free(m);
    unsigned char *d;
    size_t n;
    d = (unsigned char *)sq_test_read_file(good, &n);
    const uint32_t v1 = 1, v4 = 4, vbig = 0x03000000;
    const uint64_t huge = (uint64_t)1 << 40, zero = 0, one = 1, two39 = (uint64_t)1 << 39;

    /* header */
    { /* sq_gguf_load on a wrong magic (sq_model_load would treat it as llama2.c) */
        unsigned char *e = malloc(n);
        memcpy(e, d, n);
        e[0] = 'X';
        const char *p = sq_test_work("formats-bad.gguf");
        sq_test_write_file(p, e, n);
        sq_model *x = sq_model_new();
        sq_test_fails_with(sq_gguf_load(p, x), "bad magic");
        sq_model_free(x);
        free(e);
    }
    { /* version 2 has the same little-endian layout and loads */
        unsigned char *e = malloc(n);
        memcpy(e, d, n);
        const uint32_t v2 = 2;
        memcpy(e + 4, &v2, 4);
        const char *p = sq_test_work("formats-v2.gguf");
        sq_test_write_file(p, e, n);
        sq_model *x;
        sq_test_ok(load_plain(p, &x));
        sq_model_free(x);
        free(e);
    }
    patched(d, n, 4, &v1, 4, "unsupported GGUF version 1");
    patched(d, n, 4, &v4, 4, "unsupported GGUF version 4");
    patched(d, n, 4, &vbig, 4, "big-endian");
    patched(d, n, 8, &huge, 8, "more than the file can hold");  /* tensor count */
    patched(d, n, 16, &huge, 8, "more than the file can hold"); /* metadata count */
    patched(d, n, 24, &huge, 8, "truncated");                   /* first key's length */

    /* metadata */
    size_t arch = find(d, n, "general.architecture");
    patched(d, n, arch + strlen("general.architecture") + 4 + 8, "bloom", 5, "architecture 'bloom'");
    size_t blocks = find(d, n, "llama.block_count");
    patched(d, n, blocks, "llama.block_coune", 17, "llama.block_count is missing");
    const uint32_t string_type = SQ_GGUF_STRING, bad_type = 77, wide = 64;
    patched(d, n, blocks + 17, &bad_type, 4, "unknown value type 77");
    patched(d, n, blocks + 17, &string_type, 4, NULL); /* the u32 read as a string length runs off */
    size_t emb = find(d, n, "llama.embedding_length");
    patched(d, n, emb + 22 + 4, &wide, 4, "config implies");
    patched(d, n, emb, "llama.context_length\0\0", 22, NULL); /* key length now wrong: garbage follows */
    size_t ffn = find(d, n, "llama.feed_forward_length");
    patched(d, n, ffn + 25 + 4, &wide, 4, "rows but the config implies 64 (FFN width)");
    patched(d, n, emb, "llama.block_count_xxxx", 22, NULL);

    /* tensor infos: name, n_dims, ne[], type, offset */
    size_t te = find(d, n, "token_embd.weight") + strlen("token_embd.weight");
    const uint32_t seven = 7, q4k = 12, iq2_xxs = 16, odd_type = 200;
    patched(d, n, te, &seven, 4, "dimensions");
    patched(d, n, te + 4, &zero, 8, "absurd dimension");
    patched(d, n, te + 4, &huge, 8, NULL);
    {
        unsigned char *e = malloc(n);
        memcpy(e, d, n);
        memcpy(e + te + 4, &two39, 8);
        memcpy(e + te + 12, &two39, 8);
        const char *p = sq_test_work("formats-bad.gguf");
        sq_test_write_file(p, e, n);
        expect_failure(p, "overflows");
        free(e);
    }
    patched(d, n, te + 20, &iq2_xxs, 4, "token_embd.weight has ggml type IQ2_XXS");
    patched(d, n, te + 20, &q4k, 4, "rows are not whole Q4_K blocks"); /* rows of 288 */
    patched(d, n, te + 20, &odd_type, 4, "unknown (200)");
    patched(d, n, te + 24, &huge, 8, "past the end");
    patched(d, n, te + 24, &one, 8, "not aligned");
    size_t second = find(d, n, "output_norm.weight") + strlen("output_norm.weight");
    patched(d, n, second + 4 + 8 + 4, &zero, 8, "overlap");
    size_t k0 = find(d, n, "blk.0.attn_k.weight");
    patched(d, n, k0, "blk.0.attn_q.weight", 19, "appears twice");
    patched(d, n, k0, "blk.0.attn_x.weight", 19, "unexpected tensor blk.0.attn_x.weight");
    patched(d, n, k0, "blk.7.attn_k.weight", 19, "unexpected tensor blk.7");
    size_t v0 = find(d, n, "blk.0.attn_v.weight") + 19;
    const uint64_t rows17 = 17;
    patched(d, n, v0 + 4 + 8, &rows17, 8, NULL); /* 17 rows of v: shape disagrees with k (and data size) */

    /* truncation at every byte of the header and tensor infos, then through the data */
    size_t data_start = (size_t)(find(d, n, "blk.0.ffn_down.weight") + 64);
    const char *cut = sq_test_work("formats-cut.gguf");
    for (size_t at = 1; at < n; at += at < data_start ? 1 : 211) {
        sq_test_write_file(cut, d, at);
        sq_model *x = sq_model_new();
        sq_error *err = sq_gguf_load(cut, x);
        if (!err) fail_msg("GGUF cut at %zu of %zu bytes loaded", at, n);
        if (!strstr(sq_error_message(err), cut))
            fail_msg("cut at %zu: error without file name: %s", at, sq_error_message(err));
        sq_error_free(err);
        sq_model_free(x);
    }
    free(d);
}

/* A hand-built GGUF with one metadata entry: nested arrays, including one claiming absurdly many elements. */
static void test_gguf_nested_arrays(void **state) {
    (void)state;
    unsigned char f[256];
    size_t n = 0;
#define PUT(v, k) (memcpy(f + n, &(v), k), n += k)
    const uint32_t version = 3, arr = SQ_GGUF_ARRAY, u8 = SQ_GGUF_UINT8;
    const uint64_t n_tensors = 0, n_kv = 1, klen = 3, outer = 2, inner = 3;
    memcpy(f, "GGUF", 4), n = 4;
    PUT(version, 4), PUT(n_tensors, 8), PUT(n_kv, 8), PUT(klen, 8);
    memcpy(f + n, "a.b", 3), n += 3;
    PUT(arr, 4), PUT(arr, 4), PUT(outer, 8);
    for (int i = 0; i < 2; i++) {
        PUT(u8, 4), PUT(inner, 8);
        memcpy(f + n, "xyz", 3), n += 3;
    }
#undef PUT
    sq_mapped_file *mf;
    const char *p = sq_test_work("formats-nested.gguf");
    sq_test_write_file(p, f, n);
    sq_test_ok(sq_mapped_file_open(p, &mf));
    sq_gguf_file *g;
    sq_test_ok(sq_gguf_parse(mf, &g));
    const sq_gguf_kv *kv = sq_gguf_find(g, "a.b");
    assert_non_null(kv);
    assert_int_equal(kv->elem_type, SQ_GGUF_ARRAY);
    assert_int_equal(kv->n_elems, 2);
    int64_t v;
    sq_test_fails_with(sq_gguf_get_int(g, "a.b", 0, 1, &v, NULL), "is a array");
    sq_gguf_free(g);
    sq_mapped_file_close(mf);
    /* inner count absurd */
    const uint64_t absurd = (uint64_t)1 << 60;
    memcpy(f + 4 + 4 + 8 + 8 + 8 + 3 + 4 + 4 + 8 + 4, &absurd, 8);
    sq_test_write_file(p, f, n);
    sq_test_ok(sq_mapped_file_open(p, &mf));
    sq_test_fails_with(sq_gguf_parse(mf, &g), "claims 1152921504606846976 array elements");
    sq_mapped_file_close(mf);
}

/* ---------------------------------------------------------------- safetensors / Hugging Face */

static const char *hf_dir(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", sq_test_work(name));
    mkdir(buf, 0755);
    return buf;
}

static void put_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    sq_test_write_file(p, data, n);
}

static void put_text(const char *dir, const char *name, const char *text) {
    put_file(dir, name, text, strlen(text));
}

static const char *config_json =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32, \"intermediate_size\": 32, "
    "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 8, "
    "\"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": false, "
    "\"attention_bias\": true}";

/* A safetensors file with the given JSON header and `data_len` zero bytes of data. */
static void put_st(const char *dir, const char *name, const char *header, size_t data_len) {
    uint64_t hl = strlen(header);
    size_t n = 8 + hl + data_len;
    unsigned char *f = calloc(1, n);
    memcpy(f, &hl, 8);
    memcpy(f + 8, header, hl);
    put_file(dir, name, f, n);
    free(f);
}

static void test_hf_corruptions(void **state) {
    (void)state;
    sq_model *m = tiny_model(&small, 9);
    char good[4096];
    snprintf(good, sizeof good, "%s", sq_test_work("formats-good-hf"));
    sq_test_ok(sq_model_save(m, good, SQ_FORMAT_SAFETENSORS));
    sq_model_free(m);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", good);
    unsigned char *st;
    size_t n;
    st = (unsigned char *)sq_test_read_file(p, &n);
    uint64_t hl;
    memcpy(&hl, st, 8);

    /* truncation: every byte of the header, then through the data */
    const char *dir = hf_dir("formats-cut-hf");
    put_text(dir, "config.json", config_json);
    for (size_t at = 0; at < n; at += at < 8 + hl ? 1 : 97) {
        put_file(dir, "model.safetensors", st, at);
        char sp[4200];
        snprintf(sp, sizeof sp, "%s/model.safetensors", dir);
        sq_model *x;
        sq_error *err = load_plain(dir, &x);
        if (!err) fail_msg("safetensors cut at %zu of %zu bytes loaded", at, n);
        if (!strstr(sq_error_message(err), dir))
            fail_msg("cut at %zu: error without the path: %s", at, sq_error_message(err));
        sq_error_free(err);
    }
    /* the intact file loads with this config */
    put_file(dir, "model.safetensors", st, n);
    sq_model *x;
    sq_test_ok(load_plain(dir, &x));
    sq_model_free(x);

    /* crafted headers */
    const char *bad = hf_dir("formats-bad-hf");
    put_text(bad, "config.json", config_json);
    const struct {
        const char *header;
        size_t data;
        const char *needle;
    } headers[] = {
        {"{\"a\": ", 0, "not a JSON object"},
        {"[1, 2]", 0, "not a JSON object"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [0, 200]}}", 128,
         "outside"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [0, 64]}}", 128,
         "do not hold"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [-128, 0]}}", 128,
         "outside"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [0, 128]}, "
         "\"model.layers.0.input_layernorm.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": "
         "[64, 192]}}",
         256, "overlap"},
        {"{\"model.norm.weight\": {\"dtype\": \"Q9\", \"shape\": [32], \"data_offsets\": [0, 128]}}", 128,
         "unknown dtype"},
        {"{\"model.norm.weight\": {\"dtype\": \"I64\", \"shape\": [16], \"data_offsets\": [0, 128]}}", 128,
         "model.norm.weight has dtype I64"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], "
         "\"data_offsets\": [0, 128]}}",
         128, "overflows"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [1, 1, 1, 1, 32], \"data_offsets\": [0, "
         "128]}}",
         128, "dimensions"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32.5], \"data_offsets\": [0, 128]}}", 128,
         "invalid dimension"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [32]}}", 128,
         "needs dtype, shape and data_offsets"},
        {"{\"model.vision.weight\": {\"dtype\": \"F32\", \"shape\": [32], \"data_offsets\": [0, 128]}}", 128,
         "unexpected tensor model.vision.weight"},
        {"{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [31], \"data_offsets\": [0, 124]}}", 124,
         NULL},
        {"{\"__metadata__\": 5}", 0, "__metadata__"},
    };
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        put_st(bad, "model.safetensors", headers[i].header, headers[i].data);
        expect_failure(bad, headers[i].needle);
    }
    { /* header length past the end */
        unsigned char *e = malloc(n);
        memcpy(e, st, n);
        uint64_t big = n;
        memcpy(e, &big, 8);
        put_file(bad, "model.safetensors", e, n);
        expect_failure(bad, "header length");
        free(e);
    }

    /* config.json problems, with the intact weights beside them */
    put_file(bad, "model.safetensors", st, n);
    const struct {
        const char *text, *needle;
    } configs[] = {
        {"{\"architectures\": [\"LlamaForCausalLM\"", "not a JSON object"},
        {"{\"architectures\": [\"GPTNeoXForCausalLM\"], \"hidden_size\": 32}",
         "architecture GPTNeoXForCausalLM"},
        {"{\"hidden_size\": 32}", "architectures"},
        /* without architectures, model_type picks the row, as transformers picks the config class */
        {"{\"model_type\": \"gpt_neox\", \"hidden_size\": 32}",
         "model_type = gpt_neox is not supported and architectures is absent (supported model types: llama, "
         "mistral, qwen2, qwen3, gemma3_text"},
        {"{\"model_type\": 3, \"hidden_size\": 32}", "model_type must be a string"},
        {"{\"architectures\": \"LlamaForCausalLM\"}", "architectures must be a list of class names"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 32}", "intermediate_size is missing"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"32\"}",
         "hidden_size must be an integer"},
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32}", "intermediate_size is missing"},
    };
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        put_text(bad, "config.json", configs[i].text);
        expect_failure(bad, configs[i].needle);
    }
    /* fields that parse but disagree with the weights or are unsupported */
    const struct {
        const char *from, *to, *needle;
    } edits[] = {
        {"\"hidden_size\": 32", "\"hidden_size\": 64", "config implies"},
        {"\"vocab_size\": 8", "\"vocab_size\": 9", "config implies"},
        {"\"attention_bias\": true", "\"attention_bias\": false", "attention_bias=false"},
        {"\"tie_word_embeddings\": false",
         "\"tie_word_embeddings\": false, \"rope_scaling\": {\"rope_type\": \"yarn\"}",
         "rope_scaling type yarn"},
        {"\"num_hidden_layers\": 1", "\"num_hidden_layers\": 2", "missing"},
        {"\"num_hidden_layers\": 1", "\"num_hidden_layers\": 0", "num_hidden_layers must be"},
        {"\"max_position_embeddings\": 64", "\"max_position_embeddings\": 1e300",
         "max_position_embeddings must be"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char text[2048];
        const char *at = strstr(config_json, edits[i].from);
        assert_non_null(at);
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - config_json), config_json, edits[i].to,
                 at + strlen(edits[i].from));
        put_text(bad, "config.json", text);
        expect_failure(bad, edits[i].needle);
    }
    put_text(bad, "config.json", config_json);
    sq_test_ok(load_plain(bad, &x));
    sq_model_free(x);

    /* sharded: a missing shard, a shard name leaving the directory, a tensor the index puts elsewhere */
    const char *sh = hf_dir("formats-shard-hf");
    put_text(sh, "config.json", config_json);
    put_file(sh, "model-00001-of-00002.safetensors", st, n);
    put_text(sh, "model.safetensors.index.json",
             "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\", "
             "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_failure(sh, "model-00002-of-00002.safetensors: cannot open");
    put_text(sh, "model.safetensors.index.json",
             "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    expect_failure(sh, "does not name a shard file");
    put_text(sh, "model.safetensors.index.json",
             "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
    expect_failure(sh, "is not listed for this shard");
    put_text(sh, "model.safetensors.index.json", "{\"metadata\": {}}");
    expect_failure(sh, "weight_map");
    free(st);

    /* a directory without weights */
    const char *empty = hf_dir("formats-empty-hf");
    put_text(empty, "config.json", config_json);
    expect_failure(empty, "no model.safetensors");
}

/* ---------------------------------------------------------------- llama2.c */

static void test_llama2c_truncations(void **state) {
    (void)state;
    sq_model *m = tiny_model(
        &(tiny_spec){"llama", 32, 1, 2, 1, 16, 32, 8, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED}, 3);
    char good[4096];
    snprintf(good, sizeof good, "%s", sq_test_work("formats-good.bin"));
    sq_test_ok(sq_model_save(m, good, SQ_FORMAT_LLAMA2C));
    sq_model_free(m);
    unsigned char *d;
    size_t n;
    d = (unsigned char *)sq_test_read_file(good, &n);
    const char *cut = sq_test_work("formats-cut.bin");
    for (size_t at = 1; at < n; at += at < 64 ? 1 : 61) {
        sq_test_write_file(cut, d, at);
        expect_failure(cut, NULL);
    }
    /* absurd header values */
    int32_t h[7];
    memcpy(h, d, sizeof h);
    const int32_t bad_values[][2] = {{0, -5}, {2, 1 << 30}, {3, 0}, {4, 7}, {5, INT32_MIN}, {6, -1}};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        unsigned char *e = malloc(n);
        memcpy(e, d, n);
        memcpy(e + 4 * bad_values[i][0], &bad_values[i][1], 4);
        sq_test_write_file(cut, e, n);
        expect_failure(cut, NULL);
        free(e);
    }
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_corruptions),
        cmocka_unit_test(test_gguf_nested_arrays),
        cmocka_unit_test(test_hf_corruptions),
        cmocka_unit_test(test_llama2c_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
