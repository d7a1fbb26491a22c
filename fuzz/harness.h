/* The libFuzzer harness for every input squeeze reads from untrusted bytes. Each target is one function
 * fuzz_<name>(data, size) that hands the fuzzer's bytes to the library the way a user's file reaches it (a
 * model or tokenizer file, one file of a Hugging Face directory whose other files are valid, a task file, a
 * report, a list of token ids, ...); fuzz/CMakeLists.txt lists the targets and builds one executable per
 * target around main.c. Any outcome but a clean success or a clean error (crash, leak, sanitizer report,
 * hang, an error without a message, a success that breaks the API's promises) is a bug: the harness aborts on
 * it. */
#ifndef SQ_FUZZ_HARNESS_H
#define SQ_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "squeeze.h"

/* Path of `name` in this process's scratch directory (created on first use, removed at exit), in a static
 * buffer that the next call overwrites: copy it to keep two at once. */
const char *fuzz_path(const char *name);
/* Writes size bytes to fuzz_path(name). */
void fuzz_write(const char *name, const uint8_t *data, size_t size);
/* Copies the valid companion file `name` from $SQ_FUZZ_FIXTURES (made by fuzz/make_seeds.py) to
 * fuzz_path(as). */
void fuzz_copy_fixture(const char *name, const char *as);
/* Removes fuzz_path(name) if it exists. */
void fuzz_remove(const char *name);
/* The small valid model of the fixtures (a Hugging Face directory), loaded once and kept. */
const sq_model *fuzz_fixture_model(void);

/* Cuts data at each NUL byte into at most max_parts parts (the last one keeps any further NULs); returns
 * the number of parts (at least 1). Lets one input carry several files. */
int fuzz_split(const uint8_t *data, size_t size, int max_parts, const uint8_t **parts, size_t *lens);

/* An error the library returned: it must say what is wrong. Frees it; returns whether there was one. */
SQ_TAKES_ERROR(1) int fuzz_failed(sq_error *err);
/* Aborts when cond is false: a broken promise of the API is a bug like a crash. */
void fuzz_require(int cond, const char *what);

/* Loads a model (file or directory), checks what loading promises and runs one token through it. */
void fuzz_load_model(const char *path);
/* Tokenizes text, detokenizes the ids (whole, and streamed after a context) and checks the promises. */
void fuzz_exercise_tokenizer(const sq_tokenizer *tok, const uint8_t *text, size_t len);

/* ---- the targets: models and their files (targets_model.c) */
void fuzz_gguf(const uint8_t *data, size_t size);
void fuzz_llama2c(const uint8_t *data, size_t size);
void fuzz_safetensors(const uint8_t *data, size_t size);
void fuzz_safetensors_index(const uint8_t *data, size_t size);
void fuzz_hf_config(const uint8_t *data, size_t size);
void fuzz_generation_config(const uint8_t *data, size_t size);
/* ---- tokenizers (targets_tokenizer.c) */
void fuzz_tokenizer_json(const uint8_t *data, size_t size);
void fuzz_tokenizer_config(const uint8_t *data, size_t size);
void fuzz_tokenizer_model(const uint8_t *data, size_t size);
void fuzz_tokenizer_bin(const uint8_t *data, size_t size);
void fuzz_gpt2_vocab(const uint8_t *data, size_t size);
void fuzz_tokenize_text(const uint8_t *data, size_t size);
/* ---- chat templates (targets_chat.c) */
void fuzz_chat_template(const uint8_t *data, size_t size);
/* ---- evaluation inputs (targets_eval.c) */
void fuzz_tasks(const uint8_t *data, size_t size);
void fuzz_report(const uint8_t *data, size_t size);
void fuzz_ref_logits(const uint8_t *data, size_t size);
void fuzz_eval_text(const uint8_t *data, size_t size);
void fuzz_int_list(const uint8_t *data, size_t size);
/* ---- quantization inputs (targets_quant.c) */
void fuzz_imatrix(const uint8_t *data, size_t size);
/* ---- the server's request bodies (targets_server.c) */
void fuzz_openai_request(const uint8_t *data, size_t size);
/* ---- compression recipes (targets_compress.c) */
void fuzz_recipe(const uint8_t *data, size_t size);

#endif
