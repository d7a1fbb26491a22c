/* prune_tool: one matrix through Wanda's or SparseGPT's pruning step (compress/prune), for the reference test
 * against numpy (tests/py/test_prune.py).
 *
 *   prune_tool wanda     ROWS COLS SPARSITY N M W.f32 SUM_SQ.f64 OUT.f32
 *   prune_tool sparsegpt ROWS COLS SPARSITY N M W.f32 XTX.f64 N_TOKENS OUT.f32
 *   prune_tool svd       ROWS COLS RANK W.f32 SCALE.f64|- A.f32 B.f32 SIGMA.f64
 *
 * svd: the low-rank factors of W (lowrank.c's sq_lowrank_svd; SCALE [COLS] ASVD's input-channel scales, "-"
 * none): A [RANK][COLS], B [ROWS][RANK], SIGMA [min(ROWS, COLS)] the singular values of W diag(SCALE).
 *
 * W is float32 [ROWS][COLS]; SUM_SQ float64 [COLS]; XTX float64 [COLS][COLS]; OUT gets the pruned float32
 * matrix. N:M when M > 0 (SPARSITY then 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"

static void *read_exact(const char *path, size_t bytes) {
    FILE *fp = fopen(path, "rb");
    void *buf = malloc(bytes ? bytes : 1);
    if (!fp || !buf || fread(buf, 1, bytes, fp) != bytes) {
        fprintf(stderr, "prune_tool: cannot read %zu bytes from %s\n", bytes, path);
        exit(1);
    }
    fclose(fp);
    return buf;
}

static void write_exact(const char *path, const void *data, size_t bytes) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, bytes, fp) != bytes || fclose(fp)) {
        fprintf(stderr, "prune_tool: cannot write %s\n", path);
        exit(1);
    }
}

static int svd(char **argv) {
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]), k = rows < cols ? rows : cols;
    const int rank = atoi(argv[4]);
    float *w = read_exact(argv[5], (size_t)(rows * cols) * sizeof(float));
    double *scale = strcmp(argv[6], "-") ? read_exact(argv[6], (size_t)cols * sizeof(double)) : NULL;
    float *a = malloc((size_t)(rank * cols + 1) * sizeof *a),
          *b = malloc((size_t)(rows * rank + 1) * sizeof *b);
    double *sigma = malloc((size_t)k * sizeof *sigma);
    sq_error *err = sq_lowrank_svd(w, rows, cols, scale, rank, sigma, a, b);
    const int rc = err != NULL;
    if (err) {
        fprintf(stderr, "prune_tool: %s\n", sq_error_message(err));
        sq_error_free(err);
    } else {
        write_exact(argv[7], a, (size_t)(rank * cols) * sizeof *a);
        write_exact(argv[8], b, (size_t)(rows * rank) * sizeof *b);
        write_exact(argv[9], sigma, (size_t)k * sizeof *sigma);
    }
    free(w), free(scale), free(a), free(b), free(sigma);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 10 && !strcmp(argv[1], "svd")) return svd(argv);
    int sparsegpt = argc == 11 && !strcmp(argv[1], "sparsegpt");
    if (!sparsegpt && !(argc == 10 && !strcmp(argv[1], "wanda"))) {
        fprintf(
            stderr,
            "usage: prune_tool wanda|sparsegpt ROWS COLS SPARSITY N M W.f32 STATS.f64 [N_TOKENS] OUT.f32\n");
        return 2;
    }
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]);
    const double sparsity = atof(argv[4]);
    const int n = atoi(argv[5]), m = atoi(argv[6]);
    float *w = read_exact(argv[7], (size_t)(rows * cols) * sizeof(float));
    const char *out = argv[argc - 1];
    int64_t chosen = 0;
    if (sparsegpt) {
        double *xtx = read_exact(argv[8], (size_t)(cols * cols) * sizeof(double));
        sq_error *err =
            sq_prune_sparsegpt_matrix(w, rows, cols, xtx, atoll(argv[9]), sparsity, n, m, &chosen);
        free(xtx);
        if (err) {
            fprintf(stderr, "prune_tool: %s\n", sq_error_message(err));
            sq_error_free(err);
            return 1;
        }
    } else {
        double *sum_sq = read_exact(argv[8], (size_t)cols * sizeof(double));
        float *score = malloc((size_t)(rows * cols) * sizeof *score);
        sq_prune_wanda_scores(w, rows, cols, sum_sq, score);
        chosen = sq_prune_mask(w, score, rows, cols, SQ_MASK_PER_ROW, sparsity, n, m);
        free(sum_sq);
        free(score);
    }
    FILE *fp = fopen(out, "wb");
    if (!fp || fwrite(w, sizeof(float), (size_t)(rows * cols), fp) != (size_t)(rows * cols) || fclose(fp)) {
        fprintf(stderr, "prune_tool: cannot write %s\n", out);
        return 1;
    }
    printf("%lld\n", (long long)chosen);
    free(w);
    return 0;
}
