/* The OpenAI-compatible server: routes (http.c) to the engine (engine.c), request bodies parsed by
 * openai_request.c and answered through openai_response.c; chat prompts rendered with the model's own
 * template (src/chat/); Prometheus metrics. See squeeze.h, "serving: the OpenAI-compatible server".
 *
 * A request becomes a job of n choices, each an engine request. The engine's thread delivers their events
 * into the job (under the job's lock); the connection's thread waits for them and answers, whole or as a
 * stream of server-sent events. The job is freed by whichever side lets go of it last. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/array.h"
#include "core/error.h"
#include "server/http.h"
#include "server/openai_request.h"
#include "server/openai_response.h"

/* Prometheus histogram bucket bounds (seconds) of time to first token and time per output token. */
static const double ttft_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double tpot_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
#define N_TTFT (sizeof ttft_buckets / sizeof *ttft_buckets)
#define N_TPOT (sizeof tpot_buckets / sizeof *tpot_buckets)

typedef struct histogram {
    int64_t counts[16]; /* per bucket (non-cumulative), then +Inf */
    double sum;
    int64_t n;
} histogram;

struct sq_server {
    const sq_model *model;
    sq_engine *engine;
    sq_http *http;
    sq_chat_template *chat;
    char *alias;
    pthread_t thread;
    int thread_started;

    /* connections call the engine under the read lock; sq_server_stop takes it for writing to free it */
    pthread_rwlock_t engine_lock;
    pthread_mutex_t lock;                     /* guards everything below */
    int stopping;                             /* the engine thread ends */
    int draining;                             /* no new requests */
    int in_flight;                            /* jobs not yet finished */
    int64_t requests[2], errors, finished[4]; /* by kind; error answers; by finish reason */
    histogram ttft, tpot;
    uint64_t next_job;
};

typedef struct job job;

typedef struct choice {
    job *job;
    int index;
    int64_t engine_id;
    int finished;
    sq_finish_reason finish;
    char *text; /* non-streamed: the whole text */
    size_t len, cap;
    cJSON *logprobs; /* non-streamed: accumulated; NULL without logprobs */
    int completion_tokens;
    double t_first, t_last;
    int n_events_tokens;
    int32_t prev_token; /* the token before the next one: alternatives are decoded after it */
} choice;

struct job {
    sq_server *srv;
    sq_oai_request req;
    sq_oai_head head;
    char id[48];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;        /* the connection's, and one per choice still in the engine */
    choice *choices; /* [req.n] */
    int n_finished;
    int prompt_tokens, cached_tokens;
    double t_start;
    /* streamed: server-sent events waiting to be sent */
    char *out;
    size_t out_len, out_cap, out_sent;
    int done_sent;
    int client_gone;
};

static const char *finish_name(sq_finish_reason f) {
    return f == SQ_FINISH_STOP ? "stop" : f == SQ_FINISH_LENGTH ? "length" : NULL;
}

static void histogram_add(histogram *h, const double *bounds, size_t n_bounds, double v) {
    size_t b = 0;
    while (b < n_bounds && v > bounds[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->n++;
}

/* ---------------------------------------------------------------- jobs */

static void job_unref(job *j) {
    pthread_mutex_lock(&j->lock);
    int left = --j->refs;
    pthread_mutex_unlock(&j->lock);
    if (left) return;
    for (int i = 0; j->choices && i < j->req.n; i++) {
        free(j->choices[i].text);
        cJSON_Delete(j->choices[i].logprobs);
    }
    free(j->choices);
    free(j->out);
    sq_oai_request_free(&j->req);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (!n || SQ_ARRAY_RESERVE(*buf, *cap, *len + n + 1)) return;
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
}

static void queue_event(job *j, char *sse) {
    if (sse) append(&j->out, &j->out_len, &j->out_cap, sse, strlen(sse));
    free(sse);
}

/* A token's alternatives as texts: what each would have added after the token before it (so that a word's
 * leading space is kept, as in the chosen token's text). */
static cJSON *token_logprobs(job *j, choice *c, const sq_engine_event *ev) {
    const sq_tokenizer *tok = sq_model_tokenizer(j->srv->model);
    char *texts[32] = {0};
    size_t lens[32] = {0};
    sq_detokenizer *d = sq_detokenizer_create(tok);
    for (int i = 0; d && i < ev->n_top && i < 32; i++) {
        sq_error *err = sq_detokenizer_reset(d, &c->prev_token, 1);
        if (err) {
            sq_error_free(err);
            continue;
        }
        size_t a, b;
        const char *p = sq_detokenizer_push(d, ev->top_ids[i], &a);
        char *t = malloc(a + 8);
        if (!t) continue;
        memcpy(t, p, a);
        p = sq_detokenizer_flush(d, &b);
        if (b > 8) b = 8; /* a held-back character is at most 4 bytes */
        memcpy(t + a, p, b);
        texts[i] = t;
        lens[i] = a + b;
    }
    sq_detokenizer_free(d);
    c->prev_token = ev->token;
    const char *tt[32];
    for (int i = 0; i < ev->n_top && i < 32; i++) tt[i] = texts[i] ? texts[i] : "";
    cJSON *lp = c->logprobs ? c->logprobs : sq_oai_logprobs_new(j->req.kind);
    sq_oai_logprobs_add(lp, j->req.kind, ev->text, ev->text_len, ev->logprob, tt, lens, ev->top_logprobs,
                        ev->n_top, c->len);
    for (int i = 0; i < ev->n_top && i < 32; i++) free(texts[i]);
    return lp;
}

/* The engine's events for one choice (on the engine's thread). */
static int on_event(void *user, const sq_engine_event *ev) {
    choice *c = user;
    job *j = c->job;
    sq_server *srv = j->srv;
    double now = sq_monotonic_seconds();
    pthread_mutex_lock(&j->lock);
    j->prompt_tokens = ev->prompt_tokens;
    j->cached_tokens = ev->cached_tokens;
    c->completion_tokens = ev->completion_tokens;
    if (ev->token >= 0) {
        if (!c->n_events_tokens++) c->t_first = now;
        c->t_last = now;
    }
    cJSON *lp = NULL;
    if (ev->token >= 0 && j->req.logprobs) {
        if (j->req.stream)
            lp = token_logprobs(j, c, ev);
        else
            c->logprobs = token_logprobs(j, c, ev);
    }
    if (j->req.stream) {
        const char *fin = ev->finish ? finish_name(ev->finish) : NULL;
        if (ev->text_len || lp || ev->finish)
            queue_event(j,
                        sq_oai_chunk(&j->head, c->index, ev->text ? ev->text : "", ev->text_len, lp, fin, 0));
        c->len += ev->text_len;
    } else {
        append(&c->text, &c->len, &c->cap, ev->text, ev->text_len);
    }
    int cancel = j->client_gone;
    if (ev->finish) {
        c->finished = 1;
        c->finish = ev->finish;
        j->n_finished++;
        if (j->req.stream && j->n_finished == j->req.n) {
            if (j->req.include_usage) {
                int completion = 0;
                for (int i = 0; i < j->req.n; i++) completion += j->choices[i].completion_tokens;
                queue_event(j, sq_oai_usage_chunk(
                                   &j->head, sq_oai_usage(j->prompt_tokens, completion, j->cached_tokens)));
            }
            append(&j->out, &j->out_len, &j->out_cap, "data: [DONE]\n\n", 14);
        }
    }
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (ev->finish) {
        pthread_mutex_lock(&srv->lock);
        if (ev->finish <= SQ_FINISH_CANCELLED) srv->finished[ev->finish - 1]++;
        if (c->n_events_tokens) histogram_add(&srv->ttft, ttft_buckets, N_TTFT, c->t_first - j->t_start);
        if (c->n_events_tokens > 1)
            histogram_add(&srv->tpot, tpot_buckets, N_TPOT,
                          (c->t_last - c->t_first) / (c->n_events_tokens - 1));
        pthread_mutex_unlock(&srv->lock);
        int last = 0;
        pthread_mutex_lock(&j->lock);
        last = j->n_finished == j->req.n;
        pthread_mutex_unlock(&j->lock);
        if (last) {
            pthread_mutex_lock(&srv->lock);
            srv->in_flight--;
            pthread_mutex_unlock(&srv->lock);
        }
        job_unref(j);
    }
    return cancel;
}

/* Cancels the job's unfinished choices (the client went away). Caller holds j->lock. */
static void cancel_job(job *j) {
    j->client_gone = 1;
    sq_server *srv = j->srv;
    pthread_rwlock_rdlock(&srv->engine_lock);
    for (int i = 0; srv->engine && i < j->req.n; i++)
        if (!j->choices[i].finished && j->choices[i].engine_id)
            sq_engine_cancel(srv->engine, j->choices[i].engine_id);
    pthread_rwlock_unlock(&srv->engine_lock);
}

/* ---------------------------------------------------------------- streaming */

static ssize_t stream_next(void *stream, char *buf, size_t max) {
    job *j = stream;
    pthread_mutex_lock(&j->lock);
    while (j->out_sent == j->out_len && j->n_finished < j->req.n && !j->client_gone) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    }
    ssize_t n = -1;
    if (j->out_sent < j->out_len) {
        size_t k = j->out_len - j->out_sent;
        if (k > max) k = max;
        memcpy(buf, j->out + j->out_sent, k);
        j->out_sent += k;
        n = (ssize_t)k;
    }
    pthread_mutex_unlock(&j->lock);
    return n;
}

/* The connection is done with the stream, at its end or because the client went away. */
static void stream_free(void *stream) {
    job *j = stream;
    pthread_mutex_lock(&j->lock);
    if (j->n_finished < j->req.n) cancel_job(j);
    pthread_mutex_unlock(&j->lock);
    job_unref(j);
}

/* ---------------------------------------------------------------- endpoints */

static void answer_json(sq_http_response *res, int status, char *body) {
    *res = (sq_http_response){.status = status,
                              .content_type = "application/json",
                              .body = body,
                              .body_len = body ? strlen(body) : 0};
    if (!body) sq_http_error(res, 500, "server_error", NULL, "out of memory");
}

static void count_error(sq_server *srv) {
    pthread_mutex_lock(&srv->lock);
    srv->errors++;
    pthread_mutex_unlock(&srv->lock);
}

static void fail(sq_server *srv, sq_http_response *res, int status, const char *param, const char *msg) {
    count_error(srv);
    sq_http_error(res, status, status >= 500 ? "server_error" : "invalid_request_error", param, msg);
}

/* The prompt as token ids: completions tokenize their text as sq_generate does (BOS as the tokenizer says,
 * special-token text matched); chat renders the messages with the model's template and tokenizes that,
 * adding BOS only when the template did not put one first. */
static SQ_NODISCARD sq_error *prompt_ids(sq_server *srv, const sq_oai_request *q, int32_t **ids, int *n) {
    const sq_tokenizer *tok = sq_model_tokenizer(srv->model);
    if (q->kind == SQ_OAI_COMPLETION) {
        if (q->prompt_ids) {
            if (!(*ids = malloc(((size_t)q->n_prompt_ids + 1) * sizeof **ids)))
                return sq_errorf(SQ_ERR_NOMEM, "out of memory");
            memcpy(*ids, q->prompt_ids, (size_t)q->n_prompt_ids * sizeof **ids);
            *n = q->n_prompt_ids;
            return NULL;
        }
        return sq_tokenize(tok, q->prompt, strlen(q->prompt), sq_tokenizer_adds_bos(tok), 1, ids, n);
    }
    char *text;
    size_t len;
    sq_chat_render_options ro = {.add_generation_prompt = 1};
    SQ_TRY(sq_chat_template_render_json(srv->chat, q->messages_json, &ro, &text, &len));
    sq_error *err = sq_chat_tokenize(tok, text, len, ids, n);
    free(text);
    return err;
}

static uint64_t clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec;
}

static void whole_response(job *j, sq_http_response *res) {
    cJSON *choices = cJSON_CreateArray();
    int completion = 0;
    for (int i = 0; i < j->req.n; i++) {
        choice *c = &j->choices[i];
        cJSON_AddItemToArray(
            choices,
            sq_oai_choice(j->req.kind, i, c->text ? c->text : "", c->len,
                          j->req.logprobs ? (c->logprobs ? c->logprobs : sq_oai_logprobs_new(j->req.kind))
                                          : NULL,
                          finish_name(c->finish)));
        c->logprobs = NULL; /* taken over */
        completion += c->completion_tokens;
    }
    answer_json(
        res, 200,
        sq_oai_response(&j->head, choices, sq_oai_usage(j->prompt_tokens, completion, j->cached_tokens)));
}

static void generate(sq_server *srv, const sq_http_request *hr, sq_oai_kind kind, sq_http_response *res) {
    job *j = calloc(1, sizeof *j);
    if (!j) return fail(srv, res, 500, NULL, "out of memory");
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->srv = srv;
    j->refs = 1;
    sq_error *err = sq_oai_request_parse(kind, hr->body, hr->body_len, &j->req);
    if (err) {
        fail(srv, res, 400, j->req.param, sq_error_message(err));
        sq_error_free(err);
        return job_unref(j);
    }
    sq_oai_request *q = &j->req;
    if (q->model && strcmp(q->model, srv->alias)) {
        char msg[256];
        snprintf(msg, sizeof msg, "The model '%.100s' does not exist; this server serves '%.100s'", q->model,
                 srv->alias);
        count_error(srv);
        sq_http_error(res, 404, "invalid_request_error", "model", msg);
        res->body_len = strlen(res->body);
        return job_unref(j);
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    if ((err = prompt_ids(srv, q, &ids, &n_ids))) {
        fail(srv, res, sq_error_code_of(err) == SQ_ERR_NOMEM ? 500 : 400,
             kind == SQ_OAI_CHAT ? "messages" : "prompt", sq_error_message(err));
        sq_error_free(err);
        return job_unref(j);
    }
    pthread_rwlock_rdlock(&srv->engine_lock);
    if (!srv->engine) {
        pthread_rwlock_unlock(&srv->engine_lock);
        free(ids);
        fail(srv, res, 503, NULL, "the server is shutting down");
        return job_unref(j);
    }
    const int n_ctx = sq_engine_n_ctx(srv->engine);
    /* OpenAI's completions default to 16 tokens; chat to what the context leaves */
    int64_t max_tokens = q->max_tokens >= 0 ? q->max_tokens : kind == SQ_OAI_COMPLETION ? 16 : -1;
    char msg[256];
    if (n_ids == 0 || n_ids > n_ctx || (max_tokens >= 0 && n_ids + max_tokens > n_ctx)) {
        if (n_ids == 0)
            snprintf(msg, sizeof msg, "the prompt is empty");
        else
            snprintf(
                msg, sizeof msg,
                "This model's maximum context length is %d tokens. However, you requested %lld tokens (%d in "
                "the prompt, %lld for the completion).",
                n_ctx, (long long)n_ids + (max_tokens > 0 ? max_tokens : 0), n_ids,
                (long long)(max_tokens > 0 ? max_tokens : 0));
        pthread_rwlock_unlock(&srv->engine_lock);
        free(ids);
        fail(srv, res, 400,
             max_tokens >= 0 && n_ids <= n_ctx && n_ids ? "max_tokens"
             : kind == SQ_OAI_CHAT                      ? "messages"
                                                        : "prompt",
             msg);
        return job_unref(j);
    }
    pthread_mutex_lock(&srv->lock);
    int draining = srv->draining;
    uint64_t serial = ++srv->next_job;
    if (!draining) srv->in_flight++, srv->requests[kind]++;
    pthread_mutex_unlock(&srv->lock);
    if (draining) {
        pthread_rwlock_unlock(&srv->engine_lock);
        free(ids);
        fail(srv, res, 503, NULL, "the server is shutting down");
        return job_unref(j);
    }
    snprintf(j->id, sizeof j->id, "%s-%llu%06llu", kind == SQ_OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)serial);
    j->head = (sq_oai_head){.kind = kind, .id = j->id, .created = (int64_t)time(NULL), .model = srv->alias};
    j->choices = calloc((size_t)q->n, sizeof *j->choices);
    j->t_start = sq_monotonic_seconds();
    j->prompt_tokens = n_ids;
    if (!j->choices) {
        pthread_rwlock_unlock(&srv->engine_lock);
        free(ids);
        pthread_mutex_lock(&srv->lock);
        srv->in_flight--;
        pthread_mutex_unlock(&srv->lock);
        fail(srv, res, 500, NULL, "out of memory");
        return job_unref(j);
    }
    if (q->stream && kind == SQ_OAI_CHAT)
        for (int i = 0; i < q->n; i++) queue_event(j, sq_oai_chunk(&j->head, i, "", 0, NULL, NULL, 1));
    uint64_t seed = q->has_seed ? (uint64_t)q->seed : clock_seed();
    int submitted = 0;
    for (int i = 0; i < q->n; i++) {
        choice *c = &j->choices[i];
        c->job = j;
        c->index = i;
        c->prev_token = ids[n_ids - 1];
        sq_engine_request er = {.prompt = ids,
                                .n_prompt = n_ids,
                                .max_tokens = (int)max_tokens,
                                .sampling = {.temperature = (float)q->temperature,
                                             .top_k = 0,
                                             .top_p = q->top_p > 0 ? (float)q->top_p : 1e-6f,
                                             .min_p = 0,
                                             .repeat_penalty = 1,
                                             .repeat_last_n = 0,
                                             .seed = seed + (uint64_t)i},
                                .presence_penalty = (float)q->presence_penalty,
                                .frequency_penalty = (float)q->frequency_penalty,
                                .stop = (const char *const *)q->stop,
                                .n_stop = q->n_stop,
                                .top_logprobs = q->logprobs ? q->top_logprobs : -1};
        pthread_mutex_lock(&j->lock);
        j->refs++;
        pthread_mutex_unlock(&j->lock);
        err = sq_engine_submit(srv->engine, &er, on_event, c, &c->engine_id);
        if (err) {
            pthread_mutex_lock(&j->lock);
            j->refs--;
            pthread_mutex_unlock(&j->lock);
            break;
        }
        submitted++;
    }
    pthread_rwlock_unlock(&srv->engine_lock);
    free(ids);
    if (err) { /* choices already submitted are cancelled; the rest count as finished */
        pthread_mutex_lock(&j->lock);
        j->n_finished += q->n - submitted;
        cancel_job(j);
        pthread_mutex_unlock(&j->lock);
        if (!submitted) {
            pthread_mutex_lock(&srv->lock);
            srv->in_flight--;
            pthread_mutex_unlock(&srv->lock);
        }
        fail(srv, res, 400, NULL, sq_error_message(err));
        sq_error_free(err);
        return job_unref(j);
    }
    if (q->stream) {
        *res = (sq_http_response){.status = 200,
                                  .content_type = "text/event-stream",
                                  .next = stream_next,
                                  .stream = j,
                                  .stream_free = stream_free};
        return;
    }
    /* whole answer: wait, watching for a client that goes away meanwhile */
    pthread_mutex_lock(&j->lock);
    while (j->n_finished < q->n) {
        if (!j->client_gone && sq_http_client_gone(hr->fd)) cancel_job(j);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    }
    pthread_mutex_unlock(&j->lock);
    whole_response(j, res);
    job_unref(j);
}

static int engine_n_ctx(sq_server *srv) {
    pthread_rwlock_rdlock(&srv->engine_lock);
    int n = srv->engine ? sq_engine_n_ctx(srv->engine) : 0;
    pthread_rwlock_unlock(&srv->engine_lock);
    return n;
}

static void models(sq_server *srv, sq_http_response *res) {
    cJSON *r = cJSON_CreateObject(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "object", "list");
    cJSON_AddStringToObject(m, "id", srv->alias);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "squeeze");
    cJSON_AddNumberToObject(m, "max_model_len", engine_n_ctx(srv));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "data"), m);
    answer_json(res, 200, cJSON_PrintUnformatted(r));
    cJSON_Delete(r);
}

static void put_histogram(char **b, size_t *len, size_t *cap, const char *name, const char *help,
                          const histogram *h, const double *bounds, size_t n) {
    char line[256];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    append(b, len, cap, line, strlen(line));
    int64_t cum = 0;
    for (size_t i = 0; i <= n; i++) {
        cum += h->counts[i];
        if (i < n)
            snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %lld\n", name, bounds[i], (long long)cum);
        else
            snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %lld\n", name, (long long)cum);
        append(b, len, cap, line, strlen(line));
    }
    snprintf(line, sizeof line, "%s_sum %.9g\n%s_count %lld\n", name, h->sum, name, (long long)h->n);
    append(b, len, cap, line, strlen(line));
}

static void metrics(sq_server *srv, sq_http_response *res) {
    sq_engine_stats st = {0};
    pthread_rwlock_rdlock(&srv->engine_lock);
    if (srv->engine) sq_engine_get_stats(srv->engine, &st);
    pthread_rwlock_unlock(&srv->engine_lock);
    pthread_mutex_lock(&srv->lock);
    char *b = NULL;
    size_t len = 0, cap = 0;
    char text[4096];
    snprintf(
        text, sizeof text,
        "# HELP squeeze_requests_total Generation requests accepted, by endpoint.\n"
        "# TYPE squeeze_requests_total counter\n"
        "squeeze_requests_total{endpoint=\"completions\"} %lld\n"
        "squeeze_requests_total{endpoint=\"chat_completions\"} %lld\n"
        "# HELP squeeze_request_errors_total Requests answered with an error status.\n"
        "# TYPE squeeze_request_errors_total counter\nsqueeze_request_errors_total %lld\n"
        "# HELP squeeze_choices_finished_total Choices finished, by reason.\n"
        "# TYPE squeeze_choices_finished_total counter\n"
        "squeeze_choices_finished_total{reason=\"stop\"} %lld\n"
        "squeeze_choices_finished_total{reason=\"length\"} %lld\n"
        "squeeze_choices_finished_total{reason=\"cancelled\"} %lld\n"
        "# HELP squeeze_prompt_tokens_total Prompt tokens admitted.\n"
        "# TYPE squeeze_prompt_tokens_total counter\nsqueeze_prompt_tokens_total %lld\n"
        "# HELP squeeze_prefix_cache_hit_tokens_total Prompt tokens whose KV blocks came from the prefix "
        "cache.\n"
        "# TYPE squeeze_prefix_cache_hit_tokens_total counter\nsqueeze_prefix_cache_hit_tokens_total %lld\n"
        "# HELP squeeze_generation_tokens_total Tokens generated.\n"
        "# TYPE squeeze_generation_tokens_total counter\nsqueeze_generation_tokens_total %lld\n"
        "# HELP squeeze_preemptions_total Requests preempted (KV blocks ran out; recomputed later).\n"
        "# TYPE squeeze_preemptions_total counter\nsqueeze_preemptions_total %lld\n"
        "# HELP squeeze_spec_draft_tokens_total Speculative draft tokens verified (serve --spec).\n"
        "# TYPE squeeze_spec_draft_tokens_total counter\nsqueeze_spec_draft_tokens_total %lld\n"
        "# HELP squeeze_spec_accepted_tokens_total Speculative draft tokens kept.\n"
        "# TYPE squeeze_spec_accepted_tokens_total counter\nsqueeze_spec_accepted_tokens_total %lld\n"
        "# HELP squeeze_spec_verify_steps_total Request steps that verified drafts.\n"
        "# TYPE squeeze_spec_verify_steps_total counter\nsqueeze_spec_verify_steps_total %lld\n"
        "# HELP squeeze_spec_draft_seconds_total Time spent proposing drafts.\n"
        "# TYPE squeeze_spec_draft_seconds_total counter\nsqueeze_spec_draft_seconds_total %.6f\n"
        "# HELP squeeze_spec_draft_kv_blocks_used A draft model's KV cache blocks held (serve --spec "
        "draft).\n"
        "# TYPE squeeze_spec_draft_kv_blocks_used gauge\nsqueeze_spec_draft_kv_blocks_used %d\n"
        "# HELP squeeze_spec_draft_kv_blocks_total A draft model's KV cache blocks in its pool.\n"
        "# TYPE squeeze_spec_draft_kv_blocks_total gauge\nsqueeze_spec_draft_kv_blocks_total %d\n"
        "# HELP squeeze_requests_waiting Requests queued for a sequence.\n"
        "# TYPE squeeze_requests_waiting gauge\nsqueeze_requests_waiting %d\n"
        "# HELP squeeze_requests_running Requests holding a sequence.\n"
        "# TYPE squeeze_requests_running gauge\nsqueeze_requests_running %d\n"
        "# HELP squeeze_kv_blocks_used KV cache blocks held by requests or the prefix cache.\n"
        "# TYPE squeeze_kv_blocks_used gauge\nsqueeze_kv_blocks_used %d\n"
        "# HELP squeeze_kv_blocks_total KV cache blocks in the pool.\n"
        "# TYPE squeeze_kv_blocks_total gauge\nsqueeze_kv_blocks_total %d\n",
        (long long)srv->requests[SQ_OAI_COMPLETION], (long long)srv->requests[SQ_OAI_CHAT],
        (long long)srv->errors, (long long)srv->finished[SQ_FINISH_STOP - 1],
        (long long)srv->finished[SQ_FINISH_LENGTH - 1], (long long)srv->finished[SQ_FINISH_CANCELLED - 1],
        (long long)st.prompt_tokens, (long long)st.cached_tokens, (long long)st.generated_tokens,
        (long long)st.preemptions, (long long)st.spec.drafted, (long long)st.spec.accepted,
        (long long)st.spec.steps, st.spec.draft_seconds, st.spec_draft_kv_blocks_used,
        st.spec_draft_kv_blocks_total, st.waiting, st.running, st.kv_blocks_used, st.kv_blocks_total);
    append(&b, &len, &cap, text, strlen(text));
    /* acceptance by draft position: request steps that reached position d with a draft there, and kept it */
    for (int family = 0; st.spec.steps && family < 2; family++) {
        const char *name =
            family ? "squeeze_spec_position_accepted_total" : "squeeze_spec_position_drafts_total";
        char line[200];
        int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n", name,
                         family ? "Request steps that kept the draft at this position."
                                : "Request steps with a draft at this position.",
                         name);
        append(&b, &len, &cap, line, (size_t)n);
        for (int d = 0; d < st.spec.k && d < SQ_SPEC_MAX_K; d++) {
            n = snprintf(line, sizeof line, "%s{position=\"%d\"} %lld\n", name, d,
                         (long long)(family ? st.spec.accepted_at[d] : st.spec.reached[d]));
            append(&b, &len, &cap, line, (size_t)n);
        }
    }
    put_histogram(&b, &len, &cap, "squeeze_time_to_first_token_seconds", "Time from request to first token.",
                  &srv->ttft, ttft_buckets, N_TTFT);
    put_histogram(&b, &len, &cap, "squeeze_time_per_output_token_seconds",
                  "Mean time between a choice's tokens after the first.", &srv->tpot, tpot_buckets, N_TPOT);
    pthread_mutex_unlock(&srv->lock);
    *res = (sq_http_response){
        .status = 200, .content_type = "text/plain; version=0.0.4", .body = b, .body_len = len};
    if (!b) sq_http_error(res, 500, "server_error", NULL, "out of memory");
}

static void handle(void *user, const sq_http_request *req, sq_http_response *res) {
    sq_server *srv = user;
    const int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    static const struct {
        const char *path;
        int post;
    } routes[] = {{"/v1/completions", 1},
                  {"/v1/chat/completions", 1},
                  {"/v1/models", 0},
                  {"/health", 0},
                  {"/metrics", 0}};
    int r = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof *routes); i++)
        if (!strcmp(req->path, routes[i].path)) r = i;
    if (r < 0) return fail(srv, res, 404, NULL, "no such endpoint");
    if (routes[r].post ? !post : !get) return fail(srv, res, 405, NULL, "method not allowed");
    switch (r) {
    case 0:
        return generate(srv, req, SQ_OAI_COMPLETION, res);
    case 1:
        return generate(srv, req, SQ_OAI_CHAT, res);
    case 2:
        return models(srv, res);
    case 3: {
        char *ok = strdup("{\"status\":\"ok\"}");
        return answer_json(res, 200, ok);
    }
    default:
        return metrics(srv, res);
    }
}

/* ---------------------------------------------------------------- the engine's thread */

static void *engine_loop(void *p) {
    sq_server *srv = p;
    for (;;) {
        pthread_mutex_lock(&srv->lock);
        int stop = srv->stopping;
        pthread_mutex_unlock(&srv->lock);
        if (stop) break;
        int busy = 0;
        sq_error *err = sq_engine_step(srv->engine, &busy);
        if (err) { /* only memory exhaustion; the requests affected have been finished */
            sq_error_free(err);
            busy = 0;
        }
        if (!busy) sq_engine_wait(srv->engine, 0.5);
    }
    return NULL;
}

void sq_server_stop(sq_server *srv, double grace_seconds, sq_engine_stats *final_stats) {
    if (!srv) return;
    pthread_mutex_lock(&srv->lock);
    srv->draining = 1;
    pthread_mutex_unlock(&srv->lock);
    sq_http_quiesce(srv->http);
    for (double t0 = sq_monotonic_seconds(); sq_monotonic_seconds() - t0 < grace_seconds;) {
        pthread_mutex_lock(&srv->lock);
        int left = srv->in_flight;
        pthread_mutex_unlock(&srv->lock);
        if (!left) break;
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    }
    if (srv->thread_started) {
        pthread_mutex_lock(&srv->lock);
        srv->stopping = 1;
        pthread_mutex_unlock(&srv->lock);
        sq_engine_wake(srv->engine);
        pthread_join(srv->thread, NULL);
    }
    /* what is left is cancelled: its waiting connections finish, then the daemon stops */
    pthread_rwlock_wrlock(&srv->engine_lock);
    sq_engine *engine = srv->engine;
    if (final_stats) { /* the engine no longer steps: its statistics are final */
        *final_stats = (sq_engine_stats){0};
        if (engine) sq_engine_get_stats(engine, final_stats);
    }
    srv->engine = NULL;
    pthread_rwlock_unlock(&srv->engine_lock);
    sq_engine_free(engine);
    sq_http_stop(srv->http);
    sq_chat_template_free(srv->chat);
    pthread_mutex_destroy(&srv->lock);
    pthread_rwlock_destroy(&srv->engine_lock);
    free(srv->alias);
    free(srv);
}

SQ_NODISCARD sq_error *sq_server_start(const sq_model *model, const sq_server_options *opts,
                                       sq_server **out) {
    *out = NULL;
    sq_server_options o = opts ? *opts : (sq_server_options){0};
    if (!sq_model_tokenizer(model)) return sq_errorf(SQ_ERR_INVALID_ARG, "serve: the model has no tokenizer");
    sq_server *srv = calloc(1, sizeof *srv);
    if (!srv) return sq_errorf(SQ_ERR_NOMEM, "serve: out of memory");
    pthread_mutex_init(&srv->lock, NULL);
    pthread_rwlock_init(&srv->engine_lock, NULL);
    srv->model = model;
    srv->alias = strdup(o.alias ? o.alias : "squeeze");
    sq_error *err = srv->alias ? NULL : sq_errorf(SQ_ERR_NOMEM, "serve: out of memory");
    if (!err) err = sq_chat_template_from_tokenizer(sq_model_tokenizer(model), &srv->chat);
    if (!err) err = sq_engine_create(model, &o.engine, &srv->engine);
    if (!err && pthread_create(&srv->thread, NULL, engine_loop, srv))
        err = sq_errorf(SQ_ERR_NOMEM, "serve: cannot start the engine's thread");
    srv->thread_started = !err;
    sq_http_options ho = {.host = o.host,
                          .port = o.port,
                          .api_key = o.api_key,
                          .max_body_bytes = o.max_body_bytes ? o.max_body_bytes : (size_t)8 << 20,
                          .idle_timeout_s = o.idle_timeout_s ? o.idle_timeout_s : 30,
                          .max_connections = o.max_connections ? o.max_connections : 1000};
    if (!err) err = sq_http_start(&ho, handle, srv, &srv->http);
    if (err) {
        sq_server_stop(srv, 0, NULL);
        return sq_error_wrap(err, "serve");
    }
    *out = srv;
    return NULL;
}

int sq_server_port(const sq_server *s) { return sq_http_port(s->http); }
