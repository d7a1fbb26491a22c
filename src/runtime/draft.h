/* Draft sources of speculative decoding behind one interface: each proposes a token tree that continues a
 * sequence, and the decoder (speculative.c) verifies it against the target. A chain is a tree whose every
 * node is the child of the one before. */
#ifndef SQ_RUNTIME_DRAFT_H
#define SQ_RUNTIME_DRAFT_H

#include <stdint.h>

#include "squeeze.h"

/* Nodes of a proposal at most: every position of the deepest chain with all its candidates. */
#define SPEC_MAX_NODES (SQ_SPEC_MAX_K * SQ_SPEC_MAX_WIDTH)

/* A proposal continuing the sequence's last token (the tree's root, not a node). Nodes come in an order where
 * a parent precedes its children, and siblings in the order they are tried. */
typedef struct spec_tree {
    int n;                         /* nodes */
    int32_t token[SPEC_MAX_NODES]; /* node i's token */
    int parent[SPEC_MAX_NODES];    /* the parent's index (< i), or -1: a child of the root */
    int depth[SPEC_MAX_NODES];     /* 0 for the root's children */
    /* non-zero: a chain whose node at depth d was drawn from the draft's distribution q[d] (the min(1, p/q)
     * rule applies); zero: candidates chosen deterministically (the rule for given candidates applies) */
    int sampled;
    double *q; /* [SQ_SPEC_MAX_K][vocab] the draft's distributions, owned by the decoder */
} spec_tree;

/* What a source needs to know about the step it drafts for. */
typedef struct spec_request {
    const int32_t *tokens; /* the sequence so far, [n]; tokens[n-1] is the root */
    int n;
    int k;         /* tree depth at most, >= 1 */
    int width;     /* candidates per position at most; <= 1: a chain */
    int max_nodes; /* nodes at most (room in the context and in one batch), >= k */
} spec_request;

/* One sequence's part of a proposal for several sequences at once (serving drafts for every decoding request
 * together). */
typedef struct spec_job {
    spec_request req;
    int seq;             /* model drafts: the sequence of the draft's context this one drafts in */
    sq_sampler *sampler; /* model drafts of a chain: the draft's own sampler (spec_draft_sampler_create) */
    spec_tree *out;      /* a sampled chain's distributions go to out->q */
} spec_job;

typedef struct spec_draft spec_draft;
struct spec_draft {
    /* Fills every job's out (out->n may be 0: nothing to propose), all jobs together: a model draft runs one
     * forward call per draft position for all of them. Each job's sequence in the target holds its
     * tokens[0..n-1) and holds exactly that again on return, also after an error. */
    SQ_NODISCARD sq_error *(*propose)(spec_draft *d, spec_job *jobs, int n_jobs);
    /* Forgets what the draft keeps for sequence seq (a separate draft model frees its cache blocks); NULL for
     * a source that keeps nothing per sequence. */
    void (*release)(spec_draft *d, int seq);
    void (*free)(spec_draft *d);
};

/* A model drafting by sampling its own distribution (a chain) or branching into its best tokens (a tree),
 * for any of its context's sequences. vocab is the length of the decoder's distributions, n_text the ids the
 * tokenizer can decode (the others are never proposed). A separate draft model (spec_draft_model_create):
 * ctx is the draft model's context, and each job's sequence there is kept in step with the tokens the target
 * has accepted (a prefix of the tokens it last saw; released by release()). Self-speculation
 * (spec_draft_self_create): ctx is the target's own context, run with the blocks skip_layers[0..n_skip)
 * skipped (checked: inside the model, not all of them), sharing the target's cache: each job's drafts go
 * after its target sequence's tokens and are truncated away before propose returns. */
SQ_NODISCARD sq_error *spec_draft_model_create(sq_context *ctx, int vocab, int n_text, spec_draft **out);
SQ_NODISCARD sq_error *spec_draft_self_create(sq_context *ctx, const int32_t *skip_layers, int n_skip,
                                              int vocab, int n_text, spec_draft **out);
/* The draft's own sampler for a request sampled with params: the same filters (so that q is filtered as the
 * target's p is), its own generator (its draws must not disturb the target's). draft_vocab: the draft
 * model's logits. */
SQ_NODISCARD sq_error *spec_draft_sampler_create(const sq_sampler_params *params, int draft_vocab,
                                                 sq_sampler **out);
/* Prompt lookup over the sequence itself: the continuations of the latest earlier occurrences of its last
 * ngram_n tokens (then shorter suffixes down to one token); when those ngram_n tokens occur nowhere earlier
 * and pool is not NULL (borrowed), first the continuation the pool recorded for them (runtime/ngram_pool.h).
 */
struct spec_ngram_pool;
SQ_NODISCARD sq_error *spec_draft_ngram_create(int ngram_n, struct spec_ngram_pool *pool, spec_draft **out);

#endif
