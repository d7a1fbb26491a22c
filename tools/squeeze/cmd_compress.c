/* squeeze compress: run a compression recipe (prune and quantize steps) with one calibration set, measure
 * quality and speed against the original after every step, and write the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_verb verb = {
    .name = "compress",
    .usage = "-m MODEL -o OUT --recipe RECIPE.json [--calib TEXT] [--eval TEXT] [options]",
    .about =
        "Runs the steps of RECIPE (docs/recipes.md; recipes/ holds common ones) on MODEL in order, with\n"
        "one calibration set drawn from --calib, and prints after each step what it cost and bought:\n"
        "parameters, non-zero weights, bits per weight, perplexity, KL divergence and top-1 agreement\n"
        "against the original on the held-out --eval text, and decode/prefill speed against the\n"
        "original in the same run. OUT is written only after the last step (GGUF for *.gguf, a\n"
        "Hugging Face directory otherwise).\n",
};

typedef struct table {
    int quality, speed;
} table;

static void print_row(void *user, int step, const sq_recipe_step_result *r) {
    const table *t = user;
    if (step < 0) {
        printf("\n| step | params | non-zero | blocks | bits/weight | MiB | time (s)%s%s |\n",
               t->quality ? " | ppl | ppl ratio | KL | top-1" : "",
               t->speed ? " | decode tok/s | decode x | prefill x" : "");
        printf("| --- | ---: | ---: | ---: | ---: | ---: | ---:%s%s |\n",
               t->quality ? " | ---: | ---: | ---: | ---:" : "", t->speed ? " | ---: | ---: | ---:" : "");
    }
    printf("| %s | %.2fM | %.1f%% | %d | %.2f | %.2f | %.1f", r->label, r->n_params / 1e6,
           r->n_params ? 100.0 * (double)r->n_nonzero / (double)r->n_params : 0, r->n_layers,
           r->bits_per_weight, r->weight_bytes / 1048576.0, r->seconds);
    if (t->quality)
        printf(" | %.4f | %.3f | %.4f | %.3f", r->ppl, r->ppl_ratio, r->kl_mean, r->top1_agreement);
    if (t->speed) printf(" | %.0f | %.2f | %.2f", r->decode_tok_s, r->decode_ratio, r->prefill_ratio);
    printf(" |\n");
    fflush(stdout);
}

/* The held-out text's ids, BOS first as the tokenizer says; at most max_tokens of them. */
static SQ_NODISCARD sq_error *eval_ids(const sq_model *model, const char *path, long max_tokens, int *bos,
                                       int32_t **ids, int *n) {
    const sq_tokenizer *tok = sq_model_tokenizer(model);
    char *text = NULL;
    size_t len = 0;
    sq_error *err = sq_tokenizer_bos_for(tok, SQ_BOS_AUTO, bos);
    if (!err) err = sq_eval_read_text(path, &text, &len);
    if (!err) err = sq_tokenize(tok, text, len, *bos >= 0, 0, ids, n);
    free(text);
    if (!err && *n > max_tokens) *n = (int)max_tokens;
    return err;
}

int sq_cmd_compress(int argc, char **argv) {
    const char *in, *out, *recipe_path, *calib, *eval, *tokenizer, *to;
    long threads, calib_samples, calib_len, seed, eval_ctx, eval_tokens, bench_prompt, bench_gen, bench_reps;
    int no_progress, no_bench;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&in, 1),
        CLI_TEXT_FLAG("-o, --output", "OUT", &out, "the compressed model to write", .required = 1),
        CLI_TEXT_FLAG("--recipe", "FILE", &recipe_path, "the recipe (JSON; docs/recipes.md)", .required = 1),
        CLI_TEXT_FLAG("--calib", "TEXT", &calib, "calibration text file: windows drawn at random"),
        CLI_INT_FLAG("--calib-samples", "N", &calib_samples, 1, 1 << 20, 32, "calibration windows"),
        CLI_INT_FLAG("--calib-len", "N", &calib_len, 2, CLI_MAX_CTX, 256,
                     "tokens per calibration window (at most the model's context)"),
        CLI_FLAG_SEED(&seed, 0, "seed of the calibration windows' positions"),
        CLI_TEXT_FLAG("--eval", "TEXT", &eval,
                      "held-out text for perplexity, KL and top-1 (never the --calib text)",
                      .def_shown = "no quality measured"),
        CLI_INT_FLAG("--eval-ctx", "N", &eval_ctx, 2, CLI_MAX_CTX, 256, "tokens per perplexity window"),
        CLI_INT_FLAG("--eval-tokens", "N", &eval_tokens, 2, 1 << 30, 16384, "tokens of --eval used at most"),
        CLI_SWITCH_FLAG("--no-bench", &no_bench, "do not measure speed"),
        CLI_INT_FLAG("--bench-prompt", "N", &bench_prompt, 0, CLI_MAX_CTX, 128, "speed: prompt tokens"),
        CLI_INT_FLAG("--bench-gen", "N", &bench_gen, 0, CLI_MAX_CTX, 32, "speed: generated tokens"),
        CLI_INT_FLAG("--bench-reps", "N", &bench_reps, 1, 1000, 3, "speed: timed repetitions"),
        CLI_FLAG_OUTPUT_FORMAT(&to),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_TOKENIZER(&tokenizer),
        CLI_FLAG_NO_PROGRESS(&no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    char *json = NULL;
    size_t json_len = 0;
    sq_recipe *recipe = NULL;
    sq_error *err = sq_read_file(recipe_path, 1 << 20, &json, &json_len);
    if (!err) err = sq_recipe_parse(json, json_len, recipe_path, &recipe);
    free(json);
    if (err) return cli_fail(err);
    if (sq_recipe_needs_calib(recipe) && !calib) {
        sq_recipe_free(recipe);
        return cli_usage_error("compress", "%s has steps that need calibration text (--calib TEXT)",
                               recipe_path);
    }
    const sq_load_options lo = {.tokenizer_path = tokenizer};
    sq_model *model = NULL, *original = NULL;
    sq_calib_samples samples = {0};
    err = cli_load_model(in, &lo, &model);
    if (!err) err = cli_load_model(in, &lo, &original);
    if (!err && (calib || eval) && !sq_model_tokenizer(model)) {
        fprintf(stderr, "squeeze compress: %s has no tokenizer for --calib/--eval; give --tokenizer PATH\n",
                in);
        rc = 1;
    } else if (!err && calib) {
        rc = cli_calib_samples("compress", model, calib, (int)calib_samples, (int)calib_len, seed, &samples);
    }
    if (err || rc != CLI_CONTINUE) {
        sq_model_free(original);
        sq_model_free(model);
        sq_recipe_free(recipe);
        return err ? cli_fail(err) : rc;
    }
    int32_t *ids = NULL;
    int n_ids = 0, bos = -1;
    if (!err && eval) err = eval_ids(model, eval, eval_tokens, &bos, &ids, &n_ids);
    const sq_bench_params bench = {.n_prompt = (int)bench_prompt,
                                   .n_gen = (int)bench_gen,
                                   .n_seqs = 1,
                                   .n_reps = (int)bench_reps,
                                   .n_warmup = 1,
                                   .n_threads = (int)threads};
    table t = {.quality = eval != NULL, .speed = !no_bench};
    cli_progress *bar = no_progress ? NULL : cli_progress_create("compress");
    const sq_recipe_options o = {.calib = calib ? &samples : NULL,
                                 .original = original,
                                 .eval_ids = ids,
                                 .n_eval_ids = n_ids,
                                 .eval_ctx = (int)eval_ctx,
                                 .bos_id = bos,
                                 .bench = no_bench ? NULL : &bench,
                                 .n_threads = (int)threads,
                                 .on_step = print_row,
                                 .user = &t,
                                 .progress = bar ? cli_progress_update : NULL,
                                 .progress_user = bar};
    int n_steps = sq_recipe_n_steps(recipe);
    sq_recipe_step_result results[SQ_RECIPE_MAX_STEPS + 1];
    if (!err) {
        printf("recipe %s%s%s: %d steps on %s\n", recipe_path, sq_recipe_name(recipe)[0] ? ", " : "",
               sq_recipe_name(recipe), n_steps, in);
        err = sq_recipe_run(model, recipe, &o, results);
    }
    cli_progress_free(bar);
    if (!err) err = sq_model_save(model, out, cli_output_format(out, to));
    if (!err) fprintf(stderr, "squeeze compress: wrote %s\n", out);
    if (!err) cli_note_lowrank("compress", model, out);
    rc = err ? cli_fail(err) : 0;
    free(ids);
    sq_calib_samples_free(&samples);
    sq_model_free(original);
    sq_model_free(model);
    sq_recipe_free(recipe);
    return rc;
}
