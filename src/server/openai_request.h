/* OpenAI API request bodies (POST /v1/completions, POST /v1/chat/completions) parsed into a plain struct.
 *
 * Follows OpenAI's API reference (platform.openai.com/docs/api-reference/completions/create and
 * .../chat/create): every field is type-checked and range-checked as OpenAI documents it, and a field this
 * server does not know is refused (OpenAI answers "Unrecognized request argument supplied"). A failure names
 * the offending field in `param`, so that the HTTP layer can answer with OpenAI's error body
 * {"error": {"message", "type": "invalid_request_error", "param", "code"}}. */
#ifndef SQ_SERVER_OPENAI_REQUEST_H
#define SQ_SERVER_OPENAI_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "squeeze.h"

typedef enum sq_oai_kind { SQ_OAI_COMPLETION, SQ_OAI_CHAT } sq_oai_kind;

enum {
    SQ_OAI_MAX_STOP = 4,         /* stop strings, as OpenAI allows */
    SQ_OAI_MAX_N = 128,          /* choices per request, as OpenAI allows */
    SQ_OAI_MAX_TOP_LOGPROBS = 20 /* chat's top_logprobs bound; completions' logprobs allow 5 */
};

typedef struct sq_oai_request {
    sq_oai_kind kind;
    char *model; /* NULL: not given */
    /* completions: the prompt as text, or as token ids (exactly one of them is set) */
    char *prompt;
    int32_t *prompt_ids; /* [n_prompt_ids] */
    int n_prompt_ids;
    /* chat: the messages array as JSON text, for sq_chat_template_render_json */
    char *messages_json;
    int64_t max_tokens; /* max_tokens or max_completion_tokens; -1: not given */
    double temperature; /* [0, 2]; default 1 */
    double top_p;       /* (0, 1]; default 1 */
    int n;              /* 1 .. SQ_OAI_MAX_N */
    int has_seed;
    int64_t seed;
    char *stop[SQ_OAI_MAX_STOP]; /* [n_stop] non-empty strings */
    int n_stop;
    int stream;
    int include_usage; /* stream_options.include_usage */
    int logprobs;      /* whether to return log-probabilities of the chosen tokens */
    int top_logprobs;  /* alternatives per token: completions' logprobs N, chat's top_logprobs */
    double presence_penalty, frequency_penalty; /* [-2, 2] */
    char param[64]; /* after a failed parse: the field at fault ("" when the body as a whole is) */
} sq_oai_request;

/* Parses len bytes of a request body of the given kind. The body must be valid UTF-8 holding one JSON
 * object. On failure returns SQ_ERR_INVALID_ARG with a message for the client, and names the field in
 * req->param; the request is then freed already. Either way call sq_oai_request_free afterwards (harmless on
 * a failed parse). */
SQ_NODISCARD sq_error *sq_oai_request_parse(sq_oai_kind kind, const char *body, size_t len,
                                            sq_oai_request *req);
void sq_oai_request_free(sq_oai_request *req);

/* Whether len bytes at s are well-formed UTF-8 (no overlongs, surrogates or truncated characters). */
int sq_oai_utf8_valid(const char *s, size_t len);

#endif
