/* Data-free distillation data: the teacher samples its own text (LLM-QAT, Liu et al. 2023). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "squeeze.h"

enum { GEN_BATCH = 16 };

SQ_NODISCARD sq_error *sq_generate_samples(const sq_model *teacher, int n_samples, int seq_len, uint64_t seed,
                                           int n_threads, sq_calib_samples *out) {
    memset(out, 0, sizeof *out);
    sq_model_info info;
    sq_model_get_info(teacher, &info);
    if (n_samples < 1 || seq_len < 2 || seq_len > info.max_seq_len ||
        (int64_t)n_samples * seq_len > (1 << 28))
        return sq_errorf(SQ_ERR_INVALID_ARG, "generate: %d samples of %d tokens (2 .. %d tokens each)",
                         n_samples, seq_len, info.max_seq_len);
    const sq_tokenizer *tok = sq_model_tokenizer(teacher);
    const int bos = tok && sq_tokenizer_adds_bos(tok) ? sq_tokenizer_bos(tok) : -1;
    const int batch = n_samples < GEN_BATCH ? n_samples : GEN_BATCH, V = info.vocab_size;
    sq_context *ctx = NULL;
    SQ_TRY(sq_context_create(
        teacher, &(sq_context_options){.n_ctx = seq_len, .n_seq_max = batch, .n_threads = n_threads}, &ctx));
    int32_t *ids = malloc((size_t)n_samples * seq_len * sizeof *ids);
    float *logits = malloc((size_t)batch * V * sizeof *logits);
    sq_sampler *samplers[GEN_BATCH] = {0};
    sq_error *err = ids && logits ? NULL : sq_errorf(SQ_ERR_NOMEM, "generate: out of memory");
    uint64_t rng = seed ^ 0x67656e65726174ull;
    for (int s0 = 0; s0 < n_samples && !err; s0 += batch) {
        const int nb = n_samples - s0 < batch ? n_samples - s0 : batch;
        sq_seq_batch sb[GEN_BATCH];
        for (int b = 0; b < nb && !err; b++) {
            int32_t *row = ids + (size_t)(s0 + b) * seq_len;
            int p = 0;
            if (bos >= 0) row[p++] = bos;
            row[p] = (int32_t)sq_rng_below(&rng, (uint64_t)V);
            sq_sampler_params sp = {
                .temperature = 1, .top_p = 1, .repeat_penalty = 1, .seed = sq_splitmix64(&rng)};
            sq_sampler_free(samplers[b]);
            samplers[b] = NULL;
            err = sq_seq_truncate(ctx, b, 0);
            if (!err) err = sq_sampler_create(&sp, V, &samplers[b]);
            /* the prompt (BOS and the random first token) but its last token, which the loop below feeds */
            if (!err && p > 0) {
                sb[b] =
                    (sq_seq_batch){.seq_id = b, .tokens = row, .n_tokens = p, .logits_mode = SQ_LOGITS_NONE};
                err = sq_forward(ctx, &sb[b], 1);
            }
        }
        for (int pos = bos >= 0 ? 1 : 0; pos < seq_len - 1 && !err; pos++) {
            for (int b = 0; b < nb; b++)
                sb[b] = (sq_seq_batch){.seq_id = b,
                                       .tokens = ids + (size_t)(s0 + b) * seq_len + pos,
                                       .n_tokens = 1,
                                       .logits_mode = SQ_LOGITS_LAST,
                                       .logits = logits + (size_t)b * V};
            err = sq_forward(ctx, sb, nb);
            for (int b = 0; b < nb && !err; b++) {
                int32_t *row = ids + (size_t)(s0 + b) * seq_len;
                int32_t next = sq_sampler_sample(samplers[b], logits + (size_t)b * V, row, pos + 1);
                if (next < 0)
                    err = sq_errorf(SQ_ERR_INTERNAL, "generate: the teacher's logits are not numbers");
                else
                    row[pos + 1] = next;
            }
        }
    }
    if (!err) err = sq_calib_samples_from_ids(ids, n_samples, seq_len, out);
    for (int b = 0; b < GEN_BATCH; b++) sq_sampler_free(samplers[b]);
    free(ids);
    free(logits);
    sq_context_free(ctx);
    return err;
}
