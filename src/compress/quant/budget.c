/* Mixed precision by sensitivity and a greedy knapsack (--budget-bpw).
 *
 * Sensitivity of a matrix W [rows][cols] at a candidate format c, measured where calibration samples are
 * given (sq_quantize_params.calib): the mean KL divergence of the model's next-token distributions on them
 * when W alone is stored as Q_c(W) (compress/quant/sensitivity.h; the published recipe of issue 8: measure
 * each tensor at each type, then a knapsack). Without samples, estimated: the relative error its rounding
 * adds to the layer's output, E[|(W - Q_c(W)) x|^2] / E[|W x|^2], with the input's per-channel mean x^2 (the
 * imatrix entry; 1 without one) as sum_ij qw_j (W_ij - Q_c(W)_ij)^2 / sum_ij qw_j W_ij^2 (exact when the
 * input channels are uncorrelated). Relative, not absolute: on stories15M the absolute error ranks ffn_down
 * (whose inputs are small) least sensitive and gives it Q2_K, which cost 2.6x uniform q4_0's KL at the same
 * bits; the relative error did not (docs/benchmarks.md). Q_c is the quantizer quantize will run
 * (importance-weighted with an imatrix). Every searched matrix starts at its cheapest candidate; then, while
 * the budget allows, the upgrade (one matrix to any more expensive candidate) with the largest sensitivity
 * removed per added byte is applied: greedy by marginal gain per bit (summed sensitivities: each matrix's
 * effect taken as independent of the others'). Candidates dominated on a matrix (no cheaper and no more
 * accurate than another) are dropped first, so a matrix's candidates are a chain of increasing cost and
 * decreasing sensitivity. */
#include "compress/quant/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "compress/quant/sensitivity.h"

/* The formats the search chooses among, each where a matrix's rows are whole blocks of it. */
static const sq_dtype candidates[] = {SQ_DTYPE_Q2_K, SQ_DTYPE_Q3_K, SQ_DTYPE_Q4_0,
                                      SQ_DTYPE_Q4_K, SQ_DTYPE_Q5_0, SQ_DTYPE_Q5_K,
                                      SQ_DTYPE_Q6_K, SQ_DTYPE_Q8_0, SQ_DTYPE_F16};
enum { N_CAND = sizeof candidates / sizeof *candidates };

typedef struct error_job {
    const float *w, *qw; /* [rows][cols], [cols] (NULL: 1) */
    int64_t rows, cols;
    sq_dtype dtype;
    double *partial; /* [nth] summed weighted squared error of each thread's rows */
    double *energy;  /* [nth] summed weighted squared weights (the output energy) */
    uint8_t *out;    /* NULL, or [rows][row bytes]: the quantized matrix, for the KL probe */
} error_job;

static void error_rows(void *p, int ith, int nth) {
    error_job *j = p;
    const sq_dtype_traits *f = sq_dtype_info(j->dtype);
    long r0, r1;
    sq_split_range((long)j->rows, ith, nth, &r0, &r1);
    uint8_t *q = malloc(sq_row_bytes(j->dtype, j->cols)); /* [row bytes] */
    float *y = malloc((size_t)j->cols * sizeof *y);       /* [cols] */
    double e = 0, energy = 0;
    for (long r = r0; q && y && r < r1; r++) {
        const float *x = j->w + (size_t)r * (size_t)j->cols;
        uint8_t *qr = j->out ? j->out + (size_t)r * sq_row_bytes(j->dtype, j->cols) : q; /* [row bytes] */
        if (j->qw && f->from_f32_weighted)
            f->from_f32_weighted(x, qr, j->cols, j->qw);
        else
            f->from_f32(x, qr, j->cols);
        f->to_f32(qr, y, j->cols);
        for (int64_t c = 0; c < j->cols; c++) {
            const double d = (double)x[c] - y[c];
            e += (j->qw ? j->qw[c] : 1.0) * d * d;
            energy += (j->qw ? j->qw[c] : 1.0) * (double)x[c] * x[c];
        }
    }
    j->partial[ith] = q && y ? e : -1; /* -1: out of memory */
    j->energy[ith] = energy;
    free(q);
    free(y);
}

typedef struct searched {
    int index; /* in the report */
    int n;     /* candidates kept */
    sq_dtype type[N_CAND];
    size_t bytes[N_CAND];
    double err[N_CAND];
    int at; /* the chosen one */
} searched;

/* The candidates of one matrix with their bytes and sensitivities (measured KL with a probe, else the
 * estimate), dominated ones dropped. */
static SQ_NODISCARD sq_error *measure(sq_model *model, const sq_quantize_params *p, const sq_tensor_info *t,
                                      sq_threadpool *pool, sq_kl_probe *probe, searched *s) {
    char name[SQ_TENSOR_NAME_MAX]; /* the model's string changes with each probe's edit */
    snprintf(name, sizeof name, "%s", t->name);
    const int64_t cols = t->shape[t->ndim - 1],
                  n = (int64_t)(sq_tensor_bytes_for(SQ_DTYPE_F32, t->ndim, t->shape) / 4);
    float *w = malloc((size_t)n * sizeof *w);
    const int nth = sq_threadpool_size(pool);
    double *partial = calloc(2 * (size_t)nth, sizeof *partial); /* [2][nth]: errors, energies */
    sq_error *err = w && partial ? NULL : sq_errorf(SQ_ERR_NOMEM, "quantize: no memory for tensor %s", name);
    if (!err) err = sq_model_read_tensor(model, name, w, n);
    sq_imatrix_entry e;
    const float *qw = !err && sq_imatrix_find(p->imatrix, name, &e) && e.n_values == cols ? e.values : NULL;
    sq_dtype type[N_CAND];
    size_t bytes[N_CAND];
    double errs[N_CAND];
    int m = 0;
    for (int c = 0; c < N_CAND && !err; c++) {
        if (cols % sq_dtype_info(candidates[c])->block_elems) continue;
        const size_t nbytes = sq_tensor_bytes_for(candidates[c], t->ndim, t->shape);
        uint8_t *out = probe ? malloc(nbytes) : NULL; /* [nbytes] the matrix in this candidate */
        if (probe && !out) {
            err = sq_errorf(SQ_ERR_NOMEM, "quantize: no memory for tensor %s", name);
            break;
        }
        error_job j = {w, qw, n / cols, cols, candidates[c], partial, partial + nth, out};
        sq_threadpool_run(pool, error_rows, &j);
        double total = 0, energy = 0;
        for (int i = 0; i < nth; i++) {
            if (partial[i] < 0 && !err) err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
            total += partial[i];
            energy += partial[nth + i];
        }
        type[m] = candidates[c];
        bytes[m] = nbytes;
        errs[m] = energy > 0 ? total / energy : 0; /* an all-zero matrix has no error to weigh */
        if (!err && probe)
            err = sq_kl_probe_measure(probe, model, name, candidates[c], out, nbytes, &errs[m]);
        free(out);
        m++;
    }
    free(w);
    free(partial);
    SQ_TRY(err);
    /* keep the chain: by increasing bytes (ties: lower error first), each strictly more accurate */
    s->n = 0;
    for (int k = 0; k < m; k++) {
        int best = -1;
        for (int i = 0; i < m; i++) {
            if (bytes[i] == (size_t)-1) continue;
            if (best < 0 || bytes[i] < bytes[best] || (bytes[i] == bytes[best] && errs[i] < errs[best]))
                best = i;
        }
        if (best < 0) break;
        if (!s->n || errs[best] < s->err[s->n - 1]) {
            s->type[s->n] = type[best];
            s->bytes[s->n] = bytes[best];
            s->err[s->n++] = errs[best];
        }
        bytes[best] = (size_t)-1;
    }
    s->at = 0;
    return NULL;
}

/* The bytes of tensor t in its cheapest candidate format (every candidate list ends with F16, which fits). */
static double cheapest_bytes(const sq_tensor_info *t) {
    double best = -1;
    for (int c = 0; c < N_CAND; c++)
        if (t->shape[t->ndim - 1] % sq_dtype_info(candidates[c])->block_elems == 0) {
            const double b = (double)sq_tensor_bytes_for(candidates[c], t->ndim, t->shape);
            if (best < 0 || b < best) best = b;
        }
    return best;
}

sq_error *sq_quant_budget_plan(sq_model *model, const sq_quantize_params *p, sq_quantize_report *r,
                               sq_threadpool *pool) {
    searched *s = calloc((size_t)r->n_tensors + 1, sizeof *s);
    if (!s) return sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
    int n = 0;
    double total = 0, elems = 0; /* bytes: the other tensors as planned, searched ones at their cheapest */
    for (int i = 0; i < r->n_tensors; i++) {
        sq_tensor_info t;
        sq_model_tensor_info(model, i, &t);
        const sq_quant_tensor_report *q = &r->tensors[i];
        elems += (double)q->n_elems;
        if (strncmp(q->name, "blk.", 4) || q->kept || !strcmp(q->type, q->from))
            total += (double)sq_tensor_bytes_for((sq_dtype)sq_dtype_from_name(q->type), t.ndim, t.shape);
        else {
            total += cheapest_bytes(&t);
            s[n++].index = i;
        }
    }
    const double budget = p->budget_bpw * elems / 8; /* bytes */
    if (total > budget) {                            /* before any measuring */
        free(s);
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "quantize: a budget of %.3f bits per weight is below the smallest types' %.3f "
                         "(the searched matrices in their cheapest formats, the other tensors as planned)",
                         p->budget_bpw, 8 * total / elems);
    }
    sq_kl_probe *probe = NULL;
    sq_error *err = p->calib && p->calib->ids
                        ? sq_kl_probe_create(model, p->calib, sq_threadpool_size(pool), &probe)
                        : NULL;
    for (int k = 0; k < n && !err; k++) {
        sq_tensor_info t;
        sq_model_tensor_info(model, s[k].index, &t);
        err = measure(model, p, &t, pool, probe, &s[k]);
    }
    sq_kl_probe_free(probe);
    if (err) {
        free(s);
        return err;
    }
    for (;;) {
        int best_k = -1, best_to = -1;
        double best_gain = 0;
        for (int k = 0; k < n; k++)
            for (int to = s[k].at + 1; to < s[k].n; to++) {
                const double add = (double)(s[k].bytes[to] - s[k].bytes[s[k].at]);
                if (total + add > budget) break;
                const double gain = (s[k].err[s[k].at] - s[k].err[to]) / (add > 0 ? add : 1);
                if (gain > best_gain) {
                    best_gain = gain;
                    best_k = k;
                    best_to = to;
                }
            }
        if (best_k < 0) break;
        total += (double)(s[best_k].bytes[best_to] - s[best_k].bytes[s[best_k].at]);
        s[best_k].at = best_to;
    }
    for (int k = 0; k < n; k++) {
        sq_quant_tensor_report *q = &r->tensors[s[k].index];
        r->n_fallbacks -= strcmp(q->type, q->wanted) != 0;
        q->wanted = q->type = sq_dtype_info(s[k].type[s[k].at])->name;
    }
    free(s);
    return NULL;
}
