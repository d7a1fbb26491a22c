/* sq_spec_search: greedy forward selection of the blocks a self-draft skips (squeeze.h states the method).
 * The full model's argmax at every calibration position is computed once; each candidate set is then run
 * over the same windows with sq_forward_ex's skip mask, in chunks whose logits fit a modest buffer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"

/* Rows of logits one forward call of the search asks for. */
#define SEARCH_CHUNK 64

typedef struct search {
    sq_context *ctx;
    const int32_t *ids;
    int n_ctx, n_windows, vocab, n_layers;
    float *logits;       /* [SEARCH_CHUNK][vocab] */
    int32_t *reference;  /* [n_windows][n_ctx] the full model's argmax after each position */
    unsigned char *skip; /* [n_layers] */
} search;

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Runs every window with s->skip, writing each position's argmax to out[n_windows][n_ctx]. */
static SQ_NODISCARD sq_error *run_windows(search *s, int32_t *out) {
    sq_forward_options o = {.skip_layers = s->skip};
    for (int w = 0; w < s->n_windows; w++) {
        SQ_TRY(sq_seq_truncate(s->ctx, 0, 0));
        for (int at = 0; at < s->n_ctx; at += SEARCH_CHUNK) {
            int n = s->n_ctx - at < SEARCH_CHUNK ? s->n_ctx - at : SEARCH_CHUNK;
            sq_seq_batch b = {.seq_id = 0,
                              .tokens = s->ids + (size_t)w * s->n_ctx + at,
                              .n_tokens = n,
                              .logits_mode = SQ_LOGITS_ALL,
                              .logits = s->logits};
            SQ_TRY(sq_forward_ex(s->ctx, &b, 1, &o));
            for (int i = 0; i < n; i++)
                out[(size_t)w * s->n_ctx + at + i] = argmax(s->logits + (size_t)i * s->vocab, s->vocab);
        }
    }
    return NULL;
}

/* The fraction of positions (the last of each window predicts nothing checked) where the set agrees. */
static SQ_NODISCARD sq_error *agreement(search *s, int32_t *scratch, double *a) {
    SQ_TRY(run_windows(s, scratch));
    int64_t same = 0, total = 0;
    for (int w = 0; w < s->n_windows; w++)
        for (int i = 0; i + 1 < s->n_ctx; i++, total++)
            same += scratch[(size_t)w * s->n_ctx + i] == s->reference[(size_t)w * s->n_ctx + i];
    *a = (double)same / (double)total;
    return NULL;
}

/* Leviathan et al.'s estimate at the best k for agreement a and draft cost c per token. */
static void best_k(double a, double c, int *k, double *speedup) {
    *k = 1;
    *speedup = 0;
    for (int j = 1; j <= SQ_SPEC_MAX_K; j++) {
        double tokens = a < 1 ? (1 - pow(a, j + 1)) / (1 - a) : j + 1;
        double x = tokens / (j * c + 1);
        if (x > *speedup) {
            *speedup = x;
            *k = j;
        }
    }
}

static SQ_NODISCARD sq_error *run_search(search *s, const sq_spec_search_options *o, int max_skip,
                                         sq_spec_search_step *steps, int *n_steps, int32_t *scratch) {
    SQ_TRY(run_windows(s, s->reference));
    int64_t done = 0, total = 0;
    for (int r = 0; r < max_skip; r++) total += s->n_layers - r;
    for (int r = 0; r < max_skip; r++) {
        int best = -1;
        double best_a = -1;
        for (int l = 0; l < s->n_layers; l++) {
            if (s->skip[l]) continue;
            s->skip[l] = 1;
            double a;
            sq_error *err = agreement(s, scratch, &a);
            s->skip[l] = 0;
            SQ_TRY(err);
            if (a > best_a) {
                best_a = a;
                best = l;
            }
            if (o->progress) o->progress(o->progress_user, ++done, total);
        }
        s->skip[best] = 1;
        steps[r] = (sq_spec_search_step){.layer = best, .agreement = best_a};
        best_k(best_a, (double)(s->n_layers - r - 1) / s->n_layers, &steps[r].k, &steps[r].est_speedup);
        *n_steps = r + 1;
    }
    return NULL;
}

sq_error *sq_spec_search(const sq_model *model, const int32_t *ids, int64_t n_ids,
                         const sq_spec_search_options *opts, sq_spec_search_step *steps, int *n_steps) {
    *n_steps = 0;
    sq_spec_search_options o = opts ? *opts : (sq_spec_search_options){0};
    const int n_layers = model->cfg.n_layers;
    int n_ctx = o.n_ctx ? o.n_ctx : 128;
    if (n_ctx > model->cfg.max_seq_len) n_ctx = model->cfg.max_seq_len;
    int max_skip = o.max_skip ? o.max_skip : n_layers / 2;
    if (n_layers < 2) return sq_errorf(SQ_ERR_INVALID_ARG, "spec search: the model has %d block", n_layers);
    if (n_ctx < 2 || max_skip < 1 || max_skip >= n_layers || o.n_windows < 0)
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "spec search: windows of %d tokens and %d rounds (of a model of %d blocks) cannot run", n_ctx,
            max_skip, n_layers);
    if (!ids || n_ids < n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "spec search: %lld ids do not fill one window of %d",
                         (long long)n_ids, n_ctx);
    int n_windows = o.n_windows ? o.n_windows : 2;
    if (n_windows > n_ids / n_ctx) n_windows = (int)(n_ids / n_ctx);
    search s = {.ids = ids,
                .n_ctx = n_ctx,
                .n_windows = n_windows,
                .vocab = model->cfg.vocab_size,
                .n_layers = n_layers};
    sq_context_options co = {
        .n_ctx = n_ctx, .n_seq_max = 1, .n_threads = o.n_threads, .n_batch_max = SEARCH_CHUNK};
    sq_error *err = sq_context_create(model, &co, &s.ctx);
    int32_t *scratch = NULL;
    if (!err) {
        s.logits = malloc((size_t)SEARCH_CHUNK * s.vocab * sizeof *s.logits);
        s.reference = malloc((size_t)n_windows * n_ctx * sizeof *s.reference);
        scratch = malloc((size_t)n_windows * n_ctx * sizeof *scratch);
        s.skip = calloc((size_t)n_layers, 1);
        if (!s.logits || !s.reference || !scratch || !s.skip)
            err = sq_errorf(SQ_ERR_NOMEM, "spec search: out of memory");
    }
    if (!err) err = run_search(&s, &o, max_skip, steps, n_steps, scratch);
    sq_context_free(s.ctx);
    free(s.logits);
    free(s.reference);
    free(scratch);
    free(s.skip);
    return err;
}
