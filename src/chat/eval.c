#include "chat/eval.h"

#include <math.h>
#include <stdio.h>

#include "chat/pystr.h"

enum { MAX_CALL_DEPTH = 64 };

/* A frame of variables: the caller's variables, the template's top level, one loop iteration, a macro call,
 * a {% with %} block. `set` writes to the innermost frame, so a variable set inside a loop is gone after it,
 * as in jinja2 (templates carry state out of loops in a namespace). */
typedef struct ct_var {
    ct_str name;
    ct_value value;
} ct_var;

struct ct_scope {
    ct_scope *parent;
    ct_var *vars;
    size_t n, cap;
};

static int str_eq(ct_str a, const char *b) { return a.n == strlen(b) && !memcmp(a.p, b, a.n); }
static int str_same(ct_str a, ct_str b) { return a.n == b.n && !memcmp(a.p, b.p, a.n); }

ct_scope *ct_scope_new(ct_render *r, ct_scope *parent) {
    ct_scope *s = ct_alloc(r->a, sizeof *s);
    *s = (ct_scope){.parent = parent};
    return s;
}

void ct_scope_set(ct_render *r, ct_scope *s, ct_str name, ct_value v) {
    for (size_t k = 0; k < s->n; k++)
        if (str_same(s->vars[k].name, name)) {
            s->vars[k].value = v;
            return;
        }
    s->vars = ct_grow(r->a, s->vars, s->n, &s->cap, sizeof *s->vars);
    s->vars[s->n++] = (ct_var){name, v};
}

static const ct_value *lookup(const ct_scope *s, ct_str name) {
    for (; s; s = s->parent)
        for (size_t k = s->n; k-- > 0;)
            if (str_same(s->vars[k].name, name)) return &s->vars[k].value;
    return NULL;
}

static void at(ct_render *r, const ct_node *n) {
    r->a->line = n->line;
    r->a->col = n->col;
}

static void step(ct_render *r, const ct_node *n) {
    if (++r->steps > r->max_steps) {
        at(r, n);
        ct_fail(r->a, SQ_ERR_NOMEM, "the template ran more than %lld steps", (long long)r->max_steps);
    }
}

_Noreturn static void type_error(ct_render *r, const char *fmt, const ct_value *x, const ct_value *y) {
    ct_fail(r->a, SQ_ERR_INVALID_ARG, fmt, ct_type_name(x), y ? ct_type_name(y) : "");
}

static void check_defined(ct_render *r, const ct_value *v) {
    if (v->type == CT_UNDEFINED) ct_fail_undefined(r->a, v);
}

/* ------------------------------------------------------------------ lookups */

ct_value ct_getattr(ct_render *r, ct_value obj, ct_str name) {
    check_defined(r, &obj);
    ct_value m;
    if (obj.type == CT_DICT || obj.type == CT_NAMESPACE) {
        /* jinja2 tries Python's getattr first: a dict's methods win over its keys */
        if (obj.type == CT_DICT && ct_method_lookup(r, obj, name, &m)) return m;
        const ct_value *v = ct_dict_get(obj.dict, ct_string(name));
        if (v) return *v;
    } else if (obj.type == CT_LOOP) {
        const ct_loop *l = obj.loop;
        if (str_eq(name, "index0")) return ct_int(l->index0);
        if (str_eq(name, "index")) return ct_int(l->index0 + 1);
        if (str_eq(name, "revindex0")) return ct_int(l->length - l->index0 - 1);
        if (str_eq(name, "revindex")) return ct_int(l->length - l->index0);
        if (str_eq(name, "first")) return ct_bool(l->index0 == 0);
        if (str_eq(name, "last")) return ct_bool(l->index0 == l->length - 1);
        if (str_eq(name, "length")) return ct_int(l->length);
        if (str_eq(name, "depth0"))
            return ct_int(0); /* depth counts recursive loops, which are not supported */
        if (str_eq(name, "depth")) return ct_int(1);
        if (str_eq(name, "previtem"))
            return l->index0 > 0 ? l->items->items[l->index0 - 1]
                                 : ct_undefinedf(r->a, "there is no previous item");
        if (str_eq(name, "nextitem"))
            return l->index0 + 1 < l->length ? l->items->items[l->index0 + 1]
                                             : ct_undefinedf(r->a, "there is no next item");
        if (ct_method_lookup(r, obj, name, &m)) return m;
    } else if (ct_method_lookup(r, obj, name, &m)) {
        return m;
    }
    return ct_undefinedf(r->a, "'%s object' has no attribute '%.*s'", ct_type_name(&obj), (int)name.n,
                         name.p);
}

/* Python's slice.indices(): normalised start, stop, step for a sequence of length len. */
static void slice_indices(ct_render *r, const ct_value *sl, int64_t len, int64_t *start, int64_t *stop,
                          int64_t *stepv) {
    const ct_value *parts = sl->list->items; /* (start, stop, step) */
    int64_t v[3];
    int given[3];
    for (int k = 0; k < 3; k++) {
        given[k] = parts[k].type != CT_NONE;
        if (!given[k]) continue;
        if (parts[k].type == CT_INT)
            v[k] = parts[k].i;
        else if (parts[k].type == CT_BOOL)
            v[k] = parts[k].b;
        else
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "slice indices must be integers or None");
    }
    *stepv = given[2] ? v[2] : 1;
    if (*stepv == 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "slice step cannot be zero");
    if (*stepv == INT64_MIN) *stepv = -INT64_MAX;
    int64_t lo = *stepv < 0 ? -1 : 0, hi = *stepv < 0 ? len - 1 : len;
    for (int k = 0; k < 2; k++) {
        int64_t x;
        if (!given[k]) {
            x = (*stepv < 0) == (k == 0) ? hi : lo;
        } else {
            x = v[k];
            if (x < 0) {
                x += len;
                if (x < lo) x = lo;
            } else if (x > hi) {
                x = hi;
            }
        }
        *(k == 0 ? start : stop) = x;
    }
}

static int64_t slice_count(int64_t start, int64_t stop, int64_t stepv) {
    if (stepv > 0) return start < stop ? (stop - start - 1) / stepv + 1 : 0;
    return stop < start ? (start - stop - 1) / -stepv + 1 : 0;
}

static void no_iterators(ct_render *r, const ct_value *v, const char *what) {
    if (v->type == CT_LIST && v->list->is_iter)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "'generator' object %s (add '| list')", what);
}

ct_value ct_getitem(ct_render *r, ct_value obj, ct_value key) {
    check_defined(r, &obj);
    int is_slice = key.type == CT_LIST && key.list->is_tuple == 2; /* see E_GETITEM in eval() */
    if (obj.type == CT_LIST || obj.type == CT_STRING) {
        if (obj.type == CT_LIST) no_iterators(r, &obj, "is not subscriptable");
        int64_t len = obj.type == CT_LIST ? (int64_t)obj.list->n : (int64_t)py_len(obj.s);
        if (is_slice) {
            int64_t start, stop, stepv;
            slice_indices(r, &key, len, &start, &stop, &stepv);
            int64_t count = slice_count(start, stop, stepv);
            if (obj.type == CT_LIST) {
                ct_value out = ct_list_new(r->a, (size_t)count, obj.list->is_tuple);
                for (int64_t k = 0; k < count; k++) out.list->items[k] = obj.list->items[start + k * stepv];
                out.list->depth = obj.list->depth;
                return out;
            }
            if (stepv == 1) { /* a substring */
                size_t b0 = py_offset(obj.s, (size_t)start), b1 = py_offset(obj.s, (size_t)(start + count));
                return ct_string((ct_str){obj.s.p + b0, b1 - b0});
            }
            /* other steps: pick code points one by one */
            size_t *offs = ct_alloc_array(r->a, (size_t)len + 1, sizeof *offs);
            for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
                offs[k] = i;
                if (i < obj.s.n) py_next_cp(obj.s, &i);
            }
            ct_buf b = {0};
            for (int64_t k = 0; k < count; k++) {
                int64_t c = start + k * stepv;
                ct_buf_append(r->a, &b, obj.s.p + offs[c], offs[c + 1] - offs[c]);
            }
            return ct_string((ct_str){b.p ? b.p : "", b.n});
        }
        if (key.type == CT_INT || key.type == CT_BOOL) {
            int64_t i = key.type == CT_INT ? key.i : key.b;
            if (i < 0) i += len;
            if (i < 0 || i >= len) return ct_undefinedf(r->a, "%s index out of range", ct_type_name(&obj));
            if (obj.type == CT_LIST) return obj.list->items[i];
            size_t b0 = py_offset(obj.s, (size_t)i), b1 = b0;
            py_next_cp(obj.s, &b1);
            return ct_string((ct_str){obj.s.p + b0, b1 - b0});
        }
    } else if (obj.type == CT_DICT && !is_slice) {
        const ct_value *v = ct_dict_get(obj.dict, key);
        if (v) return *v;
    }
    /* jinja2 falls back to the attribute of that name */
    if (key.type == CT_STRING) return ct_getattr(r, obj, key.s);
    return ct_undefinedf(r->a, "'%s object' has no item of that key", ct_type_name(&obj));
}

void ct_iterate(ct_render *r, ct_value v, const ct_value **items, size_t *n) {
    switch (v.type) {
    case CT_UNDEFINED:
        *items = NULL;
        *n = 0;
        return;
    case CT_LIST:
        *items = v.list->items;
        *n = v.list->consumed ? 0 : v.list->n;
        if (v.list->is_iter) v.list->consumed = 1;
        return;
    case CT_DICT:
        *items = v.dict->keys;
        *n = v.dict->n;
        return;
    case CT_STRING: {
        ct_value *chars = ct_alloc_array(r->a, py_len(v.s), sizeof *chars);
        size_t k = 0;
        for (size_t i = 0; i < v.s.n; k++) {
            size_t start = i;
            py_next_cp(v.s, &i);
            chars[k] = ct_string((ct_str){v.s.p + start, i - start});
        }
        *items = chars;
        *n = k;
        return;
    }
    default:
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "'%s' object is not iterable", ct_type_name(&v));
    }
}

int ct_contains(ct_render *r, ct_value container, ct_value x) {
    if (container.type == CT_STRING) {
        if (x.type != CT_STRING)
            type_error(r, "'in <string>' requires string as left operand, not %s", &x, NULL);
        return py_find(container.s, x.s, 0) >= 0;
    }
    if (container.type == CT_DICT) return ct_dict_get(container.dict, x) != NULL;
    const ct_value *items;
    size_t n;
    ct_iterate(r, container, &items, &n);
    for (size_t k = 0; k < n; k++)
        if (ct_equal(&items[k], &x)) return 1;
    return 0;
}

int64_t ct_len(ct_render *r, ct_value v) {
    switch (v.type) {
    case CT_UNDEFINED:
        return 0;
    case CT_STRING:
        return (int64_t)py_len(v.s);
    case CT_LIST:
        no_iterators(r, &v, "has no len()");
        return (int64_t)v.list->n;
    case CT_DICT:
        return (int64_t)v.dict->n;
    case CT_LOOP:
        return v.loop->length;
    default:
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "object of type '%s' has no len()", ct_type_name(&v));
    }
}

/* ------------------------------------------------------------------ operators */

static int is_num(const ct_value *v) {
    return v->type == CT_INT || v->type == CT_FLOAT || v->type == CT_BOOL;
}
static int is_intlike(const ct_value *v) { return v->type == CT_INT || v->type == CT_BOOL; }
static int64_t as_int(const ct_value *v) { return v->type == CT_BOOL ? v->b : v->i; }
static double as_float(const ct_value *v) { return v->type == CT_FLOAT ? v->f : (double)as_int(v); }

_Noreturn static void overflow(ct_render *r) {
    ct_fail(r->a, SQ_ERR_UNSUPPORTED, "integer result does not fit 64 bits");
}

static ct_value repeat(ct_render *r, ct_value seq, int64_t times) {
    if (times < 0) times = 0;
    if (seq.type == CT_STRING) {
        if (seq.s.n && (uint64_t)times > r->a->limit / seq.s.n)
            ct_fail(r->a, SQ_ERR_NOMEM, "string repetition larger than the memory limit");
        ct_buf b = {0};
        for (int64_t k = 0; k < times; k++) ct_buf_append(r->a, &b, seq.s.p, seq.s.n);
        return ct_string((ct_str){b.p ? b.p : "", b.n});
    }
    no_iterators(r, &seq, "cannot be repeated");
    size_t n = seq.list->n;
    if (n && (uint64_t)times > r->a->limit / (n * sizeof(ct_value)))
        ct_fail(r->a, SQ_ERR_NOMEM, "list repetition larger than the memory limit");
    ct_value out = ct_list_new(r->a, n * (size_t)times, seq.list->is_tuple);
    for (int64_t k = 0; k < times; k++)
        if (n) memcpy(out.list->items + (size_t)k * n, seq.list->items, n * sizeof(ct_value));
    out.list->depth = seq.list->depth;
    return out;
}

static double py_fmod(double x, double y) {
    double m = fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0)))
        m += y;
    else if (m == 0)
        m = copysign(0.0, y);
    return m;
}

/* Python's arithmetic on numbers; op is + - * / % and 'f' for //, 'p' for ** */
static ct_value arith(ct_render *r, char op, ct_value x, ct_value y) {
    if (!is_num(&x) || !is_num(&y)) goto unsupported;
    if (is_intlike(&x) && is_intlike(&y) && op != '/') {
        int64_t a = as_int(&x), b = as_int(&y), c;
        switch (op) {
        case '+':
            if (__builtin_add_overflow(a, b, &c)) overflow(r);
            return ct_int(c);
        case '-':
            if (__builtin_sub_overflow(a, b, &c)) overflow(r);
            return ct_int(c);
        case '*':
            if (__builtin_mul_overflow(a, b, &c)) overflow(r);
            return ct_int(c);
        case '%':
        case 'f': /* // */
            if (b == 0)
                ct_fail(r->a, SQ_ERR_INVALID_ARG,
                        op == '%' ? "integer modulo by zero" : "integer division by zero");
            if (a == INT64_MIN && b == -1) {
                if (op == '%') return ct_int(0);
                overflow(r);
            }
            c = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0))) c--;
            return ct_int(op == '%' ? a - c * b : c);
        case 'p': { /* ** */
            if (b < 0) return ct_float(pow((double)a, (double)b));
            int64_t result = 1;
            for (int64_t k = 0; k < b; k++) {
                if (__builtin_mul_overflow(result, a, &result)) overflow(r);
                if (result == 0 || result == 1) break; /* 0 and 1 stay what they are */
            }
            if (result == 1 && a == -1) result = b % 2 ? -1 : 1;
            return ct_int(result);
        }
        }
    }
    double a = as_float(&x), b = as_float(&y);
    switch (op) {
    case '+':
        return ct_float(a + b);
    case '-':
        return ct_float(a - b);
    case '*':
        return ct_float(a * b);
    case '/':
        if (b == 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "division by zero");
        return ct_float(a / b);
    case 'f':
        if (b == 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "float floor division by zero");
        return ct_float(floor(a / b));
    case '%':
        if (b == 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "float modulo");
        return ct_float(py_fmod(a, b));
    case 'p':
        if (a == 0 && b < 0) ct_fail(r->a, SQ_ERR_INVALID_ARG, "0.0 cannot be raised to a negative power");
        if (a < 0 && b != floor(b)) ct_fail(r->a, SQ_ERR_UNSUPPORTED, "complex numbers are not supported");
        return ct_float(pow(a, b));
    }
unsupported:
    ct_fail(r->a, SQ_ERR_INVALID_ARG, "unsupported operand type(s) for an arithmetic operator: '%s' and '%s'",
            ct_type_name(&x), ct_type_name(&y));
}

ct_value ct_binop(ct_render *r, ct_str op, ct_value x, ct_value y) {
    if (str_eq(op, "~")) { /* str() of both: undefined is "" */
        ct_buf b = {0};
        ct_append_str(r->a, &b, &x);
        ct_append_str(r->a, &b, &y);
        return ct_string((ct_str){b.p ? b.p : "", b.n});
    }
    if (str_eq(op, "==")) return ct_bool(ct_equal(&x, &y));
    if (str_eq(op, "!=")) return ct_bool(!ct_equal(&x, &y));
    if (str_eq(op, "in")) return ct_bool(ct_contains(r, y, x));
    if (str_eq(op, "not in")) return ct_bool(!ct_contains(r, y, x));
    check_defined(r, &x);
    check_defined(r, &y);
    if (op.p[0] == '<' || op.p[0] == '>') {
        int ok, c = ct_compare(&x, &y, &ok);
        if (!ok)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "'%.*s' not supported between instances of '%s' and '%s'",
                    (int)op.n, op.p, ct_type_name(&x), ct_type_name(&y));
        if (ok == 2) return ct_bool(0);
        int eq = op.n == 2;
        return ct_bool(op.p[0] == '<' ? (c < 0 || (eq && c == 0)) : (c > 0 || (eq && c == 0)));
    }
    if (str_eq(op, "+")) {
        if (x.type == CT_STRING && y.type == CT_STRING) {
            ct_buf b = {0};
            ct_buf_append(r->a, &b, x.s.p, x.s.n);
            ct_buf_append(r->a, &b, y.s.p, y.s.n);
            return ct_string((ct_str){b.p ? b.p : "", b.n});
        }
        if (x.type == CT_LIST && y.type == CT_LIST && x.list->is_tuple == y.list->is_tuple &&
            !x.list->is_iter && !y.list->is_iter) {
            ct_value out = ct_list_new(r->a, x.list->n + y.list->n, x.list->is_tuple);
            if (x.list->n) memcpy(out.list->items, x.list->items, x.list->n * sizeof(ct_value));
            if (y.list->n) memcpy(out.list->items + x.list->n, y.list->items, y.list->n * sizeof(ct_value));
            out.list->depth = x.list->depth > y.list->depth ? x.list->depth : y.list->depth;
            return out;
        }
        if (x.type == CT_STRING || y.type == CT_STRING)
            type_error(r, "can only concatenate str (not \"%s\") to str", x.type == CT_STRING ? &y : &x,
                       NULL);
        return arith(r, '+', x, y);
    }
    if (str_eq(op, "*")) {
        if ((x.type == CT_STRING || x.type == CT_LIST) && is_intlike(&y)) return repeat(r, x, as_int(&y));
        if ((y.type == CT_STRING || y.type == CT_LIST) && is_intlike(&x)) return repeat(r, y, as_int(&x));
        return arith(r, '*', x, y);
    }
    if (str_eq(op, "%") && x.type == CT_STRING)
        ct_fail(r->a, SQ_ERR_UNSUPPORTED, "printf-style string formatting ('%%') is not supported");
    char c = str_eq(op, "//") ? 'f' : str_eq(op, "**") ? 'p' : op.p[0];
    return arith(r, c, x, y);
}

/* ------------------------------------------------------------------ expressions */

static ct_value eval(ct_render *r, const ct_node *n);

static void eval_args(ct_render *r, const ct_node *n, ct_args *args) {
    ct_value *pos = ct_alloc_array(r->a, n->args.n, sizeof *pos);
    for (size_t k = 0; k < n->args.n; k++) pos[k] = eval(r, n->args.v[k]);
    ct_value *kw = ct_alloc_array(r->a, n->kwargs.n, sizeof *kw);
    for (size_t k = 0; k < n->kwargs.n; k++) kw[k] = eval(r, n->kwargs.v[k]);
    *args = (ct_args){pos, n->args.n, n->kw_names, kw, n->kwargs.n};
}

static ct_value eval_compare(ct_render *r, const ct_node *n) {
    ct_value left = eval(r, n->a);
    for (size_t k = 0; k < n->args.n; k++) { /* a < b < c is (a < b) and (b < c) */
        ct_value right = eval(r, n->args.v[k]);
        at(r, n);
        ct_value c = ct_binop(r, n->kw_names[k], left, right);
        if (!ct_truthy(&c)) return ct_bool(0);
        left = right;
    }
    return ct_bool(1);
}

static ct_value eval(ct_render *r, const ct_node *n) {
    step(r, n);
    switch (n->kind) {
    case E_CONST:
        return n->value;
    case E_NAME: {
        const ct_value *v = lookup(r->scope, n->name);
        if (v) return *v;
        ct_value fn;
        if (ct_global_function(n->name, &fn)) return fn;
        return ct_undefinedf(r->a, "'%.*s' is undefined", (int)n->name.n, n->name.p);
    }
    case E_GETATTR: {
        ct_value obj = eval(r, n->a);
        at(r, n);
        return ct_getattr(r, obj, n->name);
    }
    case E_GETITEM: {
        ct_value obj = eval(r, n->a), key;
        if (n->b->kind == E_SLICE) { /* a slice is a 3-tuple marked is_tuple = 2 */
            key = ct_list_new(r->a, 3, 2);
            const ct_node *parts[3] = {n->b->a, n->b->b, n->b->c};
            for (int k = 0; k < 3; k++) key.list->items[k] = parts[k] ? eval(r, parts[k]) : ct_none();
        } else {
            key = eval(r, n->b);
        }
        at(r, n);
        return ct_getitem(r, obj, key);
    }
    case E_CALL: {
        ct_value fn = eval(r, n->a);
        ct_args args;
        eval_args(r, n, &args);
        at(r, n);
        return ct_call(r, fn, &args);
    }
    case E_FILTER: {
        ct_value v = eval(r, n->a);
        ct_args args;
        eval_args(r, n, &args);
        at(r, n);
        return ct_apply_filter(r, n->name, v, &args);
    }
    case E_TEST: {
        ct_value v = eval(r, n->a);
        ct_args args;
        eval_args(r, n, &args);
        at(r, n);
        return ct_bool(ct_apply_test(r, n->name, v, &args));
    }
    case E_NOT: {
        ct_value v = eval(r, n->a);
        return ct_bool(!ct_truthy(&v));
    }
    case E_NEG:
    case E_POS: {
        ct_value v = eval(r, n->a);
        at(r, n);
        if (v.type == CT_FLOAT) return ct_float(n->kind == E_NEG ? -v.f : v.f);
        if (!is_intlike(&v))
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "bad operand type for unary %c: '%s'",
                    n->kind == E_NEG ? '-' : '+', ct_type_name(&v));
        if (n->kind == E_NEG && as_int(&v) == INT64_MIN) overflow(r);
        return ct_int(n->kind == E_NEG ? -as_int(&v) : as_int(&v));
    }
    case E_BINOP: {
        ct_value x = eval(r, n->a), y = eval(r, n->b);
        at(r, n);
        return ct_binop(r, n->name, x, y);
    }
    case E_AND: {
        ct_value x = eval(r, n->a);
        return ct_truthy(&x) ? eval(r, n->b) : x;
    }
    case E_OR: {
        ct_value x = eval(r, n->a);
        return ct_truthy(&x) ? x : eval(r, n->b);
    }
    case E_COMPARE:
        return eval_compare(r, n);
    case E_COND: {
        ct_value c = eval(r, n->b);
        if (ct_truthy(&c)) return eval(r, n->a);
        return n->c ? eval(r, n->c) : ct_undefinedf(r->a, "the inline if expression had no else");
    }
    case E_LIST:
    case E_TUPLE: {
        ct_value v = ct_list_new(r->a, n->args.n, n->kind == E_TUPLE);
        for (size_t k = 0; k < n->args.n; k++) v.list->items[k] = eval(r, n->args.v[k]);
        at(r, n);
        ct_list_seal(r->a, &v);
        return v;
    }
    case E_DICT: {
        ct_value v = ct_dict_new(r->a, CT_DICT);
        for (size_t k = 0; k < n->args.n; k++) {
            ct_value key = eval(r, n->args.v[k]), val = eval(r, n->kwargs.v[k]);
            at(r, n);
            ct_dict_set(r->a, v.dict, key, val);
        }
        return v;
    }
    default:
        at(r, n);
        ct_fail(r->a, SQ_ERR_INTERNAL, "unexpected node in an expression");
    }
}

/* ------------------------------------------------------------------ calls */

static ct_value call_macro(ct_render *r, const ct_macro *m, const ct_args *args) {
    const ct_node *def = m->def;
    if (args->n_pos > def->args.n)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "macro '%.*s' takes not more than %zu argument(s)",
                (int)def->name.n, def->name.p, def->args.n);
    if (++r->call_depth > MAX_CALL_DEPTH)
        ct_fail(r->a, SQ_ERR_NOMEM, "macro calls nested more than %d deep", MAX_CALL_DEPTH);
    ct_scope *saved_scope = r->scope;
    ct_buf *saved_out = r->out;
    ct_scope *frame = ct_scope_new(r, m->closure);
    r->scope = frame;
    for (size_t k = 0; k < args->n_kw; k++) {
        size_t p = 0;
        while (p < def->args.n && !str_same(def->kw_names[p], args->kw_names[k])) p++;
        if (p == def->args.n || p < args->n_pos)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "macro '%.*s' got an unexpected or repeated argument '%.*s'",
                    (int)def->name.n, def->name.p, (int)args->kw_names[k].n, args->kw_names[k].p);
    }
    for (size_t p = 0; p < def->args.n; p++) {
        ct_value v = ct_undefinedf(r->a, "parameter '%.*s' was not provided", (int)def->kw_names[p].n,
                                   def->kw_names[p].p);
        int given = 0;
        if (p < args->n_pos) {
            v = args->pos[p];
            given = 1;
        }
        for (size_t k = 0; k < args->n_kw && !given; k++)
            if (str_same(def->kw_names[p], args->kw_names[k])) {
                v = args->kw[k];
                given = 1;
            }
        if (!given && def->args.v[p]) v = eval(r, def->args.v[p]);
        ct_scope_set(r, frame, def->kw_names[p], v);
    }
    ct_buf out = {0};
    r->out = &out;
    ct_exec(r, def->body);
    r->out = saved_out;
    r->scope = saved_scope;
    r->call_depth--;
    return ct_string((ct_str){out.p ? out.p : "", out.n});
}

ct_value ct_call(ct_render *r, ct_value fn, const ct_args *args) {
    switch (fn.type) {
    case CT_UNDEFINED:
        ct_fail_undefined(r->a, &fn);
    case CT_MACRO:
        return call_macro(r, fn.macro, args);
    case CT_FUNCTION:
        return ct_call_function(r, fn.func, args);
    case CT_METHOD:
        return ct_call_method(r, fn.method, args);
    default:
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "'%s' object is not callable", ct_type_name(&fn));
    }
}

/* ------------------------------------------------------------------ statements */

static void assign(ct_render *r, const ct_node *target, ct_value v) {
    if (target->kind == E_NSREF) {
        const ct_value *ns = lookup(r->scope, target->name);
        if (!ns || ns->type != CT_NAMESPACE)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "cannot assign attribute on non-namespace object '%.*s'",
                    (int)target->name.n, target->name.p);
        ct_str attr = target->kw_names[0];
        if (attr.n && attr.p[0] == '_')
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "namespace attributes cannot start with '_'");
        ct_dict_set(r->a, ns->dict, ct_string(attr), v);
        return;
    }
    ct_scope_set(r, r->scope, target->name, v);
}

static void assign_targets(ct_render *r, const ct_node *stmt, ct_value v) {
    if (!stmt->unpack) {
        assign(r, stmt->args.v[0], v);
        return;
    }
    if (v.type != CT_LIST || v.list->is_iter)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "cannot unpack a %s into %zu names", ct_type_name(&v),
                stmt->args.n);
    if (v.list->n != stmt->args.n)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s values to unpack (expected %zu, got %zu)",
                v.list->n > stmt->args.n ? "too many" : "not enough", stmt->args.n, v.list->n);
    for (size_t k = 0; k < stmt->args.n; k++) assign(r, stmt->args.v[k], v.list->items[k]);
}

static void exec_for(ct_render *r, const ct_node *n) {
    ct_value seq = eval(r, n->a);
    at(r, n);
    const ct_value *items;
    size_t count;
    ct_iterate(r, seq, &items, &count);
    ct_scope *outer = r->scope;
    if (n->b) { /* {% for x in xs if cond %}: filter first, so loop.length counts what is kept */
        ct_value *kept = ct_alloc_array(r->a, count, sizeof *kept);
        size_t k = 0;
        ct_scope *frame = ct_scope_new(r, outer);
        for (size_t i = 0; i < count; i++) {
            frame->n = 0;
            r->scope = frame;
            assign_targets(r, n, items[i]);
            ct_value c = eval(r, n->b);
            if (ct_truthy(&c)) kept[k++] = items[i];
        }
        r->scope = outer;
        items = kept;
        count = k;
    }
    ct_list *seen = ct_alloc(r->a, sizeof *seen); /* the loop value may outlive this call */
    *seen = (ct_list){.n = count, .items = (ct_value *)items};
    ct_loop *loop = ct_alloc(r->a, sizeof *loop);
    *loop = (ct_loop){.length = (int64_t)count, .items = seen};
    /* one frame for all iterations, emptied at each: a loop's memory does not grow with its length */
    ct_scope *frame = ct_scope_new(r, outer);
    for (size_t i = 0; i < count; i++) {
        step(r, n);
        loop->index0 = (int64_t)i;
        frame->n = 0;
        r->scope = frame;
        at(r, n);
        assign_targets(r, n, items[i]);
        ct_scope_set(r, r->scope, ct_cstr("loop"), (ct_value){.type = CT_LOOP, .loop = loop});
        ct_exec(r, n->body);
        r->scope = outer;
        int ctl = r->loop_ctl;
        r->loop_ctl = 0;
        if (ctl == 1) break;
    }
    r->scope = outer;
    if (count == 0) ct_exec(r, n->else_body);
}

static void exec_stmt(ct_render *r, const ct_node *n) {
    step(r, n);
    switch (n->kind) {
    case S_DATA:
        ct_buf_append(r->a, r->out, n->name.p, n->name.n);
        return;
    case S_OUTPUT: {
        ct_value v = eval(r, n->a);
        at(r, n->a);
        ct_append_str(r->a, r->out, &v);
        return;
    }
    case S_IF: {
        ct_value c = eval(r, n->a);
        ct_exec(r, ct_truthy(&c) ? n->body : n->else_body);
        return;
    }
    case S_FOR:
        exec_for(r, n);
        return;
    case S_SET: {
        ct_value v = eval(r, n->a);
        at(r, n);
        assign_targets(r, n, v);
        return;
    }
    case S_SET_BLOCK: {
        ct_buf *saved = r->out, body = {0};
        r->out = &body;
        ct_exec(r, n->body);
        r->out = saved;
        ct_value v = ct_string((ct_str){body.p ? body.p : "", body.n});
        if (n->a) { /* {% set x | f | g %}: the filters apply to the captured text, innermost first */
            const ct_node *chain[64];
            int depth = 0;
            for (const ct_node *f = n->a; f; f = f->a) {
                if (depth == 64) ct_fail(r->a, SQ_ERR_UNSUPPORTED, "too many filters on a set block");
                chain[depth++] = f;
            }
            while (depth-- > 0) {
                ct_args args;
                eval_args(r, chain[depth], &args);
                at(r, chain[depth]);
                v = ct_apply_filter(r, chain[depth]->name, v, &args);
            }
        }
        assign(r, n->args.v[0], v);
        return;
    }
    case S_MACRO: {
        ct_macro *m = ct_alloc(r->a, sizeof *m);
        *m = (ct_macro){n, r->scope};
        ct_scope_set(r, r->scope, n->name, (ct_value){.type = CT_MACRO, .macro = m});
        return;
    }
    case S_BREAK:
    case S_CONTINUE:
        r->loop_ctl = n->kind == S_BREAK ? 1 : 2;
        return;
    case S_SCOPE: {
        ct_scope *saved = r->scope;
        r->scope = ct_scope_new(r, saved);
        for (size_t k = 0; k < n->args.n; k++)
            ct_scope_set(r, r->scope, n->kw_names[k], eval(r, n->args.v[k]));
        ct_exec(r, n->body);
        r->scope = saved;
        return;
    }
    default:
        at(r, n);
        ct_fail(r->a, SQ_ERR_INTERNAL, "unexpected node in a statement list");
    }
}

void ct_exec(ct_render *r, ct_node_list body) {
    for (size_t k = 0; k < body.n && !r->loop_ctl; k++) exec_stmt(r, body.v[k]);
}
