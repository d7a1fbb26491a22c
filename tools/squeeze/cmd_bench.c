/* squeeze bench: efficiency metrics of one model, or of two interleaved in one process (--vs), over batch
 * sizes: time to first token, time per output token, latency, prefill/decode throughput, requests/s, memory.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eval_json.h"

typedef struct bench_options {
    const char *paths[2], *labels[2];
    int n_models;
    sq_bench_params params;
    const int32_t *batches; /* [n_batches] batch sizes */
    int n_batches;
    cli_list batch_list; /* -b, owned; empty: batch size 1 */
    const char *kernels, *json_path;
    int no_progress;
} bench_options;

static const cli_verb verb = {
    .name = "bench",
    .usage = "-m MODEL [-p 512] [-n 128] [-b 1,4,16] [--vs MODEL2] [--json OUT.json] [options]",
    .about =
        "For each batch size b, one repetition prefills b prompts of -p random token ids in one forward\n"
        "call, then runs -n decode steps, each one forward call carrying one greedily chosen token per\n"
        "sequence. Prints the median and range over the timed repetitions of: time to first token (the\n"
        "prefill), time per output token, end-to-end latency, prefill and decode tokens/s, requests/s\n"
        "(b / latency), and the weights, KV cache and peak resident memory.\n",
};

static int parse_args(int argc, char **argv, bench_options *o) {
    static const int32_t default_batch = 1;
    long n_prompt, n_gen, reps, warmup, threads, seed;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&o->paths[0], 1),
        CLI_INT_FLAG("-p, --n-prompt", "N", &n_prompt, 1, CLI_MAX_CTX, 512,
                     "prompt tokens per sequence; -p + -n must fit the model's context"),
        CLI_INT_FLAG("-n, --n-gen", "N", &n_gen, 1, CLI_MAX_CTX, 128,
                     "decode steps, i.e. output tokens per sequence"),
        CLI_LIST_FLAG("-b, --batch", "LIST", &o->batch_list, 1, CLI_MAX_BATCH, "batch sizes, comma-separated",
                      .def_shown = "1"),
        CLI_INT_FLAG("--reps", "R", &reps, 1, 100000, 5, "timed repetitions"),
        CLI_INT_FLAG("--warmup", "W", &warmup, 0, 100000, 1, "untimed repetitions first"),
        CLI_FLAG_THREADS(&threads),
        CLI_TEXT_FLAG(
            "--vs", "MODEL2", &o->paths[1],
            "benchmark a second model in the same run, repetitions\ninterleaved with the first's, and add "
            "a B/A ratio column"),
        CLI_FLAG_JSON(&o->json_path),
        CLI_CHOICE_FLAG("--kernels", "NAME", &o->kernels, "scalar|avx2|avx512", NULL,
                        "force a CPU kernel set, e.g. for a scalar baseline",
                        .def_shown = "the best this CPU runs"),
        CLI_FLAG_LABEL(&o->labels[0]),
        CLI_TEXT_FLAG("--vs-label", "NAME", &o->labels[1], "name of the --vs variant in reports",
                      .def_shown = "its path"),
        CLI_FLAG_SEED(&seed, 1234, "seed of the random prompt ids"),
        CLI_FLAG_NO_PROGRESS(&o->no_progress),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    for (int m = 0; m < 2 && rc == CLI_CONTINUE; m++)
        if (o->labels[m] && !*o->labels[m])
            rc = cli_usage_error("bench", "%s needs a non-empty name", m ? "--vs-label" : "--label");
    if (rc == CLI_CONTINUE && o->labels[1] && !o->paths[1])
        rc = cli_usage_error("bench", "--vs-label needs --vs MODEL2");
    if (rc != CLI_CONTINUE) {
        cli_list_free(&o->batch_list);
        return rc;
    }
    o->n_models = o->paths[1] ? 2 : 1;
    o->batches = o->batch_list.n ? o->batch_list.v : &default_batch;
    o->n_batches = o->batch_list.n ? (int)o->batch_list.n : 1;
    if (!threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? cores : 1;
    }
    o->params = (sq_bench_params){.n_prompt = (int)n_prompt,
                                  .n_gen = (int)n_gen,
                                  .n_reps = (int)reps,
                                  .n_warmup = (int)warmup,
                                  .n_threads = (int)threads,
                                  .seed = seed < 0 ? cli_clock_seed() : (uint64_t)seed};
    return CLI_CONTINUE;
}

/* ------------------------------------------------------------------ table */

typedef struct metric_row {
    const char *name, *key; /* table row; JSON field */
    double scale;           /* stored unit -> shown unit */
    size_t offset;          /* of the sq_bench_stat (timing) or size_t (memory) in sq_bench_result */
} metric_row;

static const metric_row timing_rows[] = {
    {"time to first token (ms)", "ttft_s", 1e3, offsetof(sq_bench_result, ttft_s)},
    {"time per output token (ms)", "tpot_s", 1e3, offsetof(sq_bench_result, tpot_s)},
    {"end-to-end latency (ms)", "e2e_s", 1e3, offsetof(sq_bench_result, e2e_s)},
    {"prefill (tokens/s)", "prefill_tok_s", 1, offsetof(sq_bench_result, prefill_tok_s)},
    {"decode (tokens/s)", "decode_tok_s", 1, offsetof(sq_bench_result, decode_tok_s)},
    {"requests/s", "requests_s", 1, offsetof(sq_bench_result, requests_s)},
};

static const metric_row memory_rows[] = {
    {"weights (MiB)", "weight_bytes", 1.0 / (1 << 20), offsetof(sq_bench_result, weight_bytes)},
    {"KV cache (MiB)", "kv_bytes", 1.0 / (1 << 20), offsetof(sq_bench_result, kv_bytes)},
    {"peak RSS (MiB)", "peak_rss_bytes", 1.0 / (1 << 20), offsetof(sq_bench_result, peak_rss_bytes)},
};

#define N_ROWS(rows) (sizeof rows / sizeof *rows)

static const sq_bench_stat *stat_of(const sq_bench_result *r, const metric_row *row) {
    return (const sq_bench_stat *)((const char *)r + row->offset);
}
static double bytes_of(const sq_bench_result *r, const metric_row *row) {
    return (double)*(const size_t *)((const char *)r + row->offset);
}

/* About four significant digits, never an exponent. */
static void print_number(double x) {
    double ax = x < 0 ? -x : x;
    printf(ax >= 1000 ? "%.0f" : ax >= 100 ? "%.1f" : ax >= 10 ? "%.2f" : ax >= 1 ? "%.3f" : "%.4f", x);
}

static void print_ratio(double b, double a) {
    if (a > 0)
        printf(" | %.3f", b / a);
    else
        printf(" | —");
}

static void print_batch_table(const bench_options *o, int batch, const sq_bench_result *r) {
    printf("\n### batch %d: %d x (%d prompt + %d output tokens)\n\n", batch, batch, o->params.n_prompt,
           o->params.n_gen);
    if (o->n_models == 1)
        printf("| metric | median | min | max |\n|---|---:|---:|---:|\n");
    else
        printf("| metric | A median | A min–max | B median | B min–max | B/A "
               "|\n|---|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < N_ROWS(timing_rows); k++) {
        const metric_row *row = &timing_rows[k];
        printf("| %s", row->name);
        for (int m = 0; m < o->n_models; m++) {
            const sq_bench_stat *s = stat_of(&r[m], row);
            printf(" | ");
            print_number(s->median * row->scale);
            printf(" | ");
            print_number(s->min * row->scale);
            /* with two models one column holds each range */
            printf(o->n_models == 1 ? " | " : "–");
            print_number(s->max * row->scale);
        }
        if (o->n_models == 2) print_ratio(stat_of(&r[1], row)->median, stat_of(&r[0], row)->median);
        printf(" |\n");
    }
    for (size_t k = 0; k < N_ROWS(memory_rows); k++) {
        const metric_row *row = &memory_rows[k];
        printf("| %s", row->name);
        for (int m = 0; m < o->n_models; m++) {
            printf(" | ");
            print_number(bytes_of(&r[m], row) * row->scale);
            printf(o->n_models == 1 ? " | |" : " |"); /* empty range cells */
        }
        if (o->n_models == 2) print_ratio(bytes_of(&r[1], row), bytes_of(&r[0], row));
        printf(" |\n");
    }
}

static void print_report(const bench_options *o, const sq_bench_result *results) {
    const sq_bench_params *p = &o->params;
    printf("squeeze bench: %d prompt + %d output tokens per sequence, %d repetitions after %d warm-up, "
           "%d threads, %s kernels, random prompt ids (seed %llu)\n",
           p->n_prompt, p->n_gen, p->n_reps, p->n_warmup, p->n_threads, sq_cpu_kernel_name(),
           (unsigned long long)p->seed);
    for (int m = 0; m < o->n_models; m++)
        printf("%s: %s%s%s%s\n",
               o->n_models == 1 ? "model"
               : m              ? "B"
                                : "A",
               o->paths[m], o->labels[m] ? " (" : "", o->labels[m] ? o->labels[m] : "",
               o->labels[m] ? ")" : "");
    for (int b = 0; b < o->n_batches; b++)
        print_batch_table(o, o->batches[b], results + (size_t)b * o->n_models);
    printf("\npeak RSS is the process's, read after each model's warm-up%s.\n",
           o->n_models == 2 ? "; both models live in this process, so B's includes A's" : "");
}

/* ------------------------------------------------------------------ JSON report */

static cJSON *stat_json(const sq_bench_stat *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "median", s->median);
    cJSON_AddNumberToObject(o, "min", s->min);
    cJSON_AddNumberToObject(o, "max", s->max);
    return o;
}

static cJSON *result_json(int batch, const sq_bench_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_seqs", batch);
    for (size_t k = 0; k < N_ROWS(timing_rows); k++)
        cJSON_AddItemToObject(o, timing_rows[k].key, stat_json(stat_of(r, &timing_rows[k])));
    /* weight_bytes belongs to the model: the variant gives it once */
    for (size_t k = 0; k < N_ROWS(memory_rows); k++)
        if (memory_rows[k].offset != offsetof(sq_bench_result, weight_bytes))
            cJSON_AddNumberToObject(o, memory_rows[k].key, bytes_of(r, &memory_rows[k]));
    return o;
}

static cJSON *report_json(const bench_options *o, sq_model *const *models, const sq_bench_result *results) {
    const sq_bench_params *p = &o->params;
    cJSON *root = cJSON_CreateObject(), *settings = cJSON_CreateObject(), *variants = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "kind", "bench");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddItemToObject(root, "settings", settings);
    cJSON_AddNumberToObject(settings, "n_prompt", p->n_prompt);
    cJSON_AddNumberToObject(settings, "n_gen", p->n_gen);
    cJSON_AddNumberToObject(settings, "n_reps", p->n_reps);
    cJSON_AddNumberToObject(settings, "n_warmup", p->n_warmup);
    cJSON_AddNumberToObject(settings, "n_threads", p->n_threads);
    cJSON_AddStringToObject(settings, "kernels", sq_cpu_kernel_name());
    cJSON_AddStringToObject(settings, "prompt", "random token ids");
    cJSON_AddNumberToObject(settings, "seed", (double)p->seed);
    cJSON_AddItemToObject(root, "variants", variants);
    for (int m = 0; m < o->n_models; m++) {
        cJSON *v = cJSON_CreateObject(), *list = cJSON_CreateArray();
        cJSON_AddItemToArray(variants, v);
        cJSON_AddItemToObject(v, "model", eval_json_model(o->paths[m], models[m]));
        if (o->labels[m]) cJSON_AddStringToObject(v, "label", o->labels[m]);
        cJSON_AddItemToObject(v, "results", list);
        for (int b = 0; b < o->n_batches; b++)
            cJSON_AddItemToArray(list, result_json(o->batches[b], &results[(size_t)b * o->n_models + m]));
    }
    if (o->n_models == 2) {
        cJSON *ratios = cJSON_CreateArray();
        cJSON_AddItemToObject(root, "ratios", ratios);
        for (int b = 0; b < o->n_batches; b++) {
            const sq_bench_result *r = &results[(size_t)b * 2];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(ratios, x);
            cJSON_AddNumberToObject(x, "n_seqs", o->batches[b]);
            for (size_t k = 0; k < N_ROWS(timing_rows); k++)
                cJSON_AddNumberToObject(x, timing_rows[k].key,
                                        stat_of(&r[1], &timing_rows[k])->median /
                                            stat_of(&r[0], &timing_rows[k])->median);
            for (size_t k = 0; k < N_ROWS(memory_rows); k++) {
                double a = bytes_of(&r[0], &memory_rows[k]);
                if (a > 0)
                    cJSON_AddNumberToObject(x, memory_rows[k].key, bytes_of(&r[1], &memory_rows[k]) / a);
            }
        }
    }
    return root;
}

/* ------------------------------------------------------------------ main */

static int run_benchmarks(const bench_options *o, sq_model *const *models) {
    sq_bench_result *results = calloc((size_t)o->n_batches * (size_t)o->n_models, sizeof *results);
    if (!results) return fprintf(stderr, "squeeze bench: out of memory\n"), 1;
    int rc = 0;
    for (int b = 0; b < o->n_batches && !rc; b++) {
        sq_bench_params p = o->params;
        p.n_seqs = o->batches[b];
        char label[48];
        snprintf(label, sizeof label, "squeeze bench: batch %d", p.n_seqs);
        cli_progress *bar = o->no_progress ? NULL : cli_progress_create(label);
        sq_error *err =
            sq_bench_run((const sq_model *const *)models, o->n_models, &p, bar ? cli_progress_update : NULL,
                         bar, results + (size_t)b * o->n_models);
        cli_progress_free(bar);
        if (err) rc = cli_fail(err);
    }
    if (!rc) print_report(o, results);
    if (!rc && o->json_path) {
        cJSON *root = report_json(o, models, results);
        rc = eval_json_write(o->json_path, root);
        cJSON_Delete(root);
    }
    free(results);
    return rc;
}

int sq_cmd_bench(int argc, char **argv) {
    bench_options o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != CLI_CONTINUE) return rc;
    rc = 0;
    if (o.kernels) {
        sq_error *err = sq_cpu_force_kernels(o.kernels);
        if (err) rc = cli_fail(err);
    }
    sq_model *models[2] = {NULL, NULL};
    for (int m = 0; m < o.n_models && !rc; m++) {
        sq_error *err = cli_load_model(o.paths[m], NULL, &models[m]);
        if (err) rc = cli_fail(err);
    }
    if (!rc) rc = run_benchmarks(&o, models);
    for (int m = 0; m < o.n_models; m++) sq_model_free(models[m]);
    cli_list_free(&o.batch_list);
    return rc;
}
