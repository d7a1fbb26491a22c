/* GPTQ on one linear layer (gptq.h). The weights are worked on transposed, wt [cols][rows], so that a column
 * of W is a contiguous row of wt; everything is in double, as the reference's float32 is not needed for
 * speed at these sizes and double keeps the result independent of summation order. */
#include "compress/quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/method.h"
#include "core/tensor.h"

typedef struct gptq_work {
    double *wt;             /* [cols][rows] the weights being quantized, columns in processing order */
    double *h;              /* [cols][cols] H, then the upper Cholesky factor U of H^-1 */
    double *err;            /* [block][rows] scaled errors of the lazy block's columns */
    int64_t *perm;          /* [cols] original column of each processed one */
    sq_grid_params *params; /* [cols / group][rows] each group's parameters, per row */
    int8_t *q;              /* [rows][cols] chosen integers, original column order */
    float *x;               /* [group] one row's group, for choose */
} gptq_work;

static void free_work(gptq_work *k) {
    free(k->wt);
    free(k->h);
    free(k->err);
    free(k->perm);
    free(k->params);
    free(k->q);
    free(k->x);
}

/* Orders columns by decreasing H_jj, ties by index (a stable order; the reference's torch.argsort is not). */
typedef struct diag_entry {
    double h;
    int64_t col;
} diag_entry;
static int by_diag_desc(const void *a, const void *b) {
    const diag_entry *x = a, *y = b;
    if (x->h != y->h) return x->h > y->h ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

/* Chooses the parameters of group `grp` for every row from columns [c0, c0 + group) of wt (processing order
 * = original order here: dynamic groups) or of the original w (static groups). */
static void choose_group(const sq_grid *g, gptq_work *k, int64_t rows, int64_t grp, const double *src_t,
                         const float *w, int64_t cols, const float *importance) {
    const int64_t c0 = grp * g->group;
    const float *qw = importance ? importance + c0 : NULL; /* [n] */
    const int n = sq_grid_group_len(g, c0, cols);
    for (int64_t r = 0; r < rows; r++) {
        for (int j = 0; j < n; j++)
            k->x[j] = src_t ? (float)src_t[(c0 + j) * rows + r] : w[r * cols + c0 + j];
        g->choose(g, k->x, n, qw, &k->params[grp * rows + r]);
    }
}

SQ_NODISCARD sq_error *sq_gptq_quantize(const char *name, const float *w, int64_t rows, int64_t cols,
                                        const double *xtx, int64_t n_tokens, const sq_grid *grid,
                                        const sq_gptq_options *opts, float *values, void *packed) {
    const sq_gptq_options o = opts ? *opts : (sq_gptq_options){0};
    const double damp = o.damp > 0 ? o.damp : 0.01;
    const int64_t G = grid->group, n_groups = (cols + G - 1) / G;
    if (rows < 1 || cols < 1 || (grid->pack && cols % G) || n_tokens < 1)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "GPTQ %s: [%lld][%lld] from %lld tokens: rows must be whole groups of %lld", name,
                         (long long)rows, (long long)cols, (long long)n_tokens, (long long)G);
    int64_t B = o.block_size > 0 ? o.block_size : 128;
    if (B > G)
        B -= B % G; /* group starts fall on lazy block starts */
    else
        B = G; /* a group spans whole blocks: one block per group */
    if (B > cols) B = cols;
    gptq_work k = {0};
    k.wt = malloc((size_t)(cols * rows) * sizeof *k.wt);
    k.h = malloc((size_t)(cols * cols) * sizeof *k.h);
    k.err = malloc((size_t)(B * rows) * sizeof *k.err);
    k.perm = malloc((size_t)cols * sizeof *k.perm);
    k.params = malloc((size_t)(n_groups * rows) * sizeof *k.params);
    k.q = malloc((size_t)(rows * cols) * sizeof *k.q);
    k.x = malloc((size_t)G * sizeof *k.x);
    if (!k.wt || !k.h || !k.err || !k.perm || !k.params || !k.q || !k.x) {
        free_work(&k);
        return sq_errorf(SQ_ERR_NOMEM, "GPTQ %s: out of memory for [%lld][%lld]", name, (long long)rows,
                         (long long)cols);
    }
    /* H = 2 X^T X / n; dead inputs get H_jj = 1 and their weights zero */
    const double scale = 2.0 / (double)n_tokens;
    double *diag = malloc((size_t)cols * sizeof *diag); /* [cols] */
    if (!diag) {
        free_work(&k);
        return sq_errorf(SQ_ERR_NOMEM, "GPTQ %s: out of memory", name);
    }
    for (int64_t i = 0; i < cols; i++) {
        diag[i] = xtx[i * cols + i] * scale;
        k.perm[i] = i;
    }
    if (o.act_order) {
        diag_entry *order = malloc((size_t)cols * sizeof *order); /* [cols] */
        if (!order) {
            free(diag);
            free_work(&k);
            return sq_errorf(SQ_ERR_NOMEM, "GPTQ %s: out of memory", name);
        }
        for (int64_t i = 0; i < cols; i++) order[i] = (diag_entry){diag[i], i};
        qsort(order, (size_t)cols, sizeof *order, by_diag_desc);
        for (int64_t i = 0; i < cols; i++) k.perm[i] = order[i].col;
        free(order);
    }
    double mean = 0;
    for (int64_t i = 0; i < cols; i++) mean += diag[i] == 0 ? 1 : diag[i];
    mean /= (double)cols;
    for (int64_t a = 0; a < cols; a++) {
        const int64_t pa = k.perm[a];
        for (int64_t b = 0; b < cols; b++) k.h[a * cols + b] = xtx[pa * cols + k.perm[b]] * scale;
        if (diag[pa] == 0) k.h[a * cols + a] = 1;
        k.h[a * cols + a] += damp * mean;
        for (int64_t r = 0; r < rows; r++) k.wt[a * rows + r] = diag[pa] == 0 ? 0 : w[r * cols + pa];
    }
    /* static groups: every group's parameters from the weights before any update (dead columns zeroed) */
    if (o.act_order) {
        float *w0 = malloc((size_t)(rows * cols) * sizeof *w0); /* [rows][cols] */
        if (!w0) {
            free(diag);
            free_work(&k);
            return sq_errorf(SQ_ERR_NOMEM, "GPTQ %s: out of memory", name);
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) w0[r * cols + c] = diag[c] == 0 ? 0 : w[r * cols + c];
        for (int64_t grp = 0; grp < n_groups; grp++)
            choose_group(grid, &k, rows, grp, NULL, w0, cols, o.importance);
        free(w0);
    }
    free(diag);
    /* U = chol(H^-1), upper: H = L L^T, H^-1 from L, then its Cholesky factor */
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)cols, k.h, (lapack_int)cols);
    if (!info) info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)cols, k.h, (lapack_int)cols);
    if (!info) {
        for (int64_t a = 0; a < cols; a++)
            for (int64_t b = a + 1; b < cols; b++) k.h[a * cols + b] = k.h[b * cols + a];
        info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)cols, k.h, (lapack_int)cols);
    }
    if (info) {
        free_work(&k);
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "GPTQ %s: the Hessian with %g damping is not positive definite (LAPACK info %d): more "
            "damping or more calibration tokens",
            name, damp, (int)info);
    }
    const double *U = k.h;
    for (int64_t i1 = 0; i1 < cols; i1 += B) {
        const int64_t i2 = i1 + B < cols ? i1 + B : cols;
        for (int64_t i = i1; i < i2; i++) {
            const int64_t c = k.perm[i], grp = c / G;
            if (!o.act_order && c % G == 0) choose_group(grid, &k, rows, grp, k.wt, NULL, cols, o.importance);
            const int s = (int)(c % G) / grid->sub;
            const double u = U[i * cols + i];
            double *wi = k.wt + i * rows, *e = k.err + (i - i1) * rows; /* [rows] each */
            for (int64_t r = 0; r < rows; r++) {
                double v;
                k.q[r * cols + c] = (int8_t)sq_grid_round(grid, &k.params[grp * rows + r], s, wi[r], &v);
                e[r] = (wi[r] - v) / u;
                wi[r] = v;
            }
            for (int64_t j = i + 1; j < i2; j++) {
                const double h = U[i * cols + j];
                double *wj = k.wt + j * rows;
                for (int64_t r = 0; r < rows; r++) wj[r] -= e[r] * h;
            }
        }
        if (i2 < cols) /* wt[i2:] -= U[i1:i2, i2:]^T E */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(cols - i2), (int)rows, (int)(i2 - i1),
                        -1.0, U + i1 * cols + i2, (int)cols, k.err, (int)rows, 1.0, k.wt + i2 * rows,
                        (int)rows);
    }
    if (values)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t r = 0; r < rows; r++) values[r * cols + k.perm[i]] = (float)k.wt[i * rows + r];
    if (packed && grid->pack) {
        const size_t row_bytes = sq_row_bytes(grid->dtype, cols),
                     block_bytes = sq_dtype_info(grid->dtype)->block_bytes;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t grp = 0; grp < cols / G; grp++)
                grid->pack(grid, &k.params[grp * rows + r], k.q + r * cols + grp * G,
                           (uint8_t *)packed + (size_t)r * row_bytes + (size_t)grp * block_bytes);
    }
    free_work(&k);
    return NULL;
}

/* ---------------------------------------------------------------- the method (method.h) */

static SQ_NODISCARD sq_error *gptq_supports(sq_dtype dtype) {
    sq_grid g;
    return sq_grid_for(sq_dtype_info(dtype)->name, 0, sq_dtype_info(dtype)->block_elems, &g);
}

static SQ_NODISCARD sq_error *gptq_job(const sq_quant_job *job, sq_threadpool *pool) {
    (void)pool; /* the batched updates run on BLAS's threads */
    if (!job->stats || !job->stats->xtx || job->stats->cols != job->cols)
        return sq_errorf(SQ_ERR_INVALID_ARG, "GPTQ %s: no input statistics of width %lld", job->name,
                         (long long)job->cols);
    sq_grid grid;
    SQ_TRY(sq_grid_for(sq_dtype_info(job->dtype)->name, 0, job->cols, &grid));
    const sq_gptq_options o = {.damp = job->params ? job->params->gptq_damp : 0,
                               .act_order = job->params ? job->params->gptq_act_order : 0,
                               .importance = job->stats->mean_sq};
    return sq_gptq_quantize(job->name, job->w, job->rows, job->cols, job->stats->xtx, job->stats->n_samples,
                            &grid, &o, NULL, job->out);
}

const sq_quant_method sq_quant_gptq = {
    .name = "gptq", .needs_stats = 1, .stats = SQ_CALIB_XTX, .supports = gptq_supports, .quantize = gptq_job};
