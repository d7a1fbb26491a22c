#include "runtime/moe_route.h"

#include <math.h>
#include <string.h>

#include "model/model.h"

/* Token t's k experts of highest logit (ties: the lower index) into picked[k]; returns the sum of their
 * exp(z - max) and sets *total to that of all experts and *max to the largest logit. */
void sq_moe_top_k(const float *z, int n_experts, int k, int *picked) {
    for (int j = 0; j < k; j++) { /* k is small: repeated selection */
        int best = -1;
        for (int e = 0; e < n_experts; e++) {
            int used = 0;
            for (int i = 0; i < j; i++) used |= picked[i] == e;
            if (!used && (best < 0 || z[e] > z[best])) best = e;
        }
        picked[j] = best;
    }
}

static double top_k(const float *z, int n_experts, int k, int *picked, double *total, double *max) {
    double m = z[0], chosen = 0, all = 0;
    for (int e = 1; e < n_experts; e++) m = z[e] > m ? z[e] : m;
    for (int e = 0; e < n_experts; e++) all += exp((double)z[e] - m);
    sq_moe_top_k(z, n_experts, k, picked);
    for (int j = 0; j < k; j++) chosen += exp((double)z[picked[j]] - m);
    *total = all;
    *max = m;
    return chosen;
}

void sq_moe_route(const float *logits, int n_tokens, int n_experts, int k, int norm_topk, int32_t *offset,
                  int32_t *rows, float *weight) {
    int picked[SQ_MOE_MAX_TOPK];
    double total, max;
    memset(offset, 0, (size_t)(n_experts + 1) * sizeof *offset);
    for (int t = 0; t < n_tokens; t++) { /* count each expert's tokens */
        top_k(logits + (size_t)t * n_experts, n_experts, k, picked, &total, &max);
        for (int j = 0; j < k; j++) offset[picked[j] + 1]++;
    }
    for (int e = 1; e <= n_experts; e++) offset[e] += offset[e - 1];
    /* write each token at its experts' next place: offset[e] walks to the end of e's rows (= start of e+1) */
    for (int t = 0; t < n_tokens; t++) {
        const float *z = logits + (size_t)t * n_experts;
        const double chosen = top_k(z, n_experts, k, picked, &total, &max);
        for (int j = 0; j < k; j++) {
            const int e = picked[j];
            const double p = exp((double)z[e] - max);
            rows[offset[e]] = t;
            weight[offset[e]++] = (float)(p / (norm_topk ? chosen : total));
        }
    }
    for (int e = n_experts; e > 0; e--) offset[e] = offset[e - 1];
    offset[0] = 0;
}
