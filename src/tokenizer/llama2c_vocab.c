/* llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length and the bytes,
 * up to the end of the file. llama2.c's exporter spells "▁" as a space and BOS/EOS as "\n<s>\n" / "\n</s>\n";
 * the ids are Llama-2's (unk 0, bos 1, eos 2) and byte tokens are spelled <0xNN>. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"

static uint32_t read_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The piece as sentencepiece spells it: spaces back to "▁". */
static char *respell(const unsigned char *s, size_t n) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    char *out = malloc(n + 2 * spaces + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(o, "\xe2\x96\x81", 3), o += 3;
        else
            *o++ = (char)s[i];
    }
    *o = 0;
    return out;
}

sq_error *sq_load_llama2c_vocab(const char *path, const unsigned char *data, size_t size,
                                sq_tokenizer **out) {
    if (size < 4)
        return sq_errorf(SQ_ERR_FORMAT, "%s: too short for a llama2.c tokenizer (%zu bytes)", path, size);
    uint32_t max_len = read_u32(data);
    if (max_len == 0 || max_len > 4096)
        return sq_errorf(SQ_ERR_FORMAT, "%s: max_token_length %u is not a llama2.c tokenizer's (1..4096)",
                         path, max_len);
    int n = 0;
    size_t cap_tokens = 0, cap_scores = 0;
    char **tokens = NULL;
    float *scores = NULL;
    sq_error *err = NULL;
    for (size_t pos = 4; pos < size && !err; n++) {
        if (size - pos < 8) {
            err = sq_errorf(SQ_ERR_FORMAT, "%s: token %d at offset %zu is truncated", path, n, pos);
            break;
        }
        float score;
        uint32_t bits = read_u32(data + pos);
        memcpy(&score, &bits, sizeof score);
        uint32_t len = read_u32(data + pos + 4);
        pos += 8;
        if (!isfinite(score) || len > max_len || len > size - pos) {
            err = sq_errorf(SQ_ERR_FORMAT,
                            "%s: token %d at offset %zu: length %u (max_token_length %u, %zu bytes "
                            "left) or score %g is invalid",
                            path, n, pos - 8, len, max_len, size - pos, (double)score);
            break;
        }
        if (n == 1 << 24 || SQ_ARRAY_RESERVE(tokens, cap_tokens, (size_t)n + 1) ||
            SQ_ARRAY_RESERVE(scores, cap_scores, (size_t)n + 1)) {
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory or absurd token count", path);
            break;
        }
        scores[n] = score;
        tokens[n] = n == 1 ? strdup("<s>") : n == 2 ? strdup("</s>") : respell(data + pos, len);
        if (!tokens[n])
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        else if (memchr(data + pos, 0, len))
            err = sq_errorf(SQ_ERR_FORMAT, "%s: token %d contains a NUL byte", path, n);
        pos += len;
    }
    if (!err && n < 3)
        err = sq_errorf(SQ_ERR_FORMAT, "%s: %d tokens; a Llama vocabulary has at least 3", path, n);
    if (!err) {
        sq_vocab_spec spec = {
            .type = SQ_TOKENIZER_SPM_BPE,
            .n_tokens = n,
            .tokens = (const char *const *)tokens,
            .scores = scores,
            .add_space_prefix = 1,
            .unk_id = 0,
            .bos_id = 1,
            .eos_id = 2,
            .pad_id = -1,
            .add_bos = 1,
        };
        err = sq_tokenizer_from_spec(&spec, out);
        if (err) err = sq_error_wrap(err, "%s", path);
    }
    for (int i = 0; i < n; i++) free(tokens[i]);
    free(tokens);
    free(scores);
    return err;
}
