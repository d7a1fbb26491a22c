/* The grids of grid.h: parameters chosen as each format's reference quantizer chooses them (ggml's
 * quantize_row_*_ref for the GGUF formats, run on the group itself; GPTQ's find_params for intN and the
 * int4_gG formats), stored scales rounded to f16 first so that rounding happens on the grid the file will
 * hold. */
#include "compress/quant/grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"

static void choose_q8_0(const sq_grid *g, const float *x, int n, const float *qw, sq_grid_params *p) {
    (void)g, (void)qw; /* ggml's Q8_0 has no importance-weighted search */
    float amax = 0;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    p->d[0] = sq_f16_to_f32(sq_f32_to_f16(amax / 127));
    p->m[0] = 0;
}

static void pack_q8_0(const sq_grid *g, const sq_grid_params *p, const int8_t *q, void *block) {
    (void)g;
    sq_block_q8_0 *b = block;
    b->d = sq_f32_to_f16(p->d[0]);
    memcpy(b->qs, q, SQ_QK8_0);
}

/* ggml's block formats: the reference quantizer's block (its scale search, importance-weighted when given
 * an importance), its scales read back; pack_block keeps them and stores the chosen integers. */
static void choose_block(const sq_grid *g, const float *x, int n, const float *qw, sq_grid_params *p) {
    const sq_dtype_traits *f = sq_dtype_info(g->dtype);
    if (qw && f->from_f32_weighted)
        f->from_f32_weighted(x, p->block, n, qw);
    else
        f->from_f32(x, p->block, n);
    sq_block_ints b = {0};
    sq_block_scales(g->dtype, p->block, &b);
    for (int s = 0; s < n / g->sub; s++) { /* each product as the dequantizers form it: exact in float */
        p->d[s] = b.d * (float)b.sc[s];
        p->m[s] = -(float)f->zero_value * p->d[s] - b.dmin * (float)b.m[s];
    }
}

_Static_assert(sizeof(sq_block_q6_K) <= SQ_GRID_MAX_BLOCK_BYTES, "a K-quant block fits sq_grid_params");

static void pack_block(const sq_grid *g, const sq_grid_params *p, const int8_t *q, void *block) {
    memcpy(block, p->block, sq_dtype_info(g->dtype)->block_bytes);
    sq_ref_block_set_ints(g->dtype, block, (const uint8_t *)q);
}

/* GPTQ's Quantizer.find_params(x, weight=True) for one group, asymmetric. */
static void choose_int(const sq_grid *g, const float *x, int n, const float *qw, sq_grid_params *p) {
    (void)qw; /* min-max, as GPTQ's */
    double min = 0, max = 0;
    for (int j = 0; j < n; j++) min = fmin(min, x[j]), max = fmax(max, x[j]);
    if (min == 0 && max == 0) min = -1, max = 1;
    const double s = (max - min) / g->qmax, z = nearbyint(-min / s);
    p->d[0] = (float)s;
    p->m[0] = (float)(-s * z);
}

/* squeeze's intN formats: GPTQ's parameters with the scale stored in f16 (sq_ref_intn_params, shared with
 * the formats' reference quantizer), packed in the format's layout (core/dtype.h, sq_intn_pack). */
static void choose_intn_stored(const sq_grid *g, const float *x, int n, const float *qw, sq_grid_params *p) {
    (void)qw;
    int z;
    sq_ref_intn_params(x, n, g->qmax, &p->d[0], &z);
    p->m[0] = -(float)z * p->d[0];
}

static void pack_intn(const sq_grid *g, const sq_grid_params *p, const int8_t *q, void *block) {
    const int z = p->d[0] != 0 ? (int)nearbyintf(-p->m[0] / p->d[0]) : 0;
    sq_intn_pack(g->dtype, p->d[0], z, (const uint8_t *)q, g->group, block);
}

SQ_NODISCARD sq_error *sq_grid_for(const char *type, int group, int64_t cols, sq_grid *out) {
    static const sq_grid fixed[] = {
        {"q8_0", SQ_DTYPE_Q8_0, SQ_QK8_0, SQ_QK8_0, -127, 127, 8, choose_q8_0, pack_q8_0},
        {"q4_0", SQ_DTYPE_Q4_0, 32, 32, 0, 15, 4, choose_block, pack_block},
        {"q4_1", SQ_DTYPE_Q4_1, 32, 32, 0, 15, 4, choose_block, pack_block},
        {"q5_0", SQ_DTYPE_Q5_0, 32, 32, 0, 31, 5, choose_block, pack_block},
        {"q5_1", SQ_DTYPE_Q5_1, 32, 32, 0, 31, 5, choose_block, pack_block},
        {"q2_k", SQ_DTYPE_Q2_K, SQ_QK_K, 16, 0, 3, 2, choose_block, pack_block},
        {"q3_k", SQ_DTYPE_Q3_K, SQ_QK_K, 16, 0, 7, 3, choose_block, pack_block},
        {"q4_k", SQ_DTYPE_Q4_K, SQ_QK_K, 32, 0, 15, 4, choose_block, pack_block},
        {"q5_k", SQ_DTYPE_Q5_K, SQ_QK_K, 32, 0, 31, 5, choose_block, pack_block},
        {"q6_k", SQ_DTYPE_Q6_K, SQ_QK_K, 16, 0, 63, 6, choose_block, pack_block},
    };
    static const char *const ints[] = {"int2", "int3", "int4"};
    *out = (sq_grid){0};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(type, fixed[i].name)) *out = fixed[i];
    /* squeeze's intN formats: a group of G, or the whole row (intN_g0) */
    const int dt = sq_dtype_from_name(type);
    const sq_dtype_traits *f = dt >= 0 ? sq_dtype_info((sq_dtype)dt) : NULL;
    if (f && f->zero == SQ_ZERO_POINT) {
        const int G = f->group_elems == SQ_GROUP_ROW ? (int)cols : f->group_elems;
        *out = (sq_grid){f->name, (sq_dtype)dt,       G,        G, 0, (1 << f->bits) - 1,
                         f->bits, choose_intn_stored, pack_intn};
    }
    for (int b = 2; b <= 4; b++)
        if (!strcmp(type, ints[b - 2])) {
            if (group < 0 || group > cols)
                return sq_errorf(SQ_ERR_INVALID_ARG, "%s: group %d is outside 0..%lld", type, group,
                                 (long long)cols);
            const int G = group ? group : (int)cols;
            *out = (sq_grid){ints[b - 2], SQ_DTYPE_F32, G, G, 0, (1 << b) - 1, b, choose_int, NULL};
        }
    if (!out->name || strcmp(out->name, type))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "no quantization grid \"%s\" (expected q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, "
                         "q4_k, q5_k, q6_k, intN_gG for N = 4, 3, 2 and G = 32, 64, 128, 0, int4, int3, "
                         "int2)",
                         type);
    if (cols <= 0 || (out->pack && (cols % out->group || cols % sq_dtype_info(out->dtype)->block_elems)))
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: rows of %lld are not a whole number of %d-element groups",
                         type, (long long)cols, out->group);
    return NULL;
}

SQ_NODISCARD sq_error *sq_grid_rtn(const sq_grid *g, const float *w, int64_t rows, int64_t cols,
                                   float *values, void *packed) {
    const size_t row_bytes = g->pack ? sq_row_bytes(g->dtype, cols) : 0;
    const size_t block_bytes = g->pack ? sq_dtype_info(g->dtype)->block_bytes : 0;
    int8_t *q = packed && g->pack ? malloc((size_t)g->group) : NULL; /* one group's integers */
    if (packed && g->pack && !q)
        return sq_errorf(SQ_ERR_NOMEM, "%s: no memory for a group of %d integers", g->name, g->group);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += g->group) {
            sq_grid_params p;
            const float *x = w + r * cols + c0; /* [group] */
            const int n = sq_grid_group_len(g, c0, cols);
            g->choose(g, x, n, NULL, &p);
            for (int j = 0; j < n; j++) {
                double v;
                const int qj = sq_grid_round(g, &p, j / g->sub, x[j], &v);
                if (values) values[r * cols + c0 + j] = (float)v;
                if (packed && g->pack) q[j] = (int8_t)qj;
            }
            if (packed && g->pack)
                g->pack(g, &p, q,
                        (uint8_t *)packed + (size_t)r * row_bytes + (size_t)(c0 / g->group) * block_bytes);
        }
    free(q);
    return NULL;
}
