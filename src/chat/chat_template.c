/* The public chat-template API (squeeze.h): compile once, render per conversation. */
#include <stdio.h>
#include <stdlib.h>

#include "chat/eval.h"
#include "chat/value_json.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

enum { MAX_SOURCE = 4 << 20, DEFAULT_MAX_STEPS = 10000000 };
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)

/* For models without a template of their own (docs/chat-templates.md): one "Role: text" paragraph per
 * message, then "Assistant:" to prompt a reply. */
static const char fallback_source[] =
    "{%- for message in messages -%}"
    "{{ message.role | capitalize }}: {{ message.content | trim }}{{ '\\n\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}Assistant:{% endif -%}";

struct sq_chat_template {
    ct_arena arena; /* the source and its syntax tree */
    const char *source_in;
    char *source;
    size_t len;
    ct_node_list body;
    char *bos_token, *eos_token; /* from the tokenizer (sq_chat_template_from_tokenizer); NULL: none */
};

/* Unknown filters and tests are errors when the template compiles, as in jinja2. */
static void check_names(ct_arena *a, const ct_node *n);

static void check_list(ct_arena *a, ct_node_list l) {
    for (size_t k = 0; k < l.n; k++) check_names(a, l.v[k]);
}

static void check_names(ct_arena *a, const ct_node *n) {
    if (!n) return;
    if ((n->kind == E_FILTER && !ct_filter_exists(n->name)) ||
        (n->kind == E_TEST && !ct_test_exists(n->name))) {
        a->line = n->line;
        a->col = n->col;
        ct_fail(a, SQ_ERR_FORMAT, "no %s named '%.*s'", n->kind == E_FILTER ? "filter" : "test",
                (int)n->name.n, n->name.p);
    }
    check_names(a, n->a);
    check_names(a, n->b);
    check_names(a, n->c);
    check_list(a, n->args);
    check_list(a, n->kwargs);
    check_list(a, n->body);
    check_list(a, n->else_body);
}

static void compile_job(ct_arena *a, void *arg) {
    sq_chat_template *t = arg;
    t->source = ct_strndup(a, t->source_in, t->len);
    t->body = ct_parse(a, t->source, t->len);
    check_list(a, t->body);
}

sq_error *sq_chat_template_compile(const char *source, size_t len, sq_chat_template **out) {
    *out = NULL;
    if (!source) return sq_errorf(SQ_ERR_INVALID_ARG, "chat template: no source");
    if (len > MAX_SOURCE)
        return sq_errorf(SQ_ERR_INVALID_ARG, "chat template: %zu bytes is more than the %d allowed", len,
                         MAX_SOURCE);
    sq_chat_template *t = calloc(1, sizeof *t);
    if (!t) return sq_errorf(SQ_ERR_NOMEM, "chat template: out of memory");
    ct_arena_init(&t->arena, DEFAULT_MAX_BYTES + 64 * len);
    t->source_in = source;
    t->len = len;
    if (ct_protect(&t->arena, compile_job, t)) {
        sq_error *err = t->arena.error;
        t->arena.error = NULL;
        sq_chat_template_free(t);
        return err;
    }
    t->source_in = NULL;
    *out = t;
    return NULL;
}

static char *dup_piece(const sq_tokenizer *tok, int id) {
    const char *piece = id >= 0 ? sq_tokenizer_piece(tok, id) : NULL;
    return piece ? strdup(piece) : NULL;
}

sq_error *sq_chat_template_from_tokenizer(const sq_tokenizer *tok, sq_chat_template **out) {
    *out = NULL;
    const char *src = sq_tokenizer_chat_template(tok);
    sq_error *err = src ? sq_chat_template_compile(src, strlen(src), out)
                        : sq_chat_template_compile(fallback_source, sizeof fallback_source - 1, out);
    if (err) return sq_error_wrap(err, "the tokenizer's chat template");
    int bos = sq_tokenizer_bos(tok), eos = sq_tokenizer_eos(tok);
    (*out)->bos_token = dup_piece(tok, bos);
    (*out)->eos_token = dup_piece(tok, eos);
    if ((bos >= 0 && !(*out)->bos_token) || (eos >= 0 && !(*out)->eos_token)) {
        sq_chat_template_free(*out);
        *out = NULL;
        return sq_errorf(SQ_ERR_NOMEM, "chat template: out of memory");
    }
    return NULL;
}

const char *sq_chat_template_source(const sq_chat_template *t) { return t->source; }
int sq_chat_template_is_fallback(const sq_chat_template *t) {
    return t->len == sizeof fallback_source - 1 && !memcmp(t->source, fallback_source, t->len);
}

void sq_chat_template_free(sq_chat_template *t) {
    if (!t) return;
    ct_arena_free(&t->arena);
    free(t->bos_token);
    free(t->eos_token);
    free(t);
}

/* ------------------------------------------------------------------ rendering */

typedef struct render_job {
    const sq_chat_template *t;
    const sq_chat_message *messages; /* messages[n_messages], or */
    int n_messages;
    const char *messages_json; /* a JSON array of them */
    const sq_chat_render_options *opts;
    int64_t max_steps;
    ct_buf out;
} render_job;

static ct_value checked_string(ct_arena *a, const char *s, const char *what, int index) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int len = sq_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!len) {
            if (index >= 0)
                ct_fail(a, SQ_ERR_INVALID_ARG, "messages[%d].%s is not valid UTF-8 (byte %zu)", index, what,
                        i);
            ct_fail(a, SQ_ERR_INVALID_ARG, "%s is not valid UTF-8 (byte %zu)", what, i);
        }
        i += (size_t)len;
    }
    return ct_string((ct_str){s, n});
}

/* A message without its None-valued keys, as Hugging Face's apply_chat_template drops them. */
static ct_value without_none(ct_arena *a, const ct_value *d) {
    ct_value kept = ct_dict_new(a, CT_DICT);
    for (size_t k = 0; k < d->dict->n; k++)
        if (d->dict->vals[k].type != CT_NONE) ct_dict_set(a, kept.dict, d->dict->keys[k], d->dict->vals[k]);
    return kept;
}

/* One message as the dict the template sees: role, content, then the keys of fields_json. */
static ct_value message_value(ct_arena *a, const sq_chat_message *m, int index) {
    ct_value d = ct_dict_new(a, CT_DICT);
    if (m->role)
        ct_dict_set(a, d.dict, ct_string(ct_cstr("role")), checked_string(a, m->role, "role", index));
    if (m->content)
        ct_dict_set(a, d.dict, ct_string(ct_cstr("content")),
                    checked_string(a, m->content, "content", index));
    if (m->fields_json) {
        char what[48];
        snprintf(what, sizeof what, "messages[%d].fields_json", index);
        ct_value extra = ct_from_json(a, m->fields_json, strlen(m->fields_json), what);
        if (extra.type != CT_DICT) ct_fail(a, SQ_ERR_INVALID_ARG, "%s must be a JSON object", what);
        for (size_t k = 0; k < extra.dict->n; k++)
            ct_dict_set(a, d.dict, extra.dict->keys[k], extra.dict->vals[k]);
    }
    return without_none(a, &d);
}

static ct_value messages_value(ct_arena *a, const render_job *job) {
    ct_value messages;
    if (job->messages_json) {
        messages = ct_from_json(a, job->messages_json, strlen(job->messages_json), "messages");
        if (messages.type != CT_LIST) ct_fail(a, SQ_ERR_INVALID_ARG, "messages must be a JSON array");
        for (size_t k = 0; k < messages.list->n; k++) {
            if (messages.list->items[k].type != CT_DICT)
                ct_fail(a, SQ_ERR_INVALID_ARG, "messages[%zu] must be a JSON object", k);
            messages.list->items[k] = without_none(a, &messages.list->items[k]);
        }
        return messages;
    }
    messages = ct_list_new(a, (size_t)job->n_messages, 0);
    for (int k = 0; k < job->n_messages; k++)
        messages.list->items[k] = message_value(a, &job->messages[k], k);
    ct_list_seal(a, &messages);
    return messages;
}

static void render_job_run(ct_arena *a, void *arg) {
    render_job *job = arg;
    const sq_chat_render_options *o = job->opts;
    ct_render r = {.a = a, .out = &job->out, .max_steps = job->max_steps};
    ct_scope *context = ct_scope_new(&r, NULL);
    /* what apply_chat_template passes: messages, tools and documents (None unless given),
     * add_generation_prompt, the special tokens, then the caller's variables */
    ct_scope_set(&r, context, ct_cstr("messages"), messages_value(a, job));
    ct_scope_set(&r, context, ct_cstr("tools"), ct_none());
    ct_scope_set(&r, context, ct_cstr("documents"), ct_none());
    ct_scope_set(&r, context, ct_cstr("add_generation_prompt"), ct_bool(o && o->add_generation_prompt));
    const char *bos = o && o->bos_token ? o->bos_token : job->t->bos_token;
    const char *eos = o && o->eos_token ? o->eos_token : job->t->eos_token;
    if (bos) ct_scope_set(&r, context, ct_cstr("bos_token"), checked_string(a, bos, "bos_token", -1));
    if (eos) ct_scope_set(&r, context, ct_cstr("eos_token"), checked_string(a, eos, "eos_token", -1));
    if (o && o->vars_json) {
        ct_value vars = ct_from_json(a, o->vars_json, strlen(o->vars_json), "vars_json");
        if (vars.type != CT_DICT) ct_fail(a, SQ_ERR_INVALID_ARG, "vars_json must be a JSON object");
        for (size_t k = 0; k < vars.dict->n; k++) {
            ct_str name = vars.dict->keys[k].s;
            if ((name.n == 8 && !memcmp(name.p, "messages", 8)) ||
                (name.n == 21 && !memcmp(name.p, "add_generation_prompt", 21)))
                ct_fail(a, SQ_ERR_INVALID_ARG, "vars_json may not set '%.*s'", (int)name.n, name.p);
            ct_scope_set(&r, context, name, vars.dict->vals[k]);
        }
    }
    r.scope = ct_scope_new(&r, context); /* the template's own top level */
    ct_exec(&r, job->t->body);
    ct_buf_putc(a, &job->out, 0); /* room for the terminator the caller gets */
    job->out.n--;
}

static SQ_NODISCARD sq_error *render(render_job *job, size_t input, char **text, size_t *len) {
    const sq_chat_render_options *opts = job->opts;
    *text = NULL;
    if (len) *len = 0;
    if (opts && opts->vars_json) input += strlen(opts->vars_json);
    size_t limit = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES + 16 * input;
    job->max_steps = opts && opts->max_steps > 0 ? opts->max_steps : DEFAULT_MAX_STEPS;
    ct_arena a;
    ct_arena_init(&a, limit);
    sq_error *err = NULL;
    if (ct_protect(&a, render_job_run, job)) {
        err = a.error;
        a.error = NULL;
    } else if (!(*text = malloc(job->out.n + 1))) {
        err = sq_errorf(SQ_ERR_NOMEM, "chat template: out of memory");
    } else {
        if (job->out.n) memcpy(*text, job->out.p, job->out.n);
        (*text)[job->out.n] = 0;
        if (len) *len = job->out.n;
    }
    ct_arena_free(&a);
    return err;
}

sq_error *sq_chat_template_render(const sq_chat_template *t, const sq_chat_message *messages, int n_messages,
                                  const sq_chat_render_options *opts, char **text, size_t *len) {
    *text = NULL;
    if (!t || n_messages < 0 || (n_messages > 0 && !messages))
        return sq_errorf(SQ_ERR_INVALID_ARG, "chat template: no template or no messages");
    size_t input = 0;
    for (int k = 0; k < n_messages; k++) {
        const sq_chat_message *m = &messages[k];
        input += (m->role ? strlen(m->role) : 0) + (m->content ? strlen(m->content) : 0) +
                 (m->fields_json ? strlen(m->fields_json) : 0);
    }
    render_job job = {.t = t, .messages = messages, .n_messages = n_messages, .opts = opts};
    return render(&job, input, text, len);
}

sq_error *sq_chat_template_render_json(const sq_chat_template *t, const char *messages_json,
                                       const sq_chat_render_options *opts, char **text, size_t *len) {
    *text = NULL;
    if (!t || !messages_json)
        return sq_errorf(SQ_ERR_INVALID_ARG, "chat template: no template or no messages");
    render_job job = {.t = t, .messages_json = messages_json, .opts = opts};
    return render(&job, strlen(messages_json), text, len);
}
