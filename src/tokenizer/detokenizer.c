/* Decoding: each token's bytes are worked out once at load (spm "▁" -> space and <0xNN> -> the byte, GPT-2's
 * byte mapping undone, control tokens empty); decoding concatenates them, dropping the space the spm dummy
 * prefix added in front of the first piece. So the text a token adds depends only on whether a text token
 * came before it: that one bit is all the streaming decoder needs to continue after a context (the prompt),
 * and decode(context + pushed) = decode(context) + what the pushes return, byte for byte. The streaming
 * decoder holds back a UTF-8 character whose bytes are still arriving. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static const char space_symbol[] = "\xe2\x96\x81";

/* spm: the piece with "▁" turned into spaces; *out has room for len bytes. */
static size_t unescape_spaces(const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && !memcmp(s + i, space_symbol, 3))
            out[n++] = ' ', i += 3;
        else
            out[n++] = s[i++];
    }
    return n;
}

static SQ_NODISCARD sq_error *decode_token(sq_tokenizer *t, int i) {
    const char *s = t->tokens[i];
    size_t len = t->token_lens[i], n = 0;
    int type = t->types[i];
    char *out = malloc(len + 1);
    if (!out) return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    int byte;
    if (type == SQ_TOKEN_CONTROL) {
        n = 0;
    } else if (type == SQ_TOKEN_BYTE && sq_parse_byte_piece(s, &byte)) {
        out[n++] = (char)byte;
    } else if (t->spec.type == SQ_TOKENIZER_SPM_BPE) {
        n = unescape_spaces(s, len, out);
        t->strips_space[i] = t->spec.add_space_prefix && len >= 3 && !memcmp(s, space_symbol, 3);
    } else if (type == SQ_TOKEN_USER_DEFINED || type == SQ_TOKEN_UNKNOWN ||
               sq_decode_byte_level(s, len, out, &n)) {
        /* added tokens are spelled as plain text, and so is anything outside the byte mapping */
        memcpy(out, s, len);
        n = len;
    }
    out[n] = 0;
    t->decoded[i] = out;
    t->decoded_lens[i] = (uint32_t)n;
    return NULL;
}

sq_error *sq_detokenizer_prepare(sq_tokenizer *t) {
    size_t n = (size_t)t->spec.n_tokens;
    t->decoded = calloc(n, sizeof *t->decoded);
    t->decoded_lens = calloc(n, sizeof *t->decoded_lens);
    t->strips_space = calloc(n, 1);
    if (!t->decoded || !t->decoded_lens || !t->strips_space)
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < t->spec.n_tokens; i++) SQ_TRY(decode_token(t, i));
    return NULL;
}

/* The bytes token id adds; *started tells whether a text token came before (control tokens do not count). */
static const char *token_bytes(const sq_tokenizer *t, int32_t id, int *started, size_t *len) {
    const char *s = t->decoded[id];
    *len = t->decoded_lens[id];
    if (!*started && t->strips_space[id] && *len) s++, (*len)--;
    if (t->types[id] != SQ_TOKEN_CONTROL) *started = 1;
    return s;
}

static SQ_NODISCARD sq_error *check_id(const sq_tokenizer *t, int32_t id, int position) {
    if (id < 0 || id >= t->spec.n_tokens)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "detokenize: token %d at position %d is outside the vocabulary of %d", (int)id,
                         position, t->spec.n_tokens);
    return NULL;
}

sq_error *sq_detokenize(const sq_tokenizer *tok, const int32_t *ids, int n_ids, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (int i = 0; i < n_ids; i++) {
        SQ_TRY(check_id(tok, ids[i], i));
        total += tok->decoded_lens[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return sq_errorf(SQ_ERR_NOMEM, "detokenize: out of memory for %zu bytes", total);
    size_t n = 0;
    int started = 0;
    for (int i = 0; i < n_ids; i++) {
        size_t l;
        const char *s = token_bytes(tok, ids[i], &started, &l);
        memcpy(out + n, s, l);
        n += l;
    }
    out[n] = 0;
    *text = out;
    *len = n;
    return NULL;
}

struct sq_detokenizer {
    const sq_tokenizer *tok;
    int started;  /* a text token came before (in the context or the pushes) */
    char held[4]; /* the start of a character whose remaining bytes have not arrived */
    size_t n_held;
    char *out; /* what the last call returned */
    size_t cap;
};

sq_detokenizer *sq_detokenizer_create(const sq_tokenizer *tok) {
    if (!tok) return NULL;
    sq_detokenizer *d = calloc(1, sizeof *d);
    if (d) d->tok = tok;
    return d;
}

sq_error *sq_detokenizer_reset(sq_detokenizer *d, const int32_t *context, int n_context) {
    if (!d) return sq_errorf(SQ_ERR_INVALID_ARG, "detokenizer: none given");
    if (n_context < 0 || (n_context > 0 && !context))
        return sq_errorf(SQ_ERR_INVALID_ARG, "detokenizer: a context of %d tokens without ids", n_context);
    for (int i = 0; i < n_context; i++) SQ_TRY(check_id(d->tok, context[i], i));
    d->started = 0;
    d->n_held = 0; /* bytes of the context, which the caller has (a character it splits continues raw) */
    for (int i = 0; i < n_context; i++) {
        size_t l;
        token_bytes(d->tok, context[i], &d->started, &l);
    }
    return NULL;
}

void sq_detokenizer_free(sq_detokenizer *d) {
    if (!d) return;
    free(d->out);
    free(d);
}

/* How many bytes at the end of s[0, n) begin a UTF-8 character that is still missing bytes. */
static size_t incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: its lead is further back */
        return (size_t)sq_utf8_claimed_len(c) > back ? back : 0;
    }
    return 0;
}

/* Returns held bytes + s[0, l) minus a new incomplete tail, which is held back in turn. */
static const char *append(sq_detokenizer *d, const char *s, size_t l, int final, size_t *len) {
    size_t total = d->n_held + l;
    if (SQ_ARRAY_RESERVE(d->out, d->cap, total + 1)) return NULL;
    memcpy(d->out, d->held, d->n_held);
    memcpy(d->out + d->n_held, s, l);
    size_t keep = final ? 0 : incomplete_tail(d->out, total);
    memcpy(d->held, d->out + total - keep, keep);
    d->n_held = keep;
    d->out[total - keep] = 0;
    *len = total - keep;
    return d->out;
}

const char *sq_detokenizer_push(sq_detokenizer *d, int32_t id, size_t *len) {
    *len = 0;
    if (!d || id < 0 || id >= d->tok->spec.n_tokens) return "";
    size_t l;
    const char *s = token_bytes(d->tok, id, &d->started, &l);
    const char *out = append(d, s, l, 0, len);
    return out ? out : "";
}

const char *sq_detokenizer_flush(sq_detokenizer *d, size_t *len) {
    *len = 0;
    if (!d) return "";
    const char *out = append(d, "", 0, 1, len);
    return out ? out : "";
}
