/* Rotary position embedding (RoPE, Su et al. 2021, "RoFormer"): the pairing conventions that the model
 * records from its file and the kernels apply. */
#ifndef SQ_CORE_ROPE_H
#define SQ_CORE_ROPE_H

typedef enum sq_rope_style {
    SQ_ROPE_INTERLEAVED, /* rotates pairs (2i, 2i+1): llama2.c, GGUF llama */
    SQ_ROPE_HALVES       /* rotates (i, i + head_dim/2): Hugging Face, GGUF qwen2 ("neox") */
} sq_rope_style;

#endif
