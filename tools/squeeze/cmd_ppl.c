/* squeeze ppl: perplexity of a model on a text, optionally with KL divergence against a reference model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* An id file larger than this is a mistake. */
#define MAX_IDS_BYTES ((size_t)1 << 32)

typedef struct ppl_args {
    const char *model, *file, *ids_file, *ref, *save_logits, *ref_logits, *json, *tokenizer, *label, *kv_type,
        *lora, *device;
    long ctx, stride, batch, threads, top_k;
    int second_half, no_progress, bos, no_bos;
    sq_bos_policy bos_policy;
} ppl_args;

static const cli_verb verb = {
    .name = "ppl",
    .usage = "-m MODEL (-f TEXTFILE | --ids-file FILE) [options]",
    .about =
        "Perplexity of MODEL on a UTF-8 text file (invalid UTF-8 is an error; CRLF is read as LF).\n"
        "\n"
        "Default protocol: ids = [BOS] + encode(text) (BOS where the model's tokenizer adds one, as\n"
        "llama.cpp and Hugging Face do; --bos / --no-bos force it), cut into consecutive non-overlapping\n"
        "windows of --ctx tokens (the last partial window is dropped; a text shorter than one window is\n"
        "an error, except with --stride, which scores it as one short window).\n"
        "Each window is evaluated from an empty cache and positions 1..ctx-1 are scored: token i is\n"
        "predicted from the tokens before it in its window. ppl = exp(mean NLL), log-softmax in double\n"
        "precision; the 95% interval is exp(mean +- 1.96 sd/sqrt(n)) over per-token NLLs.\n",
};

static int parse_args(int argc, char **argv, ppl_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model, 1),
        CLI_TEXT_FLAG("-f, --file", "TEXTFILE", &a->file, "text to score"),
        CLI_TEXT_FLAG(
            "--ids-file, --ids", "FILE", &a->ids_file,
            "score the token ids in FILE (separated by whitespace or\ncommas) as given, without BOS"),
        CLI_FLAG_CTX(&a->ctx, "the model's context length"),
        CLI_INT_FLAG("--stride", "S", &a->stride, 1, CLI_MAX_CTX, 0,
                     "sliding windows advancing by S, each scoring only its new\ntokens (Hugging "
                     "Face's perplexity guide)",
                     .def_shown = ""),
        CLI_SWITCH_FLAG("--score-second-half", &a->second_half,
                        "llama.cpp's protocol: each window starts with BOS (where\nthe text does) and scores "
                        "only positions ctx/2+1..ctx-1"),
        CLI_FLAGS_BOS(&a->bos, &a->no_bos),
        CLI_INT_FLAG("-b, --batch", "B", &a->batch, 1, CLI_MAX_BATCH, 0,
                     "windows run together as B sequences of one forward pass",
                     .def_shown = "as many as fit 512 MiB of logits, at most 8"),
        CLI_TEXT_FLAG(
            "--ref", "REFMODEL", &a->ref,
            "also run a reference model on the same windows: KL(P_ref ||\nP_model) mean and max per "
            "token, top-1 agreement, ppl ratio,\nthe reference's ppl"),
        CLI_TEXT_FLAG("--save-logits", "FILE", &a->save_logits,
                      "with --ref: store the reference's top-k log-probs per\nscored token"),
        CLI_INT_FLAG("--save-top-k", "K", &a->top_k, 1, 1 << 30, 64,
                     "log-probs kept per token by --save-logits"),
        CLI_TEXT_FLAG(
            "--ref-logits", "FILE", &a->ref_logits,
            "use a --save-logits file instead of --ref (same text, ctx\nand protocol); KL is then over the "
            "stored top k plus one\nbucket for the rest, a lower bound on the exact KL"),
        CLI_FLAG_JSON(&a->json),
        CLI_FLAG_LABEL(&a->label),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_KV_TYPE(&a->kv_type),
        CLI_FLAG_DEVICE(&a->device),
        CLI_FLAG_TOKENIZER(&a->tokenizer),
        CLI_FLAG_LORA(&a->lora),
        CLI_FLAG_NO_PROGRESS(&a->no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (!a->file == !a->ids_file)
        return cli_usage_error("ppl", "give exactly one of -f TEXTFILE and --ids-file FILE");
    if (a->stride && a->second_half)
        return cli_usage_error("ppl", "--stride and --score-second-half exclude each other");
    if (a->ref && a->ref_logits) return cli_usage_error("ppl", "--ref and --ref-logits exclude each other");
    if (a->save_logits && !a->ref) return cli_usage_error("ppl", "--save-logits needs --ref");
    return cli_bos_policy("ppl", a->bos, a->no_bos, &a->bos_policy);
}

/* The token ids of an id file. Returns 0, or prints the problem and returns 1. */
static int read_ids(const char *path, int32_t **ids, int64_t *n) {
    char *text;
    size_t len;
    sq_error *err = sq_read_file(path, MAX_IDS_BYTES, &text, &len);
    if (!err) err = sq_parse_int_list(text, len, 0, INT32_MAX, ids, n);
    free(text);
    if (!err) return 0;
    fprintf(stderr, "squeeze: %s: %s\n", path, sq_error_message(err));
    sq_error_free(err);
    return 1;
}

static const char *protocol_name(sq_ppl_protocol p) {
    return p == SQ_PPL_STRIDE ? "stride" : p == SQ_PPL_SECOND_HALF ? "second-half" : "windows";
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
    if (rc != CLI_CONTINUE) return rc;
    sq_load_options lo = {.tokenizer_path = a.tokenizer};
    sq_model *model = NULL, *ref = NULL;
    sq_error *err = cli_load_model_lora(a.model, &lo, a.lora, &model);
    if (err) return cli_fail(err);
    if (a.ref && (err = cli_load_model(a.ref, &lo, &ref))) {
        sq_model_free(model);
        return cli_fail(err);
    }
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    int bos = -1; /* what the text starts with, and the second-half protocol's window start */
    if (tok) err = sq_tokenizer_bos_for(tok, a.bos_policy, &bos);
    if (!err && !tok && a.bos_policy == SQ_BOS_ADD) {
        fprintf(stderr, "squeeze ppl: --bos: %s has no tokenizer to take BOS from; give --tokenizer PATH\n",
                a.model);
        rc = 1;
    } else if (!err && a.ids_file) {
        rc = read_ids(a.ids_file, &ids, &n_ids) ? 1 : CLI_CONTINUE;
    } else if (!err) {
        char *text = NULL;
        size_t len = 0;
        int n = 0;
        err = sq_eval_read_text(a.file, &text, &len);
        if (!err && !tok) {
            fprintf(stderr, "squeeze ppl: %s has no tokenizer; give --tokenizer PATH or --ids-file FILE\n",
                    a.model);
            rc = 1;
        } else if (!err) {
            err = sq_tokenize(tok, text, len, bos >= 0, 0, &ids, &n);
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
        if (ctx > 0 && batch > n_ids / ctx) batch = n_ids / ctx > 1 ? (int)(n_ids / ctx) : 1;
    }
    sq_ppl_options o = {.protocol = a.stride        ? SQ_PPL_STRIDE
                                    : a.second_half ? SQ_PPL_SECOND_HALF
                                                    : SQ_PPL_WINDOWS,
                        .n_ctx = ctx,
                        .stride = (int)a.stride,
                        .n_batch = batch,
                        .n_threads = (int)a.threads,
                        .bos_id = bos,
                        .ref = ref,
                        .ref_logits_in = a.ref_logits,
                        .ref_logits_out = a.save_logits,
                        .ref_top_k = (int)a.top_k,
                        .source = a.file ? a.file : a.ids_file,
                        .kv_type = cli_kv_type(a.kv_type),
                        .device = a.device};
    cli_progress *bar = NULL;
    sq_ppl_result r = {0};
    if (!err && rc == CLI_CONTINUE) {
        if (!a.no_progress && (bar = cli_progress_create("ppl")))
            o.progress = cli_progress_update, o.progress_user = bar;
        err = sq_perplexity(model, ids, n_ids, &o, &r);
        cli_progress_free(bar);
    }
    if (err)
        rc = cli_fail(err);
    else if (rc == CLI_CONTINUE) {
        print_table(&a, &o, &r);
        rc = 0;
        const sq_report_model rm = {a.model, a.label, model};
        if (a.json && (err = sq_report_write_ppl(a.json, &rm, &o, a.ref, a.ids_file != NULL, &r)))
            rc = cli_fail(err);
    }
    sq_ppl_result_free(&r);
    free(ids);
    sq_model_free(ref);
    sq_model_free(model);
    return rc;
}
