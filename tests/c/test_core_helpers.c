/* The library-wide helpers in src/core/: growable arrays, the whole-file reader, the integer-list parser and
 * the monotonic clock, each against a plain re-statement of its contract on random and awkward inputs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/array.h"
#include "testlib.h"

/* ------------------------------------------------------------------ sq_array_reserve */

static void test_array_grows_geometrically_and_keeps_contents(void **state) {
    (void)state;
    int32_t *a = NULL;
    size_t cap = 0, n = 0, reallocs = 0, last_cap = 0;
    for (int32_t i = 0; i < 100000; i++) {
        assert_int_equal(SQ_ARRAY_RESERVE(a, cap, n + 1), 0);
        assert_true(cap >= n + 1);
        if (cap != last_cap) reallocs++, last_cap = cap;
        a[n++] = i * 7;
    }
    for (size_t i = 0; i < n; i++) assert_int_equal(a[i], (int32_t)i * 7);
    /* doubling from 16: 16, 32, ..., 131072 */
    assert_true(reallocs <= 14);
    /* a request within the capacity changes nothing */
    int32_t *before = a;
    size_t before_cap = cap;
    assert_int_equal(SQ_ARRAY_RESERVE(a, cap, cap), 0);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, before_cap);
    /* a request far beyond twice the capacity gets exactly what it asked for */
    assert_int_equal(SQ_ARRAY_RESERVE(a, cap, 5 * before_cap), 0);
    assert_int_equal(cap, 5 * before_cap);
    for (size_t i = 0; i < n; i++) assert_int_equal(a[i], (int32_t)i * 7);
    free(a);
}

static void test_array_overflow_leaves_the_array(void **state) {
    (void)state;
    double *a = NULL;
    size_t cap = 0;
    assert_int_equal(SQ_ARRAY_RESERVE(a, cap, 3), 0);
    assert_int_equal(cap, 16);
    a[2] = 2.5;
    double *before = a;
    assert_int_equal(SQ_ARRAY_RESERVE(a, cap, SIZE_MAX / 4), -1); /* SIZE_MAX/4 * 8 bytes overflows */
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 16);
    assert_true(a[2] == 2.5);
    free(a);
}

/* ------------------------------------------------------------------ sq_read_file */

static void test_read_file_regular(void **state) {
    (void)state;
    uint64_t seed = 7;
    size_t n = 100003;
    char *want = malloc(n);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++) want[i] = (char)sq_test_rand_u64(&seed); /* NULs included */
    const char *path = sq_test_write_file(sq_test_work("read_file_random.bin"), want, n);
    char *got;
    size_t len;
    sq_test_ok(sq_read_file(path, n, &got, &len));
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], 0);
    free(got);
    /* one byte over the limit is refused, naming the file and the limit */
    sq_test_fails_with(sq_read_file(path, n - 1, &got, &len), "larger than the 100002 bytes allowed");
    assert_null(got);
    free(want);

    path = sq_test_write_file(sq_test_work("read_file_empty.txt"), "", 0);
    sq_test_ok(sq_read_file(path, 10, &got, &len));
    assert_int_equal(len, 0);
    assert_string_equal(got, "");
    free(got);
}

static void test_read_file_errors(void **state) {
    (void)state;
    char *got;
    size_t len;
    sq_test_fails_with(sq_read_file(sq_test_work("read_file_missing.txt"), 10, &got, &len),
                       "read_file_missing.txt: cannot open");
    assert_null(got);
    const char *dir = sq_test_work("read_file_dir");
    mkdir(dir, 0700);
    sq_test_fails_with(sq_read_file(dir, 10, &got, &len), "read_file_dir: not a file");
}

/* A pipe has no size: it is read in chunks until its end (what `-f /dev/stdin` does). */
static void test_read_file_pipe(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    enum { N = 50000 }; /* within the pipe's buffer, so one thread can write all of it first */
    static char want[N];
    for (int i = 0; i < N; i++) want[i] = (char)('a' + i % 26);
    assert_int_equal(write(fds[1], want, N), N);
    close(fds[1]);
    char path[64], *got;
    size_t len;
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    sq_test_ok(sq_read_file(path, N, &got, &len));
    close(fds[0]);
    assert_int_equal(len, N);
    assert_memory_equal(got, want, N);
    free(got);

    /* past the limit, the reading stops with the error */
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], want, N), N);
    close(fds[1]);
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    sq_test_fails_with(sq_read_file(path, 4097, &got, &len), "larger than the 4097 bytes allowed");
    close(fds[0]);
}

/* ------------------------------------------------------------------ sq_parse_int_list */

static void expect_list(const char *text, int64_t lo, int64_t hi, const int32_t *want, int64_t n) {
    int32_t *got;
    int64_t n_got;
    sq_error *err = sq_parse_int_list(text, strlen(text), lo, hi, &got, &n_got);
    if (err) fail_msg("'%s': unexpected error %s", text, sq_error_message(err));
    assert_int_equal(n_got, n);
    for (int64_t i = 0; i < n; i++) assert_int_equal(got[i], want[i]);
    if (!n) assert_null(got);
    free(got);
}

static void expect_list_error(const char *text, size_t len, int64_t lo, int64_t hi, const char *needle) {
    int32_t *got = (int32_t *)&got;
    int64_t n_got = -1;
    sq_test_fails_with(sq_parse_int_list(text, len, lo, hi, &got, &n_got), needle);
    assert_null(got);
    assert_int_equal(n_got, 0);
}

static void test_int_list_random(void **state) {
    (void)state;
    static const char *const seps[] = {" ", ",", ", ", " ,", "\n", "\t", "  \r\n", " , "};
    uint64_t seed = 11;
    char text[8192];
    int32_t want[512];
    for (int round = 0; round < 500; round++) {
        int n = (int)(sq_test_rand_u64(&seed) % 512);
        size_t len = 0;
        if (sq_test_rand_u64(&seed) % 2) len += (size_t)snprintf(text, sizeof text, "  \n");
        for (int i = 0; i < n; i++) {
            uint64_t r = sq_test_rand_u64(&seed);
            /* small ids, full-range ids and the extremes */
            want[i] = r % 5 == 0   ? INT32_MAX
                      : r % 5 == 1 ? INT32_MIN
                      : r % 5 == 2 ? (int32_t)(r >> 40) % 1000
                                   : (int32_t)(uint32_t)(r >> 16);
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s%d", i ? seps[r % 8] : "",
                                    r % 7 == 0 && want[i] >= 0 ? "+" : "", want[i]);
        }
        if (sq_test_rand_u64(&seed) % 2) len += (size_t)snprintf(text + len, sizeof text - len, " \n");
        expect_list(text, INT32_MIN, INT32_MAX, want, n);
    }
}

static void test_int_list_edges(void **state) {
    (void)state;
    expect_list("", 0, 10, NULL, 0);
    expect_list(" \n\t ", 0, 10, NULL, 0);
    expect_list("-0 +3 10", 0, 10, (int32_t[]){0, 3, 10}, 3);
    expect_list("1,4,16", 1, 4096, (int32_t[]){1, 4, 16}, 3);
    expect_list(" 7 , 8\n9 ", 0, 9, (int32_t[]){7, 8, 9}, 3);
    expect_list_error("1,,2", 4, 0, 10, "item 2 is empty (two commas in a row)");
    expect_list_error("2,", 2, 0, 10, "item 2 is empty (the list ends with a comma)");
    expect_list_error("2 , ", 4, 0, 10, "item 2 is empty (the list ends with a comma)");
    expect_list_error(",1", 2, 0, 10, "item 1 is empty (the list starts with a comma)");
    expect_list_error("1 12abc", 7, 0, 100, "item 2 (byte 2) '12abc' is not an integer in [0, 100]");
    expect_list_error("11", 2, 0, 10, "item 1 (byte 0) '11' is not an integer in [0, 10]");
    expect_list_error("3 -1", 4, 0, 10, "item 2 (byte 2) '-1' is not an integer in [0, 10]");
    expect_list_error("2147483648", 10, INT32_MIN, INT32_MAX, "'2147483648' is not an integer");
    expect_list_error("-2147483649", 11, INT32_MIN, INT32_MAX, "'-2147483649' is not an integer");
    expect_list_error("99999999999999999999999", 23, 0, 10, "is not an integer");
    expect_list_error("- 1", 3, -5, 5, "item 1 (byte 0) '-' is not an integer");
    expect_list_error("1;2", 3, 0, 10, "'1;2' is not an integer");
    /* the length is what counts: a NUL byte inside the text is an error, not its end */
    expect_list_error("1 2\0 3", 6, 0, 10, "item 2 (byte 2) is not an integer");
    /* unprintable items are not copied into the message */
    expect_list_error("1 \xff", 3, 0, 10, "item 2 (byte 2) is not an integer");
    expect_list_error("1", 1, 0, (int64_t)INT32_MAX + 1, "not within int32");
}

/* ------------------------------------------------------------------ sq_monotonic_seconds */

static void test_monotonic_clock(void **state) {
    (void)state;
    double t0 = sq_monotonic_seconds(), prev = t0;
    for (int i = 0; i < 1000; i++) {
        double t = sq_monotonic_seconds();
        assert_true(t >= prev);
        prev = t;
    }
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    assert_true(sq_monotonic_seconds() - t0 >= 0.019); /* a sleep of 20 ms is never shorter */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_grows_geometrically_and_keeps_contents),
        cmocka_unit_test(test_array_overflow_leaves_the_array),
        cmocka_unit_test(test_read_file_regular),
        cmocka_unit_test(test_read_file_errors),
        cmocka_unit_test(test_read_file_pipe),
        cmocka_unit_test(test_int_list_random),
        cmocka_unit_test(test_int_list_edges),
        cmocka_unit_test(test_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
