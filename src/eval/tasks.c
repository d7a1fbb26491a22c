/* Zero-shot task files: MosaicML JSONL layouts and HellaSwag's bzip2 text, read into one item shape
 * (per choice: a context and a continuation that starts with its delimiter).
 *
 * Every problem is an error naming the file and line: bad JSON, a missing or mistyped field, no choices,
 * an empty choice, a gold index out of range, a truncated HellaSwag item. */
#include <bzlib.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "eval/eval.h"

typedef enum task_layout {
    LAYOUT_QUERY_CHOICES,
    LAYOUT_CONTEXT_OPTIONS,
    LAYOUT_CONTEXT_CONTINUATION,
    LAYOUT_HELLASWAG
} task_layout;

typedef struct task_spec {
    const char *name, *file;
    task_layout layout;
    sq_task_scoring scoring;
    int has_acc_norm;
} task_spec;

static const task_spec task_specs[] = {
    {"piqa", "piqa.jsonl", LAYOUT_QUERY_CHOICES, SQ_SCORE_CHOICE, 1},
    {"arc_easy", "arc_easy.jsonl", LAYOUT_QUERY_CHOICES, SQ_SCORE_CHOICE, 1},
    {"arc_challenge", "arc_challenge.jsonl", LAYOUT_QUERY_CHOICES, SQ_SCORE_CHOICE, 1},
    {"boolq", "boolq.jsonl", LAYOUT_QUERY_CHOICES, SQ_SCORE_CHOICE, 0},
    {"openbook_qa", "openbook_qa.jsonl", LAYOUT_QUERY_CHOICES, SQ_SCORE_CHOICE, 1},
    {"winogrande", "winogrande.jsonl", LAYOUT_CONTEXT_OPTIONS, SQ_SCORE_PARTIAL, 0},
    {"lambada", "lambada_openai.jsonl", LAYOUT_CONTEXT_CONTINUATION, SQ_SCORE_GREEDY, 0},
    {"hellaswag", "hellaswag_val.txt.bz2", LAYOUT_HELLASWAG, SQ_SCORE_CHOICE, 1},
};

static const task_spec *find_spec(const char *name) {
    for (size_t i = 0; i < sizeof task_specs / sizeof *task_specs; i++)
        if (!strcmp(task_specs[i].name, name)) return &task_specs[i];
    return NULL;
}

void sq_task_free(sq_task *task) {
    if (!task) return;
    for (int i = 0; i < task->n_items; i++) {
        sq_task_item *it = &task->items[i];
        for (int c = 0; c < it->n_choices; c++)
            free(it->choices[c].context), free(it->choices[c].continuation);
        free(it->choices);
    }
    free(task->items);
    free(task);
}

/* Adds one choice: the continuation is the delimiter " " then the choice, unless the context is empty or
 * already ends in whitespace (the harness's target_delimiter). */
static int add_request(sq_task_request *r, const char *context, const char *choice) {
    size_t cl = strlen(context), xl = strlen(choice);
    int delimit = cl > 0 && !isspace((unsigned char)context[cl - 1]);
    r->context = strdup(context);
    r->continuation = malloc(xl + 2);
    if (!r->context || !r->continuation) return -1;
    snprintf(r->continuation, xl + 2, "%s%s", delimit ? " " : "", choice);
    r->norm_bytes = (int)xl;
    return 0;
}

static SQ_NODISCARD sq_error *new_item(sq_task *t, int n_choices, int gold, sq_task_item **out) {
    sq_task_item *it = &t->items[t->n_items];
    it->choices = calloc((size_t)n_choices, sizeof *it->choices);
    if (!it->choices) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    it->n_choices = n_choices;
    it->gold = gold;
    t->n_items++;
    *out = it;
    return NULL;
}

static SQ_NODISCARD sq_error *string_field(const cJSON *obj, const char *key, const char *file, int line,
                                           const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: missing field \"%s\"", file, line, key);
    if (!cJSON_IsString(v))
        return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"%s\" is not a string", file, line, key);
    *out = v->valuestring;
    return NULL;
}

/* A non-empty array of non-empty strings. */
static SQ_NODISCARD sq_error *string_array_field(const cJSON *obj, const char *key, const char *file,
                                                 int line, const cJSON **out, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: missing field \"%s\"", file, line, key);
    if (!cJSON_IsArray(v))
        return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"%s\" is not an array", file, line, key);
    *n = cJSON_GetArraySize(v);
    if (*n == 0) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"%s\" is empty", file, line, key);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e))
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: %s[%d] is not a string", file, line, key, i);
        if (!e->valuestring[0]) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: %s[%d] is empty", file, line, key, i);
    }
    *out = v;
    return NULL;
}

static SQ_NODISCARD sq_error *gold_field(const cJSON *obj, int n_choices, const char *file, int line,
                                         int *gold) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "gold");
    if (!v) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: missing field \"gold\"", file, line);
    /* floor, not a cast: casting a huge value to an integer type is undefined behaviour */
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"gold\" is not an integer", file, line);
    if (!(v->valuedouble >= 0 && v->valuedouble < n_choices))
        return sq_errorf(SQ_ERR_FORMAT, "%s:%d: gold %.0f is out of range (%d choices)", file, line,
                         v->valuedouble, n_choices);
    *gold = (int)v->valuedouble;
    return NULL;
}

static SQ_NODISCARD sq_error *parse_json_item(const task_spec *spec, sq_task *t, const cJSON *obj,
                                              const char *file, int line) {
    if (!cJSON_IsObject(obj)) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: expected a JSON object", file, line);
    sq_task_item *it = NULL;
    const char *text;
    const cJSON *arr;
    int n, gold;
    switch (spec->layout) {
    case LAYOUT_QUERY_CHOICES:
        SQ_TRY(string_field(obj, "query", file, line, &text));
        SQ_TRY(string_array_field(obj, "choices", file, line, &arr, &n));
        SQ_TRY(gold_field(obj, n, file, line, &gold));
        SQ_TRY(new_item(t, n, gold, &it));
        n = 0;
        for (const cJSON *e = arr->child; e; e = e->next, n++)
            if (add_request(&it->choices[n], text, e->valuestring))
                return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        return NULL;
    case LAYOUT_CONTEXT_OPTIONS:
        SQ_TRY(string_array_field(obj, "context_options", file, line, &arr, &n));
        SQ_TRY(string_field(obj, "continuation", file, line, &text));
        if (!text[0]) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"continuation\" is empty", file, line);
        SQ_TRY(gold_field(obj, n, file, line, &gold));
        SQ_TRY(new_item(t, n, gold, &it));
        n = 0;
        for (const cJSON *e = arr->child; e; e = e->next, n++)
            if (add_request(&it->choices[n], e->valuestring, text))
                return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        return NULL;
    case LAYOUT_CONTEXT_CONTINUATION: {
        const char *cont;
        SQ_TRY(string_field(obj, "context", file, line, &text));
        SQ_TRY(string_field(obj, "continuation", file, line, &cont));
        if (!cont[0]) return sq_errorf(SQ_ERR_FORMAT, "%s:%d: field \"continuation\" is empty", file, line);
        SQ_TRY(new_item(t, 1, -1, &it));
        if (add_request(&it->choices[0], text, cont)) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        return NULL;
    }
    case LAYOUT_HELLASWAG:
        break;
    }
    return sq_errorf(SQ_ERR_INTERNAL, "%s: not a JSON task", file);
}

/* lm-evaluation-harness's HellaSwag preprocess: strip, " [title]" -> ". ", drop "[...]", "  " -> " ". */
static char *hellaswag_clean(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    char *a = malloc(2 * n + 1), *b = malloc(2 * n + 1);
    if (!a || !b) {
        free(a), free(b);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 8 && !memcmp(s + i, " [title]", 8)) {
            a[k++] = '.', a[k++] = ' ', i += 8;
        } else
            a[k++] = s[i++];
    }
    a[k] = 0;
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        const char *close = a[i] == '[' ? strchr(a + i, ']') : NULL;
        if (close)
            i = (size_t)(close - a) + 1;
        else
            b[m++] = a[i++];
    }
    b[m] = 0;
    k = 0;
    for (size_t i = 0; i < m;) {
        if (b[i] == ' ' && b[i + 1] == ' ')
            a[k++] = ' ', i += 2;
        else
            a[k++] = b[i++];
    }
    a[k] = 0;
    free(b);
    return a;
}

/* HellaSwag: 6 lines per item (context, gold 0-3, four endings). */
static SQ_NODISCARD sq_error *parse_hellaswag(sq_task *t, const char *file, const char *data, size_t len,
                                              int limit) {
    const char *lines[6];
    size_t lens[6];
    int line = 0, in_item = 0;
    size_t pos = 0;
    while (pos < len && (limit <= 0 || t->n_items < limit)) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t raw = nl ? (size_t)(nl - (data + pos)) : len - pos, l = raw;
        if (l && data[pos + l - 1] == '\r') l--;
        lines[in_item] = data + pos, lens[in_item] = l;
        line++, in_item++;
        pos += raw + (nl != NULL);
        if (in_item < 6) continue;
        in_item = 0;
        int first = line - 5;
        char goldbuf[16];
        if (lens[1] == 0 || lens[1] >= sizeof goldbuf)
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: expected the gold index (0-3)", file, first + 1);
        memcpy(goldbuf, lines[1], lens[1]);
        goldbuf[lens[1]] = 0;
        char *end;
        long gold = strtol(goldbuf, &end, 10);
        if (*end || end == goldbuf)
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: gold \"%s\" is not an integer", file, first + 1, goldbuf);
        if (gold < 0 || gold > 3)
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: gold %ld is out of range (4 choices)", file, first + 1,
                             gold);
        char *ctx = hellaswag_clean(lines[0], lens[0]);
        if (!ctx) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
        if (!ctx[0]) {
            free(ctx);
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: empty context", file, first);
        }
        sq_task_item *it = NULL;
        sq_error *err = new_item(t, 4, (int)gold, &it);
        for (int c = 0; c < 4 && !err; c++) {
            char *ending = hellaswag_clean(lines[2 + c], lens[2 + c]);
            if (!ending)
                err = sq_errorf(SQ_ERR_NOMEM, "out of memory");
            else if (!ending[0])
                err = sq_errorf(SQ_ERR_FORMAT, "%s:%d: ending %d is empty", file, first + 2 + c, c);
            else if (add_request(&it->choices[c], ctx, ending))
                err = sq_errorf(SQ_ERR_NOMEM, "out of memory");
            free(ending);
        }
        free(ctx);
        if (err) return err;
    }
    if (in_item)
        return sq_errorf(SQ_ERR_FORMAT, "%s:%d: truncated item (%d of its 6 lines)", file, line, in_item);
    return NULL;
}

static SQ_NODISCARD sq_error *parse_jsonl(const task_spec *spec, sq_task *t, const char *file,
                                          const char *data, size_t len, int limit) {
    int line = 0;
    size_t pos = 0;
    while (pos < len && (limit <= 0 || t->n_items < limit)) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (data + pos)) : len - pos;
        const char *s = data + pos;
        pos += l + (nl != NULL);
        line++;
        size_t blank = 0;
        while (blank < l && isspace((unsigned char)s[blank])) blank++;
        if (blank == l) continue;
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(s, l, &end, 0);
        if (!obj)
            return sq_errorf(SQ_ERR_FORMAT, "%s:%d: malformed JSON near column %d", file, line,
                             end ? (int)(end - s) + 1 : 1);
        while (end && end < s + l && isspace((unsigned char)*end)) end++;
        sq_error *err = end && end < s + l
                            ? sq_errorf(SQ_ERR_FORMAT, "%s:%d: text after the JSON object", file, line)
                            : parse_json_item(spec, t, obj, file, line);
        cJSON_Delete(obj);
        if (err) return err;
    }
    return NULL;
}

static int count_lines(const char *data, size_t len) {
    size_t n = 1;
    for (size_t i = 0; i < len; i++) n += data[i] == '\n';
    return n > INT_MAX ? INT_MAX : (int)n;
}

sq_error *sq_task_parse(const char *name, const char *file, const char *data, size_t len, int limit,
                        sq_task **out) {
    *out = NULL;
    const task_spec *spec = find_spec(name);
    if (!spec) {
        char known[256] = "";
        for (size_t i = 0; i < sizeof task_specs / sizeof *task_specs; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     task_specs[i].name);
        return sq_errorf(SQ_ERR_INVALID_ARG, "unknown task \"%s\" (known: %s)", name, known);
    }
    sq_task *t = calloc(1, sizeof *t);
    int cap = count_lines(data, len);
    if (!t || !(t->items = calloc((size_t)cap, sizeof *t->items))) {
        free(t);
        return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    }
    snprintf(t->name, sizeof t->name, "%s", spec->name);
    t->scoring = spec->scoring;
    t->has_acc_norm = spec->has_acc_norm;
    sq_error *err = spec->layout == LAYOUT_HELLASWAG ? parse_hellaswag(t, file, data, len, limit)
                                                     : parse_jsonl(spec, t, file, data, len, limit);
    if (!err && t->n_items == 0) err = sq_errorf(SQ_ERR_FORMAT, "%s: no items", file);
    if (err) {
        sq_task_free(t);
        return err;
    }
    *out = t;
    return NULL;
}

/* Decompresses a whole bzip2 file (one stream or several concatenated, as pbzip2 writes) into memory,
 * NUL-terminated. */
static SQ_NODISCARD sq_error *read_bzip2(const char *path, char **data, size_t *size) {
    char *raw;
    size_t raw_len;
    SQ_TRY(sq_read_file(path, (size_t)1 << 30, &raw, &raw_len));
    size_t cap = 0, used = 0;
    char *out = NULL;
    sq_error *err = SQ_ARRAY_RESERVE(out, cap, raw_len * 4 + 1024)
                        ? sq_errorf(SQ_ERR_NOMEM, "%s: out of memory decompressing", path)
                        : NULL;
    bz_stream bz = {.next_in = raw, .avail_in = (unsigned)raw_len};
    while (!err && bz.avail_in > 0) {
        if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) {
            err = sq_errorf(SQ_ERR_NOMEM, "%s: cannot start bzip2 decompression", path);
            break;
        }
        int rc = BZ_OK;
        while (!err && rc == BZ_OK) {
            if (cap - used < 2) {
                if (cap > ((size_t)1 << 31))
                    err = sq_errorf(SQ_ERR_FORMAT, "%s: decompresses to more than 2 GiB", path);
                else if (SQ_ARRAY_RESERVE(out, cap, cap + 1))
                    err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory decompressing", path);
                continue;
            }
            bz.next_out = out + used;
            bz.avail_out = (unsigned)(cap - used - 1 > UINT_MAX ? UINT_MAX : cap - used - 1);
            unsigned before = bz.avail_out;
            rc = BZ2_bzDecompress(&bz);
            used += before - bz.avail_out;
            if (rc == BZ_OK && bz.avail_in == 0 && before == bz.avail_out) rc = BZ_UNEXPECTED_EOF;
        }
        BZ2_bzDecompressEnd(&bz);
        if (!err && rc != BZ_STREAM_END)
            err = sq_errorf(SQ_ERR_FORMAT, "%s: corrupt or truncated bzip2 data at byte %zu (code %d)", path,
                            raw_len - bz.avail_in, rc);
    }
    free(raw);
    if (err) {
        free(out);
        return err;
    }
    out[used] = 0;
    *data = out;
    *size = used;
    return NULL;
}

sq_error *sq_task_load(const char *name, const char *dir, int limit, sq_task **out) {
    *out = NULL;
    const task_spec *spec = find_spec(name);
    if (!spec) return sq_task_parse(name, "", "", 0, limit, out); /* the unknown-task error */
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, spec->file) >= (int)sizeof path)
        return sq_errorf(SQ_ERR_INVALID_ARG, "task directory path is too long");
    char *data;
    size_t len;
    size_t n = strlen(spec->file);
    if (n > 4 && !strcmp(spec->file + n - 4, ".bz2"))
        SQ_TRY(read_bzip2(path, &data, &len));
    else
        SQ_TRY(sq_read_file(path, (size_t)1 << 31, &data, &len));
    sq_error *err = sq_task_parse(name, path, data, len, limit, out);
    free(data);
    return err;
}
