/* Quantization grids: the values a format can store for one group of weights, as error-feedback and
 * search methods (GPTQ, AWQ's clipping search) need them: choose a group's parameters once, then round any
 * value onto that group's grid, then pack the chosen integers into the format's bytes.
 *
 * Every format here stores value = d[s] * q + m[s] for an integer q in [qmin, qmax], with (d, m) per
 * sub-block s of `sub` elements inside a group of `group` elements whose parameters are chosen together:
 *   q8_0            value = d * q, q in [-127, 127], d = f16(max |x| / 127) (ggml's, llama.cpp)
 *   ggml's blocks   q4_0, q4_1, q5_0, q5_1 (groups of 32) and the K-quants q2_k, q3_k, q4_k, q5_k, q6_k
 *                   (groups of one 256-value super-block, sub-blocks of 16 or 32): the group's parameters
 *                   are the scales (and minimums) the format's own reference quantizer chooses for it
 *                   (core/dtype_ref.c, ggml's quantize_row_*_ref; its importance-weighted search, llama.cpp's
 *                   quantize_* with quant_weights, when an importance is given), read back as
 *                   value = (d sc_s) (q - zero) - dmin m_s (core/dtype.h, sq_block_ints), q unsigned in
 *                   [0, 2^bits - 1]; packing keeps that block's scale bytes and stores the chosen integers
 *                   (sq_ref_block_set_ints), so the file is the format's, bit for bit
 *   intN            value = s (q - z), q in [0, 2^N - 1], s = (max' - min') / (2^N - 1),
 *                   z = round(-min' / s), max' = max(max, 0), min' = min(min, 0): GPTQ's asymmetric
 *                   quantizer (quant.py, find_params), per group of G columns or per output row (G = the
 *                   row length); values only
 *   intN_gG         intN (N = 4, 3, 2) with that group (32, 64, 128; 0: the whole row, group = cols) and
 *                   its scale rounded to f16 (m = -z d), packed as squeeze's formats of those names
 *                   (core/dtype.h) */
#ifndef SQ_COMPRESS_QUANT_GRID_H
#define SQ_COMPRESS_QUANT_GRID_H

#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#define SQ_GRID_MAX_SUB         16  /* sub-blocks per group */
#define SQ_GRID_MAX_BLOCK_BYTES 212 /* a block of the widest ggml format packed through its scales (Q6_K) */

typedef struct sq_grid_params {
    float d[SQ_GRID_MAX_SUB], m[SQ_GRID_MAX_SUB]; /* value = d[s] * q + m[s] */
    uint8_t block[SQ_GRID_MAX_BLOCK_BYTES]; /* ggml's blocks: the reference quantizer's block, its scales */
} sq_grid_params;

typedef struct sq_grid {
    const char *name;
    sq_dtype dtype; /* the format the packed bytes are in; SQ_DTYPE_F32 for intN (values only) */
    int group;      /* elements whose parameters are chosen together (a block), along a row */
    int sub;        /* elements sharing one (d, m) inside a group */
    int qmin, qmax;
    int bits; /* intN: N */
    /* the parameters of one group x[n]: n = group, or fewer for intN's last group of a row; qw [n] (NULL:
     * none) the importance of each value (an imatrix's mean x^2 of its input channel), which grids with an
     * importance-weighted reference search use */
    void (*choose)(const struct sq_grid *g, const float *x, int n, const float *qw, sq_grid_params *p);
    /* the format's bytes of one group from its parameters and integers q[group]; NULL: values only */
    void (*pack)(const struct sq_grid *g, const sq_grid_params *p, const int8_t *q, void *block);
} sq_grid;

/* The grid of a format name ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
 * squeeze's "intN_gG": "int4_g32" .. "int2_g128", "int4_g0" .. "int2_g0") or of squeeze's
 * asymmetric "int4", "int3", "int2" with `group` columns per parameter group (32, 64, 128, ...; 0: one group
 * per row of `cols`). Fails with SQ_ERR_INVALID_ARG naming the type when there is no such grid, or when cols
 * is not a whole number of a block format's blocks. */
SQ_NODISCARD sq_error *sq_grid_for(const char *type, int group, int64_t cols, sq_grid *out);

/* The integer nearest x on sub-block s of p (ties to even), clamped to [qmin, qmax]; *value gets its value.
 */
static inline int sq_grid_round(const sq_grid *g, const sq_grid_params *p, int s, double x, double *value) {
    const double d = p->d[s], m = p->m[s];
    double q = d != 0 ? __builtin_nearbyint((x - m) / d) : 0;
    if (q < g->qmin) q = g->qmin;
    if (q > g->qmax) q = g->qmax;
    *value = d * q + m;
    return (int)q;
}

/* Elements of the group starting at column c0 of a row of cols. */
static inline int sq_grid_group_len(const sq_grid *g, int64_t c0, int64_t cols) {
    return cols - c0 < g->group ? (int)(cols - c0) : g->group;
}

/* Round to nearest on the grid: every group of every row of w [rows][cols] gets its parameters from its own
 * values, each value the nearest on them. values [rows][cols] (may be NULL) gets the results, packed (may be
 * NULL; grids with a layout) the format's bytes. Fails (SQ_ERR_NOMEM) only when packing finds no memory for
 * a group's integers. */
SQ_NODISCARD sq_error *sq_grid_rtn(const sq_grid *g, const float *w, int64_t rows, int64_t cols,
                                   float *values, void *packed);

#endif
