/* squeeze chat: an interactive chat in the terminal. Each turn renders the whole conversation with the
 * model's own chat template (the server's prompts, byte for byte) and runs it through the serving engine,
 * whose prefix cache keeps the earlier turns' KV blocks: only the new turn is computed. The oldest turns
 * (after a system message) are dropped when the conversation no longer fits the context. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Room left for a reply: a conversation is shortened until this many tokens remain free in the context. */
#define MIN_REPLY_TOKENS 64

typedef struct chat_args {
    const char *model_path, *tokenizer_path, *system, *kv_type;
    long threads, n_ctx, seed, max_tokens;
    double temperature, top_p;
} chat_args;

static const cli_verb verb = {
    .name = "chat",
    .usage = "-m MODEL [options]",
    .about = "An interactive chat: type a message and Enter; the reply streams back. End with Ctrl-D (an\n"
             "empty input). The model's own chat template renders the conversation (a plain 'Role: text'\n"
             "fallback for models without one); history is kept while it fits the context.\n",
};

static int parse_args(int argc, char **argv, chat_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model_path, 1),
        CLI_TEXT_FLAG("--system", "TEXT", &a->system, "a system message to start the conversation with",
                      .def_shown = ""),
        CLI_NUMBER_FLAG("--temp", "T", &a->temperature, 0, 100, 0.8, "temperature; 0: greedy"),
        CLI_NUMBER_FLAG("--top-p", "P", &a->top_p, 0, 1, 0.95, "nucleus sampling; 1: off", .lo_open = 1),
        CLI_INT_FLAG("-n, --n-predict", "N", &a->max_tokens, -1, INT32_MAX, -1,
                     "tokens per reply at most; -1: until the end of the turn or the context"),
        CLI_FLAG_SEED(&a->seed, -1, "sampling seed"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_CTX(&a->n_ctx, "the model's, at most 4096"),
        CLI_FLAG_KV_TYPE(&a->kv_type),
        CLI_FLAG_TOKENIZER(&a->tokenizer_path),
    };
    return cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
}

typedef struct reply {
    char *text;
    size_t len, cap;
    int done;
    const char *error;
} reply;

static int on_event(void *user, const sq_engine_event *ev) {
    reply *r = user;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
        if (r->len + ev->text_len + 1 > r->cap) {
            size_t cap = (r->len + ev->text_len + 1) * 2;
            char *t = realloc(r->text, cap);
            if (!t) return 1;
            r->text = t;
            r->cap = cap;
        }
        memcpy(r->text + r->len, ev->text, ev->text_len);
        r->len += ev->text_len;
        r->text[r->len] = 0;
    }
    if (ev->finish) r->done = 1;
    if (ev->finish == SQ_FINISH_ERROR) r->error = "generation failed";
    return 0;
}

typedef struct conversation {
    sq_chat_message *m;
    char **owned; /* [n] the strings each message's content points to */
    int n, cap;
} conversation;

static int add_message(conversation *c, const char *role, char *content) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        sq_chat_message *m = realloc(c->m, (size_t)cap * sizeof *m);
        if (!m) return -1;
        c->m = m;
        char **o = realloc(c->owned, (size_t)cap * sizeof *o);
        if (!o) return -1;
        c->owned = o;
        c->cap = cap;
    }
    c->m[c->n] = (sq_chat_message){.role = role, .content = content};
    c->owned[c->n++] = content;
    return 0;
}

static void drop_message(conversation *c, int i) {
    free(c->owned[i]);
    memmove(c->m + i, c->m + i + 1, (size_t)(c->n - i - 1) * sizeof *c->m);
    memmove(c->owned + i, c->owned + i + 1, (size_t)(c->n - i - 1) * sizeof *c->owned);
    c->n--;
}

/* The conversation's prompt, the oldest exchanges dropped until a reply has room. */
static SQ_NODISCARD sq_error *fit_prompt(const sq_chat_template *t, const sq_tokenizer *tok, conversation *c, int first,
                            int n_ctx, int32_t **ids, int *n_ids) {
    for (;;) {
        char *text;
        size_t len;
        sq_chat_render_options ro = {.add_generation_prompt = 1};
        sq_error *err = sq_chat_template_render(t, c->m, c->n, &ro, &text, &len);
        if (!err) err = sq_chat_tokenize(tok, text, len, ids, n_ids);
        if (!err) free(text);
        if (err) return err;
        if (*n_ids + MIN_REPLY_TOKENS <= n_ctx || c->n - first <= 1) return NULL;
        free(*ids);
        drop_message(c, first); /* the oldest user message, then its reply */
        if (c->n - first > 1) drop_message(c, first);
    }
}

int sq_cmd_chat(int argc, char **argv) {
    chat_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model = NULL;
    sq_engine *engine = NULL;
    sq_chat_template *tmpl = NULL;
    sq_load_options lo = {.tokenizer_path = a.tokenizer_path};
    sq_error *err = cli_load_model(a.model_path, &lo, &model);
    const sq_tokenizer *tok = model ? sq_model_tokenizer(model) : NULL;
    if (!err && !tok) {
        sq_model_free(model);
        fprintf(stderr, "squeeze: %s: no tokenizer inside or beside the model; give one with --tokenizer\n",
                a.model_path);
        return 1;
    }
    if (!err) err = sq_chat_template_from_tokenizer(tok, &tmpl);
    sq_engine_options eo = {
        .n_ctx = (int)a.n_ctx, .max_seqs = 1, .n_threads = (int)a.threads, .kv_type = cli_kv_type(a.kv_type)};
    if (!err) err = sq_engine_create(model, &eo, &engine);
    conversation c = {0};
    char *line = NULL;
    size_t line_cap = 0;
    uint64_t seed = a.seed < 0 ? cli_clock_seed() : (uint64_t)a.seed;
    int first = 0;
    if (!err && a.system) {
        char *sys = strdup(a.system);
        if (!sys || add_message(&c, "system", sys)) free(sys), err = NULL, rc = 1;
        first = 1;
    }
    if (!err && sq_chat_template_is_fallback(tmpl))
        fprintf(stderr, "squeeze chat: the model has no chat template: using the plain fallback\n");
    while (!err && rc != 1) {
        fputs("> ", stdout);
        fflush(stdout);
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got <= 0) break;
        if (line[got - 1] == '\n') line[--got] = 0;
        char *msg = strdup(line);
        if (!msg || add_message(&c, "user", msg)) {
            free(msg);
            rc = 1;
            break;
        }
        int32_t *ids = NULL;
        int n_ids = 0;
        err = fit_prompt(tmpl, tok, &c, first, sq_engine_n_ctx(engine), &ids, &n_ids);
        if (err) break;
        if (n_ids >= sq_engine_n_ctx(engine)) {
            free(ids);
            fprintf(stderr, "squeeze chat: the message does not fit the context of %d tokens\n",
                    sq_engine_n_ctx(engine));
            drop_message(&c, c.n - 1);
            continue;
        }
        reply r = {0};
        sq_engine_request q = {.prompt = ids,
                               .n_prompt = n_ids,
                               .max_tokens = (int)a.max_tokens,
                               .sampling = {.temperature = (float)a.temperature,
                                            .top_p = (float)a.top_p,
                                            .repeat_penalty = 1,
                                            .seed = seed++},
                               .top_logprobs = -1};
        err = sq_engine_submit(engine, &q, on_event, &r, NULL);
        free(ids);
        while (!err && !r.done) err = sq_engine_step(engine, NULL);
        fputc('\n', stdout);
        if (!err && r.error) err = NULL, rc = 1, fprintf(stderr, "squeeze chat: %s\n", r.error);
        char *text = r.text ? r.text : strdup("");
        if (!text || add_message(&c, "assistant", text)) {
            free(text);
            rc = 1;
        }
    }
    free(line);
    while (c.n) drop_message(&c, c.n - 1);
    free(c.m);
    free(c.owned);
    sq_engine_free(engine);
    sq_chat_template_free(tmpl);
    sq_model_free(model);
    if (err) return cli_fail(err);
    return rc == 1 ? 1 : 0;
}
