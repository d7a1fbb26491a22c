/* SentencePiece BPE (Llama-2): the text gets the dummy-prefix "▁", spaces become "▁", bytes that are not
 * UTF-8 become U+FFFD (as sentencepiece's normalizer does), characters are merged pairwise -- by piece score
 * as sentencepiece does, or by merge rank for a tokenizer.json -- and characters the vocabulary lacks fall
 * back to <0xNN> byte tokens. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static const char space_symbol[] = "\xe2\x96\x81"; /* U+2581 "▁" */
static const char replacement_char[] = "\xef\xbf\xbd";

/* Score order: the merged piece must be an ordinary piece of the vocabulary; higher scores merge first. */
static int pair_by_score(const void *ctx, const char *text, const sq_bpe_symbol *l, const sq_bpe_symbol *r,
                         double *priority, int32_t *merged) {
    const sq_tokenizer *tok = ctx;
    int32_t id = sq_strmap_get(&tok->vocab, text + l->start, (size_t)l->len + r->len);
    if (id < 0) return 0;
    int32_t type = tok->types[id];
    if (type != SQ_TOKEN_NORMAL && type != SQ_TOKEN_USER_DEFINED && type != SQ_TOKEN_UNUSED) return 0;
    *priority = -(double)tok->scores[id];
    *merged = id;
    return 1;
}

static int pair_by_rank(const void *ctx, const char *text, const sq_bpe_symbol *l, const sq_bpe_symbol *r,
                        double *priority, int32_t *merged) {
    (void)text;
    const sq_tokenizer *tok = ctx;
    const sq_pair_value *v = sq_pairmap_get(&tok->merge_ranks, l->id, r->id);
    if (!v) return 0;
    *priority = v->rank;
    *merged = v->id;
    return 1;
}

/* "▁" prefix, spaces escaped, invalid bytes replaced. *out is malloc'ed. */
static sq_error *normalize(const sq_tokenizer *tok, const char *text, size_t len, char **out,
                           size_t *out_len) {
    if (len > (SIZE_MAX - 3) / 3) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: text too long");
    char *buf = malloc(3 * len + 3);
    if (!buf) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    size_t n = 0;
    if (tok->spec.add_space_prefix && len) memcpy(buf, space_symbol, 3), n = 3;
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
static sq_error *split_characters(const sq_tokenizer *tok, const char *s, size_t start, size_t n, int by_rank,
                                  sq_bpe *bpe) {
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

/* Merges s[start, end) and appends its tokens. */
static sq_error *encode_run(const sq_tokenizer *tok, const char *s, size_t start, size_t end, sq_bpe *bpe,
                            sq_id_buf *out) {
    int by_rank = tok->merge_ranks.count > 0;
    sq_bpe_reset(bpe);
    SQ_TRY(split_characters(tok, s, start, end, by_rank, bpe));
    if (!bpe->n) return NULL;
    SQ_TRY(sq_bpe_merge(bpe, s, by_rank ? pair_by_rank : pair_by_score, tok));
    for (int32_t i = 0; i >= 0; i = bpe->symbols[i].next)
        if (bpe->symbols[i].id >= 0) SQ_TRY(sq_id_buf_push(out, bpe->symbols[i].id));
    return NULL;
}

/* Where the next run starts: at a "▁" that follows another character (or the end). Without that property
 * of the vocabulary the whole text is one run. */
static size_t run_end(const sq_tokenizer *tok, const char *s, size_t start, size_t n) {
    if (!tok->splits_before_space) return n;
    for (size_t i = start + 1; i + 3 <= n; i++)
        if (!memcmp(s + i, space_symbol, 3) && (i < start + 3 || memcmp(s + i - 3, space_symbol, 3)))
            return i;
    return n;
}

sq_error *sq_spm_encode(const sq_tokenizer *tok, const char *text, size_t len, sq_id_buf *out) {
    char *s = NULL;
    size_t n = 0;
    SQ_TRY(normalize(tok, text, len, &s, &n));
    sq_bpe bpe = {0};
    sq_error *err = NULL;
    /* Runs merge independently; this keeps the merge heap small (a whole book is one text) */
    for (size_t start = 0, end; start < n && !err; start = end) {
        end = run_end(tok, s, start, n);
        err = encode_run(tok, s, start, end, &bpe, out);
    }
    sq_bpe_free(&bpe);
    free(s);
    return err;
}
