/* squeeze quantize: store a model's weight matrices in llama.cpp's block formats and write a GGUF file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_verb verb = {
    .name = "quantize",
    .usage =
        "-m MODEL -o OUT.gguf --type TYPE [--method rtn|gptq|awq|smoothquant --calib TEXT] [--imatrix FILE] "
        "[--keep PATTERN=TYPE ...] [options]",
    .about =
        "Writes MODEL with its weight matrices quantized. TYPE is a llama.cpp file type (q8_0, q4_0,\n"
        "q4_1, q5_0, q5_1, q2_k, q6_k, q3_k_m, q4_k_s, q4_k_m, q5_k_m: each tensor gets the format\n"
        "llama-quantize gives it, the output layer Q6_K for instance) or a K-quant for every matrix\n"
        "(q3_k, q4_k, q5_k), or squeeze's own: w8a8 (int8 weights per output channel, activations\n"
        "quantized to int8 per token in every product) and int4|int3|int2 --group 32|64|128|0\n"
        "(asymmetric, an f16 scale and an integer zero point per group, or per output channel with\n"
        "--group 0: GPTQ's and AWQ's int4gG) and, for a model pruned 2:4 (prune --nm 2:4),\n"
        "sparse24_q8|sparse24_q4|sparse24_f16 (only the kept values and their positions, values as\n"
        "q8_0, q4_0 or f16 store them). Rows that are not whole "
        "blocks of a format fall back "
        "to one that fits\n"
        "(Q4_K -> Q5_0, Q6_K -> Q8_0, ...); the summary lists them. Method rtn: each format's reference\n"
        "quantizer (llama.cpp's, without an imatrix); with --imatrix FILE (squeeze imatrix), the\n"
        "importance-weighted searches llama-quantize --imatrix runs (K-quants, q4_0/q4_1/q5_0/q5_1).\n"
        "Method gptq (GPTQ, Frantar et al. 2022): each\n"
        "block's matrices quantized column by column with error feedback through the inverse Hessian of\n"
        "their inputs on calibration text (--calib), block by block on the outputs of the quantized blocks\n"
        "before; for ggml's block formats each block's (super-block's) scales are chosen by the format's\n"
        "own search (weighted with --imatrix) when the column pass reaches it, from the updated weights.\n"
        "Method awq (AWQ, Lin et al. 2023): per block, scales of the inputs of each group of\n"
        "layers searched on --calib text and folded into the norms and layers before them, then round to\n"
        "nearest with a clipping search. gptq and awq: every format but f16/bf16/w8a8; token_embd and "
        "output\n"
        "are rounded to nearest. Method smoothquant (SmoothQuant, Xiao et al. 2023; w8a8 only): per block,\n"
        "each input channel's max |x| on --calib text migrated into the weights (--alpha), folded into\n"
        "the norms, attn_v and ffn_up, then round to nearest. Norms stay fp32.\n"
        "--budget-bpw B: mixed precision; the summary lists the formats chosen.\n"
        "The file appears only when complete.\n",
};

int sq_cmd_quantize(int argc, char **argv) {
    const char *in, *out, *type, *method, *tokenizer, *json, *calib, *imatrix_path;
    cli_texts keeps;
    long threads, calib_samples, calib_len, seed, group;
    double damp, budget, alpha;
    int no_progress, quiet, act_order;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&in, 1),
        CLI_TEXT_FLAG("-o, --output", "OUT", &out, "the GGUF file to write", .required = 1),
        CLI_TEXT_FLAG("--type", "TYPE", &type,
                      "q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k,\n"
                      "q3_k_m, q4_k_s, q4_k_m, q5_k_m, w8a8, int4, int3, int2 or\nsparse24_q8|q4|f16",
                      .required = 1),
        CLI_INT_FLAG(
            "--group", "G", &group, 0, 128, 128,
            "int4/int3/int2: values per scale and zero point\n(32, 64 or 128; 0: one per output channel)"),
        CLI_TEXTS_FLAG("--keep", "PATTERN=TYPE", &keeps, CLI_MAX_TEXTS,
                       "store matrices whose name matches the glob PATTERN as TYPE\n"
                       "(e.g. 'blk.*.ffn_down.weight=q8_0', 'output.weight=f16'); repeatable"),
        CLI_CHOICE_FLAG("--method", "METHOD", &method, "rtn|gptq|awq|smoothquant", "rtn",
                        "how stored values are chosen"),
        CLI_TEXT_FLAG("--calib", "TEXT", &calib, "calibration text file (gptq): windows drawn at random"),
        CLI_TEXT_FLAG(
            "--imatrix", "FILE", &imatrix_path,
            "importance matrix (squeeze imatrix, or llama.cpp's GGUF\nimatrix) for methods rtn and gptq"),
        CLI_NUMBER_FLAG("--budget-bpw", "B", &budget, 0, 64, 0,
                        "mixed precision (rtn): the blocks' matrices get formats\nchosen by sensitivity (the "
                        "imatrix-weighted error)\nso that the file averages at most B bits per weight",
                        .def_shown = "off", .lo_open = 1),
        CLI_INT_FLAG("--calib-samples", "N", &calib_samples, 1, 1 << 20, 128, "calibration windows"),
        CLI_INT_FLAG("--calib-len", "N", &calib_len, 2, CLI_MAX_CTX, 512,
                     "tokens per calibration window (at most the model's context)"),
        CLI_FLAG_SEED(&seed, 0, "seed of the calibration windows' positions"),
        CLI_NUMBER_FLAG("--damp", "F", &damp, 0, 1, 0.01,
                        "gptq: damping, a fraction of the Hessian's mean diagonal", .lo_open = 1),
        CLI_NUMBER_FLAG("--alpha", "A", &alpha, 0, 1, 0.5,
                        "smoothquant: migration strength, s = max|x|^A / max|w|^(1-A)", .lo_open = 1),
        CLI_SWITCH_FLAG("--act-order", &act_order,
                        "gptq: columns by decreasing Hessian diagonal (static groups)"),
        CLI_SWITCH_FLAG("--quiet", &quiet, "no per-tensor lines in the summary"),
        CLI_FLAG_JSON(&json),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_TOKENIZER(&tokenizer),
        CLI_FLAG_NO_PROGRESS(&no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    sq_quant_keep keep[CLI_MAX_TEXTS];
    char keep_text[CLI_MAX_TEXTS][512];
    for (int i = 0; i < keeps.n; i++) {
        const char *eq = strrchr(keeps.v[i], '=');
        if (!eq || eq == keeps.v[i] || !eq[1] || strlen(keeps.v[i]) >= sizeof keep_text[i])
            return cli_usage_error("quantize", "--keep %s: expected PATTERN=TYPE", keeps.v[i]);
        strcpy(keep_text[i], keeps.v[i]);
        keep_text[i][eq - keeps.v[i]] = 0;
        keep[i] = (sq_quant_keep){.pattern = keep_text[i], .type = keep_text[i] + (eq - keeps.v[i]) + 1};
    }

    /* intN is a family of formats, one per group size: int4_g32 .. int2_g128, and int4_g0 .. int2_g0 per row
     */
    char intn_name[16];
    if (!strcmp(type, "int4") || !strcmp(type, "int3") || !strcmp(type, "int2")) {
        if (group != 0 && group != 32 && group != 64 && group != 128)
            return cli_usage_error("quantize",
                                   "--group %ld: %s takes groups of 32, 64, 128 or 0 (per output channel)",
                                   group, type);
        snprintf(intn_name, sizeof intn_name, "%s_g%ld", type, group);
        type = intn_name;
    }
    if (strcmp(method, "rtn") && !calib)
        return cli_usage_error("quantize", "--method %s needs calibration text (--calib TEXT)", method);
    sq_imatrix *imatrix = NULL;
    sq_error *err = imatrix_path ? sq_imatrix_load(imatrix_path, &imatrix) : NULL;
    if (err) return cli_fail(err);
    sq_model *model;
    err = cli_load_model(in, &(sq_load_options){.tokenizer_path = tokenizer}, &model);
    if (err) {
        sq_imatrix_free(imatrix);
        return cli_fail(err);
    }
    sq_calib_samples samples = {0};
    if (calib && (rc = cli_calib_samples("quantize", model, calib, (int)calib_samples, (int)calib_len, seed,
                                         &samples)) != CLI_CONTINUE) {
        sq_model_free(model);
        sq_imatrix_free(imatrix);
        return rc;
    }
    const sq_quantize_params params = {.type = type,
                                       .calib = calib ? &samples : NULL,
                                       .gptq_damp = damp,
                                       .gptq_act_order = act_order,
                                       .smooth_alpha = alpha,
                                       .method = method,
                                       .keep = keep,
                                       .n_keep = keeps.n,
                                       .n_threads = (int)threads,
                                       .output = out,
                                       .imatrix = imatrix,
                                       .budget_bpw = budget};
    cli_progress *bar = no_progress ? NULL : cli_progress_create("quantize");
    sq_quantize_report *r = NULL;
    err = sq_quantize_model(model, &params, bar ? cli_progress_update : NULL, bar, &r);
    cli_progress_free(bar);
    sq_calib_samples_free(&samples);
    if (!err) cli_note_lowrank("quantize", model, out);
    sq_model_free(model);
    sq_imatrix_free(imatrix);
    if (r) {
        for (int i = 0; i < r->n_tensors && !quiet; i++) {
            const sq_quant_tensor_report *t = &r->tensors[i];
            fprintf(stderr, "  %-28s %-5s -> %-5s %10zu -> %10zu bytes%s%s%s%s\n", t->name, t->from, t->type,
                    t->bytes_before, t->bytes_after, strcmp(t->type, t->wanted) ? " (fallback from " : "",
                    strcmp(t->type, t->wanted) ? t->wanted : "", strcmp(t->type, t->wanted) ? ")" : "",
                    t->weighted ? " imatrix" : "");
        }
        fprintf(stderr,
                "squeeze quantize: %s (%s), %d of %d tensors quantized, %d fell back to a format their rows\n"
                "fit, %d with the imatrix; %.2f bits per weight; %.2f MiB -> %.2f MiB; %.1f s\n",
                r->type, r->method, r->n_quantized, r->n_tensors, r->n_fallbacks, r->n_weighted,
                r->bits_per_weight, r->bytes_before / 1048576.0, r->bytes_after / 1048576.0, r->seconds);
        for (int i = 0; i < r->n_tensors; i++) { /* shown even with --quiet: a method did not apply there */
            const sq_quant_tensor_report *t = &r->tensors[i];
            if (!t->n_experts_rtn) continue;
            fprintf(stderr, "squeeze quantize: warning: %s: no calibration token was routed to expert%s",
                    t->name, t->n_experts_rtn > 1 ? "s" : "");
            for (int e = 0; e < t->n_experts_rtn; e++) fprintf(stderr, " %d", t->experts_rtn[e]);
            fprintf(stderr, "; rounded to nearest instead of %s\n", r->method);
        }
        if (!err && json) err = sq_quantize_report_write(r, json);
        sq_quantize_report_free(r);
    }
    if (err) return cli_fail(err);
    fprintf(stderr, "squeeze quantize: wrote %s\n", out);
    return 0;
}
