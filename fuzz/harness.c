/* What every fuzz target shares: the scratch directory the fuzzed files are written to, the fixtures, and
 * the checks on what the library hands back. */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char workdir[64];

/* The scratch directory lives as long as the process: with -fork or -jobs every worker has its own. */
static void remove_workdir(void) {
    DIR *d = opendir(workdir);
    if (!d) return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", workdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(workdir);
}

const char *fuzz_path(const char *name) {
    if (!workdir[0]) {
        /* in memory where the system has a tmpfs: the targets write a file or more per input */
        snprintf(workdir, sizeof workdir, "%s/sq-fuzz-%d",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        if (mkdir(workdir, 0700) != 0 && access(workdir, W_OK) != 0) abort();
        atexit(remove_workdir);
    }
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    return path;
}

void fuzz_write(const char *name, const uint8_t *data, size_t size) {
    FILE *fp = fopen(fuzz_path(name), "wb");
    if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) abort();
}

void fuzz_remove(const char *name) { unlink(fuzz_path(name)); }

static const char *fixture_dir(void) {
    const char *dir = getenv("SQ_FUZZ_FIXTURES");
    return dir ? dir : "fuzz-fixtures";
}

void fuzz_copy_fixture(const char *name, const char *as) {
    /* fixtures are small and read on every run: keep each in memory after the first read */
    static struct {
        char name[128];
        uint8_t *data;
        size_t size;
    } cache[16];
    int i = 0;
    while (i < 16 && cache[i].data && strcmp(cache[i].name, name)) i++;
    if (i == 16) abort();
    if (!cache[i].data) {
        char src[512];
        snprintf(src, sizeof src, "%s/%s", fixture_dir(), name);
        FILE *fp = fopen(src, "rb");
        if (!fp) {
            fprintf(stderr, "fuzz: missing fixture %s (set SQ_FUZZ_FIXTURES)\n", src);
            abort();
        }
        fseek(fp, 0, SEEK_END);
        long n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        cache[i].data = malloc(n > 0 ? (size_t)n : 1);
        if (n < 0 || !cache[i].data || fread(cache[i].data, 1, (size_t)n, fp) != (size_t)n) abort();
        fclose(fp);
        cache[i].size = (size_t)n;
        snprintf(cache[i].name, sizeof cache[i].name, "%s", name);
    }
    fuzz_write(as, cache[i].data, cache[i].size);
}

sq_model *fuzz_fixture_model_copy(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/model", fixture_dir());
    sq_model *model;
    sq_error *err = sq_model_load(dir, NULL, &model);
    if (err) {
        fprintf(stderr, "fuzz: fixture model %s: %s\n", dir, sq_error_message(err));
        abort();
    }
    return model;
}

const sq_model *fuzz_fixture_model(void) {
    static sq_model *model;
    if (!model) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/model", fixture_dir());
        sq_error *err = sq_model_load(dir, NULL, &model);
        if (err) {
            fprintf(stderr, "fuzz: fixture model %s: %s\n", dir, sq_error_message(err));
            abort();
        }
    }
    return model;
}

int fuzz_split(const uint8_t *data, size_t size, int max_parts, const uint8_t **parts, size_t *lens) {
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i < size && n < max_parts - 1; i++)
        if (data[i] == 0) {
            parts[n] = data + start, lens[n] = i - start, n++;
            start = i + 1;
        }
    parts[n] = data + start, lens[n] = size - start;
    return n + 1;
}

int fuzz_failed(sq_error *err) {
    if (!err) return 0;
    fuzz_require(sq_error_message(err)[0] != 0, "an error says what is wrong");
    sq_error_free(err);
    return 1;
}

void fuzz_require(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: broken promise: %s\n", what);
    abort();
}

void fuzz_load_model(const char *path) {
    sq_model *m = NULL;
    if (fuzz_failed(sq_model_load(path, NULL, &m))) return;
    /* what loading reports must hold its promises: warnings that say something, stop ids in the vocabulary */
    sq_model_info info;
    sq_model_get_info(m, &info);
    for (int i = 0; i < sq_model_n_warnings(m); i++)
        fuzz_require(sq_model_warning(m, i) && sq_model_warning(m, i)[0], "a load warning says something");
    int n_eos;
    const int32_t *eos = sq_model_eos_ids(m, &n_eos);
    for (int i = 0; i < n_eos; i++)
        fuzz_require(eos[i] >= 0 && eos[i] < info.vocab_size && sq_model_is_eos(m, eos[i]),
                     "end-of-generation ids lie in the vocabulary");
    /* a model that loads must also run */
    sq_context *ctx = NULL;
    if (!fuzz_failed(sq_context_create(m, &(sq_context_options){.n_ctx = 4, .n_threads = 1}, &ctx))) {
        float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
        int32_t tok = 0;
        fuzz_failed(sq_forward(
            ctx,
            &(sq_seq_batch){
                .seq_id = 0, .tokens = &tok, .n_tokens = 1, .logits_mode = SQ_LOGITS_LAST, .logits = logits},
            1));
        free(logits);
        sq_context_free(ctx);
    } /* else a context shorter than 4 tokens: refused, which is fine */
    sq_model_free(m);
}

/* Streamed after the first half of ids as context, the rest must add exactly what decoding the whole adds
 * (sq_detokenizer_reset's promise): out[out_len] is the whole decoded. */
static void check_streaming(const sq_tokenizer *tok, const int32_t *ids, int n, const char *out,
                            size_t out_len) {
    char *head = NULL;
    size_t head_len = 0, streamed = 0;
    sq_detokenizer *d = sq_detokenizer_create(tok);
    fuzz_require(d != NULL, "a streaming decoder for a loaded tokenizer");
    if (!fuzz_failed(sq_detokenize(tok, ids, n / 2, &head, &head_len)) &&
        !fuzz_failed(sq_detokenizer_reset(d, ids, n / 2))) {
        for (int i = n / 2; i <= n; i++) {
            size_t l;
            const char *piece = i < n ? sq_detokenizer_push(d, ids[i], &l) : sq_detokenizer_flush(d, &l);
            fuzz_require(head_len + streamed + l <= out_len && !memcmp(out + head_len + streamed, piece, l),
                         "a streamed piece continues the whole decoded text");
            streamed += l;
        }
        fuzz_require(head_len + streamed == out_len, "streaming after a context ends where decoding ends");
    }
    sq_detokenizer_free(d);
    free(head);
}

void fuzz_exercise_tokenizer(const sq_tokenizer *tok, const uint8_t *text, size_t len) {
    int32_t *ids = NULL;
    int n = 0;
    if (fuzz_failed(sq_tokenize(tok, (const char *)text, len, 1, 1, &ids, &n))) return;
    int vocab = sq_tokenizer_vocab_size(tok);
    for (int i = 0; i < n; i++)
        fuzz_require(ids[i] >= 0 && ids[i] < vocab, "token ids lie in the vocabulary");
    char *out = NULL;
    size_t out_len = 0;
    if (!fuzz_failed(sq_detokenize(tok, ids, n, &out, &out_len))) {
        fuzz_require(out[out_len] == 0, "detokenized text is NUL-terminated");
        check_streaming(tok, ids, n, out, out_len);
    }
    free(out);
    free(ids);
}
