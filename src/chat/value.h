/* The values a chat template computes with, as Jinja (on Python) has them: undefined, none, bool, int, float,
 * string, list/tuple, dict, namespace, loop, macro, builtin function and bound method.
 *
 * Values are immutable once built (Hugging Face renders templates in jinja2's ImmutableSandboxedEnvironment,
 * where lists and dicts cannot be modified); only a namespace's attributes change, through `set ns.x = ...`.
 * Strings are UTF-8, validated where they enter (template literals, the caller's messages), and are indexed,
 * sliced and measured in code points as Python does. Everything lives in the rendering's arena. */
#ifndef SQ_CHAT_VALUE_H
#define SQ_CHAT_VALUE_H

#include <stdint.h>
#include <string.h>

#include "chat/arena.h"

typedef enum ct_type {
    CT_UNDEFINED, /* a missing variable, key or attribute: prints as "", is false, fails when used further */
    CT_NONE,
    CT_BOOL,
    CT_INT,
    CT_FLOAT,
    CT_STRING,
    CT_LIST, /* list or tuple (is_tuple) */
    CT_DICT,
    CT_NAMESPACE, /* jinja2's namespace(): a dict of attributes that `set ns.attr` may change */
    CT_LOOP,      /* the `loop` variable of a for loop */
    CT_MACRO,
    CT_FUNCTION, /* a global function: range, namespace, raise_exception, ... */
    CT_METHOD    /* a method bound to its receiver: "a b".split, messages.index, loop.cycle */
} ct_type;

typedef struct ct_str {
    const char *p;
    size_t n;
} ct_str;

typedef struct ct_list ct_list;
typedef struct ct_dict ct_dict;
typedef struct ct_loop ct_loop;
typedef struct ct_macro ct_macro;
typedef struct ct_method ct_method;

typedef struct ct_value {
    ct_type type;
    union {
        int b;
        int64_t i;
        double f;
        ct_str s; /* CT_STRING; for CT_UNDEFINED the error to report if it is used ("'x' is undefined") */
        ct_list *list;
        ct_dict *dict; /* CT_DICT and CT_NAMESPACE */
        ct_loop *loop;
        ct_macro *macro;
        ct_method *method;
        int func; /* CT_FUNCTION: which global */
    };
} ct_value;

/* Containers record how deeply they nest (a list of strings: 1), so that the recursive operations on values
 * (printing, comparing, tojson) are bounded: building one deeper than CT_MAX_DEPTH fails. */
enum { CT_MAX_DEPTH = 200 };

struct ct_list {
    size_t n;
    ct_value *items; /* [n] */
    int is_tuple;
    int depth;
    /* a one-shot iterator, as map/select/reverse return in jinja2 (Python generators): always true, no len(),
     * no indexing, empty once iterated */
    int is_iter, consumed;
};

/* Insertion-ordered, as Python's dict. Lookup is linear: templates see small dicts (messages, tool schemas).
 */
struct ct_dict {
    size_t n, cap;
    ct_value *keys, *vals; /* [cap] */
    int depth;
    int is_namespace; /* only namespaces change after they are built, so only they could hold themselves */
};

struct ct_loop {
    int64_t index0, length;
    const ct_list *items; /* what the loop runs over, for previtem / nextitem */
};

struct ct_method {
    ct_value self;
    const char *name;
};

/* constructors */
static inline ct_value ct_undefined(ct_str why) { return (ct_value){.type = CT_UNDEFINED, .s = why}; }
static inline ct_value ct_none(void) { return (ct_value){.type = CT_NONE}; }
static inline ct_value ct_bool(int b) { return (ct_value){.type = CT_BOOL, .b = !!b}; }
static inline ct_value ct_int(int64_t i) { return (ct_value){.type = CT_INT, .i = i}; }
static inline ct_value ct_float(double f) { return (ct_value){.type = CT_FLOAT, .f = f}; }
static inline ct_value ct_string(ct_str s) { return (ct_value){.type = CT_STRING, .s = s}; }
static inline ct_str ct_cstr(const char *s) { return (ct_str){s, strlen(s)}; }
ct_value ct_undefinedf(ct_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ct_value ct_string_copy(ct_arena *a, const char *s, size_t n);
ct_value ct_list_new(ct_arena *a, size_t n, int is_tuple); /* n items, all undefined, to fill in */
/* Records the nesting depth of a list whose items have been filled in; fails past CT_MAX_DEPTH. */
void ct_list_seal(ct_arena *a, ct_value *list);
ct_value ct_list_of(ct_arena *a, const ct_value *items, size_t n, int is_tuple); /* copies, then seals */
int ct_depth(const ct_value *v);                                                 /* 0 for scalars */
ct_value ct_dict_new(ct_arena *a, ct_type type); /* CT_DICT or CT_NAMESPACE, empty */
/* Sets key to val (replacing an equal key, keeping its place; else appended). Fails for an unhashable key
 * (list, dict), past CT_MAX_DEPTH, and when a namespace would contain itself. */
void ct_dict_set(ct_arena *a, ct_dict *d, ct_value key, ct_value val);
/* The value under key, or NULL. */
const ct_value *ct_dict_get(const ct_dict *d, ct_value key);
const ct_value *ct_dict_get_str(const ct_dict *d, const char *key);

/* Python semantics */
const char *ct_type_name(const ct_value *v); /* Python's type name: "str", "int", "dict", "NoneType", ... */
int ct_truthy(const ct_value *v);
/* ==, as Python compares (1 == 1.0 == True; [1] != (1,); dicts ignore order). */
int ct_equal(const ct_value *x, const ct_value *y);
/* Ordering (<0, 0, >0) where Python defines one (numbers, strings, lists/tuples elementwise); sets *ok = 0
 * when it does not (e.g. str < int). */
int ct_compare(const ct_value *x, const ct_value *y, int *ok);
/* str(v) / repr(v) appended to b. Undefined prints as "", as jinja2 prints it. Fails for values Python prints
 * with a memory address (macros, methods). */
void ct_append_str(ct_arena *a, ct_buf *b, const ct_value *v);
void ct_append_repr(ct_arena *a, ct_buf *b, const ct_value *v);
ct_str ct_to_str(ct_arena *a, const ct_value *v); /* str(v); strings are returned as they are */
/* The error a use of an undefined value reports (jinja2's UndefinedError text). */
_Noreturn void ct_fail_undefined(ct_arena *a, const ct_value *v);

#endif
