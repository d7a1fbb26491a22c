/* Zero-shot tasks: the file readers (every layout, and clear errors naming file and line for malformed
 * files), and the scorer against a plain reference over the fake model (fake_lm.h) with a byte tokenizer
 * that merges "a " into one token, so the context/continuation boundary can fall inside a token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "fake_lm.h"
#include "testlib.h"

enum { VOCAB = 258, MERGED = 256, BOS = 257, CTX = 160 };

static SQ_NODISCARD sq_error *byte_encode(void *user, const char *text, size_t len, int32_t **ids, int *n) {
    (void)user;
    int32_t *out = malloc((len + 1) * sizeof *out);
    int k = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == 'a' && i + 1 < len && text[i + 1] == ' ')
            out[k++] = MERGED, i++;
        else
            out[k++] = (unsigned char)text[i];
    }
    *ids = out;
    *n = k;
    return NULL;
}

static const char *data_dir(const char *name) {
    static char buf[4096];
    const char *root = getenv("SQ_TEST_DATA");
    snprintf(buf, sizeof buf, "%s/eval/%s", root ? root : "tests/data", name);
    return buf;
}

static void test_layouts(void **state) {
    (void)state;
    sq_task *t;
    sq_test_ok(sq_task_load("piqa", data_dir("good"), 0, &t));
    assert_int_equal(t->n_items, 3); /* the blank line is skipped */
    assert_string_equal(t->items[0].choices[0].context, "Question: Which is a fruit?\n");
    assert_string_equal(t->items[0].choices[0].continuation,
                        "apple"); /* the context already ends in a space */
    assert_string_equal(t->items[1].choices[1].continuation, " a rock that sits");
    assert_int_equal(t->items[1].choices[1].norm_bytes, 16);
    assert_int_equal(t->items[2].n_choices, 3);
    assert_int_equal(t->items[2].gold, 2);
    assert_int_equal(t->scoring, SQ_SCORE_CHOICE);
    assert_true(t->has_acc_norm);
    sq_task_free(t);

    sq_test_ok(sq_task_load("piqa", data_dir("good"), 2, &t));
    assert_int_equal(t->n_items, 2); /* --limit */
    sq_task_free(t);

    sq_test_ok(sq_task_load("winogrande", data_dir("good"), 0, &t));
    assert_int_equal(t->scoring, SQ_SCORE_PARTIAL);
    assert_string_equal(t->items[0].choices[1].context, "Sam gave Tom a gift because Tom");
    assert_string_equal(t->items[0].choices[1].continuation, " was generous.");
    sq_task_free(t);

    sq_test_ok(sq_task_load("lambada", data_dir("good"), 0, &t));
    assert_int_equal(t->scoring, SQ_SCORE_GREEDY);
    assert_string_equal(t->items[0].choices[0].continuation, " dog");
    sq_task_free(t);

    /* bzip2, 6 lines per item, the harness's preprocessing */
    sq_test_ok(sq_task_load("hellaswag", data_dir("good"), 0, &t));
    assert_int_equal(t->n_items, 2);
    assert_int_equal(t->items[0].gold, 1);
    assert_string_equal(t->items[0].choices[0].context, "Cooking: A man puts a pan on the stove.. He");
    assert_string_equal(t->items[0].choices[1].continuation, " cracks an egg into the pan.");
    assert_string_equal(t->items[0].choices[2].continuation, " sings loudly.");
    assert_string_equal(t->items[1].choices[3].continuation, " paints a wall.");
    sq_task_free(t);
}

static void expect_load_error(const char *task, const char *dir, const char *needle) {
    sq_task *t = NULL;
    sq_error *err = sq_task_load(task, data_dir(dir), 0, &t);
    if (!err) fail_msg("%s in %s loaded without error", task, dir);
    if (!strstr(sq_error_message(err), needle))
        fail_msg("error \"%s\" does not contain \"%s\"", sq_error_message(err), needle);
    assert_null(t);
    sq_error_free(err);
}

static void test_malformed_files(void **state) {
    (void)state;
    expect_load_error("piqa", "bad_json", "piqa.jsonl:2: malformed JSON");
    expect_load_error("arc_easy", "missing_field", "arc_easy.jsonl:3: missing field \"choices\"");
    expect_load_error("boolq", "gold_range", "boolq.jsonl:1: gold 2 is out of range (2 choices)");
    expect_load_error("openbook_qa", "empty_choices", "openbook_qa.jsonl:2: field \"choices\" is empty");
    expect_load_error("arc_challenge", "not_object", "arc_challenge.jsonl:1: expected a JSON object");
    expect_load_error("hellaswag", "hellaswag_truncated",
                      "hellaswag_val.txt.bz2:9: truncated item (3 of its 6 lines)");
    expect_load_error("hellaswag", "corrupt_bz2", "corrupt or truncated bzip2");
    expect_load_error("hellaswag", "trailing_bz2", "corrupt or truncated bzip2 data at byte");
    expect_load_error("piqa", "missing_dir", "cannot open");
    expect_load_error("squad", "good", "unknown task \"squad\"");

    static const struct {
        const char *task, *text, *needle;
    } cases[] = {
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\", \"\"], \"gold\": 0}",
         "x.jsonl:1: choices[1] is empty"},
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\", 3], \"gold\": 0}",
         "x.jsonl:1: choices[1] is not a string"},
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0.5}", "\"gold\" is not an integer"},
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": -1}", "gold -1 is out of range"},
        /* found by fuzzing: a gold too large for any integer type (was undefined behaviour) */
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 4e88}", "is out of range (1 choices)"},
        {"piqa", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": -1e300}", "is out of range (1 choices)"},
        {"piqa", "{\"query\": 7, \"choices\": [\"a\"], \"gold\": 0}", "\"query\" is not a string"},
        {"piqa", "\n\n{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0} {}",
         "x.jsonl:3: text after the JSON"},
        {"winogrande", "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"\", \"gold\": 0}",
         "\"continuation\" is empty"},
        {"lambada", "{\"context\": \"a b c\"}", "missing field \"continuation\""},
        {"hellaswag", "c\nx\ne1\ne2\ne3\ne4\n", "x.jsonl:2: gold \"x\" is not an integer"},
        {"hellaswag", "c\n4\ne1\ne2\ne3\ne4\n", "gold 4 is out of range"},
        {"hellaswag", "c\n0\ne1\n  \ne3\ne4\n", "x.jsonl:4: ending 1 is empty"},
        {"piqa", "\n \n", "x.jsonl: no items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sq_task *t = NULL;
        sq_error *err = sq_task_parse(cases[i].task, "x.jsonl", cases[i].text, strlen(cases[i].text), 0, &t);
        if (!err) fail_msg("case %zu parsed without error", i);
        if (!strstr(sq_error_message(err), cases[i].needle))
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, sq_error_message(err), cases[i].needle);
        sq_error_free(err);
    }
}

/* Reference: one choice scored by building its full sequence and reading each row from scratch. */
static sq_choice_score reference_choice(const fake_lm *m, const sq_task_request *r) {
    size_t cl = strlen(r->context), keep = cl;
    while (keep && strchr(" \t\n\r", r->context[keep - 1])) keep--;
    char whole_text[1024];
    snprintf(whole_text, sizeof whole_text, "%s%s", r->context, r->continuation);
    int32_t *a, *b, whole[1024], ctx[1024];
    int na, nb;
    sq_test_ok(byte_encode(NULL, whole_text, keep, &a, &na));
    sq_test_ok(byte_encode(NULL, whole_text, strlen(whole_text), &b, &nb));
    ctx[0] = whole[0] = BOS;
    memcpy(ctx + 1, a, (size_t)na * sizeof *a);
    memcpy(whole + 1, b, (size_t)nb * sizeof *b);
    free(a), free(b);
    int start = 0;
    while (start < na + 1 && ctx[start] == whole[start]) start++;
    sq_choice_score s = {.n_tokens = nb + 1 - start, .greedy = 1};
    float z[VOCAB];
    for (int p = start; p < nb + 1; p++) {
        fake_logits(m, whole, p, z);
        double mx = z[0], sum = 0;
        for (int v = 1; v < VOCAB; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < VOCAB; v++) sum += exp(z[v] - mx);
        s.logp += z[whole[p]] - mx - log(sum);
        int best = 0;
        for (int v = 1; v < VOCAB; v++) best = z[v] > z[best] ? v : best;
        s.greedy &= best == whole[p];
    }
    return s;
}

static const char generated[] =
    "{\"query\": \"Question: what is a banana?\", \"choices\": [\"a fruit\", \"a car that drives very "
    "fast\", "
    "\"a\"], \"gold\": 0}\n"
    "{\"query\": \"Pick a \", \"choices\": [\"cat\", \"dog\"], \"gold\": 1}\n"
    "{\"query\": \"The man said that a\", \"choices\": [\"a a a\", \"bab\", \"xyz xyz xyz xyz\"], \"gold\": "
    "2}\n"
    "{\"query\": \"Hello\", \"choices\": [\"world\", \"there my friend\"], \"gold\": 0}\n"
    "{\"query\": \"ab\", \"choices\": [\"c\", \"cd\", \"cde\", \"cdef\"], \"gold\": 3}\n";

static void check_task(const char *name, const char *text, int expect_norm_differs) {
    sq_task *t;
    sq_test_ok(sq_task_parse(name, "mem", text, strlen(text), 0, &t));
    fake_lm ref_model;
    fake_lm_open(&ref_model, VOCAB, CTX, 1, 77, 0);
    int n_choices = 0;
    for (int i = 0; i < t->n_items; i++) n_choices += t->items[i].n_choices;
    sq_choice_score want[64];
    double hits = 0, hits_norm = 0, logp = 0;
    int norm_differs = 0, k = 0;
    for (int i = 0; i < t->n_items; i++) {
        const sq_task_item *it = &t->items[i];
        int best = 0, best_norm = 0;
        for (int c = 0; c < it->n_choices; c++, k++) {
            want[k] = reference_choice(&ref_model, &it->choices[c]);
            if (want[k].logp > want[k - c + best].logp) best = c;
            if (want[k].logp / it->choices[c].norm_bytes >
                want[k - c + best_norm].logp / it->choices[k - k + best_norm].norm_bytes)
                best_norm = c;
        }
        hits += best == it->gold, hits_norm += best_norm == it->gold;
        norm_differs |= best != best_norm;
        logp += want[k - it->n_choices].logp;
    }
    assert_int_equal(norm_differs, expect_norm_differs);
    for (int batch = 1; batch <= 3; batch += 2) {
        fake_lm m;
        sq_lm lm = fake_lm_open(&m, VOCAB, CTX, batch, 77, 0);
        sq_zeroshot_options o = {.n_batch = batch, .bos_id = BOS};
        sq_task_result res;
        sq_choice_score *got;
        sq_test_ok(sq_zeroshot_run(&lm, byte_encode, NULL, t, &o, &res, &got));
        for (int j = 0; j < n_choices; j++) {
            if (fabs(got[j].logp - want[j].logp) > 1e-9 * fabs(want[j].logp))
                fail_msg("%s choice %d: log-prob %.12g, reference %.12g", name, j, got[j].logp, want[j].logp);
            assert_int_equal(got[j].n_tokens, want[j].n_tokens);
            assert_int_equal(got[j].greedy, want[j].greedy);
        }
        assert_int_equal(res.n_items, t->n_items);
        if (t->scoring == SQ_SCORE_GREEDY) {
            double g = 0;
            for (int i = 0; i < t->n_items; i++) g += want[i].greedy;
            assert_true(res.acc == g / t->n_items);
            assert_true(fabs(res.ppl - exp(-logp / t->n_items)) < 1e-9 * res.ppl);
        } else {
            assert_true(res.acc == hits / t->n_items);
            if (t->has_acc_norm) assert_true(res.acc_norm == hits_norm / t->n_items);
        }
        double p = res.acc, n = res.n_items;
        assert_true(fabs(res.acc_stderr - sqrt(p * (1 - p) / (n - 1))) < 1e-12);
        /* sharing the prefill: the context is computed once per item, not once per choice */
        if (t->scoring == SQ_SCORE_CHOICE) assert_true(m.tokens_run < 2 * n_choices + 200 * t->n_items);
        free(got);
        fake_lm_close(&m);
    }
    fake_lm_close(&ref_model);
    sq_task_free(t);
}

static void test_scoring_matches_reference(void **state) {
    (void)state;
    check_task("arc_easy", generated, 1);
    check_task(
        "winogrande",
        "{\"context_options\": [\"The a cat\", \"The dog\"], \"continuation\": \"sat down.\", \"gold\": 1}\n"
        "{\"context_options\": [\"xa\", \"ya\", \"za\"], \"continuation\": \"b\", \"gold\": 0}\n",
        0);
    /* the second item's continuation is exactly the fake model's greedy chain (each byte + 1) */
    check_task("lambada",
               "{\"context\": \"She saw her\", \"continuation\": \"dog\"}\n"
               "{\"context\": \"abc \\u001f\", \"continuation\": \"!\\\"#$\"}\n",
               0);
}

static void test_greedy_and_truncation(void **state) {
    (void)state;
    sq_task *t;
    sq_test_ok(sq_task_load("lambada", data_dir("good"), 0, &t));
    fake_lm m;
    sq_lm lm = fake_lm_open(&m, VOCAB, CTX, 2, 5, 0);
    sq_zeroshot_options o = {.n_batch = 2, .bos_id = BOS};
    sq_task_result res;
    sq_choice_score *got;
    sq_test_ok(sq_zeroshot_run(&lm, byte_encode, NULL, t, &o, &res, &got));
    assert_int_equal(got[1].greedy, 1);
    assert_int_equal(got[1].n_tokens, 5); /* " !\"#$" */
    assert_true(res.acc >= 0.5);
    free(got);
    fake_lm_close(&m);

    /* a context longer than the window loses tokens from the left; a continuation that cannot fit fails */
    lm = fake_lm_open(&m, VOCAB, 12, 1, 5, 0);
    o.n_batch = 1;
    sq_test_ok(sq_zeroshot_run(&lm, byte_encode, NULL, t, &o, &res, NULL));
    assert_int_equal(res.n_truncated, 1);
    fake_lm_close(&m);
    lm = fake_lm_open(&m, VOCAB, 4, 1, 5, 0);
    sq_test_fails_with(sq_zeroshot_run(&lm, byte_encode, NULL, t, &o, &res, NULL),
                       "do not fit a context of 4");
    fake_lm_close(&m);
    sq_task_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_scoring_matches_reference),
        cmocka_unit_test(test_greedy_and_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
