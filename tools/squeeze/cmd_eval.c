/* squeeze eval: zero-shot multiple-choice tasks scored as lm-evaluation-harness does. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "eval_json.h"

#define ALL_TASKS "piqa,arc_easy,arc_challenge,boolq,winogrande,hellaswag,openbook_qa,lambada"

static const char eval_help[] =
    "usage: squeeze eval -m MODEL [--tasks LIST] [options]\n"
    "\n"
    "Zero-shot tasks, scored like lm-evaluation-harness: each choice's score is the sum of the log-probs of\n"
    "its continuation tokens (\" \" + choice) given [BOS] + the context. acc takes the argmax of that sum,\n"
    "acc_norm the argmax per byte of the choice; stderr = sqrt(p(1-p)/(n-1)). winogrande scores the shared\n"
    "continuation after each filled-in option; lambada counts exact greedy continuations and reports their\n"
    "perplexity. The average is over each task's headline score (acc_norm where reported, else acc).\n"
    "See docs/eval.md.\n"
    "\n"
    "options:\n"
    "  -m, --model MODEL   model to evaluate\n"
    "      --tasks LIST    comma-separated, from " ALL_TASKS " (default: all)\n"
    "      --limit N       first N items of each task\n"
    "      --data-dir DIR  task files (default: $SQ_SHARED/data/tasks, else ../shared/data/tasks beside the\n"
    "                      project that holds this binary)\n"
    "      --batch B       items run together as B sequences of one forward pass (default 8)\n"
    "      --ctx N         context length (default: the model's; longer items lose tokens from the left)\n"
    "      --json FILE     write the machine-readable report (docs/report-format.md)\n"
    "      --label NAME    name this variant in the report (for squeeze report)\n"
    "  -t, --threads N     threads (default: all cores)\n"
    "      --tokenizer T   tokenizer to use instead of the model's own\n"
    "      --no-progress   no progress bar\n";

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

static cJSON *eval_report(const char *model_path, const char *label, const sq_model *model,
                          const char *data_dir, long limit, const sq_task_result *res, int n,
                          double avg_score, double avg_acc, double seconds) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "eval");
    cJSON_AddNumberToObject(j, "version", 1);
    if (label) cJSON_AddStringToObject(j, "label", label);
    cJSON_AddItemToObject(j, "model", eval_json_model(model_path, model));
    cJSON_AddStringToObject(j, "data_dir", data_dir);
    if (limit)
        cJSON_AddNumberToObject(j, "limit", (double)limit);
    else
        cJSON_AddNullToObject(j, "limit");
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    for (int i = 0; i < n; i++) {
        const sq_task_result *r = &res[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "task", r->task);
        cJSON_AddNumberToObject(t, "n", r->n_items);
        cJSON_AddItemToObject(t, "acc", eval_json_number(r->acc));
        cJSON_AddItemToObject(t, "acc_stderr", eval_json_number(r->acc_stderr));
        if (r->has_acc_norm) {
            cJSON_AddItemToObject(t, "acc_norm", eval_json_number(r->acc_norm));
            cJSON_AddItemToObject(t, "acc_norm_stderr", eval_json_number(r->acc_norm_stderr));
        } else {
            cJSON_AddNullToObject(t, "acc_norm");
            cJSON_AddNullToObject(t, "acc_norm_stderr");
        }
        if (r->has_ppl)
            cJSON_AddItemToObject(t, "ppl", eval_json_number(r->ppl));
        else
            cJSON_AddNullToObject(t, "ppl");
        cJSON_AddStringToObject(t, "metric", r->has_acc_norm ? "acc_norm" : "acc");
        cJSON_AddItemToObject(t, "score", eval_json_number(r->score));
        cJSON_AddNumberToObject(t, "truncated", r->n_truncated);
        cJSON_AddNumberToObject(t, "seconds", r->seconds);
        cJSON_AddItemToArray(tasks, t);
    }
    cJSON *avg = cJSON_AddObjectToObject(j, "average");
    cJSON_AddItemToObject(avg, "score", eval_json_number(avg_score));
    cJSON_AddItemToObject(avg, "acc", eval_json_number(avg_acc));
    cJSON *timing = cJSON_AddObjectToObject(j, "timing");
    cJSON_AddNumberToObject(timing, "seconds", seconds);
    return j;
}

int sq_cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *tasks = ALL_TASKS, *data_dir = NULL, *json = NULL, *tokenizer = NULL,
               *label = NULL;
    long limit = 0, batch = 8, threads = 0, ctx = 0;
    int progress = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **str = !strcmp(f, "-m") || !strcmp(f, "--model") ? &model_path
                           : !strcmp(f, "--tasks")                   ? &tasks
                           : !strcmp(f, "--data-dir")                ? &data_dir
                           : !strcmp(f, "--json")                    ? &json
                           : !strcmp(f, "--tokenizer")               ? &tokenizer
                           : !strcmp(f, "--label")                   ? &label
                                                                     : NULL;
        long *num = !strcmp(f, "--limit")                         ? &limit
                    : !strcmp(f, "--batch")                       ? &batch
                    : !strcmp(f, "--ctx")                         ? &ctx
                    : !strcmp(f, "-t") || !strcmp(f, "--threads") ? &threads
                                                                  : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            fputs(eval_help, stdout);
            return 0;
        } else if (!strcmp(f, "--no-progress")) {
            progress = 0;
        } else if (str) {
            if (!(*str = cli_flag_value("eval", argc, argv, &i))) return 2;
        } else if (num) {
            const char *v = cli_flag_value("eval", argc, argv, &i);
            if (!v) return 2;
            if (cli_parse_int(v, num == &threads ? 0 : 1, 1L << 30, num))
                return cli_usage_error("eval", "%s wants a positive integer, not '%s'", f, v);
        } else {
            return cli_usage_error("eval", "unknown option '%s'", f);
        }
    }
    if (!model_path) return cli_usage_error("eval", "-m MODEL is required");
    char dir_buf[PATH_MAX + 32];
    if (!data_dir && !(data_dir = default_data_dir(dir_buf, sizeof dir_buf)))
        return cli_usage_error("eval", "no task data found; give --data-dir DIR or set SQ_SHARED");

    sq_load_options lo = {.tokenizer_path = tokenizer};
    sq_model *model;
    sq_error *err = cli_load_model(model_path, &lo, &model);
    if (err) return cli_fail(err);
    sq_progress_bar *bar = progress ? sq_progress_bar_create("eval") : NULL;
    sq_eval_options o = {.data_dir = data_dir,
                         .limit = (int)limit,
                         .n_batch = (int)batch,
                         .n_threads = (int)threads,
                         .n_ctx = (int)ctx,
                         .progress = bar ? sq_progress_bar_update : NULL,
                         .progress_user = bar};
    sq_task_result *res = NULL;
    int n = 0;
    err = sq_eval_tasks(model, tasks, &o, &res, &n);
    sq_progress_bar_free(bar);
    if (err) {
        sq_model_free(model);
        return cli_fail(err);
    }
    double sum_score = 0, sum_acc = 0, seconds = 0;
    /* "±" takes two bytes but one column: widths below count it as one */
    printf("%-14s %6s %16s %16s %10s\n", "task", "n", "acc", "acc_norm", "ppl");
    for (int i = 0; i < n; i++) {
        const sq_task_result *r = &res[i];
        char norm[32] = "-", ppl[32] = "-";
        if (r->has_acc_norm) snprintf(norm, sizeof norm, "%.4f ± %.4f", r->acc_norm, r->acc_norm_stderr);
        if (r->has_ppl) snprintf(ppl, sizeof ppl, "%.3f", r->ppl);
        printf("%-14s %6d %.4f ± %.4f %*s %10s\n", r->task, r->n_items, r->acc, r->acc_stderr,
               r->has_acc_norm ? 17 : 16, norm, ppl);
        sum_score += r->score, sum_acc += r->acc, seconds += r->seconds;
    }
    printf("%-14s %6s %16.4f   (average of each task's %s; acc average %.4f)\n", "average", "", sum_score / n,
           "acc_norm or acc", sum_acc / n);
    int rc = 0;
    if (json) {
        cJSON *report = eval_report(model_path, label, model, data_dir, limit, res, n, sum_score / n,
                                    sum_acc / n, seconds);
        rc = eval_json_write(json, report);
        cJSON_Delete(report);
    }
    free(res);
    sq_model_free(model);
    return rc;
}
