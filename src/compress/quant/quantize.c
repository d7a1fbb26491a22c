/* sq_quantize_model: plans every tensor's format (preset.c), checks the whole request, then quantizes one
 * weight matrix at a time with the chosen method (method.h) and puts it into the model through
 * sq_model_edit_tensors; writes the GGUF file last. Memory beyond the model: one matrix in fp32 and its
 * quantized bytes. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/quant/awq.h"
#include "compress/quant/budget.h"
#include "compress/quant/method.h"
#include "compress/quant/preset.h"
#include "model/arch.h"
#include "core/tensor.h"
#include "formats/out_file.h"
#include "model/model.h"
#include "squeeze.h"

static const sq_quant_method *method_find(const char *name) {
    static const sq_quant_method *const methods[] = {&sq_quant_rtn, &sq_quant_gptq, &sq_quant_awq,
                                                     &sq_quant_smoothquant};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    return NULL;
}

void sq_quantize_report_free(sq_quantize_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tensors; i++) free((char *)r->tensors[i].name), free(r->tensors[i].experts_rtn);
    free(r->tensors);
    free(r);
}

/* The format a --keep type names, or an error: any format GGUF holds but Q8_K (an activation format). */
static SQ_NODISCARD sq_error *keep_type(const sq_quant_keep *k, sq_dtype *out) {
    const int d = k->type ? sq_dtype_from_name(k->type) : -1;
    if (d < 0 || d == SQ_DTYPE_Q8_K || sq_dtype_info((sq_dtype)d)->ggml_type < 0)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "keep %s=%s: unknown type \"%s\" (expected a format such as f16, q8_0, q6_k)",
                         k->pattern ? k->pattern : "", k->type ? k->type : "", k->type ? k->type : "");
    *out = (sq_dtype)d;
    return NULL;
}

/* An N:M format keeps only N of every M values, so it takes only weights that are N:M already: a matrix that
 * is not gets the format's dense counterpart (*dtype), or, named by a keep rule (manual), an error naming
 * the first row and columns that break the pattern. */
static SQ_NODISCARD sq_error *nm_check(const sq_model *model, const sq_tensor_info *t, sq_dtype nm,
                                       int manual, sq_dtype *dtype) {
    const sq_dtype_traits *f = sq_dtype_info(nm);
    const int64_t cols = t->shape[t->ndim - 1],
                  n = (int64_t)(sq_tensor_bytes_for(SQ_DTYPE_F32, t->ndim, t->shape) / 4);
    float *w = malloc((size_t)n * sizeof *w);
    if (!w)
        return sq_errorf(SQ_ERR_NOMEM, "quantize: no memory for tensor %s (%lld values)", t->name,
                         (long long)n);
    sq_error *err = sq_model_read_tensor(model, t->name, w, n);
    const int64_t g = err ? -1 : sq_nm_violation(w, n, f->nm_n, f->nm_m);
    free(w);
    if (err || g < 0) return err;
    if (manual) {
        const int64_t c = g * f->nm_m % cols;
        return sq_errorf(
            SQ_ERR_INVALID_ARG,
            "quantize: %s stores %d:%d sparse weights, but tensor %s is not %d:%d (row %lld, columns "
            "%lld-%lld hold more than %d non-zero values; prune it with --nm %d:%d first)",
            f->name, f->nm_n, f->nm_m, t->name, f->nm_n, f->nm_m, (long long)(g * f->nm_m / cols),
            (long long)c, (long long)(c + f->nm_m - 1), f->nm_n, f->nm_n, f->nm_m);
    }
    *dtype = sq_quant_nm_dense(nm);
    return NULL;
}

/* Fills the report's plan: every tensor's wanted and chosen format. */
static SQ_NODISCARD sq_error *plan(const sq_model *model, const sq_quantize_params *p,
                                   const sq_quant_preset *preset, sq_quantize_report *r) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    const sq_quant_model_facts facts = {
        .n_layers = info.n_layers,
        .n_gqa = info.n_kv_heads > 0 ? info.n_heads / info.n_kv_heads : 1,
        .tied_embeddings = info.tied_embeddings,
        .fused_qkv = sq_arch_find(info.arch) && sq_arch_find(info.arch)->fused_proj,
    };
    int *keep_hits = calloc((size_t)p->n_keep + 1, sizeof *keep_hits);
    if (!keep_hits) return sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
    sq_error *err = NULL;
    int n_nm = 0; /* matrices given an N:M format */
    for (int i = 0; i < r->n_tensors && !err; i++) {
        sq_tensor_info t;
        sq_model_tensor_info(model, i, &t);
        sq_quant_tensor_report *q = &r->tensors[i];
        if (!sq_quant_is_weight_matrix(t.name, t.ndim)) continue;
        const int64_t cols = t.shape[t.ndim - 1];
        sq_dtype want = sq_quant_preset_type(preset, &facts, t.name, cols), dtype;
        int manual = 0;
        for (int k = 0; k < p->n_keep && !manual; k++) {
            if (!p->keep[k].pattern || fnmatch(p->keep[k].pattern, t.name, 0) != 0) continue;
            if ((err = keep_type(&p->keep[k], &want))) break;
            if (cols % sq_dtype_info(want)->block_elems) {
                err = sq_errorf(SQ_ERR_INVALID_ARG,
                                "keep %s=%s: tensor %s has rows of %lld values, not whole %s blocks of %d",
                                p->keep[k].pattern, p->keep[k].type, t.name, (long long)cols,
                                sq_dtype_info(want)->name, sq_dtype_info(want)->block_elems);
                break;
            }
            manual = 1;
            keep_hits[k]++;
            q->kept = 1;
        }
        if (err) break;
        dtype = sq_quant_fallback(want, cols);
        if (sq_dtype_info(dtype)->nm_m && (err = nm_check(model, &t, dtype, manual, &dtype))) break;
        n_nm += sq_dtype_info(dtype)->nm_m != 0;
        q->wanted = sq_dtype_info(want)->name;
        q->type = sq_dtype_info(dtype)->name;
        r->n_fallbacks += dtype != want;
    }
    for (int k = 0; k < p->n_keep && !err; k++) {
        sq_dtype unused;
        if ((err = keep_type(&p->keep[k], &unused))) break;
        if (!keep_hits[k])
            err =
                sq_errorf(SQ_ERR_INVALID_ARG, "keep %s=%s: the pattern matches no weight matrix of the model",
                          p->keep[k].pattern ? p->keep[k].pattern : "", p->keep[k].type);
    }
    free(keep_hits);
    if (!err && sq_dtype_info(preset->base)->nm_m && !n_nm)
        err = sq_errorf(SQ_ERR_INVALID_ARG,
                        "quantize: type %s stores %d:%d sparse weights, and no weight matrix of the model is "
                        "%d:%d (prune it first: squeeze prune --nm %d:%d)",
                        preset->name, sq_dtype_info(preset->base)->nm_n, sq_dtype_info(preset->base)->nm_m,
                        sq_dtype_info(preset->base)->nm_n, sq_dtype_info(preset->base)->nm_m,
                        sq_dtype_info(preset->base)->nm_n, sq_dtype_info(preset->base)->nm_m);
    return err;
}

/* Quantizes tensor t of the model to the planned format and puts it in. */
/* Quantizes tensor t as n_parts matrices of equal rows (a 3-D expert tensor: one per expert), part i with
 * stats[i] (stats NULL: none). A part whose statistics saw no token, under a method that needs them, is
 * rounded to nearest instead and its index appended to q->experts_rtn. */
static SQ_NODISCARD sq_error *quantize_tensor(sq_model *model, const sq_quant_method *method,
                                              const sq_tensor_info *t, sq_dtype dtype, sq_threadpool *pool,
                                              const sq_quantize_params *p, const sq_quant_stats *stats,
                                              int n_parts, sq_quant_tensor_report *q) {
    const int64_t cols = t->shape[t->ndim - 1], n = sq_tensor_bytes_for(SQ_DTYPE_F32, t->ndim, t->shape) / 4,
                  rows = n / cols / n_parts;
    const size_t nbytes = sq_tensor_bytes_for(dtype, t->ndim, t->shape), part_bytes = nbytes / n_parts;
    float *w = malloc((size_t)n * sizeof *w);
    unsigned char *out = malloc(nbytes);
    sq_error *err = NULL;
    if (!w || !out)
        err =
            sq_errorf(SQ_ERR_NOMEM, "quantize: no memory for tensor %s (%lld values)", t->name, (long long)n);
    if (!err) err = sq_model_read_tensor(model, t->name, w, n);
    for (int i = 0; i < n_parts && !err; i++) {
        const sq_quant_stats *s = stats ? &stats[i] : NULL;
        const sq_quant_method *m = method;
        if (method->needs_stats && (!s || !s->n_samples)) {
            int *list = realloc(q->experts_rtn, (size_t)(q->n_experts_rtn + 1) * sizeof *list);
            if (!list) {
                err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
                break;
            }
            q->experts_rtn = list;
            q->experts_rtn[q->n_experts_rtn++] = i;
            m = &sq_quant_rtn, s = NULL;
        }
        const sq_quant_job job = {.name = t->name,
                                  .w = w + (size_t)i * rows * cols,
                                  .rows = rows,
                                  .cols = cols,
                                  .dtype = dtype,
                                  .stats = s,
                                  .params = p,
                                  .out = out + (size_t)i * part_bytes};
        err = m->quantize(&job, pool);
    }
    if (!err) {
        const sq_tensor_edit edit = {
            .name = t->name, .dtype = sq_dtype_info(dtype)->name, .data = out, .nbytes = nbytes};
        err = sq_model_edit_tensors(model, &edit, 1);
    }
    free(w);
    free(out);
    return err;
}

/* ---------------------------------------------------------------- block by block (calibrated methods) */

typedef struct calib_quant {
    const sq_quant_method *method;
    const sq_quantize_params *p;
    sq_quantize_report *r;
    unsigned char *done; /* [n_tensors] quantized already */
    sq_threadpool *pool;
    int64_t n_done, total;
    sq_progress_fn progress;
    void *user;
} calib_quant;

/* Which input of its block a weight matrix multiplies (SQ_TAP_EXPERT_*: each expert's matrix of a 3-D
 * tensor its own), or -1 for a tensor outside the blocks' linear layers. */
static int input_of(const char *name) {
    static const struct {
        const char *suffix;
        sq_tap_point point;
    } inputs[] = {{".attn_q.weight", SQ_TAP_ATTN_IN},           {".attn_k.weight", SQ_TAP_ATTN_IN},
                  {".attn_v.weight", SQ_TAP_ATTN_IN},           {".attn_output.weight", SQ_TAP_ATTN_OUT},
                  {".ffn_gate.weight", SQ_TAP_FFN_IN},          {".ffn_up.weight", SQ_TAP_FFN_IN},
                  {".ffn_down.weight", SQ_TAP_FFN_DOWN},        {".ffn_gate_shexp.weight", SQ_TAP_FFN_IN},
                  {".ffn_up_shexp.weight", SQ_TAP_FFN_IN},      {".ffn_down_shexp.weight", SQ_TAP_FFN_DOWN},
                  {".ffn_gate_exps.weight", SQ_TAP_EXPERT_IN},  {".ffn_up_exps.weight", SQ_TAP_EXPERT_IN},
                  {".ffn_down_exps.weight", SQ_TAP_EXPERT_DOWN}};
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        const size_t k = strlen(inputs[i].suffix);
        if (n > k && !strcmp(name + n - k, inputs[i].suffix)) return (int)inputs[i].point;
    }
    return -1;
}

/* The statistics of each matrix of tensor t, malloc'ed [*n_parts]: a 3-D expert tensor has one matrix per
 * expert, with the calibration statistics of that expert's tokens (stats[4 + 2e], +1 for ffn_down_exps);
 * another tensor one, with stats[point] (xtx, when not NULL, replacing its X^T X). stats NULL: none
 * gathered. mean_sq: the imatrix's importance where it holds the tensor (an expert tensor's entry holds each
 * expert's row of values in turn), else NULL. */
static sq_quant_stats *part_stats(const sq_quantize_params *p, const sq_tensor_info *t,
                                  const sq_calib_stats *stats, int point, const double *xtx, int *n_parts) {
    const int n = t->ndim == 3 ? (int)t->shape[0] : 1;
    const int64_t cols = t->shape[t->ndim - 1];
    sq_quant_stats *qs = malloc((size_t)n * sizeof *qs);
    if (!qs) return NULL;
    sq_imatrix_entry e;
    const int weighted = sq_imatrix_find(p->imatrix, t->name, &e) && e.n_values == n * cols;
    for (int i = 0; i < n; i++) {
        const int expert = point == SQ_TAP_EXPERT_IN || point == SQ_TAP_EXPERT_DOWN;
        const sq_calib_stats *s = !stats ? NULL
                                  : expert
                                      ? &stats[SQ_TAP_FFN_DOWN + 1 + 2 * i + (point == SQ_TAP_EXPERT_DOWN)]
                                      : &stats[point];
        qs[i] = (sq_quant_stats){.cols = cols,
                                 .mean_sq = weighted ? e.values + (size_t)i * cols : NULL,
                                 .xtx = !s               ? NULL
                                        : xtx && !expert ? xtx
                                                         : s->xtx,
                                 .n_samples = s          ? s->n_tokens
                                              : weighted ? e.n_tokens
                                                         : 0};
    }
    *n_parts = n;
    return qs;
}

/* sq_calib_method.apply_block: quantizes every planned matrix of block `layer` with its input's statistics.
 */
static SQ_NODISCARD sq_error *quantize_block(void *user, sq_model *model, int layer,
                                             const sq_calib_stats *stats) {
    calib_quant *c = user;
    char prefix[32];
    const int np = snprintf(prefix, sizeof prefix, "blk.%d.", layer);
    double *xtx[4] = {0}; /* X^T X of inputs the method changed (prepare_block), NULL: as gathered */
    if (c->method->prepare_block) {
        const char *types[SQ_AWQ_N_LINEAR] = {0};
        for (int k = 0; k < SQ_AWQ_N_LINEAR; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", layer, sq_awq_linear[k]);
            for (int i = 0; i < c->r->n_tensors; i++)
                if (!strcmp(c->r->tensors[i].name, name) &&
                    strcmp(c->r->tensors[i].type, c->r->tensors[i].from))
                    types[k] = c->r->tensors[i].type;
        }
        SQ_TRY(c->method->prepare_block(model, layer, stats, types, c->p, xtx));
    }
    sq_error *err = NULL;
    for (int i = 0; i < c->r->n_tensors && !err; i++) {
        sq_quant_tensor_report *q = &c->r->tensors[i];
        const int point = input_of(q->name);
        if (c->done[i] || !strcmp(q->type, q->from) || strncmp(q->name, prefix, (size_t)np) || point < 0)
            continue;
        sq_tensor_info t;
        sq_model_tensor_info(model, sq_model_tensor_index(model, q->name), &t);
        int n_parts;
        sq_quant_stats *qs = part_stats(c->p, &t, stats, point, xtx[point < 4 ? point : 0], &n_parts);
        if (!qs) {
            err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
            break;
        }
        q->weighted = qs[0].mean_sq != NULL; /* with --imatrix: what GPTQ's grids weigh scale searches by */
        c->r->n_weighted += q->weighted;
        err = quantize_tensor(model, c->method, &t, (sq_dtype)sq_dtype_from_name(q->type), c->pool, c->p, qs,
                              n_parts, q);
        free(qs);
        if (err) break;
        c->done[i] = 1;
        c->r->n_quantized++;
        c->n_done += q->n_elems;
        if (c->progress) c->progress(c->user, c->n_done, c->total);
    }
    for (int p = 0; p < 4; p++) free(xtx[p]);
    return err;
}

/* Checks that the imatrix goes with RTN and that each of its entries fits the matrix of that name. */
static SQ_NODISCARD sq_error *check_imatrix(const sq_model *model, const sq_quant_method *method,
                                            const sq_quantize_params *p) {
    if (p->budget_bpw < 0 || (p->budget_bpw > 0 && method != &sq_quant_rtn))
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "quantize: a bits-per-weight budget (%g) must be positive and serves "
                         "method rtn",
                         p->budget_bpw);
    if (!p->imatrix) return NULL;
    if (method != &sq_quant_rtn && method != &sq_quant_gptq)
        return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: an imatrix serves methods rtn and gptq, not %s",
                         method->name);
    for (int i = 0; i < sq_imatrix_n_entries(p->imatrix); i++) {
        sq_imatrix_entry e;
        sq_imatrix_entry_at(p->imatrix, i, &e);
        const int j = sq_model_tensor_index(model, e.name);
        if (j < 0) continue; /* a weight this model does not have (pruned away) */
        sq_tensor_info t;
        sq_model_tensor_info(model, j, &t);
        /* a 3-D expert tensor's entry: each expert's values in turn, as llama.cpp's imatrix holds them */
        const int64_t want = t.ndim == 3 ? t.shape[0] * t.shape[2] : t.shape[t.ndim - 1];
        if ((t.ndim != 2 && t.ndim != 3) || want != e.n_values)
            return sq_errorf(SQ_ERR_INVALID_ARG,
                             "quantize: the imatrix entry %s has %d values, but the tensor's rows have %lld "
                             "(times %lld experts)",
                             e.name, e.n_values, (long long)t.shape[t.ndim - 1],
                             (long long)(t.ndim == 3 ? t.shape[0] : 1));
    }
    return NULL;
}

/* Checks that the method can store every planned format and has its samples, before any work. */
static SQ_NODISCARD sq_error *check_method(const sq_quant_method *method, const sq_quantize_params *p,
                                           const sq_quantize_report *r) {
    if (method->needs_stats && (!p->calib || !p->calib->ids))
        return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: method %s needs calibration samples (--calib TEXT)",
                         method->name);
    for (int i = 0; method->supports && i < r->n_tensors; i++) {
        const sq_quant_tensor_report *q = &r->tensors[i];
        if (!strcmp(q->type, q->from) || input_of(q->name) < 0) continue;
        sq_error *e = method->supports((sq_dtype)sq_dtype_from_name(q->type));
        if (e)
            return sq_error_wrap(e, "quantize: method %s cannot store %s as %s", method->name, q->name,
                                 q->type);
    }
    return NULL;
}

SQ_NODISCARD sq_error *sq_quantize_model(sq_model *model, const sq_quantize_params *p,
                                         sq_progress_fn progress, void *user,
                                         sq_quantize_report **report_out) {
    if (report_out) *report_out = NULL;
    if (!model || !p) return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: no model or parameters given");
    const sq_quant_preset *preset = sq_quant_preset_find(p->type);
    if (!preset)
        return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: unknown type \"%s\" (expected one of %s)",
                         p->type ? p->type : "(none)", sq_quant_preset_names());
    const char *method_name = p->method ? p->method : "rtn";
    const sq_quant_method *method = method_find(method_name);
    if (!method)
        return sq_errorf(SQ_ERR_INVALID_ARG,
                         "quantize: unknown method \"%s\" (expected rtn, gptq, awq or smoothquant)",
                         method_name);
    if (!(p->smooth_alpha >= 0 && p->smooth_alpha <= 1))
        return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: SmoothQuant's alpha %g is outside [0, 1]",
                         p->smooth_alpha);
    /* a factor's input is not what the calibration tap sees (B multiplies A.x) */
    if (method->needs_stats && sq_model_has_lowrank(model))
        return sq_errorf(
            SQ_ERR_UNSUPPORTED,
            "quantize: method %s calibrates dense linear weights; this model has low-rank factors "
            "(quantize them with rtn)",
            method->name);
    if (p->n_keep < 0 || (p->n_keep > 0 && !p->keep))
        return sq_errorf(SQ_ERR_INVALID_ARG, "quantize: %d keep rules but none given", p->n_keep);

    const double t0 = sq_monotonic_seconds();
    sq_quantize_report *r = calloc(1, sizeof *r);
    const int n_tensors = sq_model_n_tensors(model);
    if (!r || !(r->tensors = calloc((size_t)n_tensors + 1, sizeof *r->tensors))) {
        free(r);
        return sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
    }
    r->n_tensors = n_tensors;
    r->type = preset->name;
    r->method = method->name;
    sq_error *err = NULL;
    for (int i = 0; i < n_tensors && !err; i++) {
        sq_tensor_info t;
        sq_model_tensor_info(model, i, &t);
        if (!(r->tensors[i].name = strdup(t.name))) err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
        r->tensors[i].from = r->tensors[i].type = r->tensors[i].wanted =
            sq_dtype_info(sq_dtype_from_name(t.dtype))->name;
    }
    if (!err) err = plan(model, p, preset, r);
    if (!err) err = check_imatrix(model, method, p);
    if (!err) err = check_method(method, p, r);
    if (!err && p->output) err = sq_out_check(p->output);
    sq_threadpool *pool = NULL;
    if (!err && !(pool = sq_threadpool_create(p->n_threads)))
        err = sq_errorf(SQ_ERR_NOMEM, "quantize: cannot start %d threads", p->n_threads);

    int64_t total = 0, done_elems = 0;
    for (int i = 0; i < n_tensors; i++) {
        sq_tensor_info t;
        sq_model_tensor_info(model, i, &t);
        r->tensors[i].n_elems = (int64_t)(sq_tensor_bytes_for(SQ_DTYPE_F32, t.ndim, t.shape) / 4);
        r->tensors[i].bytes_before = t.nbytes;
    }
    if (!err && p->budget_bpw > 0) err = sq_quant_budget_plan(model, p, r, pool);
    for (int i = 0; i < n_tensors; i++)
        if (strcmp(r->tensors[i].type, r->tensors[i].from) != 0) total += r->tensors[i].n_elems;
    /* A calibrated method quantizes the blocks' matrices block by block first; the rest (and everything, for
     * RTN) is rounded to nearest below. */
    unsigned char *done = calloc((size_t)n_tensors + 1, 1);
    if (!err && !done) err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
    if (!err && method->needs_stats) {
        calib_quant c = {method, p, r, done, pool, 0, total, progress, user};
        /* a method that changes whole blocks first (AWQ, SmoothQuant: scales folded into the shared FFN norm,
         * which feeds the router and every expert) has no per-expert form */
        const sq_calib_method cm = {.stats = method->stats,
                                    .apply_block = quantize_block,
                                    .changes_weights = 1,
                                    .experts = !method->prepare_block,
                                    .user = &c};
        err = sq_calibrate(model, p->calib, &cm, &(sq_calib_options){.n_threads = p->n_threads});
        done_elems = c.n_done;
    }
    /* Tensors are visited by name: each edit may reorder nothing, but names are what the model promises. */
    for (int i = 0; i < n_tensors && !err; i++) {
        sq_quant_tensor_report *q = &r->tensors[i];
        if (!strcmp(q->type, q->from) || done[i]) continue;
        sq_tensor_info t;
        sq_model_tensor_info(model, sq_model_tensor_index(model, q->name), &t);
        const sq_dtype dt = (sq_dtype)sq_dtype_from_name(q->type);
        int n_parts;
        sq_quant_stats *qs = part_stats(p, &t, NULL, -1, NULL, &n_parts);
        if (!qs) {
            err = sq_errorf(SQ_ERR_NOMEM, "quantize: out of memory");
            break;
        }
        const int weighted = qs[0].mean_sq && sq_dtype_info(dt)->from_f32_weighted;
        err = quantize_tensor(model, &sq_quant_rtn, &t, dt, pool, p, weighted ? qs : NULL, n_parts, q);
        free(qs);
        q->weighted = weighted;
        r->n_weighted += weighted;
        r->n_quantized++;
        done_elems += q->n_elems;
        if (progress && !err) progress(user, done_elems, total);
    }
    free(done);
    sq_threadpool_free(pool);
    for (int i = 0; i < n_tensors; i++) {
        sq_tensor_info t;
        const int j = sq_model_tensor_index(model, r->tensors[i].name);
        if (j < 0) continue;
        sq_model_tensor_info(model, j, &t);
        r->tensors[i].bytes_after = t.nbytes;
        r->n_elems += r->tensors[i].n_elems;
        r->bytes_before += r->tensors[i].bytes_before;
        r->bytes_after += t.nbytes;
    }
    if (!err && p->output) err = sq_model_save(model, p->output, SQ_FORMAT_GGUF);
    r->bits_per_weight = r->n_elems ? 8.0 * (double)r->bytes_after / (double)r->n_elems : 0;
    r->seconds = sq_monotonic_seconds() - t0;
    if (report_out && (!err || r->n_quantized))
        *report_out = r;
    else
        sq_quantize_report_free(r);
    return err;
}
