/* OpenAI's original GPT-2 vocabulary files: encoder.json (token -> id) and vocab.bpe beside it (a "#version"
 * line, then one merge "a b" per line, highest priority first). Byte-level BPE with GPT-2's regex; tokens
 * spelled <|...|> (just <|endoftext|>) are control tokens, and no BOS is added (as in Hugging Face's GPT-2).
 */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct gpt2_files {
    char **tokens;
    int32_t *types;
    int n;
    char *merges_text; /* vocab.bpe, NUL-separated in place */
    const char **merges;
    int n_merges;
} gpt2_files;

static SQ_NODISCARD sq_error *read_encoder(const char *path, const cJSON *root, gpt2_files *g) {
    const cJSON *it;
    int n_ids = 0;
    int32_t *ids = malloc(((size_t)cJSON_GetArraySize(root) + 1) * sizeof *ids); /* [entries] */
    if (!ids) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(it, root) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (1 << 26) ||
            it->valuedouble != (int)it->valuedouble) {
            free(ids);
            return sq_errorf(SQ_ERR_FORMAT, "%s: entry \"%.60s\" is not a valid id", path, it->string);
        }
        ids[n_ids++] = it->valueint;
    }
    sq_error *err = sq_vocab_check_ids(path, ids, n_ids, &g->n);
    free(ids);
    SQ_TRY(err);
    g->tokens = calloc((size_t)g->n, sizeof *g->tokens);
    g->types = calloc((size_t)g->n, sizeof *g->types);
    if (!g->tokens || !g->types) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(it, root) {
        int id = it->valueint;
        size_t len = strlen(it->string);
        if (g->tokens[id]) return sq_errorf(SQ_ERR_FORMAT, "%s: id %d is given twice", path, id);
        if (!(g->tokens[id] = strdup(it->string))) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
        int control = len > 4 && !strncmp(it->string, "<|", 2) && !strcmp(it->string + len - 2, "|>");
        g->types[id] = control ? SQ_TOKEN_CONTROL : SQ_TOKEN_NORMAL;
    }
    return NULL;
}

static SQ_NODISCARD sq_error *read_merges(const char *path, gpt2_files *g) {
    char *copy = strdup(path);
    if (!copy) return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(copy) + sizeof "/vocab.bpe";
    char *bpe_path = malloc(n);
    if (!bpe_path) {
        free(copy);
        return sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(bpe_path, n, "%s/vocab.bpe", dirname(copy));
    free(copy);
    size_t size;
    sq_error *err = sq_read_file(bpe_path, (size_t)256 << 20, &g->merges_text, &size);
    if (err) {
        free(bpe_path);
        return sq_error_wrap(err, "%s needs vocab.bpe beside it", path);
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += g->merges_text[i] == '\n';
    if (!(g->merges = calloc(lines, sizeof *g->merges)))
        err = sq_errorf(SQ_ERR_NOMEM, "%s: out of memory", bpe_path);
    for (char *line = g->merges_text, *next; !err && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (!len || (line == g->merges_text && !strncmp(line, "#version", 8))) continue;
        if (!strchr(line, ' '))
            err = sq_errorf(SQ_ERR_FORMAT, "%s: merge %d \"%.60s\" is not \"a b\"", bpe_path, g->n_merges,
                            line);
        else
            g->merges[g->n_merges++] = line;
    }
    free(bpe_path);
    return err;
}

sq_error *sq_load_gpt2_vocab(const char *path, const void *json_root, sq_tokenizer **out) {
    gpt2_files g = {0};
    sq_error *err = read_encoder(path, json_root, &g);
    if (!err) err = read_merges(path, &g);
    if (!err) {
        sq_vocab_spec spec = {
            .type = SQ_TOKENIZER_BYTE_BPE,
            .n_tokens = g.n,
            .tokens = (const char *const *)g.tokens,
            .types = g.types,
            .n_merges = g.n_merges,
            .merges = g.merges,
            .pre = "gpt2",
            .bos_id = -1,
            .eos_id = -1,
            .unk_id = -1,
            .pad_id = -1,
        };
        if ((err = sq_tokenizer_from_spec(&spec, out))) err = sq_error_wrap(err, "%s", path);
    }
    for (int i = 0; g.tokens && i < g.n; i++) free(g.tokens[i]);
    free(g.tokens);
    free(g.types);
    free(g.merges);
    free(g.merges_text);
    return err;
}
