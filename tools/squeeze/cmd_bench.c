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

#define MAX_BATCHES  32
#define DEFAULT_SEED 1234

typedef struct bench_options {
    const char *paths[2], *labels[2];
    int n_models;
    sq_bench_params params;
    int batches[MAX_BATCHES], n_batches;
    const char *kernels, *json_path;
} bench_options;

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: squeeze bench -m MODEL [-p 512] [-n 128] [-b 1,4,16] [--reps 5] [--warmup 1] [-t THREADS]\n"
        "                     [--vs MODEL2] [--json OUT.json] [--kernels scalar|avx2|avx512] [--label NAME]\n"
        "                     [--vs-label NAME] [--seed N]\n"
        "\n"
        "For each batch size b, one repetition prefills b prompts of -p random token ids in one forward "
        "call,\n"
        "then runs -n decode steps, each one forward call carrying one greedily chosen token per sequence.\n"
        "Prints the median and range over the timed repetitions of: time to first token (the prefill), time\n"
        "per output token, end-to-end latency, prefill and decode tokens/s, requests/s (b / latency), and "
        "the\n"
        "weights, KV cache and peak resident memory.\n"
        "\n"
        "  -m MODEL        model to benchmark (llama2.c .bin, GGUF, or Hugging Face directory)\n"
        "  -p N            prompt tokens per sequence (default 512); -p + -n must fit the model's context\n"
        "  -n N            decode steps, i.e. output tokens per sequence (default 128)\n"
        "  -b LIST         batch sizes, comma-separated (default 1)\n"
        "  --reps R        timed repetitions (default 5)\n"
        "  --warmup W      untimed repetitions first (default 1)\n"
        "  -t THREADS      threads (default: all online cores)\n"
        "  --vs MODEL2     benchmark a second model in the same run, repetitions interleaved with the "
        "first,\n"
        "                  and add a B/A ratio column\n"
        "  --json PATH     also write the results as a JSON report (docs/report-format.md)\n"
        "  --kernels NAME  force a CPU kernel set (scalar, avx2, avx512), e.g. for a scalar baseline\n"
        "  --label NAME    name of the -m variant in reports (default: its path)\n"
        "  --vs-label NAME name of the --vs variant in reports\n"
        "  --seed N        seed of the random prompt ids (default %d)\n",
        DEFAULT_SEED);
}

/* "1,4,16": every comma-separated piece a batch size (empty pieces are errors). */
static int parse_batches(const char *text, bench_options *o) {
    o->n_batches = 0;
    for (const char *piece = text;; piece++) {
        const char *comma = strchr(piece, ',');
        size_t len = comma ? (size_t)(comma - piece) : strlen(piece);
        char number[16];
        long b;
        if (len == 0 || len >= sizeof number || o->n_batches == MAX_BATCHES) return -1;
        memcpy(number, piece, len);
        number[len] = 0;
        if (cli_parse_int(number, 1, 4096, &b)) return -1;
        o->batches[o->n_batches++] = (int)b;
        if (!comma) return 0;
        piece = comma;
    }
}

/* A flag's integer value in [lo, hi], or a usage error. */
static int int_flag(int argc, char **argv, int *i, long lo, long hi, long *out) {
    const char *flag = argv[*i], *value = cli_flag_value("bench", argc, argv, i);
    if (!value) return 2;
    if (cli_parse_int(value, lo, hi, out))
        return cli_usage_error("bench", "%s %s: expected an integer from %ld to %ld", flag, value, lo, hi);
    return 0;
}

static int parse_args(int argc, char **argv, bench_options *o) {
    long v;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--vs")) {
            const char **slot = &o->paths[a[1] == 'm' ? 0 : 1];
            if (!(*slot = cli_flag_value("bench", argc, argv, &i))) rc = 2;
        } else if (!strcmp(a, "--label") || !strcmp(a, "--vs-label")) {
            const char **slot = &o->labels[a[2] == 'l' ? 0 : 1];
            if (!(*slot = cli_flag_value("bench", argc, argv, &i)))
                rc = 2;
            else if (!**slot)
                rc = cli_usage_error("bench", "%s needs a non-empty name", a);
        } else if (!strcmp(a, "-p")) {
            if (!(rc = int_flag(argc, argv, &i, 1, 1 << 20, &v))) o->params.n_prompt = (int)v;
        } else if (!strcmp(a, "-n")) {
            if (!(rc = int_flag(argc, argv, &i, 1, 1 << 20, &v))) o->params.n_gen = (int)v;
        } else if (!strcmp(a, "--reps")) {
            if (!(rc = int_flag(argc, argv, &i, 1, 100000, &v))) o->params.n_reps = (int)v;
        } else if (!strcmp(a, "--warmup")) {
            if (!(rc = int_flag(argc, argv, &i, 0, 100000, &v))) o->params.n_warmup = (int)v;
        } else if (!strcmp(a, "-t")) {
            if (!(rc = int_flag(argc, argv, &i, 1, 4096, &v))) o->params.n_threads = (int)v;
        } else if (!strcmp(a, "--seed")) {
            if (!(rc = int_flag(argc, argv, &i, 0, 1L << 53, &v))) o->params.seed = (uint64_t)v;
        } else if (!strcmp(a, "-b")) {
            const char *list = cli_flag_value("bench", argc, argv, &i);
            if (!list)
                rc = 2;
            else if (parse_batches(list, o))
                rc = cli_usage_error("bench",
                                     "-b %s: expected up to %d comma-separated batch sizes from 1 to 4096",
                                     list, MAX_BATCHES);
        } else if (!strcmp(a, "--json")) {
            if (!(o->json_path = cli_flag_value("bench", argc, argv, &i))) rc = 2;
        } else if (!strcmp(a, "--kernels")) {
            if (!(o->kernels = cli_flag_value("bench", argc, argv, &i)))
                rc = 2;
            else if (strcmp(o->kernels, "scalar") && strcmp(o->kernels, "avx2") &&
                     strcmp(o->kernels, "avx512"))
                rc = cli_usage_error("bench", "--kernels %s: expected scalar, avx2 or avx512", o->kernels);
        } else {
            rc = cli_usage_error("bench", "unknown option %s", a);
        }
    }
    if (!rc && !o->paths[0]) rc = cli_usage_error("bench", "no model given (-m MODEL)");
    if (!rc && o->labels[1] && !o->paths[1]) rc = cli_usage_error("bench", "--vs-label needs --vs MODEL2");
    o->n_models = o->paths[1] ? 2 : 1;
    return rc;
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
        sq_progress_bar *bar = sq_progress_bar_create(label); /* draws only on a terminal */
        sq_error *err = sq_bench_run((const sq_model *const *)models, o->n_models, &p, sq_progress_bar_update,
                                     bar, results + (size_t)b * o->n_models);
        sq_progress_bar_free(bar);
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
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout), 0;
    bench_options o = {
        .params = {.n_prompt = 512, .n_gen = 128, .n_reps = 5, .n_warmup = 1, .seed = DEFAULT_SEED},
        .batches = {1},
        .n_batches = 1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    if (!o.params.n_threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.params.n_threads = cores > 0 ? (int)cores : 1;
    }
    if (o.kernels) {
        sq_error *err = sq_cpu_force_kernels(o.kernels);
        if (err) return cli_fail(err);
    }
    sq_model *models[2] = {NULL, NULL};
    for (int m = 0; m < o.n_models && !rc; m++) {
        sq_error *err = cli_load_model(o.paths[m], NULL, &models[m]);
        if (err) rc = cli_fail(err);
    }
    if (!rc) rc = run_benchmarks(&o, models);
    for (int m = 0; m < o.n_models; m++) sq_model_free(models[m]);
    return rc;
}
