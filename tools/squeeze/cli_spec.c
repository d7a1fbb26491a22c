/* The speculative decoding flags shared by the verbs that generate: their checks, the draft model's loading
 * and context, and the statistics line. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_spec_check(const char *verb, const cli_spec_args *a) {
    const char *m = a->method;
    int draft = !strcmp(m, "draft"), self = !strcmp(m, "self"), tree = !strcmp(m, "tree");
    if (draft && !a->draft_path) return cli_usage_error(verb, "--spec draft needs --draft MODEL");
    if (self && a->skip_layers.n == 0) return cli_usage_error(verb, "--spec self needs --skip-layers LIST");
    if (a->draft_path && !draft && !tree)
        return cli_usage_error(verb, "--draft is the draft model of --spec draft or --spec tree");
    if (a->skip_layers.n && !self && !tree)
        return cli_usage_error(verb, "--skip-layers is for --spec self or --spec tree");
    if (a->draft_path && a->skip_layers.n)
        return cli_usage_error(verb,
                               "give a draft model (--draft) or blocks to skip (--skip-layers), not both");
    if (strcmp(a->draft_k, "auto")) {
        char *end;
        long k = strtol(a->draft_k, &end, 10);
        if (*end || end == a->draft_k || k < 1 || k > SQ_SPEC_MAX_K)
            return cli_usage_error(verb, "--draft-k %s: give 1..%d or auto", a->draft_k, SQ_SPEC_MAX_K);
    }
    return CLI_CONTINUE;
}

sq_error *cli_spec_open(const cli_spec_args *a, const sq_model *target, const sq_load_options *lo,
                        const sq_context_options *co, cli_spec *out) {
    *out = (cli_spec){0};
    const char *m = a->method;
    if (!strcmp(m, "none")) return NULL;
    sq_spec_params *p = &out->params;
    int tree = !strcmp(m, "tree");
    p->k_auto = !strcmp(a->draft_k, "auto");
    p->k = p->k_auto ? 4 : atoi(a->draft_k);
    p->tree_width = tree ? (int)a->tree_width : 0;
    p->ngram_n = (int)a->ngram_n;
    if (a->draft_path) {
        p->draft = SQ_DRAFT_MODEL;
        sq_error *err = cli_load_model(a->draft_path, lo, &out->draft_model);
        if (!err) err = sq_spec_check_vocab(target, out->draft_model);
        if (!err && co) err = sq_context_create(out->draft_model, co, &out->draft_ctx);
        if (err) {
            cli_spec_close(out);
            return err;
        }
        p->draft_ctx = out->draft_ctx;
    } else if (a->skip_layers.n) {
        p->draft = SQ_DRAFT_SELF;
        p->skip_layers = a->skip_layers.v;
        p->n_skip_layers = (int)a->skip_layers.n;
    } else {
        p->draft = SQ_DRAFT_NGRAM;
    }
    return NULL;
}

void cli_spec_close(cli_spec *s) {
    sq_context_free(s->draft_ctx);
    sq_model_free(s->draft_model);
    *s = (cli_spec){0};
}

void cli_spec_print_stats(FILE *out, const cli_spec_args *a, const sq_spec_stats *st) {
    double total = st->draft_seconds + st->target_seconds;
    fprintf(out, "speculative %s: %lld target steps, %.2f tokens per step (%.2f drafts accepted of %.2f)",
            a->method, (long long)st->steps, st->steps ? (double)st->generated / st->steps : 0,
            st->steps ? (double)st->accepted / st->steps : 0,
            st->steps ? (double)st->drafted / st->steps : 0);
    fprintf(out, " | acceptance by position:");
    for (int d = 0; d < SQ_SPEC_MAX_K && st->reached[d]; d++)
        fprintf(out, " %.2f", (double)st->accepted_at[d] / st->reached[d]);
    fprintf(out, " | draft %.3f s (%.0f%%), target %.3f s (%.0f%%)", st->draft_seconds,
            total > 0 ? 100 * st->draft_seconds / total : 0, st->target_seconds,
            total > 0 ? 100 * st->target_seconds / total : 0);
    if (!strcmp(a->draft_k, "auto")) fprintf(out, " | k at the end %d", st->k);
    fputc('\n', out);
}
