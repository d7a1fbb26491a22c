/* PLACEHOLDER: greedy only; replaced by the runtime module. */
#include <stdlib.h>

#include "core/error.h"
#include "squeeze.h"

struct sq_sampler {
    int vocab;
};
sq_sampler_params sq_sampler_default_params(void) {
    return (sq_sampler_params){0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
}
sq_error *sq_sampler_create(const sq_sampler_params *params, int vocab_size, sq_sampler **out) {
    (void)params;
    *out = malloc(sizeof **out);
    if (!*out) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    (*out)->vocab = vocab_size;
    return NULL;
}
int32_t sq_sampler_sample(sq_sampler *s, float *logits, const int32_t *history, int n_history) {
    (void)history, (void)n_history;
    int best = 0;
    for (int i = 1; i < s->vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}
void sq_sampler_free(sq_sampler *s) { free(s); }
