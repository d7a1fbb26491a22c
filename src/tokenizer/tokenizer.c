/* The tokenizer's public face: loading by file kind, facts about the vocabulary, and encoding, which cuts the
 * text at added tokens (control tokens with parse_special, user-defined ones always) and hands the stretches
 * between them to the model's encoder. */
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

const char *sq_tokenizer_kind(const sq_tokenizer *tok) {
    return tok->spec.type == SQ_TOKENIZER_SPM_BPE ? "spm-bpe" : "byte-bpe";
}
int sq_tokenizer_vocab_size(const sq_tokenizer *tok) { return tok->spec.n_tokens; }
int sq_tokenizer_bos(const sq_tokenizer *tok) { return tok->spec.bos_id; }
int sq_tokenizer_eos(const sq_tokenizer *tok) { return tok->spec.eos_id; }
int sq_tokenizer_adds_bos(const sq_tokenizer *tok) { return tok->spec.add_bos && tok->spec.bos_id >= 0; }

sq_error *sq_tokenizer_bos_for(const sq_tokenizer *tok, sq_bos_policy policy, int *bos_id) {
    *bos_id = -1;
    switch (policy) {
    case SQ_BOS_AUTO:
        if (sq_tokenizer_adds_bos(tok)) *bos_id = tok->spec.bos_id;
        return NULL;
    case SQ_BOS_ADD:
        if (tok->spec.bos_id < 0)
            return sq_errorf(SQ_ERR_INVALID_ARG, "BOS asked for, but the vocabulary has no BOS token");
        *bos_id = tok->spec.bos_id;
        return NULL;
    case SQ_BOS_NONE:
        return NULL;
    }
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown BOS policy %d", (int)policy);
}
int sq_tokenizer_n_warnings(const sq_tokenizer *tok) { return tok->warnings.n; }
const char *sq_tokenizer_warning(const sq_tokenizer *tok, int i) {
    return i >= 0 && i < tok->warnings.n ? tok->warnings.messages[i] : NULL;
}
const char *sq_tokenizer_piece(const sq_tokenizer *tok, int id) {
    return id >= 0 && id < tok->spec.n_tokens ? tok->tokens[id] : NULL;
}
const char *sq_tokenizer_chat_template(const sq_tokenizer *tok) { return tok->chat_template; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

sq_error *sq_tokenizer_load(const char *path, sq_tokenizer **out) {
    *out = NULL;
    if (!path) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: no path given");
    sq_mapped_file *f;
    SQ_TRY(sq_mapped_file_open(path, &f));
    size_t skip = 0;
    while (skip < f->size && strchr(" \t\r\n", f->data[skip])) skip++;
    int json = ends_with(path, ".json") || (skip < f->size && f->data[skip] == '{');
    /* A SentencePiece model opens with its first piece (field 1, length-delimited: byte 0x0A); a llama2.c
     * vocabulary with an int32 max_token_length, whose high bytes are zero for any sane length. */
    int spm = !json &&
              (ends_with(path, ".model") || (!ends_with(path, ".bin") && f->size >= 4 && f->data[0] == 0x0A &&
                                             (f->data[1] | f->data[2] | f->data[3]) != 0));
    sq_error *err;
    if (f->size >= 4 && !memcmp(f->data, "GGUF", 4)) {
        sq_mapped_file_close(f);
        return sq_gguf_load_tokenizer(path, out);
    }
    if (json) {
        sq_mapped_file_close(f);
        char *text;
        size_t size;
        SQ_TRY(sq_read_file(path, (size_t)1 << 30, &text, &size));
        err = sq_load_tokenizer_json(path, text, size, out);
        free(text);
        return err;
    }
    err = spm ? sq_load_sentencepiece_model(path, f->data, f->size, out)
              : sq_load_llama2c_vocab(path, f->data, f->size, out);
    sq_mapped_file_close(f);
    return err;
}

sq_error *sq_id_buf_push(sq_id_buf *b, int32_t id) {
    if (b->n == INT32_MAX) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenize: more than 2^31 tokens");
    if (SQ_ARRAY_RESERVE(b->ids, b->cap, b->n + 1)) return sq_errorf(SQ_ERR_NOMEM, "tokenize: out of memory");
    b->ids[b->n++] = id;
    return NULL;
}

static SQ_NODISCARD sq_error *encode_text(const sq_tokenizer *tok, const char *text, size_t len, int at_start,
                                          sq_id_buf *out) {
    if (!len) return NULL;
    return tok->spec.type == SQ_TOKENIZER_SPM_BPE ? sq_spm_encode(tok, text, len, at_start, out)
                                                  : sq_byte_bpe_encode(tok, text, len, out);
}

/* The longest added token at text[pos] (leftmost-longest, as Hugging Face matches them), or NULL. */
static const sq_added_token *added_at(const sq_tokenizer *tok, const char *text, size_t len, size_t pos) {
    unsigned char b = (unsigned char)text[pos];
    for (int k = tok->added_group[b]; k < tok->added_group[b + 1]; k++) {
        const sq_added_token *a = &tok->added[k];
        if (a->len <= len - pos && !memcmp(text + pos, a->text, a->len)) return a;
    }
    return NULL;
}

/* The code point of the well-formed character at s[i] (n bytes in all) and its length, or length 0. */
static int char_at(const char *s, size_t n, size_t i, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s + i;
    int len = sq_utf8_valid_len(u, n - i);
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    if (!len) return 0;
    *cp = u[0] & lead_mask[len];
    for (int k = 1; k < len; k++) *cp = (*cp << 6) | (u[k] & 0x3F);
    return len;
}

/* Unicode White_Space, as Rust's char::is_whitespace (what Hugging Face's lstrip/rstrip strip). */
static int is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Length of the whitespace character starting at s[i] / ending at s[end] (not before s[start]), or 0. */
static int whitespace_at(const char *s, size_t n, size_t i) {
    uint32_t cp;
    int len = char_at(s, n, i, &cp);
    return len && is_whitespace(cp) ? len : 0;
}

static int whitespace_before(const char *s, size_t start, size_t end) {
    for (int len = 1; len <= 4 && (size_t)len <= end - start; len++) {
        uint32_t cp;
        if (char_at(s, end, end - (size_t)len, &cp) == len) return is_whitespace(cp) ? len : 0;
    }
    return 0;
}

sq_error *sq_tokenize(const sq_tokenizer *tok, const char *text, size_t len, int add_bos, int parse_special,
                      int32_t **ids, int *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!tok || (!text && len)) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenize: no tokenizer or no text");
    if (len > (size_t)INT32_MAX)
        return sq_errorf(SQ_ERR_INVALID_ARG, "tokenize: %zu bytes is more than 2 GiB", len);
    sq_id_buf out = {0};
    sq_error *err = NULL;
    if (add_bos && tok->spec.bos_id >= 0) err = sq_id_buf_push(&out, tok->spec.bos_id);
    size_t start = 0, pos = 0;
    while (!err && pos < len) {
        const sq_added_token *a = tok->n_added ? added_at(tok, text, len, pos) : NULL;
        if (!a) {
            pos++;
        } else if (a->special && !parse_special) {
            pos += a->len; /* stays part of the ordinary text */
        } else {           /* lstrip / rstrip tokens take the whitespace beside them along */
            size_t text_end = pos, next = pos + a->len;
            for (int w; (a->flags & SQ_TOKEN_LSTRIP) && (w = whitespace_before(text, start, text_end));)
                text_end -= w;
            for (int w; (a->flags & SQ_TOKEN_RSTRIP) && (w = whitespace_at(text, len, next));) next += w;
            err = encode_text(tok, text + start, text_end - start, start == 0, &out);
            if (!err) err = sq_id_buf_push(&out, a->id);
            start = pos = next;
        }
    }
    if (!err) err = encode_text(tok, text + start, len - start, start == 0, &out);
    if (err) {
        free(out.ids);
        return err;
    }
    if (!out.ids) out.ids = malloc(sizeof *out.ids); /* an empty result is still a buffer the caller frees */
    if (!out.ids) return sq_errorf(SQ_ERR_NOMEM, "tokenize: out of memory");
    *ids = out.ids;
    *n_ids = (int)out.n;
    return NULL;
}

int sq_tokenizer_pair_by_rank(const void *ctx, const char *text, const sq_bpe_symbol *l,
                              const sq_bpe_symbol *r, double *priority, int32_t *merged) {
    (void)text;
    const sq_tokenizer *tok = ctx;
    const sq_pair_value *v = sq_pairmap_get(&tok->merge_ranks, l->id, r->id);
    if (!v) return 0;
    *priority = v->rank;
    *merged = v->id;
    return 1;
}
