/* prune_tool: one matrix through Wanda's or SparseGPT's pruning step (compress/prune), for the reference test
 * against numpy (tests/py/test_prune.py).
 *
 *   prune_tool wanda     ROWS COLS SPARSITY N M W.f32 SUM_SQ.f64 OUT.f32
 *   prune_tool sparsegpt ROWS COLS SPARSITY N M W.f32 XTX.f64 N_TOKENS OUT.f32
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

int main(int argc, char **argv) {
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
