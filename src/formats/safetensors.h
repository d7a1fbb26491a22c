/* safetensors files: an 8-byte little-endian header length, a JSON header
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data. */
#ifndef SQ_FORMATS_SAFETENSORS_H
#define SQ_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "squeeze.h"

typedef struct sq_st_entry {
    char *name;
    char dtype_name[16]; /* as the file spells it: "F32", "BF16", "I64", ... */
    int dtype;           /* the sq_dtype whose row names this safetensors dtype (core/dtype.h), else -1 */
    int ndim;            /* 0 for scalars */
    int64_t shape[SQ_MAX_DIMS];
    const unsigned char *data;
    size_t nbytes;
} sq_st_entry;

typedef struct sq_st_file {
    const sq_mapped_file *file;
    sq_st_entry *entries;
    int n_entries;
} sq_st_file;

/* Parses and validates the header of a mapped file (borrowed; must outlive the result): every dtype, shape
 * and byte range is checked against the file, and ranges must not overlap. */
SQ_NODISCARD sq_error *sq_st_parse(const sq_mapped_file *f, sq_st_file **out);
void sq_st_free(sq_st_file *st);

/* One tensor to write. */
typedef struct sq_st_tensor {
    const char *name;
    sq_dtype dtype; /* one whose row has a safetensors name */
    int ndim;
    const int64_t *shape;
    size_t nbytes;
} sq_st_tensor;

/* Writes a safetensors file: `fetch(user, i, &data)` supplies tensor i's bytes as they are written (so
 * converted copies need only live one at a time) and may fail. */
typedef SQ_NODISCARD sq_error *(*sq_st_fetch)(void *user, int i, const void **data, void **scratch);
SQ_NODISCARD sq_error *sq_st_write(const char *path, const sq_st_tensor *tensors, int n, sq_st_fetch fetch,
                                   void *user);

#endif
