/* PLACEHOLDER: replaced by the forward pass. */
#include "core/error.h"
#include "squeeze.h"
sq_error *sq_context_create(const sq_model *model, const sq_context_options *opts, sq_context **out) {
    (void)model, (void)opts;
    *out = NULL;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "forward pass not built yet");
}
void sq_context_free(sq_context *ctx) { (void)ctx; }
sq_error *sq_forward(sq_context *ctx, const sq_seq_batch *seqs, int n_seqs) {
    (void)ctx, (void)seqs, (void)n_seqs;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "forward pass not built yet");
}
int sq_seq_len(const sq_context *ctx, int seq_id) { return (void)ctx, (void)seq_id, 0; }
sq_error *sq_seq_truncate(sq_context *ctx, int seq_id, int new_len) {
    (void)ctx, (void)seq_id, (void)new_len;
    return sq_errorf(SQ_ERR_UNSUPPORTED, "forward pass not built yet");
}
int sq_context_n_ctx(const sq_context *ctx) { return (void)ctx, 0; }
size_t sq_context_kv_bytes(const sq_context *ctx) { return (void)ctx, 0; }
