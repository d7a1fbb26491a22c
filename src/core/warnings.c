#include "core/warnings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"

static SQ_NODISCARD sq_error *add(sq_warnings *w, const char *message) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->messages[i], message)) return NULL;
    if (SQ_ARRAY_RESERVE(w->messages, w->cap, (size_t)w->n + 1) || !(w->messages[w->n] = strdup(message)))
        return sq_errorf(SQ_ERR_NOMEM, "out of memory recording a warning");
    w->n++;
    return NULL;
}

sq_error *sq_warn(sq_warnings *w, const char *fmt, ...) {
    if (!w) return NULL;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return add(w, message);
}

sq_error *sq_warnings_append(sq_warnings *dst, const sq_warnings *src) {
    for (int i = 0; i < src->n; i++) SQ_TRY(add(dst, src->messages[i]));
    return NULL;
}

void sq_warnings_free(sq_warnings *w) {
    for (int i = 0; i < w->n; i++) free(w->messages[i]);
    free(w->messages);
    *w = (sq_warnings){0};
}
