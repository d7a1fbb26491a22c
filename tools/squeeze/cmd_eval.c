/* squeeze eval: zero-shot multiple-choice tasks scored as lm-evaluation-harness does. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define ALL_TASKS "piqa,arc_easy,arc_challenge,boolq,winogrande,hellaswag,openbook_qa,lambada"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $SQ_SHARED/data/tasks, else the first ../shared/data/tasks found walking up from the binary's folder. */
static const char *default_data_dir(char *buf, size_t n) {
    const char *shared = getenv("SQ_SHARED");
    if (shared && *shared) {
        snprintf(buf, n, "%s/data/tasks", shared);
        return buf;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return NULL;
    exe[len] = 0;
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash || slash == exe) break;
        *slash = 0;
        if (snprintf(buf, n, "%s/../shared/data/tasks", exe) < (int)n && is_dir(buf)) return buf;
    }
    return NULL;
}

static const cli_verb verb = {
    .name = "eval",
    .usage = "-m MODEL [--tasks LIST] [options]",
    .about =
        "Zero-shot tasks, scored like lm-evaluation-harness: each choice's score is the sum of the\n"
        "log-probs of its continuation tokens (\" \" + choice) given [BOS] + the context (BOS where the\n"
        "model's tokenizer adds one, as the harness does; --bos / --no-bos force it). acc takes the\n"
        "argmax of that sum, acc_norm the argmax per byte of the choice; stderr = sqrt(p(1-p)/(n-1)).\n"
        "winogrande scores the shared continuation after each filled-in option; lambada counts exact\n"
        "greedy continuations and reports their perplexity. The average is over each task's headline\n"
        "score (acc_norm where reported, else acc). See docs/eval.md.\n",
};

int sq_cmd_eval(int argc, char **argv) {
    const char *model_path, *tasks, *data_dir, *json, *tokenizer, *label, *kv_type, *lora, *device;
    long limit, batch, threads, ctx;
    int no_progress, bos, no_bos;
    sq_bos_policy bos_policy;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&model_path, 1),
        CLI_TEXT_FLAG("--tasks", "LIST", &tasks, "comma-separated names from\n" ALL_TASKS,
                      .def_str = ALL_TASKS, .def_shown = "all"),
        CLI_INT_FLAG("--limit", "N", &limit, 1, 1 << 30, 0, "first N items of each task", .def_shown = "all"),
        CLI_TEXT_FLAG("--data-dir", "DIR", &data_dir, "task files",
                      .def_shown = "$SQ_SHARED/data/tasks, else ../shared/data/tasks\nbeside the project "
                                   "that holds this binary"),
        CLI_INT_FLAG("-b, --batch", "B", &batch, 1, CLI_MAX_BATCH, 8,
                     "items run together as B sequences of one forward pass"),
        CLI_FLAG_CTX(&ctx, "the model's; longer items lose tokens from the left"),
        CLI_FLAGS_BOS(&bos, &no_bos),
        CLI_FLAG_JSON(&json),
        CLI_FLAG_LABEL(&label),
        CLI_FLAG_THREADS(&threads),
        CLI_FLAG_KV_TYPE(&kv_type),
        CLI_FLAG_DEVICE(&device),
        CLI_FLAG_TOKENIZER(&tokenizer),
        CLI_FLAG_LORA(&lora),
        CLI_FLAG_NO_PROGRESS(&no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc == CLI_CONTINUE) rc = cli_bos_policy("eval", bos, no_bos, &bos_policy);
    if (rc != CLI_CONTINUE) return rc;
    char dir_buf[PATH_MAX + 32];
    if (!data_dir && !(data_dir = default_data_dir(dir_buf, sizeof dir_buf)))
        return cli_usage_error("eval", "no task data found; give --data-dir DIR or set SQ_SHARED");

    sq_load_options lo = {.tokenizer_path = tokenizer};
    sq_model *model;
    sq_error *err = cli_load_model_lora(model_path, &lo, lora, &model);
    if (err) return cli_fail(err);
    cli_progress *bar = no_progress ? NULL : cli_progress_create("eval");
    sq_eval_options o = {.data_dir = data_dir,
                         .limit = (int)limit,
                         .n_batch = (int)batch,
                         .n_threads = (int)threads,
                         .n_ctx = (int)ctx,
                         .bos = bos_policy,
                         .progress = bar ? cli_progress_update : NULL,
                         .progress_user = bar,
                         .kv_type = cli_kv_type(kv_type),
                         .device = device};
    sq_task_result *res = NULL;
    int n = 0;
    err = sq_eval_tasks(model, tasks, &o, &res, &n);
    cli_progress_free(bar);
    if (err) {
        sq_model_free(model);
        return cli_fail(err);
    }
    double sum_score = 0, sum_acc = 0;
    /* "±" takes two bytes but one column: widths below count it as one */
    printf("%-14s %6s %16s %16s %10s\n", "task", "n", "acc", "acc_norm", "ppl");
    for (int i = 0; i < n; i++) {
        const sq_task_result *r = &res[i];
        char norm[32] = "-", ppl[32] = "-";
        if (r->has_acc_norm) snprintf(norm, sizeof norm, "%.4f ± %.4f", r->acc_norm, r->acc_norm_stderr);
        if (r->has_ppl) snprintf(ppl, sizeof ppl, "%.3f", r->ppl);
        printf("%-14s %6d %.4f ± %.4f %*s %10s\n", r->task, r->n_items, r->acc, r->acc_stderr,
               r->has_acc_norm ? 17 : 16, norm, ppl);
        sum_score += r->score, sum_acc += r->acc;
    }
    printf("%-14s %6s %16.4f   (average of each task's %s; acc average %.4f)\n", "average", "", sum_score / n,
           "acc_norm or acc", sum_acc / n);
    rc = 0;
    const sq_report_model rm = {model_path, label, model};
    if (json && (err = sq_report_write_eval(json, &rm, &o, res, n))) rc = cli_fail(err);
    free(res);
    sq_model_free(model);
    return rc;
}
