/* Fuzz targets for tokenizers: every vocabulary file squeeze reads (tokenizer.json and the
 * tokenizer_config.json beside it, SentencePiece tokenizer.model, llama2.c tokenizer.bin, GPT-2's
 * encoder.json + vocab.bpe), and arbitrary text through two real tokenizers. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

static const uint8_t sample[] = "Hello world! 123 \xe4\xbd\xa0\xe5\xa5\xbd \xff<|endoftext|>";

static void load_tokenizer(const char *name) {
    sq_tokenizer *tok = NULL;
    if (fuzz_failed(sq_tokenizer_load(fuzz_path(name), &tok))) return;
    int vocab = sq_tokenizer_vocab_size(tok);
    fuzz_require(vocab > 0, "a loaded vocabulary has tokens");
    fuzz_require(sq_tokenizer_bos(tok) >= -1 && sq_tokenizer_bos(tok) < vocab,
                 "BOS is -1 or in the vocabulary");
    fuzz_require(sq_tokenizer_eos(tok) >= -1 && sq_tokenizer_eos(tok) < vocab,
                 "EOS is -1 or in the vocabulary");
    for (int i = 0; i < sq_tokenizer_n_warnings(tok); i++)
        fuzz_require(sq_tokenizer_warning(tok, i) && sq_tokenizer_warning(tok, i)[0],
                     "a load warning says something");
    fuzz_exercise_tokenizer(tok, sample, sizeof sample - 1);
    sq_tokenizer_free(tok);
}

void fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    fuzz_write("tokenizer.json", data, size);
    load_tokenizer("tokenizer.json");
}

void fuzz_tokenizer_config(const uint8_t *data, size_t size) {
    fuzz_copy_fixture("model/tokenizer.json", "tokenizer.json");
    fuzz_write("tokenizer_config.json", data, size);
    load_tokenizer("tokenizer.json");
}

void fuzz_tokenizer_model(const uint8_t *data, size_t size) {
    fuzz_write("tokenizer.model", data, size);
    load_tokenizer("tokenizer.model");
}

void fuzz_tokenizer_bin(const uint8_t *data, size_t size) {
    fuzz_write("tokenizer.bin", data, size);
    load_tokenizer("tokenizer.bin");
}

/* encoder.json, a NUL byte, then vocab.bpe */
void fuzz_gpt2_vocab(const uint8_t *data, size_t size) {
    const uint8_t *parts[2];
    size_t lens[2];
    if (fuzz_split(data, size, 2, parts, lens) == 2)
        fuzz_write("vocab.bpe", parts[1], lens[1]);
    else
        fuzz_remove("vocab.bpe");
    fuzz_write("encoder.json", parts[0], lens[0]);
    load_tokenizer("encoder.json");
}

void fuzz_tokenize_text(const uint8_t *data, size_t size) {
    static sq_tokenizer *toks[2];
    if (!toks[0]) {
        const char *shared = getenv("SQ_SHARED") ? getenv("SQ_SHARED") : "../shared";
        const char *files[2] = {"models/tokenizer.model", "tokenizers/qwen3/tokenizer.json"};
        for (int i = 0; i < 2; i++) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", shared, files[i]);
            sq_error *err = sq_tokenizer_load(path, &toks[i]);
            if (err) {
                fprintf(stderr, "fuzz: %s\n", sq_error_message(err));
                abort();
            }
        }
    }
    for (int i = 0; i < 2; i++) fuzz_exercise_tokenizer(toks[i], data, size);
}
