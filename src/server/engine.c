/* The serving engine: continuous batching with chunked prefill, FCFS with preemption by recompute, prefix
 * caching (squeeze.h, "serving: the engine"; docs/serving.md).
 *
 * Every request is one sequence of the context while it runs. Its tokens (prompt, then generated) are in
 * `tokens`; the first n_computed of them are in the KV cache. A step computes a chunk of the tokens not yet
 * computed for every scheduled request: a decoding request has exactly one (the token it sampled last), a
 * prefilling one the next piece of its prompt. When a chunk reaches the end of a request's tokens, its last
 * logits give the next token. Preempting a request frees its blocks and sets n_computed to 0: it is prefilled
 * again from its tokens when it runs next, and continues exactly where it was (its sampler, detokenizer and
 * stop-string state are kept).
 *
 * With speculative decoding on, a decoding request's chunk is its last token followed by up to spec_k draft
 * tokens, placed after its tokens. The drafts of all decoding requests are proposed together before the step
 * (runtime/draft.h: prompt lookup; or a draft model, one forward call per draft position for all requests, in
 * its own context where each request's sequence has the request's slot; or the model itself with blocks
 * skipped, in the requests' own sequences). The step's logits of every position then decide, one position at
 * a time and with the request's own sampling, which drafts are kept (sq_sampler_choose for given candidates,
 * sq_sampler_accept_drawn for tokens drawn from the draft's q: the output follows the model's distribution
 * exactly, and greedy output is plain greedy output), and the cache is cut back to the tokens kept; a draft
 * model's sequence catches up with the kept tokens at its next proposal and is freed whenever the request
 * leaves its slot (end, cancellation, preemption). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/array.h"
#include "core/error.h"
#include "runtime/draft.h"
#include "runtime/ngram_pool.h"
#include "runtime/sampler.h"
#include "server/prefix_cache.h"
#include "server/stop_strings.h"

typedef struct request {
    int64_t id;
    int slot;        /* sequence id while running, -1 otherwise */
    int32_t *tokens; /* [n_ctx] prompt then generated */
    int n_tokens, n_prompt, n_computed;
    int n_draft;  /* this step's draft tokens, at tokens[n_tokens .. n_tokens + n_draft) */
    int n_pooled; /* the n-gram pool holds the n-grams of tokens ending before n_pooled */
    int n_generated, max_tokens;
    int cached_tokens;
    int prompt_cached; /* the prompt's full blocks went to the prefix cache */
    int cancelled;
    float presence_penalty, frequency_penalty;
    int top_logprobs;
    char **stop; /* [n_stop] copies */
    int n_stop;
    sq_sampler *sampler;
    sq_detokenizer *detok;
    sq_stop_matcher matcher;
    sq_sampler *draft_sampler; /* a model draft's own, with the request's parameters; NULL otherwise */
    const double *draft_q;     /* [n_draft][vocab] the distributions this step's drafts were drawn from; NULL:
                                  given candidates (n-gram drafts) */
    sq_engine_event_fn on_event;
    void *user;
    struct request *next; /* in the pending list */
} request;

struct sq_engine {
    const sq_model *model;
    sq_context *ctx;
    sq_prefix_cache *prefix; /* NULL: prefix caching off */
    int n_ctx, max_seqs, max_batch_tokens, vocab, n_text;

    /* requests: the pending list is shared with submitting threads (under lock), the rest is the stepping
     * thread's */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    request *pending, **pending_tail;
    int64_t *cancels; /* [n_cancels] ids cancelled since the last step */
    size_t n_cancels, cap_cancels;
    int woken;
    int64_t next_id;
    sq_engine_stats stats;

    request **waiting; /* [n_waiting] FCFS order: preempted requests first, then by arrival */
    size_t n_waiting, cap_waiting;
    request **running; /* [max_seqs] by slot */

    /* one step */
    sq_seq_batch *batch;        /* [max_seqs] */
    request **batch_req;        /* [max_seqs] */
    int *batch_ids, *batch_new; /* [max_seqs] the plan's sequences and their new tokens, for admission */
    int *batch_n;               /* [max_seqs] each scheduled request's length after the step */
    float *logits;              /* [max_seqs][vocab] */
    double *logprob;            /* [vocab] scratch */
    int *counts; /* [vocab] scratch: generated-token counts for the penalties, 0 between uses */
    int32_t top_ids[32];
    float top_lp[32];
    int64_t preemptions, prompt_tokens, cached_tokens, generated_tokens;

    /* speculative decoding; draft NULL: off */
    spec_draft *draft;
    spec_ngram_pool *pool; /* n-grams of every request's generated text; NULL: none */
    sq_context *draft_ctx; /* a draft model's own context (sequence = the request's slot); NULL: none */
    int draft_vocab;       /* a model draft's logits, its samplers' vocabulary; 0: n-gram drafts */
    int spec_k;            /* draft tokens per request and step at most */
    int *batch_row;        /* [max_seqs] each scheduled request's first logits row */
    double *p, *r;         /* [vocab] the distribution at a draft position; scratch */
    spec_job *jobs;        /* [max_seqs] one proposal's */
    request **job_req;     /* [max_seqs] */
    spec_tree *trees;      /* [max_seqs] */
    double *q;             /* [max_seqs][spec_k][vocab] drawn chains' distributions; NULL: n-gram drafts */
    sq_spec_stats spec;
};

/* ---------------------------------------------------------------- requests */

static void request_free(request *r) {
    if (!r) return;
    free(r->tokens);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    sq_sampler_free(r->sampler);
    sq_sampler_free(r->draft_sampler);
    sq_detokenizer_free(r->detok);
    sq_stop_free(&r->matcher);
    free(r);
}

/* Sends the event; a callback that asks to stop cancels the request. */
static void emit(request *r, sq_engine_event *ev) {
    ev->request_id = r->id;
    ev->prompt_tokens = r->n_prompt;
    ev->completion_tokens = r->n_generated;
    ev->cached_tokens = r->cached_tokens;
    if (r->on_event && r->on_event(r->user, ev)) r->cancelled = 1;
}

/* The request leaves its slot: a draft model forgets its sequence there (its blocks are freed). */
static void release_draft(sq_engine *e, int slot) {
    if (e->draft && e->draft->release) e->draft->release(e->draft, slot);
}

/* Releases the request's sequence (keeping its full blocks in the prefix cache when it was not cancelled)
 * and frees it after its last event. */
static void finish(sq_engine *e, request *r, sq_finish_reason why, const char *error) {
    sq_engine_event ev = {.token = -1, .text = "", .finish = why, .error = error};
    if (why == SQ_FINISH_STOP || why == SQ_FINISH_LENGTH) {
        /* the rest of the text: a character still held back by the decoder, then what the stop strings held
         */
        size_t len;
        const char *rest = sq_detokenizer_flush(r->detok, &len), *out;
        size_t out_len = 0;
        int stopped = len ? sq_stop_push(&r->matcher, rest, len, &out, &out_len) : 0;
        char *text = NULL;
        size_t n_text = 0;
        const char *tail;
        size_t tail_len;
        sq_stop_flush(&r->matcher, &tail, &tail_len);
        if ((out_len || tail_len) && (text = malloc(out_len + tail_len + 1))) {
            memcpy(text, out, out_len);
            memcpy(text + out_len, tail, tail_len);
            n_text = out_len + tail_len;
        }
        (void)stopped;
        ev.text = text ? text : "";
        ev.text_len = n_text;
        emit(r, &ev);
        free(text);
    } else {
        emit(r, &ev);
    }
    if (e->pool && (why == SQ_FINISH_STOP || why == SQ_FINISH_LENGTH))
        spec_ngram_pool_add(e->pool, r->tokens, r->n_tokens, r->n_pooled, 1);
    if (r->slot >= 0) {
        if (e->prefix && why != SQ_FINISH_CANCELLED && why != SQ_FINISH_ERROR && r->n_computed > 0)
            sq_error_free(sq_prefix_cache_insert(e->prefix, r->slot, r->tokens, r->n_computed));
        sq_error_free(sq_seq_truncate(e->ctx, r->slot, 0));
        release_draft(e, r->slot);
        e->running[r->slot] = NULL;
    }
    request_free(r);
}

/* ---------------------------------------------------------------- engine */

void sq_engine_free(sq_engine *e) {
    if (!e) return;
    for (int s = 0; e->running && s < e->max_seqs; s++)
        if (e->running[s]) finish(e, e->running[s], SQ_FINISH_CANCELLED, NULL);
    for (size_t i = 0; i < e->n_waiting; i++) finish(e, e->waiting[i], SQ_FINISH_CANCELLED, NULL);
    while (e->pending) {
        request *r = e->pending;
        e->pending = r->next;
        finish(e, r, SQ_FINISH_CANCELLED, NULL);
    }
    sq_prefix_cache_free(e->prefix);
    if (e->draft) e->draft->free(e->draft);
    sq_context_free(e->draft_ctx);
    sq_context_free(e->ctx);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e->cancels);
    free(e->waiting);
    free(e->running);
    free(e->batch);
    free(e->batch_req);
    free(e->batch_ids);
    free(e->batch_n);
    free(e->batch_new);
    free(e->logits);
    free(e->logprob);
    free(e->counts);
    free(e->batch_row);
    free(e->p);
    free(e->r);
    free(e->jobs);
    free(e->job_req);
    free(e->trees);
    free(e->q);
    spec_ngram_pool_free(e->pool);
    free(e);
}

int sq_engine_n_ctx(const sq_engine *e) { return e->n_ctx; }

/* The draft source o asks for (o->spec_k > 0), and a draft model's context. */
static SQ_NODISCARD sq_error *make_draft(sq_engine *e, const sq_model *model, const sq_engine_options *o) {
    const int ngram_n = o->spec_ngram_n ? o->spec_ngram_n : 3;
    switch (o->spec_draft) {
    case SQ_DRAFT_MODEL: {
        SQ_TRY(sq_spec_check_vocab(model, o->spec_draft_model));
        sq_context_options co = {.n_ctx = e->n_ctx,
                                 .n_seq_max = e->max_seqs,
                                 .n_threads = o->n_threads,
                                 .n_batch_max = e->max_batch_tokens,
                                 .kv_block_size = o->kv_block_size,
                                 .kv_type = o->kv_type,
                                 .device = o->device};
        SQ_TRY(sq_error_wrap(sq_context_create(o->spec_draft_model, &co, &e->draft_ctx), "the draft model"));
        sq_model_info info;
        sq_model_get_info(o->spec_draft_model, &info);
        e->draft_vocab = info.vocab_size;
        return spec_draft_model_create(e->draft_ctx, e->vocab, e->n_text, &e->draft);
    }
    case SQ_DRAFT_SELF:
        e->draft_vocab = e->vocab;
        return spec_draft_self_create(e->ctx, o->spec_skip_layers, o->spec_n_skip_layers, e->vocab, e->n_text,
                                      &e->draft);
    default: /* SQ_DRAFT_NGRAM: checked by the caller */
        if (o->spec_pool_entries) SQ_TRY(spec_ngram_pool_create(o->spec_pool_entries, ngram_n, &e->pool));
        return spec_draft_ngram_create(ngram_n, e->pool, &e->draft);
    }
}

SQ_NODISCARD sq_error *sq_engine_create(const sq_model *model, const sq_engine_options *opts,
                                        sq_engine **out) {
    *out = NULL;
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (!tok) return sq_errorf(SQ_ERR_INVALID_ARG, "engine: the model has no tokenizer");
    sq_engine_options o = opts ? *opts : (sq_engine_options){0};
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (o.max_seqs < 0 || o.max_batch_tokens < 0 || o.n_ctx < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: negative max_seqs, max_batch_tokens or n_ctx");
    if (!o.n_ctx) o.n_ctx = info.max_seq_len < 4096 ? info.max_seq_len : 4096;
    if (!o.max_seqs) o.max_seqs = 16;
    if (!o.max_batch_tokens) o.max_batch_tokens = 512;
    if (o.max_seqs > 4096)
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: %d sequences are too many", o.max_seqs);
    if (o.spec_k < 0 || o.spec_k > SQ_SPEC_MAX_K)
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: spec_k %d is outside 0..%d", o.spec_k, SQ_SPEC_MAX_K);
    if (o.spec_k && o.spec_draft != SQ_DRAFT_NGRAM && o.spec_draft != SQ_DRAFT_MODEL &&
        o.spec_draft != SQ_DRAFT_SELF)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "engine: spec_k %d needs a draft source: spec_draft NGRAM, MODEL or SELF (not %d)",
                         o.spec_k, (int)o.spec_draft);
    if (o.spec_pool_entries < 0 || (o.spec_pool_entries && (!o.spec_k || o.spec_draft != SQ_DRAFT_NGRAM)))
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "engine: spec_pool_entries %d needs spec_k with n-gram drafts and must not be negative",
            o.spec_pool_entries);
    if (o.spec_k && o.spec_draft == SQ_DRAFT_MODEL && !o.spec_draft_model)
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: spec_draft MODEL needs spec_draft_model");
    if (o.max_batch_tokens < o.max_seqs)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "engine: a step of %d tokens cannot carry a decode token for each of %d sequences",
                         o.max_batch_tokens, o.max_seqs);
    sq_engine *e = calloc(1, sizeof *e);
    if (!e) return sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    e->pending_tail = &e->pending;
    e->model = model;
    e->n_ctx = o.n_ctx;
    e->max_seqs = o.max_seqs;
    e->max_batch_tokens = o.max_batch_tokens;
    e->vocab = info.vocab_size;
    e->n_text = sq_tokenizer_vocab_size(tok);
    if (e->n_text > e->vocab) e->n_text = e->vocab;
    e->next_id = 1;
    /* the prefix cache's holders are sequences after the requests' own */
    int n_holders = o.no_prefix_cache ? 0 : o.max_seqs;
    sq_context_options co = {.n_ctx = o.n_ctx,
                             .n_seq_max = o.max_seqs + n_holders,
                             .n_threads = o.n_threads,
                             .n_batch_max = o.max_batch_tokens,
                             .kv_mem = o.kv_mem,
                             .kv_block_size = o.kv_block_size,
                             .kv_type = o.kv_type,
                             .device = o.device};
    /* without a budget, room for max_seqs full sequences (the holders only share their blocks) */
    sq_error *err = NULL;
    if (!co.kv_mem && n_holders) {
        sq_context *probe = NULL;
        co.n_seq_max = o.max_seqs;
        err = sq_context_create(model, &co, &probe);
        if (!err) co.kv_mem = sq_context_kv_bytes(probe);
        sq_context_free(probe);
        co.n_seq_max = o.max_seqs + n_holders;
    }
    if (!err) err = sq_context_create(model, &co, &e->ctx);
    if (!err && n_holders) err = sq_prefix_cache_create(e->ctx, o.max_seqs, n_holders, &e->prefix);
    if (!err && o.spec_k) err = make_draft(e, model, &o);
    if (err) {
        sq_engine_free(e);
        return sq_error_wrap(err, "engine");
    }
    size_t ms = (size_t)o.max_seqs;
    e->running = calloc(ms, sizeof *e->running);
    e->batch = calloc(ms, sizeof *e->batch);
    e->batch_req = calloc(ms, sizeof *e->batch_req);
    e->batch_ids = calloc(ms, sizeof *e->batch_ids);
    e->batch_n = calloc(ms, sizeof *e->batch_n);
    e->batch_new = calloc(ms, sizeof *e->batch_new);
    e->spec_k = o.spec_k;
    e->spec.k = o.spec_k;
    e->jobs = calloc(ms, sizeof *e->jobs);
    e->job_req = calloc(ms, sizeof *e->job_req);
    e->trees = calloc(ms, sizeof *e->trees);
    if (e->draft_vocab) e->q = malloc(ms * (size_t)o.spec_k * (size_t)e->vocab * sizeof *e->q);
    /* a step's logits rows: one per request, and one per draft token */
    size_t rows = ms * (1 + (size_t)o.spec_k); /* no more than a step's tokens (at least max_seqs) */
    if (rows > (size_t)o.max_batch_tokens) rows = (size_t)o.max_batch_tokens;
    e->logits = malloc(rows * (size_t)e->vocab * sizeof *e->logits);
    e->batch_row = calloc(ms, sizeof *e->batch_row);
    e->p = malloc((size_t)e->vocab * sizeof *e->p);
    e->r = malloc((size_t)e->vocab * sizeof *e->r);
    e->logprob = malloc((size_t)e->vocab * sizeof *e->logprob);
    e->counts = calloc((size_t)e->vocab, sizeof *e->counts);
    if (!e->running || !e->batch || !e->batch_req || !e->batch_ids || !e->batch_n || !e->batch_new ||
        !e->logits || !e->logprob || !e->counts || !e->batch_row || !e->p || !e->r || !e->jobs ||
        !e->job_req || !e->trees || (e->draft_vocab && !e->q)) {
        sq_engine_free(e);
        return sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    }
    e->stats.kv_blocks_total = sq_context_kv_blocks_total(e->ctx);
    e->stats.kv_block_size = sq_context_kv_block_size(e->ctx);
    *out = e;
    return NULL;
}

static SQ_NODISCARD sq_error *request_create(sq_engine *e, const sq_engine_request *q, request **out) {
    *out = NULL;
    if (!q->prompt || q->n_prompt <= 0) return sq_errorf(SQ_ERR_INVALID_ARG, "engine: the prompt is empty");
    if (q->n_prompt > e->n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: the prompt is %d tokens but the context holds %d",
                         q->n_prompt, e->n_ctx);
    for (int i = 0; i < q->n_prompt; i++)
        if (q->prompt[i] < 0 || q->prompt[i] >= e->n_text)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "engine: prompt token %d is %d, outside the vocabulary of %d", i, q->prompt[i],
                             e->n_text);
    if (q->top_logprobs > 20 || q->n_stop < 0 || (q->n_stop && !q->stop))
        return sq_errorf(SQ_ERR_INVALID_ARG, "engine: top_logprobs above 20 or a bad list of stop strings");
    request *r = calloc(1, sizeof *r);
    if (!r) return sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    r->slot = -1;
    r->n_prompt = r->n_tokens = r->n_pooled = q->n_prompt;
    r->max_tokens = q->max_tokens;
    r->presence_penalty = q->presence_penalty;
    r->frequency_penalty = q->frequency_penalty;
    r->top_logprobs = q->top_logprobs;
    r->tokens = malloc((size_t)e->n_ctx * sizeof *r->tokens);
    r->stop = calloc((size_t)q->n_stop + 1, sizeof *r->stop);
    r->detok = sq_detokenizer_create(sq_model_tokenizer(e->model));
    sq_error *err = NULL;
    if (!r->tokens || !r->stop || !r->detok) err = sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; !err && i < q->n_stop; i++) {
        if (!q->stop[i] || !q->stop[i][0])
            err = sq_errorf(SQ_ERR_INVALID_ARG, "engine: stop string %d is empty", i);
        else if (!(r->stop[r->n_stop++] = strdup(q->stop[i])))
            err = sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    }
    if (!err) err = sq_sampler_create(&q->sampling, e->vocab, &r->sampler);
    if (!err && e->draft_vocab)
        err = spec_draft_sampler_create(&q->sampling, e->draft_vocab, &r->draft_sampler);
    if (!err) {
        memcpy(r->tokens, q->prompt, (size_t)q->n_prompt * sizeof *r->tokens);
        err = sq_detokenizer_reset(r->detok, r->tokens, r->n_prompt);
    }
    if (err) {
        request_free(r);
        return sq_error_wrap(err, "engine");
    }
    sq_stop_init(&r->matcher, (const char *const *)r->stop, r->n_stop);
    *out = r;
    return NULL;
}

SQ_NODISCARD sq_error *sq_engine_submit(sq_engine *e, const sq_engine_request *q, sq_engine_event_fn on_event,
                                        void *user, int64_t *id) {
    request *r;
    SQ_TRY(request_create(e, q, &r));
    r->on_event = on_event;
    r->user = user;
    pthread_mutex_lock(&e->lock);
    r->id = e->next_id++;
    *e->pending_tail = r;
    e->pending_tail = &r->next;
    e->stats.waiting++;
    e->woken = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (id) *id = r->id;
    return NULL;
}

void sq_engine_cancel(sq_engine *e, int64_t id) {
    pthread_mutex_lock(&e->lock);
    if (!SQ_ARRAY_RESERVE(e->cancels, e->cap_cancels, e->n_cancels + 1)) e->cancels[e->n_cancels++] = id;
    e->woken = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void sq_engine_wake(sq_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->woken = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void sq_engine_wait(sq_engine *e, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = ts.tv_sec + ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&e->lock);
    while (!e->woken && !e->pending)
        if (pthread_cond_timedwait(&e->wake, &e->lock, &ts)) break;
    e->woken = 0;
    pthread_mutex_unlock(&e->lock);
}

void sq_engine_get_stats(sq_engine *e, sq_engine_stats *out) {
    pthread_mutex_lock(&e->lock);
    *out = e->stats;
    pthread_mutex_unlock(&e->lock);
}

/* ---------------------------------------------------------------- scheduling */

/* Takes the pending requests into the waiting queue and applies cancellations. */
static SQ_NODISCARD sq_error *take_pending(sq_engine *e) {
    pthread_mutex_lock(&e->lock);
    request *list = e->pending;
    e->pending = NULL;
    e->pending_tail = &e->pending;
    int64_t *cancels = e->cancels;
    size_t n_cancels = e->n_cancels;
    e->cancels = NULL;
    e->n_cancels = e->cap_cancels = 0;
    pthread_mutex_unlock(&e->lock);
    sq_error *err = NULL;
    for (request *r = list, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (!err && SQ_ARRAY_RESERVE(e->waiting, e->cap_waiting, e->n_waiting + 1))
            err = sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
        if (err)
            finish(e, r, SQ_FINISH_ERROR, "out of memory");
        else
            e->waiting[e->n_waiting++] = r;
    }
    for (size_t c = 0; c < n_cancels; c++) {
        for (int s = 0; s < e->max_seqs; s++)
            if (e->running[s] && e->running[s]->id == cancels[c]) e->running[s]->cancelled = 1;
        for (size_t w = 0; w < e->n_waiting; w++)
            if (e->waiting[w]->id == cancels[c]) e->waiting[w]->cancelled = 1;
    }
    free(cancels);
    /* cancelled requests leave at once: their blocks are free for this step */
    for (int s = 0; s < e->max_seqs; s++)
        if (e->running[s] && e->running[s]->cancelled) finish(e, e->running[s], SQ_FINISH_CANCELLED, NULL);
    size_t kept = 0;
    for (size_t w = 0; w < e->n_waiting; w++)
        if (e->waiting[w]->cancelled)
            finish(e, e->waiting[w], SQ_FINISH_CANCELLED, NULL);
        else
            e->waiting[kept++] = e->waiting[w];
    e->n_waiting = kept;
    return err;
}

/* Blocks the planned batch (entries 0..n) takes beyond what is free; <= 0: it fits. */
static int shortfall(sq_engine *e, int n) {
    for (int i = 0; i < n; i++) {
        e->batch_ids[i] = e->batch_req[i]->slot;
        e->batch_new[i] = e->batch_n[i] - e->batch_req[i]->n_computed;
    }
    int need = 0;
    sq_error *err = sq_context_kv_blocks_needed(e->ctx, e->batch_ids, e->batch_new, n, &need);
    if (err) { /* lengths are checked when requests are made: cannot happen */
        sq_error_free(err);
        return 1;
    }
    return need - sq_context_kv_blocks_free(e->ctx);
}

/* Frees room: the prefix cache's least recently used holder first, else returns 0. */
static int evict_cached(sq_engine *e) { return e->prefix && sq_prefix_cache_evict(e->prefix); }

/* Preemption by recompute: the request gives back its blocks and waits at the front of the queue. */
static SQ_NODISCARD sq_error *preempt(sq_engine *e, request *r) {
    if (SQ_ARRAY_RESERVE(e->waiting, e->cap_waiting, e->n_waiting + 1))
        return sq_errorf(SQ_ERR_NOMEM, "engine: out of memory");
    memmove(e->waiting + 1, e->waiting, e->n_waiting * sizeof *e->waiting);
    e->waiting[0] = r;
    e->n_waiting++;
    sq_error_free(sq_seq_truncate(e->ctx, r->slot, 0));
    release_draft(e, r->slot);
    e->running[r->slot] = NULL;
    r->slot = -1;
    r->n_computed = 0;
    r->n_draft = 0;
    r->cached_tokens = 0;
    e->preemptions++;
    return NULL;
}

/* The running request that arrived last (ids grow with arrival), excluding none. */
static request *latest_running(sq_engine *e) {
    request *last = NULL;
    for (int s = 0; s < e->max_seqs; s++)
        if (e->running[s] && (!last || e->running[s]->id > last->id)) last = e->running[s];
    return last;
}

static int by_id(const void *a, const void *b) {
    int64_t x = (*(request *const *)a)->id, y = (*(request *const *)b)->id;
    return (x > y) - (x < y);
}

/* The running requests in arrival order (ids grow with arrival); returns how many. */
static int running_by_arrival(sq_engine *e, request **order) {
    int n = 0;
    for (int s = 0; s < e->max_seqs; s++)
        if (e->running[s]) order[n++] = e->running[s];
    qsort(order, (size_t)n, sizeof *order, by_id);
    return n;
}

/* Proposes the drafts of every decoding request together (r->n_draft of them, after its tokens), each at most
 * the room the step's budget leaves it after the requests before it (plan takes them in this order). A
 * proposal that finds no KV blocks (a self-draft in a full pool) leaves this step without drafts; any other
 * failure finishes the requests it drafted for. */
static void draft_all(sq_engine *e) {
    request *order[e->max_seqs];
    const int n_run = running_by_arrival(e, order);
    int budget = e->max_batch_tokens, n = 0;
    for (int i = 0; i < n_run; i++) order[i]->n_draft = 0;
    for (int i = 0; i < n_run && budget > 0; i++) {
        request *r = order[i];
        int take = r->n_tokens - r->n_computed;
        if (take > budget) take = budget;
        budget -= take;
        if (take != 1) continue; /* prefilling */
        int k = e->spec_k < budget ? e->spec_k : budget;
        if (k > e->n_ctx - r->n_tokens) k = e->n_ctx - r->n_tokens;
        /* the token after the last draft comes free; drafting past max_tokens would be wasted */
        if (r->max_tokens >= 0 && k > r->max_tokens - r->n_generated - 1)
            k = r->max_tokens - r->n_generated - 1;
        if (k < 1) continue;
        /* the generated text so far goes to the pool for the other requests (and later ones) */
        if (e->pool) r->n_pooled = spec_ngram_pool_add(e->pool, r->tokens, r->n_tokens, r->n_pooled, 0);
        spec_tree *t = &e->trees[n];
        t->q = e->q ? e->q + (size_t)n * e->spec_k * e->vocab : NULL;
        e->jobs[n] =
            (spec_job){.req = {.tokens = r->tokens, .n = r->n_tokens, .k = k, .width = 1, .max_nodes = k},
                       .seq = r->slot,
                       .sampler = r->draft_sampler,
                       .out = t};
        e->job_req[n++] = r;
        budget -= k;
    }
    if (!n) return;
    double t0 = sq_monotonic_seconds();
    sq_error *err = e->draft->propose(e->draft, e->jobs, n);
    e->spec.draft_seconds += sq_monotonic_seconds() - t0;
    for (int j = 0; j < n; j++) {
        request *r = e->job_req[j];
        if (err) {
            if (sq_error_code_of(err) != SQ_ERR_NOMEM) finish(e, r, SQ_FINISH_ERROR, sq_error_message(err));
            continue;
        }
        const spec_tree *t = &e->trees[j];
        for (int i = 0; i < t->n; i++) r->tokens[r->n_tokens + i] = t->token[i];
        r->n_draft = t->n;
        r->draft_q = t->sampled ? t->q : NULL;
    }
    sq_error_free(err);
}

/* Plans one step into batch_req/batch_n; returns the number of entries. */
static SQ_NODISCARD sq_error *plan(sq_engine *e, int *n_out) {
    int n = 0, budget = e->max_batch_tokens;
    if (e->draft) draft_all(e);
    request *order[e->max_seqs];
    const int n_run = running_by_arrival(e, order);
    /* running requests first come, first served; a request that cannot get blocks preempts the latest */
    for (int i = 0; i < n_run && budget > 0; i++) {
        request *r = order[i];
        if (r->slot < 0) continue; /* preempted meanwhile */
        int take = r->n_tokens - r->n_computed;
        if (take > budget) take = budget;
        if (r->n_draft > budget - take)
            r->n_draft = 0; /* a guard: draft_all gave it no more room than this */
        take += r->n_draft;
        e->batch_req[n] = r;
        e->batch_n[n] = r->n_computed + take;
        while (shortfall(e, n + 1) > 0) {
            if (r->n_draft) { /* drafts are the first to go */
                e->batch_n[n] -= r->n_draft;
                take -= r->n_draft;
                r->n_draft = 0;
                continue;
            }
            if (evict_cached(e)) continue;
            request *victim = latest_running(e);
            SQ_TRY(preempt(e, victim));
            if (victim == r) break;
        }
        if (r->slot < 0) break; /* it was the latest itself: nothing after it runs either */
        n++;
        budget -= take;
    }
    /* then waiting requests, while a sequence, the budget and the blocks allow */
    while (e->n_waiting && budget > 0) {
        int slot = 0;
        while (slot < e->max_seqs && e->running[slot]) slot++;
        if (slot == e->max_seqs) break;
        request *r = e->waiting[0];
        r->slot = slot;
        if (e->prefix && r->n_computed == 0) {
            r->n_computed = sq_prefix_cache_attach(e->prefix, slot, r->tokens, r->n_tokens);
            if (!r->cached_tokens) r->cached_tokens = r->n_computed;
        }
        int take = r->n_tokens - r->n_computed;
        if (take > budget) take = budget;
        e->batch_req[n] = r;
        e->batch_n[n] = r->n_computed + take;
        int short_by;
        while ((short_by = shortfall(e, n + 1)) > 0 && evict_cached(e)) {
        }
        if (short_by > 0) { /* it waits for blocks to come free */
            sq_error_free(sq_seq_truncate(e->ctx, slot, 0));
            r->slot = -1;
            r->n_computed = 0;
            r->cached_tokens = 0;
            break;
        }
        e->running[slot] = r;
        memmove(e->waiting, e->waiting + 1, (e->n_waiting - 1) * sizeof *e->waiting);
        e->n_waiting--;
        if (r->n_tokens == r->n_prompt) {
            e->prompt_tokens += r->n_prompt;
            e->cached_tokens += r->cached_tokens;
        }
        n++;
        budget -= take;
    }
    *n_out = n;
    return NULL;
}

/* ---------------------------------------------------------------- sampling */

/* log-softmax of the logits into e->logprob; the top k into e->top_ids / e->top_lp */
static void log_probs(sq_engine *e, const float *logits, int k) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < e->n_text; i++)
        if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < e->n_text; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < e->n_text; i++) e->logprob[i] = (double)logits[i] - lse;
    for (int j = 0; j < k; j++) { /* k <= 20: selection by repeated scans */
        int best = -1;
        for (int i = 0; i < e->n_text; i++) {
            int taken = 0;
            for (int t = 0; t < j && !taken; t++) taken = e->top_ids[t] == i;
            if (!taken && (best < 0 || e->logprob[i] > e->logprob[best])) best = i;
        }
        e->top_ids[j] = best;
        e->top_lp[j] = (float)e->logprob[best];
    }
}

/* OpenAI's presence and frequency penalties over the tokens generated so far. */
static void penalise(sq_engine *e, const request *r, float *logits) {
    if (r->presence_penalty == 0 && r->frequency_penalty == 0) return;
    const int32_t *gen = r->tokens + r->n_prompt;
    for (int i = 0; i < r->n_generated; i++) e->counts[gen[i]]++;
    for (int i = 0; i < r->n_generated; i++) {
        int t = gen[i];
        if (!e->counts[t]) continue;
        logits[t] -= r->presence_penalty + r->frequency_penalty * (float)e->counts[t];
        e->counts[t] = 0;
    }
}

/* What the sampler sees at one position: padding rows masked, the log-probabilities for the event taken,
 * the penalties applied. Returns how many alternatives the event carries. */
static int prepare_row(sq_engine *e, const request *r, float *logits) {
    for (int i = e->n_text; i < e->vocab; i++) logits[i] = -INFINITY; /* padding rows: never sampled */
    int k = r->top_logprobs > 0 ? r->top_logprobs : 0;
    if (r->top_logprobs >= 0) log_probs(e, logits, k);
    penalise(e, r, logits);
    return k;
}

/* Appends t, drawn at the position prepare_row prepared last (k alternatives), and delivers it; finishes the
 * request when t ends the text. Returns non-zero while the request goes on. */
static int append_token(sq_engine *e, request *r, int32_t t, int k) {
    if (t < 0) {
        finish(e, r, SQ_FINISH_ERROR, "every logit is NaN or -inf");
        return 0;
    }
    const sq_tokenizer *tok = sq_model_tokenizer(e->model);
    if (sq_model_is_eos(e->model, t) || t == sq_tokenizer_bos(tok)) {
        finish(e, r, SQ_FINISH_STOP, NULL); /* BOS starts a new document: sq_generate's end too */
        return 0;
    }
    r->tokens[r->n_tokens++] = t;
    r->n_generated++;
    e->generated_tokens++;
    size_t len, out_len;
    const char *piece = sq_detokenizer_push(r->detok, t, &len), *out;
    int stopped = sq_stop_push(&r->matcher, piece, len, &out, &out_len);
    sq_engine_event ev = {.token = t, .text = out, .text_len = out_len};
    if (r->top_logprobs >= 0) {
        ev.logprob = (float)e->logprob[t];
        ev.top_ids = e->top_ids;
        ev.top_logprobs = e->top_lp;
        ev.n_top = k;
    }
    emit(r, &ev);
    sq_finish_reason why = stopped < 0                                                  ? SQ_FINISH_ERROR
                           : stopped                                                    ? SQ_FINISH_STOP
                           : r->cancelled                                               ? SQ_FINISH_CANCELLED
                           : r->n_generated == r->max_tokens || r->n_tokens == e->n_ctx ? SQ_FINISH_LENGTH
                                                                                        : SQ_FINISH_NONE;
    if (why != SQ_FINISH_NONE) finish(e, r, why, stopped < 0 ? "out of memory" : NULL);
    return why == SQ_FINISH_NONE;
}

/* The request's next token from its logits. Returns non-zero while the request goes on. */
static int next_token(sq_engine *e, request *r, float *logits) {
    int k = prepare_row(e, r, logits);
    return append_token(e, r, sq_sampler_sample(r->sampler, logits, r->tokens, r->n_tokens), k);
}

/* A decoding request's step with drafts: rows [1 + n_draft][vocab] are the logits after its last token and
 * after each draft. Position by position, the draft there is kept or replaced by a draw from what its
 * rejection leaves (sq_sampler_choose); after the last draft kept, one more token is sampled. The cache keeps
 * the positions whose tokens were kept. */
static void verify(sq_engine *e, request *r, float *rows) {
    const int n_draft = r->n_draft;
    r->n_draft = 0;
    r->n_computed -= n_draft; /* the last token's position is in the cache; the drafts' are only if kept */
    e->spec.steps++;
    e->spec.drafted += n_draft;
    int j = 0;
    for (; j < n_draft; j++) {
        float *row = rows + (size_t)j * e->vocab;
        int k = prepare_row(e, r, row);
        const int32_t x = r->tokens[r->n_tokens]; /* the draft at this position */
        int32_t t;
        sq_sampler_dist(r->sampler, row, r->tokens, r->n_tokens, e->p);
        int kept = r->draft_q ? sq_sampler_accept_drawn(r->sampler, e->p, r->draft_q + (size_t)j * e->vocab,
                                                        x, e->r, &t)
                              : sq_sampler_choose(r->sampler, e->p, e->r, &x, 1, &t) == 0;
        e->spec.reached[j]++;
        e->spec.generated++;
        if (kept) {
            t = x;
            r->n_computed++;
            e->spec.accepted++;
            e->spec.accepted_at[j]++;
        }
        if (!append_token(e, r, t, k)) return; /* finished: freed with its sequence */
        if (!kept) break;
    }
    if (j == n_draft) { /* every draft kept: one more token from the last position */
        e->spec.generated++;
        if (!next_token(e, r, rows + (size_t)j * e->vocab)) return;
    }
    sq_error *err = sq_seq_truncate(e->ctx, r->slot, r->n_computed);
    if (err) finish(e, r, SQ_FINISH_ERROR, sq_error_message(err));
    sq_error_free(err);
}

static void publish_stats(sq_engine *e) {
    int running = 0;
    for (int s = 0; s < e->max_seqs; s++) running += e->running[s] != NULL;
    pthread_mutex_lock(&e->lock);
    int pending = 0;
    for (request *r = e->pending; r; r = r->next) pending++;
    e->stats.waiting = (int)e->n_waiting + pending;
    e->stats.running = running;
    e->stats.kv_blocks_used = e->stats.kv_blocks_total - sq_context_kv_blocks_free(e->ctx);
    e->stats.preemptions = e->preemptions;
    e->stats.prompt_tokens = e->prompt_tokens;
    e->stats.cached_tokens = e->cached_tokens;
    e->stats.generated_tokens = e->generated_tokens;
    e->stats.spec = e->spec;
    if (e->draft_ctx) {
        e->stats.spec_draft_kv_blocks_total = sq_context_kv_blocks_total(e->draft_ctx);
        e->stats.spec_draft_kv_blocks_used =
            e->stats.spec_draft_kv_blocks_total - sq_context_kv_blocks_free(e->draft_ctx);
    }
    pthread_mutex_unlock(&e->lock);
}

SQ_NODISCARD sq_error *sq_engine_step(sq_engine *e, int *busy) {
    int n = 0;
    sq_error *err = take_pending(e);
    if (!err) err = plan(e, &n);
    if (busy) *busy = n > 0;
    if (err || n == 0) {
        publish_stats(e);
        return err;
    }
    int drafts = 0;
    for (int i = 0, row = 0; i < n; i++) {
        request *r = e->batch_req[i];
        int end = e->batch_n[i];
        e->batch_row[i] = row;
        e->batch[i] = (sq_seq_batch){.seq_id = r->slot,
                                     .tokens = r->tokens + r->n_computed,
                                     .n_tokens = end - r->n_computed,
                                     .logits_mode = r->n_draft           ? SQ_LOGITS_ALL
                                                    : end == r->n_tokens ? SQ_LOGITS_LAST
                                                                         : SQ_LOGITS_NONE,
                                     .logits = e->logits + (size_t)row * e->vocab};
        row += 1 + r->n_draft;
        drafts += r->n_draft;
    }
    double t0 = sq_monotonic_seconds();
    sq_error *fwd = sq_forward(e->ctx, e->batch, n);
    if (drafts) e->spec.target_seconds += sq_monotonic_seconds() - t0;
    for (int i = 0; i < n; i++) {
        request *r = e->batch_req[i];
        if (fwd) {
            finish(e, r, SQ_FINISH_ERROR, sq_error_message(fwd));
            continue;
        }
        r->n_computed = e->batch_n[i];
        /* a finished prompt's full blocks serve the next request with the same prefix at once */
        if (e->prefix && !r->prompt_cached && r->n_computed >= r->n_prompt) {
            r->prompt_cached = 1;
            sq_error_free(sq_prefix_cache_insert(e->prefix, r->slot, r->tokens, r->n_prompt));
        }
        float *rows = e->logits + (size_t)e->batch_row[i] * e->vocab;
        if (r->n_draft)
            verify(e, r, rows);
        else if (r->n_computed == r->n_tokens)
            next_token(e, r, rows);
    }
    sq_error_free(fwd);
    publish_stats(e);
    return NULL;
}
