/* Evaluation text files: strict UTF-8 (an error names the line and byte of the first bad sequence) with
 * CRLF normalised to LF, so a corpus gives the same tokens whichever line endings it was stored with. */
#include <stdlib.h>

#include "core/error.h"
#include "squeeze.h"

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or values past U+10FFFF),
 * or 0 when it is invalid. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

sq_error *sq_eval_read_text(const char *path, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    char *data;
    size_t size;
    SQ_TRY(sq_read_file(path, (size_t)1 << 32, &data, &size));
    const unsigned char *u = (const unsigned char *)data;
    size_t out = 0, line = 1, line_start = 0;
    for (size_t i = 0; i < size;) {
        size_t n = utf8_sequence_length(u + i, size - i);
        if (!n) {
            sq_error *err =
                sq_errorf(SQ_ERR_FORMAT, "%s: line %zu, column %zu (byte %zu): invalid UTF-8 (byte 0x%02x)",
                          path, line, i - line_start + 1, i, u[i]);
            free(data);
            return err;
        }
        if (u[i] == '\r' && i + 1 < size && u[i + 1] == '\n') {
            i++;
            continue;
        }
        if (u[i] == '\n') line++, line_start = i + 1;
        for (size_t k = 0; k < n; k++) data[out++] = data[i + k]; /* in place: out never passes i */
        i += n;
    }
    data[out] = 0;
    *text = data;
    *len = out;
    return NULL;
}
