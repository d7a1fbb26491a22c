/* Zero-shot multiple-choice scoring, as lm-evaluation-harness scores loglikelihood requests.
 *
 * Each choice is a (context, continuation) pair. Trailing whitespace of the context moves to the front of
 * the continuation; the scored sequence is whole = [BOS] + encode(context + continuation) (BOS as the
 * tokenizer says unless the caller forces it: sq_eval_options.bos) and the
 * continuation's tokens are those after [BOS] + encode(context) (or after the longest common prefix of the
 * two, where the tokenizer merged across the boundary). A choice's score is the sum of the log-probs of its
 * continuation tokens.
 *
 * Sharing the prefill: an item's choices share the prefix of their token sequences (the whole context for
 * most tasks). B items run as B sequences: one forward call prefills every item's shared prefix but its
 * last token, then one call per choice index appends each item's remaining tokens (the prefix's last token,
 * whose logits predict the first continuation token, and the choice) and truncates the sequence back to
 * the prefix afterwards. Each context is computed once, and every call still carries B sequences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/eval.h"

typedef struct prepared_choice {
    int32_t *ids;
    int len, start; /* positions start..len-1 are the continuation */
} prepared_choice;

typedef struct prepared_item {
    prepared_choice *choices;
    int n_choices, base; /* base: tokens prefilled once and kept while the choices run */
    int truncated;
} prepared_item;

static void prepared_free(prepared_item *p) {
    for (int c = 0; p->choices && c < p->n_choices; c++) free(p->choices[c].ids);
    free(p->choices);
    memset(p, 0, sizeof *p);
}

/* [BOS] + encode(text) */
static SQ_NODISCARD sq_error *encode_with_bos(sq_encode_fn encode, void *user, int bos, const char *text,
                                              size_t len, int32_t **ids, int *n) {
    int32_t *raw = NULL;
    int n_raw = 0;
    SQ_TRY(encode(user, text, len, &raw, &n_raw));
    int extra = bos >= 0;
    int32_t *out = malloc(((size_t)n_raw + 1) * sizeof *out);
    if (!out) {
        free(raw);
        return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    }
    if (extra) out[0] = bos;
    if (n_raw) memcpy(out + extra, raw, (size_t)n_raw * sizeof *out);
    free(raw);
    *ids = out;
    *n = n_raw + extra;
    return NULL;
}

static SQ_NODISCARD sq_error *prepare_choice(sq_encode_fn encode, void *user, int bos, int n_ctx,
                                             const sq_task_request *r, prepared_choice *pc, int *truncated) {
    size_t cl = strlen(r->context), xl = strlen(r->continuation);
    size_t keep = cl;
    while (keep > 0 && (r->context[keep - 1] == ' ' || r->context[keep - 1] == '\t' ||
                        r->context[keep - 1] == '\n' || r->context[keep - 1] == '\r'))
        keep--;
    char *joined = malloc(cl + xl + 1);
    if (!joined) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    memcpy(joined, r->context, cl);
    memcpy(joined + cl, r->continuation, xl + 1);
    int32_t *ctx_ids = NULL;
    int n_ctx_ids = 0;
    sq_error *err = encode_with_bos(encode, user, bos, joined, keep, &ctx_ids, &n_ctx_ids);
    if (!err) err = encode_with_bos(encode, user, bos, joined, cl + xl, &pc->ids, &pc->len);
    free(joined);
    if (err) {
        free(ctx_ids);
        return err;
    }
    int lcp = 0;
    while (lcp < n_ctx_ids && lcp < pc->len && ctx_ids[lcp] == pc->ids[lcp]) lcp++;
    free(ctx_ids);
    pc->start = lcp;
    if (pc->start >= pc->len) return sq_errorf(SQ_ERR_INVALID_ARG, "the continuation encodes to no tokens");
    if (pc->start == 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "nothing precedes the continuation (no BOS, empty context)");
    if (pc->len > n_ctx) {
        /* keep the last n_ctx tokens, as the harness truncates from the left */
        int drop = pc->len - n_ctx;
        if (pc->start - drop < 1)
            return sq_errorf(SQ_ERR_INVALID_ARG, "the continuation's %d tokens do not fit a context of %d",
                             pc->len - pc->start, n_ctx);
        memmove(pc->ids, pc->ids + drop, (size_t)n_ctx * sizeof *pc->ids);
        pc->len = n_ctx;
        pc->start -= drop;
        *truncated = 1;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *prepare_item(sq_encode_fn encode, void *user, int bos, int n_ctx,
                                           const sq_task_item *it, prepared_item *p) {
    p->choices = calloc((size_t)it->n_choices, sizeof *p->choices);
    if (!p->choices) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    p->n_choices = it->n_choices;
    for (int c = 0; c < it->n_choices; c++)
        SQ_TRY(sq_error_wrap(
            prepare_choice(encode, user, bos, n_ctx, &it->choices[c], &p->choices[c], &p->truncated),
            "choice %d", c));
    int shared = p->choices[0].start;
    for (int c = 1; c < p->n_choices; c++) {
        const prepared_choice *a = &p->choices[0], *b = &p->choices[c];
        int k = 0;
        while (k < shared && k < b->start && a->ids[k] == b->ids[k]) k++;
        shared = k;
    }
    p->base = shared > 0 ? shared - 1 : 0;
    return NULL;
}

/* Scores positions start..len-1 of a choice from its logits rows (row r = position base + r). */
static sq_choice_score score_choice(const prepared_choice *pc, int base, const float *logits, int n_vocab) {
    sq_choice_score s = {.n_tokens = pc->len - pc->start, .greedy = 1};
    for (int p = pc->start; p < pc->len; p++) {
        const float *z = logits + (size_t)(p - 1 - base) * n_vocab;
        s.logp += z[pc->ids[p]] - sq_logsumexp(z, n_vocab);
        s.greedy &= sq_argmax(z, n_vocab) == pc->ids[p];
    }
    return s;
}

static SQ_NODISCARD sq_error *run_items(sq_lm *lm, prepared_item *items, int n, sq_seq_batch *seqs,
                                        sq_choice_score **out_scores, float **logits, size_t *logits_cap) {
    int m = 0;
    for (int b = 0; b < n; b++) {
        SQ_TRY(lm->truncate(lm->impl, b, 0));
        if (items[b].base > 0)
            seqs[m++] = (sq_seq_batch){.seq_id = b,
                                       .tokens = items[b].choices[0].ids,
                                       .n_tokens = items[b].base,
                                       .logits_mode = SQ_LOGITS_NONE};
    }
    if (m) SQ_TRY(lm->forward(lm->impl, seqs, m));
    int max_choices = 0;
    for (int b = 0; b < n; b++)
        max_choices = items[b].n_choices > max_choices ? items[b].n_choices : max_choices;
    for (int c = 0; c < max_choices; c++) {
        size_t rows = 0;
        for (int b = 0; b < n; b++)
            if (c < items[b].n_choices) rows += (size_t)(items[b].choices[c].len - items[b].base);
        size_t need = rows * (size_t)lm->n_vocab;
        if (need > *logits_cap) {
            float *bigger = realloc(*logits, need * sizeof **logits);
            if (!bigger) return sq_errorf(SQ_ERR_NOMEM, "out of memory for %zu rows of logits", rows);
            *logits = bigger, *logits_cap = need;
        }
        m = 0;
        size_t off = 0;
        for (int b = 0; b < n; b++) {
            if (c >= items[b].n_choices) continue;
            const prepared_choice *pc = &items[b].choices[c];
            seqs[m++] = (sq_seq_batch){.seq_id = b,
                                       .tokens = pc->ids + items[b].base,
                                       .n_tokens = pc->len - items[b].base,
                                       .logits_mode = SQ_LOGITS_ALL,
                                       .logits = *logits + off};
            off += (size_t)(pc->len - items[b].base) * lm->n_vocab;
        }
        SQ_TRY(lm->forward(lm->impl, seqs, m));
        m = 0;
        for (int b = 0; b < n; b++) {
            if (c >= items[b].n_choices) continue;
            out_scores[b][c] =
                score_choice(&items[b].choices[c], items[b].base, seqs[m++].logits, lm->n_vocab);
            SQ_TRY(lm->truncate(lm->impl, b, items[b].base));
        }
    }
    return NULL;
}

static int argmax_score(const sq_choice_score *s, const sq_task_item *it, int per_byte) {
    int best = 0;
    double best_v = -INFINITY;
    for (int c = 0; c < it->n_choices; c++) {
        double v = per_byte ? s[c].logp / (it->choices[c].norm_bytes > 0 ? it->choices[c].norm_bytes : 1)
                            : s[c].logp;
        if (v > best_v) best_v = v, best = c;
    }
    return best;
}

static double stderr_of(double p, int n) { return n > 1 ? sqrt(p * (1 - p) / (n - 1)) : 0; }

SQ_NODISCARD sq_error *sq_zeroshot_run(sq_lm *lm, sq_encode_fn encode, void *encode_user, const sq_task *task,
                                       const sq_zeroshot_options *o, sq_task_result *res,
                                       sq_choice_score **scores_out) {
    memset(res, 0, sizeof *res);
    if (scores_out) *scores_out = NULL;
    double t0 = sq_monotonic_seconds();
    int batch = o->n_batch > 0 ? o->n_batch : 1;
    if (batch > lm->n_seq_max) batch = lm->n_seq_max;
    int64_t total_choices = 0;
    for (int i = 0; i < task->n_items; i++) total_choices += task->items[i].n_choices;
    sq_choice_score *scores = calloc((size_t)total_choices, sizeof *scores);
    prepared_item *prep = calloc((size_t)batch, sizeof *prep);
    sq_choice_score **rows = calloc((size_t)batch, sizeof *rows);
    sq_seq_batch *seqs = calloc((size_t)batch, sizeof *seqs);
    float *logits = NULL;
    size_t logits_cap = 0;
    sq_error *err = scores && prep && rows && seqs ? NULL : sq_errorf(SQ_ERR_NOMEM, "out of memory");
    double hits = 0, hits_norm = 0, logp_sum = 0;
    int64_t choice_at = 0;
    for (int first = 0; !err && first < task->n_items; first += batch) {
        int nb = task->n_items - first < batch ? task->n_items - first : batch;
        for (int b = 0; b < nb && !err; b++) {
            err = prepare_item(encode, encode_user, o->bos_id, lm->n_ctx, &task->items[first + b], &prep[b]);
            if (err) err = sq_error_wrap(err, "%s item %d", task->name, first + b + 1);
            res->n_truncated += prep[b].truncated;
            rows[b] = scores + choice_at;
            choice_at += task->items[first + b].n_choices;
        }
        if (!err) err = run_items(lm, prep, nb, seqs, rows, &logits, &logits_cap);
        for (int b = 0; b < nb && !err; b++) {
            const sq_task_item *it = &task->items[first + b];
            if (task->scoring == SQ_SCORE_GREEDY) {
                hits += rows[b][0].greedy;
                logp_sum += rows[b][0].logp;
            } else {
                hits += argmax_score(rows[b], it, 0) == it->gold;
                hits_norm += argmax_score(rows[b], it, 1) == it->gold;
            }
        }
        for (int b = 0; b < nb; b++) prepared_free(&prep[b]);
        if (!err && o->progress)
            o->progress(o->progress_user, o->progress_base + first + nb, o->progress_total);
    }
    free(prep);
    free(rows);
    free(seqs);
    free(logits);
    if (err) {
        free(scores);
        return err;
    }
    int n = task->n_items;
    snprintf(res->task, sizeof res->task, "%s", task->name);
    res->n_items = n;
    res->acc = hits / n;
    res->acc_stderr = stderr_of(res->acc, n);
    if (task->has_acc_norm) {
        res->has_acc_norm = 1;
        res->acc_norm = hits_norm / n;
        res->acc_norm_stderr = stderr_of(res->acc_norm, n);
    }
    if (task->scoring == SQ_SCORE_GREEDY) {
        res->has_ppl = 1;
        res->ppl = exp(-logp_sum / n);
    }
    res->score = res->has_acc_norm ? res->acc_norm : res->acc;
    res->seconds = sq_monotonic_seconds() - t0;
    if (scores_out)
        *scores_out = scores;
    else
        free(scores);
    return NULL;
}

static SQ_NODISCARD sq_error *encode_with_tokenizer(void *user, const char *text, size_t len, int32_t **ids,
                                                    int *n) {
    return sq_tokenize(user, text, len, 0, 0, ids, n);
}

SQ_NODISCARD sq_error *sq_eval_tasks(const sq_model *model, const char *tasks, const sq_eval_options *opts,
                                     sq_task_result **results, int *n_results) {
    *results = NULL;
    *n_results = 0;
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    if (!opts->data_dir) return sq_errorf(SQ_ERR_INVALID_ARG, "no task data directory given");
    char *list = strdup(tasks ? tasks : "");
    if (!list) return sq_errorf(SQ_ERR_NOMEM, "out of memory");
    int n_tasks = 0;
    sq_task *loaded[64];
    sq_error *err = NULL;
    int64_t total_items = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name && !err;
         name = strtok_r(NULL, ",", &save)) {
        if (n_tasks == 64)
            err = sq_errorf(SQ_ERR_INVALID_ARG, "more than 64 tasks requested");
        else if (!(err = sq_task_load(name, opts->data_dir, opts->limit, &loaded[n_tasks])))
            total_items += loaded[n_tasks++]->n_items;
    }
    free(list);
    if (!err && n_tasks == 0) err = sq_errorf(SQ_ERR_INVALID_ARG, "no tasks named");
    if (!err && !tok)
        err = sq_errorf(SQ_ERR_INVALID_ARG, "the model has no tokenizer (zero-shot tasks need one)");
    int bos = -1; /* what every request starts with: the tokenizer's choice unless opts->bos forces one */
    if (!err) err = sq_tokenizer_bos_for(tok, opts->bos, &bos);
    sq_task_result *res = err ? NULL : calloc((size_t)n_tasks, sizeof *res);
    if (!err && !res) err = sq_errorf(SQ_ERR_NOMEM, "out of memory");
    sq_lm lm = {0};
    if (!err)
        err = sq_lm_open(model, opts->device, opts->n_ctx, opts->n_batch > 0 ? opts->n_batch : 1,
                         opts->n_threads, opts->kv_type, NULL, &lm);
    sq_zeroshot_options zo = {.n_batch = opts->n_batch,
                              .bos_id = bos,
                              .progress = opts->progress,
                              .progress_user = opts->progress_user,
                              .progress_total = total_items};
    for (int t = 0; t < n_tasks && !err; t++) {
        err = sq_zeroshot_run(&lm, encode_with_tokenizer, (void *)tok, loaded[t], &zo, &res[t], NULL);
        zo.progress_base += loaded[t]->n_items;
    }
    sq_lm_close(&lm);
    for (int t = 0; t < n_tasks; t++) sq_task_free(loaded[t]);
    if (err) {
        free(res);
        return err;
    }
    *results = res;
    *n_results = n_tasks;
    return NULL;
}
