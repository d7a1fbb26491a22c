/* Perplexity over token windows, optionally against a reference model (KL divergence, top-1 agreement).
 *
 * Windows run in batches: each window of a batch is one sequence of a single forward call, cleared before
 * use. Scoring (log-softmax in double precision over the whole vocabulary, once or twice per token) is spread
 * over a thread pool; per-token results are summed per window in position order and then over windows in
 * window order, so the numbers do not depend on the batch size or the thread count. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "eval/eval.h"

SQ_NODISCARD sq_error *sq_ppl_plan(sq_ppl_protocol protocol, int64_t n_ids, int n_ctx, int stride,
                                   sq_ppl_plan_window **windows, int *n_windows) {
    *windows = NULL;
    *n_windows = 0;
    if (n_ctx < 2)
        return sq_errorf(SQ_ERR_INVALID_ARG, "a window of %d tokens scores nothing (need at least 2)", n_ctx);
    /* the windows protocols are defined by full windows; the strided one scores a shorter text as one short
     * window, as Hugging Face's guide does */
    if (protocol != SQ_PPL_STRIDE && n_ids < n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "the text has %lld tokens, fewer than one window of %d",
                         (long long)n_ids, n_ctx);
    int64_t count;
    if (protocol == SQ_PPL_STRIDE) {
        if (n_ids < 2)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "the text has %lld tokens: nothing to score (need at least 2)",
                             (long long)n_ids);
        if (stride < 1 || stride > n_ctx)
            return sq_errorf(SQ_ERR_INVALID_ARG, "stride %d is outside 1..%d (the window length)", stride,
                             n_ctx);
        count = n_ids <= n_ctx ? 1 : 1 + (n_ids - n_ctx + stride - 1) / stride;
    } else if (protocol == SQ_PPL_WINDOWS || protocol == SQ_PPL_SECOND_HALF) {
        count = n_ids / n_ctx;
        if (protocol == SQ_PPL_SECOND_HALF && n_ctx < 4)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "the second-half protocol needs windows of at least 4 tokens");
    } else {
        return sq_errorf(SQ_ERR_INVALID_ARG, "unknown perplexity protocol %d", (int)protocol);
    }
    if (count > (1 << 30))
        return sq_errorf(SQ_ERR_INVALID_ARG, "%lld windows are too many", (long long)count);
    sq_ppl_plan_window *w = calloc((size_t)count, sizeof *w);
    if (!w) return sq_errorf(SQ_ERR_NOMEM, "out of memory for %lld windows", (long long)count);
    int64_t prev_end = 0;
    for (int64_t k = 0; k < count; k++) {
        if (protocol == SQ_PPL_STRIDE) {
            /* Hugging Face: window [k*stride, min(k*stride + n_ctx, n)), scoring the tokens after prev_end */
            int64_t begin = k * stride, end = begin + n_ctx < n_ids ? begin + n_ctx : n_ids;
            int64_t first_new = prev_end > begin + 1 ? prev_end : begin + 1;
            w[k] = (sq_ppl_plan_window){begin, (int)(end - begin), (int)(first_new - begin)};
            prev_end = end;
        } else {
            w[k] = (sq_ppl_plan_window){k * n_ctx, n_ctx, protocol == SQ_PPL_WINDOWS ? 1 : n_ctx / 2 + 1};
        }
    }
    *windows = w;
    *n_windows = (int)count;
    return NULL;
}

/* One scored position: the model's logits row predicting `target`, and the reference's view of it. */
typedef struct score_job {
    const float *z, *zr; /* zr: live reference logits, or NULL */
    int32_t target;
    int64_t record; /* index in the reference file */
    double nll, ref_nll, kl, tail;
    int agree;
    sq_error *err;
} score_job;

typedef struct score_batch {
    score_job *jobs;
    long n_jobs;
    int n_vocab;
    sq_ref_file *file_in, *file_out;
} score_batch;

static double kl_exact(const float *zr, double lse_r, const float *z, double lse_m, int n) {
    double kl = sq_kl_row(zr, lse_r, z, lse_m, n);
    return kl > 0 ? kl : 0; /* rounding can leave a tiny negative for identical distributions */
}

/* KL over the reference's stored top k plus one bucket for the rest (a lower bound on the exact KL). */
static double kl_top_k(const sq_ref_file *f, int64_t record, const float *z, double lse_m, int top_m,
                       score_job *j) {
    float target_logp, tail;
    const int32_t *ids;
    const float *lps;
    sq_ref_file_read(f, record, &target_logp, &tail, &ids, &lps);
    int k = sq_ref_file_top_k(f);
    double kl = 0, q_top = 0;
    for (int i = 0; i < k; i++) {
        double lm = z[ids[i]] - lse_m;
        kl += exp((double)lps[i]) * (lps[i] - lm);
        q_top += exp(lm);
    }
    double q_rest = 1 - q_top;
    if (tail > 0) kl += tail * (log((double)tail) - log(q_rest > 1e-300 ? q_rest : 1e-300));
    j->ref_nll = -(double)target_logp;
    j->agree = ids[0] == top_m;
    j->tail = tail;
    return kl > 0 ? kl : 0;
}

static void score_slice(void *p, int ith, int nth) {
    score_batch *b = p;
    long begin, end;
    sq_split_range(b->n_jobs, ith, nth, &begin, &end);
    for (long i = begin; i < end; i++) {
        score_job *j = &b->jobs[i];
        int n = b->n_vocab;
        double lse_m = sq_logsumexp(j->z, n);
        j->nll = lse_m - j->z[j->target];
        int top_m = sq_argmax(j->z, n);
        if (j->zr) {
            double lse_r = sq_logsumexp(j->zr, n);
            j->ref_nll = lse_r - j->zr[j->target];
            j->kl = kl_exact(j->zr, lse_r, j->z, lse_m, n);
            j->agree = sq_argmax(j->zr, n) == top_m;
            if (b->file_out) j->err = sq_ref_file_write(b->file_out, j->record, j->zr, j->target);
        } else if (b->file_in) {
            j->kl = kl_top_k(b->file_in, j->record, j->z, lse_m, top_m, j);
        }
    }
}

typedef struct window_sums {
    double nll, nll_sq, ref_nll, kl, kl_sq, kl_max, tail;
    int64_t agree, n;
} window_sums;

/* Everything one evaluation allocates, released in one place. */
typedef struct ppl_state {
    sq_ppl_plan_window *plan;
    int n_windows;
    window_sums *sums;
    float *logits, *ref_logits;
    int32_t *tokens;
    score_job *jobs;
    sq_seq_batch *seqs;
    sq_threadpool *pool;
    sq_ref_file *file_in, *file_out;
} ppl_state;

static SQ_NODISCARD SQ_TAKES_ERROR(2) sq_error *state_free(ppl_state *s, sq_error *err) {
    free(s->plan);
    free(s->sums);
    free(s->logits);
    free(s->ref_logits);
    free(s->tokens);
    free(s->jobs);
    free(s->seqs);
    sq_threadpool_free(s->pool);
    sq_error *close_in = s->file_in ? sq_ref_file_close(s->file_in, 0) : NULL;
    /* a reference file left half-written by a failed run would only be refused later: remove it */
    sq_error *close_out = s->file_out ? sq_ref_file_close(s->file_out, err != NULL) : NULL;
    if (!err)
        err = close_out ? close_out : close_in;
    else {
        sq_error_free(close_in);
        sq_error_free(close_out);
    }
    return err;
}

static SQ_NODISCARD sq_error *run_batch(sq_lm *lm, const sq_seq_batch *seqs, int n) {
    for (int i = 0; i < n; i++) SQ_TRY(lm->truncate(lm->impl, seqs[i].seq_id, 0));
    return lm->forward(lm->impl, seqs, n);
}

static void summarize(const ppl_state *s, int has_ref, sq_ppl_result *res) {
    window_sums t = {0};
    res->windows = calloc(s->n_windows > 0 ? (size_t)s->n_windows : 1, sizeof *res->windows);
    for (int w = 0; w < s->n_windows; w++) {
        const window_sums *ws = &s->sums[w];
        t.nll += ws->nll, t.nll_sq += ws->nll_sq, t.ref_nll += ws->ref_nll;
        t.kl += ws->kl, t.kl_sq += ws->kl_sq, t.tail += ws->tail;
        t.kl_max = ws->kl_max > t.kl_max ? ws->kl_max : t.kl_max;
        t.agree += ws->agree, t.n += ws->n;
        if (res->windows)
            res->windows[w] = (sq_ppl_window){.start = s->plan[w].start,
                                              .n_tokens = s->plan[w].len,
                                              .n_scored = (int)ws->n,
                                              .nll = ws->n ? ws->nll / ws->n : 0,
                                              .kl = ws->n ? ws->kl / ws->n : 0};
    }
    double n = (double)t.n;
    res->n_scored = t.n;
    res->n_windows = s->n_windows;
    res->mean_nll = t.nll / n;
    double var = t.n > 1 ? (t.nll_sq - n * res->mean_nll * res->mean_nll) / (n - 1) : 0;
    res->nll_sd = var > 0 ? sqrt(var) : 0;
    double half = 1.96 * res->nll_sd / sqrt(n);
    res->ppl = exp(res->mean_nll);
    res->ppl_lo = exp(res->mean_nll - half);
    res->ppl_hi = exp(res->mean_nll + half);
    if (!has_ref) return;
    res->has_ref = 1;
    res->ref_ppl = exp(t.ref_nll / n);
    res->ppl_ratio = res->ppl / res->ref_ppl;
    res->kl_mean = t.kl / n;
    double kvar = t.n > 1 ? (t.kl_sq - n * res->kl_mean * res->kl_mean) / (n - 1) : 0;
    res->kl_sd = kvar > 0 ? sqrt(kvar) : 0;
    res->kl_max = t.kl_max;
    res->top1_agreement = t.agree / n;
    res->ref_tail_mass = t.tail / n;
}

static SQ_NODISCARD sq_error *check_inputs(const sq_lm *lm, const sq_lm *ref, const int32_t *ids,
                                           int64_t n_ids, const sq_ppl_options *o, int n_ctx) {
    if (n_ctx > lm->n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "window of %d tokens exceeds the model's context of %d", n_ctx,
                         lm->n_ctx);
    if (ref && ref->n_vocab != lm->n_vocab)
        return sq_errorf(SQ_ERR_INVALID_ARG, "the reference's vocabulary (%d) differs from the model's (%d)",
                         ref->n_vocab, lm->n_vocab);
    if (ref && n_ctx > ref->n_ctx)
        return sq_errorf(SQ_ERR_INVALID_ARG, "window of %d tokens exceeds the reference's context of %d",
                         n_ctx, ref->n_ctx);
    if (o->ref_logits_in && ref)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "give either a reference model or a reference logits file, not both");
    if (o->ref_logits_out && !ref)
        return sq_errorf(SQ_ERR_INVALID_ARG, "saving reference logits needs a reference model");
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= lm->n_vocab)
            return sq_errorf(SQ_ERR_INVALID_ARG, "%s%stoken %lld is id %d, outside the vocabulary of %d",
                             o->source ? o->source : "", o->source ? ": " : "", (long long)i, ids[i],
                             lm->n_vocab);
    return NULL;
}

SQ_NODISCARD sq_error *sq_ppl_run(sq_lm *lm, sq_lm *ref, const int32_t *ids, int64_t n_ids,
                                  const sq_ppl_options *o, sq_ppl_result *res) {
    memset(res, 0, sizeof *res);
    double t0 = sq_monotonic_seconds();
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : lm->n_ctx;
    SQ_TRY(check_inputs(lm, ref, ids, n_ids, o, n_ctx));
    ppl_state s = {0};
    sq_error *err = sq_ppl_plan(o->protocol, n_ids, n_ctx, o->stride, &s.plan, &s.n_windows);
    if (err) return o->source ? sq_error_wrap(err, "%s", o->source) : err;
    int n_vocab = lm->n_vocab;
    int batch = o->n_batch > 0 ? o->n_batch : 1;
    if (batch > lm->n_seq_max || (ref && batch > ref->n_seq_max))
        return state_free(
            &s, sq_errorf(SQ_ERR_INVALID_ARG, "batch of %d windows exceeds the context's %d sequences", batch,
                          ref && ref->n_seq_max < lm->n_seq_max ? ref->n_seq_max : lm->n_seq_max));
    if (batch > s.n_windows) batch = s.n_windows;

    int64_t n_records = 0;
    for (int w = 0; w < s.n_windows; w++) n_records += s.plan[w].len - s.plan[w].score_from;
    sq_ref_file_key key = {.n_vocab = n_vocab,
                           .n_ctx = n_ctx,
                           .protocol = (int)o->protocol,
                           .stride = o->protocol == SQ_PPL_STRIDE ? o->stride : 0,
                           .top_k = o->ref_top_k > 0 ? o->ref_top_k : 64,
                           .n_ids = n_ids,
                           .n_records = n_records,
                           .ids_hash = sq_ids_hash(ids, n_ids)};
    if (key.top_k > n_vocab) key.top_k = n_vocab;
    if (o->ref_logits_in && (err = sq_ref_file_open(o->ref_logits_in, &key, &s.file_in)))
        return state_free(&s, err);
    if (o->ref_logits_out && (err = sq_ref_file_create(o->ref_logits_out, &key, &s.file_out)))
        return state_free(&s, err);

    size_t row_floats = (size_t)n_ctx * (size_t)n_vocab;
    s.sums = calloc((size_t)s.n_windows, sizeof *s.sums);
    s.logits = malloc((size_t)batch * row_floats * sizeof(float));
    s.ref_logits = ref ? malloc((size_t)batch * row_floats * sizeof(float)) : NULL;
    s.tokens = malloc((size_t)batch * (size_t)n_ctx * sizeof(int32_t));
    s.jobs = malloc((size_t)batch * (size_t)n_ctx * sizeof *s.jobs);
    s.seqs = malloc((size_t)batch * sizeof *s.seqs);
    s.pool = sq_threadpool_create(o->n_threads);
    if (!s.sums || !s.logits || (ref && !s.ref_logits) || !s.tokens || !s.jobs || !s.seqs || !s.pool)
        return state_free(&s, sq_errorf(SQ_ERR_NOMEM, "out of memory for %d windows of %d tokens x %d logits",
                                        batch, n_ctx, n_vocab));

    int64_t tokens_run = 0, record_base = 0;
    sq_seq_batch *seqs = s.seqs;
    for (int first = 0; first < s.n_windows; first += batch) {
        int nb = s.n_windows - first < batch ? s.n_windows - first : batch;
        for (int b = 0; b < nb; b++) {
            const sq_ppl_plan_window *w = &s.plan[first + b];
            int32_t *tok = s.tokens + (size_t)b * n_ctx;
            memcpy(tok, ids + w->start, (size_t)w->len * sizeof *tok);
            if (o->protocol == SQ_PPL_SECOND_HALF && o->bos_id >= 0) tok[0] = o->bos_id;
            seqs[b] = (sq_seq_batch){.seq_id = b,
                                     .tokens = tok,
                                     .n_tokens = w->len,
                                     .logits_mode = SQ_LOGITS_ALL,
                                     .logits = s.logits + (size_t)b * row_floats};
            tokens_run += w->len;
        }
        if ((err = run_batch(lm, seqs, nb))) return state_free(&s, sq_error_wrap(err, "model"));
        if (ref) {
            for (int b = 0; b < nb; b++) seqs[b].logits = s.ref_logits + (size_t)b * row_floats;
            if ((err = run_batch(ref, seqs, nb)))
                return state_free(&s, sq_error_wrap(err, "reference model"));
        }
        long n_jobs = 0;
        for (int b = 0; b < nb; b++) {
            const sq_ppl_plan_window *w = &s.plan[first + b];
            for (int p = w->score_from; p < w->len; p++) {
                size_t row = (size_t)b * row_floats + (size_t)(p - 1) * n_vocab;
                s.jobs[n_jobs++] = (score_job){.z = s.logits + row,
                                               .zr = ref ? s.ref_logits + row : NULL,
                                               .target = ids[w->start + p],
                                               .record = record_base++};
            }
        }
        score_batch sb = {s.jobs, n_jobs, n_vocab, s.file_in, s.file_out};
        sq_threadpool_run(s.pool, score_slice, &sb);
        long j = 0;
        for (int b = 0; b < nb; b++) {
            window_sums *ws = &s.sums[first + b];
            for (int p = s.plan[first + b].score_from; p < s.plan[first + b].len; p++, j++) {
                const score_job *sj = &s.jobs[j];
                if (sj->err && !err)
                    err = sj->err;
                else
                    sq_error_free(sj->err);
                ws->nll += sj->nll, ws->nll_sq += sj->nll * sj->nll;
                ws->ref_nll += sj->ref_nll, ws->kl += sj->kl, ws->kl_sq += sj->kl * sj->kl,
                    ws->tail += sj->tail;
                ws->kl_max = sj->kl > ws->kl_max ? sj->kl : ws->kl_max;
                ws->agree += sj->agree, ws->n++;
            }
        }
        if (err) return state_free(&s, err);
        if (o->progress) o->progress(o->progress_user, first + nb, s.n_windows);
    }
    summarize(&s, ref || s.file_in, res);
    if (!res->windows) return state_free(&s, sq_errorf(SQ_ERR_NOMEM, "out of memory for window statistics"));
    res->kl_top_k = s.file_in ? sq_ref_file_top_k(s.file_in) : 0;
    res->n_ids = n_ids;
    res->n_ctx = n_ctx;
    res->seconds = sq_monotonic_seconds() - t0;
    res->tokens_per_second = res->seconds > 0 ? tokens_run / res->seconds : 0;
    err = state_free(&s, NULL);
    if (err) sq_ppl_result_free(res);
    return err;
}

SQ_NODISCARD sq_error *sq_perplexity(const sq_model *model, const int32_t *ids, int64_t n_ids,
                                     const sq_ppl_options *opts, sq_ppl_result *res) {
    memset(res, 0, sizeof *res);
    sq_model_info info;
    sq_model_get_info(model, &info);
    int n_ctx = opts->n_ctx > 0 ? opts->n_ctx : info.max_seq_len;
    int batch = opts->n_batch > 0 ? opts->n_batch : 1;
    sq_lm lm, ref_lm;
    SQ_TRY(sq_lm_open(model, opts->device, n_ctx, batch, opts->n_threads, opts->kv_type, opts->skip_layers,
                      &lm));
    sq_error *err = NULL;
    if (opts->ref && (err = sq_lm_open(opts->ref, opts->device, n_ctx, batch, opts->n_threads, SQ_KV_F32,
                                       NULL, &ref_lm))) {
        sq_lm_close(&lm);
        return sq_error_wrap(err, "reference model");
    }
    sq_ppl_options o = *opts;
    o.n_ctx = n_ctx;
    err = sq_ppl_run(&lm, opts->ref ? &ref_lm : NULL, ids, n_ids, &o, res);
    if (opts->ref) sq_lm_close(&ref_lm);
    sq_lm_close(&lm);
    return err;
}

void sq_ppl_result_free(sq_ppl_result *res) {
    if (!res) return;
    free(res->windows);
    res->windows = NULL;
}
