/* Drafts from a model: a smaller model with the same vocabulary in its own context, or the target itself with
 * some blocks skipped (self-speculation, Zhang et al. 2023 "Draft & Verify"). A chain samples each token from
 * the draft's distribution, filtered as the target's is, and keeps that distribution for the acceptance test;
 * a tree takes the draft's `width` best tokens at each position of its greedy chain (the chain follows the
 * best), choices the target then tests as given candidates.
 *
 * Several sequences draft together (a server's decoding requests): one forward call brings every job's
 * sequence up to its root, then one forward call per draft position carries each unfinished job's latest
 * draft token. A single sequence (sq_decoder) is the case of one job.
 *
 * Cache discipline: a self-draft writes its tokens into the target's own sequence (the blocks it runs store
 * keys and values at the slots after the target's tokens, attending to the target's full-model keys of the
 * accepted text) and truncates them away before returning. A separate draft model keeps each sequence equal
 * to a prefix of the tokens it last saw (`seen`): each proposal first truncates it to the part the target
 * kept, then feeds what it has not seen. */
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
    int vocab;           /* the decoder's distributions' length */
    int n_text;          /* ids the tokenizer decodes */
    int draft_vocab;     /* the draft model's logits */
    int n_ctx, n_seqs;
    int32_t *seen; /* [n_seqs][n_ctx + SQ_SPEC_MAX_K] per sequence: the tokens and drafts it last saw, which
                      its cache holds a prefix of (without skip), and the sampler's history */
    int *n_seen;   /* [n_seqs] entries of seen that are valid */
    /* per job of one proposal */
    float *logits;       /* [n_seqs][draft_vocab] each job's latest logits */
    double *dist;        /* [draft_vocab] */
    sq_seq_batch *batch; /* [n_seqs] */
    int *start;          /* [n_seqs] the sequence's length in the draft's cache before the proposal */
    int *prev;           /* [n_seqs] the node the next position's tokens hang below (-1: the root) */
    int *done;           /* [n_seqs] non-zero: the job's proposal is complete */
    int32_t *fed;        /* [n_seqs] the draft token fed next */
} model_draft;

static int32_t *seen_of(model_draft *m, int seq) {
    return m->seen + (size_t)seq * (m->n_ctx + SQ_SPEC_MAX_K);
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

/* Decides job j's token(s) at position d from its latest logits into its tree; returns the token the chain
 * continues with, or -1 when there is none. */
static int32_t draft_position(model_draft *m, const spec_job *job, int j, int d) {
    float *logits = m->logits + (size_t)j * m->draft_vocab;
    for (int i = m->n_text; i < m->draft_vocab; i++) logits[i] = -INFINITY; /* ids the tokenizer lacks */
    const spec_request *req = &job->req;
    spec_tree *out = job->out;
    if (out->sampled) {
        sq_sampler_dist(job->sampler, logits, seen_of(m, job->seq), req->n + d, m->dist);
        int32_t next = sq_sampler_draw(job->sampler, m->dist);
        if (next < 0) return -1;
        double *q = out->q + (size_t)d * m->vocab;
        int shared = m->vocab < m->draft_vocab ? m->vocab : m->draft_vocab;
        memcpy(q, m->dist, (size_t)shared * sizeof *q);
        for (int i = shared; i < m->vocab; i++) q[i] = 0;
        out->token[out->n] = next;
        out->parent[out->n] = m->prev[j];
        out->depth[out->n] = d;
        m->prev[j] = out->n++;
        return next;
    }
    /* room for this position's candidates, keeping one node for each later position */
    int room = req->max_nodes - out->n - (req->k - d - 1), w = req->width < room ? req->width : room;
    int32_t best[SQ_SPEC_MAX_WIDTH];
    int found = top_ids(logits, m->draft_vocab, w, best);
    if (found == 0) return -1;
    int main_node = out->n;
    for (int i = 0; i < found; i++) {
        out->token[out->n] = best[i];
        out->parent[out->n] = m->prev[j];
        out->depth[out->n++] = d;
    }
    m->prev[j] = main_node;
    return best[0];
}

static SQ_NODISCARD sq_error *draft_forward(model_draft *m, int n) {
    sq_forward_options o = {.skip_layers = m->skip};
    return sq_error_wrap(sq_forward_ex(m->ctx, m->batch, n, &o), "draft");
}

static SQ_NODISCARD sq_error *propose_all(model_draft *m, spec_job *jobs, int n_jobs) {
    /* bring every sequence up to its root */
    for (int j = 0; j < n_jobs; j++) {
        const spec_request *req = &jobs[j].req;
        const int seq = jobs[j].seq, n = req->n;
        int32_t *seen = seen_of(m, seq);
        int start;
        if (m->skip) {
            start = sq_seq_len(m->ctx, seq); /* the target's tokens: all but the root */
        } else {
            int len = sq_seq_len(m->ctx, seq);
            if (len > m->n_seen[seq]) len = m->n_seen[seq];
            start = 0;
            while (start < len && start < n - 1 && seen[start] == req->tokens[start]) start++;
            SQ_TRY(sq_seq_truncate(m->ctx, seq, start));
        }
        memcpy(seen, req->tokens, (size_t)n * sizeof *seen);
        m->n_seen[seq] = n;
        m->start[j] = start;
        m->prev[j] = -1;
        m->done[j] = 0;
        jobs[j].out->n = 0;
        jobs[j].out->sampled = req->width <= 1;
        m->batch[j] = (sq_seq_batch){.seq_id = seq,
                                     .tokens = req->tokens + start,
                                     .n_tokens = n - start,
                                     .logits_mode = SQ_LOGITS_LAST,
                                     .logits = m->logits + (size_t)j * m->draft_vocab};
    }
    SQ_TRY(draft_forward(m, n_jobs));
    /* then one position of every unfinished job per forward call */
    for (int d = 0;; d++) {
        int n_b = 0;
        for (int j = 0; j < n_jobs; j++) {
            if (m->done[j]) continue;
            const spec_request *req = &jobs[j].req;
            int32_t next = draft_position(m, &jobs[j], j, d);
            if (next < 0 || d + 1 == req->k) { /* the last token's distribution is not needed */
                m->done[j] = 1;
                if (next >= 0) seen_of(m, jobs[j].seq)[req->n + d] = next;
                continue;
            }
            seen_of(m, jobs[j].seq)[req->n + d] = next;
            m->n_seen[jobs[j].seq] = req->n + d + 1;
            m->fed[j] = next;
            m->batch[n_b++] = (sq_seq_batch){.seq_id = jobs[j].seq,
                                             .tokens = &m->fed[j],
                                             .n_tokens = 1,
                                             .logits_mode = SQ_LOGITS_LAST,
                                             .logits = m->logits + (size_t)j * m->draft_vocab};
        }
        if (n_b == 0) return NULL;
        SQ_TRY(draft_forward(m, n_b));
    }
}

static SQ_NODISCARD sq_error *model_propose(spec_draft *base, spec_job *jobs, int n_jobs) {
    model_draft *m = (model_draft *)base;
    if (n_jobs > m->n_seqs)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "speculative: %d sequences to draft for, the draft's context has %d", n_jobs,
                         m->n_seqs);
    for (int j = 0; j < n_jobs; j++)
        if (jobs[j].seq < 0 || jobs[j].seq >= m->n_seqs || jobs[j].req.n < 1 || jobs[j].req.n > m->n_ctx ||
            jobs[j].req.k < 1 || jobs[j].req.k > SQ_SPEC_MAX_K ||
            (jobs[j].req.width <= 1 && !jobs[j].sampler))
            return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: draft job %d is malformed (sequence %d)", j,
                             jobs[j].seq);
    sq_error *err = propose_all(m, jobs, n_jobs);
    if (m->skip) /* the target's sequences hold their tokens again, also after a failure */
        for (int j = 0; j < n_jobs; j++) {
            sq_error *e = sq_seq_truncate(m->ctx, jobs[j].seq, m->start[j]);
            if (!err)
                err = e;
            else
                sq_error_free(e);
        }
    if (err)
        for (int j = 0; j < n_jobs; j++) jobs[j].out->n = 0;
    return err;
}

static void model_release(spec_draft *base, int seq) {
    model_draft *m = (model_draft *)base;
    if (seq < 0 || seq >= m->n_seqs) return;
    m->n_seen[seq] = 0;
    sq_error_free(sq_seq_truncate(m->ctx, seq, 0)); /* to 0 it cannot fail */
}

static void model_free(spec_draft *base) {
    model_draft *m = (model_draft *)base;
    free(m->skip);
    free(m->seen);
    free(m->n_seen);
    free(m->logits);
    free(m->dist);
    free(m->batch);
    free(m->start);
    free(m->prev);
    free(m->done);
    free(m->fed);
    free(m);
}

/* skip: [n_layers] or NULL (copied) */
static SQ_NODISCARD sq_error *create(sq_context *ctx, const unsigned char *skip, int vocab, int n_text,
                                     spec_draft **out) {
    *out = NULL;
    model_draft *m = calloc(1, sizeof *m);
    if (!m) return sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory");
    m->base =
        (spec_draft){.propose = model_propose, .release = skip ? NULL : model_release, .free = model_free};
    m->ctx = ctx;
    m->vocab = vocab;
    m->n_text = n_text;
    m->draft_vocab = ctx->model->cfg.vocab_size;
    m->n_ctx = sq_context_n_ctx(ctx);
    m->n_seqs = ctx->n_seq_max;
    const int n_layers = ctx->model->cfg.n_layers;
    const size_t S = (size_t)m->n_seqs;
    m->seen = malloc(S * ((size_t)m->n_ctx + SQ_SPEC_MAX_K) * sizeof *m->seen);
    m->n_seen = calloc(S, sizeof *m->n_seen);
    m->logits = malloc(S * (size_t)m->draft_vocab * sizeof *m->logits);
    m->dist = malloc((size_t)m->draft_vocab * sizeof *m->dist);
    m->batch = malloc(S * sizeof *m->batch);
    m->start = malloc(S * sizeof *m->start);
    m->prev = malloc(S * sizeof *m->prev);
    m->done = malloc(S * sizeof *m->done);
    m->fed = malloc(S * sizeof *m->fed);
    if (skip && (m->skip = malloc((size_t)n_layers))) memcpy(m->skip, skip, (size_t)n_layers);
    if (!m->seen || !m->n_seen || !m->logits || !m->dist || !m->batch || !m->start || !m->prev || !m->done ||
        !m->fed || (skip && !m->skip)) {
        model_free(&m->base);
        return sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory for the draft");
    }
    *out = &m->base;
    return NULL;
}

sq_error *spec_draft_model_create(sq_context *ctx, int vocab, int n_text, spec_draft **out) {
    return create(ctx, NULL, vocab, n_text, out);
}

sq_error *spec_draft_self_create(sq_context *ctx, const int32_t *skip_layers, int n_skip, int vocab,
                                 int n_text, spec_draft **out) {
    *out = NULL;
    const int n_layers = ctx->model->cfg.n_layers;
    if (n_skip <= 0 || !skip_layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: self-speculation needs blocks to skip");
    unsigned char *skip = calloc((size_t)n_layers, 1);
    if (!skip) return sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory");
    int n_skipped = 0;
    for (int i = 0; i < n_skip; i++) {
        int l = skip_layers[i];
        if (l < 0 || l >= n_layers) {
            free(skip);
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "speculative: skipped block %d is outside the model's blocks 0..%d", l,
                             n_layers - 1);
        }
        n_skipped += !skip[l];
        skip[l] = 1;
    }
    sq_error *err =
        n_skipped == n_layers
            ? sq_errorf(SQ_ERR_INVALID_ARG, "speculative: a self-draft cannot skip all %d blocks", n_layers)
            : create(ctx, skip, vocab, n_text, out);
    free(skip);
    return err;
}

sq_error *spec_draft_sampler_create(const sq_sampler_params *params, int draft_vocab, sq_sampler **out) {
    sq_sampler_params dp = *params;
    dp.seed = params->seed ^ 0x5bd1e9955bd1e995ull;
    return sq_sampler_create(&dp, draft_vocab, out);
}
