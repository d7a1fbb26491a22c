/* squeeze bench: efficiency metrics of one model, or of two interleaved in one process (--vs), over batch
 * sizes: time to first token, time per output token, latency, prefill/decode throughput, requests/s, memory.
 * With --spec, plain against speculative decoding of a text prompt instead (cmd_bench_spec.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct bench_options {
    const char *paths[2], *labels[2];
    int n_models;
    sq_bench_params params;
    const int32_t *batches; /* [n_batches] batch sizes */
    int n_batches;
    cli_list batch_list; /* -b, owned; empty: batch size 1 */
    const char *kernels, *kv_type, *vs_kv_type, *json_path, *device;
    int no_progress;
    cli_spec_args spec;               /* --spec: cmd_bench_spec.c */
    const char *prompt, *prompt_file; /* --spec's prompt */
    double temperature;               /* --spec's; NaN: not given */
} bench_options;

static const cli_verb verb = {
    .name = "bench",
    .usage =
        "-m MODEL [-p 512] [-n 128] [-b 1,4,16] [--vs MODEL2] [--json OUT.json] [options]\n"
        "       squeeze bench -m MODEL --spec METHOD (--prompt TEXT | --prompt-file FILE) [-n 128] [options]",
    .about =
        "For each batch size b, one repetition prefills b prompts of -p random token ids in one forward\n"
        "call, then runs -n decode steps, each one forward call carrying one greedily chosen token per\n"
        "sequence. Prints the median and range over the timed repetitions of: time to first token (the\n"
        "prefill), time per output token, end-to-end latency, prefill and decode tokens/s, requests/s\n"
        "(b / latency), and the weights, KV cache and peak resident memory. -p 0 measures decoding alone\n"
        "(from one random token per sequence), -n 0 the prefill alone. Each model's line gives its\n"
        "parameters (a mixture of experts: also those one token uses, its chosen experts').\n"
        "With --spec METHOD (and run's speculative flags), each repetition instead generates up to -n "
        "tokens\n"
        "after the prompt text twice, plainly and speculatively (the order alternating, the same seed), and\n"
        "prints both decode speeds, the speedup per repetition, the mean accepted tokens per target step,\n"
        "the acceptance rate by draft position and the draft/target time split; at temperature 0 the two\n"
        "texts must be identical.\n",
};

static int parse_args(int argc, char **argv, bench_options *o) {
    static const int32_t default_batch = 1;
    long n_prompt, n_gen, reps, reps_max, warmup, threads, seed;
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&o->paths[0], 1),
        CLI_INT_FLAG("-p, --n-prompt", "N", &n_prompt, 0, CLI_MAX_CTX, 512,
                     "prompt tokens per sequence; -p + -n must fit the model's context"),
        CLI_INT_FLAG("-n, --n-gen", "N", &n_gen, 0, CLI_MAX_CTX, 128,
                     "decode steps, i.e. output tokens per sequence"),
        CLI_LIST_FLAG("-b, --batch", "LIST", &o->batch_list, 1, CLI_MAX_BATCH, "batch sizes, comma-separated",
                      .def_shown = "1"),
        CLI_INT_FLAG("--reps", "R", &reps, 1, 100000, 5, "timed repetitions summarised"),
        CLI_INT_FLAG(
            "--max-reps", "M", &reps_max, 0, 100000, 0,
            "repetitions run at most: a repetition whose threads\nwaited over 5% of their time for a "
            "CPU (another\nprocess, hypervisor steal) is run again",
            .def_shown = "4 x --reps"),
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
        CLI_FLAG_KV_TYPE(&o->kv_type),
        CLI_CHOICE_FLAG("--vs-kv-type", "TYPE", &o->vs_kv_type, "f32|f16|q8_0|q4_0", NULL,
                        "the --vs model's KV cache type (--vs MODEL itself:\nthe same model with two caches)",
                        .def_shown = "--kv-type"),
        CLI_FLAG_DEVICE(&o->device),
        CLI_FLAG_LABEL(&o->labels[0]),
        CLI_TEXT_FLAG("--vs-label", "NAME", &o->labels[1], "name of the --vs variant in reports",
                      .def_shown = "its path"),
        CLI_FLAG_SEED(&seed, 1234, "seed of the random prompt ids"),
        CLI_FLAG_NO_PROGRESS(&o->no_progress),
        CLI_FLAGS_SPEC(&o->spec),
        CLI_TEXT_FLAG("--prompt", "TEXT", &o->prompt, "--spec: the prompt"),
        CLI_TEXT_FLAG("--prompt-file", "FILE", &o->prompt_file, "--spec: read the prompt from FILE"),
        CLI_NUMBER_FLAG("--temp", "T", &o->temperature, 0, 100, NAN,
                        "--spec: sampling temperature (run's other defaults); 0: greedy", .def_shown = "0"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc != CLI_CONTINUE) return rc;
    const int spec = strcmp(o->spec.method, "none") != 0;
    rc = cli_spec_check("bench", &o->spec);
    if (rc == CLI_CONTINUE && !spec && (o->prompt || o->prompt_file || !isnan(o->temperature)))
        rc = cli_usage_error("bench", "--prompt, --prompt-file and --temp belong to --spec");
    if (rc == CLI_CONTINUE && spec && !o->prompt == !o->prompt_file)
        rc = cli_usage_error("bench",
                             "--spec needs the prompt text: exactly one of --prompt and --prompt-file");
    if (rc == CLI_CONTINUE && spec && (o->paths[1] || o->batch_list.n || o->vs_kv_type || o->labels[0]))
        rc =
            cli_usage_error("bench", "--spec compares decoding methods on one model: no --vs, -b or --label");
    for (int m = 0; m < 2 && rc == CLI_CONTINUE; m++)
        if (o->labels[m] && !*o->labels[m])
            rc = cli_usage_error("bench", "%s needs a non-empty name", m ? "--vs-label" : "--label");
    if (rc == CLI_CONTINUE && o->labels[1] && !o->paths[1])
        rc = cli_usage_error("bench", "--vs-label needs --vs MODEL2");
    if (rc == CLI_CONTINUE && o->vs_kv_type && !o->paths[1])
        rc = cli_usage_error("bench", "--vs-kv-type needs --vs MODEL2");
    if (rc == CLI_CONTINUE && reps_max && reps_max < reps)
        rc = cli_usage_error("bench", "--max-reps %ld is below --reps %ld", reps_max, reps);
    if (rc == CLI_CONTINUE && !n_prompt && !n_gen)
        rc = cli_usage_error("bench", "-p and -n are both 0: nothing to measure");
    if (rc != CLI_CONTINUE) {
        cli_list_free(&o->batch_list);
        cli_list_free(&o->spec.skip_layers);
        return rc;
    }
    o->n_models = o->paths[1] ? 2 : 1;
    o->batches = o->batch_list.n ? o->batch_list.v : &default_batch;
    o->n_batches = o->batch_list.n ? (int)o->batch_list.n : 1;
    if (!threads) threads = sq_cpu_count();
    o->params = (sq_bench_params){.n_prompt = (int)n_prompt,
                                  .n_gen = (int)n_gen,
                                  .n_reps = (int)reps,
                                  .n_reps_max = (int)(reps_max ? reps_max : 4 * reps),
                                  .n_warmup = (int)warmup,
                                  .n_threads = (int)threads,
                                  .seed = seed < 0 ? cli_clock_seed() : (uint64_t)seed,
                                  .kv_type = cli_kv_type(o->kv_type),
                                  .vs_kv_type = cli_kv_type(o->vs_kv_type),
                                  .vs_kv_type_set = o->vs_kv_type != NULL,
                                  .device = o->device};
    return CLI_CONTINUE;
}

/* ------------------------------------------------------------------ table */

/* About four significant digits, never an exponent; "—" for a figure the workload has none of. */
static void print_number(double x) {
    if (!isfinite(x)) {
        printf("—");
        return;
    }
    double ax = x < 0 ? -x : x;
    printf(ax >= 1000 ? "%.0f" : ax >= 100 ? "%.1f" : ax >= 10 ? "%.2f" : ax >= 1 ? "%.3f" : "%.4f", x);
}

static void print_ratio(double b, double a) {
    if (a > 0 && isfinite(b))
        printf(" | %.3f", b / a);
    else
        printf(" | —");
}

/* Which rounds the table summarises, and how busy the machine was. */
static void print_rounds(const bench_options *o, const sq_bench_result *r) {
    printf("\n%d of %d timed rounds undisturbed (threads kept off a CPU at most %.0f%% of the time); median "
           "wait",
           r->n_runs - r->n_disturbed, r->n_runs, 100 * SQ_BENCH_MAX_CPU_WAIT);
    for (int m = 0; m < o->n_models; m++) {
        printf(o->n_models == 1 ? " " : m ? ", B " : " A ");
        if (isnan(r[m].cpu_wait))
            printf("unknown (no /proc scheduler statistics)");
        else
            printf("%.1f%%", 100 * r[m].cpu_wait);
    }
    printf(".\n");
    if (r->n_runs - r->n_disturbed < o->params.n_reps)
        printf("warning: fewer than %d undisturbed rounds in %d: the machine is busy, and the figures above "
               "summarise the %d least disturbed\n",
               o->params.n_reps, r->n_runs, o->params.n_reps);
}

static void print_batch_table(const bench_options *o, int batch, const sq_bench_result *r) {
    printf("\n### batch %d: %d x (%d prompt + %d output tokens)\n\n", batch, batch, o->params.n_prompt,
           o->params.n_gen);
    if (o->n_models == 1)
        printf("| metric | median | min | max |\n|---|---:|---:|---:|\n");
    else
        printf("| metric | A median | A min–max | B median | B min–max | B/A "
               "|\n|---|---:|---:|---:|---:|---:|\n");
    int n_metrics;
    const sq_bench_metric *metrics = sq_bench_metrics(&n_metrics);
    for (int k = 0; k < n_metrics; k++) {
        const sq_bench_metric *row = &metrics[k];
        printf("| %s", row->label);
        for (int m = 0; m < o->n_models; m++) {
            printf(" | ");
            if (row->is_bytes) {
                print_number(sq_bench_metric_bytes(&r[m], row) * row->scale);
                printf(o->n_models == 1 ? " | |" : " |"); /* empty range cells */
                continue;
            }
            const sq_bench_stat *s = sq_bench_metric_stat(&r[m], row);
            print_number(s->median * row->scale);
            printf(" | ");
            print_number(s->min * row->scale);
            /* with two models one column holds each range */
            printf(o->n_models == 1 ? " | " : "–");
            print_number(s->max * row->scale);
        }
        if (o->n_models == 2 && row->is_bytes)
            print_ratio(sq_bench_metric_bytes(&r[1], row), sq_bench_metric_bytes(&r[0], row));
        else if (o->n_models == 2)
            print_ratio(sq_bench_metric_stat(&r[1], row)->median, sq_bench_metric_stat(&r[0], row)->median);
        printf(" |\n");
    }
    print_rounds(o, r);
}

static void print_report(const bench_options *o, sq_model *const *models, const sq_bench_result *results) {
    const sq_bench_params *p = &o->params;
    printf("squeeze bench: %d prompt + %d output tokens per sequence, %d repetitions after %d warm-up, "
           "%d threads, %s kernels, %s KV cache%s%s%s, random prompt ids (seed %llu)\n",
           p->n_prompt, p->n_gen, p->n_reps, p->n_warmup, p->n_threads, sq_cpu_kernel_name(),
           sq_kv_type_name(p->kv_type), p->vs_kv_type_set ? " (B: " : "",
           p->vs_kv_type_set ? sq_kv_type_name(p->vs_kv_type) : "", p->vs_kv_type_set ? ")" : "",
           (unsigned long long)p->seed);
    for (int m = 0; m < o->n_models; m++) {
        sq_model_info mi;
        sq_model_get_info(models[m], &mi);
        printf("%s: %s%s%s%s; %.2fM parameters",
               o->n_models == 1 ? "model"
               : m              ? "B"
                                : "A",
               o->paths[m], o->labels[m] ? " (" : "", o->labels[m] ? o->labels[m] : "",
               o->labels[m] ? ")" : "", mi.n_params / 1e6);
        /* a mixture of experts multiplies each token by its chosen experts only */
        if (mi.n_experts)
            printf(", %.2fM active per token (%d of %d experts)", mi.n_active_params / 1e6, mi.n_experts_used,
                   mi.n_experts);
        printf("\n");
    }
    for (int b = 0; b < o->n_batches; b++)
        print_batch_table(o, o->batches[b], results + (size_t)b * o->n_models);
    printf("\npeak RSS is the process's, read after each model's warm-up%s.\n",
           o->n_models == 2 ? "; both models live in this process, so B's includes A's" : "");
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
    if (!rc) print_report(o, models, results);
    if (!rc && o->json_path) {
        const sq_report_model rm[2] = {{o->paths[0], o->labels[0], models[0]},
                                       {o->paths[1], o->labels[1], models[1]}};
        sq_error *err = sq_report_write_bench(o->json_path, rm, o->n_models, &o->params, o->batches,
                                              o->n_batches, results);
        if (err) rc = cli_fail(err);
    }
    free(results);
    return rc;
}

/* --spec: plain against speculative decoding (cmd_bench_spec.c) */
static int bench_spec(const bench_options *o) {
    sq_sampler_params sp = sq_sampler_default_params();
    sp.temperature = isnan(o->temperature) ? 0 : (float)o->temperature;
    sp.seed = o->params.seed;
    const cli_bench_spec_options so = {.model_path = o->paths[0],
                                       .prompt = o->prompt,
                                       .prompt_file = o->prompt_file,
                                       .json_path = o->json_path,
                                       .kv_type = o->kv_type,
                                       .device = o->device,
                                       .spec = o->spec,
                                       .n_gen = o->params.n_gen,
                                       .n_reps = o->params.n_reps,
                                       .n_warmup = o->params.n_warmup,
                                       .n_threads = o->params.n_threads,
                                       .no_progress = o->no_progress,
                                       .sampling = sp};
    return cli_bench_spec(&so);
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
    if (!rc && strcmp(o.spec.method, "none")) {
        rc = bench_spec(&o);
        cli_list_free(&o.batch_list);
        cli_list_free(&o.spec.skip_layers);
        return rc;
    }
    sq_model *models[2] = {NULL, NULL};
    for (int m = 0; m < o.n_models && !rc; m++) {
        sq_error *err = cli_load_model(o.paths[m], NULL, &models[m]);
        if (err) rc = cli_fail(err);
    }
    if (!rc) rc = run_benchmarks(&o, models);
    for (int m = 0; m < o.n_models; m++) sq_model_free(models[m]);
    cli_list_free(&o.batch_list);
    cli_list_free(&o.spec.skip_layers);
    return rc;
}
