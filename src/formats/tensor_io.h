/* Moving tensors between files and the model, shared by every format.
 *
 * Loading keeps weights where they are (in the mapping) in their stored dtype; the two exceptions are 1-D
 * tensors (norms, biases), which every kernel applies in f32, and data not aligned to its element size, which
 * is copied into aligned model memory. Writing hands out each tensor's bytes in the target's dtype and RoPE
 * convention, reordering or converting into a scratch buffer only when needed. */
#ifndef SQ_FORMATS_TENSOR_IO_H
#define SQ_FORMATS_TENSOR_IO_H

#include "model/model.h"

/* Adds a tensor read from `path` (named in errors). */
SQ_NODISCARD sq_error *sq_import_tensor(sq_model *m, const char *path, const char *name, sq_dtype dtype,
                                        int ndim, const int64_t *shape, const void *data, size_t nbytes);

/* Loaders: every layer's attention and FFN weights must have the head counts and width the file's config
 * states (missing tensors are left for sq_model_bind to report). */
SQ_NODISCARD sq_error *sq_check_layer_shapes(const sq_model *m, const char *path);
/* Writers: the formats store one head count and FFN width for all layers; a bound model whose layers differ
 * (after pruning) cannot be written. */
SQ_NODISCARD sq_error *sq_check_uniform_layers(const sq_model *m, const char *path, const char *format);

typedef struct sq_export_buf {
    const void *data; /* the bytes to write: the tensor's own or `owned` */
    size_t nbytes;
    sq_dtype dtype;
    void *owned;
} sq_export_buf;

/* The bytes of t as the target expects them: in dtype `to` (-1: as stored; converting block formats up is
 * allowed, to block formats is not), with attn_q/attn_k rows in the target RoPE convention. Free with
 * sq_export_release. */
SQ_NODISCARD sq_error *sq_export_tensor(const sq_model *m, const sq_tensor *t, int to,
                                        sq_rope_style target_rope, sq_export_buf *out);
void sq_export_release(sq_export_buf *b);

#endif
