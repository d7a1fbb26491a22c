/* Building error values (see sq_error in squeeze.h). Library code never prints; it returns these. */
#ifndef SQ_CORE_ERROR_H
#define SQ_CORE_ERROR_H

#include "squeeze.h"

struct sq_error {
    sq_error_code code;
    char message[1024];
};

/* A new error with a printf-style message. Never NULL (falls back to a static out-of-memory error). */
SQ_NODISCARD sq_error *sq_errorf(sq_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes context to an existing error's message ("loading x.gguf: " + message) and returns it. */
SQ_NODISCARD SQ_TAKES_ERROR(1) sq_error *sq_error_wrap(sq_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define SQ_TRY(expr)                                                                                         \
    do {                                                                                                     \
        sq_error *sq_try_err_ = (expr);                                                                      \
        if (sq_try_err_) return sq_try_err_;                                                                 \
    } while (0)

#endif
