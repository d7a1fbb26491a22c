/* OpenAI request bodies (src/server/openai_request.c): every field read with its type and range, defaults,
 * and bad bodies refused with a message and the field at fault. */
#include <stdlib.h>
#include <string.h>

#include "server/openai_request.h"
#include "testlib.h"

static sq_oai_request parse_ok(sq_oai_kind kind, const char *body) {
    sq_oai_request r;
    sq_error *err = sq_oai_request_parse(kind, body, strlen(body), &r);
    if (err) fail_msg("%s: %s", body, sq_error_message(err));
    return r;
}

static void test_completion_fields(void **state) {
    (void)state;
    sq_oai_request r =
        parse_ok(SQ_OAI_COMPLETION,
                 "{\"model\":\"m\",\"prompt\":\"Hi\",\"max_tokens\":7,\"temperature\":0.5,"
                 "\"top_p\":0.9,\"n\":3,\"seed\":-5,\"stop\":[\"a\",\"\",\"bc\"],\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true},\"logprobs\":2,"
                 "\"presence_penalty\":-1.5,\"frequency_penalty\":2,\"user\":\"x\",\"echo\":false}");
    assert_string_equal(r.model, "m");
    assert_string_equal(r.prompt, "Hi");
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.temperature == 0.5 && r.top_p == 0.9 && r.n == 3);
    assert_true(r.has_seed && r.seed == -5);
    assert_int_equal(r.n_stop, 2); /* the empty one stops nothing */
    assert_string_equal(r.stop[1], "bc");
    assert_true(r.stream && r.include_usage && r.logprobs && r.top_logprobs == 2);
    assert_true(r.presence_penalty == -1.5 && r.frequency_penalty == 2);
    sq_oai_request_free(&r);

    r = parse_ok(SQ_OAI_COMPLETION, "{\"prompt\":[1, 2, 30000]}");
    assert_null(r.prompt);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 30000);
    assert_int_equal(r.max_tokens, -1); /* defaults */
    assert_true(r.temperature == 1 && r.top_p == 1 && r.n == 1 && !r.has_seed && !r.logprobs && !r.stream);
    sq_oai_request_free(&r);

    r = parse_ok(SQ_OAI_COMPLETION, "{\"prompt\":[\"one\"],\"stop\":\"\\n\",\"max_tokens\":null}");
    assert_string_equal(r.prompt, "one");
    assert_string_equal(r.stop[0], "\n");
    sq_oai_request_free(&r);
}

static void test_chat_fields(void **state) {
    (void)state;
    sq_oai_request r =
        parse_ok(SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                              "\"max_completion_tokens\":5,\"logprobs\":true,\"top_logprobs\":20}");
    assert_non_null(strstr(r.messages_json, "\"Be brief.\""));
    assert_int_equal(r.max_tokens, 5);
    assert_true(r.logprobs && r.top_logprobs == 20);
    sq_oai_request_free(&r);
}

/* body, kind, the field the error must name ("" for the body), a piece of the message */
static const struct {
    sq_oai_kind kind;
    const char *body, *param, *message;
} bad[] = {
    {SQ_OAI_COMPLETION, "", "", "not valid JSON"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\"", "", "not valid JSON"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\"} x", "", "not valid JSON"},
    {SQ_OAI_COMPLETION, "[1]", "", "JSON object"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"\xff\"}", "", "UTF-8"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"\\ud800\"}", "", "not valid JSON"}, /* cJSON refuses lone surrogates */
    {SQ_OAI_COMPLETION, "{}", "prompt", "required"},
    {SQ_OAI_COMPLETION, "{\"prompt\":5}", "prompt", "must be"},
    {SQ_OAI_COMPLETION, "{\"prompt\":[]}", "prompt", "must be"},
    {SQ_OAI_COMPLETION, "{\"prompt\":[1,-2]}", "prompt", "[0,"},
    {SQ_OAI_COMPLETION, "{\"prompt\":[1,2.5]}", "prompt", "integer"},
    {SQ_OAI_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt", "not supported"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"7\"}", "max_tokens", "integer"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":-1}", "max_tokens", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1e300}", "max_tokens", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"temperature\":2.5}", "temperature", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"top_p\":true}", "top_p", "number"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"n\":0}", "n", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"n\":100000}", "n", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "at most"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"stop\":[1]}", "stop", "string"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "stream", "boolean"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}", "stream_options",
     "only allowed"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":6}", "logprobs", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"frequency_penalty\":-3}", "frequency_penalty", "lie in"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"colour\":1}", "colour", "Unrecognized"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo", "Unrecognized"},
    {SQ_OAI_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", "prompt", "twice"},
    {SQ_OAI_COMPLETION, "{\"messages\":[]}", "messages", "Unrecognized"},
    {SQ_OAI_CHAT, "{\"prompt\":\"a\"}", "prompt", "Unrecognized"},
    {SQ_OAI_CHAT, "{}", "messages", "required"},
    {SQ_OAI_CHAT, "{\"messages\":{}}", "messages", "non-empty array"},
    {SQ_OAI_CHAT, "{\"messages\":[1]}", "messages[0]", "object"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0]", "role"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":3}]}", "messages[0]", "content"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\udfff\"}]}", "", "not valid JSON"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}", "", "UTF-8"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"top_logprobs\":2}", "top_logprobs", "logprobs"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"top_logprobs\":21,\"logprobs\":true}",
     "top_logprobs", "lie in"},
    {SQ_OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}],\"logprobs\":2}", "logprobs", "boolean"},
};

static void test_bad_bodies(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_oai_request r;
        sq_error *err = sq_oai_request_parse(bad[i].kind, bad[i].body, strlen(bad[i].body), &r);
        if (!err) fail_msg("accepted %s", bad[i].body);
        if (!strstr(sq_error_message(err), bad[i].message) || strcmp(r.param, bad[i].param))
            fail_msg("%s: got '%s' (param '%s'), wanted '%s' (param '%s')", bad[i].body,
                     sq_error_message(err), r.param, bad[i].message, bad[i].param);
        assert_int_equal(sq_error_code_of(err), SQ_ERR_INVALID_ARG);
        sq_error_free(err);
        sq_oai_request_free(&r); /* harmless after a failure */
    }
}

/* A body with NUL bytes or cut anywhere is refused, never read past its length. */
static void test_truncations(void **state) {
    (void)state;
    const char *body = "{\"prompt\":[1,2,3],\"stop\":[\"ab\"],\"n\":2,\"logprobs\":1}";
    size_t n = strlen(body);
    for (size_t len = 0; len < n; len++) {
        char *copy = malloc(len ? len : 1); /* exactly len bytes: ASan catches a read past them */
        memcpy(copy, body, len);
        sq_oai_request r;
        sq_error *err = sq_oai_request_parse(SQ_OAI_COMPLETION, copy, len, &r);
        assert_non_null(err);
        sq_error_free(err);
        sq_oai_request_free(&r);
        free(copy);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completion_fields),
        cmocka_unit_test(test_chat_fields),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
