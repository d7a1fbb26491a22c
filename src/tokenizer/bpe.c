#include "tokenizer/bpe.h"

#include <stdlib.h>

#include "core/array.h"
#include "core/error.h"

void sq_bpe_free(sq_bpe *b) {
    free(b->symbols);
    free(b->heap);
    *b = (sq_bpe){0};
}

sq_error *sq_bpe_add(sq_bpe *b, int32_t id, size_t start, size_t len, int mergeable) {
    if (start > UINT32_MAX || len > UINT32_MAX - start)
        return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: text longer than 4 GiB");
    if (b->n == INT32_MAX) return sq_errorf(SQ_ERR_INVALID_ARG, "tokenizer: too many symbols in one word");
    if (SQ_ARRAY_RESERVE(b->symbols, b->cap, b->n + 1))
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    int32_t i = (int32_t)b->n++;
    b->symbols[i] = (sq_bpe_symbol){id, (uint32_t)start, (uint32_t)len, i - 1, -1, mergeable};
    if (i > 0) b->symbols[i - 1].next = i;
    return NULL;
}

static int better(const sq_bpe_candidate *a, const sq_bpe_candidate *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

static SQ_NODISCARD sq_error *heap_push(sq_bpe *b, sq_bpe_candidate c) {
    if (SQ_ARRAY_RESERVE(b->heap, b->heap_cap, b->heap_n + 1))
        return sq_errorf(SQ_ERR_NOMEM, "tokenizer: out of memory");
    size_t i = b->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!better(&c, &b->heap[parent])) break;
        b->heap[i] = b->heap[parent];
        i = parent;
    }
    b->heap[i] = c;
    return NULL;
}

static sq_bpe_candidate heap_pop(sq_bpe *b) {
    sq_bpe_candidate top = b->heap[0], last = b->heap[--b->heap_n];
    size_t i = 0, n = b->heap_n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && better(&b->heap[child + 1], &b->heap[child])) child++;
        if (!better(&b->heap[child], &last)) break;
        b->heap[i] = b->heap[child];
        i = child;
    }
    if (n) b->heap[i] = last;
    return top;
}

static SQ_NODISCARD sq_error *consider(sq_bpe *b, const char *text, sq_bpe_pair_fn pair, const void *ctx,
                                       int32_t left, int32_t right) {
    if (left < 0 || right < 0) return NULL;
    const sq_bpe_symbol *l = &b->symbols[left], *r = &b->symbols[right];
    if (!l->mergeable || !r->mergeable) return NULL;
    sq_bpe_candidate c = {.left = left, .right = right, .left_len = l->len, .right_len = r->len};
    if (!pair(ctx, text, l, r, &c.priority, &c.merged)) return NULL;
    return heap_push(b, c);
}

sq_error *sq_bpe_merge(sq_bpe *b, const char *text, sq_bpe_pair_fn pair, const void *ctx) {
    b->heap_n = 0;
    for (size_t i = 1; i < b->n; i++) SQ_TRY(consider(b, text, pair, ctx, (int32_t)i - 1, (int32_t)i));
    while (b->heap_n) {
        sq_bpe_candidate c = heap_pop(b);
        sq_bpe_symbol *l = &b->symbols[c.left], *r = &b->symbols[c.right];
        /* Symbols only grow or vanish, so unchanged lengths mean the pair is still the one that was scored.
         */
        if (l->len != c.left_len || r->len != c.right_len || l->next != c.right) continue;
        l->len += r->len;
        l->id = c.merged;
        l->next = r->next;
        if (r->next >= 0) b->symbols[r->next].prev = c.left;
        r->len = 0;
        SQ_TRY(consider(b, text, pair, ctx, l->prev, c.left));
        SQ_TRY(consider(b, text, pair, ctx, c.left, l->next));
    }
    return NULL;
}
