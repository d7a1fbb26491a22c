/* Wanda's importance (Sun et al. 2023, eq. 1): |W_ij| * ||X_j||_2, the weight's magnitude times the norm of
 * the input channel it multiplies, compared within each output row (sq_prune_mask's SQ_MASK_PER_ROW). */
#include <math.h>

#include "compress/prune/prune.h"

void sq_prune_wanda_scores(const float *w, int64_t rows, int64_t cols, const double *sum_sq, float *score) {
    for (int64_t j = 0; j < cols; j++) {
        double norm = sqrt(sum_sq[j]);
        for (int64_t i = 0; i < rows; i++)
            score[i * cols + j] = (float)(fabs((double)w[i * cols + j]) * norm);
    }
}
