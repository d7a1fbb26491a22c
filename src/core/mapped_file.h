/* Read-only memory-mapped files: model weights are used in place, never copied at load. */
#ifndef SQ_CORE_MAPPED_FILE_H
#define SQ_CORE_MAPPED_FILE_H

#include <stddef.h>

#include "squeeze.h"

typedef struct sq_mapped_file {
    const unsigned char *data;
    size_t size;
    char *path;
} sq_mapped_file;

SQ_NODISCARD sq_error *sq_mapped_file_open(const char *path, sq_mapped_file **out);
void sq_mapped_file_close(sq_mapped_file *f);

#endif
