/* PLACEHOLDER fast path: replaced by the CPU kernels module. The reference below stays. */
#include "kernels/cpu/matmul.h"

#include <stdlib.h>

#include "core/error.h"

void sq_ref_matmul(const sq_tensor *w, const float *x, int n_tokens, float *y) {
    int64_t rows = sq_tensor_n_rows(w), cols = sq_tensor_row_len(w);
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) abort();
    for (int64_t r = 0; r < rows; r++) {
        sq_tensor_row_to_f32(w, r, row);
        for (int t = 0; t < n_tokens; t++) {
            double acc = 0;
            for (int64_t c = 0; c < cols; c++) acc += (double)x[(size_t)t * cols + c] * row[c];
            y[(size_t)t * rows + r] = (float)acc;
        }
    }
    free(row);
}

void sq_cpu_matmul(sq_threadpool *pool, const sq_tensor *w, const float *x, int n_tokens, float *y) {
    (void)pool;
    sq_ref_matmul(w, x, n_tokens, y);
}

const char *sq_cpu_kernel_name(void) { return "scalar"; }
sq_error *sq_cpu_force_kernels(const char *name) {
    return sq_errorf(SQ_ERR_UNSUPPORTED, "kernel set %s not available yet", name);
}
