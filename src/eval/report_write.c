/* Writing the JSON reports of ppl, eval and bench runs (docs/report-format.md). The layout has one owner:
 * this file writes it and report.c reads it back for squeeze report. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "squeeze.h"

/* The layout version written (readers refuse versions they do not know). */
#define REPORT_VERSION 1

/* On disk: a file's size, or the sum of a directory's regular files; 0 when unknown. */
static double path_bytes(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return (double)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    double total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (double)st.st_size;
    }
    closedir(d);
    return total;
}

/* A number, or null when it is not finite (a perplexity that overflowed). */
static cJSON *number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void add_string_or_null(cJSON *obj, const char *name, const char *s) {
    if (s)
        cJSON_AddStringToObject(obj, name, s);
    else
        cJSON_AddNullToObject(obj, name);
}

/* {"path", "bytes", "weight_bytes", "n_params", "arch", "file_format", "vocab_size", "max_seq_len"} */
static cJSON *model_object(const sq_report_model *rm) {
    sq_model_info info;
    sq_model_get_info(rm->model, &info);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "path", rm->path);
    cJSON_AddNumberToObject(m, "bytes", path_bytes(rm->path));
    cJSON_AddNumberToObject(m, "weight_bytes", (double)info.weight_bytes);
    cJSON_AddNumberToObject(m, "n_params", (double)info.n_params);
    cJSON_AddStringToObject(m, "arch", info.arch ? info.arch : "");
    cJSON_AddStringToObject(m, "file_format", info.file_format ? info.file_format : "");
    cJSON_AddNumberToObject(m, "vocab_size", info.vocab_size);
    cJSON_AddNumberToObject(m, "max_seq_len", info.max_seq_len);
    return m;
}

/* The envelope every report shares, with the model and label when the report has one model. */
static cJSON *envelope(const char *kind, const sq_report_model *rm) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", kind);
    cJSON_AddNumberToObject(j, "version", REPORT_VERSION);
    if (rm && rm->label) cJSON_AddStringToObject(j, "label", rm->label);
    if (rm) cJSON_AddItemToObject(j, "model", model_object(rm));
    return j;
}

static SQ_NODISCARD sq_error *check_model(const sq_report_model *rm, const char *path) {
    if (!rm || !rm->path || !rm->model)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: a report needs the model and its path", path);
    return NULL;
}

/* Writes the report (pretty-printed) and frees it. */
static SQ_NODISCARD sq_error *write_report(const char *path, cJSON *report) {
    char *text = cJSON_Print(report);
    cJSON_Delete(report);
    if (!text) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory writing the report", path);
    FILE *fp = fopen(path, "w");
    int ok = fp && fputs(text, fp) >= 0 && fputc('\n', fp) != EOF;
    int saved = errno;
    if (fp && fclose(fp) != 0) ok = 0, saved = errno;
    free(text);
    return ok ? NULL : sq_errorf(SQ_ERR_IO, "%s: cannot write the report: %s", path, strerror(saved));
}

/* ---------------------------------------------------------------- ppl */

static const char *protocol_name(sq_ppl_protocol p) {
    return p == SQ_PPL_STRIDE ? "stride" : p == SQ_PPL_SECOND_HALF ? "second-half" : "windows";
}

SQ_NODISCARD sq_error *sq_report_write_ppl(const char *path, const sq_report_model *rm,
                                           const sq_ppl_options *o, const char *ref_path, int ids_input,
                                           const sq_ppl_result *r) {
    SQ_TRY(check_model(rm, path));
    cJSON *j = envelope("ppl", rm);
    cJSON *text = cJSON_AddObjectToObject(j, "text");
    cJSON_AddStringToObject(text, "path", o->source ? o->source : "");
    cJSON_AddStringToObject(text, "input", ids_input ? "ids" : "text");
    cJSON_AddNumberToObject(text, "tokens", (double)r->n_ids);
    cJSON *proto = cJSON_AddObjectToObject(j, "protocol");
    cJSON_AddStringToObject(proto, "name", protocol_name(o->protocol));
    cJSON_AddNumberToObject(proto, "ctx", r->n_ctx);
    if (o->protocol == SQ_PPL_STRIDE)
        cJSON_AddNumberToObject(proto, "stride", o->stride);
    else
        cJSON_AddNullToObject(proto, "stride");
    cJSON_AddNumberToObject(proto, "batch", o->n_batch);
    cJSON_AddStringToObject(proto, "kv_type", sq_kv_type_name(o->kv_type));
    if (o->bos_id >= 0)
        cJSON_AddNumberToObject(proto, "bos_id", o->bos_id);
    else
        cJSON_AddNullToObject(proto, "bos_id");
    cJSON_AddItemToObject(j, "ppl", number(r->ppl));
    cJSON *ci = cJSON_AddArrayToObject(j, "ppl_ci95");
    cJSON_AddItemToArray(ci, number(r->ppl_lo));
    cJSON_AddItemToArray(ci, number(r->ppl_hi));
    cJSON_AddItemToObject(j, "mean_nll", number(r->mean_nll));
    cJSON_AddItemToObject(j, "nll_sd", number(r->nll_sd));
    cJSON_AddNumberToObject(j, "tokens_scored", (double)r->n_scored);
    cJSON_AddNumberToObject(j, "windows", r->n_windows);
    cJSON *timing = cJSON_AddObjectToObject(j, "timing");
    cJSON_AddNumberToObject(timing, "seconds", r->seconds);
    cJSON_AddNumberToObject(timing, "tokens_per_second", r->tokens_per_second);
    cJSON_AddNumberToObject(timing, "threads", o->n_threads);
    if (r->has_ref) {
        cJSON *ref = cJSON_AddObjectToObject(j, "reference");
        add_string_or_null(ref, "path", ref_path);
        add_string_or_null(ref, "logits_file", o->ref_logits_in);
        cJSON_AddItemToObject(ref, "ppl", number(r->ref_ppl));
        cJSON_AddItemToObject(ref, "ppl_ratio", number(r->ppl_ratio));
        cJSON_AddItemToObject(ref, "kl_mean", number(r->kl_mean));
        cJSON_AddItemToObject(ref, "kl_sd", number(r->kl_sd));
        cJSON_AddItemToObject(ref, "kl_max", number(r->kl_max));
        cJSON_AddItemToObject(ref, "top1_agreement", number(r->top1_agreement));
        cJSON_AddStringToObject(ref, "kl_method", r->kl_top_k ? "top-k" : "exact");
        if (r->kl_top_k) {
            cJSON_AddNumberToObject(ref, "top_k", r->kl_top_k);
            cJSON_AddItemToObject(ref, "tail_mass_mean", number(r->ref_tail_mass));
        } else {
            cJSON_AddNullToObject(ref, "top_k");
            cJSON_AddNullToObject(ref, "tail_mass_mean");
        }
    } else {
        cJSON_AddNullToObject(j, "reference");
    }
    cJSON *wins = cJSON_AddArrayToObject(j, "per_window");
    for (int w = 0; w < r->n_windows; w++) {
        const sq_ppl_window *pw = &r->windows[w];
        cJSON *o1 = cJSON_CreateObject();
        cJSON_AddNumberToObject(o1, "start", (double)pw->start);
        cJSON_AddNumberToObject(o1, "tokens", pw->n_tokens);
        cJSON_AddNumberToObject(o1, "scored", pw->n_scored);
        cJSON_AddItemToObject(o1, "nll", number(pw->nll));
        if (r->has_ref) cJSON_AddItemToObject(o1, "kl", number(pw->kl));
        cJSON_AddItemToArray(wins, o1);
    }
    return write_report(path, j);
}

/* ---------------------------------------------------------------- eval */

SQ_NODISCARD sq_error *sq_report_write_eval(const char *path, const sq_report_model *rm,
                                            const sq_eval_options *o, const sq_task_result *res, int n) {
    SQ_TRY(check_model(rm, path));
    if (n < 1) return sq_errorf(SQ_ERR_INVALID_ARG, "%s: an eval report needs at least one task", path);
    sq_model_info info;
    sq_model_get_info(rm->model, &info);
    cJSON *j = envelope("eval", rm);
    cJSON_AddStringToObject(j, "data_dir", o->data_dir ? o->data_dir : "");
    if (o->limit)
        cJSON_AddNumberToObject(j, "limit", o->limit);
    else
        cJSON_AddNullToObject(j, "limit");
    cJSON_AddNumberToObject(j, "ctx", o->n_ctx ? o->n_ctx : info.max_seq_len);
    cJSON_AddStringToObject(j, "kv_type", sq_kv_type_name(o->kv_type));
    const sq_tokenizer *tok = sq_model_tokenizer(rm->model);
    int bos = -1;
    sq_error *err = tok ? sq_tokenizer_bos_for(tok, o->bos, &bos) : NULL;
    if (err) {
        cJSON_Delete(j);
        return sq_error_wrap(err, "%s", path);
    }
    if (bos >= 0)
        cJSON_AddNumberToObject(j, "bos_id", bos);
    else
        cJSON_AddNullToObject(j, "bos_id");
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    double sum_score = 0, sum_acc = 0, seconds = 0;
    for (int i = 0; i < n; i++) {
        const sq_task_result *r = &res[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "task", r->task);
        cJSON_AddNumberToObject(t, "n", r->n_items);
        cJSON_AddItemToObject(t, "acc", number(r->acc));
        cJSON_AddItemToObject(t, "acc_stderr", number(r->acc_stderr));
        cJSON_AddItemToObject(t, "acc_norm", r->has_acc_norm ? number(r->acc_norm) : cJSON_CreateNull());
        cJSON_AddItemToObject(t, "acc_norm_stderr",
                              r->has_acc_norm ? number(r->acc_norm_stderr) : cJSON_CreateNull());
        cJSON_AddItemToObject(t, "ppl", r->has_ppl ? number(r->ppl) : cJSON_CreateNull());
        cJSON_AddStringToObject(t, "metric", r->has_acc_norm ? "acc_norm" : "acc");
        cJSON_AddItemToObject(t, "score", number(r->score));
        cJSON_AddNumberToObject(t, "truncated", r->n_truncated);
        cJSON_AddNumberToObject(t, "seconds", r->seconds);
        cJSON_AddItemToArray(tasks, t);
        sum_score += r->score, sum_acc += r->acc, seconds += r->seconds;
    }
    cJSON *avg = cJSON_AddObjectToObject(j, "average");
    cJSON_AddItemToObject(avg, "score", number(sum_score / n));
    cJSON_AddItemToObject(avg, "acc", number(sum_acc / n));
    cJSON *timing = cJSON_AddObjectToObject(j, "timing");
    cJSON_AddNumberToObject(timing, "seconds", seconds);
    return write_report(path, j);
}

/* ---------------------------------------------------------------- bench */

/* {"median", "min", "max"} as key of o */
static void add_stat(cJSON *o, const char *key, const sq_bench_stat *st) {
    cJSON *s = cJSON_AddObjectToObject(o, key);
    cJSON_AddNumberToObject(s, "median", st->median);
    cJSON_AddNumberToObject(s, "min", st->min);
    cJSON_AddNumberToObject(s, "max", st->max);
}

static cJSON *result_object(int batch, const sq_bench_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_seqs", batch);
    cJSON_AddNumberToObject(o, "n_runs", r->n_runs);
    cJSON_AddNumberToObject(o, "n_disturbed", r->n_disturbed);
    if (isnan(r->cpu_wait))
        cJSON_AddNullToObject(o, "cpu_wait");
    else
        cJSON_AddNumberToObject(o, "cpu_wait", r->cpu_wait);
    int n;
    const sq_bench_metric *metrics = sq_bench_metrics(&n);
    for (int k = 0; k < n; k++) {
        const sq_bench_metric *mk = &metrics[k];
        if (!mk->is_bytes) {
            add_stat(o, mk->key, sq_bench_metric_stat(r, mk));
        } else if (mk->offset != offsetof(sq_bench_result, weight_bytes)) {
            cJSON_AddNumberToObject(
                o, mk->key, sq_bench_metric_bytes(r, mk)); /* the variant's model gives weight_bytes */
        }
    }
    return o;
}

SQ_NODISCARD sq_error *sq_report_write_bench(const char *path, const sq_report_model *models, int n_models,
                                             const sq_bench_params *p, const int *batch_sizes, int n_batches,
                                             const sq_bench_result *results) {
    if (n_models < 1 || n_batches < 1)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: a bench report needs a model and a batch size", path);
    for (int m = 0; m < n_models; m++) SQ_TRY(check_model(&models[m], path));
    cJSON *root = envelope("bench", NULL), *settings = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddNumberToObject(settings, "n_prompt", p->n_prompt);
    cJSON_AddNumberToObject(settings, "n_gen", p->n_gen);
    cJSON_AddNumberToObject(settings, "n_reps", p->n_reps);
    cJSON_AddNumberToObject(settings, "n_reps_max", p->n_reps_max ? p->n_reps_max : p->n_reps);
    cJSON_AddNumberToObject(settings, "n_warmup", p->n_warmup);
    cJSON_AddNumberToObject(settings, "n_threads", p->n_threads);
    cJSON_AddStringToObject(settings, "kernels", sq_cpu_kernel_name());
    cJSON_AddStringToObject(settings, "kv_type", sq_kv_type_name(p->kv_type));
    if (p->vs_kv_type_set) cJSON_AddStringToObject(settings, "vs_kv_type", sq_kv_type_name(p->vs_kv_type));
    cJSON_AddStringToObject(settings, "prompt", "random token ids");
    cJSON_AddNumberToObject(settings, "seed", (double)p->seed);
    cJSON *variants = cJSON_AddArrayToObject(root, "variants");
    for (int m = 0; m < n_models; m++) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddItemToArray(variants, v);
        cJSON_AddItemToObject(v, "model", model_object(&models[m]));
        if (models[m].label) cJSON_AddStringToObject(v, "label", models[m].label);
        cJSON *list = cJSON_AddArrayToObject(v, "results");
        for (int b = 0; b < n_batches; b++)
            cJSON_AddItemToArray(list, result_object(batch_sizes[b], &results[(size_t)b * n_models + m]));
    }
    if (n_models == 2) {
        int n;
        const sq_bench_metric *metrics = sq_bench_metrics(&n);
        cJSON *ratios = cJSON_AddArrayToObject(root, "ratios");
        for (int b = 0; b < n_batches; b++) {
            const sq_bench_result *r = &results[(size_t)b * 2];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(ratios, x);
            cJSON_AddNumberToObject(x, "n_seqs", batch_sizes[b]);
            for (int k = 0; k < n; k++) {
                const sq_bench_metric *mk = &metrics[k];
                if (!mk->is_bytes)
                    cJSON_AddNumberToObject(x, mk->key,
                                            sq_bench_metric_stat(&r[1], mk)->median /
                                                sq_bench_metric_stat(&r[0], mk)->median);
                else if (sq_bench_metric_bytes(&r[0], mk) > 0)
                    cJSON_AddNumberToObject(
                        x, mk->key, sq_bench_metric_bytes(&r[1], mk) / sq_bench_metric_bytes(&r[0], mk));
            }
        }
    }
    return write_report(path, root);
}

/* ---------------------------------------------------------------- bench --spec */

SQ_NODISCARD sq_error *sq_report_write_bench_spec(const char *path, const sq_report_model *rm,
                                                  const sq_spec_bench_report *r) {
    SQ_TRY(check_model(rm, path));
    if (!r || !r->method || !r->spec || !r->sampling)
        return sq_errorf(SQ_ERR_INVALID_ARG, "%s: a bench --spec report needs its method and parameters",
                         path);
    cJSON *root = envelope("bench_spec", rm), *settings = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(settings, "method", r->method);
    add_string_or_null(settings, "draft", r->draft_path);
    cJSON_AddNumberToObject(settings, "k", r->spec->k);
    cJSON_AddBoolToObject(settings, "k_auto", r->spec->k_auto != 0);
    cJSON_AddNumberToObject(settings, "ngram_n", r->spec->ngram_n);
    cJSON_AddNumberToObject(settings, "tree_width", r->spec->tree_width);
    cJSON *skip = cJSON_AddArrayToObject(settings, "skip_layers");
    for (int i = 0; i < r->spec->n_skip_layers; i++)
        cJSON_AddItemToArray(skip, cJSON_CreateNumber(r->spec->skip_layers[i]));
    cJSON_AddNumberToObject(settings, "temperature", r->sampling->temperature);
    cJSON_AddNumberToObject(settings, "seed", (double)r->sampling->seed);
    cJSON_AddNumberToObject(settings, "n_prompt", r->n_prompt);
    cJSON_AddNumberToObject(settings, "n_gen", r->n_gen);
    cJSON_AddNumberToObject(settings, "n_reps", r->n_reps);
    cJSON_AddNumberToObject(settings, "n_warmup", r->n_warmup);
    cJSON_AddNumberToObject(settings, "n_threads", r->n_threads);
    cJSON_AddStringToObject(settings, "kernels", sq_cpu_kernel_name());
    cJSON *res = cJSON_AddObjectToObject(root, "results");
    add_stat(res, "plain_decode_tok_s", &r->plain_tok_s);
    add_stat(res, "spec_decode_tok_s", &r->spec_tok_s);
    add_stat(res, "speedup", &r->speedup);
    const sq_spec_stats *st = &r->stats;
    const double steps = st->steps ? (double)st->steps : NAN;
    cJSON_AddNumberToObject(res, "target_steps", (double)st->steps);
    cJSON_AddItemToObject(res, "tokens_per_step", number((double)st->generated / steps));
    cJSON_AddItemToObject(res, "accepted_per_step", number((double)st->accepted / steps));
    cJSON_AddItemToObject(res, "drafted_per_step", number((double)st->drafted / steps));
    cJSON *by_pos = cJSON_AddArrayToObject(res, "acceptance_by_position");
    for (int d = 0; d < SQ_SPEC_MAX_K && st->reached[d]; d++)
        cJSON_AddItemToArray(by_pos, cJSON_CreateNumber((double)st->accepted_at[d] / st->reached[d]));
    cJSON_AddNumberToObject(res, "draft_seconds", st->draft_seconds);
    cJSON_AddNumberToObject(res, "target_seconds", st->target_seconds);
    cJSON_AddNumberToObject(res, "k_at_end", st->k);
    if (r->greedy_identical >= 0) cJSON_AddBoolToObject(res, "greedy_identical", r->greedy_identical);
    return write_report(path, root);
}

/* ---------------------------------------------------------------- quantize */

SQ_NODISCARD sq_error *sq_quantize_report_write(const sq_quantize_report *r, const char *path) {
    if (!r || !path) return sq_errorf(SQ_ERR_INVALID_ARG, "quantize report: no report or path given");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", REPORT_VERSION);
    cJSON_AddStringToObject(j, "kind", "quantize");
    cJSON_AddStringToObject(j, "type", r->type);
    cJSON_AddStringToObject(j, "method", r->method);
    cJSON_AddNumberToObject(j, "n_elems", (double)r->n_elems);
    cJSON_AddNumberToObject(j, "bytes_before", (double)r->bytes_before);
    cJSON_AddNumberToObject(j, "bytes_after", (double)r->bytes_after);
    cJSON_AddItemToObject(j, "bits_per_weight", number(r->bits_per_weight));
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddNumberToObject(j, "n_quantized", r->n_quantized);
    cJSON_AddNumberToObject(j, "n_fallbacks", r->n_fallbacks);
    cJSON_AddNumberToObject(j, "n_imatrix", r->n_weighted);
    cJSON *tensors = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < r->n_tensors; i++) {
        const sq_quant_tensor_report *t = &r->tensors[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "from", t->from);
        cJSON_AddStringToObject(o, "type", t->type);
        cJSON_AddStringToObject(o, "wanted", t->wanted);
        cJSON_AddNumberToObject(o, "n_elems", (double)t->n_elems);
        cJSON_AddNumberToObject(o, "bytes_before", (double)t->bytes_before);
        cJSON_AddNumberToObject(o, "bytes_after", (double)t->bytes_after);
        cJSON_AddBoolToObject(o, "imatrix", t->weighted);
        cJSON_AddBoolToObject(o, "kept", t->kept);
        cJSON_AddItemToArray(tensors, o);
    }
    return write_report(path, j);
}

/* ---------------------------------------------------------------- prune */

SQ_NODISCARD sq_error *sq_report_write_prune(const char *path, const sq_report_model *rm,
                                             const char *source_path, const sq_prune_options *o,
                                             const sq_prune_result *r) {
    SQ_TRY(check_model(rm, path));
    cJSON *j = envelope("prune", rm);
    cJSON_AddStringToObject(j, "source", source_path ? source_path : "");
    cJSON *req = cJSON_AddObjectToObject(j, "request");
    int depth = o->method == SQ_PRUNE_DEPTH;
    static const char *const methods[] = {"magnitude", "wanda",   "sparsegpt", "width",
                                          "depth",     "lowrank", "asvd",      "experts"};
    cJSON_AddStringToObject(
        req, "method", (unsigned)o->method < sizeof methods / sizeof *methods ? methods[o->method] : "?");
    if (o->calib) {
        cJSON_AddNumberToObject(req, "calib_samples", o->calib->n_samples);
        cJSON_AddNumberToObject(req, "calib_len", o->calib->seq_len);
    }
    if (depth) {
        cJSON_AddNumberToObject(req, "remove", o->n_remove);
        cJSON_AddStringToObject(req, "criterion",
                                o->criterion == SQ_DEPTH_PPL      ? "ppl"
                                : o->criterion == SQ_DEPTH_TAYLOR ? "taylor"
                                                                  : "magnitude");
        if (o->criterion == SQ_DEPTH_TAYLOR) {
            cJSON_AddNumberToObject(req, "keep_first", o->taylor_keep_first);
            cJSON_AddNumberToObject(req, "keep_last", o->taylor_keep_last);
        }
    } else if (o->method == SQ_PRUNE_EXPERTS) {
        cJSON_AddNumberToObject(req, "remove_experts", o->n_remove_experts);
    } else if (o->method == SQ_PRUNE_WIDTH) {
        cJSON_AddNumberToObject(req, "heads", o->heads);
        cJSON_AddNumberToObject(req, "ffn", o->ffn);
    } else if (o->method == SQ_PRUNE_LOWRANK || o->method == SQ_PRUNE_ASVD) {
        cJSON_AddNumberToObject(req, o->rank_ratio ? "rank_ratio" : "param_ratio",
                                o->rank_ratio ? o->rank_ratio : o->param_ratio);
        if (o->method == SQ_PRUNE_ASVD)
            cJSON_AddNumberToObject(req, "alpha", o->asvd_alpha ? o->asvd_alpha : 0.5);
        cJSON_AddNumberToObject(j, "n_factorised", r->n_factorised);
    } else if (o->nm_m) {
        cJSON_AddNumberToObject(req, "nm_n", o->nm_n);
        cJSON_AddNumberToObject(req, "nm_m", o->nm_m);
    } else {
        cJSON_AddNumberToObject(req, "sparsity", o->sparsity);
        if (o->owl_lambda) {
            cJSON_AddNumberToObject(req, "owl_lambda", o->owl_lambda);
            cJSON_AddNumberToObject(req, "owl_m", o->owl_m ? o->owl_m : 5);
        }
    }
    const char *names[] = {"params", "nonzero", "weight_bytes", "n_layers"};
    double before[] = {(double)r->params_before, (double)r->nonzero_before, (double)r->bytes_before,
                       r->n_layers_before};
    double after[] = {(double)r->params_after, (double)r->nonzero_after, (double)r->bytes_after,
                      r->n_layers_after};
    cJSON *b = cJSON_AddObjectToObject(j, "before"), *a = cJSON_AddObjectToObject(j, "after");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cJSON_AddNumberToObject(b, names[i], before[i]);
        cJSON_AddNumberToObject(a, names[i], after[i]);
    }
    if (o->method == SQ_PRUNE_WIDTH) { /* the blocks' widths after */
        cJSON *layers = cJSON_AddArrayToObject(j, "layers");
        for (int l = 0; l < r->n_layers_after; l++) {
            sq_layer_info li;
            if (sq_model_layer_info(rm->model, l, &li)) break; /* cannot fail for l < n_layers */
            cJSON *lj = cJSON_CreateObject();
            cJSON_AddNumberToObject(lj, "n_heads", li.n_heads);
            cJSON_AddNumberToObject(lj, "n_kv_heads", li.n_kv_heads);
            cJSON_AddNumberToObject(lj, "ffn_dim", li.ffn_dim);
            cJSON_AddItemToArray(layers, lj);
        }
    }
    if (o->method == SQ_PRUNE_EXPERTS) { /* each block's routing frequencies and what went */
        cJSON *blocks = cJSON_AddArrayToObject(j, "blocks");
        for (int l = 0; l < r->n_layers_before; l++) {
            cJSON *blk = cJSON_CreateObject(), *freq = cJSON_AddArrayToObject(blk, "routing_frequency"),
                  *gone = cJSON_AddArrayToObject(blk, "removed_experts");
            cJSON_AddNumberToObject(blk, "block", l);
            for (int e = 0; e < r->n_experts_before; e++)
                cJSON_AddItemToArray(
                    freq, cJSON_CreateNumber(r->scores[(size_t)l * (size_t)r->n_experts_before + (size_t)e]));
            for (int k = 0; k < r->n_removed; k++)
                cJSON_AddItemToArray(
                    gone, cJSON_CreateNumber(r->removed[(size_t)l * (size_t)r->n_removed + (size_t)k]));
            cJSON_AddItemToArray(blocks, blk);
        }
        return write_report(path, j);
    }
    if (r->layer_sparsity) { /* OWL: each block's outlier ratio and sparsity */
        cJSON *blocks = cJSON_AddArrayToObject(j, "blocks");
        for (int l = 0; l < r->n_layers_before; l++) {
            cJSON *blk = cJSON_CreateObject();
            cJSON_AddNumberToObject(blk, "block", l);
            cJSON_AddNumberToObject(blk, "outlier_ratio", r->owl_lod[l]);
            cJSON_AddNumberToObject(blk, "sparsity", r->layer_sparsity[l]);
            cJSON_AddItemToArray(blocks, blk);
        }
    }
    if (!depth) {
        cJSON_AddNumberToObject(j, "pruned_weights", (double)r->n_pruned);
        return write_report(path, j);
    }
    if (o->criterion == SQ_DEPTH_PPL) cJSON_AddItemToObject(j, "base_ppl", number(r->base_score));
    cJSON *blocks = cJSON_AddArrayToObject(j, "blocks");
    for (int l = 0; l < r->n_layers_before; l++) {
        int gone = 0;
        for (int k = 0; k < r->n_removed; k++) gone |= r->removed[k] == l;
        cJSON *blk = cJSON_CreateObject();
        cJSON_AddNumberToObject(blk, "block", l);
        cJSON_AddItemToObject(blk, "score", number(r->scores[l]));
        cJSON_AddBoolToObject(blk, "removed", gone);
        cJSON_AddItemToArray(blocks, blk);
    }
    return write_report(path, j);
}
