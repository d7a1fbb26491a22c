#include "eval/json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "core/error.h"

/* Reports are small; anything larger than this is not one. */
#define SQ_JSON_MAX_BYTES ((size_t)64 << 20)

/* Line and column of byte offset `at`, for parse errors. */
static void line_and_column(const char *text, size_t at, int *line, int *column) {
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < at && text[i]; i++) {
        if (text[i] == '\n')
            ++*line, *column = 1;
        else
            ++*column;
    }
}

sq_error *sq_json_load_file(const char *path, cJSON **out) {
    char *text = NULL;
    size_t len = 0;
    SQ_TRY(sq_read_file(path, SQ_JSON_MAX_BYTES, &text, &len));
    sq_error *err = NULL;
    if (len == 0) err = sq_errorf(SQ_ERR_FORMAT, "%s: empty file, not a JSON report", path);
    if (!err && memchr(text, 0, len))
        err = sq_errorf(SQ_ERR_FORMAT, "%s: contains NUL bytes, not JSON", path);
    const char *end = NULL;
    cJSON *root = err ? NULL : cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!err && !root) {
        int line, column;
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        line_and_column(text, at, &line, &column);
        err = sq_errorf(SQ_ERR_FORMAT, "%s: malformed JSON at line %d, column %d", path, line, column);
    }
    free(text);
    if (err) return err;
    *out = root;
    return NULL;
}

/* The field, or NULL when it is absent or an allowed null. */
static SQ_NODISCARD sq_error *get_field(const cJSON *obj, const char *name, int flags, const char *where,
                                        const cJSON **out) {
    *out = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    if (*out && cJSON_IsNull(*out)) {
        if (!(flags & SQ_JSON_NULLABLE))
            return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" is null", where, name);
        *out = NULL;
        return NULL;
    }
    if (!*out && (flags & SQ_JSON_REQUIRED))
        return sq_errorf(SQ_ERR_FORMAT, "%s: missing field \"%s\"", where, name);
    return NULL;
}

sq_error *sq_json_get_number(const cJSON *obj, const char *name, int flags, const char *where, double *out,
                             int *found) {
    const cJSON *item;
    SQ_TRY(get_field(obj, name, flags, where, &item));
    if (found) *found = item != NULL;
    if (!item) return NULL;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" should be a finite number", where, name);
    *out = item->valuedouble;
    return NULL;
}

static int valid_utf8(const char *s) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t left = (utf8proc_ssize_t)strlen(s);
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) return 0;
        p += n;
        left -= n;
    }
    return 1;
}

sq_error *sq_json_get_string(const cJSON *obj, const char *name, int flags, const char *where,
                             const char **out) {
    const cJSON *item;
    SQ_TRY(get_field(obj, name, flags, where, &item));
    if (!item) return NULL;
    if (!cJSON_IsString(item))
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" should be a string", where, name);
    if (!valid_utf8(item->valuestring))
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" is not valid UTF-8", where, name);
    *out = item->valuestring;
    return NULL;
}

sq_error *sq_json_get_object(const cJSON *obj, const char *name, int flags, const char *where,
                             const cJSON **out) {
    SQ_TRY(get_field(obj, name, flags, where, out));
    if (*out && !cJSON_IsObject(*out))
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" should be an object", where, name);
    return NULL;
}

sq_error *sq_json_get_array(const cJSON *obj, const char *name, int flags, const char *where,
                            const cJSON **out) {
    SQ_TRY(get_field(obj, name, flags, where, out));
    if (*out && !cJSON_IsArray(*out))
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" should be an array", where, name);
    return NULL;
}
