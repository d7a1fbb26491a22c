/* The chat-template engine's pieces and its errors: Python's float repr (round trip and shortest digits on
 * fresh random doubles), str semantics (unicode whitespace, split, replace, full case mapping and the final
 * sigma), jinja2's whitespace control, the public API (message structs and JSON, null members dropped, the
 * fallback template), and every kind of bad input: syntax errors with line and column, invalid UTF-8,
 * malformed JSON, raise_exception, and hostile templates (deep nesting, endless loops, string blow-up,
 * recursion) that must stop with a clear error, never crash or hang. Runs under ASan/UBSan too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/pystr.h"
#include "testlib.h"

/* Renders src with the messages given as JSON; returns the malloc'ed text or fails the test. */
static char *render(const char *src, const char *messages_json, const sq_chat_render_options *opts) {
    sq_chat_template *t = NULL;
    sq_test_ok(sq_chat_template_compile(src, strlen(src), &t));
    char *text = NULL;
    size_t len = 0;
    sq_test_ok(sq_chat_template_render_json(t, messages_json ? messages_json : "[]", opts, &text, &len));
    assert_int_equal(strlen(text), len);
    sq_chat_template_free(t);
    return text;
}

static void expect_render(const char *src, const char *messages_json, const char *want) {
    char *got = render(src, messages_json, NULL);
    if (strcmp(got, want)) fail_msg("template %s\n  got  [%s]\n  want [%s]", src, got, want);
    free(got);
}

/* Compiling or rendering src must fail with code and a message containing needle. */
static void expect_error(const char *src, const char *messages_json, const sq_chat_render_options *opts,
                         sq_error_code code, const char *needle) {
    sq_chat_template *t = NULL;
    sq_error *err = sq_chat_template_compile(src, strlen(src), &t);
    if (!err) {
        char *text = NULL;
        err = sq_chat_template_render_json(t, messages_json ? messages_json : "[]", opts, &text, NULL);
        assert_null(text);
        sq_chat_template_free(t);
    } else {
        assert_null(t);
    }
    if (!err) fail_msg("template %.80s: no error, expected one mentioning \"%s\"", src, needle);
    if (sq_error_code_of(err) != code)
        fail_msg("template %.80s: error code %d, expected %d (%s)", src, sq_error_code_of(err), code,
                 sq_error_message(err));
    sq_test_fails_with(err, needle);
}

/* ------------------------------------------------------------------ Python semantics */

static void test_float_repr(void **state) {
    (void)state;
    const struct {
        double x;
        const char *want;
    } fixed[] = {{1.0, "1.0"},
                 {0.1, "0.1"},
                 {1e-05, "1e-05"},
                 {0.0001, "0.0001"},
                 {1e16, "1e+16"},
                 {1e15, "1000000000000000.0"},
                 {-0.0, "-0.0"},
                 {1.5e300, "1.5e+300"},
                 {123.456, "123.456"},
                 {5e-324, "5e-324"},
                 {0.30000000000000004, "0.30000000000000004"}};
    char out[32];
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) {
        py_float_repr(fixed[k].x, out);
        assert_string_equal(out, fixed[k].want);
    }
    /* fresh random doubles: the text reads back exactly, and no shorter digit string does */
    uint64_t rng = 0x5eed ^ (uint64_t)time(NULL);
    for (int k = 0; k < 20000; k++) {
        uint64_t bits = sq_test_rand_u64(&rng);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        py_float_repr(x, out);
        assert_true(strtod(out, NULL) == x);
        /* significant digits: leading zeros and a fixed notation's ".0" are not */
        char digits[40];
        int sig = 0;
        for (const char *p = out; *p && *p != 'e'; p++)
            if (*p >= '0' && *p <= '9' && (sig || *p != '0')) digits[sig++] = *p;
        while (sig > 1 && digits[sig - 1] == '0') sig--;
        if (sig > 1) {
            char shorter[40];
            snprintf(shorter, sizeof shorter, "%.*e", sig - 2, x);
            if (strtod(shorter, NULL) == x)
                fail_msg("%s is not the shortest repr of %.17g (%s reads back too)", out, x, shorter);
        }
    }
}

static ct_str S(const char *s) { return (ct_str){s, strlen(s)}; }

static void assert_str(ct_str got, const char *want) {
    if (got.n != strlen(want) || memcmp(got.p, want, got.n))
        fail_msg("got [%.*s], want [%s]", (int)got.n, got.p, want);
}

static void test_python_strings(void **state) {
    (void)state;
    ct_arena a;
    ct_arena_init(&a, 1 << 20);
    /* strip: Python's whitespace includes NBSP, U+3000, \x1c-\x1f, but not U+200B */
    assert_str(py_strip(S("\xc2\xa0 x \xe3\x80\x80\x1f"), NULL, 1, 1), "x");
    assert_str(py_strip(S("\xe2\x80\x8bx"), NULL, 1, 1), "\xe2\x80\x8bx");
    ct_str chars = S("ab");
    assert_str(py_strip(S("abxba"), &chars, 1, 0), "xba");
    assert_str(py_replace(&a, S("ab"), S(""), S("-"), -1), "-a-b-");
    assert_str(py_replace(&a, S("aaa"), S("a"), S("b"), 2), "bba");
    ct_value parts = py_split(&a, S("  a  b c "), NULL, 1, 0);
    assert_int_equal(parts.list->n, 2);
    assert_str(parts.list->items[1].s, "b c ");
    parts = py_split(&a, S("a,b,,c"), &(ct_str){",", 1}, -1, 1);
    assert_int_equal(parts.list->n, 4);
    assert_str(parts.list->items[2].s, "");
    parts = py_split(&a, S("a b c"), NULL, 1, 1);
    assert_str(parts.list->items[0].s, "a b");
    /* full case mappings and the final sigma */
    assert_str(py_case_map(&a,
                           S("stra\xc3\x9f"
                             "e \xef\xac\x81"),
                           PY_UPPER),
               "STRASSE FI");
    assert_str(py_case_map(&a, S("\xce\xa3\xce\x91\xce\xa3 \xce\xa3"), PY_LOWER),
               "\xcf\x83\xce\xb1\xcf\x82 \xcf\x83");
    assert_str(py_case_map(&a, S("hello wORLD-x"), PY_TITLE), "Hello World-X");
    assert_str(py_case_map(&a,
                           S("\xc3\x9f"
                             "x"),
                           PY_CAPITALIZE),
               "Ssx");
    assert_str(py_jinja_title(&a, S("hello wORLD(x) it's")), "Hello World(X) It's");
    assert_int_equal(py_len(S("h\xc3\xa9\xf0\x9f\x99\x82")), 3);
    int64_t i;
    assert_int_equal(py_parse_int(S(" -1_000 "), &i), 0);
    assert_int_equal(i, -1000);
    assert_int_equal(py_parse_int(S("1__0"), &i), -1);
    double f;
    assert_int_equal(py_parse_float(&a, S(" 2.5e1 "), &f), 0);
    assert_true(f == 25.0);
    assert_int_equal(py_parse_float(&a, S("1e"), &f), -1);
    ct_arena_free(&a);
}

/* ------------------------------------------------------------------ templates */

static void test_whitespace_control(void **state) {
    (void)state;
    /* trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes */
    expect_render("a\n  {% if true %}\n  b\n  {% endif %}\nc", NULL, "a\n  b\nc");
    expect_render("a  {%- if true -%}  b  {%- endif %}", NULL, "ab");
    expect_render("  {%+ if true %}x{% endif %}", NULL, "  x");
    expect_render("x {{- ' y ' -}} z", NULL, "x y z");
    expect_render("{# comment #}\nline\n  {#- c -#}  end", NULL, "lineend");
    expect_render("{% raw %}{{ keep }}{% endraw %}", NULL, "{{ keep }}");
    expect_render("a\r\nb\n", NULL, "a\nb"); /* line breaks normalised, one trailing newline dropped */
    expect_render("{{ 'x' }}\n", NULL, "x");
}

static void test_semantics(void **state) {
    (void)state;
    const char *msgs =
        "[{\"role\":\"user\",\"content\":\"hi\",\"x\":null},{\"role\":\"assistant\",\"n\":1.0}]";
    expect_render("{{ messages | tojson }}", msgs,
                  "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"n\": 1.0}]");
    expect_render(
        "{% for m in messages %}{{ loop.index }}{{ m.role[0] }}{{ m.content is defined }}{% endfor %}", msgs,
        "1uTrue2aFalse");
    expect_render("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}"
                  "{{ ns.n }}",
                  NULL, "10");
    expect_render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}", NULL,
                  "1B23");
    expect_render("{{ [1, 2, 3][::-1] }} {{ 'abc'[1:] }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 2 ** 3 ** 2 }}", NULL,
                  "[3, 2, 1] bc -4 -2 64");
    expect_render("{{ {'a': [1, 'x', none, true]} }} {{ 1e100 }} {{ 3 / 2 }}", NULL,
                  "{'a': [1, 'x', None, True]} 1e+100 1.5");
    expect_render("{% for x in [] %}no{% else %}empty{% endfor %}", NULL, "empty");
    expect_render("{{ x | default('d') }}|{{ x }}|{{ none }}", NULL, "d||None");
}

static void test_public_api(void **state) {
    (void)state;
    const char *src =
        "{% for m in messages %}{{ m | tojson }};{% endfor %}{{ bos_token }}{{ add_generation_prompt }}"
        "{{ tools }}{{ extra }}";
    sq_chat_template *t;
    sq_test_ok(sq_chat_template_compile(src, strlen(src), &t));
    assert_false(sq_chat_template_is_fallback(t));
    assert_string_equal(sq_chat_template_source(t), src);
    sq_chat_message msgs[] = {{"user", "hé", NULL},
                              {"assistant", NULL, "{\"tool_calls\": [{\"id\": 1}], \"role\": \"tool\"}"},
                              {NULL, NULL, "{\"role\": \"x\", \"content\": null}"}};
    sq_chat_render_options o = {
        .add_generation_prompt = 1, .bos_token = "<s>", .vars_json = "{\"extra\": 2.5}"};
    char *text;
    size_t len;
    sq_test_ok(sq_chat_template_render(t, msgs, 3, &o, &text, &len));
    assert_string_equal(
        text, "{\"role\": \"user\", \"content\": \"hé\"};"
              "{\"role\": \"tool\", \"tool_calls\": [{\"id\": 1}]};{\"role\": \"x\"};<s>TrueNone2.5");
    free(text);
    /* the same conversation as JSON renders the same */
    sq_test_ok(sq_chat_template_render_json(t,
                                            "[{\"role\":\"user\",\"content\":\"hé\"},{\"role\":\"tool\","
                                            "\"tool_calls\":[{\"id\":1}]},{\"role\":\"x\"}]",
                                            &o, &text, &len));
    assert_string_equal(
        text, "{\"role\": \"user\", \"content\": \"hé\"};"
              "{\"role\": \"tool\", \"tool_calls\": [{\"id\": 1}]};{\"role\": \"x\"};<s>TrueNone2.5");
    free(text);
    sq_chat_template_free(t);
    sq_chat_template_free(NULL);

    /* a tokenizer without a template gets the plain fallback; bos/eos are its pieces */
    sq_tokenizer *tok;
    sq_test_ok(sq_tokenizer_load(sq_test_shared("models/tokenizer.model"), &tok));
    assert_null(sq_tokenizer_chat_template(tok));
    assert_string_equal(sq_tokenizer_piece(tok, sq_tokenizer_bos(tok)), "<s>");
    assert_null(sq_tokenizer_piece(tok, -1));
    assert_null(sq_tokenizer_piece(tok, sq_tokenizer_vocab_size(tok)));
    sq_test_ok(sq_chat_template_from_tokenizer(tok, &t));
    assert_true(sq_chat_template_is_fallback(t));
    sq_chat_message conv[] = {{"system", "Be brief. ", NULL}, {"user", " Hi", NULL}};
    sq_test_ok(sq_chat_template_render(t, conv, 2, &(sq_chat_render_options){.add_generation_prompt = 1},
                                       &text, NULL));
    assert_string_equal(text, "System: Be brief.\n\nUser: Hi\n\nAssistant:");
    free(text);
    sq_chat_template_free(t);
    sq_tokenizer_free(tok);

    /* Qwen3's template comes with its tokenizer.json */
    sq_test_ok(sq_tokenizer_load(sq_test_shared("tokenizers/qwen3/tokenizer.json"), &tok));
    assert_non_null(sq_tokenizer_chat_template(tok));
    assert_non_null(strstr(sq_tokenizer_chat_template(tok), "<|im_start|>"));
    sq_test_ok(sq_chat_template_from_tokenizer(tok, &t));
    assert_false(sq_chat_template_is_fallback(t));
    sq_test_ok(sq_chat_template_render(t, conv + 1, 1, NULL, &text, NULL));
    assert_string_equal(text, "<|im_start|>user\n Hi<|im_end|>\n");
    free(text);
    sq_chat_template_free(t);
    sq_tokenizer_free(tok);
}

/* ------------------------------------------------------------------ errors */

static void test_syntax_errors(void **state) {
    (void)state;
    expect_error("line one\n  {{ x + }}", NULL, NULL, SQ_ERR_FORMAT, "line 2, column 10");
    expect_error("{% if x %}", NULL, NULL, SQ_ERR_FORMAT, "expected '{% elif %}'");
    expect_error("{{ x", NULL, NULL, SQ_ERR_FORMAT, "'{{' is never closed");
    expect_error("{# x", NULL, NULL, SQ_ERR_FORMAT, "comment is never closed");
    expect_error("{{ 'abc }}", NULL, NULL, SQ_ERR_FORMAT, "unterminated string");
    expect_error("{{ 'abc \\", NULL, NULL, SQ_ERR_FORMAT, "unterminated string"); /* found by fuzzing: hung */
    expect_error("{{ (1, 2]] }}", NULL, NULL, SQ_ERR_FORMAT, "unexpected ']', expected ')'");
    expect_error("{{ x | nope }}", NULL, NULL, SQ_ERR_FORMAT, "no filter named 'nope'");
    expect_error("{% break %}", NULL, NULL, SQ_ERR_FORMAT, "'break' outside a loop");
    expect_error("{% include 'x' %}", NULL, NULL, SQ_ERR_FORMAT, "not supported");
    expect_error("{% for x in y recursive %}{% endfor %}", NULL, NULL, SQ_ERR_FORMAT, "recursive");
    expect_error("{{ x ! y }}", NULL, NULL, SQ_ERR_FORMAT, "unexpected character '!'");
    expect_error("{{ '\\N{DASH}' }}", NULL, NULL, SQ_ERR_UNSUPPORTED, "\\N{...}");
    expect_error("ok \xff", NULL, NULL, SQ_ERR_FORMAT, "not valid UTF-8");
    expect_error("{{ 99999999999999999999 }}", NULL, NULL, SQ_ERR_UNSUPPORTED, "64 bits");
}

static void test_render_errors(void **state) {
    (void)state;
    expect_error("{{ raise_exception('Roles must alternate') }}", NULL, NULL, SQ_ERR_INVALID_ARG,
                 "Roles must alternate");
    expect_error("{{ messages[0].content.x.y }}", "[{\"role\":\"u\"}]", NULL, SQ_ERR_INVALID_ARG,
                 "has no attribute 'content'");
    expect_error("\n{{ 1 + 'a' }}", NULL, NULL, SQ_ERR_INVALID_ARG, "line 2");
    expect_error("x", "[{\"role\":\"u\",\"content\":\"\\u0000\"}]", NULL, SQ_ERR_INVALID_ARG, "\\u0000");
    expect_error("x", "[{\"role\": 1", NULL, SQ_ERR_INVALID_ARG, "invalid JSON");
    expect_error("x", "[1]", NULL, SQ_ERR_INVALID_ARG, "messages[0] must be a JSON object");
    expect_error("x", "{}", NULL, SQ_ERR_INVALID_ARG, "must be a JSON array");
    expect_error("x", "[] x", NULL, SQ_ERR_INVALID_ARG, "text after the JSON value");
    expect_error("x", "[{\"content\":\"\xc3\"}]", NULL, SQ_ERR_INVALID_ARG, "not valid UTF-8");
    expect_error("x", "[{\"n\": 123456789012345678901234}]", NULL, SQ_ERR_INVALID_ARG, "64 bits");
    expect_error("x", NULL, &(sq_chat_render_options){.vars_json = "{\"messages\": []}"}, SQ_ERR_INVALID_ARG,
                 "may not set 'messages'");
    expect_error("x", NULL, &(sq_chat_render_options){.vars_json = "[1]"}, SQ_ERR_INVALID_ARG, "JSON object");
    expect_error("{{ bos_token }}", NULL, &(sq_chat_render_options){.bos_token = "\xfe"}, SQ_ERR_INVALID_ARG,
                 "bos_token is not valid UTF-8");
    /* message structs: invalid UTF-8 and bad fields_json name the message */
    sq_chat_template *t;
    sq_test_ok(sq_chat_template_compile("x", 1, &t));
    char *text = NULL;
    sq_chat_message bad[] = {{"user", "ok", NULL}, {"user", "\xc0\x80", NULL}};
    sq_test_fails_with(sq_chat_template_render(t, bad, 2, NULL, &text, NULL), "messages[1].content");
    sq_chat_message bad_json[] = {{"user", "ok", "[1, 2]"}};
    sq_test_fails_with(sq_chat_template_render(t, bad_json, 1, NULL, &text, NULL), "must be a JSON object");
    assert_null(text);
    sq_chat_template_free(t);
}

static void test_hostile_templates(void **state) {
    (void)state;
    sq_chat_render_options small = {.max_steps = 200000, .max_bytes = 8 << 20};
    char *deep = malloc(30000);
    /* deeply nested brackets, expressions and blocks */
    strcpy(deep, "{{ ");
    for (int k = 0; k < 5000; k++) strcat(deep, "(");
    expect_error(deep, NULL, NULL, SQ_ERR_FORMAT, "nested more than");
    strcpy(deep, "{{ ");
    for (int k = 0; k < 3000; k++) strcat(deep, "not ");
    strcat(deep, "x }}");
    expect_error(deep, NULL, NULL, SQ_ERR_FORMAT, "nests too deeply");
    deep[0] = 0;
    for (int k = 0; k < 2000; k++) strcat(deep, "{% if x %}");
    expect_error(deep, NULL, NULL, SQ_ERR_FORMAT, "nests too deeply");
    free(deep);
    /* endless work, memory and output */
    const char *endless =
        "{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}";
    expect_error(endless, NULL, &small, SQ_ERR_NOMEM, "steps");
    expect_error(
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        NULL, &small, SQ_ERR_NOMEM, "memory limit");
    expect_error("{{ 'x' * 1000000000000 }}", NULL, &small, SQ_ERR_NOMEM, "memory limit");
    expect_error("{{ [1, 2] * 1000000000000 }}", NULL, &small, SQ_ERR_NOMEM, "memory limit");
    expect_error("{% for i in range(100000) %}{{ 'abcdefghij' * 100 }}{% endfor %}", NULL, &small,
                 SQ_ERR_NOMEM, "memory limit");
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, NULL, SQ_ERR_NOMEM,
                 "nested more than");
    expect_error("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}"
                 "{{ ns.l }}",
                 NULL, NULL, SQ_ERR_NOMEM, "nested more than");
    expect_error("{% set ns = namespace() %}{% set ns.me = [ns] %}", NULL, NULL, SQ_ERR_INVALID_ARG,
                 "cannot contain itself");
    expect_error("{{ range(1000000) | length }}", NULL, NULL, SQ_ERR_INVALID_ARG, "Range too big");
    expect_error("{{ 2 ** 64 }}", NULL, NULL, SQ_ERR_UNSUPPORTED, "64 bits");
    /* the default limits stop it too */
    expect_error(endless, NULL, NULL, SQ_ERR_NOMEM, "steps");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_repr),         cmocka_unit_test(test_python_strings),
        cmocka_unit_test(test_whitespace_control), cmocka_unit_test(test_semantics),
        cmocka_unit_test(test_public_api),         cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_render_errors),      cmocka_unit_test(test_hostile_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
