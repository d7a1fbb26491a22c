/* The decoder: generation one target step at a time, plain or speculative (squeeze.h describes the rules).
 *
 * Between steps the target's sequence holds every token but the last, the root of the next step. A step asks
 * the draft for a tree continuing the root, runs root and tree through the target in one forward pass (all
 * logits; a chain as plain consecutive tokens, a tree with sq_seq_batch.parents), then walks down from the
 * root: at each node the target's distribution p (sq_sampler_dist of that node's logits) decides among the
 * node's children, and the walk ends at the first node where none is accepted (a draw from the residual) or
 * at a leaf (a plain sq_sampler_sample of its logits: without a draft a step is exactly plain decoding).
 * Finally the sequence keeps the root and the accepted nodes (truncation for a chain, sq_seq_keep_path for a
 * tree). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/context.h"
#include "runtime/draft.h"
#include "runtime/sampler.h"

struct sq_decoder {
    sq_context *ctx;
    sq_sampler *sampler;
    spec_draft *draft;         /* NULL: plain decoding */
    sq_sampler *draft_sampler; /* a model draft's own (spec_draft_sampler_create) */
    int k, k_auto, width;
    int vocab, n_text, n_ctx;
    int32_t *tokens; /* [n_ctx] the prompt and the sampled tokens */
    int n, started;
    int max_nodes; /* tree nodes one step verifies at most */
    float *logits; /* [1 + max_nodes][vocab] the target's logits of one step */
    double *p;     /* [vocab] the target's distribution at the node being decided */
    double *r;     /* [vocab] what a rejection leaves of it */
    double *q;     /* [SQ_SPEC_MAX_K][vocab] the draft's distributions (spec_tree.q) */
    spec_tree tree;
    int32_t batch[1 + SPEC_MAX_NODES];
    int32_t parents[1 + SPEC_MAX_NODES];
    int path[1 + SQ_SPEC_MAX_K];
    sq_spec_stats stats;
    double prefill_seconds;
};

/* Token ids a model can both score and decode: its logits' length, or its tokenizer's when smaller. */
static int usable_ids(const sq_model *m) {
    const sq_tokenizer *t = sq_model_tokenizer(m);
    int n = m->cfg.vocab_size;
    return t && sq_tokenizer_vocab_size(t) < n ? sq_tokenizer_vocab_size(t) : n;
}

sq_error *sq_spec_check_vocab(const sq_model *target, const sq_model *draft) {
    const sq_tokenizer *a = sq_model_tokenizer(target), *b = sq_model_tokenizer(draft);
    const int n = usable_ids(target);
    if (usable_ids(draft) != n)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "speculative: the draft has %d token ids, the target %d: a draft must share the "
                         "target's vocabulary",
                         usable_ids(draft), n);
    if (!a != !b)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "speculative: the %s model has a tokenizer and the %s none: their vocabularies "
                         "cannot be compared",
                         a ? "target" : "draft", a ? "draft" : "target");
    for (int i = 0; a && i < n; i++) {
        const char *x = sq_tokenizer_piece(a, i), *y = sq_tokenizer_piece(b, i);
        if (strcmp(x ? x : "", y ? y : ""))
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "speculative: token %d is \"%s\" in the target's vocabulary but \"%s\" in the "
                             "draft's: a draft must share the target's vocabulary",
                             i, x ? x : "", y ? y : "");
    }
    return NULL;
}

static SQ_NODISCARD sq_error *make_draft(sq_decoder *d, const sq_sampler_params *params,
                                         const sq_spec_params *spec) {
    const sq_model *model = d->ctx->model;
    switch (spec->draft) {
    case SQ_DRAFT_NONE:
        return NULL;
    case SQ_DRAFT_MODEL: {
        if (!spec->draft_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: a draft model needs its context (draft_ctx)");
        if (spec->draft_ctx == d->ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "speculative: the draft needs a context of its own (or use SQ_DRAFT_SELF)");
        SQ_TRY(sq_spec_check_vocab(model, spec->draft_ctx->model));
        if (sq_context_n_ctx(spec->draft_ctx) < d->n_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "speculative: the draft's context holds %d tokens, less than the target's %d",
                             sq_context_n_ctx(spec->draft_ctx), d->n_ctx);
        SQ_TRY(spec_draft_sampler_create(params, spec->draft_ctx->model->cfg.vocab_size, &d->draft_sampler));
        return spec_draft_model_create(spec->draft_ctx, d->vocab, d->n_text, &d->draft);
    }
    case SQ_DRAFT_SELF:
        SQ_TRY(spec_draft_sampler_create(params, d->vocab, &d->draft_sampler));
        return spec_draft_self_create(d->ctx, spec->skip_layers, spec->n_skip_layers, d->vocab, d->n_text,
                                      &d->draft);
    case SQ_DRAFT_NGRAM:
        return spec_draft_ngram_create(spec->ngram_n ? spec->ngram_n : 3, NULL, &d->draft);
    }
    return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: unknown draft kind %d", (int)spec->draft);
}

void sq_decoder_free(sq_decoder *d) {
    if (!d) return;
    if (d->draft) d->draft->free(d->draft);
    sq_sampler_free(d->draft_sampler);
    sq_sampler_free(d->sampler);
    free(d->tokens);
    free(d->logits);
    free(d->p);
    free(d->r);
    free(d->q);
    free(d);
}

sq_error *sq_decoder_create(sq_context *ctx, const sq_sampler_params *params, const sq_spec_params *spec,
                            sq_decoder **out) {
    *out = NULL;
    if (!ctx || !params) return sq_errorf(SQ_ERR_INVALID_ARG, "decoder: missing context or parameters");
    sq_spec_params none = {0};
    if (!spec) spec = &none;
    int k = spec->k ? spec->k : 4;
    if (k < 1 || k > SQ_SPEC_MAX_K)
        return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: k %d is outside 1..%d", spec->k, SQ_SPEC_MAX_K);
    if (spec->tree_width < 0 || spec->tree_width > SQ_SPEC_MAX_WIDTH)
        return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: tree width %d is outside 0..%d", spec->tree_width,
                         SQ_SPEC_MAX_WIDTH);
    sq_decoder *d = calloc(1, sizeof *d);
    if (!d) return sq_errorf(SQ_ERR_NOMEM, "decoder: out of memory");
    const sq_tokenizer *tok = sq_model_tokenizer(ctx->model);
    d->ctx = ctx;
    d->k = k;
    d->k_auto = spec->k_auto;
    d->width = spec->tree_width;
    d->vocab = ctx->model->cfg.vocab_size;
    d->n_text = tok && sq_tokenizer_vocab_size(tok) < d->vocab ? sq_tokenizer_vocab_size(tok) : d->vocab;
    d->n_ctx = sq_context_n_ctx(ctx);
    d->stats.k = k;
    sq_error *err = sq_sampler_create(params, d->vocab, &d->sampler);
    if (!err) err = make_draft(d, params, spec);
    if (!err) {
        size_t v = (size_t)d->vocab;
        d->tokens = malloc((size_t)d->n_ctx * sizeof *d->tokens);
        d->max_nodes = d->draft ? (d->k_auto ? SQ_SPEC_MAX_K : k) * (d->width > 1 ? d->width : 1) : 0;
        d->logits = malloc((1 + (size_t)d->max_nodes) * v * sizeof *d->logits);
        d->p = malloc(v * sizeof *d->p);
        d->r = malloc(v * sizeof *d->r);
        d->q = malloc(SQ_SPEC_MAX_K * v * sizeof *d->q);
        if (!d->tokens || !d->logits || !d->p || !d->r || !d->q)
            err = sq_errorf(SQ_ERR_NOMEM, "decoder: out of memory for a vocabulary of %d", d->vocab);
    }
    if (err) {
        sq_decoder_free(d);
        return err;
    }
    d->tree.q = d->q;
    *out = d;
    return NULL;
}

/* Rows past the tokenizer's vocabulary (padding in some checkpoints) cannot be decoded: never sampled. */
static void mask_rows(const sq_decoder *d, float *logits, int rows) {
    for (int r = 0; r < rows; r++)
        for (int i = d->n_text; i < d->vocab; i++) logits[(size_t)r * d->vocab + i] = -INFINITY;
}

static SQ_NODISCARD sq_error *append_sample(sq_decoder *d, int32_t id) {
    if (id < 0) return sq_errorf(SQ_ERR_INTERNAL, "decoder: every logit at position %d is NaN or -inf", d->n);
    d->tokens[d->n++] = id;
    return NULL;
}

sq_error *sq_decoder_start(sq_decoder *d, const int32_t *prompt, int n_prompt) {
    if (!prompt || n_prompt < 1 || n_prompt > d->n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "decoder: the prompt has %d tokens; 1..%d fit the context",
                         n_prompt, d->n_ctx);
    d->started = 0;
    d->n = 0;
    SQ_TRY(sq_seq_truncate(d->ctx, 0, 0));
    memcpy(d->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
    sq_seq_batch b = {.seq_id = 0,
                      .tokens = prompt,
                      .n_tokens = n_prompt,
                      .logits_mode = SQ_LOGITS_LAST,
                      .logits = d->logits};
    double t0 = sq_monotonic_seconds();
    SQ_TRY(sq_forward(d->ctx, &b, 1));
    d->prefill_seconds = sq_monotonic_seconds() - t0;
    mask_rows(d, d->logits, 1);
    d->n = n_prompt;
    if (n_prompt == d->n_ctx) { /* nothing fits after it: the prompt only */
        d->started = 1;
        return NULL;
    }
    SQ_TRY(append_sample(d, sq_sampler_sample(d->sampler, d->logits, d->tokens, d->n)));
    d->started = 1;
    return NULL;
}

/* Decides among node's children (node -1: the root) with the target's distribution d->p at node: returns the
 * accepted child, or -1 with *next drawn from what the rejected children left of p. */
static int choose_child(sq_decoder *d, int node, int depth, int32_t *next) {
    const spec_tree *t = &d->tree;
    const double *p = d->p;
    double *r = d->r;
    if (!t->sampled) { /* given candidates in order */
        int32_t cands[SQ_SPEC_MAX_WIDTH];
        int index[SQ_SPEC_MAX_WIDTH], n = 0;
        for (int i = 0; i < t->n; i++)
            if (t->parent[i] == node) {
                cands[n] = t->token[i];
                index[n++] = i;
            }
        int c = sq_sampler_choose(d->sampler, p, r, cands, n, next);
        return c < 0 ? -1 : index[c];
    }
    /* one child, drawn from q */
    int c = 0;
    while (t->parent[c] != node) c++;
    return sq_sampler_accept_drawn(d->sampler, p, t->q + (size_t)depth * d->vocab, t->token[c], r, next) ? c
                                                                                                         : -1;
}

static int has_children(const spec_tree *t, int node) {
    for (int i = 0; i < t->n; i++)
        if (t->parent[i] == node) return 1;
    return 0;
}

sq_error *sq_decoder_step(sq_decoder *d, int max_new, int *n_new) {
    *n_new = 0;
    if (!d->started || d->n >= d->n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "decoder: %s",
                         d->started ? "the context is full" : "not started");
    if (max_new < 1) return sq_errorf(SQ_ERR_INVALID_ARG, "decoder: max_new %d must be >= 1", max_new);
    sq_context *ctx = d->ctx;
    const int room = d->n_ctx - d->n, limit = max_new < room ? max_new : room;
    const int base = d->n - 1; /* cached tokens; tokens[base] is the root */
    spec_tree *t = &d->tree;
    t->n = 0;
    int k = d->k < limit - 1 ? d->k : limit - 1;
    if (d->draft && k > 0) {
        int max_nodes = room; /* slots after the root's */
        if (max_nodes > ctx->n_batch_max - 1) max_nodes = ctx->n_batch_max - 1;
        if (max_nodes > d->max_nodes) max_nodes = d->max_nodes;
        if (k > max_nodes) k = max_nodes;
        spec_job job = {
            .req = {.tokens = d->tokens, .n = d->n, .k = k, .width = d->width, .max_nodes = max_nodes},
            .seq = 0,
            .sampler = d->draft_sampler,
            .out = t};
        double t0 = sq_monotonic_seconds();
        SQ_TRY(d->draft->propose(d->draft, &job, 1));
        d->stats.draft_seconds += sq_monotonic_seconds() - t0;
    }

    int chain = 1;
    d->batch[0] = d->tokens[base];
    d->parents[0] = -1;
    for (int i = 0; i < t->n; i++) {
        d->batch[1 + i] = t->token[i];
        d->parents[1 + i] = t->parent[i] + 1;
        chain &= t->parent[i] == i - 1;
    }
    sq_seq_batch b = {.seq_id = 0,
                      .tokens = d->batch,
                      .n_tokens = 1 + t->n,
                      .logits_mode = t->n ? SQ_LOGITS_ALL : SQ_LOGITS_LAST,
                      .logits = d->logits,
                      .parents = chain ? NULL : d->parents};
    double t0 = sq_monotonic_seconds();
    SQ_TRY(sq_forward(ctx, &b, 1));
    d->stats.target_seconds += sq_monotonic_seconds() - t0;
    mask_rows(d, d->logits, 1 + t->n);

    /* walk down from the root */
    int node = -1, depth = 0, n_path = 1;
    int32_t next = -1;
    d->path[0] = 0;
    for (;;) {
        float *row = d->logits + (size_t)(node + 1) * d->vocab;
        if (!has_children(t, node)) {
            next = sq_sampler_sample(d->sampler, row, d->tokens, d->n);
            break;
        }
        sq_sampler_dist(d->sampler, row, d->tokens, d->n, d->p);
        d->stats.reached[depth]++;
        int c = choose_child(d, node, depth, &next);
        if (c < 0) break;
        d->stats.accepted_at[depth]++;
        d->tokens[d->n++] = t->token[c];
        d->path[n_path++] = c + 1;
        node = c;
        depth++;
    }
    if (chain)
        SQ_TRY(sq_seq_truncate(ctx, 0, base + n_path));
    else
        SQ_TRY(sq_seq_keep_path(ctx, 0, d->path, n_path));
    SQ_TRY(append_sample(d, next));

    const int accepted = n_path - 1;
    d->stats.steps++;
    d->stats.drafted += t->n;
    d->stats.accepted += accepted;
    d->stats.generated += accepted + 1;
    if (d->k_auto && t->n > 0) {
        if (accepted == k)
            d->k = d->k + 2 < SQ_SPEC_MAX_K ? d->k + 2 : SQ_SPEC_MAX_K;
        else if (d->k > 1)
            d->k--;
        d->stats.k = d->k;
    }
    *n_new = accepted + 1;
    return NULL;
}

const int32_t *sq_decoder_tokens(const sq_decoder *d, int *n) {
    *n = d->n;
    return d->tokens;
}

void sq_decoder_stats(const sq_decoder *d, sq_spec_stats *stats, double *prefill_seconds) {
    if (stats) *stats = d->stats;
    if (prefill_seconds) *prefill_seconds = d->prefill_seconds;
}
