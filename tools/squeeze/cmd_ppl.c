/* squeeze ppl: perplexity of a model on a text, optionally with KL divergence against a reference model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_json.h"

static const char ppl_help[] =
    "usage: squeeze ppl -m MODEL -f TEXTFILE [options]\n"
    "\n"
    "Perplexity of MODEL on a UTF-8 text file (invalid UTF-8 is an error; CRLF is read as LF).\n"
    "\n"
    "Default protocol: ids = [BOS] + encode(text), cut into consecutive non-overlapping windows of --ctx\n"
    "tokens (the last partial window is dropped; a text shorter than one window is an error). Each window\n"
    "is evaluated from an empty cache and positions 1..ctx-1 are scored: token i is predicted from the\n"
    "tokens before it in its window. ppl = exp(mean NLL), log-softmax in double precision; the 95%\n"
    "interval is exp(mean +- 1.96 sd/sqrt(n)) over per-token NLLs.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL       model to evaluate (llama2.c .bin, GGUF, Hugging Face directory)\n"
    "  -f, --file TEXTFILE     text to score\n"
    "      --ids FILE          score whitespace-separated token ids instead of a text (used as given, no "
    "BOS)\n"
    "      --ctx N             window length in tokens (default: the model's context length)\n"
    "      --stride S          sliding windows advancing by S, each scoring only its new tokens\n"
    "                          (Hugging Face's perplexity guide)\n"
    "      --score-second-half llama.cpp's protocol: each window starts with BOS and scores only\n"
    "                          positions ctx/2+1..ctx-1\n"
    "      --batch B           windows run together as B sequences of one forward pass (default: as many\n"
    "                          as fit 512 MiB of logits, at most 8)\n"
    "      --ref REFMODEL      also run a reference model on the same windows: KL(P_ref || P_model) mean\n"
    "                          and max per token, top-1 agreement, ppl ratio, the reference's ppl\n"
    "      --save-logits FILE  with --ref: store the reference's top-k log-probs per scored token\n"
    "      --save-top-k K      log-probs kept per token by --save-logits (default 64)\n"
    "      --ref-logits FILE   use a --save-logits file instead of --ref (same text, ctx and protocol);\n"
    "                          KL is then computed over the stored top k plus one bucket for the rest,\n"
    "                          a lower bound on the exact KL (see docs/eval.md)\n"
    "      --json FILE         write the machine-readable report (docs/report-format.md)\n"
    "      --label NAME        name this variant in the report (for squeeze report)\n"
    "  -t, --threads N         threads (default: all cores)\n"
    "      --tokenizer PATH    tokenizer to use instead of the model's own\n"
    "      --no-progress       no progress bar\n";

typedef struct ppl_args {
    const char *model, *file, *ids_file, *ref, *save_logits, *ref_logits, *json, *tokenizer, *label;
    long ctx, stride, batch, threads, top_k;
    int second_half, progress;
} ppl_args;

static int parse_args(int argc, char **argv, ppl_args *a) {
    *a = (ppl_args){.top_k = 64, .progress = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **str = !strcmp(f, "-m") || !strcmp(f, "--model")  ? &a->model
                           : !strcmp(f, "-f") || !strcmp(f, "--file") ? &a->file
                           : !strcmp(f, "--ids")                      ? &a->ids_file
                           : !strcmp(f, "--ref")                      ? &a->ref
                           : !strcmp(f, "--save-logits")              ? &a->save_logits
                           : !strcmp(f, "--ref-logits")               ? &a->ref_logits
                           : !strcmp(f, "--json")                     ? &a->json
                           : !strcmp(f, "--tokenizer")                ? &a->tokenizer
                           : !strcmp(f, "--label")                    ? &a->label
                                                                      : NULL;
        long *num = !strcmp(f, "--ctx")                           ? &a->ctx
                    : !strcmp(f, "--stride")                      ? &a->stride
                    : !strcmp(f, "--batch")                       ? &a->batch
                    : !strcmp(f, "--save-top-k")                  ? &a->top_k
                    : !strcmp(f, "-t") || !strcmp(f, "--threads") ? &a->threads
                                                                  : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            fputs(ppl_help, stdout);
            return 0;
        } else if (!strcmp(f, "--score-second-half")) {
            a->second_half = 1;
        } else if (!strcmp(f, "--no-progress")) {
            a->progress = 0;
        } else if (str) {
            if (!(*str = cli_flag_value("ppl", argc, argv, &i))) return 2;
        } else if (num) {
            const char *v = cli_flag_value("ppl", argc, argv, &i);
            if (!v) return 2;
            if (cli_parse_int(v, num == &a->threads ? 0 : 1, 1L << 30, num))
                return cli_usage_error("ppl", "%s wants a positive integer, not '%s'", f, v);
        } else {
            return cli_usage_error("ppl", "unknown option '%s'", f);
        }
    }
    if (!a->model) return cli_usage_error("ppl", "-m MODEL is required");
    if (!a->file == !a->ids_file)
        return cli_usage_error("ppl", "give exactly one of -f TEXTFILE and --ids FILE");
    if (a->stride && a->second_half)
        return cli_usage_error("ppl", "--stride and --score-second-half exclude each other");
    if (a->ref && a->ref_logits) return cli_usage_error("ppl", "--ref and --ref-logits exclude each other");
    if (a->save_logits && !a->ref) return cli_usage_error("ppl", "--save-logits needs --ref");
    return -1;
}

/* Whitespace-separated decimal token ids. Returns 0, or prints the problem and returns 1. */
static int read_ids(const char *path, int32_t **ids, int64_t *n) {
    char *text;
    size_t len;
    sq_error *err = sq_eval_read_text(path, &text, &len);
    if (err) return cli_fail(err);
    int64_t cap = 1024, count = 0;
    int32_t *out = malloc((size_t)cap * sizeof *out);
    int rc = !out;
    if (!out) fprintf(stderr, "squeeze: %s: out of memory\n", path);
    for (char *p = text, *end; out && !rc; p = end) {
        while (*p == ' ' || *p == '\n' || *p == '\t') p++;
        if (!*p) break;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ' ' && *end != '\n' && *end != '\t')) {
            fprintf(stderr, "squeeze: %s: token %lld is not a non-negative integer\n", path,
                    (long long)count + 1);
            rc = 1;
        } else {
            int32_t *bigger = count < cap ? out : realloc(out, (size_t)(cap *= 2) * sizeof *out);
            if (!bigger) {
                fprintf(stderr, "squeeze: %s: out of memory\n", path);
                rc = 1;
            } else {
                out = bigger;
                out[count++] = (int32_t)v;
            }
        }
    }
    free(text);
    if (rc) {
        free(out);
        return 1;
    }
    *ids = out;
    *n = count;
    return 0;
}

static const char *protocol_name(sq_ppl_protocol p) {
    return p == SQ_PPL_STRIDE ? "stride" : p == SQ_PPL_SECOND_HALF ? "second-half" : "windows";
}

static cJSON *ppl_report(const ppl_args *a, const sq_model *model, const sq_ppl_options *o,
                         const sq_ppl_result *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "ppl");
    cJSON_AddNumberToObject(j, "version", 1);
    if (a->label) cJSON_AddStringToObject(j, "label", a->label);
    cJSON_AddItemToObject(j, "model", eval_json_model(a->model, model));
    cJSON *text = cJSON_AddObjectToObject(j, "text");
    cJSON_AddStringToObject(text, "path", a->file ? a->file : a->ids_file);
    cJSON_AddStringToObject(text, "input", a->file ? "text" : "ids");
    cJSON_AddNumberToObject(text, "tokens", (double)r->n_ids);
    cJSON *proto = cJSON_AddObjectToObject(j, "protocol");
    cJSON_AddStringToObject(proto, "name", protocol_name(o->protocol));
    cJSON_AddNumberToObject(proto, "ctx", r->n_ctx);
    if (o->protocol == SQ_PPL_STRIDE)
        cJSON_AddNumberToObject(proto, "stride", o->stride);
    else
        cJSON_AddNullToObject(proto, "stride");
    cJSON_AddNumberToObject(proto, "batch", o->n_batch);
    cJSON_AddItemToObject(j, "ppl", eval_json_number(r->ppl));
    cJSON *ci = cJSON_AddArrayToObject(j, "ppl_ci95");
    cJSON_AddItemToArray(ci, eval_json_number(r->ppl_lo));
    cJSON_AddItemToArray(ci, eval_json_number(r->ppl_hi));
    cJSON_AddItemToObject(j, "mean_nll", eval_json_number(r->mean_nll));
    cJSON_AddItemToObject(j, "nll_sd", eval_json_number(r->nll_sd));
    cJSON_AddNumberToObject(j, "tokens_scored", (double)r->n_scored);
    cJSON_AddNumberToObject(j, "windows", r->n_windows);
    cJSON *timing = cJSON_AddObjectToObject(j, "timing");
    cJSON_AddNumberToObject(timing, "seconds", r->seconds);
    cJSON_AddNumberToObject(timing, "tokens_per_second", r->tokens_per_second);
    cJSON_AddNumberToObject(timing, "threads", (double)a->threads);
    if (r->has_ref) {
        cJSON *ref = cJSON_AddObjectToObject(j, "reference");
        if (a->ref)
            cJSON_AddStringToObject(ref, "path", a->ref);
        else
            cJSON_AddNullToObject(ref, "path");
        if (a->ref_logits)
            cJSON_AddStringToObject(ref, "logits_file", a->ref_logits);
        else
            cJSON_AddNullToObject(ref, "logits_file");
        cJSON_AddItemToObject(ref, "ppl", eval_json_number(r->ref_ppl));
        cJSON_AddItemToObject(ref, "ppl_ratio", eval_json_number(r->ppl_ratio));
        cJSON_AddItemToObject(ref, "kl_mean", eval_json_number(r->kl_mean));
        cJSON_AddItemToObject(ref, "kl_sd", eval_json_number(r->kl_sd));
        cJSON_AddItemToObject(ref, "kl_max", eval_json_number(r->kl_max));
        cJSON_AddItemToObject(ref, "top1_agreement", eval_json_number(r->top1_agreement));
        cJSON_AddStringToObject(ref, "kl_method", r->kl_top_k ? "top-k" : "exact");
        if (r->kl_top_k) {
            cJSON_AddNumberToObject(ref, "top_k", r->kl_top_k);
            cJSON_AddItemToObject(ref, "tail_mass_mean", eval_json_number(r->ref_tail_mass));
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
        cJSON_AddItemToObject(o1, "nll", eval_json_number(pw->nll));
        if (r->has_ref) cJSON_AddItemToObject(o1, "kl", eval_json_number(pw->kl));
        cJSON_AddItemToArray(wins, o1);
    }
    return j;
}

static void print_table(const ppl_args *a, const sq_ppl_options *o, const sq_ppl_result *r) {
    printf("model             %s\n", a->model);
    printf("text              %s (%lld tokens)\n", a->file ? a->file : a->ids_file, (long long)r->n_ids);
    if (o->protocol == SQ_PPL_STRIDE)
        printf("protocol          stride %d, ctx %d\n", o->stride, r->n_ctx);
    else
        printf("protocol          %s, ctx %d\n", protocol_name(o->protocol), r->n_ctx);
    printf("scored            %lld tokens in %d windows\n", (long long)r->n_scored, r->n_windows);
    printf("perplexity        %.4f  (95%% CI %.4f .. %.4f)\n", r->ppl, r->ppl_lo, r->ppl_hi);
    printf("time              %.2f s, %.1f tokens/s\n", r->seconds, r->tokens_per_second);
    if (!r->has_ref) return;
    printf("reference         %s\n", a->ref ? a->ref : a->ref_logits);
    printf("reference ppl     %.4f\n", r->ref_ppl);
    printf("ppl ratio         %.5f\n", r->ppl_ratio);
    printf("KL mean           %.6f nats/token (sd %.6f)%s\n", r->kl_mean, r->kl_sd,
           r->kl_top_k ? " [top-k estimate, a lower bound]" : "");
    printf("KL max            %.6f\n", r->kl_max);
    printf("top-1 agreement   %.3f%%\n", 100 * r->top1_agreement);
    if (r->kl_top_k)
        printf("ref tail mass     %.3g (mean mass outside the stored top %d)\n", r->ref_tail_mass,
               r->kl_top_k);
}

int sq_cmd_ppl(int argc, char **argv) {
    ppl_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    sq_load_options lo = {.tokenizer_path = a.tokenizer};
    sq_model *model = NULL, *ref = NULL;
    sq_error *err = cli_load_model(a.model, &lo, &model);
    if (err) return cli_fail(err);
    if (a.ref && (err = cli_load_model(a.ref, &lo, &ref))) {
        sq_model_free(model);
        return cli_fail(err);
    }
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    if (a.ids_file) {
        rc = read_ids(a.ids_file, &ids, &n_ids) ? 1 : -1;
    } else {
        char *text = NULL;
        size_t len = 0;
        int n = 0;
        err = sq_eval_read_text(a.file, &text, &len);
        if (!err && !tok) {
            fprintf(stderr, "squeeze ppl: %s has no tokenizer; give --tokenizer PATH or --ids FILE\n",
                    a.model);
            rc = 1;
        } else if (!err) {
            err = sq_tokenize(tok, text, len, 1, 0, &ids, &n);
            n_ids = n;
        }
        free(text);
    }
    sq_model_info info;
    sq_model_get_info(model, &info);
    int ctx = a.ctx ? (int)a.ctx : info.max_seq_len;
    int batch = (int)a.batch;
    if (!batch) {
        double per_window = (double)ctx * info.vocab_size * sizeof(float) * (a.ref ? 2 : 1);
        batch = per_window > 0 ? (int)(512.0 * 1024 * 1024 / per_window) : 1;
        batch = batch < 1 ? 1 : batch > 8 ? 8 : batch;
        if (ctx > 0 && n_ids / ctx >= 1 && batch > n_ids / ctx) batch = (int)(n_ids / ctx);
    }
    sq_ppl_options o = {.protocol = a.stride        ? SQ_PPL_STRIDE
                                    : a.second_half ? SQ_PPL_SECOND_HALF
                                                    : SQ_PPL_WINDOWS,
                        .n_ctx = ctx,
                        .stride = (int)a.stride,
                        .n_batch = batch,
                        .n_threads = (int)a.threads,
                        .bos_id = tok ? sq_tokenizer_bos(tok) : -1,
                        .ref = ref,
                        .ref_logits_in = a.ref_logits,
                        .ref_logits_out = a.save_logits,
                        .ref_top_k = (int)a.top_k,
                        .source = a.file ? a.file : a.ids_file};
    sq_progress_bar *bar = NULL;
    sq_ppl_result r = {0};
    if (!err && rc < 0) {
        if (a.progress && (bar = sq_progress_bar_create("ppl")))
            o.progress = sq_progress_bar_update, o.progress_user = bar;
        err = sq_perplexity(model, ids, n_ids, &o, &r);
        sq_progress_bar_free(bar);
    }
    if (err)
        rc = cli_fail(err);
    else if (rc < 0) {
        print_table(&a, &o, &r);
        rc = 0;
        if (a.json) {
            cJSON *report = ppl_report(&a, model, &o, &r);
            rc = eval_json_write(a.json, report);
            cJSON_Delete(report);
        }
    }
    sq_ppl_result_free(&r);
    free(ids);
    sq_model_free(ref);
    sq_model_free(model);
    return rc;
}
