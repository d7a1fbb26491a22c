/* Drafts from a model: a smaller model with the same vocabulary in its own context, or the target itself with
 * some blocks skipped (self-speculation, Zhang et al. 2023 "Draft & Verify"). A chain samples each token from
 * the draft's distribution, filtered as the target's is, and keeps that distribution for the acceptance test;
 * a tree takes the draft's `width` best tokens at each position of its greedy chain (the chain follows the
 * best), choices the target then tests as given candidates.
 *
 * Cache discipline: a self-draft writes its tokens into the target's own sequence (the blocks it runs store
 * keys and values at the slots after the target's tokens, attending to the target's full-model keys of the
 * accepted text) and truncates them away before returning. A separate draft model keeps its sequence 0 equal
 * to a prefix of the tokens it last saw: each proposal first truncates it to the part the target kept, then
 * feeds what it has not seen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/draft.h"
#include "runtime/sampler.h"

typedef struct model_draft {
    spec_draft base;
    sq_context *ctx;
    unsigned char *skip; /* [n_layers] blocks skipped, or NULL: a separate draft model */
    sq_sampler *sampler;
    int vocab;       /* the decoder's distributions' length */
    int n_text;      /* ids the tokenizer decodes */
    int draft_vocab; /* the draft model's logits */
    int n_ctx;
    float *logits;    /* [draft_vocab] */
    double *dist;     /* [draft_vocab] */
    int32_t *cached;  /* [n_ctx] the tokens in the draft model's sequence 0 (without skip) */
    int32_t *history; /* [n_ctx + SQ_SPEC_MAX_K] the sequence and the chain drafted so far */
} model_draft;

/* Runs tokens[0..n) after the sequence's cached tokens, leaving the last one's logits in m->logits, with ids
 * the tokenizer cannot decode masked out. */
static SQ_NODISCARD sq_error *draft_forward(model_draft *m, const int32_t *tokens, int n) {
    sq_seq_batch b = {
        .seq_id = 0, .tokens = tokens, .n_tokens = n, .logits_mode = SQ_LOGITS_LAST, .logits = m->logits};
    sq_forward_options o = {.skip_layers = m->skip};
    SQ_TRY(sq_error_wrap(sq_forward_ex(m->ctx, &b, 1, &o), "draft"));
    for (int i = m->n_text; i < m->draft_vocab; i++) m->logits[i] = -INFINITY;
    return NULL;
}

/* The w best ids of logits (ties to the lower id), best first; returns how many there are (ids above -inf).
 */
static int top_ids(const float *logits, int n, int w, int32_t *best) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!(logits[i] > -INFINITY)) continue;
        int at = m < w ? m++ : w;
        while (at > 0 && logits[i] > logits[best[at - 1]]) at--;
        if (at >= w) continue;
        memmove(best + at + 1, best + at, (size_t)(m - 1 - at) * sizeof *best);
        best[at] = i;
    }
    return m;
}

static SQ_NODISCARD sq_error *model_propose(spec_draft *base, const spec_request *req, spec_tree *out) {
    model_draft *m = (model_draft *)base;
    const int n = req->n;
    out->n = 0;
    out->sampled = req->width <= 1;
    int start;
    if (m->skip) {
        start = sq_seq_len(m->ctx, 0); /* the target's tokens: all but the root */
    } else {
        int len = sq_seq_len(m->ctx, 0);
        start = 0;
        while (start < len && start < n - 1 && m->cached[start] == req->tokens[start]) start++;
        SQ_TRY(sq_seq_truncate(m->ctx, 0, start));
        memcpy(m->cached + start, req->tokens + start, (size_t)(n - start) * sizeof *m->cached);
    }
    SQ_TRY(draft_forward(m, req->tokens + start, n - start));
    memcpy(m->history, req->tokens, (size_t)n * sizeof *m->history);

    int prev = -1;
    for (int d = 0; d < req->k; d++) {
        int32_t next;
        if (out->sampled) {
            sq_sampler_dist(m->sampler, m->logits, m->history, n + d, m->dist);
            next = sq_sampler_draw(m->sampler, m->dist);
            if (next < 0) break;
            double *q = out->q + (size_t)d * m->vocab;
            int shared = m->vocab < m->draft_vocab ? m->vocab : m->draft_vocab;
            memcpy(q, m->dist, (size_t)shared * sizeof *q);
            for (int i = shared; i < m->vocab; i++) q[i] = 0;
            out->token[out->n] = next;
            out->parent[out->n] = prev;
            out->depth[out->n] = d;
            prev = out->n++;
        } else {
            /* room for this position's candidates, keeping one node for each later position */
            int room = req->max_nodes - out->n - (req->k - d - 1), w = req->width < room ? req->width : room;
            int32_t best[SQ_SPEC_MAX_WIDTH];
            int found = top_ids(m->logits, m->draft_vocab, w, best);
            if (found == 0) break;
            int main_node = out->n;
            for (int i = 0; i < found; i++) {
                out->token[out->n] = best[i];
                out->parent[out->n] = prev;
                out->depth[out->n++] = d;
            }
            next = best[0];
            prev = main_node;
        }
        m->history[n + d] = next;
        if (d + 1 == req->k) break; /* the last token's distribution is not needed */
        if (!m->skip) m->cached[n + d] = next;
        SQ_TRY(draft_forward(m, &next, 1));
    }
    if (m->skip) SQ_TRY(sq_seq_truncate(m->ctx, 0, start));
    return NULL;
}

static void model_free(spec_draft *base) {
    model_draft *m = (model_draft *)base;
    sq_sampler_free(m->sampler);
    free(m->skip);
    free(m->logits);
    free(m->dist);
    free(m->cached);
    free(m->history);
    free(m);
}

sq_error *spec_draft_model_create(sq_context *ctx, const unsigned char *skip, const sq_sampler_params *params,
                                  int vocab, int n_text, spec_draft **out) {
    *out = NULL;
    model_draft *m = calloc(1, sizeof *m);
    if (!m) return sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory");
    m->base = (spec_draft){.propose = model_propose, .free = model_free};
    m->ctx = ctx;
    m->vocab = vocab;
    m->n_text = n_text;
    m->draft_vocab = ctx->model->cfg.vocab_size;
    m->n_ctx = sq_context_n_ctx(ctx);
    const int n_layers = ctx->model->cfg.n_layers;
    /* the draft's own generator: its draws must not disturb the target's */
    sq_sampler_params dp = *params;
    dp.seed = params->seed ^ 0x5bd1e9955bd1e995ull;
    sq_error *err = sq_sampler_create(&dp, m->draft_vocab, &m->sampler);
    if (!err && !skip) err = sq_seq_truncate(ctx, 0, 0); /* its sequence starts empty, as m->cached says */
    if (!err) {
        m->logits = malloc((size_t)m->draft_vocab * sizeof *m->logits);
        m->dist = malloc((size_t)m->draft_vocab * sizeof *m->dist);
        m->cached = malloc((size_t)m->n_ctx * sizeof *m->cached);
        m->history = malloc(((size_t)m->n_ctx + SQ_SPEC_MAX_K) * sizeof *m->history);
        if (skip && (m->skip = malloc((size_t)n_layers))) memcpy(m->skip, skip, (size_t)n_layers);
        if (!m->logits || !m->dist || !m->cached || !m->history || (skip && !m->skip))
            err = sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory for the draft");
    }
    if (err) {
        model_free(&m->base);
        return err;
    }
    *out = &m->base;
    return NULL;
}
