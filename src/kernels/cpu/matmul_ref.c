/* The plain-C oracle for sq_cpu_matmul (see matmul.h). */
#include "kernels/cpu/matmul.h"

#include <stdlib.h>

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

void sq_ref_matmul_x(const sq_tensor *w, sq_dtype x_dtype, const float *x, int n_tokens, float *y) {
    const int64_t cols = sq_tensor_row_len(w);
    const sq_dtype_traits *f = sq_dtype_info(x_dtype);
    float *xr = malloc((size_t)cols * (size_t)n_tokens * sizeof *xr);
    void *q = malloc(sq_row_bytes(x_dtype, cols));
    if (!xr || !q) abort();
    for (int t = 0; t < n_tokens; t++) {
        f->from_f32(x + (size_t)t * cols, q, cols);
        f->to_f32(q, xr + (size_t)t * cols, cols);
    }
    sq_ref_matmul(w, xr, n_tokens, y);
    free(xr);
    free(q);
}
