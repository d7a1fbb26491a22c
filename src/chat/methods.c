/* The global functions a chat template can call (jinja2's range, dict and namespace, Hugging Face's
 * raise_exception and strftime_now) and the Python methods of strings, lists, dicts and the loop variable. */
#include <stdio.h>
#include <time.h>

#include "chat/args.h"
#include "chat/pystr.h"

static int str_eq(ct_str a, const char *b) { return a.n == strlen(b) && !memcmp(a.p, b, a.n); }

enum { MAX_RANGE = 100000 }; /* jinja2's sandbox refuses longer ranges */

enum { F_RANGE = 1, F_NAMESPACE, F_RAISE, F_STRFTIME_NOW, F_DICT };

static const char *const function_names[] = {NULL,           "range", "namespace", "raise_exception",
                                             "strftime_now", "dict"};

int ct_global_function(ct_str name, ct_value *out) {
    for (int k = 1; k < (int)(sizeof function_names / sizeof *function_names); k++)
        if (str_eq(name, function_names[k])) {
            *out = (ct_value){.type = CT_FUNCTION, .func = k};
            return 1;
        }
    return 0;
}

static ct_value fn_range(ct_render *r, const ct_args *args) {
    if (args->n_kw || args->n_pos < 1 || args->n_pos > 3)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "range expects 1 to 3 integer arguments");
    int64_t v[3];
    for (size_t k = 0; k < args->n_pos; k++) v[k] = ct_arg_int(r, "range", "an argument", &args->pos[k]);
    int64_t start = args->n_pos > 1 ? v[0] : 0, stop = args->n_pos > 1 ? v[1] : v[0],
            stepv = args->n_pos > 2 ? v[2] : 1;
    if (stepv == 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "range() arg 3 must not be zero");
    /* the count, computed without overflow */
    long double span = stepv > 0 ? (long double)stop - start : (long double)start - stop;
    long double count =
        span <= 0 ? 0 : (span - 1) / (stepv > 0 ? (long double)stepv : -(long double)stepv) + 1;
    if (count > MAX_RANGE)
        ct_fail(r->a, SQ_ERR_INVALID_ARG,
                "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
    size_t n = (size_t)count;
    ct_value out = ct_list_new(r->a, n, 0);
    for (size_t k = 0; k < n; k++) out.list->items[k] = ct_int(start + (int64_t)k * stepv);
    return out;
}

/* namespace(dict?, **attrs) and dict(**items): keyword arguments become the entries */
static ct_value fn_mapping(ct_render *r, const ct_args *args, ct_type type) {
    const char *what = type == CT_NAMESPACE ? "namespace" : "dict";
    ct_value out = ct_dict_new(r->a, type);
    if (args->n_pos > 1) ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s expected at most 1 positional argument", what);
    if (args->n_pos) {
        const ct_value *init = &args->pos[0];
        if (init->type != CT_DICT)
            ct_fail(r->a, SQ_ERR_UNSUPPORTED, "%s: only a dict may be given as positional argument", what);
        for (size_t k = 0; k < init->dict->n; k++)
            ct_dict_set(r->a, out.dict, init->dict->keys[k], init->dict->vals[k]);
    }
    for (size_t k = 0; k < args->n_kw; k++)
        ct_dict_set(r->a, out.dict, ct_string(args->kw_names[k]), args->kw[k]);
    if (type == CT_NAMESPACE) /* Hugging Face's TemplateNamespace refuses names that start with "_" */
        for (size_t k = 0; k < out.dict->n; k++)
            if (out.dict->keys[k].type == CT_STRING && out.dict->keys[k].s.n &&
                out.dict->keys[k].s.p[0] == '_')
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "namespace attributes cannot start with '_'");
    return out;
}

static ct_value fn_raise(ct_render *r, const ct_args *args) {
    ct_value p[1];
    static const char *const params[] = {"message", NULL};
    ct_bind(r, "raise_exception", args, params, p);
    ct_str msg = ct_given(&p[0]) ? ct_to_str(r->a, &p[0]) : ct_cstr("");
    /* the template's own words about the messages, without a location: they are meant for the user */
    r->a->line = 0;
    ct_fail(r->a, SQ_ERR_INVALID_ARG, "the template rejected the messages: %.*s",
            (int)(msg.n > 800 ? 800 : msg.n), msg.p);
}

static ct_value fn_strftime_now(ct_render *r, const ct_args *args) {
    ct_value p[1];
    static const char *const params[] = {"format", NULL};
    ct_bind(r, "strftime_now", args, params, p);
    ct_str fmt = ct_arg_str(r, "strftime_now", "format", &p[0]);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char *f = ct_strndup(r->a, fmt.p, fmt.n), out[512];
    size_t n = strftime(out, sizeof out, f, &tm);
    if (!n && fmt.n)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "strftime_now: the formatted date is empty or too long");
    return ct_string_copy(r->a, out, n);
}

ct_value ct_call_function(ct_render *r, int func, const ct_args *args) {
    switch (func) {
    case F_RANGE:
        return fn_range(r, args);
    case F_NAMESPACE:
        return fn_mapping(r, args, CT_NAMESPACE);
    case F_DICT:
        return fn_mapping(r, args, CT_DICT);
    case F_RAISE:
        return fn_raise(r, args);
    case F_STRFTIME_NOW:
        return fn_strftime_now(r, args);
    }
    ct_fail(r->a, SQ_ERR_INTERNAL, "unknown global function");
}

/* ------------------------------------------------------------------ methods */

static const char *const str_methods[] = {
    "startswith", "endswith",   "strip", "lstrip",   "rstrip",     "split", "rsplit", "upper",
    "lower",      "capitalize", "title", "swapcase", "replace",    "find",  "rfind",  "index",
    "rindex",     "count",      "join",  "format",   "splitlines", NULL};
static const char *const dict_methods[] = {"items",   "keys",       "values", "get",   "copy", "pop",
                                           "popitem", "setdefault", "update", "clear", NULL};
static const char *const list_methods[] = {"index", "count",  "copy",  "append", "extend",  "insert",
                                           "pop",   "remove", "clear", "sort",   "reverse", NULL};
static const char *const loop_methods[] = {"cycle", "changed", NULL};
/* the ones that would change their object: ImmutableSandboxedEnvironment refuses them */
static const char *const mutators[] = {"pop",    "popitem", "setdefault", "update", "clear",   "append",
                                       "extend", "insert",  "remove",     "sort",   "reverse", NULL};

static const char *find_name(const char *const *names, ct_str name) {
    for (int k = 0; names[k]; k++)
        if (str_eq(name, names[k])) return names[k];
    return NULL;
}

int ct_method_lookup(ct_render *r, ct_value obj, ct_str name, ct_value *out) {
    const char *const *names = obj.type == CT_STRING                       ? str_methods
                               : obj.type == CT_DICT                       ? dict_methods
                               : obj.type == CT_LIST && !obj.list->is_iter ? list_methods
                               : obj.type == CT_LOOP                       ? loop_methods
                                                                           : NULL;
    const char *found = names ? find_name(names, name) : NULL;
    if (!found) return 0;
    ct_method *m = ct_alloc(r->a, sizeof *m);
    *m = (ct_method){obj, found};
    *out = (ct_value){.type = CT_METHOD, .method = m};
    return 1;
}

/* startswith / endswith: a string or a tuple of strings */
static int affix(ct_render *r, ct_str s, const ct_value *arg, int prefix) {
    const char *what = prefix ? "startswith" : "endswith";
    if (arg->type == CT_LIST && arg->list->is_tuple == 1) {
        for (size_t k = 0; k < arg->list->n; k++)
            if (affix(r, s, &arg->list->items[k], prefix)) return 1;
        return 0;
    }
    ct_str a = ct_arg_str(r, what, "the prefix", arg);
    return prefix ? py_startswith(s, a) : py_endswith(s, a);
}

static const ct_str *opt_chars(ct_render *r, const char *what, const ct_value *v, ct_str *buf) {
    if (!ct_given(v) || v->type == CT_NONE) return NULL;
    *buf = ct_arg_str(r, what, "chars", v);
    return buf;
}

/* str.format with "{}", "{0}", "{name}" fields, "!s"/"!r" conversions and "{{"/"}}"; no format specs */
static ct_value str_format(ct_render *r, ct_str f, const ct_args *args) {
    ct_buf b = {0};
    size_t auto_index = 0;
    for (size_t i = 0; i < f.n; i++) {
        char c = f.p[i];
        if (c == '}') {
            if (i + 1 < f.n && f.p[i + 1] == '}')
                i++;
            else
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "format: Single '}' encountered in format string");
            ct_buf_putc(r->a, &b, '}');
            continue;
        }
        if (c != '{') {
            ct_buf_putc(r->a, &b, c);
            continue;
        }
        if (i + 1 < f.n && f.p[i + 1] == '{') {
            ct_buf_putc(r->a, &b, '{');
            i++;
            continue;
        }
        size_t end = i + 1;
        while (end < f.n && f.p[end] != '}') end++;
        if (end >= f.n) ct_fail(r->a, SQ_ERR_INVALID_ARG, "format: Single '{' encountered in format string");
        ct_str field = {f.p + i + 1, end - i - 1};
        char conv = 0;
        const char *bang = memchr(field.p, '!', field.n);
        if (memchr(field.p, ':', field.n) || memchr(field.p, '.', field.n) || memchr(field.p, '[', field.n))
            ct_fail(r->a, SQ_ERR_UNSUPPORTED, "format: only plain {} fields are supported");
        if (bang) {
            if ((size_t)(field.p + field.n - bang) != 2 || (bang[1] != 's' && bang[1] != 'r'))
                ct_fail(r->a, SQ_ERR_UNSUPPORTED, "format: unsupported conversion");
            conv = bang[1];
            field.n = (size_t)(bang - field.p);
        }
        const ct_value *v = NULL;
        int64_t index;
        if (!field.n) {
            if (auto_index >= args->n_pos)
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "format: Replacement index out of range");
            v = &args->pos[auto_index++];
        } else if (!py_parse_int(field, &index)) {
            if (index < 0 || (size_t)index >= args->n_pos)
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "format: Replacement index out of range");
            v = &args->pos[index];
        } else {
            for (size_t k = 0; k < args->n_kw && !v; k++)
                if (args->kw_names[k].n == field.n && !memcmp(args->kw_names[k].p, field.p, field.n))
                    v = &args->kw[k];
            if (!v)
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "format: no argument named '%.*s'", (int)field.n, field.p);
        }
        if (conv == 'r')
            ct_append_repr(r->a, &b, v);
        else
            ct_append_str(r->a, &b, v);
        i = end;
    }
    return ct_string((ct_str){b.p ? b.p : "", b.n});
}

static ct_value string_method(ct_render *r, ct_str s, const char *name, const ct_args *args) {
    ct_value p[CT_MAX_PARAMS];
    char what[40];
    snprintf(what, sizeof what, "str.%s", name);
    if (!strcmp(name, "format")) return str_format(r, s, args);
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        static const char *const params[] = {"prefix", NULL};
        ct_bind(r, what, args, params, p);
        if (!ct_given(&p[0])) ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s takes a prefix", what);
        return ct_bool(affix(r, s, &p[0], name[0] == 's'));
    }
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        static const char *const params[] = {"chars", NULL};
        ct_bind(r, what, args, params, p);
        ct_str buf;
        return ct_string(py_strip(s, opt_chars(r, what, &p[0], &buf), name[0] != 'r', name[0] != 'l'));
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        static const char *const params[] = {"sep", "maxsplit", NULL};
        ct_bind(r, what, args, params, p);
        ct_str sep;
        const ct_str *sepp = NULL;
        if (ct_given(&p[0]) && p[0].type != CT_NONE) {
            sep = ct_arg_str(r, what, "sep", &p[0]);
            sepp = &sep;
        }
        int64_t maxsplit = ct_given(&p[1]) ? ct_arg_int(r, what, "maxsplit", &p[1]) : -1;
        return py_split(r->a, s, sepp, maxsplit < 0 ? -1 : maxsplit, name[0] == 'r');
    }
    if (!strcmp(name, "splitlines")) {
        static const char *const params[] = {"keepends", NULL};
        ct_bind(r, what, args, params, p);
        return py_splitlines(r->a, s, ct_given(&p[0]) && ct_truthy(&p[0]));
    }
    if (!strcmp(name, "replace")) {
        static const char *const params[] = {"old", "new", "count", NULL};
        ct_bind(r, what, args, params, p);
        if (!ct_given(&p[1])) ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s takes old and new", what);
        int64_t count = ct_given(&p[2]) ? ct_arg_int(r, what, "count", &p[2]) : -1;
        return ct_string(py_replace(r->a, s, ct_arg_str(r, what, "old", &p[0]),
                                    ct_arg_str(r, what, "new", &p[1]), count < 0 ? -1 : count));
    }
    if (!strcmp(name, "join")) {
        static const char *const params[] = {"iterable", NULL};
        ct_bind(r, what, args, params, p);
        const ct_value *items;
        size_t n;
        ct_iterate(r, p[0], &items, &n);
        ct_buf b = {0};
        for (size_t k = 0; k < n; k++) {
            if (items[k].type != CT_STRING)
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "sequence item %zu: expected str instance, %s found", k,
                        ct_type_name(&items[k]));
            if (k) ct_buf_append(r->a, &b, s.p, s.n);
            ct_buf_append(r->a, &b, items[k].s.p, items[k].s.n);
        }
        return ct_string((ct_str){b.p ? b.p : "", b.n});
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") ||
        !strcmp(name, "rindex") || !strcmp(name, "count")) {
        static const char *const params[] = {"sub", NULL};
        ct_bind(r, what, args, params, p);
        ct_str sub = ct_arg_str(r, what, "sub", &p[0]);
        if (!strcmp(name, "count")) {
            if (!sub.n) return ct_int((int64_t)py_len(s) + 1);
            int64_t count = 0;
            for (int64_t at = py_find(s, sub, 0); at >= 0; at = py_find(s, sub, (size_t)at + sub.n)) count++;
            return ct_int(count);
        }
        int64_t hit = -1;
        if (name[0] == 'r') {
            for (int64_t at = py_find(s, sub, 0); at >= 0; at = py_find(s, sub, (size_t)at + 1)) {
                hit = at;
                if ((size_t)at >= s.n) break;
            }
        } else {
            hit = py_find(s, sub, 0);
        }
        if (hit < 0 && strstr(name, "index")) ct_fail(r->a, SQ_ERR_INVALID_ARG, "substring not found");
        return ct_int(hit < 0 ? -1 : (int64_t)py_index_of_offset(s, (size_t)hit));
    }
    static const char *const none[] = {NULL};
    ct_bind(r, what, args, none, p);
    py_case mode = !strcmp(name, "upper")        ? PY_UPPER
                   : !strcmp(name, "lower")      ? PY_LOWER
                   : !strcmp(name, "capitalize") ? PY_CAPITALIZE
                   : !strcmp(name, "title")      ? PY_TITLE
                                                 : PY_SWAPCASE;
    return ct_string(py_case_map(r->a, s, mode));
}

static ct_value dict_method(ct_render *r, const ct_dict *d, const char *name, const ct_args *args) {
    ct_value p[CT_MAX_PARAMS];
    char what[40];
    snprintf(what, sizeof what, "dict.%s", name);
    if (!strcmp(name, "get")) {
        static const char *const params[] = {"key", "default", NULL};
        ct_bind(r, what, args, params, p);
        if (!ct_given(&p[0])) ct_fail(r->a, SQ_ERR_INVALID_ARG, "dict.get takes a key");
        const ct_value *v = ct_dict_get(d, p[0]);
        return v ? *v : ct_given(&p[1]) ? p[1] : ct_none();
    }
    static const char *const none[] = {NULL};
    ct_bind(r, what, args, none, p);
    if (!strcmp(name, "copy")) {
        ct_value out = ct_dict_new(r->a, CT_DICT);
        for (size_t k = 0; k < d->n; k++) ct_dict_set(r->a, out.dict, d->keys[k], d->vals[k]);
        return out;
    }
    /* items / keys / values: lists (Python's views print differently, which templates do not do) */
    ct_value out = ct_list_new(r->a, d->n, 0);
    for (size_t k = 0; k < d->n; k++)
        out.list->items[k] = !strcmp(name, "keys") ? d->keys[k]
                             : !strcmp(name, "values")
                                 ? d->vals[k]
                                 : ct_list_of(r->a, (ct_value[]){d->keys[k], d->vals[k]}, 2, 1);
    ct_list_seal(r->a, &out);
    return out;
}

static ct_value list_method(ct_render *r, ct_value list, const char *name, const ct_args *args) {
    ct_value p[CT_MAX_PARAMS];
    char what[40];
    snprintf(what, sizeof what, "list.%s", name);
    if (!strcmp(name, "copy")) {
        static const char *const none[] = {NULL};
        ct_bind(r, what, args, none, p);
        return ct_list_of(r->a, list.list->items, list.list->n, list.list->is_tuple);
    }
    static const char *const params[] = {"value", NULL};
    ct_bind(r, what, args, params, p);
    int64_t count = 0;
    for (size_t k = 0; k < list.list->n; k++)
        if (ct_equal(&list.list->items[k], &p[0])) {
            if (!strcmp(name, "index")) return ct_int((int64_t)k);
            count++;
        }
    if (!strcmp(name, "index")) ct_fail(r->a, SQ_ERR_INVALID_ARG, "list.index(x): x not in list");
    return ct_int(count);
}

ct_value ct_call_method(ct_render *r, const ct_method *m, const ct_args *args) {
    if (find_name(mutators, ct_cstr(m->name)) && m->self.type != CT_STRING)
        ct_fail(r->a, SQ_ERR_INVALID_ARG,
                "access to attribute '%s' of '%s' object is unsafe (templates may not change lists or dicts)",
                m->name, ct_type_name(&m->self));
    switch (m->self.type) {
    case CT_STRING:
        return string_method(r, m->self.s, m->name, args);
    case CT_DICT:
        return dict_method(r, m->self.dict, m->name, args);
    case CT_LIST:
        return list_method(r, m->self, m->name, args);
    case CT_LOOP:
        if (!strcmp(m->name, "cycle")) {
            if (!args->n_pos || args->n_kw)
                ct_fail(r->a, SQ_ERR_INVALID_ARG, "loop.cycle takes at least one value");
            return args->pos[m->self.loop->index0 % (int64_t)args->n_pos];
        }
        ct_fail(r->a, SQ_ERR_UNSUPPORTED, "loop.%s is not supported", m->name);
    default:
        ct_fail(r->a, SQ_ERR_INTERNAL, "method of an unexpected object");
    }
}
