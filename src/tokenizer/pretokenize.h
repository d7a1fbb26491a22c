/* Pre-tokenizer of byte-level BPE: regular expressions (PCRE2, UTF with Unicode properties) that cut text
 * into the pieces BPE then works on, as Hugging Face's Split(behavior "Isolated") and ByteLevel(use_regex)
 * do. */
#ifndef SQ_TOKENIZER_PRETOKENIZE_H
#define SQ_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>

#include "squeeze.h"

typedef struct sq_pretokenizer sq_pretokenizer;

typedef struct sq_span {
    size_t start, len;
} sq_span;

typedef struct sq_span_buf {
    sq_span *spans;
    size_t n, cap;
} sq_span_buf;

/* The regex GPT-2's ByteLevel pre-tokenizer uses (ByteLevel with use_regex). */
extern const char sq_gpt2_regex[];

/* What a GGUF tokenizer.ggml.pre name stands for: its regexes, and whether the model skips BPE for pieces
 * found whole in the vocabulary (Llama-3) or normalises to NFC first (Qwen2). Returns 0, or -1 for unknown
 * names. */
typedef struct sq_named_pretokenizer {
    const char *const *regexes;
    int n_regexes;
    int ignore_merges;
    int normalize_nfc;
} sq_named_pretokenizer;
int sq_pretokenizer_by_name(const char *name, sq_named_pretokenizer *out);
/* The first name whose pre-tokenizer is exactly these regexes and flags (for writers that need a name), or
 * NULL. */
const char *sq_pretokenizer_name_of(const char *const *regexes, int n, int ignore_merges, int normalize_nfc);

/* Regexes applied in order: each splits every piece the previous one made into its matches and the gaps
 * between them. */
SQ_NODISCARD sq_error *sq_pretokenizer_create(const char *const *regexes, int n, sq_pretokenizer **out);
void sq_pretokenizer_free(sq_pretokenizer *p);

/* Splits buf[start, start+len) (valid UTF-8) into pieces, appended to out as offsets into buf. */
SQ_NODISCARD sq_error *sq_pretokenize(const sq_pretokenizer *p, const char *buf, size_t start, size_t len,
                                      sq_span_buf *out);

SQ_NODISCARD sq_error *sq_span_buf_push(sq_span_buf *b, size_t start, size_t len);

#endif
