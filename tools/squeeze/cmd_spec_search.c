/* squeeze spec-search: finds blocks a self-speculative draft can skip (sq_spec_search) and prints each
 * round's set, its greedy agreement with the full model and the estimated speedup, then the best set as
 * flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct search_args {
    const char *model, *calib, *tokenizer;
    long ctx, windows, max_skip, threads;
    int no_progress;
} search_args;

static const cli_verb verb = {
    .name = "spec-search",
    .usage = "-m MODEL --calib TEXTFILE [options]",
    .about = "Greedy search for the blocks a self-speculative draft (run --spec self --skip-layers) skips:\n"
             "each round adds the block whose skipping best keeps the draft's greedy choice equal to the\n"
             "full model's over the text (ids = [BOS as the tokenizer says] + encode(text), consecutive\n"
             "windows). For each set: the agreement a (the draft's per-token acceptance at temperature 0),\n"
             "the draft length k with the best estimated speedup (1 - a^(k+1)) / ((1 - a)(k c + 1)),\n"
             "c = blocks kept / blocks (Leviathan et al. 2023), and that estimate; measure the chosen set\n"
             "with run --spec self --spec-compare.\n",
};

static int parse_args(int argc, char **argv, search_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model, 1),
        CLI_TEXT_FLAG("--calib", "TEXTFILE", &a->calib, "calibration text (UTF-8)", .required = 1),
        CLI_FLAG_CTX(&a->ctx, "128, at most the model's"),
        CLI_INT_FLAG("--windows", "W", &a->windows, 1, 1 << 20, 2, "windows of the text used"),
        CLI_INT_FLAG("--max-skip", "N", &a->max_skip, 1, 65535, 0, "rounds (blocks added) at most",
                     .def_shown = "half the blocks"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_TOKENIZER(&a->tokenizer),
        CLI_FLAG_NO_PROGRESS(&a->no_progress),
    };
    return cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
}

static SQ_NODISCARD sq_error *search(const search_args *a, sq_model *model, sq_spec_search_step *steps,
                                     int *n_steps) {
    char *text = NULL;
    size_t len;
    int32_t *ids = NULL;
    int n_ids = 0;
    sq_error *err = sq_eval_read_text(a->calib, &text, &len);
    const sq_tokenizer *tok = sq_model_tokenizer(model); /* the caller checked there is one */
    if (!err) err = sq_tokenize(tok, text, len, sq_tokenizer_adds_bos(tok), 0, &ids, &n_ids);
    cli_progress *bar = a->no_progress ? NULL : cli_progress_create("spec-search");
    sq_spec_search_options o = {.n_ctx = (int)a->ctx,
                                .n_windows = (int)a->windows,
                                .max_skip = (int)a->max_skip,
                                .n_threads = (int)a->threads,
                                .progress = bar ? cli_progress_update : NULL,
                                .progress_user = bar};
    if (!err) err = sq_spec_search(model, ids, n_ids, &o, steps, n_steps);
    cli_progress_free(bar);
    free(ids);
    free(text);
    return err;
}

int sq_cmd_spec_search(int argc, char **argv) {
    search_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model;
    sq_load_options lo = {.tokenizer_path = a.tokenizer};
    sq_error *err = cli_load_model(a.model, &lo, &model);
    if (err) return cli_fail(err);
    if (!sq_model_tokenizer(model)) {
        sq_model_free(model);
        fprintf(stderr, "squeeze: %s: no tokenizer inside or beside the model; give one with --tokenizer\n",
                a.model);
        return 1;
    }
    sq_model_info info;
    sq_model_get_info(model, &info);
    sq_spec_search_step *steps = calloc((size_t)info.n_layers, sizeof *steps);
    int n_steps = 0;
    err = steps ? search(&a, model, steps, &n_steps) : NULL;
    sq_model_free(model);
    if (!steps) {
        fprintf(stderr, "squeeze: out of memory\n");
        return 1;
    }
    if (err) {
        free(steps);
        return cli_fail(err);
    }
    printf("| skipped | blocks | greedy agreement | best k | estimated speedup |\n| --- | --- | --- | --- | "
           "--- |\n");
    int best = 0;
    for (int i = 0; i < n_steps; i++) {
        printf("| %d | ", i + 1);
        for (int j = 0; j <= i; j++) printf("%s%d", j ? "," : "", steps[j].layer);
        printf(" | %.3f | %d | %.2fx |\n", steps[i].agreement, steps[i].k, steps[i].est_speedup);
        if (steps[i].est_speedup > steps[best].est_speedup) best = i;
    }
    printf("\nbest estimate: --spec self --skip-layers ");
    for (int j = 0; j <= best; j++) printf("%s%d", j ? "," : "", steps[j].layer);
    printf(" --draft-k %d%s\n", steps[best].k,
           steps[best].est_speedup < 1 ? " (estimated slower than plain decoding: no set pays off)" : "");
    free(steps);
    return 0;
}
