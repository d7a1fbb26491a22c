/* Moving tensors between files and the model, shared by every format.
 *
 * Loading keeps weights where they are (in the mapping) in their stored dtype; the two exceptions are 1-D
 * tensors (norms, biases), which every kernel applies in f32, and data not aligned to its element size, which
 * is copied into aligned model memory. Writing hands out each tensor's bytes in the target's dtype and RoPE
 * convention, reordering or converting into a scratch buffer only when needed. */
#ifndef SQ_FORMATS_TENSOR_IO_H
#define SQ_FORMATS_TENSOR_IO_H

#include "model/model.h"

/* Adds a tensor read from `path` (named in errors). A 1-D tensor gets `offset` added to every element in f32
 * (Gemma's RMSNorm weights are stored as w for x * (1 + w)); 0 for everything else. */
SQ_NODISCARD sq_error *sq_import_tensor(sq_model *m, const char *path, const char *name, sq_dtype dtype,
                                        int ndim, const int64_t *shape, const void *data, size_t nbytes,
                                        float offset);

/* Per-block widths a file states: arrays of n_layers values, or NULL where the config's one value holds for
 * every block (GGUF may store either, as llama.cpp reads them). */
typedef struct sq_layer_widths {
    const int *n_heads, *n_kv_heads, *ffn_dim;
} sq_layer_widths;

/* Loaders: every block's attention and FFN weights must have the head counts and width the file states (w may
 * be NULL: the config's for all). Missing tensors are left for sq_model_bind to report. */
SQ_NODISCARD sq_error *sq_check_layer_shapes(const sq_model *m, const char *path, const sq_layer_widths *w);

/* Writers: whether every block has the same head counts and FFN width (block 0's). */
int sq_layers_uniform(const sq_model *m);
/* The names a format gives the three widths, for its refusal. */
typedef struct sq_width_names {
    const char *n_heads, *n_kv_heads, *ffn_dim;
} sq_width_names;
/* Writers of formats that store one value per width: an error naming the first block and field that differ
 * from block 0, or NULL when the blocks agree. */
SQ_NODISCARD sq_error *sq_check_uniform_layers(const sq_model *m, const char *path, const char *format,
                                               const sq_width_names *names);

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
