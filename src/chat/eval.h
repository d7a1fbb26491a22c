/* Renders a parsed chat template: evaluates statements and expressions with jinja2's semantics (scoping,
 * undefined values, Python operators) inside one arena, within a step budget. The builtins (filters, tests,
 * methods, global functions) live in builtins.c and call back in here. */
#ifndef SQ_CHAT_EVAL_H
#define SQ_CHAT_EVAL_H

#include "chat/ast.h"

typedef struct ct_scope ct_scope;

struct ct_macro {
    const ct_node *def;
    ct_scope *closure; /* the scope the macro was defined in */
};

typedef struct ct_render {
    ct_arena *a;
    ct_buf *out;     /* where output goes now (a macro call or {% set %} block captures into its own) */
    ct_scope *scope; /* innermost */
    int64_t steps, max_steps;
    int call_depth;
    int loop_ctl; /* 1: a {% break %}, 2: a {% continue %} is unwinding to its loop */
} ct_render;

/* Positional and keyword arguments of a call. */
typedef struct ct_args {
    const ct_value *pos;
    size_t n_pos;
    const ct_str *kw_names;
    const ct_value *kw;
    size_t n_kw;
} ct_args;

ct_scope *ct_scope_new(ct_render *r, ct_scope *parent);
void ct_scope_set(ct_render *r, ct_scope *s, ct_str name, ct_value v);
/* Runs the template body with r->scope as its variables; output to r->out. */
void ct_exec(ct_render *r, ct_node_list body);

/* jinja2's attribute and item lookup (what `a.b` and `a[b]` do): a missing key or attribute is undefined;
 * using an undefined value's attribute or item fails. Dict and string methods come back bound. */
ct_value ct_getattr(ct_render *r, ct_value obj, ct_str name);
ct_value ct_getitem(ct_render *r, ct_value obj, ct_value key);
/* Calls a macro, global function or bound method. */
ct_value ct_call(ct_render *r, ct_value fn, const ct_args *args);
/* The items a for loop would run over (list items, dict keys, string characters; nothing for undefined).
 * An iterator (the result of map, select, ...) is consumed, as Python's generators are. */
void ct_iterate(ct_render *r, ct_value v, const ct_value **items, size_t *n);
/* Python's `x in container`. */
int ct_contains(ct_render *r, ct_value container, ct_value x);
/* Python's len(v); fails for values without one. */
int64_t ct_len(ct_render *r, ct_value v);
/* A binary operator by its template spelling: + - * / // % ** ~ == != < <= > >= in "not in". */
ct_value ct_binop(ct_render *r, ct_str op, ct_value x, ct_value y);

/* builtins.c */
int ct_filter_exists(ct_str name);
int ct_test_exists(ct_str name);
ct_value ct_apply_filter(ct_render *r, ct_str name, ct_value v, const ct_args *args);
int ct_apply_test(ct_render *r, ct_str name, ct_value v, const ct_args *args);
/* The global functions (range, namespace, raise_exception, strftime_now, dict) by name; 0 when none. */
int ct_global_function(ct_str name, ct_value *out);
ct_value ct_call_function(ct_render *r, int func, const ct_args *args);
/* A method of a string, list, dict or loop by name: 1 and *out bound to obj, or 0 when it has none. */
int ct_method_lookup(ct_render *r, ct_value obj, ct_str name, ct_value *out);
ct_value ct_call_method(ct_render *r, const ct_method *m, const ct_args *args);

#endif
