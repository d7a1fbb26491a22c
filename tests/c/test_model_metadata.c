/* Metadata from the wild (issue 7, items 2-4): config.json in every layout transformers has written (v4
 * rope_theta/rope_scaling, v5 rope_parameters, nested per layer type), keys that change the arithmetic
 * refused by name, sliding windows by each architecture's rules, special-token ids outside the vocabulary
 * dropped with a warning, and the end-of-generation set gathered from config.json, generation_config.json and
 * GGUF. Expected values follow transformers' own rules (modeling_rope_utils.py,
 * configuration_{llama,mistral,qwen2}.py). */
#include <sys/stat.h>
#include <unistd.h>

#include "formats/hf_config.h"
#include "test_formats_util.h"

static SQ_NODISCARD sq_error *parse_config(const char *arch, const char *extra, sq_model_config *c,
                                           sq_warnings *w) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"architectures\": [\"%s\"], \"hidden_size\": 32, \"intermediate_size\": 32, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"vocab_size\": 12, "
             "\"max_position_embeddings\": 64%s%s}",
             arch, *extra ? ", " : "", extra);
    memset(c, 0, sizeof *c);
    sq_hf_flags flags;
    return sq_hf_config_parse("config.json", text, strlen(text), c, &flags, w);
}

static void parse_ok(const char *arch, const char *extra, sq_model_config *c) {
    sq_warnings w = {0};
    sq_error *err = parse_config(arch, extra, c, &w);
    if (err) fail_msg("%s {%s}: %s", arch, extra, sq_error_message(err));
    if (w.n) fail_msg("%s {%s}: unexpected warning %s", arch, extra, w.messages[0]);
    sq_warnings_free(&w);
}

static void test_rope_layouts(void **state) {
    (void)state;
    const struct {
        const char *extra;
        float theta;
        int llama3, original;
    } cases[] = {
        {"", 10000.0f, 0, 0},
        {"\"rope_theta\": 500000.0", 500000.0f, 0, 0}, /* v4 */
        {"\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}", 500000.0f, 0,
         0}, /* v5 */
        {"\"rope_theta\": 1e6, \"rope_parameters\": {\"rope_type\": \"default\"}", 1e6f, 0, 0},
        /* inside the dict first, then the top level */
        {"\"rope_theta\": 1e6, \"rope_parameters\": {\"rope_theta\": 2e5}", 2e5f, 0, 0},
        /* a non-empty rope_scaling replaces rope_parameters (convert_rope_params_to_dict) */
        {"\"rope_scaling\": {\"rope_type\": \"default\"}, \"rope_parameters\": {\"rope_theta\": 2e5}",
         10000.0f, 0, 0},
        {"\"rope_scaling\": {}, \"rope_parameters\": {\"rope_theta\": 2e5}", 2e5f, 0, 0},
        {"\"rope_scaling\": null, \"rope_theta\": 3e5", 3e5f, 0, 0},
        /* llama3 in both layouts, the older "type" key, original context defaulting to
           max_position_embeddings */
        {"\"rope_theta\": 5e5, \"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": "
         "1, "
         "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 32}",
         5e5f, 1, 32},
        {"\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 5e5, \"factor\": 8, "
         "\"low_freq_factor\": "
         "1, \"high_freq_factor\": 4}",
         5e5f, 1, 64},
        /* nested by layer type, every used type the same */
        {"\"layer_types\": [\"full_attention\", \"full_attention\"], \"rope_parameters\": "
         "{\"full_attention\": "
         "{\"rope_type\": \"default\", \"rope_theta\": 7e5}}",
         7e5f, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_model_config c;
        parse_ok("LlamaForCausalLM", cases[i].extra, &c);
        if (c.rope_theta != cases[i].theta)
            fail_msg("{%s}: rope_theta %g, expected %g", cases[i].extra, c.rope_theta, cases[i].theta);
        assert_int_equal(c.rope_scaling.type,
                         cases[i].llama3 ? SQ_ROPE_SCALING_LLAMA3 : SQ_ROPE_SCALING_NONE);
        if (cases[i].llama3) {
            assert_true(c.rope_scaling.factor == 8 && c.rope_scaling.low_freq_factor == 1 &&
                        c.rope_scaling.high_freq_factor == 4);
            assert_int_equal(c.rope_scaling.original_max_pos, cases[i].original);
        }
    }
}

/* Keys whose values change the arithmetic in ways squeeze does not implement: each refused, naming the key.
 */
static void test_unsupported_keys(void **state) {
    (void)state;
    const struct {
        const char *arch, *extra, *needle;
    } cases[] = {
        {"LlamaForCausalLM", "\"hidden_act\": \"gelu\"", "hidden_act = gelu"},
        {"MistralForCausalLM", "\"hidden_act\": \"relu\"", "hidden_act = relu"},
        {"LlamaForCausalLM", "\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4}",
         "rope_parameters type yarn"},
        {"LlamaForCausalLM", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}",
         "rope_scaling type linear"},
        {"Qwen2ForCausalLM", "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2}",
         "rope_scaling type dynamic"},
        /* partial rotary is supported (Phi-4-mini); a factor above 1 or one leaving an odd count is not */
        {"LlamaForCausalLM", "\"partial_rotary_factor\": 1.5", "partial_rotary_factor = 1.5"},
        {"LlamaForCausalLM", "\"rope_parameters\": {\"rope_theta\": 1e4, \"partial_rotary_factor\": 0.0625}",
         "partial_rotary_factor = 0.0625"},
        {"LlamaForCausalLM", "\"mlp_bias\": true", "mlp_bias = true"},
        {"LlamaForCausalLM", "\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4}",
         "quantization_config (quant_method gptq)"},
        {"Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 8, \"max_window_layers\": 1",
         "max_window_layers = 1 of 2"},
        {"Qwen2ForCausalLM",
         "\"use_sliding_window\": true, \"layer_types\": [\"full_attention\", \"sliding_attention\"]",
         "layer_types = 1 of 2"},
        {"Qwen2ForCausalLM", "\"layer_types\": [\"full_attention\", \"chunked_attention\"]",
         "layer_types holds chunked_attention"},
        {"Qwen2ForCausalLM", "\"layer_types\": [\"full_attention\"]", "one type per layer"},
        {"LlamaForCausalLM",
         "\"layer_types\": [\"full_attention\", \"sliding_attention\"], \"rope_parameters\": "
         "{\"full_attention\": "
         "{\"rope_theta\": 1e6}, \"sliding_attention\": {\"rope_theta\": 1e4}}",
         "differs between layer types"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_model_config c;
        sq_warnings w = {0};
        sq_error *err = parse_config(cases[i].arch, cases[i].extra, &c, &w);
        if (!err) fail_msg("%s {%s} was accepted", cases[i].arch, cases[i].extra);
        if (!strstr(sq_error_message(err), cases[i].needle) || !strstr(sq_error_message(err), "config.json"))
            fail_msg("{%s}: expected \"%s\", got: %s", cases[i].extra, cases[i].needle,
                     sq_error_message(err));
        sq_error_free(err);
        sq_warnings_free(&w);
    }
    /* the same keys with values squeeze computes exactly */
    sq_model_config c;
    parse_ok("LlamaForCausalLM",
             "\"hidden_act\": \"swish\", \"mlp_bias\": false, \"partial_rotary_factor\": 1.0", &c);
    parse_ok("Qwen2ForCausalLM", "\"mlp_bias\": true",
             &c); /* Qwen2 has no such option: transformers ignores it */
    parse_ok("LlamaForCausalLM", "\"quantization_config\": null, \"pretraining_tp\": 2", &c);
}

static void test_sliding_windows(void **state) {
    (void)state;
    const struct {
        const char *arch, *extra;
        int window;
    } cases[] = {
        {"MistralForCausalLM", "", 4096}, /* MistralConfig's default */
        {"MistralForCausalLM", "\"sliding_window\": null", 0},
        {"MistralForCausalLM", "\"sliding_window\": 7", 7},
        {"LlamaForCausalLM", "\"sliding_window\": 7", 0}, /* LlamaAttention has no window */
        {"Qwen2ForCausalLM", "\"sliding_window\": 7", 0}, /* only with use_sliding_window */
        {"Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 7, \"max_window_layers\": 0",
         7},
        {"Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 7, \"max_window_layers\": 2",
         0},
        {"Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 7",
         0}, /* max_window_layers 28 */
        {"Qwen2ForCausalLM",
         "\"use_sliding_window\": true, \"sliding_window\": null, \"max_window_layers\": 0", 0},
        {"Qwen2ForCausalLM", "\"use_sliding_window\": true, \"max_window_layers\": 0", 4096},
        {"Qwen2ForCausalLM",
         "\"use_sliding_window\": true, \"sliding_window\": 9, \"max_window_layers\": 2, \"layer_types\": "
         "[\"sliding_attention\", \"sliding_attention\"]",
         9}, /* layer_types overrides max_window_layers */
        {"Qwen2ForCausalLM",
         "\"use_sliding_window\": false, \"sliding_window\": 9, \"layer_types\": [\"sliding_attention\", "
         "\"full_attention\"]",
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_model_config c;
        parse_ok(cases[i].arch, cases[i].extra, &c);
        if (c.sliding_window != cases[i].window)
            fail_msg("%s {%s}: window %d, expected %d", cases[i].arch, cases[i].extra, c.sliding_window,
                     cases[i].window);
    }
}

static int has_warning(const sq_warnings *w, const char *a, const char *b) {
    for (int i = 0; i < w->n; i++)
        if (strstr(w->messages[i], a) && (!b || strstr(w->messages[i], b))) return 1;
    return 0;
}

static void test_special_ids(void **state) {
    (void)state;
    sq_model_config c;
    sq_warnings w = {0};
    sq_test_ok(parse_config("LlamaForCausalLM",
                            "\"bos_token_id\": 12, \"eos_token_id\": [3, 99, -1, \"x\", 5, 3]", &c, &w));
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.n_eos_ids, 2);
    assert_int_equal(c.eos_ids[0], 3);
    assert_int_equal(c.eos_ids[1], 5);
    assert_int_equal(w.n, 4);
    assert_true(
        has_warning(&w, "config.json: bos_token_id 12 is not a token id of the 12-token vocabulary", NULL));
    assert_true(has_warning(&w, "eos_token_id 99", NULL) && has_warning(&w, "eos_token_id -1", NULL));
    assert_true(has_warning(&w, "eos_token_id \"x\"", NULL));
    sq_warnings_free(&w);

    sq_test_ok(parse_config("LlamaForCausalLM", "\"eos_token_id\": 4, \"bos_token_id\": null", &c, &w));
    assert_int_equal(c.n_eos_ids, 1);
    assert_int_equal(c.eos_ids[0], 4);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(w.n, 0);

    /* a set larger than any model's keeps SQ_MAX_EOS_IDS and says so for each id left out */
    c.vocab_size = 100;
    for (int id = 0; id < SQ_MAX_EOS_IDS + 3; id++) sq_test_ok(sq_model_add_eos(&c, id, &w, "test"));
    assert_int_equal(c.n_eos_ids, SQ_MAX_EOS_IDS);
    assert_int_equal(w.n, 3);
    assert_true(has_warning(&w, "test: more than 16 end-of-generation ids", NULL));
    sq_warnings_free(&w);

    /* generation_config.json adds to the set; a malformed one is only a warning */
    sq_test_ok(parse_config("LlamaForCausalLM", "\"eos_token_id\": 2", &c, &w));
    const char *gen = "{\"eos_token_id\": [2, 7, 30], \"do_sample\": true}";
    sq_test_ok(sq_hf_generation_config_parse("generation_config.json", gen, strlen(gen), &c, &w));
    assert_int_equal(c.n_eos_ids, 2);
    assert_int_equal(c.eos_ids[1], 7);
    assert_true(has_warning(&w, "generation_config.json: eos_token_id 30", NULL));
    sq_test_ok(sq_hf_generation_config_parse("generation_config.json", "{\"eos", 5, &c, &w));
    assert_true(has_warning(&w, "generation_config.json: not a JSON object; ignored", NULL));
    sq_warnings_free(&w);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Through the public API: a Hugging Face directory whose config.json, generation_config.json and
 * tokenizer-less files name several stop ids; the set survives GGUF and Hugging Face writers. */
static void test_model_eos_set(void **state) {
    (void)state;
    const tiny_spec spec = {"llama", 32, 1, 2, 1, 16, 32, 12, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    sq_model *m = tiny_model(&spec, 11);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", sq_test_work("metadata-eos-hf"));
    sq_test_ok(sq_model_save(m, dir, SQ_FORMAT_SAFETENSORS));
    sq_model_free(m);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path,
               "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32, \"intermediate_size\": 32, "
               "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
               "\"vocab_size\": 12, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, "
               "\"bos_token_id\": 1, \"eos_token_id\": [2, 7], \"pad_token_id\": -1}");
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    write_text(path, "{\"bos_token_id\": 1, \"eos_token_id\": [7, 9, 4294967295]}");
    sq_test_ok(sq_model_load(dir, NULL, &m));
    int n;
    const int32_t *ids = sq_model_eos_ids(m, &n);
    assert_int_equal(n, 3);
    assert_true(ids[0] == 2 && ids[1] == 7 && ids[2] == 9);
    assert_true(sq_model_is_eos(m, 9) && sq_model_is_eos(m, 2) && !sq_model_is_eos(m, 1));
    assert_int_equal(sq_model_n_warnings(m), 1);
    assert_non_null(strstr(sq_model_warning(m, 0), "generation_config.json: eos_token_id 4294967295"));
    assert_null(sq_model_warning(m, 1));

    /* GGUF keeps three: eos, then the end-of-turn and end-of-message slots */
    char gg[4096];
    snprintf(gg, sizeof gg, "%s", sq_test_work("metadata-eos.gguf"));
    sq_test_ok(sq_model_save(m, gg, SQ_FORMAT_GGUF));
    sq_model_free(m);
    sq_test_ok(sq_model_load(gg, NULL, &m));
    ids = sq_model_eos_ids(m, &n);
    assert_int_equal(n, 3);
    assert_true(ids[0] == 2 && ids[1] == 7 && ids[2] == 9);
    assert_int_equal(sq_model_n_warnings(m), 0);
    /* and back to config.json as a list */
    char back[4096];
    snprintf(back, sizeof back, "%s", sq_test_work("metadata-eos-back"));
    sq_test_ok(sq_model_save(m, back, SQ_FORMAT_SAFETENSORS));
    sq_model_free(m);
    snprintf(path, sizeof path, "%s/config.json", back);
    char *text;
    size_t len;
    sq_test_ok(sq_read_file(path, 1 << 20, &text, &len));
    assert_non_null(strstr(text, "\"eos_token_id\":\t[2, 7, 9]"));
    free(text);

    /* a generation_config.json that cannot be read adds nothing and stops nothing */
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    write_text(path, "[7, 9]");
    sq_test_ok(sq_model_load(dir, NULL, &m));
    ids = sq_model_eos_ids(m, &n);
    assert_int_equal(n, 2);
    assert_int_equal(sq_model_n_warnings(m), 1);
    assert_non_null(strstr(sq_model_warning(m, 0), "not a JSON object; ignored"));
    sq_model_free(m);
}

/* A GGUF without a vocabulary: its special ids are checked against the embedding rows, and one out of range
 * (0xFFFFFFFF, as hub files write "none") is a warning, not a failure. */
static void test_gguf_ids_without_vocabulary(void **state) {
    (void)state;
    const tiny_spec spec = {"llama", 32, 1, 2, 1, 16, 32, 12, SQ_DTYPE_F32, 0, 0, 0, 0, SQ_ROPE_INTERLEAVED};
    sq_model *m = tiny_model(&spec, 12);
    char gg[4096];
    snprintf(gg, sizeof gg, "%s", sq_test_work("metadata-ids.gguf"));
    sq_test_ok(sq_model_save(m, gg, SQ_FORMAT_GGUF));
    sq_model_free(m);
    char *d;
    size_t n;
    sq_test_ok(sq_read_file(gg, 1 << 24, &d, &n));
    const char *key = "tokenizer.ggml.eos_token_id";
    char *at = memmem(d, n, key, strlen(key));
    assert_non_null(at);
    uint32_t type, all_ones = 0xFFFFFFFFu;
    memcpy(&type, at + strlen(key), 4);
    assert_int_equal(type, 4); /* uint32 */
    memcpy(at + strlen(key) + 4, &all_ones, 4);
    FILE *fp = fopen(gg, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(d, 1, n, fp), n);
    fclose(fp);
    free(d);
    sq_test_ok(sq_model_load(gg, NULL, &m));
    int n_eos;
    sq_model_eos_ids(m, &n_eos);
    assert_int_equal(n_eos, 0);
    assert_int_equal(sq_model_n_warnings(m), 1);
    assert_non_null(
        strstr(sq_model_warning(m, 0),
               "GGUF tokenizer.ggml.eos_token_id = 4294967295 is outside the vocabulary of 12 tokens"));
    assert_non_null(strstr(sq_model_warning(m, 0), gg));
    sq_model_free(m);
}

/* Tokenizer files whose special-token settings name what the vocabulary lacks: loaded, the setting treated as
 * absent, and a warning that the model's list shows too. */
static void test_tokenizer_warnings(void **state) {
    (void)state;
    /* tokenizer.model with a second trainer_spec (protobuf merges repeated messages, as sentencepiece does)
     * setting pad_id = 40000 in a 32000-piece vocabulary */
    char *d;
    size_t n;
    sq_test_ok(sq_read_file(sq_test_shared("models/tokenizer.model"), 1 << 22, &d, &n));
    const unsigned char extra[] = {0x12, 0x05, 0xD8, 0x02, 0xC0, 0xB8, 0x02};
    char spm[4096];
    snprintf(spm, sizeof spm, "%s", sq_test_work("metadata-pad.model"));
    FILE *fp = fopen(spm, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(d, 1, n, fp), n);
    assert_int_equal(fwrite(extra, 1, sizeof extra, fp), sizeof extra);
    fclose(fp);
    free(d);
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(spm, &tok));
    assert_int_equal(sq_tokenizer_n_warnings(tok), 1);
    assert_non_null(
        strstr(sq_tokenizer_warning(tok, 0), "trainer_spec.pad_id 40000 is outside the 32000 pieces"));
    assert_int_equal(sq_tokenizer_bos(tok), 1);
    assert_int_equal(sq_tokenizer_eos(tok), 2);
    sq_tokenizer_free(tok);
    /* the model's list ends with its tokenizer's */
    sq_model *m;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories15M.bin"),
                             &(sq_load_options){.tokenizer_path = spm}, &m));
    assert_int_equal(sq_model_n_warnings(m), 1);
    assert_non_null(strstr(sq_model_warning(m, 0), "pad_id 40000"));
    int n_eos;
    const int32_t *eos = sq_model_eos_ids(m, &n_eos);
    assert_true(n_eos == 1 && eos[0] == 2);
    sq_model_free(m);

    /* tokenizer_config.json naming an EOS the vocabulary lacks */
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", sq_test_work("metadata-tokenizer-config"));
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    assert_int_equal(symlink(sq_test_shared("tokenizers/llama2/tokenizer.json"), path), 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_text(path, "{\"bos_token\": \"<s>\", \"eos_token\": \"<|im_end|>\", \"add_bos_token\": true}");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    sq_test_ok(sq_tokenizer_load(path, &tok));
    assert_int_equal(sq_tokenizer_eos(tok), -1);
    assert_int_equal(sq_tokenizer_bos(tok), 1);
    assert_int_equal(sq_tokenizer_n_warnings(tok), 1);
    assert_non_null(
        strstr(sq_tokenizer_warning(tok, 0), "eos_token \"<|im_end|>\" is not in the vocabulary"));
    assert_null(sq_tokenizer_warning(tok, 1));
    sq_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_layouts),       cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_sliding_windows),    cmocka_unit_test(test_special_ids),
        cmocka_unit_test(test_model_eos_set),      cmocka_unit_test(test_gguf_ids_without_vocabulary),
        cmocka_unit_test(test_tokenizer_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
