/* Report merging and rendering through the library: variant identity (label, else path), later reports
 * overriding earlier ones, file-name clashes, degenerate plots (one point, equal values), and robustness:
 * mutated reports give errors or results, never crashes (run under ASan/UBSan too). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report.h"
#include "testlib.h"

/* Writes JSON given with ' for " (readable in C source) and returns its path (caller frees). */
static char *save_json(const char *name, const char *quoted) {
    char *text = malloc(strlen(quoted) + 1);
    assert_non_null(text);
    for (size_t i = 0; (text[i] = quoted[i] == '\'' ? '"' : quoted[i]); i++) continue;
    const char *p = sq_test_write_file(sq_test_work(name), text, strlen(text));
    free(text);
    char *copy = malloc(strlen(p) + 1);
    assert_non_null(copy);
    strcpy(copy, p);
    return copy;
}

static const sq_report_variant *find(const sq_report_table *t, const char *name) {
    for (int i = 0; i < t->n_variants; i++)
        if (!strcmp(t->variants[i].name, name)) return &t->variants[i];
    fail_msg("no variant named %s", name);
    return NULL;
}

static void test_merge_identity_and_override(void **state) {
    (void)state;
    char *paths[] = {
        save_json("r_a.json",
                  "{'kind':'ppl','version':1,'model':{'path':'x/a/model.gguf','weight_bytes':1000},"
                  "'ppl':9.5}"),
        save_json("r_b.json", "{'kind':'ppl','version':1,'model':{'path':'x/b/model.gguf'},'ppl':8.5,"
                              "'reference':{'kl_mean':0.25}}"),
        save_json("r_c.json", "{'kind':'ppl','version':1,'model':{'path':'x/a/model.gguf'},'ppl':9.25,"
                              "'reference':null}"),
        save_json("r_d.json", "{'kind':'eval','version':1,'model':{'path':'elsewhere.gguf'},'label':'small',"
                              "'average':{'score':0.375}}"),
        save_json("r_e.json", "{'kind':'ppl','version':1,'model':{'path':'other/path.gguf'},'label':'small',"
                              "'ppl':11}"),
    };
    sq_report_table t;
    sq_test_ok(sq_report_table_load((const char *const *)paths, 5, &t));
    assert_int_equal(t.n_variants, 3);
    /* both folders hold "model.gguf": the full paths tell them apart */
    const sq_report_variant *a = find(&t, "x/a/model.gguf"), *b = find(&t, "x/b/model.gguf");
    assert_true(a->ppl.present && a->ppl.value == 9.25); /* the later report wins */
    assert_true(a->size_bytes.present && a->size_bytes.value == 1000);
    assert_false(a->kl.present);
    assert_true(b->kl.present && b->kl.value == 0.25);
    /* a label identifies the variant whatever its path */
    const sq_report_variant *s = find(&t, "small");
    assert_true(s->ppl.present && s->ppl.value == 11);
    assert_true(s->zero_shot_avg.present && s->zero_shot_avg.value == 0.375);
    assert_false(s->decode_tok_s.present);
    sq_report_table_free(&t);

    char *md = NULL;
    sq_test_ok(sq_report_render((const char *const *)paths, 5, "T|x", SQ_REPORT_MARKDOWN, &md));
    assert_non_null(strstr(md, "# T\\|x\n"));
    assert_non_null(strstr(md, "| small | — | 11.00 | — | 37.5% | — | — |"));
    assert_non_null(strstr(md, "| x/b/model.gguf | — | 8.500 | 0.25 | — | — | — |"));
    free(md);
    for (int i = 0; i < 5; i++) free(paths[i]);
}

static void test_single_point_plot(void **state) {
    (void)state;
    /* one variant: zero-width data ranges still give finite axes, and a frontier of one point draws no line
     */
    char *paths[] = {
        save_json("r_one.json",
                  "{'kind':'bench','version':1,'variants':[{'model':{'path':'m.bin','weight_bytes':0},"
                  "'results':[{'n_seqs':2,'decode_tok_s':{'median':50},'ttft_s':{'median':0.5}}]}]}"),
        save_json("r_one_ppl.json", "{'kind':'ppl','version':1,'model':{'path':'m.bin'},'ppl':1}"),
    };
    char *svg = NULL;
    sq_test_ok(sq_report_render((const char *const *)paths, 2, NULL, SQ_REPORT_SVG, &svg));
    int circles = 0;
    for (const char *p = svg; (p = strstr(p, "<circle class=\"point\"")); p++) circles++;
    assert_int_equal(circles, 2);
    assert_null(strstr(svg, "<polyline"));
    assert_null(strstr(svg, "nan"));
    assert_null(strstr(svg, "inf"));
    free(svg);
    char *md = NULL;
    sq_test_ok(sq_report_render((const char *const *)paths, 2, NULL, SQ_REPORT_MARKDOWN, &md));
    assert_non_null(strstr(md, "medians at batch size 2"));
    free(md);
    free(paths[0]);
    free(paths[1]);
}

static void fails_with(const char *quoted, const char *needle) {
    char *path = save_json("r_bad.json", quoted), *text = NULL;
    sq_test_fails_with(sq_report_render((const char *const *)&path, 1, NULL, SQ_REPORT_MARKDOWN, &text),
                       needle);
    assert_null(text);
    free(path);
}

static void test_bad_inputs(void **state) {
    (void)state;
    char *text = NULL;
    sq_test_fails_with(sq_report_render(NULL, 0, NULL, SQ_REPORT_MARKDOWN, &text), "no report files");
    const char *nul = sq_test_write_file(sq_test_work("r_nul.json"), "{\"kind\":\"ppl\"\0}", 15);
    sq_test_fails_with(sq_report_render(&nul, 1, NULL, SQ_REPORT_MARKDOWN, &text), "NUL bytes");
    fails_with("{'kind':'ppl','version':1,'model':{'path':'m'},'ppl':1e999}", "should be a finite number");
    fails_with("{'kind':'bench','version':1,'variants':[{'model':{'path':'m'},'results':"
               "[{'n_seqs':1,'decode_tok_s':3,'ttft_s':{'median':1}}]}]}",
               "results[0]: field \"decode_tok_s\" should be an object");
    fails_with("{'kind':'ppl','version':1,'model':{'path':'m'},'label':'','ppl':2}", "\"label\" is empty");
    fails_with("{'kind':'ppl','version':1,'model':{'path':''},'ppl':2}", "model: field \"path\" is empty");
    fails_with("{'kind':'ppl','version':1,'model':{'path':'m'},'ppl':2,'reference':[]}",
               "field \"reference\" should be an object");
    fails_with("{'kind':'ppl','version':1,'model':null,'ppl':2}", "field \"model\" is null");
    fails_with("{'kind':'ppl','version':'1','model':{'path':'m'},'ppl':2}",
               "\"version\" should be a finite number");
    assert_null(text);
}

/* Random byte edits of a valid report: every outcome is a result or an error, never a crash or a leak. */
static void test_mutated_reports(void **state) {
    (void)state;
    const char *valid = "{\"kind\":\"bench\",\"version\":1,\"variants\":[{\"model\":{\"path\":\"a.bin\","
                        "\"weight_bytes\":1e6},\"label\":\"A\",\"results\":[{\"n_seqs\":1,\"decode_tok_s\":"
                        "{\"median\":50,\"min\":40,\"max\":60},\"ttft_s\":{\"median\":0.5}}]}]}";
    char *quality = save_json("r_quality.json",
                              "{'kind':'ppl','version':1,'model':{'path':'a.bin'},'label':'A','ppl':3}");
    size_t len = strlen(valid);
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    uint64_t seed = 20261122;
    int ok = 0, failed = 0;
    for (int trial = 0; trial < 400; trial++) {
        memcpy(buf, valid, len + 1);
        int edits = 1 + (int)(sq_test_rand_u64(&seed) % 3);
        for (int e = 0; e < edits; e++) {
            static const char alphabet[] = "{}[]\",:0123456789.eE-+ anrtx\\\xff";
            buf[sq_test_rand_u64(&seed) % len] = alphabet[sq_test_rand_u64(&seed) % (sizeof alphabet - 1)];
        }
        const char *paths[] = {sq_test_write_file(sq_test_work("r_mutated.json"), buf, len), quality};
        char *text = NULL;
        sq_error *err =
            sq_report_render(paths, 2, NULL, trial % 2 ? SQ_REPORT_SVG : SQ_REPORT_MARKDOWN, &text);
        if (err) {
            /* the broken file is named, unless the edit only left the plot without a quality metric */
            const char *msg = sq_error_message(err);
            if (!strstr(msg, paths[0]) && !strstr(msg, "nothing to plot")) fail_msg("unclear error: %s", msg);
            sq_error_free(err);
            failed++;
        } else {
            assert_non_null(text);
            ok++;
        }
        free(text);
    }
    print_message("mutated reports: %d rendered, %d rejected\n", ok, failed);
    assert_true(failed > 0 && ok > 0);
    free(buf);
    free(quality);
}

/* The library writes what it reads: ppl, eval and bench reports written through sq_report_write_* render into
 * the table with the values given (a result that is not finite becomes null, shown as "—"). */
static void test_written_reports_read_back(void **state) {
    (void)state;
    sq_model *model;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &model));
    sq_model_info info;
    sq_model_get_info(model, &info);
    const sq_report_model a = {"m/a.bin", "A", model}, b = {"m/b.bin", NULL, model};
    sq_ppl_window win = {0, 64, 63, 1.5, 0.125};
    sq_ppl_result ppl = {
        .ppl = 4.5, .n_windows = 1, .n_ctx = 64, .windows = &win, .has_ref = 1, .kl_mean = 0.125};
    sq_ppl_options po = {.protocol = SQ_PPL_WINDOWS, .source = "text.txt"};
    const char *p_ppl = strdup(sq_test_work("w_ppl.json")), *p_eval = strdup(sq_test_work("w_eval.json")),
               *p_bench = strdup(sq_test_work("w_bench.json")), *p_inf = strdup(sq_test_work("w_inf.json"));
    sq_test_ok(sq_report_write_ppl(p_ppl, &a, &po, "ref.bin", 0, &ppl));
    ppl.ppl = INFINITY;
    sq_test_ok(sq_report_write_ppl(p_inf, &b, &po, NULL, 1, &ppl));
    sq_task_result tasks[2] = {{.task = "piqa", .n_items = 10, .score = 0.5},
                               {.task = "boolq", .score = 0.25}};
    sq_eval_options eo = {.data_dir = "tasks"};
    sq_test_ok(sq_report_write_eval(p_eval, &a, &eo, tasks, 2));
    sq_bench_result br[2] = {{.decode_tok_s = {100, 90, 110}, .ttft_s = {0.25, 0.2, 0.3}, .kv_bytes = 1024},
                             {.decode_tok_s = {50, 45, 55}, .ttft_s = {0.5, 0.4, 0.6}, .kv_bytes = 1024}};
    sq_bench_params bp = {.n_prompt = 8, .n_gen = 4, .n_reps = 1, .n_threads = 1, .seed = 3};
    const sq_report_model both[2] = {a, b};
    sq_test_ok(sq_report_write_bench(p_bench, both, 2, &bp, (int[]){4}, 1, br));
    const char *paths[] = {p_ppl, p_inf, p_eval, p_bench};
    char *md = NULL;
    sq_test_ok(sq_report_render(paths, 4, NULL, SQ_REPORT_MARKDOWN, &md));
    char row[256];
    snprintf(row, sizeof row, "| A | %.3f | 4.500 | 0.125 | 37.5%% | 100.0 | 250.0 |",
             (double)info.weight_bytes / (1 << 20));
    if (!strstr(md, row)) fail_msg("no row %s in\n%s", row, md);
    snprintf(row, sizeof row, "| b.bin | %.3f | — | 0.125 | — | 50.0 | 500.0 |",
             (double)info.weight_bytes / (1 << 20));
    if (!strstr(md, row)) fail_msg("no row %s in\n%s", row, md);
    free(md);
    sq_test_fails_with(sq_report_write_ppl("/nonexistent-dir/r.json", &a, &po, NULL, 0, &ppl),
                       "/nonexistent-dir/r.json: cannot write the report");
    const sq_report_model none = {NULL, NULL, model};
    sq_test_fails_with(sq_report_write_eval(p_eval, &none, &eo, tasks, 2), "needs the model and its path");
    sq_test_fails_with(sq_report_write_eval(p_eval, &a, &eo, tasks, 0), "at least one task");
    for (int i = 0; i < 4; i++) free((void *)paths[i]);
    sq_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_identity_and_override),
        cmocka_unit_test(test_single_point_plot),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_mutated_reports),
        cmocka_unit_test(test_written_reports_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
