#include "chat/value.h"

#include <math.h>
#include <sys/types.h>
#include <stdarg.h>
#include <stdio.h>

#include "chat/pystr.h"

ct_value ct_undefinedf(ct_arena *a, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    return ct_undefined((ct_str){ct_strndup(a, msg, (size_t)n), (size_t)n});
}

ct_value ct_string_copy(ct_arena *a, const char *s, size_t n) {
    return ct_string((ct_str){ct_strndup(a, s, n), n});
}

ct_value ct_list_new(ct_arena *a, size_t n, int is_tuple) {
    ct_list *l = ct_alloc_array(a, 1, sizeof *l);
    l->n = n;
    l->items = ct_alloc_array(a, n, sizeof *l->items); /* zeroed: CT_UNDEFINED with an empty message */
    l->is_tuple = is_tuple;
    l->depth = 1;
    return (ct_value){.type = CT_LIST, .list = l};
}

int ct_depth(const ct_value *v) {
    return v->type == CT_LIST                              ? v->list->depth
           : v->type == CT_DICT || v->type == CT_NAMESPACE ? v->dict->depth
                                                           : 0;
}

static int deeper(ct_arena *a, int depth, const ct_value *child) {
    int d = ct_depth(child) + 1;
    if (d > CT_MAX_DEPTH) ct_fail(a, SQ_ERR_NOMEM, "values nested more than %d deep", CT_MAX_DEPTH);
    return d > depth ? d : depth;
}

void ct_list_seal(ct_arena *a, ct_value *list) {
    int depth = 1;
    for (size_t k = 0; k < list->list->n; k++) depth = deeper(a, depth, &list->list->items[k]);
    list->list->depth = depth;
}

ct_value ct_list_of(ct_arena *a, const ct_value *items, size_t n, int is_tuple) {
    ct_value v = ct_list_new(a, n, is_tuple);
    if (n) memcpy(v.list->items, items, n * sizeof *items);
    ct_list_seal(a, &v);
    return v;
}

/* whether v is, or holds, the namespace ns */
static int holds(const ct_value *v, const ct_dict *ns) {
    if (v->type == CT_NAMESPACE && v->dict == ns) return 1;
    if (v->type == CT_LIST)
        for (size_t k = 0; k < v->list->n; k++)
            if (holds(&v->list->items[k], ns)) return 1;
    if (v->type == CT_DICT || v->type == CT_NAMESPACE)
        for (size_t k = 0; k < v->dict->n; k++)
            if (holds(&v->dict->vals[k], ns)) return 1;
    return 0;
}

ct_value ct_dict_new(ct_arena *a, ct_type type) {
    ct_dict *d = ct_alloc(a, sizeof *d);
    *d = (ct_dict){.depth = 1, .is_namespace = type == CT_NAMESPACE};
    return (ct_value){.type = type, .dict = d};
}

static void check_hashable(ct_arena *a, const ct_value *key) {
    if (key->type == CT_LIST && !key->list->is_tuple)
        ct_fail(a, SQ_ERR_INVALID_ARG, "unhashable type: 'list'");
    if (key->type == CT_DICT) ct_fail(a, SQ_ERR_INVALID_ARG, "unhashable type: 'dict'");
}

static ssize_t dict_find(const ct_dict *d, const ct_value *key) {
    for (size_t k = 0; k < d->n; k++)
        if (ct_equal(&d->keys[k], key)) return (ssize_t)k;
    return -1;
}

void ct_dict_set(ct_arena *a, ct_dict *d, ct_value key, ct_value val) {
    check_hashable(a, &key);
    if (d->is_namespace && holds(&val, d))
        ct_fail(a, SQ_ERR_INVALID_ARG, "a namespace cannot contain itself");
    d->depth = deeper(a, deeper(a, d->depth, &key), &val);
    ssize_t k = dict_find(d, &key);
    if (k >= 0) {
        d->vals[k] = val;
        return;
    }
    size_t cap = d->cap;
    d->keys = ct_grow(a, d->keys, d->n, &cap, sizeof *d->keys);
    d->vals = ct_grow(a, d->vals, d->n, &d->cap, sizeof *d->vals);
    d->keys[d->n] = key;
    d->vals[d->n++] = val;
}

const ct_value *ct_dict_get(const ct_dict *d, ct_value key) {
    ssize_t k = dict_find(d, &key);
    return k >= 0 ? &d->vals[k] : NULL;
}

const ct_value *ct_dict_get_str(const ct_dict *d, const char *key) {
    return ct_dict_get(d, ct_string(ct_cstr(key)));
}

const char *ct_type_name(const ct_value *v) {
    switch (v->type) {
    case CT_UNDEFINED:
        return "Undefined";
    case CT_NONE:
        return "NoneType";
    case CT_BOOL:
        return "bool";
    case CT_INT:
        return "int";
    case CT_FLOAT:
        return "float";
    case CT_STRING:
        return "str";
    case CT_LIST:
        return v->list->is_iter ? "generator" : v->list->is_tuple ? "tuple" : "list";
    case CT_DICT:
        return "dict";
    case CT_NAMESPACE:
        return "Namespace";
    case CT_LOOP:
        return "LoopContext";
    case CT_MACRO:
        return "Macro";
    case CT_FUNCTION:
        return "function";
    case CT_METHOD:
        return "builtin_function_or_method";
    }
    return "?";
}

int ct_truthy(const ct_value *v) {
    switch (v->type) {
    case CT_UNDEFINED:
    case CT_NONE:
        return 0;
    case CT_BOOL:
        return v->b;
    case CT_INT:
        return v->i != 0;
    case CT_FLOAT:
        return v->f != 0;
    case CT_STRING:
        return v->s.n != 0;
    case CT_LIST:
        return v->list->is_iter || v->list->n != 0;
    case CT_DICT:
        return v->dict->n != 0;
    default:
        return 1;
    }
}

static int is_number(const ct_value *v) {
    return v->type == CT_BOOL || v->type == CT_INT || v->type == CT_FLOAT;
}

/* Exact comparison of two numbers (bools count as 0/1; int against float compares the exact values, as
 * Python does). NaN compares unordered: *unordered is set. */
static int num_cmp(const ct_value *x, const ct_value *y, int *unordered) {
    *unordered = 0;
    if (x->type != CT_FLOAT && y->type != CT_FLOAT) {
        int64_t a = x->type == CT_BOOL ? x->b : x->i, b = y->type == CT_BOOL ? y->b : y->i;
        return (a > b) - (a < b);
    }
    if (x->type == CT_FLOAT && y->type == CT_FLOAT) {
        if (isnan(x->f) || isnan(y->f)) *unordered = 1;
        return (x->f > y->f) - (x->f < y->f);
    }
    /* one int, one float */
    int flip = x->type == CT_FLOAT;
    const ct_value *iv = flip ? y : x;
    double f = flip ? x->f : y->f;
    int64_t i = iv->type == CT_BOOL ? iv->b : iv->i;
    int r;
    if (isnan(f)) {
        *unordered = 1;
        r = 0;
    } else if (f >= 9223372036854775808.0) {
        r = -1;
    } else if (f < -9223372036854775808.0) {
        r = 1;
    } else {
        double t = trunc(f);
        int64_t fi = (int64_t)t;
        r = i < fi ? -1 : i > fi ? 1 : (f > t ? -1 : f < t ? 1 : 0);
    }
    return flip ? -r : r;
}

int ct_equal(const ct_value *x, const ct_value *y) {
    if (is_number(x) && is_number(y)) {
        int unordered;
        int c = num_cmp(x, y, &unordered);
        return !unordered && c == 0;
    }
    if (x->type != y->type) return 0;
    switch (x->type) {
    case CT_UNDEFINED:
    case CT_NONE:
        return 1;
    case CT_STRING:
        return x->s.n == y->s.n && !memcmp(x->s.p, y->s.p, x->s.n);
    case CT_LIST:
        if (x->list->is_iter || y->list->is_iter) return x->list == y->list;
        if (x->list->is_tuple != y->list->is_tuple || x->list->n != y->list->n) return 0;
        for (size_t k = 0; k < x->list->n; k++)
            if (!ct_equal(&x->list->items[k], &y->list->items[k])) return 0;
        return 1;
    case CT_DICT:
        if (x->dict->n != y->dict->n) return 0;
        for (size_t k = 0; k < x->dict->n; k++) {
            const ct_value *other = ct_dict_get(y->dict, x->dict->keys[k]);
            if (!other || !ct_equal(&x->dict->vals[k], other)) return 0;
        }
        return 1;
    case CT_NAMESPACE:
        return x->dict == y->dict;
    case CT_LOOP:
        return x->loop == y->loop;
    case CT_MACRO:
        return x->macro == y->macro;
    case CT_FUNCTION:
        return x->func == y->func;
    case CT_METHOD:
        return x->method == y->method;
    default:
        return 0;
    }
}

int ct_compare(const ct_value *x, const ct_value *y, int *ok) {
    *ok = 1;
    if (is_number(x) && is_number(y)) {
        int unordered;
        int c = num_cmp(x, y, &unordered);
        if (unordered) *ok = 2; /* NaN: every ordering comparison is false */
        return c;
    }
    if (x->type == CT_STRING && y->type == CT_STRING) {
        /* UTF-8 byte order is code point order */
        size_t n = x->s.n < y->s.n ? x->s.n : y->s.n;
        int c = n ? memcmp(x->s.p, y->s.p, n) : 0;
        if (c) return c < 0 ? -1 : 1;
        return (x->s.n > y->s.n) - (x->s.n < y->s.n);
    }
    if (x->type == CT_LIST && y->type == CT_LIST && x->list->is_tuple == y->list->is_tuple &&
        !x->list->is_iter && !y->list->is_iter) {
        size_t n = x->list->n < y->list->n ? x->list->n : y->list->n;
        for (size_t k = 0; k < n; k++)
            if (!ct_equal(&x->list->items[k], &y->list->items[k]))
                return ct_compare(&x->list->items[k], &y->list->items[k], ok);
        return (x->list->n > y->list->n) - (x->list->n < y->list->n);
    }
    *ok = 0;
    return 0;
}

_Noreturn void ct_fail_undefined(ct_arena *a, const ct_value *v) {
    if (v->s.n) ct_fail(a, SQ_ERR_INVALID_ARG, "%.*s", (int)v->s.n, v->s.p);
    ct_fail(a, SQ_ERR_INVALID_ARG, "a value is undefined");
}

static void append_value(ct_arena *a, ct_buf *b, const ct_value *v, int repr) {
    char num[40];
    switch (v->type) {
    case CT_UNDEFINED:
        if (repr) ct_buf_append(a, b, "Undefined", 9);
        return;
    case CT_NONE:
        ct_buf_append(a, b, "None", 4);
        return;
    case CT_BOOL:
        ct_buf_append(a, b, v->b ? "True" : "False", v->b ? 4 : 5);
        return;
    case CT_INT:
        ct_buf_printf(a, b, "%lld", (long long)v->i);
        return;
    case CT_FLOAT:
        py_float_repr(v->f, num);
        ct_buf_append(a, b, num, strlen(num));
        return;
    case CT_STRING:
        if (repr)
            py_str_repr(a, b, v->s);
        else
            ct_buf_append(a, b, v->s.p, v->s.n);
        return;
    case CT_LIST:
        if (v->list->is_iter) ct_fail(a, SQ_ERR_UNSUPPORTED, "cannot print an iterator (add '| list')");
        ct_buf_putc(a, b, v->list->is_tuple ? '(' : '[');
        for (size_t k = 0; k < v->list->n; k++) {
            if (k) ct_buf_append(a, b, ", ", 2);
            append_value(a, b, &v->list->items[k], 1);
        }
        if (v->list->is_tuple && v->list->n == 1) ct_buf_putc(a, b, ',');
        ct_buf_putc(a, b, v->list->is_tuple ? ')' : ']');
        return;
    case CT_DICT:
    case CT_NAMESPACE:
        if (v->type == CT_NAMESPACE) ct_buf_append(a, b, "<Namespace ", 11);
        ct_buf_putc(a, b, '{');
        for (size_t k = 0; k < v->dict->n; k++) {
            if (k) ct_buf_append(a, b, ", ", 2);
            append_value(a, b, &v->dict->keys[k], 1);
            ct_buf_append(a, b, ": ", 2);
            append_value(a, b, &v->dict->vals[k], 1);
        }
        ct_buf_putc(a, b, '}');
        if (v->type == CT_NAMESPACE) ct_buf_putc(a, b, '>');
        return;
    case CT_LOOP:
        ct_buf_printf(a, b, "<LoopContext %lld/%lld>", (long long)v->loop->index0 + 1,
                      (long long)v->loop->length);
        return;
    default:
        ct_fail(a, SQ_ERR_UNSUPPORTED, "cannot turn a %s into text", ct_type_name(v));
    }
}

void ct_append_str(ct_arena *a, ct_buf *b, const ct_value *v) { append_value(a, b, v, 0); }
void ct_append_repr(ct_arena *a, ct_buf *b, const ct_value *v) { append_value(a, b, v, 1); }

ct_str ct_to_str(ct_arena *a, const ct_value *v) {
    if (v->type == CT_STRING) return v->s;
    ct_buf b = {0};
    ct_append_str(a, &b, v);
    return (ct_str){b.p ? b.p : "", b.n};
}
