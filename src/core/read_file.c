/* The one whole-file reader: configuration, vocabularies, evaluation texts, reports, prompts. Regular files
 * are read in one allocation of their size; pipes and devices (/dev/stdin) in growing chunks. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/array.h"
#include "core/error.h"

static SQ_NODISCARD sq_error *too_large(const char *path, size_t max_bytes) {
    return sq_errorf(SQ_ERR_FORMAT, "%s: larger than the %zu bytes allowed", path, max_bytes);
}

sq_error *sq_read_file(const char *path, size_t max_bytes, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return sq_errorf(SQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    sq_error *err = NULL;
    if (fstat(fileno(fp), &st) != 0 || S_ISDIR(st.st_mode))
        err = sq_errorf(SQ_ERR_IO, "%s: not a file", path);
    else if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max_bytes)
        err = too_large(path, max_bytes);
    /* room for the bytes, one more to see the end of the file without growing, and the NUL */
    size_t n = 0, cap = 0, guess = S_ISREG(st.st_mode) ? (size_t)st.st_size : 4096;
    char *buf = NULL;
    while (!err) {
        if (n + 2 > cap && SQ_ARRAY_RESERVE(buf, cap, n + 2 > guess + 2 ? n + 2 : guess + 2)) {
            err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
            break;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (n > max_bytes)
            err = too_large(path, max_bytes);
        else if (got == 0 && ferror(fp))
            err = sq_errorf(SQ_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        else if (got == 0)
            break;
    }
    fclose(fp);
    if (err) {
        free(buf);
        return err;
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return NULL;
}
