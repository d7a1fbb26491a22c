#include "chat/args.h"

void ct_bind(ct_render *r, const char *what, const ct_args *args, const char *const *params, ct_value *out) {
    size_t n_params = 0, n_positional = 0;
    while (params[n_params]) {
        if (params[n_params][0] != '*') n_positional = n_params + 1;
        out[n_params++] = (ct_value){.type = CT_UNDEFINED};
    }
    if (args->n_pos > n_positional)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s takes at most %zu positional argument(s), got %zu", what,
                n_positional, args->n_pos);
    for (size_t k = 0; k < args->n_pos; k++) out[k] = args->pos[k];
    for (size_t k = 0; k < args->n_kw; k++) {
        ct_str name = args->kw_names[k];
        size_t p = 0;
        for (; p < n_params; p++) {
            const char *pn = params[p] + (params[p][0] == '*');
            if (strlen(pn) == name.n && !memcmp(pn, name.p, name.n)) break;
        }
        if (p == n_params)
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s got an unexpected keyword argument '%.*s'", what,
                    (int)name.n, name.p);
        if (ct_given(&out[p]))
            ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s got multiple values for argument '%.*s'", what, (int)name.n,
                    name.p);
        out[p] = args->kw[k];
    }
}

ct_str ct_arg_str(ct_render *r, const char *what, const char *param, const ct_value *v) {
    if (v->type != CT_STRING)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s: %s must be a string, not %s", what, param, ct_type_name(v));
    return v->s;
}

int64_t ct_arg_int(ct_render *r, const char *what, const char *param, const ct_value *v) {
    if (v->type == CT_BOOL) return v->b;
    if (v->type != CT_INT)
        ct_fail(r->a, SQ_ERR_INVALID_ARG, "%s: %s must be an integer, not %s", what, param, ct_type_name(v));
    return v->i;
}
