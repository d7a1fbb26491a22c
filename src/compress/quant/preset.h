/* Which format each tensor gets: the type names `squeeze quantize --type` takes, and llama.cpp's rules for
 * its file types (llama-quant.cpp, llama_tensor_get_type), so that `squeeze quantize --type q4_k_m` and
 * `llama-quantize ... Q4_K_M` store every tensor of a model in the same format. */
#ifndef SQ_COMPRESS_QUANT_PRESET_H
#define SQ_COMPRESS_QUANT_PRESET_H

#include <stdint.h>

#include "core/dtype.h"

typedef struct sq_quant_preset {
    const char *name; /* as users type it: "q4_k_m", "q8_0", "q4_k" */
    sq_dtype base;    /* the format of most weight matrices */
    int llama_rules;  /* llama.cpp has a file type of this name: its per-tensor rules apply. Otherwise (q3_k,
                         q4_k, q5_k) every weight matrix gets `base`, as llama-quantize --pure does */
} sq_quant_preset;

/* The preset named `name`, or NULL. */
const sq_quant_preset *sq_quant_preset_find(const char *name);
/* All names, ", "-separated, for messages. */
const char *sq_quant_preset_names(void);

/* Whether llama.cpp quantizes a tensor at all: matrices (ndim >= 2) named "*weight", norms and
 * mixture-of-experts routers (ffn_gate_inp, ffn_gate_inp_shexp) excepted; and squeeze's low-rank factors
 * "*.weight_a", "*.weight_b". */
int sq_quant_is_weight_matrix(const char *name, int ndim);

/* What the model around a tensor looks like to the rules. */
typedef struct sq_quant_model_facts {
    int n_layers;
    int n_gqa;           /* query heads per KV head */
    int tied_embeddings; /* no output.weight: token_embd is the output layer too */
    int fused_qkv;       /* files store attn_q/k/v as one attn_qkv (Phi-3): all three get attn_qkv's type */
} sq_quant_model_facts;

/* The dense format an N:M format's values are stored like (sparse24_q8 -> q8_0, sparse24_q4 -> q4_0,
 * sparse24_f16 -> f16): what a matrix that is not N:M, or outside the blocks, gets instead. Other formats:
 * themselves. */
sq_dtype sq_quant_nm_dense(sq_dtype dtype);

/* The format the preset's rules give a weight matrix (N:M presets: the blocks' matrices; the others their
 * dense counterpart) (name, row length cols), before any fallback. */
sq_dtype sq_quant_preset_type(const sq_quant_preset *p, const sq_quant_model_facts *m, const char *name,
                              int64_t cols);

/* llama.cpp's fallback for rows that are not whole blocks of `dtype`: a 32-value format of about as many
 * bits (Q2_K, Q3_K -> Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0; squeeze's intN_g128 -> intN_g64 ->
 * intN_g32; the 2:4 formats -> their dense counterparts), f16 when that does not fit either.
 * Returns dtype itself when its blocks fit. */
sq_dtype sq_quant_fallback(sq_dtype dtype, int64_t cols);

#endif
