#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returned when even the error cannot be allocated; sq_error_free recognises and keeps it. */
static sq_error out_of_memory = {SQ_ERR_NOMEM, "out of memory"};

sq_error *sq_errorf(sq_error_code code, const char *fmt, ...) {
    sq_error *err = malloc(sizeof *err);
    if (!err) return &out_of_memory;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return err;
}

sq_error *sq_error_wrap(sq_error *err, const char *fmt, ...) {
    if (!err || err == &out_of_memory) return err;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* prefix, ": ", then as much of the old message as still fits */
    char joined[sizeof err->message];
    size_t n = strlen(prefix);
    memcpy(joined, prefix, n);
    n += (size_t)snprintf(joined + n, sizeof joined - n, ": ");
    size_t rest = strnlen(err->message, sizeof err->message - 1);
    if (rest > sizeof joined - 1 - n) rest = sizeof joined - 1 - n;
    memcpy(joined + n, err->message, rest);
    joined[n + rest] = 0;
    memcpy(err->message, joined, sizeof joined);
    return err;
}

sq_error_code sq_error_code_of(const sq_error *err) { return err ? err->code : 0; }
const char *sq_error_message(const sq_error *err) { return err ? err->message : "no error"; }
void sq_error_free(sq_error *err) {
    if (err != &out_of_memory) free(err);
}
