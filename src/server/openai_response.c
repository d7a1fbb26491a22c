/* OpenAI response bodies (see openai_response.h). */
#include "server/openai_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

/* A JSON string of len bytes of text: bytes that are not valid UTF-8 (a token holding part of a character)
 * become U+FFFD, as Python's errors="replace" decodes them; a NUL byte ends the string (cJSON's strings are
 * NUL-terminated). The raw bytes are in the "bytes" fields. */
static cJSON *string_n(const char *s, size_t len) {
    char *copy = malloc(3 * len + 1), *o = copy;
    if (!copy) return cJSON_CreateNull();
    for (size_t i = 0; i < len;) {
        int n = sq_utf8_valid_len((const unsigned char *)s + i, len - i);
        if (n) {
            memcpy(o, s + i, (size_t)n);
            o += n;
            i += (size_t)n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    *o = 0;
    cJSON *j = cJSON_CreateString(copy);
    free(copy);
    return j;
}

static cJSON *bytes_of(const char *s, size_t len) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < len; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)s[i]));
    return a;
}

cJSON *sq_oai_logprobs_new(sq_oai_kind kind) {
    cJSON *lp = cJSON_CreateObject();
    if (kind == SQ_OAI_CHAT) {
        cJSON_AddArrayToObject(lp, "content");
    } else {
        cJSON_AddArrayToObject(lp, "tokens");
        cJSON_AddArrayToObject(lp, "token_logprobs");
        cJSON_AddArrayToObject(lp, "top_logprobs");
        cJSON_AddArrayToObject(lp, "text_offset");
    }
    return lp;
}

void sq_oai_logprobs_add(cJSON *lp, sq_oai_kind kind, const char *text, size_t len, float logprob,
                         const char *const *top_text, const size_t *top_len, const float *top_lp, int n_top,
                         size_t text_offset) {
    if (kind == SQ_OAI_CHAT) {
        cJSON *e = cJSON_CreateObject(), *top = cJSON_CreateArray();
        cJSON_AddItemToObject(e, "token", string_n(text, len));
        cJSON_AddNumberToObject(e, "logprob", logprob);
        cJSON_AddItemToObject(e, "bytes", bytes_of(text, len));
        for (int i = 0; i < n_top; i++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddItemToObject(t, "token", string_n(top_text[i], top_len[i]));
            cJSON_AddNumberToObject(t, "logprob", top_lp[i]);
            cJSON_AddItemToObject(t, "bytes", bytes_of(top_text[i], top_len[i]));
            cJSON_AddItemToArray(top, t);
        }
        cJSON_AddItemToObject(e, "top_logprobs", top);
        cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "content"), e);
        return;
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "tokens"), string_n(text, len));
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "token_logprobs"), cJSON_CreateNumber(logprob));
    cJSON *top = cJSON_CreateObject();
    for (int i = 0; i < n_top; i++) {
        char *key = malloc(top_len[i] + 1);
        if (!key) continue;
        memcpy(key, top_text[i], top_len[i]);
        key[top_len[i]] = 0;
        if (!cJSON_GetObjectItemCaseSensitive(top, key)) /* two ids may decode alike: keep the likelier */
            cJSON_AddNumberToObject(top, key, top_lp[i]);
        free(key);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "top_logprobs"), top);
    cJSON_AddItemToArray(cJSON_GetObjectItem(lp, "text_offset"), cJSON_CreateNumber((double)text_offset));
}

static void add_finish(cJSON *c, const char *finish_reason) {
    if (finish_reason)
        cJSON_AddStringToObject(c, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(c, "finish_reason");
}

cJSON *sq_oai_choice(sq_oai_kind kind, int index, const char *text, size_t len, cJSON *logprobs,
                     const char *finish_reason) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    if (kind == SQ_OAI_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", string_n(text, len));
    } else {
        cJSON_AddItemToObject(c, "text", string_n(text, len));
    }
    cJSON_AddItemToObject(c, "logprobs", logprobs ? logprobs : cJSON_CreateNull());
    add_finish(c, finish_reason);
    return c;
}

cJSON *sq_oai_usage(int prompt_tokens, int completion_tokens, int cached_tokens) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"), "cached_tokens",
                            cached_tokens);
    return u;
}

static cJSON *head(const sq_oai_head *h, int chunk) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", h->id);
    cJSON_AddStringToObject(r, "object",
                            h->kind == SQ_OAI_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                                   : "text_completion");
    cJSON_AddNumberToObject(r, "created", (double)h->created);
    cJSON_AddStringToObject(r, "model", h->model);
    return r;
}

char *sq_oai_response(const sq_oai_head *h, cJSON *choices, cJSON *usage) {
    cJSON *r = head(h, 0);
    cJSON_AddItemToObject(r, "choices", choices);
    cJSON_AddItemToObject(r, "usage", usage);
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return text;
}

static char *event(cJSON *r) {
    char *json = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    if (!json) return NULL;
    size_t n = strlen(json) + 9;
    char *out = malloc(n);
    if (out) snprintf(out, n, "data: %s\n\n", json);
    free(json);
    return out;
}

char *sq_oai_chunk(const sq_oai_head *h, int index, const char *text, size_t len, cJSON *logprobs,
                   const char *finish_reason, int role_only) {
    cJSON *r = head(h, 1), *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    if (h->kind == SQ_OAI_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role_only) cJSON_AddStringToObject(d, "role", "assistant");
        if (role_only || len || !finish_reason) cJSON_AddItemToObject(d, "content", string_n(text, len));
    } else {
        cJSON_AddItemToObject(c, "text", string_n(text, len));
    }
    cJSON_AddItemToObject(c, "logprobs", logprobs ? logprobs : cJSON_CreateNull());
    add_finish(c, finish_reason);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "choices"), c);
    return event(r);
}

char *sq_oai_usage_chunk(const sq_oai_head *h, cJSON *usage) {
    cJSON *r = head(h, 1);
    cJSON_AddArrayToObject(r, "choices");
    cJSON_AddItemToObject(r, "usage", usage);
    return event(r);
}
