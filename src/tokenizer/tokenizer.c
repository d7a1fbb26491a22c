/* The tokenizer's public face: loading by file kind, facts about the vocabulary, and encoding, which cuts the
 * text at added tokens (control tokens with parse_special, user-defined ones always) and hands the stretches
 * between them to the model's encoder. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer_internal.h"

const char *sq_tokenizer_kind(const sq_tokenizer *tok) {
    return tok->spec.type == SQ_TOKENIZER_SPM_BPE ? "spm-bpe" : "byte-bpe";
}
int sq_tokenizer_vocab_size(const sq_tokenizer *tok) { return tok->spec.n_tokens; }
int sq_tokenizer_bos(const sq_tokenizer *tok) { return tok->spec.bos_id; }
int sq_tokenizer_eos(const sq_tokenizer *tok) { return tok->spec.eos_id; }
int sq_tokenizer_adds_bos(const sq_tokenizer *tok) { return tok->spec.add_bos && tok->spec.bos_id >= 0; }

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
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        if (cap > INT32_MAX) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenize: more than 2^31 tokens");
        int32_t *ids = realloc(b->ids, cap * sizeof *ids);
        if (!ids) return sq_errorf(SQ_ERR_NOMEM, "tokenize: out of memory");
        b->ids = ids;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
    return NULL;
}

static sq_error *encode_text(const sq_tokenizer *tok, const char *text, size_t len, sq_id_buf *out) {
    if (!len) return NULL;
    return tok->spec.type == SQ_TOKENIZER_SPM_BPE ? sq_spm_encode(tok, text, len, out)
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
        } else {
            err = encode_text(tok, text + start, pos - start, &out);
            if (!err) err = sq_id_buf_push(&out, a->id);
            start = pos += a->len;
        }
    }
    if (!err) err = encode_text(tok, text + start, len - start, &out);
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
