/* The CLI's one flag parser (tools/squeeze/cli_flags.c): defaults, aliases, --flag=value, missing values,
 * ranges, unknown and repeated flags, operands, and the generated --help, each with the exact message and
 * exit code a user sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "testlib.h"

/* What one parse did: its return value and everything it printed. */
typedef struct parsed {
    int rc;
    char out[8192], err[2048];
} parsed;

typedef struct values {
    const char *model, *kernels;
    long threads, ctx, seed;
    double temp, top_p;
    cli_list batch;
    cli_texts outputs;
    int no_echo;
} values;

/* Reads what was written to fd's file since it was redirected, into buf. */
static void read_back(FILE *f, char *buf, size_t n) {
    fflush(f);
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
}

/* Runs cli_parse on "test ARGS..." (NULL-terminated) with stdout and stderr captured. */
static parsed parse_with(const cli_verb *verb, const cli_flag *flags, int n_flags, int *n_operands,
                         char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    parsed p;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    p.rc = cli_parse(verb, flags, n_flags, argc, argv, n_operands);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    read_back(out, p.out, sizeof p.out);
    read_back(err, p.err, sizeof p.err);
    fclose(out);
    fclose(err);
    return p;
}

#define TEST_FLAGS(v)                                                                                        \
    {                                                                                                        \
        CLI_FLAG_MODEL(&(v)->model, 1), CLI_FLAG_THREADS(&(v)->threads),                                     \
            CLI_FLAG_CTX(&(v)->ctx, "the model's"), CLI_FLAG_SEED(&(v)->seed, 1234, "seed"),                 \
            CLI_NUMBER_FLAG("--temp", "T", &(v)->temp, 0, 100, 0.8f, "temperature"),                         \
            CLI_NUMBER_FLAG("--top-p", "P", &(v)->top_p, 0, 1, 1, "nucleus", .lo_open = 1),                  \
            CLI_CHOICE_FLAG("--kernels", "NAME", &(v)->kernels, "scalar|avx2|avx512", "avx2", "kernel set"), \
            CLI_LIST_FLAG("-b, --batch", "LIST", &(v)->batch, 1, CLI_MAX_BATCH, "batch sizes",               \
                          .def_shown = "1"),                                                                 \
            CLI_TEXTS_FLAG("-o, --output", "PATH", &(v)->outputs, 2, "outputs"),                             \
            CLI_SWITCH_FLAG("--no-echo", &(v)->no_echo, "quiet\nsecond line"),                               \
    }

/* Parses "test ARGS..." into *v with the test table. */
static parsed parse_values(values *v, char **argv) {
    const cli_flag flags[] = TEST_FLAGS(v);
    static const cli_verb verb = {.name = "test", .usage = "-m MODEL [options]", .about = "A test verb.\n"};
    return parse_with(&verb, flags, CLI_N_FLAGS(flags), NULL, argv);
}
#define PARSE(v, ...) parse_values((v), (char *[]){"test", __VA_ARGS__, NULL})

static void expect_usage_error(parsed p, const char *message) {
    if (p.rc != 2 || !strstr(p.err, message) || strncmp(p.err, "squeeze test: ", 14) ||
        !strstr(p.err, "(see 'squeeze test --help')") || p.out[0])
        fail_msg("want exit 2 and \"%s\", got %d: %s", message, p.rc, p.err);
}

static void test_defaults(void **state) {
    (void)state;
    values v;
    memset(&v, 0xab, sizeof v); /* whatever was there before is overwritten */
    parsed p = PARSE(&v, "-m", "model.bin");
    assert_int_equal(p.rc, CLI_CONTINUE);
    assert_string_equal(p.err, "");
    assert_string_equal(v.model, "model.bin");
    assert_int_equal(v.threads, 0);
    assert_int_equal(v.ctx, 0);
    assert_int_equal(v.seed, 1234);
    assert_true(v.temp == (double)0.8f);
    assert_true(v.top_p == 1);
    assert_string_equal(v.kernels, "avx2");
    assert_null(v.batch.v);
    assert_int_equal(v.batch.n, 0);
    assert_int_equal(v.outputs.n, 0);
    assert_int_equal(v.no_echo, 0);
}

static void test_aliases_and_equals(void **state) {
    (void)state;
    values v;
    const char *threads[][2] = {{"-t", "3"}, {"--threads", "3"}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(PARSE(&v, "-m", "x", (char *)threads[i][0], (char *)threads[i][1]).rc, CLI_CONTINUE);
        assert_int_equal(v.threads, 3);
    }
    assert_int_equal(PARSE(&v, "--model=y", "--threads=7", "--ctx-size=64", "--no-echo").rc, CLI_CONTINUE);
    assert_string_equal(v.model, "y");
    assert_int_equal(v.threads, 7);
    assert_int_equal(v.ctx, 64);
    assert_int_equal(v.no_echo, 1);
    assert_int_equal(PARSE(&v, "-m", "x", "-c", "32").rc, CLI_CONTINUE);
    assert_int_equal(v.ctx, 32);
    assert_int_equal(PARSE(&v, "-m", "x", "--ctx", "2", "-s", "-1", "--temp=0", "--top-p", "1").rc,
                     CLI_CONTINUE);
    assert_int_equal(v.ctx, 2);
    assert_int_equal(v.seed, -1); /* a value may start with '-' */
    assert_true(v.temp == 0 && v.top_p == 1);
    /* '=' belongs to long names only; "--model=" gives an empty value */
    expect_usage_error(PARSE(&v, "-m", "x", "-t=3"), "unknown option '-t=3'");
    assert_int_equal(PARSE(&v, "--model=").rc, CLI_CONTINUE);
    assert_string_equal(v.model, "");
    /* a value flag takes the next argument whatever it is, as llama.cpp does */
    assert_int_equal(PARSE(&v, "-m", "--help").rc, CLI_CONTINUE);
    assert_string_equal(v.model, "--help");
    /* the largest seed is 2^53, exact */
    assert_int_equal(PARSE(&v, "-m", "x", "--seed", "9007199254740992").rc, CLI_CONTINUE);
    assert_int_equal(v.seed, 9007199254740992L);
}

static void test_missing_and_unknown(void **state) {
    (void)state;
    values v;
    expect_usage_error(PARSE(&v, "-m"), "-m needs a value");
    expect_usage_error(PARSE(&v, "-m", "x", "--threads"), "--threads needs a value");
    expect_usage_error(PARSE(&v, "-t", "2"), "-m MODEL is required");
    expect_usage_error(PARSE(&v, "-m", "x", "--bogus"), "unknown option '--bogus'");
    expect_usage_error(PARSE(&v, "-m", "x", "--bogus=1"), "unknown option '--bogus'");
    expect_usage_error(PARSE(&v, "-m", "x", "stray"), "unknown option 'stray'");
    expect_usage_error(PARSE(&v, "-m", "x", "-"), "unknown option '-'");
    expect_usage_error(PARSE(&v, "-m", "x", "--no-echo=1"), "--no-echo takes no value");
    /* a prefix of a name is not the name */
    expect_usage_error(PARSE(&v, "-m", "x", "--thread", "2"), "unknown option '--thread'");
}

static void test_ranges(void **state) {
    (void)state;
    values v;
    static const struct {
        const char *flag, *value, *message;
    } cases[] = {
        {"-t", "0", "-t '0' must be an integer in [1, 1024]"},
        {"--threads", "1025", "--threads '1025' must be an integer in [1, 1024]"},
        {"-t", "12abc", "-t '12abc' must be an integer in [1, 1024]"},
        {"-t", "", "-t '' must be an integer"},
        {"-t", " 3", "-t ' 3' must be an integer"},
        {"-t", "3.0", "-t '3.0' must be an integer"},
        {"-t", "99999999999999999999", "-t '99999999999999999999' must be an integer"},
        {"-c", "1", "-c '1' must be an integer in [2, 1048576]"},
        {"--ctx", "1048577", "--ctx '1048577' must be an integer in [2, 1048576]"},
        {"--seed", "-2", "--seed '-2' must be an integer in [-1, 9007199254740992]"},
        {"--seed", "9007199254740993", "must be an integer in [-1, 9007199254740992]"},
        {"--temp", "-0.5", "--temp '-0.5' must be a number in [0, 100]"},
        {"--temp", "nan", "--temp 'nan' must be a number in [0, 100]"},
        {"--temp", "inf", "--temp 'inf' must be a number"},
        {"--temp", "1e999", "--temp '1e999' must be a number"},
        {"--temp", "0.5x", "--temp '0.5x' must be a number"},
        {"--top-p", "0", "--top-p '0' must be a number in (0, 1]"},
        {"--top-p", "1.5", "--top-p '1.5' must be a number in (0, 1]"},
        {"--kernels", "neon", "--kernels 'neon' must be one of scalar, avx2, avx512"},
        {"--kernels", "avx", "--kernels 'avx' must be one of scalar, avx2, avx512"},
        {"-b", "0",
         "-b '0' must be integers in [1, 4096] separated by commas or spaces: item 1 (byte 0) '0'"},
        {"-b", "1,,2",
         "-b '1,,2' must be integers in [1, 4096] separated by commas or spaces: item 2 is empty"},
        {"-b", "", "-b '' must be integers in [1, 4096] separated by commas or spaces: the list is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_usage_error(PARSE(&v, "-m", "x", (char *)cases[i].flag, (char *)cases[i].value),
                           cases[i].message);
    /* the edges themselves are in range */
    assert_int_equal(PARSE(&v, "-m", "x", "-t", "1024", "--temp", "100", "--top-p", "1e-9", "-b", "4096").rc,
                     CLI_CONTINUE);
    assert_int_equal(v.threads, 1024);
    assert_true(v.temp == 100 && v.top_p == 1e-9);
    assert_int_equal(v.batch.n, 1);
    assert_int_equal(v.batch.v[0], 4096);
    cli_list_free(&v.batch);
}

static void test_repeated(void **state) {
    (void)state;
    values v;
    /* the last value wins (a wrapper may append flags to a command line) */
    assert_int_equal(PARSE(&v, "-m", "a", "-t", "2", "--threads", "5", "-m", "b").rc, CLI_CONTINUE);
    assert_int_equal(v.threads, 5);
    assert_string_equal(v.model, "b");
    /* a repeated list replaces the earlier one (which is freed: the sanitized run checks) */
    assert_int_equal(PARSE(&v, "-m", "x", "-b", "1,2,3", "-b", "4 8").rc, CLI_CONTINUE);
    assert_int_equal(v.batch.n, 2);
    assert_int_equal(v.batch.v[0], 4);
    assert_int_equal(v.batch.v[1], 8);
    cli_list_free(&v.batch);
    assert_null(v.batch.v);
    /* a repeatable flag collects up to its limit */
    assert_int_equal(PARSE(&v, "-m", "x", "-o", "a.md", "--output=b.svg").rc, CLI_CONTINUE);
    assert_int_equal(v.outputs.n, 2);
    assert_string_equal(v.outputs.v[0], "a.md");
    assert_string_equal(v.outputs.v[1], "b.svg");
    expect_usage_error(PARSE(&v, "-m", "x", "-o", "a", "-o", "b", "-o", "c"),
                       "-o may be given at most 2 times");
    /* a list parsed before an error is freed, not leaked */
    expect_usage_error(PARSE(&v, "-m", "x", "-b", "1,2", "--bogus"), "unknown option '--bogus'");
    assert_null(v.batch.v);
    assert_int_equal(v.batch.n, 0);
}

static void test_operands(void **state) {
    (void)state;
    values v;
    const cli_flag flags[] = TEST_FLAGS(&v);
    static const cli_verb verb = {.name = "test", .usage = "FILE...", .operands = "FILE"};
    char *argv[] = {"test", "a.json", "-m", "x", "b.json", "-", "--", "-c.json", "--help", NULL};
    int n = -1;
    parsed p = parse_with(&verb, flags, CLI_N_FLAGS(flags), &n, argv);
    assert_int_equal(p.rc, CLI_CONTINUE);
    assert_int_equal(n, 5); /* "-" is an operand; after "--" everything is */
    assert_string_equal(argv[1], "a.json");
    assert_string_equal(argv[2], "b.json");
    assert_string_equal(argv[3], "-");
    assert_string_equal(argv[4], "-c.json");
    assert_string_equal(argv[5], "--help");
    assert_string_equal(v.model, "x");
}

static void test_help(void **state) {
    (void)state;
    values v;
    parsed p = PARSE(&v, "-t", "3", "--help", "--bogus");
    assert_int_equal(p.rc, 0); /* help stops the parse: --bogus is never seen, -m is not required */
    assert_string_equal(p.err, "");
    const char *want[] = {
        "usage: squeeze test -m MODEL [options]\n\nA test verb.\n\noptions:\n",
        "  -m, --model MODEL         llama2.c .bin, GGUF file or Hugging Face directory (required)\n",
        "  -t, --threads N           threads (default: all cores)\n",
        "  -c, --ctx, --ctx-size N   context length in tokens (default: the model's)\n",
        "  -s, --seed S              seed; -1: from the clock (default 1234)\n",
        "  --temp T                  temperature (default 0.8)\n",
        "  --kernels NAME            kernel set (default avx2)\n",
        "  -b, --batch LIST          batch sizes (default: 1)\n",
        "  -o, --output PATH         outputs\n",
        "  --no-echo                 quiet\n                            second line\n",
        "  -h, --help                print this help\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(p.out, want[i])) fail_msg("--help lacks \"%s\":\n%s", want[i], p.out);
    assert_int_equal(PARSE(&v, "-h").rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_aliases_and_equals),
        cmocka_unit_test(test_missing_and_unknown),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_repeated),
        cmocka_unit_test(test_operands),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
