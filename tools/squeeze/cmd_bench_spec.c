/* squeeze bench --spec METHOD: plain and speculative decoding of one prompt in one process, each repetition
 * running both (plain first in even repetitions, speculative first in odd ones) with the same seed, so that
 * both share the machine's conditions as bench --vs's interleaved models do. Prints the decode speeds and the
 * per-repetition speedup (median and range), then the speculative runs' acceptance statistics; --json writes
 * them as a "bench_spec" report. At temperature 0 every speculative text must equal the plain one. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Without -c, as in run: the model's context, at most this many tokens. */
#define DEFAULT_MAX_CTX 4096
#define PREFILL_CHUNK   512
/* A prompt file larger than this is a mistake, not a prompt. */
#define MAX_PROMPT_BYTES ((size_t)1 << 24)

/* The generated text of one run, to compare the speculative output with the plain one. */
typedef struct text_buf {
    char *data;
    size_t len, cap;
    int failed; /* out of memory */
} text_buf;

static int collect(const char *piece, size_t len, void *user) {
    text_buf *b = user;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + len) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return b->failed = 1; /* stop: the comparison cannot be made */
        b->data = p, b->cap = cap;
    }
    memcpy(b->data + b->len, piece, len);
    b->len += len;
    return 0;
}

static double decode_rate(const sq_generate_stats *st) {
    return st->decode_seconds > 0 ? st->decode_steps / st->decode_seconds : 0;
}

static void add_stats(sq_spec_stats *sum, const sq_spec_stats *s) {
    sum->steps += s->steps, sum->drafted += s->drafted, sum->accepted += s->accepted;
    sum->generated += s->generated;
    for (int d = 0; d < SQ_SPEC_MAX_K; d++)
        sum->reached[d] += s->reached[d], sum->accepted_at[d] += s->accepted_at[d];
    sum->draft_seconds += s->draft_seconds, sum->target_seconds += s->target_seconds;
    sum->k = s->k;
}

typedef struct bench_state {
    const cli_bench_spec_options *o;
    sq_context *ctx;
    const sq_spec_params *spec;
    double *rates; /* [3][n_reps]: plain tok/s, speculative tok/s, their ratio */
    sq_spec_bench_report report;
    text_buf plain_text, spec_text;
} bench_state;

/* One repetition: both runs in the repetition's order, with its seed. Library errors in *err; returns
 * non-zero when it cannot go on (also out of memory for the texts, reported here). */
static int repetition(bench_state *b, int rep, int timed, sq_error **err) {
    const cli_bench_spec_options *o = b->o;
    sq_sampler_params sp = o->sampling;
    sp.seed += (uint64_t)rep;
    sq_generate_stats st[2];
    sq_spec_stats sst = {0};
    for (int i = 0; i < 2; i++) {
        const int speculative = i ^ (rep & 1);
        text_buf *t = speculative ? &b->spec_text : &b->plain_text;
        t->len = 0;
        *err = sq_generate_spec(b->ctx, o->prompt, o->n_gen, &sp, speculative ? b->spec : NULL, collect, t,
                                &st[speculative], speculative ? &sst : NULL);
        if (*err) return 1;
        if (t->failed) return fprintf(stderr, "squeeze: bench --spec: out of memory\n"), 1;
    }
    if (!timed) return 0;
    const double plain = decode_rate(&st[0]), spec = decode_rate(&st[1]);
    b->rates[rep] = plain;
    b->rates[o->n_reps + rep] = spec;
    b->rates[2 * o->n_reps + rep] = plain > 0 ? spec / plain : 0;
    b->report.n_prompt = st[0].prompt_tokens;
    add_stats(&b->report.stats, &sst);
    if (b->report.greedy_identical == 1 && (b->plain_text.len != b->spec_text.len ||
                                            memcmp(b->plain_text.data, b->spec_text.data, b->spec_text.len)))
        b->report.greedy_identical = 0;
    return 0;
}

static int run_all(bench_state *b, sq_error **err) {
    const cli_bench_spec_options *o = b->o;
    const int total = o->n_warmup + o->n_reps;
    cli_progress *bar = o->no_progress ? NULL : cli_progress_create("squeeze bench --spec");
    int failed = 0;
    for (int r = 0; r < total && !failed; r++) {
        /* warm-ups use the seeds after the timed ones' */
        failed =
            r < o->n_warmup ? repetition(b, o->n_reps + r, 0, err) : repetition(b, r - o->n_warmup, 1, err);
        if (bar) cli_progress_update(bar, r + 1, total);
    }
    cli_progress_free(bar);
    return failed;
}

static void print_stat_row(const char *label, const sq_bench_stat *s, const char *fmt) {
    printf("| %s | ", label);
    printf(fmt, s->median);
    printf(" | ");
    printf(fmt, s->min);
    printf(" | ");
    printf(fmt, s->max);
    printf(" |\n");
}

static void print_report(const bench_state *b) {
    const cli_bench_spec_options *o = b->o;
    const sq_spec_bench_report *r = &b->report;
    printf("squeeze bench --spec %s: %s, prompt %d tokens, up to %d generated, %d repetitions after %d "
           "warm-up (plain and speculative in each), %d threads, %s kernels, temperature %g, seed %llu\n\n",
           o->spec.method, o->model_path, r->n_prompt, o->n_gen, o->n_reps, o->n_warmup, r->n_threads,
           sq_cpu_kernel_name(), o->sampling.temperature, (unsigned long long)o->sampling.seed);
    printf("| metric | median | min | max |\n|---|---:|---:|---:|\n");
    print_stat_row("plain decode (tokens/s)", &r->plain_tok_s, "%.2f");
    print_stat_row("speculative decode (tokens/s)", &r->spec_tok_s, "%.2f");
    print_stat_row("speedup (per repetition)", &r->speedup, "%.3f");
    printf("\n");
    cli_spec_print_stats(stdout, &o->spec, &r->stats);
    if (r->greedy_identical >= 0)
        printf("greedy output %s plain decoding's in every repetition\n",
               r->greedy_identical ? "identical to" : "DIFFERS from");
}

static int bench_model(const cli_bench_spec_options *o, sq_model *model) {
    sq_model_info info;
    sq_model_get_info(model, &info);
    const int n_ctx = info.max_seq_len < DEFAULT_MAX_CTX ? info.max_seq_len : DEFAULT_MAX_CTX;
    const int threads = o->n_threads ? o->n_threads : sq_cpu_count();
    sq_context_options co = {.n_ctx = n_ctx,
                             .n_seq_max = 1,
                             .n_threads = threads,
                             .n_batch_max = n_ctx < PREFILL_CHUNK ? n_ctx : PREFILL_CHUNK,
                             .kv_type = cli_kv_type(o->kv_type),
                             .device = o->device};
    sq_load_options lo = {0};
    bench_state b = {.o = o};
    cli_spec spec = {0};
    sq_error *err = sq_context_create(model, &co, &b.ctx);
    if (!err) err = cli_spec_open(&o->spec, model, &lo, &co, &spec);
    b.spec = &spec.params;
    b.report = (sq_spec_bench_report){.method = o->spec.method,
                                      .draft_path = o->spec.draft_path,
                                      .spec = &spec.params,
                                      .sampling = &o->sampling,
                                      .n_gen = o->n_gen,
                                      .n_reps = o->n_reps,
                                      .n_warmup = o->n_warmup,
                                      .n_threads = threads,
                                      .greedy_identical = o->sampling.temperature == 0 ? 1 : -1};
    int rc = err != NULL;
    if (!rc && !(b.rates = calloc(3 * (size_t)o->n_reps, sizeof *b.rates))) {
        fprintf(stderr, "squeeze: bench --spec: out of memory\n");
        rc = 1;
    }
    if (!rc) rc = run_all(&b, &err);
    if (!rc) {
        b.report.plain_tok_s = sq_bench_summarise(b.rates, o->n_reps);
        b.report.spec_tok_s = sq_bench_summarise(b.rates + o->n_reps, o->n_reps);
        b.report.speedup = sq_bench_summarise(b.rates + 2 * o->n_reps, o->n_reps);
        print_report(&b);
        if (o->json_path) {
            const sq_report_model rm = {o->model_path, NULL, model};
            err = sq_report_write_bench_spec(o->json_path, &rm, &b.report);
            rc = err != NULL;
        }
    }
    if (!rc && b.report.greedy_identical == 0) {
        fprintf(stderr,
                "squeeze: bench --spec: the greedy speculative output differs from plain decoding's\n");
        rc = 1;
    }
    free(b.rates);
    free(b.plain_text.data);
    free(b.spec_text.data);
    cli_spec_close(&spec);
    sq_context_free(b.ctx);
    return err ? cli_fail(err) : rc;
}

int cli_bench_spec(const cli_bench_spec_options *opts) {
    cli_bench_spec_options o = *opts;
    char *file_prompt = NULL;
    size_t len = 0;
    if (o.prompt_file) {
        sq_error *err = sq_read_file(o.prompt_file, MAX_PROMPT_BYTES, &file_prompt, &len);
        if (err) return cli_fail(err);
        if (memchr(file_prompt, 0, len)) {
            free(file_prompt);
            fprintf(stderr, "squeeze: %s: the prompt contains a NUL byte\n", o.prompt_file);
            return 1;
        }
        o.prompt = file_prompt;
    }
    sq_model *model = NULL;
    sq_error *err = cli_load_model(o.model_path, NULL, &model);
    int rc;
    if (err) {
        rc = cli_fail(err);
    } else if (!sq_model_tokenizer(model)) {
        fprintf(stderr, "squeeze: %s: bench --spec needs a model with a tokenizer (the prompt is text)\n",
                o.model_path);
        rc = 1;
    } else {
        rc = bench_model(&o, model);
    }
    sq_model_free(model);
    free(file_prompt);
    return rc;
}
