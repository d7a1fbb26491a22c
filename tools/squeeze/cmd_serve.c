/* squeeze serve: the OpenAI-compatible HTTP server (sq_server_start) until SIGINT or SIGTERM, which stop it
 * gracefully: no new connections, requests in flight get a grace period to finish. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Requests in flight when a stop signal arrives get this long to finish. */
#define GRACE_SECONDS 10.0

typedef struct serve_args {
    const char *model_path, *tokenizer_path, *host, *api_key, *alias, *kv_type, *device;
    long port, max_seqs, kv_mem_mib, block_size, max_batch_tokens, threads, n_ctx, max_body_mib, timeout_s;
    long max_connections, ngram_pool;
    int no_prefix_cache;
    cli_spec_args spec;
} serve_args;

static const cli_verb verb = {
    .name = "serve",
    .usage = "-m MODEL [options]",
    .about =
        "Serves the model over HTTP as OpenAI's API does: POST /v1/completions and /v1/chat/completions\n"
        "(streaming too), GET /v1/models, /health and /metrics (Prometheus). Many requests are decoded\n"
        "together (continuous batching) over a paged KV cache with prefix caching. Prints the address it\n"
        "listens on; SIGINT or SIGTERM stop it gracefully, printing the speculative decoding statistics\n"
        "with --spec. --spec draft|self|ngram verifies every decoding request's drafts in the same step\n"
        "(token trees and --draft-k auto are not served). docs/serving.md.\n",
};

static int parse_args(int argc, char **argv, serve_args *a) {
    const cli_flag flags[] = {
        CLI_FLAG_MODEL(&a->model_path, 1),
        CLI_TEXT_FLAG("--host", "ADDR", &a->host, "IPv4 address to listen on", .def_str = "127.0.0.1"),
        CLI_INT_FLAG("--port", "N", &a->port, 0, 65535, 8080, "TCP port; 0: any free one (printed)"),
        CLI_INT_FLAG("--max-seqs", "N", &a->max_seqs, 1, 4096, 16, "requests decoded together"),
        CLI_INT_FLAG("--kv-mem", "MIB", &a->kv_mem_mib, 0, 1 << 24, 0, "KV cache pool in MiB",
                     .def_shown = "room for --max-seqs full contexts"),
        CLI_INT_FLAG("--block-size", "N", &a->block_size, 1, 65536, 16, "positions per KV cache block"),
        CLI_INT_FLAG("--max-batch-tokens", "N", &a->max_batch_tokens, 1, 1 << 20, 512,
                     "tokens one step carries (decode tokens and prompt chunks)"),
        CLI_TEXT_FLAG("--api-key", "KEY", &a->api_key, "require 'Authorization: Bearer KEY' on /v1/",
                      .def_shown = ""),
        CLI_TEXT_FLAG("--alias", "NAME", &a->alias, "the model's name in the API", .def_str = "squeeze"),
        CLI_FLAG_THREADS(&a->threads),
        CLI_FLAG_CTX(&a->n_ctx, "the model's, at most 4096"),
        CLI_FLAG_KV_TYPE(&a->kv_type),
        CLI_FLAG_DEVICE(&a->device),
        CLI_FLAG_TOKENIZER(&a->tokenizer_path),
        CLI_SWITCH_FLAG("--no-prefix-cache", &a->no_prefix_cache, "compute every prompt from scratch"),
        CLI_FLAGS_SPEC(&a->spec),
        CLI_INT_FLAG("--ngram-pool", "N", &a->ngram_pool, 0, 1 << 26, 0,
                     "--spec ngram: a pool of N n-grams of all requests' generated\ntext, drafted from when "
                     "a request's own text has no match; 0: none"),
        CLI_INT_FLAG("--max-body", "MIB", &a->max_body_mib, 1, 4096, 8, "largest request body in MiB"),
        CLI_INT_FLAG("--timeout", "S", &a->timeout_s, 1, 86400, 30,
                     "close connections idle this many seconds"),
        CLI_INT_FLAG("--max-connections", "N", &a->max_connections, 1, 100000, 1000,
                     "open connections at most"),
    };
    int rc = cli_parse(&verb, flags, CLI_N_FLAGS(flags), argc, argv, NULL);
    if (rc == CLI_CONTINUE) rc = cli_spec_check("serve", &a->spec);
    if (rc == CLI_CONTINUE && !strcmp(a->spec.method, "tree"))
        rc = cli_usage_error("serve", "--spec tree is not served: draft, self or ngram");
    if (rc == CLI_CONTINUE && !strcmp(a->spec.draft_k, "auto"))
        rc = cli_usage_error("serve", "--draft-k auto is not served: give a number");
    if (rc == CLI_CONTINUE && a->ngram_pool && strcmp(a->spec.method, "ngram"))
        rc = cli_usage_error("serve", "--ngram-pool is for --spec ngram");
    if (rc == CLI_CONTINUE && a->max_batch_tokens < a->max_seqs)
        rc = cli_usage_error("serve", "--max-batch-tokens (%ld) must be at least --max-seqs (%ld)",
                             a->max_batch_tokens, a->max_seqs);
    if (rc != CLI_CONTINUE) cli_list_free(&a->spec.skip_layers);
    return rc;
}

int sq_cmd_serve(int argc, char **argv) {
    serve_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_CONTINUE) return rc;
    sq_model *model = NULL;
    cli_spec spec = {0};
    sq_load_options lo = {.tokenizer_path = a.tokenizer_path};
    sq_error *err = cli_load_model(a.model_path, &lo, &model);
    if (!err) err = cli_spec_open(&a.spec, model, &lo, NULL, &spec);
    if (err) {
        sq_model_free(model);
        cli_list_free(&a.spec.skip_layers);
        return cli_fail(err);
    }
    const sq_spec_params *sp = &spec.params;
    /* the stop signals are taken by sigwait below: every thread the server starts inherits the mask */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    sq_server_options so = {.host = a.host,
                            .port = (int)a.port,
                            .api_key = a.api_key,
                            .alias = a.alias,
                            .max_body_bytes = (size_t)a.max_body_mib << 20,
                            .idle_timeout_s = (int)a.timeout_s,
                            .max_connections = (int)a.max_connections,
                            .engine = {.n_ctx = (int)a.n_ctx,
                                       .max_seqs = (int)a.max_seqs,
                                       .kv_mem = (size_t)a.kv_mem_mib << 20,
                                       .kv_block_size = (int)a.block_size,
                                       .kv_type = cli_kv_type(a.kv_type),
                                       .max_batch_tokens = (int)a.max_batch_tokens,
                                       .n_threads = (int)a.threads,
                                       .no_prefix_cache = a.no_prefix_cache,
                                       .spec_k = sp->draft != SQ_DRAFT_NONE ? sp->k : 0,
                                       .spec_draft = sp->draft,
                                       .spec_draft_model = spec.draft_model,
                                       .spec_skip_layers = sp->skip_layers,
                                       .spec_n_skip_layers = sp->n_skip_layers,
                                       .spec_ngram_n = sp->ngram_n,
                                       .spec_pool_entries = (int)a.ngram_pool,
                                       .device = a.device}};
    sq_server *srv = NULL;
    err = sq_server_start(model, &so, &srv);
    if (err) {
        cli_spec_close(&spec);
        sq_model_free(model);
        cli_list_free(&a.spec.skip_layers);
        return cli_fail(err);
    }
    printf("squeeze serve: listening on http://%s:%d (model '%s')\n", a.host, sq_server_port(srv), a.alias);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    sq_engine_stats st;
    fprintf(stderr, "squeeze serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sq_server_stop(srv, GRACE_SECONDS, &st);
    if (sp->draft != SQ_DRAFT_NONE) cli_spec_print_stats(stderr, &a.spec, &st.spec);
    cli_spec_close(&spec);
    sq_model_free(model);
    cli_list_free(&a.spec.skip_layers);
    return 0;
}
