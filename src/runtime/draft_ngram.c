/* Prompt-lookup drafts (Saxena 2023, "Prompt Lookup Decoding"; llama.cpp's lookup): text that repeats
 * earlier text of the same sequence (a summary quoting its source, code edited in place) is drafted by
 * copying what followed the last time the sequence's latest tokens occurred. The last ngram_n tokens are
 * looked up first, then shorter suffixes down to one token; the latest occurrence wins. A tree merges the
 * continuations of up to `width` occurrences, latest first, into a trie. When the sequence has no earlier
 * occurrence of its whole last n-gram, an n-gram pool of other text (ngram_pool.h) may know what followed
 * it; shorter suffixes of the sequence come after the pool. */
#include <stdlib.h>

#include "core/error.h"
#include "runtime/draft.h"
#include "runtime/ngram_pool.h"

typedef struct ngram_draft {
    spec_draft base;
    int ngram_n;
    spec_ngram_pool *pool; /* borrowed; NULL: none */
} ngram_draft;

/* Adds cont[0..n_cont) below the root of the trie, sharing the prefix it has in common with the branches
 * already there; a position takes at most width candidates and the trie at most max_nodes nodes. */
static void insert_branch(spec_tree *t, const int32_t *cont, int n_cont, int width, int max_nodes) {
    int at = -1;
    for (int d = 0; d < n_cont; d++) {
        int found = -1, siblings = 0;
        for (int i = 0; i < t->n; i++)
            if (t->parent[i] == at) {
                siblings++;
                if (t->token[i] == cont[d]) found = i;
            }
        if (found < 0) {
            if (siblings >= width || t->n >= max_nodes) return;
            found = t->n++;
            t->token[found] = cont[d];
            t->parent[found] = at;
            t->depth[found] = d;
        }
        at = found;
    }
}

static void ngram_propose_one(const ngram_draft *g, const spec_request *req, spec_tree *out) {
    const int32_t *tok = req->tokens;
    const int n = req->n, width = req->width > 1 ? req->width : 1;
    out->n = 0;
    out->sampled = 0;
    int matches = 0;
    for (int len = g->ngram_n; len >= 1 && matches < width; len--) {
        if (n <= len) continue;
        const int32_t *suffix = tok + n - len;
        for (int i = n - len - 1; i >= 0 && matches < width; i--) {
            int j = 0;
            while (j < len && tok[i + j] == suffix[j]) j++;
            if (j < len) continue;
            int from = i + len, n_cont = n - from < req->k ? n - from : req->k;
            insert_branch(out, tok + from, n_cont, width, req->max_nodes);
            matches++;
        }
        /* no earlier occurrence of the whole n-gram: the pool's, before shorter suffixes of the sequence */
        if (!matches && len == g->ngram_n && g->pool) {
            int32_t cont[SPEC_POOL_CONT];
            int k = req->k < req->max_nodes ? req->k : req->max_nodes;
            int n_cont = spec_ngram_pool_lookup(g->pool, tok, n, k, cont);
            insert_branch(out, cont, n_cont, width, req->max_nodes);
            matches += n_cont > 0;
        }
    }
}

static SQ_NODISCARD sq_error *ngram_propose(spec_draft *base, spec_job *jobs, int n_jobs) {
    for (int j = 0; j < n_jobs; j++) ngram_propose_one((const ngram_draft *)base, &jobs[j].req, jobs[j].out);
    return NULL;
}

static void ngram_free(spec_draft *base) { free(base); }

sq_error *spec_draft_ngram_create(int ngram_n, spec_ngram_pool *pool, spec_draft **out) {
    *out = NULL;
    if (ngram_n < 1 || ngram_n > 8)
        return sq_errorf(SQ_ERR_INVALID_ARG, "speculative: ngram_n %d is outside 1..8", ngram_n);
    ngram_draft *g = calloc(1, sizeof *g);
    if (!g) return sq_errorf(SQ_ERR_NOMEM, "speculative: out of memory");
    g->base = (spec_draft){.propose = ngram_propose, .free = ngram_free};
    g->ngram_n = ngram_n;
    g->pool = pool;
    *out = &g->base;
    return NULL;
}
