/* Writing a model file: a buffered output whose first failure sticks, so writers check once at the end. The
 * bytes go to a temporary file beside the target that replaces it only when everything was written: a failed
 * write leaves no partial file, and converting a model onto its own path never truncates the file the model
 * is still mapped from. */
#ifndef SQ_FORMATS_OUT_FILE_H
#define SQ_FORMATS_OUT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "squeeze.h"

typedef struct sq_out_file {
    FILE *fp;
    const char *path;
    char *tmp_path;
    uint64_t offset; /* bytes written so far */
    int err;         /* errno of the first failed write, 0 while all is well */
} sq_out_file;

SQ_NODISCARD sq_error *sq_out_open(sq_out_file *o, const char *path);
/* Whether sq_out_open and the final rename can work for path (not a directory; its temporary file can be
 * created, and is removed again): for callers that check a request before long work. */
SQ_NODISCARD sq_error *sq_out_check(const char *path);
void sq_out_write(sq_out_file *o, const void *data, size_t n);
/* Writes zero bytes until the offset is a multiple of align. */
void sq_out_pad(sq_out_file *o, size_t align);
/* Little-endian scalars (the host is little-endian; these exist so call sites read as the format spec). */
void sq_out_u32(sq_out_file *o, uint32_t v);
void sq_out_u64(sq_out_file *o, uint64_t v);
/* Closes the file and moves it into place; on any earlier failure (or when `failed` is non-NULL) removes it
 * and returns the error (or `failed` itself). */
SQ_NODISCARD SQ_TAKES_ERROR(2) sq_error *sq_out_close(sq_out_file *o, sq_error *failed);

#endif
