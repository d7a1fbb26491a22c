/* The mask of unstructured and N:M pruning: which weights of a matrix become zero, given a score per weight.
 * Magnitude, Wanda and the structured variants all choose through this one function. */
#include <math.h>
#include <stdlib.h>

#include "compress/prune/prune.h"

typedef struct scored {
    float score;
    int64_t index; /* into the matrix, row-major */
} scored;

/* A total order even for NaN scores (a damaged weight sorts last: kept), as qsort needs. */
static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    int xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn) return xn - yn;
    if (!xn && x->score != y->score) return x->score < y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Zeroes the k lowest-scored of the count weights starting at flat index first (one scope). */
static void zero_lowest(float *w, const float *score, int64_t first, int64_t count, int64_t k, scored *tmp) {
    if (k <= 0) return;
    for (int64_t i = 0; i < count; i++) tmp[i] = (scored){score[first + i], first + i};
    qsort(tmp, (size_t)count, sizeof *tmp, by_score);
    for (int64_t i = 0; i < k; i++) w[tmp[i].index] = 0.0f;
}

int64_t sq_prune_mask(float *w, const float *score, int64_t rows, int64_t cols, sq_mask_scope scope,
                      double sparsity, int n, int m) {
    if (m > 0) {
        scored group[256];
        if (m > 256) return -1;
        int64_t chosen = 0;
        for (int64_t g = 0; g < rows * cols; g += m) {
            zero_lowest(w, score, g, m, m - n, group);
            chosen += m - n;
        }
        return chosen;
    }
    int64_t scope_len = scope == SQ_MASK_PER_ROW ? cols : rows * cols;
    int64_t k = (int64_t)(sparsity * (double)scope_len);
    if (k <= 0) return 0;
    scored *tmp = malloc((size_t)scope_len * sizeof *tmp);
    if (!tmp) return -1;
    for (int64_t first = 0; first < rows * cols; first += scope_len)
        zero_lowest(w, score, first, scope_len, k, tmp);
    free(tmp);
    return k * (rows * cols / scope_len);
}
