/* sq_tokenizer_save_hf: writes tokenizer.json + tokenizer_config.json in the two shapes tokenizer_json.c
 * reads, so that this loader and Hugging Face's tokenizers both read them back as the same tokenizer. spm-bpe
 * vocabularies that merge by score get merges derived as Hugging Face's SentencePiece converter does. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static const char space_symbol[] = "\xe2\x96\x81";

typedef struct derived_merge {
    float score;
    int32_t merged, left, right;
} derived_merge;

static int by_score_then_ids(const void *a, const void *b) {
    const derived_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->merged != y->merged) return x->merged < y->merged ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return (x->right > y->right) - (x->right < y->right);
}

/* Every split of every piece into two pieces, highest score first, then by the pieces' ids (what
 * tokenizers' SentencePieceExtractor produces). */
static SQ_NODISCARD sq_error *derive_merges(const sq_tokenizer *t, derived_merge **out, int *n_out) {
    size_t n = 0, cap = 0;
    derived_merge *m = NULL; /* allocated even when empty: qsort and the caller get an array */
    if (SQ_ARRAY_RESERVE(m, cap, 1024)) return sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
    sq_strmap all;
    if (sq_strmap_init(&all, (size_t)t->spec.n_tokens)) {
        free(m);
        return sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
    }
    for (int i = 0; i < t->spec.n_tokens; i++) sq_strmap_put(&all, t->tokens[i], t->token_lens[i], i);
    for (int i = 0; i < t->spec.n_tokens; i++) {
        const char *s = t->tokens[i];
        size_t len = t->token_lens[i];
        for (size_t k = (size_t)sq_utf8_claimed_len((unsigned char)s[0]); k < len;
             k += (size_t)sq_utf8_claimed_len((unsigned char)s[k])) {
            int32_t l = sq_strmap_get(&all, s, k), r = sq_strmap_get(&all, s + k, len - k);
            if (l < 0 || r < 0) continue;
            if (SQ_ARRAY_RESERVE(m, cap, n + 1)) {
                free(m);
                sq_strmap_free(&all);
                return sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
            }
            m[n++] = (derived_merge){t->scores[i], i, l, r};
        }
    }
    sq_strmap_free(&all);
    qsort(m, n, sizeof *m, by_score_then_ids);
    *out = m;
    *n_out = (int)n;
    return NULL;
}

static cJSON *obj(cJSON *parent, const char *key) {
    cJSON *o = cJSON_CreateObject();
    if (parent && o) cJSON_AddItemToObject(parent, key, o);
    return o;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "type", type);
    return o;
}

static int is_added(const sq_tokenizer *t, int i) {
    int type = t->types[i];
    return type == SQ_TOKEN_CONTROL || type == SQ_TOKEN_USER_DEFINED || type == SQ_TOKEN_UNKNOWN;
}

static void add_merge(cJSON *list, const char *a, const char *b) {
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateString(a));
    cJSON_AddItemToArray(pair, cJSON_CreateString(b));
    cJSON_AddItemToArray(list, pair);
}

/* Merges as ["a", "b"] pairs (what tokenizers writes since 0.20; pieces may contain spaces). */
static SQ_NODISCARD sq_error *write_merges(const sq_tokenizer *t, cJSON *model) {
    cJSON *list = cJSON_AddArrayToObject(model, "merges");
    if (!list) return sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
    if (t->spec.n_merges) {
        for (int i = 0; i < t->spec.n_merges; i++) {
            char *m = strdup(t->merges[i]);
            if (!m) return sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
            m[t->merge_split[i]] = 0;
            add_merge(list, m, m + t->merge_split[i] + 1);
            free(m);
        }
        return NULL;
    }
    derived_merge *m = NULL;
    int n = 0;
    SQ_TRY(derive_merges(t, &m, &n));
    for (int i = 0; i < n; i++) add_merge(list, t->tokens[m[i].left], t->tokens[m[i].right]);
    free(m);
    return NULL;
}

static void add_regex_split(cJSON *list, const char *regex) {
    cJSON *split = typed("Split");
    cJSON_AddStringToObject(obj(split, "pattern"), "Regex", regex);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
}

/* [bos] sequence [eos] of a TemplateProcessing template. */
static void template_part(const sq_tokenizer *t, cJSON *list, int bos, const char *seq, int eos,
                          int type_id) {
    const int ids[2] = {bos, eos};
    for (int k = 0; k < 3; k++) {
        cJSON *item = cJSON_CreateObject();
        if (k == 1) {
            cJSON *sq = obj(item, "Sequence");
            cJSON_AddStringToObject(sq, "id", seq);
            cJSON_AddNumberToObject(sq, "type_id", type_id);
        } else if (ids[k / 2] >= 0) {
            cJSON *st = obj(item, "SpecialToken");
            cJSON_AddStringToObject(st, "id", t->tokens[ids[k / 2]]);
            cJSON_AddNumberToObject(st, "type_id", type_id);
        } else {
            cJSON_Delete(item);
            continue;
        }
        cJSON_AddItemToArray(list, item);
    }
}

static void build_pipeline(const sq_tokenizer *t, cJSON *root) {
    int spm = t->spec.type == SQ_TOKENIZER_SPM_BPE;
    const sq_vocab_spec *sp = &t->spec;
    if (spm && (sp->prefix_unless_space || sp->prefix_first_only || sp->split_before_space)) {
        cJSON_AddNullToObject(root, "normalizer");
        cJSON *meta = typed("Metaspace");
        cJSON_AddStringToObject(meta, "replacement", space_symbol);
        cJSON_AddStringToObject(meta, "prepend_scheme",
                                !sp->add_space_prefix   ? "never"
                                : sp->prefix_first_only ? "first"
                                                        : "always");
        cJSON_AddBoolToObject(meta, "split", sp->split_before_space);
        cJSON_AddItemToObject(root, "pre_tokenizer", meta);
    } else if (spm) {
        cJSON *norm = typed("Sequence"), *steps = cJSON_AddArrayToObject(norm, "normalizers");
        if (t->spec.add_space_prefix) {
            cJSON *prepend = typed("Prepend");
            cJSON_AddStringToObject(prepend, "prepend", space_symbol);
            cJSON_AddItemToArray(steps, prepend);
        }
        cJSON *replace = typed("Replace");
        cJSON_AddStringToObject(obj(replace, "pattern"), "String", " ");
        cJSON_AddStringToObject(replace, "content", space_symbol);
        cJSON_AddItemToArray(steps, replace);
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON_AddNullToObject(root, "pre_tokenizer");
    } else {
        if (t->normalize_nfc)
            cJSON_AddItemToObject(root, "normalizer", typed("NFC"));
        else
            cJSON_AddNullToObject(root, "normalizer");
        cJSON *pre = typed("Sequence"), *steps = cJSON_AddArrayToObject(pre, "pretokenizers");
        sq_named_pretokenizer named = {0};
        const char *const *regexes = t->spec.pre_regex;
        int n = t->spec.n_pre_regex;
        if (!n && !sq_pretokenizer_by_name(t->spec.pre, &named)) regexes = named.regexes, n = named.n_regexes;
        for (int i = 0; i < n; i++) add_regex_split(steps, regexes[i]);
        cJSON *bl = typed("ByteLevel");
        cJSON_AddBoolToObject(bl, "add_prefix_space", t->spec.add_space_prefix);
        cJSON_AddFalseToObject(bl, "trim_offsets");
        cJSON_AddFalseToObject(bl, "use_regex");
        cJSON_AddItemToArray(steps, bl);
        cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    }
    /* BOS/EOS as a template, so that Hugging Face adds them as this tokenizer does */
    int bos = t->spec.add_bos ? t->spec.bos_id : -1, eos = t->spec.add_eos ? t->spec.eos_id : -1;
    if (bos >= 0 || eos >= 0) {
        cJSON *tp = typed("TemplateProcessing"), *single = cJSON_AddArrayToObject(tp, "single");
        cJSON *pair = cJSON_AddArrayToObject(tp, "pair"), *specials = obj(tp, "special_tokens");
        template_part(t, single, bos, "A", eos, 0);
        template_part(t, pair, bos, "A", eos, 0);
        template_part(t, pair, bos, "B", eos, 1);
        const int ids[2] = {bos, eos};
        for (int k = 0; k < 2; k++) {
            if (ids[k] < 0 || cJSON_GetObjectItemCaseSensitive(specials, t->tokens[ids[k]])) continue;
            cJSON *e = obj(specials, t->tokens[ids[k]]);
            cJSON_AddStringToObject(e, "id", t->tokens[ids[k]]);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(e, "ids"), cJSON_CreateNumber(ids[k]));
            cJSON_AddItemToArray(cJSON_AddArrayToObject(e, "tokens"), cJSON_CreateString(t->tokens[ids[k]]));
        }
        cJSON_AddItemToObject(root, "post_processor", tp);
    } else {
        cJSON_AddNullToObject(root, "post_processor");
    }
    if (spm) {
        cJSON *dec = typed("Sequence"), *steps = cJSON_AddArrayToObject(dec, "decoders");
        cJSON *replace = typed("Replace");
        cJSON_AddStringToObject(obj(replace, "pattern"), "String", space_symbol);
        cJSON_AddStringToObject(replace, "content", " ");
        cJSON_AddItemToArray(steps, replace);
        cJSON_AddItemToArray(steps, typed("ByteFallback"));
        cJSON_AddItemToArray(steps, typed("Fuse"));
        if (t->spec.add_space_prefix) {
            cJSON *strip = typed("Strip");
            cJSON_AddStringToObject(strip, "content", " ");
            cJSON_AddNumberToObject(strip, "start", 1);
            cJSON_AddNumberToObject(strip, "stop", 0);
            cJSON_AddItemToArray(steps, strip);
        }
        cJSON_AddItemToObject(root, "decoder", dec);
    } else {
        cJSON *bl = typed("ByteLevel");
        cJSON_AddFalseToObject(bl, "add_prefix_space");
        cJSON_AddFalseToObject(bl, "trim_offsets");
        cJSON_AddTrueToObject(bl, "use_regex");
        cJSON_AddItemToObject(root, "decoder", bl);
    }
}

static cJSON *build_tokenizer_json(const sq_tokenizer *t) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < t->spec.n_tokens; i++) {
        if (!is_added(t, i)) continue;
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", t->tokens[i]);
        cJSON_AddFalseToObject(a, "single_word");
        int flags = t->token_flags ? t->token_flags[i] : 0;
        cJSON_AddBoolToObject(a, "lstrip", (flags & SQ_TOKEN_LSTRIP) != 0);
        cJSON_AddBoolToObject(a, "rstrip", (flags & SQ_TOKEN_RSTRIP) != 0);
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddBoolToObject(a, "special", t->types[i] != SQ_TOKEN_USER_DEFINED);
        cJSON_AddItemToArray(added, a);
    }
    build_pipeline(t, root);
    int spm = t->spec.type == SQ_TOKENIZER_SPM_BPE;
    cJSON *model = obj(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    if (t->spec.unk_id >= 0)
        cJSON_AddStringToObject(model, "unk_token", t->tokens[t->spec.unk_id]);
    else
        cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", spm);
    cJSON_AddBoolToObject(model, "byte_fallback", t->byte_fallback);
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = obj(model, "vocab");
    sq_strmap seen;
    if (sq_strmap_init(&seen, (size_t)t->spec.n_tokens)) {
        cJSON_Delete(root);
        return NULL;
    }
    /* byte-level added tokens are plain text, not mapped bytes: they live in added_tokens only. A JSON object
     * holds each spelling once; a later duplicate keeps only its added_tokens entry, if any. */
    for (int i = 0; i < t->spec.n_tokens; i++)
        if ((spm || !is_added(t, i)) && sq_strmap_put(&seen, t->tokens[i], t->token_lens[i], i) == 1)
            cJSON_AddNumberToObject(vocab, t->tokens[i], i);
    sq_strmap_free(&seen);
    return root;
}

static cJSON *build_config(const sq_tokenizer *t) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "add_bos_token", t->spec.add_bos);
    cJSON_AddBoolToObject(c, "add_eos_token", t->spec.add_eos);
    const int ids[] = {t->spec.bos_id, t->spec.eos_id, t->spec.unk_id, t->spec.pad_id};
    const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (int k = 0; k < 4; k++) {
        if (ids[k] >= 0)
            cJSON_AddStringToObject(c, keys[k], t->tokens[ids[k]]);
        else
            cJSON_AddNullToObject(c, keys[k]);
    }
    cJSON_AddFalseToObject(c, "clean_up_tokenization_spaces");
    cJSON_AddStringToObject(c, "tokenizer_class", "PreTrainedTokenizerFast");
    if (t->spec.chat_template) cJSON_AddStringToObject(c, "chat_template", t->spec.chat_template);
    return c;
}

static SQ_NODISCARD sq_error *write_json(const char *dir, const char *name, cJSON *json) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    sq_error *err = NULL;
    if (!path || !text) {
        err = sq_errorf(SQ_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    } else {
        snprintf(path, n, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f) {
            err = sq_errorf(SQ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        } else {
            size_t len = strlen(text);
            int bad = fwrite(text, 1, len, f) != len;
            bad |= fclose(f) != 0;
            if (bad) err = sq_errorf(SQ_ERR_IO, "%s: write failed", path);
        }
    }
    cJSON_free(text);
    free(path);
    return err;
}

sq_error *sq_tokenizer_save_hf(const sq_tokenizer *tok, const char *dir) {
    if (!tok || !dir) return sq_errorf(SQ_ERR_INVALID_ARG, "save tokenizer: no tokenizer or directory");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sq_errorf(SQ_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    cJSON *json = build_tokenizer_json(tok);
    sq_error *err = json ? NULL : sq_errorf(SQ_ERR_NOMEM, "save tokenizer: out of memory");
    if (!err) err = write_merges(tok, cJSON_GetObjectItemCaseSensitive(json, "model"));
    if (!err) err = write_json(dir, "tokenizer.json", json);
    cJSON_Delete(json);
    if (err) return err;
    cJSON *config = build_config(tok);
    err = write_json(dir, "tokenizer_config.json", config);
    cJSON_Delete(config);
    return err;
}
