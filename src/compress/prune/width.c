/* Width pruning: whole attention heads (whole key/value groups under GQA: a KV head and the query heads that
 * share it) and FFN channels leave each block, which then has genuinely smaller matrices. Importance is
 * Wanda's, summed over the structure (Wanda-sp, as An et al. 2024 (FLAP) compare it): a group of columns
 * of the output projection (attn_output for a head, ffn_down for a channel) scores
 * sum_i sum_{j in group} |W_ij| * ||X_j||_2, X the projection's input over the calibration tokens. Each
 * block removes floor(heads * n_kv_heads) groups and floor(ffn * ffn_dim) channels, lowest first, calibrated
 * block by block (sq_calibrate) on the outputs of the blocks already narrowed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/error.h"

/* Column-group scores of w [rows][cols]: score[g] = sum over rows and the group's `width` columns of
 * |w| * sqrt(sum_sq). */
static void group_scores(const float *w, int64_t rows, int64_t cols, const double *sum_sq, int width,
                         double *score) {
    for (int64_t g = 0; g < cols / width; g++) score[g] = 0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            score[j / width] += fabs((double)w[i * cols + j]) * sqrt(sum_sq[j]);
}

/* dst gets the rows (by_rows) or columns of src [rows][cols] in the kept groups of `width` each. */
static void gather(const float *src, int64_t rows, int64_t cols, int by_rows, const int *keep, int n_keep,
                   int width, float *dst) {
    if (by_rows) {
        for (int k = 0; k < n_keep; k++)
            memcpy(dst + (int64_t)k * width * cols, src + (int64_t)keep[k] * width * cols,
                   (size_t)(width * cols) * sizeof *dst);
        return;
    }
    const int64_t new_cols = (int64_t)n_keep * width;
    for (int64_t i = 0; i < rows; i++)
        for (int k = 0; k < n_keep; k++)
            memcpy(dst + i * new_cols + (int64_t)k * width, src + i * cols + (int64_t)keep[k] * width,
                   (size_t)width * sizeof *dst);
}

/* One tensor of the block cut to its kept groups: rows (by_rows) or columns, groups of `width`. */
typedef struct cut {
    const char *suffix;
    int by_rows, heads; /* heads: groups are query heads (q rows, o columns) or KV heads (k, v rows); else
                           FFN channels */
    int kv;             /* groups are KV heads */
} cut;

static const cut cuts[] = {
    {"attn_q.weight", 1, 1, 0},      {"attn_k.weight", 1, 1, 1},   {"attn_v.weight", 1, 1, 1},
    {"attn_output.weight", 0, 1, 0}, {"attn_q.bias", 1, 1, 0},     {"attn_k.bias", 1, 1, 1},
    {"attn_v.bias", 1, 1, 1},        {"ffn_gate.weight", 1, 0, 0}, {"ffn_up.weight", 1, 0, 0},
    {"ffn_down.weight", 0, 0, 0},
};
enum { N_CUTS = sizeof cuts / sizeof *cuts };

typedef struct width_job {
    const sq_prune_options *o;
} width_job;

static SQ_NODISCARD sq_error *read_named(const sq_model *m, const char *name, float **out, int64_t *rows,
                                         int64_t *cols) {
    sq_tensor_info ti;
    sq_model_tensor_info(m, sq_model_tensor_index(m, name), &ti);
    *rows = ti.shape[0], *cols = ti.ndim > 1 ? ti.shape[1] : 1;
    *out = malloc((size_t)(*rows * *cols) * sizeof **out);
    if (!*out) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory reading %s", name);
    return sq_model_read_tensor(m, name, *out, *rows * *cols);
}

static SQ_NODISCARD sq_error *narrow_block(void *user, sq_model *model, int layer,
                                           const sq_calib_stats *stats) {
    const sq_prune_options *o = ((width_job *)user)->o;
    sq_layer_info li;
    SQ_TRY(sq_model_layer_info(model, layer, &li));
    const int hd = li.head_dim, group = li.n_heads / li.n_kv_heads; /* query heads per KV head */
    const int drop_groups = (int)floor(o->heads * li.n_kv_heads), drop_ffn = (int)floor(o->ffn * li.ffn_dim);
    int *kv_drop = malloc(sizeof(int) * (size_t)li.n_kv_heads),
        *kv_keep = malloc(sizeof(int) * (size_t)li.n_kv_heads);
    int *q_keep = malloc(sizeof(int) * (size_t)li.n_heads),
        *ffn_drop = malloc(sizeof(int) * (size_t)li.ffn_dim);
    int *ffn_keep = malloc(sizeof(int) * (size_t)li.ffn_dim);
    double *hscore = calloc((size_t)li.n_heads, sizeof *hscore),
           *gscore = calloc((size_t)li.n_kv_heads, sizeof *gscore);
    double *fscore = calloc((size_t)li.ffn_dim, sizeof *fscore);
    float *values[N_CUTS] = {0}, *src = NULL;
    char names[N_CUTS][64];
    sq_tensor_edit edits[N_CUTS];
    int n_edits = 0;
    sq_error *err = NULL;
    if (!kv_drop || !kv_keep || !q_keep || !ffn_drop || !ffn_keep || !hscore || !gscore || !fscore) {
        err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
        goto done;
    }
    int64_t rows, cols;
    char name[64];
    snprintf(name, sizeof name, "blk.%d.attn_output.weight", layer);
    if ((err = read_named(model, name, &src, &rows, &cols))) goto done;
    group_scores(src, rows, cols, stats[SQ_TAP_ATTN_OUT].sum_sq, hd, hscore);
    free(src), src = NULL;
    for (int h = 0; h < li.n_heads; h++) gscore[h / group] += hscore[h];
    snprintf(name, sizeof name, "blk.%d.ffn_down.weight", layer);
    if ((err = read_named(model, name, &src, &rows, &cols))) goto done;
    group_scores(src, rows, cols, stats[SQ_TAP_FFN_DOWN].sum_sq, 1, fscore);
    free(src), src = NULL;
    if (sq_prune_split_lowest(gscore, li.n_kv_heads, drop_groups, kv_drop, kv_keep) < 0 ||
        sq_prune_split_lowest(fscore, li.ffn_dim, drop_ffn, ffn_drop, ffn_keep) < 0) {
        err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
        goto done;
    }
    const int n_kv = li.n_kv_heads - drop_groups, n_q = n_kv * group, n_ffn = li.ffn_dim - drop_ffn;
    for (int g = 0; g < n_kv; g++)
        for (int k = 0; k < group; k++) q_keep[g * group + k] = kv_keep[g] * group + k;
    for (int c = 0; c < N_CUTS; c++) {
        snprintf(names[c], sizeof names[c], "blk.%d.%s", layer, cuts[c].suffix);
        if (sq_model_tensor_index(model, names[c]) < 0) continue; /* biases: Qwen2 only */
        if ((err = read_named(model, names[c], &src, &rows, &cols))) goto done;
        const int *keep = !cuts[c].heads ? ffn_keep : cuts[c].kv ? kv_keep : q_keep;
        const int n_keep = !cuts[c].heads ? n_ffn : cuts[c].kv ? n_kv : n_q, width = cuts[c].heads ? hd : 1;
        const int one_d = strstr(cuts[c].suffix, ".bias") != NULL;
        const int64_t new_rows = cuts[c].by_rows ? (int64_t)n_keep * width : rows;
        const int64_t new_cols = cuts[c].by_rows ? cols : (int64_t)n_keep * width;
        values[c] = malloc((size_t)(new_rows * new_cols) * sizeof(float));
        if (!values[c]) {
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory for %s", names[c]);
            goto done;
        }
        gather(src, rows, cols, cuts[c].by_rows, keep, n_keep, width, values[c]);
        free(src), src = NULL;
        edits[n_edits++] = (sq_tensor_edit){.name = names[c],
                                            .ndim = one_d ? 1 : 2,
                                            .shape = {new_rows, one_d ? 0 : new_cols},
                                            .values = values[c]};
    }
    err = sq_model_edit_tensors(model, edits, n_edits);
done:
    for (int c = 0; c < N_CUTS; c++) free(values[c]);
    free(src), free(kv_drop), free(kv_keep), free(q_keep), free(ffn_drop), free(ffn_keep);
    free(hscore), free(gscore), free(fscore);
    return err;
}

SQ_NODISCARD sq_error *sq_prune_width(sq_model *model, const sq_prune_options *o) {
    width_job job = {o};
    sq_calib_method method = {
        .stats = SQ_CALIB_SUM_SQ, .apply_block = narrow_block, .changes_weights = 1, .user = &job};
    sq_calib_options co = {
        .n_threads = o->n_threads, .progress = o->progress, .progress_user = o->progress_user};
    return sq_calibrate(model, o->calib, &method, &co);
}
