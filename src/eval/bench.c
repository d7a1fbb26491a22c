/* Efficiency benchmark: times batched prefill and decode through the public forward API, the same path every
 * client takes, and summarises repetitions as median and range. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu_wait.h"
#include "core/error.h"
#include "squeeze.h"

/* Most tokens one forward chunk carries (see variant_init). */
#define SQ_BENCH_BATCH_MAX 2048

/* One model under test: its context sized exactly for the workload and its buffers. */
typedef struct bench_variant {
    const sq_model *model;
    sq_context *ctx;
    int vocab;
    int32_t *prompts; /* [n_seqs][n_prompt] */
    int32_t *first;   /* [n_seqs]: the first decode step's tokens when there is no prompt */
    int32_t *next;    /* [n_seqs]: the token each sequence feeds at the next decode step */
    float *logits;    /* [n_seqs][vocab] */
    sq_seq_batch *batch;
    double *prefill_s, *decode_s; /* [n_reps_max]: every timed repetition run */
    double *cpu_wait;             /* [n_reps_max]: sq_cpu_wait_fraction over each repetition */
} bench_variant;

static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int reps_max(const sq_bench_params *p) { return p->n_reps_max ? p->n_reps_max : p->n_reps; }

static SQ_NODISCARD sq_error *check_params(const sq_model *const *models, int n_models,
                                           const sq_bench_params *p) {
    if (n_models < 1) return sq_errorf(SQ_ERR_INVALID_ARG, "bench: no model to benchmark");
    for (int m = 0; m < n_models; m++)
        if (!models[m]) return sq_errorf(SQ_ERR_INVALID_ARG, "bench: model %d is NULL", m + 1);
    if (p->n_prompt < 0 || p->n_gen < 0 || p->n_prompt + (int64_t)p->n_gen < 1 || p->n_seqs < 1 ||
        p->n_reps < 1 || p->n_warmup < 0 || p->n_threads < 0 || p->n_reps_max < 0 ||
        (p->n_reps_max && p->n_reps_max < p->n_reps))
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "bench: prompt tokens (%d) and output tokens (%d) must be at least 0 and not both 0, "
            "batch size (%d) and repetitions (%d) must be at least 1, warm-ups (%d) and threads "
            "(%d) at least 0, the most repetitions (%d) 0 or at least the repetitions",
            p->n_prompt, p->n_gen, p->n_seqs, p->n_reps, p->n_warmup, p->n_threads, p->n_reps_max);
    if (p->n_prompt > INT32_MAX - p->n_gen || (p->n_prompt && p->n_seqs > INT32_MAX / p->n_prompt) ||
        reps_max(p) > INT32_MAX / n_models - p->n_warmup)
        return sq_errorf(SQ_ERR_INVALID_ARG, "bench: workload of %d x (%d + %d) tokens is too large",
                         p->n_seqs, p->n_prompt, p->n_gen);
    return NULL;
}

static void variant_free(bench_variant *v) {
    sq_context_free(v->ctx);
    free(v->prompts);
    free(v->first);
    free(v->next);
    free(v->logits);
    free(v->batch);
    free(v->prefill_s);
    free(v->decode_s);
    free(v->cpu_wait);
}

static SQ_NODISCARD sq_error *variant_init(bench_variant *v, const sq_model *model, int index,
                                           const sq_bench_params *p) {
    memset(v, 0, sizeof *v);
    v->model = model;
    sq_model_info info;
    sq_model_get_info(model, &info);
    v->vocab = info.vocab_size;
    int need = p->n_prompt + p->n_gen;
    if (need > info.max_seq_len)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "bench: model %d: %d prompt + %d output tokens = %d exceed its context of %d tokens "
                         "(use a shorter prompt or output)",
                         index + 1, p->n_prompt, p->n_gen, need, info.max_seq_len);
    if (v->vocab < 1) return sq_errorf(SQ_ERR_INVALID_ARG, "bench: model %d has no vocabulary", index + 1);
    size_t n_prompt_tokens = (size_t)p->n_seqs * (size_t)p->n_prompt;
    v->prompts = malloc((n_prompt_tokens ? n_prompt_tokens : 1) * sizeof *v->prompts);
    v->first = malloc((size_t)p->n_seqs * sizeof *v->first);
    v->next = malloc((size_t)p->n_seqs * sizeof *v->next);
    v->logits = malloc((size_t)p->n_seqs * (size_t)v->vocab * sizeof *v->logits);
    v->batch = malloc((size_t)p->n_seqs * sizeof *v->batch);
    v->prefill_s = malloc((size_t)reps_max(p) * sizeof *v->prefill_s);
    v->decode_s = malloc((size_t)reps_max(p) * sizeof *v->decode_s);
    v->cpu_wait = malloc((size_t)reps_max(p) * sizeof *v->cpu_wait);
    if (!v->prompts || !v->first || !v->next || !v->logits || !v->batch || !v->prefill_s || !v->decode_s ||
        !v->cpu_wait)
        return sq_errorf(SQ_ERR_NOMEM, "bench: out of memory for %d sequences of %d tokens", p->n_seqs,
                         p->n_prompt);
    /* Random ids: a dense transformer's speed does not depend on token values, and every model sees the same
     * prompts (modulo its vocabulary) whatever its tokenizer. */
    uint64_t state = p->seed ? p->seed : 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n_prompt_tokens; i++)
        v->prompts[i] = (int32_t)(xorshift64(&state) % (uint64_t)v->vocab);
    for (int s = 0; s < p->n_seqs; s++) v->first[s] = (int32_t)(xorshift64(&state) % (uint64_t)v->vocab);
    /* The forward pass runs a batch larger than n_batch_max in chunks; capping it bounds the activation
     * memory as a server would, and chunks this large keep the matrix products efficient. */
    int batch_max = n_prompt_tokens < SQ_BENCH_BATCH_MAX ? (int)n_prompt_tokens : SQ_BENCH_BATCH_MAX;
    if (batch_max < p->n_seqs) batch_max = p->n_seqs; /* a decode step carries one token per sequence */
    sq_context_options opts = {.n_ctx = need,
                               .n_seq_max = p->n_seqs,
                               .n_threads = p->n_threads,
                               .n_batch_max = batch_max,
                               .kv_type = index == 1 && p->vs_kv_type_set ? p->vs_kv_type : p->kv_type,
                               .device = p->device};
    return sq_error_wrap(sq_context_create(model, &opts, &v->ctx), "bench: model %d", index + 1);
}

/* One repetition: clear, batched prefill, n_gen batched decode steps. Without a prompt, decoding starts from
 * one random token per sequence and *prefill_s is 0; without output tokens, *decode_s is 0. */
static SQ_NODISCARD sq_error *variant_run(bench_variant *v, const sq_bench_params *p, double *prefill_s,
                                          double *decode_s) {
    for (int s = 0; s < p->n_seqs; s++) SQ_TRY(sq_seq_truncate(v->ctx, s, 0));
    for (int s = 0; s < p->n_seqs; s++)
        v->batch[s] = (sq_seq_batch){.seq_id = s,
                                     .tokens = v->prompts + (size_t)s * (size_t)p->n_prompt,
                                     .n_tokens = p->n_prompt,
                                     .logits_mode = SQ_LOGITS_LAST,
                                     .logits = v->logits + (size_t)s * (size_t)v->vocab};
    double t0 = sq_monotonic_seconds();
    if (p->n_prompt) {
        SQ_TRY(sq_forward(v->ctx, v->batch, p->n_seqs));
        for (int s = 0; s < p->n_seqs; s++)
            v->next[s] = argmax(v->logits + (size_t)s * (size_t)v->vocab, v->vocab);
    } else {
        memcpy(v->next, v->first, (size_t)p->n_seqs * sizeof *v->next);
    }
    double t1 = sq_monotonic_seconds();
    for (int s = 0; s < p->n_seqs; s++) {
        v->batch[s].tokens = &v->next[s];
        v->batch[s].n_tokens = 1;
    }
    for (int step = 0; step < p->n_gen; step++) {
        SQ_TRY(sq_forward(v->ctx, v->batch, p->n_seqs));
        for (int s = 0; s < p->n_seqs; s++)
            v->next[s] = argmax(v->logits + (size_t)s * (size_t)v->vocab, v->vocab);
    }
    double t2 = sq_monotonic_seconds();
    /* a clock tick of zero would make the rates infinite */
    *prefill_s = p->n_prompt ? fmax(t1 - t0, 1e-9) : 0;
    *decode_s = p->n_gen ? fmax(t2 - t1, 1e-9) : 0;
    return NULL;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* NaN when the workload has no such part (no prompt, no output): a metric is NaN in every repetition or in
 * none. */
sq_bench_stat sq_bench_summarise(double *values, int n) {
    if (isnan(values[0])) return (sq_bench_stat){.median = NAN, .min = NAN, .max = NAN};
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    double median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
    return (sq_bench_stat){.median = median, .min = values[0], .max = values[n - 1]};
}

typedef double (*rep_metric)(double prefill_s, double decode_s, const sq_bench_params *p);
static double metric_ttft(double pf, double dc, const sq_bench_params *p) {
    return (void)dc, p->n_prompt ? pf : NAN;
}
static double metric_tpot(double pf, double dc, const sq_bench_params *p) {
    return (void)pf, p->n_gen ? dc / p->n_gen : NAN;
}
static double metric_e2e(double pf, double dc, const sq_bench_params *p) { return (void)p, pf + dc; }
static double metric_prefill_rate(double pf, double dc, const sq_bench_params *p) {
    return (void)dc, p->n_prompt ? (double)p->n_seqs * p->n_prompt / pf : NAN;
}
static double metric_decode_rate(double pf, double dc, const sq_bench_params *p) {
    return (void)pf, p->n_gen ? (double)p->n_seqs * p->n_gen / dc : NAN;
}
static double metric_request_rate(double pf, double dc, const sq_bench_params *p) {
    return p->n_seqs / (pf + dc);
}

/* The repetitions the statistics summarise: their indices into a variant's arrays. */
typedef struct rep_selection {
    int *index; /* [n_reps_max] */
    int n;
} rep_selection;

static sq_bench_stat summarise_metric(const bench_variant *v, const sq_bench_params *p,
                                      const rep_selection *sel, rep_metric f, double *scratch) {
    for (int i = 0; i < sel->n; i++)
        scratch[i] = f(v->prefill_s[sel->index[i]], v->decode_s[sel->index[i]], p);
    return sq_bench_summarise(scratch, sel->n);
}

static double cpu_wait_median(const bench_variant *v, int n_runs, double *scratch) {
    int n = 0;
    for (int r = 0; r < n_runs; r++)
        if (!isnan(v->cpu_wait[r])) scratch[n++] = v->cpu_wait[r];
    return n ? sq_bench_summarise(scratch, n).median : NAN;
}

static void fill_result(const bench_variant *v, const sq_bench_params *p, const rep_selection *sel,
                        int n_runs, int n_disturbed, double *scratch, sq_bench_result *out) {
    out->ttft_s = summarise_metric(v, p, sel, metric_ttft, scratch);
    out->tpot_s = summarise_metric(v, p, sel, metric_tpot, scratch);
    out->e2e_s = summarise_metric(v, p, sel, metric_e2e, scratch);
    out->prefill_tok_s = summarise_metric(v, p, sel, metric_prefill_rate, scratch);
    out->decode_tok_s = summarise_metric(v, p, sel, metric_decode_rate, scratch);
    out->requests_s = summarise_metric(v, p, sel, metric_request_rate, scratch);
    out->n_runs = n_runs;
    out->n_disturbed = n_disturbed;
    out->cpu_wait = cpu_wait_median(v, n_runs, scratch);
    sq_model_info info;
    sq_model_get_info(v->model, &info);
    out->weight_bytes = info.weight_bytes;
    out->kv_bytes = sq_context_kv_bytes(v->ctx);
}

static int context_threads(const sq_bench_params *p) { return p->n_threads ? p->n_threads : sq_cpu_count(); }

/* One timed repetition of one model, with the share of its threads' time spent kept off a CPU. */
static SQ_NODISCARD sq_error *timed_run(bench_variant *v, const sq_bench_params *p, int r) {
    sq_cpu_wait_sample a, b;
    sq_cpu_wait_sample_now(&a);
    SQ_TRY(variant_run(v, p, &v->prefill_s[r], &v->decode_s[r]));
    sq_cpu_wait_sample_now(&b);
    v->cpu_wait[r] = sq_cpu_wait_fraction(&a, &b, context_threads(p));
    return NULL;
}

/* The repetitions progress expects in all: each disturbed round adds one, up to n_reps_max. */
static int64_t progress_total(const sq_bench_params *p, int n_models, int n_disturbed) {
    int rounds = p->n_reps + n_disturbed < reps_max(p) ? p->n_reps + n_disturbed : reps_max(p);
    return (int64_t)n_models * (p->n_warmup + rounds);
}

/* Runs rounds (every model once, in order) until n_reps of them were undisturbed or n_reps_max ran, and
 * selects the n_reps rounds whose most-waiting model waited least: the undisturbed ones when there are
 * enough, else the least disturbed (the machine was busy throughout; *n_disturbed says so). */
static SQ_NODISCARD sq_error *run_all(bench_variant *vs, int n_models, const sq_bench_params *p,
                                      sq_progress_fn progress, void *user, sq_bench_result *results,
                                      rep_selection *sel, double *round_wait, int *n_runs, int *n_disturbed) {
    int done = 0;
    double ignored_prefill, ignored_decode;
    /* Warm-ups model by model, so that each model's peak memory is read before the next one runs. */
    for (int m = 0; m < n_models; m++) {
        for (int w = 0; w < p->n_warmup; w++) {
            SQ_TRY(sq_error_wrap(variant_run(&vs[m], p, &ignored_prefill, &ignored_decode), "bench: model %d",
                                 m + 1));
            if (progress) progress(user, ++done, progress_total(p, n_models, 0));
        }
        if (p->n_warmup) results[m].peak_rss_bytes = sq_peak_rss_bytes();
    }
    int r = 0, n_clean = 0;
    for (; r < reps_max(p) && n_clean < p->n_reps; r++) {
        round_wait[r] = 0; /* an unknown wait (no /proc) counts as none: the old fixed count of repetitions */
        for (int m = 0; m < n_models; m++) {
            SQ_TRY(sq_error_wrap(timed_run(&vs[m], p, r), "bench: model %d", m + 1));
            if (vs[m].cpu_wait[r] > round_wait[r]) round_wait[r] = vs[m].cpu_wait[r];
            if (!p->n_warmup && r == 0) results[m].peak_rss_bytes = sq_peak_rss_bytes();
            if (progress)
                progress(user, ++done,
                         progress_total(p, n_models, r - n_clean + (round_wait[r] > SQ_BENCH_MAX_CPU_WAIT)));
        }
        n_clean += round_wait[r] <= SQ_BENCH_MAX_CPU_WAIT;
    }
    *n_runs = r;
    *n_disturbed = r - n_clean;
    /* a stable insertion sort of the round indices by wait: the earliest of equally waiting rounds first */
    for (int i = 0; i < r; i++) {
        int j = i;
        for (; j > 0 && round_wait[sel->index[j - 1]] > round_wait[i]; j--) sel->index[j] = sel->index[j - 1];
        sel->index[j] = i;
    }
    sel->n = p->n_reps;
    return NULL;
}

sq_error *sq_bench_run(const sq_model *const *models, int n_models, const sq_bench_params *params,
                       sq_progress_fn progress, void *user, sq_bench_result *results) {
    SQ_TRY(check_params(models, n_models, params));
    bench_variant *vs = calloc((size_t)n_models, sizeof *vs);
    double *scratch = malloc((size_t)reps_max(params) * sizeof *scratch);
    rep_selection sel = {.index = malloc((size_t)reps_max(params) * sizeof *sel.index)};
    double *round_wait = malloc((size_t)reps_max(params) * sizeof *round_wait);
    sq_error *err =
        vs && scratch && sel.index && round_wait ? NULL : sq_errorf(SQ_ERR_NOMEM, "bench: out of memory");
    int n_ready = 0, n_runs = 0, n_disturbed = 0;
    for (; !err && n_ready < n_models; n_ready++)
        err = variant_init(&vs[n_ready], models[n_ready], n_ready, params);
    if (!err) {
        memset(results, 0, (size_t)n_models * sizeof *results);
        err = run_all(vs, n_models, params, progress, user, results, &sel, round_wait, &n_runs, &n_disturbed);
    }
    for (int m = 0; !err && m < n_models; m++)
        fill_result(&vs[m], params, &sel, n_runs, n_disturbed, scratch, &results[m]);
    for (int m = 0; vs && m < n_ready; m++) variant_free(&vs[m]);
    free(vs);
    free(scratch);
    free(sel.index);
    free(round_wait);
    return err;
}

static const sq_bench_metric metrics[] = {
    {"ttft_s", "time to first token (ms)", 1e3, 0, offsetof(sq_bench_result, ttft_s)},
    {"tpot_s", "time per output token (ms)", 1e3, 0, offsetof(sq_bench_result, tpot_s)},
    {"e2e_s", "end-to-end latency (ms)", 1e3, 0, offsetof(sq_bench_result, e2e_s)},
    {"prefill_tok_s", "prefill (tokens/s)", 1, 0, offsetof(sq_bench_result, prefill_tok_s)},
    {"decode_tok_s", "decode (tokens/s)", 1, 0, offsetof(sq_bench_result, decode_tok_s)},
    {"requests_s", "requests/s", 1, 0, offsetof(sq_bench_result, requests_s)},
    {"weight_bytes", "weights (MiB)", 1.0 / (1 << 20), 1, offsetof(sq_bench_result, weight_bytes)},
    {"kv_bytes", "KV cache (MiB)", 1.0 / (1 << 20), 1, offsetof(sq_bench_result, kv_bytes)},
    {"peak_rss_bytes", "peak RSS (MiB)", 1.0 / (1 << 20), 1, offsetof(sq_bench_result, peak_rss_bytes)},
};

const sq_bench_metric *sq_bench_metrics(int *n) {
    *n = (int)(sizeof metrics / sizeof *metrics);
    return metrics;
}

const sq_bench_stat *sq_bench_metric_stat(const sq_bench_result *r, const sq_bench_metric *metric) {
    return (const sq_bench_stat *)((const char *)r + metric->offset);
}

double sq_bench_metric_bytes(const sq_bench_result *r, const sq_bench_metric *metric) {
    return (double)*(const size_t *)((const char *)r + metric->offset);
}
