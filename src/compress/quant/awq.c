/* AWQ's scale search, folding and clipping search (awq.h). Errors of a quantized matrix are measured on the
 * calibration inputs through X^T X: ||E X^T||^2 = sum over rows of e (X^T X) e^T. */
#include "compress/quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/method.h"
#include "core/tensor.h"

#define AWQ_GRID       20  /* alphas 0, 1/20, ..., 19/20 (the authors' n_grid) */
#define AWQ_CLIP_GRID  20  /* clipping ratios 1 - i/20 ... */
#define AWQ_MAX_SHRINK 0.5 /* ... down to 0.5 */

const char *const sq_awq_linear[SQ_AWQ_N_LINEAR] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                    "ffn_gate", "ffn_up", "ffn_down"};

const sq_awq_group sq_awq_groups[SQ_AWQ_N_GROUPS] = {
    {"attn_norm", 1, 0, 3, SQ_TAP_ATTN_IN},
    {"attn_v", 0, 3, 1, SQ_TAP_ATTN_OUT},
    {"ffn_norm", 1, 4, 2, SQ_TAP_FFN_IN},
    {"ffn_up", 0, 6, 1, SQ_TAP_FFN_DOWN},
};

/* A tensor's values, malloc'ed; *shape its shape. */
SQ_NODISCARD sq_error *sq_awq_read_tensor(const sq_model *m, const char *name, float **out,
                                          int64_t shape[2]) {
    *out = NULL;
    const int i = sq_model_tensor_index(m, name);
    if (i < 0) return sq_errorf(SQ_ERR_INVALID_ARG, "AWQ: the model has no %s", name);
    sq_tensor_info t;
    sq_model_tensor_info(m, i, &t);
    shape[0] = t.shape[0];
    shape[1] = t.ndim > 1 ? t.shape[1] : 1;
    const int64_t n = shape[0] * shape[1];
    if (!(*out = malloc((size_t)n * sizeof **out))) return sq_errorf(SQ_ERR_NOMEM, "AWQ: out of memory");
    sq_error *err = sq_model_read_tensor(m, name, *out, n);
    if (err) {
        free(*out);
        *out = NULL;
    }
    return err;
}

/* sum over rows of e h e^T for e [rows][cols], h [cols][cols]; eh is scratch [rows][cols] */
static double output_error(const double *e, const double *h, int64_t rows, int64_t cols, double *eh) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0, e, (int)cols,
                h, (int)cols, 0.0, eh, (int)cols);
    double s = 0;
    for (int64_t i = 0; i < rows * cols; i++) s += e[i] * eh[i];
    return s;
}

SQ_NODISCARD sq_error *sq_awq_clip_rtn(const sq_grid *g, const float *w, int64_t rows, int64_t cols,
                                       const double *h, float *values, void *packed) {
    const size_t row_bytes = g->pack ? sq_row_bytes(g->dtype, cols) : 0;
    const size_t block_bytes = g->pack ? sq_dtype_info(g->dtype)->block_bytes : 0;
    float *x = malloc((size_t)g->group * sizeof *x);  /* [group] shrunk values, for choose */
    double *e = malloc((size_t)g->group * sizeof *e); /* [group] rounding errors */
    int8_t *q = malloc((size_t)g->group * sizeof *q); /* [group] */
    int8_t *best_q = malloc((size_t)g->group * sizeof *q);
    float *best_v = malloc((size_t)g->group * sizeof *best_v);
    sq_error *err = x && e && q && best_q && best_v ? NULL : sq_errorf(SQ_ERR_NOMEM, "AWQ: out of memory");
    for (int64_t r = 0; !err && r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += g->group) {
            const int n = sq_grid_group_len(g, c0, cols);
            const float *wg = w + r * cols + c0; /* [n] */
            double best = INFINITY;
            sq_grid_params best_p;
            for (int k = 0; k <= (int)(AWQ_CLIP_GRID * AWQ_MAX_SHRINK); k++) {
                const float ratio = 1.0f - (float)k / AWQ_CLIP_GRID;
                for (int j = 0; j < n; j++) x[j] = wg[j] * ratio;
                sq_grid_params p;
                g->choose(g, x, n, NULL, &p);
                for (int j = 0; j < n; j++) {
                    double v;
                    q[j] = (int8_t)sq_grid_round(g, &p, j / g->sub, wg[j], &v);
                    e[j] = v - wg[j];
                    x[j] = (float)v;
                }
                double loss = 0; /* e H_gg e^T */
                for (int a = 0; a < n; a++) {
                    double row = 0;
                    for (int b = 0; b < n; b++) row += h[(c0 + a) * cols + c0 + b] * e[b];
                    loss += e[a] * row;
                }
                if (loss < best) {
                    best = loss;
                    best_p = p;
                    memcpy(best_q, q, (size_t)n);
                    memcpy(best_v, x, (size_t)n * sizeof *x);
                }
            }
            if (values) memcpy(values + r * cols + c0, best_v, (size_t)n * sizeof *best_v);
            if (packed && g->pack)
                g->pack(g, &best_p, best_q,
                        (uint8_t *)packed + (size_t)r * row_bytes + (size_t)(c0 / g->group) * block_bytes);
        }
    free(x);
    free(e);
    free(q);
    free(best_q);
    free(best_v);
    return err;
}

/* The error of group gi's layers quantized after scaling by s: sum over its layers of e H e^T. */
typedef struct group_work {
    float *w[3]; /* each layer's weights [rows][cols] */
    int64_t rows[3], cols;
    sq_grid grid[3];
    int quantized[3];
    float *ws;      /* [max rows][cols] scaled weights, scratch */
    float *v;       /* [max rows][cols] their quantized values */
    double *e, *eh; /* [max rows][cols] */
} group_work;

static double group_error(group_work *k, int n, const float *s, const double *h) {
    double total = 0;
    for (int l = 0; l < n; l++) {
        if (!k->quantized[l]) continue;
        const int64_t rows = k->rows[l], cols = k->cols;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) k->ws[r * cols + c] = k->w[l][r * cols + c] * s[c];
        sq_error_free(sq_grid_rtn(&k->grid[l], k->ws, rows, cols, k->v, NULL)); /* NULL: nothing packed */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                k->e[r * cols + c] = (double)k->v[r * cols + c] / s[c] - k->w[l][r * cols + c];
        total += output_error(k->e, h, rows, cols, k->eh);
    }
    return total;
}

/* Writes tensor `name` back from values (f32). */
static SQ_NODISCARD sq_error *put(sq_model *m, const char *name, const float *values) {
    return sq_model_edit_tensors(m, &(sq_tensor_edit){.name = name, .dtype = "f32", .values = values}, 1);
}

SQ_NODISCARD sq_error *sq_awq_fold(sq_model *model, int layer, int gi, float *const w[3],
                                   const int64_t rows[3], int64_t cols, const float *s) {
    const sq_awq_group *g = &sq_awq_groups[gi];
    char name[96];
    sq_error *err = NULL;
    for (int l = 0; l < g->n && !err; l++) {
        for (int64_t r = 0; r < rows[l]; r++)
            for (int64_t c = 0; c < cols; c++) w[l][r * cols + c] *= s[c];
        snprintf(name, sizeof name, "blk.%d.%s.weight", layer, sq_awq_linear[g->first + l]);
        err = put(model, name, w[l]);
    }
    const char *kinds[2] = {"weight", "bias"};
    for (int b = 0; b < 2 - g->prev_is_norm && !err; b++) {
        snprintf(name, sizeof name, "blk.%d.%s.%s", layer, g->prev, kinds[b]);
        if (b == 1 && sq_model_tensor_index(model, name) < 0) continue;
        float *pw;
        int64_t shape[2];
        err = sq_awq_read_tensor(model, name, &pw, shape);
        const int64_t inner = g->prev_is_norm || b == 1 ? 1 : shape[1];
        for (int64_t r = 0; !err && r < cols; r++)
            for (int64_t c = 0; c < inner; c++) pw[r * inner + c] /= s[r];
        if (!err) err = put(model, name, pw);
        free(pw);
    }
    return err;
}

SQ_NODISCARD sq_error *sq_awq_scale_block(sq_model *model, int layer, const sq_calib_stats *stats,
                                          const char *const types[SQ_AWQ_N_LINEAR], int group,
                                          double *xtx_out[4], float *alpha_out) {
    sq_layer_info li;
    SQ_TRY(sq_model_layer_info(model, layer, &li));
    for (int p = 0; p < 4; p++) xtx_out[p] = NULL;
    sq_error *err = NULL;
    for (int gi = 0; gi < 4 && !err; gi++) {
        const int point = sq_awq_groups[gi].point;
        const sq_calib_stats *st = &stats[point];
        const int64_t cols = st->width;
        if (alpha_out) alpha_out[gi] = -1;
        if (!(xtx_out[point] = malloc((size_t)(cols * cols) * sizeof(double)))) {
            err = sq_errorf(SQ_ERR_NOMEM, "AWQ: out of memory");
            break;
        }
        double *h = xtx_out[point]; /* [cols][cols] X^T X, then of the scaled input */
        memcpy(h, st->xtx, (size_t)(cols * cols) * sizeof *h);
        int any = 0;
        for (int l = 0; l < sq_awq_groups[gi].n; l++) any |= types[sq_awq_groups[gi].first + l] != NULL;
        const int gqa = gi == 1 && li.n_heads != li.n_kv_heads;
        if (!any || gqa) continue;

        group_work k = {.cols = cols};
        float *s = malloc((size_t)cols * sizeof *s), *best_s = malloc((size_t)cols * sizeof *s); /* [cols] */
        int64_t max_rows = 0;
        char name[96];
        for (int l = 0; l < sq_awq_groups[gi].n && !err; l++) {
            const int i = sq_awq_groups[gi].first + l;
            int64_t shape[2];
            snprintf(name, sizeof name, "blk.%d.%s.weight", layer, sq_awq_linear[i]);
            err = sq_awq_read_tensor(model, name, &k.w[l], shape);
            k.rows[l] = shape[0];
            max_rows = shape[0] > max_rows ? shape[0] : max_rows;
            k.quantized[l] = types[i] != NULL;
            if (!err && types[i]) err = sq_grid_for(types[i], group, cols, &k.grid[l]);
        }
        if (!err) {
            k.ws = malloc((size_t)(max_rows * cols) * sizeof *k.ws);
            k.v = malloc((size_t)(max_rows * cols) * sizeof *k.v);
            k.e = malloc((size_t)(max_rows * cols) * sizeof *k.e);
            k.eh = malloc((size_t)(max_rows * cols) * sizeof *k.eh);
            if (!s || !best_s || !k.ws || !k.v || !k.e || !k.eh)
                err = sq_errorf(SQ_ERR_NOMEM, "AWQ: out of memory");
        }
        /* the search: s = mean|x|^alpha, normalised */
        double best = INFINITY;
        float best_alpha = 0;
        for (int a = 0; !err && a < AWQ_GRID; a++) {
            const double alpha = (double)a / AWQ_GRID;
            double lo = INFINITY, hi = 0;
            for (int64_t c = 0; c < cols; c++) {
                s[c] = (float)fmax(pow(st->sum_abs[c] / (double)st->n_tokens, alpha), 1e-4);
                lo = fmin(lo, s[c]);
                hi = fmax(hi, s[c]);
            }
            const double norm = sqrt(lo * hi);
            for (int64_t c = 0; c < cols; c++) s[c] = (float)(s[c] / norm);
            const double e = group_error(&k, sq_awq_groups[gi].n, s, h);
            if (e < best) {
                best = e;
                best_alpha = (float)alpha;
                memcpy(best_s, s, (size_t)cols * sizeof *s);
            }
        }
        /* folding: the producer divided by s, the layers' columns multiplied by s */
        if (!err) {
            if (alpha_out) alpha_out[gi] = best_alpha;
            err = sq_awq_fold(model, layer, gi, k.w, k.rows, cols, best_s);
            for (int64_t i = 0; i < cols; i++)
                for (int64_t j = 0; j < cols; j++) h[i * cols + j] /= (double)best_s[i] * best_s[j];
        }
        for (int l = 0; l < 3; l++) free(k.w[l]);
        free(k.ws);
        free(k.v);
        free(k.e);
        free(k.eh);
        free(s);
        free(best_s);
    }
    if (err)
        for (int p = 0; p < 4; p++) free(xtx_out[p]), xtx_out[p] = NULL;
    return err;
}

/* ---------------------------------------------------------------- the method (method.h) */

static SQ_NODISCARD sq_error *awq_prepare(sq_model *model, int layer, const sq_calib_stats *stats,
                                          const char *const types[SQ_AWQ_N_LINEAR],
                                          const sq_quantize_params *p, double *xtx_out[4]) {
    (void)p;
    return sq_awq_scale_block(model, layer, stats, types, 0, xtx_out, NULL);
}

static SQ_NODISCARD sq_error *awq_supports(sq_dtype dtype) {
    sq_grid g;
    return sq_grid_for(sq_dtype_info(dtype)->name, 0, sq_dtype_info(dtype)->block_elems, &g);
}

static SQ_NODISCARD sq_error *awq_job(const sq_quant_job *job, sq_threadpool *pool) {
    (void)pool;
    if (!job->stats || !job->stats->xtx || job->stats->cols != job->cols)
        return sq_errorf(SQ_ERR_INVALID_ARG, "AWQ %s: no input statistics of width %lld", job->name,
                         (long long)job->cols);
    sq_grid g;
    SQ_TRY(sq_grid_for(sq_dtype_info(job->dtype)->name, 0, job->cols, &g));
    return sq_awq_clip_rtn(&g, job->w, job->rows, job->cols, job->stats->xtx, NULL, job->out);
}

const sq_quant_method sq_quant_awq = {.name = "awq",
                                      .needs_stats = 1,
                                      .stats = SQ_CALIB_XTX | SQ_CALIB_SUM_ABS,
                                      .supports = awq_supports,
                                      .prepare_block = awq_prepare,
                                      .quantize = awq_job};
