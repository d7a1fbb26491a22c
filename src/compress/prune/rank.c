/* Which structures go: the k lowest-scored of n (blocks in depth pruning, head groups and FFN channels in
 * width pruning). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"

typedef struct ranked {
    double score;
    int index;
} ranked;

/* Lower score first; a score that is not a number counts as most important; ties: lower index first. */
static int by_importance(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    double p = isnan(x->score) ? INFINITY : x->score, q = isnan(y->score) ? INFINITY : y->score;
    if (p != q) return p < q ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int sq_prune_split_lowest(const double *score, int n, int k, int *drop, int *keep) {
    ranked *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    unsigned char *gone = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!order || !gone) {
        free(order), free(gone);
        return -1;
    }
    for (int i = 0; i < n; i++) order[i] = (ranked){score[i], i};
    qsort(order, (size_t)n, sizeof *order, by_importance);
    for (int i = 0; i < k; i++) gone[order[i].index] = 1;
    for (int i = 0, d = 0, s = 0; i < n; i++) {
        if (gone[i])
            drop[d++] = i;
        else
            keep[s++] = i;
    }
    free(order), free(gone);
    return 0;
}
