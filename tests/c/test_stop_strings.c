/* Stop strings over streamed text (src/server/stop_strings.c) against a plain reference: on random texts
 * over a small alphabet (so that stop strings and their prefixes occur often) cut into random pieces, the
 * pieces passed on are exactly the text before the stop string completed first, and after each push exactly
 * what can no longer begin one. */
#include <stdlib.h>
#include <string.h>

#include "server/stop_strings.h"
#include "testlib.h"

/* the reference: the start of the occurrence of a stop string in text[0..n) that ends first (the longest of
 * those ending there), or n */
static size_t first_stop(const char *text, size_t n, char stops[][8], int n_stop) {
    size_t best_end = n + 1, best_start = n;
    for (int i = 0; i < n_stop; i++) {
        size_t sl = strlen(stops[i]);
        for (size_t at = 0; at + sl <= n; at++)
            if (!memcmp(text + at, stops[i], sl) &&
                (at + sl < best_end || (at + sl == best_end && at < best_start))) {
                best_end = at + sl;
                best_start = at;
            }
    }
    return best_start;
}

/* the reference: the start of the longest suffix of text[0..n) that is a proper prefix of a stop string */
static size_t held_from(const char *text, size_t n, char stops[][8], int n_stop) {
    for (size_t at = 0; at < n; at++)
        for (int i = 0; i < n_stop; i++) {
            size_t sl = strlen(stops[i]);
            if (n - at < sl && !memcmp(text + at, stops[i], n - at)) return at;
        }
    return n;
}

static void test_random_texts(void **state) {
    (void)state;
    uint64_t rng = 42;
    for (int trial = 0; trial < 3000; trial++) {
        char text[200], stops[4][8];
        const char *stop_ptr[4];
        size_t n = sq_test_rand_u64(&rng) % sizeof text;
        for (size_t i = 0; i < n; i++) text[i] = "abc"[sq_test_rand_u64(&rng) % 3];
        int n_stop = (int)(sq_test_rand_u64(&rng) % 5);
        for (int i = 0; i < n_stop; i++) {
            int len = 1 + (int)(sq_test_rand_u64(&rng) % 6);
            for (int k = 0; k < len; k++) stops[i][k] = "abc"[sq_test_rand_u64(&rng) % 3];
            stops[i][len] = 0;
            stop_ptr[i] = stops[i];
        }
        sq_stop_matcher m;
        sq_stop_init(&m, stop_ptr, n_stop);
        char out[400];
        size_t n_out = 0, fed = 0;
        int stopped = 0;
        const size_t want_end = first_stop(text, n, stops, n_stop);
        while (fed < n && !stopped) {
            size_t piece = 1 + sq_test_rand_u64(&rng) % 7;
            if (piece > n - fed) piece = n - fed;
            const char *o;
            size_t ol;
            stopped = sq_stop_push(&m, text + fed, piece, &o, &ol);
            assert_true(stopped >= 0);
            memcpy(out + n_out, o, ol);
            n_out += ol;
            fed += piece;
            if (!stopped) { /* exactly what can no longer begin a stop string has been passed on */
                assert_int_equal(n_out, held_from(text, fed, stops, n_stop));
            }
        }
        if (!stopped) {
            const char *o;
            size_t ol;
            sq_stop_flush(&m, &o, &ol);
            memcpy(out + n_out, o, ol);
            n_out += ol;
        }
        assert_int_equal(stopped, want_end < n);
        assert_int_equal(n_out, want_end);
        assert_memory_equal(out, text, n_out);
        sq_stop_free(&m);
    }
}

/* A stop string arriving in pieces of several tokens is never passed on, not even its first bytes. */
static void test_split_across_pieces(void **state) {
    (void)state;
    const char *stops[] = {"le gi"};
    sq_stop_matcher m;
    sq_stop_init(&m, stops, 1);
    const char *pieces[] = {" a", " lit", "tle", " girl", " named"};
    char out[64] = {0};
    size_t n_out = 0;
    int stopped = 0;
    for (int i = 0; i < 5 && !stopped; i++) {
        const char *o;
        size_t ol;
        stopped = sq_stop_push(&m, pieces[i], strlen(pieces[i]), &o, &ol);
        memcpy(out + n_out, o, ol);
        n_out += ol;
        if (i == 2) assert_string_equal(out, " a litt"); /* "le" is held: it may begin "le gi" */
    }
    assert_int_equal(stopped, 1);
    assert_string_equal(out, " a litt");
    sq_stop_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_texts),
        cmocka_unit_test(test_split_across_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
