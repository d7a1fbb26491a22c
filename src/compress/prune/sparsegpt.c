/* SparseGPT (Frantar & Alistarh 2023, Algorithm 1 and the reference code's fasterprune): prune one matrix
 * column block by column block through the inverse Hessian, each pruned weight's error compensated by
 * updating the not-yet-visited columns (the OBS update), with the mask of a block chosen lazily when the
 * block is reached. Arithmetic in double; LAPACK (OpenBLAS) factors the Hessian. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"

/* LAPACK's Cholesky factorisation and inverse from it (Fortran interface, column-major). */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

enum { BLOCK = 128 }; /* the reference code's blocksize */

/* U [n][n] row-major: the upper Cholesky factor of H^-1 (H^-1 = U^T U), from h (overwritten). A row-major
 * matrix is its transpose to LAPACK, so 'L' there is the upper triangle here. */
static SQ_NODISCARD sq_error *inverse_hessian_factor(double *h, int n) {
    int info = 0;
    dpotrf_("L", &n, h, &n, &info);
    if (info == 0) dpotri_("L", &n, h, &n, &info);
    if (info != 0)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "SparseGPT: the dampened Hessian is not positive definite (LAPACK "
                         "info %d)",
                         info);
    for (int i = 0; i < n; i++) /* H^-1 is in the upper triangle: mirror it */
        for (int j = i + 1; j < n; j++) h[(size_t)j * n + i] = h[(size_t)i * n + j];
    dpotrf_("L", &n, h, &n, &info);
    if (info != 0)
        return sq_errorf(SQ_ERR_INVALID_ARG, "SparseGPT: H^-1 is not positive definite (LAPACK info %d)",
                         info);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) h[(size_t)i * n + j] = 0;
    return NULL;
}

/* Marks in mask [rows][bs] (1: prune), at column rel of the block, the lowest of w^2 / [H^-1]_jj^2 over the
 * width columns from c0: unstructured, floor(sparsity * rows * width) of them; N:M (width m), per row. The
 * choice goes through sq_prune_mask on a matrix of ones. */
static int64_t choose(const double *w, int64_t rows, int64_t cols, const double *u, int64_t c0, int width,
                      int rel, double sparsity, int n, int m, unsigned char *mask, int bs, float *ones,
                      float *score) {
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < width; j++) {
            double d = u[(c0 + j) * cols + c0 + j], x = w[r * cols + c0 + j];
            score[r * width + j] = (float)(x * x / (d * d));
            ones[r * width + j] = 1.0f;
        }
    int64_t chosen = sq_prune_mask(ones, score, rows, width, SQ_MASK_PER_MATRIX, sparsity, n, m);
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < width; j++) mask[r * bs + rel + j] = ones[r * width + j] == 0.0f;
    return chosen;
}

SQ_NODISCARD sq_error *sq_prune_sparsegpt_matrix(float *wf, int64_t rows, int64_t cols, const double *xtx,
                                                 int64_t n_tokens, double sparsity, int n, int m,
                                                 int64_t *chosen) {
    *chosen = 0;
    if (n_tokens <= 0) return sq_errorf(SQ_ERR_INVALID_ARG, "SparseGPT: no calibration tokens");
    if (cols > (1 << 20)) return sq_errorf(SQ_ERR_INVALID_ARG, "SparseGPT: %lld columns", (long long)cols);
    const int bs = m > 0 ? (BLOCK / m > 0 ? BLOCK / m * m : m) : BLOCK;
    double *u = malloc((size_t)(cols * cols) * sizeof *u);      /* [cols][cols] H, then U */
    double *w = malloc((size_t)(rows * cols) * sizeof *w);      /* [rows][cols] */
    double *err1 = malloc((size_t)(rows * bs) * sizeof *err1);  /* [rows][bs] a block's (w - q) / d */
    unsigned char *mask = malloc((size_t)(rows * bs));          /* [rows][bs] */
    float *ones = malloc((size_t)(rows * bs) * sizeof *ones);   /* [rows][bs] */
    float *score = malloc((size_t)(rows * bs) * sizeof *score); /* [rows][bs] */
    sq_error *err = NULL;
    if (!u || !w || !err1 || !mask || !ones || !score) {
        err = sq_errorf(SQ_ERR_NOMEM, "SparseGPT: out of memory for a %lld x %lld matrix", (long long)rows,
                        (long long)cols);
        goto done;
    }
    for (int64_t k = 0; k < rows * cols; k++) w[k] = wf[k];
    double mean_diag = 0;
    for (int64_t k = 0; k < cols * cols; k++) u[k] = 2.0 * xtx[k] / (double)n_tokens;
    for (int64_t j = 0; j < cols; j++) {
        if (u[j * cols + j] == 0) { /* an input never active: its weights cannot matter */
            u[j * cols + j] = 1;
            for (int64_t r = 0; r < rows; r++) w[r * cols + j] = 0;
        }
        mean_diag += u[j * cols + j] / (double)cols;
    }
    for (int64_t j = 0; j < cols; j++) u[j * cols + j] += 0.01 * mean_diag;
    if ((err = inverse_hessian_factor(u, (int)cols))) goto done;
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int count = cols - i1 < bs ? (int)(cols - i1) : bs;
        const int64_t i2 = i1 + count;
        memset(mask, 0, (size_t)(rows * bs));
        if (m == 0) *chosen += choose(w, rows, cols, u, i1, count, 0, sparsity, 0, 0, mask, bs, ones, score);
        for (int i = 0; i < count; i++) {
            const int64_t c = i1 + i;
            if (m > 0 && i % m == 0)
                *chosen += choose(w, rows, cols, u, c, m, i, 0, n, m, mask, bs, ones, score);
            const double d = u[c * cols + c];
            for (int64_t r = 0; r < rows; r++) {
                double *wr = w + r * cols;
                const double x = wr[c], q = mask[r * bs + i] ? 0.0 : x, e = (x - q) / d;
                for (int64_t j = c + 1; j < i2; j++) wr[j] -= e * u[c * cols + j];
                err1[r * bs + i] = e;
                wr[c] = q;
            }
        }
        if (i2 < cols) /* the block's error, spread over every later column at once */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(cols - i2), count, -1.0,
                        err1, bs, u + i1 * cols + i2, (int)cols, 1.0, w + i2, (int)cols);
    }
    for (int64_t k = 0; k < rows * cols; k++) wf[k] = (float)w[k];
done:
    free(u), free(w), free(err1), free(mask), free(ones), free(score);
    return err;
}
