/* One libFuzzer harness for every parser squeeze exposes to untrusted files. FUZZ_KIND (set per target by
 * fuzz/CMakeLists.txt) says how the fuzzer's bytes reach the library: as a whole model or tokenizer file of
 * one format, as one file of a Hugging Face directory whose other files are valid, as text to tokenize, as a
 * chat template and the messages it renders, as a file of integers (token ids), or as the body of an OpenAI
 * request to the server (completions and chat; chat messages are then rendered). Any outcome but a clean
 * success or a clean error (crash, leak, sanitizer report, hang) is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/openai_request.h"
#include "squeeze.h"

enum {
    KIND_GGUF,
    KIND_LLAMA2C,
    KIND_SAFETENSORS,
    KIND_HF_CONFIG,
    KIND_TOKENIZER_JSON,
    KIND_TOKENIZER_MODEL,
    KIND_TOKENIZER_BIN,
    KIND_TOKENIZE_TEXT,
    KIND_GENERATION_CONFIG,
    KIND_CHAT_TEMPLATE,
    KIND_INT_LIST,
    KIND_OPENAI_REQUEST
};

static char workdir[256];

static void write_file(const char *name, const uint8_t *data, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) abort();
}

/* The valid companions of the fuzzed file live in $SQ_FUZZ_FIXTURES (made by fuzz/make_seeds.py). */
static void copy_fixture(const char *name) {
    char src[512];
    snprintf(src, sizeof src, "%s/%s",
             getenv("SQ_FUZZ_FIXTURES") ? getenv("SQ_FUZZ_FIXTURES") : "fuzz-fixtures", name);
    FILE *fp = fopen(src, "rb");
    if (!fp) {
        fprintf(stderr, "fuzz: missing fixture %s (set SQ_FUZZ_FIXTURES)\n", src);
        abort();
    }
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    write_file(name, buf, n);
}

static void load_model(const char *path) {
    sq_model *m = NULL;
    sq_error *err = sq_model_load(path, NULL, &m);
    if (err) {
        if (!sq_error_message(err)[0]) abort(); /* an error must say what is wrong */
        sq_error_free(err);
        return;
    }
    /* what loading reports must hold its promises: warnings that say something, stop ids in the vocabulary */
    sq_model_info info;
    sq_model_get_info(m, &info);
    for (int i = 0; i < sq_model_n_warnings(m); i++)
        if (!sq_model_warning(m, i) || !sq_model_warning(m, i)[0]) abort();
    int n_eos;
    const int32_t *eos = sq_model_eos_ids(m, &n_eos);
    for (int i = 0; i < n_eos; i++)
        if (eos[i] < 0 || eos[i] >= info.vocab_size || !sq_model_is_eos(m, eos[i])) abort();
    /* a model that loads must also run */
    sq_context *ctx = NULL;
    err = sq_context_create(m, &(sq_context_options){.n_ctx = 4, .n_threads = 1}, &ctx);
    if (err) {
        sq_error_free(err); /* a model whose context is shorter than 4 tokens: refused, which is fine */
    } else {
        float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
        int32_t tok = 0;
        sq_error_free(sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = &tok, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = logits},
            1));
        free(logits);
        sq_context_free(ctx);
    }
    sq_model_free(m);
}

static void exercise_tokenizer(const sq_tokenizer *tok, const uint8_t *text, size_t len) {
    int32_t *ids = NULL;
    int n = 0;
    sq_error *err = sq_tokenize(tok, (const char *)text, len, 1, 1, &ids, &n);
    if (err) {
        sq_error_free(err);
        return;
    }
    char *out = NULL;
    size_t out_len = 0;
    sq_error_free(sq_detokenize(tok, ids, n, &out, &out_len));
    /* streamed after the first half as context, the rest must add exactly what decoding the whole adds */
    char *head = NULL;
    size_t head_len = 0, streamed = 0;
    sq_error *derr = sq_detokenize(tok, ids, n / 2, &head, &head_len);
    sq_detokenizer *d = sq_detokenizer_create(tok);
    if (!derr && d && !(derr = sq_detokenizer_reset(d, ids, n / 2)) && out) {
        for (int i = n / 2; i <= n; i++) {
            size_t l;
            const char *piece = i < n ? sq_detokenizer_push(d, ids[i], &l) : sq_detokenizer_flush(d, &l);
            if (head_len + streamed + l > out_len || memcmp(out + head_len + streamed, piece, l)) abort();
            streamed += l;
        }
        if (head_len + streamed != out_len) abort();
    }
    sq_error_free(derr);
    sq_detokenizer_free(d);
    free(head);
    free(out);
    free(ids);
}

/* An id file (ppl --ids-file) read whole and parsed as an integer list: a list that parses holds only values
 * in range, and printing it back gives the same list. */
static void parse_int_list(const char *path) {
    char *text = NULL;
    size_t len = 0;
    int32_t *v = NULL, *again = NULL;
    int64_t n = 0, n_again = 0;
    sq_error *err = sq_read_file(path, 1 << 20, &text, &len);
    if (!err) err = sq_parse_int_list(text, len, -5, 1000000, &v, &n);
    free(text);
    if (err) {
        if (!sq_error_message(err)[0]) abort();
        sq_error_free(err);
        return;
    }
    char *printed = malloc((size_t)n * 12 + 1), *p = printed;
    if (!printed) abort();
    for (int64_t i = 0; i < n; i++) {
        if (v[i] < -5 || v[i] > 1000000) abort();
        p += sprintf(p, i ? ", %d" : "%d", v[i]);
    }
    if (sq_parse_int_list(printed, (size_t)(p - printed), -5, 1000000, &again, &n_again) || n_again != n ||
        (n && memcmp(v, again, (size_t)n * sizeof *v)))
        abort();
    free(printed);
    free(v);
    free(again);
}

static void load_tokenizer(const char *path) {
    sq_tokenizer *tok = NULL;
    sq_error *err = sq_tokenizer_load(path, &tok);
    if (err) {
        sq_error_free(err);
        return;
    }
    exercise_tokenizer(tok, (const uint8_t *)"Hello world! 123 \xe4\xbd\xa0\xe5\xa5\xbd \xff", 24);
    sq_tokenizer_free(tok);
}

/* The bytes are a template, or a template, a NUL and the messages as JSON; it is compiled and, when that
 * works, rendered under small limits. */
static void chat_template(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    char *messages = NULL;
    if (nul) {
        size_t n = size - src_len - 1;
        messages = malloc(n + 1);
        memcpy(messages, nul + 1, n);
        messages[n] = 0;
    }
    sq_chat_template *t = NULL;
    sq_error *err = sq_chat_template_compile((const char *)data, src_len, &t);
    if (err) {
        if (!sq_error_message(err)[0]) abort();
        sq_error_free(err);
        free(messages);
        return;
    }
    static const char fixed[] =
        "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": \"h\\u00e9 {{x}}\"},"
        " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": {\"name\": \"f\","
        " \"arguments\": {\"a\": 1.5}}}]}, {\"role\": \"tool\", \"content\": \"42\"}]";
    for (int gen = 0; gen < 2; gen++) {
        sq_chat_render_options o = {
            .add_generation_prompt = gen,
            .bos_token = "<s>",
            .eos_token = "</s>",
            .vars_json = gen ? "{\"tools\": [{\"name\": \"f\"}], \"enable_thinking\": false}" : NULL,
            .max_steps = 100000,
            .max_bytes = 16 << 20};
        char *text = NULL;
        err = sq_chat_template_render_json(t, messages ? messages : fixed, &o, &text, NULL);
        if (err) {
            if (!sq_error_message(err)[0] || text) abort();
            sq_error_free(err);
        }
        free(text);
    }
    sq_chat_template_free(t);
    free(messages);
}

/* A request body as the server receives it, parsed as both kinds; what parses must keep the struct's
 * promises, and chat messages that parse must render (or fail cleanly) through the template engine's JSON
 * input. */
static void openai_request(const uint8_t *data, size_t size) {
    static sq_chat_template *t;
    if (!t) {
        static const char src[] = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
        if (sq_chat_template_compile(src, sizeof src - 1, &t)) abort();
    }
    for (int kind = SQ_OAI_COMPLETION; kind <= SQ_OAI_CHAT; kind++) {
        sq_oai_request r;
        sq_error *err = sq_oai_request_parse((sq_oai_kind)kind, (const char *)data, size, &r);
        if (err) {
            if (!sq_error_message(err)[0]) abort();
            sq_error_free(err);
            sq_oai_request_free(&r);
            continue;
        }
        if (r.n < 1 || r.n > SQ_OAI_MAX_N || r.n_stop > SQ_OAI_MAX_STOP ||
            r.top_logprobs > SQ_OAI_MAX_TOP_LOGPROBS || !(r.temperature >= 0 && r.temperature <= 2) ||
            !(r.top_p >= 0 && r.top_p <= 1) || r.max_tokens < -1)
            abort();
        if (kind == SQ_OAI_COMPLETION ? !r.prompt == !r.prompt_ids : !r.messages_json) abort();
        for (int i = 0; i < r.n_stop; i++)
            if (!r.stop[i][0]) abort();
        if (r.messages_json) {
            char *text = NULL;
            sq_error_free(sq_chat_template_render_json(t, r.messages_json, NULL, &text, NULL));
            free(text);
        }
        sq_oai_request_free(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!workdir[0]) {
        snprintf(workdir, sizeof workdir, "/tmp/sq-fuzz-%d", (int)getpid());
        mkdir(workdir, 0700);
    }
    char path[512];
    switch (FUZZ_KIND) {
    case KIND_GGUF:
    case KIND_LLAMA2C: {
        const char *name = FUZZ_KIND == KIND_GGUF ? "model.gguf" : "model.bin";
        write_file(name, data, size);
        snprintf(path, sizeof path, "%s/%s", workdir, name);
        load_model(path);
        break;
    }
    case KIND_SAFETENSORS:
    case KIND_HF_CONFIG:
        write_file(FUZZ_KIND == KIND_SAFETENSORS ? "model.safetensors" : "config.json", data, size);
        copy_fixture(FUZZ_KIND == KIND_SAFETENSORS ? "config.json" : "model.safetensors");
        copy_fixture("tokenizer.json");
        load_model(workdir);
        break;
    case KIND_GENERATION_CONFIG:
        write_file("generation_config.json", data, size);
        copy_fixture("config.json");
        copy_fixture("model.safetensors");
        copy_fixture("tokenizer.json");
        load_model(workdir);
        break;
    case KIND_TOKENIZER_JSON:
    case KIND_TOKENIZER_MODEL:
    case KIND_TOKENIZER_BIN: {
        const char *name = FUZZ_KIND == KIND_TOKENIZER_JSON    ? "tokenizer.json"
                           : FUZZ_KIND == KIND_TOKENIZER_MODEL ? "tokenizer.model"
                                                               : "tokenizer.bin";
        write_file(name, data, size);
        snprintf(path, sizeof path, "%s/%s", workdir, name);
        load_tokenizer(path);
        break;
    }
    case KIND_TOKENIZE_TEXT: {
        static sq_tokenizer *toks[2];
        if (!toks[0]) {
            const char *shared = getenv("SQ_SHARED") ? getenv("SQ_SHARED") : "../shared";
            snprintf(path, sizeof path, "%s/models/tokenizer.model", shared);
            if (sq_tokenizer_load(path, &toks[0])) abort();
            snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer.json", shared);
            if (sq_tokenizer_load(path, &toks[1])) abort();
        }
        for (int i = 0; i < 2; i++) exercise_tokenizer(toks[i], data, size);
        break;
    }
    case KIND_CHAT_TEMPLATE:
        chat_template(data, size);
        break;
    case KIND_INT_LIST:
        write_file("ids.txt", data, size);
        snprintf(path, sizeof path, "%s/ids.txt", workdir);
        parse_int_list(path);
        break;
    case KIND_OPENAI_REQUEST:
        openai_request(data, size);
        break;
    }
    return 0;
}
