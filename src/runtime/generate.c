/* PLACEHOLDER: replaced by the runtime module. */
#include "core/error.h"
#include "squeeze.h"
sq_error *sq_generate(sq_context *ctx, const char *prompt, int n_predict, const sq_sampler_params *params,
                      sq_text_callback on_text, void *user, sq_generate_stats *stats) {
    (void)ctx, (void)prompt, (void)n_predict, (void)params, (void)on_text, (void)user, (void)stats;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "generation not built yet");
}
