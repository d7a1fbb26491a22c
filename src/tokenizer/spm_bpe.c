/* SentencePiece BPE (Llama-2): the text gets the dummy-prefix "▁", spaces become "▁", bytes that are not
 * UTF-8 become U+FFFD (as sentencepiece's normalizer does), characters are merged pairwise -- by piece score
 * as sentencepiece does, or by merge rank for a tokenizer.json -- and characters the vocabulary lacks fall
 * back to <0xNN> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static const char space_symbol[] = "\xe2\x96\x81"; /* U+2581 "▁" */
static const char replacement_char[] = "\xef\xbf\xbd";

/* sentencepiece lets merges pass through unused pieces and afterwards splits each unused piece back into the
 * two pieces it was last paired from ("resegmentation"); these records remember those pairs. */
typedef struct unused_pair {
    int32_t id;
    uint32_t left_start, left_len, right_start, right_len;
} unused_pair;

typedef struct score_order {
    const sq_tokenizer *tok;
    unused_pair *pairs; /* one per unused piece: the latest pair that formed it */
    size_t n, cap;
    int out_of_memory;
} score_order;

static void remember_unused(score_order *so, int32_t id, const sq_bpe_symbol *l, const sq_bpe_symbol *r) {
    size_t i = 0;
    while (i < so->n && so->pairs[i].id != id) i++;
    if (i == so->n) {
        if (SQ_ARRAY_RESERVE(so->pairs, so->cap, so->n + 1)) {
            so->out_of_memory = 1;
            return;
        }
        so->n++;
    }
    so->pairs[i] = (unused_pair){id, l->start, l->len, r->start, r->len};
}

/* Score order: the merged piece must be an ordinary piece of the vocabulary; higher scores merge first. */
static int pair_by_score(const void *ctx, const char *text, const sq_bpe_symbol *l, const sq_bpe_symbol *r,
                         double *priority, int32_t *merged) {
    score_order *so =
        (score_order *)ctx; /* passed through sq_bpe_merge as the caller's own, mutable, state */
    const sq_tokenizer *tok = so->tok;
    int32_t id = sq_strmap_get(&tok->vocab, text + l->start, (size_t)l->len + r->len);
    if (id < 0) return 0;
    int32_t type = tok->types[id];
    if (type != SQ_TOKEN_NORMAL && type != SQ_TOKEN_USER_DEFINED && type != SQ_TOKEN_UNUSED) return 0;
    if (type == SQ_TOKEN_UNUSED) remember_unused(so, id, l, r);
    *priority = -(double)tok->scores[id];
    *merged = id;
    return 1;
}

/* The id sentencepiece gives a piece: its own, else the unknown token's. */
static int32_t piece_id(const sq_tokenizer *tok, const char *s, size_t len) {
    int32_t id = sq_strmap_get(&tok->vocab, s, len);
    return id >= 0 ? id : tok->spec.unk_id;
}

static SQ_NODISCARD sq_error *push_resegmented(const score_order *so, const char *s, int32_t id,
                                               sq_id_buf *out, int depth) {
    const sq_tokenizer *tok = so->tok;
    const unused_pair *p = NULL;
    if (id >= 0 && tok->types[id] == SQ_TOKEN_UNUSED && depth < 64)
        for (size_t i = 0; i < so->n && !p; i++)
            if (so->pairs[i].id == id) p = &so->pairs[i];
    if (!p) return id >= 0 ? sq_id_buf_push(out, id) : NULL;
    SQ_TRY(push_resegmented(so, s, piece_id(tok, s + p->left_start, p->left_len), out, depth + 1));
    return push_resegmented(so, s, piece_id(tok, s + p->right_start, p->right_len), out, depth + 1);
}

/* Whether this stretch of text gets the "▁" prefix. */
static int wants_prefix(const sq_tokenizer *tok, const char *text, size_t len, int at_start) {
    const sq_vocab_spec *s = &tok->spec;
    if (!s->add_space_prefix || !len) return 0;
    if (s->prefix_first_only && !at_start) return 0;
    int starts_with_space = text[0] == ' ' || (len >= 3 && !memcmp(text, space_symbol, 3));
    return !(s->prefix_unless_space && starts_with_space);
}

/* "▁" prefix, spaces escaped, invalid bytes replaced. *out is malloc'ed. */
static SQ_NODISCARD sq_error *normalize(const sq_tokenizer *tok, const char *text, size_t len, int at_start,
                                        char **out, size_t *out_len) {
    if (len > (SIZE_MAX - 3) / 3) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: text too long");
    char *buf = malloc(3 * len + 3);
    if (!buf) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    if (wants_prefix(tok, text, len, at_start)) memcpy(buf, space_symbol, 3), n = 3;
    for (size_t i = 0; i < len;) {
        int c = sq_utf8_valid_len((const unsigned char *)text + i, len - i);
        if (c == 0) {
            memcpy(buf + n, replacement_char, 3), n += 3, i++;
        } else if (text[i] == ' ') {
            memcpy(buf + n, space_symbol, 3), n += 3, i++;
        } else {
            memcpy(buf + n, text + i, (size_t)c), n += (size_t)c, i += (size_t)c;
        }
    }
    *out = buf;
    *out_len = n;
    return NULL;
}

/* One symbol per character: its token, else its bytes' <0xNN> tokens, else (fused with unknown neighbours)
 * the unknown token. Byte tokens take part in rank merges as Hugging Face's BPE lets them; sentencepiece
 * applies byte fallback after merging, so under score order they stay apart. */
static SQ_NODISCARD sq_error *split_characters(const sq_tokenizer *tok, const char *s, size_t start, size_t n,
                                               int by_rank, sq_bpe *bpe) {
    for (size_t i = start; i < n;) {
        size_t c = (size_t)sq_utf8_claimed_len((unsigned char)s[i]);
        if (c > n - i) c = n - i;
        int32_t id = sq_strmap_get(&tok->vocab, s + i, c);
        if (id >= 0 && tok->types[id] != SQ_TOKEN_BYTE && tok->types[id] != SQ_TOKEN_UNKNOWN) {
            SQ_TRY(sq_bpe_add(bpe, id, i, c, 1));
        } else if (tok->byte_fallback) {
            for (size_t k = 0; k < c; k++) {
                int32_t b = tok->byte_ids[(unsigned char)s[i + k]];
                SQ_TRY(sq_bpe_add(bpe, b >= 0 ? b : tok->spec.unk_id, i + k, 1, by_rank && b >= 0));
            }
        } else if (tok->spec.unk_id >= 0) {
            sq_bpe_symbol *last = bpe->n ? &bpe->symbols[bpe->n - 1] : NULL;
            if (last && !last->mergeable && last->id == tok->spec.unk_id)
                last->len += (uint32_t)c;
            else
                SQ_TRY(sq_bpe_add(bpe, tok->spec.unk_id, i, c, 0));
        }
        i += c;
    }
    return NULL;
}

/* Merges s[start, end) and appends its tokens (unused pieces are split later, in push_resegmented). */
static SQ_NODISCARD sq_error *encode_run(const sq_tokenizer *tok, const char *s, size_t start, size_t end,
                                         sq_bpe *bpe, score_order *so, sq_id_buf *out) {
    int by_rank = tok->merge_ranks.count > 0;
    sq_bpe_reset(bpe);
    SQ_TRY(split_characters(tok, s, start, end, by_rank, bpe));
    if (!bpe->n) return NULL;
    SQ_TRY(by_rank ? sq_bpe_merge(bpe, s, sq_tokenizer_pair_by_rank, tok)
                   : sq_bpe_merge(bpe, s, pair_by_score, so));
    if (so->out_of_memory) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i >= 0; i = bpe->symbols[i].next)
        if (bpe->symbols[i].id >= 0) SQ_TRY(sq_id_buf_push(out, bpe->symbols[i].id));
    return NULL;
}

/* Where the next run starts: at every "▁" when the tokenizer splits words there (Metaspace split), else at a
 * "▁" that follows another character when no piece could join across it, else at the end. */
static size_t run_end(const sq_tokenizer *tok, const char *s, size_t start, size_t n) {
    int every = tok->spec.split_before_space;
    if (!every && !tok->splits_before_space) return n;
    for (size_t i = start + 1; i + 3 <= n; i++)
        if (!memcmp(s + i, space_symbol, 3) && (every || i < start + 3 || memcmp(s + i - 3, space_symbol, 3)))
            return i;
    return n;
}

sq_error *sq_spm_encode(const sq_tokenizer *tok, const char *text, size_t len, int at_start, sq_id_buf *out) {
    char *s = NULL;
    size_t n = 0;
    SQ_TRY(normalize(tok, text, len, at_start, &s, &n));
    sq_bpe bpe = {0};
    score_order so = {.tok = tok};
    /* with unused pieces, resegmentation needs the pairs remembered over the whole text first */
    sq_id_buf merged = {0}, *dst = tok->has_unused ? &merged : out;
    sq_error *err = NULL;
    /* Runs merge independently; this keeps the merge heap small (a whole book is one text) */
    for (size_t start = 0, end; start < n && !err; start = end) {
        end = run_end(tok, s, start, n);
        err = encode_run(tok, s, start, end, &bpe, &so, dst);
    }
    for (size_t i = 0; i < merged.n && !err; i++) err = push_resegmented(&so, s, merged.ids[i], out, 0);
    free(merged.ids);
    free(so.pairs);
    sq_bpe_free(&bpe);
    free(s);
    return err;
}
