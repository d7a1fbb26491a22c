/* Parsing OpenAI request bodies (see openai_request.h). */
#include "server/openai_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

int sq_oai_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        int n = sq_utf8_valid_len(p + i, len - i);
        if (!n) return 0;
        i += (size_t)n;
    }
    return 1;
}

void sq_oai_request_free(sq_oai_request *req) {
    if (!req) return;
    free(req->model);
    free(req->prompt);
    free(req->prompt_ids);
    free(req->messages_json);
    for (int i = 0; i < req->n_stop; i++) free(req->stop[i]);
    char param[sizeof req->param];
    memcpy(param, req->param, sizeof param);
    *req = (sq_oai_request){0};
    memcpy(req->param, param, sizeof param); /* the failed field stays readable */
}

/* An error about field `param`. */
static SQ_NODISCARD sq_error *bad(sq_oai_request *req, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static SQ_NODISCARD sq_error *bad(sq_oai_request *req, const char *param, const char *fmt, ...) {
    snprintf(req->param, sizeof req->param, "%s", param);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sq_errorf(SQ_ERR_INVALID_ARG, "%s", msg);
}

static SQ_NODISCARD sq_error *dup_string(sq_oai_request *req, const cJSON *v, const char *param, char **out) {
    if (!cJSON_IsString(v)) return bad(req, param, "'%s' must be a string", param);
    if (!(*out = strdup(v->valuestring))) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    return NULL;
}

/* A number in [lo, hi] (null: absent, keeps *out). */
static SQ_NODISCARD sq_error *get_number(sq_oai_request *req, const cJSON *v, const char *param, double lo,
                                         double hi, double *out) {
    if (cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsNumber(v)) return bad(req, param, "'%s' must be a number", param);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return bad(req, param, "'%s' is %g; it must lie in [%g, %g]", param, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return NULL;
}

/* An integer in [lo, hi] (null: absent, keeps *out). JSON has no integer type: 3.0 counts, 3.5 does not. */
static SQ_NODISCARD sq_error *get_int(sq_oai_request *req, const cJSON *v, const char *param, int64_t lo,
                                      int64_t hi, int64_t *out) {
    if (cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bad(req, param, "'%s' must be an integer", param);
    if (!(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
        return bad(req, param, "'%s' is %.17g; it must lie in [%lld, %lld]", param, v->valuedouble,
                   (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return NULL;
}

static SQ_NODISCARD sq_error *get_bool(sq_oai_request *req, const cJSON *v, const char *param, int *out) {
    if (cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsBool(v)) return bad(req, param, "'%s' must be a boolean", param);
    *out = cJSON_IsTrue(v);
    return NULL;
}

static SQ_NODISCARD sq_error *get_stop(sq_oai_request *req, const cJSON *v) {
    if (cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return NULL; /* an empty stop string stops nothing */
        SQ_TRY(dup_string(req, v, "stop", &req->stop[0]));
        req->n_stop = 1;
        return NULL;
    }
    if (!cJSON_IsArray(v)) return bad(req, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > SQ_OAI_MAX_STOP)
        return bad(req, "stop", "'stop' holds %d strings; at most %d are allowed", cJSON_GetArraySize(v),
                   SQ_OAI_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s)) return bad(req, "stop", "'stop' must be a string or an array of strings");
        if (!s->valuestring[0]) continue;
        SQ_TRY(dup_string(req, s, "stop", &req->stop[req->n_stop]));
        req->n_stop++;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *get_prompt(sq_oai_request *req, const cJSON *v) {
    if (cJSON_IsString(v)) return dup_string(req, v, "prompt", &req->prompt);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad(req, "prompt",
                   "'prompt' must be a string, an array of token ids, or an array of one string");
    const cJSON *first = cJSON_GetArrayItem(v, 0);
    if (cJSON_IsString(first)) {
        if (cJSON_GetArraySize(v) != 1)
            return bad(req, "prompt",
                       "'prompt' as a list of several strings is not supported; send one request "
                       "per prompt");
        return dup_string(req, first, "prompt", &req->prompt);
    }
    int n = cJSON_GetArraySize(v);
    if (!(req->prompt_ids = malloc((size_t)n * sizeof *req->prompt_ids)))
        return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, v) {
        int64_t id = -1;
        if (cJSON_IsNull(t)) return bad(req, "prompt", "'prompt' token ids must be integers");
        SQ_TRY(get_int(req, t, "prompt", 0, INT32_MAX, &id));
        req->prompt_ids[req->n_prompt_ids++] = (int32_t)id;
    }
    return NULL;
}

/* Chat messages: an array of objects, each with a string role; content a string, an array of parts, or null.
 * The template engine reads the array itself; only the shape the API promises is checked here. */
static SQ_NODISCARD sq_error *get_messages(sq_oai_request *req, const cJSON *v) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return bad(req, "messages", "'messages' must be a non-empty array of message objects");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        char param[48];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return bad(req, param, "'%s' must be an object", param);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) || !role->valuestring[0])
            return bad(req, param, "'%s.role' must be a non-empty string", param);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (content && !cJSON_IsString(content) && !cJSON_IsArray(content) && !cJSON_IsNull(content))
            return bad(req, param, "'%s.content' must be a string, an array of parts, or null", param);
        i++;
    }
    if (!(req->messages_json = cJSON_PrintUnformatted(v))) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    return NULL;
}

/* Fields OpenAI defines that change nothing here when given with their neutral value. */
static int neutral_field(const char *name, const cJSON *v) {
    static const char *const any[] = {"user", "metadata", "store", "service_tier", "parallel_tool_calls"};
    for (size_t i = 0; i < sizeof any / sizeof *any; i++)
        if (!strcmp(name, any[i])) return 1;
    if (!strcmp(name, "echo")) return cJSON_IsFalse(v) || cJSON_IsNull(v);
    if (!strcmp(name, "logit_bias")) return cJSON_IsNull(v) || (cJSON_IsObject(v) && !v->child);
    if (!strcmp(name, "suffix") || !strcmp(name, "tools") || !strcmp(name, "tool_choice") ||
        !strcmp(name, "response_format") || !strcmp(name, "best_of"))
        return cJSON_IsNull(v);
    return 0;
}

static SQ_NODISCARD sq_error *parse_field(sq_oai_request *req, const cJSON *f) {
    const char *k = f->string;
    const int chat = req->kind == SQ_OAI_CHAT;
    int64_t i64 = 0;
    if (!strcmp(k, "model")) return cJSON_IsNull(f) ? NULL : dup_string(req, f, "model", &req->model);
    if (!chat && !strcmp(k, "prompt")) return get_prompt(req, f);
    if (chat && !strcmp(k, "messages")) return get_messages(req, f);
    if (!strcmp(k, "max_tokens") || (chat && !strcmp(k, "max_completion_tokens")))
        return get_int(req, f, k, 0, INT32_MAX, &req->max_tokens);
    if (!strcmp(k, "temperature")) return get_number(req, f, k, 0, 2, &req->temperature);
    if (!strcmp(k, "top_p")) return get_number(req, f, k, 0, 1, &req->top_p);
    if (!strcmp(k, "presence_penalty")) return get_number(req, f, k, -2, 2, &req->presence_penalty);
    if (!strcmp(k, "frequency_penalty")) return get_number(req, f, k, -2, 2, &req->frequency_penalty);
    if (!strcmp(k, "n")) {
        i64 = req->n;
        SQ_TRY(get_int(req, f, k, 1, SQ_OAI_MAX_N, &i64));
        req->n = (int)i64;
        return NULL;
    }
    if (!strcmp(k, "seed")) {
        if (cJSON_IsNull(f)) return NULL;
        req->has_seed = 1;
        return get_int(req, f, k, INT64_MIN, INT64_MAX, &req->seed);
    }
    if (!strcmp(k, "stop")) return get_stop(req, f);
    if (!strcmp(k, "stream")) return get_bool(req, f, k, &req->stream);
    if (!strcmp(k, "stream_options")) {
        if (cJSON_IsNull(f)) return NULL;
        if (!cJSON_IsObject(f)) return bad(req, k, "'stream_options' must be an object");
        const cJSON *o;
        cJSON_ArrayForEach(o, f) {
            if (strcmp(o->string, "include_usage"))
                return bad(req, "stream_options", "unknown field 'stream_options.%.64s'", o->string);
            SQ_TRY(get_bool(req, o, "stream_options.include_usage", &req->include_usage));
        }
        return NULL;
    }
    if (!chat && !strcmp(k, "logprobs")) { /* completions: the number of alternatives, 0..5 */
        if (cJSON_IsNull(f)) return NULL;
        SQ_TRY(get_int(req, f, k, 0, 5, &i64));
        req->logprobs = 1;
        req->top_logprobs = (int)i64;
        return NULL;
    }
    if (chat && !strcmp(k, "logprobs")) return get_bool(req, f, k, &req->logprobs);
    if (chat && !strcmp(k, "top_logprobs")) {
        SQ_TRY(get_int(req, f, k, 0, SQ_OAI_MAX_TOP_LOGPROBS, &i64));
        req->top_logprobs = (int)i64;
        return NULL;
    }
    if (neutral_field(k, f)) return NULL;
    return bad(req, k, "Unrecognized request argument supplied: %.64s", k);
}

static SQ_NODISCARD sq_error *parse(sq_oai_kind kind, const char *body, size_t len, sq_oai_request *req) {
    *req = (sq_oai_request){
        .kind = kind, .max_tokens = -1, .temperature = 1, .top_p = 1, .n = 1, .top_logprobs = 0};
    /* strings inside are then valid too: cJSON refuses \u escapes of lone surrogates */
    if (!sq_oai_utf8_valid(body, len)) return bad(req, "", "the request body is not valid UTF-8");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    while (root && end < body + len && strchr(" \t\r\n", *end) && *end) end++;
    if (root && end != body + len) cJSON_Delete(root), root = NULL; /* something after the value */
    if (!root) return bad(req, "", "the request body is not valid JSON");
    sq_error *err = NULL;
    if (!cJSON_IsObject(root)) err = bad(req, "", "the request body must be a JSON object");
    for (const cJSON *f = root->child; f && !err && cJSON_IsObject(root); f = f->next) {
        /* a member named twice: JSON leaves it undefined, so refuse rather than guess */
        for (const cJSON *g = root->child; g != f && !err; g = g->next)
            if (!strcmp(g->string, f->string)) err = bad(req, f->string, "'%.64s' is given twice", f->string);
        if (!err) err = parse_field(req, f);
    }
    cJSON_Delete(root);
    if (err) return err;
    if (kind == SQ_OAI_COMPLETION && !req->prompt && !req->prompt_ids)
        return bad(req, "prompt", "'prompt' is required");
    if (kind == SQ_OAI_CHAT && !req->messages_json) return bad(req, "messages", "'messages' is required");
    if (req->top_logprobs && !req->logprobs)
        return bad(req, "top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    if (req->include_usage && !req->stream)
        return bad(req, "stream_options", "'stream_options' is only allowed with 'stream' set to true");
    return NULL;
}

SQ_NODISCARD sq_error *sq_oai_request_parse(sq_oai_kind kind, const char *body, size_t len,
                                            sq_oai_request *req) {
    sq_error *err = parse(kind, body, len, req);
    if (err) sq_oai_request_free(req);
    return err;
}
