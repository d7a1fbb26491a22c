/* jinja2's filters and tests (jinja2/filters.py, jinja2/tests.py), with Hugging Face's tojson. Filters jinja2
 * has but chat templates do not use are known by name (a template naming them compiles, as in jinja2) and
 * fail when run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "chat/args.h"
#include "chat/pystr.h"
#include "chat/pyunicode.h"
#include "chat/value_json.h"

static int str_eq(ct_str a, const char *b) { return a.n == strlen(b) && !memcmp(a.p, b, a.n); }

static ct_str soft_str(ct_render *r, const ct_value *v) { return ct_to_str(r->a, v); }

static ct_value iter_list(ct_render *r, const ct_value *items, size_t n) {
    ct_value v = ct_list_of(r->a, items, n, 0);
    v.list->is_iter = 1;
    return v;
}

/* make_attrgetter: "a.b.0" looks up a, then b, then item 0, with the rules of `x[...]`. */
static ct_value get_attribute(ct_render *r, ct_value item, const ct_value *attribute) {
    if (attribute->type == CT_INT) return ct_getitem(r, item, *attribute);
    ct_str path = ct_arg_str(r, "attribute lookup", "attribute", attribute);
    size_t start = 0;
    for (size_t i = 0; i <= path.n; i++) {
        if (i < path.n && path.p[i] != '.') continue;
        ct_str part = {path.p + start, i - start};
        int64_t index;
        int digits = part.n > 0;
        for (size_t k = 0; k < part.n; k++) digits &= part.p[k] >= '0' && part.p[k] <= '9';
        if (digits && !py_parse_int(part, &index))
            item = ct_getitem(r, item, ct_int(index));
        else
            item = ct_getitem(r, item, ct_string(part));
        start = i + 1;
    }
    return item;
}

static ct_value lowered(ct_render *r, ct_value v) {
    return v.type == CT_STRING ? ct_string(py_case_map(r->a, v.s, PY_LOWER)) : v;
}

/* Stable merge sort of items by keys (parallel arrays), failing where Python cannot order two keys. */
static void sort_by_keys(ct_render *r, ct_value *items, ct_value *keys, size_t n, int reverse) {
    if (n < 2) return;
    ct_value *ti = ct_alloc_array(r->a, n, sizeof *ti), *tk = ct_alloc_array(r->a, n, sizeof *tk);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int ok, c = ct_compare(&keys[j], &keys[i], &ok);
                if (!ok)
                    ct_fail(r->a, SQ_ERR_INVALID_ARG,
                            "sort: '<' not supported between instances of '%s' and '%s'",
                            ct_type_name(&keys[j]), ct_type_name(&keys[i]));
                int take_right = reverse ? c > 0 && ok != 2 : c < 0 && ok != 2;
                if (take_right) {
                    ti[k] = items[j];
                    tk[k++] = keys[j++];
                } else {
                    ti[k] = items[i];
                    tk[k++] = keys[i++];
                }
            }
            while (i < mid) {
                ti[k] = items[i];
                tk[k++] = keys[i++];
            }
            while (j < hi) {
                ti[k] = items[j];
                tk[k++] = keys[j++];
            }
        }
        memcpy(items, ti, n * sizeof *ti);
        memcpy(keys, tk, n * sizeof *tk);
    }
}

static ct_value copy_items(ct_render *r, ct_value seq, size_t *n) {
    const ct_value *items;
    ct_iterate(r, seq, &items, n);
    ct_value out = ct_list_of(r->a, items, *n, 0);
    return out;
}

/* The sort key of an item: its attribute(s) (comma-separated, as make_multi_attrgetter), lower-cased unless
 * case_sensitive. Several attributes make a list key. */
static ct_value sort_key(ct_render *r, ct_value item, const ct_value *attribute, int case_sensitive) {
    if (!ct_given(attribute) || attribute->type == CT_NONE) return case_sensitive ? item : lowered(r, item);
    if (attribute->type != CT_STRING || !memchr(attribute->s.p, ',', attribute->s.n)) {
        ct_value v = get_attribute(r, item, attribute);
        return case_sensitive ? v : lowered(r, v);
    }
    ct_value parts = py_split(r->a, attribute->s, &(ct_str){",", 1}, -1, 0);
    for (size_t k = 0; k < parts.list->n; k++) {
        ct_value v = get_attribute(r, item, &parts.list->items[k]);
        parts.list->items[k] = case_sensitive ? v : lowered(r, v);
    }
    ct_list_seal(r->a, &parts);
    return parts;
}

/* ------------------------------------------------------------------ tests */

typedef int (*test_fn)(ct_render *r, ct_value v, const ct_value *p);

static int t_defined(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type != CT_UNDEFINED;
}
static int t_undefined(ct_render *r, ct_value v, const ct_value *p) { return !t_defined(r, v, p); }
static int t_none(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_NONE;
}
static int t_boolean(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_BOOL;
}
static int t_true(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_BOOL && v.b;
}
static int t_false(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_BOOL && !v.b;
}
static int t_integer(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_INT;
}
static int t_float(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_FLOAT;
}
static int t_number(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_INT || v.type == CT_FLOAT || v.type == CT_BOOL;
}
static int t_string(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_STRING;
}
static int t_mapping(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_DICT;
}
static int t_iterable(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_UNDEFINED || v.type == CT_STRING || v.type == CT_LIST || v.type == CT_DICT ||
           v.type == CT_LOOP;
}
static int t_sequence(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_UNDEFINED || v.type == CT_STRING || (v.type == CT_LIST && !v.list->is_iter) ||
           v.type == CT_DICT;
}
static int t_callable(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_MACRO || v.type == CT_FUNCTION || v.type == CT_METHOD;
}
static int t_escaped(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)v, (void)p;
    return 0;
}
static int t_sameas(ct_render *r, ct_value v, const ct_value *p) {
    (void)r;
    if (v.type != p[0].type) return 0;
    switch (v.type) {
    case CT_LIST:
        return v.list == p[0].list;
    case CT_DICT:
    case CT_NAMESPACE:
        return v.dict == p[0].dict;
    default:
        return ct_equal(&v, &p[0]);
    }
}
/* str.islower() / isupper(): no character of the other case or titlecase, and at least one of this case */
static int t_case(ct_render *r, ct_value v, int upper) {
    ct_str s = soft_str(r, &v);
    int cased = 0;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp = py_next_cp(s, &i);
        if (py_has_prop(cp, upper ? PY_LOWERCASE : PY_UPPERCASE) || py_has_prop(cp, PY_TITLECASE)) return 0;
        if (py_has_prop(cp, upper ? PY_UPPERCASE : PY_LOWERCASE)) cased = 1;
    }
    return cased;
}
static int t_lower(ct_render *r, ct_value v, const ct_value *p) {
    (void)p;
    return t_case(r, v, 0);
}
static int t_upper(ct_render *r, ct_value v, const ct_value *p) {
    (void)p;
    return t_case(r, v, 1);
}
static int t_in(ct_render *r, ct_value v, const ct_value *p) { return ct_contains(r, p[0], v); }
static int cmp_test(ct_render *r, ct_value v, const ct_value *p, const char *op) {
    ct_value res = ct_binop(r, ct_cstr(op), v, p[0]);
    return res.b;
}
static int t_eq(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, "=="); }
static int t_ne(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, "!="); }
static int t_lt(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, "<"); }
static int t_le(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, "<="); }
static int t_gt(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, ">"); }
static int t_ge(ct_render *r, ct_value v, const ct_value *p) { return cmp_test(r, v, p, ">="); }
static int t_divisibleby(ct_render *r, ct_value v, const ct_value *p) {
    ct_value m = ct_binop(r, ct_cstr("%"), v, p[0]);
    return ct_equal(&m, &(ct_value){.type = CT_INT, .i = 0});
}
static int t_even(ct_render *r, ct_value v, const ct_value *p) {
    (void)p;
    return t_divisibleby(r, v, &(ct_value){.type = CT_INT, .i = 2});
}
static int t_odd(ct_render *r, ct_value v, const ct_value *p) { return !t_even(r, v, p); }
static int t_filter(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_STRING && ct_filter_exists(v.s);
}
static int t_test(ct_render *r, ct_value v, const ct_value *p) {
    (void)r, (void)p;
    return v.type == CT_STRING && ct_test_exists(v.s);
}

typedef struct test_def {
    const char *name;
    int n_params; /* required arguments */
    test_fn fn;
} test_def;

static const test_def tests[] = {
    {"defined", 0, t_defined},
    {"undefined", 0, t_undefined},
    {"none", 0, t_none},
    {"boolean", 0, t_boolean},
    {"true", 0, t_true},
    {"false", 0, t_false},
    {"integer", 0, t_integer},
    {"float", 0, t_float},
    {"number", 0, t_number},
    {"string", 0, t_string},
    {"mapping", 0, t_mapping},
    {"iterable", 0, t_iterable},
    {"sequence", 0, t_sequence},
    {"callable", 0, t_callable},
    {"escaped", 0, t_escaped},
    {"sameas", 1, t_sameas},
    {"lower", 0, t_lower},
    {"upper", 0, t_upper},
    {"in", 1, t_in},
    {"==", 1, t_eq},
    {"eq", 1, t_eq},
    {"equalto", 1, t_eq},
    {"!=", 1, t_ne},
    {"ne", 1, t_ne},
    {"<", 1, t_lt},
    {"lt", 1, t_lt},
    {"lessthan", 1, t_lt},
    {"<=", 1, t_le},
    {"le", 1, t_le},
    {">", 1, t_gt},
    {"gt", 1, t_gt},
    {"greaterthan", 1, t_gt},
    {">=", 1, t_ge},
    {"ge", 1, t_ge},
    {"divisibleby", 1, t_divisibleby},
    {"even", 0, t_even},
    {"odd", 0, t_odd},
    {"filter", 0, t_filter},
    {"test", 0, t_test},
};

static const test_def *find_test(ct_str name) {
    for (size_t k = 0; k < sizeof tests / sizeof *tests; k++)
        if (str_eq(name, tests[k].name)) return &tests[k];
    return NULL;
}

int ct_test_exists(ct_str name) { return find_test(name) != NULL; }

int ct_apply_test(ct_render *r, ct_str name, ct_value v, const ct_args *args) {
    const test_def *t = find_test(name);
    if (!t) ct_fail(r->a, SQ_ERR_FORMAT, "no test named '%.*s'", (int)name.n, name.p);
    if (args->n_kw || args->n_pos != (size_t)t->n_params)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "test '%s' takes %d argument(s)", t->name, t->n_params);
    return t->fn(r, v, args->pos);
}

/* ------------------------------------------------------------------ filters */

typedef ct_value (*filter_fn)(ct_render *r, ct_value v, const ct_value *p, const ct_args *args);

static ct_value f_abs(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    if (v.type == CT_FLOAT) return ct_float(fabs(v.f));
    if (v.type == CT_BOOL) return ct_int(v.b);
    if (v.type == CT_INT) {
        if (v.i == INT64_MIN) ct_fail(r->a, SQ_ERR_UNSUPPORTED, "integer result does not fit 64 bits");
        return ct_int(v.i < 0 ? -v.i : v.i);
    }
    ct_fail(r->a, SQ_ERR_INVALID_ARG, "bad operand type for abs(): '%s'", ct_type_name(&v));
}

static ct_value f_attr(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    ct_str name = ct_arg_str(r, "attr", "name", &p[0]);
    if (v.type == CT_DICT) { /* attributes of a dict are its methods, not its keys */
        ct_value m;
        if (ct_method_lookup(r, v, name, &m)) return m;
        return ct_undefinedf(r->a, "'dict object' has no attribute '%.*s'", (int)name.n, name.p);
    }
    return ct_getattr(r, v, name);
}

static ct_value f_capitalize(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_string(py_case_map(r->a, soft_str(r, &v), PY_CAPITALIZE));
}

static ct_value f_default(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)r, (void)args;
    int use_default = v.type == CT_UNDEFINED || (ct_given(&p[1]) && ct_truthy(&p[1]) && !ct_truthy(&v));
    if (!use_default) return v;
    return ct_given(&p[0]) ? p[0] : ct_string(ct_cstr(""));
}

static ct_value f_dictsort(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    if (v.type != CT_DICT)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "dictsort: value must be a dict, not %s", ct_type_name(&v));
    int case_sensitive = ct_given(&p[0]) && ct_truthy(&p[0]);
    int by_value = 0;
    if (ct_given(&p[1])) {
        ct_str by = ct_arg_str(r, "dictsort", "by", &p[1]);
        if (str_eq(by, "value"))
            by_value = 1;
        else if (!str_eq(by, "key"))
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "dictsort: You can only sort by either \"key\" or \"value\"");
    }
    size_t n = v.dict->n;
    ct_value *items = ct_alloc_array(r->a, n, sizeof *items), *keys = ct_alloc_array(r->a, n, sizeof *keys);
    for (size_t k = 0; k < n; k++) {
        items[k] = ct_list_of(r->a, (ct_value[]){v.dict->keys[k], v.dict->vals[k]}, 2, 1);
        ct_value key = by_value ? v.dict->vals[k] : v.dict->keys[k];
        keys[k] = case_sensitive ? key : lowered(r, key);
    }
    sort_by_keys(r, items, keys, n, ct_given(&p[2]) && ct_truthy(&p[2]));
    return ct_list_of(r->a, items, n, 0);
}

static ct_value f_escape(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    ct_str s = soft_str(r, &v);
    ct_buf b = {0};
    for (size_t i = 0; i < s.n; i++) {
        const char *rep = s.p[i] == '&'    ? "&amp;"
                          : s.p[i] == '<'  ? "&lt;"
                          : s.p[i] == '>'  ? "&gt;"
                          : s.p[i] == '"'  ? "&#34;"
                          : s.p[i] == '\'' ? "&#39;"
                                           : NULL;
        if (rep)
            ct_buf_append(r->a, &b, rep, strlen(rep));
        else
            ct_buf_putc(r->a, &b, s.p[i]);
    }
    return ct_string((ct_str){b.p ? b.p : "", b.n});
}

static ct_value f_first(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    return n ? items[0] : ct_undefinedf(r->a, "No first item, sequence was empty.");
}

static ct_value f_last(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    if (v.type == CT_LIST && v.list->is_iter)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "last: 'generator' object is not reversible (add '| list')");
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    return n ? items[n - 1] : ct_undefinedf(r->a, "No last item, sequence was empty.");
}

static ct_value f_float(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    ct_value dflt = ct_given(&p[0]) ? p[0] : ct_float(0.0);
    double f;
    switch (v.type) {
    case CT_UNDEFINED:
        ct_fail_undefined(r->a, &v);
    case CT_FLOAT:
        return v;
    case CT_INT:
        return ct_float((double)v.i);
    case CT_BOOL:
        return ct_float(v.b);
    case CT_STRING:
        return py_parse_float(r->a, v.s, &f) ? dflt : ct_float(f);
    default:
        return dflt;
    }
}

static ct_value f_int(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    ct_value dflt = ct_given(&p[0]) ? p[0] : ct_int(0);
    if (ct_given(&p[1]) && ct_arg_int(r, "int", "base", &p[1]) != 10)
        ct_fail(r->a, SQ_ERR_UNSUPPORTED, "int: only base 10 is supported");
    int64_t i;
    double f;
    switch (v.type) {
    case CT_UNDEFINED:
        ct_fail_undefined(r->a, &v);
    case CT_INT:
        return v;
    case CT_BOOL:
        return ct_int(v.b);
    case CT_FLOAT:
        if (isnan(v.f)) return dflt;
        if (isinf(v.f) || fabs(v.f) >= 9223372036854775808.0)
            ct_fail(r->a, SQ_ERR_UNSUPPORTED, "int: %g does not fit 64 bits", v.f);
        return ct_int((int64_t)v.f);
    case CT_STRING:
        if (!py_parse_int(v.s, &i)) return ct_int(i);
        /* "42.23"|int is 42: jinja2 retries through float */
        if (py_parse_float(r->a, v.s, &f) || isnan(f) || isinf(f)) return dflt;
        if (fabs(f) >= 9223372036854775808.0)
            ct_fail(r->a, SQ_ERR_UNSUPPORTED, "int: %g does not fit 64 bits", f);
        return ct_int((int64_t)f);
    default:
        return dflt;
    }
}

static ct_value f_indent(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    ct_str indention = ct_cstr("    ");
    if (ct_given(&p[0])) {
        if (p[0].type == CT_STRING) {
            indention = p[0].s;
        } else {
            int64_t w = ct_arg_int(r, "indent", "width", &p[0]);
            ct_value sp = ct_binop(r, ct_cstr("*"), ct_string(ct_cstr(" ")), ct_int(w));
            indention = sp.s;
        }
    }
    int first = ct_given(&p[1]) && ct_truthy(&p[1]), blank = ct_given(&p[2]) && ct_truthy(&p[2]);
    ct_str s = soft_str(r, &v);
    ct_buf with_nl = {0}; /* jinja2 appends a newline first, so a trailing newline keeps its line */
    ct_buf_append(r->a, &with_nl, s.p, s.n);
    ct_buf_putc(r->a, &with_nl, '\n');
    ct_value lines = py_splitlines(r->a, (ct_str){with_nl.p, with_nl.n}, 0);
    ct_buf b = {0};
    if (first) ct_buf_append(r->a, &b, indention.p, indention.n);
    for (size_t k = 0; k < lines.list->n; k++) {
        ct_str line = lines.list->items[k].s;
        if (k) {
            ct_buf_putc(r->a, &b, '\n');
            if (blank || line.n) ct_buf_append(r->a, &b, indention.p, indention.n);
        }
        ct_buf_append(r->a, &b, line.p, line.n);
    }
    return ct_string((ct_str){b.p ? b.p : "", b.n});
}

static ct_value f_items(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    if (v.type == CT_UNDEFINED) return iter_list(r, NULL, 0);
    if (v.type != CT_DICT) ct_fail(r->a, SQ_ERR_INVALID_ARG, "Can only get item pairs from a mapping.");
    ct_value *pairs = ct_alloc_array(r->a, v.dict->n, sizeof *pairs);
    for (size_t k = 0; k < v.dict->n; k++)
        pairs[k] = ct_list_of(r->a, (ct_value[]){v.dict->keys[k], v.dict->vals[k]}, 2, 1);
    return iter_list(r, pairs, v.dict->n);
}

static ct_value f_join(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    ct_str sep = ct_given(&p[0]) ? soft_str(r, &p[0]) : ct_cstr("");
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    ct_buf b = {0};
    for (size_t k = 0; k < n; k++) {
        if (k) ct_buf_append(r->a, &b, sep.p, sep.n);
        ct_value item =
            ct_given(&p[1]) && p[1].type != CT_NONE ? get_attribute(r, items[k], &p[1]) : items[k];
        ct_append_str(r->a, &b, &item);
    }
    return ct_string((ct_str){b.p ? b.p : "", b.n});
}

static ct_value f_length(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_int(ct_len(r, v));
}

static ct_value f_list(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    size_t n;
    return copy_items(r, v, &n);
}

static ct_value f_lower(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_string(py_case_map(r->a, soft_str(r, &v), PY_LOWER));
}

static ct_value f_upper(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_string(py_case_map(r->a, soft_str(r, &v), PY_UPPER));
}

static ct_value f_title(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_string(py_jinja_title(r->a, soft_str(r, &v)));
}

static ct_value f_map(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p;
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    ct_value *out = ct_alloc_array(r->a, n, sizeof *out);
    if (!args->n_pos) { /* map(attribute='x', default=...) */
        ct_value attr = {.type = CT_UNDEFINED}, dflt = {.type = CT_UNDEFINED};
        for (size_t k = 0; k < args->n_kw; k++) {
            if (str_eq(args->kw_names[k], "attribute"))
                attr = args->kw[k];
            else if (str_eq(args->kw_names[k], "default"))
                dflt = args->kw[k];
            else
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "map: unexpected keyword argument '%.*s'",
                        (int)args->kw_names[k].n, args->kw_names[k].p);
        }
        if (!ct_given(&attr)) ct_fail(r->a, SQ_ERR_INVALID_ARG, "map requires a filter argument");
        for (size_t k = 0; k < n; k++) {
            out[k] = get_attribute(r, items[k], &attr);
            if (out[k].type == CT_UNDEFINED && ct_given(&dflt) && dflt.type != CT_NONE) out[k] = dflt;
        }
        return iter_list(r, out, n);
    }
    ct_str name = ct_arg_str(r, "map", "filter", &args->pos[0]);
    ct_args rest = {args->pos + 1, args->n_pos - 1, args->kw_names, args->kw, args->n_kw};
    for (size_t k = 0; k < n; k++) out[k] = ct_apply_filter(r, name, items[k], &rest);
    return iter_list(r, out, n);
}

/* select / reject / selectattr / rejectattr */
static ct_value select_items(ct_render *r, ct_value v, const ct_args *args, int keep, int by_attr) {
    const char *what = by_attr ? (keep ? "selectattr" : "rejectattr") : (keep ? "select" : "reject");
    size_t off = 0;
    if (by_attr && !args->n_pos)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s: Missing parameter for attribute name", what);
    const ct_value *attr = by_attr ? &args->pos[off++] : NULL;
    const ct_value *items;
    size_t n;
    if (!ct_truthy(&v)) return iter_list(r, NULL, 0);
    ct_iterate(r, v, &items, &n);
    ct_value *out = ct_alloc_array(r->a, n, sizeof *out);
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        ct_value x = attr ? get_attribute(r, items[k], attr) : items[k];
        int pass;
        if (args->n_pos > off) {
            ct_str test = ct_arg_str(r, what, "test", &args->pos[off]);
            ct_args rest = {args->pos + off + 1, args->n_pos - off - 1, args->kw_names, args->kw, args->n_kw};
            pass = ct_apply_test(r, test, x, &rest);
        } else {
            pass = ct_truthy(&x);
        }
        if (pass == keep) out[kept++] = items[k];
    }
    return iter_list(r, out, kept);
}

static ct_value f_select(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p;
    return select_items(r, v, args, 1, 0);
}
static ct_value f_reject(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p;
    return select_items(r, v, args, 0, 0);
}
static ct_value f_selectattr(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p;
    return select_items(r, v, args, 1, 1);
}
static ct_value f_rejectattr(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p;
    return select_items(r, v, args, 0, 1);
}

/* min / max: the first extreme item by key, undefined for an empty sequence */
static ct_value extreme(ct_render *r, ct_value v, const ct_value *p, int want_max) {
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    if (!n) return ct_undefinedf(r->a, "No aggregated item, sequence was empty.");
    int case_sensitive = ct_given(&p[0]) && ct_truthy(&p[0]);
    size_t best = 0;
    ct_value best_key = sort_key(r, items[0], &p[1], case_sensitive);
    for (size_t k = 1; k < n; k++) {
        ct_value key = sort_key(r, items[k], &p[1], case_sensitive);
        int ok, c = ct_compare(&key, &best_key, &ok);
        if (!ok)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "'<' not supported between instances of '%s' and '%s'",
                    ct_type_name(&key), ct_type_name(&best_key));
        if (ok == 1 && (want_max ? c > 0 : c < 0)) {
            best = k;
            best_key = key;
        }
    }
    return items[best];
}

static ct_value f_min(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    return extreme(r, v, p, 0);
}
static ct_value f_max(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    return extreme(r, v, p, 1);
}

static ct_value f_replace(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    int64_t count = ct_given(&p[2]) && p[2].type != CT_NONE ? ct_arg_int(r, "replace", "count", &p[2]) : -1;
    return ct_string(py_replace(r->a, soft_str(r, &v), soft_str(r, &p[0]), soft_str(r, &p[1]), count));
}

static ct_value f_reverse(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    if (v.type == CT_STRING) {
        ct_value rev = ct_list_new(r->a, 3, 2); /* [::-1] */
        rev.list->items[0] = rev.list->items[1] = ct_none();
        rev.list->items[2] = ct_int(-1);
        return ct_getitem(r, v, rev);
    }
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    ct_value *out = ct_alloc_array(r->a, n, sizeof *out);
    for (size_t k = 0; k < n; k++) out[k] = items[n - 1 - k];
    return iter_list(r, out, n);
}

static ct_value f_round(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    int64_t precision = ct_given(&p[0]) ? ct_arg_int(r, "round", "precision", &p[0]) : 0;
    ct_str method = ct_given(&p[1]) ? ct_arg_str(r, "round", "method", &p[1]) : ct_cstr("common");
    if (v.type != CT_FLOAT && v.type != CT_INT && v.type != CT_BOOL)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "round: a number is needed, not %s", ct_type_name(&v));
    if (precision < -300 || precision > 300)
        ct_fail(r->a, SQ_ERR_UNSUPPORTED, "round: precision out of range");
    double x = v.type == CT_FLOAT ? v.f : v.type == CT_INT ? (double)v.i : v.b;
    if (str_eq(method, "common")) {
        if (v.type != CT_FLOAT) return v.type == CT_BOOL ? ct_int(v.b) : v; /* round(int, n) is the int */
        if (precision == 0) return ct_float(nearbyint(x));                  /* halves to even, as Python */
        if (precision > 0) { /* correctly rounded through the decimal text, as Python rounds */
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)precision, x);
            return ct_float(strtod(buf, NULL));
        }
        double m = pow(10.0, (double)-precision);
        return ct_float(nearbyint(x / m) * m);
    }
    double scale = pow(10.0, (double)precision);
    if (str_eq(method, "ceil")) return ct_float(ceil(x * scale) / scale);
    if (str_eq(method, "floor")) return ct_float(floor(x * scale) / scale);
    ct_fail(r->a, SQ_ERR_INVALID_ARG, "round: method must be common, ceil or floor");
}

static ct_value f_safe(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)r, (void)p, (void)args;
    return v;
}

static ct_value f_sort(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    size_t n;
    ct_value out = copy_items(r, v, &n);
    int case_sensitive = ct_given(&p[1]) && ct_truthy(&p[1]);
    ct_value *keys = ct_alloc_array(r->a, n, sizeof *keys);
    for (size_t k = 0; k < n; k++) keys[k] = sort_key(r, out.list->items[k], &p[2], case_sensitive);
    sort_by_keys(r, out.list->items, keys, n, ct_given(&p[0]) && ct_truthy(&p[0]));
    return out;
}

static ct_value f_string(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)p, (void)args;
    return ct_string(soft_str(r, &v));
}

static ct_value f_sum(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    ct_value total = ct_given(&p[1]) ? p[1] : ct_int(0);
    for (size_t k = 0; k < n; k++) {
        ct_value x = ct_given(&p[0]) && p[0].type != CT_NONE ? get_attribute(r, items[k], &p[0]) : items[k];
        if (total.type == CT_STRING || x.type == CT_STRING)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "sum: can't sum strings");
        total = ct_binop(r, ct_cstr("+"), total, x);
    }
    return total;
}

static ct_value f_tojson(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    int indent_on = ct_given(&p[1]) && p[1].type != CT_NONE;
    ct_str indent = ct_cstr("");
    if (indent_on) {
        if (p[1].type == CT_STRING) {
            indent = p[1].s;
        } else {
            int64_t w = ct_arg_int(r, "tojson", "indent", &p[1]);
            indent = ct_binop(r, ct_cstr("*"), ct_string(ct_cstr(" ")), ct_int(w)).s;
        }
    }
    ct_json_style st = ct_json_default_style(indent_on, indent);
    st.ensure_ascii = ct_given(&p[0]) && ct_truthy(&p[0]);
    st.sort_keys = ct_given(&p[3]) && ct_truthy(&p[3]);
    if (ct_given(&p[2]) && p[2].type != CT_NONE) {
        if (p[2].type != CT_LIST || p[2].list->is_iter || p[2].list->n != 2)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "tojson: separators must be a pair of strings");
        st.item_sep = ct_arg_str(r, "tojson", "separators", &p[2].list->items[0]);
        st.key_sep = ct_arg_str(r, "tojson", "separators", &p[2].list->items[1]);
    }
    ct_buf b = {0};
    ct_append_json(r->a, &b, &v, &st);
    return ct_string((ct_str){b.p ? b.p : "", b.n});
}

static ct_value f_trim(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    if (ct_given(&p[0]) && p[0].type != CT_NONE) {
        ct_str chars = ct_arg_str(r, "trim", "chars", &p[0]);
        return ct_string(py_strip(soft_str(r, &v), &chars, 1, 1));
    }
    return ct_string(py_strip(soft_str(r, &v), NULL, 1, 1));
}

static ct_value f_unique(ct_render *r, ct_value v, const ct_value *p, const ct_args *args) {
    (void)args;
    const ct_value *items;
    size_t n;
    ct_iterate(r, v, &items, &n);
    int case_sensitive = ct_given(&p[0]) && ct_truthy(&p[0]);
    ct_value *out = ct_alloc_array(r->a, n, sizeof *out), *seen = ct_alloc_array(r->a, n, sizeof *seen);
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        ct_value key = sort_key(r, items[k], &p[1], case_sensitive);
        size_t j = 0;
        while (j < kept && !ct_equal(&seen[j], &key)) j++;
        if (j < kept) continue;
        seen[kept] = key;
        out[kept++] = items[k];
    }
    return iter_list(r, out, kept);
}

typedef struct filter_def {
    const char *name;
    filter_fn fn; /* NULL: jinja2 has it, squeeze does not */
    const char *params[5];
    int n_required; /* leading params without a default */
} filter_def;

static const filter_def filters[] = {
    {"abs", f_abs, {NULL}, 0},
    {"attr", f_attr, {"name", NULL}, 1},
    {"capitalize", f_capitalize, {NULL}, 0},
    {"count", f_length, {NULL}, 0},
    {"d", f_default, {"default_value", "boolean", NULL}, 0},
    {"default", f_default, {"default_value", "boolean", NULL}, 0},
    {"dictsort", f_dictsort, {"case_sensitive", "by", "reverse", NULL}, 0},
    {"e", f_escape, {NULL}, 0},
    {"escape", f_escape, {NULL}, 0},
    {"first", f_first, {NULL}, 0},
    {"float", f_float, {"default", NULL}, 0},
    {"forceescape", f_escape, {NULL}, 0},
    {"indent", f_indent, {"width", "first", "blank", NULL}, 0},
    {"int", f_int, {"default", "base", NULL}, 0},
    {"items", f_items, {NULL}, 0},
    {"join", f_join, {"d", "attribute", NULL}, 0},
    {"last", f_last, {NULL}, 0},
    {"length", f_length, {NULL}, 0},
    {"list", f_list, {NULL}, 0},
    {"lower", f_lower, {NULL}, 0},
    {"map", f_map, {NULL}, 0},
    {"max", f_max, {"case_sensitive", "attribute", NULL}, 0},
    {"min", f_min, {"case_sensitive", "attribute", NULL}, 0},
    {"reject", f_reject, {NULL}, 0},
    {"rejectattr", f_rejectattr, {NULL}, 0},
    {"replace", f_replace, {"old", "new", "count", NULL}, 2},
    {"reverse", f_reverse, {NULL}, 0},
    {"round", f_round, {"precision", "method", NULL}, 0},
    {"safe", f_safe, {NULL}, 0},
    {"select", f_select, {NULL}, 0},
    {"selectattr", f_selectattr, {NULL}, 0},
    {"sort", f_sort, {"reverse", "case_sensitive", "attribute", NULL}, 0},
    {"string", f_string, {NULL}, 0},
    {"sum", f_sum, {"attribute", "start", NULL}, 0},
    {"title", f_title, {NULL}, 0},
    {"tojson", f_tojson, {"ensure_ascii", "indent", "separators", "sort_keys", NULL}, 0},
    {"trim", f_trim, {"chars", NULL}, 0},
    {"unique", f_unique, {"case_sensitive", "attribute", NULL}, 0},
    {"upper", f_upper, {NULL}, 0},
    /* jinja2's, not supported here */
    {"batch", NULL, {NULL}, 0},
    {"center", NULL, {NULL}, 0},
    {"filesizeformat", NULL, {NULL}, 0},
    {"format", NULL, {NULL}, 0},
    {"groupby", NULL, {NULL}, 0},
    {"pprint", NULL, {NULL}, 0},
    {"random", NULL, {NULL}, 0},
    {"slice", NULL, {NULL}, 0},
    {"striptags", NULL, {NULL}, 0},
    {"truncate", NULL, {NULL}, 0},
    {"urlencode", NULL, {NULL}, 0},
    {"urlize", NULL, {NULL}, 0},
    {"wordcount", NULL, {NULL}, 0},
    {"wordwrap", NULL, {NULL}, 0},
    {"xmlattr", NULL, {NULL}, 0},
};

/* filters whose arguments are free-form (filter or test names and their arguments) */
static int variadic(filter_fn fn) {
    return fn == f_map || fn == f_select || fn == f_reject || fn == f_selectattr || fn == f_rejectattr;
}

static const filter_def *find_filter(ct_str name) {
    for (size_t k = 0; k < sizeof filters / sizeof *filters; k++)
        if (str_eq(name, filters[k].name)) return &filters[k];
    return NULL;
}

int ct_filter_exists(ct_str name) { return find_filter(name) != NULL; }

ct_value ct_apply_filter(ct_render *r, ct_str name, ct_value v, const ct_args *args) {
    const filter_def *f = find_filter(name);
    if (!f) ct_fail(r->a, SQ_ERR_FORMAT, "no filter named '%.*s'", (int)name.n, name.p);
    if (!f->fn) ct_fail(r->a, SQ_ERR_UNSUPPORTED, "the '%s' filter is not supported", f->name);
    if (variadic(f->fn)) return f->fn(r, v, NULL, args);
    ct_value p[CT_MAX_PARAMS];
    char what[48];
    snprintf(what, sizeof what, "filter '%s'", f->name);
    ct_bind(r, what, args, f->params, p);
    for (int k = 0; k < f->n_required; k++)
        if (!ct_given(&p[k]))
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s: missing argument '%s'", what, f->params[k]);
    return f->fn(r, v, p, args);
}
