/* A context's n_threads is the whole truth about the threads squeeze runs: the process has exactly that
 * many while a context lives (the BLAS library that runs prefill products starts none of its own), and the
 * default is sq_cpu_count(), the CPUs the process's affinity mask allows. Threads are counted in
 * /proc/self/task, and the allowed CPUs read from /proc/self/status, independently of the library. */
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* CPUs in the kernel's Cpus_allowed_list ("0-3,6,8-9"). */
static int allowed_cpus(void) {
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[4096];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0) {
            n = 0;
            for (char *p = line + 18; *p && *p != '\n';) {
                long lo = strtol(p, &p, 10), hi = lo;
                if (*p == '-') hi = strtol(p + 1, &p, 10);
                n += (int)(hi - lo + 1);
                if (*p == ',') p++;
            }
        }
    fclose(f);
    assert_true(n > 0);
    return n;
}

/* A prefill of 32 tokens: the matrix products run as GEMMs through the BLAS library. */
static void prefill(sq_context *ctx) {
    int32_t ids[32];
    for (int i = 0; i < 32; i++) ids[i] = 1 + i * 7 % 500;
    sq_seq_batch b = {.seq_id = 0, .tokens = ids, .n_tokens = 32, .logits_mode = SQ_LOGITS_NONE};
    sq_test_ok(sq_seq_truncate(ctx, 0, 0));
    sq_test_ok(sq_forward(ctx, &b, 1));
}

static void test_threads_are_n_threads(void **state) {
    (void)state;
    assert_int_equal(count_threads(), 1); /* nothing started behind the caller's back at load time */
    sq_model *model;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &model));
    for (int n = 1; n <= 3; n++) {
        sq_context *ctx;
        sq_test_ok(sq_context_create(model, &(sq_context_options){.n_threads = n}, &ctx));
        prefill(ctx);
        if (count_threads() != n) fail_msg("-t %d: the process runs %d threads", n, count_threads());
        sq_context_free(ctx);
        assert_int_equal(count_threads(), 1);
    }
    sq_model_free(model);
}

static void test_default_is_allowed_cpus(void **state) {
    (void)state;
    assert_int_equal(sq_cpu_count(), allowed_cpus());
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    int first = 0;
    while (!CPU_ISSET(first, &all)) first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0); /* as `taskset -c first` or a 1-CPU cgroup */
    assert_int_equal(sq_cpu_count(), 1);
    assert_int_equal(allowed_cpus(), 1);
    sq_model *model;
    sq_test_ok(sq_model_load(sq_test_shared("models/stories260K.bin"), NULL, &model));
    sq_context *ctx;
    sq_test_ok(sq_context_create(model, NULL, &ctx));
    prefill(ctx);
    assert_int_equal(count_threads(), 1);
    sq_context_free(ctx);
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
    sq_test_ok(sq_context_create(model, NULL, &ctx));
    prefill(ctx);
    assert_int_equal(count_threads(), allowed_cpus());
    sq_context_free(ctx);
    sq_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_are_n_threads),
        cmocka_unit_test(test_default_is_allowed_cpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
