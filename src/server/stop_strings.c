/* Stop strings over streamed text (see stop_strings.h). */
#include "server/stop_strings.h"

#include <stdlib.h>
#include <string.h>

#include "core/array.h"

void sq_stop_init(sq_stop_matcher *m, const char *const *stop, int n_stop) {
    *m = (sq_stop_matcher){.stop = stop, .n_stop = n_stop};
}

void sq_stop_free(sq_stop_matcher *m) {
    free(m->held);
    *m = (sq_stop_matcher){0};
}

/* Whether text[at..n) is a proper prefix of some stop string. */
static int begins_stop(const sq_stop_matcher *m, const char *text, size_t n, size_t at) {
    for (int i = 0; i < m->n_stop; i++) {
        size_t len = strlen(m->stop[i]);
        if (n - at < len && !memcmp(text + at, m->stop[i], n - at)) return 1;
    }
    return 0;
}

int sq_stop_push(sq_stop_matcher *m, const char *text, size_t len, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (m->stopped) return 1;
    if (SQ_ARRAY_RESERVE(m->held, m->cap, m->n_held + len + 1)) return -1;
    /* what was passed on last time is gone: held is what remains */
    memcpy(m->held + m->n_held, text, len);
    size_t n = m->n_held + len;
    /* the text ends before the stop string that is completed first (the longest, when several end at the
     * same byte): what streaming sees, whatever the pieces */
    for (size_t end = 1; end <= n; end++) {
        size_t start = end;
        for (int i = 0; i < m->n_stop; i++) {
            size_t sl = strlen(m->stop[i]);
            if (sl <= end && end - sl < start && !memcmp(m->held + end - sl, m->stop[i], sl))
                start = end - sl;
        }
        if (start < end) {
            m->stopped = 1;
            m->n_held = 0;
            *out = m->held;
            *out_len = start;
            return 1;
        }
    }
    /* hold back the longest tail that may still grow into a stop string */
    size_t keep_from = n;
    for (size_t at = 0; at < n; at++)
        if (begins_stop(m, m->held, n, at)) {
            keep_from = at;
            break;
        }
    /* out points at the passed-on part; the held tail is moved to the front on the next call. To keep
     * that simple, the tail is moved now and the passed-on part returned from a second region. */
    if (SQ_ARRAY_RESERVE(m->held, m->cap, 2 * n + 1)) return -1;
    memcpy(m->held + n, m->held, keep_from);              /* passed-on bytes, after the buffer's used part */
    memmove(m->held, m->held + keep_from, n - keep_from); /* the held tail, at the front */
    m->n_held = n - keep_from;
    *out = m->held + n;
    *out_len = keep_from;
    return 0;
}

void sq_stop_flush(sq_stop_matcher *m, const char **out, size_t *out_len) {
    *out = m->stopped || !m->held ? "" : m->held;
    *out_len = m->stopped ? 0 : m->n_held;
    m->n_held = 0;
}
