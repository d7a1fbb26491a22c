/* Stop strings over streamed text: text is passed on as soon as it can no longer be the start of a stop
 * string, so that a stop string never reaches the client, also when its bytes arrive split across tokens
 * (OpenAI's `stop`). The text ends before the stop string that is completed first, the longest of those
 * that end at the same byte: the point a client reading the stream would see, whatever the pieces. */
#ifndef SQ_SERVER_STOP_STRINGS_H
#define SQ_SERVER_STOP_STRINGS_H

#include <stddef.h>

typedef struct sq_stop_matcher {
    const char *const *stop; /* [n_stop] non-empty strings, borrowed */
    int n_stop;
    char *held; /* [cap] text received but not yet passed on: it may begin a stop string */
    size_t n_held, cap;
    int stopped; /* a stop string was found; everything after it is dropped */
} sq_stop_matcher;

/* stop may be NULL when n_stop is 0. */
void sq_stop_init(sq_stop_matcher *m, const char *const *stop, int n_stop);
void sq_stop_free(sq_stop_matcher *m);
/* Takes len more bytes of text; *out / *out_len get the text that may be passed on now (never NULL; valid
 * until the next call). Returns 1 when a stop string was completed (the text before it has been passed on:
 * the caller finishes), 0 otherwise, -1 when memory ran out. After a stop, further text is dropped. */
int sq_stop_push(sq_stop_matcher *m, const char *text, size_t len, const char **out, size_t *out_len);
/* At the end of the text: what was held back (it turned out to begin no stop string). */
void sq_stop_flush(sq_stop_matcher *m, const char **out, size_t *out_len);

#endif
