/* Compression recipes (squeeze.h "compression recipes", docs/recipes.md): a JSON list of pruning and
 * quantization steps, parsed strictly here, then run in order through sq_prune and sq_quantize_model, with
 * the model measured before the first step and after each (sq_perplexity against the original, sq_bench_run
 * beside it). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress/prune/prune.h"
#include "core/error.h"
#include "squeeze.h"

enum { MAX_KEEP = 32, MAX_TEXT = 64 };

typedef struct recipe_step {
    int is_quantize;
    sq_prune_options prune; /* calib, threads and progress are filled in at run time */
    char type[MAX_TEXT], method[MAX_TEXT];
    double damp;
    int act_order;
    int n_keep;
    char keep_pattern[MAX_KEEP][MAX_TEXT * 2], keep_type[MAX_KEEP][MAX_TEXT];
    char label[128];
} recipe_step;

struct sq_recipe {
    char name[256];
    int n_steps;
    recipe_step steps[SQ_RECIPE_MAX_STEPS];
};

/* ---------------------------------------------------------------- parsing */

/* What a parse error names: the recipe, the step and the action. */
typedef struct where {
    const char *source;
    int step; /* 1-based; 0: the recipe itself */
    const char *action;
} where;

static SQ_NODISCARD sq_error *bad(const where *w, const char *key, const char *what) {
    const char *src = w->source ? w->source : "recipe";
    if (w->step == 0) return sq_errorf(SQ_ERR_FORMAT, "%s: \"%s\": %s", src, key, what);
    return sq_errorf(SQ_ERR_FORMAT, "%s: step %d (%s): \"%s\": %s", src, w->step, w->action ? w->action : "?",
                     key, what);
}

static SQ_NODISCARD sq_error *get_number(const where *w, const cJSON *v, double lo, double hi, int hi_open,
                                         double *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        (hi_open ? v->valuedouble >= hi : v->valuedouble > hi)) {
        char msg[128];
        snprintf(msg, sizeof msg, "expected a number in [%g, %g%c", lo, hi, hi_open ? ')' : ']');
        return bad(w, v->string, msg);
    }
    *out = v->valuedouble;
    return NULL;
}

static SQ_NODISCARD sq_error *get_int(const where *w, const cJSON *v, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < lo || v->valuedouble > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected a whole number in [%d, %d]", lo, hi);
        return bad(w, v->string, msg);
    }
    *out = (int)v->valuedouble;
    return NULL;
}

static SQ_NODISCARD sq_error *get_text(const where *w, const cJSON *v, char *out, size_t cap) {
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= cap) {
        char msg[96];
        snprintf(msg, sizeof msg, "expected a non-empty string of at most %zu bytes", cap - 1);
        return bad(w, v->string, msg);
    }
    strcpy(out, v->valuestring);
    return NULL;
}

/* Index of s in the NULL-terminated list, or -1. */
static int choice(const char *s, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i])) return i;
    return -1;
}

static const char *const prune_methods[] = {"magnitude", "wanda",   "sparsegpt", "width",
                                            "depth",     "lowrank", "asvd",      NULL};
static const char *const criteria[] = {"ppl", "magnitude", "taylor", NULL}; /* sq_depth_criterion order */

/* The keys each pruning method takes besides "method" (sq_prune_method order). */
static const char *const prune_keys[][4] = {
    {"sparsity", "nm", NULL},
    {"sparsity", "nm", NULL},
    {"sparsity", "nm", NULL},
    {"heads", "ffn", NULL},
    {"remove", "criterion", NULL},
    {"rank_ratio", "param_ratio", NULL},
    {"rank_ratio", "param_ratio", "alpha"},
};

static SQ_NODISCARD sq_error *parse_prune(const where *w, const cJSON *o, recipe_step *st) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
    char method[MAX_TEXT];
    if (!m) return bad(w, "method", "missing (magnitude, wanda, sparsegpt, width, depth, lowrank or asvd)");
    SQ_TRY(get_text(w, m, method, sizeof method));
    int mi = choice(method, prune_methods);
    if (mi < 0)
        return bad(w, "method", "expected magnitude, wanda, sparsegpt, width, depth, lowrank or asvd");
    sq_prune_options *p = &st->prune;
    p->method = (sq_prune_method)mi;
    int have_amount = 0;
    char amount[64] = "";
    for (const cJSON *v = o->child; v; v = v->next) {
        if (!strcmp(v->string, "method")) continue;
        if (choice(v->string, prune_keys[mi]) < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "not a key of prune method %s", method);
            return bad(w, v->string, msg);
        }
        if (!strcmp(v->string, "sparsity")) {
            SQ_TRY(get_number(w, v, 0, 1, 1, &p->sparsity));
            snprintf(amount, sizeof amount, " %g%%", 100 * p->sparsity);
            have_amount++;
        } else if (!strcmp(v->string, "nm")) {
            char c;
            if (!cJSON_IsString(v) || sscanf(v->valuestring, "%d:%d%c", &p->nm_n, &p->nm_m, &c) != 2 ||
                p->nm_n < 1 || p->nm_n >= p->nm_m || p->nm_m > 256)
                return bad(w, "nm", "expected \"N:M\" with 0 < N < M <= 256, e.g. \"2:4\"");
            snprintf(amount, sizeof amount, " %d:%d", p->nm_n, p->nm_m);
            have_amount++;
        } else if (!strcmp(v->string, "heads")) {
            SQ_TRY(get_number(w, v, 0, 1, 1, &p->heads));
        } else if (!strcmp(v->string, "ffn")) {
            SQ_TRY(get_number(w, v, 0, 1, 1, &p->ffn));
        } else if (!strcmp(v->string, "rank_ratio")) {
            SQ_TRY(get_number(w, v, 0, 1, 0, &p->rank_ratio));
            if (p->rank_ratio == 0) return bad(w, "rank_ratio", "expected a number in (0, 1]");
            snprintf(amount, sizeof amount, " rank %g%%", 100 * p->rank_ratio);
            have_amount++;
        } else if (!strcmp(v->string, "param_ratio")) {
            SQ_TRY(get_number(w, v, 0, 1, 1, &p->param_ratio));
            if (p->param_ratio == 0) return bad(w, "param_ratio", "expected a number in (0, 1)");
            snprintf(amount, sizeof amount, " params %g%%", 100 * p->param_ratio);
            have_amount++;
        } else if (!strcmp(v->string, "alpha")) {
            SQ_TRY(get_number(w, v, 0, 4, 0, &p->asvd_alpha));
            if (p->asvd_alpha == 0) return bad(w, "alpha", "expected a number in (0, 4]");
        } else if (!strcmp(v->string, "remove")) {
            SQ_TRY(get_int(w, v, 1, 1 << 16, &p->n_remove));
        } else { /* criterion */
            char c[MAX_TEXT];
            SQ_TRY(get_text(w, v, c, sizeof c));
            int ci = choice(c, criteria);
            if (ci < 0) return bad(w, "criterion", "expected ppl, magnitude or taylor");
            p->criterion = (sq_depth_criterion)ci;
        }
    }
    switch (p->method) {
    case SQ_PRUNE_WIDTH:
        if (p->heads == 0 && p->ffn == 0)
            return bad(w, "heads", "width pruning needs \"heads\" or \"ffn\" above 0");
        snprintf(st->label, sizeof st->label, "prune width heads %g%% ffn %g%%", 100 * p->heads,
                 100 * p->ffn);
        break;
    case SQ_PRUNE_DEPTH:
        if (p->n_remove == 0) return bad(w, "remove", "missing (how many blocks depth pruning removes)");
        snprintf(st->label, sizeof st->label, "prune depth -%d (%s)", p->n_remove, criteria[p->criterion]);
        break;
    case SQ_PRUNE_LOWRANK:
    case SQ_PRUNE_ASVD:
        if (have_amount != 1)
            return bad(w, "rank_ratio", "give exactly one of \"rank_ratio\" and \"param_ratio\"");
        snprintf(st->label, sizeof st->label, "prune %.16s%s", method, amount);
        break;
    default:
        if (have_amount != 1) return bad(w, "sparsity", "give exactly one of \"sparsity\" and \"nm\"");
        snprintf(st->label, sizeof st->label, "prune %.16s%s", method, amount); /* a method name is short */
    }
    return NULL;
}

static const char *const quant_methods[] = {"rtn", "gptq", "awq", NULL};

static SQ_NODISCARD sq_error *parse_quantize(const where *w, const cJSON *o, recipe_step *st) {
    st->is_quantize = 1;
    strcpy(st->method, "rtn");
    for (const cJSON *v = o->child; v; v = v->next) {
        if (!strcmp(v->string, "type")) {
            SQ_TRY(get_text(w, v, st->type, sizeof st->type));
        } else if (!strcmp(v->string, "method")) {
            SQ_TRY(get_text(w, v, st->method, sizeof st->method));
            if (choice(st->method, quant_methods) < 0) return bad(w, "method", "expected rtn, gptq or awq");
        } else if (!strcmp(v->string, "damp")) {
            SQ_TRY(get_number(w, v, 0, 1, 0, &st->damp));
            if (st->damp == 0) return bad(w, "damp", "expected a number in (0, 1]");
        } else if (!strcmp(v->string, "act_order")) {
            if (!cJSON_IsBool(v)) return bad(w, "act_order", "expected true or false");
            st->act_order = cJSON_IsTrue(v);
        } else if (!strcmp(v->string, "keep")) {
            if (!cJSON_IsObject(v)) return bad(w, "keep", "expected an object {\"PATTERN\": \"TYPE\", ...}");
            for (const cJSON *k = v->child; k; k = k->next) {
                if (st->n_keep == MAX_KEEP) return bad(w, "keep", "more than 32 patterns");
                if (!k->string[0] || strlen(k->string) >= sizeof st->keep_pattern[0])
                    return bad(w, "keep", "a pattern is empty or longer than 127 bytes");
                strcpy(st->keep_pattern[st->n_keep], k->string);
                SQ_TRY(get_text(w, k, st->keep_type[st->n_keep], sizeof st->keep_type[0]));
                st->n_keep++;
            }
        } else {
            return bad(w, v->string, "not a key of quantize (type, method, damp, act_order, keep)");
        }
    }
    if (!st->type[0]) return bad(w, "type", "missing (a format or preset such as q4_k_m, q8_0)");
    char label[sizeof st->label]; /* apart: GCC cannot tell st->label from st->type */
    snprintf(label, sizeof label, "quantize %s %s", st->type, st->method);
    memcpy(st->label, label, sizeof label);
    return NULL;
}

static SQ_NODISCARD sq_error *parse_recipe(const cJSON *root, const char *source, sq_recipe *r) {
    where w = {.source = source};
    if (!cJSON_IsObject(root)) return bad(&w, "(top level)", "expected a JSON object");
    const cJSON *steps = NULL;
    for (const cJSON *v = root->child; v; v = v->next) {
        if (!strcmp(v->string, "name")) {
            if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof r->name)
                return bad(&w, "name", "expected a string of at most 255 bytes");
            strcpy(r->name, v->valuestring);
        } else if (!strcmp(v->string, "steps")) {
            steps = v;
        } else {
            return bad(&w, v->string, "not a key of a recipe (name, steps)");
        }
    }
    int n = cJSON_GetArraySize(steps);
    if (!cJSON_IsArray(steps) || n < 1 || n > SQ_RECIPE_MAX_STEPS)
        return bad(&w, "steps", "expected an array of 1 to 16 steps");
    for (const cJSON *s = steps->child; s; s = s->next) {
        w.step = r->n_steps + 1;
        w.action = NULL;
        recipe_step *st = &r->steps[r->n_steps++];
        if (!cJSON_IsObject(s) || cJSON_GetArraySize(s) != 1)
            return bad(&w, "(step)",
                       "expected an object with one action: {\"prune\": {...}} or "
                       "{\"quantize\": {...}}");
        const cJSON *a = s->child;
        w.action = a->string;
        if (!cJSON_IsObject(a)) return bad(&w, a->string, "expected an object");
        if (!strcmp(a->string, "prune"))
            SQ_TRY(parse_prune(&w, a, st));
        else if (!strcmp(a->string, "quantize"))
            SQ_TRY(parse_quantize(&w, a, st));
        else
            return bad(&w, a->string, "not an action (prune, quantize)");
    }
    return NULL;
}

sq_error *sq_recipe_parse(const char *json, size_t len, const char *source, sq_recipe **out) {
    *out = NULL;
    const char *src = source ? source : "recipe";
    if (len > (1u << 20)) return sq_errorf(SQ_ERR_FORMAT, "%s: over 1 MiB, not a recipe", src);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return sq_errorf(SQ_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", src, at);
    }
    sq_recipe *r = calloc(1, sizeof *r);
    sq_error *err = r ? parse_recipe(root, source, r) : sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", src);
    cJSON_Delete(root);
    if (err) {
        free(r);
        return err;
    }
    *out = r;
    return NULL;
}

void sq_recipe_free(sq_recipe *recipe) { free(recipe); }
const char *sq_recipe_name(const sq_recipe *recipe) { return recipe->name; }
int sq_recipe_n_steps(const sq_recipe *recipe) { return recipe->n_steps; }

const char *sq_recipe_step_label(const sq_recipe *recipe, int i) {
    return i >= 0 && i < recipe->n_steps ? recipe->steps[i].label : NULL;
}

static int step_needs_calib(const recipe_step *st) {
    if (st->is_quantize) return strcmp(st->method, "rtn") != 0;
    switch (st->prune.method) {
    case SQ_PRUNE_WANDA:
    case SQ_PRUNE_SPARSEGPT:
    case SQ_PRUNE_WIDTH:
    case SQ_PRUNE_ASVD:
        return 1;
    case SQ_PRUNE_DEPTH:
        return st->prune.criterion != SQ_DEPTH_MAGNITUDE;
    default:
        return 0;
    }
}

int sq_recipe_needs_calib(const sq_recipe *recipe) {
    for (int i = 0; i < recipe->n_steps; i++)
        if (step_needs_calib(&recipe->steps[i])) return 1;
    return 0;
}

/* ---------------------------------------------------------------- running */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Fills what r says about the model as it is now: sizes always; quality and speed as the options ask. */
static SQ_NODISCARD sq_error *measure(const sq_model *model, const sq_recipe_options *o, int is_original,
                                      sq_recipe_step_result *r) {
    SQ_TRY(sq_prune_measure(model, &r->n_params, &r->n_nonzero, &r->weight_bytes, &r->n_layers));
    r->bits_per_weight = r->n_params ? 8.0 * (double)r->weight_bytes / (double)r->n_params : 0;
    if (o->eval_ids) {
        sq_ppl_options po = {.protocol = SQ_PPL_WINDOWS,
                             .n_ctx = o->eval_ctx,
                             .n_threads = o->n_threads,
                             .bos_id = o->bos_id,
                             .ref = is_original ? NULL : o->original,
                             .source = "the recipe's evaluation text"};
        sq_ppl_result pr;
        SQ_TRY(sq_perplexity(model, o->eval_ids, o->n_eval_ids, &po, &pr));
        r->has_quality = 1;
        r->ppl = pr.ppl;
        r->ppl_ratio = is_original ? 1 : pr.ppl_ratio;
        r->kl_mean = is_original ? 0 : pr.kl_mean;
        r->top1_agreement = is_original ? 1 : pr.top1_agreement;
        sq_ppl_result_free(&pr);
    }
    if (o->bench) {
        const sq_model *models[2] = {o->original, model};
        sq_bench_result br[2];
        int n = is_original ? 1 : 2;
        SQ_TRY(sq_bench_run(models, n, o->bench, NULL, NULL, br));
        const sq_bench_result *mine = &br[n - 1];
        r->has_speed = 1;
        r->decode_tok_s = mine->decode_tok_s.median;
        r->prefill_tok_s = mine->prefill_tok_s.median;
        r->decode_ratio = br[0].decode_tok_s.median > 0 ? r->decode_tok_s / br[0].decode_tok_s.median : 0;
        r->prefill_ratio = br[0].prefill_tok_s.median > 0 ? r->prefill_tok_s / br[0].prefill_tok_s.median : 0;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *run_step(sq_model *model, const recipe_step *st, const sq_recipe_options *o) {
    if (!st->is_quantize) {
        sq_prune_options p = st->prune;
        p.calib = step_needs_calib(st) ? o->calib : NULL;
        p.n_threads = o->n_threads;
        p.progress = o->progress;
        p.progress_user = o->progress_user;
        sq_prune_result res;
        SQ_TRY(sq_prune(model, &p, &res));
        sq_prune_result_free(&res);
        return NULL;
    }
    sq_quant_keep keep[MAX_KEEP];
    for (int i = 0; i < st->n_keep; i++) keep[i] = (sq_quant_keep){st->keep_pattern[i], st->keep_type[i]};
    const sq_quantize_params q = {.type = st->type,
                                  .method = st->method,
                                  .calib = step_needs_calib(st) ? o->calib : NULL,
                                  .gptq_damp = st->damp,
                                  .gptq_act_order = st->act_order,
                                  .keep = keep,
                                  .n_keep = st->n_keep,
                                  .n_threads = o->n_threads};
    sq_quantize_report *rep = NULL;
    sq_error *err = sq_quantize_model(model, &q, o->progress, o->progress_user, &rep);
    sq_quantize_report_free(rep);
    return err;
}

sq_error *sq_recipe_run(sq_model *model, const sq_recipe *recipe, const sq_recipe_options *o,
                        sq_recipe_step_result *results) {
    if ((o->eval_ids || o->bench) && !o->original)
        return sq_errorf(SQ_ERR_INVALID_ARG, "recipe: measuring quality or speed needs the original model");
    if (o->eval_ids && o->n_eval_ids < 2)
        return sq_errorf(SQ_ERR_INVALID_ARG, "recipe: the evaluation text has fewer than 2 tokens");
    for (int i = 0; i < recipe->n_steps; i++)
        if (step_needs_calib(&recipe->steps[i]) && !o->calib)
            return sq_errorf(SQ_ERR_INVALID_ARG, "recipe: step %d (%s) needs calibration samples", i + 1,
                             recipe->steps[i].label);
    memset(results, 0, (size_t)(recipe->n_steps + 1) * sizeof *results);
    results[0].label = "original";
    SQ_TRY(measure(model, o, 1, &results[0]));
    if (o->on_step) o->on_step(o->user, -1, &results[0]);
    for (int i = 0; i < recipe->n_steps; i++) {
        const recipe_step *st = &recipe->steps[i];
        sq_recipe_step_result *r = &results[i + 1];
        r->label = st->label;
        double t0 = now_s();
        sq_error *err = run_step(model, st, o);
        if (err) return sq_error_wrap(err, "recipe step %d (%s)", i + 1, st->label);
        r->seconds = now_s() - t0;
        SQ_TRY(measure(model, o, 0, r));
        if (o->on_step) o->on_step(o->user, i, r);
    }
    return NULL;
}
