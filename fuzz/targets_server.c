/* Fuzz target for the server's request bodies (src/server/openai_request.c): the bytes as a POST body to
 * /v1/completions and to /v1/chat/completions. What parses must keep the struct's promises, and chat messages
 * that parse are rendered through the template engine's JSON input, as the server renders them. */
#include "harness.h"

#include <stdlib.h>

#include "server/openai_request.h"

void fuzz_openai_request(const uint8_t *data, size_t size) {
    static sq_chat_template *t;
    if (!t) {
        static const char src[] = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
        fuzz_require(!fuzz_failed(sq_chat_template_compile(src, sizeof src - 1, &t)),
                     "the fixed template compiles");
    }
    for (int kind = SQ_OAI_COMPLETION; kind <= SQ_OAI_CHAT; kind++) {
        sq_oai_request r;
        if (fuzz_failed(sq_oai_request_parse((sq_oai_kind)kind, (const char *)data, size, &r))) {
            sq_oai_request_free(&r);
            continue;
        }
        fuzz_require(r.n >= 1 && r.n <= SQ_OAI_MAX_N && r.n_stop <= SQ_OAI_MAX_STOP &&
                         r.top_logprobs <= SQ_OAI_MAX_TOP_LOGPROBS && r.temperature >= 0 &&
                         r.temperature <= 2 && r.top_p >= 0 && r.top_p <= 1 && r.max_tokens >= -1,
                     "parsed fields lie in their ranges");
        fuzz_require(kind == SQ_OAI_COMPLETION ? !r.prompt != !r.prompt_ids : r.messages_json != NULL,
                     "a parsed request has its prompt or messages");
        for (int i = 0; i < r.n_stop; i++) fuzz_require(r.stop[i][0] != 0, "stop strings are not empty");
        if (r.messages_json) {
            char *text = NULL;
            sq_chat_render_options o = {
                .add_generation_prompt = 1, .max_steps = 100000, .max_bytes = 16 << 20};
            if (fuzz_failed(sq_chat_template_render_json(t, r.messages_json, &o, &text, NULL)))
                fuzz_require(text == NULL, "a failed render returns no text");
            free(text);
        }
        sq_oai_request_free(&r);
    }
}
