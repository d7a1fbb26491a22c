/* Lists of integers as people write them on command lines and in id files: "1,4,16", "1 2 3", one id a line.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/array.h"
#include "core/error.h"

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and at most one comma (with whitespace around it); *comma says whether there was one. */
static size_t skip_separator(const char *text, size_t len, size_t i, int *comma) {
    *comma = 0;
    while (i < len && is_space(text[i])) i++;
    if (i < len && text[i] == ',') {
        *comma = 1;
        for (i++; i < len && is_space(text[i]);) i++;
    }
    return i;
}

/* The item's value, or 0 when it is not an optionally signed decimal integer in [lo, hi]. */
static int item_value(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out) {
    size_t i = s[0] == '-' || s[0] == '+';
    if (i == n) return 0;
    uint64_t mag = 0, limit = (uint64_t)INT64_MAX + 1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        mag = mag * 10 + (uint64_t)(s[i] - '0');
        if (mag > limit) return 0;
    }
    if (s[0] == '-' ? mag > limit : mag > (uint64_t)INT64_MAX) return 0;
    int64_t v = s[0] == '-' ? (int64_t)(0 - mag) : (int64_t)mag;
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return 0;
    return 1;
}

sq_error *sq_parse_int_list(const char *text, size_t len, int64_t lo, int64_t hi, int32_t **values,
                            int64_t *n_values) {
    *values = NULL;
    *n_values = 0;
    if (lo < INT32_MIN || hi > INT32_MAX || lo > hi)
        return sq_errorf(SQ_ERR_INVALID_ARG, "integer list: range [%lld, %lld] is not within int32",
                         (long long)lo, (long long)hi);
    int32_t *out = NULL;
    size_t cap = 0, n = 0;
    int comma;
    sq_error *err = NULL;
    size_t i = skip_separator(text, len, 0, &comma);
    if (comma) err = sq_errorf(SQ_ERR_FORMAT, "item 1 is empty (the list starts with a comma)");
    while (!err && i < len) {
        size_t start = i;
        while (i < len && !is_space(text[i]) && text[i] != ',') i++;
        int64_t v;
        if (!item_value(text + start, i - start, lo, hi, &v)) {
            size_t shown = i - start;
            int show = shown <= 40 && printable(text + start, shown);
            err = sq_errorf(SQ_ERR_FORMAT, "item %zu (byte %zu)%s%.*s%s is not an integer in [%lld, %lld]",
                            n + 1, start, show ? " '" : "", show ? (int)shown : 0, text + start,
                            show ? "'" : "", (long long)lo, (long long)hi);
        } else if (SQ_ARRAY_RESERVE(out, cap, n + 1)) {
            err = sq_errorf(SQ_ERR_NOMEM, "out of memory after %zu integers", n);
        } else {
            out[n++] = (int32_t)v;
            i = skip_separator(text, len, i, &comma);
            if (comma && (i == len || text[i] == ','))
                err = sq_errorf(SQ_ERR_FORMAT, "item %zu is empty (%s)", n + 1,
                                i == len ? "the list ends with a comma" : "two commas in a row");
        }
    }
    if (err) {
        free(out);
        return err;
    }
    *values = out;
    *n_values = (int64_t)n;
    return NULL;
}
