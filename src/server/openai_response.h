/* OpenAI API response bodies: completions and chat completions, whole or as stream chunks, with usage and
 * log-probabilities in OpenAI's two layouts (completions: tokens / token_logprobs / top_logprobs /
 * text_offset; chat: content[] of {token, logprob, bytes, top_logprobs}). */
#ifndef SQ_SERVER_OPENAI_RESPONSE_H
#define SQ_SERVER_OPENAI_RESPONSE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "server/openai_request.h"

/* What identifies a response and its chunks. */
typedef struct sq_oai_head {
    sq_oai_kind kind;
    const char *id;    /* "cmpl-..." / "chatcmpl-..." */
    int64_t created;   /* Unix seconds */
    const char *model; /* the served model's name */
} sq_oai_head;

/* The log-probabilities of a choice so far, in the kind's layout; add tokens with sq_oai_logprobs_add. */
cJSON *sq_oai_logprobs_new(sq_oai_kind kind);
/* Adds one token: its text, log-probability, the alternatives (texts and log-probabilities) and, for
 * completions, its offset in the choice's text. */
void sq_oai_logprobs_add(cJSON *lp, sq_oai_kind kind, const char *text, size_t len, float logprob,
                         const char *const *top_text, const size_t *top_len, const float *top_lp, int n_top,
                         size_t text_offset);

/* One choice of a whole response; takes ownership of logprobs (NULL: none). */
cJSON *sq_oai_choice(sq_oai_kind kind, int index, const char *text, size_t len, cJSON *logprobs,
                     const char *finish_reason);
/* {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {"cached_tokens"}} */
cJSON *sq_oai_usage(int prompt_tokens, int completion_tokens, int cached_tokens);
/* The whole response: head, choices and usage (taken over). Returns malloc'ed JSON text. */
char *sq_oai_response(const sq_oai_head *h, cJSON *choices, cJSON *usage);
/* One server-sent event "data: {chunk}\n\n" (malloc'ed) of one choice: text delta, logprobs (taken over; may
 * be NULL), finish_reason (NULL: not finished). role_only: chat's opening delta {"role": "assistant",
 * "content": ""}. */
char *sq_oai_chunk(const sq_oai_head *h, int index, const char *text, size_t len, cJSON *logprobs,
                   const char *finish_reason, int role_only);
/* The usage chunk of stream_options.include_usage: no choices, the usage (taken over). */
char *sq_oai_usage_chunk(const sq_oai_head *h, cJSON *usage);

#endif
