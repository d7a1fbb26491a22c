/* Tokenizer internals shared with the format loaders and writers.
 *
 * Every source of a vocabulary (tokenizer.model protobuf, llama2.c tokenizer.bin, tokenizer.json, GGUF
 * tokenizer.ggml.* metadata) is turned into one sq_vocab_spec and built by sq_tokenizer_from_spec; writers
 * read the spec back with sq_tokenizer_get_spec. */
#ifndef SQ_TOKENIZER_TOKENIZER_H
#define SQ_TOKENIZER_TOKENIZER_H

#include <stdint.h>

#include "core/warnings.h"
#include "squeeze.h"

typedef enum sq_tokenizer_type { SQ_TOKENIZER_SPM_BPE, SQ_TOKENIZER_BYTE_BPE } sq_tokenizer_type;

/* Token types as SentencePiece and GGUF number them. */
typedef enum sq_token_type {
    SQ_TOKEN_NORMAL = 1,
    SQ_TOKEN_UNKNOWN = 2,
    SQ_TOKEN_CONTROL = 3,
    SQ_TOKEN_USER_DEFINED = 4,
    SQ_TOKEN_UNUSED = 5,
    SQ_TOKEN_BYTE = 6
} sq_token_type;

/* Hugging Face added-token options: the token swallows the whitespace on its left / right when matched. */
enum { SQ_TOKEN_LSTRIP = 1, SQ_TOKEN_RSTRIP = 2 };

typedef struct sq_vocab_spec {
    sq_tokenizer_type type;
    int n_tokens;
    const char *const *tokens; /* as the vocabulary spells them: "▁the", "<0x0A>", "Ġthe", "<|endoftext|>" */
    const float *scores;       /* spm-bpe merge priorities (higher merges first); NULL for byte-bpe */
    const int32_t *types;      /* sq_token_type per token; NULL: all normal */
    int n_merges;
    const char *const
        *merges;     /* merge rules "a b", highest priority first (byte-bpe; spm-bpe from tokenizer.json) */
    const char *pre; /* byte-bpe pre-tokenizer by GGUF name: "gpt2", "llama-bpe", "qwen2", ... */
    int n_pre_regex;
    const char *const *pre_regex; /* explicit split regexes (from tokenizer.json); override `pre` */
    /* apply Unicode NFC before pre-tokenizing (Qwen2; implied by pre "qwen2" without pre_regex) */
    int normalize_nfc;
    /* spm-bpe: prepend "▁" to the text (Llama-2); byte-bpe: prepend " " */
    int add_space_prefix;
    /* byte-bpe: a piece found whole in the vocabulary is one token (Llama-3; implied by pre "llama-bpe"
     * without pre_regex) */
    int ignore_merges;
    /* spm-bpe as Hugging Face's Metaspace pre-tokenizer does it (all 0 for sentencepiece and GGUF): no prefix
     * for a stretch of text that starts with a space; prepend_scheme "first": only the stretch at the start
     * of the text gets it; split: every "▁" starts a word that merges never cross */
    int prefix_unless_space, prefix_first_only, split_before_space;
    const uint8_t *token_flags; /* SQ_TOKEN_LSTRIP | SQ_TOKEN_RSTRIP per token (tokenizer.json); NULL: none */
    int bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    int add_bos, add_eos;
    const char *chat_template; /* the Jinja chat template that came with the vocabulary; NULL: none */
    const sq_warnings *warnings; /* what the loader worked around (copied into the tokenizer); NULL: none */
} sq_vocab_spec;

/* Builds a tokenizer from spec (copied: the caller's arrays may go away afterwards). spm-bpe merges by merge
 * rank when merges are given (as Hugging Face's BPE does) and by piece score otherwise (as sentencepiece
 * does). When types is NULL, bos/eos become control tokens, unk the unknown token and spm "<0xNN>" pieces
 * byte tokens. Control and unknown tokens are matched in the text with parse_special; user-defined ones
 * always. */
SQ_NODISCARD sq_error *sq_tokenizer_from_spec(const sq_vocab_spec *spec, sq_tokenizer **out);
/* Fills spec with pointers owned by tok (valid while tok lives). */
void sq_tokenizer_get_spec(const sq_tokenizer *tok, sq_vocab_spec *spec);
/* sq_tokenizer_save_hf is public: see squeeze.h. */

#endif
