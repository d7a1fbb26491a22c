/* The tokenizer object and the pieces its source files share (not for use outside src/tokenizer). */
#ifndef SQ_TOKENIZER_INTERNAL_H
#define SQ_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/bpe.h"
#include "tokenizer/hashmap.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

/* A token matched in the text before any splitting: control tokens (with parse_special) and user-defined
 * ones. */
typedef struct sq_added_token {
    const char *text;
    uint32_t len;
    int32_t id;
    int special; /* control token: only matched when parse_special is set */
    int flags;   /* SQ_TOKEN_LSTRIP | SQ_TOKEN_RSTRIP */
} sq_added_token;

struct sq_tokenizer {
    sq_vocab_spec spec; /* points at the owned copies below */
    char **tokens;
    uint32_t *token_lens;
    float *scores;
    int32_t *types;
    uint8_t *token_flags;
    char **merges;
    char *pre;
    char **pre_regex;
    char *chat_template;

    /* spm-bpe: piece as spelled -> id; byte-bpe: the token's raw bytes -> id. Ordinary vocabulary only
     * (no control or added tokens), as the BPE models look pieces up. */
    sq_strmap vocab;
    sq_pairmap merge_ranks;  /* (left id, right id) -> (rank, merged id); empty when spm merges by score */
    uint32_t *merge_split;   /* where the space dividing merge i's halves is (the halves may hold spaces) */
    int32_t byte_ids[256];   /* spm: the <0xNN> token; byte-bpe: the token of the byte's own character; -1 */
    int byte_fallback;       /* spm: unknown characters become <0xNN> tokens */
    int has_unused;          /* spm: some pieces are unused (merged through, then split again) */
    int splits_before_space; /* spm: no piece holds "▁" after another character, so merges never cross the
                                start of a "▁" run and the text can be merged run by run */
    int ignore_merges;       /* byte-bpe: a pre-token found whole in the vocabulary is one token */
    int normalize_nfc;
    sq_pretokenizer *pretok; /* byte-bpe only */

    sq_added_token *added; /* grouped by first byte, longest first within a group */
    int n_added;
    int32_t
        added_group[257]; /* added tokens starting with byte b: added[added_group[b] .. added_group[b+1]) */

    char **decoded; /* the bytes each token contributes to decoded text */
    uint32_t *decoded_lens;
    uint8_t *strips_space; /* spm: the token starts with the dummy-prefix space that decoding removes */
    sq_warnings warnings;  /* what loading worked around; spec.warnings points here */
};

/* A growing array of token ids. */
typedef struct sq_id_buf {
    int32_t *ids;
    size_t n, cap;
} sq_id_buf;

SQ_NODISCARD sq_error *sq_id_buf_push(sq_id_buf *b, int32_t id);

/* Encodes one stretch of ordinary text (no added tokens in it) and appends its ids; at_start: the stretch
 * begins the whole text. */
SQ_NODISCARD sq_error *sq_spm_encode(const sq_tokenizer *tok, const char *text, size_t len, int at_start,
                                     sq_id_buf *out);
SQ_NODISCARD sq_error *sq_byte_bpe_encode(const sq_tokenizer *tok, const char *text, size_t len,
                                          sq_id_buf *out);

/* GPT-2's byte <-> printable character mapping ("Ġ" is the space byte). */
uint32_t sq_byte_to_unicode(unsigned char b);
/* The byte a mapped character stands for, or -1 for characters outside the mapping. */
int sq_unicode_to_byte(uint32_t cp);
/* Undoes the byte mapping of s (len bytes) into out (room for len bytes). Returns 0, or -1 when s holds a
 * character outside the mapping or is not UTF-8. */
int sq_decode_byte_level(const char *s, size_t len, char *out, size_t *out_len);

/* Whether s is a byte token's spelling "<0xNN>" (hex digits in either case); sets *byte. */
int sq_parse_byte_piece(const char *s, int *byte);

/* Fills tok->decoded / strips_space from the vocabulary. */
SQ_NODISCARD sq_error *sq_detokenizer_prepare(sq_tokenizer *tok);

/* A vocabulary file's ids must be exactly 0..n-1 (one may repeat: added tokens restate vocabulary entries).
 * Checks that ids[0..n_ids) leave no gap below the largest, in memory bounded by n_ids rather than by that
 * largest id, which a damaged file can make huge; then *n_tokens = largest + 1. `what` names the ids' place
 * in error messages ("x.json: model.vocab"). */
SQ_NODISCARD sq_error *sq_vocab_check_ids(const char *what, const int32_t *ids, int n_ids, int *n_tokens);

/* Loaders: each reads its file and builds the tokenizer through sq_tokenizer_from_spec. */
SQ_NODISCARD sq_error *sq_load_sentencepiece_model(const char *path, const unsigned char *data, size_t size,
                                                   sq_tokenizer **out);
SQ_NODISCARD sq_error *sq_load_llama2c_vocab(const char *path, const unsigned char *data, size_t size,
                                             sq_tokenizer **out);
SQ_NODISCARD sq_error *sq_load_tokenizer_json(const char *path, const char *json, size_t size,
                                              sq_tokenizer **out);
/* GPT-2's encoder.json (json_root: its parsed cJSON object) with vocab.bpe beside it. */
SQ_NODISCARD sq_error *sq_load_gpt2_vocab(const char *path, const void *json_root, sq_tokenizer **out);

/* BPE pair priority by merge rank (lower merges first): the rule of tokenizer.json merges and of GGUF, shared
 * by both algorithms; ctx is the sq_tokenizer. */
int sq_tokenizer_pair_by_rank(const void *ctx, const char *text, const sq_bpe_symbol *l,
                              const sq_bpe_symbol *r, double *priority, int32_t *merged);

#endif
