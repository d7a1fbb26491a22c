/* Load warnings: metadata squeeze could do without and worked around (an out-of-range special-token id
 * treated as absent, ...), kept as messages for the caller to show. The library never prints them. */
#ifndef SQ_CORE_WARNINGS_H
#define SQ_CORE_WARNINGS_H

#include "squeeze.h"

typedef struct sq_warnings {
    char **messages; /* [n], each malloc'ed and NUL-terminated */
    int n;
    size_t cap;
} sq_warnings;

/* Appends a printf-style message (an identical one already there is not repeated); w may be NULL, when the
 * caller reports elsewhere. Fails only when out of memory. */
SQ_NODISCARD sq_error *sq_warn(sq_warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends copies of every message of src to dst. */
SQ_NODISCARD sq_error *sq_warnings_append(sq_warnings *dst, const sq_warnings *src);
void sq_warnings_free(sq_warnings *w);

#endif
