/* Expert pruning by routing frequency (SQ_PRUNE_EXPERTS): the calibration text runs through the model once,
 * the router tap (SQ_TAP_ROUTER) counts how often each block's experts are among a token's top k (the
 * engine's own choice, sq_moe_top_k), and every block then loses its n_remove_experts least chosen experts:
 * their matrices leave the 3-D expert tensors and their rows the router, all blocks in one edit (one expert
 * count for the model, as every format stores it). The kept experts keep their order, so the pruned model
 * routes each token as the original would with the removed experts' router logits at minus infinity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/moe_route.h"

typedef struct route_counts {
    int n_experts, top_k;
    int64_t *chosen; /* [n_layers][n_experts]: tokens whose top k held the expert */
    int64_t *tokens; /* [n_layers]: tokens routed */
} route_counts;

static void count_routes(void *user, int layer, sq_tap_point point, int expert, const float *logits, int n,
                         int width) {
    route_counts *c = user;
    (void)expert;
    if (point != SQ_TAP_ROUTER || width != c->n_experts) return;
    int64_t *row = c->chosen + (size_t)layer * (size_t)width;
    for (int t = 0; t < n; t++) {
        const float *x = logits + (size_t)t * (size_t)width;
        int picked[SQ_MOE_MAX_TOPK];
        sq_moe_top_k(x, width, c->top_k, picked);
        for (int k = 0; k < c->top_k; k++) row[picked[k]]++;
    }
    c->tokens[layer] += n;
}

static SQ_NODISCARD sq_error *measure_routes(const sq_model *model, const sq_prune_options *o,
                                             route_counts *c) {
    const sq_calib_samples *s = o->calib;
    sq_context *ctx;
    SQ_TRY(sq_context_create(model, &(sq_context_options){.n_ctx = s->seq_len, .n_threads = o->n_threads},
                             &ctx));
    sq_context_set_tap(ctx, count_routes, c);
    sq_error *err = NULL;
    for (int i = 0; i < s->n_samples && !err; i++) {
        sq_seq_batch b = {.seq_id = 0,
                          .tokens = s->ids + (size_t)i * (size_t)s->seq_len,
                          .n_tokens = s->seq_len,
                          .logits_mode = SQ_LOGITS_NONE};
        err = sq_forward(ctx, &b, 1);
        if (!err) err = sq_seq_truncate(ctx, 0, 0);
        if (!err && o->progress) o->progress(o->progress_user, i + 1, s->n_samples);
    }
    sq_context_free(ctx);
    return err;
}

/* dst gets the experts keep[0 .. n_keep) of t, whole matrices (or router rows), in the tensor's own format.
 */
static void gather_experts(const sq_tensor *t, const int *keep, int n_keep, int n_experts,
                           unsigned char *dst) {
    const size_t each = t->nbytes / (size_t)n_experts;
    for (int k = 0; k < n_keep; k++)
        memcpy(dst + (size_t)k * each, (const unsigned char *)t->data + (size_t)keep[k] * each, each);
}

sq_error *sq_prune_experts(sq_model *model, const sq_prune_options *o, sq_prune_result *res) {
    const int L = model->cfg.n_layers, E = model->cfg.n_experts, K = o->n_remove_experts, keep_n = E - K;
    static const char *const suffixes[] = {SQ_NAME_FFN_GATE_INP, SQ_NAME_FFN_GATE_EXPS, "ffn_up_exps.weight",
                                           "ffn_down_exps.weight"};
    enum { N_CUT = sizeof suffixes / sizeof *suffixes };
    route_counts c = {.n_experts = E,
                      .top_k = model->cfg.n_experts_used,
                      .chosen = calloc((size_t)L * (size_t)E, sizeof *c.chosen),
                      .tokens = calloc((size_t)L, sizeof *c.tokens)};
    res->scores = calloc((size_t)L * (size_t)E, sizeof *res->scores);
    res->removed = calloc((size_t)L * (size_t)K, sizeof *res->removed);
    int *keep = calloc((size_t)L * (size_t)keep_n, sizeof *keep);
    sq_tensor_edit *edits = calloc((size_t)L * N_CUT, sizeof *edits);
    char(*names)[SQ_TENSOR_NAME_MAX] = calloc((size_t)L * N_CUT, sizeof *names);
    sq_error *err = c.chosen && c.tokens && res->scores && res->removed && keep && edits && names
                        ? NULL
                        : sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    if (!err) err = measure_routes(model, o, &c);
    for (int l = 0; l < L && !err; l++) {
        double *freq = res->scores + (size_t)l * (size_t)E; /* the share of tokens that chose each expert */
        for (int e = 0; e < E; e++)
            freq[e] =
                c.tokens[l] ? (double)c.chosen[(size_t)l * (size_t)E + (size_t)e] / (double)c.tokens[l] : 0;
        if (sq_prune_split_lowest(freq, E, K, res->removed + (size_t)l * (size_t)K,
                                  keep + (size_t)l * (size_t)keep_n) < 0)
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    }
    for (int l = 0; l < L && !err; l++)
        for (int i = 0; i < N_CUT && !err; i++) {
            char *name = names[l * N_CUT + i];
            snprintf(name, SQ_TENSOR_NAME_MAX, "blk.%d.%s", l, suffixes[i]);
            const sq_tensor *t = sq_model_find_tensor(model, name);
            sq_tensor_edit *ed = &edits[l * N_CUT + i];
            unsigned char *data = t ? malloc(t->nbytes / (size_t)E * (size_t)keep_n) : NULL;
            if (!t || !data) {
                free(data);
                err = t ? sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", name)
                        : sq_errorf(SQ_ERR_FORMAT, "prune: %s is missing", name);
                break;
            }
            gather_experts(t, keep + (size_t)l * (size_t)keep_n, keep_n, E, data);
            *ed = (sq_tensor_edit){.name = name,
                                   .ndim = t->ndim,
                                   .data = data,
                                   .nbytes = t->nbytes / (size_t)E * (size_t)keep_n};
            memcpy(ed->shape, t->shape, sizeof ed->shape);
            ed->shape[0] = keep_n;
        }
    if (!err) err = sq_model_edit_tensors(model, edits, L * N_CUT);
    if (!err) res->n_removed = K, res->n_experts_before = E;
    for (int i = 0; edits && i < L * N_CUT; i++) free((void *)edits[i].data);
    free(edits);
    free(names);
    free(keep);
    free(c.chosen);
    free(c.tokens);
    return err;
}
