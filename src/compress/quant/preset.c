/* The type names of squeeze quantize and llama.cpp's per-tensor rules for its file types (llama-quant.cpp,
 * llama_tensor_get_type, as of llama-cpp-python 0.3.36's llama.cpp), for the dense llama-family models
 * squeeze runs (not Falcon); where a family's files fuse q/k/v (Phi-3), the three parts get the type of the
 * attn_qkv tensor they are written as. Mixture of experts: each expert matrix of ffn_*_exps is quantized
 * as its own [rows][cols] matrix (a 3-D tensor's rows are every expert's rows), ffn_down_exps and
 * ffn_down_shexp follow ffn_down's rules and the routers stay f32, as llama.cpp does; llama.cpp's extra bits
 * for 8-expert models (attn_v, attn_k to Q8_0, attn_output to Q5_K) are not replicated. */
#include "compress/quant/preset.h"

#include <stdio.h>
#include <string.h>

static const sq_quant_preset presets[] = {
    {"q8_0", SQ_DTYPE_Q8_0, 1},
    {"q4_0", SQ_DTYPE_Q4_0, 1},
    {"q4_1", SQ_DTYPE_Q4_1, 1},
    {"q5_0", SQ_DTYPE_Q5_0, 1},
    {"q5_1", SQ_DTYPE_Q5_1, 1},
    {"q2_k", SQ_DTYPE_Q2_K, 1},
    {"q3_k", SQ_DTYPE_Q3_K, 0},
    {"q4_k", SQ_DTYPE_Q4_K, 0},
    {"q5_k", SQ_DTYPE_Q5_K, 0},
    {"q6_k", SQ_DTYPE_Q6_K, 1},
    {"q3_k_m", SQ_DTYPE_Q3_K, 1},
    {"q4_k_s", SQ_DTYPE_Q4_K, 1},
    {"q4_k_m", SQ_DTYPE_Q4_K, 1},
    {"q5_k_m", SQ_DTYPE_Q5_K, 1},
    {"w8a8", SQ_DTYPE_W8A8, 0},
    {"int4_g32", SQ_DTYPE_INT4_G32, 0},
    {"int4_g64", SQ_DTYPE_INT4_G64, 0},
    {"int4_g128", SQ_DTYPE_INT4_G128, 0},
    {"int3_g32", SQ_DTYPE_INT3_G32, 0},
    {"int3_g64", SQ_DTYPE_INT3_G64, 0},
    {"int3_g128", SQ_DTYPE_INT3_G128, 0},
    {"int2_g32", SQ_DTYPE_INT2_G32, 0},
    {"int2_g64", SQ_DTYPE_INT2_G64, 0},
    {"int2_g128", SQ_DTYPE_INT2_G128, 0},
    {"int4_g0", SQ_DTYPE_INT4_G0, 0},
    {"int3_g0", SQ_DTYPE_INT3_G0, 0},
    {"int2_g0", SQ_DTYPE_INT2_G0, 0},
    {"sparse24_q8", SQ_DTYPE_SPARSE24_Q8, 0},
    {"sparse24_q4", SQ_DTYPE_SPARSE24_Q4, 0},
    {"sparse24_f16", SQ_DTYPE_SPARSE24_F16, 0},
};
enum { N_PRESETS = sizeof presets / sizeof *presets };

const sq_quant_preset *sq_quant_preset_find(const char *name) {
    for (int i = 0; name && i < N_PRESETS; i++)
        if (!strcmp(presets[i].name, name)) return &presets[i];
    return NULL;
}

const char *sq_quant_preset_names(void) {
    static char names[512];
    if (!names[0])
        for (int i = 0; i < N_PRESETS; i++) {
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", presets[i].name);
        }
    return names;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int sq_quant_is_weight_matrix(const char *name, int ndim) {
    /* a mixture of experts' routers stay f32, as llama-quantize keeps ffn_gate_inp (and the shared expert's
     * gate, a vector there); ".weight_a" / ".weight_b": a linear weight's low-rank factors (model.h's
     * sq_layer.lr_a, lr_b) */
    return ndim >= 2 &&
           (ends_with(name, "weight") || ends_with(name, ".weight_a") || ends_with(name, ".weight_b")) &&
           !strstr(name, "_norm.weight") && !strstr(name, ".ffn_gate_inp");
}

/* llama.cpp's layers that get more bits in the _M mixes: the first and last eighth, and every third between.
 */
static int use_more_bits(int layer, int n_layers) {
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

static int is(const sq_quant_preset *p, const char *name) { return !strcmp(p->name, name); }

sq_dtype sq_quant_nm_dense(sq_dtype dtype) {
    switch (dtype) {
    case SQ_DTYPE_SPARSE24_Q8:
        return SQ_DTYPE_Q8_0;
    case SQ_DTYPE_SPARSE24_Q4:
        return SQ_DTYPE_Q4_0;
    case SQ_DTYPE_SPARSE24_F16:
        return SQ_DTYPE_F16;
    default:
        return dtype;
    }
}

sq_dtype sq_quant_preset_type(const sq_quant_preset *p, const sq_quant_model_facts *m, const char *name,
                              int64_t cols) {
    /* N:M: only the blocks' matrices are pruned (squeeze prune --nm) */
    if (sq_dtype_info(p->base)->nm_m && strncmp(name, "blk.", 4)) return sq_quant_nm_dense(p->base);
    if (!p->llama_rules) return p->base;
    const int n = m->n_layers;
    int layer = -1;
    sscanf(name, "blk.%d.", &layer);
    /* the output layer (token_embd when tied): Q6_K, or Q8_0 where 256-value blocks do not fit */
    if (!strcmp(name, "output.weight") || (m->tied_embeddings && !strcmp(name, "token_embd.weight"))) {
        if (cols % sq_dtype_info(p->base)->block_elems) return SQ_DTYPE_Q8_0;
        return p->base == SQ_DTYPE_Q8_0 ? SQ_DTYPE_Q8_0 : SQ_DTYPE_Q6_K;
    }
    if (m->fused_qkv && (ends_with(name, ".attn_q.weight") || ends_with(name, ".attn_k.weight") ||
                         ends_with(name, ".attn_v.weight"))) { /* llama.cpp's attn_qkv rule */
        if (is(p, "q3_k_m")) return SQ_DTYPE_Q4_K;
        if (is(p, "q4_k_m")) return SQ_DTYPE_Q5_K;
        if (is(p, "q5_k_m")) return SQ_DTYPE_Q6_K;
    } else if (ends_with(name, ".attn_v.weight")) {
        if (is(p, "q2_k")) return m->n_gqa >= 4 ? SQ_DTYPE_Q4_K : SQ_DTYPE_Q3_K;
        if (is(p, "q3_k_m")) return layer < 2 ? SQ_DTYPE_Q5_K : SQ_DTYPE_Q4_K;
        if ((is(p, "q4_k_m") || is(p, "q5_k_m")) && use_more_bits(layer, n)) return SQ_DTYPE_Q6_K;
        if (is(p, "q4_k_s") && layer < 4) return SQ_DTYPE_Q5_K;
    } else if (ends_with(name, ".ffn_down.weight") || ends_with(name, ".ffn_down_exps.weight") ||
               ends_with(name, ".ffn_down_shexp.weight")) { /* llama.cpp matches "ffn_down" anywhere */
        if (is(p, "q2_k")) return SQ_DTYPE_Q3_K;
        if (is(p, "q3_k_m")) return layer < n / 16 ? SQ_DTYPE_Q5_K : SQ_DTYPE_Q4_K;
        if ((is(p, "q4_k_m") || is(p, "q5_k_m")) && use_more_bits(layer, n)) return SQ_DTYPE_Q6_K;
        if (is(p, "q4_k_s") && layer < n / 8) return SQ_DTYPE_Q5_K;
    } else if (ends_with(name, ".attn_output.weight")) {
        if (is(p, "q2_k")) return SQ_DTYPE_Q3_K;
        if (is(p, "q3_k_m")) return SQ_DTYPE_Q4_K;
    }
    return p->base;
}

sq_dtype sq_quant_fallback(sq_dtype dtype, int64_t cols) {
    if (cols % sq_dtype_info(dtype)->block_elems == 0) return dtype;
    static const sq_dtype to[][2] = {
        {SQ_DTYPE_Q2_K, SQ_DTYPE_Q4_0},
        {SQ_DTYPE_Q3_K, SQ_DTYPE_Q4_0},
        {SQ_DTYPE_Q4_K, SQ_DTYPE_Q5_0},
        {SQ_DTYPE_Q5_K, SQ_DTYPE_Q5_1},
        {SQ_DTYPE_Q6_K, SQ_DTYPE_Q8_0},
        /* squeeze's intN: smaller groups, the first that fits (per-row intN_g0 needs whole 32s too) */
        {SQ_DTYPE_INT4_G128, SQ_DTYPE_INT4_G64},
        {SQ_DTYPE_INT4_G128, SQ_DTYPE_INT4_G32},
        {SQ_DTYPE_INT4_G64, SQ_DTYPE_INT4_G32},
        {SQ_DTYPE_INT3_G128, SQ_DTYPE_INT3_G64},
        {SQ_DTYPE_INT3_G128, SQ_DTYPE_INT3_G32},
        {SQ_DTYPE_INT3_G64, SQ_DTYPE_INT3_G32},
        {SQ_DTYPE_INT2_G128, SQ_DTYPE_INT2_G64},
        {SQ_DTYPE_INT2_G128, SQ_DTYPE_INT2_G32},
        {SQ_DTYPE_INT2_G64, SQ_DTYPE_INT2_G32},
        /* the 2:4 formats: their dense counterparts */
        {SQ_DTYPE_SPARSE24_Q8, SQ_DTYPE_Q8_0},
        {SQ_DTYPE_SPARSE24_Q4, SQ_DTYPE_Q4_0},
    };
    for (size_t i = 0; i < sizeof to / sizeof *to; i++)
        if (to[i][0] == dtype && cols % sq_dtype_info(to[i][1])->block_elems == 0) return to[i][1];
    return SQ_DTYPE_F16;
}
