/* Helpers shared by the C tests: where the shared data lives, random inputs, tolerance checks. */
#ifndef SQ_TESTLIB_H
#define SQ_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the includes above first. */
#include <cmocka.h>

#include "squeeze.h"

/* cmocka's failure and skip calls never return (they leave the test through longjmp); saying so lets the
 * static analyzer (scripts/check-errors.sh) follow the tests' error paths as they run. */
void _fail(const char *const file, const int line) __attribute__((noreturn));
void _skip(const char *const file, const int line) __attribute__((noreturn));

/* Path of a file under ../shared (or $SQ_SHARED); returns a static buffer. */
const char *sq_test_shared(const char *rel);
/* Path under the test scratch directory ($SQ_WORK, created by CMake); returns a static buffer. */
const char *sq_test_work(const char *rel);
/* Writes n bytes to path, failing the test if it cannot; returns path. */
const char *sq_test_write_file(const char *path, const void *data, size_t n);
/* The whole file through sq_read_file (NUL-terminated; *n bytes before the NUL), failing the test if it
 * cannot be read; the caller frees it. */
char *sq_test_read_file(const char *path, size_t *n);
/* Fails the test with the error's message if err is not NULL. */
SQ_TAKES_ERROR(1) void sq_test_ok(sq_error *err);
/* Asserts err is an error whose message contains `needle`, then frees it. */
SQ_TAKES_ERROR(1) void sq_test_fails_with(sq_error *err, const char *needle);
/* Deterministic xorshift random numbers for fresh-but-reproducible inputs. */
uint64_t sq_test_rand_u64(uint64_t *state);
float sq_test_rand_uniform(uint64_t *state, float lo, float hi);
/* Reads up to max whitespace-separated token ids from a text file (the golden token lists); returns how many.
 */
int sq_test_read_ids(const char *path, int32_t *ids, int max);
/* Reads count little-endian float32 values (the golden logits); the caller frees. */
float *sq_test_read_f32(const char *path, size_t count);
/* max |a-b| / max(|b|) over n values */
double sq_test_rel_err(const float *a, const float *b, size_t n);
/* Fails unless every row of got ([n_rows][vocab]) is within tol of want's (sq_test_rel_err) with the same
 * argmax; `what` names the case in the message. */
void sq_test_check_logits(const float *got, const float *want, int n_rows, int vocab, double tol,
                          const char *what);
/* The logits [n][vocab] of ids run as one sequence from an empty cache (skip_layers: NULL or [n_layers],
 * non-zero skips a block); the caller frees. */
float *sq_test_logits(const sq_model *m, const int32_t *ids, int n, const unsigned char *skip_layers);

#endif
