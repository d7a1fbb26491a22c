#include "formats/tensor_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fused_tensors.h"
#include "model/model.h"

static const struct {
    const char *canonical, *hf;
} global_names[] = {
    {SQ_NAME_TOK_EMBD, "model.embed_tokens.weight"},
    {SQ_NAME_OUT_NORM, "model.norm.weight"},
    {SQ_NAME_OUTPUT, "lm_head.weight"},
};

/* Which checkpoints a block name belongs to: Llama's norms (post_attention_layernorm before the FFN) or
 * Gemma's sandwich norms (post_attention_layernorm after attention, pre_feedforward_layernorm before the FFN,
 * post_feedforward_layernorm after it); sq_arch.hf_sandwich_norms says which a family has. */
enum { ANY, PLAIN, SANDWICH, MOE_MIXTRAL, MOE_QWEN };
/* And whether the family stores q/k/v and gate/up apart (SPLIT) or fused (FUSED, sq_arch.fused_proj). */
enum { BOTH, SPLIT, FUSED };

static const struct {
    const char *canonical, *hf;
    int norms, proj;
} layer_names[] = {
    {SQ_NAME_ATTN_NORM, "input_layernorm.weight", ANY, BOTH},
    {SQ_NAME_ATTN_Q, "self_attn.q_proj.weight", ANY, SPLIT},
    {SQ_NAME_ATTN_K, "self_attn.k_proj.weight", ANY, SPLIT},
    {SQ_NAME_ATTN_V, "self_attn.v_proj.weight", ANY, SPLIT},
    {SQ_NAME_ATTN_OUT, "self_attn.o_proj.weight", ANY, BOTH},
    {SQ_NAME_ATTN_Q_BIAS, "self_attn.q_proj.bias", ANY, BOTH},
    {SQ_NAME_ATTN_K_BIAS, "self_attn.k_proj.bias", ANY, BOTH},
    {SQ_NAME_ATTN_V_BIAS, "self_attn.v_proj.bias", ANY, BOTH},
    {SQ_NAME_ATTN_Q_NORM, "self_attn.q_norm.weight", ANY, BOTH},
    {SQ_NAME_ATTN_K_NORM, "self_attn.k_norm.weight", ANY, BOTH},
    {SQ_NAME_FFN_NORM, "post_attention_layernorm.weight", PLAIN, BOTH},
    {SQ_NAME_ATTN_POST_NORM, "post_attention_layernorm.weight", SANDWICH, BOTH},
    {SQ_NAME_FFN_NORM, "pre_feedforward_layernorm.weight", SANDWICH, BOTH},
    {SQ_NAME_FFN_POST_NORM, "post_feedforward_layernorm.weight", SANDWICH, BOTH},
    {SQ_NAME_FFN_GATE, "mlp.gate_proj.weight", ANY, SPLIT},
    {SQ_NAME_FFN_UP, "mlp.up_proj.weight", ANY, SPLIT},
    {SQ_NAME_FFN_DOWN, "mlp.down_proj.weight", ANY, BOTH},
    {SQ_NAME_ATTN_QKV, "self_attn.qkv_proj.weight", ANY, FUSED},
    {SQ_NAME_FFN_GATE_UP, "mlp.gate_up_proj.weight", ANY, FUSED},
    /* mixture of experts: the router, the shared expert and its gate (the experts: expert_names) */
    {SQ_NAME_FFN_GATE_INP, "block_sparse_moe.gate.weight", MOE_MIXTRAL, BOTH},
    {SQ_NAME_FFN_GATE_INP, "mlp.gate.weight", MOE_QWEN, BOTH},
    {SQ_NAME_FFN_GATE_SHEXP, "mlp.shared_expert.gate_proj.weight", MOE_QWEN, BOTH},
    {SQ_NAME_FFN_UP_SHEXP, "mlp.shared_expert.up_proj.weight", MOE_QWEN, BOTH},
    {SQ_NAME_FFN_DOWN_SHEXP, "mlp.shared_expert.down_proj.weight", MOE_QWEN, BOTH},
    {SQ_NAME_FFN_GATE_INP_SHEXP, "mlp.shared_expert_gate.weight", MOE_QWEN, BOTH},
};

/* Expert e's matrix of each 3-D expert tensor: "<prefix><e>.<name>" in Hugging Face checkpoints. */
static const struct {
    const char *canonical, *mixtral, *qwen;
} expert_names[] = {
    {SQ_NAME_FFN_GATE_EXPS, "w1.weight", "gate_proj.weight"},
    {SQ_NAME_FFN_UP_EXPS, "w3.weight", "up_proj.weight"},
    {SQ_NAME_FFN_DOWN_EXPS, "w2.weight", "down_proj.weight"},
};

static int applies(size_t i, const sq_arch *a) {
    const int norms = layer_names[i].norms, proj = layer_names[i].proj;
    const int family = norms == MOE_MIXTRAL ? a->hf_moe_names == SQ_HF_MOE_MIXTRAL
                       : norms == MOE_QWEN
                           ? a->hf_moe_names == SQ_HF_MOE_QWEN
                           : norms == ANY || norms == (a->hf_sandwich_norms ? SANDWICH : PLAIN);
    return family && (proj == BOTH || proj == (a->fused_proj ? FUSED : SPLIT));
}

#define COUNT(a) (sizeof(a) / sizeof *(a))

int sq_is_norm_weight(const char *canonical) {
    const size_t n = strlen(canonical), k = strlen("norm.weight");
    return n >= k && !strcmp(canonical + n - k, "norm.weight");
}

int sq_canonical_name_valid(const char *name, int n_layers) {
    for (size_t i = 0; i < COUNT(global_names); i++)
        if (!strcmp(name, global_names[i].canonical)) return 1;
    const char *rest;
    int layer = sq_split_layer_name(name, "blk.", &rest);
    if (layer < 0 || layer >= n_layers) return 0;
    for (size_t i = 0; i < COUNT(layer_names); i++)
        if (layer_names[i].proj != FUSED && !strcmp(rest, layer_names[i].canonical)) return 1;
    for (size_t i = 0; i < COUNT(expert_names); i++)
        if (!strcmp(rest, expert_names[i].canonical)) return 1;
    /* a linear weight's low-rank factors (model.h's sq_layer.lr_a, lr_b) */
    for (int i = 0; i < SQ_N_LINEAR; i++) {
        const size_t n = strlen(sq_linear_names[i]);
        if (!strncmp(rest, sq_linear_names[i], n) &&
            (!strcmp(rest + n, ".weight_a") || !strcmp(rest + n, ".weight_b")))
            return 1;
    }
    return 0;
}

/* "block_sparse_moe.experts." or "mlp.experts."; NULL for a family without experts. */
static const char *expert_prefix(const sq_arch *a) {
    return a->hf_moe_names == SQ_HF_MOE_MIXTRAL ? "block_sparse_moe.experts."
           : a->hf_moe_names == SQ_HF_MOE_QWEN  ? "mlp.experts."
                                                : NULL;
}

int sq_hf_expert_to_canonical(const sq_arch *a, const char *hf, char *out, size_t n, int *expert) {
    const char *rest, *prefix = expert_prefix(a), *name;
    const int layer = sq_split_layer_name(hf, "model.layers.", &rest);
    if (layer < 0 || !prefix || (*expert = sq_split_layer_name(rest, prefix, &name)) < 0) return 0;
    for (size_t i = 0; i < COUNT(expert_names); i++)
        if (!strcmp(name,
                    a->hf_moe_names == SQ_HF_MOE_MIXTRAL ? expert_names[i].mixtral : expert_names[i].qwen))
            return snprintf(out, n, "blk.%d.%s", layer, expert_names[i].canonical), 1;
    return 0;
}

int sq_canonical_expert_to_hf(const sq_arch *a, const char *canonical, int expert, char *out, size_t n) {
    const char *rest, *prefix = expert_prefix(a);
    const int layer = sq_split_layer_name(canonical, "blk.", &rest);
    for (size_t i = 0; prefix && layer >= 0 && i < COUNT(expert_names); i++)
        if (!strcmp(rest, expert_names[i].canonical))
            return snprintf(out, n, "model.layers.%d.%s%d.%s", layer, prefix, expert,
                            a->hf_moe_names == SQ_HF_MOE_MIXTRAL ? expert_names[i].mixtral
                                                                 : expert_names[i].qwen),
                   0;
    return -1;
}

int sq_hf_to_canonical(const sq_arch *a, const char *hf, char *out, size_t n) {
    for (size_t i = 0; i < COUNT(global_names); i++)
        if (!strcmp(hf, global_names[i].hf)) return snprintf(out, n, "%s", global_names[i].canonical), 1;
    const char *rest;
    int layer = sq_split_layer_name(hf, "model.layers.", &rest);
    if (layer < 0) return -1;
    for (size_t i = 0; i < COUNT(layer_names); i++)
        if (applies(i, a) && !strcmp(rest, layer_names[i].hf))
            return snprintf(out, n, "blk.%d.%s", layer, layer_names[i].canonical), 1;
    if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) return 0; /* recomputed from the config */
    return -1;
}

int sq_canonical_to_hf(const sq_arch *a, const char *canonical, char *out, size_t n) {
    for (size_t i = 0; i < COUNT(global_names); i++)
        if (!strcmp(canonical, global_names[i].canonical))
            return snprintf(out, n, "%s", global_names[i].hf), 0;
    const char *rest;
    int layer = sq_split_layer_name(canonical, "blk.", &rest);
    if (layer < 0) return -1;
    for (size_t i = 0; i < COUNT(layer_names); i++)
        if (applies(i, a) && !strcmp(rest, layer_names[i].canonical))
            return snprintf(out, n, "model.layers.%d.%s", layer, layer_names[i].hf), 0;
    return -1;
}
