/* GGUF tokenizer.ggml.* metadata -> tokenizer. "llama" vocabularies are SentencePiece-style BPE, "gpt2" ones
 * byte-level BPE; defaults for absent flags follow llama.cpp (BOS and a space prefix for "llama" only). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static void free_strings(char **s, uint64_t n) {
    if (!s) return;
    for (uint64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* A numeric array of exactly n elements of `type`, or NULL when absent. */
static SQ_NODISCARD sq_error *numeric_array(const sq_gguf_file *g, const char *key, uint32_t type, uint64_t n,
                                            const void **out) {
    *out = NULL;
    const sq_gguf_kv *kv = sq_gguf_find(g, key);
    if (!kv) return NULL;
    /* token types are int32 in llama.cpp's files; some writers use uint32, which reads the same here */
    int same_type = kv->elem_type == type || (type == SQ_GGUF_INT32 && kv->elem_type == SQ_GGUF_UINT32);
    if (kv->type != SQ_GGUF_ARRAY || !same_type || kv->n_elems != n)
        return sq_errorf(SQ_ERR_FORMAT, "%s: GGUF %s must be an array of %llu %s values", g->file->path, key,
                         (unsigned long long)n, type == SQ_GGUF_FLOAT32 ? "float32" : "int32");
    *out = kv->value;
    return NULL;
}

sq_error *sq_gguf_special_id(const sq_gguf_file *g, const char *key, int n_tokens, sq_warnings *w, int *id) {
    int64_t v;
    int found;
    *id = -1;
    SQ_TRY(sq_gguf_get_int(g, key, INT64_MIN, INT64_MAX, &v, &found));
    if (!found) return NULL;
    if (v >= 0 && v < n_tokens) {
        *id = (int)v;
        return NULL;
    }
    return sq_warn(w, "%s: GGUF %s = %lld is outside the vocabulary of %d tokens; treated as absent",
                   g->file->path, key, (long long)v, n_tokens);
}

static SQ_NODISCARD sq_error *optional_flag(const sq_gguf_file *g, const char *key, int dflt, int *v) {
    int found;
    *v = dflt;
    return sq_gguf_get_bool(g, key, v, &found); /* leaves *v alone when absent */
}

sq_error *sq_gguf_read_vocab(const sq_gguf_file *g, sq_tokenizer **out) {
    *out = NULL;
    const char *path = g->file->path;
    char *model = NULL, *pre = NULL, *chat_template = NULL, **tokens = NULL, **merges = NULL;
    uint64_t n_tokens = 0, n_merges = 0;
    float *scores = NULL;
    int32_t *types = NULL;
    int found;
    SQ_TRY(sq_gguf_get_string(g, "tokenizer.ggml.model", &model, &found));
    if (!found || !strcmp(model, "none")) {
        free(model);
        return NULL;
    }
    sq_vocab_spec spec;
    memset(&spec, 0, sizeof spec);
    sq_error *err = NULL;
    if (!strcmp(model, "llama"))
        spec.type = SQ_TOKENIZER_SPM_BPE;
    else if (!strcmp(model, "gpt2"))
        spec.type = SQ_TOKENIZER_BYTE_BPE;
    else
        err = sq_errorf(SQ_ERR_UNSUPPORTED, "%s: GGUF tokenizer model '%.32s' is not supported (llama, gpt2)",
                        path, model);
    if (!err) err = sq_gguf_get_strings(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, NULL);
    if (!err && (n_tokens == 0 || n_tokens > (1u << 24)))
        err = sq_errorf(SQ_ERR_FORMAT, "%s: GGUF vocabulary has %llu tokens", path,
                        (unsigned long long)n_tokens);
    const void *raw_scores = NULL, *raw_types = NULL;
    if (!err) err = numeric_array(g, "tokenizer.ggml.scores", SQ_GGUF_FLOAT32, n_tokens, &raw_scores);
    if (!err) err = numeric_array(g, "tokenizer.ggml.token_type", SQ_GGUF_INT32, n_tokens, &raw_types);
    if (!err && raw_scores) { /* copied: the mapping gives no alignment guarantee for the array */
        scores = malloc(n_tokens * sizeof *scores);
        if (scores)
            memcpy(scores, raw_scores, n_tokens * sizeof *scores);
        else
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!err && raw_types) {
        types = malloc(n_tokens * sizeof *types);
        if (types)
            memcpy(types, raw_types, n_tokens * sizeof *types);
        else
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!err) err = sq_gguf_get_strings(g, "tokenizer.ggml.merges", &merges, &n_merges, &found);
    if (!err && n_merges > (1u << 24)) err = sq_errorf(SQ_ERR_FORMAT, "%s: too many merges", path);
    if (!err) err = sq_gguf_get_string(g, "tokenizer.ggml.pre", &pre, &found);
    if (!err) err = sq_gguf_get_string(g, "tokenizer.chat_template", &chat_template, &found);
    sq_warnings warnings = {0};
    const struct {
        const char *key;
        int *id;
    } ids[] = {{SQ_GGUF_BOS_ID, &spec.bos_id},
               {SQ_GGUF_EOS_ID, &spec.eos_id},
               {"tokenizer.ggml.unknown_token_id", &spec.unk_id},
               {"tokenizer.ggml.padding_token_id", &spec.pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof *ids && !err; i++)
        err = sq_gguf_special_id(g, ids[i].key, (int)n_tokens, &warnings, ids[i].id);
    const int spm = spec.type == SQ_TOKENIZER_SPM_BPE;
    if (!err) err = optional_flag(g, "tokenizer.ggml.add_bos_token", spm, &spec.add_bos);
    if (!err) err = optional_flag(g, "tokenizer.ggml.add_eos_token", 0, &spec.add_eos);
    if (!err) err = optional_flag(g, "tokenizer.ggml.add_space_prefix", spm, &spec.add_space_prefix);
    if (!err) {
        spec.n_tokens = (int)n_tokens;
        spec.tokens = (const char *const *)tokens;
        spec.scores = scores;
        spec.types = types;
        spec.n_merges = (int)n_merges;
        spec.merges = (const char *const *)merges;
        spec.pre = pre;
        spec.chat_template = chat_template;
        spec.normalize_nfc = pre && !strcmp(pre, "qwen2"); /* Qwen2's tokenizer.json normalises to NFC */
        spec.warnings = &warnings;
        err = sq_error_wrap(sq_tokenizer_from_spec(&spec, out), "%s: GGUF vocabulary", path);
    }
    free(model);
    free(pre);
    free(chat_template);
    free_strings(tokens, n_tokens);
    free_strings(merges, n_merges);
    free(scores);
    free(types);
    sq_warnings_free(&warnings);
    return err;
}

sq_error *sq_gguf_load_tokenizer(const char *path, sq_tokenizer **out) {
    *out = NULL;
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(path, &f));
    sq_gguf_file *g = NULL;
    sq_error *err = sq_gguf_parse(f, &g);
    if (!err) err = sq_gguf_read_vocab(g, out);
    if (!err && !*out)
        err = sq_errorf(SQ_ERR_FORMAT, "%s: the GGUF file has no vocabulary (tokenizer.ggml.*)", path);
    sq_gguf_free(g);
    sq_mapped_file_close(f);
    return err;
}
