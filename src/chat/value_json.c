#include "chat/value_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "chat/pystr.h"
#include "tokenizer/utf8.h"

ct_json_style ct_json_default_style(int indent_on, ct_str indent) {
    return (ct_json_style){.indent_on = indent_on,
                           .indent = indent,
                           .item_sep = indent_on ? ct_cstr(",") : ct_cstr(", "),
                           .key_sep = ct_cstr(": ")};
}

static void json_string(ct_arena *a, ct_buf *b, ct_str s, int ensure_ascii) {
    ct_buf_putc(a, b, '"');
    for (size_t i = 0; i < s.n;) {
        size_t start = i;
        uint32_t cp = py_next_cp(s, &i);
        switch (cp) {
        case '"':
            ct_buf_append(a, b, "\\\"", 2);
            continue;
        case '\\':
            ct_buf_append(a, b, "\\\\", 2);
            continue;
        case '\n':
            ct_buf_append(a, b, "\\n", 2);
            continue;
        case '\r':
            ct_buf_append(a, b, "\\r", 2);
            continue;
        case '\t':
            ct_buf_append(a, b, "\\t", 2);
            continue;
        case '\b':
            ct_buf_append(a, b, "\\b", 2);
            continue;
        case '\f':
            ct_buf_append(a, b, "\\f", 2);
            continue;
        }
        if (cp < 0x20 || (ensure_ascii && cp > 0x7e)) {
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                ct_buf_printf(a, b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                ct_buf_printf(a, b, "\\u%04x", cp);
            }
            continue;
        }
        ct_buf_append(a, b, s.p + start, i - start);
    }
    ct_buf_putc(a, b, '"');
}

static void json_float(ct_arena *a, ct_buf *b, double f) {
    char num[40];
    if (isnan(f))
        strcpy(num, "NaN");
    else if (isinf(f))
        strcpy(num, f < 0 ? "-Infinity" : "Infinity");
    else
        py_float_repr(f, num);
    ct_buf_append(a, b, num, strlen(num));
}

static void newline_indent(ct_arena *a, ct_buf *b, const ct_json_style *st, int level) {
    ct_buf_putc(a, b, '\n');
    for (int k = 0; k < level; k++) ct_buf_append(a, b, st->indent.p, st->indent.n);
}

/* A dict key as json.dumps writes it: strings as they are, numbers, bools and None spelled out. */
static void json_key(ct_arena *a, ct_buf *b, const ct_value *k, const ct_json_style *st) {
    switch (k->type) {
    case CT_STRING:
        json_string(a, b, k->s, st->ensure_ascii);
        return;
    case CT_BOOL:
        ct_buf_append(a, b, k->b ? "\"true\"" : "\"false\"", k->b ? 6 : 7);
        return;
    case CT_NONE:
        ct_buf_append(a, b, "\"null\"", 6);
        return;
    case CT_INT:
        ct_buf_printf(a, b, "\"%lld\"", (long long)k->i);
        return;
    case CT_FLOAT:
        ct_buf_putc(a, b, '"');
        json_float(a, b, k->f);
        ct_buf_putc(a, b, '"');
        return;
    default:
        ct_fail(a, SQ_ERR_INVALID_ARG, "tojson: keys must be str, int, float, bool or None, not %s",
                ct_type_name(k));
    }
}

static void json_value(ct_arena *a, ct_buf *b, const ct_value *v, const ct_json_style *st, int level) {
    switch (v->type) {
    case CT_NONE:
        ct_buf_append(a, b, "null", 4);
        return;
    case CT_BOOL:
        ct_buf_append(a, b, v->b ? "true" : "false", v->b ? 4 : 5);
        return;
    case CT_INT:
        ct_buf_printf(a, b, "%lld", (long long)v->i);
        return;
    case CT_FLOAT:
        json_float(a, b, v->f);
        return;
    case CT_STRING:
        json_string(a, b, v->s, st->ensure_ascii);
        return;
    case CT_LIST: {
        if (v->list->is_iter) break;
        if (!v->list->n) {
            ct_buf_append(a, b, "[]", 2);
            return;
        }
        ct_buf_putc(a, b, '[');
        for (size_t k = 0; k < v->list->n; k++) {
            if (k) ct_buf_append(a, b, st->item_sep.p, st->item_sep.n);
            if (st->indent_on) newline_indent(a, b, st, level + 1);
            json_value(a, b, &v->list->items[k], st, level + 1);
        }
        if (st->indent_on) newline_indent(a, b, st, level);
        ct_buf_putc(a, b, ']');
        return;
    }
    case CT_DICT: {
        const ct_dict *d = v->dict;
        if (!d->n) {
            ct_buf_append(a, b, "{}", 2);
            return;
        }
        size_t *order = ct_alloc_array(a, d->n, sizeof *order);
        for (size_t k = 0; k < d->n; k++) order[k] = k;
        if (st->sort_keys) /* insertion sort: stable, and dicts here are small */
            for (size_t k = 1; k < d->n; k++)
                for (size_t j = k; j > 0; j--) {
                    int ok;
                    int c = ct_compare(&d->keys[order[j - 1]], &d->keys[order[j]], &ok);
                    if (ok != 1)
                        ct_fail(a, SQ_ERR_INVALID_ARG, "tojson: sort_keys cannot order %s and %s keys",
                                ct_type_name(&d->keys[order[j - 1]]), ct_type_name(&d->keys[order[j]]));
                    if (c <= 0) break;
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        ct_buf_putc(a, b, '{');
        for (size_t k = 0; k < d->n; k++) {
            if (k) ct_buf_append(a, b, st->item_sep.p, st->item_sep.n);
            if (st->indent_on) newline_indent(a, b, st, level + 1);
            json_key(a, b, &d->keys[order[k]], st);
            ct_buf_append(a, b, st->key_sep.p, st->key_sep.n);
            json_value(a, b, &d->vals[order[k]], st, level + 1);
        }
        if (st->indent_on) newline_indent(a, b, st, level);
        ct_buf_putc(a, b, '}');
        return;
    }
    default:
        break;
    }
    ct_fail(a, SQ_ERR_INVALID_ARG, "tojson: Object of type %s is not JSON serializable", ct_type_name(v));
}

void ct_append_json(ct_arena *a, ct_buf *b, const ct_value *v, const ct_json_style *style) {
    json_value(a, b, v, style, 0);
}

/* cJSON keeps every number as a double; json.loads makes an int of a literal without '.', 'e' or 'E'. The
 * literals are found by scanning the text, in the order a depth-first walk of cJSON's tree meets them. */
typedef struct number_scan {
    const char *p, *end;
} number_scan;

/* Advances to the next number literal; returns its text in *lit (NULL when none is left). Fails on a
 * "\u0000" escape inside a string. */
static void next_number(ct_arena *a, number_scan *sc, ct_str *lit, const char *what) {
    while (sc->p < sc->end) {
        char c = *sc->p;
        if (c == '"') {
            for (sc->p++; sc->p < sc->end && *sc->p != '"'; sc->p++)
                if ((unsigned char)*sc->p < 0x20) {
                    ct_fail(a, SQ_ERR_INVALID_ARG, "%s: a control character inside a JSON string", what);
                } else if (*sc->p == '\\') {
                    if (sc->end - sc->p >= 6 && !memcmp(sc->p, "\\u0000", 6))
                        ct_fail(a, SQ_ERR_INVALID_ARG, "%s: strings with \\u0000 are not supported", what);
                    sc->p++;
                }
            sc->p++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const char *start = sc->p;
            while (sc->p < sc->end && strchr("+-0123456789.eE", *sc->p)) sc->p++;
            *lit = (ct_str){start, (size_t)(sc->p - start)};
            return;
        } else {
            sc->p++;
        }
    }
    lit->p = NULL;
}

static ct_value from_cjson(ct_arena *a, const cJSON *j, number_scan *sc, const char *what, int depth) {
    if (depth > CT_MAX_DEPTH) ct_fail(a, SQ_ERR_INVALID_ARG, "%s: JSON nested too deeply", what);
    if (cJSON_IsNull(j)) return ct_none();
    if (cJSON_IsBool(j)) return ct_bool(cJSON_IsTrue(j));
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        for (size_t i = 0; i < n;) {
            int len = sq_utf8_valid_len((const unsigned char *)j->valuestring + i, n - i);
            if (!len) ct_fail(a, SQ_ERR_INVALID_ARG, "%s: a string is not valid UTF-8", what);
            i += (size_t)len;
        }
        return ct_string_copy(a, j->valuestring, n);
    }
    if (cJSON_IsNumber(j)) {
        ct_str lit;
        next_number(a, sc, &lit, what);
        if (!lit.p) ct_fail(a, SQ_ERR_INTERNAL, "%s: JSON numbers out of step", what);
        if (!memchr(lit.p, '.', lit.n) && !memchr(lit.p, 'e', lit.n) && !memchr(lit.p, 'E', lit.n)) {
            int64_t i;
            if (py_parse_int(lit, &i))
                ct_fail(a, SQ_ERR_INVALID_ARG, "%s: integer %.*s does not fit 64 bits", what, (int)lit.n,
                        lit.p);
            return ct_int(i);
        }
        return ct_float(j->valuedouble);
    }
    if (cJSON_IsArray(j)) {
        ct_value v = ct_list_new(a, (size_t)cJSON_GetArraySize(j), 0);
        size_t k = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            v.list->items[k++] = from_cjson(a, c, sc, what, depth + 1);
        ct_list_seal(a, &v);
        return v;
    }
    if (cJSON_IsObject(j)) {
        ct_value v = ct_dict_new(a, CT_DICT);
        for (const cJSON *c = j->child; c; c = c->next) {
            ct_value key =
                from_cjson(a, &(cJSON){.type = cJSON_String, .valuestring = c->string}, sc, what, depth);
            ct_dict_set(a, v.dict, key, from_cjson(a, c, sc, what, depth + 1));
        }
        return v;
    }
    ct_fail(a, SQ_ERR_INVALID_ARG, "%s: unexpected JSON value", what);
}

typedef struct convert_job {
    const cJSON *json;
    number_scan scan;
    const char *what;
    ct_value out;
} convert_job;

static void convert(ct_arena *a, void *arg) {
    convert_job *job = arg;
    job->out = from_cjson(a, job->json, &job->scan, job->what, 0);
    ct_str rest; /* scans the rest of the text too, for the string checks */
    next_number(a, &job->scan, &rest, job->what);
    if (rest.p) ct_fail(a, SQ_ERR_INTERNAL, "%s: JSON numbers out of step", job->what);
}

ct_value ct_from_json(ct_arena *a, const char *text, size_t len, const char *what) {
    for (size_t i = 0; i < len;) {
        int n = sq_utf8_valid_len((const unsigned char *)text + i, len - i);
        if (!n) ct_fail(a, SQ_ERR_INVALID_ARG, "%s: not valid UTF-8 (byte %zu)", what, i);
        i += (size_t)n;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j)
        ct_fail(a, SQ_ERR_INVALID_ARG, "%s: invalid JSON near byte %zu", what,
                end ? (size_t)(end - text) : 0);
    for (; end && end < text + len; end++)
        if (!*end || !strchr(" \t\r\n", *end)) {
            cJSON_Delete(j);
            ct_fail(a, SQ_ERR_INVALID_ARG, "%s: text after the JSON value (byte %zu)", what,
                    (size_t)(end - text));
        }
    /* cJSON's tree is malloc'ed: convert it under a nested ct_protect so it is freed on every path */
    convert_job job = {j, {text, text + len}, what, ct_none()};
    int failed = ct_protect(a, convert, &job);
    cJSON_Delete(j);
    if (failed) ct_rethrow(a);
    return job.out;
}
