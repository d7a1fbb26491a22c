/* Binding call arguments to named parameters, as Python does for the builtins' signatures. */
#ifndef SQ_CHAT_ARGS_H
#define SQ_CHAT_ARGS_H

#include "chat/eval.h"

enum { CT_MAX_PARAMS = 8 };

/* Binds args to params (a NULL-terminated list of names; a leading '*' marks a name that only a keyword can
 * set). out[k] gets the argument for params[k] or stays CT_UNDEFINED when none was given. Fails on too many
 * positional arguments, unknown or repeated keywords. `what` names the callee in errors. */
void ct_bind(ct_render *r, const char *what, const ct_args *args, const char *const *params, ct_value *out);
/* Whether a bound parameter was given: ct_bind marks the others as undefined with no message (a NULL text),
 * which no value of a template has (ct_undefinedf always writes one). */
static inline int ct_given(const ct_value *v) { return v->type != CT_UNDEFINED || v->s.p != NULL; }

/* Argument checks: fail with "<what>: <param> must be ..." unless v has the type. */
ct_str ct_arg_str(ct_render *r, const char *what, const char *param, const ct_value *v);
int64_t ct_arg_int(ct_render *r, const char *what, const char *param, const ct_value *v);

#endif
