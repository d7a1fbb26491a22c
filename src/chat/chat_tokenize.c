/* Tokenizing a rendered chat prompt (sq_chat_tokenize in squeeze.h). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

SQ_NODISCARD sq_error *sq_chat_tokenize(const sq_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                                        int *n_ids) {
    int32_t *v;
    int n;
    SQ_TRY(sq_tokenize(tok, text, len, 0, 1, &v, &n));
    int bos = sq_tokenizer_bos(tok);
    if (sq_tokenizer_adds_bos(tok) && bos >= 0 && (n == 0 || v[0] != bos)) {
        int32_t *grown = realloc(v, ((size_t)n + 1) * sizeof *v);
        if (!grown) {
            free(v);
            return sq_errorf(SQ_ERR_NOMEM, "chat: out of memory for %d tokens", n + 1);
        }
        memmove(grown + 1, grown, (size_t)n * sizeof *grown);
        grown[0] = bos;
        v = grown;
        n++;
    }
    *ids = v;
    *n_ids = n;
    return NULL;
}
