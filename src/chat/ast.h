/* The syntax tree of a chat template: statements (text, output, if, for, set, macro, ...) and expressions, as
 * jinja2's parser builds them. Nodes live in the compiled template's arena. */
#ifndef SQ_CHAT_AST_H
#define SQ_CHAT_AST_H

#include "chat/value.h"

typedef enum ct_node_kind {
    /* statements */
    S_DATA,      /* name: the text */
    S_OUTPUT,    /* {{ a }} */
    S_IF,        /* if a: body, else else_body (an elif is an S_IF alone in else_body) */
    S_FOR,       /* for args (targets) in a [if b]: body, else else_body */
    S_SET,       /* set args (targets) = a */
    S_SET_BLOCK, /* set args[0] = the output of body */
    S_MACRO,     /* macro name(kw_names with defaults args): body */
    S_BREAK,
    S_CONTINUE,
    S_SCOPE, /* {% with %} (kw_names = args) and Hugging Face's {% generation %}: body in its own scope */
    /* expressions */
    E_CONST,   /* value */
    E_NAME,    /* name */
    E_NSREF,   /* name.attr as an assignment target: `set ns.attr = ...` (attr in kw_names[0]) */
    E_GETATTR, /* a.name */
    E_GETITEM, /* a[b] */
    E_SLICE,   /* a:b:c inside [], each may be NULL */
    E_CALL,    /* a(args, kw_names=kwargs) */
    E_FILTER,  /* a | name(args, kw_names=kwargs) */
    E_TEST,    /* a is name(args) */
    E_NOT,
    E_NEG,
    E_POS,
    E_BINOP, /* a op b, op one of + - * / // % ** ~ */
    E_AND,
    E_OR,
    E_COMPARE, /* a op[0] args[0] op[1] args[1] ... (ops in kw_names as text) */
    E_COND,    /* a if b else c (c may be NULL) */
    E_LIST,    /* [args] */
    E_TUPLE,   /* (args) */
    E_DICT     /* {args: kwargs} */
} ct_node_kind;

typedef struct ct_node ct_node;

typedef struct ct_node_list {
    ct_node **v;
    size_t n;
} ct_node_list;

struct ct_node {
    ct_node_kind kind;
    int line, col;
    ct_str name; /* variable, attribute, filter, test or macro name; operator text; S_DATA text */
    ct_value value;
    ct_node *a, *b, *c;
    ct_node_list args;   /* see the kinds above */
    ct_node_list kwargs; /* keyword argument values */
    ct_str *kw_names;    /* [kwargs.n] (E_CALL, E_FILTER, E_TEST), [args.n] (S_MACRO, S_SCOPE, E_COMPARE) */
    ct_node_list body, else_body;
    int unpack; /* S_FOR / S_SET: the targets were written as a tuple */
};

/* Parses a template's source into its statement list. Fails through the arena with the line and column. */
ct_node_list ct_parse(ct_arena *a, const char *src, size_t n);

#endif
