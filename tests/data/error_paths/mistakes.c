/* Planted mistakes for scripts/check-errors.sh --self-test: the static analyzer must report something in
 * every bad_* function and nothing in any good_* function. Never compiled into the build. */
#include <stdlib.h>

#include "core/error.h"
#include "squeeze.h"

SQ_NODISCARD sq_error *might_fail(int x);
SQ_NODISCARD SQ_TAKES_ERROR(2) sq_error *finish(void *state, sq_error *err);

/* helpers in the same file, as the analyzer inlines them */
static SQ_NODISCARD sq_error *check_positive(int x) {
    if (x <= 0) return sq_errorf(SQ_ERR_INVALID_ARG, "%d is not positive", x);
    return NULL;
}

static SQ_NODISCARD sq_error *two_steps(int x) {
    SQ_TRY(check_positive(x));
    SQ_TRY(might_fail(x));
    return NULL;
}

int bad_early_return(const char *path) {
    sq_model *m = NULL;
    sq_error *err = sq_model_load(path, NULL, &m);
    if (err) return 1; /* the error is never freed */
    sq_model_free(m);
    return 0;
}

int bad_overwritten(int x) {
    sq_error *err = might_fail(x);
    err = might_fail(x + 1); /* the first error is lost */
    sq_error_free(err);
    return 0;
}

int bad_condition(int x) {
    if (might_fail(x)) return 1; /* tested, never freed */
    return 0;
}

int bad_use_after_free(int x) {
    sq_error *err = might_fail(x);
    sq_error_free(err);
    return err ? sq_error_message(err)[0] : 0;
}

int bad_double_free(int x) {
    sq_error *err = two_steps(x);
    if (err) sq_error_free(err);
    sq_error_free(err);
    return 0;
}

int bad_helper_result(int x) {
    sq_error *err = two_steps(x);
    if (x > 10) return 2; /* err may hold an error here */
    sq_error_free(err);
    return 0;
}

sq_error *bad_wrapped_then_used(int x) {
    sq_error *err = might_fail(x);
    if (!err) return NULL;
    sq_error *wrapped = sq_error_wrap(err, "step %d", x);
    sq_error_free(err); /* sq_error_wrap took it over */
    return wrapped;
}

int bad_loop(int n) {
    sq_error *first = NULL;
    for (int i = 0; i < n; i++) {
        sq_error *err = might_fail(i);
        if (err && !first) first = err; /* later errors are dropped */
    }
    sq_error_free(first);
    return 0;
}

sq_error *bad_taken_twice(void *state, int x) {
    sq_error *err = might_fail(x);
    sq_error *out = finish(state, err);
    sq_error_free(err); /* finish took it over */
    return out;
}

int good_freed(const char *path) {
    sq_model *m = NULL;
    sq_error *err = sq_model_load(path, NULL, &m);
    if (err) {
        sq_error_free(err);
        return 1;
    }
    sq_model_free(m);
    return 0;
}

sq_error *good_try(int x) {
    SQ_TRY(two_steps(x));
    SQ_TRY(might_fail(x));
    return NULL;
}

sq_error *good_wrap(int x) {
    sq_error *err = might_fail(x);
    return err ? sq_error_wrap(err, "step %d", x) : NULL;
}

int good_free_inline(int x) {
    sq_error_free(might_fail(x));
    return 0;
}

sq_error *good_first_of_loop(int n) {
    sq_error *first = NULL;
    for (int i = 0; i < n; i++) {
        sq_error *err = might_fail(i);
        if (err && !first)
            first = err;
        else
            sq_error_free(err);
    }
    return first;
}

typedef struct job {
    sq_error *err;
} job;

void good_stored(job *j, int x) { j->err = might_fail(x); }

sq_error *good_finish(void *state, int x) { return finish(state, might_fail(x)); }
