/* Low-rank factorisation (squeeze.h, SQ_PRUNE_LOWRANK and SQ_PRUNE_ASVD): every block's linear weight
 * W [out][in] replaced by B [out][r] and A [r][in] (model.h's sq_layer.lr_a, lr_b), from a truncated SVD of W
 * (plain) or of W D (ASVD, Yuan et al. 2023: D = diag(mean|x_j|^alpha) from the original model's calibration
 * inputs). The ranks are chosen first from every weight's singular values (sq_lowrank_choose_ranks), then
 * each block's weights are factorised in one sq_model_edit_tensors call. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"
#include "model/model.h"

sq_error *sq_lowrank_svd(const float *w, int64_t rows, int64_t cols, const double *scale, int rank,
                         double *sigma, float *a, float *b) {
    const int64_t k = rows < cols ? rows : cols;
    if (rank < 0 || rank > k)
        return sq_errorf(SQ_ERR_INVALID_ARG, "low rank: rank %d outside 0..%lld", rank, (long long)k);
    double *m = malloc((size_t)(rows * cols) * sizeof *m);
    double *u = rank ? malloc((size_t)(rows * k) * sizeof *u) : NULL;   /* [rows][k] */
    double *vt = rank ? malloc((size_t)(k * cols) * sizeof *vt) : NULL; /* [k][cols] */
    sq_error *err = NULL;
    if (!m || (rank && (!u || !vt))) err = sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory for the SVD");
    for (int64_t i = 0; !err && i < rows; i++)
        for (int64_t j = 0; j < cols; j++) m[i * cols + j] = (double)w[i * cols + j] * (scale ? scale[j] : 1);
    if (!err) {
        double dummy = 0;
        lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, rank ? 'S' : 'N', (lapack_int)rows,
                                         (lapack_int)cols, m, (lapack_int)cols, sigma, rank ? u : &dummy,
                                         (lapack_int)k, rank ? vt : &dummy, (lapack_int)cols);
        if (info != 0)
            err = sq_errorf(info < 0 ? SQ_ERR_INTERNAL : SQ_ERR_INVALID_ARG,
                            "low rank: the SVD of a %lldx%lld matrix failed (LAPACK dgesdd info %d)",
                            (long long)rows, (long long)cols, (int)info);
    }
    for (int r = 0; !err && r < rank; r++) {
        const double s = sqrt(sigma[r]);
        for (int64_t i = 0; i < rows; i++) b[i * rank + r] = (float)(u[i * k + r] * s);
        for (int64_t j = 0; j < cols; j++)
            a[r * cols + j] = (float)(s * vt[r * cols + j] / (scale ? scale[j] : 1));
    }
    free(m), free(u), free(vt);
    return err;
}

/* Parameters of a weight [rows][cols] at rank r: r (rows + cols) factorised, rows cols dense. */
static int64_t cost(int64_t rows, int64_t cols, int r) {
    return r > 0 ? (int64_t)r * (rows + cols) : rows * cols;
}

/* Whether rank r saves parameters over the dense weight. */
static int saves(int64_t rows, int64_t cols, int r) { return (int64_t)r * (rows + cols) < rows * cols; }

typedef struct candidate {
    double gain; /* sigma_k^2 / ||W||_F^2 / (rows + cols) */
    int matrix, k;
} candidate;

static int by_gain(const void *pa, const void *pb) {
    const candidate *x = pa, *y = pb;
    if (x->gain != y->gain) return x->gain > y->gain ? -1 : 1;
    if (x->matrix != y->matrix) return x->matrix < y->matrix ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

int sq_lowrank_choose_ranks(int n, const int64_t *rows, const int64_t *cols, const double *const *sigma,
                            int64_t budget, int *rank) {
    int64_t n_cand = 0, used = 0;
    for (int i = 0; i < n; i++) n_cand += (rows[i] < cols[i] ? rows[i] : cols[i]) - 1;
    candidate *c = malloc((size_t)(n_cand > 0 ? n_cand : 1) * sizeof *c);
    char *blocked = calloc((size_t)n + 1, 1);
    if (!c || !blocked) {
        free(c), free(blocked);
        return -1;
    }
    n_cand = 0;
    for (int i = 0; i < n; i++) {
        const int64_t k = rows[i] < cols[i] ? rows[i] : cols[i];
        double energy = 0;
        for (int64_t j = 0; j < k; j++) energy += sigma[i][j] * sigma[i][j];
        rank[i] = saves(rows[i], cols[i], 1) ? 1 : 0;
        used += cost(rows[i], cols[i], rank[i]);
        for (int64_t j = 1; j < k && rank[i]; j++)
            c[n_cand++] = (candidate){
                energy > 0 ? sigma[i][j] * sigma[i][j] / energy / (double)(rows[i] + cols[i]) : 0, i, (int)j};
    }
    qsort(c, (size_t)n_cand, sizeof *c, by_gain);
    /* Each weight's singular values come in order (largest first); one that no longer fits blocks the rest of
     * its weight, and cheaper ones of other weights may still fit. Reaching a rank that saves nothing makes
     * the weight dense, which costs at most as much as that step would. */
    for (int64_t q = 0; q < n_cand; q++) {
        const int i = c[q].matrix;
        if (blocked[i] || rank[i] == 0) continue;
        const int next = saves(rows[i], cols[i], rank[i] + 1) ? rank[i] + 1 : 0;
        const int64_t delta = cost(rows[i], cols[i], next) - cost(rows[i], cols[i], rank[i]);
        if (used + delta > budget) {
            blocked[i] = 1;
            continue;
        }
        used += delta;
        rank[i] = next;
    }
    free(c), free(blocked);
    return 0;
}

/* ---------------------------------------------------------------- the model */

/* Which calibration input each linear weight multiplies (sq_linear order). */
static const sq_tap_point input_of[SQ_N_LINEAR] = {SQ_TAP_ATTN_IN,  SQ_TAP_ATTN_IN, SQ_TAP_ATTN_IN,
                                                   SQ_TAP_ATTN_OUT, SQ_TAP_FFN_IN,  SQ_TAP_FFN_IN,
                                                   SQ_TAP_FFN_DOWN};
enum { N_POINTS = SQ_TAP_FFN_DOWN + 1 };

typedef struct lowrank_job {
    const sq_prune_options *o;
    int n_layers;
    int64_t *rows, *cols; /* [n_layers * SQ_N_LINEAR] */
    double **scale;       /* [n_layers * N_POINTS][width] ASVD's D, or NULL (plain SVD) */
    double **sigma;       /* [n_layers * SQ_N_LINEAR][min(rows, cols)] */
    int *rank;            /* [n_layers * SQ_N_LINEAR] 0: dense */
} lowrank_job;

/* ASVD's D from one block's statistics: mean |x_j| ^ alpha, channels never active at the others' mean. */
static SQ_NODISCARD sq_error *gather_scales(void *user, sq_model *model, int layer,
                                            const sq_calib_stats *stats) {
    (void)model;
    lowrank_job *job = user;
    const double alpha = job->o->asvd_alpha > 0 ? job->o->asvd_alpha : 0.5;
    for (int p = 0; p < N_POINTS; p++) {
        const sq_calib_stats *s = &stats[p];
        double *d = malloc((size_t)s->width * sizeof *d);
        if (!d) return sq_errorf(SQ_ERR_NOMEM, "ASVD: out of memory");
        job->scale[layer * N_POINTS + p] = d;
        double sum = 0;
        int active = 0;
        for (int j = 0; j < s->width; j++) {
            d[j] = s->n_tokens ? pow(s->sum_abs[j] / (double)s->n_tokens, alpha) : 0;
            if (d[j] > 0 && isfinite(d[j])) sum += d[j], active++;
        }
        for (int j = 0; j < s->width; j++)
            if (!(d[j] > 0 && isfinite(d[j]))) d[j] = active ? sum / active : 1;
    }
    return NULL;
}

static void linear_name(char *out, size_t n, int layer, int i, const char *suffix) {
    snprintf(out, n, "blk.%d.%s.%s", layer, sq_linear_names[i], suffix);
}

static SQ_NODISCARD sq_error *read_weight(const sq_model *m, int layer, int i, int64_t rows, int64_t cols,
                                          float **w) {
    char name[64];
    linear_name(name, sizeof name, layer, i, "weight");
    *w = malloc((size_t)(rows * cols) * sizeof **w);
    if (!*w) return sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory reading %s", name);
    return sq_model_read_tensor(m, name, *w, rows * cols);
}

static const double *scale_of(const lowrank_job *job, int layer, int i) {
    return job->scale ? job->scale[layer * N_POINTS + input_of[i]] : NULL;
}

/* Every weight's singular values (of W D under ASVD). */
static SQ_NODISCARD sq_error *spectra(const sq_model *model, lowrank_job *job) {
    for (int l = 0; l < job->n_layers; l++)
        for (int i = 0; i < SQ_N_LINEAR; i++) {
            const int q = l * SQ_N_LINEAR + i;
            const int64_t k = job->rows[q] < job->cols[q] ? job->rows[q] : job->cols[q];
            float *w;
            sq_error *err = read_weight(model, l, i, job->rows[q], job->cols[q], &w);
            if (!err && !(job->sigma[q] = malloc((size_t)k * sizeof(double))))
                err = sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory");
            if (!err)
                err = sq_lowrank_svd(w, job->rows[q], job->cols[q], scale_of(job, l, i), 0, job->sigma[q],
                                     NULL, NULL);
            free(w);
            SQ_TRY(err);
        }
    return NULL;
}

/* Block l's factorised weights in one edit: each dense weight removed, its _a and _b added. */
static SQ_NODISCARD sq_error *factorise_block(sq_model *model, const lowrank_job *job, int l) {
    char names[SQ_N_LINEAR][3][64];
    float *values[SQ_N_LINEAR][2] = {{0}};
    sq_tensor_edit edits[3 * SQ_N_LINEAR];
    int n_edits = 0;
    sq_error *err = NULL;
    for (int i = 0; i < SQ_N_LINEAR && !err; i++) {
        const int q = l * SQ_N_LINEAR + i, r = job->rank[q];
        if (!r) continue;
        const int64_t rows = job->rows[q], cols = job->cols[q], k = rows < cols ? rows : cols;
        linear_name(names[i][0], sizeof names[i][0], l, i, "weight");
        linear_name(names[i][1], sizeof names[i][1], l, i, "weight_a");
        linear_name(names[i][2], sizeof names[i][2], l, i, "weight_b");
        sq_tensor_info ti;
        sq_model_tensor_info(model, sq_model_tensor_index(model, names[i][0]), &ti);
        float *w = NULL;
        double *sigma = malloc((size_t)k * sizeof *sigma);
        values[i][0] = malloc((size_t)(r * cols) * sizeof(float));
        values[i][1] = malloc((size_t)(rows * r) * sizeof(float));
        if (!sigma || !values[i][0] || !values[i][1])
            err = sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory for %s", names[i][0]);
        if (!err) err = read_weight(model, l, i, rows, cols, &w);
        if (!err)
            err = sq_lowrank_svd(w, rows, cols, scale_of(job, l, i), r, sigma, values[i][0], values[i][1]);
        free(w), free(sigma);
        edits[n_edits++] = (sq_tensor_edit){.name = names[i][0], .remove = 1};
        edits[n_edits++] = (sq_tensor_edit){
            .name = names[i][1], .dtype = ti.dtype, .ndim = 2, .shape = {r, cols}, .values = values[i][0]};
        edits[n_edits++] = (sq_tensor_edit){
            .name = names[i][2], .dtype = ti.dtype, .ndim = 2, .shape = {rows, r}, .values = values[i][1]};
    }
    if (!err && n_edits) err = sq_model_edit_tensors(model, edits, n_edits);
    for (int i = 0; i < SQ_N_LINEAR; i++) free(values[i][0]), free(values[i][1]);
    return err;
}

sq_error *sq_prune_lowrank(sq_model *model, const sq_prune_options *o, int *n_factorised) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    const int n = info.n_layers * SQ_N_LINEAR;
    lowrank_job job = {.o = o, .n_layers = info.n_layers};
    job.rows = malloc((size_t)n * sizeof *job.rows);
    job.cols = malloc((size_t)n * sizeof *job.cols);
    job.sigma = calloc((size_t)n, sizeof *job.sigma);
    job.rank = calloc((size_t)n, sizeof *job.rank);
    if (o->method == SQ_PRUNE_ASVD) job.scale = calloc((size_t)info.n_layers * N_POINTS, sizeof *job.scale);
    sq_error *err = NULL;
    if (!job.rows || !job.cols || !job.sigma || !job.rank || (o->method == SQ_PRUNE_ASVD && !job.scale))
        err = sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory");
    int64_t dense = 0;
    for (int q = 0; !err && q < n; q++) {
        sq_layer_linear_shape(&model->layers[q / SQ_N_LINEAR], (sq_linear)(q % SQ_N_LINEAR), &job.rows[q],
                              &job.cols[q]);
        dense += job.rows[q] * job.cols[q];
    }
    if (!err && job.scale) {
        const sq_calib_method cm = {.stats = SQ_CALIB_SUM_ABS, .apply_block = gather_scales, .user = &job};
        err = sq_calibrate(model, o->calib, &cm, &(sq_calib_options){.n_threads = o->n_threads});
    }
    if (!err && o->param_ratio > 0) {
        err = spectra(model, &job);
        if (!err && sq_lowrank_choose_ranks(n, job.rows, job.cols, (const double *const *)job.sigma,
                                            (int64_t)floor(o->param_ratio * (double)dense), job.rank) < 0)
            err = sq_errorf(SQ_ERR_NOMEM, "low rank: out of memory");
    } else {
        for (int q = 0; q < n; q++) {
            const int64_t k = job.rows[q] < job.cols[q] ? job.rows[q] : job.cols[q];
            int r = (int)lround(o->rank_ratio * (double)k);
            if (r < 1) r = 1;
            job.rank[q] = saves(job.rows[q], job.cols[q], r) ? r : 0;
        }
    }
    *n_factorised = 0;
    for (int l = 0; !err && l < info.n_layers; l++) {
        err = factorise_block(model, &job, l);
        if (o->progress) o->progress(o->progress_user, l + 1, info.n_layers);
    }
    for (int q = 0; !err && q < n; q++) *n_factorised += job.rank[q] > 0;
    for (int q = 0; job.sigma && q < n; q++) free(job.sigma[q]);
    for (int p = 0; job.scale && p < info.n_layers * N_POINTS; p++) free(job.scale[p]);
    free(job.rows), free(job.cols), free(job.sigma), free(job.rank), free(job.scale);
    return err;
}
