/* sq_prune: the request checked against the model before any work, the method run, and what changed
 * (parameters, non-zeros, bytes, blocks) measured before and after. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/prune/prune.h"
#include "core/dtype.h"
#include "core/error.h"
#include "model/model.h"

enum { MAX_NM_M = 256 };

static SQ_NODISCARD sq_error *check_unstructured(const sq_model *model, const sq_prune_options *o) {
    if (o->nm_m != 0 || o->nm_n != 0) {
        if (o->sparsity != 0)
            return sq_errorf(SQ_ERR_INVALID_ARG, "prune: give either a sparsity or N:M, not both");
        if (o->nm_n <= 0 || o->nm_m <= o->nm_n || o->nm_m > MAX_NM_M)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "prune: N:M sparsity %d:%d needs 0 < N < M <= %d (N weights of every M kept)",
                             o->nm_n, o->nm_m, MAX_NM_M);
    } else if (!(o->sparsity >= 0 && o->sparsity < 1)) {
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: sparsity %g is outside [0, 1)", o->sparsity);
    }
    if (o->owl_lambda != 0 || o->owl_m != 0) {
        if (o->method == SQ_PRUNE_MAGNITUDE || o->nm_m)
            return sq_errorf(SQ_ERR_INVALID_ARG, "prune: OWL applies to wanda and sparsegpt at a sparsity, "
                                                 "not to magnitude pruning or N:M");
        if (!(o->owl_lambda > 0 && o->owl_lambda <= o->sparsity && o->sparsity + o->owl_lambda < 1))
            return sq_errorf(
                SQ_ERR_INVALID_ARG,
                "prune: OWL lambda %g must lie in (0, %g] so that every block's sparsity stays in "
                "[0, 1)",
                o->owl_lambda, o->sparsity < 1 - o->sparsity ? o->sparsity : 1 - o->sparsity);
        if (!(o->owl_m >= 0 && o->owl_m <= 1e6))
            return sq_errorf(SQ_ERR_INVALID_ARG, "prune: OWL's outlier threshold M %g is outside (0, 1e6]",
                             o->owl_m);
    }
    sq_model_info info;
    sq_model_get_info(model, &info);
    for (int l = 0; l < info.n_layers; l++) {
        char names[SQ_PRUNE_MAX_MATRICES][64];
        sq_tap_point input[SQ_PRUNE_MAX_MATRICES];
        const int n = sq_prune_block_matrices(model, l, names, input);
        for (int i = 0; i < n; i++) {
            const char *name = names[i];
            sq_tensor_info ti;
            sq_model_tensor_info(model, sq_model_tensor_index(model, name), &ti);
            int dtype = sq_dtype_from_name(ti.dtype);
            if (dtype < 0 || sq_dtype_info((sq_dtype)dtype)->zero == SQ_ZERO_MIN)
                return sq_errorf(SQ_ERR_UNSUPPORTED,
                                 "prune: %s is %s, whose blocks cannot store an exact zero (a per-block "
                                 "minimum); convert the model to f16 or f32 first and quantize after pruning",
                                 name, ti.dtype);
            if (o->nm_m > 0 && ti.shape[ti.ndim - 1] % o->nm_m != 0)
                return sq_errorf(SQ_ERR_INVALID_ARG,
                                 "prune: %s has %lld input columns, not a multiple of N:M's M = %d", name,
                                 (long long)ti.shape[ti.ndim - 1], o->nm_m);
        }
    }
    return NULL;
}

/* Samples the model can run: at least one of 2..max_seq_len tokens, ids in its vocabulary. */
static SQ_NODISCARD sq_error *check_calib(const sq_model *model, const sq_calib_samples *c, const char *who) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (!c || !c->ids || c->n_samples < 1)
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: %s needs calibration samples", who);
    if (c->seq_len < 2 || c->seq_len > info.max_seq_len)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "prune: calibration samples of %d tokens; the model takes 2 to %d", c->seq_len,
                         info.max_seq_len);
    for (int64_t i = 0; i < (int64_t)c->n_samples * c->seq_len; i++)
        if (c->ids[i] < 0 || c->ids[i] >= info.vocab_size)
            return sq_errorf(
                SQ_ERR_INVALID_ARG,
                "prune: calibration sample %lld, token %lld is id %d, outside the vocabulary of %d",
                (long long)(i / c->seq_len), (long long)(i % c->seq_len), c->ids[i], info.vocab_size);
    return NULL;
}

static SQ_NODISCARD sq_error *check_depth(const sq_model *model, const sq_prune_options *o) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (o->n_remove < 1 || o->n_remove >= info.n_layers)
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: removing %d of %d blocks; remove 1 to %d", o->n_remove,
                         info.n_layers, info.n_layers - 1);
    if (o->criterion == SQ_DEPTH_MAGNITUDE) return NULL;
    if (o->criterion == SQ_DEPTH_TAYLOR) {
        int first, last;
        sq_prune_taylor_kept(info.n_layers, o, &first, &last);
        if (info.n_layers - first - last < o->n_remove)
            return sq_errorf(
                SQ_ERR_INVALID_ARG,
                "prune: Taylor+ keeps the first %d and last %d of %d blocks, which leaves fewer than "
                "the %d to remove",
                first, last, info.n_layers, o->n_remove);
        return check_calib(model, o->calib, "the taylor criterion");
    }
    if (o->criterion != SQ_DEPTH_PPL)
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: unknown depth criterion %d", (int)o->criterion);
    return check_calib(model, o->calib, "the ppl criterion");
}

/* Fractions below 1 (every block keeps a head group and an FFN channel), and cut columns that stay whole
 * blocks of the tensor's format. */
static SQ_NODISCARD sq_error *check_width(const sq_model *model, const sq_prune_options *o) {
    if (!(o->heads >= 0 && o->heads < 1) || !(o->ffn >= 0 && o->ffn < 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: width fractions heads %g and ffn %g must lie in [0, 1)",
                         o->heads, o->ffn);
    sq_model_info info;
    sq_model_get_info(model, &info);
    for (int l = 0; l < info.n_layers; l++) {
        sq_layer_info li;
        SQ_TRY(sq_model_layer_info(model, l, &li));
        int kv = li.n_kv_heads - (int)floor(o->heads * li.n_kv_heads),
            ffn = li.ffn_dim - (int)floor(o->ffn * li.ffn_dim);
        const char *cut[] = {"attn_output.weight", "ffn_down.weight"};
        const int64_t cols[] = {(int64_t)kv * (li.n_heads / li.n_kv_heads) * li.head_dim, ffn};
        for (int i = 0; i < 2; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s", l, cut[i]);
            sq_tensor_info ti;
            sq_model_tensor_info(model, sq_model_tensor_index(model, name), &ti);
            int dtype = sq_dtype_from_name(ti.dtype);
            int block = dtype < 0 ? 1 : sq_dtype_info((sq_dtype)dtype)->block_elems;
            if (cols[i] % block)
                return sq_errorf(
                    SQ_ERR_UNSUPPORTED,
                    "prune: width leaves %s %lld columns, not whole %s blocks of %d; convert the model to "
                    "f16 or f32 first",
                    name, (long long)cols[i], ti.dtype, block);
        }
    }
    return check_calib(model, o->calib, "width pruning");
}

/* One ratio in range, float weights, and a budget that leaves every weight at least rank 1. */
static SQ_NODISCARD sq_error *check_lowrank(const sq_model *model, const sq_prune_options *o) {
    const double rr = o->rank_ratio, pr = o->param_ratio;
    if ((rr != 0) == (pr != 0))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "prune: low rank needs one of a rank ratio and a parameter ratio");
    if (rr != 0 && !(rr > 0 && rr <= 1))
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "prune: rank ratio %g is outside (0, 1] (a rank above the matrix's own cannot be kept)", rr);
    if (pr != 0 && !(pr > 0 && pr < 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: parameter ratio %g is outside (0, 1)", pr);
    if (!(o->asvd_alpha >= 0 && o->asvd_alpha <= 4))
        return sq_errorf(SQ_ERR_INVALID_ARG, "prune: ASVD alpha %g is outside (0, 4]", o->asvd_alpha);
    sq_model_info info;
    sq_model_get_info(model, &info);
    int64_t dense = 0, least = 0;
    for (int l = 0; l < info.n_layers; l++)
        for (int i = 0; i < SQ_N_LINEAR; i++) {
            const sq_layer *L = &model->layers[l];
            int64_t rows, cols;
            sq_layer_linear_shape(L, (sq_linear)i, &rows, &cols);
            dense += rows * cols;
            least += rows + cols < rows * cols ? rows + cols : rows * cols;
            const sq_tensor *t = sq_layer_dense(L, (sq_linear)i);
            if (t && sq_dtype_info(t->dtype)->block_elems > 1)
                return sq_errorf(SQ_ERR_UNSUPPORTED,
                                 "prune: blk.%d.%s.weight is %s; factorise f32, f16 or bf16 weights (convert "
                                 "first) and quantize after",
                                 l, sq_linear_names[i], sq_dtype_info(t->dtype)->name);
        }
    if (pr != 0 && (double)least > pr * (double)dense)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "prune: parameter ratio %g is below %.4f, what rank 1 in every linear weight keeps",
                         pr, (double)least / (double)dense);
    return o->method == SQ_PRUNE_ASVD ? check_calib(model, o->calib, "ASVD") : NULL;
}

/* A mixture of experts, and a count that leaves every block more experts than a token uses. */
static SQ_NODISCARD sq_error *check_experts(const sq_model *model, const sq_prune_options *o) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (!info.n_experts)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "prune: expert pruning needs a mixture-of-experts model; %s has "
                         "no experts",
                         info.arch);
    if (o->n_remove_experts < 1 || o->n_remove_experts > info.n_experts - info.n_experts_used)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "prune: removing %d of %d experts per block; with %d used per token remove 1 to %d",
                         o->n_remove_experts, info.n_experts, info.n_experts_used,
                         info.n_experts - info.n_experts_used);
    return check_calib(model, o->calib, "expert pruning");
}

SQ_NODISCARD sq_error *sq_prune_check(const sq_model *model, const sq_prune_options *o) {
    if (!model || !o) return sq_errorf(SQ_ERR_INVALID_ARG, "prune: no model or options");
    sq_model_info info;
    sq_model_get_info(model, &info);
    if (o->method == SQ_PRUNE_EXPERTS) return check_experts(model, o);
    const int per_expert =
        (o->method == SQ_PRUNE_MAGNITUDE || o->method == SQ_PRUNE_WANDA || o->method == SQ_PRUNE_SPARSEGPT) &&
        !o->owl_lambda;
    if (info.n_experts && o->method != SQ_PRUNE_DEPTH && !per_expert)
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "prune: %s is a mixture-of-experts model; depth, expert, magnitude, Wanda and "
            "SparseGPT pruning (each expert's matrices on their own) support it, not this method "
            "(OWL, width and low-rank do not handle expert tensors)",
            info.arch);
    /* the other methods read and cut dense weights; removing blocks by perplexity only runs the model */
    if (sq_model_has_lowrank(model) && !(o->method == SQ_PRUNE_DEPTH && o->criterion == SQ_DEPTH_PPL))
        return sq_errorf(SQ_ERR_UNSUPPORTED,
                         "prune: the model already has low-rank (factorised) weights; only depth pruning by "
                         "the ppl criterion applies to it (prune the dense model first, factorise last)");
    switch (o->method) {
    case SQ_PRUNE_MAGNITUDE:
        return check_unstructured(model, o);
    case SQ_PRUNE_WANDA:
    case SQ_PRUNE_SPARSEGPT:
        SQ_TRY(check_unstructured(model, o));
        return check_calib(model, o->calib, o->method == SQ_PRUNE_WANDA ? "Wanda" : "SparseGPT");
    case SQ_PRUNE_WIDTH:
        return check_width(model, o);
    case SQ_PRUNE_DEPTH:
        return check_depth(model, o);
    case SQ_PRUNE_LOWRANK:
    case SQ_PRUNE_ASVD:
        return check_lowrank(model, o);
    case SQ_PRUNE_EXPERTS:
        break; /* checked above */
    }
    return sq_errorf(SQ_ERR_INVALID_ARG, "prune: unknown method %d", (int)o->method);
}

sq_error *sq_prune_measure(const sq_model *model, int64_t *params, int64_t *nonzero, size_t *bytes,
                           int *n_layers) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    *params = info.n_params, *bytes = info.weight_bytes, *n_layers = info.n_layers, *nonzero = 0;
    for (int i = 0; i < sq_model_n_tensors(model); i++) {
        sq_tensor_info ti;
        sq_model_tensor_info(model, i, &ti);
        int64_t n = 1;
        for (int d = 0; d < ti.ndim; d++) n *= ti.shape[d];
        float *v = malloc((size_t)n * sizeof *v);
        if (!v) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory reading %s", ti.name);
        sq_error *err = sq_model_read_tensor(model, ti.name, v, n);
        for (int64_t k = 0; k < n && !err; k++) *nonzero += v[k] != 0;
        free(v);
        SQ_TRY(err);
    }
    return NULL;
}

static SQ_NODISCARD sq_error *prune_depth(sq_model *model, const sq_prune_options *o, sq_prune_result *res) {
    const int n_layers = res->n_layers_before;
    res->scores = calloc((size_t)n_layers, sizeof *res->scores);
    res->removed = calloc((size_t)n_layers, sizeof *res->removed);
    int *keep = calloc((size_t)n_layers, sizeof *keep);
    sq_error *err = NULL;
    if (!res->scores || !res->removed || !keep) err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    if (!err) err = sq_prune_depth_scores(model, o, res->scores, &res->base_score);
    /* Taylor+: the protected blocks take part as "not a number", which ranks as most important */
    double *ranked = err ? NULL : malloc((size_t)n_layers * sizeof *ranked);
    if (!err && !ranked) err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    if (!err) {
        memcpy(ranked, res->scores, (size_t)n_layers * sizeof *ranked);
        if (o->criterion == SQ_DEPTH_TAYLOR) {
            int first, last;
            sq_prune_taylor_kept(n_layers, o, &first, &last);
            for (int l = 0; l < n_layers; l++)
                if (l < first || l >= n_layers - last) ranked[l] = NAN;
        }
        if (sq_prune_split_lowest(ranked, n_layers, o->n_remove, res->removed, keep) < 0)
            err = sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    }
    free(ranked);
    if (!err) {
        res->n_removed = o->n_remove;
        err = sq_model_set_layers(model, keep, n_layers - o->n_remove);
    }
    free(keep);
    return err;
}

/* Unstructured and N:M, with OWL's per-block sparsities when asked. */
static SQ_NODISCARD sq_error *prune_unstructured(sq_model *model, const sq_prune_options *o,
                                                 sq_prune_result *res) {
    if (!o->owl_lambda) return sq_prune_unstructured(model, o, NULL, res);
    res->owl_lod = calloc((size_t)res->n_layers_before, sizeof *res->owl_lod);
    res->layer_sparsity = calloc((size_t)res->n_layers_before, sizeof *res->layer_sparsity);
    if (!res->owl_lod || !res->layer_sparsity) return sq_errorf(SQ_ERR_NOMEM, "prune: out of memory");
    SQ_TRY(sq_prune_owl(model, o, res->owl_lod, res->layer_sparsity));
    return sq_prune_unstructured(model, o, res->layer_sparsity, res);
}

SQ_NODISCARD sq_error *sq_prune(sq_model *model, const sq_prune_options *o, sq_prune_result *res) {
    memset(res, 0, sizeof *res);
    SQ_TRY(sq_prune_check(model, o));
    SQ_TRY(sq_prune_measure(model, &res->params_before, &res->nonzero_before, &res->bytes_before,
                            &res->n_layers_before));
    sq_error *err = o->method == SQ_PRUNE_DEPTH     ? prune_depth(model, o, res)
                    : o->method == SQ_PRUNE_EXPERTS ? sq_prune_experts(model, o, res)
                    : o->method == SQ_PRUNE_WIDTH   ? sq_prune_width(model, o)
                    : o->method == SQ_PRUNE_LOWRANK || o->method == SQ_PRUNE_ASVD
                        ? sq_prune_lowrank(model, o, &res->n_factorised)
                        : prune_unstructured(model, o, res);
    if (!err)
        err = sq_prune_measure(model, &res->params_after, &res->nonzero_after, &res->bytes_after,
                               &res->n_layers_after);
    if (err) sq_prune_result_free(res);
    return err;
}

void sq_prune_result_free(sq_prune_result *res) {
    if (!res) return;
    free(res->scores);
    free(res->removed);
    free(res->layer_sparsity);
    free(res->owl_lod);
    free(res->experts_magnitude);
    res->experts_magnitude = NULL;
    res->scores = NULL;
    res->removed = NULL;
    res->layer_sparsity = res->owl_lod = NULL;
    res->n_removed = 0;
}
