/* Llama-3 RoPE frequency scaling, between its Hugging Face parameters (factor, low/high frequency factors,
 * original context) and GGUF's rope_freqs.weight tensor (one divisor per rotated pair, as llama.cpp's
 * convert_hf_to_gguf.py computes it). */
#ifndef SQ_FORMATS_ROPE_SCALING_H
#define SQ_FORMATS_ROPE_SCALING_H

#include "model/model.h"

/* The per-pair frequency divisors llama.cpp applies: rope_dims/2 values into out. */
void sq_llama3_rope_factors(const sq_model_config *c, float *out);

/* Recovers Llama-3 parameters from rope_freqs.weight (rope_dims/2 f32 values) into c->rope_scaling. The
 * divisors determine the scaling only up to a common scale of (original context, low, high), so the original
 * context is taken from `original_ctx` (0: 8192, Llama 3.1's) and the other two fitted; the result is checked
 * by recomputing every divisor. */
SQ_NODISCARD sq_error *sq_llama3_from_factors(const char *path, const float *factors, int original_ctx,
                                              sq_model_config *c);

#endif
