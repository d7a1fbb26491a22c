/* Fuzz targets for what the evaluation verbs read: zero-shot task files (the JSONL layouts and HellaSwag's
 * bzip2 text), JSON reports (squeeze report), reference log-prob files (ppl --ref-logits), evaluation
 * text (ppl -f) and token id lists (ppl --ids-file). Each runs the public call a user's file reaches, on the
 * small fixture model. */
#include "harness.h"

#include <bzlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file each task reads (docs/eval.md). */
static const struct {
    const char *task, *file;
} task_files[8] = {
    {"piqa", "piqa.jsonl"},
    {"arc_easy", "arc_easy.jsonl"},
    {"arc_challenge", "arc_challenge.jsonl"},
    {"boolq", "boolq.jsonl"},
    {"openbook_qa", "openbook_qa.jsonl"},
    {"winogrande", "winogrande.jsonl"},
    {"lambada", "lambada_openai.jsonl"},
    {"hellaswag", "hellaswag_val.txt.bz2"},
};

/* First byte: bits 0-2 pick the task, bits 4-5 the batch size; for HellaSwag bit 3 writes the rest as it is
 * (a damaged bzip2 stream) instead of compressing it (the text inside). The rest is the task file. */
void fuzz_tasks(const uint8_t *data, size_t size) {
    if (size < 1) return;
    int which = data[0] & 7, n_batch = 1 + ((data[0] >> 4) & 3);
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    if (which == 7 && !(data[0] & 8)) {
        unsigned cap = (unsigned)(len + len / 100 + 600);
        char *packed = malloc(cap);
        if (!packed || BZ2_bzBuffToBuffCompress(packed, &cap, (char *)body, (unsigned)len, 1, 0, 0) != BZ_OK)
            abort();
        fuzz_write(task_files[which].file, (const uint8_t *)packed, cap);
        free(packed);
    } else {
        fuzz_write(task_files[which].file, body, len);
    }
    const int limit = 4;
    sq_eval_options opts = {.data_dir = fuzz_path(""), .limit = limit, .n_batch = n_batch, .n_threads = 1};
    char dir[512];
    snprintf(dir, sizeof dir, "%s", opts.data_dir);
    opts.data_dir = dir;
    sq_task_result *res = NULL;
    int n = 0;
    if (fuzz_failed(sq_eval_tasks(fuzz_fixture_model(), task_files[which].task, &opts, &res, &n))) return;
    fuzz_require(n == 1 && !strcmp(res[0].task, task_files[which].task), "one result, for the task asked");
    const sq_task_result *r = &res[0];
    fuzz_require(r->n_items >= 1 && r->n_items <= limit, "a task scores 1..limit items");
    fuzz_require(r->acc >= 0 && r->acc <= 1 && isfinite(r->acc_stderr), "accuracy is a fraction");
    fuzz_require(!r->has_acc_norm || (r->acc_norm >= 0 && r->acc_norm <= 1), "acc_norm is a fraction");
    fuzz_require(!r->has_ppl || r->ppl >= 1, "a perplexity is at least 1");
    fuzz_require(r->n_truncated >= 0 && r->n_truncated <= r->n_items, "truncated items are items");
    free(res);
}

/* Up to four reports separated by NUL bytes, merged into one table, rendered both ways. */
void fuzz_report(const uint8_t *data, size_t size) {
    const uint8_t *parts[4];
    size_t lens[4];
    int n = fuzz_split(data, size, 4, parts, lens);
    char paths[4][512];
    const char *path_list[4];
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "report%d.json", i);
        fuzz_write(name, parts[i], lens[i]);
        snprintf(paths[i], sizeof paths[i], "%s", fuzz_path(name));
        path_list[i] = paths[i];
    }
    for (int format = SQ_REPORT_MARKDOWN; format <= SQ_REPORT_SVG; format++) {
        char *text = NULL;
        if (fuzz_failed(sq_report_render(path_list, n, "fuzz", (sq_report_format)format, &text))) continue;
        fuzz_require(text && text[0], "a rendered report says something");
        free(text);
    }
}

/* A reference log-prob file for a fixed run: 24 token ids, windows of 8 (21 scored positions). */
void fuzz_ref_logits(const uint8_t *data, size_t size) {
    fuzz_write("ref.logp", data, size);
    const sq_model *model = fuzz_fixture_model();
    sq_model_info info;
    sq_model_get_info(model, &info);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (i * 7 + 1) % info.vocab_size; /* as fuzz/make_seeds.py */
    char path[512];
    snprintf(path, sizeof path, "%s", fuzz_path("ref.logp"));
    sq_ppl_options opts = {.protocol = SQ_PPL_WINDOWS, .n_ctx = 8, .n_threads = 1, .ref_logits_in = path};
    sq_ppl_result res;
    if (fuzz_failed(sq_perplexity(model, ids, 24, &opts, &res))) return;
    fuzz_require(res.has_ref && res.n_scored == 21, "the reference covers every scored token");
    fuzz_require(isfinite(res.ppl) && isfinite(res.kl_mean) && res.kl_mean >= 0 && isfinite(res.kl_max),
                 "KL from a valid reference file is a finite non-negative number");
    fuzz_require(!isnan(res.ref_ppl) && res.ref_ppl >= 1, "the reference's perplexity is at least 1");
    fuzz_require(res.top1_agreement >= 0 && res.top1_agreement <= 1, "top-1 agreement is a fraction");
    fuzz_require(res.ref_tail_mass >= 0 && res.ref_tail_mass <= 1, "the reference's tail mass is a fraction");
    sq_ppl_result_free(&res);
}

/* Evaluation text: strict UTF-8, CRLF to LF, then tokenized as ppl does. */
void fuzz_eval_text(const uint8_t *data, size_t size) {
    fuzz_write("text.txt", data, size);
    char *text = NULL;
    size_t len = 0;
    if (fuzz_failed(sq_eval_read_text(fuzz_path("text.txt"), &text, &len))) return;
    fuzz_require(len <= size && text[len] == 0,
                 "the text read is NUL-terminated and no longer than the file");
    fuzz_exercise_tokenizer(sq_model_tokenizer(fuzz_fixture_model()), (const uint8_t *)text, len);
    free(text);
}

/* An id file (ppl --ids-file) read whole and parsed as an integer list: a list that parses holds only values
 * in range, and printing it back gives the same list. */
void fuzz_int_list(const uint8_t *data, size_t size) {
    fuzz_write("ids.txt", data, size);
    char *text = NULL;
    size_t len = 0;
    int32_t *v = NULL, *again = NULL;
    int64_t n = 0, n_again = 0;
    sq_error *err = sq_read_file(fuzz_path("ids.txt"), 1 << 20, &text, &len);
    if (!err) err = sq_parse_int_list(text, len, -5, 1000000, &v, &n);
    free(text);
    if (fuzz_failed(err)) return;
    char *printed = malloc((size_t)n * 12 + 1), *p = printed;
    fuzz_require(printed != NULL, "memory for the printed list");
    for (int64_t i = 0; i < n; i++) {
        fuzz_require(v[i] >= -5 && v[i] <= 1000000, "a parsed value is in range");
        p += sprintf(p, i ? ", %d" : "%d", v[i]);
    }
    fuzz_require(
        !fuzz_failed(sq_parse_int_list(printed, (size_t)(p - printed), -5, 1000000, &again, &n_again)),
        "a printed list parses");
    fuzz_require(n_again == n && (!n || !memcmp(v, again, (size_t)n * sizeof *v)), "and reads back the same");
    free(printed);
    free(v);
    free(again);
}
