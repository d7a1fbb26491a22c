/* Fused projections as some families' files store them (sq_arch.fused_proj, Phi-3): q, k and v as one tensor
 * attn_qkv [(n_heads + 2 n_kv_heads) head_dim][dim] (Hugging Face qkv_proj), gate and up as one ffn_gate_up
 * [2 ffn_dim][dim], gate rows first (Hugging Face gate_up_proj; GGUF calls it ffn_up, as llama.cpp's
 * converter writes it).
 *
 * Loaders split them into the engine's attn_q/k/v and ffn_gate/up, so the forward pass, the calibration tap,
 * quantization and pruning see the same tensors in every family; each part is a run of whole rows, so it
 * stays in place in the mapped file whatever its dtype. Writers join the parts again (they must then share a
 * dtype). */
#ifndef SQ_FORMATS_FUSED_TENSORS_H
#define SQ_FORMATS_FUSED_TENSORS_H

#include "formats/tensor_io.h"
#include "model/arch.h"

/* Per-layer suffixes of the fused tensors, after "blk.%d.". */
#define SQ_NAME_ATTN_QKV    "attn_qkv.weight"
#define SQ_NAME_FFN_GATE_UP "ffn_gate_up.weight"

/* Whether a canonical name ("blk.3.attn_qkv.weight") is a fused tensor of a model with n_layers layers. */
int sq_fused_name_valid(const char *name, int n_layers);

/* The canonical name of GGUF tensor `gguf` of architecture a into out[n] (ffn_up is ffn_gate_up where the
 * family fuses), and the reverse for writing. */
void sq_fused_from_gguf(const sq_arch *a, const char *gguf, char *out, size_t n);
void sq_fused_to_gguf(const sq_arch *a, const char *canonical, char *out, size_t n);

/* Adds fused tensor `name` (sq_fused_name_valid) read from `path` as its parts: attn_qkv into attn_q, attn_k
 * and attn_v of n_heads, n_kv_heads and n_kv_heads heads of head_dim rows; ffn_gate_up into ffn_gate and
 * ffn_up of ffn_dim rows each. A 2-D shape whose rows disagree with those widths is an error naming the
 * tensor and the widths. */
SQ_NODISCARD sq_error *sq_import_fused(sq_model *m, const char *path, const char *name, sq_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data, size_t nbytes,
                                       int n_heads, int n_kv_heads, int ffn_dim);

/* A tensor as a file stores it: one of the model's, or several joined by rows. */
typedef struct sq_file_tensor {
    char name[SQ_TENSOR_NAME_MAX]; /* canonical name; a fused name for joined parts */
    const sq_tensor *part[3];      /* [n_parts] the model's tensors, in row order */
    int n_parts;
    sq_dtype dtype;
    int ndim;
    int64_t shape[SQ_MAX_DIMS]; /* rows summed over the parts */
    size_t nbytes;
} sq_file_tensor;

/* The tensors a file of architecture a holds for bound model m, in the model's order, with the fused ones
 * joined where q (gate) stood: *out gets *n entries (caller frees). Parts of different dtypes are an error
 * naming them (quantize them alike, or write a format that keeps them apart). */
SQ_NODISCARD sq_error *sq_file_tensors(const sq_model *m, const sq_arch *a, const char *path,
                                       sq_file_tensor **out, int *n);

/* The bytes of f as the target expects them (sq_export_tensor, part by part). Free with sq_export_release. */
SQ_NODISCARD sq_error *sq_export_file_tensor(const sq_model *m, const sq_file_tensor *f, int to,
                                             sq_rope_style target_rope, sq_export_buf *out);

#endif
