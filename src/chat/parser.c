/* jinja2's grammar (jinja2/parser.py), for the statements and expressions chat templates use. Operator
 * precedence, from loosest: `x if c else y`, or, and, not, comparisons (== != < <= > >= in, not in), + -, ~,
 * * / // %, ** (left-associative, as in jinja2), unary - +, then postfix .attr [index] (call), then | filter
 * and `is` test, which bind tighter than every binary operator (`a + b | trim` trims b only). */
#include <stdio.h>

#include "chat/ast.h"
#include "chat/lexer.h"

enum { MAX_NESTING = 128 };

typedef struct parser {
    ct_arena *a;
    ct_token *t;
    size_t n, pos;
    int depth;
    int loops; /* for loops around the current statement (within the current macro): where break may go */
} parser;

static ct_token *cur(parser *p) { return &p->t[p->pos]; }
static ct_token *peek(parser *p, size_t k) { return &p->t[p->pos + k < p->n ? p->pos + k : p->n - 1]; }

static int str_is(ct_str s, const char *lit) { return s.n == strlen(lit) && !memcmp(s.p, lit, s.n); }
static int is_op(const ct_token *t, const char *op) { return t->type == T_OP && str_is(t->text, op); }
static int is_name(const ct_token *t, const char *name) { return t->type == T_NAME && str_is(t->text, name); }

static const char *describe(const ct_token *t) {
    switch (t->type) {
    case T_DATA:
        return "template text";
    case T_VAR_BEGIN:
        return "'{{'";
    case T_VAR_END:
        return "end of print statement";
    case T_BLOCK_BEGIN:
        return "'{%'";
    case T_BLOCK_END:
        return "end of statement block";
    case T_EOF:
        return "end of template";
    default:
        return NULL;
    }
}

_Noreturn static void fail_at(parser *p, const ct_token *t, const char *fmt, const char *arg) {
    p->a->line = t->line;
    p->a->col = t->col;
    ct_fail(p->a, SQ_ERR_FORMAT, fmt, arg);
}

_Noreturn static void unexpected(parser *p, const char *expected) {
    ct_token *t = cur(p);
    char what[96];
    const char *d = describe(t);
    if (d)
        snprintf(what, sizeof what, "%s", d);
    else
        snprintf(what, sizeof what, "'%.*s'", (int)(t->text.n > 40 ? 40 : t->text.n), t->text.p);
    char msg[256];
    snprintf(msg, sizeof msg, "expected %s, got %s", expected, what);
    fail_at(p, t, "%s", msg);
}

static ct_token *next(parser *p) {
    ct_token *t = cur(p);
    if (p->pos + 1 < p->n) p->pos++;
    return t;
}

static void expect_op(parser *p, const char *op) {
    if (!is_op(cur(p), op)) {
        char e[8];
        snprintf(e, sizeof e, "'%s'", op);
        unexpected(p, e);
    }
    next(p);
}

static ct_str expect_name(parser *p) {
    if (cur(p)->type != T_NAME) unexpected(p, "a name");
    return next(p)->text;
}

static void expect_type(parser *p, ct_tok_type type, const char *what) {
    if (cur(p)->type != type) unexpected(p, what);
    next(p);
}

static ct_node *node(parser *p, ct_node_kind kind, const ct_token *at) {
    ct_node *n = ct_alloc_array(p->a, 1, sizeof *n);
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* Growable lists of nodes and names. */
static void push(parser *p, ct_node_list *l, size_t *cap, ct_node *n) {
    l->v = ct_grow(p->a, l->v, l->n, cap, sizeof *l->v);
    l->v[l->n++] = n;
}

static void push_name(parser *p, ct_str **names, size_t n, size_t *cap, ct_str name) {
    *names = ct_grow(p->a, *names, n, cap, sizeof **names);
    (*names)[n] = name;
}

static void enter(parser *p) {
    if (++p->depth > MAX_NESTING) fail_at(p, cur(p), "%s", "the template nests too deeply");
}
static void leave(parser *p) { p->depth--; }

static ct_node *parse_expression(parser *p, int with_condexpr);
static ct_node *parse_tuple(parser *p, int simplified, int with_condexpr, const char *extra_end,
                            int explicit_parens, int with_namespace);
static ct_node *parse_unary(parser *p, int with_filter);

/* (args, name=kwargs) after a call, filter or test; `*args` and `**kwargs` are not supported. */
static void parse_call_args(parser *p, ct_node *n) {
    expect_op(p, "(");
    size_t cap = 0, kcap = 0, ncap = 0;
    while (!is_op(cur(p), ")")) {
        if (n->args.n || n->kwargs.n) {
            expect_op(p, ",");
            if (is_op(cur(p), ")")) break;
        }
        if (is_op(cur(p), "*") || is_op(cur(p), "**"))
            fail_at(p, cur(p), "%s", "*args and **kwargs in calls are not supported");
        if (cur(p)->type == T_NAME && is_op(peek(p, 1), "=")) {
            ct_str key = next(p)->text;
            next(p);
            push_name(p, &n->kw_names, n->kwargs.n, &ncap, key);
            push(p, &n->kwargs, &kcap, parse_expression(p, 1));
        } else {
            if (n->kwargs.n) fail_at(p, cur(p), "%s", "positional argument after keyword argument");
            push(p, &n->args, &cap, parse_expression(p, 1));
        }
    }
    expect_op(p, ")");
}

static ct_node *parse_primary(parser *p, int with_namespace) {
    ct_token *t = cur(p);
    ct_node *n;
    if (t->type == T_NAME) {
        next(p);
        if (str_is(t->text, "true") || str_is(t->text, "True") || str_is(t->text, "false") ||
            str_is(t->text, "False")) {
            n = node(p, E_CONST, t);
            n->value = ct_bool(t->text.p[0] == 't' || t->text.p[0] == 'T');
        } else if (str_is(t->text, "none") || str_is(t->text, "None")) {
            n = node(p, E_CONST, t);
            n->value = ct_none();
        } else if (with_namespace && is_op(cur(p), ".")) {
            next(p);
            n = node(p, E_NSREF, t);
            n->name = t->text;
            n->kw_names = ct_alloc_array(p->a, 1, sizeof *n->kw_names);
            n->kw_names[0] = expect_name(p);
        } else {
            n = node(p, E_NAME, t);
            n->name = t->text;
        }
    } else if (t->type == T_STRING) {
        /* adjacent literals concatenate: "a" "b" */
        ct_buf b = {0};
        while (cur(p)->type == T_STRING) {
            ct_str s = next(p)->text;
            ct_buf_append(p->a, &b, s.p, s.n);
        }
        n = node(p, E_CONST, t);
        n->value = ct_string((ct_str){b.p ? b.p : "", b.n});
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        next(p);
        n = node(p, E_CONST, t);
        n->value = t->type == T_INT ? ct_int(t->i) : ct_float(t->f);
    } else if (is_op(t, "(")) {
        next(p);
        n = parse_tuple(p, 0, 1, NULL, 1, 0);
        expect_op(p, ")");
    } else if (is_op(t, "[")) {
        next(p);
        n = node(p, E_LIST, t);
        size_t cap = 0;
        while (!is_op(cur(p), "]")) {
            if (n->args.n) expect_op(p, ",");
            if (is_op(cur(p), "]")) break;
            push(p, &n->args, &cap, parse_expression(p, 1));
        }
        expect_op(p, "]");
    } else if (is_op(t, "{")) {
        next(p);
        n = node(p, E_DICT, t);
        size_t cap = 0, vcap = 0;
        while (!is_op(cur(p), "}")) {
            if (n->args.n) expect_op(p, ",");
            if (is_op(cur(p), "}")) break;
            push(p, &n->args, &cap, parse_expression(p, 1));
            expect_op(p, ":");
            push(p, &n->kwargs, &vcap, parse_expression(p, 1));
        }
        expect_op(p, "}");
    } else {
        unexpected(p, "an expression");
    }
    return n;
}

/* One subscript: an expression or a slice a:b:c with any part missing. */
static ct_node *parse_subscribed(parser *p) {
    ct_token *t = cur(p);
    ct_node *start = NULL;
    if (!is_op(t, ":")) {
        start = parse_expression(p, 1);
        if (!is_op(cur(p), ":")) return start;
    }
    next(p); /* the first ':' */
    ct_node *s = node(p, E_SLICE, t);
    s->a = start;
    if (!is_op(cur(p), "]") && !is_op(cur(p), ",") && !is_op(cur(p), ":")) s->b = parse_expression(p, 1);
    if (is_op(cur(p), ":")) {
        next(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ",")) s->c = parse_expression(p, 1);
    }
    return s;
}

static ct_node *parse_postfix(parser *p, ct_node *n) {
    for (;;) {
        ct_token *t = cur(p);
        if (is_op(t, ".")) {
            next(p);
            ct_token *attr = cur(p);
            if (attr->type == T_NAME) {
                next(p);
                ct_node *g = node(p, E_GETATTR, t);
                g->a = n;
                g->name = attr->text;
                n = g;
            } else if (attr->type == T_INT) {
                next(p);
                ct_node *g = node(p, E_GETITEM, t), *k = node(p, E_CONST, attr);
                k->value = ct_int(attr->i);
                g->a = n;
                g->b = k;
                n = g;
            } else {
                unexpected(p, "a name or number");
            }
        } else if (is_op(t, "[")) {
            next(p);
            ct_node *g = node(p, E_GETITEM, t);
            g->a = n;
            ct_node *first = parse_subscribed(p);
            if (is_op(cur(p), ",")) { /* x[a, b] indexes with a tuple */
                ct_node *tup = node(p, E_TUPLE, t);
                size_t cap = 0;
                push(p, &tup->args, &cap, first);
                while (is_op(cur(p), ",")) {
                    next(p);
                    if (is_op(cur(p), "]")) break;
                    push(p, &tup->args, &cap, parse_subscribed(p));
                }
                first = tup;
            }
            g->b = first;
            expect_op(p, "]");
            n = g;
        } else if (is_op(t, "(")) {
            ct_node *c = node(p, E_CALL, t);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static ct_node *parse_filter(parser *p, ct_node *input) {
    ct_token *t = cur(p);
    next(p); /* | */
    ct_node *f = node(p, E_FILTER, t);
    f->a = input;
    f->name = expect_name(p);
    if (is_op(cur(p), ".")) fail_at(p, cur(p), "%s", "dotted filter names are not supported");
    if (is_op(cur(p), "(")) parse_call_args(p, f);
    return f;
}

static ct_node *parse_test(parser *p, ct_node *input) {
    ct_token *t = next(p); /* is */
    int negated = 0;
    if (is_name(cur(p), "not")) {
        next(p);
        negated = 1;
    }
    ct_node *test = node(p, E_TEST, t);
    test->a = input;
    ct_token *name = cur(p);
    if (name->type == T_NAME) {
        test->name = next(p)->text;
    } else if (name->type == T_OP && (is_op(name, "==") || is_op(name, "!=") || is_op(name, "<") ||
                                      is_op(name, "<=") || is_op(name, ">") || is_op(name, ">="))) {
        unexpected(p, "a test name");
    } else {
        unexpected(p, "a test name");
    }
    ct_token *c = cur(p);
    if (is_op(c, "(")) {
        parse_call_args(p, test);
    } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
                is_op(c, "(") || is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        if (is_name(c, "is")) fail_at(p, c, "%s", "You cannot chain multiple tests with is");
        size_t cap = 0;
        push(p, &test->args, &cap, parse_postfix(p, parse_primary(p, 0)));
    }
    if (!negated) return test;
    ct_node *n = node(p, E_NOT, t);
    n->a = test;
    return n;
}

static ct_node *parse_filter_expr(parser *p, ct_node *n) {
    for (;;) {
        if (is_op(cur(p), "|"))
            n = parse_filter(p, n);
        else if (is_name(cur(p), "is"))
            n = parse_test(p, n);
        else if (is_op(cur(p), "(")) {
            ct_node *c = node(p, E_CALL, cur(p));
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else
            return n;
    }
}

static ct_node *parse_unary(parser *p, int with_filter) {
    enter(p);
    ct_token *t = cur(p);
    ct_node *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(p);
        n = node(p, is_op(t, "-") ? E_NEG : E_POS, t);
        n->a = parse_unary(p, 0);
    } else {
        n = parse_primary(p, 0);
    }
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    leave(p);
    return n;
}

static int is_any_op(const ct_token *t, const char *const *ops) {
    for (int k = 0; ops[k]; k++)
        if (is_op(t, ops[k])) return 1;
    return 0;
}

/* One left-associative level of binary operators (ops, NULL-terminated) over operands of the next level. */
static ct_node *parse_binary(parser *p, const char *const *ops, ct_node *(*operand)(parser *)) {
    ct_node *left = operand(p);
    while (is_any_op(cur(p), ops)) {
        ct_token *t = next(p);
        ct_node *n = node(p, E_BINOP, t);
        n->name = t->text;
        n->a = left;
        n->b = operand(p);
        left = n;
    }
    return left;
}

static ct_node *parse_unary_filtered(parser *p) { return parse_unary(p, 1); }
static ct_node *parse_pow(parser *p) {
    static const char *const ops[] = {"**", NULL};
    return parse_binary(p, ops, parse_unary_filtered);
}
static ct_node *parse_math2(parser *p) {
    static const char *const ops[] = {"*", "/", "//", "%", NULL};
    return parse_binary(p, ops, parse_pow);
}
static ct_node *parse_concat(parser *p) {
    static const char *const ops[] = {"~", NULL};
    return parse_binary(p, ops, parse_math2);
}
static ct_node *parse_math1(parser *p) {
    static const char *const ops[] = {"+", "-", NULL};
    return parse_binary(p, ops, parse_concat);
}

static ct_node *parse_compare(parser *p) {
    ct_token *start = cur(p);
    ct_node *expr = parse_math1(p);
    ct_node *cmp = NULL;
    size_t cap = 0, ncap = 0;
    for (;;) {
        ct_token *t = cur(p);
        ct_str op;
        if (is_op(t, "==") || is_op(t, "!=") || is_op(t, "<") || is_op(t, "<=") || is_op(t, ">") ||
            is_op(t, ">=") || is_name(t, "in")) {
            op = next(p)->text;
        } else if (is_name(t, "not") && is_name(peek(p, 1), "in")) {
            next(p);
            next(p);
            op = ct_cstr("not in");
        } else {
            break;
        }
        if (!cmp) {
            cmp = node(p, E_COMPARE, start);
            cmp->a = expr;
        }
        push_name(p, &cmp->kw_names, cmp->args.n, &ncap, op);
        push(p, &cmp->args, &cap, parse_math1(p));
    }
    return cmp ? cmp : expr;
}

static ct_node *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        ct_token *t = next(p);
        enter(p);
        ct_node *n = node(p, E_NOT, t);
        n->a = parse_not(p);
        leave(p);
        return n;
    }
    return parse_compare(p);
}

/* `and` / `or` chains, left-associative */
static ct_node *parse_logical(parser *p, const char *word, ct_node_kind kind, ct_node *(*operand)(parser *)) {
    ct_node *left = operand(p);
    while (is_name(cur(p), word)) {
        ct_node *n = node(p, kind, next(p));
        n->a = left;
        n->b = operand(p);
        left = n;
    }
    return left;
}

static ct_node *parse_and(parser *p) { return parse_logical(p, "and", E_AND, parse_not); }
static ct_node *parse_or(parser *p) { return parse_logical(p, "or", E_OR, parse_and); }

static ct_node *parse_condexpr(parser *p) {
    ct_node *expr = parse_or(p);
    while (is_name(cur(p), "if")) {
        ct_token *t = next(p);
        ct_node *n = node(p, E_COND, t);
        n->a = expr;
        n->b = parse_or(p);
        if (is_name(cur(p), "else")) {
            next(p);
            n->c = parse_condexpr(p);
        }
        expr = n;
    }
    return expr;
}

static ct_node *parse_expression(parser *p, int with_condexpr) {
    enter(p);
    ct_node *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

static int is_tuple_end(parser *p, const char *extra_end) {
    ct_token *t = cur(p);
    return t->type == T_VAR_END || t->type == T_BLOCK_END || is_op(t, ")") ||
           (extra_end && is_name(t, extra_end));
}

static ct_node *parse_tuple(parser *p, int simplified, int with_condexpr, const char *extra_end,
                            int explicit_parens, int with_namespace) {
    ct_token *start = cur(p);
    ct_node *tup = node(p, E_TUPLE, start);
    size_t cap = 0;
    int is_tuple = 0;
    for (;;) {
        if (tup->args.n) expect_op(p, ",");
        if (is_tuple_end(p, extra_end)) break;
        push(p, &tup->args, &cap,
             simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr));
        if (is_op(cur(p), ","))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (tup->args.n) return tup->args.v[0];
        if (!explicit_parens) unexpected(p, "an expression");
    }
    return tup;
}

/* ------------------------------------------------------------------ statements */

static ct_node_list parse_body(parser *p, const char *const *end_tags);

/* Assignment targets of for and set: names (or ns.attr for set), optionally several (unpacking). */
static void parse_targets(parser *p, ct_node *stmt, const char *extra_end, int with_namespace) {
    ct_node *t = parse_tuple(p, 1, 1, extra_end, 0, with_namespace);
    if (t->kind == E_TUPLE) {
        stmt->args = t->args;
        stmt->unpack = 1;
    } else {
        stmt->args.v = ct_alloc_array(p->a, 1, sizeof *stmt->args.v);
        stmt->args.v[0] = t;
        stmt->args.n = 1;
    }
    for (size_t k = 0; k < stmt->args.n; k++) {
        ct_node *x = stmt->args.v[k];
        if (x->kind != E_NAME && x->kind != E_NSREF) fail_at(p, cur(p), "%s", "can only assign to names");
        if (x->kind == E_NSREF && stmt->unpack)
            fail_at(p, cur(p), "%s", "cannot unpack into a namespace attribute");
        if (x->kind == E_NAME && (str_is(x->name, "loop") && stmt->kind == S_FOR))
            fail_at(p, cur(p), "%s", "cannot assign to 'loop'");
    }
}

static void end_block(parser *p) { expect_type(p, T_BLOCK_END, "end of statement block"); }

/* After a body that stopped at `{% tag`: consumes the tag name (the caller has checked it). */
static ct_str body_end_tag(parser *p) { return next(p)->text; }

static ct_node *parse_if(parser *p, ct_token *t) {
    ct_node *n = node(p, S_IF, t);
    n->a = parse_tuple(p, 0, 0, NULL, 0, 0);
    end_block(p);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    n->body = parse_body(p, ends);
    ct_token *tag = cur(p);
    ct_str which = body_end_tag(p);
    if (str_is(which, "elif")) {
        ct_node *elif = parse_if(p, tag);
        n->else_body.v = ct_alloc_array(p->a, 1, sizeof *n->else_body.v);
        n->else_body.v[0] = elif;
        n->else_body.n = 1;
        return n; /* the nested if consumed the endif */
    }
    if (str_is(which, "else")) {
        end_block(p);
        static const char *const endif[] = {"endif", NULL};
        n->else_body = parse_body(p, endif);
        next(p);
    }
    end_block(p);
    return n;
}

static ct_node *parse_for(parser *p, ct_token *t) {
    ct_node *n = node(p, S_FOR, t);
    parse_targets(p, n, "in", 0);
    if (!is_name(cur(p), "in")) unexpected(p, "'in'");
    next(p);
    n->a = parse_tuple(p, 0, 0, "recursive", 0, 0);
    if (is_name(cur(p), "if")) {
        next(p);
        n->b = parse_expression(p, 1);
    }
    if (is_name(cur(p), "recursive")) fail_at(p, cur(p), "%s", "recursive for loops are not supported");
    end_block(p);
    static const char *const ends[] = {"endfor", "else", NULL};
    p->loops++;
    n->body = parse_body(p, ends);
    p->loops--;
    if (str_is(body_end_tag(p), "else")) {
        end_block(p);
        static const char *const endfor[] = {"endfor", NULL};
        n->else_body = parse_body(p, endfor);
        next(p);
    }
    end_block(p);
    return n;
}

static ct_node *parse_set(parser *p, ct_token *t) {
    ct_node *n = node(p, S_SET, t);
    parse_targets(p, n, NULL, 1);
    if (is_op(cur(p), "=")) {
        next(p);
        n->a = parse_tuple(p, 0, 1, NULL, 0, 0);
        end_block(p);
        return n;
    }
    /* {% set x %}...{% endset %}, optionally {% set x | filter %} */
    n->kind = S_SET_BLOCK;
    if (n->unpack) unexpected(p, "'='");
    if (is_op(cur(p), "|")) {
        n->a = parse_filter(p, NULL);
        while (is_op(cur(p), "|")) n->a = parse_filter(p, n->a);
    }
    end_block(p);
    static const char *const ends[] = {"endset", NULL};
    n->body = parse_body(p, ends);
    next(p);
    end_block(p);
    return n;
}

static ct_node *parse_macro(parser *p, ct_token *t) {
    ct_node *n = node(p, S_MACRO, t);
    n->name = expect_name(p);
    expect_op(p, "(");
    size_t cap = 0, ncap = 0;
    while (!is_op(cur(p), ")")) {
        if (n->args.n) expect_op(p, ",");
        ct_str param = expect_name(p);
        push_name(p, &n->kw_names, n->args.n, &ncap, param);
        ct_node *def = NULL;
        if (is_op(cur(p), "=")) {
            next(p);
            def = parse_expression(p, 1);
        } else if (n->args.n && n->args.v[n->args.n - 1]) {
            fail_at(p, cur(p), "%s", "non-default argument follows default argument");
        }
        push(p, &n->args, &cap, def);
    }
    expect_op(p, ")");
    end_block(p);
    static const char *const ends[] = {"endmacro", NULL};
    int loops = p->loops;
    p->loops = 0;
    n->body = parse_body(p, ends);
    p->loops = loops;
    next(p);
    if (cur(p)->type == T_NAME) next(p); /* {% endmacro name %} */
    end_block(p);
    return n;
}

static ct_node *parse_scope(parser *p, ct_token *t, int is_with) {
    ct_node *n = node(p, S_SCOPE, t);
    if (is_with) { /* {% with a = 1, b = 2 %} */
        size_t cap = 0, ncap = 0;
        while (cur(p)->type != T_BLOCK_END) {
            if (n->args.n) expect_op(p, ",");
            push_name(p, &n->kw_names, n->args.n, &ncap, expect_name(p));
            expect_op(p, "=");
            push(p, &n->args, &cap, parse_expression(p, 1));
        }
    }
    end_block(p);
    static const char *const end_with[] = {"endwith", NULL}, *const end_gen[] = {"endgeneration", NULL};
    n->body = parse_body(p, is_with ? end_with : end_gen);
    next(p);
    end_block(p);
    return n;
}

static ct_node *parse_statement(parser *p) {
    ct_token *t = cur(p);
    if (t->type != T_NAME) unexpected(p, "a tag name");
    next(p);
    enter(p);
    ct_node *n;
    if (str_is(t->text, "if")) {
        n = parse_if(p, t);
    } else if (str_is(t->text, "for")) {
        n = parse_for(p, t);
    } else if (str_is(t->text, "set")) {
        n = parse_set(p, t);
    } else if (str_is(t->text, "macro")) {
        n = parse_macro(p, t);
    } else if (str_is(t->text, "break") || str_is(t->text, "continue")) {
        n = node(p, t->text.p[0] == 'b' ? S_BREAK : S_CONTINUE, t);
        if (!p->loops) fail_at(p, t, "'%s' outside a loop", t->text.p[0] == 'b' ? "break" : "continue");
        end_block(p);
    } else if (str_is(t->text, "print")) {
        n = node(p, S_OUTPUT, t);
        n->a = parse_tuple(p, 0, 1, NULL, 0, 0);
        end_block(p);
    } else if (str_is(t->text, "with") || str_is(t->text, "generation")) {
        n = parse_scope(p, t, t->text.p[0] == 'w');
    } else {
        static const char *const known[] = {"block",  "extends", "include",    "import", "from",
                                            "filter", "call",    "autoescape", "do",     NULL};
        for (int k = 0; known[k]; k++)
            if (str_is(t->text, known[k]))
                fail_at(p, t, "the '%s' tag is not supported in chat templates", known[k]);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(t->text.n > 40 ? 40 : t->text.n), t->text.p);
        fail_at(p, t, "unknown tag '%s'", name);
    }
    leave(p);
    return n;
}

/* Statements until `{% <one of end_tags>` (left as the current token) or, with end_tags NULL, the end. */
static ct_node_list parse_body(parser *p, const char *const *end_tags) {
    ct_node_list body = {0};
    size_t cap = 0;
    for (;;) {
        ct_token *t = cur(p);
        if (t->type == T_EOF) {
            if (end_tags) {
                char e[64];
                snprintf(e, sizeof e, "'{%% %s %%}'", end_tags[0]);
                unexpected(p, e);
            }
            return body;
        }
        if (t->type == T_DATA) {
            next(p);
            ct_node *n = node(p, S_DATA, t);
            n->name = t->text;
            push(p, &body, &cap, n);
        } else if (t->type == T_VAR_BEGIN) {
            next(p);
            ct_node *n = node(p, S_OUTPUT, t);
            n->a = parse_tuple(p, 0, 1, NULL, 0, 0);
            expect_type(p, T_VAR_END, "'}}'");
            push(p, &body, &cap, n);
        } else if (t->type == T_BLOCK_BEGIN) {
            next(p);
            for (int k = 0; end_tags && end_tags[k]; k++)
                if (is_name(cur(p), end_tags[k])) return body;
            push(p, &body, &cap, parse_statement(p));
        } else {
            unexpected(p, "template text or a tag");
        }
    }
}

ct_node_list ct_parse(ct_arena *a, const char *src, size_t n) {
    parser p = {.a = a};
    ct_lex(a, src, n, &p.t, &p.n);
    ct_node_list body = parse_body(&p, NULL);
    a->line = 0;
    return body;
}
