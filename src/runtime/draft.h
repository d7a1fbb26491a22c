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

typedef struct spec_draft spec_draft;
struct spec_draft {
    /* Fills out (out->n may be 0: nothing to propose). The target's sequence holds tokens[0..n-1) and must
     * hold exactly that again on return. */
    SQ_NODISCARD sq_error *(*propose)(spec_draft *d, const spec_request *req, spec_tree *out);
    void (*free)(spec_draft *d);
};

/* A model drafting by sampling its own distribution (a chain) or branching into its best tokens (a tree).
 * With skip (self-speculation) ctx is the target's own context and the draft runs it with those blocks
 * skipped, sharing the target's cache; without, ctx is the draft model's context and the draft keeps its
 * sequence 0 in step with what the target has accepted. params are the target's sampling parameters (the
 * draft's distribution is filtered alike), vocab the length of the decoder's distributions, n_text the ids
 * the tokenizer can decode (the others are never proposed). */
SQ_NODISCARD sq_error *spec_draft_model_create(sq_context *ctx, const unsigned char *skip,
                                               const sq_sampler_params *params, int vocab, int n_text,
                                               spec_draft **out);
/* Prompt lookup over the sequence itself: the continuations of the latest earlier occurrences of its last
 * ngram_n tokens (then shorter suffixes down to one token); when those ngram_n tokens occur nowhere earlier
 * and pool is not NULL (borrowed), first the continuation the pool recorded for them (runtime/ngram_pool.h).
 */
struct spec_ngram_pool;
SQ_NODISCARD sq_error *spec_draft_ngram_create(int ngram_n, struct spec_ngram_pool *pool, spec_draft **out);

#endif
