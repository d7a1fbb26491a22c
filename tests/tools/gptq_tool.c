/* gptq_tool: GPTQ on one layer (compress/quant/gptq.h), round to nearest on the same grid (grid.h), or the
 * format's own reference quantizer (core/dtype_ref.c), for the reference test against a plain numpy GPTQ
 * (tests/py/test_gptq.py).
 *
 *   gptq_tool METHODS TYPE GROUP ACT_ORDER BLOCK DAMP ROWS COLS N_TOKENS W XTX VALUES PACKED
 *
 * METHODS: a comma-separated list of gptq, rtn and ref (rtn and ref ignore ACT_ORDER .. DAMP, N_TOKENS and
 * XTX's values), run in that order in one process; reads W (float32 [ROWS][COLS]) and XTX (float64
 * [COLS][COLS], the sum of x x^T over N_TOKENS inputs), writes for method M the files VALUES.M (float32
 * [ROWS][COLS], the quantized weights) and PACKED.M (the format's bytes; empty for grids without a layout).
 * Errors go to stderr with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/gptq.h"
#include "core/tensor.h"

static void *read_all(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    void *p = malloc(n);
    if (!f || !p || fread(p, 1, n, f) != n) {
        fprintf(stderr, "gptq_tool: cannot read %zu bytes from %s\n", n, path);
        exit(1);
    }
    fclose(f);
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "gptq_tool: cannot write %s\n", path);
        exit(1);
    }
}

/* One method into values and packed. */
static SQ_NODISCARD sq_error *run(const char *method, const sq_grid *grid, const sq_gptq_options *o,
                                  const float *w, const double *xtx, int64_t rows, int64_t cols,
                                  int64_t n_tokens, float *values, void *packed) {
    if (!strcmp(method, "ref")) { /* the format's from_f32 row by row, then its to_f32 */
        if (!grid->pack) return sq_errorf(SQ_ERR_INVALID_ARG, "%s has no stored layout", grid->name);
        const sq_dtype_traits *f = sq_dtype_info(grid->dtype);
        const size_t rb = sq_row_bytes(grid->dtype, cols);
        for (int64_t r = 0; r < rows; r++) {
            f->from_f32(w + r * cols, (uint8_t *)packed + r * rb, cols);
            f->to_f32((uint8_t *)packed + r * rb, values + r * cols, cols);
        }
        return NULL;
    }
    if (!strcmp(method, "rtn")) {
        return sq_grid_rtn(grid, w, rows, cols, values, packed);
    }
    if (!strcmp(method, "gptq"))
        return sq_gptq_quantize("test", w, rows, cols, xtx, n_tokens, grid, o, values, packed);
    return sq_errorf(SQ_ERR_INVALID_ARG, "unknown method \"%s\" (expected gptq, rtn or ref)", method);
}

int main(int argc, char **argv) {
    if (argc != 14) {
        fprintf(stderr,
                "usage: gptq_tool gptq|rtn|ref[,...] TYPE GROUP ACT_ORDER BLOCK DAMP ROWS COLS N_TOKENS W "
                "XTX VALUES PACKED\n");
        return 2;
    }
    char *methods = argv[1];
    argv++;
    const int64_t rows = atoll(argv[6]), cols = atoll(argv[7]), n_tokens = atoll(argv[8]);
    sq_grid grid;
    sq_error *err = sq_grid_for(argv[1], atoi(argv[2]), cols, &grid);
    const sq_gptq_options o = {
        .damp = atof(argv[5]), .block_size = atoi(argv[4]), .act_order = atoi(argv[3])};
    float *w = read_all(argv[9], (size_t)(rows * cols) * sizeof(float));
    double *xtx = read_all(argv[10], (size_t)(cols * cols) * sizeof(double));
    float *values = malloc((size_t)(rows * cols) * sizeof *values);
    const size_t packed_bytes = !err && grid.pack ? (size_t)rows * sq_row_bytes(grid.dtype, cols) : 0;
    void *packed = malloc(packed_bytes + 1);
    for (char *m = strtok(methods, ","); m && !err; m = strtok(NULL, ",")) {
        err = run(m, &grid, &o, w, xtx, rows, cols, n_tokens, values, packed);
        char path[4096];
        snprintf(path, sizeof path, "%s.%s", argv[11], m);
        if (!err) write_all(path, values, (size_t)(rows * cols) * sizeof *values);
        snprintf(path, sizeof path, "%s.%s", argv[12], m);
        if (!err) write_all(path, packed, packed_bytes);
    }
    free(w);
    free(xtx);
    free(values);
    free(packed);
    if (err) {
        fprintf(stderr, "gptq_tool: %s\n", sq_error_message(err));
        sq_error_free(err);
        return 1;
    }
    return 0;
}
