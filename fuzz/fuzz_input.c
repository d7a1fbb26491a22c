/* One libFuzzer harness for every parser squeeze exposes to untrusted files. FUZZ_KIND (set per target by
 * fuzz/CMakeLists.txt) says how the fuzzer's bytes reach the library: as a whole model or tokenizer file of
 * one format, as one file of a Hugging Face directory whose other files are valid, or as text to tokenize.
 * Any outcome but a clean success or a clean error (crash, leak, sanitizer report, hang) is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "squeeze.h"

enum {
    KIND_GGUF,
    KIND_LLAMA2C,
    KIND_SAFETENSORS,
    KIND_HF_CONFIG,
    KIND_TOKENIZER_JSON,
    KIND_TOKENIZER_MODEL,
    KIND_TOKENIZER_BIN,
    KIND_TOKENIZE_TEXT,
    KIND_GENERATION_CONFIG
};

static char workdir[256];

static void write_file(const char *name, const uint8_t *data, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) abort();
}

/* The valid companions of the fuzzed file live in $SQ_FUZZ_FIXTURES (made by fuzz/make_seeds.py). */
static void copy_fixture(const char *name) {
    char src[512];
    snprintf(src, sizeof src, "%s/%s",
             getenv("SQ_FUZZ_FIXTURES") ? getenv("SQ_FUZZ_FIXTURES") : "fuzz-fixtures", name);
    FILE *fp = fopen(src, "rb");
    if (!fp) {
        fprintf(stderr, "fuzz: missing fixture %s (set SQ_FUZZ_FIXTURES)\n", src);
        abort();
    }
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    write_file(name, buf, n);
}

static void load_model(const char *path) {
    sq_model *m = NULL;
    sq_error *err = sq_model_load(path, NULL, &m);
    if (err) {
        if (!sq_error_message(err)[0]) abort(); /* an error must say what is wrong */
        sq_error_free(err);
        return;
    }
    /* what loading reports must hold its promises: warnings that say something, stop ids in the vocabulary */
    sq_model_info info;
    sq_model_get_info(m, &info);
    for (int i = 0; i < sq_model_n_warnings(m); i++)
        if (!sq_model_warning(m, i) || !sq_model_warning(m, i)[0]) abort();
    int n_eos;
    const int32_t *eos = sq_model_eos_ids(m, &n_eos);
    for (int i = 0; i < n_eos; i++)
        if (eos[i] < 0 || eos[i] >= info.vocab_size || !sq_model_is_eos(m, eos[i])) abort();
    /* a model that loads must also run */
    sq_context *ctx = NULL;
    err = sq_context_create(m, &(sq_context_options){.n_ctx = 4, .n_threads = 1}, &ctx);
    if (err) {
        sq_error_free(err); /* a model whose context is shorter than 4 tokens: refused, which is fine */
    } else {
        float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
        int32_t tok = 0;
        sq_error_free(sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = &tok, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = logits},
            1));
        free(logits);
        sq_context_free(ctx);
    }
    sq_model_free(m);
}

static void exercise_tokenizer(const sq_tokenizer *tok, const uint8_t *text, size_t len) {
    int32_t *ids = NULL;
    int n = 0;
    sq_error *err = sq_tokenize(tok, (const char *)text, len, 1, 1, &ids, &n);
    if (err) {
        sq_error_free(err);
        return;
    }
    char *out = NULL;
    size_t out_len = 0;
    sq_error_free(sq_detokenize(tok, ids, n, &out, &out_len));
    free(out);
    free(ids);
}

static void load_tokenizer(const char *path) {
    sq_tokenizer *tok = NULL;
    sq_error *err = sq_tokenizer_load(path, &tok);
    if (err) {
        sq_error_free(err);
        return;
    }
    exercise_tokenizer(tok, (const uint8_t *)"Hello world! 123 \xe4\xbd\xa0\xe5\xa5\xbd \xff", 24);
    sq_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!workdir[0]) {
        snprintf(workdir, sizeof workdir, "/tmp/sq-fuzz-%d", (int)getpid());
        mkdir(workdir, 0700);
    }
    char path[512];
    switch (FUZZ_KIND) {
    case KIND_GGUF:
    case KIND_LLAMA2C: {
        const char *name = FUZZ_KIND == KIND_GGUF ? "model.gguf" : "model.bin";
        write_file(name, data, size);
        snprintf(path, sizeof path, "%s/%s", workdir, name);
        load_model(path);
        break;
    }
    case KIND_SAFETENSORS:
    case KIND_HF_CONFIG:
        write_file(FUZZ_KIND == KIND_SAFETENSORS ? "model.safetensors" : "config.json", data, size);
        copy_fixture(FUZZ_KIND == KIND_SAFETENSORS ? "config.json" : "model.safetensors");
        copy_fixture("tokenizer.json");
        load_model(workdir);
        break;
    case KIND_GENERATION_CONFIG:
        write_file("generation_config.json", data, size);
        copy_fixture("config.json");
        copy_fixture("model.safetensors");
        copy_fixture("tokenizer.json");
        load_model(workdir);
        break;
    case KIND_TOKENIZER_JSON:
    case KIND_TOKENIZER_MODEL:
    case KIND_TOKENIZER_BIN: {
        const char *name = FUZZ_KIND == KIND_TOKENIZER_JSON    ? "tokenizer.json"
                           : FUZZ_KIND == KIND_TOKENIZER_MODEL ? "tokenizer.model"
                                                               : "tokenizer.bin";
        write_file(name, data, size);
        snprintf(path, sizeof path, "%s/%s", workdir, name);
        load_tokenizer(path);
        break;
    }
    case KIND_TOKENIZE_TEXT: {
        static sq_tokenizer *toks[2];
        if (!toks[0]) {
            const char *shared = getenv("SQ_SHARED") ? getenv("SQ_SHARED") : "../shared";
            snprintf(path, sizeof path, "%s/models/tokenizer.model", shared);
            if (sq_tokenizer_load(path, &toks[0])) abort();
            snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer.json", shared);
            if (sq_tokenizer_load(path, &toks[1])) abort();
        }
        for (int i = 0; i < 2; i++) exercise_tokenizer(toks[i], data, size);
        break;
    }
    }
    return 0;
}
