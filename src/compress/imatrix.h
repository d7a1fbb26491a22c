/* The importance matrix (squeeze.h, "importance matrix"): its entries in memory. imatrix.c gathers them,
 * imatrix_file.c reads and writes the file. */
#ifndef SQ_COMPRESS_IMATRIX_H
#define SQ_COMPRESS_IMATRIX_H

#include <stdint.h>

#include "squeeze.h"

struct sq_imatrix {
    int n_entries, cap;
    sq_imatrix_entry *entries; /* [n_entries]; each name and values malloc'ed */
};

/* Appends a copy of name and values; SQ_ERR_NOMEM on failure. */
SQ_NODISCARD sq_error *sq_imatrix_add(sq_imatrix *im, const char *name, size_t name_len, int64_t n_tokens,
                                      const float *values, int n_values);

#endif
