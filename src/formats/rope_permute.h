/* Converting attention projections between the two RoPE conventions.
 *
 * Interleaved RoPE (llama2.c, GGUF llama) rotates dimension pairs (2i, 2i+1) of each head; "halves" RoPE
 * (Hugging Face, GGUF qwen2) rotates (i, i + head_dim/2). A model stored in one convention runs correctly in
 * the other once the rows of wq and wk (and their biases) are reordered inside every head. This is exactly
 * the permutation llama.cpp's convert_hf_to_gguf.py applies (reshape(heads, 2, hd/2, ...).swapaxes(1, 2)). */
#ifndef SQ_FORMATS_ROPE_PERMUTE_H
#define SQ_FORMATS_ROPE_PERMUTE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* Whether a canonical tensor name is one whose rows RoPE rotates (blk.N.attn_q/attn_k .weight/.bias, and the
 * per-head q/k norm weights, whose [head_dim] elements follow the rows they scale). */
int sq_rope_rotates_rows(const char *name);

/* Copies n_rows rows of row_bytes from src to dst, reordering the first rope_dims rows of each group of
 * head_dim rows (the rotated ones; the rest are copied in place) from convention `from` to `to` (n_rows a
 * multiple of head_dim, rope_dims even and at most head_dim). from == to copies. */
void sq_rope_permute_rows(const void *src, void *dst, int64_t n_rows, size_t row_bytes, int head_dim,
                          int rope_dims, sq_rope_style from, sq_rope_style to);

#endif
