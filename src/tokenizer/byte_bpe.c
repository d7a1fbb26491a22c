/* Byte-level BPE (GPT-2, Llama-3, Qwen): optional NFC, regex pre-tokenization, then BPE by merge rank over
 * each piece's bytes. The vocabulary is keyed by the raw bytes a token stands for, so GPT-2's printable byte
 * mapping ("Ġ" for the space byte) is undone once at load instead of applied to every text. Bytes that are
 * not UTF-8 bypass normalisation and the regexes and are encoded as pieces of their own, so any byte string
 * round-trips. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

/* GPT-2's mapping: printable Latin-1 bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand for themselves; the 68
 * others (0x00-0x20, 0x7F-0xA0, 0xAD) take code points from U+0100 on, in byte order. */
uint32_t sq_byte_to_unicode(unsigned char b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 67;
    return b;
}

int sq_unicode_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(0x7F + k - 33) : 0xAD;
}

int sq_decode_byte_level(const char *s, size_t len, char *out, size_t *out_len) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        int c = sq_utf8_valid_len(u, len - i);
        if (c == 1) {
            if (sq_unicode_to_byte(u[0]) < 0) return -1;
            out[n++] = (char)u[0];
        } else if (c == 2) {
            int b = sq_unicode_to_byte(((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F));
            if (b < 0) return -1;
            out[n++] = (char)b;
        } else {
            return -1;
        }
        i += (size_t)c;
    }
    *out_len = n;
    return 0;
}

/* A stretch of text that is valid UTF-8 (valid = 1) or is not. */
static size_t run_length(const char *s, size_t n, int *valid) {
    int c0 = sq_utf8_valid_len((const unsigned char *)s, n);
    *valid = c0 > 0;
    size_t i = 0;
    while (i < n) {
        int c = sq_utf8_valid_len((const unsigned char *)s + i, n - i);
        if ((c > 0) != *valid) break;
        i += c > 0 ? (size_t)c : 1;
    }
    return i;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

/* NFC over the valid stretches (invalid bytes copied as they are). *out is malloc'ed. */
static SQ_NODISCARD sq_error *normalize_nfc(const char *text, size_t len, char **out, size_t *out_len) {
    size_t cap = 0, n = 0;
    char *buf = NULL;
    if (SQ_ARRAY_RESERVE(buf, cap, len + 16)) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < len;) {
        int valid;
        size_t r = run_length(text + i, len - i, &valid);
        const char *src = text + i;
        size_t src_len = r;
        utf8proc_uint8_t *nfc = NULL;
        if (valid && !is_ascii(src, r)) {
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)src, (utf8proc_ssize_t)r, &nfc,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m < 0) {
                free(buf);
                return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: NFC failed: %s", utf8proc_errmsg(m));
            }
            src = (const char *)nfc;
            src_len = (size_t)m;
        }
        if (SQ_ARRAY_RESERVE(buf, cap, n + src_len)) {
            free(nfc);
            free(buf);
            return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
        }
        memcpy(buf + n, src, src_len);
        n += src_len;
        free(nfc);
        i += r;
    }
    *out = buf;
    *out_len = n;
    return NULL;
}

static SQ_NODISCARD sq_error *encode_piece(const sq_tokenizer *tok, const char *s, size_t start, size_t len,
                                           sq_bpe *bpe, sq_id_buf *out) {
    if (len == 1 && tok->byte_ids[(unsigned char)s[start]] >= 0)
        return sq_id_buf_push(out, tok->byte_ids[(unsigned char)s[start]]);
    if (tok->ignore_merges) {
        int32_t id = sq_strmap_get(&tok->vocab, s + start, len);
        if (id >= 0) return sq_id_buf_push(out, id);
    }
    sq_bpe_reset(bpe);
    for (size_t i = 0; i < len; i++) {
        int32_t id = tok->byte_ids[(unsigned char)s[start + i]];
        if (id < 0) id = tok->spec.unk_id; /* a vocabulary without this byte: unknown, or dropped if none */
        SQ_TRY(sq_bpe_add(bpe, id, start + i, 1, id >= 0));
    }
    SQ_TRY(sq_bpe_merge(bpe, s, sq_tokenizer_pair_by_rank, tok));
    for (int32_t i = 0; i >= 0; i = bpe->symbols[i].next)
        if (bpe->symbols[i].id >= 0) SQ_TRY(sq_id_buf_push(out, bpe->symbols[i].id));
    return NULL;
}

sq_error *sq_byte_bpe_encode(const sq_tokenizer *tok, const char *text, size_t len, sq_id_buf *out) {
    char *owned = NULL;
    size_t n = len;
    const char *s = text;
    if (tok->normalize_nfc && !is_ascii(text, len)) {
        SQ_TRY(normalize_nfc(text, len, &owned, &n));
        s = owned;
    }
    if (tok->spec.add_space_prefix && n && s[0] != ' ') {
        char *p = malloc(n + 1);
        if (!p) {
            free(owned);
            return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
        }
        p[0] = ' ';
        memcpy(p + 1, s, n);
        free(owned);
        s = owned = p;
        n++;
    }
    sq_error *err = NULL;
    sq_span_buf pieces = {0};
    for (size_t i = 0; i < n && !err;) {
        int valid;
        size_t r = run_length(s + i, n - i, &valid);
        err = valid ? sq_pretokenize(tok->pretok, s, i, r, &pieces) : sq_span_buf_push(&pieces, i, r);
        i += r;
    }
    sq_bpe bpe = {0};
    for (size_t i = 0; i < pieces.n && !err; i++)
        err = encode_piece(tok, s, pieces.spans[i].start, pieces.spans[i].len, &bpe, out);
    sq_bpe_free(&bpe);
    free(pieces.spans);
    free(owned);
    return err;
}
