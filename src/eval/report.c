/* squeeze report: merges ppl / eval / bench JSON reports into one row per model variant and renders the
 * Markdown table. The fields read here are documented in docs/report-format.md. */
#include "eval/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/error.h"
#include "eval/json_util.h"

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The file or directory name a path ends with ("models/x.gguf" -> "x.gguf", "hf/llama/" -> "llama"). */
static char *path_leaf(const char *path) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    char *leaf = malloc(end - start + 1);
    if (!leaf) return NULL;
    memcpy(leaf, path + start, end - start);
    leaf[end - start] = 0;
    return leaf;
}

static SQ_NODISCARD sq_error *find_or_add_variant(sq_report_table *t, const char *model, const char *label,
                                                  sq_report_variant **out) {
    const char *key = label ? label : model;
    for (int i = 0; i < t->n_variants; i++)
        if (!strcmp(t->variants[i].key, key)) {
            *out = &t->variants[i];
            return NULL;
        }
    if (SQ_ARRAY_RESERVE(t->variants, t->cap_variants, (size_t)t->n_variants + 1))
        return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    sq_report_variant *v = &t->variants[t->n_variants];
    memset(v, 0, sizeof *v);
    v->key = dup_string(key);
    v->name = label ? dup_string(label) : path_leaf(model);
    if (!v->key || !v->name) {
        free(v->key);
        free(v->name);
        return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    }
    t->n_variants++;
    *out = v;
    return NULL;
}

static void set_value(sq_report_value *dst, double value) {
    dst->present = 1;
    dst->value = value;
}

/* A number field that must lie in [lo, hi] when present; stored into dst. */
static SQ_NODISCARD sq_error *read_ranged(const cJSON *obj, const char *name, int flags, const char *where,
                                          double lo, double hi, sq_report_value *dst) {
    double value = 0;
    int found = 0;
    SQ_TRY(sq_json_get_number(obj, name, flags, where, &value, &found));
    if (!found) return NULL;
    if (value < lo || value > hi)
        return sq_errorf(SQ_ERR_FORMAT, "%s: field \"%s\" is %g, outside [%g, %g]", where, name, value, lo,
                         hi);
    set_value(dst, value);
    return NULL;
}

/* The variant an object names: its "label", else its "model" object's "path"; the model's weight bytes. */
static SQ_NODISCARD sq_error *variant_of(sq_report_table *t, const cJSON *obj, const char *where,
                                         sq_report_variant **out) {
    const cJSON *model;
    const char *path = NULL, *label = NULL;
    SQ_TRY(sq_json_get_object(obj, "model", SQ_JSON_REQUIRED, where, &model));
    char inner[1300];
    snprintf(inner, sizeof inner, "%s: model", where);
    SQ_TRY(sq_json_get_string(model, "path", SQ_JSON_REQUIRED, inner, &path));
    SQ_TRY(sq_json_get_string(obj, "label", 0, where, &label));
    if (!*path) return sq_errorf(SQ_ERR_FORMAT, "%s: field \"path\" is empty", inner);
    if (label && !*label) return sq_errorf(SQ_ERR_FORMAT, "%s: field \"label\" is empty", where);
    SQ_TRY(find_or_add_variant(t, path, label, out));
    return read_ranged(model, "weight_bytes", 0, inner, 0, 1e18, &(*out)->size_bytes);
}

static SQ_NODISCARD sq_error *load_ppl(sq_report_table *t, const cJSON *root, const char *path) {
    sq_report_variant *v;
    SQ_TRY(variant_of(t, root, path, &v));
    SQ_TRY(read_ranged(root, "ppl", SQ_JSON_REQUIRED | SQ_JSON_NULLABLE, path, 1, INFINITY, &v->ppl));
    const cJSON *ref;
    SQ_TRY(sq_json_get_object(root, "reference", SQ_JSON_NULLABLE, path, &ref));
    if (!ref) return NULL;
    char where[1200];
    snprintf(where, sizeof where, "%s: reference", path);
    return read_ranged(ref, "kl_mean", SQ_JSON_REQUIRED | SQ_JSON_NULLABLE, where, 0, INFINITY, &v->kl);
}

static SQ_NODISCARD sq_error *load_eval(sq_report_table *t, const cJSON *root, const char *path) {
    sq_report_variant *v;
    SQ_TRY(variant_of(t, root, path, &v));
    const cJSON *average;
    SQ_TRY(sq_json_get_object(root, "average", SQ_JSON_REQUIRED, path, &average));
    char where[1200];
    snprintf(where, sizeof where, "%s: average", path);
    return read_ranged(average, "score", SQ_JSON_REQUIRED | SQ_JSON_NULLABLE, where, 0, 1, &v->zero_shot_avg);
}

/* The median of a {"median", "min", "max"} statistic; null (a benchmark without a prompt or without output
 * tokens has no such figure) leaves *out NAN. */
static SQ_NODISCARD sq_error *read_median(const cJSON *obj, const char *name, const char *where,
                                          double *out) {
    const cJSON *stat;
    SQ_TRY(sq_json_get_object(obj, name, SQ_JSON_REQUIRED, where, &stat));
    char inner[1400];
    snprintf(inner, sizeof inner, "%s: %s", where, name);
    int found = 0;
    *out = NAN;
    SQ_TRY(sq_json_get_number(stat, "median", SQ_JSON_REQUIRED | SQ_JSON_NULLABLE, inner, out, &found));
    if (found && *out <= 0)
        return sq_errorf(SQ_ERR_FORMAT, "%s: median is %g, should be positive", inner, *out);
    return NULL;
}

/* A bench variant: decode speed and time to first token at its smallest batch size. */
static SQ_NODISCARD sq_error *load_bench_variant(sq_report_table *t, const cJSON *obj, const char *where) {
    sq_report_variant *v;
    SQ_TRY(variant_of(t, obj, where, &v));
    const cJSON *results;
    SQ_TRY(sq_json_get_array(obj, "results", SQ_JSON_REQUIRED, where, &results));
    int best_batch = 0;
    double decode = 0, ttft = 0;
    for (int i = 0; i < cJSON_GetArraySize(results); i++) {
        char inner[1300];
        snprintf(inner, sizeof inner, "%s: results[%d]", where, i);
        const cJSON *r = cJSON_GetArrayItem(results, i);
        if (!cJSON_IsObject(r)) return sq_errorf(SQ_ERR_FORMAT, "%s: should be an object", inner);
        double batch;
        SQ_TRY(sq_json_get_number(r, "n_seqs", SQ_JSON_REQUIRED, inner, &batch, NULL));
        if (batch < 1 || batch > 1e9 || batch != floor(batch))
            return sq_errorf(SQ_ERR_FORMAT, "%s: field \"n_seqs\" should be a positive integer, not %g",
                             inner, batch);
        double d, f;
        SQ_TRY(read_median(r, "decode_tok_s", inner, &d));
        SQ_TRY(read_median(r, "ttft_s", inner, &f));
        if (!best_batch || batch < best_batch) best_batch = (int)batch, decode = d, ttft = f;
    }
    if (!best_batch) return sq_errorf(SQ_ERR_FORMAT, "%s: \"results\" is empty", where);
    v->bench_batch = best_batch;
    if (!isnan(decode)) set_value(&v->decode_tok_s, decode);
    if (!isnan(ttft)) set_value(&v->ttft_s, ttft);
    return NULL;
}

static SQ_NODISCARD sq_error *load_bench(sq_report_table *t, const cJSON *root, const char *path) {
    const cJSON *variants;
    SQ_TRY(sq_json_get_array(root, "variants", SQ_JSON_REQUIRED, path, &variants));
    if (cJSON_GetArraySize(variants) == 0) return sq_errorf(SQ_ERR_FORMAT, "%s: \"variants\" is empty", path);
    for (int i = 0; i < cJSON_GetArraySize(variants); i++) {
        char where[1200];
        snprintf(where, sizeof where, "%s: variants[%d]", path, i);
        const cJSON *v = cJSON_GetArrayItem(variants, i);
        if (!cJSON_IsObject(v)) return sq_errorf(SQ_ERR_FORMAT, "%s: should be an object", where);
        SQ_TRY(load_bench_variant(t, v, where));
    }
    return NULL;
}

/* The report layout version this reader knows (docs/report-format.md). */
#define SQ_REPORT_VERSION 1

/* The envelope every report shares: an object with "kind" and "version". */
static SQ_NODISCARD sq_error *read_envelope(const cJSON *root, const char *path, const char **kind) {
    if (!cJSON_IsObject(root)) return sq_errorf(SQ_ERR_FORMAT, "%s: a report is a JSON object", path);
    double version = 0;
    SQ_TRY(sq_json_get_string(root, "kind", SQ_JSON_REQUIRED, path, kind));
    SQ_TRY(sq_json_get_number(root, "version", SQ_JSON_REQUIRED, path, &version, NULL));
    if (version != SQ_REPORT_VERSION)
        return sq_errorf(SQ_ERR_UNSUPPORTED, "%s: report version %g, this squeeze reads version %d", path,
                         version, SQ_REPORT_VERSION);
    return NULL;
}

static SQ_NODISCARD sq_error *load_one(sq_report_table *t, const char *path) {
    cJSON *root;
    SQ_TRY(sq_json_load_file(path, &root));
    const char *kind = NULL;
    sq_error *err = read_envelope(root, path, &kind);
    if (!err) {
        if (!strcmp(kind, "ppl"))
            err = load_ppl(t, root, path);
        else if (!strcmp(kind, "eval"))
            err = load_eval(t, root, path);
        else if (!strcmp(kind, "bench"))
            err = load_bench(t, root, path);
        else
            err = sq_errorf(SQ_ERR_FORMAT, "%s: unknown report kind \"%s\" (expected ppl, eval or bench)",
                            path, kind);
    }
    cJSON_Delete(root);
    return err;
}

/* Variants whose file names coincide ("model.gguf" in two folders) are shown by their full key instead. */
static SQ_NODISCARD sq_error *disambiguate_names(sq_report_table *t) {
    char *clash = calloc((size_t)t->n_variants + 1, 1);
    if (!clash) return sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    for (int i = 0; i < t->n_variants; i++)
        for (int j = 0; j < t->n_variants; j++)
            if (j != i && !strcmp(t->variants[i].name, t->variants[j].name)) clash[i] = 1;
    sq_error *err = NULL;
    for (int i = 0; !err && i < t->n_variants; i++) {
        if (!clash[i]) continue;
        char *full = dup_string(t->variants[i].key);
        if (!full)
            err = sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
        else
            free(t->variants[i].name), t->variants[i].name = full;
    }
    free(clash);
    return err;
}

sq_error *sq_report_table_load(const char *const *paths, int n_paths, sq_report_table *table) {
    memset(table, 0, sizeof *table);
    if (n_paths < 1) return sq_errorf(SQ_ERR_INVALID_ARG, "report: no report files given");
    sq_error *err = NULL;
    for (int i = 0; !err && i < n_paths; i++) err = load_one(table, paths[i]);
    if (!err) err = disambiguate_names(table);
    if (err) sq_report_table_free(table);
    return err;
}

void sq_report_table_free(sq_report_table *table) {
    for (int i = 0; i < table->n_variants; i++) {
        free(table->variants[i].key);
        free(table->variants[i].name);
    }
    free(table->variants);
    memset(table, 0, sizeof *table);
}

/* ------------------------------------------------------------------ Markdown */

/* A table cell: the text with '|' escaped and line breaks flattened. */
static void write_cell_text(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

/* A number cell: `decimals` fixed decimals, or (-1) about four significant digits without an exponent for
 * the ranges these columns hold. */
static void write_number(FILE *out, const sq_report_value *v, double scale, int decimals,
                         const char *suffix) {
    if (!v->present) {
        fputs(" | —", out);
        return;
    }
    double x = v->value * scale, ax = fabs(x);
    if (decimals >= 0)
        fprintf(out, " | %.*f%s", decimals, x, suffix);
    else if (ax >= 1000)
        fprintf(out, " | %.0f%s", x, suffix);
    else if (ax >= 100)
        fprintf(out, " | %.1f%s", x, suffix);
    else if (ax >= 10)
        fprintf(out, " | %.2f%s", x, suffix);
    else if (ax >= 1 || ax == 0)
        fprintf(out, " | %.3f%s", x, suffix);
    else
        fprintf(out, " | %.3g%s", x, suffix);
}

sq_error *sq_report_write_markdown(const sq_report_table *t, const char *title, FILE *out) {
    fprintf(out, "# ");
    write_cell_text(out, title ? title : "squeeze report");
    fprintf(out, "\n\n| variant | size (MiB) | ppl | KL | zero-shot avg | decode tok/s | TTFT (ms) |\n"
                 "|---|---:|---:|---:|---:|---:|---:|\n");
    int min_batch = 0, max_batch = 0;
    for (int i = 0; i < t->n_variants; i++) {
        const sq_report_variant *v = &t->variants[i];
        fputs("| ", out);
        write_cell_text(out, v->name);
        write_number(out, &v->size_bytes, 1.0 / (1 << 20), -1, "");
        write_number(out, &v->ppl, 1, -1, "");
        write_number(out, &v->kl, 1, -1, "");
        write_number(out, &v->zero_shot_avg, 100, 1, "%");
        write_number(out, &v->decode_tok_s, 1, 1, "");
        write_number(out, &v->ttft_s, 1000, -1, "");
        fputs(" |\n", out);
        if (v->bench_batch && (!min_batch || v->bench_batch < min_batch)) min_batch = v->bench_batch;
        if (v->bench_batch > max_batch) max_batch = v->bench_batch;
    }
    fprintf(out,
            "\nsize: weights in memory; ppl: perplexity; KL: mean KL divergence from the reference model; "
            "zero-shot avg: mean of the tasks' scores (acc_norm where reported, else acc)");
    if (min_batch == max_batch && min_batch)
        fprintf(out, "; decode tok/s and TTFT: medians at batch size %d", min_batch);
    else if (min_batch)
        fprintf(out,
                "; decode tok/s and TTFT: medians at each variant's smallest measured batch size (%d to %d)",
                min_batch, max_batch);
    fprintf(out, ".\n");
    return ferror(out) ? sq_errorf(SQ_ERR_IO, "report: writing the Markdown failed") : NULL;
}

sq_error *sq_report_render(const char *const *paths, int n_paths, const char *title, sq_report_format format,
                           char **text) {
    if (format != SQ_REPORT_MARKDOWN && format != SQ_REPORT_SVG)
        return sq_errorf(SQ_ERR_INVALID_ARG, "report: unknown output format %d", (int)format);
    sq_report_table table;
    SQ_TRY(sq_report_table_load(paths, n_paths, &table));
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    sq_error *err = out ? NULL : sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    if (!err)
        err = format == SQ_REPORT_MARKDOWN ? sq_report_write_markdown(&table, title, out)
                                           : sq_report_write_svg(&table, title, out);
    if (out && fclose(out) && !err) err = sq_errorf(SQ_ERR_NOMEM, "report: out of memory");
    sq_report_table_free(&table);
    if (err) {
        free(buf);
        return err;
    }
    *text = buf;
    return NULL;
}
