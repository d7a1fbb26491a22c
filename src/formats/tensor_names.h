/* Canonical (GGUF-style) tensor names and their Hugging Face spellings. */
#ifndef SQ_FORMATS_TENSOR_NAMES_H
#define SQ_FORMATS_TENSOR_NAMES_H

#include <stddef.h>

#include "model/arch.h"

/* Whether name is one of the canonical tensors of a model with n_layers layers. */
int sq_canonical_name_valid(const char *name, int n_layers);

/* Whether a canonical name is an RMSNorm weight (attn_norm, ffn_norm, output_norm, q/k and post norms). */
int sq_is_norm_weight(const char *canonical);

/* Maps a Hugging Face tensor name of architecture a to its canonical name: 1 when mapped, 0 when it is a
 * tensor that carries no weights (rotary inv_freq buffers) and is skipped, -1 when unknown. */
int sq_hf_to_canonical(const sq_arch *a, const char *hf, char *out, size_t n);
/* Maps a canonical name to architecture a's Hugging Face name; 0 on success, -1 when it has none. */
int sq_canonical_to_hf(const sq_arch *a, const char *canonical, char *out, size_t n);

/* Mixture of experts: Hugging Face checkpoints hold each expert's matrix on its own
 * ("model.layers.L.block_sparse_moe.experts.E.w1.weight", "model.layers.L.mlp.experts.E.gate_proj.weight"),
 * squeeze and GGUF all of a block's experts as one [n_experts][rows][cols] tensor
 * ("blk.L.ffn_gate_exps.weight"). sq_hf_expert_to_canonical: 1 and the 3-D tensor's canonical name and
 * *expert when hf is one expert's matrix, else 0. sq_canonical_expert_to_hf: expert `expert`'s Hugging Face
 * name of a 3-D expert tensor; 0 on success, -1 when canonical is none (or the family has no experts). */
int sq_hf_expert_to_canonical(const sq_arch *a, const char *hf, char *out, size_t n, int *expert);
int sq_canonical_expert_to_hf(const sq_arch *a, const char *canonical, int expert, char *out, size_t n);

#endif
