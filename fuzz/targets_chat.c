/* Fuzz target for chat templates (src/chat/): a Jinja template, or a template, a NUL byte and the messages it
 * renders as JSON. It is compiled and, when that works, rendered under small limits. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

void fuzz_chat_template(const uint8_t *data, size_t size) {
    const uint8_t *parts[2];
    size_t lens[2];
    int n = fuzz_split(data, size, 2, parts, lens);
    char *messages = NULL;
    if (n == 2) {
        messages = malloc(lens[1] + 1);
        if (!messages) abort();
        memcpy(messages, parts[1], lens[1]);
        messages[lens[1]] = 0;
    }
    sq_chat_template *t = NULL;
    if (fuzz_failed(sq_chat_template_compile((const char *)parts[0], lens[0], &t))) {
        free(messages);
        return;
    }
    static const char fixed[] =
        "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": \"h\\u00e9 {{x}}\"},"
        " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": {\"name\": \"f\","
        " \"arguments\": {\"a\": 1.5}}}]}, {\"role\": \"tool\", \"content\": \"42\"}]";
    for (int gen = 0; gen < 2; gen++) {
        sq_chat_render_options o = {
            .add_generation_prompt = gen,
            .bos_token = "<s>",
            .eos_token = "</s>",
            .vars_json = gen ? "{\"tools\": [{\"name\": \"f\"}], \"enable_thinking\": false}" : NULL,
            .max_steps = 100000,
            .max_bytes = 16 << 20};
        char *text = NULL;
        if (fuzz_failed(sq_chat_template_render_json(t, messages ? messages : fixed, &o, &text, NULL)))
            fuzz_require(text == NULL, "a failed render returns no text");
        free(text);
    }
    sq_chat_template_free(t);
    free(messages);
}
