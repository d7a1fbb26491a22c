/* sq_bench_run on stories260K: every metric present and positive, the metrics consistent with one another
 * (rates are the workload divided by the times, per repetition), memory matching the model's shapes, progress
 * counted, two models interleaved, disturbed repetitions run again, and clear errors for workloads that
 * cannot run. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static sq_model *load_stories260k(void) {
    sq_model *model = NULL;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &model));
    return model;
}

typedef struct progress_log {
    int calls;
    int64_t last_done, total;
    int in_order;
} progress_log;

static void record_progress(void *user, int64_t done, int64_t total) {
    progress_log *log = user;
    log->in_order &= done == log->last_done + 1 && (log->total == 0 || total == log->total);
    log->calls++;
    log->last_done = done;
    log->total = total;
}

static void check_stat(const sq_bench_stat *s, const char *name) {
    if (!(s->min > 0 && isfinite(s->max) && s->min <= s->median && s->median <= s->max))
        fail_msg("%s: min %g, median %g, max %g", name, s->min, s->median, s->max);
}

static void assert_close(double got, double want, double rel, const char *what) {
    if (!(fabs(got - want) <= rel * fabs(want))) fail_msg("%s: %.17g, expected %.17g", what, got, want);
}

static void check_result(const sq_bench_result *r, const sq_bench_params *p, const sq_model_info *info) {
    check_stat(&r->ttft_s, "ttft");
    check_stat(&r->tpot_s, "tpot");
    check_stat(&r->e2e_s, "e2e");
    check_stat(&r->prefill_tok_s, "prefill tok/s");
    check_stat(&r->decode_tok_s, "decode tok/s");
    check_stat(&r->requests_s, "requests/s");
    /* With an odd number of repetitions the median is one repetition's value, so a rate's median is exactly
     * the workload over the time's median (and its min over the time's max). */
    double b = p->n_seqs;
    assert_close(r->decode_tok_s.median, b / r->tpot_s.median, 1e-12, "decode tok/s = b n / decode time");
    assert_close(r->decode_tok_s.min, b / r->tpot_s.max, 1e-12, "slowest decode");
    assert_close(r->prefill_tok_s.median, b * p->n_prompt / r->ttft_s.median, 1e-12, "prefill tok/s");
    assert_close(r->requests_s.median, b / r->e2e_s.median, 1e-12, "requests/s = b / e2e");
    /* e2e = prefill + decode in every repetition */
    assert_true(r->ttft_s.median < r->e2e_s.median);
    assert_true(r->e2e_s.min >= (r->ttft_s.min + r->tpot_s.min * p->n_gen) * (1 - 1e-12));
    assert_true(r->e2e_s.max <= (r->ttft_s.max + r->tpot_s.max * p->n_gen) * (1 + 1e-12));
    assert_true(r->e2e_s.median >= r->tpot_s.median * p->n_gen);
    /* memory: the weights as the model reports them; K and V for every layer, position and sequence (the
     * cache may round positions up to its 16-position blocks) */
    assert_int_equal(r->weight_bytes, info->weight_bytes);
    size_t per_position =
        2 * (size_t)info->n_layers * (size_t)(info->n_kv_heads * info->head_dim) * sizeof(float);
    size_t positions = (size_t)p->n_seqs * (size_t)(p->n_prompt + p->n_gen);
    if (r->kv_bytes < per_position * positions ||
        r->kv_bytes > per_position * (positions + 16 * (size_t)p->n_seqs))
        fail_msg("KV cache %zu bytes for %zu positions of %zu bytes", r->kv_bytes, positions, per_position);
    assert_true(r->peak_rss_bytes >= r->kv_bytes);
}

static void test_metrics_consistent(void **state) {
    (void)state;
    sq_model *model = load_stories260k();
    sq_model_info info;
    sq_model_get_info(model, &info);
    assert_int_equal(info.weight_bytes, (size_t)info.n_params * sizeof(float)); /* an fp32 checkpoint */
    sq_bench_params p = {
        .n_prompt = 12, .n_gen = 5, .n_seqs = 3, .n_reps = 3, .n_warmup = 1, .n_threads = 1, .seed = 7};
    progress_log log = {.in_order = 1};
    sq_bench_result r;
    const sq_model *models[] = {model};
    sq_test_ok(sq_bench_run(models, 1, &p, record_progress, &log, &r));
    check_result(&r, &p, &info);
    assert_int_equal(log.calls, p.n_reps + p.n_warmup);
    assert_int_equal(log.total, p.n_reps + p.n_warmup);
    assert_true(log.in_order);
    /* n_reps_max 0: exactly n_reps rounds, however busy the machine */
    assert_int_equal(r.n_runs, p.n_reps);
    assert_true(r.n_disturbed >= 0 && r.n_disturbed <= r.n_runs);

    /* no warm-up and an even number of repetitions: medians average the middle two, the rest still holds */
    p = (sq_bench_params){
        .n_prompt = 3, .n_gen = 2, .n_seqs = 1, .n_reps = 2, .n_warmup = 0, .n_threads = 2, .seed = 0};
    sq_test_ok(sq_bench_run(models, 1, &p, NULL, NULL, &r));
    check_stat(&r.decode_tok_s, "decode tok/s");
    assert_true(r.ttft_s.median < r.e2e_s.median && r.peak_rss_bytes > 0);
    sq_model_free(model);
}

static void test_two_models(void **state) {
    (void)state;
    sq_model *a = load_stories260k(), *b = load_stories260k();
    sq_model_info info;
    sq_model_get_info(a, &info);
    sq_bench_params p = {
        .n_prompt = 6, .n_gen = 4, .n_seqs = 2, .n_reps = 3, .n_warmup = 2, .n_threads = 1, .seed = 1};
    progress_log log = {.in_order = 1};
    sq_bench_result r[2];
    const sq_model *models[] = {a, b};
    sq_test_ok(sq_bench_run(models, 2, &p, record_progress, &log, r));
    check_result(&r[0], &p, &info);
    check_result(&r[1], &p, &info);
    assert_int_equal(log.calls, 2 * (p.n_reps + p.n_warmup));
    assert_true(log.in_order);
    /* the second model's peak is read later in the same process */
    assert_true(r[1].peak_rss_bytes >= r[0].peak_rss_bytes);
    sq_model_free(a);
    sq_model_free(b);
}

static void check_absent(const sq_bench_stat *s, const char *name) {
    if (!(isnan(s->median) && isnan(s->min) && isnan(s->max)))
        fail_msg("%s: min %g, median %g, max %g; expected no figure", name, s->min, s->median, s->max);
}

/* -p 0 measures decoding alone (llama-bench's tg test), -n 0 the prefill alone: the part left out has no
 * figures (NaN), the other part's figures are consistent as in a full run. */
static void test_one_part_only(void **state) {
    (void)state;
    sq_model *model = load_stories260k();
    const sq_model *models[] = {model};
    sq_bench_result r;
    sq_bench_params p = {.n_prompt = 0, .n_gen = 7, .n_seqs = 2, .n_reps = 3, .n_warmup = 1, .n_threads = 2};
    sq_test_ok(sq_bench_run(models, 1, &p, NULL, NULL, &r));
    check_absent(&r.ttft_s, "ttft");
    check_absent(&r.prefill_tok_s, "prefill tok/s");
    check_stat(&r.tpot_s, "tpot");
    check_stat(&r.decode_tok_s, "decode tok/s");
    assert_close(r.decode_tok_s.median, p.n_seqs / r.tpot_s.median, 1e-12,
                 "decode tok/s = b n / decode time");
    assert_close(r.e2e_s.median, r.tpot_s.median * p.n_gen, 1e-12, "e2e = decode time");
    assert_close(r.requests_s.median, p.n_seqs / r.e2e_s.median, 1e-12, "requests/s = b / e2e");

    p = (sq_bench_params){.n_prompt = 9, .n_gen = 0, .n_seqs = 3, .n_reps = 3, .n_warmup = 0, .n_threads = 1};
    sq_test_ok(sq_bench_run(models, 1, &p, NULL, NULL, &r));
    check_absent(&r.tpot_s, "tpot");
    check_absent(&r.decode_tok_s, "decode tok/s");
    check_stat(&r.ttft_s, "ttft");
    assert_close(r.prefill_tok_s.median, p.n_seqs * p.n_prompt / r.ttft_s.median, 1e-12, "prefill tok/s");
    assert_close(r.e2e_s.median, r.ttft_s.median, 1e-12, "e2e = prefill time");
    sq_model_free(model);
}

/* Busy-looping processes, two per CPU, so that the benchmark's threads wait for a CPU about two thirds of the
 * time: every round is disturbed, and the benchmark runs n_reps_max of them (then summarises the n_reps least
 * disturbed, so an odd n_reps still gives a median that is one repetition's value: check_result's
 * identities). */
static void test_busy_machine(void **state) {
    (void)state;
    if (access("/proc/self/schedstat", R_OK) != 0) skip(); /* a kernel without scheduler statistics */
    int n_cpus = sq_cpu_count(), n_busy = 2 * n_cpus;
    pid_t busy[2 * 256];
    assert_true(n_busy <= (int)(sizeof busy / sizeof *busy));
    for (int i = 0; i < n_busy; i++) {
        busy[i] = fork();
        assert_true(busy[i] >= 0);
        if (busy[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that failed */
            for (volatile unsigned long spin = 0;; spin++) {
            }
        }
    }
    sq_model *model = load_stories260k();
    const sq_model *models[] = {model};
    sq_bench_params p = {
        .n_prompt = 32, .n_gen = 96, .n_seqs = 1, .n_reps = 3, .n_reps_max = 5, .n_threads = n_cpus};
    progress_log log = {.in_order = 1};
    sq_bench_result r;
    sq_error *err = sq_bench_run(models, 1, &p, record_progress, &log, &r);
    for (int i = 0; i < n_busy; i++) {
        kill(busy[i], SIGKILL);
        waitpid(busy[i], NULL, 0);
    }
    sq_test_ok(err);
    if (!(r.cpu_wait > 0.2)) fail_msg("median CPU wait %g beside %d busy processes", r.cpu_wait, n_busy);
    assert_int_equal(r.n_runs, p.n_reps_max);
    assert_int_equal(r.n_disturbed, p.n_reps_max);
    assert_int_equal(log.calls, p.n_reps_max);
    assert_int_equal(log.total, p.n_reps_max); /* progress grew its total with every disturbed round */
    sq_model_info info;
    sq_model_get_info(model, &info);
    check_result(&r, &p, &info);
    sq_model_free(model);
}

static void test_errors(void **state) {
    (void)state;
    sq_model *model = load_stories260k();
    const sq_model *models[] = {model};
    sq_bench_result r;
    sq_bench_params p = {.n_prompt = 500, .n_gen = 13, .n_seqs = 1, .n_reps = 1};
    sq_error *err = sq_bench_run(models, 1, &p, NULL, NULL, &r);
    assert_int_equal(sq_error_code_of(err), SQ_ERR_INVALID_ARG);
    sq_test_fails_with(err, "500 prompt + 13 output tokens = 513 exceed its context of 512 tokens");
    p = (sq_bench_params){.n_prompt = 4, .n_gen = 4, .n_seqs = 1, .n_reps = 0};
    sq_test_fails_with(sq_bench_run(models, 1, &p, NULL, NULL, &r), "repetitions (0) must be at least 1");
    p = (sq_bench_params){.n_prompt = 4, .n_gen = 4, .n_seqs = 1, .n_reps = 3, .n_reps_max = 2};
    sq_test_fails_with(sq_bench_run(models, 1, &p, NULL, NULL, &r),
                       "the most repetitions (2) 0 or at least the repetitions");
    p.n_reps = 1;
    p.n_gen = 0;
    p.n_prompt = 0; /* either may be 0 (test_one_part_only), not both */
    sq_test_fails_with(sq_bench_run(models, 1, &p, NULL, NULL, &r),
                       "prompt tokens (0) and output tokens (0) must be at least 0 and not both 0");
    p.n_prompt = -1;
    p.n_gen = 4;
    sq_test_fails_with(sq_bench_run(models, 1, &p, NULL, NULL, &r), "prompt tokens (-1)");
    p.n_prompt = 4;
    sq_test_fails_with(sq_bench_run(models, 0, &p, NULL, NULL, &r), "no model");
    const sq_model *none[] = {NULL};
    sq_test_fails_with(sq_bench_run(none, 1, &p, NULL, NULL, &r), "model 1 is NULL");
    p.n_seqs = 1 << 20;
    p.n_prompt = 1 << 12;
    sq_test_fails_with(sq_bench_run(models, 1, &p, NULL, NULL, &r), "too large");
    sq_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_consistent),
        cmocka_unit_test(test_two_models),
        cmocka_unit_test(test_one_part_only),
        cmocka_unit_test(test_busy_machine),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
