/* squeeze prune: remove weights (magnitude, Wanda, SparseGPT; unstructured or N:M), whole blocks (depth,
 * Shortened LLaMA) or rank (low rank: SVD, ASVD) from a model and write the smaller model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct prune_args {
    const char *model, *out, *to, *method, *nm, *store, *criterion, *calib, *scores_json, *tokenizer;
    double sparsity, heads, ffn, rank_ratio, param_ratio, alpha, owl, owl_m;
    long remove, remove_experts, keep_first, keep_last, calib_samples, calib_len, threads, seed;
    int no_progress;
} prune_args;

static const cli_verb verb = {
    .name = "prune",
    .usage =
        "-m MODEL -o OUT [--method magnitude] (--sparsity S | --nm N:M [--store S]) [options]\n"
        "       squeeze prune -m MODEL -o OUT --method wanda|sparsegpt (--sparsity S [--owl L] | --nm N:M)\n"
        "                     --calib TEXTFILE [--calib-samples N --calib-len L] [options]\n"
        "       squeeze prune -m MODEL -o OUT --method width [--heads F] [--ffn F] --calib TEXTFILE "
        "[options]\n"
        "       squeeze prune -m MODEL -o OUT --method depth --remove K [--criterion ppl|magnitude|taylor]\n"
        "                     [--calib TEXTFILE] [--scores-json FILE] [options]\n"
        "       squeeze prune -m MODEL -o OUT --method lowrank|asvd (--rank-ratio R | --param-ratio P)\n"
        "                     [--calib TEXTFILE (asvd)] [--alpha A] [options]\n"
        "       squeeze prune -m MODEL -o OUT --method experts --remove-experts K --calib TEXTFILE [options]",
    .about =
        "Prunes MODEL and writes the result to OUT (written to a temporary file that replaces OUT only\n"
        "once complete), printing what was removed and the parameters and size before and after.\n"
        "\n"
        "Every block's linear weights (q, k, v, o, gate, up, down) lose --sparsity S of each matrix, or\n"
        "all but N of every M consecutive input weights (--nm N:M), by the method's score:\n"
        "  magnitude: |W|, one threshold per matrix;\n"
        "  wanda (Sun et al. 2023): |W| times the norm of its input channel over the calibration\n"
        "    tokens, within each output row;\n"
        "  sparsegpt (Frantar & Alistarh 2023): chosen and compensated through the inverse Hessian,\n"
        "    128 columns at a time.\n"
        "  --store sparse-q8|sparse-q4|sparse-f16 (with --nm 2:4) keeps only the 2 kept values of every 4\n"
        "    with their positions (squeeze's own GGUF types sparse24_q8, sparse24_q4, sparse24_f16:\n"
        "    values as in q8_0, q4_0 or f16; docs/formats.md), multiplied by sparse kernels; tensors\n"
        "    outside the blocks in q8_0, q4_0 or f16. `squeeze quantize --type sparse24_q8` does the same\n"
        "    for a model pruned 2:4 before.\n"
        "  --owl L (OWL, Yin et al. 2024) gives each block its own sparsity in [S - L, S + L], averaging\n"
        "    S: blocks with more outliers (Wanda scores above --owl-m times their mean) keep more weights.\n"
        "width: each block loses --heads F of its key/value head groups (with their query heads) and\n"
        "  --ffn F of its FFN channels, the least important by Wanda's score summed over the structure\n"
        "  (Wanda-sp), giving genuinely smaller matrices; GGUF stores per-block widths.\n"
        "depth: Shortened LLaMA (Kim et al. 2024): every block is scored, then the K least important are\n"
        "  removed. ppl: the calibration perplexity with that block alone skipped; magnitude: the sum of\n"
        "  |W| of its linear weights; taylor (the paper's Taylor+): the sum over its weights of\n"
        "  |dL/dW * W| for the calibration cross-entropy, the first --keep-first and last --keep-last\n"
        "  blocks never removed.\n"
        "lowrank: every block's linear weights become two thin matrices B (out x r) and A (r x in)\n"
        "  from a truncated SVD, run as two matmuls; asvd (Yuan et al. 2023): the SVD of W scaled by\n"
        "  mean|x|^alpha of each input channel over the calibration tokens. --rank-ratio R keeps rank\n"
        "  R * min(out, in) in each weight; --param-ratio P keeps P of the linear weights' parameters in\n"
        "  all, ranks chosen per weight by singular-value energy. A weight that would not shrink stays\n"
        "  dense. The result saves as GGUF only (squeeze's own tensors, which llama.cpp cannot load).\n"
        "experts (mixtures of experts): every block loses the K experts that the fewest calibration\n"
        "  tokens chose among their top k (routing frequency); the model routes each token as before\n"
        "  with those experts left out.\n"
        "Calibration: --calib-samples windows of --calib-len tokens drawn at random positions of TEXTFILE\n"
        "(--seed), BOS first where the tokenizer adds one; wanda and sparsegpt run block by block, each\n"
        "block calibrated on the outputs of the blocks already pruned.\n",
};

static int parse_args(int argc, char **argv, prune_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model, 1),
        CLI_TEXT_FLAG("-o, --output", "OUT", &a->out, "where to write the pruned model", .required = 1),
        CLI_FLAG_OUTPUT_FORMAT(&a->to),
        CLI_CHOICE_FLAG("--method", "METHOD", &a->method,
                        "magnitude|wanda|sparsegpt|width|depth|lowrank|asvd|experts", "magnitude",
                        "pruning method"),
        CLI_NUMBER_FLAG("--sparsity", "S", &a->sparsity, 0, 1, 0,
                        "fraction of each matrix set to zero, in (0, 1)", .lo_open = 1, .def_shown = ""),
        CLI_NUMBER_FLAG("--owl", "L", &a->owl, 0, 1, 0,
                        "wanda, sparsegpt: OWL's lambda, e.g. 0.08 (the paper's)", .def_shown = "off"),
        CLI_NUMBER_FLAG("--owl-m", "M", &a->owl_m, 0, 1e6, 0, "OWL's outlier threshold", .def_shown = "5"),
        CLI_TEXT_FLAG("--nm", "N:M", &a->nm, "N of every M consecutive weights kept (2:4, 4:8)"),
        CLI_CHOICE_FLAG("--store", "S", &a->store, "dense|sparse-q8|sparse-q4|sparse-f16", "dense",
                        "--nm 2:4: how the weights are stored"),
        CLI_NUMBER_FLAG("--heads", "F", &a->heads, 0, 1, 0,
                        "width: fraction of each block's KV head groups removed"),
        CLI_NUMBER_FLAG("--ffn", "F", &a->ffn, 0, 1, 0,
                        "width: fraction of each block's FFN channels removed"),
        CLI_INT_FLAG("--remove", "K", &a->remove, 1, 1 << 20, 0, "depth: blocks to remove", .def_shown = ""),
        CLI_INT_FLAG("--remove-experts", "K", &a->remove_experts, 1, 1 << 16, 0,
                     "experts: experts every block loses", .def_shown = ""),
        CLI_CHOICE_FLAG("--criterion", "C", &a->criterion, "ppl|magnitude|taylor", "ppl",
                        "depth: block importance"),
        CLI_INT_FLAG("--keep-first", "N", &a->keep_first, -1, 1 << 20, 0,
                     "taylor: first blocks never removed (0: ceil(L/8), the paper's\n4 of 32; -1: none)"),
        CLI_INT_FLAG("--keep-last", "N", &a->keep_last, -1, 1 << 20, 0,
                     "taylor: last blocks never removed (0: ceil(L/16); -1: none)"),
        CLI_NUMBER_FLAG("--rank-ratio", "R", &a->rank_ratio, 0, 1, 0,
                        "lowrank, asvd: rank kept per weight, a fraction of min(out, in)", .lo_open = 1,
                        .def_shown = ""),
        CLI_NUMBER_FLAG("--param-ratio", "P", &a->param_ratio, 0, 1, 0,
                        "lowrank, asvd: fraction of the linear weights' parameters kept", .lo_open = 1,
                        .def_shown = ""),
        CLI_NUMBER_FLAG("--alpha", "A", &a->alpha, 0, 4, 0, "asvd: exponent of mean|x|", .lo_open = 1,
                        .def_shown = "0.5"),
        CLI_TEXT_FLAG("--calib", "TEXTFILE", &a->calib,
                      "calibration text (UTF-8) for wanda, sparsegpt, width, asvd, depth ppl"),
        CLI_INT_FLAG("--calib-samples", "N", &a->calib_samples, 1, 1 << 20, 0, "calibration windows",
                     .def_shown = "128; depth: 10"),
        CLI_INT_FLAG("--calib-len", "L", &a->calib_len, 2, CLI_MAX_CTX, 128, "tokens per calibration window"),
        CLI_FLAG_SEED(&a->seed, 0, "where the calibration windows are drawn"),
        CLI_TEXT_FLAG("--scores-json", "FILE", &a->scores_json,
                      "write the request, what changed and the per-block scores\n(docs/report-format.md)"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_TOKENIZER(&a->tokenizer),
        CLI_FLAG_NO_PROGRESS(&a->no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    if (strcmp(a->store, "dense") && (!a->nm || strcmp(a->nm, "2:4")))
        return cli_usage_error("prune", "--store %s stores 2:4 sparse weights: it needs --nm 2:4", a->store);
    const int lowrank = !strcmp(a->method, "lowrank") || !strcmp(a->method, "asvd");
    const int experts = !strcmp(a->method, "experts");
    if ((a->owl || a->owl_m) && strcmp(a->method, "wanda") && strcmp(a->method, "sparsegpt"))
        return cli_usage_error("prune", "--owl and --owl-m belong to --method wanda and sparsegpt");
    if (a->owl_m && !a->owl) return cli_usage_error("prune", "--owl-m needs --owl L");
    if (!experts && a->remove_experts)
        return cli_usage_error("prune", "--remove-experts belongs to --method experts");
    if (experts) {
        if (!a->remove_experts) return cli_usage_error("prune", "experts needs --remove-experts K");
        if (a->sparsity || a->nm || a->remove || a->heads || a->ffn || a->rank_ratio || a->param_ratio ||
            a->alpha)
            return cli_usage_error("prune",
                                   "--method experts takes only --remove-experts and calibration flags");
        if (!a->calib) return cli_usage_error("prune", "experts needs --calib TEXTFILE");
        return CLI_CONTINUE;
    }
    if (!lowrank && (a->rank_ratio || a->param_ratio || a->alpha))
        return cli_usage_error("prune", "--rank-ratio, --param-ratio and --alpha belong to lowrank and asvd");
    if (lowrank) {
        if (!a->rank_ratio == !a->param_ratio)
            return cli_usage_error("prune", "%s needs exactly one of --rank-ratio and --param-ratio",
                                   a->method);
        if (a->sparsity || a->nm || a->remove || a->heads || a->ffn)
            return cli_usage_error(
                "prune", "--sparsity, --nm, --remove, --heads and --ffn do not apply to %s", a->method);
        if (!strcmp(a->method, "lowrank") && (a->calib || a->alpha))
            return cli_usage_error("prune", "plain lowrank takes no --calib or --alpha (asvd does)");
        if (!strcmp(a->method, "asvd") && !a->calib)
            return cli_usage_error("prune", "asvd needs --calib TEXTFILE");
    } else if (!strcmp(a->method, "width")) {
        if (!a->heads && !a->ffn) return cli_usage_error("prune", "width needs --heads F and/or --ffn F");
        if (a->sparsity || a->nm || a->remove)
            return cli_usage_error("prune", "--sparsity, --nm and --remove do not apply to --method width");
        if (!a->calib) return cli_usage_error("prune", "width needs --calib TEXTFILE");
    } else if (strcmp(a->method, "depth")) {
        if (!a->sparsity == !a->nm)
            return cli_usage_error("prune", "%s needs exactly one of --sparsity and --nm", a->method);
        if (a->remove) return cli_usage_error("prune", "--remove belongs to --method depth");
        if (!strcmp(a->method, "magnitude") && a->calib)
            return cli_usage_error("prune", "magnitude pruning takes no --calib");
        if (strcmp(a->method, "magnitude") && !a->calib)
            return cli_usage_error("prune", "%s needs --calib TEXTFILE", a->method);
    } else {
        if (!a->remove) return cli_usage_error("prune", "depth needs --remove K");
        if (a->sparsity || a->nm)
            return cli_usage_error("prune", "--sparsity and --nm do not apply to --method depth");
        if (strcmp(a->criterion, "magnitude") && !a->calib)
            return cli_usage_error("prune", "the %s criterion needs --calib TEXTFILE", a->criterion);
    }
    return CLI_CONTINUE;
}

/* "N:M" as two integers; 0 when it is not of that form (the library checks the values). */
static int parse_nm(const char *text, int *n, int *m) {
    char tail;
    return text && sscanf(text, "%d:%d%c", n, m, &tail) == 2;
}

static void print_summary(const prune_args *a, const sq_prune_options *o, const sq_prune_result *r) {
    printf("model             %s -> %s\n", a->model, a->out);
    if (o->method == SQ_PRUNE_WIDTH) {
        printf("method            width, heads %.4g, ffn %.4g\n", o->heads, o->ffn);
        printf("calibration       %d windows of %d tokens of %s\n", o->calib->n_samples, o->calib->seq_len,
               a->calib);
    } else if (o->method == SQ_PRUNE_LOWRANK || o->method == SQ_PRUNE_ASVD) {
        if (o->rank_ratio)
            printf("method            %s, rank ratio %.4g\n", a->method, o->rank_ratio);
        else
            printf("method            %s, parameter ratio %.4g\n", a->method, o->param_ratio);
        if (o->calib)
            printf("calibration       %d windows of %d tokens of %s, alpha %.4g\n", o->calib->n_samples,
                   o->calib->seq_len, a->calib, o->asvd_alpha ? o->asvd_alpha : 0.5);
        printf("factorised        %d linear weights (the others stay dense)\n", r->n_factorised);
    } else if (o->method == SQ_PRUNE_EXPERTS) {
        printf("method            experts, %d of %d removed per block (routing frequency)\n", r->n_removed,
               r->n_experts_before);
        printf("calibration       %d windows of %d tokens of %s\n", o->calib->n_samples, o->calib->seq_len,
               a->calib);
        for (int l = 0; l < r->n_layers_before; l++) {
            printf("  block %-3d removed", l);
            for (int k = 0; k < r->n_removed; k++) {
                int e = r->removed[(size_t)l * (size_t)r->n_removed + (size_t)k];
                printf(" %d (%.2f%% of tokens)", e,
                       100 * r->scores[(size_t)l * (size_t)r->n_experts_before + (size_t)e]);
            }
            printf("\n");
        }
    } else if (o->method != SQ_PRUNE_DEPTH) {
        if (o->nm_m)
            printf("method            %s, %d:%d\n", a->method, o->nm_n, o->nm_m);
        else
            printf("method            %s, sparsity %.4g%s\n", a->method, o->sparsity,
                   o->owl_lambda ? " (OWL)" : "");
        for (int l = 0; r->layer_sparsity && l < r->n_layers_before; l++)
            printf("  block %-3d outliers %.4f%%  sparsity %.4f\n", l, 100 * r->owl_lod[l],
                   r->layer_sparsity[l]);
        if (o->calib)
            printf("calibration       %d windows of %d tokens of %s\n", o->calib->n_samples,
                   o->calib->seq_len, a->calib);
        printf("pruned            %lld weights of the blocks' linear layers\n", (long long)r->n_pruned);
        /* each line "blk.L.ffn_*_exps.weight: experts E ..." */
        for (const char *s = r->experts_magnitude, *e; s && (e = strchr(s, '\n')); s = e + 1)
            fprintf(stderr,
                    "squeeze prune: warning: %.*s received no calibration token: pruned by magnitude\n",
                    (int)(e - s), s);
    } else {
        printf("method            depth, criterion %s, %d of %d blocks removed\n", a->criterion, r->n_removed,
               r->n_layers_before);
        if (o->criterion == SQ_DEPTH_PPL)
            printf("calibration ppl   %.4f (no block removed)\n", r->base_score);
        for (int l = 0; l < r->n_layers_before; l++) {
            int gone = 0;
            for (int k = 0; k < r->n_removed; k++) gone |= r->removed[k] == l;
            printf("  block %-3d score %-14.6g%s\n", l, r->scores[l], gone ? "  removed" : "");
        }
    }
    printf("blocks            %d -> %d\n", r->n_layers_before, r->n_layers_after);
    printf("parameters        %lld -> %lld\n", (long long)r->params_before, (long long)r->params_after);
    printf("non-zero          %lld -> %lld (%.2f%% of the parameters zero after)\n",
           (long long)r->nonzero_before, (long long)r->nonzero_after,
           r->params_after ? 100.0 * (double)(r->params_after - r->nonzero_after) / (double)r->params_after
                           : 0);
    printf("weight bytes      %.2f MB -> %.2f MB\n", r->bytes_before / 1e6, r->bytes_after / 1e6);
}

int sq_cmd_prune(int argc, char **argv) {
    prune_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    sq_prune_options o = {.method = !strcmp(a.method, "depth")       ? SQ_PRUNE_DEPTH
                                    : !strcmp(a.method, "wanda")     ? SQ_PRUNE_WANDA
                                    : !strcmp(a.method, "sparsegpt") ? SQ_PRUNE_SPARSEGPT
                                    : !strcmp(a.method, "width")     ? SQ_PRUNE_WIDTH
                                    : !strcmp(a.method, "lowrank")   ? SQ_PRUNE_LOWRANK
                                    : !strcmp(a.method, "asvd")      ? SQ_PRUNE_ASVD
                                    : !strcmp(a.method, "experts")   ? SQ_PRUNE_EXPERTS
                                                                     : SQ_PRUNE_MAGNITUDE,
                          .sparsity = a.sparsity,
                          .owl_lambda = a.owl,
                          .owl_m = a.owl_m,
                          .heads = a.heads,
                          .ffn = a.ffn,
                          .n_remove = (int)a.remove,
                          .n_remove_experts = (int)a.remove_experts,
                          .criterion = !strcmp(a.criterion, "magnitude") ? SQ_DEPTH_MAGNITUDE
                                       : !strcmp(a.criterion, "taylor")  ? SQ_DEPTH_TAYLOR
                                                                         : SQ_DEPTH_PPL,
                          .taylor_keep_first = (int)a.keep_first,
                          .taylor_keep_last = (int)a.keep_last,
                          .rank_ratio = a.rank_ratio,
                          .param_ratio = a.param_ratio,
                          .asvd_alpha = a.alpha,
                          .n_threads = (int)a.threads};
    if (a.nm && !parse_nm(a.nm, &o.nm_n, &o.nm_m))
        return cli_usage_error("prune", "--nm wants N:M (two integers, e.g. 2:4), not '%s'", a.nm);
    sq_file_format format = cli_output_format(a.out, a.to);
    sq_model *model;
    sq_error *err = cli_load_model(a.model, &(sq_load_options){.tokenizer_path = a.tokenizer}, &model);
    if (err) return cli_fail(err);
    sq_calib_samples samples = {0};
    long n_samples = a.calib_samples ? a.calib_samples : o.method == SQ_PRUNE_DEPTH ? 10 : 128;
    if (a.calib && (rc = cli_calib_samples("prune", model, a.calib, (int)n_samples, (int)a.calib_len, a.seed,
                                           &samples)) != CLI_CONTINUE) {
        sq_model_free(model);
        return rc;
    }
    if (a.calib) o.calib = &samples;
    err = sq_prune_check(model, &o);
    sq_prune_result r = {0};
    if (!err) {
        cli_progress *bar = a.no_progress ? NULL : cli_progress_create("prune");
        if (bar) o.progress = cli_progress_update, o.progress_user = bar;
        err = sq_prune(model, &o, &r);
        cli_progress_free(bar);
    }
    /* --store sparse-*: the pruned weights in a 2:4 format, as squeeze quantize --type sparse24_* */
    char store_type[32] = "";
    const int sparse = strcmp(a.store, "dense") != 0; /* else a.store is "dense": no suffix to read */
    if (sparse) snprintf(store_type, sizeof store_type, "sparse24_%s", a.store + strlen("sparse-"));
    sq_quantize_report *stored = NULL;
    if (!err && sparse)
        err = sq_quantize_model(model, &(sq_quantize_params){.type = store_type, .n_threads = (int)a.threads},
                                NULL, NULL, &stored);
    if (!err) err = sq_model_save(model, a.out, format);
    if (!err) {
        print_summary(&a, &o, &r);
        if (stored) {
            int n_sparse = 0;
            for (int i = 0; i < stored->n_tensors; i++)
                n_sparse += !strcmp(stored->tensors[i].type, store_type);
            printf("stored as         %s: %d matrices (the others dense), weight bytes %.2f MB -> %.2f MB\n",
                   store_type, n_sparse, stored->bytes_before / 1e6, stored->bytes_after / 1e6);
        }
        cli_note_lowrank("prune", model, a.out);
        const sq_report_model rm = {a.out, NULL, model};
        if (a.scores_json) err = sq_report_write_prune(a.scores_json, &rm, a.model, &o, &r);
    }
    rc = err ? cli_fail(err) : 0;
    sq_quantize_report_free(stored);
    sq_prune_result_free(&r);
    sq_calib_samples_free(&samples);
    sq_model_free(model);
    return rc;
}
