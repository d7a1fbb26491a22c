/* PLACEHOLDER: replaced by the tokenizer module. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>

#include "core/error.h"

#define NOT_YET return sq_errorf(SQ_ERR_UNSUPPORTED, "tokenizer not built yet")
sq_error *sq_tokenizer_load(const char *path, sq_tokenizer **out) {
    (void)path;
    *out = NULL;
    NOT_YET;
}
sq_error *sq_tokenizer_from_spec(const sq_vocab_spec *spec, sq_tokenizer **out) {
    (void)spec;
    *out = NULL;
    NOT_YET;
}
void sq_tokenizer_get_spec(const sq_tokenizer *tok, sq_vocab_spec *spec) { (void)tok, (void)spec; }
sq_error *sq_tokenizer_save_hf(const sq_tokenizer *tok, const char *dir) {
    (void)tok, (void)dir;
    NOT_YET;
}
void sq_tokenizer_free(sq_tokenizer *tok) { (void)tok; }
const char *sq_tokenizer_kind(const sq_tokenizer *tok) { return (void)tok, "none"; }
int sq_tokenizer_vocab_size(const sq_tokenizer *tok) { return (void)tok, 0; }
int sq_tokenizer_bos(const sq_tokenizer *tok) { return (void)tok, -1; }
int sq_tokenizer_eos(const sq_tokenizer *tok) { return (void)tok, -1; }
int sq_tokenizer_adds_bos(const sq_tokenizer *tok) { return (void)tok, 0; }
sq_error *sq_tokenize(const sq_tokenizer *tok, const char *text, size_t len, int add_bos, int parse_special,
                      int32_t **ids, int *n_ids) {
    (void)tok, (void)text, (void)len, (void)add_bos, (void)parse_special, (void)ids, (void)n_ids;
    NOT_YET;
}
sq_error *sq_detokenize(const sq_tokenizer *tok, const int32_t *ids, int n_ids, char **text, size_t *len) {
    (void)tok, (void)ids, (void)n_ids, (void)text, (void)len;
    NOT_YET;
}
sq_detokenizer *sq_detokenizer_create(const sq_tokenizer *tok) { return (void)tok, NULL; }
const char *sq_detokenizer_push(sq_detokenizer *d, int32_t id, size_t *len) {
    (void)d, (void)id;
    *len = 0;
    return "";
}
const char *sq_detokenizer_flush(sq_detokenizer *d, size_t *len) {
    (void)d;
    *len = 0;
    return "";
}
void sq_detokenizer_free(sq_detokenizer *d) { (void)d; }
