/* Routing of a mixture-of-experts block: which experts each token uses, with what weight, grouped by expert
 * so that each expert's weights are read once per forward call (its tokens are one matrix product).
 *
 * Mixtral (transformers' MixtralSparseMoeBlock) and Qwen2-MoE / Qwen3-MoE (Qwen2MoeSparseMoeBlock): softmax
 * over every expert's router logit, the k experts of highest probability, whose probabilities are divided by
 * their sum when norm_topk (Mixtral always; Qwen: norm_topk_prob). Routing decides which matrix products run,
 * so it is host work on the router's logits (n_tokens x n_experts values), like the batch layout. */
#ifndef SQ_RUNTIME_MOE_ROUTE_H
#define SQ_RUNTIME_MOE_ROUTE_H

#include <stdint.h>

/* logits [n_tokens][n_experts] -> for each expert e, the tokens routed to it, ascending, in
 * rows[offset[e] .. offset[e + 1]) with their weights in weight[same]; offset [n_experts + 1], rows and
 * weight [n_tokens * k]. Ties go to the lower expert index. 1 <= k <= min(n_experts, SQ_MOE_MAX_TOPK of
 * model/model.h). */
/* picked[k] = the k experts of largest logit z[n_experts], largest first, ties to the lower index: each
 * token's choice (the softmax keeps the order). */
void sq_moe_top_k(const float *z, int n_experts, int k, int *picked);

void sq_moe_route(const float *logits, int n_tokens, int n_experts, int k, int norm_topk, int32_t *offset,
                  int32_t *rows, float *weight);

#endif
