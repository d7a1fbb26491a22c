/* Hugging Face tokenizer.json (model type BPE) and the tokenizer_config.json beside it (GPT-2's original
 * encoder.json is handed to gpt2_vocab.c). Two shapes are understood: SentencePiece-style BPE (normalizer
 * Prepend "▁" + Replace " " -> "▁", or pre-tokenizer Metaspace; byte fallback; Llama-2, Mistral) and
 * byte-level BPE (ByteLevel pre-tokenizer, optionally after Split regexes / Digits and NFC; GPT-2, Llama-3,
 * Qwen). Added tokens keep their special / lstrip / rstrip options. Anything else is refused by name rather
 * than tokenized differently from Hugging Face. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"

static const char space_symbol[] = "\xe2\x96\x81";

typedef struct json_vocab {
    int n;
    char **tokens;
    int32_t *types;
    uint8_t *flags; /* lstrip / rstrip of added tokens */
    float *scores;
    char **merges;
    int n_merges;
    char **regexes;
    int n_regexes;
    size_t cap_regexes;
    char *chat_template_file; /* chat_template.jinja's text, when the template comes from there */
    sq_vocab_spec spec;
    sq_warnings warnings; /* what reading tokenizer_config.json worked around */
} json_vocab;

static void json_vocab_free(json_vocab *v) {
    for (int i = 0; v->tokens && i < v->n; i++) free(v->tokens[i]);
    for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    for (int i = 0; i < v->n_regexes; i++) free(v->regexes[i]);
    free(v->tokens);
    free(v->types);
    free(v->flags);
    free(v->chat_template_file);
    free(v->scores);
    free(v->merges);
    free(v->regexes);
    sq_warnings_free(&v->warnings);
}

static const char *type_of(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static int is_type(const cJSON *obj, const char *type) {
    const char *t = type_of(obj);
    return t && !strcmp(t, type);
}

static int flag(const cJSON *obj, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static const char *string_at(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The items of a "Sequence" (under `list_key`), or the object itself as a one-item list. */
static int sequence_items(const cJSON *obj, const char *list_key, const cJSON **items, int max) {
    if (!obj || cJSON_IsNull(obj)) return 0;
    if (is_type(obj, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, list_key), *it;
        int n = 0;
        if (!cJSON_IsArray(list)) return -1;
        cJSON_ArrayForEach(it, list) {
            if (n == max) return -1;
            items[n++] = it;
        }
        return n;
    }
    items[0] = obj;
    return 1;
}

/* The ids model.vocab and added_tokens give, each checked to be one; ids has room for every entry. */
static SQ_NODISCARD sq_error *collect_ids(const char *path, const cJSON *vocab, const cJSON *added,
                                          int32_t *ids, int *n_ids) {
    const cJSON *it;
    *n_ids = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 26) ||
            it->valuedouble != (int)it->valuedouble)
            return sq_errorf(SQ_ERR_FORMAT, "%s: model.vocab[\"%.60s\"] is not a valid id", path, it->string);
        ids[(*n_ids)++] = it->valueint;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 26) ||
            !string_at(it, "content"))
            return sq_errorf(SQ_ERR_FORMAT, "%s: added_tokens entry without a valid id and content", path);
        ids[(*n_ids)++] = id->valueint;
    }
    return *n_ids ? NULL : sq_errorf(SQ_ERR_FORMAT, "%s: model.vocab is empty", path);
}

static SQ_NODISCARD sq_error *read_vocab(const char *path, const cJSON *model, const cJSON *added,
                                         json_vocab *v) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return sq_errorf(SQ_ERR_FORMAT, "%s: model.vocab is not an object", path);
    int n_ids;
    int32_t *ids = malloc(((size_t)cJSON_GetArraySize(vocab) + (size_t)cJSON_GetArraySize(added) + 1) *
                          sizeof *ids); /* [vocab entries + added tokens] */
    if (!ids) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    sq_error *err = collect_ids(path, vocab, added, ids, &n_ids);
    if (!err) err = sq_vocab_check_ids(path, ids, n_ids, &v->n);
    free(ids);
    SQ_TRY(err);
    v->tokens = calloc((size_t)v->n, sizeof *v->tokens);
    v->types = calloc((size_t)v->n, sizeof *v->types);
    v->flags = calloc((size_t)v->n, 1);
    if (!v->tokens || !v->types || !v->flags) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(it, vocab) {
        int id = it->valueint;
        if (v->tokens[id]) return sq_errorf(SQ_ERR_FORMAT, "%s: model.vocab gives id %d twice", path, id);
        if (!(v->tokens[id] = strdup(it->string))) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        v->types[id] = SQ_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char *content = string_at(it, "content");
        if (!v->tokens[id] && !(v->tokens[id] = strdup(content)))
            return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        if (strcmp(v->tokens[id],
                   content)) { /* byte-level vocabularies spell it differently: added text wins */
            free(v->tokens[id]);
            if (!(v->tokens[id] = strdup(content))) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        }
        v->types[id] = flag(it, "special", 0) ? SQ_TOKEN_CONTROL : SQ_TOKEN_USER_DEFINED;
        v->flags[id] = (uint8_t)((flag(it, "lstrip", 0) ? SQ_TOKEN_LSTRIP : 0) |
                                 (flag(it, "rstrip", 0) ? SQ_TOKEN_RSTRIP : 0));
    }
    return NULL;
}

static SQ_NODISCARD sq_error *read_merges(const char *path, const cJSON *model, json_vocab *v) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    if (!merges || cJSON_IsNull(merges)) return NULL;
    if (!cJSON_IsArray(merges)) return sq_errorf(SQ_ERR_FORMAT, "%s: model.merges is not an array", path);
    int n = cJSON_GetArraySize(merges);
    v->merges = calloc(n ? (size_t)n : 1, sizeof *v->merges);
    if (!v->merges) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(it, merges) {
        char *m = NULL;
        if (cJSON_IsString(it)) {
            m = strdup(it->valuestring);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) { /* the newer ["a", "b"] form */
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring,
                       *b = cJSON_GetArrayItem(it, 1)->valuestring;
            if ((m = malloc(strlen(a) + strlen(b) + 2))) strcat(strcat(strcpy(m, a), " "), b);
        } else {
            return sq_errorf(SQ_ERR_FORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]",
                             path, v->n_merges);
        }
        if (!m) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        v->merges[v->n_merges++] = m;
    }
    return NULL;
}

static int token_id(const json_vocab *v, const char *text) {
    for (int i = 0; text && i < v->n; i++)
        if (!strcmp(v->tokens[i], text)) return i;
    return -1;
}

/* Scores as sentencepiece would have them, for writers of score-based formats (GGUF): a piece made by merge r
 * scores -r (its first merge), other pieces rank below every merge. */
static SQ_NODISCARD sq_error *merge_order_scores(const char *path, json_vocab *v) {
    sq_strmap ids;
    v->scores = malloc((size_t)v->n * sizeof *v->scores);
    if (!v->scores || sq_strmap_init(&ids, (size_t)v->n))
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < v->n; i++) {
        v->scores[i] = -(float)v->n_merges - (float)i;
        sq_strmap_put(&ids, v->tokens[i], (uint32_t)strlen(v->tokens[i]), i);
    }
    uint8_t *set = calloc((size_t)v->n, 1);
    char *joined = NULL;
    size_t cap = 0;
    sq_error *err = set ? NULL : sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    for (int r = 0; r < v->n_merges && !err; r++) {
        const char *m = v->merges[r], *sp = strchr(m, ' ');
        size_t len = strlen(m);
        if (!sp) continue; /* sq_tokenizer_from_spec reports malformed merges */
        if (SQ_ARRAY_RESERVE(joined, cap, len)) {
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        size_t left = (size_t)(sp - m);
        memcpy(joined, m, left);
        memcpy(joined + left, sp + 1, len - left - 1);
        int32_t id = sq_strmap_get(&ids, joined, len - 1);
        if (id >= 0 && !set[id]) v->scores[id] = -(float)r, set[id] = 1;
    }
    free(joined);
    free(set);
    sq_strmap_free(&ids);
    return err;
}

/* spm shape, older form: normalizer [Prepend "▁"], Replace " " -> "▁"; no pre-tokenizer. */
static SQ_NODISCARD sq_error *read_spm_normalizer(const char *path, const cJSON *root, json_vocab *v) {
    const cJSON *items[8];
    int n = sequence_items(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", items, 8);
    int replace = 0;
    for (int i = 0; i < n; i++) {
        const char *t = type_of(items[i]);
        const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(items[i], "pattern");
        const char *from = pattern ? string_at(pattern, "String") : NULL,
                   *to = string_at(items[i], "content");
        const char *prepend = string_at(items[i], "prepend");
        if (t && !strcmp(t, "Prepend") && prepend && !strcmp(prepend, space_symbol) && !replace) {
            v->spec.add_space_prefix = 1;
        } else if (t && !strcmp(t, "Replace") && from && to && !strcmp(from, " ") &&
                   !strcmp(to, space_symbol)) {
            replace = 1;
        } else {
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: normalizer step %d (%s) is not supported for SentencePiece-style BPE", path,
                             i, t ? t : "?");
        }
    }
    if (n < 0 || !replace)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "%s: SentencePiece-style BPE needs the Replace \" \" -> \"▁\" normalizer or a Metaspace "
            "pre-tokenizer",
            path);
    return NULL;
}

/* spm shape, newer form: no normalizer, pre-tokenizer Metaspace("▁", prepend_scheme, split). */
static SQ_NODISCARD sq_error *read_metaspace(const char *path, const cJSON *root, const cJSON *pre,
                                             json_vocab *v) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: normalizer %s together with Metaspace is not supported",
                         path, type_of(norm) ? type_of(norm) : "?");
    const char *replacement = string_at(pre, "replacement"), *scheme = string_at(pre, "prepend_scheme");
    if (!replacement || strcmp(replacement, space_symbol))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: Metaspace replacement other than \"▁\" is not supported",
                         path);
    if (!scheme) scheme = flag(pre, "add_prefix_space", 1) ? "always" : "never"; /* before prepend_scheme */
    if (strcmp(scheme, "always") && strcmp(scheme, "first") && strcmp(scheme, "never"))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme \"%s\" is not supported", path,
                         scheme);
    v->spec.add_space_prefix = strcmp(scheme, "never") != 0;
    v->spec.prefix_unless_space = 1;
    v->spec.prefix_first_only = !strcmp(scheme, "first");
    v->spec.split_before_space = flag(pre, "split", 1);
    return NULL;
}

static SQ_NODISCARD sq_error *read_spm_shape(const char *path, const cJSON *root, json_vocab *v) {
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (is_type(pre, "Metaspace")) {
        SQ_TRY(read_metaspace(path, root, pre, v));
    } else if (pre && !cJSON_IsNull(pre)) {
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer %s is not supported for SentencePiece-style BPE", path,
                         type_of(pre) ? type_of(pre) : "?");
    } else {
        SQ_TRY(read_spm_normalizer(path, root, v));
    }
    int byte_fallback = flag(cJSON_GetObjectItemCaseSensitive(root, "model"), "byte_fallback", 0);
    int byte;
    for (int i = 0; i < v->n; i++)
        if (byte_fallback && v->types[i] == SQ_TOKEN_NORMAL && sq_parse_byte_piece(v->tokens[i], &byte))
            v->types[i] = SQ_TOKEN_BYTE;
    return merge_order_scores(path, v);
}

/* A literal Split pattern as a regex: ASCII punctuation escaped (always literal after a backslash in PCRE2).
 */
static char *quote_regex(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && !isalnum(c)) *o++ = '\\';
        *o++ = (char)c;
    }
    *o = 0;
    return out;
}

static SQ_NODISCARD sq_error *add_regex(const char *path, json_vocab *v, char *r) {
    if (!r) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    if (SQ_ARRAY_RESERVE(v->regexes, v->cap_regexes, (size_t)v->n_regexes + 1)) {
        free(r);
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    v->regexes[v->n_regexes++] = r;
    return NULL;
}

/* byte-level shape: normalizer null or NFC; pre-tokenizer steps Split(Isolated) / Digits / ByteLevel. */
static SQ_NODISCARD sq_error *read_byte_level_shape(const char *path, const cJSON *root, json_vocab *v) {
    const cJSON *items[16];
    int n = sequence_items(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", items, 16);
    for (int i = 0; i < n; i++) {
        if (!is_type(items[i], "NFC"))
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: normalizer %s is not supported for byte-level BPE",
                             path, type_of(items[i]) ? type_of(items[i]) : "?");
        v->spec.normalize_nfc = 1;
    }
    if (n < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: normalizer Sequence is malformed", path);
    n = sequence_items(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers", items, 16);
    if (n < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: pre_tokenizer Sequence is malformed or too long", path);
    int byte_level = 0;
    for (int i = 0; i < n; i++) {
        const char *t = type_of(items[i]);
        if (byte_level) /* steps after ByteLevel would see mapped characters */
            return sq_errorf(SQ_ERR_UNSUPPORTED,
                             "%s: pre_tokenizer step %d (%s) after ByteLevel is not supported", path, i,
                             t ? t : "?");
        if (is_type(items[i], "ByteLevel")) {
            byte_level = 1;
            v->spec.add_space_prefix = flag(items[i], "add_prefix_space", 0);
            if (flag(items[i], "use_regex", 1)) SQ_TRY(add_regex(path, v, strdup(sq_gpt2_regex)));
        } else if (is_type(items[i], "Split")) {
            const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(items[i], "pattern");
            const char *behavior = string_at(items[i], "behavior"),
                       *re = pattern ? string_at(pattern, "Regex") : NULL;
            const char *lit = pattern ? string_at(pattern, "String") : NULL;
            if (!behavior || strcmp(behavior, "Isolated") || flag(items[i], "invert", 0) || (!re && !lit))
                return sq_errorf(
                    SQ_ERR_UNSUPPORTED,
                    "%s: pre_tokenizer Split step %d: only behavior Isolated, invert false, with a Regex or "
                    "String pattern is supported",
                    path, i);
            SQ_TRY(add_regex(path, v, re ? strdup(re) : quote_regex(lit)));
        } else if (is_type(items[i], "Digits")) {
            SQ_TRY(add_regex(path, v, strdup(flag(items[i], "individual_digits", 0) ? "\\p{N}" : "\\p{N}+")));
        } else {
            return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: pre_tokenizer %s is not supported", path, t ? t : "?");
        }
    }
    if (!byte_level)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: byte-level BPE without a ByteLevel pre-tokenizer", path);
    if (!v->n_regexes)
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: byte-level BPE without any splitting regex is not supported", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    v->spec.ignore_merges = flag(model, "ignore_merges", 0);
    const char *prefix = string_at(model, "continuing_subword_prefix"),
               *suffix = string_at(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "%s: BPE with continuing_subword_prefix/end_of_word_suffix is not supported", path);
    v->spec.pre = sq_pretokenizer_name_of((const char *const *)v->regexes, v->n_regexes,
                                          v->spec.ignore_merges, v->spec.normalize_nfc);
    return NULL;
}

/* A special-token setting of tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const cJSON *config, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return cJSON_IsObject(v) ? string_at(v, "content") : NULL;
}

/* BOS/EOS from the post-processor's template: a SpecialToken before / after the sequence "A". */
static void template_specials(const cJSON *root, const char **bos, const char **eos) {
    *bos = *eos = NULL;
    const cJSON *items[8];
    int n = sequence_items(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "processors", items, 8);
    for (int i = 0; i < n; i++) {
        if (!is_type(items[i], "TemplateProcessing")) continue;
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(items[i], "single"), *it;
        int seen_sequence = 0;
        cJSON_ArrayForEach(it, single) {
            const cJSON *special = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence"))
                seen_sequence = 1;
            else if (special && string_at(special, "id"))
                *(seen_sequence ? eos : bos) = string_at(special, "id");
        }
    }
}

static SQ_NODISCARD sq_error *read_config(const char *path, const cJSON *root, const cJSON *config,
                                          json_vocab *v) {
    const char *tbos, *teos;
    template_specials(root, &tbos, &teos);
    const char *bos = config_token(config, "bos_token"), *eos = config_token(config, "eos_token");
    const char *pad = config_token(config, "pad_token");
    const char *unk = string_at(cJSON_GetObjectItemCaseSensitive(root, "model"), "unk_token");
    v->spec.bos_id = token_id(v, bos ? bos : tbos);
    v->spec.eos_id = token_id(v, eos ? eos : teos);
    v->spec.pad_id = token_id(v, pad);
    v->spec.unk_id = token_id(v, unk);
    const struct {
        const char *key, *text;
        int id;
    } named[] = {{"bos_token", bos, v->spec.bos_id},
                 {"eos_token", eos, v->spec.eos_id},
                 {"pad_token", pad, v->spec.pad_id}};
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        if (named[i].text && named[i].id < 0)
            SQ_TRY(sq_warn(&v->warnings,
                           "%s: tokenizer_config.json %s \"%.64s\" is not in the vocabulary; treated "
                           "as absent",
                           path, named[i].key, named[i].text));
    if (unk && v->spec.unk_id < 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary", path, unk);
    if (v->spec.unk_id >= 0) v->types[v->spec.unk_id] = SQ_TOKEN_UNKNOWN;
    /* The config's add_bos_token decides; else the template; else a BOS that differs from EOS is added
     * (Llama-3's original release names <|begin_of_text|> without a template; GPT-2's <|endoftext|> is both).
     */
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *add_eos = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    v->spec.add_bos = cJSON_IsBool(add_bos) ? cJSON_IsTrue(add_bos)
                      : tbos                ? 1
                                            : (bos && (!eos || strcmp(bos, eos)));
    v->spec.add_eos = cJSON_IsBool(add_eos) ? cJSON_IsTrue(add_eos) : teos != NULL;
    return NULL;
}

/* The file `name` in the directory of path, read whole (NUL-terminated), or *text NULL when there is none. */
static SQ_NODISCARD sq_error *read_sibling(const char *path, const char *name, char **text, size_t *size) {
    *text = NULL;
    char *copy = strdup(path);
    if (!copy) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    const char *dir = dirname(copy);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *spath = malloc(n);
    sq_error *err = NULL;
    if (!spath) {
        free(copy);
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(spath, n, "%s/%s", dir, name);
    free(copy);
    FILE *probe = fopen(spath, "rb");
    if (probe) {
        fclose(probe);
        err = sq_read_file(spath, (size_t)64 << 20, text, size);
    }
    free(spath);
    return err;
}

/* tokenizer_config.json in the same directory, or NULL when there is none. */
static SQ_NODISCARD sq_error *load_config(const char *path, cJSON **config) {
    *config = NULL;
    char *text;
    size_t size;
    SQ_TRY(read_sibling(path, "tokenizer_config.json", &text, &size));
    if (!text) return NULL;
    *config = cJSON_ParseWithLength(text, size);
    free(text);
    if (!*config || !cJSON_IsObject(*config)) {
        cJSON_Delete(*config);
        *config = NULL;
        return sq_errorf(SQ_ERR_FORMAT, "%s: tokenizer_config.json beside it is not a JSON object", path);
    }
    return NULL;
}

/* The chat template: tokenizer_config.json's "chat_template" (a string, or a list of {"name", "template"} of
 * which the one named "default" is taken, as transformers takes it), else a chat_template.jinja beside the
 * file, where newer transformers save it. */
static SQ_NODISCARD sq_error *read_chat_template(const char *path, const cJSON *config, json_vocab *v) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
    if (cJSON_IsString(t)) {
        v->spec.chat_template = t->valuestring;
        return NULL;
    }
    if (cJSON_IsArray(t)) {
        const cJSON *item;
        cJSON_ArrayForEach(item, t) {
            const char *name = string_at(item, "name");
            if (name && !strcmp(name, "default")) v->spec.chat_template = string_at(item, "template");
        }
        return NULL;
    }
    if (t && !cJSON_IsNull(t))
        return sq_errorf(SQ_ERR_FORMAT,
                         "%s: tokenizer_config.json's chat_template is neither a string nor a list", path);
    size_t size;
    SQ_TRY(read_sibling(path, "chat_template.jinja", &v->chat_template_file, &size));
    if (v->chat_template_file && strlen(v->chat_template_file) != size)
        return sq_errorf(SQ_ERR_FORMAT, "%s: chat_template.jinja beside it holds a NUL byte", path);
    v->spec.chat_template = v->chat_template_file;
    return NULL;
}

static SQ_NODISCARD sq_error *read_tokenizer(const char *path, const cJSON *root, const cJSON *config,
                                             json_vocab *v) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return sq_errorf(SQ_ERR_FORMAT, "%s: no \"model\" object", path);
    const char *mtype = type_of(model);
    if (!mtype && cJSON_GetObjectItemCaseSensitive(model, "merges")) mtype = "BPE"; /* older files omit it */
    if (!mtype || strcmp(mtype, "BPE"))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: model type %s is not supported (only BPE)", path,
                         mtype ? mtype : "?");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return sq_errorf(SQ_ERR_FORMAT, "%s: added_tokens is not an array", path);
    SQ_TRY(read_vocab(path, model, cJSON_IsArray(added) ? added : NULL, v));
    SQ_TRY(read_merges(path, model, v));
    v->spec.pad_id = v->spec.bos_id = v->spec.eos_id = v->spec.unk_id = -1;
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder"),
                *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    int byte_level = is_type(decoder, "ByteLevel") || is_type(pre, "ByteLevel");
    const cJSON *items[16];
    int n = sequence_items(pre, "pretokenizers", items, 16);
    for (int i = 0; i < n; i++) byte_level |= is_type(items[i], "ByteLevel");
    v->spec.type = byte_level ? SQ_TOKENIZER_BYTE_BPE : SQ_TOKENIZER_SPM_BPE;
    SQ_TRY(byte_level ? read_byte_level_shape(path, root, v) : read_spm_shape(path, root, v));
    SQ_TRY(read_config(path, root, config, v));
    SQ_TRY(read_chat_template(path, config, v));
    v->spec.n_tokens = v->n;
    v->spec.tokens = (const char *const *)v->tokens;
    v->spec.types = v->types;
    v->spec.token_flags = v->flags;
    v->spec.scores = v->scores;
    v->spec.merges = (const char *const *)v->merges;
    v->spec.n_merges = v->n_merges;
    v->spec.pre_regex = (const char *const *)v->regexes;
    v->spec.n_pre_regex = v->n_regexes;
    v->spec.warnings = &v->warnings;
    return NULL;
}

sq_error *sq_load_tokenizer_json(const char *path, const char *json, size_t size, sq_tokenizer **out) {
    cJSON *root = cJSON_ParseWithLength(json, size);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        size_t offset = root || !at || at < json || at > json + size ? 0 : (size_t)(at - json);
        cJSON_Delete(root);
        return sq_errorf(SQ_ERR_FORMAT, "%s: not a tokenizer.json (malformed JSON near byte %zu)", path,
                         offset);
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "model")) &&
        cJSON_GetObjectItemCaseSensitive(root, "<|endoftext|>")) {
        sq_error *err = sq_load_gpt2_vocab(path, root, out); /* an encoder.json: token -> id only */
        cJSON_Delete(root);
        return err;
    }
    cJSON *config = NULL;
    json_vocab v = {0};
    sq_error *err = load_config(path, &config);
    if (!err) err = read_tokenizer(path, root, config, &v);
    if (!err && (err = sq_tokenizer_from_spec(&v.spec, out))) err = sq_error_wrap(err, "%s", path);
    json_vocab_free(&v);
    cJSON_Delete(config);
    cJSON_Delete(root);
    return err;
}
