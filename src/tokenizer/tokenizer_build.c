/* sq_tokenizer_from_spec: copies a vocabulary spec and builds the lookups encoding and decoding use. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int hex_digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

int sq_parse_byte_piece(const char *s, int *byte) {
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) || s[5] != '>') return 0;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return 0;
    *byte = hi * 16 + lo;
    return 1;
}

sq_error *sq_vocab_check_ids(const char *what, const int32_t *ids, int n_ids, int *n_tokens) {
    int32_t max_id = -1;
    for (int i = 0; i < n_ids; i++) max_id = ids[i] > max_id ? ids[i] : max_id;
    if (max_id < 0) return sq_errorf(SQ_ERR_FORMAT, "%s: no tokens", what);
    /* n_ids entries cover 0..max_id only if max_id < n_ids; else an id below n_ids is missing */
    int span = max_id < n_ids ? max_id + 1 : n_ids;
    uint8_t *seen = calloc((size_t)span, 1); /* [span] */
    if (!seen) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < span) seen[ids[i]] = 1;
    int missing = 0;
    while (missing < span && seen[missing]) missing++;
    free(seen);
    if (missing < span || max_id >= span)
        return sq_errorf(SQ_ERR_FORMAT, "%s: no token has id %d (ids must be 0..%d)", what, missing, max_id);
    *n_tokens = max_id + 1;
    return NULL;
}

void sq_tokenizer_free(sq_tokenizer *tok) {
    if (!tok) return;
    for (int i = 0; tok->tokens && i < tok->spec.n_tokens; i++) free(tok->tokens[i]);
    for (int i = 0; tok->merges && i < tok->spec.n_merges; i++) free(tok->merges[i]);
    for (int i = 0; tok->pre_regex && i < tok->spec.n_pre_regex; i++) free(tok->pre_regex[i]);
    for (int i = 0; tok->decoded && i < tok->spec.n_tokens; i++) free(tok->decoded[i]);
    free(tok->tokens);
    free(tok->token_lens);
    free(tok->scores);
    free(tok->types);
    free(tok->token_flags);
    free(tok->merges);
    free(tok->merge_split);
    free(tok->pre);
    free(tok->pre_regex);
    free(tok->chat_template);
    free(tok->decoded);
    free(tok->decoded_lens);
    free(tok->strips_space);
    free(tok->added);
    sq_strmap_free(&tok->vocab);
    sq_pairmap_free(&tok->merge_ranks);
    sq_pretokenizer_free(tok->pretok);
    sq_warnings_free(&tok->warnings);
    free(tok);
}

void sq_tokenizer_get_spec(const sq_tokenizer *tok, sq_vocab_spec *spec) { *spec = tok->spec; }

static SQ_NODISCARD sq_error *check_spec(const sq_vocab_spec *s) {
    if (s->type != SQ_TOKENIZER_SPM_BPE && s->type != SQ_TOKENIZER_BYTE_BPE)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "tokenizer type %d is neither spm-bpe nor byte-bpe",
                         (int)s->type);
    if (s->n_tokens <= 0 || !s->tokens)
        return sq_errorf(SQ_ERR_FORMAT, "tokenizer: vocabulary is empty (%d tokens)", s->n_tokens);
    for (int i = 0; i < s->n_tokens; i++) {
        if (!s->tokens[i]) return sq_errorf(SQ_ERR_FORMAT, "tokenizer: token %d has no text", i);
        if (s->types && (s->types[i] < SQ_TOKEN_NORMAL || s->types[i] > SQ_TOKEN_BYTE))
            return sq_errorf(SQ_ERR_FORMAT, "tokenizer: token %d has type %d (expected 1-6)", i,
                             (int)s->types[i]);
    }
    const int ids[] = {s->bos_id, s->eos_id, s->unk_id, s->pad_id};
    const char *names[] = {"bos", "eos", "unk", "pad"};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= s->n_tokens)
            return sq_errorf(SQ_ERR_FORMAT, "tokenizer: %s id %d is outside the vocabulary of %d tokens",
                             names[k], ids[k], s->n_tokens);
    if (s->n_merges < 0 || (s->n_merges && !s->merges))
        return sq_errorf(SQ_ERR_FORMAT, "tokenizer: %d merges given without their text", s->n_merges);
    for (int i = 0; i < s->n_merges; i++)
        if (!s->merges[i]) return sq_errorf(SQ_ERR_FORMAT, "tokenizer: merge %d has no text", i);
    if (s->n_pre_regex < 0 || (s->n_pre_regex && !s->pre_regex))
        return sq_errorf(SQ_ERR_FORMAT, "tokenizer: %d pre-tokenizer regexes given without their text",
                         s->n_pre_regex);
    for (int i = 0; i < s->n_pre_regex; i++)
        if (!s->pre_regex[i])
            return sq_errorf(SQ_ERR_FORMAT, "tokenizer: pre-tokenizer regex %d is missing", i);
    if (s->type == SQ_TOKENIZER_SPM_BPE && !s->scores && !s->n_merges)
        return sq_errorf(SQ_ERR_FORMAT, "tokenizer: spm-bpe vocabulary has neither scores nor merges");
    return NULL;
}

static SQ_NODISCARD sq_error *copy_spec(sq_tokenizer *t, const sq_vocab_spec *s) {
    int n = s->n_tokens;
    t->spec = *s;
    t->spec.n_merges = 0; /* counts grow as the copies succeed, so that free releases exactly those */
    t->spec.n_pre_regex = 0;
    t->tokens = calloc((size_t)n, sizeof *t->tokens);
    t->token_lens = calloc((size_t)n, sizeof *t->token_lens);
    t->types = calloc((size_t)n, sizeof *t->types);
    t->merges = calloc(s->n_merges ? (size_t)s->n_merges : 1, sizeof *t->merges);
    t->pre_regex = calloc(s->n_pre_regex ? (size_t)s->n_pre_regex : 1, sizeof *t->pre_regex);
    if (s->scores) t->scores = malloc((size_t)n * sizeof *t->scores);
    if (s->token_flags && (t->token_flags = malloc((size_t)n)))
        memcpy(t->token_flags, s->token_flags, (size_t)n);
    if (!t->tokens || !t->token_lens || !t->types || !t->merges || !t->pre_regex ||
        (s->scores && !t->scores) || (s->token_flags && !t->token_flags))
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory for %d tokens", n);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(s->tokens[i]);
        if (len > UINT32_MAX / 2) return sq_errorf(SQ_ERR_FORMAT, "tokenizer: token %d is absurdly long", i);
        if (!(t->tokens[i] = strdup(s->tokens[i])))
            return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
        t->token_lens[i] = (uint32_t)len;
    }
    if (s->scores) memcpy(t->scores, s->scores, (size_t)n * sizeof *t->scores);
    if (s->types) {
        memcpy(t->types, s->types, (size_t)n * sizeof *t->types);
    } else {
        int byte;
        for (int i = 0; i < n; i++)
            t->types[i] = s->type == SQ_TOKENIZER_SPM_BPE && sq_parse_byte_piece(s->tokens[i], &byte)
                              ? SQ_TOKEN_BYTE
                              : SQ_TOKEN_NORMAL;
        if (s->unk_id >= 0) t->types[s->unk_id] = SQ_TOKEN_UNKNOWN;
        if (s->bos_id >= 0) t->types[s->bos_id] = SQ_TOKEN_CONTROL;
        if (s->eos_id >= 0) t->types[s->eos_id] = SQ_TOKEN_CONTROL;
    }
    for (int i = 0; i < s->n_merges; i++, t->spec.n_merges++)
        if (!(t->merges[i] = strdup(s->merges[i])))
            return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < s->n_pre_regex; i++, t->spec.n_pre_regex++)
        if (!(t->pre_regex[i] = strdup(s->pre_regex[i])))
            return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    t->pre = dup_or_null(s->pre);
    t->chat_template = dup_or_null(s->chat_template);
    if ((s->pre && !t->pre) || (s->chat_template && !t->chat_template))
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    if (s->warnings) SQ_TRY(sq_warnings_append(&t->warnings, s->warnings));
    t->spec.warnings = &t->warnings;
    t->spec.tokens = (const char *const *)t->tokens;
    t->spec.scores = t->scores;
    t->spec.types = t->types;
    t->spec.token_flags = t->token_flags;
    t->spec.merges = (const char *const *)t->merges;
    t->spec.pre = t->pre;
    t->spec.chat_template = t->chat_template;
    t->spec.pre_regex = (const char *const *)t->pre_regex;
    return NULL;
}

/* Whether the encoder looks this token up as part of the ordinary vocabulary. */
static int in_model_vocab(const sq_tokenizer *t, int id) {
    int type = t->types[id];
    if (type == SQ_TOKEN_CONTROL) return 0;
    if (t->spec.type == SQ_TOKENIZER_BYTE_BPE)
        return type != SQ_TOKEN_USER_DEFINED && type != SQ_TOKEN_UNKNOWN;
    return 1;
}

static SQ_NODISCARD sq_error *build_vocab(sq_tokenizer *t) {
    int n = t->spec.n_tokens;
    if (sq_strmap_init(&t->vocab, (size_t)n)) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    int spm = t->spec.type == SQ_TOKENIZER_SPM_BPE;
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    for (int i = 0; i < n; i++) {
        if (t->types[i] == SQ_TOKEN_UNUSED) t->has_unused = 1;
        if (!in_model_vocab(t, i)) continue;
        /* spm looks pieces up as spelled ("▁the"), byte-bpe by the bytes they stand for */
        const char *key = spm ? t->tokens[i] : t->decoded[i];
        uint32_t len = spm ? t->token_lens[i] : t->decoded_lens[i];
        if (!len) continue;
        if (sq_strmap_put(&t->vocab, key, len, i) < 0) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: map full");
        int byte;
        if (spm && t->types[i] == SQ_TOKEN_BYTE && sq_parse_byte_piece(t->tokens[i], &byte) &&
            t->byte_ids[byte] < 0) {
            t->byte_ids[byte] = i;
            t->byte_fallback = 1;
        }
    }
    if (!spm)
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_ids[b] = sq_strmap_get(&t->vocab, &c, 1);
        }
    return NULL;
}

/* The id of a merge half as the vocabulary spells it (spm) or as GPT-2's byte mapping spells it (byte-bpe).
 */
static int32_t lookup_spelled(const sq_tokenizer *t, const char *s, size_t len, char *scratch) {
    if (t->spec.type == SQ_TOKENIZER_SPM_BPE) return sq_strmap_get(&t->vocab, s, len);
    size_t n;
    if (sq_decode_byte_level(s, len, scratch, &n)) return -1;
    return sq_strmap_get(&t->vocab, scratch, n);
}

/* Whether some piece that merging can produce has "▁" right after another character. */
static int pieces_join_across_space(const sq_tokenizer *t) {
    for (int i = 0; i < t->spec.n_tokens; i++) {
        int type = t->types[i];
        if (type != SQ_TOKEN_NORMAL && type != SQ_TOKEN_USER_DEFINED && type != SQ_TOKEN_UNUSED) continue;
        const char *s = t->tokens[i];
        for (const char *p = strstr(s, "\xe2\x96\x81"); p; p = strstr(p + 3, "\xe2\x96\x81"))
            if (p > s && (p - s < 3 || memcmp(p - 3, "\xe2\x96\x81", 3))) return 1;
    }
    /* rank merges work on ids, so a merge involving a byte token could join anything */
    for (size_t k = 0; k < t->merge_ranks.cap; k++) {
        if (!t->merge_ranks.keys[k]) continue;
        uint64_t key = t->merge_ranks.keys[k] - 1;
        if (t->types[key >> 32] == SQ_TOKEN_BYTE || t->types[key & 0xFFFFFFFF] == SQ_TOKEN_BYTE) return 1;
    }
    return 0;
}

static SQ_NODISCARD sq_error *build_merges(sq_tokenizer *t) {
    int nm = t->spec.n_merges;
    if (!nm) return NULL;
    if (sq_pairmap_init(&t->merge_ranks, (size_t)nm) ||
        !(t->merge_split = calloc((size_t)nm, sizeof *t->merge_split)))
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    size_t longest = 0;
    for (int i = 0; i < nm; i++) {
        size_t l = strlen(t->merges[i]);
        if (l > longest) longest = l;
    }
    char *scratch = malloc(longest + 1), *joined = malloc(longest + 1);
    sq_error *err = NULL;
    if (!scratch || !joined) err = sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < nm && !err; i++) {
        const char *m = t->merges[i];
        size_t len = strlen(m);
        int found = 0;
        /* split at the first space that leaves two known tokens whose concatenation is known too */
        for (const char *sp = strchr(m, ' '); sp && !found; sp = strchr(sp + 1, ' ')) {
            size_t ll = (size_t)(sp - m), rl = len - ll - 1;
            int32_t a = lookup_spelled(t, m, ll, scratch), b = lookup_spelled(t, sp + 1, rl, scratch);
            memcpy(joined, m, ll);
            memcpy(joined + ll, sp + 1, rl);
            int32_t c = lookup_spelled(t, joined, ll + rl, scratch);
            if (a < 0 || b < 0 || c < 0) continue;
            found = 1;
            t->merge_split[i] = (uint32_t)ll;
            if (sq_pairmap_put(&t->merge_ranks, a, b, (sq_pair_value){i, c}) < 0)
                err = sq_errorf(SQ_ERR_NOMEM, "tokenizer: merge map full");
        }
        if (!found && !err)
            err = sq_errorf(SQ_ERR_FORMAT,
                            "tokenizer: merge %d \"%.100s\" does not join two tokens of the vocabulary "
                            "into a third",
                            i, m);
    }
    free(scratch);
    free(joined);
    return err;
}

static int by_first_byte_longer_first(const void *a, const void *b) {
    const sq_added_token *x = a, *y = b;
    unsigned char fx = (unsigned char)x->text[0], fy = (unsigned char)y->text[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static SQ_NODISCARD sq_error *build_added(sq_tokenizer *t) {
    int n = t->spec.n_tokens, count = 0;
    t->added = calloc((size_t)n, sizeof *t->added);
    if (!t->added) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < n; i++) {
        int type = t->types[i];
        if (!t->token_lens[i] ||
            (type != SQ_TOKEN_CONTROL && type != SQ_TOKEN_USER_DEFINED && type != SQ_TOKEN_UNKNOWN))
            continue;
        t->added[count++] = (sq_added_token){t->tokens[i], t->token_lens[i], i, type != SQ_TOKEN_USER_DEFINED,
                                             t->token_flags ? t->token_flags[i] : 0};
    }
    qsort(t->added, (size_t)count, sizeof *t->added, by_first_byte_longer_first);
    t->n_added = count;
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (b < 256 && k < count && (unsigned char)t->added[k].text[0] < b) k++;
        t->added_group[b] = b < 256 ? k : count;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *build_pretokenizer(sq_tokenizer *t) {
    const sq_vocab_spec *s = &t->spec;
    t->ignore_merges = s->ignore_merges;
    t->normalize_nfc = s->normalize_nfc;
    if (s->type != SQ_TOKENIZER_BYTE_BPE) return NULL;
    if (s->n_pre_regex) return sq_pretokenizer_create(s->pre_regex, s->n_pre_regex, &t->pretok);
    sq_named_pretokenizer named;
    if (sq_pretokenizer_by_name(s->pre, &named))
        return sq_errorf(SQ_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer \"%s\"", s->pre);
    t->ignore_merges |= named.ignore_merges;
    t->normalize_nfc |= named.normalize_nfc;
    return sq_pretokenizer_create(named.regexes, named.n_regexes, &t->pretok);
}

sq_error *sq_tokenizer_from_spec(const sq_vocab_spec *spec, sq_tokenizer **out) {
    *out = NULL;
    SQ_TRY(check_spec(spec));
    sq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    sq_error *err = copy_spec(t, spec);
    if (!err) err = sq_detokenizer_prepare(t);
    if (!err) err = build_vocab(t);
    if (!err) err = build_merges(t);
    if (!err) t->splits_before_space = t->spec.type == SQ_TOKENIZER_SPM_BPE && !pieces_join_across_space(t);
    if (!err) err = build_added(t);
    if (!err) err = build_pretokenizer(t);
    if (err) {
        sq_tokenizer_free(t);
        return err;
    }
    *out = t;
    return NULL;
}
